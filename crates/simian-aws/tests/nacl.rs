//! Region severing with network-ACL entries against a moto server on 127.0.0.1.

mod support;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::RuleAction;
use simian_aws::nacl::{self, AclEntry, Direction, NaclRevert, Side};
use simian_aws::{AwsError, AwsOptions};
use support::{acl_entries, two_vpcs, Moto, Vpc};

type Entries = Vec<(String, i32, bool, String, String)>;

fn side(region: &str, tag: &str) -> Side {
    Side {
        region: Some(region.to_string()),
        vpc_tags: BTreeMap::from([("simian:side".to_string(), tag.to_string())]),
        ..Side::default()
    }
}

fn sides() -> [Side; 2] {
    [side("us-east-1", "east"), side("us-west-2", "west")]
}

async fn entries(moto: &Moto, east: &Vpc, west: &Vpc) -> (Entries, Entries) {
    (
        acl_entries(moto, &east.region, &east.id).await,
        acl_entries(moto, &west.region, &west.id).await,
    )
}

/// `before` with a DENY of `cidr` at `number`, both directions, in each of `vpc`'s ACLs.
fn with_denies(before: &Entries, vpc: &Vpc, numbers: &[(&str, bool, i32)], cidr: &str) -> Entries {
    let mut out = before.clone();
    for acl in &vpc.acl_ids {
        for egress in [false, true] {
            let n = numbers
                .iter()
                .find(|(a, e, _)| a == acl && *e == egress)
                .map_or(1, |(_, _, n)| *n);
            out.push((acl.clone(), n, egress, "deny".into(), cidr.into()));
        }
    }
    out.sort();
    out
}

async fn add_entry(
    moto: &Moto,
    vpc: &Vpc,
    acl: &str,
    n: i32,
    egress: bool,
    action: RuleAction,
    cidr: &str,
) {
    moto.ec2_in(&vpc.region)
        .await
        .sdk()
        .create_network_acl_entry()
        .network_acl_id(acl)
        .rule_number(n)
        .egress(egress)
        .protocol("-1")
        .rule_action(action)
        .cidr_block(cidr)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn each_acl_of_each_side_denies_the_other_side_both_ways_before_rule_100() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let before = entries(&moto, &east, &west).await;

    let plan = nacl::plan(&sides(), Direction::Both, &moto.options())
        .await
        .unwrap();
    let vpcs: Vec<_> = plan
        .vpcs
        .iter()
        .map(|v| {
            (
                v.side,
                v.region.as_str(),
                v.id.as_str(),
                v.acl_ids.clone(),
                v.cidrs.clone(),
            )
        })
        .collect();
    assert_eq!(
        vpcs,
        [
            (
                0,
                "us-east-1",
                east.id.as_str(),
                east.acl_ids.clone(),
                vec![east.cidr.clone()]
            ),
            (
                1,
                "us-west-2",
                west.id.as_str(),
                west.acl_ids.clone(),
                vec![west.cidr.clone()]
            ),
        ]
    );
    assert_eq!(plan.entries.len(), 8, "2 VPCs × 2 ACLs × 2 directions");
    assert_eq!(
        entries(&moto, &east, &west).await,
        before,
        "planning changed an ACL"
    );

    let record = nacl::record(&plan, &moto.options());
    assert_eq!(record.entries, plan.entries);
    nacl::apply(&record, &moto.options()).await.unwrap();
    let after = entries(&moto, &east, &west).await;
    assert_eq!(after.0, with_denies(&before.0, &east, &[], &west.cidr));
    assert_eq!(after.1, with_denies(&before.1, &west, &[], &east.cidr));
}

#[tokio::test]
async fn revert_removes_exactly_the_entries_added_and_a_second_revert_is_harmless() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let before = entries(&moto, &east, &west).await;
    let plan = nacl::plan(&sides(), Direction::Both, &moto.options())
        .await
        .unwrap();
    let record = nacl::record(&plan, &moto.options());
    nacl::apply(&record, &moto.options()).await.unwrap();
    assert_ne!(entries(&moto, &east, &west).await, before);

    let first = nacl::revert(&record, &moto.options()).await.unwrap();
    assert_eq!((first.removed, first.absent), (8, 0));
    assert!(first.changed.is_empty());
    assert_eq!(entries(&moto, &east, &west).await, before);

    let second = nacl::revert(&record, &moto.options()).await.unwrap();
    assert_eq!((second.removed, second.absent), (0, 8));
    assert_eq!(second.summary(), ["8 entries already gone"]);
    assert_eq!(entries(&moto, &east, &west).await, before);
}

