//! Test support: a moto server (a local AWS-compatible endpoint, from PyPI)
//! started on a free 127.0.0.1 port and killed on drop, and fixtures built
//! on it: an EC2 fleet, two VPCs in two regions with their network ACLs, a
//! weighted Route53 record, CloudWatch alarms. No traffic leaves the loopback.
#![allow(dead_code)] // each test file uses part of it

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceType, Placement, ResourceType, Tag, TagSpecification};
use simian_aws::ec2::Ec2;
use simian_aws::{load_sdk_config, AwsOptions, Credentials};

pub const REGION: &str = "us-east-1";
pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
/// An AMI from moto's default set (moto/ec2/resources/amis.json.gz), which
/// RunInstances accepts.
pub const AMI: &str = "ami-12c6146b";
pub const OPT_IN: (&str, &str) = ("simian:opt-in", "true");

const HINT: &str = "the AWS tests need moto's server: run `.ci/run`, or `python3 -m pip install 'moto[server]>=5.2.3'`";

/// A running moto server; dropping it kills it.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts a server of its own for one test (tests run in parallel).
    /// Panics, failing the test, when moto is not installed.
    pub fn start() -> Moto {
        let (program, pre_args) = moto_command().unwrap_or_else(|| panic!("{HINT}"));
        let mut last = String::new();
        // A port picked free can be taken before moto binds it: try a few.
        for attempt in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "simian-moto-{}-{port}-{attempt}.log",
                std::process::id()
            ));
            let log_file = std::fs::File::create(&log).expect("create the moto log file");
            let child = Command::new(&program)
                .args(&pre_args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone the log handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("start {program}: {e}; {HINT}"));
            let mut moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                log,
            };
            match moto.wait_ready(port) {
                Ok(()) => return moto,
                Err(e) => last = e, // dropped: killed
            }
        }
        panic!("moto did not start: {last}");
    }

    /// Up to 30 s, in 100 ms steps, for the server to answer.
    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "moto_server exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            if http(port, "GET", "/moto-api/").is_ok_and(|s| s.starts_with("HTTP/1.1 200")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("it did not answer within 30s".into())
    }

    fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Forgets every resource (for a server shared between uses).
    pub fn reset(&self) {
        let r = http(self.port(), "POST", "/moto-api/reset").expect("reset moto");
        assert!(r.starts_with("HTTP/1.1 200"), "moto reset: {r}");
    }

    /// Options reaching this server with dummy credentials, passed
    /// explicitly rather than through the environment tests share.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            region: Some(REGION.to_string()),
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some(credentials()),
            ..AwsOptions::default()
        }
    }

    pub async fn ec2(&self) -> Ec2 {
        Ec2::connect(&self.options())
            .await
            .expect("connect to moto")
    }

    /// An EC2 client of another region (moto keeps each region apart).
    pub async fn ec2_in(&self, region: &str) -> Ec2 {
        Ec2::connect(&AwsOptions {
            region: Some(region.to_string()),
            ..self.options()
        })
        .await
        .expect("connect to moto")
    }

    pub async fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&load_sdk_config(&self.options()).await)
    }

    pub async fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&load_sdk_config(&self.options()).await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

pub fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "simian-tests")
}

/// The oldest moto whose `availability-zone` filter works (5.2.1 and 5.2.2
/// compare the filter against an object and match nothing).
const MOTO_MIN: (u32, u32, u32) = (5, 2, 3);

/// `python3 -m moto.server` when python3 imports a recent enough moto (its
/// version is checked), else `moto_server` from PATH.
fn moto_command() -> Option<(String, Vec<String>)> {
    let version = Command::new("python3")
        .args(["-c", "import moto.server, moto; print(moto.__version__)"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(v) = version {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        assert!(
            found >= MOTO_MIN,
            "moto {v} is too old for these tests (its EC2 availability-zone filter matches nothing); {HINT}"
        );
        return Some(("python3".into(), vec!["-m".into(), "moto.server".into()]));
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").is_file()));
    on_path.then(|| ("moto_server".into(), vec![]))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// One HTTP/1.1 request with no body; the whole response as text.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Launches `n` instances in `zone` with `tags`, 1000 per RunInstances call.
pub async fn run(ec2: &Ec2, zone: &str, n: usize, tags: &[(&str, &str)]) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let k = left.min(1000) as i32;
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (key, value) in tags {
            spec = spec.tags(Tag::builder().key(*key).value(*value).build());
        }
        let out = ec2
            .sdk()
            .run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::T3Micro)
            .min_count(k)
            .max_count(k)
            .placement(Placement::builder().availability_zone(zone).build())
            .tag_specifications(spec.build())
            .send()
            .await
            .expect("RunInstances on moto");
        ids.extend(
            out.instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_string)),
        );
        left -= k as usize;
    }
    ids.sort();
    ids
}

/// A fleet across the three zones; ids sorted, by zone.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Tagged `simian:opt-in = true`.
    pub opted_in: BTreeMap<String, Vec<String>>,
    /// Tagged `simian:opt-in = false`.
    pub opted_out: BTreeMap<String, Vec<String>>,
    /// No opt-in tag at all.
    pub untagged: BTreeMap<String, Vec<String>>,
}

