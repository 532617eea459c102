//! Human units for everything the agent prints: sizes in the binary units `ss` prints,
//! durations, rates, wall-clock times, endpoints and "which process" phrases.

use std::net::IpAddr;

use time::{OffsetDateTime, UtcOffset};

use crate::host::clock::local_offset_at;

/// `n` bytes in the largest binary unit it reaches: (value in that unit, unit name). One ladder
/// for every byte formatter below.
fn scaled(n: u64) -> (f64, &'static str) {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    (value, UNITS[unit])
}

/// Bytes in sentences and tables: "512 B", "4.0 KiB", "1.5 MiB", "2.0 GiB".
pub fn bytes(n: u64) -> String {
    match scaled(n) {
        (_, "B") => format!("{n} B"),
        (value, unit) => format!("{value:.1} {unit}"),
    }
}

/// Bytes in narrow terminal columns, as `ss` prints them: "512B", "4.0KiB", "1.5MiB".
pub fn bytes_tight(n: u64) -> String {
    match scaled(n) {
        (_, "B") => format!("{n}B"),
        (value, unit) => format!("{value:.1}{unit}"),
    }
}

/// Bytes on a chart's axis, whole where the tick is: "0", "512 B", "4 KiB", "1.5 MiB".
pub fn bytes_tick(n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let (value, unit) = scaled(n);
    if (value - value.round()).abs() < 0.05 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// A duration given in milliseconds: "250 ms", "3.1 s", "4.5 min".
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}

/// A duration in (fractional) milliseconds for terminal lines: "250ms", "3.10s".
pub fn duration_tight(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.0}ms")
    }
}

/// A throughput in bytes per second, with the bit rate people compare against links.
pub fn rate(bytes_per_s: f64) -> String {
    let mbit = bytes_per_s * 8.0 / 1e6;
    format!("{}/s ({mbit:.1} Mbit/s)", bytes(bytes_per_s.max(0.0) as u64))
}

/// "addr:port", with IPv6 addresses in brackets.
pub fn endpoint(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The process in a sentence: "python3 (pid 42)", "pid 42", "python3" or "an unknown process".
pub fn who(comm: Option<&str>, pid: Option<u32>) -> String {
    match (comm.filter(|c| !c.is_empty()), pid) {
        (Some(c), Some(p)) => format!("{c} (pid {p})"),
        (None, Some(p)) => format!("pid {p}"),
        (Some(c), None) => c.to_string(),
        (None, None) => "an unknown process".to_string(),
    }
}

/// The process in a table column: "python3/42", "pid 42", "-".
pub fn who_short(comm: Option<&str>, pid: Option<u32>) -> String {
    match (comm.filter(|c| !c.is_empty()), pid) {
        (Some(c), Some(p)) => format!("{c}/{p}"),
        (None, Some(p)) => format!("pid {p}"),
        (Some(c), None) => format!("{c}/?"),
        (None, None) => "-".to_string(),
    }
}

/// Local wall-clock time of day with microseconds, "21:34:23.019111", for ns since the epoch.
/// When the local offset cannot be known it is UTC, marked "Z".
pub fn clock(ts_ns: u64) -> String {
    let utc = at(ts_ns);
    let (local, zone) = match local_offset_at(utc) {
        Some(offset) => (utc.to_offset(offset), ""),
        None => (utc, "Z"),
    };
    let (h, m, s) = local.to_hms();
    format!("{h:02}:{m:02}:{s:02}.{:06}{zone}", local.microsecond())
}

/// Nanoseconds since the epoch as "2026-11-21 21:34:24.991 UTC": the same text wherever it is
/// shown (no local time zone).
pub fn utc(ns: u64) -> String {
    let t = at(ns);
    let (h, m, s) = t.to_hms();
    format!(
        "{:04}-{:02}-{:02} {h:02}:{m:02}:{s:02}.{:03} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.millisecond()
    )
}

/// The instant `ns` after the epoch, in UTC (a u64 of ns stays within the `time` crate's range).
fn at(ns: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(UtcOffset::UTC)
}

/// Nanoseconds to whole milliseconds.
pub fn ns_to_ms(ns: u64) -> u64 {
    ns / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(bytes_tight(512), "512B");
        assert_eq!(bytes_tight(1536), "1.5KiB");
        assert_eq!(bytes_tick(0), "0");
        assert_eq!(bytes_tick(512), "512 B");
        assert_eq!(bytes_tick(4096), "4 KiB");
        assert_eq!(bytes_tick(1536), "1.5 KiB");
        assert_eq!(bytes_tick(3 << 20), "3 MiB");
        assert_eq!(duration_tight(250.4), "250ms");
        assert_eq!(duration_tight(3100.0), "3.10s");
        assert_eq!(duration_ms(250), "250 ms");
        assert_eq!(duration_ms(3100), "3.1 s");
        assert_eq!(duration_ms(300_000), "5.0 min");
        assert_eq!(endpoint(&"::1".parse().unwrap(), 80), "[::1]:80");
        assert_eq!(who(Some("python3"), Some(42)), "python3 (pid 42)");
        assert_eq!(who(Some(""), None), "an unknown process");
        assert_eq!(who_short(Some("nc"), Some(7)), "nc/7");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29 00:00:00.123 UTC");
        assert_eq!(utc(1_795_296_863_019_111_593), "2026-11-21 21:34:23.019 UTC");
        assert_eq!(utc(u64::MAX), "2554-07-21 23:34:33.709 UTC");
    }

    #[test]
    fn clock_is_a_time_of_day() {
        // Hours and minutes depend on this host's time zone; the shape and the fraction do not.
        let text = clock(1_795_296_863_019_111_593);
        let b = text.as_bytes();
        assert!(text.len() == 15 || text.ends_with('Z'), "{text}");
        assert_eq!((b[2], b[5], b[8]), (b':', b':', b'.'), "{text}");
        assert_eq!(&text[6..15], "23.019111", "{text}");
    }
}
