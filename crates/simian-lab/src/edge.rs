//! The per-region edge router: a reverse proxy that spreads requests round-robin over the
//! region's instances it believes healthy, retries at once elsewhere when an attempt fails
//! before response headers, and health-checks every instance in the background.
//!
//! Which instances a request may try, and in what order, is decided in one place,
//! [`Inner::candidates`]. Two things come before it: failover (a region steered at 100% to
//! another forwards what still reaches its edge to that region's edge, once, like Zuul) and
//! the region's capacity (a token bucket; beyond it the edge answers 503).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::capacity::TokenBucket;
use crate::http::{self, Body, Client, Outgoing};
use crate::steering::Steering;

pub(crate) use crate::http::error_chain;

/// Response header naming the region whose edge answered.
pub const EDGE_HEADER: &str = "x-simian-edge";
/// Request and response header of a request an edge in failover passed on: its region.
pub const FORWARDED_FROM_HEADER: &str = "x-simian-forwarded-from";

/// How long an edge in failover waits for the other region's edge to start answering.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The knobs of an edge router.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// One attempt on one instance, until response headers. A SIGSTOPped instance still
    /// accepts connections (the kernel does), so only this timeout routes around it.
    pub attempt_timeout: Duration,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// Request bodies are buffered so that they can be replayed on another instance.
    pub max_request_body: usize,
    /// Requests per second served at most; beyond, 503 `over capacity`. None: no limit.
    pub capacity: Option<u32>,
    /// Where to forward everything while the region is steered away at 100%.
    pub failover: Option<Failover>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            attempt_timeout: Duration::from_millis(300),
            health_interval: Duration::from_millis(250),
            health_timeout: Duration::from_millis(200),
            max_request_body: 1 << 20,
            capacity: None,
            failover: None,
        }
    }
}

/// The lab's steering and the other regions' edges, for failover.
#[derive(Debug, Clone)]
pub struct Failover {
    pub steering: Arc<Steering>,
    /// Region → its edge's base URL, `http://127.0.0.1:PORT`.
    pub peers: BTreeMap<String, String>,
}

/// What an edge did besides serving, for the global router's `/metrics`.
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// Requests refused over capacity.
    pub shed: AtomicU64,
    /// Requests forwarded to another region's edge in failover.
    pub forwarded: AtomicU64,
}

/// One instance behind an edge, and whether the edge believes it healthy.
#[derive(Debug)]
pub struct Backend {
    pub id: String,
    pub zone: String,
    base: String,
    healthy: AtomicBool,
}

impl Backend {
    /// Starts out unhealthy until its first health check passes.
    pub fn new(id: impl Into<String>, zone: impl Into<String>, addr: SocketAddr) -> Self {
        Backend {
            id: id.into(),
            zone: zone.into(),
            base: format!("http://{addr}"),
            healthy: AtomicBool::new(false),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a health verdict; logs transitions only.
    fn set_healthy(&self, region: &str, healthy: bool, why: &str) {
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            let verdict = if healthy { "up" } else { "down" };
            eprintln!("edge {region}: {} {verdict}: {why}", self.id);
        }
    }
}

struct Inner {
    region: String,
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
    client: Client,
    config: EdgeConfig,
    edge_header: HeaderValue,
    bucket: Option<TokenBucket>,
    stats: Arc<EdgeStats>,
}

/// A running edge router. Dropping it stops it and closes its connections.
pub struct Edge {
    addr: SocketAddr,
    inner: Arc<Inner>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Edge {
    /// Serves `region`'s edge on `listener` and starts health-checking `backends`
    /// (the first check runs at once).
    pub fn start(
        region: &str,
        listener: TcpListener,
        backends: Vec<Backend>,
        config: EdgeConfig,
    ) -> std::io::Result<Edge> {
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            region: region.to_string(),
            edge_header: HeaderValue::from_str(region).unwrap_or(HeaderValue::from_static("?")),
            backends: backends.into_iter().map(Arc::new).collect(),
            next: AtomicUsize::new(0),
            client: http::client(config.attempt_timeout),
            bucket: config.capacity.map(TokenBucket::new),
            stats: Arc::default(),
            config,
        });

