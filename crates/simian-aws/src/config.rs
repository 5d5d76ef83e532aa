//! Client setup: the standard AWS configuration chain (environment, shared
//! profile, SSO, IMDS...) with simian's overrides.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use aws_types::service_config::ServiceConfigKey;

/// Attempts per API call (the first one included) unless the environment
/// says otherwise. The SDK's standard retry mode retries throttling
/// (`RequestLimitExceeded`, `Throttling`, ...) and transient errors with
/// exponential backoff and jitter; 5 rather than the SDK's 3 because a zone
/// kill or an ACL cut fires bursts of calls in parallel, which EC2 may throttle.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How to reach AWS. Everything left `None` comes from the standard chain:
/// `AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`,
/// credentials from the environment, the shared files, SSO, a credential
/// process, the container or instance role.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    /// An explicit endpoint, e.g. a local AWS-compatible server for tests.
    pub endpoint_url: Option<String>,
    /// A named profile of the shared config files.
    pub profile: Option<String>,
    /// Attempts per call. `None`: `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE` if
    /// either is set, else standard mode with [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: Option<u32>,
    /// Fixed credentials instead of the chain (tests against a local server:
    /// passed here rather than through the process environment, which tests
    /// running in parallel share).
    pub credentials: Option<Credentials>,
}

/// Loads the SDK configuration for `opts` through the standard chain.
pub async fn load_sdk_config(opts: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &opts.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(profile) = &opts.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(creds) = &opts.credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    let env_says = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    match opts.max_attempts {
        Some(n) => loader = loader.retry_config(RetryConfig::standard().with_max_attempts(n)),
        None if env_says => {}
        None => {
            loader =
                loader.retry_config(RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS))
        }
    }
    loader.load().await
}

/// The SDK's service ids, as its endpoint settings name them
/// (`AWS_ENDPOINT_URL_` + the id in capitals, spaces as `_`).
pub(crate) const EC2: &str = "EC2";
pub(crate) const ROUTE53: &str = "Route 53";
pub(crate) const CLOUDWATCH: &str = "CloudWatch";

/// The endpoint a client of `service_id` built from `sdk` will use, when it
/// is not AWS's own: the explicit option, else the service's own setting
/// (e.g. `AWS_ENDPOINT_URL_ROUTE_53`, or the profile's `services` section),
/// else the global one (`AWS_ENDPOINT_URL` or the profile's `endpoint_url`).
/// Read with the SDK's own loader, so it is what the client uses, and what a
/// revert record must say.
pub(crate) fn service_endpoint(
    service_id: &str,
    opts_url: Option<&str>,
    sdk: &SdkConfig,
) -> Option<String> {
    if let Some(url) = opts_url {
        return Some(url.to_string());
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .expect("every field of the key is set");
    sdk.service_config()
        .and_then(|c| c.load_config(key))
        .filter(|v| !v.is_empty())
        .or_else(|| sdk.endpoint_url().map(str::to_string))
}
