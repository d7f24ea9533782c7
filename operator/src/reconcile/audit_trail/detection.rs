//! The trail's detection (pure): desired + observed → actions and drift for the CloudWatch Logs
//! delivery (log group, retention, the role CloudTrail writes with), the topic the alarms publish
//! to (its KMS key, its subscribers), the CIS metric filters and the alarms on them and on the bill.
//!
//! Filters and alarms are the operator's by name (`<trail>-cis-…`, `<trail>-billing`); what other
//! tools added to the log group, the topic or CloudWatch is left alone.

use crate::api::Drift;
use crate::api::audit_trail::CisAlarm;
use crate::aws::alarms::{KeyInfo, LogGroup, MetricAlarm, MetricFilter, NamedKey, RoleWithPolicy, Subscription};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The inline policy of the role CloudTrail writes with.
pub const ROLE_POLICY_NAME: &str = "cloudtrail-to-cloudwatch-logs";

/// Billing metrics exist in us-east-1 only.
pub const BILLING_REGION: &str = "us-east-1";

impl CisAlarm {
    /// The requirement in the CIS AWS Foundations Benchmark v5.0.0, section 4 (Monitoring).
    pub fn cis_id(self) -> &'static str {
        use CisAlarm::*;
        match self {
            UnauthorizedApiCalls => "4.1",
            ConsoleSignInWithoutMfa => "4.2",
            RootUsage => "4.3",
            IamPolicyChanges => "4.4",
            CloudTrailChanges => "4.5",
            ConsoleAuthenticationFailures => "4.6",
            KmsKeyDeletion => "4.7",
            S3BucketPolicyChanges => "4.8",
            ConfigChanges => "4.9",
            SecurityGroupChanges => "4.10",
            NetworkAclChanges => "4.11",
            NetworkGatewayChanges => "4.12",
            RouteTableChanges => "4.13",
            VpcChanges => "4.14",
            OrganizationsChanges => "4.15",
        }
    }

    /// The metric filter pattern the benchmark (v5.0.0, 4.1–4.15, "Remediation") prescribes.
    pub fn filter_pattern(self) -> String {
        use CisAlarm::*;
        let any = |source: Option<&str>, names: &[&str]| {
            let names = names
                .iter()
                .map(|n| format!("($.eventName = {n})"))
                .collect::<Vec<_>>()
                .join(" || ");
            match source {
                Some(s) => format!("{{ ($.eventSource = {s}) && ({names}) }}"),
                None => format!("{{ {names} }}"),
            }
        };
        match self {
            UnauthorizedApiCalls => r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") && ($.sourceIPAddress != "delivery.logs.amazonaws.com") && ($.eventName != "HeadBucket") }"#.into(),
            ConsoleSignInWithoutMfa => r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && ($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }"#.into(),
            RootUsage => r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#.into(),
            IamPolicyChanges => any(None, &[
                "DeleteGroupPolicy", "DeleteRolePolicy", "DeleteUserPolicy", "PutGroupPolicy",
                "PutRolePolicy", "PutUserPolicy", "CreatePolicy", "DeletePolicy",
                "CreatePolicyVersion", "DeletePolicyVersion", "AttachRolePolicy", "DetachRolePolicy",
                "AttachUserPolicy", "DetachUserPolicy", "AttachGroupPolicy", "DetachGroupPolicy",
            ]),
            CloudTrailChanges => any(None, &["CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging"]),
            ConsoleAuthenticationFailures => r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#.into(),
            KmsKeyDeletion => any(Some("kms.amazonaws.com"), &["DisableKey", "ScheduleKeyDeletion"]),
            S3BucketPolicyChanges => any(Some("s3.amazonaws.com"), &[
                "PutBucketAcl", "PutBucketPolicy", "PutBucketCors", "PutBucketLifecycle",
                "PutBucketReplication", "DeleteBucketPolicy", "DeleteBucketCors",
                "DeleteBucketLifecycle", "DeleteBucketReplication",
            ]),
            ConfigChanges => any(Some("config.amazonaws.com"), &[
                "StopConfigurationRecorder", "DeleteDeliveryChannel", "PutDeliveryChannel",
                "PutConfigurationRecorder",
            ]),
            SecurityGroupChanges => any(None, &[
                "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress", "CreateSecurityGroup",
                "DeleteSecurityGroup",
            ]),
            NetworkAclChanges => any(None, &[
                "CreateNetworkAcl", "CreateNetworkAclEntry", "DeleteNetworkAcl",
                "DeleteNetworkAclEntry", "ReplaceNetworkAclEntry", "ReplaceNetworkAclAssociation",
            ]),
            NetworkGatewayChanges => any(None, &[
                "CreateCustomerGateway", "DeleteCustomerGateway", "AttachInternetGateway",
                "CreateInternetGateway", "DeleteInternetGateway", "DetachInternetGateway",
            ]),
            RouteTableChanges => any(Some("ec2.amazonaws.com"), &[
                "CreateRoute", "CreateRouteTable", "ReplaceRoute", "ReplaceRouteTableAssociation",
                "DeleteRouteTable", "DeleteRoute", "DisassociateRouteTable",
            ]),
            VpcChanges => any(None, &[
                "CreateVpc", "DeleteVpc", "ModifyVpcAttribute", "AcceptVpcPeeringConnection",
                "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection",
                "RejectVpcPeeringConnection", "AttachClassicLinkVpc", "DetachClassicLinkVpc",
                "DisableVpcClassicLink", "EnableVpcClassicLink",
            ]),
            OrganizationsChanges => any(Some("organizations.amazonaws.com"), &[
                "AcceptHandshake", "AttachPolicy", "CancelHandshake", "CreateAccount",
                "CreateOrganization", "CreateOrganizationalUnit", "CreatePolicy",
                "DeclineHandshake", "DeleteOrganization", "DeleteOrganizationalUnit",
                "DeletePolicy", "DetachPolicy", "DisablePolicyType", "EnableAllFeatures",
                "EnablePolicyType", "InviteAccountToOrganization", "LeaveOrganization",
                "MoveAccount", "RemoveAccountFromOrganization", "UpdateOrganizationalUnit",
                "UpdatePolicy",
            ]),
        }
    }

    /// The control's names in AWS: its CloudWatch metric, and the suffix of its metric filter's
    /// and alarm's names. Written out, never derived from the Rust name: renaming a variant must
    /// not rename (so recreate) what exists in every landing zone.
    pub fn aws_names(self) -> (&'static str, &'static str) {
        use CisAlarm::*;
        match self {
            UnauthorizedApiCalls => ("UnauthorizedApiCalls", "unauthorized-api-calls"),
            ConsoleSignInWithoutMfa => ("ConsoleSignInWithoutMfa", "console-sign-in-without-mfa"),
            RootUsage => ("RootUsage", "root-usage"),
            IamPolicyChanges => ("IamPolicyChanges", "iam-policy-changes"),
            CloudTrailChanges => ("CloudTrailChanges", "cloud-trail-changes"),
            ConsoleAuthenticationFailures => ("ConsoleAuthenticationFailures", "console-authentication-failures"),
            KmsKeyDeletion => ("KmsKeyDeletion", "kms-key-deletion"),
            S3BucketPolicyChanges => ("S3BucketPolicyChanges", "s3-bucket-policy-changes"),
            ConfigChanges => ("ConfigChanges", "config-changes"),
            SecurityGroupChanges => ("SecurityGroupChanges", "security-group-changes"),
            NetworkAclChanges => ("NetworkAclChanges", "network-acl-changes"),
            NetworkGatewayChanges => ("NetworkGatewayChanges", "network-gateway-changes"),
            RouteTableChanges => ("RouteTableChanges", "route-table-changes"),
            VpcChanges => ("VpcChanges", "vpc-changes"),
            OrganizationsChanges => ("OrganizationsChanges", "organizations-changes"),
        }
    }

    /// The CloudWatch metric the control's filter counts into.
    pub fn metric_name(self) -> &'static str {
        self.aws_names().0
    }

    /// The control whose metric this is.
    pub fn from_metric_name(name: &str) -> Option<CisAlarm> {
        CisAlarm::all().into_iter().find(|c| c.metric_name() == name)
    }

    /// The key of the control's alarm among a trail's alarms (`cis.<metric>`).
    pub fn alarm_key(self) -> String {
        format!("cis.{}", self.metric_name())
    }
}

