//! An event as one NDJSON object: the same bytes serde_json writes for model.rs's serde form
//! (field names and order, nulls, the "0x" socket address), without serde's per-field work, map
//! keys escaped at run time, or a String per socket address. `watch --json`, `replay --json`
//! and recordings write events through it; a property test holds it to serde_json's output.
//!
//! An event is written into room prepared for it (`Lines` keeps that room past its end), not
//! into a growing `Vec` a field at a time: each piece then costs one comparison, where a `Vec`
//! reloads and stores its length and tests its capacity. A line that does not fit is written
//! again into more room. (The pipeline bench's CPU per event fell by about a tenth with it.)

use std::{io, net::IpAddr};

use super::model::{Body, Event, LocalState, SenderState, Side, WindowChoice};

/// Room kept free for the next event: every line of fixed-width fields fits (the longest,
/// a window event with every optional part, is about 1.2 KiB); long names make more.
const LINE_ROOM: usize = 4096;

/// NDJSON lines gathered for a writer. The bytes past the lines are kept (zeroed once, when the
/// buffer grows), so that the next event has room to be written into at once.
#[derive(Default)]
pub struct Lines {
    bytes: Vec<u8>,
    len: usize,
}

impl Lines {
    pub fn with_capacity(capacity: usize) -> Self {
        Lines { bytes: vec![0; capacity + LINE_ROOM], len: 0 }
    }

    /// Appends `e` as one JSON object and a newline.
    pub fn event(&mut self, e: &Event) {
        loop {
            if let Some(len) = self.bytes.get_mut(self.len..).and_then(|room| line(room, e)) {
                self.len += len;
                return;
            }
            // Rare: a name longer than the room left. Twice the room, and write it again.
            self.make_room(2 * (self.bytes.len() - self.len).max(LINE_ROOM));
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    fn make_room(&mut self, room: usize) {
        if self.bytes.len() - self.len < room {
            self.bytes.resize(self.len + room, 0);
        }
    }
}

/// Other lines (alerts, summaries) are written by serde_json through this.
impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.make_room(bytes.len() + LINE_ROOM);
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `e` and a newline at the start of `room`: their length, or None when they do not fit.
/// Not inlined into the retry loop, which would have the compiler work out every field before
/// it (once for all tries) and keep them all on the stack.
#[inline(never)]
fn line(room: &mut [u8], e: &Event) -> Option<usize> {
    let room_len = room.len();
    let mut line = Line(room);
    write(&mut line, e);
    line.put(b"\n");
    (!line.is_full()).then(|| room_len - line.0.len())
}

/// Appends `e` as one JSON object (no newline) to `out`.
#[cfg(test)]
pub fn write_event(out: &mut Vec<u8>, e: &Event) {
    let mut lines = Lines::default();
    lines.event(e);
    out.extend_from_slice(lines.as_bytes().strip_suffix(b"\n").unwrap_or_default());
}

/// The room left in a line being written. The writing functions are inlined where it is a local
/// (its start and length stay in registers), except `body`, which takes it and hands it back by
/// value: nothing passes its address, which would keep it in memory. A piece that does not fit
/// empties it: a line that ends with no room left is written again into more (even one that
/// fitted exactly, which is rare and harmless).
struct Line<'a>(&'a mut [u8]);

impl<'a> Line<'a> {
    /// Appends `bytes` (a constant length once inlined: moves, not a call to memcpy).
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.put_cut(bytes, bytes.len());
    }

    /// Writes all of `bytes` and keeps the first `keep`: copying a whole small array and
    /// cutting back costs less than a copy of a length known only at run time.
    #[inline(always)]
    fn put_cut(&mut self, bytes: &[u8], keep: usize) {
        let rest = std::mem::take(&mut self.0);
        if rest.len() >= bytes.len() && keep <= bytes.len() {
            rest[..bytes.len()].copy_from_slice(bytes);
            self.0 = &mut rest[keep..];
        }
    }

