//! Client-side pacing: a token bucket per account and AWS operation, set below the published
//! quotas, so the operator slows itself down before AWS has to throttle it; and
//! ConcurrentModificationException retried by the SDK like throttling.
//!
//! Pacing sits in the HTTP client every SDK client shares, so it applies to every service and to
//! every attempt, retries included. The call recorder names the bucket of each request in an
//! internal header (after signing) that the paced connector reads and removes before sending.
//!
//! A request waits in the connector at most [`MAX_WAIT_IN_CONNECTOR`], and takes its token only
//! when it is sent: a request given up (a timeout, a cancelled reconcile) spends nothing, so waiting
//! requests never queue behind tokens spent by requests that were never sent. Operations AWS
//! allows only a few of at a time (CreateAccount, CloseAccount) are held back in the reconcile
//! instead (`Queued`), where waiting costs nothing.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Internal request header naming the pacing bucket: `<account scope>/<Operation>`.
pub(crate) const PACE_HEADER: &str = "x-landingzone-pace";
/// The operation of a request, for the fence (never sent).
pub(crate) const OPERATION_HEADER: &str = "x-landingzone-operation";

/// Requests per second and burst, per operation (default: 8/s, burst 8). IAM and the other
/// per-account services get one bucket per account, as AWS throttles them per account.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub per_operation: HashMap<String, (f64, f64)>,
    pub default: (f64, f64),
}

impl Default for RateLimits {
    /// Below AWS Organizations' published token buckets (DESIGN.md §4) and CloudTrail's 1/s writes.
    fn default() -> Self {
        let table = [
            ("ListAccounts", 7.0, 7.0),
            ("ListAccountsForParent", 4.0, 4.0),
            ("ListOrganizationalUnitsForParent", 4.0, 4.0),
            ("ListParents", 4.0, 4.0),
            ("DescribeAccount", 15.0, 15.0),
            ("MoveAccount", 1.5, 2.0),
            // The binding limit is 5 requests in flight, kept by the reconcile; this only spaces
            // bursts of new requests.
            ("CreateAccount", 1.0, 5.0),
            ("CloseAccount", 0.05, 3.0),
            ("CreateTrail", 0.9, 1.0),
            ("UpdateTrail", 0.9, 1.0),
            ("StartLogging", 0.9, 1.0),
            ("DeleteTrail", 0.9, 1.0),
            // STS allows 600/s per account and Region; one call per member account and hour.
            ("AssumeRole", 50.0, 50.0),
            // Identity Center: about 20 calls per second across all its APIs (one bucket).
            ("IdentityCenter", 15.0, 15.0),
        ];
        Self {
            per_operation: table
                .iter()
                .map(|(op, r, b)| (op.to_string(), (*r, *b)))
                .collect(),
            default: (8.0, 8.0),
        }
    }
}

impl RateLimits {
    /// `Operation=rate[/burst]`, e.g. `ListAccounts=2` or `MoveAccount=1/2`.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (op, rate) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected Operation=rate[/burst]"))?;
        let (rate, burst) = rate.split_once('/').unwrap_or((rate, rate));
        let parse = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("{spec:?}: {s:?} is not a positive number"))
        };
        let (rate, burst) = (parse(rate)?, parse(burst)?.max(1.0));
        self.per_operation.insert(op.to_string(), (rate, burst));
        Ok(())
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// AWS lets at most this many CreateAccount requests be in flight at once.
pub const MAX_CREATE_IN_FLIGHT: usize = 5;
/// … and at most this many accounts be closing at once.
pub const MAX_CLOSE_IN_FLIGHT: usize = 3;

