//! `simian proxy`, the real binary: its CLI contract, and real Toxiproxy clients from the
//! package registries (toxiproxy-python from PyPI, toxiproxy-node-client from npm) driving
//! it, with the effects checked on real traffic. A soak checks descriptors and memory.
//!
//! The client tests need `pip install toxiproxy-python requests future` and
//! `npm install -g toxiproxy-node-client`; without them they say so and skip, except under
//! CI (`CI` set), where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BIN;

/// A running `simian proxy`; SIGTERM and reaped on drop.
struct ProxyProc {
    child: Child,
    api: SocketAddr,
}

impl ProxyProc {
    fn start(extra: &[&str]) -> ProxyProc {
        let mut child = Command::new(BIN)
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn simian proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listening line");
        let api = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .trim()
            .parse()
            .expect("an address");
        ProxyProc { child, api }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn terminate(&mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// One HTTP/1.1 request to the admin API: (status, body).
fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// An echo server on loopback (a thread per connection); lives as long as the test.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    addr
}

/// A minimal HTTP/1.1 server: answers every request 200 `hello`, keep-alive.
fn http_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    // Request line, then headers up to the blank line (no bodies in these tests).
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let t = Instant::now();
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    t.elapsed()
}

/// Whether a client tool is present; without it, skips (returns false) unless under CI.
fn have(what: &str, probe: &mut Command, install: &str) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{what} is missing under CI: {install}");
        }
        eprintln!("SKIPPED: {what} is not installed (install it with `{install}`)");
    }
    ok
}

#[test]
fn proxy_prints_its_listening_line_and_stops_cleanly_on_sigterm() {
    let mut p = ProxyProc::start(&[]);
    assert_ne!(p.api.port(), 0, "the real port is printed");
    let (status, body) = api(p.api, "GET", "/version", "");
    assert_eq!(status, 200);
    assert!(json(&body)["version"].is_string());
    let upstream = echo_server();
    let (status, body) = api(
        p.api,
        "POST",
        "/proxies",
        &format!(r#"{{"name": "e", "listen": "127.0.0.1:0", "upstream": "{upstream}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let listen: SocketAddr = json(&body)["listen"].as_str().unwrap().parse().unwrap();
    let mut c = TcpStream::connect(listen).unwrap();
    round_trip(&mut c, b"ping");
    assert_eq!(p.terminate(), Some(0));
    let mut buf = [0u8; 1];
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        matches!(c.read(&mut buf), Ok(0) | Err(_)),
        "connection closed on shutdown"
    );
    assert!(TcpStream::connect(p.api).is_err(), "API closed");
}

#[test]
fn proxy_config_file_creates_proxies_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let web = http_server();
    let cfg = dir.path().join("proxies.json");
    std::fs::write(
        &cfg,
        format!(
            r#"[{{"name": "echo", "listen": "127.0.0.1:0", "upstream": "{echo}"}},
                {{"name": "web", "listen": "127.0.0.1:0", "upstream": "{web}", "mode": "http"}}]"#
        ),
    )
    .unwrap();
    let p = ProxyProc::start(&["--config", cfg.to_str().unwrap()]);
    let all = json(&api(p.api, "GET", "/proxies", "").1);
    assert_eq!(all["web"]["mode"], "http");
    let web_addr: SocketAddr = all["web"]["listen"].as_str().unwrap().parse().unwrap();
    let (status, body) = api(
        p.api,
        "POST",
        "/proxies/web/toxics",
        r#"{"type": "http_error", "attributes": {"status": 503}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = api(web_addr, "GET", "/", "");
    assert_eq!(status, 503);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "not a list"}"#).unwrap();
    let out = Command::new(BIN)
        .args(["proxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("JSON array"),
        "{err}"
    );
}

