//! Service-specific endpoints from the environment, as the SDK reads them
//! (`AWS_ENDPOINT_URL_<SERVICE ID>`, spaces as `_`): each client reaches
//! moto through its own variable and reports it for revert records. One
//! test in its own binary, as it sets process environment variables.

mod support;

use simian_aws::cloudwatch::{alarm_states, CloudWatch};
use simian_aws::ec2::Ec2;
use simian_aws::route53::{self, Route53, WeightedTarget};
use simian_aws::AwsOptions;
use support::{alarm, weighted_zone, Moto};

#[tokio::test]
async fn each_client_takes_its_service_endpoint_from_the_environment() {
    let moto = Moto::start();
    let zone = weighted_zone(&moto).await;
    alarm(&moto, "api-5xx", "ALARM").await;
    for var in [
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_ROUTE_53",
        "AWS_ENDPOINT_URL_CLOUDWATCH",
    ] {
        std::env::set_var(var, &moto.endpoint);
    }
    std::env::remove_var("AWS_ENDPOINT_URL");
    let opts = AwsOptions {
        region: Some("us-east-1".into()),
        credentials: Some(support::credentials()),
        ..AwsOptions::default()
    };

    let r53 = Route53::connect(&opts).await.unwrap();
    assert_eq!(r53.endpoint_url(), Some(moto.endpoint.as_str()));
    let target = WeightedTarget {
        zone: zone.id.clone(),
        name: zone.name.clone(),
        record_type: None,
        from: "us-east".into(),
        to: "us-west".into(),
    };
    let record = route53::read(&r53, &target).await.unwrap();
    assert_eq!(record.endpoint_url.as_deref(), Some(moto.endpoint.as_str()));

    let cw = CloudWatch::connect(&opts).await.unwrap();
    assert_eq!(cw.endpoint_url(), Some(moto.endpoint.as_str()));
    let states = alarm_states(&cw, &["api-5xx".to_string()], None)
        .await
        .unwrap();
    assert_eq!(states.alarm, ["api-5xx"]);

    let ec2 = Ec2::connect(&opts).await.unwrap();
    assert_eq!(ec2.endpoint_url(), Some(moto.endpoint.as_str()));
    ec2.sdk().describe_vpcs().send().await.unwrap();
}
