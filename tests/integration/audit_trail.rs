//! AuditTrail against the emulator: trusted access, the bucket with its safeguards and policy, the
//! trail's flags, logging restarted when stopped out of band, deletion policies. The emulator never
//! reports a delivery error nor checks a bucket policy: the realism layer reports one, and the
//! policy's content is checked here.

use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::operator::wait_for;
use landing_zone_tests::proxy::{AwsProxy, Realism};
use landing_zone_tests::{Emulator, assert_readable, report, run_dir};
use std::time::Duration;

const TRAIL: &str = "apiVersion: landingzone.dev/v1alpha1
kind: AuditTrail
metadata: {name: org-trail}
spec:
  trailName: org-trail
  deletionPolicy: POLICY
  s3:
    bucketName: BUCKET
    keyPrefix: audit
    create: CREATE
    lifecycle: {transitionToGlacierDays: 90, expireDays: 2555}
";

fn trail_yaml(bucket: &str, create: bool, policy: &str) -> String {
    TRAIL
        .replace("BUCKET", bucket)
        .replace("CREATE", &create.to_string())
        .replace("POLICY", policy)
}

/// The policy CloudTrail needs on a bucket the operator does not own, for `org-trail` under the
/// `audit` prefix (the operator's own, as its owner would put it).
async fn cloudtrail_policy(emu: &Emulator, bucket: &str) -> serde_json::Value {
    let org = emu
        .org_client()
        .describe_organization()
        .send()
        .await
        .unwrap();
    let org = org.organization().unwrap();
    let account = org.master_account_id().unwrap();
    landing_zone_operator::reconcile::audit_trail::plan::bucket_policy(
        "aws",
        bucket,
        Some("audit"),
        &format!("arn:aws:cloudtrail:us-east-1:{account}:trail/org-trail"),
        account,
        org.id().unwrap(),
    )
}

