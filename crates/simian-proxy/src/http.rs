//! HTTP/1.1 mode: a reverse proxy (hyper server, pooled hyper client to the upstream) whose
//! toxics apply per request rather than per chunk.
//!
//! For each request, each toxic of each stream is drawn with probability `toxicity`, then,
//! in chain order:
//! - `latency` (upstream stream: before the request is forwarded; downstream: after the
//!   upstream's response head arrived) waits one sample, measured precisely from the
//!   request's arrival or the response's;
//! - `http_error` answers with its status (upstream: the upstream never sees the request);
//! - `drop` closes the connection unanswered (`reset: true`: with a TCP RST);
//! - `timeout` holds the request `timeout` ms (0 = until the client gives up), then closes
//!   unanswered; `reset_peer` waits `timeout` ms, then resets the connection.
//!
//! A wait ends early when its toxic is removed or updated (so DELETE and POST /reset reach
//! requests in flight). Every response carries `x-simian-delay-us`: the latency this proxy
//! added to that request, in microseconds.

use std::net::TcpStream as StdTcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::delay::sleep_until_precise;
use crate::proxy::Ctx;
use crate::tcp::OpenGuard;
use crate::toxics::{Kind, Stream, Toxic, ToxicSet};

/// The header that reports the delay applied to a request.
pub const DELAY_HEADER: &str = "x-simian-delay-us";

type Body = Either<Incoming, Full<Bytes>>;
type Upstream = Client<HttpConnector, Incoming>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a toxic")
    }
}

impl std::error::Error for Dropped {}

pub async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    loop {
        let accepted = tokio::select! {
            _ = ctx.token.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                ctx.tracker
                    .spawn(serve(stream, ctx.clone(), client.clone()));
            }
            Err(e) => {
                crate::log(format_args!("proxy {}: accept: {e}", ctx.name));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, ctx: Ctx, client: Upstream) {
    let _open = OpenGuard::new(&ctx.metrics);
    let _ = stream.set_nodelay(true);
    // A second descriptor on the socket, to set SO_LINGER 0 before a reset (hyper owns the first).
    let Ok(std) = stream.into_std() else { return };
    let Ok(handle) = std.try_clone() else { return };
    let Ok(stream) = TcpStream::from_std(std) else {
        return;
    };
    let handle = Arc::new(handle);
    let token = ctx.token.clone();
    let service = hyper::service::service_fn(move |req| {
        let (ctx, client, handle) = (ctx.clone(), client.clone(), handle.clone());
        async move { handle_request(req, ctx, client, handle).await }
    });
    let conn = conn_builder().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = token.cancelled() => {}
        _ = conn => {}
    }
}

/// The HTTP/1.1 server's settings, shared with the fuzz target.
fn conn_builder() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    // The timer enables hyper's 30 s limit on reading a request's head.
    b.timer(hyper_util::rt::TokioTimer::new());
    b
}

/// For fuzzing only (`crates/simian-fuzz`): serves `input` as one client connection's
/// bytes, in memory, with the proxy's HTTP/1.1 server settings and its rewriting of each
/// request for the upstream ([`forward`]); each request's body is read to its end and
/// answered 200 (no upstream, no toxics). Returns the bytes the client got back.
#[doc(hidden)]
pub fn fuzz_http1(input: &[u8]) -> Vec<u8> {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
    }
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        let status = match forward(req, "127.0.0.1:8080") {
            Ok(up) => match up.into_body().collect().await {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::BAD_REQUEST,
            },
            Err(_) => StatusCode::BAD_REQUEST,
        };
        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok\n")));
        *resp.status_mut() = status;
        Ok::<_, std::convert::Infallible>(resp)
    });
    RT.with(|rt| {
        rt.block_on(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            // The input ends with the client's FIN; half-close support lets hyper still
            // answer every request pipelined before it, as a client that waits would see.
            let conn = conn_builder()
                .half_close(true)
                .serve_connection(TokioIo::new(server), service);
            let (mut rd, mut wr) = tokio::io::split(client);
            let write = async {
                let _ = wr.write_all(input).await;
                let _ = wr.shutdown().await;
            };
            // Read the answers as they come, so a full pipe never stalls the server.
            let read = async {
                let mut answers = Vec::new();
                let _ = rd.read_to_end(&mut answers).await;
                answers
            };
            tokio::join!(conn, write, read).2
        })
    })
}

/// What one toxic did to a request.
enum Act {
    Go,
    Answer(Response<Body>),
    Drop { reset: bool },
}

struct Req {
    ctx: Ctx,
    toxics: watch::Receiver<Arc<ToxicSet>>,
    applied: Duration,
}

impl Req {
    /// Waits until `at` (None = for ever) unless `toxic` is removed or changed first;
    /// returns how long it waited.
    async fn hold(&mut self, toxic: &Toxic, at: Option<Instant>) -> Duration {
        let start = Instant::now();
        loop {
            tokio::select! {
                _ = sleep(at) => return Instant::now() - start,
                r = self.toxics.changed() => {
                    let gone = r.is_err() || self.toxics.borrow_and_update().get(&toxic.name)
                        .is_none_or(|t| t.generation != toxic.generation);
                    if gone {
                        return Instant::now() - start;
                    }
                }
            }
        }
    }

