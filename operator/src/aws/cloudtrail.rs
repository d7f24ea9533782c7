//! CloudTrail and the S3 bucket it writes to: ports (domain types) and SDK implementations.

use super::{AwsError, AwsResult, Service};
use async_trait::async_trait;
use aws_sdk_cloudtrail as ct;
use aws_sdk_s3 as s3;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrailInfo {
    pub name: String,
    pub arn: String,
    pub bucket: String,
    pub key_prefix: Option<String>,
    pub kms_key_id: Option<String>,
    pub multi_region: bool,
    pub organization_trail: bool,
    pub log_file_validation: bool,
    pub include_global_service_events: bool,
    /// CloudWatch Logs delivery: (log group ARN ending `:*`, the role CloudTrail writes with).
    pub cloud_watch_logs: Option<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrailStatus {
    pub is_logging: bool,
    pub latest_delivery_error: Option<String>,
    pub latest_delivery_time: Option<String>,
}

#[async_trait]
pub trait CloudTrail: Send + Sync {
    async fn get_trail(&self, name: &str) -> AwsResult<Option<TrailInfo>>;
    /// The trails this account owns (shadow copies in other regions left out).
    async fn list_trails(&self) -> AwsResult<Vec<TrailInfo>>;
    /// Creates the trail and returns its ARN.
    async fn create_trail(&self, trail: &TrailInfo) -> AwsResult<String>;
    async fn update_trail(&self, trail: &TrailInfo) -> AwsResult<()>;
    async fn trail_status(&self, name: &str) -> AwsResult<TrailStatus>;
    async fn start_logging(&self, name: &str) -> AwsResult<()>;
    async fn delete_trail(&self, name: &str) -> AwsResult<()>;
}

/// What the operator checks and sets on the trail's bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketState {
    pub public_access_blocked: bool,
    /// `AES256` or `aws:kms`, when default encryption is on.
    pub encryption: Option<String>,
    /// `None` when the answer could not be read.
    pub versioning_enabled: Option<bool>,
    pub policy: Option<String>,
    pub lifecycle: Option<BucketLifecycle>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketLifecycle {
    pub transition_to_glacier_days: Option<i32>,
    pub expire_days: Option<i32>,
    /// The bucket is versioned: without expiring noncurrent versions too, "expired" logs stay
    /// stored (and billed) as noncurrent versions forever.
    pub noncurrent_expire_days: Option<i32>,
}

/// What HeadBucket says about a bucket name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketPresence {
    Missing,
    /// In this account and region.
    Here,
    /// Exists, but HeadBucket answered this status with no body: 403 (another account's bucket,
    /// or no permission to look), 301 (a bucket in another region).
    Elsewhere(u16),
}

#[async_trait]
pub trait Buckets: Send + Sync {
    async fn bucket_presence(&self, bucket: &str) -> AwsResult<BucketPresence>;
    async fn bucket_state(&self, bucket: &str) -> AwsResult<BucketState>;
    async fn create_bucket(&self, bucket: &str) -> AwsResult<()>;
    async fn block_public_access(&self, bucket: &str) -> AwsResult<()>;
    async fn put_encryption(&self, bucket: &str, kms_key_id: Option<&str>) -> AwsResult<()>;
    async fn enable_versioning(&self, bucket: &str) -> AwsResult<()>;
    async fn put_policy(&self, bucket: &str, policy: &str) -> AwsResult<()>;
    async fn put_lifecycle(&self, bucket: &str, lifecycle: &BucketLifecycle) -> AwsResult<()>;
}

pub struct SdkCloudTrail {
    client: ct::Client,
}

impl SdkCloudTrail {
    pub fn new(client: ct::Client) -> Self {
        Self { client }
    }
}

const CLOUDTRAIL: Service = Service("cloudtrail");

