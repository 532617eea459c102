//! The clocks: wall time, the kernel's monotonic clock (bpf_ktime_get_ns) and the gap between
//! them, and the local time zone's offset from UTC.

use std::sync::OnceLock;

use rustix::time::{clock_gettime, ClockId};
use time::{OffsetDateTime, UtcOffset};

/// Wall-clock time now, ns since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn clock_ns(id: ClockId) -> i64 {
    let ts = clock_gettime(id);
    ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec)
}

/// CPU time this thread has used, ns (the pipeline bench's measure: other threads and time
/// spent waiting do not count). Through the C library, not rustix: rustix's own vDSO lookup
/// crashes under valgrind (rustix#1559), and callgrind is how the bench's instructions are
/// counted.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    let ns = ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec);
    if ok {
        u64::try_from(ns).unwrap_or(0)
    } else {
        0
    }
}

/// Wall clock minus the monotonic clock the kernel stamps events with, in ns: add it to a
/// kernel timestamp to get wall time.
pub fn realtime_offset_ns() -> i64 {
    clock_ns(ClockId::Realtime) - clock_ns(ClockId::Monotonic)
}

/// The local UTC offset, learned at start (None: it could not be known).
static START_OFFSET: OnceLock<Option<UtcOffset>> = OnceLock::new();

/// Learns the local UTC offset. Called first thing in main, while the process has one thread:
/// the C library reads TZ from the environment on its first time-zone lookup, which is only
/// safe before other threads exist (later lookups reuse what it read).
pub fn init_local_offset() {
    START_OFFSET.get_or_init(|| UtcOffset::current_local_offset().ok());
}

/// The local UTC offset at `at`: the time zone's own answer for that instant where the `time`
/// crate gives one (so daylight saving time is right), else the offset learned at start. None
/// when neither is known: the caller shows UTC and says so.
pub fn local_offset_at(at: OffsetDateTime) -> Option<UtcOffset> {
    UtcOffset::local_offset_at(at).ok().or_else(|| START_OFFSET.get().copied().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_agree_with_std() {
        let before = now_ns();
        let wall = clock_ns(ClockId::Realtime) as u64;
        assert!(wall >= before && wall - before < 1_000_000_000);
        let offset = realtime_offset_ns();
        assert!(offset > 0 && (offset as u64) < wall, "{offset}");
    }
}
