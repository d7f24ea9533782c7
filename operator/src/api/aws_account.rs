//! `AwsAccount`: a member account of the Organization.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const DEFAULT_ROLE_NAME: &str = "OrganizationAccountAccessRole";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "AwsAccount",
    shortname = "acct",
    category = "landingzone",
    status = "AwsAccountStatus",
    printcolumn(name = "ACCOUNT-ID", type_ = "string", json_path = ".status.accountId"),
    printcolumn(name = "OU", type_ = "string", json_path = ".status.parentId"),
    printcolumn(name = "STATE", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "DRIFT", type_ = "integer", json_path = ".status.driftCount"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!(has(self.organizationalUnitRef) && has(self.parentId))").message("set at most one of organizationalUnitRef and parentId"),
    validation = Rule::new("self.email == oldSelf.email").message("email is immutable: it identifies the account's root user"),
    validation = Rule::new("self.roleName == oldSelf.roleName").message("roleName is immutable: AWS creates the access role only when the account is created"),
)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountSpec {
    /// Account name, 1-50 characters.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 50").message("accountName must be 1-50 characters"))]
    #[schemars(length(max = 50))]
    pub account_name: String,
    /// Root user email: one group mailbox per account. 6-64 characters.
    #[x_kube(validation = Rule::new("size(self) >= 6 && size(self) <= 64 && self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')").message("email must be a valid address of 6-64 characters, e.g. aws-payments-prod@example.com"))]
    #[schemars(length(max = 64))]
    pub email: String,
    /// The OU to place the account in (an OrganizationalUnit resource). Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit_ref: Option<ResourceRef>,
    /// The parent by AWS id (`r-…` or `ou-…`). Default: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$')").message("parentId must be a root id (r-…) or an OU id (ou-…)"))]
    #[schemars(length(max = 68))]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[x_kube(validation = Rule::new(TAG_RULES).message(TAG_RULES_MESSAGE))]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
    /// IAM role AWS creates in the account for the management account to assume.
    #[serde(default = "default_role_name")]
    #[x_kube(validation = Rule::new("self.matches('^[\\\\w+=,.@-]{1,64}$')").message("roleName must be 1-64 characters of letters, digits and +=,.@_-"))]
    #[schemars(length(max = 64))]
    pub role_name: String,
    /// Whether IAM users may see billing (set when the account is created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_user_access_to_billing: Option<BillingAccess>,
    /// Account alias: 3-63 characters of a-z, 0-9 and '-', not starting or ending with '-'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) >= 3 && size(self) <= 63 && self.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?$')").message("alias must be 3-63 characters of a-z, 0-9 and '-', and must not start or end with '-'"))]
    #[schemars(length(max = 63))]
    pub alias: Option<String>,
    /// IAM password policy for the account. Default: a strong policy.
    #[serde(default = "default_password_policy")]
    pub password_policy: PasswordPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate_contacts: Option<AlternateContacts>,
    /// Whether the operator works inside the account through `roleName` (alias, password policy,
    /// contacts, the root-user report). `false` manages the account from the Organization only,
    /// e.g. for an invited account without the access role.
    #[serde(default = "yes_baseline")]
    pub baseline: bool,
    /// The root user's credentials. `Report` (default): report them. `Absent`: remove the
    /// password, access keys, signing certificates and MFA devices through a root session
    /// (`sts:AssumeRoot`), which needs the Organization's `rootAccess` (credentials management and
    /// root sessions).
    #[serde(default, skip_serializing_if = "RootCredentials::is_report")]
    pub root_credentials: RootCredentials,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// `Close` closes the account when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: AccountDeletionPolicy,
}

fn yes_baseline() -> bool {
    true
}

pub fn default_role_name() -> String {
    DEFAULT_ROLE_NAME.to_string()
}

fn default_password_policy() -> PasswordPolicy {
    PasswordPolicy::default()
}

