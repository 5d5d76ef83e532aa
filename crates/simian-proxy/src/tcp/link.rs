//! One direction of a TCP connection (`src` → `dst`) and the toxics of its stream.
//!
//! Two ways to move bytes, switched live as toxics come and go:
//! - **fast**: no active toxic needs the bytes (none, only `slow_close`, or only toxics whose
//!   toxicity draw left them off for this connection): splice(2) through a pipe, zero copy.
//! - **toxic**: a reader pushes chunks (≤ 32 KiB, stamped with their arrival time) into a
//!   bounded queue, and the writer passes each through the active toxics in chain order,
//!   then writes it. Delays are measured from a chunk's arrival, so they do not add up
//!   across chunks (Toxiproxy's latency semantics) and they are slept precisely.
//!
//! A toxic change during a wait cuts that wait short (the chunk in hand goes on without
//! further delay, as Toxiproxy flushes an interrupted toxic's chunk), then the pipeline is
//! rebuilt: toxics still present keep their state and toxicity draw unless they were
//! updated, in which case toxicity is drawn again (Toxiproxy re-runs the toxic).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::RngExt;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::splice::Pipe;
use crate::delay::sleep_until_precise;
use crate::metrics::ProxyMetrics;
use crate::proxy::Ctx;
use crate::toxics::{Kind, Stream, Toxic, ToxicSet};

/// Toxiproxy reads 32 KiB at a time (Go's io.Copy); per-chunk toxics see chunks of that size.
const CHUNK: usize = 32 * 1024;
/// Chunks read ahead of the writer: 2 MiB per direction at most.
const QUEUE: usize = 64;

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// EOF passed on (the peer's write side shut down); the other direction goes on.
    Done,
    /// The whole connection must close; `rst` = with a TCP reset.
    Close { rst: bool },
}

struct Stage {
    toxic: Arc<Toxic>,
    active: bool,
    /// limit_data: bytes passed so far.
    sent: u64,
    /// bandwidth: when the link is free again.
    free: Option<Instant>,
    /// timeout: since when no data reached it.
    idle_since: Instant,
}

impl Stage {
    fn new(toxic: Arc<Toxic>) -> Stage {
        let active = rand::rng().random::<f64>() < toxic.toxicity;
        Stage {
            toxic,
            active,
            sent: 0,
            free: None,
            idle_since: Instant::now(),
        }
    }
    fn needs_bytes(&self) -> bool {
        self.active && !matches!(self.toxic.kind, Kind::SlowClose(_))
    }
}

enum Msg {
    Data(Bytes, Instant),
    Eof,
    Error,
}

enum Item {
    Data(Bytes),
    Eof,
    Close,
}

struct Work {
    stage: usize,
    item: Item,
    ts: Instant,
    /// Wait this long before handling it (slicer's delay between pieces).
    pre: Duration,
}

enum Fast {
    Changed,
    Eof,
    Unsupported,
    Failed { rst: bool },
}

enum Slow {
    Switch,
    End(End),
}

pub struct Link {
    stream: Stream,
    src: Arc<TcpStream>,
    dst: Arc<TcpStream>,
    toxics: watch::Receiver<Arc<ToxicSet>>,
    metrics: Arc<ProxyMetrics>,
    stages: Vec<Stage>,
    /// A toxic change was seen (during a wait) and not applied yet.
    pending: bool,
    /// Cut every wait of the chunk in hand.
    hurry: bool,
    /// reset_peer fired: the connection is reset at this time.
    doom: Option<Instant>,
    pipe: Option<Pipe>,
    no_splice: bool,
}

impl Link {
    pub fn new(stream: Stream, src: Arc<TcpStream>, dst: Arc<TcpStream>, ctx: &Ctx) -> Link {
        Link {
            stream,
            src,
            dst,
            toxics: ctx.toxics.clone(),
            metrics: ctx.metrics.clone(),
            stages: Vec::new(),
            pending: true,
            hurry: false,
            doom: None,
            pipe: None,
            no_splice: false,
        }
    }

