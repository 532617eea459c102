//! Draws one connection's chart as a standalone SVG: title and verdict, alert rows, lanes for
//! zero-window episodes, probes and drops, the plot of step lines, axes and a legend.
//! Presentation attributes only (no CSS, no scripts, no fonts), so the same markup works as a
//! file and inline in the HTML page; coordinates are rounded so output is byte-stable.

use std::fmt::Write as _;

use super::{
    collect::Chart,
    downsample::{downsample, BUCKETS, MAX_POINTS},
    scale::{time_ticks, YScale},
    series::{Line, Span},
    text::{conn_name, escape, wrap},
};
use crate::{
    alerts::{Alert, AlertKind, Severity},
    events::model::Side,
    timeline::fmt::{bytes, bytes_tick, duration_ms, utc, who},
};

const WIDTH: f64 = 1100.0;
/// Left margin: y tick labels and lane names.
const LEFT: f64 = 86.0;
const RIGHT: f64 = 24.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = 290.0;
/// Zero sits this far above the plot's bottom edge, so a line at zero is not hidden by the
/// frame.
const ZERO_PAD: f64 = 6.0;
const TOP_PAD: f64 = 4.0;
const LANE_H: f64 = 14.0;
const ALERT_ROW_H: f64 = 16.0;
/// Past this many rows, alert labels share rows (and may overlap).
const MAX_ALERT_ROWS: usize = 6;
/// Average advance of a character of 11px sans-serif, for laying out labels without a font.
const CHAR_W: f64 = 6.2;
/// Narrowest drawn zero-window span: 30 µs episodes on a 5 s axis must still show.
const MIN_SPAN_PX: f64 = 2.5;

/// What a chart says about where it came from.
pub struct Source<'a> {
    /// The kernel release it was recorded on.
    pub kernel: &'a str,
    /// The recording's file name.
    pub file: &'a str,
}

/// Stroke colour, width and dash of a line. Colours are the Okabe-Ito palette (readable with
/// colour-blindness); dashes tell the lines apart in greyscale too.
struct Stroke {
    colour: &'static str,
    width: f64,
    dash: Option<&'static str>,
}

fn stroke(line: Line) -> Stroke {
    match line {
        Line::LocalWindow => Stroke { colour: "#0072B2", width: 2.2, dash: None },
        Line::PeerWindow => Stroke { colour: "#E69F00", width: 2.2, dash: Some("8 4") },
        Line::InFlight => Stroke { colour: "#009E73", width: 2.0, dash: Some("2 3") },
        Line::Rcvbuf => Stroke { colour: "#CC79A7", width: 1.8, dash: Some("12 3 3 3") },
        Line::Unread => Stroke { colour: "#555555", width: 1.0, dash: None },
    }
}

fn span_colour(side: Side) -> &'static str {
    match side {
        Side::Local => "#D55E00",
        Side::Peer => "#56B4E9",
    }
}

const PROBE_COLOUR: &str = "#222222";
const DROP_COLOUR: &str = "#A0001C";

fn severity_colour(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "#B07800",
        Severity::Critical => "#C00000",
    }
}

/// A number for an attribute: one decimal, without a trailing ".0".
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Maps time and bytes to the plot.
struct Frame {
    t0: u64,
    t1: u64,
    top: f64,
    scale: YScale,
}

impl Frame {
    fn x(&self, ts: u64) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LEFT + (ts.saturating_sub(self.t0) as f64 / span).min(1.0) * PLOT_W
    }

    fn bottom(&self) -> f64 {
        self.top + PLOT_H
    }

    fn y(&self, bytes: f64) -> f64 {
        let zero = self.bottom() - ZERO_PAD;
        zero - self.scale.frac(bytes) * (PLOT_H - ZERO_PAD - TOP_PAD)
    }

    /// Seconds since the start, for tooltips.
    fn secs(&self, ts: u64) -> String {
        format!("{:.3} s", ts.saturating_sub(self.t0) as f64 / 1e9)
    }
}

