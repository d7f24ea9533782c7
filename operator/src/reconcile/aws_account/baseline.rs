//! The per-account baseline inside the member account: alias, password policy, alternate contacts,
//! and the read-only root-user security report. Pure, table-tested; I/O is in `mod.rs`.

use crate::api::Drift;
use crate::api::aws_account::{AlternateContacts, Contact, PasswordPolicy, SecurityReport};
use crate::aws::iam::RootSecurity;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub alias: Option<String>,
    pub password_policy: PasswordPolicy,
    /// Only the contact kinds the spec names (BILLING / OPERATIONS / SECURITY); others are left alone.
    pub contacts: Vec<(&'static str, Contact)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub alias: Option<String>,
    pub password_policy: Option<PasswordPolicy>,
    pub contacts: Vec<(&'static str, Option<Contact>)>,
    pub root: RootSecurity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SetAlias(String),
    SetPasswordPolicy,
    SetContact(&'static str),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::SetAlias(a) => write!(f, "set account alias {a}"),
            Action::SetPasswordPolicy => write!(f, "set the password policy"),
            Action::SetContact(kind) => write!(f, "set the {} contact", kind.to_lowercase()),
        }
    }
}

pub fn contacts_of(spec: &Option<AlternateContacts>) -> Vec<(&'static str, Contact)> {
    let Some(c) = spec else { return vec![] };
    [
        ("BILLING", &c.billing),
        ("OPERATIONS", &c.operations),
        ("SECURITY", &c.security),
    ]
    .into_iter()
    .filter_map(|(k, c)| c.clone().map(|c| (k, c)))
    .collect()
}

/// The reference practice: 14+ characters, every character class, 24 passwords remembered.
pub fn is_strong(p: &PasswordPolicy) -> bool {
    p.minimum_password_length >= 14
        && p.require_symbols
        && p.require_numbers
        && p.require_uppercase_characters
        && p.require_lowercase_characters
        && p.password_reuse_prevention >= 24
}

pub fn report(observed: &Observed) -> SecurityReport {
    SecurityReport {
        root_mfa_enabled: observed.root.mfa_enabled,
        root_access_keys_present: observed.root.access_keys_present,
        root_password_present: observed.root.password_present,
        password_policy_compliant: observed.password_policy.as_ref().is_some_and(is_strong),
        root_mfa_devices: None,
        root_signing_certificates: None,
        audited_by: Some("AccountSummary".into()),
    }
}

/// What the SecurityFindings condition says when there are no findings.
pub fn in_order(r: &SecurityReport) -> &'static str {
    if r.root_password_present {
        "the root user has MFA and no access keys"
    } else {
        "the root user has no password (it cannot sign in) and no access keys"
    }
}

/// A human sentence for the SecurityFindings condition, or None when the root user is in order.
pub fn findings(r: &SecurityReport) -> Option<String> {
    let mut out = Vec::new();
    if r.root_access_keys_present {
        out.push("the root user has access keys: delete them (the operator never touches root credentials)");
    }
    // Without a password the root user cannot sign in, so MFA protects nothing (AWS's own
    // advice for member accounts is no root credentials at all).
    if r.root_password_present && !r.root_mfa_enabled {
        out.push("the root user has a password but no MFA: enable MFA, or remove the password");
    }
    (!out.is_empty()).then(|| out.join("; "))
}

