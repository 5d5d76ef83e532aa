//! What a running lab looks like on disk (`<state_dir>/lab/state.json`) and live (`LabStatus`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::netns::NetnsLayout;
use crate::{procfs, LabError, LabSpec, SteeringEntry, TrafficSpec};

/// The files of one lab, all under `<state_dir>/lab/`.
#[derive(Debug, Clone)]
pub struct LabPaths {
    pub dir: PathBuf,
}

impl LabPaths {
    pub fn new(state_dir: &Path) -> Self {
        LabPaths {
            dir: state_dir.join("lab"),
        }
    }
    /// Written by the supervisor once the lab is ready, removed when it stops.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The supervisor's control socket.
    pub fn control(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    /// Held (flock) by the live supervisor; holds its pid.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
    pub fn instance_log(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }
    /// The write-ahead file of store `id` (`store-<region>`); kept while the lab runs
    /// (a restarted store reloads it), removed when a new lab starts.
    pub fn wal(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.wal"))
    }
    /// The replication links (`[{from, to, proxy, addr}]`), written by the supervisor for
    /// the stores to find their peers.
    pub fn replication(&self) -> PathBuf {
        self.dir.join("replication.json")
    }
    /// The network namespaces of a `--netns` lab, written before the first one is created and
    /// removed after the last one is deleted, so `lab down` finds them after a crash.
    pub fn netns(&self) -> PathBuf {
        self.dir.join("netns.json")
    }
}

/// A running lab: who supervises it, where its edges, instances, stores and proxy listen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub supervisor_pid: u32,
    pub control: PathBuf,
    /// The embedded fault proxy's admin API (the Toxiproxy HTTP API), `http://127.0.0.1:PORT`.
    /// Its proxies are named after the stores they front: `store-<region>`.
    #[serde(default)]
    pub proxy_api: String,
    pub spec: LabSpec,
    /// The global router's base URL, `http://127.0.0.1:PORT`: users' requests, and the
    /// steering API (`/steering`). Empty in a state file from before it existed.
    #[serde(default)]
    pub global: String,
    /// The geo split of users over the regions and each region's capacity.
    #[serde(default)]
    pub traffic: TrafficSpec,
    pub regions: Vec<Region>,
    /// With `lab up --netns`: the namespaces and addresses of every region and zone. Absent
    /// for a lab on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsLayout>,
}

/// One region: its edge router, its store and its zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub name: String,
    /// The edge router's base URL, `http://127.0.0.1:PORT`.
    pub edge: String,
    /// The region's key-value store process, reached directly (on its namespace's address
    /// with `--netns`).
    #[serde(default)]
    pub store: Store,
    /// Where the region's instances reach the store: the listen URL of the fault proxy
    /// `store-<region>`, `http://127.0.0.1:PORT` (with `--netns`, the host's address on the
    /// link to the router namespace). The store's own URL if the lab runs without a working
    /// proxy.
    #[serde(default)]
    pub store_proxy: String,
    /// The links carrying this region's writes to the other regions, one per peer.
    #[serde(default)]
    pub replication: Vec<ReplLink>,
    pub zones: Vec<Zone>,
}

/// One replication link, from its region to `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplLink {
    /// The peer region.
    pub to: String,
    /// The TCP-mode fault proxy carrying it, `repl-<from>-<to>`: disable it (or add a
    /// `timeout` toxic) to partition replication. Empty when the link goes directly to the
    /// peer's store, as with `--netns` (a partition there is an nftables rule).
    pub proxy: String,
    /// The proxy's listen address, `127.0.0.1:PORT` (the peer store's own without a proxy).
    pub listen: String,
}

/// One store process. `pid` is the latest one the supervisor started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// `store-<region>`: the id `lab restart` takes, and the name of the proxy in front of it.
    pub id: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    pub name: String,
    pub instances: Vec<Instance>,
}

/// One instance process. `pid` is the latest one the supervisor started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub zone: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    pub pid: u32,
}

