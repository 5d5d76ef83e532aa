//! A TCP and HTTP/1.1 fault proxy whose admin API is the Toxiproxy HTTP API, so existing
//! Toxiproxy clients drive it unchanged, with extensions: latency drawn from real
//! distributions (`simian_delay`), slept precisely below the millisecond; an HTTP mode
//! whose toxics act per request (`http_error`, `drop`); splice(2) zero-copy forwarding
//! while no toxic needs the bytes; leases (`ttl`) that undo a toxic or a disable unless
//! renewed.
//!
//! The library does not assume it owns the process (no signal handlers, no logging unless
//! the CLI asks for it): the lab embeds [`Server`] in its supervisor.
#![forbid(unsafe_code)]

mod api;
pub mod cli;
mod delay;
mod error;
mod http;
mod lease;
mod metrics;
mod proxy;
mod server;
mod state;
mod tcp;
mod toxics;

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

pub use error::{ApiError, ProxyError};
pub use http::DELAY_HEADER;
pub use server::Server;

/// Entry points for the fuzz targets in `crates/simian-fuzz`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::fuzz_http1 as http1;
}

/// How a proxy treats its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Bytes pass through; toxics apply per chunk (like Toxiproxy).
    #[default]
    Tcp,
    /// HTTP/1.1: toxics apply per request; error statuses can be injected.
    Http,
}

/// A proxy as Toxiproxy's API and config file write it, plus `mode`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyConfig {
    pub name: String,
    /// `host:port`; port 0 picks one. Empty: 127.0.0.1 and a free port.
    #[serde(default)]
    pub listen: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub mode: Mode,
}

fn yes() -> bool {
    true
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Logs to stderr when the CLI turned logging on.
pub(crate) fn log(args: std::fmt::Arguments<'_>) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("simian proxy: {args}");
    }
}

#[cfg(test)]
mod testutil;
