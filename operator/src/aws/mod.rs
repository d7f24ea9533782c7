//! The AWS side: one port (trait) per service over domain types, implemented on the AWS SDK.
//!
//! Every SDK client is built here, with the same retry policy and the same call recorder, so
//! call counts, latency and throttles are measured once for all services.

pub mod alarms;
pub mod budgets;
pub mod call;
pub mod cloudtrail;
pub mod dns;
pub mod error;
pub mod iam;
pub mod member;
pub mod organizations;
pub mod pacing;
pub mod security;
pub mod security_services;

pub use budgets::{Budgets, SdkBudgets};
pub use call::Service;
pub use cloudtrail::{Buckets, CloudTrail, SdkBuckets, SdkCloudTrail};
pub use error::AwsError;
pub use organizations::{Organizations, SdkOrganizations, SnapshotChange};

use crate::metrics::Metrics;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::retry::RetryConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type AwsResult<T> = Result<T, AwsError>;

/// An SDK client on a config, recorded like every other: `recorded!(aws_sdk_sns, &config, &recorder)`.
macro_rules! recorded {
    ($sdk:ident, $config:expr, $recorder:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .interceptor(($recorder).clone())
                .build(),
        )
    };
}
pub(crate) use recorded;

/// Clients built once per region, on first use, from one account's config.
pub struct PerRegion<T> {
    base: aws_config::SdkConfig,
    recorder: CallRecorder,
    clients: Mutex<std::collections::HashMap<String, T>>,
    build: fn(&aws_config::SdkConfig, &CallRecorder) -> T,
}

impl<T: Clone> PerRegion<T> {
    pub fn new(
        base: &aws_config::SdkConfig,
        recorder: &CallRecorder,
        build: fn(&aws_config::SdkConfig, &CallRecorder) -> T,
    ) -> Self {
        Self {
            base: base.clone(),
            recorder: recorder.clone(),
            clients: Mutex::default(),
            build,
        }
    }

    pub fn get(&self, region: &str) -> T {
        let mut clients = self.clients.lock().expect("not poisoned");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = self
                    .base
                    .to_builder()
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                (self.build)(&config, &self.recorder)
            })
            .clone()
    }
}

/// Member-account sessions kept at once (AWS allows 10,000 accounts per Organization by default).
const MAX_ACCOUNT_SESSIONS: usize = 10_000;

/// Where and how to reach AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Region; default: the standard chain (env, profile), then us-east-1 (Organizations' home).
    pub region: Option<String>,
    /// Endpoint override for every service (the local emulator); default: real AWS.
    pub endpoint_url: Option<String>,
    /// SDK attempts per call (throttling and transient errors back off with jitter).
    pub max_attempts: u32,
    /// Client-side rate limits per operation.
    pub rate_limits: pacing::RateLimits,
    /// Home region of the IAM Identity Center instance; default: `region`.
    pub identity_center_region: Option<String>,
}

/// The ports, built once from the standard credential chain.
#[derive(Clone)]
pub struct AwsPorts {
    pub organizations: Arc<dyn Organizations>,
    pub budgets: Arc<dyn Budgets>,
    pub cloudtrail: Arc<dyn CloudTrail>,
    pub buckets: Arc<dyn Buckets>,
    /// The trail's log group, metric filters, alarms and their topic (management account).
    pub alarms: Arc<dyn alarms::Alarms>,
    /// The region calls go to (for ARNs).
    pub region: String,
    /// Where IAM Identity Center calls go (its instance's home region).
    pub identity_center_region: String,
    /// Records every call (metrics, throttles) for clients built in a kind's folder.
    pub recorder: CallRecorder,
    /// IAM and contacts in the management account and, through their access role, member accounts.
    pub members: Arc<dyn member::Members>,
    pub sdk_config: aws_config::SdkConfig,
    /// The Organizations client behind `organizations` (recorded, paced, fenced), for a kind that
    /// keeps its own adapter in its folder (e.g. organization policies).
    pub organizations_client: aws_sdk_organizations::Client,
    pub metrics: Metrics,
    /// AWS Organizations write calls sent so far, plus the times AWS was seen ahead of the snapshot
    /// (`snapshot_outdated`): a snapshot read before the last one is stale.
    pub organizations_writes: Arc<AtomicU64>,
    /// The client-side pacing every call goes through (the reconcile asks it before CreateAccount).
    pub pacer: Arc<pacing::Pacer>,
    /// Whether this process may write to AWS (open in the CLI; the lease holds it in a cluster).
    pub fence: Arc<pacing::Fence>,
    /// Moves and renames (the operator's own, and those change events report) to read again into
    /// the shared snapshot, instead of reading the whole Organization.
    pub snapshot_changes: Arc<Mutex<SnapshotChange>>,
}

