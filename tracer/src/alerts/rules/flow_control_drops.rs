//! flow_control_drops: segments dropped for lack of receive space. Fires at the first drop and
//! resolves after a quiet period without drops, counting what was dropped meanwhile.

use foldhash::HashMap;

use crate::alerts::alert::Severity;
use crate::alerts::check::{after, Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Seen};
use crate::alerts::text::{app, buffer_state, kib, local, peer, reader};
use crate::events::model::Side;
use crate::timeline::fmt::{bytes, duration_ms};
use crate::timeline::ConnKey;

const SIDE: Option<Side> = Some(Side::Local);

/// Drops since the alert fired.
#[derive(Default)]
struct Dropped {
    drops: u64,
    bytes: u64,
}

pub(super) struct FlowControlDrops {
    cfg: config::QuietRule,
    dropped: HashMap<ConnKey, Dropped>,
}

impl FlowControlDrops {
    pub(super) fn new(cfg: &config::QuietRule) -> Self {
        FlowControlDrops { cfg: cfg.clone(), dropped: HashMap::default() }
    }

    fn on_drop(&mut self, cx: &mut Cx<'_>, reason: &str, size: u32, ts: u64) {
        if !self.cfg.enabled {
            return;
        }
        let active = cx.is_active(SIDE);
        let dropped = self.dropped.entry(cx.key()).or_default();
        if !active {
            *dropped = Dropped::default();
        }
        dropped.drops += 1;
        dropped.bytes += u64::from(size);
        cx.fire(SIDE, Severity::Warning, ts, |info| {
            let evidence = Evidence::new()
                .with("drops", 1u64)
                .with("dropped_bytes", size)
                .with("reason", reason)
                .maybe("unread", info.unread)
                .maybe("rcvbuf", info.rcvbuf)
                .maybe("rcvbuf_locked", info.rcvbuf_locked)
                .done();
            let (explanation, fix) = fired(info, reason, size);
            Finding { evidence, explanation, fix }
        });
        cx.schedule(SIDE, after(ts, self.cfg.quiet_ms));
    }
}

impl Check for FlowControlDrops {
    fn rule(&self) -> Rule {
        Rule::FlowControlDrops
    }

    fn sees(&self) -> u16 {
        Seen::DROP
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        if let Seen::Drop { reason, bytes } = *seen {
            self.on_drop(cx, reason, bytes, ts);
        }
    }

    fn on_timer(&mut self, cx: &mut Cx<'_>, _side: Option<Side>, due: u64) {
        let (drops, dropped) = self.dropped.get(&cx.key()).map_or((0, 0), |d| (d.drops, d.bytes));
        let quiet = self.cfg.quiet_ms;
        let info = cx.info();
        let extra = || Evidence::new().with("drops", drops).with("dropped_bytes", dropped).done();
        cx.resolve(SIDE, due, "quiet", || resolved(info, drops, dropped, quiet), extra);
    }

    fn forget(&mut self, key: ConnKey) {
        self.dropped.remove(&key);
    }
}

/// What the alert says about a drop of `size` bytes for `reason`: (explanation, fix).
fn fired(i: &Info, reason: &str, size: u32) -> (String, String) {
    let why = match reason {
        "TCP_ZEROWINDOW" => ", it arrived while the window was zero",
        "TCP_OVERWINDOW" => ", it went beyond the advertised window",
        "PROTO_MEM" => ", TCP is short of memory host-wide",
        "TCP_OFO_QUEUE_PRUNE" => ", out-of-order data was pruned to free memory",
        "TCP_INVALID_SEQUENCE" | "TCP_INVALID_END_SEQUENCE" => {
            ", it went beyond the advertised window (TcpExtBeyondWindow)"
        }
        _ => "",
    };
    let explanation = format!(
        "{} on {} dropped a {} segment from {} for lack of receive space ({reason}{why}){}: \
         the peer has to retransmit it",
        reader(i),
        local(i),
        kib(size),
        peer(i),
        buffer_state(i)
    );
    let fix = if reason == "PROTO_MEM" {
        "TCP memory is exhausted on this host: compare net.ipv4.tcp_mem with the mem line of \
         /proc/net/sockstat and find sockets hoarding unread data (`ss -tm`, large Recv-Q)"
            .to_string()
    } else {
        format!(
            "make {} read faster or give it more buffer (remove SO_RCVBUF; raise the max of \
             net.ipv4.tcp_rmem); nstat TcpExtTCPZeroWindowDrop, TcpExtTCPRcvQDrop and \
             TcpExtPruneCalled count these host-wide",
            app(i)
        )
    };
    (explanation, fix)
}

fn resolved(i: &Info, drops: u64, dropped: u64, quiet_ms: u64) -> String {
    format!(
        "no drops on {} for {}; {drops} segment(s) ({}) were dropped while it lasted",
        local(i),
        duration_ms(quiet_ms),
        bytes(dropped)
    )
}
