//! `tracer top` in a real terminal: tmux runs it on a recording (no root, no kernel), and the
//! tests read the screen with `capture-pane`, type keys with `send-keys`, and check that quitting
//! gives the terminal back (normal screen, cooked mode).
//!
//! Needs tmux (Debian: `apt-get install tmux`; `cargo xtask test` installs it). One test, run
//! as root by `cargo xtask test`, watches a live zero-window stall on this host's kernel.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// How long a screen may take to show what is expected.
const TIMEOUT: Duration = Duration::from_secs(20);
/// The two connections of the recording, as rows start.
const CLIENT: &str = "127.0.0.1:43386 > 127.0.0.1:7777";
const SERVER: &str = "127.0.0.1:7777 > 127.0.0.1:43386";
/// Any sparkline cell with data.
const SPARK: &[char] = &['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█', '·'];

fn recording() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zero-window-6.18.rec")
        .display()
        .to_string()
}

/// `s` quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A tmux server of our own (its own socket, no user config) with one 200x50 session running
/// `command`; killed, and its socket removed, on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = std::env::temp_dir().join(format!(
            "tracer-top-test-{}-{}.tmux",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let tmux = Tmux { socket };
        let out = tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "200",
            "-y",
            "50",
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        match Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            // Wide characters (the sparkline) need a UTF-8 locale in tmux.
            .env("LC_ALL", "C.UTF-8")
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "tmux is not installed: install it (Debian: apt-get install tmux; `cargo xtask \
                 test` does) to run the tracer top tests"
            ),
            Err(e) => panic!("failed to run tmux: {e}"),
        }
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format of the pane, e.g. `#{alternate_on}`.
    fn format(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", "top", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Keys by tmux name (`Enter`, `Escape`, `C-c`) or single characters.
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let out = self.run(&["send-keys", "-t", "top", key]);
            assert!(
                out.status.success(),
                "send-keys {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Text typed as is.
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "top", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text}");
    }

    /// The screen once `ready` holds on it and it is the same on two captures in a row (a
    /// capture can catch a frame half drawn); fails with the last screen after TIMEOUT.
    fn wait(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut previous = String::new();
        loop {
            let screen = self.screen();
            if ready(&screen) && screen == previous {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen was:\n{screen}");
            }
            previous = screen;
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `tracer top ARGS` in the pane, then (after it exits) its status and whether the terminal
/// was left in raw mode; the shell then stays so the pane can still be read.
fn top_command(args: &str) -> String {
    let bin = quote(env!("CARGO_BIN_EXE_tracer"));
    let script = format!(
        "{bin} top {args}; echo EXITED:$?; \
         case \"$(stty -a)\" in *-icanon*) echo TTY:raw;; *) echo TTY:cooked;; esac; \
         exec sleep 600"
    );
    format!("sh -c {}", quote(&script))
}

/// Table rows on the screen (they start with an address), top to bottom.
/// The connection rows, without the mark of a row that is the other end of the one above.
fn rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .map(|l| l.strip_prefix("└ ").unwrap_or(l))
        .filter(|l| l.starts_with("127.0.0.1:"))
        .collect()
}

fn row<'a>(screen: &'a str, conn: &str) -> &'a str {
    rows(screen)
        .into_iter()
        .find(|l| l.starts_with(conn))
        .unwrap_or_else(|| panic!("no row for {conn} on the screen:\n{screen}"))
}

