//! The http shifter against a small traffic tool: a server that keeps a JSON steering
//! state and records every request it gets.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use simian_core::Percent;
use simian_experiment::{HttpRequest, HttpShifter, Inject, LabShifter, ShiftFault, Shifter};
use simian_injectors::{BuildCtx, Fault, FaultError, RevertRecord};
use simian_lab::LabState;

/// The original state, formatted the tool's own way: restore must give back these bytes.
const ORIGINAL: &str =
    "{ \"to\":null,  \"percent\": 0, \"note\": \"${percent} is not a template here\" }";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

#[derive(Default)]
struct Shared {
    state: String,
    seen: Vec<Seen>,
}

/// `GET /steer…` (`/steer/R`, `/steering/R`) answers the state; `PUT`/`POST` there
/// replaces it; `/fail` answers 500.
struct Tool {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tool {
    fn start() -> Tool {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared {
            state: ORIGINAL.into(),
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, flag) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    serve(conn, &s);
                }
            }
        });
        Tool {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn state(&self) -> String {
        self.shared.lock().unwrap().state.clone()
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request per connection.
fn serve(mut conn: TcpStream, shared: &Mutex<Shared>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let (status, answer) = {
        let mut s = shared.lock().unwrap();
        s.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body.clone(),
        });
        match (method.as_str(), path.as_str()) {
            (_, p) if p.starts_with("/fail") => (
                "500 Internal Server Error",
                "boom: the steering database is on fire".to_string(),
            ),
            ("GET", p) if p.starts_with("/steer") => ("200 OK", s.state.clone()),
            ("PUT" | "POST", p) if p.starts_with("/steer") => {
                s.state = body;
                ("200 OK", "{\"ok\": true}".to_string())
            }
            _ => ("404 Not Found", "no such route".to_string()),
        }
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn request(method: Option<&str>, url: String, body: Option<&str>) -> HttpRequest {
    HttpRequest {
        method: method.map(str::to_string),
        url,
        headers: BTreeMap::new(),
        body: body.map(str::to_string),
    }
}

async fn build(via: HttpShifter, percent: Option<f64>) -> Result<Box<dyn Fault>, FaultError> {
    build_shift(Shifter::Http(via), "us-west", percent, None).await
}

async fn build_shift(
    via: Shifter,
    to: &str,
    percent: Option<f64>,
    lab: Option<&LabState>,
) -> Result<Box<dyn Fault>, FaultError> {
    let inject = Inject {
        name: Some("evac".into()),
        shift: Some(ShiftFault {
            from: "us-east".into(),
            to: to.into(),
            percent: percent.map(Percent),
            via,
        }),
        ..Inject::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut ctx = BuildCtx {
        lab,
        run_proxy_api: None,
        rng: &mut rng,
        lease: None,
    };
    simian_injectors::build("evac", &inject, &mut ctx).await
}

/// A lab's state with two regions and its global router at `global`.
fn lab(global: &str) -> LabState {
    let region =
        |name: &str| serde_json::json!({"name": name, "edge": "http://127.0.0.1:9", "zones": []});
    serde_json::from_value(serde_json::json!({
        "supervisor_pid": 1,
        "control": "/nonexistent/control.sock",
        "spec": {"regions": 2, "zones": 1, "instances": 1},
        "global": global,
        "regions": [region("us-east"), region("us-west")],
    }))
    .expect("a lab state")
}

/// `simian recover`'s view: the record after a trip through the journal.
fn journaled(record: &RevertRecord) -> RevertRecord {
    serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap()
}

const SET_BODY: &str = r#"{"to": "${to}", "percent": ${percent}, "fraction": ${fraction}}"#;

#[tokio::test]
async fn set_renders_percent_from_and_to_into_url_headers_and_body() {
    let tool = Tool::start();
    let mut set = request(
        Some("PUT"),
        tool.url("/steer/${from}?to=${to}"),
        Some(SET_BODY),
    );
    set.headers
        .insert("x-shift".into(), "${from}->${to} ${percent}%".into());
    let fault = build(
        HttpShifter {
            set,
            get: None,
            restore: None,
        },
        Some(0.25),
    )
    .await
    .unwrap();
    assert_eq!(
        fault.plan().targets,
        vec![format!(
            "PUT {} (per step)",
            tool.url("/steer/us-east?to=us-west")
        )]
    );
    assert_eq!(
        fault.plan().universe,
        format!("traffic tool at http://127.0.0.1:{}", tool.port)
    );
    assert!(tool.seen().is_empty(), "building sends nothing");
    let record = fault.prepare().await.unwrap();
    assert!(
        tool.seen().is_empty(),
        "without `get`, prepare sends nothing"
    );
    fault.apply(&record).await.unwrap();
    fault.ramp().unwrap().shift(0.125).await.unwrap();
    let seen = tool.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].path, "/steer/us-east?to=us-west");
    assert_eq!(seen[0].headers["x-shift"], "us-east->us-west 25%");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(
        seen[0].body,
        r#"{"to": "us-west", "percent": 25, "fraction": 0.25}"#
    );
    assert_eq!(
        seen[1].body,
        r#"{"to": "us-west", "percent": 12.5, "fraction": 0.125}"#
    );
}

#[tokio::test]
async fn get_then_restore_with_state_puts_back_the_exact_original_body() {
    let tool = Tool::start();
    let url = tool.url("/steer/${from}");
    let fault = build(
        HttpShifter {
            set: request(Some("PUT"), url.clone(), Some(SET_BODY)),
            get: Some(request(None, url.clone(), None)),
            restore: Some(request(Some("PUT"), url, Some("${state}"))),
        },
        None,
    )
    .await
    .unwrap();
    let record = fault.prepare().await.unwrap();
    let seen = tool.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/steer/us-east")
    );
    for share in [0.1, 0.5, 1.0] {
        fault.ramp().unwrap().shift(share).await.unwrap();
    }
    assert_eq!(
        tool.state(),
        r#"{"to": "us-west", "percent": 100, "fraction": 1}"#
    );
    let record = journaled(&record);
    let reverted = simian_injectors::revert(&record).await.unwrap();
    assert_eq!(
        reverted.actions,
        vec![format!("PUT {}", tool.url("/steer/us-east"))]
    );
    assert_eq!(tool.state(), ORIGINAL);
    // Again, as a second `simian recover` would: same request, same state.
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(tool.state(), ORIGINAL);
    let last = tool.seen().pop().unwrap();
    assert_eq!(
        last.body, ORIGINAL,
        "`${{state}}` is sent verbatim, not rendered again"
    );
}

