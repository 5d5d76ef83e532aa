//! Reading VPCs and network ACLs (paginated, bounded), and the EC2 clients
//! of a cut, one per region.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, RuleAction, VpcCidrBlockStateCode};

use crate::ec2::Ec2;
use crate::nacl::cidr::Cidr;
use crate::{AwsError, AwsOptions};

/// Values per DescribeVpcs / DescribeNetworkAcls filter (EC2 refuses more than 200).
const FILTER_VALUES: usize = 200;
/// Pages of one listing before giving up: far more than any account has.
const MAX_PAGES: usize = 1000;

/// One EC2 client per region, made on first use with [`Ec2::connect`] (so
/// calls are counted and the endpoint resolved as for the zone kill).
pub(crate) struct Clients {
    base: AwsOptions,
    by_region: BTreeMap<Option<String>, Ec2>,
}

impl Clients {
    pub(crate) fn new(base: &AwsOptions) -> Self {
        Clients {
            base: base.clone(),
            by_region: BTreeMap::new(),
        }
    }

    /// The client of `region`; `None`: the base options' region, else the SDK's.
    pub(crate) async fn get(&mut self, region: Option<&str>) -> Result<Ec2, AwsError> {
        let key = region.map(str::to_string);
        if let Some(ec2) = self.by_region.get(&key) {
            return Ok(ec2.clone());
        }
        let ec2 = Ec2::connect(&AwsOptions {
            region: key.clone().or_else(|| self.base.region.clone()),
            ..self.base.clone()
        })
        .await?;
        self.by_region.insert(key, ec2.clone());
        Ok(ec2)
    }

    /// The endpoint override the clients use (the same for every region).
    pub(crate) fn endpoint_url(&self) -> Option<String> {
        self.by_region
            .values()
            .find_map(|c| c.endpoint_url().map(str::to_string))
    }
}

/// A VPC as a plan needs it.
#[derive(Debug, Clone)]
pub(crate) struct VpcInfo {
    pub id: String,
    pub name: Option<String>,
    /// Associated IPv4 and IPv6 blocks, primary and secondary.
    pub cidrs: Vec<Cidr>,
}

/// The VPCs matching `filters` (ANDed by EC2), by id.
pub(crate) async fn vpcs(
    ec2: &Ec2,
    filters: Vec<Filter>,
) -> Result<BTreeMap<String, VpcInfo>, AwsError> {
    let mut pages = ec2
        .sdk()
        .describe_vpcs()
        .set_filters(Some(filters))
        .into_paginator()
        .page_size(1000)
        .send();
    let mut out = BTreeMap::new();
    let mut n = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::api("DescribeVpcs", e))?;
        for v in page.vpcs() {
            let Some(id) = v.vpc_id() else { continue };
            let mut cidrs: Vec<Cidr> = v
                .cidr_block_association_set()
                .iter()
                .filter(|a| {
                    a.cidr_block_state().and_then(|s| s.state())
                        == Some(&VpcCidrBlockStateCode::Associated)
                })
                .filter_map(|a| a.cidr_block())
                .chain(v.cidr_block())
                .chain(
                    v.ipv6_cidr_block_association_set()
                        .iter()
                        .filter(|a| {
                            a.ipv6_cidr_block_state().and_then(|s| s.state())
                                == Some(&VpcCidrBlockStateCode::Associated)
                        })
                        .filter_map(|a| a.ipv6_cidr_block()),
                )
                .filter_map(|c| Cidr::parse(c).ok())
                .collect();
            cidrs.sort();
            cidrs.dedup();
            let name = v
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .map(str::to_string);
            out.insert(
                id.to_string(),
                VpcInfo {
                    id: id.to_string(),
                    name,
                    cidrs,
                },
            );
        }
        n += 1;
        if n >= MAX_PAGES {
            break;
        }
    }
    Ok(out)
}

/// The VPCs with these ids (those EC2 knows; a filter rather than
/// `VpcIds`, which fails the whole call on one unknown id).
pub(crate) async fn vpcs_by_id(
    ec2: &Ec2,
    ids: &[String],
) -> Result<BTreeMap<String, VpcInfo>, AwsError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(FILTER_VALUES) {
        out.extend(vpcs(ec2, vec![filter("vpc-id", chunk.to_vec())]).await?);
    }
    Ok(out)
}

/// One entry of a network ACL, as EC2 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    pub rule_number: i32,
    pub egress: bool,
    pub allow: bool,
    /// `-1` for all protocols.
    pub protocol: String,
    /// The IPv4 or IPv6 block, canonical.
    pub cidr: Option<Cidr>,
}

impl Existing {
    /// How a report shows it: `allow 10.2.0.0/16` or `deny tcp(6) 10.2.0.0/16`.
    pub(crate) fn describe(&self) -> String {
        let action = if self.allow { "allow" } else { "deny" };
        let cidr = self.cidr.map_or("?".to_string(), |c| c.to_string());
        match self.protocol.as_str() {
            "-1" => format!("{action} {cidr}"),
            p => format!("{action} protocol {p} {cidr}"),
        }
    }
}

/// A network ACL and its entries, both directions.
#[derive(Debug, Clone)]
pub(crate) struct Acl {
    pub id: String,
    pub vpc_id: String,
    pub entries: Vec<Existing>,
}

/// The network ACLs of these VPCs, sorted by VPC then id.
pub(crate) async fn acls(ec2: &Ec2, vpc_ids: &[String]) -> Result<Vec<Acl>, AwsError> {
    let mut out = BTreeMap::new();
    for chunk in vpc_ids.chunks(FILTER_VALUES) {
        let mut pages = ec2
            .sdk()
            .describe_network_acls()
            .filters(filter("vpc-id", chunk.to_vec()))
            .into_paginator()
            .page_size(100)
            .send();
        let mut n = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::api("DescribeNetworkAcls", e))?;
            for a in page.network_acls() {
                let (Some(id), Some(vpc_id)) = (a.network_acl_id(), a.vpc_id()) else {
                    continue;
                };
                let entries = a
                    .entries()
                    .iter()
                    .filter_map(|e| {
                        Some(Existing {
                            rule_number: e.rule_number()?,
                            egress: e.egress()?,
                            allow: e.rule_action() == Some(&RuleAction::Allow),
                            protocol: e.protocol().unwrap_or("-1").to_string(),
                            cidr: e
                                .cidr_block()
                                .or(e.ipv6_cidr_block())
                                .and_then(|c| Cidr::parse(c).ok()),
                        })
                    })
                    .collect();
                let acl = Acl {
                    id: id.to_string(),
                    vpc_id: vpc_id.to_string(),
                    entries,
                };
                out.insert((acl.vpc_id.clone(), acl.id.clone()), acl);
            }
            n += 1;
            if n >= MAX_PAGES {
                break;
            }
        }
    }
    Ok(out.into_values().collect())
}

pub(crate) fn filter(name: &str, values: Vec<String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values))
        .build()
}
