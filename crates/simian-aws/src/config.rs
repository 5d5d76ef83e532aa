//! Client setup: the standard AWS configuration chain (environment, shared
//! profile, SSO, IMDS...) with simian's overrides.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::Credentials;

/// Attempts per API call (the first one included) unless the environment
/// says otherwise. The SDK's standard retry mode retries throttling
/// (`RequestLimitExceeded`, `Throttling`, ...) and transient errors with
/// exponential backoff and jitter; 5 rather than the SDK's 3 because a zone
/// kill fires bursts of calls in parallel, which EC2 may throttle.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How to reach AWS. Everything left `None` comes from the standard chain:
/// `AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EC2`,
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

/// The EC2 endpoint a client built from `sdk` will use, when it is not AWS's
/// own: the explicit option, else `AWS_ENDPOINT_URL_EC2`, else the global
/// one (`AWS_ENDPOINT_URL` or the profile's `endpoint_url`), as the SDK does.
pub(crate) fn ec2_endpoint(opts_url: Option<&str>, sdk: &SdkConfig) -> Option<String> {
    if let Some(url) = opts_url {
        return Some(url.to_string());
    }
    let ignore = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let service = std::env::var("AWS_ENDPOINT_URL_EC2")
        .ok()
        .filter(|v| !v.is_empty() && !ignore);
    service.or_else(|| sdk.endpoint_url().map(str::to_string))
}
