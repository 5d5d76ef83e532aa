//! Building and removing a lab's namespaces with iproute2 (`ip`), which must run as root.
//!
//! Creation is write-ahead: the layout goes to `<lab>/netns.json` before the first namespace
//! exists, so `simian lab down` can remove everything even after the supervisor was killed
//! halfway. Every name carries the lab's tag (`sl<tag>-...`), so leftovers are also found by
//! listing `ip netns list`. The host's end of the router link carries the host route for the
//! lab's /16; deleting it (or the router namespace) removes the route with it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::layout::{self, NetnsLayout, Subnet, DEFAULT_SECOND_OCTETS};
use crate::state::LabPaths;
use crate::{LabError, LabSpec};

/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long removed namespaces and links may take to disappear.
const GONE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many /16s to try claiming when another lab takes the one we picked meanwhile.
const CLAIM_ATTEMPTS: usize = 8;

/// `CAP_NET_ADMIN` (links, addresses, routes) and `CAP_SYS_ADMIN` (`ip netns` mounts).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Where iproute2 and friends usually live, for a `PATH` without the sbin directories.
const SBIN: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Finds an executable `name` on `PATH` or in the usual system directories.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Checks the effective capabilities in a `/proc/PID/status` text.
pub(crate) fn check_caps(status: &str) -> Result<(), LabError> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| eff & (1 << cap) != 0;
    if has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN) {
        Ok(())
    } else {
        Err(LabError::NetnsPrivileges)
    }
}

/// Whether `--netns` can work here: enough privileges and an `ip` command. Returns the path
/// of `ip`. Creates nothing.
pub(crate) fn preflight() -> Result<PathBuf, LabError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    check_caps(&status)?;
    find_program("ip").ok_or(LabError::NetnsNoIp)
}

