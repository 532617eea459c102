//! Puts the kernel programs (tracer-ebpf, for bpfel-unknown-none) in OUT_DIR: the object
//! `cargo xtask` built already when it says so in TRACER_EBPF_OBJECT, else a build of them here
//! through aya-build (so plain `cargo build` works too).

use std::{env, fs, path::Path};

use anyhow::{bail, Context as _};

/// Set by `cargo xtask` (xtask/src/build.rs), which builds the kernel programs once per run and
/// keeps their compile log out of sight: the object to embed as it is.
const PREBUILT: &str = "TRACER_EBPF_OBJECT";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed={PREBUILT}");
    if let Some(object) = env::var_os(PREBUILT) {
        let out_dir = env::var_os("OUT_DIR").context("cargo did not set OUT_DIR")?;
        let object = Path::new(&object);
        println!("cargo:rerun-if-changed={}", object.display());
        fs::copy(object, Path::new(&out_dir).join("tracer")).with_context(|| {
            format!(
                "failed to copy the kernel programs from {} ({PREBUILT}): unset {PREBUILT} to \
                 build them here, or run `cargo xtask build`",
                object.display()
            )
        })?;
        return Ok(());
    }
    // Read at run time, not with env!(): a build script compiled in another checkout (a copied
    // target directory) must still build this checkout's kernel programs.
    let manifest =
        env::var_os("CARGO_MANIFEST_DIR").context("cargo did not set CARGO_MANIFEST_DIR")?;
    let root = Path::new(&manifest).parent().context("tracer has no parent directory")?;
    // `cargo xtask setup` builds bpf-linker into the project's own tools folder.
    let tools = root.join(".tools").join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![tools.clone()];
    dirs.extend(env::split_paths(&path));
    let joined = env::join_paths(dirs).context("PATH contains an invalid entry")?;
    env::set_var("PATH", &joined);
    let found = env::split_paths(&joined).any(|d| d.join("bpf-linker").is_file());
    if !found {
        bail!(
            "bpf-linker is not installed: run `cargo xtask setup` (it builds it into {})",
            tools.display()
        );
    }
    println!("cargo:rerun-if-changed={}", tools.join("bpf-linker").display());
    let ebpf = root.join("tracer-ebpf");
    let ebpf = ebpf.to_str().context("tracer-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "tracer-ebpf", root_dir: ebpf, ..Default::default() }],
        aya_build::Toolchain::Nightly,
    )
}
