//! Each toxic's semantics on real loopback connections through a real proxy.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::testutil::*;
use crate::Mode;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Reads until EOF or error; returns the bytes and how it ended.
async fn read_all(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let r = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("connection ended in time");
    (out, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_direction() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(round_trip(&mut c, b"hello").await < ms(150));
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "attributes": {"latency": 250}}"#,
    )
    .await;
    let rtt = round_trip(&mut c, b"hello").await;
    assert!(
        rtt >= ms(250) && rtt < ms(1000),
        "downstream latency: {rtt:?}"
    );
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "stream": "upstream", "attributes": {"latency": 150}}"#,
    )
    .await;
    let rtt = round_trip(&mut c, b"hello").await;
    assert!(rtt >= ms(400) && rtt < ms(1500), "both directions: {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_from_a_distribution_is_applied_per_chunk() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "attributes": {"distribution": {"uniform": {"min": "40ms", "max": "60ms"}}}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        let rtt = round_trip(&mut c, b"x").await;
        assert!(rtt >= ms(40) && rtt < ms(300), "{rtt:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_zero_never_applies() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "toxicity": 0, "attributes": {"latency": 500}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(round_trip(&mut c, b"hello").await < ms(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxics_added_and_removed_reach_an_open_connection() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(round_trip(&mut c, b"a").await < ms(150));
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "name": "slow", "attributes": {"latency": 250}}"#,
    )
    .await;
    assert!(round_trip(&mut c, b"b").await >= ms(250));
    // Update: latency changes on the same connection.
    let r = call(
        s.api_addr(),
        "PATCH",
        "/proxies/p/toxics/slow",
        r#"{"attributes": {"latency": 400}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["attributes"]["latency"], 400);
    assert!(round_trip(&mut c, b"c").await >= ms(400));
    let r = call(s.api_addr(), "DELETE", "/proxies/p/toxics/slow", "").await;
    assert_eq!(r.status, 204);
    assert!(round_trip(&mut c, b"d").await < ms(150));
    // And POST /reset.
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "attributes": {"latency": 250}}"#,
    )
    .await;
    assert!(round_trip(&mut c, b"e").await >= ms(250));
    assert_eq!(call(s.api_addr(), "POST", "/reset", "").await.status, 204);
    assert!(round_trip(&mut c, b"f").await < ms(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_latency_toxic_releases_data_held_by_it() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "attributes": {"latency": 5000}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    c.write_all(b"held").await.unwrap();
    tokio::time::sleep(ms(100)).await;
    call(
        s.api_addr(),
        "DELETE",
        "/proxies/p/toxics/latency_downstream",
        "",
    )
    .await;
    let mut back = [0u8; 4];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"held");
    assert!(t.elapsed() < ms(2000), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_limits_the_rate() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    // 100 KB/s each way: 40 KB takes ~0.4 s (the upstream leg) + ~0.4 s (downstream).
    add_toxic(
        &s,
        "p",
        r#"{"type": "bandwidth", "attributes": {"rate": 100}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let msg = vec![7u8; 40_000];
    let rtt = round_trip(&mut c, &msg).await;
    assert!(rtt >= ms(350) && rtt < ms(3000), "{rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_cuts_chunks_and_keeps_the_bytes() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    // 1000 bytes in pieces of ~10 with 2 ms between: at least ~100 pieces, ~0.2 s.
    add_toxic(
        &s,
        "p",
        r#"{"type": "slicer", "attributes": {"average_size": 10, "size_variation": 5, "delay": 2000}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let msg: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let rtt = round_trip(&mut c, &msg).await;
    assert!(rtt >= ms(100), "{rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_passes_n_bytes_then_closes() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "limit_data", "attributes": {"bytes": 10}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"0123456789abcdefghij").await.unwrap();
    let (got, _) = read_all(&mut c, Duration::from_secs(5)).await;
    assert_eq!(got, b"0123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_drops_data_then_closes() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "timeout", "attributes": {"timeout": 200}}"#,
    )
    .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"lost").await.unwrap();
    let (got, _) = read_all(&mut c, Duration::from_secs(5)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(t.elapsed() >= ms(190), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_zero_holds_until_removed_and_removal_closes() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "timeout", "attributes": {"timeout": 0}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        tokio::time::timeout(ms(300), c.read(&mut buf))
            .await
            .is_err(),
        "no data, no close"
    );
    call(
        s.api_addr(),
        "DELETE",
        "/proxies/p/toxics/timeout_downstream",
        "",
    )
    .await;
    let (got, _) = read_all(&mut c, Duration::from_secs(5)).await;
    assert!(got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_the_connection() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 100}}"#,
    )
    .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let (got, end) = read_all(&mut c, Duration::from_secs(5)).await;
    assert!(got.is_empty());
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert!(t.elapsed() >= ms(90), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_delays_the_close() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "slow_close", "attributes": {"delay": 300}}"#,
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"hi").await;
    let t = Instant::now();
    c.shutdown().await.unwrap(); // the echo server then closes: that close is delayed
    let (got, end) = read_all(&mut c, Duration::from_secs(5)).await;
    assert!(got.is_empty() && end.is_ok());
    assert!(t.elapsed() >= ms(290), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_passes_through() {
    let (_s, addr) = proxied(sink_server().await, Mode::Tcp).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"abc").await.unwrap();
    c.shutdown().await.unwrap();
    let (got, _) = read_all(&mut c, Duration::from_secs(5)).await;
    assert!(String::from_utf8(got).unwrap().starts_with("3 "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_closes_listener_and_connections_and_enabling_listens_again() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"up").await;
    let r = call(s.api_addr(), "POST", "/proxies/p", r#"{"enabled": false}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], false);
    let (_, _) = read_all(&mut c, Duration::from_secs(5)).await; // closed
    assert_eq!(
        TcpStream::connect(addr).await.unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    assert_eq!(s.proxy_addr("p"), None);
    let r = call(s.api_addr(), "PATCH", "/proxies/p", r#"{"enabled": true}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["listen"], addr.to_string());
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_closes_the_client() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_s, addr) = proxied(dead, Mode::Tcp).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let (got, _) = read_all(&mut c, Duration::from_secs(5)).await;
    assert!(got.is_empty());
}

/// Sends `total` pseudo-random bytes through the proxy to the sink; checks count and hash.
async fn transfer(addr: std::net::SocketAddr, total: usize) {
    use sha2::Digest;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = c.split();
    let mut h = sha2::Sha256::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 16];
    let send = async {
        let mut sent = 0;
        while sent < total {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = (total - sent).min(buf.len());
            w.write_all(&buf[..n]).await.unwrap();
            h.update(&buf[..n]);
            sent += n;
        }
        w.shutdown().await.unwrap();
    };
    let mut reply = String::new();
    let recv = r.read_to_string(&mut reply);
    let (_, got) = tokio::join!(send, recv);
    got.unwrap();
    assert_eq!(reply, format!("{total} {}", hex(&h.finalize())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_arrive_intact_without_toxics() {
    let (_s, addr) = proxied(sink_server().await, Mode::Tcp).await;
    transfer(addr, 64 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_arrive_intact_through_a_latency_toxic() {
    let (s, addr) = proxied(sink_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "stream": "upstream", "attributes": {"latency": 5, "jitter": 2}}"#,
    )
    .await;
    transfer(addr, 64 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_survive_toxics_switching_on_and_off_mid_transfer() {
    let (s, addr) = proxied(sink_server().await, Mode::Tcp).await;
    let api = s.api_addr();
    let flip = tokio::spawn(async move {
        for i in 0..20 {
            let body = format!(
                r#"{{"type": "latency", "name": "t{i}", "stream": "upstream", "attributes": {{"latency": 1}}}}"#
            );
            call(api, "POST", "/proxies/p/toxics", &body).await;
            tokio::time::sleep(ms(20)).await;
            call(api, "DELETE", &format!("/proxies/p/toxics/t{i}"), "").await;
            tokio::time::sleep(ms(20)).await;
        }
    });
    transfer(addr, 256 << 20).await;
    flip.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_and_fifty_concurrent_connections() {
    let (s, addr) = proxied(echo_server().await, Mode::Tcp).await;
    add_toxic(
        &s,
        "p",
        r#"{"type": "latency", "attributes": {"latency": 20}}"#,
    )
    .await;
    let mut conns = Vec::new();
    for _ in 0..250 {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let msg = format!("conn {i}");
                for _ in 0..3 {
                    round_trip(&mut c, msg.as_bytes()).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = call(s.api_addr(), "GET", "/metrics", "").await.body;
    assert!(
        m.contains("simian_proxy_connections_total{proxy=\"p\",mode=\"tcp\"} 250"),
        "{m}"
    );
}
