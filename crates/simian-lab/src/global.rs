//! The lab's global router (`lab.global`), where users arrive before any region: it gives
//! each request a home region by the geo split, lets steering move it to another region,
//! and passes it to that region's edge. Chaos Kong turns the steering; the edges' capacity
//! shows whether the region taking the users can carry them.
//!
//! Its admin paths are `/steering` (JSON, see [`crate::steering`]), `/metrics` (Prometheus
//! text) and `/health`; every other path is a user request.
//!
//! A user request with `x-simian-user: ID` gets its home and its steering bucket from hashes
//! of ID: the same user always has the same home, and raising a steering percent only moves
//! more users, never back and forth. Without it, both are drawn at random.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::edge::EdgeStats;
use crate::http::{self, Body, Client, Outgoing};
use crate::steering::{Steering, SteeringError};
use crate::traffic::home_at;

/// Response header: the region whose instance served the request.
pub const REGION_HEADER: &str = "x-simian-region";
/// Response header: the user's home region.
pub const HOME_HEADER: &str = "x-simian-home";
/// Request header: a user id, to pin the user's home and steering bucket.
pub const USER_HEADER: &str = "x-simian-user";

/// How long the router waits for an edge to start answering.
const EDGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body passed on.
const MAX_BODY: usize = 1 << 20;

/// What the global router routes between.
#[derive(Debug, Clone)]
pub struct GlobalConfig {
    /// Each region's relative share of users, in the lab's region order.
    pub geo: Vec<(String, u32)>,
    /// Region → its edge's base URL, `http://127.0.0.1:PORT`.
    pub edges: BTreeMap<String, String>,
    pub steering: Arc<Steering>,
    /// Each region's edge counters, shown in `/metrics`.
    pub edge_stats: BTreeMap<String, Arc<EdgeStats>>,
}

/// A running global router. Dropping it stops it and closes its connections.
pub struct Global {
    addr: SocketAddr,
    task: AbortHandle,
}

