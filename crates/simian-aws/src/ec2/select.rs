//! Which instances a zone kill may touch (the selector) and how many of them
//! it hits (the selection, drawn with a seeded RNG so a seed replays).

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ec2::Instance;

/// The opt-in tag an instance must carry to be eligible, unless the selector
/// names another: `simian:opt-in = true`.
pub const DEFAULT_OPT_IN: (&str, &str) = ("simian:opt-in", "true");

/// The instance states EC2 knows, for validation.
const STATES: [&str; 6] = [
    "pending",
    "running",
    "shutting-down",
    "terminated",
    "stopping",
    "stopped",
];

/// Which instances are eligible. All conditions hold together (AND).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The availability zone, e.g. `us-east-1a`; `None`: every zone of the region.
    #[serde(default)]
    pub zone: Option<String>,
    /// Tags the instance must carry with exactly these values.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Instance states to match; default `["running"]`.
    #[serde(default = "default_states")]
    pub states: Vec<String>,
    /// Further DescribeInstances filters (name, values), passed to EC2 as they are.
    #[serde(default)]
    pub filters: Vec<(String, Vec<String>)>,
    /// The opt-in tag (key, value). Checked by EC2 as a filter and again
    /// here on every instance returned: an instance without it is never
    /// selected, whatever the other filters say.
    #[serde(default = "default_opt_in")]
    pub opt_in: (String, String),
}

fn default_states() -> Vec<String> {
    vec!["running".to_string()]
}

fn default_opt_in() -> (String, String) {
    (DEFAULT_OPT_IN.0.to_string(), DEFAULT_OPT_IN.1.to_string())
}

impl Default for Selector {
    fn default() -> Self {
        Selector {
            zone: None,
            tags: BTreeMap::new(),
            states: default_states(),
            filters: Vec::new(),
            opt_in: default_opt_in(),
        }
    }
}

impl Selector {
    /// The running, opted-in instances of one zone.
    pub fn zone(zone: impl Into<String>) -> Self {
        Selector {
            zone: Some(zone.into()),
            ..Selector::default()
        }
    }

    /// Every problem at once; empty when the selector is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.zone.as_deref().is_some_and(|z| z.trim().is_empty()) {
            out.push("`zone` is empty (leave it out to select every zone)".to_string());
        }
        if self.opt_in.0.trim().is_empty() || self.opt_in.1.trim().is_empty() {
            out.push("the opt-in tag needs a key and a value".to_string());
        }
        if self.states.is_empty() {
            out.push("`states` is empty: no instance could match".to_string());
        }
        for s in &self.states {
            if !STATES.contains(&s.as_str()) {
                out.push(format!(
                    "unknown instance state `{s}` (one of {})",
                    STATES.join(", ")
                ));
            }
        }
        if self.tags.keys().any(|k| k.trim().is_empty()) {
            out.push("a tag key is empty".to_string());
        }
        for (name, values) in &self.filters {
            if name.trim().is_empty() {
                out.push("a filter has no name".to_string());
            } else if values.is_empty() {
                out.push(format!("filter `{name}` has no value"));
            }
        }
        out
    }

    /// The server-side filters for DescribeInstances.
    pub(crate) fn filters(&self) -> Vec<aws_sdk_ec2::types::Filter> {
        let f = |name: &str, values: Vec<String>| {
            aws_sdk_ec2::types::Filter::builder()
                .name(name)
                .set_values(Some(values))
                .build()
        };
        let mut out = Vec::new();
        if let Some(zone) = &self.zone {
            out.push(f("availability-zone", vec![zone.clone()]));
        }
        out.push(f("instance-state-name", self.states.clone()));
        out.push(f(
            &format!("tag:{}", self.opt_in.0),
            vec![self.opt_in.1.clone()],
        ));
        for (k, v) in &self.tags {
            out.push(f(&format!("tag:{k}"), vec![v.clone()]));
        }
        for (name, values) in &self.filters {
            out.push(f(name, values.clone()));
        }
        out
    }

    /// The client-side check of what EC2 returned: opt-in tag, zone, state
    /// and tags. (Free-form `filters` can only be checked by EC2.)
    pub(crate) fn admits(&self, i: &Instance, tags: &BTreeMap<String, String>) -> bool {
        tags.get(&self.opt_in.0) == Some(&self.opt_in.1)
            && self
                .zone
                .as_ref()
                .is_none_or(|z| i.zone.as_deref() == Some(z))
            && self.states.iter().any(|s| i.state.as_deref() == Some(s))
            && self.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

/// How many of the eligible instances to hit.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    #[default]
    All,
    /// At most this many.
    Count(u64),
    /// This percent of them, 0 to 100, rounded up (so 1% of anything
    /// non-empty is one instance).
    Percent(f64),
}

