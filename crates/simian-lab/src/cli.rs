//! `simian lab ...`: start, inspect, repair and stop the lab; plus the hidden `supervise`,
//! `instance` and `store` subcommands that the lab runs itself as.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::instance::InstanceInfo;
use crate::traffic::parse_region_number;
use crate::{
    LabError, LabSpec, LabState, LabStatus, NetnsLayout, Network, ProcessState, SteeringEntry,
    Subnet, TrafficSpec,
};

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Start the lab in the background and print its topology.
    ///
    /// Starts a supervisor process, detached from the terminal, that runs every instance
    /// and one key-value store per region as their own processes, one edge router per
    /// region, and a fault proxy (Toxiproxy API) between each region's instances and its
    /// store, all on 127.0.0.1. Returns once every instance and store answers its health
    /// check. One lab per state directory.
    ///
    /// Users arrive at a global router (`lab.global`, on 127.0.0.1): each request gets a home
    /// region by the geo split (--geo; a request with `x-simian-user: ID` always gets the same
    /// home) and goes to that region's edge, unless steering moves it to another region's
    /// (`PUT /steering/REGION {"to": "us-west", "percent": 30}` on the router, what Chaos
    /// Kong turns). A region steered at 100% fails over: its edge forwards what still reaches
    /// it. --capacity caps what a region's edge serves per second (beyond it: 503 `over
    /// capacity`), so the region taking the users can run out.
    ///
    /// With --netns (root only), every region and every zone gets a network namespace of its
    /// own with its own address, behind a router namespace, so traffic between regions
    /// crosses a real network path: an nftables rule in the router namespace (`lab.netns`)
    /// partitions them. Edges and the fault proxy's API stay on 127.0.0.1.
    #[command(after_help = "Examples:
  simian lab up
  simian lab up --regions 1 --zones 3 --instances 1
  simian --state-dir /tmp/lab2 lab up --regions 4
  simian lab up --geo us-east=60,us-west=40
  simian lab up --capacity us-west=200
  simian lab up --regions 3 --geo us-east=50,us-west=30,eu-west=20
  simian lab up --regions 3 --capacity us-west=150,eu-west=100
  sudo simian lab up --netns
  sudo simian lab up --netns --subnet 10.150.0.0/16")]
    Up(SpecArgs),

    /// Show every instance and store (pid, port, running/stopped/dead, healthy), the global
    /// router, the edge URLs, the fault proxy, and each region's share of users, capacity and
    /// steering now.
    #[command(after_help = "Examples:
  simian lab status
  simian lab status --json | jq '.regions[].instances[] | select(.state != \"running\")'")]
    Status {
        /// Print the status as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Stop the lab and remove its state. Does nothing, successfully, if none runs.
    ///
    /// Also cleans up after a supervisor that was killed.
    #[command(after_help = "Example:
  simian lab down")]
    Down,

    /// Bring instances or stores back: resume a stopped one (SIGCONT), respawn a dead one
    /// on its port.
    ///
    /// The lab never restarts anything on its own, so that experiments see what a fault
    /// did; this is how to repair it by hand. Waits until each one is healthy.
    #[command(after_help = "Examples:
  simian lab restart us-east-a-1
  simian lab restart us-east-a-1 us-east-a-2
  simian lab restart store-us-east")]
    Restart {
        /// Instance or store ids, as `simian lab status` lists them (e.g. us-east-b-2,
        /// store-us-west).
        #[arg(required = true, value_name = "ID")]
        instances: Vec<String>,
    },

    /// Run the lab supervisor in the foreground (what `lab up` starts).
    #[command(hide = true)]
    Supervise(SpecArgs),

    /// Run one lab instance (what the supervisor starts).
    #[command(hide = true)]
    Instance(InstanceArgs),

    /// Run one region's key-value store (what the supervisor starts).
    #[command(hide = true)]
    Store(StoreArgs),
}

