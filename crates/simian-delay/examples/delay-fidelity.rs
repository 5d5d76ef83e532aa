//! Delay fidelity bench (run by `benches/delay-fidelity.sh`; not part of CI).
//!
//! `delay-fidelity local`: the sampler and the precise timer alone. Concurrent tasks draw
//! a delay, sleep it with `sleep_precise`, and measure the sleep; the measured delays are
//! compared with the target (one-sample Kolmogorov–Smirnov against the sampler's exact
//! CDF, and two-sample against 1M fresh draws) and each measured delay with its draw
//! (median absolute error). tokio's own sleep is measured the same way for comparison.
//!
//! `delay-fidelity e2e --api 127.0.0.1:PORT [--upstream ADDR]`: end to end through a
//! running `simian proxy` in HTTP mode. Creates a proxy (`"mode": "http"`) in front of a
//! fast HTTP upstream (`delay-fidelity upstream`, or one in this process), and for each
//! target adds a `latency` toxic carrying the distribution, sends the requests over
//! keep-alive connections, and compares (a) RTT − the run's median direct RTT with the
//! target (KS), and (b) that measured delay with the delay the proxy reports having drawn
//! (`x-simian-delay-us`): the median absolute error. The same figures against the proxy
//! without toxics as the baseline are printed beside them.
//!
//! `delay-fidelity upstream`: just the upstream; prints `listening ADDR`.
//!
//! Options: `--n 20000` requests per target, `--concurrency 16`, `--quick` (2 000),
//! `--proxy-pid PID` (to report the proxy's CPU use). `CLIENT=block` makes the e2e client
//! block in `poll` instead of busy-polling. Only 127.0.0.1.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use simian_delay::stats::{ks_one_sample_atoms, ks_p_value, ks_two_sample, median};
use simian_delay::{sleep_precise, DelaySpec, Sampler};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The issue's targets.
const KS_TARGET: f64 = 0.02;
const MAE_DIST_TARGET_US: f64 = 100.0;
const MAE_CONST_TARGET_US: f64 = 50.0;

struct Target {
    name: &'static str,
    json: &'static str,
    mae_target_us: f64,
}

const TARGETS: &[Target] = &[
    Target {
        name: "lognormal median 20ms σ 0.5",
        json: r#"{"distribution": {"lognormal": {"median": "20ms", "sigma": 0.5}}, "max": "1s"}"#,
        mae_target_us: MAE_DIST_TARGET_US,
    },
    Target {
        name: "pareto scale 5ms shape 2.5 max 1s",
        json: r#"{"distribution": {"pareto": {"scale": "5ms", "shape": 2.5}}, "max": "1s"}"#,
        mae_target_us: MAE_DIST_TARGET_US,
    },
    Target {
        name: "normal mean 20ms σ 5ms min 0",
        json: r#"{"distribution": {"normal": {"mean": "20ms", "stddev": "5ms"}}, "min": "0s"}"#,
        mae_target_us: MAE_DIST_TARGET_US,
    },
    Target {
        name: "constant 5ms",
        json: r#"{"distribution": {"constant": {"value": "5ms"}}}"#,
        mae_target_us: MAE_CONST_TARGET_US,
    },
];

struct Opts {
    n: usize,
    concurrency: usize,
    api: Option<SocketAddr>,
    upstream: Option<SocketAddr>,
    proxy_pid: Option<u32>,
}

fn parse_args() -> Result<(String, Opts), Error> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "local".into());
    let mut o = Opts {
        n: 20_000,
        concurrency: 16,
        api: None,
        upstream: None,
        proxy_pid: None,
    };
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--n" => o.n = val()?.parse()?,
            "--concurrency" => o.concurrency = val()?.parse()?,
            "--proxy-pid" => o.proxy_pid = Some(val()?.parse()?),
            "--upstream" => o.upstream = Some(val()?.parse()?),
            "--api" => o.api = Some(val()?.parse()?),
            "--quick" => o.n = 2_000,
            _ => return Err(format!("unknown argument `{a}`").into()),
        }
    }
    Ok((mode, o))
}

fn main() -> Result<(), Error> {
    let (mode, opts) = parse_args()?;
    // The proxy's shape: two workers on the 2-core box.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match mode.as_str() {
        "local" => rt.block_on(local(&opts)),
        "e2e" => e2e(&opts),
        "upstream" => {
            println!("listening {}", upstream()?);
            loop {
                std::thread::park();
            }
        }
        m => Err(format!("unknown mode `{m}` (local, e2e)").into()),
    }
}

