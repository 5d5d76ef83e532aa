//! The `netfilter` injector (split-brain): drops packets between groups of
//! addresses with nftables rules in one table the run owns (`inet
//! simian_<name>`), on the host or inside a network namespace. Apply is one
//! atomic `nft -f -` transaction; revert deletes the whole table and nothing
//! else, so no other table, chain or rule is ever touched.
//!
//! With a lease, every rule also matches `meta nfproto @lease`: a set whose two
//! elements (`ipv4`, `ipv6`) time out unless the runner renews them, so a runner
//! that dies without anyone reverting stops dropping packets by itself (the
//! empty table stays until `simian recover` deletes it). A renewal deletes and
//! re-adds the elements in one transaction, which fails once they have expired:
//! it never brings a cut back.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use simian_experiment::{Direction, NetfilterFault as Config, Partition};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{Fault, FaultError, Plan, RevertRecord, Reverted};

/// The journal's record of a netfilter fault: the table to delete, and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetfilterRevert {
    pub netns: Option<String>,
    pub table: String,
}

pub struct NetfilterFault {
    plan: Plan,
    netns: Option<String>,
    table: String,
    script: String,
    lease: Option<Duration>,
}

/// An address or CIDR, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    len: u8,
}

impl Net {
    fn parse(s: &str) -> Result<Net, String> {
        let t = s.trim();
        let (a, len) = match t.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (t, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4/IPv6 address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}` has a bad prefix length (0 to {max})")),
            },
        };
        Ok(Net {
            addr: mask(addr, len),
            len,
        })
    }

    fn v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn contains(&self, other: &Net) -> bool {
        self.v4() == other.v4() && self.len <= other.len && mask(other.addr, self.len) == self.addr
    }

    fn overlaps(&self, other: &Net) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.v4() { 32 } else { 128 };
        if self.len == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// A group of networks, with entries covered by another entry dropped, so
/// nftables never sees overlapping intervals in one set.
#[derive(Debug, Clone, Default)]
struct Group(Vec<Net>);

impl Group {
    fn parse(label: &str, entries: &[String], problems: &mut Vec<String>) -> Group {
        if entries.is_empty() {
            problems.push(format!("group `{label}` is empty"));
        }
        let mut nets: Vec<Net> = Vec::new();
        for e in entries {
            match Net::parse(e) {
                Ok(n) => nets.push(n),
                Err(p) => problems.push(format!("group `{label}`: {p}")),
            }
        }
        let mut kept: Vec<Net> = Vec::new();
        for (i, n) in nets.iter().enumerate() {
            let covered = nets
                .iter()
                .enumerate()
                .any(|(j, m)| j != i && m.contains(n) && (m != n || j < i));
            if !covered {
                kept.push(*n);
            }
        }
        Group(kept)
    }

    fn family(&self, v4: bool) -> Vec<Net> {
        self.0.iter().copied().filter(|n| n.v4() == v4).collect()
    }

    fn overlaps(&self, other: &Group) -> Vec<(Net, Net)> {
        let mut out = Vec::new();
        for a in &self.0 {
            for b in &other.0 {
                if a.overlaps(b) {
                    out.push((*a, *b));
                }
            }
        }
        out
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: Vec<String> = self.0.iter().map(|n| n.to_string()).collect();
        write!(f, "{{{}}}", s.join(", "))
    }
}

/// One side of a cut path: a group, or everything outside one.
#[derive(Debug, Clone)]
enum Side {
    In(Group),
    NotIn(Group),
}

/// Packets from `from` to `to` are dropped.
#[derive(Debug, Clone)]
struct CutPath {
    from: Side,
    to: Side,
}

impl Side {
    fn describe(&self) -> String {
        match self {
            Side::In(g) => g.to_string(),
            Side::NotIn(g) => format!("anything outside {g}"),
        }
    }

    fn group(&self) -> &Group {
        match self {
            Side::In(g) | Side::NotIn(g) => g,
        }
    }

    fn matcher(&self, proto: &str, field: &str, v4: bool) -> Option<String> {
        let nets = self.group().family(v4);
        if nets.is_empty() {
            // `In` an empty family matches nothing; `NotIn` one is not
            // expressible per family, and isolating needs the group's family.
            return None;
        }
        let set = nets
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let neg = if matches!(self, Side::NotIn(_)) {
            "!= "
        } else {
            ""
        };
        Some(format!("{proto} {field} {neg}{{ {set} }}"))
    }
}

fn is_valid_netns(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Every problem with a netfilter config, all at once; empty when it is valid.
pub fn check(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    parse(cfg, &mut problems);
    problems
}

struct Parsed {
    paths: Vec<CutPath>,
    between: String,
}

fn parse(cfg: &Config, problems: &mut Vec<String>) -> Parsed {
    if let Some(ns) = &cfg.netns {
        if !is_valid_netns(ns) {
            problems.push(format!(
                "`{ns}` is not a valid network namespace name (letters, digits, `_`, `-`, `.`)"
            ));
        }
    }
    if let Some(l) = cfg.loss {
        let f = l.fraction();
        if !(f > 0.0 && f <= 1.0) {
            problems.push(format!(
                "loss must be more than 0% and at most 100%, not {l}"
            ));
        }
    }
    let overlap = |x: &str, gx: &Group, y: &str, gy: &Group, problems: &mut Vec<String>| {
        for (a, b) in gx.overlaps(gy) {
            problems.push(format!(
                "{a} (in `{x}`) and {b} (in `{y}`) overlap: a group cannot be on both sides"
            ));
        }
    };
    let dir = cfg.direction;
    let sever = |a: &Group, b: &Group| {
        let mut p = Vec::new();
        if dir != Direction::Ingress {
            p.push(CutPath {
                from: Side::In(a.clone()),
                to: Side::In(b.clone()),
            });
        }
        if dir != Direction::Egress {
            p.push(CutPath {
                from: Side::In(b.clone()),
                to: Side::In(a.clone()),
            });
        }
        p
    };
    match &cfg.partition {
        Partition::Sever { a, b } => {
            let (ga, gb) = (
                Group::parse("a", a, problems),
                Group::parse("b", b, problems),
            );
            overlap("a", &ga, "b", &gb, problems);
            Parsed {
                between: format!("between {ga} and {gb}"),
                paths: sever(&ga, &gb),
            }
        }
        Partition::Bridge { a, b, bridge } => {
            let (ga, gb, gc) = (
                Group::parse("a", a, problems),
                Group::parse("b", b, problems),
                Group::parse("bridge", bridge, problems),
            );
            overlap("a", &ga, "b", &gb, problems);
            overlap("a", &ga, "bridge", &gc, problems);
            overlap("b", &gb, "bridge", &gc, problems);
            Parsed {
                between: format!("between {ga} and {gb} (bridge {gc} still reaches both)"),
                paths: sever(&ga, &gb),
            }
        }
        Partition::Isolate { group } => {
            let g = Group::parse("group", group, problems);
            let mut paths = Vec::new();
            if dir != Direction::Ingress {
                paths.push(CutPath {
                    from: Side::In(g.clone()),
                    to: Side::NotIn(g.clone()),
                });
            }
            if dir != Direction::Egress {
                paths.push(CutPath {
                    from: Side::NotIn(g.clone()),
                    to: Side::In(g.clone()),
                });
            }
            Parsed {
                between: format!("between {g} and everything else"),
                paths,
            }
        }
    }
}

/// `simian_` and the fault name, with anything nft names cannot hold as `_`.
pub fn table_name(fault: &str) -> String {
    let s: String = fault
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    format!("simian_{s}")
}

/// The nft rules (one per path and family), without a verdict prefix.
fn rules(paths: &[CutPath], loss: f64) -> Vec<String> {
    let verdict = if loss >= 1.0 {
        "counter drop".to_string()
    } else {
        // Basis points, so fractional percentages keep their precision.
        let n = (loss * 10_000.0).round() as u64;
        format!("numgen random mod 10000 < {n} counter drop")
    };
    let mut out = Vec::new();
    for p in paths {
        for (v4, proto) in [(true, "ip"), (false, "ip6")] {
            let (Some(s), Some(d)) = (
                p.from.matcher(proto, "saddr", v4),
                p.to.matcher(proto, "daddr", v4),
            ) else {
                continue;
            };
            out.push(format!("{s} {d} {verdict}"));
        }
    }
    out
}

/// The lease set's elements, each timing out after `lease`.
fn lease_elements(lease: Duration) -> String {
    let ms = lease.as_millis().max(1);
    format!("{{ ipv4 timeout {ms}ms, ipv6 timeout {ms}ms }}")
}

fn script(table: &str, rules: &[String], lease: Option<Duration>) -> String {
    let mut s = String::new();
    // `create` fails when the table exists, so a leftover table is never merged into.
    let _ = writeln!(s, "create table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");
    let guard = match lease {
        Some(l) => {
            let _ = writeln!(
                s,
                "  set lease {{ type nf_proto; flags timeout; elements = {}; }}",
                lease_elements(l)
            );
            "meta nfproto @lease "
        }
        None => "",
    };
    for hook in ["input", "output", "forward"] {
        let _ = writeln!(s, "  chain {hook} {{");
        let _ = writeln!(
            s,
            "    type filter hook {hook} priority -10; policy accept;"
        );
        if hook == "input" {
            // Local-to-local packets already met the rules in `output`; seeing
            // them twice would square the loss rate.
            let _ = writeln!(s, "    iifname \"lo\" accept");
        }
        for r in rules {
            let _ = writeln!(s, "    {guard}{r}");
        }
        let _ = writeln!(s, "  }}");
    }
    let _ = writeln!(s, "}}");
    s
}

impl NetfilterFault {
    pub fn build(name: &str, cfg: &Config, lease: Option<Duration>) -> Result<Self, FaultError> {
        let mut problems = Vec::new();
        let parsed = parse(cfg, &mut problems);
        if !problems.is_empty() {
            return Err(FaultError::Config(problems.join("; ")));
        }
        if let Some(ns) = &cfg.netns {
            if !netns_exists(ns) {
                return Err(FaultError::Targets {
                    message: format!("no network namespace named `{ns}`"),
                    hint: Some("`ip netns list` shows them; is the lab up with `--netns`?".into()),
                });
            }
        }
        let loss = cfg.loss.map_or(1.0, |l| l.fraction());
        let table = table_name(name);
        let rules = rules(&parsed.paths, loss);
        if rules.is_empty() {
            return Err(FaultError::Config(
                "the groups share no address family, so there is nothing to cut".into(),
            ));
        }
        let dir = match cfg.direction {
            Direction::Both => "both directions".to_string(),
            Direction::Ingress => format!("ingress only: into {}", parsed.paths[0].to.group()),
            Direction::Egress => format!("egress only: out of {}", parsed.paths[0].from.group()),
        };
        let whence = match &cfg.netns {
            Some(ns) => format!("in netns {ns}"),
            None => "on the host".to_string(),
        };
        let plan = Plan {
            backend: "netfilter".into(),
            action: format!(
                "drop {} {} ({dir}) {whence}",
                simian_core::Percent(loss),
                parsed.between
            ),
            targets: parsed
                .paths
                .iter()
                .map(|p| format!("{} → {}", p.from.describe(), p.to.describe()))
                .collect(),
            // Paths are not a countable set: only a count guard bounds them.
            eligible: 0,
            universe: "network paths".into(),
            revert: format!("delete table inet {table}"),
            irreversible: false,
            lease: lease.map(Into::into),
        };
        Ok(NetfilterFault {
            plan,
            netns: cfg.netns.clone(),
            script: script(&table, &rules, lease),
            table,
            lease,
        })
    }

    /// The nft script apply loads, for `plan` output and tests.
    pub fn script(&self) -> &str {
        &self.script
    }
}

fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Runs `nft ARGS` (inside `netns` when set), feeding `stdin`; returns stderr on failure.
async fn nft(netns: Option<&str>, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => Command::new("nft"),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match netns {
        Some(_) => format!("run `ip netns exec ... nft`: {e}"),
        None => format!("run `nft`: {e} (is nftables installed?)"),
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("write the nft script: {e}"))?;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("wait for nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[async_trait]
impl Fault for NetfilterFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(RevertRecord::Netfilter(NetfilterRevert {
            netns: self.netns.clone(),
            table: self.table.clone(),
        }))
    }

    async fn apply(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        let ns = self.netns.as_deref();
        let leftover = || {
            FaultError::Action(format!(
                "table inet {} already exists{}: an earlier run may not have been reverted (see `simian recover`)",
                self.table,
                ns.map(|n| format!(" in netns {n}")).unwrap_or_default()
            ))
        };
        if nft(ns, &["list", "table", "inet", &self.table], None)
            .await
            .is_ok()
        {
            return Err(leftover());
        }
        match nft(ns, &["-f", "-"], Some(&self.script)).await {
            Ok(_) => Ok(()),
            Err(e) if e.contains("File exists") => Err(leftover()),
            Err(e) => Err(FaultError::Action(format!(
                "load nftables table inet {}{}: {e}",
                self.table,
                ns.map(|n| format!(" in netns {n}")).unwrap_or_default()
            ))),
        }
    }

    async fn renew(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        let t = &self.table;
        let batch = format!(
            "delete element inet {t} lease {{ ipv4, ipv6 }}\nadd element inet {t} lease {}\n",
            lease_elements(lease)
        );
        let ns = self.netns.as_deref();
        nft(ns, &["-f", "-"], Some(&batch))
            .await
            .map(|_| ())
            .map_err(|e| {
                let place = ns.map(|n| format!(" in netns {n}")).unwrap_or_default();
                if e.contains("No such file or directory") {
                    FaultError::Action(format!(
                        "the lease of table inet {t}{place} ran out, or the table is gone"
                    ))
                } else {
                    FaultError::Action(format!("renew the lease of table inet {t}{place}: {e}"))
                }
            })
    }
}

/// Deletes the recorded table; a table (or a netns) already gone is fine.
pub async fn revert(r: &NetfilterRevert) -> Result<Reverted, FaultError> {
    let ns = r.netns.as_deref();
    let place = ns.map(|n| format!(" in netns {n}")).unwrap_or_default();
    if let Some(n) = ns {
        if !netns_exists(n) {
            return Ok(Reverted {
                actions: vec![format!(
                    "netns {n} is gone, and table inet {} with it",
                    r.table
                )],
            });
        }
    }
    match nft(ns, &["delete", "table", "inet", &r.table], None).await {
        Ok(_) => Ok(Reverted {
            actions: vec![format!("deleted table inet {}{place}", r.table)],
        }),
        Err(e) if e.contains("No such file or directory") && e.contains("delete table") => {
            Ok(Reverted {
                actions: vec![format!("table inet {}{place} already gone", r.table)],
            })
        }
        Err(e) if ns.is_some_and(|n| !netns_exists(n)) => Ok(Reverted {
            actions: vec![format!(
                "netns is gone, and table inet {} with it ({e})",
                r.table
            )],
        }),
        Err(e) => Err(FaultError::Action(format!(
            "delete table inet {}{place}: {e}",
            r.table
        ))),
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests for config checking and the generated rules, and tests
    //! against real nftables in network namespaces each test creates (root
    //! only; they say so and skip otherwise). Only addresses inside those
    //! namespaces are used, and the host ruleset is checked to be unchanged.

    use std::net::{SocketAddr, UdpSocket};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use simian_core::Percent;

    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn sever(a: &[&str], b: &[&str], direction: Direction) -> Config {
        Config {
            netns: None,
            partition: Partition::Sever { a: g(a), b: g(b) },
            direction,
            loss: None,
        }
    }

    #[test]
    fn check_reports_every_problem_at_once() {
        let cfg = Config {
            netns: Some("bad/name".into()),
            partition: Partition::Bridge {
                a: g(&["10.0.1.0/24", "10.0.1.300", "fd00::/129"]),
                b: g(&["10.0.1.7", "not-an-ip"]),
                bridge: vec![],
            },
            direction: Direction::Both,
            loss: Some(Percent(1.5)),
        };
        let p = check(&cfg);
        let all = p.join("\n");
        assert_eq!(p.len(), 7, "{all}");
        for want in [
            "`bad/name` is not a valid network namespace name",
            "loss must be more than 0% and at most 100%, not 150%",
            "`10.0.1.300` is not an IPv4/IPv6 address or CIDR",
            "`fd00::/129` has a bad prefix length",
            "`not-an-ip` is not an IPv4/IPv6 address or CIDR",
            "group `bridge` is empty",
            "10.0.1.0/24 (in `a`) and 10.0.1.7 (in `b`) overlap",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn check_rejects_zero_loss_and_empty_groups() {
        let mut cfg = sever(&[], &["10.0.0.1"], Direction::Both);
        cfg.loss = Some(Percent(0.0));
        let p = check(&cfg);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("loss must be more than 0%"));
        assert!(p[1].contains("group `a` is empty"));
        assert!(check(&sever(&["10.0.0.1"], &["fd00::1/64"], Direction::Both)).is_empty());
        assert!(check(&Config {
            netns: Some("lab-us-east".into()),
            partition: Partition::Isolate {
                group: g(&["10.0.0.1"])
            },
            direction: Direction::Egress,
            loss: Some(Percent(0.005)),
        })
        .is_empty());
    }

    #[test]
    fn build_refuses_an_invalid_config() {
        let Err(FaultError::Config(m)) = NetfilterFault::build(
            "x",
            &sever(&["10.0.0.1"], &["10.0.0.1"], Direction::Both),
            None,
        ) else {
            panic!("expected a config error");
        };
        assert!(m.contains("overlap"), "{m}");
    }

    #[test]
    fn table_names_hold_only_nft_name_characters() {
        assert_eq!(
            table_name("split-brain.us east"),
            "simian_split_brain_us_east"
        );
    }

    #[test]
    fn plan_describes_the_partition() {
        let mut cfg = sever(&["10.0.1.0/24"], &["10.0.2.0/24"], Direction::Both);
        let f = NetfilterFault::build("x", &cfg, None).unwrap();
        let p = f.plan();
        assert_eq!(p.backend, "netfilter");
        assert_eq!(
            p.action,
            "drop 100% between {10.0.1.0/24} and {10.0.2.0/24} (both directions) on the host"
        );
        assert_eq!(
            p.targets,
            [
                "{10.0.1.0/24} → {10.0.2.0/24}",
                "{10.0.2.0/24} → {10.0.1.0/24}"
            ]
        );
        assert_eq!((p.eligible, p.universe.as_str()), (0, "network paths"));
        assert_eq!(p.revert, "delete table inet simian_x");
        assert!(!p.irreversible);

        cfg.direction = Direction::Egress;
        cfg.loss = Some(Percent(0.25));
        let f = NetfilterFault::build("x", &cfg, None).unwrap();
        assert_eq!(
            f.plan().action,
            "drop 25% between {10.0.1.0/24} and {10.0.2.0/24} (egress only: out of {10.0.1.0/24}) on the host"
        );
        assert_eq!(f.plan().targets, ["{10.0.1.0/24} → {10.0.2.0/24}"]);
    }

    #[test]
    fn rules_cover_each_family_and_normalise_cidrs() {
        let cfg = sever(
            &["10.0.1.9/24", "10.0.1.5", "fd00:1::/64"],
            &["10.0.2.1", "fd00:2::1"],
            Direction::Ingress,
        );
        let f = NetfilterFault::build("t", &cfg, None).unwrap();
        let s = f.script();
        assert!(s.starts_with("create table inet simian_t\n"), "{s}");
        let rule4 = "ip saddr { 10.0.2.1 } ip daddr { 10.0.1.0/24 } counter drop";
        let rule6 = "ip6 saddr { fd00:2::1 } ip6 daddr { fd00:1::/64 } counter drop";
        assert_eq!(s.matches(rule4).count(), 3, "{s}");
        assert_eq!(s.matches(rule6).count(), 3, "{s}");
        assert_eq!(s.matches("counter drop").count(), 6, "{s}");

        let iso = Config {
            netns: None,
            partition: Partition::Isolate {
                group: g(&["10.0.0.1"]),
            },
            direction: Direction::Both,
            loss: Some(Percent(0.5)),
        };
        let s = NetfilterFault::build("t", &iso, None)
            .unwrap()
            .script()
            .to_string();
        assert!(s.contains("ip saddr { 10.0.0.1 } ip daddr != { 10.0.0.1 } numgen random mod 10000 < 5000 counter drop"), "{s}");
        assert!(s.contains("ip saddr != { 10.0.0.1 } ip daddr { 10.0.0.1 } numgen random mod 10000 < 5000 counter drop"), "{s}");
        assert!(!s.contains("ip6"), "{s}");
    }

    // --- real nftables in namespaces ---------------------------------------

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    fn run(args: &[&str]) -> String {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn host_ruleset() -> String {
        run(&["nft", "list", "ruleset"])
    }

    fn root() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        eprintln!("SKIPPED: needs root (network namespaces and nftables)");
        false
    }

    /// A network namespace with these addresses on its loopback, so
    /// traffic between them is local (it crosses the `output` and `input`
    /// hooks). Deleted on drop; also checks the host ruleset is unchanged.
    struct Netns {
        name: String,
        host_rules: String,
    }

    impl Netns {
        fn new(addrs: &[&str]) -> Netns {
            let name = format!(
                "simian-t-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            );
            let host_rules = host_ruleset();
            run(&["ip", "netns", "add", &name]);
            let ns = Netns { name, host_rules };
            let n = ns.name.as_str();
            run(&["ip", "-n", n, "link", "set", "lo", "up"]);
            for a in addrs {
                run(&["ip", "-n", n, "addr", "add", a, "dev", "lo"]);
            }
            ns
        }

        fn ruleset(&self) -> String {
            run(&["ip", "netns", "exec", &self.name, "nft", "list", "ruleset"])
        }

        /// Runs `f` on a thread that has entered this namespace.
        fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
            let file = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
            std::thread::scope(|s| {
                s.spawn(move || {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
            })
        }

        /// Whether a TCP connect from `from` to `to` completes within a second.
        fn tcp(&self, from: &str, to: &str) -> bool {
            let (from, to): (IpAddr, IpAddr) = (from.parse().unwrap(), to.parse().unwrap());
            self.within(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::bind(SocketAddr::new(to, 0))
                        .await
                        .unwrap();
                    let s = if from.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()
                    } else {
                        tokio::net::TcpSocket::new_v6()
                    }
                    .unwrap();
                    s.bind(SocketAddr::new(from, 0)).unwrap();
                    let c = s.connect(l.local_addr().unwrap());
                    matches!(
                        tokio::time::timeout(Duration::from_secs(1), c).await,
                        Ok(Ok(_))
                    )
                })
            })
        }

        /// How many of `n` UDP datagrams from `from` reach `to`.
        fn udp(&self, from: &str, to: &str, n: usize) -> usize {
            let (from, to): (IpAddr, IpAddr) = (from.parse().unwrap(), to.parse().unwrap());
            self.within(move || {
                let rx = UdpSocket::bind(SocketAddr::new(to, 0)).unwrap();
                let tx = UdpSocket::bind(SocketAddr::new(from, 0)).unwrap();
                rx.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let dst = rx.local_addr().unwrap();
                for i in 0..n {
                    // A drop in `output` fails the send (EPERM); that datagram is lost too.
                    let _ = tx.send_to(&(i as u32).to_be_bytes(), dst);
                    if i % 50 == 49 {
                        // Stay well inside the socket buffers.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                let mut got = 0;
                let mut buf = [0u8; 16];
                while rx.recv_from(&mut buf).is_ok() {
                    got += 1;
                }
                got
            })
        }
    }

    /// Whether a TCP connect from namespace `from` reaches a listener on
    /// `to:port` in namespace `to_ns` within a second.
    fn tcp_across(from: &Netns, to_ns: &Netns, to: &str) -> bool {
        let to: IpAddr = to.parse().unwrap();
        let l = to_ns.within(move || std::net::TcpListener::bind(SocketAddr::new(to, 0)).unwrap());
        let addr = l.local_addr().unwrap();
        from.within(move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        })
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.name])
                .stderr(std::process::Stdio::null())
                .status();
            if !std::thread::panicking() {
                assert_eq!(host_ruleset(), self.host_rules, "the host ruleset changed");
            }
        }
    }

    const A: &str = "10.77.1.1";
    const B: &str = "10.77.2.1";
    const C: &str = "10.77.3.1";

    fn in_ns(ns: &Netns, mut cfg: Config) -> Config {
        cfg.netns = Some(ns.name.clone());
        cfg
    }

    async fn inject(name: &str, cfg: &Config) -> (NetfilterFault, NetfilterRevert) {
        let f = NetfilterFault::build(name, cfg, None).unwrap();
        let rec = f.prepare().await.unwrap();
        f.apply(&rec).await.unwrap();
        let RevertRecord::Netfilter(r) = rec else {
            unreachable!()
        };
        (f, r)
    }

    #[tokio::test]
    async fn sever_drops_tcp_both_ways_until_revert() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B, C]);
        assert!(
            ns.tcp(A, B) && ns.tcp(B, A),
            "no connectivity before the fault"
        );
        let cfg = in_ns(&ns, sever(&[A], &["10.77.2.0/24"], Direction::Both));
        let f = NetfilterFault::build("split brain", &cfg, None).unwrap();
        let rec = f.prepare().await.unwrap();
        assert!(
            !ns.ruleset().contains("simian_"),
            "prepare changed something"
        );
        f.apply(&rec).await.unwrap();

        let rules = ns.ruleset();
        assert!(rules.contains("table inet simian_split_brain {"), "{rules}");
        assert!(!ns.tcp(A, B), "A → B connected during the partition");
        assert!(!ns.tcp(B, A), "B → A connected during the partition");
        assert!(
            ns.tcp(A, C) && ns.tcp(C, B),
            "paths outside the partition were cut"
        );

        let RevertRecord::Netfilter(r) = rec else {
            unreachable!()
        };
        let done = revert(&r).await.unwrap();
        assert_eq!(
            done.actions,
            [format!(
                "deleted table inet simian_split_brain in netns {}",
                ns.name
            )]
        );
        assert!(!ns.ruleset().contains("simian_"), "{}", ns.ruleset());
        assert!(ns.tcp(A, B) && ns.tcp(B, A), "no connectivity after revert");
        let again = revert(&r).await.unwrap();
        assert!(again.actions[0].contains("already gone"), "{again:?}");
    }

    #[tokio::test]
    async fn a_leased_cut_heals_by_itself_unless_renewed_and_renewal_never_revives_it() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B, "fd00:78::1/128", "fd00:78::2/128"]);
        let cfg = in_ns(
            &ns,
            sever(&[A, "fd00:78::1"], &[B, "fd00:78::2"], Direction::Both),
        );
        let lease = Duration::from_millis(1500);
        let f = NetfilterFault::build("leased", &cfg, Some(lease)).unwrap();
        assert_eq!(f.plan().lease, Some(simian_core::Dur(lease)));
        assert!(
            f.script().contains("set lease { type nf_proto; flags timeout; elements = { ipv4 timeout 1500ms, ipv6 timeout 1500ms }; }"),
            "{}",
            f.script()
        );
        let rec = f.prepare().await.unwrap();
        f.apply(&rec).await.unwrap();
        assert_eq!(
            ns.udp(A, B, 5) + ns.udp("fd00:78::2", "fd00:78::1", 5),
            0,
            "cut while leased"
        );
        // Renewed for three lease lengths: still cut all along.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            f.renew(&rec).await.unwrap();
            assert_eq!(ns.udp(B, A, 5), 0, "renewed, yet the cut healed");
        }
        // Not renewed: both families heal by themselves, with the table still there.
        let healed = async {
            for _ in 0..100 {
                if ns.tcp(A, B) && ns.tcp("fd00:78::1", "fd00:78::2") {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        };
        assert!(healed.await, "the cut outlived its lease");
        assert!(
            ns.ruleset().contains("table inet simian_leased"),
            "{}",
            ns.ruleset()
        );
        let e = f.renew(&rec).await.unwrap_err().to_string();
        assert!(e.contains("ran out"), "{e}");
        assert!(ns.tcp(B, A), "a late renewal brought the cut back");
        // The revert tidies the inert table away, as after any run.
        let RevertRecord::Netfilter(r) = rec else {
            unreachable!()
        };
        revert(&r).await.unwrap();
        assert!(!ns.ruleset().contains("simian_"), "{}", ns.ruleset());
        assert!(
            f.renew(&RevertRecord::Netfilter(r)).await.is_err(),
            "gone is gone"
        );
    }

    #[tokio::test]
    async fn sever_works_for_ipv6_and_mixed_groups() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B, "fd00:77::1/128", "fd00:77::2/128"]);
        assert!(ns.tcp("fd00:77::1", "fd00:77::2"));
        let cfg = in_ns(
            &ns,
            sever(&[A, "fd00:77::1"], &[B, "fd00:77::2"], Direction::Both),
        );
        let (_f, r) = inject("v6", &cfg).await;
        assert!(!ns.tcp("fd00:77::1", "fd00:77::2"));
        assert!(!ns.tcp(B, A));
        revert(&r).await.unwrap();
        assert!(ns.tcp("fd00:77::1", "fd00:77::2") && ns.tcp(B, A));
    }

    #[tokio::test]
    async fn revert_is_fine_when_the_netns_is_gone() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B]);
        let (_f, r) = inject("gone", &in_ns(&ns, sever(&[A], &[B], Direction::Both))).await;
        run(&["ip", "netns", "del", &ns.name]);
        let done = revert(&r).await.unwrap();
        assert!(done.actions[0].contains("is gone"), "{done:?}");
    }

    #[tokio::test]
    async fn apply_refuses_a_table_left_by_an_earlier_run() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B]);
        let cfg = in_ns(&ns, sever(&[A], &[B], Direction::Both));
        let (_f, r) = inject("twice", &cfg).await;
        let f = NetfilterFault::build("twice", &cfg, None).unwrap();
        let rec = f.prepare().await.unwrap();
        let err = f.apply(&rec).await.unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("simian recover"),
            "{err}"
        );
        revert(&r).await.unwrap();
    }

    #[tokio::test]
    async fn nft_errors_carry_its_stderr() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B]);
        let mut f =
            NetfilterFault::build("bad", &in_ns(&ns, sever(&[A], &[B], Direction::Both)), None)
                .unwrap();
        f.script = "create table inet simian_bad\nthis is not nft\n".into();
        let rec = f.prepare().await.unwrap();
        let err = f.apply(&rec).await.unwrap_err().to_string();
        assert!(
            err.starts_with("load nftables table inet simian_bad in netns"),
            "{err}"
        );
        assert!(err.contains("Error: syntax error"), "{err}");
        assert!(
            !ns.ruleset().contains("simian_"),
            "a failed apply left rules behind"
        );
    }

    #[tokio::test]
    async fn egress_cuts_only_packets_out_of_a() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B]);
        let (_f, r) = inject("egress", &in_ns(&ns, sever(&[A], &[B], Direction::Egress))).await;
        assert_eq!(ns.udp(A, B, 20), 0, "A → B datagrams got through");
        assert_eq!(ns.udp(B, A, 20), 20, "B → A datagrams were dropped");
        assert!(!ns.tcp(A, B), "A → B SYN got through");
        revert(&r).await.unwrap();
        assert_eq!(ns.udp(A, B, 20), 20);
    }

    #[tokio::test]
    async fn ingress_cuts_only_packets_into_a() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B]);
        let (_f, r) = inject(
            "ingress",
            &in_ns(&ns, sever(&[A], &[B], Direction::Ingress)),
        )
        .await;
        assert_eq!(ns.udp(B, A, 20), 0, "B → A datagrams got through");
        assert_eq!(ns.udp(A, B, 20), 20, "A → B datagrams were dropped");
        revert(&r).await.unwrap();
    }

    #[tokio::test]
    async fn isolate_cuts_the_group_from_all_others_only() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, "10.77.1.2", B, C]);
        let cfg = Config {
            netns: Some(ns.name.clone()),
            partition: Partition::Isolate {
                group: g(&["10.77.1.0/24"]),
            },
            direction: Direction::Both,
            loss: None,
        };
        let (_f, r) = inject("iso", &cfg).await;
        assert!(
            !ns.tcp(A, B) && !ns.tcp(C, A),
            "the group still reaches others"
        );
        assert!(ns.tcp(A, "10.77.1.2"), "the group was cut from itself");
        assert!(ns.tcp(B, C), "others were cut from each other");
        revert(&r).await.unwrap();
        assert!(ns.tcp(A, B) && ns.tcp(C, A));
    }

    #[tokio::test]
    async fn bridge_cuts_a_from_b_but_not_the_bridge() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B, C]);
        let cfg = Config {
            netns: Some(ns.name.clone()),
            partition: Partition::Bridge {
                a: g(&[A]),
                b: g(&[B]),
                bridge: g(&[C]),
            },
            direction: Direction::Both,
            loss: None,
        };
        let (_f, r) = inject("bridge", &cfg).await;
        assert!(
            !ns.tcp(A, B) && !ns.tcp(B, A),
            "a and b still reach each other"
        );
        assert!(
            ns.tcp(C, A) && ns.tcp(A, C) && ns.tcp(C, B) && ns.tcp(B, C),
            "the bridge was cut"
        );
        revert(&r).await.unwrap();
    }

    #[tokio::test]
    async fn loss_drops_some_packets_but_not_all() {
        if !root() {
            return;
        }
        let ns = Netns::new(&[A, B]);
        let mut cfg = in_ns(&ns, sever(&[A], &[B], Direction::Both));
        cfg.loss = Some(Percent(0.5));
        let (_f, r) = inject("loss", &cfg).await;
        let rules = ns.ruleset();
        assert!(rules.contains("numgen random mod 10000 < 5000"), "{rules}");
        let got = ns.udp(A, B, 200);
        assert!(
            (40..=160).contains(&got),
            "{got} of 200 datagrams arrived at 50% loss"
        );
        revert(&r).await.unwrap();
        assert_eq!(ns.udp(A, B, 200), 200);
    }

    #[tokio::test]
    async fn sever_on_a_router_cuts_forwarded_traffic() {
        if !root() {
            return;
        }
        // left (10.78.1.2) -- router (10.78.1.1 | 10.78.2.1) -- right (10.78.2.2)
        let (left, router, right) = (Netns::new(&[]), Netns::new(&[]), Netns::new(&[]));
        let r = router.name.as_str();
        for (ns, side, net) in [(&left, "l", "1"), (&right, "r", "2")] {
            let (inner, outer) = (format!("{side}0"), format!("{side}1"));
            run(&[
                "ip", "-n", r, "link", "add", &inner, "type", "veth", "peer", "name", &outer,
                "netns", &ns.name,
            ]);
            run(&[
                "ip",
                "-n",
                r,
                "addr",
                "add",
                &format!("10.78.{net}.1/24"),
                "dev",
                &inner,
            ]);
            run(&["ip", "-n", r, "link", "set", &inner, "up"]);
            run(&[
                "ip",
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("10.78.{net}.2/24"),
                "dev",
                &outer,
            ]);
            run(&["ip", "-n", &ns.name, "link", "set", &outer, "up"]);
            run(&[
                "ip",
                "-n",
                &ns.name,
                "route",
                "add",
                "default",
                "via",
                &format!("10.78.{net}.1"),
            ]);
        }
        run(&[
            "ip",
            "netns",
            "exec",
            r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        assert!(
            tcp_across(&left, &right, "10.78.2.2"),
            "no route before the fault"
        );

        let cfg = in_ns(
            &router,
            sever(&["10.78.1.0/24"], &["10.78.2.0/24"], Direction::Both),
        );
        let (_f, rec) = inject("routed", &cfg).await;
        assert!(
            !tcp_across(&left, &right, "10.78.2.2"),
            "left → right forwarded"
        );
        assert!(
            !tcp_across(&right, &left, "10.78.1.2"),
            "right → left forwarded"
        );
        assert!(router.ruleset().contains("hook forward"));
        revert(&rec).await.unwrap();
        assert!(tcp_across(&left, &right, "10.78.2.2") && tcp_across(&right, &left, "10.78.1.2"));
    }
}
