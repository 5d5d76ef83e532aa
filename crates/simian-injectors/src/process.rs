//! The `process` injector: SIGKILL (reverted by restarting) or SIGSTOP
//! (reverted with SIGCONT) for lab instances or any local processes.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use simian_experiment::{LabSelector, ProcessAction, ProcessFault as Config, ProcessTarget};

use crate::procfs;
use crate::{BuildCtx, Fault, FaultError, Plan, RevertRecord, Reverted};

/// The journal's record of a process fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessRevert {
    pub action: ProcessAction,
    pub targets: Vec<RevertTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevertTarget {
    pub pid: u32,
    /// /proc start time, so a reused pid is never signalled.
    pub start_time: u64,
    pub label: String,
    pub restart: Option<Restart>,
}

/// How a killed process comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Ask the lab supervisor to bring the instance back (idempotent).
    Lab { control: PathBuf, instance: String },
    /// Run this shell command (it should be idempotent, like `systemctl start`).
    Command { run: String },
}

#[derive(Debug, Clone)]
enum Chosen {
    Lab {
        control: PathBuf,
        id: String,
        state_file: PathBuf,
    },
    Pid {
        pid: u32,
        start: u64,
        label: String,
    },
}

pub struct ProcessFault {
    plan: Plan,
    action: ProcessAction,
    restart: Option<String>,
    chosen: Vec<Chosen>,
}

impl ProcessFault {
    pub fn build(cfg: &Config, ctx: &mut BuildCtx) -> Result<Self, FaultError> {
        let (eligible, universe, candidates) = match &cfg.target {
            ProcessTarget::Lab(sel) => lab_candidates(sel, ctx)?,
            other => pid_candidates(other)?,
        };
        let n = cfg.pick.of(candidates.len());
        let mut idx = rand::seq::index::sample(ctx.rng, candidates.len(), n).into_vec();
        idx.sort_unstable();
        let chosen: Vec<Chosen> = idx.into_iter().map(|i| candidates[i].clone()).collect();
        let lab = matches!(cfg.target, ProcessTarget::Lab(_));
        let (action, revert) = match cfg.action {
            ProcessAction::Stop => ("SIGSTOP", "SIGCONT".to_string()),
            ProcessAction::Kill if lab => {
                ("SIGKILL", "restart through the lab supervisor".to_string())
            }
            ProcessAction::Kill => match &cfg.restart {
                Some(cmd) => ("SIGKILL", format!("run `{cmd}`")),
                None => ("SIGKILL", "none: irreversible".to_string()),
            },
        };
        let plan = Plan {
            backend: "process".into(),
            action: action.into(),
            targets: chosen.iter().map(label).collect(),
            eligible,
            universe,
            revert,
            irreversible: cfg.action == ProcessAction::Kill && !lab && cfg.restart.is_none(),
            lease: None,
        };
        Ok(ProcessFault {
            plan,
            action: cfg.action,
            restart: cfg.restart.clone(),
            chosen,
        })
    }
}

fn label(c: &Chosen) -> String {
    match c {
        Chosen::Lab { id, .. } => format!("lab instance {id}"),
        Chosen::Pid { label, .. } => label.clone(),
    }
}

fn lab_candidates(
    sel: &LabSelector,
    ctx: &BuildCtx,
) -> Result<(usize, String, Vec<Chosen>), FaultError> {
    let lab = ctx.lab.ok_or_else(|| FaultError::Targets {
        message: "this fault targets the lab, but no lab is running".into(),
        hint: Some("start one with `simian lab up`, or run with `simian run --lab`".into()),
    })?;
    let all: Vec<_> = lab.instances().collect();
    let matches: Vec<Chosen> = all
        .iter()
        .filter(|i| sel.region.as_ref().is_none_or(|r| &i.region == r))
        .filter(|i| sel.zone.as_ref().is_none_or(|z| &i.zone == z))
        .filter(|i| sel.instance.as_ref().is_none_or(|n| &i.id == n))
        .map(|i| Chosen::Lab {
            control: lab.control.clone(),
            id: i.id.clone(),
            state_file: state_file(lab),
        })
        .collect();
    if matches.is_empty() {
        let zones: Vec<String> = lab
            .regions
            .iter()
            .flat_map(|r| r.zones.iter().map(|z| z.name.clone()))
            .collect();
        let regions: Vec<String> = lab.regions.iter().map(|r| r.name.clone()).collect();
        return Err(FaultError::Targets {
            message: "no lab instance matches this selector".into(),
            hint: Some(format!(
                "the lab has regions {} and zones {}",
                regions.join(", "),
                zones.join(", ")
            )),
        });
    }
    Ok((all.len(), "lab instances".into(), matches))
}

