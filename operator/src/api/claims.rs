//! Self-service: the platform team's `AccountClass` (a template and its limits, cluster-scoped),
//! and what a team asks for in its own namespace within one — an `AccountClaim` (an account) and an
//! `AccessClaim` (a permission set on that account for a limited time).
//!
//! A claim composes the existing kinds (an `AwsAccount`, a `Budget`, `AccountAssignment`s),
//! labelled with the claim, so everything they do applies unchanged (`controller::claims`).

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The one grammar of a duration, for admission (CEL) and the operator ([`iso_seconds`]) alike:
/// ISO 8601 hours, minutes and seconds (`PT4H`, `PT90M`, `PT20S`, `PT1H30M`), in that order, each
/// at most once, with at most 4, 5 and 6 digits (so the largest, `PT9999H99999M999999S`, is
/// 42,996,339 s: no overflow anywhere), and longer than zero.
macro_rules! iso_duration_pattern {
    () => {
        "^PT([0-9]{1,4}H)?([0-9]{1,5}M)?([0-9]{1,6}S)?$"
    };
}
pub const ISO_DURATION_PATTERN: &str = iso_duration_pattern!();
/// CEL reads the duration as `duration(self.substring(2).lowerAscii())` (`1h30m`).
pub const ISO_DURATION_RULE: &str = concat!(
    "self.matches('",
    iso_duration_pattern!(),
    "') && size(self) > 2 && duration(self.substring(2).lowerAscii()) > duration('0s')"
);

/// Durations and whether the grammar takes them: the operator's unit test and the admission test
/// on a real kube-apiserver both run this table, so the two sides cannot drift apart.
pub const ISO_DURATION_CASES: &[(&str, Option<i64>)] = &[
    ("PT4H", Some(14_400)),
    ("PT90M", Some(5_400)),
    ("PT20S", Some(20)),
    ("PT1H30M", Some(5_400)),
    ("PT1H0M5S", Some(3_605)),
    ("PT9999H99999M999999S", Some(42_996_339)),
    ("PT10000H", None),
    ("PT1S1H", None),
    ("PT1H1H", None),
    ("PT0S", None),
    ("PT0H0M0S", None),
    ("PT", None),
    ("P1D", None),
    ("PTH", None),
    ("PT5", None),
    ("pt1h", None),
    ("PT1.5H", None),
    ("PT-1H", None),
    ("2h", None),
];

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "AccountClass",
    shortname = "acctclass",
    category = "landingzone",
    printcolumn(
        name = "OU",
        type_ = "string",
        json_path = ".spec.organizationalUnitRef.name"
    ),
    printcolumn(
        name = "PER-NAMESPACE",
        type_ = "integer",
        json_path = ".spec.accountsPerNamespace"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccountClassSpec {
    /// The OU claimed accounts go into (an `OrganizationalUnit` resource).
    pub organizational_unit_ref: ResourceRef,
    /// The account's name; `{namespace}` and `{claim}` are replaced. Both must appear, so two
    /// claims never make the same name.
    #[serde(default = "default_name_template")]
    #[x_kube(validation = Rule::new("self.contains('{namespace}') && self.contains('{claim}') && size(self) <= 50").message("accountNameTemplate must contain {namespace} and {claim}, e.g. {namespace}-{claim}"))]
    #[schemars(length(max = 50))]
    pub account_name_template: String,
    /// The root email: plus-addressing of one group mailbox, never a person's, e.g.
    /// `aws+{namespace}-{claim}@example.com`. Must contain `{namespace}` and `{claim}`.
    #[x_kube(validation = Rule::new("self.contains('{namespace}') && self.contains('{claim}') && self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$') && size(self) <= 120").message("emailTemplate must be an email address containing {namespace} and {claim}, e.g. aws+{namespace}-{claim}@example.com"))]
    #[schemars(length(max = 120))]
    pub email_template: String,
    /// The access role created in the account (default `OrganizationAccountAccessRole`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub role_name: Option<String>,
    /// Tags every claimed account gets; a claim cannot change them.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[x_kube(validation = Rule::new(TAG_RULES).message(TAG_RULES_MESSAGE))]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
    /// Tag keys a claim may set (besides the class's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 128)))]
    pub claim_tag_keys: Vec<String>,
    /// The budget of every claimed account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<ClassBudget>,
    /// Identity Center permission sets (by name) the claim's `ownerGroup` gets on the account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(max = 32)))]
    pub permission_sets: Vec<String>,
    /// Permission sets an `AccessClaim` may ask for, each for at most `maxDuration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub time_bound: Vec<TimeBoundPermission>,
    /// The namespaces that may claim accounts of this class. Empty matches none.
    pub namespace_selector: LabelSelector,
    /// How many accounts of this class one namespace may hold.
    #[serde(default = "three")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("accountsPerNamespace must be 0-1000"))]
    pub accounts_per_namespace: i32,
    /// The Identity Center groups a namespace may name (`ownerGroup`, an access claim's `group`):
    /// a regular expression in which `{namespace}` is replaced by the claim's namespace.
    #[serde(default = "default_group_pattern")]
    #[x_kube(validation = Rule::new("self.contains('{namespace}') && self.startsWith('^') && self.endsWith('$')").message("groupPattern must be anchored (^…$) and contain {namespace}, e.g. ^{namespace}(-[a-z0-9-]+)?$"))]
    #[schemars(length(max = 256))]
    pub group_pattern: String,
    /// What deleting a claim does to its account: `Retain`, or `Close` (only an account the claim
    /// itself created; subject to AWS's closure quota).
    #[serde(default)]
    pub deletion_policy: AccountDeletionPolicy,
}

fn default_name_template() -> String {
    "{namespace}-{claim}".to_string()
}

fn default_group_pattern() -> String {
    "^{namespace}(-[a-z0-9-]+)?$".to_string()
}

fn three() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.defaultUsd <= self.maxUsd").message("budget.defaultUsd must be at most budget.maxUsd"),
)]
pub struct ClassBudget {
    /// The monthly limit when a claim names none.
    #[x_kube(validation = Rule::new("self > 0").message("defaultUsd must be greater than 0"))]
    pub default_usd: i64,
    /// The largest monthly limit a claim may ask for.
    pub max_usd: i64,
    /// Percentages of actual spend that notify (the forecast notifies at 100 %); at most 4.
    #[serde(default = "thresholds")]
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 4 && self.all(t, t > 0 && t <= 1000)").message("thresholds: 1-4 percentages of 1-1000 (AWS allows 5 notifications; one is the forecast)"))]
    #[schemars(length(max = 4))]
    pub thresholds: Vec<i32>,
    /// Who is notified; `{namespace}` and `{claim}` are replaced (the team's mailbox, the
    /// platform's). At most 10.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 10 && self.all(e, e.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$'))").message("budget.emails: 1-10 email addresses ({namespace} and {claim} may appear)"))]
    #[schemars(length(max = 10), inner(length(max = 200)))]
    pub emails: Vec<String>,
}

