//! Typed units used in experiments: `250ms`, `30s`, `2m`; `50%`; `all`, `3`, `25%`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "invalid duration `{0}`: expected a number and a unit, e.g. `250ms`, `30s`, `2m`, `1h`"
    )]
    Duration(String),
    #[error("invalid percent `{0}`: expected a number followed by `%`, e.g. `25%`")]
    Percent(String),
    #[error("invalid target pick `{0}`: expected `all`, a count such as `3`, or a percent such as `25%`")]
    Pick(String),
}

/// A duration written with a unit: `us`, `ms`, `s`, `m`, `h` (decimals allowed: `1.5s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn as_secs_f64(&self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Duration {
        d.0
    }
}

impl From<Duration> for Dur {
    fn from(d: Duration) -> Dur {
        Dur(d)
    }
}

impl FromStr for Dur {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| UnitError::Duration(s.to_string()))?;
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| UnitError::Duration(s.to_string()))?;
        let secs = match unit.trim() {
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(UnitError::Duration(s.to_string())),
        };
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(UnitError::Duration(s.to_string()));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let us = d.as_micros();
        if us == 0 {
            write!(f, "0s")
        } else if us.is_multiple_of(3_600_000_000) {
            write!(f, "{}h", us / 3_600_000_000)
        } else if us.is_multiple_of(60_000_000) {
            write!(f, "{}m", us / 60_000_000)
        } else if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us >= 1_000_000 {
            write!(f, "{:.3}s", d.as_secs_f64())
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else if us >= 1000 {
            write!(f, "{:.3}ms", us as f64 / 1000.0)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(us|ms|s|m|h)$",
            "description": "A duration with a unit: 250ms, 30s, 2m, 1h.",
            "examples": ["250ms", "30s", "2m"]
        })
    }
}

/// A percentage written as `25%`; stored as a fraction (0.25).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(pub f64);

impl Percent {
    pub fn fraction(&self) -> f64 {
        self.0
    }
}

impl FromStr for Percent {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let num = t
            .strip_suffix('%')
            .ok_or_else(|| UnitError::Percent(s.to_string()))?;
        let n: f64 = num
            .trim()
            .parse()
            .map_err(|_| UnitError::Percent(s.to_string()))?;
        if !n.is_finite() || n < 0.0 {
            return Err(UnitError::Percent(s.to_string()));
        }
        Ok(Percent(n / 100.0))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0 * 100.0;
        if (p - p.round()).abs() < 1e-9 {
            write!(f, "{}%", p.round())
        } else {
            write!(f, "{}%", (p * 1000.0).round() / 1000.0)
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?%$",
            "examples": ["25%", "100%"]
        })
    }
}

/// How many of the eligible targets to pick: `all`, a count, or a percent
/// (rounded up, so `1%` of anything non-empty picks one).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Pick {
    #[default]
    All,
    Count(u64),
    Percent(Percent),
}

impl Pick {
    /// How many targets this picks out of `eligible`.
    pub fn of(&self, eligible: usize) -> usize {
        match *self {
            Pick::All => eligible,
            Pick::Count(n) => (n as usize).min(eligible),
            Pick::Percent(p) => {
                ((p.0 * eligible as f64 - 1e-9).ceil().max(0.0) as usize).min(eligible)
            }
        }
    }
}

impl FromStr for Pick {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t == "all" {
            Ok(Pick::All)
        } else if t.ends_with('%') {
            t.parse()
                .map(Pick::Percent)
                .map_err(|_| UnitError::Pick(s.to_string()))
        } else {
            t.parse()
                .map(Pick::Count)
                .map_err(|_| UnitError::Pick(s.to_string()))
        }
    }
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pick::All => write!(f, "all"),
            Pick::Count(n) => write!(f, "{n}"),
            Pick::Percent(p) => write!(f, "{p}"),
        }
    }
}

impl Serialize for Pick {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Pick {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept `3` as a YAML integer as well as the string forms.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Pick;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "`all`, a count such as `3`, or a percent such as `25%`")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Pick, E> {
                Ok(Pick::Count(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Pick, E> {
                u64::try_from(v)
                    .map(Pick::Count)
                    .map_err(|_| E::custom(UnitError::Pick(v.to_string())))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Pick, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Pick {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Pick".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                {"type": "string", "enum": ["all"]},
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur::from_millis(250));
        assert_eq!("30s".parse::<Dur>().unwrap(), Dur::from_secs(30));
        assert_eq!("2m".parse::<Dur>().unwrap(), Dur::from_secs(120));
        assert_eq!("1.5s".parse::<Dur>().unwrap(), Dur::from_millis(1500));
        assert_eq!(
            "100us".parse::<Dur>().unwrap().0,
            Duration::from_micros(100)
        );
        for bad in ["", "30", "s", "10 parsecs", "-1s", "1.2.3s"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn durations_display_round_trips() {
        for s in ["250ms", "30s", "2m", "1h", "1.500s", "100us"] {
            let d: Dur = s.parse().unwrap();
            assert_eq!(d.to_string().parse::<Dur>().unwrap(), d);
        }
    }

    #[test]
    fn percents_are_fractions() {
        assert_eq!("25%".parse::<Percent>().unwrap().0, 0.25);
        assert_eq!("99.5%".parse::<Percent>().unwrap().to_string(), "99.5%");
        assert!("25".parse::<Percent>().is_err());
        assert!("-3%".parse::<Percent>().is_err());
    }

    #[test]
    fn picks_round_up_and_cap() {
        assert_eq!(Pick::All.of(7), 7);
        assert_eq!(Pick::Count(10).of(3), 3);
        assert_eq!("34%".parse::<Pick>().unwrap().of(3), 2);
        assert_eq!("1%".parse::<Pick>().unwrap().of(5), 1);
        assert_eq!("0%".parse::<Pick>().unwrap().of(5), 0);
        let p: Pick = serde_json::from_str("3").unwrap();
        assert_eq!(p, Pick::Count(3));
    }
}
