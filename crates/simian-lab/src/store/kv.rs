//! The store's data: keys to values, each write numbered in the order it was applied.
//!
//! Every write is a [`Record`]: local ones come from [`Kv::put`], replicated ones from
//! [`Kv::apply`]. Both go to the write-ahead file (when the store has one) before they count.
//!
//! Conflicts between regions are settled by last-writer-wins on `(ts_ms, origin)`: the
//! write with the later origin timestamp wins, and on a tie the lexically greater origin
//! region name. Every store applies the same rule to the same writes, so all regions
//! converge to the same value once replication caught up. A local write always takes a
//! timestamp above the one it overwrites, so a region never loses its own newest write to
//! an older one it already saw.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use super::wal::Wal;

/// One applied write. `seq` numbers writes 1, 2, ... in the order this store applied them:
/// a log position, so a write-ahead file or a replication stream can resume from one.
/// `origin` is the region that accepted it from a client, `origin_seq` its `seq` there (equal
/// to `seq` for a local write), `ts_ms` the origin's wall clock then (for last-writer-wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub key: String,
    pub value: Bytes,
    pub origin: String,
    pub origin_seq: u64,
    pub ts_ms: u64,
}

/// A stored value and the number of the write that set it (its version), with where and
/// when that write was first accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub data: Bytes,
    pub seq: u64,
    pub origin: String,
    pub ts_ms: u64,
}

