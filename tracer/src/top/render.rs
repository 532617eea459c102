//! Draws the model: a header with counts, the connection table, the alert pane, a key line, and
//! the help overlay. Reads the model only.

use ratatui::{
    layout::{Alignment, Constraint, Layout, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Cell, Clear, Paragraph, Row as TableRow, Table},
    Frame,
};

use super::{
    history::{buckets, glyphs, Sample, Sparks},
    input::HELP,
    model::{Model, Sort, SparkSide},
    row::{OtherEnd, Row, State},
    theme::Theme,
};
use crate::{
    alerts::{AlertKind, Severity},
    events::model::{Limit, Side},
    timeline::fmt::{bytes_tight, duration_ms, endpoint, who_short},
};

/// Column spacing of the table.
const GAP: u16 = 1;
/// The connection column's width bounds ("127.0.0.1:43386 > 127.0.0.1:7777" is 32).
const CONN_MIN: u16 = 26;
const CONN_MAX: u16 = 47;
/// The sparkline needs this much room ("L " and ten cells) to be worth showing, and is kept this
/// much ("L " and twenty cells) before the least important columns.
const SPARK_MIN: u16 = 12;
const SPARK_RESERVE: u16 = 22;

/// The table's columns, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Conn,
    Process,
    LocalWindow,
    Limit,
    PeerWindow,
    InFlight,
    State,
    Zero,
    Probes,
    Backoff,
    Drops,
    Rwnd,
}

impl Col {
    const DISPLAY: [Col; 12] = [
        Col::Conn,
        Col::Process,
        Col::LocalWindow,
        Col::Limit,
        Col::PeerWindow,
        Col::InFlight,
        Col::State,
        Col::Zero,
        Col::Probes,
        Col::Backoff,
        Col::Drops,
        Col::Rwnd,
    ];
    /// What a narrow terminal keeps, most important first; the sparkline comes after `Rwnd`
    /// (see `fit_columns`) and takes what is left.
    const PRIORITY: [Col; 12] = [
        Col::Conn,
        Col::State,
        Col::Zero,
        Col::Process,
        Col::LocalWindow,
        Col::PeerWindow,
        Col::Probes,
        Col::Drops,
        Col::Rwnd,
        Col::Limit,
        Col::InFlight,
        Col::Backoff,
    ];

    /// Title, width (the connection's is computed), right-aligned, and the sort it stands for.
    fn spec(self) -> (&'static str, u16, bool, Sort) {
        match self {
            Col::Conn => ("connection (local > peer)", 0, false, Sort::Connection),
            Col::Process => ("process", 16, false, Sort::Process),
            Col::LocalWindow => ("local wnd", 9, true, Sort::LocalWindow),
            Col::Limit => ("limited by", 15, false, Sort::Limit),
            Col::PeerWindow => ("peer wnd", 9, true, Sort::PeerWindow),
            Col::InFlight => ("in flight", 9, true, Sort::InFlight),
            Col::State => ("state", 14, false, Sort::State),
            Col::Zero => ("zero time", 9, true, Sort::ZeroTime),
            Col::Probes => ("probes", 6, true, Sort::Probes),
            Col::Backoff => ("backoff", 7, true, Sort::Backoff),
            Col::Drops => ("drops", 6, true, Sort::Drops),
            Col::Rwnd => ("rwnd", 5, true, Sort::Rwnd),
        }
    }
}

/// The columns that fit in `width` with the connection column `conn` wide, in display order
/// with their widths, and the sparkline's width (0: no room for it).
fn fit_columns(width: u16, conn: u16) -> (Vec<(Col, u16)>, u16) {
    let width_of = |c: Col| if c == Col::Conn { conn.min(width) } else { c.spec().1 };
    let mut used = 0u16;
    let mut kept = Vec::new();
    for col in Col::PRIORITY {
        // Past the rwnd column, room for a useful sparkline comes first.
        let reserve = if kept.contains(&Col::Rwnd) || col == Col::InFlight || col == Col::Backoff {
            SPARK_RESERVE + GAP
        } else {
            0
        };
        let w = width_of(col);
        let need = if kept.is_empty() { w } else { w + GAP };
        if used + need + reserve > width {
            continue;
        }
        used += need;
        kept.push(col);
    }
    let spark = width.saturating_sub(used + GAP);
    let spark = if spark >= SPARK_MIN { spark } else { 0 };
    let columns =
        Col::DISPLAY.iter().filter(|c| kept.contains(c)).map(|&c| (c, width_of(c))).collect();
    (columns, spark)
}

