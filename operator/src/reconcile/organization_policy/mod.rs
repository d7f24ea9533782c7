//! OrganizationPolicy: observe (the policy, its targets and tags; slots only where an attachment
//! changes) → plan → apply.
//!
//! Reads per resync, for a policy in sync: DescribePolicy, ListTargetsForPolicy and
//! ListTagsForResource — nothing per account. ListPolicies (by type) only to find a policy by name
//! (adoption, or after a lost CreatePolicy answer); ListPoliciesForTarget only for a target the
//! policy is about to be attached to or detached from, to check AWS's limits before writing.

pub mod aws;
pub mod plan;

use self::aws::{PolicyInfo, Policies};
use self::plan::{Action, Desired, Observed};
use super::driver::{self, Applied, Reconciler};
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness};
use crate::api::organization_policy::{BASELINE_LABEL, Coverage, PolicyType, TargetSlots};
use crate::api::{
    DeletionPolicy, ManagementPolicy, OrganizationPolicy, OrganizationPolicyStatus,
};
use crate::metrics::Metrics;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;


/// Uncovered targets listed in status (the count is exact).
const MAX_LISTED_UNCOVERED: usize = 100;

fn desired(pol: &OrganizationPolicy, pass: &Pass) -> Result<Desired, Error> {
    let t = &pol.spec.targets;
    let mut targets = BTreeSet::new();
    if t.root {
        targets.insert(pass.snapshot.root_id.clone());
    }
    for r in &t.organizational_unit_refs {
        targets.insert(pass.resolve(&Key::new(Kind::OrganizationalUnit, &r.name))?);
    }
    for r in &t.account_refs {
        targets.insert(pass.resolve(&Key::new(Kind::AwsAccount, &r.name))?);
    }
    for id in &t.ids {
        if !exists(pass, id) {
            return Err(Error::InvalidSpec {
                message: format!(
                    "targets.ids: {id} is not the root, an OU or an account of this Organization; correct the id or name the target by reference"
                ),
            });
        }
        targets.insert(id.clone());
    }
    Ok(Desired {
        policy_type: pol.spec.policy_type,
        name: pol.spec.policy_name.clone(),
        description: pol.spec.description.clone(),
        document: plan::parse_document(
            pol.spec.document.as_deref(),
            pol.spec.document_object.as_ref(),
        )?,
        tags: pol.spec.tags.clone(),
        targets,
        policy: pol.spec.management_policy,
    })
}

/// A root, OU or account of the Organization as last read (not a plan's placeholder).
fn exists(pass: &Pass, id: &str) -> bool {
    pass.snapshot.parent_exists(id) || pass.snapshot.accounts.contains_key(id)
}