/// What the operator does about the root user's credentials.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RootCredentials {
    /// Report them (the account summary, or a root session where one is allowed).
    #[default]
    Report,
    /// Remove them through a root session; new accounts are created without them.
    Absent,
}

impl RootCredentials {
    pub fn is_report(&self) -> bool {
        *self == RootCredentials::Report
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum BillingAccess {
    Allow,
    Deny,
}

impl BillingAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingAccess::Allow => "ALLOW",
            BillingAccess::Deny => "DENY",
        }
    }
}

/// IAM account password policy (the defaults are the strong policy of the reference practices).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordPolicy {
    #[serde(default = "PasswordPolicy::default_min_length")]
    #[x_kube(validation = Rule::new("self >= 6 && self <= 128").message("minimumPasswordLength must be 6-128"))]
    pub minimum_password_length: i32,
    #[serde(default = "yes")]
    pub require_symbols: bool,
    #[serde(default = "yes")]
    pub require_numbers: bool,
    #[serde(default = "yes")]
    pub require_uppercase_characters: bool,
    #[serde(default = "yes")]
    pub require_lowercase_characters: bool,
    #[serde(default = "yes")]
    pub allow_users_to_change_password: bool,
    /// Days before a password expires (1-1095); unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1095").message("maxPasswordAge must be 1-1095 days"))]
    pub max_password_age: Option<i32>,
    #[serde(default = "PasswordPolicy::default_reuse_prevention")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 24").message("passwordReusePrevention must be 0-24"))]
    pub password_reuse_prevention: i32,
    #[serde(default)]
    pub hard_expiry: bool,
    /// `false` leaves the account's password policy as it is (e.g. an imported account without
    /// one); the fields above are then ignored.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub manage: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

impl PasswordPolicy {
    fn default_min_length() -> i32 {
        14
    }
    fn default_reuse_prevention() -> i32 {
        24
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_password_length: 14,
            require_symbols: true,
            require_numbers: true,
            require_uppercase_characters: true,
            require_lowercase_characters: true,
            allow_users_to_change_password: true,
            max_password_age: None,
            password_reuse_prevention: 24,
            hard_expiry: false,
            manage: true,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlternateContacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<Contact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Contact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Contact>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 64").message("contact name must be 1-64 characters"))]
    #[schemars(length(max = 64))]
    pub name: String,
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 50").message("contact title must be 1-50 characters"))]
    #[schemars(length(max = 50))]
    pub title: String,
    #[x_kube(validation = Rule::new("size(self) <= 254 && self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')").message("contact email must be a valid address"))]
    #[schemars(length(max = 254))]
    pub email: String,
    #[x_kube(validation = Rule::new("self.matches('^[\\\\s0-9()+-]{1,25}$')").message("phoneNumber must be 1-25 characters of digits, spaces and ()+-"))]
    #[schemars(length(max = 25))]
    pub phone_number: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccountStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// ACTIVE, SUSPENDED or PENDING_CLOSURE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Id of the CreateAccount request, written before anything else so a crash never creates twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_request_id: Option<String>,
    /// The request was found in flight under this account name rather than sent by this resource
    /// (a crash before its id was saved, or another resource's): its account is adopted only if
    /// its email is `spec.email`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_request_found_by_name: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityReport>,
    #[serde(flatten)]
    pub common: CommonStatus,
}

/// Read-only report of the account's root user and password policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityReport {
    pub root_mfa_enabled: bool,
    pub root_access_keys_present: bool,
    /// The root user has a password; without one it cannot sign in, and missing MFA is no risk.
    #[serde(default)]
    pub root_password_present: bool,
    pub password_policy_compliant: bool,
    /// MFA devices and signing certificates of the root user (known from a root session only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_mfa_devices: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_signing_certificates: Option<i32>,
    /// How the root user was audited: `AccountSummary`, or `RootSession` (sts:AssumeRoot with
    /// AWS's root-credentials task policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audited_by: Option<String>,
}