    /// The next `len` bytes of room, taken: the caller fills them all.
    #[inline(always)]
    fn take(&mut self, len: usize) -> Option<&'a mut [u8]> {
        let rest = std::mem::take(&mut self.0);
        if rest.len() < len {
            return None;
        }
        let (taken, rest) = rest.split_at_mut(len);
        self.0 = rest;
        Some(taken)
    }

    /// Lets serde_json or `write!` write into the room (escaped strings, floats, IPv6 addresses).
    #[inline(always)]
    fn through_io(&mut self, write: impl FnOnce(&mut &mut [u8]) -> io::Result<()>) {
        let mut rest = std::mem::take(&mut self.0);
        if write(&mut rest).is_ok() {
            self.0 = rest;
        }
    }

    fn is_full(&self) -> bool {
        self.0.is_empty()
    }
}

/// `,"name":`, one constant per key (names are ours: nothing to escape).
macro_rules! key {
    ($w:expr, $name:literal) => {
        $w.put(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// `,"name":value` for an unsigned integer.
macro_rules! field {
    ($w:expr, $name:literal, $value:expr) => {{
        key!($w, $name);
        uint($w, $value);
    }};
}

#[inline(always)]
fn write(w: &mut Line<'_>, e: &Event) {
    w.put(b"{\"ts_ns\":");
    uint(w, e.ts_ns);
    kind(w, &e.body);
    *w = body(Line(std::mem::take(&mut w.0)), &e.body);
    w.put(b",\"saddr\":");
    addr(w, &e.saddr);
    w.put(b",\"sport\":");
    uint(w, e.sport);
    w.put(b",\"daddr\":");
    addr(w, &e.daddr);
    w.put(b",\"dport\":");
    uint(w, e.dport);
    w.put(b",\"pid\":");
    opt_uint(w, e.pid);
    w.put(b",\"sk\":\"0x");
    hex(w, e.sk);
    w.put(b"\",\"hook\":");
    string(w, &e.hook);
    w.put(b"}");
}

/// `,"kind":"name"`, one constant per kind.
#[inline(always)]
fn kind(w: &mut Line<'_>, body: &Body) {
    // Each arm appends its own constant: a length chosen at run time would be a memcpy call.
    macro_rules! kind {
        ($name:literal) => {
            w.put(concat!(",\"kind\":\"", $name, "\"").as_bytes())
        };
    }
    match body {
        Body::Window { .. } => kind!("window"),
        Body::ZeroWindowStart { .. } => kind!("zero_window_start"),
        Body::ZeroWindowEnd { .. } => kind!("zero_window_end"),
        Body::Inflight { .. } => kind!("inflight"),
        Body::Probe { .. } => kind!("probe"),
        Body::RcvSpace { .. } => kind!("rcv_space"),
        Body::Read { .. } => kind!("read"),
        Body::Drop { .. } => kind!("drop"),
        Body::Open { .. } => kind!("open"),
        Body::Close { .. } => kind!("close"),
        Body::Owner { .. } => kind!("owner"),
    }
}

/// The body's fields after "kind", each with its leading comma. Not inlined (it is most of the
/// code), so the room goes in and comes back by value.
#[inline(never)]
fn body<'a>(mut w: Line<'a>, b: &Body) -> Line<'a> {
    body_fields(&mut w, b);
    w
}

#[inline(always)]
fn body_fields(w: &mut Line<'_>, body: &Body) {
    match body {
        Body::Window { side: s, window, raw_window, wscale, local: l, sender: snd } => {
            side(w, *s);
            field!(w, "window", *window);
            field!(w, "raw_window", *raw_window);
            field!(w, "wscale", *wscale);
            if let Some(l) = l {
                local(w, l);
            }
            if let Some(snd) = snd {
                sender(w, snd);
            }
        }
        Body::ZeroWindowStart { side: s, counted, local: l, sender: snd } => {
            side(w, *s);
            key!(w, "counted");
            boolean(w, *counted);
            if let Some(l) = l {
                local(w, l);
            }
            if let Some(snd) = snd {
                sender(w, snd);
            }
        }
        Body::ZeroWindowEnd { side: s, window, duration_ns } => {
            side(w, *s);
            field!(w, "window", *window);
            key!(w, "duration_ns");
            opt_uint(w, *duration_ns);
        }
        Body::Inflight { window, sender: snd } => {
            field!(w, "window", *window);
            sender(w, snd);
        }
        Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, unacked } => {
            field!(w, "probes_out", *probes_out);
            field!(w, "backoff", *backoff);
            key!(w, "rto_ms");
            opt_float(w, *rto_ms);
            key!(w, "next_probe_ms");
            opt_float(w, *next_probe_ms);
            field!(w, "snd_wnd", *snd_wnd);
            field!(w, "unacked", *unacked);
        }
        Body::RcvSpace {
            space,
            rcvbuf,
            window_clamp,
            rcv_ssthresh,
            rmem_alloc,
            rcvbuf_locked,
            comm,
        } => {
            field!(w, "space", *space);
            field!(w, "rcvbuf", *rcvbuf);
            field!(w, "window_clamp", *window_clamp);
            field!(w, "rcv_ssthresh", *rcv_ssthresh);
            field!(w, "rmem_alloc", *rmem_alloc);
            key!(w, "rcvbuf_locked");
            boolean(w, *rcvbuf_locked);
            key!(w, "comm");
            string(w, comm);
        }
        Body::Read { bytes, reads, interval_ns, rate, comm, cgroup, rcv_rtt_us, rcv_wnd } => {
            field!(w, "bytes", *bytes);
            field!(w, "reads", *reads);
            field!(w, "interval_ns", *interval_ns);
            key!(w, "rate");
            float(w, *rate);
            key!(w, "comm");
            string(w, comm);
            key!(w, "cgroup");
            opt_string(w, cgroup.as_deref());
            if let Some(rtt) = rcv_rtt_us {
                field!(w, "rcv_rtt_us", *rtt);
            }
            if let Some(window) = rcv_wnd {
                field!(w, "rcv_wnd", *window);
            }
        }
        Body::Drop { reason, bytes } => {
            key!(w, "reason");
            string(w, reason);
            field!(w, "bytes", *bytes);
        }
        Body::Open { active, snd_wscale, rcv_wscale, wscale_ok, advmss, rcvbuf, comm, late } => {
            key!(w, "active");
            boolean(w, *active);
            field!(w, "snd_wscale", *snd_wscale);
            field!(w, "rcv_wscale", *rcv_wscale);
            key!(w, "wscale_ok");
            boolean(w, *wscale_ok);
            field!(w, "advmss", *advmss);
            field!(w, "rcvbuf", *rcvbuf);
            key!(w, "comm");
            opt_string(w, comm.as_deref());
            // Left out when false, as serde's skip_serializing_if does.
            if *late {
                key!(w, "late");
                boolean(w, true);
            }
        }
        Body::Close { from_state, comm } => {
            key!(w, "from_state");
            string(w, from_state);
            key!(w, "comm");
            opt_string(w, comm.as_deref());
        }
        Body::Owner { comm, cgroup } => {
            key!(w, "comm");
            string(w, comm);
            key!(w, "cgroup");
            opt_string(w, cgroup.as_deref());
        }
    }
}