/// Finds the policy by the id in status, else by name among the policies of its type.
async fn find(
    api: &Policies,
    status_id: Option<&str>,
    desired: &Desired,
) -> Result<(Option<PolicyInfo>, bool), Error> {
    if let Some(id) = status_id
        && let Some(p) = api.describe(id).await?
    {
        return Ok((Some(p), false));
    }
    let named: Vec<PolicyInfo> = api
        .list(desired.policy_type.aws())
        .await?
        .into_iter()
        .filter(|p| p.name == desired.name)
        .collect();
    match named.as_slice() {
        [] => Ok((None, false)),
        [one] => Ok((api.describe(&one.id).await?, true)),
        many => Err(Error::conflict(
            "AmbiguousPolicy",
            format!(
                "{} {} policies are named {:?} ({}): rename or delete the extra ones so one can be adopted",
                many.len(),
                desired.policy_type.aws(),
                desired.name,
                many.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Reads the policy, its targets and tags, and the slots of the targets whose attachment changes
/// (or of every target, for a deletion).
async fn observe(
    api: &Policies,
    pass: &Pass,
    status_id: Option<&str>,
    counted: &BTreeSet<String>,
    desired: &Desired,
    all_slots: bool,
) -> Result<Observed, Error> {
    let (policy, adopted) = find(api, status_id, desired).await?;
    let (targets, tags) = match &policy {
        Some(p) => (
            api.targets(&p.id).await?.into_iter().collect(),
            pass.aws.organizations.list_tags(&p.id).await?,
        ),
        None => (BTreeSet::new(), Default::default()),
    };
    let type_status = pass
        .snapshot
        .root
        .policy_types
        .get(desired.policy_type.aws())
        .cloned();
    let changing: BTreeSet<String> = if all_slots {
        targets.clone()
    } else if desired.policy == ManagementPolicy::Observe {
        // Nothing is attached or detached in Observe mode: no limit to check.
        BTreeSet::new()
    } else {
        desired
            .targets
            .symmetric_difference(&targets)
            .cloned()
            // A target attached before this resource counted its slots (adopted, attached by an
            // earlier run, or a status lost): counted once, so the slots gauge has it too.
            .chain(
                targets
                    .iter()
                    .filter(|t| desired.targets.contains(*t) && !counted.contains(*t))
                    .cloned(),
            )
            .collect()
    };
    let mut slots = BTreeMap::new();
    let mut names = BTreeMap::new();
    for target in changing {
        if let Some(name) = pass.snapshot.name_of(&target) {
            names.insert(target.clone(), name.to_string());
        }
        if type_status.as_deref() == Some("ENABLED") && exists(pass, &target) {
            let attached = api.attached_to(&target, desired.policy_type.aws()).await?;
            slots.insert(target, attached);
        }
    }
    Ok(Observed {
        type_status,
        root_id: pass.snapshot.root_id.clone(),
        policy,
        adopted,
        targets,
        tags,
        slots,
        names,
    })
}

pub async fn reconcile(
    policy: &mut OrganizationPolicy,
    pass: &mut Pass,
) -> Result<Progress, Error> {
    driver::reconcile(policy, pass).await
}

impl Reconciler for OrganizationPolicy {
    type Desired = Desired;
    type Observed = Observed;
    type Action = Action;
    type Scratch = ();

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    fn desired(&self, pass: &Pass) -> Result<Desired, Error> {
        desired(self, pass)
    }

    async fn observe(&self, desired: &Desired, pass: &Pass) -> Result<Observed, Error> {
        let status = self.status.clone().unwrap_or_default();
        let api = Policies::new(pass.aws.organizations_client.clone());
        let counted: BTreeSet<String> = status.slots.iter().map(|s| s.target_id.clone()).collect();
        let mut observed =
            observe(&api, pass, status.id.as_deref(), &counted, desired, false).await?;
        // An Organization resource, when there is one, owns the policy types: a plan shows this
        // policy as it will be once the Organization has enabled the type; an apply waits for that.
        let org_managed =
            observed.type_status.is_none() && pass.ids.contains_key(&super::organization::key());
        if org_managed && pass.mode == Mode::Apply {
            return Err(Error::WaitingForDependency {
                kind: "Organization",
                name: "organization".into(),
                why: format!(
                    "it manages the policy types and has not enabled {} yet (list {:?} in its spec.policyTypes if it does not)",
                    desired.policy_type.aws(),
                    desired.policy_type
                ),
            });
        }
        if org_managed {
            observed.type_status = Some("ENABLED".into());
        }
        Ok(observed)
    }

    fn plan(desired: &Desired, observed: &Observed) -> Result<driver::Plan<Action>, Error> {
        let p = plan::plan(desired, observed)?;
        let mut out = driver::Plan::new(p.actions, p.drift);
        out.notes = p
            .adopt
            .iter()
            .map(|id| format!("adopt existing policy {id}"))
            .collect();
        Ok(out)
    }

    fn record(&mut self, desired: &Desired, observed: &Observed, writes: bool) {
        let status = self.status.get_or_insert_with(Default::default);
        if let Some(p) = &observed.policy {
            status.id = Some(p.id.clone());
            status.arn = Some(p.arn.clone());
        }
        record_slots(status, observed, desired, false);
        if !writes {
            set_attached(status, &observed.targets);
        }
    }

    async fn apply(
        &mut self,
        action: &Action,
        _desired: &Desired,
        _observed: &Observed,
        _scratch: &mut (),
        pass: &mut Pass,
    ) -> Result<Applied, Error> {
        let api = Policies::new(pass.aws.organizations_client.clone());
        let status = self.status.get_or_insert_with(Default::default);
        apply(&api, action, pass, status).await?;
        Ok(Applied::Done)
    }

    async fn finish(
        &mut self,
        desired: &Desired,
        observed: &Observed,
        plan: &driver::Plan<Action>,
        outcome: &driver::Outcome,
        _scratch: (),
        pass: &Pass,
    ) -> Result<Readiness, Error> {
        let baseline = is_baseline(self);
        let status = self.status.get_or_insert_with(Default::default);
        if outcome.wrote {
            set_attached(status, &desired.targets);
            record_slots(status, observed, desired, true);
        }
        status.coverage = baseline.then(|| {
            let reached: BTreeSet<String> = status.attached_to.iter().cloned().collect();
            let (covered, uncovered) =
                plan::coverage(&reached, &pass.snapshot, desired.policy_type);
            Coverage {
                covered: covered as i32,
                uncovered: uncovered.len() as i32,
                uncovered_targets: uncovered
                    .iter()
                    .take(MAX_LISTED_UNCOVERED)
                    .map(|id| match pass.snapshot.name_of(id) {
                        Some(name) => format!("{id} {name}"),
                        None => id.clone(),
                    })
                    .collect(),
            }
        });
        Ok(if !outcome.wrote && observed.policy.is_none() {
            pass.missing(format!(
                "no {} named {:?} exists",
                desired.policy_type.aws(),
                desired.name
            ))
        } else if !outcome.wrote && !plan.drift.is_empty() {
            Readiness::Ready {
                reason: "Observed",
                message:
                    "the policy exists; drift is reported, not corrected (managementPolicy: Observe)"
                        .into(),
            }
        } else {
            Readiness::Ready {
                reason: "Available",
                message: format!(
                    "the policy exists, is attached to {} target(s) and matches the spec",
                    desired.targets.len()
                ),
            }
        })
    }
}

fn is_baseline(pol: &OrganizationPolicy) -> bool {
    pol.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(BASELINE_LABEL))
        .is_some_and(|v| v == "true")
}

fn set_attached(status: &mut OrganizationPolicyStatus, targets: &BTreeSet<String>) {
    status.attached_to = targets.iter().cloned().collect();
    status.attached_count = targets.len() as i32;
}

/// Keeps the slot counts read this pass (after this resource's own change when `applied`).
fn record_slots(
    status: &mut OrganizationPolicyStatus,
    observed: &Observed,
    desired: &Desired,
    applied: bool,
) {
    let limit = desired.policy_type.max_attachments_per_target() as i32;
    for (target, attached) in &observed.slots {
        let mut n = attached.len() as i32;
        if applied {
            n += i32::from(desired.targets.contains(target)) - i32::from(observed.targets.contains(target));
        }
        let entry = TargetSlots {
            target_id: target.clone(),
            attached: n,
            limit,
        };
        match status.slots.iter_mut().find(|s| s.target_id == *target) {
            Some(s) => *s = entry,
            None => status.slots.push(entry),
        }
    }
    // Only targets the policy is (or is about to be) attached to.
    status
        .slots
        .retain(|s| desired.targets.contains(&s.target_id) || observed.targets.contains(&s.target_id));
    status.slots.sort_by(|a, b| a.target_id.cmp(&b.target_id));
}

/// The message AWS's reason leads with (see `aws::err_with_reason`).
fn has_reason(e: &crate::aws::AwsError, reason: &str) -> bool {
    e.code == "ConstraintViolationException" && e.message.starts_with(reason)
}

async fn apply(
    api: &Policies,
    action: &Action,
    pass: &mut Pass,
    status: &mut OrganizationPolicyStatus,
) -> Result<(), Error> {
    match action {
        Action::EnableType {
            root_id,
            policy_type,
        } => {
            // Policies of one type reconciled at once would each enable it: one does, under this
            // lock, and the others see it enabled in a fresh read of the root.
            static ENABLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
            let _one_at_a_time = ENABLING.lock().await;
            let roots = pass.aws.organizations.list_roots().await?;
            let status = roots
                .iter()
                .find(|r| r.id == *root_id)
                .and_then(|r| r.policy_types.get(policy_type.aws()));
            if status.is_none() {
                match api.enable_type(root_id, policy_type.aws()).await {
                    Ok(()) => {}
                    Err(e) if e.code == "PolicyTypeAlreadyEnabledException" => {}
                    Err(e) => return Err(e.into()),
                }
            }
            pass.snapshot_mut()
                .root
                .policy_types
                .insert(policy_type.aws().to_string(), "ENABLED".into());
        }
        Action::Create {
            policy_type,
            name,
            description,
            content,
            tags,
        } => {
            let created = api
                .create(policy_type.aws(), name, description, content, tags)
                .await
                .map_err(|e| match e.code.as_str() {
                    "DuplicatePolicyException" => Error::transient(
                        "PolicyNotYetVisible",
                        format!("AWS already has a policy named {name:?} that the last read did not show; it is adopted on the next read, shortly"),
                    ),
                    _ => refused_document(e),
                })?;
            status.id = Some(created.id.clone());
            status.arn = Some(created.arn.clone());
        }
        Action::Update {
            id,
            name,
            description,
            content,
        } => api
            .update(id, name.as_deref(), description.as_deref(), content.as_deref())
            .await
            .map_err(refused_document)?,
        Action::Tag { id, tags } => pass.aws.organizations.tag_resource(id, tags).await?,
        Action::Untag { id, keys } => pass.aws.organizations.untag_resource(id, keys).await?,
        Action::Attach { id, target } => {
            let id = id.clone().or_else(|| status.id.clone()).unwrap_or_default();
            match api.attach(&id, target).await {
                Ok(()) => {}
                // Attached meanwhile (by a retry whose first answer was lost): what we wanted.
                Err(e) if e.code == "DuplicatePolicyAttachmentException" => {}
                Err(e) if e.code == "PolicyTypeNotEnabledException" => {
                    return Err(Error::transient(
                        "PolicyTypePendingEnable",
                        format!("the policy type is not enabled on the root yet ({}); attaching again shortly", e.message),
                    ));
                }
                Err(e) if has_reason(&e, "POLICY_NUMBER_LIMIT_EXCEEDED") => {
                    return Err(Error::conflict(
                        "AttachmentLimitReached",
                        format!("AWS refused to attach {id} to {target}: it carries as many policies of this type as AWS allows ({}); detach one there, or attach this policy to a parent OU instead", e.message),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Action::Detach { id, target } => match api.detach(id, target).await {
            Ok(()) => {}
            Err(e) if e.code == "PolicyNotAttachedException" => {}
            Err(e) if has_reason(&e, "MIN_POLICY_TYPE_ATTACHMENT_LIMIT_EXCEEDED") => {
                return Err(Error::conflict(
                    "LastPolicyOfTarget",
                    format!("AWS keeps at least one service control policy on every target, and {id} is the last one on {target}: attach FullAWSAccess (or another SCP) there first"),
                ));
            }
            Err(e) => return Err(e.into()),
        },
        Action::Delete { id } => api.delete(id).await.map_err(|e| {
            if e.code == "PolicyInUseException" {
                Error::conflict(
                    "PolicyInUse",
                    format!("AWS refused to delete {id}: it is still attached somewhere ({}); it is detached and deleted on the next reconcile", e.message),
                )
            } else {
                e.into()
            }
        })?,
    }
    Ok(())
}

/// AWS's refusal of a document, as a spec error a human fixes.
fn refused_document(e: crate::aws::AwsError) -> Error {
    if e.code == "MalformedPolicyDocumentException" {
        Error::InvalidSpec {
            message: format!("AWS refused the document as malformed: {}", e.message),
        }
    } else if has_reason(&e, "POLICY_CONTENT_LIMIT_EXCEEDED") {
        Error::InvalidSpec {
            message: format!("AWS refused the document as too large: {}; split it into two policies", e.message),
        }
    } else {
        e.into()
    }
}

/// Carries out the deletion policy: Retain leaves AWS alone; Delete detaches the policy
/// everywhere and deletes it.
pub async fn delete(resource: &mut OrganizationPolicy, pass: &mut Pass) -> Result<Progress, Error> {
    let pol = resource;
    let policy_type = pol.spec.policy_type;
    let delete = pol.spec.deletion_policy == DeletionPolicy::Delete;
    let management = pol.spec.management_policy;
    let status = pol.status.get_or_insert_with(Default::default);
    let api = Policies::new(pass.aws.organizations_client.clone());
    let observed = match (&status.id, delete && management == ManagementPolicy::Manage) {
        (Some(_), true) => {
            // Only the policy the resource owns (by id): never one found by name at deletion.
            let desired = Desired {
                policy_type,
                name: String::new(),
                description: String::new(),
                document: serde_json::Value::Null,
                tags: Default::default(),
                targets: BTreeSet::new(),
                policy: management,
            };
            let o = observe(&api, pass, status.id.as_deref(), &BTreeSet::new(), &desired, true).await?;
            if o.adopted { Observed::default() } else { o }
        }
        _ => Observed::default(),
    };
    let actions = plan::plan_delete(policy_type, observed.policy.as_ref(), &observed, delete, management)?;
    let mut progress = Progress::ready(
        if actions.is_empty() { "Retained" } else { "Deleted" },
        if actions.is_empty() {
            "AWS left untouched"
        } else {
            "the policy was detached everywhere and deleted"
        },
    );
    progress.actions = actions.iter().map(ToString::to_string).collect();
    if pass.mode == Mode::Apply {
        for action in &actions {
            apply(&api, action, pass, status).await?;
            progress.writes += 1;
        }
    }
    Ok(progress)
}

/// The per-target series this process set, by policy name, so a target that is covered again
/// loses its series (the gauge library removes series only by their full label set).
static MISSING_SERIES: Mutex<BTreeMap<String, BTreeSet<String>>> = Mutex::new(BTreeMap::new());

fn gauges(m: &Metrics) -> [prometheus::IntGaugeVec; 4] {
    [
        m.kind_gauge(
            "policy_target_attachments",
            "Policies of a type attached to a target (root, OU, account), as last counted before a change",
            &["policy_type", "target_id"],
        ),
        m.kind_gauge(
            "policy_target_attachment_limit",
            "Policies of a type AWS allows on one target",
            &["policy_type", "target_id"],
        ),
        m.kind_gauge(
            "guardrail_uncovered_targets",
            "OUs and accounts a baseline policy does not reach",
            &["name", "policy_type"],
        ),
        m.kind_gauge(
            "guardrail_missing",
            "1 for each OU or account a baseline policy does not reach",
            &["name", "target"],
        ),
    ]
}

impl super::KindSpec for OrganizationPolicy {
    const KIND: Kind = Kind::OrganizationPolicy;
    const DEPENDS_ON: &'static [Kind] = &[
        Kind::OrganizationalUnit,
        Kind::AwsAccount,
        Kind::Organization,
    ];
    crate::status_access!();

    fn dependencies(&self) -> Vec<Key> {
        let t = &self.spec.targets;
        t.organizational_unit_refs
            .iter()
            .map(|r| Key::new(Kind::OrganizationalUnit, &r.name))
            .chain(t.account_refs.iter().map(|r| Key::new(Kind::AwsAccount, &r.name)))
            // The Organization resource, when there is one, enables the policy type first.
            .chain(std::iter::once(super::organization::key()))
            .collect()
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.id.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
    fn declare_metrics(metrics: &Metrics) {
        gauges(metrics);
    }
    fn record_metrics(&self, m: &Metrics) {
        let [attachments, limit, uncovered, missing] = gauges(m);
        let Some(s) = &self.status else { return };
        let policy_type = self.spec.policy_type.aws();
        for slot in &s.slots {
            attachments
                .with_label_values(&[policy_type, &slot.target_id])
                .set(i64::from(slot.attached));
            limit
                .with_label_values(&[policy_type, &slot.target_id])
                .set(i64::from(slot.limit));
        }
        let name = kube::ResourceExt::name_any(self);
        let now: BTreeSet<String> = s
            .coverage
            .iter()
            .flat_map(|c| c.uncovered_targets.iter().cloned())
            .collect();
        let mut set = MISSING_SERIES.lock().expect("not poisoned");
        let before = set.remove(&name).unwrap_or_default();
        for gone in before.difference(&now) {
            let _ = missing.remove_label_values(&[&name, gone]);
        }
        for target in &now {
            missing.with_label_values(&[&name, target]).set(1);
        }
        match &s.coverage {
            Some(c) => {
                uncovered
                    .with_label_values(&[&name, policy_type])
                    .set(i64::from(c.uncovered));
                set.insert(name, now);
            }
            None => {
                let _ = uncovered.remove_label_values(&[&name, policy_type]);
            }
        }
    }
    fn forget_metrics(&self, m: &Metrics) {
        let [_, _, uncovered, missing] = gauges(m);
        let name = kube::ResourceExt::name_any(self);
        let _ = uncovered.remove_label_values(&[&name, self.spec.policy_type.aws()]);
        let before = MISSING_SERIES
            .lock()
            .expect("not poisoned")
            .remove(&name)
            .unwrap_or_default();
        for gone in before {
            let _ = missing.remove_label_values(&[&name, &gone]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        s.id.as_ref()?;
        let kind = match self.spec.policy_type {
            PolicyType::ServiceControlPolicy => "SCP",
            PolicyType::ResourceControlPolicy => "RCP",
            PolicyType::TagPolicy => "tag policy",
            PolicyType::BackupPolicy => "backup policy",
            PolicyType::AiServicesOptOutPolicy => "AI opt-out policy",
        };
        let coverage = s
            .coverage
            .as_ref()
            .filter(|c| c.uncovered > 0)
            .map(|c| format!("; baseline, NOT reaching {} OU(s)/account(s)", c.uncovered))
            .unwrap_or_default();
        Some(format!(
            "{kind} {}: attached to {} target(s){coverage}",
            self.spec.policy_name, s.attached_count
        ))
    }
}
