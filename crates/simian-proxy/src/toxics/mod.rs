//! Toxics as the Toxiproxy API writes them (`{"name", "type", "stream", "toxicity",
//! "attributes"}`), one file per type. Each file holds the type's attributes, their
//! validation, and the arithmetic of its stage; the TCP pipeline (`tcp::link`) and the
//! HTTP mode (`http`) drive them.
//!
//! Parsing follows Toxiproxy's `AddToxicJson`/`UpdateToxicJson` order and defaults: stream
//! `downstream`, toxicity 1.0, name `<type>_<stream>`; a bad stream, then an unknown type,
//! then a duplicate name, then bad attributes. Unknown attributes of Toxiproxy's own types
//! are ignored (as Go's decoder does); our own types (`http_error`, `drop`) reject them.

pub mod bandwidth;
pub mod drop;
pub mod http_error;
pub mod latency;
pub mod limit_data;
pub mod reset_peer;
pub mod slicer;
pub mod slow_close;
pub mod timeout;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::Mode;

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Client → upstream (requests, in HTTP mode).
    Upstream,
    /// Upstream → client (responses, in HTTP mode).
    Downstream,
}

impl Stream {
    /// Case-insensitive, like Toxiproxy's `stream.ParseDirection`.
    pub fn parse(s: &str) -> Option<Stream> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's type and attributes.
#[derive(Debug, Clone)]
pub enum Kind {
    Latency(latency::Latency),
    Bandwidth(bandwidth::Bandwidth),
    SlowClose(slow_close::SlowClose),
    Timeout(timeout::Timeout),
    ResetPeer(reset_peer::ResetPeer),
    Slicer(slicer::Slicer),
    LimitData(limit_data::LimitData),
    HttpError(http_error::HttpError),
    Drop(drop::DropConn),
}

/// Every type this proxy knows, as the API spells them.
pub const TYPES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "http_error",
    "drop",
];

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency(_) => "latency",
            Kind::Bandwidth(_) => "bandwidth",
            Kind::SlowClose(_) => "slow_close",
            Kind::Timeout(_) => "timeout",
            Kind::ResetPeer(_) => "reset_peer",
            Kind::Slicer(_) => "slicer",
            Kind::LimitData(_) => "limit_data",
            Kind::HttpError(_) => "http_error",
            Kind::Drop(_) => "drop",
        }
    }

    /// Parses `attrs` (an object; null members mean "leave the default", as in Go) for `type_name`.
    /// `Ok(None)` when the type is unknown.
    fn parse(type_name: &str, attrs: Map<String, Value>) -> Result<Option<Kind>, ApiError> {
        if type_name == "http_error" && attrs.contains_key("rate") {
            return Err(ApiError::bad_body(
                "http_error has no `rate`: the share of requests it answers is the toxic's `toxicity` (0.0 to 1.0)",
            ));
        }
        fn de<T: DeserializeOwned>(attrs: Map<String, Value>) -> Result<T, ApiError> {
            serde_json::from_value(Value::Object(attrs)).map_err(ApiError::bad_body)
        }
        let kind = match type_name {
            "latency" => Kind::Latency(latency::Latency::build(de(attrs)?)?),
            "bandwidth" => Kind::Bandwidth(de(attrs)?),
            "slow_close" => Kind::SlowClose(de(attrs)?),
            "timeout" => Kind::Timeout(de(attrs)?),
            "reset_peer" => Kind::ResetPeer(de(attrs)?),
            "slicer" => Kind::Slicer(de(attrs)?),
            "limit_data" => Kind::LimitData(de(attrs)?),
            "http_error" => Kind::HttpError(de(attrs)?),
            "drop" => Kind::Drop(de(attrs)?),
            _ => return Ok(None),
        };
        kind.validate().map_err(ApiError::bad_body)?;
        Ok(Some(kind))
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Kind::Latency(t) => t.validate(),
            Kind::Bandwidth(t) => t.validate(),
            Kind::SlowClose(t) => t.validate(),
            Kind::Timeout(t) => t.validate(),
            Kind::ResetPeer(t) => t.validate(),
            Kind::Slicer(t) => t.validate(),
            Kind::LimitData(t) => t.validate(),
            Kind::HttpError(t) => t.validate(),
            Kind::Drop(_) => Ok(()),
        }
    }

    /// Whether a proxy in `mode` can apply this toxic; `Err` says why not.
    pub fn check_mode(&self, mode: Mode) -> Result<(), String> {
        let name = self.type_name();
        match (mode, self) {
            (Mode::Tcp, Kind::HttpError(_) | Kind::Drop(_)) => Err(format!(
                "`{name}` acts on HTTP requests, so it needs a proxy in http mode \
                 (create or PATCH the proxy with \"mode\": \"http\")"
            )),
            (
                Mode::Http,
                Kind::Bandwidth(_) | Kind::SlowClose(_) | Kind::Slicer(_) | Kind::LimitData(_),
            ) => Err(format!(
                "`{name}` shapes bytes on the wire chunk by chunk, which an http-mode proxy \
                 does not do (it applies toxics per request); use a proxy in tcp mode for `{name}`"
            )),
            _ => Ok(()),
        }
    }

    fn attributes_value(&self) -> Value {
        let v = match self {
            Kind::Latency(t) => serde_json::to_value(t),
            Kind::Bandwidth(t) => serde_json::to_value(t),
            Kind::SlowClose(t) => serde_json::to_value(t),
            Kind::Timeout(t) => serde_json::to_value(t),
            Kind::ResetPeer(t) => serde_json::to_value(t),
            Kind::Slicer(t) => serde_json::to_value(t),
            Kind::LimitData(t) => serde_json::to_value(t),
            Kind::HttpError(t) => serde_json::to_value(t),
            Kind::Drop(t) => serde_json::to_value(t),
        };
        v.expect("toxic attributes serialize")
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Kind::Latency(t) => t.serialize(s),
            Kind::Bandwidth(t) => t.serialize(s),
            Kind::SlowClose(t) => t.serialize(s),
            Kind::Timeout(t) => t.serialize(s),
            Kind::ResetPeer(t) => t.serialize(s),
            Kind::Slicer(t) => t.serialize(s),
            Kind::LimitData(t) => t.serialize(s),
            Kind::HttpError(t) => t.serialize(s),
            Kind::Drop(t) => t.serialize(s),
        }
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// One toxic on one proxy.
#[derive(Debug, Clone)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// Probability that the toxic applies: per connection and direction in TCP mode (drawn
    /// when the connection opens or the toxic is added or updated), per request in HTTP mode.
    pub toxicity: f64,
    pub kind: Kind,
    /// New on every create and update, so live connections can tell an update (redraw
    /// toxicity, keep state such as `limit_data`'s byte count) from no change.
    pub generation: u64,
}

