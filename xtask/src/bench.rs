//! `cargo xtask bench`: the tracer beside the alternatives (a bpftrace script of the same
//! tracepoints, tcpdump) on the same workloads (loopback bulk with iperf3, a new connection per
//! HTTP request with nginx and ab, 20,000 held connections plus churn), interleaved in rounds so
//! that drift in the machine's speed hits every leg alike; then the kernel programs' cost per
//! call and the agent pipeline on synthetic recordings.

use std::{path::PathBuf, time::Instant};

use anyhow::{bail, Context as _, Result};

use crate::{
    bench_bulk::Bulk,
    bench_held::{Held, CHURN_TARGET, HELD},
    bench_http::Http,
    bench_stats::{
        median, median_half_width, median_interval, median_reach_and_range, process_rss_kib, ratio,
    },
    bench_tools::{
        prog_counters, prog_delta, stats_on, tracer_packet_programs, ProgCost, Report, Tool,
    },
    build,
    setup::workspace_root,
};

/// One workload: run for about `secs`, report what it moved. `at_peak` is called once the
/// workload holds the most connections it will (the tools' RSS is taken then).
pub trait Workload {
    fn name(&self) -> &'static str;
    fn run(&mut self, secs: f64, at_peak: &mut dyn FnMut()) -> Result<Sample>;
    /// Ends what the run left standing (the held connections), after the tool has stopped:
    /// tearing down 20,000 connections at once is a burst no target speaks of.
    fn finish(&mut self) {}
}

