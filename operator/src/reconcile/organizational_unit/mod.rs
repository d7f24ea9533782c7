//! OrganizationalUnit: observe (snapshot + tags) → plan → apply.

pub mod plan;

use self::plan::{Action, Desired, Observed};
use super::driver::{self, Applied, Reconciler};
use super::{Error, Mode, Pass, Progress, Readiness};
use crate::api::{DeletionPolicy, ManagementPolicy, OrganizationalUnit, Tags};
use crate::aws::organizations::OuInfo;


/// Finds the OU: by the id in status, else by name under the parent (adoption).
async fn observe(
    status_id: Option<&str>,
    desired: &Desired,
    pass: &Pass,
) -> Result<Observed, Error> {
    let snap = &pass.snapshot;
    let (ou, adopted) = match status_id.and_then(|id| snap.ous.get(id)) {
        Some(ou) => (Some(ou.clone()), false),
        None => {
            let named: Vec<&OuInfo> = snap.ous_named(&desired.parent_id, &desired.name).collect();
            match named.as_slice() {
                [] => (None, false),
                [one] => (Some((*one).clone()), true),
                many => {
                    return Err(Error::conflict(
                        "AmbiguousOrganizationalUnit",
                        format!(
                            "{} OUs are named {:?} under {} ({}): delete or rename the extra ones so one can be adopted",
                            many.len(),
                            desired.name,
                            desired.parent_id,
                            many.iter()
                                .map(|o| o.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let tags = match &ou {
        // Known, in sync at its last own read, and no event since: its tags are as they were.
        Some(_) if !pass.own_reads && status_id.is_some() => desired.tags.clone(),
        Some(ou) => pass.aws.organizations.list_tags(&ou.id).await?,
        None => Tags::new(),
    };
    Ok(Observed { ou, adopted, tags })
}

pub async fn reconcile(ou: &mut OrganizationalUnit, pass: &mut Pass) -> Result<Progress, Error> {
    driver::reconcile(ou, pass).await
}

impl Reconciler for OrganizationalUnit {
    type Desired = Desired;
    type Observed = Observed;
    type Action = Action;
    type Scratch = ();

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    fn desired(&self, pass: &Pass) -> Result<Desired, Error> {
        Ok(Desired {
            name: self.spec.name.clone(),
            parent_id: pass.resolve_parent(&self.spec.parent_ref, &self.spec.parent_id)?,
            tags: self.spec.tags.clone(),
            policy: self.spec.management_policy,
        })
    }

    async fn observe(&self, desired: &Desired, pass: &Pass) -> Result<Observed, Error> {
        let status_id = self.status.as_ref().and_then(|s| s.id.as_deref());
        observe(status_id, desired, pass).await
    }

    fn plan(desired: &Desired, observed: &Observed) -> Result<driver::Plan<Action>, Error> {
        let p = plan::plan(desired, observed)?;
        let mut out = driver::Plan::new(p.actions, p.drift);
        out.notes = p
            .adopt
            .iter()
            .map(|id| format!("adopt existing OU {id}"))
            .collect();
        Ok(out)
    }

    fn record(&mut self, _desired: &Desired, observed: &Observed, _writes: bool) {
        let status = self.status.get_or_insert_with(Default::default);
        if let Some(found) = &observed.ou {
            status.id = Some(found.id.clone());
            status.arn = Some(found.arn.clone());
            status.parent_id = Some(found.parent_id.clone());
        }
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
        Ok({
        if !outcome.wrote && observed.ou.is_none() {
            pass.missing(format!(
                "no OU named {:?} exists under {}",
                desired.name, desired.parent_id
            ))
        } else if !outcome.wrote && !plan.drift.is_empty() {
            Readiness::Ready {
                reason: "Observed",
                message:
                    "the OU exists; drift is reported, not corrected (managementPolicy: Observe)"
                        .into(),
            }
        } else {
            Readiness::Ready {
                reason: "Available",
                message: "the OU exists and matches the spec".into(),
            }
        }
        })
    }

    async fn apply(
        &mut self,
        action: &Action,
        _desired: &Desired,
        _observed: &Observed,
        _scratch: &mut (),
        pass: &mut Pass,
    ) -> Result<Applied, Error> {
        let status = self.status.get_or_insert_with(Default::default);
        apply(action, pass, status).await?;
        Ok(Applied::Done)
    }
}

async fn apply(
    action: &Action,
    pass: &mut Pass,
    status: &mut crate::api::OrganizationalUnitStatus,
) -> Result<(), Error> {
    let orgs = pass.aws.organizations.clone();
    match action {
        Action::Create {
            parent_id,
            name,
            tags,
        } => {
            let created = orgs.create_ou(parent_id, name, tags).await.map_err(|e| {
                if e.code == "DuplicateOrganizationalUnitException" {
                    // The snapshot predates an OU of this name (created a moment ago, perhaps by
                    // this operator): read the Organization again and adopt it.
                    pass.aws.snapshot_outdated();
                    Error::transient(
                        "OrganizationalUnitNotYetVisible",
                        format!("AWS already has an OU named {name:?} under {parent_id} that the last read of the Organization did not show; it is adopted on the next read, shortly"),
                    )
                } else {
                    e.into()
                }
            })?;
            status.id = Some(created.id.clone());
            status.arn = Some(created.arn.clone());
            status.parent_id = Some(created.parent_id.clone());
            pass.snapshot_mut().ous.insert(created.id.clone(), created);
        }
        Action::Rename { id, to } => {
            orgs.rename_ou(id, to).await?;
            if let Some(ou) = pass.snapshot_mut().ous.get_mut(id) {
                ou.name = to.clone();
            }
        }
        Action::Tag { id, tags } => orgs.tag_resource(id, tags).await?,
        Action::Untag { id, keys } => orgs.untag_resource(id, keys).await?,
        Action::Delete { id } => {
            orgs.delete_ou(id).await.map_err(|e| {
                if e.code == "OrganizationalUnitNotEmptyException" {
                    Error::conflict(
                        "OrganizationalUnitNotEmpty",
                        format!("AWS refused to delete {id}: {}", e.message),
                    )
                } else {
                    e.into()
                }
            })?;
            pass.snapshot_mut().ous.remove(id);
        }
    }
    Ok(())
}

/// Carries out the deletion policy: Retain leaves AWS alone; Delete removes the OU if it is empty.
pub async fn delete(resource: &mut OrganizationalUnit, pass: &mut Pass) -> Result<Progress, Error> {
    let ou = resource;
    let status = ou.status.get_or_insert_with(Default::default);
    let found = status
        .id
        .as_deref()
        .and_then(|id| pass.snapshot.ous.get(id))
        .cloned();
    let children = found
        .as_ref()
        .map(|o| pass.snapshot.children(&o.id))
        .unwrap_or_default();
    let actions = plan::plan_delete(
        found.as_ref(),
        children,
        ou.spec.deletion_policy == DeletionPolicy::Delete,
        ou.spec.management_policy,
    )?;
    let mut progress = Progress::ready(
        if actions.is_empty() {
            "Retained"
        } else {
            "Deleted"
        },
        if actions.is_empty() {
            "AWS left untouched"
        } else {
            "the OU was deleted"
        },
    );
    progress.actions = actions.iter().map(ToString::to_string).collect();
    if pass.mode == Mode::Apply {
        for action in &actions {
            apply(action, pass, status).await?;
            progress.writes += 1;
        }
    }
    Ok(progress)
}

impl super::KindSpec for crate::api::OrganizationalUnit {
    const KIND: super::Kind = super::Kind::OrganizationalUnit;
    const DEPENDS_ON: &'static [super::Kind] = &[super::Kind::OrganizationalUnit];
    crate::status_access!();

    fn dependencies(&self) -> Vec<super::Key> {
        super::registry::refs(super::Kind::OrganizationalUnit, &self.spec.parent_ref)
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.id.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
}