    pub async fn run(mut self) -> End {
        loop {
            if self.pending {
                if let Some(e) = self.rebuild() {
                    return e;
                }
            }
            if self.fast() {
                match self.run_fast().await {
                    Fast::Changed => {}
                    Fast::Eof => return self.eof_fast().await,
                    Fast::Unsupported => self.no_splice = true,
                    Fast::Failed { rst } => return End::Close { rst },
                }
            } else {
                let (tx, rx) = mpsc::channel(QUEUE);
                let stop = CancellationToken::new();
                let reader = read_loop(
                    self.src.clone(),
                    tx,
                    stop.clone(),
                    self.metrics.clone(),
                    self.stream,
                );
                let (_, out) = tokio::join!(reader, self.write_loop(rx, stop));
                match out {
                    Slow::Switch => {}
                    Slow::End(e) => return e,
                }
            }
        }
    }

    /// Applies the current toxic set; `Some` when a change closes the connection.
    fn rebuild(&mut self) -> Option<End> {
        self.pending = false;
        let set = self.toxics.borrow_and_update().clone();
        let mut old: Vec<Stage> = std::mem::take(&mut self.stages);
        let mut next = Vec::new();
        for t in set.stream(self.stream) {
            match old.iter().position(|s| s.toxic.name == t.name) {
                Some(i) => {
                    let mut s = old.swap_remove(i);
                    if s.toxic.generation != t.generation {
                        let fresh = Stage::new(t.clone());
                        s.active = fresh.active;
                        s.free = None;
                        s.idle_since = fresh.idle_since;
                        s.toxic = t.clone();
                    }
                    next.push(s);
                }
                None => next.push(Stage::new(t.clone())),
            }
        }
        self.stages = next;
        // A removed timeout closes what it was starving (Toxiproxy's TimeoutToxic.Cleanup).
        if old
            .iter()
            .any(|s| s.active && matches!(s.toxic.kind, Kind::Timeout(_)))
        {
            return Some(End::Close { rst: false });
        }
        None
    }

    fn fast(&self) -> bool {
        !self.no_splice && self.doom.is_none() && !self.stages.iter().any(Stage::needs_bytes)
    }

    /// Sum of the active slow_close delays.
    fn close_delay(&self) -> Duration {
        self.stages
            .iter()
            .filter(|s| s.active)
            .map(|s| match &s.toxic.kind {
                Kind::SlowClose(c) => c.delay(),
                _ => Duration::ZERO,
            })
            .sum()
    }

    /// Sleeps until `at`, unless the toxics change first (then this chunk hurries on).
    async fn wait_until(&mut self, at: Option<Instant>) {
        if self.hurry {
            return;
        }
        tokio::select! {
            _ = sleep_or_never(at) => {}
            _ = self.toxics.changed() => {
                self.hurry = true;
                self.pending = true;
            }
        }
    }

    async fn eof_fast(&mut self) -> End {
        let d = self.close_delay();
        if !d.is_zero() {
            self.hurry = false;
            self.wait_until(Some(Instant::now() + d)).await;
        }
        shutdown_write(&self.dst);
        End::Done
    }

