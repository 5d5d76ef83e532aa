//! Planning a cut: resolve each side's VPCs, their CIDR blocks and network
//! ACLs, check the sides, and number the DENY entries. Changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::nacl::cidr::{self, Cidr};
use crate::nacl::describe::{self, filter, Acl, Clients, Existing, VpcInfo};
use crate::nacl::AclEntry;
use crate::{AwsError, AwsOptions};

/// Entries per direction of one network ACL that AWS allows by default (the
/// "Rules per network ACL" quota), checked against every entry EC2 lists in
/// that direction, the default `*` ones included.
pub const RULES_PER_DIRECTION: usize = 20;

/// The highest rule number EC2 accepts; 32767 is the default `*` rule.
const HIGHEST_RULE: i32 = 32766;

/// One side of the cut: VPCs of one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// `None`: the SDK's region (options, environment, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// VPCs by id; together with those `vpc_tags` match.
    #[serde(default)]
    pub vpc_ids: Vec<String>,
    /// VPCs carrying all these tags.
    #[serde(default)]
    pub vpc_tags: BTreeMap<String, String>,
    /// Extra CIDR blocks of this side (the VPCs' own blocks, primary and
    /// secondary, IPv4 and IPv6, are always included).
    #[serde(default)]
    pub cidrs: Vec<String>,
}

impl Side {
    fn problems(&self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        if self.vpc_ids.is_empty() && self.vpc_tags.is_empty() {
            out.push(format!(
                "side {n} names no VPC: give `vpc_ids` or `vpc_tags`"
            ));
        }
        if self.region.as_deref().is_some_and(|r| r.trim().is_empty()) {
            out.push(format!(
                "side {n}: `region` is empty (leave it out for the SDK's region)"
            ));
        }
        if self.vpc_ids.iter().any(|i| i.trim().is_empty()) {
            out.push(format!("side {n}: a VPC id is empty"));
        }
        if self.vpc_tags.keys().any(|k| k.trim().is_empty()) {
            out.push(format!("side {n}: a tag key is empty"));
        }
        for c in &self.cidrs {
            if let Err(e) = Cidr::parse(c) {
                out.push(format!("side {n}: {e}"));
            }
        }
        out
    }

    /// How messages name it: `side 1 (vpc-1, tags simian:side=east)`.
    fn label(&self, n: usize) -> String {
        let mut what: Vec<String> = self.vpc_ids.clone();
        if !self.vpc_tags.is_empty() {
            let tags: Vec<String> = self
                .vpc_tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            what.push(format!("tags {}", tags.join(",")));
        }
        format!("side {n} ({})", what.join(", "))
    }
}

/// Which traffic the entries deny, seen from each side's subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    Ingress,
    Egress,
}

impl Direction {
    /// The `Egress` flags of the entries it adds (false: ingress).
    fn egress_flags(self) -> &'static [bool] {
        match self {
            Direction::Both => &[false, true],
            Direction::Ingress => &[false],
            Direction::Egress => &[true],
        }
    }
}

/// A VPC a plan resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    /// 0 or 1: the index of its side.
    pub side: usize,
    pub region: String,
    pub id: String,
    /// The `Name` tag.
    pub name: Option<String>,
    /// Its CIDR blocks, canonical.
    pub cidrs: Vec<String>,
    /// Its network ACLs, each of which gets the entries.
    pub acl_ids: Vec<String>,
}

/// What a cut will add: the dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NaclPlan {
    /// In order: side, VPC, ACL, ingress before egress, CIDR.
    pub entries: Vec<AclEntry>,
    /// Side 0's VPCs, then side 1's, each sorted by id.
    pub vpcs: Vec<Vpc>,
    /// The endpoint override the plan's clients used (for the record).
    pub endpoint_url: Option<String>,
    /// How many VPCs the sides' regions hold (the blast radius denominator).
    #[serde(default)]
    pub vpcs_in_regions: usize,
}

