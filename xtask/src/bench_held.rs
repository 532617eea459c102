//! The held-connections workload of `cargo xtask bench`: 20,000 idle loopback connections held
//! open (both ends local, so 40,000 sockets; opened at the churn's rate, so a tool meets no
//! faster burst than the target) while new connections open and close at a target rate of
//! 10,000 a second. Processes may hold 20,000 open files here, so the sockets are spread
//! over child processes of xtask itself (the hidden `bench-held` subcommand): four servers, each
//! accepting a quarter of the held connections and a quarter of the churn, four clients holding
//! 5,000 each, and one churn process.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::{Child, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{
    bench::{Sample, Workload},
    bench_stats::host_busy_cpu,
};

/// Held connections in all, and how many processes share each end of them.
pub const HELD: u32 = 20_000;
const PROCESSES: u16 = 4;
/// New connections a second the churn aims at.
pub const CHURN_TARGET: f64 = 10_000.0;
const CHURN_THREADS: u32 = 4;
/// Below the ephemeral range (32768-60999), where a client socket of anyone may hold them.
const HELD_PORT: u16 = 29300;
const CHURN_PORT: u16 = 29310;

/// The children of the last run, ended by finish().
#[derive(Default)]
pub struct Held {
    children: Option<Children>,
}

impl Workload for Held {
    fn name(&self) -> &'static str {
        "held"
    }

    fn finish(&mut self) {
        self.children = None;
    }

    fn run(&mut self, secs: f64, at_peak: &mut dyn FnMut()) -> Result<Sample> {
        self.children = None;
        let children = self.children.insert(Children(Vec::new()));
        let exe = std::env::current_exe().context("cannot find xtask's own binary")?;
        let spawn = |args: Vec<String>| -> Result<(Child, BufReader<ChildStdout>)> {
            let mut child = Command::new(&exe)
                .arg("bench-held")
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("failed to start {} bench-held", exe.display()))?;
            let out = BufReader::new(child.stdout.take().context("no stdout")?);
            Ok((child, out))
        };
        let per_process = HELD / u32::from(PROCESSES);
        let mut outs = Vec::new();
        for i in 0..PROCESSES {
            let (child, out) = spawn(vec![
                "server".into(),
                (HELD_PORT + i).to_string(),
                (CHURN_PORT + i).to_string(),
            ])?;
            children.0.push(child);
            outs.push(out);
        }
        for out in &mut outs {
            expect_line(out, "ready")?;
        }
        let started = Instant::now();
        for i in 0..PROCESSES {
            let (child, out) = spawn(vec![
                "client".into(),
                (HELD_PORT + i).to_string(),
                per_process.to_string(),
                (CHURN_TARGET / f64::from(PROCESSES)).to_string(),
            ])?;
            children.0.push(child);
            outs.push(out);
        }
        for out in &mut outs[usize::from(PROCESSES)..] {
            expect_line(out, "held")?;
        }
        let open_secs = started.elapsed().as_secs_f64();
        let cpu_before = host_busy_cpu();
        let ports: Vec<String> = (0..PROCESSES).map(|i| (CHURN_PORT + i).to_string()).collect();
        let (child, mut out) = spawn(vec![
            "churn".into(),
            ports.join(","),
            CHURN_TARGET.to_string(),
            secs.to_string(),
        ])?;
        children.0.push(child);
        let line = expect_line(&mut out, "churned")?;
        let host_cpu = host_busy_cpu() - cpu_before;
        // The peak: every held connection open and the churn's closed ones in the tables.
        at_peak();
        let (done, errors, elapsed) = parse_churn(&line)?;
        Ok(Sample {
            rate: done as f64 / elapsed,
            work: done as f64 / 1e3,
            host_cpu,
            note: format!(
                "{HELD} held (opened in {open_secs:.1} s){}",
                if errors > 0 { format!(", {errors} churn errors") } else { String::new() }
            ),
        })
    }
}

/// The children of one run; closing their stdin tells them to exit, which closes their sockets.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        for child in &mut self.0 {
            let end = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads lines until one starts with `prefix` (a minute at most: the child fails otherwise).
fn expect_line(out: &mut BufReader<ChildStdout>, prefix: &str) -> Result<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("a bench-held child exited before saying {prefix:?} (see its stderr above)");
        }
        if line.starts_with(prefix) {
            return Ok(line.trim().to_string());
        }
    }
}

