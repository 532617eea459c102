//! The scrape endpoint: HTTP/1.1 on hyper, on the agent's tokio runtime. `GET /metrics` is the
//! exposition (OpenMetrics or text 0.0.4 by the Accept header, gzipped when the client accepts
//! it), `GET /` a link page; other paths get 404, other methods 405, and requests hyper cannot
//! parse 400 (or 431 past `MAX_HEAD`).
//!
//! A local user must not be able to blind the monitoring by holding connections open, so a
//! stalled connection costs a file descriptor and a small buffer, never a scraper's turn:
//! - a request head must arrive within `HEADER_TIMEOUT` of the connection opening or of the
//!   previous answer (so an idle kept-alive connection ends then too), and an answer the
//!   client stops reading for `WRITE_TIMEOUT` ends its connection;
//! - up to `MAX_CONNECTIONS` are open at once; past that, a new connection closes the one that
//!   has waited longest since it last sent a request, instead of being refused.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::sleep;
use tokio_io_timeout::TimeoutStream;

use super::format::Format;
use super::SharedMetrics;

/// How much the endpoint lets clients hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Connections open at once before the least recently active one is closed for a new one.
    pub max_connections: usize,
    /// Time for a request head to arrive, on a new connection or an idle kept-alive one.
    pub header_timeout: Duration,
    /// Time a client may leave an answer unread before its connection is closed.
    pub write_timeout: Duration,
}

/// A file descriptor and a small buffer each; a scraper needs one. Lowered to half the
/// open-files limit where that is lower (systemd's default is 1024), so that a flood meets this
/// cap, which closes old connections, rather than EMFILE, which refuses new ones.
const MAX_CONNECTIONS: usize = 2048;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest request head accepted (Prometheus sends a few hundred bytes); a longer one gets
/// 431. The read buffer, hence what a half-sent head can hold, is twice that at most.
const MAX_HEAD: usize = 8 * 1024;

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

/// Serves GET /metrics and GET / forever, one task per connection.
pub async fn serve(listener: TcpListener, metrics: SharedMetrics) {
    let limits = Limits {
        max_connections: MAX_CONNECTIONS.min(open_files_limit() / 2).max(16),
        header_timeout: HEADER_TIMEOUT,
        write_timeout: WRITE_TIMEOUT,
    };
    serve_with(listener, metrics, limits).await
}

/// The soft limit on open files, or usize::MAX when unlimited.
fn open_files_limit() -> usize {
    crate::host::limits::open_files()
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// `serve` within `limits`.
pub(super) async fn serve_with(listener: TcpListener, metrics: SharedMetrics, limits: Limits) {
    let clients = Arc::new(Clients::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD)
        .max_buf_size(2 * MAX_HEAD);
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
        let (client, evicted) = Clients::admit(&clients);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            client.active();
            let response = respond(&req, &metrics);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(Box::pin(stream)), service);
        tokio::spawn(async move {
            // Either way the connection (and its `Client`, in the service) is dropped: closed.
            tokio::select! {
                // A client that goes away, times out or sends garbage is its own problem.
                _ = connection => {}
                _ = evicted => {}
            }
        });
    }
}

/// The open connections, by when each last sent a request (or opened).
struct Clients {
    max: usize,
    state: Mutex<ClientsState>,
}

#[derive(Default)]
struct ClientsState {
    /// Ticks on each admission and request: a logical clock for "least recently active".
    clock: u64,
    next_id: u64,
    /// Connection id -> its last activity, and the sender whose drop closes it.
    live: HashMap<u64, (u64, oneshot::Sender<()>)>,
    /// Last activity -> connection id, oldest first.
    by_activity: BTreeMap<u64, u64>,
}

/// One open connection's place in `Clients`, released when the connection is dropped.
struct Client {
    clients: Arc<Clients>,
    id: u64,
}

