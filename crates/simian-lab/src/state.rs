//! What a running lab looks like on disk (`<state_dir>/lab/state.json`) and live (`LabStatus`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{procfs, LabError, LabSpec};

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
}

/// A running lab: who supervises it, where its edges and instances listen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub supervisor_pid: u32,
    pub control: PathBuf,
    pub spec: LabSpec,
    pub regions: Vec<Region>,
}

/// One region: its edge router and its zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub name: String,
    /// The edge router's base URL, `http://127.0.0.1:PORT`.
    pub edge: String,
    pub zones: Vec<Zone>,
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

    /// Variables for experiments: `lab.REGION.edge` -> edge URL, `lab.INSTANCE_ID` -> instance
    /// URL, `lab.regions` -> `us-east,us-west`.
    pub fn variables(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        vars.insert("lab.regions".to_string(), names.join(","));
        for region in &self.regions {
            vars.insert(format!("lab.{}.edge", region.name), region.edge.clone());
        }
        for instance in self.instances() {
            vars.insert(format!("lab.{}", instance.id), instance.url.clone());
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabStatus {
    pub supervisor_pid: u32,
    pub spec: LabSpec,
    pub regions: Vec<RegionStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionStatus {
    pub name: String,
    pub edge: String,
    pub instances: Vec<InstanceStatus>,
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
        LabState {
            supervisor_pid,
            control: PathBuf::from("/tmp/x/lab/control.sock"),
            spec: LabSpec {
                regions: 2,
                zones: 1,
                instances: 1,
            },
            regions: vec![
                Region {
                    name: "us-east".into(),
                    edge: "http://127.0.0.1:9000".into(),
                    zones: vec![Zone {
                        name: "us-east-a".into(),
                        instances: vec![inst("us-east-a-1", "us-east-a", "us-east", 9001)],
                    }],
                },
                Region {
                    name: "us-west".into(),
                    edge: "http://127.0.0.1:9100".into(),
                    zones: vec![Zone {
                        name: "us-west-a".into(),
                        instances: vec![inst("us-west-a-1", "us-west-a", "us-west", 9101)],
                    }],
                },
            ],
        }
    }

    #[test]
    fn variables_name_edges_instances_and_regions() {
        let vars = sample(1).variables();
        assert_eq!(vars["lab.regions"], "us-east,us-west");
        assert_eq!(vars["lab.us-east.edge"], "http://127.0.0.1:9000");
        assert_eq!(vars["lab.us-west.edge"], "http://127.0.0.1:9100");
        assert_eq!(vars["lab.us-west-a-1"], "http://127.0.0.1:9101");
        assert_eq!(vars.len(), 5);
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
