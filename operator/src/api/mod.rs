//! The landing-zone API (`landingzone.dev/v1alpha1`): one file per kind, shared types in `common`.

// kube's `printcolumn(..)` repeats `type_ = ..` by design; clippy reads that as a duplicate attribute.
#![allow(clippy::duplicated_attributes)]

pub mod account_assignment;
pub mod audit_trail;
pub mod aws_account;
pub mod budget;
pub mod claims;
pub mod common;
pub mod identity_center_group;
pub mod identity_group;
pub mod organization;
pub mod organization_policy;
pub mod organizational_unit;
pub mod permission_set;
pub mod security_baseline;

pub use account_assignment::{AccountAssignment, AccountAssignmentSpec, AccountAssignmentStatus};
pub use audit_trail::{AuditTrail, AuditTrailSpec, AuditTrailStatus};
pub use aws_account::{AwsAccount, AwsAccountSpec, AwsAccountStatus};
pub use budget::{Budget, BudgetSpec, BudgetStatus};
pub use claims::{AccessClaim, AccountClaim, AccountClass};
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
pub use security_baseline::{SecurityBaseline, SecurityBaselineSpec, SecurityBaselineStatus};

pub const GROUP: &str = "landingzone.dev";
pub const API_VERSION: &str = "landingzone.dev/v1alpha1";

/// YAML as people read it and every Kubernetes tool parses it: long lines stay one line (a CEL
/// rule is never folded), multi-line text is a literal block, and strings that YAML 1.1 readers
/// would take for booleans or numbers (`on`, `0755`) are quoted.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_with_options(
        value,
        serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX },
    )
}
