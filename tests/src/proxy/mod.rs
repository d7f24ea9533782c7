//! The realism layer: an HTTP proxy between the SDK and the emulator that answers the way AWS does.
//!
//! The emulator (moto) answers at once and says yes. This proxy makes the same calls behave as
//! they do against AWS, with AWS's own wire shapes (JSON protocol errors with `__type` and
//! `Reason` for Organizations, `<ErrorResponse>` XML for IAM and STS), so the operator's real SDK
//! clients parse, retry and classify them. Every behaviour is off until a test turns it on
//! ([`Realism`]); `docs/aws-realism.md` lists what is modelled and the AWS documentation behind it.
//!
//! It also injects plain faults on command ([`Faults`]): a fraction of calls answered with
//! throttling, concurrent modification, a 500 or a dropped connection, or AWS down altogether.

//!
//! One file per AWS service it answers for (mirroring `operator/src/aws/`), the HTTP plumbing and
//! fault injection in `wire.rs`.

mod budgets;
mod cloudtrail;
mod cloudwatch;
mod ec2;
mod events;
mod iam;
mod identity_center;
mod kms;
mod organizations;
pub mod policy;
mod s3;
mod security_services;
mod sns;
mod sts;
mod wire;

use budgets::*;
use cloudtrail::*;
use cloudwatch::*;
use ec2::*;
use events::*;
use iam::*;
use identity_center::*;
pub use kms::AWS_SNS_KEY_ID;
use kms::kms;
use organizations::*;
use s3::*;
pub use security_services::SecurityServicesModel;
use security_services::*;
use sns::*;
use sts::*;
use wire::*;
pub use wire::{Fault, Faults, json_error, xml_error};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How AWS behaves, per behaviour; the default is the emulator as it is.
#[derive(Clone, Debug, Default)]
pub struct Realism {
    /// Every call takes this long (AWS answers in tens of milliseconds, not at once).
    pub latency: Duration,
    /// These operations take this long instead.
    pub slow: BTreeMap<String, Duration>,
    /// CreateAccount is asynchronous (Organizations API: CreateAccount, DescribeCreateAccountStatus).
    pub create_account: Option<CreateAccountModel>,
    /// Accounts that joined the Organization long ago, by id, with how (`INVITED` or `CREATED`).
    pub joined_long_ago: BTreeMap<String, String>,
    /// Accounts whose access role cannot be assumed (e.g. invited accounts without
    /// OrganizationAccountAccessRole): AssumeRole is AccessDenied.
    pub no_access_role: BTreeSet<String>,
    /// Role names the management account may assume (the operator's IAM policy); others are
    /// AccessDenied. Empty: any.
    pub assumable_role_names: BTreeSet<String>,
    /// IAM is eventually consistent: a group or user is NoSuchEntity for this long after it was
    /// created (IAM User Guide, "Changes that I make are not always immediately visible").
    pub iam_visibility_lag: Duration,
    /// Member-account sessions (credentials from AssumeRole) issued before this instant have
    /// expired, whatever expiry AWS stated: IAM and Account calls then answer `ExpiredToken`
    /// (those issued since live on, however slowly the caller works).
    pub sessions_expired_before: Option<Instant>,
    /// Writes naming these IAM groups answer `ConcurrentModification` (IAM's code) this many times.
    pub iam_concurrent_modification: BTreeMap<String, u32>,
    /// CloseAccount goes PENDING_CLOSURE, then SUSPENDED; closures are limited.
    pub close_account: Option<CloseAccountModel>,
    /// HeadBucket answers these status codes with an empty body (403: another account's bucket,
    /// 301: a bucket in another region).
    pub head_bucket: BTreeMap<String, u16>,
    /// GetAccountSummary reports the root user as (MFA enabled, access keys present, password
    /// present) — the emulator always says no MFA, no keys and leaves the password out.
    pub root_user: Option<(bool, bool, bool)>,
    /// Account aliases taken by other AWS accounts (aliases are unique across AWS):
    /// CreateAccountAlias answers EntityAlreadyExists.
    pub taken_aliases: BTreeSet<String>,
    /// AWS Budgets answered by the proxy itself, statefully, with every call the emulator lacks
    /// (UpdateBudget, UpdateNotification, the subscriber calls) and this spend per budget name
    /// (actual, forecasted, in the budget's unit; absent: 0).
    pub budgets: Option<BTreeMap<String, (f64, f64)>>,
    /// GetTrailStatus reports this LatestDeliveryError (e.g. AccessDenied when the bucket policy
    /// or KMS key policy stops CloudTrail); the emulator never reports one.
    pub trail_delivery_error: Option<String>,
    /// CloudTrail returns the trail's KmsKeyId as the full key ARN, whatever was sent.
    pub trail_kms_key_as_arn: bool,
    /// CreateTrail / UpdateTrail answer InsufficientS3BucketPolicyException for this long after
    /// the bucket's policy was put, CloudTrailAccessNotEnabledException for this long after
    /// trusted access was enabled, and InvalidCloudWatchLogsRoleArnException for this long after
    /// the CloudWatch Logs role was created or its trust changed. (Whatever this lag, CloudTrail
    /// always judges the role's trust and the bucket's policy as AWS documents:
    /// `cloudtrail::service_checks`.)
    pub trail_policy_lag: Duration,
    /// Organization policies answer as AWS does where the emulator says yes: oversize and
    /// malformed documents, attaching before the type is enabled, more attachments per target than
    /// allowed, the same attachment twice, detaching what is not attached, detaching a target's
    /// last SCP (Organizations quotas and API reference).
    pub policies: bool,
    /// IAM Identity Center's asynchronous requests and the calls the emulator lacks.
    pub identity_center: Option<IdentityCenterModel>,
    /// Centralized root access, which the emulator lacks: trusted access for
    /// `iam.amazonaws.com` (the emulator refuses the principal) and IAM's
    /// `ListOrganizationsFeatures` / `EnableOrganizationsRoot…` calls with their documented errors.
    pub root_access: bool,
    /// The root user's credentials per member account, as root sessions (`sts:AssumeRoot`,
    /// needing root sessions enabled) see and delete them; accounts not listed have none.
    pub root_credentials: BTreeMap<String, RootUserCredentials>,
    /// SNS email subscriptions stay `PendingConfirmation` until the mailbox follows AWS's link
    /// ([`AwsProxy::confirm_subscription`]); the emulator confirms them at once.
    pub email_confirmation: bool,
    /// GuardDuty, Security Hub and IAM Access Analyzer answered by this layer, statefully, for
    /// an Organization (the emulator lacks their organization calls, Access Analyzer entirely).
    pub security_services: Option<SecurityServicesModel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootUserCredentials {
    pub password: bool,
    pub access_keys: Vec<String>,
    pub mfa_devices: Vec<String>,
    pub signing_certificates: Vec<String>,
}

/// How IAM Identity Center answers (sso-admin API reference): assignment and provisioning requests
/// stay IN_PROGRESS, then SUCCEEDED or FAILED with a reason; a bounded number may be outstanding;
/// tags, permissions boundaries and provisioning status are answered here (the emulator lacks them).
#[derive(Clone, Debug)]
pub struct IdentityCenterModel {
    /// IN_PROGRESS for this long.
    pub duration: Duration,
    /// CreateAccountAssignment into these accounts (`*`: any) FAILS with this reason (while
    /// listed here).
    pub failures: BTreeMap<String, String>,
    /// Outstanding assignment requests at once; more are refused (ThrottlingException).
    pub max_outstanding: usize,
}

impl Default for IdentityCenterModel {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(1),
            failures: BTreeMap::new(),
            max_outstanding: 10,
        }
    }
}

