//! Bad input gets a clear error (file:line:column, a caret, a hint), exit 3, and changes nothing.

use std::process::Command;

use crate::common::*;

fn fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_malformed_experiment_is_refused_with_its_position() {
    let empty = tempfile::tempdir().unwrap(); // no lab here: `lab.*` variables are placeholders
    let names = fixtures();
    assert!(names.len() >= 15, "only {} fixtures", names.len());
    for name in names {
        let rel = format!("tests/fixtures/invalid/{name}");
        let out = Command::new(BIN)
            .current_dir(root())
            .env("SIMIAN_STATE_DIR", empty.path())
            .args(["validate", &rel])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        let located =
            regex::Regex::new(&format!(r"--> {}:\d+:\d+\n", regex::escape(&rel))).unwrap();
        assert!(located.is_match(&err), "{name} has no file:line:col: {err}");
        assert!(
            err.contains(" | ") && err.contains('^'),
            "{name} has no caret: {err}"
        );
        insta::assert_snapshot!(name.trim_end_matches(".yaml"), err);
    }
}

#[test]
fn malformed_experiments_inject_nothing() {
    let lab = Lab::up();
    let pids = lab.all_pids();
    for name in fixtures() {
        let out = lab
            .simian()
            .args(["run", &format!("tests/fixtures/invalid/{name}")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{name}: {}", stderr(&out));
    }
    assert_eq!(lab.all_pids(), pids, "an instance was restarted or killed");
    assert!(pids
        .iter()
        .all(|p| proc_state(*p).is_some_and(|s| s != 'T' && s != 'Z')));
    assert!(
        !lab.state_dir().join("runs").exists(),
        "a journal was written, so something started"
    );
}

#[test]
fn blast_radius_over_the_guard_is_refused_before_injecting() {
    let lab = Lab::up();
    let pids = lab.all_pids();
    // A whole region is 3 of the 6 lab instances: 50%, over a 34% guard.
    let yaml = gorilla("us-east-a", &["users.success_ratio >= 99%"], &[], "3s")
        .replace(
            "target: { lab: { zone: us-east-a } }",
            "target: { lab: { region: us-east } }",
        )
        .replace("max_blast_radius: 50%", "max_blast_radius: 34%");
    let f = lab.experiment("wide.yaml", &yaml);
    let out = lab.simian().arg("run").arg(&f).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("blast radius over the guard: zone-down would hit 3 of 6 lab instances (50%), the guard allows 34%"), "{err}");
    let line = yaml
        .lines()
        .position(|l| l.contains("max_blast_radius"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("wide.yaml:{line}:21")), "{err}");
    assert_eq!(lab.all_pids(), pids);
    // `plan` refuses the same way.
    let plan = lab.simian().arg("plan").arg(&f).output().unwrap();
    assert_eq!(plan.status.code(), Some(3));
}

#[test]
fn a_selector_matching_no_instance_is_refused_with_a_hint() {
    let lab = Lab::up();
    let yaml = gorilla("us-east-q", &["users.success_ratio >= 99%"], &[], "3s");
    let f = lab.experiment("nozone.yaml", &yaml);
    let out = lab.simian().arg("plan").arg(&f).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("no lab instance matches this selector"),
        "{err}"
    );
    assert!(
        err.contains("zones us-east-a, us-east-b, us-east-c"),
        "{err}"
    );
}

#[test]
fn plan_prints_the_resolved_targets_and_injects_nothing() {
    let lab = Lab::up();
    let pids = lab.all_pids();
    let out = lab
        .simian()
        .args(["plan", "scenarios/chaos-gorilla.yaml", "--seed", "1"])
        .output()
        .unwrap();
    let s = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        s.contains("inject zone-down: SIGKILL on 1 of 6 lab instances"),
        "{s}"
    );
    assert!(s.contains("- lab instance us-east-a-1"), "{s}");
    assert!(
        s.contains("blast radius: 1 of 6 lab instances (17%; guard 34%)"),
        "{s}"
    );
    assert_eq!(lab.all_pids(), pids);
}

#[test]
fn a_percent_guard_cannot_bound_network_paths_but_a_count_can() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = |guard: &str| {
        format!(
            "version: 1\nname: cut\nsteady_state:\n  probes:\n    p: {{ tcp: {{ address: \"127.0.0.1:9\" }} }}\n  hypothesis:\n    - p.success_ratio >= 0%\nmethod:\n  - inject:\n      name: cut\n      netfilter:\n        partition: {{ sever: {{ a: [10.1.0.0/16], b: [10.2.0.0/16] }} }}\n      duration: 5s\nguards:\n  max_blast_radius: {guard}\n"
        )
    };
    let f = dir.path().join("cut.yaml");
    std::fs::write(&f, yaml("50%")).unwrap();
    let out = simian_in(dir.path()).arg("plan").arg(&f).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("a percent blast radius cannot bound cut: 2 network paths is not a share of anything that can be counted"), "{err}");
    assert!(err.contains("cut.yaml:15:21"), "{err}");
    assert!(err.contains("hint: give the guard as a count"), "{err}");
    std::fs::write(&f, yaml("2")).unwrap();
    let out = simian_in(dir.path()).arg("plan").arg(&f).output().unwrap();
    let s = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        s.contains("blast radius: 2 network paths (nothing to count against; guard 2)"),
        "{s}"
    );
    assert!(
        s.contains("lease: 1m: it ends by itself 1m after the runner's last renewal"),
        "{s}"
    );
    std::fs::write(&f, yaml("1")).unwrap();
    let out = simian_in(dir.path()).arg("plan").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a count still bounds them");
    assert!(
        stderr(&out).contains("would hit 2 network paths, the guard allows 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_ready_scenario_validates() {
    let empty = tempfile::tempdir().unwrap();
    let mut files: Vec<String> = ["scenarios", "scenarios/aws"]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(root().join(dir))
                .unwrap()
                .map(move |e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let out = Command::new(BIN)
        .current_dir(root())
        .env("SIMIAN_STATE_DIR", empty.path())
        .arg("validate")
        .args(&files)
        // What the AWS scenarios ask of whoever runs them.
        .args([
            "--var",
            "service_url=http://127.0.0.1:9/health",
            "--var",
            "zone=us-east-1a",
            "--var",
            "hosted_zone=example.com",
            "--var",
            "record=api.example.com",
            "--var",
            "alarm=api-5xx",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn schema_describes_the_format() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"));
    for k in ["version", "steady_state", "method", "guards", "stop_when"] {
        assert!(v["properties"][k].is_object(), "schema lacks {k}");
    }
    assert_eq!(
        v["additionalProperties"], false,
        "unknown keys must be errors in editors too"
    );
}

#[test]
fn a_bad_var_flag_is_a_clear_error() {
    let out = Command::new(BIN)
        .current_dir(root())
        .args([
            "validate",
            "scenarios/chaos-gorilla.yaml",
            "--var",
            "novalue",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("invalid --var `novalue`: expected NAME=VALUE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn completions_are_generated_for_bash() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("simian__run") || stdout(&out).contains("_simian"),
        "{}",
        stdout(&out)
    );
}
