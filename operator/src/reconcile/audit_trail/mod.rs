//! AuditTrail: observe (trusted access, bucket, trail, trail status) → plan → apply.

pub mod detection;
pub mod plan;

use self::plan::{Action, CLOUDTRAIL_PRINCIPAL, Desired, Observed};
use crate::api::audit_trail::{AlarmState, AlarmsStatus, AuditTrailStatus, SubscriptionStatus};
use super::{Error, Mode, Pass, Progress, Readiness};
use crate::api::{AuditTrail, DeletionPolicy, ManagementPolicy};
use crate::aws::cloudtrail::{BucketLifecycle, BucketPresence, BucketState, TrailInfo};


fn desired(t: &AuditTrail, pass: &Pass) -> Result<Desired, Error> {
    let org = pass.snapshot.org.as_ref().ok_or_else(|| {
        Error::conflict(
            "NoOrganization",
            "the Organization is not known (DescribeOrganization gave none)",
        )
    })?;
    let s = &t.spec;
    let partition = pass.snapshot.partition();
    let arn = format!(
        "arn:{partition}:cloudtrail:{}:{}:trail/{}",
        pass.aws.region, org.management_account_id, s.trail_name
    );
    Ok(Desired {
        bucket_policy: plan::bucket_policy(
            partition,
            &s.s3.bucket_name,
            s.s3.key_prefix.as_deref(),
            &arn,
            &org.management_account_id,
            &org.id,
        ),
        trail: TrailInfo {
            name: s.trail_name.clone(),
            arn,
            bucket: s.s3.bucket_name.clone(),
            key_prefix: s.s3.key_prefix.clone().filter(|p| !p.is_empty()),
            kms_key_id: s.kms_key_id.clone(),
            multi_region: s.multi_region,
            organization_trail: s.organization_trail,
            log_file_validation: s.log_file_validation,
            include_global_service_events: s.include_global_service_events,
            cloud_watch_logs: s.cloud_watch_logs.as_ref().map(|_| {
                let (group, role) = log_group_and_role(t);
                (
                    format!("arn:{partition}:logs:{}:{}:log-group:{group}:*", pass.aws.region, org.management_account_id),
                    format!("arn:{partition}:iam::{}:role/{role}", org.management_account_id),
                )
            }),
        },
        own_bucket: s.s3.create,
        lifecycle: s.s3.lifecycle.as_ref().map(|l| BucketLifecycle {
            transition_to_glacier_days: l.transition_to_glacier_days,
            expire_days: l.expire_days,
            noncurrent_expire_days: l.expire_days,
        }),
    })
}

/// The log group's and the CloudTrail role's names (defaults from the trail's name).
pub(crate) fn log_group_and_role(t: &AuditTrail) -> (String, String) {
    let name = &t.spec.trail_name;
    let c = t.spec.cloud_watch_logs.clone().unwrap_or(crate::api::audit_trail::CloudWatchLogs {
        log_group_name: None,
        retention_in_days: 365,
        role_name: None,
    });
    (
        c.log_group_name.unwrap_or_else(|| format!("aws-cloudtrail-logs-{name}")),
        c.role_name.unwrap_or_else(|| {
            let mut r = format!("{name}-cloudwatch-logs");
            r.truncate(64);
            r
        }),
    )
}

