//! The live driver: drains the kernel's ring buffer into the pipeline on a short timer, ticks
//! time-based alerts, and reports ring-buffer loss and connections the kernel could not track.
//! `watch`, `record`, `serve` and `top` all run on it.

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::time::{interval, Interval, MissedTickBehavior};
use tracer_common::config::RING_BYTES;

use super::{Drain, Pipeline};
use crate::{
    events::{decode::DecodeError, reader::Reader, Decoder, Event},
    host::clock::thread_cpu_ns,
};

/// How often the ring buffer is drained (the kernel side never wakes us).
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// How often time-based alerts and the loss counters are checked.
const TICK_EVERY: Duration = Duration::from_millis(250);
/// Time-based alerts are checked this far behind the clock, so that an event still waiting in
/// the ring buffer (drained every DRAIN_EVERY) can end a condition before its threshold fires.
const ALERT_LAG: Duration = Duration::from_millis(100);
/// How often the "connections not tracked" and "evicted" warnings may repeat while the count
/// grows.
const UNTRACKED_WARN_EVERY: Duration = Duration::from_secs(10);
/// Undecodable records described on stderr; the rest are only counted.
const UNDECODABLE_SHOWN: u64 = 3;

/// Where the driver's warnings go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Warnings {
    /// To stderr (`watch`, `record`, `serve`).
    Stderr,
    /// Only counted: a full-screen view owns the terminal (`top` shows the counts itself).
    Counted,
}

/// What the driver has seen so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Events decoded.
    pub seen: u64,
    /// Events the kernel could not queue.
    pub lost: u64,
    /// Records that could not be decoded.
    pub bad: u64,
    /// Connections the kernel's per-socket table had no room for.
    pub untracked: u64,
    /// Live connections the agent's table evicted to make room.
    pub evicted: u64,
    /// CPU time spent draining the ring into the pipeline (decode, table, alerts, outputs).
    pub drain_cpu_ns: u64,
}

impl Counts {
    /// The agent's CPU per event on the live path, ns (None before any event).
    pub fn cpu_per_event_ns(&self) -> Option<f64> {
        (self.seen > 0).then(|| self.drain_cpu_ns as f64 / self.seen as f64)
    }
}

/// Which timer is due.
pub enum Due {
    Drain,
    Tick,
}

/// The step every ring record takes into the pipeline: decoded into events held in buffers
/// reused from record to record, then handed on one by one. The live driver drains the ring
/// through it, and the pipeline bench replays synthetic records through it.
///
/// A record's events are handed on only when the next record has been decoded (or at
/// `end_batch`): meanwhile the CPU is asked to bring their connection into cache
/// (`Pipeline::prefetch`), which with tens of thousands of connections is otherwise a wait on
/// memory per event.
pub struct Intake {
    decoder: Decoder,
    /// The latest record's events, not handed on yet.
    held: Vec<Event>,
    /// The record being decoded's events.
    decoded: Vec<Event>,
}

impl Intake {
    pub fn new(decoder: Decoder) -> Self {
        Intake { decoder, held: Vec::with_capacity(2), decoded: Vec::with_capacity(2) }
    }

    /// Decodes `record`, then hands the record before it on to `pipeline`, unless `result`
    /// already holds a consumer's error (the output was closed: events are still counted, no
    /// longer fed). Returns how many events `record` held. Call `end_batch` after the last
    /// record of a batch, before anything else reaches the pipeline.
    pub fn record(
        &mut self,
        record: &[u8],
        pipeline: &mut Pipeline,
        result: &mut Result<()>,
    ) -> Result<usize, DecodeError> {
        self.decoder.decode_into(record, &mut self.decoded)?;
        if let Some(e) = self.decoded.first() {
            pipeline.prefetch(e);
        }
        self.end_batch(pipeline, result);
        std::mem::swap(&mut self.held, &mut self.decoded);
        Ok(self.held.len())
    }

    /// Hands on the events held back from the latest record.
    pub fn end_batch(&mut self, pipeline: &mut Pipeline, result: &mut Result<()>) {
        for e in &self.held {
            if result.is_ok() {
                *result = pipeline.event(e);
            }
        }
        self.held.clear();
    }
}

pub struct Live {
    reader: Reader,
    intake: Intake,
    warnings: Warnings,
    counts: Counts,
    untracked_warned: Option<(u64, Instant)>,
    evicted_warned: Option<(u64, Instant)>,
    drain: Interval,
    tick: Interval,
}

