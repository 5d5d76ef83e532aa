//! The region's key-value store: the dependency that instances read on every request.
//!
//! [`kv`] holds the data and numbers every write; [`wal`] makes it durable (a write-ahead
//! file per store, reloaded on restart); [`repl`] ships each region's own writes to the other
//! regions and applies theirs; [`api`] serves it all over HTTP/1.1 and runs it as its own
//! process (`simian lab store`). Local writes go through [`kv::Kv::put`], replicated ones
//! through [`kv::Kv::apply`]; both log the numbered record before it counts.

pub mod api;
pub mod kv;
pub mod repl;
pub mod wal;

pub use api::{run, serve};
pub use kv::{Kv, Record, Value};

/// The id of `region`'s store, as `lab status` and `lab restart` name it: `store-<region>`.
pub fn store_id(region: &str) -> String {
    format!("store-{region}")
}

/// The key every instance reads on each application request.
pub const CATALOG_KEY: &str = "catalog";