#[inline(always)]
fn local(w: &mut Line<'_>, l: &LocalState) {
    field!(w, "rcv_wnd", l.rcv_wnd);
    field!(w, "unread", l.unread);
    field!(w, "rcvbuf", l.rcvbuf);
    field!(w, "rmem_alloc", l.rmem_alloc);
    field!(w, "rcv_ssthresh", l.rcv_ssthresh);
    field!(w, "window_clamp", l.window_clamp);
    if let Some(c) = &l.choice {
        choice(w, c);
    }
}

#[inline(always)]
fn choice(w: &mut Line<'_>, c: &WindowChoice) {
    key!(w, "limited_by");
    string(w, c.limited_by.as_str());
    field!(w, "wanted", c.wanted);
    key!(w, "wanted_exact");
    boolean(w, c.wanted_exact);
    field!(w, "rcv_mss", c.rcv_mss);
    field!(w, "advmss", c.advmss);
    field!(w, "backlog", c.backlog);
    key!(w, "rcvbuf_locked");
    boolean(w, c.rcvbuf_locked);
    key!(w, "memory_pressure");
    boolean(w, c.memory_pressure);
    key!(w, "rmem_max");
    opt_uint(w, c.rmem_max);
    if let Some(ratio) = c.scaling_ratio {
        field!(w, "scaling_ratio", ratio);
    }
}

