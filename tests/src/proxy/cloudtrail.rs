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
