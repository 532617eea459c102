//! The view's state, apart from any terminal: the rows of the latest refresh, their order and
//! filter, the selection and scroll position, the alert pane, and the modes (paused, help,
//! editing the filter). Updated by `refresh` (data) and `apply` (keys); `render` draws it.

use std::{cmp::Ordering, collections::HashMap};

use super::{
    history::Sparks,
    row::{OtherEnd, Row},
};
use crate::{
    alerts::Alert,
    timeline::{pair_ends, ConnKey},
};

/// The columns `s` cycles through, starting with the default order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Zero window now, then the longest zero-window episode, drops, the rwnd-limited share,
    /// probes.
    Worst,
    Connection,
    Process,
    LocalWindow,
    /// What holds the local window (the kernel's order of tests).
    Limit,
    PeerWindow,
    InFlight,
    State,
    ZeroTime,
    Probes,
    Backoff,
    Drops,
    Rwnd,
}

impl Sort {
    const ORDER: [Sort; 13] = [
        Sort::Worst,
        Sort::Connection,
        Sort::Process,
        Sort::LocalWindow,
        Sort::Limit,
        Sort::PeerWindow,
        Sort::InFlight,
        Sort::State,
        Sort::ZeroTime,
        Sort::Probes,
        Sort::Backoff,
        Sort::Drops,
        Sort::Rwnd,
    ];

    /// The next column `s` selects.
    pub fn next(self) -> Sort {
        let i = Sort::ORDER.iter().position(|s| *s == self).unwrap_or(0);
        Sort::ORDER[(i + 1) % Sort::ORDER.len()]
    }

    /// How the header names it.
    pub fn label(self) -> &'static str {
        match self {
            Sort::Worst => "flow-control state",
            Sort::Connection => "connection",
            Sort::Process => "process",
            Sort::LocalWindow => "local window",
            Sort::Limit => "window limit",
            Sort::PeerWindow => "peer window",
            Sort::InFlight => "in flight",
            Sort::State => "state",
            Sort::ZeroTime => "zero time",
            Sort::Probes => "probes",
            Sort::Backoff => "backoff",
            Sort::Drops => "drops",
            Sort::Rwnd => "rwnd-limited",
        }
    }

    /// Each column's natural order puts the most telling rows first: names ascending, small
    /// windows first (None last), everything else largest first.
    fn compare(self, a: &Row, b: &Row) -> Ordering {
        let small_first = |x: Option<u32>, y: Option<u32>| match (x, y) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        match self {
            Sort::Worst => worst_first(a, b),
            Sort::Connection => (a.tuple.saddr, a.tuple.sport, a.tuple.daddr, a.tuple.dport)
                .cmp(&(b.tuple.saddr, b.tuple.sport, b.tuple.daddr, b.tuple.dport)),
            Sort::Process => a.process.cmp(&b.process),
            Sort::LocalWindow => small_first(a.local_window, b.local_window),
            // By name, connections without an explained window last.
            Sort::Limit => match (a.local_limit, b.local_limit) {
                (Some(x), Some(y)) => x.as_str().cmp(y.as_str()),
                (x, y) => y.is_some().cmp(&x.is_some()),
            },
            Sort::PeerWindow => small_first(a.peer_window, b.peer_window),
            Sort::InFlight => b.in_flight.cmp(&a.in_flight),
            Sort::State => b.state.badness().cmp(&a.state.badness()),
            Sort::ZeroTime => b.zero_ms.cmp(&a.zero_ms),
            Sort::Probes => b.probes.cmp(&a.probes),
            Sort::Backoff => b.max_backoff.cmp(&a.max_backoff),
            Sort::Drops => b.drops.cmp(&a.drops),
            Sort::Rwnd => b.rwnd_pct.unwrap_or(-1.0).total_cmp(&a.rwnd_pct.unwrap_or(-1.0)),
        }
    }
}

/// The default order: a window at zero now, then the longest zero-window episode, drops, the
/// share of sending time limited by the peer's window, probes; then first seen first.
pub fn worst_first(a: &Row, b: &Row) -> Ordering {
    b.zero_now
        .cmp(&a.zero_now)
        .then(b.longest_zero_ms.cmp(&a.longest_zero_ms))
        .then(b.drops.cmp(&a.drops))
        .then(b.rwnd_pct.unwrap_or(0.0).total_cmp(&a.rwnd_pct.unwrap_or(0.0)))
        .then(b.probes.cmp(&a.probes))
        .then(a.key.cmp(&b.key))
}

/// Which side's windows the sparkline shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparkSide {
    /// Per row, the side that went lowest in the span (local on ties).
    Auto,
    Local,
    Peer,
}

impl SparkSide {
    fn next(self) -> SparkSide {
        match self {
            SparkSide::Auto => SparkSide::Local,
            SparkSide::Local => SparkSide::Peer,
            SparkSide::Peer => SparkSide::Auto,
        }
    }

