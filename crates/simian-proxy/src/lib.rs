//! A TCP and HTTP/1.1 fault proxy whose admin API is the Toxiproxy HTTP API. (stub)
#![forbid(unsafe_code)]

pub mod cli;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Other(String),
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

/// A running proxy server: the admin API and its proxies.
pub struct Server {
    api: SocketAddr,
}

impl Server {
    /// Starts the admin API on `api_listen` (port 0 picks one) and creates `proxies`.
    pub async fn start(
        api_listen: SocketAddr,
        _proxies: Vec<ProxyConfig>,
    ) -> Result<Server, ProxyError> {
        Ok(Server { api: api_listen })
    }
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }
    /// Where the named proxy actually listens.
    pub fn proxy_addr(&self, _name: &str) -> Option<SocketAddr> {
        None
    }
    /// Stops accepting, closes every connection.
    pub async fn shutdown(self) {}
}
