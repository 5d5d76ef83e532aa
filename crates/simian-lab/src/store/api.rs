//! The store's HTTP/1.1 API, and the `simian lab store` process that serves it.
//!
//! ```text
//! GET  /kv/{key}   200 + the value (header x-simian-seq: the write that set it), or 404
//! PUT  /kv/{key}   body = the value; 204 (header x-simian-seq: this write)
//! GET  /health        200 "ok"
//! GET  /replication   JSON: per peer region sent, acked, queue_depth, lag_ms, connected;
//!                     per origin region the writes applied from it
//! GET  /metrics       Prometheus text: requests by operation, keys, last write number,
//!                     replication queue depth, lag, sent and applied
//! ```
//!
//! The same port takes replication connections from the other regions' stores: one that
//! starts with `#` speaks the protocol of [`super::repl`], anything else HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::repl::{PeerAddr, Replication};
use super::Kv;
use crate::http::{self, Body};
use crate::LabError;

/// Largest value a `PUT` may carry.
const MAX_VALUE: usize = 1 << 20;

/// Requests served, by what they did; health checks and scrapes are not counted.
#[derive(Default)]
struct Counters {
    get_hit: AtomicU64,
    get_miss: AtomicU64,
    put: AtomicU64,
    rejected: AtomicU64,
}

struct Shared {
    region: String,
    kv: Arc<Kv>,
    repl: Arc<Replication>,
    counters: Counters,
}

/// Serves `kv` (its region's store) and takes replication connections on `listener` until
/// dropped. Connections live in a `JoinSet` owned by this future, so dropping it closes them.
pub async fn serve(listener: TcpListener, kv: Arc<Kv>, repl: Arc<Replication>) {
    let shared = Arc::new(Shared {
        region: kv.region().to_string(),
        kv,
        repl,
        counters: Counters::default(),
    });
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let mut first = [0u8; 1];
            let peek = std::time::Duration::from_secs(10);
            if let Ok(Ok(1)) = tokio::time::timeout(peek, stream.peek(&mut first)).await {
                if first[0] == b'#' {
                    return shared.repl.receive(stream).await;
                }
            }
            http::serve_connection(stream, move |req| {
                let shared = shared.clone();
                async move { handle(&shared, req).await }
            })
            .await
        });
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let c = &shared.counters;
    let path = req.uri().path().to_string();
    if path == "/health" {
        return http::text(StatusCode::OK, "ok");
    }
    if path == "/metrics" {
        return metrics(shared);
    }
    if path == "/replication" {
        let json = serde_json::to_vec_pretty(&shared.repl.report()).expect("reports serialize");
        let mut resp = Response::new(http::full(json));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return resp;
    }
    let Some(key) = path.strip_prefix("/kv/").filter(|k| !k.is_empty()) else {
        c.rejected.fetch_add(1, Ordering::Relaxed);
        return http::text(
            StatusCode::NOT_FOUND,
            "not found: the store serves /kv/{key}, /health and /metrics\n",
        );
    };
    match *req.method() {
        Method::GET | Method::HEAD => match shared.kv.get(key) {
            Some(value) => {
                c.get_hit.fetch_add(1, Ordering::Relaxed);
                let mut resp = Response::new(http::full(value.data));
                let h = resp.headers_mut();
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                h.insert("x-simian-seq", HeaderValue::from(value.seq));
                resp
            }
            None => {
                c.get_miss.fetch_add(1, Ordering::Relaxed);
                http::text(StatusCode::NOT_FOUND, format!("no key `{key}`\n"))
            }
        },
        Method::PUT => {
            let key = key.to_string();
            let value = match Limited::new(req.into_body(), MAX_VALUE).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    c.rejected.fetch_add(1, Ordering::Relaxed);
                    return http::text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("values are at most {MAX_VALUE} bytes\n"),
                    );
                }
            };
            let record = match shared.kv.put(&key, value) {
                Ok(record) => record,
                Err(e) => {
                    c.rejected.fetch_add(1, Ordering::Relaxed);
                    return http::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot log the write: {e}\n"),
                    );
                }
            };
            c.put.fetch_add(1, Ordering::Relaxed);
            let mut resp = http::text(StatusCode::NO_CONTENT, "");
            resp.headers_mut()
                .insert("x-simian-seq", HeaderValue::from(record.seq));
            resp
        }
        _ => {
            c.rejected.fetch_add(1, Ordering::Relaxed);
            let mut resp = http::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "use GET or PUT on /kv/{key}\n",
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD, PUT"));
            resp
        }
    }
}

