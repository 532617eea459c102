//! The replay clock: plays a recording at its own pace, with long gaps cut short, or at once.
//! Pure: the caller passes the real time in.

use std::time::{Duration, Instant};

/// When each item of a recording is due, and what time the view shows meanwhile.
#[derive(Clone, Debug)]
pub struct Pace {
    fast: bool,
    /// The longest real wait between two items, however far apart they were recorded.
    max_gap: Duration,
    /// The last item played: its recorded time, and the (pause-adjusted) real time it was
    /// played at.
    last: Option<(u64, Instant)>,
    /// Since when playback is paused.
    paused_at: Option<Instant>,
}

impl Pace {
    /// `fast`: everything is due at once.
    pub fn new(fast: bool, max_gap: Duration) -> Pace {
        Pace { fast, max_gap, last: None, paused_at: None }
    }

    /// How long until an item recorded at `ts_ns` is due (zero: now).
    pub fn due_in(&self, ts_ns: u64, now: Instant) -> Duration {
        let Some((last_ts, played)) = self.last else { return Duration::ZERO };
        if self.fast {
            return Duration::ZERO;
        }
        let gap = Duration::from_nanos(ts_ns.saturating_sub(last_ts)).min(self.max_gap);
        (played + gap).saturating_duration_since(self.now(now))
    }

    /// An item recorded at `ts_ns` was played at `now`.
    pub fn played(&mut self, ts_ns: u64, now: Instant) {
        let ts = self.last.map_or(ts_ns, |(last, _)| last.max(ts_ns));
        self.last = Some((ts, self.now(now)));
    }

    /// The recorded time the view shows at `now`: the last item's, advanced in real time
    /// (capped as gaps are) but never past the next item's (`next_ns`).
    pub fn clock(&self, now: Instant, next_ns: Option<u64>) -> u64 {
        let Some((last_ts, played)) = self.last else { return next_ns.unwrap_or(0) };
        if self.fast {
            return last_ts;
        }
        let elapsed = self.now(now).saturating_duration_since(played).min(self.max_gap);
        let ts = last_ts.saturating_add(elapsed.as_nanos() as u64);
        next_ns.map_or(ts, |next| ts.min(next.max(last_ts)))
    }

    /// Stop or restart the clock.
    pub fn set_paused(&mut self, paused: bool, now: Instant) {
        match (paused, self.paused_at) {
            (true, None) => self.paused_at = Some(now),
            (false, Some(since)) => {
                // Time spent paused does not count: move the last play time forward by it.
                let stopped = now.saturating_duration_since(since);
                if let Some((_, played)) = &mut self.last {
                    *played += stopped;
                }
                self.paused_at = None;
            }
            _ => {}
        }
    }

    /// Real time as the clock sees it: frozen while paused.
    fn now(&self, now: Instant) -> Instant {
        self.paused_at.unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn waits_for_the_recorded_gap_capped() {
        let t0 = Instant::now();
        let mut pace = Pace::new(false, Duration::from_secs(1));
        assert_eq!(pace.due_in(5_000 * MS, t0), Duration::ZERO, "the first item is due at once");
        pace.played(5_000 * MS, t0);
        assert_eq!(pace.due_in(5_200 * MS, t0), Duration::from_millis(200));
        assert_eq!(pace.due_in(5_200 * MS, t0 + Duration::from_millis(300)), Duration::ZERO);
        // A minute's gap is cut to a second.
        assert_eq!(pace.due_in(65_000 * MS, t0), Duration::from_secs(1));
        assert_eq!(pace.clock(t0 + Duration::from_millis(100), Some(5_200 * MS)), 5_100 * MS);
        // The clock never passes the next item.
        assert_eq!(pace.clock(t0 + Duration::from_millis(900), Some(5_200 * MS)), 5_200 * MS);
    }

    #[test]
    fn fast_plays_everything_now() {
        let t0 = Instant::now();
        let mut pace = Pace::new(true, Duration::from_secs(1));
        pace.played(5_000 * MS, t0);
        assert_eq!(pace.due_in(65_000 * MS, t0), Duration::ZERO);
        assert_eq!(pace.clock(t0 + Duration::from_secs(5), None), 5_000 * MS);
    }

    #[test]
    fn pause_stops_the_clock() {
        let t0 = Instant::now();
        let mut pace = Pace::new(false, Duration::from_secs(1));
        pace.played(5_000 * MS, t0);
        pace.set_paused(true, t0 + Duration::from_millis(100));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pace.clock(later, Some(5_500 * MS)), 5_100 * MS);
        assert_eq!(pace.due_in(5_500 * MS, later), Duration::from_millis(400));
        pace.set_paused(false, later);
        assert_eq!(pace.due_in(5_500 * MS, later), Duration::from_millis(400));
        assert_eq!(pace.clock(later + Duration::from_millis(100), None), 5_200 * MS);
    }
}