impl Live {
    pub fn new(reader: Reader, decoder: Decoder, warnings: Warnings) -> Self {
        Live {
            reader,
            intake: Intake::new(decoder),
            warnings,
            counts: Counts::default(),
            untracked_warned: None,
            evicted_warned: None,
            drain: every(DRAIN_EVERY),
            tick: every(TICK_EVERY),
        }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Waits for the next timer (cancel-safe: use it in `select!`).
    pub async fn due(&mut self) -> Due {
        tokio::select! {
            _ = self.drain.tick() => Due::Drain,
            _ = self.tick.tick() => Due::Tick,
        }
    }

    /// Does what `due` asked for; `now_ns` is the wall clock.
    pub fn run(&mut self, due: Due, pipeline: &mut Pipeline, now_ns: u64) -> Result<()> {
        match due {
            Due::Drain => self.drain(pipeline),
            Due::Tick => self.tick(pipeline, now_ns),
        }
    }

    /// Drains every pending record into the pipeline.
    pub fn drain(&mut self, pipeline: &mut Pipeline) -> Result<()> {
        let started = thread_cpu_ns();
        let mut result = Ok(());
        let mut events = 0u64;
        let Live { reader, intake, counts, warnings, .. } = self;
        let bytes = reader.drain(|record| match intake.record(record, pipeline, &mut result) {
            Ok(decoded) => events += decoded as u64,
            Err(e) => {
                counts.bad += 1;
                if *warnings == Warnings::Stderr && counts.bad <= UNDECODABLE_SHOWN {
                    eprintln!("tracer: warning: undecodable record skipped: {e}");
                }
            }
        });
        intake.end_batch(pipeline, &mut result);
        self.counts.seen += events;
        let untracked = self.counts.untracked;
        pipeline.drained(&Drain { events, bytes, ring_bytes: RING_BYTES as usize, untracked });
        let result = result.and_then(|()| pipeline.flush());
        self.counts.drain_cpu_ns += thread_cpu_ns().saturating_sub(started);
        result
    }

    /// Time-based alerts (behind the clock by ALERT_LAG), then loss and untracked connections.
    pub fn tick(&mut self, pipeline: &mut Pipeline, now_ns: u64) -> Result<()> {
        pipeline.tick(now_ns.saturating_sub(ALERT_LAG.as_nanos() as u64))?;
        self.check_loss(pipeline, now_ns)
    }

    /// The last drain after the programs were detached, and the end of the run at `now_ns`.
    pub fn finish(&mut self, pipeline: &mut Pipeline, now_ns: u64) -> Result<()> {
        self.drain(pipeline)?;
        self.check_loss(pipeline, now_ns)?;
        pipeline.finish(now_ns)
    }

    /// Reports ring-buffer loss, and connections left untracked or evicted, since the last
    /// check.
    fn check_loss(&mut self, pipeline: &mut Pipeline, now_ns: u64) -> Result<()> {
        let lost = self.reader.lost_total();
        if lost > self.counts.lost {
            let new = lost - self.counts.lost;
            self.counts.lost = lost;
            pipeline.lost(now_ns, new)?;
        }
        self.counts.untracked = self.reader.table_full_total();
        let table = pipeline.state().table;
        self.counts.evicted = table.evicted();
        if self.warnings == Warnings::Stderr {
            let untracked = self.counts.untracked;
            if should_warn(&mut self.untracked_warned, untracked) {
                eprintln!(
                    "tracer: warning: {untracked} connection(s) opened since attach are not \
                     tracked: the kernel's per-socket table is full, so their open, close, reads \
                     and buffer changes are not reported (windows and probes still are, except \
                     with --hooks kprobe)"
                );
            }
            let evicted = self.counts.evicted;
            if should_warn(&mut self.evicted_warned, evicted) {
                eprintln!(
                    "tracer: warning: {evicted} live connection(s) dropped from the agent's \
                     table, which keeps the {} most recently active: their alerts ended and \
                     their next events start a new timeline; narrow with --port or --pid, or \
                     raise --max-connections",
                    table.live_capacity()
                );
            }
        }
        Ok(())
    }
}

/// Whether a growing count deserves a warning now: it grew since the last one, and the last
/// one is at least UNTRACKED_WARN_EVERY old.
fn should_warn(warned: &mut Option<(u64, Instant)>, count: u64) -> bool {
    let (last, at) = warned.unwrap_or((0, Instant::now()));
    let quiet = warned.is_some() && at.elapsed() < UNTRACKED_WARN_EVERY;
    if count <= last || quiet {
        return false;
    }
    *warned = Some((count, Instant::now()));
    true
}

fn every(period: Duration) -> Interval {
    let mut i = interval(period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}