/// A failed command: what ran and what it said.
#[derive(Debug)]
struct Failed {
    command: String,
    output: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` failed: {}", self.command, self.output)
    }
}

/// Runs `program args` with a time limit; its stdout on success.
fn run(program: &Path, args: &[&str]) -> Result<String, Failed> {
    let command = format!(
        "{} {}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let failed = |output: String| Failed {
        command: command.clone(),
        output,
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // A thread waits, so output larger than a pipe cannot stall us and we can time out.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(IP_TIMEOUT) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => {
            // Not reaped (the thread still waits on it), so the pid is still this child.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(failed(format!(
                "no answer within {}s",
                IP_TIMEOUT.as_secs()
            )));
        }
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(failed(if said.is_empty() {
            out.status.to_string()
        } else {
            said
        }))
    }
}

/// The first line of `ip -4 route show table all` output whose prefix overlaps `subnet`;
/// default routes do not count (they overlap everything).
pub(crate) fn overlapping_route(subnet: Subnet, routes: &str) -> Option<String> {
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
        "anycast",
    ];
    routes.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let mut first = words.next()?;
        if TYPES.contains(&first) {
            first = words.next()?;
        }
        let (net, len) = first.split_once('/').unwrap_or((first, "32"));
        let net: Ipv4Addr = net.parse().ok()?;
        let len: u8 = len.parse().ok().filter(|l| (1..=32).contains(l))?;
        subnet.overlaps(net, len).then(|| line.trim().to_string())
    })
}

fn host_routes(ip: &Path) -> Result<String, LabError> {
    run(ip, &["-4", "route", "show", "table", "all"])
        .map_err(|e| LabError::Netns(format!("read the host's routes: {e}")))
}

/// Refuses `subnet` if a host route overlaps it. `lab up` checks a `--subnet` with this
/// before anything is created, so that a taken one fails at once with a clear message.
pub(crate) fn check_free(ip: &Path, subnet: Subnet) -> Result<(), LabError> {
    match overlapping_route(subnet, &host_routes(ip)?) {
        None => Ok(()),
        Some(route) => Err(LabError::Subnet(format!(
            "subnet {subnet} overlaps the host route `{route}`: pick another with --subnet \
             (e.g. --subnet {}), or leave --subnet out to pick a free one",
            suggest(ip, subnet).map_or_else(|| "10.150.0.0/16".into(), |s| s.to_string())
        ))),
    }
}

/// A free default /16 to suggest instead of `taken`.
fn suggest(ip: &Path, taken: Subnet) -> Option<Subnet> {
    let routes = host_routes(ip).ok()?;
    DEFAULT_SECOND_OCTETS
        .map(Subnet::ten)
        .find(|s| *s != taken && overlapping_route(*s, &routes).is_none())
}

/// Default /16s for the lab with `tag`, in the order to try them: from its preferred one
/// on, wrapping around the range.
fn candidates(tag: &str) -> impl Iterator<Item = Subnet> {
    let start = layout::preferred_octet(tag);
    let (lo, hi) = (*DEFAULT_SECOND_OCTETS.start(), *DEFAULT_SECOND_OCTETS.end());
    (start..=hi).chain(lo..start).map(Subnet::ten)
}

/// The namespaces whose names start with `prefix`, from `ip netns list`.
fn list_namespaces(ip: &Path, prefix: &str) -> Vec<String> {
    run(ip, &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

fn link_exists(ip: &Path, name: &str) -> bool {
    run(ip, &["link", "show", "dev", name]).is_ok()
}

/// Removes every namespace of the lab with `tag` (those in `known` and those `ip netns list`
/// shows with its prefix) and the host's link to its router, and waits until they are gone.
fn remove_all(ip: &Path, tag: &str, known: &[&str]) -> Result<(), LabError> {
    let prefix = layout::prefix(tag);
    let host_link = layout::host_link(tag);
    // Deleting one end of a veth deletes both, and the host route through it.
    let _ = run(ip, &["link", "del", "dev", &host_link]);
    let mut names: Vec<String> = known.iter().map(|n| n.to_string()).collect();
    for n in list_namespaces(ip, &prefix) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut errors = Vec::new();
    for name in &names {
        if let Err(e) = run(ip, &["netns", "del", name]) {
            // Already gone is fine: that is what we want.
            if !e.output.contains("No such file") {
                errors.push(e.to_string());
            }
        }
    }
    let deadline = Instant::now() + GONE_TIMEOUT;
    loop {
        let left = list_namespaces(ip, &prefix);
        let link_left = link_exists(ip, &host_link);
        if left.is_empty() && !link_left {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut what = left;
            if link_left {
                what.push(format!("link {host_link}"));
            }
            errors.insert(0, format!("still there: {}", what.join(", ")));
            return Err(LabError::Netns(format!(
                "remove the lab's namespaces: {}; remove them with `ip netns del NAME`",
                errors.join("; ")
            )));
        }
        if link_left {
            let _ = run(ip, &["link", "del", "dev", &host_link]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes what a lab of this state dir left in namespaces (its supervisor was killed), if
/// anything. For `lab up --netns`, before it creates its own.
pub(crate) fn remove_leftovers(paths: &LabPaths, ip: &Path) -> Result<(), LabError> {
    let tag = layout::tag(&paths.dir);
    let recorded = read_marker(paths);
    let known = recorded
        .as_ref()
        .map(|l| l.namespaces())
        .unwrap_or_default();
    remove_all(ip, &tag, &known)?;
    let _ = std::fs::remove_file(paths.netns());
    Ok(())
}

fn read_marker(paths: &LabPaths) -> Option<NetnsLayout> {
    let text = std::fs::read_to_string(paths.netns()).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_marker(paths: &LabPaths, layout: &NetnsLayout) -> Result<(), LabError> {
    let path = paths.netns();
    let tmp = paths.dir.join("netns.json.tmp");
    let json = serde_json::to_vec_pretty(layout).expect("layouts serialize");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| LabError::io(format!("write {}", path.display()), e))
}

/// Whether a namespace or the host link of the lab with `tag` exists; needs no privileges
/// (nor `ip`): it looks at `/run/netns` and `/sys/class/net`.
fn anything_left(tag: &str) -> bool {
    let prefix = layout::prefix(tag);
    let namespaces = std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or(false);
    namespaces
        || Path::new("/sys/class/net")
            .join(layout::host_link(tag))
            .exists()
}

/// For `lab down`: removes the namespaces a lab recorded (in `state.json` as `recorded`, or
/// in the write-ahead `netns.json`), plus any others with its tag. Does nothing, without
/// running `ip`, for a lab that never used namespaces. True if it had anything to remove.
pub(crate) fn teardown_recorded(
    paths: &LabPaths,
    recorded: Option<&NetnsLayout>,
) -> Result<bool, LabError> {
    let marker = read_marker(paths);
    if recorded.is_none() && marker.is_none() && !paths.netns().exists() {
        return Ok(false);
    }
    let tag = layout::tag(&paths.dir);
    let ip = match preflight() {
        Ok(ip) => ip,
        // Its supervisor (root) may have removed them already: then there is nothing to do.
        Err(_) if !anything_left(&tag) => {
            let _ = std::fs::remove_file(paths.netns());
            return Ok(true);
        }
        Err(LabError::NetnsPrivileges) => {
            return Err(LabError::Netns(format!(
                "this lab's network namespaces (sl{tag}-*) are still there and only root can \
                 remove them: run `simian lab down` as root"
            )))
        }
        Err(e) => {
            return Err(LabError::Netns(format!(
                "this lab's network namespaces (sl{tag}-*) are still there: {e}"
            )))
        }
    };
    let mut known: Vec<&str> = Vec::new();
    for l in recorded.into_iter().chain(marker.as_ref()) {
        known.extend(l.namespaces());
    }
    remove_all(&ip, &tag, &known)?;
    let _ = std::fs::remove_file(paths.netns());
    Ok(true)
}

/// The namespaces of a running lab; removed by [`LabNet::teardown`], or when dropped.
pub(crate) struct LabNet {
    pub layout: NetnsLayout,
    /// The `ip` command, for `ip netns exec` too.
    pub ip: PathBuf,
    paths: LabPaths,
    tag: String,
    removed: bool,
}

impl LabNet {
    /// Removes every namespace and the host link (and with it the host route).
    pub fn teardown(&mut self) -> Result<(), LabError> {
        if self.removed {
            return Ok(());
        }
        remove_all(&self.ip, &self.tag, &self.layout.namespaces())?;
        self.removed = true;
        let _ = std::fs::remove_file(self.paths.netns());
        Ok(())
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("netns: {e}");
        }
    }
}

/// Builds the lab's namespaces for a lab of size `spec` in `paths`: removes leftovers of
/// the same tag, claims `subnet` (or a free default /16) with the host route, then wires
/// every region and zone. On any failure removes whatever it created.
pub(crate) fn setup(
    paths: &LabPaths,
    spec: &LabSpec,
    subnet: Option<Subnet>,
) -> Result<LabNet, LabError> {
    let ip = preflight()?;
    remove_leftovers(paths, &ip)?;
    if let Some(s) = subnet {
        check_free(&ip, s)?;
    }
    let tag = layout::tag(&paths.dir);
    let provisional = subnet.unwrap_or_else(|| Subnet::ten(layout::preferred_octet(&tag)));
    let mut net = LabNet {
        layout: NetnsLayout::plan(&tag, spec, provisional),
        ip,
        paths: paths.clone(),
        tag,
        removed: false,
    };
    // Write-ahead: from here on, `lab down` knows what to remove.
    write_marker(paths, &net.layout)?;
    // On error `net` is dropped, which removes everything.
    let chosen = claim(&net, subnet)?;
    net.layout = NetnsLayout::plan(&net.tag, spec, chosen);
    write_marker(paths, &net.layout)?;
    wire(&net)?;
    Ok(net)
}

fn ip_err(e: Failed) -> LabError {
    LabError::Netns(format!("set up the lab's namespaces: {e}"))
}

/// Creates the router namespace and its link to the host, then claims a /16 by adding the
/// host route for it: a route for the same prefix that another lab added meanwhile makes
/// that fail, and the next free one is tried.
fn claim(net: &LabNet, subnet: Option<Subnet>) -> Result<Subnet, LabError> {
    let ip = net.ip.as_path();
    let l = &net.layout;
    let core = l.core.as_str();
    let host = l.host_link.as_str();
    for args in [
        vec!["netns", "add", core],
        vec!["-n", core, "link", "set", "lo", "up"],
        vec![
            "link", "add", host, "type", "veth", "peer", "name", "host0", "netns", core,
        ],
        vec!["link", "set", host, "up"],
        vec!["-n", core, "link", "set", "host0", "up"],
    ] {
        run(ip, &args).map_err(ip_err)?;
    }
    let mut tried = Vec::new();
    let wanted: Box<dyn Iterator<Item = Subnet>> = match subnet {
        Some(s) => Box::new(std::iter::once(s)),
        None => Box::new(candidates(&net.tag)),
    };
    for s in wanted {
        if tried.len() >= CLAIM_ATTEMPTS {
            break;
        }
        if subnet.is_none() && overlapping_route(s, &host_routes(ip)?).is_some() {
            continue;
        }
        let (network, gateway) = (format!("{s}"), s.addr(0, 2).to_string());
        let route = [
            "route", "add", &network, "via", &gateway, "dev", host, "onlink",
        ];
        match run(ip, &route) {
            Ok(_) => return Ok(s),
            Err(e) if e.output.contains("File exists") => tried.push(s.to_string()),
            Err(e) => return Err(ip_err(e)),
        }
    }
    Err(LabError::Subnet(if tried.is_empty() {
        format!(
            "no free 10.N.0.0/16 (N in {}..={}) on this host: give one with --subnet",
            DEFAULT_SECOND_OCTETS.start(),
            DEFAULT_SECOND_OCTETS.end()
        )
    } else {
        format!(
            "subnet {} is already routed on this host (another lab?): pick another with --subnet",
            tried.join(", ")
        )
    }))
}

/// Addresses on the host link, forwarding in the router, and each region's bridge, store
/// namespace and zone namespaces.
fn wire(net: &LabNet) -> Result<(), LabError> {
    let ip = net.ip.as_path();
    for args in wiring_commands(&net.layout) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(ip, &args).map_err(ip_err)?;
    }
    let core = net.layout.core.as_str();
    let forward = match find_program("sysctl") {
        Some(sysctl) => run(
            ip,
            &[
                "netns",
                "exec",
                core,
                &sysctl.to_string_lossy(),
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        ),
        None => run(
            ip,
            &[
                "netns",
                "exec",
                core,
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward",
            ],
        ),
    };
    forward.map_err(ip_err)?;
    Ok(())
}

/// The `ip` commands (arguments) that wire a layout whose router namespace and host link
/// exist and whose host route is claimed. Interface names inside the router: `host0`,
/// `br<i>` (bridge of region i), `r<i>` (to the region's namespace), `z<i><j>` (to zone j);
/// every namespace's end is `eth0`.
fn wiring_commands(l: &NetnsLayout) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut cmd = |args: &[&str]| out.push(args.iter().map(|a| a.to_string()).collect());
    let core = l.core.as_str();
    cmd(&[
        "addr",
        "add",
        &format!("{}/24", l.host_addr),
        "dev",
        &l.host_link,
    ]);
    cmd(&[
        "-n",
        core,
        "addr",
        "add",
        &format!("{}/24", l.core_addr),
        "dev",
        "host0",
    ]);
    for (i, r) in (1..).zip(&l.regions) {
        let bridge = format!("br{i}");
        let gw = r.gateway.to_string();
        cmd(&["-n", core, "link", "add", &bridge, "type", "bridge"]);
        cmd(&[
            "-n",
            core,
            "addr",
            "add",
            &format!("{gw}/24"),
            "dev",
            &bridge,
        ]);
        cmd(&["-n", core, "link", "set", &bridge, "up"]);
        let members = std::iter::once((format!("r{i}"), &r.netns, r.store_addr)).chain(
            (1..)
                .zip(&r.zones)
                .map(|(j, z)| (format!("z{i}{j}"), &z.netns, z.addr)),
        );
        for (veth, ns, addr) in members {
            cmd(&["netns", "add", ns]);
            cmd(&["-n", ns, "link", "set", "lo", "up"]);
            cmd(&[
                "-n", core, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ]);
            cmd(&["-n", core, "link", "set", &veth, "master", &bridge]);
            cmd(&["-n", core, "link", "set", &veth, "up"]);
            cmd(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            cmd(&["-n", ns, "link", "set", "eth0", "up"]);
            cmd(&["-n", ns, "route", "add", "default", "via", &gw]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_decide_and_the_message_says_what_to_do() {
        let root = "Name:\tsimian\nCapEff:\t000001ffffffffff\n";
        assert!(check_caps(root).is_ok());
        let user = "Name:\tsimian\nCapEff:\t0000000000000000\n";
        let err = check_caps(user).unwrap_err().to_string();
        assert!(err.contains("--netns needs root (CAP_NET_ADMIN"), "{err}");
        assert!(
            err.contains("without --netns the lab runs on loopback"),
            "{err}"
        );
        // Root in a container without CAP_SYS_ADMIN cannot mount namespaces.
        let net_admin_only = format!("CapEff:\t{:016x}\n", 1u64 << CAP_NET_ADMIN);
        assert!(check_caps(&net_admin_only).is_err());
        assert!(check_caps("").is_err());
    }

    #[test]
    fn overlap_finds_routes_but_ignores_default() {
        let routes = "default via 192.0.2.1 dev eth0\n\
                      192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                      local 192.0.2.2 dev eth0 table local proto kernel scope host\n\
                      10.150.0.0/16 via 10.150.0.2 dev sl000001-h onlink\n\
                      broadcast 127.255.255.255 dev lo table local\n";
        assert_eq!(overlapping_route(Subnet::ten(151), routes), None);
        assert_eq!(
            overlapping_route(Subnet::ten(150), routes).as_deref(),
            Some("10.150.0.0/16 via 10.150.0.2 dev sl000001-h onlink")
        );
        let lan = "10.0.0.0/8 dev wg0 scope link\n";
        assert!(overlapping_route(Subnet::ten(151), lan).is_some());
        let host = "unicast 10.151.7.7 dev tun0\n";
        assert!(overlapping_route(Subnet::ten(151), host).is_some());
    }

    #[test]
    fn candidates_cover_the_default_range_once() {
        let all: Vec<Subnet> = candidates("abcdef").collect();
        assert_eq!(all.len(), DEFAULT_SECOND_OCTETS.count());
        assert_eq!(all[0], Subnet::ten(layout::preferred_octet("abcdef")));
        let mut sorted: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }

    #[test]
    fn wiring_uses_short_interface_names_and_routes_each_namespace_via_its_bridge() {
        let spec = LabSpec {
            regions: 4,
            zones: 6,
            instances: 1,
        };
        let l = NetnsLayout::plan("abcdef", &spec, Subnet::ten(120));
        let cmds = wiring_commands(&l);
        for c in &cmds {
            if let Some(i) = c.iter().position(|a| a == "link") {
                if c.get(i + 1).map(String::as_str) == Some("add") {
                    assert!(c[i + 2].len() <= 15, "{c:?}");
                }
            }
        }
        let line = |c: &Vec<String>| c.join(" ");
        let all: Vec<String> = cmds.iter().map(line).collect();
        assert!(all
            .contains(&"-n sl-core addr add 10.120.0.2/24 dev host0".replace("sl-", "slabcdef-")));
        assert!(all.contains(&"-n slabcdef-core addr add 10.120.4.1/24 dev br4".to_string()));
        assert!(
            all.contains(&"-n slabcdef-ap-south-f addr add 10.120.4.16/24 dev eth0".to_string())
        );
        assert!(all.contains(&"-n slabcdef-us-west route add default via 10.120.2.1".to_string()));
        assert!(all.contains(&"-n slabcdef-core link set z46 master br4".to_string()));
        // Every namespace but the router's is created by the wiring, once.
        let added: Vec<&String> = cmds
            .iter()
            .filter(|c| c[0] == "netns")
            .map(|c| &c[2])
            .collect();
        assert_eq!(added.len(), l.namespaces().len() - 1);
    }
}
