//! AWS Budgets, answered statefully (the emulator lacks the notification and subscriber calls).

use super::*;

/// Notifications are identified by type, comparison, threshold and threshold type.
pub(super) fn same_notification(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| v.get("Threshold").and_then(Value::as_f64).unwrap_or(0.0);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    text(a, "NotificationType") == text(b, "NotificationType")
        && text(a, "ComparisonOperator") == text(b, "ComparisonOperator")
        && (num(a) - num(b)).abs() < 1e-9
        && text(a, "ThresholdType").replace("PERCENTAGE", "")
            == text(b, "ThresholdType").replace("PERCENTAGE", "")
}

pub(super) fn same_subscriber(a: &Value, b: &Value) -> bool {
    str_of(a, "SubscriptionType") == str_of(b, "SubscriptionType")
        && str_of(a, "Address") == str_of(b, "Address")
}

/// The SNS topics among the call's subscribers that Budgets may not publish to: each topic's
/// access policy evaluated for `budgets.amazonaws.com` `SNS:Publish`, with `aws:SourceAccount`
/// (the budget's account) and `aws:SourceArn` (`arn:aws:budgets::<account>:budget/<name>`), as
/// AWS's page shows the statement Budgets needs (AWS Cost Management User Guide, "Creating an
/// Amazon SNS topic for budget notifications",
/// <https://docs.aws.amazon.com/cost-management/latest/userguide/budgets-sns-policy.html>). A
/// topic that does not exist is refused too.
pub(super) async fn topics_refusing_budgets(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<BTreeSet<String>, std::io::Error> {
    use super::policy::{Decision, Request, evaluate};
    fn sns_addresses(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if m.get("SubscriptionType").and_then(Value::as_str) == Some("SNS")
                    && let Some(a) = m.get("Address").and_then(Value::as_str)
                {
                    out.insert(a.to_string());
                }
                m.values().for_each(|x| sns_addresses(x, out));
            }
            Value::Array(list) => list.iter().for_each(|x| sns_addresses(x, out)),
            _ => {}
        }
    }
    let mut topics = BTreeSet::new();
    sns_addresses(&call.json, &mut topics);
    if topics.is_empty() {
        return Ok(topics);
    }
    let (account, _) = caller_account(call, st, upstream).await?;
    let name = str_of(&call.json, "BudgetName").to_string();
    let name = if name.is_empty() {
        call.json
            .pointer("/Budget/BudgetName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        name
    };
    let mut refused = BTreeSet::new();
    for topic in topics {
        let publish = Request::by_service("budgets.amazonaws.com", "SNS:Publish", &topic)
            .with("aws:SourceAccount", &account)
            .with(
                "aws:SourceArn",
                &format!("arn:aws:budgets::{account}:budget/{name}"),
            );
        let policy = upstream.topic_policy(call, &topic).await?;
        if policy.is_none_or(|p| evaluate(&p, &publish) != Decision::Allow) {
            refused.insert(topic);
        }
    }
    Ok(refused)
}

