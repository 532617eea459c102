//! One direction of a connection: the windows one receiver advertised, as a small state machine
//! (open -> shrinking -> zero -> probing -> reopened -> ... -> closed) with its zero-window
//! episodes and running totals.

use std::collections::VecDeque;

use serde::Serialize;

use super::conn::Moment;
use crate::events::model::{LocalState, SenderState, Side};

/// Where a direction's window stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    /// Non-zero and not shrinking (also before any window was seen).
    Open,
    /// The last change made the window smaller.
    Shrinking,
    /// Zero window.
    Zero,
    /// Zero window, and this host has sent persist probes into it.
    Probing,
    /// Non-zero again after a zero-window episode.
    Reopened,
    /// The connection closed.
    Closed,
}

impl WindowState {
    /// The state as labels and JSON name it (`open`, ..., `closed`).
    pub fn name(self) -> &'static str {
        match self {
            WindowState::Open => "open",
            WindowState::Shrinking => "shrinking",
            WindowState::Zero => "zero",
            WindowState::Probing => "probing",
            WindowState::Reopened => "reopened",
            WindowState::Closed => "closed",
        }
    }
}

/// One stretch of zero window advertised by a receiver.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    pub start_ns: u64,
    /// None while the window is still zero.
    pub end_ns: Option<u64>,
    /// False when only the end was seen and the kernel did not say how long it lasted (it began
    /// before the tracer attached): `start_ns` is then when the connection was first seen, so the
    /// duration is a lower bound.
    pub start_seen: bool,
    /// Smallest non-zero window advertised between the previous episode (or the first event)
    /// and this one: how far the window had shrunk before it closed.
    pub min_window_before: Option<u32>,
    /// Persist probes this host sent during the episode (peer side only).
    pub probes: u32,
    pub max_backoff: u8,
    /// Segments this host dropped for lack of receive space during the episode (local side).
    pub drops: u32,
    pub dropped_bytes: u64,
    /// From `zero_window_start`: false for zero windows a 6.6+ kernel sets under memory pressure
    /// without counting them in TCPToZeroWindowAdv; None when no `zero_window_start` was seen.
    pub counted: Option<bool>,
    /// Bytes waiting unread, and the receive buffer size, when it started (local side).
    pub unread: Option<u32>,
    pub rcvbuf: Option<u32>,
}

impl Episode {
    /// Time at zero, counting an open episode up to `now_ns`.
    pub fn duration_ns(&self, now_ns: u64) -> u64 {
        self.end_ns.unwrap_or(now_ns).saturating_sub(self.start_ns)
    }
}

/// Running totals of a direction, over the connection's life (unlike `episodes`, not bounded).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Zero-window episodes, the open one included.
    pub episodes: u64,
    /// Time at zero in closed episodes (see `Direction::zero_ns` for the open one too).
    pub zero_ns: u64,
    pub longest_zero_ns: u64,
    pub probes: u64,
    pub max_backoff: u8,
    pub drops: u64,
    pub dropped_bytes: u64,
}

/// The kernel's cumulative sender counters (tcp_info rwnd_limited and busy_time), first and
/// latest sample: the difference is what happened while the tracer watched. Before the first
/// sample `first_ts_ns` is unset (in place of an `Option` around it all: 8 bytes a connection).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RwndCounters {
    first_ts_ns: Moment,
    pub first_rwnd_limited_ms: u64,
    pub first_busy_ms: u64,
    pub last_ts_ns: u64,
    pub last_rwnd_limited_ms: u64,
    pub last_busy_ms: u64,
}

impl RwndCounters {
    /// No sample yet.
    pub(super) const NONE: RwndCounters = RwndCounters {
        first_ts_ns: Moment::UNSET,
        first_rwnd_limited_ms: 0,
        first_busy_ms: 0,
        last_ts_ns: 0,
        last_rwnd_limited_ms: 0,
        last_busy_ms: 0,
    };

    /// These counters, once sampled.
    pub fn sampled(&self) -> Option<&Self> {
        self.first_ts_ns.get().map(|_| self)
    }

