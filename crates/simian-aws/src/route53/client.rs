//! The Route53 client simian uses: the SDK client with its endpoint (for
//! revert records) and the call counter attached.

use std::future::Future;

use crate::config::{load_sdk_config, service_endpoint, ROUTE53};
use crate::{ApiCalls, AwsError, AwsOptions};

/// The region Route53 clients sign for unless the options name one: Route53
/// is global, served from us-east-1 in the `aws` partition.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A Route53 client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Route53 {
    client: aws_sdk_route53::Client,
    endpoint_url: Option<String>,
    calls: ApiCalls,
}

impl Route53 {
    /// Resolves the configuration through the standard chain (region
    /// [`DEFAULT_REGION`] unless `opts` names one) with a fresh call counter.
    /// The future owns a copy of `opts`.
    pub fn connect(
        opts: &AwsOptions,
    ) -> impl Future<Output = Result<Self, AwsError>> + Send + 'static {
        let opts = AwsOptions {
            region: Some(
                opts.region
                    .clone()
                    .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            ),
            ..opts.clone()
        };
        async move {
            let sdk = load_sdk_config(&opts).await;
            let calls = ApiCalls::new();
            let endpoint_url = service_endpoint(ROUTE53, opts.endpoint_url.as_deref(), &sdk);
            let mut conf =
                aws_sdk_route53::config::Builder::from(&sdk).interceptor(calls.interceptor());
            // What the record says is what the client uses.
            if let Some(url) = &endpoint_url {
                conf = conf.endpoint_url(url);
            }
            Ok(Route53 {
                client: aws_sdk_route53::Client::from_conf(conf.build()),
                endpoint_url,
                calls,
            })
        }
    }

    /// The SDK client, for calls this crate does not wrap (counted too).
    pub fn sdk(&self) -> &aws_sdk_route53::Client {
        &self.client
    }

    /// The endpoint override in use, if any (`None`: AWS's own endpoint).
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    pub fn calls(&self) -> &ApiCalls {
        &self.calls
    }
}
