//! Self-service, pure part: whether a claim is within its class, and what it composes — the
//! `AwsAccount`, `Budget` and `AccountAssignment` objects that the existing kinds reconcile.
//! The controller (`controller::claims`) reads the cluster and writes what this returns.
//!
//! Composition in Crossplane's claim → composite manner, but onto kinds that already exist: the
//! children are ordinary cluster-scoped resources (so `kubectl get landingzone` shows the platform
//! team everything, and crash-safe creation, waiting for AWS, baselines and drift apply unchanged),
//! labelled with the claim. Kubernetes allows no owner reference from a cluster-scoped object to a
//! namespaced one, so the labels (and the claim's finalizer) are the link. A child is only ever
//! written when its labels name this claim: an object Git owns, or another claim's, is never
//! touched — the claim is refused instead.

use crate::api::claims::{AccessClaim, AccountClaim, AccountClass, iso_seconds};
use crate::api::{AccountAssignment, AwsAccount, Budget, PermissionSet};
use kube::ResourceExt;
use kube::core::SelectorExt;
use serde_json::json;
use std::collections::BTreeMap;

/// Labels every composed object carries: the claim's namespace and name, and its kind.
pub const LABEL_NAMESPACE: &str = "landingzone.dev/claim-namespace";
pub const LABEL_CLAIM: &str = "landingzone.dev/claim-name";
pub const LABEL_KIND: &str = "landingzone.dev/claim-kind";
pub const LABEL_CLASS: &str = "landingzone.dev/account-class";
/// The AWS tag an account carries from its CreateAccount on: `<namespace>/<claim>`. An existing
/// account is only ever adopted for a claim that created it (this tag says so).
pub const CLAIM_TAG: &str = "landingzone.dev/claim";
/// The AWS tag naming the AccountClass the claim's account was made under: a retained account is
/// never adopted by a claim of another class (which would move it into that class's OU, give it
/// that class's access and deletion policy).
pub const CLASS_TAG: &str = "landingzone.dev/account-class";

/// Whether an account's AWS tags say it was made for this claim (`<namespace>/<claim>`) under this
/// class; `Err` says why not, for a person.
pub fn account_belongs_to_claim(
    tags: &std::collections::BTreeMap<String, String>,
    owner: &str,
    class: &str,
) -> Result<(), String> {
    match (tags.get(CLAIM_TAG), tags.get(CLASS_TAG)) {
        (Some(c), Some(k)) if c == owner && k == class => Ok(()),
        (Some(c), Some(k)) if c == owner => Err(format!(
            "it was made for claim {owner} under AccountClass {k} and is kept by that class; a claim of AccountClass {class} cannot take it"
        )),
        (Some(c), None) if c == owner => Err(format!(
            "it carries claim {owner}'s tag but no {CLASS_TAG} tag, so its class cannot be told"
        )),
        (c, _) => Err(format!(
            "it was not created by claim {owner} ({CLAIM_TAG} is {})",
            c.map_or("absent", |c| c.as_str())
        )),
    }
}

/// Why a claim is not (yet) given what it asks: a condition reason and a sentence saying what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

fn refuse(reason: &'static str, message: String) -> Refusal {
    Refusal { reason, message }
}

pub fn render(template: &str, namespace: &str, claim: &str) -> String {
    template
        .replace("{namespace}", namespace)
        .replace("{claim}", claim)
}

/// The composed objects' names (cluster-scoped, so namespace and claim both appear).
pub fn child_name(namespace: &str, claim: &str) -> String {
    format!("{namespace}-{claim}")
}

/// A permission set's name as part of an object name (lowercase letters, digits, hyphens).
fn dns_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// The `AccountAssignment` giving the claim's owner group a permission set of its class.
pub fn assignment_name(child: &str, permission_set: &str) -> String {
    format!("{child}-{}", dns_part(permission_set))
}