    /// Take in a sample of the kernel's cumulative sender counters.
    pub(super) fn sample(&mut self, ts_ns: u64, s: &SenderState) {
        match self.sampled() {
            // A counter going backwards means a different socket state: start over.
            Some(c) if s.rwnd_limited_ms >= c.last_rwnd_limited_ms => {
                self.last_ts_ns = ts_ns;
                self.last_rwnd_limited_ms = s.rwnd_limited_ms;
                self.last_busy_ms = s.busy_ms.max(self.last_busy_ms);
            }
            _ => {
                *self = RwndCounters {
                    first_ts_ns: Moment::of(Some(ts_ns)),
                    first_rwnd_limited_ms: s.rwnd_limited_ms,
                    first_busy_ms: s.busy_ms,
                    last_ts_ns: ts_ns,
                    last_rwnd_limited_ms: s.rwnd_limited_ms,
                    last_busy_ms: s.busy_ms,
                }
            }
        }
    }

    /// Time the sender was held back by the peer's window while watched.
    pub fn limited_ms(&self) -> u64 {
        self.last_rwnd_limited_ms.saturating_sub(self.first_rwnd_limited_ms)
    }

    /// Time the sender was busy while watched.
    pub fn busy_ms(&self) -> u64 {
        self.last_busy_ms.saturating_sub(self.first_busy_ms)
    }

    /// Share (0..=1) of busy time spent limited by the peer's window; falls back to wall time
    /// when the kernel reported no busy time.
    pub fn share(&self) -> Option<f64> {
        let limited = self.limited_ms() as f64;
        let busy = self.busy_ms();
        let first_ts_ns = self.first_ts_ns.get().unwrap_or(self.last_ts_ns);
        let wall_ms = self.last_ts_ns.saturating_sub(first_ts_ns) / 1_000_000;
        let base = if busy > 0 { busy } else { wall_ms };
        (base > 0).then(|| (limited / base as f64).min(1.0))
    }
}

/// The latest persist probe this host sent (peer side).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastProbe {
    pub ts_ns: u64,
    pub probes_out: u8,
    pub backoff: u8,
    pub rto_ms: Option<f64>,
    pub next_probe_ms: Option<f64>,
    pub snd_wnd: u32,
    pub unacked: u32,
}

/// What only a direction that has had trouble keeps: zero-window episodes, probes, drops.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Trouble {
    /// The zero-window episode in progress.
    pub open: Option<Episode>,
    /// The most recent closed episodes, oldest first.
    pub episodes: VecDeque<Episode>,
    pub totals: Totals,
    /// Peer side: the latest persist probe.
    pub last_probe: Option<LastProbe>,
    pub last_drop_ns: Option<u64>,
}

/// A direction without trouble: no episodes, all totals zero.
static NO_EPISODES: VecDeque<Episode> = VecDeque::new();
static NO_TOTALS: Totals = Totals {
    episodes: 0,
    zero_ns: 0,
    longest_zero_ns: 0,
    probes: 0,
    max_backoff: 0,
    drops: 0,
    dropped_bytes: 0,
};

/// The windows one receiver advertised: `Side::Local` when this host receives, `Side::Peer` when
/// the peer receives (this host sends, so persist probes and sender counters live here).
///
/// A quiet direction is a few dozen bytes: what only trouble brings (episodes, probes, drops)
/// is allocated at the first zero window, probe or drop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Direction {
    pub side: Side,
    pub state: WindowState,
    /// Latest advertised window in bytes (after scaling); None before the first one.
    pub window: Option<u32>,
    pub min_window: Option<u32>,
    pub max_window: Option<u32>,
    trouble: Option<Box<Trouble>>,
    #[serde(skip)]
    low_since_episode: Option<u32>,
    #[serde(skip)]
    episode_cap: u32,
}

impl Direction {
    /// An empty direction keeping at most `episode_cap` closed episodes.
    pub fn new(side: Side, episode_cap: u32) -> Self {
        Direction {
            side,
            state: WindowState::Open,
            window: None,
            min_window: None,
            max_window: None,
            trouble: None,
            low_since_episode: None,
            episode_cap,
        }
    }