impl Fleet {
    pub fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = [&self.opted_in, &self.opted_out, &self.untagged]
            .iter()
            .flat_map(|m| m.values().flatten().cloned())
            .collect();
        v.sort();
        v
    }
}

/// Per zone: `opted_in` instances with the opt-in tag, `opted_out` with it
/// set to `false`, `untagged` without it.
pub async fn fleet(ec2: &Ec2, opted_in: usize, opted_out: usize, untagged: usize) -> Fleet {
    let mut f = Fleet::default();
    for zone in ZONES {
        let name_in = format!("web-{zone}");
        let ids = run(ec2, zone, opted_in, &[OPT_IN, ("Name", name_in.as_str())]).await;
        f.opted_in.insert(zone.to_string(), ids);
        let ids = run(ec2, zone, opted_out, &[("simian:opt-in", "false")]).await;
        f.opted_out.insert(zone.to_string(), ids);
        let ids = run(ec2, zone, untagged, &[("team", "payments")]).await;
        f.untagged.insert(zone.to_string(), ids);
    }
    f
}

/// The state of each instance EC2 knows among `ids`.
pub async fn states(ec2: &Ec2, ids: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(200) {
        let mut pages = ec2
            .sdk()
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .into_paginator()
            .page_size(1000)
            .items()
            .send();
        while let Some(r) = pages.next().await {
            for i in r.expect("DescribeInstances on moto").instances() {
                let state = i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string());
                out.insert(i.instance_id().unwrap().to_string(), state.unwrap());
            }
        }
    }
    out
}

/// Asserts every id in `ids` is in `state`.
pub async fn assert_all(ec2: &Ec2, ids: &[String], state: &str) {
    let now = states(ec2, ids).await;
    let wrong: Vec<_> = ids
        .iter()
        .filter(|id| now.get(*id).map(String::as_str) != Some(state))
        .map(|id| format!("{id}={:?}", now.get(id)))
        .collect();
    assert!(wrong.is_empty(), "not {state}: {wrong:?}");
}

/// A VPC of [`two_vpcs`].
#[derive(Debug, Clone)]
pub struct Vpc {
    pub region: String,
    pub id: String,
    pub cidr: String,
    /// Its network ACLs, sorted: the default one and a custom one.
    pub acl_ids: Vec<String>,
}

/// One VPC 10.1.0.0/16 in us-east-1 tagged `simian:side=east`, one
/// 10.2.0.0/16 in us-west-2 tagged `simian:side=west`. Each has two subnets
/// and, besides its default ACL (moto's: allow all at rule 100 and deny at
/// 32767, both directions), a custom ACL allowing all at rule 100 in both
/// directions, associated with its second subnet.
pub async fn two_vpcs(moto: &Moto) -> (Vpc, Vpc) {
    (
        vpc(moto, "us-east-1", "10.1", "east").await,
        vpc(moto, "us-west-2", "10.2", "west").await,
    )
}

