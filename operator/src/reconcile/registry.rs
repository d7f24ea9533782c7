//! The one list of kinds. A kind is its folder under `reconcile/` (observe → plan → apply, and its
//! [`KindSpec`]), its file under `api/`, and one line in [`kinds!`] at the bottom of this file;
//! every place that dispatches on the kind — the `Kind` and `Resource` enums, the directory and
//! state-file readers, the status sink, the controllers and their dependency watches, metrics —
//! is generated from that list or goes through the trait.

use super::{Key, Kind, Resource};
use crate::api::CommonStatus;
use crate::metrics::Metrics;
use kube::ResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// What each kind provides to the shared driver, the CLI and the controllers.
pub trait KindSpec:
    kube::Resource<DynamicType = ()>
    + kube::CustomResourceExt
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Into<Resource>
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    /// Kinds this one refers to: it waits for them, and its controller watches them.
    const DEPENDS_ON: &'static [Kind];

    /// Kinds whose resources a reconcile sees (`Pass::peers`: every resource of them but itself),
    /// e.g. the other baselines, to find where they disagree.
    const SEES: &'static [Kind] = &[];
    /// Kinds any change of which reconciles every resource of this one, in a cluster: for a kind
    /// whose spec is derived partly from its peers' (`SEES`) and that has one or few resources
    /// (the Organization forwards the regions where the AuditTrails keep alarms).
    const TRIGGERED_BY: &'static [Kind] = &[];
    /// Resources this one refers to and must wait for.
    fn dependencies(&self) -> Vec<Key>;
    /// Kinds every resource of which a pass handles before this one, whether referred to or not
    /// (e.g. an OU-wide assignment covers the accounts created in the OU in the same pass).
    fn after_kinds(&self) -> &'static [Kind] {
        &[]
    }
    /// The AWS id this resource is known by, from its status.
    fn aws_id(&self) -> Option<String>;
    fn common_status(&self) -> Option<&CommonStatus>;
    fn common_status_mut(&mut self) -> &mut CommonStatus;
    fn status_json(&self) -> Value;
    fn set_status_json(&mut self, status: Value) -> serde_json::Result<()>;
    /// The deletion policy as written (`Retain`, `Delete` or `Close`).
    fn deletion_policy(&self) -> &'static str;
    /// For member accounts: (account id, the role the operator assumes in it).
    fn member_role(&self) -> Option<(String, String)> {
        None
    }
    /// Declares the kind's own gauges (`Metrics::kind_gauge`), so they are exported from the start.
    fn declare_metrics(_metrics: &Metrics) {}
    /// The kind's own gauges (the metrics layer knows no kinds).
    fn record_metrics(&self, _metrics: &Metrics) {}
    fn forget_metrics(&self, _metrics: &Metrics) {}
    /// One line for the CLI's summary under the table: what `status` reports for a person.
    fn summary(&self) -> Option<String> {
        None
    }
    /// When the controller must look again sooner than the resync, whatever AWS says meanwhile
    /// (an expiry, a request in flight).
    fn next_due(&self, _now: k8s_openapi::jiff::Timestamp) -> Option<std::time::Duration> {
        None
    }
}

/// The instance side of [`KindSpec`], object-safe, so `Resource` dispatches without a match per
/// method.
pub(crate) trait DynKind: Send + Sync {
    fn name(&self) -> String;
    fn sees(&self) -> &'static [Kind];
    fn generation(&self) -> Option<i64>;
    fn dependencies(&self) -> Vec<Key>;
    fn after_kinds(&self) -> &'static [Kind];
    fn aws_id(&self) -> Option<String>;
    fn common_status(&self) -> Option<&CommonStatus>;
    fn common_status_mut(&mut self) -> &mut CommonStatus;
    fn status_json(&self) -> Value;
    fn set_status_json(&mut self, status: Value) -> serde_json::Result<()>;
    fn deletion_policy(&self) -> &'static str;
    fn member_role(&self) -> Option<(String, String)>;
    fn to_json(&self) -> Value;
    fn record_metrics(&self, metrics: &Metrics);
    fn forget_metrics(&self, metrics: &Metrics);
    fn summary(&self) -> Option<String>;
    fn next_due(&self, now: k8s_openapi::jiff::Timestamp) -> Option<std::time::Duration>;
}

