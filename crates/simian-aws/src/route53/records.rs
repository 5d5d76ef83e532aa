//! Reading and changing the weights of two weighted record sets of one name.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeInfo, ChangeStatus, ResourceRecordSet, RrType,
};
use serde::{Deserialize, Serialize};

use crate::route53::{weights_at, Route53};
use crate::AwsError;

/// How often a change is checked for `INSYNC`, and for how long at most.
pub const SYNC_POLL: Duration = Duration::from_secs(2);
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// Record sets per ListResourceRecordSets page (Route53 allows 300), and
/// pages of one name before giving up.
const PAGE_SIZE: i32 = 100;
const MAX_PAGES: usize = 100;

/// The two weighted record sets a shift moves traffic between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    /// The hosted zone: its id (`Z123...` or `/hostedzone/Z123...`) or its
    /// name (`example.com`).
    pub zone: String,
    /// The record name, e.g. `api.example.com` (trailing dot optional).
    pub name: String,
    /// `None`: the one type both sets have.
    #[serde(default)]
    pub record_type: Option<String>,
    /// The `SetIdentifier` traffic moves from.
    pub from: String,
    /// The `SetIdentifier` traffic moves to.
    pub to: String,
}

/// The original weights of both sets, serialised into the journal before
/// any weight changes: restoring needs nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsRevert {
    /// The endpoint override the shift went to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The hosted zone id, without `/hostedzone/`.
    pub zone_id: String,
    /// The record name as Route53 has it (lowercase, trailing dot).
    pub name: String,
    pub record_type: String,
    pub from: SetWeight,
    pub to: SetWeight,
}

/// One record set's weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetWeight {
    pub set_identifier: String,
    pub weight: i64,
}

/// Finds the zone and both record sets and reads their weights: the record
/// to write before a shift. Errors name what is missing (listing the set
/// identifiers there are) or why a set cannot be shifted.
pub async fn read(r53: &Route53, target: &WeightedTarget) -> Result<WeightsRevert, AwsError> {
    let mut problems = Vec::new();
    for (field, value) in [
        ("zone", &target.zone),
        ("name", &target.name),
        ("from", &target.from),
        ("to", &target.to),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("`{field}` is empty"));
        }
    }
    if target.from == target.to && !target.from.is_empty() {
        problems.push(format!(
            "`from` and `to` are the same set (`{}`)",
            target.from
        ));
    }
    if target
        .record_type
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        problems.push("`record_type` is empty (leave it out for the sets' own)".to_string());
    }
    if !problems.is_empty() {
        return Err(AwsError::Invalid {
            what: "Route53 target",
            problems,
        });
    }
    let zone_id = zone_id(r53, &target.zone).await?;
    let name = normalise(&target.name);
    let record_type = target
        .record_type
        .as_deref()
        .map(|t| RrType::from(t.trim().to_uppercase().as_str()));
    let sets = sets_named(r53, &zone_id, &name, record_type.as_ref()).await?;
    let (from, to) = pick(&sets, &name, &zone_id, target)?;
    Ok(WeightsRevert {
        endpoint_url: r53.endpoint_url().map(str::to_string),
        zone_id,
        name: from.name().to_string(),
        record_type: from.r#type().as_str().to_string(),
        from: SetWeight {
            set_identifier: target.from.clone(),
            weight: from.weight().unwrap_or_default(),
        },
        to: SetWeight {
            set_identifier: target.to.clone(),
            weight: to.weight().unwrap_or_default(),
        },
    })
}