#[tokio::test]
async fn a_deny_already_at_rule_1_is_skipped_and_kept() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let custom = custom_acl(&moto, &east).await;
    add_entry(
        &moto,
        &east,
        &custom,
        1,
        false,
        RuleAction::Deny,
        "192.0.2.0/24",
    )
    .await;
    let before = entries(&moto, &east, &west).await;

    let plan = nacl::plan(&sides(), Direction::Both, &moto.options())
        .await
        .unwrap();
    let numbers: Vec<(String, bool, i32)> = plan
        .entries
        .iter()
        .filter(|e| e.region == "us-east-1")
        .map(|e| (e.acl_id.clone(), e.egress, e.rule_number))
        .collect();
    for (acl, egress, n) in &numbers {
        let want = if *acl == custom && !egress { 2 } else { 1 };
        assert_eq!(*n, want, "{acl} egress={egress}");
    }
    let record = nacl::record(&plan, &moto.options());
    nacl::apply(&record, &moto.options()).await.unwrap();
    let after = entries(&moto, &east, &west).await;
    assert_eq!(
        after.0,
        with_denies(&before.0, &east, &[(custom.as_str(), false, 2)], &west.cidr)
    );

    nacl::revert(&record, &moto.options()).await.unwrap();
    assert_eq!(
        entries(&moto, &east, &west).await,
        before,
        "the deny at #1 is someone else's"
    );
}

/// The VPC's ACL that is not its default one.
async fn custom_acl(moto: &Moto, vpc: &Vpc) -> String {
    let out = moto
        .ec2_in(&vpc.region)
        .await
        .sdk()
        .describe_network_acls()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc.id)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("default")
                .values("false")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let custom = out.network_acls()[0].network_acl_id().unwrap().to_string();
    assert!(vpc.acl_ids.contains(&custom));
    custom
}

#[tokio::test]
async fn an_entry_changed_since_is_left_alone_and_reported() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let before = entries(&moto, &east, &west).await;
    let plan = nacl::plan(&sides(), Direction::Both, &moto.options())
        .await
        .unwrap();
    let record = nacl::record(&plan, &moto.options());
    nacl::apply(&record, &moto.options()).await.unwrap();

    // Someone turns one of our denies into an allow.
    let ours: &AclEntry = record
        .entries
        .iter()
        .find(|e| e.region == "us-west-2" && !e.egress)
        .unwrap();
    moto.ec2_in("us-west-2")
        .await
        .sdk()
        .replace_network_acl_entry()
        .network_acl_id(&ours.acl_id)
        .rule_number(ours.rule_number)
        .egress(false)
        .protocol("-1")
        .rule_action(RuleAction::Allow)
        .cidr_block(&ours.cidr)
        .send()
        .await
        .unwrap();

    let reverted = nacl::revert(&record, &moto.options()).await.unwrap();
    assert_eq!(reverted.removed, 7);
    assert_eq!(
        reverted.changed,
        [format!("{} is now allow {}", ours.describe(), east.cidr)]
    );
    assert!(reverted
        .summary()
        .iter()
        .any(|l| l.starts_with("left alone, changed since: ")));
    let after = entries(&moto, &east, &west).await;
    assert_eq!(after.0, before.0);
    let mut expected = before.1.clone();
    expected.push((
        ours.acl_id.clone(),
        ours.rule_number,
        false,
        "allow".into(),
        east.cidr.clone(),
    ));
    expected.sort();
    assert_eq!(after.1, expected, "their entry stays");
}

#[tokio::test]
async fn no_room_before_the_first_allow_fails_the_plan_naming_the_acl() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let custom = custom_acl(&moto, &west).await;
    add_entry(
        &moto,
        &west,
        &custom,
        1,
        true,
        RuleAction::Allow,
        "10.9.0.0/16",
    )
    .await;
    let before = entries(&moto, &east, &west).await;

    let err = nacl::plan(&sides(), Direction::Both, &moto.options())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            AwsError::Invalid {
                what: "network ACL cut",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{custom} ({}, us-west-2) egress", west.id)),
        "{msg}"
    );
    assert!(msg.contains("before its first ALLOW rule #1"), "{msg}");
    assert_eq!(entries(&moto, &east, &west).await, before);

    // Ingress only: that ACL's egress is not touched, so there is room.
    let plan = nacl::plan(&sides(), Direction::Ingress, &moto.options())
        .await
        .unwrap();
    assert_eq!(plan.entries.len(), 4);
    assert!(plan.entries.iter().all(|e| !e.egress));
}

