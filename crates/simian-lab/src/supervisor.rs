//! The supervisor (`simian lab supervise`): spawns the instances, runs one edge router per
//! region, keeps `state.json` current and answers the control socket.
//!
//! It never restarts an instance on its own: a chaos experiment that kills a zone must see
//! the zone stay dead. It reaps dead instances, reports them dead, and brings one back only
//! when asked (`ensure_running`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::control::{Reply, Request};
use crate::edge::{Backend, Edge, EdgeConfig};
use crate::state::{write_state, InstanceStatus, LabPaths, ProcessState, RegionStatus};
use crate::topology::Placement;
use crate::{procfs, Instance, LabError, LabSpec, LabState, LabStatus, Region, Zone};

/// How long a fresh instance has to print its `listening` line.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `ensure_running` waits for a respawned instance to answer `/health`.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the whole lab has to become healthy at start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Grace between SIGTERM and SIGKILL at shutdown.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// The binary to run for children: our own, even if the file was replaced since we started.
pub(crate) const SELF_EXE: &str = "/proc/self/exe";

/// Started through [`SELF_EXE`], the kernel names us `exe`; `ps -o comm` and `top` should
/// say `simian`. Call on the main thread: its name is the process name.
pub(crate) fn name_process() {
    let _ = nix::sys::prctl::set_name(c"simian");
}

struct Member {
    place: Placement,
    port: u16,
    pid: u32,
    /// False once our reaper saw the process exit.
    alive: bool,
}

struct Sup {
    paths: LabPaths,
    spec: LabSpec,
    members: Mutex<Vec<Member>>,
    /// One per member: serializes `ensure_running` on the same instance.
    restarting: Vec<tokio::sync::Mutex<()>>,
    edges: OnceLock<Vec<Edge>>,
    /// Set (under the `members` lock) when shutdown starts: nothing new gets spawned.
    stopping: AtomicBool,
    /// True once shutdown finished.
    shut_down: tokio::sync::Mutex<bool>,
    /// Wakes the main loop after a `shutdown` request was served.
    exit: tokio::sync::Notify,
    write_lock: Mutex<()>,
}

/// Runs the supervisor until shutdown. Returns the process exit code.
pub async fn run(state_dir: &Path, spec: LabSpec) -> Result<i32, LabError> {
    use tokio::signal::unix::{signal, SignalKind};

    spec.validate()?;
    name_process();
    let paths = LabPaths::new(state_dir);
    std::fs::create_dir_all(&paths.dir)
        .map_err(|e| LabError::io(format!("create {}", paths.dir.display()), e))?;
    let _lock = take_lock(state_dir, &paths)?;
    for stale in [paths.state(), paths.control()] {
        let _ = std::fs::remove_file(stale);
    }

    let watch = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| LabError::io(format!("watch {name}"), e))
    };
    let mut term = watch(SignalKind::terminate(), "SIGTERM")?;
    let mut int = watch(SignalKind::interrupt(), "SIGINT")?;
    // Closing the terminal that ran `lab up` must not take the lab down.
    let mut hup = watch(SignalKind::hangup(), "SIGHUP")?;

    let members: Vec<Member> = spec
        .placements()
        .into_iter()
        .map(|place| Member {
            place,
            port: 0,
            pid: 0,
            alive: false,
        })
        .collect();
    let sup = Arc::new(Sup {
        restarting: members.iter().map(|_| Default::default()).collect(),
        members: Mutex::new(members),
        paths: paths.clone(),
        spec,
        edges: OnceLock::new(),
        stopping: AtomicBool::new(false),
        shut_down: Default::default(),
        exit: Default::default(),
        write_lock: Mutex::new(()),
    });

    let control = UnixListener::bind(paths.control())
        .map_err(|e| LabError::io(format!("listen on {}", paths.control().display()), e))?;
    tokio::spawn(control_loop(sup.clone(), control));

    eprintln!(
        "supervisor {}: starting {spec} in {}",
        std::process::id(),
        paths.dir.display()
    );
    let started = tokio::select! {
        r = sup.start() => r,
        _ = term.recv() => Err("got SIGTERM while starting".to_string()),
        _ = int.recv() => Err("got SIGINT while starting".to_string()),
        _ = sup.exit.notified() => return Ok(0),
    };
    if let Err(e) = started {
        sup.shutdown().await;
        return Err(LabError::Supervisor(e));
    }
    eprintln!("supervisor: ready");

    loop {
        tokio::select! {
            _ = term.recv() => eprintln!("supervisor: SIGTERM"),
            _ = int.recv() => eprintln!("supervisor: SIGINT"),
            _ = hup.recv() => { eprintln!("supervisor: SIGHUP ignored"); continue; }
            // A `shutdown` request already stopped everything.
            _ = sup.exit.notified() => return Ok(0),
        }
        break;
    }
    sup.shutdown().await;
    Ok(0)
}