fn thresholds() -> Vec<i32> {
    vec![50, 80, 100]
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeBoundPermission {
    /// An Identity Center permission set name (a `PermissionSet` resource's `spec.name`).
    #[schemars(length(max = 32))]
    pub permission_set: String,
    /// The longest access a claim may ask for, ISO 8601 (e.g. `PT4H`).
    #[x_kube(validation = Rule::new(ISO_DURATION_RULE).message("maxDuration must be an ISO 8601 duration of hours, minutes or seconds, e.g. PT4H"))]
    #[schemars(length(max = 20))]
    pub max_duration: String,
}

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "AccountClaim",
    namespaced,
    shortname = "acctclaim",
    category = "landingzone",
    status = "AccountClaimStatus",
    printcolumn(name = "CLASS", type_ = "string", json_path = ".spec.classRef.name"),
    printcolumn(name = "ACCOUNT-ID", type_ = "string", json_path = ".status.accountId"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "REASON",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self.classRef == oldSelf.classRef").message("classRef is immutable: a claimed account stays in its class; claim another account instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct AccountClaimSpec {
    /// The `AccountClass` this account is claimed from.
    pub class_ref: ResourceRef,
    /// The Identity Center group that gets the class's permission sets on the account; must match
    /// the class's `groupPattern` for this namespace.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 128").message("ownerGroup must be 1-128 characters"))]
    #[schemars(length(max = 128))]
    pub owner_group: String,
    /// The monthly budget in USD; default the class's, at most its `maxUsd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("budgetUsd must be greater than 0"))]
    pub budget_usd: Option<i64>,
    /// Tags, only keys the class lists in `claimTagKeys`.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[x_kube(validation = Rule::new(TAG_RULES).message(TAG_RULES_MESSAGE))]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountClaimStatus {
    /// The `AwsAccount` this claim composed (cluster-scoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    /// The role to assume in the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The ConfigMap in this namespace holding the account id, role and region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Time-bound access granted on this account in the last 24 hours, by every `AccessClaim`
    /// naming it (kept here when an AccessClaim is deleted or made again under another name), oldest
    /// first, at most 100: what `landingzone_access_grants_last_day` counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_grants: Vec<AccessGrantRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One grant of time-bound access on a claimed account.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrantRecord {
    /// When it was granted (RFC 3339).
    pub granted_at: String,
    /// The `AccessClaim` that asked for it.
    pub access_claim: String,
    pub permission_set: String,
    pub group: String,
    /// When it ends (RFC 3339).
    pub expires_at: String,
    pub reason: String,
}

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "AccessClaim",
    namespaced,
    shortname = "accessclaim",
    category = "landingzone",
    status = "AccessClaimStatus",
    printcolumn(
        name = "ACCOUNT",
        type_ = "string",
        json_path = ".spec.accountClaimRef.name"
    ),
    printcolumn(
        name = "PERMISSION-SET",
        type_ = "string",
        json_path = ".spec.permissionSet"
    ),
    printcolumn(name = "GROUP", type_ = "string", json_path = ".spec.group"),
    printcolumn(name = "STATE", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "EXPIRES", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessClaimSpec {
    /// An `AccountClaim` in this namespace.
    pub account_claim_ref: ResourceRef,
    /// A permission set the account's class allows for a limited time (`timeBound`).
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{1,32}$')").message("permissionSet must be a permission set name: 1-32 characters of letters, digits and +=,.@-_"))]
    #[schemars(length(max = 32))]
    pub permission_set: String,
    /// The Identity Center group that gets it; must match the class's `groupPattern`.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 128").message("group must be 1-128 characters"))]
    #[schemars(length(max = 128))]
    pub group: String,
    /// How long, ISO 8601 (`PT2H`, `PT30M`); at most the class's `maxDuration`. Counted from the
    /// grant; a changed spec grants again for this long.
    #[x_kube(validation = Rule::new(ISO_DURATION_RULE).message("duration must be an ISO 8601 duration of hours, minutes or seconds, e.g. PT2H"))]
    #[schemars(length(max = 20))]
    pub duration: String,
    /// Why (an incident or ticket): in the Events of the grant and of the expiry.
    #[x_kube(validation = Rule::new("size(self) >= 3 && size(self) <= 256").message("reason must be 3-256 characters, e.g. INC-4711: restore the search index"))]
    #[schemars(length(max = 256))]
    pub reason: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessClaimStatus {
    /// `Pending`, `Granted`, `Expired` or `Refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// When the access ends (RFC 3339); set once, at the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The spec generation `expiresAt` was set for: an expired claim is granted again only when
    /// its spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_generation: Option<i64>,
    /// The `AccountAssignment` that holds the access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<String>,
    /// How many times this claim has been granted (once per spec generation, and again after a
    /// refusal ended): a claim renewed over and over shows here and in its `Granted` Events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_count: Option<i64>,
    /// The grants of the last 24 hours (at most 24), oldest first: when, until when, and why.
    /// (The `AccountClaim`'s `status.accessGrants` keeps them across every AccessClaim of it.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<AccessGrant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One grant of an access claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrant {
    /// When it was granted (RFC 3339).
    pub granted_at: String,
    /// When it ends (RFC 3339).
    pub expires_at: String,
    /// The claim's `reason` at the grant.
    pub reason: String,
}

/// Seconds in a duration of [`ISO_DURATION_PATTERN`] (`PT1H30M`); `None` if not one, or zero.
pub fn iso_seconds(d: &str) -> Option<i64> {
    static GRAMMAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(ISO_DURATION_PATTERN).expect("a valid pattern")
    });
    let parts = GRAMMAR.captures(d).filter(|_| d.len() > 2)?;
    let part = |i: usize| -> i64 {
        parts.get(i).map_or(0, |m| {
            let digits = &m.as_str()[..m.len() - 1];
            digits.parse().expect("at most 6 digits")
        })
    };
    let total = part(1) * 3600 + part(2) * 60 + part(3);
    (total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::iso_seconds;

    #[test]
    fn iso_durations_in_seconds() {
        for (d, want) in super::ISO_DURATION_CASES {
            assert_eq!(iso_seconds(d), *want, "{d}");
        }
    }
}
