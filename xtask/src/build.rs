//! Building the kernel programs and the agent, one line per step.
//!
//! xtask builds the kernel programs itself, before any cargo command that builds the agent, and
//! hands the object to tracer/build.rs in TRACER_EBPF_OBJECT. So they are built once per run
//! (not once per cargo profile: clippy, tests and the release build all embed the same object),
//! and their compile lines, which aya-build forwards as cargo warnings, go to a log instead of
//! the screen. Without the variable tracer/build.rs builds them itself: plain `cargo build` works.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context as _, Result};

use crate::{
    setup::{self, tools_dir, workspace_root},
    step::Step,
};

/// Read by tracer/build.rs: a kernel-programs object to embed as it is.
const EBPF_OBJECT_ENV: &str = "TRACER_EBPF_OBJECT";
/// The hidden xtask subcommand that runs aya-build (see `kernel_programs_into`).
pub const KERNEL_PROGRAMS_CMD: &str = "kernel-programs";

/// The kernel programs built by this run, once they are.
static KERNEL_PROGRAMS: OnceLock<PathBuf> = OnceLock::new();

/// PATH with `.tools/bin` (bpf-linker) first.
fn path_with_tools() -> Option<OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![tools_dir().join("bin")];
    dirs.extend(std::env::split_paths(&path));
    std::env::join_paths(dirs).ok()
}

/// Cargo with `.tools/bin` on PATH, run from the workspace root, and handed the kernel programs
/// if this run built them.
pub fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    if let Some(path) = path_with_tools() {
        cmd.env("PATH", path);
    }
    if let Some(object) = KERNEL_PROGRAMS.get() {
        cmd.env(EBPF_OBJECT_ENV, object);
    }
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds the kernel programs (once per run) as the step `label`; returns the object's path.
pub fn kernel_programs(label: &str) -> Result<PathBuf> {
    if let Some(object) = KERNEL_PROGRAMS.get() {
        return Ok(object.clone());
    }
    let out_dir = setup::target_dir()?.join("ebpf");
    let xtask = std::env::current_exe().context("failed to find the xtask executable")?;
    let mut cmd = Command::new(xtask);
    cmd.arg(KERNEL_PROGRAMS_CMD).arg(&out_dir).current_dir(workspace_root());
    if let Some(path) = path_with_tools() {
        cmd.env("PATH", path);
    }
    let step = Step::start(label, "kernel-programs")?;
    step.run(&mut cmd).context("failed to build the kernel programs")?;
    step.done();
    Ok(KERNEL_PROGRAMS.get_or_init(|| out_dir.join("tracer")).clone())
}

/// What `kernel_programs` runs in a child process, whose output is the step's log: aya-build as
/// tracer/build.rs calls it, with the variables cargo gives a build script, so the object is the
/// one a plain `cargo build` makes. It lands in `out_dir/tracer`.
pub fn kernel_programs_into(out_dir: &Path) -> Result<()> {
    std::env::set_var("OUT_DIR", out_dir);
    std::env::set_var("CARGO_CFG_TARGET_ARCH", std::env::consts::ARCH);
    std::env::set_var(
        "CARGO_CFG_TARGET_ENDIAN",
        if cfg!(target_endian = "big") { "big" } else { "little" },
    );
    let ebpf = workspace_root().join("tracer-ebpf");
    let ebpf = ebpf.to_str().context("the tracer-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "tracer-ebpf", root_dir: ebpf, ..Default::default() }],
        aya_build::Toolchain::Nightly,
    )
}

/// `cargo clippy` for the kernel programs: tracer-ebpf only builds for the BPF target, with
/// `core` built from source by the nightly toolchain, as aya's own CI lints its eBPF crates.
pub fn kernel_clippy() -> Result<Command> {
    let target =
        if cfg!(target_endian = "big") { "bpfeb-unknown-none" } else { "bpfel-unknown-none" };
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "clippy", "--package", "tracer-ebpf", "--target", target])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(setup::target_dir()?.join("ebpf").join("clippy"))
        .args(["--", "-D", "warnings"])
        // aya-ebpf reads the architecture the programs will run on from this cfg.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
        )
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .current_dir(workspace_root());
    Ok(cmd)
}

/// Builds target/release/tracer, the kernel programs first, and returns its path.
pub fn tracer() -> Result<PathBuf> {
    kernel_programs("building the kernel programs")?;
    let step = Step::start("building the agent (release)", "agent")?;
    step.run(cargo().args(["build", "--release", "--package", "tracer"]))
        .context("failed to build the tracer")?;
    step.done();
    Ok(setup::target_dir()?.join("release").join("tracer"))
}

pub fn run(args: &[String]) -> Result<()> {
    let bin = tracer()?;
    let status = Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("failed to start {}", bin.display()))?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