impl LabState {
    /// Every instance, region by region, zone by zone.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.regions
            .iter()
            .flat_map(|r| r.zones.iter())
            .flat_map(|z| z.instances.iter())
    }

    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances().find(|i| i.id == id)
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Every store, region by region.
    pub fn stores(&self) -> impl Iterator<Item = &Store> {
        self.regions.iter().map(|r| &r.store)
    }

    /// The store with this id (`store-<region>`).
    pub fn store(&self, id: &str) -> Option<&Store> {
        self.stores().find(|s| s.id == id)
    }

    /// The pid of the instance or store with this id: what `lab restart` and
    /// [`crate::ensure_running`] accept.
    pub fn pid(&self, id: &str) -> Option<u32> {
        self.instance(id)
            .map(|i| i.pid)
            .or_else(|| self.store(id).map(|s| s.pid))
    }

    /// Variables for experiments: `lab.REGION.edge` -> edge URL, `lab.INSTANCE_ID` -> instance
    /// URL, `lab.regions` -> `us-east,us-west`, `lab.global` -> the global router (user
    /// requests, `/steering`, `/metrics`), `lab.proxy` -> the fault proxy's admin API,
    /// `lab.REGION.store` -> the store's own URL, `lab.REGION.store_proxy` -> the URL of the
    /// proxy in front of it (named `store-REGION` in the admin API), `lab.repl.FROM.TO` -> the
    /// name of the proxy carrying FROM's writes to TO (`repl-FROM-TO`).
    ///
    /// With `--netns`, no `lab.repl.*` (replication goes store to store through the router
    /// namespace) but `lab.netns` -> the router namespace (where partitions between regions
    /// go), `lab.subnet` -> the lab's /16, `lab.REGION.cidr` -> the region's /24,
    /// `lab.REGION.netns` -> its store's namespace, `lab.ZONE.cidr` -> the zone's address as a
    /// /32, `lab.ZONE.netns` -> the zone's namespace.
    pub fn variables(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        vars.insert("lab.regions".to_string(), names.join(","));
        vars.insert("lab.proxy".to_string(), self.proxy_api.clone());
        if !self.global.is_empty() {
            vars.insert("lab.global".to_string(), self.global.clone());
        }
        for region in &self.regions {
            vars.insert(format!("lab.{}.edge", region.name), region.edge.clone());
            vars.insert(
                format!("lab.{}.store", region.name),
                region.store.url.clone(),
            );
            vars.insert(
                format!("lab.{}.store_proxy", region.name),
                region.store_proxy.clone(),
            );
            for link in region.replication.iter().filter(|l| !l.proxy.is_empty()) {
                vars.insert(
                    format!("lab.repl.{}.{}", region.name, link.to),
                    link.proxy.clone(),
                );
            }
        }
        for instance in self.instances() {
            vars.insert(format!("lab.{}", instance.id), instance.url.clone());
        }
        if let Some(net) = &self.netns {
            vars.insert("lab.netns".to_string(), net.core.clone());
            vars.insert("lab.subnet".to_string(), net.subnet.to_string());
            for region in &net.regions {
                vars.insert(format!("lab.{}.cidr", region.name), region.cidr.clone());
                vars.insert(format!("lab.{}.netns", region.name), region.netns.clone());
                for zone in &region.zones {
                    vars.insert(
                        format!("lab.{}.cidr", zone.name),
                        format!("{}/32", zone.addr),
                    );
                    vars.insert(format!("lab.{}.netns", zone.name), zone.netns.clone());
                }
            }
        }
        vars
    }
}

/// Live process state of an instance, as its supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    Running,
    /// SIGSTOPped (`/proc` state `T`): the kernel still accepts its connections.
    Stopped,
    Dead,
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessState::Running => "running",
            ProcessState::Stopped => "stopped",
            ProcessState::Dead => "dead",
        })
    }
}

