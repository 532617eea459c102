//! Command-line interface.

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Show which kernel hook serves each signal on this kernel, then exit.
    Probes(HookArgs),
}

#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// Alert thresholds from a TOML file (see README: one [rule] table per alert rule).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Override one threshold, e.g. `--alert zero_window_stall.warning_ms=2000` (repeatable;
    /// applied after --config).
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
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookMode {
    Auto,
    Kprobe,
    Packet,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Print NDJSON (one JSON object per line) instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Only connections with this local or remote port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Only sockets used by this process id. Accepted sockets are attributed to a process at
    /// their first read, connected ones at connect().
    #[arg(long)]
    pub pid: Option<u32>,
    /// Detach and exit after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Report window changes smaller than 1/2^N of the last reported window too (0 = every
    /// change). Zero / non-zero transitions are always reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub window_shift: u8,
    /// At exit, print how often each kernel program ran and its average cost (turns on the
    /// kernel's BPF run-time statistics while tracing, which itself costs a little).
    #[arg(long)]
    pub prog_stats: bool,
    #[command(flatten)]
    pub hooks: HookArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
}
