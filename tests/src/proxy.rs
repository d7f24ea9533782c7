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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ConcurrentModification,
    ServerError,
    Drop,
    /// AccessDeniedException, as for a caller whose policy lacks the action.
    AccessDenied,
    /// DeleteOrganizationalUnit: OrganizationalUnitNotEmptyException (a child arrived meanwhile).
    NotEmpty,
    /// The call reaches AWS and takes effect, but its answer is lost (a crash, a cut connection).
    LoseResponse,
    /// Any JSON-protocol error AWS documents for the operation: (HTTP status, error code).
    Aws(u16, &'static str),
}

#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// (fault, fraction of matching calls) — deterministic: every 1/fraction-th call.
    pub inject: Option<(Fault, f64)>,
    /// Only these operations (empty: every AWS Organizations call).
    pub only: Vec<String>,
    /// AWS unreachable: every connection dropped.
    pub down: bool,
    /// Stop injecting after this many faults (none: never stop).
    pub limit: Option<u64>,
}

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
    /// Member-account sessions (credentials from AssumeRole) expire this long after they were
    /// issued, whatever expiry AWS stated: IAM and Account calls then answer `ExpiredToken`.
    pub member_session_ttl: Option<Duration>,
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
    /// SNS topics whose access policy does not let budgets.amazonaws.com publish.
    pub budget_refused_topics: BTreeSet<String>,
    /// GetTrailStatus reports this LatestDeliveryError (e.g. AccessDenied when the bucket policy
    /// or KMS key policy stops CloudTrail); the emulator never reports one.
    pub trail_delivery_error: Option<String>,
    /// CloudTrail returns the trail's KmsKeyId as the full key ARN, whatever was sent.
    pub trail_kms_key_as_arn: bool,
    /// CreateTrail / UpdateTrail answer InsufficientS3BucketPolicyException for this long after
    /// the bucket's policy was put, and CloudTrailAccessNotEnabledException for this long after
    /// trusted access was enabled.
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
        let mut v = json!({
            "Id": r.id, "AccountName": r.name, "State": state,
            "RequestedTimestamp": 1.7e9,
        });
        match state {
            "SUCCEEDED" => {
                v["AccountId"] = json!(r.account_id);
                v["CompletedTimestamp"] = json!(1.7e9);
            }
            "FAILED" => v["FailureReason"] = json!(r.failure),
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

/// One request as the proxy sees it.
struct Call {
    parts: hyper::http::request::Parts,
    body: Bytes,
    /// `organizations`, `iam`, `sts`, `s3`, … (from the SigV4 credential scope).
    service: String,
    operation: String,
    /// The caller's access key (one per account session).
    caller: String,
    /// Query-protocol parameters (IAM, STS).
    form: BTreeMap<String, String>,
    /// JSON-protocol body (Organizations, CloudTrail, Budgets).
    json: Value,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Call {
    fn new(parts: hyper::http::request::Parts, body: Bytes) -> Self {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let auth = header("authorization");
        // Credential=AKID/20260101/us-east-1/iam/aws4_request
        let scope: Vec<&str> = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split(',').next())
            .map(|c| c.split('/').collect())
            .unwrap_or_default();
        let caller = scope.first().copied().unwrap_or_default().to_string();
        let service = scope.get(3).copied().unwrap_or_default().to_string();
        let text = String::from_utf8_lossy(&body);
        let form: BTreeMap<String, String> =
            if header("content-type").contains("x-www-form-urlencoded") {
                text.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (percent_decode(k), percent_decode(v)))
                    .collect()
            } else {
                BTreeMap::new()
            };
        let target = header("x-amz-target");
        let operation = if !target.is_empty() {
            target.rsplit('.').next().unwrap_or(&target).to_string()
        } else if let Some(action) = form.get("Action") {
            action.clone()
        } else if service == "s3" {
            let path = parts.uri.path().trim_matches('/');
            let query = parts.uri.query().unwrap_or_default();
            match (parts.method.as_str(), path.contains('/'), query) {
                ("HEAD", false, _) => "HeadBucket".to_string(),
                ("PUT", false, q) if q.starts_with("policy") => "PutBucketPolicy".to_string(),
                ("PUT", false, q) if q.starts_with("lifecycle") => {
                    "PutBucketLifecycleConfiguration".to_string()
                }
                (m, _, q) => format!("{m} s3 {q}"),
            }
        } else {
            format!("{} {}", parts.method, parts.uri.path())
        };
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Call {
            parts,
            body,
            service,
            operation,
            caller,
            form,
            json,
        }
    }

    fn is_organizations(&self) -> bool {
        self.service == "organizations"
    }
}

type Answer = Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", "00000000-0000-4000-8000-000000000000")
        .body(Full::new(body.into()))
        .expect("valid response")
}

/// An AWS JSON-protocol error (Organizations, CloudTrail, Budgets).
pub fn json_error(status: u16, code: &str, message: &str, reason: Option<&str>) -> Answer {
    let mut body = json!({"__type": code, "Message": message});
    if let Some(r) = reason {
        body["Reason"] = json!(r);
    }
    let mut resp = respond(status, "application/x-amz-json-1.1", body.to_string());
    resp.headers_mut()
        .insert("x-amzn-errortype", code.parse().expect("header value"));
    resp
}

fn json_ok(body: Value) -> Answer {
    respond(200, "application/x-amz-json-1.1", body.to_string())
}

/// An AWS query-protocol error (IAM, STS): `<ErrorResponse>` XML.
pub fn xml_error(service: &str, status: u16, code: &str, message: &str) -> Answer {
    let ns = match service {
        "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
        _ => "https://iam.amazonaws.com/doc/2010-05-08/",
    };
    respond(
        status,
        "text/xml",
        format!(
            "<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
        ),
    )
}