async fn put_cloudtrail_policy(emu: &Emulator, bucket: &str) {
    emu.s3_client()
        .put_bucket_policy()
        .bucket(bucket)
        .policy(cloudtrail_policy(emu, bucket).await.to_string())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn trail_bucket_and_logging_are_set_up_and_kept_that_way() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.yaml");
    std::fs::write(&file, trail_yaml("audit-logs-1", true, "Retain")).unwrap();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:?}", first.reports);

    // Trusted access for CloudTrail in the Organization.
    let access = emu
        .org_client()
        .list_aws_service_access_for_organization()
        .send()
        .await
        .unwrap();
    assert!(
        access
            .enabled_service_principals()
            .iter()
            .any(|p| p.service_principal() == Some("cloudtrail.amazonaws.com"))
    );
    // The trail, with every flag of the practice.
    let ct = emu.cloudtrail_client();
    let t = ct.get_trail().name("org-trail").send().await.unwrap();
    let t = t.trail().unwrap();
    assert_eq!(
        (
            t.is_multi_region_trail(),
            t.is_organization_trail(),
            t.log_file_validation_enabled(),
            t.include_global_service_events()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    assert_eq!(
        (t.s3_bucket_name(), t.s3_key_prefix()),
        (Some("audit-logs-1"), Some("audit"))
    );
    assert_eq!(
        ct.get_trail_status()
            .name("org-trail")
            .send()
            .await
            .unwrap()
            .is_logging(),
        Some(true)
    );
    // The bucket: public access blocked, encrypted, with a policy for exactly this trail.
    let s3 = emu.s3_client();
    let pab = s3
        .get_public_access_block()
        .bucket("audit-logs-1")
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let enc = s3
        .get_bucket_encryption()
        .bucket("audit-logs-1")
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let policy = s3
        .get_bucket_policy()
        .bucket("audit-logs-1")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let org = emu
        .org_client()
        .describe_organization()
        .send()
        .await
        .unwrap();
    let org_id = org.organization().unwrap().id().unwrap().to_string();
    let arn = "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail";
    let statements = policy["Statement"].as_array().unwrap();
    let by_sid = |sid: &str| {
        statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no {sid}"))
            .clone()
    };
    assert_eq!(by_sid("AWSCloudTrailAclCheck")["Action"], "s3:GetBucketAcl");
    assert_eq!(
        by_sid("AWSCloudTrailWrite")["Resource"],
        "arn:aws:s3:::audit-logs-1/audit/AWSLogs/123456789012/*"
    );
    assert_eq!(
        by_sid("AWSCloudTrailOrganizationWrite")["Resource"],
        format!("arn:aws:s3:::audit-logs-1/audit/AWSLogs/{org_id}/*")
    );
    for sid in [
        "AWSCloudTrailAclCheck",
        "AWSCloudTrailWrite",
        "AWSCloudTrailOrganizationWrite",
    ] {
        assert_eq!(
            by_sid(sid)["Condition"]["StringEquals"]["aws:SourceArn"],
            arn,
            "{sid}"
        );
    }
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket("audit-logs-1")
        .send()
        .await
        .unwrap();
    let r = &lifecycle.rules()[0];
    assert_eq!(
        (r.transitions()[0].days(), r.expiration().unwrap().days()),
        (Some(90), Some(2555))
    );

    // In sync: a second apply writes nothing.
    let again = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        again.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        again.metrics.aws_call_counts()
    );

    // Logging stopped out of band: drift, and restarted.
    ct.stop_logging().name("org-trail").send().await.unwrap();
    let fix = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let p = report(&fix, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(
        p.drift.iter().map(|d| d.field.as_str()).collect::<Vec<_>>(),
        vec!["isLogging"]
    );
    assert_eq!(p.actions, vec!["start logging"]);
    assert_eq!(
        ct.get_trail_status()
            .name("org-trail")
            .send()
            .await
            .unwrap()
            .is_logging(),
        Some(true)
    );

    // Retain: removing the resource leaves the trail.
    std::fs::remove_file(&file).unwrap();
    let pruned = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert_eq!(pruned.metrics.aws_calls_of_kind("write"), 0);
    assert!(ct.get_trail().name("org-trail").send().await.is_ok());
}

#[tokio::test]
async fn a_bucket_the_operator_does_not_own_is_never_modified_and_delete_keeps_it() {
    let emu = Emulator::start().await;
    let s3 = emu.s3_client();
    s3.create_bucket()
        .bucket("team-bucket")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.yaml");
    std::fs::write(&file, trail_yaml("team-bucket", false, "Delete")).unwrap();
    let state = dir.path().join("state.json");
    // Without CloudTrail's policy, CloudTrail (the realism layer, as AWS documents) refuses the
    // bucket: said plainly, the bucket left alone.
    let refused = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let err = report(&refused, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "InsufficientBucketPolicy", "{err}");
    assert!(err.to_string().contains("s3.create: true"), "{err}");
    // Its owner gives it the policy CloudTrail needs.
    put_cloudtrail_policy(&emu, "team-bucket").await;
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let s3_writes: u64 = run
        .metrics
        .aws_call_counts()
        .iter()
        .filter(|((svc, _), (kind, _))| svc == "s3" && kind == "write")
        .map(|(_, (_, n))| n)
        .sum();
    assert_eq!(
        s3_writes, 0,
        "not one write to a bucket the spec does not own"
    );
    assert_eq!(
        s3.get_bucket_policy()
            .bucket("team-bucket")
            .send()
            .await
            .unwrap()
            .policy(),
        Some(
            cloudtrail_policy(&emu, "team-bucket")
                .await
                .to_string()
                .as_str()
        ),
        "the owner's policy, unchanged"
    );

    // Delete: the trail goes, the bucket (and its logs) stay.
    std::fs::remove_file(&file).unwrap();
    let pruned = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert!(!pruned.failed(), "{:?}", pruned.deletions);
    let trails = emu.cloudtrail_client().list_trails().send().await.unwrap();
    assert!(
        trails
            .trails()
            .iter()
            .all(|t| t.name() != Some("org-trail"))
    );
    assert!(s3.head_bucket().bucket("team-bucket").send().await.is_ok());

    // A bucket that does not exist and is not the operator's to create: a clear error.
    std::fs::write(&file, trail_yaml("no-such-bucket", false, "Retain")).unwrap();
    let missing = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let err = report(&missing, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "BucketNotFound");
    assert!(err.to_string().contains("s3.create: true"), "{err}");
}

#[tokio::test]
async fn a_delivery_error_makes_the_trail_not_ready() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trail.yaml"),
        trail_yaml("audit-logs-2", true, "Retain"),
    )
    .unwrap();
    let state = dir.path().join("state.json");
    run_dir(ports.clone(), dir.path(), &state, true, false).await;
    proxy.realism(Realism {
        trail_delivery_error: Some("AccessDenied".into()),
        ..Default::default()
    });
    let run = run_dir(ports, dir.path(), &state, true, false).await;
    let p = report(&run, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert!(
        matches!(&p.ready, Readiness::NotReady { reason: "DeliveryFailing", message } if message.contains("AccessDenied")),
        "{:?}",
        p.ready
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        doc["resources"]["AuditTrail/org-trail"]["status"]["latestDeliveryError"],
        "AccessDenied"
    );
}

