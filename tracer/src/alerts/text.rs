//! The phrases alert texts share: who and where (the endpoints, the owning and the reading
//! process), sizes, the receive buffer's state, and the resolution of any rule whose connection
//! ended. Each rule writes its own explanation and fix (in `rules/`) in the terms of `ss`,
//! `nstat` and the sysctls an SRE would reach for.

use super::config::Rule;
use super::facts::Info;
use crate::timeline::fmt::{bytes, endpoint, who};

pub(super) fn local(i: &Info) -> String {
    endpoint(&i.tuple.saddr, i.tuple.sport)
}

pub(super) fn peer(i: &Info) -> String {
    endpoint(&i.tuple.daddr, i.tuple.dport)
}

pub(super) fn peer_host(i: &Info) -> String {
    i.tuple.daddr.to_string()
}

/// The process owning the socket.
pub(super) fn owner(i: &Info) -> String {
    who(i.comm.as_deref(), i.pid)
}

/// The process reading the socket: the one seen reading, else the owner.
pub(super) fn reader(i: &Info) -> String {
    match &i.reader {
        Some((comm, pid)) => who(Some(comm), pid.or(i.pid)),
        None => owner(i),
    }
}

/// The reading program's name for a fix ("python3"), or "the application".
pub(super) fn app(i: &Info) -> String {
    let name = i.reader.as_ref().map(|(c, _)| &**c).or(i.comm.as_deref());
    name.filter(|c| !c.is_empty()).unwrap_or("the application").to_string()
}

pub(super) fn kib(n: u32) -> String {
    bytes(u64::from(n))
}

/// "; 4.0 KiB sit unread in a 8.0 KiB buffer pinned by SO_RCVBUF", as far as known.
pub(super) fn buffer_state(i: &Info) -> String {
    let pinned = if i.rcvbuf_locked == Some(true) { " pinned by SO_RCVBUF" } else { "" };
    match (i.unread, i.rcvbuf) {
        (Some(u), Some(b)) => format!("; {} sit unread in a {} buffer{pinned}", kib(u), kib(b)),
        (None, Some(b)) => format!("; its receive buffer is {}{pinned}", kib(b)),
        (Some(u), None) => format!("; {} sit unread", kib(u)),
        (None, None) => String::new(),
    }
}

/// Any rule, resolved because the connection ended (`why`: close, superseded, evicted).
pub(super) fn ended(i: &Info, rule: Rule, why: &str) -> String {
    let how = match why {
        "close" => "closed".to_string(),
        "superseded" => {
            "ended (its socket was reused by a new connection; the close was not seen)".to_string()
        }
        "evicted" => {
            "is no longer tracked (evicted from the connection table at its live capacity)"
                .to_string()
        }
        other => other.to_string(),
    };
    format!(
        "{} ends: the connection {} > {} of {} {how}",
        rule.as_str(),
        local(i),
        peer(i),
        owner(i)
    )
}
