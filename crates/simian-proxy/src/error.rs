//! Errors: the library's own, and the admin API's (Toxiproxy's `{"error", "status"}` shape).

use serde::Serialize;

/// Why the proxy server (or one of its proxies) could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid proxy config: {0}")]
    Config(String),
    #[error("{0}")]
    Other(String),
}

/// An admin API error, written as Toxiproxy writes it: `{"error": "...", "status": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(rename = "error")]
    pub message: String,
    pub status: u16,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            status,
        }
    }
    /// 400 `bad request body: <why>`.
    pub fn bad_body(why: impl std::fmt::Display) -> Self {
        Self::new(400, format!("bad request body: {why}"))
    }
    /// 400 `missing required field: <field>`.
    pub fn missing_field(field: impl std::fmt::Display) -> Self {
        Self::new(400, format!("missing required field: {field}"))
    }
    pub fn proxy_not_found() -> Self {
        Self::new(404, "proxy not found")
    }
    pub fn proxy_exists() -> Self {
        Self::new(409, "proxy already exists")
    }
    pub fn invalid_stream() -> Self {
        Self::new(
            400,
            "stream was invalid, can be either upstream or downstream",
        )
    }
    pub fn invalid_toxic_type() -> Self {
        Self::new(400, "invalid toxic type")
    }
    pub fn toxic_exists() -> Self {
        Self::new(409, "toxic already exists")
    }
    pub fn toxic_not_found() -> Self {
        Self::new(404, "toxic not found")
    }
    /// 500: what Toxiproxy answers for errors without a status (a failed bind, say).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an error serializes")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}
