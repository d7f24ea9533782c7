//! IdentityCenterGroup: a group of IAM Identity Center's own directory and its members.
//! A group synced from an external identity provider is referenced, never changed.
//!
//! Reads per resync: ListInstances, DescribeGroup, ListGroupMemberships (pages of 100), and
//! GetUserId per member named.

use super::permission_set::aws::IdentityCenter;
use super::driver::{self, Applied, Reconciler};
use super::{Error, Kind, Mode, Pass, Progress, Readiness};
use crate::api::{DeletionPolicy, Drift, IdentityCenterGroup, ManagementPolicy};
use std::collections::{BTreeMap, BTreeSet};


#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    SetDescription(String),
    Add(String),
    Remove(String),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Create => write!(f, "create the group"),
            Action::SetDescription(_) => write!(f, "set the description"),
            Action::Add(u) => write!(f, "add {u}"),
            Action::Remove(u) => write!(f, "remove {u}"),
        }
    }
}

/// Desired members by user name; observed members by user name (ids the Identity Store maps).
pub fn plan(
    exists: bool,
    description: (&str, &str),
    desired: &BTreeSet<String>,
    observed: &BTreeSet<String>,
    missing: &BTreeSet<String>,
) -> (Vec<Action>, Vec<Drift>) {
    let mut actions = Vec::new();
    let mut drift = Vec::new();
    if !exists {
        actions.push(Action::Create);
    } else if description.0 != description.1 {
        drift.push(Drift::new("description", description.0, description.1));
        actions.push(Action::SetDescription(description.0.to_string()));
    }
    for u in desired.difference(observed).filter(|u| !missing.contains(*u)) {
        if exists {
            drift.push(Drift::new(format!("members.{u}"), "member", "absent"));
        }
        actions.push(Action::Add(u.clone()));
    }
    for u in observed.difference(desired) {
        drift.push(Drift::new(format!("members.{u}"), "absent", "member"));
        actions.push(Action::Remove(u.clone()));
    }
    (actions, drift)
}

pub async fn reconcile(
    group: &mut IdentityCenterGroup,
    pass: &mut Pass,
) -> Result<Progress, Error> {
    driver::reconcile(group, pass).await
}

/// The spec's description and members.
pub struct Desired {
    description: String,
    members: BTreeSet<String>,
}

/// The group as Identity Center has it.
pub struct Observed {
    store: String,
    /// The group's id and description, when it exists.
    found: Option<(String, String)>,
    external: bool,
    /// User ids → names, of the members named in the spec.
    ids: BTreeMap<String, String>,
    /// Members named in the spec that the Identity Store has no user for.
    missing: BTreeSet<String>,
    /// The members (by name where the spec names them, else by id) and their membership ids.
    memberships: BTreeMap<String, String>,
}

impl Reconciler for IdentityCenterGroup {
    type Desired = Desired;
    type Observed = Observed;
    type Action = Action;
    type Scratch = ();

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    /// A group synced from an external identity provider is referenced, never changed.
    fn manages(&self, observed: &Observed) -> bool {
        self.spec.management_policy == ManagementPolicy::Manage && !observed.external
    }

    fn desired(&self, _pass: &Pass) -> Result<Desired, Error> {
        Ok(Desired {
            description: self.spec.description.clone(),
            members: self.spec.members.iter().cloned().collect(),
        })
    }

    async fn observe(&self, _desired: &Desired, pass: &Pass) -> Result<Observed, Error> {
        let ic = IdentityCenter::new(&pass.aws);
        let Some(inst) = ic.instance().await? else {
            return Err(Error::conflict(
                "IdentityCenterNotEnabled",
                format!(
                    "no IAM Identity Center instance in {}: enable Identity Center, or set --identity-center-region to its home region",
                    pass.aws.identity_center_region
                ),
            ));
        };
        let store = inst.identity_store_id.clone();
        let mut found = None;
        if let Some(id) = self.status.as_ref().and_then(|s| s.group_id.as_ref()) {
            found = ic.describe_group(&store, id).await?.map(|d| (id.clone(), d));
        }
        if found.is_none()
            && let Some(id) = ic.group_id(&store, &self.spec.display_name).await?
        {
            found = ic.describe_group(&store, &id).await?.map(|d| (id, d));
        }
        // Users: names → ids for the members named, and for whoever is in the group now.
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        let mut missing = BTreeSet::new();
        for u in &self.spec.members {
            match ic.user_id(&store, u).await? {
                Some(id) => {
                    ids.insert(id, u.clone());
                }
                None => {
                    missing.insert(u.clone());
                }
            }
        }
        let mut memberships: BTreeMap<String, String> = BTreeMap::new();
        if let Some((id, _)) = &found {
            for (user, membership) in ic.memberships(&store, id).await? {
                // A member not named in the spec is known by id only; its id stands for it.
                let name = ids.get(&user).cloned().unwrap_or_else(|| user.clone());
                memberships.insert(name, membership);
            }
        }
        Ok(Observed {
            store,
            external: found.as_ref().is_some_and(|(_, (_, _, ext))| *ext),
            found: found.map(|(id, (_, description, _))| (id, description)),
            ids,
            missing,
            memberships,
        })
    }

    fn plan(desired: &Desired, o: &Observed) -> Result<driver::Plan<Action>, Error> {
        let members: BTreeSet<String> = o.memberships.keys().cloned().collect();
        let description = o.found.as_ref().map(|(_, d)| d.as_str()).unwrap_or_default();
        let (actions, drift) = plan(
            o.found.is_some(),
            (&desired.description, description),
            &desired.members,
            &members,
            &o.missing,
        );
        Ok(driver::Plan::new(actions, drift))
    }

