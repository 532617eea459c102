//! Building the agent (build.rs in tracer builds the kernel programs with bpf-linker).

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result};

use crate::setup::{run as run_cmd, tools_dir, workspace_root};

/// Cargo with `.tools/bin` on PATH, run from the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![tools_dir().join("bin")];
    dirs.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(dirs) {
        cmd.env("PATH", joined);
    }
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds target/release/tracer and returns its path.
pub fn tracer() -> Result<PathBuf> {
    eprintln!("xtask: building the agent and its kernel programs (release)");
    run_cmd(cargo().args(["build", "--release", "--package", "tracer"]))
        .context("failed to build the tracer")?;
    Ok(workspace_root().join("target/release/tracer"))
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
