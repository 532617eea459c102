//! The scrape endpoint: a minimal HTTP/1.1 server on tokio (one request per connection,
//! `Connection: close`), enough for Prometheus and a browser. `GET /metrics` is the exposition
//! (gzipped when the client accepts it), `GET /` a link page, anything else 404 or 405.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

use super::SharedMetrics;

/// The longest request head accepted (Prometheus sends a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;
/// A client that does not finish its request or read the answer in time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests served at once; connections past it are closed at once.
const MAX_CLIENTS: usize = 64;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const INDEX: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tracer</title></head>\n\
<body><h1>tracer</h1><p>TCP flow-control tracer: <a href=\"/metrics\">metrics</a></p></body></html>\n";

/// "9464" -> 127.0.0.1:9464; "0.0.0.0:9464", "[::1]:9464" as given; "localhost:9464" ->
/// 127.0.0.1:9464; a clear error naming --metrics otherwise.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    let t = s.trim();
    if let Ok(port) = t.parse::<u16>() {
        // A bare port stays on this host: metrics name processes and ports.
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = t.strip_prefix("localhost:").and_then(|p| p.parse::<u16>().ok()) {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--metrics {s:?}: a port is a number from 0 to 65535");
    }
    bail!(
        "--metrics {s:?}: expected PORT (binds 127.0.0.1), IPV4:PORT or [IPV6]:PORT, \
         e.g. 9464, 0.0.0.0:9464 or [::1]:9464"
    )
}

/// Binds the metrics address, with an error that says why it could not be used.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is already in use (another tracer or exporter on this port?)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "not allowed (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            }
            std::io::ErrorKind::AddrNotAvailable => "no interface of this host has that address",
            _ => "",
        };
        let why = if why.is_empty() { e.to_string() } else { format!("{why}: {e}") };
        anyhow!("--metrics {addr}: cannot serve metrics there: {why}")
    })
}

/// Serves GET /metrics (text/plain; version=0.0.4) and GET / forever, one task per client.
pub async fn serve(listener: TcpListener, metrics: SharedMetrics) {
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, and keep serving.
                eprintln!("tracer: warning: metrics endpoint: accept failed: {e}");
                sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let (metrics, clients) = (metrics.clone(), clients.clone());
        tokio::spawn(async move {
            // A client that goes away mid-answer is its own problem.
            let _ = handle(stream, &metrics).await;
            clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// What the request asked for, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    head_only: bool,
    path: String,
    gzip: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Ok(Request),
    /// Answered with this status, no body of interest.
    Error(u16),
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    gzip: bool,
    head_only: bool,
}

async fn handle(mut stream: TcpStream, metrics: &SharedMetrics) -> std::io::Result<()> {
    let head = match timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        // Too long, or not HTTP at all.
        Ok(Ok(None)) => return respond(&mut stream, error(431)).await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, error(408)).await,
    };
    let response = match parse(&head) {
        Parsed::Error(status) => error(status),
        Parsed::Ok(req) => route(&req, metrics),
    };
    respond(&mut stream, response).await
}

/// Reads up to the blank line that ends the request head. None if it is longer than MAX_HEAD;
/// a client that closes early gets an empty head (a 400).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        if let Some(end) = find_end(&head) {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Some(head));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

fn find_end(head: &[u8]) -> Option<usize> {
    let crlf = head.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = head.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse(head: &[u8]) -> Parsed {
    let Ok(text) = std::str::from_utf8(head) else { return Parsed::Error(400) };
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Parsed::Error(400);
    };
    if first.next().is_some() || !version.starts_with("HTTP/1.") {
        return Parsed::Error(400);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Parsed::Error(405),
    };
    let path = target.split(['?', '#']).next().unwrap_or("").to_string();
    let gzip = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept-encoding")
                && value.split(',').any(|v| {
                    let v = v.trim();
                    let (coding, q) = v.split_once(';').unwrap_or((v, ""));
                    coding.trim().eq_ignore_ascii_case("gzip") && !q.replace(' ', "").eq("q=0")
                })
        })
    });
    Parsed::Ok(Request { head_only, path, gzip })
}

fn route(req: &Request, metrics: &SharedMetrics) -> Response {
    let (status, content_type, body) = match req.path.as_str() {
        "/metrics" => (200, CONTENT_TYPE, metrics.lock().scrape().into_bytes()),
        "/" => (200, "text/html; charset=utf-8", INDEX.as_bytes().to_vec()),
        _ => (404, "text/plain; charset=utf-8", b"not found: try /metrics\n".to_vec()),
    };
    Response {
        status,
        content_type,
        body,
        gzip: req.gzip && status == 200,
        head_only: req.head_only,
    }
}

fn error(status: u16) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{} {}\n", status, reason(status)).into_bytes(),
        gzip: false,
        head_only: false,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

async fn respond(stream: &mut TcpStream, r: Response) -> std::io::Result<()> {
    let (body, encoding) = match r.gzip.then(|| gzip(&r.body)).flatten() {
        Some(zipped) => (zipped, "Content-Encoding: gzip\r\n"),
        None => (r.body, ""),
    };
    let allow = if r.status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{encoding}{allow}\
         Connection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        if !r.head_only {
            stream.write_all(&body).await?;
        }
        stream.shutdown().await
    };
    timeout(WRITE_TIMEOUT, write).await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The body gzipped; None if that failed (it is then sent as is).
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_addr_cases() {
        let ok = |s: &str| parse_addr(s).map(|a| a.to_string()).unwrap_or_else(|e| format!("{e}"));
        assert_eq!(ok("9464"), "127.0.0.1:9464");
        assert_eq!(ok(" 9464 "), "127.0.0.1:9464");
        assert_eq!(ok("0.0.0.0:9464"), "0.0.0.0:9464");
        assert_eq!(ok("[::1]:9464"), "[::1]:9464");
        assert_eq!(ok("[::]:9464"), "[::]:9464");
        assert_eq!(ok("localhost:9464"), "127.0.0.1:9464");
        for bad in ["", "99999", "abc", ":9464", "0.0.0.0", "::1:9464", "example.com:9464"] {
            let err = parse_addr(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("--metrics"), "{bad:?} should fail naming --metrics: {err:?}");
        }
        assert!(parse_addr("99999").err().is_some_and(|e| e.to_string().contains("0 to 65535")));
    }

    #[test]
    fn parses_requests() {
        let req = |s: &str| parse(s.as_bytes());
        assert_eq!(
            req("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, deflate"),
            Parsed::Ok(Request { head_only: false, path: "/metrics".into(), gzip: true })
        );
        assert_eq!(
            req("HEAD / HTTP/1.0\r\naccept-encoding: identity, gzip;q=0"),
            Parsed::Ok(Request { head_only: true, path: "/".into(), gzip: false })
        );
        assert_eq!(req("POST /metrics HTTP/1.1"), Parsed::Error(405));
        assert_eq!(req(""), Parsed::Error(400));
        assert_eq!(req("GET /metrics"), Parsed::Error(400));
        assert_eq!(req("GET /metrics SPDY/3"), Parsed::Error(400));
        assert_eq!(parse(&[0xff, 0xfe, b'\r', b'\n']), Parsed::Error(400));
    }
}
