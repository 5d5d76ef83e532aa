//! `http_error` (HTTP mode only, an extension): answers the request with `status` (default
//! 503) and `body` instead of the upstream's answer. The share of requests it hits is the
//! toxic's `toxicity` (per request). Stream `upstream`: the upstream never sees the request;
//! `downstream`: the upstream handles it, and its answer is replaced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpError {
    #[serde(default = "service_unavailable")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Extra response headers, e.g. `{"retry-after": "1"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn service_unavailable() -> u16 {
    503
}

impl HttpError {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !(200..=599).contains(&self.status) {
            return Err(format!(
                "`status` must be an HTTP status from 200 to 599 (got {})",
                self.status
            ));
        }
        for (k, v) in &self.headers {
            if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(v).is_err()
            {
                return Err(format!("invalid header `{k}: {v}`"));
            }
        }
        Ok(())
    }
}
