//! Client-side pacing: a token bucket per account and AWS operation, set below the published
//! quotas, so the operator slows itself down before AWS has to throttle it; and
//! ConcurrentModificationException retried by the SDK like throttling.
//!
//! Pacing sits in the HTTP client every SDK client shares, so it applies to every service and to
//! every attempt, retries included. The call recorder names the bucket of each request in an
//! internal header (after signing) that the paced connector reads and removes before sending.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Internal request header naming the pacing bucket: `<account scope>/<Operation>`.
pub(crate) const PACE_HEADER: &str = "x-landingzone-pace";

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
            ("CreateAccount", 0.1, 5.0),
            ("CloseAccount", 0.05, 3.0),
            ("CreateTrail", 0.9, 1.0),
            ("UpdateTrail", 0.9, 1.0),
            ("StartLogging", 0.9, 1.0),
            ("DeleteTrail", 0.9, 1.0),
            // STS allows 600/s per account and Region; one call per member account and hour.
            ("AssumeRole", 50.0, 50.0),
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

    /// How long to wait before a request in `bucket` (`<scope>/<Operation>`) may be sent, taking
    /// its token.
    fn reserve(&self, bucket: &str) -> Duration {
        let operation = bucket.rsplit('/').next().unwrap_or(bucket);
        let (rate, burst) = self
            .limits
            .per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.limits.default);
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let now = Instant::now();
        let b = buckets.entry(bucket.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate)
        }
    }

    pub async fn acquire(&self, bucket: &str) {
        let wait = self.reserve(bucket);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The HTTP client shared by every SDK client of the process, pacing each request.
#[derive(Clone, Debug)]
pub struct PacedHttpClient {
    inner: SharedHttpClient,
    pacer: Arc<Pacer>,
}

impl PacedHttpClient {
    pub fn new(inner: SharedHttpClient, pacer: Arc<Pacer>) -> Self {
        Self { inner, pacer }
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
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
    pacer: Arc<Pacer>,
}

impl HttpConnector for PacedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let bucket = request.headers_mut().remove(PACE_HEADER);
        let (inner, pacer) = (self.inner.clone(), self.pacer.clone());
        HttpConnectorFuture::new(async move {
            if let Some(bucket) = bucket {
                pacer.acquire(&bucket).await;
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

/// AWS Organizations answers ConcurrentModificationException while another change is in flight;
/// retry it with backoff like throttling.
#[derive(Debug, Default)]
pub struct RetryConcurrentModification;

impl ClassifyRetry for RetryConcurrentModification {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(resp) = ctx.response() else {
            return RetryAction::NoActionIndicated;
        };
        let needle = b"ConcurrentModificationException";
        let in_header = resp
            .headers()
            .get("x-amzn-errortype")
            .is_some_and(|v| v.contains("ConcurrentModification"));
        let in_body = resp
            .body()
            .bytes()
            .is_some_and(|b| b.windows(needle.len()).any(|w| w == needle));
        if resp.status().as_u16() >= 400 && (in_header || in_body) {
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
        let waits: Vec<Duration> = (0..5).map(|_| p.reserve("management/Op")).collect();
        assert!(
            waits[..3].iter().all(|w| w.is_zero()),
            "burst of 3: {waits:?}"
        );
        assert!(
            (waits[3].as_secs_f64() - 0.5).abs() < 0.05,
            "then 2/s: {waits:?}"
        );
        assert!((waits[4].as_secs_f64() - 1.0).abs() < 0.05, "{waits:?}");
        // Another account has its own bucket.
        assert!(p.reserve("111111111111/Op").is_zero());
        assert!(RateLimits::default().set("Op=0").is_err());
        assert!(RateLimits::default().set("nonsense").is_err());
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
            ("CreateAccount", 0.1),
            ("CloseAccount", 0.05),
            ("AssumeRole", 600.0),
        ] {
            assert!(l.per_operation[op].0 <= quota, "{op}");
        }
    }
}
