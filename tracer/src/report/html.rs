//! The HTML page: one self-contained file (inline CSS and SVG, no scripts, fonts or images
//! from anywhere) with the recording's provenance, an index of connections worst first, and
//! per connection its chart and its alerts in words.

use std::fmt::Write as _;

use super::{
    collect::{Chart, Recording},
    svg::{self, Source},
    text::{conn_name, escape},
};
use crate::{
    alerts::{AlertKind, Severity},
    timeline::{
        fmt::{duration_ms, utc, who_short},
        ConnSummary,
    },
};

const STYLE: &str = "\
body{font-family:sans-serif;margin:24px auto;max-width:1140px;padding:0 12px;color:#111;background:#fff}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:28px 0 8px}
p{margin:6px 0}
.meta{color:#444}
.warn{background:#fff3cd;border:1px solid #e0b200;padding:6px 10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.num{text-align:right;white-space:nowrap}
section{margin:22px 0 34px}
svg.chart{max-width:100%;height:auto;border:1px solid #ddd}
.critical{color:#c00000;font-weight:bold}
.warning{color:#8a5d00;font-weight:bold}
.resolved{color:#2a7a2a}
";

/// The whole page.
pub fn page(rec: &Recording, file: &str) -> String {
    let h = &rec.header;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>tracer report: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        escape(file)
    );
    let _ = writeln!(out, "<h1>TCP flow control over time: {}</h1>", escape(file));
    let _ = writeln!(
        out,
        "<p class=\"meta\">Recorded on kernel <b>{}</b>, started {}; {} events, {} lost; \
         {} connection(s) charted.</p>",
        escape(&h.kernel),
        escape(&utc(h.started_ns)),
        rec.events,
        rec.lost,
        rec.charts.len()
    );
    if let Some(b) = &rec.broken {
        let _ = writeln!(
            out,
            "<p class=\"warn\">The recording is damaged: {}. The charts show what came before.</p>",
            escape(&b.to_string())
        );
    } else if !rec.ended {
        out.push_str(
            "<p class=\"warn\">The recording has no end-of-recording trailer: the recorder \
             stopped abruptly, so the last moments may be missing.</p>\n",
        );
    }
    if rec.lost > 0 {
        let _ = writeln!(
            out,
            "<p class=\"warn\">The kernel could not queue {} event(s) while recording: lines \
             and spans may miss changes.</p>",
            rec.lost
        );
    }

    out.push_str("<table class=\"hooks\"><tr><th>signal</th><th>kernel hook used</th></tr>\n");
    for (signal, hook) in &h.hooks {
        let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(signal), escape(hook));
    }
    out.push_str("</table>\n");
    out.push_str(
        "<p class=\"meta\">Each chart is one end of a connection as this host saw it (local &gt; \
         peer). Lines are step lines: a value holds until the next sample. Shaded stretches are \
         zero windows; hover over marks for details.</p>\n",
    );

    out.push_str("<h2>Connections, worst first</h2>\n<table class=\"index\"><tr><th>connection (local &gt; peer)</th>\
                  <th>process</th><th>alerts</th><th>window limited by</th><th>verdict</th></tr>\n");
    for (i, c) in rec.charts.iter().enumerate() {
        let d = &c.data;
        // The second end of a connection on this host hangs under the first.
        let second = c.other_end.as_ref().is_some_and(|o| o.index < i);
        let _ = writeln!(
            out,
            "<tr><td>{}<a href=\"#conn-{}\">{}</a></td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            if second { "└ " } else { "" },
            i + 1,
            escape(&conn_name(&d.tuple)),
            escape(&who_short(d.comm.as_deref(), d.pid)),
            c.summary.as_ref().map_or_else(
                || c.data.alerts.iter().filter(|a| a.kind == AlertKind::Alert).count() as u32,
                |s| s.alerts
            ),
            escape(&c.summary.as_ref().map_or_else(String::new, main_limit)),
            escape(c.summary.as_ref().map_or("", |s| s.verdict.as_str()))
        );
    }
    out.push_str("</table>\n");

    let source = Source { kernel: &h.kernel, file };
    for (i, c) in rec.charts.iter().enumerate() {
        // The chart carries its own heading: the same picture as the --format svg file.
        let _ = writeln!(out, "<section id=\"conn-{}\">", i + 1);
        out.push_str(&svg::chart(c, &source));
        alerts_table(&mut out, c);
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// What held this end's window most of the time (the summary's largest share), in words; only
/// for an end that received data: a sender's own window holds nothing back.
fn main_limit(s: &ConnSummary) -> String {
    match (s.read_bytes, s.local.limited_by.first()) {
        (Some(read), Some(l)) if read > 0 => format!("{} ({:.0}%)", l.limit.describe(), l.pct),
        _ => String::new(),
    }
}

/// The connection's alerts in words: the chart's markers only say their rule.
fn alerts_table(out: &mut String, c: &Chart) {
    if c.data.alerts.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"alerts\"><tr><th>at</th><th>alert</th><th>side</th><th>what</th><th>fix</th></tr>\n",
    );
    for a in &c.data.alerts {
        let at = a.ts_ns.saturating_sub(c.data.first_ns) as f64 / 1e9;
        let (class, what) = match (a.kind, a.severity) {
            (AlertKind::AlertResolved, _) => (
                "resolved",
                format!(
                    "resolved {} after {}",
                    a.rule.as_str(),
                    duration_ms(a.duration_ms.unwrap_or(0))
                ),
            ),
            (AlertKind::Alert, Severity::Warning) => {
                ("warning", format!("WARNING {}", a.rule.as_str()))
            }
            (AlertKind::Alert, Severity::Critical) => {
                ("critical", format!("CRITICAL {}", a.rule.as_str()))
            }
        };
        let fix = if a.kind == AlertKind::Alert { a.fix.as_str() } else { "" };
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{at:.3} s</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&what),
            a.side.map_or("", |s| s.as_str()),
            escape(&a.explanation),
            escape(fix)
        );
    }
    out.push_str("</table>\n");
}
