//! `SecurityBaseline`: the account-level controls of the CIS AWS Foundations Benchmark that a
//! landing zone owns, kept in every ACTIVE account its targets reach and in every governed region.

use super::aws_account::Contact;
use super::common::*;
use super::organization_policy::PolicyTargets;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "SecurityBaseline",
    shortname = "secbase",
    category = "landingzone",
    status = "SecurityBaselineStatus",
    printcolumn(
        name = "ACCOUNTS",
        type_ = "integer",
        json_path = ".status.targetedCount"
    ),
    printcolumn(
        name = "COMPLIANT",
        type_ = "integer",
        json_path = ".status.compliantCount"
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
    validation = Rule::new("size(self.regions) >= 1 || !(has(self.ebsDefaultEncryption) || (has(self.instanceMetadataV2Default) && self.instanceMetadataV2Default) || (has(self.defaultVpcs) && self.defaultVpcs == 'DeleteWhenUnused') || has(self.config) || has(self.accessAnalyzer))").message("regions: name at least one governed region for the regional controls (ebsDefaultEncryption, instanceMetadataV2Default, defaultVpcs, config, accessAnalyzer)"),
    validation = Rule::new("!has(self.config) || self.config.deliveryBucket.create == false || has(self.config.deliveryBucket.accountRef)").message("config.deliveryBucket: create: true needs accountRef, the account the bucket lives in (e.g. log-archive)"),
)]
#[serde(rename_all = "camelCase")]
pub struct SecurityBaselineSpec {
    /// The accounts it governs: an OU or the root covers every ACTIVE member account below it, kept
    /// in step as accounts come and go; `ids` may name the management account.
    pub targets: PolicyTargets,
    /// The governed regions: regional controls are set in each.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.all(r, r.matches('^[a-z]{2}(-[a-z]+)+-[0-9]$'))").message("regions must be AWS region names like eu-west-1"))]
    #[x_kube(validation = Rule::new("self.all(r, self.filter(x, x == r).size() == 1)").message("regions must not repeat"))]
    #[schemars(length(max = 40), inner(length(max = 32)))]
    pub regions: Vec<String>,
    /// Account-level S3 Block Public Access, all four flags (CIS 2.1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_block_public_access: Option<bool>,
    /// EBS encryption by default in every governed region (CIS 5.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_default_encryption: Option<EbsDefaultEncryption>,
    /// IMDSv2 required by default for new instances in every governed region (CIS 5.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_metadata_v2_default: Option<bool>,
    /// `DeleteWhenUnused`: a default VPC with no network interfaces is removed (gateways, subnets,
    /// then the VPC); one in use is reported, never touched. A deleted VPC is never re-created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_vpcs: Option<DefaultVpcs>,
    /// A role with AWSSupportAccess that the named principals may assume (CIS 1.16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_role: Option<SupportRole>,
    /// The SECURITY alternate contact (CIS 1.2): a group mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_contact: Option<Contact>,
    /// An AWS Config recorder (all supported resources, global ones in the first region) and a
    /// delivery channel in every governed region (CIS 3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigRecording>,
    /// An IAM Access Analyzer of the account in every governed region (CIS 1.19): it reports what
    /// the account shares outside itself (the Organization's analyzer, `Organization.spec.
    /// securityServices.accessAnalyzer`, what is shared outside the Organization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_analyzer: Option<AccountAnalyzer>,
    /// `Observe`: report compliance only, change nothing.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Delete`: when the resource is deleted, put the accounts' settings back (Block Public
    /// Access off, EBS encryption and IMDSv2 defaults off); a deleted VPC is never re-created.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EbsDefaultEncryption {
    pub enabled: bool,
    /// The KMS key for new volumes; default: the account's AWS-managed key (aws/ebs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub kms_key_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountAnalyzer {
    #[serde(default = "default_account_analyzer")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_.-]{0,254}$')").message("analyzerName must start with a letter and hold 1-255 letters, digits, '.', '_' or '-'"))]
    #[schemars(length(max = 255))]
    pub analyzer_name: String,
}

fn default_account_analyzer() -> String {
    "account".into()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DefaultVpcs {
    Keep,
    DeleteWhenUnused,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportRole {
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{1,64}$')").message("roleName must be 1-64 characters of letters, digits and +=,.@_-"))]
    #[schemars(length(max = 64))]
    pub role_name: String,
    /// Who may assume it; default: the management account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, a.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$'))").message("trustedPrincipalArns must be IAM ARNs of an account (…:root), role or user"))]
    #[schemars(length(max = 20), inner(length(max = 2048)))]
    pub trusted_principal_arns: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRecording {
    pub delivery_bucket: DeliveryBucket,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBucket {
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')").message("bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens"))]
    #[schemars(length(max = 63))]
    pub name: String,
    /// The account the bucket lives in (e.g. log-archive); default: the management account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<ResourceRef>,
    /// Create it (public access blocked, encrypted, versioned, TLS only, writable by AWS Config
    /// of this Organization's accounts only); false: an existing bucket, never changed.
    #[serde(default)]
    pub create: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityBaselineStatus {
    /// ACTIVE accounts the targets reach.
    #[serde(default)]
    pub targeted_count: i32,
    /// Of those, the accounts where every control complies.
    #[serde(default)]
    pub compliant_count: i32,
    /// Per account: compliant or not; for one that is not, each failing control and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountCompliance>,
    /// ACTIVE accounts that no SecurityBaseline reaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<String>,
    /// RFC 3339 time every targeted account was last read. Reconciles in between (an account
    /// created in or moved into a target) read only the accounts new to the baseline or not
    /// compliant; a changed spec, and each resync at least half an interval later, read them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_check_time: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountCompliance {
    pub account_id: String,
    pub compliant: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<ControlFinding>,
}

#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ControlFinding {
    /// s3BlockPublicAccess, ebsDefaultEncryption, instanceMetadataV2Default, defaultVpcs,
    /// supportRole, securityContact, config.
    pub control: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub message: String,
}
