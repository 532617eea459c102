//! `cargo xtask test`: format and lints, unit tests, kernel tests on this host, kernel tests in a
//! 6.1 guest.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{build, setup, step::Step, vm};

/// The stages `all` runs, for its `[n/STAGES]` lines.
const STAGES: usize = 6;

/// Test counts parsed from cargo's "test result:" lines.
#[derive(Default, Clone, Copy)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    /// Reads "test result: ok. 3 passed; 0 failed; ..." lines.
    fn scan(&mut self, line: &str) {
        let Some(rest) = line.split("test result: ").nth(1) else {
            return;
        };
        let number_before = |word: &str| -> u64 {
            rest.split(';')
                .find_map(|part| {
                    part.trim().strip_suffix(word)?.trim().rsplit(' ').next()?.parse().ok()
                })
                .unwrap_or(0)
        };
        self.passed += number_before("passed");
        self.failed += number_before("failed");
    }
}

/// The 6.1 guest's kernel tests alone (those whose name contains `filter`), after the kernel
/// programs are built.
pub fn guest_only(filter: &str) -> Result<()> {
    build::kernel_programs(&format!("[2/{STAGES}] building the kernel programs"))?;
    let tally = guest_tests(filter)?;
    println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 {
        bail!("failed: 6.1 guest kernel tests");
    }
    Ok(())
}

pub fn all(with_vm: bool) -> Result<()> {
    let mut tally = Tally::default();
    let mut failures = Vec::new();

    // Checks first, and the run stops at the first that fails: they take seconds, the tests
    // take many minutes. Clippy needs the kernel programs (the agent embeds them).
    format()?;
    build::kernel_programs(&format!("[2/{STAGES}] building the kernel programs"))?;
    lints()?;

    let unit = ["test", "--release", "--workspace", "--exclude", "tracer-ebpf"];
    let step = Step::start(&format!("[4/{STAGES}] unit tests: building them"), "unit-tests")?;
    step.run(build::cargo().args(unit).arg("--no-run")).context("failed to build the tests")?;
    step.done();
    let unit = cargo_test(build::cargo().args(unit));
    record(&mut tally, &mut failures, "unit tests", unit);

    eprintln!("xtask: [5/{STAGES}] kernel tests on this host ({})", kernel_release());
    if effective_uid() != 0 {
        bail!("kernel tests attach eBPF programs and need root: run `sudo cargo xtask test`");
    }
    let host_auto = cargo_test(live_tests("kernel").env_remove("TRACER_HOOKS"));
    record(&mut tally, &mut failures, "host kernel tests (auto hooks)", host_auto);
    let host_packet = cargo_test(
        live_tests("kernel").env("TRACER_HOOKS", "packet").env("TRACER_EXPECT_HOOK", "cgroup_skb"),
    );
    record(&mut tally, &mut failures, "host kernel tests (--hooks packet)", host_packet);
    let top = cargo_test(live_tests("top").arg("live_"));
    record(&mut tally, &mut failures, "tracer top on the live kernel", top);
    let prometheus = cargo_test(&mut live_tests("prometheus"));
    record(&mut tally, &mut failures, "Prometheus scraping a live tracer", prometheus);
    let scale = cargo_test(&mut live_tests("scale"));
    record(&mut tally, &mut failures, "30,000 live sockets", scale);

    if with_vm {
        eprintln!("xtask: [6/{STAGES}] kernel tests in a QEMU guest on Debian's 6.1 kernel");
        let guest = guest_tests("");
        record(&mut tally, &mut failures, "6.1 guest kernel tests", guest);
    } else {
        eprintln!("xtask: [6/{STAGES}] QEMU guest skipped (--no-vm)");
    }

    println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    if !failures.is_empty() {
        bail!("failed: {}", failures.join("; "));
    }
    Ok(())
}

/// `cargo fmt --check`, against rustfmt.toml.
fn format() -> Result<()> {
    let step = Step::start(&format!("[1/{STAGES}] checking the format (cargo fmt)"), "format")?;
    step.run(build::cargo().args(["fmt", "--all", "--check"]))
        .context("the code is not formatted as rustfmt.toml asks: run `cargo fmt --all`")?;
    step.done();
    Ok(())
}

/// Clippy with warnings as errors, under the workspace's lint policy (Cargo.toml): the default
/// members (agent, tracer-common, xtask) with their tests, then the kernel programs.
fn lints() -> Result<()> {
    let step = Step::start(&format!("[3/{STAGES}] lints (cargo clippy)"), "clippy")?;
    step.run(build::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"])).context(
        "clippy found problems in the agent, tracer-common or xtask: fix them; \
         `cargo clippy --fix --all-targets --allow-dirty` fixes some by itself",
    )?;
    step.run(&mut build::kernel_clippy()?).context(
        "clippy found problems in the kernel programs (tracer-ebpf): fix them; the command \
         above, with --fix after `clippy`, fixes some by itself",
    )?;
    step.done();
    Ok(())
}

