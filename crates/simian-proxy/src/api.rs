//! The admin API: Toxiproxy's HTTP API (same routes, JSON, status codes and error bodies),
//! plus GET /metrics.
//!
//! Like Toxiproxy, requests whose User-Agent starts with `Mozilla/` get a 403: a web page
//! in a browser must not be able to drive the proxy (DNS rebinding, CSRF).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::proxy::ProxyJson;
use crate::state::State;

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;

pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let token = token.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state).await) }
            });
            // The timer enables hyper's 30 s limit on reading a request's head.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = token.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !content_type.is_empty() {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    r
}

fn json(status: u16, v: &impl Serialize) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => respond(status, "application/json", b),
        Err(e) => error(ApiError::internal(e.to_string())),
    }
}

fn error(e: ApiError) -> Resp {
    let mut body = e.to_json();
    body.push('\n'); // Go's http.Error ends the body with a newline.
    respond(e.status, "application/json", body)
}

fn no_content() -> Resp {
    respond(204, "", Bytes::new())
}

fn reply<T: Serialize>(ok: u16, r: Result<T, ApiError>) -> Resp {
    match r {
        Ok(v) => json(ok, &v),
        Err(e) => error(e),
    }
}

fn done(r: Result<(), ApiError>) -> Resp {
    match r {
        Ok(()) => no_content(),
        Err(e) => error(e),
    }
}

#[derive(Serialize)]
struct Populated {
    #[serde(flatten)]
    error: Option<ApiError>,
    proxies: Option<Vec<ProxyJson>>,
}