/// Takes the supervisor lock of this state dir and writes our pid into it; held until exit.
fn take_lock(state_dir: &Path, paths: &LabPaths) -> Result<Flock<File>, LabError> {
    let path = paths.lock();
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LabError::io(format!("open {}", path.display()), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let mut f: &File = &lock;
            f.set_len(0)
                .and_then(|()| writeln!(f, "{}", std::process::id()))
                .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
            Ok(lock)
        }
        Err((_, _)) => Err(LabError::AlreadyRunning {
            dir: state_dir.to_path_buf(),
            pid: lock_pid(paths).unwrap_or(0),
        }),
    }
}

/// The pid written in the supervisor lock file, whether or not it still runs.
pub(crate) fn lock_pid(paths: &LabPaths) -> Option<u32> {
    std::fs::read_to_string(paths.lock())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The live supervisor of this state dir, if any (also while it is still starting).
pub(crate) fn running_supervisor(paths: &LabPaths) -> Option<u32> {
    lock_pid(paths).filter(|&pid| procfs::is_ours(pid, "lab supervise", None))
}

impl Sup {
    async fn start(self: &Arc<Self>) -> Result<(), String> {
        let n = self.members.lock().unwrap().len();
        for i in 0..n {
            self.spawn_instance(i, 0).await?;
        }
        let mut edges = Vec::new();
        for region in self.spec.region_names() {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("listen for the {region} edge: {e}"))?;
            let backends = self
                .members
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.place.region == region)
                .map(|m| {
                    let addr = SocketAddr::from(([127, 0, 0, 1], m.port));
                    Backend::new(&m.place.id, &m.place.zone, addr)
                })
                .collect();
            let edge = Edge::start(region, listener, backends, EdgeConfig::default())
                .map_err(|e| format!("start the {region} edge: {e}"))?;
            eprintln!("edge {region}: listening on {}", edge.addr());
            edges.push(edge);
        }
        let _ = self.edges.set(edges);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let sick: Vec<String> = self
                .edges()
                .iter()
                .flat_map(|e| e.backends())
                .filter(|b| !b.is_healthy())
                .map(|b| b.id.clone())
                .collect();
            if sick.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "instances not healthy after {}s: {}",
                    READY_TIMEOUT.as_secs(),
                    sick.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.write_state().map_err(|e| e.to_string())
    }

    fn edges(&self) -> &[Edge] {
        self.edges.get().map_or(&[], Vec::as_slice)
    }

    /// Starts member `i` listening on `port` (0: any) and returns its pid once it listens.
    async fn spawn_instance(self: &Arc<Self>, i: usize, port: u16) -> Result<u32, String> {
        let place = self.members.lock().unwrap()[i].place.clone();
        let log_path = self.paths.instance_log(&place.id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let mut cmd = tokio::process::Command::new(SELF_EXE);
        cmd.arg0("simian")
            .args(["lab", "instance", "--region", &place.region])
            .args(["--zone", &place.zone, "--id", &place.id])
            .args(["--port", &port.to_string()])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // The instance's parent-death signal fires when the *thread* that forked it exits.
        // We spawn from the main thread or a runtime worker, which live as long as we do.
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", place.id))?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take().expect("stdout is piped");

        let mut line = String::new();
        let read =
            tokio::time::timeout(SPAWN_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.port());
        let Some(port) = port.filter(|_| matches!(read, Ok(Ok(_)))) else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(format!(
                "{} did not start listening; see {}",
                place.id,
                log_path.display()
            ));
        };

        {
            let mut members = self.members.lock().unwrap();
            if self.stopping.load(Ordering::SeqCst) {
                let _ = child.start_kill();
                return Err("the lab is shutting down".into());
            }
            let m = &mut members[i];
            (m.port, m.pid, m.alive) = (port, pid, true);
        }
        eprintln!("{}: started, pid {pid}, port {port}", place.id);

        let sup = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let mut members = sup.members.lock().unwrap();
            let m = &mut members[i];
            if m.pid == pid {
                m.alive = false;
            }
            match status {
                Ok(s) => eprintln!("{}: pid {pid} exited ({s})", m.place.id),
                Err(e) => eprintln!("{}: pid {pid} lost ({e})", m.place.id),
            }
        });
        Ok(pid)
    }

    /// Running: its pid. Stopped: SIGCONT, its pid. Dead: respawn on the same port, wait
    /// until it answers `/health`, record it, the new pid.
    async fn ensure_running(self: &Arc<Self>, id: &str) -> Result<u32, String> {
        let Some(i) = self.index(id) else {
            return Err(format!(
                "no instance `{id}` in this lab: `simian lab status` lists the instance ids"
            ));
        };
        let _serial = self.restarting[i].lock().await;
        if self.stopping.load(Ordering::SeqCst) {
            return Err("the lab is shutting down".into());
        }
        let (pid, alive, port) = {
            let m = &self.members.lock().unwrap()[i];
            (m.pid, m.alive, m.port)
        };
        if alive && procfs::is_alive(pid) {
            if procfs::is_stopped(pid) {
                kill(Pid::from_raw(pid as i32), Signal::SIGCONT)
                    .map_err(|e| format!("resume {id} (pid {pid}): {e}"))?;
                eprintln!("{id}: pid {pid} resumed (SIGCONT)");
            }
            return Ok(pid);
        }
        if alive {
            // Dead but not reaped yet: let the reaper record it first.
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.members.lock().unwrap()[i].alive && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        let deadline = Instant::now() + RESTART_TIMEOUT;
        let pid = loop {
            // The port may take a moment to be free again; retry within the deadline.
            match self.spawn_instance(i, port).await {
                Ok(pid) => break pid,
                Err(e) if Instant::now() > deadline || self.stopping.load(Ordering::SeqCst) => {
                    return Err(format!("restart {id} on port {port}: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if answers_health(addr).await {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "restart {id}: pid {pid} does not answer /health after {}s",
                    RESTART_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for edge in self.edges() {
            edge.mark_up(id, "restarted and answering /health");
        }
        self.write_state().map_err(|e| e.to_string())?;
        Ok(pid)
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.members
            .lock()
            .unwrap()
            .iter()
            .position(|m| m.place.id == id)
    }

    fn write_state(&self) -> Result<(), LabError> {
        let _one_writer = self.write_lock.lock().unwrap();
        let state = self.snapshot();
        write_state(&self.paths, &state)
    }

    fn snapshot(&self) -> LabState {
        let members = self.members.lock().unwrap();
        let edges: HashMap<&str, String> =
            self.edges().iter().map(|e| (e.region(), e.url())).collect();
        let regions = self
            .spec
            .region_names()
            .into_iter()
            .map(|region| Region {
                name: region.to_string(),
                edge: edges.get(region).cloned().unwrap_or_default(),
                zones: self
                    .spec
                    .zone_names(region)
                    .into_iter()
                    .map(|zone| Zone {
                        instances: members
                            .iter()
                            .filter(|m| m.place.zone == zone)
                            .map(|m| Instance {
                                id: m.place.id.clone(),
                                region: m.place.region.clone(),
                                zone: m.place.zone.clone(),
                                url: format!("http://127.0.0.1:{}", m.port),
                                port: m.port,
                                pid: m.pid,
                            })
                            .collect(),
                        name: zone,
                    })
                    .collect(),
            })
            .collect();
        LabState {
            supervisor_pid: std::process::id(),
            control: self.paths.control(),
            spec: self.spec,
            regions,
        }
    }

    fn status(&self) -> LabStatus {
        let state = self.snapshot();
        let members = self.members.lock().unwrap();
        let healthy = |id: &str| self.edges().iter().any(|e| e.is_healthy(id));
        let regions = state
            .regions
            .iter()
            .map(|r| RegionStatus {
                name: r.name.clone(),
                edge: r.edge.clone(),
                instances: r
                    .zones
                    .iter()
                    .flat_map(|z| &z.instances)
                    .map(|inst| {
                        let alive = members.iter().any(|m| m.place.id == inst.id && m.alive);
                        let state = match procfs::state(inst.pid) {
                            _ if !alive => ProcessState::Dead,
                            None | Some('Z' | 'X' | 'x') => ProcessState::Dead,
                            Some('T' | 't') => ProcessState::Stopped,
                            Some(_) => ProcessState::Running,
                        };
                        InstanceStatus {
                            id: inst.id.clone(),
                            region: inst.region.clone(),
                            zone: inst.zone.clone(),
                            url: inst.url.clone(),
                            port: inst.port,
                            pid: inst.pid,
                            state,
                            healthy: healthy(&inst.id),
                        }
                    })
                    .collect(),
            })
            .collect();
        LabStatus {
            supervisor_pid: state.supervisor_pid,
            spec: state.spec,
            regions,
        }
    }

    /// Stops every instance (SIGCONT first: a stopped process would not act on SIGTERM),
    /// SIGTERM, SIGKILL after the grace period, then removes `state.json` and the socket.
    async fn shutdown(&self) {
        let mut done = self.shut_down.lock().await;
        if *done {
            return;
        }
        eprintln!("supervisor: stopping");
        let targets: Vec<(u32, String)> = {
            let members = self.members.lock().unwrap();
            self.stopping.store(true, Ordering::SeqCst);
            members
                .iter()
                .filter(|m| m.alive)
                .map(|m| (m.pid, m.place.id.clone()))
                .collect()
        };
        let signal_all = |sig: Signal| {
            for (pid, id) in &targets {
                if procfs::is_ours(*pid, "lab instance", Some(id)) {
                    let pid = Pid::from_raw(*pid as i32);
                    if sig != Signal::SIGKILL {
                        let _ = kill(pid, Signal::SIGCONT);
                    }
                    let _ = kill(pid, sig);
                }
            }
        };
        signal_all(Signal::SIGTERM);
        if !self.wait_all_reaped(TERM_GRACE).await {
            eprintln!("supervisor: instances left after SIGTERM, sending SIGKILL");
            signal_all(Signal::SIGKILL);
            self.wait_all_reaped(Duration::from_secs(1)).await;
        }
        for path in [self.paths.state(), self.paths.control()] {
            let _ = std::fs::remove_file(path);
        }
        *done = true;
        eprintln!("supervisor: stopped");
    }

    async fn wait_all_reaped(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if !self.members.lock().unwrap().iter().any(|m| m.alive) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn serve(self: &Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Status => Reply {
                status: Some(self.status()),
                ..Reply::ok()
            },
            Request::EnsureRunning { instance } => match self.ensure_running(&instance).await {
                Ok(pid) => Reply {
                    pid: Some(pid),
                    ..Reply::ok()
                },
                Err(e) => Reply::error(e),
            },
            Request::Shutdown => {
                self.shutdown().await;
                Reply::ok()
            }
        }
    }
}

/// `GET /health` answered 200 within 200ms.
async fn answers_health(addr: SocketAddr) -> bool {
    let check = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /health HTTP/1.1\r\nhost: lab\r\nconnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await?;
        std::io::Result::Ok(&head == b"HTTP/1.1 200")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(200), check).await,
        Ok(Ok(true))
    )
}

async fn control_loop(sup: Arc<Sup>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(control_conn(sup.clone(), stream));
            }
            Err(e) => {
                eprintln!("supervisor: control socket: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn control_conn(sup: Arc<Sup>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let (reply, exit) = match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let exit = request == Request::Shutdown;
                (sup.serve(request).await, exit)
            }
            Err(e) => (Reply::error(format!("bad request: {e}")), false),
        };
        let mut out = serde_json::to_string(&reply).expect("replies serialize");
        out.push('\n');
        let sent = write.write_all(out.as_bytes()).await;
        if exit {
            let _ = write.flush().await;
            sup.exit.notify_one();
            return;
        }
        if sent.is_err() {
            return;
        }
    }
}

/// Reads the last `n` lines of a log, for error messages.
pub(crate) fn log_tail(path: &PathBuf, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
