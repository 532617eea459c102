//! Axes: the byte scale (linear, or a symmetric log that stays linear near zero so a zero
//! window sits on the baseline), time ticks, and their labels.

use crate::timeline::fmt::bytes_tick;

/// How bytes map to the chart's height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum YScale {
    /// 0..=top bytes, evenly.
    Linear { top: f64 },
    /// `log2(1 + v / knee)`: linear below `knee` bytes, logarithmic above, up to `top` bytes.
    SymLog { knee: f64, top: f64 },
}

/// Values spanning more than this factor get the log scale: on a linear one the small
/// windows (the interesting ones) would be a few pixels above zero.
const LOG_SPAN: f64 = 16.0;

/// Room above the largest value, as a fraction of the (scaled) height.
const HEADROOM: f64 = 0.06;

impl YScale {
    /// The scale for these byte values (zeros included or not: they are always on the axis).
    pub fn choose(values: impl IntoIterator<Item = u64>) -> YScale {
        let mut positive: Vec<u64> = values.into_iter().filter(|&v| v > 0).collect();
        positive.sort_unstable();
        let Some(&max) = positive.last() else { return YScale::Linear { top: 1024.0 } };
        // A low quantile rather than the minimum: one odd tiny sample should not stretch the
        // scale for everything else.
        let low = positive[positive.len() / 20] as f64;
        let max = max as f64;
        if max / low <= LOG_SPAN {
            return YScale::Linear { top: max * (1.0 + HEADROOM) };
        }
        let knee = prev_power_of_two((low / 2.0).max(1.0));
        let top_t = (1.0 + max / knee).log2() * (1.0 + HEADROOM);
        YScale::SymLog { knee, top: knee * (top_t.exp2() - 1.0) }
    }

    /// Where `bytes` sits, from 0.0 (zero, the bottom) to 1.0 (the top).
    pub fn frac(&self, bytes: f64) -> f64 {
        let f = match *self {
            YScale::Linear { top } => bytes / top,
            YScale::SymLog { knee, top } => (1.0 + bytes / knee).log2() / (1.0 + top / knee).log2(),
        };
        f.clamp(0.0, 1.0)
    }

    /// Tick values in bytes, bottom up, at least `min_gap` (a fraction of the height) apart.
    pub fn ticks(&self, min_gap: f64) -> Vec<u64> {
        let candidates: Vec<u64> = match *self {
            YScale::Linear { top } => {
                // Powers of two, as `ss` and buffer sizes are: 4 to 8 steps.
                let mut step = 1u64;
                while (top / step as f64) > 8.0 {
                    step *= 2;
                }
                (0..).map(|i| i * step).take_while(|&v| v as f64 <= top).collect()
            }
            YScale::SymLog { knee, top } => {
                let mut v = vec![0];
                let mut p = knee.max(1.0) as u64;
                while p as f64 <= top {
                    v.push(p);
                    p *= 2;
                }
                v
            }
        };
        let mut kept: Vec<u64> = Vec::new();
        for v in candidates {
            match kept.last() {
                Some(&last) if self.frac(v as f64) - self.frac(last as f64) < min_gap => {}
                _ => kept.push(v),
            }
        }
        kept
    }

    /// The axis title's note on the scale.
    pub fn describe(&self) -> String {
        match *self {
            YScale::Linear { .. } => "bytes (linear)".into(),
            YScale::SymLog { knee, .. } => {
                format!("bytes (log scale; linear below {})", bytes_tick(knee as u64))
            }
        }
    }
}

fn prev_power_of_two(v: f64) -> f64 {
    let mut p = 1.0;
    while p * 2.0 <= v {
        p *= 2.0;
    }
    p
}

/// A step of 1, 2 or 5 times a power of ten giving about `target` intervals over `span`.
pub fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Time ticks (seconds) over 0..=span with about `target` intervals, and their labels.
pub fn time_ticks(span: f64, target: usize) -> Vec<(f64, String)> {
    let step = nice_step(span, target);
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    // Counting steps, not adding them, so float error does not drift or skip the last tick.
    let n = (span / step + 1e-9).floor() as u64;
    (0..=n)
        .map(|i| {
            let t = i as f64 * step;
            (t, format!("{t:.decimals$}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_ranges_are_linear_wide_ones_log() {
        assert!(matches!(YScale::choose([0, 2048, 4096, 8192]), YScale::Linear { .. }));
        let s = YScale::choose([0, 2048, 4096, 8192, 131_072]);
        let YScale::SymLog { knee, top } = s else { panic!("{s:?}") };
        assert_eq!(knee, 1024.0);
        assert!(top > 131_072.0, "headroom above the largest value");
        assert_eq!(YScale::choose([0, 0]), YScale::Linear { top: 1024.0 });
    }

    #[test]
    fn zero_is_the_bottom_and_order_is_kept() {
        for s in [YScale::choose([1, 4096]), YScale::choose([4000, 5000])] {
            assert_eq!(s.frac(0.0), 0.0);
            assert!(s.frac(1000.0) < s.frac(2000.0));
            assert!(s.frac(1e12) <= 1.0);
        }
    }

    #[test]
    fn log_ticks_are_powers_of_two_and_spaced() {
        let s = YScale::choose([2048, 4096, 65_536, 131_072]);
        let ticks = s.ticks(0.08);
        assert_eq!(ticks[0], 0);
        assert!(ticks[1..].iter().all(|t| t.is_power_of_two()), "{ticks:?}");
        assert!(ticks.contains(&131_072), "{ticks:?}");
        for w in ticks.windows(2) {
            assert!(s.frac(w[1] as f64) - s.frac(w[0] as f64) >= 0.08, "{ticks:?}");
        }
    }

    #[test]
    fn linear_ticks_step_in_powers_of_two() {
        let s = YScale::Linear { top: 6000.0 };
        assert_eq!(s.ticks(0.0), vec![0, 1024, 2048, 3072, 4096, 5120]);
    }

    #[test]
    fn time_ticks_are_nice_and_cover_the_span() {
        let t = time_ticks(3.5, 8);
        assert_eq!(t.first().map(|x| x.1.as_str()), Some("0.0"));
        assert_eq!(t.last().map(|x| x.1.as_str()), Some("3.5"));
        assert_eq!(t.len(), 8);
        let t = time_ticks(120.0, 6);
        assert_eq!(
            t.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["0", "20", "40", "60", "80", "100", "120"]
        );
        assert_eq!(nice_step(0.0, 5), 1.0);
        assert!((nice_step(0.003, 3) - 0.001).abs() < 1e-12);
    }
}