async fn vpc(moto: &Moto, region: &str, net: &str, side: &str) -> Vpc {
    use aws_sdk_ec2::types::RuleAction;
    let ec2 = moto.ec2_in(region).await;
    let cidr = format!("{net}.0.0/16");
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Vpc)
        .tags(Tag::builder().key("simian:side").value(side).build())
        .tags(Tag::builder().key("Name").value(side).build())
        .build();
    let out = ec2
        .sdk()
        .create_vpc()
        .cidr_block(&cidr)
        .tag_specifications(tags)
        .send()
        .await
        .expect("CreateVpc on moto");
    let id = out.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let mut subnets = Vec::new();
    for n in 1..=2 {
        let out = ec2
            .sdk()
            .create_subnet()
            .vpc_id(&id)
            .cidr_block(format!("{net}.{n}.0/24"))
            .send()
            .await
            .expect("CreateSubnet on moto");
        subnets.push(
            out.subnet()
                .and_then(|s| s.subnet_id())
                .unwrap()
                .to_string(),
        );
    }
    let custom = ec2
        .sdk()
        .create_network_acl()
        .vpc_id(&id)
        .send()
        .await
        .expect("CreateNetworkAcl on moto");
    let custom = custom
        .network_acl()
        .and_then(|a| a.network_acl_id())
        .unwrap()
        .to_string();
    for egress in [false, true] {
        ec2.sdk()
            .create_network_acl_entry()
            .network_acl_id(&custom)
            .rule_number(100)
            .egress(egress)
            .protocol("-1")
            .rule_action(RuleAction::Allow)
            .cidr_block("0.0.0.0/0")
            .send()
            .await
            .expect("CreateNetworkAclEntry on moto");
    }
    // The second subnet moves from the default ACL to the custom one.
    let acls = ec2
        .sdk()
        .describe_network_acls()
        .filters(filter("association.subnet-id", &subnets[1]))
        .send()
        .await
        .expect("DescribeNetworkAcls on moto");
    let association = acls
        .network_acls()
        .iter()
        .flat_map(|a| a.associations())
        .find(|a| a.subnet_id() == Some(subnets[1].as_str()))
        .and_then(|a| a.network_acl_association_id())
        .expect("the subnet's ACL association")
        .to_string();
    ec2.sdk()
        .replace_network_acl_association()
        .association_id(association)
        .network_acl_id(&custom)
        .send()
        .await
        .expect("ReplaceNetworkAclAssociation on moto");
    let acls = ec2
        .sdk()
        .describe_network_acls()
        .filters(filter("vpc-id", &id))
        .send()
        .await
        .expect("DescribeNetworkAcls on moto");
    let mut acl_ids: Vec<String> = acls
        .network_acls()
        .iter()
        .filter_map(|a| a.network_acl_id().map(str::to_string))
        .collect();
    acl_ids.sort();
    assert_eq!(acl_ids.len(), 2, "the default ACL and the custom one");
    Vpc {
        region: region.to_string(),
        id,
        cidr,
        acl_ids,
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Every entry of every network ACL of the VPC: (acl id, rule number,
/// egress, "allow" or "deny", cidr), sorted.
pub async fn acl_entries(
    moto: &Moto,
    region: &str,
    vpc_id: &str,
) -> Vec<(String, i32, bool, String, String)> {
    let ec2 = moto.ec2_in(region).await;
    let acls = ec2
        .sdk()
        .describe_network_acls()
        .filters(filter("vpc-id", vpc_id))
        .send()
        .await
        .expect("DescribeNetworkAcls on moto");
    let mut out: Vec<_> = acls
        .network_acls()
        .iter()
        .flat_map(|a| {
            let acl = a.network_acl_id().unwrap_or_default().to_string();
            a.entries().iter().map(move |e| {
                (
                    acl.clone(),
                    e.rule_number().unwrap_or_default(),
                    e.egress().unwrap_or_default(),
                    e.rule_action()
                        .map(|r| r.as_str().to_string())
                        .unwrap_or_default(),
                    e.cidr_block()
                        .or(e.ipv6_cidr_block())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// A hosted zone of [`weighted_zone`].
#[derive(Debug, Clone)]
pub struct Zone {
    /// The hosted zone id, without `/hostedzone/`.
    pub id: String,
    /// The weighted record's name: `api.example.com.` (what a shift names).
    pub name: String,
    /// The zone's own name: `example.com.`.
    pub zone_name: String,
}

/// Hosted zone `example.com.` with weighted `A` records
/// `api.example.com.`: `us-east` (weight 100, 10.1.0.10), `us-west`
/// (weight 50, 10.2.0.10), and an unrelated `canary` (weight 5, 10.3.0.10),
/// TTL 60.
pub async fn weighted_zone(moto: &Moto) -> Zone {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let r53 = moto.route53().await;
    let zone = r53
        .create_hosted_zone()
        .name("example.com.")
        .caller_reference(format!("simian-tests-{}", std::process::id()))
        .send()
        .await
        .expect("CreateHostedZone on moto");
    let id = zone
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .unwrap();
    let name = "api.example.com.";
    let mut batch = ChangeBatch::builder();
    for (set, weight, ip) in [
        ("us-east", 100, "10.1.0.10"),
        ("us-west", 50, "10.2.0.10"),
        ("canary", 5, "10.3.0.10"),
    ] {
        let rrs = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .set_identifier(set)
            .weight(weight)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
            .build()
            .unwrap();
        batch = batch.changes(
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(rrs)
                .build()
                .unwrap(),
        );
    }
    r53.change_resource_record_sets()
        .hosted_zone_id(&id)
        .change_batch(batch.build().unwrap())
        .send()
        .await
        .expect("ChangeResourceRecordSets on moto");
    Zone {
        id,
        name: name.to_string(),
        zone_name: "example.com.".to_string(),
    }
}

/// The weight of each weighted record set named `name`, by set identifier.
pub async fn weights(moto: &Moto, zone_id: &str, name: &str) -> BTreeMap<String, i64> {
    let r53 = moto.route53().await;
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(name)
        .send()
        .await
        .expect("ListResourceRecordSets on moto");
    let want = name.trim_end_matches('.');
    out.resource_record_sets()
        .iter()
        .filter(|s| s.name().trim_end_matches('.') == want)
        .filter_map(|s| Some((s.set_identifier()?.to_string(), s.weight()?)))
        .collect()
}

/// Creates the alarm `name` in us-east-1 if it does not exist
/// (PutMetricAlarm), then sets its state: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
pub async fn alarm(moto: &Moto, name: &str, state: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
    let cw = moto.cloudwatch().await;
    let exists = cw
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .expect("DescribeAlarms on moto")
        .metric_alarms()
        .iter()
        .any(|a| a.alarm_name() == Some(name));
    if !exists {
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace("simian/tests")
            .metric_name("5xx")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .send()
            .await
            .expect("PutMetricAlarm on moto");
    }
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(StateValue::from(state))
        .state_reason("set by a simian test")
        .send()
        .await
        .expect("SetAlarmState on moto");
}
