//! AccountAssignment: one group, one permission set, one account, until an optional expiry —
//! observe (the group's assignments of that set, the request being followed) → plan → apply.
//!
//! Reads per resync: ListInstances, GetGroupId, ListAccountAssignmentsForPrincipal (pages of 100),
//! and the status of a request in flight. The expiry is in the spec (and the claim's status), never
//! in memory: the controller looks again at the deadline (`KindSpec::next_due`), so it is removed
//! within seconds of it across restarts and failovers.

use super::permission_set::aws::{IdentityCenter, RequestState};
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness, Resource};
use crate::api::{AccountAssignment, DeletionPolicy, Drift, ManagementPolicy};
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;


/// What is known before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The assignment should exist now (not expired, not being deleted).
    pub wanted: bool,
    pub manage: bool,
    pub assigned: bool,
    /// A request followed from status: (creating, where AWS says it stands).
    pub pending: Option<(bool, RequestState)>,
    /// Another resource that wants the same assignment (it then stays when this one lets go).
    pub kept_for: Option<String>,
    /// The state status showed before (an assignment removed by hand is drift).
    pub was: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Assign,
    Unassign,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub step: Option<Step>,
    pub state: &'static str,
    pub drift: Vec<Drift>,
    pub ready: Readiness,
}

fn ready(reason: &'static str, message: impl Into<String>) -> Readiness {
    Readiness::Ready {
        reason,
        message: message.into(),
    }
}

fn not_ready(reason: &'static str, message: impl Into<String>) -> Readiness {
    Readiness::NotReady {
        reason,
        message: message.into(),
    }
}

/// Pure: the facts → the one step to take, the state to show, and drift.
pub fn plan(f: &Facts, what: &str) -> Result<Plan, Error> {
    let plan = |step, state, drift, ready| Ok(Plan { step, state, drift, ready });
    match &f.pending {
        Some((creating, RequestState::InProgress)) => {
            let state = if *creating { "Creating" } else { "Deleting" };
            return plan(
                None,
                state,
                vec![],
                not_ready("Creating", format!("{what}: Identity Center is still working on the request")),
            );
        }
        Some((creating, RequestState::Failed(reason))) => {
            return Err(Error::conflict(
                "AssignmentFailed",
                format!(
                    "{what}: Identity Center could not {} the assignment: {reason}; retried on the next resync",
                    if *creating { "make" } else { "remove" }
                ),
            ));
        }
        _ => {}
    }
    if f.wanted {
        if f.assigned {
            return plan(None, "Assigned", vec![], ready("Assigned", what.to_string()));
        }
        let drift = if f.was.as_deref() == Some("Assigned") {
            vec![Drift::new("assignment", "assigned", "absent")]
        } else {
            vec![]
        };
        if !f.manage {
            return plan(
                None,
                "Absent",
                drift,
                not_ready("NotFound", format!("{what} is not assigned; with managementPolicy: Observe nothing is made")),
            );
        }
        return plan(
            Some(Step::Assign),
            "Creating",
            drift,
            not_ready("Creating", format!("{what}: assigning")),
        );
    }
    match (&f.kept_for, f.assigned) {
        (Some(other), true) => plan(
            None,
            "Expired",
            vec![],
            ready("Expired", format!("{what} ended here, and stays assigned because {other} also grants it")),
        ),
        (None, true) if f.manage => plan(
            Some(Step::Unassign),
            "Deleting",
            vec![],
            not_ready("Creating", format!("{what} ended: removing the assignment")),
        ),
        (None, true) => plan(
            None,
            "Expired",
            vec![Drift::new("assignment", "absent", "assigned")],
            not_ready("Observed", format!("{what} ended but is still assigned; with managementPolicy: Observe it is not removed")),
        ),
        (_, false) => plan(None, "Expired", vec![], ready("Expired", format!("{what} ended; the assignment is removed"))),
    }
}

/// Whether the expiry has passed.
pub fn expired(expires_at: Option<&str>, now: Timestamp) -> Result<bool, Error> {
    let Some(at) = expires_at else { return Ok(false) };
    let at: Timestamp = at.parse().map_err(|e| Error::InvalidSpec {
        message: format!("expiresAt {at} is not an RFC 3339 time ({e})"),
    })?;
    Ok(at <= now)
}

