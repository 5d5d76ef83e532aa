//! CIDR blocks, IPv4 and IPv6: parsed, canonical (host bits cleared, as EC2
//! stores them), compared for overlap.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A CIDR block with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Cidr {
    V4(u32, u8),
    V6(u128, u8),
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x:y::/n`; host bits are cleared (EC2 does the
    /// same to the entries it is given).
    pub(crate) fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("`{s}` is not a CIDR block (e.g. 10.2.0.0/16 or 2600:1f18::/56)");
        let (addr, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        match addr.parse::<IpAddr>().map_err(|_| bad())? {
            IpAddr::V4(a) if len <= 32 => Ok(Cidr::V4(u32::from(a) & mask32(len), len)),
            IpAddr::V6(a) if len <= 128 => Ok(Cidr::V6(u128::from(a) & mask128(len), len)),
            _ => Err(bad()),
        }
    }

    /// True when some address is in both. Prefix blocks either nest or are
    /// disjoint, so this is also "one contains the other".
    pub(crate) fn overlaps(&self, other: &Cidr) -> bool {
        match (*self, *other) {
            (Cidr::V4(a, m), Cidr::V4(b, n)) => {
                let mask = mask32(m.min(n));
                a & mask == b & mask
            }
            (Cidr::V6(a, m), Cidr::V6(b, n)) => {
                let mask = mask128(m.min(n));
                a & mask == b & mask
            }
            _ => false,
        }
    }

    /// True when every address of `other` is in `self`.
    pub(crate) fn contains(&self, other: &Cidr) -> bool {
        self.overlaps(other) && self.len() <= other.len()
    }

    fn len(&self) -> u8 {
        match *self {
            Cidr::V4(_, n) | Cidr::V6(_, n) => n,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cidr::V4(a, n) => write!(f, "{}/{n}", Ipv4Addr::from(a)),
            Cidr::V6(a, n) => write!(f, "{}/{n}", Ipv6Addr::from(a)),
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// `cidrs` without those another of them contains (each address once), sorted.
pub(crate) fn minimal(cidrs: impl IntoIterator<Item = Cidr>) -> Vec<Cidr> {
    let mut all: Vec<Cidr> = cidrs.into_iter().collect();
    all.sort();
    all.dedup();
    let kept: Vec<Cidr> = all
        .iter()
        .filter(|c| !all.iter().any(|o| o != *c && o.contains(c)))
        .copied()
        .collect();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn parses_and_clears_host_bits() {
        assert_eq!(c("10.2.3.4/16").to_string(), "10.2.0.0/16");
        assert_eq!(c("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(c("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(
            c("2600:1f18:abcd:1::/56").to_string(),
            "2600:1f18:abcd::/56"
        );
        assert_eq!(c("::/0").to_string(), "::/0");
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8", "::/129", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_nesting_within_a_family() {
        assert!(c("10.1.0.0/16").overlaps(&c("10.1.5.0/24")));
        assert!(c("10.1.5.0/24").overlaps(&c("10.1.0.0/16")));
        assert!(!c("10.1.0.0/16").overlaps(&c("10.2.0.0/16")));
        assert!(c("0.0.0.0/0").overlaps(&c("192.0.2.0/24")));
        assert!(!c("10.0.0.0/8").overlaps(&c("::/0")));
        assert!(c("fd00::/8").overlaps(&c("fd12::/16")));
    }

    #[test]
    fn minimal_drops_the_nested_and_the_repeated() {
        let m = minimal([
            c("10.2.5.0/24"),
            c("10.2.0.0/16"),
            c("10.2.0.0/16"),
            c("10.3.0.0/16"),
        ]);
        let m: Vec<String> = m.iter().map(Cidr::to_string).collect();
        assert_eq!(m, ["10.2.0.0/16", "10.3.0.0/16"]);
    }
}