fn state_file(lab: &simian_lab::LabState) -> PathBuf {
    lab.control.with_file_name("state.json")
}

fn pid_candidates(t: &ProcessTarget) -> Result<(usize, String, Vec<Chosen>), FaultError> {
    let skip = procfs::self_and_ancestors();
    let found: Vec<u32> = match t {
        ProcessTarget::Pidfile(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| FaultError::Targets {
                message: format!("cannot read pid file {path}: {e}"),
                hint: None,
            })?;
            let pid: u32 = text.trim().parse().map_err(|_| FaultError::Targets {
                message: format!("pid file {path} does not hold a pid"),
                hint: None,
            })?;
            vec![pid]
        }
        ProcessTarget::Name(n) => procfs::pids()
            .into_iter()
            .filter(|p| procfs::comm(*p).as_deref() == Some(n))
            .collect(),
        ProcessTarget::Pattern(re) => {
            let re = regex::Regex::new(re).map_err(|e| FaultError::Config(e.to_string()))?;
            procfs::pids()
                .into_iter()
                .filter(|p| procfs::cmdline(*p).is_some_and(|c| re.is_match(&c)))
                .collect()
        }
        ProcessTarget::Lab(_) => unreachable!("lab targets are resolved by lab_candidates"),
    };
    let chosen: Vec<Chosen> = found
        .into_iter()
        .filter(|p| !skip.contains(p))
        .filter_map(|pid| {
            let (_, start) = procfs::stat(pid)?;
            let cmd = procfs::cmdline(pid).unwrap_or_default();
            let short: String = cmd.chars().take(60).collect();
            Some(Chosen::Pid {
                pid,
                start,
                label: format!("pid {pid} ({short})"),
            })
        })
        .collect();
    if chosen.is_empty() {
        return Err(FaultError::Targets {
            message: "no running process matches this target".into(),
            hint: Some("check the target with `pgrep -af PATTERN`".into()),
        });
    }
    let universe = match t {
        ProcessTarget::Pidfile(p) => format!("process in {p}"),
        ProcessTarget::Name(n) => format!("processes named {n}"),
        ProcessTarget::Pattern(p) => format!("processes matching /{p}/"),
        ProcessTarget::Lab(_) => unreachable!(),
    };
    Ok((chosen.len(), universe, chosen))
}

