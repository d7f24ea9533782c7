//! PermissionSet: observe (the set, its policies, tags, and the assignments of the spec's groups)
//! → plan → apply, following Identity Center's asynchronous requests across reconciles.
//!
//! Reads per resync for a set in sync: ListInstances, DescribePermissionSet, its managed and
//! customer-managed policies, inline policy, boundary and tags (6), GetGroupId and
//! ListAccountAssignmentsForPrincipal (pages of 100) per group named — never a read per account.
//! An OU-wide assignment is expanded from the Organization snapshot every reconcile, so an account
//! created in, moved into or out of the OU gains or loses it on the next one.

pub mod aws;
pub mod plan;

use self::aws::{IdentityCenter, Instance, PermissionSetInfo, RequestState};
use self::plan::{Action, Desired, Observed, Target};
use super::driver::{self, Applied, Reconciler};
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness, Resource};
use crate::api::permission_set::AssignmentStatus;
use crate::api::{DeletionPolicy, ManagementPolicy, PermissionSet, PermissionSetStatus};
use crate::aws::AwsError;
use std::collections::{BTreeMap, BTreeSet};

/// Assignment requests this permission set keeps outstanding at once (Identity Center caps them).
const MAX_REQUESTS_PER_RECONCILE: usize = 10;


fn desired(ps: &PermissionSet, pass: &Pass) -> Result<Desired, Error> {
    let s = &ps.spec;
    let mut assignments = BTreeSet::new();
    for a in &s.assignments {
        let mut accounts = BTreeSet::new();
        for r in &a.account_refs {
            accounts.insert(pass.resolve(&Key::new(Kind::AwsAccount, &r.name))?);
        }
        for r in &a.organizational_unit_refs {
            let ou = pass.resolve(&Key::new(Kind::OrganizationalUnit, &r.name))?;
            accounts.extend(pass.snapshot.active_accounts_under(&ou));
        }
        accounts.extend(a.account_ids.iter().cloned());
        assignments.extend(accounts.into_iter().map(|acc| (acc, a.group.clone())));
    }
    let inline = match (&s.inline_policy, &s.inline_policy_object) {
        (Some(text), _) => Some(serde_json::from_str(text).map_err(|e| Error::InvalidSpec {
            message: format!("inlinePolicy is not valid JSON ({e}): fix it, or write it as a YAML object under inlinePolicyObject"),
        })?),
        (None, Some(v)) => Some(v.clone()),
        (None, None) => None,
    };
    Ok(Desired {
        info: PermissionSetInfo {
            arn: String::new(),
            name: s.name.clone(),
            description: s.description.clone(),
            session_duration: s.session_duration.clone(),
            relay_state: s.relay_state.clone(),
        },
        managed: s.managed_policy_arns.iter().cloned().collect(),
        customer: s
            .customer_managed_policies
            .iter()
            .map(|p| (p.name.clone(), p.path.clone()))
            .collect(),
        inline,
        boundary: s.permissions_boundary.as_ref().map(|b| {
            match (&b.managed_policy_arn, &b.customer_managed_policy) {
                (Some(a), _) => format!("managed:{a}"),
                (None, Some(r)) => format!("customer:{}{}", r.path, r.name),
                _ => String::new(),
            }
        }),
        tags: s.tags.clone(),
        assignments,
        held_elsewhere: held_elsewhere(ps, pass),
        policy: s.management_policy,
    })
}