pub fn plan(desired: &Desired, observed: &Observed) -> (Vec<Action>, Vec<Drift>) {
    let mut actions = Vec::new();
    let mut drift = Vec::new();
    if let Some(want) = &desired.alias
        && observed.alias.as_ref() != Some(want)
    {
        drift.push(Drift::new(
            "alias",
            want,
            observed.alias.as_deref().unwrap_or("<none>"),
        ));
        actions.push(Action::SetAlias(want.clone()));
    }
    match &observed.password_policy {
        _ if !desired.password_policy.manage => {}
        Some(have) if *have == desired.password_policy => {}
        Some(have) => {
            let (w, h) = (
                serde_json::to_value(&desired.password_policy).unwrap_or_default(),
                serde_json::to_value(have).unwrap_or_default(),
            );
            for (k, v) in w.as_object().into_iter().flatten() {
                if h.get(k) != Some(v) {
                    drift.push(Drift::new(
                        format!("passwordPolicy.{k}"),
                        v,
                        h.get(k).map_or("<unset>".into(), |x| x.to_string()),
                    ));
                }
            }
            actions.push(Action::SetPasswordPolicy);
        }
        None => {
            drift.push(Drift::new("passwordPolicy", "set", "<none>"));
            actions.push(Action::SetPasswordPolicy);
        }
    }
    for (kind, want) in &desired.contacts {
        let have = observed
            .contacts
            .iter()
            .find(|(k, _)| k == kind)
            .and_then(|(_, c)| c.as_ref());
        if have != Some(want) {
            drift.push(Drift::new(
                format!("alternateContacts.{}", kind.to_lowercase()),
                &want.email,
                have.map_or("<none>", |c| c.email.as_str()),
            ));
            actions.push(Action::SetContact(kind));
        }
    }
    (actions, drift)
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples by design
mod tests {
    use super::*;

    fn contact(email: &str) -> Contact {
        Contact {
            name: "Sec".into(),
            title: "Security".into(),
            email: email.into(),
            phone_number: "+1 555 0100".into(),
        }
    }

    fn desired() -> Desired {
        Desired {
            alias: Some("example-prod".into()),
            password_policy: PasswordPolicy::default(),
            contacts: vec![("SECURITY", contact("sec@example.com"))],
        }
    }

    fn in_sync() -> Observed {
        Observed {
            alias: Some("example-prod".into()),
            password_policy: Some(PasswordPolicy::default()),
            contacts: vec![("SECURITY", Some(contact("sec@example.com")))],
            root: RootSecurity {
                mfa_enabled: true,
                access_keys_present: false,
                password_present: true,
            },
        }
    }

    #[test]
    fn plan_table() {
        let mut weak = in_sync();
        weak.password_policy
            .as_mut()
            .unwrap()
            .minimum_password_length = 8;
        let mut renamed = in_sync();
        renamed.alias = Some("someone-else".into());
        let mut no_contact = in_sync();
        no_contact.contacts = vec![("SECURITY", None)];
        let fresh = Observed::default();
        let cases: Vec<(&str, Observed, Vec<Action>, Vec<&str>)> = vec![
            ("in sync", in_sync(), vec![], vec![]),
            (
                "policy weakened out of band: drift on the field, policy set",
                weak,
                vec![Action::SetPasswordPolicy],
                vec!["passwordPolicy.minimumPasswordLength"],
            ),
            (
                "alias changed: replaced",
                renamed,
                vec![Action::SetAlias("example-prod".into())],
                vec!["alias"],
            ),
            (
                "contact missing: set",
                no_contact,
                vec![Action::SetContact("SECURITY")],
                vec!["alternateContacts.security"],
            ),
            (
                "a new account: everything set",
                fresh,
                vec![
                    Action::SetAlias("example-prod".into()),
                    Action::SetPasswordPolicy,
                    Action::SetContact("SECURITY"),
                ],
                vec!["alias", "passwordPolicy", "alternateContacts.security"],
            ),
        ];
        for (reason, observed, actions, drift) in cases {
            let (a, d) = plan(&desired(), &observed);
            assert_eq!(a, actions, "{reason}");
            assert_eq!(
                d.iter().map(|d| d.field.as_str()).collect::<Vec<_>>(),
                drift,
                "{reason}"
            );
        }
    }

    #[test]
    fn security_report_and_findings() {
        let mut o = in_sync();
        assert_eq!(findings(&report(&o)), None);
        assert!(report(&o).password_policy_compliant);
        // No MFA is a finding only while the root user has a password.
        o.root = RootSecurity {
            mfa_enabled: false,
            access_keys_present: false,
            password_present: false,
        };
        assert_eq!(
            findings(&report(&o)),
            None,
            "no password: nothing to protect"
        );
        o.root.password_present = true;
        assert!(findings(&report(&o)).unwrap().contains("no MFA"));
        o.root = RootSecurity {
            mfa_enabled: false,
            access_keys_present: true,
            password_present: true,
        };
        o.password_policy
            .as_mut()
            .unwrap()
            .password_reuse_prevention = 5;
        let r = report(&o);
        assert!(!r.password_policy_compliant);
        let f = findings(&r).unwrap();
        assert!(f.contains("access keys") && f.contains("MFA"), "{f}");
    }
}