/// The size of the lab.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// Regions, named in order us-east, us-west, eu-west, ap-south.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub regions: u8,
    /// Zones per region, named <region>-a, <region>-b, ...
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=6))]
    pub zones: u8,
    /// Instances per zone, named <zone>-1, <zone>-2, ...
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub instances: u8,
    /// Put every region and zone in its own network namespace (needs root and iproute2):
    /// region i gets 10.N.i.0/24 (its store on .2), zone j of it 10.N.i.(10+j); a router
    /// namespace forwards between regions. Without it, everything runs on 127.0.0.1.
    #[arg(long)]
    pub netns: bool,
    /// The /16 for --netns, e.g. 10.150.0.0/16; refused if a host route overlaps it.
    /// Default: a free 10.N.0.0/16 with N in 100..=199.
    #[arg(long, value_name = "CIDR", requires = "netns")]
    pub subnet: Option<Subnet>,
    /// Where users live: each region's relative share of them, REGION=SHARE pairs separated
    /// by commas (e.g. us-east=60,us-west=40). Regions left out get no users. Default: equal
    /// shares.
    #[arg(long, value_name = "REGION=SHARE,...", value_delimiter = ',', value_parser = parse_region_number)]
    pub geo: Vec<(String, u32)>,
    /// Cap REGION's edge at N requests per second, e.g. us-west=200 (repeatable, or
    /// comma-separated); beyond it the edge answers 503 `over capacity`. Bursts pass up to a
    /// tenth of a second's worth. Default: no limit.
    #[arg(long, value_name = "REGION=N", value_delimiter = ',', value_parser = parse_region_number)]
    pub capacity: Vec<(String, u32)>,
}

impl SpecArgs {
    /// The geo split and capacities, checked against the lab's regions.
    pub fn traffic(&self) -> Result<TrafficSpec, LabError> {
        TrafficSpec::new(&LabSpec::from(self), &self.geo, &self.capacity)
    }

    pub fn network(&self) -> Network {
        if self.netns {
            Network::Netns(self.subnet)
        } else {
            Network::Loopback
        }
    }
}

