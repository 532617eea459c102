//! `tracer bench-pipeline` (hidden): the agent's CPU cost per event, in-process. Synthetic ring
//! records (the kernel's exact bytes) go through the live path's intake (decode), the
//! connection table, the alert engine and NDJSON output into a sink; only the thread's CPU time
//! while feeding them counts, not generating them.

use std::collections::HashMap;

use anyhow::{Context as _, Result};

use crate::{
    alerts::Thresholds,
    cli::BenchArgs,
    events::{
        decode::KernelFacts,
        synthetic::{Generator, DROP_REASON},
        Decoder,
    },
    host::clock::thread_cpu_ns,
    output::{json::Json, Show},
    pipeline::{live::Intake, Pipeline},
};

/// Records generated, then fed, at a time: about one 20 ms drain of a busy ring.
const BATCH: usize = 4096;

pub fn run(args: &BenchArgs) -> Result<()> {
    let facts = KernelFacts {
        realtime_offset_ns: 1_700_000_000_000_000_000,
        hz: Some(250),
        retries2: 15,
        drop_reasons: HashMap::from([(DROP_REASON, "TCP_ZEROWINDOW".to_string())]),
        cgroup_root: None,
        live: false,
    };
    let mut intake = Intake::new(Decoder::new(facts));
    let mut pipeline = Pipeline::new(Thresholds::default());
    let show = Show { events: true, summary: true };
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            pipeline.add(Box::new(Json::to(file, show)));
        }
        None => pipeline.add(Box::new(Json::to(std::io::sink(), show))),
    }
    let mut generator = Generator::new(args.connections);
    let (mut bytes, mut records) = (Vec::new(), Vec::new());
    let (mut events, mut fed, mut cpu_ns) = (0u64, 0u64, 0u64);
    let mut result = Ok(());
    while events < args.events {
        generator.fill(BATCH, &mut bytes, &mut records);
        let started = thread_cpu_ns();
        for &(start, len) in &records {
            match intake.record(&bytes[start..start + len], &mut pipeline, &mut result) {
                Ok(n) => events += n as u64,
                Err(e) => anyhow::bail!("a synthetic record did not decode: {e}"),
            }
        }
        intake.end_batch(&mut pipeline, &mut result);
        pipeline.flush()?;
        cpu_ns += thread_cpu_ns() - started;
        fed += records.len() as u64;
        std::mem::replace(&mut result, Ok(()))?;
    }
    let per_event = cpu_ns as f64 / events as f64;
    println!(
        "bench-pipeline: {events} events ({fed} records, {} connections at once): {per_event:.0} \
         ns of CPU per event, {:.0} events/s on one core",
        args.connections,
        1e9 / per_event
    );
    Ok(())
}
