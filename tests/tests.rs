//! End-to-end tests: the real `simian` binary against real processes and sockets.

mod aws;
mod chaos_kong;
mod common;
mod gameday;
mod guardian;
mod lab;
mod lab_netns;
mod lab_traffic;
mod latency;
mod leashed;
mod netfilter;
mod process;
mod prometheus;
mod proxy;
mod recover;
mod report_html;
mod run;
mod schedule;
mod sever;
mod shifters;
mod split_brain;
mod validate;
