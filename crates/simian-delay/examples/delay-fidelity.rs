//! Delay fidelity bench (run by `benches/delay-fidelity.sh`; not part of CI).
//!
//! `delay-fidelity local`: the sampler and the precise timer alone. Concurrent tasks draw
//! a delay, sleep it with `sleep_precise`, and measure the sleep; the measured delays are
//! compared with the target (one-sample Kolmogorov–Smirnov against the sampler's exact
//! CDF) and each measured delay with its draw (median absolute error). tokio's own sleep is
//! measured the same way for comparison.
//!
//! `delay-fidelity e2e --api 127.0.0.1:PORT`: end to end through a running `simian proxy`
//! in HTTP mode. Starts a fast HTTP upstream on 127.0.0.1, creates a proxy in front of it,
//! and for each target adds a `latency` toxic carrying the distribution, sends the
//! requests over keep-alive connections, and compares (a) RTT − the run's median direct
//! RTT with the target (KS), and (b) that same measured delay with the delay the proxy
//! reports having drawn (`x-simian-delay-us`): the median absolute error.
//!
//! Options: `--n 20000` requests per target, `--concurrency 32` (toxic runs),
//! `--baseline-concurrency 1` (baseline RTTs), `--quick` (2 000).
//! Only 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use simian_delay::stats::{ks_one_sample_atoms, ks_p_value, ks_two_sample, median};
use simian_delay::{sleep_precise, DelaySpec, Sampler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    baseline_concurrency: usize,
    api: Option<SocketAddr>,
}

fn parse_args() -> Result<(String, Opts), Error> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "local".into());
    let mut o = Opts {
        n: 20_000,
        concurrency: 32,
        baseline_concurrency: 1,
        api: None,
    };
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--n" => o.n = val()?.parse()?,
            "--concurrency" => o.concurrency = val()?.parse()?,
            "--baseline-concurrency" => o.baseline_concurrency = val()?.parse()?,
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
    rt.block_on(async {
        match mode.as_str() {
            "local" => local(&opts).await,
            "e2e" => e2e(&opts).await,
            m => Err(format!("unknown mode `{m}` (local, e2e)").into()),
        }
    })
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

