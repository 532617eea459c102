//! `tracer watch`: stream flow-control events until the duration ends, Ctrl-C or SIGTERM.

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::{
    signal::unix::{signal, SignalKind},
    time::{interval, sleep, MissedTickBehavior},
};

use super::session::{describe, Options, Session};
use crate::{
    cli::WatchArgs,
    events::{kernel_log::KernelLog, reader::Reader, Decoder},
    output::{json::Json, terminal::Terminal, Sink},
};

/// How often the ring buffer is drained (the kernel side never wakes us).
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// How often the loss counters are read.
const LOSS_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: WatchArgs) -> Result<()> {
    if let Some(d) = args.duration {
        if !(d > 0.0 && d.is_finite()) {
            bail!("--duration must be a positive number of seconds (got {d})");
        }
    }
    if args.window_shift > 16 {
        bail!("--window-shift must be between 0 and 16 (got {})", args.window_shift);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(watch(args))
}

async fn watch(args: WatchArgs) -> Result<()> {
    let mut session = Session::start(&Options {
        hooks: args.hooks.hooks,
        ports: args.ports.clone(),
        pid: args.pid,
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
    let mut reader = Reader::new(&mut session.ebpf)?;
    // Kernel-side diagnostics (aya-log); an object without log statements has nothing to read.
    let mut kernel_log = aya_log::EbpfLogger::init_with_logger(&mut session.ebpf, KernelLog).ok();
    let mut decoder = Decoder::new(session.facts.clone());
    let mut sink: Box<dyn Sink> =
        if args.json { Box::new(Json::new()) } else { Box::new(Terminal::new()) };
    eprintln!("tracer: attached; tracing (Ctrl-C to stop)");

    let mut sigint = signal(SignalKind::interrupt()).context("failed to watch for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
    let deadline = sleep(args.duration.map_or(Duration::MAX / 4, Duration::from_secs_f64));
    tokio::pin!(deadline);
    let mut drain = interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut loss = interval(LOSS_EVERY);
    let mut lost_reported = 0u64;
    let mut bad_records = 0u64;
    let mut seen = 0u64;

    // Drains the ring into the sink; Err when the output is gone (closed pipe).
    let mut pump = |reader: &mut Reader, sink: &mut dyn Sink| -> std::io::Result<()> {
        let mut result = Ok(());
        reader.drain(|bytes| match decoder.decode(bytes) {
            Ok(events) => {
                seen += events.len() as u64;
                for e in &events {
                    if result.is_ok() {
                        result = sink.event(e);
                    }
                }
            }
            Err(e) => {
                bad_records += 1;
                if bad_records <= 3 {
                    eprintln!("tracer: warning: undecodable record skipped: {e}");
                }
            }
        });
        result.and_then(|()| sink.flush())
    };
    let mut check_loss = |reader: &Reader, sink: &mut dyn Sink| -> std::io::Result<()> {
        let total = reader.lost_total();
        if total > lost_reported {
            sink.lost(total - lost_reported, total)?;
            lost_reported = total;
        }
        Ok(())
    };

    let mut output_open = true;
    while output_open {
        tokio::select! {
            _ = drain.tick() => {
                output_open = pump(&mut reader, sink.as_mut()).is_ok();
                if let Some(log) = kernel_log.as_mut() {
                    log.flush();
                }
            }
            _ = loss.tick() => output_open = check_loss(&reader, sink.as_mut()).is_ok(),
            _ = &mut deadline => break,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    if args.prog_stats {
        print_prog_stats(&session.ebpf);
    }
    // Detach first so nothing arrives after the final drain.
    let Session { ebpf, .. } = session;
    drop(ebpf);
    if output_open {
        // The output may close now too: nothing more to do about it then.
        let _ = pump(&mut reader, sink.as_mut());
        let _ = check_loss(&reader, sink.as_mut());
    } else {
        eprintln!("tracer: the output was closed; stopping");
    }
    drop(pump);
    let lost = reader.lost_total();
    eprintln!("tracer: detached; {seen} events, {lost} lost, {bad_records} undecodable");
    Ok(())
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
