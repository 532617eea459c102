//! What the running kernel offers: privileges, BTF, struct offsets.

pub mod btf;
pub mod offsets;

use std::path::Path;

use anyhow::{bail, Result};
use rustix::process::{geteuid, setrlimit, Resource, Rlimit};

use crate::host::sysfs::VMLINUX_BTF;

/// Checks what every attach needs, with an error an operator can act on.
pub fn preflight() -> Result<()> {
    if !geteuid().is_root() {
        bail!("tracer must run as root (it loads eBPF programs: CAP_BPF and CAP_PERFMON); try `sudo tracer ...`");
    }
    if !Path::new(VMLINUX_BTF).exists() {
        bail!(
            "this kernel exposes no BTF at {VMLINUX_BTF}: the tracer needs it to find struct offsets \
             (a kernel built with CONFIG_DEBUG_INFO_BTF=y)"
        );
    }
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so the ring buffer fits.
    // Best effort, as before: where it fails, the map creation error says more.
    let _ = setrlimit(Resource::Memlock, Rlimit { current: None, maximum: None });
    Ok(())
}
