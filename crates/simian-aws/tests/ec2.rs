//! The EC2 zone kill against a moto server on 127.0.0.1.

mod support;

use simian_aws::ec2::{
    apply, plan, preflight, revert, Action, Ec2, Ec2Revert, Selection, Selector,
};
use simian_aws::{AwsError, AwsOptions};
use support::{assert_all, fleet, run, states, Moto, OPT_IN};

#[tokio::test]
async fn stops_exactly_the_opted_in_running_instances_of_the_zone() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let f = fleet(&ec2, 3, 2, 2).await;
    // An opted-in instance of the zone that is already stopped: not eligible.
    let idle = run(&ec2, "us-east-1a", 1, &[OPT_IN]).await;
    ec2.sdk()
        .stop_instances()
        .set_instance_ids(Some(idle.clone()))
        .send()
        .await
        .unwrap();

    let planned = plan(&ec2, &Selector::zone("us-east-1a"), Selection::All, 1)
        .await
        .unwrap();
    let zone_a = &f.opted_in["us-east-1a"];
    assert_eq!(&planned.targets, zone_a);
    let eligible: Vec<_> = planned.eligible.iter().map(|i| i.id.clone()).collect();
    assert_eq!(&eligible, zone_a);
    assert!(planned.rejected.is_empty());
    assert_eq!(
        planned.fleet, 9,
        "the opted-in running instances of the region"
    );
    assert!(planned
        .eligible
        .iter()
        .all(|i| i.zone.as_deref() == Some("us-east-1a")
            && i.state.as_deref() == Some("running")
            && i.name.as_deref() == Some("web-us-east-1a")));

    let applied = apply(&ec2, Action::Stop, &planned.targets).await.unwrap();
    let changed: Vec<_> = applied.changed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(&changed, zone_a);

    assert_all(&ec2, zone_a, "stopped").await;
    assert_all(&ec2, &idle, "stopped").await;
    let others: Vec<String> = f
        .all()
        .into_iter()
        .filter(|id| !zone_a.contains(id))
        .collect();
    assert_eq!(others.len(), 3 * 7 - 3);
    assert_all(&ec2, &others, "running").await;
}

#[tokio::test]
async fn an_instance_ec2_returns_without_the_exact_opt_in_tag_is_never_selected() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let f = fleet(&ec2, 2, 2, 1).await;
    // A wildcard value: EC2 (and moto) match it against every value of the
    // key, `true` and `false` alike; the client-side check wants it literally.
    let selector = Selector {
        opt_in: ("simian:opt-in".into(), "*".into()),
        ..Selector::zone("us-east-1b")
    };
    let planned = plan(&ec2, &selector, Selection::All, 1).await.unwrap();
    assert!(planned.targets.is_empty(), "{:?}", planned.targets);
    assert!(planned.eligible.is_empty());
    let mut rejected: Vec<_> = planned.rejected.iter().map(|i| i.id.clone()).collect();
    rejected.sort();
    // The region's fleet is listed once for the zone and the blast radius' denominator.
    let mut expected: Vec<String> = [&f.opted_in, &f.opted_out]
        .iter()
        .flat_map(|m| m.values().flatten().cloned())
        .collect();
    expected.sort();
    assert_eq!(
        rejected, expected,
        "EC2 did return them: the check is what refused them"
    );
}

#[tokio::test]
async fn revert_starts_them_again_and_a_second_revert_is_harmless() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let f = fleet(&ec2, 4, 0, 1).await;
    let planned = plan(&ec2, &Selector::zone("us-east-1c"), Selection::All, 1)
        .await
        .unwrap();
    let record = Ec2Revert::new(&ec2, Action::Stop, planned.targets.clone());
    assert!(!record.irreversible);
    apply(&ec2, Action::Stop, &planned.targets).await.unwrap();
    assert_all(&ec2, &f.opted_in["us-east-1c"], "stopped").await;

    let first = revert(&ec2, &record).await.unwrap();
    assert_eq!(first.started, f.opted_in["us-east-1c"]);
    assert!(first.already_running.is_empty() && first.missing.is_empty());
    assert_all(&ec2, &f.all(), "running").await;

    let starts = ec2.calls().of("StartInstances");
    let second = revert(&ec2, &record).await.unwrap();
    assert!(second.started.is_empty(), "{second:?}");
    assert_eq!(second.already_running, f.opted_in["us-east-1c"]);
    assert_eq!(
        ec2.calls().of("StartInstances"),
        starts,
        "nothing to start twice"
    );
    assert_all(&ec2, &f.all(), "running").await;
}

