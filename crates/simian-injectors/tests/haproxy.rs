//! The haproxy shifter against a real HAProxy: weights through its admin socket, traffic
//! through its frontend, and a revert that puts back exactly what was there.
//!
//! Needs `haproxy` on the PATH (`.ci/run` installs it); without it these tests fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use simian_experiment::{HaproxyShifter, Inject, ShiftFault, Shifter};
use simian_injectors::{BuildCtx, Fault, FaultError, RevertRecord};

/// A small HTTP server on 127.0.0.1 answering every request with its name.
struct NamedServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NamedServer {
    fn start(name: &'static str) -> NamedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                    name.len()
                );
            }
        });
        NamedServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NamedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// HAProxy with backend `app` (east1, east2 at weight 10; west1 at 20), killed on drop.
struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    frontend: u16,
    /// The admin socket also bound on TCP, as `tcp:127.0.0.1:PORT`.
    tcp_socket: String,
    _servers: Vec<NamedServer>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn haproxy_binary() -> PathBuf {
    for p in ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v haproxy"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found {
        Some(p) if !p.is_empty() => p.into(),
        _ => panic!(
            "these tests need HAProxy: run `.ci/run`, or `apt-get install -y haproxy` (the \
             system service need not run; the tests start their own)"
        ),
    }
}

