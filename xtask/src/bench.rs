//! `cargo xtask bench`: loopback bulk-transfer throughput without and with the tracer attached,
//! interleaved so that drift in the machine's speed hits both sides alike.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::build;

const PORT: u16 = 47999;

pub fn run(rounds: u32, seconds: f64, baseline: Option<&Path>) -> Result<()> {
    if rounds == 0 || seconds.is_nan() || seconds <= 0.0 {
        bail!("--rounds must be at least 1 and --seconds positive");
    }
    if let Some(bin) = baseline {
        if !bin.is_file() {
            bail!(
                "--baseline {}: no such file (give a tracer binary, e.g. a build of main)",
                bin.display()
            );
        }
    }
    let tracer = build::tracer()?;
    let secs = Duration::from_secs_f64(seconds);
    // Legs of each round, run back to back so that slow drift in the machine's speed hits them
    // alike: nothing attached, this tree's tracer, and the baseline tracer if given.
    let mut legs = vec![Leg::new("tracer", tracer.clone())];
    if let Some(bin) = baseline {
        legs.push(Leg::new("baseline", bin.to_path_buf()));
    }
    let mut without = Vec::new();
    let mut cpu_without = Vec::new();
    eprintln!(
        "xtask: bench: {rounds} rounds of {seconds} s loopback bulk transfer, without / with `tracer watch`{}",
        if baseline.is_some() { " / with the baseline" } else { "" }
    );
    for round in 1..=rounds {
        // Which leg goes first rotates from round to round: the first transfer of a round is
        // often slower or faster for reasons of its own (caches, CPU frequency), and that must
        // not land on one leg every time.
        let order: Vec<Option<usize>> = (0..=legs.len())
            .map(|i| (i + round as usize) % (legs.len() + 1))
            .map(|i| i.checked_sub(1))
            .collect();
        let mut base = None;
        let mut traced: Vec<Option<(Transfer, f64, String)>> = legs.iter().map(|_| None).collect();
        for leg in order {
            match leg {
                None => base = Some(transfer(secs)?),
                Some(i) => {
                    let agent = start_tracer(&legs[i].bin, false)?;
                    let run = transfer(secs);
                    let (summary, agent_cpu) = stop_tracer(agent)?;
                    traced[i] = Some((run?, agent_cpu, summary));
                }
            }
        }
        let base = base.context("the round had no transfer without the tracer")?;
        // CPU seconds per GB moved: the kernel programs run in the transfer's threads (their
        // system time), the agent in its own process.
        let base_cpu = base.cpu_secs / base.gigabytes;
        let mut line = format!(
            "  round {round}: without {:.2} Gbit/s {:.0} ms CPU/GB",
            gbit(base.rate),
            base_cpu * 1e3
        );
        for (leg, run) in legs.iter_mut().zip(traced) {
            let (run, agent_cpu, summary) = run.context("a leg of the round did not run")?;
            let cpu = (run.cpu_secs + agent_cpu) / run.gigabytes;
            line.push_str(&format!(
                ", {} {:.2} Gbit/s {:.0} ms CPU/GB (ratio {:.3}; {summary})",
                leg.name,
                gbit(run.rate),
                cpu * 1e3,
                run.rate / base.rate
            ));
            leg.rates.push(run.rate);
            leg.ratios.push(run.rate / base.rate);
            leg.cpu.push(cpu);
            leg.cpu_ratios.push(cpu / base_cpu);
        }
        eprintln!("{line}");
        without.push(base.rate);
        cpu_without.push(base_cpu);
    }
    // One more traced transfer each with the kernel's run-time statistics: the cost per call.
    for leg in &legs {
        let agent = start_tracer(&leg.bin, true)?;
        let traced = transfer(secs);
        let (summary, _) = stop_tracer(agent)?;
        let traced = traced?;
        eprintln!("  cost round, {} ({:.2} Gbit/s): {summary}", leg.name, gbit(traced.rate));
    }
    let (w0, c0) = (median(&mut without), median(&mut cpu_without));
    for leg in &mut legs {
        let name = leg.name;
        let w1 = median(&mut leg.rates);
        println!(
            "bench: {name}: median throughput without {:.2} Gbit/s, with {:.2} Gbit/s: ratio {:.3} ({:+.1} %)",
            gbit(w0),
            gbit(w1),
            w1 / w0,
            (w1 / w0 - 1.0) * 100.0
        );
        let spread = (
            leg.ratios.iter().copied().fold(f64::INFINITY, f64::min),
            leg.ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "bench: {name}: median of the per-round throughput ratios {:.3} (rounds from {:.3} to {:.3})",
            median(&mut leg.ratios),
            spread.0,
            spread.1
        );
        let cpu = median(&mut leg.cpu);
        println!(
            "bench: {name}: median CPU per GB without {:.0} ms, with (kernel programs + agent) {:.0} ms: ratio {:.3}; median of per-round CPU ratios {:.3}",
            c0 * 1e3,
            cpu * 1e3,
            cpu / c0,
            median(&mut leg.cpu_ratios)
        );
    }
    crate::bench_pipeline::run(&tracer)?;
    crate::bench_memory::run(&tracer)
}

