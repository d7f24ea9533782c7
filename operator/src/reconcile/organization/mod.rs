//! Organization: its policy types, trusted services, delegated administrators and centralized
//! root access. Additive by default; removals only through `…Exclusive` (and, for policy types,
//! the confirmation annotation).
//!
//! Reads per resync: DescribeOrganization (feature set), ListAWSServiceAccessForOrganization,
//! ListDelegatedAdministrators and ListDelegatedServicesForAccount per administrator account,
//! iam:ListOrganizationsFeatures (only when root access is in the spec); the policy types come from
//! the snapshot's ListRoots.

pub mod aws;
pub mod change_events;
pub mod plan;
pub mod security_services;

use self::aws::Settings;
use self::plan::{Action, Desired, Observed};
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness, Resource};
use crate::api::organization::{CONFIRM_DISABLE_ANNOTATION, ChangeEventsSpec, ChangeEventsStatus};
use crate::api::organization_policy::PolicyType;
use crate::api::{ManagementPolicy, Organization};
use std::collections::BTreeSet;

/// The one Organization resource's key (other kinds wait for it when it exists).
pub fn key() -> Key {
    Key::new(Kind::Organization, "organization")
}


fn policy_type_named(name: &str) -> Option<PolicyType> {
    PolicyType::ALL
        .into_iter()
        .find(|t| format!("{t:?}") == name || t.aws() == name)
}

fn desired(org: &Organization, pass: &Pass) -> Result<Desired, Error> {
    let s = &org.spec;
    let mut delegated = BTreeSet::new();
    for d in &s.delegated_administrators {
        let account = match (&d.account_ref, &d.account_id) {
            (Some(r), _) => pass.resolve(&Key::new(Kind::AwsAccount, &r.name))?,
            (None, Some(id)) => id.clone(),
            (None, None) => {
                return Err(Error::InvalidSpec {
                    message: format!("delegatedAdministrators: {} names no account", d.service_principal),
                });
            }
        };
        delegated.insert((d.service_principal.clone(), account));
    }
    let confirmed = org
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIRM_DISABLE_ANNOTATION))
        .map(|v| {
            v.split(',')
                .filter_map(|t| policy_type_named(t.trim()))
                .map(|t| t.aws().to_string())
                .collect()
        })
        .unwrap_or_default();
    let root = s.root_access.clone().unwrap_or_default();
    let mut trusted: BTreeSet<String> = s.trusted_services.iter().cloned().collect();
    let mut delegated_by_service = BTreeSet::new();
    if let Some(services) = &s.security_services {
        use security_services::*;
        let admin = administrator(services, pass)?;
        if services.guard_duty.is_some() {
            trusted.insert(GUARDDUTY_PRINCIPAL.into());
            delegated_by_service.insert((GUARDDUTY_PRINCIPAL.to_string(), admin.clone()));
        }
        if services.security_hub.is_some() {
            trusted.insert(SECURITYHUB_PRINCIPAL.into());
            delegated_by_service.insert((SECURITYHUB_PRINCIPAL.to_string(), admin.clone()));
        }
        if services.access_analyzer.is_some() {
            // Access Analyzer's administrator is registered through Organizations.
            trusted.insert(ACCESS_ANALYZER_PRINCIPAL.into());
            delegated.insert((ACCESS_ANALYZER_PRINCIPAL.to_string(), admin));
        }
    }
    Ok(Desired {
        policy_types: s.policy_types.iter().map(|t| t.aws().to_string()).collect(),
        confirmed_disable: confirmed,
        trusted,
        trusted_exclusive: s.trusted_services_exclusive,
        delegated,
        delegated_by_service,
        delegated_exclusive: s.delegated_administrators_exclusive,
        root_credentials_management: root.credentials_management,
        root_sessions: root.root_sessions,
    })
}

/// The account that administers the security services.
fn administrator(
    services: &crate::api::organization::SecurityServices,
    pass: &Pass,
) -> Result<String, Error> {
    match (&services.administrator_account_ref, &services.administrator_account_id) {
        (Some(r), _) => pass.resolve(&Key::new(Kind::AwsAccount, &r.name)),
        (None, Some(id)) => Ok(id.clone()),
        (None, None) => Err(Error::InvalidSpec {
            message: "securityServices names no administrator account".into(),
        }),
    }
}

