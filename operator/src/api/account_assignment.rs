//! `AccountAssignment`: one Identity Center group given one permission set on one account, until an
//! optional expiry. An object of its own so that what claims grant never edits a `PermissionSet`
//! that Git owns; a `PermissionSet` leaves the assignments these hold alone.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "AccountAssignment",
    shortname = "asg",
    category = "landingzone",
    status = "AccountAssignmentStatus",
    printcolumn(name = "GROUP", type_ = "string", json_path = ".spec.group"),
    printcolumn(
        name = "PERMISSION-SET",
        type_ = "string",
        json_path = ".spec.permissionSetRef.name"
    ),
    printcolumn(name = "ACCOUNT", type_ = "string", json_path = ".status.accountId"),
    printcolumn(name = "STATE", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "EXPIRES", type_ = "string", json_path = ".spec.expiresAt"),
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
    validation = Rule::new("self.accountRef == oldSelf.accountRef && self.permissionSetRef == oldSelf.permissionSetRef && self.group == oldSelf.group").message("accountRef, permissionSetRef and group are immutable: create another AccountAssignment instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct AccountAssignmentSpec {
    /// The `PermissionSet` resource whose permission set is assigned.
    pub permission_set_ref: ResourceRef,
    /// An Identity Store group, by display name.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 1024").message("group must be 1-1024 characters"))]
    #[schemars(length(max = 1024))]
    pub group: String,
    /// The `AwsAccount` it is assigned on.
    pub account_ref: ResourceRef,
    /// RFC 3339 time at which the assignment is removed (and not made again). Absent: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$')").message("expiresAt must be an RFC 3339 time, e.g. 2026-12-05T14:00:00Z"))]
    #[schemars(length(max = 40))]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Delete` removes the assignment when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountAssignmentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_set_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `Assigned`, `Creating`, `Deleting`, `Expired`, `Removed`, `Failed`, `GroupNotFound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The asynchronous request being followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Another resource that wants the same assignment, so expiry or deletion left it in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_for: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