#[derive(Clone, Debug)]
struct SsoRequest {
    id: String,
    /// `create`, `delete` or `provision`.
    kind: &'static str,
    at: Instant,
    body: Value,
    failure: Option<String>,
    settled: bool,
}

#[derive(Clone, Debug)]
pub struct CreateAccountModel {
    /// IN_PROGRESS for this long, then SUCCEEDED (or the failure queued in `failures`).
    pub duration: Duration,
    /// Listed (ListAccounts, ListAccountsForParent, DescribeAccount) only this long after SUCCEEDED.
    pub visible_after: Duration,
    /// AssumeRole into the new account is AccessDenied until this long after SUCCEEDED.
    pub assumable_after: Duration,
    /// Requests in flight at once (AWS: 5).
    pub max_in_flight: usize,
    /// Accounts created per day (AWS: a quota; ConstraintViolation ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED).
    pub daily_limit: usize,
    /// The next requests fail with these FailureReasons, in order (e.g. INTERNAL_FAILURE).
    pub failures: Vec<String>,
}

impl Default for CreateAccountModel {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3),
            visible_after: Duration::from_secs(1),
            assumable_after: Duration::from_secs(2),
            max_in_flight: 5,
            daily_limit: 1000,
            failures: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CloseAccountModel {
    /// PENDING_CLOSURE for this long, then SUSPENDED.
    pub pending: Duration,
    /// Closures allowed in the 30-day window (CLOSE_ACCOUNT_QUOTA_EXCEEDED beyond).
    pub quota: usize,
    /// Accounts closing at once (CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED beyond; AWS: 3).
    pub max_in_flight: usize,
}