    async fn run_fast(&mut self) -> Fast {
        if self.pipe.is_none() {
            match Pipe::new() {
                Ok(p) => self.pipe = Some(p),
                Err(_) => return Fast::Unsupported,
            }
        }
        let Link {
            src,
            dst,
            toxics,
            pipe,
            metrics,
            stream,
            pending,
            ..
        } = self;
        let pipe = pipe.as_ref().expect("pipe made above");
        let mut first = true;
        loop {
            tokio::select! {
                biased;
                r = toxics.changed() => {
                    *pending = true;
                    return if r.is_ok() { Fast::Changed } else { Fast::Failed { rst: false } };
                }
                r = src.readable() => if r.is_err() {
                    return Fast::Failed { rst: true };
                }
            }
            let n = match src.try_io(Interest::READABLE, || pipe.fill(&**src)) {
                Ok(0) => return Fast::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if first && e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    return Fast::Unsupported
                }
                Err(_) => return Fast::Failed { rst: true },
            };
            first = false;
            metrics.received(*stream, n);
            // Drain the pipe completely before anything else (a toxic change included).
            let mut left = n;
            while left > 0 {
                if dst.writable().await.is_err() {
                    return Fast::Failed { rst: false };
                }
                match dst.try_io(Interest::WRITABLE, || pipe.drain(&**dst, left)) {
                    Ok(m) => {
                        left -= m;
                        metrics.sent(*stream, m);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return Fast::Failed { rst: false },
                }
            }
        }
    }

    fn deadline(&self) -> Option<(Instant, bool)> {
        if let Some(d) = self.doom {
            return Some((d, true));
        }
        self.stages
            .iter()
            .filter(|s| s.active)
            .find_map(|s| match &s.toxic.kind {
                Kind::Timeout(t) => t.after().map(|a| (s.idle_since + a, false)),
                _ => None,
            })
    }

    async fn write_loop(&mut self, mut rx: mpsc::Receiver<Msg>, stop: CancellationToken) -> Slow {
        let out = self.write_loop_inner(&mut rx, &stop).await;
        // Unblock the reader whatever happened: it stops, or its send fails.
        stop.cancel();
        drop(rx);
        out
    }

    async fn write_loop_inner(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        stop: &CancellationToken,
    ) -> Slow {
        loop {
            if self.pending {
                if let Some(e) = self.rebuild() {
                    return Slow::End(e);
                }
                if self.fast() {
                    // Back to splicing: stop the reader, pass on what it already read.
                    stop.cancel();
                    while let Some(m) = rx.recv().await {
                        match m {
                            Msg::Data(b, _) => {
                                if write_all(&self.dst, &b).await.is_err() {
                                    return Slow::End(End::Close { rst: false });
                                }
                                self.metrics.sent(self.stream, b.len());
                            }
                            Msg::Eof => return Slow::End(self.eof_fast().await),
                            Msg::Error => return Slow::End(End::Close { rst: true }),
                        }
                    }
                    return Slow::Switch;
                }
            }
            let deadline = self.deadline();
            tokio::select! {
                biased;
                r = self.toxics.changed() => {
                    if r.is_err() {
                        return Slow::End(End::Close { rst: false });
                    }
                    self.pending = true;
                }
                _ = sleep_or_never(deadline.map(|d| d.0)) => {
                    let rst = deadline.is_some_and(|d| d.1);
                    return Slow::End(End::Close { rst });
                }
                m = rx.recv() => {
                    let (item, ts) = match m {
                        Some(Msg::Data(b, ts)) => (Item::Data(b), ts),
                        Some(Msg::Eof) => (Item::Eof, Instant::now()),
                        Some(Msg::Error) | None => return Slow::End(End::Close { rst: true }),
                    };
                    if let Some(e) = self.process(item, ts).await {
                        return Slow::End(e);
                    }
                }
            }
        }
    }