        let mut tasks = Vec::new();
        for backend in &inner.backends {
            let (inner, backend) = (inner.clone(), backend.clone());
            tasks.push(tokio::spawn(health_loop(inner, backend)).abort_handle());
        }
        let proxy = inner.clone();
        let server = http::serve(listener, move |req| {
            let inner = proxy.clone();
            async move { inner.handle(req).await }
        });
        tasks.push(tokio::spawn(server).abort_handle());
        Ok(Edge { addr, inner, tasks })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn region(&self) -> &str {
        &self.inner.region
    }

    pub fn stats(&self) -> Arc<EdgeStats> {
        self.inner.stats.clone()
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.inner.backends
    }

    pub fn is_healthy(&self, id: &str) -> bool {
        self.backend(id).is_some_and(|b| b.is_healthy())
    }

    /// Marks an instance up now (e.g. right after its supervisor saw it answer), rather than
    /// at the next health check.
    pub fn mark_up(&self, id: &str, why: &str) {
        if let Some(b) = self.backend(id) {
            b.set_healthy(&self.inner.region, true, why);
        }
    }

    fn backend(&self, id: &str) -> Option<&Arc<Backend>> {
        self.inner.backends.iter().find(|b| b.id == id)
    }
}

impl Inner {
    /// The instances to try, in order: the healthy ones round-robin, then, as a last resort,
    /// the ones believed down (one may have come back since its last check).
    fn candidates(&self) -> Vec<Arc<Backend>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (mut up, mut down): (Vec<_>, Vec<_>) =
            self.backends.iter().cloned().partition(|b| b.is_healthy());
        if !up.is_empty() {
            let k = n % up.len();
            up.rotate_left(k);
        }
        if !down.is_empty() {
            let k = n % down.len();
            down.rotate_left(k);
        }
        up.extend(down);
        up
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let Ok(out) = Outgoing::read(req, self.config.max_request_body).await else {
            return self.local(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large or broken\n",
            );
        };
        if let Some(resp) = self.failover(&out).await {
            return resp;
        }
        if self.bucket.as_ref().is_some_and(|b| !b.take()) {
            self.stats.shed.fetch_add(1, Ordering::Relaxed);
            return self.local(StatusCode::SERVICE_UNAVAILABLE, "over capacity\n");
        }

        let candidates = self.candidates();
        for backend in &candidates {
            match out
                .send(&self.client, &backend.base, self.config.attempt_timeout)
                .await
            {
                Ok(mut resp) => {
                    resp.headers_mut().insert(
                        HeaderName::from_static(EDGE_HEADER),
                        self.edge_header.clone(),
                    );
                    return resp;
                }
                // Failed before response headers: nothing reached the client, so try the
                // next one.
                Err(why) => backend.set_healthy(&self.region, false, &why),
            }
        }
        self.local(
            StatusCode::BAD_GATEWAY,
            format!(
                "no instance in {} answered ({} tried)\n",
                self.region,
                candidates.len()
            ),
        )
    }

