//! AWS Organizations as AWS answers it: asynchronous CreateAccount, policy quotas and refusals,
//! accounts that joined long ago, closure limits.

use super::*;

/// Held (written) while a CreateAccount is forwarded to the emulator and recorded: the emulator
/// makes the account at once, and no other call may see it before it is recorded as hidden (AWS
/// lists a new account only once its creation has finished).
static CREATING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub(super) async fn organizations(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let _creating = if call.operation == "CreateAccount" {
        None
    } else {
        Some(CREATING.read().await)
    };
    let now = Instant::now();
    let (creating, closing, hidden) = {
        let s = st.lock().unwrap();
        (
            s.realism.create_account.clone(),
            s.realism.close_account.clone(),
            s.hidden_accounts(now),
        )
    };
    let closing_now = st.lock().unwrap().closing_now(now);
    let old = st.lock().unwrap().realism.joined_long_ago.clone();
    // Accounts in creation or not yet listed do not exist for the other calls either.
    let target = [
        str_of(&call.json, "AccountId"),
        str_of(&call.json, "ResourceId"),
        str_of(&call.json, "ChildId"),
    ]
    .into_iter()
    .find(|id| !id.is_empty())
    .unwrap_or_default()
    .to_string();
    if hidden.contains(&target) {
        let code = match call.operation.as_str() {
            "TagResource" | "UntagResource" | "ListTagsForResource" => "TargetNotFoundException",
            "ListParents" => "ChildNotFoundException",
            _ => "AccountNotFoundException",
        };
        return Ok(json_error(
            400,
            code,
            "You specified an account that doesn't exist.",
            None,
        ));
    }
    let rewrite = |a: &mut Value| {
        let id = str_of(a, "Id").to_string();
        if closing_now.contains(&id) {
            a["Status"] = json!("PENDING_CLOSURE");
            a["State"] = json!("PENDING_CLOSURE");
        }
        if let Some(method) = old.get(&id) {
            a["JoinedMethod"] = json!(method);
            a["JoinedTimestamp"] = json!(1.5e9);
        }
    };
    let hide_and_close = |v: &mut Value| {
        if let Some(accounts) = v.get_mut("Accounts").and_then(Value::as_array_mut) {
            accounts.retain(|a| !hidden.contains(str_of(a, "Id")));
            accounts.iter_mut().for_each(rewrite);
        }
        if let Some(a) = v.get_mut("Account") {
            rewrite(a);
        }
    };
    let policies = st.lock().unwrap().realism.policies;
    if policies && let Some(refusal) = policy_refusal(call, upstream).await? {
        return Ok(refusal);
    }
    match (call.operation.as_str(), creating, closing) {
        ("CreateAccount", Some(model), _) => create_account(call, st, upstream, &model).await,
        ("DescribeCreateAccountStatus", Some(_), _) => {
            let id = str_of(&call.json, "CreateAccountRequestId");
            let mut s = st.lock().unwrap();
            match s.creates.iter().position(|r| r.id == id) {
                Some(i) => {
                    let status = s.create_status_json(&s.creates[i], now);
                    if status["State"] != "IN_PROGRESS" {
                        s.creates[i].seen_ended_at.get_or_insert(now);
                    }
                    Ok(json_ok(json!({"CreateAccountStatus": status})))
                }
                None => Ok(json_error(
                    400,
                    "CreateAccountStatusNotFoundException",
                    "We can't find a create account request with the CreateAccountRequestId that you specified.",
                    None,
                )),
            }
        }
        ("ListCreateAccountStatus", Some(_), _) => {
            let states: Vec<String> = call
                .json
                .get("States")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let s = st.lock().unwrap();
            let statuses: Vec<Value> = s
                .creates
                .iter()
                .filter(|r| states.is_empty() || states.iter().any(|x| x == s.create_state(r, now)))
                .map(|r| s.create_status_json(r, now))
                .collect();
            Ok(json_ok(json!({"CreateAccountStatuses": statuses})))
        }
        ("CloseAccount", _, Some(model)) => {
            let id = str_of(&call.json, "AccountId").to_string();
            {
                let s = st.lock().unwrap();
                if s.closing_now(now).len() >= model.max_in_flight {
                    return Ok(json_error(
                        400,
                        "ConstraintViolationException",
                        "You attempted to exceed the number of accounts that you can close at a time.",
                        Some("CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED"),
                    ));
                }
                if s.closed >= model.quota {
                    return Ok(json_error(
                        400,
                        "ConstraintViolationException",
                        "You have exceeded close account quota for the past 30 days.",
                        Some("CLOSE_ACCOUNT_QUOTA_EXCEEDED"),
                    ));
                }
            }
            let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                let mut s = st.lock().unwrap();
                s.closing.insert(id, now);
                s.closed += 1;
            }
            Ok(answer)
        }
        ("ListAccounts" | "ListAccountsForParent" | "DescribeAccount", _, _)
            if !hidden.is_empty() || !closing_now.is_empty() || !old.is_empty() =>
        {
            upstream.forward_json(call, hide_and_close).await
        }
        ("EnableAWSServiceAccess", _, _)
            if st.lock().unwrap().realism.root_access
                && str_of(&call.json, "ServicePrincipal") == "iam.amazonaws.com" =>
        {
            st.lock()
                .unwrap()
                .extra_trusted
                .insert("iam.amazonaws.com".into());
            Ok(json_ok(json!({})))
        }
        ("ListAWSServiceAccessForOrganization", _, _)
            if !st.lock().unwrap().extra_trusted.is_empty() =>
        {
            let extra = st.lock().unwrap().extra_trusted.clone();
            upstream
                .forward_json(call, |v| {
                    if let Some(list) = v
                        .get_mut("EnabledServicePrincipals")
                        .and_then(Value::as_array_mut)
                    {
                        for p in &extra {
                            list.push(json!({"ServicePrincipal": p, "DateEnabled": 1.7e9}));
                        }
                    }
                })
                .await
        }
        ("EnableAWSServiceAccess", _, _) => {
            let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                st.lock().unwrap().trusted_access_at = Some(now);
            }
            Ok(answer)
        }
        _ => upstream.forward(call).await,
    }
}

