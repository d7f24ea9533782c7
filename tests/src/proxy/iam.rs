//! IAM as AWS answers it: eventual consistency, the root user of a member account, centralized
//! root access.

use super::*;

pub(super) async fn iam(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let group = call.form.get("GroupName").cloned();
    let user = call.form.get("UserName").cloned();
    let op = call.operation.as_str();
    let now = Instant::now();
    let root_user = st.lock().unwrap().realism.root_user;
    let root_session = st.lock().unwrap().root_sessions.get(&call.caller).cloned();
    if let Some((account, task)) = root_session {
        return Ok(root_iam(call, st, &account, &task));
    }
    if expired(call, st) {
        return Ok(xml_error(
            "iam",
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    if op == "GetAccountSummary"
        && let Some((mfa, keys, password)) = root_user
    {
        let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
        if status != 200 {
            return Ok(answer);
        }
        let mut xml = String::from_utf8_lossy(&bytes).into_owned();
        for (key, on) in [
            ("AccountMFAEnabled", mfa),
            ("AccountAccessKeysPresent", keys),
            ("AccountPasswordPresent", password),
        ] {
            xml = set_summary_entry(&xml, key, on);
        }
        return Ok(respond(200, "text/xml", xml));
    }
    if matches!(
        op,
        "ListOrganizationsFeatures"
            | "EnableOrganizationsRootCredentialsManagement"
            | "EnableOrganizationsRootSessions"
    ) && st.lock().unwrap().realism.root_access
    {
        return root_access(call, st, upstream).await;
    }
    if op == "CreateAccountAlias" {
        let alias = call.form.get("AccountAlias").cloned().unwrap_or_default();
        if st.lock().unwrap().realism.taken_aliases.contains(&alias) {
            return Ok(xml_error(
                "iam",
                409,
                "EntityAlreadyExists",
                &format!("The account alias {alias} already exists."),
            ));
        }
    }
    {
        let mut s = st.lock().unwrap();
        if let Some(g) = &group
            && !op.starts_with("Get")
            && !op.starts_with("List")
            && let Some(n) = s.realism.iam_concurrent_modification.get_mut(g)
            && *n > 0
        {
            *n -= 1;
            return Ok(xml_error(
                "iam",
                409,
                "ConcurrentModification",
                "Rate exceeded for the group; a concurrent modification is in progress.",
            ));
        }
        let lag = s.realism.iam_visibility_lag;
        if !lag.is_zero() && op != "CreateGroup" && op != "CreateUser" {
            let young = |kind: &str, name: &Option<String>| {
                name.as_ref().is_some_and(|n| {
                    s.iam_created
                        .get(&(call.caller.clone(), format!("{kind}:{n}")))
                        .is_some_and(|at| now < *at + lag)
                })
            };
            if young("group", &group) {
                return Ok(xml_error(
                    "iam",
                    404,
                    "NoSuchEntity",
                    &format!(
                        "The group with name {} cannot be found.",
                        group.clone().unwrap_or_default()
                    ),
                ));
            }
            if young("user", &user) {
                return Ok(xml_error(
                    "iam",
                    404,
                    "NoSuchEntity",
                    &format!(
                        "The user with name {} cannot be found.",
                        user.clone().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
    // A role's trust changed is, to CloudTrail, as new as a role created.
    if status == 200
        && matches!(
            op,
            "CreateGroup" | "CreateUser" | "CreateRole" | "UpdateAssumeRolePolicy"
        )
    {
        let (kind, name) = match op {
            "CreateGroup" => ("group", group),
            "CreateUser" => ("user", user),
            _ => ("role", call.form.get("RoleName").cloned()),
        };
        st.lock().unwrap().iam_created.insert(
            (
                call.caller.clone(),
                format!("{kind}:{}", name.unwrap_or_default()),
            ),
            now,
        );
    }
    Ok(answer)
}

/// IAM as the root user of `account`, limited by the root session's task policy (IAM User Guide,
/// "Perform a privileged task on a member account").
pub(super) fn root_iam(call: &Call, st: &Arc<Mutex<State>>, account: &str, task: &str) -> Answer {
    let op = call.operation.as_str();
    let deleting = matches!(
        op,
        "DeleteLoginProfile"
            | "DeleteAccessKey"
            | "DeleteSigningCertificate"
            | "DeactivateMFADevice"
    );
    if deleting && !task.ends_with("IAMDeleteRootUserCredentials") {
        return xml_error(
            "iam",
            403,
            "AccessDenied",
            &format!("The root session's task policy {task} does not allow iam:{op}"),
        );
    }
    let mut s = st.lock().unwrap();
    let creds = s
        .realism
        .root_credentials
        .entry(account.to_string())
        .or_default();
    let members = |items: &[String], tag: &str, field: &str| -> String {
        items
            .iter()
            .map(|i| format!("<member><{field}>{i}</{field}>{tag}</member>"))
            .collect()
    };
    let body = match op {
        "GetLoginProfile" if creds.password => {
            "<LoginProfile><UserName>root</UserName><CreateDate>2020-01-01T00:00:00Z</CreateDate></LoginProfile>".to_string()
        }
        "GetLoginProfile" | "DeleteLoginProfile" if !creds.password => {
            return xml_error("iam", 404, "NoSuchEntity", "The root user has no login profile.");
        }
        "DeleteLoginProfile" => {
            creds.password = false;
            String::new()
        }
        "ListAccessKeys" => format!(
            "<AccessKeyMetadata>{}</AccessKeyMetadata><IsTruncated>false</IsTruncated>",
            members(&creds.access_keys, "<Status>Active</Status><CreateDate>2020-01-01T00:00:00Z</CreateDate>", "AccessKeyId")
        ),
        "DeleteAccessKey" => {
            let id = call.form.get("AccessKeyId").cloned().unwrap_or_default();
            creds.access_keys.retain(|k| *k != id);
            String::new()
        }
        "ListMFADevices" => format!(
            "<MFADevices>{}</MFADevices><IsTruncated>false</IsTruncated>",
            members(&creds.mfa_devices, "<EnableDate>2020-01-01T00:00:00Z</EnableDate>", "SerialNumber")
        ),
        "DeactivateMFADevice" => {
            let id = call.form.get("SerialNumber").cloned().unwrap_or_default();
            creds.mfa_devices.retain(|d| *d != id);
            String::new()
        }
        "ListSigningCertificates" => format!(
            "<Certificates>{}</Certificates><IsTruncated>false</IsTruncated>",
            creds
                .signing_certificates
                .iter()
                .map(|c| format!("<member><CertificateId>{c}</CertificateId><CertificateBody>-----BEGIN CERTIFICATE-----</CertificateBody><Status>Active</Status></member>"))
                .collect::<String>()
        ),
        "DeleteSigningCertificate" => {
            let id = call.form.get("CertificateId").cloned().unwrap_or_default();
            creds.signing_certificates.retain(|c| *c != id);
            String::new()
        }
        _ => {
            return xml_error(
                "iam",
                403,
                "AccessDenied",
                &format!("The root session's task policy {task} does not allow iam:{op}"),
            );
        }
    };
    respond(
        200,
        "text/xml",
        format!(
            "<{op}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{op}Result>{body}</{op}Result><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></{op}Response>"
        ),
    )
}

/// IAM's centralized root access (IAM API Reference, *EnableOrganizationsRootCredentialsManagement*):
/// only the management account, only with all features, only after trusted access for IAM.
pub(super) async fn root_access(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let op = call.operation.as_str();
    if st.lock().unwrap().sessions.contains_key(&call.caller) {
        return Ok(xml_error(
            "iam",
            400,
            "AccountNotManagementOrDelegatedAdministratorException",
            "The request was rejected because the account making the request is not the management account or delegated administrator account for centralized root access.",
        ));
    }
    let org = upstream
        .ask_organizations(call, "DescribeOrganization", json!({}))
        .await?;
    let org_id = str_of(&org["Organization"], "Id").to_string();
    if org_id.is_empty() {
        return Ok(xml_error(
            "iam",
            400,
            "OrganizationNotFoundException",
            "The request was rejected because no organization is associated with your account.",
        ));
    }
    if str_of(&org["Organization"], "FeatureSet") != "ALL" {
        return Ok(xml_error(
            "iam",
            400,
            "OrganizationNotInAllFeaturesModeException",
            "The request was rejected because your organization does not have All features enabled.",
        ));
    }
    let mut s = st.lock().unwrap();
    if op != "ListOrganizationsFeatures" && !s.extra_trusted.contains("iam.amazonaws.com") {
        return Ok(xml_error(
            "iam",
            400,
            "ServiceAccessNotEnabledException",
            "The request was rejected because trusted access is not enabled for IAM in AWS Organizations.",
        ));
    }
    match op {
        "EnableOrganizationsRootCredentialsManagement" => {
            s.root_features.insert("RootCredentialsManagement".into());
        }
        "EnableOrganizationsRootSessions" => {
            s.root_features.insert("RootSessions".into());
        }
        _ => {}
    }
    let members: String = s
        .root_features
        .iter()
        .map(|f| format!("<member>{f}</member>"))
        .collect();
    Ok(respond(
        200,
        "text/xml",
        format!(
            "<{op}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{op}Result><OrganizationId>{org_id}</OrganizationId><EnabledFeatures>{members}</EnabledFeatures></{op}Result><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></{op}Response>"
        ),
    ))
}

/// The caller's assumed-role session is older than the model lets sessions live.
pub(super) fn expired(call: &Call, st: &Arc<Mutex<State>>) -> bool {
    let s = st.lock().unwrap();
    let Some(at) = s.sessions.get(&call.caller) else {
        return false;
    };
    s.realism
        .sessions_expired_before
        .is_some_and(|cut| *at < cut)
}

/// Sets `<entry><key>KEY</key><value>N</value></entry>` in a GetAccountSummary answer.
pub(super) fn set_summary_entry(xml: &str, key: &str, on: bool) -> String {
    let value = u8::from(on);
    let marker = format!("<key>{key}</key>");
    if let Some(at) = xml.find(&marker) {
        let rest = &xml[at..];
        if let (Some(v0), Some(v1)) = (rest.find("<value>"), rest.find("</value>")) {
            return format!("{}<value>{value}{}", &xml[..at + v0], &xml[at + v1..]);
        }
    }
    xml.replacen(
        "</SummaryMap>",
        &format!("<entry>{marker}<value>{value}</value></entry></SummaryMap>"),
        1,
    )
}
