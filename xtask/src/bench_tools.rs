//! The observers `cargo xtask bench` puts beside each other on the same workloads: `tracer watch
//! --json` (this tree's build, and a baseline build if given), a bpftrace script of the same
//! tracepoints (bench/hooks.bt), `tcpdump -s 128 -w /dev/null`, and the floor (`tracer
//! bench-floor`: empty programs at the tracer's packet and lifecycle attach points). Each is
//! started, waited for until it is attached, measured (its CPU, RSS and kernel programs) and
//! stopped as Ctrl-C would.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::bench_stats::{process_cpu, process_rss_kib};

/// The bpftrace script: the tracepoints the tracer uses on this kernel, doing comparable work.
const HOOKS_BT: &str = include_str!("../bench/hooks.bt");

/// What runs beside the workload in one leg.
#[derive(Clone, Debug)]
pub enum Tool {
    /// `tracer watch --json >/dev/null` of this binary; `name` tells this tree's from a baseline.
    Tracer {
        name: &'static str,
        bin: PathBuf,
    },
    Bpftrace,
    Tcpdump,
    /// `tracer bench-floor` of this binary: empty programs at the tracer's attach points.
    Floor {
        bin: PathBuf,
    },
}

impl Tool {
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Tracer { name, .. } => name,
            Tool::Bpftrace => "bpftrace",
            Tool::Tcpdump => "tcpdump",
            Tool::Floor { .. } => "floor",
        }
    }

    /// Whether its kernel side is eBPF programs, whose run time the kernel can count.
    pub fn has_bpf_programs(&self) -> bool {
        !matches!(self, Tool::Tcpdump)
    }

    pub fn is_tracer(&self) -> bool {
        matches!(self, Tool::Tracer { .. })
    }

    /// Starts the tool and returns once it is attached. `dir` holds its files.
    pub fn start(&self, dir: &Path) -> Result<Running> {
        let (child, lines) = match self {
            Tool::Tracer { bin, .. } => {
                spawn(Command::new(bin).args(["watch", "--json"]).stdout(Stdio::null()))
                    .and_then(|(child, lines)| {
                        wait_line(child, lines, "tracer: attached", &["UNAVAILABLE"])
                    })
                    .with_context(|| format!("{} watch", bin.display()))?
            }
            Tool::Bpftrace => {
                let script = dir.join("hooks.bt");
                std::fs::write(&script, HOOKS_BT)
                    .with_context(|| format!("cannot write {}", script.display()))?;
                let out = bpftrace_output(dir);
                let (child, lines) = spawn(
                    Command::new("bpftrace")
                        .arg("-o")
                        .arg(&out)
                        .arg(&script)
                        // Per-socket maps for 20,000 held connections and the churn.
                        .env("BPFTRACE_MAP_KEYS_MAX", "262144")
                        .stdout(Stdio::null()),
                )
                .context("bpftrace")?;
                wait_bpftrace(child, lines, &out).context("bpftrace")?
            }
            Tool::Tcpdump => spawn(
                Command::new("tcpdump")
                    .args(["-i", "lo", "-n", "-s", "128", "-w", "/dev/null"])
                    .stdout(Stdio::null()),
            )
            .and_then(|(child, lines)| wait_line(child, lines, "listening on", &[]))
            .context("tcpdump")?,
            Tool::Floor { bin } => spawn(Command::new(bin).arg("bench-floor"))
                .and_then(|(child, lines)| wait_line(child, lines, "tracer: attached", &[]))
                .with_context(|| format!("{} bench-floor", bin.display()))?,
        };
        Ok(Running {
            tool: self.clone(),
            child,
            lines,
            dir: dir.to_path_buf(),
            cpu_at_mark: 0.0,
            rss_at_mark: 0,
        })
    }
}

/// A started tool. Its output lines are collected by a thread so it never blocks on a pipe.
pub struct Running {
    tool: Tool,
    child: Child,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
    cpu_at_mark: f64,
    rss_at_mark: u64,
}

