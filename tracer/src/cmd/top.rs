//! `tracer top`: a live full-screen table of connections, worst flow-control state first, fed
//! from the kernel (as `watch` is) or from a recording (`--from FILE`, at its own pace or
//! `--fast`). The view itself (state, drawing, keys, terminal) is in crate::top.

use std::{
    cell::RefCell,
    net::SocketAddr,
    path::Path,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _, Result};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::{interval, sleep, MissedTickBehavior},
};

use super::session::{Options, Session};
use crate::{
    alerts::Thresholds,
    cli::{TopArgs, DEFAULT_WINDOW_SHIFT},
    events::{reader::Reader, totals::KernelTotals, Decoder},
    host::{clock::now_ns, procfs::os_release},
    metrics,
    pipeline::{
        live::{Due, Live, Warnings},
        Pipeline,
    },
    record::player::Player,
    top::{
        feed::{Feed, SharedFeed},
        input,
        model::{Action, Model, Stats},
        pace::Pace,
        render,
        row::{self, Scope},
        terminal::{require_tty, Input, Keys, Tui},
        theme::Theme,
    },
};

/// How often the view is refreshed while a recording plays (live, at each tick of the driver).
const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// The longest real wait between two items of a recording played at its own pace.
const MAX_GAP: Duration = Duration::from_secs(1);
/// Items of a recording played before looking at the keys again (`--fast` on a big file).
const FEED_BUDGET: usize = 4096;
/// Alerts handed to the view (the pane shows what fits).
const ALERTS_SHOWN: usize = 50;

/// Run `tracer top`.
pub fn run(args: TopArgs) -> Result<()> {
    // Refused before anything is attached or opened: the view needs a terminal.
    require_tty()?;
    let metrics_addr = args.metrics.metrics.as_deref().map(metrics::parse_addr).transpose()?;
    let thresholds = Thresholds::load(args.alerts.config.as_deref(), &args.alerts.alerts)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match args.from.clone() {
        Some(path) => runtime.block_on(replay(&args, &path, thresholds, metrics_addr)),
        None => runtime.block_on(live(&args, thresholds, metrics_addr)),
    }
}

/// The pipeline behind the view: nothing printed, alerts and window histories kept in `feed`,
/// and the Prometheus endpoint when asked for (it prints its address, so it starts before the
/// view takes the screen). A replay serves what the recording shows.
async fn pipeline(
    thresholds: Thresholds,
    feed: &SharedFeed,
    args: &TopArgs,
    metrics_addr: Option<SocketAddr>,
    live: Option<Arc<KernelTotals>>,
) -> Result<Pipeline> {
    let max_connections = args.filter.max_connections;
    let mut pipeline = Pipeline::with_table(thresholds, super::watch::table(max_connections));
    pipeline.add(Box::new(Rc::clone(feed)));
    if let Some(addr) = metrics_addr {
        let per_connection = args.metrics.metrics_per_connection;
        let serve =
            super::serve_metrics(addr, per_connection, live.is_some(), max_connections, live);
        pipeline.add(Box::new(serve.await?));
    }
    Ok(pipeline)
}

