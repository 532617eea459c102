//! Idempotent set-up of everything the build and the tests need, from the package registries only.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{bail, Context as _, Result};

use crate::step::Step;

/// Debian packages the tests use on this host: nstat and ip (iproute2), script (util-linux),
/// tmux (driving `tracer top`), a real Prometheus server and promtool, groff (man pages),
/// systemd-analyze (the unit in deploy/) and tshark (the wire, as the kernel tests' oracle).
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("nstat", "iproute2"),
    ("ip", "iproute2"),
    ("script", "util-linux"),
    ("groff", "groff-base"),
    ("systemd-analyze", "systemd"),
    ("tmux", "tmux"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("tshark", "tshark"),
];

/// Debian packages `cargo xtask bench` runs: the workloads (iperf3, nginx, ab) and the tools
/// the tracer is compared with (bpftrace, tcpdump).
const BENCH_PACKAGES: &[(&str, &str)] = &[
    ("iperf3", "iperf3"),
    ("/usr/sbin/nginx", "nginx-light"),
    ("ab", "apache2-utils"),
    ("bpftrace", "bpftrace"),
    ("tcpdump", "tcpdump"),
];

/// What the benchmarks need beyond the build and the tests.
pub fn bench() -> Result<()> {
    ensure_debian_packages(BENCH_PACKAGES)
}

/// Everything the build needs: the nightly toolchain's rust-src and bpf-linker in `.tools/`, and
/// rustfmt and clippy for the checks `cargo xtask test` starts with.
pub fn all() -> Result<()> {
    ensure_nightly()?;
    ensure_checkers()?;
    ensure_bpf_linker()?;
    ensure_debian_packages(HOST_PACKAGES)
}

fn ensure_nightly() -> Result<()> {
    if !have("rustup") {
        bail!("rustup is not installed: the kernel programs need a nightly Rust toolchain managed by rustup");
    }
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!("no nightly Rust toolchain: run `rustup toolchain install nightly --component rust-src`");
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    // rust-src to build `core` for the BPF target; clippy to lint the kernel programs.
    let missing: Vec<&str> = ["rust-src", "clippy"]
        .into_iter()
        .filter(|c| !installed.lines().any(|l| l.starts_with(c)))
        .collect();
    if !missing.is_empty() {
        let step = Step::start(
            &format!("adding {} to the nightly toolchain", missing.join(" and ")),
            "rustup-nightly",
        )?;
        step.run(
            Command::new("rustup")
                .args(["component", "add", "--toolchain", "nightly"])
                .args(&missing),
        )?;
        step.done();
    }
    Ok(())
}

/// rustfmt and clippy for the toolchain that builds the agent (rustup's default profile has
/// them; the minimal one does not).
fn ensure_checkers() -> Result<()> {
    let works = |tool: &str| {
        Command::new("cargo").args([tool, "--version"]).output().is_ok_and(|o| o.status.success())
    };
    if works("fmt") && works("clippy") {
        return Ok(());
    }
    let step = Step::start("adding rustfmt and clippy to the Rust toolchain", "rustup")?;
    step.run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;
    step.done();
    Ok(())
}

/// Where `cargo xtask setup` installs tools it builds itself.
pub fn tools_dir() -> PathBuf {
    workspace_root().join(".tools")
}

/// bpf-linker from crates.io, built against the nightly toolchain's own libLLVM (no system LLVM).
fn ensure_bpf_linker() -> Result<()> {
    const VERSION: &str = "0.13.0";
    let root = tools_dir();
    let bin = root.join("bin").join("bpf-linker");
    if bin.exists() {
        if let Ok(v) = output(Command::new(&bin).arg("--version")) {
            if v.contains(VERSION) {
                return Ok(());
            }
        }
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let llvm = std::fs::read_dir(&lib)
        .with_context(|| format!("failed to list {}", lib.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("libLLVM-") && n.ends_with(".so"))
        .with_context(|| {
            format!("the nightly toolchain has no libLLVM-*.so in {}", lib.display())
        })?;
    let llvm = llvm.trim_start_matches("lib").trim_end_matches(".so").to_string();
    let major = llvm
        .trim_start_matches("LLVM-")
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or_default()
        .to_string();
    let step = Step::start(
        &format!(
            "building bpf-linker {VERSION} against the nightly toolchain's {llvm} (about a minute)"
        ),
        "bpf-linker",
    )?;
    let rustflags =
        format!("-L {lib} -C link-arg=-Wl,-rpath,{lib} -l dylib={llvm}", lib = lib.display());
    step.run(
        Command::new("cargo")
            .args([
                "+nightly",
                "install",
                &format!("bpf-linker@{VERSION}"),
                "--locked",
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{major},no-llvm-linking"), "--root"])
            .arg(&root)
            .env("RUSTFLAGS", rustflags),
    )
    .context("failed to build bpf-linker")?;
    step.done();
    Ok(())
}

/// Runs a command, failing with its full command line when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its standard output.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("failed to start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when `program` is found on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let out = output(Command::new("sh").args(["-c", &format!("command -v {program}")])).ok()?;
    let path = out.trim();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Installs the Debian packages whose marker program or file is missing.
/// Each entry is (program on PATH or absolute file path, package name).
pub fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> =
        wanted
            .iter()
            .filter(|(marker, _)| {
                if marker.starts_with('/') {
                    !Path::new(marker).exists()
                } else {
                    !have(marker)
                }
            })
            .map(|(_, pkg)| *pkg)
            .collect();
    // Several markers can come from one package.
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        bail!(
            "these Debian packages are needed but apt-get is not available: {}",
            missing.join(" ")
        );
    }
    apt_update_once()?;
    let step =
        Step::start(&format!("installing Debian packages: {}", missing.join(" ")), "apt-install")?;
    step.run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("failed to install {} (are you root?)", missing.join(" ")))?;
    step.done();
    Ok(())
}

/// `apt-get update`, at most once per xtask process and only when the lists look stale.
pub fn apt_update_once() -> Result<()> {
    static DONE: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    DONE.call_once(|| {
        result = Step::start("updating the Debian package lists (apt-get update)", "apt-update")
            .and_then(|step| {
                step.run(
                    Command::new("apt-get")
                        .args(["update", "-q"])
                        .env("DEBIAN_FRONTEND", "noninteractive"),
                )?;
                step.done();
                Ok(())
            })
            .context("failed to update the Debian package lists (are you root?)");
    });
    result
}

/// The workspace root (the parent of xtask's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory for this workspace, as cargo resolves it (CARGO_TARGET_DIR,
/// `build.target-dir`, else `target/`).
pub fn target_dir() -> Result<PathBuf> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let metadata = output(
        Command::new("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(workspace_root()),
    )?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("`cargo metadata` printed no JSON")?;
    let dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` did not name the target directory")?;
    Ok(DIR.get_or_init(|| dir).clone())
}
