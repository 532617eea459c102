//! window_scaling_missing: no window scaling was negotiated, and the 64 KiB ceiling matters (the
//! window reached it, or the sender is receiver-limited). Stays active until the connection
//! ends.

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Seen};
use crate::alerts::text::{local, owner, peer, peer_host};
use crate::timeline::fmt::rate;

/// The largest window without window scaling.
const UNSCALED_MAX: u64 = 65_535;

pub(super) struct WindowScalingMissing {
    cfg: config::WindowScalingMissing,
}

impl WindowScalingMissing {
    pub(super) fn new(cfg: &config::WindowScalingMissing) -> Self {
        WindowScalingMissing { cfg: cfg.clone() }
    }
}

impl Check for WindowScalingMissing {
    fn rule(&self) -> Rule {
        Rule::WindowScalingMissing
    }

    fn sees(&self) -> u16 {
        Seen::SETTLED
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        let Seen::Settled = seen else { return };
        let info = cx.info();
        if !self.cfg.enabled || info.wscale_ok != Some(false) {
            return;
        }
        let max_window = info.max_window.map_or(0, u64::from);
        let at_ceiling = max_window >= self.cfg.window_bytes;
        let facts = cx.facts();
        if !(facts.receiver_limited() || at_ceiling) {
            return;
        }
        let pct = facts.last_limited_pct();
        cx.fire(None, Severity::Warning, ts, |info| {
            let max_rate = info.srtt_us.map(|us| UNSCALED_MAX as f64 * 1e6 / f64::from(us));
            let evidence = Evidence::new()
                .with("ceiling_bytes", UNSCALED_MAX)
                .with("max_window", max_window)
                .maybe("srtt_us", info.srtt_us)
                .maybe("max_throughput_bytes_per_s", max_rate.map(f64::round))
                .maybe("rwnd_limited_pct", pct)
                .done();
            let (explanation, fix) = fired(info, max_rate, at_ceiling);
            Finding { evidence, explanation, fix }
        });
    }
}

/// What the alert says, `max_rate` being 64 KiB per smoothed RTT in bytes/s: (explanation, fix).
fn fired(i: &Info, max_rate: Option<f64>, at_ceiling: bool) -> (String, String) {
    let cap = match (i.srtt_us, max_rate) {
        (Some(us), Some(r)) => {
            format!(
                "; at srtt {:.1} ms that caps throughput at {}",
                f64::from(us) / 1000.0,
                rate(r)
            )
        }
        _ => "; that caps throughput at 64 KiB per round trip".to_string(),
    };
    let matters = if at_ceiling {
        "and the window has reached that ceiling"
    } else {
        "and the peer's window holds this sender back"
    };
    let explanation = format!(
        "{} on {} <-> {} negotiated no window scaling (RFC 7323), so neither side can advertise \
         more than 64 KiB, {matters}{cap}",
        owner(i),
        local(i),
        peer(i)
    );
    let fix = format!(
        "set net.ipv4.tcp_window_scaling=1 on both this host and {}, and check that nothing in \
         between strips the wscale option from SYNs (tcpdump the handshake: both SYNs should \
         show wscale); it applies to new connections only",
        peer_host(i)
    );
    (explanation, fix)
}
