//! The HTTP plumbing shared by instances, edge routers and the global router: one accept
//! loop, one body type, one way to pass a request on to another server.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Response body: either local bytes or a proxied stream.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body of known bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text response.
pub fn text(status: hyper::StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serves HTTP/1.1 with keep-alive on `listener` until dropped. Connections live in a
/// `JoinSet` owned by this future, so dropping or aborting it closes every connection,
/// the way a killed process would.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of fds or a connection reset while queued: keep serving.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        conns.spawn(serve_connection(stream, handler.clone()));
    }
}

/// Serves HTTP/1.1 with keep-alive on one accepted connection until it closes.
pub async fn serve_connection<F, Fut>(stream: tokio::net::TcpStream, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The client routers pass requests on with: keep-alive, buffered request bodies.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// A pooling client that gives up connecting after `connect_timeout`.
pub fn client(connect_timeout: Duration) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Headers that describe one hop, not the message; never forwarded.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// One request as a router received it, body read, ready to be sent on (again).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    /// Path and query, `/play?x=1`.
    pub path: String,
    /// Without hop-by-hop headers.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Outgoing {
    /// Reads `req`'s body (at most `max_body` bytes). `Err` when it is larger or broken.
    pub async fn read(req: Request<Incoming>, max_body: usize) -> Result<Outgoing, ()> {
        let (parts, body) = req.into_parts();
        let body = http_body_util::Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|_| ())?
            .to_bytes();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        Ok(Outgoing {
            method: parts.method,
            path: parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_string(),
            headers,
            body,
        })
    }

    /// Sends it to `base` (`http://HOST:PORT`) and waits at most `timeout` for response
    /// headers. The answer comes back without hop-by-hop headers, its body streaming.
    /// `Err` says why there is no answer.
    pub async fn send(
        &self,
        client: &Client,
        base: &str,
        timeout: Duration,
    ) -> Result<Response<Body>, String> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.headers_mut() = self.headers.clone();
        *req.uri_mut() = format!("{base}{}", self.path)
            .parse()
            .map_err(|_| "bad request target".to_string())?;
        match tokio::time::timeout(timeout, client.request(req)).await {
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(parts, body.boxed()))
            }
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no response within {}ms", timeout.as_millis())),
        }
    }
}

/// An error and its causes, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