/// Another resource that wants the same assignment: another unexpired AccountAssignment, or the
/// referenced PermissionSet assigning the group on the account (by reference, id or OU).
fn kept_for(a: &AccountAssignment, account_id: &str, pass: &Pass) -> Option<String> {
    let now = pass.now.0;
    for peer in &pass.peers {
        match peer {
            Resource::AccountAssignment(o)
                if o.spec.permission_set_ref == a.spec.permission_set_ref
                    && o.spec.account_ref == a.spec.account_ref
                    && o.spec.group == a.spec.group
                    && o.metadata.deletion_timestamp.is_none()
                    && !expired(o.spec.expires_at.as_deref(), now).unwrap_or(true) =>
            {
                return Some(format!("AccountAssignment {}", kube::ResourceExt::name_any(o)));
            }
            Resource::PermissionSet(ps) if kube::ResourceExt::name_any(ps) == a.spec.permission_set_ref.name => {
                let ou_id = |name: &str| {
                    pass.peers.iter().find_map(|r| match r {
                        Resource::OrganizationalUnit(ou) if kube::ResourceExt::name_any(ou) == name => r.aws_id(),
                        _ => None,
                    })
                };
                let grants = ps.spec.assignments.iter().filter(|x| x.group == a.spec.group).any(|x| {
                    x.account_refs.contains(&a.spec.account_ref)
                        || x.account_ids.iter().any(|id| id == account_id)
                        || x.organizational_unit_refs.iter().any(|ou| {
                            ou_id(&ou.name).is_some_and(|id| pass.snapshot.active_accounts_under(&id).iter().any(|x| x == account_id))
                        })
                });
                if grants {
                    return Some(format!("PermissionSet {}", ps.spec.name));
                }
            }
            _ => {}
        }
    }
    None
}

struct Observed {
    instance: String,
    ps_arn: String,
    account_id: String,
    group_id: Option<String>,
    assigned: bool,
    pending: Option<(bool, RequestState)>,
}

/// `wanted`: whether the assignment should exist now. One that should not (expired, or being
/// deleted) whose account or permission set is gone from the cluster (a claim deleted, a Git file
/// removed) is still found in AWS by the ids recorded when it was assigned: access ends at its
/// deadline whatever became of the objects it named.
async fn observe(a: &AccountAssignment, pass: &Pass, ic: &IdentityCenter, wanted: bool) -> Result<Observed, Error> {
    let recorded = a.status.clone().unwrap_or_default();
    let resolve = |key: Key, recorded: Option<String>| match pass.resolve(&key) {
        Err(e) if !wanted => recorded.ok_or(e),
        other => other,
    };
    let account_id = resolve(Key::new(Kind::AwsAccount, &a.spec.account_ref.name), recorded.account_id.clone())?;
    let ps_arn = resolve(
        Key::new(Kind::PermissionSet, &a.spec.permission_set_ref.name),
        recorded.permission_set_arn.clone(),
    )?;
    let inst = ic.instance().await?.ok_or_else(|| {
        Error::conflict(
            "IdentityCenterNotEnabled",
            format!(
                "no IAM Identity Center instance in {}: enable Identity Center, or set --identity-center-region to its home region",
                pass.aws.identity_center_region
            ),
        )
    })?;
    let status = a.status.clone().unwrap_or_default();
    let group_id = match status.group_id.clone() {
        Some(id) => Some(id),
        None => ic.group_id(&inst.identity_store_id, &a.spec.group).await?,
    };
    let pending = match (&status.request_id, status.state.as_deref()) {
        (Some(id), Some("Creating")) => Some((true, ic.creation(&inst.arn, id).await?)),
        (Some(id), Some("Deleting")) => Some((false, ic.deletion(&inst.arn, id).await?)),
        _ => None,
    };
    let assigned = match &group_id {
        Some(g) => ic.assigned_accounts(&inst.arn, &ps_arn, g).await?.contains(&account_id),
        None => false,
    };
    Ok(Observed {
        instance: inst.arn,
        ps_arn,
        account_id,
        group_id,
        assigned,
        pending,
    })
}

fn describe(a: &AccountAssignment, account_id: &str) -> String {
    format!(
        "permission set {} for group {} on account {account_id}{}",
        a.spec.permission_set_ref.name,
        a.spec.group,
        a.spec.expires_at.as_ref().map(|e| format!(" until {e}")).unwrap_or_default()
    )
}