fn record(tally: &mut Tally, failures: &mut Vec<String>, stage: &str, result: Result<Tally>) {
    match result {
        Ok(t) => {
            tally.add(t);
            if t.failed > 0 {
                failures.push(format!("{stage} ({} failed)", t.failed));
            }
        }
        Err(e) => {
            tally.failed += 1;
            failures.push(format!("{stage}: {e:#}"));
        }
    }
}

/// The ignored (root, live kernel) tests of one test target, one at a time.
fn live_tests(target: &str) -> Command {
    let mut cmd = build::cargo();
    cmd.args(["test", "--release", "--package", "tracer", "--test", target, "--"]).args([
        "--include-ignored",
        "--test-threads=1",
        "--nocapture",
    ]);
    cmd
}

/// Runs a cargo test command, streaming its output and counting results.
fn cargo_test(cmd: &mut Command) -> Result<Tally> {
    let mut child =
        cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("failed to start {cmd:?}"))?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().context("no stdout")?;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        tally.scan(&line);
    }
    let status = child.wait()?;
    if !status.success() && tally.failed == 0 {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(tally)
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

fn effective_uid() -> u32 {
    // std has no geteuid; `id -u` keeps xtask free of libc.
    setup::output(Command::new("id").arg("-u"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// The kernel-test executable cargo builds for the tracer package.
fn kernel_test_binary() -> Result<PathBuf> {
    let out = setup::output(build::cargo().args([
        "test",
        "--release",
        "--package",
        "tracer",
        "--test",
        "kernel",
        "--no-run",
        "--message-format=json",
    ]))?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "kernel")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the kernel test executable")
}

/// Boots Debian's 6.1 kernel and runs the kernel tests there three times: best hooks (fentry/
/// fexit), kprobes forced, packet-level fallback forced.
fn guest_tests(filter: &str) -> Result<Tally> {
    let tracer = build::tracer()?;
    let tests = kernel_test_binary()?;
    let cache = setup::workspace_root().join("target/vm");
    let kernel = vm::ensure_kernel(&cache)?;
    let nstat =
        setup::which("nstat").context("nstat is not installed (Debian package iproute2)")?;
    let ss = setup::which("ss").context("ss is not installed (Debian package iproute2)")?;
    let tc = setup::which("tc").context("tc is not installed (Debian package iproute2)")?;
    let mut files = vec![
        (tracer, "/bin/tracer".to_string()),
        (tests, "/bin/kernel-tests".to_string()),
        (nstat, "/usr/bin/nstat".to_string()),
        // In /bin, ahead of busybox's own tc applet.
        (ss, "/bin/ss".to_string()),
        (tc, "/bin/tc".to_string()),
        // /init installs it as /boot/config-$(uname -r): the agent reads CONFIG_HZ there.
        (kernel.config.clone(), "/boot/config".to_string()),
    ];
    let runs = [("auto", "fentry"), ("kprobe", "kprobe"), ("packet", "cgroup_skb")];
    // TRACER_IN_GUEST: tests that change host-wide settings (tcp_mem) run only here.
    let mut script = String::from("export TRACER_BIN=/bin/tracer TRACER_IN_GUEST=1\nrc=0\n");
    // ss needs the diag modules; netem gives the tests a real round-trip time on lo. A test
    // that needs one says so if it is missing.
    for module in &kernel.modules {
        let name = module.file_name().and_then(|n| n.to_str()).unwrap_or("module.ko");
        files.push((module.clone(), format!("/lib/modules/{name}")));
        script.push_str(&format!("insmod /lib/modules/{name} || echo \"insmod {name} failed\"\n"));
    }
    for (hooks, expect) in runs {
        script.push_str(&format!(
            "echo \"== guest kernel tests: --hooks {hooks}\"\n\
             TRACER_HOOKS={hooks} TRACER_EXPECT_HOOK={expect} /bin/kernel-tests --include-ignored --test-threads=1 --nocapture {filter} || rc=1\n"
        ));
    }
    script.push_str("exit $rc\n");
    let initrd = cache.join("initramfs.cpio.gz");
    vm::build_initramfs(&initrd, &files, &script)?;
    let (ok, console) = vm::boot(&kernel, &initrd, "", Duration::from_secs(20 * 60))?;
    let mut tally = Tally::default();
    for line in &console {
        tally.scan(line);
    }
    if !ok && tally.failed == 0 {
        tally.failed += 1;
    }
    Ok(tally)
}
