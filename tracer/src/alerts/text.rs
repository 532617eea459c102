//! The phrases alert texts share: who and where (the endpoints, the owning and the reading
//! process), sizes, the receive buffer's state, and the resolution of any rule whose connection
//! ended. Each rule writes its own explanation and fix (in `rules/`) in the terms of `ss`,
//! `nstat` and the sysctls an SRE would reach for.

use super::config::Rule;
use super::facts::Info;
use super::other_end::OtherEnd;
use crate::timeline::fmt::{bytes, endpoint, who};

pub(super) fn local(i: &Info) -> String {
    endpoint(&i.tuple.saddr, i.tuple.sport)
}

/// The peer's endpoint, and who is there when it is on this host: "127.0.0.1:7777 (python3,
/// pid 7, on this host)".
pub(super) fn peer(i: &Info) -> String {
    let at = endpoint(&i.tuple.daddr, i.tuple.dport);
    match &i.other_end {
        OtherEnd::Remote => at,
        OtherEnd::LocalUnseen => format!("{at} (on this host, its socket not seen)"),
        OtherEnd::Local { comm, pid } => {
            let name = comm.as_deref().filter(|c| !c.is_empty());
            match (name, pid) {
                (Some(c), Some(p)) => format!("{at} ({c}, pid {p}, on this host)"),
                (None, Some(p)) => format!("{at} (pid {p}, on this host)"),
                (Some(c), None) => format!("{at} ({c}, on this host)"),
                (None, None) => format!("{at} (on this host)"),
            }
        }
    }
}

/// Who reads at the peer's end, in an explanation: "python3 (pid 7)" on this host, else "the
/// application reading on 10.0.0.2".
pub(super) fn peer_reader(i: &Info) -> String {
    i.other_end.who().unwrap_or_else(|| format!("the application reading on {}", peer_host(i)))
}

/// The application reading at the peer's end, for a fix: "the receiving application on
/// 10.0.0.2", or on this host "python3 (pid 7), the reader at 127.0.0.1:7777 on this host";
/// when that socket was not seen, the `ss` command that names it.
pub(super) fn peer_app(i: &Info) -> String {
    let at = endpoint(&i.tuple.daddr, i.tuple.dport);
    match (&i.other_end, i.other_end.who()) {
        (OtherEnd::Local { .. }, Some(who)) => format!("{who}, the reader at {at} on this host"),
        (OtherEnd::Remote, _) => format!("the receiving application on {}", peer_host(i)),
        _ => {
            format!("the receiving application at {at} on this host (`ss -tpn src {at}` names it)")
        }
    }
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
