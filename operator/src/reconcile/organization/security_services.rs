//! `Organization.spec.securityServices` (pure): GuardDuty, Security Hub and IAM Access Analyzer
//! for the whole Organization, in the order AWS needs them. Trusted access (and, for Access
//! Analyzer, the delegated administrator) are the Organization plan's; after them, per region:
//!
//! 1. from the management account, the service's own delegated administrator (GuardDuty and
//!    Security Hub register it through their `EnableOrganizationAdminAccount`);
//! 2. from the administrator account, the service on there (detector, hub, standards), then its
//!    organization configuration (auto-enable), the members auto-enable does not reach (the
//!    management account; for Security Hub, the accounts there before auto-enable), and the
//!    ORGANIZATION analyzer.
//!
//! Nothing is ever disabled or removed. An account AWS has not enrolled yet, though it will, is
//! `pending`, not an error.

use crate::api::Drift;
use crate::api::organization::{AutoEnable, SecurityServiceStatus};
use crate::aws::security_services::Members;
use std::collections::{BTreeMap, BTreeSet};

pub const GUARDDUTY_PRINCIPAL: &str = "guardduty.amazonaws.com";
pub const SECURITYHUB_PRINCIPAL: &str = "securityhub.amazonaws.com";
pub const ACCESS_ANALYZER_PRINCIPAL: &str = "access-analyzer.amazonaws.com";

/// Accounts listed per service and region in status (the counts say how many in all).
const LISTED: usize = 10;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub administrator: String,
    pub management: String,
    pub regions: Vec<String>,
    pub guardduty: Option<AutoEnable>,
    /// Auto-enable, and the standards' ARNs per region.
    pub securityhub: Option<(AutoEnable, BTreeMap<String, Vec<String>>)>,
    pub analyzer: Option<String>,
    /// Every ACTIVE account but the administrator: what the services must cover, with its email.
    pub accounts: BTreeMap<String, String>,
}

/// The administrator account's view of one region.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdminObserved {
    pub detector: Option<String>,
    /// `ALL`, `NEW`, `NONE`.
    pub guardduty_auto: Option<String>,
    pub guardduty_members: Members,
    pub hub: bool,
    pub hub_auto: Option<(bool, String)>,
    pub standards: BTreeSet<String>,
    pub hub_members: Members,
    /// ORGANIZATION analyzers: name → status.
    pub analyzers: BTreeMap<String, String>,
}

/// Step 1's actions, from the management account: a service's delegated administrator, in a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delegate {
    GuardDuty(String),
    SecurityHub(String),
}

impl Delegate {
    pub fn region(&self) -> &str {
        match self {
            Delegate::GuardDuty(r) | Delegate::SecurityHub(r) => r,
        }
    }
}

impl std::fmt::Display for Delegate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delegate::GuardDuty(r) => write!(f, "make the administrator GuardDuty's delegated administrator in {r}"),
            Delegate::SecurityHub(r) => write!(f, "make the administrator Security Hub's delegated administrator in {r}"),
        }
    }
}

/// Step 2's actions, from the administrator account, in a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateDetector(String),
    SetGuardDutyAutoEnable(String, String),
    AddGuardDutyMembers(String, Vec<String>),
    EnableHub(String),
    SetHubAutoEnable(String, bool, String),
    EnableStandards(String, Vec<String>),
    AddHubMembers(String, Vec<String>),
    CreateAnalyzer(String, String),
}

impl Action {
    pub fn region(&self) -> &str {
        match self {
            Action::CreateDetector(r)
            | Action::SetGuardDutyAutoEnable(r, _)
            | Action::AddGuardDutyMembers(r, _)
            | Action::EnableHub(r)
            | Action::SetHubAutoEnable(r, ..)
            | Action::EnableStandards(r, _)
            | Action::AddHubMembers(r, _)
            | Action::CreateAnalyzer(r, _) => r,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateDetector(r) => write!(f, "turn GuardDuty on in the administrator account in {r}"),
            Action::SetGuardDutyAutoEnable(r, v) => write!(f, "set GuardDuty to enable {} in {r}", auto_words(v)),
            Action::AddGuardDutyMembers(r, a) => write!(f, "add {} account(s) to GuardDuty in {r} ({})", a.len(), listed(a)),
            Action::EnableHub(r) => write!(f, "turn Security Hub on in the administrator account in {r}"),
            Action::SetHubAutoEnable(r, on, s) => write!(
                f,
                "set Security Hub to {} new accounts (standards {}) in {r}",
                if *on { "enable" } else { "not enable" },
                s.to_lowercase()
            ),
            Action::EnableStandards(r, s) => write!(
                f,
                "enable the standard(s) {} in {r}",
                s.iter().map(|a| standard_name(a)).collect::<Vec<_>>().join(", ")
            ),
            Action::AddHubMembers(r, a) => write!(f, "add {} account(s) to Security Hub in {r} ({})", a.len(), listed(a)),
            Action::CreateAnalyzer(r, n) => write!(f, "create the organization analyzer {n} in {r}"),
        }
    }
}