/// One alert as drawn: from when it fired to when it resolved (or escalated, or the end).
struct AlertMark<'a> {
    alert: &'a Alert,
    end_ns: u64,
    resolved: Option<&'a Alert>,
    label: String,
}

fn alert_marks(alerts: &[Alert], end_ns: u64) -> Vec<AlertMark<'_>> {
    let same = |a: &Alert, b: &Alert| a.rule == b.rule && a.side == b.side;
    alerts
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind == AlertKind::Alert)
        .map(|(i, a)| {
            let next = alerts[i + 1..].iter().find(|b| same(a, b));
            let resolved = next.filter(|b| b.kind == AlertKind::AlertResolved);
            let side = a.side.map_or(String::new(), |s| format!(" ({})", s.as_str()));
            let sev = if a.severity == Severity::Critical { " CRITICAL" } else { "" };
            AlertMark {
                alert: a,
                end_ns: next.map_or(end_ns, |b| b.ts_ns),
                resolved,
                label: format!("{}{side}{sev}", a.rule.as_str()),
            }
        })
        .collect()
}

/// A label's place: its row and horizontal extent, and whether it is drawn left of its mark.
struct Placed {
    row: usize,
    left_of_mark: bool,
}

/// Greedy rows: each label (and its bar) goes in the first row where it does not overlap the
/// previous one; past the maximum, in the row that frees up first.
fn place_labels(items: &[(f64, f64, f64)]) -> (Vec<Placed>, usize) {
    let mut row_end: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for &(x, bar_end, label_w) in items {
        let left_of_mark = x + 3.0 + label_w > WIDTH - RIGHT;
        let (start, end) = if left_of_mark {
            (x - 3.0 - label_w, bar_end.max(x))
        } else {
            (x, bar_end.max(x + 3.0 + label_w))
        };
        let row = match row_end.iter().position(|&e| e + 8.0 <= start) {
            Some(r) => r,
            None if row_end.len() < MAX_ALERT_ROWS => {
                row_end.push(f64::MIN);
                row_end.len() - 1
            }
            None => {
                row_end.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
            }
        };
        row_end[row] = row_end[row].max(end);
        placed.push(Placed { row, left_of_mark });
    }
    let rows = row_end.len();
    (placed, rows)
}

/// Zero-window spans of one side merged where they would touch on screen: one rectangle
/// per visible stretch keeps files small when a window flaps thousands of times.
struct SpanGroup {
    x0: f64,
    x1: f64,
    count: usize,
    first: u64,
    last: u64,
    zero_ns: u64,
    open: bool,
    uncounted: usize,
    unseen_start: bool,
}

fn span_groups(spans: &[Span], side: Side, f: &Frame) -> Vec<SpanGroup> {
    let mut groups: Vec<SpanGroup> = Vec::new();
    for s in spans.iter().filter(|s| s.side == side) {
        let end = s.end_ns.unwrap_or(f.t1).max(s.start_ns);
        let x0 = f.x(s.start_ns);
        let mut x1 = f.x(end).max(x0 + MIN_SPAN_PX);
        if x1 > LEFT + PLOT_W {
            x1 = LEFT + PLOT_W;
        }
        let x0 = x0.min(x1 - MIN_SPAN_PX);
        match groups.last_mut() {
            Some(g) if x0 <= g.x1 + 0.5 => {
                g.x1 = g.x1.max(x1);
                g.count += 1;
                g.last = end;
                g.zero_ns += end - s.start_ns;
                g.open |= s.end_ns.is_none();
                g.uncounted += usize::from(s.counted == Some(false));
            }
            _ => groups.push(SpanGroup {
                x0,
                x1,
                count: 1,
                first: s.start_ns,
                last: end,
                zero_ns: end - s.start_ns,
                open: s.end_ns.is_none(),
                uncounted: usize::from(s.counted == Some(false)),
                unseen_start: !s.start_seen,
            }),
        }
    }
    groups
}

