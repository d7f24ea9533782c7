//! AWS change events ("AWS API Call via CloudTrail", delivered by EventBridge): what one event
//! says changed, as AWS identities. Pure, table-tested; the consumer maps these to resources.

use serde_json::Value;

/// The services whose API calls can change what the operator manages: the change-event rule
/// matches their calls, `touched` knows which of their operations change what.
pub const EVENT_SOURCES: &[&str] = &[
    "organizations.amazonaws.com",
    "iam.amazonaws.com",
    "cloudtrail.amazonaws.com",
    "s3.amazonaws.com",
    "sso.amazonaws.com",
    "identitystore.amazonaws.com",
    "budgets.amazonaws.com",
    "logs.amazonaws.com",
    "monitoring.amazonaws.com",
];

/// Something in AWS an event says changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Touch {
    /// A member account (its place, tags, or something inside it: alias, password policy).
    Account(String),
    OrganizationalUnit(String),
    /// An organization policy (its document, tags or attachments).
    Policy(String),
    /// The Organization's own settings (trusted services, delegated administrators, policy types).
    Organization,
    /// An IAM group, by account and name.
    IamGroup {
        account: String,
        name: String,
    },
    /// A CloudTrail trail, by name or ARN as the call gave it.
    Trail(String),
    Bucket(String),
    PermissionSet(String),
    /// An Identity Store group, by id.
    IdentityStoreGroup(String),
    Budget(String),
    /// A CloudWatch Logs log group (a trail's: its metric filters, its retention), by name.
    LogGroup(String),
    /// A CloudWatch alarm, by name.
    Alarm(String),
}

/// Why an event was not mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not the shape of an EventBridge CloudTrail event.
    Malformed(String),
    /// A call of a service or an operation that changes nothing the operator manages.
    Unknown(String),
    /// A call the operator itself made (its writes must not echo back as reconciles).
    Own,
    /// A call that failed in AWS: nothing changed.
    Failed,
}

/// Who the operator is in CloudTrail: its principal in the management account (the role behind
/// its session, or a user), and the session name it gives the member-account role it assumes.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub role_arn: Option<String>,
    pub member_session_name: String,
}

impl Identity {
    /// From `sts:GetCallerIdentity`'s ARN: an assumed role's session names its role.
    pub fn of_caller(arn: &str, member_session_name: &str) -> Self {
        Self {
            role_arn: Some(role_of_session(arn).unwrap_or_else(|| arn.to_string())),
            member_session_name: member_session_name.to_string(),
        }
    }
}

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The role ARN behind an assumed-role session ARN
/// (`arn:aws:sts::111:assumed-role/Name/session` → `arn:aws:iam::111:role/Name`).
pub fn role_of_session(arn: &str) -> Option<String> {
    let (prefix, rest) = arn.split_once(":assumed-role/")?;
    let name = rest.split('/').next()?;
    let account = prefix.rsplit(':').next()?;
    let partition = prefix.split(':').nth(1)?;
    Some(format!("arn:{partition}:iam::{account}:role/{name}"))
}

