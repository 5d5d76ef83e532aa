//! Latency Monkey end to end: toxics through the lab's proxy, judged, and removed exactly.

use std::time::Duration;

use crate::common::*;

fn proxy_api(lab: &Lab) -> String {
    lab.state()["proxy_api"]
        .as_str()
        .expect("the lab exposes its proxy API")
        .to_string()
}

fn toxic_names(api: &str, proxy: &str) -> Vec<String> {
    let (status, body) = http("GET", &format!("{api}/proxies/{proxy}/toxics"), None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

const SHORT: [&str; 8] = [
    "--var",
    "hold=4s",
    "--var",
    "before=2s",
    "--var",
    "after=2s",
    "--var",
    "rate=50",
];

#[test]
fn latency_monkey_scenario_holds_and_removes_exactly_its_toxics() {
    let lab = Lab::up();
    let api = proxy_api(&lab);
    // Somebody else's toxic on the same proxy must survive the run's revert.
    let (status, body) = http(
        "POST",
        &format!("{api}/proxies/store-us-east/toxics"),
        Some(r#"{"name":"keep-me","type":"latency","attributes":{"latency":1}}"#),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let json = lab.state_dir().join("run.json");
    let out = lab
        .simian()
        .args(["run", "scenarios/latency-monkey.yaml"])
        .args(SHORT)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(toxic_names(&api, "store-us-east"), vec!["keep-me"]);
    // The slowdown was real: the worst p50 during the method is well above the baseline's.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let base = r["baseline"]["users"]["p50"].as_f64().unwrap();
    let during: f64 = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["kind"]["event"] == "sample"
                && e["at_ms"].as_u64().unwrap() > 4000
                && e["at_ms"].as_u64().unwrap() < 6000
        })
        .filter_map(|e| e["kind"]["metrics"]["p50"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        during > base + 0.010,
        "p50 before {base}s, during {during}s: the latency did not land"
    );
}

#[test]
fn a_hypothesis_too_strict_for_the_slow_store_deviates() {
    let lab = Lab::up();
    let f = lab.experiment(
        "strict.yaml",
        &std::fs::read_to_string(root().join("scenarios/latency-monkey.yaml"))
            .unwrap()
            .replace("users.p99 < 250ms", "users.p50 < 200% of baseline"),
    );
    let out = lab
        .simian()
        .arg("run")
        .arg(&f)
        .args(SHORT)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(toxic_names(&proxy_api(&lab), "store-us-east").is_empty());
}

#[test]
fn recover_removes_the_toxics_of_a_killed_run() {
    let lab = Lab::up();
    let api = proxy_api(&lab);
    let journal = lab.state_dir().join("run.jsonl");
    let j = journal.to_str().unwrap();
    let mut child = lab.spawn_quiet([
        "run",
        "scenarios/latency-monkey.yaml",
        "--var",
        "hold=90s",
        "--var",
        "before=1s",
        "--journal",
        j,
    ]);
    assert!(
        eventually(Duration::from_secs(20), || toxic_names(
            &api,
            "store-us-east"
        )
        .len()
            == 2),
        "toxics never landed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        toxic_names(&api, "store-us-east"),
        vec!["simian-slow-store-errors", "simian-slow-store-latency"]
    );
    let out = lab.simian().arg("recover").arg(&journal).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(toxic_names(&api, "store-us-east").is_empty());
    let again = lab.simian().arg("recover").arg(&journal).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
}

#[test]
fn an_unknown_proxy_is_refused_with_the_known_ones() {
    let lab = Lab::up();
    let f = lab.experiment(
        "typo.yaml",
        &std::fs::read_to_string(root().join("scenarios/latency-monkey.yaml"))
            .unwrap()
            .replace("proxy: store-us-east", "proxy: store-us-eats"),
    );
    let out = lab.simian().arg("plan").arg(&f).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no proxy named `store-us-eats`"), "{err}");
    assert!(err.contains("store-us-east"), "{err}");
}

#[test]
fn a_run_can_start_its_own_proxy_and_slow_it_down() {
    let lab = Lab::up();
    let yaml = r#"version: 1
name: own-proxy
proxies:
  front: { upstream: "${lab.us-east.edge}", mode: http }
steady_state:
  probes:
    users: { http: { url: "http://${proxies.front}/play", rate: 50 } }
  hypothesis: [ "users.success_ratio >= 99%", "users.p99 < 2s" ]
  before: 2s
  window: 1s
  after: 1s
method:
  - inject:
      name: slow-front
      latency:
        proxy: front
        distribution: { constant: { value: 40ms } }
  - wait: 3s
"#;
    let f = lab.experiment("own.yaml", yaml);
    let json = lab.state_dir().join("run.json");
    let out = lab
        .simian()
        .arg("run")
        .arg(&f)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let during = r["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["phase"] == "method" && a["assertion"] == "users.p99 < 2s")
        .unwrap();
    assert!(
        during["measured"].as_f64().unwrap() >= 0.040,
        "the run's own proxy did not delay: {during}"
    );
    assert!(r["baseline"]["users"]["p50"].as_f64().unwrap() < 0.040);
    // The proxy lived only as long as the run: its address refuses now.
    let addr = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| {
            e["kind"]["targets"]
                .as_array()
                .map(|t| t[0].as_str().unwrap().to_string())
        })
        .unwrap();
    let listen = addr.split(['(', ' ']).nth(3).unwrap().to_string();
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "{listen} still accepts after the run"
    );
}

#[test]
fn via_toxiproxy_uses_the_closest_uniform_and_says_so() {
    let lab = Lab::up();
    let api = proxy_api(&lab);
    let yaml = std::fs::read_to_string(root().join("scenarios/latency-monkey.yaml"))
        .unwrap()
        .replace("        errors: { rate: 1%, status: 503 }\n", "")
        .replace(
            "        proxy: store-us-east",
            "        via: toxiproxy\n        proxy: store-us-east",
        );
    let f = lab.experiment("toxiproxy.yaml", &yaml);
    let plan = lab.simian().arg("plan").arg(&f).output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(
        stdout(&plan).contains("warning: Toxiproxy cannot express lognormal"),
        "{}",
        stdout(&plan)
    );
    let journal = lab.state_dir().join("t.jsonl");
    let (f, j) = (f.to_str().unwrap(), journal.to_str().unwrap());
    let mut child = lab.spawn_quiet([
        "run",
        f,
        "--var",
        "hold=90s",
        "--var",
        "before=1s",
        "--journal",
        j,
    ]);
    assert!(
        eventually(Duration::from_secs(20), || toxic_names(
            &api,
            "store-us-east"
        )
        .len()
            == 1),
        "toxic never landed"
    );
    let (_, body) = http("GET", &format!("{api}/proxies/store-us-east/toxics"), None);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = lab.simian().arg("recover").arg(&journal).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    let attrs = &t[0]["attributes"];
    // Toxiproxy's own attributes only: whole milliseconds, no distribution.
    assert!(attrs.get("distribution").is_none(), "{attrs}");
    let (l, j) = (
        attrs["latency"].as_u64().unwrap(),
        attrs["jitter"].as_u64().unwrap(),
    );
    assert!(
        (18..=30).contains(&l) && j > 0 && j <= l,
        "latency {l} ± {j}"
    );
}
