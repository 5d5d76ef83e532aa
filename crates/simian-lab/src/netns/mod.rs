//! `simian lab up --netns`: every region and every zone in a network namespace of its own,
//! wired to a router namespace, so that traffic between regions crosses a real (virtual)
//! network path that nftables rules can cut.
//!
//! ```text
//! host ── sl<tag>-h 10.N.0.1 ═══ host0 10.N.0.2 ── sl<tag>-core (router, ip_forward=1)
//!                                                   ├─ br1 10.N.1.1/24 ─┬─ sl<tag>-us-east    10.N.1.2 (store)
//!                                                   │                   ├─ sl<tag>-us-east-a  10.N.1.11
//!                                                   │                   └─ sl<tag>-us-east-b  10.N.1.12 ...
//!                                                   └─ br2 10.N.2.1/24 ─┬─ sl<tag>-us-west    10.N.2.2
//!                                                                       └─ ...
//! ```
//!
//! [`layout`] plans names and addresses (pure); [`ip`] runs iproute2 to build and remove
//! them, checks privileges and picks a subnet that no host route overlaps.

mod ip;
mod layout;

pub(crate) use ip::{check_free, preflight, remove_leftovers, setup, teardown_recorded, LabNet};
pub use layout::{NetnsLayout, Network, RegionNet, Subnet, ZoneNet};
