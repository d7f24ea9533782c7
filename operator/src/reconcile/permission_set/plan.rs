//! PermissionSet planning: desired + observed → actions and drift, and each assignment's state
//! from the requests AWS is still working on.

use super::aws::{PermissionSetInfo, RequestState};
use crate::api::{Drift, ManagementPolicy, Tags};
use crate::reconcile::tags::diff_tags;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// (account id, group display name).
pub type Target = (String, String);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub info: PermissionSetInfo,
    pub managed: BTreeSet<String>,
    pub customer: BTreeSet<(String, String)>,
    pub inline: Option<Value>,
    /// `managed:ARN` or `customer:/path/name`.
    pub boundary: Option<String>,
    pub tags: Tags,
    pub assignments: BTreeSet<Target>,
    /// Assignments an `AccountAssignment` holds (a claim's): not this set's to remove.
    pub held_elsewhere: BTreeSet<Target>,
    pub policy: ManagementPolicy,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub info: Option<PermissionSetInfo>,
    pub adopted: bool,
    pub managed: BTreeSet<String>,
    pub customer: BTreeSet<(String, String)>,
    pub inline: Option<String>,
    pub boundary: Option<String>,
    pub tags: Tags,
    /// Group display name → id (`None`: no such group in the Identity Store).
    pub groups: BTreeMap<String, Option<String>>,
    /// Assignments of this permission set to the spec's groups, as AWS lists them.
    pub assigned: BTreeSet<Target>,
    /// Requests still followed (from status), with where AWS says they stand.
    pub creating: BTreeMap<Target, (String, RequestState)>,
    pub deleting: BTreeMap<Target, (String, RequestState)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    AttachManaged(String),
    DetachManaged(String),
    AttachCustomer(String, String),
    DetachCustomer(String, String),
    PutInline(String),
    DeleteInline,
    PutBoundary(String),
    DeleteBoundary,
    Tag(Tags),
    Untag(Vec<String>),
    /// Re-provision where the set is provisioned, after a change to it.
    Provision,
    Assign { account: String, group: String, group_id: String },
    Unassign { account: String, group: String, group_id: String },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Create => write!(f, "create the permission set"),
            Action::Update => write!(f, "update description, session duration and relay state"),
            Action::AttachManaged(a) => write!(f, "attach {a}"),
            Action::DetachManaged(a) => write!(f, "detach {a}"),
            Action::AttachCustomer(n, p) => write!(f, "attach customer-managed policy {p}{n}"),
            Action::DetachCustomer(n, p) => write!(f, "detach customer-managed policy {p}{n}"),
            Action::PutInline(_) => write!(f, "put the inline policy"),
            Action::DeleteInline => write!(f, "delete the inline policy"),
            Action::PutBoundary(b) => write!(f, "set the permissions boundary to {b}"),
            Action::DeleteBoundary => write!(f, "remove the permissions boundary"),
            Action::Tag(t) => write!(f, "tag with {}", t.keys().cloned().collect::<Vec<_>>().join(", ")),
            Action::Untag(k) => write!(f, "remove tags {}", k.join(", ")),
            Action::Provision => write!(f, "re-provision to the accounts it is in"),
            Action::Assign { account, group, .. } => write!(f, "assign group {group:?} in {account}"),
            Action::Unassign { account, group, .. } => {
                write!(f, "remove group {group:?} from {account}")
            }
        }
    }
}

/// An assignment's state for status: `Assigned`, `Creating`, `Deleting`, `Failed`, `GroupNotFound`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetState {
    pub state: &'static str,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
    pub states: BTreeMap<Target, TargetState>,
}

