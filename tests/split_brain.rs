//! Split-brain on the loopback lab: `scenarios/split-brain.yaml` cuts the replication links
//! between the regions; both keep serving, replication queues, and after healing nothing
//! is lost. (`--netns` labs, where real packets are dropped, are in `split_brain_netns`.)

use crate::common::*;

/// The scenario, shortened: `queued` must grow during the split and drain after it.
#[test]
fn the_split_brain_scenario_queues_during_the_split_and_loses_nothing() {
    let lab = Lab::up();
    let out = lab
        .simian()
        .args(["run", "scenarios/split-brain.yaml"])
        .args([
            "--var",
            "hold=5s",
            "--var",
            "before=2s",
            "--var",
            "settle=5s",
        ])
        .args([
            "--var",
            "after=2s",
            "--var",
            "records=10",
            "--var",
            "rate=20",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let (s, e) = (stdout(&out), stderr(&out));
    for line in [
        "✔ during  east.success_ratio >= 99%",
        "✔ during  west.success_ratio >= 99%",
        "✔ during  east-to-west.lost == 0",
        "✔ after   east-to-west.queued == 0",
        "✔ after   west-to-east.queued == 0",
        "✔ after   west-to-east.visible == 100%",
    ] {
        assert!(s.contains(line), "no `{line}` in\n{s}");
    }
    // The split really held replication back: records queued, none visible at 500ms.
    let most_queued = e
        .lines()
        .filter(|l| l.contains("east-to-west: visible 0.00%"))
        .filter_map(|l| {
            l.split("queued ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0u64);
    assert!(most_queued >= 10, "nothing queued during the split:\n{e}");
    let api = lab.state()["proxy_api"].as_str().unwrap().to_string();
    for link in ["repl-us-east-us-west", "repl-us-west-us-east"] {
        let (status, body) = http("GET", &format!("{api}/proxies/{link}"), None);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"enabled\":true"), "{link} left cut: {body}");
    }
}

#[test]
fn a_split_of_a_region_the_lab_lacks_is_refused_before_anything_runs() {
    let lab = Lab::up();
    let f = lab.experiment(
        "split.yaml",
        r#"version: 1
name: bad-split
steady_state:
  probes:
    east: { http: { url: "${lab.us-east.edge}/play", rate: 10 } }
  hypothesis: [ east.success_ratio >= 99% ]
  before: 1s
  after: 1s
method:
  - inject: { name: split, split: { regions: [us-east, eu-west] } }
  - wait: 1s
"#,
    );
    let out = lab.simian().arg("run").arg(&f).output().unwrap();
    assert_exit(&out, 3);
    let e = stderr(&out);
    assert!(e.contains("no region `eu-west`"), "{e}");
    assert!(e.contains("its regions are us-east, us-west"), "{e}");
}