/// Where the topic lives and which key it is encrypted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicKey {
    /// A key named in the spec (id, ARN or alias), used as it is.
    Given(String),
    /// The operator's own key behind this alias, made with `policy`.
    Own { alias: String, policy: Value },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The trail's (and the log group's) region.
    pub region: String,
    pub log_group: Option<DesiredLogGroup>,
    /// Topic name, key, subscribers; `None` without `spec.alarms`.
    pub topic: Option<DesiredTopic>,
    pub filters: Vec<MetricFilter>,
    pub alarms: Vec<(String, MetricAlarm)>,
    /// Alarms are the operator's when their name starts with this.
    pub alarm_prefix: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredLogGroup {
    pub name: String,
    pub retention_in_days: i32,
    pub role_name: String,
    pub trust: Value,
    pub policy: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTopic {
    pub name: String,
    pub key: TopicKey,
    pub subscribers: Vec<String>,
    /// Every region with an alarm (the trail's; us-east-1 for the billing alarm).
    pub regions: Vec<String>,
    /// region → ARN.
    pub arns: BTreeMap<String, String>,
}

/// What AWS has, per region where it is regional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub log_group: Option<LogGroup>,
    pub role: Option<RoleWithPolicy>,
    pub filters: Vec<MetricFilter>,
    /// region → the topic's KMS key (`""` unencrypted); a region without a topic is absent.
    pub topics: BTreeMap<String, String>,
    /// region → the operator's key, when it exists.
    pub keys: BTreeMap<String, KeyInfo>,
    /// region → the topic's subscriptions.
    pub subscriptions: BTreeMap<String, Vec<Subscription>>,
    /// The operator's alarms, every region.
    pub alarms: Vec<MetricAlarm>,
    /// region → the key `alarms.topic.kmsKeyId` names, as KMS describes it there (`None`: KMS
    /// knows no such key in that region).
    pub named_keys: BTreeMap<String, Option<NamedKey>>,
    /// Whether the `AWS/Billing` `EstimatedCharges` metric exists (read with a billing alarm only).
    pub billing_metric: Option<bool>,
}

