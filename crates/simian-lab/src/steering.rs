//! Steering: per region, which share of its users goes to another region's edge, the knob
//! that Chaos Kong turns. The global router reads it for every request; an edge steered at
//! 100% reads it to forward what it still receives (failover, like Zuul's). One table lives
//! in the supervisor's memory, shared by both.
//!
//! The table answers the admin API of the global router verbatim: what `GET /steering/{from}`
//! returns, `PUT /steering/{from}` accepts, so a shifter can save an entry and put it back.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize, Serializer};

/// One region's steering: `percent`% of its users go to `to`'s edge. Unsteered:
/// `{"to": null, "percent": 0}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SteeringEntry {
    pub to: Option<String>,
    /// 0..=100; a whole number is written without a fraction (`30`, not `30.0`).
    #[serde(serialize_with = "whole_if_possible")]
    pub percent: f64,
}

fn whole_if_possible<S: Serializer>(p: &f64, s: S) -> Result<S::Ok, S::Error> {
    if p.fract() == 0.0 && (0.0..=100.0).contains(p) {
        s.serialize_u64(*p as u64)
    } else {
        s.serialize_f64(*p)
    }
}

impl SteeringEntry {
    /// Where requests of this region go when moved: `to` at more than 0%.
    fn moved_to(&self) -> Option<&str> {
        self.to.as_deref().filter(|_| self.percent > 0.0)
    }
}

/// Why a `PUT /steering/{from}` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SteeringError {
    /// `from` is not a region of this lab (404).
    UnknownRegion(String),
    /// The body is not a valid entry (400): every problem, `; `-separated.
    Invalid(String),
}

impl std::fmt::Display for SteeringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SteeringError::UnknownRegion(m) | SteeringError::Invalid(m) => f.write_str(m),
        }
    }
}

/// The steering of every region of a lab.
#[derive(Debug)]
pub struct Steering {
    regions: Vec<String>,
    table: RwLock<BTreeMap<String, SteeringEntry>>,
}

impl Steering {
    /// Every region unsteered.
    pub fn new<S: AsRef<str>>(regions: &[S]) -> Self {
        let regions: Vec<String> = regions.iter().map(|r| r.as_ref().to_string()).collect();
        let table = regions
            .iter()
            .map(|r| (r.clone(), SteeringEntry::default()))
            .collect();
        Steering {
            regions,
            table: RwLock::new(table),
        }
    }

    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    pub fn get(&self, from: &str) -> Option<SteeringEntry> {
        self.table.read().unwrap().get(from).cloned()
    }

    /// Every region's entry, by name.
    pub fn all(&self) -> BTreeMap<String, SteeringEntry> {
        self.table.read().unwrap().clone()
    }

    /// The region `from`'s edge forwards everything to: `to` when steered at 100%.
    pub fn failover(&self, from: &str) -> Option<String> {
        let table = self.table.read().unwrap();
        let entry = table.get(from)?;
        entry
            .moved_to()
            .filter(|_| entry.percent >= 100.0)
            .map(str::to_string)
    }

    /// Where a request of a user homed in `home` goes, `u` drawn uniformly from [0, 1): to
    /// `to` when `u` falls in the steered share, else home.
    pub fn route(&self, home: &str, u: f64) -> String {
        let table = self.table.read().unwrap();
        match table.get(home) {
            Some(entry) => route(entry, home, u).to_string(),
            None => home.to_string(),
        }
    }

    /// Replaces `from`'s entry with the JSON `body` if it is valid; returns the new entry.
    pub fn set(&self, from: &str, body: &[u8]) -> Result<SteeringEntry, SteeringError> {
        if !self.regions.iter().any(|r| r == from) {
            return Err(SteeringError::UnknownRegion(format!(
                "no region `{from}` in this lab; its regions are {}",
                self.regions.join(", ")
            )));
        }
        let entry = parse_entry(from, &self.regions, body).map_err(SteeringError::Invalid)?;
        self.table
            .write()
            .unwrap()
            .insert(from.to_string(), entry.clone());
        eprintln!(
            "steering {from}: {}",
            match &entry.to {
                Some(to) => format!("{}% to {to}", entry.percent),
                None => "none".to_string(),
            }
        );
        Ok(entry)
    }
}

/// The pure choice: with `u` in [0, 1), the region a request of `home` is served by.
pub fn route<'a>(entry: &'a SteeringEntry, home: &'a str, u: f64) -> &'a str {
    match entry.moved_to() {
        Some(to) if u * 100.0 < entry.percent => to,
        _ => home,
    }
}