/// The (account, group) pairs of this set that `AccountAssignment` resources hold.
fn held_elsewhere(ps: &PermissionSet, pass: &Pass) -> BTreeSet<plan::Target> {
    let name = kube::ResourceExt::name_any(ps);
    pass.peers
        .iter()
        .filter_map(|r| match r {
            Resource::AccountAssignment(a) if a.spec.permission_set_ref.name == name => {
                let account = a.status.as_ref()?.account_id.clone()?;
                Some((account, a.spec.group.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A read the endpoint does not implement (an emulator): what it would show is not known.
fn unimplemented(e: &AwsError) -> bool {
    e.code == "Unimplemented"
}

async fn instance(ic: &IdentityCenter, pass: &Pass) -> Result<Instance, Error> {
    ic.instance().await?.ok_or_else(|| {
        Error::conflict(
            "IdentityCenterNotEnabled",
            format!(
                "no IAM Identity Center instance in {}: enable Identity Center for the Organization, or set --identity-center-region to its home region",
                pass.aws.identity_center_region
            ),
        )
    })
}

async fn find(
    ic: &IdentityCenter,
    instance: &str,
    status_arn: Option<&str>,
    name: &str,
) -> Result<(Option<PermissionSetInfo>, bool), Error> {
    if let Some(arn) = status_arn
        && let Some(found) = ic.describe(instance, arn).await?
    {
        return Ok((Some(found), false));
    }
    for arn in ic.list(instance).await? {
        if let Some(p) = ic.describe(instance, &arn).await?
            && p.name == name
        {
            return Ok((Some(p), true));
        }
    }
    Ok((None, false))
}

async fn observe(
    ic: &IdentityCenter,
    inst: &Instance,
    status: &PermissionSetStatus,
    desired: &Desired,
    unverified: &mut Vec<&'static str>,
) -> Result<Observed, Error> {
    let (info, adopted) = find(ic, &inst.arn, status.permission_set_arn.as_deref(), &desired.info.name).await?;
    let mut o = Observed {
        adopted,
        ..Default::default()
    };
    for group in desired.assignments.iter().map(|(_, g)| g).collect::<BTreeSet<_>>() {
        o.groups.insert(group.clone(), ic.group_id(&inst.identity_store_id, group).await?);
    }
    for row in &status.assignments {
        let target = (row.account_id.clone(), row.group.clone());
        if let (Some(id), Some(gid)) = (&row.request_id, &row.group_id) {
            o.groups.entry(row.group.clone()).or_insert(Some(gid.clone()));
            let follow = match row.state.as_str() {
                "Creating" => Some((true, ic.creation(&inst.arn, id).await)),
                "Deleting" => Some((false, ic.deletion(&inst.arn, id).await)),
                _ => None,
            };
            if let Some((creating, state)) = follow {
                let state = match state {
                    Ok(s) => s,
                    Err(e) if unimplemented(&e) => RequestState::Succeeded,
                    Err(e) => return Err(e.into()),
                };
                let map = if creating { &mut o.creating } else { &mut o.deleting };
                map.insert(target, (id.clone(), state));
            }
        } else if let Some(gid) = &row.group_id {
            // Groups assigned before and no longer named: their assignments are still read.
            o.groups.entry(row.group.clone()).or_insert(Some(gid.clone()));
        }
    }
    let Some(info) = info else {
        return Ok(o);
    };
    let arn = info.arn.clone();
    o.info = Some(info);
    o.managed = ic.managed_policies(&inst.arn, &arn).await?.into_iter().collect();
    o.customer = ic.customer_policies(&inst.arn, &arn).await?.into_iter().collect();
    o.inline = ic.inline_policy(&inst.arn, &arn).await?;
    o.boundary = match ic.boundary(&inst.arn, &arn).await {
        Ok(b) => b,
        Err(e) if unimplemented(&e) => {
            unverified.push("GetPermissionsBoundaryForPermissionSet");
            desired.boundary.clone()
        }
        Err(e) => return Err(e.into()),
    };
    o.tags = match ic.tags(&inst.arn, &arn).await {
        Ok(t) => t,
        Err(e) if unimplemented(&e) => {
            unverified.push("ListTagsForResource");
            desired.tags.clone()
        }
        Err(e) => return Err(e.into()),
    };
    for (group, id) in o.groups.clone() {
        if let Some(id) = id {
            for account in ic.assigned_accounts(&inst.arn, &arn, &id).await? {
                o.assigned.insert((account, group.clone()));
            }
        }
    }
    Ok(o)
}

pub async fn reconcile(set: &mut PermissionSet, pass: &mut Pass) -> Result<Progress, Error> {
    driver::reconcile(set, pass).await
}

/// The permission set as Identity Center has it, in its instance.
pub struct Seen {
    inst: Instance,
    observed: Observed,
    /// What the endpoint could not say (calls it does not implement).
    unverified: Vec<&'static str>,
}

/// What the assignment requests of one pass came to.
#[derive(Default)]
pub struct Requests {
    /// Sent in this pass.
    sent: usize,
    /// Request ids, by target.
    ids: BTreeMap<Target, String>,
    /// Held back for the next reconcile: Identity Center caps the requests outstanding.
    queued: Vec<Target>,
}

impl Reconciler for PermissionSet {
    type Desired = Desired;
    type Observed = Seen;
    type Action = Action;
    type Scratch = Requests;

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    fn desired(&self, pass: &Pass) -> Result<Desired, Error> {
        desired(self, pass)
    }

    async fn observe(&self, desired: &Desired, pass: &Pass) -> Result<Seen, Error> {
        let ic = IdentityCenter::new(&pass.aws);
        let inst = instance(&ic, pass).await?;
        let status = self.status.clone().unwrap_or_default();
        let mut unverified = Vec::new();
        let observed = observe(&ic, &inst, &status, desired, &mut unverified).await?;
        Ok(Seen {
            inst,
            observed,
            unverified,
        })
    }

    fn plan(desired: &Desired, seen: &Seen) -> Result<driver::Plan<Action>, Error> {
        let p = plan::plan(desired, &seen.observed);
        let mut out = driver::Plan::new(p.actions, p.drift);
        if seen.observed.adopted {
            let arn = seen.observed.info.as_ref().map(|i| i.arn.clone());
            out.notes = vec![format!(
                "adopt existing permission set {}",
                arn.unwrap_or_default()
            )];
        }
        Ok(out)
    }

    fn record(&mut self, _desired: &Desired, seen: &Seen, _writes: bool) {
        let status = self.status.get_or_insert_with(Default::default);
        status.instance_arn = Some(seen.inst.arn.clone());
        if let Some(found) = &seen.observed.info {
            status.permission_set_arn = Some(found.arn.clone());
        }
    }

    async fn apply(
        &mut self,
        action: &Action,
        desired: &Desired,
        seen: &Seen,
        requests: &mut Requests,
        pass: &mut Pass,
    ) -> Result<Applied, Error> {
        if let Action::Assign { account, group, .. } | Action::Unassign { account, group, .. } =
            action
        {
            // Identity Center bounds the requests outstanding at once (those still in progress
            // count too): the rest wait for the next reconcile (a few seconds while any is
            // followed).
            let in_progress = seen
                .observed
                .creating
                .values()
                .chain(seen.observed.deleting.values())
                .filter(|(_, state)| *state == RequestState::InProgress)
                .count();
            if in_progress + requests.sent >= MAX_REQUESTS_PER_RECONCILE {
                requests.queued.push((account.clone(), group.clone()));
                return Ok(Applied::Left(Vec::new()));
            }
            requests.sent += 1;
        }
        let ic = IdentityCenter::new(&pass.aws);
        let status = self.status.get_or_insert_with(Default::default);
        if let Some((target, request)) = apply(&ic, &seen.inst, action, desired, status).await? {
            requests.ids.insert(target, request);
        }
        Ok(Applied::Done)
    }

    async fn finish(
        &mut self,
        desired: &Desired,
        seen: &Seen,
        _plan: &driver::Plan<Action>,
        outcome: &driver::Outcome,
        requests: Requests,
        pass: &Pass,
    ) -> Result<Readiness, Error> {
        // Each target's state, from the plan (pure and cheap: computed again rather than carried
        // through the driver's plan, which holds the actions and drift only).
        let mut states = plan::plan(desired, &seen.observed).states;
        for target in &requests.queued {
            if let Some(s) = states.get_mut(target) {
                s.state = "Queued";
                s.reason = Some("waits for Identity Center's earlier requests".into());
            }
        }
        for (target, request) in requests.ids {
            if let Some(s) = states.get_mut(&target) {
                s.request_id = Some(request);
            }
        }
        let mut ready = None;
        if !outcome.wrote && seen.observed.info.is_none() {
            ready = Some(pass.missing(format!(
                "no permission set named {:?} exists",
                desired.info.name
            )));
        }
        let status = self.status.get_or_insert_with(Default::default);
        // Follow a provisioning request until it ends.
        if let Some(request) = status.provisioning_request_id.clone() {
            let ic = IdentityCenter::new(&pass.aws);
            match ic.provisioning(&seen.inst.arn, &request).await {
                Ok(RequestState::InProgress) => {}
                Ok(RequestState::Failed(reason)) => {
                    status.provisioning_request_id = None;
                    ready = Some(Readiness::NotReady {
                        reason: "ProvisioningFailed",
                        message: format!("provisioning the permission set to its accounts failed: {reason}; it is tried again on the next change or resync"),
                    });
                }
                Ok(RequestState::Succeeded) => status.provisioning_request_id = None,
                Err(e) if unimplemented(&e) => status.provisioning_request_id = None,
                Err(e) => return Err(e.into()),
            }
        }
        record(status, desired, &seen.observed, states);
        Ok(ready.unwrap_or_else(|| readiness(status, &seen.unverified)))
    }
}

/// Status rows: one per (account, group) wanted, and per assignment being removed.
fn record(
    status: &mut PermissionSetStatus,
    desired: &Desired,
    observed: &Observed,
    states: BTreeMap<Target, plan::TargetState>,
) {
    status.assignments = states
        .into_iter()
        .map(|((account, group), s)| AssignmentStatus {
            group_id: observed.groups.get(&group).cloned().flatten(),
            account_id: account,
            group,
            state: s.state.to_string(),
            reason: s.reason,
            request_id: s.request_id,
        })
        .collect();
    status.assigned_count = status
        .assignments
        .iter()
        .filter(|a| a.state == "Assigned" && desired.assignments.contains(&(a.account_id.clone(), a.group.clone())))
        .count() as i32;
    let mut accounts: BTreeSet<String> = observed.assigned.iter().map(|(a, _)| a.clone()).collect();
    accounts.extend(status.assignments.iter().filter(|a| a.state == "Assigned").map(|a| a.account_id.clone()));
    status.provisioned_accounts = accounts.into_iter().collect();
}

fn readiness(status: &PermissionSetStatus, unverified: &[&str]) -> Readiness {
    let count = |state: &str| status.assignments.iter().filter(|a| a.state == state).count();
    let failed: Vec<String> = status
        .assignments
        .iter()
        .filter(|a| a.state == "Failed" || a.state == "GroupNotFound")
        .map(|a| format!("{} in {}: {}", a.group, a.account_id, a.reason.clone().unwrap_or_default()))
        .collect();
    if !failed.is_empty() {
        return Readiness::NotReady {
            reason: "AssignmentFailed",
            message: format!(
                "{} assignment(s) failed ({}); the others are in place. A failed one is requested again on the next reconcile",
                failed.len(),
                failed.join("; ")
            ),
        };
    }
    let pending = count("Creating") + count("Deleting") + count("Queued");
    if pending > 0 || status.provisioning_request_id.is_some() {
        return Readiness::NotReady {
            reason: "Creating",
            message: format!("Identity Center is working on {pending} assignment request(s){}; followed until they finish", if status.provisioning_request_id.is_some() { " and a provisioning request" } else { "" }),
        };
    }
    let mut message = format!(
        "the permission set matches the spec and is assigned {} time(s)",
        status.assigned_count
    );
    if !unverified.is_empty() {
        message += &format!(
            "; not verified (the endpoint does not implement {})",
            unverified.join(", ")
        );
    }
    Readiness::Ready {
        reason: "Available",
        message,
    }
}

/// Carries out one action; for an assignment request, its target and request id.
async fn apply(
    ic: &IdentityCenter,
    inst: &Instance,
    action: &Action,
    desired: &Desired,
    status: &mut PermissionSetStatus,
) -> Result<Option<(Target, String)>, Error> {
    let i = inst.arn.as_str();
    let arn = status.permission_set_arn.clone().unwrap_or_default();
    match action {
        Action::Create => {
            let created = ic.create(i, &desired.info, &desired.tags).await?;
            status.permission_set_arn = Some(created);
        }
        Action::Update => {
            let mut want = desired.info.clone();
            want.arn = arn;
            ic.update(i, &want).await?
        }
        Action::AttachManaged(p) => ic.attach_managed(i, &arn, p).await?,
        Action::DetachManaged(p) => ic.detach_managed(i, &arn, p).await?,
        Action::AttachCustomer(n, p) => ic.attach_customer(i, &arn, n, p).await?,
        Action::DetachCustomer(n, p) => ic.detach_customer(i, &arn, n, p).await?,
        Action::PutInline(doc) => ic.put_inline_policy(i, &arn, doc).await?,
        Action::DeleteInline => ic.delete_inline_policy(i, &arn).await?,
        Action::PutBoundary(b) => {
            let (managed, customer) = match b.split_once(':') {
                Some(("managed", a)) => (Some(a), None),
                Some((_, path_name)) => {
                    let (path, name) = path_name.rsplit_once('/').unwrap_or(("/", path_name));
                    (None, Some((name, if path.is_empty() { "/" } else { path })))
                }
                None => (None, None),
            };
            let path = customer.map(|(n, p)| (n, if p.ends_with('/') { p.to_string() } else { format!("{p}/") }));
            ic.put_boundary(i, &arn, managed, path.as_ref().map(|(n, p)| (*n, p.as_str()))).await?
        }
        Action::DeleteBoundary => ic.delete_boundary(i, &arn).await?,
        Action::Tag(t) => ic.tag(i, &arn, t).await?,
        Action::Untag(k) => ic.untag(i, &arn, k).await?,
        Action::Provision => {
            status.provisioning_request_id = Some(ic.provision(i, &arn).await?);
        }
        Action::Assign { account, group, group_id } => {
            let request = ic.assign(i, &arn, account, group_id).await?;
            return Ok(Some(((account.clone(), group.clone()), request)));
        }
        Action::Unassign { account, group, group_id } => {
            let request = ic.unassign(i, &arn, account, group_id).await?;
            return Ok(Some(((account.clone(), group.clone()), request)));
        }
    }
    Ok(None)
}

/// Deletion in the order AWS needs: the assignments, wait for them, then the permission set.
pub async fn delete(resource: &mut PermissionSet, pass: &mut Pass) -> Result<Progress, Error> {
    let ps = resource;
    if ps.spec.deletion_policy != DeletionPolicy::Delete
        || ps.spec.management_policy == ManagementPolicy::Observe
    {
        return Ok(Progress::ready("Retained", "AWS left untouched"));
    }
    let status = ps.status.get_or_insert_with(Default::default);
    let Some(arn) = status.permission_set_arn.clone() else {
        return Ok(Progress::ready("Retained", "no permission set was made for this resource"));
    };
    let ic = IdentityCenter::new(&pass.aws);
    let inst = instance(&ic, pass).await?;
    let mut progress = Progress::ready("Deleted", "the assignments were removed and the permission set deleted");
    if pass.mode == Mode::Plan {
        progress.actions.push(format!("remove every assignment of {arn}, then delete it"));
        return Ok(progress);
    }
    let mut pending = 0;
    for row in status.assignments.clone() {
        let Some(gid) = row.group_id.clone() else { continue };
        let assigned = ic.assigned_accounts(&inst.arn, &arn, &gid).await?;
        if assigned.contains(&row.account_id) {
            ic.unassign(&inst.arn, &arn, &row.account_id, &gid).await?;
            progress.writes += 1;
            progress.actions.push(format!("remove group {:?} from {}", row.group, row.account_id));
            pending += 1;
        }
    }
    if pending > 0 {
        // Retried by the caller (the finalizer stays) until no assignment is left.
        return Err(Error::transient(
            "Creating",
            format!("removing {pending} assignment(s) first; the permission set is deleted once they are gone"),
        ));
    }
    match ic.delete(&inst.arn, &arn).await {
        Ok(()) => {}
        Err(e) if e.code == "ResourceNotFoundException" => {}
        Err(e) if e.code == "ConflictException" => {
            return Err(Error::transient(
                "Creating",
                format!("Identity Center still has assignments of {arn} ({}); deleted once they are gone", e.message),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    progress.writes += 1;
    progress.actions.push(format!("delete permission set {arn}"));
    Ok(progress)
}

impl super::KindSpec for PermissionSet {
    const KIND: Kind = Kind::PermissionSet;
    const DEPENDS_ON: &'static [Kind] = &[Kind::OrganizationalUnit, Kind::AwsAccount];
    const SEES: &'static [Kind] = &[Kind::AccountAssignment];
    crate::status_access!();

    fn dependencies(&self) -> Vec<Key> {
        self.spec
            .assignments
            .iter()
            .flat_map(|a| {
                a.account_refs
                    .iter()
                    .map(|r| Key::new(Kind::AwsAccount, &r.name))
                    .chain(a.organizational_unit_refs.iter().map(|r| Key::new(Kind::OrganizationalUnit, &r.name)))
            })
            .collect()
    }
    fn after_kinds(&self) -> &'static [Kind] {
        // Accounts created in or moved into an OU in this pass are covered by its assignments.
        // Groups made in this pass are found by their display name.
        if self.spec.assignments.iter().any(|a| !a.organizational_unit_refs.is_empty()) {
            &[Kind::AwsAccount, Kind::IdentityCenterGroup]
        } else {
            &[Kind::IdentityCenterGroup]
        }
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.permission_set_arn.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
    fn declare_metrics(m: &crate::metrics::Metrics) {
        gauge(m);
        account_gauge(m);
    }
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        let g = gauge(m);
        let name = kube::ResourceExt::name_any(self);
        let accounts = account_gauge(m);
        let now: BTreeSet<String> = self
            .status
            .iter()
            .flat_map(|s| s.assignments.iter())
            .filter(|a| a.state == "Assigned")
            .map(|a| a.account_id.clone())
            .collect();
        let mut series = ACCOUNT_SERIES.lock().expect("not poisoned");
        let before = series.insert(name.clone(), now.clone()).unwrap_or_default();
        for gone in before.difference(&now) {
            let _ = accounts.remove_label_values(&[&name, gone]);
        }
        for account in &now {
            accounts.with_label_values(&[&name, account]).set(1);
        }
        for state in ["Assigned", "Creating", "Deleting", "Queued", "Failed", "GroupNotFound"] {
            let n = self
                .status
                .as_ref()
                .map_or(0, |s| s.assignments.iter().filter(|a| a.state == state).count());
            g.with_label_values(&[&name, state]).set(n as i64);
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let g = gauge(m);
        let name = kube::ResourceExt::name_any(self);
        let accounts = account_gauge(m);
        let before = ACCOUNT_SERIES
            .lock()
            .expect("not poisoned")
            .remove(&name)
            .unwrap_or_default();
        for gone in before {
            let _ = accounts.remove_label_values(&[&name, &gone]);
        }
        for state in ["Assigned", "Creating", "Deleting", "Queued", "Failed", "GroupNotFound"] {
            let _ = g.remove_label_values(&[&name, state]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        s.permission_set_arn.as_ref()?;
        let failed = s.assignments.iter().filter(|a| a.state == "Failed" || a.state == "GroupNotFound").count();
        Some(format!(
            "permission set {}: assigned {} time(s) in {} account(s){}",
            self.spec.name,
            s.assigned_count,
            s.provisioned_accounts.len(),
            if failed > 0 { format!(", {failed} FAILED") } else { String::new() }
        ))
    }
}

/// The per-account series this process set, by permission set (removed by full label set only).
static ACCOUNT_SERIES: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>> =
    std::sync::Mutex::new(BTreeMap::new());

fn account_gauge(m: &crate::metrics::Metrics) -> prometheus::IntGaugeVec {
    m.kind_gauge(
        "permission_set_account_assigned",
        "1 for each account a permission set is assigned in (the dashboard lists accounts without any)",
        &["name", "account_id"],
    )
}

fn gauge(m: &crate::metrics::Metrics) -> prometheus::IntGaugeVec {
    m.kind_gauge(
        "permission_set_assignments",
        "Assignments of a permission set by state (Assigned, Creating, Deleting, Failed, GroupNotFound)",
        &["name", "state"],
    )
}
