//! Counting the SDK calls a fault makes (for the scale report and the tests),
//! with an SDK interceptor so no call path can forget to count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Shared counters of API calls, cheap to clone (one `Arc`). A call is one
/// operation (a paginator's page is one call); attempts also count the
/// SDK's retries (throttling, transient errors).
#[derive(Debug, Clone, Default)]
pub struct ApiCalls(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    calls: AtomicU64,
    attempts: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl ApiCalls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Operations called, all kinds together.
    pub fn total(&self) -> u64 {
        self.0.calls.load(Ordering::Relaxed)
    }

    /// HTTP attempts, retries included.
    pub fn attempts(&self) -> u64 {
        self.0.attempts.load(Ordering::Relaxed)
    }

    /// Calls of one operation, e.g. `StopInstances`.
    pub fn of(&self, operation: &str) -> u64 {
        self.lock().get(operation).copied().unwrap_or(0)
    }

    /// Calls per operation.
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    fn record_call(&self, operation: &str) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        *self.lock().entry(operation.to_string()).or_insert(0) += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic elsewhere cannot leave a counter map inconsistent.
        self.0
            .by_operation
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn interceptor(&self) -> CountCalls {
        CountCalls(self.clone())
    }
}

/// The interceptor that feeds [`ApiCalls`]. The interceptor types come from
/// `aws-smithy-runtime-api`, shared by every `aws-sdk-*` crate, so one
/// counter serves EC2, Route53 and CloudWatch clients alike.
#[derive(Debug)]
pub(crate) struct CountCalls(ApiCalls);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "simian::CountCalls"
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0 .0.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    // Once per operation, retries or not; the operation's metadata is in the
    // bag by then (it is not yet at `read_before_execution` for client-level
    // interceptors).
    fn read_after_execution(
        &self,
        _ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map_or("unknown", |m| m.name());
        self.0.record_call(op);
        Ok(())
    }
}