impl<K: KindSpec> DynKind for K {
    fn name(&self) -> String {
        self.name_any()
    }
    fn sees(&self) -> &'static [Kind] {
        K::SEES
    }
    fn generation(&self) -> Option<i64> {
        self.meta().generation
    }
    fn dependencies(&self) -> Vec<Key> {
        KindSpec::dependencies(self)
    }
    fn after_kinds(&self) -> &'static [Kind] {
        KindSpec::after_kinds(self)
    }
    fn aws_id(&self) -> Option<String> {
        KindSpec::aws_id(self)
    }
    fn common_status(&self) -> Option<&CommonStatus> {
        KindSpec::common_status(self)
    }
    fn common_status_mut(&mut self) -> &mut CommonStatus {
        KindSpec::common_status_mut(self)
    }
    fn status_json(&self) -> Value {
        KindSpec::status_json(self)
    }
    fn set_status_json(&mut self, status: Value) -> serde_json::Result<()> {
        KindSpec::set_status_json(self, status)
    }
    fn deletion_policy(&self) -> &'static str {
        KindSpec::deletion_policy(self)
    }
    fn member_role(&self) -> Option<(String, String)> {
        KindSpec::member_role(self)
    }
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
    fn record_metrics(&self, metrics: &Metrics) {
        KindSpec::record_metrics(self, metrics)
    }
    fn forget_metrics(&self, metrics: &Metrics) {
        KindSpec::forget_metrics(self, metrics)
    }
    fn summary(&self) -> Option<String> {
        KindSpec::summary(self)
    }
    fn next_due(&self, now: k8s_openapi::jiff::Timestamp) -> Option<std::time::Duration> {
        KindSpec::next_due(self, now)
    }
}

/// Something done once per kind, with the kind's type (controller wiring).
pub trait KindVisitor {
    fn visit<K: KindSpec>(&mut self);
}

/// Declares every kind's own gauges (once, at start).
pub fn declare_metrics(metrics: &Metrics) {
    struct Declare<'a>(&'a Metrics);
    impl KindVisitor for Declare<'_> {
        fn visit<K: KindSpec>(&mut self) {
            K::declare_metrics(self.0);
        }
    }
    Kind::visit_all(&mut Declare(metrics));
    // The claims controllers' (not kinds, but exported from the start all the same).
    crate::controller::claims::grants_gauge(metrics);
}

/// Declares the kinds: for each, its reconcile module (`reconcile/<module>/`) and its API type
/// (`crate::api::<Kind>`); generates `Kind`, `Resource` and their dispatch.
macro_rules! kinds {
    ($($kind:ident => $module:ident),* $(,)?) => {
        $(pub mod $module;)*

        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($kind),*
        }

        impl Kind {
            /// Every kind, in the order a pass handles them when nothing else orders them.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$kind => stringify!($kind)),*
                }
            }

            pub fn parse(kind: &str) -> Option<Kind> {
                Self::ALL.iter().copied().find(|k| k.as_str() == kind)
            }

            /// The kind's API resource (for the status sink).
            pub fn api_resource(self) -> kube::api::ApiResource {
                match self {
                    $(Kind::$kind => <crate::api::$kind as kube::CustomResourceExt>::api_resource()),*
                }
            }

            /// The kind's CustomResourceDefinition.
            pub fn crd(self) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
                match self {
                    $(Kind::$kind => <crate::api::$kind as kube::CustomResourceExt>::crd()),*
                }
            }

            /// Calls the visitor with this kind's type.
            pub fn visit(self, visitor: &mut impl $crate::reconcile::registry::KindVisitor) {
                match self {
                    $(Kind::$kind => visitor.visit::<crate::api::$kind>()),*
                }
            }

            /// Calls the visitor once for every kind.
            pub fn visit_all(visitor: &mut impl $crate::reconcile::registry::KindVisitor) {
                $(visitor.visit::<crate::api::$kind>();)*
            }
        }

        /// A landing-zone resource of any kind.
        // Held once per resource in a Vec; boxing would only add indirection.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug)]
        pub enum Resource {
            $($kind(crate::api::$kind)),*
        }

        $(
            impl From<crate::api::$kind> for Resource {
                fn from(r: crate::api::$kind) -> Self {
                    Resource::$kind(r)
                }
            }
        )*

        impl Resource {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Resource::$kind(_) => Kind::$kind),*
                }
            }

            pub(crate) fn inner(&self) -> &dyn $crate::reconcile::registry::DynKind {
                match self {
                    $(Resource::$kind(r) => r),*
                }
            }

            pub(crate) fn inner_mut(&mut self) -> &mut dyn $crate::reconcile::registry::DynKind {
                match self {
                    $(Resource::$kind(r) => r),*
                }
            }

            /// Reads a resource of `kind` from JSON; the error names the field.
            pub fn from_json(kind: Kind, value: &serde_json::Value) -> Result<Resource, (String, String)> {
                fn de<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, (String, String)> {
                    serde_path_to_error::deserialize(value)
                        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
                }
                Ok(match kind {
                    $(Kind::$kind => Resource::$kind(de(value)?)),*
                })
            }

            /// Observe → plan → apply for its kind (each kind's module gets its own type). Each
            /// kind's future is boxed: held inline, this one would be as large as the largest
            /// kind's, and a debug build's poll frames would overflow a 2 MiB thread stack.
            pub async fn reconcile_kind(&mut self, pass: &mut Pass) -> Result<Progress, Error> {
                match self {
                    $(Resource::$kind(r) => Box::pin($module::reconcile(r, pass)).await),*
                }
            }

            /// Carries out its kind's deletion policy.
            pub async fn delete_kind(&mut self, pass: &mut Pass) -> Result<Progress, Error> {
                match self {
                    $(Resource::$kind(r) => Box::pin($module::delete(r, pass)).await),*
                }
            }
        }
    };
}

