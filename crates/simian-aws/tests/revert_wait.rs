//! Reverting instances EC2 still reports as `stopping`: they can only be
//! started once stopped, so revert polls (bounded) before starting them.
//! moto stops instances at once, so a tiny fake EC2 on 127.0.0.1 plays
//! the slow stop here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use simian_aws::ec2::{revert_with, Action, Ec2, Ec2Revert, RevertOptions};
use simian_aws::{AwsError, AwsOptions, Credentials};

/// Answers DescribeInstances with i-1 `stopping` for the first
/// `stopping_for` calls and `stopped` after; StartInstances with `pending`.
struct FakeEc2 {
    url: String,
    describes: Arc<AtomicUsize>,
    starts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeEc2 {
    fn start(stopping_for: usize) -> FakeEc2 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let describes = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s, halt) = (describes.clone(), starts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(conn);
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let body = String::from_utf8_lossy(&body);
                let xml = if body.contains("Action=DescribeInstances") {
                    let n = d.fetch_add(1, Ordering::Relaxed);
                    let (code, name) = if n < stopping_for {
                        (64, "stopping")
                    } else {
                        (80, "stopped")
                    };
                    format!(
                        r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet><item><instanceId>i-1</instanceId><instanceState><code>{code}</code><name>{name}</name></instanceState></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#
                    )
                } else {
                    s.fetch_add(1, Ordering::Relaxed);
                    r#"<StartInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><instancesSet><item><instanceId>i-1</instanceId><currentState><code>0</code><name>pending</name></currentState><previousState><code>80</code><name>stopped</name></previousState></item></instancesSet></StartInstancesResponse>"#.to_string()
                };
                let mut conn = reader.into_inner();
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
            }
        });
        FakeEc2 {
            url,
            describes,
            starts,
            stop,
        }
    }

    async fn client(&self) -> Ec2 {
        Ec2::connect(&AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.url.clone()),
            credentials: Some(Credentials::new("testing", "testing", None, None, "test")),
            ..AwsOptions::default()
        })
        .await
        .unwrap()
    }
}

impl Drop for FakeEc2 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn record(ec2: &Ec2) -> Ec2Revert {
    Ec2Revert::new(ec2, Action::Stop, vec!["i-1".into()])
}

#[tokio::test]
async fn a_stopping_instance_is_started_once_it_has_stopped() {
    let fake = FakeEc2::start(3);
    let ec2 = fake.client().await;
    let opts = RevertOptions {
        stopping_timeout: Duration::from_secs(5),
        poll_every: Duration::from_millis(10),
    };
    let done = revert_with(&ec2, &record(&ec2), &opts).await.unwrap();
    assert_eq!(done.started, ["i-1"]);
    assert_eq!(
        fake.describes.load(Ordering::Relaxed),
        4,
        "3 stopping, then stopped"
    );
    assert_eq!(fake.starts.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_instance_stuck_stopping_fails_the_revert_after_a_bounded_wait() {
    let fake = FakeEc2::start(usize::MAX);
    let ec2 = fake.client().await;
    let opts = RevertOptions {
        stopping_timeout: Duration::from_millis(50),
        poll_every: Duration::from_millis(10),
    };
    let err = revert_with(&ec2, &record(&ec2), &opts).await.unwrap_err();
    assert!(
        matches!(&err, AwsError::StillStopping { ids, .. } if ids == &["i-1"]),
        "{err}"
    );
    assert_eq!(
        fake.describes.load(Ordering::Relaxed),
        6,
        "the first look and 5 polls"
    );
    assert_eq!(fake.starts.load(Ordering::Relaxed), 0);
}
