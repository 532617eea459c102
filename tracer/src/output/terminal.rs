//! One readable line per event, for a person at a terminal.

use std::io::{BufWriter, IsTerminal as _, Stdout, Write as _};

use anyhow::Result;

use super::Show;
use crate::{
    alerts::{Alert, AlertId, AlertKind, Severity},
    events::{model::Side, Body, Event},
    pipeline::{Consumer, State},
    timeline::{
        fmt::{bytes_tight as bytes, clock, duration_tight as ms},
        ConnKey, ConnSummary,
    },
};

pub struct Terminal {
    out: BufWriter<Stdout>,
    colour: bool,
    show: Show,
}

impl Terminal {
    /// Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    pub fn new(show: Show) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colour = std::io::stdout().is_terminal() && !no_color;
        Terminal { out: BufWriter::new(std::io::stdout()), colour, show }
    }

    /// `text` in an ANSI style when colour is on.
    fn paint(&self, style: Style, text: &str) -> String {
        if !self.colour || style == Style::Plain {
            return text.to_string();
        }
        let code = match style {
            Style::Plain => "",
            Style::Bad => "1;31",
            Style::Good => "32",
            Style::Notice => "33",
            Style::Critical => "1;97;41",
            Style::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    /// Something is stuck or lost: zero windows, drops, lost events.
    Bad,
    /// It got better: reopened windows, resolved alerts.
    Good,
    /// Worth a look: probes, warnings.
    Notice,
    Critical,
    /// Routine: window changes, samples.
    Dim,
}

fn style_of(e: &Event) -> Style {
    match &e.body {
        Body::ZeroWindowStart { .. } | Body::Drop { .. } => Style::Bad,
        Body::ZeroWindowEnd { .. } => Style::Good,
        Body::Probe { .. } => Style::Notice,
        Body::Window { .. } | Body::Inflight { .. } => Style::Dim,
        _ => Style::Plain,
    }
}

/// The line for `e`; `name` is the socket's process name when an earlier event gave it.
pub fn line(e: &Event, name: Option<&str>) -> String {
    let who = match (e.body.comm().or(name), e.pid) {
        (Some(comm), pid) => format!("{comm}/{}", pid.map_or("?".into(), |p| p.to_string())),
        (None, Some(pid)) => format!("pid {pid}"),
        (None, None) => "-".to_string(),
    };
    let kib = |n: u32| bytes(u64::from(n));
    let detail = match &e.body {
        Body::Window { side, window, raw_window, wscale, local, sender } => {
            let mut text =
                format!("{} window {} (raw {raw_window}<<{wscale})", side.as_str(), kib(*window));
            if let Some(l) = local {
                text.push_str(&format!(" unread {} rcvbuf {}", kib(l.unread), kib(l.rcvbuf)));
                if let Some(c) = &l.choice {
                    text.push_str(&format!(" - limited by {}", c.limited_by.describe()));
                }
            }
            if let Some(s) = sender {
                text.push_str(&format!(" in flight {} unsent {}", kib(s.in_flight), kib(s.unsent)));
            }
            text
        }
        Body::ZeroWindowStart { side: Side::Local, counted, local, .. } => format!(
            "local ZERO WINDOW{}{}",
            local.as_ref().map_or(String::new(), |l| format!(
                ": {} unread of rcvbuf {} - the receiving application is not keeping up",
                kib(l.unread),
                kib(l.rcvbuf)
            )),
            if *counted { "" } else { " (set under memory pressure; not in TCPToZeroWindowAdv)" }
        ),
        Body::ZeroWindowStart { side: Side::Peer, sender, .. } => format!(
            "peer ZERO WINDOW: the remote receiver is not keeping up{}",
            sender.as_ref().map_or(String::new(), |s| format!("; {} unsent here", kib(s.unsent)))
        ),
        Body::ZeroWindowEnd { side, window, duration_ns } => format!(
            "{} window reopened to {}{}",
            side.as_str(),
            kib(*window),
            duration_ns.map_or(String::new(), |d| format!(" after {}", ms(d as f64 / 1e6)))
        ),
        Body::Inflight { window, sender } => format!(
            "in flight {} of peer window {}, unsent {}, rwnd-limited {} of {} busy",
            kib(sender.in_flight),
            kib(*window),
            kib(sender.unsent),
            ms(sender.rwnd_limited_ms as f64),
            ms(sender.busy_ms as f64)
        ),
        Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, .. } => format!(
            "zero-window probe sent: probes_out {probes_out} backoff {backoff}{} peer window {}",
            match (next_probe_ms, rto_ms) {
                (Some(next), Some(rto)) => format!(" next in {} (rto {})", ms(*next), ms(*rto)),
                _ => String::new(),
            },
            kib(*snd_wnd)
        ),
        Body::RcvSpace { space, rcvbuf, window_clamp, rcv_ssthresh, rcvbuf_locked, .. } => format!(
            "rcvbuf {} space {} clamp {} ssthresh {}{}",
            kib(*rcvbuf),
            kib(*space),
            kib(*window_clamp),
            kib(*rcv_ssthresh),
            if *rcvbuf_locked { " (pinned by SO_RCVBUF: no autotuning)" } else { "" }
        ),
        Body::Read { bytes: n, reads, interval_ns, rate, .. } => format!(
            "read {} in {reads} calls over {} ({}/s)",
            bytes(*n),
            ms(*interval_ns as f64 / 1e6),
            bytes(*rate as u64)
        ),
        Body::Drop { reason, bytes: n } => {
            format!("DROPPED {} for lack of receive space ({reason})", kib(*n))
        }
        Body::Open { snd_wscale, rcv_wscale, wscale_ok, advmss, rcvbuf, late, .. } => format!(
            "open: wscale {} advmss {advmss} rcvbuf {}{}",
            if *wscale_ok {
                format!("snd {snd_wscale} rcv {rcv_wscale}")
            } else {
                "NOT negotiated (windows max 64KiB)".into()
            },
            kib(*rcvbuf),
            if *late { " (reported late: quiet until its first flow-control moment)" } else { "" }
        ),
        Body::Close { from_state, .. } => format!("close (was {from_state})"),
        Body::Owner { comm, cgroup } => format!(
            "used by {comm} (pid {}){}",
            e.pid.map_or("?".into(), |p| p.to_string()),
            cgroup.as_ref().map_or(String::new(), |c| format!(" in cgroup {c}"))
        ),
    };
    let conn = format!("{} > {}", endpoint(&e.saddr, e.sport), endpoint(&e.daddr, e.dport));
    format!("{} {:<17} {:<47} {:<16} {}", clock(e.ts_ns), e.body.kind(), conn, who, detail)
}