impl AwsPorts {
    pub async fn connect(settings: &AwsSettings, metrics: Metrics) -> Self {
        let mut ports = Self::with_limits(
            load_sdk_config(settings).await,
            metrics,
            settings.rate_limits.clone(),
        );
        if let Some(r) = &settings.identity_center_region {
            ports.identity_center_region = r.clone();
        }
        ports
    }

    /// Ports with the default client-side rate limits.
    pub fn from_config(sdk_config: aws_config::SdkConfig, metrics: Metrics) -> Self {
        Self::with_limits(sdk_config, metrics, pacing::RateLimits::default())
    }

    pub fn with_limits(
        sdk_config: aws_config::SdkConfig,
        metrics: Metrics,
        limits: pacing::RateLimits,
    ) -> Self {
        // One HTTP client for every SDK client (one connection pool and TLS setup, not one per
        // member account), pacing every attempt.
        let http = sdk_config.http_client().unwrap_or_else(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_with_resolver(dns::Resolver)
        });
        let pacer = Arc::new(pacing::Pacer::new(limits));
        let fence = Arc::new(pacing::Fence::open());
        let sdk_config = sdk_config
            .to_builder()
            .http_client(pacing::PacedHttpClient::new(
                http,
                pacer.clone(),
                fence.clone(),
            ))
            // Request bodies here are a few KiB sent at once; the upload-throughput guard would only
            // count a request waiting for its pacing slot as a stalled upload.
            .stalled_stream_protection(
                aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig::enabled()
                    .upload_enabled(false)
                    .build(),
            )
            // One partition per member account's assumed role: the SDK's default keeps 64 and
            // evicts the rest, which would mean an AssumeRole per reconcile in a large Organization.
            // A session is given as long as its AssumeRole may take: its pacing slot (many accounts
            // at once) and STS's own retries with backoff. The SDK's default, 5 s, called a queued
            // or retried AssumeRole unreachable ("identity resolver timed out"; seen with every
            // core busy).
            .identity_cache(
                aws_config::identity::IdentityCache::lazy()
                    .max_partitions(MAX_ACCOUNT_SESSIONS)
                    .load_timeout(IDENTITY_LOAD_TIMEOUT)
                    .build(),
            )
            .build();
        let recorder = CallRecorder {
            throttle_log: Arc::default(),
            metrics: metrics.clone(),
            scope: "management".into(),
            organizations_writes: Arc::default(),
            snapshot_changes: Arc::default(),
            shared_bucket: None,
        };
        let orgs = aws_sdk_organizations::config::Builder::from(&sdk_config)
            .interceptor(recorder.clone())
            .retry_classifier(pacing::RetryConcurrentModification)
            .build();
        let budgets = aws_sdk_budgets::config::Builder::from(&sdk_config)
            .interceptor(recorder.clone())
            .build();
        let cloudtrail = aws_sdk_cloudtrail::config::Builder::from(&sdk_config)
            .interceptor(recorder.clone())
            .build();
        // Path-style addressing when an endpoint is set: emulators do not resolve bucket host names.
        let s3 = aws_sdk_s3::config::Builder::from(&sdk_config)
            .interceptor(recorder.clone())
            .force_path_style(sdk_config.endpoint_url().is_some())
            .build();
        let region = sdk_config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let organizations_client = aws_sdk_organizations::Client::from_conf(orgs);
        Self {
            organizations: Arc::new(SdkOrganizations::new(organizations_client.clone())),
            organizations_client,
            budgets: Arc::new(SdkBudgets::new(aws_sdk_budgets::Client::from_conf(budgets))),
            cloudtrail: Arc::new(SdkCloudTrail::new(aws_sdk_cloudtrail::Client::from_conf(
                cloudtrail,
            ))),
            buckets: Arc::new(SdkBuckets::new(
                aws_sdk_s3::Client::from_conf(s3),
                region.clone(),
            )),
            alarms: Arc::new(alarms::SdkAlarms::new(&sdk_config, &recorder)),
            identity_center_region: region.clone(),
            region,
            recorder: recorder.clone(),
            members: Arc::new(member::MemberAccess::new(
                sdk_config.clone(),
                recorder.clone(),
            )),
            sdk_config,
            metrics,
            organizations_writes: recorder.organizations_writes.clone(),
            snapshot_changes: recorder.snapshot_changes.clone(),
            pacer,
            fence,
        }
    }
}

