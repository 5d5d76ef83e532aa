//! TCP mode: every accepted connection is paired with a new connection to the upstream,
//! and each direction runs as a [`link::Link`] that applies that direction's toxics chunk
//! by chunk, or splices bytes through untouched when no toxic needs them.

mod link;
mod splice;
#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::metrics::ProxyMetrics;
use crate::proxy::Ctx;
use crate::toxics::Stream;
use link::{End, Link};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.token.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((client, _)) => {
                ctx.tracker.spawn(connection(client, ctx.clone()));
            }
            Err(e) => {
                crate::log(format_args!("proxy {}: accept: {e}", ctx.name));
                // Out of descriptors, most likely: do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Counts a connection as open while alive.
pub(crate) struct OpenGuard(pub Arc<ProxyMetrics>);

impl OpenGuard {
    pub fn new(m: &Arc<ProxyMetrics>) -> OpenGuard {
        m.connections_total.fetch_add(1, Relaxed);
        m.connections_open.fetch_add(1, Relaxed);
        OpenGuard(m.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

async fn connection(client: TcpStream, ctx: Ctx) {
    let _open = OpenGuard::new(&ctx.metrics);
    let _ = client.set_nodelay(true);
    let upstream = tokio::select! {
        _ = ctx.token.cancelled() => return,
        r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*ctx.upstream)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return upstream_failed(&ctx, &e.to_string()),
            Err(_) => return upstream_failed(&ctx, "timed out"),
        },
    };
    let _ = upstream.set_nodelay(true);
    let client = Arc::new(client);
    let upstream = Arc::new(upstream);
    let up = Link::new(Stream::Upstream, client.clone(), upstream.clone(), &ctx).run();
    let down = Link::new(Stream::Downstream, upstream.clone(), client.clone(), &ctx).run();
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    let end = loop {
        let e = tokio::select! {
            _ = ctx.token.cancelled() => break End::Close { rst: false },
            e = &mut up, if !up_done => { up_done = true; e }
            e = &mut down, if !down_done => { down_done = true; e }
        };
        if let End::Close { .. } = e {
            break e;
        }
        if up_done && down_done {
            break End::Done;
        }
    };
    if let End::Close { rst: true } = end {
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
    // Dropping the links and these handles closes both sockets.
}

fn upstream_failed(ctx: &Ctx, why: &str) {
    ctx.metrics.upstream_connect_errors.fetch_add(1, Relaxed);
    crate::log(format_args!(
        "proxy {}: cannot connect to upstream {}: {why}; closing the client",
        ctx.name, ctx.upstream
    ));
}