fn metrics(shared: &Shared) -> Response<Body> {
    let c = &shared.counters;
    let region = &shared.region;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let body = format!(
        "# HELP simian_lab_store_requests_total Key-value requests served (health checks and scrapes excluded).\n\
         # TYPE simian_lab_store_requests_total counter\n\
         simian_lab_store_requests_total{{region=\"{region}\",op=\"get\",result=\"hit\"}} {}\n\
         simian_lab_store_requests_total{{region=\"{region}\",op=\"get\",result=\"miss\"}} {}\n\
         simian_lab_store_requests_total{{region=\"{region}\",op=\"put\",result=\"ok\"}} {}\n\
         simian_lab_store_requests_total{{region=\"{region}\",op=\"other\",result=\"rejected\"}} {}\n\
         # HELP simian_lab_store_keys Keys held.\n\
         # TYPE simian_lab_store_keys gauge\n\
         simian_lab_store_keys{{region=\"{region}\"}} {}\n\
         # HELP simian_lab_store_last_seq Number of the last write applied.\n\
         # TYPE simian_lab_store_last_seq gauge\n\
         simian_lab_store_last_seq{{region=\"{region}\"}} {}\n",
        n(&c.get_hit),
        n(&c.get_miss),
        n(&c.put),
        n(&c.rejected),
        shared.kv.len(),
        shared.kv.last_seq(),
    );
    let body = body + &replication_metrics(region, &shared.repl.report());
    let mut resp = http::text(StatusCode::OK, body);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The replication families: `from` is this region for what it ships, the origin for what
/// it applied.
fn replication_metrics(region: &str, report: &super::repl::Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let peers = |f: &dyn Fn(&super::repl::PeerReport) -> String| {
        report
            .peers
            .iter()
            .map(|(to, p)| (format!("from=\"{region}\",to=\"{to}\""), f(p)))
            .collect::<Vec<_>>()
    };
    family(
        "simian_lab_replication_queue_depth",
        "gauge",
        "Local writes the peer region has not acknowledged.",
        peers(&|p| p.queue_depth.to_string()),
    );
    family(
        "simian_lab_replication_lag_seconds",
        "gauge",
        "Age of the oldest write the peer region has not acknowledged (0: none).",
        peers(&|p| format!("{:.3}", p.lag_ms as f64 / 1000.0)),
    );
    family(
        "simian_lab_replication_sent_total",
        "counter",
        "Writes sent to the peer region, resends included.",
        peers(&|p| p.sent.to_string()),
    );
    family(
        "simian_lab_replication_connected",
        "gauge",
        "Whether the link to the peer region is up.",
        peers(&|p| u8::from(p.connected).to_string()),
    );
    family(
        "simian_lab_replication_applied_total",
        "counter",
        "Writes replicated from the origin region and applied here.",
        report
            .applied
            .iter()
            .map(|(from, n)| (format!("from=\"{from}\",to=\"{region}\""), n.to_string()))
            .collect(),
    );
    out
}

/// The `simian lab store` process: `region`'s store, preloaded, on `listen`. Same
/// conventions as an instance: dies with its supervisor, prints `listening IP:PORT` once
/// bound, serves until SIGTERM or SIGINT.
///
/// With a `lab_dir`, the store keeps its write-ahead file there (`store-<region>.wal`) and
/// ships its writes to each of `peers`, at the address `replication.json` there gives.
pub async fn run(
    region: String,
    listen: std::net::SocketAddr,
    parent_pid: Option<u32>,
    lab_dir: Option<std::path::PathBuf>,
    peers: Vec<String>,
) -> Result<i32, LabError> {
    let id = super::store_id(&region);
    let (kv, peers) = match &lab_dir {
        Some(dir) => {
            let wal = dir.join(format!("{id}.wal"));
            let kv = Kv::open(&region, &wal)
                .map_err(|e| LabError::io(format!("open {}", wal.display()), e))?;
            let links = PeerAddr::File(dir.join("replication.json"));
            let peers = peers.into_iter().map(|p| (p, links.clone())).collect();
            (kv, peers)
        }
        None => (Kv::preloaded(&region), Vec::new()),
    };
    let kv = Arc::new(kv);
    crate::child::run(&id, listen, parent_pid, |listener| async move {
        let repl = Replication::start(kv.clone(), peers);
        serve(listener, kv, repl).await
    })
    .await
}

/// Binds an in-process store on an ephemeral port; for tests.
#[cfg(test)]
pub(crate) async fn spawn_local(
    region: &str,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kv = Arc::new(Kv::preloaded(region));
    let repl = Replication::start(kv.clone(), Vec::new());
    (addr, tokio::spawn(serve(listener, kv, repl)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::tests::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A raw request with a body over a fresh connection: (status, raw head, body).
    async fn send(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn reads_writes_and_counts_keys() {
        let (addr, task) = spawn_local("us-east").await;
        assert_eq!(get(addr, "/health").await.0, 200);

        let (status, _, body) = get(addr, "/kv/catalog").await;
        assert_eq!(status, 200, "the catalog is preloaded");
        assert!(body.contains("\"region\":\"us-east\""), "{body}");

        let (status, _, body) = get(addr, "/kv/nope").await;
        assert_eq!((status, body.as_str()), (404, "no key `nope`\n"));

        let (status, head, _) = send(addr, "PUT", "/kv/user-42", b"hello").await;
        assert_eq!(status, 204);
        let seq = head
            .lines()
            .find_map(|l| l.strip_prefix("x-simian-seq: "))
            .unwrap()
            .to_string();
        let (status, head, body) = get(addr, "/kv/user-42").await;
        assert_eq!((status, body.as_str()), (200, "hello"));
        assert!(head.contains(&format!("x-simian-seq: {seq}\r\n")), "{head}");

        // Overwrite; the version moves on.
        assert_eq!(send(addr, "PUT", "/kv/user-42", b"again").await.0, 204);
        assert_eq!(get(addr, "/kv/user-42").await.2, "again");

        assert_eq!(send(addr, "DELETE", "/kv/user-42", b"").await.0, 405);
        assert_eq!(get(addr, "/kv/").await.0, 404);

        let (status, _, metrics) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        for line in [
            "simian_lab_store_requests_total{region=\"us-east\",op=\"get\",result=\"hit\"} 3\n",
            "simian_lab_store_requests_total{region=\"us-east\",op=\"get\",result=\"miss\"} 1\n",
            "simian_lab_store_requests_total{region=\"us-east\",op=\"put\",result=\"ok\"} 2\n",
            "simian_lab_store_requests_total{region=\"us-east\",op=\"other\",result=\"rejected\"} 2\n",
            "simian_lab_store_keys{region=\"us-east\"} 3\n",
        ] {
            assert!(metrics.contains(line), "{line} not in\n{metrics}");
        }
        task.abort();
    }
}
