//! Open-loop HTTP load at a fixed rate.
//!
//! Request `i` is due at `t0 + i/rate` whatever the earlier replies do, and its
//! latency runs from that due time to the end of the body, so a stall shows in
//! the percentiles instead of slowing the sender (no coordinated omission).
//! tokio's timer ticks in milliseconds, so at high rates each wake-up issues
//! every request due by then; the schedule never drifts. Each request is its
//! own task on a pooled keep-alive client. A request due while `max_in_flight`
//! are outstanding is recorded at once as a failure, never delayed or dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use simian_core::{Observation, Recorder};
use simian_experiment::HttpProbe;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Highest rate a probe may ask for.
pub const MAX_RATE: f64 = 100_000.0;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Live counters of one HTTP probe, beside the observations: what the
/// recorder cannot say (requests in flight, why requests failed).
#[derive(Debug, Default)]
pub struct HttpStats {
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    sent: AtomicU64,
    rejected: AtomicU64,
    timeouts: AtomicU64,
    connect_errors: AtomicU64,
    bad_status: AtomicU64,
    other_errors: AtomicU64,
    lag_sum_ns: AtomicU64,
    lag_max_ns: AtomicU64,
}

/// A copy of [`HttpStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HttpCounts {
    pub in_flight: usize,
    /// Most requests outstanding at once so far.
    pub peak_in_flight: usize,
    /// Requests handed to the client.
    pub sent: u64,
    /// Requests due while `max_in_flight` were outstanding: failed unsent.
    pub rejected: u64,
    pub timeouts: u64,
    /// Connection refused, reset before an answer, name not resolved...
    pub connect_errors: u64,
    /// Answered with a status not counted as success.
    pub bad_status: u64,
    /// Other transport errors (e.g. the body cut short).
    pub other_errors: u64,
    /// Mean and worst delay, in seconds, between a request's due time and its
    /// task starting: the probe's own share of the latencies (timer ticks of
    /// about 1ms, CPU starvation), not the target's.
    pub schedule_lag_mean_s: f64,
    pub schedule_lag_max_s: f64,
}

impl HttpStats {
    pub fn snapshot(&self) -> HttpCounts {
        let r = Ordering::Relaxed;
        HttpCounts {
            in_flight: self.in_flight.load(r),
            peak_in_flight: self.peak_in_flight.load(r),
            sent: self.sent.load(r),
            rejected: self.rejected.load(r),
            timeouts: self.timeouts.load(r),
            connect_errors: self.connect_errors.load(r),
            bad_status: self.bad_status.load(r),
            other_errors: self.other_errors.load(r),
            schedule_lag_mean_s: match self.sent.load(r) {
                0 => 0.0,
                n => self.lag_sum_ns.load(r) as f64 / n as f64 / 1e9,
            },
            schedule_lag_max_s: self.lag_max_ns.load(r) as f64 / 1e9,
        }
    }
}

/// A checked probe, ready to send.
#[derive(Debug)]
struct Plan {
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    /// Nanoseconds between two due times.
    period_ns: f64,
    timeout: Duration,
    expect_status: Option<Vec<u16>>,
    max_in_flight: usize,
}

impl Plan {
    fn new(c: &HttpProbe) -> Result<Plan, Vec<String>> {
        let mut problems = Vec::new();
        let uri = match c.url.parse::<Uri>() {
            Ok(u) if u.scheme_str() != Some("http") => {
                let scheme = u.scheme_str().unwrap_or("none");
                problems.push(format!(
                    "url `{}`: scheme is {scheme}, only http:// is supported",
                    c.url
                ));
                None
            }
            Ok(u) if u.host().is_none_or(str::is_empty) => {
                problems.push(format!("url `{}`: no host", c.url));
                None
            }
            Ok(u) => Some(u),
            Err(e) => {
                problems.push(format!(
                    "url `{}`: {e}, expected e.g. http://127.0.0.1:8080/health",
                    c.url
                ));
                None
            }
        };
        if !(c.rate > 0.0 && c.rate <= MAX_RATE) {
            problems.push(format!(
                "rate {}: must be more than 0 and at most {MAX_RATE} requests per second",
                c.rate
            ));
        }
        let method = Method::from_bytes(c.method.as_bytes())
            .map_err(|_| problems.push(format!("method `{}`: not a valid HTTP method", c.method)))
            .ok();
        crate::check_positive("timeout", c.timeout, &mut problems);
        if let Some(codes) = &c.expect_status {
            if codes.is_empty() {
                problems.push("expect_status: empty, so no answer could succeed".into());
            }
            for code in codes.iter().filter(|&&s| !(100..=599).contains(&s)) {
                problems.push(format!(
                    "expect_status {code}: not an HTTP status (100-599)"
                ));
            }
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(k), Ok(v)) => {
                    headers.append(k, v);
                }
                (Err(_), _) => problems.push(format!("header `{k}`: not a valid header name")),
                (_, Err(_)) => {
                    problems.push(format!("header `{k}`: value is not valid in a header"))
                }
            }
        }
        if c.max_in_flight == 0 {
            problems.push("max_in_flight: must be at least 1".into());
        }
        match (uri, method) {
            (Some(uri), Some(method)) if problems.is_empty() => Ok(Plan {
                uri,
                method,
                headers,
                period_ns: 1e9 / c.rate,
                timeout: c.timeout.0,
                expect_status: c.expect_status.clone(),
                max_in_flight: c.max_in_flight,
            }),
            _ => Err(problems),
        }
    }

    fn due(&self, t0: Instant, i: u64) -> Instant {
        t0 + Duration::from_nanos((i as f64 * self.period_ns) as u64)
    }

    fn success(&self, status: u16) -> bool {
        match &self.expect_status {
            Some(codes) => codes.contains(&status),
            None => (200..=399).contains(&status),
        }
    }
}

