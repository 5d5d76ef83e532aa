//! Asynchronous cross-region replication: each store ships its own writes to every other
//! region's store, in order, and applies the writes other regions ship to it.
//!
//! Writes never wait for replication. Region A reaches region B through the fault proxy
//! `repl-A-B` (TCP mode) whose upstream is B's store port, so disabling that proxy, a
//! `timeout` toxic on it, or dropped packets partition replication for real. A's writes
//! then queue (they are in A's write-ahead file) and flow again once the link heals.
//!
//! The wire protocol, on the store's own port (a first byte `#` tells it from HTTP):
//!
//! ```text
//! A -> B   #SIMIAN-REPL/1 us-east\n            hello: who ships
//! B -> A   ACK 41\n                            the highest origin seq of A that B applied
//! A -> B   frame, frame, ...                   A's own writes after 41, in order
//!                                              (frames as in the write-ahead file, see wal)
//! B -> A   ACK 57\n ...                        after applying (and logging) what it read
//! ```
//!
//! A resumes from B's `ACK` on every connection, so nothing is lost across a partition or a
//! restart of either side, and B drops resends it already applied. Only local writes are
//! shipped; applied remote writes are never echoed back. A sender reconnects with a backoff
//! of at most [`MAX_BACKOFF`], and gives up on a connection that leaves sent writes
//! unacknowledged for [`ACK_TIMEOUT`] (a link that swallows bytes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{wal, Kv};

/// Longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long sent writes may stay unacknowledged before the connection counts as dead.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// Most writes sent in one go.
const BATCH: usize = 512;
/// What a replication connection starts with.
const HELLO: &str = "#SIMIAN-REPL/1 ";

/// One replication link of the lab, as the supervisor writes them to
/// `<state_dir>/lab/replication.json` for the stores to find their peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub from: String,
    pub to: String,
    /// The proxy's name in the admin API: `repl-<from>-<to>`.
    pub proxy: String,
    /// Where `from` connects: the proxy's listen address (or `to`'s store without a proxy).
    pub addr: SocketAddr,
}

/// The name of the proxy that carries `from`'s writes to `to`.
pub fn proxy_name(from: &str, to: &str) -> String {
    format!("repl-{from}-{to}")
}

/// Where a sender finds its peer's address, looked up again on every connection attempt.
#[derive(Debug, Clone)]
pub enum PeerAddr {
    Fixed(SocketAddr),
    /// The link `from` -> `to` in this `replication.json`.
    File(PathBuf),
}

impl PeerAddr {
    fn resolve(&self, from: &str, to: &str) -> Option<SocketAddr> {
        match self {
            PeerAddr::Fixed(a) => Some(*a),
            PeerAddr::File(path) => {
                let text = std::fs::read_to_string(path).ok()?;
                let links: Vec<Link> = serde_json::from_str(&text).ok()?;
                links
                    .into_iter()
                    .find(|l| l.from == from && l.to == to)
                    .map(|l| l.addr)
            }
        }
    }
}

/// What a sender reports about one peer.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub connected: AtomicBool,
}

/// `GET /replication`, per peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// Writes sent (resends after a reconnect count again).
    pub sent: u64,
    /// The last local seq the peer acknowledged.
    pub acked: u64,
    /// Local writes the peer has not acknowledged.
    pub queue_depth: u64,
    /// Age of the oldest unacknowledged write, 0 with none.
    pub lag_ms: u64,
    pub connected: bool,
}

/// `GET /replication`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub region: String,
    pub peers: BTreeMap<String, PeerReport>,
    /// Per origin region: writes applied from it by this process.
    pub applied: BTreeMap<String, u64>,
}

/// A store's replication: its senders' stats and what it applied.
pub struct Replication {
    kv: Arc<Kv>,
    peers: BTreeMap<String, Arc<PeerStats>>,
    applied: Mutex<BTreeMap<String, u64>>,
    /// The senders: they stop when this goes.
    senders: Vec<tokio::task::AbortHandle>,
}

