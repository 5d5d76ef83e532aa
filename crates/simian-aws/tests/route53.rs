//! Route53 weighted-record shifts against a moto server on 127.0.0.1.

mod support;

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecordSet};
use simian_aws::route53::{self, Route53, WeightedTarget, WeightsRevert};
use simian_aws::{AwsError, AwsOptions};
use support::{weighted_zone, weights, Moto, Zone};

fn target(zone: &str, from: &str, to: &str) -> WeightedTarget {
    WeightedTarget {
        zone: zone.to_string(),
        name: "api.example.com".to_string(),
        record_type: None,
        from: from.to_string(),
        to: to.to_string(),
    }
}

async fn setup(moto: &Moto) -> (Route53, Zone, WeightsRevert) {
    let zone = weighted_zone(moto).await;
    let r53 = Route53::connect(&moto.options()).await.unwrap();
    let original = route53::read(&r53, &target(&zone.id, "us-east", "us-west"))
        .await
        .unwrap();
    (r53, zone, original)
}

fn w(moto_weights: &std::collections::BTreeMap<String, i64>) -> (i64, i64, i64) {
    (
        moto_weights["us-east"],
        moto_weights["us-west"],
        moto_weights["canary"],
    )
}

/// The record sets of `api.example.com.` with their weights blanked: what
/// a shift must not change.
async fn all_but_weights(moto: &Moto, zone: &Zone) -> Vec<ResourceRecordSet> {
    let out = moto
        .route53()
        .await
        .list_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .send()
        .await
        .unwrap();
    let mut sets: Vec<ResourceRecordSet> = out
        .resource_record_sets()
        .iter()
        .filter(|s| s.name() == zone.name)
        .cloned()
        .map(|mut s| {
            s.weight = None;
            s
        })
        .collect();
    sets.sort_by(|a, b| a.set_identifier().cmp(&b.set_identifier()));
    sets
}

#[tokio::test]
async fn read_finds_the_zone_by_id_or_name_and_the_original_weights() {
    let moto = Moto::start();
    let (r53, zone, original) = setup(&moto).await;
    assert_eq!(original.zone_id, zone.id);
    assert_eq!(original.name, "api.example.com.");
    assert_eq!(original.record_type, "A");
    assert_eq!(
        (original.from.weight, original.to.weight),
        (100, 50),
        "{original:?}"
    );
    assert_eq!(
        original.endpoint_url.as_deref(),
        Some(moto.endpoint.as_str())
    );

    for zone_ref in [
        "example.com".to_string(),
        "example.com.".to_string(),
        format!("/hostedzone/{}", zone.id),
    ] {
        let again = route53::read(&r53, &target(&zone_ref, "us-east", "us-west"))
            .await
            .unwrap();
        assert_eq!(again, original, "zone given as {zone_ref}");
    }
}

#[tokio::test]
async fn set_share_moves_weight_in_one_batch_and_touches_nothing_else() {
    let moto = Moto::start();
    let (r53, zone, original) = setup(&moto).await;
    let untouched = all_but_weights(&moto, &zone).await;
    assert_eq!(untouched.len(), 3);

    let changes = r53.calls().of("ChangeResourceRecordSets");
    assert_eq!(
        route53::set_share(&r53, &original, 0.5).await.unwrap(),
        (50, 100)
    );
    assert_eq!(w(&weights(&moto, &zone.id, &zone.name).await), (50, 100, 5));
    assert_eq!(
        r53.calls().of("ChangeResourceRecordSets"),
        changes + 1,
        "both weights in one batch"
    );
    assert_eq!(all_but_weights(&moto, &zone).await, untouched);

    assert_eq!(
        route53::set_share(&r53, &original, 1.0).await.unwrap(),
        (0, 150)
    );
    assert_eq!(w(&weights(&moto, &zone.id, &zone.name).await), (0, 150, 5));
    assert_eq!(all_but_weights(&moto, &zone).await, untouched);

    // The same share again: nothing to change, no call.
    let changes = r53.calls().of("ChangeResourceRecordSets");
    route53::set_share(&r53, &original, 1.0).await.unwrap();
    assert_eq!(r53.calls().of("ChangeResourceRecordSets"), changes);
}