/// What one run of a workload did.
pub struct Sample {
    /// Its figure of merit per second: bytes (bulk), requests (http), new connections (held).
    pub rate: f64,
    /// The work done, in the unit costs are given per: GB (bulk), 1,000 connections (others).
    pub work: f64,
    /// Busy CPU seconds of the whole host while it ran.
    pub host_cpu: f64,
    /// Anything worth a word on the round's line.
    pub note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// iperf3, one TCP stream over loopback.
    Bulk,
    /// nginx and `ab -c 20` without keep-alive: a new connection per request.
    Http,
    /// 20,000 held loopback connections plus 10,000 new connections a second.
    Held,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ToolKind {
    /// `tracer watch --json >/dev/null` (and the --baseline build, if given).
    Tracer,
    /// xtask/bench/hooks.bt: the tracer's tracepoints on this kernel in bpftrace.
    Bpftrace,
    /// `tcpdump -i lo -s 128 -w /dev/null`.
    Tcpdump,
    /// `tracer bench-floor`: programs that do nothing where the tracer's packet and lifecycle
    /// hooks attach, the least any tool on those hooks can cost.
    Floor,
}

pub struct Options {
    pub rounds: u32,
    pub seconds: f64,
    pub baseline: Option<PathBuf>,
    pub workloads: Vec<WorkloadKind>,
    pub tools: Vec<ToolKind>,
    pub pipeline: bool,
}

/// Targets (issue 9): the tracer's median ratio to "nothing attached".
const BULK_TARGET: f64 = 0.97;
const HTTP_TARGET: f64 = 0.95;
/// How closely the median ratios must be known (the 95 % interval's reach, either side).
const STABLE_TO: f64 = 0.02;

/// What one leg (a tool, or nothing) measured over the rounds of one workload.
#[derive(Default)]
struct Leg {
    rates: Vec<f64>,
    /// Per round: this leg's rate over the same round's rate with nothing attached.
    ratios: Vec<f64>,
    /// Per round: the tool's own CPU seconds per unit of work.
    tool_cpu: Vec<f64>,
    /// Per round: host CPU per unit of work, minus the same round's with nothing attached.
    host_cpu_added: Vec<f64>,
    events: u64,
    lost: u64,
    /// The tool's CPU seconds and events over every round (for CPU per event).
    cpu_total: f64,
    /// Per round: RSS growth in bytes per held connection.
    rss_per_conn: Vec<f64>,
    /// From the cost leg: the kernel programs' seconds per unit of work, and each program.
    kernel_cpu: Option<f64>,
    progs: Vec<ProgCost>,
}

pub fn run(opts: &Options) -> Result<()> {
    if opts.rounds == 0 || opts.seconds.is_nan() || opts.seconds <= 0.0 {
        bail!("--rounds must be at least 1 and --seconds positive");
    }
    if let Some(bin) = &opts.baseline {
        if !bin.is_file() {
            bail!(
                "--baseline {}: no such file (give a tracer binary, e.g. a build of main)",
                bin.display()
            );
        }
    }
    let tracer = build::tracer()?;
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tools = Vec::new();
    for kind in &opts.tools {
        match kind {
            ToolKind::Tracer => {
                tools.push(Tool::Tracer { name: "tracer", bin: tracer.clone() });
                if let Some(bin) = &opts.baseline {
                    tools.push(Tool::Tracer { name: "baseline", bin: bin.clone() });
                }
            }
            ToolKind::Bpftrace => tools.push(Tool::Bpftrace),
            ToolKind::Tcpdump => tools.push(Tool::Tcpdump),
            ToolKind::Floor => tools.push(Tool::Floor { bin: tracer.clone() }),
        }
    }
    let mut workloads: Vec<Box<dyn Workload>> = Vec::new();
    for kind in &opts.workloads {
        workloads.push(match kind {
            WorkloadKind::Bulk => Box::new(Bulk::start()?),
            WorkloadKind::Http => Box::new(Http::start(&dir)?),
            WorkloadKind::Held => Box::new(Held::default()),
        });
    }
    let names: Vec<&str> = tools.iter().map(Tool::name).collect();
    eprintln!(
        "xtask: bench: {} rounds of {} s per leg; workloads {}; legs nothing, {}",
        opts.rounds,
        opts.seconds,
        workloads.iter().map(|w| w.name()).collect::<Vec<_>>().join(", "),
        names.join(", ")
    );
    let started = Instant::now();
    // legs[w][0] is "nothing attached", legs[w][1 + t] is tools[t].
    let mut legs: Vec<Vec<Leg>> =
        workloads.iter().map(|_| (0..=tools.len()).map(|_| Leg::default()).collect()).collect();
    for round in 1..=opts.rounds {
        for (w, workload) in workloads.iter_mut().enumerate() {
            let legs = &mut legs[w];
            // Which leg goes first rotates from round to round: the first run of a round is
            // often faster or slower for reasons of its own, and that must not land on one leg.
            let n = tools.len() + 1;
            let order: Vec<usize> = (0..n).map(|i| (i + round as usize) % n).collect();
            let mut samples: Vec<Option<(Sample, Option<Report>)>> = (0..n).map(|_| None).collect();
            for i in order {
                let tool = i.checked_sub(1).map(|t| &tools[t]);
                let (sample, report, _) = leg(workload.as_mut(), tool, opts.seconds, &dir, false)
                    .with_context(|| {
                    format!("{} with {}", workload.name(), tool.map_or("nothing", Tool::name))
                })?;
                samples[i] = Some((sample, report));
            }
            let samples: Vec<(Sample, Option<Report>)> = samples.into_iter().flatten().collect();
            let base = &samples[0].0;
            let mut line = format!(
                "  round {round} {}: nothing {}{}",
                workload.name(),
                show_rate(workload.name(), base.rate),
                note(&base.note)
            );
            legs[0].rates.push(base.rate);
            for (t, (sample, report)) in samples.iter().enumerate().skip(1) {
                let leg = &mut legs[t];
                let r = ratio(sample.rate, base.rate).unwrap_or(f64::NAN);
                leg.rates.push(sample.rate);
                leg.ratios.push(r);
                leg.host_cpu_added.push(sample.host_cpu / sample.work - base.host_cpu / base.work);
                if let Some(report) = report {
                    leg.tool_cpu.push(report.cpu / sample.work);
                    leg.cpu_total += report.cpu;
                    leg.events += report.events.unwrap_or(0);
                    leg.lost += report.lost.unwrap_or(0);
                    // Only the tracer keeps per-connection state in its own memory (bpftrace's
                    // maps are kernel memory).
                    let is_tracer = tools[t - 1].is_tracer();
                    if workload.name() == "held" && is_tracer && report.rss_at_peak > 0 {
                        let grown = report.rss_at_peak.saturating_sub(report.rss_at_mark);
                        leg.rss_per_conn.push(grown as f64 * 1024.0 / f64::from(HELD));
                    }
                }
                line.push_str(&format!(
                    "; {} {} ratio {r:.3} ({}){}",
                    names[t - 1],
                    show_rate(workload.name(), sample.rate),
                    report.as_ref().map_or("", |r| r.summary.as_str()),
                    note(&sample.note)
                ));
            }
            eprintln!("{line}");
        }
    }
    // One more leg per workload and eBPF tool with the kernel's run-time statistics on: what
    // the kernel programs cost per call and per unit of work (the statistics cost a little
    // themselves, so the rounds above run without them).
    for (w, workload) in workloads.iter_mut().enumerate() {
        for (t, tool) in tools.iter().enumerate().filter(|(_, t)| t.has_bpf_programs()) {
            let _stats = stats_on()?;
            let (sample, _, progs) = leg(workload.as_mut(), Some(tool), opts.seconds, &dir, true)
                .with_context(|| {
                format!("cost leg: {} with {}", workload.name(), tool.name())
            })?;
            let ns: u64 = progs.iter().map(|p| p.ns).sum();
            let leg = &mut legs[w][t + 1];
            leg.kernel_cpu = Some(ns as f64 / 1e9 / sample.work);
            eprintln!(
                "  cost leg {} {}: {:.0} ms per {} in kernel programs: {}",
                workload.name(),
                tool.name(),
                ns as f64 / 1e6 / sample.work,
                unit(workload.name()),
                progs
                    .iter()
                    .map(|p| format!(
                        "{} {:.0} ns/run x {}",
                        p.name,
                        p.ns as f64 / p.runs as f64,
                        p.runs
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            leg.progs = progs;
        }
    }
    eprintln!("xtask: bench: the rounds took {:.0} s", started.elapsed().as_secs_f64());
    print_table(&workloads, &names, &tools, &legs);
    drop(workloads);
    if opts.pipeline {
        crate::bench_pipeline::run(&tracer)?;
        crate::bench_memory::run(&tracer)?;
    }
    Ok(())
}

/// One leg: the tool started and attached (if any), the workload run, the tool stopped.
/// With `cost`, the tool's kernel programs' run counts and times over the workload too.
fn leg(
    workload: &mut dyn Workload,
    tool: Option<&Tool>,
    secs: f64,
    dir: &std::path::Path,
    cost: bool,
) -> Result<(Sample, Option<Report>, Vec<ProgCost>)> {
    let Some(tool) = tool else {
        let others = tracer_packet_programs();
        let sample = workload.run(secs, &mut || {});
        workload.finish();
        let mut sample = sample?;
        if others > 0 {
            // Another session's tracer is attached: every leg of this round pays for it.
            sample.note += &format!(
                "{}{others} foreign tracer programs attached",
                if sample.note.is_empty() { "" } else { ", " }
            );
        }
        return Ok((sample, None, Vec::new()));
    };
    let mut running = tool.start(dir)?;
    let pid = running.pid();
    let before = if cost { prog_counters(pid) } else { Default::default() };
    running.mark();
    let mut peak = 0;
    let sample = workload.run(secs, &mut || peak = process_rss_kib(pid).unwrap_or(0));
    let progs = if cost { prog_delta(&before, &prog_counters(pid)) } else { Vec::new() };
    let report = running.stop(peak);
    workload.finish();
    Ok((sample?, Some(report?), progs))
}

fn note(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" [{text}]")
    }
}

fn show_rate(workload: &str, rate: f64) -> String {
    match workload {
        "bulk" => format!("{:.2} Gbit/s", rate * 8.0 / 1e9),
        "http" => format!("{rate:.0} req/s"),
        _ => format!("{rate:.0} conn/s"),
    }
}

/// The unit of work CPU costs are given per.
fn unit(workload: &str) -> &'static str {
    if workload == "bulk" {
        "GB"
    } else {
        "1k conns"
    }
}

const HOW_TO_READ: &str = "\
How to read: each round runs every leg once (nothing attached, then each tool), in an order
that rotates from round to round. ratio = the leg's rate / the same round's rate with nothing
attached (bulk: bytes/s, http: requests/s, held: new connections/s); the median of the rounds'
ratios, how far its 95 % confidence interval reaches (+-, from the rounds' order statistics;
none below 6 rounds), and the lowest and highest round in brackets. CPU figures are per GB moved
(bulk) or per 1,000 connections (http, held), over nothing attached: 'tool CPU' = the tool's kernel programs
(BPF run-time statistics, from one extra leg with them on) + its own process (/proc/PID/stat);
tcpdump's copy of each packet in the kernel is not in it. 'host CPU' = the whole host's busy time
over nothing attached's (median of per-round differences; it includes everything, noise too).
events / lost: the tracer's closing line (events read, lost in the ring buffer), bpftrace's printed
lines and 'Lost N events', tcpdump's packets captured and dropped by the kernel, over all rounds.
floor: empty programs where the tracer's packet and lifecycle hooks attach (what the hooks
themselves cost). Figures that miss a target (tracer >= 0.97x bulk, >= 0.95x http, at or above
tcpdump's ratio, zero lost at 20,000 held + 10,000 new connections/s, each median known to
+-0.02) say MISS.";