#[test]
fn proxy_help_teaches_with_an_example() {
    let out = Command::new(BIN)
        .args(["proxy", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in ["--listen", "--config", "curl", "toxics", "listening"] {
        assert!(text.contains(want), "missing {want}: {text}");
    }
}

const PYTHON_CLIENT: &str = r#"
import socket, sys, time
from toxiproxy import Toxiproxy

api_port, upstream = int(sys.argv[1]), sys.argv[2]
server = Toxiproxy()
server.update_api_consumer("127.0.0.1", api_port)
assert server.running()
assert server.version() is not None

proxy = server.create(upstream=upstream, name="echo", listen="127.0.0.1:0")
host, port = proxy.listen.rsplit(":", 1)
port = int(port)
assert port != 0, proxy.listen

def rtt():
    with socket.create_connection((host, port), timeout=10) as s:
        t = time.monotonic()
        s.sendall(b"ping")
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            assert chunk, "closed early"
            got += chunk
        assert got == b"ping"
        return time.monotonic() - t

assert rtt() < 0.3
proxy.add_toxic(type="latency", attributes={"latency": 500})
toxics = proxy.toxics()
assert list(toxics) == ["latency_downstream"], toxics
assert toxics["latency_downstream"].attributes["latency"] == 500
assert toxics["latency_downstream"].toxicity == 1.0
slow = rtt()
assert 0.5 <= slow < 2.0, slow
proxy.destroy_toxic("latency_downstream")
assert rtt() < 0.3
assert proxy.toxics() == {}

# Errors map to the client's exceptions.
from toxiproxy.exceptions import ProxyExists, NotFound, InvalidToxic
try:
    server.create(upstream=upstream, name="echo")
    raise SystemExit("duplicate proxy accepted")
except ProxyExists:
    pass
try:
    proxy.add_toxic(type="no_such_toxic")
    raise SystemExit("unknown toxic type accepted")
except InvalidToxic:
    pass
try:
    proxy.destroy_toxic("nope")
    raise SystemExit("deleting a missing toxic worked")
except NotFound:
    pass

# down(): the proxy refuses connections, then listens again on the same port.
with proxy.down():
    try:
        socket.create_connection((host, port), timeout=2).close()
        raise SystemExit("connected to a down proxy")
    except ConnectionRefusedError:
        pass
    assert server.get_proxy("echo").enabled is False
assert rtt() < 0.3

# reset(): every toxic removed, every proxy enabled.
proxy.add_toxic(type="latency", stream="upstream", attributes={"latency": 400})
assert rtt() >= 0.4
proxy.disable()
assert server.reset()
assert server.get_proxy("echo").enabled is True
assert rtt() < 0.3

populated = server.populate([{"name": "other", "upstream": upstream, "listen": "127.0.0.1:0"}])
assert [p.name for p in populated] == ["other"]
assert sorted(server.proxies()) == ["echo", "other"]
server.destroy_all()
assert server.proxies() == {}
print("OK")
"#;

#[test]
fn proxy_is_driven_by_the_real_toxiproxy_python_client() {
    if !have(
        "the toxiproxy-python client",
        Command::new("python3").args(["-c", "import toxiproxy, requests"]),
        "pip install toxiproxy-python requests future",
    ) {
        return;
    }
    let p = ProxyProc::start(&[]);
    let upstream = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(p.api.port().to_string())
        .arg(upstream.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const NODE_CLIENT: &str = r#"
const net = require("net");
const { Toxiproxy } = require("toxiproxy-node-client");
const [api, upstream] = process.argv.slice(2);

function rtt(listen) {
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")), +listen.slice(listen.lastIndexOf(":") + 1)];
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const s = net.connect(port, host, () => s.write("ping"));
    let got = "";
    s.on("data", (d) => { got += d; if (got.length >= 4) { s.end(); resolve(Number(process.hrtime.bigint() - t) / 1e6); } });
    s.on("error", reject);
  });
}
function assert(c, m) { if (!c) { console.error("assertion failed: " + m); process.exit(1); } }

(async () => {
  const tp = new Toxiproxy(`http://${api}`);
  const proxy = await tp.createProxy({ name: "node", listen: "127.0.0.1:0", upstream });
  assert(!proxy.listen.endsWith(":0"), proxy.listen);
  assert((await rtt(proxy.listen)) < 300, "fast without toxics");
  const toxic = await proxy.addToxic({ type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 500 } });
  assert(toxic.name === "latency_downstream", toxic.name);
  const slow = await rtt(proxy.listen);
  assert(slow >= 500 && slow < 2000, "latency " + slow);
  const got = await proxy.getToxic("latency_downstream");
  assert(got.attributes.latency === 500, JSON.stringify(got.attributes));
  await got.remove();
  assert((await rtt(proxy.listen)) < 300, "fast again");
  const down = await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  assert(down.enabled === false, "disabled");
  let refused = false;
  try { await rtt(proxy.listen); } catch (e) { refused = e.code === "ECONNREFUSED"; }
  assert(refused, "down proxy refuses");
  await tp.reset();
  assert((await tp.get("node")).enabled === true, "reset enables");
  const all = await tp.getAll();
  assert(Object.keys(all).join() === "node", Object.keys(all).join());
  const version = await tp.getVersion();
  assert(version.includes("version"), version);
  await proxy.remove();
  console.log("OK");
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn proxy_is_driven_by_the_real_toxiproxy_node_client() {
    let root = Command::new("npm")
        .args(["root", "-g"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !have(
        "the toxiproxy-node-client package",
        Command::new("node")
            .env("NODE_PATH", &root)
            .args(["-e", "require('toxiproxy-node-client')"]),
        "npm install -g toxiproxy-node-client@4",
    ) {
        return;
    }
    let p = ProxyProc::start(&[]);
    let upstream = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.js");
    std::fs::write(&script, NODE_CLIENT).unwrap();
    let out = Command::new("node")
        .env("NODE_PATH", &root)
        .arg(&script)
        .arg(p.api.to_string())
        .arg(upstream.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "node client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens and closes connections in a loop for a few seconds while toxics change; then the
/// proxy's descriptors and memory must be back near where they started.
#[test]
fn proxy_soak_leaves_descriptors_and_memory_flat() {
    let p = ProxyProc::start(&[]);
    let upstream = echo_server();
    let (status, body) = api(
        p.api,
        "POST",
        "/proxies",
        &format!(r#"{{"name": "soak", "listen": "127.0.0.1:0", "upstream": "{upstream}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let listen: SocketAddr = json(&body)["listen"].as_str().unwrap().parse().unwrap();

    let cycle = |rounds: usize| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        let Ok(mut c) = TcpStream::connect(listen) else {
                            continue;
                        };
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                        let msg = format!("worker {w} round {i}");
                        if c.write_all(msg.as_bytes()).is_ok() {
                            let mut back = vec![0u8; msg.len()];
                            let _ = c.read_exact(&mut back);
                        }
                        // Every fourth connection is reset rather than closed.
                        if i % 4 == 0 {
                            reset_on_close(&c);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    };
    cycle(50); // warm up: runtime threads, allocator pools
    std::thread::sleep(Duration::from_millis(500));
    let (fds0, rss0) = (open_fds(p.pid()), rss_kib(p.pid()));

    let api_addr = p.api;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let toxics = [
                r#"{"name": "t", "type": "latency", "attributes": {"latency": 2}}"#,
                r#"{"name": "t", "type": "slicer", "attributes": {"average_size": 4, "delay": 10}}"#,
                r#"{"name": "t", "type": "bandwidth", "stream": "upstream", "attributes": {"rate": 1000}}"#,
                r#"{"name": "t", "type": "latency", "toxicity": 0.5, "attributes": {"latency": 1}}"#,
            ];
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                api(
                    api_addr,
                    "POST",
                    "/proxies/soak/toxics",
                    toxics[i % toxics.len()],
                );
                std::thread::sleep(Duration::from_millis(50));
                api(api_addr, "DELETE", "/proxies/soak/toxics/t", "");
                std::thread::sleep(Duration::from_millis(50));
                if i % 10 == 9 {
                    api(api_addr, "POST", "/reset", "");
                }
                i += 1;
            }
        })
    };
    let t = Instant::now();
    let mut total = 0;
    while t.elapsed() < Duration::from_secs(4) {
        cycle(25);
        total += 8 * 25;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    api(p.api, "POST", "/reset", "");
    let settled = |f: &dyn Fn() -> bool| {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && !f() {
            std::thread::sleep(Duration::from_millis(100));
        }
        f()
    };
    let pid = p.pid();
    assert!(
        settled(&|| open_fds(pid) <= fds0 + 2),
        "descriptors: {fds0} before, {} after {total} connections",
        open_fds(pid)
    );
    let metrics = api(p.api, "GET", "/metrics", "").1;
    assert!(
        metrics.contains("simian_proxy_connections_open{proxy=\"soak\",mode=\"tcp\"} 0"),
        "{metrics}"
    );
    let rss1 = rss_kib(pid);
    assert!(
        rss1 <= rss0 + 16 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB over {total} connections"
    );
    eprintln!(
        "soak: {total} connections; fds {fds0} -> {}; RSS {rss0} -> {rss1} KiB",
        open_fds(pid)
    );
}

/// Makes the coming close a TCP RST (SO_LINGER 0).
fn reset_on_close(c: &TcpStream) {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(c, nix::sys::socket::sockopt::Linger, &linger);
}