fn span_title(g: &SpanGroup, side: Side, f: &Frame) -> String {
    let who = match side {
        Side::Local => "this host advertised",
        Side::Peer => "the peer advertised",
    };
    let mut t = if g.count == 1 {
        format!(
            "zero window ({who}) from {} to {}: {}",
            f.secs(g.first),
            f.secs(g.last),
            duration_ms(g.zero_ns / 1_000_000)
        )
    } else {
        format!(
            "{} zero windows ({who}) between {} and {}: {} in all",
            g.count,
            f.secs(g.first),
            f.secs(g.last),
            duration_ms(g.zero_ns / 1_000_000)
        )
    };
    if g.unseen_start {
        t.push_str("; began before the recording");
    }
    if g.open {
        t.push_str("; still zero at the end");
    }
    if g.uncounted > 0 {
        t.push_str(&format!(
            "; {} set under memory pressure (not counted by the kernel)",
            g.uncounted
        ));
    }
    t
}

/// A step line: each value holds until the next sample, the last until the end of the axis.
fn step_path(points: &[(u64, u64)], f: &Frame) -> String {
    let mut d = String::new();
    let (mut px, mut py) = (f64::NAN, f64::NAN);
    for (i, &(ts, v)) in points.iter().enumerate() {
        let (x, y) = ((f.x(ts) * 10.0).round() / 10.0, (f.y(v as f64) * 10.0).round() / 10.0);
        if i == 0 {
            let _ = write!(d, "M{} {}", n(x), n(y));
        } else {
            if x != px {
                let _ = write!(d, "H{}", n(x));
            }
            if y != py {
                let _ = write!(d, "V{}", n(y));
            }
        }
        (px, py) = (x, y);
    }
    let end = (f.x(f.t1) * 10.0).round() / 10.0;
    if !points.is_empty() && end != px {
        let _ = write!(d, "H{}", n(end));
    }
    d
}

/// The line under the title: how long, negotiated options, the buffer, the reader, alerts.
fn facts(c: &Chart) -> String {
    let mut parts =
        vec![format!("{} on the chart", duration_ms((c.end_ns - c.data.first_ns) / 1_000_000))];
    if let Some(s) = &c.summary {
        match (s.wscale_ok, s.snd_wscale, s.rcv_wscale) {
            (Some(false), ..) => parts.push("no window scaling (64 KiB ceiling)".into()),
            (_, Some(snd), Some(rcv)) => parts.push(format!("wscale snd {snd} rcv {rcv}")),
            _ => {}
        }
        if let Some(mss) = s.mss {
            parts.push(format!("mss {mss}"));
        }
        if let Some(b) = s.rcvbuf {
            let pinned = if s.rcvbuf_locked == Some(true) { " pinned by SO_RCVBUF" } else { "" };
            parts.push(format!("rcvbuf {}{pinned}", bytes(b.into())));
        }
        if let (Some(r), Some(b)) = (&s.reader, s.read_bytes) {
            parts.push(format!("read by {r}: {}", bytes(b)));
        }
        parts.push(format!("{} alert(s)", s.alerts));
    }
    if c.data.close_ns.is_none() {
        parts.push("still open when the recording ended".into());
    }
    parts.join(" · ")
}

/// The chart's heading: 4-tuple and process, and the process at the other end when it is on
/// this host.
fn heading(c: &Chart) -> String {
    let d = &c.data;
    let mut h = format!("{} · {}", conn_name(&d.tuple), who(d.comm.as_deref(), d.pid));
    if let Some(other) = &c.other_end {
        h.push_str(&format!(" · other end on this host: {}", other.who));
    }
    h
}

/// What a legend entry's swatch looks like.
enum Swatch {
    Line(Line),
    Zero(Side),
    Probe,
    Drop,
    Alert,
}

