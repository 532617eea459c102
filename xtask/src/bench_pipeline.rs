//! The agent's side of `cargo xtask bench`: the CPU the agent spends per event (synthetic binary
//! ring records decoded, through the table, alerts and NDJSON output, in-process: `tracer
//! bench-pipeline`), how fast the pipeline takes a recording, and whether its memory stays
//! bounded as the number of connections grows past the connection table's cap. It replays
//! synthetic recordings with `tracer replay`, no root or kernel involved, and reads the
//! replay's peak RSS.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use crate::setup::workspace_root;

/// One replay: its size, time and peak memory.
struct Run {
    conns: u64,
    events: u64,
    secs: f64,
    max_rss_kib: i64,
}

/// Runs of `tracer bench-pipeline` per connection count (the host is noisy: the median counts).
const CPU_RUNS: usize = 5;
/// Events per run.
const CPU_EVENTS: u64 = 2_000_000;
/// The agent's budget: CPU per event on one core (3 M events/s or more).
const CPU_BUDGET_NS: f64 = 300.0;

/// The CPU per event first, then replays of recordings of a growing number of connections (half
/// of them left open, so the live table fills past its cap): events/s and peak RSS for each.
pub fn run(tracer: &Path) -> Result<()> {
    cpu_per_event(tracer)?;
    replays(tracer)
}

/// `tracer bench-pipeline` CPU_RUNS times at 1,000 and at 10,000 connections open at once;
/// prints the median ns of CPU per event against the budget.
fn cpu_per_event(tracer: &Path) -> Result<()> {
    eprintln!("xtask: bench: agent CPU per event (tracer bench-pipeline, binary ring records)");
    for conns in [1_000u32, 10_000] {
        let mut runs = Vec::new();
        for _ in 0..CPU_RUNS {
            let out = Command::new(tracer)
                .args(["bench-pipeline", "--events", &CPU_EVENTS.to_string()])
                .args(["--connections", &conns.to_string()])
                .output()
                .with_context(|| format!("failed to start {}", tracer.display()))?;
            let said = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "tracer bench-pipeline failed ({}):\n{said}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            eprintln!("  {}", said.trim_end());
            runs.push(ns_per_event(&said)?);
        }
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        println!(
            "bench: agent {median:.0} ns of CPU per event ({:.2} M events/s on one core) at {conns} \
             connections, median of {CPU_RUNS} (from {:.0} to {:.0}); budget {CPU_BUDGET_NS:.0} ns: {}",
            1e3 / median,
            runs[0],
            runs[runs.len() - 1],
            if median <= CPU_BUDGET_NS { "within" } else { "OVER" }
        );
    }
    Ok(())
}

/// The "N ns of CPU per event" figure of a `tracer bench-pipeline` report.
fn ns_per_event(report: &str) -> Result<f64> {
    let before = report
        .split(" ns of CPU per event")
        .next()
        .filter(|b| b.len() < report.len())
        .with_context(|| format!("no \"ns of CPU per event\" in {report:?}"))?;
    let number = before.rsplit(' ').next().unwrap_or_default();
    number.parse().with_context(|| format!("{number:?} is not a number (in {report:?})"))
}

fn replays(tracer: &Path) -> Result<()> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    eprintln!("xtask: bench: agent pipeline on synthetic recordings (tracer replay)");
    let mut runs = Vec::new();
    for conns in [50_000u64, 200_000, 400_000] {
        let file = dir.join(format!("pipeline-{conns}.rec"));
        let events = write_recording(&file, conns)?;
        let run = replay(tracer, &file, conns, events)?;
        eprintln!(
            "  {conns} connections, {events} events: {:.2} s, {:.0} events/s, peak RSS {:.1} MiB",
            run.secs,
            run.events as f64 / run.secs,
            run.max_rss_kib as f64 / 1024.0
        );
        let _ = std::fs::remove_file(&file);
        runs.push(run);
    }
    let rate = |r: &Run| r.events as f64 / r.secs;
    let (small, large) = (&runs[0], &runs[runs.len() - 1]);
    println!(
        "bench: pipeline {:.0} events/s at {} connections, {:.0} events/s at {}",
        rate(small),
        small.conns,
        rate(large),
        large.conns
    );
    println!(
        "bench: pipeline peak RSS {:.1} MiB at {} connections, {:.1} MiB at {} ({}x the \
         connections, {:.2}x the memory)",
        small.max_rss_kib as f64 / 1024.0,
        small.conns,
        large.max_rss_kib as f64 / 1024.0,
        large.conns,
        large.conns / small.conns,
        large.max_rss_kib as f64 / small.max_rss_kib as f64
    );
    Ok(())
}