impl AwsPorts {
    /// Marks every Organization snapshot read so far as outdated: AWS reported something (e.g. a
    /// new account) that the snapshot lacks.
    pub fn snapshot_outdated(&self) {
        self.organizations_writes.fetch_add(1, Ordering::SeqCst);
    }

    /// Something changed in the Organization (a change event): everything read again, or just
    /// the accounts moved and the OUs renamed.
    pub fn changed_in_aws(&self, change: SnapshotChange) {
        if change.everything {
            self.snapshot_outdated();
        } else if !change.is_empty() {
            self.snapshot_changes
                .lock()
                .expect("not poisoned")
                .merge(change);
        }
    }
}

/// How long resolving credentials (a member account's AssumeRole) may take before the call that
/// needed them fails: a pacing wait plus STS's retries (5 attempts, backoff up to 20 s).
pub const IDENTITY_LOAD_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn load_sdk_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    let attempts = if settings.max_attempts == 0 {
        5
    } else {
        settings.max_attempts
    };
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(20)),
    );
    // --region, else the SDK's normal chain (environment, profile, instance metadata), else
    // us-east-1, where Organizations lives.
    loader = loader.region(
        aws_config::meta::region::RegionProviderChain::first_try(
            settings.region.clone().map(aws_config::Region::new),
        )
        .or_default_provider()
        .or_else(aws_config::Region::from_static("us-east-1")),
    );
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Throttling is logged once per interval with a count, not once per call (the metric has each).
#[derive(Default)]
struct ThrottleLog {
    state: std::sync::Mutex<(Option<Instant>, std::collections::BTreeMap<String, u64>)>,
}

impl ThrottleLog {
    const INTERVAL: Duration = Duration::from_secs(60);

    fn note(&self, service: &str, operation: &str) {
        let mut s = self.state.lock().expect("not poisoned");
        *s.1.entry(format!("{service} {operation}")).or_default() += 1;
        if s.0.is_some_and(|at| at.elapsed() < Self::INTERVAL) {
            return;
        }
        let counts: Vec<String> = s.1.iter().map(|(op, n)| format!("{op} ×{n}")).collect();
        tracing::warn!(
            throttled = %counts.join(", "),
            "AWS is throttling this operator ({}); the SDK backs off and retries, and client-side pacing can be lowered with --rate-limit; next report in {} s at the earliest",
            counts.join(", "),
            Self::INTERVAL.as_secs()
        );
        *s = (Some(Instant::now()), Default::default());
    }
}

#[derive(Debug)]
struct CallStart(Instant);
impl Storable for CallStart {
    type Storer = StoreReplace<Self>;
}

/// Counts every SDK operation by service and operation, with its latency and outcome, and names
/// the pacing bucket (account and operation) of each attempt.
#[derive(Clone)]
pub struct CallRecorder {
    throttle_log: Arc<ThrottleLog>,
    metrics: Metrics,
    /// Whose quota the calls use: `management` or a member account id.
    scope: Arc<str>,
    organizations_writes: Arc<AtomicU64>,
    snapshot_changes: Arc<Mutex<SnapshotChange>>,
    /// One pacing bucket for every operation of the client (a service whose quota is shared by
    /// all its APIs), instead of one per operation.
    shared_bucket: Option<Arc<str>>,
}