async fn converge(resource: &mut AccountAssignment, pass: &mut Pass, wanted_unless_expired: bool) -> Result<Progress, Error> {
    let ic = IdentityCenter::new(&pass.aws);
    let a = resource.clone();
    let expired_now = expired(a.spec.expires_at.as_deref(), pass.now.0)?;
    let o = observe(&a, pass, &ic, wanted_unless_expired && !expired_now).await?;
    let what = describe(&a, &o.account_id);
    let Some(group_id) = o.group_id.clone() else {
        let status = resource.status.get_or_insert_with(Default::default);
        status.account_id = Some(o.account_id.clone());
        status.state = Some(if expired_now { "Expired" } else { "GroupNotFound" }.into());
        if expired_now || !wanted_unless_expired {
            return Ok(Progress::ready("Expired", format!("{what}: nothing is assigned")));
        }
        return Err(Error::conflict(
            "GroupNotFound",
            format!(
                "no group named {} in the Identity Store: create it (an IdentityCenterGroup) or sync it from your identity provider; retried on the next resync",
                a.spec.group
            ),
        ));
    };
    let facts = Facts {
        wanted: wanted_unless_expired && !expired_now,
        manage: a.spec.management_policy == ManagementPolicy::Manage,
        assigned: o.assigned,
        pending: o.pending.clone(),
        kept_for: kept_for(&a, &o.account_id, pass),
        was: a.status.as_ref().and_then(|s| s.state.clone()),
    };
    let p = plan(&facts, &what)?;
    let mut progress = Progress {
        actions: Vec::new(),
        writes: 0,
        drift: p.drift.clone(),
        remaining: Vec::new(),
        ready: p.ready.clone(),
    };
    let status = resource.status.get_or_insert_with(Default::default);
    status.account_id = Some(o.account_id.clone());
    status.permission_set_arn = Some(o.ps_arn.clone());
    status.group_id = Some(group_id.clone());
    status.state = Some(p.state.to_string());
    status.kept_for = facts.kept_for.clone().filter(|_| !facts.wanted);
    if o.pending.is_none() {
        status.request_id = None;
    }
    if let Some(step) = &p.step {
        progress.actions.push(match step {
            Step::Assign => format!("assign {what}"),
            Step::Unassign => format!("remove {what}"),
        });
        if pass.mode != Mode::Apply {
            progress.remaining = p.drift.clone();
            return Ok(progress);
        }
        let request = match step {
            Step::Assign => ic.assign(&o.instance, &o.ps_arn, &o.account_id, &group_id).await?,
            Step::Unassign => ic.unassign(&o.instance, &o.ps_arn, &o.account_id, &group_id).await?,
        };
        progress.writes += 1;
        let status = resource.status.get_or_insert_with(Default::default);
        status.request_id = Some(request);
        // The request id is durable before anything else: a restart follows it instead of asking again.
        pass.checkpoint(resource).await?;
    }
    Ok(progress)
}

pub async fn reconcile(resource: &mut AccountAssignment, pass: &mut Pass) -> Result<Progress, Error> {
    converge(resource, pass, true).await
}

pub async fn delete(resource: &mut AccountAssignment, pass: &mut Pass) -> Result<Progress, Error> {
    let a = resource.clone();
    if a.spec.deletion_policy != DeletionPolicy::Delete || a.spec.management_policy == ManagementPolicy::Observe {
        return Ok(Progress::ready("Retained", "AWS left untouched"));
    }
    match converge(resource, pass, false).await {
        // The account or permission set is gone already: nothing of this one is left to remove.
        Err(Error::WaitingForDependency { .. }) => Ok(Progress::ready("Retained", "the account or permission set is gone")),
        other => other,
    }
}

impl super::KindSpec for AccountAssignment {
    const KIND: Kind = Kind::AccountAssignment;
    const DEPENDS_ON: &'static [Kind] = &[Kind::AwsAccount, Kind::PermissionSet];
    const SEES: &'static [Kind] = &[Kind::AccountAssignment, Kind::PermissionSet, Kind::OrganizationalUnit];
    crate::status_access!();