fn print_table(workloads: &[Box<dyn Workload>], names: &[&str], tools: &[Tool], legs: &[Vec<Leg>]) {
    println!("\n{HOW_TO_READ}\n");
    println!(
        "{:<5} {:<9} {:>12} {:<32} {:>14} {:>14} {:>11} {:>9} {:>10} {:>9}",
        "load",
        "leg",
        "rate",
        "ratio +-95% (range)",
        "tool CPU",
        "host CPU",
        "events",
        "lost",
        "CPU/event",
        "RSS/conn"
    );
    for (w, workload) in workloads.iter().enumerate() {
        let name = workload.name();
        let tcpdump_ratio = tools
            .iter()
            .position(|t| matches!(t, Tool::Tcpdump))
            .and_then(|t| median(&legs[w][t + 1].ratios));
        let mut misses = Vec::new();
        for (i, leg) in legs[w].iter().enumerate() {
            let tool = i.checked_sub(1).map(|t| &tools[t]);
            let leg_name = tool.map_or("nothing", |_| names[i - 1]);
            let rate = median(&leg.rates).map_or("-".to_string(), |r| show_rate(name, r));
            let per = unit(name);
            let ms =
                |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0} ms/{per}", v * 1e3));
            let tool_cpu = tool.map(|t| {
                let agent = median(&leg.tool_cpu).unwrap_or(0.0);
                match (t.has_bpf_programs(), leg.kernel_cpu) {
                    (true, Some(k)) => Some(agent + k),
                    (true, None) => None,
                    (false, _) => Some(agent),
                }
            });
            let per_event = (leg.events > 0 && tool.is_some_and(Tool::is_tracer))
                .then(|| format!("{:.2} us", leg.cpu_total / leg.events as f64 * 1e6));
            let rss = median(&leg.rss_per_conn).map(|b| format!("{b:.0} B"));
            println!(
                "{:<5} {:<9} {:>12} {:<32} {:>14} {:>14} {:>11} {:>9} {:>10} {:>9}",
                name,
                leg_name,
                rate,
                if tool.is_some() {
                    median_reach_and_range(&leg.ratios)
                } else {
                    "1 (reference)".into()
                },
                tool_cpu.map_or("-".to_string(), ms),
                if tool.is_some() { ms(median(&leg.host_cpu_added)) } else { "-".into() },
                if tool.is_some() { leg.events.to_string() } else { "-".into() },
                if tool.is_some() { leg.lost.to_string() } else { "-".into() },
                per_event.unwrap_or_else(|| "-".into()),
                rss.unwrap_or_else(|| "-".into()),
            );
            if tool.is_some_and(Tool::is_tracer) {
                misses.extend(check_targets(name, leg_name, leg, tcpdump_ratio));
            }
            if name == "held" {
                if let Some(r) = median(&leg.rates) {
                    if r < CHURN_TARGET * 0.98 {
                        misses.push(format!(
                            "MISS held {leg_name}: churn reached {r:.0} new connections/s, not the {CHURN_TARGET:.0}/s target"
                        ));
                    }
                }
            }
        }
        for m in misses {
            println!("{m}");
        }
        if let Some(f) = tools.iter().position(|t| matches!(t, Tool::Floor { .. })) {
            for (t, _) in tools.iter().enumerate().filter(|(_, t)| t.is_tracer()) {
                let over_floor = per_round_quotient(&legs[w][t + 1].ratios, &legs[w][f + 1].ratios);
                println!(
                    "  ({name} {}: its rate over the floor's, round by round: {}; the rest of its \
                     cost is the attach points' own)",
                    names[t],
                    median_reach_and_range(&over_floor)
                );
            }
        }
        if workloads.len() > 1 {
            println!();
        }
    }
}

