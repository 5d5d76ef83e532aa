//! [`Server`]: the admin API and the proxies it manages, as one value a process can embed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::State;
use crate::{ProxyConfig, ProxyError};

/// A running proxy server: the admin API and its proxies.
pub struct Server {
    api: SocketAddr,
    state: Arc<State>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    /// Starts the admin API on `api_listen` (port 0 picks one) and creates `proxies`
    /// (as POST /populate would: all or none).
    pub async fn start(
        api_listen: SocketAddr,
        proxies: Vec<ProxyConfig>,
    ) -> Result<Server, ProxyError> {
        let listener =
            TcpListener::bind(api_listen)
                .await
                .map_err(|source| ProxyError::Listen {
                    addr: api_listen.to_string(),
                    source,
                })?;
        let api = listener.local_addr().map_err(|source| ProxyError::Listen {
            addr: api_listen.to_string(),
            source,
        })?;
        let state = Arc::new(State::default());
        if !proxies.is_empty() {
            state
                .populate(proxies)
                .await
                .map_err(|e| ProxyError::Config(e.message))?;
        }
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(state.clone().expire(token.clone()));
        tracker.spawn(crate::api::serve(
            listener,
            state.clone(),
            token.clone(),
            tracker.clone(),
        ));
        Ok(Server {
            api,
            state,
            token,
            tracker,
        })
    }

    /// Where the admin API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    /// Where the named proxy actually listens (None when unknown or disabled).
    pub fn proxy_addr(&self, name: &str) -> Option<SocketAddr> {
        self.state.proxy_addr(name)
    }

    #[cfg(test)]
    pub(crate) fn state_for_tests(&self) -> &State {
        &self.state
    }

    /// Stops accepting, closes every connection (API and proxies).
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
        self.state.stop_all().await;
    }
}

impl Drop for Server {
    /// A server dropped without `shutdown` still stops: its tasks see their tokens cancelled.
    fn drop(&mut self) {
        self.token.cancel();
        self.state.abort_all();
    }
}
