//! Budget: desired + observed → actions and drift (pure). Notifications and subscribers are
//! diffed one by one, so AWS keeps the budget's history and alert state.

use crate::api::{Drift, ManagementPolicy};
use crate::aws::budgets::{BudgetInfo, NotificationKey, Subscriber};
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
pub struct Desired {
    pub budget: BudgetInfo,
    pub notifications: Vec<(NotificationKey, BTreeSet<Subscriber>)>,
    pub policy: ManagementPolicy,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub budget: Option<BudgetInfo>,
    /// Each notification with its subscribers; `None` when AWS could not list them.
    pub notifications: Vec<(NotificationKey, Option<BTreeSet<Subscriber>>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Create,
    Update,
    CreateNotification(NotificationKey, Vec<Subscriber>),
    UpdateNotification {
        old: NotificationKey,
        new: NotificationKey,
    },
    DeleteNotification(NotificationKey),
    CreateSubscriber(NotificationKey, Subscriber),
    DeleteSubscriber(NotificationKey, Subscriber),
    Delete,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Create => write!(f, "create budget"),
            Action::Update => write!(f, "update budget limit/period/scope"),
            Action::CreateNotification(n, _) => write!(f, "add notification {n}"),
            Action::UpdateNotification { old, new } => {
                write!(f, "change notification {old} to {new}")
            }
            Action::DeleteNotification(n) => write!(f, "remove notification {n}"),
            Action::CreateSubscriber(n, s) => write!(f, "add {s} to {n}"),
            Action::DeleteSubscriber(n, s) => write!(f, "remove {s} from {n}"),
            Action::Delete => write!(f, "delete budget"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
}

/// Amounts compare as numbers: AWS answers "1000.0" for "1000".
pub fn same_amount(a: &str, b: &str) -> bool {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() < 0.005,
        _ => a == b,
    }
}

/// Adds and removes subscribers one by one (and reports them as drift when asked).
fn diff_subscribers(
    n: &NotificationKey,
    want: &BTreeSet<Subscriber>,
    have: &BTreeSet<Subscriber>,
    as_drift: bool,
    out: &mut Plan,
) {
    let field = || format!("notifications[{n}].subscribers");
    for s in want.difference(have) {
        if as_drift {
            out.drift.push(Drift::new(field(), s, "<absent>"));
        }
        out.actions
            .push(Action::CreateSubscriber(n.clone(), s.clone()));
    }
    for s in have.difference(want) {
        if as_drift {
            out.drift.push(Drift::new(field(), "<absent>", s));
        }
        out.actions
            .push(Action::DeleteSubscriber(n.clone(), s.clone()));
    }
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut out = Plan::default();
    let Some(current) = &observed.budget else {
        out.actions.push(Action::Create);
        return out;
    };
    let d = &desired.budget;
    if !same_amount(&d.limit_amount, &current.limit_amount) || d.limit_unit != current.limit_unit {
        out.drift.push(Drift::new(
            "limit",
            format!("{} {}", d.limit_amount, d.limit_unit),
            format!("{} {}", current.limit_amount, current.limit_unit),
        ));
    }
    if d.time_unit != current.time_unit {
        out.drift
            .push(Drift::new("timeUnit", &d.time_unit, &current.time_unit));
    }
    let mut want_accounts = d.linked_accounts.clone();
    let mut have_accounts = current.linked_accounts.clone();
    want_accounts.sort();
    have_accounts.sort();
    if want_accounts != have_accounts {
        let show = |v: &[String]| {
            if v.is_empty() {
                "<organization>".to_string()
            } else {
                v.join(",")
            }
        };
        out.drift.push(Drift::new(
            "accountRef",
            show(&want_accounts),
            show(&have_accounts),
        ));
    }
    if !out.drift.is_empty() {
        out.actions.push(Action::Update);
    }

    // Notifications: keep matches, turn a threshold change into an update, add and remove the rest.
    let mut unmatched_observed: Vec<&(NotificationKey, Option<BTreeSet<Subscriber>>)> = observed
        .notifications
        .iter()
        .filter(|(o, _)| !desired.notifications.iter().any(|(w, _)| w == o))
        .collect();
    for (want, subs) in &desired.notifications {
        match observed.notifications.iter().find(|(o, _)| o == want) {
            Some((_, Some(have))) => {
                diff_subscribers(want, subs, have, true, &mut out);
            }
            // Subscribers unknown (AWS did not list them): nothing to compare.
            Some((_, None)) => {}
            None => {
                if let Some(pos) = unmatched_observed
                    .iter()
                    .position(|(o, _)| o.same_kind(want))
                {
                    let (old, have) = unmatched_observed.remove(pos);
                    out.drift.push(Drift::new(
                        format!("notifications[{old}].threshold"),
                        want.threshold,
                        old.threshold,
                    ));
                    out.actions.push(Action::UpdateNotification {
                        old: old.clone(),
                        new: want.clone(),
                    });
                    if let Some(have) = have {
                        // Part of the update, not drift of its own.
                        diff_subscribers(want, subs, have, false, &mut out);
                    }
                } else {
                    out.drift.push(Drift::new(
                        format!("notifications[{want}]"),
                        "present",
                        "<absent>",
                    ));
                    out.actions.push(Action::CreateNotification(
                        want.clone(),
                        subs.iter().cloned().collect(),
                    ));
                }
            }
        }
    }
    for (old, _) in unmatched_observed {
        out.drift.push(Drift::new(
            format!("notifications[{old}]"),
            "<absent>",
            "present",
        ));
        out.actions.push(Action::DeleteNotification(old.clone()));
    }
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples by design
mod tests {
    use super::*;

    fn n(kind: &str, threshold: f64) -> NotificationKey {
        NotificationKey {
            notification_type: kind.into(),
            comparison: "GREATER_THAN".into(),
            threshold,
            threshold_type: "PERCENTAGE".into(),
        }
    }

    fn emails(a: &[&str]) -> BTreeSet<Subscriber> {
        a.iter().map(|e| Subscriber::Email(e.to_string())).collect()
    }

    fn budget(amount: &str) -> BudgetInfo {
        BudgetInfo {
            name: "org".into(),
            limit_amount: amount.into(),
            limit_unit: "USD".into(),
            time_unit: "MONTHLY".into(),
            linked_accounts: vec![],
            actual_spend: None,
            forecasted_spend: None,
        }
    }

    fn desired(
        amount: &str,
        notifications: Vec<(NotificationKey, BTreeSet<Subscriber>)>,
    ) -> Desired {
        Desired {
            budget: budget(amount),
            notifications,
            policy: ManagementPolicy::Manage,
        }
    }

    fn observed(
        amount: &str,
        notifications: Vec<(NotificationKey, Option<BTreeSet<Subscriber>>)>,
    ) -> Observed {
        Observed {
            budget: Some(budget(amount)),
            notifications,
        }
    }

    #[test]
    fn plan_table() {
        let a = emails(&["finops@example.com"]);
        let ab = emails(&["finops@example.com", "team@example.com"]);
        let cases: Vec<(&str, Desired, Observed, Vec<&str>)> = vec![
            (
                "missing: create with its notifications",
                desired("100", vec![(n("ACTUAL", 50.0), a.clone())]),
                Observed::default(),
                vec!["create budget"],
            ),
            (
                "in sync (AWS writes 100.0 for 100)",
                desired("100", vec![(n("ACTUAL", 50.0), a.clone())]),
                observed("100.0", vec![(n("ACTUAL", 50.0), Some(a.clone()))]),
                vec![],
            ),
            (
                "limit drift: update, not recreate",
                desired("200", vec![]),
                observed("100.0", vec![]),
                vec!["update budget limit/period/scope"],
            ),
            (
                "new notification added one by one",
                desired(
                    "100",
                    vec![
                        (n("ACTUAL", 50.0), a.clone()),
                        (n("FORECASTED", 100.0), a.clone()),
                    ],
                ),
                observed("100", vec![(n("ACTUAL", 50.0), Some(a.clone()))]),
                vec!["add notification FORECASTED GREATER_THAN 100%"],
            ),
            (
                "threshold changed: the notification is updated, keeping its state",
                desired("100", vec![(n("ACTUAL", 80.0), a.clone())]),
                observed("100", vec![(n("ACTUAL", 75.0), Some(a.clone()))]),
                vec!["change notification ACTUAL GREATER_THAN 75% to ACTUAL GREATER_THAN 80%"],
            ),
            (
                "notification removed from the spec",
                desired("100", vec![]),
                observed("100", vec![(n("ACTUAL", 90.0), Some(a.clone()))]),
                vec!["remove notification ACTUAL GREATER_THAN 90%"],
            ),
            (
                "subscriber added and one removed",
                desired(
                    "100",
                    vec![(n("ACTUAL", 50.0), emails(&["team@example.com"]))],
                ),
                observed("100", vec![(n("ACTUAL", 50.0), Some(a.clone()))]),
                vec![
                    "add email team@example.com to ACTUAL GREATER_THAN 50%",
                    "remove email finops@example.com from ACTUAL GREATER_THAN 50%",
                ],
            ),
            (
                "SNS subscriber added",
                desired(
                    "100",
                    vec![(n("ACTUAL", 50.0), {
                        let mut s = a.clone();
                        s.insert(Subscriber::Sns(
                            "arn:aws:sns:us-east-1:123456789012:alerts".into(),
                        ));
                        s
                    })],
                ),
                observed("100", vec![(n("ACTUAL", 50.0), Some(a.clone()))]),
                vec![
                    "add sns arn:aws:sns:us-east-1:123456789012:alerts to ACTUAL GREATER_THAN 50%",
                ],
            ),
            (
                "subscribers unknown (not listed by the endpoint): left alone",
                desired("100", vec![(n("ACTUAL", 50.0), ab.clone())]),
                observed("100", vec![(n("ACTUAL", 50.0), None)]),
                vec![],
            ),
        ];
        for (reason, d, o, want) in cases {
            let got: Vec<String> = plan(&d, &o)
                .actions
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{reason}");
        }
    }

    #[test]
    fn scope_change_is_drift() {
        let mut d = desired("100", vec![]);
        d.budget.linked_accounts = vec!["111111111111".into()];
        let p = plan(&d, &observed("100", vec![]));
        assert_eq!(p.drift[0].field, "accountRef");
        assert_eq!(p.drift[0].observed, "<organization>");
    }
}