impl Default for CloseAccountModel {
    fn default() -> Self {
        Self {
            pending: Duration::from_secs(3),
            quota: 100,
            max_in_flight: 3,
        }
    }
}

/// A budget notification as sent, with its subscribers.
pub type Notification = (Value, Vec<Value>);

/// One CreateAccount request as AWS tracks it.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    pub id: String,
    pub name: String,
    pub email: String,
    pub at: Instant,
    pub account_id: Option<String>,
    pub failure: Option<String>,
    /// When DescribeCreateAccountStatus first answered that the request had ended: how soon the
    /// caller learnt of it.
    pub seen_ended_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    faults: Faults,
    realism: Realism,
    seen: u64,
    /// Requests per operation, faults included.
    counts: BTreeMap<String, u64>,
    injected: u64,
    creates: Vec<CreateRequest>,
    /// account id → when CloseAccount was accepted.
    closing: BTreeMap<String, Instant>,
    closed: usize,
    /// (caller's access key, "group:NAME" / "user:NAME") → created at.
    iam_created: BTreeMap<(String, String), Instant>,
    policy_put_at: Option<Instant>,
    /// Access keys of assumed-role sessions → when AssumeRole issued them.
    sessions: BTreeMap<String, Instant>,
    trusted_access_at: Option<Instant>,
    sequence: u64,
    /// Budgets by name: the budget as sent, and its notifications with their subscribers.
    budgets: BTreeMap<String, (Value, Vec<Notification>)>,
    /// Budgets writes, as `Operation budget-name`.
    budget_writes: Vec<String>,
    sso_requests: Vec<SsoRequest>,
    /// Tags and permissions boundaries of Identity Center resources, by ARN.
    sso_tags: BTreeMap<String, BTreeMap<String, String>>,
    sso_boundaries: BTreeMap<String, Value>,
    /// (account, permission set, principal) assigned through this layer.
    sso_assigned: BTreeSet<(String, String, String)>,
    /// Trusted access the emulator refuses (iam.amazonaws.com), granted here.
    extra_trusted: BTreeSet<String>,
    /// Enabled centralized root-access features.
    root_features: BTreeSet<String>,
    /// Access keys of root sessions → (account, task policy ARN).
    root_sessions: BTreeMap<String, (String, String)>,
    /// Access keys of member-account sessions → the account.
    session_accounts: BTreeMap<String, String>,
    /// EC2 instance metadata defaults (the emulator lacks them): (account, region) → HttpTokens.
    imds_defaults: BTreeMap<(String, String), String>,
    /// The default EBS key per (account, region), once set (the emulator lacks it).
    ebs_keys: BTreeMap<(String, String), String>,
    /// Email subscriptions not confirmed yet: subscription ARN → endpoint.
    pending_subscriptions: BTreeMap<String, String>,
    confirmed_subscriptions: BTreeSet<String>,
    services: ServicesState,
    /// What became of each event this layer delivered itself (`events.rs`), in order.
    event_deliveries: Vec<String>,
    /// Each alarm action an alarm entering ALARM ran (`cloudwatch.rs`): published or refused.
    alarm_notifications: Vec<String>,
}