/// Resolves both sides and numbers the entries. Fails, with every problem
/// at once, when a side matches no VPC, a VPC is on both sides, the sides'
/// CIDRs overlap, or an ACL has no room for its entries.
pub async fn plan(
    sides: &[Side; 2],
    direction: Direction,
    base: &AwsOptions,
) -> Result<NaclPlan, AwsError> {
    let problems: Vec<String> = sides
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.problems(i + 1))
        .collect();
    if !problems.is_empty() {
        return Err(AwsError::Invalid {
            what: "network ACL sides",
            problems,
        });
    }
    let mut clients = Clients::new(base);
    let mut problems = Vec::new();
    let mut resolved: Vec<(String, Vec<VpcInfo>)> = Vec::new();
    for (i, side) in sides.iter().enumerate() {
        let ec2 = clients.get(side.region.as_deref()).await?;
        let region = ec2.region().to_string();
        let mut found = BTreeMap::new();
        if !side.vpc_ids.is_empty() {
            let by_id = describe::vpcs_by_id(&ec2, &side.vpc_ids).await?;
            for id in &side.vpc_ids {
                if !by_id.contains_key(id) {
                    problems.push(format!("side {}: no VPC {id} in {region}", i + 1));
                }
            }
            found.extend(by_id);
        }
        if !side.vpc_tags.is_empty() {
            let filters = side
                .vpc_tags
                .iter()
                .map(|(k, v)| filter(&format!("tag:{k}"), vec![v.clone()]))
                .collect();
            found.extend(describe::vpcs(&ec2, filters).await?);
        }
        if found.is_empty() && side.vpc_ids.is_empty() {
            problems.push(format!("{} matches no VPC in {region}", side.label(i + 1)));
        }
        resolved.push((region, found.into_values().collect()));
    }
    problems.extend(crossing_problems(sides, &resolved));
    if !problems.is_empty() {
        return Err(AwsError::Invalid {
            what: "network ACL sides",
            problems,
        });
    }

    // Each side denies every block of the other side.
    let blocks: Vec<Vec<Cidr>> = (0..2)
        .map(|i| cidr::minimal(side_blocks(&sides[i], &resolved[i].1)))
        .collect();
    let mut vpcs = Vec::new();
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, side) in sides.iter().enumerate() {
        let (region, infos) = &resolved[i];
        let ec2 = clients.get(side.region.as_deref()).await?;
        let ids: Vec<String> = infos.iter().map(|v| v.id.clone()).collect();
        let acls = describe::acls(&ec2, &ids).await?;
        let deny = &blocks[1 - i];
        for info in infos {
            let mine: Vec<&Acl> = acls.iter().filter(|a| a.vpc_id == info.id).collect();
            for acl in &mine {
                for &egress in direction.egress_flags() {
                    match numbers_for(acl, egress, deny.len()) {
                        Ok(numbers) => {
                            entries.extend(numbers.into_iter().zip(deny).map(|(n, c)| AclEntry {
                                region: region.clone(),
                                vpc_id: info.id.clone(),
                                acl_id: acl.id.clone(),
                                rule_number: n,
                                egress,
                                cidr: c.to_string(),
                            }))
                        }
                        Err(why) => problems.push(format!(
                            "{} ({}, {region}) {}: {why}",
                            acl.id,
                            info.id,
                            direction_name(egress)
                        )),
                    }
                }
            }
            vpcs.push(Vpc {
                side: i,
                region: region.clone(),
                id: info.id.clone(),
                name: info.name.clone(),
                cidrs: info.cidrs.iter().map(Cidr::to_string).collect(),
                acl_ids: mine.iter().map(|a| a.id.clone()).collect(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(AwsError::Invalid {
            what: "network ACL cut",
            problems,
        });
    }
    let mut regions: Vec<Option<&str>> = sides.iter().map(|s| s.region.as_deref()).collect();
    regions.dedup();
    let mut vpcs_in_regions = 0;
    for r in regions {
        let ec2 = clients.get(r).await?;
        vpcs_in_regions += describe::vpcs(&ec2, vec![]).await?.len();
    }
    Ok(NaclPlan {
        entries,
        vpcs,
        endpoint_url: clients.endpoint_url(),
        vpcs_in_regions,
    })
}

pub(crate) fn direction_name(egress: bool) -> &'static str {
    if egress {
        "egress"
    } else {
        "ingress"
    }
}

/// A side's blocks: its VPCs' and its extra ones (already validated).
fn side_blocks(side: &Side, vpcs: &[VpcInfo]) -> Vec<Cidr> {
    vpcs.iter()
        .flat_map(|v| v.cidrs.iter().copied())
        .chain(side.cidrs.iter().filter_map(|c| Cidr::parse(c).ok()))
        .collect()
}

/// A VPC on both sides, or blocks of one side overlapping the other's: a cut
/// would then sever a side from itself.
fn crossing_problems(sides: &[Side; 2], resolved: &[(String, Vec<VpcInfo>)]) -> Vec<String> {
    let mut out = Vec::new();
    let key = |i: usize| -> BTreeSet<(String, String)> {
        resolved[i]
            .1
            .iter()
            .map(|v| (resolved[i].0.clone(), v.id.clone()))
            .collect()
    };
    for (region, id) in key(0).intersection(&key(1)) {
        out.push(format!("{id} ({region}) is on both sides"));
    }
    // Each block with the VPC it comes from (`None`: the extra `cidrs`).
    let sourced = |i: usize| -> Vec<(Cidr, Option<String>)> {
        let vpcs = resolved[i]
            .1
            .iter()
            .flat_map(|v| v.cidrs.iter().map(|c| (*c, Some(v.id.clone()))));
        let extra = sides[i]
            .cidrs
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .map(|c| (c, None));
        vpcs.chain(extra).collect()
    };
    let from = |v: &Option<String>| v.clone().unwrap_or_else(|| "`cidrs`".to_string());
    let (a, b) = (sourced(0), sourced(1));
    for (ca, va) in &a {
        for (cb, vb) in &b {
            // A VPC on both sides overlaps itself: reported above.
            if ca.overlaps(cb) && !(va.is_some() && va == vb) {
                out.push(format!(
                    "{ca} of side 1 ({}) overlaps {cb} of side 2 ({})",
                    from(va),
                    from(vb)
                ));
            }
        }
    }
    out
}

/// The rule numbers for `needed` DENY entries in one direction of `acl`: the
/// lowest free ones, all before its first ALLOW entry (rules are evaluated
/// lowest number first, so a deny after an allow that matches would be
/// moot). DENY entries already there may be skipped over: a deny before ours
/// only denies more. Err: why there is no room, or the quota is exceeded.
pub(crate) fn numbers_for(acl: &Acl, egress: bool, needed: usize) -> Result<Vec<i32>, String> {
    let existing: Vec<&Existing> = acl.entries.iter().filter(|e| e.egress == egress).collect();
    let first_allow = existing
        .iter()
        .filter(|e| e.allow)
        .map(|e| e.rule_number)
        .min();
    let bound = first_allow.unwrap_or(HIGHEST_RULE + 1);
    let used: BTreeSet<i32> = existing.iter().map(|e| e.rule_number).collect();
    let free: Vec<i32> = (1..bound)
        .filter(|n| !used.contains(n))
        .take(needed)
        .collect();
    if free.len() < needed {
        let before = match first_allow {
            Some(n) => format!("before its first ALLOW rule #{n}"),
            None => format!("below rule #{}", HIGHEST_RULE + 1),
        };
        return Err(format!(
            "{needed} DENY entries must come {before}, and only {} rule numbers are free there (renumber its rules upwards to make room)",
            free.len()
        ));
    }
    if existing.len() + needed > RULES_PER_DIRECTION {
        return Err(format!(
            "{} entries and {needed} more exceed the {RULES_PER_DIRECTION} per direction AWS allows by default (the \"Rules per network ACL\" quota is adjustable in Service Quotas)",
            existing.len()
        ));
    }
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(i32, bool, bool)]) -> Acl {
        Acl {
            id: "acl-1".into(),
            vpc_id: "vpc-1".into(),
            entries: entries
                .iter()
                .map(|&(n, egress, allow)| Existing {
                    rule_number: n,
                    egress,
                    allow,
                    protocol: "-1".into(),
                    cidr: Cidr::parse("0.0.0.0/0").ok(),
                })
                .collect(),
        }
    }

    #[test]
    fn numbers_start_at_one_below_the_first_allow() {
        let a = acl(&[(100, false, true), (32767, false, false)]);
        assert_eq!(numbers_for(&a, false, 2).unwrap(), [1, 2]);
    }

    #[test]
    fn existing_denies_are_skipped_and_each_direction_counts_alone() {
        let a = acl(&[
            (1, false, false),
            (3, false, false),
            (100, false, true),
            (1, true, true),
        ]);
        assert_eq!(numbers_for(&a, false, 3).unwrap(), [2, 4, 5]);
        // Egress: an allow at #1 leaves no room.
        let e = numbers_for(&a, true, 1).unwrap_err();
        assert!(e.contains("before its first ALLOW rule #1"), "{e}");
        assert!(e.contains("only 0 rule numbers are free"), "{e}");
    }

    #[test]
    fn too_few_numbers_before_the_first_allow_is_an_error() {
        let a = acl(&[(3, false, true)]);
        assert_eq!(numbers_for(&a, false, 2).unwrap(), [1, 2]);
        assert!(numbers_for(&a, false, 3).is_err());
    }

    #[test]
    fn the_quota_counts_every_entry_of_the_direction() {
        let mut entries: Vec<(i32, bool, bool)> = (0..18).map(|i| (100 + i, false, true)).collect();
        entries.push((32767, false, false));
        let a = acl(&entries);
        assert_eq!(numbers_for(&a, false, 1).unwrap(), [1]);
        let e = numbers_for(&a, false, 2).unwrap_err();
        assert!(e.contains("19 entries and 2 more exceed the 20"), "{e}");
        assert!(e.contains("adjustable"), "{e}");
    }

    #[test]
    fn an_acl_without_allow_takes_numbers_from_one() {
        assert_eq!(numbers_for(&acl(&[]), true, 2).unwrap(), [1, 2]);
    }

    #[test]
    fn sides_are_checked_before_any_call() {
        let s = Side {
            region: Some(" ".into()),
            cidrs: vec!["10.0.0.0/33".into()],
            ..Side::default()
        };
        assert_eq!(s.problems(1).len(), 3, "{:?}", s.problems(1));
    }

    #[test]
    fn overlapping_sides_and_shared_vpcs_are_refused() {
        let info = |id: &str, c: &str| VpcInfo {
            id: id.into(),
            name: None,
            cidrs: vec![Cidr::parse(c).unwrap()],
        };
        let sides = [
            Side::default(),
            Side {
                cidrs: vec!["10.1.4.0/24".into()],
                ..Side::default()
            },
        ];
        let resolved = vec![
            ("us-east-1".to_string(), vec![info("vpc-1", "10.1.0.0/16")]),
            ("us-east-1".to_string(), vec![info("vpc-1", "10.1.0.0/16")]),
        ];
        let p = crossing_problems(&sides, &resolved);
        assert!(
            p.contains(&"vpc-1 (us-east-1) is on both sides".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(
                &"10.1.0.0/16 of side 1 (vpc-1) overlaps 10.1.4.0/24 of side 2 (`cidrs`)"
                    .to_string()
            ),
            "{p:?}"
        );
    }
}
