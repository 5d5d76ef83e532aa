//! The tool never becomes the outage: a SIGKILLed or hung runner is reverted by its
//! guardian, and the kill switch (`simian abort`) stops runs and keeps new ones out.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::*;

/// A local `sleep` stopped (SIGSTOP) for `hold`.
fn stop_for(dir: &Path, victim: &str, hold: &str) -> PathBuf {
    stop_sleep(dir, "guarded", victim, &format!("  - wait: {hold}\n"), "")
}

/// Pids of `simian guard` processes watching `journal`.
fn guardians(journal: &Path) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", &format!("guard --journal {}", journal.display())])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn journal_text(j: &Path) -> String {
    std::fs::read_to_string(j).unwrap_or_default()
}

#[test]
fn a_sigkilled_run_is_reverted_by_its_guardian() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.701");
    let f = stop_for(dir.path(), "2999\\.701", "5m");
    let journal = dir.path().join("run.jsonl");
    let mut run = simian_in(dir.path())
        .arg("run")
        .arg(&f)
        .arg("--journal")
        .arg(&journal)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stopped = eventually(Duration::from_secs(20), || proc_state(pid) == Some('T'));
    let watched = !guardians(&journal).is_empty();
    run.kill().unwrap(); // SIGKILL: the runner itself reverts nothing
    run.wait().unwrap();
    let continued = eventually(Duration::from_secs(10), || {
        proc_state(pid).is_some_and(|s| s != 'T')
    });
    let gone = eventually(Duration::from_secs(5), || guardians(&journal).is_empty());
    sigkill(pid);
    assert!(stopped, "the fault was never applied");
    assert!(watched, "no guardian watched the run");
    assert!(
        continued,
        "the guardian did not revert the SIGKILLed run's fault"
    );
    assert!(gone, "the guardian outlived its work");
    let j = journal_text(&journal);
    assert!(j.contains(r#""by":"guardian""#), "{j}");
    let log = std::fs::read_to_string(journal.with_extension("guardian.log")).unwrap();
    assert!(log.contains("died: reverting every fault"), "{log}");
    // Nothing is left for recover.
    let rec = simian_in(dir.path())
        .arg("recover")
        .arg(&journal)
        .output()
        .unwrap();
    assert_exit(&rec, 0);
}

#[test]
fn a_hung_runner_is_killed_and_reverted_after_the_heartbeat_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.702");
    let f = stop_for(dir.path(), "2999\\.702", "5m");
    let journal = dir.path().join("run.jsonl");
    let mut run = simian_in(dir.path())
        .args(["run", "--heartbeat-timeout", "2s", "--journal"])
        .arg(&journal)
        .arg(&f)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stopped = eventually(Duration::from_secs(20), || proc_state(pid) == Some('T'));
    // Freeze the runner, as a suspended machine or a deadlock would.
    kill(Pid::from_raw(run.id() as i32), Signal::SIGSTOP).unwrap();
    let continued = eventually(Duration::from_secs(15), || {
        proc_state(pid).is_some_and(|s| s != 'T')
    });
    let status = run.wait().unwrap();
    sigkill(pid);
    assert!(stopped, "the fault was never applied");
    assert!(continued, "the guardian did not revert a hung run");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the hung runner was not killed");
    let log = std::fs::read_to_string(journal.with_extension("guardian.log")).unwrap();
    assert!(log.contains("stopped beating"), "{log}");
}

#[test]
fn a_run_that_ends_itself_leaves_no_guardian_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.703");
    let f = stop_for(dir.path(), "2999\\.703", "1s");
    let journal = dir.path().join("run.jsonl");
    let out = simian_in(dir.path())
        .arg("run")
        .arg(&f)
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    let state = proc_state(pid);
    sigkill(pid);
    assert_exit(&out, 0);
    assert!(state.is_some_and(|s| s != 'T'));
    assert!(
        guardians(&journal).is_empty(),
        "a guardian is still running"
    );
    assert!(!journal.with_extension("heartbeat").exists());
    let j = journal_text(&journal);
    assert!(
        j.contains(r#""by":"run""#) && !j.contains(r#""by":"guardian""#),
        "{j}"
    );
}

