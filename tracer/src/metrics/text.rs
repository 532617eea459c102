//! The Prometheus text exposition format, version 0.0.4: metric families with HELP and TYPE
//! lines, samples with escaped label values, and histograms with cumulative buckets.

use std::fmt::Write as _;

/// The TYPE of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label pairs of one sample, in the order they are written.
pub type Labels<'a> = [(&'a str, &'a str)];

/// A histogram with fixed upper bounds (`le`); values above the last bound only count in
/// `+Inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative: `buckets[i]` counts values in (bounds[i-1], bounds[i]].
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, buckets: vec![0; bounds.len()], count: 0, sum: 0.0 }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += value;
    }
}

/// The exposition being written.
#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn new() -> Self {
        Text::default()
    }

    /// Starts a family: its HELP and TYPE lines. Its samples must follow before the next one.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample with an integer value.
    pub fn int(&mut self, name: &str, labels: &Labels<'_>, value: u64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample with a floating-point value.
    pub fn float(&mut self, name: &str, labels: &Labels<'_>, value: f64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {}", float(value));
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &Labels<'_>, h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, n) in h.bounds.iter().zip(&h.buckets) {
            cumulative += n;
            self.name_and_labels(&bucket, labels, Some(&float(*bound)));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.name_and_labels(&bucket, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        self.float(&format!("{name}_sum"), labels, h.sum);
        self.int(&format!("{name}_count"), labels, h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn name_and_labels(&mut self, name: &str, labels: &Labels<'_>, le: Option<&str>) {
        self.out.push_str(name);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_label_into(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// A float as the format wants it: Go-style special values, otherwise Rust's shortest
/// round-trip form (never an exponent, which the format would accept anyway).
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Label values: backslash, double quote and line feed are escaped.
fn escape_label_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: backslash and line feed are escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        let mut t = Text::new();
        t.family("x_total", Kind::Counter, "a \\ b\nc");
        t.int("x_total", &[("process", "a\"b\\c\nd")], 3);
        assert_eq!(
            t.finish(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{process=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        static B: [f64; 3] = [0.1, 1.0, 10.0];
        let mut h = Histogram::new(&B);
        for v in [0.05, 0.1, 0.5, 20.0] {
            h.observe(v);
        }
        let mut t = Text::new();
        t.histogram("d_seconds", &[("side", "local")], &h);
        let text = t.finish();
        assert!(text.contains("d_seconds_bucket{side=\"local\",le=\"0.1\"} 2\n"), "{text}");
        assert!(text.contains("d_seconds_bucket{side=\"local\",le=\"1\"} 3\n"), "{text}");
        assert!(text.contains("d_seconds_bucket{side=\"local\",le=\"10\"} 3\n"), "{text}");
        assert!(text.contains("d_seconds_bucket{side=\"local\",le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("d_seconds_sum{side=\"local\"} 20.65\n"), "{text}");
        assert!(text.contains("d_seconds_count{side=\"local\"} 4\n"), "{text}");
    }

    #[test]
    fn floats() {
        assert_eq!(float(0.01), "0.01");
        assert_eq!(float(120.0), "120");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NAN), "NaN");
    }
}