/// What a billing alarm cannot do yet, if anything: CloudWatch has the estimated-charges metric
/// only once "Receive Billing Alerts" is on in the management account's billing preferences, a
/// setting no API changes (AWS Billing User Guide, "Enabling billing alerts";
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/monitor_estimated_charges_with_cloudwatch.html>).
/// Until then the alarm stays INSUFFICIENT_DATA and never fires.
pub fn billing_caveat(observed: &Observed) -> Option<String> {
    (observed.billing_metric == Some(false)).then(|| {
        "the trail is logging with its alarms, but the billing alarm cannot fire: CloudWatch has no AWS/Billing EstimatedCharges metric, which AWS publishes only once billing alerts are on (management account, Billing console: Billing preferences, Alert preferences, \"Receive CloudWatch billing alerts\"); the operator cannot turn that on. The metric appears within hours of turning it on".to_string()
    })
}

/// Why CloudWatch alarms could not publish to a topic encrypted with the key the spec names, if
/// they could not. SNS encrypts with any key it may use; CloudWatch must itself be allowed
/// `kms:Decrypt` and `kms:GenerateDataKey*` on that key (SNS Developer Guide, "Enable
/// compatibility between event sources from AWS services and encrypted topics",
/// <https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services>),
/// which the AWS managed `aws/sns` key never allows and its policy cannot be changed to.
/// Only the key policy is read: access given by a KMS grant is not seen, and such a key is
/// refused too (say so in the message).
pub fn unusable_key(desired: &Desired, observed: &Observed) -> Option<String> {
    let topic = desired.topic.as_ref()?;
    let TopicKey::Given(named) = &topic.key else {
        return None;
    };
    for region in &topic.regions {
        let problem = match observed.named_keys.get(region)? {
            None => format!("KMS has no key {named} in {region}"),
            Some(k) if k.aws_managed => format!(
                "{named} is an AWS managed key ({}); CloudWatch alarms cannot publish to a topic it encrypts, and its policy cannot be changed",
                k.arn
            ),
            Some(k) if !k.policy.as_ref().is_some_and(lets_cloudwatch_use) => format!(
                "the policy of key {} does not allow cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey* (a grant is not read: put it in the key policy)",
                k.arn
            ),
            Some(_) => continue,
        };
        return Some(format!(
            "alarms.topic.kmsKeyId: {problem}, so the alarms could never reach the topic. Name a customer managed key in {region} whose policy lets cloudwatch.amazonaws.com use kms:Decrypt and kms:GenerateDataKey*, or leave kmsKeyId out and the operator makes one; the topic and its alarms wait until then"
        ));
    }
    None
}

/// Whether Allow statements of a key policy let CloudWatch (the service principal
/// `cloudwatch.amazonaws.com`) use the key to publish: `kms:Decrypt` and `kms:GenerateDataKey*`.
/// Their conditions are not evaluated (CloudWatch sends `aws:SourceAccount` and `aws:SourceArn`,
/// which such a statement may check).
fn lets_cloudwatch_use(policy: &Value) -> bool {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            _ => vec![],
        }
    };
    let statements = match &policy["Statement"] {
        Value::Array(a) => a.clone(),
        s @ Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    let covers = |actions: &[String], wanted: &str| {
        actions.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.strip_suffix('*') {
                Some(prefix) => wanted.starts_with(prefix),
                None => a == wanted,
            }
        })
    };
    let mut decrypt = false;
    let mut data_key = false;
    for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
        // Named as a service principal, as AWS's page shows it: a `*` principal is usually held
        // to SNS by `kms:ViaService` (as the aws/sns key's own policy is), which CloudWatch's
        // calls do not meet; conditions are not evaluated here, so `*` is not taken as CloudWatch.
        let names_cloudwatch = strings(&s["Principal"]["Service"])
            .iter()
            .any(|p| p == "cloudwatch.amazonaws.com");
        if !names_cloudwatch {
            continue;
        }
        let actions = strings(&s["Action"]);
        decrypt |= covers(&actions, "kms:decrypt");
        data_key |= covers(&actions, "kms:generatedatakey");
    }
    decrypt && data_key
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    CreateLogGroup,
    PutRetention(i32),
    CreateRole,
    SetRoleTrust,
    PutRolePolicy,
    /// Create the operator's key (and its alias) in a region.
    CreateKey(String),
    EnableKeyRotation(String),
    /// The operator's own key's policy back to one CloudWatch can use.
    PutKeyPolicy(String),
    CreateTopic(String),
    SetTopicKey(String),
    Subscribe { region: String, email: String },
    PutMetricFilter(MetricFilter),
    PutAlarm(MetricAlarm),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateLogGroup => write!(f, "create the trail's log group"),
            Action::PutRetention(d) => write!(f, "keep the trail's log events {d} days"),
            Action::CreateRole => write!(f, "create the role CloudTrail writes to the log group with"),
            Action::SetRoleTrust => write!(f, "let CloudTrail assume the role it writes to the log group with"),
            Action::PutRolePolicy => write!(f, "limit the CloudTrail role to the log group's streams"),
            Action::CreateKey(r) => write!(f, "create the alarm topic's KMS key in {r}"),
            Action::EnableKeyRotation(r) => write!(f, "turn on rotation of the alarm topic's KMS key in {r}"),
            Action::PutKeyPolicy(r) => write!(f, "let CloudWatch use the alarm topic's KMS key in {r} again"),
            Action::CreateTopic(r) => write!(f, "create the alarm topic in {r}"),
            Action::SetTopicKey(r) => write!(f, "encrypt the alarm topic in {r}"),
            Action::Subscribe { region, email } => {
                write!(f, "subscribe {email} to the alarm topic in {region}")
            }
            Action::PutMetricFilter(m) => write!(f, "put metric filter {}", m.name),
            Action::PutAlarm(a) => write!(f, "put alarm {}", a.name),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
}

