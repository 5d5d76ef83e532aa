//! Delivery: one POST per webhook and moment, bounded in time, retried once.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use simian_experiment::{Notify, NotifyFormat};

use crate::body::{body, Notice};

/// Each attempt of a POST gets this long.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per webhook and moment (a transport error or a 5xx is tried again).
pub const ATTEMPTS: usize = 2;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The webhooks of a run.
pub struct Notifier {
    hooks: Vec<Notify>,
    client: Option<HttpsClient>,
}

/// An HTTP(S) client with the system's CA roots.
fn client() -> HttpsClient {
    // Without the system's CA roots, https cannot be verified; http still works.
    let roots = hyper_rustls::HttpsConnectorBuilder::new().with_native_roots();
    let builder = match roots {
        Ok(b) => b,
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(empty_roots()),
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The outage check's URL form: a GET that must answer 2xx within `timeout`.
pub async fn check_url(url: &str, timeout: Duration) -> Result<(), String> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("`{url}` is not a usable URL: {e}"))?;
    match tokio::time::timeout(timeout, client().request(req)).await {
        Err(_) => Err(format!("GET {url}: no answer within {timeout:?}")),
        Ok(Err(e)) => Err(format!("GET {url}: {e}")),
        Ok(Ok(r)) if r.status().is_success() => Ok(()),
        Ok(Ok(r)) => Err(format!("GET {url}: status {}", r.status())),
    }
}

impl Notifier {
    pub fn new(hooks: Vec<Notify>) -> Notifier {
        let client = (!hooks.is_empty()).then(client);
        Notifier { hooks, client }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Sends `notice` to every webhook that wants its moment, all at once. Returns one
    /// warning per webhook that could not be told.
    pub async fn send(&self, notice: &Notice) -> Vec<String> {
        let Some(client) = &self.client else {
            return vec![];
        };
        let sends = self
            .hooks
            .iter()
            .filter(|h| h.on.contains(&notice.event))
            .map(|h| async move {
                post(client, h, notice)
                    .await
                    .err()
                    .map(|e| format!("cannot notify {}: {e}", redact(&h.url)))
            });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// `format`, or what the URL says: Slack's incoming webhooks live on hooks.slack.com.
fn format_of(h: &Notify) -> NotifyFormat {
    h.format.unwrap_or_else(|| {
        let host = h
            .url
            .split_once("://")
            .map_or("", |(_, r)| r.split(['/', ':', '?']).next().unwrap_or(""));
        if host == "hooks.slack.com" {
            NotifyFormat::Slack
        } else {
            NotifyFormat::Generic
        }
    })
}

async fn post(client: &HttpsClient, h: &Notify, notice: &Notice) -> Result<(), String> {
    let payload = Bytes::from(body(format_of(h), notice).to_string());
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&h.url)
            .header(CONTENT_TYPE, "application/json");
        for (k, v) in &h.headers {
            let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) else {
                return Err(format!("header `{k}` is not a valid HTTP header"));
            };
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(payload.clone()))
            .map_err(|e| format!("build the request: {e}"))?;
        match tokio::time::timeout(TIMEOUT, client.request(req)).await {
            Err(_) => last = format!("no answer within {}s", TIMEOUT.as_secs()),
            Ok(Err(e)) => last = e.to_string(),
            Ok(Ok(resp)) => {
                let status = resp.status();
                let text: String = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|b| {
                        String::from_utf8_lossy(&b.to_bytes())
                            .chars()
                            .take(200)
                            .collect()
                    })
                    .unwrap_or_default();
                if status.is_success() {
                    return Ok(());
                }
                last = format!("status {status}: {text}");
                if status.is_client_error() {
                    break; // asking again will not change the answer
                }
            }
        }
    }
    Err(last)
}

/// Webhook URLs carry their secret in the path: show the host only.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or("");
            format!("{scheme}://{host}/…")
        }
        None => "(invalid URL)".into(),
    }
}

/// A TLS config that trusts nothing: https webhooks then fail with a clear error.
fn empty_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_urls_get_slack_bodies_unless_told_otherwise() {
        let mut h = Notify {
            url: "https://hooks.slack.com/services/T0/B0/secret".into(),
            format: None,
            on: vec![],
            headers: Default::default(),
        };
        assert_eq!(format_of(&h), NotifyFormat::Slack);
        h.format = Some(NotifyFormat::Generic);
        assert_eq!(format_of(&h), NotifyFormat::Generic);
        h.url = "http://127.0.0.1:9/hook".into();
        h.format = None;
        assert_eq!(format_of(&h), NotifyFormat::Generic);
    }

    #[test]
    fn warnings_never_show_the_webhook_secret() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
    }
}
