//! `Organization`: the Organization's own settings — policy types, trusted services, delegated
//! administrators and centralized root access. One per cluster, named `organization`.

use super::common::*;
use super::organization_policy::PolicyType;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Disabling a policy type detaches every policy of the type in AWS: the resource must carry this
/// annotation naming the types (comma-separated, e.g. `TagPolicy`) before they are disabled.
pub const CONFIRM_DISABLE_ANNOTATION: &str = "landingzone.dev/confirm-disable-policy-types";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "Organization",
    shortname = "org",
    category = "landingzone",
    status = "OrganizationStatus",
    validation = Rule::new("self.metadata.name == 'organization'").message("there is one Organization resource per cluster, named organization"),
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "FEATURES", type_ = "string", json_path = ".status.featureSet"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "DRIFT", type_ = "integer", json_path = ".status.driftCount"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSpec {
    /// Policy types enabled on the root. One that is enabled and not listed is drift; it is
    /// disabled only with the confirmation annotation (disabling detaches its policies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub policy_types: Vec<PolicyType>,
    /// Service principals with trusted access (e.g. `cloudtrail.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[a-z0-9.-]+\\\\.amazonaws\\\\.com$'))").message("trustedServices are service principals such as cloudtrail.amazonaws.com"))]
    #[schemars(length(max = 100), inner(length(max = 128)))]
    pub trusted_services: Vec<String>,
    /// Remove trusted access of services not listed (default: report them as drift).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trusted_services_exclusive: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub delegated_administrators: Vec<DelegatedAdministrator>,
    /// Deregister delegated administrators not listed (default: report them, with a Warning).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delegated_administrators_exclusive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_access: Option<RootAccess>,
    /// The pipeline that brings AWS change events to the operator (an EventBridge rule and an
    /// encrypted SQS queue with a dead-letter queue), created and kept in the management account.
    /// Without it, drift waits for the resync (or point the operator at a queue of your own with
    /// `--change-events-queue-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_events: Option<ChangeEventsSpec>,
    /// Threat detection and posture for the whole Organization: GuardDuty, Security Hub and IAM
    /// Access Analyzer, administered by one member account in every governed region. Services
    /// enabled in AWS and not listed are left alone; nothing here is ever disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_services: Option<SecurityServices>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.administratorAccountRef) != has(self.administratorAccountId)").message("name the administrator by exactly one of administratorAccountRef and administratorAccountId"),
    validation = Rule::new("has(self.guardDuty) || has(self.securityHub) || has(self.accessAnalyzer)").message("securityServices names at least one of guardDuty, securityHub and accessAnalyzer"),
)]
pub struct SecurityServices {
    /// The member account that administers each service below (delegated administrator): an
    /// audit or security-tooling account, not the management account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub administrator_account_ref: Option<ResourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{12}$')").message("administratorAccountId must be 12 digits"))]
    #[schemars(length(max = 12))]
    pub administrator_account_id: Option<String>,
    /// Every governed region (the services are regional).
    #[schemars(length(min = 1, max = 30), inner(length(max = 32)))]
    #[x_kube(validation = Rule::new("self.all(r, r.matches('^[a-z]{2}(-[a-z]+)+-[0-9]$'))").message("regions are AWS regions such as us-east-1"))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(q, q == r))").message("regions lists each region once"))]
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_duty: Option<GuardDutySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_hub: Option<SecurityHubSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_analyzer: Option<AccessAnalyzerSpec>,
}