/// What `spec.cloudWatchLogs` and `spec.alarms` ask for.
fn detection_desired(t: &AuditTrail, pass: &Pass) -> Result<detection::Desired, Error> {
    let org = pass.snapshot.org.as_ref().ok_or_else(|| {
        Error::conflict("NoOrganization", "the Organization is not known (DescribeOrganization gave none)")
    })?;
    let partition = pass.snapshot.partition();
    let account = &org.management_account_id;
    let region = pass.aws.region.clone();
    let trail = &t.spec.trail_name;
    let (group, role) = log_group_and_role(t);
    let group_base = format!("arn:{partition}:logs:{region}:{account}:log-group:{group}");
    let log_group = t.spec.cloud_watch_logs.as_ref().map(|c| detection::DesiredLogGroup {
        name: group.clone(),
        retention_in_days: c.retention_in_days,
        role_name: role.clone(),
        trust: detection::role_trust(),
        policy: detection::role_policy(&group_base, account, &org.id),
    });
    let mut out = detection::Desired {
        region: region.clone(),
        log_group,
        topic: None,
        filters: vec![],
        alarms: vec![],
        alarm_prefix: format!("{trail}-"),
    };
    let Some(alarms) = &t.spec.alarms else {
        return Ok(out);
    };
    let topic_name = &alarms.topic.name;
    let mut regions = vec![region.clone()];
    if alarms.billing.is_some() && region != detection::BILLING_REGION {
        regions.push(detection::BILLING_REGION.to_string());
    }
    let arns: std::collections::BTreeMap<String, String> = regions
        .iter()
        .map(|r| (r.clone(), format!("arn:{partition}:sns:{r}:{account}:{topic_name}")))
        .collect();
    for control in &alarms.cis {
        let (f, a) = detection::cis(trail, &alarms.metric_namespace, &region, &arns[&region], *control);
        out.filters.push(f);
        out.alarms.push((control.alarm_key(), a));
    }
    if let Some(b) = &alarms.billing {
        out.alarms.push((
            "billing".into(),
            detection::billing(trail, &arns[detection::BILLING_REGION], b.threshold_usd),
        ));
    }
    out.topic = Some(detection::DesiredTopic {
        name: topic_name.clone(),
        key: match &alarms.topic.kms_key_id {
            Some(k) => detection::TopicKey::Given(k.clone()),
            None => detection::TopicKey::Own {
                alias: format!("alias/{topic_name}"),
                policy: detection::key_policy(partition, account),
            },
        },
        subscribers: alarms.topic.subscribers.clone(),
        regions,
        arns,
    });
    Ok(out)
}

async fn detection_observe(d: &detection::Desired, pass: &Pass) -> Result<detection::Observed, Error> {
    let aws = &pass.aws.alarms;
    let mut out = detection::Observed::default();
    if let Some(lg) = &d.log_group {
        out.log_group = aws.log_group(&d.region, &lg.name).await?;
        out.role = aws.role(&lg.role_name, detection::ROLE_POLICY_NAME).await?;
        if out.log_group.is_some() {
            out.filters = aws.metric_filters(&d.region, &lg.name).await?;
        }
    }
    if let Some(topic) = &d.topic {
        for region in &topic.regions {
            if let detection::TopicKey::Own { alias, .. } = &topic.key
                && let Some(k) = aws.key(region, alias).await?
            {
                out.keys.insert(region.clone(), k);
            }
            let arn = &topic.arns[region];
            if let Some(key) = aws.topic_key(region, arn).await? {
                out.topics.insert(region.clone(), key);
                out.subscriptions
                    .insert(region.clone(), aws.subscriptions(region, arn).await?);
            }
            out.alarms.extend(aws.alarms(region, &d.alarm_prefix).await?);
            if region == detection::BILLING_REGION && d.alarms.iter().any(|(w, _)| w == "billing") {
                out.billing_metric = Some(aws.billing_metric_exists().await?);
            }
            if let detection::TopicKey::Given(named) = &topic.key {
                out.named_keys
                    .insert(region.clone(), aws.named_key(region, named).await?);
            }
        }
    }
    Ok(out)
}

