//! The scale figure of the EC2 zone kill: 3 zones × N instances (default
//! 1,000, all opted in) in a local moto server, then plan + stop of one zone
//! and the revert. Prints API calls, wall times and the peak RSS.
//!
//! ```text
//! cargo run --release -p simian-aws --example zone_kill_scale [-- PER_ZONE]
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use simian_aws::ec2::{apply, plan, revert, Action, Ec2Revert, Selection, Selector};
use support::{Moto, OPT_IN, ZONES};

/// The process' peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let per_zone: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PER_ZONE is a number"))
        .unwrap_or(1000);
    let moto = Moto::start();
    let ec2 = moto.ec2().await;

    let t = Instant::now();
    for zone in ZONES {
        support::run(&ec2, zone, per_zone, &[OPT_IN]).await;
    }
    println!(
        "fleet: {} instances in {} zones, created in {:.2?} ({} RunInstances calls); peak RSS so far {} KiB",
        per_zone * ZONES.len(),
        ZONES.len(),
        t.elapsed(),
        ec2.calls().of("RunInstances"),
        peak_rss_kib()
    );

    let calls = ec2.calls();
    let base = calls.total();
    let t = Instant::now();
    let planned = plan(&ec2, &Selector::zone(ZONES[0]), Selection::All, 1)
        .await
        .expect("plan");
    let plan_time = t.elapsed();
    let plan_calls = calls.total() - base;
    assert_eq!(planned.targets.len(), per_zone);

    let record = Ec2Revert::new(&ec2, Action::Stop, planned.targets.clone());
    let base = calls.total();
    let t = Instant::now();
    let applied = apply(&ec2, Action::Stop, &planned.targets)
        .await
        .expect("stop");
    let stop_time = t.elapsed();
    let stop_calls = calls.total() - base;
    assert_eq!(applied.changed.len(), per_zone);

    let base = calls.total();
    let t = Instant::now();
    let reverted = revert(&ec2, &record).await.expect("revert");
    let revert_time = t.elapsed();
    let revert_calls = calls.total() - base;
    assert_eq!(reverted.started.len(), per_zone);

    println!(
        "plan {}: {} eligible, {} targets, {plan_calls} API calls (DescribeInstances pages), {plan_time:.2?}",
        ZONES[0],
        planned.eligible.len(),
        planned.targets.len()
    );
    println!("stop: {stop_calls} API calls (StopInstances), {stop_time:.2?}");
    println!(
        "revert: {revert_calls} API calls (DescribeInstances + StartInstances), {revert_time:.2?}"
    );
    println!(
        "calls by operation: {:?}; attempts (retries included): {}",
        calls.by_operation(),
        calls.attempts()
    );
    println!("peak RSS (VmHWM) of this process: {} KiB", peak_rss_kib());
}