#[derive(Clone)]
struct Upstream {
    url: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Upstream {
    async fn send(&self, call: &Call, body: Bytes) -> Result<(u16, Answer, Bytes), std::io::Error> {
        let uri = format!(
            "{}{}",
            self.url,
            call.parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        let mut fwd = Request::builder()
            .method(call.parts.method.clone())
            .uri(uri);
        for (k, v) in &call.parts.headers {
            if k != "content-length" {
                fwd = fwd.header(k, v);
            }
        }
        let resp = self
            .client
            .request(fwd.body(Full::new(body)).map_err(std::io::Error::other)?)
            .await
            .map_err(std::io::Error::other)?;
        let (mut parts, rbody) = resp.into_parts();
        let bytes = rbody
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        parts.headers.remove("content-length");
        Ok((
            parts.status.as_u16(),
            Response::from_parts(parts, Full::new(bytes.clone())),
            bytes,
        ))
    }

    /// Asks the emulator an Organizations question of its own (same caller, another operation),
    /// for the checks AWS makes and the emulator does not.
    async fn ask_organizations(
        &self,
        call: &Call,
        operation: &str,
        body: Value,
    ) -> Result<Value, std::io::Error> {
        self.ask(call, "AWSOrganizationsV20161128", operation, body)
            .await
    }

    /// The same for any JSON-protocol service, by its target prefix.
    async fn ask(
        &self,
        call: &Call,
        target_prefix: &str,
        operation: &str,
        body: Value,
    ) -> Result<Value, std::io::Error> {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.url));
        // The emulator routes by the credential scope's service and the content type: a question
        // asked on behalf of another service's call (e.g. IAM's) must name its own.
        let service = match target_prefix {
            "SWBExternalService" => "sso",
            _ => "organizations",
        };
        for (k, v) in &call.parts.headers {
            if k == "authorization" {
                let auth = v.to_str().unwrap_or_default();
                let auth = auth.replace(
                    &format!("/{}/aws4_request", call.service),
                    &format!("/{service}/aws4_request"),
                );
                req = req.header(k, auth);
            } else if k != "content-length" && k != "x-amz-target" && k != "content-type" {
                req = req.header(k, v);
            }
        }
        req = req
            .header("x-amz-target", format!("{target_prefix}.{operation}"))
            .header("content-type", "application/x-amz-json-1.1");
        let resp = self
            .client
            .request(
                req.body(Full::new(Bytes::from(body.to_string())))
                    .map_err(std::io::Error::other)?,
            )
            .await
            .map_err(std::io::Error::other)?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn forward(&self, call: &Call) -> Result<Answer, std::io::Error> {
        Ok(self.send(call, call.body.clone()).await?.1)
    }

    /// Forwards, then lets `edit` rewrite a successful JSON answer.
    async fn forward_json(
        &self,
        call: &Call,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Answer, std::io::Error> {
        let (status, answer, bytes) = self.send(call, call.body.clone()).await?;
        if status != 200 {
            return Ok(answer);
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(answer);
        };
        edit(&mut v);
        Ok(json_ok(v))
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

    pub fn reset_counts(&self) {
        let mut s = self.state.lock().unwrap();
        s.counts.clear();
        s.injected = 0;
    }
}

/// The injected fault for this call, if any (and counts the call).
fn fault_for(s: &mut State, call: &Call) -> Option<Fault> {
    *s.counts.entry(call.operation.clone()).or_default() += 1;
    if s.faults.down {
        return Some(Fault::Drop);
    }
    let matches = if s.faults.only.is_empty() {
        call.is_organizations()
    } else {
        s.faults.only.contains(&call.operation)
    };
    if s.faults.limit.is_some_and(|l| s.injected >= l) {
        return None;
    }
    match s.faults.inject {
        Some((fault, fraction)) if matches => {
            s.seen += 1;
            let n = s.seen as f64;
            let hit = (n * fraction).floor() > ((n - 1.0) * fraction).floor();
            if hit {
                s.injected += 1;
            }
            hit.then_some(fault)
        }
        _ => None,
    }
}

async fn handle(
    call: Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let (fault, delay) = {
        let mut s = st.lock().unwrap();
        let delay = s
            .realism
            .slow
            .get(&call.operation)
            .copied()
            .unwrap_or(s.realism.latency);
        (fault_for(&mut s, &call), delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Throttle) => {
            return Ok(json_error(
                400,
                "TooManyRequestsException",
                "Rate exceeded",
                None,
            ));
        }
        Some(Fault::ConcurrentModification) => {
            return Ok(json_error(
                400,
                "ConcurrentModificationException",
                "AWS Organizations can't complete your request because it conflicts with another attempt to modify the same entity. Try again later.",
                None,
            ));
        }
        Some(Fault::ServerError) => {
            return Ok(json_error(
                500,
                "ServiceException",
                "AWS Organizations can't complete your request because of an internal service error. Try again later.",
                None,
            ));
        }
        Some(Fault::Drop) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "dropped by the fault proxy",
            ));
        }
        Some(Fault::AccessDenied) => {
            return Ok(json_error(
                400,
                "AccessDeniedException",
                "You don't have permissions to access this resource.",
                None,
            ));
        }
        Some(Fault::NotEmpty) => {
            return Ok(json_error(
                400,
                "OrganizationalUnitNotEmptyException",
                "You can't delete an organizational unit (OU) that contains accounts or other OUs.",
                None,
            ));
        }
        Some(Fault::Aws(status, code)) => {
            return Ok(json_error(
                status,
                code,
                &format!("{code} (injected by the realism layer)"),
                None,
            ));
        }
        Some(Fault::LoseResponse) => {
            let _ = Box::pin(dispatch(&call, st, upstream)).await;
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the answer was lost on the way back",
            ));
        }
        None => {}
    }
    dispatch(&call, st, upstream).await
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
        "budgets" if st.lock().unwrap().realism.budgets.is_some() => Ok(budgets(call, st)),
        "sso" if st.lock().unwrap().realism.identity_center.is_some() => {
            sso(call, st, upstream).await
        }
        _ => upstream.forward(call).await,
    }
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

