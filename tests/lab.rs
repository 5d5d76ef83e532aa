//! `simian lab` end to end: the real binary, its supervisor, instances, stores, fault proxy
//! and edge routers, on 127.0.0.1, each test in its own state directory.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const SMALL: [&str; 7] = ["up", "--regions", "2", "--zones", "3", "--instances", "1"];

/// A lab in its own temp state dir; `lab down` on drop, also when the test fails.
struct Lab {
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.simian(&["down"]);
    }
}

impl Lab {
    fn new() -> Lab {
        Lab {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `simian --state-dir DIR lab ARGS...`
    fn simian(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_simian"))
            .arg("--state-dir")
            .arg(self.dir.path())
            .arg("lab")
            .args(args)
            .env_remove("SIMIAN_STATE_DIR")
            .output()
            .unwrap()
    }

    /// Starts the small lab; returns `state.json`.
    fn up(&self) -> Value {
        let out = self.simian(&SMALL);
        assert_ok(&out);
        self.state()
    }

    fn state_path(&self) -> std::path::PathBuf {
        self.dir.path().join("lab/state.json")
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.state_path()).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn status(&self) -> Value {
        let out = self.simian(&["status", "--json"]);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `(state, healthy)` of one instance, from `lab status --json`.
    fn instance_status(&self, id: &str) -> (String, bool) {
        let status = self.status();
        let inst = instances(&status)
            .into_iter()
            .find(|i| i["id"] == id)
            .unwrap();
        (
            inst["state"].as_str().unwrap().to_string(),
            inst["healthy"].as_bool().unwrap(),
        )
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every instance object of a `state.json` or a `status --json`.
fn instances(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for region in v["regions"].as_array().unwrap() {
        if let Some(zones) = region["zones"].as_array() {
            for zone in zones {
                out.extend(zone["instances"].as_array().unwrap().iter().cloned());
            }
        } else {
            out.extend(region["instances"].as_array().unwrap().iter().cloned());
        }
    }
    out
}

fn pid_of(v: &Value) -> u32 {
    v["pid"].as_u64().unwrap() as u32
}

fn region<'a>(state: &'a Value, name: &str) -> &'a Value {
    let regions = state["regions"].as_array().unwrap();
    regions.iter().find(|r| r["name"] == name).unwrap()
}

fn edge(state: &Value, name: &str) -> String {
    region(state, name)["edge"].as_str().unwrap().to_string()
}

/// Pids of every region's store, from a `state.json`.
fn store_pids(state: &Value) -> Vec<u32> {
    state["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| pid_of(&r["store"]))
        .collect()
}

/// Whether instances reach this region's store through a proxy (not directly).
fn proxied(state: &Value, name: &str) -> bool {
    let r = region(state, name);
    !state["proxy_api"].as_str().unwrap_or("").is_empty() && r["store_proxy"] != r["store"]["url"]
}

/// Alive: in /proc and not a zombie (a dead child nobody reaped yet).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..].trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap();
}

/// Polls `f` until true; panics with `what` after `within`.
fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GET over a fresh connection: the status code and the whole response, head lowercased.
fn get(base: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(base, "GET", path, "")
}

/// One request over a fresh connection: the status code and the whole response, head
/// lowercased.
fn request(base: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    assert!(
        base.starts_with("http://127."),
        "the lab listens on 127.0.0.1 only"
    );
    let (code, head, body) = crate::common::try_http(method, &format!("{base}{path}"), body)?;
    Ok((code, format!("{head}\r\n\r\n{body}")))
}

#[test]
fn up_serves_every_edge_and_down_leaves_nothing_behind() {
    let lab = Lab::new();
    let out = lab.simian(&SMALL);
    assert_ok(&out);
    let state = lab.state();
    let printed = stdout(&out);
    for region in ["us-east", "us-west"] {
        assert!(printed.contains(&edge(&state, region)), "{printed}");
    }
    assert!(
        stderr(&out).contains("starting the lab"),
        "progress on stderr"
    );

    let status = lab.status();
    let all = instances(&status);
    assert_eq!(all.len(), 6);
    for inst in &all {
        assert_eq!(inst["state"], "running", "{inst}");
        assert_eq!(inst["healthy"], true, "{inst}");
        let (code, resp) = get(inst["url"].as_str().unwrap(), "/health").unwrap();
        assert_eq!((code, resp.ends_with("\r\n\r\nok")), (200, true), "{resp}");
    }
    for region in ["us-east", "us-west"] {
        let (code, resp) = get(&edge(&state, region), "/play").unwrap();
        assert_eq!(code, 200, "{resp}");
        assert!(
            resp.contains(&format!("x-simian-edge: {region}\r\n")),
            "{resp}"
        );
        assert!(resp.contains(&format!("\"region\":\"{region}\"")), "{resp}");
    }
    let table = stdout(&lab.simian(&["status"]));
    assert!(table.contains("us-west-c-1"), "{table}");
    assert!(table.contains("HEALTHY"), "{table}");

    let mut pids: Vec<u32> = instances(&state).iter().map(pid_of).collect();
    pids.extend(store_pids(&state));
    assert!(pids.iter().all(|&p| alive(p)));
    pids.push(state["supervisor_pid"].as_u64().unwrap() as u32);
    let out = lab.simian(&["down"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("lab stopped"), "{}", stdout(&out));
    wait_until(Duration::from_secs(5), "every lab process is gone", || {
        pids.iter().all(|&p| !alive(p))
    });
    assert!(!lab.state_path().exists());
    assert!(!lab.dir.path().join("lab/control.sock").exists());

    let again = lab.simian(&["down"]);
    assert_ok(&again);
    assert!(
        stdout(&again).contains("no lab was running"),
        "{}",
        stdout(&again)
    );
    let status = lab.simian(&["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(
        stderr(&status).contains("no lab is running"),
        "{}",
        stderr(&status)
    );
}

#[test]
fn a_killed_zone_is_routed_around_and_restart_brings_it_back() {
    let lab = Lab::new();
    let state = lab.up();
    let us_east = edge(&state, "us-east");
    let before = instances(&state);
    let zone_a: Vec<&Value> = before.iter().filter(|i| i["zone"] == "us-east-a").collect();
    assert!(!zone_a.is_empty());
    for inst in &zone_a {
        signal(pid_of(inst), Signal::SIGKILL);
    }

    let mut failures = 0;
    for _ in 0..100 {
        match get(&us_east, "/play") {
            Ok((200, resp)) => assert!(!resp.contains("us-east-a-"), "{resp}"),
            _ => failures += 1,
        }
    }
    assert!(failures <= 3, "{failures} of 100 requests failed");
    wait_until(Duration::from_secs(5), "status shows the zone dead", || {
        lab.instance_status("us-east-a-1") == ("dead".into(), false)
    });

    // A SIGSTOPped instance: its kernel still accepts connections, the edge times out.
    let b1 = before.iter().find(|i| i["id"] == "us-east-b-1").unwrap();
    signal(pid_of(b1), Signal::SIGSTOP);
    assert_eq!(lab.instance_status("us-east-b-1").0, "stopped");
    for _ in 0..10 {
        let (code, resp) = get(&us_east, "/play").unwrap();
        assert_eq!(code, 200, "{resp}");
    }

    let out = lab.simian(&["restart", "us-east-a-1", "us-east-b-1"]);
    assert_ok(&out);
    let said = stdout(&out);
    assert!(said.contains("us-east-a-1: was dead, respawned"), "{said}");
    assert!(said.contains("us-east-b-1: was stopped, resumed"), "{said}");
    wait_until(
        Duration::from_secs(5),
        "every instance runs healthy",
        || {
            instances(&lab.status())
                .iter()
                .all(|i| i["state"] == "running" && i["healthy"] == true)
        },
    );
    let after = lab.state();
    let new_a = instances(&after)
        .into_iter()
        .find(|i| i["id"] == "us-east-a-1")
        .unwrap();
    let old_a = zone_a[0];
    assert_ne!(pid_of(&new_a), pid_of(old_a), "respawned with a new pid");
    assert_eq!(new_a["port"], old_a["port"], "respawned on the same port");
    assert!(alive(pid_of(&new_a)));
    // Round-robin over three healthy instances reaches the respawned one quickly.
    let mut reached = false;
    for _ in 0..6 {
        reached |= get(&us_east, "/play").unwrap().1.contains("us-east-a-1");
    }
    assert!(reached, "the respawned instance gets traffic again");

    let pids: Vec<u32> = instances(&after).iter().map(pid_of).collect();
    assert_ok(&lab.simian(&["down"]));
    wait_until(Duration::from_secs(5), "every instance is gone", || {
        pids.iter().all(|&p| !alive(p))
    });
    assert!(!lab.state_path().exists());
}

#[test]
fn killing_the_supervisor_takes_its_instances_with_it() {
    let lab = Lab::new();
    let state = lab.up();
    let supervisor = state["supervisor_pid"].as_u64().unwrap() as u32;
    let mut pids: Vec<u32> = instances(&state).iter().map(pid_of).collect();
    pids.extend(store_pids(&state));
    signal(supervisor, Signal::SIGKILL);
    wait_until(
        Duration::from_secs(5),
        "instances die with their supervisor",
        || pids.iter().all(|&p| !alive(p)),
    );

    let status = lab.simian(&["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(
        stderr(&status).contains("lost its supervisor"),
        "{}",
        stderr(&status)
    );
    assert!(
        stderr(&status).contains("simian lab down"),
        "{}",
        stderr(&status)
    );

    assert_ok(&lab.simian(&["down"]));
    assert!(!lab.state_path().exists());
    assert_ok(&lab.simian(&["down"]));
}

#[test]
fn a_second_up_in_the_same_state_dir_is_refused() {
    let lab = Lab::new();
    let state = lab.up();

    let again = lab.simian(&SMALL);
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains("simian lab down"), "{err}");
    assert_eq!(lab.state()["supervisor_pid"], state["supervisor_pid"]);
    let (code, _) = get(&edge(&state, "us-west"), "/play").unwrap();
    assert_eq!(code, 200, "the first lab still serves");

    let unknown = lab.simian(&["restart", "eu-west-a-1"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(
        stderr(&unknown).contains("no instance `eu-west-a-1`"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn help_shows_the_commands_but_not_the_internal_ones() {
    let lab = Lab::new();
    let help = stdout(&lab.simian(&["--help"]));
    for cmd in ["up", "status", "down", "restart"] {
        assert!(help.contains(cmd), "{help}");
    }
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"restart"), "{help}");
    assert!(!commands.contains(&"supervise"), "{help}");
    assert!(!commands.contains(&"instance"), "{help}");
    let up = stdout(&lab.simian(&["up", "--help"]));
    assert!(up.contains("--regions"), "{up}");
    assert!(up.contains("Examples:"), "{up}");
}

#[test]
fn up_after_a_killed_supervisor_starts_a_fresh_lab() {
    let lab = Lab::new();
    let old = lab.up();
    let supervisor = old["supervisor_pid"].as_u64().unwrap() as u32;
    signal(supervisor, Signal::SIGKILL);
    wait_until(Duration::from_secs(5), "the supervisor is gone", || {
        !alive(supervisor)
    });

    let new = lab.up();
    assert_ne!(new["supervisor_pid"], old["supervisor_pid"]);
    assert_eq!(instances(&lab.status()).len(), 6);
}

#[test]
fn each_region_reads_its_store_and_a_killed_store_fails_only_that_region_until_restarted() {
    let lab = Lab::new();
    let state = lab.up();
    let proxy_api = state["proxy_api"].as_str().unwrap();
    for name in ["us-east", "us-west"] {
        let r = region(&state, name);
        let store = &r["store"];
        assert_eq!(store["id"], format!("store-{name}"), "{r}");
        let url = store["url"].as_str().unwrap();
        assert_eq!(url, format!("http://127.0.0.1:{}", store["port"]));
        assert!(alive(pid_of(store)), "{store}");
        // Directly, and the way the instances reach it.
        for base in [url, r["store_proxy"].as_str().unwrap()] {
            let (code, resp) = get(base, "/kv/catalog").unwrap();
            assert_eq!(code, 200, "{base}: {resp}");
            assert!(resp.contains(&format!("\"region\":\"{name}\"")), "{resp}");
        }
        let (code, resp) = get(&edge(&state, name), "/play").unwrap();
        assert_eq!(code, 200, "{resp}");
        assert!(resp.contains("\"store_ms\":"), "{resp}");
    }
    if proxied(&state, "us-east") {
        assert!(proxy_api.starts_with("http://127.0.0.1:"), "{proxy_api}");
        let (code, resp) = get(proxy_api, "/proxies/store-us-east").unwrap();
        assert_eq!(code, 200, "{resp}");
        let store_port = region(&state, "us-east")["store"]["port"].to_string();
        assert!(
            resp.contains(&store_port),
            "the proxy's upstream is the store: {resp}"
        );
    } else {
        eprintln!("NOTE: the fault proxy is not live: instances reach their stores directly");
    }
    let table = stdout(&lab.simian(&["status"]));
    assert!(table.contains("store-us-west"), "{table}");

    // Kill us-east's store: us-east's users see errors, its instances stay healthy.
    let east = edge(&state, "us-east");
    let store = &region(&state, "us-east")["store"];
    signal(pid_of(store), Signal::SIGKILL);
    wait_until(Duration::from_secs(5), "us-east's store is dead", || {
        !alive(pid_of(store))
    });
    for _ in 0..5 {
        let (code, resp) = get(&east, "/play").unwrap();
        assert_eq!(code, 502, "{resp}");
        assert!(resp.contains("store"), "{resp}");
    }
    let (code, _) = get(&edge(&state, "us-west"), "/play").unwrap();
    assert_eq!(code, 200, "us-west has its own store");
    let status = lab.status();
    let east_status = region(&status, "us-east");
    assert_eq!(east_status["store"]["state"], "dead", "{east_status}");
    for inst in instances(&status)
        .iter()
        .filter(|i| i["region"] == "us-east")
    {
        assert_eq!(
            inst["healthy"], true,
            "a dead store does not fail health: {inst}"
        );
        let (code, _) = get(inst["url"].as_str().unwrap(), "/health").unwrap();
        assert_eq!(code, 200);
    }

    let out = lab.simian(&["restart", "store-us-east"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("store-us-east: was dead, respawned"),
        "{}",
        stdout(&out)
    );
    let after = lab.state();
    let new_store = &region(&after, "us-east")["store"];
    assert_ne!(pid_of(new_store), pid_of(store), "a new process");
    assert_eq!(new_store["port"], store["port"], "on the same port");
    wait_until(Duration::from_secs(5), "us-east serves again", || {
        (0..3).all(|_| get(&east, "/play").is_ok_and(|(code, _)| code == 200))
    });

    let pids = store_pids(&after);
    assert_ok(&lab.simian(&["down"]));
    wait_until(Duration::from_secs(5), "no store is left", || {
        pids.iter().all(|&p| !alive(p))
    });
}

#[test]
fn a_latency_toxic_on_a_store_proxy_slows_only_that_region() {
    let lab = Lab::new();
    let state = lab.up();
    if !proxied(&state, "us-east") {
        eprintln!("SKIPPED: the fault proxy is not live: instances reach their stores directly");
        return;
    }
    let api = state["proxy_api"].as_str().unwrap();
    let (east, west) = (edge(&state, "us-east"), edge(&state, "us-west"));
    // The median of a few `/play` round trips through an edge, in ms.
    let median = |base: &str| {
        let mut ms: Vec<f64> = (0..7)
            .map(|_| {
                let started = Instant::now();
                let (code, resp) = get(base, "/play").unwrap();
                assert_eq!(code, 200, "{resp}");
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    };
    assert!(median(&east) < 100.0, "fast before the toxic");

    let (code, resp) = request(
        api,
        "POST",
        "/proxies/store-us-east/toxics",
        r#"{"type":"latency","attributes":{"latency":200}}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{resp}");
    let toxic: Value = serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
    let name = toxic["name"].as_str().unwrap().to_string();

    let (slow, fast) = (median(&east), median(&west));
    assert!(
        slow >= 180.0,
        "us-east /play takes {slow:.1}ms with 200ms on its store"
    );
    assert!(
        fast < 100.0,
        "us-west /play takes {fast:.1}ms: its store is not slowed"
    );

    let (code, resp) = request(
        api,
        "DELETE",
        &format!("/proxies/store-us-east/toxics/{name}"),
        "",
    )
    .unwrap();
    assert!(code == 204 || code == 200, "{resp}");
    let again = median(&east);
    assert!(
        again < 100.0,
        "us-east /play takes {again:.1}ms once the toxic is gone"
    );
}

/// `PUT /kv/rep-I` = `v-I` on `base` for each I in `keys`.
fn put_keys(base: &str, keys: std::ops::Range<u32>) {
    for i in keys {
        let (code, resp) =
            request(base, "PUT", &format!("/kv/rep-{i}"), &format!("v-{i}")).unwrap();
        assert_eq!(code, 204, "{resp}");
    }
}

/// The keys of `keys` that `base` does not hold with the value written.
fn missing(base: &str, keys: std::ops::Range<u32>) -> Vec<u32> {
    keys.filter(|i| {
        !get(base, &format!("/kv/rep-{i}"))
            .is_ok_and(|(code, resp)| code == 200 && resp.ends_with(&format!("\r\n\r\nv-{i}")))
    })
    .collect()
}

/// `GET /replication` of a store.
fn replication(base: &str) -> Value {
    let (code, resp) = get(base, "/replication").unwrap();
    assert_eq!(code, 200, "{resp}");
    serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// Writes from us-east that us-west's store applied, 0 while it does not answer.
fn applied_from_east(west: &str) -> u64 {
    get(west, "/replication")
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, resp)| {
            let v: Value = serde_json::from_str(resp.split_once("\r\n\r\n")?.1).ok()?;
            v["applied"]["us-east"].as_u64()
        })
        .unwrap_or(0)
}

#[test]
fn writes_replicate_queue_during_a_partition_and_none_are_lost_across_a_store_restart() {
    let lab = Lab::new();
    let state = lab.up();
    let store_url = |name: &str| {
        region(&state, name)["store"]["url"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (east, west) = (store_url("us-east"), store_url("us-west"));
    let link = &region(&state, "us-east")["replication"][0];
    assert_eq!(link["to"], "us-west", "{link}");
    assert_eq!(link["proxy"], "repl-us-east-us-west", "{link}");
    let queue = || replication(&east)["peers"]["us-west"].clone();

    // 1,000 writes in us-east, all readable in us-west.
    put_keys(&east, 0..1000);
    wait_until(Duration::from_secs(30), "us-west has 1,000 writes", || {
        applied_from_east(&west) >= 1000
    });
    assert_eq!(missing(&west, 0..1000), Vec::<u32>::new());
    wait_until(Duration::from_secs(10), "us-east's queue drains", || {
        queue()["queue_depth"] == 0
    });
    assert_eq!(queue()["connected"], true);
    let (_, metrics) = get(&west, "/metrics").unwrap();
    assert!(
        metrics.contains(
            "simian_lab_replication_applied_total{from=\"us-east\",to=\"us-west\"} 1000\n"
        ),
        "{metrics}"
    );

    // Partition: us-east keeps accepting writes; they queue and do not show up in us-west.
    let api = state["proxy_api"].as_str().unwrap();
    if proxied(&state, "us-east") {
        let path = "/proxies/repl-us-east-us-west";
        let (code, resp) = request(api, "PATCH", path, r#"{"enabled": false}"#).unwrap();
        assert_eq!(code, 200, "{resp}");
        put_keys(&east, 1000..1200);
        wait_until(Duration::from_secs(5), "200 writes queue", || {
            queue()["queue_depth"] == 200
        });
        std::thread::sleep(Duration::from_millis(300));
        let q = queue();
        assert_eq!(q["connected"], false, "{q}");
        assert!(q["lag_ms"].as_u64().unwrap() >= 300, "{q}");
        assert_eq!(missing(&west, 1000..1200).len(), 200, "nothing crossed");
        let (_, metrics) = get(&east, "/metrics").unwrap();
        assert!(
            metrics.contains(
                "simian_lab_replication_queue_depth{from=\"us-east\",to=\"us-west\"} 200\n"
            ),
            "{metrics}"
        );

        // Heal: everything arrives.
        let (code, resp) = request(api, "PATCH", path, r#"{"enabled": true}"#).unwrap();
        assert_eq!(code, 200, "{resp}");
    } else {
        eprintln!("NOTE: the fault proxy is not live: no partition through it");
        put_keys(&east, 1000..1200);
    }
    wait_until(Duration::from_secs(30), "us-west has 1,200 writes", || {
        applied_from_east(&west) >= 1200
    });
    assert_eq!(
        missing(&west, 0..1200),
        Vec::<u32>::new(),
        "lost after healing"
    );

    // Kill us-west's store while us-east writes; restart it: still nothing lost.
    let writer = {
        let east = east.clone();
        std::thread::spawn(move || put_keys(&east, 1200..2200))
    };
    wait_until(Duration::from_secs(30), "replication is mid-stream", || {
        applied_from_east(&west) >= 1300
    });
    let west_pid = pid_of(&region(&state, "us-west")["store"]);
    signal(west_pid, Signal::SIGKILL);
    wait_until(Duration::from_secs(5), "us-west's store is dead", || {
        !alive(west_pid)
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_ok(&lab.simian(&["restart", "store-us-west"]));
    writer.join().unwrap();
    wait_until(
        Duration::from_secs(30),
        "us-west has all 2,200 writes",
        || queue()["queue_depth"] == 0 && queue()["connected"] == true,
    );
    assert_eq!(
        missing(&west, 0..2200),
        Vec::<u32>::new(),
        "lost after a restart"
    );
    // The restarted store reloaded its log: its catalog is still its own.
    let (_, resp) = get(&west, "/kv/catalog").unwrap();
    assert!(resp.contains("\"region\":\"us-west\""), "{resp}");
}
