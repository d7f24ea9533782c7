//! The one Prometheus registry (prefix `landingzone_`), built once and shared.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// AWS API calls by service, operation and kind (read/write): one per SDK operation, not per retry.
    pub aws_calls: IntCounterVec,
    /// AWS API call failures by service, operation and error code class.
    pub aws_errors: IntCounterVec,
    pub aws_throttles: IntCounterVec,
    pub aws_latency: HistogramVec,
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// Status subresource writes by kind (idle resyncs should add none).
    pub status_writes: IntCounterVec,
    pub drift_found: IntCounterVec,
    pub drift_corrected: IntCounterVec,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("landingzone".into()), None).expect("valid prefix");
        let aws_calls = IntCounterVec::new(
            Opts::new(
                "aws_api_calls_total",
                "AWS API calls by service, operation and kind (read or write)",
            ),
            &["service", "operation", "kind"],
        )
        .expect("valid metric");
        let aws_errors = IntCounterVec::new(
            Opts::new(
                "aws_api_errors_total",
                "AWS API calls that failed, by service, operation and outcome",
            ),
            &["service", "operation", "outcome"],
        )
        .expect("valid metric");
        let aws_throttles = IntCounterVec::new(
            Opts::new(
                "aws_api_throttles_total",
                "AWS API attempts answered with a throttling error",
            ),
            &["service", "operation"],
        )
        .expect("valid metric");
        let aws_latency = HistogramVec::new(
            HistogramOpts::new(
                "aws_api_call_duration_seconds",
                "AWS API call latency, retries included",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["service", "operation"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let reconciles = counter(
            "reconciles_total",
            "Reconciles by kind and result",
            &["kind", "result"],
        );
        let status_writes = counter(
            "status_writes_total",
            "Status subresource writes by kind",
            &["kind"],
        );
        let drift_found = counter(
            "drift_found_total",
            "Drifted fields found, by kind and field group",
            &["kind", "field"],
        );
        let drift_corrected = counter(
            "drift_corrected_total",
            "Drifted fields corrected, by kind and field group",
            &["kind", "field"],
        );
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Reconcile duration by kind").buckets(
                vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            ),
            &["kind"],
        )
        .expect("valid metric");
        let leader = IntGauge::new("leader", "1 while this replica holds the leader lease")
            .expect("valid metric");
        for c in [
            &aws_calls,
            &aws_errors,
            &reconciles,
            &status_writes,
            &drift_found,
            &drift_corrected,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
        }
        registry
            .register(Box::new(reconcile_duration.clone()))
            .expect("registered once");
        registry
            .register(Box::new(leader.clone()))
            .expect("registered once");
        registry
            .register(Box::new(aws_throttles.clone()))
            .expect("registered once");
        registry
            .register(Box::new(aws_latency.clone()))
            .expect("registered once");
        Self {
            registry,
            aws_calls,
            aws_errors,
            aws_throttles,
            aws_latency,
            reconciles,
            reconcile_duration,
            status_writes,
            drift_found,
            drift_corrected,
            leader,
        }
    }

    /// AWS calls so far, keyed by (service, operation), with the kind.
    pub fn aws_call_counts(&self) -> BTreeMap<(String, String), (String, u64)> {
        let mut out = BTreeMap::new();
        for family in self.registry.gather() {
            if family.name() != "landingzone_aws_api_calls_total" {
                continue;
            }
            for m in family.get_metric() {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                let count = m.get_counter().get_value() as u64;
                out.insert(
                    (label("service"), label("operation")),
                    (label("kind"), count),
                );
            }
        }
        out
    }

    /// Total AWS calls of one kind ("read" or "write").
    pub fn aws_calls_of_kind(&self, kind: &str) -> u64 {
        self.aws_call_counts()
            .values()
            .filter(|(k, _)| k == kind)
            .map(|(_, n)| n)
            .sum()
    }
}