    /// While this region is steered at 100% elsewhere: the answer of that region's edge to
    /// `out`, marked with [`FORWARDED_FROM_HEADER`] both ways. A request that already was
    /// forwarded is served here: one hop, never a loop.
    async fn failover(&self, out: &Outgoing) -> Option<Response<Body>> {
        let failover = self.config.failover.as_ref()?;
        let forwarded_from = HeaderName::from_static(FORWARDED_FROM_HEADER);
        if out.headers.contains_key(&forwarded_from) {
            return None;
        }
        let to = failover.steering.failover(&self.region)?;
        let Some(base) = failover.peers.get(&to) else {
            return Some(self.local(
                StatusCode::BAD_GATEWAY,
                format!(
                    "{} fails over to {to}, whose edge is unknown\n",
                    self.region
                ),
            ));
        };
        let mut out = out.clone();
        out.headers
            .insert(forwarded_from.clone(), self.edge_header.clone());
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        Some(match out.send(&self.client, base, FORWARD_TIMEOUT).await {
            Ok(mut resp) => {
                resp.headers_mut()
                    .insert(forwarded_from, self.edge_header.clone());
                resp
            }
            Err(why) => {
                let mut resp = self.local(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "{} fails over to {to}, whose edge did not answer: {why}\n",
                        self.region
                    ),
                );
                resp.headers_mut()
                    .insert(forwarded_from, self.edge_header.clone());
                resp
            }
        })
    }

    fn local(&self, status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
        let mut resp = http::text(status, body);
        resp.headers_mut().insert(
            HeaderName::from_static(EDGE_HEADER),
            self.edge_header.clone(),
        );
        resp
    }
}