#[tokio::test]
async fn revert_works_from_a_json_round_tripped_record_in_a_fresh_client() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let f = fleet(&ec2, 3, 1, 1).await;
    let planned = plan(&ec2, &Selector::zone("us-east-1a"), Selection::All, 1)
        .await
        .unwrap();
    let record = Ec2Revert::new(&ec2, Action::Stop, planned.targets.clone());
    let line = serde_json::to_string(&record).unwrap();
    apply(&ec2, Action::Stop, &planned.targets).await.unwrap();
    drop(ec2);

    // As `simian recover` would: the journal line and the standard chain.
    let back: Ec2Revert = serde_json::from_str(&line).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.region, "us-east-1");
    assert_eq!(back.endpoint_url.as_deref(), Some(moto.endpoint.as_str()));
    let base = AwsOptions {
        credentials: Some(support::credentials()),
        ..AwsOptions::default()
    };
    let fresh = Ec2::for_record(&back, base).await.unwrap();
    let reverted = revert(&fresh, &back).await.unwrap();
    assert_eq!(reverted.started, f.opted_in["us-east-1a"]);
    assert_all(&fresh, &f.all(), "running").await;
}

#[tokio::test]
async fn revert_reports_instances_gone_or_terminated_without_failing() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ids = run(&ec2, "us-east-1a", 3, &[OPT_IN]).await;
    apply(&ec2, Action::Stop, &ids).await.unwrap();
    // One was terminated since, and the record names one EC2 never had.
    ec2.sdk()
        .terminate_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let ghost = "i-0123456789abcdef0".to_string();
    let record = Ec2Revert::new(
        &ec2,
        Action::Stop,
        [ids.clone(), vec![ghost.clone()]].concat(),
    );

    let reverted = revert(&ec2, &record).await.unwrap();
    assert_eq!(reverted.started, ids[1..]);
    assert_eq!(reverted.terminated, [ids[0].clone()]);
    assert_eq!(reverted.missing, [ghost]);
    assert_all(&ec2, &ids[1..], "running").await;
    assert_eq!(reverted.summary().len(), 3, "{:?}", reverted.summary());
}

#[tokio::test]
async fn count_and_percent_pick_the_right_number_and_a_seed_replays() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ids = run(&ec2, "us-east-1b", 20, &[OPT_IN]).await;
    run(&ec2, "us-east-1a", 5, &[OPT_IN]).await;
    let sel = Selector::zone("us-east-1b");

    let a = plan(&ec2, &sel, Selection::Count(5), 42).await.unwrap();
    assert_eq!(a.eligible.len(), 20);
    assert_eq!(a.targets.len(), 5);
    assert!(a.targets.iter().all(|t| ids.contains(t)));
    let again = plan(&ec2, &sel, Selection::Count(5), 42).await.unwrap();
    assert_eq!(again.targets, a.targets, "same seed, same ids");
    let other = plan(&ec2, &sel, Selection::Count(5), 43).await.unwrap();
    assert_ne!(other.targets, a.targets, "another seed draws other ids");

    let p = plan(&ec2, &sel, Selection::Percent(25.0), 42)
        .await
        .unwrap();
    assert_eq!(p.targets.len(), 5);
    assert_eq!(
        plan(&ec2, &sel, Selection::Percent(25.0), 42)
            .await
            .unwrap()
            .targets,
        p.targets
    );
    let p = plan(&ec2, &sel, Selection::Percent(12.0), 42)
        .await
        .unwrap();
    assert_eq!(p.targets.len(), 3, "12% of 20 is 2.4, rounded up");
    let all = plan(&ec2, &sel, Selection::Count(50), 1).await.unwrap();
    assert_eq!(
        all.targets, ids,
        "a count above the eligible takes them all"
    );

    // Only the picked ones stop.
    apply(&ec2, Action::Stop, &a.targets).await.unwrap();
    let now = states(&ec2, &ids).await;
    let stopped: Vec<_> = ids
        .iter()
        .filter(|i| now[*i] == "stopped")
        .cloned()
        .collect();
    assert_eq!(stopped, a.targets);
}

