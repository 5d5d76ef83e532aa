//! A real HAProxy for tests, started on 127.0.0.1 and killed on drop: backend `app` with
//! `east1`, `east2` (weight 10) and `west1` (weight 20), each a tiny server answering its
//! name. Shared by the injector's tests and the end-to-end tests (`#[path]`).
//!
//! Needs `haproxy` on the PATH (`.ci/run` installs it); without it the tests fail.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A small HTTP server on 127.0.0.1 answering every request with its name.
pub struct NamedServer {
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
pub struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    pub frontend: u16,
    /// The admin socket also bound on TCP, as `tcp:127.0.0.1:PORT`.
    pub tcp_socket: String,
    _servers: Vec<NamedServer>,
}

pub fn free_port() -> u16 {
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
    pub fn start() -> Haproxy {
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

    pub fn socket(&self) -> String {
        self.dir.path().join("admin.sock").display().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// One runtime API command, straight on the socket (not through the code under test).
    pub fn command(&self, cmd: &str) -> String {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(s, "{cmd}").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.trim().to_string()
    }

    /// The current weight of `app/SERVER`.
    pub fn weight(&self, server: &str) -> u32 {
        let a = self.command(&format!("get weight app/{server}"));
        a.split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("get weight app/{server} answered {a:?}"))
    }

    pub fn weights(&self) -> [u32; 3] {
        ["east1", "east2", "west1"].map(|s| self.weight(s))
    }

    /// Sends `n` requests through the frontend; how many each server answered.
    pub fn traffic(&self, n: usize) -> Traffic {
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
pub struct Traffic {
    pub east: usize,
    pub west: usize,
}
