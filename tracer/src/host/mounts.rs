//! Where the pseudo file systems the agent needs are mounted (cgroup2, tracefs), mounting them
//! when nothing has, and what tracefs says about a tracepoint's record.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use rustix::mount::{mount, MountFlags};

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
    if let Some(mount_point) = mount_point(&mounts, fstype) {
        return Ok(mount_point);
    }
    fs::create_dir_all(fallback)
        .with_context(|| format!("failed to create {}", fallback.display()))?;
    mount(fstype, fallback, fstype, MountFlags::empty(), None).with_context(|| {
        format!("no {fstype} is mounted and mounting one at {} failed", fallback.display())
    })?;
    Ok(fallback.to_path_buf())
}

/// The first mount point of `fstype` in the text of /proc/self/mountinfo.
fn mount_point(mountinfo: &str, fstype: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "id parent major:minor root mount_point options ... - fstype source options"
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next() != Some(fstype) {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_mount_of_a_type() {
        let mountinfo = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
31 22 0:27 / /other/cgroup rw - cgroup2 cgroup2 rw
malformed line without a separator
";
        assert_eq!(mount_point(mountinfo, "cgroup2"), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(mount_point(mountinfo, "tracefs"), None);
    }
}