    /// The zero-window episode in progress. One is open exactly while the state is Zero or
    /// Probing (`start_episode` sets them, every `end_episode` is followed by another state):
    /// the state, inline, answers for most events without reaching the boxed `trouble`, which
    /// with tens of thousands of connections is rarely in cache.
    pub fn open(&self) -> Option<&Episode> {
        debug_assert_eq!(
            self.in_episode(),
            self.trouble.as_ref().is_some_and(|t| t.open.is_some()),
            "episode open without its state, or the reverse ({:?})",
            self.state
        );
        if !self.in_episode() {
            return None;
        }
        self.trouble.as_ref().and_then(|t| t.open.as_ref())
    }

    fn in_episode(&self) -> bool {
        matches!(self.state, WindowState::Zero | WindowState::Probing)
    }

    /// The most recent closed episodes, oldest first.
    pub fn episodes(&self) -> &VecDeque<Episode> {
        self.trouble.as_ref().map_or(&NO_EPISODES, |t| &t.episodes)
    }

    /// Running totals over the connection's life.
    pub fn totals(&self) -> &Totals {
        self.trouble.as_ref().map_or(&NO_TOTALS, |t| &t.totals)
    }

    /// Peer side: the latest persist probe.
    #[cfg(test)]
    pub fn last_probe(&self) -> Option<&LastProbe> {
        self.trouble.as_ref().and_then(|t| t.last_probe.as_ref())
    }

    /// Total time at zero window, counting an open episode up to `now_ns`.
    pub fn zero_ns(&self, now_ns: u64) -> u64 {
        self.totals().zero_ns + self.open().map_or(0, |e| e.duration_ns(now_ns))
    }

    /// The longest episode, an open one counted up to `now_ns`.
    pub fn longest_zero_ns(&self, now_ns: u64) -> u64 {
        let open = self.open().map_or(0, |e| e.duration_ns(now_ns));
        self.totals().longest_zero_ns.max(open)
    }

    /// Every episode kept, closed ones oldest first, then the open one.
    #[cfg(test)]
    pub fn all_episodes(&self) -> impl Iterator<Item = &Episode> {
        self.episodes().iter().chain(self.open())
    }

    /// A window advertisement (bytes after scaling).
    pub(super) fn window(&mut self, ts_ns: u64, window: u32) {
        self.min_window = Some(self.min_window.map_or(window, |m| m.min(window)));
        self.max_window = Some(self.max_window.map_or(window, |m| m.max(window)));
        if window == 0 {
            self.start_episode(ts_ns);
        } else {
            self.low_since_episode = Some(self.low_since_episode.map_or(window, |m| m.min(window)));
            if self.open().is_some() {
                self.end_episode(ts_ns);
                self.state = WindowState::Reopened;
            } else if let Some(previous) = self.window {
                if previous == 0 {
                    self.state = WindowState::Reopened;
                } else if window < previous {
                    self.state = WindowState::Shrinking;
                } else if window > previous {
                    self.state = WindowState::Open;
                }
            }
        }
        self.window = Some(window);
    }

    /// The kernel's zero_window_start: the episode may already be open from a zero `window`
    /// event at the same moment, so this only fills in what that event lacks.
    pub(super) fn zero_start(&mut self, ts_ns: u64, counted: bool) {
        self.min_window = Some(0);
        self.max_window = Some(self.max_window.unwrap_or(0));
        self.start_episode(ts_ns);
        self.window = Some(0);
        if let Some(open) = self.open_mut() {
            open.counted = Some(counted);
        }
    }

