//! The landing-zone API (`landingzone.dev/v1alpha1`): one file per kind, shared types in `common`.

// kube's `printcolumn(..)` repeats `type_ = ..` by design; clippy reads that as a duplicate attribute.
#![allow(clippy::duplicated_attributes)]

pub mod audit_trail;
pub mod aws_account;
pub mod budget;
pub mod common;
pub mod identity_center_group;
pub mod identity_group;
pub mod organization;
pub mod organization_policy;
pub mod organizational_unit;
pub mod permission_set;

pub use audit_trail::{AuditTrail, AuditTrailSpec, AuditTrailStatus};
pub use aws_account::{AwsAccount, AwsAccountSpec, AwsAccountStatus};
pub use budget::{Budget, BudgetSpec, BudgetStatus};
pub use common::*;
pub use identity_center_group::{
    IdentityCenterGroup, IdentityCenterGroupSpec, IdentityCenterGroupStatus,
};
pub use identity_group::{IdentityGroup, IdentityGroupSpec, IdentityGroupStatus};
pub use organization::{Organization, OrganizationSpec, OrganizationStatus};
pub use organization_policy::{
    OrganizationPolicy, OrganizationPolicySpec, OrganizationPolicyStatus,
};
pub use organizational_unit::{
    OrganizationalUnit, OrganizationalUnitSpec, OrganizationalUnitStatus,
};
pub use permission_set::{PermissionSet, PermissionSetSpec, PermissionSetStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub const GROUP: &str = "landingzone.dev";
pub const API_VERSION: &str = "landingzone.dev/v1alpha1";

/// Every CRD, in the registry's order (OUs before the accounts placed in them, …).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    crate::reconcile::Kind::ALL
        .iter()
        .map(|k| k.crd())
        .collect()
}

/// YAML as people read it and every Kubernetes tool parses it: long lines stay one line (a CEL
/// rule is never folded), multi-line text is a literal block, and strings that YAML 1.1 readers
/// would take for booleans or numbers (`on`, `0755`) are quoted.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_with_options(
        value,
        serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX },
    )
}

/// The YAML file name and content of each CRD, as committed under `crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            let yaml = to_yaml(&crd).expect("a CRD always serializes");
            (name, yaml)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        let files = crd_files();
        assert_eq!(
            files.len(),
            crate::reconcile::Kind::ALL.len(),
            "one CRD per kind"
        );
        for (name, yaml) in files {
            let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            assert!(
                committed == yaml,
                "crds/{name} differs from the code: run `make crds` and commit the result"
            );
        }
        let on_disk = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(
            on_disk,
            crate::reconcile::Kind::ALL.len(),
            "crds/ holds exactly the generated files"
        );
        // The chart ships the same CRDs.
        let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/landing-zone-operator/crds");
        for (name, yaml) in crd_files() {
            let copy = std::fs::read_to_string(chart.join(&name)).unwrap_or_default();
            assert!(
                copy == yaml,
                "charts/landing-zone-operator/crds/{name} differs: run `make crds`"
            );
        }
    }

    #[test]
    fn every_crd_is_cluster_scoped_in_the_landingzone_category_with_ready_and_drift_columns() {
        for crd in all_crds() {
            let name = crd.metadata.name.clone().unwrap();
            assert_eq!(crd.spec.scope, "Cluster", "{name}");
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["landingzone".to_string()][..]),
                "{name}"
            );
            assert_eq!(
                crd.spec.names.short_names.as_ref().map(Vec::len),
                Some(1),
                "{name}"
            );
            let v = &crd.spec.versions[0];
            let cols: Vec<&str> = v
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            assert!(
                cols.contains(&"READY") && cols.contains(&"DRIFT"),
                "{name}: {cols:?}"
            );
            assert!(
                v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{name}: status subresource"
            );
            let schema = serde_json::to_string(&v.schema).unwrap();
            assert!(
                schema.contains("x-kubernetes-validations"),
                "{name}: CEL rules"
            );
        }
    }
}
