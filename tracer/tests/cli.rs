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

/// Port 0 matches no connection and pid 0 would mean no filter at all: both are refused.
#[test]
fn zero_port_or_pid_is_refused() {
    assert_clean_error(&tracer(&["watch", "--port", "0"]), 2, "0 is not in 1..=65535");
    assert_clean_error(&tracer(&["top", "--pid", "0"]), 2, "--pid");
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

/// Every shell gets a completion script; bash's parses and offers the subcommands and flags.
#[test]
fn completions_for_every_shell_and_bash_parses() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = tracer(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("watch") && script.contains("port"), "{shell}:\n{script}");
    }
    let bash = tracer(&["completions", "bash"]).stdout;
    let dir = std::env::temp_dir().join(format!("tracer-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tracer.bash");
    std::fs::write(&file, bash).unwrap();
    // Source it and ask for the words after `tracer w` and `tracer watch --p`.
    let complete = |words: &str, cword: usize| {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; _tracer tracer; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = Command::new("bash").args(["--norc", "-c", &script]).output().expect("run bash");
        assert!(out.status.success(), "bash: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let subcommands = complete("tracer w", 1);
    assert!(subcommands.lines().any(|l| l == "watch"), "tracer w<TAB>: {subcommands}");
    let flags = complete("tracer watch --p", 2);
    for flag in ["--port", "--pid", "--prog-stats"] {
        assert!(flags.lines().any(|l| l == flag), "tracer watch --p<TAB> lacks {flag}: {flags}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tracer man` prints tracer(1); `--dir` writes it and one page per subcommand, each of which
/// groff formats without a warning and which documents that subcommand's flags.
#[test]
fn man_pages_render_and_cover_every_subcommand() {
    let out = tracer(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH tracer 1"), "not roff:\n{page}");

    let dir = std::env::temp_dir().join(format!("tracer-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = tracer(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pages = [
        ("tracer.1", "tracer-watch(1)"),
        ("tracer-watch.1", "--window-shift"),
        ("tracer-record.1", "--events"),
        ("tracer-replay.1", "--no-events"),
        ("tracer-top.1", "--from"),
        ("tracer-serve.1", "--metrics"),
        ("tracer-report.1", "--format"),
        ("tracer-probes.1", "--hooks"),
        ("tracer-completions.1", "powershell"),
        ("tracer-man.1", "--dir"),
    ];
    for (name, needle) in pages {
        let path = dir.join(name);
        assert!(path.exists(), "{name} was not written");
        // -ww: all warnings; -z: format but print nothing; -Tutf8 for the text a terminal shows.
        let check = Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(&path)
            .output()
            .expect("run groff (Debian package groff-base)");
        assert!(check.status.success() && check.stderr.is_empty(), "{name}: {}", stderr(&check));
        let text = Command::new("groff")
            .args(["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"])
            .arg(&path)
            .output()
            .expect("run groff");
        let text = String::from_utf8_lossy(&text.stdout);
        // groff turns '-' into U+2010 in some places; compare with plain hyphens.
        let text = text.replace(['\u{2010}', '\u{2212}'], "-");
        assert!(text.contains(needle), "{name} lacks {needle}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A man page directory that cannot be created is an error naming it.
#[test]
fn man_dir_that_cannot_be_made_is_explained() {
    assert_clean_error(
        &tracer(&["man", "--dir", "/proc/no-such/man1"]),
        1,
        "cannot create the man page directory /proc/no-such/man1",
    );
}

/// `tracer replay rec | head` ends quietly when the reader goes away: no error, no panic. The
/// pipe's read end is closed before tracer starts, so its first write fails with EPIPE.
#[test]
fn output_closed_by_the_reader_ends_quietly() {
    let rec = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/zero-window-6.18.rec");
    for args in [
        vec!["replay", rec],
        vec!["replay", "--json", rec],
        vec!["completions", "bash"],
        vec!["man"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .args(&args)
            .stdout(writer)
            .output()
            .expect("run tracer");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("error") && !err.contains("panicked"), "{args:?}:\n{err}");
    }
}