/// One traced leg of each round: which binary, and what it measured.
struct Leg {
    name: &'static str,
    bin: PathBuf,
    rates: Vec<f64>,
    ratios: Vec<f64>,
    cpu: Vec<f64>,
    cpu_ratios: Vec<f64>,
}

impl Leg {
    fn new(name: &'static str, bin: PathBuf) -> Leg {
        Leg {
            name,
            bin,
            rates: Vec::new(),
            ratios: Vec::new(),
            cpu: Vec::new(),
            cpu_ratios: Vec::new(),
        }
    }
}

fn gbit(bytes_per_sec: f64) -> f64 {
    bytes_per_sec * 8.0 / 1e9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Transfer {
    /// Bytes per second received.
    rate: f64,
    gigabytes: f64,
    /// CPU time (user + system) of this process during the transfer.
    cpu_secs: f64,
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for ours).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<f64> = after.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // USER_HZ is 100 on every Linux architecture we build for.
    f.get(11).zip(f.get(12)).map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// One bulk transfer over loopback for `secs`.
fn transfer(secs: Duration) -> Result<Transfer> {
    let cpu_before = cpu_secs("self");
    let listener = TcpListener::bind(("127.0.0.1", PORT))
        .with_context(|| format!("failed to bind port {PORT}"))?;
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
    Ok(Transfer {
        rate: total as f64 / elapsed,
        gigabytes: total as f64 / 1e9,
        cpu_secs: cpu_secs("self") - cpu_before,
    })
}

/// A running `tracer watch` and the thread collecting what it prints on stderr.
struct Agent {
    child: Child,
    stderr: thread::JoinHandle<Vec<String>>,
}

/// `prog_stats` turns on the kernel's per-program run-time accounting, which itself costs a
/// little: it is used for a separate round only.
fn start_tracer(bin: &Path, prog_stats: bool) -> Result<Agent> {
    let mut child = Command::new(bin)
        .args(["watch", "--json", "--port", &PORT.to_string()])
        .args(prog_stats.then_some("--prog-stats"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {}", bin.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line?;
        if line.contains("UNAVAILABLE") {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the tracer could not hook every signal ({}): run `cargo xtask run -- probes`",
                line.trim()
            );
        }
        if line.contains("tracer: attached") {
            // Keep draining stderr so the tracer never blocks on it.
            let stderr = thread::spawn(move || lines.map_while(Result::ok).collect());
            return Ok(Agent { child, stderr });
        }
    }
    let _ = child.kill();
    bail!("the tracer exited before attaching (run `cargo xtask run -- probes` to see why)")
}

/// Stops the tracer as Ctrl-C would; returns its closing line (events seen and lost) and the CPU
/// seconds it used.
fn stop_tracer(agent: Agent) -> Result<(String, f64)> {
    let Agent { mut child, stderr } = agent;
    let cpu = cpu_secs(&child.id().to_string());
    crate::setup::run(Command::new("kill").args(["-INT", &child.id().to_string()]))?;
    let status = child.wait()?;
    let text = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!("the tracer failed during the benchmark: {status}: {}", text.join("\n"));
    }
    // "detached; N events, M lost" and the per-program cost of the programs that ran.
    let mut summary: Vec<&str> = text
        .iter()
        .filter(|l| {
            l.contains("detached") || (l.contains("tracer: program") && !l.contains(": 0 runs"))
        })
        .map(|l| l.trim_start_matches("tracer: "))
        .collect();
    if summary.is_empty() {
        summary.push("no summary");
    }
    Ok((summary.join("; "), cpu))
}
