//! `Budget`: a cost budget in the management account with notifications.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landingzone.dev",
    version = "v1alpha1",
    kind = "Budget",
    shortname = "bud",
    category = "landingzone",
    status = "BudgetStatus",
    printcolumn(name = "LIMIT", type_ = "string", json_path = ".spec.limit.amount"),
    printcolumn(name = "ACTUAL", type_ = "string", json_path = ".status.actualSpend"),
    printcolumn(
        name = "FORECAST",
        type_ = "string",
        json_path = ".status.forecastedSpend"
    ),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "DRIFT", type_ = "integer", json_path = ".status.driftCount"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self.timeUnit != 'DAILY' || !has(self.notifications) || self.notifications.all(n, n.notificationType != 'FORECASTED')").message("FORECASTED notifications are not allowed on DAILY budgets"),
    validation = Rule::new("self.budgetName == oldSelf.budgetName").message("budgetName is immutable: AWS cannot rename a budget"),
)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSpec {
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 100 && !self.contains(':') && !self.contains('\\\\\\\\')").message("budgetName must be 1-100 characters without ':' or '\\\\'"))]
    #[schemars(length(max = 100))]
    pub budget_name: String,
    /// Scope the budget to one account (LinkedAccount filter). Default: the whole Organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<ResourceRef>,
    pub limit: Spend,
    #[serde(default)]
    pub time_unit: TimeUnit,
    /// At most 5 notifications (the AWS limit per budget).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 5").message("at most 5 notifications per budget (AWS limit)"))]
    #[schemars(length(max = 5))]
    pub notifications: Vec<Notification>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct Spend {
    /// A decimal amount greater than 0, e.g. "100" or "99.50".
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{1,15}(\\\\.[0-9]{1,2})?$') && double(self) > 0.0").message("limit.amount must be a decimal number greater than 0, e.g. \"100\" or \"99.50\""))]
    #[schemars(length(max = 18))]
    pub amount: String,
    #[serde(default = "usd")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Z]{3}$')").message("limit.unit must be a currency code such as USD"))]
    #[schemars(length(max = 3))]
    pub unit: String,
}

fn usd() -> String {
    "USD".to_string()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TimeUnit {
    Daily,
    #[default]
    Monthly,
    Quarterly,
    Annually,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.thresholdType != 'PERCENTAGE' || self.threshold <= 1000.0").message("a PERCENTAGE threshold must be at most 1000"),
)]
pub struct Notification {
    pub notification_type: NotificationType,
    #[x_kube(validation = Rule::new("self > 0.0").message("threshold must be greater than 0"))]
    pub threshold: f64,
    #[serde(default)]
    pub threshold_type: ThresholdType,
    #[serde(default)]
    pub comparison: Comparison,
    pub subscribers: Subscribers,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum NotificationType {
    Actual,
    Forecasted,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ThresholdType {
    #[default]
    Percentage,
    AbsoluteValue,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Comparison {
    #[default]
    GreaterThan,
    LessThan,
    EqualTo,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.emails) && size(self.emails) > 0) || has(self.snsTopicArn)").message("a notification needs at least one subscriber: emails or snsTopicArn"),
)]
pub struct Subscribers {
    /// At most 10 email addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 10 && self.all(e, size(e) <= 254 && e.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$'))").message("at most 10 valid email subscribers per notification"))]
    #[schemars(length(max = 10), inner(length(max = 254)))]
    pub emails: Vec<String>,
    /// At most one SNS topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$')").message("snsTopicArn must be an SNS topic ARN"))]
    #[schemars(length(max = 2048))]
    pub sns_topic_arn: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_spend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecasted_spend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_used: Option<String>,
    #[serde(flatten)]
    pub common: CommonStatus,
}
