//! The new-connection-per-request workload of `cargo xtask bench`: a private nginx (its own
//! config in target/bench/nginx, its own port, two workers, a 1 KiB reply from memory) and
//! `ab -c 20` without keep-alive, so every request opens and closes a TCP connection.

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{
    bench::{Sample, Workload},
    bench_stats::host_busy_cpu,
};

/// Below the ephemeral range (32768-60999), where a client socket of anyone may hold it.
const PORT: u16 = 29280;
/// Concurrent requests of ab.
const CONCURRENCY: &str = "20";

pub struct Http {
    nginx: Child,
}

impl Http {
    pub fn start(dir: &Path) -> Result<Http> {
        let dir = dir.join("nginx");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(&dir))
            .with_context(|| format!("cannot write {}", conf.display()))?;
        let nginx = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start nginx (is it installed? `cargo xtask setup`)")?;
        let mut http = Http { nginx };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
            if let Some(status) = http.nginx.try_wait()? {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                bail!("nginx exited ({status}) before listening on port {PORT}:\n{log}");
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on port {PORT} within 10 s (see {}/error.log)",
                    dir.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(http)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.nginx.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.nginx.wait();
    }
}

/// Two workers, each allowed 20,000 files; no access log; the same 1 KiB body for every path.
fn config(dir: &Path) -> String {
    let body = "x".repeat(1023);
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 10000; }}
http {{
    access_log off;
    keepalive_timeout 0;
    server {{
        listen 127.0.0.1:{PORT} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{body}\n";
        }}
    }}
}}
"#
    )
}

impl Workload for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn run(&mut self, secs: f64, _at_peak: &mut dyn FnMut()) -> Result<Sample> {
        let cpu_before = host_busy_cpu();
        // -t then a large -n: run for the time (-t alone caps at 50,000 requests).
        let out = Command::new("ab")
            .args(["-q", "-r", "-c", CONCURRENCY, "-t", &secs.ceil().max(1.0).to_string()])
            .args(["-n", "100000000", &format!("http://127.0.0.1:{PORT}/")])
            .stdin(Stdio::null())
            .output()
            .context("failed to run ab (is apache2-utils installed? `cargo xtask setup`)")?;
        let host_cpu = host_busy_cpu() - cpu_before;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("ab failed ({}): {}{}", out.status, text, String::from_utf8_lossy(&out.stderr));
        }
        let ab = parse_ab(&text)?;
        Ok(Sample {
            rate: ab.per_second,
            work: ab.complete as f64 / 1e3,
            host_cpu,
            note: if ab.failed > 0 { format!("{} failed", ab.failed) } else { String::new() },
        })
    }
}

#[derive(Debug, PartialEq)]
struct Ab {
    complete: u64,
    failed: u64,
    per_second: f64,
}

/// "Complete requests:", "Failed requests:" and "Requests per second:" from ab's report.
fn parse_ab(text: &str) -> Result<Ab> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .with_context(|| format!("ab's report has no {name:?} line"))
    };
    let number = |name: &str| -> Result<f64> {
        let v = field(name)?;
        v.parse().with_context(|| format!("ab's {name:?} is not a number: {v}"))
    };
    Ok(Ab {
        complete: number("Complete requests:")? as u64,
        failed: number("Failed requests:")? as u64,
        per_second: number("Requests per second:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_report() {
        let text = "Server Software:        nginx/1.22.1\nConcurrency Level:      20\nTime taken for tests:   3.000 seconds\nComplete requests:      36000\nFailed requests:        2\n   (Connect: 0, Receive: 0, Length: 2, Exceptions: 0)\nRequests per second:    12000.45 [#/sec] (mean)\n";
        assert_eq!(
            parse_ab(text).unwrap(),
            Ab { complete: 36000, failed: 2, per_second: 12000.45 }
        );
        assert!(parse_ab("Complete requests: 10\n").is_err());
    }
}