pub async fn reconcile(resource: &mut Organization, pass: &mut Pass) -> Result<Progress, Error> {
    let org = resource;
    let desired = desired(org, pass)?;
    let wants_root_access = org.spec.root_access.is_some();
    let policy = org.spec.management_policy;
    let pipeline = org.spec.change_events.clone();
    let services = org.spec.security_services.clone();
    let status = org.status.get_or_insert_with(Default::default);
    let settings = Settings::new(&pass.aws);
    let observed = Observed {
        feature_set: settings.feature_set().await?,
        root_id: pass.snapshot.root_id.clone(),
        policy_types: pass.snapshot.root.policy_types.clone(),
        trusted: pass.aws.organizations.list_service_access().await?.into_iter().collect(),
        delegated: settings.delegated_administrators().await?.into_iter().collect(),
        root_features: if wants_root_access {
            settings.root_access_features().await?.into_iter().collect()
        } else {
            BTreeSet::new()
        },
    };
    if let Some(info) = &pass.snapshot.org {
        status.id = Some(info.id.clone());
        status.arn = Some(info.arn.clone());
        status.management_account_id = Some(info.management_account_id.clone());
    }
    status.partition = Some(pass.snapshot.partition().to_string());
    status.feature_set = Some(observed.feature_set.clone());
    let plan = plan::plan(&desired, &observed)?;
    let write = pass.mode == Mode::Apply && policy == ManagementPolicy::Manage;
    let mut progress = Progress {
        actions: if write || pass.mode == Mode::Plan {
            plan.actions.iter().map(ToString::to_string).collect()
        } else {
            Vec::new()
        },
        writes: 0,
        drift: plan.drift.clone(),
        remaining: if write {
            plan.drift
                .iter()
                .filter(|d| {
                    // What the plan leaves alone stays drift.
                    plan.unexpected_administrators.iter().any(|(p, a)| d.field == format!("delegatedAdministrators.{p}.{a}"))
                        || plan.unexpected_services.iter().any(|p| d.field == format!("trustedServices.{p}"))
                        || plan.unconfirmed_disable.iter().any(|t| d.field == format!("policyTypes.{t}"))
                })
                .cloned()
                .collect()
        } else {
            plan.drift.clone()
        },
        ready: Readiness::Ready {
            reason: "Available",
            message: "the Organization's settings match the spec".into(),
        },
    };
    let mut trusted = observed.trusted.clone();
    let mut delegated = observed.delegated.clone();
    let mut types = observed.policy_types.clone();
    let mut features = observed.root_features.clone();
    if write {
        for action in &plan.actions {
            apply(&settings, pass, action, &observed.root_id).await?;
            progress.writes += 1;
            match action {
                Action::EnableServiceAccess(p) => {
                    trusted.insert(p.clone());
                }
                Action::DisableServiceAccess(p) => {
                    trusted.remove(p);
                }
                Action::EnablePolicyType(t) => {
                    types.insert(t.clone(), "ENABLED".into());
                    pass.snapshot_mut().root.policy_types.insert(t.clone(), "ENABLED".into());
                }
                Action::DisablePolicyType(t) => {
                    types.remove(t);
                    pass.snapshot_mut().root.policy_types.remove(t);
                }
                Action::Register(p, a) => {
                    delegated.insert((p.clone(), a.clone()));
                }
                Action::Deregister(p, a) => {
                    delegated.remove(&(p.clone(), a.clone()));
                }
                Action::EnableRootCredentialsManagement => {
                    features.insert("RootCredentialsManagement".into());
                }
                Action::EnableRootSessions => {
                    features.insert("RootSessions".into());
                }
            }
        }
    }
    status.trusted_services = trusted.into_iter().collect();
    status.delegated_administrators = delegated.iter().map(|(p, a)| format!("{p}={a}")).collect();
    status.enabled_policy_types = types
        .iter()
        .filter(|(_, s)| *s == "ENABLED")
        .map(|(t, _)| t.clone())
        .collect();
    status.root_access_features = features.into_iter().collect();
    status.unexpected_delegated_administrators = plan
        .unexpected_administrators
        .iter()
        .map(|(p, a)| format!("{p}={a}"))
        .collect();
    status.unexpected_trusted_services = plan.unexpected_services.clone();
    if let Some(spec) = &pipeline {
        change_event_pipeline(spec, pass, write, &mut progress, status).await?;
    }
    match &services {
        Some(spec) => security_services_pass(spec, pass, write, &mut progress, status).await?,
        None => status.security_services.clear(),
    }
    if !plan.unexpected_administrators.is_empty() {
        progress.ready = Readiness::Ready {
            reason: "UnexpectedDelegatedAdministrator",
            message: format!(
                "delegated administrators the spec does not list: {} — registering one is a known way to take over an Organization; list it, or set delegatedAdministratorsExclusive: true to remove it",
                status.unexpected_delegated_administrators.join(", ")
            ),
        };
    } else if !plan.unconfirmed_disable.is_empty() {
        progress.ready = Readiness::Ready {
            reason: "DisableNotConfirmed",
            message: format!(
                "policy types enabled but not listed: {}; disabling detaches every policy of the type, so it happens only with the annotation {CONFIRM_DISABLE_ANNOTATION} naming them",
                plan.unconfirmed_disable.join(", ")
            ),
        };
    }
    Ok(progress)
}

