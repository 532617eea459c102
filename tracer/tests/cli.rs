//! Bad input gets a clear, one-screen error and a non-zero exit: never a panic or a backtrace.
//! These need no kernel access.

use std::process::{Command, Output};

fn tracer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracer")).args(args).output().expect("run tracer")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "a panic:\n{err}");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = tracer(&["watch", "--bogus"]);
    assert_clean_error(&out, 2, "unexpected argument '--bogus'");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    assert_clean_error(&tracer(&["frobnicate"]), 2, "unrecognized subcommand");
}

#[test]
fn bad_port_names_the_flag() {
    assert_clean_error(&tracer(&["watch", "--port", "70000"]), 2, "--port");
}

#[test]
fn bad_hook_mode_lists_the_choices() {
    assert_clean_error(&tracer(&["probes", "--hooks", "magic"]), 2, "auto, kprobe, packet");
}

#[test]
fn non_positive_duration_is_refused() {
    let out = tracer(&["watch", "--duration", "0"]);
    assert_clean_error(&out, 1, "--duration must be a positive number of seconds");
}

#[test]
fn window_shift_out_of_range_is_refused() {
    assert_clean_error(&tracer(&["watch", "--window-shift", "40"]), 1, "--window-shift");
}

#[test]
fn help_describes_the_tool() {
    let out = tracer(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("watch") && text.contains("probes") && text.contains("root"), "{text}");
}

/// Run as an unprivileged user (needs root to switch, and setpriv from util-linux).
#[test]
fn not_root_is_explained() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let out = tracer(&["probes"]);
        assert_clean_error(&out, 1, "must run as root");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_tracer"))
        .arg("probes")
        .output()
        .expect("run setpriv (util-linux)");
    assert_clean_error(&out, 1, "must run as root");
}

/// Colour on a terminal only, and never with NO_COLOR (`script` gives the child a terminal).
#[test]
fn colour_only_on_a_terminal_and_not_with_no_color() {
    let rec = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/zero-window-6.18.rec");
    let bin = env!("CARGO_BIN_EXE_tracer");
    let under_tty = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("{bin} replay {rec} --no-summary"), "/dev/null"]);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&cmd.output().expect("run script (util-linux)").stdout).into_owned()
    };
    assert!(under_tty(false).contains("\x1b["), "no colour on a terminal");
    assert!(!under_tty(true).contains("\x1b["), "colour despite NO_COLOR");
    let piped = tracer(&["replay", rec, "--no-summary"]);
    assert!(!String::from_utf8_lossy(&piped.stdout).contains("\x1b["), "colour into a pipe");
}
