//! Boots Debian 12's 6.1 cloud kernel under qemu (TCG) with a busybox initramfs that runs our test
//! binaries, the way aya runs its integration tests, so the tracer is tested on an older kernel.

use std::{
    ffi::OsString,
    fs,
    io::{BufRead as _, BufReader, Read as _},
    os::unix::fs::{symlink, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::setup;

/// Debian 12's 6.1 cloud kernel (small, no Secure Boot signature), any ABI number N.
const PKG_PREFIX: &str = "linux-image-6.1.0-";
const PKG_REGEX: &str = r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$";

/// Host tools, as (marker, Debian package). busybox-static replaces the dynamic busybox, so its
/// marker is its dpkg file list rather than the `busybox` program.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("/var/lib/dpkg/info/busybox-static.list", "busybox-static"),
    ("cpio", "cpio"),
];

/// TCG always: KVM hangs on our machines. No NIC: it would only add iPXE's boot time and noise.
const QEMU_ARGS: &str = "-accel tcg -m 2048 -smp 2 -nographic -no-reboot -nic none";

/// An extracted Debian kernel package.
pub struct Kernel {
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    /// `uname -r` in the guest, e.g. "6.1.0-56-cloud-amd64".
    pub release: String,
    /// Modules the tests load, in load order, where the package has them: inet_diag and
    /// tcp_diag (what `ss` asks), sch_netem (delay and loss).
    pub modules: Vec<PathBuf>,
}

/// Ensures qemu, busybox-static and cpio are installed and returns the newest Debian 12 cloud
/// kernel, downloaded and extracted (with its `lib/modules/<release>`) under
/// `cache/<package>_<version>/`. Once extracted, later calls only ask the local apt cache.
pub fn ensure_kernel(cache: &Path) -> Result<Kernel> {
    setup::ensure_debian_packages(TOOLS)?;
    fs::create_dir_all(cache).with_context(|| format!("failed to create {}", cache.display()))?;
    let mut candidates = apt_candidates()?;
    if candidates.is_empty() {
        // Empty package lists: a kernel extracted by an earlier run will do, else fetch the lists.
        if let Some(kernel) = newest_cached(cache) {
            return Ok(kernel);
        }
        setup::apt_update_once()?;
        candidates = apt_candidates()?;
    }
    let (pkg, version) = candidates.pop().ok_or_else(|| {
        anyhow!(
            "apt knows no package matching {PKG_REGEX}; add Debian bookworm and \
             bookworm-security (main) to /etc/apt/sources.list.d and run `apt-get update`"
        )
    })?;
    let dir = cache.join(format!("{pkg}_{version}"));
    if !dir.exists() {
        if let Err(err) = download(cache, &pkg, &version, &dir) {
            // Offline with newer package lists than our cache: an older cached kernel still works.
            let kernel = newest_cached(cache).ok_or(err)?;
            eprintln!("xtask: download failed; using cached {}", kernel.release);
            return Ok(kernel);
        }
    }
    kernel_in(&dir)
}

/// (package, candidate version) of every installable 6.1 cloud kernel, oldest ABI first.
fn apt_candidates() -> Result<Vec<(String, String)>> {
    let search = ["search", "--names-only", PKG_REGEX];
    let found = setup::output(Command::new("apt-cache").args(search))?;
    let names: Vec<&str> = found.lines().filter_map(|l| l.split(' ').next()).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let policy = setup::output(Command::new("apt-cache").arg("policy").args(&names))?;
    let mut candidates = Vec::new();
    let mut pkg = None;
    for line in policy.lines() {
        if !line.starts_with(' ') {
            pkg = line.strip_suffix(':').map(str::to_owned);
        } else if let (Some(p), Some(v)) = (&pkg, line.trim().strip_prefix("Candidate: ")) {
            if v != "(none)" {
                candidates.push((p.clone(), v.to_owned()));
            }
        }
    }
    candidates.sort_by_key(|(p, _)| abi(p));
    Ok(candidates)
}

/// The ABI number N of `linux-image-6.1.0-N-...` (also of our cache directories).
fn abi(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PKG_PREFIX)?;
    rest[..rest.find('-')?].parse().ok()
}

/// The newest kernel already extracted in `cache`, if any.
fn newest_cached(cache: &Path) -> Option<Kernel> {
    let entries = fs::read_dir(cache).ok()?.filter_map(Result::ok);
    let mut dirs: Vec<(u32, PathBuf)> =
        entries.filter_map(|e| Some((abi(e.file_name().to_str()?)?, e.path()))).collect();
    dirs.sort();
    dirs.iter().rev().find_map(|(_, dir)| kernel_in(dir).ok())
}

