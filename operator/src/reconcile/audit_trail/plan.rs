//! AuditTrail: desired + observed → actions and drift (pure): trusted access, the bucket (only
//! when the spec asks the operator to own it), the trail's flags, and logging.

use crate::api::Drift;
use crate::aws::cloudtrail::{BucketLifecycle, BucketState, TrailInfo, TrailStatus};
use crate::reconcile::Error;
use serde_json::{Value, json};

pub const CLOUDTRAIL_PRINCIPAL: &str = "cloudtrail.amazonaws.com";

#[derive(Clone, Debug)]
pub struct Desired {
    pub trail: TrailInfo,
    /// The operator creates and configures the bucket (`s3.create`).
    pub own_bucket: bool,
    pub lifecycle: Option<BucketLifecycle>,
    pub bucket_policy: Value,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub trusted_access: bool,
    /// `None` when the bucket does not exist.
    pub bucket: Option<BucketState>,
    pub trail: Option<TrailInfo>,
    pub status: Option<TrailStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    EnableTrustedAccess,
    CreateBucket,
    BlockPublicAccess,
    PutEncryption,
    EnableVersioning,
    PutBucketPolicy,
    PutLifecycle,
    CreateTrail,
    UpdateTrail,
    StartLogging,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::EnableTrustedAccess => "enable CloudTrail trusted access in the Organization",
            Action::CreateBucket => "create the bucket",
            Action::BlockPublicAccess => "block public access to the bucket",
            Action::PutEncryption => "turn on default encryption",
            Action::EnableVersioning => "turn on versioning",
            Action::PutBucketPolicy => "set the CloudTrail bucket policy",
            Action::PutLifecycle => "set the lifecycle rule",
            Action::CreateTrail => "create the trail",
            Action::UpdateTrail => "update the trail",
            Action::StartLogging => "start logging",
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
}

/// The bucket policy CloudTrail needs for an organization trail, restricted to this trail
/// (`aws:SourceArn`) and to TLS.
pub fn bucket_policy(
    partition: &str,
    bucket: &str,
    prefix: Option<&str>,
    trail_arn: &str,
    management_account: &str,
    org_id: &str,
) -> Value {
    let base = match prefix {
        Some(p) if !p.is_empty() => {
            format!(
                "arn:{partition}:s3:::{bucket}/{}/AWSLogs",
                p.trim_matches('/')
            )
        }
        _ => format!("arn:{partition}:s3:::{bucket}/AWSLogs"),
    };
    let write = |sid: &str, account: &str| {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL_PRINCIPAL},
            "Action": "s3:PutObject",
            "Resource": format!("{base}/{account}/*"),
            "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail_arn}},
        })
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AWSCloudTrailAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDTRAIL_PRINCIPAL},
                "Action": "s3:GetBucketAcl",
                "Resource": format!("arn:{partition}:s3:::{bucket}"),
                "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
            },
            write("AWSCloudTrailWrite", management_account),
            write("AWSCloudTrailOrganizationWrite", org_id),
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:{partition}:s3:::{bucket}"), format!("arn:{partition}:s3:::{bucket}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    })
}

/// A bucket the operator owns (a trail's, AWS Config's): created when missing, then public access
/// blocked, encrypted (SSE-KMS when a key is named, else SSE-S3), versioned, with exactly `policy`.
pub fn owned_bucket(observed: Option<&BucketState>, kms: bool, policy: &Value, policy_name: &str) -> Plan {
    let mut out = Plan::default();
    let Some(b) = observed else {
        out.actions.extend([
            Action::CreateBucket,
            Action::BlockPublicAccess,
            Action::PutEncryption,
            Action::EnableVersioning,
            Action::PutBucketPolicy,
        ]);
        return out;
    };
    if !b.public_access_blocked {
        out.drift.push(Drift::new("s3.publicAccessBlock", "all blocked", "not blocked"));
        out.actions.push(Action::BlockPublicAccess);
    }
    let want_enc = if kms { "aws:kms" } else { "AES256" };
    if b.encryption.as_deref() != Some(want_enc) {
        out.drift.push(Drift::new(
            "s3.encryption",
            want_enc,
            b.encryption.as_deref().unwrap_or("<none>"),
        ));
        out.actions.push(Action::PutEncryption);
    }
    // Unknown (an unreadable answer) is not drift.
    if b.versioning_enabled == Some(false) {
        out.drift.push(Drift::new("s3.versioning", "Enabled", "Suspended or never enabled"));
        out.actions.push(Action::EnableVersioning);
    }
    let have: Option<Value> = b.policy.as_deref().and_then(|p| serde_json::from_str(p).ok());
    if have.as_ref() != Some(policy) {
        out.drift.push(Drift::new(
            "s3.policy",
            policy_name,
            if have.is_some() { "different" } else { "<none>" },
        ));
        out.actions.push(Action::PutBucketPolicy);
    }
    out
}