impl Drop for Global {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Global {
    pub fn start(listener: TcpListener, config: GlobalConfig) -> std::io::Result<Global> {
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::new(config));
        let server = http::serve(listener, move |req| {
            let inner = inner.clone();
            async move { inner.handle(req).await }
        });
        let task = tokio::spawn(server).abort_handle();
        Ok(Global { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Counters of the user requests, by labels.
#[derive(Debug, Default)]
struct Metrics {
    /// (home, served) → successful `/play` answers.
    stream_starts: BTreeMap<(String, String), u64>,
    /// (home, served, code) → answers.
    requests: BTreeMap<(String, String, u16), u64>,
}

struct Inner {
    config: GlobalConfig,
    client: Client,
    /// SplitMix64 state: the draws for requests without a user id.
    draws: AtomicU64,
    metrics: Mutex<Metrics>,
}

impl Inner {
    fn new(config: GlobalConfig) -> Inner {
        let regions: Vec<&String> = config.geo.iter().map(|(r, _)| r).collect();
        let mut metrics = Metrics::default();
        // Every pair from the start, so a scrape before any user sees the series at 0.
        for home in &regions {
            for served in &regions {
                metrics
                    .stream_starts
                    .insert(((*home).clone(), (*served).clone()), 0);
            }
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Inner {
            config,
            client: http::client(Duration::from_secs(1)),
            draws: AtomicU64::new(seed),
            metrics: Mutex::new(metrics),
        }
    }

    /// A uniform draw from [0, 1).
    fn draw(&self) -> f64 {
        unit(splitmix64(
            self.draws
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
        ))
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        match path.as_str() {
            "/health" => only(&req, &[Method::GET], || http::text(StatusCode::OK, "ok\n")),
            "/metrics" => only(&req, &[Method::GET], || {
                let mut resp = http::text(StatusCode::OK, self.render_metrics());
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }),
            "/steering" | "/steering/" => only(&req, &[Method::GET], || {
                json(StatusCode::OK, &self.config.steering.all())
            }),
            _ => match path.strip_prefix("/steering/") {
                Some(from) => self.steering(req, from).await,
                None => self.user(req).await,
            },
        }
    }

    /// `GET` or `PUT /steering/{from}`.
    async fn steering(&self, req: Request<Incoming>, from: &str) -> Response<Body> {
        let steering = &self.config.steering;
        match *req.method() {
            Method::GET => match steering.get(from) {
                Some(entry) => json(StatusCode::OK, &entry),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no region `{from}` in this lab; its regions are {}",
                        steering.regions().join(", ")
                    ),
                ),
            },
            Method::PUT => {
                let body = http_body_util::Limited::new(req.into_body(), 64 << 10);
                let Ok(body) = http_body_util::BodyExt::collect(body).await else {
                    return error(StatusCode::BAD_REQUEST, "the body is too large or broken");
                };
                match steering.set(from, &body.to_bytes()) {
                    Ok(entry) => json(StatusCode::OK, &entry),
                    Err(e @ SteeringError::UnknownRegion(_)) => {
                        error(StatusCode::NOT_FOUND, e.to_string())
                    }
                    Err(e @ SteeringError::Invalid(_)) => {
                        error(StatusCode::BAD_REQUEST, e.to_string())
                    }
                }
            }
            _ => not_allowed(&[Method::GET, Method::PUT]),
        }
    }

    /// Picks the user's home and the region to serve it, and passes the request to that
    /// region's edge.
    async fn user(&self, req: Request<Incoming>) -> Response<Body> {
        let user = req
            .headers()
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (home, target) = self.choose(user.as_deref());
        let is_play = req.uri().path() == "/play";
        let Ok(out) = Outgoing::read(req, MAX_BODY).await else {
            return http::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large or broken\n",
            );
        };
        let mut resp = match self.config.edges.get(&target) {
            Some(base) => match out.send(&self.client, base, EDGE_TIMEOUT).await {
                Ok(resp) => resp,
                Err(why) => http::text(
                    StatusCode::BAD_GATEWAY,
                    format!("the {target} edge did not answer: {why}\n"),
                ),
            },
            None => http::text(
                StatusCode::BAD_GATEWAY,
                format!("no edge for region {target}\n"),
            ),
        };
        // The instance says where it ran, also when an edge in failover passed it on.
        let served = resp
            .headers()
            .get(REGION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|r| self.config.edges.contains_key(*r))
            .map_or(target, str::to_string);
        let code = resp.status();
        {
            let mut m = self.metrics.lock().unwrap();
            *m.requests
                .entry((home.clone(), served.clone(), code.as_u16()))
                .or_default() += 1;
            if is_play && code.is_success() {
                *m.stream_starts
                    .entry((home.clone(), served.clone()))
                    .or_default() += 1;
            }
        }
        let headers = resp.headers_mut();
        for (name, value) in [(REGION_HEADER, &served), (HOME_HEADER, &home)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        resp
    }

    /// (home, region to serve): by hashes of `user`, or by random draws without one.
    fn choose(&self, user: Option<&str>) -> (String, String) {
        let (u_home, u_steer) = match user {
            Some(id) => (unit_hash("home", id), unit_hash("steer", id)),
            None => (self.draw(), self.draw()),
        };
        let home = home_at(&self.config.geo, u_home)
            .or_else(|| self.config.geo.first().map(|(r, _)| r.as_str()))
            .unwrap_or_default()
            .to_string();
        let target = self.config.steering.route(&home, u_steer);
        (home, target)
    }

    fn render_metrics(&self) -> String {
        let mut out = String::new();
        let m = self.metrics.lock().unwrap();
        family(
            &mut out,
            "simian_lab_stream_starts_total",
            "counter",
            "Successful (2xx) answers to /play through the global router, by the user's home region and the region that served it.",
        );
        for ((home, served), n) in &m.stream_starts {
            let _ = writeln!(
                out,
                "simian_lab_stream_starts_total{{home=\"{home}\",served=\"{served}\"}} {n}"
            );
        }
        family(
            &mut out,
            "simian_lab_global_requests_total",
            "counter",
            "User requests through the global router, by home region, serving region and answer code.",
        );
        for ((home, served, code), n) in &m.requests {
            let _ = writeln!(
                out,
                "simian_lab_global_requests_total{{home=\"{home}\",served=\"{served}\",code=\"{code}\"}} {n}"
            );
        }
        drop(m);
        family(
            &mut out,
            "simian_lab_steering_percent",
            "gauge",
            "Percent of a region's users steered to another region.",
        );
        let steering = self.config.steering.all();
        for (from, entry) in &steering {
            for to in steering.keys().filter(|to| *to != from) {
                let percent = if entry.to.as_deref() == Some(to.as_str()) {
                    entry.percent
                } else {
                    0.0
                };
                let _ = writeln!(
                    out,
                    "simian_lab_steering_percent{{from=\"{from}\",to=\"{to}\"}} {percent}"
                );
            }
        }
        let edges = &self.config.edge_stats;
        family(
            &mut out,
            "simian_lab_edge_shed_total",
            "counter",
            "Requests an edge refused over its capacity (503).",
        );
        for (region, stats) in edges {
            let n = stats.shed.load(Ordering::Relaxed);
            let _ = writeln!(out, "simian_lab_edge_shed_total{{region=\"{region}\"}} {n}");
        }
        family(
            &mut out,
            "simian_lab_edge_forwarded_total",
            "counter",
            "Requests an edge in failover forwarded to another region's edge.",
        );
        for (region, stats) in edges {
            let n = stats.forwarded.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "simian_lab_edge_forwarded_total{{region=\"{region}\"}} {n}"
            );
        }
        out
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `make()` if the request's method is one of `allowed`, else 405.
fn only(
    req: &Request<Incoming>,
    allowed: &[Method],
    make: impl FnOnce() -> Response<Body>,
) -> Response<Body> {
    if allowed.contains(req.method()) {
        make()
    } else {
        not_allowed(allowed)
    }
}

fn not_allowed(allowed: &[Method]) -> Response<Body> {
    let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("use {}", list.join(" or ")),
    );
    if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
        resp.headers_mut().insert(ALLOW, v);
    }
    resp
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(value).expect("steering serializes");
    body.push(b'\n');
    let mut resp = http::text(status, body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `{"error": "..."}`
fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// The SplitMix64 finalizer: spreads any 64-bit input over all 64 bits.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits as a float in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A stable hash of `key` (FNV-1a, then mixed) in [0, 1), different for each `salt`: the
/// same user lands the same way in every run and every lab.
fn unit_hash(salt: &str, key: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    unit(splitmix64(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{Backend, Edge, EdgeConfig, Failover};
    use crate::instance::spawn_local;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn user_hashes_are_stable_spread_and_independent_per_salt() {
        assert_eq!(unit_hash("home", "alice"), unit_hash("home", "alice"));
        assert_ne!(unit_hash("home", "alice"), unit_hash("steer", "alice"));
        let n = 10_000;
        let below = |salt: &str| {
            (0..n)
                .filter(|i| unit_hash(salt, &format!("user-{i}")) < 0.3)
                .count()
        };
        for salt in ["home", "steer"] {
            let got = below(salt);
            assert!((2700..3300).contains(&got), "{salt}: {got}");
        }
        // Homes and steering buckets do not move together.
        let both = (0..n)
            .filter(|i| {
                let id = format!("user-{i}");
                unit_hash("home", &id) < 0.5 && unit_hash("steer", &id) < 0.5
            })
            .count();
        assert!((2200..2800).contains(&both), "{both}");
    }

    fn inner(geo: &[(&str, u32)], steering: Arc<Steering>) -> Inner {
        Inner::new(GlobalConfig {
            geo: geo.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            edges: BTreeMap::new(),
            steering,
            edge_stats: BTreeMap::new(),
        })
    }

    #[test]
    fn homes_follow_the_geo_split_and_steering_moves_its_share() {
        let steering = Arc::new(Steering::new(&["us-east", "us-west"]));
        let router = inner(&[("us-east", 60), ("us-west", 40)], steering.clone());
        let mut count = BTreeMap::<(String, String), u32>::new();
        for _ in 0..10_000 {
            *count.entry(router.choose(None)).or_default() += 1;
        }
        let east = count[&("us-east".to_string(), "us-east".to_string())];
        assert!((5700..6300).contains(&east), "{count:?}");
        assert_eq!(count.len(), 2, "nothing steered: {count:?}");

        steering
            .set("us-east", br#"{"to":"us-west","percent":50}"#)
            .unwrap();
        let users: Vec<(String, String)> = (0..2000)
            .map(|i| router.choose(Some(&format!("user-{i}"))))
            .collect();
        let moved = users
            .iter()
            .filter(|(h, s)| h == "us-east" && s == "us-west")
            .count();
        let east = users.iter().filter(|(h, _)| h == "us-east").count();
        assert!(
            (east * 4 / 10..east * 6 / 10).contains(&moved),
            "{moved} of {east}"
        );
        assert!(users.iter().all(|(h, s)| h == "us-east" || s == "us-west"));
        // The same user, the same way, every time.
        assert_eq!(router.choose(Some("user-7")), users[7]);
        // More steering only moves more users: everyone moved at 50% stays moved at 80%.
        steering
            .set("us-east", br#"{"to":"us-west","percent":80}"#)
            .unwrap();
        for (i, before) in users.iter().enumerate() {
            if before.1 == "us-west" {
                assert_eq!(router.choose(Some(&format!("user-{i}"))).1, "us-west");
            }
        }
    }

    /// One request over a fresh connection: (status, lowercased head, body).
    async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    /// Two one-instance regions behind their edges (with failover) and the global router.
    async fn lab(
        geo: &[(&str, u32)],
        capacity: Option<u32>,
    ) -> (Global, Vec<Edge>, Vec<tokio::task::JoinHandle<()>>) {
        let regions = ["us-east", "us-west"];
        let steering = Arc::new(Steering::new(&regions));
        let mut listeners = Vec::new();
        let mut peers = BTreeMap::new();
        for region in regions {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.insert(
                region.to_string(),
                format!("http://{}", l.local_addr().unwrap()),
            );
            listeners.push(l);
        }
        let (mut edges, mut tasks) = (Vec::new(), Vec::new());
        for (region, listener) in regions.into_iter().zip(listeners) {
            let id = format!("{region}-a-1");
            let (addr, task) = spawn_local(&id).await;
            tasks.push(task);
            let config = EdgeConfig {
                capacity,
                failover: Some(Failover {
                    steering: steering.clone(),
                    peers: peers.clone(),
                }),
                ..EdgeConfig::default()
            };
            let backends = vec![Backend::new(&id, &id[..9], addr)];
            edges.push(Edge::start(region, listener, backends, config).unwrap());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !edges.iter().all(|e| e.backends()[0].is_healthy()) {
            assert!(std::time::Instant::now() < deadline, "edges not healthy");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let global = Global::start(
            listener,
            GlobalConfig {
                geo: geo.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
                edges: peers,
                steering,
                edge_stats: edges
                    .iter()
                    .map(|e| (e.region().to_string(), e.stats()))
                    .collect(),
            },
        )
        .unwrap();
        (global, edges, tasks)
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }

    #[tokio::test]
    async fn users_are_served_at_home_until_steered_and_a_failed_over_edge_forwards() {
        let (global, edges, _tasks) = lab(&[("us-east", 100), ("us-west", 0)], None).await;
        let g = global.addr();
        let (status, head, _) = request(g, "GET", "/play", "", "").await;
        assert_eq!(status, 200);
        assert_eq!(header(&head, HOME_HEADER), Some("us-east"));
        assert_eq!(header(&head, REGION_HEADER), Some("us-east"));

        let put = r#"{"to":"us-west","percent":100}"#;
        let (status, _, body) = request(g, "PUT", "/steering/us-east", "", put).await;
        assert_eq!((status, body.trim()), (200, put));
        let (_, head, _) = request(g, "GET", "/play", "", "").await;
        assert_eq!(header(&head, HOME_HEADER), Some("us-east"));
        assert_eq!(header(&head, REGION_HEADER), Some("us-west"));

        // Straight to us-east's edge: forwarded to us-west's, once.
        let (status, head, _) = request(edges[0].addr(), "GET", "/play", "", "").await;
        assert_eq!(status, 200);
        assert_eq!(header(&head, "x-simian-forwarded-from"), Some("us-east"));
        assert_eq!(header(&head, "x-simian-edge"), Some("us-west"));
        assert_eq!(header(&head, REGION_HEADER), Some("us-west"));
        // Both regions steered to each other: still one hop, no loop.
        let back = r#"{"to":"us-east","percent":100}"#;
        request(g, "PUT", "/steering/us-west", "", back).await;
        let (status, head, _) = request(edges[0].addr(), "GET", "/play", "", "").await;
        assert_eq!(status, 200);
        assert_eq!(header(&head, REGION_HEADER), Some("us-west"));

        let (_, _, metrics) = request(g, "GET", "/metrics", "", "").await;
        for line in [
            "simian_lab_stream_starts_total{home=\"us-east\",served=\"us-east\"} 1",
            "simian_lab_stream_starts_total{home=\"us-east\",served=\"us-west\"} 1",
            "simian_lab_stream_starts_total{home=\"us-west\",served=\"us-west\"} 0",
            "simian_lab_global_requests_total{home=\"us-east\",served=\"us-west\",code=\"200\"} 1",
            "simian_lab_steering_percent{from=\"us-east\",to=\"us-west\"} 100",
            "simian_lab_edge_forwarded_total{region=\"us-east\"} 2",
        ] {
            assert!(metrics.contains(line), "{line}\n{metrics}");
        }
    }

    #[tokio::test]
    async fn the_admin_api_answers_json_and_refuses_what_it_cannot_do() {
        let (global, _edges, _tasks) = lab(&[("us-east", 1), ("us-west", 1)], None).await;
        let g = global.addr();
        let (status, head, body) = request(g, "GET", "/steering", "", "").await;
        assert_eq!(status, 200);
        assert_eq!(header(&head, "content-type"), Some("application/json"));
        assert_eq!(
            body.trim(),
            r#"{"us-east":{"to":null,"percent":0},"us-west":{"to":null,"percent":0}}"#
        );
        let (status, _, body) = request(g, "GET", "/steering/mars", "", "").await;
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("us-east, us-west"), "{body}");
        let (status, _, body) = request(
            g,
            "PUT",
            "/steering/us-east",
            "",
            r#"{"to":"us-east","percent":5}"#,
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body.starts_with(r#"{"error":"to must be another region"#),
            "{body}"
        );
        let (status, head, _) = request(g, "DELETE", "/steering/us-east", "", "").await;
        assert_eq!(status, 405);
        assert_eq!(header(&head, "allow"), Some("get, put"), "lowercased head");
        assert_eq!(request(g, "GET", "/health", "", "").await.0, 200);
        assert_eq!(request(g, "POST", "/metrics", "", "").await.0, 405);
    }

    #[tokio::test]
    async fn an_edge_over_capacity_sheds_with_503() {
        let (global, edges, _tasks) = lab(&[("us-east", 1), ("us-west", 1)], Some(10)).await;
        let mut codes = BTreeMap::<u16, u32>::new();
        // At once, far faster than 10/s: the burst of 1 passes, the rest is shed.
        for _ in 0..20 {
            let (status, head, body) = request(edges[1].addr(), "GET", "/play", "", "").await;
            if status == 503 {
                assert_eq!(body, "over capacity\n");
                assert_eq!(header(&head, "x-simian-edge"), Some("us-west"));
            }
            *codes.entry(status).or_default() += 1;
        }
        assert!(codes.get(&503).copied().unwrap_or(0) >= 15, "{codes:?}");
        let (_, _, metrics) = request(global.addr(), "GET", "/metrics", "", "").await;
        let line = format!(
            "simian_lab_edge_shed_total{{region=\"us-west\"}} {}",
            codes[&503]
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
}
