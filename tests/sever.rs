//! `sever` cuts links through the lab's proxy; only the cut region suffers; revert restores.

use std::time::Duration;

use crate::common::*;

fn experiment(how: &str, hold: &str) -> String {
    format!(
        r#"version: 1
name: sever-store
steady_state:
  probes:
    east: {{ http: {{ url: "${{lab.us-east.edge}}/play", rate: 40, timeout: 1500ms }} }}
    west: {{ http: {{ url: "${{lab.us-west.edge}}/play", rate: 40, timeout: 1500ms }} }}
  hypothesis:
    - west.success_ratio >= 99%
    - east.success_ratio >= 99%
  before: 2s
  window: 1s
  after: 2s
  settle: 1s
method:
  - inject:
      name: cut
      sever:
        api: "${{lab.proxy}}"
        proxies: [ store-us-east ]
        how: {how}
  - wait: {hold}
guards:
  max_duration: 2m
"#
    )
}

fn proxy(lab: &Lab, name: &str) -> serde_json::Value {
    let api = lab.state()["proxy_api"].as_str().unwrap().to_string();
    let (status, body) = http("GET", &format!("{api}/proxies/{name}"), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn disabling_a_store_proxy_fails_only_that_region_and_comes_back() {
    let lab = Lab::up();
    let f = lab.experiment("cut.yaml", &experiment("disable", "3s"));
    let out = lab.simian().arg("run").arg(&f).output().unwrap();
    let s = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{s}\nstderr:\n{}",
        stderr(&out)
    );
    assert!(s.contains("✘ during  east.success_ratio >= 99%"), "{s}");
    assert!(s.contains("✔ during  west.success_ratio >= 99%"), "{s}");
    assert!(s.contains("✔ after   east.success_ratio >= 99%"), "{s}");
    assert_eq!(proxy(&lab, "store-us-east")["enabled"], true);
}

#[test]
fn a_blackholed_link_is_restored_by_recover_after_sigkill() {
    let lab = Lab::up();
    let f = lab.experiment("hole.yaml", &experiment("blackhole", "90s"));
    let journal = lab.state_dir().join("hole.jsonl");
    let (f, j) = (f.to_str().unwrap(), journal.to_str().unwrap());
    let mut child = lab.spawn_quiet(["run", f, "--journal", j]);
    let toxics = || {
        proxy(&lab, "store-us-east")["toxics"]
            .as_array()
            .unwrap()
            .len()
    };
    assert!(
        eventually(Duration::from_secs(20), || toxics() == 2),
        "blackhole never landed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(toxics(), 2, "the fault must outlive a SIGKILLed runner");
    let out = lab.simian().arg("recover").arg(&journal).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(toxics(), 0);
    assert_eq!(proxy(&lab, "store-us-east")["enabled"], true);
}
