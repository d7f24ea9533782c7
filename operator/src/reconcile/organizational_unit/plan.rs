//! OrganizationalUnit: desired + observed → actions and drift (pure).

use crate::api::{Drift, ManagementPolicy, Tags};
use crate::aws::organizations::OuInfo;
use crate::reconcile::Error;
use crate::reconcile::tags::diff_tags;

/// The spec, with references resolved to AWS ids.
#[derive(Clone, Debug)]
pub struct Desired {
    pub name: String,
    pub parent_id: String,
    pub tags: Tags,
    pub policy: ManagementPolicy,
}

/// What AWS has for this resource.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub ou: Option<OuInfo>,
    /// True when the OU was found by name under the parent, not by the id in status.
    pub adopted: bool,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create {
        parent_id: String,
        name: String,
        tags: Tags,
    },
    Rename {
        id: String,
        to: String,
    },
    Tag {
        id: String,
        tags: Tags,
    },
    Untag {
        id: String,
        keys: Vec<String>,
    },
    Delete {
        id: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Create {
                parent_id, name, ..
            } => write!(f, "create OU {name:?} under {parent_id}"),
            Action::Rename { id, to } => write!(f, "rename {id} to {to:?}"),
            Action::Tag { tags, .. } => write!(
                f,
                "set tags {}",
                tags.keys().cloned().collect::<Vec<_>>().join(",")
            ),
            Action::Untag { keys, .. } => write!(f, "remove tags {}", keys.join(",")),
            Action::Delete { id } => write!(f, "delete OU {id}"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
    pub adopt: Option<String>,
}

pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, Error> {
    let Some(ou) = &observed.ou else {
        return Ok(Plan {
            actions: vec![Action::Create {
                parent_id: desired.parent_id.clone(),
                name: desired.name.clone(),
                tags: desired.tags.clone(),
            }],
            ..Default::default()
        });
    };
    if ou.parent_id != desired.parent_id {
        return Err(Error::conflict(
            "ParentChanged",
            format!(
                "OU {} is under {} but the spec asks for {}: AWS cannot move an OU; create a new OrganizationalUnit instead",
                ou.id, ou.parent_id, desired.parent_id
            ),
        ));
    }
    let mut out = Plan {
        adopt: observed.adopted.then(|| ou.id.clone()),
        ..Default::default()
    };
    if ou.name != desired.name {
        out.drift.push(Drift::new("name", &desired.name, &ou.name));
        out.actions.push(Action::Rename {
            id: ou.id.clone(),
            to: desired.name.clone(),
        });
    }
    let tags = diff_tags(&desired.tags, &observed.tags);
    out.drift.extend(tags.drift);
    if !tags.set.is_empty() {
        out.actions.push(Action::Tag {
            id: ou.id.clone(),
            tags: tags.set,
        });
    }
    if !tags.remove.is_empty() {
        out.actions.push(Action::Untag {
            id: ou.id.clone(),
            keys: tags.remove,
        });
    }
    Ok(out)
}

/// Deleting: only an empty OU, only when the policy says Delete and the resource is managed.
pub fn plan_delete(
    ou: Option<&OuInfo>,
    children: (usize, usize),
    delete: bool,
    policy: ManagementPolicy,
) -> Result<Vec<Action>, Error> {
    let Some(ou) = ou else { return Ok(vec![]) };
    if !delete || policy == ManagementPolicy::Observe {
        return Ok(vec![]);
    }
    let (ous, accounts) = children;
    if ous + accounts > 0 {
        return Err(Error::conflict(
            "OrganizationalUnitNotEmpty",
            format!(
                "OU {} ({}) still holds {accounts} account(s) and {ous} OU(s): move or delete them first, or set deletionPolicy: Retain",
                ou.name, ou.id
            ),
        ));
    }
    Ok(vec![Action::Delete { id: ou.id.clone() }])
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples by design
mod tests {
    use super::*;

    fn ou(id: &str, name: &str, parent: &str) -> OuInfo {
        OuInfo {
            id: id.into(),
            arn: format!("arn:aws:organizations::1:ou/{id}"),
            name: name.into(),
            parent_id: parent.into(),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn desired(name: &str, parent: &str, t: Tags) -> Desired {
        Desired {
            name: name.into(),
            parent_id: parent.into(),
            tags: t,
            policy: ManagementPolicy::Manage,
        }
    }

    #[test]
    fn plan_table() {
        struct Case {
            reason: &'static str,
            desired: Desired,
            observed: Observed,
            actions: Vec<&'static str>,
            drift_fields: Vec<&'static str>,
            adopt: bool,
        }
        let cases = vec![
            Case {
                reason: "missing OU is created with its tags",
                desired: desired("Security", "r-root", tags(&[("team", "sec")])),
                observed: Observed::default(),
                actions: vec!["create OU \"Security\" under r-root"],
                drift_fields: vec![],
                adopt: false,
            },
            Case {
                reason: "in sync: nothing to do",
                desired: desired("Security", "r-root", tags(&[("team", "sec")])),
                observed: Observed {
                    ou: Some(ou("ou-1", "Security", "r-root")),
                    adopted: false,
                    tags: tags(&[("team", "sec")]),
                },
                actions: vec![],
                drift_fields: vec![],
                adopt: false,
            },
            Case {
                reason: "same name under the same parent is adopted, not created",
                desired: desired("Security", "r-root", tags(&[])),
                observed: Observed {
                    ou: Some(ou("ou-1", "Security", "r-root")),
                    adopted: true,
                    tags: tags(&[]),
                },
                actions: vec![],
                drift_fields: vec![],
                adopt: true,
            },
            Case {
                reason: "renamed out of band (or in the spec): renamed in place",
                desired: desired("Workloads", "r-root", tags(&[])),
                observed: Observed {
                    ou: Some(ou("ou-1", "Workloadz", "r-root")),
                    adopted: false,
                    tags: tags(&[]),
                },
                actions: vec!["rename ou-1 to \"Workloads\""],
                drift_fields: vec!["name"],
                adopt: false,
            },
            Case {
                reason: "tag changed and extra tag: overwrite and remove",
                desired: desired("Sec", "r-root", tags(&[("team", "sec")])),
                observed: Observed {
                    ou: Some(ou("ou-1", "Sec", "r-root")),
                    adopted: false,
                    tags: tags(&[("team", "x"), ("old", "1")]),
                },
                actions: vec!["set tags team", "remove tags old"],
                drift_fields: vec!["tags.team", "tags.old"],
                adopt: false,
            },
        ];
        for c in cases {
            let p = plan(&c.desired, &c.observed).unwrap_or_else(|e| panic!("{}: {e}", c.reason));
            let actions: Vec<String> = p.actions.iter().map(ToString::to_string).collect();
            assert_eq!(actions, c.actions, "{}", c.reason);
            let fields: Vec<&str> = p.drift.iter().map(|d| d.field.as_str()).collect();
            assert_eq!(fields, c.drift_fields, "{}", c.reason);
            assert_eq!(p.adopt.is_some(), c.adopt, "{}", c.reason);
        }
    }

    #[test]
    fn a_different_parent_is_refused_not_moved() {
        let e = plan(
            &desired("Sec", "ou-2", tags(&[])),
            &Observed {
                ou: Some(ou("ou-1", "Sec", "r-root")),
                adopted: false,
                tags: tags(&[]),
            },
        )
        .unwrap_err();
        assert_eq!(e.reason(), "ParentChanged");
        assert!(e.to_string().contains("cannot move an OU"), "{e}");
    }

    #[test]
    fn delete_table() {
        let o = ou("ou-1", "Sandbox", "r-root");
        // (reason, ou, children, delete policy, management policy, expected actions or error reason)
        let table: Vec<(
            &str,
            Option<&OuInfo>,
            (usize, usize),
            bool,
            ManagementPolicy,
            Result<usize, &str>,
        )> = vec![
            (
                "empty OU with Delete is deleted",
                Some(&o),
                (0, 0),
                true,
                ManagementPolicy::Manage,
                Ok(1),
            ),
            (
                "Retain leaves AWS untouched",
                Some(&o),
                (0, 0),
                false,
                ManagementPolicy::Manage,
                Ok(0),
            ),
            (
                "Observe never deletes",
                Some(&o),
                (0, 0),
                true,
                ManagementPolicy::Observe,
                Ok(0),
            ),
            (
                "unknown OU: nothing to delete",
                None,
                (0, 0),
                true,
                ManagementPolicy::Manage,
                Ok(0),
            ),
            // The emulator deletes non-empty OUs; real AWS refuses: this table covers the refusal.
            (
                "OU with accounts is refused",
                Some(&o),
                (0, 2),
                true,
                ManagementPolicy::Manage,
                Err("OrganizationalUnitNotEmpty"),
            ),
            (
                "OU with child OUs is refused",
                Some(&o),
                (1, 0),
                true,
                ManagementPolicy::Manage,
                Err("OrganizationalUnitNotEmpty"),
            ),
        ];
        for (reason, ou, children, delete, policy, want) in table {
            let got = plan_delete(ou, children, delete, policy).map(|a| a.len());
            match (got, want) {
                (Ok(n), Ok(m)) => assert_eq!(n, m, "{reason}"),
                (Err(e), Err(r)) => assert_eq!(e.reason(), r, "{reason}"),
                (got, want) => panic!("{reason}: got {got:?}, want {want:?}"),
            }
        }
    }
}