impl State {
    fn create_model(&self) -> Option<&CreateAccountModel> {
        self.realism.create_account.as_ref()
    }

    fn create_state(&self, r: &CreateRequest, now: Instant) -> &'static str {
        let m = self.create_model().cloned().unwrap_or_default();
        if now < r.at + m.duration {
            "IN_PROGRESS"
        } else if r.failure.is_some() {
            "FAILED"
        } else {
            "SUCCEEDED"
        }
    }

    /// Accounts AWS does not list yet: in creation, or created moments ago.
    fn hidden_accounts(&self, now: Instant) -> BTreeSet<String> {
        let Some(m) = self.create_model() else {
            return BTreeSet::new();
        };
        self.creates
            .iter()
            .filter(|r| now < r.at + m.duration + m.visible_after)
            .filter_map(|r| r.account_id.clone())
            .collect()
    }

    fn not_yet_assumable(&self, account: &str, now: Instant) -> bool {
        let Some(m) = self.create_model() else {
            return false;
        };
        self.creates.iter().any(|r| {
            r.account_id.as_deref() == Some(account)
                && now < r.at + m.duration + m.visible_after + m.assumable_after
        })
    }

    fn closing_now(&self, now: Instant) -> BTreeSet<String> {
        let Some(m) = &self.realism.close_account else {
            return BTreeSet::new();
        };
        self.closing
            .iter()
            .filter(|(_, at)| now < **at + m.pending)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn create_status_json(&self, r: &CreateRequest, now: Instant) -> Value {
        let state = self.create_state(r, now);
        // AWS's timestamps are wall-clock seconds: when it was asked, and when it ended.
        let epoch = |at: Instant| {
            let wall = std::time::SystemTime::now() - now.saturating_duration_since(at);
            wall.duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let mut v = json!({
            "Id": r.id, "AccountName": r.name, "State": state,
            "RequestedTimestamp": epoch(r.at),
        });
        let ended = r.at + self.create_model().cloned().unwrap_or_default().duration;
        match state {
            "SUCCEEDED" => {
                v["AccountId"] = json!(r.account_id);
                v["CompletedTimestamp"] = json!(epoch(ended));
            }
            "FAILED" => {
                v["FailureReason"] = json!(r.failure);
                v["CompletedTimestamp"] = json!(epoch(ended));
            }
            _ => {}
        }
        v
    }
}

/// The proxy: realism and faults in front of one emulator.
pub struct AwsProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

/// The name the fault-injection tests know it by.
pub type FaultProxy = AwsProxy;

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AwsProxy {
    pub async fn start(upstream: &str) -> AwsProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Arc<Mutex<State>> = Arc::default();
        let upstream = Upstream {
            url: upstream.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, upstream) = (st.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (st, upstream) = (st.clone(), upstream.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map_err(std::io::Error::other)?
                                .to_bytes();
                            handle(Call::new(parts, body), &st, &upstream).await
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AwsProxy {
            endpoint,
            state,
            task,
        }
    }

    pub fn set(&self, faults: Faults) {
        let mut s = self.state.lock().unwrap();
        s.faults = faults;
        s.seen = 0;
    }

    /// Turns AWS's behaviours on (or off) from now on.
    pub fn realism(&self, realism: Realism) {
        self.state.lock().unwrap().realism = realism;
    }

    /// Changes part of the realism in place (e.g. queue a CreateAccount failure).
    pub fn update_realism(&self, f: impl FnOnce(&mut Realism)) {
        f(&mut self.state.lock().unwrap().realism);
    }

    /// Budgets writes so far, as `Operation budget-name`.
    pub fn budget_writes(&self) -> Vec<String> {
        self.state.lock().unwrap().budget_writes.clone()
    }

    pub fn clear_budget_writes(&self) {
        self.state.lock().unwrap().budget_writes.clear();
    }

    /// Changes a budget as someone would in the console (notifications with their subscribers).
    pub fn edit_budget(&self, name: &str, f: impl FnOnce(&mut Vec<Notification>)) {
        if let Some((_, n)) = self.state.lock().unwrap().budgets.get_mut(name) {
            f(n);
        }
    }

    pub fn budget_names(&self) -> Vec<String> {
        self.state.lock().unwrap().budgets.keys().cloned().collect()
    }

    /// Every CreateAccount request AWS accepted, in order.
    pub fn create_requests(&self) -> Vec<CreateRequest> {
        self.state.lock().unwrap().creates.clone()
    }

    pub fn count(&self, op: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    /// Write calls that reached this layer (Describe/List/Get/Head and AssumeRole are reads).
    pub fn writes(&self) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counts
            .iter()
            .filter(|(op, _)| landing_zone_operator::aws::call_kind(op) == "write")
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.state.lock().unwrap().counts.values().sum()
    }

    pub fn injected(&self) -> u64 {
        self.state.lock().unwrap().injected
    }

    /// The HttpTokens default of an account's instance metadata in a region, as this layer keeps
    /// it (`management` for the management account).
    pub fn imds_tokens(&self, account: &str, region: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .imds_defaults
            .get(&(account.to_string(), region.to_string()))
            .cloned()
    }

    /// The security services finish every enrolment begun so far (as AWS would, given time).
    pub fn finish_enrolments(&self) {
        self.state.lock().unwrap().services.done_before = Some(Instant::now());
    }

    /// The mailbox follows the link in AWS's confirmation mail: its subscriptions are confirmed.
    pub fn confirm_subscription(&self, endpoint: &str) {
        let mut s = self.state.lock().unwrap();
        let confirmed: Vec<String> = s
            .pending_subscriptions
            .iter()
            .filter(|(_, e)| e.eq_ignore_ascii_case(endpoint))
            .map(|(arn, _)| arn.clone())
            .collect();
        for arn in confirmed {
            s.pending_subscriptions.remove(&arn);
            s.confirmed_subscriptions.insert(arn);
        }
    }

    /// What became of each event whose delivery this layer judged a refusal or forwarded to
    /// another region, in order: delivered, forwarded, sent to a dead-letter queue, or lost.
    pub fn event_deliveries(&self) -> Vec<String> {
        self.state.lock().unwrap().event_deliveries.clone()
    }

    /// Each SNS action of an alarm set to ALARM through this layer, in order: `<alarm> to
    /// <topic>: published`, or `refused: …` when the topic's key does not let CloudWatch use it.
    pub fn alarm_notifications(&self) -> Vec<String> {
        self.state.lock().unwrap().alarm_notifications.clone()
    }

    pub fn reset_counts(&self) {
        let mut s = self.state.lock().unwrap();
        s.counts.clear();
        s.injected = 0;
    }
}

/// The answer AWS would give (no faults).
async fn dispatch(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    match call.service.as_str() {
        "organizations" => organizations(call, st, upstream).await,
        "sts" => sts(call, st, upstream).await,
        "iam" => iam(call, st, upstream).await,
        "s3" => s3(call, st, upstream).await,
        "cloudtrail" => cloudtrail(call, st, upstream).await,
        "ec2" => ec2(call, st, upstream).await,
        "kms" => kms(call, st, upstream).await,
        "config" => config(call, st, upstream).await,
        "monitoring" => cloudwatch(call, st, upstream).await,
        "events" => events(call, st, upstream).await,
        "guardduty" | "securityhub" | "access-analyzer" => {
            security_services(call, st, upstream).await
        }
        "sns" if st.lock().unwrap().realism.email_confirmation => sns(call, st, upstream).await,
        "budgets" if st.lock().unwrap().realism.budgets.is_some() => {
            let refused = topics_refusing_budgets(call, st, upstream).await?;
            Ok(budgets(call, st, &refused))
        }
        "sso" if st.lock().unwrap().realism.identity_center.is_some() => {
            sso(call, st, upstream).await
        }
        _ => upstream.forward(call).await,
    }
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}
