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
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// The change-event queue's default name (its dead-letter queue adds `-dlq`).
pub const CHANGE_EVENTS_QUEUE: &str = "landing-zone-operator-change-events";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEventsSpec {
    /// The queue's name, also the rule's; the dead-letter queue is `<name>-dlq`.
    #[serde(default = "default_change_events_queue")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]{1,76}$')").message("queueName must be 1-76 letters, digits, '-' or '_' (the dead-letter queue adds -dlq to it)"))]
    #[schemars(length(max = 76))]
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
    #[serde(flatten)]
    pub common: CommonStatus,
}
