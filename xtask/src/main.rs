//! Project automation: `cargo xtask setup | build | run | test | bench`.
//! Every command sets up what it needs first, so each works on a fresh machine.

mod bench;
mod bench_bulk;
mod bench_held;
mod bench_http;
mod bench_memory;
mod bench_pipeline;
mod bench_stats;
mod bench_tools;
mod build;
mod setup;
mod step;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and benchmark the tracer")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the build and the tests need (rust-src, bpf-linker, Debian packages).
    Setup,
    /// Build the kernel programs and the agent (target/release/tracer).
    Build,
    /// Build the kernel programs into OUT_DIR/tracer with aya-build: what `build` and `test`
    /// run in a child process, whose output they keep in a log.
    #[command(name = build::KERNEL_PROGRAMS_CMD, hide = true)]
    KernelPrograms { out_dir: std::path::PathBuf },
    /// Build, then run the agent with the given arguments, e.g. `cargo xtask run -- watch`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test: unit tests, kernel tests on this host, kernel tests in a 6.1 QEMU guest.
    Test {
        /// Skip the QEMU guest.
        #[arg(long, conflicts_with = "vm_only")]
        no_vm: bool,
        /// Only the QEMU guest's kernel tests, optionally only those whose name contains
        /// FILTER (for working on one kernel test; CI runs everything).
        #[arg(long, value_name = "FILTER", num_args = 0..=1, default_missing_value = "")]
        vm_only: Option<String>,
    },
    /// Measure the tracer's overhead beside a bpftrace script of the same hooks and tcpdump, on
    /// loopback bulk (iperf3), a new connection per HTTP request (nginx, ab) and 20,000 held
    /// connections plus churn; then the agent pipeline's speed and memory on synthetic
    /// recordings. Installs what it needs (Debian packages) first.
    Bench {
        /// Interleaved rounds (each runs every workload without and with every tool); 6 at least
        /// give each median ratio its 95 % interval.
        #[arg(long, default_value_t = 7)]
        rounds: u32,
        /// Seconds per leg (iperf3 and ab round up to whole seconds).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Another tracer binary (e.g. a build of main) to run in the same rounds, side by side.
        #[arg(long, value_name = "PATH")]
        baseline: Option<std::path::PathBuf>,
        /// Only the agent's memory per live connection (no kernel programs, no root).
        #[arg(long)]
        memory: bool,
        /// Workloads to run, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_values = ["bulk", "http", "held"])]
        workload: Vec<bench::WorkloadKind>,
        /// Tools to put beside "nothing attached", comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_values = ["tracer", "floor", "bpftrace", "tcpdump"])]
        tools: Vec<bench::ToolKind>,
        /// Skip the agent pipeline's replay benchmark.
        #[arg(long)]
        no_pipeline: bool,
    },
    /// One process of the bench's held-connections workload (server, client or churn).
    #[command(name = "bench-held", hide = true)]
    BenchHeld {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::all().and_then(|()| setup::bench()),
        Cmd::Build => setup::all().and_then(|()| build::tracer().map(drop)),
        Cmd::KernelPrograms { out_dir } => build::kernel_programs_into(&out_dir),
        Cmd::Run { args } => setup::all().and_then(|()| build::run(&args)),
        Cmd::Test { no_vm, vm_only: None } => setup::all().and_then(|()| test::all(!no_vm)),
        Cmd::Test { vm_only: Some(filter), .. } => {
            setup::all().and_then(|()| test::guest_only(&filter))
        }
        Cmd::Bench { memory: true, .. } => {
            setup::all().and_then(|()| build::tracer()).and_then(|t| bench_memory::run(&t))
        }
        Cmd::Bench { rounds, seconds, baseline, workload, tools, no_pipeline, .. } => {
            let opts = bench::Options {
                rounds,
                seconds,
                baseline,
                workloads: workload,
                tools,
                pipeline: !no_pipeline,
            };
            setup::all().and_then(|()| setup::bench()).and_then(|()| bench::run(&opts))
        }
        Cmd::BenchHeld { args } => bench_held::child(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