/// Shared by every client of the process.
pub struct Pacer {
    limits: RateLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Pacer {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: Mutex::default(),
        }
    }

    fn rate(&self, bucket: &str) -> (f64, f64) {
        let operation = bucket.rsplit('/').next().unwrap_or(bucket);
        self.limits
            .per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.limits.default)
    }

    /// Refills the bucket and, with `take`, takes a token if one is there. `Err` is how long until
    /// one will be.
    fn check(&self, bucket: &str, take: bool) -> Result<(), Duration> {
        let (rate, burst) = self.rate(bucket);
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let now = Instant::now();
        let b = buckets.entry(bucket.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            if take {
                b.tokens -= 1.0;
            }
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Takes a token of `bucket` (`<scope>/<Operation>`) if one is there now.
    pub fn try_acquire(&self, bucket: &str) -> Result<(), Duration> {
        self.check(bucket, true)
    }

    /// Whether a request in `bucket` could be sent now, without taking the token (the request
    /// takes it when it is sent); `Err` says how long until it could.
    pub fn available(&self, bucket: &str) -> Result<(), Duration> {
        self.check(bucket, false)
    }

    /// Waits for a token of `bucket`, at most `max_wait`; gives up at once when the token cannot
    /// come in time. The token is taken only on success.
    pub async fn acquire_within(
        &self,
        bucket: &str,
        max_wait: Duration,
    ) -> Result<(), PacedTooLong> {
        let start = Instant::now();
        loop {
            match self.try_acquire(bucket) {
                Ok(()) => return Ok(()),
                Err(wait) if start.elapsed() + wait > max_wait => {
                    return Err(PacedTooLong {
                        bucket: bucket.to_string(),
                        wait,
                    });
                }
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// Longest a request waits for its token inside the HTTP connector: far below the five minutes a
/// SigV4 signature stays valid. Longer waits belong in the reconcile.
pub const MAX_WAIT_IN_CONNECTOR: Duration = Duration::from_secs(20);

/// A request was not sent because client-side pacing would have held it too long.
#[derive(Debug, Clone)]
pub struct PacedTooLong {
    pub bucket: String,
    pub wait: Duration,
}

impl std::fmt::Display for PacedTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scope, op) = self.bucket.rsplit_once('/').unwrap_or(("", &self.bucket));
        write!(
            f,
            "{op} ({scope}) was not sent: client-side pacing had no slot for it within {} s (the next in {} s); it is retried",
            MAX_WAIT_IN_CONNECTOR.as_secs(),
            self.wait.as_secs_f64().ceil()
        )
    }
}

impl std::error::Error for PacedTooLong {}

/// Who may write to AWS: the one place every request passes decides, right before it is sent.
///
/// The CLI's fence is always open. The controller's is open only until a deadline that each
/// successful lease renewal moves on (its start plus the renew deadline, shorter than the lease):
/// a replica frozen past it (a paused process, a partitioned node) finds its writes refused the
/// moment it resumes, whichever of its tasks runs first, and writes that waited in the pacer are
/// refused too, because the check comes after the wait.
#[derive(Debug, Default)]
pub struct Fence {
    /// `None`: always open. `Some(t)`: open until `t` (monotonic; a past instant is closed).
    until: Mutex<Option<Instant>>,
}

impl Fence {
    /// Writes allowed until told otherwise (the CLI).
    pub fn open() -> Self {
        Self::default()
    }

    /// Closed now: writes allowed only after [`Fence::open_until`].
    pub fn close(&self) {
        *self.until.lock().expect("not poisoned") = Some(Instant::now());
    }

    pub fn open_until(&self, deadline: Instant) {
        *self.until.lock().expect("not poisoned") = Some(deadline);
    }

    pub fn allows_writes(&self) -> bool {
        self.until
            .lock()
            .expect("not poisoned")
            .is_none_or(|t| Instant::now() < t)
    }
}

/// A write not sent because this replica may no longer write (see [`Fence`]).
#[derive(Debug, Clone)]
pub struct Fenced {
    pub operation: String,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was not sent: this replica no longer holds the leader lease (another replica may be writing); it stops, and the leader carries on",
            self.operation
        )
    }
}

impl std::error::Error for Fenced {}

/// The HTTP client shared by every SDK client of the process, pacing each request.
#[derive(Clone, Debug)]
pub struct PacedHttpClient {
    inner: SharedHttpClient,
    pacer: Arc<Pacer>,
    fence: Arc<Fence>,
}

impl PacedHttpClient {
    pub fn new(inner: SharedHttpClient, pacer: Arc<Pacer>, fence: Arc<Fence>) -> Self {
        Self {
            inner,
            pacer,
            fence,
        }
    }
}

impl HttpClient for PacedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(PacedConnector {
            inner: self.inner.http_connector(settings, components),
            pacer: self.pacer.clone(),
            fence: self.fence.clone(),
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    pacer: Arc<Pacer>,
    fence: Arc<Fence>,
}

impl HttpConnector for PacedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let bucket = request.headers_mut().remove(PACE_HEADER);
        let operation = request.headers_mut().remove(OPERATION_HEADER);
        let (inner, pacer, fence) = (self.inner.clone(), self.pacer.clone(), self.fence.clone());
        HttpConnectorFuture::new(async move {
            if let Some(bucket) = &bucket
                && let Err(e) = pacer.acquire_within(bucket, MAX_WAIT_IN_CONNECTOR).await
            {
                return Err(ConnectorError::other(Box::new(e), None));
            }
            // After the wait: a write queued in the pacer before the lease was lost is not sent.
            let operation = operation.as_deref().unwrap_or("an AWS call");
            if super::call_kind(operation) == "write" && !fence.allows_writes() {
                return Err(ConnectorError::other(
                    Box::new(Fenced {
                        operation: operation.to_string(),
                    }),
                    None,
                ));
            }
            inner.call(request).await
        })
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pacer")
    }
}

