//! Thinning dense step series to what a chart can show: per time bucket (about a pixel wide)
//! the first, last, lowest and highest samples, plus every move to or from zero, so the drawn
//! line keeps its extremes and every zero window.

/// A series longer than this is thinned.
pub const MAX_POINTS: usize = 4000;

/// Buckets across the time axis when thinning: about one per pixel of the plot.
pub const BUCKETS: usize = 1000;

/// `points` (sorted by time, within `t0..=t1`) thinned to at most 4 per bucket plus zero
/// crossings, when there are more than `max_points`; unchanged otherwise.
pub fn downsample(
    points: &[(u64, u64)],
    t0: u64,
    t1: u64,
    buckets: usize,
    max_points: usize,
) -> Vec<(u64, u64)> {
    if points.len() <= max_points || buckets == 0 {
        return points.to_vec();
    }
    let span = t1.saturating_sub(t0).max(1) as u128;
    let bucket_of = |ts: u64| {
        let b = u128::from(ts.saturating_sub(t0)) * buckets as u128 / span;
        (b as usize).min(buckets - 1)
    };
    let mut keep = vec![false; points.len()];
    let mut start = 0;
    while start < points.len() {
        let b = bucket_of(points[start].0);
        let mut end = start + 1;
        while end < points.len() && bucket_of(points[end].0) == b {
            end += 1;
        }
        let slice = &points[start..end];
        keep[start] = true;
        keep[end - 1] = true;
        // First occurrence of each extreme: max_by_key would pick the last.
        let lo = slice.iter().enumerate().min_by_key(|(i, p)| (p.1, *i)).map_or(0, |(i, _)| i);
        let hi = slice
            .iter()
            .enumerate()
            .max_by_key(|(i, p)| (p.1, usize::MAX - i))
            .map_or(0, |(i, _)| i);
        keep[start + lo] = true;
        keep[start + hi] = true;
        start = end;
    }
    // Every transition to or from zero, wherever it falls.
    for i in 1..points.len() {
        if (points[i].1 == 0) != (points[i - 1].1 == 0) {
            keep[i] = true;
        }
    }
    points.iter().zip(keep).filter_map(|(p, k)| k.then_some(*p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_untouched() {
        let p = vec![(0, 1), (5, 2), (9, 0)];
        assert_eq!(downsample(&p, 0, 9, 2, 10), p);
    }

    #[test]
    fn dense_series_keep_extremes_and_every_zero_crossing() {
        // 100k samples over 1 s: a slow sine-ish ramp with a few isolated zeros and one spike.
        let n = 100_000u64;
        let mut p: Vec<(u64, u64)> =
            (0..n).map(|i| (i * 10_000, 1000 + (i * 7919) % 5000)).collect();
        for i in [10, 33_333, 33_334, 77_777, 99_999] {
            p[i as usize].1 = 0;
        }
        p[50_000].1 = 1_000_000;
        let out = downsample(&p, 0, n * 10_000, BUCKETS, MAX_POINTS);
        assert!(out.len() <= 4 * BUCKETS + 10, "{} points", out.len());
        assert!(out.len() < p.len());
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "still in time order");
        assert_eq!(out.iter().map(|x| x.1).max(), Some(1_000_000), "the spike is kept");
        let crossings = |s: &[(u64, u64)]| {
            s.windows(2)
                .filter(|w| (w[0].1 == 0) != (w[1].1 == 0))
                .map(|w| w[1].0)
                .collect::<Vec<_>>()
        };
        assert_eq!(crossings(&out), crossings(&p), "every move to and from zero is kept");
        assert_eq!(out.first(), p.first());
        assert_eq!(out.last(), p.last());
    }
}
