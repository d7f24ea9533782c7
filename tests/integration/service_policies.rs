//! The realism layer's policy evaluation (IAM's logic, `proxy::policy`) on its own: the rules the
//! service checks below stand on.

use landing_zone_tests::proxy::policy::{Decision, Request, evaluate, wildcard};
use serde_json::{Value, json};

fn cloudtrail_assumes() -> Request {
    Request::by_service(
        "cloudtrail.amazonaws.com",
        "sts:AssumeRole",
        "arn:aws:iam::111111111111:role/r",
    )
}

#[test]
fn a_condition_on_a_key_the_request_lacks_is_false_and_denies() {
    let trust = |condition: Value| {
        json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "sts:AssumeRole", "Condition": condition}]})
    };
    let source = json!({"StringEquals": {"aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111111111111:trail/t"}});
    let cases = [
        (json!(null), cloudtrail_assumes(), Decision::Allow),
        (source.clone(), cloudtrail_assumes(), Decision::ImplicitDeny),
        (
            source.clone(),
            cloudtrail_assumes().with(
                "aws:SourceArn",
                "arn:aws:cloudtrail:us-east-1:111111111111:trail/t",
            ),
            Decision::Allow,
        ),
        (
            json!({"StringEqualsIfExists": {"aws:SourceArn": "x"}}),
            cloudtrail_assumes(),
            Decision::Allow,
        ),
        (
            json!({"StringNotEquals": {"aws:SourceAccount": "222222222222"}}),
            cloudtrail_assumes(),
            Decision::Allow,
        ),
        (
            json!({"Null": {"aws:SourceArn": "false"}}),
            cloudtrail_assumes(),
            Decision::ImplicitDeny,
        ),
        (
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:cloudtrail:*:111111111111:trail/*"}}),
            cloudtrail_assumes().with(
                "aws:SourceArn",
                "arn:aws:cloudtrail:eu-west-1:111111111111:trail/x",
            ),
            Decision::Allow,
        ),
    ];
    for (i, (condition, request, want)) in cases.into_iter().enumerate() {
        assert_eq!(evaluate(&trust(condition), &request), want, "case {i}");
    }
}

#[test]
fn principal_action_resource_and_deny_decide_as_iam_does() {
    let policy = json!({"Statement": [
        {"Sid": "Write", "Effect": "Allow", "Principal": {"Service": ["cloudtrail.amazonaws.com"]},
         "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/AWSLogs/111111111111/*"},
        {"Sid": "Tls", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]});
    let put = |service: &str, key: &str| {
        Request::by_service(service, "S3:PutObject", &format!("arn:aws:s3:::b/{key}"))
            .with("aws:SecureTransport", "true")
    };
    assert_eq!(
        evaluate(
            &policy,
            &put("cloudtrail.amazonaws.com", "AWSLogs/111111111111/x.json.gz")
        ),
        Decision::Allow
    );
    assert_eq!(
        evaluate(
            &policy,
            &put("config.amazonaws.com", "AWSLogs/111111111111/x")
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate(
            &policy,
            &put("cloudtrail.amazonaws.com", "AWSLogs/222222222222/x")
        ),
        Decision::ImplicitDeny
    );
    let plain = put("cloudtrail.amazonaws.com", "AWSLogs/111111111111/x")
        .with("aws:SecureTransport", "false");
    assert_eq!(
        evaluate(&policy, &plain),
        Decision::ExplicitDeny("Tls".into())
    );
    assert!(wildcard("a*b?d", "aXXbcd") && !wildcard("a*b?d", "aXXbd"));
}

/// A role's own policies (identity-based: no principal) judge what a service does with the role,
/// e.g. EventBridge forwarding to another region's bus: they apply to the role's session, and a
/// statement naming a principal is no identity-based statement.
#[test]
fn identity_policies_apply_to_the_role_that_holds_them() {
    let bus = "arn:aws:events:eu-west-1:111111111111:event-bus/default";
    let put = Request::by_identity(
        "arn:aws:iam::111111111111:role/fwd",
        "events:PutEvents",
        bus,
    );
    let policy = |resource: &str| json!({"Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": resource}]});
    assert_eq!(evaluate(&policy(bus), &put), Decision::Allow);
    assert_eq!(
        evaluate(
            &policy("arn:aws:events:us-east-1:111111111111:event-bus/default"),
            &put
        ),
        Decision::ImplicitDeny
    );
    let with_principal = json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "events:PutEvents", "Resource": bus}]});
    assert_eq!(evaluate(&with_principal, &put), Decision::ImplicitDeny);
    // And a trust (resource-based, naming principals) does not speak for the role's session.
    let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sts:AssumeRole"}]});
    assert_eq!(
        evaluate(
            &trust,
            &Request::by_service(
                "events.amazonaws.com",
                "sts:AssumeRole",
                "arn:aws:iam::111111111111:role/fwd"
            )
        ),
        Decision::Allow
    );
}

/// CloudTrail through the realism layer judges the role and the bucket the way AWS documents
/// (`proxy::cloudtrail::service_checks`): the trust this operator used to write for the
/// CloudWatch Logs role (`aws:SourceArn`, a key CloudTrail does not send for that role) is refused
/// with AWS's `InvalidCloudWatchLogsRoleArnException`; the trust it writes now is taken; a bucket
/// without CloudTrail's policy is refused, the operator's policy taken.
#[tokio::test]
async fn cloudtrail_takes_the_role_and_bucket_the_operator_writes_and_refuses_the_old_trust() {
    use landing_zone_operator::reconcile::audit_trail::{detection, plan};
    let emu = landing_zone_tests::Emulator::start().await;
    let conf = emu.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let iam = aws_sdk_iam::Client::new(&conf);
    let ct = aws_sdk_cloudtrail::Client::new(&conf);
    let (account, org_id) = emu.management_account_and_org().await;
    let (account, org_id) = (account.as_str(), org_id.as_str());
    let bucket = "trail-policy-checks";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let trail_arn = format!("arn:aws:cloudtrail:us-east-1:{account}:trail/org-trail");
    let old_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}}}]});
    let role = iam
        .create_role()
        .role_name("org-trail-cloudwatch-logs")
        .assume_role_policy_document(old_trust.to_string())
        .send()
        .await
        .unwrap();
    let role_arn = role.role().unwrap().arn().to_string();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
    logs.create_log_group()
        .log_group_name("org-trail")
        .send()
        .await
        .unwrap();
    let group_arn = format!("arn:aws:logs:us-east-1:{account}:log-group:org-trail:*");
    let create = || {
        ct.create_trail()
            .name("org-trail")
            .s3_bucket_name(bucket)
            .s3_key_prefix("audit")
            .is_multi_region_trail(true)
            .is_organization_trail(true)
            .cloud_watch_logs_log_group_arn(&group_arn)
            .cloud_watch_logs_role_arn(&role_arn)
            .send()
    };
    let code = |e: aws_sdk_cloudtrail::error::SdkError<_>| {
        aws_sdk_cloudtrail::error::ProvideErrorMetadata::code(&e)
            .unwrap_or_default()
            .to_string()
    };

    let refused = create().await.map_err(code).unwrap_err();
    assert_eq!(refused, "InvalidCloudWatchLogsRoleArnException");

    iam.update_assume_role_policy()
        .role_name("org-trail-cloudwatch-logs")
        .policy_document(detection::role_trust().to_string())
        .send()
        .await
        .unwrap();
    let no_bucket_policy = create().await.map_err(code).unwrap_err();
    assert_eq!(no_bucket_policy, "InsufficientS3BucketPolicyException");

    // A policy for another trail: aws:SourceArn is what CloudTrail sends to the bucket, and it
    // must be this trail's.
    let other = plan::bucket_policy(
        "aws",
        bucket,
        Some("audit"),
        &format!("arn:aws:cloudtrail:us-east-1:{account}:trail/another"),
        account,
        org_id,
    );
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(other.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        create().await.map_err(code).unwrap_err(),
        "InsufficientS3BucketPolicyException"
    );

    let policy = plan::bucket_policy("aws", bucket, Some("audit"), &trail_arn, account, org_id);
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    create()
        .await
        .expect("CloudTrail takes the operator's role and bucket");
}
