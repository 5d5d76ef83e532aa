//! The embedded lab: a small active-active service on one machine, made of real processes,
//! for chaos experiments to break. R regions × Z zones × N instances; each region has an edge
//! router that spreads requests over its instances and routes around the dead ones, and a
//! key-value store that its instances read on every request, through an embedded fault proxy
//! (one Toxiproxy-style proxy per region, `store-<region>`) so that latency and errors can be
//! injected into that dependency. Stores replicate their writes to every other region
//! asynchronously, each link through its own TCP-mode proxy (`repl-<from>-<to>`), so that
//! severing it partitions replication while every region keeps serving.
//!
//! With root, `lab up --netns` ([`Network::Netns`]) puts every region and zone in a network
//! namespace of its own behind a router namespace (see [`netns`]): stores then replicate
//! directly to each other across that router, where nftables rules can partition them.
//!
//! For Chaos Kong, a global router ([`global`], `lab.global`) stands in front of the edges: it
//! gives each user a home region by a geo split and passes the request to that region's edge,
//! or to another region's as far as [`steering`] says. A region steered away entirely fails
//! over: its edge forwards what still reaches it. `lab up --capacity` caps what an edge
//! serves per second, so the region taking the users can run out.
//!
//! A detached supervisor process (`simian lab supervise`) owns the instances, stores, edges
//! and the proxy, and answers a control socket; this crate's functions ([`up`], [`down`],
//! [`status`], [`ensure_running`], [`load`]) talk to it through `<state_dir>/lab/`.
#![forbid(unsafe_code)]

mod capacity;
mod child;
pub mod cli;
pub mod control;
pub mod edge;
mod error;
pub mod global;
mod http;
pub mod instance;
mod lifecycle;
pub mod netns;
pub mod procfs;
mod state;
pub mod steering;
pub mod store;
mod supervisor;
pub mod topology;
pub mod traffic;

pub use error::LabError;
pub use lifecycle::{down, ensure_running, status, up, up_with, up_with_traffic};
pub use netns::{NetnsLayout, Network, RegionNet, Subnet, ZoneNet};
pub use state::{
    load, Instance, InstanceStatus, LabPaths, LabState, LabStatus, ProcessState, Region,
    RegionStatus, ReplLink, Store, StoreStatus, Zone,
};
pub use steering::SteeringEntry;
pub use topology::LabSpec;
pub use traffic::TrafficSpec;