impl From<&SpecArgs> for LabSpec {
    fn from(a: &SpecArgs) -> Self {
        LabSpec {
            regions: a.regions.into(),
            zones: a.zones.into(),
            instances: a.instances.into(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct InstanceArgs {
    #[arg(long)]
    pub region: String,
    #[arg(long)]
    pub zone: String,
    #[arg(long)]
    pub id: String,
    /// The address to listen on (its zone's with --netns).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Exit at once unless this is still our parent (it may die before we arm pdeathsig).
    #[arg(long)]
    pub parent_pid: Option<u32>,
    /// Base URL of the region's store (or of the proxy in front of it), e.g.
    /// http://127.0.0.1:4000. Without it, requests do not depend on a store.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    #[arg(long)]
    pub region: String,
    /// Keep the write-ahead file here and find replication links in its `replication.json`;
    /// without it the store lives in memory and does not replicate.
    #[arg(long, value_name = "DIR")]
    pub lab_dir: Option<std::path::PathBuf>,
    /// A region to ship this store's writes to (repeatable); needs --lab-dir.
    #[arg(long, value_name = "REGION")]
    pub peer: Vec<String>,
    /// The address to listen on (its region's with --netns).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Exit at once unless this is still our parent (it may die before we arm pdeathsig).
    #[arg(long)]
    pub parent_pid: Option<u32>,
}

/// Runs one `simian lab` subcommand; returns the exit code.
pub async fn run(cmd: LabCommand, state_dir: &Path) -> Result<i32, LabError> {
    match cmd {
        LabCommand::Up(args) => {
            let spec = LabSpec::from(&args);
            spec.validate()?;
            let traffic = args.traffic()?;
            let how = if args.netns {
                " in network namespaces"
            } else {
                ""
            };
            eprintln!(
                "starting the lab in {}: {spec}{how} ...",
                state_dir.display()
            );
            let state = crate::up_with_traffic(state_dir, spec, args.network(), &traffic).await?;
            print!("{}", render_topology(&state, state_dir));
            Ok(0)
        }
        LabCommand::Status { json } => {
            let Some(status) = crate::status(state_dir).await? else {
                return Err(LabError::NotRunning {
                    dir: state_dir.to_path_buf(),
                });
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serializes")
                );
            } else {
                print!("{}", render_status(&status, state_dir));
            }
            Ok(0)
        }
        LabCommand::Down => {
            if crate::down(state_dir).await? {
                println!("lab stopped in {}", state_dir.display());
            } else {
                println!("no lab was running in {}", state_dir.display());
            }
            Ok(0)
        }
        LabCommand::Restart { instances } => {
            let not_running = || LabError::NotRunning {
                dir: state_dir.to_path_buf(),
            };
            let state = crate::load(state_dir)?.ok_or_else(not_running)?;
            if let Some(id) = instances.iter().find(|id| state.pid(id).is_none()) {
                return Err(LabError::UnknownInstance { id: id.clone() });
            }
            let before = crate::status(state_dir).await?.ok_or_else(not_running)?;
            for id in &instances {
                let was = before.state_of(id);
                let pid = crate::ensure_running(&state.control, id).await?;
                let what = match was {
                    Some(ProcessState::Dead) => "was dead, respawned",
                    Some(ProcessState::Stopped) => "was stopped, resumed",
                    _ => "already running",
                };
                println!("{id}: {what} (pid {pid})");
            }
            Ok(0)
        }
        LabCommand::Supervise(args) => {
            let traffic = args.traffic()?;
            crate::supervisor::run(state_dir, LabSpec::from(&args), args.network(), traffic).await
        }
        LabCommand::Instance(a) => {
            let info = InstanceInfo {
                region: a.region,
                zone: a.zone,
                id: a.id,
            };
            let listen = SocketAddr::new(a.host, a.port);
            crate::instance::run(info, listen, a.parent_pid, a.store).await
        }
        LabCommand::Store(a) => {
            let listen = SocketAddr::new(a.host, a.port);
            crate::store::run(a.region, listen, a.parent_pid, a.lab_dir, a.peer).await
        }
    }
}

/// `  via proxy URL`, or nothing when instances reach the store directly.
fn via(store_proxy: &str, store_url: &str) -> String {
    if store_proxy.is_empty() || store_proxy == store_url {
        "  (direct, no proxy)".to_string()
    } else {
        format!("  via proxy {store_proxy}")
    }
}

fn render_topology(state: &LabState, state_dir: &Path) -> String {
    let mut out = format!(
        "lab up in {} (supervisor pid {}): {}\n",
        state_dir.display(),
        state.supervisor_pid,
        state.spec
    );
    if !state.global.is_empty() {
        out.push_str(&format!(
            "global router   {}  (users: /play; steering: /steering)\n",
            state.global
        ));
    }
    if !state.proxy_api.is_empty() {
        out.push_str(&format!("fault proxy API {}\n", state.proxy_api));
    }
    for region in &state.regions {
        let mut traffic = String::new();
        if let Some(p) = state.traffic.geo_percent(&region.name) {
            traffic.push_str(&format!("  users {}", percent(p)));
        }
        if let Some(n) = state.traffic.capacity.get(&region.name) {
            traffic.push_str(&format!("  capacity {n}/s"));
        }
        out.push_str(&format!(
            "\n{}  edge {}{traffic}\n",
            region.name, region.edge
        ));
        out.push_str(&format!(
            "  {:<26} {}  pid {}{}\n",
            region.store.id,
            region.store.url,
            region.store.pid,
            via(&region.store_proxy, &region.store.url),
        ));
        for link in &region.replication {
            if link.proxy.is_empty() {
                out.push_str(&format!(
                    "  {:<26} replicates to {} directly at {}\n",
                    "", link.to, link.listen
                ));
            } else {
                out.push_str(&format!(
                    "  {:<26} replicates to {} via {}\n",
                    link.proxy, link.to, link.listen
                ));
            }
        }
        for zone in &region.zones {
            for inst in &zone.instances {
                out.push_str(&format!(
                    "  {:<11} {:<14} {}  pid {}\n",
                    zone.name, inst.id, inst.url, inst.pid
                ));
            }
        }
    }
    if let Some(net) = &state.netns {
        out.push('\n');
        out.push_str(&render_netns(net));
    }
    out.push_str("\nsee it with `simian lab status`, stop it with `simian lab down`\n");
    out
}

/// The namespaces of a `--netns` lab, one per line with its addresses.
fn render_netns(net: &NetnsLayout) -> String {
    let mut rows: Vec<[String; 3]> = vec![
        ["NAMESPACE".into(), "HOLDS".into(), "ADDRESS".into()],
        [
            "(host)".into(),
            format!("link {}, route {}", net.host_link, net.subnet),
            format!("{} (store proxies)", net.host_addr),
        ],
        [
            net.core.clone(),
            "router between regions: partitions go here".into(),
            net.core_addr.to_string(),
        ],
    ];
    for r in &net.regions {
        rows.push([
            r.netns.clone(),
            format!("store-{}", r.name),
            format!("{} in {}", r.store_addr, r.cidr),
        ]);
        for z in &r.zones {
            rows.push([
                z.netns.clone(),
                format!("{} instances", z.name),
                z.addr.to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..3)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("network namespaces, subnet {}:\n", net.subnet);
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `60%`, `33.3%`.
fn percent(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Per region: its share of users, its capacity and where it is steered now.
fn render_traffic(status: &LabStatus) -> String {
    let mut rows: Vec<[String; 4]> =
        vec![["REGION", "USERS", "CAPACITY", "STEERING"].map(String::from)];
    for region in &status.regions {
        let name = &region.name;
        let steering = match status.steering.get(name) {
            Some(SteeringEntry {
                to: Some(to),
                percent: p,
            }) => format!("{} to {to}", percent(*p)),
            _ => "-".to_string(),
        };
        rows.push([
            name.clone(),
            status
                .traffic
                .geo_percent(name)
                .map_or("-".to_string(), percent),
            status
                .traffic
                .capacity
                .get(name)
                .map_or("-".to_string(), |n| format!("{n}/s")),
            steering,
        ]);
    }
    table(rows) + "\n"
}

/// Rows as left-aligned columns two spaces apart.
fn table<const N: usize>(rows: Vec<[String; N]>) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn render_status(status: &LabStatus, state_dir: &Path) -> String {
    let mut out = format!(
        "lab in {} (supervisor pid {}): {}\n\n",
        state_dir.display(),
        status.supervisor_pid,
        status.spec
    );
    if !status.global.is_empty() {
        out.push_str(&format!("global router    {}\n", status.global));
    }
    for region in &status.regions {
        out.push_str(&format!("edge {:<9} {}\n", region.name, region.edge));
    }
    if !status.proxy_api.is_empty() {
        out.push_str(&format!("fault proxy API  {}\n", status.proxy_api));
    }
    out.push('\n');
    out.push_str(&render_traffic(status));
    for region in &status.regions {
        let s = &region.store;
        let health = if s.healthy {
            "healthy"
        } else {
            "not answering"
        };
        out.push_str(&format!(
            "{:<15} {}  pid {}  {}, {health}{}\n",
            s.id,
            s.url,
            s.pid,
            s.state,
            via(&region.store_proxy, &s.url),
        ));
    }
    let header = [
        "REGION", "ZONE", "INSTANCE", "PID", "PORT", "STATE", "HEALTHY",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(String::from)];
    for i in status.instances() {
        rows.push([
            i.region.clone(),
            i.zone.clone(),
            i.id.clone(),
            i.pid.to_string(),
            i.port.to_string(),
            i.state.to_string(),
            if i.healthy { "yes" } else { "no" }.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&table(rows));
    if let Some(net) = &status.netns {
        out.push('\n');
        out.push_str(&render_netns(net));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceStatus, RegionStatus, StoreStatus};

    fn status(regions: usize) -> LabStatus {
        let inst = |id: &str, pid, state, healthy| InstanceStatus {
            id: id.into(),
            region: "us-east".into(),
            zone: id[..9].into(),
            url: "http://127.0.0.1:4001".into(),
            port: 4001,
            pid,
            state,
            healthy,
        };
        let spec = LabSpec {
            regions,
            zones: 2,
            instances: 1,
        };
        let region = RegionStatus {
            name: "us-east".into(),
            edge: "http://127.0.0.1:4000".into(),
            store: StoreStatus {
                id: "store-us-east".into(),
                url: "http://127.0.0.1:4050".into(),
                port: 4050,
                pid: 99,
                state: ProcessState::Dead,
                healthy: false,
            },
            store_proxy: "http://127.0.0.1:4060".into(),
            instances: vec![
                inst("us-east-a-1", 123, ProcessState::Running, true),
                inst("us-east-b-1", 45678, ProcessState::Stopped, false),
            ],
        };
        LabStatus {
            supervisor_pid: 7,
            proxy_api: "http://127.0.0.1:8474".into(),
            spec,
            global: "http://127.0.0.1:4100".into(),
            traffic: TrafficSpec::new(&spec, &[], &[("us-east".into(), 200)]).unwrap(),
            steering: crate::steering::Steering::new(&spec.region_names()).all(),
            regions: vec![region; regions],
            netns: None,
        }
    }

    #[test]
    fn status_renders_an_aligned_table() {
        let text = render_status(&status(1), Path::new("/tmp/x"));
        assert_eq!(
            text,
            "lab in /tmp/x (supervisor pid 7): 1 region × 2 zones × 1 instance\n\
             \n\
             global router    http://127.0.0.1:4100\n\
             edge us-east   http://127.0.0.1:4000\n\
             fault proxy API  http://127.0.0.1:8474\n\
             \n\
             REGION   USERS  CAPACITY  STEERING\n\
             us-east  100%   200/s     -\n\
             \n\
             store-us-east   http://127.0.0.1:4050  pid 99  dead, not answering  via proxy http://127.0.0.1:4060\n\
             \n\
             REGION   ZONE       INSTANCE     PID    PORT  STATE    HEALTHY\n\
             us-east  us-east-a  us-east-a-1  123    4001  running  yes\n\
             us-east  us-east-b  us-east-b-1  45678  4001  stopped  no\n"
        );
    }

    #[test]
    fn status_shows_each_regions_users_capacity_and_steering() {
        let mut status = status(3);
        for (r, name) in status
            .regions
            .iter_mut()
            .zip(["us-east", "us-west", "eu-west"])
        {
            r.name = name.into();
        }
        status.traffic = TrafficSpec::new(
            &status.spec,
            &[
                ("us-east".into(), 50),
                ("us-west".into(), 25),
                ("eu-west".into(), 25),
            ],
            &[("us-west".into(), 150)],
        )
        .unwrap();
        status.steering.insert(
            "us-east".into(),
            SteeringEntry {
                to: Some("us-west".into()),
                percent: 12.5,
            },
        );
        assert_eq!(
            render_traffic(&status),
            "REGION   USERS  CAPACITY  STEERING\n\
             us-east  50%    -         12.5% to us-west\n\
             us-west  25%    150/s     -\n\
             eu-west  25%    -         -\n\
             \n"
        );
    }

    #[test]
    fn geo_and_capacity_parse_as_region_number_pairs() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct T {
            #[command(subcommand)]
            cmd: LabCommand,
        }
        let up = |args: &[&str]| T::try_parse_from([&["t", "up"], args].concat());
        let LabCommand::Up(args) = up(&[
            "--geo",
            "us-east=60,us-west=40",
            "--capacity",
            "us-west=200",
            "--capacity=us-east=100",
        ])
        .unwrap()
        .cmd
        else {
            panic!("not up")
        };
        let traffic = args.traffic().unwrap();
        assert_eq!(traffic.geo_percent("us-west"), Some(40.0));
        assert_eq!(
            traffic.capacity,
            [("us-east".into(), 100), ("us-west".into(), 200)].into()
        );
        let LabCommand::Up(plain) = up(&[]).unwrap().cmd else {
            panic!("not up")
        };
        assert_eq!(plain.traffic().unwrap().geo_percent("us-east"), Some(50.0));
        let bad = up(&["--capacity", "us-west"]).unwrap_err().to_string();
        assert!(bad.contains("REGION=N"), "{bad}");
        let LabCommand::Up(unknown) = up(&["--geo", "eu-west=10"]).unwrap().cmd else {
            panic!("not up")
        };
        let err = unknown.traffic().unwrap_err().to_string();
        assert!(
            err.contains("not a region of this lab (us-east, us-west)"),
            "{err}"
        );
    }

    #[test]
    fn the_command_line_parses_sizes_with_bounds() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct T {
            #[command(subcommand)]
            cmd: LabCommand,
        }
        let up = T::try_parse_from(["t", "up", "--regions", "1", "--instances", "1"]).unwrap();
        let LabCommand::Up(args) = up.cmd else {
            panic!("not up")
        };
        assert_eq!(
            LabSpec::from(&args),
            LabSpec {
                regions: 1,
                zones: 3,
                instances: 1
            }
        );
        assert!(T::try_parse_from(["t", "up", "--regions", "5"]).is_err());
        assert!(T::try_parse_from(["t", "restart"]).is_err());
    }

    #[test]
    fn netns_and_subnet_parse_and_subnet_needs_netns() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct T {
            #[command(subcommand)]
            cmd: LabCommand,
        }
        let up = |args: &[&str]| T::try_parse_from([&["t", "up"], args].concat());
        let LabCommand::Up(plain) = up(&[]).unwrap().cmd else {
            panic!("not up")
        };
        assert_eq!(plain.network(), Network::Loopback);
        let LabCommand::Up(ns) = up(&["--netns"]).unwrap().cmd else {
            panic!("not up")
        };
        assert_eq!(ns.network(), Network::Netns(None));
        let LabCommand::Up(given) = up(&["--netns", "--subnet", "10.150.0.0/16"]).unwrap().cmd
        else {
            panic!("not up")
        };
        assert_eq!(given.network(), Network::Netns(Some(Subnet::ten(150))));
        let alone = up(&["--subnet", "10.150.0.0/16"]).unwrap_err().to_string();
        assert!(alone.contains("--netns"), "{alone}");
        let public = up(&["--netns", "--subnet", "8.8.0.0/16"])
            .unwrap_err()
            .to_string();
        assert!(public.contains("private"), "{public}");
    }

    #[test]
    fn the_topology_lists_every_namespace_with_its_address() {
        let spec = LabSpec {
            regions: 2,
            zones: 2,
            instances: 1,
        };
        let net = NetnsLayout::plan("1a2b3c", &spec, Subnet::ten(142));
        let text = render_netns(&net);
        assert!(
            text.starts_with("network namespaces, subnet 10.142.0.0/16:\n"),
            "{text}"
        );
        for line in [
            "sl1a2b3c-core",
            "router between regions: partitions go here",
            "sl1a2b3c-us-west    store-us-west",
            "10.142.2.2 in 10.142.2.0/24",
            "sl1a2b3c-us-west-b  us-west-b instances",
            "10.142.2.12",
            "link sl1a2b3c-h, route 10.142.0.0/16",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert_eq!(text.lines().count(), 1 + 3 + 2 * 3);
    }
}
