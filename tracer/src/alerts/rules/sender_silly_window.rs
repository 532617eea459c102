//! sender_silly_window: this host's sender keeps sending segments far below the MSS into a
//! small window (the sender's side of the silly window syndrome). Over each receiver_limited
//! interval the kernel's own counters (tcp_info's bytes_sent and data_segs_out) give the mean
//! data segment; it fires when enough segments average at most `segment_pct` of the MSS while
//! the peer's window is what holds them: the sender was window-limited for most of the
//! interval, or the peer never offered two segments' worth (Linux then cuts its segments to half
//! the largest window: tcp_bound_to_half_wnd). It resolves at the first interval that is not so.

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Interval, Seen, SegmentsSent};
use crate::alerts::text::{local, owner, peer, peer_app};
use crate::events::model::Side;
use crate::timeline::fmt::bytes;

pub(super) struct SenderSillyWindow {
    cfg: config::SenderSillyWindow,
}

impl SenderSillyWindow {
    pub(super) fn new(cfg: &config::SenderSillyWindow) -> Self {
        SenderSillyWindow { cfg: cfg.clone() }
    }

    /// The interval's segments when they are the silly kind.
    fn silly<'a>(&self, iv: &'a Interval, mss: u32) -> Option<&'a SegmentsSent> {
        let sent = iv.segments.as_ref()?;
        let small = sent.count >= self.cfg.segments
            && sent.mean() as f64 * 100.0 <= f64::from(mss) * self.cfg.segment_pct;
        let window_holds = iv.limited || u64::from(sent.max_window) < 2 * u64::from(mss);
        (small && window_holds).then_some(sent)
    }
}

impl Check for SenderSillyWindow {
    fn rule(&self) -> Rule {
        Rule::SenderSillyWindow
    }

    fn sees(&self) -> u16 {
        Seen::INTERVAL
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        let Seen::Interval(iv) = seen else { return };
        if !self.cfg.enabled {
            return;
        }
        let info = cx.info();
        // The MSS the peer announced: the kernel's current one (mss_cache) is itself cut to
        // half the largest window when the peer's window is small.
        let announced = iv.segments.as_ref().map(|s| s.peer_mss).filter(|&m| m > 0);
        let Some(mss) = announced.or(info.mss).filter(|&m| m > 0) else { return };
        let side = Some(Side::Peer);
        match self.silly(iv, mss) {
            Some(sent) => {
                cx.fire(side, Severity::Warning, ts, |info| finding(info, iv, sent, mss));
            }
            None => {
                let mean = iv.segments.as_ref().map(SegmentsSent::mean);
                cx.resolve(
                    side,
                    ts,
                    "segments_not_small",
                    || {
                        let now = mean.map_or_else(String::new, |m| {
                            format!(" (mean segment {} over the last interval)", bytes(m))
                        });
                        format!(
                            "{} on {} no longer sends segments far below the MSS into a small \
                             window{now}",
                            owner(info),
                            local(info)
                        )
                    },
                    || Evidence::new().maybe("mean_segment", mean).done(),
                );
            }
        }
    }
}

fn finding(i: &Info, iv: &Interval, sent: &SegmentsSent, mss: u32) -> Finding {
    let mean = sent.mean();
    let evidence = Evidence::new()
        .with("mean_segment", mean)
        .with("mss", mss)
        .with("segments", sent.count)
        .with("bytes", sent.bytes)
        .with("peer_max_window", sent.max_window)
        .with("rwnd_limited_pct", iv.pct)
        .with("interval_ms", iv.interval_ms)
        .done();
    let explanation = format!(
        "{} on {} sending to {}: {} data segments in the last {:.1} s averaged {} (MSS {}), \
         into a peer window of at most {}; held back by that window {:.0}% of the time",
        owner(i),
        local(i),
        peer(i),
        sent.count,
        iv.interval_ms as f64 / 1000.0,
        bytes(mean),
        bytes(u64::from(mss)),
        bytes(u64::from(sent.max_window)),
        iv.pct
    );
    let fix = if u64::from(sent.max_window) < 2 * u64::from(mss) {
        format!(
            "the peer never offered more than {} (under two segments), so this host's kernel \
             cuts each segment to half of it (tcp_bound_to_half_wnd): {} needs a receive buffer \
             that offers at least 2 x MSS = {} (a pinned SO_RCVBUF or a window clamp there is \
             the usual cause)",
            bytes(u64::from(sent.max_window)),
            peer_app(i),
            bytes(2 * u64::from(mss))
        )
    } else {
        format!(
            "the peer's window reopens a little at a time and each opening is sent at once: {} \
             should read in larger pieces (or keep receive-side silly-window avoidance); on this \
             host, an application writing small pieces with TCP_NODELAY adds to it",
            peer_app(i)
        )
    };
    Finding { evidence, explanation, fix }
}
