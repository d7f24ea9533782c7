//! `OrganizationalUnit`: an OU in the Organization's tree.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "OrganizationalUnit",
    shortname = "ou",
    category = "landingzone",
    status = "OrganizationalUnitStatus",
    printcolumn(name = "OU-ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "NAME", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "PARENT", type_ = "string", json_path = ".status.parentId"),
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
    validation = Rule::new("!(has(self.parentRef) && has(self.parentId))").message("set at most one of parentRef and parentId"),
    validation = Rule::new("has(self.parentRef) == has(oldSelf.parentRef) && has(self.parentId) == has(oldSelf.parentId) && (!has(self.parentRef) || self.parentRef == oldSelf.parentRef) && (!has(self.parentId) || self.parentId == oldSelf.parentId)").message("the parent of an OU is immutable: AWS cannot move an OU; create a new one instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationalUnitSpec {
    /// OU name, 1-128 characters; renamed in place when changed.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 128").message("name must be 1-128 characters"))]
    #[schemars(length(max = 128))]
    pub name: String,
    /// Parent OU (another OrganizationalUnit resource). Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ref: Option<ResourceRef>,
    /// Parent by AWS id (`r-…` or `ou-…`). Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$')").message("parentId must be a root id (r-…) or an OU id (ou-…)"))]
    #[schemars(length(max = 68))]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[x_kube(validation = Rule::new(TAG_RULES).message(TAG_RULES_MESSAGE))]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Delete` deletes the OU when the resource is deleted, and only if it is empty.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationalUnitStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
