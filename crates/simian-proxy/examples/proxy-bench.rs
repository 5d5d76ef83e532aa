//! Overhead of a running `simian proxy` against direct loopback, measured side by side in
//! one run (see benches/proxy-overhead.sh):
//! - bulk throughput (one-way transfer to a sink), proxy / direct, and the same for
//!   HAProxy in TCP mode (with `splice-auto`) as a reference proxy, when it is installed;
//! - added round-trip latency of a 64-byte ping-pong, p50 and p99, proxy − direct;
//! - with a constant 5 ms latency toxic, the error of each individual delay
//!   (round trip − the no-toxic proxy median − 5 ms).
//!
//! `proxy-bench exact API REQUESTS PID` pushes REQUESTS request/response exchanges
//! (64 B to 32 KB, many per connection) through the proxy while toxics that must not
//! change a byte (latency, jitter, a distribution, slicer) come and go every 100 ms, and
//! checks every echo byte for byte, with descriptors and RSS over time.
//!
//! `proxy-bench soak API SECS` instead opens and closes connections for SECS seconds while
//! toxics change, and reports the proxy's descriptors and RSS over time (benches/proxy-soak.sh).
//!
//! Plain threads and blocking std sockets on the client side: nothing here is async, so
//! the client adds as little as it can. Only 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("overhead") => overhead(args[2].parse().expect("API address"), args.get(3)),
        Some("exact") => exact(
            args[2].parse().expect("API address"),
            args[3].parse().expect("requests"),
            args[4].parse().expect("pid"),
        ),
        Some("soak") => soak(
            args[2].parse().expect("API address"),
            args[3].parse().expect("seconds"),
            args[4].parse().expect("pid"),
        ),
        _ => {
            eprintln!("usage: proxy-bench overhead API_ADDR [GiB per run] | proxy-bench soak API_ADDR SECS PROXY_PID | proxy-bench exact API_ADDR REQUESTS PROXY_PID");
            std::process::exit(2);
        }
    }
}

fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

/// Creates a proxy in front of `upstream`; returns where it listens.
fn proxy(api_addr: SocketAddr, name: &str, upstream: SocketAddr) -> SocketAddr {
    let (st, body) = api(
        api_addr,
        "POST",
        "/proxies",
        &format!(r#"{{"name": "{name}", "listen": "127.0.0.1:0", "upstream": "{upstream}"}}"#),
    );
    assert_eq!(st, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["listen"].as_str().unwrap().parse().unwrap()
}

fn spawn_server(handler: fn(TcpStream)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || handler(s));
        }
    });
    addr
}

fn sink(mut s: TcpStream) {
    let mut buf = vec![0u8; 1 << 18];
    let mut n = 0u64;
    while let Ok(k) = s.read(&mut buf) {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let _ = s.write_all(format!("{n}").as_bytes());
}

fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(k) = s.read(&mut buf) {
        if k == 0 || s.write_all(&buf[..k]).is_err() {
            break;
        }
    }
}

/// Sends `bytes` to a sink through `addr`; returns bytes/s.
fn bulk(addr: SocketAddr, bytes: u64) -> f64 {
    let mut c = TcpStream::connect(addr).unwrap();
    let buf = vec![0x5au8; 1 << 18];
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        c.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(reply, bytes.to_string(), "bytes out = bytes in");
    bytes as f64 / secs
}

/// `n` ping-pongs of 64 bytes on one connection; round trips in µs. `spin`: the client
/// polls a non-blocking socket instead of sleeping in read(2), so its own wake-up after
/// a long wait (an idle vCPU woken by an IPI) is not counted.
fn pings_with(addr: SocketAddr, n: usize, spin: bool) -> Vec<f64> {
    pings_paced(addr, n, spin, Duration::ZERO)
}

