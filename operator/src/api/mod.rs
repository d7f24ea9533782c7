//! The landing-zone API (`landingzone.dev/v1alpha1`): one file per kind, shared types in `common`.

pub mod audit_trail;
pub mod aws_account;
pub mod budget;
pub mod common;
pub mod identity_group;
pub mod organizational_unit;

pub use audit_trail::{AuditTrail, AuditTrailSpec, AuditTrailStatus};
pub use aws_account::{AwsAccount, AwsAccountSpec, AwsAccountStatus};
pub use budget::{Budget, BudgetSpec, BudgetStatus};
pub use common::*;
pub use identity_group::{IdentityGroup, IdentityGroupSpec, IdentityGroupStatus};
pub use organizational_unit::{
    OrganizationalUnit, OrganizationalUnitSpec, OrganizationalUnitStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub const GROUP: &str = "landingzone.dev";
pub const API_VERSION: &str = "landingzone.dev/v1alpha1";

/// Every CRD, in dependency order (OUs before the accounts placed in them, …).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        OrganizationalUnit::crd(),
        AwsAccount::crd(),
        IdentityGroup::crd(),
        Budget::crd(),
        AuditTrail::crd(),
    ]
}

/// The YAML file name and content of each CRD, as committed under `crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            let yaml = serde_yaml::to_string(&crd).expect("a CRD always serializes");
            (name, yaml)
        })
        .collect()
}
