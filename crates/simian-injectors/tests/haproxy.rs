//! The haproxy shifter against a real HAProxy: weights through its admin socket, traffic
//! through its frontend, and a revert that puts back exactly what was there.
//!
//! Needs `haproxy` on the PATH (`.ci/run` installs it); without it these tests fail.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use simian_experiment::{HaproxyShifter, Inject, ShiftFault, Shifter};
use simian_injectors::{BuildCtx, Fault, FaultError, RevertRecord};

mod support;

use support::haproxy::{Haproxy, Traffic};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn inject(socket: &str, from_servers: &[&str]) -> Inject {
    Inject {
        name: Some("evac".into()),
        shift: Some(ShiftFault {
            from: "east".into(),
            to: "west".into(),
            percent: None,
            via: Shifter::Haproxy(HaproxyShifter {
                socket: socket.into(),
                backend: "app".into(),
                from_servers: names(from_servers),
                to_servers: names(&["west1"]),
            }),
        }),
        ..Inject::default()
    }
}

async fn build(socket: &str, from_servers: &[&str]) -> Result<Box<dyn Fault>, FaultError> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = BuildCtx {
        lab: None,
        run_proxy_api: None,
        rng: &mut rng,
        lease: None,
    };
    simian_injectors::build("evac", &inject(socket, from_servers), &mut ctx).await
}

async fn build_east(h: &Haproxy) -> Box<dyn Fault> {
    build(&h.socket(), &["east1", "east2"]).await.unwrap()
}

/// Blocking traffic off the runtime's worker threads.
async fn traffic(h: &Arc<Haproxy>, n: usize) -> Traffic {
    let h = h.clone();
    tokio::task::spawn_blocking(move || h.traffic(n))
        .await
        .unwrap()
}

#[tokio::test]
async fn build_and_prepare_record_every_weight_and_change_nothing() {
    let h = Haproxy::start();
    let fault = build_east(&h).await;
    let plan = fault.plan();
    assert_eq!(
        plan.targets,
        vec![
            "server app/east1 (weight 10)".to_string(),
            "server app/east2 (weight 10)".to_string()
        ]
    );
    assert_eq!(
        plan.universe,
        format!("servers of backend app at {}", h.socket())
    );
    let record = fault.prepare().await.unwrap();
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["kind"], "shift");
    assert_eq!(json["via"], "haproxy");
    assert_eq!(json["backend"], "app");
    assert_eq!(json["socket"], h.socket());
    assert_eq!(
        json["servers"],
        serde_json::json!([
            {"server": "east1", "weight": 10},
            {"server": "east2", "weight": 10},
            {"server": "west1", "weight": 20},
        ])
    );
    assert_eq!(h.weights(), [10, 10, 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_shift_halves_the_east_weights_and_traffic_favours_west() {
    let h = Arc::new(Haproxy::start());
    let before = traffic(&h, 100).await;
    assert!(
        (35..=65).contains(&before.west),
        "10/10/20 should split about evenly: {before:?}"
    );
    let fault = build_east(&h).await;
    let _record = fault.prepare().await.unwrap();
    fault.ramp().unwrap().shift(0.5).await.unwrap();
    assert_eq!(h.command("get weight app/east1"), "5 (initial 10)");
    assert_eq!(h.command("get weight app/east2"), "5 (initial 10)");
    assert_eq!(h.command("get weight app/west1"), "20 (initial 20)");
    // 5/5/20: west should take about two thirds.
    let after = traffic(&h, 100).await;
    assert!(
        after.west >= 55 && after.east >= 15,
        "5/5/20 should send about 67 of 100 to west: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_shift_drains_east_so_no_request_reaches_it() {
    let h = Arc::new(Haproxy::start());
    let fault = build_east(&h).await;
    let record = fault.prepare().await.unwrap();
    fault.apply(&record).await.unwrap(); // `percent` unset: 100%
    assert_eq!(h.weights(), [0, 0, 20]);
    let t = traffic(&h, 100).await;
    assert_eq!((t.east, t.west), (0, 100), "east is drained: {t:?}");
}

#[tokio::test]
async fn revert_restores_the_exact_weights_and_can_repeat() {
    let h = Haproxy::start();
    let fault = build_east(&h).await;
    let record = fault.prepare().await.unwrap();
    let ramp = fault.ramp().unwrap();
    for share in [0.1, 0.25, 0.5, 1.0] {
        ramp.shift(share).await.unwrap();
    }
    assert_eq!(h.weights(), [0, 0, 20]);
    let reverted = simian_injectors::revert(&record).await.unwrap();
    assert_eq!(
        reverted.actions,
        vec![
            "set weight app/east1 10".to_string(),
            "set weight app/east2 10".to_string(),
            "set weight app/west1 20".to_string(),
        ]
    );
    assert_eq!(h.weights(), [10, 10, 20]);
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(h.weights(), [10, 10, 20]);
    assert_eq!(h.command("get weight app/east1"), "10 (initial 10)");
}

#[tokio::test]
async fn revert_needs_only_the_journaled_record() {
    let h = Haproxy::start();
    // Someone had tuned east2 before the experiment: revert must put back 7, not 10.
    assert_eq!(h.command("set weight app/east2 7"), "");
    let json = {
        let fault = build_east(&h).await;
        let record = fault.prepare().await.unwrap();
        fault.ramp().unwrap().shift(0.5).await.unwrap();
        serde_json::to_string(&record).unwrap()
    };
    assert_eq!(h.weights(), [5, 4, 20]); // 7 × 0.5 = 3.5 rounds to 4
                                         // As `simian recover` does: the record from the journal, nothing else.
    let record: RevertRecord = serde_json::from_str(&json).unwrap();
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(h.weights(), [10, 7, 20]);
}

#[tokio::test]
async fn the_admin_socket_can_be_reached_over_tcp() {
    let h = Haproxy::start();
    let fault = build(&h.tcp_socket, &["east1"]).await.unwrap();
    let record = fault.prepare().await.unwrap();
    fault.ramp().unwrap().shift(0.75).await.unwrap();
    assert_eq!(h.weights(), [3, 10, 20]); // 10 × 0.25 = 2.5 rounds to 3
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(h.weights(), [10, 10, 20]);
}

#[tokio::test]
async fn an_unknown_server_fails_at_build_naming_the_real_ones() {
    let h = Haproxy::start();
    let err = build(&h.socket(), &["east1", "east9"]).await.err().unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert!(message.contains("has no server `east9`"), "{message}");
    assert_eq!(hint.as_deref(), Some("its servers are east1, east2, west1"));
    assert_eq!(h.weights(), [10, 10, 20]);
}

#[tokio::test]
async fn an_unknown_backend_fails_at_build_naming_the_real_ones() {
    let h = Haproxy::start();
    let mut inj = inject(&h.socket(), &["east1"]);
    if let Some(ShiftFault {
        via: Shifter::Haproxy(hs),
        ..
    }) = &mut inj.shift
    {
        hs.backend = "ap".into();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = BuildCtx {
        lab: None,
        run_proxy_api: None,
        rng: &mut rng,
        lease: None,
    };
    let err = simian_injectors::build("evac", &inj, &mut ctx)
        .await
        .err()
        .unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert!(message.contains("has no backend `ap`"), "{message}");
    assert_eq!(hint.as_deref(), Some("its backends are app"));
}

#[tokio::test]
async fn a_socket_nobody_listens_on_fails_at_build_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock").display().to_string();
    let err = build(&socket, &["east1"]).await.err().unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert!(
        message.contains("cannot use the HAProxy admin socket"),
        "{message}"
    );
    assert!(hint.unwrap().contains("stats socket"));
}
