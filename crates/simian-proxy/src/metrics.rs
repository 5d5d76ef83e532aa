//! Counters per proxy and their Prometheus text rendering (GET /metrics).
//!
//! Byte counters keep Toxiproxy's names and labels (`toxiproxy_proxy_received_bytes_total`,
//! `toxiproxy_proxy_sent_bytes_total` with `direction`, `proxy`, `listener`, `upstream`), so
//! existing dashboards work; the rest is ours (`simian_proxy_*`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::toxics::Stream;

#[derive(Debug, Default)]
pub struct ProxyMetrics {
    received: [AtomicU64; 2],
    sent: [AtomicU64; 2],
    pub connections_total: AtomicU64,
    pub connections_open: AtomicU64,
    pub upstream_connect_errors: AtomicU64,
    pub http_requests: AtomicU64,
    pub http_upstream_errors: AtomicU64,
    pub http_drops: AtomicU64,
    http_errors: Mutex<BTreeMap<u16, u64>>,
}

fn ix(s: Stream) -> usize {
    match s {
        Stream::Upstream => 0,
        Stream::Downstream => 1,
    }
}

impl ProxyMetrics {
    pub fn received(&self, s: Stream, n: usize) {
        self.received[ix(s)].fetch_add(n as u64, Relaxed);
    }
    pub fn sent(&self, s: Stream, n: usize) {
        self.sent[ix(s)].fetch_add(n as u64, Relaxed);
    }
    pub fn http_error(&self, status: u16) {
        *self
            .http_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }
}

/// What GET /metrics needs to know about one proxy.
pub struct Row<'a> {
    pub name: &'a str,
    pub listen: &'a str,
    pub upstream: &'a str,
    pub mode: &'a str,
    pub enabled: bool,
    pub toxics: usize,
    pub metrics: &'a ProxyMetrics,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family with one value per proxy: name, type, help, how to read it.
type Gauge = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Row<'_>) -> u64,
);

pub fn render(rows: &[Row<'_>]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, f: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        f(&mut out);
    };
    for (name, help, which) in [
        (
            "toxiproxy_proxy_received_bytes_total",
            "Bytes the proxy read, by direction.",
            0,
        ),
        (
            "toxiproxy_proxy_sent_bytes_total",
            "Bytes the proxy wrote, by direction.",
            1,
        ),
    ] {
        family(name, "counter", help, &mut |out| {
            for r in rows {
                for s in [Stream::Upstream, Stream::Downstream] {
                    let v = if which == 0 {
                        &r.metrics.received[ix(s)]
                    } else {
                        &r.metrics.sent[ix(s)]
                    };
                    let _ = writeln!(
                        out,
                        "{name}{{direction=\"{}\",proxy=\"{}\",listener=\"{}\",upstream=\"{}\"}} {}",
                        s.as_str(),
                        esc(r.name),
                        esc(r.listen),
                        esc(r.upstream),
                        v.load(Relaxed)
                    );
                }
            }
        });
    }
    let simple: [Gauge; 8] = [
        (
            "simian_proxy_enabled",
            "gauge",
            "1 when the proxy listens, 0 when it is down.",
            |r| r.enabled as u64,
        ),
        (
            "simian_proxy_toxics",
            "gauge",
            "Toxics configured on the proxy.",
            |r| r.toxics as u64,
        ),
        (
            "simian_proxy_connections_total",
            "counter",
            "Client connections accepted.",
            |r| r.metrics.connections_total.load(Relaxed),
        ),
        (
            "simian_proxy_connections_open",
            "gauge",
            "Client connections open now.",
            |r| r.metrics.connections_open.load(Relaxed),
        ),
        (
            "simian_proxy_upstream_connect_errors_total",
            "counter",
            "Connections to the upstream that failed.",
            |r| r.metrics.upstream_connect_errors.load(Relaxed),
        ),
        (
            "simian_proxy_http_requests_total",
            "counter",
            "Requests received (http mode).",
            |r| r.metrics.http_requests.load(Relaxed),
        ),
        (
            "simian_proxy_http_upstream_errors_total",
            "counter",
            "Requests the upstream failed to answer (http mode; answered 502).",
            |r| r.metrics.http_upstream_errors.load(Relaxed),
        ),
        (
            "simian_proxy_http_drops_injected_total",
            "counter",
            "Connections dropped unanswered by a toxic (http mode).",
            |r| r.metrics.http_drops.load(Relaxed),
        ),
    ];
    for (name, kind, help, get) in simple {
        family(name, kind, help, &mut |out| {
            for r in rows {
                let _ = writeln!(
                    out,
                    "{name}{{proxy=\"{}\",mode=\"{}\"}} {}",
                    esc(r.name),
                    r.mode,
                    get(r)
                );
            }
        });
    }
    family(
        "simian_proxy_http_errors_injected_total",
        "counter",
        "Requests answered with an error status by an http_error toxic (http mode).",
        &mut |out| {
            for r in rows {
                let m = r
                    .metrics
                    .http_errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for (status, n) in m.iter() {
                    let _ = writeln!(
                        out,
                        "simian_proxy_http_errors_injected_total{{proxy=\"{}\",status=\"{status}\"}} {n}",
                        esc(r.name)
                    );
                }
            }
        },
    );
    out
}
