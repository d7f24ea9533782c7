//! Test doubles of ports, for what neither the emulator nor the realism layer (`proxy`) shows yet:
//! a Budgets service with the update and subscriber calls and real spend, and a CloudTrail that
//! reports a delivery error. Prefer the realism layer; these are the last resort.

use async_trait::async_trait;
use landing_zone_operator::aws::{AwsError, AwsResult};
use std::sync::{Arc, Mutex};

/// An in-memory Budgets service: the emulator has no UpdateBudget, UpdateNotification or
/// subscriber calls, and reports zero spend, so the diffing logic is exercised here instead.
#[derive(Default)]
pub struct FakeBudgets {
    pub budgets: Mutex<std::collections::BTreeMap<String, FakeBudget>>,
    /// Every write, as `Operation name`.
    pub calls: Mutex<Vec<String>>,
    /// SNS topics AWS refuses to publish to.
    pub refused_topics: Mutex<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct FakeBudget {
    pub info: BudgetInfo,
    pub notifications: Vec<(NotificationKey, Vec<Subscriber>)>,
}

use landing_zone_operator::aws::budgets::{BudgetInfo, Budgets, NotificationKey, Subscriber};

impl FakeBudgets {
    fn record(&self, op: &str, name: &str) {
        self.calls.lock().unwrap().push(format!("{op} {name}"));
    }

    fn check_subscriber(&self, s: &Subscriber) -> AwsResult<()> {
        if let Subscriber::Sns(arn) = s
            && self.refused_topics.lock().unwrap().contains(arn)
        {
            return Err(AwsError::new(
                "budgets",
                "CreateSubscriber",
                "InvalidParameterException",
                "Budgets cannot publish to the SNS topic: its access policy does not allow budgets.amazonaws.com",
            ));
        }
        Ok(())
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut FakeBudget) -> T) -> AwsResult<T> {
        let mut all = self.budgets.lock().unwrap();
        let b = all.get_mut(name).ok_or_else(|| {
            AwsError::new("budgets", "Describe", "NotFoundException", "no such budget")
        })?;
        Ok(f(b))
    }
}

#[async_trait]
impl Budgets for FakeBudgets {
    async fn describe_budget(&self, _: &str, name: &str) -> AwsResult<Option<BudgetInfo>> {
        Ok(self
            .budgets
            .lock()
            .unwrap()
            .get(name)
            .map(|b| b.info.clone()))
    }
    async fn create_budget(
        &self,
        _: &str,
        budget: &BudgetInfo,
        notifications: &[(NotificationKey, Vec<Subscriber>)],
    ) -> AwsResult<()> {
        for (_, subs) in notifications {
            for s in subs {
                self.check_subscriber(s)?;
            }
        }
        self.record("CreateBudget", &budget.name);
        let mut info = budget.clone();
        info.actual_spend = Some("25.0 USD".into());
        info.forecasted_spend = Some("80.0 USD".into());
        self.budgets.lock().unwrap().insert(
            budget.name.clone(),
            FakeBudget {
                info,
                notifications: notifications.to_vec(),
            },
        );
        Ok(())
    }
    async fn update_budget(&self, _: &str, budget: &BudgetInfo) -> AwsResult<()> {
        self.record("UpdateBudget", &budget.name);
        self.with(&budget.name, |b| {
            b.info.limit_amount = budget.limit_amount.clone();
            b.info.time_unit = budget.time_unit.clone();
            b.info.linked_accounts = budget.linked_accounts.clone();
        })
    }
    async fn delete_budget(&self, _: &str, name: &str) -> AwsResult<()> {
        self.record("DeleteBudget", name);
        self.budgets
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| AwsError::new("budgets", "DeleteBudget", "NotFoundException", "gone"))
    }
    async fn list_notifications(&self, _: &str, name: &str) -> AwsResult<Vec<NotificationKey>> {
        self.with(name, |b| {
            b.notifications.iter().map(|(n, _)| n.clone()).collect()
        })
    }
    async fn list_subscribers(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
    ) -> AwsResult<Vec<Subscriber>> {
        self.with(name, |b| {
            b.notifications
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        })
    }
    async fn create_notification(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
        subs: &[Subscriber],
    ) -> AwsResult<()> {
        for s in subs {
            self.check_subscriber(s)?;
        }
        self.record("CreateNotification", name);
        self.with(name, |b| b.notifications.push((n.clone(), subs.to_vec())))
    }
    async fn update_notification(
        &self,
        _: &str,
        name: &str,
        old: &NotificationKey,
        new: &NotificationKey,
    ) -> AwsResult<()> {
        self.record("UpdateNotification", name);
        self.with(name, |b| {
            for (k, _) in b.notifications.iter_mut().filter(|(k, _)| k == old) {
                *k = new.clone();
            }
        })
    }
    async fn delete_notification(&self, _: &str, name: &str, n: &NotificationKey) -> AwsResult<()> {
        self.record("DeleteNotification", name);
        self.with(name, |b| b.notifications.retain(|(k, _)| k != n))
    }
    async fn create_subscriber(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()> {
        self.check_subscriber(s)?;
        self.record("CreateSubscriber", name);
        self.with(name, |b| {
            for (_, subs) in b.notifications.iter_mut().filter(|(k, _)| k == n) {
                subs.push(s.clone());
            }
        })
    }
    async fn delete_subscriber(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()> {
        self.record("DeleteSubscriber", name);
        self.with(name, |b| {
            for (_, subs) in b.notifications.iter_mut().filter(|(k, _)| k == n) {
                subs.retain(|x| x != s);
            }
        })
    }
}

/// CloudTrail forwarding to the emulator, except that it can report a delivery error
/// (the emulator never does).
pub struct TrailDouble {
    pub inner: Arc<dyn CloudTrail>,
    pub delivery_error: Mutex<Option<String>>,
}

use landing_zone_operator::aws::CloudTrail;
use landing_zone_operator::aws::cloudtrail::{TrailInfo, TrailStatus};

#[async_trait]
impl CloudTrail for TrailDouble {
    async fn get_trail(&self, name: &str) -> AwsResult<Option<TrailInfo>> {
        self.inner.get_trail(name).await
    }
    async fn create_trail(&self, trail: &TrailInfo) -> AwsResult<String> {
        self.inner.create_trail(trail).await
    }
    async fn update_trail(&self, trail: &TrailInfo) -> AwsResult<()> {
        self.inner.update_trail(trail).await
    }
    async fn trail_status(&self, name: &str) -> AwsResult<TrailStatus> {
        let mut s = self.inner.trail_status(name).await?;
        if let Some(e) = self.delivery_error.lock().unwrap().clone() {
            s.latest_delivery_error = Some(e);
        }
        Ok(s)
    }
    async fn start_logging(&self, name: &str) -> AwsResult<()> {
        self.inner.start_logging(name).await
    }
    async fn delete_trail(&self, name: &str) -> AwsResult<()> {
        self.inner.delete_trail(name).await
    }
}
