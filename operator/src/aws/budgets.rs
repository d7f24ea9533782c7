//! AWS Budgets: the port (domain types) and its SDK implementation. Budgets live in the
//! management account; every call names that account.

use super::{AwsError, AwsResult, Service};
use async_trait::async_trait;
use aws_sdk_budgets as b;

#[derive(Clone, Debug, PartialEq)]
pub struct BudgetInfo {
    pub name: String,
    pub limit_amount: String,
    pub limit_unit: String,
    /// DAILY, MONTHLY, QUARTERLY, ANNUALLY.
    pub time_unit: String,
    /// The LinkedAccount cost filter (empty: the whole Organization).
    pub linked_accounts: Vec<String>,
    pub actual_spend: Option<String>,
    pub forecasted_spend: Option<String>,
}

/// A notification as AWS identifies it: by type, comparison, threshold and threshold type.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub struct NotificationKey {
    pub notification_type: String,
    pub comparison: String,
    pub threshold: f64,
    pub threshold_type: String,
}

impl NotificationKey {
    /// Same notification except for the threshold (an update, not a replacement).
    pub fn same_kind(&self, other: &Self) -> bool {
        self.notification_type == other.notification_type
            && self.comparison == other.comparison
            && self.threshold_type == other.threshold_type
    }
}

impl std::fmt::Display for NotificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.threshold_type == "PERCENTAGE" {
            "%"
        } else {
            ""
        };
        write!(
            f,
            "{} {} {}{unit}",
            self.notification_type, self.comparison, self.threshold
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subscriber {
    Email(String),
    Sns(String),
}

impl std::fmt::Display for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subscriber::Email(a) => write!(f, "email {a}"),
            Subscriber::Sns(a) => write!(f, "sns {a}"),
        }
    }
}

