//! persist_backoff: zero-window probes to the peer go unanswered, or have backed off to long
//! intervals. Resolves when the peer's window reopens.

use serde_json::Map;

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, ProbeSeen, Seen};
use crate::alerts::text::{app, local, owner, peer, peer_app};
use crate::events::model::Side;
use crate::timeline::fmt::duration_ms;

pub(super) struct PersistBackoff {
    cfg: config::PersistBackoff,
}

impl PersistBackoff {
    pub(super) fn new(cfg: &config::PersistBackoff) -> Self {
        PersistBackoff { cfg: cfg.clone() }
    }

    /// Too many unanswered probes, or the next one too far away.
    fn probe(&self, cx: &mut Cx<'_>, p: &ProbeSeen, ts: u64) {
        let cfg = &self.cfg;
        if !cfg.enabled {
            return;
        }
        let by_count = u64::from(p.probes_out) >= cfg.probes_out;
        let by_interval = p.next_probe_ms.is_some_and(|ms| ms >= cfg.interval_ms as f64);
        if !(by_count || by_interval) {
            return;
        }
        cx.fire(Some(Side::Peer), Severity::Warning, ts, |info| {
            let evidence = Evidence::new()
                .with("probes_out", p.probes_out)
                .with("backoff", p.backoff)
                .maybe("next_probe_ms", p.next_probe_ms)
                .maybe("rto_ms", p.rto_ms)
                .with("snd_wnd", p.snd_wnd)
                .with("unacked", p.unacked)
                .with("probes", info.episode_probes)
                .maybe("unsent", info.unsent)
                .done();
            let (explanation, fix) = fired(info, p, by_count);
            Finding { evidence, explanation, fix }
        });
    }
}

impl Check for PersistBackoff {
    fn rule(&self) -> Rule {
        Rule::PersistBackoff
    }

    fn sees(&self) -> u16 {
        Seen::PEER_REOPENED | Seen::PROBE
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        match seen {
            Seen::Probe(p) => self.probe(cx, p, ts),
            // Probing is over.
            Seen::PeerReopened => {
                let info = cx.info();
                cx.resolve(Some(Side::Peer), ts, "window_reopened", || resolved(info), Map::new);
            }
            _ => {}
        }
    }
}

/// What the alert says, by unanswered probes or by the probe interval: (explanation, fix).
fn fired(i: &Info, p: &ProbeSeen, by_count: bool) -> (String, String) {
    let next = p.next_probe_ms.map(|ms| duration_ms(ms.max(0.0) as u64));
    if by_count {
        let explanation = format!(
            "{} on {} has {} zero-window probes to {} unanswered (backoff {}{}): the peer \
             keeps its window closed and does not even acknowledge the probes; it may be hung, \
             gone, or behind a middlebox that drops them",
            owner(i),
            local(i),
            p.probes_out,
            peer(i),
            p.backoff,
            next.map_or(String::new(), |n| format!(", next in {n}"))
        );
        let fix = format!(
            "check that {} is alive and reads (`ss -tm` there); the kernel aborts after \
             net.ipv4.tcp_retries2 unanswered probes: set TCP_USER_TIMEOUT in {} to give up \
             sooner",
            peer_app(i),
            app(i)
        );
        (explanation, fix)
    } else {
        let explanation = format!(
            "{} on {} now probes the zero window of {} only every {} (backoff {}): the window \
             has been closed a long time, and if the peer's window update is lost this host \
             waits that long to notice",
            owner(i),
            local(i),
            peer(i),
            next.unwrap_or_else(|| "?".into()),
            p.backoff
        );
        let fix = format!(
            "find why {} stopped reading (`ss -tm` there: Recv-Q full); the probe interval \
             doubles per backoff up to TCP_RTO_MAX (120 s) and needs no tuning",
            peer_app(i)
        );
        (explanation, fix)
    }
}

fn resolved(i: &Info) -> String {
    format!("the peer {} reopened its window; {} stopped probing", peer(i), owner(i))
}