/// A live view of the lab, from its supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabStatus {
    pub supervisor_pid: u32,
    #[serde(default)]
    pub proxy_api: String,
    pub spec: LabSpec,
    /// The global router's base URL, as in [`LabState::global`].
    #[serde(default)]
    pub global: String,
    /// The geo split and capacities, as in [`LabState::traffic`].
    #[serde(default)]
    pub traffic: TrafficSpec,
    /// Every region's steering now, as `GET /steering` on the global router answers it.
    #[serde(default)]
    pub steering: BTreeMap<String, SteeringEntry>,
    pub regions: Vec<RegionStatus>,
    /// With `--netns`: the namespaces and addresses, as in [`LabState::netns`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsLayout>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionStatus {
    pub name: String,
    pub edge: String,
    pub store: StoreStatus,
    pub store_proxy: String,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub id: String,
    pub url: String,
    pub port: u16,
    pub pid: u32,
    pub state: ProcessState,
    /// Whether it answered `/health` just now, directly (not through the proxy).
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub id: String,
    pub region: String,
    pub zone: String,
    pub url: String,
    pub port: u16,
    pub pid: u32,
    pub state: ProcessState,
    /// What the region's edge router believes from its last health check.
    pub healthy: bool,
}

impl LabStatus {
    pub fn instances(&self) -> impl Iterator<Item = &InstanceStatus> {
        self.regions.iter().flat_map(|r| r.instances.iter())
    }

    pub fn stores(&self) -> impl Iterator<Item = &StoreStatus> {
        self.regions.iter().map(|r| &r.store)
    }

    /// The process state of the instance or store with this id.
    pub fn state_of(&self, id: &str) -> Option<ProcessState> {
        self.instances()
            .find(|i| i.id == id)
            .map(|i| i.state)
            .or_else(|| self.stores().find(|s| s.id == id).map(|s| s.state))
    }
}

/// Reads `state.json` as it is, without asking whether its supervisor still lives.
pub(crate) fn read_state(paths: &LabPaths) -> Result<Option<LabState>, LabError> {
    let path = paths.state();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io(format!("read {}", path.display()), e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| LabError::State { path, source })
}

/// Writes `state.json` atomically: a reader sees the old file or the new one, never half.
pub(crate) fn write_state(paths: &LabPaths, state: &LabState) -> Result<(), LabError> {
    let path = paths.state();
    let tmp = paths.dir.join("state.json.tmp");
    let json = serde_json::to_vec_pretty(state).expect("lab state serializes");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| LabError::io(format!("write {}", path.display()), e))
}

