//! The connection table: finds (or creates) the connection each event belongs to and keeps
//! memory bounded — every live connection up to a cap (least recently updated evicted first),
//! plus a bounded number of recently closed ones (oldest closed evicted first).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

// foldhash: far cheaper per lookup than SipHash, still seeded per process.
use foldhash::HashMap;
use std::fmt;

use serde::Serialize;

use super::conn::{Conn, ConnId, FourTuple};
use crate::events::model::{Body, Event};

/// A connection's handle in the table. Serial numbers, not socket addresses: the kernel reuses
/// a socket's address for a later connection, and both may be in the table (one closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnKey(u64);

impl fmt::Display for ConnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How much the table keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Live connections kept; past it the least recently updated one is evicted (at least 1).
    pub live_capacity: usize,
    /// Closed connections kept for summaries; past it the oldest closed one is forgotten.
    pub closed_capacity: usize,
    /// Closed zero-window episodes kept per direction (totals count them all).
    pub episodes_per_side: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { live_capacity: 65536, closed_capacity: 1024, episodes_per_side: 16 }
    }
}

/// Why a connection ended without its own close event, or left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A new `open` reused its socket address: its close was lost. It stays, closed.
    Superseded,
    /// Live, and evicted to stay within `live_capacity`. Gone from the table.
    Evicted,
    /// Closed, and forgotten to stay within `closed_capacity`. Gone from the table.
    Forgotten,
}

/// An entry of the table's end log: lets consumers that keep per-connection state (the alert
/// engine) learn about connections that ended or left without an event of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ended {
    /// Position in the log, counting from 0 since the table was made.
    pub seq: u64,
    pub key: ConnKey,
    /// The time of the event that caused it.
    pub ts_ns: u64,
    pub reason: EndReason,
}

/// Entries of the end log kept for consumers that fall behind.
const ENDED_LOG_CAPACITY: usize = 4096;

/// Every connection seen, live and recently closed. Pure: time comes only from events.
#[derive(Debug, Default)]
pub struct ConnTable {
    limits: Limits,
    conns: BTreeMap<ConnKey, Conn>,
    next_key: u64,
    /// Live connections by identity, and by 4-tuple (for drops that name no socket).
    live: HashMap<ConnId, ConnKey>,
    by_tuple: HashMap<FourTuple, ConnKey>,
    /// Recency of live connections: key -> tick of its last update, and the ordered set of both.
    live_tick: HashMap<ConnKey, u64>,
    lru: BTreeSet<(u64, ConnKey)>,
    tick: u64,
    /// Closed connections still kept, by identity (late events), and in closing order.
    closed: HashMap<ConnId, ConnKey>,
    closed_order: VecDeque<ConnKey>,
    ended: VecDeque<Ended>,
    ended_seq: u64,
    /// Live connections evicted to stay within `live_capacity`, in all.
    evicted: u64,
}

