//! How users arrive at the lab's global router: the geo split (which share of users lives in
//! each region, `lab up --geo`) and each region's capacity (`lab up --capacity`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{LabError, LabSpec};

/// The traffic shape of a lab, as `state.json` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficSpec {
    /// Relative share of users homed in each region. Empty in a state file from before the
    /// global router; a running lab always fills it (equal shares: 100 / regions each).
    #[serde(default)]
    pub geo: BTreeMap<String, u32>,
    /// Requests per second each listed region's edge serves at most; unlisted: no limit.
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
}

/// Parses `REGION=N`, as `--geo` and `--capacity` take it.
pub fn parse_region_number(s: &str) -> Result<(String, u32), String> {
    let (region, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected REGION=N, e.g. us-east=60, got `{s}`"))?;
    let region = region.trim();
    if region.is_empty() {
        return Err(format!("expected REGION=N, the region is missing in `{s}`"));
    }
    let n = n
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("expected a whole number after `{region}=`, got `{n}`"))?;
    Ok((region.to_string(), n))
}

impl TrafficSpec {
    /// Checks `--geo` and `--capacity` against the lab's regions, reporting every problem at
    /// once, and fills in the defaults: without `--geo`, equal shares; a region left out of
    /// `--geo` gets no users.
    pub fn new(
        spec: &LabSpec,
        geo: &[(String, u32)],
        capacity: &[(String, u32)],
    ) -> Result<TrafficSpec, LabError> {
        let regions = spec.region_names();
        let mut problems = Vec::new();
        let mut check = |flag: &str, pairs: &[(String, u32)]| {
            let mut seen = BTreeMap::new();
            for (region, n) in pairs {
                if !regions.contains(&region.as_str()) {
                    problems.push(format!(
                        "{flag} names `{region}`, which is not a region of this lab ({})",
                        regions.join(", ")
                    ));
                } else if seen.insert(region.clone(), *n).is_some() {
                    problems.push(format!("{flag} names `{region}` twice"));
                }
            }
            seen
        };
        let geo_given = check("--geo", geo);
        let capacity = check("--capacity", capacity);
        if !geo.is_empty() && geo.iter().all(|(_, n)| *n == 0) {
            problems.push("--geo gives every region a share of 0: no user would arrive".into());
        }
        for (region, n) in &capacity {
            if *n == 0 {
                problems.push(format!(
                    "--capacity {region}=0 would refuse every request; give at least 1 per second"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(LabError::InvalidArgument(problems.join("; ")));
        }
        let geo = if geo.is_empty() {
            let equal = 100 / regions.len().max(1) as u32;
            regions.iter().map(|r| (r.to_string(), equal)).collect()
        } else {
            regions
                .iter()
                .map(|r| (r.to_string(), geo_given.get(*r).copied().unwrap_or(0)))
                .collect()
        };
        Ok(TrafficSpec { geo, capacity })
    }

    /// The geo shares in the lab's region order (equal shares when none are recorded).
    pub fn geo_shares(&self, spec: &LabSpec) -> Vec<(String, u32)> {
        spec.region_names()
            .into_iter()
            .map(|r| {
                let share = if self.geo.is_empty() {
                    1
                } else {
                    self.geo.get(r).copied().unwrap_or(0)
                };
                (r.to_string(), share)
            })
            .collect()
    }

    /// `region`'s share of users in percent.
    pub fn geo_percent(&self, region: &str) -> Option<f64> {
        let total: u32 = self.geo.values().sum();
        let share = self.geo.get(region)?;
        (total > 0).then(|| f64::from(*share) * 100.0 / f64::from(total))
    }

    /// The `--geo` and `--capacity` arguments that recreate this (for `lab supervise`).
    pub fn to_args(&self) -> Vec<String> {
        let list = |m: &BTreeMap<String, u32>| {
            m.iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut args = Vec::new();
        if !self.geo.is_empty() {
            args.push(format!("--geo={}", list(&self.geo)));
        }
        if !self.capacity.is_empty() {
            args.push(format!("--capacity={}", list(&self.capacity)));
        }
        args
    }
}

/// The home region of a user at `u`, drawn uniformly from [0, 1): each region owns a slice
/// of [0, 1) as wide as its share. `None` when every share is 0.
pub fn home_at(shares: &[(String, u32)], u: f64) -> Option<&str> {
    let total: u64 = shares.iter().map(|(_, s)| u64::from(*s)).sum();
    if total == 0 {
        return None;
    }
    let point = (u.clamp(0.0, 1.0) * total as f64) as u64;
    let mut upto = 0;
    for (region, share) in shares {
        upto += u64::from(*share);
        if point < upto {
            return Some(region);
        }
    }
    // u == 1.0: the last region with a share.
    shares
        .iter()
        .rev()
        .find(|(_, s)| *s > 0)
        .map(|(r, _)| r.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(regions: usize) -> LabSpec {
        LabSpec {
            regions,
            ..LabSpec::default()
        }
    }

    fn pairs(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn region_numbers_parse_and_say_what_is_wrong() {
        assert_eq!(
            parse_region_number("us-west=200"),
            Ok(("us-west".into(), 200))
        );
        assert!(parse_region_number("us-west")
            .unwrap_err()
            .contains("REGION=N"));
        assert!(parse_region_number("=5").unwrap_err().contains("missing"));
        assert!(parse_region_number("us-west=lots")
            .unwrap_err()
            .contains("whole number"));
        assert!(parse_region_number("us-west=-3").is_err());
    }

    #[test]
    fn without_geo_every_region_gets_an_equal_share() {
        let t = TrafficSpec::new(&spec(3), &[], &[]).unwrap();
        assert_eq!(t.geo.values().collect::<Vec<_>>(), [&33, &33, &33]);
        assert_eq!(t.capacity, BTreeMap::new());
        let p = t.geo_percent("eu-west").unwrap();
        assert!((p - 100.0 / 3.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn geo_and_capacity_are_checked_against_the_regions_all_at_once() {
        let t = TrafficSpec::new(
            &spec(3),
            &pairs(&[("us-east", 60), ("us-west", 40)]),
            &pairs(&[("us-west", 200)]),
        )
        .unwrap();
        assert_eq!(t.geo["eu-west"], 0, "left out: no users");
        assert_eq!(t.geo_percent("us-east"), Some(60.0));
        assert_eq!(t.capacity["us-west"], 200);
        assert_eq!(
            t.to_args(),
            [
                "--geo=eu-west=0,us-east=60,us-west=40",
                "--capacity=us-west=200"
            ]
        );

        let err = TrafficSpec::new(
            &spec(2),
            &pairs(&[("us-east", 0), ("eu-west", 0), ("us-east", 0)]),
            &pairs(&[("us-west", 0), ("mars", 5)]),
        )
        .unwrap_err()
        .to_string();
        for part in [
            "--geo names `eu-west`, which is not a region of this lab (us-east, us-west)",
            "--geo names `us-east` twice",
            "every region a share of 0",
            "--capacity names `mars`",
            "--capacity us-west=0",
        ] {
            assert!(err.contains(part), "{part}\n{err}");
        }
    }

    #[test]
    fn homes_follow_the_shares() {
        let shares = pairs(&[("us-east", 60), ("us-west", 40), ("eu-west", 0)]);
        assert_eq!(home_at(&shares, 0.0), Some("us-east"));
        assert_eq!(home_at(&shares, 0.599), Some("us-east"));
        assert_eq!(home_at(&shares, 0.6), Some("us-west"));
        assert_eq!(home_at(&shares, 0.999), Some("us-west"));
        assert_eq!(home_at(&shares, 1.0), Some("us-west"));
        let mut seen = BTreeMap::<&str, u32>::new();
        for i in 0..1000 {
            *seen
                .entry(home_at(&shares, f64::from(i) / 1000.0).unwrap())
                .or_default() += 1;
        }
        assert_eq!(seen, [("us-east", 600), ("us-west", 400)].into());
        assert_eq!(home_at(&pairs(&[("us-east", 0)]), 0.5), None);
    }
}
