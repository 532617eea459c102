//! The windows each connection advertised over the last minute, per side, for the sparkline.
//!
//! Kept as per-second minimums (a zero anywhere in a second shows as zero: a stall of a few
//! milliseconds is the thing to see), bounded to a little over the span shown.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{
    events::model::{Body, Event, Side},
    timeline::{Conn, ConnTable, FourTuple},
};

/// Seconds the sparkline covers.
pub const SPAN_SECS: usize = 60;
/// Seconds of samples kept past the newest one; older ones only matter through their last
/// window, which carries into the span.
const KEEP_SECS: u64 = SPAN_SECS as u64 + 2;
const NS_PER_SEC: u64 = 1_000_000_000;
/// The blocks, lowest first: never used for zero, so a small window never looks closed.
const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// A second (or cell) in which the window was zero.
pub const ZERO: char = '·';
/// No window known: before the first one, or after the connection closed.
pub const EMPTY: char = ' ';

#[derive(Clone, Copy, Debug, PartialEq)]
struct Second {
    sec: u64,
    /// Lowest window advertised in this second.
    min: u32,
    /// The window in effect at its end.
    last: u32,
}

/// One side's advertised windows over time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    seconds: VecDeque<Second>,
    /// The window in effect before the oldest second kept.
    before: Option<u32>,
    /// The second the connection closed in: nothing is shown after it.
    closed_sec: Option<u64>,
}

impl Series {
    /// A window advertised at `ts_ns`. Events arrive in time order; a late one counts in the
    /// newest second rather than rewriting the past.
    pub fn record(&mut self, ts_ns: u64, window: u32) {
        let sec = ts_ns / NS_PER_SEC;
        match self.seconds.back_mut() {
            Some(s) if s.sec >= sec => {
                s.min = s.min.min(window);
                s.last = window;
            }
            _ => self.seconds.push_back(Second { sec, min: window, last: window }),
        }
        while self.seconds.front().is_some_and(|f| f.sec + KEEP_SECS < sec) {
            if let Some(old) = self.seconds.pop_front() {
                self.before = Some(old.last);
            }
        }
    }

    /// The connection closed at `ts_ns`.
    pub fn close(&mut self, ts_ns: u64) {
        self.closed_sec.get_or_insert(ts_ns / NS_PER_SEC);
    }

    /// The lowest window in each of the `SPAN_SECS` seconds ending with the one holding
    /// `now_ns`, oldest first. A window holds until the next one, so a second without samples
    /// takes the window in effect; None before the first window and after the close.
    pub fn per_second(&self, now_ns: u64) -> Vec<Option<u32>> {
        let now_sec = now_ns / NS_PER_SEC;
        let first = (now_sec + 1).saturating_sub(SPAN_SECS as u64);
        // Seconds before the epoch (only in tests) have nothing.
        let pad = SPAN_SECS - (now_sec + 1 - first) as usize;
        let mut out = vec![None; pad];
        let mut current = self.before;
        let mut seconds = self.seconds.iter().peekable();
        while let Some(s) = seconds.next_if(|s| s.sec < first) {
            current = Some(s.last);
        }
        for sec in first..=now_sec {
            let mut low = current;
            if let Some(s) = seconds.next_if(|s| s.sec == sec) {
                low = Some(low.map_or(s.min, |c| c.min(s.min)));
                current = Some(s.last);
            }
            let after_close = self.closed_sec.is_some_and(|c| sec > c);
            out.push(if after_close { None } else { low });
        }
        out
    }
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
        let closed = conn.close_ns.and_then(|c| self.closed.get(&(conn.tuple, c)));
        closed.or_else(|| self.live.get(&conn.tuple))
    }

    /// Forget the histories of connections that left the table.
    pub fn retain(&mut self, table: &ConnTable) {
        let mut live = HashSet::new();
        let mut closed = HashSet::new();
        for (_, c) in table.iter() {
            match c.close_ns {
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

/// Groups per-second values into `width` cells, each the lowest of its seconds (None only when
/// all of them are). With room for every second, one cell per second.
pub fn buckets(per_second: &[Option<u32>], width: usize) -> Vec<Option<u32>> {
    let n = per_second.len();
    if width >= n {
        return per_second.to_vec();
    }
    let mut cells = vec![None; width];
    if width == 0 {
        return cells;
    }
    for (i, v) in per_second.iter().enumerate() {
        let Some(v) = *v else { continue };
        let cell = &mut cells[i * width / n];
        *cell = Some(cell.map_or(v, |c: u32| c.min(v)));
    }
    cells
}

/// One character per cell: `EMPTY` without data, `ZERO` for a zero window, else a block whose
/// height is the window relative to the largest cell.
pub fn glyphs(cells: &[Option<u32>]) -> String {
    let max = cells.iter().flatten().copied().max().unwrap_or(0);
    cells
        .iter()
        .map(|c| match *c {
            None => EMPTY,
            Some(0) => ZERO,
            Some(v) => {
                // 1..=8: the smallest non-zero window still gets the lowest block.
                let level = (u64::from(v) * 8).div_ceil(u64::from(max.max(1))).clamp(1, 8);
                BLOCKS[level as usize - 1]
            }
        })
        .collect()
}