/// A tiny HTTP/1.1 upstream: answers every request `200 ok` at once, keep-alive.
async fn upstream() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    // Serve every complete request in the buffer (bodies by content-length).
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
                        if sock.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                    match sock.read(&mut chunk).await {
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

/// One keep-alive HTTP/1.1 connection, just enough client for this bench.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, Error> {
        let sock = TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        Ok(Conn {
            sock,
            buf: Vec::with_capacity(4096),
        })
    }

    async fn request(&mut self, method: &str, path: &str, body: &str) -> Result<Reply, Error> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.sock.write_all(req.as_bytes()).await?;
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let headers: HashMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let body = if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            self.chunked().await?
        } else {
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while self.buf.len() < len {
                self.fill().await?;
            }
            self.buf.drain(..len).collect()
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn fill(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 8192];
        let n = self.sock.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn chunked(&mut self) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// One admin API call on a fresh connection.
async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), Error> {
    let mut c = Conn::open(addr).await?;
    let r = c.request(method, path, body).await?;
    Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// `n` GETs over `concurrency` connections: `(rtt seconds, x-simian-delay-us)` each.
async fn load(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
) -> Result<Vec<(f64, Option<f64>)>, Error> {
    let per = n.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await?;
            let mut out = Vec::with_capacity(per);
            for _ in 0..per {
                let t0 = Instant::now();
                let r = c.request("GET", "/", "").await?;
                let rtt = t0.elapsed().as_secs_f64();
                if r.status != 200 {
                    return Err(format!("status {}", r.status).into());
                }
                let delay = r
                    .headers
                    .get("x-simian-delay-us")
                    .and_then(|v| v.parse::<f64>().ok());
                out.push((rtt, delay));
            }
            Ok::<_, Error>(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.truncate(n);
    Ok(all)
}

async fn median_rtt(addr: SocketAddr, n: usize, concurrency: usize) -> Result<f64, Error> {
    let mut rtts: Vec<f64> = load(addr, n, concurrency)
        .await?
        .iter()
        .map(|r| r.0)
        .collect();
    Ok(median(&mut rtts))
}

async fn e2e(o: &Opts) -> Result<(), Error> {
    let api_addr = o.api.ok_or("e2e needs --api 127.0.0.1:PORT")?;
    let up = upstream().await?;
    let name = format!("fidelity-{}", std::process::id());
    let body = serde_json::json!({
        "name": name, "listen": "127.0.0.1:0", "upstream": up.to_string(),
        "enabled": true, "mode": "http",
    });
    let (status, text) = api(api_addr, "POST", "/proxies", &body.to_string()).await?;
    if status != 201 {
        return Err(format!("creating the proxy: {status} {text}").into());
    }
    let created: serde_json::Value = serde_json::from_str(&text)?;
    let listen: SocketAddr = created["listen"]
        .as_str()
        .ok_or("no `listen` in the created proxy")?
        .parse()?;
    println!(
        "end to end through `simian proxy` (HTTP mode): {} requests per target over {} keep-alive connections",
        o.n, o.concurrency
    );
    println!("  upstream {up} (in-process), proxy {listen}, API {api_addr}");

    let result = e2e_targets(o, api_addr, &name, up, listen).await;
    let _ = api(api_addr, "DELETE", &format!("/proxies/{name}"), "").await;
    result
}

async fn e2e_targets(
    o: &Opts,
    api_addr: SocketAddr,
    name: &str,
    up: SocketAddr,
    listen: SocketAddr,
) -> Result<(), Error> {
    // Warm up both paths (connections, caches, the proxy's upstream pool).
    load(up, 500, o.concurrency).await?;
    load(listen, 500, o.concurrency).await?;
    let mut failed = 0;
    for t in TARGETS {
        if let Err(e) = e2e_target(o, t, api_addr, name, up, listen).await {
            println!("  {} — NOT MEASURED: {e}", t.name);
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(format!("{failed} target(s) could not be measured").into());
    }
    Ok(())
}

async fn e2e_target(
    o: &Opts,
    t: &Target,
    api_addr: SocketAddr,
    name: &str,
    up: SocketAddr,
    listen: SocketAddr,
) -> Result<(), Error> {
    let base_n = (o.n / 10).clamp(1_000, 5_000);
    let s = sampler(t)?;
    let attrs: serde_json::Value = serde_json::from_str(t.json)?;
    let mut attributes = serde_json::json!({"latency": 0, "jitter": 0});
    for (k, v) in attrs.as_object().ok_or("target is not an object")? {
        attributes[k] = v.clone();
    }
    // Same-run baselines, right before the toxic goes on: direct to the upstream, and
    // through the proxy with no toxic (the proxy's own overhead). One connection by
    // default: with delays of milliseconds the toxic run's requests rarely overlap, so
    // an unloaded RTT is what they see; a baseline at full concurrency would count the
    // queueing of 32 simultaneous requests (hundreds of µs here) as missing delay.
    let direct = median_rtt(up, base_n, o.baseline_concurrency).await?;
    let bare = median_rtt(listen, base_n, o.baseline_concurrency).await?;
    let toxic = serde_json::json!({
        "name": "fidelity", "type": "latency", "stream": "downstream", "toxicity": 1.0,
        "attributes": attributes,
    });
    let toxics = format!("/proxies/{name}/toxics");
    let (status, text) = api(api_addr, "POST", &toxics, &toxic.to_string()).await?;
    if status != 200 {
        return Err(format!("adding the toxic: {status} {text}").into());
    }
    let w0 = Instant::now();
    let rows = load(listen, o.n, o.concurrency).await;
    let wall = w0.elapsed().as_secs_f64();
    let _ = api(api_addr, "DELETE", &format!("{toxics}/fidelity"), "").await;
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
        " in {wall:.1} s; baseline RTT medians: direct {:.1} µs, through the proxy without toxics {:.1} µs",
        direct * 1e6,
        bare * 1e6
    );
    report(t, &s, measured, errs, &extra);
    println!(
        "    (against the no-toxic proxy baseline instead: median |error| = {:.1} µs)",
        median(&mut vs_bare)
    );
    Ok(())
}