/// The lab running in `state_dir`.
///
/// `Ok(None)` when there is no lab there. When `state.json` exists but its supervisor is gone
/// (killed), this is `Err(LabError::SupervisorGone)`: the instances died with it, and
/// `down` cleans up the files.
pub fn load(state_dir: &Path) -> Result<Option<LabState>, LabError> {
    let paths = LabPaths::new(state_dir);
    match read_state(&paths)? {
        None => Ok(None),
        Some(state) if procfs::is_ours(state.supervisor_pid, "lab supervise", None) => {
            Ok(Some(state))
        }
        Some(state) => Err(LabError::SupervisorGone {
            dir: state_dir.to_path_buf(),
            pid: state.supervisor_pid,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(supervisor_pid: u32) -> LabState {
        let inst = |id: &str, zone: &str, region: &str, port: u16| Instance {
            id: id.into(),
            region: region.into(),
            zone: zone.into(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            pid: 42,
        };
        let store = |region: &str, port: u16| Store {
            id: format!("store-{region}"),
            url: format!("http://127.0.0.1:{port}"),
            port,
            pid: 43,
        };
        LabState {
            supervisor_pid,
            control: PathBuf::from("/tmp/x/lab/control.sock"),
            proxy_api: "http://127.0.0.1:8474".into(),
            spec: LabSpec {
                regions: 2,
                zones: 1,
                instances: 1,
            },
            global: "http://127.0.0.1:8900".into(),
            traffic: TrafficSpec {
                geo: [("us-east".into(), 60), ("us-west".into(), 40)].into(),
                capacity: [("us-west".into(), 200)].into(),
            },
            regions: vec![
                Region {
                    name: "us-east".into(),
                    edge: "http://127.0.0.1:9000".into(),
                    store: store("us-east", 9050),
                    store_proxy: "http://127.0.0.1:9060".into(),
                    replication: vec![ReplLink {
                        to: "us-west".into(),
                        proxy: "repl-us-east-us-west".into(),
                        listen: "127.0.0.1:9070".into(),
                    }],
                    zones: vec![Zone {
                        name: "us-east-a".into(),
                        instances: vec![inst("us-east-a-1", "us-east-a", "us-east", 9001)],
                    }],
                },
                Region {
                    name: "us-west".into(),
                    edge: "http://127.0.0.1:9100".into(),
                    store: store("us-west", 9150),
                    store_proxy: "http://127.0.0.1:9160".into(),
                    replication: vec![ReplLink {
                        to: "us-east".into(),
                        proxy: "repl-us-west-us-east".into(),
                        listen: "127.0.0.1:9170".into(),
                    }],
                    zones: vec![Zone {
                        name: "us-west-a".into(),
                        instances: vec![inst("us-west-a-1", "us-west-a", "us-west", 9101)],
                    }],
                },
            ],
            netns: None,
        }
    }

    /// [`sample`] as `lab up --netns` would record it in 10.142.0.0/16.
    fn sample_netns() -> LabState {
        let mut state = sample(1);
        let net = NetnsLayout::plan("1a2b3c", &state.spec, crate::Subnet::ten(142));
        for (region, rnet) in state.regions.iter_mut().zip(&net.regions) {
            region.store.url = format!("http://{}:9050", rnet.store_addr);
            region.store_proxy = "http://10.142.0.1:9060".into();
            for link in &mut region.replication {
                link.proxy = String::new();
            }
            for (zone, znet) in region.zones.iter_mut().zip(&rnet.zones) {
                for inst in &mut zone.instances {
                    inst.url = format!("http://{}:{}", znet.addr, inst.port);
                }
            }
        }
        state.netns = Some(net);
        state
    }

    #[test]
    fn netns_variables_name_namespaces_and_cidrs_and_no_replication_proxies() {
        let loopback = sample(1).variables();
        let vars = sample_netns().variables();
        assert_eq!(vars["lab.netns"], "sl1a2b3c-core");
        assert_eq!(vars["lab.subnet"], "10.142.0.0/16");
        assert_eq!(vars["lab.us-east.cidr"], "10.142.1.0/24");
        assert_eq!(vars["lab.us-west.cidr"], "10.142.2.0/24");
        assert_eq!(vars["lab.us-west.netns"], "sl1a2b3c-us-west");
        assert_eq!(vars["lab.us-east-a.cidr"], "10.142.1.11/32");
        assert_eq!(vars["lab.us-west-a.netns"], "sl1a2b3c-us-west-a");
        assert_eq!(vars["lab.us-west.store"], "http://10.142.2.2:9050");
        assert_eq!(vars["lab.us-east-a-1"], "http://10.142.1.11:9001");
        assert!(!vars.keys().any(|k| k.starts_with("lab.repl.")), "{vars:?}");
        // Loopback's 13 minus the 2 replication proxies, plus netns, subnet and per region
        // and zone a cidr and a namespace.
        assert_eq!(vars.len(), 13 - 2 + 2 + 2 * 2 + 2 * 2);
        assert_eq!(vars["lab.global"], "http://127.0.0.1:8900");
        assert!(!loopback.contains_key("lab.netns"));
        assert!(!loopback.keys().any(|k| k.ends_with(".cidr")));
    }

    #[test]
    fn a_netns_state_round_trips_and_a_loopback_one_has_no_netns_key() {
        let state = sample_netns();
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<LabState>(&json).unwrap(), state);
        let plain = serde_json::to_value(sample(1)).unwrap();
        assert!(plain.get("netns").is_none(), "{plain}");
    }

    #[test]
    fn variables_name_edges_instances_stores_and_regions() {
        let vars = sample(1).variables();
        assert_eq!(vars["lab.regions"], "us-east,us-west");
        assert_eq!(vars["lab.us-east.edge"], "http://127.0.0.1:9000");
        assert_eq!(vars["lab.us-west.edge"], "http://127.0.0.1:9100");
        assert_eq!(vars["lab.us-west-a-1"], "http://127.0.0.1:9101");
        assert_eq!(vars["lab.proxy"], "http://127.0.0.1:8474");
        assert_eq!(vars["lab.us-east.store"], "http://127.0.0.1:9050");
        assert_eq!(vars["lab.us-west.store_proxy"], "http://127.0.0.1:9160");
        assert_eq!(vars["lab.repl.us-east.us-west"], "repl-us-east-us-west");
        assert_eq!(vars["lab.repl.us-west.us-east"], "repl-us-west-us-east");
        assert_eq!(vars["lab.global"], "http://127.0.0.1:8900");
        assert_eq!(vars.len(), 13);
    }

    #[test]
    fn ids_find_instances_and_stores() {
        let state = sample(1);
        assert_eq!(state.pid("us-east-a-1"), Some(42));
        assert_eq!(state.pid("store-us-west"), Some(43));
        assert_eq!(state.store("store-us-west").unwrap().port, 9150);
        assert_eq!(state.pid("store-eu-west"), None);
    }

    #[test]
    fn a_state_file_from_before_stores_still_reads() {
        let mut v = serde_json::to_value(sample(1)).unwrap();
        v.as_object_mut().unwrap().remove("proxy_api");
        for r in v["regions"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("store");
            r.as_object_mut().unwrap().remove("store_proxy");
            r.as_object_mut().unwrap().remove("replication");
        }
        let state: LabState = serde_json::from_value(v).unwrap();
        assert_eq!(state.instances().count(), 2);
        assert_eq!(state.proxy_api, "");
    }

    #[test]
    fn a_state_file_from_before_the_global_router_still_reads() {
        let mut v = serde_json::to_value(sample(1)).unwrap();
        v.as_object_mut().unwrap().remove("global");
        v.as_object_mut().unwrap().remove("traffic");
        let state: LabState = serde_json::from_value(v).unwrap();
        assert_eq!(state.global, "");
        assert_eq!(state.traffic, TrafficSpec::default());
        assert!(!state.variables().contains_key("lab.global"));
        // And its traffic, once recorded, round-trips.
        let json = serde_json::to_value(sample(1)).unwrap();
        assert_eq!(json["traffic"]["geo"]["us-east"], 60);
        assert_eq!(json["traffic"]["capacity"]["us-west"], 200);
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LabPaths::new(dir.path());
        std::fs::create_dir_all(&paths.dir).unwrap();
        assert_eq!(read_state(&paths).unwrap(), None);
        let state = sample(1);
        write_state(&paths, &state).unwrap();
        assert_eq!(read_state(&paths).unwrap(), Some(state));
        assert!(!paths.dir.join("state.json.tmp").exists());
    }

    #[test]
    fn load_says_when_the_supervisor_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LabPaths::new(dir.path());
        std::fs::create_dir_all(&paths.dir).unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        // Our own pid is alive but is not a supervisor: that counts as gone too.
        write_state(&paths, &sample(std::process::id())).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("lost its supervisor"), "{err}");
        assert!(err.contains("simian lab down"), "{err}");
    }

    #[test]
    fn a_corrupt_state_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LabPaths::new(dir.path());
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.state(), "{not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        assert!(err.contains("simian lab down"), "{err}");
    }
}
