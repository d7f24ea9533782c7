//! The organization trail turned into alarms: delivered to a CloudWatch Logs log group through a
//! least-privilege role, the CIS AWS Foundations Benchmark v5.0 metric filters (4.1–4.15) with an
//! alarm each and a billing alarm, all publishing to an encrypted SNS topic a group mailbox
//! subscribes to. Through the realism layer: IAM lets CloudTrail use a new role only after a
//! while, and an email subscription stays `PendingConfirmation` until the mailbox confirms (the
//! emulator confirms at once and accepts any role at once).

use landing_zone_tests::proxy::{AwsProxy, Realism};
use landing_zone_tests::{Emulator, report, run_dir};
use std::time::Duration;

const TRAIL: &str = "apiVersion: landingzone.dev/v1alpha1
kind: AuditTrail
metadata: {name: org-trail}
spec:
  trailName: org-trail
  s3: {bucketName: alarms-audit-logs, create: true}
  cloudWatchLogs: {retentionInDays: 365}
  alarms:
    topic:
      name: landing-zone-security-alarms
      subscribers: [security-team@example.com]
    billing: {thresholdUsd: 1000}
";

/// One `apply --dir` of `dir` through the realism layer.
async fn apply(
    emu: &Emulator,
    proxy: &AwsProxy,
    dir: &std::path::Path,
    state: &std::path::Path,
) -> landing_zone_operator::cli::RunResult {
    run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        dir,
        state,
        true,
        false,
    )
    .await
}

fn status(state: &std::path::Path) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    doc["resources"]["AuditTrail/org-trail"]["status"].clone()
}