/// Largest document and attachments per target, by AWS policy type (Organizations quotas page).
pub(super) fn policy_limits(policy_type: &str) -> (usize, usize) {
    match policy_type {
        "SERVICE_CONTROL_POLICY" | "RESOURCE_CONTROL_POLICY" => (5120, 5),
        "AISERVICES_OPT_OUT_POLICY" => (2500, 5),
        _ => (10_000, 10),
    }
}

/// AWS's refusal of a policy call the emulator would accept, if any.
pub(super) async fn policy_refusal(
    call: &Call,
    upstream: &Upstream,
) -> Result<Option<Answer>, std::io::Error> {
    let op = call.operation.as_str();
    if !matches!(
        op,
        "CreatePolicy" | "UpdatePolicy" | "AttachPolicy" | "DetachPolicy"
    ) {
        return Ok(None);
    }
    let policy_id = str_of(&call.json, "PolicyId").to_string();
    let policy_type = if op == "CreatePolicy" {
        str_of(&call.json, "Type").to_string()
    } else {
        let described = upstream
            .ask_organizations(call, "DescribePolicy", json!({"PolicyId": policy_id}))
            .await?;
        str_of(&described["Policy"]["PolicySummary"], "Type").to_string()
    };
    let (max_size, max_attached) = policy_limits(&policy_type);
    let violation = |reason: &str, message: &str| {
        Some(json_error(
            400,
            "ConstraintViolationException",
            message,
            Some(reason),
        ))
    };
    if let Some(content) = call.json.get("Content").and_then(Value::as_str) {
        if content.chars().count() > max_size {
            return Ok(violation(
                "POLICY_CONTENT_LIMIT_EXCEEDED",
                "You attempted to exceed the maximum size of a policy document.",
            ));
        }
        if serde_json::from_str::<Value>(content).is_err() {
            return Ok(Some(json_error(
                400,
                "MalformedPolicyDocumentException",
                "The provided policy document doesn't meet the requirements of the specified policy type.",
                None,
            )));
        }
    }
    if !matches!(op, "AttachPolicy" | "DetachPolicy") {
        return Ok(None);
    }
    let roots = upstream
        .ask_organizations(call, "ListRoots", json!({}))
        .await?;
    let enabled = roots["Roots"][0]["PolicyTypes"]
        .as_array()
        .is_some_and(|types| {
            types
                .iter()
                .any(|t| str_of(t, "Type") == policy_type && str_of(t, "Status") == "ENABLED")
        });
    if !enabled {
        return Ok(Some(json_error(
            400,
            "PolicyTypeNotEnabledException",
            "This operation can be performed only for enabled policy types.",
            None,
        )));
    }
    let target = str_of(&call.json, "TargetId");
    let attached = upstream
        .ask_organizations(
            call,
            "ListPoliciesForTarget",
            json!({"TargetId": target, "Filter": policy_type}),
        )
        .await?;
    let attached: Vec<String> = attached["Policies"]
        .as_array()
        .map(|ps| ps.iter().map(|p| str_of(p, "Id").to_string()).collect())
        .unwrap_or_default();
    let here = attached.contains(&policy_id);
    Ok(match op {
        "AttachPolicy" if here => Some(json_error(
            400,
            "DuplicatePolicyAttachmentException",
            "The selected policy is already attached to the specified target.",
            None,
        )),
        "AttachPolicy" if attached.len() >= max_attached => violation(
            "POLICY_NUMBER_LIMIT_EXCEEDED",
            "You attempted to exceed the number of policies that you can have in an organization.",
        ),
        "DetachPolicy" if !here => Some(json_error(
            400,
            "PolicyNotAttachedException",
            "The policy isn't attached to the specified target in the specified root.",
            None,
        )),
        "DetachPolicy" if policy_type == "SERVICE_CONTROL_POLICY" && attached.len() == 1 => {
            violation(
                "MIN_POLICY_TYPE_ATTACHMENT_LIMIT_EXCEEDED",
                "You attempted to detach a policy from an entity that would leave it without any policies of that type.",
            )
        }
        _ => None,
    })
}