fn legend(c: &Chart) -> Vec<(Swatch, &'static str)> {
    let d = &c.data;
    let mut items: Vec<(Swatch, &'static str)> = Line::LEGEND
        .iter()
        .filter(|l| !d.series(**l).points.is_empty())
        .map(|l| (Swatch::Line(*l), l.label()))
        .collect();
    if d.spans.iter().any(|s| s.side == Side::Local) {
        items.push((Swatch::Zero(Side::Local), "zero window advertised by this host"));
    }
    if d.spans.iter().any(|s| s.side == Side::Peer) {
        items.push((Swatch::Zero(Side::Peer), "zero window advertised by the peer"));
    }
    if !d.probes.is_empty() {
        items.push((Swatch::Probe, "zero-window probe sent"));
    }
    if !d.drops.is_empty() {
        items.push((Swatch::Drop, "segment dropped (no receive space)"));
    }
    if !d.alerts.is_empty() {
        items.push((Swatch::Alert, "alert (bar: until resolved)"));
    }
    items
}

fn swatch(out: &mut String, s: &Swatch, x: f64, y: f64) {
    match s {
        Swatch::Line(l) => {
            let st = stroke(*l);
            let dash = st.dash.map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
            let _ = write!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{dash}/>",
                n(x),
                n(y),
                n(x + 30.0),
                n(y),
                st.colour,
                n(st.width)
            );
        }
        Swatch::Zero(side) => {
            let _ = write!(
                out,
                "<rect class=\"zero-window {}\" x=\"{}\" y=\"{}\" width=\"30\" height=\"10\" fill=\"{}\" fill-opacity=\"0.6\"/>",
                side.as_str(),
                n(x),
                n(y - 5.0),
                span_colour(*side)
            );
        }
        Swatch::Probe => {
            let _ = write!(
                out,
                "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{PROBE_COLOUR}\" stroke-width=\"1.5\"/>",
                n(x + 15.0),
                n(y - 6.0),
                n(y + 6.0)
            );
        }
        Swatch::Drop => drop_marker(out, x + 15.0, y - 5.0, y + 5.0),
        Swatch::Alert => {
            let c = severity_colour(Severity::Warning);
            let _ = write!(
                out,
                "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{c}\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"/>\
                 <rect x=\"{0}\" y=\"{3}\" width=\"22\" height=\"3\" fill=\"{c}\" fill-opacity=\"0.6\"/>",
                n(x + 4.0),
                n(y - 7.0),
                n(y + 7.0),
                n(y - 1.5)
            );
        }
    }
}

fn drop_marker(out: &mut String, x: f64, top: f64, bottom: f64) {
    let _ = write!(
        out,
        "<path d=\"M{} {}H{}L{} {}Z\" fill=\"{DROP_COLOUR}\"/>",
        n(x - 4.5),
        n(top),
        n(x + 4.5),
        n(x),
        n(bottom)
    );
}