fn sampler(t: &Target) -> Result<Sampler, Error> {
    let spec: DelaySpec = serde_json::from_str(t.json)?;
    Sampler::new(&spec).map_err(|e| e.join("; ").into())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Quantiles of a sorted slice.
fn q(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints the figures for one target: measured delays (seconds) against the sampler, and
/// the per-request errors (µs, signed) if there are any.
fn report(t: &Target, s: &Sampler, mut measured: Vec<f64>, mut errs_us: Vec<f64>, extra: &str) {
    let n = measured.len();
    let d = ks_one_sample_atoms(
        &mut measured,
        |x| s.cdf_below(Duration::from_secs_f64(x.max(0.0))),
        |x| s.cdf(Duration::from_secs_f64(x.max(0.0))),
    );
    // Two-sample against 1M fresh draws, as a cross-check of the one-sample figure.
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut draws: Vec<f64> = (0..1_000_000)
        .map(|_| s.sample(&mut rng).as_secs_f64())
        .collect();
    let d2 = ks_two_sample(&mut measured.clone(), &mut draws);
    let p = ks_p_value(d, n as f64);
    println!("  {} — {} requests{extra}", t.name, n);
    if !matches!(t.name, "constant 5ms") {
        println!(
            "    KS D (one-sample vs exact CDF) = {d:.4}  p = {p:.2}   target ≤ {KS_TARGET}   {}",
            verdict(d <= KS_TARGET)
        );
        println!("    KS D (two-sample vs 1M draws)  = {d2:.4}");
    }
    let mut abs: Vec<f64> = errs_us.iter().map(|e| e.abs()).collect();
    let mae = median(&mut abs);
    errs_us.sort_by(f64::total_cmp);
    println!(
        "    median |error| = {mae:.1} µs   target ≤ {} µs   {}",
        t.mae_target_us,
        verdict(mae <= t.mae_target_us)
    );
    println!(
        "    error µs: p1 {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        q(&errs_us, 0.01),
        q(&errs_us, 0.5),
        q(&errs_us, 0.9),
        q(&errs_us, 0.99),
        errs_us[errs_us.len() - 1]
    );
    measured.sort_by(f64::total_cmp);
    println!(
        "    measured ms: p50 {:.3} (target {:.3})  p99 {:.3} (target {:.3})  mean {:.3} (target {:.3})",
        q(&measured, 0.5) * 1e3,
        s.quantile(0.5).as_secs_f64() * 1e3,
        q(&measured, 0.99) * 1e3,
        s.quantile(0.99).as_secs_f64() * 1e3,
        measured.iter().sum::<f64>() / n as f64 * 1e3,
        s.mean().as_secs_f64() * 1e3,
    );
}

fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

// ------------------------------------------------------------------ local

async fn local(o: &Opts) -> Result<(), Error> {
    println!(
        "sampler + precise timer alone (no proxy): {} sleeps per target, {} concurrent",
        o.n, o.concurrency
    );
    for (precise, label) in [(true, "sleep_precise"), (false, "tokio::time::sleep")] {
        println!("{label}:");
        for t in TARGETS {
            if !precise && t.name != "constant 5ms" {
                continue;
            }
            let s = Arc::new(sampler(t)?);
            let (c0, w0) = (cpu_secs(), Instant::now());
            let per = o.n.div_ceil(o.concurrency);
            let mut tasks = Vec::new();
            for i in 0..o.concurrency {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
                    let mut out = Vec::with_capacity(per);
                    for _ in 0..per {
                        let d = s.sample(&mut rng);
                        let t0 = Instant::now();
                        if precise {
                            sleep_precise(d).await;
                        } else {
                            tokio::time::sleep(d).await;
                        }
                        out.push((t0.elapsed().as_secs_f64(), d.as_secs_f64()));
                    }
                    out
                }));
            }
            let mut pairs = Vec::new();
            for task in tasks {
                pairs.extend(task.await?);
            }
            pairs.truncate(o.n);
            let (cpu, wall) = (cpu_secs() - c0, w0.elapsed().as_secs_f64());
            let measured: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let errs: Vec<f64> = pairs.iter().map(|p| (p.0 - p.1) * 1e6).collect();
            let extra = format!(", CPU {cpu:.2} s in {wall:.1} s");
            report(t, &s, measured, errs, &extra);
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ e2e
//
// Measured with plain threads and a client that busy-polls its sockets: on this kind of
// VM a thread woken from idle takes 30–90 µs to run, and a client that blocks would count
// its own wake-up as delay error. The upstream and the proxy are not helped: they block
// as usual.

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

/// A tiny HTTP/1.1 upstream: answers every request `200 ok` at once, keep-alive, one
/// blocking thread per connection.
fn upstream() -> Result<SocketAddr, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let _ = sock.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let body = header(&head, "content-length")
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + body {
                            break;
                        }
                        buf.drain(..end + 4 + body);
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
                        if sock.write_all(resp).is_err() {
                            return;
                        }
                    }
                    match sock.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header's value from a lowercased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

struct Reply {
    status: u16,
    delay_us: Option<f64>,
    body: Vec<u8>,
}

/// One complete response at the start of `buf`: `(bytes used, reply)`, or None if more
/// bytes are needed. Content-length and chunked bodies.
fn parse_reply(buf: &[u8]) -> Result<Option<(usize, Reply)>, Error> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let delay_us = header(&head, "x-simian-delay-us").and_then(|v| v.parse().ok());
    let mut at = end + 4;
    let body = if header(&head, "transfer-encoding") == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let Some(line) = find(&buf[at..], b"\r\n") else {
                return Ok(None);
            };
            let text = String::from_utf8_lossy(&buf[at..at + line]).into_owned();
            let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)?;
            at += line + 2;
            if buf.len() < at + size + 2 {
                return Ok(None);
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
            if size == 0 {
                break body;
            }
        }
    } else {
        let len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if buf.len() < at + len {
            return Ok(None);
        }
        at += len;
        buf[at - len..at].to_vec()
    };
    Ok(Some((
        at,
        Reply {
            status,
            delay_us,
            body,
        },
    )))
}

