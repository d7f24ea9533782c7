//! The one Prometheus registry (prefix `landingzone_`), built once and shared.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    /// What those writes changed, by kind and field (`conditions.<type>` for a condition).
    pub status_field_changes: IntCounterVec,
    pub drift_found: IntCounterVec,
    pub drift_corrected: IntCounterVec,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Per resource (a bounded set: the landing zone's own objects).
    pub resource_ready: IntGaugeVec,
    pub resource_drift: IntGaugeVec,
    pub account_active: IntGaugeVec,
    pub account_root_mfa: IntGaugeVec,
    pub account_root_password: IntGaugeVec,
    pub account_root_keys: IntGaugeVec,
    pub budget_limit: GaugeVec,
    pub budget_actual: GaugeVec,
    pub budget_forecast: GaugeVec,
    pub trail_logging: IntGaugeVec,
    /// Change events taken from the queue, by what became of them (`mapped`, `own`, `failed`,
    /// `unknown`, `malformed`).
    pub change_events: IntCounterVec,
    /// From a change in AWS (the event's time) to its resources' reconciles being queued.
    pub change_event_latency: prometheus::Histogram,
    /// How long the oldest message of the last batch waited in the queue.
    pub change_events_queue_age: prometheus::Gauge,
    /// 1 while the change-event queue is read (the resync defaults to 1 h then, else 5 min).
    pub change_events_live: prometheus::IntGauge,
    /// Gauges a kind declares for itself (`kind_gauge`), by name.
    kind_gauges: Arc<Mutex<BTreeMap<String, IntGaugeVec>>>,
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
        let status_field_changes = counter(
            "status_field_changes_total",
            "Status fields changed by status writes, by kind and field (conditions.<type> for a condition)",
            &["kind", "field"],
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
        let igauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauge = |name: &str, help: &str| {
            GaugeVec::new(Opts::new(name, help), &["name"]).expect("valid metric")
        };
        let resource_ready = igauge(
            "resource_ready",
            "1 when the resource's Ready condition is True",
            &["kind", "name"],
        );
        let resource_drift = igauge(
            "resource_drift_fields",
            "Fields drifted from the spec and not corrected",
            &["kind", "name"],
        );
        let account_active = igauge(
            "account_active",
            "1 when the account is ACTIVE",
            &["name", "account_id"],
        );
        let account_root_mfa = igauge(
            "account_root_mfa_enabled",
            "1 when the account's root user has MFA",
            &["name", "account_id"],
        );
        let account_root_password = igauge(
            "account_root_password_present",
            "1 when the account's root user has a password (without one, missing MFA is no risk)",
            &["name", "account_id"],
        );
        let account_root_keys = igauge(
            "account_root_access_keys_present",
            "1 when the account's root user has access keys",
            &["name", "account_id"],
        );
        let budget_limit = gauge("budget_limit_amount", "Budget limit");
        let budget_actual = gauge(
            "budget_actual_spend_amount",
            "Actual spend in the budget period, from AWS",
        );
        let budget_forecast = gauge(
            "budget_forecasted_spend_amount",
            "Forecasted spend in the budget period, from AWS",
        );
        let trail_logging = igauge("trail_logging", "1 when the trail is logging", &["name"]);
        for g in [
            &resource_ready,
            &resource_drift,
            &account_active,
            &account_root_mfa,
            &account_root_password,
            &account_root_keys,
            &trail_logging,
        ] {
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
        }
        for g in [&budget_limit, &budget_actual, &budget_forecast] {
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
        }
        for c in [
            &aws_calls,
            &aws_errors,
            &reconciles,
            &status_writes,
            &status_field_changes,
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
        let change_events = counter(
            "change_events_total",
            "AWS change events taken from the queue, by what became of them",
            &["result"],
        );
        let change_event_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "change_event_to_reconcile_seconds",
                "From a change in AWS to its resources' reconciles being queued",
            )
            .buckets(vec![0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )
        .expect("valid metric");
        let change_events_queue_age = prometheus::Gauge::new(
            "change_events_queue_age_seconds",
            "How long the oldest message of the last batch waited in the change-event queue",
        )
        .expect("valid metric");
        let change_events_live = prometheus::IntGauge::new(
            "change_events_live",
            "1 while the change-event queue is read (the resync defaults to 1 h then, else 5 min)",
        )
        .expect("valid metric");
        for c in [
            Box::new(change_events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(change_event_latency.clone()),
            Box::new(change_events_queue_age.clone()),
            Box::new(change_events_live.clone()),
        ] {
            registry.register(c).expect("registered once");
        }
        Self {
            registry,
            change_events,
            change_event_latency,
            change_events_queue_age,
            change_events_live,
            aws_calls,
            aws_errors,
            aws_throttles,
            aws_latency,
            reconciles,
            reconcile_duration,
            status_writes,
            status_field_changes,
            drift_found,
            drift_corrected,
            leader,
            resource_ready,
            resource_drift,
            account_active,
            account_root_mfa,
            account_root_password,
            account_root_keys,
            budget_limit,
            budget_actual,
            budget_forecast,
            trail_logging,
            kind_gauges: Arc::default(),
        }
    }

    /// A gauge that a kind declares in its own folder (name without the `landingzone_` prefix):
    /// registered on first use, the same gauge on every later call. The labels of one name must not
    /// change.
    pub fn kind_gauge(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let mut gauges = self.kind_gauges.lock().expect("not poisoned");
        gauges
            .entry(name.to_string())
            .or_insert_with(|| {
                let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
                self.registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            })
            .clone()
    }

    /// The samples of one metric family, each with a reader of its labels.
    fn samples<T>(
        &self,
        family: &str,
        mut each: impl FnMut(&dyn Fn(&str) -> String, &prometheus::proto::Metric) -> T,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for f in self.registry.gather() {
            if f.name() != family {
                continue;
            }
            for m in f.get_metric() {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                out.push(each(&label, m));
            }
        }
        out
    }

    /// AWS calls so far, keyed by (service, operation), with the kind.
    pub fn aws_call_counts(&self) -> BTreeMap<(String, String), (String, u64)> {
        self.samples("landingzone_aws_api_calls_total", |label, m| {
            (
                (label("service"), label("operation")),
                (label("kind"), m.get_counter().get_value() as u64),
            )
        })
        .into_iter()
        .collect()
    }

    /// Seconds spent in AWS calls so far (retries and pacing waits included), by (service, operation).
    pub fn aws_call_seconds(&self) -> BTreeMap<(String, String), f64> {
        self.samples("landingzone_aws_api_call_duration_seconds", |label, m| {
            (
                (label("service"), label("operation")),
                m.get_histogram().get_sample_sum(),
            )
        })
        .into_iter()
        .collect()
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

impl Metrics {
    /// Every metric name this process exports (with the prefix), whether or not it has samples yet.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.aws_calls.clone()),
            Box::new(self.aws_errors.clone()),
            Box::new(self.aws_throttles.clone()),
            Box::new(self.aws_latency.clone()),
            Box::new(self.reconciles.clone()),
            Box::new(self.reconcile_duration.clone()),
            Box::new(self.status_writes.clone()),
            Box::new(self.drift_found.clone()),
            Box::new(self.drift_corrected.clone()),
            Box::new(self.leader.clone()),
            Box::new(self.resource_ready.clone()),
            Box::new(self.resource_drift.clone()),
            Box::new(self.account_active.clone()),
            Box::new(self.account_root_mfa.clone()),
            Box::new(self.account_root_password.clone()),
            Box::new(self.account_root_keys.clone()),
            Box::new(self.budget_limit.clone()),
            Box::new(self.budget_actual.clone()),
            Box::new(self.budget_forecast.clone()),
            Box::new(self.trail_logging.clone()),
            Box::new(self.change_events.clone()),
            Box::new(self.change_event_latency.clone()),
            Box::new(self.change_events_queue_age.clone()),
            Box::new(self.change_events_live.clone()),
        ];
        let kind_gauges: Vec<IntGaugeVec> = self
            .kind_gauges
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        let mut names: Vec<String> = collectors
            .iter()
            .map(|c| c.as_ref())
            .chain(kind_gauges.iter().map(|g| g as &dyn Collector))
            .flat_map(|c| {
                c.desc()
                    .into_iter()
                    .map(|d| format!("landingzone_{}", d.fq_name))
                    .collect::<Vec<_>>()
            })
            .collect();
        // Histograms are scraped as _bucket, _sum and _count.
        for h in [
            "aws_api_call_duration_seconds",
            "reconcile_duration_seconds",
        ] {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.push(format!("landingzone_{h}{suffix}"));
            }
        }
        names.sort();
        names
    }

    /// The per-resource gauges, from a resource's status after a reconcile.
    /// Readiness and uncorrected drift of one resource (kind-specific gauges are set by the kind).
    pub fn observe(&self, kind: &str, name: &str, ready: bool, drift_count: i32) {
        self.resource_ready
            .with_label_values(&[kind, name])
            .set(i64::from(ready));
        self.resource_drift
            .with_label_values(&[kind, name])
            .set(i64::from(drift_count));
    }

    /// Drops a deleted resource's series (the kind drops its own gauges).
    pub fn forget(&self, kind: &str, name: &str) {
        let _ = self.resource_ready.remove_label_values(&[kind, name]);
        let _ = self.resource_drift.remove_label_values(&[kind, name]);
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every `landingzone_*` name in a text.
    fn metric_names(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("landingzone_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
        out
    }

    #[test]
    fn dashboard_and_alerts_use_only_exported_metrics() {
        let metrics = Metrics::new();
        crate::reconcile::registry::declare_metrics(&metrics);
        let exported = metrics.names();
        let dashboard = std::fs::read_to_string(
            root().join("charts/landing-zone-operator/dashboards/landing-zone-operator.json"),
        )
        .unwrap();
        let copy =
            std::fs::read_to_string(root().join("manifests/grafana/landing-zone-operator.json"))
                .unwrap();
        assert_eq!(
            dashboard, copy,
            "manifests/grafana/ must be the chart's dashboard (copy it)"
        );
        let doc: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
        let mut exprs = Vec::new();
        for p in doc["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                exprs.push(t["expr"].as_str().unwrap().to_string());
            }
        }
        assert!(exprs.len() >= 15, "{} panel queries", exprs.len());
        let alerts = std::fs::read_to_string(
            root().join("charts/landing-zone-operator/templates/prometheusrule.yaml"),
        )
        .unwrap();
        let mut used = metric_names(&exprs.join("\n"));
        let alert_names = metric_names(&alerts);
        assert!(alert_names.len() >= 7, "{alert_names:?}");
        used.extend(alert_names);
        let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(n)).collect();
        assert!(
            unknown.is_empty(),
            "not exported: {unknown:?}; exported: {exported:?}"
        );
        // And the dashboard shows the kinds of signal it promises.
        for needed in [
            "drift",
            "resource_ready",
            "reconciles_total",
            "aws_api_throttles",
            "budget_",
            "root_mfa",
            "root_access_keys",
            "trail_logging",
        ] {
            assert!(
                exprs.iter().any(|e| e.contains(needed)),
                "no panel on {needed}"
            );
        }
    }
}
