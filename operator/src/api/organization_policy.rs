//! `OrganizationPolicy`: a guardrail — a service control, resource control, tag, backup or
//! AI-services opt-out policy of the Organization, attached to exactly the targets named.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The label that marks a policy as part of the baseline every account and OU should have: the
/// operator reports the targets it does not cover (status.coverage, the dashboard's panel).
pub const BASELINE_LABEL: &str = "landingzone.dev/baseline";

// Document size limits, in characters, from AWS Organizations' quotas page ("Maximum size of a
// policy document", as of 2026): service and resource control policies 5,120; AI-services
// opt-out policies 2,500; tag and backup policies 10,000 (tag policies were 2,500 before). AWS
// counts what the SDK sends, whitespace included; the operator sends the document compacted.
const SIZE_RULE: &str = "!has(self.document) || size(self.document.replace(' ', '').replace('\\n', '').replace('\\t', '').replace('\\r', '')) <= (self.type in ['ServiceControlPolicy', 'ResourceControlPolicy'] ? 5120 : self.type == 'AiServicesOptOutPolicy' ? 2500 : 10000)";
const SIZE_MESSAGE: &str = "document is too large for its type, even without whitespace: AWS allows 5120 characters for a ServiceControlPolicy or ResourceControlPolicy, 2500 for an AiServicesOptOutPolicy, 10000 for a TagPolicy or BackupPolicy; split it into two policies";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "OrganizationPolicy",
    shortname = "orgpol",
    category = "landingzone",
    status = "OrganizationPolicyStatus",
    printcolumn(name = "POLICY-ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "TYPE", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "TARGETS",
        type_ = "integer",
        json_path = ".status.attachedCount"
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
    validation = Rule::new(SIZE_RULE).message(SIZE_MESSAGE),
    validation = Rule::new("!has(self.document) || self.document.matches('^\\\\s*\\\\{(?s:.*)\\\\}\\\\s*$')").message("document must be a JSON object ({\"Version\": …, \"Statement\": […]} for control policies)"),
    validation = Rule::new("has(self.document) != has(self.documentObject)").message("set exactly one of document (JSON text) and documentObject (the same as a YAML object)"),
    validation = Rule::new("self.type == oldSelf.type").message("type is immutable: AWS cannot change a policy's type; create a new resource instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationPolicySpec {
    /// The policy type; it is enabled on the root when this resource needs it.
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    /// Policy name, 1-128 characters; renamed in place when changed.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 128").message("policyName must be 1-128 characters"))]
    #[schemars(length(max = 128))]
    pub policy_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 512").message("description must be at most 512 characters"))]
    #[schemars(length(max = 512))]
    pub description: String,
    /// The policy document as JSON text. Compared as JSON: whitespace and key order are not
    /// drift. Sent compacted, so whitespace does not count against AWS's size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub document: Option<String>,
    /// The document as a YAML object instead (serialised to JSON). Its size is checked before
    /// any write, not at admission: the API server's rules cannot measure a free-form object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "document_object_schema")]
    pub document_object: Option<serde_json::Value>,
    pub targets: PolicyTargets,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[x_kube(validation = Rule::new(TAG_RULES).message(TAG_RULES_MESSAGE))]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Delete` detaches the policy everywhere and deletes it when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Where the policy is attached: exactly these (an attachment made elsewhere by hand is removed).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.root) && self.root) || (has(self.organizationalUnitRefs) && size(self.organizationalUnitRefs) > 0) || (has(self.accountRefs) && size(self.accountRefs) > 0) || (has(self.ids) && size(self.ids) > 0)").message("targets: name at least one target (root: true, organizationalUnitRefs, accountRefs or ids)"),
)]
pub struct PolicyTargets {
    /// The Organization's root (every account but the management account, for control policies).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub organizational_unit_refs: Vec<ResourceRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub account_refs: Vec<ResourceRef>,
    /// Root (`r-…`), OU (`ou-…`) or account (12 digits) ids of targets not managed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(id, id.matches('^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|[0-9]{12})$'))").message("ids must be root (r-…), OU (ou-…) or 12-digit account ids"))]
    #[schemars(length(max = 500))]
    #[schemars(inner(length(max = 68)))]
    pub ids: Vec<String>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum PolicyType {
    ServiceControlPolicy,
    ResourceControlPolicy,
    TagPolicy,
    BackupPolicy,
    AiServicesOptOutPolicy,
}

impl PolicyType {
    pub const ALL: [PolicyType; 5] = [
        PolicyType::ServiceControlPolicy,
        PolicyType::ResourceControlPolicy,
        PolicyType::TagPolicy,
        PolicyType::BackupPolicy,
        PolicyType::AiServicesOptOutPolicy,
    ];

    /// The type AWS calls `name` (`SERVICE_CONTROL_POLICY`, …).
    pub fn from_aws(name: &str) -> Option<PolicyType> {
        PolicyType::ALL.into_iter().find(|t| t.aws() == name)
    }

    /// AWS's name for the type (`SERVICE_CONTROL_POLICY`, …).
    pub fn aws(self) -> &'static str {
        match self {
            PolicyType::ServiceControlPolicy => "SERVICE_CONTROL_POLICY",
            PolicyType::ResourceControlPolicy => "RESOURCE_CONTROL_POLICY",
            PolicyType::TagPolicy => "TAG_POLICY",
            PolicyType::BackupPolicy => "BACKUP_POLICY",
            PolicyType::AiServicesOptOutPolicy => "AISERVICES_OPT_OUT_POLICY",
        }
    }

    /// Largest document AWS accepts, in characters (quotas page, 2026).
    pub fn max_document_chars(self) -> usize {
        match self {
            PolicyType::ServiceControlPolicy | PolicyType::ResourceControlPolicy => 5120,
            PolicyType::AiServicesOptOutPolicy => 2500,
            PolicyType::TagPolicy | PolicyType::BackupPolicy => 10_000,
        }
    }

    /// Policies of this type AWS lets one root, OU or account carry (AWS-managed ones included).
    pub fn max_attachments_per_target(self) -> usize {
        match self {
            PolicyType::ServiceControlPolicy
            | PolicyType::ResourceControlPolicy
            | PolicyType::AiServicesOptOutPolicy => 5,
            PolicyType::TagPolicy | PolicyType::BackupPolicy => 10,
        }
    }

    /// Control policies filter permissions: AWS keeps at least one attached to every target
    /// (FullAWSAccess / RCPFullAWSAccess) and they do not apply to the management account.
    pub fn is_authorization(self) -> bool {
        matches!(
            self,
            PolicyType::ServiceControlPolicy | PolicyType::ResourceControlPolicy
        )
    }
}

impl std::fmt::Display for PolicyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.aws())
    }
}

/// Any object: the API server keeps it as written.
fn document_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The document as a YAML object instead of JSON text (serialised to JSON).",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The targets the policy is attached to in AWS (ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_to: Vec<String>,
    #[serde(default)]
    pub attached_count: i32,
    /// Policies of this type on each target, against AWS's limit, as last counted (before an
    /// attachment or detachment, AWS-managed policies and other tools' included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<TargetSlots>,
    /// For a baseline policy (label `landingzone.dev/baseline: "true"`): the OUs and accounts it
    /// does not reach, directly or through a parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSlots {
    pub target_id: String,
    pub attached: i32,
    pub limit: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// OUs and accounts the policy reaches.
    pub covered: i32,
    /// OUs and accounts it does not reach.
    pub uncovered: i32,
    /// The first of them (at most 100), as `id name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncovered_targets: Vec<String>,
}

#[cfg(test)]
mod tests {
    /// The CLI checks a directory with the CRD's own rules: the same refusals as admission.
    #[test]
    fn the_cli_refuses_what_admission_refuses() {
        let policy = |name: &str, body: &str| {
            format!(
                "apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata:\n  name: {name}\nspec:\n  type: ServiceControlPolicy\n  policyName: {name}\n{body}"
            )
        };
        let big = format!(
            "  document: '{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Sid\": \"{}\"}}]}}'\n  targets: {{root: true}}\n",
            "x".repeat(5100)
        );
        // Pretty-printed, over the limit only with its whitespace: accepted.
        let pretty = format!(
            "  document: '{{\"Version\": \"2012-10-17\",{}\"Statement\": []}}'\n  targets: {{root: true}}\n  description: '{}'\n",
            " ".repeat(6000),
            "d".repeat(10)
        );
        let table = [
            ("oversize", big, Some("document is too large for its type")),
            ("pretty", pretty, None),
            (
                "no target",
                "  document: '{}'\n  targets: {}\n".to_string(),
                Some("name at least one target"),
            ),
            (
                "two documents",
                "  document: '{}'\n  documentObject: {a: b}\n  targets: {root: true}\n".to_string(),
                Some("set exactly one of document"),
            ),
            (
                "not an object",
                "  document: '[1]'\n  targets: {root: true}\n".to_string(),
                Some("document must be a JSON object"),
            ),
        ];
        for (name, body, refusal) in table {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("p.yaml"), policy(name, &body)).unwrap();
            let loaded = crate::source::dir::load_dir(dir.path());
            match refusal {
                Some(message) => {
                    assert_eq!(loaded.errors.len(), 1, "{name}: {:?}", loaded.errors);
                    assert!(
                        loaded.errors[0].message.contains(message),
                        "{name}: {}",
                        loaded.errors[0].message
                    );
                }
                None => assert!(loaded.errors.is_empty(), "{name}: {:?}", loaded.errors),
            }
        }
    }
}
