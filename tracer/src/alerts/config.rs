//! The alert rules by name, and their thresholds: the design's defaults, overridden by a TOML
//! file (one section per rule) and by `SECTION.KEY=VALUE` overrides (the `--alert` flags). Every
//! mistake names the file (or flag), the section and the key, and lists what is accepted.
//!
//! A new rule's entry here: its `Rule` name, its section struct, its `Thresholds` field with
//! the default, and its keys in `Thresholds::fields`.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// The rules, by their names in alerts and in the thresholds file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A side stays at zero window too long.
    ZeroWindowStall,
    /// Persist probes unanswered, or backed off to long intervals.
    PersistBackoff,
    /// This host's sender held back by the peer's window most of the time.
    ReceiverLimited,
    /// No window scaling, and the 64 KiB ceiling matters.
    WindowScalingMissing,
    /// Repeated non-zero windows smaller than one MSS.
    SillyWindow,
    /// SO_RCVBUF pinned the receive buffer and it limits the sender.
    RcvbufPinned,
    /// Segments dropped for lack of receive space.
    FlowControlDrops,
    /// A transfer runs at the cap its receive window sets (window / RTT).
    WindowLimitsThroughput,
    /// Much of an interval at zero window, in many short episodes (a reader in bursts).
    ZeroWindowDutyCycle,
    /// This host's sender sends segments far below the MSS into a small window.
    SenderSillyWindow,
    /// This host's sender waits for its own send buffer most of the time.
    SndbufLimited,
}

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::ZeroWindowStall,
        Rule::PersistBackoff,
        Rule::ReceiverLimited,
        Rule::WindowScalingMissing,
        Rule::SillyWindow,
        Rule::RcvbufPinned,
        Rule::FlowControlDrops,
        Rule::WindowLimitsThroughput,
        Rule::ZeroWindowDutyCycle,
        Rule::SenderSillyWindow,
        Rule::SndbufLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ZeroWindowStall => "zero_window_stall",
            Rule::PersistBackoff => "persist_backoff",
            Rule::ReceiverLimited => "receiver_limited",
            Rule::WindowScalingMissing => "window_scaling_missing",
            Rule::SillyWindow => "silly_window",
            Rule::RcvbufPinned => "rcvbuf_pinned",
            Rule::FlowControlDrops => "flow_control_drops",
            Rule::WindowLimitsThroughput => "window_limits_throughput",
            Rule::ZeroWindowDutyCycle => "zero_window_duty_cycle",
            Rule::SenderSillyWindow => "sender_silly_window",
            Rule::SndbufLimited => "sndbuf_limited",
        }
    }
}

/// `[zero_window_stall]`: a side stays at zero window this long.
#[derive(Clone, Debug, PartialEq)]
pub struct ZeroWindowStall {
    pub enabled: bool,
    pub warning_ms: u64,
    pub critical_ms: u64,
}

/// `[persist_backoff]`: this many unanswered probes, or a next probe this far away.
#[derive(Clone, Debug, PartialEq)]
pub struct PersistBackoff {
    pub enabled: bool,
    pub probes_out: u64,
    pub interval_ms: u64,
}

/// `[receiver_limited]`: the sender limited by the peer's window this share of an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverLimited {
    pub enabled: bool,
    pub interval_ms: u64,
    pub limited_pct: f64,
}

/// `[window_scaling_missing]`: no window scaling and a window this large (near the 64 KiB cap).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowScalingMissing {
    pub enabled: bool,
    pub window_bytes: u64,
}

/// `[silly_window]`: this many sub-MSS windows in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct SillyWindow {
    pub enabled: bool,
    pub repeats: u64,
}

/// `[window_limits_throughput]`: the transfer reaches this share of window / RTT.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowLimitsThroughput {
    pub enabled: bool,
    pub cap_pct: f64,
}

/// `[rcvbuf_pinned]` and `[flow_control_drops]`: resolve after this long without the cause.
#[derive(Clone, Debug, PartialEq)]
pub struct QuietRule {
    pub enabled: bool,
    pub quiet_ms: u64,
}

/// `[zero_window_duty_cycle]`: a side at zero window at least `zero_pct` of an interval of
/// `interval_ms`, in at least `episodes` episodes that began in it.
#[derive(Clone, Debug, PartialEq)]
pub struct ZeroWindowDutyCycle {
    pub enabled: bool,
    pub interval_ms: u64,
    pub zero_pct: f64,
    pub episodes: u64,
}

