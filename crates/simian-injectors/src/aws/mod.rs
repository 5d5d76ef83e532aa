//! The AWS faults, on `simian-aws`: Chaos Gorilla (`aws_ec2`) and split-brain
//! (`aws_nacl`). Their SDK calls run on tasks of their own: the SDK's futures are
//! `Send`, but not for every lifetime the engine's futures would need them to be.

pub mod ec2;
pub mod nacl;

use crate::FaultError;

/// Runs `f` on a task of its own (see the module doc); a panic there is an error.
pub(crate) async fn on_task<T, F>(what: &str, f: F) -> Result<T, FaultError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, simian_aws::AwsError>> + Send + 'static,
{
    match tokio::spawn(f).await {
        Ok(r) => r.map_err(|e| FaultError::Action(e.to_string())),
        Err(e) => Err(FaultError::Action(format!("{what} failed: {e}"))),
    }
}
