//! One lab instance: a tiny HTTP service that says who it is, reports its health and counts
//! its requests. Runs as its own process (`simian lab instance`), or in-process in tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::http::{self, Body};
use crate::LabError;

/// Who an instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub region: String,
    pub zone: String,
    pub id: String,
}

struct Shared {
    info: InstanceInfo,
    /// Application requests served; health checks and scrapes are not counted.
    requests: AtomicU64,
    json: String,
}

/// Serves the instance's HTTP API on `listener` until dropped.
pub async fn serve(listener: TcpListener, info: InstanceInfo) {
    #[derive(serde::Serialize)]
    struct Whoami<'a> {
        region: &'a str,
        zone: &'a str,
        instance: &'a str,
    }
    let json = serde_json::to_string(&Whoami {
        region: &info.region,
        zone: &info.zone,
        instance: &info.id,
    })
    .expect("plain strings serialize");
    let shared = Arc::new(Shared {
        info,
        requests: AtomicU64::new(0),
        json,
    });
    http::serve(listener, move |req| {
        let shared = shared.clone();
        async move { handle(&shared, req) }
    })
    .await
}

fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/health" => http::text(StatusCode::OK, "ok"),
        "/metrics" => {
            let i = &shared.info;
            let body = format!(
                "# HELP simian_lab_requests_total Application requests served (health checks and scrapes excluded).\n\
                 # TYPE simian_lab_requests_total counter\n\
                 simian_lab_requests_total{{region=\"{}\",zone=\"{}\",instance=\"{}\"}} {}\n",
                i.region,
                i.zone,
                i.id,
                shared.requests.load(Ordering::Relaxed)
            );
            let mut resp = http::text(StatusCode::OK, body);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        _ => {
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let mut resp = Response::new(http::full(shared.json.clone()));
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (name, value) in [
                ("x-simian-region", &shared.info.region),
                ("x-simian-zone", &shared.info.zone),
                ("x-simian-instance", &shared.info.id),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
            resp
        }
    }
}

/// The `simian lab instance` process: dies with its supervisor, prints
/// `listening 127.0.0.1:PORT` once bound, serves until SIGTERM or SIGINT.
pub async fn run(info: InstanceInfo, port: u16, parent_pid: Option<u32>) -> Result<i32, LabError> {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{signal, SignalKind};

    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| LabError::io("set the parent-death signal", e.into()))?;
    crate::supervisor::name_process();
    // The parent may have died before the line above: then nobody would ever kill us.
    let ppid = nix::unistd::getppid().as_raw() as u32;
    if parent_pid.map_or(ppid == 1, |want| want != ppid) {
        eprintln!("{}: supervisor already gone, exiting", info.id);
        return Ok(1);
    }

    let mut term = signal(SignalKind::terminate()).map_err(|e| LabError::io("watch SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| LabError::io("watch SIGINT", e))?;

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| LabError::io(format!("listen on {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| LabError::io("read the bound address", e))?;
    // The supervisor reads exactly this line.
    println!("listening {local}");
    eprintln!(
        "{}: listening on {local} (pid {})",
        info.id,
        std::process::id()
    );

    let id = info.id.clone();
    tokio::select! {
        _ = serve(listener, info) => {}
        _ = term.recv() => eprintln!("{id}: SIGTERM, exiting"),
        _ = int.recv() => eprintln!("{id}: SIGINT, exiting"),
    }
    Ok(0)
}

/// Binds an in-process instance on an ephemeral port; for tests of the edge router.
#[cfg(test)]
pub(crate) async fn spawn_local(id: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let zone = id.rsplit_once('-').unwrap().0.to_string();
    let region = zone.rsplit_once('-').unwrap().0.to_string();
    let info = InstanceInfo {
        region,
        zone,
        id: id.to_string(),
    };
    (addr, tokio::spawn(serve(listener, info)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A bare HTTP/1.1 GET over a fresh connection: (status, raw head, body).
    pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn says_who_it_is_and_counts_requests() {
        let (addr, task) = spawn_local("us-east-b-2").await;
        let (status, _, body) = get(addr, "/health").await;
        assert_eq!((status, body.as_str()), (200, "ok"));

        let (status, head, body) = get(addr, "/play").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            r#"{"region":"us-east","zone":"us-east-b","instance":"us-east-b-2"}"#
        );
        assert!(head.contains("x-simian-region: us-east\r\n"), "{head}");
        assert!(head.contains("x-simian-zone: us-east-b\r\n"), "{head}");
        assert!(
            head.contains("x-simian-instance: us-east-b-2\r\n"),
            "{head}"
        );
        get(addr, "/other?x=1").await;

        let (status, _, metrics) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            metrics.contains(
                "simian_lab_requests_total{region=\"us-east\",zone=\"us-east-b\",instance=\"us-east-b-2\"} 2\n"
            ),
            "{metrics}"
        );
        task.abort();
    }
}
