//! `simian lab up --netns` end to end, as root: every region and zone in a network namespace
//! of its own behind a router namespace. Traffic between regions crosses that router, so an
//! nftables rule there partitions replication for real; `lab down` removes every namespace,
//! link and route, also after the supervisor was SIGKILLed. Without root these tests say
//! SKIPPED (CI runs as root).
//!
//! Everything here goes to 127.0.0.1 or to addresses inside the namespaces the labs create;
//! nft only ever runs inside a lab's router namespace.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_simian");

/// True as root; otherwise says why the test does nothing.
pub(crate) fn root_or_skip() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED: `lab up --netns` tests need root (CI runs as root)");
    }
    root
}

/// A state dir for a `--netns` lab. On drop: `lab down`, then, should anything of the lab's
/// tag still exist (the test failed before `down` could work), `ip netns del` it.
pub(crate) struct NetLab {
    pub(crate) dir: tempfile::TempDir,
}

impl NetLab {
    pub(crate) fn new() -> NetLab {
        NetLab {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `simian --state-dir DIR lab ARGS...`
    fn simian(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(self.dir.path())
            .arg("lab")
            .args(args)
            .env_remove("SIMIAN_STATE_DIR")
            .output()
            .unwrap()
    }

    /// `lab up --netns` with `size` (e.g. `["--zones", "1"]`); returns `state.json`.
    pub(crate) fn up(&self, size: &[&str]) -> Value {
        let out = self.simian(&[&["up", "--netns", "--instances", "1"], size].concat());
        assert_ok(&out);
        self.state()
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("lab/state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn status(&self) -> Value {
        let out = self.simian(&["status", "--json"]);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The lab's tag, as `lab up` derives it from the canonical `<state dir>/lab`.
    fn tag(&self) -> String {
        tag_of(&self.dir.path().join("lab"))
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let _ = self.simian(&["down"]);
        let tag = self.tag();
        let prefix = format!("sl{tag}-");
        for ns in namespaces().iter().filter(|n| n.starts_with(&prefix)) {
            eprintln!("cleaning up after a failed test: ip netns del {ns}");
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", "dev", &format!("sl{tag}-h")])
            .stderr(Stdio::null())
            .status();
    }
}

/// An nftables table this test owns in a lab's router namespace; deleted on drop.
struct NftTable {
    netns: String,
    name: String,
}

impl NftTable {
    /// Drops every packet between the CIDRs `a` and `b`, both ways, in the forward chain.
    fn sever(netns: &str, a: &str, b: &str) -> NftTable {
        let name = format!("simian_e2e_{}", std::process::id());
        let rules = format!(
            "table inet {name} {{\n\
               chain forward {{\n\
                 type filter hook forward priority 0; policy accept;\n\
                 ip saddr {a} ip daddr {b} drop\n\
                 ip saddr {b} ip daddr {a} drop\n\
               }}\n\
             }}\n"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", netns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(nft.wait().unwrap().success(), "nft -f in {netns}:\n{rules}");
        NftTable {
            netns: netns.to_string(),
            name,
        }
    }

    fn delete(&self) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "nft",
                "delete",
                "table",
                "inet",
            ])
            .arg(&self.name)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        self.delete();
    }
}

/// FNV-1a (64 bits) of the canonical lab dir, 6 hex digits: mirrors the lab's own tag. The
/// first test checks it against what a real lab reports.
fn tag_of(lab_dir: &Path) -> String {
    let path = std::fs::canonicalize(lab_dir).unwrap_or_else(|_| lab_dir.to_path_buf());
    let hash = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{:06x}", hash & 0xff_ffff)
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

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every network namespace's name, from `ip netns list`.
fn namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What of the lab with `tag` and `subnet` is left on the host: its namespaces, its host
/// interface, its host route (if it got a subnet).
fn leftovers(tag: &str, subnet: Option<&str>) -> Vec<String> {
    let prefix = format!("sl{tag}-");
    let mut left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| format!("namespace {n}"))
        .collect();
    left.extend(
        ip(&["-o", "link"])
            .lines()
            .filter(|l| l.contains(&format!("sl{tag}")))
            .map(|l| format!("link {l}")),
    );
    left.extend(
        ip(&["-4", "route"])
            .lines()
            .filter(|l| subnet.is_some_and(|s| l.starts_with(s)))
            .map(|l| format!("route {l}")),
    );
    left
}

/// The namespace `pid` runs in, by name (`ip netns identify`); empty for the host's.
fn netns_of(pid: u64) -> String {
    ip(&["netns", "identify", &pid.to_string()])
        .trim()
        .to_string()
}

/// Whether a TCP connect from inside namespace `ns` to `addr` succeeds within 2s.
pub(crate) fn connects_from(ns: &str, addr: &str) -> bool {
    let (host, port) = addr.rsplit_once(':').unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "2", "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/{host}/{port}"))
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// One HTTP/1.1 request over a fresh connection: the status code and the body.
fn request(base: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let (code, _, body) = crate::common::try_http(method, &format!("{base}{path}"), body)?;
    Ok((code, body))
}

fn get(base: &str, path: &str) -> (u16, String) {
    request(base, "GET", path, "").unwrap_or((0, String::new()))
}

pub(crate) fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn region<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
}

pub(crate) fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// `10.N.` of a `10.N.0.0/16`.
fn subnet_prefix(subnet: &str) -> String {
    let mut octets = subnet.split('.');
    format!("{}.{}.", octets.next().unwrap(), octets.next().unwrap())
}

/// The host of `http://IP:PORT`.
fn host_of(url: &str) -> String {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    addr.ip().to_string()
}

pub(crate) fn store_url(state: &Value, name: &str) -> String {
    str_of(&region(state, name)["store"]["url"])
}

#[test]
fn up_in_namespaces_serves_replicates_and_runs_each_process_in_its_namespace() {
    if !root_or_skip() {
        return;
    }
    let lab = NetLab::new();
    let out = lab.simian(&["up", "--netns", "--zones", "3", "--instances", "1"]);
    assert_ok(&out);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let state = lab.state();
    let net = &state["netns"];
    let core = str_of(&net["core"]);
    let subnet = str_of(&net["subnet"]);
    let inside = subnet_prefix(&subnet);
    assert_eq!(
        core,
        format!("sl{}-core", lab.tag()),
        "the test's tag mirrors the lab's"
    );
    assert!(
        printed.contains("network namespaces") && printed.contains(&core),
        "{printed}"
    );

    // Every namespace exists: router, 2 regions, 6 zones.
    let all = namespaces();
    let mut wanted = vec![core.clone()];
    for r in net["regions"].as_array().unwrap() {
        wanted.push(str_of(&r["netns"]));
        for z in r["zones"].as_array().unwrap() {
            wanted.push(str_of(&z["netns"]));
        }
    }
    assert_eq!(wanted.len(), 9);
    for ns in &wanted {
        assert!(all.contains(ns), "{ns} missing from {all:?}");
    }

    // Edges on 127.0.0.1 answer through the namespaces; instances read their store through
    // the proxy on the host's end of the router link.
    for name in ["us-east", "us-west"] {
        let edge = str_of(&region(&state, name)["edge"]);
        assert!(edge.starts_with("http://127.0.0.1:"), "{edge}");
        for _ in 0..6 {
            let (code, body) = get(&edge, "/play");
            assert_eq!(code, 200, "{name}: {body}");
            assert!(body.contains(&format!("\"region\":\"{name}\"")), "{body}");
        }
        let proxy = str_of(&region(&state, name)["store_proxy"]);
        assert_eq!(host_of(&proxy), str_of(&net["host_addr"]), "{proxy}");
    }

    // A write in us-east shows up in us-west, stores talking directly across the router.
    let (east, west) = (store_url(&state, "us-east"), store_url(&state, "us-west"));
    let value = format!("written-in-us-east-{}", std::process::id());
    let (code, body) = request(&east, "PUT", "/kv/netns-probe", &value).unwrap();
    assert_eq!(code, 204, "{body}");
    wait_until(
        Duration::from_secs(15),
        "us-west reads us-east's write",
        || get(&west, "/kv/netns-probe") == (200, value.clone()),
    );
    let link = &region(&state, "us-east")["replication"][0];
    assert_eq!(
        link["proxy"], "",
        "no replication proxy with --netns: {link}"
    );
    assert_eq!(str_of(&link["listen"]), west.trim_start_matches("http://"));
    let api = str_of(&state["proxy_api"]);
    let (code, proxies) = get(&api, "/proxies");
    assert_eq!(code, 200, "{proxies}");
    assert!(proxies.contains("store-us-east"), "{proxies}");
    assert!(!proxies.contains("repl-"), "{proxies}");

    // `lab status --json`: every address inside the subnet, each in its region's /24.
    let status = lab.status();
    assert_eq!(status["netns"]["core"], core.as_str());
    for (i, r) in status["regions"].as_array().unwrap().iter().enumerate() {
        let region_prefix = format!("{inside}{}.", i + 1);
        let store_host = host_of(&str_of(&r["store"]["url"]));
        assert_eq!(store_host, format!("{region_prefix}2"));
        assert_eq!(r["store"]["healthy"], true, "{r}");
        for inst in r["instances"].as_array().unwrap() {
            let host = host_of(&str_of(&inst["url"]));
            assert!(host.starts_with(&region_prefix), "{inst}");
            assert_eq!(
                (&inst["state"], &inst["healthy"]),
                (&"running".into(), &true.into())
            );
        }
    }
    let table = String::from_utf8_lossy(&lab.simian(&["status"]).stdout).into_owned();
    assert!(
        table.contains(&core) && table.contains("us-west-c instances"),
        "{table}"
    );

    // Each process runs in its own namespace; the supervisor stays on the host.
    for r in state["regions"].as_array().unwrap() {
        let ns = str_of(&region(net, str_of(&r["name"]).as_str())["netns"]);
        assert_eq!(netns_of(r["store"]["pid"].as_u64().unwrap()), ns, "{r}");
        for z in r["zones"].as_array().unwrap() {
            for inst in z["instances"].as_array().unwrap() {
                let zone_ns = format!("sl{}-{}", lab.tag(), str_of(&z["name"]));
                assert_eq!(netns_of(inst["pid"].as_u64().unwrap()), zone_ns, "{inst}");
            }
        }
    }
    assert_eq!(netns_of(state["supervisor_pid"].as_u64().unwrap()), "");

    // A store restarted by hand comes back in its namespace, on its address.
    let west_pid = region(&state, "us-west")["store"]["pid"].as_u64().unwrap();
    kill(Pid::from_raw(west_pid as i32), Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_ok(&lab.simian(&["restart", "store-us-west"]));
    let restarted = lab.state();
    let new_pid = region(&restarted, "us-west")["store"]["pid"]
        .as_u64()
        .unwrap();
    assert_ne!(new_pid, west_pid);
    assert_eq!(netns_of(new_pid), format!("sl{}-us-west", lab.tag()));
    assert_eq!(store_url(&restarted, "us-west"), west);
    assert_eq!(get(&west, "/kv/netns-probe"), (200, value));
}

#[test]
fn a_forward_drop_in_the_router_namespace_cuts_replication_until_it_is_removed() {
    if !root_or_skip() {
        return;
    }
    let lab = NetLab::new();
    let state = lab.up(&["--zones", "1"]);
    let net = &state["netns"];
    let core = str_of(&net["core"]);
    let east_ns = str_of(&region(net, "us-east")["netns"]);
    let (east_cidr, west_cidr) = (
        str_of(&region(net, "us-east")["cidr"]),
        str_of(&region(net, "us-west")["cidr"]),
    );
    let (east, west) = (store_url(&state, "us-east"), store_url(&state, "us-west"));
    let west_addr = west.trim_start_matches("http://").to_string();
    let queue = || {
        let (_, body) = get(&east, "/replication");
        serde_json::from_str::<Value>(&body).unwrap_or_default()["peers"]["us-west"]["queue_depth"]
            .as_u64()
            .unwrap_or(u64::MAX)
    };

    assert!(
        connects_from(&east_ns, &west_addr),
        "us-east reaches us-west's store"
    );
    let (code, _) = request(&east, "PUT", "/kv/before", "1").unwrap();
    assert_eq!(code, 204);
    wait_until(
        Duration::from_secs(15),
        "replication works before the cut",
        || get(&west, "/kv/before").0 == 200,
    );

    let cut = NftTable::sever(&core, &east_cidr, &west_cidr);
    assert!(
        !connects_from(&east_ns, &west_addr),
        "the drop rule must cut the path"
    );
    let (code, _) = request(&east, "PUT", "/kv/during", "written-during-the-cut").unwrap();
    assert_eq!(code, 204, "us-east keeps taking writes");
    for name in ["us-east", "us-west"] {
        let (code, body) = get(&str_of(&region(&state, name)["edge"]), "/play");
        assert_eq!(code, 200, "{name} keeps serving: {body}");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(&west, "/kv/during").0, 404, "nothing crosses the cut");
    assert!(queue() >= 1, "the write queues in us-east");

    assert!(cut.delete(), "delete the table");
    wait_until(Duration::from_secs(10), "the path is back", || {
        connects_from(&east_ns, &west_addr)
    });
    wait_until(Duration::from_secs(20), "us-west catches up", || {
        get(&west, "/kv/during") == (200, "written-during-the-cut".into())
    });
    wait_until(Duration::from_secs(10), "us-east's queue drains", || {
        queue() == 0
    });
}

#[test]
fn down_removes_every_namespace_link_and_route_even_after_the_supervisor_was_killed() {
    if !root_or_skip() {
        return;
    }
    let lab = NetLab::new();
    let state = lab.up(&["--zones", "1"]);
    let tag = lab.tag();
    let subnet = str_of(&state["netns"]["subnet"]);
    let present = leftovers(&tag, Some(&subnet));
    // Router + 2 regions + 2 zones, the host link, the host route.
    assert_eq!(present.len(), 5 + 1 + 1, "{present:#?}");

    assert_ok(&lab.simian(&["down"]));
    assert_eq!(leftovers(&tag, Some(&subnet)), Vec::<String>::new());

    // Again, but the supervisor dies by SIGKILL: its namespaces outlive it, `down` removes
    // them from what the lab recorded.
    let state = lab.up(&["--zones", "1"]);
    let subnet = str_of(&state["netns"]["subnet"]);
    let supervisor = state["supervisor_pid"].as_u64().unwrap() as i32;
    let store = state["regions"][0]["store"]["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the supervisor and its store are gone",
        || {
            [supervisor, store].iter().all(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/stat")).map_or(true, |s| {
                    s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z')
                })
            })
        },
    );
    assert_eq!(
        leftovers(&tag, Some(&subnet)).len(),
        7,
        "namespaces outlive a killed supervisor"
    );
    let out = lab.simian(&["down"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("lab stopped"));
    assert_eq!(leftovers(&tag, Some(&subnet)), Vec::<String>::new());
    assert!(!lab.dir.path().join("lab/netns.json").exists());
    assert!(!lab.dir.path().join("lab/state.json").exists());
}