    /// The kernel's zero_window_end. Without an open episode the start was missed: the kernel's
    /// duration (or, without one, the connection's first sighting) places it.
    pub(super) fn zero_end(
        &mut self,
        ts_ns: u64,
        window: u32,
        duration_ns: Option<u64>,
        first_seen_ns: u64,
    ) {
        // The `window` event of the same advertisement may have ended the episode already.
        let just_ended = self.episodes().back().is_some_and(|e| e.end_ns == Some(ts_ns));
        if self.open().is_none() && just_ended {
            self.state = WindowState::Reopened;
            return;
        }
        if self.open().is_none() {
            let start_ns = match duration_ns {
                Some(d) => ts_ns.saturating_sub(d),
                None => first_seen_ns.min(ts_ns),
            };
            self.start_episode(start_ns);
            if let Some(open) = self.open_mut() {
                open.start_seen = duration_ns.is_some();
            }
        }
        self.end_episode(ts_ns);
        self.state = WindowState::Reopened;
        if window > 0 {
            self.window = Some(window);
            self.max_window = Some(self.max_window.map_or(window, |m| m.max(window)));
            self.low_since_episode = Some(window);
        }
    }

    /// A persist probe this host sent into the peer's window.
    pub(super) fn probe(&mut self, ts_ns: u64, probe: LastProbe) {
        let t = self.trouble.get_or_insert_with(Box::default);
        t.totals.probes += 1;
        t.totals.max_backoff = t.totals.max_backoff.max(probe.backoff);
        t.last_probe = Some(LastProbe { ts_ns, ..probe });
        if let Some(open) = &mut t.open {
            open.probes += 1;
            open.max_backoff = open.max_backoff.max(probe.backoff);
            self.state = WindowState::Probing;
        }
    }

    /// A segment this host dropped for lack of receive space.
    pub(super) fn dropped(&mut self, ts_ns: u64, bytes: u32) {
        let t = self.trouble.get_or_insert_with(Box::default);
        t.totals.drops += 1;
        t.totals.dropped_bytes += u64::from(bytes);
        t.last_drop_ns = Some(ts_ns);
        if let Some(open) = &mut t.open {
            open.drops += 1;
            open.dropped_bytes += u64::from(bytes);
        }
    }

    /// This host's receive state at an advertisement (applied after the window itself): the
    /// open episode takes the one that came with its zero advertisement. (The latest state and
    /// the time each limit held the window are the connection's: only the local side has them.)
    pub(super) fn receiver_state(&mut self, state: &LocalState) {
        if let Some(open) = self.open_mut() {
            open.unread.get_or_insert(state.unread);
            open.rcvbuf.get_or_insert(state.rcvbuf);
        }
    }

    /// The connection closed: an open episode ends here.
    pub(super) fn close(&mut self, ts_ns: u64) {
        if self.open().is_some() {
            self.end_episode(ts_ns);
        }
        self.state = WindowState::Closed;
    }

    fn start_episode(&mut self, ts_ns: u64) {
        let already_open = self.open().is_some();
        if self.state != WindowState::Probing {
            self.state = WindowState::Zero;
        }
        if already_open {
            return;
        }
        let min_window_before = self.low_since_episode;
        let t = self.trouble.get_or_insert_with(Box::default);
        t.totals.episodes += 1;
        t.open = Some(Episode {
            start_ns: ts_ns,
            end_ns: None,
            start_seen: true,
            min_window_before,
            probes: 0,
            max_backoff: 0,
            drops: 0,
            dropped_bytes: 0,
            counted: None,
            // Filled by the receive state that came with the zero advertisement.
            unread: None,
            rcvbuf: None,
        });
    }

    fn open_mut(&mut self) -> Option<&mut Episode> {
        if !self.in_episode() {
            return None;
        }
        self.trouble.as_mut().and_then(|t| t.open.as_mut())
    }

    fn end_episode(&mut self, ts_ns: u64) {
        let cap = self.episode_cap as usize;
        let Some(t) = self.trouble.as_mut() else { return };
        let Some(mut episode) = t.open.take() else { return };
        self.low_since_episode = None;
        // Events arrive in time order; never let a late one make an episode end before it began.
        let end_ns = ts_ns.max(episode.start_ns);
        episode.end_ns = Some(end_ns);
        let duration = end_ns - episode.start_ns;
        t.totals.zero_ns += duration;
        t.totals.longest_zero_ns = t.totals.longest_zero_ns.max(duration);
        t.episodes.push_back(episode);
        while t.episodes.len() > cap {
            t.episodes.pop_front();
        }
    }
}
