//! Types shared by every kind: policies, references, tags, drift and the common status fields.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the operator may do in AWS for a resource.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and correct drift.
    #[default]
    Manage,
    /// Read only: adopt, report status and drift, never write to AWS.
    Observe,
}

/// What deleting the Kubernetes resource does in AWS (OUs, groups, budgets, trails).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the AWS resource untouched.
    #[default]
    Retain,
    /// Delete the AWS resource.
    Delete,
}

/// What deleting an AwsAccount does in AWS.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AccountDeletionPolicy {
    /// Leave the account untouched.
    #[default]
    Retain,
    /// Close the account (subject to the AWS closure quota).
    Close,
}

/// A reference to another (cluster-scoped) landing-zone resource by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
pub struct ResourceRef {
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 253").message("name must be 1-253 characters"))]
    #[schemars(length(max = 253))]
    pub name: String,
}

/// AWS resource tags. Keys 1-128 chars and not `aws:`-prefixed, values at most 256 chars, at most 50.
pub type Tags = BTreeMap<String, String>;

/// One field whose value in AWS differs from the spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Drift {
    /// Spec path of the field, e.g. `tags.team` or `parentId`.
    pub field: String,
    pub desired: String,
    pub observed: String,
}

impl Drift {
    pub fn new(field: impl Into<String>, desired: impl ToString, observed: impl ToString) -> Self {
        Self {
            field: field.into(),
            desired: desired.to_string(),
            observed: observed.to_string(),
        }
    }
}

/// Status fields every kind has.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// `Ready` (usable in AWS) and `Synced` (last reconcile succeeded), kstatus style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last completed reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Fields whose AWS value differs from the spec (empty when in sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// Number of drifted fields (for the DRIFT printer column).
    #[serde(default)]
    pub drift_count: i32,
}

/// CEL rule text for a `Tags` field, kept in one place for every kind.
pub const TAG_RULES: &str = "size(self) <= 50 && self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('aws:') && size(self[k]) <= 256)";
pub const TAG_RULES_MESSAGE: &str = "tags: at most 50; keys 1-128 characters and not starting with 'aws:'; values at most 256 characters";

/// Schema of a `Tags` field: bounded so the API server can cost the CEL rule over it.
pub fn tags_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 50,
        "additionalProperties": { "type": "string", "maxLength": 256 },
    })
}
