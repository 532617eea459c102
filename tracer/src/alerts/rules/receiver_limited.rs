//! receiver_limited: this host's sender was held back by the peer's receive window for most of
//! an interval (the kernel's rwnd_limited counter over wall time, measured in `facts`).
//! Resolves after an interval below the threshold.

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Interval, Seen};
use crate::alerts::text::{kib, local, owner, peer, peer_app};
use crate::events::model::Side;
use crate::timeline::fmt::duration_ms;

pub(super) struct ReceiverLimited {
    cfg: config::ReceiverLimited,
}

impl ReceiverLimited {
    pub(super) fn new(cfg: &config::ReceiverLimited) -> Self {
        ReceiverLimited { cfg: cfg.clone() }
    }
}

impl Check for ReceiverLimited {
    fn rule(&self) -> Rule {
        Rule::ReceiverLimited
    }

    fn sees(&self) -> u16 {
        Seen::INTERVAL
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        let Seen::Interval(iv) = seen else { return };
        if !self.cfg.enabled {
            return;
        }
        let Interval { pct, limited_ms, interval_ms, in_flight, unsent, limited, .. } = *iv;
        let info = cx.info();
        if limited {
            cx.fire(Some(Side::Peer), Severity::Warning, ts, |info| {
                let evidence = Evidence::new()
                    .with("rwnd_limited_pct", pct)
                    .with("rwnd_limited_ms", limited_ms)
                    .with("interval_ms", interval_ms)
                    .with("in_flight", in_flight)
                    .with("unsent", unsent)
                    .maybe("peer_window", info.peer_window)
                    .maybe("srtt_us", info.srtt_us)
                    .done();
                let (explanation, fix) = fired(info, pct, interval_ms, limited_ms);
                Finding { evidence, explanation, fix }
            });
        } else {
            let extra = || Evidence::new().with("rwnd_limited_pct", pct).done();
            cx.resolve(
                Some(Side::Peer),
                ts,
                "below_threshold",
                || resolved(info, pct, interval_ms),
                extra,
            );
        }
    }
}

/// What the alert says: (explanation, fix).
fn fired(i: &Info, pct: f64, interval_ms: u64, limited_ms: u64) -> (String, String) {
    let data = match (i.in_flight, i.unsent) {
        (Some(f), Some(u)) => format!(" with {} in flight and {} waiting", kib(f), kib(u)),
        _ => String::new(),
    };
    let explanation = format!(
        "{} on {} sending to {} was held back by the peer's receive window {pct:.0}% of the \
         last {} ({}){data}: the receiver, not the network, sets the pace",
        owner(i),
        local(i),
        peer(i),
        duration_ms(interval_ms),
        duration_ms(limited_ms)
    );
    let fix = format!(
        "make {} read faster or let its buffer grow (net.ipv4.tcp_rmem max, no SO_RCVBUF pin, \
         net.ipv4.tcp_window_scaling=1); `ss -ti` here shows rwnd_limited growing",
        peer_app(i)
    );
    (explanation, fix)
}

fn resolved(i: &Info, pct: f64, interval_ms: u64) -> String {
    format!(
        "the peer's window limited {} on {} only {pct:.0}% of the last {}",
        owner(i),
        local(i),
        duration_ms(interval_ms)
    )
}