#[inline(always)]
fn sender(w: &mut Line<'_>, s: &SenderState) {
    field!(w, "in_flight", s.in_flight);
    field!(w, "unsent", s.unsent);
    field!(w, "mss", s.mss);
    field!(w, "srtt_us", s.srtt_us);
    field!(w, "rwnd_limited_ms", s.rwnd_limited_ms);
    field!(w, "busy_ms", s.busy_ms);
    if let Some(l) = &s.limits {
        field!(w, "sndbuf_limited_ms", l.sndbuf_limited_ms);
        field!(w, "sndbuf", l.sndbuf);
        key!(w, "sndbuf_locked");
        boolean(w, l.sndbuf_locked);
        field!(w, "cwnd", l.cwnd);
        field!(w, "bytes_acked", l.bytes_acked);
        key!(w, "buffer_waiting");
        boolean(w, l.buffer_waiting);
        field!(w, "buffer_wait_ms", l.buffer_wait_ms);
    }
    if let Some(g) = &s.segments {
        field!(w, "bytes_sent", g.bytes_sent);
        field!(w, "data_segs_out", g.data_segs_out);
        field!(w, "max_window", g.max_window);
        field!(w, "peer_mss", g.peer_mss);
    }
}

#[inline(always)]
fn side(w: &mut Line<'_>, side: Side) {
    match side {
        Side::Local => w.put(b",\"side\":\"local\""),
        Side::Peer => w.put(b",\"side\":\"peer\""),
    }
}

/// An unsigned integer's decimal digits, written straight into the line.
#[inline(always)]
fn uint(w: &mut Line<'_>, value: impl Into<u64>) {
    let mut v = value.into();
    let len = digit_count(v);
    let Some(to) = w.take(len) else { return };
    // From the last digit back: four a division while there are more (a division by 10,000
    // costs what one by 100 does), then two, then the first one or two (the count is exact).
    let mut end = len;
    while v >= 10_000 {
        let four = (v % 10_000) as usize;
        v /= 10_000;
        let (high, low) = (four / 100 * 2, four % 100 * 2);
        if let Some(digits) = to.get_mut(end - 4..end) {
            digits[..2].copy_from_slice(&PAIRS[high..high + 2]);
            digits[2..].copy_from_slice(&PAIRS[low..low + 2]);
        }
        end -= 4;
    }
    if v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        if let Some(digits) = to.get_mut(end - 2..end) {
            digits.copy_from_slice(&PAIRS[pair..pair + 2]);
        }
    }
    if v >= 10 {
        let pair = v as usize * 2;
        if let Some(digits) = to.get_mut(..2) {
            digits.copy_from_slice(&PAIRS[pair..pair + 2]);
        }
    } else if let Some(digit) = to.first_mut() {
        *digit = b'0' + v as u8;
    }
}

/// How many decimal digits `v` has: estimated from its bit length (1233/4096 is just above
/// log10(2)), then corrected by one comparison. `ilog10` costs a call here.
#[inline(always)]
fn digit_count(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    let estimate = (bits * 1233) >> 12;
    estimate + usize::from((v | 1) >= POWERS_OF_TEN[estimate])
}

/// 10^0 to 10^19: every power of ten a u64 holds.
const POWERS_OF_TEN: [u64; 20] = {
    let mut powers = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// "00" to "99": two digits at a time.
const PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Each byte's decimal digits, left-aligned, and their count last: an IPv4 address's octets.
const OCTETS: [[u8; 4]; 256] = {
    let mut octets = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (hundreds, tens, ones) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        octets[i] = match i {
            0..=9 => [b'0' + ones, 0, 0, 1],
            10..=99 => [b'0' + tens, b'0' + ones, 0, 2],
            _ => [b'0' + hundreds, b'0' + tens, b'0' + ones, 3],
        };
        i += 1;
    }
    octets
};