pub(super) async fn create_account(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
    model: &CreateAccountModel,
) -> Result<Answer, std::io::Error> {
    let now = Instant::now();
    let name = str_of(&call.json, "AccountName").to_string();
    let email = str_of(&call.json, "Email").to_string();
    let failure = {
        let mut s = st.lock().unwrap();
        let in_flight = s
            .creates
            .iter()
            .filter(|r| s.create_state(r, now) == "IN_PROGRESS")
            .count();
        if in_flight >= model.max_in_flight {
            return Ok(json_error(
                400,
                "TooManyRequestsException",
                "You have reached the limit on the number of concurrent account creation requests.",
                None,
            ));
        }
        if s.creates.iter().filter(|r| r.failure.is_none()).count() >= model.daily_limit {
            return Ok(json_error(
                400,
                "ConstraintViolationException",
                "You attempted to exceed the number of accounts that you can create in one day.",
                Some("ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED"),
            ));
        }
        let queued = s
            .realism
            .create_account
            .as_mut()
            .map(|m| (!m.failures.is_empty()).then(|| m.failures.remove(0)))
            .unwrap_or_default();
        // One root email, one account, across all of AWS (the request fails; nothing is created).
        let taken = s
            .creates
            .iter()
            .any(|r| r.failure.is_none() && r.email.eq_ignore_ascii_case(&email));
        queued.or(taken.then(|| "EMAIL_ALREADY_EXISTS".to_string()))
    };
    let failure = match failure {
        Some(f) => Some(f),
        None => {
            // Accounts the emulator already has (made before the model was on, or out of band).
            let list = Call {
                parts: call.parts.clone(),
                body: Bytes::new(),
                service: call.service.clone(),
                operation: "ListAccounts".into(),
                caller: call.caller.clone(),
                region: call.region.clone(),
                form: BTreeMap::new(),
                json: Value::Null,
            };
            let mut parts = list.parts;
            parts.headers.insert(
                "x-amz-target",
                "AWSOrganizationsV20161128.ListAccounts".parse().unwrap(),
            );
            let list = Call { parts, ..list };
            // Every page: the emulator lists 20 accounts at a time.
            let (mut exists, mut token) = (false, None::<String>);
            loop {
                let body = match &token {
                    Some(t) => serde_json::json!({ "NextToken": t }).to_string(),
                    None => "{}".to_string(),
                };
                let (_, _, bytes) = upstream.send(&list, Bytes::from(body)).await?;
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                exists |= v
                    .get("Accounts")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        a.iter()
                            .any(|a| str_of(a, "Email").eq_ignore_ascii_case(&email))
                    });
                token = v
                    .get("NextToken")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if exists || token.is_none() {
                    break;
                }
            }
            exists.then(|| "EMAIL_ALREADY_EXISTS".to_string())
        }
    };
    let request = match failure {
        Some(reason) => {
            let mut s = st.lock().unwrap();
            s.sequence += 1;
            CreateRequest {
                id: format!("car-{:032x}", 0xfa11_0000_u64 + s.sequence),
                name,
                email,
                at: now,
                account_id: None,
                failure: Some(reason),
                seen_ended_at: None,
            }
        }
        None => {
            let _recording = CREATING.write().await;
            let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
            if status != 200 {
                return Ok(answer);
            }
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let s = &v["CreateAccountStatus"];
            let request = CreateRequest {
                id: str_of(s, "Id").to_string(),
                name,
                email,
                at: now,
                account_id: Some(str_of(s, "AccountId").to_string()),
                failure: None,
                seen_ended_at: None,
            };
            st.lock().unwrap().creates.push(request.clone());
            let status = st.lock().unwrap().create_status_json(&request, now);
            return Ok(json_ok(json!({"CreateAccountStatus": status})));
        }
    };
    let mut s = st.lock().unwrap();
    s.creates.push(request.clone());
    let status = s.create_status_json(&request, now);
    Ok(json_ok(json!({"CreateAccountStatus": status})))
}