async fn organizations(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let now = Instant::now();
    let (creating, closing, hidden) = {
        let s = st.lock().unwrap();
        (
            s.realism.create_account.clone(),
            s.realism.close_account.clone(),
            s.hidden_accounts(now),
        )
    };
    let closing_now = st.lock().unwrap().closing_now(now);
    let old = st.lock().unwrap().realism.joined_long_ago.clone();
    // Accounts in creation or not yet listed do not exist for the other calls either.
    let target = [
        str_of(&call.json, "AccountId"),
        str_of(&call.json, "ResourceId"),
        str_of(&call.json, "ChildId"),
    ]
    .into_iter()
    .find(|id| !id.is_empty())
    .unwrap_or_default()
    .to_string();
    if hidden.contains(&target) {
        let code = match call.operation.as_str() {
            "TagResource" | "UntagResource" | "ListTagsForResource" => "TargetNotFoundException",
            "ListParents" => "ChildNotFoundException",
            _ => "AccountNotFoundException",
        };
        return Ok(json_error(
            400,
            code,
            "You specified an account that doesn't exist.",
            None,
        ));
    }
    let rewrite = |a: &mut Value| {
        let id = str_of(a, "Id").to_string();
        if closing_now.contains(&id) {
            a["Status"] = json!("PENDING_CLOSURE");
            a["State"] = json!("PENDING_CLOSURE");
        }
        if let Some(method) = old.get(&id) {
            a["JoinedMethod"] = json!(method);
            a["JoinedTimestamp"] = json!(1.5e9);
        }
    };
    let hide_and_close = |v: &mut Value| {
        if let Some(accounts) = v.get_mut("Accounts").and_then(Value::as_array_mut) {
            accounts.retain(|a| !hidden.contains(str_of(a, "Id")));
            accounts.iter_mut().for_each(rewrite);
        }
        if let Some(a) = v.get_mut("Account") {
            rewrite(a);
        }
    };
    let policies = st.lock().unwrap().realism.policies;
    if policies && let Some(refusal) = policy_refusal(call, upstream).await? {
        return Ok(refusal);
    }
    match (call.operation.as_str(), creating, closing) {
        ("CreateAccount", Some(model), _) => create_account(call, st, upstream, &model).await,
        ("DescribeCreateAccountStatus", Some(_), _) => {
            let id = str_of(&call.json, "CreateAccountRequestId");
            let s = st.lock().unwrap();
            match s.creates.iter().find(|r| r.id == id) {
                Some(r) => Ok(json_ok(
                    json!({"CreateAccountStatus": s.create_status_json(r, now)}),
                )),
                None => Ok(json_error(
                    400,
                    "CreateAccountStatusNotFoundException",
                    "We can't find a create account request with the CreateAccountRequestId that you specified.",
                    None,
                )),
            }
        }
        ("ListCreateAccountStatus", Some(_), _) => {
            let states: Vec<String> = call
                .json
                .get("States")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let s = st.lock().unwrap();
            let statuses: Vec<Value> = s
                .creates
                .iter()
                .filter(|r| states.is_empty() || states.iter().any(|x| x == s.create_state(r, now)))
                .map(|r| s.create_status_json(r, now))
                .collect();
            Ok(json_ok(json!({"CreateAccountStatuses": statuses})))
        }
        ("CloseAccount", _, Some(model)) => {
            let id = str_of(&call.json, "AccountId").to_string();
            {
                let s = st.lock().unwrap();
                if s.closing_now(now).len() >= model.max_in_flight {
                    return Ok(json_error(
                        400,
                        "ConstraintViolationException",
                        "You attempted to exceed the number of accounts that you can close at a time.",
                        Some("CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED"),
                    ));
                }
                if s.closed >= model.quota {
                    return Ok(json_error(
                        400,
                        "ConstraintViolationException",
                        "You have exceeded close account quota for the past 30 days.",
                        Some("CLOSE_ACCOUNT_QUOTA_EXCEEDED"),
                    ));
                }
            }
            let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                let mut s = st.lock().unwrap();
                s.closing.insert(id, now);
                s.closed += 1;
            }
            Ok(answer)
        }
        ("ListAccounts" | "ListAccountsForParent" | "DescribeAccount", _, _)
            if !hidden.is_empty() || !closing_now.is_empty() || !old.is_empty() =>
        {
            upstream.forward_json(call, hide_and_close).await
        }
        ("EnableAWSServiceAccess", _, _)
            if st.lock().unwrap().realism.root_access
                && str_of(&call.json, "ServicePrincipal") == "iam.amazonaws.com" =>
        {
            st.lock()
                .unwrap()
                .extra_trusted
                .insert("iam.amazonaws.com".into());
            Ok(json_ok(json!({})))
        }
        ("ListAWSServiceAccessForOrganization", _, _)
            if !st.lock().unwrap().extra_trusted.is_empty() =>
        {
            let extra = st.lock().unwrap().extra_trusted.clone();
            upstream
                .forward_json(call, |v| {
                    if let Some(list) = v
                        .get_mut("EnabledServicePrincipals")
                        .and_then(Value::as_array_mut)
                    {
                        for p in &extra {
                            list.push(json!({"ServicePrincipal": p, "DateEnabled": 1.7e9}));
                        }
                    }
                })
                .await
        }
        ("EnableAWSServiceAccess", _, _) => {
            let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                st.lock().unwrap().trusted_access_at = Some(now);
            }
            Ok(answer)
        }
        _ => upstream.forward(call).await,
    }
}

const SSO: &str = "SWBExternalService";