/// GuardDuty, Security Hub and IAM Access Analyzer for the Organization (`spec.securityServices`),
/// after the trusted access and delegated administrator the plan above keeps.
async fn security_services_pass(
    spec: &crate::api::organization::SecurityServices,
    pass: &Pass,
    write: bool,
    progress: &mut Progress,
    status: &mut crate::api::organization::OrganizationStatus,
) -> Result<(), Error> {
    use security_services::{Action as A, AdminObserved, Delegate};
    let Some(management) = status.management_account_id.clone() else {
        return Err(Error::conflict(
            "NoOrganization",
            "the management account is not known yet, so the security services wait; they are set up once the Organization has been read",
        ));
    };
    let admin = administrator(spec, pass)?;
    let partition = pass.snapshot.partition().to_string();
    let accounts = pass
        .snapshot
        .accounts
        .values()
        .filter(|a| a.state == "ACTIVE" && a.id != admin)
        .map(|a| (a.id.clone(), a.email.clone()))
        .collect();
    let desired = security_services::Desired {
        administrator: admin.clone(),
        management: management.clone(),
        regions: spec.regions.clone(),
        guardduty: spec.guard_duty.as_ref().map(|g| g.auto_enable),
        securityhub: spec.security_hub.as_ref().map(|h| {
            (
                h.auto_enable,
                spec.regions
                    .iter()
                    .map(|r| (r.clone(), h.standards.iter().map(|s| s.arn(&partition, r)).collect()))
                    .collect(),
            )
        }),
        analyzer: spec.access_analyzer.as_ref().map(|a| a.organization_analyzer_name.clone()),
        accounts,
    };
    let ours = pass.aws.members.clients(None, Some(&management), &partition, pass.role_name(&management)).services;
    let theirs = pass
        .aws
        .members
        .clients(Some(&admin), Some(&management), &partition, pass.role_name(&admin))
        .services;
    // 1. The administrators, from the management account.
    let mut gd_admins = std::collections::BTreeMap::new();
    let mut sh_admins = std::collections::BTreeMap::new();
    for region in &spec.regions {
        if desired.guardduty.is_some() {
            gd_admins.insert(region.clone(), ours.guardduty_admins(region).await?);
        }
        if desired.securityhub.is_some() {
            sh_admins.insert(region.clone(), ours.securityhub_admins(region).await?);
        }
    }
    let first = security_services::plan_management(&desired, &gd_admins, &sh_admins);
    progress.drift.extend(first.drift.iter().cloned());
    if pass.mode == Mode::Plan || write {
        progress.actions.extend(first.actions.iter().map(ToString::to_string));
    }
    if !write {
        progress.remaining.extend(first.drift.iter().cloned());
    } else {
        for action in &first.actions {
            let region = action.region().to_string();
            match action {
                Delegate::GuardDuty(_) => {
                    ours.enable_guardduty_admin(&region, &admin).await?;
                    gd_admins.insert(region, vec![admin.clone()]);
                }
                Delegate::SecurityHub(_) => {
                    ours.enable_securityhub_admin(&region, &admin).await?;
                    sh_admins.insert(region, vec![admin.clone()]);
                }
            }
            progress.writes += 1;
        }
    }
    // 2. Each region from the administrator account: only once it administers the services
    //    (before that AWS refuses its organization calls).
    let administers = |region: &str| {
        desired.guardduty.is_none() || gd_admins.get(region).is_some_and(|a| a.contains(&admin))
    } && (desired.securityhub.is_none() || sh_admins.get(region).is_some_and(|a| a.contains(&admin)));
    let mut statuses = Vec::new();
    for region in &spec.regions {
        let mut o = AdminObserved::default();
        if administers(region) {
            if desired.guardduty.is_some() {
                o.detector = theirs.detector(region).await?;
                if let Some(d) = &o.detector {
                    o.guardduty_auto = Some(theirs.guardduty_auto_enable(region, d).await?);
                    o.guardduty_members = theirs.guardduty_members(region, d).await?;
                }
            }
            if desired.securityhub.is_some() {
                o.hub = theirs.hub_enabled(region).await?;
                if o.hub {
                    o.hub_auto = Some(theirs.hub_auto_enable(region).await?);
                    o.standards = theirs.enabled_standards(region).await?.into_iter().collect();
                    o.hub_members = theirs.hub_members(region).await?;
                }
            }
            if desired.analyzer.is_some() {
                o.analyzers = theirs.analyzers(region, "ORGANIZATION").await?.into_iter().collect();
            }
        }
        let plan = security_services::plan_admin(&desired, region, &o);
        progress.drift.extend(plan.drift.iter().cloned());
        if pass.mode == Mode::Plan || write {
            progress.actions.extend(plan.actions.iter().map(ToString::to_string));
        }
        if !write || !administers(region) {
            progress.remaining.extend(plan.drift.iter().cloned());
        } else {
            for action in &plan.actions {
                match action {
                    A::CreateDetector(_) => o.detector = Some(theirs.create_detector(region).await?),
                    A::SetGuardDutyAutoEnable(_, v) => {
                        let d = o.detector.clone().unwrap_or_default();
                        theirs.set_guardduty_auto_enable(region, &d, v).await?;
                    }
                    A::AddGuardDutyMembers(_, accounts) => {
                        let d = o.detector.clone().unwrap_or_default();
                        let with_email: Vec<(String, String)> = accounts
                            .iter()
                            .map(|a| (a.clone(), desired.accounts.get(a).cloned().unwrap_or_default()))
                            .collect();
                        theirs.create_guardduty_members(region, &d, &with_email).await?;
                        for a in accounts {
                            o.guardduty_members.entry(a.clone()).or_insert_with(|| "Created".into());
                        }
                    }
                    A::EnableHub(_) => {
                        theirs.enable_hub(region).await?;
                        o.hub = true;
                    }
                    A::SetHubAutoEnable(_, on, standards) => {
                        theirs.set_hub_auto_enable(region, *on, standards).await?
                    }
                    A::EnableStandards(_, arns) => theirs.enable_standards(region, arns).await?,
                    A::AddHubMembers(_, accounts) => {
                        theirs.create_hub_members(region, accounts).await?;
                        for a in accounts {
                            o.hub_members.entry(a.clone()).or_insert_with(|| "Created".into());
                        }
                    }
                    A::CreateAnalyzer(_, name) => {
                        theirs.create_analyzer(region, name, "ORGANIZATION").await?;
                        o.analyzers.insert(name.clone(), "ACTIVE".into());
                    }
                }
                progress.writes += 1;
            }
        }
        statuses.extend(security_services::status(
            &desired,
            region,
            gd_admins.get(region).map(Vec::as_slice).unwrap_or_default(),
            sh_admins.get(region).map(Vec::as_slice).unwrap_or_default(),
            &o,
        ));
    }
    let waiting: Vec<String> = statuses
        .iter()
        .filter(|s| s.pending > 0)
        .map(|s| format!("{} {} in {}", s.service, s.pending, s.region))
        .collect();
    if !waiting.is_empty() && matches!(progress.ready, Readiness::Ready { reason: "Available", .. }) {
        progress.ready = Readiness::Ready {
            reason: "EnrolmentPending",
            message: format!(
                "the Organization's settings match the spec; accounts the security services have not enrolled yet, as they will by themselves: {}",
                waiting.join(", ")
            ),
        };
    }
    status.security_services = statuses;
    Ok(())
}