fn trail_info(t: &ct::types::Trail) -> TrailInfo {
    TrailInfo {
        name: t.name().unwrap_or_default().to_string(),
        arn: t.trail_arn().unwrap_or_default().to_string(),
        bucket: t.s3_bucket_name().unwrap_or_default().to_string(),
        key_prefix: t
            .s3_key_prefix()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        kms_key_id: t.kms_key_id().filter(|k| !k.is_empty()).map(str::to_string),
        multi_region: t.is_multi_region_trail().unwrap_or(false),
        organization_trail: t.is_organization_trail().unwrap_or(false),
        log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
        include_global_service_events: t.include_global_service_events().unwrap_or(false),
        cloud_watch_logs: match (
            t.cloud_watch_logs_log_group_arn(),
            t.cloud_watch_logs_role_arn(),
        ) {
            (Some(g), Some(r)) if !g.is_empty() => Some((g.to_string(), r.to_string())),
            _ => None,
        },
    }
}

#[async_trait]
impl CloudTrail for SdkCloudTrail {
    async fn get_trail(&self, name: &str) -> AwsResult<Option<TrailInfo>> {
        let request = self.client.get_trail().name(name).send();
        let Some(out) = CLOUDTRAIL.find("GetTrail", request).await? else {
            return Ok(None);
        };
        Ok(out.trail().map(trail_info))
    }

    async fn list_trails(&self) -> AwsResult<Vec<TrailInfo>> {
        let out = CLOUDTRAIL
            .send(
                "DescribeTrails",
                self.client
                    .describe_trails()
                    .include_shadow_trails(false)
                    .send(),
            )
            .await?;
        Ok(out.trail_list().iter().map(trail_info).collect())
    }

    async fn create_trail(&self, t: &TrailInfo) -> AwsResult<String> {
        let out = CLOUDTRAIL
            .send(
                "CreateTrail",
                self.client
                    .create_trail()
                    .name(&t.name)
                    .s3_bucket_name(&t.bucket)
                    .set_s3_key_prefix(t.key_prefix.clone())
                    .set_kms_key_id(t.kms_key_id.clone())
                    .is_multi_region_trail(t.multi_region)
                    .is_organization_trail(t.organization_trail)
                    .enable_log_file_validation(t.log_file_validation)
                    .include_global_service_events(t.include_global_service_events)
                    .set_cloud_watch_logs_log_group_arn(
                        t.cloud_watch_logs.as_ref().map(|c| c.0.clone()),
                    )
                    .set_cloud_watch_logs_role_arn(t.cloud_watch_logs.as_ref().map(|c| c.1.clone()))
                    .send(),
            )
            .await?;
        Ok(out.trail_arn().unwrap_or_default().to_string())
    }

