//! Organization planning: additive by default, in the order AWS needs (trusted access before
//! delegated administration and root access), removals only when the spec says so.

use crate::api::Drift;
use crate::reconcile::Error;
use std::collections::{BTreeMap, BTreeSet};

/// IAM's service principal: trusted access for it comes before centralized root access.
pub const IAM_PRINCIPAL: &str = "iam.amazonaws.com";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// AWS names (`SERVICE_CONTROL_POLICY`, …).
    pub policy_types: BTreeSet<String>,
    /// Types the confirmation annotation allows disabling.
    pub confirmed_disable: BTreeSet<String>,
    pub trusted: BTreeSet<String>,
    pub trusted_exclusive: bool,
    /// (service principal, account id).
    pub delegated: BTreeSet<(String, String)>,
    /// Delegated administrators a service registers itself (GuardDuty, Security Hub through
    /// their own API): expected, never registered through Organizations here.
    pub delegated_by_service: BTreeSet<(String, String)>,
    pub delegated_exclusive: bool,
    pub root_credentials_management: bool,
    pub root_sessions: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub feature_set: String,
    pub root_id: String,
    /// Type → status on the root.
    pub policy_types: BTreeMap<String, String>,
    pub trusted: BTreeSet<String>,
    pub delegated: BTreeSet<(String, String)>,
    pub root_features: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    EnableServiceAccess(String),
    EnablePolicyType(String),
    Register(String, String),
    EnableRootCredentialsManagement,
    EnableRootSessions,
    DisableServiceAccess(String),
    Deregister(String, String),
    DisablePolicyType(String),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::EnableServiceAccess(p) => write!(f, "enable trusted access for {p}"),
            Action::EnablePolicyType(t) => write!(f, "enable policy type {t}"),
            Action::Register(p, a) => write!(f, "register {a} as delegated administrator for {p}"),
            Action::EnableRootCredentialsManagement => {
                write!(f, "enable central root credentials management")
            }
            Action::EnableRootSessions => write!(f, "enable privileged root sessions"),
            Action::DisableServiceAccess(p) => write!(f, "disable trusted access for {p}"),
            Action::Deregister(p, a) => {
                write!(f, "deregister {a} as delegated administrator for {p}")
            }
            Action::DisablePolicyType(t) => write!(f, "disable policy type {t}"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
    /// Delegated administrators and trusted services in AWS that the spec does not list: a known
    /// way to take over an Organization, so each is a Warning (and a gauge).
    pub unexpected_administrators: Vec<(String, String)>,
    pub unexpected_services: Vec<String>,
    /// Types enabled in AWS, not listed, and not confirmed for disabling.
    pub unconfirmed_disable: Vec<String>,
}

pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, Error> {
    if observed.feature_set != "ALL" {
        return Err(Error::conflict(
            "AllFeaturesRequired",
            format!(
                "the Organization has feature set {:?}, not ALL: policies, trusted access, delegated administrators and root access all need all features. Enable all features in the AWS Organizations console (every invited account must approve)",
                observed.feature_set
            ),
        ));
    }
    let mut plan = Plan::default();
    let mut trusted = desired.trusted.clone();
    if desired.root_credentials_management || desired.root_sessions {
        trusted.insert(IAM_PRINCIPAL.to_string());
    }
    // 1. Trusted access: everything else builds on it.
    for p in trusted.difference(&observed.trusted) {
        plan.drift.push(Drift::new(format!("trustedServices.{p}"), "enabled", "disabled"));
        plan.actions.push(Action::EnableServiceAccess(p.clone()));
    }
    // 2. Policy types.
    for t in &desired.policy_types {
        match observed.policy_types.get(t).map(String::as_str) {
            Some("ENABLED") | Some("PENDING_ENABLE") => {}
            other => {
                plan.drift.push(Drift::new(
                    format!("policyTypes.{t}"),
                    "ENABLED",
                    other.unwrap_or("disabled"),
                ));
                plan.actions.push(Action::EnablePolicyType(t.clone()));
            }
        }
    }
    // 3. Delegated administrators.
    for (p, a) in desired.delegated.difference(&observed.delegated) {
        plan.drift.push(Drift::new(
            format!("delegatedAdministrators.{p}"),
            a,
            observed
                .delegated
                .iter()
                .find(|(op, _)| op == p)
                .map_or("none".to_string(), |(_, oa)| oa.clone()),
        ));
        plan.actions.push(Action::Register(p.clone(), a.clone()));
    }
    // 4. Root access, after IAM's trusted access.
    if desired.root_credentials_management
        && !observed.root_features.contains("RootCredentialsManagement")
    {
        plan.drift.push(Drift::new("rootAccess.credentialsManagement", "true", "false"));
        plan.actions.push(Action::EnableRootCredentialsManagement);
    }
    if desired.root_sessions && !observed.root_features.contains("RootSessions") {
        plan.drift.push(Drift::new("rootAccess.rootSessions", "true", "false"));
        plan.actions.push(Action::EnableRootSessions);
    }
    // Removals: only what the spec asks for.
    for p in observed.trusted.difference(&trusted) {
        plan.drift.push(Drift::new(format!("trustedServices.{p}"), "not listed", "enabled"));
        if desired.trusted_exclusive {
            plan.actions.push(Action::DisableServiceAccess(p.clone()));
        } else {
            plan.unexpected_services.push(p.clone());
        }
    }
    for (p, a) in observed
        .delegated
        .difference(&desired.delegated)
        .filter(|pa| !desired.delegated_by_service.contains(*pa))
    {
        plan.drift.push(Drift::new(
            format!("delegatedAdministrators.{p}.{a}"),
            "not listed",
            "registered",
        ));
        if desired.delegated_exclusive {
            plan.actions.push(Action::Deregister(p.clone(), a.clone()));
        } else {
            plan.unexpected_administrators.push((p.clone(), a.clone()));
        }
    }
    for (t, status) in &observed.policy_types {
        if desired.policy_types.contains(t) || status != "ENABLED" {
            continue;
        }
        plan.drift.push(Drift::new(format!("policyTypes.{t}"), "not listed", "ENABLED"));
        if desired.confirmed_disable.contains(t) {
            plan.actions.push(Action::DisablePolicyType(t.clone()));
        } else {
            plan.unconfirmed_disable.push(t.clone());
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn observed() -> Observed {
        Observed {
            feature_set: "ALL".into(),
            root_id: "r-1".into(),
            policy_types: [("SERVICE_CONTROL_POLICY".to_string(), "ENABLED".to_string())].into(),
            trusted: set(&["cloudtrail.amazonaws.com"]),
            ..Default::default()
        }
    }

    fn actions(p: &Plan) -> Vec<String> {
        p.actions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn order_aws_needs_and_additive_by_default() {
        let d = Desired {
            policy_types: set(&["SERVICE_CONTROL_POLICY", "TAG_POLICY"]),
            trusted: set(&["cloudtrail.amazonaws.com", "guardduty.amazonaws.com"]),
            delegated: [("guardduty.amazonaws.com".to_string(), "222222222222".to_string())].into(),
            root_credentials_management: true,
            root_sessions: true,
            ..Default::default()
        };
        let p = plan(&d, &observed()).unwrap();
        assert_eq!(
            actions(&p),
            vec![
                "enable trusted access for guardduty.amazonaws.com",
                "enable trusted access for iam.amazonaws.com",
                "enable policy type TAG_POLICY",
                "register 222222222222 as delegated administrator for guardduty.amazonaws.com",
                "enable central root credentials management",
                "enable privileged root sessions",
            ]
        );

        // Out of band: an administrator and a trusted service the spec does not list are
        // reported (and warned about), not removed; a type not listed stays without confirmation.
        let mut o = observed();
        o.trusted.insert("ram.amazonaws.com".into());
        o.delegated.insert(("macie.amazonaws.com".into(), "333333333333".into()));
        o.policy_types.insert("TAG_POLICY".into(), "ENABLED".into());
        let d = Desired {
            policy_types: set(&["SERVICE_CONTROL_POLICY"]),
            trusted: set(&["cloudtrail.amazonaws.com"]),
            ..Default::default()
        };
        let p = plan(&d, &o).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.unexpected_administrators, vec![("macie.amazonaws.com".to_string(), "333333333333".to_string())]);
        assert_eq!(p.unexpected_services, vec!["ram.amazonaws.com".to_string()]);
        assert_eq!(p.unconfirmed_disable, vec!["TAG_POLICY".to_string()]);
        assert_eq!(p.drift.len(), 3);

        // Exclusive lists and the confirmation annotation: removed.
        let d = Desired {
            confirmed_disable: set(&["TAG_POLICY"]),
            trusted_exclusive: true,
            delegated_exclusive: true,
            ..d
        };
        assert_eq!(
            actions(&plan(&d, &o).unwrap()),
            vec![
                "disable trusted access for ram.amazonaws.com",
                "deregister 333333333333 as delegated administrator for macie.amazonaws.com",
                "disable policy type TAG_POLICY",
            ]
        );
    }

    #[test]
    fn consolidated_billing_only_is_said_plainly() {
        let mut o = observed();
        o.feature_set = "CONSOLIDATED_BILLING".into();
        let e = plan(&Desired::default(), &o).unwrap_err();
        assert_eq!(e.reason(), "AllFeaturesRequired");
        assert!(e.to_string().contains("Enable all features"), "{e}");
    }
}
