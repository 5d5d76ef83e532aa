//! A PromQL query against a Prometheus server at an interval; its number is `value`.
//!
//! An instant query asks `/api/v1/query` at the current time; with `range`,
//! `/api/v1/query_range` evaluates it over `over` ending now and the points are
//! aggregated here. Either way the answer must be one number: a scalar, or
//! exactly one series. An answer that is not (no series unless `empty: zero`,
//! several series, NaN), an HTTP or API error, or no answer within the timeout
//! is a failed observation. Observations carry only ok/fail, so why the last
//! query failed is kept in [`PromStats`] for `simian probe prometheus` to show;
//! nothing is printed, since that would garble a run's console report.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;
use simian_core::Recorder;
use simian_experiment::{Aggregate, EmptyResult, PrometheusProbe};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Largest answer read; a query that returns more is not one number anyway.
const MAX_BODY: usize = 8 << 20;

/// Points Prometheus evaluates per series at most in a range query.
const MAX_POINTS: f64 = 11_000.0;

/// What the recorder cannot say about a Prometheus probe: why a query failed.
#[derive(Debug, Default)]
pub struct PromStats {
    last_error: Mutex<Option<String>>,
}

impl PromStats {
    /// The message of the most recent failed query, if any failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn failed(&self, why: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why);
    }
}

/// A checked probe, ready to query.
#[derive(Debug)]
struct Plan {
    /// The server's URL without a trailing `/`.
    base: String,
    /// The query, percent-encoded.
    query: String,
    /// `(over, step, aggregate)` for a range query.
    range: Option<(Duration, Duration, Aggregate)>,
    empty: EmptyResult,
    interval: Duration,
    timeout: Duration,
}