#[test]
fn an_overlapping_subnet_or_no_root_is_refused_and_creates_nothing() {
    if !root_or_skip() {
        return;
    }
    let first = NetLab::new();
    let state = first.up(&["--zones", "1"]);
    let taken = str_of(&state["netns"]["subnet"]);
    let routes_before = ip(&["-4", "route"]);

    let second = NetLab::new();
    let out = second.simian(&["up", "--netns", "--subnet", &taken, "--zones", "1"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("subnet {taken} overlaps the host route")),
        "{err}"
    );
    assert!(err.contains("--subnet"), "{err}");
    assert_eq!(leftovers(&second.tag(), None), Vec::<String>::new());
    assert_eq!(
        ip(&["-4", "route"]),
        routes_before,
        "the host routes did not change"
    );
    assert!(!second.dir.path().join("lab/state.json").exists());
    assert!(!second.dir.path().join("lab/netns.json").exists());
    assert_eq!(
        get(&str_of(&region(&state, "us-east")["edge"]), "/play").0,
        200
    );

    // An unprivileged user (`nobody`) is told what to do, before anything is created.
    let third = tempfile::tempdir().unwrap();
    let dir: PathBuf = third.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    nix::unistd::chown(&dir, Some(65534.into()), Some(65534.into())).unwrap();
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&dir)
            .args(["lab", "up", "--netns"])
            .env_remove("SIMIAN_STATE_DIR")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--netns needs root (CAP_NET_ADMIN"), "{err}");
    assert!(
        err.contains("without --netns the lab runs on loopback"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing created"
    );
}
