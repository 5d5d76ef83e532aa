//! Errors of the AWS backends; messages read after "failed to ...".

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// No region from the options, the environment or the profile.
    #[error("resolve the AWS region: none is set (set AWS_REGION, a region in the AWS profile, or the region option)")]
    NoRegion,
    /// The input (a selector, the sides of a cut, a plan) is not usable;
    /// nothing was changed. `what` names it: "EC2 selector", ...
    #[error("accept the {what}: {}", .problems.join("; "))]
    Invalid {
        what: &'static str,
        problems: Vec<String>,
    },
    /// An API call failed (after the SDK's retries).
    #[error("call {operation}: {message}")]
    Api {
        operation: &'static str,
        /// The service's error code, e.g. `UnauthorizedOperation`, when it sent one.
        code: Option<String>,
        message: String,
    },
    /// Some calls of an action failed; the others were applied. What failed
    /// is listed so an operator can see what state it is in.
    #[error("call {operation} for {failed} of {total} {noun} ({}): {}", preview(.failed_ids), .errors.join("; "))]
    Partial {
        operation: &'static str,
        /// What the calls were about: "instances", "ACL entries".
        noun: &'static str,
        total: usize,
        failed: usize,
        failed_ids: Vec<String>,
        errors: Vec<String>,
    },
    /// The record belongs to another region than the client's: reverting it
    /// there would find nothing and wrongly report success.
    #[error("revert a record of region {record} with a client of region {client}")]
    RegionMismatch { record: String, client: String },
    /// Something named does not exist: a hosted zone, a record set, an alarm.
    #[error("find {0}")]
    NotFound(String),
    /// The target exists but cannot take this fault; nothing was changed.
    #[error("use {target}: {reason}")]
    Unsuitable { target: String, reason: String },
    /// A Route53 change still `PENDING` after the wait.
    #[error("see Route53 change {change_id} in sync within {waited_secs}s (it was accepted and is still propagating)")]
    NotInSync { change_id: String, waited_secs: u64 },
    /// Instances still stopping after the revert's wait; they can only be
    /// started once stopped.
    #[error("start {} instances still stopping after {waited_secs}s ({})", .ids.len(), preview(.ids))]
    StillStopping { ids: Vec<String>, waited_secs: u64 },
}

impl AwsError {
    /// A failed call of any SDK client (they share `SdkError`).
    pub(crate) fn api<E>(operation: &'static str, err: aws_sdk_ec2::error::SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = err.code().map(str::to_string);
        let message = match (err.code(), err.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            _ => DisplayErrorContext(&err).to_string(),
        };
        AwsError::Api {
            operation,
            code,
            message,
        }
    }

    /// The service's error code of a failed call, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// The first few ids, for messages that may concern thousands.
fn preview(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = ids
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        s.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    s
}
