//! The `prometheus` probe against a real Prometheus (Debian's `prometheus` package)
//! scraping a real lab's stores and an instance every second.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Keys held by us-east's store, as Prometheus last scraped them.
const EAST_KEYS: &str = r#"sum(simian_lab_store_keys{region="us-east"})"#;

/// A Prometheus server of its own, in a temp dir; killed on drop, also when the test fails.
struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` (name, `host:port` targets) every second and
    /// waits until it is ready and has scraped every target once.
    fn start(jobs: &[(&str, Vec<String>)]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config =
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n".to_string();
        for (job, targets) in jobs {
            config += &format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: {targets:?}\n"
            );
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let spawned = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the `prometheus` binary is not on PATH: run `.ci/run` or `apt-get install prometheus` \
                 (these tests need a real Prometheus)"
            ),
            Err(e) => panic!("cannot start prometheus: {e}"),
        };
        let mut p = Prometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let targets = jobs.iter().map(|(_, t)| t.len()).sum::<usize>() as f64;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log());
            }
            let ready = get(&format!("{}/-/ready", p.url)).is_some_and(|(code, _)| code == 200);
            if ready && p.query("count(up == 1)") == Some(targets) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not scrape all {targets} targets as up within 30s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of an instant query that yields one number, asked directly (not by simian).
    fn query(&self, promql: &str) -> Option<f64> {
        let (code, body) = get(&format!(
            "{}/api/v1/query?query={}",
            self.url,
            encode(promql)
        ))?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then_some(())?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits (at most 20s) until `promql` is `want`: Prometheus has scraped what the test did.
    fn wait_for(&self, promql: &str, want: f64) {
        let seen = eventually(Duration::from_secs(20), || self.query(promql) == Some(want));
        assert!(
            seen,
            "`{promql}` never became {want} (last: {:?})",
            self.query(promql)
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET over a std socket (HTTP/1.0, so the body ends at close): None if nothing answers.
fn get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let mut s = TcpStream::connect_timeout(&host.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.get(9..12)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Percent-encodes all but the unreserved characters, for a URL's query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A lab, and a Prometheus scraping both stores (job `store`) and instance
/// us-east-a-1 (job `zone-a`).
fn lab_with_prometheus() -> (Lab, Prometheus) {
    let lab = Lab::up();
    let state = lab.state();
    let host = |url: &Value| {
        url.as_str()
            .unwrap()
            .trim_start_matches("http://")
            .to_string()
    };
    let regions = state["regions"].as_array().unwrap();
    let stores = regions.iter().map(|r| host(&r["store"]["url"])).collect();
    let zone_a = regions
        .iter()
        .flat_map(|r| r["zones"].as_array().unwrap())
        .filter(|z| z["name"] == "us-east-a")
        .flat_map(|z| z["instances"].as_array().unwrap())
        .map(|i| host(&i["url"]))
        .collect::<Vec<_>>();
    assert_eq!(zone_a.len(), 1, "{state}");
    let prom = Prometheus::start(&[("store", stores), ("zone-a", zone_a)]);
    (lab, prom)
}

/// Writes `n` new keys to us-east's store and waits until Prometheus has scraped them;
/// returns how many keys it held before (the lab starts with a few).
fn put_keys(lab: &Lab, prom: &Prometheus, n: usize) -> f64 {
    let before = prom
        .query(EAST_KEYS)
        .expect("prometheus has scraped the store");
    let store = lab.state()["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "us-east")
        .unwrap()["store"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..n {
        let (code, body) = http("PUT", &format!("{store}/kv/prom-{i}"), Some("v"));
        assert_eq!(code, 204, "{body}");
    }
    prom.wait_for(EAST_KEYS, before + n as f64);
    before
}

/// `simian probe prometheus URL QUERY ARGS --json -q`: the exit-0 summary as JSON.
fn probe(lab: &Lab, url: &str, query: &str, args: &[&str]) -> Value {
    let out = lab
        .simian()
        .args(["probe", "prometheus", url, query, "--json", "-q"])
        .args(args)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// A short experiment over one prometheus probe `keys` of [`EAST_KEYS`].
fn experiment(prom: &Prometheus, hypothesis: &str, stop_when: &str) -> String {
    format!(
        r#"version: 1
name: prometheus-keys
steady_state:
  probes:
    keys:
      prometheus:
        url: "{url}"
        query: '{EAST_KEYS}'
        interval: 250ms
  hypothesis:
    - "{hypothesis}"
  before: 1s
  after: 1s
  window: 1s
stop_when: [{stop_when}]
method:
  - wait: 1s
"#,
        url = prom.url
    )
}

fn run(lab: &Lab, file: &Path) -> std::process::Output {
    lab.simian().arg("run").arg(file).output().unwrap()
}

#[test]
fn an_instant_query_reports_the_keys_written_to_a_store() {
    let (lab, prom) = lab_with_prometheus();
    let before = put_keys(&lab, &prom, 7);
    let s = probe(&lab, &prom.url, EAST_KEYS, &["-i", "250ms", "-d", "1s"]);
    assert_eq!(s["value"], before + 7.0, "{s}");
    assert!(s["count"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s.get("last_error").is_none(), "{s}");
}

#[test]
fn a_run_judges_hypothesis_and_stop_conditions_by_a_prometheus_value() {
    let (lab, prom) = lab_with_prometheus();
    let keys = put_keys(&lab, &prom, 5) + 5.0;
    let held = lab.experiment(
        "held.yaml",
        &experiment(&prom, &format!("keys.value == {keys}"), ""),
    );
    let out = run(&lab, &held);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("HELD (exit 0)"), "{}", stdout(&out));
    // The same value in a stop condition that is already true: nothing is run.
    let stop = lab.experiment(
        "stop.yaml",
        &experiment(
            &prom,
            "keys.value >= 0",
            &format!("\"keys.value >= {keys}\""),
        ),
    );
    let out = run(&lab, &stop);
    assert_exit(&out, 3);
    assert!(
        stdout(&out).contains(&format!(
            "stop condition `keys.value >= {keys}` is already true"
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_stop_condition_on_prometheus_up_aborts_when_the_zone_dies() {
    let (lab, prom) = lab_with_prometheus();
    let yaml = format!(
        r#"version: 1
name: zone-down-by-prometheus
steady_state:
  probes:
    zone_a:
      prometheus:
        url: "{url}"
        query: 'sum(up{{job="zone-a"}})'
        interval: 250ms
  hypothesis:
    - "zone_a.value >= 0"
  before: 1s
  after: 1s
  window: 1s
stop_when:
  - "zone_a.value < 1"
method:
  - inject:
      name: zone-down
      process:
        target: {{ lab: {{ zone: us-east-a }} }}
  - wait: 60s
guards:
  max_blast_radius: 50%
  max_duration: 2m
"#,
        url = prom.url
    );
    let f = lab.experiment("zone.yaml", &yaml);
    let started = Instant::now();
    let out = run(&lab, &f);
    assert_exit(&out, 2);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}: the stop did not trip early",
        started.elapsed()
    );
    assert!(
        stdout(&out).contains("stop condition `zone_a.value < 1` tripped"),
        "{}",
        stdout(&out)
    );
    assert!(
        eventually(Duration::from_secs(10), || lab.zone_serving("us-east-a")),
        "the zone did not come back"
    );
}

#[test]
fn two_series_fail_saying_to_aggregate() {
    let (lab, prom) = lab_with_prometheus();
    let s = probe(
        &lab,
        &prom.url,
        "simian_lab_store_keys",
        &["-i", "250ms", "-d", "1s"],
    );
    assert!(s["count"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["errors"], s["count"], "{s}");
    assert!(s.get("value").is_none(), "{s}");
    let why = s["last_error"].as_str().unwrap();
    assert!(why.contains("returned 2 series, expected 1"), "{why}");
    assert!(why.contains("sum(...)"), "{why}");
    assert!(why.contains(r#"region="us-west""#), "{why}");
}

#[test]
fn a_range_query_aggregates_what_prometheus_saw_over_time() {
    let (lab, prom) = lab_with_prometheus();
    // Prometheus has scraped the keys the lab starts with; give it a few more scrapes.
    std::thread::sleep(Duration::from_secs(2));
    let before = put_keys(&lab, &prom, 4);
    let range = |aggregate: &str| {
        let args = [
            "--range",
            "2m",
            "--step",
            "500ms",
            "--aggregate",
            aggregate,
            "-d",
            "600ms",
        ];
        probe(&lab, &prom.url, EAST_KEYS, &args)
    };
    let max = range("max");
    assert_eq!(max["value"], before + 4.0, "{max}");
    assert_eq!(max["errors"], 0, "{max}");
    assert_eq!(range("min")["value"], before);
    // Every point is one count or the other, and both were seen for a while.
    let mean = range("mean")["value"].as_f64().unwrap();
    assert!(mean > before && mean < before + 4.0, "mean {mean}");
    // A range that is not an aggregate of one series still fails clearly.
    let s = probe(
        &lab,
        &prom.url,
        "simian_lab_store_keys",
        &["--range", "10s", "--aggregate", "max", "-d", "600ms"],
    );
    assert!(
        s["last_error"].as_str().unwrap().contains("2 series"),
        "{s}"
    );
}
