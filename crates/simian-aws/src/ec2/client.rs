//! The EC2 client simian uses: the SDK client with its region, its endpoint
//! (for revert records) and the call counter attached.

use aws_config::SdkConfig;

use crate::config::{load_sdk_config, service_endpoint, EC2};
use crate::{ApiCalls, AwsError, AwsOptions};

/// An EC2 client bound to one region. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
    endpoint_url: Option<String>,
    calls: ApiCalls,
}

impl Ec2 {
    /// Resolves the configuration through the standard chain and builds the
    /// client, with a fresh call counter.
    pub async fn connect(opts: &AwsOptions) -> Result<Self, AwsError> {
        let sdk = load_sdk_config(opts).await;
        Self::from_sdk_config(&sdk, opts.endpoint_url.as_deref(), ApiCalls::new())
    }

    /// Builds the client from an already loaded configuration; calls are
    /// counted into `calls` (share one counter across clients to sum them).
    pub fn from_sdk_config(
        sdk: &SdkConfig,
        endpoint_url: Option<&str>,
        calls: ApiCalls,
    ) -> Result<Self, AwsError> {
        let region = sdk.region().ok_or(AwsError::NoRegion)?.to_string();
        let endpoint_url = service_endpoint(EC2, endpoint_url, sdk);
        let mut conf = aws_sdk_ec2::config::Builder::from(sdk).interceptor(calls.interceptor());
        // What the record says is what the client uses.
        if let Some(url) = &endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Ok(Ec2 {
            client: aws_sdk_ec2::Client::from_conf(conf.build()),
            region,
            endpoint_url,
            calls,
        })
    }

    /// The client a revert record needs: the record's region and endpoint,
    /// everything else (profile, credentials) from `base` and the standard chain.
    pub async fn for_record(
        record: &crate::ec2::Ec2Revert,
        base: AwsOptions,
    ) -> Result<Self, AwsError> {
        Self::connect(&AwsOptions {
            region: Some(record.region.clone()),
            endpoint_url: record.endpoint_url.clone(),
            ..base
        })
        .await
    }

    /// The SDK client, for calls this crate does not wrap (its calls are counted too).
    pub fn sdk(&self) -> &aws_sdk_ec2::Client {
        &self.client
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The endpoint override in use, if any (`None`: AWS's own endpoint).
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    pub fn calls(&self) -> &ApiCalls {
        &self.calls
    }
}
