//! `tracer replay FILE`: a recording through the same pipeline as live tracing, without root.

use anyhow::Result;

use crate::{
    alerts::Thresholds,
    cli::ReplayArgs,
    output::{json::Json, terminal::Terminal, Sink},
    pipeline::Pipeline,
    record::{Item, Reader},
};

pub fn run(args: ReplayArgs) -> Result<()> {
    let thresholds = Thresholds::load(args.alerts.config.as_deref(), &args.alerts.alerts)?;
    let mut reader = Reader::open(&args.file)?;
    let sink: Box<dyn Sink> =
        if args.json { Box::new(Json::new()) } else { Box::new(Terminal::new()) };
    let mut pipeline =
        Pipeline::new(thresholds, sink, None, !args.no_events, !args.alerts.no_summary);
    let header = reader.header.clone();
    if !args.json {
        eprintln!(
            "tracer: replaying {} (recorded on kernel {})",
            args.file.display(),
            header.kernel
        );
    }
    // The summary is as of the last thing recorded, so the output depends on the file alone.
    let mut last_ns = header.started_ns;
    let mut lost_total = 0;
    let mut events_read = 0u64;
    let outcome = loop {
        match reader.next_item() {
            Ok(Some(Item::Event(e))) => {
                last_ns = last_ns.max(e.ts_ns);
                events_read += 1;
                pipeline.event(&e)?;
            }
            Ok(Some(Item::Lost { ts_ns, count })) => {
                lost_total += count;
                last_ns = last_ns.max(ts_ns);
                pipeline.lost(ts_ns, count, lost_total)?;
            }
            Ok(Some(Item::End { events, lost })) => {
                if events != events_read || lost != lost_total {
                    eprintln!(
                        "tracer: warning: the trailer counts {events} events and {lost} lost, \
                         but {events_read} events and {lost_total} lost were read"
                    );
                }
            }
            Ok(None) => break Ok(()),
            Err(broken) => break Err(broken),
        }
    };
    pipeline.finish(last_ns)?;
    if outcome.is_ok() && !reader.ended() {
        eprintln!(
            "tracer: warning: {} has no end-of-recording trailer: the recorder stopped abruptly, \
             so the last moments may be missing",
            args.file.display()
        );
    }
    outcome.map_err(Into::into)
}
