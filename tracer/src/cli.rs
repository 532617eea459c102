//! Command-line interface.

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracer_common::config::DEFAULT_REPORT_BELOW_PCT;

/// `--window-shift` unless given: `serve` and `top` (which have no such flag) use it too.
pub const DEFAULT_WINDOW_SHIFT: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Trace TCP flow control on this host: advertised windows, zero-window episodes, \
             persist probes and receive-buffer autotuning, per connection.",
    after_help = "Needs root (CAP_BPF and CAP_PERFMON) and a kernel with BTF \
                  (/sys/kernel/btf/vmlinux)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach to the kernel and print one line per flow-control event.
    Watch(WatchArgs),
    /// Like watch, and also store the events in FILE for `tracer replay`. Prints alerts and the
    /// summary only (add --events to see every event too).
    Record(RecordArgs),
    /// Run a recording through the same timelines, alerts and summary; no root or kernel needed.
    Replay(ReplayArgs),
    /// A live full-screen table of connections, worst flow-control state first.
    Top(TopArgs),
    /// Run headless as a service: trace and export Prometheus metrics (and alerts on stdout).
    Serve(ServeArgs),
    /// Plot each connection of a recording over time: an HTML page (or SVG files).
    Report(ReportArgs),
    /// Show which kernel hook serves each signal on this kernel, then exit.
    Probes(HookArgs),
    /// Measure the agent's CPU cost per event: synthetic ring records through decode, the
    /// connection table, alerts and NDJSON output, in-process (`cargo xtask bench` runs it).
    #[command(hide = true)]
    BenchPipeline(BenchArgs),
    /// Attach programs that do nothing where the packet and lifecycle hooks attach, until
    /// Ctrl-C: what those attach points cost a host by themselves (`cargo xtask bench --tools
    /// floor` runs it).
    #[command(hide = true)]
    BenchFloor,
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page tracer(1) (roff) on standard output, or write it and one page per
    /// subcommand (tracer-watch(1), ...) into a directory with --dir.
    Man {
        /// Write tracer.1 and tracer-SUBCOMMAND.1 into this directory (created if missing), e.g.
        /// /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Events to run through the pipeline (measured).
    #[arg(long, default_value_t = 3_000_000)]
    pub events: u64,
    /// Connections open at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Write the NDJSON output here instead of discarding it (to see what was measured).
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on this address (`PORT` or `HOST:PORT`; a bare port binds
    /// 127.0.0.1). Path /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Also export one series per connection (4-tuple labels). Off by default: ephemeral ports
    /// make series counts unbounded.
    #[arg(long)]
    pub metrics_per_connection: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only connections with this local or remote port (repeatable).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// Only sockets used by this process id. Accepted sockets are attributed to a process at
    /// accept() (or their first read on kernels with neither function hooks nor syscall
    /// tracepoints), connected ones at connect().
    // 0 would mean "no filter" in the kernel programs: refuse it rather than trace everything.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
    /// Live connections the agent keeps (a few hundred bytes each); past it the least recently
    /// active one is dropped, and counted as evicted.
    #[arg(long, value_name = "N", default_value_t = crate::timeline::DEFAULT_LIVE_CAPACITY,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// Report every connection from its open, as --port and --pid do. Without them a healthy
    /// connection sends nothing: it is reported, open included, from its first flow-control
    /// moment (its window below --report-below % of its largest, a zero window, a sender held
    /// by the peer's window, a probe, a drop for lack of space, a pinned buffer filling up).
    /// Opens, closes, zero windows, probes and drops of every connection are still counted
    /// (tcp_flow_host_* in /metrics).
    #[arg(long)]
    pub every_connection: bool,
    /// A quiet connection is reported once the window it advertises falls below this
    /// percentage of the largest it advertised (zero windows always count).
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_REPORT_BELOW_PCT,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub report_below: u8,
}

impl FilterArgs {
    /// Whether every matching connection is reported from its open: the operator narrowed the
    /// view (they asked for detail) or asked for all.
    pub fn every_connection(&self) -> bool {
        self.every_connection || !self.ports.is_empty() || self.pid.is_some()
    }
}

#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show a recording instead of the live kernel (no root needed); played back at its own
    /// pace, or at once with --fast.
    #[arg(long, value_name = "FILE")]
    pub from: Option<std::path::PathBuf>,
    /// With --from: do not wait between events.
    #[arg(long, requires = "from")]
    pub fast: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where to serve Prometheus metrics (`PORT` or `HOST:PORT`; a bare port binds 127.0.0.1).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub metrics: String,
    /// Also export one series per connection (4-tuple labels).
    #[arg(long)]
    pub metrics_per_connection: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// A file written by `tracer record`.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Where to write: an .html file (default: FILE with .html), or a directory for --format svg.
    #[arg(long, short, value_name = "PATH")]
    pub out: Option<std::path::PathBuf>,
    /// One self-contained HTML page, or one SVG file per connection.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Svg,
}

