//! The store's data: keys to values, each write numbered in the order it was applied.

use std::collections::BTreeMap;
use std::sync::RwLock;

use bytes::Bytes;

/// One applied write. `seq` numbers writes 1, 2, ... in the order this store applied them:
/// a log position, so a write-ahead file or a replication stream can resume from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub key: String,
    pub value: Bytes,
}

/// A stored value and the number of the write that set it (its version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub data: Bytes,
    pub seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<String, Value>,
    last_seq: u64,
}

/// An in-memory key-value map, safe to share between connections.
#[derive(Debug, Default)]
pub struct Kv {
    inner: RwLock<Inner>,
}

impl Kv {
    pub fn new() -> Self {
        Kv::default()
    }

    /// A store holding the keys the lab's instances read, so reads succeed from the start.
    pub fn preloaded(region: &str) -> Self {
        let kv = Kv::new();
        let catalog = format!(
            r#"{{"region":"{region}","titles":["the-lab","split-brain","chaos-kong","latency-monkey"]}}"#
        );
        kv.put(super::CATALOG_KEY, Bytes::from(catalog));
        kv.put("config", Bytes::from_static(br#"{"bitrate":"auto"}"#));
        kv
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.inner.read().unwrap().map.get(key).cloned()
    }

    /// Sets `key` and returns the record of the write.
    pub fn put(&self, key: &str, value: Bytes) -> Record {
        let mut inner = self.inner.write().unwrap();
        inner.last_seq += 1;
        let seq = inner.last_seq;
        inner.map.insert(
            key.to_string(),
            Value {
                data: value.clone(),
                seq,
            },
        );
        Record {
            seq,
            key: key.to_string(),
            value,
        }
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

    #[test]
    fn writes_are_numbered_in_order_and_overwrite() {
        let kv = Kv::new();
        assert!(kv.is_empty());
        assert_eq!(kv.get("a"), None);
        let first = kv.put("a", Bytes::from_static(b"1"));
        let second = kv.put("a", Bytes::from_static(b"2"));
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(second.key, "a");
        assert_eq!(
            kv.get("a"),
            Some(Value {
                data: Bytes::from_static(b"2"),
                seq: 2
            })
        );
        assert_eq!((kv.len(), kv.last_seq()), (1, 2));
    }

    #[test]
    fn preloaded_has_the_catalog() {
        let kv = Kv::preloaded("us-west");
        let catalog = kv.get(crate::store::CATALOG_KEY).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&catalog.data).unwrap();
        assert_eq!(v["region"], "us-west");
        assert!(kv.len() >= 2);
    }
}
