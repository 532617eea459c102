//! The windows each connection advertised over the last minute, per side, for the sparkline.
//!
//! Kept per second: the time the window was zero in it, and the lowest non-zero window in
//! effect; bounded to a little over the span shown. A cell of the sparkline is zero when the
//! window was zero for at least half of it (an instant at zero is not a stall), else a block as
//! high as its lowest window; a cell with any time at zero is marked stalled.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{
    events::model::{Body, Event, Side},
    timeline::{Conn, ConnTable, FourTuple},
};

/// Seconds the sparkline covers.
pub const SPAN_SECS: usize = 60;
/// Seconds kept behind the newest one (a little over the span).
const KEEP_SECS: u64 = SPAN_SECS as u64 + 2;
const NS_PER_SEC: u64 = 1_000_000_000;
/// The blocks, lowest first: never used for zero, so a small window never looks closed.
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// A cell in which the window was zero at least half the time.
pub const ZERO: char = '·';
/// No window known: before the first one, or after the connection closed.
pub const EMPTY: char = ' ';

/// What one second (or one cell of seconds) held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Time at zero window.
    pub zero_ns: u64,
    /// Time with a window known (the connection existed and was watched).
    pub covered_ns: u64,
    /// The lowest non-zero window in effect; None if it was zero throughout.
    pub low: Option<u32>,
}

impl Sample {
    fn merge(self, other: Sample) -> Sample {
        Sample {
            zero_ns: self.zero_ns + other.zero_ns,
            covered_ns: self.covered_ns + other.covered_ns,
            low: min_some(self.low, other.low),
        }
    }

    /// Zero at least half of the time.
    fn mostly_zero(&self) -> bool {
        self.zero_ns.saturating_mul(2) >= self.covered_ns
    }
}

fn min_some(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One stored second.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Second {
    sec: u64,
    /// Zero time in this second between windows already superseded.
    zero_ns: u64,
    low: Option<u32>,
}

/// One side's advertised windows over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Oldest first; every second from the first window to the latest one's (within the
    /// kept span).
    seconds: VecDeque<Second>,
    /// When the first window was seen.
    first_ns: Option<u64>,
    /// The window in effect, and since when.
    current: Option<(u64, u32)>,
    closed_ns: Option<u64>,
}

impl Series {
    /// A window advertised at `ts_ns`. Events arrive in time order; a late one is taken as
    /// happening at the latest time seen.
    pub fn record(&mut self, ts_ns: u64, window: u32) {
        if self.closed_ns.is_some() {
            return;
        }
        let ts = self.current.map_or(ts_ns, |(t, _)| t.max(ts_ns));
        match self.current {
            Some((since, w)) => self.account(since, ts, w),
            None => self.first_ns = Some(ts),
        }
        let second = self.second_mut(ts / NS_PER_SEC);
        if window > 0 {
            second.low = min_some(second.low, Some(window));
        }
        self.current = Some((ts, window));
    }

    /// The connection closed at `ts_ns`: the window in effect ends there.
    pub fn close(&mut self, ts_ns: u64) {
        if self.closed_ns.is_some() {
            return;
        }
        let ts = self.current.map_or(ts_ns, |(t, _)| t.max(ts_ns));
        if let Some((since, w)) = self.current {
            self.account(since, ts, w);
        }
        self.closed_ns = Some(ts);
    }

