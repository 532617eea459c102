//! `tracer watch`: stream flow-control events until the duration ends, Ctrl-C or SIGTERM.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    time::{interval, sleep, MissedTickBehavior},
};

use super::{
    now_ns,
    session::{describe, Options, Session},
};
use crate::{
    alerts::Thresholds,
    cli::{MetricsArgs, ServeArgs, WatchArgs},
    events::{kernel_log::KernelLog, reader::Reader, Decoder},
    metrics::{self, Metrics, SharedMetrics},
    output::{json::Json, terminal::Terminal, Sink},
    pipeline::Pipeline,
    record::{self, Recorder},
};
use tracer_common::config::RING_BYTES;

/// How often the ring buffer is drained (the kernel side never wakes us).
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// Time-based alerts are checked this far behind the clock, so that an event still waiting in
/// the ring buffer (drained every DRAIN_EVERY) can end a condition before its threshold fires.
const ALERT_LAG: Duration = Duration::from_millis(100);
/// How often time-based alerts and the loss counters are checked.
const TICK_EVERY: Duration = Duration::from_millis(250);

/// What a tracing session prints and keeps, besides the alerts and the summary.
pub struct Output {
    /// Print every event (watch), or only alerts and the summary (record, serve).
    pub events: bool,
    /// Write the events to this recording.
    pub record: Option<PathBuf>,
}

pub fn run(args: WatchArgs, output: Output) -> Result<()> {
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds (got {d})");
        }
    }
    if args.window_shift > 16 {
        bail!("--window-shift must be between 0 and 16 (got {})", args.window_shift);
    }
    // Bad thresholds and addresses are reported before anything is attached.
    let thresholds = Thresholds::load(args.alerts.config.as_deref(), &args.alerts.alerts)?;
    let metrics_addr = args.metrics.metrics.as_deref().map(metrics::parse_addr).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(watch(args, thresholds, metrics_addr, output))
}

/// `tracer serve`: headless tracing with a Prometheus endpoint; alerts go to stdout as NDJSON
/// (for the journal), events only to the metrics.
pub fn serve(args: ServeArgs) -> Result<()> {
    let watch_args = WatchArgs {
        json: true,
        filter: args.filter,
        duration: None,
        window_shift: 3,
        prog_stats: false,
        metrics: MetricsArgs {
            metrics: Some(args.metrics),
            metrics_per_connection: args.metrics_per_connection,
        },
        hooks: args.hooks,
        alerts: args.alerts,
    };
    run(watch_args, Output { events: false, record: None })
}

/// Binds the metrics endpoint and serves it in the background. Live, so process names can be
/// looked up in /proc for sockets whose events carry only a pid so far.
pub async fn start_metrics(addr: SocketAddr, per_connection: bool) -> Result<SharedMetrics> {
    let shared = SharedMetrics::new(Metrics::new(per_connection).with_proc_names(true));
    let listener = metrics::bind(addr).await?;
    let bound = listener.local_addr().unwrap_or(addr);
    eprintln!("tracer: Prometheus metrics on http://{bound}/metrics");
    tokio::spawn(metrics::serve(listener, shared.clone()));
    Ok(shared)
}

async fn watch(
    args: WatchArgs,
    thresholds: Thresholds,
    metrics_addr: Option<SocketAddr>,
    output: Output,
) -> Result<()> {
    let mut session = Session::start(&Options {
        hooks: args.hooks.hooks,
        ports: args.filter.ports.clone(),
        pid: args.filter.pid,
        window_shift: args.window_shift,
        socket_map_entries: args.hooks.socket_map_entries,
    })?;
    // Held for the session: the kernel counts program run time while this descriptor is open.
    let _stats = if args.prog_stats {
        Some(
            aya::sys::enable_stats(aya::sys::Stats::RunTime)
                .context("failed to enable BPF run-time statistics")?,
        )
    } else {
        None
    };
    eprint!("{}", describe(&session.attached, &session.facts));
    for row in session.attached.missing() {
        eprintln!(
            "tracer: warning: no hook for {} on this kernel: it will not be reported",
            row.signal.name()
        );
    }
    let recorder = match &output.record {
        Some(path) => Some(Recorder::create(path, &header(&session))?),
        None => None,
    };
    let mut reader = Reader::new(&mut session.ebpf)?;
    // Kernel-side diagnostics (aya-log); an object without log statements has nothing to read.
    let mut kernel_log = aya_log::EbpfLogger::init_with_logger(&mut session.ebpf, KernelLog).ok();
    let mut decoder = Decoder::new(session.facts.clone());
    let sink: Box<dyn Sink> =
        if args.json { Box::new(Json::new()) } else { Box::new(Terminal::new()) };
    let mut pipeline =
        Pipeline::new(thresholds, sink, recorder, output.events, !args.alerts.no_summary);
    let metrics = match metrics_addr {
        Some(addr) => Some(start_metrics(addr, args.metrics.metrics_per_connection).await?),
        None => None,
    };
    if let Some(m) = &metrics {
        pipeline.observe(Box::new(m.clone()));
    }
    eprintln!("tracer: attached; tracing (Ctrl-C to stop)");

    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
    let deadline = sleep(args.duration.map_or(Duration::MAX / 4, Duration::from_secs_f64));
    tokio::pin!(deadline);
    let mut drain = interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tick = interval(TICK_EVERY);
    let mut counts = Counts::default();

    let stop = loop {
        let step = tokio::select! {
            _ = drain.tick() => {
                if let Some(log) = kernel_log.as_mut() {
                    log.flush();
                }
                pump(&mut reader, &mut decoder, &mut pipeline, &mut counts, metrics.as_ref())
            }
            _ = tick.tick() => pipeline
                .tick(now_ns().saturating_sub(ALERT_LAG.as_nanos() as u64))
                .and_then(|()| counts.check_loss(&reader, &mut pipeline)),
            _ = &mut deadline => break None,
            _ = sigint.recv() => break None,
            _ = sigterm.recv() => break None,
        };
        if let Err(e) = step {
            break Some(e);
        }
    };
    if args.prog_stats {
        print_prog_stats(&session.ebpf);
    }
    // Detach first so nothing arrives after the final drain.
    let Session { ebpf, .. } = session;
    drop(ebpf);
    let result = match stop {
        None => pump(&mut reader, &mut decoder, &mut pipeline, &mut counts, metrics.as_ref())
            .and_then(|()| counts.check_loss(&reader, &mut pipeline))
            .and_then(|()| pipeline.finish(now_ns())),
        Some(e) => Err(e),
    };
    let untracked = reader.table_full_total();
    let untracked = if untracked > 0 {
        format!(", {untracked} connections not tracked (per-socket table full)")
    } else {
        String::new()
    };
    eprintln!(
        "tracer: detached; {} events, {} lost, {} undecodable{untracked}",
        counts.seen, counts.lost, counts.bad
    );
    match result {
        // `tracer watch | head`: the reader went away, which is how a pipe ends.
        Err(e) if super::is_broken_pipe(&e) => {
            eprintln!("tracer: the output was closed; stopped");
            Ok(())
        }
        other => other,
    }
}

