//! silly_window: a side keeps advertising non-zero windows smaller than one MSS, several in a
//! row. Resolves at the first window of at least one MSS.

use foldhash::HashMap;

use crate::alerts::alert::Severity;
use crate::alerts::check::{Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Seen};
use crate::alerts::text::{app, kib, local, owner, peer, peer_app, reader};
use crate::events::model::Side;
use crate::timeline::ConnKey;

pub(super) struct SillyWindow {
    cfg: config::SillyWindow,
    /// Sub-MSS windows in a row, per connection: (local, peer).
    runs: HashMap<ConnKey, (u64, u64)>,
}

impl SillyWindow {
    pub(super) fn new(cfg: &config::SillyWindow) -> Self {
        SillyWindow { cfg: cfg.clone(), runs: HashMap::default() }
    }

    fn window(&mut self, cx: &mut Cx<'_>, side: Side, window: u32, ts: u64) {
        let info = cx.info();
        let Some(mss) = info.mss else { return };
        // A zero window neither continues nor breaks a run: silly windows alternate with zeros.
        if !self.cfg.enabled || window == 0 {
            return;
        }
        if window >= mss {
            if let Some(runs) = self.runs.get_mut(&cx.key()) {
                *run_of(runs, side) = 0;
            }
            let extra = || Evidence::new().with("window", window).done();
            cx.resolve(
                Some(side),
                ts,
                "window_at_least_mss",
                || resolved(info, side, window),
                extra,
            );
            return;
        }
        let run = {
            let run = run_of(self.runs.entry(cx.key()).or_default(), side);
            *run += 1;
            *run
        };
        if run < self.cfg.repeats {
            return;
        }
        cx.fire(Some(side), Severity::Warning, ts, |info| {
            let evidence = Evidence::new()
                .with("window", window)
                .with("mss", mss)
                .with("repeats", run)
                .maybe("rcvbuf", info.rcvbuf.filter(|_| side == Side::Local))
                .maybe("rcvbuf_locked", info.rcvbuf_locked.filter(|_| side == Side::Local))
                .done();
            let (explanation, fix) = fired(info, side, window, mss, run);
            Finding { evidence, explanation, fix }
        });
    }
}

fn run_of(runs: &mut (u64, u64), side: Side) -> &mut u64 {
    match side {
        Side::Local => &mut runs.0,
        Side::Peer => &mut runs.1,
    }
}

impl Check for SillyWindow {
    fn rule(&self) -> Rule {
        Rule::SillyWindow
    }

    fn sees(&self) -> u16 {
        Seen::WINDOW
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts: u64) {
        if let Seen::Window { side, window } = *seen {
            self.window(cx, side, window, ts);
        }
    }

    fn forget(&mut self, key: ConnKey) {
        self.runs.remove(&key);
    }
}

/// What the alert says: (explanation, fix).
fn fired(i: &Info, side: Side, window: u32, mss: u32, run: u64) -> (String, String) {
    let latest = format!("{run} in a row, latest {} < MSS {}", kib(window), kib(mss));
    match side {
        Side::Local => {
            let buffer = match (i.rcvbuf, i.rcvbuf_locked) {
                (Some(b), Some(true)) => {
                    format!("; its buffer is pinned at {} by SO_RCVBUF", kib(b))
                }
                (Some(b), _) => format!("; its buffer is {}", kib(b)),
                _ => String::new(),
            };
            let explanation = format!(
                "{} on {} keeps advertising windows smaller than one MSS ({latest}) to {}: the \
                 peer can only send tiny segments (silly window syndrome){buffer}",
                reader(i),
                local(i),
                peer(i)
            );
            let fix = format!(
                "give the socket a receive buffer of many MSS (remove SO_RCVBUF or set it well \
                 above {}; net.ipv4.tcp_rmem) and have {} read in larger chunks",
                kib(mss),
                app(i)
            );
            (explanation, fix)
        }
        Side::Peer => {
            let explanation = format!(
                "the peer {} keeps advertising windows smaller than one MSS to {} on {} \
                 ({latest}): this host can only send tiny segments (silly window syndrome)",
                peer(i),
                owner(i),
                local(i)
            );
            let fix = format!(
                "give the socket of {} a bigger buffer and read in larger chunks; a stack \
                 without receiver-side silly-window avoidance (RFC 1122 4.2.3.3) advertises \
                 such windows",
                peer_app(i)
            );
            (explanation, fix)
        }
    }
}

fn resolved(i: &Info, side: Side, window: u32) -> String {
    match side {
        Side::Local => format!(
            "{} on {} advertises at least one MSS again ({})",
            reader(i),
            local(i),
            kib(window)
        ),
        Side::Peer => {
            format!("the peer {} advertises at least one MSS again ({})", peer(i), kib(window))
        }
    }
}