/// Puts the log group, role, topic, filters and alarms right (before the trail, which names the
/// log group and role).
async fn detection_apply(
    d: &detection::Desired,
    observed: &mut detection::Observed,
    plan: &detection::Plan,
    pass: &Pass,
) -> Result<usize, Error> {
    let aws = &pass.aws.alarms;
    let mut writes = 0;
    for action in &plan.actions {
        use detection::Action as A;
        let lg = d.log_group.as_ref();
        let topic = d.topic.as_ref();
        match action {
            A::CreateLogGroup => {
                let name = &lg.expect("planned with a log group").name;
                match aws.create_log_group(&d.region, name).await {
                    Err(e) if e.code == "ResourceAlreadyExistsException" => {}
                    r => r?,
                }
            }
            A::PutRetention(days) => {
                aws.put_retention(&d.region, &lg.expect("planned with a log group").name, *days)
                    .await?
            }
            A::CreateRole => {
                let lg = lg.expect("planned with a log group");
                match aws.create_role(&lg.role_name, &lg.trust.to_string()).await {
                    Err(e) if e.code == "EntityAlreadyExists" => {
                        aws.set_role_trust(&lg.role_name, &lg.trust.to_string()).await?
                    }
                    r => r?,
                }
            }
            A::SetRoleTrust => {
                let lg = lg.expect("planned with a log group");
                aws.set_role_trust(&lg.role_name, &lg.trust.to_string()).await?
            }
            A::PutRolePolicy => {
                let lg = lg.expect("planned with a log group");
                aws.put_role_policy(&lg.role_name, detection::ROLE_POLICY_NAME, &lg.policy.to_string())
                    .await?
            }
            A::CreateKey(region) => {
                let topic = topic.expect("planned with a topic");
                if let detection::TopicKey::Own { alias, policy } = &topic.key {
                    let key = aws
                        .create_key(
                            region,
                            alias,
                            &format!("Encrypts the SNS topic {} the landing zone's alarms publish to", topic.name),
                            &policy.to_string(),
                        )
                        .await?;
                    observed.keys.insert(region.clone(), key);
                }
            }
            A::EnableKeyRotation(region) => {
                if let Some(k) = observed.keys.get(region) {
                    aws.enable_rotation(region, &k.id).await?
                }
            }
            A::PutKeyPolicy(region) => {
                if let (Some(k), Some(detection::TopicKey::Own { policy, .. })) =
                    (observed.keys.get(region), topic.map(|t| &t.key))
                {
                    aws.put_key_policy(region, &k.id, &policy.to_string()).await?
                }
            }
            A::CreateTopic(region) | A::SetTopicKey(region) => {
                let topic = topic.expect("planned with a topic");
                let key = match &topic.key {
                    detection::TopicKey::Given(k) => k.clone(),
                    detection::TopicKey::Own { alias, .. } => alias.clone(),
                };
                if matches!(action, A::CreateTopic(_)) {
                    aws.create_topic(region, &topic.name, &key).await?;
                    observed.subscriptions.entry(region.clone()).or_default();
                } else {
                    aws.set_topic_key(region, &topic.arns[region], &key).await?;
                }
                observed.topics.insert(region.clone(), key);
            }
            A::Subscribe { region, email } => {
                let topic = topic.expect("planned with a topic");
                aws.subscribe_email(region, &topic.arns[region], email).await?;
                // AWS sends the confirmation mail; until it is followed the subscription is pending.
                observed.subscriptions.entry(region.clone()).or_default().push(
                    crate::aws::alarms::Subscription {
                        endpoint: email.clone(),
                        protocol: "email".into(),
                        arn: "PendingConfirmation".into(),
                    },
                );
            }
            A::PutMetricFilter(f) => {
                aws.put_metric_filter(&d.region, &lg.expect("planned with a log group").name, f)
                    .await?
            }
            A::PutAlarm(a) => {
                aws.put_alarm(a).await?;
                if !observed.alarms.iter().any(|o| o.name == a.name) {
                    observed.alarms.push(crate::aws::alarms::MetricAlarm {
                        state: "INSUFFICIENT_DATA".into(),
                        ..a.clone()
                    });
                }
            }
        }
        writes += 1;
    }
    Ok(writes)
}