/// Where each part of the screen goes.
struct Areas {
    header: Rect,
    table: Rect,
    alerts: Rect,
    footer: Rect,
}

fn layout(area: Rect, model: &Model) -> Areas {
    let header = 2 + model.notes().len().min(2) as u16;
    // The alert pane shrinks on small terminals, so the table keeps most of the room.
    let alerts = match area.height {
        h if h >= 36 => 10,
        h if h >= 24 => 7,
        _ => 4,
    };
    let [header, table, alerts, footer] = Layout::vertical([
        Constraint::Length(header),
        Constraint::Min(2),
        Constraint::Length(alerts),
        Constraint::Length(1),
    ])
    .areas(area);
    Areas { header, table, alerts, footer }
}

/// Table rows that fit in a screen of `area` (the loop tells the model, for paging).
pub fn body_rows(area: Rect, model: &Model) -> usize {
    usize::from(layout(area, model).table.height.saturating_sub(1))
}

/// Draw the whole view.
pub fn draw(frame: &mut Frame, model: &Model, theme: Theme) {
    let areas = layout(frame.area(), model);
    frame.render_widget(Paragraph::new(header(model, theme)), areas.header);
    draw_table(frame, areas.table, model, theme);
    draw_alerts(frame, areas.alerts, model, theme);
    frame.render_widget(Paragraph::new(footer(model, theme)), areas.footer);
    if model.help() {
        draw_help(frame, theme);
    }
}

fn header(model: &Model, theme: Theme) -> Vec<Line<'static>> {
    let stats = model.stats();
    let (shown, total) = model.counts();
    let (closed, zero) = model.closed_and_zero();
    let sep = || Span::raw("  |  ");
    // Counts first: on a narrow terminal the end of a line is what gets cut.
    let mut first = vec![Span::styled("tracer top", theme.heading())];
    if !model.phase().is_empty() {
        first.push(Span::styled(format!(" [{}]", model.phase()), theme.heading()));
    }
    first.push(sep());
    first.push(Span::raw(format!("{total} connections ({closed} closed)")));
    if let Some(quiet) = stats.quiet {
        first.push(Span::raw(format!(", {quiet} quiet sockets (healthy, not shown)")));
    }
    first.push(sep());
    let zero_style = if zero > 0 { theme.bad() } else { theme.heading() };
    first.push(Span::styled(format!("{zero} zero window now"), zero_style));
    first.push(sep());
    let alert_style = if stats.alerts_active > 0 { theme.warn() } else { theme.heading() };
    first.push(Span::styled(format!("{} alerts active", stats.alerts_active), alert_style));
    first.push(sep());
    first.push(Span::raw(format!("{:.1} events/s", stats.events_per_s)));
    if stats.lost > 0 {
        first.push(sep());
        first.push(Span::styled(format!("{} events lost", stats.lost), theme.bad()));
    }
    if stats.undecodable > 0 {
        first.push(sep());
        first.push(Span::styled(format!("{} undecodable", stats.undecodable), theme.warn()));
    }
    if stats.untracked > 0 {
        first.push(sep());
        let text = format!("{} connections not tracked (table full)", stats.untracked);
        first.push(Span::styled(text, theme.warn()));
    }
    if stats.evicted > 0 {
        first.push(sep());
        let text = format!("{} connections evicted (agent table full)", stats.evicted);
        first.push(Span::styled(text, theme.warn()));
    }
    if model.paused() {
        first.push(Span::raw("  "));
        first.push(Span::styled(" PAUSED ", theme.selected()));
    }
    let (sort, reverse) = model.sort();
    let filter = if model.filter().is_empty() {
        "none".to_string()
    } else {
        format!("\"{}\" ({shown} of {total})", model.filter())
    };
    let (selected, _) = model.position();
    let position = if shown == 0 { "-".to_string() } else { format!("{}/{shown}", selected + 1) };
    let second = Line::from(vec![
        Span::raw(format!("sort: {}, {}", sort.label(), direction(sort, reverse))),
        sep(),
        Span::raw(format!("filter: {filter}")),
        sep(),
        Span::raw(format!("row {position}")),
        sep(),
        Span::raw(format!("sparkline: {}", model.spark_side().label())),
        sep(),
        Span::raw(model.source().to_string()),
    ]);
    let mut lines = vec![Line::from(first), second];
    for note in model.notes().iter().take(2) {
        lines.push(Line::styled(note.clone(), theme.warn()));
    }
    lines
}

