//! Small reads from /proc (and the kernel config beside it): release, sysctls, process names,
//! the tick rate.

use std::{fs, io::Read as _, path::Path};

/// The running kernel's release, e.g. "6.18.0-1-amd64"; None if /proc is not readable.
pub fn os_release() -> Option<String> {
    Some(fs::read_to_string("/proc/sys/kernel/osrelease").ok()?.trim().to_string())
}

/// The current value of a numeric sysctl such as `net/ipv4/tcp_retries2`.
pub fn sysctl(name: &str) -> Option<u64> {
    fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?.trim().parse().ok()
}

/// The name of process `pid` (/proc/PID/comm), or None once it has exited.
pub fn comm(pid: u32) -> Option<String> {
    Some(fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_string())
}

/// The kernel's tick rate (CONFIG_HZ), for converting jiffies (icsk_rto) to time, from
/// /boot/config-RELEASE or /proc/config.gz. None when neither is readable.
pub fn config_hz() -> Option<u32> {
    let release = os_release()?;
    let text = fs::read_to_string(format!("/boot/config-{release}")).ok().or_else(|| {
        let gz = fs::File::open("/proc/config.gz").ok()?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz).read_to_string(&mut text).ok()?;
        Some(text)
    })?;
    text.lines().find_map(|l| l.strip_prefix("CONFIG_HZ=")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_host() {
        assert!(os_release().is_some_and(|r| !r.is_empty() && !r.ends_with('\n')));
        assert!(sysctl("net/ipv4/tcp_retries2").is_some());
        assert!(sysctl("no/such/sysctl").is_none());
        assert!(comm(std::process::id()).is_some_and(|c| !c.is_empty() && !c.ends_with('\n')));
    }
}
