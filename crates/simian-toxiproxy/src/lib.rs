//! An async client for the Toxiproxy HTTP API, for Toxiproxy itself and for
//! `simian proxy` (which speaks the same API).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A proxy as the API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Toxic>,
    /// simian proxy only: `tcp` or `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

fn yes() -> bool {
    true
}

/// A toxic as the API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "downstream")]
    pub stream: String,
    #[serde(default = "one")]
    pub toxicity: f64,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

fn downstream() -> String {
    "downstream".into()
}
fn one() -> f64 {
    1.0
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid API address `{0}`: expected e.g. http://127.0.0.1:8474")]
    Address(String),
    #[error("reach the proxy API at {api}: {detail}")]
    Unreachable { api: String, detail: String },
    #[error("proxy API answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("read the proxy API's answer: {0}")]
    Decode(String),
}

impl Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client bound to one API address, e.g. `http://127.0.0.1:8474`.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    pub fn new(api: &str) -> Result<Client, Error> {
        let base = api.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().map_err(|_| Error::Address(api.to_string()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(Error::Address(api.to_string()));
        }
        let http = HyperClient::builder(TokioExecutor::new()).build(HttpConnector::new());
        Ok(Client {
            base,
            http,
            timeout: Duration::from_secs(5),
        })
    }

    pub fn api(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let url = format!("{}{}", self.base, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header("user-agent", "simian");
        let payload = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&b).expect("JSON serializes"))
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| Error::Address(e.to_string()))?;
        let unreachable = |detail: String| Error::Unreachable {
            api: self.base.clone(),
            detail,
        };
        let resp = tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", self.timeout.as_secs())))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if status.is_client_error() || status.is_server_error() {
            #[derive(Deserialize)]
            struct ApiError {
                error: String,
            }
            let message = serde_json::from_slice::<ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        Ok((status, body))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Error> {
        let (_, bytes) = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    /// The server's version string (Toxiproxy answers plain text or `{"version": ...}`).
    pub async fn version(&self) -> Result<String, Error> {
        let (_, body) = self.call(Method::GET, "/version", None).await?;
        let text = String::from_utf8_lossy(&body).trim().to_string();
        #[derive(Deserialize)]
        struct V {
            version: String,
        }
        Ok(serde_json::from_str::<V>(&text)
            .map(|v| v.version)
            .unwrap_or(text))
    }

    /// The server's extensions to the API, as its `/version` lists them (`ttl`: leases
    /// that undo a toxic or a disable unless renewed). Toxiproxy itself has none.
    pub async fn features(&self) -> Result<Vec<String>, Error> {
        let (_, body) = self.call(Method::GET, "/version", None).await?;
        #[derive(Deserialize)]
        struct V {
            #[serde(default)]
            features: Vec<String>,
        }
        Ok(serde_json::from_slice::<V>(&body)
            .map(|v| v.features)
            .unwrap_or_default())
    }

    pub async fn proxies(&self) -> Result<BTreeMap<String, Proxy>, Error> {
        self.json(Method::GET, "/proxies", None).await
    }

    /// The named proxy, or None when the API has no such proxy.
    pub async fn proxy(&self, name: &str) -> Result<Option<Proxy>, Error> {
        match self
            .json(Method::GET, &format!("/proxies/{}", enc(name)), None)
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create_proxy(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
        mode: Option<&str>,
    ) -> Result<Proxy, Error> {
        let mut body = serde_json::json!({ "name": name, "listen": listen, "upstream": upstream, "enabled": true });
        if let Some(m) = mode {
            body["mode"] = m.into();
        }
        self.json(Method::POST, "/proxies", Some(body)).await
    }

    /// Deletes a proxy; false when it did not exist (so reverts can repeat).
    pub async fn delete_proxy(&self, name: &str) -> Result<bool, Error> {
        match self
            .call(Method::DELETE, &format!("/proxies/{}", enc(name)), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Enables or disables a proxy (a disabled proxy refuses and closes connections).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy, Error> {
        let body = serde_json::json!({ "enabled": enabled });
        self.json(Method::POST, &format!("/proxies/{}", enc(name)), Some(body))
            .await
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, Error> {
        self.json(
            Method::GET,
            &format!("/proxies/{}/toxics", enc(proxy)),
            None,
        )
        .await
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<Toxic, Error> {
        let body = serde_json::to_value(toxic).expect("toxics serialize");
        self.json(
            Method::POST,
            &format!("/proxies/{}/toxics", enc(proxy)),
            Some(body),
        )
        .await
    }

    /// Adds a toxic that the server removes by itself `ttl` after this call or the last
    /// [`renew_toxic`](Self::renew_toxic) (servers with the `ttl` feature).
    pub async fn add_toxic_for(
        &self,
        proxy: &str,
        toxic: &Toxic,
        ttl: Duration,
    ) -> Result<Toxic, Error> {
        let mut body = serde_json::to_value(toxic).expect("toxics serialize");
        body["ttl"] = ms(ttl).into();
        self.json(
            Method::POST,
            &format!("/proxies/{}/toxics", enc(proxy)),
            Some(body),
        )
        .await
    }

    /// Pushes a leased toxic's end to `ttl` from now; a 404 when it is gone (its lease ran
    /// out, or it was removed), since a renewal never adds it again.
    pub async fn renew_toxic(&self, proxy: &str, toxic: &str, ttl: Duration) -> Result<(), Error> {
        let body = serde_json::json!({ "ttl": ms(ttl) });
        self.call(
            Method::POST,
            &format!("/proxies/{}/toxics/{}", enc(proxy), enc(toxic)),
            Some(body),
        )
        .await
        .map(|_| ())
    }

    /// Disables a proxy until `ttl` from now or the last
    /// [`renew_disable`](Self::renew_disable) (servers with the `ttl` feature).
    pub async fn disable_for(&self, name: &str, ttl: Duration) -> Result<Proxy, Error> {
        let body = serde_json::json!({ "enabled": false, "ttl": ms(ttl) });
        self.json(Method::POST, &format!("/proxies/{}", enc(name)), Some(body))
            .await
    }

    /// Pushes a leased disable's end to `ttl` from now; a 400 when the proxy is enabled
    /// (its lease ran out, or it was enabled), since a renewal never disables it again.
    pub async fn renew_disable(&self, name: &str, ttl: Duration) -> Result<(), Error> {
        let body = serde_json::json!({ "ttl": ms(ttl) });
        self.call(Method::POST, &format!("/proxies/{}", enc(name)), Some(body))
            .await
            .map(|_| ())
    }

    /// Deletes a toxic; false when it (or its proxy) did not exist (so reverts can repeat).
    pub async fn delete_toxic(&self, proxy: &str, toxic: &str) -> Result<bool, Error> {
        match self
            .call(
                Method::DELETE,
                &format!("/proxies/{}/toxics/{}", enc(proxy), enc(toxic)),
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Enables every proxy and removes every toxic, on the whole server.
    pub async fn reset(&self) -> Result<(), Error> {
        self.call(Method::POST, "/reset", None).await.map(|_| ())
    }
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
