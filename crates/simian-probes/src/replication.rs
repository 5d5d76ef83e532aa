//! Replication: records written through one region's API and read back through another's.
//!
//! Every `every`, a round of `records` unique records is `PUT` to the `write` URL. Each
//! acknowledged record is then read from the `read` URL (visible = 200 and the body that was
//! written) at 5 ms, 10 ms, 20 ms ... after the round's writes, exactly at `read_after`, and
//! then at growing intervals of at most 1 s until it is seen. So:
//!
//! - `visible` (gauge): share of the latest round seen by `read_after`;
//! - latency percentiles: convergence time, write acknowledged → first seen; an upper bound,
//!   within a factor of two below `read_after` and within 1 s above it;
//! - `queued` (gauge): records acknowledged, past `read_after`, not seen yet — what a
//!   partition piles up;
//! - `lost` (gauge, since the start): records still unseen `lost_after` after a record of a
//!   later round was seen: replication moved past them;
//! - observations: one per record, when seen (ok) or found lost or not written (failed).
//!
//! Pending records are held in memory, at most [`MAX_PENDING`]; rounds beyond that are
//! skipped. Reads and writes share at most [`MAX_IN_FLIGHT`] requests at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use simian_core::{Metric, Observation, Recorder};
use simian_experiment::ReplicationProbe;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Records acknowledged and not yet seen or lost, at most; a round beyond it is skipped.
pub const MAX_PENDING: u64 = 200_000;
/// Requests in flight at once, reads and writes together.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most records per round.
pub const MAX_RECORDS: u32 = 10_000;
/// The first read, after the round's writes; each later one doubles the wait.
const FIRST_READ: Duration = Duration::from_millis(5);
/// Longest wait between reads of a record not seen yet.
const MAX_READ_GAP: Duration = Duration::from_secs(1);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The placeholder the URLs carry.
const KEY: &str = "{key}";

/// Every problem of a spec, as messages.
pub fn check(c: &ReplicationProbe) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, url) in [("write", &c.write), ("read", &c.read)] {
        if !url.contains(KEY) {
            problems.push(format!(
                "{name}: `{url}` has no `{{key}}`; e.g. `http://127.0.0.1:4050/kv/{{key}}`"
            ));
        } else if let Err(e) = url_for(url, "k") {
            problems.push(format!("{name}: {e}"));
        }
    }
    if !(1..=MAX_RECORDS).contains(&c.records) {
        problems.push(format!(
            "records: must be between 1 and {MAX_RECORDS}, got {}",
            c.records
        ));
    }
    for (name, d) in [
        ("every", c.every),
        ("read_after", c.read_after),
        ("lost_after", c.lost_after),
        ("timeout", c.timeout),
    ] {
        crate::check_positive(name, d, &mut problems);
    }
    problems
}

/// The URL for `key`, which must be `http://`.
fn url_for(template: &str, key: &str) -> Result<Uri, String> {
    let url = template.replace(KEY, key);
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("`{template}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "`{template}` must start with http:// and name a host"
        ));
    }
    Ok(uri)
}

/// Starts the probe; it writes a round every `every` until `cancel` fires.
pub fn spawn(
    c: &ReplicationProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    crate::valid(check(c))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build(connector);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let shared = Arc::new(Shared {
        spec: c.clone(),
        client,
        recorder,
        run: format!("{:x}-{:x}", std::process::id(), nanos % (1 << 40)),
        slots: Semaphore::new(MAX_IN_FLIGHT),
        pending: AtomicU64::new(0),
        queued: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        seen: Mutex::default(),
    });
    Ok(tokio::spawn(rounds(shared, cancel)))
}

struct Shared {
    spec: ReplicationProbe,
    client: HttpClient,
    recorder: Arc<Recorder>,
    /// Unique to this probe run; part of every key.
    run: String,
    slots: Semaphore,
    /// Acknowledged, not yet seen or lost.
    pending: AtomicU64,
    /// Pending and past `read_after`.
    queued: AtomicU64,
    lost: AtomicU64,
    /// Per round, when one of its records was first seen.
    seen: Mutex<BTreeMap<u64, Instant>>,
}

impl Shared {
    fn gauge(&self, m: Metric, v: f64) {
        self.recorder.set_gauge(Instant::now(), m, v);
    }

