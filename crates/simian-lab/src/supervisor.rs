//! The supervisor (`simian lab supervise`): spawns one store per region, runs the embedded
//! fault proxy with one proxy per store (`store-<region>`), spawns the instances (each told
//! to reach its region's store through that proxy), runs one edge router per region, keeps
//! `state.json` current and answers the control socket. It also creates one TCP-mode proxy
//! per replication link (`repl-<from>-<to>`, upstream: `<to>`'s store) and tells the stores
//! where they are in `replication.json`. In front of the edges it runs the global router,
//! which shares the steering table with them (see [`crate::global`]).
//!
//! With `--netns` it first builds the lab's network namespaces (see [`crate::netns`]), starts
//! each store in its region's namespace and each instance in its zone's (`ip netns exec`),
//! binds the store proxies on the host's address of the router link, and lets stores
//! replicate directly to each other through the router namespace, without `repl-*` proxies.
//! It deletes the namespaces when it stops.
//!
//! It never restarts an instance or a store on its own: a chaos experiment that kills a zone
//! must see the zone stay dead. It reaps dead processes, reports them dead, and brings one
//! back only when asked (`ensure_running`), on the same port, so the proxy and the instances
//! find it where it was.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
use crate::edge::{Backend, Edge, EdgeConfig, Failover};
use crate::global::{Global, GlobalConfig};
use crate::netns::LabNet;
use crate::state::{
    write_state, InstanceStatus, LabPaths, ProcessState, RegionStatus, ReplLink, StoreStatus,
};
use crate::steering::Steering;
use crate::store::repl::{self, Link};
use crate::store::store_id;
use crate::{
    procfs, Instance, LabError, LabSpec, LabState, LabStatus, NetnsLayout, Network, Region, Store,
    TrafficSpec, Zone,
};

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

/// What a member process is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Instance { zone: String },
    Store,
}

/// One process the supervisor starts: an instance or a region's store.
struct Member {
    /// `us-east-a-1`, or `store-us-east`.
    id: String,
    region: String,
    role: Role,
    /// Where it listens: 127.0.0.1, or its namespace's address with `--netns`.
    host: IpAddr,
    /// With `--netns`: the namespace it runs in.
    netns: Option<String>,
    port: u16,
    pid: u32,
    /// False once our reaper saw the process exit.
    alive: bool,
}

impl Member {
    fn zone(&self) -> Option<&str> {
        match &self.role {
            Role::Instance { zone } => Some(zone),
            Role::Store => None,
        }
    }

