//! End-to-end tests: the real `simian` binary against real processes and sockets.

mod aws;
mod chaos_kong;
mod common;
mod lab;
mod lab_netns;
mod lab_traffic;
mod latency;
mod netfilter;
mod process;
mod prometheus;
mod proxy;
mod recover;
mod run;
mod sever;
mod shifters;
mod split_brain;
mod validate;
