//! What turns the organization trail into alarms, in the management account: the trail's
//! CloudWatch Logs log group and metric filters, the CloudWatch alarms, the SNS topic they publish
//! to with its subscribers, the KMS key the topic is encrypted with, and the IAM role CloudTrail
//! writes to the log group with. A port over domain types, implemented on the SDK; regional
//! clients are built once per region.

use super::call::Service;
use super::iam::url_decode;
use super::{AwsResult, CallRecorder};
use async_trait::async_trait;
use aws_sdk_cloudwatch as cw;
use aws_sdk_cloudwatchlogs as logs;
use aws_sdk_iam as iam;
use aws_sdk_kms as kms;
use aws_sdk_sns as sns;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogGroup {
    /// As CloudTrail wants it: `arn:…:log-group:<name>:*`.
    pub arn: String,
    pub retention_in_days: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricFilter {
    pub name: String,
    pub pattern: String,
    pub metric_name: String,
    pub namespace: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricAlarm {
    pub name: String,
    pub region: String,
    pub description: String,
    pub metric_name: String,
    pub namespace: String,
    /// `Sum`, `Maximum`, …
    pub statistic: String,
    pub period: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    pub comparison: String,
    pub actions: Vec<String>,
    pub dimensions: Vec<(String, String)>,
    pub treat_missing_data: Option<String>,
    /// Whether the alarm notifies at all (DisableAlarmActions silences it).
    pub actions_enabled: bool,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA` (not compared: CloudWatch's to say).
    pub state: String,
}

impl MetricAlarm {
    /// The settings the operator keeps (the state is CloudWatch's).
    pub fn same_settings(&self, other: &MetricAlarm) -> bool {
        MetricAlarm {
            state: String::new(),
            description: String::new(),
            ..self.clone()
        } == MetricAlarm {
            state: String::new(),
            description: String::new(),
            ..other.clone()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint: String,
    pub protocol: String,
    /// `PendingConfirmation` until the mailbox confirms.
    pub arn: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub arn: String,
    pub rotation: bool,
    /// The key policy (`default`); `None` when not read.
    pub policy: Option<serde_json::Value>,
}

/// A key a spec names (id, ARN or alias), as KMS describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamedKey {
    pub arn: String,
    /// Managed by AWS (`alias/aws/<service>`): its policy cannot be changed.
    pub aws_managed: bool,
    /// The key policy (`default`), read for a customer managed key only.
    pub policy: Option<serde_json::Value>,
}

/// A role with one inline policy, as IAM has it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleWithPolicy {
    pub arn: String,
    pub trust: serde_json::Value,
    pub policy: Option<serde_json::Value>,
}

#[async_trait]
pub trait Alarms: Send + Sync {
    async fn log_group(&self, region: &str, name: &str) -> AwsResult<Option<LogGroup>>;
    async fn create_log_group(&self, region: &str, name: &str) -> AwsResult<()>;
    async fn put_retention(&self, region: &str, name: &str, days: i32) -> AwsResult<()>;
    async fn metric_filters(&self, region: &str, group: &str) -> AwsResult<Vec<MetricFilter>>;
    async fn put_metric_filter(&self, region: &str, group: &str, f: &MetricFilter)
    -> AwsResult<()>;
    /// Alarms whose name starts with `prefix`.
    async fn alarms(&self, region: &str, prefix: &str) -> AwsResult<Vec<MetricAlarm>>;
    async fn put_alarm(&self, alarm: &MetricAlarm) -> AwsResult<()>;
    /// The topic's KMS key (`Some("")` when unencrypted), or `None` when there is no topic.
    async fn topic_key(&self, region: &str, arn: &str) -> AwsResult<Option<String>>;
    async fn create_topic(&self, region: &str, name: &str, kms_key: &str) -> AwsResult<String>;
    async fn set_topic_key(&self, region: &str, arn: &str, kms_key: &str) -> AwsResult<()>;
    async fn subscriptions(&self, region: &str, arn: &str) -> AwsResult<Vec<Subscription>>;
    async fn subscribe_email(&self, region: &str, arn: &str, email: &str) -> AwsResult<()>;
    async fn key(&self, region: &str, alias: &str) -> AwsResult<Option<KeyInfo>>;
    /// Whether CloudWatch has the `AWS/Billing` `EstimatedCharges` metric (us-east-1): it exists
    /// only once billing alerts are on in the account's billing preferences.
    async fn billing_metric_exists(&self) -> AwsResult<bool>;
    /// The key `key_id` names in `region` (`None` when KMS knows none there).
    async fn named_key(&self, region: &str, key_id: &str) -> AwsResult<Option<NamedKey>>;
    /// Creates a key with `policy` and points `alias` at it.
    async fn create_key(
        &self,
        region: &str,
        alias: &str,
        description: &str,
        policy: &str,
    ) -> AwsResult<KeyInfo>;
    async fn enable_rotation(&self, region: &str, key_id: &str) -> AwsResult<()>;
    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> AwsResult<()>;
    async fn role(&self, name: &str, policy_name: &str) -> AwsResult<Option<RoleWithPolicy>>;
    async fn create_role(&self, name: &str, trust: &str) -> AwsResult<()>;
    async fn set_role_trust(&self, name: &str, trust: &str) -> AwsResult<()>;
    async fn put_role_policy(&self, name: &str, policy_name: &str, policy: &str) -> AwsResult<()>;
}

const LOGS: Service = Service("logs");
const CLOUDWATCH: Service = Service("cloudwatch");
const SNS: Service = Service("sns");
const KMS: Service = Service("kms");
const IAM: Service = Service("iam");

type Regional = (logs::Client, cw::Client, sns::Client, kms::Client);

/// A key's policy (`default`, the only name KMS has), as JSON.
async fn key_policy(kms: &kms::Client, key_id: &str) -> AwsResult<Option<serde_json::Value>> {
    let request = kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send();
    Ok(KMS
        .send("GetKeyPolicy", request)
        .await?
        .policy()
        .and_then(|p| serde_json::from_str(p).ok()))
}

pub struct SdkAlarms {
    iam: iam::Client,
    regional: super::PerRegion<Regional>,
}

impl SdkAlarms {
    pub fn new(base: &aws_config::SdkConfig, recorder: &CallRecorder) -> Self {
        Self {
            iam: super::recorded!(iam, base, recorder),
            regional: super::PerRegion::new(base, recorder, |c, r| {
                (
                    super::recorded!(logs, c, r),
                    super::recorded!(cw, c, r),
                    super::recorded!(sns, c, r),
                    super::recorded!(kms, c, r),
                )
            }),
        }
    }

    fn regional(&self, region: &str) -> Regional {
        self.regional.get(region)
    }
}

fn invalid(
    service: &'static str,
    operation: &'static str,
    e: impl std::fmt::Display,
) -> super::AwsError {
    super::AwsError::new(service, operation, "InvalidRequest", e.to_string())
}

#[async_trait]
impl Alarms for SdkAlarms {
    async fn log_group(&self, region: &str, name: &str) -> AwsResult<Option<LogGroup>> {
        let (logs, ..) = self.regional(region);
        let pages = logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .into_paginator()
            .send();
        let groups = LOGS
            .pages("DescribeLogGroups", pages, |page, out| {
                out.extend(
                    page.log_groups()
                        .iter()
                        .filter(|g| g.log_group_name() == Some(name))
                        .map(|g| LogGroup {
                            arn: g.arn().unwrap_or_default().to_string(),
                            retention_in_days: g.retention_in_days(),
                        }),
                )
            })
            .await?;
        Ok(groups.into_iter().next())
    }

    async fn create_log_group(&self, region: &str, name: &str) -> AwsResult<()> {
        let (logs, ..) = self.regional(region);
        LOGS.send(
            "CreateLogGroup",
            logs.create_log_group().log_group_name(name).send(),
        )
        .await?;
        Ok(())
    }

    async fn put_retention(&self, region: &str, name: &str, days: i32) -> AwsResult<()> {
        let (logs, ..) = self.regional(region);
        LOGS.send(
            "PutRetentionPolicy",
            logs.put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn metric_filters(&self, region: &str, group: &str) -> AwsResult<Vec<MetricFilter>> {
        let (logs, ..) = self.regional(region);
        let pages = logs
            .describe_metric_filters()
            .log_group_name(group)
            .into_paginator()
            .send();
        LOGS.pages("DescribeMetricFilters", pages, |page, out| {
            out.extend(page.metric_filters().iter().map(|f| {
                let t = f.metric_transformations().first();
                MetricFilter {
                    name: f.filter_name().unwrap_or_default().to_string(),
                    pattern: f.filter_pattern().unwrap_or_default().to_string(),
                    metric_name: t.map(|t| t.metric_name().to_string()).unwrap_or_default(),
                    namespace: t
                        .map(|t| t.metric_namespace().to_string())
                        .unwrap_or_default(),
                    value: t.map(|t| t.metric_value().to_string()).unwrap_or_default(),
                }
            }))
        })
        .await
    }

    async fn put_metric_filter(
        &self,
        region: &str,
        group: &str,
        f: &MetricFilter,
    ) -> AwsResult<()> {
        let (logs, ..) = self.regional(region);
        let transformation = logs::types::MetricTransformation::builder()
            .metric_name(&f.metric_name)
            .metric_namespace(&f.namespace)
            .metric_value(&f.value)
            .build()
            .map_err(|e| invalid("logs", "PutMetricFilter", e))?;
        LOGS.send(
            "PutMetricFilter",
            logs.put_metric_filter()
                .log_group_name(group)
                .filter_name(&f.name)
                .filter_pattern(&f.pattern)
                .metric_transformations(transformation)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn alarms(&self, region: &str, prefix: &str) -> AwsResult<Vec<MetricAlarm>> {
        let (_, cw, ..) = self.regional(region);
        let pages = cw
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .into_paginator()
            .send();
        CLOUDWATCH
            .pages("DescribeAlarms", pages, |page, out| {
                out.extend(page.metric_alarms().iter().map(|a| {
                    MetricAlarm {
                        name: a.alarm_name().unwrap_or_default().to_string(),
                        region: region.to_string(),
                        description: a.alarm_description().unwrap_or_default().to_string(),
                        metric_name: a.metric_name().unwrap_or_default().to_string(),
                        namespace: a.namespace().unwrap_or_default().to_string(),
                        statistic: a
                            .statistic()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        period: a.period().unwrap_or_default(),
                        evaluation_periods: a.evaluation_periods().unwrap_or_default(),
                        threshold: a.threshold().unwrap_or_default(),
                        comparison: a
                            .comparison_operator()
                            .map(|c| c.as_str().to_string())
                            .unwrap_or_default(),
                        actions: a.alarm_actions().to_vec(),
                        dimensions: a
                            .dimensions()
                            .iter()
                            .map(|d| {
                                (
                                    d.name().unwrap_or_default().to_string(),
                                    d.value().unwrap_or_default().to_string(),
                                )
                            })
                            .collect(),
                        treat_missing_data: a.treat_missing_data().map(str::to_string),
                        actions_enabled: a.actions_enabled().unwrap_or(true),
                        state: a
                            .state_value()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    }
                }))
            })
            .await
    }

    async fn put_alarm(&self, a: &MetricAlarm) -> AwsResult<()> {
        let (_, cw, ..) = self.regional(&a.region);
        let dimensions = a
            .dimensions
            .iter()
            .map(|(n, v)| cw::types::Dimension::builder().name(n).value(v).build())
            .collect();
        CLOUDWATCH
            .send(
                "PutMetricAlarm",
                cw.put_metric_alarm()
                    .alarm_name(&a.name)
                    .alarm_description(&a.description)
                    .metric_name(&a.metric_name)
                    .namespace(&a.namespace)
                    .statistic(cw::types::Statistic::from(a.statistic.as_str()))
                    .period(a.period)
                    .evaluation_periods(a.evaluation_periods)
                    .threshold(a.threshold)
                    .comparison_operator(cw::types::ComparisonOperator::from(a.comparison.as_str()))
                    .set_alarm_actions(Some(a.actions.clone()))
                    .set_dimensions(Some(dimensions))
                    .set_treat_missing_data(a.treat_missing_data.clone())
                    .actions_enabled(a.actions_enabled)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn topic_key(&self, region: &str, arn: &str) -> AwsResult<Option<String>> {
        let (_, _, sns, _) = self.regional(region);
        let Some(out) = SNS
            .find(
                "GetTopicAttributes",
                sns.get_topic_attributes().topic_arn(arn).send(),
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(
            out.attributes()
                .and_then(|a| a.get("KmsMasterKeyId"))
                .cloned()
                .unwrap_or_default(),
        ))
    }

    async fn create_topic(&self, region: &str, name: &str, kms_key: &str) -> AwsResult<String> {
        let (_, _, sns, _) = self.regional(region);
        let out = SNS
            .send(
                "CreateTopic",
                sns.create_topic()
                    .name(name)
                    .attributes("KmsMasterKeyId", kms_key)
                    .send(),
            )
            .await?;
        Ok(out.topic_arn().unwrap_or_default().to_string())
    }

    async fn set_topic_key(&self, region: &str, arn: &str, kms_key: &str) -> AwsResult<()> {
        let (_, _, sns, _) = self.regional(region);
        SNS.send(
            "SetTopicAttributes",
            sns.set_topic_attributes()
                .topic_arn(arn)
                .attribute_name("KmsMasterKeyId")
                .attribute_value(kms_key)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn subscriptions(&self, region: &str, arn: &str) -> AwsResult<Vec<Subscription>> {
        let (_, _, sns, _) = self.regional(region);
        let pages = sns
            .list_subscriptions_by_topic()
            .topic_arn(arn)
            .into_paginator()
            .send();
        SNS.pages("ListSubscriptionsByTopic", pages, |page, out| {
            out.extend(page.subscriptions().iter().map(|s| Subscription {
                endpoint: s.endpoint().unwrap_or_default().to_string(),
                protocol: s.protocol().unwrap_or_default().to_string(),
                arn: s.subscription_arn().unwrap_or_default().to_string(),
            }))
        })
        .await
    }

    async fn subscribe_email(&self, region: &str, arn: &str, email: &str) -> AwsResult<()> {
        let (_, _, sns, _) = self.regional(region);
        SNS.send(
            "Subscribe",
            sns.subscribe()
                .topic_arn(arn)
                .protocol("email")
                .endpoint(email)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn key(&self, region: &str, alias: &str) -> AwsResult<Option<KeyInfo>> {
        let (.., kms) = self.regional(region);
        let Some(out) = KMS
            .find("DescribeKey", kms.describe_key().key_id(alias).send())
            .await?
        else {
            return Ok(None);
        };
        let Some(meta) = out.key_metadata() else {
            return Ok(None);
        };
        let rotation = KMS
            .send(
                "GetKeyRotationStatus",
                kms.get_key_rotation_status().key_id(meta.key_id()).send(),
            )
            .await?
            .key_rotation_enabled();
        let policy = key_policy(&kms, meta.key_id()).await?;
        Ok(Some(KeyInfo {
            id: meta.key_id().to_string(),
            arn: meta.arn().unwrap_or_default().to_string(),
            rotation,
            policy,
        }))
    }

    async fn billing_metric_exists(&self) -> AwsResult<bool> {
        let (_, cw, ..) = self.regional(crate::reconcile::audit_trail::detection::BILLING_REGION);
        let out = CLOUDWATCH
            .send(
                "ListMetrics",
                cw.list_metrics()
                    .namespace("AWS/Billing")
                    .metric_name("EstimatedCharges")
                    .send(),
            )
            .await?;
        Ok(!out.metrics().is_empty())
    }

    async fn named_key(&self, region: &str, key_id: &str) -> AwsResult<Option<NamedKey>> {
        let (.., kms) = self.regional(region);
        let Some(out) = KMS
            .find("DescribeKey", kms.describe_key().key_id(key_id).send())
            .await?
        else {
            return Ok(None);
        };
        let Some(meta) = out.key_metadata() else {
            return Ok(None);
        };
        let aws_managed = meta.key_manager() == Some(&kms::types::KeyManagerType::Aws);
        let policy = if aws_managed {
            None
        } else {
            key_policy(&kms, meta.key_id()).await?
        };
        Ok(Some(NamedKey {
            arn: meta.arn().unwrap_or_default().to_string(),
            aws_managed,
            policy,
        }))
    }

    async fn create_key(
        &self,
        region: &str,
        alias: &str,
        description: &str,
        policy: &str,
    ) -> AwsResult<KeyInfo> {
        let (.., kms) = self.regional(region);
        let out = KMS
            .send(
                "CreateKey",
                kms.create_key()
                    .description(description)
                    .policy(policy)
                    .send(),
            )
            .await?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| invalid("kms", "CreateKey", "CreateKey returned no key"))?;
        KMS.send(
            "CreateAlias",
            kms.create_alias()
                .alias_name(alias)
                .target_key_id(meta.key_id())
                .send(),
        )
        .await?;
        Ok(KeyInfo {
            id: meta.key_id().to_string(),
            arn: meta.arn().unwrap_or_default().to_string(),
            rotation: false,
            policy: serde_json::from_str(policy).ok(),
        })
    }

    async fn enable_rotation(&self, region: &str, key_id: &str) -> AwsResult<()> {
        let (.., kms) = self.regional(region);
        KMS.send(
            "EnableKeyRotation",
            kms.enable_key_rotation().key_id(key_id).send(),
        )
        .await?;
        Ok(())
    }

    async fn put_key_policy(&self, region: &str, key_id: &str, policy: &str) -> AwsResult<()> {
        let (.., kms) = self.regional(region);
        KMS.send(
            "PutKeyPolicy",
            kms.put_key_policy()
                .key_id(key_id)
                .policy_name("default")
                .policy(policy)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn role(&self, name: &str, policy_name: &str) -> AwsResult<Option<RoleWithPolicy>> {
        let Some((arn, trust)) = super::iam::role_trust(&self.iam, name).await? else {
            return Ok(None);
        };
        let policy = IAM
            .find(
                "GetRolePolicy",
                self.iam
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(policy_name)
                    .send(),
            )
            .await?
            .and_then(|p| serde_json::from_str(&url_decode(p.policy_document())).ok());
        Ok(Some(RoleWithPolicy { arn, trust, policy }))
    }

    async fn create_role(&self, name: &str, trust: &str) -> AwsResult<()> {
        super::iam::create_role(
            &self.iam,
            name,
            trust,
            "CloudTrail delivers the organization trail to its CloudWatch Logs log group (landing-zone-operator)",
        )
        .await
    }

    async fn set_role_trust(&self, name: &str, trust: &str) -> AwsResult<()> {
        super::iam::set_role_trust(&self.iam, name, trust).await
    }

    async fn put_role_policy(&self, name: &str, policy_name: &str, policy: &str) -> AwsResult<()> {
        IAM.send(
            "PutRolePolicy",
            self.iam
                .put_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .policy_document(policy)
                .send(),
        )
        .await?;
        Ok(())
    }
}
