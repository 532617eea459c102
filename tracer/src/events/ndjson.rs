//! An event as one NDJSON object, written straight into a byte buffer: the same bytes
//! serde_json writes for model.rs's serde form (field names and order, nulls, the "0x" socket
//! address), without serde's per-field work, map keys escaped at run time, or a String per
//! socket address. `watch --json`, `replay --json` and recordings write events through it; a
//! property test holds it to serde_json's output.

use std::net::IpAddr;

use super::model::{Body, Event, LocalState, SenderState, Side, WindowChoice};

/// `,"name":`, one constant per key (names are ours: nothing to escape).
macro_rules! key {
    ($out:expr, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// `,"name":value` for an unsigned integer.
macro_rules! field {
    ($out:expr, $name:literal, $value:expr) => {{
        key!($out, $name);
        uint($out, $value);
    }};
}

/// Appends `e` as one JSON object (no newline) to `out`.
pub fn write_event(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(b"{\"ts_ns\":");
    uint(out, e.ts_ns);
    kind(out, &e.body);
    body(out, &e.body);
    out.extend_from_slice(b",\"saddr\":");
    addr(out, &e.saddr);
    out.extend_from_slice(b",\"sport\":");
    uint(out, e.sport);
    out.extend_from_slice(b",\"daddr\":");
    addr(out, &e.daddr);
    out.extend_from_slice(b",\"dport\":");
    uint(out, e.dport);
    out.extend_from_slice(b",\"pid\":");
    opt_uint(out, e.pid);
    out.extend_from_slice(b",\"sk\":\"0x");
    hex(out, e.sk);
    out.extend_from_slice(b"\",\"hook\":");
    string(out, &e.hook);
    out.push(b'}');
}

/// `,"kind":"name"`, one constant per kind: its length known, so no call to copy it.
#[inline(always)]
fn kind(out: &mut Vec<u8>, body: &Body) {
    // Each arm appends its own constant: a length chosen at run time would be a memcpy call.
    macro_rules! kind {
        ($name:literal) => {
            out.extend_from_slice(concat!(",\"kind\":\"", $name, "\"").as_bytes())
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

/// The body's fields after "kind", each with its leading comma.
fn body(out: &mut Vec<u8>, body: &Body) {
    match body {
        Body::Window { side: s, window, raw_window, wscale, local: l, sender: snd } => {
            side(out, *s);
            field!(out, "window", *window);
            field!(out, "raw_window", *raw_window);
            field!(out, "wscale", *wscale);
            if let Some(l) = l {
                local(out, l);
            }
            if let Some(snd) = snd {
                sender(out, snd);
            }
        }
        Body::ZeroWindowStart { side: s, counted, local: l, sender: snd } => {
            side(out, *s);
            key!(out, "counted");
            boolean(out, *counted);
            if let Some(l) = l {
                local(out, l);
            }
            if let Some(snd) = snd {
                sender(out, snd);
            }
        }
        Body::ZeroWindowEnd { side: s, window, duration_ns } => {
            side(out, *s);
            field!(out, "window", *window);
            key!(out, "duration_ns");
            opt_uint(out, *duration_ns);
        }
        Body::Inflight { window, sender: snd } => {
            field!(out, "window", *window);
            sender(out, snd);
        }
        Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, unacked } => {
            field!(out, "probes_out", *probes_out);
            field!(out, "backoff", *backoff);
            key!(out, "rto_ms");
            opt_float(out, *rto_ms);
            key!(out, "next_probe_ms");
            opt_float(out, *next_probe_ms);
            field!(out, "snd_wnd", *snd_wnd);
            field!(out, "unacked", *unacked);
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
            field!(out, "space", *space);
            field!(out, "rcvbuf", *rcvbuf);
            field!(out, "window_clamp", *window_clamp);
            field!(out, "rcv_ssthresh", *rcv_ssthresh);
            field!(out, "rmem_alloc", *rmem_alloc);
            key!(out, "rcvbuf_locked");
            boolean(out, *rcvbuf_locked);
            key!(out, "comm");
            string(out, comm);
        }
        Body::Read { bytes, reads, interval_ns, rate, comm, cgroup, rcv_rtt_us, rcv_wnd } => {
            field!(out, "bytes", *bytes);
            field!(out, "reads", *reads);
            field!(out, "interval_ns", *interval_ns);
            key!(out, "rate");
            float(out, *rate);
            key!(out, "comm");
            string(out, comm);
            key!(out, "cgroup");
            opt_string(out, cgroup.as_deref());
            if let Some(rtt) = rcv_rtt_us {
                field!(out, "rcv_rtt_us", *rtt);
            }
            if let Some(window) = rcv_wnd {
                field!(out, "rcv_wnd", *window);
            }
        }
        Body::Drop { reason, bytes } => {
            key!(out, "reason");
            string(out, reason);
            field!(out, "bytes", *bytes);
        }
        Body::Open { active, snd_wscale, rcv_wscale, wscale_ok, advmss, rcvbuf, comm, late } => {
            key!(out, "active");
            boolean(out, *active);
            field!(out, "snd_wscale", *snd_wscale);
            field!(out, "rcv_wscale", *rcv_wscale);
            key!(out, "wscale_ok");
            boolean(out, *wscale_ok);
            field!(out, "advmss", *advmss);
            field!(out, "rcvbuf", *rcvbuf);
            key!(out, "comm");
            opt_string(out, comm.as_deref());
            // Left out when false, as serde's skip_serializing_if does.
            if *late {
                key!(out, "late");
                boolean(out, true);
            }
        }
        Body::Close { from_state, comm } => {
            key!(out, "from_state");
            string(out, from_state);
            key!(out, "comm");
            opt_string(out, comm.as_deref());
        }
        Body::Owner { comm, cgroup } => {
            key!(out, "comm");
            string(out, comm);
            key!(out, "cgroup");
            opt_string(out, cgroup.as_deref());
        }
    }
}

#[inline(always)]
fn local(out: &mut Vec<u8>, l: &LocalState) {
    field!(out, "rcv_wnd", l.rcv_wnd);
    field!(out, "unread", l.unread);
    field!(out, "rcvbuf", l.rcvbuf);
    field!(out, "rmem_alloc", l.rmem_alloc);
    field!(out, "rcv_ssthresh", l.rcv_ssthresh);
    field!(out, "window_clamp", l.window_clamp);
    if let Some(c) = &l.choice {
        choice(out, c);
    }
}

#[inline(always)]
fn choice(out: &mut Vec<u8>, c: &WindowChoice) {
    key!(out, "limited_by");
    string(out, c.limited_by.as_str());
    field!(out, "wanted", c.wanted);
    key!(out, "wanted_exact");
    boolean(out, c.wanted_exact);
    field!(out, "rcv_mss", c.rcv_mss);
    field!(out, "advmss", c.advmss);
    field!(out, "backlog", c.backlog);
    key!(out, "rcvbuf_locked");
    boolean(out, c.rcvbuf_locked);
    key!(out, "memory_pressure");
    boolean(out, c.memory_pressure);
    key!(out, "rmem_max");
    opt_uint(out, c.rmem_max);
    if let Some(ratio) = c.scaling_ratio {
        field!(out, "scaling_ratio", ratio);
    }
}

#[inline(always)]
fn sender(out: &mut Vec<u8>, s: &SenderState) {
    field!(out, "in_flight", s.in_flight);
    field!(out, "unsent", s.unsent);
    field!(out, "mss", s.mss);
    field!(out, "srtt_us", s.srtt_us);
    field!(out, "rwnd_limited_ms", s.rwnd_limited_ms);
    field!(out, "busy_ms", s.busy_ms);
    if let Some(l) = &s.limits {
        field!(out, "sndbuf_limited_ms", l.sndbuf_limited_ms);
        field!(out, "sndbuf", l.sndbuf);
        key!(out, "sndbuf_locked");
        boolean(out, l.sndbuf_locked);
        field!(out, "cwnd", l.cwnd);
        field!(out, "bytes_acked", l.bytes_acked);
        key!(out, "buffer_waiting");
        boolean(out, l.buffer_waiting);
        field!(out, "buffer_wait_ms", l.buffer_wait_ms);
    }
    if let Some(g) = &s.segments {
        field!(out, "bytes_sent", g.bytes_sent);
        field!(out, "data_segs_out", g.data_segs_out);
        field!(out, "max_window", g.max_window);
        field!(out, "peer_mss", g.peer_mss);
    }
}

#[inline(always)]
fn side(out: &mut Vec<u8>, side: Side) {
    out.extend_from_slice(match side {
        Side::Local => b",\"side\":\"local\"",
        Side::Peer => b",\"side\":\"peer\"",
    });
}

#[inline(always)]
fn uint(out: &mut Vec<u8>, value: impl Into<u64>) {
    let (text, start) = decimal(value.into());
    // The digits end at byte 20: the 20 bytes from `start` hold them and what follows.
    let Some(from) = text.get(start..start + 20) else { return };
    let at = out.len();
    out.extend_from_slice(from);
    out.truncate(at + 20 - start);
}

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

/// The decimal digits of `v`, right-aligned to end at byte 20 of the array, and where they
/// start (written from the last digit back, so their count need not be known first).
#[inline(always)]
fn decimal(mut v: u64) -> ([u8; 40], usize) {
    let mut text = [b'0'; 40];
    let mut at = 20;
    // Four digits a division while there are more (a division by 10,000 costs what one by 100
    // does), then two, then the last one or two.
    while v >= 10_000 {
        let four = (v % 10_000) as usize;
        v /= 10_000;
        at -= 4;
        let (high, low) = (four / 100 * 2, four % 100 * 2);
        text[at..at + 2].copy_from_slice(&PAIRS[high..high + 2]);
        text[at + 2..at + 4].copy_from_slice(&PAIRS[low..low + 2]);
    }
    if v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        text[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        at -= 2;
        text[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        text[at] = b'0' + v as u8;
    }
    (text, at)
}

/// Appends the first `len` bytes of `bytes`: copying the whole small array (a few moves) and
/// cutting back costs less than a copy of a length known only at run time (a call to memcpy).
#[inline(always)]
fn append_prefix<const N: usize>(out: &mut Vec<u8>, bytes: &[u8; N], len: usize) {
    let at = out.len();
    out.extend_from_slice(bytes);
    out.truncate(at + len);
}

#[inline(always)]
fn opt_uint(out: &mut Vec<u8>, value: Option<impl Into<u64>>) {
    match value {
        Some(v) => uint(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

#[inline(always)]
fn boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// Floats exactly as serde_json writes them (shortest round-trip form; null when not finite).
fn float(out: &mut Vec<u8>, value: f64) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &value);
}

fn opt_float(out: &mut Vec<u8>, value: Option<f64>) {
    match value {
        Some(v) => float(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string. Names from the kernel almost never need escaping: those are copied as they
/// are, the rest escaped by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    // Every byte tested, none skipped after a bad one: the compiler then tests 16 at a time.
    if s.bytes().fold(true, |plain, b| plain & (b >= 0x20) & (b != b'"') & (b != b'\\')) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, s);
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn addr(out: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            // "255.255.255.255" with its quotes is 17 bytes: built here, appended at once.
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
            append_prefix(out, &text, len + 1);
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "\"{v6}\"");
        }
    }
}

/// Lowercase hexadecimal digits without leading zeros ("0" for 0), as `{:x}` writes them: all
/// 16 written a byte (two digits) at a time, those after the leading zeros appended.
fn hex(out: &mut Vec<u8>, value: u64) {
    let len = (value.max(1).ilog2() / 4 + 1) as usize;
    let mut text = [0u8; 32];
    for (i, byte) in value.to_be_bytes().into_iter().enumerate() {
        text[2 * i..2 * i + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    // The 16 bytes from the first digit shown (those after the digits are cut off again):
    // a copy of known length, not a call to memcpy.
    let Some(from) = text.get(16 - len..32 - len) else { return };
    let at = out.len();
    out.extend_from_slice(from);
    out.truncate(at + len);
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
            let mut ours = Vec::new();
            uint(&mut ours, v);
            assert_eq!(String::from_utf8(ours).unwrap(), v.to_string());
            let mut ours = Vec::new();
            hex(&mut ours, v);
            assert_eq!(String::from_utf8(ours).unwrap(), format!("{v:x}"));
        }
        for a in [[0, 0, 0, 0], [255, 255, 255, 255], [10, 0, 99, 100], [1, 22, 3, 44]] {
            let mut ours = Vec::new();
            super::addr(&mut ours, &IpAddr::from(a));
            assert_eq!(String::from_utf8(ours).unwrap(), format!("\"{}\"", IpAddr::from(a)));
        }
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
