//! The connection table: finds (or creates) the connection each event belongs to and keeps
//! memory bounded — every live connection up to a cap (least recently updated evicted first),
//! plus a bounded number of recently closed ones (oldest closed evicted first).
//!
//! Connections sit in a slab: an event reaches its connection through one hash lookup (socket
//! address to slot) and the slot, and the recency order is a list linked through a dense array
//! beside the slots, so the per-event work does not grow with the number of connections.

use std::collections::VecDeque;
use std::fmt;

use foldhash::HashMap;
use serde::Serialize;

use super::conn::{Conn, ConnId, FourTuple};
use super::index::SlotIndex;
use super::names::Names;
use crate::events::model::{Body, Event};
use crate::host::prefetch;

/// A connection's handle in the table. Serial numbers, not socket addresses: the kernel reuses
/// a socket's address for a later connection, and both may be in the table (one closed). The
/// slot says where it sits; keys order (and print) by serial number alone, as the slot is
/// decided by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    serial: u64,
    slot: u32,
}

impl fmt::Display for ConnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.serial)
    }
}

impl ConnKey {
    /// Where it sits in the table: a small index, reused once the connection leaves, that a
    /// consumer may use for its own per-connection slab (checking the key it stored there).
    pub fn slot(&self) -> usize {
        self.slot as usize
    }

    /// Its serial number: with `slot`, the whole key (such a slab can keep this alone).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The key that `serial()` and `slot()` of some key gave.
    pub fn of(serial: u64, slot: usize) -> Self {
        // Slots come from `slot()`, which widened a u32.
        ConnKey { serial, slot: u32::try_from(slot).unwrap_or(NIL) }
    }
}

impl Serialize for ConnKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.serial)
    }
}

/// No slot: the end of the recency list.
const NIL: u32 = u32::MAX;

/// One place in the slab: a connection (None while free) and its serial number.
#[derive(Debug)]
struct Entry {
    serial: u64,
    conn: Option<Conn>,
}

/// A slot's links in the recency list while its connection is live (`prev` updated less
/// recently; both NIL when not in it). Kept apart from the slots, 8 bytes each: moving a
/// connection to the newest end writes its two neighbours' links, and those neighbours are any
/// two connections; this dense array (80 KB at 10,000 connections) stays in cache better than
/// the slots' far ends (cachegrind, a 2 MiB cache, the pipeline bench at 10,000 connections:
/// 13.0 -> 12.4 misses an event; the time per event moved less than this host's noise).
#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

impl Link {
    const UNLINKED: Link = Link { prev: NIL, next: NIL };
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
/// Memory per live connection is what a busy host pays: its slot with the connection itself (in
/// place: no allocation of its own, and no pointer to follow per event), its links in the
/// recency list (8 bytes), and one entry in each of the two identity indexes.
#[derive(Debug)]
pub struct ConnTable {
    limits: Limits,
    slots: Vec<Entry>,
    /// Each slot's links in the recency list, by slot.
    links: Vec<Link>,
    /// Slots free for reuse.
    free: Vec<u32>,
    /// Connections kept, live and closed.
    kept: usize,
    next_key: u64,
    /// Live connections by socket address, by 4-tuple for those the kernel named no socket for,
    /// and by 4-tuple (the latest on each) for drops that name no socket: slots.
    live_socks: SlotIndex,
    live_tuples: HashMap<FourTuple, u32>,
    by_tuple: SlotIndex,
    /// Live connections now (those in the recency list).
    live_len: usize,
    /// The recency list of live connections: least and most recently updated.
    oldest: u32,
    newest: u32,
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

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable {
            limits: Limits::default(),
            slots: Vec::new(),
            links: Vec::new(),
            free: Vec::new(),
            kept: 0,
            next_key: 0,
            live_socks: SlotIndex::default(),
            live_tuples: HashMap::default(),
            by_tuple: SlotIndex::default(),
            live_len: 0,
            oldest: NIL,
            newest: NIL,
            names: Names::default(),
            closed: HashMap::default(),
            closed_order: VecDeque::new(),
            ended: VecDeque::new(),
            ended_seq: 0,
            evicted: 0,
        }
    }
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
        let key = self.locate(e);
        let mut live = false;
        let linked = self.is_linked(key.slot);
        if let Some(entry) =
            self.slots.get_mut(key.slot as usize).filter(|s| s.serial == key.serial)
        {
            if let Some(conn) = entry.conn.as_mut() {
                live = linked;
                conn.apply(e, &mut self.names);
            }
        }
        if live && matches!(e.body, Body::Close { .. }) {
            self.retire(key, e.ts_ns);
        } else if live {
            self.touch(key.slot);
        }
        while self.live_len > self.limits.live_capacity {
            let Some(oldest) = self.least_recent() else { break };
            self.evict(oldest, e.ts_ns);
        }
        key
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Conn> {
        self.slots.get(key.slot as usize).filter(|s| s.serial == key.serial)?.conn.as_ref()
    }