    fn dependencies(&self) -> Vec<Key> {
        vec![
            Key::new(Kind::AwsAccount, &self.spec.account_ref.name),
            Key::new(Kind::PermissionSet, &self.spec.permission_set_ref.name),
        ]
    }
    fn aws_id(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        Some(format!("{}/{}", s.account_id.as_ref()?, s.group_id.as_ref()?))
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
    fn next_due(&self, now: Timestamp) -> Option<Duration> {
        let state = self.status.as_ref().and_then(|s| s.state.as_deref());
        if matches!(state, Some("Creating" | "Deleting")) {
            return Some(Duration::from_secs(5));
        }
        let at: Timestamp = self.spec.expires_at.as_deref()?.parse().ok()?;
        let left = at.duration_since(now);
        (!left.is_negative() && state != Some("Expired")).then(|| Duration::try_from(left).unwrap_or_default() + Duration::from_millis(200))
    }
    fn declare_metrics(m: &crate::metrics::Metrics) {
        time_bound_gauge(m);
    }
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        let s = self.status.clone().unwrap_or_default();
        let labels = self.metadata.labels.clone().unwrap_or_default();
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let series = match (&self.spec.expires_at, s.state.as_deref()) {
            (Some(at), Some("Assigned")) => Some((
                vec![
                    name.clone(),
                    label(crate::claims::LABEL_NAMESPACE),
                    s.account_id.unwrap_or_default(),
                    self.spec.permission_set_ref.name.clone(),
                    self.spec.group.clone(),
                ],
                at.parse::<Timestamp>().map(|t| t.as_second()).unwrap_or_default(),
            )),
            _ => None,
        };
        let g = time_bound_gauge(m);
        let mut all = TIME_BOUND_SERIES.lock().expect("not poisoned");
        if let Some(before) = all.remove(&name)
            && series.as_ref().is_none_or(|(now, _)| *now != before)
        {
            let _ = g.remove_label_values(&before.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if let Some((values, expires)) = series {
            g.with_label_values(&values.iter().map(String::as_str).collect::<Vec<_>>()).set(expires);
            all.insert(name, values);
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        if let Some(before) = TIME_BOUND_SERIES.lock().expect("not poisoned").remove(&name) {
            let _ = time_bound_gauge(m).remove_label_values(&before.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

/// The series this process set, by assignment (a series is removed by its full label set only).
static TIME_BOUND_SERIES: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn time_bound_gauge(m: &crate::metrics::Metrics) -> prometheus::IntGaugeVec {
    m.kind_gauge(
        "time_bound_assignment_expiry_seconds",
        "Active time-bound assignments: the Unix time each one expires (count() of it: how many are active)",
        &["name", "namespace", "account_id", "permission_set", "group"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(wanted: bool, assigned: bool) -> Facts {
        Facts {
            wanted,
            manage: true,
            assigned,
            pending: None,
            kept_for: None,
            was: None,
        }
    }

    #[test]
    fn an_assignment_is_made_until_it_expires_and_removed_after() {
        let cases: Vec<(&str, Facts, Option<Step>, &str)> = vec![
            ("wanted, absent: assign", facts(true, false), Some(Step::Assign), "Creating"),
            ("wanted, assigned: nothing", facts(true, true), None, "Assigned"),
            ("expired, assigned: remove", facts(false, true), Some(Step::Unassign), "Deleting"),
            ("expired, absent: nothing, never again", facts(false, false), None, "Expired"),
            (
                "expired but another resource grants it: stays",
                Facts { kept_for: Some("PermissionSet Admin".into()), ..facts(false, true) },
                None,
                "Expired",
            ),
            (
                "a request in flight: wait for it",
                Facts { pending: Some((true, RequestState::InProgress)), ..facts(true, false) },
                None,
                "Creating",
            ),
            (
                "expired, Observe: reported, not removed",
                Facts { manage: false, ..facts(false, true) },
                None,
                "Expired",
            ),
            ("wanted, Observe: not made", Facts { manage: false, ..facts(true, false) }, None, "Absent"),
        ];
        for (why, f, step, state) in cases {
            let p = plan(&f, "x").unwrap();
            assert_eq!((p.step, p.state), (step, state), "{why}");
        }
        let removed_by_hand = Facts { was: Some("Assigned".into()), ..facts(true, false) };
        let p = plan(&removed_by_hand, "x").unwrap();
        assert_eq!(p.drift.len(), 1, "an assignment removed by hand is drift, and put back");
        let failed = Facts { pending: Some((false, RequestState::Failed("no".into()))), ..facts(false, true) };
        assert!(plan(&failed, "x").is_err());
    }

    #[test]
    fn expiry_is_compared_with_now() {
        let now: Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        assert!(!expired(None, now).unwrap());
        assert!(!expired(Some("2026-12-05T10:00:01Z"), now).unwrap());
        assert!(expired(Some("2026-12-05T10:00:00Z"), now).unwrap());
        assert!(expired(Some("2026-12-05T11:00:00+02:00"), now).unwrap());
        assert!(expired(Some("yesterday"), now).is_err());
    }
}
