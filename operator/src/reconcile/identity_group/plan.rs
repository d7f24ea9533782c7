//! IdentityGroup: desired + observed → actions and drift (pure). Managed policies, inline policies
//! and members are exclusive: what the spec does not list is removed.

use crate::api::Drift;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub managed: BTreeSet<String>,
    /// Inline policy name → document (parsed JSON).
    pub inline: BTreeMap<String, Value>,
    pub members: BTreeSet<String>,
    pub create_missing_users: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// `None`: the group does not exist. Else its path.
    pub path: Option<String>,
    pub managed: BTreeSet<String>,
    pub inline: BTreeMap<String, Value>,
    pub members: BTreeSet<String>,
    /// Listed members that do not exist as IAM users.
    pub missing_users: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateGroup,
    SetPath(String),
    Attach(String),
    Detach(String),
    PutInline(String),
    DeleteInline(String),
    CreateUser(String),
    AddMember(String),
    RemoveMember(String),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateGroup => write!(f, "create the group"),
            Action::SetPath(p) => write!(f, "move the group to path {p}"),
            Action::Attach(a) => write!(f, "attach {a}"),
            Action::Detach(a) => write!(f, "detach {a}"),
            Action::PutInline(n) => write!(f, "put inline policy {n}"),
            Action::DeleteInline(n) => write!(f, "delete inline policy {n}"),
            Action::CreateUser(u) => write!(f, "create user {u} (no credentials)"),
            Action::AddMember(u) => write!(f, "add {u}"),
            Action::RemoveMember(u) => write!(f, "remove {u}"),
        }
    }
}

/// Puts a policy document in a canonical form: IAM may answer `Statement`, `Action` and `Resource`
/// as a single value or a list, in another order, with other whitespace — equal JSON is not drift.
pub fn normalize_policy(doc: &Value) -> Value {
    fn list(v: &Value) -> Value {
        let mut items: Vec<Value> = match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        items.sort_by_key(|x| x.to_string());
        Value::Array(items)
    }
    let mut out = doc.clone();
    if let Some(obj) = out.as_object_mut()
        && let Some(st) = obj.get("Statement")
    {
        let mut statements: Vec<Value> = match list(st) {
            Value::Array(a) => a,
            _ => vec![],
        };
        for s in statements.iter_mut() {
            if let Some(so) = s.as_object_mut() {
                for key in ["Action", "NotAction", "Resource", "NotResource"] {
                    if let Some(v) = so.get(key).cloned() {
                        so.insert(key.to_string(), list(&v));
                    }
                }
            }
        }
        statements.sort_by_key(|x| x.to_string());
        obj.insert("Statement".into(), Value::Array(statements));
    }
    out
}

pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, crate::reconcile::Error> {
    let mut out = Plan::default();
    let exists = observed.path.is_some();
    if !exists {
        out.actions.push(Action::CreateGroup);
    } else if observed.path.as_deref() != Some(desired.path.as_str()) {
        out.drift.push(Drift::new(
            "path",
            &desired.path,
            observed.path.as_deref().unwrap_or(""),
        ));
        out.actions.push(Action::SetPath(desired.path.clone()));
    }
    for arn in desired.managed.difference(&observed.managed) {
        if exists {
            out.drift
                .push(Drift::new("managedPolicyArns", arn, "<absent>"));
        }
        out.actions.push(Action::Attach(arn.clone()));
    }
    for arn in observed.managed.difference(&desired.managed) {
        out.drift
            .push(Drift::new("managedPolicyArns", "<absent>", arn));
        out.actions.push(Action::Detach(arn.clone()));
    }
    for (name, doc) in &desired.inline {
        match observed.inline.get(name) {
            Some(have) if normalize_policy(have) == normalize_policy(doc) => {}
            Some(_) => {
                out.drift.push(Drift::new(
                    format!("inlinePolicies.{name}"),
                    "the spec's document",
                    "a different document",
                ));
                out.actions.push(Action::PutInline(name.clone()));
            }
            None => {
                if exists {
                    out.drift.push(Drift::new(
                        format!("inlinePolicies.{name}"),
                        "present",
                        "<absent>",
                    ));
                }
                out.actions.push(Action::PutInline(name.clone()));
            }
        }
    }
    for name in observed
        .inline
        .keys()
        .filter(|n| !desired.inline.contains_key(*n))
    {
        out.drift.push(Drift::new(
            format!("inlinePolicies.{name}"),
            "<absent>",
            "present",
        ));
        out.actions.push(Action::DeleteInline(name.clone()));
    }
    if !desired.create_missing_users && !observed.missing_users.is_empty() {
        return Err(crate::reconcile::Error::InvalidSpec {
            message: format!(
                "members {} are not IAM users in this account: create them, or set createMissingUsers: true",
                observed
                    .missing_users
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    for user in &observed.missing_users {
        out.actions.push(Action::CreateUser(user.clone()));
    }
    // IAM user names are unique regardless of case: "Alice" and "alice" are one user.
    let has = |set: &BTreeSet<String>, user: &str| set.iter().any(|u| u.eq_ignore_ascii_case(user));
    for user in desired
        .members
        .iter()
        .filter(|u| !has(&observed.members, u))
    {
        if exists {
            out.drift.push(Drift::new("members", user, "<absent>"));
        }
        out.actions.push(Action::AddMember(user.clone()));
    }
    for user in observed
        .members
        .iter()
        .filter(|u| !has(&desired.members, u))
    {
        out.drift.push(Drift::new("members", "<absent>", user));
        out.actions.push(Action::RemoveMember(user.clone()));
    }
    Ok(out)
}

/// Deleting a group: memberships and policies first (AWS refuses otherwise), then the group.
pub fn plan_delete(observed: &Observed) -> Vec<Action> {
    if observed.path.is_none() {
        return vec![];
    }
    let mut out: Vec<Action> = observed
        .members
        .iter()
        .cloned()
        .map(Action::RemoveMember)
        .collect();
    out.extend(observed.managed.iter().cloned().map(Action::Detach));
    out.extend(observed.inline.keys().cloned().map(Action::DeleteInline));
    out
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn desired() -> Desired {
        Desired {
            name: "developers".into(),
            path: "/".into(),
            managed: set(&["arn:aws:iam::aws:policy/PowerUserAccess"]),
            inline: [("deny-billing".to_string(), json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["aws-portal:*"], "Resource": "*"}]}))].into(),
            members: set(&["alice", "bob"]),
            create_missing_users: false,
        }
    }

    fn in_sync() -> Observed {
        Observed {
            path: Some("/".into()),
            managed: set(&["arn:aws:iam::aws:policy/PowerUserAccess"]),
            // IAM's answer: a single Statement object, Action as a string, keys reordered.
            inline: [("deny-billing".to_string(), json!({"Statement": {"Resource": ["*"], "Action": "aws-portal:*", "Effect": "Deny"}, "Version": "2012-10-17"}))].into(),
            members: set(&["alice", "bob"]),
            missing_users: set(&[]),
        }
    }

    #[test]
    fn plan_table() {
        let mut extra = in_sync();
        extra
            .managed
            .insert("arn:aws:iam::aws:policy/AdministratorAccess".into());
        extra.members.insert("mallory".into());
        let mut changed_doc = in_sync();
        changed_doc.inline.insert("deny-billing".into(), json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "aws-portal:*", "Resource": "*"}]}));
        changed_doc.inline.insert("stray".into(), json!({}));
        let mut missing = in_sync();
        missing.members.remove("bob");
        let mut other_case = in_sync();
        other_case.members = set(&["Alice", "BOB"]);
        let cases: Vec<(&str, Observed, Vec<&str>)> = vec![
            (
                "in sync although IAM reshaped the document",
                in_sync(),
                vec![],
            ),
            (
                "IAM user names ignore case: Alice is alice, no remove-and-add",
                other_case,
                vec![],
            ),
            (
                "extra policy and member (exclusive)",
                extra,
                vec![
                    "detach arn:aws:iam::aws:policy/AdministratorAccess",
                    "remove mallory",
                ],
            ),
            (
                "changed and stray inline policies",
                changed_doc,
                vec![
                    "put inline policy deny-billing",
                    "delete inline policy stray",
                ],
            ),
            (
                "member removed out of band: added back",
                missing,
                vec!["add bob"],
            ),
            (
                "no group yet",
                Observed::default(),
                vec![
                    "create the group",
                    "attach arn:aws:iam::aws:policy/PowerUserAccess",
                    "put inline policy deny-billing",
                    "add alice",
                    "add bob",
                ],
            ),
        ];
        for (reason, observed, want) in cases {
            let got: Vec<String> = plan(&desired(), &observed)
                .unwrap()
                .actions
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{reason}");
        }
    }

    #[test]
    fn missing_users_need_create_missing_users() {
        let mut o = in_sync();
        o.members.remove("bob");
        o.missing_users = set(&["bob"]);
        let e = plan(&desired(), &o).unwrap_err();
        assert!(e.to_string().contains("createMissingUsers"), "{e}");
        let mut d = desired();
        d.create_missing_users = true;
        let got: Vec<String> = plan(&d, &o)
            .unwrap()
            .actions
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, vec!["create user bob (no credentials)", "add bob"]);
    }

    #[test]
    fn delete_empties_the_group_first() {
        let got: Vec<String> = plan_delete(&in_sync())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            vec![
                "remove alice",
                "remove bob",
                "detach arn:aws:iam::aws:policy/PowerUserAccess",
                "delete inline policy deny-billing"
            ]
        );
        assert!(plan_delete(&Observed::default()).is_empty());
    }
}
