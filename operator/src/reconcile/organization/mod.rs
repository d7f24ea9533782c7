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

fn org_of(resource: &mut Resource) -> &mut Organization {
    match resource {
        Resource::Organization(o) => o,
        _ => unreachable!("the driver dispatches by kind"),
    }
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
    Ok(Desired {
        policy_types: s.policy_types.iter().map(|t| t.aws().to_string()).collect(),
        confirmed_disable: confirmed,
        trusted: s.trusted_services.iter().cloned().collect(),
        trusted_exclusive: s.trusted_services_exclusive,
        delegated,
        delegated_exclusive: s.delegated_administrators_exclusive,
        root_credentials_management: root.credentials_management,
        root_sessions: root.root_sessions,
    })
}

pub async fn reconcile(resource: &mut Resource, pass: &mut Pass) -> Result<Progress, Error> {
    let org = org_of(resource);
    let desired = desired(org, pass)?;
    let wants_root_access = org.spec.root_access.is_some();
    let policy = org.spec.management_policy;
    let pipeline = org.spec.change_events.clone();
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
    });
    Ok(())
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
pub async fn delete(_resource: &mut Resource, _pass: &mut Pass) -> Result<Progress, Error> {
    Ok(Progress::ready(
        "Retained",
        "the Organization's settings are left as they are",
    ))
}

fn gauges(m: &crate::metrics::Metrics) -> [prometheus::IntGaugeVec; 3] {
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
    ]
}

impl super::KindSpec for Organization {
    const KIND: Kind = Kind::Organization;
    const DEPENDS_ON: &'static [Kind] = &[Kind::AwsAccount];
    crate::status_access!();

    fn dependencies(&self) -> Vec<Key> {
        self.spec
            .delegated_administrators
            .iter()
            .filter_map(|d| d.account_ref.as_ref())
            .map(|r| Key::new(Kind::AwsAccount, &r.name))
            .collect()
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
        let [admins, services, central] = gauges(m);
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
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        for g in gauges(m) {
            let _ = g.remove_label_values(&[&name]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        Some(format!(
            "organization {}: {} features, policy types {}, {} trusted service(s), {} delegated administrator(s){}{}",
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
            }
        ))
    }
}