#[tokio::test]
async fn without_restore_revert_sends_set_with_percent_zero() {
    let tool = Tool::start();
    let fault = build(
        HttpShifter {
            set: request(None, tool.url("/steer/${from}"), Some(SET_BODY)),
            get: None,
            restore: None,
        },
        Some(0.5),
    )
    .await
    .unwrap();
    let record = fault.prepare().await.unwrap();
    fault.apply(&record).await.unwrap();
    simian_injectors::revert(&journaled(&record)).await.unwrap();
    let seen = tool.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST", "`set` defaults to POST");
    assert_eq!(
        seen[0].body,
        r#"{"to": "us-west", "percent": 50, "fraction": 0.5}"#
    );
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].path, "/steer/us-east");
    assert_eq!(
        seen[1].body,
        r#"{"to": "us-west", "percent": 0, "fraction": 0}"#
    );
}

#[tokio::test]
async fn a_500_answer_is_an_error_with_its_status_and_body() {
    let tool = Tool::start();
    let fault = build(
        HttpShifter {
            set: request(None, tool.url("/fail"), Some(SET_BODY)),
            get: None,
            restore: None,
        },
        None,
    )
    .await
    .unwrap();
    let record = fault.prepare().await.unwrap();
    let err = fault.apply(&record).await.err().unwrap();
    let FaultError::Action(msg) = &err else {
        panic!("expected an action error, got {err:?}");
    };
    assert_eq!(
        msg,
        &format!(
            "POST {}: answered 500 Internal Server Error: boom: the steering database is on fire",
            tool.url("/fail")
        )
    );
}