impl Plan {
    fn new(c: &PrometheusProbe) -> Result<Plan, Vec<String>> {
        let mut problems = Vec::new();
        let base = c.url.trim_end_matches('/');
        let example = "expected the server's base URL, e.g. http://127.0.0.1:9090";
        match base.parse::<Uri>() {
            Ok(u) if u.scheme_str() != Some("http") => {
                let scheme = u.scheme_str().unwrap_or("none");
                problems.push(format!(
                    "url `{}`: scheme is {scheme}, only http:// is supported",
                    c.url
                ));
            }
            Ok(u) if u.host().is_none_or(str::is_empty) => {
                problems.push(format!("url `{}`: no host, {example}", c.url));
            }
            Ok(u) if u.query().is_some() || u.path().contains("/api/v1") => {
                problems.push(format!(
                    "url `{}`: the probe adds /api/v1/query itself, {example}",
                    c.url
                ));
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("url `{}`: {e}, {example}", c.url)),
        }
        if c.query.trim().is_empty() {
            problems.push("query: empty, expected PromQL, e.g. sum(up)".into());
        }
        crate::check_positive("interval", c.interval, &mut problems);
        crate::check_positive("timeout", c.timeout, &mut problems);
        let range = c.range.as_ref().map(|r| {
            crate::check_positive("range.over", r.over, &mut problems);
            let step = r
                .step
                .map_or((r.over.0 / 30).max(Duration::from_secs(1)), |s| s.0);
            if let Some(s) = r.step {
                crate::check_positive("range.step", s, &mut problems);
                if s.0 > r.over.0 && !r.over.0.is_zero() {
                    problems.push(format!(
                        "range.step {s}: longer than range.over {}, so the range has one point",
                        r.over
                    ));
                }
            }
            if !step.is_zero() && r.over.0.as_secs_f64() / step.as_secs_f64() > MAX_POINTS {
                problems.push(format!(
                    "range.step {}: {:.0} points over {} are more than the {MAX_POINTS} Prometheus allows",
                    simian_core::Dur(step),
                    r.over.0.as_secs_f64() / step.as_secs_f64(),
                    r.over
                ));
            }
            (r.over.0, step, r.aggregate)
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Plan {
            base: base.to_string(),
            query: percent_encode(&c.query),
            range,
            empty: c.empty,
            interval: c.interval.0,
            timeout: c.timeout.0,
        })
    }

    /// The request for a query evaluated at `now`.
    fn uri(&self, now: SystemTime) -> Result<Uri, String> {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let (base, query) = (&self.base, &self.query);
        let uri = match self.range {
            None => format!("{base}/api/v1/query?query={query}&time={:.3}", secs(now)),
            Some((over, step, _)) => format!(
                "{base}/api/v1/query_range?query={query}&start={:.3}&end={:.3}&step={}",
                secs(now - over),
                secs(now),
                step.as_secs_f64()
            ),
        };
        uri.parse()
            .map_err(|e| format!("cannot build the request `{uri}`: {e}"))
    }

    fn aggregate(&self) -> Option<Aggregate> {
        self.range.map(|(_, _, a)| a)
    }
}

/// Checks a Prometheus probe: every problem, as messages.
pub fn check(c: &PrometheusProbe) -> Vec<String> {
    Plan::new(c).err().unwrap_or_default()
}

/// Starts the probe without keeping why queries fail; see [`spawn_with_stats`].
pub fn spawn(
    c: &PrometheusProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    spawn_with_stats(c, recorder, cancel, Arc::default())
}

/// Starts the probe: one query every `interval`, each on its own task, so a
/// slow one does not delay the next. `stats` keeps the last failure's message.
pub fn spawn_with_stats(
    c: &PrometheusProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    stats: Arc<PromStats>,
) -> Result<JoinHandle<()>, ProbeError> {
    let plan = Arc::new(Plan::new(c).map_err(ProbeError::Invalid)?);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build_http();
    Ok(crate::every(plan.interval, recorder, cancel, move |due| {
        let (plan, client, stats) = (plan.clone(), client.clone(), stats.clone());
        async move {
            let outcome = tokio::time::timeout_at(due + plan.timeout, ask(&plan, &client)).await;
            let outcome = outcome.unwrap_or_else(|_| {
                Err(format!(
                    "no answer within the timeout of {}",
                    simian_core::Dur(plan.timeout)
                ))
            });
            match outcome {
                Ok(v) => (true, Some(v)),
                Err(why) => {
                    stats.failed(why);
                    (false, None)
                }
            }
        }
    }))
}

/// Sends one query and reads its number.
async fn ask(plan: &Plan, client: &HttpClient) -> Result<f64, String> {
    let uri = plan.uri(SystemTime::now())?;
    let resp = client.get(uri).await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    answer(status, &body, plan.aggregate(), plan.empty)
}

/// An error and its sources, e.g. `client error (Connect): tcp connect error: Connection refused`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

/// The number in an answer of the query API (`status` is the HTTP status).
/// With `aggregate`, the answer is a range query's and its points are aggregated.
fn answer(
    status: u16,
    body: &[u8],
    aggregate: Option<Aggregate>,
    empty: EmptyResult,
) -> Result<f64, String> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(j) = json.as_ref().filter(|j| j["status"] == "error") {
        let kind = j["errorType"].as_str().unwrap_or("error");
        let msg = j["error"].as_str().unwrap_or("no message");
        return Err(format!("prometheus answered {status}, {kind}: {msg}"));
    }
    if status != 200 {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(200).collect();
        return Err(format!("prometheus answered {status}: {text}"));
    }
    let json = json.ok_or("the answer is not JSON; is the url a Prometheus server?")?;
    if json["status"] != "success" {
        return Err(format!("unexpected answer status {}", json["status"]));
    }
    let value = number(&json["data"], aggregate, empty)?;
    if value.is_nan() {
        return Err("the query's value is NaN (e.g. 0/0: nothing to divide by yet)".into());
    }
    Ok(value)
}