/// The trust of the role CloudTrail writes with: CloudTrail, with no condition. CloudTrail
/// assumes this role without `aws:SourceArn` or `aws:SourceAccount` in the request, so a
/// condition on either (confused-deputy prevention, right for the bucket policy) would make the
/// role unusable: AWS says the prevention does not apply to this role (CloudTrail User Guide,
/// "Role policy document for CloudTrail to use CloudWatch Logs for monitoring",
/// <https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html>).
/// What the role may do is limited instead: this log group's streams only ([`role_policy`]).
pub fn role_trust() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }],
    })
}

/// What that role may do: create and write the streams of this log group, nothing else (CloudTrail
/// names an organization trail's streams `<account>_CloudTrail_<region>` and
/// `<org id>_<account>_CloudTrail_<region>`).
pub fn role_policy(log_group_arn_base: &str, management_account: &str, org_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WriteTheTrailsStreams",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                format!("{log_group_arn_base}:log-stream:{management_account}_CloudTrail_*"),
                format!("{log_group_arn_base}:log-stream:{org_id}_*"),
            ],
        }],
    })
}

/// The policy of the operator's topic key: the account administers it (IAM decides who may), and
/// CloudWatch (alarms) and SNS in this account may use it to publish.
pub fn key_policy(partition: &str, account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:{partition}:iam::{account}:root")},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            },
        ],
    })
}

/// The CIS filter and alarm of one control.
pub fn cis(trail: &str, namespace: &str, region: &str, topic_arn: &str, control: CisAlarm) -> (MetricFilter, MetricAlarm) {
    let name = format!("{trail}-cis-{}-{}", control.cis_id(), control.aws_names().1);
    let metric = control.metric_name().to_string();
    (
        MetricFilter {
            name: name.clone(),
            pattern: control.filter_pattern(),
            metric_name: metric.clone(),
            namespace: namespace.to_string(),
            value: "1".into(),
        },
        MetricAlarm {
            name,
            region: region.to_string(),
            description: format!(
                "CIS AWS Foundations Benchmark v5.0.0 {}: {control:?} in the organization trail {trail}",
                control.cis_id()
            ),
            metric_name: metric,
            namespace: namespace.to_string(),
            statistic: "Sum".into(),
            period: 300,
            evaluation_periods: 1,
            threshold: 1.0,
            comparison: "GreaterThanOrEqualToThreshold".into(),
            actions: vec![topic_arn.to_string()],
            dimensions: vec![],
            treat_missing_data: Some("notBreaching".into()),
            actions_enabled: true,
            state: String::new(),
        },
    )
}