impl Drop for Replication {
    fn drop(&mut self) {
        for s in &self.senders {
            s.abort();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Replication {
    /// Replication of `kv` to `peers`, with a sender task per peer (on the current runtime).
    pub fn start(kv: Arc<Kv>, peers: Vec<(String, PeerAddr)>) -> Arc<Replication> {
        let stats: BTreeMap<String, Arc<PeerStats>> = peers
            .iter()
            .map(|(p, _)| (p.clone(), Arc::default()))
            .collect();
        let senders = peers
            .into_iter()
            .map(|(peer, addr)| {
                let stats = stats[&peer].clone();
                tokio::spawn(send_loop(kv.clone(), peer, addr, stats)).abort_handle()
            })
            .collect();
        Arc::new(Replication {
            kv,
            peers: stats,
            applied: Mutex::default(),
            senders,
        })
    }

    pub fn report(&self) -> Report {
        let now = now_ms();
        let peers = self
            .peers
            .iter()
            .map(|(peer, s)| {
                let acked = s.acked.load(Ordering::Relaxed);
                let (queue_depth, oldest) = self.kv.backlog_after(acked);
                (
                    peer.clone(),
                    PeerReport {
                        sent: s.sent.load(Ordering::Relaxed),
                        acked,
                        queue_depth,
                        lag_ms: oldest.map_or(0, |ts| now.saturating_sub(ts)),
                        connected: s.connected.load(Ordering::Relaxed),
                    },
                )
            })
            .collect();
        Report {
            region: self.kv.region().to_string(),
            peers,
            applied: self.applied.lock().unwrap().clone(),
        }
    }

    /// Serves one replication connection (its first byte was `#`): applies what the peer
    /// ships and acknowledges it. Returns when the peer goes or breaks the protocol.
    pub async fn receive(&self, stream: TcpStream) {
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let mut line = Vec::new();
        if rd.read_until(b'\n', &mut line).await.is_err() {
            return;
        }
        let hello = String::from_utf8_lossy(&line);
        let Some(from) = hello
            .trim_end()
            .strip_prefix(HELLO)
            .map(str::to_string)
            .filter(|f| !f.is_empty() && f != self.kv.region())
        else {
            let _ = wr.write_all(b"ERR bad hello\n").await;
            return;
        };
        let mut acked = self.kv.applied_from(&from);
        if wr
            .write_all(format!("ACK {acked}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        loop {
            line.clear();
            match rd.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            line.pop();
            let Some((mut record, len)) = wal::decode_header(&line) else {
                eprintln!("replication from {from}: bad frame, closing");
                return;
            };
            let mut value = vec![0; len + 1];
            if rd.read_exact(&mut value).await.is_err() || value.pop() != Some(b'\n') {
                return;
            }
            record.value = value.into();
            if record.origin != from {
                eprintln!(
                    "replication from {from}: a write of {}, closing",
                    record.origin
                );
                return;
            }
            match self.kv.apply(&record) {
                Ok(true) => {
                    *self
                        .applied
                        .lock()
                        .unwrap()
                        .entry(from.clone())
                        .or_default() += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    eprintln!("replication from {from}: cannot log a write ({e}), closing");
                    return;
                }
            }
            acked = acked.max(record.origin_seq);
            // Acknowledge once we have applied everything already read.
            if rd.buffer().is_empty()
                && wr
                    .write_all(format!("ACK {acked}\n").as_bytes())
                    .await
                    .is_err()
            {
                return;
            }
        }
    }
}

/// Ships `kv`'s local writes to `peer` for as long as the store runs.
async fn send_loop(kv: Arc<Kv>, peer: String, addr: PeerAddr, stats: Arc<PeerStats>) {
    let mut backoff = Duration::from_millis(50);
    let mut last_error = String::new();
    loop {
        let result = match addr.resolve(kv.region(), &peer) {
            None => Err("no address yet".to_string()),
            Some(a) => ship(&kv, &peer, a, &stats, &mut backoff).await,
        };
        stats.connected.store(false, Ordering::Relaxed);
        if let Err(e) = result {
            if e != last_error {
                eprintln!("replication to {peer}: {e}; retrying");
                last_error = e;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: hello, then ship from the peer's ack until the link fails.
async fn ship(
    kv: &Kv,
    peer: &str,
    addr: SocketAddr,
    stats: &PeerStats,
    backoff: &mut Duration,
) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{what} {addr}: {e}");
    let stream = tokio::time::timeout(MAX_BACKOFF, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect {addr}: timed out"))?
        .map_err(|e| io("connect", e))?;
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    wr.write_all(format!("{HELLO}{}\n", kv.region()).as_bytes())
        .await
        .map_err(|e| io("send hello to", e))?;
    let ack = |line: Option<String>| -> Result<u64, String> {
        let line = line.ok_or_else(|| format!("{addr} closed the link"))?;
        line.strip_prefix("ACK ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{addr} answered `{line}`"))
    };
    let first = tokio::time::timeout(ACK_TIMEOUT, lines.next_line())
        .await
        .map_err(|_| format!("{addr} did not answer the hello"))?
        .map_err(|e| io("read from", e))?;
    let mut acked = ack(first)?;
    stats.acked.store(acked, Ordering::Relaxed);
    stats.connected.store(true, Ordering::Relaxed);
    *backoff = Duration::from_millis(50);
    eprintln!("replication to {peer}: connected via {addr}, resuming after {acked}");

    let mut local = kv.watch_local();
    let mut next = acked;
    let mut waiting_since = Instant::now();
    let mut buf = Vec::new();
    loop {
        local.borrow_and_update();
        let batch = kv.local_after(next, BATCH);
        if let Some(last) = batch.last() {
            buf.clear();
            for r in &batch {
                wal::encode(r, &mut buf);
            }
            if acked == next {
                waiting_since = Instant::now();
            }
            tokio::time::timeout(ACK_TIMEOUT, wr.write_all(&buf))
                .await
                .map_err(|_| format!("{addr} stopped reading"))?
                .map_err(|e| io("write to", e))?;
            next = last.seq;
            stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
            // Read acks that came in meanwhile without waiting, then send more.
            while let Some(Ok(line)) = futures_now(lines.next_line()) {
                acked = ack(line)?;
                stats.acked.store(acked, Ordering::Relaxed);
                waiting_since = Instant::now();
            }
            continue;
        }
        tokio::select! {
            line = lines.next_line() => {
                acked = ack(line.map_err(|e| io("read from", e))?)?;
                stats.acked.store(acked, Ordering::Relaxed);
                waiting_since = Instant::now();
            }
            changed = local.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if acked < next && waiting_since.elapsed() > ACK_TIMEOUT {
                    return Err(format!("{addr} acknowledged nothing for {ACK_TIMEOUT:?}"));
                }
            }
        }
    }
}

/// Polls `fut` once: its output if it is ready now.
fn futures_now<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// A store of `region` with its write-ahead file in `dir`, serving on `listener` and
    /// shipping to `peer` at `peer_addr`.
    fn start(
        dir: &std::path::Path,
        region: &str,
        listener: TcpListener,
        peer: &str,
        peer_addr: SocketAddr,
    ) -> (Arc<Kv>, Arc<Replication>, JoinHandle<()>) {
        let kv = Arc::new(Kv::open(region, &dir.join(format!("store-{region}.wal"))).unwrap());
        let repl = Replication::start(
            kv.clone(),
            vec![(peer.to_string(), PeerAddr::Fixed(peer_addr))],
        );
        let task = tokio::spawn(crate::store::serve(listener, kv.clone(), repl.clone()));
        (kv, repl, task)
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn put(kv: &Kv, range: std::ops::Range<u32>) {
        for i in range {
            kv.put(&format!("k{i}"), Bytes::from(format!("v{i}")))
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ships_in_order_resumes_from_the_ack_after_a_restart_and_never_echoes() {
        let dir = tempfile::tempdir().unwrap();
        let east_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let west_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (east_addr, west_addr) = (east_l.local_addr().unwrap(), west_l.local_addr().unwrap());
        let (east, east_repl, _east_task) =
            start(dir.path(), "us-east", east_l, "us-west", west_addr);
        let (west, west_repl, west_task) =
            start(dir.path(), "us-west", west_l, "us-east", east_addr);

        put(&east, 0..100);
        until("us-west has the first 100", || west.get("k99").is_some()).await;
        let last = east.last_seq();
        until("us-east sees them acked", || {
            east_repl.report().peers["us-west"].acked == last
        })
        .await;
        let r = east_repl.report().peers["us-west"].clone();
        assert_eq!(
            (r.queue_depth, r.lag_ms, r.connected),
            (0, 0, true),
            "{r:?}"
        );
        assert!(r.sent >= 100);
        assert_eq!(west_repl.report().applied["us-east"], 100);
        // Applied writes are not shipped back.
        assert!(west.local_after(0, 10).is_empty());
        assert_eq!(west_repl.report().peers["us-east"].sent, 0);
        assert!(east_repl.report().applied.is_empty());

        // us-west goes down: us-east keeps accepting writes, and queues them.
        west_task.abort();
        drop((west, west_repl));
        until("us-east sees the link down", || {
            !east_repl.report().peers["us-west"].connected
        })
        .await;
        put(&east, 100..150);
        let r = east_repl.report().peers["us-west"].clone();
        assert_eq!((r.acked, r.queue_depth), (last, 50), "{r:?}");

        // It comes back on the same port with its write-ahead file: only the rest is sent.
        let west_l = TcpListener::bind(west_addr).await.unwrap();
        let (west, west_repl, _west_task) =
            start(dir.path(), "us-west", west_l, "us-east", east_addr);
        assert!(
            west.get("k99").is_some(),
            "the restarted store kept its data"
        );
        assert_eq!(west.applied_from("us-east"), last);
        until("us-west has all 150", || west.get("k149").is_some()).await;
        assert_eq!(
            west_repl.report().applied["us-east"],
            50,
            "resumed, not resent"
        );
        until("the queue drains", || {
            east_repl.report().peers["us-west"].queue_depth == 0
        })
        .await;

        // The peer's log holds every us-east write once, in us-east's order.
        drop((west, west_repl));
        let (_, records) =
            crate::store::wal::Wal::open(&dir.path().join("store-us-west.wal")).unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.origin_seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seqs, sorted);
        assert_eq!(seqs.len(), 150);
    }

    #[tokio::test]
    async fn a_bad_hello_is_refused() {
        let (addr, _task) = crate::store::api::spawn_local("us-east").await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"#SIMIAN-REPL/1 us-east\n").await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert_eq!(
            answer, "ERR bad hello\n",
            "a store does not take its own writes"
        );
    }
}