/// Error codes that mean "another change is in flight, try again": Organizations'
/// ConcurrentModificationException, and IAM's ConcurrentModification and
/// EntityTemporarilyUnmodifiable. The SDK retries them with backoff like throttling.
const CONCURRENT_CODES: &[&str] = &[
    "ConcurrentModificationException",
    // Identity Center: "a conflict with a previous successful write … retry with backoff".
    "ConflictException",
    "ConcurrentModification",
    "EntityTemporarilyUnmodifiable",
];

/// The error code of an AWS error answer: the JSON protocols' `x-amzn-errortype` header or
/// `__type`, the query protocols' `<Code>`.
pub(crate) fn error_code(
    resp: &aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> Option<String> {
    if let Some(t) = resp.headers().get("x-amzn-errortype") {
        return Some(t.split(':').next().unwrap_or(t).to_string());
    }
    let body = std::str::from_utf8(resp.body().bytes()?).ok()?;
    if let Some(rest) = body.split("<Code>").nth(1) {
        return rest.split("</Code>").next().map(str::to_string);
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let t = v.get("__type")?.as_str()?;
    Some(t.rsplit('#').next().unwrap_or(t).to_string())
}

#[derive(Debug, Default)]
pub struct RetryConcurrentModification;

impl ClassifyRetry for RetryConcurrentModification {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(resp) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
        if resp.status().as_u16() >= 400
            && error_code(resp).is_some_and(|c| CONCURRENT_CODES.contains(&c.as_str()))
        {
            RetryAction::throttling_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "RetryConcurrentModification"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_paces() {
        let mut limits = RateLimits::default();
        limits.set("Op=2/3").unwrap();
        let p = Pacer::new(limits);
        let taken: Vec<Result<(), Duration>> =
            (0..5).map(|_| p.try_acquire("management/Op")).collect();
        assert!(
            taken[..3].iter().all(|t| t.is_ok()),
            "burst of 3: {taken:?}"
        );
        // Refused requests take nothing: each is told the same wait (half a token at 2/s).
        for t in &taken[3..] {
            let wait = t.unwrap_err(); // no token left
            assert!(
                (wait.as_secs_f64() - 0.5).abs() < 0.05,
                "then 2/s: {taken:?}"
            );
        }
        // Looking does not take.
        assert!(p.available("management/Op").is_err());
        // Another account has its own bucket.
        assert!(p.try_acquire("111111111111/Op").is_ok());
        assert!(RateLimits::default().set("Op=0").is_err());
        assert!(RateLimits::default().set("nonsense").is_err());
    }

    #[tokio::test]
    async fn a_request_given_up_spends_no_token_and_long_waits_fail_at_once() {
        let mut limits = RateLimits::default();
        limits.set("Op=4/1").unwrap();
        let p = Arc::new(Pacer::new(limits));
        p.try_acquire("management/Op").unwrap();
        // Ten waiters cancelled before their token came: none of them spent one.
        for _ in 0..10 {
            let p = p.clone();
            let waiter = tokio::spawn(async move {
                p.acquire_within("management/Op", Duration::from_secs(5))
                    .await
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
            waiter.abort();
        }
        tokio::time::sleep(Duration::from_millis(260)).await;
        assert!(
            p.try_acquire("management/Op").is_ok(),
            "the refilled token is still there"
        );
        // A wait longer than allowed is refused at once, not slept through (a token every 10 s:
        // however slow the machine, the wait does not fit in 1 s).
        let mut limits = RateLimits::default();
        limits.set("Op=0.1/1").unwrap();
        let p = Pacer::new(limits);
        p.try_acquire("management/Op").unwrap();
        let start = Instant::now();
        let err = p
            .acquire_within("management/Op", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "not slept through"
        );
        assert!(
            err.to_string().contains("Op (management) was not sent"),
            "{err}"
        );
    }

    #[test]
    fn defaults_stay_below_the_published_quotas() {
        let l = RateLimits::default();
        // (operation, AWS quota per second)
        for (op, quota) in [
            ("ListAccounts", 8.0),
            ("ListAccountsForParent", 5.0),
            ("ListParents", 5.0),
            ("DescribeAccount", 20.0),
            ("MoveAccount", 2.0),
            ("CloseAccount", 0.05),
            ("AssumeRole", 600.0),
        ] {
            assert!(l.per_operation[op].0 <= quota, "{op}");
        }
        // CreateAccount's binding limit is 5 requests in flight, kept by the reconcile; pacing
        // never lets more than that go at once.
        assert!(l.per_operation["CreateAccount"].1 <= MAX_CREATE_IN_FLIGHT as f64);
    }
}
