//! netfilter partitions from the real binary, in namespaces these tests create:
//! nothing is left behind after SIGINT or after SIGKILL + recover, and the host
//! ruleset is never touched.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

struct Netns(String);

impl Netns {
    /// A namespace with two addresses on its loopback, or None (and a note) without root.
    fn new(tag: &str) -> Option<Netns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: netfilter tests need root (CI runs as root)");
            return None;
        }
        let name = format!("simian-e2e-{}-{tag}", std::process::id());
        let ok = |args: &[&str]| Command::new("ip").args(args).status().unwrap().success();
        assert!(ok(&["netns", "add", &name]), "ip netns add {name}");
        let ns = Netns(name);
        for a in ["10.77.1.1/32", "10.77.2.1/32"] {
            assert!(ok(&["-n", &ns.0, "addr", "add", a, "dev", "lo"]));
        }
        assert!(ok(&["-n", &ns.0, "link", "set", "lo", "up"]));
        Some(ns)
    }

    fn tables(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn host_ruleset() -> String {
    String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

fn experiment(ns: &str) -> String {
    format!(
        r#"version: 1
name: partition
steady_state:
  probes:
    ok: {{ command: {{ run: "true", interval: 200ms }} }}
  hypothesis: [ "ok.success_ratio >= 99%" ]
  before: 1s
  window: 1s
  after: 1s
method:
  - inject:
      name: cut
      netfilter:
        netns: {ns}
        partition: {{ sever: {{ a: [10.77.1.1], b: [10.77.2.1] }} }}
  - wait: 90s
guards:
  max_duration: 2m
"#
    )
}

fn partition_then(signal: nix::sys::signal::Signal, tag: &str) {
    let Some(ns) = Netns::new(tag) else { return };
    let host = host_ruleset();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::write(&f, experiment(&ns.0)).unwrap();
    let journal = dir.path().join("p.jsonl");
    let mut child = Command::new(BIN)
        .env("SIMIAN_STATE_DIR", dir.path())
        .env("SIMIAN_NO_GUARDIAN", "1")
        .arg("run")
        .arg(&f)
        .arg("--journal")
        .arg(&journal)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || ns
            .tables()
            .contains("simian_cut")),
        "the partition never landed"
    );
    assert_eq!(host_ruleset(), host, "the host ruleset changed");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    if signal == nix::sys::signal::Signal::SIGKILL {
        assert!(
            ns.tables().contains("simian_cut"),
            "the partition must outlive a SIGKILLed runner"
        );
        let out = Command::new(BIN)
            .arg("recover")
            .arg(&journal)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
    } else {
        assert_eq!(status.code(), Some(2));
    }
    assert!(
        !ns.tables().contains("simian_"),
        "a table was left behind: {}",
        ns.tables()
    );
    assert_eq!(host_ruleset(), host, "the host ruleset changed");
}

#[test]
fn sigint_removes_the_partition_table() {
    partition_then(nix::sys::signal::Signal::SIGINT, "int");
}

#[test]
fn recover_removes_the_partition_table_after_sigkill() {
    partition_then(nix::sys::signal::Signal::SIGKILL, "kill");
}