/// What an event (the body EventBridge delivers) says changed.
pub fn touched(event: &Value, me: &Identity) -> Result<Vec<Touch>, Skip> {
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| Skip::Malformed("no detail".into()))?;
    // CloudWatch's own event (the pipeline's alarm-state rule): an alarm changed state.
    if s(event, "/detail-type") == Some("CloudWatch Alarm State Change") {
        let name = s(detail, "/alarmName")
            .ok_or_else(|| Skip::Malformed("an alarm state change without alarmName".into()))?;
        return Ok(vec![Touch::Alarm(name.to_string())]);
    }
    let source =
        s(detail, "/eventSource").ok_or_else(|| Skip::Malformed("no eventSource".into()))?;
    let name = s(detail, "/eventName").ok_or_else(|| Skip::Malformed("no eventName".into()))?;
    if detail.get("errorCode").is_some_and(|c| !c.is_null()) {
        return Err(Skip::Failed);
    }
    let caller = s(detail, "/userIdentity/arn").unwrap_or_default();
    let issuer = s(detail, "/userIdentity/sessionContext/sessionIssuer/arn")
        .map(str::to_string)
        .or_else(|| role_of_session(caller));
    if let Some(mine) = &me.role_arn
        && (issuer.as_ref() == Some(mine) || caller == mine)
    {
        return Err(Skip::Own);
    }
    if !me.member_session_name.is_empty()
        && caller.ends_with(&format!("/{}", me.member_session_name))
    {
        return Err(Skip::Own);
    }
    // The account the call changed (CloudTrail's recipientAccountId; EventBridge's `account`).
    let account = s(detail, "/recipientAccountId")
        .or_else(|| s(event, "/account"))
        .unwrap_or_default()
        .to_string();
    let p = |key: &str| s(detail, &format!("/requestParameters/{key}")).map(str::to_string);
    let unknown = || Skip::Unknown(format!("{source} {name}"));
    // An id of the tree; the root is no resource of its own (what is attached to it or moved
    // under it shows on the policy or the account).
    let by_id = |id: String| -> Option<Touch> {
        if id.starts_with("ou-") {
            Some(Touch::OrganizationalUnit(id))
        } else if id.starts_with("p-") {
            Some(Touch::Policy(id))
        } else if id.starts_with("r-") {
            None
        } else {
            Some(Touch::Account(id))
        }
    };
    let out: Vec<Touch> = match source {
        "organizations.amazonaws.com" => match name {
            "MoveAccount" => [
                p("accountId"),
                p("sourceParentId"),
                p("destinationParentId"),
            ]
            .into_iter()
            .flatten()
            .filter_map(by_id)
            .collect(),
            "TagResource" | "UntagResource" => {
                p("resourceId").and_then(by_id).into_iter().collect()
            }
            "UpdateOrganizationalUnit" | "DeleteOrganizationalUnit" => p("organizationalUnitId")
                .map(Touch::OrganizationalUnit)
                .into_iter()
                .collect(),
            "CreateOrganizationalUnit" => p("parentId").and_then(by_id).into_iter().collect(),
            "AttachPolicy" | "DetachPolicy" => [p("policyId"), p("targetId")]
                .into_iter()
                .flatten()
                .filter_map(by_id)
                .collect(),
            "UpdatePolicy" | "DeletePolicy" => {
                p("policyId").map(Touch::Policy).into_iter().collect()
            }
            "CloseAccount" | "RemoveAccountFromOrganization" => {
                p("accountId").map(Touch::Account).into_iter().collect()
            }
            "EnableAWSServiceAccess"
            | "DisableAWSServiceAccess"
            | "RegisterDelegatedAdministrator"
            | "DeregisterDelegatedAdministrator"
            | "EnablePolicyType"
            | "DisablePolicyType" => vec![Touch::Organization],
            _ => return Err(unknown()),
        },
        "iam.amazonaws.com" => match name {
            "PutGroupPolicy"
            | "DeleteGroupPolicy"
            | "AttachGroupPolicy"
            | "DetachGroupPolicy"
            | "AddUserToGroup"
            | "RemoveUserFromGroup"
            | "UpdateGroup"
            | "DeleteGroup" => p("groupName")
                .map(|name| Touch::IamGroup {
                    account: account.clone(),
                    name,
                })
                .into_iter()
                .collect(),
            "UpdateAccountPasswordPolicy"
            | "DeleteAccountPasswordPolicy"
            | "CreateAccountAlias"
            | "DeleteAccountAlias" => vec![Touch::Account(account.clone())],
            "EnableOrganizationsRootCredentialsManagement"
            | "EnableOrganizationsRootSessions"
            | "DisableOrganizationsRootCredentialsManagement"
            | "DisableOrganizationsRootSessions" => vec![Touch::Organization],
            _ => return Err(unknown()),
        },
        "cloudtrail.amazonaws.com" => match name {
            "StopLogging" | "StartLogging" | "UpdateTrail" | "DeleteTrail"
            | "PutEventSelectors" => p("name").map(Touch::Trail).into_iter().collect(),
            _ => return Err(unknown()),
        },
        "s3.amazonaws.com" => match name {
            "PutBucketPolicy"
            | "DeleteBucketPolicy"
            | "PutBucketVersioning"
            | "PutBucketEncryption"
            | "DeleteBucketEncryption"
            | "PutBucketPublicAccessBlock"
            | "DeleteBucketPublicAccessBlock"
            | "PutBucketLifecycle"
            | "DeleteBucketLifecycle" => p("bucketName").map(Touch::Bucket).into_iter().collect(),
            _ => return Err(unknown()),
        },
        "sso.amazonaws.com" => match name {
            "CreateAccountAssignment"
            | "DeleteAccountAssignment"
            | "UpdatePermissionSet"
            | "PutInlinePolicyToPermissionSet"
            | "DeleteInlinePolicyFromPermissionSet"
            | "AttachManagedPolicyToPermissionSet"
            | "DetachManagedPolicyFromPermissionSet"
            | "AttachCustomerManagedPolicyReferenceToPermissionSet"
            | "DetachCustomerManagedPolicyReferenceFromPermissionSet"
            | "PutPermissionsBoundaryToPermissionSet"
            | "DeletePermissionsBoundaryFromPermissionSet"
            | "DeletePermissionSet" => p("permissionSetArn")
                .map(Touch::PermissionSet)
                .into_iter()
                .collect(),
            "TagResource" | "UntagResource" => p("resourceArn")
                .map(Touch::PermissionSet)
                .into_iter()
                .collect(),
            _ => return Err(unknown()),
        },
        "identitystore.amazonaws.com" => match name {
            "CreateGroupMembership" | "DeleteGroupMembership" | "UpdateGroup" | "DeleteGroup" => {
                p("groupId")
                    .map(Touch::IdentityStoreGroup)
                    .into_iter()
                    .collect()
            }
            _ => return Err(unknown()),
        },
        "budgets.amazonaws.com" => match name {
            "UpdateBudget" | "DeleteBudget" | "CreateNotification" | "UpdateNotification"
            | "DeleteNotification" | "CreateSubscriber" | "DeleteSubscriber"
            | "UpdateSubscriber" => p("budgetName").map(Touch::Budget).into_iter().collect(),
            _ => return Err(unknown()),
        },
        "logs.amazonaws.com" => match name {
            "PutMetricFilter"
            | "DeleteMetricFilter"
            | "PutRetentionPolicy"
            | "DeleteRetentionPolicy"
            | "DeleteLogGroup" => p("logGroupName").map(Touch::LogGroup).into_iter().collect(),
            _ => return Err(unknown()),
        },
        "monitoring.amazonaws.com" => match name {
            "PutMetricAlarm" => p("alarmName").map(Touch::Alarm).into_iter().collect(),
            "DeleteAlarms" | "DisableAlarmActions" | "EnableAlarmActions" => detail
                .pointer("/requestParameters/alarmNames")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|n| Touch::Alarm(n.to_string()))
                .collect(),
            _ => return Err(unknown()),
        },
        _ => return Err(unknown()),
    };
    if out.is_empty() {
        let has_parameters = detail
            .get("requestParameters")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        return Err(if has_parameters {
            // E.g. a policy attached to the root: nothing but the policy, already named, or
            // nothing managed here at all.
            unknown()
        } else {
            Skip::Malformed(format!("{source} {name} without the parameters it names"))
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An event as EventBridge delivers a CloudTrail record (the shape of AWS's own samples).
    fn event(source: &str, name: &str, params: Value, caller: &str) -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "AWS API Call via CloudTrail",
            "source": format!("aws.{}", source.split('.').next().unwrap()),
            "account": "111111111111",
            "time": "2026-11-27T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.09",
                "userIdentity": {
                    "type": "AssumedRole",
                    "arn": caller,
                    "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_of_session(caller).unwrap_or_default()}}
                },
                "eventTime": "2026-11-27T10:00:00Z",
                "eventSource": source,
                "eventName": name,
                "awsRegion": "us-east-1",
                "requestParameters": params,
                "responseElements": null,
                "recipientAccountId": "222222222222",
                "eventType": "AwsApiCall",
                "managementEvent": true
            }
        })
    }

    const PERSON: &str =
        "arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Admin_1234/alice@example.com";
    const OPERATOR: &str = "arn:aws:sts::111111111111:assumed-role/landing-zone-operator/lzo-pod";

    fn me() -> Identity {
        Identity {
            role_arn: Some("arn:aws:iam::111111111111:role/landing-zone-operator".into()),
            member_session_name: "landing-zone-operator".into(),
        }
    }

    #[test]
    fn an_alarm_changing_state_touches_the_alarm() {
        // As CloudWatch sends it to EventBridge (CloudWatch User Guide, "Alarm events and
        // EventBridge").
        let e = json!({
            "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
            "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": "111111111111", "time": "2026-12-04T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:cloudwatch:us-east-1:111111111111:alarm:org-cis-4.3-root-usage"],
            "detail": {
                "alarmName": "org-cis-4.3-root-usage",
                "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2026-12-04T10:00:00.000+0000"},
                "previousState": {"value": "OK"},
                "configuration": {"metrics": []}
            }
        });
        assert_eq!(
            touched(&e, &me()),
            Ok(vec![Touch::Alarm("org-cis-4.3-root-usage".into())])
        );
        let mut bad = e.clone();
        bad["detail"].as_object_mut().unwrap().remove("alarmName");
        assert!(matches!(touched(&bad, &me()), Err(Skip::Malformed(_))));
    }

    #[test]
    fn events_map_to_what_they_changed() {
        use Touch::*;
        let iam_group = |name: &str| IamGroup {
            account: "222222222222".into(),
            name: name.into(),
        };
        let ps = "arn:aws:sso:::permissionSet/ssoins-1/ps-1";
        // (source, event name, request parameters, what it touched)
        let table = [
            (
                "organizations.amazonaws.com",
                "MoveAccount",
                json!({"accountId": "333333333333", "sourceParentId": "ou-ab12-11111111", "destinationParentId": "r-ab12"}),
                vec![
                    Account("333333333333".into()),
                    OrganizationalUnit("ou-ab12-11111111".into()),
                ],
            ),
            (
                "organizations.amazonaws.com",
                "TagResource",
                json!({"resourceId": "333333333333", "tags": [{"key": "team", "value": "x"}]}),
                vec![Account("333333333333".into())],
            ),
            (
                "organizations.amazonaws.com",
                "UntagResource",
                json!({"resourceId": "ou-ab12-11111111", "tagKeys": ["team"]}),
                vec![OrganizationalUnit("ou-ab12-11111111".into())],
            ),
            (
                "organizations.amazonaws.com",
                "UpdateOrganizationalUnit",
                json!({"organizationalUnitId": "ou-ab12-11111111", "name": "Sec"}),
                vec![OrganizationalUnit("ou-ab12-11111111".into())],
            ),
            (
                "organizations.amazonaws.com",
                "AttachPolicy",
                json!({"policyId": "p-12345678", "targetId": "ou-ab12-11111111"}),
                vec![
                    Policy("p-12345678".into()),
                    OrganizationalUnit("ou-ab12-11111111".into()),
                ],
            ),
            (
                "organizations.amazonaws.com",
                "DetachPolicy",
                json!({"policyId": "p-12345678", "targetId": "r-ab12"}),
                vec![Policy("p-12345678".into())],
            ),
            (
                "organizations.amazonaws.com",
                "UpdatePolicy",
                json!({"policyId": "p-12345678", "content": "{}"}),
                vec![Policy("p-12345678".into())],
            ),
            (
                "organizations.amazonaws.com",
                "RegisterDelegatedAdministrator",
                json!({"accountId": "333333333333", "servicePrincipal": "guardduty.amazonaws.com"}),
                vec![Organization],
            ),
            (
                "iam.amazonaws.com",
                "PutGroupPolicy",
                json!({"groupName": "admins", "policyName": "x", "policyDocument": "{}"}),
                vec![iam_group("admins")],
            ),
            (
                "iam.amazonaws.com",
                "AttachGroupPolicy",
                json!({"groupName": "admins", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
                vec![iam_group("admins")],
            ),
            (
                "iam.amazonaws.com",
                "RemoveUserFromGroup",
                json!({"groupName": "admins", "userName": "bob"}),
                vec![iam_group("admins")],
            ),
            (
                "iam.amazonaws.com",
                "DeleteAccountPasswordPolicy",
                json!(null),
                vec![Account("222222222222".into())],
            ),
            (
                "cloudtrail.amazonaws.com",
                "StopLogging",
                json!({"name": "arn:aws:cloudtrail:us-east-1:111111111111:trail/org"}),
                vec![Trail(
                    "arn:aws:cloudtrail:us-east-1:111111111111:trail/org".into(),
                )],
            ),
            (
                "s3.amazonaws.com",
                "PutBucketPolicy",
                json!({"bucketName": "org-trail-logs", "Host": "org-trail-logs.s3.amazonaws.com", "policy": ""}),
                vec![Bucket("org-trail-logs".into())],
            ),
            (
                "sso.amazonaws.com",
                "CreateAccountAssignment",
                json!({"instanceArn": "arn:aws:sso:::instance/ssoins-1", "targetId": "333333333333", "targetType": "AWS_ACCOUNT", "permissionSetArn": ps, "principalType": "GROUP", "principalId": "g-1"}),
                vec![PermissionSet(ps.into())],
            ),
            (
                "sso.amazonaws.com",
                "DeleteAccountAssignment",
                json!({"instanceArn": "arn:aws:sso:::instance/ssoins-1", "targetId": "333333333333", "targetType": "AWS_ACCOUNT", "permissionSetArn": ps, "principalType": "GROUP", "principalId": "g-1"}),
                vec![PermissionSet(ps.into())],
            ),
            (
                "identitystore.amazonaws.com",
                "DeleteGroupMembership",
                json!({"identityStoreId": "d-1", "membershipId": "m-1", "groupId": "g-1"}),
                vec![IdentityStoreGroup("g-1".into())],
            ),
            // The trail's detection: a metric filter deleted, alarms deleted or silenced.
            (
                "logs.amazonaws.com",
                "DeleteMetricFilter",
                json!({"logGroupName": "aws-cloudtrail-logs-org", "filterName": "org-cis-4.3-root-usage"}),
                vec![LogGroup("aws-cloudtrail-logs-org".into())],
            ),
            (
                "monitoring.amazonaws.com",
                "DeleteAlarms",
                json!({"alarmNames": ["org-cis-4.3-root-usage", "org-cis-4.1-unauthorized-api-calls"]}),
                vec![
                    Alarm("org-cis-4.3-root-usage".into()),
                    Alarm("org-cis-4.1-unauthorized-api-calls".into()),
                ],
            ),
            (
                "monitoring.amazonaws.com",
                "DisableAlarmActions",
                json!({"alarmNames": ["org-cis-4.3-root-usage"]}),
                vec![Alarm("org-cis-4.3-root-usage".into())],
            ),
        ];
        for (source, name, params, want) in table {
            assert!(
                EVENT_SOURCES.contains(&source),
                "the change-event rule must match {source}"
            );
            let got = touched(&event(source, name, params, PERSON), &me());
            assert_eq!(got, Ok(want), "{source} {name}");
        }
    }

    #[test]
    fn what_is_not_a_change_here_is_skipped_with_its_reason() {
        let move_params = json!({"accountId": "333333333333", "sourceParentId": "r-ab12", "destinationParentId": "ou-ab12-11111111"});
        // The operator's own writes, in the management account and in a member account.
        assert_eq!(
            touched(
                &event(
                    "organizations.amazonaws.com",
                    "MoveAccount",
                    move_params.clone(),
                    OPERATOR
                ),
                &me()
            ),
            Err(Skip::Own)
        );
        let member = "arn:aws:sts::222222222222:assumed-role/OrganizationAccountAccessRole/landing-zone-operator";
        assert_eq!(
            touched(
                &event(
                    "iam.amazonaws.com",
                    "PutGroupPolicy",
                    json!({"groupName": "g"}),
                    member
                ),
                &me()
            ),
            Err(Skip::Own)
        );
        // A person in the same member role is not the operator.
        let person = "arn:aws:sts::222222222222:assumed-role/OrganizationAccountAccessRole/alice";
        assert!(
            touched(
                &event(
                    "iam.amazonaws.com",
                    "PutGroupPolicy",
                    json!({"groupName": "g"}),
                    person
                ),
                &me()
            )
            .is_ok()
        );
        // A failed call changed nothing.
        let mut failed = event(
            "organizations.amazonaws.com",
            "MoveAccount",
            move_params,
            PERSON,
        );
        failed["detail"]["errorCode"] = json!("AccessDenied");
        assert_eq!(touched(&failed, &me()), Err(Skip::Failed));
        // Services and calls that change nothing managed here.
        assert!(matches!(
            touched(
                &event("ec2.amazonaws.com", "RunInstances", json!({}), PERSON),
                &me()
            ),
            Err(Skip::Unknown(_))
        ));
        assert!(matches!(
            touched(
                &event(
                    "organizations.amazonaws.com",
                    "ListAccounts",
                    json!({}),
                    PERSON
                ),
                &me()
            ),
            Err(Skip::Unknown(_))
        ));
        // Malformed: not an event, no detail, a call without the parameter it names.
        for bad in [
            json!("hello"),
            json!({"detail": "x"}),
            json!({"detail": {"eventSource": "iam.amazonaws.com"}}),
        ] {
            assert!(
                matches!(touched(&bad, &me()), Err(Skip::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            touched(
                &event(
                    "organizations.amazonaws.com",
                    "UpdatePolicy",
                    json!({}),
                    PERSON
                ),
                &me()
            ),
            Err(Skip::Malformed(_))
        ));
    }

    #[test]
    fn the_role_behind_a_session() {
        assert_eq!(
            role_of_session(OPERATOR).as_deref(),
            Some("arn:aws:iam::111111111111:role/landing-zone-operator")
        );
        assert_eq!(
            role_of_session("arn:aws-us-gov:sts::1:assumed-role/R/s").as_deref(),
            Some("arn:aws-us-gov:iam::1:role/R")
        );
        assert_eq!(role_of_session("arn:aws:iam::1:user/bob"), None);
    }
}