/// `; GuardDuty 5/6 accounts (1 pending), SecurityHub 6/6, AccessAnalyzer 6/6` (the region covering
/// the fewest).
fn security_services_summary(services: &[crate::api::organization::SecurityServiceStatus]) -> String {
    let mut by_service: Vec<&crate::api::organization::SecurityServiceStatus> = Vec::new();
    for s in services {
        match by_service.iter_mut().find(|b| b.service == s.service) {
            Some(b) if s.enrolled < b.enrolled => *b = s,
            Some(_) => {}
            None => by_service.push(s),
        }
    }
    if by_service.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = by_service
        .iter()
        .map(|s| {
            let all = s.enrolled + s.pending + s.not_enrolled;
            let mut out = format!("{} {}/{all}", s.service, s.enrolled);
            if s.pending > 0 {
                out.push_str(&format!(" ({} pending)", s.pending));
            }
            out
        })
        .collect();
    format!("; security services (accounts covered): {}", parts.join(", "))
}

/// Keeps the change-event pipeline (`spec.changeEvents`) and reports where it is.
async fn change_event_pipeline(
    spec: &ChangeEventsSpec,
    pass: &Pass,
    write: bool,
    progress: &mut Progress,
    status: &mut crate::api::organization::OrganizationStatus,
) -> Result<(), Error> {
    let Some(account) = status.management_account_id.clone() else {
        return Err(Error::conflict(
            "NoOrganization",
            "the management account is not known yet, so the change-event pipeline waits; it is made once the Organization has been read",
        ));
    };
    let desired = change_events::Desired {
        queue_name: spec.queue_name.clone(),
        region: spec.region.clone(),
        account,
        partition: pass.snapshot.partition().to_string(),
        forward_from: alarm_regions(pass)
            .into_iter()
            .filter(|r| *r != spec.region)
            .collect(),
    };
    let pipeline = change_events::Pipeline::new(&pass.aws, &spec.region);
    let observed = pipeline.observe(&desired).await?;
    let plan = change_events::plan(&desired, &observed);
    let mut queue_url = observed.queue.as_ref().map(|q| q.url.clone());
    if pass.mode == Mode::Plan || write {
        progress
            .actions
            .extend(plan.actions.iter().map(ToString::to_string));
    }
    progress.drift.extend(plan.drift.iter().cloned());
    if write {
        for action in &plan.actions {
            let url = pipeline.apply(&desired, action).await?;
            progress.writes += 1;
            if let change_events::Action::CreateQueue { name, .. } = action
                && *name == desired.queue_name
            {
                queue_url = url;
            }
        }
    } else {
        progress.remaining.extend(plan.drift.iter().cloned());
    }
    status.change_events = Some(ChangeEventsStatus {
        queue_url,
        queue_arn: Some(desired.queue_arn()),
        dead_letter_queue_arn: Some(desired.dead_letter_queue_arn()),
        rule_arn: Some(desired.rule_arn()),
        region: Some(desired.region.clone()),
        forwarded_from: desired.forward_from.clone(),
    });
    Ok(())
}