/// The alarms and subscriptions as status shows them.
fn detection_status(d: &detection::Desired, observed: &detection::Observed, status: &mut AuditTrailStatus) {
    status.log_group_arn = d
        .log_group
        .as_ref()
        .and(observed.log_group.as_ref())
        .map(|g| g.arn.trim_end_matches(":*").to_string());
    let Some(topic) = &d.topic else {
        status.alarms = None;
        return;
    };
    let alarms: Vec<AlarmState> = detection::alarm_states(d, observed)
        .into_iter()
        .map(|(name, watches, state)| AlarmState {
            name,
            watches: match watches.strip_prefix("cis.") {
                Some(control) => {
                    let id = crate::api::audit_trail::CisAlarm::from_metric_name(control)
                        .map(|c| c.cis_id())
                        .unwrap_or_default();
                    format!("CIS {id} {control}")
                }
                None => "EstimatedCharges".into(),
            },
            state,
        })
        .collect();
    let mut subscriptions = Vec::new();
    for region in &topic.regions {
        let have = observed.subscriptions.get(region);
        for email in &topic.subscribers {
            let found = have.and_then(|s| {
                s.iter()
                    .find(|s| s.protocol == "email" && s.endpoint.eq_ignore_ascii_case(email))
            });
            subscriptions.push(SubscriptionStatus {
                endpoint: email.clone(),
                region: region.clone(),
                state: match found {
                    Some(s) if s.arn.starts_with("arn:") => "Confirmed".into(),
                    Some(_) => "PendingConfirmation".into(),
                    None => "NotSubscribed".into(),
                },
            });
        }
    }
    status.alarms = Some(AlarmsStatus {
        topic_arns: topic
            .regions
            .iter()
            .filter(|r| observed.topics.contains_key(*r))
            .map(|r| topic.arns[r].clone())
            .collect(),
        subscriptions,
        in_alarm: alarms.iter().filter(|a| a.state == "ALARM").count() as u32,
        alarms,
    });
}

async fn observe(desired: &Desired, pass: &Pass) -> Result<Observed, Error> {
    let aws = &pass.aws;
    let trusted_access = aws
        .organizations
        .list_service_access()
        .await?
        .iter()
        .any(|p| p == CLOUDTRAIL_PRINCIPAL);
    let name = &desired.trail.bucket;
    let bucket = match aws.buckets.bucket_presence(name).await? {
        BucketPresence::Missing => None,
        // Only a bucket the operator owns is inspected (and so ever changed).
        BucketPresence::Here if desired.own_bucket => Some(aws.buckets.bucket_state(name).await?),
        BucketPresence::Here => Some(BucketState::default()),
        // Another account's or another region's bucket is fine to log into when the spec does
        // not own it; with `s3.create: true` the operator cannot make it its own.
        BucketPresence::Elsewhere(_) if !desired.own_bucket => Some(BucketState::default()),
        BucketPresence::Elsewhere(status) => {
            return Err(Error::conflict(
                "BucketNotOwned",
                format!(
                    "bucket {name} exists {} (HeadBucket answered {status}), so the operator cannot create and own it: \
                     choose another s3.bucketName, or set s3.create: false to log into that bucket as it is",
                    if status == 301 {
                        "in another region"
                    } else {
                        "in another account, or is not readable by the operator"
                    }
                ),
            ));
        }
    };
    let trail = aws.cloudtrail.get_trail(&desired.trail.name).await?;
    let status = match &trail {
        Some(t) => Some(aws.cloudtrail.trail_status(&t.name).await?),
        None => None,
    };
    Ok(Observed {
        trusted_access,
        bucket,
        trail,
        status,
    })
}