/// A trail whose bucket lives in another account (403 on HeadBucket) or region (301), with
/// `s3.create: false`: logged into as it is, no error. With `s3.create: true` the operator says
/// it cannot own that bucket.
#[tokio::test]
async fn a_bucket_in_another_account_or_region_is_used_as_it_is() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    // The bucket exists (CloudTrail in the emulator needs it) but answers HEAD as AWS does for
    // another account's bucket.
    emu.s3_client()
        .create_bucket()
        .bucket("central-logs")
        .send()
        .await
        .unwrap();
    put_cloudtrail_policy(&emu, "central-logs").await;
    for status in [403u16, 301] {
        proxy.realism(Realism {
            head_bucket: [("central-logs".to_string(), status)].into(),
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("trail.yaml"),
            trail_yaml("central-logs", false, "Retain"),
        )
        .unwrap();
        let state = dir.path().join("state.json");
        let ports = emu.ports_via(&proxy.endpoint, 2).await;
        let run = run_dir(ports, dir.path(), &state, true, false).await;
        assert_readable(&run);
        assert!(!run.failed(), "HEAD {status}: {:?}", run.reports);
        assert_eq!(proxy.count("PutBucketPolicy"), 0, "not ours: never changed");

        std::fs::write(
            dir.path().join("trail.yaml"),
            trail_yaml("central-logs", true, "Retain"),
        )
        .unwrap();
        let ports = emu.ports_via(&proxy.endpoint, 2).await;
        let run = run_dir(ports, dir.path(), &state, true, false).await;
        assert_readable(&run);
        let err = report(&run, "AuditTrail", "org-trail")
            .result
            .as_ref()
            .unwrap_err();
        assert_eq!(err.reason(), "BucketNotOwned", "{err}");
        assert!(err.to_string().contains("s3.create: false"), "{err}");
    }
}

/// CloudTrail sees a new bucket policy and trusted access only some seconds after they were set
/// (InsufficientS3BucketPolicyException / CloudTrailAccessNotEnabledException meanwhile), and
/// reports the KMS key as its full ARN: the trail is still created in one run, and the ARN is
/// not drift.
#[tokio::test]
async fn cloudtrail_lag_and_the_kms_key_arn_are_taken_in_stride() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    // CloudTrail lags until it has refused a CreateTrail, however long the calls before it take.
    proxy.realism(Realism {
        trail_policy_lag: Duration::from_secs(3600),
        trail_kms_key_as_arn: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trail.yaml"),
        trail_yaml("audit-logs-kms", true, "Retain").replace(
            "  trailName: org-trail\n",
            "  trailName: org-trail\n  kmsKeyId: 1234abcd-12ab-34cd-56ef-1234567890ab\n",
        ),
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let catch_up = async {
        wait_for(Duration::from_secs(60), "a CreateTrail refused", || {
            (proxy.count("CreateTrail") >= 1).then_some(())
        })
        .await;
        proxy.update_realism(|r| r.trail_policy_lag = Duration::ZERO);
    };
    let (run, ()) = tokio::join!(run_dir(ports, dir.path(), &state, true, false), catch_up);
    assert_readable(&run);
    assert!(!run.failed(), "{:?}", run.reports);
    assert!(
        proxy.count("CreateTrail") >= 2,
        "refused while CloudTrail lagged, then created"
    );
    let t = emu
        .cloudtrail_client()
        .get_trail()
        .name("org-trail")
        .send()
        .await
        .unwrap();
    assert!(
        t.trail().unwrap().kms_key_id().is_some(),
        "the trail is encrypted with the key"
    );
    let again = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        dir.path(),
        &state,
        true,
        false,
    )
    .await;
    let p = report(&again, "AuditTrail", "org-trail")
        .result
        .as_ref()
        .unwrap();
    assert!(p.drift.is_empty() && p.writes == 0, "{p:?}");
}

/// Log retention really retains: the rule also expires noncurrent versions (the bucket is
/// versioned), and rules others put on the bucket stay.
#[tokio::test]
async fn the_lifecycle_rule_expires_old_versions_and_keeps_other_rules() {
    let emu = Emulator::start().await;
    let s3 = emu.s3_client();
    s3.create_bucket()
        .bucket("audit-logs-lc")
        .send()
        .await
        .unwrap();
    let theirs = aws_sdk_s3::types::LifecycleRule::builder()
        .id("someone-elses")
        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
        .filter(
            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                .prefix("tmp/")
                .build(),
        )
        .expiration(
            aws_sdk_s3::types::LifecycleExpiration::builder()
                .days(7)
                .build(),
        )
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket("audit-logs-lc")
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(theirs)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trail.yaml"),
        trail_yaml("audit-logs-lc", true, "Retain"),
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket("audit-logs-lc")
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = rules.rules().iter().filter_map(|r| r.id()).collect();
    assert!(ids.contains(&"someone-elses"), "{ids:?}");
    let ours = rules
        .rules()
        .iter()
        .find(|r| r.id() == Some("landing-zone-audit-trail"))
        .expect("our rule");
    assert_eq!(
        ours.noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days()),
        Some(2555)
    );
    let again = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        report(&again, "AuditTrail", "org-trail")
            .result
            .as_ref()
            .unwrap()
            .writes,
        0
    );
}