    fn record(&mut self, _desired: &Desired, o: &Observed, _writes: bool) {
        let status = self.status.get_or_insert_with(Default::default);
        status.identity_store_id = Some(o.store.clone());
        status.group_id = o.found.as_ref().map(|(id, _)| id.clone());
        status.external = o.external;
        status.missing_users = o.missing.iter().cloned().collect();
    }

    async fn apply(
        &mut self,
        action: &Action,
        _desired: &Desired,
        o: &Observed,
        _scratch: &mut (),
        pass: &mut Pass,
    ) -> Result<Applied, Error> {
        let ic = IdentityCenter::new(&pass.aws);
        let status = self.status.get_or_insert_with(Default::default);
        let store = status.identity_store_id.clone().unwrap_or_default();
        match action {
            Action::Create => {
                status.group_id = Some(
                    ic.create_group(&store, &self.spec.display_name, &self.spec.description)
                        .await?,
                );
            }
            Action::SetDescription(d) => {
                let id = status.group_id.clone().unwrap_or_default();
                match ic.update_group_description(&store, &id, d).await {
                    Ok(()) => {}
                    Err(e) if e.code == "Unimplemented" => {
                        let had = o.found.as_ref().map(|(_, d)| d.as_str()).unwrap_or_default();
                        return Ok(Applied::Left(vec![Drift::new("description", d, had)]));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Action::Add(u) => {
                let user = o
                    .ids
                    .iter()
                    .find(|(_, n)| *n == u)
                    .map(|(id, _)| id.clone())
                    .unwrap_or_default();
                ic.add_member(&store, status.group_id.as_deref().unwrap_or_default(), &user)
                    .await?;
            }
            Action::Remove(u) => {
                if let Some(m) = o.memberships.get(u) {
                    ic.remove_member(&store, m).await?;
                }
            }
        }
        Ok(Applied::Done)
    }

    async fn finish(
        &mut self,
        desired: &Desired,
        o: &Observed,
        _plan: &driver::Plan<Action>,
        outcome: &driver::Outcome,
        _scratch: (),
        pass: &Pass,
    ) -> Result<Readiness, Error> {
        Ok({
        let status = self.status.get_or_insert_with(Default::default);
        status.members = if outcome.wrote {
            desired.members.difference(&o.missing).cloned().collect()
        } else {
            o.memberships.keys().cloned().collect()
        };
        status.member_count = status.members.len() as i32;
        if o.external {
            Readiness::Ready {
                reason: "External",
                message: "the group is synced from an external identity provider: referenced, never changed here".into(),
            }
        } else if !o.missing.is_empty() {
            Readiness::NotReady {
                reason: "UsersNotFound",
                message: format!(
                    "the Identity Store has no user named {}: create them (or sync them from your identity provider); the other members are in place",
                    o.missing.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            }
        } else if !outcome.left.is_empty() {
            Readiness::Ready {
                reason: "Available",
                message: "the group and its members match the spec; the description could not be updated (the endpoint does not implement UpdateGroup)".into(),
            }
        } else if !outcome.wrote && o.found.is_none() {
            pass.missing(format!(
                "no Identity Center group named {:?} exists",
                self.spec.display_name
            ))
        } else {
            Readiness::Ready {
                reason: "Available",
                message: "the group and its members match the spec".into(),
            }
        }
        })
    }
}

pub async fn delete(resource: &mut IdentityCenterGroup, pass: &mut Pass) -> Result<Progress, Error> {
    let g = resource;
    let status = g.status.clone().unwrap_or_default();
    let (Some(id), Some(store)) = (status.group_id, status.identity_store_id) else {
        return Ok(Progress::ready("Retained", "AWS left untouched"));
    };
    if g.spec.deletion_policy != DeletionPolicy::Delete
        || g.spec.management_policy == ManagementPolicy::Observe
        || status.external
    {
        return Ok(Progress::ready("Retained", "AWS left untouched"));
    }
    let mut progress = Progress::ready("Deleted", "the group was deleted");
    progress.actions.push(format!("delete group {id}"));
    if pass.mode == Mode::Apply {
        let ic = IdentityCenter::new(&pass.aws);
        match ic.delete_group(&store, &id).await {
            Ok(()) => {}
            Err(e) if e.code == "ResourceNotFoundException" => {}
            Err(e) => return Err(e.into()),
        }
        progress.writes += 1;
    }
    Ok(progress)
}

impl super::KindSpec for IdentityCenterGroup {
    const KIND: Kind = Kind::IdentityCenterGroup;
    const DEPENDS_ON: &'static [Kind] = &[];
    crate::status_access!();

    fn dependencies(&self) -> Vec<super::Key> {
        Vec::new()
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.group_id.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn membership_is_exclusive_and_missing_users_are_not_invented() {
        let (actions, drift) = plan(
            true,
            ("Developers", "Developers"),
            &set(&["alice", "bob", "carol"]),
            &set(&["alice", "mallory"]),
            &set(&["carol"]),
        );
        let got: Vec<String> = actions.iter().map(ToString::to_string).collect();
        assert_eq!(got, vec!["add bob", "remove mallory"]);
        assert_eq!(drift.len(), 2);
        let (actions, _) = plan(false, ("d", ""), &set(&["alice"]), &set(&[]), &set(&[]));
        assert_eq!(actions, vec![Action::Create, Action::Add("alice".into())]);
        let (actions, drift) = plan(true, ("new", "old"), &set(&[]), &set(&[]), &set(&[]));
        assert_eq!(actions, vec![Action::SetDescription("new".into())]);
        assert_eq!(drift[0].field, "description");
    }
}