/// Writes a version-1 recording of `conns` connections, each with its own socket address and
/// 4-tuple: open, a window, a short zero-window episode, a reopened window, and for every other
/// connection a close. Returns the number of events.
fn write_recording(path: &Path, conns: u64) -> Result<u64> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let start: u64 = 1_800_000_000_000_000_000;
    writeln!(
        out,
        r#"{{"format":"tcp-flow-tracer-recording","version":1,"kernel":"synthetic","started_ns":{start},"hooks":{{}}}}"#
    )?;
    let mut events = 0u64;
    let mut ts = start;
    for i in 0..conns {
        let saddr = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let tail = format!(
            r#""saddr":"{saddr}","sport":7777,"daddr":"10.200.0.1","dport":{},"pid":4242,"sk":"{:#x}""#,
            1024 + i % 60_000,
            0xffff_8881_0000_0000u64 + i * 0x1000
        );
        let mut line = |ts: u64, body: &str, hook: &str| -> Result<()> {
            events += 1;
            writeln!(out, r#"{{"ts_ns":{ts},{body},{tail},"hook":"{hook}"}}"#)?;
            Ok(())
        };
        let local = r#""rcv_wnd":0,"unread":4096,"rcvbuf":8192,"rmem_alloc":5760,"rcv_ssthresh":4096,"window_clamp":5824"#;
        ts += 1_000;
        line(
            ts,
            r#""kind":"open","snd_wscale":7,"rcv_wscale":7,"wscale_ok":true,"advmss":1448,"rcvbuf":131072,"comm":"bench""#,
            "raw_tp",
        )?;
        line(
            ts + 10,
            &format!(
                r#""kind":"window","side":"local","window":65536,"raw_window":512,"wscale":7,{local}"#
            ),
            "cgroup_skb",
        )?;
        line(
            ts + 20,
            &format!(r#""kind":"zero_window_start","side":"local","counted":true,{local}"#),
            "cgroup_skb",
        )?;
        line(
            ts + 500,
            r#""kind":"zero_window_end","side":"local","window":4096,"duration_ns":480"#,
            "cgroup_skb",
        )?;
        line(
            ts + 510,
            &format!(
                r#""kind":"window","side":"local","window":4096,"raw_window":32,"wscale":7,{local}"#
            ),
            "cgroup_skb",
        )?;
        if i % 2 == 0 {
            line(
                ts + 900,
                r#""kind":"close","from_state":"ESTABLISHED","comm":"bench""#,
                "raw_tp",
            )?;
        }
    }
    writeln!(out, r#"{{"record":"end","ts_ns":{},"events":{events},"lost":0}}"#, ts + 1_000)?;
    out.flush()?;
    Ok(events)
}

/// `tracer replay FILE` with its output discarded; wall time and the child's peak RSS.
fn replay(tracer: &Path, file: &Path, conns: u64, events: u64) -> Result<Run> {
    let started = Instant::now();
    let child = Command::new(tracer)
        .arg("replay")
        .arg(file)
        .arg("--no-events")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {}", tracer.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.context("no stderr")?;
    let mut said = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut said)?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which std has not reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("waiting for tracer replay failed: {}", std::io::Error::last_os_error());
    }
    let secs = started.elapsed().as_secs_f64();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("tracer replay {} failed (status {status}):\n{said}", file.display());
    }
    // ru_maxrss is in KiB on Linux.
    Ok(Run { conns, events, secs, max_rss_kib: usage.ru_maxrss })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cost_per_event() {
        let report = "bench-pipeline: 1001835 events (978944 records, 10000 connections at \
                      once): 2476 ns of CPU per event, 403800 events/s on one core\n";
        assert_eq!(ns_per_event(report).unwrap(), 2476.0);
        assert!(ns_per_event("bench-pipeline: failed\n").is_err());
    }
}