/// Downloads `pkg=version` and extracts it to `dir`, via a private temporary directory so an
/// interrupted run never leaves a half-extracted kernel behind.
fn download(cache: &Path, pkg: &str, version: &str, dir: &Path) -> Result<()> {
    let tmp = cache.join(format!(".download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("failed to create {}", tmp.display()))?;
    let result = (|| {
        eprintln!("xtask: downloading {pkg} {version} (about 27 MB) ...");
        // The _apt sandbox user may not reach our cache; apt would warn and go on as root anyway.
        let args = ["-o", "APT::Sandbox::User=root", "download", "-q"];
        let mut cmd = Command::new("apt-get");
        cmd.args(args).arg(format!("{pkg}={version}"));
        cmd.current_dir(&tmp);
        setup::run(&mut cmd).with_context(|| {
            format!("failed to download {pkg}: check access to deb.debian.org, or `apt-get update`")
        })?;
        let deb = fs::read_dir(&tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .with_context(|| format!("apt-get download left no .deb in {}", tmp.display()))?;
        eprintln!("xtask: extracting {}", deb.display());
        let root = tmp.join("root");
        setup::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        // Another xtask may have won the race; its copy is as good as ours.
        if fs::rename(&root, dir).is_err() && !dir.is_dir() {
            bail!("failed to move the extracted kernel to {}", dir.display());
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// The kernel image and config inside `cache/<package>_<version>/`.
fn kernel_in(dir: &Path) -> Result<Kernel> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let pkg = name.split('_').next().unwrap_or_default();
    let release = pkg.trim_start_matches("linux-image-").trim_end_matches("-unsigned");
    let boot = dir.join("boot");
    let vmlinuz = boot.join(format!("vmlinuz-{release}"));
    let config = boot.join(format!("config-{release}"));
    if !vmlinuz.is_file() || !config.is_file() {
        let dir = dir.display();
        bail!("{dir} lacks boot/vmlinuz-{release} or its config; delete it to extract again");
    }
    let modules = ["net/ipv4/inet_diag.ko", "net/ipv4/tcp_diag.ko", "net/sched/sch_netem.ko"]
        .iter()
        .map(|m| dir.join(format!("lib/modules/{release}/kernel/{m}")))
        .filter(|m| m.is_file())
        .collect();
    let release = release.to_owned();
    Ok(Kernel { vmlinuz, config, release, modules })
}

/// Writes a gzip'd newc cpio initramfs to `out`: static busybox with its applets in /bin, each
/// (`host_path`, `guest_path`) file plus the shared libraries and loader that ELF files need
/// (found with `ldd`), and an /init that mounts the usual file systems, brings up lo, copies
/// /boot/config (if given) to /boot/config-$(uname -r), runs `script` with /bin/sh, prints
/// `init: success` or `init: failure <rc>` and powers off.
pub fn build_initramfs(out: &Path, files: &[(PathBuf, String)], script: &str) -> Result<()> {
    setup::ensure_debian_packages(TOOLS)?;
    let root = with_suffix(out, ".root");
    let _ = fs::remove_dir_all(&root);
    for dir in "bin sbin usr/bin usr/sbin etc proc sys dev tmp run root boot".split(' ') {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .context("busybox not found; install busybox-static")?;
    install(&root, busybox, "/bin/busybox")?;
    for applet in setup::output(Command::new(busybox).arg("--list"))?.lines() {
        if applet != "busybox" {
            symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    for (host, guest) in files {
        install(&root, host, guest)?;
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    fs::write(root.join("etc/passwd"), passwd)?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let hosts = "127.0.0.1 localhost\n::1 localhost\n";
    fs::write(root.join("etc/hosts"), hosts)?;
    fs::write(root.join("test.sh"), script)?;
    fs::write(root.join("init"), INIT)?;
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755))?;

    // Written beside `out` and renamed, so a failed build never leaves a truncated image.
    let tmp = std::path::absolute(with_suffix(out, ".tmp"))?;
    let pack = r#"cd "$1" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --owner=0:0 --quiet | gzip -9n > "$2""#;
    let mut cmd = Command::new("bash");
    cmd.args(["-o", "pipefail", "-c", pack, "bash"]);
    cmd.arg(&root).arg(&tmp);
    setup::run(&mut cmd).context("failed to pack the initramfs with cpio and gzip")?;
    fs::rename(&tmp, out).with_context(|| format!("failed to write {}", out.display()))?;
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

/// PID 1 of the guest. No `set -e`: a failing mount must not kill init (the kernel would panic).
const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
# Tools look for /boot/config-$(uname -r); callers may ship the config as plain /boot/config.
if [ -f /boot/config ]; then cp /boot/config "/boot/config-$(uname -r)"; fi
cd /
/bin/sh /test.sh
rc=$?
if [ "$rc" -eq 0 ]; then echo "init: success"; else echo "init: failure $rc"; fi
poweroff -f
"#;

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    s.into()
}

/// Copies `host` to `guest` inside `root`, with the shared libraries an ELF file needs.
fn install(root: &Path, host: &Path, guest: &str) -> Result<()> {
    let dest = root.join(guest.trim_start_matches('/'));
    fs::create_dir_all(dest.parent().unwrap_or(root))?;
    // Our file wins over a busybox applet link of the same name.
    let _ = fs::remove_file(&dest);
    fs::copy(host, &dest)
        .with_context(|| format!("failed to copy {} to the initramfs", host.display()))?;
    let mut magic = [0; 4];
    let read = fs::File::open(host).and_then(|mut f| f.read_exact(&mut magic));
    if read.is_err() || &magic != b"\x7fELF" {
        return Ok(());
    }
    for lib in shared_libs(host)? {
        let dest = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        if !dest.exists() {
            fs::create_dir_all(dest.parent().unwrap_or(root))?;
            fs::copy(&lib, &dest).with_context(|| format!("failed to copy {}", lib.display()))?;
        }
    }
    Ok(())
}

/// Absolute paths of the shared libraries (and dynamic loader) `ldd` resolves for `exe`.
fn shared_libs(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(exe).output();
    let out = out.context("failed to run ldd")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if format!("{stdout}{stderr}").contains("not a dynamic executable") {
            return Ok(Vec::new()); // static, like busybox
        }
        bail!("ldd {} failed: {}", exe.display(), stderr.trim());
    }
    let mut libs = Vec::new();
    for line in stdout.lines().map(str::trim) {
        if line.contains("=> not found") {
            bail!("{} needs `{line}` on the host; install that library", exe.display());
        }
        // "libc.so.6 => /lib/.../libc.so.6 (0x..)", "/lib64/ld-linux-x86-64.so.2 (0x..)",
        // "linux-vdso.so.1 (0x..)" (in the kernel, skipped)
        let path = line.split_once("=>").map_or(line, |(_, p)| p.trim());
        let path = path.split(" (").next().unwrap_or_default();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Kills and reaps qemu however `boot` returns.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots `kernel` with `initrd` under qemu, echoing the console as "vm| ..." lines. Ok(true) on
/// `init: success`, Ok(false) on `init: failure` or a kernel panic, an error when the guest hangs
/// past `timeout` or qemu dies first. The console lines come back too, for the caller to read.
pub fn boot(
    kernel: &Kernel,
    initrd: &Path,
    extra_cmdline: &str,
    timeout: Duration,
) -> Result<(bool, Vec<String>)> {
    setup::ensure_debian_packages(TOOLS)?;
    let append = format!("console=ttyS0 panic=-1 quiet {extra_cmdline}");
    let secs = timeout.as_secs();
    let release = &kernel.release;
    eprintln!("xtask: booting 6.1 guest {release} under qemu (TCG, timeout {secs}s) ...");
    // setpriv (util-linux) has the kernel kill qemu should we die without running Drop. (The
    // signal follows the spawning thread, which is fine: we reap qemu before returning.)
    let child = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "qemu-system-x86_64"])
        .args(QEMU_ARGS.split(' '))
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append.trim_end()])
        // A null stdin keeps qemu from switching our terminal to raw mode.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start qemu-system-x86_64 through setpriv (util-linux)")?;
    let mut qemu = Reaper(child);
    let stdout = qemu.0.stdout.take().context("qemu has no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            if tx.send(printable(&String::from_utf8_lossy(&buf))).is_err() {
                break;
            }
            buf.clear();
        }
    });

    let deadline = Instant::now() + timeout;
    let mut console = Vec::new();
    let verdict = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                println!("vm| {line}");
                console.push(line.clone());
                let line = line.trim();
                if line == "init: success" {
                    break Some(true);
                }
                if line.starts_with("init: failure") || line.contains("Kernel panic") {
                    break Some(false);
                }
            }
            Err(RecvTimeoutError::Timeout) => bail!(
                "the guest hung: no `init: success` or `init: failure` within {secs}s, so qemu \
                 was killed (see the vm| lines above; raise the timeout if it was merely slow)"
            ),
            Err(RecvTimeoutError::Disconnected) => break None,
        }
    };
    let Some(ok) = verdict else {
        let status = qemu.0.wait().context("failed to wait for qemu")?;
        bail!("qemu exited ({status}) before the guest reported a result; see its errors above");
    };
    // Show the rest (power-off, panic trace) briefly, then the Reaper ends qemu.
    let grace = Instant::now() + Duration::from_secs(3);
    while let Ok(line) = rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        println!("vm| {line}");
        console.push(line);
    }
    Ok((ok, console))
}

/// `line` without terminal escape sequences and control characters: the firmware clears the screen
/// and resets the terminal, which must not reach ours.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI ("ESC [ ... final byte") or a two-character escape such as "ESC c".
            if chars.next() == Some('[') {
                chars.by_ref().find(|c| ('@'..='~').contains(c));
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}