/// Reads and checks a `PUT` body: `{"to": REGION|null, "percent": 0..=100}`, `to` another
/// region of the lab, `null` only with 0. Reports every problem at once.
fn parse_entry(from: &str, regions: &[String], body: &[u8]) -> Result<SteeringEntry, String> {
    const SHAPE: &str = r#"expected {"to": "REGION" or null, "percent": 0..=100}"#;
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e}); {SHAPE}"))?;
    let Some(object) = value.as_object() else {
        return Err(format!("the body is not a JSON object; {SHAPE}"));
    };
    let mut problems = Vec::new();
    for key in object.keys().filter(|k| *k != "to" && *k != "percent") {
        problems.push(format!("unknown field `{key}`"));
    }
    let others = || {
        let others: Vec<&str> = regions
            .iter()
            .map(String::as_str)
            .filter(|r| *r != from)
            .collect();
        if others.is_empty() {
            "there is none".to_string()
        } else {
            format!("one of {}", others.join(", "))
        }
    };
    let to = match object.get("to") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(to)) if to == from => {
            problems.push(format!(
                "to must be another region than `{from}`: {}",
                others()
            ));
            None
        }
        Some(serde_json::Value::String(to)) if !regions.contains(to) => {
            problems.push(format!(
                "to names no region of this lab: `{to}`; use {} or null",
                others()
            ));
            None
        }
        Some(serde_json::Value::String(to)) => Some(to.clone()),
        Some(other) => {
            problems.push(format!("to must be a region name or null, got {other}"));
            None
        }
    };
    let percent = match object.get("percent") {
        None => {
            problems.push("percent is missing (0..=100)".to_string());
            None
        }
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                problems.push(format!("percent must be between 0 and 100, got {n}"));
                None
            }
        },
        Some(other) => {
            problems.push(format!("percent must be a number, got {other}"));
            None
        }
    };
    if let (None, Some(p)) = (object.get("to").filter(|t| !t.is_null()), percent) {
        if p > 0.0 {
            problems.push(format!(
                "percent is {p} but to is null: name the region to steer to, or set percent to 0"
            ));
        }
    }
    match percent {
        Some(percent) if problems.is_empty() => Ok(SteeringEntry { to, percent }),
        _ => Err(problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Steering {
        Steering::new(&["us-east", "us-west"])
    }

    #[test]
    fn an_unsteered_table_reads_null_and_zero_for_every_region() {
        let s = two();
        assert_eq!(
            serde_json::to_string(&s.all()).unwrap(),
            r#"{"us-east":{"to":null,"percent":0},"us-west":{"to":null,"percent":0}}"#
        );
        assert_eq!(s.route("us-east", 0.0), "us-east");
        assert_eq!(s.failover("us-east"), None);
    }

    #[test]
    fn the_steered_share_goes_to_the_target_and_the_rest_stays_home() {
        let entry = SteeringEntry {
            to: Some("us-west".into()),
            percent: 30.0,
        };
        assert_eq!(route(&entry, "us-east", 0.0), "us-west");
        assert_eq!(route(&entry, "us-east", 0.299), "us-west");
        assert_eq!(route(&entry, "us-east", 0.3), "us-east");
        assert_eq!(route(&entry, "us-east", 0.999), "us-east");
        let all = SteeringEntry {
            percent: 100.0,
            ..entry.clone()
        };
        assert_eq!(route(&all, "us-east", 0.999_999), "us-west");
        let zero = SteeringEntry {
            percent: 0.0,
            ..entry
        };
        assert_eq!(route(&zero, "us-east", 0.0), "us-east");
    }

    #[test]
    fn only_a_full_steer_is_a_failover() {
        let s = two();
        s.set("us-east", br#"{"to":"us-west","percent":99.5}"#)
            .unwrap();
        assert_eq!(s.failover("us-east"), None);
        s.set("us-east", br#"{"to":"us-west","percent":100}"#)
            .unwrap();
        assert_eq!(s.failover("us-east").as_deref(), Some("us-west"));
        assert_eq!(s.failover("us-west"), None);
    }

    #[test]
    fn what_get_returns_put_accepts_verbatim() {
        let s = two();
        let saved = serde_json::to_vec(&s.get("us-east").unwrap()).unwrap();
        s.set("us-east", br#"{"to":"us-west","percent":30}"#)
            .unwrap();
        let steered = serde_json::to_string(&s.get("us-east").unwrap()).unwrap();
        assert_eq!(steered, r#"{"to":"us-west","percent":30}"#);
        s.set("us-east", steered.as_bytes()).unwrap();
        assert_eq!(
            serde_json::to_string(&s.get("us-east").unwrap()).unwrap(),
            steered
        );
        s.set("us-east", &saved).unwrap();
        assert_eq!(s.get("us-east").unwrap(), SteeringEntry::default());
        let frac = s
            .set("us-east", br#"{"to":"us-west","percent":12.5}"#)
            .unwrap();
        assert_eq!(
            serde_json::to_string(&frac).unwrap(),
            r#"{"to":"us-west","percent":12.5}"#
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_every_problem_and_change_nothing() {
        let s = two();
        let invalid = |body: &str| match s.set("us-east", body.as_bytes()) {
            Err(SteeringError::Invalid(m)) => m,
            other => panic!("{body}: {other:?}"),
        };
        assert!(invalid("nope").contains("not JSON"));
        assert!(invalid("[1]").contains("not a JSON object"));
        let m = invalid(r#"{"to":"us-east","percent":150}"#);
        assert!(m.contains("another region than `us-east`"), "{m}");
        assert!(m.contains("between 0 and 100, got 150"), "{m}");
        assert!(invalid(r#"{"to":"mars","percent":5}"#).contains("`mars`"));
        assert!(invalid(r#"{"to":null,"percent":30}"#).contains("to is null"));
        assert!(invalid(r#"{"to":"us-west","percent":"30"}"#).contains("must be a number"));
        assert!(invalid(r#"{"to":"us-west"}"#).contains("percent is missing"));
        assert!(invalid(r#"{"to":"us-west","percent":5,"x":1}"#).contains("unknown field `x`"));
        assert!(invalid(r#"{"to":"us-west","percent":-1}"#).contains("between 0 and 100"));
        assert_eq!(s.get("us-east").unwrap(), SteeringEntry::default());
        assert!(matches!(
            s.set("eu-west", br#"{"to":null,"percent":0}"#),
            Err(SteeringError::UnknownRegion(m)) if m.contains("us-east, us-west")
        ));
        // Idempotent, and null with 0 (or without `to`) is unsteered.
        for _ in 0..2 {
            s.set("us-east", br#"{"to":null,"percent":0}"#).unwrap();
        }
        s.set("us-east", br#"{"percent":0}"#).unwrap();
        assert_eq!(s.get("us-east").unwrap(), SteeringEntry::default());
    }
}
