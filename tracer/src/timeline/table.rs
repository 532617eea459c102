//! The connection table: finds (or creates) the connection each event belongs to and keeps
//! memory bounded — every live connection up to a cap (least recently updated evicted first),
//! plus a bounded number of recently closed ones (oldest closed evicted first).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};

use serde::Serialize;

use super::conn::{Conn, ConnId, FourTuple};
use super::names::Names;
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
    pub episodes_per_side: u32,
}

/// Live connections kept by default: a million sockets (the kernel's per-socket table holds as
/// many), each a few hundred bytes here (`cargo xtask bench` measures it).
pub const DEFAULT_LIVE_CAPACITY: usize = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            live_capacity: DEFAULT_LIVE_CAPACITY,
            closed_capacity: 1024,
            episodes_per_side: 16,
        }
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
///
/// Memory per live connection is what a busy host pays: the connection itself (boxed, so the
/// ordered map holds pointers), one entry in each of the two identity indexes, and one or two
/// entries in the recency queue.
#[derive(Debug, Default)]
pub struct ConnTable {
    limits: Limits,
    conns: BTreeMap<ConnKey, Box<Conn>>,
    next_key: u64,
    /// Live connections by socket address, by 4-tuple for those the kernel named no socket for,
    /// and by the hash of their 4-tuple (`tuple_hash`) for drops that name no socket.
    live_socks: HashMap<u64, ConnKey>,
    live_tuples: HashMap<FourTuple, ConnKey>,
    by_tuple: HashMap<u64, ConnKey>,
    /// Live connections now (those whose `Conn::tick` is not 0).
    live_len: usize,
    /// Recency of live connections, oldest first: (tick, key) at each update. An entry whose
    /// tick is no longer its connection's is stale and skipped; stale ones are swept out when
    /// they make up a third of the queue.
    recency: VecDeque<(u64, ConnKey)>,
    tick: u64,
    /// Process names, shared by the connections.
    names: Names,
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
        let mut live = false;
        if let Some(conn) = self.conns.get_mut(&key) {
            live = conn.tick != 0;
            conn.apply(e, &mut self.names);
        }
        if live && matches!(e.body, Body::Close { .. }) {
            self.retire(key, e.ts_ns);
        } else if live {
            self.touch(key);
        }
        while self.live_len > self.limits.live_capacity {
            let Some(oldest) = self.least_recent() else { break };
            self.evict(oldest, e.ts_ns);
        }
        key
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Conn> {
        self.conns.get(key).map(|c| &**c)
    }

    #[cfg(test)]
    /// The connection an identity names now: the live one, else a recently closed one.
    pub fn lookup(&self, id: &ConnId) -> Option<ConnKey> {
        self.live_get(id).or_else(|| self.closed.get(id).copied())
    }

    /// Every connection kept, in order of first sighting.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey, &Conn)> {
        self.conns.iter().map(|(k, c)| (k, &**c))
    }

    #[cfg(test)]
    /// Connections kept, live and closed.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    #[cfg(test)]
    pub fn recency_len(&self) -> usize {
        self.recency.len()
    }

    #[cfg(test)]
    pub fn live_len(&self) -> usize {
        self.live_len
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
        } else if let Some(key) = self.live_on(&tuple) {
            // No socket named (a drop before socket lookup): the live connection on this 4-tuple.
            return key;
        } else {
            ConnId::Tuple(tuple)
        };
        let (is_open, late) = match e.body {
            Body::Open { late, .. } => (true, late),
            _ => (false, false),
        };
        if let Some(key) = self.live_get(&id) {
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
        self.by_tuple.insert(tuple_hash(&conn.tuple), key);
        self.conns.insert(key, Box::new(conn));
        match id {
            ConnId::Sock(sk) => self.live_socks.insert(sk, key),
            ConnId::Tuple(tuple) => self.live_tuples.insert(tuple, key),
        };
        self.live_len += 1;
        self.touch(key);
        key
    }

    /// The live connection an identity names.
    fn live_get(&self, id: &ConnId) -> Option<ConnKey> {
        match id {
            ConnId::Sock(sk) => self.live_socks.get(sk),
            ConnId::Tuple(tuple) => self.live_tuples.get(tuple),
        }
        .copied()
    }

    /// The live connection on a 4-tuple.
    pub(super) fn live_on(&self, tuple: &FourTuple) -> Option<ConnKey> {
        let key = *self.by_tuple.get(&tuple_hash(tuple))?;
        // Another 4-tuple with the same hash took the entry: as if not found.
        self.conns.get(&key).filter(|c| c.tuple == *tuple).map(|_| key)
    }

    /// Mark a live connection updated now.
    fn touch(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        // Touched twice by one event (made, then updated): one entry, or the sweep could never
        // bring the queue under its bound and would run at every touch.
        if conn.tick == self.tick {
            return;
        }
        conn.tick = self.tick;
        self.recency.push_back((self.tick, key));
        // Sweep the stale entries once they are a third of the queue: amortised O(1) a touch,
        // and the queue stays within 1.5 entries per live connection.
        if self.recency.len() > 1024 && self.recency.len() > self.live_len + self.live_len / 2 {
            let conns = &self.conns;
            self.recency.retain(|(tick, key)| conns.get(key).is_some_and(|c| c.tick == *tick));
        }
    }

    /// The least recently updated live connection, taken out of the recency queue.
    fn least_recent(&mut self) -> Option<ConnKey> {
        while let Some((tick, key)) = self.recency.pop_front() {
            if self.conns.get(&key).is_some_and(|c| c.tick == tick) {
                return Some(key);
            }
        }
        None
    }

    /// Stop indexing a connection as live (its stale recency entries are skipped later).
    fn unindex_live(&mut self, key: ConnKey) -> Option<ConnId> {
        let conn = self.conns.get_mut(&key)?;
        if conn.tick != 0 {
            conn.tick = 0;
            self.live_len -= 1;
        }
        let (id, tuple) = (conn.id(), conn.tuple);
        // Another connection may have taken over the identity or the 4-tuple since.
        if self.live_get(&id) == Some(key) {
            match id {
                ConnId::Sock(sk) => self.live_socks.remove(&sk),
                ConnId::Tuple(tuple) => self.live_tuples.remove(&tuple),
            };
        }
        let hash = tuple_hash(&tuple);
        if self.by_tuple.get(&hash) == Some(&key) {
            self.by_tuple.remove(&hash);
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
                if self.closed.get(&conn.id()) == Some(&oldest) {
                    self.closed.remove(&conn.id());
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

/// A 4-tuple's key in the index of live connections by 4-tuple: 8 bytes where the tuple takes
/// 40. SipHash with fixed keys, so a replay indexes alike every time.
fn tuple_hash(tuple: &FourTuple) -> u64 {
    let mut h = DefaultHasher::new();
    tuple.hash(&mut h);
    h.finish()
}
