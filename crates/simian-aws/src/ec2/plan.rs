//! Resolving a zone kill's targets: describe (paginated, filtered by EC2),
//! re-check on this side, pick with the seed. Changes nothing.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ec2::{pick, Ec2, Selection, Selector};
use crate::AwsError;

/// DescribeInstances' largest page (its `MaxResults` accepts 5 to 1000).
const PAGE_SIZE: i32 = 1000;

/// One instance as a plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub zone: Option<String>,
    pub state: Option<String>,
    /// The `Name` tag.
    pub name: Option<String>,
}

/// The instances a selector matches.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Eligible {
    /// Sorted by id.
    pub instances: Vec<Instance>,
    /// Returned by EC2 for the filters but refused by the client-side check
    /// (no opt-in tag, another zone...): a sign a filter is wrong. Never targets.
    pub rejected: Vec<Instance>,
}

/// What a zone kill will hit: the dry run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Planned {
    /// Every instance the selector admits, sorted by id.
    pub eligible: Vec<Instance>,
    /// How many instances the selector admits in every zone of the region: the
    /// blast radius' denominator (a zone kill hits all of a zone, one zone of the fleet).
    pub fleet: usize,
    /// The ids picked among them, sorted.
    pub targets: Vec<String>,
    /// See [`Eligible::rejected`].
    pub rejected: Vec<Instance>,
}

/// Describes the instances `selector` admits.
pub async fn eligible(ec2: &Ec2, selector: &Selector) -> Result<Eligible, AwsError> {
    let problems = selector.problems();
    if !problems.is_empty() {
        return Err(AwsError::Invalid {
            what: "EC2 selector",
            problems,
        });
    }
    let mut pages = ec2
        .sdk()
        .describe_instances()
        .set_filters(Some(selector.filters()))
        .into_paginator()
        .page_size(PAGE_SIZE)
        .items()
        .send();
    // Keyed by id: a paginated listing of a changing fleet may repeat one.
    let mut admitted = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    while let Some(reservation) = pages.next().await {
        let reservation = reservation.map_err(|e| AwsError::api("DescribeInstances", e))?;
        for i in reservation.instances() {
            let Some(id) = i.instance_id() else { continue };
            let tags: BTreeMap<String, String> = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            let inst = Instance {
                id: id.to_string(),
                zone: i
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .map(str::to_string),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string()),
                name: tags.get("Name").cloned(),
            };
            if selector.admits(&inst, &tags) {
                admitted.insert(inst.id.clone(), inst);
            } else {
                rejected.insert(inst.id.clone(), inst);
            }
        }
    }
    Ok(Eligible {
        instances: admitted.into_values().collect(),
        rejected: rejected.into_values().collect(),
    })
}

/// Resolves the targets: the eligible instances, and `selection` of them
/// drawn with a ChaCha8 RNG seeded with `seed` (same fleet + same seed = same ids).
pub async fn plan(
    ec2: &Ec2,
    selector: &Selector,
    selection: Selection,
    seed: u64,
) -> Result<Planned, AwsError> {
    let mut problems = selector.problems();
    problems.extend(selection.problems());
    if !problems.is_empty() {
        return Err(AwsError::Invalid {
            what: "EC2 selector",
            problems,
        });
    }
    // One listing of the whole region's fleet serves both the zone and the denominator.
    let region_wide = Selector {
        zone: None,
        ..selector.clone()
    };
    let Eligible {
        instances: fleet,
        rejected,
    } = eligible(ec2, &region_wide).await?;
    let fleet_size = fleet.len();
    let instances: Vec<Instance> = match &selector.zone {
        Some(zone) => fleet
            .into_iter()
            .filter(|i| i.zone.as_deref() == Some(zone.as_str()))
            .collect(),
        None => fleet,
    };
    let targets = pick(&instances, selection, &mut ChaCha8Rng::seed_from_u64(seed));
    Ok(Planned {
        eligible: instances,
        fleet: fleet_size,
        targets,
        rejected,
    })
}
