//! `PermissionSet`: an IAM Identity Center permission set and the groups it is assigned to, on
//! accounts and on whole OUs (every account in the OU's subtree, now and later).

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "PermissionSet",
    shortname = "ps",
    category = "landingzone",
    status = "PermissionSetStatus",
    printcolumn(name = "NAME", type_ = "string", json_path = ".spec.name"),
    printcolumn(
        name = "ASSIGNED",
        type_ = "integer",
        json_path = ".status.assignedCount"
    ),
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
    validation = Rule::new("!(has(self.inlinePolicy) && has(self.inlinePolicyObject))").message("set at most one of inlinePolicy (JSON text) and inlinePolicyObject (a YAML object)"),
    validation = Rule::new("self.name == oldSelf.name").message("name is immutable: Identity Center cannot rename a permission set; create a new resource instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSetSpec {
    /// The permission set's name, 1-32 characters of letters, digits and `+=,.@-_`; immutable.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{1,32}$')").message("name must be 1-32 characters of letters, digits and +=,.@-_"))]
    #[schemars(length(max = 32))]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 700").message("description must be at most 700 characters"))]
    #[schemars(length(max = 700))]
    pub description: String,
    /// How long a sign-in lasts, ISO 8601, 1 to 12 hours (e.g. `PT8H`, `PT90M`).
    #[serde(default = "one_hour")]
    #[x_kube(validation = Rule::new("self.matches('^PT([1-9]|1[0-2])H$') || self.matches('^PT[0-9]{2,3}M$') && int(self.substring(2, size(self) - 1)) >= 60 && int(self.substring(2, size(self) - 1)) <= 720").message("sessionDuration must be 1 to 12 hours in ISO 8601, e.g. PT8H or PT90M"))]
    #[schemars(length(max = 6))]
    pub session_duration: String,
    /// Where the console opens after sign-in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 240").message("relayState must be at most 240 characters"))]
    #[schemars(length(max = 240))]
    pub relay_state: String,
    /// AWS-managed (or customer-managed, by ARN) IAM policies; at most 20 with the references below.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, a.matches('^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/.+$'))").message("managedPolicyArns must be IAM policy ARNs, e.g. arn:aws:iam::aws:policy/ReadOnlyAccess"))]
    #[schemars(length(max = 20), inner(length(max = 2048)))]
    pub managed_policy_arns: Vec<String>,
    /// Policies that must exist under this name and path in every account the set is assigned to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub customer_managed_policies: Vec<PolicyReference>,
    /// The inline policy as JSON text (compared as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self.replace(' ', '').replace('\\n', '')) <= 10240 && self.matches('^\\\\s*\\\\{(?s:.*)\\\\}\\\\s*$')").message("inlinePolicy must be a JSON object of at most 10,240 characters without whitespace"))]
    #[schemars(length(max = 32768))]
    pub inline_policy: Option<String>,
    /// The inline policy as a YAML object instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object_schema")]
    pub inline_policy_object: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<PermissionsBoundary>,
    /// Exclusive: exactly these assignments exist for this permission set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub assignments: Vec<Assignment>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[x_kube(validation = Rule::new(TAG_RULES).message(TAG_RULES_MESSAGE))]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Delete` removes the assignments, waits for them, then deletes the permission set.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn one_hour() -> String {
    "PT1H".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, KubeSchema)]
pub struct PolicyReference {
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{1,128}$')").message("a customer-managed policy name is 1-128 characters of letters, digits and +=,.@-_"))]
    #[schemars(length(max = 128))]
    pub name: String,
    #[serde(default = "root_path")]
    #[x_kube(validation = Rule::new("self.startsWith('/') && self.endsWith('/') && size(self) <= 512").message("path must start and end with '/'"))]
    #[schemars(length(max = 512))]
    pub path: String,
}

fn root_path() -> String {
    "/".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.managedPolicyArn) != has(self.customerManagedPolicy)").message("permissionsBoundary: set exactly one of managedPolicyArn and customerManagedPolicy"),
)]
pub struct PermissionsBoundary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub managed_policy_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_policy: Option<PolicyReference>,
}

/// One group, on accounts and on whole OUs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.accountRefs) && size(self.accountRefs) > 0) || (has(self.organizationalUnitRefs) && size(self.organizationalUnitRefs) > 0) || (has(self.accountIds) && size(self.accountIds) > 0)").message("an assignment names at least one account or OU"),
)]
pub struct Assignment {
    /// An Identity Store group, by display name (a group synced from your identity provider is
    /// referenced, never changed).
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 1024").message("group must be 1-1024 characters"))]
    #[schemars(length(max = 1024))]
    pub group: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub account_refs: Vec<ResourceRef>,
    /// Every ACTIVE account in each OU and the OUs below it, kept in step as accounts come and go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub organizational_unit_refs: Vec<ResourceRef>,
    /// Accounts not managed here, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(id, id.matches('^[0-9]{12}$'))").message("accountIds must be 12-digit account ids"))]
    #[schemars(length(max = 500), inner(length(max = 12)))]
    pub account_ids: Vec<String>,
}

fn object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The same as a YAML object (serialised to JSON).",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_set_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_arn: Option<String>,
    /// One row per (account, group) the spec asks for, and per assignment being removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<AssignmentStatus>,
    #[serde(default)]
    pub assigned_count: i32,
    /// Accounts the permission set is provisioned to (its role exists there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioned_accounts: Vec<String>,
    /// A ProvisionPermissionSet request not finished yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_request_id: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentStatus {
    pub account_id: String,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `Assigned`, `Creating`, `Deleting`, `Failed`, `GroupNotFound`.
    pub state: String,
    /// AWS's FailureReason, or why the assignment cannot be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The asynchronous request being followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    /// The CLI checks a directory with the CRD's own rules, as admission does.
    #[test]
    fn session_durations_as_admission_sees_them() {
        for (duration, ok) in [
            ("PT1H", true),
            ("PT12H", true),
            ("PT90M", true),
            ("PT13H", false),
            ("PT30M", false),
            ("8h", false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("ps.yaml"),
                format!("apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {{name: p}}\nspec: {{name: P, sessionDuration: {duration}}}\n"),
            )
            .unwrap();
            let loaded = crate::source::dir::load_dir(dir.path());
            assert_eq!(
                loaded.errors.is_empty(),
                ok,
                "{duration}: {:?}",
                loaded.errors
            );
        }
    }
}