    fn publish_counts(&self) {
        self.gauge(Metric::Queued, self.queued.load(Ordering::Relaxed) as f64);
        self.gauge(Metric::Lost, self.lost.load(Ordering::Relaxed) as f64);
    }

    /// When a record of a round after `round` was first seen, if one was.
    fn passed(&self, round: u64) -> Option<Instant> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.range(round + 1..).map(|(_, &t)| t).min()
    }

    fn record(&self, at: Instant, ok: bool, latency: Duration) {
        self.recorder.record(Observation {
            at,
            ok,
            latency,
            value: None,
        });
    }

    /// Sends one request; `Some(body)` for a 2xx answer within the timeout.
    async fn send(&self, method: Method, uri: Uri, body: Bytes) -> Option<Bytes> {
        let _slot = self.slots.acquire().await.ok()?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let exchange = async {
            let resp = self.client.request(req).await.ok()?;
            let ok = resp.status().is_success();
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            ok.then_some(body)
        };
        tokio::time::timeout(self.spec.timeout.0, exchange)
            .await
            .ok()
            .flatten()
    }
}

/// One record of a round, written and not yet seen.
struct Pending {
    key: String,
    value: Bytes,
    acked: Instant,
}

/// Starts a round every `every` until cancelled; then waits for none of them.
async fn rounds(shared: Arc<Shared>, cancel: CancellationToken) {
    shared.publish_counts();
    let mut ticks = tokio::time::interval(shared.spec.every.0);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Dropping the set when cancelled aborts the rounds: nothing of theirs is owed.
    let mut running = JoinSet::new();
    for round in 0u64.. {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            due = ticks.tick() => {
                while running.try_join_next().is_some() {}
                let room = MAX_PENDING.saturating_sub(shared.pending.load(Ordering::Relaxed));
                if room >= u64::from(shared.spec.records) {
                    running.spawn(one_round(shared.clone(), round, due));
                }
            }
        }
    }
}