#[derive(Default)]
pub struct Counts {
    pub seen: u64,
    pub lost: u64,
    pub bad: u64,
    pub untracked: u64,
    pub untracked_warned: Option<Instant>,
}

/// How often the "connections not tracked" warning may repeat while the count grows.
const UNTRACKED_WARN_EVERY: Duration = Duration::from_secs(10);

impl Counts {
    /// Reports ring-buffer loss, and connections left untracked, since the last check.
    pub fn check_loss(&mut self, reader: &Reader, pipeline: &mut Pipeline) -> Result<()> {
        let total = reader.lost_total();
        if total > self.lost {
            let new = total - self.lost;
            self.lost = total;
            pipeline.lost(now_ns(), new, total)?;
        }
        let untracked = reader.table_full_total();
        let quiet = self.untracked_warned.is_some_and(|at| at.elapsed() < UNTRACKED_WARN_EVERY);
        if untracked > self.untracked && !quiet {
            eprintln!(
                "tracer: warning: {untracked} connection(s) opened since attach are not tracked: \
                 the kernel's per-socket table is full, so their open, close, reads and buffer \
                 changes are not reported (windows and probes still are, except with --hooks \
                 kprobe)"
            );
            self.untracked = untracked;
            self.untracked_warned = Some(Instant::now());
        }
        Ok(())
    }
}

/// Drains the ring into the pipeline.
pub fn pump(
    reader: &mut Reader,
    decoder: &mut Decoder,
    pipeline: &mut Pipeline,
    counts: &mut Counts,
    metrics: Option<&SharedMetrics>,
) -> Result<()> {
    let mut result = Ok(());
    let mut events_now = 0u64;
    let ring_bytes = reader.drain(|bytes| match decoder.decode(bytes) {
        Ok(events) => {
            counts.seen += events.len() as u64;
            events_now += events.len() as u64;
            for e in &events {
                if result.is_ok() {
                    result = pipeline.event(e);
                }
            }
        }
        Err(e) => {
            counts.bad += 1;
            if counts.bad <= 3 {
                eprintln!("tracer: warning: undecodable record skipped: {e}");
            }
        }
    });
    if let Some(m) = metrics {
        m.lock().on_drain(events_now, ring_bytes, RING_BYTES as usize);
    }
    result.and_then(|()| pipeline.flush())
}

/// The recording's header: this kernel and the hooks in use.
fn header(session: &Session) -> record::Header {
    let hooks = session
        .attached
        .rows
        .iter()
        .map(|r| {
            let hook = r.chosen.map_or("unavailable".to_string(), |h| h.label());
            (r.signal.name().to_string(), hook)
        })
        .collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    record::Header {
        format: record::FORMAT.into(),
        version: record::VERSION,
        kernel: kernel.trim().to_string(),
        started_ns: now_ns(),
        hooks,
    }
}

/// One line per loaded kernel program: runs and average cost (BPF run-time statistics).
fn print_prog_stats(ebpf: &aya::Ebpf) {
    for (name, prog) in ebpf.programs() {
        let Ok(info) = prog.info() else { continue };
        let runs = info.run_count();
        let total = info.run_time();
        let avg = if runs > 0 { total.as_nanos() as f64 / runs as f64 } else { 0.0 };
        eprintln!(
            "tracer: program {name}: {runs} runs, {avg:.0} ns/run, {:.3} s in all",
            total.as_secs_f64()
        );
    }
}