/// What a tool did during one leg.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// CPU seconds of its own process from the mark to the end of the workload.
    pub cpu: f64,
    /// RSS (KiB) at the mark and at the workload's peak (the held connections all open).
    pub rss_at_mark: u64,
    pub rss_at_peak: u64,
    /// Events it reported and lost (the tracer's closing line, bpftrace's lines and "Lost N
    /// events", tcpdump's packets captured and dropped by the kernel); None when it said nothing.
    pub events: Option<u64>,
    pub lost: Option<u64>,
    /// Its closing words, for the round's line.
    pub summary: String,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The start of what is measured: after attaching, right before the workload.
    pub fn mark(&mut self) {
        self.cpu_at_mark = process_cpu(self.pid()).unwrap_or(0.0);
        self.rss_at_mark = process_rss_kib(self.pid()).unwrap_or(0);
    }

    /// Stops the tool as Ctrl-C would (after taking its CPU time) and reads its closing words.
    pub fn stop(mut self, rss_at_peak: u64) -> Result<Report> {
        let pid = self.pid();
        let cpu = process_cpu(pid).unwrap_or(self.cpu_at_mark) - self.cpu_at_mark;
        // SAFETY: kill(2) on our own child, which has not been reaped (we wait below).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        let status = wait_timeout(&mut self.child, Duration::from_secs(120))?;
        let text: Vec<String> = self.lines.try_iter().collect();
        // All three exit 0 on SIGINT; anything else is a failure to report.
        if !status.is_some_and(|s| s.success()) {
            bail!(
                "{} failed during the benchmark ({}):\n{}",
                self.tool.name(),
                status.map_or("did not stop within 120 s".to_string(), |s| s.to_string()),
                tail(&text, 20)
            );
        }
        let (events, lost, summary) = match self.tool {
            Tool::Tracer { .. } => parse_tracer_exit(&text),
            Tool::Bpftrace => {
                let out = bpftrace_output(&self.dir);
                let printed = std::fs::read_to_string(&out)
                    .with_context(|| format!("cannot read bpftrace's output {}", out.display()))?;
                let _ = std::fs::remove_file(&out);
                // "Lost N events" may come on stderr as well.
                parse_bpftrace_output(printed.lines().chain(text.iter().map(String::as_str)))
            }
            Tool::Tcpdump => parse_tcpdump_exit(&text),
            // Its programs send nothing: no events to count.
            Tool::Floor { .. } => (None, None, "empty programs".to_string()),
        };
        Ok(Report { cpu, rss_at_mark: self.rss_at_mark, rss_at_peak, events, lost, summary })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A leg that failed half-way must not leave its tool attached.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `cmd` with its stderr (and stdout when piped) passed on line by line.
fn spawn(cmd: &mut Command) -> Result<(Child, mpsc::Receiver<String>)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(Box::new(out) as Box<dyn std::io::Read + Send>);
    }
    if let Some(err) = child.stderr.take() {
        readers.push(Box::new(err));
    }
    for r in readers {
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Ok((child, rx))
}

/// Waits until a line contains `ready`; a line containing one of `fatal`, the end of the
/// output or a minute without it fails.
fn wait_line(
    mut child: Child,
    rx: mpsc::Receiver<String>,
    ready: &str,
    fatal: &[&str],
) -> Result<(Child, mpsc::Receiver<String>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let is_ready = line.contains(ready);
                let is_fatal = fatal.iter().any(|f| line.contains(f));
                seen.push(line);
                if is_fatal {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("it could not attach:\n{}", tail(&seen, 20));
                }
                if is_ready {
                    // Later lines stay in the channel for stop(); the earlier ones are noise.
                    return Ok((child, rx));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("not attached after 60 s:\n{}", tail(&seen, 20));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                bail!("it exited ({status}) before attaching:\n{}", tail(&seen, 20));
            }
        }
    }
}

/// Where bpftrace writes what the script prints (to a file, as `> file` would: its own CPU
/// pays for the writing, as the tracer's pays for its JSON).
fn bpftrace_output(dir: &Path) -> PathBuf {
    dir.join("bpftrace.out")
}