impl Haproxy {
    fn start() -> Haproxy {
        let bin = haproxy_binary();
        let servers = vec![
            NamedServer::start("east1"),
            NamedServer::start("east2"),
            NamedServer::start("west1"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let frontend = free_port();
        let admin_tcp = free_port();
        let config = format!(
            "global\n\
             \x20   stats socket {sock} mode 600 level admin\n\
             \x20   stats socket ipv4@127.0.0.1:{admin_tcp} level admin\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 1s\n\
             \x20   timeout client 5s\n\
             \x20   timeout server 5s\n\
             frontend web\n\
             \x20   bind 127.0.0.1:{frontend}\n\
             \x20   default_backend app\n\
             backend app\n\
             \x20   balance roundrobin\n\
             \x20   server east1 127.0.0.1:{e1} weight 10\n\
             \x20   server east2 127.0.0.1:{e2} weight 10\n\
             \x20   server west1 127.0.0.1:{w1} weight 20\n",
            sock = dir.path().join("admin.sock").display(),
            e1 = servers[0].port,
            e2 = servers[1].port,
            w1 = servers[2].port,
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(bin)
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let mut h = Haproxy {
            child,
            dir,
            frontend,
            tcp_socket: format!("tcp:127.0.0.1:{admin_tcp}"),
            _servers: servers,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited ({status}): {}", h.log());
            }
            let ready = UnixStream::connect(h.socket()).is_ok()
                && TcpStream::connect(("127.0.0.1", frontend)).is_ok()
                && TcpStream::connect(("127.0.0.1", admin_tcp)).is_ok();
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not come up within 10s: {}",
                h.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }

    fn socket(&self) -> String {
        self.dir.path().join("admin.sock").display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// One runtime API command, straight on the socket (not through the code under test).
    fn command(&self, cmd: &str) -> String {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(s, "{cmd}").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.trim().to_string()
    }

    /// The current weight of `app/SERVER`.
    fn weight(&self, server: &str) -> u32 {
        let a = self.command(&format!("get weight app/{server}"));
        a.split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("get weight app/{server} answered {a:?}"))
    }

    fn weights(&self) -> [u32; 3] {
        ["east1", "east2", "west1"].map(|s| self.weight(s))
    }

    /// Sends `n` requests through the frontend; how many each server answered.
    fn traffic(&self, n: usize) -> Traffic {
        let mut t = Traffic::default();
        for _ in 0..n {
            let mut s = TcpStream::connect(("127.0.0.1", self.frontend)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            if answer.ends_with("east1") || answer.ends_with("east2") {
                t.east += 1;
            } else if answer.ends_with("west1") {
                t.west += 1;
            } else {
                panic!("unexpected answer through haproxy: {answer:?}");
            }
        }
        t
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default)]
struct Traffic {
    east: usize,
    west: usize,
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn inject(socket: &str, from_servers: &[&str]) -> Inject {
    Inject {
        name: Some("evac".into()),
        shift: Some(ShiftFault {
            from: "east".into(),
            to: "west".into(),
            percent: None,
            via: Shifter::Haproxy(HaproxyShifter {
                socket: socket.into(),
                backend: "app".into(),
                from_servers: names(from_servers),
                to_servers: names(&["west1"]),
            }),
        }),
        ..Inject::default()
    }
}

async fn build(socket: &str, from_servers: &[&str]) -> Result<Box<dyn Fault>, FaultError> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = BuildCtx {
        lab: None,
        run_proxy_api: None,
        rng: &mut rng,
    };
    simian_injectors::build("evac", &inject(socket, from_servers), &mut ctx).await
}

async fn build_east(h: &Haproxy) -> Box<dyn Fault> {
    build(&h.socket(), &["east1", "east2"]).await.unwrap()
}

/// Blocking traffic off the runtime's worker threads.
async fn traffic(h: &Arc<Haproxy>, n: usize) -> Traffic {
    let h = h.clone();
    tokio::task::spawn_blocking(move || h.traffic(n))
        .await
        .unwrap()
}

#[tokio::test]
async fn build_and_prepare_record_every_weight_and_change_nothing() {
    let h = Haproxy::start();
    let fault = build_east(&h).await;
    let plan = fault.plan();
    assert_eq!(
        plan.targets,
        vec![
            "server app/east1 (weight 10)".to_string(),
            "server app/east2 (weight 10)".to_string()
        ]
    );
    assert_eq!(
        plan.universe,
        format!("servers of backend app at {}", h.socket())
    );
    let record = fault.prepare().await.unwrap();
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["kind"], "shift");
    assert_eq!(json["via"], "haproxy");
    assert_eq!(json["backend"], "app");
    assert_eq!(json["socket"], h.socket());
    assert_eq!(
        json["servers"],
        serde_json::json!([
            {"server": "east1", "weight": 10},
            {"server": "east2", "weight": 10},
            {"server": "west1", "weight": 20},
        ])
    );
    assert_eq!(h.weights(), [10, 10, 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_shift_halves_the_east_weights_and_traffic_favours_west() {
    let h = Arc::new(Haproxy::start());
    let before = traffic(&h, 100).await;
    assert!(
        (35..=65).contains(&before.west),
        "10/10/20 should split about evenly: {before:?}"
    );
    let fault = build_east(&h).await;
    let _record = fault.prepare().await.unwrap();
    fault.ramp().unwrap().shift(0.5).await.unwrap();
    assert_eq!(h.command("get weight app/east1"), "5 (initial 10)");
    assert_eq!(h.command("get weight app/east2"), "5 (initial 10)");
    assert_eq!(h.command("get weight app/west1"), "20 (initial 20)");
    // 5/5/20: west should take about two thirds.
    let after = traffic(&h, 100).await;
    assert!(
        after.west >= 55 && after.east >= 15,
        "5/5/20 should send about 67 of 100 to west: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shift_drains_east_so_no_request_reaches_it() {
    let h = Arc::new(Haproxy::start());
    let fault = build_east(&h).await;
    let record = fault.prepare().await.unwrap();
    fault.apply(&record).await.unwrap(); // `percent` unset: 100%
    assert_eq!(h.weights(), [0, 0, 20]);
    let t = traffic(&h, 100).await;
    assert_eq!((t.east, t.west), (0, 100), "east is drained: {t:?}");
}

#[tokio::test]
async fn revert_restores_the_exact_weights_and_can_repeat() {
    let h = Haproxy::start();
    let fault = build_east(&h).await;
    let record = fault.prepare().await.unwrap();
    let ramp = fault.ramp().unwrap();
    for share in [0.1, 0.25, 0.5, 1.0] {
        ramp.shift(share).await.unwrap();
    }
    assert_eq!(h.weights(), [0, 0, 20]);
    let reverted = simian_injectors::revert(&record).await.unwrap();
    assert_eq!(
        reverted.actions,
        vec![
            "set weight app/east1 10".to_string(),
            "set weight app/east2 10".to_string(),
            "set weight app/west1 20".to_string(),
        ]
    );
    assert_eq!(h.weights(), [10, 10, 20]);
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(h.weights(), [10, 10, 20]);
    assert_eq!(h.command("get weight app/east1"), "10 (initial 10)");
}

#[tokio::test]
async fn revert_needs_only_the_journaled_record() {
    let h = Haproxy::start();
    // Someone had tuned east2 before the experiment: revert must put back 7, not 10.
    assert_eq!(h.command("set weight app/east2 7"), "");
    let json = {
        let fault = build_east(&h).await;
        let record = fault.prepare().await.unwrap();
        fault.ramp().unwrap().shift(0.5).await.unwrap();
        serde_json::to_string(&record).unwrap()
    };
    assert_eq!(h.weights(), [5, 4, 20]); // 7 × 0.5 = 3.5 rounds to 4
                                         // As `simian recover` does: the record from the journal, nothing else.
    let record: RevertRecord = serde_json::from_str(&json).unwrap();
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(h.weights(), [10, 7, 20]);
}

#[tokio::test]
async fn the_admin_socket_can_be_reached_over_tcp() {
    let h = Haproxy::start();
    let fault = build(&h.tcp_socket, &["east1"]).await.unwrap();
    let record = fault.prepare().await.unwrap();
    fault.ramp().unwrap().shift(0.75).await.unwrap();
    assert_eq!(h.weights(), [3, 10, 20]); // 10 × 0.25 = 2.5 rounds to 3
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(h.weights(), [10, 10, 20]);
}

#[tokio::test]
async fn an_unknown_server_fails_at_build_naming_the_real_ones() {
    let h = Haproxy::start();
    let err = build(&h.socket(), &["east1", "east9"]).await.err().unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert!(message.contains("has no server `east9`"), "{message}");
    assert_eq!(hint.as_deref(), Some("its servers are east1, east2, west1"));
    assert_eq!(h.weights(), [10, 10, 20]);
}

#[tokio::test]
async fn an_unknown_backend_fails_at_build_naming_the_real_ones() {
    let h = Haproxy::start();
    let mut inj = inject(&h.socket(), &["east1"]);
    if let Some(ShiftFault {
        via: Shifter::Haproxy(hs),
        ..
    }) = &mut inj.shift
    {
        hs.backend = "ap".into();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = BuildCtx {
        lab: None,
        run_proxy_api: None,
        rng: &mut rng,
    };
    let err = simian_injectors::build("evac", &inj, &mut ctx)
        .await
        .err()
        .unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert!(message.contains("has no backend `ap`"), "{message}");
    assert_eq!(hint.as_deref(), Some("its backends are app"));
}

#[tokio::test]
async fn a_socket_nobody_listens_on_fails_at_build_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock").display().to_string();
    let err = build(&socket, &["east1"]).await.err().unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert!(
        message.contains("cannot use the HAProxy admin socket"),
        "{message}"
    );
    assert!(hint.unwrap().contains("stats socket"));
}