/// The number in `data` of a successful answer.
fn number(data: &Value, aggregate: Option<Aggregate>, empty: EmptyResult) -> Result<f64, String> {
    let kind = data["resultType"].as_str().unwrap_or("");
    let result = &data["result"];
    let series = match kind {
        "scalar" => return sample(result),
        "vector" | "matrix" => result
            .as_array()
            .ok_or_else(|| format!("`data.result` of a {kind} is not a list"))?,
        "string" => return Err("the query returns a string, not a number".into()),
        _ => return Err(format!("unknown result type `{kind}`")),
    };
    let one = match series.as_slice() {
        [] => {
            return match empty {
                EmptyResult::Zero => Ok(0.0),
                EmptyResult::Fail => {
                    Err("the query returned no series (if none means 0, set `empty: zero`)".into())
                }
            };
        }
        [one] => one,
        many => return Err(too_many(many)),
    };
    match (kind, aggregate) {
        ("vector", _) => sample(&one["value"]),
        (_, None) => Err(
            "the query returns a range vector: use an instant vector, or set `range` to aggregate over time"
                .into(),
        ),
        (_, Some(a)) => {
            let points = one["values"]
                .as_array()
                .ok_or("a series has no `values`")?
                .iter()
                .map(sample)
                .collect::<Result<Vec<f64>, String>>()?;
            fold(a, &points)
        }
    }
}

/// The message for several series: how many, a few of them, and the fix.
fn too_many(series: &[Value]) -> String {
    let shown: Vec<String> = series
        .iter()
        .take(3)
        .map(|s| labels(&s["metric"]))
        .collect();
    let more = if series.len() > 3 { ", ..." } else { "" };
    format!(
        "the query returned {} series, expected 1: aggregate them (e.g. sum(...) or max(...)) \
         or select one with a label matcher; got {}{more}",
        series.len(),
        shown.join(", ")
    )
}

/// A series' labels as PromQL writes them: `up{job="store"}`.
fn labels(metric: &Value) -> String {
    let Some(map) = metric.as_object() else {
        return "{}".into();
    };
    let name = map.get("__name__").and_then(Value::as_str).unwrap_or("");
    let pairs: Vec<String> = map
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{name}{{{}}}", pairs.join(","))
}

/// One `[time, "value"]` pair's value; Prometheus writes numbers as strings
/// (`"1.5"`, `"NaN"`, `"+Inf"`).
fn sample(pair: &Value) -> Result<f64, String> {
    pair.get(1)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| format!("not a [time, \"value\"] sample: {pair}"))
}

/// A range's points as one number. NaN points (e.g. 0/0 while idle) are
/// skipped, so they neither poison `max` nor count as 0 in `mean`.
fn fold(aggregate: Aggregate, points: &[f64]) -> Result<f64, String> {
    let points: Vec<f64> = points.iter().copied().filter(|v| !v.is_nan()).collect();
    let Some(&last) = points.last() else {
        return Err("the range has no points that are numbers".into());
    };
    Ok(match aggregate {
        Aggregate::Min => points.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Max => points.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Sum => points.iter().sum(),
        Aggregate::Mean => points.iter().sum::<f64>() / points.len() as f64,
        Aggregate::Last => last,
    })
}