#[inline(always)]
fn opt_uint(w: &mut Line<'_>, value: Option<impl Into<u64>>) {
    match value {
        Some(v) => uint(w, v),
        None => w.put(b"null"),
    }
}

#[inline(always)]
fn boolean(w: &mut Line<'_>, value: bool) {
    if value {
        w.put(b"true");
    } else {
        w.put(b"false");
    }
}

/// Floats exactly as serde_json writes them (shortest round-trip form; null when not finite).
#[inline(always)]
fn float(w: &mut Line<'_>, value: f64) {
    w.through_io(|room| serde_json::to_writer(room, &value).map_err(io::Error::from));
}

#[inline(always)]
fn opt_float(w: &mut Line<'_>, value: Option<f64>) {
    match value {
        Some(v) => float(w, v),
        None => w.put(b"null"),
    }
}

/// A JSON string. Names from the kernel almost never need escaping: those are copied as they
/// are, the rest escaped by serde_json.
#[inline(always)]
fn string(w: &mut Line<'_>, s: &str) {
    // Every byte tested, none skipped after a bad one: the compiler then tests 16 at a time.
    if s.bytes().fold(true, |plain, b| plain & (b >= 0x20) & (b != b'"') & (b != b'\\')) {
        w.put(b"\"");
        w.put(s.as_bytes());
        w.put(b"\"");
    } else {
        w.through_io(|room| serde_json::to_writer(room, s).map_err(io::Error::from));
    }
}

#[inline(always)]
fn opt_string(w: &mut Line<'_>, s: Option<&str>) {
    match s {
        Some(s) => string(w, s),
        None => w.put(b"null"),
    }
}

#[inline(always)]
fn addr(w: &mut Line<'_>, a: &IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            // "255.255.255.255" with its quotes is 17 bytes: built here, written at once.
            let mut text = [0u8; 20];
            text[0] = b'"';
            let mut len = 1;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let [a, b, c, n] = OCTETS[usize::from(octet)];
                text[len..len + 3].copy_from_slice(&[a, b, c]);
                len += usize::from(n);
            }
            text[len] = b'"';
            w.put_cut(&text, len + 1);
        }
        IpAddr::V6(v6) => {
            w.through_io(|room| io::Write::write_fmt(room, format_args!("\"{v6}\"")));
        }
    }
}