/// Each round's `a` over the same round's `b` (two legs' ratios to nothing attached: their
/// rates' quotient in that round).
fn per_round_quotient(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).filter(|(_, b)| **b > 0.0).map(|(a, b)| a / b).collect()
}

/// The targets for a tracer leg of `workload`: each miss as a line (and a note when the run
/// cannot tell).
fn check_targets(workload: &str, leg_name: &str, leg: &Leg, tcpdump: Option<f64>) -> Vec<String> {
    let mut misses = Vec::new();
    let target = match workload {
        "bulk" => Some(BULK_TARGET),
        "http" => Some(HTTP_TARGET),
        _ => None,
    };
    let ratio = median(&leg.ratios);
    if let (Some(t), Some(r)) = (target, ratio) {
        if r < t {
            misses.push(format!(
                "MISS {workload} {leg_name}: median ratio {r:.3} below the {t} target"
            ));
        }
        if let Some(d) = tcpdump {
            if r < d {
                misses.push(format!(
                    "MISS {workload} {leg_name}: median ratio {r:.3} below tcpdump's {d:.3}"
                ));
            }
        }
        misses.extend(check_stable(workload, leg_name, &leg.ratios, t));
    }
    if workload == "held" && leg.lost > 0 {
        misses.push(format!(
            "MISS held {leg_name}: {} events lost at {HELD} held connections plus churn",
            leg.lost
        ));
    }
    misses
}

