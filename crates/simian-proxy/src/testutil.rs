//! Test helpers: real servers on loopback (echo, sink, a tiny HTTP upstream), a proxy
//! server, and a plain HTTP/1.1 client for the admin API.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Mode, ProxyConfig, Server};

/// Echoes every byte back until EOF, then closes.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads to EOF, then writes back `count sha256hex` and closes.
pub async fn sink_server() -> SocketAddr {
    use sha2::Digest;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut h = sha2::Sha256::new();
                let mut n = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            h.update(&buf[..k]);
                            n += k as u64;
                        }
                    }
                }
                let out = format!("{n} {}", hex(&h.finalize()));
                let _ = s.write_all(out.as_bytes()).await;
            });
        }
    });
    addr
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A tiny HTTP/1.1 upstream: answers every request 200 with body `ok <path>`.
pub async fn http_upstream() -> SocketAddr {
    use hyper::service::service_fn;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!("ok {}", req.uri().path());
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

pub async fn server() -> Server {
    Server::start("127.0.0.1:0".parse().unwrap(), vec![])
        .await
        .unwrap()
}

/// A server with one proxy `p` in front of `upstream`; returns the proxy's address.
pub async fn proxied(upstream: SocketAddr, mode: Mode) -> (Server, SocketAddr) {
    let s = Server::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![ProxyConfig {
            name: "p".into(),
            listen: "127.0.0.1:0".into(),
            upstream: upstream.to_string(),
            enabled: true,
            mode,
        }],
    )
    .await
    .unwrap();
    let addr = s.proxy_addr("p").unwrap();
    (s, addr)
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`; the raw body bytes are sent as given.
pub async fn call_raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("reply within 20s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

pub async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    call_raw(addr, method, path, body.as_bytes()).await
}

/// Adds a toxic through the API and checks it was accepted.
pub async fn add_toxic(s: &Server, proxy: &str, body: &str) -> Value {
    let r = call(
        s.api_addr(),
        "POST",
        &format!("/proxies/{proxy}/toxics"),
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Writes `msg`, reads exactly as many bytes back (an echo), returns the round trip.
pub async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let t = std::time::Instant::now();
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut back))
        .await
        .expect("echo within 20s")
        .unwrap();
    assert_eq!(back, msg);
    t.elapsed()
}