    /// Whether its `pid` still is this member's process (not a reused pid): its command line
    /// has the subcommand and, as a whole argument, the instance id or the store's region.
    fn still_ours(&self) -> bool {
        match self.role {
            Role::Instance { .. } => procfs::is_ours(self.pid, "lab instance", Some(&self.id)),
            Role::Store => procfs::is_ours(self.pid, "lab store", Some(&self.region)),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// How a region's instances reach its store.
#[derive(Debug, Clone)]
struct StoreRoute {
    region: String,
    /// The base URL instances get as `--store`: the proxy's, or the store's own without one.
    via: String,
}

struct Sup {
    paths: LabPaths,
    spec: LabSpec,
    /// The geo split and the capacities.
    traffic: TrafficSpec,
    /// Shared by the global router and the edges; changed through the router's API.
    steering: Arc<Steering>,
    global: OnceLock<Global>,
    /// With `--netns`: the layout, and the `ip` command that runs members in it.
    layout: Option<NetnsLayout>,
    ip: Option<PathBuf>,
    /// The namespaces themselves; taken and removed at shutdown.
    net: Mutex<Option<LabNet>>,
    members: Mutex<Vec<Member>>,
    /// One per member: serializes `ensure_running` on the same instance.
    restarting: Vec<tokio::sync::Mutex<()>>,
    edges: OnceLock<Vec<Edge>>,
    /// The embedded fault proxy; taken at shutdown.
    proxy: tokio::sync::Mutex<Option<simian_proxy::Server>>,
    /// `http://127.0.0.1:PORT` of the proxy's admin API, once it runs.
    proxy_api: OnceLock<String>,
    /// Per region, fixed once the proxy runs: a restarted instance gets the same `--store`.
    routes: OnceLock<Vec<StoreRoute>>,
    /// The replication links, fixed once the proxy runs.
    links: OnceLock<Vec<Link>>,
    /// Set (under the `members` lock) when shutdown starts: nothing new gets spawned.
    stopping: AtomicBool,
    /// True once shutdown finished.
    shut_down: tokio::sync::Mutex<bool>,
    /// Wakes the main loop after a `shutdown` request was served.
    exit: tokio::sync::Notify,
    write_lock: Mutex<()>,
}

/// Runs the supervisor until shutdown. Returns the process exit code.
pub async fn run(
    state_dir: &Path,
    spec: LabSpec,
    network: Network,
    traffic: TrafficSpec,
) -> Result<i32, LabError> {
    use tokio::signal::unix::{signal, SignalKind};

    spec.validate()?;
    name_process();
    let paths = LabPaths::new(state_dir);
    std::fs::create_dir_all(&paths.dir)
        .map_err(|e| LabError::io(format!("create {}", paths.dir.display()), e))?;
    let _lock = take_lock(state_dir, &paths)?;
    // A new lab starts with empty stores: the write-ahead files of the last one go too.
    let wals = crate::topology::REGION_NAMES.map(|r| paths.wal(&store_id(r)));
    for stale in [paths.state(), paths.control(), paths.replication()]
        .into_iter()
        .chain(wals)
    {
        let _ = std::fs::remove_file(stale);
    }

    let watch = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| LabError::io(format!("watch {name}"), e))
    };
    let mut term = watch(SignalKind::terminate(), "SIGTERM")?;
    let mut int = watch(SignalKind::interrupt(), "SIGINT")?;
    // Closing the terminal that ran `lab up` must not take the lab down.
    let mut hup = watch(SignalKind::hangup(), "SIGHUP")?;

    // Namespaces before anything that runs in them. Dropping `net` removes them, so an
    // early return below leaves nothing behind.
    let net = match network {
        Network::Loopback => None,
        Network::Netns(subnet) => {
            let paths = paths.clone();
            let net =
                tokio::task::spawn_blocking(move || crate::netns::setup(&paths, &spec, subnet))
                    .await
                    .expect("the netns setup does not panic")?;
            eprintln!(
                "netns: {} namespaces in {} (router {})",
                net.layout.namespaces().len(),
                net.layout.subnet,
                net.layout.core
            );
            Some(net)
        }
    };
    let layout = net.as_ref().map(|n| n.layout.clone());
    let loopback = (IpAddr::V4(Ipv4Addr::LOCALHOST), None);
    let place_zone = |zone: &str| match layout.as_ref().and_then(|l| l.zone(zone)) {
        Some(z) => (IpAddr::V4(z.addr), Some(z.netns.clone())),
        None => loopback.clone(),
    };
    let place_store = |region: &str| match layout.as_ref().and_then(|l| l.region(region)) {
        Some(r) => (IpAddr::V4(r.store_addr), Some(r.netns.clone())),
        None => loopback.clone(),
    };

    let mut members: Vec<Member> = spec
        .placements()
        .into_iter()
        .map(|place| {
            let (host, netns) = place_zone(&place.zone);
            Member {
                id: place.id,
                region: place.region,
                role: Role::Instance { zone: place.zone },
                host,
                netns,
                port: 0,
                pid: 0,
                alive: false,
            }
        })
        .collect();
    members.extend(spec.region_names().into_iter().map(|region| {
        let (host, netns) = place_store(region);
        Member {
            id: store_id(region),
            region: region.to_string(),
            role: Role::Store,
            host,
            netns,
            port: 0,
            pid: 0,
            alive: false,
        }
    }));
    let sup = Arc::new(Sup {
        restarting: members.iter().map(|_| Default::default()).collect(),
        members: Mutex::new(members),
        paths: paths.clone(),
        steering: Arc::new(Steering::new(&spec.region_names())),
        global: OnceLock::new(),
        traffic,
        spec,
        ip: net.as_ref().map(|n| n.ip.clone()),
        layout,
        net: Mutex::new(net),
        edges: OnceLock::new(),
        proxy: Default::default(),
        proxy_api: OnceLock::new(),
        routes: OnceLock::new(),
        links: OnceLock::new(),
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
        // Stores first: the proxy needs their addresses, the instances the proxy's.
        for i in self.indices(|m| m.role == Role::Store) {
            self.spawn_member(i, 0).await?;
        }
        self.start_proxy().await?;
        for i in self.indices(|m| m.role != Role::Store) {
            self.spawn_member(i, 0).await?;
        }
        // Every edge's address before any starts: each may fail over to another.
        let mut listeners = Vec::new();
        let mut peers = std::collections::BTreeMap::new();
        for region in self.spec.region_names() {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("listen for the {region} edge: {e}"))?;
            let addr = listener
                .local_addr()
                .map_err(|e| format!("listen for the {region} edge: {e}"))?;
            peers.insert(region.to_string(), format!("http://{addr}"));
            listeners.push((region, listener));
        }
        let mut edges = Vec::new();
        for (region, listener) in listeners {
            let backends = self
                .members
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.region == region)
                .filter_map(|m| Some(Backend::new(&m.id, m.zone()?, m.addr())))
                .collect();
            let config = EdgeConfig {
                capacity: self.traffic.capacity.get(region).copied(),
                failover: Some(Failover {
                    steering: self.steering.clone(),
                    peers: peers.clone(),
                }),
                ..EdgeConfig::default()
            };
            let edge = Edge::start(region, listener, backends, config)
                .map_err(|e| format!("start the {region} edge: {e}"))?;
            match self.traffic.capacity.get(region) {
                Some(n) => eprintln!(
                    "edge {region}: listening on {}, capacity {n}/s",
                    edge.addr()
                ),
                None => eprintln!("edge {region}: listening on {}", edge.addr()),
            }
            edges.push(edge);
        }
        let global = GlobalConfig {
            geo: self.traffic.geo_shares(&self.spec),
            edges: peers,
            steering: self.steering.clone(),
            edge_stats: edges
                .iter()
                .map(|e| (e.region().to_string(), e.stats()))
                .collect(),
        };
        let _ = self.edges.set(edges);
        // On 127.0.0.1 also with --netns, like the edges.
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("listen for the global router: {e}"))?;
        let global =
            Global::start(listener, global).map_err(|e| format!("start the global router: {e}"))?;
        eprintln!("global router: listening on {}", global.addr());
        let _ = self.global.set(global);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut sick: Vec<String> = self
                .edges()
                .iter()
                .flat_map(|e| e.backends())
                .filter(|b| !b.is_healthy())
                .map(|b| b.id.clone())
                .collect();
            let stores: Vec<(String, SocketAddr)> = {
                let members = self.members.lock().unwrap();
                members
                    .iter()
                    .filter(|m| m.role == Role::Store)
                    .map(|m| (m.id.clone(), m.addr()))
                    .collect()
            };
            for (id, addr) in stores {
                if !answers_health(addr).await {
                    sick.push(id);
                }
            }
            if sick.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not healthy after {}s: {}",
                    READY_TIMEOUT.as_secs(),
                    sick.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.write_state().map_err(|e| e.to_string())
    }

    /// Starts the embedded fault proxy: its admin API on a free port, and one HTTP-mode proxy
    /// per store, named like the store (`store-<region>`). Fixes the route of each region.
    async fn start_proxy(&self) -> Result<(), String> {
        use simian_proxy::{Mode, ProxyConfig, Server};

        let stores: Vec<(String, String, SocketAddr)> = {
            let members = self.members.lock().unwrap();
            members
                .iter()
                .filter(|m| m.role == Role::Store)
                .map(|m| (m.id.clone(), m.region.clone(), m.addr()))
                .collect()
        };
        // With `--netns` the zones reach the host on its end of the router link.
        let listen_ip: IpAddr = match &self.layout {
            Some(l) => IpAddr::V4(l.host_addr),
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let mut configs: Vec<ProxyConfig> = stores
            .iter()
            .map(|(id, _, addr)| ProxyConfig {
                name: id.clone(),
                listen: SocketAddr::new(listen_ip, 0).to_string(),
                upstream: addr.to_string(),
                enabled: true,
                mode: Mode::Http,
            })
            .collect();
        // Replication links: from each region to every other, upstream the peer's store.
        // With `--netns` they go store to store across the router namespace, where nftables
        // rules partition them: no proxy (an empty name).
        let direct = self.layout.is_some();
        let mut links = Vec::new();
        for (_, from, _) in &stores {
            for (_, to, to_addr) in stores.iter().filter(|(_, to, _)| to != from) {
                let name = if direct {
                    String::new()
                } else {
                    let name = repl::proxy_name(from, to);
                    configs.push(ProxyConfig {
                        name: name.clone(),
                        listen: "127.0.0.1:0".into(),
                        upstream: to_addr.to_string(),
                        enabled: true,
                        mode: Mode::Tcp,
                    });
                    name
                };
                links.push(Link {
                    from: from.clone(),
                    to: to.clone(),
                    proxy: name,
                    addr: *to_addr,
                });
            }
        }
        let server = Server::start(SocketAddr::from(([127, 0, 0, 1], 0)), configs)
            .await
            .map_err(|e| format!("start the fault proxy: {e}"))?;
        let api = server.api_addr();
        let api = if api.port() == 0 {
            eprintln!("proxy: the admin API did not bind a port; no proxy API");
            String::new()
        } else {
            eprintln!("proxy: admin API on http://{api}");
            format!("http://{api}")
        };
        let mut routes = Vec::new();
        for (id, region, addr) in stores {
            let via = match server.proxy_addr(&id) {
                Some(proxy) => {
                    eprintln!("proxy {id}: listening on {proxy}, upstream {addr}");
                    format!("http://{proxy}")
                }
                None => {
                    // Without the proxy there is no fault injection on this link, but the
                    // lab still serves: instances talk to the store directly.
                    eprintln!(
                        "proxy {id}: not available; {region} instances reach {addr} directly"
                    );
                    format!("http://{addr}")
                }
            };
            routes.push(StoreRoute { region, via });
        }
        for link in links.iter_mut().filter(|l| !l.proxy.is_empty()) {
            match server.proxy_addr(&link.proxy) {
                Some(proxy) => {
                    eprintln!(
                        "proxy {}: listening on {proxy}, upstream {}",
                        link.proxy, link.addr
                    );
                    link.addr = proxy;
                }
                None => eprintln!(
                    "proxy {}: not available; {} replicates to {} directly",
                    link.proxy, link.from, link.to
                ),
            }
        }
        write_links(&self.paths, &links)?;
        let _ = self.proxy_api.set(api);
        let _ = self.routes.set(routes);
        let _ = self.links.set(links);
        *self.proxy.lock().await = Some(server);
        Ok(())
    }

    /// Indices of the members that `pick` selects, in order.
    fn indices(&self, pick: impl Fn(&Member) -> bool) -> Vec<usize> {
        let members = self.members.lock().unwrap();
        (0..members.len()).filter(|&i| pick(&members[i])).collect()
    }

    /// The `--store` URL of `region`'s instances.
    fn store_route(&self, region: &str) -> Option<&str> {
        let routes = self.routes.get()?;
        let route = routes.iter().find(|r| r.region == region)?;
        Some(&route.via)
    }

    fn edges(&self) -> &[Edge] {
        self.edges.get().map_or(&[], Vec::as_slice)
    }

    /// Starts member `i` listening on `port` (0: any) and returns its pid once it listens.
    async fn spawn_member(self: &Arc<Self>, i: usize, port: u16) -> Result<u32, String> {
        let (id, region, role, host, netns) = {
            let m = &self.members.lock().unwrap()[i];
            (
                m.id.clone(),
                m.region.clone(),
                m.role.clone(),
                m.host,
                m.netns.clone(),
            )
        };
        let log_path = self.paths.instance_log(&id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let mut cmd = match (&self.ip, &netns) {
            // `ip` execs in place: the pid is the member's, and we stay its parent. Inside,
            // `/proc/self/exe` would be `ip`: name our own binary through our pid instead.
            (Some(ip), Some(ns)) => {
                let mut cmd = tokio::process::Command::new(ip);
                cmd.args(["netns", "exec", ns])
                    .arg(format!("/proc/{}/exe", std::process::id()));
                cmd
            }
            _ => {
                let mut cmd = tokio::process::Command::new(SELF_EXE);
                cmd.arg0("simian");
                cmd
            }
        };
        match &role {
            Role::Instance { zone } => {
                cmd.args(["lab", "instance", "--region", &region])
                    .args(["--zone", zone, "--id", &id]);
                if let Some(store) = self.store_route(&region) {
                    cmd.args(["--store", store]);
                }
            }
            Role::Store => {
                cmd.args(["lab", "store", "--region", &region])
                    .arg("--lab-dir")
                    .arg(&self.paths.dir);
                // `--peer=REGION` as one argument: the bare region name identifies this store.
                for peer in self
                    .spec
                    .region_names()
                    .into_iter()
                    .filter(|p| *p != region)
                {
                    cmd.arg(format!("--peer={peer}"));
                }
            }
        }
        cmd.args(["--host", &host.to_string()])
            .args(["--port", &port.to_string()])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // The child's parent-death signal fires when the *thread* that forked it exits.
        // We spawn from the main thread or a runtime worker, which live as long as we do.
        let mut child = cmd.spawn().map_err(|e| format!("spawn {id}: {e}"))?;
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
                "{id} did not start listening; see {}",
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
        eprintln!("{id}: started, pid {pid}, port {port}");

        let sup = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let mut members = sup.members.lock().unwrap();
            let m = &mut members[i];
            if m.pid == pid {
                m.alive = false;
            }
            match status {
                Ok(s) => eprintln!("{}: pid {pid} exited ({s})", m.id),
                Err(e) => eprintln!("{}: pid {pid} lost ({e})", m.id),
            }
        });
        Ok(pid)
    }

    /// Running: its pid. Stopped: SIGCONT, its pid. Dead: respawn on the same port (an
    /// instance with the same `--store`), wait until it answers `/health`, record it, the new
    /// pid. `id` names an instance or a store.
    async fn ensure_running(self: &Arc<Self>, id: &str) -> Result<u32, String> {
        let Some(i) = self.index(id) else {
            return Err(format!(
                "no instance `{id}` in this lab: `simian lab status` lists the instance and store ids"
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
            match self.spawn_member(i, port).await {
                Ok(pid) => break pid,
                Err(e) if Instant::now() > deadline || self.stopping.load(Ordering::SeqCst) => {
                    return Err(format!("restart {id} on port {port}: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let addr = self.members.lock().unwrap()[i].addr();
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
        self.members.lock().unwrap().iter().position(|m| m.id == id)
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
            .map(|region| {
                let store = members
                    .iter()
                    .find(|m| m.region == region && m.role == Role::Store)
                    .map(|m| Store {
                        id: m.id.clone(),
                        url: format!("http://{}", m.addr()),
                        port: m.port,
                        pid: m.pid,
                    })
                    .unwrap_or_default();
                Region {
                    name: region.to_string(),
                    edge: edges.get(region).cloned().unwrap_or_default(),
                    store_proxy: self.store_route(region).unwrap_or_default().to_string(),
                    replication: self
                        .links
                        .get()
                        .into_iter()
                        .flatten()
                        .filter(|l| l.from == region)
                        .map(|l| ReplLink {
                            to: l.to.clone(),
                            proxy: l.proxy.clone(),
                            listen: l.addr.to_string(),
                        })
                        .collect(),
                    store,
                    zones: self
                        .spec
                        .zone_names(region)
                        .into_iter()
                        .map(|zone| Zone {
                            instances: members
                                .iter()
                                .filter(|m| m.zone() == Some(zone.as_str()))
                                .map(|m| Instance {
                                    id: m.id.clone(),
                                    region: m.region.clone(),
                                    zone: zone.clone(),
                                    url: format!("http://{}", m.addr()),
                                    port: m.port,
                                    pid: m.pid,
                                })
                                .collect(),
                            name: zone,
                        })
                        .collect(),
                }
            })
            .collect();
        LabState {
            supervisor_pid: std::process::id(),
            control: self.paths.control(),
            proxy_api: self.proxy_api.get().cloned().unwrap_or_default(),
            spec: self.spec,
            global: self.global.get().map(Global::url).unwrap_or_default(),
            traffic: self.traffic.clone(),
            regions,
            netns: self.layout.clone(),
        }
    }

    /// The live state of member `id` as recorded in a snapshot with `pid`.
    fn process_state(&self, id: &str, pid: u32) -> ProcessState {
        let alive = self
            .members
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.id == id && m.alive);
        match procfs::state(pid) {
            _ if !alive => ProcessState::Dead,
            None | Some('Z' | 'X' | 'x') => ProcessState::Dead,
            Some('T' | 't') => ProcessState::Stopped,
            Some(_) => ProcessState::Running,
        }
    }

    async fn status(&self) -> LabStatus {
        let state = self.snapshot();
        let healthy = |id: &str| self.edges().iter().any(|e| e.is_healthy(id));
        let mut regions = Vec::new();
        for r in &state.regions {
            let store_state = self.process_state(&r.store.id, r.store.pid);
            // Stores have no edge checking them: ask now, unless it cannot answer anyway.
            let store_addr = self
                .members
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.id == r.store.id)
                .map(Member::addr);
            let store_healthy = store_state == ProcessState::Running
                && match store_addr {
                    Some(addr) => answers_health(addr).await,
                    None => false,
                };
            regions.push(RegionStatus {
                name: r.name.clone(),
                edge: r.edge.clone(),
                store: StoreStatus {
                    id: r.store.id.clone(),
                    url: r.store.url.clone(),
                    port: r.store.port,
                    pid: r.store.pid,
                    state: store_state,
                    healthy: store_healthy,
                },
                store_proxy: r.store_proxy.clone(),
                instances: r
                    .zones
                    .iter()
                    .flat_map(|z| &z.instances)
                    .map(|inst| InstanceStatus {
                        id: inst.id.clone(),
                        region: inst.region.clone(),
                        zone: inst.zone.clone(),
                        url: inst.url.clone(),
                        port: inst.port,
                        pid: inst.pid,
                        state: self.process_state(&inst.id, inst.pid),
                        healthy: healthy(&inst.id),
                    })
                    .collect(),
            });
        }
        LabStatus {
            supervisor_pid: state.supervisor_pid,
            proxy_api: state.proxy_api,
            spec: state.spec,
            global: state.global,
            traffic: state.traffic,
            steering: self.steering.all(),
            regions,
            netns: state.netns,
        }
    }

    /// Shuts the proxy down, then stops every instance and store (SIGCONT first: a stopped
    /// process would not act on SIGTERM), SIGTERM, SIGKILL after the grace period, then
    /// removes the network namespaces (with `--netns`), `state.json` and the socket.
    async fn shutdown(&self) {
        let mut done = self.shut_down.lock().await;
        if *done {
            return;
        }
        eprintln!("supervisor: stopping");
        {
            let _members = self.members.lock().unwrap();
            self.stopping.store(true, Ordering::SeqCst);
        }
        if let Some(proxy) = self.proxy.lock().await.take() {
            proxy.shutdown().await;
        }
        let signal_all = |sig: Signal| {
            let members = self.members.lock().unwrap();
            for m in members.iter().filter(|m| m.alive) {
                if m.still_ours() {
                    let pid = Pid::from_raw(m.pid as i32);
                    if sig != Signal::SIGKILL {
                        let _ = kill(pid, Signal::SIGCONT);
                    }
                    let _ = kill(pid, sig);
                }
            }
        };
        signal_all(Signal::SIGTERM);
        if !self.wait_all_reaped(TERM_GRACE).await {
            eprintln!("supervisor: processes left after SIGTERM, sending SIGKILL");
            signal_all(Signal::SIGKILL);
            self.wait_all_reaped(Duration::from_secs(1)).await;
        }
        let net = self.net.lock().unwrap().take();
        if let Some(mut net) = net {
            // Blocking `ip` commands, off the runtime's threads.
            let removed = tokio::task::spawn_blocking(move || net.teardown()).await;
            match removed {
                Ok(Ok(())) => eprintln!("netns: removed"),
                Ok(Err(e)) => eprintln!("netns: {e}"),
                Err(e) => eprintln!("netns: the teardown failed: {e}"),
            }
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
                status: Some(self.status().await),
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

/// Writes `replication.json` atomically: a store reading it sees every link or none.
fn write_links(paths: &LabPaths, links: &[Link]) -> Result<(), String> {
    let path = paths.replication();
    let tmp = paths.dir.join("replication.json.tmp");
    let json = serde_json::to_vec_pretty(links).expect("links serialize");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("write {}: {e}", path.display()))
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
