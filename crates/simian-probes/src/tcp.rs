//! TCP connects at an interval: ok when the connection is made within the
//! timeout; latency is the connect time (name resolution included).

use std::sync::Arc;

use simian_core::Recorder;
use simian_experiment::TcpProbe;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Checks a TCP probe: every problem, as messages.
pub fn check(c: &TcpProbe) -> Vec<String> {
    let mut problems = Vec::new();
    match c.address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => problems.push(format!(
            "address `{}`: expected host:port, e.g. 127.0.0.1:5432",
            c.address
        )),
    }
    crate::check_positive("interval", c.interval, &mut problems);
    crate::check_positive("timeout", c.timeout, &mut problems);
    problems
}

/// Starts the probe: one connect every `interval`, each on its own task, so a
/// hanging connect does not delay the next (attempts overlap at most
/// `timeout / interval` deep).
pub fn spawn(
    c: &TcpProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    crate::valid(check(c))?;
    let (address, timeout) = (Arc::<str>::from(c.address.as_str()), c.timeout.0);
    Ok(crate::every(c.interval.0, recorder, cancel, move |due| {
        let address = address.clone();
        async move {
            let outcome =
                tokio::time::timeout_at(due + timeout, TcpStream::connect(&*address)).await;
            (matches!(outcome, Ok(Ok(_))), None)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn run(address: String) -> simian_core::Metrics {
        let c: TcpProbe = serde_json::from_value(serde_json::json!({
            "address": address, "interval": "50ms", "timeout": "1s"
        }))
        .unwrap();
        let rec = Arc::new(Recorder::new(Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let h = spawn(&c, rec.clone(), cancel.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
        h.await.unwrap();
        rec.between(rec.started(), tokio::time::Instant::now())
    }

    #[tokio::test]
    async fn a_listening_port_succeeds() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let m = run(l.local_addr().unwrap().to_string()).await;
        assert!(m.count >= 5 && m.errors == 0, "{m:?}");
        assert!(m.max.unwrap() < 0.5, "{m:?}");
    }

    #[tokio::test]
    async fn a_closed_port_fails() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let m = run(addr.to_string()).await;
        assert!(m.count >= 5 && m.errors == m.count, "{m:?}");
    }

    #[test]
    fn check_wants_host_and_port() {
        let c: TcpProbe =
            serde_json::from_value(serde_json::json!({ "address": "db", "interval": "0s" }))
                .unwrap();
        assert_eq!(check(&c).len(), 2, "{:?}", check(&c));
    }
}
