//! Helpers for end-to-end tests: the real binary, a lab per test, experiment files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_simian");

/// The repository root (tests run from it, so paths in messages are stable).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A state dir with a running lab; the lab is taken down on drop, even if the test fails.
pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// 2 regions × 3 zones × 1 instance: small enough for parallel tests on 2 cores.
    pub fn up() -> Lab {
        Lab::up_with(&[])
    }

    /// [`Lab::up`]'s lab with more `lab up` arguments, e.g. `["--capacity", "us-west=50"]`.
    pub fn up_with(extra: &[&str]) -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(BIN)
            .args(["--state-dir"])
            .arg(dir.path())
            .args([
                "lab",
                "up",
                "--regions",
                "2",
                "--zones",
                "3",
                "--instances",
                "1",
            ])
            .args(extra)
            .output()
            .expect("run simian lab up");
        assert!(
            out.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lab { dir }
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn simian(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(root())
            .env("SIMIAN_STATE_DIR", self.dir.path());
        c
    }

    pub fn state(&self) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.dir.path().join("lab/state.json")).expect("lab state");
        serde_json::from_str(&text).expect("lab state is JSON")
    }

    /// Pids of the instances of `zone`, as the lab records them now.
    pub fn zone_pids(&self, zone: &str) -> Vec<u32> {
        instances(&self.state())
            .into_iter()
            .filter(|i| i["zone"] == zone)
            .map(|i| i["pid"].as_u64().unwrap() as u32)
            .collect()
    }

    pub fn all_pids(&self) -> Vec<u32> {
        instances(&self.state())
            .into_iter()
            .map(|i| i["pid"].as_u64().unwrap() as u32)
            .collect()
    }

    /// Writes an experiment file into the state dir and returns its path.
    pub fn experiment(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// True when every instance of `zone` is running (not stopped, not dead) and answers /health.
    pub fn zone_serving(&self, zone: &str) -> bool {
        let st = self.state();
        instances(&st)
            .into_iter()
            .filter(|i| i["zone"] == zone)
            .all(|i| {
                let pid = i["pid"].as_u64().unwrap() as u32;
                proc_state(pid).is_some_and(|s| s != 'T' && s != 'Z')
                    && http_ok(i["url"].as_str().unwrap())
            })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("--state-dir")
            .arg(self.dir.path())
            .args(["lab", "down"])
            .output();
    }
}

fn instances(state: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for r in state["regions"].as_array().unwrap() {
        for z in r["zones"].as_array().unwrap() {
            out.extend(z["instances"].as_array().unwrap().iter().cloned());
        }
    }
    out
}

/// The state letter of /proc/PID/stat (R, S, T, Z…), None when gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// A plain HTTP/1.0 GET over a std socket; true on a 200 within 1s.
pub fn http_ok(url: &str) -> bool {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let Ok(addr) = addr.parse() else { return false };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") && &buf[9..12] == b"200"
}

/// Polls `f` until it is true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A short Chaos Gorilla for tests: kill `zone`, hold, and the given hypothesis/stop lines.
pub fn gorilla(zone: &str, hypothesis: &[&str], stop_when: &[&str], hold: &str) -> String {
    let list = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("\n    - \"{x}\""))
            .collect::<String>()
    };
    format!(
        r#"version: 1
name: test-gorilla
steady_state:
  probes:
    users:
      http: {{ url: "${{lab.us-east.edge}}/play", rate: 50, timeout: 1s }}
    zone_a:
      http: {{ url: "${{lab.us-east-a-1}}/play", rate: 20, timeout: 500ms }}
  hypothesis:{}
  before: 2s
  window: 2s
  after: 2s
  settle: 500ms
stop_when:{}
method:
  - inject:
      name: zone-down
      process:
        target: {{ lab: {{ zone: {zone} }} }}
  - wait: {hold}
guards:
  max_blast_radius: 50%
  max_duration: 2m
"#,
        list(hypothesis),
        if stop_when.is_empty() {
            " []".to_string()
        } else {
            list(stop_when)
        },
    )
}

/// A plain HTTP/1.1 request over a std socket (Connection: close): (status, body).
/// Panics if it cannot connect.
pub fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let (status, _, body) = try_http(method, url, body.unwrap_or("")).expect("connect");
    (status, body)
}