/// `[sender_silly_window]`: over a receiver_limited interval, at least `segments` data segments
/// whose mean size is at most `segment_pct` of the MSS.
#[derive(Clone, Debug, PartialEq)]
pub struct SenderSillyWindow {
    pub enabled: bool,
    pub segment_pct: f64,
    pub segments: u64,
}

/// `[sndbuf_limited]`: over a receiver_limited interval, this host's sender waited for its own
/// send buffer at least `wait_pct` of the time.
#[derive(Clone, Debug, PartialEq)]
pub struct SndbufLimited {
    pub enabled: bool,
    pub wait_pct: f64,
}

/// Every rule's switch and thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub zero_window_stall: ZeroWindowStall,
    pub persist_backoff: PersistBackoff,
    pub receiver_limited: ReceiverLimited,
    pub window_scaling_missing: WindowScalingMissing,
    pub silly_window: SillyWindow,
    pub rcvbuf_pinned: QuietRule,
    pub flow_control_drops: QuietRule,
    pub window_limits_throughput: WindowLimitsThroughput,
    pub zero_window_duty_cycle: ZeroWindowDutyCycle,
    pub sender_silly_window: SenderSillyWindow,
    pub sndbuf_limited: SndbufLimited,
}

impl Default for Thresholds {
    /// The defaults in DESIGN.md.
    fn default() -> Self {
        Thresholds {
            zero_window_stall: ZeroWindowStall {
                enabled: true,
                warning_ms: 1000,
                critical_ms: 10_000,
            },
            persist_backoff: PersistBackoff { enabled: true, probes_out: 5, interval_ms: 10_000 },
            receiver_limited: ReceiverLimited {
                enabled: true,
                interval_ms: 5000,
                limited_pct: 50.0,
            },
            // 60 KiB: within 4 KiB of the 65535-byte ceiling.
            window_scaling_missing: WindowScalingMissing { enabled: true, window_bytes: 61_440 },
            silly_window: SillyWindow { enabled: true, repeats: 3 },
            rcvbuf_pinned: QuietRule { enabled: true, quiet_ms: 10_000 },
            flow_control_drops: QuietRule { enabled: true, quiet_ms: 10_000 },
            // A transfer at 80 % of window / RTT runs at the window's cap: RTT samples and the
            // rate's interval differ by tens of percent, not by more.
            window_limits_throughput: WindowLimitsThroughput { enabled: true, cap_pct: 80.0 },
            // 5 s, as receiver_limited: many burst cycles of a reader that wakes every few
            // hundred ms, and still an alert while the transfer runs. 50 %: the sender stood
            // still half the time, so a steady reader would get at least twice the throughput.
            // 5 episodes: half of 5 s in fewer episodes averages 0.5 s or more each, which is
            // zero_window_stall's ground (1 s); five or more short ones are a pattern.
            zero_window_duty_cycle: ZeroWindowDutyCycle {
                enabled: true,
                interval_ms: 5000,
                zero_pct: 50.0,
                episodes: 5,
            },
            // A quarter of the MSS: segments of half the largest window are the kernel's own
            // silly-window avoidance (tcp_bound_to_half_wnd) and not tiny; a quarter or less
            // spends at least four segments' headers where one would do. 20 segments: a
            // pattern, not a transfer's last odd segments.
            sender_silly_window: SenderSillyWindow {
                enabled: true,
                segment_pct: 25.0,
                segments: 20,
            },
            // Half the time, as receiver_limited: the buffer, not the receiver or the network,
            // sets the pace.
            sndbuf_limited: SndbufLimited { enabled: true, wait_pct: 50.0 },
        }
    }
}

/// A settable threshold, borrowed from its section.
enum Field<'a> {
    Flag(&'a mut bool),
    /// A whole number at least `min`, described by `unit`.
    Int {
        value: &'a mut u64,
        min: u64,
        unit: &'static str,
    },
    Percent(&'a mut f64),
}

impl Field<'_> {
    /// What the field accepts, for error messages.
    fn expects(&self) -> String {
        match self {
            Field::Flag(_) => "true or false".to_string(),
            Field::Int { min: 0, unit, .. } => format!("a whole number of {unit} (0 or more)"),
            Field::Int { min, unit, .. } => format!("a whole number of {unit} ({min} or more)"),
            Field::Percent(_) => "a percentage from 0 to 100".to_string(),
        }
    }

    fn set_toml(&mut self, v: &toml::Value) -> bool {
        match (self, v) {
            (Field::Flag(f), toml::Value::Boolean(b)) => **f = *b,
            (Field::Int { value, min, .. }, toml::Value::Integer(i)) => match u64::try_from(*i) {
                Ok(n) if n >= *min => **value = n,
                _ => return false,
            },
            (Field::Percent(p), toml::Value::Integer(i)) if (0..=100).contains(i) => {
                **p = *i as f64
            }
            (Field::Percent(p), toml::Value::Float(x)) if (0.0..=100.0).contains(x) => **p = *x,
            _ => return false,
        }
        true
    }

    fn set_str(&mut self, text: &str) -> bool {
        let text = text.trim();
        match self {
            Field::Flag(f) => match text {
                "true" => **f = true,
                "false" => **f = false,
                _ => return false,
            },
            Field::Int { value, min, .. } => match text.replace('_', "").parse::<u64>() {
                Ok(n) if n >= *min => **value = n,
                _ => return false,
            },
            Field::Percent(p) => match text.trim_end_matches('%').parse::<f64>() {
                Ok(x) if (0.0..=100.0).contains(&x) => **p = x,
                _ => return false,
            },
        }
        true
    }
}

