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
        name = "IN-ALARM",
        type_ = "integer",
        json_path = ".status.alarms.inAlarm"
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
    validation = Rule::new("!self.multiRegion || self.includeGlobalServiceEvents").message("a multi-region trail must include global service events"),
    validation = Rule::new("self.trailName == oldSelf.trailName").message("trailName is immutable"),
    validation = Rule::new("!has(self.alarms) || !has(self.alarms.cis) || size(self.alarms.cis) == 0 || has(self.cloudWatchLogs)").message("alarms.cis needs cloudWatchLogs: the CIS metric filters read the trail's log group"),
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
    /// Also deliver the trail to a CloudWatch Logs log group (in the trail's region), through a
    /// role CloudTrail assumes that may write that group's streams and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs: Option<CloudWatchLogs>,
    /// Alarms on the trail (the CIS metric filters) and on the bill, to an SNS topic a team mailbox
    /// subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<TrailAlarms>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Delete removes the trail only; the log group, filters, alarms and topic stay (they hold
    /// the record of what happened).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchLogs {
    /// Default: `aws-cloudtrail-logs-<trailName>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_./#-]{1,512}$')").message("logGroupName must be 1-512 letters, digits, '_', '-', '/', '.' or '#'"))]
    #[schemars(length(max = 512))]
    pub log_group_name: Option<String>,
    /// Days CloudWatch Logs keeps the events (one of the values CloudWatch Logs accepts).
    #[serde(default = "default_retention")]
    #[x_kube(validation = Rule::new("self in [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]").message("retentionInDays must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"))]
    pub retention_in_days: i32,
    /// The IAM role CloudTrail writes with. Default: `<trailName>-cloudwatch-logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{1,64}$')").message("roleName must be 1-64 letters, digits or +=,.@_-"))]
    #[schemars(length(max = 64))]
    pub role_name: Option<String>,
}

fn default_retention() -> i32 {
    365
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrailAlarms {
    pub topic: AlarmTopic,
    /// The CIS AWS Foundations Benchmark monitoring controls to alarm on; default: all of them
    /// (4.1–4.15).
    #[serde(default = "CisAlarm::all")]
    #[schemars(length(max = 15))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b == a))").message("cis lists each alarm at most once"))]
    pub cis: Vec<CisAlarm>,
    /// The CloudWatch namespace of the filters' metrics.
    #[serde(default = "default_namespace")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9./#:_-]{1,255}$') && !self.startsWith('AWS/')").message("metricNamespace must be 1-255 letters, digits or ./#:_- and not start with AWS/ (AWS's own namespaces)"))]
    #[schemars(length(max = 255))]
    pub metric_namespace: String,
    /// An alarm on the estimated charges (CloudWatch billing metrics, us-east-1; needs "Receive
    /// Billing Alerts" on in the management account's billing preferences).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingAlarm>,
}

fn default_namespace() -> String {
    "LandingZone/CIS".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmTopic {
    /// The SNS topic's name (made in the trail's region, and in us-east-1 for the billing alarm).
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]{1,256}$')").message("topic name must be 1-256 letters, digits, '-' or '_'"))]
    #[schemars(length(max = 256))]
    pub name: String,
    /// Email addresses subscribed (a group mailbox: alarms reach a team, not one person). Each
    /// gets AWS's confirmation mail once; one not listed is left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 254)))]
    #[x_kube(validation = Rule::new("self.all(e, e.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$'))").message("subscribers are email addresses"))]
    pub subscribers: Vec<String>,
    /// The KMS key (id or ARN) the topic is encrypted with. Default: a key the operator makes
    /// (alias `alias/<topic name>`, rotated yearly) whose policy lets CloudWatch publish — AWS's
    /// managed `alias/aws/sns` key cannot: CloudWatch alarms cannot use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!self.startsWith('alias/aws/')").message("kmsKeyId cannot be an AWS managed key: CloudWatch alarms cannot publish to a topic encrypted with one"))]
    #[schemars(length(max = 2048))]
    pub kms_key_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingAlarm {
    /// Alarm when the month's estimated charges exceed this many US dollars.
    #[x_kube(validation = Rule::new("self >= 1").message("thresholdUsd must be at least 1"))]
    pub threshold_usd: i64,
}

/// The monitoring controls of the CIS AWS Foundations Benchmark v5.0.0 (section 4, 4.1–4.15): a
/// metric filter on the trail's log group and an alarm on its metric.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum CisAlarm {
    UnauthorizedApiCalls,
    ConsoleSignInWithoutMfa,
    RootUsage,
    IamPolicyChanges,
    CloudTrailChanges,
    ConsoleAuthenticationFailures,
    KmsKeyDeletion,
    S3BucketPolicyChanges,
    ConfigChanges,
    SecurityGroupChanges,
    NetworkAclChanges,
    NetworkGatewayChanges,
    RouteTableChanges,
    VpcChanges,
    OrganizationsChanges,
}

impl CisAlarm {
    pub fn all() -> Vec<CisAlarm> {
        use CisAlarm::*;
        vec![
            UnauthorizedApiCalls,
            ConsoleSignInWithoutMfa,
            RootUsage,
            IamPolicyChanges,
            CloudTrailChanges,
            ConsoleAuthenticationFailures,
            KmsKeyDeletion,
            S3BucketPolicyChanges,
            ConfigChanges,
            SecurityGroupChanges,
            NetworkAclChanges,
            NetworkGatewayChanges,
            RouteTableChanges,
            VpcChanges,
            OrganizationsChanges,
        ]
    }
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
    /// The log group the trail delivers to (`spec.cloudWatchLogs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group_arn: Option<String>,
    /// The alarms (`spec.alarms`) as CloudWatch and SNS have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<AlarmsStatus>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmsStatus {
    /// The topic in each region that has alarms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topic_arns: Vec<String>,
    /// Each subscriber per topic: `Confirmed`, or `PendingConfirmation` until the mailbox follows
    /// AWS's confirmation link (it is never subscribed again meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionStatus>,
    /// Each alarm and its state: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<AlarmState>,
    /// Alarms in `ALARM` now.
    #[serde(default)]
    pub in_alarm: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    pub endpoint: String,
    pub region: String,
    pub state: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlarmState {
    pub name: String,
    /// What it watches, e.g. `CIS 4.3 RootUsage` or `EstimatedCharges`.
    pub watches: String,
    pub state: String,
}
