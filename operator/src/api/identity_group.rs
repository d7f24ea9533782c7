//! `IdentityGroup`: an IAM group with least-privilege policies and exclusive membership.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "IdentityGroup",
    shortname = "idg",
    category = "landingzone",
    status = "IdentityGroupStatus",
    printcolumn(name = "GROUP", type_ = "string", json_path = ".spec.groupName"),
    printcolumn(name = "ACCOUNT-ID", type_ = "string", json_path = ".status.accountId"),
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
#[x_kube(
    validation = Rule::new("has(self.accountRef) == has(oldSelf.accountRef) && (!has(self.accountRef) || self.accountRef == oldSelf.accountRef)").message("accountRef is immutable: a group cannot move between accounts"),
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityGroupSpec {
    #[x_kube(validation = Rule::new("self.matches('^[\\\\w+=,.@-]{1,128}$')").message("groupName must be 1-128 characters of letters, digits and +=,.@_-"))]
    #[schemars(length(max = 128))]
    pub group_name: String,
    /// IAM path, `/` or `/a/b/`.
    #[serde(default = "default_path")]
    #[x_kube(validation = Rule::new("size(self) <= 512 && self.matches('^/([\\\\x21-\\\\x7E]*/)?$')").message("path must start and end with '/' and be at most 512 characters"))]
    #[schemars(length(max = 512))]
    pub path: String,
    /// The account holding the group (an AwsAccount). Default: the management account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<ResourceRef>,
    /// Managed policies to attach (exclusive). AWS allows at most 10 per group by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 20 && self.all(a, a.startsWith('arn:aws') && size(a) <= 2048)").message("managedPolicyArns: at most 20 policy ARNs (arn:aws…)"))]
    #[schemars(length(max = 20), inner(length(max = 2048)))]
    pub managed_policy_arns: Vec<String>,
    /// Inline policies (exclusive), compared as JSON, not as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 50").message("inlinePolicies: at most 50"))]
    #[schemars(length(max = 50))]
    pub inline_policies: Vec<InlinePolicy>,
    /// IAM user names; membership is exclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 500 && self.all(u, u.matches('^[\\\\w+=,.@-]{1,64}$'))").message("members: IAM user names of 1-64 characters of letters, digits and +=,.@_-"))]
    #[schemars(length(max = 500), inner(length(max = 64)))]
    pub members: Vec<String>,
    /// Create listed users that do not exist (without any credentials).
    #[serde(default)]
    pub create_missing_users: bool,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_path() -> String {
    "/".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct InlinePolicy {
    #[x_kube(validation = Rule::new("self.matches('^[\\\\w+=,.@-]{1,128}$')").message("inline policy name must be 1-128 characters of letters, digits and +=,.@_-"))]
    #[schemars(length(max = 128))]
    pub name: String,
    /// The policy document as JSON text.
    #[x_kube(validation = Rule::new("size(self) >= 2 && size(self) <= 5120").message("inline policy document must be JSON of at most 5120 characters"))]
    #[schemars(length(max = 5120))]
    pub document: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityGroupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
