//! One proxy: its configuration, its listener and live connections, its toxics.
//!
//! As in Toxiproxy, `listen` becomes the actual bound address once the proxy starts (so a
//! proxy created on port 0 keeps its port when it is disabled and enabled again), and
//! disabling it closes the listener and every live connection.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::metrics::ProxyMetrics;
use crate::toxics::{ToxicJson, ToxicSet};
use crate::{http, tcp, Mode};

/// How long disabling a proxy waits for its connections to finish closing.
const STOP_WAIT: Duration = Duration::from_secs(5);

pub struct Proxy {
    pub name: String,
    inner: Mutex<Inner>,
    pub toxics: watch::Sender<Arc<ToxicSet>>,
    pub metrics: Arc<ProxyMetrics>,
}

struct Inner {
    listen: String,
    upstream: String,
    enabled: bool,
    mode: Mode,
    running: Option<Running>,
}

struct Running {
    addr: SocketAddr,
    token: CancellationToken,
    tracker: TaskTracker,
}

/// What every connection of a running proxy shares.
#[derive(Clone)]
pub struct Ctx {
    pub name: Arc<str>,
    pub upstream: Arc<str>,
    pub toxics: watch::Receiver<Arc<ToxicSet>>,
    pub metrics: Arc<ProxyMetrics>,
    pub token: CancellationToken,
    pub tracker: TaskTracker,
}

/// A proxy as the API shows it: Toxiproxy's fields, then ours (`mode`), then its toxics
/// and any lease.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyJson {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub mode: Mode,
    pub toxics: Vec<ToxicJson>,
    /// Milliseconds until a leased disable ends (an extension: see `lease`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// The fields a create, populate or update may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub mode: Mode,
}

impl Proxy {
    /// A stopped proxy; `start` it when `settings.enabled`.
    pub fn new(name: String, s: &Settings) -> Arc<Proxy> {
        Arc::new(Proxy {
            name,
            inner: Mutex::new(Inner {
                listen: s.listen.clone(),
                upstream: s.upstream.clone(),
                enabled: false,
                mode: s.mode,
                running: None,
            }),
            toxics: watch::Sender::new(Arc::new(ToxicSet::default())),
            metrics: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn json(&self) -> ProxyJson {
        let i = self.lock();
        ProxyJson {
            name: self.name.clone(),
            listen: i.listen.clone(),
            upstream: i.upstream.clone(),
            enabled: i.enabled,
            mode: i.mode,
            toxics: self.toxics.borrow().listed(),
            expires_in: None,
        }
    }

    pub fn settings(&self) -> Settings {
        let i = self.lock();
        Settings {
            listen: i.listen.clone(),
            upstream: i.upstream.clone(),
            enabled: i.enabled,
            mode: i.mode,
        }
    }

    pub fn mode(&self) -> Mode {
        self.lock().mode
    }

    /// The bound address while enabled.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.lock().running.as_ref().map(|r| r.addr)
    }

    /// Binds `listen` and starts accepting; `Ok(false)` when already running.
    pub fn start(&self) -> Result<bool, ApiError> {
        let mut i = self.lock();
        if i.running.is_some() {
            return Ok(false);
        }
        let std = bind(&i.listen)
            .map_err(|e| ApiError::internal(format!("listen tcp {}: {e}", i.listen)))?;
        let listener = TcpListener::from_std(std)
            .map_err(|e| ApiError::internal(format!("listen tcp {}: {e}", i.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ApiError::internal(format!("listen tcp {}: {e}", i.listen)))?;
        i.listen = addr.to_string();
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ctx = Ctx {
            name: self.name.as_str().into(),
            upstream: i.upstream.as_str().into(),
            toxics: self.toxics.subscribe(),
            metrics: self.metrics.clone(),
            token: token.clone(),
            tracker: tracker.clone(),
        };
        match i.mode {
            Mode::Tcp => tracker.spawn(tcp::accept_loop(listener, ctx)),
            Mode::Http => tracker.spawn(http::accept_loop(listener, ctx)),
        };
        crate::log(format_args!(
            "proxy {} ({}) listening on {addr}, upstream {}",
            self.name,
            mode_str(i.mode),
            i.upstream
        ));
        i.running = Some(Running {
            addr,
            token,
            tracker,
        });
        i.enabled = true;
        Ok(true)
    }

    /// Closes the listener and every live connection, and waits (a bounded time) for them.
    pub async fn stop(&self) {
        let running = {
            let mut i = self.lock();
            i.enabled = false;
            i.running.take()
        };
        if let Some(r) = running {
            r.token.cancel();
            r.tracker.close();
            if tokio::time::timeout(STOP_WAIT, r.tracker.wait())
                .await
                .is_err()
            {
                crate::log(format_args!(
                    "proxy {}: connections still closing after {STOP_WAIT:?}",
                    self.name
                ));
            }
            crate::log(format_args!("proxy {} stopped", self.name));
        }
    }

    /// Like `stop`, without waiting (for `Drop`).
    pub fn abort(&self) {
        let running = {
            let mut i = self.lock();
            i.enabled = false;
            i.running.take()
        };
        if let Some(r) = running {
            r.token.cancel();
            r.tracker.close();
        }
    }

    /// Toxiproxy's `Proxy.Update`: a new listen, upstream (or, here, mode) restarts the
    /// proxy; then `enabled` starts or stops it.
    pub async fn update(&self, s: &Settings) -> Result<(), ApiError> {
        let cur = self.settings();
        if s.listen != cur.listen || s.upstream != cur.upstream || s.mode != cur.mode {
            self.stop().await;
            let mut i = self.lock();
            i.listen = s.listen.clone();
            i.upstream = s.upstream.clone();
            i.mode = s.mode;
        }
        let enabled = self.lock().enabled;
        if s.enabled && !enabled {
            self.start()?;
        } else if !s.enabled && enabled {
            self.stop().await;
        }
        Ok(())
    }
}

pub fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Tcp => "tcp",
        Mode::Http => "http",
    }
}

/// Binds like Go's `net.Listen("tcp", addr)`, except that an empty address means
/// 127.0.0.1:0 (Go would listen on every interface) and `:PORT` means 0.0.0.0:PORT.
fn bind(listen: &str) -> std::io::Result<std::net::TcpListener> {
    let listen = if listen.is_empty() {
        "127.0.0.1:0".to_string()
    } else if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    };
    let mut last = None;
    for addr in listen.to_socket_addrs()? {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to listen on")))
}
