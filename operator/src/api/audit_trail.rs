//! `AuditTrail`: an organization CloudTrail with log-file validation, into an S3 bucket.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "AuditTrail",
    shortname = "trail",
    category = "landingzone",
    status = "AuditTrailStatus",
    printcolumn(name = "TRAIL", type_ = "string", json_path = ".spec.trailName"),
    printcolumn(name = "LOGGING", type_ = "boolean", json_path = ".status.isLogging"),
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
    validation = Rule::new("!self.multiRegion || self.includeGlobalServiceEvents").message("a multi-region trail must include global service events"),
    validation = Rule::new("self.trailName == oldSelf.trailName").message("trailName is immutable"),
)]
#[serde(rename_all = "camelCase")]
pub struct AuditTrailSpec {
    #[x_kube(validation = Rule::new("size(self) >= 3 && size(self) <= 128 && self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$')").message("trailName must be 3-128 characters of letters, digits, '.', '_' and '-', starting and ending with a letter or digit"))]
    #[schemars(length(max = 128))]
    pub trail_name: String,
    pub s3: TrailBucket,
    /// KMS key (key id or key ARN) to encrypt log files with. Not an alias: CloudTrail reports the
    /// key's ARN, so an alias could never be compared with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 2048").message("kmsKeyId must be 1-2048 characters"))]
    #[x_kube(validation = Rule::new("!self.startsWith('alias/') && !self.contains(':alias/')").message("kmsKeyId must be a key id or key ARN, not an alias: CloudTrail reports the key ARN, so an alias would show as drift forever"))]
    #[schemars(length(max = 2048))]
    pub kms_key_id: Option<String>,
    #[serde(default = "yes")]
    pub multi_region: bool,
    #[serde(default = "yes")]
    pub organization_trail: bool,
    #[serde(default = "yes")]
    pub log_file_validation: bool,
    #[serde(default = "yes")]
    pub include_global_service_events: bool,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrailBucket {
    #[x_kube(validation = Rule::new("size(self) >= 3 && size(self) <= 63 && self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$') && !self.contains('..')").message("bucketName must be a valid S3 bucket name: 3-63 characters of a-z, 0-9, '.' and '-'"))]
    #[schemars(length(max = 63))]
    pub bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 200").message("keyPrefix must be at most 200 characters"))]
    #[schemars(length(max = 200))]
    pub key_prefix: Option<String>,
    /// Create the bucket (public access blocked, encrypted, versioned, with the CloudTrail policy).
    #[serde(default)]
    pub create: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.transitionToGlacierDays) || !has(self.expireDays) || self.expireDays > self.transitionToGlacierDays").message("expireDays must be greater than transitionToGlacierDays"),
)]
pub struct Lifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("transitionToGlacierDays must be at least 1"))]
    pub transition_to_glacier_days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("expireDays must be at least 1"))]
    pub expire_days: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditTrailStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_logging: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_delivery_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_delivery_time: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