async fn one_round(shared: Arc<Shared>, round: u64, due: Instant) {
    let mut writes = JoinSet::new();
    for n in 0..shared.spec.records {
        let shared = shared.clone();
        writes.spawn(async move {
            let key = format!("simian-repl-{}-{round}-{n}", shared.run);
            let value = Bytes::from(format!("{key} {}", round * 1_000_000 + u64::from(n)));
            let uri = url_for(&shared.spec.write, &key).expect("checked at spawn");
            let ok = shared.send(Method::PUT, uri, value.clone()).await.is_some();
            let acked = Instant::now();
            if !ok {
                shared.record(acked, false, acked - due);
                return None;
            }
            shared.pending.fetch_add(1, Ordering::Relaxed);
            Some(Pending { key, value, acked })
        });
    }
    let mut pending = Vec::new();
    while let Some(done) = writes.join_next().await {
        pending.extend(done.ok().flatten());
    }
    let written = pending.len();
    if written == 0 {
        return;
    }
    let start = Instant::now();
    let read_after = shared.spec.read_after.0;
    let mut wait = FIRST_READ.min(read_after);
    let mut judged = false;
    while !pending.is_empty() {
        tokio::time::sleep_until(start + wait).await;
        let before = pending.len();
        pending = read_pass(&shared, round, pending).await;
        let now = Instant::now();
        if judged {
            let seen = (before - pending.len()) as u64;
            shared.queued.fetch_sub(seen, Ordering::Relaxed);
        } else if wait >= read_after || pending.is_empty() {
            judged = true;
            let seen = written - pending.len();
            shared.gauge(Metric::Visible, seen as f64 / written as f64);
            shared
                .queued
                .fetch_add(pending.len() as u64, Ordering::Relaxed);
        }
        // Records replication has moved past for `lost_after` are lost.
        if let Some(passed) = shared.passed(round).filter(|_| judged) {
            if now.saturating_duration_since(passed) >= shared.spec.lost_after.0 {
                for p in pending.drain(..) {
                    shared.record(now, false, now - p.acked);
                    shared.lost.fetch_add(1, Ordering::Relaxed);
                    shared.pending.fetch_sub(1, Ordering::Relaxed);
                    shared.queued.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        shared.publish_counts();
        wait = next_wait(wait, read_after, now - start);
    }
}

/// The next read's offset from the round's start: doubling up to `read_after`, which is
/// always read at; then growing with the time waited so far, at most [`MAX_READ_GAP`] apart.
fn next_wait(wait: Duration, read_after: Duration, elapsed: Duration) -> Duration {
    let next = if wait < read_after {
        (wait * 2).min(read_after)
    } else {
        wait + wait.min(MAX_READ_GAP)
    };
    // A slow pass must not leave a backlog of reads due at once.
    next.max(elapsed)
}

/// Reads every pending record once; returns those not seen. Seen ones are recorded.
async fn read_pass(shared: &Arc<Shared>, round: u64, pending: Vec<Pending>) -> Vec<Pending> {
    let mut reads = JoinSet::new();
    for p in pending {
        let shared = shared.clone();
        reads.spawn(async move {
            let uri = url_for(&shared.spec.read, &p.key).expect("checked at spawn");
            let body = shared.send(Method::GET, uri, Bytes::new()).await;
            (body.is_some_and(|b| b == p.value), p, Instant::now())
        });
    }
    let mut left = Vec::new();
    while let Some(done) = reads.join_next().await {
        let Ok((seen, p, at)) = done else { continue };
        if !seen {
            left.push(p);
            continue;
        }
        shared.record(at, true, at - p.acked);
        shared.pending.fetch_sub(1, Ordering::Relaxed);
        let mut first = shared.seen.lock().unwrap_or_else(|e| e.into_inner());
        first.entry(round).or_insert(at);
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;
    use http_body_util::Full;
    use hyper::Response;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicBool;

    /// Two "regions" in one real HTTP server: `PUT /w/KEY` writes, `GET /r/KEY` reads what
    /// has replicated. A partition holds writes back until healed; `lose` drops keys.
    #[derive(Default)]
    struct TwoRegions {
        replicated: Mutex<HashMap<String, Bytes>>,
        held: Mutex<Vec<(String, Bytes)>>,
        partitioned: AtomicBool,
        lose: Mutex<Option<String>>,
    }

    impl TwoRegions {
        fn heal(&self) {
            self.partitioned.store(false, Ordering::SeqCst);
            let held = std::mem::take(&mut *self.held.lock().unwrap());
            self.replicated.lock().unwrap().extend(held);
        }
    }

    async fn serve(regions: Arc<TwoRegions>) -> String {
        let addr = testutil::serve(move |req: Request<hyper::body::Incoming>| {
            let regions = regions.clone();
            async move {
                let path = req.uri().path().to_string();
                if let Some(key) = path.strip_prefix("/w/") {
                    let key = key.to_string();
                    let value = req.into_body().collect().await.unwrap().to_bytes();
                    let lose = regions.lose.lock().unwrap().clone();
                    if lose.is_some_and(|l| key.contains(&l)) {
                    } else if regions.partitioned.load(Ordering::SeqCst) {
                        regions.held.lock().unwrap().push((key, value));
                    } else {
                        regions.replicated.lock().unwrap().insert(key, value);
                    }
                    return testutil::status(204);
                }
                let key = path.strip_prefix("/r/").unwrap_or_default();
                match regions.replicated.lock().unwrap().get(key) {
                    Some(v) => Response::new(Full::new(v.clone())),
                    None => testutil::status(404),
                }
            }
        })
        .await;
        format!("http://{addr}")
    }

    fn spec(base: &str, lost_after: &str) -> ReplicationProbe {
        serde_json::from_value(serde_json::json!({
            "write": format!("{base}/w/{{key}}"),
            "read": format!("{base}/r/{{key}}"),
            "records": 5, "every": "100ms", "read_after": "50ms", "lost_after": lost_after,
        }))
        .unwrap()
    }

    fn now_metrics(r: &Recorder, window: Duration) -> simian_core::Metrics {
        r.window(window, Instant::now())
    }

    #[tokio::test]
    async fn records_become_visible_with_their_convergence_time() {
        let base = serve(Arc::default()).await;
        let r = Arc::new(Recorder::new(Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let h = spawn(&spec(&base, "1s"), r.clone(), cancel.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let m = now_metrics(&r, Duration::from_secs(10));
        cancel.cancel();
        h.await.unwrap();
        assert!(m.count >= 20, "{m:?}");
        assert_eq!(m.errors, 0, "{m:?}");
        assert_eq!(m.get(Metric::Visible), Some(1.0));
        assert_eq!(
            (m.get(Metric::Queued), m.get(Metric::Lost)),
            (Some(0.0), Some(0.0))
        );
        // Seen at the first read, 5 ms after the writes (plus scheduling).
        assert!(m.get(Metric::P50).unwrap() < 0.05, "{m:?}");
    }

    #[tokio::test]
    async fn a_partition_queues_records_and_healing_delivers_them_all() {
        let regions = Arc::new(TwoRegions::default());
        regions.partitioned.store(true, Ordering::SeqCst);
        let base = serve(regions.clone()).await;
        let r = Arc::new(Recorder::new(Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let h = spawn(&spec(&base, "300ms"), r.clone(), cancel.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let during = now_metrics(&r, Duration::from_secs(10));
        assert_eq!(during.get(Metric::Visible), Some(0.0), "{during:?}");
        assert!(during.get(Metric::Queued).unwrap() >= 20.0, "{during:?}");
        assert_eq!(during.get(Metric::Lost), Some(0.0), "queued is not lost");
        assert_eq!(during.count, 0, "nothing converged yet: {during:?}");

        regions.heal();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = now_metrics(&r, Duration::from_secs(10));
        cancel.cancel();
        h.await.unwrap();
        assert_eq!(after.get(Metric::Queued), Some(0.0), "{after:?}");
        assert_eq!(after.get(Metric::Lost), Some(0.0), "{after:?}");
        assert_eq!(after.get(Metric::Visible), Some(1.0), "{after:?}");
        assert_eq!(after.errors, 0, "{after:?}");
        // The first round waited out the whole partition.
        assert!(after.get(Metric::Max).unwrap() >= 0.7, "{after:?}");
    }

    #[tokio::test]
    async fn records_skipped_by_replication_are_lost_once_later_ones_arrive() {
        let regions = Arc::new(TwoRegions::default());
        *regions.lose.lock().unwrap() = Some("-1-".into());
        let base = serve(regions).await;
        let r = Arc::new(Recorder::new(Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let h = spawn(&spec(&base, "200ms"), r.clone(), cancel.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let m = now_metrics(&r, Duration::from_secs(10));
        cancel.cancel();
        h.await.unwrap();
        assert_eq!(
            m.get(Metric::Lost),
            Some(5.0),
            "round 1's five records: {m:?}"
        );
        assert_eq!(m.errors, 5, "{m:?}");
        assert_eq!(m.get(Metric::Queued), Some(0.0), "{m:?}");
    }

    #[tokio::test]
    async fn failed_writes_are_failures_not_pending() {
        let addr = testutil::serve(|_req| async { testutil::status(503) }).await;
        let base = format!("http://{addr}");
        let r = Arc::new(Recorder::new(Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let h = spawn(&spec(&base, "1s"), r.clone(), cancel.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        let m = now_metrics(&r, Duration::from_secs(10));
        cancel.cancel();
        h.await.unwrap();
        assert!(m.count >= 10 && m.errors == m.count, "{m:?}");
        assert_eq!(m.get(Metric::Queued), Some(0.0));
        assert_eq!(m.get(Metric::Visible), None, "no round was read");
    }

    #[test]
    fn check_reports_every_problem() {
        let mut c = spec("http://127.0.0.1:1", "1s");
        c.write = "http://127.0.0.1:1/kv/".into();
        c.read = "https://x/{key}".into();
        c.records = 0;
        c.every = simian_core::Dur::from_secs(0);
        let problems = check(&c);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("no `{key}`"), "{problems:?}");
        assert!(problems[1].contains("http://"), "{problems:?}");
        assert!(check(&spec("http://127.0.0.1:1", "1s")).is_empty());
    }

    #[test]
    fn reads_double_up_to_the_read_delay_then_space_out_to_a_second() {
        let ra = Duration::from_millis(500);
        let mut w = FIRST_READ;
        let mut seen = vec![w];
        while w < Duration::from_secs(5) {
            w = next_wait(w, ra, Duration::ZERO);
            seen.push(w);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [5, 10, 20, 40, 80, 160, 320, 500, 1000, 2000, 3000, 4000, 5000]
        );
        // A pass that overran moves the next read past it.
        assert_eq!(
            next_wait(FIRST_READ, ra, Duration::from_millis(70)).as_millis(),
            70
        );
    }
}
