//! Who is at the other end of a connection, for alert texts: when both ends are on this host
//! the tracer has usually seen the other socket too (its 4-tuple is the mirror of this one),
//! and can name the process there instead of sending the operator to look for it.
//!
//! Looked up only when an alert fires, from the connection table as it stands then.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::timeline::fmt::who;
use crate::timeline::{ConnTable, FourTuple};

/// The other end of a connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum OtherEnd {
    /// Not known to be on this host.
    #[default]
    Remote,
    /// On this host (a loopback or this host's own address), but its socket was not reported:
    /// without --port, --pid or --every-connection a healthy end stays quiet.
    LocalUnseen,
    /// On this host: the process reading the other socket (else the one owning it).
    Local { comm: Option<Arc<str>>, pid: Option<u32> },
}

impl OtherEnd {
    /// The other end of the connection on `tuple`, as `table` knows it now.
    pub(super) fn of(table: &ConnTable, tuple: &FourTuple) -> OtherEnd {
        // A socket connected to itself (a simultaneous open on one port) is its own mirror.
        match table.peer_of(tuple).filter(|(_, c)| c.tuple != *tuple) {
            Some((_, c)) => {
                let reader = c.reader.as_ref().filter(|r| !r.comm.is_empty());
                match reader {
                    Some(r) => OtherEnd::Local { comm: Some(r.comm.clone()), pid: r.pid.or(c.pid) },
                    None => OtherEnd::Local { comm: c.comm.clone(), pid: c.pid },
                }
            }
            None if tuple.peer_surely_local() => OtherEnd::LocalUnseen,
            None => OtherEnd::Remote,
        }
    }

    /// "python3 (pid 7)" when named.
    pub(super) fn who(&self) -> Option<String> {
        match self {
            OtherEnd::Local { comm, pid } => Some(who(comm.as_deref(), *pid)),
            _ => None,
        }
    }

    /// Its part of an alert's evidence: `peer_local`, and `peer_pid` and `peer_comm` when known.
    pub(super) fn add_evidence(&self, evidence: &mut Map<String, Value>) {
        match self {
            OtherEnd::Remote => {}
            OtherEnd::LocalUnseen => {
                evidence.insert("peer_local".into(), true.into());
            }
            OtherEnd::Local { comm, pid } => {
                evidence.insert("peer_local".into(), true.into());
                if let Some(pid) = pid {
                    evidence.insert("peer_pid".into(), (*pid).into());
                }
                if let Some(comm) = comm.as_deref().filter(|c| !c.is_empty()) {
                    evidence.insert("peer_comm".into(), comm.into());
                }
            }
        }
    }
}