impl Resource {
    pub fn key(&self) -> Key {
        Key::new(self.kind(), self.inner().name())
    }

    pub fn dependencies(&self) -> Vec<Key> {
        self.inner().dependencies()
    }

    pub fn sees(&self) -> &'static [Kind] {
        self.inner().sees()
    }

    pub fn after_kinds(&self) -> &'static [Kind] {
        self.inner().after_kinds()
    }

    /// What a pass handles first: the references, and every resource of the kinds this one comes
    /// after.
    pub fn dependencies_among(&self, resources: &[Resource]) -> Vec<Key> {
        let after = self.inner().after_kinds();
        let mut deps = self.dependencies();
        if !after.is_empty() {
            deps.extend(
                resources
                    .iter()
                    .filter(|r| after.contains(&r.kind()))
                    .map(Resource::key),
            );
        }
        deps
    }

    pub fn generation(&self) -> Option<i64> {
        self.inner().generation()
    }

    pub fn aws_id(&self) -> Option<String> {
        self.inner().aws_id()
    }

    pub fn common_status(&self) -> Option<&CommonStatus> {
        self.inner().common_status()
    }

    pub fn common_status_mut(&mut self) -> &mut CommonStatus {
        self.inner_mut().common_status_mut()
    }

    pub fn status_json(&self) -> Value {
        self.inner().status_json()
    }

    /// Replaces the status (e.g. with one kept by the CLI's state file).
    pub fn set_status_json(&mut self, status: Value) -> serde_json::Result<()> {
        self.inner_mut().set_status_json(status)
    }

    pub fn deletion_policy(&self) -> &'static str {
        self.inner().deletion_policy()
    }

    pub fn member_role(&self) -> Option<(String, String)> {
        self.inner().member_role()
    }

    /// The whole object as JSON (spec and status).
    pub fn to_json(&self) -> Value {
        self.inner().to_json()
    }

    /// Readiness and drift for every kind, then the kind's own gauges.
    pub fn record_metrics(&self, metrics: &Metrics) {
        let key = self.key();
        if let Some(common) = self.common_status() {
            let ready = common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            metrics.observe(key.kind.as_str(), &key.name, ready, common.drift_count);
        }
        self.inner().record_metrics(metrics)
    }

    /// Drops a deleted resource's series.
    pub fn forget_metrics(&self, metrics: &Metrics) {
        let key = self.key();
        metrics.forget(key.kind.as_str(), &key.name);
        self.inner().forget_metrics(metrics)
    }

    pub fn summary(&self) -> Option<String> {
        self.inner().summary()
    }

    pub fn next_due(&self, now: k8s_openapi::jiff::Timestamp) -> Option<std::time::Duration> {
        self.inner().next_due(now)
    }
}

/// The keys of the resources an optional reference names.
pub fn refs(kind: Kind, r: &Option<crate::api::ResourceRef>) -> Vec<Key> {
    r.iter().map(|r| Key::new(kind, &r.name)).collect()
}

/// `Retain` or `Delete`, as written.
pub fn deletion(d: crate::api::DeletionPolicy) -> &'static str {
    match d {
        crate::api::DeletionPolicy::Retain => "Retain",
        crate::api::DeletionPolicy::Delete => "Delete",
    }
}

/// Implements the status accessors of [`KindSpec`] for a kind whose status struct flattens
/// `CommonStatus` into a field `common`.
#[macro_export]
macro_rules! status_access {
    () => {
        fn common_status(&self) -> Option<&$crate::api::CommonStatus> {
            self.status.as_ref().map(|s| &s.common)
        }
        fn common_status_mut(&mut self) -> &mut $crate::api::CommonStatus {
            &mut self.status.get_or_insert_with(Default::default).common
        }
        fn status_json(&self) -> serde_json::Value {
            serde_json::to_value(&self.status).unwrap_or(serde_json::Value::Null)
        }
        fn set_status_json(&mut self, status: serde_json::Value) -> serde_json::Result<()> {
            self.status = serde_json::from_value(status)?;
            Ok(())
        }
    };
}