/// How the sort runs, in words.
fn direction(sort: Sort, reverse: bool) -> &'static str {
    let (natural, reversed) = match sort {
        Sort::Worst => ("worst first", "mildest first"),
        Sort::Connection | Sort::Process => ("a-z", "z-a"),
        Sort::LocalWindow | Sort::PeerWindow => ("smallest first", "largest first"),
        _ => ("largest first", "smallest first"),
    };
    if reverse {
        reversed
    } else {
        natural
    }
}

fn draw_table(frame: &mut Frame, area: Rect, model: &Model, theme: Theme) {
    let visible: Vec<(&Row, bool)> = model.visible().collect();
    let conn_width = visible
        .iter()
        .map(|(r, _)| (r.local.len() + r.peer.len() + 5) as u16)
        .max()
        .unwrap_or(0)
        .clamp(CONN_MIN, CONN_MAX);
    let (columns, spark_width) = fit_columns(area.width, conn_width);
    let (sort, reverse) = model.sort();
    let mut titles: Vec<Cell> = columns
        .iter()
        .map(|(col, _)| {
            let (title, _, numeric, s) = col.spec();
            let mark = match (sort == s, reverse) {
                (false, _) => "",
                (true, false) => "▼",
                (true, true) => "▲",
            };
            aligned(format!("{title}{mark}"), numeric)
        })
        .collect();
    let mut widths: Vec<Constraint> = columns.iter().map(|(_, w)| Constraint::Length(*w)).collect();
    if spark_width > 0 {
        titles.push(Cell::from("window, last 60 s"));
        widths.push(Constraint::Length(spark_width));
    }
    let rows: Vec<TableRow> = visible
        .iter()
        .map(|(row, selected)| {
            let style = if row.closed { theme.dim() } else { Style::new() };
            let style = if *selected { style.patch(theme.selected()) } else { style };
            let mut cells: Vec<Cell> =
                columns.iter().map(|(col, _)| cell(*col, row, theme)).collect();
            if spark_width > 0 {
                cells.push(Cell::from(sparkline(
                    model.sparks(&row.key),
                    model.spark_side(),
                    spark_width,
                    theme,
                )));
            }
            TableRow::new(cells).style(style)
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(rows, widths)
        .header(TableRow::new(titles).style(theme.heading()))
        .column_spacing(GAP);
    frame.render_widget(table, area);
    if empty && area.height > 1 {
        let (_, total) = model.counts();
        let text = if total == 0 {
            "no connections yet"
        } else {
            "no connection matches the filter (/ then Esc clears it)"
        };
        let below = Rect { y: area.y + 1, height: 1, ..area };
        frame.render_widget(Paragraph::new(Span::styled(text, theme.dim())), below);
    }
}

/// "comm/pid" cut to `width` characters by shortening the name, never the pid: two processes of
/// one long name are still told apart.
fn keep_pid(process: &str, width: usize) -> String {
    if process.chars().count() <= width {
        return process.to_string();
    }
    let Some((name, pid)) = process.rsplit_once('/') else {
        return process.chars().take(width).collect();
    };
    let room = width.saturating_sub(pid.chars().count() + 2);
    format!("{}…/{pid}", name.chars().take(room).collect::<String>())
}

fn aligned(text: String, numeric: bool) -> Cell<'static> {
    let line = Line::from(text);
    Cell::from(if numeric { line.alignment(Alignment::Right) } else { line })
}

/// One cell of a row.
fn cell(col: Col, row: &Row, theme: Theme) -> Cell<'static> {
    let window = |w: Option<u32>| match w {
        None => aligned("-".to_string(), true),
        Some(0) => Cell::from(Line::styled("0B", theme.bad()).alignment(Alignment::Right)),
        Some(w) => aligned(bytes_tight(u64::from(w)), true),
    };
    let count = |n: u64| aligned(if n == 0 { "-".to_string() } else { n.to_string() }, true);
    match col {
        // The other end of the row above (both ends on this host) hangs under it.
        Col::Conn if row.other_end == OtherEnd::Above => {
            Cell::from(format!("└ {} > {}", row.local, row.peer))
        }
        Col::Conn => Cell::from(format!("{} > {}", row.local, row.peer)),
        Col::Process => Cell::from(keep_pid(&row.process, usize::from(Col::Process.spec().1))),
        Col::LocalWindow => window(row.local_window),
        Col::Limit => Cell::from(row.local_limit.map_or("-", Limit::as_str)),
        Col::PeerWindow => window(row.peer_window),
        Col::InFlight => {
            aligned(row.in_flight.map_or("-".to_string(), |n| bytes_tight(u64::from(n))), true)
        }
        Col::State => {
            let text = match row.state_side {
                Some(Side::Local) => format!("{} local", row.state.name()),
                Some(Side::Peer) => format!("{} peer", row.state.name()),
                None => row.state.name().to_string(),
            };
            let style =
                if row.state == State::Closed { theme.dim() } else { theme.state(row.state) };
            Cell::from(Span::styled(text, style))
        }
        Col::Zero => {
            let text = if row.zero_ms == 0 { "-".to_string() } else { duration_ms(row.zero_ms) };
            let style = if row.zero_now { theme.bad() } else { Style::new() };
            Cell::from(Line::styled(text, style).alignment(Alignment::Right))
        }
        Col::Probes => count(row.probes),
        Col::Backoff => count(u64::from(row.max_backoff)),
        Col::Drops => count(row.drops),
        Col::Rwnd => aligned(row.rwnd_pct.map_or("-".to_string(), |p| format!("{p:.0}%")), true),
    }
}