#[test]
fn simian_abort_reverts_a_running_experiment_and_keeps_new_ones_out() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.704");
    let f = stop_for(dir.path(), "2999\\.704", "5m");
    let run = simian_in(dir.path())
        .arg("run")
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = eventually(Duration::from_secs(20), || proc_state(pid) == Some('T'));
    let on = simian_in(dir.path())
        .args(["abort", "--reason", "checkout errors"])
        .output()
        .unwrap();
    let out = run.wait_with_output().unwrap();
    let state = proc_state(pid);
    let refused = simian_in(dir.path()).arg("run").arg(&f).output().unwrap();
    let off = simian_in(dir.path())
        .args(["abort", "--clear"])
        .output()
        .unwrap();
    sigkill(pid);
    assert!(stopped, "the fault was never applied");
    assert_exit(&on, 0);
    assert_exit(&out, 2);
    assert!(stdout(&out).contains("kill switch"), "{}", stdout(&out));
    assert!(state.is_some_and(|s| s != 'T'), "still stopped: {state:?}");
    assert_exit(&refused, 3);
    assert!(
        stderr(&refused).contains("the kill switch is on"),
        "{}",
        stderr(&refused)
    );
    assert_exit(&off, 0);
    assert!(!dir.path().join("kill-switch").exists());
}

/// A lab scenario as the campaign runs it: the real file, shortened.
struct Scenario {
    file: &'static str,
    vars: &'static [&'static str],
    /// About how long it runs, in ms: the SIGKILL comes within this.
    lasts: u64,
    /// Its fault has a lease (so it also ends with no guardian and no recover).
    leased: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        file: "scenarios/chaos-gorilla.yaml",
        vars: &["before=1s", "after=1s", "hold=3s", "rate=20"],
        lasts: 5500,
        leased: false,
    },
    Scenario {
        file: "scenarios/split-brain.yaml",
        vars: &[
            "before=1s",
            "hold=3s",
            "settle=3s",
            "after=1s",
            "rate=20",
            "records=5",
        ],
        lasts: 6000,
        leased: true,
    },
    Scenario {
        file: "scenarios/latency-monkey.yaml",
        vars: &["before=1s", "hold=3s", "after=1s", "rate=20"],
        lasts: 5500,
        leased: true,
    },
    Scenario {
        file: "scenarios/chaos-kong.yaml",
        vars: &[
            "before=1s",
            "every=1s",
            "hold=1s",
            "window=1s",
            "after=1s",
            "rate=20",
        ],
        lasts: 11000,
        leased: false,
    },
];

/// How a killed run's faults get undone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Undo {
    Guardian,
    Recover,
    /// No guardian, no recover: only the backend's own expiry (a 2 s lease).
    Lease,
}

/// What the lab shows of a fault still in force: an instance stopped or dead, a proxy
/// disabled or with a toxic, or the global steering not as it was.
fn residue(lab: &Lab, steering: &str) -> Vec<String> {
    let st = lab.state();
    let mut out = Vec::new();
    for r in st["regions"].as_array().unwrap() {
        for z in r["zones"].as_array().unwrap() {
            let zone = z["name"].as_str().unwrap_or_default();
            if !lab.zone_serving(zone) {
                out.push(format!("zone {zone} not serving"));
            }
        }
    }
    let api = st["proxy_api"].as_str().unwrap();
    let (_, body) = http("GET", &format!("{api}/proxies"), None);
    let proxies: serde_json::Value = serde_json::from_str(&body).unwrap();
    for (name, p) in proxies.as_object().unwrap() {
        if p["enabled"] != true {
            out.push(format!("proxy {name} disabled"));
        }
        for t in p["toxics"].as_array().unwrap() {
            out.push(format!("proxy {name} has toxic {}", t["name"]));
        }
    }
    let global = st["global"].as_str().unwrap();
    let (_, now) = http("GET", &format!("{global}/steering/us-east"), None);
    if now.trim() != steering {
        out.push(format!("steering {} (was {steering})", now.trim()));
    }
    out
}

