//! The plan of a lab in network namespaces: names and addresses, derived from the lab's tag,
//! its size and its subnet. Nothing here touches the system.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LabSpec;

/// Where the lab's processes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// Everything on 127.0.0.1, in the host's namespace (no privileges needed).
    #[default]
    Loopback,
    /// Every region and zone in its own network namespace, in this /16 (`None`: pick a free
    /// `10.N.0.0/16`). Needs root.
    Netns(Option<Subnet>),
}

/// The lab's IPv4 /16 in namespace mode, e.g. `10.142.0.0/16`: region `i` (1-based) gets
/// `10.142.i.0/24`, the link between the host and the router `10.142.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    a: u8,
    b: u8,
}

/// The range a default subnet is picked from: `10.N.0.0/16` with N in it.
pub(crate) const DEFAULT_SECOND_OCTETS: std::ops::RangeInclusive<u8> = 100..=199;

impl Subnet {
    /// `10.n.0.0/16`.
    pub fn ten(n: u8) -> Subnet {
        Subnet { a: 10, b: n }
    }

    /// `A.B.c.d` in this subnet.
    pub fn addr(&self, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.a, self.b, c, d)
    }

    /// The network address, `A.B.0.0`.
    pub fn network(&self) -> Ipv4Addr {
        self.addr(0, 0)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        (a, b) == (self.a, self.b)
    }

    /// Whether the prefix `net/len` shares any address with this subnet.
    pub fn overlaps(&self, net: Ipv4Addr, len: u8) -> bool {
        let len = u32::from(len.min(16));
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        (u32::from(net) & mask) == (u32::from(self.network()) & mask)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.0.0/16", self.a, self.b)
    }
}

impl std::str::FromStr for Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("`{s}` {why}: give a private /16 such as 10.150.0.0/16");
        let (ip, len) = s.trim().split_once('/').ok_or_else(|| bad("has no /16"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad("is not an IPv4 network"))?;
        if len != "16" {
            return Err(bad("is not a /16"));
        }
        let [a, b, c, d] = ip.octets();
        if (c, d) != (0, 0) {
            return Err(bad("has host bits set"));
        }
        // The lab's route on the host must never shadow a public network.
        let private = a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168);
        if !private {
            return Err(bad("is not a private (RFC 1918) network"));
        }
        Ok(Subnet { a, b })
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// Every namespace, link and address of a lab in namespace mode, as `state.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsLayout {
    /// The router namespace: every packet between regions is forwarded here, so a partition
    /// between regions is an nftables `forward` rule in it.
    pub core: String,
    pub subnet: Subnet,
    /// The host's end of the link to the router (`sl<tag>-h`); the host routes the subnet
    /// through it.
    pub host_link: String,
    /// The host's address on that link: where the supervisor's store proxies listen.
    pub host_addr: Ipv4Addr,
    /// The router's address on that link.
    pub core_addr: Ipv4Addr,
    pub regions: Vec<RegionNet>,
}

/// One region's network: a bridge in the router, and a namespace for its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionNet {
    pub name: String,
    /// The namespace of the region's store.
    pub netns: String,
    /// `10.N.i.0/24`: the region's store and all its zones.
    pub cidr: String,
    /// The router's address on the region's bridge, everyone's default route.
    pub gateway: Ipv4Addr,
    /// `10.N.i.2`: where the store listens.
    pub store_addr: Ipv4Addr,
    pub zones: Vec<ZoneNet>,
}

/// One zone's network namespace; its instances listen on its address, each on its own port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneNet {
    pub name: String,
    pub netns: String,
    /// `10.N.i.(10+j)` for zone j (1-based) of region i.
    pub addr: Ipv4Addr,
}

/// The prefix of every name the lab with this tag creates: `sl<tag>-`.
pub(crate) fn prefix(tag: &str) -> String {
    format!("sl{tag}-")
}

/// The host-side interface of the link to the router: `sl<tag>-h` (10 characters, within
/// the kernel's 15).
pub(crate) fn host_link(tag: &str) -> String {
    format!("sl{tag}-h")
}

/// A short name for the lab in `lab_dir` (6 hex digits of a hash of its canonical path), so
/// labs in different state dirs get different namespaces and can run side by side.
pub(crate) fn tag(lab_dir: &Path) -> String {
    let canonical = std::fs::canonicalize(lab_dir).unwrap_or_else(|_| lab_dir.to_path_buf());
    format!(
        "{:06x}",
        fnv1a(canonical.as_os_str().as_encoded_bytes()) & 0xff_ffff
    )
}