#[tokio::test]
async fn sides_matching_nothing_sharing_a_vpc_or_overlapping_are_refused() {
    let moto = Moto::start();
    let (east, _west) = two_vpcs(&moto).await;
    let problems = |e: AwsError| match e {
        AwsError::Invalid { problems, .. } => problems,
        other => panic!("not Invalid: {other}"),
    };

    let nowhere = [side("us-east-1", "east"), side("us-west-2", "north")];
    let p = problems(
        nacl::plan(&nowhere, Direction::Both, &moto.options())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        p,
        ["side 2 (tags simian:side=north) matches no VPC in us-west-2"]
    );

    let by_id = Side {
        region: Some("us-east-1".into()),
        vpc_ids: vec![east.id.clone(), "vpc-00000000000000000".into()],
        ..Side::default()
    };
    let p = problems(
        nacl::plan(
            &[side("us-east-1", "east"), by_id],
            Direction::Both,
            &moto.options(),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        p.contains(&"side 2: no VPC vpc-00000000000000000 in us-east-1".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(&format!("{} (us-east-1) is on both sides", east.id)),
        "{p:?}"
    );

    let overlapping = Side {
        cidrs: vec!["10.1.7.0/24".into()],
        ..side("us-west-2", "west")
    };
    let p = problems(
        nacl::plan(
            &[side("us-east-1", "east"), overlapping],
            Direction::Both,
            &moto.options(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        p,
        [format!(
            "10.1.0.0/16 of side 1 ({}) overlaps 10.1.7.0/24 of side 2 (`cidrs`)",
            east.id
        )]
    );
}

#[tokio::test]
async fn extra_cidrs_are_denied_too_and_ipv6_blocks_go_in_as_ipv6() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let before = entries(&moto, &east, &west).await;
    let west_side = Side {
        // 10.2.9.0/24 is inside the VPC's own block: no entry of its own.
        cidrs: vec![
            "10.2.9.0/24".into(),
            "192.168.0.0/16".into(),
            "fd00:2::/32".into(),
        ],
        ..side("us-west-2", "west")
    };
    let plan = nacl::plan(
        &[side("us-east-1", "east"), west_side],
        Direction::Ingress,
        &moto.options(),
    )
    .await
    .unwrap();
    let east_custom: Vec<(i32, String)> = plan
        .entries
        .iter()
        .filter(|e| e.acl_id == east.acl_ids[0])
        .map(|e| (e.rule_number, e.cidr.clone()))
        .collect();
    assert_eq!(
        east_custom,
        [
            (1, "10.2.0.0/16".into()),
            (2, "192.168.0.0/16".into()),
            (3, "fd00:2::/32".into())
        ]
    );
    let record = nacl::record(&plan, &moto.options());
    nacl::apply(&record, &moto.options()).await.unwrap();
    let denied: Vec<_> = entries(&moto, &east, &west)
        .await
        .0
        .into_iter()
        .filter(|e| e.0 == east.acl_ids[0] && e.3 == "deny" && e.1 < 100)
        .map(|e| e.4)
        .collect();
    assert_eq!(denied, ["10.2.0.0/16", "192.168.0.0/16", "fd00:2::/32"]);
    let reverted = nacl::revert(&record, &moto.options()).await.unwrap();
    assert_eq!(
        reverted.removed,
        2 * 3 + 2,
        "east: 3 blocks × 2 ACLs; west: 1 × 2"
    );
    assert_eq!(entries(&moto, &east, &west).await, before);
}

#[tokio::test]
async fn the_record_round_trips_through_json_and_reverts_in_a_fresh_process() {
    let moto = Moto::start();
    let (east, west) = two_vpcs(&moto).await;
    let before = entries(&moto, &east, &west).await;
    let plan = nacl::plan(&sides(), Direction::Both, &moto.options())
        .await
        .unwrap();
    let record = nacl::record(&plan, &moto.options());
    let line = serde_json::to_string(&record).unwrap();
    nacl::apply(&record, &moto.options()).await.unwrap();

    // As `simian recover` would: the journal line and the standard chain.
    let back: NaclRevert = serde_json::from_str(&line).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.endpoint_url.as_deref(), Some(moto.endpoint.as_str()));
    let base = AwsOptions {
        credentials: Some(support::credentials()),
        ..AwsOptions::default()
    };
    let reverted = nacl::revert(&back, &base).await.unwrap();
    assert_eq!(reverted.removed, 8);
    assert_eq!(entries(&moto, &east, &west).await, before);
}