/// SIGINT and SIGTERM (kill, or Ctrl-C from outside the raw terminal), and SIGHUP (the
/// terminal went away): each one quits.
struct Quit {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Quit {
    fn new() -> Result<Quit> {
        Ok(Quit {
            int: signal(SignalKind::interrupt()).context("failed to watch for SIGINT")?,
            term: signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("failed to watch for SIGHUP")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// The view and what it needs to draw.
struct View {
    tui: Tui,
    keys: Keys,
    model: Model,
    theme: Theme,
    feed: SharedFeed,
    scope: Scope,
}

impl View {
    /// Enters full-screen mode: from here on nothing may be printed until the view is dropped.
    fn enter(model: Model, feed: SharedFeed, scope: Scope) -> Result<View> {
        let tui = Tui::enter()?;
        Ok(View { tui, keys: Keys::spawn(), model, theme: Theme::detect(), feed, scope })
    }

    /// Take the table and the feed as of `now_ns` into the model (a paused model ignores it).
    /// `quiet`: sockets opened live that stayed quiet (not reported), when that applies.
    fn refresh(
        &mut self,
        pipeline: &Pipeline,
        now_ns: u64,
        undecodable: u64,
        untracked: u64,
        quiet: Option<u64>,
    ) {
        let state = pipeline.state();
        let table = state.table;
        let mut feed = self.feed.borrow_mut();
        feed.histories.retain(table);
        let rows = row::rows(table, now_ns, &self.scope);
        let alerts = feed
            .alerts
            .newest_first()
            .filter(|a| self.scope.admits(&a.tuple(), a.pid))
            .take(ALERTS_SHOWN)
            .cloned()
            .collect();
        let stats = Stats {
            now_ns,
            alerts_active: state
                .alerts
                .active()
                .filter(|a| self.scope.admits(&a.alert.tuple(), a.alert.pid))
                .count(),
            events_per_s: feed.rate.per_second(now_ns),
            lost: feed.lost,
            undecodable,
            untracked,
            evicted: table.evicted(),
            quiet,
        };
        drop(feed);
        self.model.refresh(rows, alerts, stats);
    }

    /// Draw the model, after fetching the window histories of rows newly on screen.
    fn draw(&mut self, pipeline: &Pipeline) -> Result<()> {
        let area = self.tui.area()?;
        self.model.set_viewport(render::body_rows(area, &self.model));
        let now_ns = self.model.stats().now_ns;
        let feed = self.feed.borrow();
        let sparks: Vec<_> = self
            .model
            .wanting_sparks()
            .into_iter()
            .filter_map(|key| {
                let conn = pipeline.state().table.get(&key)?;
                Some((key, feed.histories.of(conn)?.sparks(now_ns)))
            })
            .collect();
        drop(feed);
        self.model.add_sparks(sparks);
        let (model, theme) = (&self.model, self.theme);
        self.tui.draw(|frame| render::draw(frame, model, theme))
    }

    /// One input from the terminal; Err when the terminal failed.
    fn input(&mut self, input: Option<Input>) -> Result<()> {
        match input {
            Some(Input::Key(key)) => {
                if let Some(action) = input::action(key, self.model.mode()) {
                    self.model.apply(action);
                }
            }
            Some(Input::Resize) => {}
            Some(Input::Failed(why)) => return Err(anyhow!("failed to read the terminal: {why}")),
            // The reader stopped without saying why: nothing more can be read, so quit.
            None => self.model.apply(Action::Quit),
        }
        Ok(())
    }
}

/// Live: attach as watch does, then drain, tick and draw until a quit key or signal.
async fn live(
    args: &TopArgs,
    thresholds: Thresholds,
    metrics_addr: Option<SocketAddr>,
) -> Result<()> {
    // Attach before the screen is taken, so that errors (not root, no BTF) print plainly.
    let mut session = Session::start(&Options {
        hooks: args.hooks.hooks.into(),
        ports: args.filter.ports.clone(),
        pid: args.filter.pid,
        window_shift: DEFAULT_WINDOW_SHIFT,
        every_connection: args.filter.every_connection(),
        report_below_pct: args.filter.report_below,
        socket_map_entries: args.hooks.socket_map_entries,
    })?;
    let reader = Reader::new(&mut session.ebpf)?;
    let totals = Arc::new(KernelTotals::take(&mut session.ebpf)?);
    let mut live = Live::new(reader, Decoder::new(session.facts.clone()), Warnings::Counted);
    let feed: SharedFeed = Rc::new(RefCell::new(Feed::default()));
    let serve_totals = Some(Arc::clone(&totals));
    let mut pipeline = pipeline(thresholds, &feed, args, metrics_addr, serve_totals).await?;
    // Without a filter, the header says how many connections stayed quiet.
    let totals = (!args.filter.every_connection()).then_some(totals);
    let quiet = |totals: &Option<Arc<KernelTotals>>| {
        totals.as_ref().map(|t| {
            let totals = t.read();
            totals.opened().saturating_sub(totals.reported())
        })
    };
    let kernel = os_release().unwrap_or_default();
    let mut model = Model::new(format!("live on kernel {kernel}"));
    let missing: Vec<&str> = session.attached.missing().map(|r| r.signal.name()).collect();
    if !missing.is_empty() {
        model.note(format!("no hook on this kernel for: {} (not shown)", missing.join(", ")));
    }
    let mut quit = Quit::new()?;
    // Live, the kernel filters by --port/--pid already.
    let mut view = View::enter(model, feed, Scope::default())?;

    let outcome: Result<()> = loop {
        let step = tokio::select! {
            due = live.due() => {
                let now = now_ns();
                let refresh = matches!(due, Due::Tick);
                live.run(due, &mut pipeline, now).and_then(|()| {
                    if !refresh {
                        return Ok(());
                    }
                    let counts = live.counts();
                    view.refresh(&pipeline, now, counts.bad, counts.untracked, quiet(&totals));
                    view.draw(&pipeline)
                })
            }
            input = view.keys.next() => view.input(input).and_then(|()| view.draw(&pipeline)),
            _ = quit.recv() => break Ok(()),
        };
        if let Err(e) = step {
            break Err(e);
        }
        if view.model.quit() {
            break Ok(());
        }
    };
    // The terminal first, so that an error prints on the normal screen; then detach.
    drop(view);
    drop(session);
    outcome
}

/// Where a replay is.
enum Playback {
    Playing,
    /// The file ended (cleanly or not): the final state stays up until quit.
    Ended,
}

/// A recording: played at its pace (or at once), then shown as it ended until quit.
async fn replay(
    args: &TopArgs,
    path: &Path,
    thresholds: Thresholds,
    metrics_addr: Option<SocketAddr>,
) -> Result<()> {
    // Opened before the screen is taken: a missing or foreign file is a plain error.
    let mut player = Player::open(path)?;
    let feed: SharedFeed = Rc::new(RefCell::new(Feed::default()));
    let mut pipeline = pipeline(thresholds, &feed, args, metrics_addr, None).await?;
    let name =
        path.file_name().map_or(path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut model = Model::new(format!("replay {name} (kernel {})", player.header().kernel));
    model.set_phase(if args.fast { "fast" } else { "playing" });
    let scope = Scope { ports: args.filter.ports.clone(), pid: args.filter.pid };
    let mut quit = Quit::new()?;
    let mut view = View::enter(model, feed, scope)?;
    let mut pace = Pace::new(args.fast, MAX_GAP);
    let mut refresh = interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = Playback::Playing;
    let mut notes_shown = 0;

    let outcome: Result<()> = loop {
        // Play what is due.
        if matches!(state, Playback::Playing) && !view.model.paused() {
            let mut budget = FEED_BUDGET;
            while budget > 0 {
                let Some(ts) = player.next_ts() else {
                    state = Playback::Ended;
                    break;
                };
                if !pace.due_in(ts, Instant::now()).is_zero() {
                    break;
                }
                player.step(&mut pipeline)?;
                pace.played(ts, Instant::now());
                budget -= 1;
            }
            for note in &player.notes()[notes_shown..] {
                view.model.note(note.to_string());
            }
            notes_shown = player.notes().len();
            if matches!(state, Playback::Ended) {
                if let Some(b) = player.broken() {
                    view.model.note(format!("damaged recording: {b}"));
                }
                // As a replay ends: what is due by the last moment recorded fires.
                pipeline.tick(player.last_ns())?;
                view.model.set_phase("ended: q quits");
                view.refresh(&pipeline, player.last_ns(), 0, 0, None);
                view.draw(&pipeline)?;
            }
        }
        let playing = matches!(state, Playback::Playing) && !view.model.paused();
        let next_ts = player.next_ts();
        let wait = next_ts.map_or(Duration::ZERO, |ts| pace.due_in(ts, Instant::now()));
        let step = tokio::select! {
            _ = sleep(wait), if playing => Ok(()),
            _ = refresh.tick() => {
                let now = match state {
                    Playback::Ended => player.last_ns(),
                    Playback::Playing => pace.clock(Instant::now(), next_ts),
                };
                // Time-based alerts fire between items as they would have live.
                let ticked = match state {
                    Playback::Playing if !args.fast => pipeline.tick(now),
                    _ => Ok(()),
                };
                ticked.and_then(|()| {
                    view.refresh(&pipeline, now, 0, 0, None);
                    view.draw(&pipeline)
                })
            }
            input = view.keys.next() => {
                let was_paused = view.model.paused();
                let step = view.input(input).and_then(|()| view.draw(&pipeline));
                if view.model.paused() != was_paused {
                    pace.set_paused(view.model.paused(), Instant::now());
                    if let Playback::Playing = state {
                        view.model.set_phase(if view.model.paused() { "paused" } else { "playing" });
                    }
                }
                step
            }
            _ = quit.recv() => break Ok(()),
        };
        if let Err(e) = step {
            break Err(e);
        }
        if view.model.quit() {
            break Ok(());
        }
    };
    drop(view);
    outcome?;
    match player.take_broken() {
        Some(b) => Err(b.into()),
        None => Ok(()),
    }
}