#[async_trait]
pub trait Budgets: Send + Sync {
    async fn describe_budget(&self, account_id: &str, name: &str) -> AwsResult<Option<BudgetInfo>>;
    /// Every budget of the account, each with whether a `Budget` can describe it (a cost budget
    /// filtered by nothing or by linked accounts only).
    async fn list_budgets(&self, account_id: &str) -> AwsResult<Vec<(BudgetInfo, bool)>>;
    async fn create_budget(
        &self,
        account_id: &str,
        budget: &BudgetInfo,
        notifications: &[(NotificationKey, Vec<Subscriber>)],
    ) -> AwsResult<()>;
    async fn update_budget(&self, account_id: &str, budget: &BudgetInfo) -> AwsResult<()>;
    async fn delete_budget(&self, account_id: &str, name: &str) -> AwsResult<()>;
    async fn list_notifications(
        &self,
        account_id: &str,
        name: &str,
    ) -> AwsResult<Vec<NotificationKey>>;
    async fn list_subscribers(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
    ) -> AwsResult<Vec<Subscriber>>;
    async fn create_notification(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
        subscribers: &[Subscriber],
    ) -> AwsResult<()>;
    async fn update_notification(
        &self,
        account_id: &str,
        name: &str,
        old: &NotificationKey,
        new: &NotificationKey,
    ) -> AwsResult<()>;
    async fn delete_notification(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
    ) -> AwsResult<()>;
    async fn create_subscriber(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()>;
    async fn delete_subscriber(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()>;
}

pub struct SdkBudgets {
    client: b::Client,
    /// Set once the endpoint showed it lacks DescribeSubscribersForNotification, so a
    /// process asks only once (each failing call costs the SDK's retries).
    subscribers_unimplemented: std::sync::atomic::AtomicBool,
}

impl SdkBudgets {
    pub fn new(client: b::Client) -> Self {
        Self {
            client,
            subscribers_unimplemented: Default::default(),
        }
    }
}

const SERVICE: &str = "budgets";

const CALLS: Service = Service(SERVICE);

fn sdk_notification(n: &NotificationKey) -> b::types::Notification {
    b::types::Notification::builder()
        .notification_type(n.notification_type.as_str().into())
        .comparison_operator(n.comparison.as_str().into())
        .threshold(n.threshold)
        .threshold_type(n.threshold_type.as_str().into())
        .build()
        .expect("required fields set")
}

fn sdk_subscriber(s: &Subscriber) -> b::types::Subscriber {
    let (kind, address) = match s {
        Subscriber::Email(a) => (b::types::SubscriptionType::Email, a),
        Subscriber::Sns(a) => (b::types::SubscriptionType::Sns, a),
    };
    b::types::Subscriber::builder()
        .subscription_type(kind)
        .address(address)
        .build()
        .expect("required fields set")
}

fn sdk_budget(budget: &BudgetInfo) -> b::types::Budget {
    let limit = b::types::Spend::builder()
        .amount(&budget.limit_amount)
        .unit(&budget.limit_unit)
        .build()
        .expect("required fields set");
    let mut builder = b::types::Budget::builder()
        .budget_name(&budget.name)
        .budget_limit(limit)
        .time_unit(budget.time_unit.as_str().into())
        .budget_type(b::types::BudgetType::Cost);
    if !budget.linked_accounts.is_empty() {
        let dims = b::types::ExpressionDimensionValues::builder()
            .key(b::types::Dimension::LinkedAccount)
            .set_values(Some(budget.linked_accounts.clone()))
            .build()
            .expect("required fields set");
        builder =
            builder.filter_expression(b::types::Expression::builder().dimensions(dims).build());
    }
    builder.build().expect("required fields set")
}

fn budget_info(bud: &b::types::Budget) -> BudgetInfo {
    BudgetInfo {
        name: bud.budget_name().to_string(),
        limit_amount: bud
            .budget_limit()
            .map(|l| l.amount().to_string())
            .unwrap_or_default(),
        limit_unit: bud
            .budget_limit()
            .map(|l| l.unit().to_string())
            .unwrap_or_default(),
        time_unit: bud.time_unit().as_str().to_string(),
        linked_accounts: bud
            .filter_expression()
            .and_then(|f| f.dimensions())
            .filter(|d| *d.key() == b::types::Dimension::LinkedAccount)
            .map(|d| d.values().to_vec())
            .unwrap_or_default(),
        actual_spend: spend(bud.calculated_spend().and_then(|c| c.actual_spend())),
        forecasted_spend: spend(bud.calculated_spend().and_then(|c| c.forecasted_spend())),
    }
}

fn spend(s: Option<&b::types::Spend>) -> Option<String> {
    s.map(|s| format!("{} {}", s.amount(), s.unit()))
}

#[async_trait]
impl Budgets for SdkBudgets {
    async fn describe_budget(&self, account_id: &str, name: &str) -> AwsResult<Option<BudgetInfo>> {
        let request = self
            .client
            .describe_budget()
            .account_id(account_id)
            .budget_name(name)
            .show_filter_expression(true)
            .send();
        let Some(out) = CALLS.find("DescribeBudget", request).await? else {
            return Ok(None);
        };
        Ok(out.budget().map(budget_info))
    }

    async fn list_budgets(&self, account_id: &str) -> AwsResult<Vec<(BudgetInfo, bool)>> {
        let out = CALLS
            .pages(
                "DescribeBudgets",
                self.client
                    .describe_budgets()
                    .account_id(account_id)
                    .show_filter_expression(true)
                    .into_paginator()
                    .send(),
                |page, out| {
                    for bud in page.budgets() {
                        // Budgets made before FilterExpression existed still carry CostFilters.
                        #[allow(deprecated)]
                        let expressible = *bud.budget_type() == b::types::BudgetType::Cost
                            && bud
                                .cost_filters()
                                .is_none_or(|f| f.keys().all(|k| k == "LinkedAccount"))
                            && bud.filter_expression().is_none_or(|f| {
                                f.dimensions()
                                    .is_some_and(|d| *d.key() == b::types::Dimension::LinkedAccount)
                            });
                        out.push((budget_info(bud), expressible));
                    }
                },
            )
            .await?;
        Ok(out)
    }

    async fn create_budget(
        &self,
        account_id: &str,
        budget: &BudgetInfo,
        notifications: &[(NotificationKey, Vec<Subscriber>)],
    ) -> AwsResult<()> {
        let mut req = self
            .client
            .create_budget()
            .account_id(account_id)
            .budget(sdk_budget(budget));
        for (n, subs) in notifications {
            let mut nws =
                b::types::NotificationWithSubscribers::builder().notification(sdk_notification(n));
            for s in subs {
                nws = nws.subscribers(sdk_subscriber(s));
            }
            req = req.notifications_with_subscribers(nws.build().expect("required fields set"));
        }
        CALLS.send("CreateBudget", req.send()).await?;
        Ok(())
    }

    async fn update_budget(&self, account_id: &str, budget: &BudgetInfo) -> AwsResult<()> {
        CALLS
            .send(
                "UpdateBudget",
                self.client
                    .update_budget()
                    .account_id(account_id)
                    .new_budget(sdk_budget(budget))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn delete_budget(&self, account_id: &str, name: &str) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteBudget",
                self.client
                    .delete_budget()
                    .account_id(account_id)
                    .budget_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn list_notifications(
        &self,
        account_id: &str,
        name: &str,
    ) -> AwsResult<Vec<NotificationKey>> {
        let out = CALLS
            .pages(
                "DescribeNotificationsForBudget",
                self.client
                    .describe_notifications_for_budget()
                    .account_id(account_id)
                    .budget_name(name)
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(page.notifications().iter().map(|n| {
                        NotificationKey {
                            notification_type: n.notification_type().as_str().to_string(),
                            comparison: n.comparison_operator().as_str().to_string(),
                            threshold: n.threshold(),
                            threshold_type: n
                                .threshold_type()
                                .map(|t| t.as_str())
                                .unwrap_or("PERCENTAGE")
                                .to_string(),
                        }
                    }));
                },
            )
            .await?;
        Ok(out)
    }

    async fn list_subscribers(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
    ) -> AwsResult<Vec<Subscriber>> {
        use std::sync::atomic::Ordering;
        const OP: &str = "DescribeSubscribersForNotification";
        if self.subscribers_unimplemented.load(Ordering::Relaxed) {
            return Err(AwsError::new(
                SERVICE,
                OP,
                "Unimplemented",
                "the endpoint does not implement this operation",
            ));
        }
        let pages = self
            .client
            .describe_subscribers_for_notification()
            .account_id(account_id)
            .budget_name(name)
            .notification(sdk_notification(n))
            .into_paginator()
            .send();
        let out = CALLS
            .pages(OP, pages, |page, out| {
                out.extend(
                    page.subscribers()
                        .iter()
                        .map(|s| match s.subscription_type() {
                            b::types::SubscriptionType::Sns => {
                                Subscriber::Sns(s.address().to_string())
                            }
                            _ => Subscriber::Email(s.address().to_string()),
                        }),
                )
            })
            .await
            .inspect_err(|e| {
                if e.code == "Unimplemented" {
                    self.subscribers_unimplemented
                        .store(true, Ordering::Relaxed);
                }
            })?;
        Ok(out)
    }

    async fn create_notification(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
        subscribers: &[Subscriber],
    ) -> AwsResult<()> {
        CALLS
            .send(
                "CreateNotification",
                self.client
                    .create_notification()
                    .account_id(account_id)
                    .budget_name(name)
                    .notification(sdk_notification(n))
                    .set_subscribers(Some(subscribers.iter().map(sdk_subscriber).collect()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn update_notification(
        &self,
        account_id: &str,
        name: &str,
        old: &NotificationKey,
        new: &NotificationKey,
    ) -> AwsResult<()> {
        CALLS
            .send(
                "UpdateNotification",
                self.client
                    .update_notification()
                    .account_id(account_id)
                    .budget_name(name)
                    .old_notification(sdk_notification(old))
                    .new_notification(sdk_notification(new))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn delete_notification(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
    ) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteNotification",
                self.client
                    .delete_notification()
                    .account_id(account_id)
                    .budget_name(name)
                    .notification(sdk_notification(n))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn create_subscriber(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()> {
        CALLS
            .send(
                "CreateSubscriber",
                self.client
                    .create_subscriber()
                    .account_id(account_id)
                    .budget_name(name)
                    .notification(sdk_notification(n))
                    .subscriber(sdk_subscriber(s))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn delete_subscriber(
        &self,
        account_id: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteSubscriber",
                self.client
                    .delete_subscriber()
                    .account_id(account_id)
                    .budget_name(name)
                    .notification(sdk_notification(n))
                    .subscriber(sdk_subscriber(s))
                    .send(),
            )
            .await?;
        Ok(())
    }
}