/// bpftrace says "Attaching N probes..." before it attaches, and buffers what follows when
/// writing to a file: it is attached once it holds N perf-event descriptors (one per probe).
fn wait_bpftrace(
    mut child: Child,
    rx: mpsc::Receiver<String>,
    out: &Path,
) -> Result<(Child, mpsc::Receiver<String>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let said: Vec<String> = rx.try_iter().collect();
            bail!("it exited ({status}) before attaching:\n{}", tail(&said, 20));
        }
        let probes = std::fs::read_to_string(out).ok().and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("Attaching ")?.split(' ').next()?.parse().ok())
        });
        if let Some(probes) = probes {
            if perf_event_fds(child.id()) >= probes {
                return Ok((child, rx));
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("not attached after 60 s")
}

/// How many perf-event descriptors process `pid` holds (how tracepoint programs attach).
fn perf_event_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| {
        dir.flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().contains("perf_event"))
            })
            .count()
    })
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(status) = child.try_wait()? {
            // Let the reader threads pass on the last lines.
            thread::sleep(Duration::from_millis(50));
            return Ok(Some(status));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

fn tail(lines: &[String], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// "tracer: detached; N events, M lost, K undecodable[, ...]" (and any other warnings kept).
fn parse_tracer_exit(lines: &[String]) -> (Option<u64>, Option<u64>, String) {
    let Some(line) = lines.iter().rev().find(|l| l.contains("tracer: detached;")) else {
        return (None, None, "no closing line".to_string());
    };
    let rest = line.split_once("detached;").map_or("", |(_, r)| r).trim();
    let number_before = |word: &str| {
        rest.split(',').find_map(|part| {
            let mut it = part.split_whitespace();
            let n = it.next()?.parse().ok()?;
            (it.next()? == word).then_some(n)
        })
    };
    (number_before("events"), number_before("lost"), rest.to_string())
}

/// bpftrace's output lines: one per printed event, and "Lost N events" for what its perf
/// buffers dropped.
fn parse_bpftrace_output<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> (Option<u64>, Option<u64>, String) {
    let mut events = 0u64;
    let mut lost = 0u64;
    for l in lines {
        if let Some(n) = l.trim().strip_prefix("Lost ").and_then(|r| r.strip_suffix(" events")) {
            lost += n.trim().parse::<u64>().unwrap_or(0);
        } else if l.starts_with("ev ") {
            events += 1;
        }
    }
    (Some(events), Some(lost), format!("{events} lines, {lost} lost"))
}

/// tcpdump's closing lines: "N packets captured", "N packets dropped by kernel".
fn parse_tcpdump_exit(lines: &[String]) -> (Option<u64>, Option<u64>, String) {
    let count =
        |what: &str| lines.iter().find_map(|l| l.strip_suffix(what)?.trim().parse::<u64>().ok());
    let captured = count("packets captured");
    let dropped = count("packets dropped by kernel");
    let summary = format!(
        "{} packets captured, {} dropped",
        captured.map_or("?".to_string(), |n| n.to_string()),
        dropped.map_or("?".to_string(), |n| n.to_string())
    );
    (captured, dropped, summary)
}

/// One eBPF program's calls and run time over a leg (from the kernel's run-time statistics).
#[derive(Clone, Debug, PartialEq)]
pub struct ProgCost {
    pub name: String,
    pub runs: u64,
    pub ns: u64,
}

/// The kernel's BPF run-time statistics, on while this lives (they cost 20-50 ns a call
/// themselves, so only the cost legs turn them on).
pub struct StatsOn(
    #[allow(dead_code, reason = "held: the kernel counts while it is open")] std::os::fd::OwnedFd,
);

pub fn stats_on() -> Result<StatsOn> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(StatsOn)
        .context("failed to turn on the kernel's BPF run-time statistics (are you root?)")
}

/// The run count and time so far of every eBPF program process `pid` holds, by program id.
pub fn prog_counters(pid: u32) -> BTreeMap<u32, ProgCost> {
    let ids = prog_ids(pid);
    let mut out = BTreeMap::new();
    for info in aya::programs::loaded_programs().flatten() {
        if ids.contains(&info.id()) {
            out.insert(
                info.id(),
                ProgCost {
                    name: info.name_as_str().unwrap_or("?").to_string(),
                    runs: info.run_count(),
                    ns: info.run_time().as_nanos() as u64,
                },
            );
        }
    }
    out
}

/// What ran between two snapshots of prog_counters, busiest first.
pub fn prog_delta(
    before: &BTreeMap<u32, ProgCost>,
    after: &BTreeMap<u32, ProgCost>,
) -> Vec<ProgCost> {
    let mut out: Vec<ProgCost> = after
        .iter()
        .map(|(id, a)| {
            let b = before.get(id);
            ProgCost {
                name: a.name.clone(),
                runs: a.runs - b.map_or(0, |b| b.runs.min(a.runs)),
                ns: a.ns - b.map_or(0, |b| b.ns.min(a.ns)),
            }
        })
        .filter(|p| p.runs > 0)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.ns));
    out
}