fn auto_words(v: &str) -> &'static str {
    match v {
        "ALL" => "every account",
        "NEW" => "new accounts",
        _ => "no account by itself",
    }
}

fn listed(accounts: &[String]) -> String {
    let mut out = accounts.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if accounts.len() > 5 {
        out.push_str(&format!(", … {} more", accounts.len() - 5));
    }
    out
}

/// `…/cis-aws-foundations-benchmark/v/5.0.0` → `cis-aws-foundations-benchmark v5.0.0`.
fn standard_name(arn: &str) -> String {
    let tail: Vec<&str> = arn.rsplit('/').take(3).collect();
    match tail.as_slice() {
        [version, "v", name] => format!("{name} v{version}"),
        _ => arn.to_string(),
    }
}

pub fn guardduty_value(a: AutoEnable) -> &'static str {
    match a {
        AutoEnable::AllAccounts => "ALL",
        AutoEnable::NewAccounts => "NEW",
        AutoEnable::None => "NONE",
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan<A = Action> {
    pub actions: Vec<A>,
    pub drift: Vec<Drift>,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Plan {
            actions: Vec::new(),
            drift: Vec::new(),
        }
    }
}

/// Step 1, from the management account: each service's delegated administrator, per region.
pub fn plan_management(
    d: &Desired,
    guardduty_admins: &BTreeMap<String, Vec<String>>,
    securityhub_admins: &BTreeMap<String, Vec<String>>,
) -> Plan<Delegate> {
    let mut out = Plan::default();
    for region in &d.regions {
        let mut admin = |service: &str, admins: &BTreeMap<String, Vec<String>>, action: Delegate| {
            let have = admins.get(region).cloned().unwrap_or_default();
            if !have.contains(&d.administrator) {
                if !have.is_empty() {
                    out.drift.push(Drift::new(
                        format!("securityServices.{service}.{region}.administrator"),
                        &d.administrator,
                        have.join(","),
                    ));
                }
                out.actions.push(action);
            }
        };
        if d.guardduty.is_some() {
            admin("guardDuty", guardduty_admins, Delegate::GuardDuty(region.clone()));
        }
        if d.securityhub.is_some() {
            admin("securityHub", securityhub_admins, Delegate::SecurityHub(region.clone()));
        }
    }
    out
}