/// Where the AuditTrail resources keep alarms: the operator's region (the trail's alarms), and
/// us-east-1 for a billing alarm.
fn alarm_regions(pass: &Pass) -> std::collections::BTreeSet<String> {
    let mut regions = std::collections::BTreeSet::new();
    for peer in &pass.peers {
        if let Resource::AuditTrail(t) = peer
            && let Some(alarms) = &t.spec.alarms
        {
            if !alarms.cis.is_empty() {
                regions.insert(pass.aws.region.clone());
            }
            if alarms.billing.is_some() {
                regions.insert(crate::reconcile::audit_trail::detection::BILLING_REGION.to_string());
            }
        }
    }
    regions
}

async fn apply(settings: &Settings, pass: &Pass, action: &Action, root: &str) -> Result<(), Error> {
    match action {
        Action::EnableServiceAccess(p) => pass.aws.organizations.enable_service_access(p).await?,
        Action::DisableServiceAccess(p) => settings.disable_service_access(p).await?,
        Action::EnablePolicyType(t) => match settings.enable_policy_type(root, t).await {
            Ok(()) => {}
            Err(e) if e.code == "PolicyTypeAlreadyEnabledException" => {}
            Err(e) => return Err(e.into()),
        },
        Action::DisablePolicyType(t) => settings.disable_policy_type(root, t).await?,
        Action::Register(p, a) => match settings.register(p, a).await {
            Ok(()) => {}
            Err(e) if e.code == "AccountAlreadyRegisteredException" => {}
            Err(e) => return Err(e.into()),
        },
        Action::Deregister(p, a) => settings.deregister(p, a).await?,
        Action::EnableRootCredentialsManagement => {
            settings.enable_root_credentials_management().await?
        }
        Action::EnableRootSessions => settings.enable_root_sessions().await?,
    }
    Ok(())
}