#[test]
fn shows_a_recording_sorts_filters_and_restores_the_terminal() {
    let tmux = Tmux::start(&top_command(&format!("--from {} --fast", quote(&recording()))));
    let screen = tmux.wait("both connections and the end of the recording", |s| {
        rows(s).len() == 2 && s.contains("ended")
    });

    // Both connections, their zero-window time (3.3 s a side), the client's probes, and a
    // sparkline of the last minute.
    assert!(screen.contains("2 connections"), "{screen}");
    for conn in [CLIENT, SERVER] {
        let line = row(&screen, conn);
        assert!(line.contains("python3/16334"), "{line}");
        assert!(line.contains("3.3 s"), "no zero-window time: {line}");
        assert!(line.contains(SPARK), "no sparkline: {line}");
    }
    let client = row(&screen, CLIENT);
    assert!(client.contains(" 5 ") && client.contains("100%"), "probes and rwnd: {client}");
    // The alert pane has the stall alerts.
    assert!(screen.contains("alerts, newest first"), "{screen}");
    assert!(
        screen.lines().any(|l| l.starts_with('│') && l.contains("zero_window_stall")),
        "no zero_window_stall in the alert pane:\n{screen}"
    );
    // Worst first: the client (100% limited by the peer's window, probing) leads, and the
    // server, the other end of the same connection on this host, hangs under it.
    assert!(rows(&screen)[0].starts_with(CLIENT), "{screen}");
    let marked = format!("└ {SERVER}");
    assert!(screen.lines().any(|l| l.starts_with(&marked)), "{screen}");

    // s: sort by connection (addresses, then ports as numbers): 7777 before 43386.
    tmux.keys(&["s"]);
    let screen = tmux.wait("sort by connection", |s| s.contains("sort: connection, a-z"));
    assert!(rows(&screen)[0].starts_with(SERVER), "{screen}");
    // S: reversed.
    tmux.keys(&["S"]);
    let screen = tmux.wait("reversed sort", |s| s.contains("sort: connection, z-a"));
    assert!(rows(&screen)[0].starts_with(CLIENT), "{screen}");

    // A port both connections have keeps both.
    tmux.keys(&["/"]);
    tmux.type_text("7777");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the 7777 filter", |s| s.contains("filter: \"7777\" (2 of 2)"));
    assert_eq!(rows(&screen).len(), 2, "{screen}");
    // The client's own end narrows it to one.
    tmux.keys(&["/"]);
    tmux.type_text("43386 >");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the client filter", |s| s.contains("(1 of 2)"));
    assert_eq!(rows(&screen), vec![row(&screen, CLIENT)], "{screen}");
    // Esc at the prompt clears it.
    tmux.keys(&["/", "Escape"]);
    let screen = tmux.wait("the filter cleared", |s| s.contains("filter: none"));
    assert_eq!(rows(&screen).len(), 2, "{screen}");
    assert_eq!(tmux.format("#{alternate_on}"), "1", "top draws on the alternate screen");

    // q: exits 0, off the alternate screen, cursor shown, the tty back in cooked mode.
    tmux.keys(&["q"]);
    let screen = tmux.wait("the exit", |s| s.contains("EXITED:") && s.contains("TTY:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert!(screen.contains("TTY:cooked"), "raw mode left on:\n{screen}");
    assert!(!screen.contains("connection (local > peer)"), "the view is still up:\n{screen}");
    assert_eq!(tmux.format("#{alternate_on}"), "0", "still on the alternate screen");
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "the cursor is still hidden");
}

#[test]
fn plays_at_the_recordings_pace_and_quits_on_ctrl_c() {
    let started = Instant::now();
    let tmux = Tmux::start(&top_command(&format!("--from {}", quote(&recording()))));
    // The recording's events span 3.5 s (gaps capped at 1 s): played at that pace, not at once.
    // (Only a lower bound: a loaded machine makes it slower, never faster.)
    let screen = tmux.wait("the end of the recording", |s| s.contains("ended"));
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "played in {:?}: not at the recording's pace",
        started.elapsed()
    );
    assert_eq!(rows(&screen).len(), 2, "{screen}");
    tmux.keys(&["?"]);
    tmux.wait("the help overlay", |s| s.contains("sort by the next column"));
    tmux.keys(&["C-c"]);
    let screen = tmux.wait("the exit", |s| s.contains("EXITED:") && s.contains("TTY:"));
    assert!(screen.contains("EXITED:0") && screen.contains("TTY:cooked"), "{screen}");
    assert_eq!(tmux.format("#{alternate_on}"), "0");
}

/// `--metrics` serves what the view shows: a replay's zero windows and probes, scraped while the
/// view is up (the endpoint's address is printed before the view takes the screen).
#[test]
fn serves_metrics_beside_the_view() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = free.local_addr().expect("its address").port();
    drop(free);
    let args = format!("--from {} --fast --metrics 127.0.0.1:{port}", quote(&recording()));
    let tmux = Tmux::start(&top_command(&args));
    tmux.wait("the end of the recording", |s| rows(s).len() == 2 && s.contains("ended"));
    let text = scrape(port);
    // 3 zero-window episodes a side and 5 probes in the recording (`tracer replay --json`). Its
    // opens predate the `active` flag, so each end counts under its own port.
    for line in [
        r#"tcp_flow_zero_window_episodes_total{port="7777",process="python3",side="local"} 3"#,
        r#"tcp_flow_zero_window_episodes_total{port="43386",process="python3",side="peer"} 3"#,
        r#"tcp_flow_zero_window_probes_total{port="43386",process="python3"} 5"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    tmux.keys(&["q"]);
    let screen = tmux.wait("the exit", |s| s.contains("EXITED:") && s.contains("TTY:"));
    assert!(screen.contains("EXITED:0") && screen.contains("TTY:cooked"), "{screen}");
}