    /// Passes one chunk (or the EOF) through the active toxics and writes what comes out.
    async fn process(&mut self, item: Item, ts: Instant) -> Option<End> {
        self.hurry = false;
        let mut stack = vec![Work {
            stage: 0,
            item,
            ts,
            pre: Duration::ZERO,
        }];
        while let Some(w) = stack.pop() {
            if !w.pre.is_zero() {
                self.wait_until(Some(Instant::now() + w.pre)).await;
            }
            let i = w.stage;
            let next = |item: Item, ts: Instant| Work {
                stage: i + 1,
                item,
                ts,
                pre: Duration::ZERO,
            };
            if i == self.stages.len() {
                match w.item {
                    Item::Data(b) => {
                        if write_all(&self.dst, &b).await.is_err() {
                            return Some(End::Close { rst: false });
                        }
                        self.metrics.sent(self.stream, b.len());
                    }
                    Item::Eof => {
                        shutdown_write(&self.dst);
                        return Some(End::Done);
                    }
                    Item::Close => return Some(End::Close { rst: false }),
                }
                continue;
            }
            if !self.stages[i].active {
                stack.push(next(w.item, w.ts));
                continue;
            }
            let toxic = self.stages[i].toxic.clone();
            match (&toxic.kind, w.item) {
                (Kind::Latency(l), Item::Data(b)) => {
                    let at = w.ts + l.delay();
                    self.wait_until(Some(at)).await;
                    stack.push(next(Item::Data(b), at));
                }
                (Kind::Bandwidth(bw), Item::Data(mut b)) => {
                    if b.len() > bw.piece() {
                        let rest = b.split_off(bw.piece());
                        stack.push(Work {
                            stage: i,
                            item: Item::Data(rest),
                            ts: w.ts,
                            pre: Duration::ZERO,
                        });
                    }
                    let at = bw.release(self.stages[i].free, Instant::now(), b.len());
                    if at.is_some() {
                        self.stages[i].free = at;
                    }
                    self.wait_until(at).await;
                    stack.push(next(Item::Data(b), w.ts));
                }
                (Kind::Slicer(s), Item::Data(b)) => {
                    let delay = s.delay();
                    for (k, &(off, n)) in s.slices(b.len()).iter().enumerate().rev() {
                        let pre = if k == 0 { Duration::ZERO } else { delay };
                        stack.push(Work {
                            stage: i + 1,
                            item: Item::Data(b.slice(off..off + n)),
                            ts: w.ts,
                            pre,
                        });
                    }
                }
                (Kind::LimitData(l), Item::Data(mut b)) => {
                    let st = &mut self.stages[i];
                    let room = l.remaining(st.sent);
                    if b.len() as u64 > room {
                        b.truncate(room as usize);
                    }
                    st.sent += b.len() as u64;
                    if l.remaining(st.sent) == 0 {
                        stack.push(next(Item::Close, w.ts));
                    }
                    if !b.is_empty() {
                        stack.push(next(Item::Data(b), w.ts));
                    }
                }
                (Kind::Timeout(_), Item::Data(_)) => {
                    // Dropped on the floor; the idle timer starts again.
                    self.stages[i].idle_since = Instant::now();
                }
                (Kind::ResetPeer(r), _) => {
                    // Dropped; the connection is reset `timeout` after the first arrival.
                    if self.doom.is_none() {
                        self.doom = Some(Instant::now() + r.after());
                    }
                }
                (Kind::SlowClose(c), item @ (Item::Eof | Item::Close)) => {
                    self.wait_until(Some(Instant::now() + c.delay())).await;
                    stack.push(next(item, w.ts));
                }
                (_, item) => stack.push(next(item, w.ts)),
            }
        }
        None
    }
}

async fn sleep_or_never(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until_precise(at).await,
        None => std::future::pending().await,
    }
}

async fn read_loop(
    src: Arc<TcpStream>,
    tx: mpsc::Sender<Msg>,
    stop: CancellationToken,
    metrics: Arc<ProxyMetrics>,
    stream: Stream,
) {
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = src.readable() => if r.is_err() {
                let _ = tx.send(Msg::Error).await;
                return;
            }
        }
        let mut buf = BytesMut::with_capacity(CHUNK);
        match src.try_read_buf(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Msg::Eof).await;
                return;
            }
            Ok(n) => {
                metrics.received(stream, n);
                if tx
                    .send(Msg::Data(buf.freeze(), Instant::now()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                let _ = tx.send(Msg::Error).await;
                return;
            }
        }
    }
}

async fn write_all(s: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn shutdown_write(s: &TcpStream) {
    let _ = nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Write);
}
