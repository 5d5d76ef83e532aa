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

/// Split-brain on a `--netns` lab, as root: `split` is an nftables table in the lab's router
/// namespace. These tests check the packets, the table's life and the host's ruleset.
mod netns {
    use std::process::{Child, Command, Output, Stdio};
    use std::time::Duration;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    use crate::common::{assert_exit, campaign, root, stdout, Rng, BIN};
    use crate::lab_netns::{
        connects_from, region, root_or_skip, store_url, str_of, wait_until, NetLab,
    };

    /// What the tests need of a running netns lab.
    struct Split {
        lab: NetLab,
        core: String,
        east_ns: String,
        west_ns: String,
        east_store: String,
        west_store: String,
    }

    impl Split {
        fn up() -> Split {
            let lab = NetLab::new();
            let state = lab.up(&["--zones", "2"]);
            let net = &state["netns"];
            let addr = |r: &str| {
                store_url(&state, r)
                    .trim_start_matches("http://")
                    .to_string()
            };
            Split {
                core: str_of(&net["core"]),
                east_ns: str_of(&region(net, "us-east")["netns"]),
                west_ns: str_of(&region(net, "us-west")["netns"]),
                east_store: addr("us-east"),
                west_store: addr("us-west"),
                lab,
            }
        }

        /// `simian run scenarios/split-brain.yaml` in the background, shortened, without a
        /// guardian (SIGKILL must leave the split for `simian recover` to undo).
        fn run(&self, hold: &str, extra: &[&str]) -> Run {
            self.run_guarded(hold, extra, false)
        }

        fn run_guarded(&self, hold: &str, extra: &[&str], guardian: bool) -> Run {
            let mut cmd = Command::new(BIN);
            cmd.env("SIMIAN_NO_GUARDIAN", if guardian { "0" } else { "1" });
            let child = cmd
                .current_dir(root())
                .arg("--state-dir")
                .arg(self.lab.dir.path())
                .env_remove("SIMIAN_STATE_DIR")
                .args([
                    "run",
                    "scenarios/split-brain.yaml",
                    "--var",
                    &format!("hold={hold}"),
                ])
                .args([
                    "--var",
                    "before=2s",
                    "--var",
                    "settle=5s",
                    "--var",
                    "after=2s",
                ])
                .args(["--var", "records=10", "--var", "rate=20"])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            Run(Some(child))
        }

        /// The nftables tables of the router namespace.
        fn tables(&self) -> String {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.core, "nft", "list", "tables"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        fn split_in_place(&self) -> bool {
            self.tables().contains("simian_split_brain")
        }

        /// Both ways across the regions, straight from one namespace to the other's store.
        fn regions_connect(&self) -> (bool, bool) {
            (
                connects_from(&self.east_ns, &self.west_store),
                connects_from(&self.west_ns, &self.east_store),
            )
        }
    }

    /// A run in the background, SIGKILLed if the test fails before it ends.
    struct Run(Option<Child>);

    impl Run {
        fn pid(&self) -> Pid {
            Pid::from_raw(self.0.as_ref().unwrap().id() as i32)
        }

        fn wait(mut self) -> Output {
            self.0.take().unwrap().wait_with_output().unwrap()
        }
    }

    impl Drop for Run {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// `simian recover JOURNAL`, which must succeed.
    fn recover(journal: &str) {
        let out = Command::new(BIN)
            .args(["recover", journal])
            .output()
            .unwrap();
        assert_exit(&out, 0);
    }