pub async fn reconcile(resource: &mut AuditTrail, pass: &mut Pass) -> Result<Progress, Error> {
    let t = resource.clone();
    let desired = desired(&t, pass)?;
    let observed = observe(&desired, pass).await?;
    let plan = plan::plan(&desired, &observed)?;
    let write = pass.mode == Mode::Apply && t.spec.management_policy == ManagementPolicy::Manage;
    let watch = detection_desired(&t, pass)?;
    let mut watched = detection_observe(&watch, pass).await?;
    let mut watch_plan = detection::plan(&watch, &watched);
    // A named key the alarms cannot use: the topic is not made or re-keyed with it, nor alarms
    // pointed at it (they would fail to publish, silently); the trail and its log group go on.
    let unusable_key = detection::unusable_key(&watch, &watched);
    if unusable_key.is_some() {
        watch_plan.actions.retain(|a| {
            !matches!(
                a,
                detection::Action::CreateTopic(_)
                    | detection::Action::SetTopicKey(_)
                    | detection::Action::Subscribe { .. }
                    | detection::Action::PutAlarm(_)
            )
        });
    }

    let status = resource
        .status
        .get_or_insert_with(Default::default);
    if let Some(found) = &observed.trail {
        status.trail_arn = Some(found.arn.clone());
    }
    if let Some(s) = &observed.status {
        status.is_logging = Some(s.is_logging);
        status.latest_delivery_error = s.latest_delivery_error.clone();
        status.latest_delivery_time = s.latest_delivery_time.clone();
    }
    let mut drift = if observed.trail.is_some() {
        plan.drift.clone()
    } else {
        vec![]
    };
    drift.extend(watch_plan.drift.iter().cloned());
    let mut progress = Progress {
        actions: watch_plan
            .actions
            .iter()
            .map(ToString::to_string)
            .chain(plan.actions.iter().map(ToString::to_string))
            .collect(),
        writes: 0,
        remaining: if write { vec![] } else { drift.clone() },
        drift,
        ready: Readiness::Ready {
            reason: "Logging",
            message: "the organization trail is logging with log-file validation".into(),
        },
    };
    if write {
        progress.writes += detection_apply(&watch, &mut watched, &watch_plan, pass).await?;
    }
    detection_status(&watch, &watched, status);
    if !write {
        if observed.trail.is_none() {
            progress.ready =
                pass.missing(format!("no trail named {:?} exists", desired.trail.name));
        } else if !observed.status.as_ref().is_some_and(|s| s.is_logging) {
            progress.ready = Readiness::NotReady {
                reason: "TrailNotLogging",
                message: "the trail exists but is not logging; with managementPolicy: Observe it is not restarted".into(),
            };
        }
        return Ok(progress);
    }
    let aws = pass.aws.clone();
    let bucket = desired.trail.bucket.as_str();
    let role = watch.log_group.as_ref().map(|lg| CloudWatchLogsRole {
        name: lg.role_name.clone(),
        trust: watched.role.as_ref().map_or(&lg.trust, |r| &r.trust).to_string(),
        written_now: watch_plan.actions.iter().any(|a| {
            matches!(
                a,
                detection::Action::CreateRole
                    | detection::Action::SetRoleTrust
                    | detection::Action::PutRolePolicy
            )
        }),
    });
    for action in &plan.actions {
        match action {
            // An Organization resource, when there is one, owns trusted access.
            Action::EnableTrustedAccess
                if pass.ids.contains_key(&super::organization::key()) =>
            {
                return Err(Error::WaitingForDependency {
                    kind: "Organization",
                    name: "organization".into(),
                    why: format!(
                        "it manages trusted access and has not enabled it for {CLOUDTRAIL_PRINCIPAL} yet (list it in its spec.trustedServices if it does not)"
                    ),
                });
            }
            Action::EnableTrustedAccess => {
                aws.organizations
                    .enable_service_access(CLOUDTRAIL_PRINCIPAL)
                    .await?
            }
            Action::CreateBucket => aws.buckets.create_bucket(bucket).await?,
            Action::BlockPublicAccess => aws.buckets.block_public_access(bucket).await?,
            Action::PutEncryption => {
                aws.buckets
                    .put_encryption(bucket, desired.trail.kms_key_id.as_deref())
                    .await?
            }
            Action::EnableVersioning => aws.buckets.enable_versioning(bucket).await?,
            Action::PutBucketPolicy => {
                aws.buckets
                    .put_policy(bucket, &desired.bucket_policy.to_string())
                    .await?
            }
            Action::PutLifecycle => {
                if let Some(l) = &desired.lifecycle {
                    aws.buckets.put_lifecycle(bucket, l).await?
                }
            }
            Action::CreateTrail => {
                let arn = settle(
                    || aws.cloudtrail.create_trail(&desired.trail),
                    desired.own_bucket,
                    &role,
                )
                .await?;
                resource
                    .status
                    .get_or_insert_with(Default::default)
                    .trail_arn = Some(arn);
            }
            Action::UpdateTrail => {
                settle(
                    || aws.cloudtrail.update_trail(&desired.trail),
                    desired.own_bucket,
                    &role,
                )
                .await?
            }
            Action::StartLogging => {
                aws.cloudtrail.start_logging(&desired.trail.name).await?;
                resource
                    .status
                    .get_or_insert_with(Default::default)
                    .is_logging = Some(true);
            }
        }
        progress.writes += 1;
    }
    if let Some(err) = observed
        .status
        .as_ref()
        .and_then(|s| s.latest_delivery_error.clone())
    {
        progress.ready = Readiness::NotReady {
            reason: "DeliveryFailing",
            message: format!(
                "CloudTrail cannot deliver log files: {err}; check the bucket policy and KMS key policy"
            ),
        };
    }
    alarm_readiness(resource.status.as_ref(), &mut progress);
    if let (Some(message), Readiness::Ready { reason: "Logging", .. }) =
        (detection::billing_caveat(&watched), &progress.ready)
    {
        progress.ready = Readiness::Ready {
            reason: "BillingAlertsOff",
            message,
        };
    }
    if let Some(message) = unusable_key
        && matches!(progress.ready, Readiness::Ready { .. })
    {
        progress.ready = Readiness::NotReady {
            reason: "AlarmTopicKeyUnusable",
            message,
        };
    }
    Ok(progress)
}

