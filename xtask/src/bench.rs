//! `cargo xtask bench`: loopback bulk-transfer throughput without and with the tracer attached,
//! interleaved so that drift in the machine's speed hits both sides alike.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::build;

const PORT: u16 = 47999;

pub fn run(rounds: u32, seconds: f64) -> Result<()> {
    if rounds == 0 || !(seconds > 0.0) {
        bail!("--rounds must be at least 1 and --seconds positive");
    }
    let tracer = build::tracer()?;
    let secs = Duration::from_secs_f64(seconds);
    let mut without = Vec::new();
    let mut with = Vec::new();
    eprintln!("xtask: bench: {rounds} rounds of {seconds} s loopback bulk transfer, without / with `tracer watch`");
    for round in 1..=rounds {
        let base = transfer(secs)?;
        let agent = start_tracer(&tracer)?;
        let traced = transfer(secs);
        let summary = stop_tracer(agent)?;
        let traced = traced?;
        eprintln!(
            "  round {round}: without {:.2} Gbit/s, with {:.2} Gbit/s (ratio {:.3}); tracer: {summary}",
            gbit(base),
            gbit(traced),
            traced / base
        );
        without.push(base);
        with.push(traced);
    }
    let (w0, w1) = (median(&mut without), median(&mut with));
    println!(
        "bench: median throughput without tracer {:.2} Gbit/s, with tracer {:.2} Gbit/s: ratio {:.3} ({:+.1} %)",
        gbit(w0),
        gbit(w1),
        w1 / w0,
        (w1 / w0 - 1.0) * 100.0
    );
    Ok(())
}

fn gbit(bytes_per_sec: f64) -> f64 {
    bytes_per_sec * 8.0 / 1e9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// One bulk transfer over loopback for `secs`; returns bytes per second received.
fn transfer(secs: Duration) -> Result<f64> {
    let listener = TcpListener::bind(("127.0.0.1", PORT)).with_context(|| format!("failed to bind port {PORT}"))?;
    let sender = thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(("127.0.0.1", PORT))?;
        let chunk = vec![0xa5u8; 1 << 20];
        let end = Instant::now() + secs;
        while Instant::now() < end {
            s.write_all(&chunk)?;
        }
        Ok(())
    });
    let (mut conn, _) = listener.accept()?;
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut total = 0u64;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    sender.join().map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    Ok(total as f64 / elapsed)
}

/// A running `tracer watch` and the thread collecting what it prints on stderr.
struct Agent {
    child: Child,
    stderr: thread::JoinHandle<Vec<String>>,
}

fn start_tracer(bin: &std::path::Path) -> Result<Agent> {
    let mut child = Command::new(bin)
        .args(["watch", "--json", "--port", &PORT.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {}", bin.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line?.contains("tracer: attached") {
            // Keep draining stderr so the tracer never blocks on it.
            let stderr = thread::spawn(move || lines.map_while(Result::ok).collect());
            return Ok(Agent { child, stderr });
        }
    }
    let _ = child.kill();
    bail!("the tracer exited before attaching (run `cargo xtask run -- probes` to see why)")
}

/// Stops the tracer as Ctrl-C would and returns its closing line (events seen and lost).
fn stop_tracer(agent: Agent) -> Result<String> {
    let Agent { mut child, stderr } = agent;
    crate::setup::run(Command::new("kill").args(["-INT", &child.id().to_string()]))?;
    let status = child.wait()?;
    let text = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!("the tracer failed during the benchmark: {status}: {}", text.join("\n"));
    }
    let last = text.iter().rev().find(|l| l.contains("detached")).map_or("no summary", |l| l.as_str());
    Ok(last.trim_start_matches("tracer: ").to_string())
}
