//! `simian proxy`: run the fault proxy standalone.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};

use crate::{ProxyConfig, ProxyError, Server};

const EXAMPLES: &str = "\
Examples:
  # Start with one TCP proxy in front of a local Redis:
  echo '[{\"name\": \"redis\", \"listen\": \"127.0.0.1:26379\", \"upstream\": \"127.0.0.1:6379\"}]' > proxies.json
  simian proxy --config proxies.json

  # Add 100 ms ± 10 ms to every reply (any Toxiproxy client works the same):
  curl -s -XPOST localhost:8474/proxies/redis/toxics \\
    -d '{\"type\": \"latency\", \"attributes\": {\"latency\": 100, \"jitter\": 10}}'

  # An HTTP proxy; log-normal latency (median 20 ms) and 503s on 1% of requests:
  curl -s -XPOST localhost:8474/proxies -d '{\"name\": \"api\", \"listen\": \"127.0.0.1:8081\",
    \"upstream\": \"127.0.0.1:8080\", \"mode\": \"http\"}'
  curl -s -XPOST localhost:8474/proxies/api/toxics -d '{\"type\": \"latency\",
    \"attributes\": {\"distribution\": {\"lognormal\": {\"median\": \"20ms\", \"sigma\": 0.5}}, \"max\": \"2s\"}}'
  curl -s -XPOST localhost:8474/proxies/api/toxics -d '{\"type\": \"http_error\", \"toxicity\": 0.01,
    \"attributes\": {\"status\": 503}}'

  # Take it down, and back up; remove every toxic:
  curl -s -XPATCH localhost:8474/proxies/api -d '{\"enabled\": false}'
  curl -s -XPOST localhost:8474/reset

The API is Toxiproxy's (GET/POST /proxies, POST /populate, /proxies/NAME, /proxies/NAME/toxics,
POST /reset, GET /version) plus GET /metrics (Prometheus). Once ready, prints one line,
`listening ADDR` (the API's address), on stdout; logs go to stderr. SIGINT/SIGTERM stop it.";

/// Run the fault proxy: the Toxiproxy HTTP API, with latency from real distributions.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ProxyArgs {
    /// Address of the admin API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8474", value_name = "HOST:PORT")]
    pub listen: String,
    /// Proxies to create at start: a JSON array in Toxiproxy's config format
    /// (`[{"name", "listen", "upstream", "enabled"}]`), each optionally with `"mode": "http"`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub async fn run(args: ProxyArgs) -> Result<i32, ProxyError> {
    let api: SocketAddr = args
        .listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ProxyError::Config(format!(
                "--listen `{}` is not a HOST:PORT address",
                args.listen
            ))
        })?;
    let proxies = match &args.config {
        Some(path) => read_config(path)?,
        None => Vec::new(),
    };
    raise_fd_limit();
    crate::VERBOSE.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| ProxyError::Other(format!("install SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| ProxyError::Other(format!("install SIGINT handler: {e}")))?;
    let server = Server::start(api, proxies).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", server.api_addr());
        let _ = out.flush();
    }
    tokio::select! {
        _ = term.recv() => crate::log(format_args!("SIGTERM: shutting down")),
        _ = int.recv() => crate::log(format_args!("SIGINT: shutting down")),
    }
    server.shutdown().await;
    Ok(0)
}

fn read_config(path: &std::path::Path) -> Result<Vec<ProxyConfig>, ProxyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProxyError::Config(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        ProxyError::Config(format!(
            "{}: {e} (expected a JSON array of proxies: [{{\"name\", \"listen\", \"upstream\"}}])",
            path.display()
        ))
    })
}

/// Each connection holds two sockets and, on the fast path, two pipes: lift the soft limit
/// on descriptors to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