    /// Each of the `SPAN_SECS` seconds ending with the one holding `now_ns`, oldest first;
    /// None where no window was known (before the first, after the close).
    pub fn per_second(&self, now_ns: u64) -> Vec<Option<Sample>> {
        let now_sec = now_ns / NS_PER_SEC;
        let first_sec = (now_sec + 1).saturating_sub(SPAN_SECS as u64);
        // Seconds before the epoch (only in tests) have nothing.
        let pad = SPAN_SECS - (now_sec + 1 - first_sec) as usize;
        let mut out = vec![None; pad];
        let Some(first_ns) = self.first_ns else {
            out.resize(SPAN_SECS, None);
            return out;
        };
        let until = self.closed_ns.unwrap_or(now_ns).min(now_ns);
        for sec in first_sec..=now_sec {
            let (start, end) = (sec * NS_PER_SEC, (sec + 1) * NS_PER_SEC);
            let covered = end.min(until).saturating_sub(start.max(first_ns));
            if covered == 0 {
                out.push(None);
                continue;
            }
            let stored = self
                .seconds
                .binary_search_by_key(&sec, |s| s.sec)
                .ok()
                .and_then(|i| self.seconds.get(i));
            let mut sample = Sample {
                zero_ns: stored.map_or(0, |s| s.zero_ns),
                covered_ns: covered,
                low: stored.and_then(|s| s.low),
            };
            // The window in effect now has not been accounted yet.
            if let (Some((since, w)), None) = (self.current, self.closed_ns) {
                let overlap = end.min(until).saturating_sub(start.max(since));
                if overlap > 0 && w == 0 {
                    sample.zero_ns += overlap;
                } else if overlap > 0 {
                    sample.low = min_some(sample.low, Some(w));
                }
            }
            sample.zero_ns = sample.zero_ns.min(covered);
            out.push(Some(sample));
        }
        out
    }

    /// Window `w` was in effect over [from, to): add it to the seconds it covers.
    fn account(&mut self, from: u64, to: u64, w: u32) {
        if to <= from {
            return;
        }
        // A long quiet spell only matters for the seconds still kept.
        let last = (to - 1) / NS_PER_SEC;
        let first = (from / NS_PER_SEC).max(last.saturating_sub(KEEP_SECS));
        for sec in first..=last {
            let start = from.max(sec * NS_PER_SEC);
            let end = to.min((sec + 1) * NS_PER_SEC);
            let second = self.second_mut(sec);
            if w == 0 {
                second.zero_ns += end.saturating_sub(start);
            } else {
                second.low = min_some(second.low, Some(w));
            }
        }
    }

    /// The stored second `sec` (the newest, or a new one after it), dropping seconds that fell
    /// out of the kept span.
    fn second_mut(&mut self, sec: u64) -> &mut Second {
        if self.seconds.back().is_none_or(|b| b.sec < sec) {
            self.seconds.push_back(Second { sec, zero_ns: 0, low: None });
            while self.seconds.front().is_some_and(|f| f.sec + KEEP_SECS < sec) {
                self.seconds.pop_front();
            }
        }
        let i = match self.seconds.binary_search_by_key(&sec, |s| s.sec) {
            Ok(i) => i,
            // Older than kept (cannot happen in time order): the newest takes it.
            Err(_) => self.seconds.len() - 1,
        };
        &mut self.seconds[i]
    }
}

/// Both sides of a connection over the span, per second, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Sparks {
    pub local: Vec<Option<Sample>>,
    pub peer: Vec<Option<Sample>>,
}

/// Both sides of one connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pair {
    /// Windows this host advertised.
    pub local: Series,
    /// Windows the peer advertised.
    pub peer: Series,
    /// An `open` was seen: a second one on the same 4-tuple is a new connection.
    opened: bool,
}

impl Pair {
    /// Both sides over the span ending at `now_ns`.
    pub fn sparks(&self, now_ns: u64) -> Sparks {
        Sparks { local: self.local.per_second(now_ns), peer: self.peer.per_second(now_ns) }
    }

    fn side_mut(&mut self, side: Side) -> &mut Series {
        match side {
            Side::Local => &mut self.local,
            Side::Peer => &mut self.peer,
        }
    }

    fn close(&mut self, ts_ns: u64) {
        self.local.close(ts_ns);
        self.peer.close(ts_ns);
    }
}

/// Window histories of every connection in the table. Keyed by 4-tuple (and close time once
/// closed), which is how a `Conn` can be matched without the table's private identity type.
#[derive(Debug, Default)]
pub struct Histories {
    live: HashMap<FourTuple, Pair>,
    closed: HashMap<(FourTuple, u64), Pair>,
}