#[tokio::test]
async fn a_failing_get_fails_prepare_before_anything_changes() {
    let tool = Tool::start();
    let fault = build(
        HttpShifter {
            set: request(None, tool.url("/steer/${from}"), Some(SET_BODY)),
            get: Some(request(None, tool.url("/fail"), None)),
            restore: Some(request(None, tool.url("/steer/${from}"), Some("${state}"))),
        },
        None,
    )
    .await
    .unwrap();
    let err = fault.prepare().await.err().unwrap().to_string();
    assert!(err.contains("GET") && err.contains("answered 500"), "{err}");
    assert_eq!(tool.state(), ORIGINAL);
}

#[tokio::test]
async fn a_tool_that_is_not_there_is_an_error_naming_the_request() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/steer");
    let fault = build(
        HttpShifter {
            set: request(None, url.clone(), Some(SET_BODY)),
            get: None,
            restore: None,
        },
        None,
    )
    .await
    .unwrap();
    let record = fault.prepare().await.unwrap();
    let err = fault.apply(&record).await.err().unwrap().to_string();
    assert!(err.starts_with(&format!("POST {url}: ")), "{err}");
    assert!(err.to_lowercase().contains("connect"), "{err}");
}

#[tokio::test]
async fn state_in_restore_without_get_is_refused_at_build() {
    let err = build(
        HttpShifter {
            set: request(None, "http://127.0.0.1:1/steer".into(), Some(SET_BODY)),
            get: None,
            restore: Some(request(
                None,
                "http://127.0.0.1:1/steer".into(),
                Some("${state}"),
            )),
        },
        None,
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, FaultError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("`${state}`"), "{err}");
}

#[tokio::test]
async fn the_lab_shifter_steers_the_global_router_and_puts_the_entry_back() {
    let tool = Tool::start();
    tool.shared.lock().unwrap().state = r#"{"to":null,"percent":0}"#.into();
    let lab = lab(&tool.url("/"));
    let via = || Shifter::Lab(LabShifter {});
    let fault = build_shift(via(), "us-west", None, Some(&lab))
        .await
        .unwrap();
    assert_eq!(
        fault.plan().targets,
        vec![format!("PUT {} (per step)", tool.url("/steering/us-east"))]
    );
    let record = journaled(&fault.prepare().await.unwrap());
    fault.ramp().unwrap().shift(0.3).await.unwrap();
    assert_eq!(tool.state(), r#"{"to": "us-west", "percent": 30}"#);
    simian_injectors::revert(&record).await.unwrap();
    assert_eq!(tool.state(), r#"{"to":null,"percent":0}"#);
    let seen = tool.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/steering/us-east"),
            ("PUT", "/steering/us-east"),
            ("PUT", "/steering/us-east")
        ]
    );

    let err = build_shift(via(), "eu-west", None, Some(&lab))
        .await
        .err()
        .unwrap();
    let FaultError::Targets { message, hint } = err else {
        panic!("expected a target error, got {err:?}");
    };
    assert_eq!(message, "the lab has no region `eu-west`");
    assert_eq!(hint.as_deref(), Some("its regions are us-east, us-west"));
}

#[tokio::test]
async fn the_lab_shifter_needs_a_lab_with_a_global_router() {
    for lab in [None, Some(lab(""))] {
        let err = build_shift(Shifter::Lab(LabShifter {}), "us-west", None, lab.as_ref())
            .await
            .err()
            .unwrap();
        let FaultError::Targets { hint, .. } = &err else {
            panic!("expected a target error, got {err:?}");
        };
        assert_eq!(
            hint.as_deref(),
            Some("start a lab (`simian lab up` or `simian run --lab`)"),
            "{err}"
        );
    }
}