fn sso_status(r: &SsoRequest, now: Instant, duration: Duration) -> Value {
    let state = if now < r.at + duration {
        "IN_PROGRESS"
    } else if r.failure.is_some() {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    let mut v = json!({
        "Status": state, "RequestId": r.id,
        "PermissionSetArn": str_of(&r.body, "PermissionSetArn"),
        "CreatedDate": 1.7e9,
    });
    if r.kind != "provision" {
        for f in ["TargetId", "TargetType", "PrincipalType", "PrincipalId"] {
            v[f] = r.body[f].clone();
        }
    }
    if state == "FAILED" {
        v["FailureReason"] = json!(r.failure);
    }
    v
}

/// Makes the requests whose time has come take effect in the emulator.
async fn sso_settle(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<(), std::io::Error> {
    let now = Instant::now();
    let due: Vec<SsoRequest> = {
        let mut s = st.lock().unwrap();
        let d = s
            .realism
            .identity_center
            .clone()
            .unwrap_or_default()
            .duration;
        let due: Vec<SsoRequest> = s
            .sso_requests
            .iter()
            .filter(|r| !r.settled && now >= r.at + d)
            .cloned()
            .collect();
        for r in s.sso_requests.iter_mut() {
            if due.iter().any(|d| d.id == r.id) {
                r.settled = true;
            }
        }
        due
    };
    for r in due {
        let key = (
            str_of(&r.body, "TargetId").to_string(),
            str_of(&r.body, "PermissionSetArn").to_string(),
            str_of(&r.body, "PrincipalId").to_string(),
        );
        match r.kind {
            "create" if r.failure.is_none() => {
                // AWS keeps one assignment however often it is requested.
                let fresh = st.lock().unwrap().sso_assigned.insert(key);
                if fresh {
                    upstream
                        .ask(call, SSO, "CreateAccountAssignment", r.body.clone())
                        .await?;
                }
            }
            "delete" if st.lock().unwrap().sso_assigned.remove(&key) => {
                upstream
                    .ask(call, SSO, "DeleteAccountAssignment", r.body.clone())
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// AWS answers SessionDuration in ISO 8601 (`PT1H`); the emulator sends seconds for its default.
fn iso_session_duration(v: &mut Value) {
    let d = &mut v["PermissionSet"]["SessionDuration"];
    if let Some(secs) = d.as_u64() {
        *d = json!(format!("PT{}H", secs / 3600));
    }
}

async fn sso(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    sso_settle(call, st, upstream).await?;
    let now = Instant::now();
    let model = st
        .lock()
        .unwrap()
        .realism
        .identity_center
        .clone()
        .unwrap_or_default();
    let op = call.operation.as_str();
    let not_found = |what: &str| {
        json_error(
            400,
            "ResourceNotFoundException",
            &format!("{what} not found"),
            None,
        )
    };
    match op {
        "CreateAccountAssignment" | "DeleteAccountAssignment" | "ProvisionPermissionSet" => {
            let mut s = st.lock().unwrap();
            let outstanding = s
                .sso_requests
                .iter()
                .filter(|r| r.kind != "provision" && now < r.at + model.duration)
                .count();
            if op != "ProvisionPermissionSet" && outstanding >= model.max_outstanding {
                return Ok(json_error(
                    400,
                    "ThrottlingException",
                    "Too many outstanding account assignment requests; try again later.",
                    None,
                ));
            }
            s.sequence += 1;
            let kind = match op {
                "CreateAccountAssignment" => "create",
                "DeleteAccountAssignment" => "delete",
                _ => "provision",
            };
            let failure = (kind == "create")
                .then(|| {
                    let f = &model.failures;
                    f.get(str_of(&call.json, "TargetId"))
                        .or(f.get("*"))
                        .cloned()
                })
                .flatten();
            let r = SsoRequest {
                id: format!("{:08x}-0000-4000-8000-{:012x}", s.sequence, s.sequence),
                kind,
                at: now,
                body: call.json.clone(),
                failure,
                settled: false,
            };
            let status = sso_status(&r, now, model.duration);
            s.sso_requests.push(r);
            let field = match kind {
                "create" => "AccountAssignmentCreationStatus",
                "delete" => "AccountAssignmentDeletionStatus",
                _ => "PermissionSetProvisioningStatus",
            };
            Ok(json_ok(json!({ field: status })))
        }
        "DescribeAccountAssignmentCreationStatus"
        | "DescribeAccountAssignmentDeletionStatus"
        | "DescribePermissionSetProvisioningStatus" => {
            let (id_field, field) = match op {
                "DescribeAccountAssignmentCreationStatus" => (
                    "AccountAssignmentCreationRequestId",
                    "AccountAssignmentCreationStatus",
                ),
                "DescribeAccountAssignmentDeletionStatus" => (
                    "AccountAssignmentDeletionRequestId",
                    "AccountAssignmentDeletionStatus",
                ),
                _ => (
                    "ProvisionPermissionSetRequestId",
                    "PermissionSetProvisioningStatus",
                ),
            };
            let s = st.lock().unwrap();
            match s
                .sso_requests
                .iter()
                .find(|r| r.id == str_of(&call.json, id_field))
            {
                Some(r) => Ok(json_ok(
                    json!({ field: sso_status(r, now, model.duration) }),
                )),
                None => Ok(not_found("request")),
            }
        }
        "DeletePermissionSet" => {
            let arn = str_of(&call.json, "PermissionSetArn").to_string();
            if st
                .lock()
                .unwrap()
                .sso_assigned
                .iter()
                .any(|(_, ps, _)| *ps == arn)
            {
                return Ok(json_error(
                    400,
                    "ConflictException",
                    "The permission set is still assigned; remove its account assignments first.",
                    None,
                ));
            }
            upstream.forward(call).await
        }
        "DescribePermissionSet" => upstream.forward_json(call, iso_session_duration).await,
        "CreatePermissionSet" => {
            let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                iso_session_duration(&mut v);
                let answer = json_ok(v.clone());
                let arn = str_of(&v["PermissionSet"], "PermissionSetArn").to_string();
                let tags: BTreeMap<String, String> = call.json["Tags"]
                    .as_array()
                    .map(|ts| {
                        ts.iter()
                            .map(|t| (str_of(t, "Key").to_string(), str_of(t, "Value").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                st.lock().unwrap().sso_tags.insert(arn, tags);
                return Ok(answer);
            }
            Ok(answer)
        }
        "TagResource" => {
            let arn = str_of(&call.json, "ResourceArn").to_string();
            let mut s = st.lock().unwrap();
            let tags = s.sso_tags.entry(arn).or_default();
            for t in call.json["Tags"].as_array().cloned().unwrap_or_default() {
                tags.insert(
                    str_of(&t, "Key").to_string(),
                    str_of(&t, "Value").to_string(),
                );
            }
            Ok(json_ok(json!({})))
        }
        "UntagResource" => {
            let arn = str_of(&call.json, "ResourceArn").to_string();
            let mut s = st.lock().unwrap();
            let tags = s.sso_tags.entry(arn).or_default();
            for k in call.json["TagKeys"].as_array().cloned().unwrap_or_default() {
                tags.remove(k.as_str().unwrap_or_default());
            }
            Ok(json_ok(json!({})))
        }
        "ListTagsForResource" => {
            let s = st.lock().unwrap();
            let tags: Vec<Value> = s
                .sso_tags
                .get(str_of(&call.json, "ResourceArn"))
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| json!({"Key": k, "Value": v}))
                        .collect()
                })
                .unwrap_or_default();
            Ok(json_ok(json!({"Tags": tags})))
        }
        "PutPermissionsBoundaryToPermissionSet" => {
            let arn = str_of(&call.json, "PermissionSetArn").to_string();
            st.lock()
                .unwrap()
                .sso_boundaries
                .insert(arn, call.json["PermissionsBoundary"].clone());
            Ok(json_ok(json!({})))
        }
        "GetPermissionsBoundaryForPermissionSet" => {
            let s = st.lock().unwrap();
            match s.sso_boundaries.get(str_of(&call.json, "PermissionSetArn")) {
                Some(b) => Ok(json_ok(json!({"PermissionsBoundary": b}))),
                None => Ok(not_found("permissions boundary")),
            }
        }
        "DeletePermissionsBoundaryFromPermissionSet" => {
            st.lock()
                .unwrap()
                .sso_boundaries
                .remove(str_of(&call.json, "PermissionSetArn"));
            Ok(json_ok(json!({})))
        }
        _ => upstream.forward(call).await,
    }
}

/// Largest document and attachments per target, by AWS policy type (Organizations quotas page).
fn policy_limits(policy_type: &str) -> (usize, usize) {
    match policy_type {
        "SERVICE_CONTROL_POLICY" | "RESOURCE_CONTROL_POLICY" => (5120, 5),
        "AISERVICES_OPT_OUT_POLICY" => (2500, 5),
        _ => (10_000, 10),
    }
}

/// AWS's refusal of a policy call the emulator would accept, if any.
async fn policy_refusal(
    call: &Call,
    upstream: &Upstream,
) -> Result<Option<Answer>, std::io::Error> {
    let op = call.operation.as_str();
    if !matches!(
        op,
        "CreatePolicy" | "UpdatePolicy" | "AttachPolicy" | "DetachPolicy"
    ) {
        return Ok(None);
    }
    let policy_id = str_of(&call.json, "PolicyId").to_string();
    let policy_type = if op == "CreatePolicy" {
        str_of(&call.json, "Type").to_string()
    } else {
        let described = upstream
            .ask_organizations(call, "DescribePolicy", json!({"PolicyId": policy_id}))
            .await?;
        str_of(&described["Policy"]["PolicySummary"], "Type").to_string()
    };
    let (max_size, max_attached) = policy_limits(&policy_type);
    let violation = |reason: &str, message: &str| {
        Some(json_error(
            400,
            "ConstraintViolationException",
            message,
            Some(reason),
        ))
    };
    if let Some(content) = call.json.get("Content").and_then(Value::as_str) {
        if content.chars().count() > max_size {
            return Ok(violation(
                "POLICY_CONTENT_LIMIT_EXCEEDED",
                "You attempted to exceed the maximum size of a policy document.",
            ));
        }
        if serde_json::from_str::<Value>(content).is_err() {
            return Ok(Some(json_error(
                400,
                "MalformedPolicyDocumentException",
                "The provided policy document doesn't meet the requirements of the specified policy type.",
                None,
            )));
        }
    }
    if !matches!(op, "AttachPolicy" | "DetachPolicy") {
        return Ok(None);
    }
    let roots = upstream
        .ask_organizations(call, "ListRoots", json!({}))
        .await?;
    let enabled = roots["Roots"][0]["PolicyTypes"]
        .as_array()
        .is_some_and(|types| {
            types
                .iter()
                .any(|t| str_of(t, "Type") == policy_type && str_of(t, "Status") == "ENABLED")
        });
    if !enabled {
        return Ok(Some(json_error(
            400,
            "PolicyTypeNotEnabledException",
            "This operation can be performed only for enabled policy types.",
            None,
        )));
    }
    let target = str_of(&call.json, "TargetId");
    let attached = upstream
        .ask_organizations(
            call,
            "ListPoliciesForTarget",
            json!({"TargetId": target, "Filter": policy_type}),
        )
        .await?;
    let attached: Vec<String> = attached["Policies"]
        .as_array()
        .map(|ps| ps.iter().map(|p| str_of(p, "Id").to_string()).collect())
        .unwrap_or_default();
    let here = attached.contains(&policy_id);
    Ok(match op {
        "AttachPolicy" if here => Some(json_error(
            400,
            "DuplicatePolicyAttachmentException",
            "The selected policy is already attached to the specified target.",
            None,
        )),
        "AttachPolicy" if attached.len() >= max_attached => violation(
            "POLICY_NUMBER_LIMIT_EXCEEDED",
            "You attempted to exceed the number of policies that you can have in an organization.",
        ),
        "DetachPolicy" if !here => Some(json_error(
            400,
            "PolicyNotAttachedException",
            "The policy isn't attached to the specified target in the specified root.",
            None,
        )),
        "DetachPolicy" if policy_type == "SERVICE_CONTROL_POLICY" && attached.len() == 1 => {
            violation(
                "MIN_POLICY_TYPE_ATTACHMENT_LIMIT_EXCEEDED",
                "You attempted to detach a policy from an entity that would leave it without any policies of that type.",
            )
        }
        _ => None,
    })
}

async fn create_account(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
    model: &CreateAccountModel,
) -> Result<Answer, std::io::Error> {
    let now = Instant::now();
    let name = str_of(&call.json, "AccountName").to_string();
    let email = str_of(&call.json, "Email").to_string();
    let failure = {
        let mut s = st.lock().unwrap();
        let in_flight = s
            .creates
            .iter()
            .filter(|r| s.create_state(r, now) == "IN_PROGRESS")
            .count();
        if in_flight >= model.max_in_flight {
            return Ok(json_error(
                400,
                "TooManyRequestsException",
                "You have reached the limit on the number of concurrent account creation requests.",
                None,
            ));
        }
        if s.creates.iter().filter(|r| r.failure.is_none()).count() >= model.daily_limit {
            return Ok(json_error(
                400,
                "ConstraintViolationException",
                "You attempted to exceed the number of accounts that you can create in one day.",
                Some("ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED"),
            ));
        }
        let queued = s
            .realism
            .create_account
            .as_mut()
            .map(|m| (!m.failures.is_empty()).then(|| m.failures.remove(0)))
            .unwrap_or_default();
        // One root email, one account, across all of AWS (the request fails; nothing is created).
        let taken = s
            .creates
            .iter()
            .any(|r| r.failure.is_none() && r.email.eq_ignore_ascii_case(&email));
        queued.or(taken.then(|| "EMAIL_ALREADY_EXISTS".to_string()))
    };
    let failure = match failure {
        Some(f) => Some(f),
        None => {
            // Accounts the emulator already has (made before the model was on, or out of band).
            let list = Call {
                parts: call.parts.clone(),
                body: Bytes::new(),
                service: call.service.clone(),
                operation: "ListAccounts".into(),
                caller: call.caller.clone(),
                form: BTreeMap::new(),
                json: Value::Null,
            };
            let mut parts = list.parts;
            parts.headers.insert(
                "x-amz-target",
                "AWSOrganizationsV20161128.ListAccounts".parse().unwrap(),
            );
            let list = Call { parts, ..list };
            let (_, _, bytes) = upstream.send(&list, Bytes::from_static(b"{}")).await?;
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let exists = v
                .get("Accounts")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter()
                        .any(|a| str_of(a, "Email").eq_ignore_ascii_case(&email))
                });
            exists.then(|| "EMAIL_ALREADY_EXISTS".to_string())
        }
    };
    let request = match failure {
        Some(reason) => {
            let mut s = st.lock().unwrap();
            s.sequence += 1;
            CreateRequest {
                id: format!("car-{:032x}", 0xfa11_0000_u64 + s.sequence),
                name,
                email,
                at: now,
                account_id: None,
                failure: Some(reason),
            }
        }
        None => {
            let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
            if status != 200 {
                return Ok(answer);
            }
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let s = &v["CreateAccountStatus"];
            CreateRequest {
                id: str_of(s, "Id").to_string(),
                name,
                email,
                at: now,
                account_id: Some(str_of(s, "AccountId").to_string()),
                failure: None,
            }
        }
    };
    let mut s = st.lock().unwrap();
    s.creates.push(request.clone());
    let status = s.create_status_json(&request, now);
    Ok(json_ok(json!({"CreateAccountStatus": status})))
}

async fn sts(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    if call.operation == "AssumeRoot" {
        let mut s = st.lock().unwrap();
        if !(s.realism.root_access && s.root_features.contains("RootSessions")) {
            return Ok(xml_error(
                "sts",
                403,
                "AccessDenied",
                "User is not authorized to perform: sts:AssumeRoot: root sessions are not enabled for the organization",
            ));
        }
        s.sequence += 1;
        let key = format!("ASIAROOT{:012}", s.sequence);
        let account = call
            .form
            .get("TargetPrincipal")
            .cloned()
            .unwrap_or_default();
        let task = call
            .form
            .get("TaskPolicyArn.arn")
            .cloned()
            .unwrap_or_default();
        s.root_sessions.insert(key.clone(), (account, task));
        return Ok(respond(
            200,
            "text/xml",
            format!(
                "<AssumeRootResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRootResult><Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>root-secret</SecretAccessKey><SessionToken>root-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><SourceIdentity></SourceIdentity></AssumeRootResult><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></AssumeRootResponse>"
            ),
        ));
    }
    if call.operation == "AssumeRole" {
        let arn = call.form.get("RoleArn").cloned().unwrap_or_default();
        // arn:aws:iam::<account>:role/<name>
        let account = arn.split(':').nth(4).unwrap_or_default().to_string();
        let role = arn.rsplit('/').next().unwrap_or_default().to_string();
        let denied = {
            let s = st.lock().unwrap();
            let now = Instant::now();
            s.not_yet_assumable(&account, now)
                || s.hidden_accounts(now).contains(&account)
                || s.realism.no_access_role.contains(&account)
                || (!s.realism.assumable_role_names.is_empty()
                    && !s.realism.assumable_role_names.contains(&role))
        };
        if !denied {
            let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
            if status == 200 {
                let xml = String::from_utf8_lossy(&bytes);
                if let Some(key) = xml
                    .split("<AccessKeyId>")
                    .nth(1)
                    .and_then(|r| r.split("</AccessKeyId>").next())
                {
                    st.lock()
                        .unwrap()
                        .sessions
                        .insert(key.to_string(), Instant::now());
                }
            }
            return Ok(answer);
        }
        if denied {
            return Ok(xml_error(
                "sts",
                403,
                "AccessDenied",
                &format!(
                    "User: arn:aws:iam::123456789012:user/landing-zone is not authorized to perform: sts:AssumeRole on resource: {arn}"
                ),
            ));
        }
    }
    upstream.forward(call).await
}

async fn iam(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let group = call.form.get("GroupName").cloned();
    let user = call.form.get("UserName").cloned();
    let op = call.operation.as_str();
    let now = Instant::now();
    let root_user = st.lock().unwrap().realism.root_user;
    let root_session = st.lock().unwrap().root_sessions.get(&call.caller).cloned();
    if let Some((account, task)) = root_session {
        return Ok(root_iam(call, st, &account, &task));
    }
    if expired(call, st) {
        return Ok(xml_error(
            "iam",
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        ));
    }
    if op == "GetAccountSummary"
        && let Some((mfa, keys, password)) = root_user
    {
        let (status, answer, bytes) = upstream.send(call, call.body.clone()).await?;
        if status != 200 {
            return Ok(answer);
        }
        let mut xml = String::from_utf8_lossy(&bytes).into_owned();
        for (key, on) in [
            ("AccountMFAEnabled", mfa),
            ("AccountAccessKeysPresent", keys),
            ("AccountPasswordPresent", password),
        ] {
            xml = set_summary_entry(&xml, key, on);
        }
        return Ok(respond(200, "text/xml", xml));
    }
    if matches!(
        op,
        "ListOrganizationsFeatures"
            | "EnableOrganizationsRootCredentialsManagement"
            | "EnableOrganizationsRootSessions"
    ) && st.lock().unwrap().realism.root_access
    {
        return root_access(call, st, upstream).await;
    }
    if op == "CreateAccountAlias" {
        let alias = call.form.get("AccountAlias").cloned().unwrap_or_default();
        if st.lock().unwrap().realism.taken_aliases.contains(&alias) {
            return Ok(xml_error(
                "iam",
                409,
                "EntityAlreadyExists",
                &format!("The account alias {alias} already exists."),
            ));
        }
    }
    {
        let mut s = st.lock().unwrap();
        if let Some(g) = &group
            && !op.starts_with("Get")
            && !op.starts_with("List")
            && let Some(n) = s.realism.iam_concurrent_modification.get_mut(g)
            && *n > 0
        {
            *n -= 1;
            return Ok(xml_error(
                "iam",
                409,
                "ConcurrentModification",
                "Rate exceeded for the group; a concurrent modification is in progress.",
            ));
        }
        let lag = s.realism.iam_visibility_lag;
        if !lag.is_zero() && op != "CreateGroup" && op != "CreateUser" {
            let young = |kind: &str, name: &Option<String>| {
                name.as_ref().is_some_and(|n| {
                    s.iam_created
                        .get(&(call.caller.clone(), format!("{kind}:{n}")))
                        .is_some_and(|at| now < *at + lag)
                })
            };
            if young("group", &group) {
                return Ok(xml_error(
                    "iam",
                    404,
                    "NoSuchEntity",
                    &format!(
                        "The group with name {} cannot be found.",
                        group.clone().unwrap_or_default()
                    ),
                ));
            }
            if young("user", &user) {
                return Ok(xml_error(
                    "iam",
                    404,
                    "NoSuchEntity",
                    &format!(
                        "The user with name {} cannot be found.",
                        user.clone().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
    if status == 200 && (op == "CreateGroup" || op == "CreateUser") {
        let (kind, name) = if op == "CreateGroup" {
            ("group", group)
        } else {
            ("user", user)
        };
        st.lock().unwrap().iam_created.insert(
            (
                call.caller.clone(),
                format!("{kind}:{}", name.unwrap_or_default()),
            ),
            now,
        );
    }
    Ok(answer)
}

/// The caller's assumed-role session is older than the model lets sessions live.
/// IAM as the root user of `account`, limited by the root session's task policy (IAM User Guide,
/// "Perform a privileged task on a member account").
fn root_iam(call: &Call, st: &Arc<Mutex<State>>, account: &str, task: &str) -> Answer {
    let op = call.operation.as_str();
    let deleting = matches!(
        op,
        "DeleteLoginProfile"
            | "DeleteAccessKey"
            | "DeleteSigningCertificate"
            | "DeactivateMFADevice"
    );
    if deleting && !task.ends_with("IAMDeleteRootUserCredentials") {
        return xml_error(
            "iam",
            403,
            "AccessDenied",
            &format!("The root session's task policy {task} does not allow iam:{op}"),
        );
    }
    let mut s = st.lock().unwrap();
    let creds = s
        .realism
        .root_credentials
        .entry(account.to_string())
        .or_default();
    let members = |items: &[String], tag: &str, field: &str| -> String {
        items
            .iter()
            .map(|i| format!("<member><{field}>{i}</{field}>{tag}</member>"))
            .collect()
    };
    let body = match op {
        "GetLoginProfile" if creds.password => {
            "<LoginProfile><UserName>root</UserName><CreateDate>2020-01-01T00:00:00Z</CreateDate></LoginProfile>".to_string()
        }
        "GetLoginProfile" | "DeleteLoginProfile" if !creds.password => {
            return xml_error("iam", 404, "NoSuchEntity", "The root user has no login profile.");
        }
        "DeleteLoginProfile" => {
            creds.password = false;
            String::new()
        }
        "ListAccessKeys" => format!(
            "<AccessKeyMetadata>{}</AccessKeyMetadata><IsTruncated>false</IsTruncated>",
            members(&creds.access_keys, "<Status>Active</Status><CreateDate>2020-01-01T00:00:00Z</CreateDate>", "AccessKeyId")
        ),
        "DeleteAccessKey" => {
            let id = call.form.get("AccessKeyId").cloned().unwrap_or_default();
            creds.access_keys.retain(|k| *k != id);
            String::new()
        }
        "ListMFADevices" => format!(
            "<MFADevices>{}</MFADevices><IsTruncated>false</IsTruncated>",
            members(&creds.mfa_devices, "<EnableDate>2020-01-01T00:00:00Z</EnableDate>", "SerialNumber")
        ),
        "DeactivateMFADevice" => {
            let id = call.form.get("SerialNumber").cloned().unwrap_or_default();
            creds.mfa_devices.retain(|d| *d != id);
            String::new()
        }
        "ListSigningCertificates" => format!(
            "<Certificates>{}</Certificates><IsTruncated>false</IsTruncated>",
            creds
                .signing_certificates
                .iter()
                .map(|c| format!("<member><CertificateId>{c}</CertificateId><CertificateBody>-----BEGIN CERTIFICATE-----</CertificateBody><Status>Active</Status></member>"))
                .collect::<String>()
        ),
        "DeleteSigningCertificate" => {
            let id = call.form.get("CertificateId").cloned().unwrap_or_default();
            creds.signing_certificates.retain(|c| *c != id);
            String::new()
        }
        _ => {
            return xml_error(
                "iam",
                403,
                "AccessDenied",
                &format!("The root session's task policy {task} does not allow iam:{op}"),
            );
        }
    };
    respond(
        200,
        "text/xml",
        format!(
            "<{op}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{op}Result>{body}</{op}Result><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></{op}Response>"
        ),
    )
}

/// IAM's centralized root access (IAM API Reference, *EnableOrganizationsRootCredentialsManagement*):
/// only the management account, only with all features, only after trusted access for IAM.
async fn root_access(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let op = call.operation.as_str();
    if st.lock().unwrap().sessions.contains_key(&call.caller) {
        return Ok(xml_error(
            "iam",
            400,
            "AccountNotManagementOrDelegatedAdministratorException",
            "The request was rejected because the account making the request is not the management account or delegated administrator account for centralized root access.",
        ));
    }
    let org = upstream
        .ask_organizations(call, "DescribeOrganization", json!({}))
        .await?;
    let org_id = str_of(&org["Organization"], "Id").to_string();
    if org_id.is_empty() {
        return Ok(xml_error(
            "iam",
            400,
            "OrganizationNotFoundException",
            "The request was rejected because no organization is associated with your account.",
        ));
    }
    if str_of(&org["Organization"], "FeatureSet") != "ALL" {
        return Ok(xml_error(
            "iam",
            400,
            "OrganizationNotInAllFeaturesModeException",
            "The request was rejected because your organization does not have All features enabled.",
        ));
    }
    let mut s = st.lock().unwrap();
    if op != "ListOrganizationsFeatures" && !s.extra_trusted.contains("iam.amazonaws.com") {
        return Ok(xml_error(
            "iam",
            400,
            "ServiceAccessNotEnabledException",
            "The request was rejected because trusted access is not enabled for IAM in AWS Organizations.",
        ));
    }
    match op {
        "EnableOrganizationsRootCredentialsManagement" => {
            s.root_features.insert("RootCredentialsManagement".into());
        }
        "EnableOrganizationsRootSessions" => {
            s.root_features.insert("RootSessions".into());
        }
        _ => {}
    }
    let members: String = s
        .root_features
        .iter()
        .map(|f| format!("<member>{f}</member>"))
        .collect();
    Ok(respond(
        200,
        "text/xml",
        format!(
            "<{op}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><{op}Result><OrganizationId>{org_id}</OrganizationId><EnabledFeatures>{members}</EnabledFeatures></{op}Result><ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata></{op}Response>"
        ),
    ))
}

fn expired(call: &Call, st: &Arc<Mutex<State>>) -> bool {
    let s = st.lock().unwrap();
    match (s.realism.member_session_ttl, s.sessions.get(&call.caller)) {
        (Some(ttl), Some(at)) => at.elapsed() > ttl,
        _ => false,
    }
}

/// Sets `<entry><key>KEY</key><value>N</value></entry>` in a GetAccountSummary answer.
fn set_summary_entry(xml: &str, key: &str, on: bool) -> String {
    let value = u8::from(on);
    let marker = format!("<key>{key}</key>");
    if let Some(at) = xml.find(&marker) {
        let rest = &xml[at..];
        if let (Some(v0), Some(v1)) = (rest.find("<value>"), rest.find("</value>")) {
            return format!("{}<value>{value}{}", &xml[..at + v0], &xml[at + v1..]);
        }
    }
    xml.replacen(
        "</SummaryMap>",
        &format!("<entry>{marker}<value>{value}</value></entry></SummaryMap>"),
        1,
    )
}

async fn s3(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    if call.operation == "HeadBucket" {
        let bucket = call.parts.uri.path().trim_matches('/').to_string();
        if let Some(code) = st.lock().unwrap().realism.head_bucket.get(&bucket).copied() {
            // AWS answers HEAD with a status and no body at all.
            let mut resp = respond(code, "application/xml", Bytes::new());
            if code == 301 {
                resp.headers_mut()
                    .insert("x-amz-bucket-region", "eu-west-1".parse().unwrap());
            }
            return Ok(resp);
        }
    }
    let (status, answer, _) = upstream.send(call, call.body.clone()).await?;
    if status < 300 && call.operation == "PutBucketPolicy" {
        st.lock().unwrap().policy_put_at = Some(Instant::now());
    }
    Ok(answer)
}

async fn cloudtrail(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let op = call.operation.as_str();
    let (lag, policy_at, access_at, kms_arn, delivery_error) = {
        let s = st.lock().unwrap();
        (
            s.realism.trail_policy_lag,
            s.policy_put_at,
            s.trusted_access_at,
            s.realism.trail_kms_key_as_arn,
            s.realism.trail_delivery_error.clone(),
        )
    };
    if op == "GetTrailStatus"
        && let Some(err) = delivery_error
    {
        return upstream
            .forward_json(call, |v| v["LatestDeliveryError"] = json!(err))
            .await;
    }
    let now = Instant::now();
    if (op == "CreateTrail" || op == "UpdateTrail") && !lag.is_zero() {
        if access_at.is_some_and(|at| now < at + lag) {
            return Ok(json_error(
                400,
                "CloudTrailAccessNotEnabledException",
                "This organization has not enabled CloudTrail trusted access.",
                None,
            ));
        }
        if policy_at.is_some_and(|at| now < at + lag) {
            return Ok(json_error(
                400,
                "InsufficientS3BucketPolicyException",
                "Incorrect S3 bucket policy is detected for bucket.",
                None,
            ));
        }
    }
    if kms_arn {
        let to_arn = |v: &mut Value| {
            let fix = |t: &mut Value| {
                if let Some(k) = t.get("KmsKeyId").and_then(Value::as_str)
                    && !k.starts_with("arn:")
                {
                    let id = k.trim_start_matches("alias/");
                    t["KmsKeyId"] = json!(format!("arn:aws:kms:us-east-1:123456789012:key/{id}"));
                }
            };
            fix(v);
            if let Some(list) = v.get_mut("trailList").and_then(Value::as_array_mut) {
                list.iter_mut().for_each(fix);
            }
            if let Some(t) = v.get_mut("Trail") {
                fix(t);
            }
        };
        return upstream.forward_json(call, to_arn).await;
    }
    upstream.forward(call).await
}

/// Notifications are identified by type, comparison, threshold and threshold type.
fn same_notification(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| v.get("Threshold").and_then(Value::as_f64).unwrap_or(0.0);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    text(a, "NotificationType") == text(b, "NotificationType")
        && text(a, "ComparisonOperator") == text(b, "ComparisonOperator")
        && (num(a) - num(b)).abs() < 1e-9
        && text(a, "ThresholdType").replace("PERCENTAGE", "")
            == text(b, "ThresholdType").replace("PERCENTAGE", "")
}

fn same_subscriber(a: &Value, b: &Value) -> bool {
    str_of(a, "SubscriptionType") == str_of(b, "SubscriptionType")
        && str_of(a, "Address") == str_of(b, "Address")
}

/// AWS Budgets, answered statefully (Budgets API Reference; errors: NotFoundException,
/// DuplicateRecordException, InvalidParameterException).
fn budgets(call: &Call, st: &Arc<Mutex<State>>) -> Answer {
    let mut s = st.lock().unwrap();
    let op = call.operation.as_str();
    let j = &call.json;
    let name = j
        .get("BudgetName")
        .and_then(Value::as_str)
        .or_else(|| j.pointer("/Budget/BudgetName").and_then(Value::as_str))
        .or_else(|| j.pointer("/NewBudget/BudgetName").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let not_found = || {
        json_error(
            400,
            "NotFoundException",
            &format!("Unable to get budget: {name} - the budget doesn't exist."),
            None,
        )
    };
    let refused = s.realism.budget_refused_topics.clone();
    let refuses = |subs: &[Value]| {
        subs.iter().any(|x| {
            str_of(x, "SubscriptionType") == "SNS" && refused.contains(str_of(x, "Address"))
        })
    };
    let refusal = || {
        json_error(
            400,
            "InvalidParameterException",
            "Budgets cannot publish to the SNS topic: its access policy does not allow budgets.amazonaws.com",
            None,
        )
    };
    let subs_of = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if !op.starts_with("Describe") {
        s.budget_writes.push(format!("{op} {name}"));
    }
    match op {
        "CreateBudget" => {
            if s.budgets.contains_key(&name) {
                return json_error(
                    400,
                    "DuplicateRecordException",
                    &format!("Error creating budget: {name} - the budget already exists."),
                    None,
                );
            }
            let mut notes = Vec::new();
            for n in j
                .get("NotificationsWithSubscribers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let subs = subs_of(&n, "Subscribers");
                if refuses(&subs) {
                    return refusal();
                }
                notes.push((n.get("Notification").cloned().unwrap_or(Value::Null), subs));
            }
            s.budgets.insert(
                name,
                (j.get("Budget").cloned().unwrap_or(Value::Null), notes),
            );
            json_ok(json!({}))
        }
        "DescribeBudget" => {
            let Some((budget, _)) = s.budgets.get(&name) else {
                return not_found();
            };
            let (actual, forecast) = s
                .realism
                .budgets
                .as_ref()
                .and_then(|m| m.get(&name).copied())
                .unwrap_or((0.0, 0.0));
            let unit = budget
                .pointer("/BudgetLimit/Unit")
                .and_then(Value::as_str)
                .unwrap_or("USD");
            let mut b = budget.clone();
            b["CalculatedSpend"] = json!({
                "ActualSpend": {"Amount": format!("{actual:.1}"), "Unit": unit},
                "ForecastedSpend": {"Amount": format!("{forecast:.1}"), "Unit": unit},
            });
            b["TimePeriod"] = json!({"Start": 1.7e9, "End": 3.7e9});
            json_ok(json!({"Budget": b}))
        }
        "DescribeBudgets" => {
            let list: Vec<Value> = s.budgets.values().map(|(b, _)| b.clone()).collect();
            json_ok(json!({"Budgets": list}))
        }
        "UpdateBudget" => match s.budgets.get_mut(&name) {
            Some((b, _)) => {
                *b = j.get("NewBudget").cloned().unwrap_or(Value::Null);
                json_ok(json!({}))
            }
            None => not_found(),
        },
        "DeleteBudget" => match s.budgets.remove(&name) {
            Some(_) => json_ok(json!({})),
            None => not_found(),
        },
        "DescribeNotificationsForBudget" => match s.budgets.get(&name) {
            Some((_, notes)) => {
                let list: Vec<Value> = notes.iter().map(|(n, _)| n.clone()).collect();
                json_ok(json!({"Notifications": list}))
            }
            None => not_found(),
        },
        _ => {
            let Some((_, notes)) = s.budgets.get_mut(&name) else {
                return not_found();
            };
            let wanted = j
                .get("Notification")
                .or_else(|| j.get("OldNotification"))
                .cloned()
                .unwrap_or(Value::Null);
            let at = notes
                .iter()
                .position(|(n, _)| same_notification(n, &wanted));
            let missing = || {
                json_error(
                    400,
                    "NotFoundException",
                    "Unable to find the notification.",
                    None,
                )
            };
            match (op, at) {
                ("CreateNotification", Some(_)) => json_error(
                    400,
                    "DuplicateRecordException",
                    "Error creating notification: the notification already exists.",
                    None,
                ),
                ("CreateNotification", None) => {
                    let subs = subs_of(j, "Subscribers");
                    if refuses(&subs) {
                        return refusal();
                    }
                    notes.push((wanted, subs));
                    json_ok(json!({}))
                }
                ("UpdateNotification", Some(i)) => {
                    notes[i].0 = j.get("NewNotification").cloned().unwrap_or(Value::Null);
                    json_ok(json!({}))
                }
                ("DeleteNotification", Some(i)) => {
                    notes.remove(i);
                    json_ok(json!({}))
                }
                ("DescribeSubscribersForNotification", Some(i)) => {
                    json_ok(json!({"Subscribers": notes[i].1}))
                }
                ("CreateSubscriber", Some(i)) => {
                    let sub = j.get("Subscriber").cloned().unwrap_or(Value::Null);
                    if refuses(std::slice::from_ref(&sub)) {
                        return refusal();
                    }
                    if notes[i].1.iter().any(|x| same_subscriber(x, &sub)) {
                        return json_error(
                            400,
                            "DuplicateRecordException",
                            "The subscriber already exists.",
                            None,
                        );
                    }
                    notes[i].1.push(sub);
                    json_ok(json!({}))
                }
                ("UpdateSubscriber", Some(i)) => {
                    let old = j.get("OldSubscriber").cloned().unwrap_or(Value::Null);
                    match notes[i].1.iter().position(|x| same_subscriber(x, &old)) {
                        Some(k) => {
                            notes[i].1[k] = j.get("NewSubscriber").cloned().unwrap_or(Value::Null);
                            json_ok(json!({}))
                        }
                        None => missing(),
                    }
                }
                ("DeleteSubscriber", Some(i)) => {
                    let sub = j.get("Subscriber").cloned().unwrap_or(Value::Null);
                    match notes[i].1.iter().position(|x| same_subscriber(x, &sub)) {
                        Some(k) => {
                            notes[i].1.remove(k);
                            json_ok(json!({}))
                        }
                        None => missing(),
                    }
                }
                _ => missing(),
            }
        }
    }
}
