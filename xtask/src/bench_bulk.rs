//! The bulk workload of `cargo xtask bench`: one iperf3 TCP stream over loopback, from a private
//! iperf3 server that lives for the whole bench.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    bench::{Sample, Workload},
    bench_stats::host_busy_cpu,
};

/// Below the ephemeral range (32768-60999), where a client socket of anyone may hold it.
const PORT: u16 = 29201;

pub struct Bulk {
    server: Child,
}

impl Bulk {
    pub fn start() -> Result<Bulk> {
        let server = Command::new("iperf3")
            .args(["-s", "-p", &PORT.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "failed to start the iperf3 server (is iperf3 installed? `cargo xtask setup`)",
            )?;
        // iperf3 takes any connection as a test: give it time to listen instead of probing.
        thread::sleep(Duration::from_millis(300));
        Ok(Bulk { server })
    }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Workload for Bulk {
    fn name(&self) -> &'static str {
        "bulk"
    }

    fn run(&mut self, secs: f64, _at_peak: &mut dyn FnMut()) -> Result<Sample> {
        // iperf3 counts whole seconds.
        let seconds = secs.ceil().max(1.0).to_string();
        let mut last_error = String::new();
        // The server refuses a test while it is still closing the previous one: try again.
        for _ in 0..5 {
            let cpu_before = host_busy_cpu();
            let out = Command::new("iperf3")
                .args(["-c", "127.0.0.1", "-p", &PORT.to_string(), "-t", &seconds, "-J"])
                .stdin(Stdio::null())
                .output()
                .context("failed to run the iperf3 client")?;
            let host_cpu = host_busy_cpu() - cpu_before;
            let text = String::from_utf8_lossy(&out.stdout);
            match parse_iperf3(&text) {
                Ok((bytes, seconds)) if out.status.success() => {
                    return Ok(Sample {
                        rate: bytes / seconds,
                        work: bytes / 1e9,
                        host_cpu,
                        note: String::new(),
                    })
                }
                Ok(_) => last_error = format!("iperf3 exited with {}", out.status),
                Err(e) => last_error = format!("{e:#}"),
            }
            thread::sleep(Duration::from_millis(500));
        }
        bail!("the iperf3 client failed five times: {last_error}")
    }
}

/// Bytes received and seconds from `iperf3 -J`'s report (end.sum_received).
fn parse_iperf3(json: &str) -> Result<(f64, f64)> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 printed no JSON")?;
    if let Some(err) = v["error"].as_str() {
        bail!("iperf3: {err}");
    }
    let sum = &v["end"]["sum_received"];
    let bytes = sum["bytes"].as_f64().context("iperf3's report has no end.sum_received.bytes")?;
    let seconds =
        sum["seconds"].as_f64().context("iperf3's report has no end.sum_received.seconds")?;
    if bytes <= 0.0 || seconds <= 0.0 {
        bail!("iperf3 moved nothing ({bytes} bytes in {seconds} s)");
    }
    Ok((bytes, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_report() {
        let json = r#"{"start":{},"intervals":[],"end":{"sum_sent":{"bytes":10},"sum_received":{"start":0,"end":1.00335,"seconds":1.00335,"bytes":2917662720,"bits_per_second":23263369472.2679,"sender":true}}}"#;
        assert_eq!(parse_iperf3(json).unwrap(), (2917662720.0, 1.00335));
        let busy =
            r#"{"start":{},"end":{},"error":"the server is busy running a test. try again later"}"#;
        assert!(parse_iperf3(busy).unwrap_err().to_string().contains("busy"));
        assert!(parse_iperf3("not json").is_err());
    }
}