/// The whole chart, `<svg ...>...</svg>`.
pub fn chart(c: &Chart, src: &Source) -> String {
    let d = &c.data;
    let mut out = String::new();
    let heading = heading(c);
    let verdict = c.summary.as_ref().map_or_else(
        || "no summary: the connection table had already forgotten this connection".to_string(),
        |s| s.verdict.clone(),
    );
    let verdict_lines = wrap(&verdict, 150);

    // Vertical layout, top down.
    let mut y = 24.0;
    let title_y = y;
    y += 19.0;
    let verdict_y = y;
    y += 17.0 * verdict_lines.len() as f64;
    let facts_y = y;
    y += 14.0;

    let t0 = d.first_ns;
    let t1 = c.end_ns.max(t0 + 1_000_000);
    let marks = alert_marks(&d.alerts, t1);
    // Frame with a provisional top; x does not depend on it.
    let mut frame = Frame { t0, t1, top: 0.0, scale: YScale::Linear { top: 1.0 } };
    let items: Vec<(f64, f64, f64)> = marks
        .iter()
        .map(|m| {
            (frame.x(m.alert.ts_ns), frame.x(m.end_ns), m.label.chars().count() as f64 * CHAR_W)
        })
        .collect();
    let (placed, rows) = place_labels(&items);
    let alerts_top = y;
    y += rows as f64 * ALERT_ROW_H;

    let lanes: Vec<&str> = [
        (d.spans.iter().any(|s| s.side == Side::Local), "local zero"),
        (d.spans.iter().any(|s| s.side == Side::Peer), "peer zero"),
        (!d.probes.is_empty(), "probes"),
        (!d.drops.is_empty(), "drops"),
    ]
    .into_iter()
    .filter_map(|(present, name)| present.then_some(name))
    .collect();
    let lanes_top = y;
    y += lanes.len() as f64 * LANE_H;
    y += 6.0;
    frame.top = y;
    let values = Line::ALL.iter().flat_map(|l| d.series(*l).points.iter().map(|p| p.1));
    frame.scale = YScale::choose(values);
    let bottom = frame.bottom();
    let legend_items = legend(c);
    let legend_top = bottom + 58.0;
    let mut legend_rows = 1;
    {
        let mut x = LEFT;
        for (_, label) in &legend_items {
            let w = 40.0 + label.chars().count() as f64 * CHAR_W + 18.0;
            if x + w > WIDTH - RIGHT && x > LEFT {
                legend_rows += 1;
                x = LEFT;
            }
            x += w;
        }
    }
    let footer_y = legend_top + legend_rows as f64 * 20.0 + 8.0;
    let height = footer_y + 10.0;

    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<title>{}</title>\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n",
        escape(&heading),
        w = n(WIDTH),
        h = n(height)
    );

    // Heading.
    let _ = writeln!(
        out,
        "<text class=\"title\" x=\"16\" y=\"{}\" font-size=\"15\" font-weight=\"bold\" fill=\"#111\">{}</text>",
        n(title_y),
        escape(&heading)
    );
    for (i, line) in verdict_lines.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text class=\"verdict\" x=\"16\" y=\"{}\" font-size=\"13\" fill=\"#222\">{}</text>",
            n(verdict_y + 17.0 * i as f64),
            escape(line)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{}\" font-size=\"11\" fill=\"#666\">{}</text>",
        n(facts_y),
        escape(&facts(c))
    );

    // Plot frame and grid.
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fcfcfc\" stroke=\"#999\"/>",
        n(LEFT),
        n(frame.top),
        n(PLOT_W),
        n(PLOT_H)
    );
    let span_s = (t1 - t0) as f64 / 1e9;
    for (t, label) in time_ticks(span_s, 10) {
        let x = LEFT + t / span_s * PLOT_W;
        let _ = writeln!(
            out,
            "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#eeeeee\"/>\
             <text x=\"{0}\" y=\"{3}\" text-anchor=\"middle\" fill=\"#333\">{4}</text>",
            n(x),
            n(frame.top),
            n(bottom),
            n(bottom + 15.0),
            escape(&label)
        );
    }
    for v in frame.scale.ticks(22.0 / (PLOT_H - ZERO_PAD - TOP_PAD)) {
        let yv = frame.y(v as f64);
        let grid = if v == 0 { "#bbbbbb" } else { "#e6e6e6" };
        let _ = writeln!(
            out,
            "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y}\" stroke=\"{grid}\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" fill=\"#333\">{label}</text>",
            x0 = n(LEFT),
            y = n(yv),
            x1 = n(LEFT + PLOT_W),
            tx = n(LEFT - 6.0),
            ty = n(yv + 4.0),
            label = escape(&bytes_tick(v))
        );
    }
    let mid = frame.top + PLOT_H / 2.0;
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{0}\" transform=\"rotate(-90 14 {0})\" text-anchor=\"middle\" fill=\"#333\">{1}</text>",
        n(mid),
        escape(&frame.scale.describe())
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">seconds since the connection's first event ({})</text>",
        n(LEFT + PLOT_W / 2.0),
        n(bottom + 33.0),
        escape(&utc(t0))
    );

    // Lane names.
    for (i, name) in lanes.iter().enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">{}</text>",
            n(LEFT - 6.0),
            n(lanes_top + i as f64 * LANE_H + 10.5),
            escape(name)
        );
    }
    if rows > 0 {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">alerts</text>",
            n(LEFT - 6.0),
            n(alerts_top + 11.0)
        );
    }
    let lane_top =
        |name: &str| lanes.iter().position(|l| *l == name).map(|i| lanes_top + i as f64 * LANE_H);

    // Zero-window episodes: shading in the plot and a solid bar in the side's lane.
    for side in [Side::Local, Side::Peer] {
        let lane = lane_top(if side == Side::Local { "local zero" } else { "peer zero" });
        for g in span_groups(&d.spans, side, &frame) {
            let colour = span_colour(side);
            let title = escape(&span_title(&g, side, &frame));
            // A sliver needs more ink than a wide stretch to be seen at all.
            let opacity = if g.x1 - g.x0 < 6.0 { "0.4" } else { "0.16" };
            let _ = write!(
                out,
                "<g class=\"zero-window {}\"><title>{title}</title>\
                 <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\" fill-opacity=\"{opacity}\"/>",
                side.as_str(),
                n(g.x0),
                n(frame.top),
                n(g.x1 - g.x0),
                n(PLOT_H)
            );
            if let Some(ly) = lane {
                let _ = write!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"/>",
                    n(g.x0),
                    n(ly + 2.0),
                    n(g.x1 - g.x0),
                    n(LANE_H - 4.0)
                );
            }
            out.push_str("</g>\n");
        }
    }

    // Drops: a marker in their lane and a faint line through the plot.
    if let Some(ly) = lane_top("drops") {
        for dm in &d.drops {
            let x = frame.x(dm.ts_ns);
            let title = format!(
                "dropped at {}: {} ({}) for lack of receive space",
                frame.secs(dm.ts_ns),
                dm.reason,
                bytes(dm.bytes.into())
            );
            let _ = write!(
                out,
                "<g class=\"drop\"><title>{title}</title><line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" \
                 y2=\"{bottom}\" stroke=\"{DROP_COLOUR}\" stroke-opacity=\"0.45\" stroke-dasharray=\"2 2\"/>",
                title = escape(&title),
                x = n(x),
                top = n(frame.top),
                bottom = n(bottom),
            );
            drop_marker(&mut out, x, ly + 2.0, ly + LANE_H - 2.0);
            out.push_str("</g>\n");
        }
    }

    // Probes: ticks in their lane.
    if let Some(ly) = lane_top("probes") {
        for p in &d.probes {
            let next = p
                .next_probe_ms
                .map_or(String::new(), |ms| format!(", next in {}", duration_ms(ms as u64)));
            let _ = writeln!(
                out,
                "<line class=\"probe\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{PROBE_COLOUR}\" stroke-width=\"1.5\">\
                 <title>{3}</title></line>",
                n(frame.x(p.ts_ns)),
                n(ly + 1.0),
                n(ly + LANE_H - 1.0),
                escape(&format!(
                    "zero-window probe at {}: probes_out {}, backoff {}{next}",
                    frame.secs(p.ts_ns),
                    p.probes_out,
                    p.backoff
                ))
            );
        }
    }

    // The lines.
    for line in Line::ALL {
        let points = &d.series(line).points;
        if points.is_empty() {
            continue;
        }
        let thin = downsample(points, t0, t1, BUCKETS, MAX_POINTS);
        let st = stroke(line);
        let dash = st.dash.map_or(String::new(), |v| format!(" stroke-dasharray=\"{v}\""));
        let _ = writeln!(
            out,
            "<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{dash}><title>{}</title></path>",
            step_path(&thin, &frame),
            st.colour,
            n(st.width),
            escape(line.label())
        );
    }

    // Alerts: a dashed line from the label's row down through the plot, a bar until resolved.
    for (m, p) in marks.iter().zip(&placed) {
        let a = m.alert;
        let colour = severity_colour(a.severity);
        let x = frame.x(a.ts_ns);
        let row_top = alerts_top + p.row as f64 * ALERT_ROW_H;
        let mut title =
            format!("{} at {}: {} | fix: {}", m.label, frame.secs(a.ts_ns), a.explanation, a.fix);
        match m.resolved {
            Some(r) => title.push_str(&format!(
                " | resolved at {}: {}",
                frame.secs(r.ts_ns),
                r.explanation
            )),
            None if m.end_ns < t1 => title.push_str(" | escalated"),
            None => title.push_str(" | still active at the end"),
        }
        let (tx, anchor) = if p.left_of_mark { (x - 3.0, "end") } else { (x + 3.0, "start") };
        let _ = writeln!(
            out,
            "<g class=\"alert\"><title>{}</title>\
             <line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"/>\
             <rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"3\" fill=\"{colour}\" fill-opacity=\"0.6\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"{colour}\">{}</text></g>",
            escape(&title),
            n(row_top + 1.0),
            n(bottom),
            n(row_top + 12.5),
            n((frame.x(m.end_ns) - x).max(1.0)),
            n(tx),
            n(row_top + 10.0),
            escape(&m.label),
            x = n(x)
        );
    }

    // Legend.
    let mut lx = LEFT;
    let mut ly = legend_top;
    for (sw, label) in &legend_items {
        let w = 40.0 + label.chars().count() as f64 * CHAR_W + 18.0;
        if lx + w > WIDTH - RIGHT && lx > LEFT {
            lx = LEFT;
            ly += 20.0;
        }
        out.push_str("<g class=\"legend\">");
        swatch(&mut out, sw, lx, ly);
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text></g>",
            n(lx + 38.0),
            n(ly + 4.0),
            escape(label)
        );
        lx += w;
    }

    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{}\" font-size=\"10\" fill=\"#888\">recorded on kernel {} · {} · tracer report</text>",
        n(footer_y),
        escape(src.kernel),
        escape(src.file)
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(n(12.0), "12");
        assert_eq!(n(12.04), "12");
        assert_eq!(n(12.06), "12.1");
        assert_eq!(n(-0.01), "0");
    }

    #[test]
    fn labels_take_new_rows_only_when_they_would_overlap() {
        let (placed, rows) =
            place_labels(&[(100.0, 110.0, 60.0), (120.0, 130.0, 60.0), (300.0, 310.0, 60.0)]);
        assert_eq!(rows, 2);
        assert_eq!(placed.iter().map(|p| p.row).collect::<Vec<_>>(), [0, 1, 0]);
        let (placed, _) = place_labels(&[(WIDTH - RIGHT - 5.0, WIDTH - RIGHT, 80.0)]);
        assert!(placed[0].left_of_mark, "a label at the right edge is drawn to the left");
    }

    #[test]
    fn step_paths_hold_values_until_the_next_sample() {
        let f = Frame { t0: 0, t1: 1000, top: 0.0, scale: YScale::Linear { top: 100.0 } };
        let d = step_path(&[(0, 0), (500, 100), (500, 50)], &f);
        let zero = n(f.y(0.0));
        let full = n(f.y(100.0));
        let half = n(f.y(50.0));
        assert_eq!(
            d,
            format!(
                "M{} {zero}H{}V{full}V{half}H{}",
                n(LEFT),
                n(LEFT + PLOT_W / 2.0),
                n(LEFT + PLOT_W)
            )
        );
    }
}