#[test]
fn runs_sigkilled_at_random_moments_leave_no_residual_fault() {
    // Bounded: one run of each scenario here; `benches/kill-campaign.sh` runs 100.
    let (seed, runs) = campaign("SIMIAN_CAMPAIGN_RUNS", 4);
    let mut rng = Rng(seed);
    let lab = Lab::up();
    let global = lab.state()["global"].as_str().unwrap().to_string();
    let (_, steering) = http("GET", &format!("{global}/steering/us-east"), None);
    let steering = steering.trim().to_string();
    assert!(
        residue(&lab, &steering).is_empty(),
        "{:?}",
        residue(&lab, &steering)
    );
    let zones = ["us-east-a", "us-east-b", "us-east-c"];
    let mut residual = Vec::new();
    let mut undone = std::collections::BTreeMap::new();
    for i in 0..runs {
        // Every scenario in turn, so even a short campaign covers each.
        let sc = &SCENARIOS[i % SCENARIOS.len()];
        let at = Duration::from_millis(300 + rng.below(sc.lasts));
        // Each scenario cycles through the ways its faults can be undone; the first round
        // covers all three: gorilla by its guardian, split and latency by their leases,
        // kong by `simian recover`.
        let round = i / SCENARIOS.len();
        let undo = if sc.leased {
            [Undo::Lease, Undo::Guardian, Undo::Recover][round % 3]
        } else {
            let kong = usize::from(sc.file.contains("kong"));
            [Undo::Guardian, Undo::Recover][(round + kong) % 2]
        };
        *undone.entry(format!("{undo:?}")).or_insert(0) += 1;
        let zone = zones[rng.below(3) as usize];
        let journal = lab.state_dir().join(format!("kill-{i}.jsonl"));
        let what = format!(
            "seed {seed:#x} run {i}: {}, SIGKILL at {at:?}, {undo:?}",
            sc.file
        );
        let mut run = lab.simian();
        run.env_remove("SIMIAN_NO_GUARDIAN")
            .args(["run", sc.file, "--journal"])
            .arg(&journal)
            .args(["--var", &format!("zone={zone}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for v in sc.vars {
            run.args(["--var", v]);
        }
        match undo {
            Undo::Guardian => {}
            Undo::Recover => {
                run.arg("--no-guardian");
            }
            Undo::Lease => {
                run.args(["--no-guardian", "--lease", "2s"]);
            }
        }
        let mut run = run.spawn().unwrap();
        std::thread::sleep(at);
        let _ = run.kill();
        run.wait().unwrap();
        match undo {
            Undo::Guardian => assert!(
                eventually(Duration::from_secs(10), || guardians(&journal).is_empty()),
                "{what}: the guardian did not finish"
            ),
            Undo::Recover if journal.exists() => {
                let out = lab.simian().arg("recover").arg(&journal).output().unwrap();
                assert_exit(&out, 0);
            }
            _ => {}
        }
        let clean = eventually(Duration::from_secs(15), || {
            residue(&lab, &steering).is_empty()
        });
        if !clean {
            residual.push(format!(
                "{what}: {:?}\n{}",
                residue(&lab, &steering),
                journal_text(&journal)
            ));
        }
        // Tidy up for the next run (a lease leaves the journal unreverted; a residual
        // fault is counted once).
        if journal.exists() {
            let out = lab.simian().arg("recover").arg(&journal).output().unwrap();
            assert_exit(&out, 0);
        }
        eventually(Duration::from_secs(15), || {
            residue(&lab, &steering).is_empty()
        });
    }
    println!(
        "{runs} runs, {} residual faults (seed {seed:#x}; undone by {undone:?})",
        residual.len()
    );
    assert!(
        residual.is_empty(),
        "faults left behind:\n{}",
        residual.join("\n")
    );
}

#[test]
fn two_runs_never_break_the_same_lab_at_once() {
    let lab = Lab::up();
    let f = lab.experiment(
        "a.yaml",
        &gorilla("us-east-a", &["users.success_ratio >= 50%"], &[], "5m")
            .replace("max_duration: 2m", "max_duration: 10m"),
    );
    let g = lab.experiment(
        "b.yaml",
        &gorilla("us-east-b", &["users.success_ratio >= 50%"], &[], "1s"),
    );
    let journal = lab.state_dir().join("a.jsonl");
    let mut first = lab
        .simian()
        .env("SIMIAN_NO_GUARDIAN", "1")
        .arg("run")
        .arg("--journal")
        .arg(&journal)
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let locked = eventually(Duration::from_secs(20), || {
        std::fs::read_dir(lab.state_dir().join("locks"))
            .map(|d| d.count() > 0)
            .unwrap_or(false)
    });
    if !locked {
        let _ = first.kill();
        let out = first.wait_with_output().unwrap();
        panic!(
            "the first run took no lock: {} {}",
            stdout(&out),
            stderr(&out)
        );
    }
    let second = lab.simian().arg("run").arg(&g).output().unwrap();
    assert_exit(&second, 3);
    assert!(
        stderr(&second).contains("is already breaking lab instances"),
        "{}",
        stderr(&second)
    );
    assert!(lab.zone_serving("us-east-b"), "the refused run injected");

    // The first dies with its fault applied and no guardian: the lock stays until recover.
    assert!(eventually(Duration::from_secs(20), || !lab.zone_serving("us-east-a")));
    first.kill().unwrap();
    first.wait().unwrap();
    let blocked = lab.simian().arg("run").arg(&g).output().unwrap();
    assert_exit(&blocked, 3);
    assert!(
        stderr(&blocked).contains("simian recover"),
        "{}",
        stderr(&blocked)
    );
    assert_exit(
        &lab.simian().arg("recover").arg(&journal).output().unwrap(),
        0,
    );
    let after = lab.simian().arg("run").arg(&g).output().unwrap();
    assert_exit(&after, 0);
    assert!(
        stderr(&after).contains("taking over the lock"),
        "{}",
        stderr(&after)
    );
}

#[test]
fn an_outage_check_that_fails_keeps_the_run_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let pid = detached_sleep("2999.705");
    let incident = dir.path().join("incident-open");
    let yaml = std::fs::read_to_string(stop_for(dir.path(), "2999\\.705", "1s"))
        .unwrap()
        .replace(
            "guards:\n",
            &format!(
                "guards:\n  outage_check: {{ run: \"if test -e {}; then echo incident open >&2; exit 1; fi\" }}\n",
                incident.display()
            ),
        );
    let f = dir.path().join("checked.yaml");
    std::fs::write(&f, yaml).unwrap();
    std::fs::write(&incident, "").unwrap();
    let refused = simian_in(dir.path()).arg("run").arg(&f).output().unwrap();
    let untouched = proc_state(pid);
    let journaled = dir.path().join("runs").exists();
    std::fs::remove_file(&incident).unwrap();
    let ran = simian_in(dir.path()).arg("run").arg(&f).output().unwrap();
    sigkill(pid);
    assert_exit(&refused, 3);
    assert!(
        stderr(&refused).contains("the outage check failed")
            && stderr(&refused).contains("incident open"),
        "{}",
        stderr(&refused)
    );
    assert!(untouched.is_some_and(|s| s != 'T'));
    assert!(!journaled, "a refused run left a journal");
    assert_exit(&ran, 0);
}