/// The second octet to try first for the default `10.N.0.0/16` of the lab with `tag`:
/// labs in different state dirs usually start from different ones.
pub(crate) fn preferred_octet(tag: &str) -> u8 {
    let span = u64::from(DEFAULT_SECOND_OCTETS.end() - DEFAULT_SECOND_OCTETS.start()) + 1;
    DEFAULT_SECOND_OCTETS.start() + (fnv1a(tag.as_bytes()) % span) as u8
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl NetnsLayout {
    /// The layout of a lab of size `spec` with `tag` in `subnet`.
    pub(crate) fn plan(tag: &str, spec: &LabSpec, subnet: Subnet) -> NetnsLayout {
        let pre = prefix(tag);
        let regions = spec
            .region_names()
            .into_iter()
            .zip(1u8..)
            .map(|(region, i)| RegionNet {
                name: region.to_string(),
                netns: format!("{pre}{region}"),
                cidr: format!("{}/24", subnet.addr(i, 0)),
                gateway: subnet.addr(i, 1),
                store_addr: subnet.addr(i, 2),
                zones: spec
                    .zone_names(region)
                    .into_iter()
                    .zip(11u8..)
                    .map(|(zone, d)| ZoneNet {
                        netns: format!("{pre}{zone}"),
                        name: zone,
                        addr: subnet.addr(i, d),
                    })
                    .collect(),
            })
            .collect();
        NetnsLayout {
            core: format!("{pre}core"),
            subnet,
            host_link: host_link(tag),
            host_addr: subnet.addr(0, 1),
            core_addr: subnet.addr(0, 2),
            regions,
        }
    }

    /// The tag this layout's names carry: they all start with `sl<tag>-`.
    pub fn tag(&self) -> &str {
        self.core
            .strip_prefix("sl")
            .and_then(|t| t.strip_suffix("-core"))
            .unwrap_or_default()
    }

    /// Every namespace: the router's first, then each region's and its zones'.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut out = vec![self.core.as_str()];
        for r in &self.regions {
            out.push(&r.netns);
            out.extend(r.zones.iter().map(|z| z.netns.as_str()));
        }
        out
    }

    pub fn region(&self, name: &str) -> Option<&RegionNet> {
        self.regions.iter().find(|r| r.name == name)
    }

    pub fn zone(&self, name: &str) -> Option<&ZoneNet> {
        self.regions
            .iter()
            .flat_map(|r| &r.zones)
            .find(|z| z.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_only_as_private_slash_16s() {
        let s: Subnet = "10.150.0.0/16".parse().unwrap();
        assert_eq!(s, Subnet::ten(150));
        assert_eq!(s.to_string(), "10.150.0.0/16");
        assert_eq!(
            "172.20.0.0/16"
                .parse::<Subnet>()
                .unwrap()
                .addr(1, 2)
                .to_string(),
            "172.20.1.2"
        );
        for (bad, why) in [
            ("10.150.0.0/24", "is not a /16"),
            ("10.150.1.0/16", "host bits"),
            ("8.8.0.0/16", "private"),
            ("10.150.0.0", "no /16"),
            ("ten/16", "not an IPv4"),
        ] {
            let err = bad.parse::<Subnet>().unwrap_err();
            assert!(
                err.contains(why) && err.contains("10.150.0.0/16"),
                "{bad}: {err}"
            );
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"10.150.0.0/16\"");
        assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), s);
    }

    #[test]
    fn overlap_compares_the_shorter_prefix() {
        let s = Subnet::ten(150);
        let ip = |t: &str| t.parse::<Ipv4Addr>().unwrap();
        assert!(s.overlaps(ip("10.150.3.0"), 24));
        assert!(s.overlaps(ip("10.0.0.0"), 8));
        assert!(s.overlaps(ip("10.150.0.0"), 16));
        assert!(!s.overlaps(ip("10.151.0.0"), 16));
        assert!(!s.overlaps(ip("192.0.2.0"), 24));
        assert!(s.contains(ip("10.150.9.9")) && !s.contains(ip("10.15.0.1")));
    }

    #[test]
    fn the_plan_gives_each_region_a_slash_24_and_each_zone_an_address() {
        let spec = LabSpec {
            regions: 2,
            zones: 3,
            instances: 2,
        };
        let l = NetnsLayout::plan("1a2b3c", &spec, Subnet::ten(142));
        assert_eq!(l.core, "sl1a2b3c-core");
        assert_eq!(l.tag(), "1a2b3c");
        assert_eq!(l.host_link, "sl1a2b3c-h");
        assert_eq!(
            (l.host_addr.to_string(), l.core_addr.to_string()),
            ("10.142.0.1".into(), "10.142.0.2".into())
        );
        let west = l.region("us-west").unwrap();
        assert_eq!(west.netns, "sl1a2b3c-us-west");
        assert_eq!(west.cidr, "10.142.2.0/24");
        assert_eq!(west.gateway.to_string(), "10.142.2.1");
        assert_eq!(west.store_addr.to_string(), "10.142.2.2");
        let c = l.zone("us-west-c").unwrap();
        assert_eq!(
            (c.netns.as_str(), c.addr.to_string()),
            ("sl1a2b3c-us-west-c", "10.142.2.13".into())
        );
        assert_eq!(l.namespaces().len(), 1 + 2 + 6);
        assert_eq!(l.namespaces()[0], "sl1a2b3c-core");
    }

    #[test]
    fn tags_are_stable_short_and_differ_between_dirs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (ta, tb) = (tag(a.path()), tag(b.path()));
        assert_eq!(ta.len(), 6);
        assert!(ta.chars().all(|c| c.is_ascii_hexdigit()), "{ta}");
        assert_eq!(ta, tag(a.path()), "stable");
        assert_ne!(ta, tb);
        assert!(DEFAULT_SECOND_OCTETS.contains(&preferred_octet(&ta)));
        // Interface names must fit the kernel's IFNAMSIZ - 1.
        assert!(host_link(&ta).len() <= 15);
    }
}
