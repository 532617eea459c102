//! What the running kernel offers: privileges, BTF, struct offsets, clock rate, cgroup root.

pub mod btf;
pub mod offsets;

use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Checks what every attach needs, with an error an operator can act on.
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("tracer must run as root (it loads eBPF programs: CAP_BPF and CAP_PERFMON); try `sudo tracer ...`");
    }
    if !Path::new(VMLINUX_BTF).exists() {
        bail!(
            "this kernel exposes no BTF at {VMLINUX_BTF}: the tracer needs it to find struct offsets \
             (a kernel built with CONFIG_DEBUG_INFO_BTF=y)"
        );
    }
    // Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so the ring buffer fits.
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    Ok(())
}

/// The kernel's tick rate (CONFIG_HZ), for converting jiffies (icsk_rto) to time.
/// None when the kernel configuration is not readable.
pub fn config_hz() -> Option<u32> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let text =
        fs::read_to_string(format!("/boot/config-{}", release.trim())).ok().or_else(|| {
            let gz = fs::File::open("/proc/config.gz").ok()?;
            let mut text = String::new();
            flate2::read::GzDecoder::new(gz).read_to_string(&mut text).ok()?;
            Some(text)
        })?;
    text.lines().find_map(|l| l.strip_prefix("CONFIG_HZ=")).and_then(|v| v.trim().parse().ok())
}

/// A directory where the cgroup-v2 hierarchy is mounted, mounting it if nothing has.
pub fn cgroup2_root() -> Result<PathBuf> {
    mounted_or_mount("cgroup2", Path::new("/run/tracer/cgroup2"))
}

/// Where tracefs is mounted (aya attaches tracepoints through it), mounting it if nothing has.
pub fn tracefs_root() -> Result<PathBuf> {
    mounted_or_mount("tracefs", Path::new("/sys/kernel/tracing"))
}

/// The first mount point of a file system of type `fstype`, or `fallback` after mounting it there.
fn mounted_or_mount(fstype: &str, fallback: &Path) -> Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .context("failed to read /proc/self/mountinfo")?;
    for line in mounts.lines() {
        // "id parent major:minor root mount_point options ... - fstype source options"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() == Some(fstype) {
            if let Some(mount_point) = left.split_whitespace().nth(4) {
                return Ok(PathBuf::from(mount_point));
            }
        }
    }
    fs::create_dir_all(fallback)
        .with_context(|| format!("failed to create {}", fallback.display()))?;
    let target = std::ffi::CString::new(fallback.as_os_str().as_encoded_bytes())?;
    let fstype_c = std::ffi::CString::new(fstype)?;
    // SAFETY: valid NUL-terminated strings; mounting a kernel pseudo file system has no other
    // effect.
    let rc = unsafe {
        libc::mount(fstype_c.as_ptr(), target.as_ptr(), fstype_c.as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        bail!(
            "no {fstype} is mounted and mounting one at {} failed: {}",
            fallback.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(fallback.to_path_buf())
}

/// Byte offset of `field` in a tracepoint's record, from its tracefs format file.
pub fn tracepoint_field_offset(tracefs: &Path, event: &str, field: &str) -> Option<u16> {
    let format = fs::read_to_string(tracefs.join("events").join(event).join("format")).ok()?;
    format.lines().find_map(|line| {
        // "\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;"
        let decl = line.trim().strip_prefix("field:")?.split(';').next()?;
        if decl.rsplit(' ').next()? != field {
            return None;
        }
        line.split("offset:").nth(1)?.split(';').next()?.trim().parse().ok()
    })
}

/// The current value of a sysctl such as `net/ipv4/tcp_retries2`.
pub fn sysctl(name: &str) -> Option<u64> {
    fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?.trim().parse().ok()
}