pub fn claim_labels(
    kind: &str,
    namespace: &str,
    claim: &str,
    class: &str,
) -> BTreeMap<String, String> {
    [
        (LABEL_NAMESPACE, namespace),
        (LABEL_CLAIM, claim),
        (LABEL_KIND, kind),
        (LABEL_CLASS, class),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whether an existing object is this claim's to write (its labels name it).
pub fn owned_by(
    labels: &BTreeMap<String, String>,
    kind: &str,
    namespace: &str,
    claim: &str,
) -> bool {
    labels.get(LABEL_NAMESPACE).map(String::as_str) == Some(namespace)
        && labels.get(LABEL_CLAIM).map(String::as_str) == Some(claim)
        && labels.get(LABEL_KIND).map(String::as_str) == Some(kind)
}

/// Who holds an object of that name, for the refusal's message.
pub fn holder(labels: &BTreeMap<String, String>) -> String {
    match (labels.get(LABEL_NAMESPACE), labels.get(LABEL_CLAIM)) {
        (Some(ns), Some(c)) => format!("the claim {c} in namespace {ns}"),
        _ => "the platform team (it is not a claim's)".to_string(),
    }
}

fn group_allowed(pattern: &str, namespace: &str, group: &str) -> Result<bool, Refusal> {
    let re = regex::Regex::new(&render(pattern, &regex::escape(namespace), "")).map_err(|e| {
        refuse(
            "ClassInvalid",
            format!("the class's groupPattern is not a regular expression ({e}); ask the platform team to fix it"),
        )
    })?;
    Ok(re.is_match(group))
}

/// The namespace a group belongs to under a class's `groupPattern`: of the `namespaces` whose
/// pattern matches the group, the one with the longest name. `^{namespace}(-[a-z0-9-]+)?$` lets
/// `team-a` name `team-a-b`, which is namespace `team-a-b`'s own group: it is `team-a-b`'s.
pub fn group_owner<'a>(
    pattern: &str,
    namespaces: &'a [String],
    group: &str,
) -> Result<Option<&'a str>, Refusal> {
    let mut owner: Option<&str> = None;
    for ns in namespaces {
        if owner.is_none_or(|o| ns.len() > o.len()) && group_allowed(pattern, ns, group)? {
            owner = Some(ns);
        }
    }
    Ok(owner)
}

/// A group the claim names (`field`: `ownerGroup` or `group`) is one of this namespace's: its
/// pattern matches it, and no namespace with a longer name that the pattern also matches it for
/// exists (`namespaces`: every namespace in the cluster).
fn check_group(
    class: &AccountClass,
    ns: &str,
    field: &str,
    group: &str,
    namespaces: &[String],
) -> Result<(), Refusal> {
    let class_name = class.name_any();
    let pattern = &class.spec.group_pattern;
    if !group_allowed(pattern, ns, group)? {
        return Err(refuse(
            "GroupNotAllowed",
            format!(
                "{field} {group} is not one this namespace may name in AccountClass {class_name} (groupPattern {}): use a group of your team",
                render(pattern, ns, "")
            ),
        ));
    }
    if let Some(owner) = group_owner(pattern, namespaces, group)?
        && owner.len() > ns.len()
    {
        return Err(refuse(
            "GroupOfAnotherNamespace",
            format!(
                "{field} {group} belongs to namespace {owner}: AccountClass {class_name}'s groupPattern matches it for both, and the namespace with the longer name owns it; use a group of your team"
            ),
        ));
    }
    Ok(())
}

/// The class still selects the claim's namespace (an empty selector selects none).
pub fn namespace_selected(
    class: &AccountClass,
    ns: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let selector: Result<kube::core::Selector, _> =
        class.spec.namespace_selector.clone().try_into();
    let selected = selector.is_ok_and(|s| {
        !class.spec.namespace_selector.eq(&Default::default()) && s.matches(namespace_labels)
    });
    if selected {
        return Ok(());
    }
    Err(refuse(
        "NamespaceNotAllowed",
        format!(
            "namespace {ns} is not selected by the namespaceSelector of AccountClass {}: ask the platform team to label the namespace or to use another class",
            class.name_any()
        ),
    ))
}

/// Whether a refusal is the platform team taking the class back from the claim (the class is
/// gone, no longer selects the namespace, or the group is no longer the team's): the access the
/// claim was given through the class goes, the account stays. A claim refused for what the team
/// asks (a budget, a tag) keeps its access while it is fixed.
pub fn withdraws_access(reason: &str) -> bool {
    matches!(
        reason,
        "ClassNotFound" | "NamespaceNotAllowed" | "GroupNotAllowed" | "GroupOfAnotherNamespace"
    )
}

/// The checks of a claim against its class that need no other object: the namespace, the group,
/// the budget and the tag keys. (Admission checks the same with the class as parameter; this
/// holds when that policy is not installed.)
pub fn check_account_claim(
    class: &AccountClass,
    claim: &AccountClaim,
    namespace_labels: &BTreeMap<String, String>,
    namespaces: &[String],
) -> Result<(), Refusal> {
    let ns = claim.namespace().unwrap_or_default();
    let class_name = class.name_any();
    namespace_selected(class, &ns, namespace_labels)?;
    check_group(
        class,
        &ns,
        "ownerGroup",
        &claim.spec.owner_group,
        namespaces,
    )?;
    if let (Some(asked), Some(b)) = (claim.spec.budget_usd, &class.spec.budget)
        && asked > b.max_usd
    {
        return Err(refuse(
            "BudgetAboveClassMaximum",
            format!(
                "budgetUsd {asked} is above the maximum of AccountClass {class_name} ({} USD): ask for at most that",
                b.max_usd
            ),
        ));
    }
    let foreign: Vec<&String> = claim
        .spec
        .tags
        .keys()
        .filter(|k| !class.spec.claim_tag_keys.contains(k))
        .collect();
    if !foreign.is_empty() {
        return Err(refuse(
            "TagNotAllowed",
            format!(
                "tag keys {foreign:?} are not ones AccountClass {class_name} lets a claim set (allowed: {:?}): remove them",
                class.spec.claim_tag_keys
            ),
        ));
    }
    Ok(())
}