/// Serialized as Toxiproxy's `ToxicWrapper`.
#[derive(Debug, Clone, Serialize)]
pub struct ToxicJson {
    pub attributes: Kind,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub stream: &'static str,
    pub toxicity: f64,
    /// Milliseconds until its lease ends (an extension: see `lease`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

impl Toxic {
    pub fn json(&self) -> ToxicJson {
        ToxicJson {
            attributes: self.kind.clone(),
            name: self.name.clone(),
            kind: self.kind.type_name(),
            stream: self.stream.as_str(),
            toxicity: self.toxicity,
            expires_in: None,
        }
    }

    /// Parses a POST /proxies/{proxy}/toxics body. `exists` says whether a name is taken.
    pub fn create(
        body: &[u8],
        mode: Mode,
        exists: impl Fn(&str) -> bool,
    ) -> Result<Toxic, ApiError> {
        let mut obj = parse_object(body)?;
        let text = |obj: &mut Map<String, Value>, key: &str| -> Result<Option<String>, ApiError> {
            match obj.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(ApiError::bad_body(format!(
                    "`{key}` must be a string, not {}",
                    json_kind(&other)
                ))),
            }
        };
        let name = text(&mut obj, "name")?.unwrap_or_default();
        let type_name = text(&mut obj, "type")?.unwrap_or_default();
        let stream_text = text(&mut obj, "stream")?.unwrap_or_else(|| "downstream".into());
        let toxicity = toxicity(obj.remove("toxicity"))?.unwrap_or(1.0);
        let attrs = attributes(obj.remove("attributes"))?;