/// GET /metrics on 127.0.0.1:`port`, the body.
fn scrape(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the endpoint");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("the request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

/// The terminal going away (window closed, ssh dropped) ends top: nothing is left behind
/// spinning on a dead terminal.
#[test]
fn exits_when_its_terminal_goes_away() {
    let tmux = Tmux::start(&top_command(&format!("--from {}", quote(&recording()))));
    tmux.wait("the table", |s| rows(s).len() == 2);
    let shell = tmux.format("#{pane_pid}");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the pane's shell");
    let top: u32 = children.split_whitespace().next().expect("tracer top").parse().unwrap();
    // Killing the tmux server closes the terminal under tracer top.
    drop(tmux);
    let state = || {
        std::fs::read_to_string(format!("/proc/{top}/stat"))
            .ok()
            .and_then(|s| s.rsplit(") ").next().map(|r| r.chars().next().unwrap_or('?')))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(state(), Some(c) if c != 'Z') {
        if Instant::now() > deadline {
            let left = state();
            // SAFETY: kill on the pid of the process this test started.
            unsafe { libc::kill(top as i32, libc::SIGKILL) };
            panic!("tracer top (pid {top}) outlived its terminal by 5 s (state {left:?})");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn refuses_without_a_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["top", "--from", &recording(), "--fast"])
        .output()
        .expect("run tracer top");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a terminal") && stderr.contains("tracer watch"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing drawn into a pipe");
}

/// Live on this host's kernel: a zero-window stall on loopback (in a network namespace of its
/// own) shows up as it happens, for that connection and process only, and stays in the table
/// once both ends closed.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn live_zero_window_stall_shows_as_it_happens() {
    let port = common::test_port() + 6;
    let tmux = Tmux::start(&top_command(&format!("--port {port}")));
    tmux.wait("attached, with an empty table", |s| s.contains("no connections yet"));
    let transfer = thread::spawn(move || {
        common::in_new_netns(move || {
            common::zero_window_transfer(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        })
    });
    let receiver = format!("127.0.0.1:{port} > 127.0.0.1:");
    let sender_to = format!(" > 127.0.0.1:{port}");
    let ours = format!("/{}", std::process::id());
    // The reader sleeps 1.5 s before its first read: the stall is on screen meanwhile, with
    // the process named (at accept, before it read anything).
    let screen = tmux.wait("the receiver at zero window", |s| {
        rows(s).iter().any(|l| l.starts_with(&receiver) && l.contains("zero local"))
    });
    let line = rows(&screen).into_iter().find(|l| l.starts_with(&receiver)).unwrap();
    assert!(line.contains(&ours), "the receiving process is named: {line}");
    transfer.join().expect("the transfer");
    let screen = tmux.wait("both ends closed", |s| s.contains("2 connections (2 closed)"));
    let rows = rows(&screen);
    assert_eq!(rows.len(), 2, "only this connection: {screen}");
    let sender = rows.iter().find(|l| l.contains(&sender_to)).expect("the sender's row");
    // connection, process, local wnd, peer wnd, in flight, state, zero time, probes, ...
    let cols: Vec<&str> = sender.split_whitespace().collect();
    let probes: u32 = cols
        .iter()
        .position(|c| *c == "s")
        .and_then(|i| cols.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no probe count after the zero time: {sender}"));
    assert!(probes >= 1, "the sender probed the zero window: {sender}");
    assert!(rows.iter().all(|l| l.contains(&ours) && l.contains("closed")), "{screen}");
    tmux.keys(&["q"]);
    let screen = tmux.wait("the exit", |s| s.contains("EXITED:") && s.contains("TTY:"));
    assert!(screen.contains("EXITED:0") && screen.contains("TTY:cooked"), "{screen}");
}