#[tokio::test]
async fn terminate_is_marked_irreversible_and_revert_undoes_nothing() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ids = run(&ec2, "us-east-1c", 2, &[OPT_IN]).await;
    let record = Ec2Revert::new(&ec2, Action::Terminate, ids.clone());
    assert!(record.irreversible);
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["irreversible"], true);
    assert_eq!(json["action"], "terminate");
    assert_eq!(
        Action::Terminate.revert_text(),
        "none: terminating is irreversible"
    );

    apply(&ec2, Action::Terminate, &ids).await.unwrap();
    let before = ec2.calls().total();
    let reverted = revert(&ec2, &record).await.unwrap();
    assert!(reverted.irreversible);
    assert!(reverted.started.is_empty());
    assert!(reverted.summary()[0].starts_with("nothing to undo"));
    assert_eq!(
        ec2.calls().total(),
        before,
        "no API call for an irreversible record"
    );
    assert_all(&ec2, &ids, "terminated").await;
}

#[tokio::test]
async fn stopping_2500_instances_takes_3_stop_calls() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ids = run(&ec2, "us-east-1a", 2500, &[OPT_IN]).await;
    let planned = plan(&ec2, &Selector::zone("us-east-1a"), Selection::All, 1)
        .await
        .unwrap();
    assert!(
        planned.targets == ids,
        "planned {} of 2500",
        planned.targets.len()
    );

    let before = ec2.calls().of("StopInstances");
    let applied = apply(&ec2, Action::Stop, &planned.targets).await.unwrap();
    assert_eq!(ec2.calls().of("StopInstances") - before, 3);
    assert_eq!(applied.batches, 3);
    assert_eq!(applied.changed.len(), 2500);
    assert_all(&ec2, &ids, "stopped").await;

    let record = Ec2Revert::new(&ec2, Action::Stop, ids.clone());
    let reverted = revert(&ec2, &record).await.unwrap();
    assert_eq!(reverted.started.len(), 2500);
    assert_eq!(ec2.calls().of("StartInstances"), 3);
    assert_all(&ec2, &ids, "running").await;
}

#[tokio::test]
async fn preflight_dry_run_passes_and_changes_nothing() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let ids = run(&ec2, "us-east-1a", 2, &[OPT_IN]).await;
    preflight(&ec2, Action::Stop, &ids).await.unwrap();
    preflight(&ec2, Action::Terminate, &ids).await.unwrap();
    assert_eq!(ec2.calls().of("StopInstances"), 1);
    assert_all(&ec2, &ids, "running").await;
}

#[tokio::test]
async fn a_record_of_another_region_is_refused() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let mut record = Ec2Revert::new(&ec2, Action::Stop, vec!["i-1".into()]);
    record.region = "eu-west-1".into();
    let err = revert(&ec2, &record).await.unwrap_err();
    assert!(matches!(err, AwsError::RegionMismatch { .. }), "{err}");
    assert_eq!(ec2.calls().total(), 0);
}

#[tokio::test]
async fn an_invalid_selection_is_refused_with_every_problem_before_any_call() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let sel = Selector {
        states: vec!["runing".into()],
        ..Selector::zone("")
    };
    let err = plan(&ec2, &sel, Selection::Percent(120.0), 1)
        .await
        .unwrap_err();
    let AwsError::Invalid {
        what: "EC2 selector",
        problems,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(ec2.calls().total(), 0);
}