/// "L ▇▇·▂" or "P ...": the side's letter, then one cell per bucket of the last minute; cells
/// with time at zero window in the alarm style.
fn sparkline(
    sparks: Option<&Sparks>,
    choice: SparkSide,
    width: u16,
    theme: Theme,
) -> Line<'static> {
    let Some(sparks) = sparks else { return Line::from("") };
    let zero_ns = |v: &[Option<Sample>]| v.iter().flatten().map(|s| s.zero_ns).sum::<u64>();
    let low = |v: &[Option<Sample>]| v.iter().flatten().filter_map(|s| s.low).min();
    let side = match choice {
        SparkSide::Local => Side::Local,
        SparkSide::Peer => Side::Peer,
        // The side that spent longer at zero, else the one that went lower.
        SparkSide::Auto => match zero_ns(&sparks.peer).cmp(&zero_ns(&sparks.local)) {
            std::cmp::Ordering::Greater => Side::Peer,
            std::cmp::Ordering::Less => Side::Local,
            std::cmp::Ordering::Equal => match (low(&sparks.local), low(&sparks.peer)) {
                (Some(l), Some(p)) if p < l => Side::Peer,
                (None, Some(_)) => Side::Peer,
                _ => Side::Local,
            },
        },
    };
    let (letter, values) = match side {
        Side::Local => ("L ", &sparks.local),
        Side::Peer => ("P ", &sparks.peer),
    };
    let cells = buckets(values, usize::from(width.saturating_sub(2)));
    let mut spans = vec![Span::raw(letter)];
    // One span per run of cells in the same style.
    let mut run = String::new();
    let mut run_stalled = false;
    for g in glyphs(&cells) {
        if g.stalled != run_stalled && !run.is_empty() {
            let style = if run_stalled { theme.bad() } else { theme.spark() };
            spans.push(Span::styled(std::mem::take(&mut run), style));
        }
        run_stalled = g.stalled;
        run.push(g.ch);
    }
    if !run.is_empty() {
        spans.push(Span::styled(run, if run_stalled { theme.bad() } else { theme.spark() }));
    }
    Line::from(spans)
}