        let stream = Stream::parse(&stream_text).ok_or_else(ApiError::invalid_stream)?;
        let name = if name.is_empty() {
            format!("{type_name}_{}", stream.as_str())
        } else {
            name
        };
        if !TYPES.contains(&type_name.as_str()) {
            return Err(ApiError::invalid_toxic_type());
        }
        if exists(&name) {
            return Err(ApiError::toxic_exists());
        }
        let kind = Kind::parse(&type_name, attrs)?.ok_or_else(ApiError::invalid_toxic_type)?;
        kind.check_mode(mode).map_err(ApiError::bad_body)?;
        Ok(Toxic {
            name,
            stream,
            toxicity,
            kind,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Applies a POST/PATCH /proxies/{proxy}/toxics/{toxic} body: only `attributes` (merged
    /// over the current ones, member by member) and `toxicity` change, as in Toxiproxy.
    pub fn update(&self, body: &[u8], mode: Mode) -> Result<Toxic, ApiError> {
        let mut obj = parse_object(body)?;
        let toxicity = toxicity(obj.remove("toxicity"))?.unwrap_or(self.toxicity);
        let given = attributes(obj.remove("attributes"))?;
        let mut merged = match self.kind.attributes_value() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        merged.extend(given);
        let kind = Kind::parse(self.kind.type_name(), merged)?
            .expect("an existing toxic has a known type");
        kind.check_mode(mode).map_err(ApiError::bad_body)?;
        Ok(Toxic {
            name: self.name.clone(),
            stream: self.stream,
            toxicity,
            kind,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body).map_err(ApiError::bad_body)? {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_body(format!(
            "expected a JSON object, got {}",
            json_kind(&other)
        ))),
    }
}

fn toxicity(v: Option<Value>) -> Result<Option<f64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let t = n.as_f64().unwrap_or(f64::NAN);
            if (0.0..=1.0).contains(&t) {
                Ok(Some(t))
            } else {
                Err(ApiError::bad_body(format!(
                    "toxicity {n} is out of range: it is a probability, from 0.0 to 1.0"
                )))
            }
        }
        Some(other) => Err(ApiError::bad_body(format!(
            "`toxicity` must be a number from 0.0 to 1.0, not {}",
            json_kind(&other)
        ))),
    }
}

/// The `attributes` object without its null members.
fn attributes(v: Option<Value>) -> Result<Map<String, Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        Some(other) => Err(ApiError::bad_body(format!(
            "`attributes` must be an object, not {}",
            json_kind(&other)
        ))),
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A proxy's toxics, in the order they were added. Connections watch it and rebuild
/// their pipelines when it changes.
#[derive(Debug, Clone, Default)]
pub struct ToxicSet {
    pub list: Vec<Arc<Toxic>>,
}

impl ToxicSet {
    pub fn get(&self, name: &str) -> Option<&Arc<Toxic>> {
        self.list.iter().find(|t| t.name == name)
    }
    /// The toxics acting on `stream`, in chain order.
    pub fn stream(&self, stream: Stream) -> impl Iterator<Item = &Arc<Toxic>> {
        self.list.iter().filter(move |t| t.stream == stream)
    }
    /// Toxiproxy lists the upstream chain, then the downstream chain.
    pub fn listed(&self) -> Vec<ToxicJson> {
        self.listed_toxics().map(|t| t.json()).collect()
    }