fn flag(out: &mut Plan, field: &str, want: bool, have: bool) {
    if want != have {
        out.drift.push(Drift::new(field, want, have));
    }
}

pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, Error> {
    let mut out = Plan::default();
    if !observed.trusted_access {
        out.actions.push(Action::EnableTrustedAccess);
    }
    let bucket = &desired.trail.bucket;
    match (&observed.bucket, desired.own_bucket) {
        (None, false) => {
            return Err(Error::conflict(
                "BucketNotFound",
                format!(
                    "bucket {bucket} does not exist: create it with a CloudTrail bucket policy, or set s3.create: true"
                ),
            ));
        }
        (observed, true) => {
            let bucket = owned_bucket(
                observed.as_ref(),
                desired.trail.kms_key_id.is_some(),
                &desired.bucket_policy,
                "CloudTrail organization-trail policy",
            );
            out.actions.extend(bucket.actions);
            out.drift.extend(bucket.drift);
        }
        // A bucket the operator does not own is never changed.
        (Some(_), false) => {}
    }
    if desired.own_bucket {
        let have = observed.bucket.as_ref().and_then(|b| b.lifecycle.clone());
        if let Some(want) = &desired.lifecycle
            && have.as_ref() != Some(want)
        {
            if observed.bucket.is_some() {
                out.drift.push(Drift::new(
                    "s3.lifecycle",
                    format!("{want:?}"),
                    format!("{have:?}"),
                ));
            }
            out.actions.push(Action::PutLifecycle);
        }
    }
    let want = &desired.trail;
    match &observed.trail {
        None => {
            out.actions.push(Action::CreateTrail);
            out.actions.push(Action::StartLogging);
            return Ok(out);
        }
        Some(t) => {
            let before = out.drift.len();
            flag(&mut out, "multiRegion", want.multi_region, t.multi_region);
            flag(
                &mut out,
                "organizationTrail",
                want.organization_trail,
                t.organization_trail,
            );
            flag(
                &mut out,
                "logFileValidation",
                want.log_file_validation,
                t.log_file_validation,
            );
            flag(
                &mut out,
                "includeGlobalServiceEvents",
                want.include_global_service_events,
                t.include_global_service_events,
            );
            if t.bucket != want.bucket {
                out.drift
                    .push(Drift::new("s3.bucketName", &want.bucket, &t.bucket));
            }
            if t.key_prefix != want.key_prefix {
                out.drift.push(Drift::new(
                    "s3.keyPrefix",
                    want.key_prefix.as_deref().unwrap_or(""),
                    t.key_prefix.as_deref().unwrap_or(""),
                ));
            }
            if t.kms_key_id.is_some() != want.kms_key_id.is_some()
                || (want.kms_key_id.is_some()
                    && !t
                        .kms_key_id
                        .as_deref()
                        .unwrap_or("")
                        .ends_with(want.kms_key_id.as_deref().unwrap_or("")))
            {
                out.drift.push(Drift::new(
                    "kmsKeyId",
                    want.kms_key_id.as_deref().unwrap_or("<none>"),
                    t.kms_key_id.as_deref().unwrap_or("<none>"),
                ));
            }
            // Delivery to CloudWatch Logs set up by someone else is left alone without the spec's.
            if want.cloud_watch_logs.is_some() && t.cloud_watch_logs != want.cloud_watch_logs {
                out.drift.push(Drift::new(
                    "cloudWatchLogs",
                    want.cloud_watch_logs.as_ref().map_or("", |c| c.0.as_str()),
                    t.cloud_watch_logs.as_ref().map_or("<none>", |c| c.0.as_str()),
                ));
            }
            if out.drift.len() > before {
                out.actions.push(Action::UpdateTrail);
            }
        }
    }
    if !observed.status.as_ref().is_some_and(|s| s.is_logging) {
        out.drift.push(Drift::new("isLogging", true, false));
        out.actions.push(Action::StartLogging);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail() -> TrailInfo {
        TrailInfo {
            name: "org-trail".into(),
            arn: "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-trail".into(),
            bucket: "audit-logs".into(),
            key_prefix: None,
            kms_key_id: None,
            multi_region: true,
            organization_trail: true,
            log_file_validation: true,
            include_global_service_events: true,
            cloud_watch_logs: None,
        }
    }

    fn policy() -> Value {
        bucket_policy(
            "aws",
            "audit-logs",
            None,
            &trail().arn,
            "123456789012",
            "o-abc",
        )
    }

    fn good_bucket() -> BucketState {
        BucketState {
            public_access_blocked: true,
            encryption: Some("AES256".into()),
            versioning_enabled: Some(true),
            policy: Some(policy().to_string()),
            lifecycle: Some(BucketLifecycle {
                transition_to_glacier_days: Some(90),
                expire_days: Some(365),
                noncurrent_expire_days: Some(365),
            }),
        }
    }

    fn desired(own: bool) -> Desired {
        Desired {
            trail: trail(),
            own_bucket: own,
            lifecycle: Some(BucketLifecycle {
                transition_to_glacier_days: Some(90),
                expire_days: Some(365),
                noncurrent_expire_days: Some(365),
            }),
            bucket_policy: policy(),
        }
    }

    fn in_sync() -> Observed {
        Observed {
            trusted_access: true,
            bucket: Some(good_bucket()),
            trail: Some(trail()),
            status: Some(TrailStatus {
                is_logging: true,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn plan_table() {
        let mut stopped = in_sync();
        stopped.status = Some(TrailStatus::default());
        let mut no_validation = in_sync();
        no_validation.trail.as_mut().unwrap().log_file_validation = false;
        let mut open_bucket = in_sync();
        open_bucket.bucket.as_mut().unwrap().public_access_blocked = false;
        open_bucket.bucket.as_mut().unwrap().policy =
            Some("{\"Version\":\"2012-10-17\",\"Statement\":[]}".into());
        let mut reordered = in_sync();
        // AWS returns the policy re-serialized: same JSON, other text.
        reordered.bucket.as_mut().unwrap().policy =
            Some(serde_json::to_string_pretty(&policy()).unwrap());
        let mut foreign_bucket = in_sync();
        foreign_bucket.bucket = Some(BucketState::default());
        let cases: Vec<(&str, Desired, Observed, Vec<Action>)> = vec![
            (
                "nothing yet: trusted access, bucket with every safeguard, trail, logging",
                desired(true),
                Observed::default(),
                vec![
                    Action::EnableTrustedAccess,
                    Action::CreateBucket,
                    Action::BlockPublicAccess,
                    Action::PutEncryption,
                    Action::EnableVersioning,
                    Action::PutBucketPolicy,
                    Action::PutLifecycle,
                    Action::CreateTrail,
                    Action::StartLogging,
                ],
            ),
            ("in sync", desired(true), in_sync(), vec![]),
            (
                "policy re-serialized by AWS is not drift",
                desired(true),
                reordered,
                vec![],
            ),
            (
                "logging stopped out of band: restarted",
                desired(true),
                stopped,
                vec![Action::StartLogging],
            ),
            (
                "log-file validation turned off: trail updated",
                desired(true),
                no_validation,
                vec![Action::UpdateTrail],
            ),
            (
                "bucket opened and policy changed: fixed",
                desired(true),
                open_bucket,
                vec![Action::BlockPublicAccess, Action::PutBucketPolicy],
            ),
            (
                "a bucket the operator does not own is never touched",
                desired(false),
                foreign_bucket,
                vec![],
            ),
        ];
        for (reason, d, o, want) in cases {
            let got = plan(&d, &o).unwrap_or_else(|e| panic!("{reason}: {e}"));
            assert_eq!(got.actions, want, "{reason}");
        }
    }

    #[test]
    fn a_missing_bucket_the_operator_does_not_own_is_an_error() {
        let e = plan(
            &desired(false),
            &Observed {
                trusted_access: true,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.reason(), "BucketNotFound");
    }

    #[test]
    fn the_policy_lets_cloudtrail_write_only_the_org_and_management_prefixes_of_this_trail() {
        let p = bucket_policy(
            "aws",
            "audit-logs",
            Some("trail/"),
            "arn:aws:cloudtrail:us-east-1:1:trail/t",
            "111111111111",
            "o-xyz",
        );
        let text = p.to_string();
        // In GovCloud and China every ARN carries the Organization's partition.
        let gov = bucket_policy(
            "aws-us-gov",
            "audit-logs",
            None,
            "arn:aws-us-gov:cloudtrail:us-gov-west-1:1:trail/t",
            "111111111111",
            "o-xyz",
        )
        .to_string();
        assert!(
            gov.contains("arn:aws-us-gov:s3:::audit-logs/AWSLogs/o-xyz/*"),
            "{gov}"
        );
        assert!(!gov.contains("arn:aws:"), "{gov}");
        assert!(text.contains("arn:aws:s3:::audit-logs/trail/AWSLogs/111111111111/*"));
        assert!(text.contains("arn:aws:s3:::audit-logs/trail/AWSLogs/o-xyz/*"));
        assert_eq!(
            text.matches("\"aws:SourceArn\":\"arn:aws:cloudtrail:us-east-1:1:trail/t\"")
                .count(),
            3
        );
        assert!(text.contains("aws:SecureTransport"));
    }
}
