//! Throttling: EC2 answers `RequestLimitExceeded` (HTTP 503) and the SDK's
//! retries carry the call through. A small proxy on 127.0.0.1 in front of
//! moto refuses the first requests that way and forwards the rest.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use simian_aws::ec2::{apply, Action, Ec2};
use simian_aws::AwsOptions;
use support::{assert_all, run, Moto, OPT_IN};

const THROTTLED: &str = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>";

/// A proxy to `upstream` whose first `refuse` requests get a 503
/// `RequestLimitExceeded`. The SDK keeps connections alive, so the decision
/// is per connection: its first request is read whole; a refused one is
/// answered and the connection closed, an accepted one is sent upstream and
/// the connection is spliced to moto both ways from then on.
struct Proxy {
    url: String,
    /// Connections whose first request was read.
    seen: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: &str, refuse: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            // Bounded: a test makes a handful of connections.
            for conn in listener.incoming().take(1000) {
                let Ok(client) = conn else { continue };
                let (upstream, count) = (upstream.clone(), count.clone());
                std::thread::spawn(move || serve(client, &upstream, &count, refuse));
            }
        });
        Proxy { url, seen }
    }
}

fn serve(mut client: TcpStream, upstream: &str, seen: &AtomicUsize, refuse: usize) {
    let timeout = Some(Duration::from_secs(30));
    let _ = client.set_read_timeout(timeout);
    let Some(first) = read_request(&mut client) else {
        return;
    };
    if seen.fetch_add(1, Ordering::SeqCst) < refuse {
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{THROTTLED}",
            THROTTLED.len()
        );
        let _ = client.write_all(reply.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = server.set_read_timeout(timeout);
    if server.write_all(&first).is_err() {
        return;
    }
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// One HTTP/1.1 request: head and `content-length` body. `None` on EOF,
/// timeout or a request over 1 MiB.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_throttled_zone_kill_is_retried_by_the_sdk_and_succeeds() {
    let moto = Moto::start();
    let ids = run(&moto.ec2().await, "us-east-1a", 3, &[OPT_IN]).await;
    let proxy = Proxy::start(&moto.endpoint, 2);
    let ec2 = Ec2::connect(&AwsOptions {
        endpoint_url: Some(proxy.url.clone()),
        max_attempts: Some(5),
        ..moto.options()
    })
    .await
    .unwrap();

    let applied = apply(&ec2, Action::Stop, &ids).await.unwrap();
    assert_eq!(applied.changed.len(), 3);
    assert_eq!(
        proxy.seen.load(Ordering::SeqCst),
        3,
        "a connection per attempt"
    );
    assert_eq!(ec2.calls().total(), 1, "one StopInstances call");
    assert!(ec2.calls().attempts() > ec2.calls().total());
    assert_eq!(
        ec2.calls().attempts(),
        3,
        "two throttled attempts, then the one that went through"
    );
    assert_all(&moto.ec2().await, &ids, "stopped").await;
}