#[async_trait]
impl Fault for ProcessFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        let mut targets = Vec::new();
        for c in &self.chosen {
            match c {
                Chosen::Lab {
                    control,
                    id,
                    state_file,
                } => {
                    // Take the pid as it is now: the instance may have been restarted since the plan.
                    let text = std::fs::read_to_string(state_file).map_err(|e| {
                        FaultError::Action(format!("cannot read the lab state: {e}"))
                    })?;
                    let lab: simian_lab::LabState = serde_json::from_str(&text).map_err(|e| {
                        FaultError::Action(format!("cannot read the lab state: {e}"))
                    })?;
                    let inst = lab
                        .instance(id)
                        .ok_or_else(|| FaultError::Action(format!("lab instance {id} is gone")))?;
                    let Some((_, start)) = procfs::stat(inst.pid) else {
                        continue; // already dead: nothing to do to it, nothing to undo
                    };
                    targets.push(RevertTarget {
                        pid: inst.pid,
                        start_time: start,
                        label: format!("{id} (pid {})", inst.pid),
                        restart: Some(Restart::Lab {
                            control: control.clone(),
                            instance: id.clone(),
                        }),
                    });
                }
                Chosen::Pid { pid, start, label } => targets.push(RevertTarget {
                    pid: *pid,
                    start_time: *start,
                    label: label.clone(),
                    restart: self.restart.clone().map(|run| Restart::Command { run }),
                }),
            }
        }
        Ok(RevertRecord::Process(ProcessRevert {
            action: self.action,
            targets,
        }))
    }

    async fn apply(&self, record: &RevertRecord) -> Result<(), FaultError> {
        let RevertRecord::Process(r) = record else {
            return Err(FaultError::Action("not a process record".into()));
        };
        let sig = match r.action {
            ProcessAction::Kill => Signal::SIGKILL,
            ProcessAction::Stop => Signal::SIGSTOP,
        };
        let mut failed = Vec::new();
        for t in &r.targets {
            if !procfs::same_alive(t.pid, t.start_time) {
                continue;
            }
            if let Err(e) = kill(Pid::from_raw(t.pid as i32), sig) {
                if e != nix::errno::Errno::ESRCH {
                    failed.push(format!("{}: {e}", t.label));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(FaultError::Action(format!(
                "signal {sig} failed for {}",
                failed.join(", ")
            )))
        }
    }
}

/// Undoes a process fault; idempotent.
pub async fn revert(r: &ProcessRevert) -> Result<Reverted, FaultError> {
    let mut actions = Vec::new();
    let mut failed = Vec::new();
    for t in &r.targets {
        match r.action {
            ProcessAction::Stop => {
                if procfs::same_alive(t.pid, t.start_time) {
                    match kill(Pid::from_raw(t.pid as i32), Signal::SIGCONT) {
                        Ok(()) | Err(nix::errno::Errno::ESRCH) => {
                            actions.push(format!("SIGCONT {}", t.label))
                        }
                        Err(e) => failed.push(format!("SIGCONT {}: {e}", t.label)),
                    }
                }
            }
            ProcessAction::Kill => {
                if procfs::same_alive(t.pid, t.start_time) {
                    // The kill never landed (or is still landing): wait briefly for it.
                    for _ in 0..20 {
                        if !procfs::same_alive(t.pid, t.start_time) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                match &t.restart {
                    Some(Restart::Lab { control, instance }) => {
                        match simian_lab::ensure_running(control, instance).await {
                            Ok(pid) => actions.push(format!("{instance} running (pid {pid})")),
                            Err(e) => failed.push(format!("restart {instance}: {e}")),
                        }
                    }
                    Some(Restart::Command { run }) => {
                        if procfs::same_alive(t.pid, t.start_time) {
                            continue;
                        }
                        match run_restart(run).await {
                            Ok(()) => actions.push(format!("ran `{run}`")),
                            Err(e) => failed.push(format!("`{run}`: {e}")),
                        }
                    }
                    None => actions.push(format!("{}: nothing to restart (irreversible)", t.label)),
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(Reverted { actions })
    } else {
        Err(FaultError::Action(failed.join("; ")))
    }
}

/// Runs a restart command. Its output goes nowhere, so a daemon it starts in
/// the background cannot hold a pipe open and hang the revert; it is bounded in time.
async fn run_restart(run: &str) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(run)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(RESTART_TIMEOUT, cmd.status()).await {
        Err(_) => Err(format!(
            "did not finish within {}s",
            RESTART_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(format!("exited with {st}")),
    }
}

const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `n` copies of `sleep` running under a name nothing else on the machine has.
    fn unique_sleepers(dir: &std::path::Path, name: &str, n: usize) -> Vec<std::process::Child> {
        let exe = dir.join(name);
        std::fs::copy("/bin/sleep", &exe).unwrap();
        (0..n)
            .map(|_| std::process::Command::new(&exe).arg("30").spawn().unwrap())
            .collect()
    }

    fn build(target: ProcessTarget, pick: &str) -> Result<ProcessFault, FaultError> {
        let cfg = Config {
            target,
            action: ProcessAction::Stop,
            pick: pick.parse().unwrap(),
            restart: None,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        ProcessFault::build(
            &cfg,
            &mut BuildCtx {
                lab: None,
                run_proxy_api: None,
                rng: &mut rng,
                lease: None,
            },
        )
    }

    #[tokio::test]
    async fn targets_by_name_and_reverts_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let mut kids = unique_sleepers(dir.path(), "smn-inj-test", 3);
        let pids: Vec<u32> = kids.iter().map(|k| k.id()).collect();
        // A child is only named after its program once it has exec'd: wait for all three.
        for _ in 0..200 {
            if pids
                .iter()
                .all(|p| procfs::comm(*p).as_deref() == Some("smn-inj-test"))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let f = build(ProcessTarget::Name("smn-inj-test".into()), "2").unwrap();
        assert_eq!((f.plan().eligible, f.plan().targets.len()), (3, 2));
        let again = build(ProcessTarget::Name("smn-inj-test".into()), "2").unwrap();
        assert_eq!(
            f.plan().targets,
            again.plan().targets,
            "same seed, same picks"
        );

        let record = f.prepare().await.unwrap();
        f.apply(&record).await.unwrap();
        // SIGSTOP lands when the target next runs: poll (bounded) rather than race it.
        let stopped = || {
            pids.iter()
                .filter(|p| procfs::stat(**p).unwrap().0 == 'T')
                .count()
        };
        for _ in 0..200 {
            if stopped() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let stopped = stopped();
        assert_eq!(stopped, 2);
        let RevertRecord::Process(r) = &record else {
            unreachable!()
        };
        revert(r).await.unwrap();
        revert(r).await.unwrap(); // twice is harmless
        assert!(pids.iter().all(|p| procfs::stat(*p).unwrap().0 != 'T'));
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
    }

    #[test]
    fn nothing_matching_is_a_clear_error() {
        let e = build(
            ProcessTarget::Pattern("^no such process 1234567$".into()),
            "all",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("no running process matches"), "{e}");
    }
}