/// The section names, in the order documents list them.
fn section_names() -> String {
    Rule::ALL.map(Rule::as_str).join(", ")
}

impl Thresholds {
    /// The defaults, then the TOML file `file` if given, then the `SECTION.KEY=VALUE`
    /// `overrides` in order (what `--config` and `--alert` ask for).
    pub fn load<S: AsRef<str>>(file: Option<&Path>, overrides: &[S]) -> Result<Thresholds> {
        let mut th = match file {
            Some(path) => Thresholds::from_toml_file(path)?,
            None => Thresholds::default(),
        };
        th.apply_overrides(overrides)?;
        Ok(th)
    }

    /// Read thresholds from a TOML file over the defaults.
    pub fn from_toml_file(path: &Path) -> Result<Thresholds> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read alert thresholds from {}", path.display()))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parse thresholds from TOML text over the defaults; `origin` names the text in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Thresholds> {
        let doc: toml::Table = text.parse().map_err(|e| syntax_error(origin, text, &e))?;
        let mut th = Thresholds::default();
        for (name, value) in &doc {
            let at = place(origin, text, name, None);
            let is_section = th.fields(name).is_some();
            let Some(table) = value.as_table().filter(|_| is_section) else {
                if is_section {
                    bail!("{at}: {name} must be a section ([{name}] and keys under it)");
                }
                bail!("{at}: unknown section [{name}] (known: {})", section_names());
            };
            for (key, v) in table {
                let at = place(origin, text, name, Some(key));
                let mut fields = th.fields(name).unwrap_or_default();
                let known = fields.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
                let Some((_, field)) = fields.iter_mut().find(|(k, _)| k == key) else {
                    bail!("{at}: unknown key \"{key}\" in [{name}] (known: {known})");
                };
                if !field.set_toml(v) {
                    bail!(
                        "{at}: {key} in [{name}] must be {}, got {} {v}",
                        field.expects(),
                        v.type_str()
                    );
                }
            }
        }
        th.validate().map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(th)
    }

    /// Set one threshold, `key` as `section.key` (e.g. `zero_window_stall.warning_ms`), from
    /// text. Checks only this value: call `validate` once every override is in.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let Some((section, name)) = key.split_once('.') else {
            bail!(
                "\"{key}\" is not SECTION.KEY, e.g. zero_window_stall.warning_ms \
                 (sections: {})",
                section_names()
            );
        };
        let Some(mut fields) = self.fields(section) else {
            bail!("unknown alert section \"{section}\" in \"{key}\" (known: {})", section_names());
        };
        let known = fields.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        let Some((_, field)) = fields.iter_mut().find(|(k, _)| *k == name) else {
            bail!("unknown key \"{name}\" in [{section}] (known: {known})");
        };
        if !field.set_str(value) {
            bail!("{key} must be {}, got \"{value}\"", field.expects());
        }
        Ok(())
    }

    /// Apply `SECTION.KEY=VALUE` overrides in order (a repeatable `--alert` flag), then check
    /// the result. Errors name the flag's text.
    pub fn apply_overrides<S: AsRef<str>>(&mut self, assignments: &[S]) -> Result<()> {
        for a in assignments {
            let a = a.as_ref();
            let Some((key, value)) = a.split_once('=') else {
                bail!("--alert {a}: expected KEY=VALUE, e.g. zero_window_stall.warning_ms=2000");
            };
            self.set(key.trim(), value).map_err(|e| anyhow!("--alert {a}: {e}"))?;
        }
        self.validate().map_err(|e| anyhow!("--alert: {e}"))
    }

    /// Checks across keys.
    pub fn validate(&self) -> Result<()> {
        let z = &self.zero_window_stall;
        if z.critical_ms < z.warning_ms {
            bail!(
                "zero_window_stall.critical_ms ({}) is below warning_ms ({}): the warning must \
                 come first",
                z.critical_ms,
                z.warning_ms
            );
        }
        Ok(())
    }

    /// The settable fields of a section, in documentation order.
    fn fields(&mut self, section: &str) -> Option<Vec<(&'static str, Field<'_>)>> {
        let ms = |value| Field::Int { value, min: 0, unit: "milliseconds" };
        Some(match section {
            "zero_window_stall" => {
                let s = &mut self.zero_window_stall;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    ("warning_ms", ms(&mut s.warning_ms)),
                    ("critical_ms", ms(&mut s.critical_ms)),
                ]
            }
            "persist_backoff" => {
                let s = &mut self.persist_backoff;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    ("probes_out", Field::Int { value: &mut s.probes_out, min: 1, unit: "probes" }),
                    ("interval_ms", ms(&mut s.interval_ms)),
                ]
            }
            "receiver_limited" => {
                let s = &mut self.receiver_limited;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    (
                        "interval_ms",
                        Field::Int { value: &mut s.interval_ms, min: 1, unit: "milliseconds" },
                    ),
                    ("limited_pct", Field::Percent(&mut s.limited_pct)),
                ]
            }
            "window_scaling_missing" => {
                let s = &mut self.window_scaling_missing;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    (
                        "window_bytes",
                        Field::Int { value: &mut s.window_bytes, min: 1, unit: "bytes" },
                    ),
                ]
            }
            "silly_window" => {
                let s = &mut self.silly_window;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    ("repeats", Field::Int { value: &mut s.repeats, min: 1, unit: "windows" }),
                ]
            }
            "rcvbuf_pinned" => {
                let s = &mut self.rcvbuf_pinned;
                vec![("enabled", Field::Flag(&mut s.enabled)), ("quiet_ms", ms(&mut s.quiet_ms))]
            }
            "flow_control_drops" => {
                let s = &mut self.flow_control_drops;
                vec![("enabled", Field::Flag(&mut s.enabled)), ("quiet_ms", ms(&mut s.quiet_ms))]
            }
            "window_limits_throughput" => {
                let s = &mut self.window_limits_throughput;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    ("cap_pct", Field::Percent(&mut s.cap_pct)),
                ]
            }
            "zero_window_duty_cycle" => {
                let s = &mut self.zero_window_duty_cycle;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    (
                        "interval_ms",
                        Field::Int { value: &mut s.interval_ms, min: 1, unit: "milliseconds" },
                    ),
                    ("zero_pct", Field::Percent(&mut s.zero_pct)),
                    ("episodes", Field::Int { value: &mut s.episodes, min: 1, unit: "episodes" }),
                ]
            }
            "sender_silly_window" => {
                let s = &mut self.sender_silly_window;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    ("segment_pct", Field::Percent(&mut s.segment_pct)),
                    ("segments", Field::Int { value: &mut s.segments, min: 1, unit: "segments" }),
                ]
            }
            "sndbuf_limited" => {
                let s = &mut self.sndbuf_limited;
                vec![
                    ("enabled", Field::Flag(&mut s.enabled)),
                    ("wait_pct", Field::Percent(&mut s.wait_pct)),
                ]
            }
            _ => return None,
        })
    }
}

/// "origin:line" for a section header or a key under it, or just "origin" when the line cannot
/// be found (dotted or inline keys).
fn place(origin: &str, text: &str, section: &str, key: Option<&str>) -> String {
    let mut current: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header.split(']').next().map(str::trim);
            if key.is_none() && current == Some(section) {
                return format!("{origin}:{}", i + 1);
            }
            continue;
        }
        if let (Some(key), Some(sec)) = (key, current) {
            let is_key =
                line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='));
            if sec == section && is_key {
                return format!("{origin}:{}", i + 1);
            }
        }
        if key.is_none() && current.is_none() {
            let is_key = line
                .strip_prefix(section)
                .is_some_and(|rest| rest.trim_start().starts_with(['=', '.']));
            if is_key {
                return format!("{origin}:{}", i + 1);
            }
        }
    }
    origin.to_string()
}

/// A TOML syntax error as "origin:line:column: invalid TOML: message".
fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let Some(span) = e.span() else {
        return anyhow!("{origin}: invalid TOML: {}", e.message().trim());
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    anyhow!("{origin}:{line}:{column}: invalid TOML: {}", e.message().trim())
}