/// `GET /health` on `backend` every interval; the verdict of each check replaces the last.
async fn health_loop(inner: Arc<Inner>, backend: Arc<Backend>) {
    let mut tick = tokio::time::interval(inner.config.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let check = async {
            let uri = format!("{}/health", backend.base)
                .parse()
                .map_err(|_| "bad url".to_string())?;
            let mut req = Request::new(Full::new(Bytes::new()));
            *req.uri_mut() = uri;
            let resp = inner
                .client
                .request(req)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status();
            // Read the body so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("health check answered {status}"))
            }
        };
        let verdict = match tokio::time::timeout(inner.config.health_timeout, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!(
                "health check got no answer within {}ms",
                inner.config.health_timeout.as_millis()
            )),
        };
        match verdict {
            Ok(()) => backend.set_healthy(&inner.region, true, "health check passed"),
            Err(why) => backend.set_healthy(&inner.region, false, &why),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::instance::{spawn_local, tests::get};

    fn config(health_interval: Duration) -> EdgeConfig {
        EdgeConfig {
            health_interval,
            ..EdgeConfig::default()
        }
    }

    async fn start(backends: Vec<Backend>, config: EdgeConfig) -> Edge {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Edge::start("us-east", listener, backends, config).unwrap()
    }

    async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `n` requests through the edge; counts answers by instance (or status).
    async fn spray(edge: &Edge, n: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let (status, head, _) = get(edge.addr(), "/play").await;
            assert!(head.contains("x-simian-edge: us-east\r\n"), "{head}");
            let key = if status == 200 {
                let line = head.lines().find(|l| l.starts_with("x-simian-instance:"));
                line.unwrap().split(": ").nth(1).unwrap().to_string()
            } else {
                status.to_string()
            };
            *seen.entry(key).or_default() += 1;
        }
        seen
    }

    async fn three_instances() -> (Vec<Backend>, Vec<tokio::task::JoinHandle<()>>) {
        let mut backends = Vec::new();
        let mut tasks = Vec::new();
        for id in ["us-east-a-1", "us-east-b-1", "us-east-c-1"] {
            let (addr, task) = spawn_local(id).await;
            backends.push(Backend::new(id, &id[..9], addr));
            tasks.push(task);
        }
        (backends, tasks)
    }

    fn all_healthy(edge: &Edge) -> bool {
        edge.backends().iter().all(|b| b.is_healthy())
    }

    #[tokio::test]
    async fn round_robin_spreads_load_evenly() {
        let (backends, _tasks) = three_instances().await;
        let edge = start(backends, EdgeConfig::default()).await;
        wait_until("all healthy", || all_healthy(&edge)).await;
        let seen = spray(&edge, 30).await;
        let expected: BTreeMap<String, usize> = [
            ("us-east-a-1".to_string(), 10),
            ("us-east-b-1".to_string(), 10),
            ("us-east-c-1".to_string(), 10),
        ]
        .into();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_killed_instance_is_retried_around_without_errors() {
        let (backends, mut tasks) = three_instances().await;
        // Health checks only at start: routing around must come from retries alone.
        let edge = start(backends, config(Duration::from_secs(3600))).await;
        wait_until("all healthy", || all_healthy(&edge)).await;
        // Warm the pool so the edge holds keep-alive connections to every instance.
        spray(&edge, 6).await;

        let killed = tasks.remove(1);
        killed.abort();
        let _ = killed.await;
        let seen = spray(&edge, 30).await;
        assert_eq!(seen.get("us-east-b-1"), None, "{seen:?}");
        assert_eq!(seen.values().sum::<usize>(), 30);
        assert_eq!(
            seen.len(),
            2,
            "only the two live instances answer: {seen:?}"
        );
        assert!(!edge.is_healthy("us-east-b-1"));
    }

    #[tokio::test]
    async fn an_instance_that_accepts_but_never_answers_is_routed_around() {
        let (good, _good_task) = spawn_local("us-east-a-1").await;
        // Accepts connections and holds them, like a SIGSTOPped process's kernel would.
        let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hung_addr = hung.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = hung.accept().await {
                held.push(s);
            }
        });
        let backends = vec![
            Backend::new("us-east-a-1", "us-east-a", good),
            Backend::new("us-east-b-1", "us-east-b", hung_addr),
        ];
        let edge = start(backends, config(Duration::from_secs(3600))).await;
        wait_until("the first checks are done", || {
            edge.is_healthy("us-east-a-1")
        })
        .await;
        tokio::time::sleep(EdgeConfig::default().health_timeout * 2).await;
        assert!(
            !edge.is_healthy("us-east-b-1"),
            "its health check timed out"
        );
        // Pretend it looked healthy, so requests do go to it and time out.
        edge.mark_up("us-east-b-1", "test");

        let started = Instant::now();
        let seen = spray(&edge, 10).await;
        assert_eq!(seen.get("us-east-a-1"), Some(&10), "{seen:?}");
        assert!(!edge.is_healthy("us-east-b-1"));
        // One attempt timed out (300ms); the rest skipped the hung instance.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn answers_502_only_when_no_instance_answers() {
        let mut backends = Vec::new();
        for id in ["us-east-a-1", "us-east-b-1"] {
            // A port nobody listens on any more.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            backends.push(Backend::new(id, &id[..9], l.local_addr().unwrap()));
        }
        let edge = start(backends, EdgeConfig::default()).await;
        let (status, head, body) = get(edge.addr(), "/play").await;
        assert_eq!(status, 502);
        assert!(head.contains("x-simian-edge: us-east\r\n"), "{head}");
        assert_eq!(body, "no instance in us-east answered (2 tried)\n");
    }

    #[tokio::test]
    async fn a_restarted_instance_is_found_healthy_again() {
        let (backends, mut tasks) = three_instances().await;
        let addr = backends[0]
            .base
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let edge = start(backends, config(Duration::from_millis(50))).await;
        wait_until("all healthy", || all_healthy(&edge)).await;
        let killed = tasks.remove(0);
        killed.abort();
        let _ = killed.await;
        wait_until("it is seen down", || !edge.is_healthy("us-east-a-1")).await;

        // Same port again, like `ensure_running` does.
        let listener = TcpListener::bind::<SocketAddr>(addr).await.unwrap();
        let info = crate::instance::InstanceInfo {
            region: "us-east".into(),
            zone: "us-east-a".into(),
            id: "us-east-a-1".into(),
        };
        let _again = tokio::spawn(crate::instance::serve(listener, info, None));
        wait_until("it is seen up", || edge.is_healthy("us-east-a-1")).await;
        let seen = spray(&edge, 9).await;
        assert_eq!(seen.get("us-east-a-1"), Some(&3), "{seen:?}");
    }
}