impl Selection {
    /// How many targets this picks out of `eligible`.
    pub fn of(&self, eligible: usize) -> usize {
        match *self {
            Selection::All => eligible,
            Selection::Count(n) => usize::try_from(n).unwrap_or(usize::MAX).min(eligible),
            Selection::Percent(p) => {
                // The epsilon keeps 10% of 30 at 3 despite float error.
                let n = (p / 100.0 * eligible as f64 - 1e-9).ceil().max(0.0);
                (n as usize).min(eligible)
            }
        }
    }

    pub fn problems(&self) -> Vec<String> {
        match *self {
            Selection::Percent(p) if !(0.0..=100.0).contains(&p) => {
                vec![format!(
                    "a percent selection must be within 0 to 100, not {p}"
                )]
            }
            _ => Vec::new(),
        }
    }
}

/// Picks the targets among `eligible` (which [`crate::ec2::eligible`] sorts by
/// id, so the same seed picks the same ids). Returns ids sorted.
pub fn pick(eligible: &[Instance], selection: Selection, rng: &mut ChaCha8Rng) -> Vec<String> {
    let n = selection.of(eligible.len());
    let mut idx = rand::seq::index::sample(rng, eligible.len(), n).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| eligible[i].id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn fleet(n: usize) -> Vec<Instance> {
        (0..n)
            .map(|i| Instance {
                id: format!("i-{i:04}"),
                zone: Some("us-east-1a".into()),
                state: Some("running".into()),
                name: None,
            })
            .collect()
    }

    #[test]
    fn percent_rounds_up_and_count_is_capped() {
        assert_eq!(Selection::Percent(10.0).of(30), 3);
        assert_eq!(Selection::Percent(1.0).of(5), 1);
        assert_eq!(Selection::Percent(0.0).of(5), 0);
        assert_eq!(Selection::Percent(100.0).of(7), 7);
        assert_eq!(Selection::Count(9).of(4), 4);
        assert_eq!(Selection::All.of(4), 4);
    }

    #[test]
    fn same_seed_same_picks_other_seed_other_picks() {
        let f = fleet(100);
        let a = pick(&f, Selection::Count(10), &mut ChaCha8Rng::seed_from_u64(7));
        let b = pick(&f, Selection::Count(10), &mut ChaCha8Rng::seed_from_u64(7));
        let c = pick(&f, Selection::Count(10), &mut ChaCha8Rng::seed_from_u64(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    }

    #[test]
    fn problems_are_reported_together() {
        let s = Selector {
            zone: Some(" ".into()),
            states: vec!["runing".into()],
            opt_in: ("".into(), "true".into()),
            filters: vec![("vpc-id".into(), vec![])],
            ..Selector::default()
        };
        assert_eq!(s.problems().len(), 4, "{:?}", s.problems());
        assert!(Selector::zone("us-east-1a").problems().is_empty());
        assert_eq!(Selection::Percent(150.0).problems().len(), 1);
    }

    #[test]
    fn untagged_instances_are_never_admitted() {
        let s = Selector::default();
        let i = &fleet(1)[0];
        let mut tags = BTreeMap::new();
        assert!(!s.admits(i, &tags));
        tags.insert("simian:opt-in".to_string(), "false".to_string());
        assert!(!s.admits(i, &tags));
        tags.insert("simian:opt-in".to_string(), "true".to_string());
        assert!(s.admits(i, &tags));
    }

    #[test]
    fn selector_defaults_from_json() {
        let s: Selector = serde_json::from_str(r#"{"zone":"us-east-1b"}"#).unwrap();
        assert_eq!(s.states, ["running"]);
        assert_eq!(s.opt_in, ("simian:opt-in".to_string(), "true".to_string()));
    }
}
