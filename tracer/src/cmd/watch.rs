//! `tracer watch`: stream flow-control events until the duration ends, Ctrl-C or SIGTERM.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    time::{interval, sleep, MissedTickBehavior},
};

use super::{
    now_ns,
    session::{describe, Options, Session},
    thresholds,
};
use crate::{
    alerts::Thresholds,
    cli::WatchArgs,
    events::{kernel_log::KernelLog, reader::Reader, Decoder},
    output::{json::Json, terminal::Terminal, Sink},
    pipeline::Pipeline,
    record::{self, Recorder},
};

/// How often the ring buffer is drained (the kernel side never wakes us).
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// Time-based alerts are checked this far behind the clock, so that an event still waiting in
/// the ring buffer (drained every DRAIN_EVERY) can end a condition before its threshold fires.
const ALERT_LAG: Duration = Duration::from_millis(100);
/// How often time-based alerts and the loss counters are checked.
const TICK_EVERY: Duration = Duration::from_millis(250);

pub fn run(args: WatchArgs, record: Option<(PathBuf, bool)>) -> Result<()> {
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds (got {d})");
        }
    }
    if args.window_shift > 16 {
        bail!("--window-shift must be between 0 and 16 (got {})", args.window_shift);
    }
    // Bad thresholds are reported before anything is attached.
    let thresholds = thresholds(&args.alerts)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(watch(args, thresholds, record))
}

async fn watch(
    args: WatchArgs,
    thresholds: Thresholds,
    record: Option<(PathBuf, bool)>,
) -> Result<()> {
    let mut session = Session::start(&Options {
        hooks: args.hooks.hooks,
        ports: args.filter.ports.clone(),
        pid: args.filter.pid,
        window_shift: args.window_shift,
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
    let (recorder, show_events) = match &record {
        Some((path, events)) => (Some(Recorder::create(path, &header(&session))?), *events),
        None => (None, true),
    };
    let mut reader = Reader::new(&mut session.ebpf)?;
    // Kernel-side diagnostics (aya-log); an object without log statements has nothing to read.
    let mut kernel_log = aya_log::EbpfLogger::init_with_logger(&mut session.ebpf, KernelLog).ok();
    let mut decoder = Decoder::new(session.facts.clone());
    let sink: Box<dyn Sink> =
        if args.json { Box::new(Json::new()) } else { Box::new(Terminal::new()) };
    let mut pipeline =
        Pipeline::new(thresholds, sink, recorder, show_events, !args.alerts.no_summary);
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
                pump(&mut reader, &mut decoder, &mut pipeline, &mut counts)
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
        None => pump(&mut reader, &mut decoder, &mut pipeline, &mut counts)
            .and_then(|()| counts.check_loss(&reader, &mut pipeline))
            .and_then(|()| pipeline.finish(now_ns())),
        Some(e) => Err(e),
    };
    eprintln!(
        "tracer: detached; {} events, {} lost, {} undecodable",
        counts.seen, counts.lost, counts.bad
    );
    match result {
        // `tracer watch | head`: the reader went away, which is how a pipe ends.
        Err(e) if is_broken_pipe(&e) => {
            eprintln!("tracer: the output was closed; stopped");
            Ok(())
        }
        other => other,
    }
}

#[derive(Default)]
struct Counts {
    seen: u64,
    lost: u64,
    bad: u64,
}

impl Counts {
    /// Reports ring-buffer loss since the last check.
    fn check_loss(&mut self, reader: &Reader, pipeline: &mut Pipeline) -> Result<()> {
        let total = reader.lost_total();
        if total > self.lost {
            let new = total - self.lost;
            self.lost = total;
            pipeline.lost(now_ns(), new, total)?;
        }
        Ok(())
    }
}

/// Drains the ring into the pipeline.
fn pump(
    reader: &mut Reader,
    decoder: &mut Decoder,
    pipeline: &mut Pipeline,
    counts: &mut Counts,
) -> Result<()> {
    let mut result = Ok(());
    reader.drain(|bytes| match decoder.decode(bytes) {
        Ok(events) => {
            counts.seen += events.len() as u64;
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
    result.and_then(|()| pipeline.flush())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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

/// `tracer serve`: headless tracing with a Prometheus endpoint.
pub fn serve(_args: crate::cli::ServeArgs) -> Result<()> {
    bail!("tracer serve is not available yet")
}
