//! One lab instance: a tiny HTTP service that says who it is, reports its health and counts
//! its requests. Each application request reads the catalog from its region's store (when it
//! has one): a store that fails, errors or is too slow makes the request fail with 502, so
//! faults in the dependency are visible to users. `/health` never touches the store.
//! Runs as its own process (`simian lab instance`), or in-process in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

use crate::http::{self, Body};
use crate::store::CATALOG_KEY;
use crate::LabError;

/// How long one store read may take, connect to last byte, before the request fails.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// Who an instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub region: String,
    pub zone: String,
    pub id: String,
}

/// The instance's way to its store: a base URL and a keep-alive connection pool.
struct StoreLink {
    /// `http://127.0.0.1:PORT`, the store itself or the fault proxy in front of it.
    catalog_url: hyper::Uri,
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl StoreLink {
    fn new(base: &str) -> Result<StoreLink, String> {
        let base = base.trim_end_matches('/').to_string();
        let catalog_url = format!("{base}/kv/{CATALOG_KEY}")
            .parse()
            .map_err(|e| format!("bad store url `{base}`: {e}"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(STORE_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(StoreLink {
            catalog_url,
            base,
            client,
        })
    }

    /// Reads the catalog; `Ok(time taken)` on a 2xx with its whole body, else why not.
    async fn read_catalog(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let attempt = async {
            let mut req = Request::new(Empty::new());
            *req.uri_mut() = self.catalog_url.clone();
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| crate::edge::error_chain(&e))?;
            let status = resp.status();
            // Read the body: the answer is not complete (nor the connection reusable) before.
            resp.into_body()
                .collect()
                .await
                .map_err(|e| format!("read the answer: {}", crate::edge::error_chain(&e)))?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("answered {status}"))
            }
        };
        match tokio::time::timeout(STORE_TIMEOUT, attempt).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!("no answer within {}ms", STORE_TIMEOUT.as_millis())),
        }
    }
}

struct Shared {
    info: InstanceInfo,
    /// Application requests served; health checks and scrapes are not counted.
    requests: AtomicU64,
    /// Application requests that failed because the store did.
    store_errors: AtomicU64,
    /// `{"region":...,"zone":...,"instance":...`, without the closing brace.
    json_prefix: String,
    store: Option<StoreLink>,
}

/// Serves the instance's HTTP API on `listener` until dropped. With `store` (a base URL),
/// every application request reads the catalog from it first; without, none does.
pub async fn serve(listener: TcpListener, info: InstanceInfo, store: Option<String>) {
    let store = match store.as_deref().map(StoreLink::new).transpose() {
        Ok(s) => s,
        Err(e) => {
            // Validated by `run`; an in-process caller passing nonsense serves without a store.
            eprintln!("{}: {e}; serving without a store", info.id);
            None
        }
    };
    #[derive(serde::Serialize)]
    struct Whoami<'a> {
        region: &'a str,
        zone: &'a str,
        instance: &'a str,
    }
    let mut json_prefix = serde_json::to_string(&Whoami {
        region: &info.region,
        zone: &info.zone,
        instance: &info.id,
    })
    .expect("plain strings serialize");
    json_prefix.pop();
    let shared = Arc::new(Shared {
        info,
        requests: AtomicU64::new(0),
        store_errors: AtomicU64::new(0),
        json_prefix,
        store,
    });
    http::serve(listener, move |req| {
        let shared = shared.clone();
        async move { handle(&shared, req).await }
    })
    .await
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/health" => http::text(StatusCode::OK, "ok"),
        "/metrics" => {
            let i = &shared.info;
            let labels = format!(
                "region=\"{}\",zone=\"{}\",instance=\"{}\"",
                i.region, i.zone, i.id
            );
            let body = format!(
                "# HELP simian_lab_requests_total Application requests served (health checks and scrapes excluded).\n\
                 # TYPE simian_lab_requests_total counter\n\
                 simian_lab_requests_total{{{labels}}} {}\n\
                 # HELP simian_lab_store_errors_total Application requests answered 502 because the store failed.\n\
                 # TYPE simian_lab_store_errors_total counter\n\
                 simian_lab_store_errors_total{{{labels}}} {}\n",
                shared.requests.load(Ordering::Relaxed),
                shared.store_errors.load(Ordering::Relaxed),
            );
            let mut resp = http::text(StatusCode::OK, body);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => {
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let mut resp = match &shared.store {
                None => Response::new(http::full(format!("{}}}", shared.json_prefix))),
                Some(store) => match store.read_catalog().await {
                    Ok(took) => Response::new(http::full(format!(
                        "{},\"store_ms\":{:.3}}}",
                        shared.json_prefix,
                        took.as_secs_f64() * 1e3
                    ))),
                    Err(why) => {
                        shared.store_errors.fetch_add(1, Ordering::Relaxed);
                        return with_identity(
                            http::text(
                                StatusCode::BAD_GATEWAY,
                                format!("{}: store {}: {why}\n", shared.info.id, store.base),
                            ),
                            &shared.info,
                        );
                    }
                },
            };
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            with_identity(resp, &shared.info)
        }
    }
}

/// Adds the `x-simian-region`, `-zone` and `-instance` headers.
fn with_identity(mut resp: Response<Body>, info: &InstanceInfo) -> Response<Body> {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-simian-region", &info.region),
        ("x-simian-zone", &info.zone),
        ("x-simian-instance", &info.id),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    resp
}

