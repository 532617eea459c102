//! Human units shared by connection summaries and alert texts: sizes in the binary units `ss`
//! prints, durations, endpoints and "which process" phrases.

use std::net::IpAddr;

/// Bytes as "512 B", "4.0 KiB", "1.5 MiB", "2.0 GiB".
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else if f < KIB * KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else {
        format!("{:.1} GiB", f / (KIB * KIB * KIB))
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
        assert_eq!(duration_ms(250), "250 ms");
        assert_eq!(duration_ms(3100), "3.1 s");
        assert_eq!(duration_ms(300_000), "5.0 min");
        assert_eq!(endpoint(&"::1".parse().unwrap(), 80), "[::1]:80");
        assert_eq!(who(Some("python3"), Some(42)), "python3 (pid 42)");
        assert_eq!(who(Some(""), None), "an unknown process");
        assert_eq!(who_short(Some("nc"), Some(7)), "nc/7");
    }
}
