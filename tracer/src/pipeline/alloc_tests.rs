//! The agent's hot path allocates nothing per event: ring records of steady connections go
//! through the live intake (decode), the table, the alerts and NDJSON output while a counting
//! allocator (test builds only) counts this thread's allocations.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use super::{live::Intake, Pipeline};
use crate::{
    alerts::Thresholds,
    events::{decode::KernelFacts, synthetic::Generator, Decoder},
    output::{json::Json, Show},
};

/// The system allocator, counting each thread's allocations (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call goes straight to the system allocator; counting touches only a
// thread-local Cell without a destructor, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn count() {
    // Not available while the thread is being torn down: nothing to count then.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations while `measured` records of `generator` are fed, after `warm_up` records.
fn allocations_feeding(mut generator: Generator, warm_up: usize, measured: usize) -> u64 {
    let facts = KernelFacts {
        realtime_offset_ns: 0,
        hz: Some(250),
        retries2: 15,
        drop_reasons: Default::default(),
        cgroup_root: None,
        live: false,
    };
    let mut intake = Intake::new(Decoder::new(facts));
    let mut pipeline = Pipeline::new(Thresholds::default());
    pipeline.add(Box::new(Json::to(std::io::sink(), Show { events: true, summary: true })));
    let (mut bytes, mut records) = (Vec::new(), Vec::new());
    generator.fill(warm_up + measured, &mut bytes, &mut records);
    let mut result = Ok(());
    let mut feed = |records: &[(usize, usize)]| {
        for &(start, len) in records {
            intake.record(&bytes[start..start + len], &mut pipeline, &mut result).unwrap();
        }
        intake.end_batch(&mut pipeline, &mut result);
        pipeline.flush().unwrap();
    };
    feed(&records[..warm_up]);
    let before = allocations();
    feed(&records[warm_up..]);
    let after = allocations();
    result.unwrap();
    after - before
}

#[test]
fn steady_connections_cost_no_allocation_per_event() {
    // Eight connections: after the first records each has opened, been named and sampled.
    let n = allocations_feeding(Generator::steady(8), 2_000, 20_000);
    assert_eq!(n, 0, "{n} allocations for 20000 records of steady connections");
}

#[test]
fn the_counter_sees_allocations() {
    // One boxed value is one allocation.
    let before = allocations();
    let boxed = std::hint::black_box(Box::new([0u8; 64]));
    assert_eq!(allocations() - before, 1);
    drop(boxed);
    // New connections still allocate through the pipeline (its indexes and slabs grow from
    // empty), though their entries sit in place: the harness counts the pipeline's thread.
    let n = allocations_feeding(Generator::steady(2_000), 0, 4_000);
    assert!(n > 0, "no allocation counted for 2000 new connections");
}
