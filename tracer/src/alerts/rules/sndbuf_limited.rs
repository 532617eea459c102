//! sndbuf_limited: this host's sender waited for its own send buffer for most of an interval:
//! its application found the buffer full while at least half of it was in flight and neither
//! the peer's window nor the congestion window was full (the tracer's own samples; the
//! kernel's sndbuf_limited misses waits that begin after a full segment). Over each
//! receiver_limited interval; resolves at the first interval below the threshold.

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{BufferWait, Info, Interval, Seen};
use crate::alerts::text::{local, owner, peer};
use crate::events::model::Side;
use crate::timeline::fmt::{bytes, duration_ms, rate};

pub(super) struct SndbufLimited {
    cfg: config::SndbufLimited,
}

impl SndbufLimited {
    pub(super) fn new(cfg: &config::SndbufLimited) -> Self {
        SndbufLimited { cfg: cfg.clone() }
    }
}

impl Check for SndbufLimited {
    fn rule(&self) -> Rule {
        Rule::SndbufLimited
    }

    fn sees(&self) -> u16 {
        Seen::INTERVAL
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        let Seen::Interval(iv) = seen else { return };
        let Some(wait) = &iv.buffer_wait else { return };
        if !self.cfg.enabled {
            return;
        }
        let side = Some(Side::Peer);
        if wait.pct >= self.cfg.wait_pct {
            cx.fire(side, Severity::Warning, ts, |info| finding(info, iv, wait));
        } else {
            let info = cx.info();
            cx.resolve(
                side,
                ts,
                "below_threshold",
                || {
                    format!(
                        "{} on {} waited for its send buffer only {:.0}% of the last {}",
                        owner(info),
                        local(info),
                        wait.pct,
                        duration_ms(iv.interval_ms)
                    )
                },
                || Evidence::new().with("buffer_wait_pct", wait.pct).done(),
            );
        }
    }
}

fn finding(i: &Info, iv: &Interval, wait: &BufferWait) -> Finding {
    let evidence = Evidence::new()
        .with("buffer_wait_pct", wait.pct)
        .with("buffer_wait_ms", wait.waited_ms)
        .with("interval_ms", iv.interval_ms)
        .with("sndbuf", wait.sndbuf)
        .with("sndbuf_locked", wait.locked)
        .with("in_flight", iv.in_flight)
        .with("unsent", iv.unsent)
        .maybe("delivered_bps", iv.delivered_bps.map(f64::round))
        .maybe("srtt_us", i.srtt_us)
        .done();
    let whose = if wait.locked {
        format!("pinned at {} by SO_SNDBUF", bytes(wait.sndbuf.into()))
    } else {
        format!("{}, as autotuning left it", bytes(wait.sndbuf.into()))
    };
    let delivered =
        iv.delivered_bps.map_or_else(String::new, |r| format!(", {} delivered", rate(r)));
    let explanation = format!(
        "{} on {} sending to {} waited for its own send buffer ({whose}) {:.0}% of the last {} \
         ({}), with all it had written in flight and neither the peer's window nor the \
         congestion window full: this host's send buffer, not the receiver or the network, \
         sets the pace{delivered}",
        owner(i),
        local(i),
        peer(i),
        wait.pct,
        duration_ms(iv.interval_ms),
        duration_ms(wait.waited_ms)
    );
    // A buffer carries at most itself per round trip: say what one round trip allows.
    let per_rtt = i.srtt_us.filter(|&us| us > 0).map_or_else(String::new, |us| {
        format!(
            " (at the {:.1} ms RTT, each MiB of buffer allows about {})",
            f64::from(us) / 1000.0,
            rate(1_048_576.0 * 1e6 / f64::from(us))
        )
    });
    let fix = if wait.locked {
        format!(
            "remove the SO_SNDBUF setting from {} (the kernel doubled it to {}), or set it to \
             at least the rate it needs x RTT{per_rtt}",
            owner(i),
            bytes(wait.sndbuf.into())
        )
    } else {
        format!(
            "raise net.ipv4.tcp_wmem's maximum to at least the rate the transfer needs x \
             RTT{per_rtt}; `ss -tm` here shows the buffer (tb) full of unacknowledged data (w)"
        )
    };
    Finding { evidence, explanation, fix }
}