    async fn update_trail(&self, t: &TrailInfo) -> AwsResult<()> {
        CLOUDTRAIL
            .send(
                "UpdateTrail",
                self.client
                    .update_trail()
                    .name(&t.name)
                    .s3_bucket_name(&t.bucket)
                    .s3_key_prefix(t.key_prefix.clone().unwrap_or_default())
                    .set_kms_key_id(t.kms_key_id.clone())
                    .is_multi_region_trail(t.multi_region)
                    .is_organization_trail(t.organization_trail)
                    .enable_log_file_validation(t.log_file_validation)
                    .include_global_service_events(t.include_global_service_events)
                    .set_cloud_watch_logs_log_group_arn(
                        t.cloud_watch_logs.as_ref().map(|c| c.0.clone()),
                    )
                    .set_cloud_watch_logs_role_arn(t.cloud_watch_logs.as_ref().map(|c| c.1.clone()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn trail_status(&self, name: &str) -> AwsResult<TrailStatus> {
        let out = CLOUDTRAIL
            .send(
                "GetTrailStatus",
                self.client.get_trail_status().name(name).send(),
            )
            .await?;
        Ok(TrailStatus {
            is_logging: out.is_logging().unwrap_or(false),
            latest_delivery_error: out
                .latest_delivery_error()
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            latest_delivery_time: out
                .latest_delivery_time()
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        })
    }

    async fn start_logging(&self, name: &str) -> AwsResult<()> {
        CLOUDTRAIL
            .send(
                "StartLogging",
                self.client.start_logging().name(name).send(),
            )
            .await?;
        Ok(())
    }

    async fn delete_trail(&self, name: &str) -> AwsResult<()> {
        CLOUDTRAIL
            .send("DeleteTrail", self.client.delete_trail().name(name).send())
            .await?;
        Ok(())
    }
}

pub struct SdkBuckets {
    client: s3::Client,
    region: String,
}

impl SdkBuckets {
    pub fn new(client: s3::Client, region: String) -> Self {
        Self { client, region }
    }
}

const S3: Service = Service("s3");

/// A missing configuration is "not set", not an error.
fn absent(e: &AwsError) -> bool {
    e.is_not_found()
        || matches!(
            e.code.as_str(),
            "NoSuchBucketPolicy"
                | "NoSuchLifecycleConfiguration"
                | "NoSuchPublicAccessBlockConfiguration"
                | "ServerSideEncryptionConfigurationNotFoundError"
        )
}

#[async_trait]
impl Buckets for SdkBuckets {
    async fn bucket_presence(&self, bucket: &str) -> AwsResult<BucketPresence> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(BucketPresence::Here),
            Err(e) => {
                // HEAD answers carry no body, so no error code: the status is all there is.
                let status = e.raw_response().map(|r| r.status().as_u16());
                let e = AwsError::from_sdk("s3", "HeadBucket", e);
                match status {
                    Some(403) | Some(301) => Ok(BucketPresence::Elsewhere(status.unwrap_or(0))),
                    Some(404) => Ok(BucketPresence::Missing),
                    _ if e.is_not_found() || e.code == "NotFound" || e.code == "NoSuchBucket" => {
                        Ok(BucketPresence::Missing)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    async fn bucket_state(&self, bucket: &str) -> AwsResult<BucketState> {
        let mut state = BucketState::default();
        match S3
            .send(
                "GetPublicAccessBlock",
                self.client.get_public_access_block().bucket(bucket).send(),
            )
            .await
        {
            Ok(out) => {
                state.public_access_blocked =
                    out.public_access_block_configuration().is_some_and(|c| {
                        c.block_public_acls() == Some(true)
                            && c.ignore_public_acls() == Some(true)
                            && c.block_public_policy() == Some(true)
                            && c.restrict_public_buckets() == Some(true)
                    })
            }
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
        match S3
            .send(
                "GetBucketEncryption",
                self.client.get_bucket_encryption().bucket(bucket).send(),
            )
            .await
        {
            Ok(out) => {
                state.encryption = out
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .and_then(|r| r.apply_server_side_encryption_by_default())
                    .map(|d| d.sse_algorithm().as_str().to_string())
            }
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
        state.versioning_enabled = match S3
            .send(
                "GetBucketVersioning",
                self.client.get_bucket_versioning().bucket(bucket).send(),
            )
            .await
        {
            Ok(v) => Some(v.status() == Some(&s3::types::BucketVersioningStatus::Enabled)),
            // An answer this SDK cannot read (some emulators): unknown, not drift.
            Err(e) if e.code == "BadResponse" => None,
            Err(e) => return Err(e),
        };
        match S3
            .send(
                "GetBucketPolicy",
                self.client.get_bucket_policy().bucket(bucket).send(),
            )
            .await
        {
            Ok(out) => state.policy = out.policy().map(str::to_string),
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
        let rules = self.lifecycle_rules(bucket).await?;
        state.lifecycle = rules
            .iter()
            .find(|r| r.id() == Some(LIFECYCLE_RULE_ID))
            .map(|r| BucketLifecycle {
                transition_to_glacier_days: r.transitions().first().and_then(|t| t.days()),
                expire_days: r.expiration().and_then(|e| e.days()),
                noncurrent_expire_days: r
                    .noncurrent_version_expiration()
                    .and_then(|n| n.noncurrent_days()),
            });
        Ok(state)
    }

    async fn create_bucket(&self, bucket: &str) -> AwsResult<()> {
        let mut req = self.client.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(self.region.as_str().into())
                    .build(),
            );
        }
        S3.send("CreateBucket", req.send()).await?;
        Ok(())
    }

    async fn block_public_access(&self, bucket: &str) -> AwsResult<()> {
        let conf = s3::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        S3.send(
            "PutPublicAccessBlock",
            self.client
                .put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(conf)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn put_encryption(&self, bucket: &str, kms_key_id: Option<&str>) -> AwsResult<()> {
        let default = match kms_key_id {
            Some(k) => s3::types::ServerSideEncryptionByDefault::builder()
                .sse_algorithm(s3::types::ServerSideEncryption::AwsKms)
                .kms_master_key_id(k),
            None => s3::types::ServerSideEncryptionByDefault::builder()
                .sse_algorithm(s3::types::ServerSideEncryption::Aes256),
        }
        .build()
        .expect("algorithm set");
        let rule = s3::types::ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(default)
            .bucket_key_enabled(kms_key_id.is_some())
            .build();
        let conf = s3::types::ServerSideEncryptionConfiguration::builder()
            .rules(rule)
            .build()
            .expect("rules set");
        S3.send(
            "PutBucketEncryption",
            self.client
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(conf)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn enable_versioning(&self, bucket: &str) -> AwsResult<()> {
        S3.send(
            "PutBucketVersioning",
            self.client
                .put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    s3::types::VersioningConfiguration::builder()
                        .status(s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn put_policy(&self, bucket: &str, policy: &str) -> AwsResult<()> {
        S3.send(
            "PutBucketPolicy",
            self.client
                .put_bucket_policy()
                .bucket(bucket)
                .policy(policy)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn put_lifecycle(&self, bucket: &str, lifecycle: &BucketLifecycle) -> AwsResult<()> {
        let mut rule = s3::types::LifecycleRule::builder()
            .id(LIFECYCLE_RULE_ID)
            .status(s3::types::ExpirationStatus::Enabled)
            .filter(s3::types::LifecycleRuleFilter::builder().prefix("").build());
        if let Some(days) = lifecycle.transition_to_glacier_days {
            rule = rule.transitions(
                s3::types::Transition::builder()
                    .days(days)
                    .storage_class(s3::types::TransitionStorageClass::Glacier)
                    .build(),
            );
        }
        if let Some(days) = lifecycle.expire_days {
            rule = rule.expiration(s3::types::LifecycleExpiration::builder().days(days).build());
        }
        if let Some(days) = lifecycle.noncurrent_expire_days {
            rule = rule.noncurrent_version_expiration(
                s3::types::NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days)
                    .build(),
            );
        }
        // PutBucketLifecycleConfiguration replaces every rule: keep the ones others own.
        let mut rules = self.lifecycle_rules(bucket).await?;
        rules.retain(|r| r.id() != Some(LIFECYCLE_RULE_ID));
        rules.push(rule.build().expect("status set"));
        let conf = s3::types::BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .expect("rules set");
        S3.send(
            "PutBucketLifecycleConfiguration",
            self.client
                .put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(conf)
                .send(),
        )
        .await?;
        Ok(())
    }
}

impl SdkBuckets {
    /// Every lifecycle rule of the bucket (none when it has no configuration).
    async fn lifecycle_rules(&self, bucket: &str) -> AwsResult<Vec<s3::types::LifecycleRule>> {
        match S3
            .send(
                "GetBucketLifecycleConfiguration",
                self.client
                    .get_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .send(),
            )
            .await
        {
            Ok(out) => Ok(out.rules().to_vec()),
            Err(e) if absent(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The lifecycle rule the operator owns on the trail bucket.
pub const LIFECYCLE_RULE_ID: &str = "landing-zone-audit-trail";