    /// How the header names it.
    pub fn label(self) -> &'static str {
        match self {
            SparkSide::Auto => "auto",
            SparkSide::Local => "local",
            SparkSide::Peer => "peer",
        }
    }
}

/// What a key asks for (input.rs maps keys to these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    SortNext,
    SortReverse,
    FilterStart,
    FilterInput(char),
    FilterBackspace,
    FilterApply,
    /// Leave the filter prompt and show every connection again.
    FilterClear,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Pause,
    Help,
    SparkSide,
}

/// How keys are read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a filter: printable keys are text.
    Filter,
    /// The help overlay is up.
    Help,
}

/// The numbers of the header line that do not come from the rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// The view's clock: wall clock live, the recording's time in a replay.
    pub now_ns: u64,
    pub alerts_active: usize,
    pub events_per_s: f64,
    /// Events the kernel could not queue, and records that could not be decoded, in all.
    pub lost: u64,
    pub undecodable: u64,
    /// Connections opened since attach that the kernel's per-socket table had no room for.
    pub untracked: u64,
    /// Live connections the agent's table evicted to make room.
    pub evicted: u64,
    /// Sockets opened since attach that stayed quiet (healthy, not shown); None when every
    /// connection is reported (a filter, --every-connection, or a recording).
    pub quiet: Option<u64>,
}

/// The whole view state.
#[derive(Debug)]
pub struct Model {
    /// All rows of the latest refresh, in display order.
    rows: Vec<Row>,
    /// Indices into `rows` of those the filter lets through.
    shown: Vec<usize>,
    /// Window histories of the rows that were on screen since the last refresh (computed for
    /// those only: the table may hold tens of thousands).
    sparks: HashMap<ConnKey, Sparks>,
    /// Recent alerts, newest first.
    alerts: Vec<Alert>,
    stats: Stats,
    /// What is shown: "live on kernel ..." or "replay FILE ...", and how far it got.
    source: String,
    phase: String,
    /// Problems worth a line (missing hooks, a damaged recording).
    notes: Vec<String>,
    sort: Sort,
    reverse: bool,
    filter: String,
    /// The filter being typed, while the prompt is open.
    draft: Option<String>,
    /// Index into `shown` of the selected row, and of the first row on screen.
    selected: usize,
    offset: usize,
    /// Rows that fit on screen (set by the loop from the terminal size).
    viewport: usize,
    /// The connection the selection follows once the user moved it; None keeps it at the top.
    follow: Option<ConnKey>,
    paused: bool,
    help: bool,
    spark: SparkSide,
    quit: bool,
}

impl Model {
    /// An empty view of `source`.
    pub fn new(source: impl Into<String>) -> Model {
        Model {
            rows: Vec::new(),
            shown: Vec::new(),
            sparks: HashMap::new(),
            alerts: Vec::new(),
            stats: Stats::default(),
            source: source.into(),
            phase: String::new(),
            notes: Vec::new(),
            sort: Sort::Worst,
            reverse: false,
            filter: String::new(),
            draft: None,
            selected: 0,
            offset: 0,
            viewport: 1,
            follow: None,
            paused: false,
            help: false,
            spark: SparkSide::Auto,
            quit: false,
        }
    }

    /// New data: ignored while paused, so the screen holds still.
    pub fn refresh(&mut self, rows: Vec<Row>, alerts: Vec<Alert>, stats: Stats) {
        if self.paused {
            return;
        }
        self.rows = rows;
        self.sparks.clear();
        self.alerts = alerts;
        self.stats = stats;
        self.reorder();
    }

    /// Connections on screen whose window history is not in yet.
    pub fn wanting_sparks(&self) -> Vec<ConnKey> {
        self.visible().map(|(r, _)| r.key).filter(|k| !self.sparks.contains_key(k)).collect()
    }

    /// Window histories for connections on screen (as of `stats().now_ns`).
    pub fn add_sparks(&mut self, sparks: impl IntoIterator<Item = (ConnKey, Sparks)>) {
        self.sparks.extend(sparks);
    }

    /// A connection's window history, if it was on screen since the last refresh.
    pub fn sparks(&self, key: &ConnKey) -> Option<&Sparks> {
        self.sparks.get(key)
    }

    /// Rows that fit on screen; keeps the selection in view.
    pub fn set_viewport(&mut self, rows: usize) {
        self.viewport = rows.max(1);
        self.clamp();
    }

    /// How far the source got ("playing", "ended", ...).
    pub fn set_phase(&mut self, phase: impl Into<String>) {
        self.phase = phase.into();
    }