/// How many packet programs of a tracer or its floor (ours or another session's) are loaded
/// right now: with none of our tools running, more than zero means "nothing attached" is not
/// nothing.
pub fn tracer_packet_programs() -> usize {
    aya::programs::loaded_programs()
        .flatten()
        .filter(|p| {
            matches!(
                p.name_as_str(),
                Some(
                    "egress_skb"
                        | "ingress_skb"
                        | "ingress_read"
                        | "floor_ingress"
                        | "floor_egress"
                )
            )
        })
        .count()
}

/// The ids of the eBPF programs whose descriptors process `pid` holds ("prog_id:" in fdinfo).
fn prog_ids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| parse_prog_id(&text))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn parse_prog_id(fdinfo: &str) -> Option<u32> {
    fdinfo.lines().find_map(|l| l.strip_prefix("prog_id:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn tracer_closing_line() {
        let (events, lost, _) = parse_tracer_exit(&lines(
            "tracer: warning: x\ntracer: detached; 123456 events, 7 lost, 0 undecodable, 3 connections evicted (agent table full)\n",
        ));
        assert_eq!((events, lost), (Some(123456), Some(7)));
        assert_eq!(parse_tracer_exit(&lines("nothing")).0, None);
    }

    #[test]
    fn bpftrace_lines_and_losses() {
        let (events, lost, _) =
            parse_bpftrace_output("Attaching 9 probes...\nhooks.bt: attached\nev open 1\nev close 2\nLost 15 events\nLost 5 events\n".lines());
        assert_eq!((events, lost), (Some(2), Some(20)));
    }

    #[test]
    fn tcpdump_closing_lines() {
        let (c, d, _) = parse_tcpdump_exit(&lines(
            "listening on lo, link-type EN10MB (Ethernet), snapshot length 128 bytes\n1000 packets captured\n1100 packets received by filter\n42 packets dropped by kernel\n",
        ));
        assert_eq!((c, d), (Some(1000), Some(42)));
    }

    #[test]
    fn prog_id_from_fdinfo() {
        assert_eq!(
            parse_prog_id("pos:\t0\nprog_type:\t8\nprog_id:\t4711\nrun_cnt:\t3\n"),
            Some(4711)
        );
        assert_eq!(parse_prog_id("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn prog_delta_counts_only_what_ran() {
        let p = |name: &str, runs, ns| ProgCost { name: name.to_string(), runs, ns };
        let before = BTreeMap::from([(1, p("a", 10, 1000)), (2, p("b", 5, 50))]);
        let after =
            BTreeMap::from([(1, p("a", 30, 5000)), (2, p("b", 5, 50)), (3, p("c", 2, 9000))]);
        assert_eq!(prog_delta(&before, &after), vec![p("c", 2, 9000), p("a", 20, 4000)]);
    }
}
