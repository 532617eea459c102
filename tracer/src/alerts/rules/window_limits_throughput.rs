//! window_limits_throughput: a transfer runs at the cap its receive window sets (window / RTT)
//! while the network would carry more. Either end on this host:
//! - the sender (`peer` side): the kernel says the peer's window held it back (rwnd_limited)
//!   for most of an interval, the bytes acknowledged per second reach the window's cap, and the
//!   congestion window allows more than the peer's window;
//! - the receiver (`local` side): this host's window is held by a setting (a pinned or maxed-out
//!   buffer, a clamp, no window scaling) and the application reads at the window's cap.
//!
//! The alert names the setting and the number to set. It resolves when the transfer no longer
//! runs at the cap (or the window is no longer held by a setting).

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Interval, ReadSeen, Seen};
use crate::alerts::text::{app, kib, local, owner, peer, peer_host, reader};
use crate::events::model::{Limit, Side};
use crate::timeline::fmt::{bytes, rate};
use crate::timeline::WindowHeld;

pub(super) struct WindowLimitsThroughput {
    cfg: config::WindowLimitsThroughput,
}

impl WindowLimitsThroughput {
    pub(super) fn new(cfg: &config::WindowLimitsThroughput) -> Self {
        WindowLimitsThroughput { cfg: cfg.clone() }
    }

    /// At least `cap_pct` of the window's cap.
    fn at_cap(&self, delivered: f64, cap: f64) -> bool {
        cap > 0.0 && delivered * 100.0 >= cap * self.cfg.cap_pct
    }

    fn sender_interval(&self, cx: &mut Cx<'_>, iv: &Interval, ts: u64) {
        let info = cx.info();
        let side = Some(Side::Peer);
        let cap = match (info.peer_window, info.srtt_us) {
            (Some(w), Some(rtt)) => cap_bps(w, rtt),
            _ => None,
        };
        let more =
            matches!((info.cwnd_bytes, info.peer_window), (Some(c), Some(w)) if c > u64::from(w));
        match (iv.delivered_bps, cap) {
            (Some(delivered), Some(cap)) if iv.limited && more && self.at_cap(delivered, cap) => {
                cx.fire(side, Severity::Warning, ts, |info| {
                    sender_finding(info, iv, delivered, cap)
                });
            }
            _ => {
                let pct = iv.pct;
                cx.resolve(
                    side,
                    ts,
                    "below_cap",
                    || {
                        format!(
                            "{} on {} no longer runs at the cap of the peer's window (held back \
                             {pct:.0}% of the last interval)",
                            owner(info),
                            local(info)
                        )
                    },
                    || Evidence::new().with("rwnd_limited_pct", pct).done(),
                );
            }
        }
    }

    fn receiver_read(&self, cx: &mut Cx<'_>, read: &ReadSeen, ts: u64) {
        let info = cx.info();
        let side = Some(Side::Local);
        let held = info.local_choice.filter(|c| {
            matches!(c.limited_by, Limit::BufferMax | Limit::WindowClamp | Limit::ScaleCeiling)
        });
        let window = read.rcv_wnd.or(info.local_window);
        let cap = match (window, read.rcv_rtt_us) {
            (Some(w), Some(rtt)) => cap_bps(w, rtt),
            _ => None,
        };
        match (held, window, cap) {
            (Some(choice), Some(window), Some(cap)) if self.at_cap(read.rate, cap) => {
                let rtt_us = read.rcv_rtt_us.unwrap_or(0);
                cx.fire(side, Severity::Warning, ts, |info| {
                    receiver_finding(info, &choice, window, rtt_us, read.rate, cap)
                });
            }
            _ => {
                let now = read.rate;
                cx.resolve(
                    side,
                    ts,
                    "below_cap",
                    || {
                        format!(
                            "{} on {} reads at {}, no longer at the cap of a window held by a \
                             setting",
                            reader(info),
                            local(info),
                            rate(now)
                        )
                    },
                    || Evidence::new().with("read_bps", now.round()).done(),
                );
            }
        }
    }
}

impl Check for WindowLimitsThroughput {
    fn rule(&self) -> Rule {
        Rule::WindowLimitsThroughput
    }

    fn sees(&self) -> u16 {
        Seen::INTERVAL | Seen::READ
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        if !self.cfg.enabled {
            return;
        }
        match seen {
            Seen::Interval(iv) => self.sender_interval(cx, iv, ts),
            Seen::Read(read) => self.receiver_read(cx, read, ts),
            _ => {}
        }
    }
}