/// A converged trail whose security alarms fire says so in its Ready condition (the alarm is
/// CloudWatch's to clear, not the operator's), as does a subscriber that has not confirmed yet.
fn alarm_readiness(status: Option<&AuditTrailStatus>, progress: &mut Progress) {
    let Some(a) = status.and_then(|s| s.alarms.as_ref()) else {
        return;
    };
    if !matches!(progress.ready, Readiness::Ready { .. }) {
        return;
    }
    let firing: Vec<&str> = a
        .alarms
        .iter()
        .filter(|x| x.state == "ALARM")
        .map(|x| x.watches.as_str())
        .collect();
    let pending: Vec<&str> = a
        .subscriptions
        .iter()
        .filter(|s| s.state == "PendingConfirmation")
        .map(|s| s.endpoint.as_str())
        .collect();
    if !firing.is_empty() {
        progress.ready = Readiness::Ready {
            reason: "SecurityAlarm",
            message: format!(
                "the trail is logging; {} security alarm(s) in ALARM: {} — the topic's subscribers were notified; see the alarm's history in CloudWatch",
                firing.len(),
                firing.join(", ")
            ),
        };
    } else if !pending.is_empty() {
        progress.ready = Readiness::Ready {
            reason: "SubscriptionPendingConfirmation",
            message: format!(
                "the trail is logging with its alarms; {} has not confirmed the subscription yet (AWS sent a confirmation mail; alarms reach it only once confirmed)",
                pending.join(", ")
            ),
        };
    }
}

/// The role CloudTrail writes to the log group with, as CreateTrail / UpdateTrail will judge it.
struct CloudWatchLogsRole {
    name: String,
    /// Its trust policy as IAM has it (or as just written).
    trust: String,
    /// Created or changed in this reconcile: IAM takes seconds before CloudTrail can assume it.
    written_now: bool,
}

