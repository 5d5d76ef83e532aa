//! The region's key-value store: the dependency that instances read on every request.
//!
//! [`kv`] holds the data and numbers every write; [`api`] serves it over HTTP/1.1 and runs it
//! as its own process (`simian lab store`). Writes go through one place, [`kv::Kv::put`],
//! which returns the numbered record it applied: that record is what a write-ahead file
//! would append and what cross-region replication would ship.

pub mod api;
pub mod kv;

pub use api::{run, serve};
pub use kv::{Kv, Record, Value};

/// The id of `region`'s store, as `lab status` and `lab restart` name it: `store-<region>`.
pub fn store_id(region: &str) -> String {
    format!("store-{region}")
}

/// The key every instance reads on each application request.
pub const CATALOG_KEY: &str = "catalog";