    async fn apply(&mut self, t: &Arc<Toxic>, at: &mut Instant) -> Act {
        match &t.kind {
            Kind::Latency(l) => {
                let d = l.delay();
                *at += d;
                let waited_from = Instant::now();
                self.hold(t, Some(*at)).await;
                // The sample, unless the toxic went away mid-wait: then what was waited.
                self.applied += if Instant::now() >= *at {
                    d
                } else {
                    Instant::now() - waited_from
                };
                Act::Go
            }
            Kind::HttpError(e) => {
                self.ctx.metrics.http_error(e.status);
                let mut resp = Response::new(Either::Right(Full::new(Bytes::from(
                    e.body.clone().unwrap_or_else(|| {
                        format!(
                            "{} (injected by simian proxy toxic {})\n",
                            reason(e.status),
                            t.name
                        )
                    }),
                ))));
                *resp.status_mut() =
                    StatusCode::from_u16(e.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                for (k, v) in &e.headers {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        h.insert(k, v);
                    }
                }
                h.insert(
                    "x-simian-toxic",
                    HeaderValue::from_str(&t.name)
                        .unwrap_or(HeaderValue::from_static("http_error")),
                );
                Act::Answer(resp)
            }
            Kind::Drop(d) => Act::Drop { reset: d.reset },
            Kind::Timeout(x) => {
                let after = x.after();
                let waited = self.hold(t, after.map(|a| Instant::now() + a)).await;
                match after {
                    Some(a) if waited >= a => Act::Drop { reset: false },
                    _ => Act::Go,
                }
            }
            Kind::ResetPeer(r) => {
                let waited = self.hold(t, Some(Instant::now() + r.after())).await;
                if waited >= r.after() {
                    Act::Drop { reset: true }
                } else {
                    Act::Go
                }
            }
            // Refused for http-mode proxies when added (see Kind::check_mode).
            Kind::Bandwidth(_) | Kind::SlowClose(_) | Kind::Slicer(_) | Kind::LimitData(_) => {
                Act::Go
            }
        }
    }
}

async fn sleep(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until_precise(at).await,
        None => std::future::pending().await,
    }
}

fn drawn(set: &ToxicSet, stream: Stream) -> Vec<Arc<Toxic>> {
    use rand::RngExt;
    let mut rng = rand::rng();
    set.stream(stream)
        .filter(|t| rng.random::<f64>() < t.toxicity)
        .cloned()
        .collect()
}

