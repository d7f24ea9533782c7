//! AuditTrail: observe (trusted access, bucket, trail, trail status) → plan → apply.

pub mod plan;

use self::plan::{Action, CLOUDTRAIL_PRINCIPAL, Desired, Observed};
use super::{Error, Mode, Pass, Progress, Readiness, Resource};
use crate::api::{AuditTrail, DeletionPolicy, ManagementPolicy};
use crate::aws::cloudtrail::{BucketLifecycle, BucketPresence, BucketState, TrailInfo};

fn trail_of(resource: &mut Resource) -> &mut AuditTrail {
    match resource {
        Resource::AuditTrail(t) => t,
        _ => unreachable!("the driver dispatches by kind"),
    }
}

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
        },
        own_bucket: s.s3.create,
        lifecycle: s.s3.lifecycle.as_ref().map(|l| BucketLifecycle {
            transition_to_glacier_days: l.transition_to_glacier_days,
            expire_days: l.expire_days,
            noncurrent_expire_days: l.expire_days,
        }),
    })
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

pub async fn reconcile(resource: &mut Resource, pass: &mut Pass) -> Result<Progress, Error> {
    let t = trail_of(resource).clone();
    let desired = desired(&t, pass)?;
    let observed = observe(&desired, pass).await?;
    let plan = plan::plan(&desired, &observed)?;
    let write = pass.mode == Mode::Apply && t.spec.management_policy == ManagementPolicy::Manage;

    let status = trail_of(resource)
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
    let mut progress = Progress {
        actions: plan.actions.iter().map(ToString::to_string).collect(),
        writes: 0,
        drift: if observed.trail.is_some() {
            plan.drift.clone()
        } else {
            vec![]
        },
        remaining: if write { vec![] } else { plan.drift.clone() },
        ready: Readiness::Ready {
            reason: "Logging",
            message: "the organization trail is logging with log-file validation".into(),
        },
    };
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
                )
                .await?;
                trail_of(resource)
                    .status
                    .get_or_insert_with(Default::default)
                    .trail_arn = Some(arn);
            }
            Action::UpdateTrail => {
                settle(
                    || aws.cloudtrail.update_trail(&desired.trail),
                    desired.own_bucket,
                )
                .await?
            }
            Action::StartLogging => {
                aws.cloudtrail.start_logging(&desired.trail.name).await?;
                trail_of(resource)
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
    Ok(progress)
}

/// CloudTrail checks the bucket policy and trusted access against what it has seen, which lags
/// the write by some seconds: right after the operator set them, its refusal is retried for a
/// while; for a bucket the spec does not own, the policy is a human's to fix.
async fn settle<T, F, Fut>(call: F, own_bucket: bool) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::aws::AwsError>>,
{
    let mut delays = [1_000u64, 2_000, 4_000, 8_000].into_iter();
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let lagging = e.code == "CloudTrailAccessNotEnabledException"
                    || (own_bucket && e.code == "InsufficientS3BucketPolicyException");
                match (lagging, delays.next()) {
                    (true, Some(ms)) => {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await
                    }
                    (true, None) => {
                        return Err(Error::transient(
                            "CloudTrailNotYetConsistent",
                            format!(
                                "{}: CloudTrail has not seen the new bucket policy or trusted access yet; retrying shortly",
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
                    _ => return Err(e.into()),
                }
            }
        }
    }
}

/// Retain leaves the trail; Delete deletes the trail. The bucket and its logs are never deleted.
pub async fn delete(resource: &mut Resource, pass: &mut Pass) -> Result<Progress, Error> {
    let t = trail_of(resource).clone();
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
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        if let Some(logging) = self.status.as_ref().and_then(|s| s.is_logging) {
            m.trail_logging
                .with_label_values(&[&kube::ResourceExt::name_any(self)])
                .set(i64::from(logging));
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let _ = m
            .trail_logging
            .remove_label_values(&[&kube::ResourceExt::name_any(self)]);
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        let logging = s.is_logging?;
        Some(format!(
            "trail {}: {}{}",
            self.spec.trail_name,
            if logging { "logging" } else { "NOT logging" },
            s.latest_delivery_error
                .as_deref()
                .map(|e| format!(", delivery failing: {e}"))
                .unwrap_or_default()
        ))
    }
}
