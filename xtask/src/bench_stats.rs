//! The arithmetic of `cargo xtask bench`: medians, ranges and per-round ratios, and the CPU
//! counters of the host and of one process that the figures come from.

/// The median of `values` (None when empty); NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The smallest and largest of `values` (None when empty).
pub fn range(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// `with / without`, or None when the reference is not a positive number (a leg that moved
/// nothing cannot be a reference).
pub fn ratio(with: f64, without: f64) -> Option<f64> {
    (without > 0.0 && with.is_finite()).then(|| with / without)
}

/// A 95 % confidence interval for the median of `values`, from their order statistics alone (no
/// assumption on how the rounds scatter): the k-th smallest and the k-th largest value, k the
/// largest rank for which fewer than k values fall below the true median with a chance of at
/// most 2.5 % (binomial, one half). None below 6 values, where no rank qualifies.
pub fn median_interval(values: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // P(X = i) for X ~ Binomial(n, 1/2), from i = 0 up, in logs (no underflow at large n).
    let mut log_p = -(n as f64) * std::f64::consts::LN_2;
    let mut below = 0.0;
    let mut k = 0;
    for i in 0..n / 2 {
        below += log_p.exp();
        if below > 0.025 {
            break;
        }
        k = i + 1;
        log_p += ((n - i) as f64 / (i + 1) as f64).ln();
    }
    (k > 0).then(|| (v[k - 1], v[n - k]))
}

/// How far the 95 % interval of the median reaches from the median, the larger side: the `h`
/// of "median ±h". None below 6 values.
pub fn median_half_width(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let (lo, hi) = median_interval(values)?;
    Some((m - lo).max(hi - m))
}

/// `median +-reach (min-max)` of per-round ratios, e.g. `0.937 +-0.041 (0.903-1.120)`: the
/// reach of the median's 95 % interval is `?` below 6 rounds.
pub fn median_reach_and_range(values: &[f64]) -> String {
    match (median(values), range(values)) {
        (Some(m), Some((lo, hi))) => {
            let reach = median_half_width(values).map_or("?".to_string(), |h| format!("{h:.3}"));
            format!("{m:.3} +-{reach} ({lo:.3}-{hi:.3})")
        }
        _ => "-".to_string(),
    }
}

/// The kernel's USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture we
/// build for.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) used so far by process `pid` and all its threads; None when it
/// is gone.
pub fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_cpu(&stat)
}

/// utime + stime from the text of /proc/PID/stat.
fn parse_process_cpu(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let (_, after) = stat.rsplit_once(')')?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Resident memory of process `pid` in KiB (VmRSS); None when it is gone.
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds the whole host has spent busy so far (all CPUs, everything but idle and
/// iowait): what a workload and every tool watching it cost together, softirqs included.
pub fn host_busy_cpu() -> f64 {
    std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_host_busy).unwrap_or(0.0)
}

/// Busy seconds from the text of /proc/stat (its first, all-CPU line).
fn parse_host_busy(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).unwrap_or(&0.0);
    Some((total - idle) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn range_and_ratio() {
        assert_eq!(range(&[0.8, 2.2, 1.0]), Some((0.8, 2.2)));
        assert_eq!(range(&[]), None);
        assert_eq!(ratio(9.0, 10.0), Some(0.9));
        assert_eq!(ratio(9.0, 0.0), None);
        assert_eq!(median_reach_and_range(&[0.9, 1.1, 0.95]), "0.950 +-? (0.900-1.100)");
        let six = [0.985, 0.99, 0.995, 0.99, 0.98, 1.0];
        assert_eq!(median_reach_and_range(&six), "0.990 +-0.010 (0.980-1.000)");
        assert_eq!(median_reach_and_range(&[]), "-");
    }

    #[test]
    fn median_interval_from_order_statistics() {
        // Below 6 values no rank qualifies (5 values: 1/32 > 2.5 % already at the extremes).
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        // 6 values: the extremes (1/64 below 2.5 %).
        let six = [0.9, 1.2, 1.0, 0.8, 1.1, 0.95];
        assert_eq!(median_interval(&six), Some((0.8, 1.2)));
        // 20 values: ranks 6 and 15 (P(X <= 5) = 2.1 %, P(X <= 6) = 5.8 %).
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(median_interval(&twenty), Some((6.0, 15.0)));
        assert_eq!(median_half_width(&twenty), Some(4.5));
        // 100 values: ranks 40 and 61, the textbook interval.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median_interval(&hundred), Some((40.0, 61.0)));
        assert_eq!(median_half_width(&[]), None);
    }

    #[test]
    fn process_cpu_skips_a_name_with_spaces() {
        let stat = "1234 (tracer (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_process_cpu(stat), Some(3.0));
        assert_eq!(parse_process_cpu("garbage"), None);
    }

    #[test]
    fn host_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 10 50 1000 20 5 15 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_host_busy(stat), Some(1.8));
    }
}
