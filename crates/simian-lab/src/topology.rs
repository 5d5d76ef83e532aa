//! The lab's shape: how many regions, zones and instances, and what they are called.

use serde::{Deserialize, Serialize};

use crate::LabError;

/// Region names, in the order the lab uses them.
pub const REGION_NAMES: [&str; 4] = ["us-east", "us-west", "eu-west", "ap-south"];
/// Most zones per region.
pub const MAX_ZONES: usize = 6;
/// Most instances per zone.
pub const MAX_INSTANCES: usize = 8;

/// How big a lab to build: `regions` × `zones` per region × `instances` per zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    pub regions: usize,
    pub zones: usize,
    pub instances: usize,
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            regions: 2,
            zones: 3,
            instances: 2,
        }
    }
}

/// Where one instance sits, before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub region: String,
    pub zone: String,
    pub id: String,
}

impl LabSpec {
    /// Checks every bound and reports all violations at once.
    pub fn validate(&self) -> Result<(), LabError> {
        let mut problems = Vec::new();
        let mut check = |what: &str, got: usize, max: usize| {
            if !(1..=max).contains(&got) {
                problems.push(format!("{what} must be between 1 and {max}, got {got}"));
            }
        };
        check("regions", self.regions, REGION_NAMES.len());
        check("zones per region", self.zones, MAX_ZONES);
        check("instances per zone", self.instances, MAX_INSTANCES);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::InvalidSpec(problems.join("; ")))
        }
    }

    /// The region names this spec uses, in order.
    pub fn region_names(&self) -> Vec<&'static str> {
        REGION_NAMES.iter().take(self.regions).copied().collect()
    }

    /// The zone names of `region`: `<region>-a`, `<region>-b`, ...
    pub fn zone_names(&self, region: &str) -> Vec<String> {
        (b'a'..)
            .take(self.zones)
            .map(|c| format!("{region}-{}", c as char))
            .collect()
    }

    /// Every instance of the lab, region by region, zone by zone.
    pub fn placements(&self) -> Vec<Placement> {
        let mut out = Vec::new();
        for region in self.region_names() {
            for zone in self.zone_names(region) {
                for n in 1..=self.instances {
                    out.push(Placement {
                        region: region.to_string(),
                        zone: zone.clone(),
                        id: format!("{zone}-{n}"),
                    });
                }
            }
        }
        out
    }

    /// Total number of instances.
    pub fn total_instances(&self) -> usize {
        self.regions * self.zones * self.instances
    }
}

impl std::fmt::Display for LabSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        write!(
            f,
            "{} × {} × {}",
            plural(self.regions, "region"),
            plural(self.zones, "zone"),
            plural(self.instances, "instance")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_two_regions_three_zones_two_instances() {
        let spec = LabSpec::default();
        assert_eq!((spec.regions, spec.zones, spec.instances), (2, 3, 2));
        assert_eq!(spec.total_instances(), 12);
        assert_eq!(spec.to_string(), "2 regions × 3 zones × 2 instances");
    }

    #[test]
    fn names_follow_region_zone_instance() {
        let spec = LabSpec {
            regions: 2,
            zones: 2,
            instances: 2,
        };
        let ids: Vec<_> = spec.placements().into_iter().map(|p| p.id).collect();
        assert_eq!(
            ids,
            [
                "us-east-a-1",
                "us-east-a-2",
                "us-east-b-1",
                "us-east-b-2",
                "us-west-a-1",
                "us-west-a-2",
                "us-west-b-1",
                "us-west-b-2"
            ]
        );
        let last = LabSpec {
            regions: 4,
            zones: 6,
            instances: 8,
        };
        let p = last.placements().pop().unwrap();
        assert_eq!(
            (p.region.as_str(), p.zone.as_str()),
            ("ap-south", "ap-south-f")
        );
        assert_eq!(p.id, "ap-south-f-8");
    }

    #[test]
    fn validate_reports_every_bound_at_once() {
        let err = LabSpec {
            regions: 5,
            zones: 0,
            instances: 9,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("regions must be between 1 and 4, got 5"),
            "{err}"
        );
        assert!(
            err.contains("zones per region must be between 1 and 6, got 0"),
            "{err}"
        );
        assert!(
            err.contains("instances per zone must be between 1 and 8, got 9"),
            "{err}"
        );
        assert!(LabSpec::default().validate().is_ok());
    }
}