#[tokio::test]
async fn restore_puts_back_the_exact_weights_and_a_second_restore_calls_nothing() {
    let moto = Moto::start();
    let (r53, zone, original) = setup(&moto).await;
    route53::set_share(&r53, &original, 1.0).await.unwrap();

    let lines = route53::restore(&r53, &original).await.unwrap();
    assert_eq!(
        lines,
        [
            "api.example.com. A `us-east`: weight 0 → 100",
            "api.example.com. A `us-west`: weight 150 → 50",
        ]
    );
    assert_eq!(w(&weights(&moto, &zone.id, &zone.name).await), (100, 50, 5));

    let changes = r53.calls().of("ChangeResourceRecordSets");
    let again = route53::restore(&r53, &original).await.unwrap();
    assert_eq!(
        again,
        [
            "api.example.com. A `us-east`: weight 100 already",
            "api.example.com. A `us-west`: weight 50 already",
        ]
    );
    assert_eq!(r53.calls().of("ChangeResourceRecordSets"), changes);
    assert_eq!(w(&weights(&moto, &zone.id, &zone.name).await), (100, 50, 5));
}

#[tokio::test]
async fn restore_reports_a_deleted_set_and_does_not_recreate_it() {
    let moto = Moto::start();
    let (r53, zone, original) = setup(&moto).await;
    route53::set_share(&r53, &original, 0.5).await.unwrap();
    // Someone deletes us-west meanwhile.
    let sets = moto
        .route53()
        .await
        .list_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .send()
        .await
        .unwrap();
    let west = sets
        .resource_record_sets()
        .iter()
        .find(|s| s.set_identifier() == Some("us-west"))
        .unwrap()
        .clone();
    let delete = Change::builder()
        .action(ChangeAction::Delete)
        .resource_record_set(west)
        .build()
        .unwrap();
    moto.route53()
        .await
        .change_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .change_batch(ChangeBatch::builder().changes(delete).build().unwrap())
        .send()
        .await
        .unwrap();

    let lines = route53::restore(&r53, &original).await.unwrap();
    assert_eq!(
        lines,
        [
            "api.example.com. A `us-east`: weight 50 → 100",
            "api.example.com. A `us-west`: gone, not recreated",
        ]
    );
    let now = weights(&moto, &zone.id, &zone.name).await;
    assert_eq!(now.get("us-east"), Some(&100));
    assert_eq!(now.get("us-west"), None);
    // A shift cannot go on without it.
    let err = route53::set_share(&r53, &original, 0.5).await.unwrap_err();
    assert!(matches!(err, AwsError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn unknown_names_are_errors_that_say_what_exists() {
    let moto = Moto::start();
    let (r53, zone, _) = setup(&moto).await;

    let err = route53::read(&r53, &target(&zone.id, "us-east", "eu-west"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "find set identifier `eu-west` among the record sets of api.example.com. (there are: canary, us-east, us-west)"
    );

    let err = route53::read(&r53, &target("example.org", "us-east", "us-west"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "find a hosted zone named example.org.");
    let err = route53::read(&r53, &target("Z0000000000000000000", "us-east", "us-west"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "find hosted zone Z0000000000000000000");

    let other_name = WeightedTarget {
        name: "www.example.com".into(),
        ..target(&zone.id, "us-east", "us-west")
    };
    let err = route53::read(&r53, &other_name).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("find record sets named www.example.com. in hosted zone"),
        "{err}"
    );

    let wrong_type = WeightedTarget {
        record_type: Some("aaaa".into()),
        ..target(&zone.id, "us-east", "us-west")
    };
    let err = route53::read(&r53, &wrong_type).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("find record sets named api.example.com. AAAA"),
        "{err}"
    );

    let same = route53::read(&r53, &target(&zone.id, "us-east", "us-east"))
        .await
        .unwrap_err();
    assert!(
        same.to_string()
            .contains("`from` and `to` are the same set"),
        "{same}"
    );
}

#[tokio::test]
async fn the_record_round_trips_through_json_and_restores_with_a_fresh_client() {
    let moto = Moto::start();
    let (r53, zone, original) = setup(&moto).await;
    let line = serde_json::to_string(&original).unwrap();
    route53::set_share(&r53, &original, 0.75).await.unwrap();
    assert_eq!(w(&weights(&moto, &zone.id, &zone.name).await), (25, 125, 5));
    drop(r53);

    let back: WeightsRevert = serde_json::from_str(&line).unwrap();
    assert_eq!(back, original);
    let fresh = Route53::connect(&AwsOptions {
        endpoint_url: back.endpoint_url.clone(),
        credentials: Some(support::credentials()),
        ..AwsOptions::default()
    })
    .await
    .unwrap();
    route53::restore(&fresh, &back).await.unwrap();
    assert_eq!(w(&weights(&moto, &zone.id, &zone.name).await), (100, 50, 5));
}
