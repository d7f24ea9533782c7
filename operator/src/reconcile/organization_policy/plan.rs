//! OrganizationPolicy planning: desired + observed → actions, drift, and the refusals AWS would
//! otherwise answer with an error half-way through (slots per target, the last SCP of a target).

use super::aws::PolicyInfo;
use crate::api::organization_policy::PolicyType;
use crate::api::{Drift, ManagementPolicy, Tags};
use crate::reconcile::Error;
use crate::reconcile::tags::diff_tags;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub policy_type: PolicyType,
    pub name: String,
    pub description: String,
    /// The document as JSON (for comparing: key order and whitespace do not matter).
    pub document: Value,
    pub tags: Tags,
    /// Root, OU and account ids, resolved.
    pub targets: BTreeSet<String>,
    pub policy: ManagementPolicy,
}

impl Desired {
    /// The document as sent to AWS: compact, since AWS counts whitespace against the size limit.
    pub fn content(&self) -> String {
        self.document.to_string()
    }
}

/// Reads a document written as JSON text (`document`) or as a YAML object (`documentObject`).
pub fn parse_document(text: Option<&str>, object: Option<&Value>) -> Result<Value, Error> {
    let parsed = match (text, object) {
        (Some(text), None) => serde_json::from_str::<Value>(text).map_err(|e| Error::InvalidSpec {
            message: format!(
                "document is not valid JSON ({e}): fix the JSON text, or write it as a YAML object under documentObject"
            ),
        })?,
        (None, Some(object)) => object.clone(),
        _ => {
            return Err(Error::InvalidSpec {
                message: "set exactly one of document (JSON text) and documentObject (a YAML object)"
                    .into(),
            });
        }
    };
    if !parsed.is_object() {
        return Err(Error::InvalidSpec {
            message: "document must be a JSON object".into(),
        });
    }
    Ok(parsed)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The type's status on the root (`ENABLED`, `PENDING_ENABLE`, …); `None`: disabled.
    pub type_status: Option<String>,
    pub root_id: String,
    pub policy: Option<PolicyInfo>,
    /// Found by name rather than by the id in status.
    pub adopted: bool,
    pub targets: BTreeSet<String>,
    pub tags: Tags,
    /// Policies of this type attached to each target the plan attaches to or detaches from
    /// (AWS-managed and other tools' policies included). Targets not read are absent.
    pub slots: BTreeMap<String, Vec<PolicyInfo>>,
    /// Names of targets, for messages.
    pub names: BTreeMap<String, String>,
}

