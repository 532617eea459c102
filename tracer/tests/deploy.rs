//! The files in deploy/ are checked by the tools that will read them: promtool for the
//! alerting rules (syntax and their unit tests) and the Prometheus config, systemd-analyze for
//! the unit. No root or kernel needed; the live scrape is in tests/prometheus.rs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(rel)
}

/// Runs a checker and fails with everything it said unless it succeeded.
fn check(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} ({e}): `cargo xtask setup` installs it (Debian packages)")
    });
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{said}");
    said
}

#[test]
fn alerting_rules_pass_promtool_check_rules() {
    let said = check(
        Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(deploy("prometheus/tracer-alerts.yml")),
    );
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn alerting_rules_pass_their_unit_tests() {
    // The test file names the rules file relative to itself.
    let said = check(
        Command::new("promtool")
            .args(["test", "rules", "tracer-alerts.test.yml"])
            .current_dir(deploy("prometheus")),
    );
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn prometheus_config_passes_promtool_check_config() {
    check(
        Command::new("promtool")
            .args(["check", "config", "prometheus.yml"])
            .current_dir(deploy("prometheus")),
    );
}

/// systemd-analyze verify on the unit, with ExecStart pointed at the binary under test (the
/// shipped path, /usr/local/bin/tracer, exists only after installing).
#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(deploy("systemd/tracer.service")).expect("read the unit");
    let shipped = "ExecStart=/usr/local/bin/tracer ";
    assert!(unit.contains(shipped), "the unit starts {shipped}...");
    let unit = unit.replace(shipped, &format!("ExecStart={} ", env!("CARGO_BIN_EXE_tracer")));
    let dir = std::env::temp_dir().join(format!("tracer-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let path = dir.join("tracer.service");
    std::fs::write(&path, unit).expect("write the unit");
    let said = check(Command::new("systemd-analyze").arg("verify").arg(&path));
    let _ = std::fs::remove_dir_all(&dir);
    let complaints: Vec<&str> = said.lines().filter(|l| l.contains("tracer.service")).collect();
    assert!(complaints.is_empty(), "systemd-analyze verify:\n{said}");
}