/// Deleting the resource leaves the Organization's settings as they are.
pub async fn delete(_resource: &mut Organization, _pass: &mut Pass) -> Result<Progress, Error> {
    Ok(Progress::ready(
        "Retained",
        "the Organization's settings are left as they are",
    ))
}

fn gauges(m: &crate::metrics::Metrics) -> [prometheus::IntGaugeVec; 4] {
    [
        m.kind_gauge(
            "organization_unexpected_delegated_administrators",
            "Delegated administrators registered in AWS that the Organization resource does not list",
            &["name"],
        ),
        m.kind_gauge(
            "organization_unexpected_trusted_services",
            "Services with trusted access that the Organization resource does not list",
            &["name"],
        ),
        m.kind_gauge(
            "organization_root_credentials_management",
            "1 while member accounts' root credentials are managed centrally (then any root credential is a finding)",
            &["name"],
        ),
        m.kind_gauge(
            "security_service_accounts_without",
            "ACTIVE accounts a security service (GuardDuty, SecurityHub, AccessAnalyzer) does not cover yet in a region, pending enrolment included",
            &["service", "region"],
        ),
    ]
}

impl super::KindSpec for Organization {
    const KIND: Kind = Kind::Organization;
    const DEPENDS_ON: &'static [Kind] = &[Kind::AwsAccount];
    /// The AuditTrails: the change-event pipeline forwards their alarms' regions.
    const SEES: &'static [Kind] = &[Kind::AuditTrail];
    const TRIGGERED_BY: &'static [Kind] = &[Kind::AuditTrail];
    crate::status_access!();

    fn dependencies(&self) -> Vec<Key> {
        self.spec
            .delegated_administrators
            .iter()
            .filter_map(|d| d.account_ref.as_ref())
            .chain(
                self.spec
                    .security_services
                    .iter()
                    .filter_map(|s| s.administrator_account_ref.as_ref()),
            )
            .map(|r| Key::new(Kind::AwsAccount, &r.name))
            .collect()
    }
    fn after_kinds(&self) -> &'static [Kind] {
        // The security services cover every account: those created in the same pass are added
        // as members in it (and a new account brings the Organization round again in a cluster).
        if self.spec.security_services.is_some() {
            &[Kind::AwsAccount]
        } else {
            &[]
        }
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.id.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        "Retain"
    }
    fn declare_metrics(m: &crate::metrics::Metrics) {
        gauges(m);
    }
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        let [admins, services, central, without] = gauges(m);
        let name = kube::ResourceExt::name_any(self);
        let s = self.status.clone().unwrap_or_default();
        admins
            .with_label_values(&[&name])
            .set(s.unexpected_delegated_administrators.len() as i64);
        services
            .with_label_values(&[&name])
            .set(s.unexpected_trusted_services.len() as i64);
        central.with_label_values(&[&name]).set(i64::from(
            s.root_access_features
                .iter()
                .any(|f| f == "RootCredentialsManagement"),
        ));
        for svc in &s.security_services {
            without
                .with_label_values(&[&svc.service, &svc.region])
                .set(i64::from(svc.pending + svc.not_enrolled));
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        let [admins, services, central, without] = gauges(m);
        for g in [admins, services, central] {
            let _ = g.remove_label_values(&[&name]);
        }
        for svc in self.status.iter().flat_map(|s| &s.security_services) {
            let _ = without.remove_label_values(&[&svc.service, &svc.region]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        Some(format!(
            "organization {}: {} features, policy types {}, {} trusted service(s), {} delegated administrator(s){}{}{}",
            s.id.clone().unwrap_or_default(),
            s.feature_set.clone().unwrap_or_default(),
            s.enabled_policy_types.join(", "),
            s.trusted_services.len(),
            s.delegated_administrators.len(),
            if s.root_access_features.is_empty() {
                String::new()
            } else {
                format!(", root access: {}", s.root_access_features.join(", "))
            },
            if s.unexpected_delegated_administrators.is_empty() {
                String::new()
            } else {
                format!(
                    "; UNEXPECTED delegated administrators: {}",
                    s.unexpected_delegated_administrators.join(", ")
                )
            },
            security_services_summary(&s.security_services)
        ))
    }
}