/// Whether the claim is within its namespace's quota: the oldest claims of the namespace and class
/// are, a claim that already holds its account always is.
pub fn within_quota(
    class: &AccountClass,
    claim: &AccountClaim,
    siblings: &[AccountClaim],
) -> Result<(), Refusal> {
    if claim
        .status
        .as_ref()
        .is_some_and(|s| s.account_ref.is_some())
    {
        return Ok(());
    }
    let ns = claim.namespace();
    let order = |c: &AccountClaim| (c.creation_timestamp().map(|t| t.0), c.name_any());
    let holding = siblings
        .iter()
        .filter(|c| {
            c.namespace() == ns
                && c.spec.class_ref == claim.spec.class_ref
                && c.name_any() != claim.name_any()
        })
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| s.account_ref.is_some()) || order(c) < order(claim)
        })
        .count();
    let quota = class.spec.accounts_per_namespace.max(0) as usize;
    if holding >= quota {
        return Err(refuse(
            "QuotaExceeded",
            format!(
                "namespace {} already holds {holding} account(s) of AccountClass {}, its quota is {quota}: delete a claim or ask the platform team for a higher accountsPerNamespace",
                ns.unwrap_or_default(),
                class.name_any()
            ),
        ));
    }
    Ok(())
}

/// What an account claim composes.
#[derive(Clone, Debug)]
pub struct Composed {
    pub account: AwsAccount,
    pub budget: Option<Budget>,
    pub assignments: Vec<AccountAssignment>,
    /// Permission sets the class names that no PermissionSet resource has (by `spec.name`).
    pub missing_permission_sets: Vec<String>,
}

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("composed objects match their own types")
}

/// The `PermissionSet` resource whose Identity Center name is `name`.
pub fn permission_set_named<'a>(
    sets: &'a [PermissionSet],
    name: &str,
) -> Option<&'a PermissionSet> {
    sets.iter().find(|p| p.spec.name == name)
}

/// `existing`: the spec of the claim's account object, once composed. Its name, email and role
/// stay as they were made: a class's templates apply to new claims only (the email and role are
/// immutable, and renaming a team's account under it is not the platform team's edit to make).
pub fn compose_account(
    class: &AccountClass,
    claim: &AccountClaim,
    permission_sets: &[PermissionSet],
    existing: Option<&crate::api::AwsAccountSpec>,
) -> Composed {
    let (ns, name, class_name) = (
        claim.namespace().unwrap_or_default(),
        claim.name_any(),
        class.name_any(),
    );
    let child = child_name(&ns, &name);
    let labels = claim_labels("AccountClaim", &ns, &name, &class_name);
    let mut tags = claim.spec.tags.clone();
    tags.extend(class.spec.tags.clone());
    tags.insert(CLAIM_TAG.to_string(), format!("{ns}/{name}"));
    tags.insert(CLASS_TAG.to_string(), class_name.clone());
    let (account_name, email, role) = match existing {
        Some(a) => (
            a.account_name.clone(),
            a.email.clone(),
            Some(a.role_name.clone()),
        ),
        None => (
            render(&class.spec.account_name_template, &ns, &name),
            render(&class.spec.email_template, &ns, &name),
            class.spec.role_name.clone(),
        ),
    };
    let mut spec = json!({
        "accountName": account_name,
        "email": email,
        "organizationalUnitRef": {"name": class.spec.organizational_unit_ref.name},
        "tags": tags,
        "deletionPolicy": class.spec.deletion_policy,
    });
    if let Some(role) = role {
        spec["roleName"] = json!(role);
    }
    let account: AwsAccount = object(json!({
        "apiVersion": crate::api::API_VERSION, "kind": "AwsAccount",
        "metadata": {"name": child, "labels": labels},
        "spec": spec,
    }));
    let budget = class.spec.budget.as_ref().map(|b| {
        let emails: Vec<String> = b.emails.iter().map(|e| render(e, &ns, &name)).collect();
        let mut notifications: Vec<serde_json::Value> = b
            .thresholds
            .iter()
            .map(|t| json!({"notificationType": "ACTUAL", "threshold": *t as f64, "subscribers": {"emails": emails}}))
            .collect();
        notifications.push(json!({"notificationType": "FORECASTED", "threshold": 100.0, "subscribers": {"emails": emails}}));
        object(json!({
            "apiVersion": crate::api::API_VERSION, "kind": "Budget",
            "metadata": {"name": child, "labels": labels},
            "spec": {
                "budgetName": format!("{account_name}-monthly"),
                "accountRef": {"name": child},
                "limit": {"amount": claim.spec.budget_usd.unwrap_or(b.default_usd).to_string(), "unit": "USD"},
                "timeUnit": "MONTHLY",
                "notifications": notifications,
                // The budget goes with the account: kept while the account is.
                "deletionPolicy": if class.spec.deletion_policy == crate::api::AccountDeletionPolicy::Close { "Delete" } else { "Retain" },
            },
        }))
    });
    let mut missing = Vec::new();
    let assignments = class
        .spec
        .permission_sets
        .iter()
        .filter_map(|ps_name| {
            let Some(ps) = permission_set_named(permission_sets, ps_name) else {
                missing.push(ps_name.clone());
                return None;
            };
            Some(object(json!({
                "apiVersion": crate::api::API_VERSION, "kind": "AccountAssignment",
                "metadata": {"name": assignment_name(&child, ps_name), "labels": labels},
                "spec": {
                    "permissionSetRef": {"name": ps.name_any()},
                    "group": claim.spec.owner_group,
                    "accountRef": {"name": child},
                    // The team loses the access with the claim.
                    "deletionPolicy": "Delete",
                },
            })))
        })
        .collect();
    Composed {
        account,
        budget,
        assignments,
        missing_permission_sets: missing,
    }
}

