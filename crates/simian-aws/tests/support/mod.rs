//! Test support: a moto server (a local AWS-compatible endpoint, from PyPI)
//! started on a free 127.0.0.1 port and killed on drop, and an EC2 fleet
//! builder. No traffic leaves the loopback.
#![allow(dead_code)] // each test file uses part of it

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceType, Placement, ResourceType, Tag, TagSpecification};
use simian_aws::ec2::Ec2;
use simian_aws::{AwsOptions, Credentials};

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