/// One admin API call on a fresh connection.
fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String), Error> {
    let mut sock = std::net::TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((_, r)) = parse_reply(&buf)? {
            return Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()));
        }
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            return Err("the API closed the connection mid-reply".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// How each connection spaces its requests.
enum Pace<'a> {
    /// The next request as soon as the last reply is in.
    Closed,
    /// After each reply, wait a delay drawn from the sampler: the same idle pattern as a
    /// toxic run with that distribution, without the toxic.
    Gaps(&'a Sampler),
}

/// `n` GETs over `conns` keep-alive connections from one busy-polling thread; connection
/// `i` starts `i · stagger` in. Returns `(rtt seconds, x-simian-delay-us)` per request.
fn run_load(
    addr: SocketAddr,
    n: usize,
    conns: usize,
    pace: &Pace,
    stagger: Duration,
) -> Result<Vec<(f64, Option<f64>)>, Error> {
    struct Conn {
        sock: std::net::TcpStream,
        buf: Vec<u8>,
        sent_at: Option<Instant>,
        next_at: Instant,
    }
    let start = Instant::now();
    let mut cs = Vec::with_capacity(conns);
    for i in 0..conns {
        let sock = std::net::TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        sock.set_nonblocking(true)?;
        cs.push(Conn {
            sock,
            buf: Vec::with_capacity(4096),
            sent_at: None,
            next_at: start + stagger * i as u32,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let mut out = Vec::with_capacity(n);
    let mut sent = 0;
    let mut chunk = [0u8; 16384];
    let give_up = start + Duration::from_secs(600);
    while out.len() < n {
        let now = Instant::now();
        if now > give_up {
            return Err("load did not finish within 10 minutes".into());
        }
        for c in cs.iter_mut() {
            if c.sent_at.is_none() && sent < n && now >= c.next_at {
                // The clock is read before the write: if the write wakes the receiver
                // and the scheduler runs it first, that time is part of the RTT.
                c.sent_at = Some(Instant::now());
                write_nonblocking(&mut c.sock, REQUEST)?;
                sent += 1;
            }
        }
        let waiting: Vec<usize> = (0..cs.len()).filter(|&i| cs[i].sent_at.is_some()).collect();
        if waiting.is_empty() {
            // Nothing in flight: nothing can arrive, so sleep towards the next send.
            let next = cs.iter().map(|c| c.next_at).min().unwrap_or(now);
            let left = next.saturating_duration_since(Instant::now());
            if left > Duration::from_micros(300) {
                std::thread::sleep(left - Duration::from_micros(200));
            }
            continue;
        }
        let mut fds: Vec<PollFd> = waiting
            .iter()
            .map(|&i| PollFd::new(cs[i].sock.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout = if spin_client() {
            PollTimeout::ZERO
        } else {
            // Block until a reply or the next send is due.
            let next = cs
                .iter()
                .filter(|c| c.sent_at.is_none())
                .map(|c| c.next_at)
                .min();
            let left = next.map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(Instant::now())
            });
            PollTimeout::try_from(left.min(Duration::from_millis(100))).unwrap_or(PollTimeout::ZERO)
        };
        if poll(&mut fds, timeout)? == 0 {
            continue;
        }
        let arrived = Instant::now();
        let ready: Vec<usize> = waiting
            .iter()
            .zip(&fds)
            .filter(|(_, f)| f.any().unwrap_or(false))
            .map(|(&i, _)| i)
            .collect();
        drop(fds);
        for i in ready {
            let c = &mut cs[i];
            loop {
                match c.sock.read(&mut chunk) {
                    Ok(0) => return Err("the proxy closed a connection".into()),
                    Ok(k) => c.buf.extend_from_slice(&chunk[..k]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some((used, reply)) = parse_reply(&c.buf)? {
                c.buf.drain(..used);
                if reply.status != 200 {
                    return Err(format!("status {}", reply.status).into());
                }
                let sent_at = c.sent_at.take().ok_or("a reply nobody asked for")?;
                out.push((
                    arrived.duration_since(sent_at).as_secs_f64(),
                    reply.delay_us,
                ));
                c.next_at = match pace {
                    Pace::Closed => arrived,
                    Pace::Gaps(s) => arrived + s.sample(&mut rng),
                };
            }
        }
    }
    Ok(out)
}

fn spin_client() -> bool {
    std::env::var("CLIENT").map_or(true, |v| v != "block")
}

fn write_nonblocking(sock: &mut std::net::TcpStream, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        match sock.write(data) {
            Ok(k) => data = &data[k..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Busy CPU time of the whole machine (all cores), seconds.
fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return f64::NAN;
    };
    let Some(line) = stat.lines().next() else {
        return f64::NAN;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: f64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy / 100.0
}

fn proc_cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn e2e(o: &Opts) -> Result<(), Error> {
    let api_addr = o.api.ok_or("e2e needs --api 127.0.0.1:PORT")?;
    let up = match o.upstream {
        Some(a) => a,
        None => upstream()?,
    };
    let name = format!("fidelity-{}", std::process::id());
    let body = serde_json::json!({
        "name": name, "listen": "127.0.0.1:0", "upstream": up.to_string(),
        "enabled": true, "mode": "http",
    });
    let (status, text) = api(api_addr, "POST", "/proxies", &body.to_string())?;
    if status != 201 {
        return Err(format!("creating the proxy: {status} {text}").into());
    }
    let created: serde_json::Value = serde_json::from_str(&text)?;
    let listen: SocketAddr = created["listen"]
        .as_str()
        .ok_or("no `listen` in the created proxy")?
        .parse()?;
    println!(
        "end to end through `simian proxy` (HTTP mode): {} requests per distribution over {} keep-alive connections ({} on 1 for the constant); client {}",
        o.n,
        o.concurrency,
        (o.n / 4).max(1_000),
        if spin_client() { "busy-polling" } else { "blocking" }
    );
    let how = if o.upstream.is_some() {
        "its own process"
    } else {
        "in-process"
    };
    println!("  upstream {up} ({how}), proxy {listen}, API {api_addr}");
    let result = e2e_targets(o, api_addr, &name, up, listen);
    let _ = api(api_addr, "DELETE", &format!("/proxies/{name}"), "");
    result
}

fn e2e_targets(
    o: &Opts,
    api_addr: SocketAddr,
    name: &str,
    up: SocketAddr,
    listen: SocketAddr,
) -> Result<(), Error> {
    // Warm up both paths (connections, caches, the proxy's upstream pool).
    run_load(up, 500, o.concurrency, &Pace::Closed, Duration::ZERO)?;
    run_load(listen, 500, o.concurrency, &Pace::Closed, Duration::ZERO)?;
    let mut failed = 0;
    for t in TARGETS {
        if let Err(e) = e2e_target(o, t, api_addr, name, up, listen) {
            println!("  {} — NOT MEASURED: {e}", t.name);
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(format!("{failed} target(s) could not be measured").into());
    }
    Ok(())
}

fn e2e_target(
    o: &Opts,
    t: &Target,
    api_addr: SocketAddr,
    name: &str,
    up: SocketAddr,
    listen: SocketAddr,
) -> Result<(), Error> {
    let s = sampler(t)?;
    // A constant delay keeps connections in lock step: their replies would leave the proxy
    // in bursts and queue behind each other (and behind the busy-polling client). So the
    // constant runs on one connection, with a quarter of the requests.
    let constant = t.name.starts_with("constant");
    let (conns, n) = if constant {
        (1, (o.n / 4).max(1_000))
    } else {
        (o.concurrency, o.n)
    };
    let stagger = s.mean() / conns as u32;
    let attrs: serde_json::Value = serde_json::from_str(t.json)?;
    let mut attributes = serde_json::json!({"latency": 0, "jitter": 0});
    for (k, v) in attrs.as_object().ok_or("target is not an object")? {
        attributes[k] = v.clone();
    }
    // The same-run baseline RTTs, right before the toxic goes on: direct to the upstream,
    // and through the proxy without toxics. Paced like the toxic run (each connection
    // idles for a draw from the target between requests), so that the upstream and the
    // proxy are woken from the same idleness as when the toxic holds a request; a
    // back-to-back baseline keeps every thread hot and looks faster than the toxic run.
    let base_n = (n / 10).clamp(1_000, 4_000);
    let mut direct_rtts: Vec<f64> = run_load(up, base_n, conns, &Pace::Gaps(&s), stagger)?
        .iter()
        .map(|r| r.0)
        .collect();
    let direct = median(&mut direct_rtts);
    let mut bare_rtts: Vec<f64> = run_load(listen, base_n, conns, &Pace::Gaps(&s), stagger)?
        .iter()
        .map(|r| r.0)
        .collect();
    let bare = median(&mut bare_rtts);
    let mut hot: Vec<f64> = run_load(up, 1_000, 1, &Pace::Closed, Duration::ZERO)?
        .iter()
        .map(|r| r.0)
        .collect();
    let hot = median(&mut hot);

    let toxic = serde_json::json!({
        "name": "fidelity", "type": "latency", "stream": "downstream", "toxicity": 1.0,
        "attributes": attributes,
    });
    let toxics = format!("/proxies/{name}/toxics");
    let (status, text) = api(api_addr, "POST", &toxics, &toxic.to_string())?;
    if status != 200 {
        return Err(format!("adding the toxic: {status} {text}").into());
    }
    let (m0, b0, p0) = (
        machine_busy_secs(),
        cpu_secs(),
        o.proxy_pid.map_or(f64::NAN, proc_cpu_secs),
    );
    let w0 = Instant::now();
    let rows = run_load(listen, n, conns, &Pace::Closed, stagger);
    let wall = w0.elapsed().as_secs_f64();
    let (m1, b1, p1) = (
        machine_busy_secs(),
        cpu_secs(),
        o.proxy_pid.map_or(f64::NAN, proc_cpu_secs),
    );
    let _ = api(api_addr, "DELETE", &format!("{toxics}/fidelity"), "");
    let rows = rows?;
    let measured: Vec<f64> = rows.iter().map(|r| r.0 - direct).collect();
    let with_header: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.1.map(|h| (r.0 - direct, h)))
        .collect();
    if with_header.is_empty() {
        return Err("no response carried x-simian-delay-us".into());
    }
    if with_header.len() < rows.len() {
        println!(
            "  warning: {} of {} responses had no x-simian-delay-us header",
            rows.len() - with_header.len(),
            rows.len()
        );
    }
    let errs: Vec<f64> = with_header.iter().map(|(m, h)| m * 1e6 - h).collect();
    let mut vs_bare: Vec<f64> = with_header
        .iter()
        .map(|(m, h)| ((m + direct - bare) * 1e6 - h).abs())
        .collect();
    let extra = format!(
        " over {conns} connection(s) in {wall:.1} s\n    baseline RTT medians (paced like this run): direct {:.1} µs, through the proxy without toxics {:.1} µs; direct back to back {:.1} µs",
        direct * 1e6,
        bare * 1e6,
        hot * 1e6,
    );
    report(t, &s, measured, errs, &extra);
    let mut measured_bare: Vec<f64> = rows.iter().map(|r| r.0 - bare).collect();
    let ks_bare = ks_one_sample_atoms(
        &mut measured_bare,
        |x| s.cdf_below(Duration::from_secs_f64(x.max(0.0))),
        |x| s.cdf(Duration::from_secs_f64(x.max(0.0))),
    );
    println!(
        "    against the no-toxic proxy baseline instead of direct: median |error| = {:.1} µs{}",
        median(&mut vs_bare),
        if constant {
            String::new()
        } else {
            format!(", KS D = {ks_bare:.4}")
        }
    );
    let pct = |x: f64| 100.0 * x / wall;
    println!(
        "    CPU during the run (% of one core): machine {:.0}%, this bench {:.0}%, proxy {:.0}%, other processes {:.0}%",
        pct(m1 - m0),
        pct(b1 - b0),
        pct(p1 - p0),
        pct((m1 - m0) - (b1 - b0) - if p1.is_nan() { 0.0 } else { p1 - p0 }),
    );
    Ok(())
}