/// Lowercase hexadecimal digits without leading zeros ("0" for 0), as `{:x}` writes them: all
/// 16 written a byte (two digits) at a time, those after the leading zeros kept.
#[inline(always)]
fn hex(w: &mut Line<'_>, value: u64) {
    let len = (value.max(1).ilog2() / 4 + 1) as usize;
    let mut text = [0u8; 32];
    for (i, byte) in value.to_be_bytes().into_iter().enumerate() {
        text[2 * i..2 * i + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    // The 16 bytes from the first digit shown (those after the digits are cut off again).
    if let Some(from) = text.get(16 - len..32 - len) {
        w.put_cut(from, len);
    }
}

/// Each byte as two lowercase hexadecimal digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    pairs
};

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::events::model::{Limit, SendLimits, SentSegments};

    fn name() -> impl Strategy<Value = String> {
        // Mostly plain names, sometimes ones that need escaping or are not ASCII.
        prop_oneof![
            "[a-z0-9_./-]{0,15}",
            any::<String>(),
            Just("a\"b\\c\n\u{1}\u{7f}é".to_string()),
        ]
    }

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Local), Just(Side::Peer)]
    }

    fn choice() -> impl Strategy<Value = Option<WindowChoice>> {
        let limit = proptest::sample::select(Limit::ALL.to_vec());
        let flags = any::<[bool; 3]>();
        let numbers = (any::<[u32; 4]>(), any::<Option<u32>>(), any::<Option<u8>>());
        proptest::option::of((limit, flags, numbers).prop_map(
            |(limited_by, f, (v, rmem_max, scaling_ratio))| WindowChoice {
                limited_by,
                wanted: v[0],
                wanted_exact: f[0],
                rcv_mss: v[1],
                advmss: v[2],
                backlog: v[3],
                rcvbuf_locked: f[1],
                memory_pressure: f[2],
                rmem_max,
                scaling_ratio,
            },
        ))
    }

    fn local() -> impl Strategy<Value = Option<LocalState>> {
        proptest::option::of((any::<[u32; 6]>(), choice()).prop_map(|(v, choice)| LocalState {
            rcv_wnd: v[0],
            unread: v[1],
            rcvbuf: v[2],
            rmem_alloc: v[3],
            rcv_ssthresh: v[4],
            window_clamp: v[5],
            choice,
        }))
    }

    fn sender() -> impl Strategy<Value = SenderState> {
        let segments =
            proptest::option::of((any::<u64>(), any::<[u32; 3]>()).prop_map(|(bytes_sent, n)| {
                SentSegments { bytes_sent, data_segs_out: n[0], max_window: n[1], peer_mss: n[2] }
            }));
        let limits =
            proptest::option::of((any::<[u32; 3]>(), any::<[u64; 2]>(), any::<[bool; 2]>()));
        (any::<[u32; 4]>(), any::<[u64; 2]>(), limits, segments).prop_map(
            |(v, l, limits, segments)| SenderState {
                in_flight: v[0],
                unsent: v[1],
                mss: v[2],
                srtt_us: v[3],
                rwnd_limited_ms: l[0],
                busy_ms: l[1],
                limits: limits.map(|(n, m, locked)| SendLimits {
                    sndbuf_limited_ms: m[0],
                    sndbuf: n[0],
                    sndbuf_locked: locked[0],
                    cwnd: n[1],
                    bytes_acked: m[1],
                    buffer_waiting: locked[1],
                    buffer_wait_ms: n[2],
                }),
                segments,
            },
        )
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![any::<f64>(), Just(208.0), Just(0.1), Just(f64::NAN), Just(1e300)]
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (
                side(),
                any::<u32>(),
                any::<u16>(),
                any::<u8>(),
                local(),
                proptest::option::of(sender())
            )
                .prop_map(|(side, window, raw_window, wscale, local, sender)| {
                    Body::Window { side, window, raw_window, wscale, local, sender }
                }),
            (side(), any::<bool>(), local(), proptest::option::of(sender())).prop_map(
                |(side, counted, local, sender)| Body::ZeroWindowStart {
                    side,
                    counted,
                    local,
                    sender
                }
            ),
            (side(), any::<u32>(), any::<Option<u64>>()).prop_map(|(side, window, duration_ns)| {
                Body::ZeroWindowEnd { side, window, duration_ns }
            }),
            (any::<u32>(), sender()).prop_map(|(window, sender)| Body::Inflight { window, sender }),
            (
                any::<[u8; 2]>(),
                proptest::option::of(float()),
                proptest::option::of(float()),
                any::<[u32; 2]>()
            )
                .prop_map(|(p, rto_ms, next_probe_ms, w)| Body::Probe {
                    probes_out: p[0],
                    backoff: p[1],
                    rto_ms,
                    next_probe_ms,
                    snd_wnd: w[0],
                    unacked: w[1],
                }),
            (any::<[u32; 5]>(), any::<bool>(), name()).prop_map(|(v, rcvbuf_locked, comm)| {
                Body::RcvSpace {
                    space: v[0],
                    rcvbuf: v[1],
                    window_clamp: v[2],
                    rcv_ssthresh: v[3],
                    rmem_alloc: v[4],
                    rcvbuf_locked,
                    comm: comm.into(),
                }
            }),
            (
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                float(),
                name(),
                proptest::option::of(name()),
                any::<[Option<u32>; 2]>(),
            )
                .prop_map(
                    |(bytes, reads, interval_ns, rate, comm, cgroup, rtt_wnd)| {
                        Body::Read {
                            bytes,
                            reads,
                            interval_ns,
                            rate,
                            comm: comm.into(),
                            cgroup: cgroup.map(Into::into),
                            rcv_rtt_us: rtt_wnd[0],
                            rcv_wnd: rtt_wnd[1],
                        }
                    }
                ),
            (name(), any::<u32>())
                .prop_map(|(reason, bytes)| Body::Drop { reason: reason.into(), bytes }),
            (any::<[bool; 3]>(), any::<[u8; 2]>(), any::<[u32; 2]>(), proptest::option::of(name()))
                .prop_map(|(b, w, v, comm)| Body::Open {
                    active: b[0],
                    snd_wscale: w[0],
                    rcv_wscale: w[1],
                    wscale_ok: b[1],
                    advmss: v[0],
                    rcvbuf: v[1],
                    comm: comm.map(Into::into),
                    late: b[2],
                }),
            (name(), proptest::option::of(name())).prop_map(|(from_state, comm)| Body::Close {
                from_state: from_state.into(),
                comm: comm.map(Into::into)
            }),
            (name(), proptest::option::of(name())).prop_map(|(comm, cgroup)| Body::Owner {
                comm: comm.into(),
                cgroup: cgroup.map(Into::into)
            }),
        ]
    }

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (any::<u64>(), body(), addr(), any::<u16>(), addr(), any::<u16>(), any::<Option<u32>>())
            .prop_flat_map(|(ts_ns, body, saddr, sport, daddr, dport, pid)| {
                (any::<u64>(), name()).prop_map(move |(sk, hook)| Event {
                    ts_ns,
                    body: body.clone(),
                    saddr,
                    sport,
                    daddr,
                    dport,
                    pid,
                    sk,
                    hook: hook.into(),
                })
            })
    }

    /// What `write` puts into a line with room enough.
    fn written(write: impl FnOnce(&mut Line<'_>)) -> String {
        let mut room = [0u8; 64];
        let mut line = Line(&mut room);
        write(&mut line);
        assert!(!line.is_full());
        let len = 64 - line.0.len();
        String::from_utf8(room[..len].to_vec()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn writes_what_serde_json_writes(e in event()) {
            let mut ours = Vec::new();
            write_event(&mut ours, &e);
            let serde = serde_json::to_vec(&e).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
        }
    }

    #[test]
    fn integers_at_every_width() {
        let mut values = vec![0, u64::MAX];
        for p in 0..20 {
            let ten = 10u64.pow(p);
            values.extend([ten - 1, ten, ten + 1]);
        }
        for v in values {
            assert_eq!(written(|w| uint(w, v)), v.to_string());
            assert_eq!(written(|w| hex(w, v)), format!("{v:x}"));
        }
        for a in [[0, 0, 0, 0], [255, 255, 255, 255], [10, 0, 99, 100], [1, 22, 3, 44]] {
            let a = IpAddr::from(a);
            assert_eq!(written(|w| super::addr(w, &a)), format!("\"{a}\""));
        }
    }

    #[test]
    fn lines_longer_than_the_room_are_written_again_into_more() {
        // A cgroup path far past the room kept, with characters to escape; then short lines,
        // one of which lands on whatever room the long one left.
        let long = format!("/sys/fs/cgroup/{}\"end\"", "kubepods/pod-1234/".repeat(600));
        let owner = |cgroup: Option<String>| Body::Owner {
            comm: "nginx".into(),
            cgroup: cgroup.map(Into::into),
        };
        let events: Vec<Event> = [Some(long), None, Some("/a\nb".to_string()), None]
            .into_iter()
            .enumerate()
            .map(|(i, cgroup)| crate::timeline::testutil::at(i as u64, 1, owner(cgroup)))
            .collect();
        let mut lines = Lines::with_capacity(0);
        let mut expected = Vec::new();
        for e in &events {
            lines.event(e);
            expected.extend(serde_json::to_vec(e).unwrap());
            expected.push(b'\n');
        }
        assert!(expected.len() > 2 * LINE_ROOM);
        assert_eq!(String::from_utf8_lossy(lines.as_bytes()), String::from_utf8_lossy(&expected));
    }

    #[test]
    fn socket_address_zero_and_ipv6() {
        let mut e = crate::timeline::testutil::at(1, 0, crate::timeline::testutil::close());
        e.saddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut ours = Vec::new();
        write_event(&mut ours, &e);
        assert_eq!(ours, serde_json::to_vec(&e).unwrap());
        assert!(String::from_utf8(ours).unwrap().contains(r#""saddr":"::1","#));
    }
}