/// Checks an HTTP probe: every problem, as messages.
pub fn check(c: &HttpProbe) -> Vec<String> {
    Plan::new(c).err().unwrap_or_default()
}

/// Starts the probe; `stats` is updated live (pass `Arc::default()` if unused).
pub fn spawn(
    c: &HttpProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    stats: Arc<HttpStats>,
) -> Result<JoinHandle<()>, ProbeError> {
    let plan = Arc::new(Plan::new(c).map_err(ProbeError::Invalid)?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(plan.max_in_flight)
        .build(connector);
    Ok(tokio::spawn(schedule(
        plan, client, recorder, cancel, stats,
    )))
}

/// Issues requests on the clock until cancelled, then waits for those in flight.
async fn schedule(
    plan: Arc<Plan>,
    client: HttpClient,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    stats: Arc<HttpStats>,
) {
    // Dropping the set (the handle aborted) aborts the requests with it.
    let mut requests = JoinSet::new();
    let t0 = Instant::now();
    let mut i = 0u64;
    let sleep = tokio::time::sleep_until(t0);
    let cancelled = cancel.cancelled();
    tokio::pin!(sleep, cancelled);
    while !cancel.is_cancelled() {
        let now = Instant::now();
        loop {
            let due = plan.due(t0, i);
            if due > now {
                break;
            }
            i += 1;
            if stats.in_flight.load(Ordering::Relaxed) >= plan.max_in_flight {
                // Only this task increments `in_flight`, so the check cannot race upwards.
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                let at = Instant::now();
                recorder.record(Observation {
                    at,
                    ok: false,
                    latency: at - due,
                    value: None,
                });
                continue;
            }
            let n = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            stats.peak_in_flight.fetch_max(n, Ordering::Relaxed);
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let req = request(
                plan.clone(),
                client.clone(),
                recorder.clone(),
                stats.clone(),
                due,
            );
            requests.spawn(req);
        }
        while requests.try_join_next().is_some() {}
        sleep.as_mut().reset(plan.due(t0, i));
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            _ = &mut sleep => {}
        }
    }
    while requests.join_next().await.is_some() {}
}

enum Failure {
    Connect,
    Status,
    Other,
}

/// Sends one request due at `due` and records how it went.
async fn request(
    plan: Arc<Plan>,
    client: HttpClient,
    recorder: Arc<Recorder>,
    stats: Arc<HttpStats>,
    due: Instant,
) {
    let _slot = InFlight(&stats);
    let lag = Instant::now().saturating_duration_since(due).as_nanos() as u64;
    stats.lag_sum_ns.fetch_add(lag, Ordering::Relaxed);
    stats.lag_max_ns.fetch_max(lag, Ordering::Relaxed);
    let mut req = Request::new(Empty::new());
    *req.method_mut() = plan.method.clone();
    *req.uri_mut() = plan.uri.clone();
    *req.headers_mut() = plan.headers.clone();
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Other
            }
        })?;
        let ok = plan.success(resp.status().as_u16());
        // Read the whole body: latency ends with it, and the connection stays reusable.
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            frame.map_err(|_| Failure::Other)?;
        }
        if ok {
            Ok(())
        } else {
            Err(Failure::Status)
        }
    };
    let outcome = tokio::time::timeout_at(due + plan.timeout, exchange).await;
    let at = Instant::now();
    let counter = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(Failure::Connect)) => Some(&stats.connect_errors),
        Ok(Err(Failure::Status)) => Some(&stats.bad_status),
        Ok(Err(Failure::Other)) => Some(&stats.other_errors),
        Err(_) => Some(&stats.timeouts),
    };
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
    recorder.record(Observation {
        at,
        ok: counter.is_none(),
        latency: at - due,
        value: None,
    });
}