/// Whether the median ratio is known to +-STABLE_TO, and whether this run can tell the target's
/// side of it: each shortfall as a line, with the rounds the interval's width suggests (it
/// narrows about as the square root of the rounds).
fn check_stable(workload: &str, leg_name: &str, ratios: &[f64], target: f64) -> Vec<String> {
    let rounds = ratios.len();
    let Some(reach) = median_half_width(ratios) else {
        return vec![format!(
            "MISS {workload} {leg_name}: {rounds} rounds give no 95 % interval for the median \
             (6 at least; --rounds)"
        )];
    };
    let mut misses = Vec::new();
    if reach > STABLE_TO {
        let needed = (rounds as f64 * (reach / STABLE_TO).powi(2)).ceil();
        misses.push(format!(
            "MISS {workload} {leg_name}: the median ratio is known to +-{reach:.3} (95 %), not \
             +-{STABLE_TO}: this host's rounds scatter too much; about {needed:.0} rounds would \
             be needed"
        ));
    }
    if let Some((lo, hi)) = median_interval(ratios).filter(|(lo, hi)| (*lo..=*hi).contains(&target))
    {
        misses.push(format!(
            "  ({workload} {leg_name}: the {target} target lies within the median's 95 % \
             interval, {lo:.3}-{hi:.3}: this run cannot tell whether it is met)"
        ));
    }
    misses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracer_over_the_floor_is_taken_round_by_round() {
        // Rounds scatter together: round 2 is slow for both legs, yet the quotient holds.
        let q = per_round_quotient(&[0.9, 0.45, 0.88], &[1.0, 0.5, 0.0]);
        assert_eq!(q.len(), 2, "a round without the floor's rate is left out");
        assert!((q[0] - 0.9).abs() < 1e-9 && (q[1] - 0.9).abs() < 1e-9, "{q:?}");
    }

    #[test]
    fn targets_and_tcpdump() {
        let leg = Leg { ratios: vec![0.99, 0.995, 0.985, 0.99, 1.0, 0.98], ..Leg::default() };
        assert!(check_targets("bulk", "tracer", &leg, Some(0.97)).is_empty());
        let misses = check_targets("bulk", "tracer", &leg, Some(1.01));
        assert_eq!(misses.len(), 1, "{misses:?}");
        assert!(misses[0].contains("tcpdump"));
        let slow = Leg { ratios: vec![0.90, 0.91, 0.92, 0.91, 0.90, 0.92], ..Leg::default() };
        assert_eq!(check_targets("http", "tracer", &slow, None).len(), 1);
        let lossy = Leg { lost: 3, ..Leg::default() };
        assert_eq!(check_targets("held", "tracer", &lossy, None).len(), 1);
    }

    #[test]
    fn stability_of_the_median() {
        // Six rounds within 0.01 of 0.99: known well enough, and clear of the 0.97 target.
        let tight = [0.985, 0.99, 0.995, 0.99, 0.98, 1.0];
        assert!(check_stable("bulk", "tracer", &tight, BULK_TARGET).is_empty());
        // Rounds from 0.7 to 1.25 (this host on a bad day): unstable, and the target is inside.
        let wide = [0.7, 0.93, 1.25, 0.9, 1.1, 0.95, 0.8];
        let lines = check_stable("http", "tracer", &wide, HTTP_TARGET);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("MISS http tracer: the median ratio is known to"));
        assert!(lines[1].contains("cannot tell"));
        // Too few rounds for an interval at all.
        assert_eq!(check_stable("http", "tracer", &[0.96; 3], HTTP_TARGET).len(), 1);
    }
}