fn endpoint(addr: &std::net::IpAddr, port: u16) -> String {
    match addr {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl Consumer for Terminal {
    fn event(&mut self, event: &Event, key: ConnKey, state: &State<'_>) -> Result<()> {
        if !self.show.events {
            return Ok(());
        }
        // The process as the table knows it, so that every line of a connection names it.
        let name = state.table.get(&key).and_then(|c| c.comm.as_deref());
        let text = self.paint(style_of(event), &line(event, name));
        Ok(writeln!(self.out, "{text}")?)
    }

    fn lost(&mut self, _ts_ns: u64, new: u64, total: u64) -> Result<()> {
        let text = format!(
            "!! {new} events lost: the ring buffer was full ({total} since start); \
             narrow the filter (--port/--pid) or raise --window-shift"
        );
        Ok(writeln!(self.out, "{}", self.paint(Style::Bad, &text))?)
    }

    fn alert(&mut self, alert: &Alert, _id: &AlertId, _state: &State<'_>) -> Result<()> {
        let style = match (alert.kind, alert.severity) {
            (AlertKind::AlertResolved, _) => Style::Good,
            (_, Severity::Critical) => Style::Critical,
            (_, Severity::Warning) => Style::Notice,
        };
        let text = format!("{} {}", clock(alert.ts_ns), alert.line());
        Ok(writeln!(self.out, "{}", self.paint(style, &text))?)
    }

    fn finish(&mut self, _state: &State<'_>, _now_ns: u64, rows: &[ConnSummary]) -> Result<()> {
        if !self.show.summary {
            return Ok(());
        }
        if rows.is_empty() {
            writeln!(self.out, "\nno connection matched")?;
            return Ok(());
        }
        writeln!(self.out, "\nflow-control summary, worst first:")?;
        writeln!(self.out, "{}", ConnSummary::header())?;
        for row in rows {
            writeln!(self.out, "{}", row.line())?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}
