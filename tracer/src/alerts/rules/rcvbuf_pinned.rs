//! rcvbuf_pinned: SO_RCVBUF pinned the receive buffer, and the local window limits the peer
//! (zero, or below one MSS). Resolves after a quiet period without limiting; the countdown
//! pauses while the window is at zero.

use serde_json::Map;

use crate::alerts::alert::Severity;
use crate::alerts::check::{after, Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Seen};
use crate::alerts::text::{app, kib, local, peer, reader};
use crate::events::model::Side;
use crate::timeline::fmt::duration_ms;

const SIDE: Option<Side> = Some(Side::Local);

pub(super) struct RcvbufPinned {
    cfg: config::QuietRule,
}

impl RcvbufPinned {
    pub(super) fn new(cfg: &config::QuietRule) -> Self {
        RcvbufPinned { cfg: cfg.clone() }
    }

    /// The local window limits the peer right now: fire if SO_RCVBUF pinned the buffer; the
    /// quiet countdown restarts (and pauses while at zero).
    fn limiting(&self, cx: &mut Cx<'_>, ts: u64) {
        let info = cx.info();
        if !self.cfg.enabled || info.rcvbuf_locked != Some(true) {
            return;
        }
        let at_zero = cx.facts().zero_since(Side::Local).is_some();
        cx.fire(SIDE, Severity::Warning, ts, |info| {
            let evidence = Evidence::new()
                .maybe("rcvbuf", info.rcvbuf)
                .maybe("unread", info.unread)
                .maybe("window", info.local_window)
                .maybe("mss", info.mss)
                .done();
            let (explanation, fix) = fired(info, at_zero);
            Finding { evidence, explanation, fix }
        });
        if at_zero {
            cx.cancel(SIDE);
        } else {
            cx.schedule(SIDE, after(ts, self.cfg.quiet_ms));
        }
    }
}

impl Check for RcvbufPinned {
    fn rule(&self) -> Rule {
        Rule::RcvbufPinned
    }

    fn sees(&self) -> u16 {
        Seen::EPISODE_ENDED | Seen::EPISODE_STARTED | Seen::RCVBUF_LOCKED | Seen::WINDOW
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        let info = cx.info();
        match *seen {
            // The zero window limited the peer until it ended: the quiet period starts there.
            Seen::EpisodeEnded { side: Side::Local, end_ns, .. } if cx.is_active(SIDE) => {
                cx.schedule(SIDE, after(end_ns, self.cfg.quiet_ms));
            }
            Seen::EpisodeStarted { side: Side::Local, .. } => self.limiting(cx, ts),
            // A window below one MSS limits the peer too.
            Seen::Window { side: Side::Local, window }
                if info.mss.is_some_and(|mss| window < mss) =>
            {
                self.limiting(cx, ts)
            }
            // Pinned, and already limiting: a zero window open, or the last window below MSS.
            Seen::RcvbufLocked => {
                let small =
                    matches!((info.local_window, info.mss), (Some(w), Some(mss)) if w < mss);
                if cx.facts().zero_since(Side::Local).is_some() || small {
                    self.limiting(cx, ts);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, _side: Option<Side>, due: u64) {
        // No countdown runs while the local window is at zero: a timer then is stale.
        if cx.facts().zero_since(Side::Local).is_some() {
            return;
        }
        let quiet = self.cfg.quiet_ms;
        let info = cx.info();
        cx.resolve(SIDE, due, "quiet", || resolved(info, quiet), Map::new);
    }
}

/// What the alert says: (explanation, fix).
fn fired(i: &Info, at_zero: bool) -> (String, String) {
    let limit = if at_zero {
        "the window is zero".to_string()
    } else {
        match (i.local_window, i.mss) {
            (Some(w), Some(m)) => {
                format!("the window is down to {}, below one MSS ({})", kib(w), kib(m))
            }
            _ => "the window is below one MSS".to_string(),
        }
    };
    let unread = i.unread.map_or(String::new(), |u| format!(" with {} unread", kib(u)));
    let explanation = format!(
        "{} on {} pinned its receive buffer{} with SO_RCVBUF (autotuning off), and it now \
         limits the sender at {}: {limit}{unread}",
        reader(i),
        local(i),
        i.rcvbuf.map_or(String::new(), |b| format!(" at {}", kib(b))),
        peer(i)
    );
    let fix = format!(
        "remove the SO_RCVBUF setsockopt from {} (or raise it well above bandwidth x RTT) so \
         the kernel can autotune the buffer up to the max of net.ipv4.tcp_rmem \
         (net.ipv4.tcp_moderate_rcvbuf=1)",
        app(i)
    );
    (explanation, fix)
}

fn resolved(i: &Info, quiet_ms: u64) -> String {
    format!(
        "the pinned buffer of {} on {} has not limited the window for {}",
        reader(i),
        local(i),
        duration_ms(quiet_ms)
    )
}
