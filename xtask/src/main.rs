//! Project automation: `cargo xtask setup | build | run | test | bench`.
//! Every command sets up what it needs first, so each works on a fresh machine.

mod bench;
mod bench_memory;
mod bench_pipeline;
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
        #[arg(long)]
        no_vm: bool,
    },
    /// Measure the tracer's overhead on a loopback bulk transfer, and the agent pipeline's speed
    /// and memory on synthetic recordings.
    Bench {
        /// Interleaved rounds of (without tracer, with tracer).
        #[arg(long, default_value_t = 7)]
        rounds: u32,
        /// Seconds per transfer.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Another tracer binary (e.g. a build of main) to run in the same rounds, side by side.
        #[arg(long, value_name = "PATH")]
        baseline: Option<std::path::PathBuf>,
        /// Only the agent's memory per live connection (no kernel programs, no root).
        #[arg(long)]
        memory: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::all(),
        Cmd::Build => setup::all().and_then(|()| build::tracer().map(drop)),
        Cmd::KernelPrograms { out_dir } => build::kernel_programs_into(&out_dir),
        Cmd::Run { args } => setup::all().and_then(|()| build::run(&args)),
        Cmd::Test { no_vm } => setup::all().and_then(|()| test::all(!no_vm)),
        Cmd::Bench { memory: true, .. } => {
            setup::all().and_then(|()| build::tracer()).and_then(|t| bench_memory::run(&t))
        }
        Cmd::Bench { rounds, seconds, baseline, .. } => {
            setup::all().and_then(|()| bench::run(rounds, seconds, baseline.as_deref()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