/// Sets the weights to [`weights_at`]`(original, share)`: one change batch
/// of two UPSERTs, each the record set as it is now with only its weight
/// changed (TTL, values or alias target, health check kept), so both change
/// together; then waits for the change to be `INSYNC`. No call when the
/// weights are already those.
pub async fn set_share(
    r53: &Route53,
    original: &WeightsRevert,
    share: f64,
) -> Result<(i64, i64), AwsError> {
    if share.is_nan() {
        return Err(AwsError::Invalid {
            what: "traffic share",
            problems: vec!["the share is not a number".to_string()],
        });
    }
    let (f, t) = weights_at(original, share);
    let (from, to) = current(r53, original).await?;
    let mut now = Vec::new();
    for (want, set) in [(&original.from, from), (&original.to, to)] {
        let what = || label(original, &want.set_identifier);
        let set = set.ok_or_else(|| AwsError::NotFound(format!("{} (deleted since)", what())))?;
        if set.weight().is_none() {
            return Err(AwsError::Unsuitable {
                target: what(),
                reason: "it is no longer a weighted record set".to_string(),
            });
        }
        now.push(set);
    }
    if now[0].weight() == Some(f) && now[1].weight() == Some(t) {
        return Ok((f, t));
    }
    let [from, to]: [ResourceRecordSet; 2] = now.try_into().expect("two sets");
    let changes = vec![with_weight(from, f), with_weight(to, t)];
    let comment = format!("simian: shift {:.0}% of the traffic", share * 100.0);
    change(r53, &original.zone_id, changes, &comment).await?;
    Ok((f, t))
}

/// Puts the original weights back (one batch, waiting for `INSYNC`); a set
/// that no longer exists is reported, not recreated; no call when the
/// weights are already the originals. Returns one line per set.
pub async fn restore(r53: &Route53, original: &WeightsRevert) -> Result<Vec<String>, AwsError> {
    let (from, to) = match current(r53, original).await {
        Ok(sets) => sets,
        Err(e) if e.code() == Some("NoSuchHostedZone") => {
            return Ok(vec![format!(
                "hosted zone {} gone: nothing restored",
                original.zone_id
            )])
        }
        Err(e) => return Err(e),
    };
    let mut lines = Vec::new();
    let mut changes = Vec::new();
    for (want, set) in [(&original.from, from), (&original.to, to)] {
        let what = label(original, &want.set_identifier);
        match set {
            None => lines.push(format!("{what}: gone, not recreated")),
            Some(s) => match s.weight() {
                None => lines.push(format!("{what}: no longer weighted, left alone")),
                Some(w) if w == want.weight => {
                    lines.push(format!("{what}: weight {w} already"));
                }
                Some(w) => {
                    lines.push(format!("{what}: weight {w} → {}", want.weight));
                    changes.push(with_weight(s, want.weight));
                }
            },
        }
    }
    if !changes.is_empty() {
        change(
            r53,
            &original.zone_id,
            changes,
            "simian: restore the weights",
        )
        .await?;
    }
    Ok(lines)
}

/// `api.example.com. A `us-east``
fn label(o: &WeightsRevert, set_identifier: &str) -> String {
    format!("{} {} `{set_identifier}`", o.name, o.record_type)
}

/// Both sets of the record as they are now (`None`: gone).
async fn current(
    r53: &Route53,
    o: &WeightsRevert,
) -> Result<(Option<ResourceRecordSet>, Option<ResourceRecordSet>), AwsError> {
    let record_type = RrType::from(o.record_type.as_str());
    let sets = sets_named(r53, &o.zone_id, &o.name, Some(&record_type)).await?;
    let find = |id: &str| {
        sets.iter()
            .find(|s| s.set_identifier() == Some(id))
            .cloned()
    };
    Ok((find(&o.from.set_identifier), find(&o.to.set_identifier)))
}

fn with_weight(mut set: ResourceRecordSet, weight: i64) -> ResourceRecordSet {
    set.weight = Some(weight);
    set
}

