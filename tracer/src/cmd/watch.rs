//! `tracer watch`: stream flow-control events until the duration ends, Ctrl-C or SIGTERM.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    time::sleep,
};

use super::session::{describe, Options, Session};
use crate::{
    alerts::Thresholds,
    cli::{MetricsArgs, ServeArgs, WatchArgs, DEFAULT_WINDOW_SHIFT},
    events::{kernel_log::KernelLog, reader::Reader, totals::KernelTotals, Decoder},
    host::{clock::now_ns, procfs::os_release},
    metrics,
    output::{json::Json, terminal::Terminal, Show},
    pipeline::{
        live::{Live, Warnings},
        Pipeline,
    },
    record::{self, Recorder},
    timeline::{ConnTable, Limits},
};

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
        window_shift: DEFAULT_WINDOW_SHIFT,
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

async fn watch(
    args: WatchArgs,
    thresholds: Thresholds,
    metrics_addr: Option<SocketAddr>,
    output: Output,
) -> Result<()> {
    let mut session = Session::start(&Options {
        hooks: args.hooks.hooks.into(),
        ports: args.filter.ports.clone(),
        pid: args.filter.pid,
        window_shift: args.window_shift,
        every_connection: args.filter.every_connection(),
        report_below_pct: args.filter.report_below,
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
    let mut pipeline = Pipeline::with_table(thresholds, table(args.filter.max_connections));
    if let Some(path) = &output.record {
        pipeline.add(Box::new(Recorder::create(path, &header(&session))?));
    }
    let show = Show { events: output.events, summary: !args.alerts.no_summary };
    if args.json {
        pipeline.add(Box::new(Json::new(show)));
    } else {
        pipeline.add(Box::new(Terminal::new(show)));
    }
    let totals = Arc::new(KernelTotals::take(&mut session.ebpf)?);
    if let Some(addr) = metrics_addr {
        let per_connection = args.metrics.metrics_per_connection;
        let max_connections = args.filter.max_connections;
        let totals = Some(Arc::clone(&totals));
        let serve = super::serve_metrics(addr, per_connection, true, max_connections, totals);
        pipeline.add(Box::new(serve.await?));
    }
    let reader = Reader::new(&mut session.ebpf)?;
    // Kernel-side diagnostics (aya-log); an object without log statements has nothing to read.
    let mut kernel_log = aya_log::EbpfLogger::init_with_logger(&mut session.ebpf, KernelLog).ok();
    let mut live = Live::new(reader, Decoder::new(session.facts.clone()), Warnings::Stderr);
    let quiet = !args.filter.every_connection();
    eprintln!(
        "tracer: attached; tracing (Ctrl-C to stop){}",
        if quiet {
            "; healthy connections stay quiet until their first flow-control moment \
             (--every-connection shows all)"
        } else {
            ""
        }
    );

    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
    let deadline = sleep(args.duration.map_or(Duration::MAX / 4, Duration::from_secs_f64));
    tokio::pin!(deadline);

    let stop = loop {
        let step = tokio::select! {
            due = live.due() => {
                if let Some(log) = kernel_log.as_mut() {
                    log.flush();
                }
                live.run(due, &mut pipeline, now_ns())
            }
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
        None => live.finish(&mut pipeline, now_ns()),
        Some(e) => Err(e),
    };
    let counts = live.counts();
    let mut more = String::new();
    if counts.untracked > 0 {
        more += &format!(", {} connections not tracked (per-socket table full)", counts.untracked);
    }
    if counts.evicted > 0 {
        more += &format!(", {} connections evicted (agent table full)", counts.evicted);
    }
    let totals = totals.read();
    if quiet {
        more += &format!(", {} sockets opened, {} reported", totals.opened(), totals.reported());
    }
    let missed = totals.missed_runs_total();
    if missed > 0 {
        more += &format!(
            ", {missed} kernel program runs skipped (nested on one CPU; \
             tcp_flow_host_program_runs_missed_total names them)"
        );
    }
    if let Some(ns) = counts.cpu_per_event_ns() {
        more += &format!("; agent {ns:.0} ns of CPU per event");
    }
    eprintln!(
        "tracer: detached; {} events, {} lost, {} undecodable{more}",
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

/// The connection table, keeping at most `max_connections` live ones.
pub fn table(max_connections: usize) -> ConnTable {
    ConnTable::with_limits(Limits { live_capacity: max_connections, ..Limits::default() })
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
    record::Header {
        format: record::FORMAT.into(),
        version: record::VERSION,
        kernel: os_release().unwrap_or_default(),
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