/// The alarm on the month's estimated charges (AWS/Billing, us-east-1, every 6 hours).
pub fn billing(trail: &str, topic_arn: &str, threshold_usd: i64) -> MetricAlarm {
    MetricAlarm {
        name: format!("{trail}-billing-estimated-charges"),
        region: BILLING_REGION.into(),
        description: format!("Estimated charges this month over {threshold_usd} USD"),
        metric_name: "EstimatedCharges".into(),
        namespace: "AWS/Billing".into(),
        statistic: "Maximum".into(),
        period: 21_600,
        evaluation_periods: 1,
        threshold: threshold_usd as f64,
        comparison: "GreaterThanThreshold".into(),
        actions: vec![topic_arn.to_string()],
        dimensions: vec![("Currency".into(), "USD".into())],
        treat_missing_data: Some("notBreaching".into()),
        actions_enabled: true,
        state: String::new(),
    }
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut out = Plan::default();
    if let Some(want) = &desired.log_group {
        match &observed.log_group {
            None => {
                out.actions.push(Action::CreateLogGroup);
                out.actions.push(Action::PutRetention(want.retention_in_days));
            }
            Some(g) if g.retention_in_days != Some(want.retention_in_days) => {
                out.drift.push(Drift::new(
                    "cloudWatchLogs.retentionInDays",
                    want.retention_in_days,
                    g.retention_in_days.map_or("never expire".to_string(), |d| d.to_string()),
                ));
                out.actions.push(Action::PutRetention(want.retention_in_days));
            }
            Some(_) => {}
        }
        match &observed.role {
            None => out.actions.extend([Action::CreateRole, Action::PutRolePolicy]),
            Some(r) => {
                if r.trust != want.trust {
                    out.drift.push(Drift::new("cloudWatchLogs.role.trust", "cloudtrail.amazonaws.com, no condition", "different"));
                    out.actions.push(Action::SetRoleTrust);
                }
                if r.policy.as_ref() != Some(&want.policy) {
                    out.drift.push(Drift::new(
                        "cloudWatchLogs.role.policy",
                        "write the log group's streams",
                        if r.policy.is_some() { "different" } else { "<none>" },
                    ));
                    out.actions.push(Action::PutRolePolicy);
                }
            }
        }
        let have: BTreeMap<&str, &MetricFilter> =
            observed.filters.iter().map(|f| (f.name.as_str(), f)).collect();
        for f in &desired.filters {
            match have.get(f.name.as_str()) {
                Some(h) if *h == f => {}
                found => {
                    if observed.log_group.is_some() {
                        out.drift.push(Drift::new(
                            format!("alarms.cis.{}.metricFilter", f.metric_name),
                            "the benchmark's pattern",
                            if found.is_some() { "different" } else { "deleted" },
                        ));
                    }
                    out.actions.push(Action::PutMetricFilter(f.clone()));
                }
            }
        }
    }
    if let Some(topic) = &desired.topic {
        for region in &topic.regions {
            let key = match &topic.key {
                TopicKey::Given(k) => k.clone(),
                TopicKey::Own { alias, .. } => {
                    match observed.keys.get(region) {
                        None => out.actions.extend([
                            Action::CreateKey(region.clone()),
                            Action::EnableKeyRotation(region.clone()),
                        ]),
                        Some(k) => {
                            if !k.rotation {
                                out.drift.push(Drift::new(
                                    format!("alarms.topic.key.{region}.rotation"),
                                    "enabled",
                                    "disabled",
                                ));
                                out.actions.push(Action::EnableKeyRotation(region.clone()));
                            }
                            // A policy someone narrowed so that CloudWatch cannot encrypt with the
                            // key: every alarm's notification would fail, silently.
                            if k.policy.as_ref().is_some_and(|p| !lets_cloudwatch_use(p)) {
                                out.drift.push(Drift::new(
                                    format!("alarms.topic.key.{region}.policy"),
                                    "cloudwatch.amazonaws.com may kms:Decrypt and kms:GenerateDataKey*",
                                    "CloudWatch left out",
                                ));
                                out.actions.push(Action::PutKeyPolicy(region.clone()));
                            }
                        }
                    }
                    alias.clone()
                }
            };
            match observed.topics.get(region) {
                None => out.actions.push(Action::CreateTopic(region.clone())),
                Some(have) if !same_key(have, &key, observed.keys.get(region)) => {
                    out.drift.push(Drift::new(
                        format!("alarms.topic.kmsKeyId.{region}"),
                        &key,
                        if have.is_empty() { "<not encrypted>" } else { have },
                    ));
                    out.actions.push(Action::SetTopicKey(region.clone()));
                }
                Some(_) => {}
            }
            let subs = observed.subscriptions.get(region);
            for email in &topic.subscribers {
                let subscribed = subs.is_some_and(|s| {
                    s.iter().any(|s| s.protocol == "email" && s.endpoint.eq_ignore_ascii_case(email))
                });
                if !subscribed {
                    out.actions.push(Action::Subscribe {
                        region: region.clone(),
                        email: email.clone(),
                    });
                }
            }
        }
    }
    let have: BTreeMap<&str, &MetricAlarm> =
        observed.alarms.iter().map(|a| (a.name.as_str(), a)).collect();
    for (watches, a) in &desired.alarms {
        match have.get(a.name.as_str()) {
            Some(h) if h.same_settings(a) => {}
            found => {
                if found.is_some() || observed.topics.contains_key(&a.region) {
                    out.drift.push(Drift::new(
                        format!("alarms.{watches}.alarm"),
                        "as the spec says",
                        if found.is_some() { "different" } else { "deleted" },
                    ));
                }
                out.actions.push(Action::PutAlarm(a.clone()));
            }
        }
    }
    out
}

/// SNS reports the key as it was set (alias, id or ARN): the operator's key matches by any of them.
fn same_key(have: &str, want: &str, own: Option<&KeyInfo>) -> bool {
    have == want || own.is_some_and(|k| have == k.id || have == k.arn)
}

