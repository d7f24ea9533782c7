//! Budget: observe (the budget, its notifications and their subscribers) → plan → apply.

pub mod plan;

use self::plan::{Action, Desired, Observed};
use super::driver::{self, Applied, Reconciler};
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness};
use crate::api::{Budget, DeletionPolicy, ManagementPolicy};
use crate::aws::budgets::{BudgetInfo, NotificationKey, Subscriber};
use std::collections::BTreeSet;


fn upper<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn desired(b: &Budget, linked: Vec<String>) -> Desired {
    let s = &b.spec;
    Desired {
        budget: BudgetInfo {
            name: s.budget_name.clone(),
            limit_amount: s.limit.amount.clone(),
            limit_unit: s.limit.unit.clone(),
            time_unit: upper(&s.time_unit),
            linked_accounts: linked,
            actual_spend: None,
            forecasted_spend: None,
        },
        notifications: s
            .notifications
            .iter()
            .map(|n| {
                let key = NotificationKey {
                    notification_type: upper(&n.notification_type),
                    comparison: upper(&n.comparison),
                    threshold: n.threshold,
                    threshold_type: upper(&n.threshold_type),
                };
                let mut subs: BTreeSet<Subscriber> = n
                    .subscribers
                    .emails
                    .iter()
                    .cloned()
                    .map(Subscriber::Email)
                    .collect();
                subs.extend(
                    n.subscribers
                        .sns_topic_arn
                        .iter()
                        .cloned()
                        .map(Subscriber::Sns),
                );
                (key, subs)
            })
            .collect(),
        policy: s.management_policy,
    }
}

fn management_account(pass: &Pass) -> Result<String, Error> {
    pass.snapshot
        .management_account_id()
        .map(str::to_string)
        .ok_or_else(|| {
            Error::conflict(
                "NoOrganization",
                "the management account is not known (DescribeOrganization gave none)",
            )
        })
}

