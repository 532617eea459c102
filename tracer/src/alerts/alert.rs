//! The alert record: one line of NDJSON next to the flow-control events, and its terminal row.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::Rule;
use crate::events::model::Side;
use crate::timeline::fmt::{duration_ms, endpoint, who_short};
use crate::timeline::FourTuple;

/// An alert starting (or escalating), or ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Alert,
    AlertResolved,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

/// One alert event: a line of NDJSON next to the flow-control events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Alert {
    /// When the condition was met (a threshold crossing, not when it was noticed), ns since
    /// the epoch.
    pub ts_ns: u64,
    pub kind: AlertKind,
    pub rule: Rule,
    pub severity: Severity,
    /// Whose window: `local` (this host receives) or `peer` (the peer receives); absent for
    /// rules about the whole connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The numbers behind it (and `resolved_by` when resolved).
    pub evidence: Map<String, Value>,
    pub explanation: String,
    pub fix: String,
    /// How long it was active (resolved only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl Alert {
    /// The connection it is about, as this host sees it.
    pub fn tuple(&self) -> FourTuple {
        FourTuple { saddr: self.saddr, sport: self.sport, daddr: self.daddr, dport: self.dport }
    }

    /// One terminal row in the layout of the event lines, without the time of day: the caller
    /// prefixes its own clock rendering of `ts_ns` so alerts line up with events.
    pub fn line(&self) -> String {
        let conn = format!(
            "{} > {}",
            endpoint(&self.saddr, self.sport),
            endpoint(&self.daddr, self.dport)
        );
        let side = self.side.map_or(String::new(), |s| format!(" ({})", s.as_str()));
        let detail = match self.kind {
            AlertKind::Alert => format!(
                "{} {}{side}: {} | fix: {}",
                match self.severity {
                    Severity::Warning => "WARNING",
                    Severity::Critical => "CRITICAL",
                },
                self.rule.as_str(),
                self.explanation,
                self.fix
            ),
            AlertKind::AlertResolved => format!(
                "resolved {}{side}, active {}: {}",
                self.rule.as_str(),
                duration_ms(self.duration_ms.unwrap_or(0)),
                self.explanation
            ),
        };
        let kind = match self.kind {
            AlertKind::Alert => "alert",
            AlertKind::AlertResolved => "alert_resolved",
        };
        format!(
            "{:<17} {:<47} {:<16} {}",
            kind,
            conn,
            who_short(self.comm.as_deref(), self.pid),
            detail
        )
    }
}