fn draw_alerts(frame: &mut Frame, area: Rect, model: &Model, theme: Theme) {
    let stats = model.stats();
    let title = format!(" alerts, newest first ({} active) ", stats.alerts_active);
    let block = Block::bordered().title(Span::styled(title, theme.heading()));
    let inner = usize::from(block.inner(area).height);
    let lines: Vec<Line> = model
        .alerts()
        .iter()
        .take(inner)
        .map(|a| {
            let what = match (a.kind, a.severity) {
                (AlertKind::AlertResolved, _) => "resolved",
                (AlertKind::Alert, Severity::Warning) => "WARNING ",
                (AlertKind::Alert, Severity::Critical) => "CRITICAL",
            };
            let side = a.side.map_or(String::new(), |s| format!(" ({})", s.as_str()));
            let conn = format!("{} > {}", endpoint(&a.saddr, a.sport), endpoint(&a.daddr, a.dport));
            Line::from(vec![
                Span::styled(
                    format!("{:>10} ", age(stats.now_ns.saturating_sub(a.ts_ns))),
                    theme.dim(),
                ),
                Span::styled(format!("{what} {}{side}", a.rule.as_str()), theme.alert(a)),
                Span::raw(format!(
                    "  {conn}  {}: {}",
                    who_short(a.comm.as_deref(), a.pid),
                    a.explanation
                )),
            ])
        })
        .collect();
    let lines = if lines.is_empty() { vec![Line::styled("no alerts", theme.dim())] } else { lines };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// How long ago, short: "0.4s ago", "12s ago", "3m05s ago", "2h ago".
fn age(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s < 10.0 {
        format!("{s:.1}s ago")
    } else if s < 60.0 {
        format!("{s:.0}s ago")
    } else if s < 3600.0 {
        format!("{}m{:02}s ago", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h ago", (s / 3600.0) as u64)
    }
}

fn footer(model: &Model, theme: Theme) -> Line<'static> {
    match model.draft() {
        Some(draft) => Line::from(vec![
            Span::styled("filter: ", theme.heading()),
            Span::raw(format!("{draft}_")),
            Span::styled("   Enter applies, Esc clears", theme.dim()),
        ]),
        None => Line::styled(
            "q quit  s/S sort  / filter  j/k PgUp/PgDn scroll  p pause  w sparkline side  ? help",
            theme.dim(),
        ),
    }
}

fn draw_help(frame: &mut Frame, theme: Theme) {
    let area = frame.area();
    let width = 84.min(area.width);
    let height = (HELP.len() as u16 + 5).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<16}"), theme.heading()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::styled(
        " of the lowest window; '·' zero at least half the time; in red: some time at zero.",
        theme.dim(),
    ));
    lines.push(Line::styled(
        " Closed connections stay a minute, greyed. Sparkline: one cell per second (or group)",
        theme.dim(),
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(" keys ")), popup);
}

#[cfg(test)]
mod keep_pid_tests {
    use super::keep_pid;

    #[test]
    fn a_long_name_is_shortened_and_the_pid_kept() {
        assert_eq!(keep_pid("python3/16334", 16), "python3/16334");
        assert_eq!(keep_pid("top-f961b112baf/22392", 16), "top-f961b…/22392");
        assert_eq!(keep_pid("top-f961b112baf/22392", 16).chars().count(), 16);
    }
}