#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// Alert thresholds from a TOML file (see README: one [rule] table per alert rule).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Override one threshold, e.g. `--alert zero_window_stall.warning_ms=2000` (repeatable;
    /// applied after --config).
    ///
    /// Every rule takes `enabled`; the other keys, with their defaults:
    /// zero_window_stall.warning_ms=1000, .critical_ms=10000; persist_backoff.probes_out=5,
    /// .interval_ms=10000; receiver_limited.interval_ms=5000, .limited_pct=50;
    /// window_scaling_missing.window_bytes=61440; silly_window.repeats=3;
    /// rcvbuf_pinned.quiet_ms=10000; flow_control_drops.quiet_ms=10000;
    /// zero_window_duty_cycle.interval_ms=5000, .zero_pct=50, .episodes=5 (a side at zero
    /// window that share of each interval, in that many episodes or more);
    /// window_limits_throughput.cap_pct=80 (a transfer at that share of window / RTT);
    /// sender_silly_window.segment_pct=25, .segments=20 (that many data segments in an interval,
    /// their mean at most that share of the MSS); sndbuf_limited.wait_pct=50 (this host's
    /// sender waiting for its own send buffer that share of an interval).
    #[arg(long = "alert", value_name = "RULE.KEY=VALUE")]
    pub alerts: Vec<String>,
    /// Do not print the per-connection summary at the end.
    #[arg(long)]
    pub no_summary: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// Where to write the recording.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Also print every event, as watch does.
    #[arg(long)]
    pub events: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// A file written by `tracer record`.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Print NDJSON instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Print only alerts and the summary, not every event.
    #[arg(long)]
    pub no_events: bool,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

#[derive(Args, Debug, Clone)]
pub struct HookArgs {
    /// Restrict the hooks tried: `auto` takes the best the kernel offers; `kprobe` skips
    /// fentry/fexit; `packet` uses only tracepoints and the packet-level fallback.
    #[arg(long, value_enum, default_value_t = HookMode::Auto)]
    pub hooks: HookMode,
    /// Entries of the kernel's per-socket table for the tracepoint and kprobe programs (tests
    /// use a small one to prove a full table loses nothing silently).
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(16..))]
    pub socket_map_entries: Option<u32>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookMode {
    Auto,
    Kprobe,
    Packet,
}

impl From<HookMode> for crate::probes::Tiers {
    fn from(mode: HookMode) -> Self {
        match mode {
            HookMode::Auto => Self::Auto,
            HookMode::Kprobe => Self::Kprobe,
            HookMode::Packet => Self::Packet,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Print NDJSON (one JSON object per line) instead of readable lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Detach and exit after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Report window changes smaller than 1/2^N of the last reported window too (0 = every
    /// change). Zero / non-zero transitions are always reported.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WINDOW_SHIFT)]
    pub window_shift: u8,
    /// At exit, print how often each kernel program ran and its average cost (turns on the
    /// kernel's BPF run-time statistics while tracing, which itself costs a little).
    #[arg(long)]
    pub prog_stats: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
}
