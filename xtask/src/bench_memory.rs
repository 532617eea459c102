//! The agent's memory per live connection, for `cargo xtask bench`: synthetic events of
//! 100,000 connections that stay open go through the pipeline (`tracer replay` reading a FIFO,
//! the same table, alert engine and output as a live `watch`), and the agent's RSS is read
//! while they are all live, before the end-of-run summary. A run of 1,000 connections gives
//! the fixed part, so the difference is what connections cost.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::setup::workspace_root;

/// The connections the budget is about, and the budget.
const LIVE: u64 = 100_000;
const BUDGET_MIB: f64 = 64.0;
/// The small run that measures what does not grow with connections.
const BASE: u64 = 1_000;

/// RSS of one run: while every connection is live, and the peak to the end (summary included).
struct Rss {
    live_kib: u64,
    peak_kib: u64,
}

pub fn run(tracer: &Path) -> Result<()> {
    eprintln!(
        "xtask: bench: agent memory with {LIVE} live connections (tracer replay from a FIFO)"
    );
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let base = measure(tracer, &dir, BASE)?;
    let full = measure(tracer, &dir, LIVE)?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let per_conn =
        (full.live_kib.saturating_sub(base.live_kib) * 1024) as f64 / (LIVE - BASE) as f64;
    let verdict = if mib(full.live_kib) <= BUDGET_MIB { "ok" } else { "MISS" };
    println!(
        "bench: memory: RSS {:.1} MiB with {LIVE} live connections ({:.0} bytes per connection \
         over the {:.1} MiB of a {BASE}-connection run), budget {BUDGET_MIB} MiB: {verdict}; \
         peak {:.1} MiB at the end with the per-connection summary",
        mib(full.live_kib),
        per_conn,
        mib(base.live_kib),
        mib(full.peak_kib)
    );
    Ok(())
}

/// Replays `conns` live connections through a FIFO and reads the agent's RSS once it has taken
/// every event and waits for more.
fn measure(tracer: &Path, dir: &Path, conns: u64) -> Result<Rss> {
    let fifo = dir.join(format!("memory-{conns}.fifo"));
    let _ = std::fs::remove_file(&fifo);
    crate::setup::run(Command::new("mkfifo").arg(&fifo))?;
    let mut child = Command::new(tracer)
        .arg("replay")
        .arg(&fifo)
        .arg("--no-events")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start {}", tracer.display()))?;
    let result = feed_and_measure(child.id(), &fifo, conns);
    if result.is_err() {
        let _ = child.kill();
    }
    let waited = wait_peak_kib(child);
    let _ = std::fs::remove_file(&fifo);
    let live_kib = result?;
    let (status, peak_kib) = waited?;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("tracer replay of {conns} synthetic connections failed (status {status})");
    }
    Ok(Rss { live_kib, peak_kib })
}

fn feed_and_measure(pid: u32, fifo: &Path, conns: u64) -> Result<u64> {
    let file = File::create(fifo).with_context(|| format!("cannot open {}", fifo.display()))?;
    let mut out = BufWriter::new(file);
    let end_ns = write_events(&mut out, conns)?;
    out.flush()?;
    let live_kib = settled_rss_kib(pid)?;
    // The trailer ends the run: the summary of every connection, then exit.
    writeln!(out, r#"{{"record":"end","ts_ns":{end_ns},"events":{},"lost":0}}"#, conns * 4)?;
    out.flush()?;
    Ok(live_kib)
}

/// Four events per connection, each with its own socket and 4-tuple: the open, a local window
/// with the receive state, a peer window with the send state, and one more local window; every
/// tenth connection has had a zero-window episode in between. None closes. Returns the time of
/// the last one.
fn write_events(out: &mut impl Write, conns: u64) -> Result<u64> {
    let start: u64 = 1_800_000_000_000_000_000;
    writeln!(
        out,
        r#"{{"format":"tcp-flow-tracer-recording","version":1,"kernel":"synthetic","started_ns":{start},"hooks":{{}}}}"#
    )?;
    let local = r#""rcv_wnd":0,"unread":4096,"rcvbuf":131072,"rmem_alloc":5760,"rcv_ssthresh":65535,"window_clamp":65535"#;
    let sender =
        r#""in_flight":1448,"unsent":0,"mss":1448,"srtt_us":40,"rwnd_limited_ms":0,"busy_ms":3"#;
    let mut ts = start;
    for i in 0..conns {
        let tail = format!(
            r#""saddr":"10.{}.{}.{}","sport":8080,"daddr":"10.200.0.1","dport":{},"pid":{},"sk":"{:#x}""#,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            1024 + i % 60_000,
            4000 + i % 64,
            0xffff_8881_0000_0000u64 + i * 0x1000
        );
        ts += 1_000;
        let mut line = |offset: u64, body: &str| -> Result<()> {
            let ts = ts + offset;
            Ok(writeln!(out, r#"{{"ts_ns":{ts},{body},{tail},"hook":"cgroup_skb"}}"#)?)
        };
        line(
            0,
            r#""kind":"open","snd_wscale":7,"rcv_wscale":7,"wscale_ok":true,"advmss":1448,"rcvbuf":131072,"comm":"server""#,
        )?;
        line(
            10,
            &format!(
                r#""kind":"window","side":"local","window":65536,"raw_window":512,"wscale":7,{local}"#
            ),
        )?;
        line(
            20,
            &format!(
                r#""kind":"window","side":"peer","window":65536,"raw_window":512,"wscale":7,{sender}"#
            ),
        )?;
        let window = if i % 10 == 0 { 0 } else { 32768 };
        line(
            30,
            &format!(
                r#""kind":"window","side":"local","window":{window},"raw_window":{},"wscale":7,{local}"#,
                window >> 7
            ),
        )?;
    }
    Ok(ts + 1_000)
}

/// The child's RSS once it has read everything written so far: sleeping (on the empty FIFO)
/// with the same RSS twice in a row.
fn settled_rss_kib(pid: u32) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("tracer replay (pid {pid}) exited early"))?;
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string())
        };
        let sleeping = field("State:").is_some_and(|s| s.starts_with('S'));
        let rss = field("VmRSS:")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmRSS in /proc/PID/status")?;
        if sleeping && last == Some(rss) {
            return Ok(rss);
        }
        last = Some(rss);
    }
    bail!("tracer replay did not settle within 120 s")
}

/// Waits for the replay; its wait status and peak RSS (KiB).
fn wait_peak_kib(child: Child) -> Result<(i32, u64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which std has not reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("waiting for tracer replay failed: {}", std::io::Error::last_os_error());
    }
    // ru_maxrss is in KiB on Linux.
    Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)))
}
