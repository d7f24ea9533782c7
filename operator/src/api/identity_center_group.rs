//! `IdentityCenterGroup`: a group in IAM Identity Center's own directory, with exactly the members
//! named (for Organizations that do not sync groups from an external identity provider).

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "IdentityCenterGroup",
    shortname = "icg",
    category = "landingzone",
    status = "IdentityCenterGroupStatus",
    printcolumn(name = "GROUP", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "MEMBERS", type_ = "integer", json_path = ".status.memberCount"),
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
    validation = Rule::new("self.displayName == oldSelf.displayName").message("displayName is immutable here: permission sets refer to the group by it; create a new resource instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCenterGroupSpec {
    /// The group's display name, which PermissionSet assignments refer to.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 1024").message("displayName must be 1-1024 characters"))]
    #[schemars(length(max = 1024))]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 1024").message("description must be at most 1024 characters"))]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// Exactly these users (by user name) are members; users that do not exist are reported,
    /// never created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), inner(length(max = 128)))]
    pub members: Vec<String>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Delete` deletes the group (and so its memberships) when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCenterGroupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_store_id: Option<String>,
    /// Synced from an external identity provider: referenced, never changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default)]
    pub member_count: i32,
    /// Members named in the spec that the Identity Store has no user for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_users: Vec<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
