//! IAM Identity Center (sso-admin) as AWS answers it: asynchronous assignment and provisioning
//! requests, the outstanding-request cap, and what the emulator lacks.

use super::*;

pub(super) const SSO: &str = "SWBExternalService";

pub(super) fn sso_status(r: &SsoRequest, now: Instant, duration: Duration) -> Value {
    let state = if now < r.at + duration {
        "IN_PROGRESS"
    } else if r.failure.is_some() {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    let mut v = json!({
        "Status": state, "RequestId": r.id,
        "PermissionSetArn": str_of(&r.body, "PermissionSetArn"),
        "CreatedDate": 1.7e9,
    });
    if r.kind != "provision" {
        for f in ["TargetId", "TargetType", "PrincipalType", "PrincipalId"] {
            v[f] = r.body[f].clone();
        }
    }
    if state == "FAILED" {
        v["FailureReason"] = json!(r.failure);
    }
    v
}

/// Makes the requests whose time has come take effect in the emulator.
pub(super) async fn sso_settle(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<(), std::io::Error> {
    let now = Instant::now();
    let due: Vec<SsoRequest> = {
        let mut s = st.lock().unwrap();
        let d = s
            .realism
            .identity_center
            .clone()
            .unwrap_or_default()
            .duration;
        let due: Vec<SsoRequest> = s
            .sso_requests
            .iter()
            .filter(|r| !r.settled && now >= r.at + d)
            .cloned()
            .collect();
        for r in s.sso_requests.iter_mut() {
            if due.iter().any(|d| d.id == r.id) {
                r.settled = true;
            }
        }
        due
    };
    for r in due {
        let key = (
            str_of(&r.body, "TargetId").to_string(),
            str_of(&r.body, "PermissionSetArn").to_string(),
            str_of(&r.body, "PrincipalId").to_string(),
        );
        match r.kind {
            "create" if r.failure.is_none() => {
                // AWS keeps one assignment however often it is requested.
                let fresh = st.lock().unwrap().sso_assigned.insert(key);
                if fresh {
                    upstream
                        .ask(call, SSO, "CreateAccountAssignment", r.body.clone())
                        .await?;
                }
            }
            "delete" if st.lock().unwrap().sso_assigned.remove(&key) => {
                upstream
                    .ask(call, SSO, "DeleteAccountAssignment", r.body.clone())
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// AWS answers SessionDuration in ISO 8601 (`PT1H`); the emulator sends seconds for its default.
pub(super) fn iso_session_duration(v: &mut Value) {
    let d = &mut v["PermissionSet"]["SessionDuration"];
    if let Some(secs) = d.as_u64() {
        *d = json!(format!("PT{}H", secs / 3600));
    }
}

pub(super) async fn sso(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    sso_settle(call, st, upstream).await?;
    let now = Instant::now();
    let model = st
        .lock()
        .unwrap()
        .realism
        .identity_center
        .clone()
        .unwrap_or_default();
    let op = call.operation.as_str();
    let not_found = |what: &str| {
        json_error(
            400,
            "ResourceNotFoundException",
            &format!("{what} not found"),
            None,
        )
    };
    match op {
        "CreateAccountAssignment" | "DeleteAccountAssignment" | "ProvisionPermissionSet" => {
            let mut s = st.lock().unwrap();
            let outstanding = s
                .sso_requests
                .iter()
                .filter(|r| r.kind != "provision" && now < r.at + model.duration)
                .count();
            if op != "ProvisionPermissionSet" && outstanding >= model.max_outstanding {
                return Ok(json_error(
                    400,
                    "ThrottlingException",
                    "Too many outstanding account assignment requests; try again later.",
                    None,
                ));
            }
            s.sequence += 1;
            let kind = match op {
                "CreateAccountAssignment" => "create",
                "DeleteAccountAssignment" => "delete",
                _ => "provision",
            };
            let failure = (kind == "create")
                .then(|| {
                    let f = &model.failures;
                    f.get(str_of(&call.json, "TargetId"))
                        .or(f.get("*"))
                        .cloned()
                })
                .flatten();
            let r = SsoRequest {
                id: format!("{:08x}-0000-4000-8000-{:012x}", s.sequence, s.sequence),
                kind,
                at: now,
                body: call.json.clone(),
                failure,
                settled: false,
            };
            let status = sso_status(&r, now, model.duration);
            s.sso_requests.push(r);
            let field = match kind {
                "create" => "AccountAssignmentCreationStatus",
                "delete" => "AccountAssignmentDeletionStatus",
                _ => "PermissionSetProvisioningStatus",
            };
            Ok(json_ok(json!({ field: status })))
        }
        "DescribeAccountAssignmentCreationStatus"
        | "DescribeAccountAssignmentDeletionStatus"
        | "DescribePermissionSetProvisioningStatus" => {
            let (id_field, field) = match op {
                "DescribeAccountAssignmentCreationStatus" => (
                    "AccountAssignmentCreationRequestId",
                    "AccountAssignmentCreationStatus",
                ),
                "DescribeAccountAssignmentDeletionStatus" => (
                    "AccountAssignmentDeletionRequestId",
                    "AccountAssignmentDeletionStatus",
                ),
                _ => (
                    "ProvisionPermissionSetRequestId",
                    "PermissionSetProvisioningStatus",
                ),
            };
            let s = st.lock().unwrap();
            match s
                .sso_requests
                .iter()
                .find(|r| r.id == str_of(&call.json, id_field))
            {
                Some(r) => Ok(json_ok(
                    json!({ field: sso_status(r, now, model.duration) }),
                )),
                None => Ok(not_found("request")),
            }
        }
        "DeletePermissionSet" => {
            let arn = str_of(&call.json, "PermissionSetArn").to_string();
            if st
                .lock()
                .unwrap()
                .sso_assigned
                .iter()
                .any(|(_, ps, _)| *ps == arn)
            {
                return Ok(json_error(
                    400,
                    "ConflictException",
                    "The permission set is still assigned; remove its account assignments first.",
                    None,
                ));
            }
            upstream.forward(call).await
        }
        "DescribePermissionSet" => upstream.forward_json(call, iso_session_duration).await,
        "CreatePermissionSet" => {
            let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                iso_session_duration(&mut v);
                let answer = json_ok(v.clone());
                let arn = str_of(&v["PermissionSet"], "PermissionSetArn").to_string();
                let tags: BTreeMap<String, String> = call.json["Tags"]
                    .as_array()
                    .map(|ts| {
                        ts.iter()
                            .map(|t| (str_of(t, "Key").to_string(), str_of(t, "Value").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                st.lock().unwrap().sso_tags.insert(arn, tags);
                return Ok(answer);
            }
            Ok(answer)
        }
        "TagResource" => {
            let arn = str_of(&call.json, "ResourceArn").to_string();
            let mut s = st.lock().unwrap();
            let tags = s.sso_tags.entry(arn).or_default();
            for t in call.json["Tags"].as_array().cloned().unwrap_or_default() {
                tags.insert(
                    str_of(&t, "Key").to_string(),
                    str_of(&t, "Value").to_string(),
                );
            }
            Ok(json_ok(json!({})))
        }
        "UntagResource" => {
            let arn = str_of(&call.json, "ResourceArn").to_string();
            let mut s = st.lock().unwrap();
            let tags = s.sso_tags.entry(arn).or_default();
            for k in call.json["TagKeys"].as_array().cloned().unwrap_or_default() {
                tags.remove(k.as_str().unwrap_or_default());
            }
            Ok(json_ok(json!({})))
        }
        "ListTagsForResource" => {
            let s = st.lock().unwrap();
            let tags: Vec<Value> = s
                .sso_tags
                .get(str_of(&call.json, "ResourceArn"))
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| json!({"Key": k, "Value": v}))
                        .collect()
                })
                .unwrap_or_default();
            Ok(json_ok(json!({"Tags": tags})))
        }
        "PutPermissionsBoundaryToPermissionSet" => {
            let arn = str_of(&call.json, "PermissionSetArn").to_string();
            st.lock()
                .unwrap()
                .sso_boundaries
                .insert(arn, call.json["PermissionsBoundary"].clone());
            Ok(json_ok(json!({})))
        }
        "GetPermissionsBoundaryForPermissionSet" => {
            let s = st.lock().unwrap();
            match s.sso_boundaries.get(str_of(&call.json, "PermissionSetArn")) {
                Some(b) => Ok(json_ok(json!({"PermissionsBoundary": b}))),
                None => Ok(not_found("permissions boundary")),
            }
        }
        "DeletePermissionsBoundaryFromPermissionSet" => {
            st.lock()
                .unwrap()
                .sso_boundaries
                .remove(str_of(&call.json, "PermissionSetArn"));
            Ok(json_ok(json!({})))
        }
        _ => upstream.forward(call).await,
    }
}