/// Reads the budget; `subscribers_known` is false when AWS could not list subscribers.
async fn observe(pass: &Pass, account: &str, name: &str) -> Result<(Observed, bool), Error> {
    let budgets = &pass.aws.budgets;
    let Some(budget) = budgets.describe_budget(account, name).await? else {
        return Ok((Observed::default(), true));
    };
    let mut known = true;
    let mut notifications = Vec::new();
    for n in budgets.list_notifications(account, name).await? {
        let subs = if known {
            match budgets.list_subscribers(account, name, &n).await {
                Ok(s) => Some(s.into_iter().collect()),
                Err(e) if e.code == "Unimplemented" => {
                    known = false;
                    None
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        notifications.push((n, subs));
    }
    Ok((
        Observed {
            budget: Some(budget),
            notifications,
        },
        known,
    ))
}

fn percent_used(actual: Option<&str>, limit: &str) -> Option<String> {
    let actual: f64 = actual?.split_whitespace().next()?.parse().ok()?;
    let limit: f64 = limit.parse().ok()?;
    (limit > 0.0).then(|| format!("{:.1}", actual / limit * 100.0))
}

pub async fn reconcile(budget: &mut Budget, pass: &mut Pass) -> Result<Progress, Error> {
    driver::reconcile(budget, pass).await
}

/// The spec, with the account that holds the budget (the management account).
pub struct Wanted {
    account: String,
    budget: Desired,
}

impl Reconciler for Budget {
    type Desired = Wanted;
    /// What AWS has; false when AWS could not list the subscribers.
    type Observed = (Observed, bool);
    type Action = Action;
    type Scratch = ();

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    fn desired(&self, pass: &Pass) -> Result<Wanted, Error> {
        let linked = match &self.spec.account_ref {
            Some(r) => vec![pass.resolve(&Key::new(Kind::AwsAccount, &r.name))?],
            None => vec![],
        };
        Ok(Wanted {
            account: management_account(pass)?,
            budget: desired(self, linked),
        })
    }

    async fn observe(&self, w: &Wanted, pass: &Pass) -> Result<(Observed, bool), Error> {
        observe(pass, &w.account, &w.budget.budget.name).await
    }

    fn plan(w: &Wanted, (observed, _): &(Observed, bool)) -> Result<driver::Plan<Action>, Error> {
        let p = plan::plan(&w.budget, observed);
        Ok(driver::Plan::new(p.actions, p.drift))
    }

    fn record(&mut self, w: &Wanted, (observed, _): &(Observed, bool), writes: bool) {
        let status = self.status.get_or_insert_with(Default::default);
        if let Some(current) = &observed.budget {
            status.actual_spend = current.actual_spend.clone();
            status.forecasted_spend = current.forecasted_spend.clone();
            // After this pass the limit is the desired one (when managed), so the share is of that.
            let limit = if writes {
                &w.budget.budget.limit_amount
            } else {
                &current.limit_amount
            };
            status.percent_used = percent_used(current.actual_spend.as_deref(), limit);
        }
    }

    async fn finish(
        &mut self,
        w: &Wanted,
        (observed, subscribers_known): &(Observed, bool),
        _plan: &driver::Plan<Action>,
        outcome: &driver::Outcome,
        _scratch: (),
        pass: &Pass,
    ) -> Result<Readiness, Error> {
        Ok({
        let message = if *subscribers_known {
            "the budget and its notifications match the spec".to_string()
        } else {
            "the budget and its notifications match the spec; subscribers could not be verified (the endpoint does not implement DescribeSubscribersForNotification)".to_string()
        };
        match (outcome.wrote, &observed.budget) {
            (true, _) => Readiness::Ready {
                reason: "Available",
                message,
            },
            (false, None) => pass.missing(format!(
                "no budget named {:?} exists",
                w.budget.budget.name
            )),
            (false, Some(_)) => Readiness::Ready {
                reason: "Observed",
                message,
            },
        }
        })
    }

    async fn apply(
        &mut self,
        action: &Action,
        w: &Wanted,
        _observed: &(Observed, bool),
        _scratch: &mut (),
        pass: &mut Pass,
    ) -> Result<Applied, Error> {
        let budgets = pass.aws.budgets.clone();
        let (account, name) = (&w.account, &w.budget.budget.name);
        let result = match action {
            Action::Create => {
                let notifications: Vec<(NotificationKey, Vec<Subscriber>)> = w
                    .budget
                    .notifications
                    .iter()
                    .map(|(k, s)| (k.clone(), s.iter().cloned().collect()))
                    .collect();
                budgets
                    .create_budget(account, &w.budget.budget, &notifications)
                    .await
            }
            Action::Update => budgets.update_budget(account, &w.budget.budget).await,
            Action::CreateNotification(n, subs) => {
                budgets.create_notification(account, name, n, subs).await
            }
            Action::UpdateNotification { old, new } => {
                budgets.update_notification(account, name, old, new).await
            }
            Action::DeleteNotification(n) => budgets.delete_notification(account, name, n).await,
            Action::CreateSubscriber(n, s) => budgets.create_subscriber(account, name, n, s).await,
            Action::DeleteSubscriber(n, s) => budgets.delete_subscriber(account, name, n, s).await,
            Action::Delete => budgets.delete_budget(account, name).await,
        };
        match result {
            Ok(()) => Ok(Applied::Done),
            // AWS refusing a notification or subscriber (e.g. an SNS topic it cannot publish to) needs a human.
            Err(e)
                if !e.retryable
                    && matches!(
                        action,
                        Action::Create
                            | Action::CreateNotification(..)
                            | Action::CreateSubscriber(..)
                    ) =>
            {
                Err(Error::conflict(
                    "NotificationRefused",
                    format!(
                        "AWS refused to {action}: {}: {}; check the subscriber: an SNS topic's access policy must allow budgets.amazonaws.com SNS:Publish (conditions aws:SourceAccount = this account, aws:SourceArn like arn:aws:budgets::<account>:*, as AWS Cost Management's \"Creating an Amazon SNS topic for budget notifications\" shows); the operator does not change a topic it does not own",
                        e.code, e.message
                    ),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Retain leaves the budget; Delete deletes it.
pub async fn delete(resource: &mut Budget, pass: &mut Pass) -> Result<Progress, Error> {
    let b = resource.clone();
    if b.spec.deletion_policy != DeletionPolicy::Delete
        || b.spec.management_policy == ManagementPolicy::Observe
    {
        return Ok(Progress::ready("Retained", "the budget was left as it is"));
    }
    let account = management_account(pass)?;
    let mut progress = Progress::ready("Deleted", "the budget was deleted");
    progress.actions.push(Action::Delete.to_string());
    if pass.mode == Mode::Apply {
        match pass
            .aws
            .budgets
            .delete_budget(&account, &b.spec.budget_name)
            .await
        {
            Ok(()) => progress.writes += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(progress)
}

impl super::KindSpec for crate::api::Budget {
    const KIND: super::Kind = super::Kind::Budget;
    const DEPENDS_ON: &'static [super::Kind] = &[super::Kind::AwsAccount];
    crate::status_access!();

    fn dependencies(&self) -> Vec<super::Key> {
        super::registry::refs(super::Kind::AwsAccount, &self.spec.account_ref)
    }
    fn aws_id(&self) -> Option<String> {
        None
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        let amount = |s: &Option<String>| {
            s.as_deref()
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        };
        if let Ok(limit) = self.spec.limit.amount.parse::<f64>() {
            m.budget_limit.with_label_values(&[&name]).set(limit);
        }
        if let Some(s) = &self.status {
            if let Some(v) = amount(&s.actual_spend) {
                m.budget_actual.with_label_values(&[&name]).set(v);
            }
            if let Some(v) = amount(&s.forecasted_spend) {
                m.budget_forecast.with_label_values(&[&name]).set(v);
            }
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        for g in [&m.budget_limit, &m.budget_actual, &m.budget_forecast] {
            let _ = g.remove_label_values(&[&name]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        let actual = s.actual_spend.as_ref()?;
        Some(format!(
            "budget {}: {actual} spent of {} {} ({} %), forecast {}",
            self.spec.budget_name,
            self.spec.limit.amount,
            self.spec.limit.unit,
            s.percent_used.as_deref().unwrap_or("?"),
            s.forecasted_spend.as_deref().unwrap_or("unknown")
        ))
    }
}
