//! A shell command at an interval: ok on exit 0, latency is the run time, and
//! a number printed on stdout (trimmed) becomes the observation's `value`.
//!
//! Each run is `sh -c RUN` in a process group of its own, so a timeout (or the
//! probe being dropped) kills the command and everything it started.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use simian_core::Recorder;
use simian_experiment::CommandProbe;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ProbeError;

/// Stdout kept for parsing a value; the rest is read and dropped.
const STDOUT_KEPT: usize = 64 * 1024;

/// Checks a command probe: every problem, as messages.
pub fn check(c: &CommandProbe) -> Vec<String> {
    let mut problems = Vec::new();
    if c.run.trim().is_empty() {
        problems.push("run: empty command".into());
    }
    crate::check_positive("interval", c.interval, &mut problems);
    crate::check_positive("timeout", c.timeout, &mut problems);
    problems
}

/// Starts the probe: one run every `interval`, each on its own task, so a slow
/// run does not delay the next (runs overlap at most `timeout / interval` deep).
pub fn spawn(
    c: &CommandProbe,
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProbeError> {
    crate::valid(check(c))?;
    let (run, timeout) = (Arc::<str>::from(c.run.as_str()), c.timeout.0);
    Ok(crate::every(c.interval.0, recorder, cancel, move |due| {
        let run = run.clone();
        async move { run_once(&run, due + timeout).await }
    }))
}

/// Runs `sh -c run` until `deadline`: (exited 0, stdout as a number).
async fn run_once(run: &str, deadline: Instant) -> (bool, Option<f64>) {
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(run)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return (false, None),
    };
    let mut group = Group(child.id());
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut out = Vec::new();
    let finished = tokio::time::timeout_at(deadline, async {
        let (read, status) = tokio::join!(read_capped(&mut stdout, &mut out), child.wait());
        read.and(status)
    })
    .await;
    match finished {
        Ok(Ok(status)) => {
            // The shell is reaped: leave whatever it put in the background alone.
            group.0 = None;
            let value = std::str::from_utf8(&out)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok());
            (status.success(), value)
        }
        Ok(Err(_)) => (false, None),
        Err(_) => {
            group.kill();
            // Reap the shell now rather than leave it to tokio's orphan queue.
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            (false, None)
        }
    }
}

/// Reads all of `r`, keeping the first [`STDOUT_KEPT`] bytes.
async fn read_capped(r: &mut (impl AsyncRead + Unpin), out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let keep = n.min(STDOUT_KEPT.saturating_sub(out.len()));
        out.extend_from_slice(&buf[..keep]);
    }
}

/// The process group of a running command; killed when dropped unless the
/// command finished (a timeout, or the probe aborted mid-run).
struct Group(Option<u32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take().and_then(|p| i32::try_from(p).ok()) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `cmd` every 100ms for `run`, then cancels and waits for the runs in flight.
    async fn probe(cmd: &str, timeout: &str, run: Duration) -> simian_core::Metrics {
        let c: CommandProbe = serde_json::from_value(
            serde_json::json!({ "run": cmd, "interval": "100ms", "timeout": timeout }),
        )
        .unwrap();
        let rec = Arc::new(Recorder::new(Duration::from_secs(60)));
        let cancel = CancellationToken::new();
        let h = spawn(&c, rec.clone(), cancel.clone()).unwrap();
        tokio::time::sleep(run).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .unwrap()
            .unwrap();
        rec.between(rec.started(), Instant::now())
    }

    #[tokio::test]
    async fn exit_zero_is_ok_and_other_codes_fail() {
        let m = probe("exit 0", "5s", Duration::from_millis(350)).await;
        assert!(m.count >= 3 && m.errors == 0, "{m:?}");
        let m = probe("exit 3", "5s", Duration::from_millis(350)).await;
        assert!(m.count >= 3 && m.errors == m.count, "{m:?}");
    }

    #[tokio::test]
    async fn a_number_on_stdout_is_the_value() {
        let m = probe("echo ' 42 '", "5s", Duration::from_millis(250)).await;
        assert_eq!(m.value, Some(42.0), "{m:?}");
        let m = probe("echo hello", "5s", Duration::from_millis(250)).await;
        assert_eq!(m.value, None, "{m:?}");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_and_fails_promptly() {
        let started = Instant::now();
        let (ok, value) = run_once(
            "sleep 5; echo 1",
            Instant::now() + Duration::from_millis(200),
        )
        .await;
        let took = started.elapsed();
        assert_eq!((ok, value), (false, None));
        assert!(took < Duration::from_secs(2), "took {took:?}");
        // Through the probe too: every run fails at about the timeout.
        let m = probe("sleep 5", "200ms", Duration::from_millis(350)).await;
        assert!(m.count >= 3 && m.errors == m.count, "{m:?}");
        assert!(m.max.unwrap() < 1.0, "{m:?}");
    }

    #[tokio::test]
    async fn a_timeout_kills_what_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let (ok, _) = run_once(&cmd, Instant::now() + Duration::from_millis(300)).await;
        assert!(!ok);
        let pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .to_string();
        let alive = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
        };
        let gone_by = Instant::now() + Duration::from_secs(2);
        while alive(&pid) && Instant::now() < gone_by {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !alive(&pid),
            "background `sleep 30` (pid {pid}) survived the timeout"
        );
    }
}