impl CallRecorder {
    /// The same recorder, pacing every operation from one bucket `<scope>/<bucket>` (IAM Identity
    /// Center allows about 20 calls per second across all its APIs).
    pub fn sharing_bucket(&self, bucket: &str) -> Self {
        Self {
            shared_bucket: Some(bucket.into()),
            ..self.clone()
        }
    }

    /// The same recorder for calls made in a member account (paced apart: AWS throttles per account).
    pub fn for_account(&self, account_id: &str) -> Self {
        Self {
            throttle_log: self.throttle_log.clone(),
            metrics: self.metrics.clone(),
            scope: account_id.into(),
            organizations_writes: self.organizations_writes.clone(),
            snapshot_changes: self.snapshot_changes.clone(),
            shared_bucket: self.shared_bucket.clone(),
        }
    }
}

impl std::fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallRecorder")
    }
}

/// What an Organizations write of the operator changes in the shared snapshot: `None`, something
/// the snapshot cannot follow by itself (read it all); `Some(None)`, nothing it holds (tags and
/// policies are read by their reconciles); `Some(Some(_))`, a move or a rename to read again.
fn own_snapshot_change(
    operation: &str,
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Option<Option<SnapshotChange>> {
    use aws_sdk_organizations::operation as op;
    // A change of one id, in the field that says what to read again.
    let one = |field: fn(&mut SnapshotChange) -> &mut std::collections::BTreeSet<String>,
               id: &str| {
        let mut change = SnapshotChange::default();
        field(&mut change).insert(id.to_string());
        Some(Some(change))
    };
    match operation {
        "TagResource"
        | "UntagResource"
        | "AttachPolicy"
        | "DetachPolicy"
        | "CreatePolicy"
        | "UpdatePolicy"
        | "DeletePolicy"
        | "EnableAWSServiceAccess"
        | "DisableAWSServiceAccess"
        | "RegisterDelegatedAdministrator"
        | "DeregisterDelegatedAdministrator"
        // A request in flight is not in the tree yet; `CreateSlots` counts it until it finishes,
        // and the account it makes is read from the root's accounts then.
        | "CreateAccount" => Some(None),
        "MoveAccount" => one(
            |c| &mut c.moved_accounts,
            input
                .downcast_ref::<op::move_account::MoveAccountInput>()?
                .account_id()?,
        ),
        // A new OU is empty: its parent's OUs are read again, not the whole tree (at 20 OUs a
        // whole read is some 50 calls paced at 4/s, which held up vending after the OUs).
        "CreateOrganizationalUnit" => one(
            |c| &mut c.ous_under,
            input
                .downcast_ref::<op::create_organizational_unit::CreateOrganizationalUnitInput>()?
                .parent_id()?,
        ),
        // The root's policy types, read again with one call (at 20 OUs a whole read held the
        // first round's accounts back ~5 s while vending).
        "EnablePolicyType" | "DisablePolicyType" => Some(Some(SnapshotChange {
            root: true,
            ..Default::default()
        })),
        "UpdateOrganizationalUnit" => one(
            |c| &mut c.renamed_ous,
            input
                .downcast_ref::<op::update_organizational_unit::UpdateOrganizationalUnitInput>()?
                .organizational_unit_id()?,
        ),
        _ => None,
    }
}

impl Storable for SnapshotChange {
    type Storer = StoreReplace<Self>;
}

/// The AWS partition (`aws`, `aws-us-gov`, `aws-cn`) an ARN is in; `aws` for anything that is not
/// an ARN. Every ARN the operator builds takes its partition from one AWS gave it.
pub fn partition_of(arn: &str) -> &str {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, ..] if !partition.is_empty() => partition,
        _ => "aws",
    }
}

