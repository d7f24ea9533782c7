//! AWS CloudTrail as AWS answers it.

use super::*;

pub(super) async fn cloudtrail(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let op = call.operation.as_str();
    let (lag, policy_at, access_at, kms_arn, delivery_error) = {
        let s = st.lock().unwrap();
        (
            s.realism.trail_policy_lag,
            s.policy_put_at,
            s.trusted_access_at,
            s.realism.trail_kms_key_as_arn,
            s.realism.trail_delivery_error.clone(),
        )
    };
    if op == "GetTrailStatus"
        && let Some(err) = delivery_error
    {
        return upstream
            .forward_json(call, |v| v["LatestDeliveryError"] = json!(err))
            .await;
    }
    let now = Instant::now();
    if (op == "CreateTrail" || op == "UpdateTrail") && !lag.is_zero() {
        if access_at.is_some_and(|at| now < at + lag) {
            return Ok(json_error(
                400,
                "CloudTrailAccessNotEnabledException",
                "This organization has not enabled CloudTrail trusted access.",
                None,
            ));
        }
        // A role made moments ago cannot be assumed by CloudTrail yet (IAM is eventually
        // consistent): CloudTrail checks it and refuses.
        let role = str_of(&call.json, "CloudWatchLogsRoleArn")
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let young_role = !role.is_empty()
            && st
                .lock()
                .unwrap()
                .iam_created
                .get(&(call.caller.clone(), format!("role:{role}")))
                .is_some_and(|at| now < *at + lag);
        if young_role {
            return Ok(json_error(
                400,
                "InvalidCloudWatchLogsRoleArnException",
                "Access denied. Verify in IAM that the role has adequate permissions.",
                None,
            ));
        }
        if policy_at.is_some_and(|at| now < at + lag) {
            return Ok(json_error(
                400,
                "InsufficientS3BucketPolicyException",
                "Incorrect S3 bucket policy is detected for bucket.",
                None,
            ));
        }
    }
    if (op == "CreateTrail" || op == "UpdateTrail")
        && let Some(refusal) = service_checks(call, st, upstream).await?
    {
        return Ok(refusal);
    }
    if kms_arn {
        let to_arn = |v: &mut Value| {
            let fix = |t: &mut Value| {
                if let Some(k) = t.get("KmsKeyId").and_then(Value::as_str)
                    && !k.starts_with("arn:")
                {
                    let id = k.trim_start_matches("alias/");
                    t["KmsKeyId"] = json!(format!("arn:aws:kms:us-east-1:123456789012:key/{id}"));
                }
            };
            fix(v);
            if let Some(list) = v.get_mut("trailList").and_then(Value::as_array_mut) {
                list.iter_mut().for_each(fix);
            }
            if let Some(t) = v.get_mut("Trail") {
                fix(t);
            }
        };
        return upstream.forward_json(call, to_arn).await;
    }
    upstream.forward(call).await
}

/// What CloudTrail checks before it takes a trail, with the request context it documents; `None`
/// when it would take it.
///
/// - The CloudWatch Logs role: CloudTrail assumes it as `cloudtrail.amazonaws.com` with no
///   `aws:SourceArn` or `aws:SourceAccount` ("Role policy document for CloudTrail to use
///   CloudWatch Logs for monitoring": confused-deputy prevention does not apply to this role),
///   and refuses a role it cannot assume with `InvalidCloudWatchLogsRoleArnException`;
///   <https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html>
/// - The bucket: CloudTrail reads its ACL (`s3:GetBucketAcl` on the bucket) and writes
///   `[prefix/]AWSLogs/<account>/…` (and `AWSLogs/<org id>/<account>/…` for an organization
///   trail) with `s3:x-amz-acl = bucket-owner-full-control`, sending `aws:SourceArn` (the trail)
///   and `aws:SourceAccount`, over TLS ("Amazon S3 bucket policy for CloudTrail"); it refuses a
///   bucket whose policy does not allow that with `InsufficientS3BucketPolicyException`;
///   <https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html>
async fn service_checks(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Option<Answer>, std::io::Error> {
    use super::policy::{Decision, Request, evaluate};
    const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";
    let role_arn = str_of(&call.json, "CloudWatchLogsRoleArn");
    if let Some(role) = role_arn.rsplit('/').next().filter(|r| !r.is_empty()) {
        let trust = upstream.role_trust(call, role).await?;
        let assume = Request::by_service(CLOUDTRAIL, "sts:AssumeRole", role_arn);
        if trust.is_none_or(|t| evaluate(&t, &assume) != Decision::Allow) {
            return Ok(Some(json_error(
                400,
                "InvalidCloudWatchLogsRoleArnException",
                "Access denied. Verify in IAM that the role has adequate permissions.",
                None,
            )));
        }
    }
    let bucket = str_of(&call.json, "S3BucketName");
    if bucket.is_empty() {
        return Ok(None);
    }
    let org = upstream
        .ask_organizations_as_management(call, "DescribeOrganization", json!({}))
        .await?;
    let org_id = str_of(&org["Organization"], "Id").to_string();
    let (account, _) = caller_account(call, st, upstream).await?;
    let name = str_of(&call.json, "Name");
    let trail_arn = if name.starts_with("arn:") {
        name.to_string()
    } else {
        format!("arn:aws:cloudtrail:{}:{account}:trail/{name}", call.region)
    };
    let prefix = match str_of(&call.json, "S3KeyPrefix").trim_matches('/') {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let from_cloudtrail = |action: &str, resource: String| {
        Request::by_service(CLOUDTRAIL, action, &resource)
            .with("aws:SourceArn", &trail_arn)
            .with("aws:SourceAccount", &account)
            .with("aws:SecureTransport", "true")
    };
    let mut requests = vec![
        from_cloudtrail("s3:GetBucketAcl", format!("arn:aws:s3:::{bucket}")),
        from_cloudtrail(
            "s3:PutObject",
            format!("arn:aws:s3:::{bucket}/{prefix}AWSLogs/{account}/CloudTrail/log.json.gz"),
        )
        .with("s3:x-amz-acl", "bucket-owner-full-control"),
    ];
    if call.json["IsOrganizationTrail"] == json!(true) && !org_id.is_empty() {
        requests.push(
            from_cloudtrail(
                "s3:PutObject",
                format!(
                    "arn:aws:s3:::{bucket}/{prefix}AWSLogs/{org_id}/{account}/CloudTrail/log.json.gz"
                ),
            )
            .with("s3:x-amz-acl", "bucket-owner-full-control"),
        );
    }
    let policy = upstream.bucket_policy(call, bucket).await?;
    let refused = requests.iter().any(|r| {
        policy
            .as_ref()
            .is_none_or(|p| evaluate(p, r) != Decision::Allow)
    });
    Ok(refused.then(|| {
        json_error(
            400,
            "InsufficientS3BucketPolicyException",
            &format!("Incorrect S3 bucket policy is detected for bucket: {bucket}"),
            None,
        )
    }))
}
