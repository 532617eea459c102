//! zero_window_stall: a side stays at zero window too long; a warning, then critical once the
//! episode reaches the second threshold. Resolves when the window reopens.

use crate::alerts::alert::Severity;
use crate::alerts::check::{after, Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Seen};
use crate::alerts::other_end::OtherEnd;
use crate::alerts::text::{
    app, buffer_state, kib, local, owner, peer, peer_app, peer_reader, reader,
};
use crate::events::model::Side;
use crate::timeline::fmt::{duration_ms, ns_to_ms};

pub(super) struct ZeroWindowStall {
    cfg: config::ZeroWindowStall,
}

impl ZeroWindowStall {
    pub(super) fn new(cfg: &config::ZeroWindowStall) -> Self {
        ZeroWindowStall { cfg: cfg.clone() }
    }
}

impl Check for ZeroWindowStall {
    fn rule(&self) -> Rule {
        Rule::ZeroWindowStall
    }

    fn sees(&self) -> u16 {
        Seen::EPISODE_ENDED | Seen::EPISODE_STARTED
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, _ts_ns: u64) {
        match *seen {
            Seen::EpisodeEnded { side, end_ns, zero_ms } => {
                let info = cx.info();
                let extra = || Evidence::new().with("zero_window_ms", zero_ms).done();
                cx.resolve(
                    Some(side),
                    end_ns,
                    "window_reopened",
                    || resolved(info, side, zero_ms),
                    extra,
                );
            }
            Seen::EpisodeStarted { side, start_ns } if self.cfg.enabled => {
                cx.schedule(Some(side), after(start_ns, self.cfg.warning_ms));
            }
            _ => {}
        }
    }

    /// The episode reached the warning or the critical threshold.
    fn on_timer(&mut self, cx: &mut Cx<'_>, side: Option<Side>, due: u64) {
        let Some(side) = side else { return };
        let Some(start) = cx.facts().zero_since(side) else { return };
        let cfg = &self.cfg;
        let zero_ms = ns_to_ms(due.saturating_sub(start));
        let severity =
            if zero_ms >= cfg.critical_ms { Severity::Critical } else { Severity::Warning };
        cx.fire(Some(side), severity, due, |info| {
            let evidence = Evidence::new()
                .with("zero_window_ms", zero_ms)
                .with(
                    "threshold_ms",
                    if severity == Severity::Critical { cfg.critical_ms } else { cfg.warning_ms },
                )
                .maybe("unread", info.unread.filter(|_| side == Side::Local))
                .maybe("rcvbuf", info.rcvbuf.filter(|_| side == Side::Local))
                .maybe("rcvbuf_locked", info.rcvbuf_locked.filter(|_| side == Side::Local))
                .maybe("counted", info.local_counted.filter(|_| side == Side::Local))
                .maybe("probes", (side == Side::Peer).then_some(info.episode_probes))
                .maybe("in_flight", info.in_flight.filter(|_| side == Side::Peer))
                .maybe("unsent", info.unsent.filter(|_| side == Side::Peer))
                .done();
            let (explanation, fix) = fired(info, side, zero_ms);
            Finding { evidence, explanation, fix }
        });
        if severity == Severity::Warning && cfg.critical_ms > cfg.warning_ms {
            cx.schedule(Some(side), after(start, cfg.critical_ms));
        }
    }
}

/// What the alert says: (explanation, fix).
fn fired(i: &Info, side: Side, zero_ms: u64) -> (String, String) {
    let d = duration_ms(zero_ms);
    match side {
        Side::Local if i.local_counted == Some(false) => {
            let explanation = format!(
                "{} on {} has advertised a zero window for {d} under TCP memory pressure (not \
                 counted in TCPToZeroWindowAdv){}: the host is short of TCP memory, and the \
                 sender at {} is stalled",
                reader(i),
                local(i),
                buffer_state(i),
                peer(i)
            );
            let fix = "TCP memory is exhausted on this host: compare net.ipv4.tcp_mem with the \
                       mem line of /proc/net/sockstat and find the sockets hoarding unread data \
                       (`ss -tm`, large Recv-Q); raising net.ipv4.tcp_mem only buys time"
                .to_string();
            (explanation, fix)
        }
        Side::Local => {
            let explanation = format!(
                "{} on {} has advertised a zero window for {d}: it is not reading{}, and the \
                 sender at {} is stalled",
                reader(i),
                local(i),
                buffer_state(i),
                peer(i)
            );
            let fix = if i.rcvbuf_locked == Some(true) {
                format!(
                    "make {} read faster, or remove its SO_RCVBUF setsockopt: the buffer is \
                     pinned{} and cannot autotune (net.ipv4.tcp_rmem does not apply); the \
                     network is not the problem",
                    app(i),
                    i.rcvbuf.map_or(String::new(), |b| format!(" at {}", kib(b)))
                )
            } else {
                format!(
                    "make {} read faster or in bigger chunks (the network is not the problem); \
                     if it reads in bursts, let the buffer grow: raise the max of \
                     net.ipv4.tcp_rmem and keep net.ipv4.tcp_moderate_rcvbuf=1",
                    app(i)
                )
            };
            (explanation, fix)
        }
        Side::Peer => {
            let waiting = i
                .unsent
                .filter(|&u| u > 0)
                .map_or(String::new(), |u| format!("; {} wait to be sent here", kib(u)));
            let probes = match i.episode_probes {
                0 => String::new(),
                n => format!("; {n} persist probe(s) sent so far"),
            };
            let explanation = format!(
                "the peer {} has advertised a zero window to {} on {} for {d}: {} is not \
                 keeping up{waiting}{probes}",
                peer(i),
                owner(i),
                local(i),
                peer_reader(i)
            );
            let not_here = if i.other_end == OtherEnd::Remote { " or this host" } else { "" };
            let fix = format!(
                "look at {}, not at the network{not_here}: `ss -tm` there shows its Recv-Q \
                 growing; make it read faster or give it more buffer (its net.ipv4.tcp_rmem, \
                 no SO_RCVBUF pin)",
                peer_app(i)
            );
            (explanation, fix)
        }
    }
}

/// The window reopened.
fn resolved(i: &Info, side: Side, zero_ms: u64) -> String {
    let d = duration_ms(zero_ms);
    match side {
        Side::Local => {
            format!("{} on {} reopened its window after {d} at zero", reader(i), local(i))
        }
        Side::Peer => {
            format!("the peer {} reopened its window to {} after {d} at zero", peer(i), owner(i))
        }
    }
}