impl Observed {
    fn label(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    EnableType {
        root_id: String,
        policy_type: PolicyType,
    },
    Create {
        policy_type: PolicyType,
        name: String,
        description: String,
        content: String,
        tags: Tags,
    },
    Update {
        id: String,
        name: Option<String>,
        description: Option<String>,
        content: Option<String>,
    },
    Tag {
        id: String,
        tags: Tags,
    },
    Untag {
        id: String,
        keys: Vec<String>,
    },
    /// `id` is `None` for the policy this plan creates.
    Attach {
        id: Option<String>,
        target: String,
    },
    Detach {
        id: String,
        target: String,
    },
    Delete {
        id: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::EnableType {
                root_id,
                policy_type,
            } => write!(f, "enable policy type {policy_type} on {root_id}"),
            Action::Create {
                policy_type, name, ..
            } => write!(f, "create {policy_type} {name:?}"),
            Action::Update {
                id,
                name,
                description,
                content,
            } => {
                let mut what = Vec::new();
                if let Some(n) = name {
                    what.push(format!("rename to {n:?}"));
                }
                if description.is_some() {
                    what.push("set description".to_string());
                }
                if content.is_some() {
                    what.push("update document".to_string());
                }
                write!(f, "{} of policy {id}", what.join(", "))
            }
            Action::Tag { id, tags } => write!(
                f,
                "tag policy {id} with {}",
                tags.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::Untag { id, keys } => {
                write!(f, "remove tags {} from policy {id}", keys.join(", "))
            }
            Action::Attach { id, target } => write!(
                f,
                "attach policy {} to {target}",
                id.as_deref().unwrap_or("(new)")
            ),
            Action::Detach { id, target } => write!(f, "detach policy {id} from {target}"),
            Action::Delete { id } => write!(f, "delete policy {id}"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
    /// The id of a policy found by name, now bound to this resource.
    pub adopt: Option<String>,
}

/// Refusals before any write, with what a human does about them.
fn check(desired: &Desired, observed: &Observed) -> Result<(), Error> {
    if let Some(p) = &observed.policy
        && p.aws_managed
        && desired.policy == ManagementPolicy::Manage
    {
        return Err(Error::InvalidSpec {
            message: format!(
                "{:?} is an AWS-managed policy ({}); the operator never changes it: choose another policyName, or set managementPolicy: Observe to report on it",
                p.name, p.id
            ),
        });
    }
    let size = desired.content().chars().count();
    let max = desired.policy_type.max_document_chars();
    if size > max {
        return Err(Error::InvalidSpec {
            message: format!(
                "document is {size} characters as sent (compact JSON); AWS allows {max} for a {}: split it into two policies",
                desired.policy_type.aws()
            ),
        });
    }
    Ok(())
}

pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, Error> {
    check(desired, observed)?;
    let mut plan = Plan {
        adopt: observed
            .adopted
            .then(|| observed.policy.as_ref().map(|p| p.id.clone()))
            .flatten(),
        ..Default::default()
    };
    match observed.type_status.as_deref() {
        Some("ENABLED") => {}
        Some("PENDING_ENABLE") => {
            return Err(Error::transient(
                "PolicyTypePendingEnable",
                format!(
                    "{} is being enabled on the root; policies of the type are attached once it is ENABLED, shortly",
                    desired.policy_type.aws()
                ),
            ));
        }
        Some("PENDING_DISABLE") => {
            return Err(Error::conflict(
                "PolicyTypeBeingDisabled",
                format!(
                    "{} is being disabled on the root (by someone else); this policy is attached once it is enabled again",
                    desired.policy_type.aws()
                ),
            ));
        }
        _ => plan.actions.push(Action::EnableType {
            root_id: observed.root_id.clone(),
            policy_type: desired.policy_type,
        }),
    }

    let id = match &observed.policy {
        None => {
            plan.actions.push(Action::Create {
                policy_type: desired.policy_type,
                name: desired.name.clone(),
                description: desired.description.clone(),
                content: desired.content(),
                tags: desired.tags.clone(),
            });
            None
        }
        Some(p) => {
            let observed_doc = p
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<Value>(c).ok());
            let content_differs = observed_doc.as_ref() != Some(&desired.document);
            if content_differs {
                plan.drift.push(Drift::new(
                    "document",
                    format!("{} characters", desired.content().chars().count()),
                    match &observed_doc {
                        Some(d) => format!("{} characters, different", d.to_string().chars().count()),
                        None => "not valid JSON".to_string(),
                    },
                ));
            }
            if p.name != desired.name {
                plan.drift.push(Drift::new("policyName", &desired.name, &p.name));
            }
            if p.description != desired.description {
                plan.drift
                    .push(Drift::new("description", &desired.description, &p.description));
            }
            if content_differs || p.name != desired.name || p.description != desired.description {
                plan.actions.push(Action::Update {
                    id: p.id.clone(),
                    name: (p.name != desired.name).then(|| desired.name.clone()),
                    description: (p.description != desired.description)
                        .then(|| desired.description.clone()),
                    content: content_differs.then(|| desired.content()),
                });
            }
            let tags = diff_tags(&desired.tags, &observed.tags);
            plan.drift.extend(tags.drift);
            if !tags.set.is_empty() {
                plan.actions.push(Action::Tag {
                    id: p.id.clone(),
                    tags: tags.set,
                });
            }
            if !tags.remove.is_empty() {
                plan.actions.push(Action::Untag {
                    id: p.id.clone(),
                    keys: tags.remove,
                });
            }
            Some(p.id.clone())
        }
    };

    let limit = desired.policy_type.max_attachments_per_target();
    for target in desired.targets.difference(&observed.targets) {
        if observed.policy.is_some() {
            plan.drift
                .push(Drift::new(format!("targets.{target}"), "attached", "not attached"));
        }
        // Policies of the type already there; a type about to be enabled has FullAWSAccess /
        // RCPFullAWSAccess everywhere once it is.
        let attached = observed
            .slots
            .get(target)
            .map(Vec::len)
            .unwrap_or(usize::from(
                observed.type_status.is_none() && desired.policy_type.is_authorization(),
            ));
        if attached + 1 > limit {
            let names: Vec<&str> = observed
                .slots
                .get(target)
                .map(|ps| ps.iter().map(|p| p.name.as_str()).collect())
                .unwrap_or_default();
            return Err(Error::conflict(
                "AttachmentLimitReached",
                format!(
                    "{} already has {attached} of the {limit} {} AWS allows per target ({}): detach one there, or attach this policy to a parent OU instead",
                    observed.label(target),
                    desired.policy_type.aws(),
                    names.join(", ")
                ),
            ));
        }
        plan.actions.push(Action::Attach {
            id: id.clone(),
            target: target.clone(),
        });
    }
    if let Some(id) = &id {
        for target in observed.targets.difference(&desired.targets) {
            plan.drift
                .push(Drift::new(format!("targets.{target}"), "not attached", "attached"));
            let attached = observed.slots.get(target).map(Vec::len);
            if desired.policy_type == PolicyType::ServiceControlPolicy && attached == Some(1) {
                return Err(Error::conflict(
                    "LastPolicyOfTarget",
                    format!(
                        "AWS keeps at least one service control policy on every target, and this is the only one on {}: attach FullAWSAccess (or another SCP) there first; this policy is then detached",
                        observed.label(target)
                    ),
                ));
            }
            plan.actions.push(Action::Detach {
                id: id.clone(),
                target: target.clone(),
            });
        }
    }
    Ok(plan)
}

/// Deleting with `deletionPolicy: Delete`: detach everywhere, then delete. Retain, Observe, an
/// AWS-managed policy or none at all: nothing.
pub fn plan_delete(
    policy_type: PolicyType,
    found: Option<&PolicyInfo>,
    observed: &Observed,
    delete: bool,
    policy: ManagementPolicy,
) -> Result<Vec<Action>, Error> {
    let Some(p) = found else {
        return Ok(Vec::new());
    };
    if !delete || policy == ManagementPolicy::Observe || p.aws_managed {
        return Ok(Vec::new());
    }
    let mut actions = Vec::new();
    for target in &observed.targets {
        if policy_type == PolicyType::ServiceControlPolicy
            && observed.slots.get(target).map(Vec::len) == Some(1)
        {
            return Err(Error::conflict(
                "LastPolicyOfTarget",
                format!(
                    "cannot delete {:?}: it is the only service control policy on {}, and AWS keeps at least one there: attach FullAWSAccess (or another SCP) to it first",
                    p.name,
                    observed.label(target)
                ),
            ));
        }
        actions.push(Action::Detach {
            id: p.id.clone(),
            target: target.clone(),
        });
    }
    actions.push(Action::Delete { id: p.id.clone() });
    Ok(actions)
}

/// The OUs and accounts a policy reaches (attached to them or to a parent), and those it does not.
/// Control policies do not apply to the management account, so it is left out for them.
pub fn coverage(
    targets: &BTreeSet<String>,
    snapshot: &crate::reconcile::OrgSnapshot,
    policy_type: PolicyType,
) -> (usize, Vec<String>) {
    let mut covered = 0;
    let mut uncovered = Vec::new();
    let reaches = |id: &str| {
        let mut at = Some(id.to_string());
        // Bounded by the tree's depth (AWS: 5 levels of OUs under the root).
        for _ in 0..16 {
            let Some(here) = at else { return false };
            if targets.contains(&here) {
                return true;
            }
            if here == snapshot.root_id {
                return false;
            }
            at = snapshot.parent_of(&here).map(str::to_string);
        }
        false
    };
    let management = snapshot.management_account_id();
    let ids = snapshot.ous.keys().chain(
        snapshot
            .accounts
            .values()
            .filter(|a| a.state == "ACTIVE")
            .filter(|a| !(policy_type.is_authorization() && Some(a.id.as_str()) == management))
            .map(|a| &a.id),
    );
    for id in ids {
        if reaches(id) {
            covered += 1;
        } else {
            uncovered.push(id.clone());
        }
    }
    (covered, uncovered)
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples by design
mod tests {
    use super::*;
    use serde_json::json;

    fn pol(id: &str, name: &str, managed: bool, content: Option<&str>) -> PolicyInfo {
        PolicyInfo {
            id: id.into(),
            arn: format!("arn:aws:organizations::111111111111:policy/o-1/service_control_policy/{id}"),
            name: name.into(),
            description: String::new(),
            aws_managed: managed,
            content: content.map(str::to_string),
        }
    }

    fn desired(targets: &[&str]) -> Desired {
        Desired {
            policy_type: PolicyType::ServiceControlPolicy,
            name: "deny-leave".into(),
            description: String::new(),
            document: json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}]}),
            tags: Tags::new(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            policy: ManagementPolicy::Manage,
        }
    }

    fn observed(policy: Option<PolicyInfo>, targets: &[&str]) -> Observed {
        Observed {
            type_status: Some("ENABLED".into()),
            root_id: "r-root".into(),
            policy,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    fn full() -> PolicyInfo {
        pol("p-FullAWSAccess", "FullAWSAccess", true, None)
    }

    #[test]
    fn plans() {
        let same = r#"{ "Statement": [{"Resource": "*", "Action": "organizations:LeaveOrganization", "Effect": "Deny"}],
                        "Version": "2012-10-17" }"#;
        let other = r#"{"Version": "2012-10-17", "Statement": []}"#;
        let mut disabled = observed(None, &[]);
        disabled.type_status = None;
        let mut slots_for_ou = observed(Some(pol("p-1", "deny-leave", false, Some(same))), &[]);
        slots_for_ou
            .slots
            .insert("ou-a".into(), vec![full(), pol("p-2", "x", false, None)]);
        let table: Vec<(&str, Desired, Observed, Vec<&str>, Vec<&str>)> = vec![
            (
                "a new policy: created, then attached",
                desired(&["ou-a"]),
                observed(None, &[]),
                vec!["create SERVICE_CONTROL_POLICY \"deny-leave\"", "attach policy (new) to ou-a"],
                vec![],
            ),
            (
                "the type is disabled: enabled first",
                desired(&["r-root"]),
                disabled,
                vec![
                    "enable policy type SERVICE_CONTROL_POLICY on r-root",
                    "create SERVICE_CONTROL_POLICY \"deny-leave\"",
                    "attach policy (new) to r-root",
                ],
                vec![],
            ),
            (
                "in sync: the same JSON in another key order and layout is no drift",
                desired(&["ou-a"]),
                observed(Some(pol("p-1", "deny-leave", false, Some(same))), &["ou-a"]),
                vec![],
                vec![],
            ),
            (
                "document changed by hand: updated",
                desired(&["ou-a"]),
                observed(Some(pol("p-1", "deny-leave", false, Some(other))), &["ou-a"]),
                vec!["update document of policy p-1"],
                vec!["document"],
            ),
            (
                "detached by hand: attached again; attached elsewhere by hand: detached",
                desired(&["ou-a"]),
                observed(Some(pol("p-1", "deny-leave", false, Some(same))), &["ou-b"]),
                vec!["attach policy p-1 to ou-a", "detach policy p-1 from ou-b"],
                vec!["targets.ou-a", "targets.ou-b"],
            ),
            (
                "a target with room: attached",
                desired(&["ou-a"]),
                slots_for_ou,
                vec!["attach policy p-1 to ou-a"],
                vec!["targets.ou-a"],
            ),
            (
                "renamed by hand: renamed back",
                desired(&[]),
                observed(Some(pol("p-1", "old", false, Some(same))), &[]),
                vec!["rename to \"deny-leave\" of policy p-1"],
                vec!["policyName"],
            ),
        ];
        for (name, d, o, actions, drift) in table {
            let p = plan(&d, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got: Vec<String> = p.actions.iter().map(ToString::to_string).collect();
            assert_eq!(got, actions, "{name}");
            let fields: Vec<&str> = p.drift.iter().map(|d| d.field.as_str()).collect();
            assert_eq!(fields, drift, "{name}");
        }
    }

    #[test]
    fn refusals_come_before_any_write_and_say_what_to_do() {
        // Five SCPs on the OU already (FullAWSAccess and four of other tools): a sixth is refused.
        let mut full_ou = observed(None, &[]);
        full_ou.names.insert("ou-a".into(), "Payments".into());
        full_ou.slots.insert(
            "ou-a".into(),
            std::iter::once(full())
                .chain((1..5).map(|i| pol(&format!("p-{i}"), &format!("other-{i}"), false, None)))
                .collect(),
        );
        let e = plan(&desired(&["ou-a"]), &full_ou).unwrap_err();
        assert_eq!(e.reason(), "AttachmentLimitReached");
        let m = e.to_string();
        assert!(m.contains("ou-a (Payments) already has 5 of the 5"), "{m}");
        assert!(m.contains("FullAWSAccess, other-1"), "{m}");

        // Tag policies have 10 slots: five are no problem.
        let mut tag = desired(&["ou-a"]);
        tag.policy_type = PolicyType::TagPolicy;
        assert!(plan(&tag, &full_ou).is_ok());

        // Detaching the only SCP of a target: AWS refuses, so the plan says why first.
        let mut last = observed(Some(pol("p-1", "deny-leave", false, None)), &["ou-a"]);
        last.slots.insert("ou-a".into(), vec![pol("p-1", "deny-leave", false, None)]);
        let e = plan(&desired(&["ou-b"]), &last).unwrap_err();
        assert_eq!(e.reason(), "LastPolicyOfTarget");
        assert!(e.to_string().contains("attach FullAWSAccess"), "{e}");
        let e = plan_delete(
            PolicyType::ServiceControlPolicy,
            last.policy.as_ref(),
            &last,
            true,
            ManagementPolicy::Manage,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "LastPolicyOfTarget");

        // Oversize, as sent.
        let mut big = desired(&["ou-a"]);
        big.document = json!({"Version": "2012-10-17", "Statement": [{"Sid": "x".repeat(5200)}]});
        let e = plan(&big, &observed(None, &[])).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(e.to_string().contains("AWS allows 5120"), "{e}");

        // AWS-managed policies are never written.
        let e = plan(
            &desired(&["ou-a"]),
            &observed(Some(full()), &["ou-a"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("AWS-managed"), "{e}");
    }

    #[test]
    fn deletion_detaches_everywhere_then_deletes_and_retain_does_nothing() {
        let mut o = observed(Some(pol("p-1", "deny-leave", false, None)), &["ou-a", "r-root"]);
        o.slots.insert("ou-a".into(), vec![full(), pol("p-1", "deny-leave", false, None)]);
        let p = o.policy.clone();
        let got: Vec<String> = plan_delete(PolicyType::ServiceControlPolicy, p.as_ref(), &o, true, ManagementPolicy::Manage)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            vec!["detach policy p-1 from ou-a", "detach policy p-1 from r-root", "delete policy p-1"]
        );
        assert!(plan_delete(PolicyType::ServiceControlPolicy, p.as_ref(), &o, false, ManagementPolicy::Manage)
            .unwrap()
            .is_empty());
        assert!(plan_delete(PolicyType::ServiceControlPolicy, Some(&full()), &o, true, ManagementPolicy::Manage)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn documents_as_text_or_object() {
        let text = "{\"Version\": \"2012-10-17\",\n  \"Statement\": []}";
        let object = json!({"Statement": [], "Version": "2012-10-17"});
        assert_eq!(
            parse_document(Some(text), None).unwrap(),
            parse_document(None, Some(&object)).unwrap()
        );
        let e = parse_document(Some("{\"Version\": "), None).unwrap_err();
        assert!(e.to_string().starts_with("document is not valid JSON"), "{e}");
        assert!(parse_document(Some("[1]"), None).is_err());
        assert!(parse_document(Some(text), Some(&object)).is_err());
        assert!(parse_document(None, None).is_err());
    }
}
