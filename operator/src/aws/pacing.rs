//! Client-side pacing: a token bucket per AWS operation, set below the published quotas, so the
//! operator slows itself down before AWS has to throttle it; and ConcurrentModificationException
//! retried by the SDK like throttling.

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per second and burst, per operation (default: 5/s, burst 5).
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

    /// How long to wait before `operation` may be sent (and takes its token).
    fn reserve(&self, operation: &str) -> Duration {
        let (rate, burst) = self
            .limits
            .per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.limits.default);
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let now = Instant::now();
        let b = buckets.entry(operation.to_string()).or_insert(Bucket {
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

    pub async fn acquire(&self, operation: &str) {
        let wait = self.reserve(operation);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
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
        let waits: Vec<Duration> = (0..5).map(|_| p.reserve("Op")).collect();
        assert!(
            waits[..3].iter().all(|w| w.is_zero()),
            "burst of 3: {waits:?}"
        );
        assert!(
            (waits[3].as_secs_f64() - 0.5).abs() < 0.05,
            "then 2/s: {waits:?}"
        );
        assert!((waits[4].as_secs_f64() - 1.0).abs() < 0.05, "{waits:?}");
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
        ] {
            assert!(l.per_operation[op].0 <= quota, "{op}");
        }
    }
}