/// Percent-encodes all but the unreserved characters (`A-Za-z0-9-._~`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::serve;
    use http_body_util::Full;
    use serde_json::json;

    fn probe(v: Value) -> PrometheusProbe {
        serde_json::from_value(v).unwrap()
    }

    fn ok(data: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({ "status": "success", "data": data })).unwrap()
    }

    fn vector(values: &[&str]) -> Vec<u8> {
        let result: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({ "metric": { "region": format!("r{i}") }, "value": [1.5, v] }))
            .collect();
        ok(json!({ "resultType": "vector", "result": result }))
    }

    fn matrix(points: &[&str]) -> Vec<u8> {
        let values: Vec<Value> = points
            .iter()
            .enumerate()
            .map(|(i, v)| json!([i as f64, v]))
            .collect();
        ok(json!({
            "resultType": "matrix",
            "result": [{ "metric": {}, "values": values }],
        }))
    }

    fn instant(body: &[u8]) -> Result<f64, String> {
        answer(200, body, None, EmptyResult::Fail)
    }

    #[test]
    fn a_scalar_is_its_value() {
        let body = ok(json!({ "resultType": "scalar", "result": [1.5, "42.25"] }));
        assert_eq!(instant(&body), Ok(42.25));
    }

    #[test]
    fn a_vector_of_one_series_is_its_value() {
        assert_eq!(instant(&vector(&["7"])), Ok(7.0));
        assert_eq!(instant(&vector(&["1e+06"])), Ok(1e6));
        assert_eq!(instant(&vector(&["+Inf"])), Ok(f64::INFINITY));
        assert_eq!(instant(&vector(&["-Inf"])), Ok(f64::NEG_INFINITY));
    }

    #[test]
    fn no_series_fails_unless_empty_means_zero() {
        let err = instant(&vector(&[])).unwrap_err();
        assert!(
            err.contains("no series") && err.contains("empty: zero"),
            "{err}"
        );
        assert_eq!(answer(200, &vector(&[]), None, EmptyResult::Zero), Ok(0.0));
        let no_range = ok(json!({ "resultType": "matrix", "result": [] }));
        let max = Some(Aggregate::Max);
        assert_eq!(answer(200, &no_range, max, EmptyResult::Zero), Ok(0.0));
        assert!(answer(200, &no_range, max, EmptyResult::Fail).is_err());
    }

    #[test]
    fn two_series_fail_naming_the_count_and_the_fix() {
        let err = instant(&vector(&["1", "2"])).unwrap_err();
        assert!(err.contains("returned 2 series, expected 1"), "{err}");
        assert!(err.contains("sum(...)"), "{err}");
        assert!(err.contains(r#"{region="r0"}, {region="r1"}"#), "{err}");
        let err = instant(&vector(&["1", "2", "3", "4"])).unwrap_err();
        assert!(
            err.contains("returned 4 series") && err.ends_with(", ..."),
            "{err}"
        );
        // Even when the one series wanted would have been empty: `empty` is about none.
        assert!(answer(200, &vector(&["1", "2"]), None, EmptyResult::Zero).is_err());
    }

    #[test]
    fn a_range_aggregates_its_points() {
        let body = matrix(&["3", "1", "4", "1", "5"]);
        let agg = |a| answer(200, &body, Some(a), EmptyResult::Fail);
        assert_eq!(agg(Aggregate::Min), Ok(1.0));
        assert_eq!(agg(Aggregate::Max), Ok(5.0));
        assert_eq!(agg(Aggregate::Mean), Ok(2.8));
        assert_eq!(agg(Aggregate::Sum), Ok(14.0));
        assert_eq!(agg(Aggregate::Last), Ok(5.0));
    }

    #[test]
    fn nan_fails_and_nan_points_of_a_range_are_skipped() {
        let err = instant(&vector(&["NaN"])).unwrap_err();
        assert!(err.contains("NaN"), "{err}");
        let body = ok(json!({ "resultType": "scalar", "result": [1.5, "NaN"] }));
        assert!(instant(&body).is_err());
        let body = matrix(&["2", "NaN", "6", "NaN"]);
        let agg = |a| answer(200, &body, Some(a), EmptyResult::Fail);
        assert_eq!(agg(Aggregate::Max), Ok(6.0));
        assert_eq!(agg(Aggregate::Mean), Ok(4.0));
        assert_eq!(agg(Aggregate::Last), Ok(6.0));
        let all_nan = matrix(&["NaN", "NaN"]);
        assert!(answer(200, &all_nan, Some(Aggregate::Min), EmptyResult::Zero).is_err());
        // +Inf and -Inf make NaN: a failure, not a value.
        let body = matrix(&["+Inf", "-Inf"]);
        assert!(answer(200, &body, Some(Aggregate::Mean), EmptyResult::Fail).is_err());
    }

    #[test]
    fn a_range_vector_from_an_instant_query_needs_range() {
        let err = instant(&matrix(&["1"])).unwrap_err();
        assert!(err.contains("set `range`"), "{err}");
    }

    #[test]
    fn an_error_status_fails_with_prometheus_own_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
        let err = answer(400, body, None, EmptyResult::Fail).unwrap_err();
        assert_eq!(
            err,
            r#"prometheus answered 400, bad_data: invalid parameter "query": 1:5: parse error: unexpected end of input"#
        );
        let err = answer(502, b"Bad Gateway\n", None, EmptyResult::Fail).unwrap_err();
        assert_eq!(err, "prometheus answered 502: Bad Gateway");
        let err = instant(b"<html>").unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
        let body = ok(json!({ "resultType": "string", "result": [1.5, "hi"] }));
        assert!(instant(&body).unwrap_err().contains("string"));
        let body =
            ok(json!({ "resultType": "vector", "result": [{ "metric": {}, "value": [1] }] }));
        assert!(instant(&body).unwrap_err().contains("sample"));
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"sum(rate(x{a="b c"}[1m])) / 2 + ü"#),
            "sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29%20%2F%202%20%2B%20%C3%BC"
        );
        assert_eq!(percent_encode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn instant_and_range_requests_are_built_from_now() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let plan = Plan::new(&probe(json!({ "url": "http://p:9090/", "query": "up" }))).unwrap();
        assert_eq!(
            plan.uri(now).unwrap().to_string(),
            "http://p:9090/api/v1/query?query=up&time=1700000000.250"
        );
        let c = probe(json!({
            "url": "http://p:9090/prom", "query": "up",
            "range": { "over": "1m", "aggregate": "max" },
        }));
        assert_eq!(
            Plan::new(&c).unwrap().uri(now).unwrap().to_string(),
            "http://p:9090/prom/api/v1/query_range?query=up&start=1699999940.250&end=1700000000.250&step=2"
        );
        // The default step is over/30, but at least 1s.
        let c = probe(json!({
            "url": "http://p:9090", "query": "up",
            "range": { "over": "10s", "aggregate": "last" },
        }));
        assert!(Plan::new(&c)
            .unwrap()
            .uri(now)
            .unwrap()
            .to_string()
            .ends_with("&step=1"));
    }

    #[test]
    fn check_reports_every_problem_at_once() {
        let c = probe(json!({
            "url": "https://p:9090", "query": " ", "interval": "0s", "timeout": "0s",
            "range": { "over": "0s", "step": "0s", "aggregate": "mean" },
        }));
        let problems = check(&c);
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].contains("only http://"), "{problems:?}");
        assert!(problems[1].starts_with("query: empty"), "{problems:?}");
        assert!(problems[2].starts_with("interval"), "{problems:?}");
        assert!(problems[3].starts_with("timeout"), "{problems:?}");
        assert!(problems[4].starts_with("range.over"), "{problems:?}");
        assert!(problems[5].starts_with("range.step"), "{problems:?}");
    }

    #[test]
    fn check_wants_a_base_url_and_sane_steps() {
        let bad = |url: &str| check(&probe(json!({ "url": url, "query": "up" })));
        assert!(
            bad("127.0.0.1:9090")[0].contains("scheme"),
            "{:?}",
            bad("127.0.0.1:9090")
        );
        assert!(bad("http://")[0].contains("url"));
        assert!(bad("http://p:9090/api/v1/query")[0].contains("adds /api/v1/query"));
        assert!(bad("http://p:9090/?x=1")[0].contains("adds /api/v1/query"));
        assert!(bad("http://p:9090").is_empty());
        assert!(bad("http://prom.internal/prometheus/").is_empty());
        let step = |over: &str, step: &str| {
            check(&probe(json!({
                "url": "http://p:9090", "query": "up",
                "range": { "over": over, "step": step, "aggregate": "sum" },
            })))
        };
        assert!(step("1m", "1s").is_empty());
        assert!(step("1m", "1m").is_empty());
        let coarse = step("1m", "2m");
        assert_eq!(coarse.len(), 1, "{coarse:?}");
        assert!(coarse[0].contains("longer than range.over"), "{coarse:?}");
        assert_eq!(step("1m", "0s").len(), 1, "{:?}", step("1m", "0s"));
        let too_fine = step("24h", "1s");
        assert_eq!(too_fine.len(), 1, "{too_fine:?}");
        assert!(too_fine[0].contains("86400 points"), "{too_fine:?}");
    }

    /// Runs `c` against a server answering `body` with `status` for `run`.
    async fn run_against(
        status: u16,
        body: Vec<u8>,
        c: Value,
        run: Duration,
    ) -> (
        simian_core::Metrics,
        Option<String>,
        Arc<Mutex<Vec<String>>>,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, body) = (seen.clone(), Bytes::from(body));
        let addr = serve(move |req: hyper::Request<hyper::body::Incoming>| {
            log.lock().unwrap().push(req.uri().to_string());
            let body = body.clone();
            async move {
                let mut r = hyper::Response::new(Full::new(body));
                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                r
            }
        })
        .await;
        let mut c = c;
        c["url"] = json!(format!("http://{addr}"));
        let rec = Arc::new(Recorder::new(Duration::from_secs(60)));
        let stats = Arc::new(PromStats::default());
        let cancel = CancellationToken::new();
        let h = spawn_with_stats(&probe(c), rec.clone(), cancel.clone(), stats.clone()).unwrap();
        tokio::time::sleep(run).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .unwrap()
            .unwrap();
        let m = rec.between(rec.started(), tokio::time::Instant::now());
        (m, stats.last_error(), seen)
    }

    #[tokio::test]
    async fn the_probe_asks_the_query_api_and_records_the_value() {
        let c = json!({ "query": "sum(up{job=\"a b\"})", "interval": "50ms" });
        let (m, err, seen) = run_against(200, vector(&["3"]), c, Duration::from_millis(300)).await;
        assert!(m.count >= 4 && m.errors == 0, "{m:?}");
        assert_eq!(m.value, Some(3.0));
        assert_eq!(err, None);
        let first = seen.lock().unwrap()[0].clone();
        assert!(
            first.starts_with("/api/v1/query?query=sum%28up%7Bjob%3D%22a%20b%22%7D%29&time="),
            "{first}"
        );
    }

    #[tokio::test]
    async fn failed_queries_record_failures_and_keep_the_last_reason() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.to_vec();
        let c = json!({ "query": "sum(", "interval": "50ms" });
        let (m, err, _) = run_against(400, body, c, Duration::from_millis(300)).await;
        assert!(m.count >= 4 && m.errors == m.count, "{m:?}");
        assert_eq!(m.value, None);
        assert_eq!(
            err.as_deref(),
            Some("prometheus answered 400, bad_data: parse error")
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_with_the_connect_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = probe(json!({
            "url": format!("http://127.0.0.1:{port}"), "query": "up", "interval": "50ms",
        }));
        let rec = Arc::new(Recorder::new(Duration::from_secs(60)));
        let stats = Arc::new(PromStats::default());
        let cancel = CancellationToken::new();
        let h = spawn_with_stats(&c, rec.clone(), cancel.clone(), stats.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
        h.await.unwrap();
        let m = rec.between(rec.started(), tokio::time::Instant::now());
        assert!(m.count >= 2 && m.errors == m.count, "{m:?}");
        let err = stats.last_error().unwrap();
        assert!(err.contains("onnect"), "{err}");
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_times_out() {
        let addr = crate::testutil::hold_forever().await;
        let c = probe(json!({
            "url": format!("http://{addr}"), "query": "up", "interval": "50ms", "timeout": "100ms",
        }));
        let rec = Arc::new(Recorder::new(Duration::from_secs(60)));
        let stats = Arc::new(PromStats::default());
        let cancel = CancellationToken::new();
        let h = spawn_with_stats(&c, rec.clone(), cancel.clone(), stats.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        let m = rec.between(rec.started(), tokio::time::Instant::now());
        assert!(m.count >= 3 && m.errors == m.count, "{m:?}");
        assert_eq!(
            stats.last_error().as_deref(),
            Some("no answer within the timeout of 100ms")
        );
    }
}