/// The `simian lab instance` process: dies with its supervisor, binds `listen`, prints
/// `listening IP:PORT` once bound, serves until SIGTERM or SIGINT. `store` is the
/// base URL of its region's store (or of the proxy in front of it).
pub async fn run(
    info: InstanceInfo,
    listen: std::net::SocketAddr,
    parent_pid: Option<u32>,
    store: Option<String>,
) -> Result<i32, LabError> {
    if let Some(url) = &store {
        StoreLink::new(url).map_err(LabError::InvalidArgument)?;
    }
    let id = info.id.clone();
    crate::child::run(&id, listen, parent_pid, |listener| {
        serve(listener, info, store)
    })
    .await
}

/// Binds an in-process instance without a store on an ephemeral port; for tests of the edge
/// router.
#[cfg(test)]
pub(crate) async fn spawn_local(id: &str) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    spawn_with_store(id, None).await
}

/// Binds an in-process instance that reads `store` on an ephemeral port; for tests.
#[cfg(test)]
pub(crate) async fn spawn_with_store(
    id: &str,
    store: Option<String>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let zone = id.rsplit_once('-').unwrap().0.to_string();
    let region = zone.rsplit_once('-').unwrap().0.to_string();
    let info = InstanceInfo {
        region,
        zone,
        id: id.to_string(),
    };
    (addr, tokio::spawn(serve(listener, info, store)))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A bare HTTP/1.1 GET over a fresh connection: (status, raw head, body).
    pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn says_who_it_is_and_counts_requests() {
        let (addr, task) = spawn_local("us-east-b-2").await;
        let (status, _, body) = get(addr, "/health").await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        let (status, head, body) = get(addr, "/play").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            r#"{"region":"us-east","zone":"us-east-b","instance":"us-east-b-2"}"#
        );
        assert!(head.contains("x-simian-region: us-east\r\n"), "{head}");
        assert!(head.contains("x-simian-zone: us-east-b\r\n"), "{head}");
        assert!(
            head.contains("x-simian-instance: us-east-b-2\r\n"),
            "{head}"
        );
        get(addr, "/other?x=1").await;

        let (status, _, metrics) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            metrics.contains(
                "simian_lab_requests_total{region=\"us-east\",zone=\"us-east-b\",instance=\"us-east-b-2\"} 2\n"
            ),
            "{metrics}"
        );
        task.abort();
    }

    #[tokio::test]
    async fn reads_its_store_and_says_how_long_it_took() {
        let (store, _store_task) = crate::store::api::spawn_local("us-west").await;
        let (addr, task) = spawn_with_store("us-west-a-1", Some(format!("http://{store}"))).await;
        for _ in 0..3 {
            let (status, head, body) = get(addr, "/play").await;
            assert_eq!(status, 200, "{body}");
            assert!(head.contains("content-type: application/json"), "{head}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["instance"], "us-west-a-1");
            assert_eq!(v["region"], "us-west");
            let ms = v["store_ms"].as_f64().unwrap();
            assert!(ms > 0.0 && ms < STORE_TIMEOUT.as_millis() as f64, "{body}");
        }
        let (_, _, store_metrics) = get(store, "/metrics").await;
        assert!(
            store_metrics.contains(
                "simian_lab_store_requests_total{region=\"us-west\",op=\"get\",result=\"hit\"} 3\n"
            ),
            "{store_metrics}"
        );
        task.abort();
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_requests_with_502_but_not_health() {
        // A port nobody listens on any more.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let store = format!("http://{}", gone.local_addr().unwrap());
        drop(gone);
        let (addr, task) = spawn_with_store("us-east-a-1", Some(store.clone())).await;

        let (status, head, body) = get(addr, "/play").await;
        assert_eq!(status, 502, "{body}");
        assert!(
            body.starts_with(&format!("us-east-a-1: store {store}: ")),
            "{body}"
        );
        assert!(
            head.contains("x-simian-instance: us-east-a-1\r\n"),
            "{head}"
        );
        let (status, _, body) = get(addr, "/health").await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        let (_, _, metrics) = get(addr, "/metrics").await;
        assert!(
            metrics.contains("simian_lab_store_errors_total{region=\"us-east\",zone=\"us-east-a\",instance=\"us-east-a-1\"} 1\n"),
            "{metrics}"
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_store_that_never_answers_times_out_into_502_while_health_stays_fast() {
        // Accepts connections and holds them, like a SIGSTOPped store's kernel would.
        let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let store = format!("http://{}", hung.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = hung.accept().await {
                held.push(s);
            }
        });
        let (addr, task) = spawn_with_store("us-east-b-1", Some(store)).await;

        let play = tokio::spawn(get(addr, "/play"));
        // While the store read hangs, health checks answer at once.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        assert_eq!(get(addr, "/health").await.0, 200);
        assert!(started.elapsed() < Duration::from_millis(200));

        let (status, _, body) = play.await.unwrap();
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("no answer within 1000ms"), "{body}");
        task.abort();
    }

    #[tokio::test]
    async fn a_store_error_status_becomes_a_502() {
        let (store, _store_task) = crate::store::api::spawn_local("us-east").await;
        // The store answers 404 for an unknown key: point the instance at a prefix where
        // the catalog is missing.
        let (addr, task) =
            spawn_with_store("us-east-c-1", Some(format!("http://{store}/elsewhere"))).await;
        let (status, _, body) = get(addr, "/play").await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("answered 404 Not Found"), "{body}");
        task.abort();
    }
}