/// An access claim checked against the class of the account it names.
pub fn check_access_claim(
    class: &AccountClass,
    access: &AccessClaim,
    namespaces: &[String],
) -> Result<i64, Refusal> {
    let ns = access.namespace().unwrap_or_default();
    let class_name = class.name_any();
    let Some(allowed) = class
        .spec
        .time_bound
        .iter()
        .find(|t| t.permission_set == access.spec.permission_set)
    else {
        return Err(refuse(
            "PermissionSetNotAllowed",
            format!(
                "AccountClass {class_name} does not allow {} for a limited time (it allows {:?}): ask for one of those",
                access.spec.permission_set,
                class
                    .spec
                    .time_bound
                    .iter()
                    .map(|t| t.permission_set.as_str())
                    .collect::<Vec<_>>()
            ),
        ));
    };
    let asked = iso_seconds(&access.spec.duration).unwrap_or(i64::MAX);
    let max = iso_seconds(&allowed.max_duration).unwrap_or(0);
    if asked > max {
        return Err(refuse(
            "DurationAboveClassMaximum",
            format!(
                "duration {} is longer than AccountClass {class_name} allows for {} ({}): ask for at most that",
                access.spec.duration, allowed.permission_set, allowed.max_duration
            ),
        ));
    }
    check_group(class, &ns, "group", &access.spec.group, namespaces)?;
    Ok(asked)
}

/// The grants kept in an access claim's status: those of the last day, at most this many.
const GRANTS_KEPT: usize = 24;
const DAY_SECONDS: i64 = 24 * 3600;

/// Records a grant in the claim's status: counted, and listed with those of the last day.
pub fn record_grant(
    status: &mut crate::api::claims::AccessClaimStatus,
    now: k8s_openapi::jiff::Timestamp,
    expires_at: &str,
    reason: &str,
) {
    status.grant_count = Some(status.grant_count.unwrap_or(0) + 1);
    status.grants.push(crate::api::claims::AccessGrant {
        granted_at: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        expires_at: expires_at.to_string(),
        reason: reason.to_string(),
    });
    status
        .grants
        .retain(|g| granted_within_a_day(&g.granted_at, now));
    let extra = status.grants.len().saturating_sub(GRANTS_KEPT);
    status.grants.drain(..extra);
}

/// Drops the grants of more than a day ago from the claim's list (the count stays).
pub fn trim_grants(
    status: &mut crate::api::claims::AccessClaimStatus,
    now: k8s_openapi::jiff::Timestamp,
) {
    status
        .grants
        .retain(|g| granted_within_a_day(&g.granted_at, now));
}

/// The most grants an account claim's status lists.
const ACCOUNT_GRANTS_KEPT: usize = 100;