/// Each alarm's state and what it watches, for status and the gauge.
pub fn alarm_states(desired: &Desired, observed: &Observed) -> Vec<(String, String, String)> {
    desired
        .alarms
        .iter()
        .map(|(watches, a)| {
            let state = observed
                .alarms
                .iter()
                .find(|o| o.name == a.name)
                .map(|o| o.state.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "INSUFFICIENT_DATA".into());
            (a.name.clone(), watches.clone(), state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:111111111111:trail/org";
    const GROUP: &str = "arn:aws:logs:us-east-1:111111111111:log-group:aws-cloudtrail-logs-org";

    fn topic_arn(region: &str) -> String {
        format!("arn:aws:sns:{region}:111111111111:security-alarms")
    }

    fn desired() -> Desired {
        let mut filters = vec![];
        let mut alarms = vec![];
        for c in [CisAlarm::RootUsage, CisAlarm::OrganizationsChanges] {
            let (f, a) = cis("org", "LandingZone/CIS", "us-east-1", &topic_arn("us-east-1"), c);
            filters.push(f);
            alarms.push((c.alarm_key(), a));
        }
        alarms.push(("billing".into(), billing("org", &topic_arn("us-east-1"), 1000)));
        Desired {
            region: "us-east-1".into(),
            log_group: Some(DesiredLogGroup {
                name: "aws-cloudtrail-logs-org".into(),
                retention_in_days: 365,
                role_name: "org-cloudwatch-logs".into(),
                trust: role_trust(),
                policy: role_policy(GROUP, "111111111111", "o-abc"),
            }),
            topic: Some(DesiredTopic {
                name: "security-alarms".into(),
                key: TopicKey::Own {
                    alias: "alias/security-alarms".into(),
                    policy: key_policy("aws", "111111111111"),
                },
                subscribers: vec!["security@example.com".into()],
                regions: vec!["us-east-1".into()],
                arns: [("us-east-1".to_string(), topic_arn("us-east-1"))].into(),
            }),
            filters,
            alarms,
            alarm_prefix: "org-".into(),
        }
    }

    /// AWS as the desired state would leave it.
    fn converged(d: &Desired) -> Observed {
        let lg = d.log_group.as_ref().unwrap();
        let key = KeyInfo {
            id: "k-1".into(),
            arn: "arn:aws:kms:us-east-1:111111111111:key/k-1".into(),
            rotation: true,
            policy: Some(key_policy("aws", "111111111111")),
        };
        Observed {
            log_group: Some(LogGroup {
                arn: format!("{GROUP}:*"),
                retention_in_days: Some(365),
            }),
            role: Some(RoleWithPolicy {
                arn: "arn:aws:iam::111111111111:role/org-cloudwatch-logs".into(),
                trust: lg.trust.clone(),
                policy: Some(lg.policy.clone()),
            }),
            filters: d.filters.clone(),
            topics: [("us-east-1".to_string(), "alias/security-alarms".to_string())].into(),
            keys: [("us-east-1".to_string(), key)].into(),
            subscriptions: [(
                "us-east-1".to_string(),
                vec![Subscription {
                    endpoint: "security@example.com".into(),
                    protocol: "email".into(),
                    arn: "PendingConfirmation".into(),
                }],
            )]
            .into(),
            alarms: d
                .alarms
                .iter()
                .map(|(_, a)| MetricAlarm {
                    state: "OK".into(),
                    description: "edited by hand: not compared".into(),
                    ..a.clone()
                })
                .collect(),
            named_keys: BTreeMap::new(),
            billing_metric: d.alarms.iter().any(|(w, _)| w == "billing").then_some(true),
        }
    }

    fn names(p: &Plan) -> Vec<String> {
        p.actions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_control_has_its_own_names_in_aws() {
        let all = CisAlarm::all();
        assert_eq!(all.len(), 15);
        let metrics: std::collections::BTreeSet<_> = all.iter().map(|c| c.metric_name()).collect();
        let suffixes: std::collections::BTreeSet<_> = all.iter().map(|c| c.aws_names().1).collect();
        assert_eq!((metrics.len(), suffixes.len()), (15, 15), "no two controls share a name");
        for c in &all {
            assert_eq!(CisAlarm::from_metric_name(c.metric_name()), Some(*c));
            let suffix = c.aws_names().1;
            assert!(
                suffix.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
                "{suffix}"
            );
        }
        // The names landing zones have in AWS today (a change here recreates their alarms).
        let (f, a) = cis("org", "LandingZone/CIS", "us-east-1", "arn:aws:sns:us-east-1:1:t", CisAlarm::S3BucketPolicyChanges);
        assert_eq!(f.name, "org-cis-4.8-s3-bucket-policy-changes");
        assert_eq!(f.metric_name, "S3BucketPolicyChanges");
        assert_eq!(a.name, "org-cis-4.8-s3-bucket-policy-changes");
        assert_eq!(CisAlarm::from_metric_name("NoSuchControl"), None);
    }

    #[test]
    fn from_nothing_in_the_order_aws_needs() {
        let d = desired();
        let p = plan(&d, &Observed::default());
        assert_eq!(
            names(&p),
            vec![
                "create the trail's log group",
                "keep the trail's log events 365 days",
                "create the role CloudTrail writes to the log group with",
                "limit the CloudTrail role to the log group's streams",
                "put metric filter org-cis-4.3-root-usage",
                "put metric filter org-cis-4.15-organizations-changes",
                "create the alarm topic's KMS key in us-east-1",
                "turn on rotation of the alarm topic's KMS key in us-east-1",
                "create the alarm topic in us-east-1",
                "subscribe security@example.com to the alarm topic in us-east-1",
                "put alarm org-cis-4.3-root-usage",
                "put alarm org-cis-4.15-organizations-changes",
                "put alarm org-billing-estimated-charges",
            ]
        );
        assert!(p.drift.is_empty(), "nothing existed, so nothing drifted: {:?}", p.drift);
    }

    #[test]
    fn converged_plans_nothing_and_a_pending_mailbox_is_not_subscribed_again() {
        let d = desired();
        let p = plan(&d, &converged(&d));
        assert!(p.actions.is_empty(), "{:?}", names(&p));
        assert!(p.drift.is_empty());
    }

    #[test]
    fn hand_changes_are_drift_and_put_back() {
        let d = desired();
        let mut o = converged(&d);
        o.filters.retain(|f| !f.name.contains("root-usage"));
        o.filters[0].pattern = "{ $.eventName = CreateAccount }".into();
        o.alarms[2].threshold = 5000.0;
        // Silenced by hand (DisableAlarmActions): notifying again.
        o.alarms[1].actions_enabled = false;
        o.log_group.as_mut().unwrap().retention_in_days = None;
        o.topics.insert("us-east-1".into(), String::new());
        o.keys.get_mut("us-east-1").unwrap().rotation = false;
        // CloudWatch's statement removed from the operator's key by hand.
        o.keys.get_mut("us-east-1").unwrap().policy = Some(json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "kms:*", "Resource": "*"}]}));
        // Someone else's filter and subscriber: left alone.
        o.filters.push(MetricFilter {
            name: "someone-elses".into(),
            ..Default::default()
        });
        o.subscriptions.get_mut("us-east-1").unwrap().push(Subscription {
            endpoint: "https://hooks.example.com".into(),
            protocol: "https".into(),
            arn: "arn:aws:sns:us-east-1:111111111111:security-alarms:1".into(),
        });
        let p = plan(&d, &o);
        assert_eq!(
            names(&p),
            vec![
                "keep the trail's log events 365 days",
                "put metric filter org-cis-4.3-root-usage",
                "put metric filter org-cis-4.15-organizations-changes",
                "turn on rotation of the alarm topic's KMS key in us-east-1",
                "let CloudWatch use the alarm topic's KMS key in us-east-1 again",
                "encrypt the alarm topic in us-east-1",
                "put alarm org-cis-4.15-organizations-changes",
                "put alarm org-billing-estimated-charges",
            ]
        );
        let fields: Vec<&str> = p.drift.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "cloudWatchLogs.retentionInDays",
                "alarms.cis.RootUsage.metricFilter",
                "alarms.cis.OrganizationsChanges.metricFilter",
                "alarms.topic.key.us-east-1.rotation",
                "alarms.topic.key.us-east-1.policy",
                "alarms.topic.kmsKeyId.us-east-1",
                "alarms.cis.OrganizationsChanges.alarm",
                "alarms.billing.alarm",
            ]
        );
        assert_eq!(p.drift[1].observed, "deleted");
        assert_eq!(p.drift[2].observed, "different");
    }

    #[test]
    fn a_role_widened_by_hand_is_narrowed_again() {
        let d = desired();
        let mut o = converged(&d);
        let r = o.role.as_mut().unwrap();
        r.policy = Some(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}));
        // The trust this operator wrote before: CloudTrail sends no aws:SourceArn to this role.
        r.trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceArn": TRAIL}}}]});
        assert_eq!(
            names(&plan(&d, &o)),
            vec![
                "let CloudTrail assume the role it writes to the log group with",
                "limit the CloudTrail role to the log group's streams",
            ]
        );
    }

    #[test]
    fn a_named_key_cloudwatch_cannot_use_is_refused_with_what_to_change() {
        let cloudwatch = |actions: Value| {
            json!({"Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "kms:*", "Resource": "*"},
                {"Effect": "Allow", "Principal": {"Service": ["cloudwatch.amazonaws.com"]}, "Action": actions, "Resource": "*"},
            ]})
        };
        let customer = |policy: Value| {
            Some(NamedKey {
                arn: "arn:aws:kms:us-east-1:111111111111:key/theirs".into(),
                aws_managed: false,
                policy: Some(policy),
            })
        };
        let aws_sns = Some(NamedKey {
            arn: "arn:aws:kms:us-east-1:111111111111:key/aws-sns".into(),
            aws_managed: true,
            policy: None,
        });
        // (case, what DescribeKey found if it was asked, a part of the refusal or none)
        type Case<'a> = (&'a str, Option<Option<NamedKey>>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            ("not read yet (plan only)", None, None),
            ("no such key in the region", Some(None), Some("KMS has no key")),
            ("the AWS managed aws/sns key", Some(aws_sns), Some("is an AWS managed key (arn:aws:kms:us-east-1:111111111111:key/aws-sns)")),
            ("decrypt and data keys", Some(customer(cloudwatch(json!(["kms:Decrypt", "kms:GenerateDataKey*"])))), None),
            ("kms:* to CloudWatch", Some(customer(cloudwatch(json!("kms:*")))), None),
            ("decrypt only", Some(customer(cloudwatch(json!("kms:Decrypt")))), Some("does not allow cloudwatch.amazonaws.com")),
            ("account only", Some(customer(json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "kms:*", "Resource": "*"}]}))), Some("does not allow cloudwatch.amazonaws.com")),
            ("a Deny naming CloudWatch", Some(customer(json!({"Statement": [{"Effect": "Deny", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}]}))), Some("does not allow")),
        ];
        for (case, named, want) in cases {
            let mut d = desired();
            d.topic.as_mut().unwrap().key = TopicKey::Given("arn:aws:kms:us-east-1:111111111111:key/theirs".into());
            let mut o = converged(&d);
            if let Some(k) = named {
                o.named_keys.insert("us-east-1".into(), k);
            }
            let got = unusable_key(&d, &o);
            match want {
                None => assert_eq!(got, None, "{case}"),
                Some(part) => {
                    let m = got.unwrap_or_else(|| panic!("{case}: not refused"));
                    assert!(m.contains(part) && m.contains("leave kmsKeyId out"), "{case}: {m}");
                }
            }
        }
        // The operator's own key is never judged so: it writes its policy.
        let d = desired();
        assert_eq!(unusable_key(&d, &converged(&d)), None);
    }

    #[test]
    fn a_billing_alarm_without_its_metric_is_said_to_be_blind() {
        let d = desired();
        let mut o = converged(&d);
        o.billing_metric = Some(true);
        assert_eq!(billing_caveat(&o), None);
        o.billing_metric = Some(false);
        let m = billing_caveat(&o).expect("said");
        assert!(m.contains("billing alarm cannot fire") && m.contains("Billing preferences"), "{m}");
        o.billing_metric = None;
        assert_eq!(billing_caveat(&o), None, "not read: no billing alarm");
    }

    #[test]
    fn a_key_named_in_the_spec_is_used_as_it_is() {
        let mut d = desired();
        d.topic.as_mut().unwrap().key = TopicKey::Given("arn:aws:kms:us-east-1:111111111111:key/theirs".into());
        let mut o = converged(&d);
        o.keys.clear();
        o.topics.insert("us-east-1".into(), "arn:aws:kms:us-east-1:111111111111:key/theirs".into());
        assert!(plan(&d, &o).actions.is_empty());
        // The operator's key is matched by id or ARN too (SNS says what was set).
        let d = desired();
        let mut o = converged(&d);
        o.topics.insert("us-east-1".into(), "k-1".into());
        assert!(plan(&d, &o).actions.is_empty());
    }

    #[test]
    fn the_patterns_are_the_benchmarks() {
        // What an auditor's tool looks for (Prowler's cloudwatch_log_metric_filter_* checks match
        // these clauses in the pattern).
        let root = CisAlarm::RootUsage.filter_pattern();
        assert!(root.contains(r#"$.userIdentity.type = "Root""#) && root.contains("$.userIdentity.invokedBy NOT EXISTS"));
        let orgs = CisAlarm::OrganizationsChanges.filter_pattern();
        assert!(orgs.starts_with("{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = AcceptHandshake) ||"), "{orgs}");
        assert!(orgs.contains("($.eventName = LeaveOrganization)"));
        let ids: Vec<&str> = CisAlarm::all().into_iter().map(CisAlarm::cis_id).collect();
        assert_eq!(ids.len(), 15);
        assert_eq!(ids.first(), Some(&"4.1"));
        assert_eq!(ids.last(), Some(&"4.15"));
        assert_eq!(CisAlarm::ConsoleSignInWithoutMfa.aws_names().1, "console-sign-in-without-mfa");
    }

    #[test]
    fn states_default_to_insufficient_data_until_cloudwatch_says() {
        let d = desired();
        let mut o = converged(&d);
        o.alarms[0].state = "ALARM".into();
        o.alarms.pop();
        let s = alarm_states(&d, &o);
        assert_eq!(s[0], ("org-cis-4.3-root-usage".into(), "cis.RootUsage".into(), "ALARM".into()));
        assert_eq!(s[2].2, "INSUFFICIENT_DATA");
    }
}