impl Histories {
    /// Follow one event (after the connection table took it).
    pub fn event(&mut self, e: &Event) {
        let tuple = FourTuple::of(e);
        let ts = e.ts_ns;
        match &e.body {
            Body::Window { side, window, .. } => {
                self.pair(tuple).side_mut(*side).record(ts, *window)
            }
            Body::ZeroWindowStart { side, .. } => self.pair(tuple).side_mut(*side).record(ts, 0),
            // A zero_window_end without a window says nothing new about it.
            Body::ZeroWindowEnd { side, window, .. } if *window > 0 => {
                self.pair(tuple).side_mut(*side).record(ts, *window)
            }
            Body::Inflight { window, .. } => self.pair(tuple).peer.record(ts, *window),
            Body::Open { .. } => {
                // The table closes an earlier connection whose open was seen when a new open
                // comes on its identity; do the same here.
                if self.live.get(&tuple).is_some_and(|p| p.opened) {
                    self.retire(tuple, ts);
                }
                self.pair(tuple).opened = true;
            }
            Body::Close { .. } => self.retire(tuple, ts),
            _ => {}
        }
    }

    /// The history of a connection in the table.
    pub fn of(&self, conn: &Conn) -> Option<&Pair> {
        let closed = conn.close_ns().and_then(|c| self.closed.get(&(conn.tuple, c)));
        closed.or_else(|| self.live.get(&conn.tuple))
    }

    /// Forget the histories of connections that left the table.
    pub fn retain(&mut self, table: &ConnTable) {
        let mut live = HashSet::new();
        let mut closed = HashSet::new();
        for (_, c) in table.iter() {
            match c.close_ns() {
                Some(at) => closed.insert((c.tuple, at)),
                None => live.insert(c.tuple),
            };
        }
        self.live.retain(|t, _| live.contains(t));
        self.closed.retain(|k, _| closed.contains(k));
    }

    fn pair(&mut self, tuple: FourTuple) -> &mut Pair {
        self.live.entry(tuple).or_default()
    }

    fn retire(&mut self, tuple: FourTuple, ts_ns: u64) {
        if let Some(mut pair) = self.live.remove(&tuple) {
            pair.close(ts_ns);
            self.closed.insert((tuple, ts_ns), pair);
        }
    }
}

/// Groups per-second samples into `width` cells (None only when all of a cell's seconds are).
/// With room for every second, one cell per second.
pub fn buckets(per_second: &[Option<Sample>], width: usize) -> Vec<Option<Sample>> {
    let n = per_second.len();
    if width >= n {
        return per_second.to_vec();
    }
    let mut cells: Vec<Option<Sample>> = vec![None; width];
    if width == 0 {
        return cells;
    }
    for (i, v) in per_second.iter().enumerate() {
        let Some(v) = *v else { continue };
        let cell = &mut cells[i * width / n];
        *cell = Some(cell.map_or(v, |c| c.merge(v)));
    }
    cells
}

/// One drawn cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Glyph {
    pub ch: char,
    /// The window was zero for some of the cell (drawn as an alarm).
    pub stalled: bool,
}

/// One glyph per cell: `EMPTY` without data, `ZERO` when mostly at zero window, else a block
/// whose height is the cell's lowest window relative to the highest such among the cells.
pub fn glyphs(cells: &[Option<Sample>]) -> Vec<Glyph> {
    let block_low = |c: &Sample| if c.mostly_zero() { None } else { c.low };
    let max = cells.iter().flatten().filter_map(block_low).max().unwrap_or(0);
    cells
        .iter()
        .map(|c| match c {
            None => Glyph { ch: EMPTY, stalled: false },
            Some(c) => match block_low(c) {
                None => Glyph { ch: ZERO, stalled: true },
                Some(v) => {
                    // 1..=8: the smallest window still gets the lowest block.
                    let level = (u64::from(v) * 8).div_ceil(u64::from(max.max(1))).clamp(1, 8);
                    Glyph { ch: BLOCKS[level as usize - 1], stalled: c.zero_ns > 0 }
                }
            },
        })
        .collect()
}
