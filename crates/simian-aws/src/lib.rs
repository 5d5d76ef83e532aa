//! AWS fault backends for simian, on the official `aws-sdk-*` crates: the
//! EC2 zone kill ([`ec2`]), region severing with network-ACL entries
//! ([`nacl`]), Route53 weighted-record traffic shifts ([`route53`]), and
//! CloudWatch alarm states for stop conditions ([`cloudwatch`]). The SDKs
//! live in this crate alone so the rest of the workspace builds fast.
//!
//! Every fault is planned (targets resolved, nothing changed), recorded (a
//! serialisable revert record, written to the journal before anything
//! changes) and applied; reverting needs only the record, so it can run in
//! another process, and is idempotent.
#![forbid(unsafe_code)]

mod calls;
pub mod cloudwatch;
mod config;
pub mod ec2;
mod error;
pub mod nacl;
pub mod route53;

pub use aws_sdk_ec2::config::Credentials;
pub use calls::ApiCalls;
pub use config::{load_sdk_config, AwsOptions, DEFAULT_MAX_ATTEMPTS};
pub use error::AwsError;

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: T) {}

    /// The engine runs these on tasks of their own: their futures must be `Send`.
    #[tokio::test]
    async fn the_futures_callers_spawn_are_send() {
        let base = AwsOptions::default();
        let sides = [nacl::Side::default(), nacl::Side::default()];
        let record = nacl::record(&nacl::NaclPlan::default(), &base);
        send(nacl::plan(&sides, nacl::Direction::Both, &base));
        send(nacl::apply(&record, &base));
        send(nacl::revert(&record, &base));
        send(route53::Route53::connect(&base));
        send(cloudwatch::CloudWatch::connect(&base));
        let r53 = route53::Route53::connect(&AwsOptions {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            credentials: Some(Credentials::new("a", "b", None, None, "test")),
            ..AwsOptions::default()
        })
        .await
        .unwrap();
        let original = route53::WeightsRevert {
            endpoint_url: None,
            zone_id: "Z1".into(),
            name: "api.example.com.".into(),
            record_type: "A".into(),
            from: route53::SetWeight {
                set_identifier: "a".into(),
                weight: 1,
            },
            to: route53::SetWeight {
                set_identifier: "b".into(),
                weight: 1,
            },
        };
        let target = route53::WeightedTarget {
            zone: "Z1".into(),
            name: "api.example.com".into(),
            record_type: None,
            from: "a".into(),
            to: "b".into(),
        };
        send(route53::read(&r53, &target));
        send(route53::set_share(&r53, &original, 0.5));
        send(route53::restore(&r53, &original));
        let cw = cloudwatch::CloudWatch::connect(&AwsOptions {
            region: Some("us-east-1".into()),
            ..AwsOptions::default()
        })
        .await
        .unwrap();
        send(cloudwatch::alarm_states(&cw, &[], Some("api-")));
    }
}