impl Value {
    /// Whether a write stamped `(ts_ms, origin)` replaces this value.
    fn loses_to(&self, ts_ms: u64, origin: &str) -> bool {
        (ts_ms, origin) > (self.ts_ms, self.origin.as_str())
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<String, Value>,
    last_seq: u64,
    /// This region's own writes, in order: what replication ships.
    local: Vec<Record>,
    /// Per origin region, the highest `origin_seq` applied from it.
    applied: BTreeMap<String, u64>,
    wal: Option<Wal>,
}

impl Inner {
    /// Applies `record` to the map (last-writer-wins) and the bookkeeping, without logging.
    fn apply(&mut self, region: &str, record: &Record) {
        self.last_seq = self.last_seq.max(record.seq);
        let wins = self
            .map
            .get(&record.key)
            .is_none_or(|v| v.loses_to(record.ts_ms, &record.origin));
        if wins {
            self.map.insert(
                record.key.clone(),
                Value {
                    data: record.value.clone(),
                    seq: record.seq,
                    origin: record.origin.clone(),
                    ts_ms: record.ts_ms,
                },
            );
        }
        if record.origin == region {
            self.local.push(record.clone());
        } else {
            let high = self.applied.entry(record.origin.clone()).or_default();
            *high = (*high).max(record.origin_seq);
        }
    }
}

/// A key-value map, safe to share between connections, optionally backed by a write-ahead
/// file.
#[derive(Debug)]
pub struct Kv {
    region: String,
    inner: RwLock<Inner>,
    /// The `seq` of the last local write, for replication senders to wait on.
    local_tx: watch::Sender<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Kv {
    /// An empty, memory-only store of `region`.
    pub fn new(region: &str) -> Self {
        Kv {
            region: region.to_string(),
            inner: RwLock::default(),
            local_tx: watch::channel(0).0,
        }
    }

    /// A memory-only store holding the keys the lab's instances read.
    pub fn preloaded(region: &str) -> Self {
        let kv = Kv::new(region);
        kv.seed(region);
        kv
    }

    /// `region`'s store, preloaded, then with every write in the write-ahead file at `wal`
    /// applied again: a restarted store keeps its data and its numbering.
    pub fn open(region: &str, wal: &Path) -> std::io::Result<Self> {
        let kv = Kv::preloaded(region);
        let (wal, records) = Wal::open(wal)?;
        {
            let mut inner = kv.inner.write().unwrap();
            for record in &records {
                inner.apply(region, record);
            }
            inner.wal = Some(wal);
            kv.local_tx
                .send_replace(inner.local.last().map_or(0, |r| r.seq));
        }
        Ok(kv)
    }

    /// The keys instances read, so reads succeed from the start. Each region has its own
    /// catalog: seeds are stamped `ts_ms` 0 (any real write wins), never logged nor shipped.
    fn seed(&self, region: &str) {
        let catalog = format!(
            r#"{{"region":"{region}","titles":["the-lab","split-brain","chaos-kong","latency-monkey"]}}"#
        );
        let mut inner = self.inner.write().unwrap();
        for (key, value) in [
            (super::CATALOG_KEY, catalog),
            ("config", r#"{"bitrate":"auto"}"#.to_string()),
        ] {
            inner.last_seq += 1;
            let seq = inner.last_seq;
            inner.map.insert(
                key.to_string(),
                Value {
                    data: Bytes::from(value),
                    seq,
                    origin: region.to_string(),
                    ts_ms: 0,
                },
            );
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.inner.read().unwrap().map.get(key).cloned()
    }

    /// Sets `key` as a local write, logs it, and returns its record (what replication ships).
    pub fn put(&self, key: &str, value: Bytes) -> std::io::Result<Record> {
        let mut inner = self.inner.write().unwrap();
        let floor = inner.map.get(key).map_or(0, |v| v.ts_ms + 1);
        let record = Record {
            seq: inner.last_seq + 1,
            key: key.to_string(),
            value,
            origin: self.region.clone(),
            origin_seq: inner.last_seq + 1,
            ts_ms: now_ms().max(floor),
        };
        if let Some(wal) = &mut inner.wal {
            wal.append(&record)?;
        }
        inner.apply(&self.region, &record);
        self.local_tx.send_replace(record.seq);
        Ok(record)
    }

    /// Applies a write replicated from `record.origin` (its `seq` is renumbered here).
    /// Returns false, changing nothing, for a write already applied (a resend after a
    /// reconnect) or one of our own (never echoed back).
    pub fn apply(&self, record: &Record) -> std::io::Result<bool> {
        let mut inner = self.inner.write().unwrap();
        if record.origin == self.region
            || inner.applied.get(&record.origin).copied().unwrap_or(0) >= record.origin_seq
        {
            return Ok(false);
        }
        let record = Record {
            seq: inner.last_seq + 1,
            ..record.clone()
        };
        if let Some(wal) = &mut inner.wal {
            wal.append(&record)?;
        }
        inner.apply(&self.region, &record);
        Ok(true)
    }

    /// The highest `origin_seq` applied from `origin`: where its sender resumes.
    pub fn applied_from(&self, origin: &str) -> u64 {
        self.inner
            .read()
            .unwrap()
            .applied
            .get(origin)
            .copied()
            .unwrap_or(0)
    }

    /// Up to `max` local writes after `seq`, in order.
    pub fn local_after(&self, seq: u64, max: usize) -> Vec<Record> {
        let inner = self.inner.read().unwrap();
        let from = inner.local.partition_point(|r| r.seq <= seq);
        inner.local[from..].iter().take(max).cloned().collect()
    }

    /// How many local writes come after `seq`, and the `ts_ms` of the first of them.
    pub fn backlog_after(&self, seq: u64) -> (u64, Option<u64>) {
        let inner = self.inner.read().unwrap();
        let from = inner.local.partition_point(|r| r.seq <= seq);
        let rest = &inner.local[from..];
        (rest.len() as u64, rest.first().map(|r| r.ts_ms))
    }

    /// Changes to the `seq` of the last local write.
    pub fn watch_local(&self) -> watch::Receiver<u64> {
        self.local_tx.subscribe()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of the last write applied (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.inner.read().unwrap().last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(
        origin: &str,
        origin_seq: u64,
        key: &str,
        value: &'static [u8],
        ts_ms: u64,
    ) -> Record {
        Record {
            seq: 0,
            key: key.into(),
            value: Bytes::from_static(value),
            origin: origin.into(),
            origin_seq,
            ts_ms,
        }
    }

    #[test]
    fn writes_are_numbered_in_order_and_overwrite() {
        let kv = Kv::new("us-east");
        assert!(kv.is_empty());
        assert_eq!(kv.get("a"), None);
        let first = kv.put("a", Bytes::from_static(b"1")).unwrap();
        let second = kv.put("a", Bytes::from_static(b"2")).unwrap();
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(second.key, "a");
        assert!(second.ts_ms > first.ts_ms, "an overwrite stamps later");
        let got = kv.get("a").unwrap();
        assert_eq!((got.data, got.seq), (Bytes::from_static(b"2"), 2));
        assert_eq!((kv.len(), kv.last_seq()), (1, 2));
    }

    #[test]
    fn preloaded_has_the_catalog() {
        let kv = Kv::preloaded("us-west");
        let catalog = kv.get(crate::store::CATALOG_KEY).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&catalog.data).unwrap();
        assert_eq!(v["region"], "us-west");
        assert!(kv.len() >= 2);
        assert!(kv.local_after(0, 10).is_empty(), "seeds are not shipped");
    }

    #[test]
    fn a_reopened_store_keeps_its_data_numbers_and_replication_marks() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("store-us-west.wal");
        let kv = Kv::open("us-west", &wal).unwrap();
        let a = kv.put("a", Bytes::from_static(b"1")).unwrap();
        assert!(kv.apply(&remote("us-east", 7, "b", b"east", 5)).unwrap());
        let c = kv.put("c", Bytes::from_static(b"3")).unwrap();
        drop(kv);

        let kv = Kv::open("us-west", &wal).unwrap();
        assert_eq!(kv.get("a").unwrap().data, Bytes::from_static(b"1"));
        assert_eq!(kv.get("b").unwrap().data, Bytes::from_static(b"east"));
        assert_eq!(kv.last_seq(), c.seq);
        assert_eq!(kv.applied_from("us-east"), 7);
        let local: Vec<u64> = kv.local_after(0, 10).iter().map(|r| r.seq).collect();
        assert_eq!(local, [a.seq, c.seq]);
        assert_eq!(*kv.watch_local().borrow(), c.seq);
        let d = kv.put("d", Bytes::from_static(b"4")).unwrap();
        assert_eq!(d.seq, c.seq + 1, "numbering goes on");
    }

    #[test]
    fn resends_and_own_writes_are_not_applied_twice() {
        let kv = Kv::new("us-west");
        assert!(kv.apply(&remote("us-east", 1, "k", b"1", 10)).unwrap());
        assert!(!kv.apply(&remote("us-east", 1, "k", b"1", 10)).unwrap());
        assert!(!kv.apply(&remote("us-west", 9, "k", b"echo", 99)).unwrap());
        assert_eq!(kv.get("k").unwrap().data, Bytes::from_static(b"1"));
        assert!(
            kv.local_after(0, 10).is_empty(),
            "applied writes are not re-shipped"
        );
        assert_eq!(kv.last_seq(), 1);
    }

    #[test]
    fn conflicts_go_to_the_later_timestamp_then_the_greater_region() {
        let west = Kv::new("us-west");
        assert!(west
            .apply(&remote("us-east", 1, "k", b"east-new", 20))
            .unwrap());
        // Older write arrives later: applied (the mark moves) but does not win.
        assert!(west
            .apply(&remote("eu-west", 1, "k", b"eu-old", 10))
            .unwrap());
        assert_eq!(west.get("k").unwrap().data, Bytes::from_static(b"east-new"));
        assert_eq!(west.applied_from("eu-west"), 1);
        // A tie: the greater region name wins, whichever order they arrive in.
        assert!(west.apply(&remote("us-east", 2, "t", b"east", 30)).unwrap());
        assert!(west.apply(&remote("eu-west", 2, "t", b"eu", 30)).unwrap());
        assert_eq!(west.get("t").unwrap().data, Bytes::from_static(b"east"));
        // The other arrival order gives the same winner.
        let third = Kv::new("ap-south");
        assert!(third.apply(&remote("eu-west", 2, "t", b"eu", 30)).unwrap());
        assert!(third
            .apply(&remote("us-east", 2, "t", b"east", 30))
            .unwrap());
        assert_eq!(third.get("t").unwrap().data, Bytes::from_static(b"east"));
        let east = Kv::new("us-east");
        // A local write over a value it saw always wins, even with a clock behind.
        assert!(east
            .apply(&remote("us-west", 1, "f", b"future", u64::MAX / 2))
            .unwrap());
        east.put("f", Bytes::from_static(b"mine")).unwrap();
        assert_eq!(east.get("f").unwrap().data, Bytes::from_static(b"mine"));
    }
}