/// CloudTrail checks the bucket policy, trusted access and the CloudWatch Logs role against what
/// it has seen, which lags the write by some seconds: right after the operator set them, its
/// refusal is retried for a while. A refusal that is not explained by a write just made is said
/// plainly: a bucket the spec does not own has a policy for a human to fix, and a role the
/// operator did not just write that CloudTrail cannot assume is named with its trust.
async fn settle<T, F, Fut>(call: F, own_bucket: bool, role: &Option<CloudWatchLogsRole>) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::aws::AwsError>>,
{
    let mut delays = [1_000u64, 2_000, 4_000, 8_000].into_iter();
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let role_lag = e.code == "InvalidCloudWatchLogsRoleArnException"
                    && role.as_ref().is_some_and(|r| r.written_now);
                let lagging = e.code == "CloudTrailAccessNotEnabledException"
                    || role_lag
                    || (own_bucket && e.code == "InsufficientS3BucketPolicyException");
                match (lagging, delays.next()) {
                    (true, Some(ms)) => {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await
                    }
                    (true, None) => {
                        return Err(Error::transient(
                            "CloudTrailNotYetConsistent",
                            format!(
                                "{}: CloudTrail has not seen the new bucket policy, trusted access or CloudWatch Logs role yet; retrying shortly",
                                e.message
                            ),
                        ));
                    }
                    _ if e.code == "InsufficientS3BucketPolicyException" => {
                        return Err(Error::conflict(
                            "InsufficientBucketPolicy",
                            format!(
                                "{}: the bucket policy must let CloudTrail check the ACL and write AWSLogs/<org-id>/* and AWSLogs/<management-account>/* (or set s3.create: true)",
                                e.message
                            ),
                        ));
                    }
                    _ if e.code == "InvalidCloudWatchLogsRoleArnException" => {
                        return Err(Error::conflict(
                            "CloudWatchLogsRoleRefused",
                            cloud_watch_logs_role_refused(&e.message, role.as_ref()),
                        ));
                    }
                    _ => return Err(e.into()),
                }
            }
        }
    }
}

/// Says which role CloudTrail refused, with its trust, and what the trust must be.
fn cloud_watch_logs_role_refused(aws_message: &str, role: Option<&CloudWatchLogsRole>) -> String {
    let (name, trust) = role.map_or(("<none>", "<none>"), |r| (r.name.as_str(), r.trust.as_str()));
    format!(
        "CloudTrail cannot assume the role {name} to write to CloudWatch Logs ({aws_message}). Its trust policy is {trust}; it must allow cloudtrail.amazonaws.com sts:AssumeRole with no aws:SourceArn or aws:SourceAccount condition (CloudTrail sends neither for this role: CloudTrail User Guide, \"Role policy document for CloudTrail to use CloudWatch Logs for monitoring\"). If it does, look for an SCP or permissions boundary denying it; retried on the next resync"
    )
}