/// Which member accounts the service enrolls by itself.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AutoEnable {
    /// Every account, those there today and new ones.
    #[default]
    AllAccounts,
    /// Accounts that join from now on.
    NewAccounts,
    /// None: members are added by hand.
    None,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardDutySpec {
    #[serde(default)]
    pub auto_enable: AutoEnable,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityHubSpec {
    #[serde(default)]
    pub auto_enable: AutoEnable,
    /// Standards enabled in the administrator account (members get AWS's default standards when
    /// Security Hub enrolls them).
    #[serde(default = "SecurityStandard::defaults")]
    #[schemars(length(max = 4))]
    pub standards: Vec<SecurityStandard>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum SecurityStandard {
    /// CIS AWS Foundations Benchmark v5.0.0.
    CisAwsFoundations,
    /// AWS Foundational Security Best Practices v1.0.0.
    AwsFoundationalSecurityBestPractices,
}

impl SecurityStandard {
    pub fn defaults() -> Vec<SecurityStandard> {
        vec![
            SecurityStandard::CisAwsFoundations,
            SecurityStandard::AwsFoundationalSecurityBestPractices,
        ]
    }

    /// The standard's ARN in a region.
    pub fn arn(self, partition: &str, region: &str) -> String {
        match self {
            SecurityStandard::CisAwsFoundations => format!(
                "arn:{partition}:securityhub:{region}::standards/cis-aws-foundations-benchmark/v/5.0.0"
            ),
            SecurityStandard::AwsFoundationalSecurityBestPractices => format!(
                "arn:{partition}:securityhub:{region}::standards/aws-foundational-security-best-practices/v/1.0.0"
            ),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessAnalyzerSpec {
    /// The ORGANIZATION analyzer made in the administrator account in every governed region.
    #[serde(default = "default_analyzer_name")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_.-]{0,254}$')").message("organizationAnalyzerName must start with a letter and hold 1-255 letters, digits, '.', '_' or '-'"))]
    #[schemars(length(max = 255))]
    pub organization_analyzer_name: String,
}

fn default_analyzer_name() -> String {
    "organization".into()
}

/// One service in one region, as AWS has it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityServiceStatus {
    /// `GuardDuty`, `SecurityHub` or `AccessAnalyzer`.
    pub service: String,
    pub region: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub administrator: Option<String>,
    /// ACTIVE accounts the service covers (enrolled members; for Access Analyzer, the accounts
    /// of the Organization its analyzer watches).
    pub enrolled: u32,
    /// ACTIVE accounts AWS has not enrolled yet, though it will (auto-enable): not an error.
    pub pending: u32,
    /// ACTIVE accounts it will not enrol by itself (auto-enable off for them).
    pub not_enrolled: u32,
    /// The first accounts pending or not enrolled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts_without: Vec<String>,
}

/// The change-event queue's default name (its dead-letter queue adds `-dlq`).
pub const CHANGE_EVENTS_QUEUE: &str = "landing-zone-operator-change-events";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEventsSpec {
    /// The queue's name, also the rule's; the dead-letter queue is `<name>-dlq`, the alarm-state
    /// rule `<name>-alarm-state` (EventBridge allows rule names of 64 characters, so 52 here).
    #[serde(default = "default_change_events_queue")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]{1,52}$')").message("queueName must be 1-52 letters, digits, '-' or '_' (the alarm-state rule adds -alarm-state to it, and EventBridge allows 64 characters)"))]
    #[schemars(length(max = 52))]
    pub queue_name: String,
    /// Where the global services (Organizations, IAM, Identity Center) send their events:
    /// us-east-1 in the commercial partition.
    #[serde(default = "default_change_events_region")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]$')").message("region must be an AWS region such as us-east-1"))]
    #[schemars(length(max = 32))]
    pub region: String,
}

fn default_change_events_queue() -> String {
    CHANGE_EVENTS_QUEUE.into()
}

fn default_change_events_region() -> String {
    "us-east-1".into()
}

/// The change-event pipeline as it is in AWS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEventsStatus {
    /// The queue the operator reads (it starts reading once this is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Regions whose alarm state changes are forwarded to the pipeline's region (where the
    /// AuditTrails keep alarms, other than `region`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded_from: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.accountRef) != has(self.accountId)").message("name the account by exactly one of accountRef and accountId"),
)]
pub struct DelegatedAdministrator {
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9.-]+\\\\.amazonaws\\\\.com$')").message("servicePrincipal must be a service principal such as guardduty.amazonaws.com"))]
    #[schemars(length(max = 128))]
    pub service_principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<ResourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{12}$')").message("accountId must be 12 digits"))]
    #[schemars(length(max = 12))]
    pub account_id: Option<String>,
}

/// Centralized root access (IAM): member accounts without root credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootAccess {
    /// Member accounts are created without root credentials, and they can be removed centrally.
    #[serde(default)]
    pub credentials_management: bool,
    /// Privileged root tasks from the management account (`sts:AssumeRoot`).
    #[serde(default)]
    pub root_sessions: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_account_id: Option<String>,
    /// `ALL` or `CONSOLIDATED_BILLING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled_policy_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_services: Vec<String>,
    /// `servicePrincipal=accountId`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegated_administrators: Vec<String>,
    /// Enabled root-access features (`RootCredentialsManagement`, `RootSessions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_access_features: Vec<String>,
    /// Registered in AWS but not listed in the spec (reported, with a Warning, not removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexpected_delegated_administrators: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexpected_trusted_services: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_events: Option<ChangeEventsStatus>,
    /// Each security service in each governed region (`spec.securityServices`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_services: Vec<SecurityServiceStatus>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