    fn get_mut(&mut self, key: &ConnKey) -> Option<&mut Conn> {
        self.slots.get_mut(key.slot as usize).filter(|s| s.serial == key.serial)?.conn.as_mut()
    }

    #[cfg(test)]
    /// The connection an identity names now: the live one, else a recently closed one.
    pub fn lookup(&self, id: &ConnId) -> Option<ConnKey> {
        self.live_get(id).or_else(|| self.closed.get(id).copied())
    }

    /// Every connection kept, in order of first sighting. Slots are reused, so this sorts them
    /// (views and scrapes call it, not events: an index kept in order would cost every
    /// connection its entry).
    pub fn iter(&self) -> impl Iterator<Item = (ConnKey, &Conn)> {
        let mut kept: Vec<(ConnKey, &Conn)> = Vec::with_capacity(self.kept);
        kept.extend(self.slots.iter().zip(0..).filter_map(|(e, slot)| {
            e.conn.as_ref().map(|c| (ConnKey { serial: e.serial, slot }, c))
        }));
        kept.sort_unstable_by_key(|(key, _)| *key);
        kept.into_iter()
    }

    #[cfg(test)]
    /// Connections kept, live and closed.
    pub fn len(&self) -> usize {
        self.kept
    }

    #[cfg(test)]
    /// The recency list, least recently updated first.
    pub fn recency(&self) -> Vec<ConnKey> {
        let mut out = Vec::new();
        let mut at = self.oldest;
        while at != NIL {
            out.push(self.key_at(at));
            at = self.links[at as usize].next;
        }
        out
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
            match self.get_mut(&key) {
                // Events that arrived before the open of the same connection.
                Some(c) if c.open_ns().is_none() && c.tuple == tuple => return key,
                // A late open sent twice (two CPUs reported the quiet connection at once).
                Some(c) if late && c.open_ns() == Some(e.ts_ns) && c.tuple == tuple => return key,
                // The socket address was reused: the earlier connection's close was lost.
                Some(c) => c.close_implicitly(e.ts_ns, "superseded"),
                None => {}
            }
            self.log(key, e.ts_ns, EndReason::Superseded);
            self.retire(key, e.ts_ns);
        } else if !is_open {
            // A late event of a connection that just closed.
            if let Some(&key) = self.closed.get(&id) {
                if self.get(&key).is_some_and(|c| c.tuple == tuple) {
                    return key;
                }
            }
        }
        self.create(id, e)
    }

    fn create(&mut self, id: ConnId, e: &Event) -> ConnKey {
        let conn = Conn::new(id, e, self.limits.episodes_per_side);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Entry { serial: 0, conn: None });
                self.links.push(Link::UNLINKED);
                // Slots past u32::MAX - 1 cannot be named: more connections than memory holds.
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 G connections kept")
            }
        };
        let key = ConnKey { serial: self.next_key, slot };
        self.next_key += 1;
        let tuple = conn.tuple;
        let entry = &mut self.slots[slot as usize];
        *entry = Entry { serial: key.serial, conn: Some(conn) };
        self.links[slot as usize] = Link::UNLINKED;
        self.kept += 1;
        let slots = &self.slots;
        self.by_tuple.insert(&tuple, slot, |s| tuple_at(slots, s));
        match id {
            ConnId::Sock(sk) => self.live_socks.insert(&sk, slot, |s| sock_at(slots, s)),
            ConnId::Tuple(tuple) => {
                self.live_tuples.insert(tuple, slot);
            }
        }
        self.live_len += 1;
        self.link_newest(slot);
        key
    }

    /// The live connection an identity names.
    fn live_get(&self, id: &ConnId) -> Option<ConnKey> {
        let slot = match id {
            ConnId::Sock(sk) => self.live_socks.get(sk, |s| sock_at(&self.slots, s)),
            ConnId::Tuple(tuple) => self.live_tuples.get(tuple).copied(),
        }?;
        Some(self.key_at(slot))
    }

    /// The live connection on a 4-tuple.
    pub(super) fn live_on(&self, tuple: &FourTuple) -> Option<ConnKey> {
        let slot = self.by_tuple.get(tuple, |s| tuple_at(&self.slots, s))?;
        Some(self.key_at(slot))
    }

    /// Asks the CPU to bring into cache the live connection of socket `sk` (an event's `sk`),
    /// and calls `then` with its slot, for the caller's own per-slot state: the handling of
    /// an event that comes before it then hides the wait. Changes nothing.
    pub fn prefetch(&self, sk: u64, mut then: impl FnMut(usize)) {
        if sk == 0 {
            return;
        }
        self.live_socks.candidates(&sk, |slot| {
            if let Some(entry) = self.slots.get(slot as usize) {
                prefetch::read(entry);
                then(slot as usize);
            }
        });
    }

    /// Mark a live connection updated now: it moves to the newest end of the recency list.
    fn touch(&mut self, slot: u32) {
        if self.newest == slot {
            return;
        }
        self.unlink(slot);
        self.link_newest(slot);
    }

    fn link_newest(&mut self, slot: u32) {
        let newest = self.newest;
        self.links[slot as usize] = Link { prev: newest, next: NIL };
        match newest {
            NIL => self.oldest = slot,
            n => self.links[n as usize].next = slot,
        }
        self.newest = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Link { prev, next } = self.links[slot as usize];
        match prev {
            NIL => self.oldest = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.newest = prev,
            n => self.links[n as usize].prev = prev,
        }
        self.links[slot as usize] = Link::UNLINKED;
    }

    /// Whether `slot` is in the recency list (its connection is live).
    fn is_linked(&self, slot: u32) -> bool {
        self.links.get(slot as usize).is_some_and(|l| l.prev != NIL || l.next != NIL)
            || (self.oldest == slot && slot != NIL)
    }

    /// The key of the connection in `slot`.
    fn key_at(&self, slot: u32) -> ConnKey {
        ConnKey { serial: self.slots[slot as usize].serial, slot }
    }

    /// The least recently updated live connection.
    fn least_recent(&self) -> Option<ConnKey> {
        (self.oldest != NIL).then(|| self.key_at(self.oldest))
    }

    /// Stop indexing a connection as live.
    fn unindex_live(&mut self, key: ConnKey) -> Option<ConnId> {
        let was_live = self.is_linked(key.slot);
        let entry = self.slots.get(key.slot as usize).filter(|s| s.serial == key.serial)?;
        let conn = entry.conn.as_ref()?;
        let (id, tuple) = (conn.id(), conn.tuple);
        if was_live {
            self.unlink(key.slot);
            self.live_len -= 1;
        }
        // Another connection may have taken over the identity or the 4-tuple since.
        if self.live_get(&id) == Some(key) {
            match id {
                ConnId::Sock(sk) => self.live_socks.remove(&sk, key.slot),
                ConnId::Tuple(tuple) => {
                    self.live_tuples.remove(&tuple);
                }
            }
        }
        self.by_tuple.remove(&tuple, key.slot);
        Some(id)
    }

    /// Take a connection out of the table, freeing its slot.
    fn remove(&mut self, key: ConnKey) -> Option<Conn> {
        let entry = self.slots.get_mut(key.slot as usize).filter(|s| s.serial == key.serial)?;
        let conn = entry.conn.take()?;
        self.kept -= 1;
        self.free.push(key.slot);
        Some(conn)
    }

    /// Move a connection from live to closed, forgetting the oldest closed ones past the cap.
    fn retire(&mut self, key: ConnKey, ts_ns: u64) {
        if let Some(id) = self.unindex_live(key) {
            self.closed.insert(id, key);
            self.closed_order.push_back(key);
        }
        while self.closed_order.len() > self.limits.closed_capacity {
            let Some(oldest) = self.closed_order.pop_front() else { break };
            if let Some(conn) = self.remove(oldest) {
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
        self.remove(key);
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

/// The socket address of the connection in `slot`, as the live index by socket reads it.
fn sock_at(slots: &[Entry], slot: u32) -> Option<u64> {
    slots.get(slot as usize)?.conn.as_ref().map(Conn::sk)
}

/// The 4-tuple of the connection in `slot`, as the live index by 4-tuple reads it.
fn tuple_at(slots: &[Entry], slot: u32) -> Option<FourTuple> {
    slots.get(slot as usize)?.conn.as_ref().map(|c| c.tuple)
}
