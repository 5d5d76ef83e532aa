//! Starting, stopping, inspecting and repairing a lab from the outside: what the CLI, the
//! engine and the injectors call.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::control::{self, Request};
use crate::state::{read_state, LabPaths};
use crate::supervisor::{log_tail, running_supervisor, SELF_EXE};
use crate::{load, netns, procfs, LabError, LabSpec, LabState, LabStatus, Network, TrafficSpec};

/// How long `up` waits for the lab to be ready.
const UP_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary to start the supervisor with: `$SIMIAN_BIN` if set (for callers that are not
/// the `simian` binary, such as other crates' tests), else our own executable.
fn simian_exe() -> PathBuf {
    std::env::var_os("SIMIAN_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(SELF_EXE), PathBuf::from)
}

fn absolute(dir: &Path) -> Result<PathBuf, LabError> {
    std::path::absolute(dir).map_err(|e| LabError::io(format!("resolve {}", dir.display()), e))
}

/// Starts a lab in `state_dir` on loopback in the background and waits (≤30s) until every
/// instance is healthy. Fails if a lab already runs there; a lab whose supervisor was killed
/// is cleaned up first.
pub async fn up(state_dir: &Path, spec: LabSpec) -> Result<LabState, LabError> {
    up_with(state_dir, spec, Network::Loopback).await
}

/// [`up`], on loopback or in network namespaces. For [`Network::Netns`] it first checks,
/// creating nothing, that it runs as root with iproute2 installed and that a given subnet
/// is free (after removing what a killed lab of the same state dir left).
pub async fn up_with(
    state_dir: &Path,
    spec: LabSpec,
    network: Network,
) -> Result<LabState, LabError> {
    let traffic = TrafficSpec::new(&spec, &[], &[])?;
    up_with_traffic(state_dir, spec, network, &traffic).await
}

/// [`up_with`], with a geo split and capacities (`lab up --geo --capacity`); see
/// [`TrafficSpec::new`].
pub async fn up_with_traffic(
    state_dir: &Path,
    spec: LabSpec,
    network: Network,
    traffic: &TrafficSpec,
) -> Result<LabState, LabError> {
    spec.validate()?;
    // Without privileges, fail before touching anything, the state dir included.
    let ip = match network {
        Network::Loopback => None,
        Network::Netns(_) => Some(netns::preflight()?),
    };
    let state_dir = absolute(state_dir)?;
    let paths = LabPaths::new(&state_dir);
    std::fs::create_dir_all(&paths.dir)
        .map_err(|e| LabError::io(format!("create {}", paths.dir.display()), e))?;
    let leftovers = match load(&state_dir) {
        Ok(Some(state)) => {
            return Err(LabError::AlreadyRunning {
                dir: state_dir,
                pid: state.supervisor_pid,
            })
        }
        Ok(None) => false,
        // Leftovers of a dead lab, or a state file we cannot read.
        Err(LabError::SupervisorGone { .. } | LabError::State { .. }) => true,
        Err(e) => return Err(e),
    };
    if let Some(pid) = running_supervisor(&paths) {
        // Still starting, or its state file was removed or mangled by hand.
        return Err(LabError::AlreadyRunning {
            dir: state_dir,
            pid,
        });
    }
    if leftovers || paths.netns().exists() {
        cleanup(&paths, read_state(&paths).ok().flatten().as_ref()).await?;
    }
    if let (Network::Netns(subnet), Some(ip)) = (network, ip) {
        let paths = paths.clone();
        tokio::task::spawn_blocking(move || {
            netns::remove_leftovers(&paths, &ip)?;
            subnet.map_or(Ok(()), |s| netns::check_free(&ip, s))
        })
        .await
        .expect("the netns check does not panic")?;
    }

    let log_path = paths.supervisor_log();
    let log = std::fs::File::create(&log_path)
        .map_err(|e| LabError::io(format!("create {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| LabError::io(format!("open {}", log_path.display()), e))?;
    let mut cmd = tokio::process::Command::new(simian_exe());
    cmd.arg0("simian")
        .arg("--state-dir")
        .arg(&state_dir)
        .args(["lab", "supervise"])
        .args(["--regions", &spec.regions.to_string()])
        .args(["--zones", &spec.zones.to_string()])
        .args(["--instances", &spec.instances.to_string()])
        .args(traffic.to_args());
    if let Network::Netns(subnet) = network {
        cmd.arg("--netns");
        if let Some(s) = subnet {
            cmd.args(["--subnet", &s.to_string()]);
        }
    }
    cmd.env_remove("SIMIAN_STATE_DIR")
        // Its own process group, away from the terminal's Ctrl-C; no cwd pinned.
        .process_group(0)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::io("start the lab supervisor", e))?;
    let pid = child.id().unwrap_or(0);

    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = log_tail(&log_path, 1);
            let detail = if tail.is_empty() {
                format!("the supervisor exited ({status})")
            } else {
                format!(
                    "the supervisor exited ({status}): {}",
                    tail.trim_start_matches("error: ")
                )
            };
            return Err(LabError::StartFailed {
                detail,
                log: log_path,
            });
        }
        if let Ok(Some(state)) = read_state(&paths) {
            if state.supervisor_pid == pid {
                // `child` is dropped without being killed; tokio reaps it if it exits while we run.
                return Ok(state);
            }
        }
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            return Err(LabError::StartFailed {
                detail: format!("not ready within {}s", UP_TIMEOUT.as_secs()),
                log: log_path,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops the lab in `state_dir` and removes its state. Idempotent: `Ok(false)` when nothing
/// was there. If the supervisor is gone (killed), kills any instance or store left from
/// `state.json` (checking `/proc/PID/cmdline` first, so a reused pid is left alone), removes
/// the network namespaces of a `--netns` lab and the files.
pub async fn down(state_dir: &Path) -> Result<bool, LabError> {
    let state_dir = absolute(state_dir)?;
    let paths = LabPaths::new(&state_dir);
    if !paths.dir.exists() {
        return Ok(false);
    }
    // An unreadable state file is still a lab to clean up.
    let state = read_state(&paths).ok().flatten();
    let mut found = paths.state().exists();

    let supervisor = state
        .as_ref()
        .map(|s| s.supervisor_pid)
        .filter(|&pid| procfs::is_ours(pid, "lab supervise", None))
        .or_else(|| running_supervisor(&paths));
    if let Some(pid) = supervisor {
        found = true;
        // A stopped (SIGSTOP) supervisor could neither answer nor act on SIGTERM.
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        let asked = control::call(
            &paths.control(),
            &Request::Shutdown,
            Duration::from_secs(10),
        )
        .await
        .is_ok();
        if !asked {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if !wait_dead(&[pid], Duration::from_secs(5)).await {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            wait_dead(&[pid], Duration::from_secs(2)).await;
        }
    }
    found |= cleanup(&paths, state.as_ref()).await?;
    Ok(found)
}

/// Kills instances and stores left by a dead supervisor, removes the network namespaces it
/// left (true if there were any to remove) and the lab's state and socket.
async fn cleanup(paths: &LabPaths, state: Option<&LabState>) -> Result<bool, LabError> {
    if let Some(state) = state {
        let instances = state
            .instances()
            .map(|i| (i.pid, "lab instance", i.id.as_str()));
        let stores = state
            .regions
            .iter()
            .map(|r| (r.store.pid, "lab store", r.name.as_str()));
        let mut left = Vec::new();
        for (pid, role, ident) in instances.chain(stores) {
            if procfs::is_ours(pid, role, Some(ident)) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                left.push(pid);
            }
        }
        wait_dead(&left, Duration::from_secs(2)).await;
    }
    // After the processes: a namespace goes away once nothing runs in it.
    let recorded = state.and_then(|s| s.netns.clone());
    let paths2 = paths.clone();
    let had_netns =
        tokio::task::spawn_blocking(move || netns::teardown_recorded(&paths2, recorded.as_ref()))
            .await
            .expect("the netns teardown does not panic");
    for path in [
        paths.state(),
        paths.dir.join("state.json.tmp"),
        paths.control(),
    ] {
        let _ = std::fs::remove_file(path);
    }
    had_netns
}

/// Waits until none of `pids` is alive (zombies count as dead); false on timeout.
async fn wait_dead(pids: &[u32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while pids.iter().any(|&p| procfs::is_alive(p)) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Makes sure instance or store `instance_id` (e.g. `us-east-a-1`, `store-us-east`) runs:
/// running → its pid; stopped (SIGSTOP) → SIGCONT; dead → respawned on the same port and
/// healthy (≤10s). Returns the pid. `control` is [`LabState::control`].
pub async fn ensure_running(control: &Path, instance_id: &str) -> Result<u32, LabError> {
    let request = Request::EnsureRunning {
        instance: instance_id.to_string(),
    };
    let reply = control::call(control, &request, Duration::from_secs(30)).await?;
    reply.pid.ok_or_else(|| LabError::Control {
        socket: control.to_path_buf(),
        detail: "the reply carries no pid".into(),
    })
}

/// A live view of the lab: each instance running, stopped or dead, and whether its edge
/// believes it healthy. `Ok(None)` when no lab runs; errors as [`load`].
pub async fn status(state_dir: &Path) -> Result<Option<LabStatus>, LabError> {
    let Some(state) = load(state_dir)? else {
        return Ok(None);
    };
    let reply = control::call(&state.control, &Request::Status, Duration::from_secs(5)).await?;
    reply.status.map(Some).ok_or_else(|| LabError::Control {
        socket: state.control.clone(),
        detail: "the reply carries no status".into(),
    })
}