impl ConnTable {
    /// A table with the default limits.
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        let limits = Limits { live_capacity: limits.live_capacity.max(1), ..limits };
        ConnTable { limits, ..ConnTable::default() }
    }

    /// Update the connection `e` belongs to and return its key. The key of a connection closed
    /// by `e` may already be gone when `closed_capacity` is 0.
    pub fn apply(&mut self, e: &Event) -> ConnKey {
        self.tick += 1;
        let key = self.locate(e);
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.apply(e);
        }
        let live = self.live_tick.contains_key(&key);
        if live && matches!(e.body, Body::Close { .. }) {
            self.retire(key, e.ts_ns);
        } else if live {
            self.touch(key);
        }
        while self.live_tick.len() > self.limits.live_capacity {
            let Some((_, oldest)) = self.lru.pop_first() else { break };
            self.evict(oldest, e.ts_ns);
        }
        key
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Conn> {
        self.conns.get(key)
    }

    #[cfg(test)]
    /// The connection an identity names now: the live one, else a recently closed one.
    pub fn lookup(&self, id: &ConnId) -> Option<ConnKey> {
        self.live.get(id).or_else(|| self.closed.get(id)).copied()
    }

    /// Every connection kept, in order of first sighting.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey, &Conn)> {
        self.conns.iter()
    }

    #[cfg(test)]
    /// Connections kept, live and closed.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    #[cfg(test)]
    pub fn live_len(&self) -> usize {
        self.live_tick.len()
    }

    #[cfg(test)]
    pub fn closed_len(&self) -> usize {
        self.closed_order.len()
    }

    /// Live connections evicted to make room, in all: their later events start a new timeline,
    /// so the operator is told (like lost events).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The live connections kept at most.
    pub fn live_capacity(&self) -> usize {
        self.limits.live_capacity
    }

    /// The sequence number the next end-log entry will get: a consumer's cursor.
    pub fn ended_seq(&self) -> u64 {
        self.ended_seq
    }

    /// End-log entries from `cursor` on. The flag is false when entries between `cursor` and the
    /// oldest kept one were dropped: the consumer must then check its connections itself.
    pub fn ended_since(&self, cursor: u64) -> (bool, impl Iterator<Item = &Ended>) {
        let oldest = self.ended.front().map_or(self.ended_seq, |e| e.seq);
        let skip = usize::try_from(cursor.saturating_sub(oldest)).unwrap_or(usize::MAX);
        (cursor >= oldest, self.ended.iter().skip(skip))
    }

    /// Which connection `e` belongs to, creating it when it is new.
    fn locate(&mut self, e: &Event) -> ConnKey {
        let tuple = FourTuple::of(e);
        let id = if e.sk != 0 {
            ConnId::Sock(e.sk)
        } else if let Some(&key) = self.by_tuple.get(&tuple) {
            // No socket named (a drop before socket lookup): the live connection on this 4-tuple.
            return key;
        } else {
            ConnId::Tuple(tuple)
        };
        let (is_open, late) = match e.body {
            Body::Open { late, .. } => (true, late),
            _ => (false, false),
        };
        if let Some(&key) = self.live.get(&id) {
            if !is_open {
                return key;
            }
            match self.conns.get_mut(&key) {
                // Events that arrived before the open of the same connection.
                Some(c) if c.open_ns.is_none() && c.tuple == tuple => return key,
                // A late open sent twice (two CPUs reported the quiet connection at once).
                Some(c) if late && c.open_ns == Some(e.ts_ns) && c.tuple == tuple => return key,
                // The socket address was reused: the earlier connection's close was lost.
                Some(c) => c.close_implicitly(e.ts_ns, "superseded"),
                None => {}
            }
            self.log(key, e.ts_ns, EndReason::Superseded);
            self.retire(key, e.ts_ns);
        } else if !is_open {
            // A late event of a connection that just closed.
            if let Some(&key) = self.closed.get(&id) {
                if self.conns.get(&key).is_some_and(|c| c.tuple == tuple) {
                    return key;
                }
            }
        }
        self.create(id, e)
    }

    fn create(&mut self, id: ConnId, e: &Event) -> ConnKey {
        let key = ConnKey(self.next_key);
        self.next_key += 1;
        let conn = Conn::new(id, e, self.limits.episodes_per_side);
        self.by_tuple.insert(conn.tuple, key);
        self.conns.insert(key, conn);
        self.live.insert(id, key);
        self.touch(key);
        key
    }

    fn touch(&mut self, key: ConnKey) {
        if let Some(old) = self.live_tick.insert(key, self.tick) {
            self.lru.remove(&(old, key));
        }
        self.lru.insert((self.tick, key));
    }

    /// Stop indexing a connection as live (its own bookkeeping, not the LRU set).
    fn unindex_live(&mut self, key: ConnKey) -> Option<ConnId> {
        if let Some(tick) = self.live_tick.remove(&key) {
            self.lru.remove(&(tick, key));
        }
        let conn = self.conns.get(&key)?;
        let (id, tuple) = (conn.id, conn.tuple);
        // Another connection may have taken over the identity or the 4-tuple since.
        if self.live.get(&id) == Some(&key) {
            self.live.remove(&id);
        }
        if self.by_tuple.get(&tuple) == Some(&key) {
            self.by_tuple.remove(&tuple);
        }
        Some(id)
    }

    /// Move a connection from live to closed, forgetting the oldest closed ones past the cap.
    fn retire(&mut self, key: ConnKey, ts_ns: u64) {
        if let Some(id) = self.unindex_live(key) {
            self.closed.insert(id, key);
            self.closed_order.push_back(key);
        }
        while self.closed_order.len() > self.limits.closed_capacity {
            let Some(oldest) = self.closed_order.pop_front() else { break };
            if let Some(conn) = self.conns.remove(&oldest) {
                if self.closed.get(&conn.id) == Some(&oldest) {
                    self.closed.remove(&conn.id);
                }
            }
            self.log(oldest, ts_ns, EndReason::Forgotten);
        }
    }

    fn evict(&mut self, key: ConnKey, ts_ns: u64) {
        self.evicted += 1;
        self.unindex_live(key);
        self.conns.remove(&key);
        self.log(key, ts_ns, EndReason::Evicted);
    }

    fn log(&mut self, key: ConnKey, ts_ns: u64, reason: EndReason) {
        self.ended.push_back(Ended { seq: self.ended_seq, key, ts_ns, reason });
        self.ended_seq += 1;
        while self.ended.len() > ENDED_LOG_CAPACITY {
            self.ended.pop_front();
        }
    }
}