/// Decodes %XX in a path segment.
fn decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub async fn route(req: Request<Incoming>, state: &State) -> Resp {
    let browser = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return respond(403, "text/plain; charset=utf-8", "User agent not allowed\n");
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(ApiError::bad_body(e)),
    };
    let Some(segs) = path
        .strip_prefix('/')
        .unwrap_or(&path)
        .split('/')
        .map(decode)
        .collect::<Option<Vec<String>>>()
    else {
        return not_found();
    };
    if segs.iter().any(String::is_empty) {
        return not_found();
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &method;
    let (get, post, patch, delete) = (
        m == Method::GET,
        m == Method::POST,
        m == Method::PATCH,
        m == Method::DELETE,
    );
    match segs.as_slice() {
        ["proxies"] if get => json(200, &state.list()),
        ["proxies"] if post => reply(201, state.create_json(&body).await),
        ["populate"] if post => match state.populate_json(&body).await {
            Ok(p) => json(
                201,
                &Populated {
                    error: None,
                    proxies: Some(p),
                },
            ),
            Err(e) => json(
                e.status,
                &Populated {
                    error: Some(e),
                    proxies: None,
                },
            ),
        },
        ["proxies", name] if get => reply(200, state.show(name)),
        ["proxies", name] if post || patch => reply(200, state.update_json(name, &body).await),
        ["proxies", name] if delete => done(state.delete(name).await),
        ["proxies", name, "toxics"] if get => reply(200, state.toxics(name)),
        ["proxies", name, "toxics"] if post => reply(200, state.add_toxic(name, &body).await),
        ["proxies", name, "toxics", toxic] if get => reply(200, state.toxic(name, toxic)),
        ["proxies", name, "toxics", toxic] if post || patch => {
            reply(200, state.update_toxic(name, toxic, &body).await)
        }
        ["proxies", name, "toxics", toxic] if delete => done(state.delete_toxic(name, toxic).await),
        ["reset"] if post => done(state.reset().await),
        ["version"] if get => respond(
            200,
            "application/json;charset=utf-8",
            format!(
                "{{\"version\": \"{}\", \"features\": [\"ttl\"]}}\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        ["metrics"] if get => respond(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics(),
        ),
        ["proxies"]
        | ["populate"]
        | ["reset"]
        | ["version"]
        | ["metrics"]
        | ["proxies", _]
        | ["proxies", _, "toxics"]
        | ["proxies", _, "toxics", _] => respond(405, "", Bytes::new()),
        _ => not_found(),
    }
}

fn not_found() -> Resp {
    respond(404, "text/plain; charset=utf-8", "404 page not found\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testutil::*;

    #[tokio::test]
    async fn proxies_are_created_listed_shown_updated_and_deleted() {
        let s = server().await;
        let api = s.api_addr();
        let r = call(
            api,
            "POST",
            "/proxies",
            r#"{"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#,
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let created = r.json();
        let listen = created["listen"].as_str().unwrap().to_string();
        assert!(
            !listen.ends_with(":0"),
            "the actual port is reported: {listen}"
        );
        assert_eq!(s.proxy_addr("db").unwrap().to_string(), listen);
        assert_eq!(
            created,
            json!({"name": "db", "listen": listen, "upstream": "127.0.0.1:9", "enabled": true, "mode": "tcp", "toxics": []})
        );
        let r = call(api, "GET", "/proxies", "").await;
        assert_eq!(r.json()["db"]["listen"], listen.as_str());
        add_toxic(
            &s,
            "db",
            r#"{"type": "latency", "attributes": {"latency": 10}}"#,
        )
        .await;
        let r = call(api, "GET", "/proxies/db", "").await;
        assert_eq!(r.json()["toxics"][0]["name"], "latency_downstream");
        let r = call(api, "GET", "/proxies/db/toxics", "").await;
        assert_eq!(r.json().as_array().unwrap().len(), 1);
        let r = call(api, "GET", "/proxies/db/toxics/latency_downstream", "").await;
        assert_eq!(r.json()["attributes"]["latency"], 10);
        let r = call(
            api,
            "PATCH",
            "/proxies/db",
            r#"{"upstream": "127.0.0.1:10"}"#,
        )
        .await;
        assert_eq!(r.json()["upstream"], "127.0.0.1:10");
        assert_eq!(r.json()["listen"], listen.as_str(), "restarted on its port");
        assert_eq!(
            r.json()["toxics"].as_array().unwrap().len(),
            1,
            "toxics survive"
        );
        assert_eq!(call(api, "DELETE", "/proxies/db", "").await.status, 204);
        assert_eq!(call(api, "GET", "/proxies", "").await.body, "{}");
        assert_eq!(s.proxy_addr("db"), None);
        s.shutdown().await;
    }

    #[tokio::test]
    async fn errors_have_toxiproxys_shapes() {
        let s = server().await;
        let api = s.api_addr();
        let err = |status: u16, msg: &str| json!({"error": msg, "status": status});
        let r = call(api, "GET", "/proxies/nope", "").await;
        assert_eq!((r.status, r.json()), (404, err(404, "proxy not found")));
        let r = call(api, "DELETE", "/proxies/nope", "").await;
        assert_eq!(r.status, 404);
        let r = call(api, "POST", "/proxies", r#"{"name": "a"}"#).await;
        assert_eq!(
            (r.status, r.json()),
            (400, err(400, "missing required field: upstream"))
        );
        let r = call(api, "POST", "/proxies", r#"{"upstream": "x:1"}"#).await;
        assert_eq!(
            (r.status, r.json()),
            (400, err(400, "missing required field: name"))
        );
        let r = call(api, "POST", "/proxies", "{not json").await;
        assert_eq!(r.status, 400);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("bad request body: "));
        let ok = r#"{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#;
        assert_eq!(call(api, "POST", "/proxies", ok).await.status, 201);
        let r = call(api, "POST", "/proxies", ok).await;
        assert_eq!(
            (r.status, r.json()),
            (409, err(409, "proxy already exists"))
        );
        let r = call(api, "POST", "/proxies/a/toxics", r#"{"type": "latency"}"#).await;
        assert_eq!(r.status, 200);
        let r = call(api, "POST", "/proxies/a/toxics", r#"{"type": "latency"}"#).await;
        assert_eq!(
            (r.status, r.json()),
            (409, err(409, "toxic already exists"))
        );
        let r = call(api, "POST", "/proxies/a/toxics", r#"{"type": "nope"}"#).await;
        assert_eq!((r.status, r.json()), (400, err(400, "invalid toxic type")));
        let r = call(
            api,
            "POST",
            "/proxies/a/toxics",
            r#"{"type": "latency", "stream": "sideways"}"#,
        )
        .await;
        assert_eq!(
            (r.status, r.json()),
            (
                400,
                err(
                    400,
                    "stream was invalid, can be either upstream or downstream"
                )
            )
        );
        let r = call(api, "GET", "/proxies/a/toxics/nope", "").await;
        assert_eq!((r.status, r.json()), (404, err(404, "toxic not found")));
        let r = call(api, "DELETE", "/proxies/a/toxics/nope", "").await;
        assert_eq!(r.status, 404);
        let r = call(
            api,
            "POST",
            "/proxies/nope/toxics",
            r#"{"type": "latency"}"#,
        )
        .await;
        assert_eq!(r.status, 404);
        let r = call(api, "PUT", "/proxies/a", "").await;
        assert_eq!(r.status, 405);
        let r = call(api, "GET", "/nothing/here", "").await;
        assert_eq!(r.status, 404);
        // A port in use is a 500 with the reason, as in Toxiproxy.
        let taken = s.proxy_addr("a").unwrap();
        let body = format!(r#"{{"name": "b", "listen": "{taken}", "upstream": "127.0.0.1:9"}}"#);
        let r = call(api, "POST", "/proxies", &body).await;
        assert_eq!(r.status, 500, "{}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("listen tcp"),
            "{}",
            r.body
        );
        s.shutdown().await;
    }

    #[tokio::test]
    async fn garbage_never_breaks_the_api() {
        let s = server().await;
        let api = s.api_addr();
        call(
            api,
            "POST",
            "/proxies",
            r#"{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#,
        )
        .await;
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"\"x\"".to_vec(),
            b"{\"type\": 5}".to_vec(),
            b"{\"type\": \"latency\", \"attributes\": [1]}".to_vec(),
            b"{\"type\": \"latency\", \"toxicity\": \"high\"}".to_vec(),
            b"{\"type\": \"latency\", \"attributes\": {\"latency\": -1}}".to_vec(),
            b"{\"type\": \"latency\", \"attributes\": {\"latency\": 1e400}}".to_vec(),
            b"{\"type\": \"latency\", \"attributes\": {\"distribution\": {\"pareto\": {}}}}"
                .to_vec(),
            b"{\"type\": \"bandwidth\", \"attributes\": {\"rate\": 99999999999999999999}}".to_vec(),
            b"{\"type\": \"slicer\", \"attributes\": {\"average_size\": 1, \"size_variation\": 5}}"
                .to_vec(),
            b"{\"enabled\": \"yes\"}".to_vec(),
            b"{\"mode\": \"udp\"}".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x7b],
            (0..4096).map(|i| (i * 7 % 256) as u8).collect(),
        ];
        for b in &bodies {
            for (m, p) in [
                ("POST", "/proxies"),
                ("POST", "/populate"),
                ("POST", "/proxies/a"),
                ("PATCH", "/proxies/a"),
                ("POST", "/proxies/a/toxics"),
            ] {
                let r = call_raw(api, m, p, b).await;
                let what = format!(
                    "{m} {p} {:?}: {} {}",
                    String::from_utf8_lossy(b),
                    r.status,
                    r.body
                );
                match r.status {
                    // An empty list to populate, an object with unknown members for an update: valid.
                    200 | 201 => assert!(
                        serde_json::from_slice::<serde_json::Value>(b).is_ok(),
                        "{what}"
                    ),
                    400 | 409 => assert!(r.json()["error"].is_string(), "{what}"),
                    _ => panic!("{what}"),
                }
            }
        }
        for p in [
            "/proxies/%zz",
            "/proxies/a/toxics/%ff%fe",
            "//",
            "/proxies/a/toxics/x/y",
        ] {
            let r = call(api, "GET", p, "").await;
            assert_eq!(r.status, 404, "{p}");
        }
        assert_eq!(
            call(api, "GET", "/proxies/a", "").await.status,
            200,
            "still serving"
        );
        s.shutdown().await;
    }

    #[tokio::test]
    async fn populate_reset_version_metrics_and_browsers() {
        let s = server().await;
        let api = s.api_addr();
        let body = r#"[{"name": "one", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
                       {"name": "two", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "enabled": false, "mode": "http"}]"#;
        let r = call(api, "POST", "/populate", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let proxies = r.json()["proxies"].as_array().unwrap().clone();
        assert_eq!(proxies.len(), 2);
        assert_eq!(proxies[1]["enabled"], false);
        assert_eq!(proxies[1]["mode"], "http");
        // Same again: kept as they are (the listen now reported resolves to the same port).
        let again = format!("[{}]", serde_json::to_string(&proxies[0]).unwrap());
        add_toxic(&s, "one", r#"{"type": "latency"}"#).await;
        let r = call(api, "POST", "/populate", &again).await;
        assert_eq!(
            r.json()["proxies"][0]["toxics"].as_array().unwrap().len(),
            1
        );
        let r = call(api, "POST", "/populate", r#"[{"name": "three"}]"#).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json()["error"],
            "missing required field: upstream at proxy 1"
        );
        assert!(r.json()["proxies"].is_null());
        assert_eq!(
            call(api, "GET", "/proxies/three", "").await.status,
            404,
            "nothing created"
        );

        assert_eq!(call(api, "POST", "/reset", "").await.status, 204);
        let all = call(api, "GET", "/proxies", "").await.json();
        assert_eq!(all["two"]["enabled"], true, "reset enables every proxy");
        assert_eq!(all["one"]["toxics"], json!([]), "and removes every toxic");

        let v = call(api, "GET", "/version", "").await;
        assert_eq!(v.json()["version"], env!("CARGO_PKG_VERSION"));
        let m = call(api, "GET", "/metrics", "").await;
        assert!(
            m.body.contains(
                "toxiproxy_proxy_received_bytes_total{direction=\"upstream\",proxy=\"one\""
            ),
            "{}",
            m.body
        );
        assert!(
            m.body
                .contains("simian_proxy_enabled{proxy=\"two\",mode=\"http\"} 1"),
            "{}",
            m.body
        );

        let mut c = tokio::net::TcpStream::connect(api).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"GET /proxies HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 403"), "{out}");
        s.shutdown().await;
    }

    #[tokio::test]
    async fn mode_switches_check_the_toxics() {
        let s = server().await;
        let api = s.api_addr();
        call(
            api,
            "POST",
            "/proxies",
            r#"{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}"#,
        )
        .await;
        add_toxic(
            &s,
            "a",
            r#"{"type": "slicer", "attributes": {"average_size": 10}}"#,
        )
        .await;
        let r = call(api, "PATCH", "/proxies/a", r#"{"mode": "http"}"#).await;
        assert_eq!(r.status, 400);
        assert!(
            r.json()["error"].as_str().unwrap().contains("slicer"),
            "{}",
            r.body
        );
        call(api, "DELETE", "/proxies/a/toxics/slicer_downstream", "").await;
        let r = call(api, "PATCH", "/proxies/a", r#"{"mode": "http"}"#).await;
        assert_eq!((r.status, r.json()["mode"].clone()), (200, json!("http")));
        s.shutdown().await;
    }
}