/// "churned N errors E seconds S"
fn parse_churn(line: &str) -> Result<(u64, u64, f64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["churned", n, "errors", e, "seconds", s] => Ok((
            n.parse().context("churn count")?,
            e.parse().context("churn errors")?,
            s.parse().context("churn seconds")?,
        )),
        _ => bail!("unexpected line from the churn process: {line:?}"),
    }
}

/// The hidden `bench-held ROLE ...` subcommand: one process of the workload.
pub fn child(args: &[String]) -> Result<()> {
    raise_open_files();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["server", held, churn] => server(held.parse()?, churn.parse()?),
        ["client", port, count, rate] => client(port.parse()?, count.parse()?, rate.parse()?),
        ["churn", ports, rate, secs] => {
            let ports: Vec<u16> =
                ports.split(',').map(str::parse).collect::<Result<_, _>>().context("ports")?;
            churn(&ports, rate.parse()?, secs.parse()?)
        }
        _ => bail!("bench-held: expected server HELD_PORT CHURN_PORT | client PORT COUNT RATE | churn PORTS RATE SECS"),
    }
}

/// The soft limit on open files up to the hard one.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

fn listen(port: u16) -> Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
        .with_context(|| format!("cannot bind 127.0.0.1:{port}"))?;
    // The default 128 would drop SYNs while 5,000 clients connect at once.
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Accepts held connections (keeping them) and churn connections (closing them at once, so the
/// server closes first and TIME_WAIT stays on this side, leaving the clients' ports free), until
/// stdin closes.
fn server(held_port: u16, churn_port: u16) -> Result<()> {
    let held = listen(held_port)?;
    let churn = listen(churn_port)?;
    thread::spawn(move || {
        let mut kept = Vec::new();
        for conn in held.incoming().flatten() {
            kept.push(conn);
        }
    });
    thread::spawn(move || for _conn in churn.incoming() {});
    println!("ready");
    wait_for_stdin_eof();
    Ok(())
}

/// Opens `count` connections to `port` at `rate` a second and holds them until stdin closes.
fn client(port: u16, count: u32, rate: f64) -> Result<()> {
    let mut kept = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for i in 0..count {
        let due = started + Duration::from_secs_f64(f64::from(i) / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let conn = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("held connection {i} of {count} to port {port}"))?;
        kept.push(conn);
    }
    println!("held {count}");
    std::io::stdout().flush()?;
    wait_for_stdin_eof();
    Ok(())
}

/// Opens and closes connections for `secs`, round robin over `ports`, paced at `rate` a second
/// in all (as fast as it can when it falls behind).
fn churn(ports: &[u16], rate: f64, secs: f64) -> Result<()> {
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(secs);
    let per_thread = rate / f64::from(CHURN_THREADS);
    let threads: Vec<_> = (0..CHURN_THREADS)
        .map(|t| {
            let ports = ports.to_vec();
            thread::spawn(move || {
                let (mut done, mut errors) = (0u64, 0u64);
                let mut buf = [0u8; 64];
                let mut i = 0u64;
                loop {
                    let due = started + Duration::from_secs_f64(i as f64 / per_thread);
                    let now = Instant::now();
                    if now >= end || due >= end {
                        break;
                    }
                    if due > now {
                        thread::sleep(due - now);
                    }
                    let port = ports[((i + u64::from(t)) % ports.len() as u64) as usize];
                    i += 1;
                    // The server closes at once: read to its FIN, then close.
                    match TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| c.read(&mut buf))
                    {
                        Ok(_) => done += 1,
                        Err(_) => errors += 1,
                    }
                }
                (done, errors)
            })
        })
        .collect();
    let (mut done, mut errors) = (0, 0);
    for t in threads {
        let (d, e) = t.join().map_err(|_| anyhow::anyhow!("a churn thread panicked"))?;
        done += d;
        errors += e;
    }
    println!("churned {done} errors {errors} seconds {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}

fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_line() {
        assert_eq!(parse_churn("churned 30000 errors 2 seconds 3.001").unwrap(), (30000, 2, 3.001));
        assert!(parse_churn("held 5000").is_err());
    }
}
