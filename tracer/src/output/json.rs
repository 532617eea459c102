//! NDJSON: one object per event. Every object has ts_ns, kind, saddr, sport, daddr, dport; the
//! rest depends on the kind. Field names are a contract: add, never rename.

use std::io::{BufWriter, Stdout, Write as _};

use serde_json::{json, Map, Value};

use super::Sink;
use crate::events::{Body, Event};

pub struct Json {
    out: BufWriter<Stdout>,
}

impl Json {
    pub fn new() -> Self {
        Json { out: BufWriter::new(std::io::stdout()) }
    }
}

pub fn to_value(e: &Event) -> Value {
    let mut o = Map::new();
    o.insert("ts_ns".into(), json!(e.ts_ns));
    o.insert("kind".into(), json!(e.body.kind()));
    o.insert("saddr".into(), json!(e.saddr.to_string()));
    o.insert("sport".into(), json!(e.sport));
    o.insert("daddr".into(), json!(e.daddr.to_string()));
    o.insert("dport".into(), json!(e.dport));
    o.insert("pid".into(), json!(e.pid));
    o.insert("sk".into(), json!(format!("{:#x}", e.sk)));
    o.insert("hook".into(), json!(e.hook));
    let fields = match &e.body {
        Body::Window {
            side,
            window,
            raw,
            wscale,
            rcv_wnd,
            unread,
            rcvbuf,
            rmem_alloc,
            rcv_ssthresh,
            window_clamp,
        } => json!({
            "side": side.as_str(), "window": window, "raw_window": raw, "wscale": wscale,
            "rcv_wnd": rcv_wnd, "unread": unread, "rcvbuf": rcvbuf, "rmem_alloc": rmem_alloc,
            "rcv_ssthresh": rcv_ssthresh, "window_clamp": window_clamp,
        }),
        Body::ZeroWindowStart { side, unread, rcvbuf, rmem_alloc } => json!({
            "side": side.as_str(), "unread": unread, "rcvbuf": rcvbuf, "rmem_alloc": rmem_alloc,
        }),
        Body::ZeroWindowEnd { side, window, duration_ns } => json!({
            "side": side.as_str(), "window": window, "duration_ns": duration_ns,
        }),
        Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, unacked } => json!({
            "probes_out": probes_out, "backoff": backoff, "rto_ms": rto_ms,
            "next_probe_ms": next_probe_ms, "snd_wnd": snd_wnd, "unacked": unacked,
        }),
        Body::RcvSpace { space, rcvbuf, window_clamp, rcv_ssthresh, rmem_alloc, locked, comm } => {
            json!({
                "space": space, "rcvbuf": rcvbuf, "window_clamp": window_clamp,
                "rcv_ssthresh": rcv_ssthresh, "rmem_alloc": rmem_alloc, "rcvbuf_locked": locked,
                "comm": comm,
            })
        }
        Body::Open { snd_wscale, rcv_wscale, advmss, rcvbuf, comm } => json!({
            "snd_wscale": snd_wscale, "rcv_wscale": rcv_wscale, "advmss": advmss,
            "rcvbuf": rcvbuf, "comm": comm_or_null(comm),
        }),
        Body::Close { from_state, comm } => json!({
            "from_state": from_state, "comm": comm_or_null(comm),
        }),
    };
    if let Value::Object(fields) = fields {
        o.extend(fields);
    }
    Value::Object(o)
}

fn comm_or_null(comm: &str) -> Value {
    if comm.is_empty() {
        Value::Null
    } else {
        json!(comm)
    }
}

impl Sink for Json {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        writeln!(self.out, "{}", to_value(event))
    }

    fn lost(&mut self, new: u64, total: u64) -> std::io::Result<()> {
        // Not a connection event: it goes to stderr, where the operator sees it beside the data.
        eprintln!("tracer: warning: {new} events lost (ring buffer full; {total} since start)");
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