/// One HTTP/1.1 request over a fresh connection (connect within 2s, answer within 5s):
/// the status (0 if none), the head lowercased, the body.
pub fn try_http(method: &str, url: &str, body: &str) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr: std::net::SocketAddr = host.parse().expect("tests use IP:PORT");
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, head.to_ascii_lowercase(), body.to_string()))
}

impl Lab {
    /// `simian ARGS` in the background, output discarded, with no guardian (for tests
    /// that SIGKILL it and then show what `simian recover` does).
    pub fn spawn_quiet<I, S>(&self, args: I) -> std::process::Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.simian()
            .env("SIMIAN_NO_GUARDIAN", "1")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn simian")
    }
}

/// Asserts the exit code, showing both outputs when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// The exit code of `child` once it ends, waiting at most `limit` (then it is killed: None).
pub fn exit_code_within(mut child: std::process::Child, limit: Duration) -> Option<i32> {
    let mut code = None;
    let done = eventually(limit, || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
    }
    code.flatten()
}

/// (tests, failures, errors) of a JUnit XML file as `junitparser` (PyPI), a real JUnit
/// consumer, reads it. `.ci/run` installs it.
pub fn junit_counts(path: &Path) -> (u64, u64, u64) {
    let script = r#"
import sys, junitparser
xml = junitparser.JUnitXml.fromfile(sys.argv[1])
suites = [xml] if isinstance(xml, junitparser.TestSuite) else list(xml)
t = f = e = 0
for s in suites:
    for case in s:
        t += 1
        for r in case.result:
            if isinstance(r, junitparser.Failure): f += 1
            elif isinstance(r, junitparser.Error): e += 1
print(t, f, e)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "junitparser could not read {} (is it installed? `python3 -m pip install junitparser`): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

/// One HTTP/1.1 request read off `c`: its head and body (by `content-length`), for the
/// small servers tests run on 127.0.0.1.
pub fn read_request(c: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read as _;
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = c.read(&mut buf) else {
            return (String::new(), String::new());
        };
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((h, b)) = text.split_once("\r\n\r\n") {
            let len = h
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if b.len() >= len || n == 0 {
                return (h.to_string(), b.to_string());
            }
        } else if n == 0 {
            return (text, String::new());
        }
    }
}

/// A `sleep SECS` in the background, detached so it is nobody's child here: a local
/// victim for `process` faults. Give each test its own number (`2999.NNN`), since faults
/// match by pattern.
pub fn detached_sleep(secs: &str) -> u32 {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {secs} >/dev/null 2>&1 & echo $!"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

pub fn sigkill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// A run's `simian` in state dir `dir`, with no terminal and the guardian left on.
pub fn simian_in(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("SIMIAN_STATE_DIR", dir)
        .env_remove("SIMIAN_NO_GUARDIAN")
        .stdin(std::process::Stdio::null());
    c
}

/// An experiment `NAME.yaml` in `dir` that SIGSTOPs the local `sleep VICTIM` (a regex,
/// e.g. `2999\\.601`), probed by a command that always works; `then` holds the method's
/// steps after the inject, `extra` more top-level YAML (before `guards:`).
pub fn stop_sleep(dir: &Path, name: &str, victim: &str, then: &str, extra: &str) -> PathBuf {
    let fault = format!("{{ target: {{ pattern: '^sleep {victim}$' }}, action: stop }}");
    process_experiment(dir, name, &fault, then, extra)
}

/// Like [`stop_sleep`], with the inject's `process:` fault given whole (a YAML flow
/// mapping), e.g. `{ target: { pidfile: '/tmp/pid' }, action: kill }`.
pub fn process_experiment(dir: &Path, name: &str, fault: &str, then: &str, extra: &str) -> PathBuf {
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &f,
        format!(
            r#"version: 1
name: {name}
steady_state:
  probes:
    ok: {{ command: {{ run: "true", interval: 100ms }} }}
  hypothesis: [ "ok.success_ratio >= 99%" ]
  before: 1s
  window: 1s
  after: 1s
method:
  - inject:
      name: victim
      process: {fault}
{then}{extra}guards:
  max_duration: 10m
"#
        ),
    )
    .unwrap();
    f
}

/// A tiny seeded generator (xorshift64*), so a failing campaign can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The random-kill campaigns' seed and run count: `SIMIAN_CAMPAIGN_SEED`, and `var` (a
/// run count) or `default`.
pub fn campaign(var: &str, default: usize) -> (u64, usize) {
    let seed = std::env::var("SIMIAN_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let runs = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (seed, runs)
}
