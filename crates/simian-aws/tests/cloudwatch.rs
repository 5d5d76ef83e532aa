//! CloudWatch alarm states against a moto server on 127.0.0.1.

mod support;

use simian_aws::cloudwatch::{alarm_states, AlarmStates, CloudWatch};
use simian_aws::AwsError;
use support::{alarm, Moto};

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn each_alarm_is_sorted_into_the_list_of_its_state() {
    let moto = Moto::start();
    alarm(&moto, "api-5xx", "ALARM").await;
    alarm(&moto, "api-latency", "OK").await;
    alarm(&moto, "db-lag", "INSUFFICIENT_DATA").await;
    alarm(&moto, "api-errors", "ALARM").await;
    let cw = CloudWatch::connect(&moto.options()).await.unwrap();

    let by_name = alarm_states(&cw, &names(&["api-5xx", "api-latency", "db-lag"]), None)
        .await
        .unwrap();
    assert_eq!(
        by_name,
        AlarmStates {
            alarm: names(&["api-5xx"]),
            ok: names(&["api-latency"]),
            insufficient_data: names(&["db-lag"]),
        }
    );

    let by_prefix = alarm_states(&cw, &[], Some("api-")).await.unwrap();
    assert_eq!(by_prefix.alarm, ["api-5xx", "api-errors"]);
    assert_eq!(by_prefix.ok, ["api-latency"]);
    assert!(by_prefix.insufficient_data.is_empty());

    let both = alarm_states(&cw, &names(&["db-lag"]), Some("api-"))
        .await
        .unwrap();
    assert_eq!(
        both.alarm.len() + both.ok.len() + both.insufficient_data.len(),
        4
    );

    // A state change shows at the next read.
    alarm(&moto, "api-5xx", "OK").await;
    let now = alarm_states(&cw, &names(&["api-5xx"]), None).await.unwrap();
    assert_eq!(now.ok, ["api-5xx"]);
    assert!(now.alarm.is_empty());
}

#[tokio::test]
async fn an_unknown_alarm_or_a_prefix_matching_nothing_is_an_error() {
    let moto = Moto::start();
    alarm(&moto, "api-5xx", "OK").await;
    let cw = CloudWatch::connect(&moto.options()).await.unwrap();

    let err = alarm_states(&cw, &names(&["api-5xx", "api-5xxx"]), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AwsError::NotFound(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "find CloudWatch alarm `api-5xxx` in us-east-1"
    );

    let err = alarm_states(&cw, &[], Some("web-")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "find any CloudWatch alarm named `web-...` in us-east-1"
    );
    assert!(alarm_states(&cw, &[], None).await.is_err());
}

#[tokio::test]
async fn more_than_100_names_are_asked_in_batches_of_100() {
    let moto = Moto::start();
    let all: Vec<String> = (0..130).map(|i| format!("alarm-{i:03}")).collect();
    for (i, name) in all.iter().enumerate() {
        alarm(&moto, name, if i % 2 == 0 { "OK" } else { "ALARM" }).await;
    }
    let cw = CloudWatch::connect(&moto.options()).await.unwrap();
    let states = alarm_states(&cw, &all, None).await.unwrap();
    assert_eq!(states.ok.len(), 65);
    assert_eq!(states.alarm.len(), 65);
    assert_eq!(cw.calls().of("DescribeAlarms"), 2);
}