/// Read calls are Describe*/List*/Get*/Head* (and AssumeRole/AssumeRoot, which change nothing); anything
/// else changes AWS.
pub fn call_kind(operation: &str) -> &'static str {
    // Reading the change-event queue (receiving and deleting its messages) changes nothing the
    // landing zone describes.
    if matches!(
        operation,
        "AssumeRole" | "AssumeRoot" | "ReceiveMessage" | "DeleteMessageBatch" | "DeleteMessage"
    ) {
        return "read";
    }
    if ["Describe", "List", "Get", "Head"]
        .iter()
        .any(|p| operation.starts_with(p))
    {
        "read"
    } else {
        "write"
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "LandingZoneCallRecorder"
    }

    // Not `read_before_execution`: client-level interceptors run that before the operation's
    // Metadata is in the config bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(md) = cfg.load::<Metadata>() {
            let service = md.service().to_ascii_lowercase();
            let kind = call_kind(md.name());
            self.metrics
                .aws_calls
                .with_label_values(&[service.as_str(), md.name(), kind])
                .inc();
            if service == "organizations" && kind == "write" {
                match own_snapshot_change(md.name(), context.input()) {
                    // Read again once it succeeded.
                    Some(Some(change)) => {
                        cfg.interceptor_state().store_put(change);
                    }
                    Some(None) => {}
                    None => {
                        self.organizations_writes.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        cfg.interceptor_state().store_put(CallStart(Instant::now()));
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(md) = cfg.load::<Metadata>() {
            // After signing, so they are not signed; the paced connector removes them before
            // sending. The operation travels apart from the bucket: a shared bucket (Identity
            // Center) still needs it to tell reads from writes.
            let headers = context.request_mut().headers_mut();
            headers.insert(
                pacing::PACE_HEADER,
                format!(
                    "{}/{}",
                    self.scope,
                    self.shared_bucket.as_deref().unwrap_or(md.name())
                ),
            );
            headers.insert(pacing::OPERATION_HEADER, md.name().to_string());
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(md), Some(resp)) = (cfg.load::<Metadata>(), context.response()) else {
            return Ok(());
        };
        let status = resp.status().as_u16();
        let says = |needle: &[u8]| {
            resp.headers()
                .get("x-amzn-errortype")
                .is_some_and(|v| v.as_bytes().windows(needle.len()).any(|w| w == needle))
                || resp
                    .body()
                    .bytes()
                    .is_some_and(|b| b.windows(needle.len()).any(|w| w == needle))
        };
        // Every attempt AWS answered "slow down", including those the SDK's retry then got past.
        if status == 429
            || (status >= 400
                && (says(b"Throttl") || says(b"TooManyRequests") || says(b"RequestLimitExceeded")))
        {
            let service = md.service().to_ascii_lowercase();
            self.metrics
                .aws_throttles
                .with_label_values(&[service.as_str(), md.name()])
                .inc();
            self.throttle_log.note(&service, md.name());
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(md) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let service = md.service().to_ascii_lowercase();
        let labels = [service.as_str(), md.name()];
        if let Some(start) = cfg.load::<CallStart>() {
            self.metrics
                .aws_latency
                .with_label_values(&labels)
                .observe(start.0.elapsed().as_secs_f64());
        }
        if let Some(change) = cfg.load::<SnapshotChange>() {
            if let Some(Ok(_)) = context.output_or_error() {
                self.snapshot_changes
                    .lock()
                    .expect("not poisoned")
                    .merge(change.clone());
            } else {
                // Maybe done, maybe not: read it all.
                self.organizations_writes.fetch_add(1, Ordering::SeqCst);
            }
        }
        if let Some(Err(_)) = context.output_or_error() {
            let status = context.response().map(|r| r.status().as_u16()).unwrap_or(0);
            let outcome = match status {
                0 => "unreachable",
                400..=499 => "client_error",
                _ => "server_error",
            };
            self.metrics
                .aws_errors
                .with_label_values(&[service.as_str(), md.name(), outcome])
                .inc();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_partition_is_read_from_the_arn_aws_gave() {
        for (arn, partition) in [
            (
                "arn:aws:organizations::111111111111:account/o-a/222222222222",
                "aws",
            ),
            (
                "arn:aws-us-gov:organizations::111111111111:account/o-a/2",
                "aws-us-gov",
            ),
            ("arn:aws-cn:iam::111111111111:role/x", "aws-cn"),
            ("arn::iam::1:role/x", "aws"),
            ("not an arn", "aws"),
            ("", "aws"),
        ] {
            assert_eq!(super::partition_of(arn), partition, "{arn}");
        }
    }
}