/// Like `pings_with`, idle for `gap` before each ping.
fn pings_paced(addr: SocketAddr, n: usize, spin: bool, gap: Duration) -> Vec<f64> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_nonblocking(spin).unwrap();
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let t = Instant::now();
        c.write_all(&msg).unwrap();
        let mut got = 0;
        while got < back.len() {
            match c.read(&mut back[got..]) {
                Ok(0) => panic!("closed"),
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out
}

fn pings(addr: SocketAddr, n: usize) -> Vec<f64> {
    pings_with(addr, n, false)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn median(v: &mut [f64]) -> f64 {
    pct(v, 0.5)
}

fn overhead(api_addr: SocketAddr, gib: Option<&String>) {
    let gib: f64 = gib.map_or(1.0, |g| g.parse().expect("GiB"));
    let bytes = (gib * (1u64 << 30) as f64) as u64;
    let sink_addr = spawn_server(sink);
    let echo_addr = spawn_server(echo);
    let bulk_proxy = proxy(api_addr, "bench-bulk", sink_addr);
    let ping_proxy = proxy(api_addr, "bench-ping", echo_addr);
    let lat_proxy = proxy(api_addr, "bench-latency", echo_addr);
    let (st, body) = api(
        api_addr,
        "POST",
        "/proxies/bench-latency/toxics",
        r#"{"type": "latency", "attributes": {"latency": 5}}"#,
    );
    assert_eq!(st, 200, "{body}");

    // Throughput: alternate direct, proxy (and HAProxy) runs, report the medians.
    let haproxy = Haproxy::start(sink_addr);
    bulk(sink_addr, bytes / 4);
    bulk(bulk_proxy, bytes / 4);
    if let Some(h) = &haproxy {
        bulk(h.addr, bytes / 4);
    }
    let (mut direct, mut proxied, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        direct.push(bulk(sink_addr, bytes));
        proxied.push(bulk(bulk_proxy, bytes));
        if let Some(h) = &haproxy {
            reference.push(bulk(h.addr, bytes));
        }
    }
    let (d, p) = (median(&mut direct), median(&mut proxied));
    println!("bulk throughput, {gib} GiB per run, median of 5 runs each, alternating:");
    println!("  direct loopback   {:>8.0} MiB/s", d / (1 << 20) as f64);
    println!("  through proxy     {:>8.0} MiB/s", p / (1 << 20) as f64);
    if !reference.is_empty() {
        let h = median(&mut reference);
        println!(
            "  through haproxy   {:>8.0} MiB/s   (reference: HAProxy {}, mode tcp, splice-auto)",
            h / (1 << 20) as f64,
            haproxy.as_ref().map_or("", |h| h.version.as_str())
        );
        println!("  ratio haproxy/direct {:.2}", h / d);
        println!("  ratio proxy/haproxy {:.2}", p / h);
    }
    println!("  ratio proxy/direct {:.2}   (target >= 0.60)", p / d);
    drop(haproxy);

    // Round trips: warm up, then interleave blocks of direct and proxied ping-pongs.
    pings(echo_addr, 2000);
    pings(ping_proxy, 2000);
    let (mut rd, mut rp) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        rd.extend(pings(echo_addr, 5000));
        rp.extend(pings(ping_proxy, 5000));
    }
    let (d50, d99) = (pct(&mut rd, 0.5), pct(&mut rd, 0.99));
    let (p50, p99) = (pct(&mut rp, 0.5), pct(&mut rp, 0.99));
    println!("round trip, 64-byte ping-pong, 20000 each, interleaved in blocks of 5000:");
    println!("  direct loopback   p50 {d50:>7.1} us   p99 {d99:>7.1} us");
    println!("  through proxy     p50 {p50:>7.1} us   p99 {p99:>7.1} us");
    println!(
        "  added by proxy    p50 {:>7.1} us   p99 {:>7.1} us   (targets <= 30 / <= 100)",
        p50 - d50,
        p99 - d99
    );

    // A constant 5 ms toxic: each delay = round trip - the no-toxic proxy median.
    pings(lat_proxy, 50);
    let rl = pings(lat_proxy, 1000);
    report_delays("blocking client (read(2) sleeps)", rl, p50);
    // The same with a polling client, against a polling no-toxic baseline: what remains is
    // the proxy's own error, without the client's wake-up from a 5 ms idle wait.
    let mut base = pings_with(ping_proxy, 5000, true);
    let b50 = pct(&mut base, 0.5);
    let rl = pings_with(lat_proxy, 1000, true);
    report_delays("polling client (diagnostic)", rl, b50);
    // And against a baseline paced like the toxic run (idle 5 ms before each no-toxic
    // ping), so both sides pay the same wake-ups from idle.
    let mut paced = pings_paced(ping_proxy, 1000, false, Duration::from_millis(5));
    let p50_paced = pct(&mut paced, 0.5);
    let rl = pings(lat_proxy, 1000);
    report_delays(
        "blocking client, baseline paced 5 ms (diagnostic)",
        rl,
        p50_paced,
    );
    for name in ["bench-bulk", "bench-ping", "bench-latency"] {
        api(api_addr, "DELETE", &format!("/proxies/{name}"), "");
    }
}

/// HAProxy forwarding to `upstream` in TCP mode, as a reference for what a mature proxy
/// costs on this machine; None when `haproxy` is not installed.
struct Haproxy {
    child: std::process::Child,
    addr: SocketAddr,
    version: String,
    _dir: std::path::PathBuf,
}

impl Haproxy {
    fn start(upstream: SocketAddr) -> Option<Haproxy> {
        let out = std::process::Command::new("haproxy")
            .arg("-v")
            .output()
            .ok()?;
        let version = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .to_string();
        let addr = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?;
        let dir = std::env::temp_dir().join(format!("simian-bench-haproxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 64\ndefaults\n  mode tcp\n  option splice-auto\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\nlisten bulk\n  bind {addr}\n  server sink {upstream}\n"
            ),
        )
        .ok()?;
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut h = Haproxy {
            child,
            addr,
            version,
            _dir: dir,
        };
        for _ in 0..100 {
            if TcpStream::connect(addr).is_ok() {
                return Some(h);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = h.child.kill();
        None
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn report_delays(what: &str, mut rl: Vec<f64>, base: f64) {
    let mut err: Vec<f64> = rl.iter().map(|r| (r - base - 5000.0).abs()).collect();
    let mut signed: Vec<f64> = rl.iter().map(|r| r - base - 5000.0).collect();
    println!("constant 5 ms latency toxic, 1000 ping-pongs, {what}; delay = round trip - {base:.1} us no-toxic median:");
    println!(
        "  round trip        p50 {:>8.1} us   p99 {:>8.1} us",
        pct(&mut rl, 0.5),
        pct(&mut rl, 0.99)
    );
    println!(
        "  delay error       median |e| {:>6.1} us (target <= 50)   p90 |e| {:>6.1} us   p99 |e| {:>6.1} us   median e {:+.1} us",
        pct(&mut err, 0.5),
        pct(&mut err, 0.9),
        pct(&mut err, 0.99),
        pct(&mut signed, 0.5)
    );
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn soak(api_addr: SocketAddr, secs: u64, pid: u32) {
    let echo_addr = spawn_server(echo);
    let listen = proxy(api_addr, "bench-soak", echo_addr);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(mut c) = TcpStream::connect(listen) {
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                        let msg = format!("w{w} #{i}");
                        if c.write_all(msg.as_bytes()).is_ok() {
                            let mut back = vec![0u8; msg.len()];
                            let _ = c.read_exact(&mut back);
                        }
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let toxics = [
        r#"{"name": "t", "type": "latency", "attributes": {"latency": 2, "jitter": 1}}"#,
        r#"{"name": "t", "type": "slicer", "attributes": {"average_size": 4, "delay": 10}}"#,
        r#"{"name": "t", "type": "limit_data", "attributes": {"bytes": 3}}"#,
        r#"{"name": "t", "type": "latency", "toxicity": 0.5, "attributes": {"distribution": {"exponential": {"mean": "1ms"}}}}"#,
    ];
    let t0 = Instant::now();
    println!(
        "{:>6} {:>12} {:>6} {:>10}",
        "secs", "connections", "fds", "rss_kib"
    );
    let mut i = 0;
    let mut next_report = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        api(
            api_addr,
            "POST",
            "/proxies/bench-soak/toxics",
            toxics[i % toxics.len()],
        );
        std::thread::sleep(Duration::from_millis(100));
        api(api_addr, "DELETE", "/proxies/bench-soak/toxics/t", "");
        std::thread::sleep(Duration::from_millis(100));
        i += 1;
        let s = t0.elapsed().as_secs();
        if s >= next_report {
            println!(
                "{s:>6} {:>12} {:>6} {:>10}",
                count.load(std::sync::atomic::Ordering::Relaxed),
                fds(pid),
                rss_kib(pid)
            );
            next_report = s + secs.div_ceil(10).max(1);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "{:>6} {:>12} {:>6} {:>10}   (after the load stopped)",
        t0.elapsed().as_secs(),
        count.load(std::sync::atomic::Ordering::Relaxed),
        fds(pid),
        rss_kib(pid)
    );
    api(api_addr, "DELETE", "/proxies/bench-soak", "");
}

/// Sizes of the exchanges, in turn: mostly small, some large (mean about 7.5 KB).
const SIZES: [usize; 8] = [64, 1_000, 4_000, 16_000, 32_000, 100, 2_000, 8_000];
/// Exchanges per connection before it is closed and a new one opened.
const PER_CONNECTION: u64 = 32;

/// Deterministic bytes for exchange `i` of worker `w`.
fn payload(w: u64, i: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut x = (w << 40) ^ i ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
}

fn exact(api_addr: SocketAddr, requests: u64, pid: u32) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let echo_addr = spawn_server(echo);
    let listen = proxy(api_addr, "bench-exact", echo_addr);
    let done = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..16u64)
        .map(|w| {
            let (done, bytes, wrong, failed) =
                (done.clone(), bytes.clone(), wrong.clone(), failed.clone());
            std::thread::spawn(move || {
                let (mut sent, mut back) = (Vec::new(), Vec::new());
                let mut i = 0u64;
                while done.load(Relaxed) < requests {
                    let Ok(mut c) = TcpStream::connect(listen) else {
                        failed.fetch_add(1, Relaxed);
                        continue;
                    };
                    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                    for _ in 0..PER_CONNECTION {
                        let len = SIZES[(i % SIZES.len() as u64) as usize];
                        payload(w, i, len, &mut sent);
                        back.resize(len, 0);
                        i += 1;
                        if c.write_all(&sent).is_err() || c.read_exact(&mut back).is_err() {
                            failed.fetch_add(1, Relaxed);
                            break;
                        }
                        if back != sent {
                            wrong.fetch_add(1, Relaxed);
                        }
                        bytes.fetch_add(2 * len as u64, Relaxed);
                        if done.fetch_add(1, Relaxed) + 1 >= requests {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // Only toxics that delay or split: anything else would rightly change the bytes.
    let toxics = [
        r#"{"name": "t", "type": "latency", "attributes": {"latency": 1, "jitter": 1}}"#,
        r#"{"name": "t", "type": "slicer", "attributes": {"average_size": 512, "size_variation": 256, "delay": 0}}"#,
        r#"{"name": "t", "type": "latency", "toxicity": 0.5, "attributes": {"distribution": {"exponential": {"mean": "500us"}}}}"#,
    ];
    let t0 = Instant::now();
    let (fds0, rss0) = (fds(pid), rss_kib(pid));
    println!(
        "{:>6} {:>10} {:>8} {:>6} {:>6} {:>10}",
        "secs", "requests", "GiB", "wrong", "fds", "rss_kib"
    );
    let mut i = 0;
    let mut next = Duration::ZERO;
    let (mut fds_max, mut rss_max) = (fds0, rss0);
    while done.load(Relaxed) < requests {
        api(
            api_addr,
            "POST",
            "/proxies/bench-exact/toxics",
            toxics[i % toxics.len()],
        );
        std::thread::sleep(Duration::from_millis(100));
        api(api_addr, "DELETE", "/proxies/bench-exact/toxics/t", "");
        std::thread::sleep(Duration::from_millis(100));
        i += 1;
        let (f, r) = (fds(pid), rss_kib(pid));
        fds_max = fds_max.max(f);
        rss_max = rss_max.max(r);
        if t0.elapsed() >= next {
            println!(
                "{:>6} {:>10} {:>8.2} {:>6} {:>6} {:>10}",
                t0.elapsed().as_secs(),
                done.load(Relaxed),
                bytes.load(Relaxed) as f64 / (1u64 << 30) as f64,
                wrong.load(Relaxed),
                f,
                r
            );
            next += Duration::from_secs(10);
        }
    }
    for w in workers {
        let _ = w.join();
    }
    std::thread::sleep(Duration::from_secs(1));
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} requests, {:.2} GiB through the proxy (both ways) in {secs:.0}s, {} toxic switches; {} not byte-exact, {} failed exchanges",
        done.load(Relaxed),
        bytes.load(Relaxed) as f64 / (1u64 << 30) as f64,
        2 * i,
        wrong.load(Relaxed),
        failed.load(Relaxed)
    );
    println!(
        "proxy fds {fds0} at the start, {fds_max} at most, {} after; RSS {rss0} KiB at the start, {rss_max} KiB at most, {} KiB after",
        fds(pid),
        rss_kib(pid)
    );
    api(api_addr, "DELETE", "/proxies/bench-exact", "");
}