/// Holds one of the `max_in_flight` slots; released however the request ends.
struct InFlight<'a>(&'a HttpStats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{hold_forever, serve, status};
    use simian_core::Metrics;

    fn probe(url: String, rate: f64) -> HttpProbe {
        serde_json::from_value(serde_json::json!({ "url": url, "rate": rate })).unwrap()
    }

    /// Runs `c` for `run`, then cancels and waits for requests in flight.
    async fn run_for(c: &HttpProbe, run: Duration) -> (Metrics, HttpCounts) {
        let rec = Arc::new(Recorder::new(Duration::from_secs(600)));
        let stats = Arc::new(HttpStats::default());
        let cancel = CancellationToken::new();
        let h = spawn(c, rec.clone(), cancel.clone(), stats.clone()).unwrap();
        tokio::time::sleep(run).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .unwrap()
            .unwrap();
        let m = rec.between(rec.started(), Instant::now());
        (m, stats.snapshot())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_is_kept_open_loop() {
        let addr = serve(|_| async { status(200) }).await;
        let (m, s) = run_for(
            &probe(format!("http://{addr}/"), 200.0),
            Duration::from_secs(2),
        )
        .await;
        assert!(
            (360..=440).contains(&m.count),
            "count {} (want 400 ± 10%)",
            m.count
        );
        assert_eq!(m.errors, 0, "{s:?}");
        assert_eq!(s.sent, m.count);
        assert_eq!(s.in_flight, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stall_shows_in_p99_though_few_replies_came_during_it() {
        // The server freezes for 400ms once: everything arriving in that
        // stretch waits until it ends, as if the process were paused.
        let start = Instant::now();
        let freeze = (
            start + Duration::from_millis(800),
            start + Duration::from_millis(1200),
        );
        let addr = serve(move |_| async move {
            let now = Instant::now();
            if now >= freeze.0 && now < freeze.1 {
                tokio::time::sleep_until(freeze.1).await;
            }
            status(200)
        })
        .await;
        let (m, s) = run_for(
            &probe(format!("http://{addr}/"), 200.0),
            Duration::from_secs(2),
        )
        .await;
        let p99 = m.p99.unwrap();
        let p50 = m.p50.unwrap();
        // ~80 of ~400 requests were due during the freeze: the open loop kept
        // scheduling them, so they carry the stall in their latency.
        assert!(p99 >= 0.3, "p99 {p99}s");
        assert!(p50 < 0.1, "p50 {p50}s");
        assert!((360..=440).contains(&m.count), "count {}", m.count);
        assert!(s.peak_in_flight >= 40, "{s:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_connections_fail_at_the_scheduled_rate() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (m, s) = run_for(
            &probe(format!("http://127.0.0.1:{port}/"), 100.0),
            Duration::from_secs(1),
        )
        .await;
        assert!((80..=120).contains(&m.count), "count {}", m.count);
        assert_eq!(m.errors, m.count);
        assert_eq!(s.connect_errors, m.count, "{s:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_outside_expect_status_fails() {
        let addr = serve(|_| async { status(503) }).await;
        let mut c = probe(format!("http://{addr}/"), 50.0);
        let (m, s) = run_for(&c, Duration::from_millis(500)).await;
        assert!(m.count > 10 && m.errors == m.count, "{m:?}");
        assert_eq!(s.bad_status, m.count);
        c.expect_status = Some(vec![503]);
        let (m, _) = run_for(&c, Duration::from_millis(500)).await;
        assert!(m.count > 10 && m.errors == 0, "{m:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn method_and_headers_are_sent() {
        let addr = serve(|req| async move {
            let tagged = req.headers().get("x-probe").is_some_and(|v| v == "yes");
            status(if req.method() == Method::POST && tagged {
                204
            } else {
                400
            })
        })
        .await;
        let mut c = probe(format!("http://{addr}/"), 50.0);
        c.method = "POST".into();
        c.headers.insert("X-Probe".into(), "yes".into());
        let (m, _) = run_for(&c, Duration::from_millis(500)).await;
        assert!(m.count > 10 && m.errors == 0, "{m:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timeout_fails_with_the_time_waited() {
        let addr = hold_forever().await;
        let mut c = probe(format!("http://{addr}/"), 20.0);
        c.timeout = simian_core::Dur::from_millis(200);
        let (m, s) = run_for(&c, Duration::from_millis(500)).await;
        assert!(m.count >= 5 && m.errors == m.count, "{m:?}");
        assert_eq!(s.timeouts, m.count);
        let (min, max) = (m.min.unwrap(), m.max.unwrap());
        assert!(
            min >= 0.2 && max < 0.5,
            "latency {min}..{max}s, want about 0.2s"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_beyond_max_in_flight_fail_at_once() {
        let addr = hold_forever().await;
        let mut c = probe(format!("http://{addr}/"), 100.0);
        c.max_in_flight = 5;
        c.timeout = simian_core::Dur::from_secs(30);
        let rec = Arc::new(Recorder::new(Duration::from_secs(600)));
        let stats = Arc::new(HttpStats::default());
        let cancel = CancellationToken::new();
        let h = spawn(&c, rec.clone(), cancel.clone(), stats.clone()).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The 5 sent hang; every other request due so far is already recorded.
        let m = rec.between(rec.started(), Instant::now());
        let s = stats.snapshot();
        h.abort();
        assert_eq!((s.sent, s.in_flight, s.peak_in_flight), (5, 5, 5), "{s:?}");
        assert!((80..=110).contains(&m.count), "count {}", m.count);
        assert_eq!(m.errors, m.count);
        assert_eq!(s.rejected, m.count);
        assert!(m.max.unwrap() < 0.1, "rejected late: {m:?}");
    }
}