/// Submits `sets` as UPSERTs in one batch and waits for it to be in sync.
async fn change(
    r53: &Route53,
    zone_id: &str,
    sets: Vec<ResourceRecordSet>,
    comment: &str,
) -> Result<(), AwsError> {
    let built = |e: aws_sdk_route53::error::BuildError| AwsError::Invalid {
        what: "Route53 change batch",
        problems: vec![e.to_string()],
    };
    let changes = sets
        .into_iter()
        .map(|s| {
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(s)
                .build()
                .map_err(built)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let batch = ChangeBatch::builder()
        .set_changes(Some(changes))
        .comment(comment)
        .build()
        .map_err(built)?;
    let out = r53
        .sdk()
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| AwsError::api("ChangeResourceRecordSets", e))?;
    match out.change_info() {
        Some(info) => wait_in_sync(r53, info, SYNC_POLL, SYNC_TIMEOUT).await,
        None => Ok(()),
    }
}

/// Polls GetChange every `poll` until the change is `INSYNC`, at most `timeout`.
async fn wait_in_sync(
    r53: &Route53,
    info: &ChangeInfo,
    poll: Duration,
    timeout: Duration,
) -> Result<(), AwsError> {
    if *info.status() == ChangeStatus::Insync {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let polls = timeout.as_millis().div_ceil(poll.as_millis().max(1));
    for _ in 0..polls {
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + poll)).await;
        let out = r53
            .sdk()
            .get_change()
            .id(info.id())
            .send()
            .await
            .map_err(|e| AwsError::api("GetChange", e))?;
        if out.change_info().map(ChangeInfo::status) == Some(&ChangeStatus::Insync) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    Err(AwsError::NotInSync {
        change_id: info.id().to_string(),
        waited_secs: timeout.as_secs(),
    })
}

/// A record name as Route53 lists it: lowercase, `*` escaped, trailing dot.
fn normalise(name: &str) -> String {
    let mut n = name.trim().to_lowercase().replace('*', "\\052");
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// The hosted zone's id (without `/hostedzone/`), from its id or its name.
async fn zone_id(r53: &Route53, zone: &str) -> Result<String, AwsError> {
    let zone = zone.trim();
    if zone.starts_with("/hostedzone/") || !zone.contains('.') {
        let id = zone.trim_start_matches("/hostedzone/");
        return match r53.sdk().get_hosted_zone().id(id).send().await {
            Ok(out) => Ok(out
                .hosted_zone()
                .map_or(id, |z| z.id().trim_start_matches("/hostedzone/"))
                .to_string()),
            Err(e) => {
                let e = AwsError::api("GetHostedZone", e);
                match e.code() {
                    Some("NoSuchHostedZone" | "InvalidInput") => {
                        Err(AwsError::NotFound(format!("hosted zone {id}")))
                    }
                    _ => Err(e),
                }
            }
        };
    }
    let name = normalise(zone);
    let out = r53
        .sdk()
        .list_hosted_zones_by_name()
        .dns_name(&name)
        .max_items(100)
        .send()
        .await
        .map_err(|e| AwsError::api("ListHostedZonesByName", e))?;
    let ids: Vec<String> = out
        .hosted_zones()
        .iter()
        .filter(|z| normalise(z.name()) == name)
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .collect();
    match ids.as_slice() {
        [] => Err(AwsError::NotFound(format!("a hosted zone named {name}"))),
        [id] => Ok(id.clone()),
        _ => Err(AwsError::Unsuitable {
            target: format!("hosted zone {name}"),
            reason: format!(
                "{} zones have that name ({}): give the zone's id",
                ids.len(),
                ids.join(", ")
            ),
        }),
    }
}

/// The record sets named `name` (of `record_type` if given), paginated.
async fn sets_named(
    r53: &Route53,
    zone_id: &str,
    name: &str,
    record_type: Option<&RrType>,
) -> Result<Vec<ResourceRecordSet>, AwsError> {
    let mut out: Vec<ResourceRecordSet> = Vec::new();
    let mut start = (name.to_string(), record_type.cloned(), None::<String>);
    for _ in 0..MAX_PAGES {
        let page = r53
            .sdk()
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .start_record_name(&start.0)
            .set_start_record_type(start.1.clone())
            .set_start_record_identifier(start.2.clone())
            .max_items(PAGE_SIZE)
            .send()
            .await
            .map_err(|e| AwsError::api("ListResourceRecordSets", e))?;
        let mut past = false;
        for s in page.resource_record_sets() {
            if normalise(s.name()) != name {
                // Listed in name order: the name's sets are all behind us.
                past = true;
                break;
            }
            if record_type.is_none_or(|t| s.r#type() == t) {
                out.push(s.clone());
            }
        }
        let next = (
            page.next_record_name(),
            page.next_record_type(),
            page.next_record_identifier(),
        );
        match next {
            (Some(n), t, i) if page.is_truncated() && !past && normalise(n) == name => {
                let next = (n.to_string(), t.cloned(), i.map(str::to_string));
                if next == start {
                    break; // no progress (a server without identifiers): stop
                }
                start = next;
            }
            _ => break,
        }
    }
    // A page boundary may repeat a set.
    let mut seen = BTreeSet::new();
    out.retain(|s| {
        seen.insert((
            s.r#type().as_str().to_string(),
            s.set_identifier().map(str::to_string),
        ))
    });
    Ok(out)
}

/// The `from` and `to` sets among `sets` (all named `name`), with a type
/// both have, each weighted.
fn pick<'a>(
    sets: &'a [ResourceRecordSet],
    name: &str,
    zone_id: &str,
    target: &WeightedTarget,
) -> Result<(&'a ResourceRecordSet, &'a ResourceRecordSet), AwsError> {
    let of_type = target
        .record_type
        .as_deref()
        .map(|t| format!(" {}", t.trim().to_uppercase()))
        .unwrap_or_default();
    if sets.is_empty() {
        return Err(AwsError::NotFound(format!(
            "record sets named {name}{of_type} in hosted zone {zone_id}"
        )));
    }
    let ids: BTreeSet<&str> = sets.iter().filter_map(|s| s.set_identifier()).collect();
    for id in [&target.from, &target.to] {
        if !ids.contains(id.as_str()) {
            let there = if ids.is_empty() {
                "none: its record sets have no set identifier".to_string()
            } else {
                ids.iter().copied().collect::<Vec<_>>().join(", ")
            };
            return Err(AwsError::NotFound(format!(
                "set identifier `{id}` among the record sets of {name}{of_type} (there are: {there})"
            )));
        }
    }
    let types = |id: &str| -> BTreeSet<&str> {
        sets.iter()
            .filter(|s| s.set_identifier() == Some(id))
            .map(|s| s.r#type().as_str())
            .collect()
    };
    let (tf, tt) = (types(&target.from), types(&target.to));
    let common: Vec<&str> = tf.intersection(&tt).copied().collect();
    let record_type = match common.as_slice() {
        [one] => *one,
        [] => {
            return Err(AwsError::Unsuitable {
                target: name.to_string(),
                reason: format!(
                    "`{}` is {} and `{}` is {}: they share no record type",
                    target.from,
                    tf.iter().copied().collect::<Vec<_>>().join("/"),
                    target.to,
                    tt.iter().copied().collect::<Vec<_>>().join("/"),
                ),
            })
        }
        many => {
            return Err(AwsError::Unsuitable {
                target: name.to_string(),
                reason: format!(
                    "`{}` and `{}` both have {} record sets: set `record_type`",
                    target.from,
                    target.to,
                    many.join(", ")
                ),
            })
        }
    };
    let get = |id: &str| -> Result<&'a ResourceRecordSet, AwsError> {
        let s = sets
            .iter()
            .find(|s| s.set_identifier() == Some(id) && s.r#type().as_str() == record_type)
            .expect("the type was found among this identifier's sets");
        if s.weight().is_none() {
            return Err(AwsError::Unsuitable {
                target: format!("{name} {record_type} `{id}`"),
                reason: format!(
                    "it is not a weighted record set (it has no weight; its routing is {})",
                    routing(s)
                ),
            });
        }
        Ok(s)
    };
    Ok((get(&target.from)?, get(&target.to)?))
}

/// The routing policy of a record set that has a set identifier.
fn routing(s: &ResourceRecordSet) -> &'static str {
    if s.failover().is_some() {
        "failover"
    } else if s.region().is_some() {
        "latency"
    } else if s.geo_location().is_some() {
        "geolocation"
    } else if s.geo_proximity_location().is_some() {
        "geoproximity"
    } else if s.cidr_routing_config().is_some() {
        "IP-based"
    } else if s.multi_value_answer().is_some() {
        "multivalue answer"
    } else {
        "not one simian knows"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_route53::types::ResourceRecordSetFailover;

    fn set(id: &str, t: RrType, weight: Option<i64>) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name("api.example.com.")
            .r#type(t)
            .set_identifier(id)
            .set_weight(weight)
            .build()
            .unwrap()
    }

    fn target(from: &str, to: &str) -> WeightedTarget {
        WeightedTarget {
            zone: "Z1".into(),
            name: "api.example.com".into(),
            record_type: None,
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn names_are_compared_as_route53_lists_them() {
        assert_eq!(normalise("API.example.com"), "api.example.com.");
        assert_eq!(normalise("api.example.com."), "api.example.com.");
        assert_eq!(normalise("*.example.com"), "\\052.example.com.");
    }

    #[test]
    fn an_unknown_set_identifier_lists_those_there_are() {
        let sets = [
            set("us-east", RrType::A, Some(100)),
            set("us-west", RrType::A, Some(50)),
        ];
        let e = pick(
            &sets,
            "api.example.com.",
            "Z1",
            &target("us-east", "eu-west"),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("find set identifier `eu-west`"), "{msg}");
        assert!(msg.contains("(there are: us-east, us-west)"), "{msg}");
    }

    #[test]
    fn the_type_is_the_one_both_sets_have() {
        let sets = [
            set("us-east", RrType::A, Some(100)),
            set("us-east", RrType::Aaaa, Some(100)),
            set("us-west", RrType::A, Some(50)),
        ];
        let (f, t) = pick(
            &sets,
            "api.example.com.",
            "Z1",
            &target("us-east", "us-west"),
        )
        .unwrap();
        assert_eq!((f.r#type(), t.r#type()), (&RrType::A, &RrType::A));
        let both = [
            set("us-east", RrType::A, Some(1)),
            set("us-east", RrType::Aaaa, Some(1)),
            set("us-west", RrType::A, Some(1)),
            set("us-west", RrType::Aaaa, Some(1)),
        ];
        let e = pick(
            &both,
            "api.example.com.",
            "Z1",
            &target("us-east", "us-west"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("set `record_type`"), "{e}");
    }

    #[test]
    fn a_set_without_weight_is_refused_with_its_routing() {
        let mut failover = set("us-east", RrType::A, None);
        failover.failover = Some(ResourceRecordSetFailover::Primary);
        let sets = [failover, set("us-west", RrType::A, Some(50))];
        let e = pick(
            &sets,
            "api.example.com.",
            "Z1",
            &target("us-east", "us-west"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "use api.example.com. A `us-east`: it is not a weighted record set (it has no weight; its routing is failover)"
        );
    }

    #[test]
    fn the_journal_form_is_stable_and_strict() {
        let r = WeightsRevert {
            endpoint_url: None,
            zone_id: "Z1".into(),
            name: "api.example.com.".into(),
            record_type: "A".into(),
            from: SetWeight {
                set_identifier: "us-east".into(),
                weight: 100,
            },
            to: SetWeight {
                set_identifier: "us-west".into(),
                weight: 50,
            },
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"zone_id":"Z1","name":"api.example.com.","record_type":"A","from":{"set_identifier":"us-east","weight":100},"to":{"set_identifier":"us-west","weight":50}}"#
        );
        assert_eq!(serde_json::from_str::<WeightsRevert>(&json).unwrap(), r);
        assert!(serde_json::from_str::<WeightsRevert>(&json.replace("zone_id", "zone")).is_err());
    }
}