/// Step 2, from the administrator account, one region.
pub fn plan_admin(d: &Desired, region: &str, o: &AdminObserved) -> Plan {
    let mut out = Plan::default();
    if let Some(auto) = d.guardduty {
        let want = guardduty_value(auto).to_string();
        if o.detector.is_none() {
            out.actions.push(Action::CreateDetector(region.into()));
        }
        if o.guardduty_auto.as_ref() != Some(&want) {
            if let Some(have) = &o.guardduty_auto {
                out.drift.push(Drift::new(format!("securityServices.guardDuty.{region}.autoEnable"), &want, have));
            }
            out.actions.push(Action::SetGuardDutyAutoEnable(region.into(), want));
        }
        // Auto-enable does not reach the management account: the administrator adds it.
        if auto == AutoEnable::AllAccounts
            && d.accounts.contains_key(&d.management)
            && !o.guardduty_members.contains_key(&d.management)
        {
            out.actions.push(Action::AddGuardDutyMembers(region.into(), vec![d.management.clone()]));
        }
    }
    if let Some((auto, standards)) = &d.securityhub {
        if !o.hub {
            out.actions.push(Action::EnableHub(region.into()));
        }
        let want = (
            *auto != AutoEnable::None,
            if *auto == AutoEnable::None { "NONE" } else { "DEFAULT" }.to_string(),
        );
        if o.hub_auto.as_ref() != Some(&want) {
            if let Some(have) = &o.hub_auto {
                out.drift.push(Drift::new(
                    format!("securityHub.{region}.autoEnable"),
                    format!("{} ({})", want.0, want.1),
                    format!("{} ({})", have.0, have.1),
                ));
            }
            out.actions.push(Action::SetHubAutoEnable(region.into(), want.0, want.1));
        }
        let missing: Vec<String> = standards
            .get(region)
            .into_iter()
            .flatten()
            .filter(|s| !o.standards.contains(*s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            if o.hub {
                for s in &missing {
                    out.drift.push(Drift::new(format!("securityHub.{region}.standards"), standard_name(s), "not enabled"));
                }
            }
            out.actions.push(Action::EnableStandards(region.into(), missing));
        }
        // Security Hub's auto-enable reaches new accounts only: those already there are added.
        if *auto == AutoEnable::AllAccounts {
            let add: Vec<String> = d
                .accounts
                .keys()
                .filter(|a| !o.hub_members.contains_key(*a))
                .cloned()
                .collect();
            if !add.is_empty() {
                out.actions.push(Action::AddHubMembers(region.into(), add));
            }
        }
    }
    if let Some(name) = &d.analyzer
        && !o.analyzers.contains_key(name)
    {
        if !o.analyzers.is_empty() || o.detector.is_some() || o.hub {
            out.drift.push(Drift::new(format!("accessAnalyzer.{region}.{name}"), "ACTIVE", "missing"));
        }
        out.actions.push(Action::CreateAnalyzer(region.into(), name.clone()));
    }
    out
}

/// What each service covers in a region, for status and the gauges.
pub fn status(d: &Desired, region: &str, gd_admins: &[String], sh_admins: &[String], o: &AdminObserved) -> Vec<SecurityServiceStatus> {
    let mut out = Vec::new();
    let coverage = |service: &str, admins: &[String], enabled: bool, members: &Members, auto: AutoEnable| {
        let mut s = SecurityServiceStatus {
            service: service.into(),
            region: region.into(),
            enabled,
            administrator: admins.first().cloned(),
            ..Default::default()
        };
        for account in d.accounts.keys() {
            match members.get(account).map(String::as_str) {
                Some("Enabled") => s.enrolled += 1,
                // Asked for (CreateMembers) or promised by auto-enable: AWS's to finish.
                Some(_) => s.pending += 1,
                None if auto == AutoEnable::AllAccounts => s.pending += 1,
                None => s.not_enrolled += 1,
            }
            if members.get(account).map(String::as_str) != Some("Enabled") && s.accounts_without.len() < LISTED {
                s.accounts_without.push(account.clone());
            }
        }
        s
    };
    if let Some(auto) = d.guardduty {
        out.push(coverage("GuardDuty", gd_admins, o.detector.is_some(), &o.guardduty_members, auto));
    }
    if let Some((auto, _)) = &d.securityhub {
        out.push(coverage("SecurityHub", sh_admins, o.hub, &o.hub_members, *auto));
    }
    if let Some(name) = &d.analyzer {
        let active = o.analyzers.get(name).is_some_and(|s| s == "ACTIVE");
        out.push(SecurityServiceStatus {
            service: "AccessAnalyzer".into(),
            region: region.into(),
            enabled: active,
            administrator: Some(d.administrator.clone()),
            // An organization analyzer watches every account of the Organization.
            enrolled: if active { d.accounts.len() as u32 } else { 0 },
            pending: 0,
            not_enrolled: if active { 0 } else { d.accounts.len() as u32 },
            accounts_without: if active {
                vec![]
            } else {
                d.accounts.keys().take(LISTED).cloned().collect()
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "222222222222";
    const MGMT: &str = "111111111111";

    fn desired() -> Desired {
        let std = |r: &str| {
            vec![
                format!("arn:aws:securityhub:{r}::standards/cis-aws-foundations-benchmark/v/5.0.0"),
                format!("arn:aws:securityhub:{r}::standards/aws-foundational-security-best-practices/v/1.0.0"),
            ]
        };
        Desired {
            administrator: ADMIN.into(),
            management: MGMT.into(),
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            guardduty: Some(AutoEnable::AllAccounts),
            securityhub: Some((
                AutoEnable::AllAccounts,
                [("us-east-1".to_string(), std("us-east-1")), ("eu-west-1".to_string(), std("eu-west-1"))].into(),
            )),
            analyzer: Some("organization".into()),
            accounts: [
                (MGMT.to_string(), "root@example.com".to_string()),
                ("333333333333".to_string(), "dev@example.com".to_string()),
                ("444444444444".to_string(), "prod@example.com".to_string()),
            ]
            .into(),
        }
    }

    fn names<A: std::fmt::Display>(p: &Plan<A>) -> Vec<String> {
        p.actions.iter().map(ToString::to_string).collect()
    }

    fn converged(d: &Desired, region: &str) -> AdminObserved {
        let all: Members = d.accounts.keys().map(|a| (a.clone(), "Enabled".to_string())).collect();
        AdminObserved {
            detector: Some("d-1".into()),
            guardduty_auto: Some("ALL".into()),
            guardduty_members: all.clone(),
            hub: true,
            hub_auto: Some((true, "DEFAULT".into())),
            standards: d.securityhub.as_ref().unwrap().1[region].iter().cloned().collect(),
            hub_members: all,
            analyzers: [("organization".to_string(), "ACTIVE".to_string())].into(),
        }
    }

    #[test]
    fn administrators_first_from_the_management_account() {
        let d = desired();
        let p = plan_management(&d, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(
            names(&p),
            vec![
                "make the administrator GuardDuty's delegated administrator in us-east-1",
                "make the administrator Security Hub's delegated administrator in us-east-1",
                "make the administrator GuardDuty's delegated administrator in eu-west-1",
                "make the administrator Security Hub's delegated administrator in eu-west-1",
            ]
        );
        assert!(p.drift.is_empty());
        let both: BTreeMap<String, Vec<String>> =
            d.regions.iter().map(|r| (r.clone(), vec![ADMIN.to_string()])).collect();
        assert!(plan_management(&d, &both, &both).actions.is_empty());
        // Another account administers GuardDuty in one region: drift, and ours is named.
        let mut other = both.clone();
        other.insert("eu-west-1".into(), vec!["999999999999".into()]);
        let p = plan_management(&d, &other, &both);
        assert_eq!(p.drift[0].field, "securityServices.guardDuty.eu-west-1.administrator");
        assert_eq!(p.actions.len(), 1);
    }

    #[test]
    fn from_nothing_in_the_administrator_account() {
        let d = desired();
        let p = plan_admin(&d, "us-east-1", &AdminObserved::default());
        assert_eq!(
            names(&p),
            vec![
                "turn GuardDuty on in the administrator account in us-east-1",
                "set GuardDuty to enable every account in us-east-1",
                "add 1 account(s) to GuardDuty in us-east-1 (111111111111)",
                "turn Security Hub on in the administrator account in us-east-1",
                "set Security Hub to enable new accounts (standards default) in us-east-1",
                "enable the standard(s) cis-aws-foundations-benchmark v5.0.0, aws-foundational-security-best-practices v1.0.0 in us-east-1",
                "add 3 account(s) to Security Hub in us-east-1 (111111111111, 333333333333, 444444444444)",
                "create the organization analyzer organization in us-east-1",
            ]
        );
        assert!(p.drift.is_empty(), "nothing was there to drift: {:?}", p.drift);
    }

    #[test]
    fn converged_plans_nothing_and_pending_accounts_are_not_errors() {
        let d = desired();
        let o = converged(&d, "eu-west-1");
        assert!(plan_admin(&d, "eu-west-1", &o).actions.is_empty());
        // A new account GuardDuty has not enrolled yet: pending, nothing to do.
        let mut d2 = d.clone();
        d2.accounts.insert("555555555555".into(), "new@example.com".into());
        let p = plan_admin(&d2, "eu-west-1", &o);
        assert_eq!(names(&p), vec!["add 1 account(s) to Security Hub in eu-west-1 (555555555555)"]);
        let s = status(&d2, "eu-west-1", &[ADMIN.into()], &[ADMIN.into()], &o);
        assert_eq!((s[0].service.as_str(), s[0].enrolled, s[0].pending, s[0].not_enrolled), ("GuardDuty", 3, 1, 0));
        assert_eq!(s[0].accounts_without, vec!["555555555555".to_string()]);
        assert_eq!((s[2].service.as_str(), s[2].enrolled), ("AccessAnalyzer", 4));
    }

    #[test]
    fn hand_changes_are_drift_and_nothing_is_turned_off() {
        let mut d = desired();
        let mut o = converged(&d, "us-east-1");
        o.guardduty_auto = Some("NONE".into());
        o.hub_auto = Some((false, "NONE".into()));
        o.standards.clear();
        o.analyzers.clear();
        let p = plan_admin(&d, "us-east-1", &o);
        assert_eq!(
            p.drift.iter().map(|x| x.field.as_str()).collect::<Vec<_>>(),
            vec![
                "securityServices.guardDuty.us-east-1.autoEnable",
                "securityHub.us-east-1.autoEnable",
                "securityHub.us-east-1.standards",
                "securityHub.us-east-1.standards",
                "accessAnalyzer.us-east-1.organization",
            ]
        );
        // New accounts only: existing ones are not enrolled, and say so.
        d.guardduty = Some(AutoEnable::NewAccounts);
        let mut o = converged(&d, "us-east-1");
        o.guardduty_auto = Some("NEW".into());
        o.guardduty_members.remove("444444444444");
        assert!(plan_admin(&d, "us-east-1", &o).actions.is_empty());
        let s = status(&d, "us-east-1", &[ADMIN.into()], &[ADMIN.into()], &o);
        assert_eq!((s[0].enrolled, s[0].pending, s[0].not_enrolled), (2, 0, 1));
    }
}
