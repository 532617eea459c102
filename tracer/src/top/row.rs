//! One table row per connection, taken from the connection table and the window histories: the
//! numbers the view shows and sorts by, with nothing left to look up while drawing.

use serde_json::Value;

use crate::{
    events::model::{Limit, Side},
    timeline::{
        fmt::{endpoint, ns_to_ms, who_short},
        Conn, ConnKey, ConnTable, FourTuple,
    },
};

/// Closed connections stay in view this long after their close (the table keeps them longer,
/// for summaries; a busy host would otherwise fill the screen with them).
pub const CLOSED_LINGER_NS: u64 = 60_000_000_000;

/// Where a connection's window stands, for the worse of its two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Open,
    Shrinking,
    Reopened,
    Zero,
    Probing,
    /// Ranked apart: a closed connection limits nobody any more.
    Closed,
}

impl State {
    /// The name the timeline's JSON summary uses.
    pub fn name(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Shrinking => "shrinking",
            State::Reopened => "reopened",
            State::Zero => "zero",
            State::Probing => "probing",
            State::Closed => "closed",
        }
    }

    fn from_name(name: &str) -> State {
        match name {
            "shrinking" => State::Shrinking,
            "reopened" => State::Reopened,
            "zero" => State::Zero,
            "probing" => State::Probing,
            "closed" => State::Closed,
            _ => State::Open,
        }
    }

    /// How bad, for choosing the worse side and for sorting: closed below everything.
    pub fn badness(self) -> u8 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::Shrinking => 2,
            State::Reopened => 3,
            State::Zero => 4,
            State::Probing => 5,
        }
    }
}

/// Which connections the view shows: `--port`/`--pid` applied to a recording (live, the kernel
/// filters already).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub ports: Vec<u16>,
    pub pid: Option<u32>,
}

impl Scope {
    /// True when a connection on `tuple`, of process `pid`, is in view.
    pub fn admits(&self, tuple: &FourTuple, pid: Option<u32>) -> bool {
        let port_ok = self.ports.is_empty()
            || self.ports.contains(&tuple.sport)
            || self.ports.contains(&tuple.dport);
        port_ok && self.pid.is_none_or(|p| pid == Some(p))
    }
}

/// One connection as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: ConnKey,
    pub tuple: FourTuple,
    /// "addr:port" of this host's end, and of the peer's.
    pub local: String,
    pub peer: String,
    /// "comm/pid" as the summary prints it.
    pub process: String,
    pub local_window: Option<u32>,
    /// What held the latest local window.
    pub local_limit: Option<Limit>,
    pub peer_window: Option<u32>,
    /// This host's unacknowledged bytes (latest sample).
    pub in_flight: Option<u32>,
    pub state: State,
    /// The side `state` is about; None when both are open or the connection closed.
    pub state_side: Option<Side>,
    /// A zero-window episode is in progress on either side.
    pub zero_now: bool,
    /// Time at zero window, both sides together, and the longest single episode.
    pub zero_ms: u64,
    pub longest_zero_ms: u64,
    pub probes: u64,
    pub max_backoff: u8,
    pub drops: u64,
    /// Share of the sender's busy time limited by the peer's window, in percent.
    pub rwnd_pct: Option<f64>,
    pub closed: bool,
    /// Lower-case text the filter searches: endpoints, ports, process.
    pub search: String,
    /// Where the other end of this connection is, when it is a row too (both ends on this
    /// host): set by the model's ordering, which keeps the two together.
    pub other_end: OtherEnd,
}

/// A row's place next to the other end of its connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtherEnd {
    /// Not among the rows (remote, or not reported).
    #[default]
    None,
    /// The row just below is the other end.
    Below,
    /// The row just above is the other end: drawn marked.
    Above,
}

impl Row {
    /// `conn` as of `now_ns` (a closed one as of its close).
    pub fn of(key: ConnKey, conn: &Conn, now_ns: u64) -> Row {
        let until = conn.until(now_ns);
        let (local, peer) = (&conn.local, &conn.peer);
        let local_end = endpoint(&conn.tuple.saddr, conn.tuple.sport);
        let peer_end = endpoint(&conn.tuple.daddr, conn.tuple.dport);
        let process = who_short(conn.comm.as_deref(), conn.pid);
        let (state, state_side) = worse_side(conn);
        let search = format!("{local_end} > {peer_end} {process}").to_lowercase();
        Row {
            key,
            tuple: conn.tuple,
            local: local_end,
            peer: peer_end,
            process,
            local_window: local.window,
            local_limit: conn.receiver.as_ref().and_then(|r| r.held).map(|c| c.limited_by),
            peer_window: peer.window,
            in_flight: conn.sender.as_ref().map(|s| s.in_flight),
            state,
            state_side,
            zero_now: local.open().is_some() || peer.open().is_some(),
            zero_ms: ns_to_ms(local.zero_ns(until) + peer.zero_ns(until)),
            longest_zero_ms: ns_to_ms(
                local.longest_zero_ns(until).max(peer.longest_zero_ns(until)),
            ),
            probes: local.totals().probes + peer.totals().probes,
            max_backoff: local.totals().max_backoff.max(peer.totals().max_backoff),
            drops: local.totals().drops + peer.totals().drops,
            rwnd_pct: conn.rwnd_limited_share().map(|s| s * 100.0),
            closed: conn.is_closed(),
            search,
            other_end: OtherEnd::None,
        }
    }
}

/// Every connection in view as of `now_ns`: in scope, and live or closed within
/// `CLOSED_LINGER_NS`. In table order (first sighting); the model sorts.
pub fn rows(table: &ConnTable, now_ns: u64, scope: &Scope) -> Vec<Row> {
    table
        .iter()
        .filter(|(_, c)| {
            c.close_ns().is_none_or(|at| now_ns.saturating_sub(at) <= CLOSED_LINGER_NS)
        })
        .filter(|(_, c)| scope.admits(&c.tuple, c.pid))
        .map(|(key, conn)| Row::of(key, conn, now_ns))
        .collect()
}

/// The worse side's state (ties go to the local side: this host's reader is the usual suspect).
fn worse_side(conn: &Conn) -> (State, Option<Side>) {
    if conn.is_closed() {
        return (State::Closed, None);
    }
    let local = side_state(conn, Side::Local);
    let peer = side_state(conn, Side::Peer);
    let (state, side) =
        if peer.badness() > local.badness() { (peer, Side::Peer) } else { (local, Side::Local) };
    (state, (state != State::Open).then_some(side))
}

/// The timeline's window state of one side. Its type is private to the timeline, but its JSON
/// name is part of the summary's contract, so it is read through that.
fn side_state(conn: &Conn, side: Side) -> State {
    match serde_json::to_value(conn.side(side).state) {
        Ok(Value::String(name)) => State::from_name(&name),
        _ => State::Open,
    }
}