async fn handle_request(
    req: Request<Incoming>,
    ctx: Ctx,
    client: Upstream,
    handle: Arc<StdTcpStream>,
) -> Result<Response<Body>, Dropped> {
    let t0 = Instant::now();
    ctx.metrics.http_requests.fetch_add(1, Relaxed);
    let mut toxics = ctx.toxics.clone();
    let set = toxics.borrow_and_update().clone();
    let (ups, downs) = (
        drawn(&set, Stream::Upstream),
        drawn(&set, Stream::Downstream),
    );
    let mut r = Req {
        ctx: ctx.clone(),
        toxics,
        applied: Duration::ZERO,
    };

    let mut at = t0;
    for t in &ups {
        match r.apply(t, &mut at).await {
            Act::Go => {}
            Act::Answer(resp) => return Ok(finish(resp, r.applied)),
            Act::Drop { reset } => return Err(drop_conn(&ctx, &handle, reset)),
        }
    }

    let upstream_req = match forward(req, &ctx.upstream) {
        Ok(u) => u,
        Err(e) => {
            return Ok(finish(
                plain(StatusCode::BAD_REQUEST, format!("bad request: {e}\n")),
                r.applied,
            ))
        }
    };
    let resp = match client.request(upstream_req).await {
        Ok(resp) => resp,
        Err(e) => {
            ctx.metrics.http_upstream_errors.fetch_add(1, Relaxed);
            let why = std::error::Error::source(&e)
                .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
            return Ok(finish(
                plain(
                    StatusCode::BAD_GATEWAY,
                    format!("upstream {} failed: {why}\n", ctx.upstream),
                ),
                r.applied,
            ));
        }
    };

    let t1 = Instant::now();
    let mut at = t1;
    for t in &downs {
        match r.apply(t, &mut at).await {
            Act::Go => {}
            Act::Answer(resp) => return Ok(finish(resp, r.applied)),
            Act::Drop { reset } => return Err(drop_conn(&ctx, &handle, reset)),
        }
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(finish(
        Response::from_parts(parts, Either::Left(body)),
        r.applied,
    ))
}

fn drop_conn(ctx: &Ctx, handle: &StdTcpStream, reset: bool) -> Dropped {
    ctx.metrics.http_drops.fetch_add(1, Relaxed);
    if reset {
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let _ = nix::sys::socket::setsockopt(handle, nix::sys::socket::sockopt::Linger, &linger);
    }
    Dropped
}

fn finish(mut resp: Response<Body>, applied: Duration) -> Response<Body> {
    resp.headers_mut()
        .insert(DELAY_HEADER, HeaderValue::from(applied.as_micros() as u64));
    resp
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn reason(status: u16) -> String {
    let s = StatusCode::from_u16(status).ok();
    match s.and_then(|s| s.canonical_reason()) {
        Some(r) => format!("{status} {r}"),
        None => status.to_string(),
    }
}

/// The request as the upstream gets it: same method, path, headers (Host included), body;
/// hop-by-hop headers removed.
fn forward(req: Request<Incoming>, upstream: &str) -> Result<Request<Incoming>, String> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{upstream}{pq}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(upstream) {
            parts.headers.insert(header::HOST, v);
        }
    }
    Ok(Request::from_parts(parts, body))
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::testutil::*;
    use crate::Mode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_pass_and_report_no_delay() {
        let (_s, addr) = proxied(http_upstream().await, Mode::Http).await;
        let r = call(addr, "GET", "/hello?x=1", "").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok /hello"));
        assert_eq!(r.header(super::DELAY_HEADER).as_deref(), Some("0"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn latency_applies_per_request_and_the_header_says_how_much() {
        let (s, addr) = proxied(http_upstream().await, Mode::Http).await;
        add_toxic(
            &s,
            "p",
            r#"{"type": "latency", "attributes": {"distribution": {"uniform": {"min": "20ms", "max": "60ms"}}}}"#,
        )
        .await;
        add_toxic(
            &s,
            "p",
            r#"{"type": "latency", "stream": "upstream", "attributes": {"latency": 10}}"#,
        )
        .await;
        for _ in 0..5 {
            let t = Instant::now();
            let r = call(addr, "GET", "/", "").await;
            let took = t.elapsed();
            assert_eq!(r.status, 200);
            let us: u64 = r.header(super::DELAY_HEADER).unwrap().parse().unwrap();
            assert!((30_000..=70_000).contains(&us), "{us}");
            assert!(took >= Duration::from_micros(us), "{took:?} < {us}us");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_error_answers_with_its_status_at_its_toxicity() {
        let (s, addr) = proxied(http_upstream().await, Mode::Http).await;
        add_toxic(
            &s,
            "p",
            r#"{"type": "http_error", "name": "e", "attributes": {"status": 429, "body": "slow down", "headers": {"retry-after": "1"}}}"#,
        )
        .await;
        let r = call(addr, "GET", "/", "").await;
        assert_eq!((r.status, r.body.as_str()), (429, "slow down"));
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        let r = call(
            s.api_addr(),
            "PATCH",
            "/proxies/p/toxics/e",
            r#"{"toxicity": 0.5}"#,
        )
        .await;
        assert_eq!(r.status, 200);
        let mut errors = 0;
        for _ in 0..200 {
            if call(addr, "GET", "/", "").await.status == 429 {
                errors += 1;
            }
        }
        assert!(
            (50..=150).contains(&errors),
            "{errors} of 200 at toxicity 0.5"
        );
        let m = call(s.api_addr(), "GET", "/metrics", "").await.body;
        assert!(
            m.contains(&format!(
                "simian_proxy_http_errors_injected_total{{proxy=\"p\",status=\"429\"}} {}",
                errors + 1
            )),
            "{m}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_closes_without_an_answer() {
        let (s, addr) = proxied(http_upstream().await, Mode::Http).await;
        add_toxic(&s, "p", r#"{"type": "drop", "stream": "upstream"}"#).await;
        let r = call(addr, "GET", "/", "").await;
        assert_eq!((r.status, r.body.as_str()), (0, ""), "{}", r.headers);
        add_toxic(
            &s,
            "p",
            r#"{"type": "drop", "name": "rst", "attributes": {"reset": true}}"#,
        )
        .await;
        call(
            s.api_addr(),
            "DELETE",
            "/proxies/p/toxics/drop_upstream",
            "",
        )
        .await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let e = c.read_to_end(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_request_is_released_when_its_toxic_goes() {
        let (s, addr) = proxied(http_upstream().await, Mode::Http).await;
        add_toxic(
            &s,
            "p",
            r#"{"type": "timeout", "attributes": {"timeout": 0}}"#,
        )
        .await;
        let t = Instant::now();
        let req = tokio::spawn(async move { call(addr, "GET", "/", "").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!req.is_finished());
        assert_eq!(call(s.api_addr(), "POST", "/reset", "").await.status, 204);
        let r = req.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(t.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_upstream_is_a_502() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (_s, addr) = proxied(dead, Mode::Http).await;
        let r = call(addr, "GET", "/", "").await;
        assert_eq!(r.status, 502, "{}", r.body);
    }

    #[test]
    fn the_fuzz_entry_point_answers_pipelined_and_chunked_requests() {
        let got = super::fuzz_http1(
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n\
              GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let got = String::from_utf8_lossy(&got);
        assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
        let bad = super::fuzz_http1(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n");
        assert!(String::from_utf8_lossy(&bad).starts_with("HTTP/1.1 400"));
    }
}