    pub fn listed_toxics(&self) -> impl Iterator<Item = &Arc<Toxic>> {
        self.stream(Stream::Upstream)
            .chain(self.stream(Stream::Downstream))
    }
}

/// Serializes whole milliseconds as integers (as Toxiproxy writes them), fractions as floats.
pub(crate) fn ms_number<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// A non-negative integer attribute, or the reason it is not.
pub(crate) fn non_negative(name: &str, v: i64) -> Result<(), String> {
    if v < 0 {
        Err(format!("`{name}` must not be negative (got {v})"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: &str) -> Result<Toxic, ApiError> {
        Toxic::create(body.as_bytes(), Mode::Tcp, |n| n == "taken")
    }

    #[test]
    fn defaults_are_toxiproxys() {
        let t = create(r#"{"type": "latency", "attributes": {"latency": 100}}"#).unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        let json = serde_json::to_value(t.json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"attributes": {"latency": 100, "jitter": 0}, "name": "latency_downstream",
                "type": "latency", "stream": "downstream", "toxicity": 1.0})
        );
        let t = create(r#"{"type": "bandwidth", "stream": "UpStream"}"#).unwrap();
        assert_eq!(t.name, "bandwidth_upstream");
    }

    #[test]
    fn errors_come_in_toxiproxys_order() {
        assert_eq!(create("{").unwrap_err().status, 400);
        assert!(create("{")
            .unwrap_err()
            .message
            .starts_with("bad request body: "));
        assert_eq!(create("[1]").unwrap_err().status, 400);
        assert_eq!(
            create(r#"{"type": "nope", "stream": "sideways"}"#).unwrap_err(),
            ApiError::invalid_stream()
        );
        assert_eq!(
            create(r#"{"type": "nope"}"#).unwrap_err(),
            ApiError::invalid_toxic_type()
        );
        assert_eq!(
            create(r#"{"type": "latency", "name": "taken", "attributes": {"latency": "x"}}"#)
                .unwrap_err(),
            ApiError::toxic_exists()
        );
        let e = create(r#"{"type": "latency", "attributes": {"latency": "x"}}"#).unwrap_err();
        assert_eq!(e.status, 400, "{e}");
        let e = create(r#"{"type": "latency", "toxicity": 2}"#).unwrap_err();
        assert_eq!(e.status, 400, "{e}");
        let e = create(r#"{"type": "slicer", "attributes": {"average_size": 0}}"#).unwrap_err();
        assert!(e.message.contains("average_size"), "{e}");
    }

    #[test]
    fn http_only_toxics_are_refused_in_tcp_mode_and_byte_toxics_in_http_mode() {
        let e = create(r#"{"type": "http_error", "attributes": {"status": 503}}"#).unwrap_err();
        assert!(e.message.contains("http mode"), "{e}");
        let e = Toxic::create(
            br#"{"type": "slicer", "attributes": {"average_size": 10}}"#,
            Mode::Http,
            |_| false,
        )
        .unwrap_err();
        assert!(e.message.contains("tcp mode"), "{e}");
        let t = Toxic::create(
            br#"{"type": "http_error", "toxicity": 0.01}"#,
            Mode::Http,
            |_| false,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&t.kind).unwrap(),
            serde_json::json!({"status": 503})
        );
        let e = Toxic::create(
            br#"{"type": "http_error", "attributes": {"rate": 0.5}}"#,
            Mode::Http,
            |_| false,
        )
        .unwrap_err();
        assert!(e.message.contains("rate"), "{e}");
    }

    #[test]
    fn update_merges_attributes_and_keeps_identity() {
        let t = create(
            r#"{"type": "latency", "name": "l", "attributes": {"latency": 100, "jitter": 5}}"#,
        )
        .unwrap();
        let u = t
            .update(
                br#"{"attributes": {"jitter": 7}, "name": "other", "stream": "upstream"}"#,
                Mode::Tcp,
            )
            .unwrap();
        assert_eq!(u.name, "l");
        assert_eq!(u.stream, Stream::Downstream);
        assert_ne!(u.generation, t.generation);
        assert_eq!(
            serde_json::to_value(&u.kind).unwrap(),
            serde_json::json!({"latency": 100, "jitter": 7})
        );
        let u = u.update(br#"{"toxicity": 0.5}"#, Mode::Tcp).unwrap();
        assert_eq!(u.toxicity, 0.5);
        assert_eq!(u.update(b"nope", Mode::Tcp).unwrap_err().status, 400);
    }
}