/// An account claim's record of time-bound access: what it had, and what its access claims
/// (`(access claim, permission set, group, its grants)`) list now, those of the last day, each
/// once, oldest first. A deleted access claim's grants stay in the record until they are a day old.
pub fn merge_access_grants(
    had: &[crate::api::claims::AccessGrantRecord],
    claims: &[(String, String, String, Vec<crate::api::claims::AccessGrant>)],
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<crate::api::claims::AccessGrantRecord> {
    let mut all: std::collections::BTreeSet<crate::api::claims::AccessGrantRecord> =
        had.iter().cloned().collect();
    for (claim, permission_set, group, grants) in claims {
        all.extend(
            grants
                .iter()
                .map(|g| crate::api::claims::AccessGrantRecord {
                    granted_at: g.granted_at.clone(),
                    access_claim: claim.clone(),
                    permission_set: permission_set.clone(),
                    group: group.clone(),
                    expires_at: g.expires_at.clone(),
                    reason: g.reason.clone(),
                }),
        );
    }
    // One record per grant: the same access claim granted at the same second is one grant.
    let mut out: Vec<crate::api::claims::AccessGrantRecord> = Vec::new();
    for r in all
        .into_iter()
        .filter(|r| granted_within_a_day(&r.granted_at, now))
    {
        if out
            .last()
            .is_none_or(|l| (&l.granted_at, &l.access_claim) != (&r.granted_at, &r.access_claim))
        {
            out.push(r);
        }
    }
    let extra = out.len().saturating_sub(ACCOUNT_GRANTS_KEPT);
    out.drain(..extra);
    out
}

fn granted_within_a_day(granted_at: &str, now: k8s_openapi::jiff::Timestamp) -> bool {
    granted_at
        .parse::<k8s_openapi::jiff::Timestamp>()
        .is_ok_and(|t| now.as_second() - t.as_second() < DAY_SECONDS)
}

/// How many times the claim was granted in the 24 hours before `now`.
pub fn grants_in_last_day(
    status: &crate::api::claims::AccessClaimStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> usize {
    status
        .grants
        .iter()
        .filter(|g| granted_within_a_day(&g.granted_at, now))
        .count()
}

/// The assignment an access claim composes, until `expires_at`.
pub fn compose_access(
    access: &AccessClaim,
    class_name: &str,
    account_object: &str,
    permission_set: &PermissionSet,
    expires_at: &str,
) -> AccountAssignment {
    let (ns, name) = (access.namespace().unwrap_or_default(), access.name_any());
    object(json!({
        "apiVersion": crate::api::API_VERSION, "kind": "AccountAssignment",
        "metadata": {
            "name": format!("{}-access", child_name(&ns, &name)),
            "labels": claim_labels("AccessClaim", &ns, &name, class_name),
        },
        "spec": {
            "permissionSetRef": {"name": permission_set.name_any()},
            "group": access.spec.group,
            "accountRef": {"name": account_object},
            "expiresAt": expires_at,
            "deletionPolicy": "Delete",
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(extra: serde_json::Value) -> AccountClass {
        let mut spec = json!({
            "organizationalUnitRef": {"name": "workloads"},
            "emailTemplate": "aws+{namespace}-{claim}@example.com",
            "namespaceSelector": {"matchLabels": {"landingzone.dev/self-service": "true"}},
            "accountsPerNamespace": 2,
            "claimTagKeys": ["cost-center"],
            "tags": {"owner": "platform"},
            "budget": {"defaultUsd": 100, "maxUsd": 500, "emails": ["{namespace}@example.com", "platform@example.com"]},
            "permissionSets": ["Developer", "ReadOnly"],
            "timeBound": [{"permissionSet": "Administrator", "maxDuration": "PT4H"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        object(
            json!({"apiVersion": "landingzone.dev/v1alpha1", "kind": "AccountClass", "metadata": {"name": "nonprod"}, "spec": spec}),
        )
    }

    fn claim(ns: &str, name: &str, spec: serde_json::Value, created: &str) -> AccountClaim {
        let mut s = json!({"classRef": {"name": "nonprod"}, "ownerGroup": ns});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        object(
            json!({"apiVersion": "landingzone.dev/v1alpha1", "kind": "AccountClaim",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created}, "spec": s}),
        )
    }

    fn selected() -> BTreeMap<String, String> {
        [(
            "landingzone.dev/self-service".to_string(),
            "true".to_string(),
        )]
        .into()
    }

    #[test]
    fn a_claim_gets_only_what_its_class_allows() {
        let c = class(json!({}));
        let t = "2026-12-05T10:00:00Z";
        type Case<'a> = (
            &'a str,
            AccountClaim,
            BTreeMap<String, String>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "within the class",
                claim(
                    "team-search",
                    "dev",
                    json!({"budgetUsd": 300, "tags": {"cost-center": "4711"}}),
                    t,
                ),
                selected(),
                None,
            ),
            (
                "namespace not selected",
                claim("team-search", "dev", json!({}), t),
                BTreeMap::new(),
                Some("NamespaceNotAllowed"),
            ),
            (
                "budget above the maximum",
                claim("team-search", "dev", json!({"budgetUsd": 501}), t),
                selected(),
                Some("BudgetAboveClassMaximum"),
            ),
            (
                "a tag key the class does not allow",
                claim("team-search", "dev", json!({"tags": {"owner": "me"}}), t),
                selected(),
                Some("TagNotAllowed"),
            ),
            (
                "another team's group",
                claim(
                    "team-search",
                    "dev",
                    json!({"ownerGroup": "team-payments"}),
                    t,
                ),
                selected(),
                Some("GroupNotAllowed"),
            ),
            (
                "a group of the team",
                claim(
                    "team-search",
                    "dev",
                    json!({"ownerGroup": "team-search-oncall"}),
                    t,
                ),
                selected(),
                None,
            ),
            (
                "a group that only starts like the team's",
                claim(
                    "team-search",
                    "dev",
                    json!({"ownerGroup": "team-searchers"}),
                    t,
                ),
                selected(),
                Some("GroupNotAllowed"),
            ),
        ];
        for (why, cl, labels, want) in cases {
            let got = check_account_claim(&c, &cl, &labels, &[])
                .err()
                .map(|r| r.reason);
            assert_eq!(got, want, "{why}");
        }
        let empty_selector = class(json!({"namespaceSelector": {}}));
        let r = check_account_claim(
            &empty_selector,
            &claim("team-search", "dev", json!({}), t),
            &selected(),
            &[],
        );
        assert_eq!(
            r.unwrap_err().reason,
            "NamespaceNotAllowed",
            "an empty selector selects no namespace"
        );
    }

    #[test]
    fn the_oldest_claims_are_within_the_quota() {
        let c = class(json!({}));
        let a = claim("team-a", "one", json!({}), "2026-12-05T10:00:00Z");
        let b = claim("team-a", "two", json!({}), "2026-12-05T10:00:01Z");
        let d = claim("team-a", "three", json!({}), "2026-12-05T10:00:02Z");
        let other_ns = claim("team-b", "zero", json!({}), "2026-12-05T09:00:00Z");
        let all = vec![a.clone(), b.clone(), d.clone(), other_ns];
        assert!(within_quota(&c, &a, &all).is_ok());
        assert!(within_quota(&c, &b, &all).is_ok());
        assert_eq!(
            within_quota(&c, &d, &all).unwrap_err().reason,
            "QuotaExceeded"
        );
        // A younger claim that already holds its account keeps it; the older one waits.
        let mut held = d.clone();
        held.status = Some(crate::api::claims::AccountClaimStatus {
            account_ref: Some("x".into()),
            ..Default::default()
        });
        let all = vec![a.clone(), b.clone(), held.clone()];
        assert!(within_quota(&c, &held, &all).is_ok());
        assert!(within_quota(&c, &b, &all).is_err());
    }

    #[test]
    fn a_claim_composes_an_account_a_budget_and_assignments_labelled_with_it() {
        let c = class(json!({}));
        let cl = claim(
            "team-search",
            "dev",
            json!({"budgetUsd": 300, "tags": {"cost-center": "4711"}}),
            "2026-12-05T10:00:00Z",
        );
        let dev: PermissionSet = object(
            json!({"apiVersion": "landingzone.dev/v1alpha1", "kind": "PermissionSet",
            "metadata": {"name": "developer"}, "spec": {"name": "Developer"}}),
        );
        let got = compose_account(&c, &cl, std::slice::from_ref(&dev), None);
        let a = &got.account;
        assert_eq!(a.name_any(), "team-search-dev");
        assert_eq!(a.spec.account_name, "team-search-dev");
        assert_eq!(a.spec.email, "aws+team-search-dev@example.com");
        assert_eq!(a.spec.tags.get(CLAIM_TAG).unwrap(), "team-search/dev");
        assert_eq!(a.spec.tags.get("owner").unwrap(), "platform");
        assert!(owned_by(a.labels(), "AccountClaim", "team-search", "dev"));
        assert!(!owned_by(a.labels(), "AccountClaim", "team-search", "prod"));
        let b = got.budget.unwrap();
        assert_eq!(b.spec.limit.amount, "300");
        assert_eq!(b.spec.notifications.len(), 4);
        assert_eq!(
            b.spec.notifications[0].subscribers.emails,
            vec!["team-search@example.com", "platform@example.com"]
        );
        assert_eq!(got.assignments.len(), 1);
        assert_eq!(got.assignments[0].spec.group, "team-search");
        assert_eq!(got.assignments[0].spec.permission_set_ref.name, "developer");
        assert_eq!(got.missing_permission_sets, vec!["ReadOnly"]);

        // The platform team edits the class's templates: the claim's account keeps its name,
        // email and role (it was made with them); a new claim gets the new ones.
        let edited = class(json!({
            "emailTemplate": "new+{namespace}-{claim}@example.com",
            "accountNameTemplate": "new-{namespace}-{claim}",
            "roleName": "TeamAccess",
        }));
        let kept = compose_account(
            &edited,
            &cl,
            std::slice::from_ref(&dev),
            Some(&got.account.spec),
        );
        assert_eq!(kept.account.spec.email, "aws+team-search-dev@example.com");
        assert_eq!(kept.account.spec.account_name, "team-search-dev");
        assert_eq!(kept.account.spec.role_name, got.account.spec.role_name);
        assert_eq!(
            kept.budget.unwrap().spec.budget_name,
            "team-search-dev-monthly"
        );
        let new = compose_account(
            &edited,
            &claim("team-search", "qa", json!({}), "2026-12-05T10:00:00Z"),
            &[dev],
            None,
        );
        assert_eq!(new.account.spec.email, "new+team-search-qa@example.com");
        assert_eq!(new.account.spec.account_name, "new-team-search-qa");
        assert_eq!(new.account.spec.role_name, "TeamAccess");
    }

    #[test]
    fn an_access_claim_is_bounded_by_the_class() {
        let c = class(json!({}));
        let access = |ps: &str, duration: &str, group: &str| -> AccessClaim {
            object(
                json!({"apiVersion": "landingzone.dev/v1alpha1", "kind": "AccessClaim",
                "metadata": {"name": "inc", "namespace": "team-search"},
                "spec": {"accountClaimRef": {"name": "dev"}, "permissionSet": ps, "group": group, "duration": duration, "reason": "INC-1"}}),
            )
        };
        assert_eq!(
            check_access_claim(
                &c,
                &access("Administrator", "PT2H", "team-search-oncall"),
                &[]
            ),
            Ok(7200)
        );
        assert_eq!(
            check_access_claim(&c, &access("Administrator", "PT5H", "team-search"), &[])
                .unwrap_err()
                .reason,
            "DurationAboveClassMaximum"
        );
        assert_eq!(
            check_access_claim(&c, &access("Developer", "PT1H", "team-search"), &[])
                .unwrap_err()
                .reason,
            "PermissionSetNotAllowed"
        );
        assert_eq!(
            check_access_claim(&c, &access("Administrator", "PT1H", "team-payments"), &[])
                .unwrap_err()
                .reason,
            "GroupNotAllowed"
        );
        // team-search-oncall is a namespace of its own: its group is its own, not team-search's.
        let namespaces = ["team-search".to_string(), "team-search-oncall".to_string()];
        assert_eq!(
            check_access_claim(
                &c,
                &access("Administrator", "PT2H", "team-search-oncall"),
                &namespaces
            )
            .unwrap_err()
            .message,
            "group team-search-oncall belongs to namespace team-search-oncall: AccountClass nonprod's groupPattern matches it for both, and the namespace with the longer name owns it; use a group of your team"
        );
    }

    #[test]
    fn grants_are_counted_and_those_of_the_last_day_listed() {
        let at = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
        let mut status = crate::api::claims::AccessClaimStatus::default();
        record_grant(
            &mut status,
            at("2026-12-01T08:00:00Z"),
            "2026-12-01T09:00:00Z",
            "INC-1",
        );
        record_grant(
            &mut status,
            at("2026-12-02T07:00:00Z"),
            "2026-12-02T08:00:00Z",
            "INC-2",
        );
        record_grant(
            &mut status,
            at("2026-12-02T09:00:00Z"),
            "2026-12-02T10:00:00Z",
            "INC-2 again",
        );
        assert_eq!(status.grant_count, Some(3));
        // The first is more than a day before the third: counted, no longer listed.
        let reasons: Vec<&str> = status.grants.iter().map(|g| g.reason.as_str()).collect();
        assert_eq!(reasons, ["INC-2", "INC-2 again"]);
        assert_eq!(status.grants[1].granted_at, "2026-12-02T09:00:00Z");
        assert_eq!(status.grants[1].expires_at, "2026-12-02T10:00:00Z");
        assert_eq!(grants_in_last_day(&status, at("2026-12-02T10:00:00Z")), 2);
        assert_eq!(grants_in_last_day(&status, at("2026-12-03T07:30:00Z")), 1);
        assert_eq!(grants_in_last_day(&status, at("2026-12-04T00:00:00Z")), 0);
        // Renewed every minute for an hour: all counted, the newest 24 listed.
        let start = at("2026-12-05T00:00:00Z");
        for i in 0..60 {
            let now = start + k8s_openapi::jiff::SignedDuration::from_secs(60 * i);
            record_grant(&mut status, now, "2026-12-05T02:00:00Z", "again");
        }
        assert_eq!(status.grant_count, Some(63));
        assert_eq!(status.grants.len(), 24);
        assert_eq!(status.grants[23].granted_at, "2026-12-05T00:59:00Z");
    }

    #[test]
    fn an_account_claim_keeps_every_grant_of_the_day_whatever_its_access_claims_became() {
        use crate::api::claims::AccessGrant;
        let at = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
        let grant = |when: &str, why: &str| AccessGrant {
            granted_at: when.into(),
            expires_at: "2026-12-02T12:00:00Z".into(),
            reason: why.into(),
        };
        let of = |name: &str, grants: Vec<AccessGrant>| {
            (
                name.to_string(),
                "Administrator".to_string(),
                "team-a".to_string(),
                grants,
            )
        };
        let now = at("2026-12-02T10:00:00Z");
        // `inc` granted twice; then deleted and made again as `inc2`.
        let first = merge_access_grants(
            &[],
            &[of(
                "inc",
                vec![
                    grant("2026-12-02T08:00:00Z", "INC-1"),
                    grant("2026-12-02T09:00:00Z", "INC-1 again"),
                ],
            )],
            now,
        );
        assert_eq!(first.len(), 2);
        let later = merge_access_grants(
            &first,
            &[of(
                "inc2",
                vec![grant("2026-12-02T09:30:00Z", "INC-1, third time")],
            )],
            now,
        );
        let seen: Vec<(&str, &str)> = later
            .iter()
            .map(|r| (r.access_claim.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("inc", "INC-1"),
                ("inc", "INC-1 again"),
                ("inc2", "INC-1, third time")
            ],
            "a deleted access claim's grants stay in the record"
        );
        // Merging what is already recorded adds nothing.
        assert_eq!(
            merge_access_grants(
                &later,
                &[of(
                    "inc2",
                    vec![grant("2026-12-02T09:30:00Z", "INC-1, third time")]
                )],
                now
            ),
            later
        );
        // A day later, only what is younger than a day is left.
        let next_day = merge_access_grants(&later, &[], at("2026-12-03T09:15:00Z"));
        assert_eq!(next_day.len(), 1);
        assert_eq!(next_day[0].access_claim, "inc2");
        // At most 100 are listed: the newest.
        let many: Vec<AccessGrant> = (0..130)
            .map(|i| {
                grant(
                    &format!("2026-12-02T0{}:{:02}:{:02}Z", i / 60 % 10, i % 60, 0),
                    "x",
                )
            })
            .collect();
        let capped = merge_access_grants(&[], &[of("spam", many)], now);
        assert_eq!(capped.len(), 100);
        assert_eq!(capped[99].granted_at, "2026-12-02T02:09:00Z");
    }

    #[test]
    fn only_the_platform_teams_word_withdraws_access() {
        // (reason, the access the claim was given through the class goes)
        let cases = [
            ("ClassNotFound", true),
            ("NamespaceNotAllowed", true),
            ("GroupNotAllowed", true),
            ("GroupOfAnotherNamespace", true),
            ("BudgetAboveClassMaximum", false),
            ("TagNotAllowed", false),
            ("QuotaExceeded", false),
            ("PermissionSetNotFound", false),
            ("AccountNotClaimable", false),
        ];
        for (reason, withdraws) in cases {
            assert_eq!(withdraws_access(reason), withdraws, "{reason}");
        }
    }

    #[test]
    fn an_account_belongs_to_a_claim_only_under_its_own_class() {
        let tags = |claim: Option<&str>, class: Option<&str>| {
            let mut t = BTreeMap::new();
            if let Some(c) = claim {
                t.insert(CLAIM_TAG.to_string(), c.to_string());
            }
            if let Some(k) = class {
                t.insert(CLASS_TAG.to_string(), k.to_string());
            }
            t
        };
        // (tags, belongs, words the refusal names)
        let cases = [
            (tags(Some("team/app"), Some("prod")), None),
            (
                tags(Some("team/app"), Some("sandbox")),
                Some("under AccountClass sandbox and is kept by that class"),
            ),
            (
                tags(Some("team/app"), None),
                Some("no landingzone.dev/account-class tag"),
            ),
            (
                tags(Some("other/app"), Some("prod")),
                Some("not created by claim team/app (landingzone.dev/claim is other/app)"),
            ),
            (tags(None, None), Some("landingzone.dev/claim is absent")),
        ];
        for (t, want) in cases {
            let got = account_belongs_to_claim(&t, "team/app", "prod");
            match want {
                None => assert_eq!(got, Ok(()), "{t:?}"),
                Some(words) => assert!(got.as_ref().unwrap_err().contains(words), "{t:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_group_belongs_to_the_namespace_with_the_longest_matching_name() {
        let pattern = "^{namespace}(-[a-z0-9-]+)?$";
        let namespaces: Vec<String> = ["team-a", "team-a-b", "team-ab", "team-b"]
            .map(String::from)
            .to_vec();
        // (group, owner)
        let cases = [
            ("team-a", Some("team-a")),
            ("team-a-ops", Some("team-a")),
            ("team-a-b", Some("team-a-b")),
            ("team-a-b-ops", Some("team-a-b")),
            ("team-ab", Some("team-ab")),
            ("team-b-x", Some("team-b")),
            ("team-c", None),
            ("other", None),
        ];
        for (group, owner) in cases {
            assert_eq!(
                group_owner(pattern, &namespaces, group).unwrap(),
                owner,
                "{group}"
            );
        }
        // A namespace's own name is matched literally ("." is no wildcard).
        let dotted = ["a.b".to_string(), "axb-c".to_string()];
        assert_eq!(group_owner("^{namespace}$", &dotted, "axb").unwrap(), None);
        // Through the claim: team-a may name its own groups, not team-a-b's.
        let c = class(json!({}));
        let claim_of = |ns: &str, group: &str| {
            claim(
                ns,
                "dev",
                json!({"ownerGroup": group}),
                "2026-12-05T10:00:00Z",
            )
        };
        let check = |ns: &str, group: &str| {
            check_account_claim(&c, &claim_of(ns, group), &selected(), &namespaces)
                .err()
                .map(|r| r.reason)
        };
        assert_eq!(check("team-a", "team-a-ops"), None);
        assert_eq!(check("team-a", "team-a-b"), Some("GroupOfAnotherNamespace"));
        assert_eq!(
            check("team-a", "team-a-b-ops"),
            Some("GroupOfAnotherNamespace")
        );
        assert_eq!(check("team-a-b", "team-a-b-ops"), None);
    }
}