/// AWS Budgets, answered statefully (Budgets API Reference; errors: NotFoundException,
/// DuplicateRecordException, InvalidParameterException). `refused`: the SNS topics Budgets may
/// not publish to ([`topics_refusing_budgets`]).
pub(super) fn budgets(call: &Call, st: &Arc<Mutex<State>>, refused: &BTreeSet<String>) -> Answer {
    let mut s = st.lock().unwrap();
    let op = call.operation.as_str();
    let j = &call.json;
    let name = j
        .get("BudgetName")
        .and_then(Value::as_str)
        .or_else(|| j.pointer("/Budget/BudgetName").and_then(Value::as_str))
        .or_else(|| j.pointer("/NewBudget/BudgetName").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let not_found = || {
        json_error(
            400,
            "NotFoundException",
            &format!("Unable to get budget: {name} - the budget doesn't exist."),
            None,
        )
    };
    let refuses = |subs: &[Value]| {
        subs.iter().any(|x| {
            str_of(x, "SubscriptionType") == "SNS" && refused.contains(str_of(x, "Address"))
        })
    };
    let refusal = || {
        json_error(
            400,
            "InvalidParameterException",
            "Budgets cannot publish to the SNS topic: its access policy does not allow budgets.amazonaws.com",
            None,
        )
    };
    let subs_of = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if !op.starts_with("Describe") {
        s.budget_writes.push(format!("{op} {name}"));
    }
    match op {
        "CreateBudget" => {
            if s.budgets.contains_key(&name) {
                return json_error(
                    400,
                    "DuplicateRecordException",
                    &format!("Error creating budget: {name} - the budget already exists."),
                    None,
                );
            }
            let mut notes = Vec::new();
            for n in j
                .get("NotificationsWithSubscribers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let subs = subs_of(&n, "Subscribers");
                if refuses(&subs) {
                    return refusal();
                }
                notes.push((n.get("Notification").cloned().unwrap_or(Value::Null), subs));
            }
            s.budgets.insert(
                name,
                (j.get("Budget").cloned().unwrap_or(Value::Null), notes),
            );
            json_ok(json!({}))
        }
        "DescribeBudget" => {
            let Some((budget, _)) = s.budgets.get(&name) else {
                return not_found();
            };
            let (actual, forecast) = s
                .realism
                .budgets
                .as_ref()
                .and_then(|m| m.get(&name).copied())
                .unwrap_or((0.0, 0.0));
            let unit = budget
                .pointer("/BudgetLimit/Unit")
                .and_then(Value::as_str)
                .unwrap_or("USD");
            let mut b = budget.clone();
            b["CalculatedSpend"] = json!({
                "ActualSpend": {"Amount": format!("{actual:.1}"), "Unit": unit},
                "ForecastedSpend": {"Amount": format!("{forecast:.1}"), "Unit": unit},
            });
            b["TimePeriod"] = json!({"Start": 1.7e9, "End": 3.7e9});
            json_ok(json!({"Budget": b}))
        }
        "DescribeBudgets" => {
            let list: Vec<Value> = s.budgets.values().map(|(b, _)| b.clone()).collect();
            json_ok(json!({"Budgets": list}))
        }
        "UpdateBudget" => match s.budgets.get_mut(&name) {
            Some((b, _)) => {
                *b = j.get("NewBudget").cloned().unwrap_or(Value::Null);
                json_ok(json!({}))
            }
            None => not_found(),
        },
        "DeleteBudget" => match s.budgets.remove(&name) {
            Some(_) => json_ok(json!({})),
            None => not_found(),
        },
        "DescribeNotificationsForBudget" => match s.budgets.get(&name) {
            Some((_, notes)) => {
                let list: Vec<Value> = notes.iter().map(|(n, _)| n.clone()).collect();
                json_ok(json!({"Notifications": list}))
            }
            None => not_found(),
        },
        _ => {
            let Some((_, notes)) = s.budgets.get_mut(&name) else {
                return not_found();
            };
            let wanted = j
                .get("Notification")
                .or_else(|| j.get("OldNotification"))
                .cloned()
                .unwrap_or(Value::Null);
            let at = notes
                .iter()
                .position(|(n, _)| same_notification(n, &wanted));
            let missing = || {
                json_error(
                    400,
                    "NotFoundException",
                    "Unable to find the notification.",
                    None,
                )
            };
            match (op, at) {
                ("CreateNotification", Some(_)) => json_error(
                    400,
                    "DuplicateRecordException",
                    "Error creating notification: the notification already exists.",
                    None,
                ),
                ("CreateNotification", None) => {
                    let subs = subs_of(j, "Subscribers");
                    if refuses(&subs) {
                        return refusal();
                    }
                    notes.push((wanted, subs));
                    json_ok(json!({}))
                }
                ("UpdateNotification", Some(i)) => {
                    notes[i].0 = j.get("NewNotification").cloned().unwrap_or(Value::Null);
                    json_ok(json!({}))
                }
                ("DeleteNotification", Some(i)) => {
                    notes.remove(i);
                    json_ok(json!({}))
                }
                ("DescribeSubscribersForNotification", Some(i)) => {
                    json_ok(json!({"Subscribers": notes[i].1}))
                }
                ("CreateSubscriber", Some(i)) => {
                    let sub = j.get("Subscriber").cloned().unwrap_or(Value::Null);
                    if refuses(std::slice::from_ref(&sub)) {
                        return refusal();
                    }
                    if notes[i].1.iter().any(|x| same_subscriber(x, &sub)) {
                        return json_error(
                            400,
                            "DuplicateRecordException",
                            "The subscriber already exists.",
                            None,
                        );
                    }
                    notes[i].1.push(sub);
                    json_ok(json!({}))
                }
                ("UpdateSubscriber", Some(i)) => {
                    let old = j.get("OldSubscriber").cloned().unwrap_or(Value::Null);
                    match notes[i].1.iter().position(|x| same_subscriber(x, &old)) {
                        Some(k) => {
                            notes[i].1[k] = j.get("NewSubscriber").cloned().unwrap_or(Value::Null);
                            json_ok(json!({}))
                        }
                        None => missing(),
                    }
                }
                ("DeleteSubscriber", Some(i)) => {
                    let sub = j.get("Subscriber").cloned().unwrap_or(Value::Null);
                    match notes[i].1.iter().position(|x| same_subscriber(x, &sub)) {
                        Some(k) => {
                            notes[i].1.remove(k);
                            json_ok(json!({}))
                        }
                        None => missing(),
                    }
                }
                _ => missing(),
            }
        }
    }
}