/// Retain leaves the trail; Delete deletes the trail. The bucket and its logs are never deleted.
pub async fn delete(resource: &mut AuditTrail, pass: &mut Pass) -> Result<Progress, Error> {
    let t = resource.clone();
    if t.spec.deletion_policy != DeletionPolicy::Delete
        || t.spec.management_policy == ManagementPolicy::Observe
    {
        return Ok(Progress::ready("Retained", "the trail was left as it is"));
    }
    let mut progress = Progress::ready(
        "Deleted",
        "the trail was deleted; its bucket and logs are kept",
    );
    progress
        .actions
        .push("delete the trail (the bucket is kept)".into());
    if pass.mode == Mode::Apply {
        match pass.aws.cloudtrail.delete_trail(&t.spec.trail_name).await {
            Ok(()) => progress.writes += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(progress)
}

const ALARM_STATES: [&str; 3] = ["OK", "ALARM", "INSUFFICIENT_DATA"];

fn alarm_gauge(m: &crate::metrics::Metrics) -> prometheus::IntGaugeVec {
    m.kind_gauge(
        "security_alarm",
        "1 for the state each of the trail's security alarms is in (OK, ALARM, INSUFFICIENT_DATA)",
        &["name", "alarm", "watches", "state"],
    )
}

impl super::KindSpec for crate::api::AuditTrail {
    const KIND: super::Kind = super::Kind::AuditTrail;
    const DEPENDS_ON: &'static [super::Kind] = &[super::Kind::Organization];
    crate::status_access!();

    fn dependencies(&self) -> Vec<super::Key> {
        // The Organization resource, when there is one, enables trusted access first.
        vec![super::organization::key()]
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.trail_arn.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
    fn declare_metrics(m: &crate::metrics::Metrics) {
        alarm_gauge(m);
    }
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        if let Some(logging) = self.status.as_ref().and_then(|s| s.is_logging) {
            m.trail_logging
                .with_label_values(&[&name])
                .set(i64::from(logging));
        }
        // One series per alarm, the state a label (kube-state-metrics style): 1 for the state
        // it is in, the others removed. At most 16 alarms per trail.
        let gauge = alarm_gauge(m);
        let alarms = self
            .status
            .as_ref()
            .and_then(|s| s.alarms.as_ref())
            .map(|a| a.alarms.clone())
            .unwrap_or_default();
        for a in &alarms {
            for state in ALARM_STATES {
                if state == a.state {
                    gauge.with_label_values(&[&name, &a.name, &a.watches, state]).set(1);
                } else {
                    let _ = gauge.remove_label_values(&[&name, &a.name, &a.watches, state]);
                }
            }
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        let _ = m.trail_logging.remove_label_values(&[&name]);
        let gauge = alarm_gauge(m);
        if let Some(a) = self.status.as_ref().and_then(|s| s.alarms.as_ref()) {
            for alarm in &a.alarms {
                for state in ALARM_STATES {
                    let _ = gauge.remove_label_values(&[&name, &alarm.name, &alarm.watches, state]);
                }
            }
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        let logging = s.is_logging?;
        Some(format!(
            "trail {}: {}{}{}",
            self.spec.trail_name,
            if logging { "logging" } else { "NOT logging" },
            s.latest_delivery_error
                .as_deref()
                .map(|e| format!(", delivery failing: {e}"))
                .unwrap_or_default(),
            s.alarms
                .as_ref()
                .map(|a| format!(
                    ", {} alarm(s), {} in ALARM, {} of {} subscription(s) confirmed",
                    a.alarms.len(),
                    a.in_alarm,
                    a.subscriptions.iter().filter(|s| s.state == "Confirmed").count(),
                    a.subscriptions.len()
                ))
                .unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A role the operator did not just write that CloudTrail refuses is not IAM's lag: it is said
    /// at once, with the role's name and trust, instead of being retried as if it would pass.
    #[tokio::test]
    async fn a_refused_role_not_just_written_is_named_with_its_trust_not_retried() {
        let calls = AtomicUsize::new(0);
        let role = Some(CloudWatchLogsRole {
            name: "org-trail-cloudwatch-logs".into(),
            trust: r#"{"Statement":[{"Condition":{"StringEquals":{"aws:SourceArn":"arn:aws:cloudtrail:us-east-1:111111111111:trail/t"}}}]}"#.into(),
            written_now: false,
        });
        let refused = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(AwsError::new(
                "cloudtrail",
                "CreateTrail",
                "InvalidCloudWatchLogsRoleArnException",
                "Access denied. Verify in IAM that the role has adequate permissions.",
            ))
        };
        let err = settle(refused, true, &role).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
        assert_eq!(err.reason(), "CloudWatchLogsRoleRefused");
        let message = err.to_string();
        for part in [
            "org-trail-cloudwatch-logs",
            "aws:SourceArn\":\"arn:aws:cloudtrail",
            "no aws:SourceArn or aws:SourceAccount condition",
            "Access denied",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        // Any other refusal is not the role's.
        let other = || async {
            Err::<(), _>(AwsError::new("cloudtrail", "CreateTrail", "TrailAlreadyExistsException", "exists"))
        };
        assert_eq!(settle(other, true, &role).await.unwrap_err().reason(), "AwsApiError");
    }
}