#[tokio::test]
async fn the_trail_alarms_reach_a_mailbox_and_hand_changes_are_put_back() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        trail_policy_lag: Duration::from_secs(2),
        email_confirmation: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trail.yaml"), TRAIL).unwrap();
    let state = dir.path().join("state.json");
    let run = apply(&emu, &proxy, dir.path(), &state).await;
    assert!(!run.failed(), "{:?}", run.reports);

    let conf = emu.sdk_config_via(&emu.endpoint, 2).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
    // CloudWatch's CBOR goes through the realism layer (the emulator speaks its JSON protocol).
    let cw = aws_sdk_cloudwatch::Client::new(&emu.sdk_config_via(&proxy.endpoint, 2).await);
    let sns = aws_sdk_sns::Client::new(&conf);
    let iam = aws_sdk_iam::Client::new(&conf);

    // The trail delivers to the log group, through the role, which CloudTrail may assume and
    // which may only write the group's streams.
    let t = emu
        .cloudtrail_client()
        .get_trail()
        .name("org-trail")
        .send()
        .await
        .unwrap();
    let t = t.trail().unwrap();
    let group_arn = t
        .cloud_watch_logs_log_group_arn()
        .expect("delivered to CloudWatch Logs");
    assert!(
        group_arn.ends_with(":log-group:aws-cloudtrail-logs-org-trail:*"),
        "{group_arn}"
    );
    assert!(
        t.cloud_watch_logs_role_arn()
            .unwrap()
            .ends_with(":role/org-trail-cloudwatch-logs")
    );
    let group = logs
        .describe_log_groups()
        .log_group_name_prefix("aws-cloudtrail-logs-org-trail")
        .send()
        .await
        .unwrap();
    assert_eq!(group.log_groups()[0].retention_in_days(), Some(365));
    let role = iam
        .get_role()
        .role_name("org-trail-cloudwatch-logs")
        .send()
        .await
        .unwrap();
    let trust = landing_zone_operator::aws::iam::url_decode(
        role.role().unwrap().assume_role_policy_document().unwrap(),
    );
    // CloudTrail, with no condition: it sends no aws:SourceArn to this role (the realism layer
    // refuses a trust that asks for one, as AWS does).
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&trust).unwrap(),
        landing_zone_operator::reconcile::audit_trail::detection::role_trust()
    );
    let policy = iam
        .get_role_policy()
        .role_name("org-trail-cloudwatch-logs")
        .policy_name("cloudtrail-to-cloudwatch-logs")
        .send()
        .await
        .unwrap();
    let policy = landing_zone_operator::aws::iam::url_decode(policy.policy_document());
    assert!(
        policy.contains("logs:PutLogEvents") && !policy.contains("\"*\""),
        "{policy}"
    );

    // Fifteen CIS filters, an alarm on each and one on the bill, all to the topic.
    let filters = logs
        .describe_metric_filters()
        .log_group_name("aws-cloudtrail-logs-org-trail")
        .send()
        .await
        .unwrap();
    assert_eq!(filters.metric_filters().len(), 15);
    let root = filters
        .metric_filters()
        .iter()
        .find(|f| f.filter_name() == Some("org-trail-cis-4.3-root-usage"))
        .expect("CIS 4.3");
    assert!(
        root.filter_pattern()
            .unwrap()
            .contains("$.userIdentity.invokedBy NOT EXISTS")
    );
    let alarms = cw
        .describe_alarms()
        .alarm_name_prefix("org-trail-")
        .send()
        .await
        .unwrap();
    assert_eq!(alarms.metric_alarms().len(), 16);
    let topic = "arn:aws:sns:us-east-1:123456789012:landing-zone-security-alarms";
    assert!(
        alarms
            .metric_alarms()
            .iter()
            .all(|a| a.alarm_actions() == [topic.to_string()]),
        "every alarm publishes to the topic"
    );
    // The topic is encrypted with the operator's key, which rotates.
    let attrs = sns
        .get_topic_attributes()
        .topic_arn(topic)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs
            .attributes()
            .unwrap()
            .get("KmsMasterKeyId")
            .map(String::as_str),
        Some("alias/landing-zone-security-alarms")
    );
    let kms = aws_sdk_kms::Client::new(&conf);
    let key = kms
        .describe_key()
        .key_id("alias/landing-zone-security-alarms")
        .send()
        .await
        .unwrap();
    let rotation = kms
        .get_key_rotation_status()
        .key_id(key.key_metadata().unwrap().key_id())
        .send()
        .await
        .unwrap();
    assert!(rotation.key_rotation_enabled());

    // The mailbox has AWS's confirmation mail: pending, and not subscribed again on the next pass.
    let s = status(&state);
    assert_eq!(
        s["alarms"]["subscriptions"][0]["state"], "PendingConfirmation",
        "{s}"
    );
    assert_eq!(s["alarms"]["alarms"].as_array().unwrap().len(), 16);
    let again = apply(&emu, &proxy, dir.path(), &state).await;
    let p = report(&again, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert!(p.writes == 0 && p.drift.is_empty(), "{p:?}");
    assert_eq!(
        proxy.count("Subscribe"),
        1,
        "a pending mailbox is never subscribed again"
    );
    assert!(
        matches!(
            &p.ready,
            landing_zone_operator::reconcile::Readiness::Ready {
                reason: "SubscriptionPendingConfirmation",
                ..
            }
        ),
        "{:?}",
        p.ready
    );

    // By hand: a filter deleted, an alarm firing, the mailbox confirmed.
    logs.delete_metric_filter()
        .log_group_name("aws-cloudtrail-logs-org-trail")
        .filter_name("org-trail-cis-4.3-root-usage")
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name("org-trail-cis-4.15-organizations-changes")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("LeaveOrganization in the trail")
        .send()
        .await
        .unwrap();
    proxy.confirm_subscription("security-team@example.com");
    let third = apply(&emu, &proxy, dir.path(), &state).await;
    let p = report(&third, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(
        p.writes, 1,
        "the filter put back, nothing else: {:?}",
        p.actions
    );
    assert_eq!(p.drift[0].field, "alarms.cis.RootUsage.metricFilter");
    assert_eq!(p.drift[0].observed, "deleted");
    match &p.ready {
        landing_zone_operator::reconcile::Readiness::Ready { reason, message } => {
            assert_eq!(*reason, "SecurityAlarm");
            assert!(
                message.contains("CIS 4.15 OrganizationsChanges"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let s = status(&state);
    assert_eq!(s["alarms"]["inAlarm"], 1, "{s}");
    assert_eq!(s["alarms"]["subscriptions"][0]["state"], "Confirmed");
    let filters = logs
        .describe_metric_filters()
        .log_group_name("aws-cloudtrail-logs-org-trail")
        .send()
        .await
        .unwrap();
    assert_eq!(filters.metric_filters().len(), 15, "put back");

    // The alarm cleared: what is left is the billing alarm's blind spot. The emulator, like an
    // account without billing alerts, has no AWS/Billing EstimatedCharges metric: said in Ready.
    cw.set_alarm_state()
        .alarm_name("org-trail-cis-4.15-organizations-changes")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("reviewed")
        .send()
        .await
        .unwrap();
    let ready_after =
        |run: &landing_zone_operator::cli::RunResult| match &report(run, "AuditTrail", "org-trail")
            .result
            .as_ref()
            .unwrap()
            .ready
        {
            landing_zone_operator::reconcile::Readiness::Ready { reason, message } => {
                (reason.to_string(), message.clone())
            }
            other => panic!("{other:?}"),
        };
    let fourth = apply(&emu, &proxy, dir.path(), &state).await;
    let (reason, message) = ready_after(&fourth);
    assert_eq!(reason, "BillingAlertsOff", "{message}");
    assert!(
        message.contains("Receive CloudWatch billing alerts"),
        "{message}"
    );
    // Billing alerts on: AWS publishes the metric (here, put as AWS would).
    cw.put_metric_data()
        .namespace("AWS/Billing")
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name("EstimatedCharges")
                .value(12.0)
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("Currency")
                        .value("USD")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fifth = apply(&emu, &proxy, dir.path(), &state).await;
    assert_eq!(ready_after(&fifth).0, "Logging");
}

/// A role left with the trust this operator wrote before (CloudTrail, on condition of the trail's
/// `aws:SourceArn`, which CloudTrail does not send for this role): reported as drift, corrected,
/// and the trail created in the same run, through IAM's lag on the change.
#[tokio::test]
async fn a_role_with_the_trust_written_before_is_corrected_and_the_trail_delivers() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        trail_policy_lag: Duration::from_secs(2),
        ..Default::default()
    });
    let conf = emu.sdk_config_via(&emu.endpoint, 2).await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let (account, _) = emu.management_account_and_org().await;
    let old_trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceArn": format!("arn:aws:cloudtrail:us-east-1:{account}:trail/org-trail")}}}]});
    iam.create_role()
        .role_name("org-trail-cloudwatch-logs")
        .assume_role_policy_document(old_trust.to_string())
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trail.yaml"), TRAIL).unwrap();
    let state = dir.path().join("state.json");
    let run = apply(&emu, &proxy, dir.path(), &state).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let p = report(&run, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert!(
        p.drift
            .iter()
            .any(|d| d.field == "cloudWatchLogs.role.trust"),
        "{:?}",
        p.drift
    );
    let t = emu
        .cloudtrail_client()
        .get_trail()
        .name("org-trail")
        .send()
        .await
        .unwrap();
    assert!(
        t.trail()
            .and_then(|t| t.cloud_watch_logs_role_arn())
            .is_some_and(|r| r.ends_with(":role/org-trail-cloudwatch-logs"))
    );
}

/// A topic key CloudWatch cannot use, named by id or ARN where admission cannot see what it is
/// (the AWS managed `aws/sns` key, which KMS describes as AWS's in the realism layer as in AWS;
/// a customer key whose policy leaves CloudWatch out): refused with what to change, no topic
/// made with it, the trail logging all the same. A key whose policy admits CloudWatch is used.
#[tokio::test]
async fn a_topic_key_cloudwatch_cannot_use_is_refused_and_the_trail_still_logs() {
    use landing_zone_tests::proxy::AWS_SNS_KEY_ID;
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    let conf = emu.sdk_config_via(&emu.endpoint, 2).await;
    let kms = aws_sdk_kms::Client::new(&conf);
    let (account, _) = emu.management_account_and_org().await;
    let key_with = |policy: serde_json::Value| {
        let kms = kms.clone();
        async move {
            kms.create_key()
                .policy(policy.to_string())
                .send()
                .await
                .unwrap()
                .key_metadata()
                .unwrap()
                .arn()
                .unwrap()
                .to_string()
        }
    };
    let account_only = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"}]});
    let mut with_cloudwatch = account_only.clone();
    with_cloudwatch["Statement"].as_array_mut().unwrap().push(
        serde_json::json!({"Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}),
    );
    let without = key_with(account_only).await;
    let usable = key_with(with_cloudwatch).await;
    let trail = |key: &str| {
        format!(
            "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {{name: org-trail}}\nspec:\n  trailName: org-trail\n  s3: {{bucketName: keyed-audit-logs, create: true}}\n  cloudWatchLogs: {{}}\n  alarms:\n    topic: {{name: keyed-alarms, kmsKeyId: \"{key}\"}}\n    cis: [RootUsage]\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    for (named, expect) in [
        (AWS_SNS_KEY_ID.to_string(), "is an AWS managed key"),
        (
            format!("arn:aws:kms:us-east-1:{account}:key/{AWS_SNS_KEY_ID}"),
            "is an AWS managed key",
        ),
        (
            format!("arn:aws:kms:us-east-1:{account}:alias/aws/sns"),
            "is an AWS managed key",
        ),
        (
            without.clone(),
            "does not allow cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*",
        ),
    ] {
        std::fs::write(dir.path().join("trail.yaml"), trail(&named)).unwrap();
        let run = apply(&emu, &proxy, dir.path(), &state).await;
        let p = report(&run, "AuditTrail", "org-trail")
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{named}: {e}"));
        match &p.ready {
            landing_zone_operator::reconcile::Readiness::NotReady {
                reason: "AlarmTopicKeyUnusable",
                message,
            } => assert!(
                message.contains(expect) && message.contains("leave kmsKeyId out"),
                "{named}: {message}"
            ),
            other => panic!("{named}: {other:?}"),
        }
        assert_eq!(proxy.count("CreateTopic"), 0, "{named}: no topic with it");
        assert_eq!(proxy.count("PutMetricAlarm"), 0, "{named}: no alarm to it");
        let logging = emu
            .cloudtrail_client()
            .get_trail_status()
            .name("org-trail")
            .send()
            .await
            .unwrap()
            .is_logging();
        assert_eq!(logging, Some(true), "{named}: the trail logs all the same");
    }

    std::fs::write(dir.path().join("trail.yaml"), trail(&usable)).unwrap();
    let run = apply(&emu, &proxy, dir.path(), &state).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let p = report(&run, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert!(
        matches!(
            p.ready,
            landing_zone_operator::reconcile::Readiness::Ready { .. }
        ),
        "{:?}",
        p.ready
    );
    assert_eq!(proxy.count("CreateTopic"), 1);
}

/// CloudWatch publishes an alarm to its encrypted topic only if the topic's KMS key lets it (the
/// realism layer evaluates the key policy when an alarm enters ALARM, as the SNS page documents
/// it; AWS fails the action silently). The key the operator makes lets it; with CloudWatch's
/// statement removed by hand the notification is refused, the reconcile reports the key policy
/// as drift and puts it back, and the next alarm is published.
#[tokio::test]
async fn an_alarm_reaches_its_topic_only_while_the_key_lets_cloudwatch_use_it() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trail.yaml"), TRAIL).unwrap();
    let state = dir.path().join("state.json");
    let run = apply(&emu, &proxy, dir.path(), &state).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let cw = aws_sdk_cloudwatch::Client::new(&emu.sdk_config_via(&proxy.endpoint, 2).await);
    let alarm = "org-trail-cis-4.3-root-usage";
    let fire = || async {
        cw.set_alarm_state()
            .alarm_name(alarm)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("the root user signed in")
            .send()
            .await
            .unwrap();
        proxy
            .alarm_notifications()
            .last()
            .cloned()
            .unwrap_or_default()
    };
    let (account, _) = emu.management_account_and_org().await;
    let topic = format!("arn:aws:sns:us-east-1:{account}:landing-zone-security-alarms");
    assert_eq!(fire().await, format!("{alarm} to {topic}: published"));

    let kms = aws_sdk_kms::Client::new(&emu.sdk_config_via(&emu.endpoint, 2).await);
    let key = kms
        .describe_key()
        .key_id("alias/landing-zone-security-alarms")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let admin_only = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"}]});
    kms.put_key_policy()
        .key_id(&key)
        .policy_name("default")
        .policy(admin_only.to_string())
        .send()
        .await
        .unwrap();
    let refused = fire().await;
    assert!(
        refused.contains("refused") && refused.contains("cloudwatch.amazonaws.com"),
        "{refused}"
    );

    let run = apply(&emu, &proxy, dir.path(), &state).await;
    let p = report(&run, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert!(
        p.drift
            .iter()
            .any(|d| d.field == "alarms.topic.key.us-east-1.policy"),
        "{:?}",
        p.drift
    );
    assert_eq!(fire().await, format!("{alarm} to {topic}: published"));
    let again = apply(&emu, &proxy, dir.path(), &state).await;
    let p = report(&again, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(p.writes, 0, "kept: {:?}", p.actions);
}