/// window / RTT in bytes per second.
fn cap_bps(window: u32, rtt_us: u32) -> Option<f64> {
    (rtt_us > 0).then(|| f64::from(window) * 1e6 / f64::from(rtt_us))
}

fn ms(rtt_us: u32) -> String {
    format!("{:.1} ms", f64::from(rtt_us) / 1000.0)
}

fn sender_finding(i: &Info, iv: &Interval, delivered: f64, cap: f64) -> Finding {
    let window = i.peer_window.unwrap_or(0);
    let rtt_us = i.srtt_us.unwrap_or(0);
    let cwnd = i.cwnd_bytes.unwrap_or(0);
    // What the congestion window would carry: the path's rate as the sender sees it now. At
    // that rate the bandwidth-delay product is the congestion window itself.
    let path_bps = cwnd as f64 * 1e6 / f64::from(rtt_us.max(1));
    let bdp = cwnd;
    let evidence = Evidence::new()
        .with("peer_window", window)
        .with("srtt_us", rtt_us)
        .with("cap_bps", cap.round())
        .with("delivered_bps", delivered.round())
        .with("cwnd_bytes", cwnd)
        .with("rwnd_limited_pct", iv.pct)
        .with("interval_ms", iv.interval_ms)
        .done();
    let explanation = format!(
        "{} on {} sending to {}: the peer's window of {} caps the transfer at {} (window / RTT, \
         RTT {}); it delivered {} over the last {:.1} s, held back by that window {:.0}% of the \
         time, while its congestion window ({}) would carry more",
        owner(i),
        local(i),
        peer(i),
        kib(window),
        rate(cap),
        ms(rtt_us),
        rate(delivered),
        iv.interval_ms as f64 / 1000.0,
        iv.pct,
        bytes(cwnd)
    );
    let fix = format!(
        "on {}: let the receiving application's buffer grow to at least 2 x BDP = {} (BDP = {} x \
         {}, at the congestion window's rate): raise net.ipv4.tcp_rmem max there, or remove an \
         SO_RCVBUF pin from the receiving application",
        peer_host(i),
        bytes(2 * bdp),
        rate(path_bps),
        ms(rtt_us)
    );
    Finding { evidence, explanation, fix }
}

fn receiver_finding(
    i: &Info,
    choice: &WindowHeld,
    window: u32,
    rtt_us: u32,
    read_bps: f64,
    cap: f64,
) -> Finding {
    let rcvbuf = i.rcvbuf.unwrap_or(0);
    let evidence = Evidence::new()
        .with("limited_by", choice.limited_by.as_str())
        .with("window", window)
        .with("rcv_rtt_us", rtt_us)
        .with("cap_bps", cap.round())
        .with("read_bps", read_bps.round())
        .with("rcvbuf", rcvbuf)
        .maybe("rmem_max", choice.rmem_max)
        .maybe("window_clamp", i.window_clamp)
        .done();
    let explanation = format!(
        "{} on {} reads from {} at {}, the cap its own window of {} sets ({}: window / RTT, \
         RTT {}): the window is held by {}",
        reader(i),
        local(i),
        peer(i),
        rate(read_bps),
        kib(window),
        rate(cap),
        ms(rtt_us),
        choice.limited_by.describe()
    );
    let pid = i.reader.as_ref().and_then(|(_, pid)| *pid).or(i.pid);
    let process = match pid {
        Some(pid) => format!("{} (pid {pid})", app(i)),
        None => app(i),
    };
    let fix = match choice.limited_by {
        // The kernel doubles what SO_RCVBUF asks for.
        Limit::BufferMax if choice.rcvbuf_locked => format!(
            "remove SO_RCVBUF={} from {process}: a pinned buffer cannot autotune",
            bytes(u64::from(rcvbuf / 2))
        ),
        Limit::BufferMax => format!(
            "raise net.ipv4.tcp_rmem max (now {}) to at least 2 x the window the path needs; \
             at the current rate every doubling of the buffer doubles the cap ({} at {} RTT)",
            choice.rmem_max.map_or("unknown".to_string(), |m| bytes(u64::from(m))),
            rate(cap),
            ms(rtt_us)
        ),
        Limit::WindowClamp => format!(
            "remove TCP_WINDOW_CLAMP={} (or the route's window metric) from {process}",
            i.window_clamp.map_or("?".to_string(), |c| bytes(u64::from(c)))
        ),
        _ => "enable window scaling on both ends (net.ipv4.tcp_window_scaling=1) and reconnect"
            .to_string(),
    };
    Finding { evidence, explanation, fix }
}
