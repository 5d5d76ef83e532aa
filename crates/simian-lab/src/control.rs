//! The supervisor's control protocol: a unix socket, one JSON request per line, one JSON
//! reply per line.
//!
//! ```text
//! {"op":"status"}                              -> {"ok":true,"status":{...}}
//! {"op":"ensure_running","instance":"ID"}      -> {"ok":true,"pid":1234}
//! {"op":"shutdown"}                            -> {"ok":true}   (sent once everything stopped)
//! anything failing                             -> {"ok":false,"error":"..."}
//! ```

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::{LabError, LabStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    EnsureRunning { instance: String },
    Shutdown,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LabStatus>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            error: Some(message.into()),
            ..Reply::default()
        }
    }
}

/// Sends one request and waits at most `timeout` for its reply. A reply with `ok: false`
/// becomes `LabError::Supervisor` with the supervisor's message.
pub async fn call(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, LabError> {
    let fail = |detail: String| LabError::Control {
        socket: socket.to_path_buf(),
        detail,
    };
    let exchange = async {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            fail(format!(
                "{e}; is the lab running? check with `simian lab status`"
            ))
        })?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(request).expect("requests serialize");
        line.push('\n');
        write
            .write_all(line.as_bytes())
            .await
            .map_err(|e| fail(format!("send the request: {e}")))?;
        let mut answer = String::new();
        BufReader::new(read)
            .read_line(&mut answer)
            .await
            .map_err(|e| fail(format!("read the reply: {e}")))?;
        if answer.is_empty() {
            return Err(fail("the supervisor hung up without answering".into()));
        }
        serde_json::from_str::<Reply>(&answer).map_err(|e| fail(format!("unreadable reply: {e}")))
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail(format!("no answer within {}s", timeout.as_secs())))??;
    if reply.ok {
        Ok(reply)
    } else {
        Err(LabError::Supervisor(
            reply
                .error
                .unwrap_or_else(|| "the supervisor refused".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let parse = |s: &str| serde_json::from_str::<Request>(s).unwrap();
        assert_eq!(parse(r#"{"op":"status"}"#), Request::Status);
        assert_eq!(parse(r#"{"op":"shutdown"}"#), Request::Shutdown);
        assert_eq!(
            parse(r#"{"op":"ensure_running","instance":"us-east-a-1"}"#),
            Request::EnsureRunning {
                instance: "us-east-a-1".into()
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Reply::error("nope")).unwrap(),
            r#"{"ok":false,"error":"nope"}"#
        );
    }

    #[tokio::test]
    async fn a_missing_socket_says_to_check_the_lab() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(
            &dir.path().join("control.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("simian lab status"), "{err}");
    }
}