impl Clients {
    fn new(max: usize) -> Self {
        Clients { max: max.max(1), state: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, ClientsState> {
        // The state stays consistent: each update is a few map operations.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a new connection, closing the least recently active one if all are taken;
    /// the receiver completes when this one is closed that way in turn.
    fn admit(clients: &Arc<Clients>) -> (Client, oneshot::Receiver<()>) {
        let mut s = clients.lock();
        while s.live.len() >= clients.max {
            let Some((_, oldest)) = s.by_activity.pop_first() else { break };
            // Dropping its sender completes the task's `evicted`, which drops the connection.
            s.live.remove(&oldest);
        }
        let (tx, rx) = oneshot::channel();
        s.clock += 1;
        s.next_id += 1;
        let (id, now) = (s.next_id, s.clock);
        s.live.insert(id, (now, tx));
        s.by_activity.insert(now, id);
        (Client { clients: Arc::clone(clients), id }, rx)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().live.len()
    }
}

impl Client {
    /// The connection sent a request: it is the most recently active now.
    fn active(&self) {
        let mut s = self.clients.lock();
        s.clock += 1;
        let now = s.clock;
        let Some((last, _)) = s.live.get_mut(&self.id) else { return };
        let before = std::mem::replace(last, now);
        s.by_activity.remove(&before);
        s.by_activity.insert(now, self.id);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut s = self.clients.lock();
        if let Some((last, _)) = s.live.remove(&self.id) {
            s.by_activity.remove(&last);
        }
    }
}

/// The answer to one request. The metrics are locked only while they are encoded.
fn respond<B>(req: &Request<B>, metrics: &SharedMetrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let text = metrics.lock().scrape(format);
            let Ok(text) = text else {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "the metrics could not be read\n");
            };
            let mut r = Response::new(Full::default());
            let headers = r.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            headers.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
            let zipped = accepts_gzip(req).then(|| gzip(text.as_bytes())).flatten();
            let body = match zipped {
                Some(zipped) => {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    zipped
                }
                None => text.into_bytes(),
            };
            *r.body_mut() = Full::new(Bytes::from(body));
            r
        }
        "/" => {
            let mut r = Response::new(Full::new(Bytes::from_static(INDEX.as_bytes())));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            r
        }
        _ => plain(StatusCode::NOT_FOUND, "not found: try /metrics\n"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// True when an Accept-Encoding header lists gzip without refusing it (`q=0`).
fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers().get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(
        |value| {
            value.split(',').any(|v| {
                let (coding, q) = v.split_once(';').unwrap_or((v, ""));
                coding.trim().eq_ignore_ascii_case("gzip") && q.replace(' ', "") != "q=0"
            })
        },
    )
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
    fn gzip_only_when_accepted() {
        let req = |v: &str| Request::builder().header("accept-encoding", v).body(()).unwrap();
        assert!(accepts_gzip(&req("gzip, deflate")));
        assert!(accepts_gzip(&req("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&req("identity, gzip;q=0")));
        assert!(!accepts_gzip(&req("deflate")));
        assert!(!accepts_gzip(&Request::new(())));
    }

    #[test]
    fn a_new_connection_past_the_limit_closes_the_least_recently_active() {
        let clients = Arc::new(Clients::new(3));
        let (a, mut a_evicted) = Clients::admit(&clients);
        let (b, mut b_evicted) = Clients::admit(&clients);
        let (_c, mut c_evicted) = Clients::admit(&clients);
        // `a` sent a request since: `b` has waited longest.
        a.active();
        let (_d, _) = Clients::admit(&clients);
        assert_eq!(clients.len(), 3);
        assert!(b_evicted.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
        assert_eq!(a_evicted.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        // A connection that ends frees its place without closing another.
        drop(b);
        drop(a);
        assert_eq!(clients.len(), 2);
        let (_e, _) = Clients::admit(&clients);
        assert_eq!(c_evicted.try_recv(), Err(oneshot::error::TryRecvError::Empty));
    }
}