fn same_json(desired: &Option<Value>, observed: &Option<String>) -> bool {
    match (desired, observed) {
        (None, None) => true,
        (Some(d), Some(o)) => serde_json::from_str::<Value>(o).ok().as_ref() == Some(d),
        _ => false,
    }
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    let exists = observed.info.is_some();
    let mut changed_content = false;
    match &observed.info {
        None => plan.actions.push(Action::Create),
        Some(o) => {
            let d = &desired.info;
            for (field, want, got) in [
                ("description", &d.description, &o.description),
                ("sessionDuration", &d.session_duration, &o.session_duration),
                ("relayState", &d.relay_state, &o.relay_state),
            ] {
                if want != got {
                    plan.drift.push(Drift::new(field, want, got));
                }
            }
            if d.description != o.description
                || d.session_duration != o.session_duration
                || d.relay_state != o.relay_state
            {
                plan.actions.push(Action::Update);
                changed_content = true;
            }
        }
    }
    for a in desired.managed.difference(&observed.managed) {
        if exists {
            plan.drift.push(Drift::new(format!("managedPolicyArns.{a}"), "attached", "absent"));
        }
        plan.actions.push(Action::AttachManaged(a.clone()));
    }
    for a in observed.managed.difference(&desired.managed) {
        plan.drift.push(Drift::new(format!("managedPolicyArns.{a}"), "absent", "attached"));
        plan.actions.push(Action::DetachManaged(a.clone()));
    }
    for (n, p) in desired.customer.difference(&observed.customer) {
        if exists {
            plan.drift.push(Drift::new(format!("customerManagedPolicies.{p}{n}"), "attached", "absent"));
        }
        plan.actions.push(Action::AttachCustomer(n.clone(), p.clone()));
    }
    for (n, p) in observed.customer.difference(&desired.customer) {
        plan.drift.push(Drift::new(format!("customerManagedPolicies.{p}{n}"), "absent", "attached"));
        plan.actions.push(Action::DetachCustomer(n.clone(), p.clone()));
    }
    if !same_json(&desired.inline, &observed.inline) {
        if exists {
            plan.drift.push(Drift::new(
                "inlinePolicy",
                if desired.inline.is_some() { "set" } else { "absent" },
                if observed.inline.is_some() { "different" } else { "absent" },
            ));
        }
        plan.actions.push(match &desired.inline {
            Some(v) => Action::PutInline(v.to_string()),
            None => Action::DeleteInline,
        });
    }
    if desired.boundary != observed.boundary {
        if exists {
            plan.drift.push(Drift::new(
                "permissionsBoundary",
                desired.boundary.as_deref().unwrap_or("absent"),
                observed.boundary.as_deref().unwrap_or("absent"),
            ));
        }
        plan.actions.push(match &desired.boundary {
            Some(b) => Action::PutBoundary(b.clone()),
            None => Action::DeleteBoundary,
        });
    }
    changed_content |= plan.actions.iter().any(|a| {
        matches!(
            a,
            Action::AttachManaged(_)
                | Action::DetachManaged(_)
                | Action::AttachCustomer(..)
                | Action::DetachCustomer(..)
                | Action::PutInline(_)
                | Action::DeleteInline
                | Action::PutBoundary(_)
                | Action::DeleteBoundary
        )
    });
    if exists {
        let tags = diff_tags(&desired.tags, &observed.tags);
        plan.drift.extend(tags.drift);
        if !tags.set.is_empty() {
            plan.actions.push(Action::Tag(tags.set));
        }
        if !tags.remove.is_empty() {
            plan.actions.push(Action::Untag(tags.remove));
        }
    }
    // The accounts already carrying the set get the change too (new assignments provision it).
    if exists && changed_content {
        plan.actions.push(Action::Provision);
    }

    for target in &desired.assignments {
        let (account, group) = target;
        let Some(Some(group_id)) = observed.groups.get(group) else {
            plan.states.insert(
                target.clone(),
                TargetState {
                    state: "GroupNotFound",
                    reason: Some(format!("the Identity Store has no group named {group:?}")),
                    request_id: None,
                },
            );
            continue;
        };
        if observed.assigned.contains(target) {
            plan.states.insert(target.clone(), TargetState { state: "Assigned", reason: None, request_id: None });
            continue;
        }
        match observed.creating.get(target) {
            Some((id, RequestState::InProgress)) => {
                plan.states.insert(
                    target.clone(),
                    TargetState { state: "Creating", reason: None, request_id: Some(id.clone()) },
                );
            }
            // Listed a moment after it succeeded.
            Some((_, RequestState::Succeeded)) => {
                plan.states.insert(target.clone(), TargetState { state: "Assigned", reason: None, request_id: None });
            }
            // Retried on the next reconcile, once a human has seen why.
            Some((_, RequestState::Failed(reason))) => {
                plan.states.insert(
                    target.clone(),
                    TargetState { state: "Failed", reason: Some(reason.clone()), request_id: None },
                );
            }
            None => {
                if exists {
                    plan.drift.push(Drift::new(format!("assignments.{group}.{account}"), "assigned", "absent"));
                }
                plan.actions.push(Action::Assign {
                    account: account.clone(),
                    group: group.clone(),
                    group_id: group_id.clone(),
                });
                plan.states.insert(target.clone(), TargetState { state: "Creating", reason: None, request_id: None });
            }
        }
    }
    for target in observed.assigned.difference(&desired.assignments).filter(|t| !desired.held_elsewhere.contains(*t)) {
        let (account, group) = target;
        let Some(Some(group_id)) = observed.groups.get(group) else { continue };
        match observed.deleting.get(target) {
            Some((id, RequestState::InProgress)) => {
                plan.states.insert(
                    target.clone(),
                    TargetState { state: "Deleting", reason: None, request_id: Some(id.clone()) },
                );
            }
            Some((_, RequestState::Failed(reason))) => {
                plan.states.insert(
                    target.clone(),
                    TargetState { state: "Failed", reason: Some(format!("removal failed: {reason}")), request_id: None },
                );
            }
            _ => {
                plan.drift.push(Drift::new(format!("assignments.{group}.{account}"), "absent", "assigned"));
                plan.actions.push(Action::Unassign {
                    account: account.clone(),
                    group: group.clone(),
                    group_id: group_id.clone(),
                });
                plan.states.insert(target.clone(), TargetState { state: "Deleting", reason: None, request_id: None });
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info() -> PermissionSetInfo {
        PermissionSetInfo {
            arn: "arn:ps".into(),
            name: "Developer".into(),
            description: "Build".into(),
            session_duration: "PT8H".into(),
            relay_state: String::new(),
        }
    }

    fn t(a: &str, g: &str) -> Target {
        (a.to_string(), g.to_string())
    }

    fn desired() -> Desired {
        Desired {
            info: info(),
            managed: ["arn:aws:iam::aws:policy/PowerUserAccess".to_string()].into(),
            inline: Some(json!({"Version": "2012-10-17", "Statement": []})),
            assignments: [t("111111111111", "devs"), t("222222222222", "devs")].into(),
            ..Default::default()
        }
    }

    fn in_sync() -> Observed {
        Observed {
            info: Some(info()),
            managed: ["arn:aws:iam::aws:policy/PowerUserAccess".to_string()].into(),
            inline: Some(r#"{"Statement":[],"Version":"2012-10-17"}"#.into()),
            groups: [("devs".to_string(), Some("g-1".to_string()))].into(),
            assigned: [t("111111111111", "devs"), t("222222222222", "devs")].into(),
            ..Default::default()
        }
    }

    fn actions(p: &Plan) -> Vec<String> {
        p.actions.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn plans() {
        assert!(plan(&desired(), &in_sync()).actions.is_empty());

        // A policy detached and the session changed by hand: both corrected, then re-provisioned.
        let mut o = in_sync();
        o.managed.clear();
        o.info.as_mut().unwrap().session_duration = "PT1H".into();
        let p = plan(&desired(), &o);
        assert_eq!(
            actions(&p),
            vec![
                "update description, session duration and relay state",
                "attach arn:aws:iam::aws:policy/PowerUserAccess",
                "re-provision to the accounts it is in"
            ]
        );

        // An account joins the OU (desired grows), another leaves it (assigned beyond desired).
        let mut d = desired();
        d.assignments.insert(t("333333333333", "devs"));
        d.assignments.remove(&t("222222222222", "devs"));
        let p = plan(&d, &in_sync());
        assert_eq!(
            actions(&p),
            vec![
                "assign group \"devs\" in 333333333333",
                "remove group \"devs\" from 222222222222"
            ]
        );
        assert_eq!(p.states[&t("333333333333", "devs")].state, "Creating");
        assert_eq!(p.states[&t("222222222222", "devs")].state, "Deleting");

        // The same account left the spec, but an AccountAssignment (a team's claim) holds it: kept.
        d.held_elsewhere.insert(t("222222222222", "devs"));
        let p = plan(&d, &in_sync());
        assert_eq!(actions(&p), vec!["assign group \"devs\" in 333333333333"]);
        assert!(p.drift.iter().all(|x| !x.field.ends_with("222222222222")), "{:?}", p.drift);
    }

    #[test]
    fn requests_are_followed_failures_reported_and_missing_groups_do_not_block_the_rest() {
        let mut o = in_sync();
        o.assigned.clear();
        o.creating.insert(t("111111111111", "devs"), ("r-1".into(), RequestState::InProgress));
        o.creating.insert(
            t("222222222222", "devs"),
            ("r-2".into(), RequestState::Failed("Received a 404 status error: No role found".into())),
        );
        let p = plan(&desired(), &o);
        assert!(p.actions.is_empty(), "no second request while one is followed: {:?}", p.actions);
        assert_eq!(p.states[&t("111111111111", "devs")].state, "Creating");
        let failed = &p.states[&t("222222222222", "devs")];
        assert_eq!(failed.state, "Failed");
        assert!(failed.reason.as_deref().unwrap().contains("No role found"));
        // Next reconcile: the failure was reported, the request is no longer followed: retried.
        o.creating.remove(&t("222222222222", "devs"));
        assert_eq!(actions(&plan(&desired(), &o)), vec!["assign group \"devs\" in 222222222222"]);

        let mut d = desired();
        d.assignments.insert(t("111111111111", "ghosts"));
        let p = plan(&d, &in_sync());
        assert_eq!(p.states[&t("111111111111", "ghosts")].state, "GroupNotFound");
        assert!(p.actions.is_empty());
    }

    #[test]
    fn a_new_set_is_created_with_everything_and_not_reprovisioned() {
        let o = Observed {
            groups: [("devs".to_string(), Some("g-1".to_string()))].into(),
            ..Default::default()
        };
        let got = actions(&plan(&desired(), &o));
        assert_eq!(got[0], "create the permission set");
        assert!(!got.iter().any(|a| a.starts_with("re-provision")), "{got:?}");
        assert_eq!(got.iter().filter(|a| a.starts_with("assign")).count(), 2);
    }
}