    /// A problem worth a line under the header (each said once).
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Apply one key's action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::SortNext => {
                self.sort = self.sort.next();
                self.reverse = false;
                self.reorder();
            }
            Action::SortReverse => {
                self.reverse = !self.reverse;
                self.reorder();
            }
            Action::FilterStart => self.draft = Some(String::new()),
            Action::FilterInput(c) => {
                if let Some(d) = &mut self.draft {
                    d.push(c);
                }
            }
            Action::FilterBackspace => {
                if let Some(d) = &mut self.draft {
                    d.pop();
                }
            }
            Action::FilterApply => {
                if let Some(d) = self.draft.take() {
                    self.filter = d.trim().to_string();
                    self.go_top();
                    self.refilter();
                }
            }
            Action::FilterClear => {
                self.draft = None;
                self.filter.clear();
                self.refilter();
            }
            Action::Up => self.select(self.selected.saturating_sub(1)),
            Action::Down => self.select(self.selected.saturating_add(1)),
            Action::PageUp => self.select(self.selected.saturating_sub(self.viewport)),
            Action::PageDown => self.select(self.selected.saturating_add(self.viewport)),
            Action::Top => self.go_top(),
            Action::Bottom => self.select(usize::MAX),
            Action::Pause => self.paused = !self.paused,
            Action::Help => self.help = !self.help,
            Action::SparkSide => self.spark = self.spark.next(),
        }
    }

    /// How keys are read now.
    pub fn mode(&self) -> Mode {
        if self.draft.is_some() {
            Mode::Filter
        } else if self.help {
            Mode::Help
        } else {
            Mode::Normal
        }
    }

    /// The rows on screen, from the first one in view, with whether each is selected.
    pub fn visible(&self) -> impl Iterator<Item = (&Row, bool)> {
        let end = self.offset.saturating_add(self.viewport).min(self.shown.len());
        self.shown[self.offset.min(end)..end]
            .iter()
            .enumerate()
            .map(move |(i, &r)| (&self.rows[r], self.offset + i == self.selected))
    }

    /// Rows passing the filter, and rows in all.
    pub fn counts(&self) -> (usize, usize) {
        (self.shown.len(), self.rows.len())
    }

    /// Connections closed, and with a zero window now, among all rows.
    pub fn closed_and_zero(&self) -> (usize, usize) {
        let closed = self.rows.iter().filter(|r| r.closed).count();
        let zero = self.rows.iter().filter(|r| r.zero_now).count();
        (closed, zero)
    }

    /// Index of the selected row among those shown, and of the first on screen.
    pub fn position(&self) -> (usize, usize) {
        (self.selected, self.offset)
    }

    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn phase(&self) -> &str {
        &self.phase
    }

    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The sort column and whether `S` reversed it.
    pub fn sort(&self) -> (Sort, bool) {
        (self.sort, self.reverse)
    }

    /// The filter in force.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The filter being typed, while the prompt is open.
    pub fn draft(&self) -> Option<&str> {
        self.draft.as_deref()
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn help(&self) -> bool {
        self.help
    }

    pub fn spark_side(&self) -> SparkSide {
        self.spark
    }

    pub fn quit(&self) -> bool {
        self.quit
    }

    /// Sort all rows, keep the two ends of a connection on this host together (in the place
    /// of the one that sorts first), then filter.
    fn reorder(&mut self) {
        let (sort, reverse) = (self.sort, self.reverse);
        self.rows.sort_by(|a, b| {
            let o = sort.compare(a, b);
            let o = if reverse { o.reverse() } else { o };
            // Ties in the chosen column fall back to the default order.
            o.then_with(|| worst_first(a, b))
        });
        let pairs = pair_ends(&mut self.rows, |r| r.tuple);
        for (i, (row, pair)) in self.rows.iter_mut().zip(pairs).enumerate() {
            row.other_end = match pair {
                Some(j) if j > i => OtherEnd::Below,
                Some(_) => OtherEnd::Above,
                None => OtherEnd::None,
            };
        }
        self.refilter();
    }

    /// Recompute which rows the filter shows, keeping the selection on the followed
    /// connection when it is still shown.
    fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.shown = (0..self.rows.len())
            .filter(|&i| needle.is_empty() || self.rows[i].search.contains(&needle))
            .collect();
        if let Some(key) = self.follow {
            match self.shown.iter().position(|&i| self.rows[i].key == key) {
                Some(i) => self.selected = i,
                // Gone (or filtered out): stay at the same place.
                None => self.follow = None,
            }
        }
        self.clamp();
    }

    /// Select row `i` of those shown (clamped), and follow its connection.
    fn select(&mut self, i: usize) {
        self.selected = i.min(self.shown.len().saturating_sub(1));
        self.follow = self.shown.get(self.selected).map(|&r| self.rows[r].key);
        self.clamp();
    }

    /// Back to the first row, and stay there as rows reorder.
    fn go_top(&mut self) {
        self.selected = 0;
        self.offset = 0;
        self.follow = None;
    }

    /// Keep the selection within the rows shown and on screen, and the screen full.
    fn clamp(&mut self) {
        let len = self.shown.len();
        self.selected = self.selected.min(len.saturating_sub(1));
        self.offset = self.offset.min(len.saturating_sub(self.viewport));
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + self.viewport {
            self.offset = self.selected + 1 - self.viewport;
        }
    }
}