    /// The host's own ruleset, which nothing here may change.
    fn host_ruleset() -> String {
        let out = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn the_split_drops_packets_between_regions_and_the_revert_restores_them() {
        if !root_or_skip() {
            return;
        }
        let host = host_ruleset();
        let s = Split::up();
        assert_eq!(
            s.regions_connect(),
            (true, true),
            "the regions connect before"
        );
        let run = s.run("6s", &[]);
        wait_until(Duration::from_secs(20), "the split is in place", || {
            s.split_in_place()
        });
        assert_eq!(
            s.regions_connect(),
            (false, false),
            "no packet crosses the split"
        );
        let out = run.wait();
        assert_exit(&out, 0);
        let o = stdout(&out);
        assert!(o.contains("✔ during  east.success_ratio >= 99%"), "{o}");
        assert!(o.contains("✔ after   east-to-west.queued == 0"), "{o}");
        assert!(o.contains("✔ after   west-to-east.lost == 0"), "{o}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("east-to-west: visible 0.00%"),
            "nothing queued:\n{e}"
        );
        assert!(!s.split_in_place(), "table left behind:\n{}", s.tables());
        assert_eq!(
            s.regions_connect(),
            (true, true),
            "the regions connect after"
        );
        assert_eq!(host_ruleset(), host, "the host's ruleset changed");
    }

    #[test]
    fn sigint_and_sigkill_then_recover_leave_no_table_behind() {
        if !root_or_skip() {
            return;
        }
        let host = host_ruleset();
        let s = Split::up();

        let run = s.run("60s", &[]);
        wait_until(Duration::from_secs(20), "the split is in place", || {
            s.split_in_place()
        });
        kill(run.pid(), Signal::SIGINT).unwrap();
        let out = run.wait();
        assert_exit(&out, 2);
        assert!(!s.split_in_place(), "SIGINT left:\n{}", s.tables());
        assert_eq!(s.regions_connect(), (true, true));

        let journal = s.lab.dir.path().join("killed.jsonl");
        let journal = journal.to_str().unwrap();
        let run = s.run("60s", &["--journal", journal]);
        wait_until(Duration::from_secs(20), "the split is in place", || {
            s.split_in_place()
        });
        kill(run.pid(), Signal::SIGKILL).unwrap(); // nothing reverts
        run.wait();
        assert!(s.split_in_place(), "a SIGKILLed run cannot have reverted");
        assert_eq!(s.regions_connect(), (false, false));
        recover(journal);
        assert!(!s.split_in_place(), "recover left:\n{}", s.tables());
        assert_eq!(s.regions_connect(), (true, true));
        assert_eq!(host_ruleset(), host, "the host's ruleset changed");
    }

    #[test]
    fn a_sigkilled_run_with_no_one_to_revert_heals_when_its_lease_runs_out() {
        if !root_or_skip() {
            return;
        }
        let s = Split::up();
        let journal = s.lab.dir.path().join("leased.jsonl");
        let journal = journal.to_str().unwrap();
        let run = s.run("60s", &["--journal", journal, "--lease", "2s"]);
        wait_until(Duration::from_secs(20), "the split is in place", || {
            s.split_in_place()
        });
        // Renewed every ~0.7 s: the cut outlasts its 2 s lease while the runner lives.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            s.regions_connect(),
            (false, false),
            "renewed, yet it healed"
        );
        kill(run.pid(), Signal::SIGKILL).unwrap(); // no guardian, no recover
        run.wait();
        wait_until(
            Duration::from_secs(10),
            "the regions reconnect by themselves",
            || s.regions_connect() == (true, true),
        );
        // The table stays (tables cannot expire), inert, until recover deletes it.
        assert!(s.split_in_place(), "{}", s.tables());
        recover(journal);
        assert!(!s.split_in_place(), "recover left:\n{}", s.tables());
    }

    /// The random-kill campaign on a `--netns` lab: SIGKILL at a seeded moment, then the
    /// guardian, `simian recover`, or nobody (the lease alone) must leave no cut behind,
    /// and after the guardian or recover no table either.
    #[test]
    fn runs_sigkilled_at_random_moments_leave_no_table_and_no_cut() {
        if !root_or_skip() {
            return;
        }
        let (seed, runs) = campaign("SIMIAN_NETNS_CAMPAIGN_RUNS", 3);
        let mut rng = Rng(seed);
        let s = Split::up();
        let mut residual = Vec::new();
        for i in 0..runs {
            let undo = ["guardian", "recover", "lease"][i % 3];
            // before 2s + hold 3s + settle 5s: most kills land while the split is in place.
            let at = Duration::from_millis(500 + rng.below(6000));
            let journal = s.lab.dir.path().join(format!("netns-kill-{i}.jsonl"));
            let journal = journal.to_str().unwrap().to_string();
            let mut extra = vec!["--journal", journal.as_str()];
            if undo == "lease" {
                extra.extend(["--lease", "2s"]);
            }
            let run = s.run_guarded("3s", &extra, undo == "guardian");
            std::thread::sleep(at);
            kill(run.pid(), Signal::SIGKILL).unwrap();
            run.wait();
            if undo == "recover" && std::path::Path::new(&journal).exists() {
                recover(&journal);
            }
            let what = format!("seed {seed:#x} run {i}: SIGKILL at {at:?}, {undo}");
            // Bounded in time: a connect across a cut itself takes 2 s.
            let until = std::time::Instant::now() + Duration::from_secs(15);
            let healed = loop {
                if s.regions_connect() == (true, true) && (undo == "lease" || !s.split_in_place()) {
                    break true;
                }
                if std::time::Instant::now() > until {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if !healed {
                residual.push(format!("{what}: {:?}\n{}", s.regions_connect(), s.tables()));
            }
            // A lease leaves its inert table for recover; tidy up for the next run.
            if std::path::Path::new(&journal).exists() {
                recover(&journal);
            }
            assert!(!s.split_in_place(), "{what}: recover left:\n{}", s.tables());
        }
        println!(
            "netns split: {runs} runs, {} residual faults (seed {seed:#x})",
            residual.len()
        );
        assert!(
            residual.is_empty(),
            "faults left behind:\n{}",
            residual.join("\n")
        );
    }
}
