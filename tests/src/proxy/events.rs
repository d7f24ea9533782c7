//! EventBridge's delivery, judged as AWS judges it. The emulator hands every matched event to
//! every target; AWS first asks each target's policy:
//! - an SQS queue takes an event only if its policy lets `events.amazonaws.com`
//!   `sqs:SendMessage`, with `aws:SourceArn` the rule's ARN and `aws:SourceAccount` the rule's
//!   account (EventBridge User Guide, "Using resource-based policies for Amazon EventBridge",
//!   Amazon SQS permissions;
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions>);
//! - an event bus in another region takes it through the target's role: EventBridge assumes it
//!   (`events.amazonaws.com`, with `aws:SourceArn` the rule's ARN and `aws:SourceAccount`:
//!   "Cross-service confused deputy prevention in Amazon EventBridge", Event buses;
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/cross-service-confused-deputy-prevention.html>),
//!   and the role's policy must allow `events:PutEvents` on that bus ("Sending and receiving events
//!   between AWS Regions in Amazon EventBridge";
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-region.html>); the event
//!   then meets the rules of that region's bus;
//! - an event a target refuses goes to the target's dead-letter queue, with the attributes AWS
//!   documents (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, `ERROR_MESSAGE`), if that queue's policy
//!   lets the rule send to it; otherwise it is lost ("Using dead-letter queues to process
//!   undelivered events in EventBridge";
//!   <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>).
//!   (AWS retries a refused delivery for up to 24 hours first; a policy refusal stays a refusal,
//!   so this layer sends it on at once.)
//!
//! Entries whose every delivery is to a queue that accepts them go to the emulator as sent; the
//! others this layer delivers itself, in the emulator's message shape.

use super::policy::{Decision, Request, evaluate};
use super::*;

/// One target a matched rule sends an event to, and why it would refuse (None: it accepts).
struct Delivery {
    rule_arn: String,
    target: Value,
    refusal: Option<(String, String)>,
}

impl Delivery {
    fn target_arn(&self) -> &str {
        str_of(&self.target, "Arn")
    }
    fn to_event_bus(&self) -> bool {
        self.target_arn().contains(":event-bus/")
    }
}

pub(super) async fn events(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    if call.operation != "PutEvents" {
        return upstream.forward(call).await;
    }
    let (account, _) = caller_account(call, st, upstream).await?;
    let entries = call.json["Entries"].as_array().cloned().unwrap_or_default();
    let mut judged = Vec::new();
    for entry in &entries {
        let event = event_of(entry, &account, &call.region);
        let bus = bus_name(str_of(entry, "EventBusName"));
        let deliveries = judge_deliveries(call, upstream, &account, &bus, &event).await?;
        judged.push((event, deliveries));
    }
    let ours = |d: &[Delivery]| d.iter().any(|d| d.refusal.is_some() || d.to_event_bus());
    if !judged.iter().any(|(_, d)| ours(d)) {
        return upstream.forward(call).await;
    }
    let mut answers = vec![Value::Null; entries.len()];
    let mut failed = 0;
    let theirs: Vec<usize> = (0..entries.len())
        .filter(|&i| !ours(&judged[i].1))
        .collect();
    if !theirs.is_empty() {
        let body =
            json!({"Entries": theirs.iter().map(|&i| entries[i].clone()).collect::<Vec<_>>()});
        let (_, out) = upstream
            .ask_with_status(call, "AWSEvents", "PutEvents", body)
            .await?;
        failed = out["FailedEntryCount"].as_u64().unwrap_or(0);
        for (k, &i) in theirs.iter().enumerate() {
            answers[i] = out["Entries"][k].clone();
        }
    }
    for (i, (event, deliveries)) in judged.iter().enumerate() {
        if ours(deliveries) {
            deliver(call, st, upstream, &account, event, deliveries).await?;
            answers[i] = json!({"EventId": event["id"]});
        }
    }
    Ok(json_ok(
        json!({"FailedEntryCount": failed, "Entries": answers}),
    ))
}

/// The event as EventBridge builds it from a PutEvents entry.
fn event_of(entry: &Value, account: &str, region: &str) -> Value {
    let n = NEXT_EVENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "version": "0",
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "detail-type": str_of(entry, "DetailType"),
        "source": str_of(entry, "Source"),
        "account": account,
        "time": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": entry.get("Resources").cloned().unwrap_or(json!([])),
        "detail": serde_json::from_str::<Value>(str_of(entry, "Detail")).unwrap_or(json!({})),
    })
}

static NEXT_EVENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A bus named by name or ARN.
fn bus_name(named: &str) -> String {
    match named.rsplit_once("event-bus/") {
        Some((_, name)) => name.to_string(),
        None if named.is_empty() => "default".to_string(),
        None => named.to_string(),
    }
}

/// Every (rule, target) of `bus` in the call's region whose pattern matches, judged.
async fn judge_deliveries(
    call: &Call,
    upstream: &Upstream,
    account: &str,
    bus: &str,
    event: &Value,
) -> Result<Vec<Delivery>, std::io::Error> {
    let rules = upstream
        .ask_with_status(call, "AWSEvents", "ListRules", json!({"EventBusName": bus}))
        .await?
        .1;
    let mut out = Vec::new();
    for rule in rules["Rules"].as_array().cloned().unwrap_or_default() {
        if !str_of(&rule, "State").starts_with("ENABLED")
            || str_of(&rule, "EventPattern").is_empty()
        {
            continue;
        }
        let pattern =
            serde_json::from_str::<Value>(str_of(&rule, "EventPattern")).unwrap_or_default();
        if !matches(&pattern, event) {
            continue;
        }
        let targets = upstream
            .ask_with_status(
                call,
                "AWSEvents",
                "ListTargetsByRule",
                json!({"Rule": str_of(&rule, "Name"), "EventBusName": bus}),
            )
            .await?
            .1;
        let rule_arn = str_of(&rule, "Arn").to_string();
        for target in targets["Targets"].as_array().cloned().unwrap_or_default() {
            let refusal = refusal(call, upstream, account, &rule_arn, &target).await?;
            out.push(Delivery {
                rule_arn: rule_arn.clone(),
                target,
                refusal,
            });
        }
    }
    Ok(out)
}

/// Whether an event matches a pattern, as EventBridge documents it ("Event patterns in Amazon
/// EventBridge": every field of the pattern must match; a field's array of values matches when
/// the event's value, or one of the event's array values, equals one of them; nested objects
/// match field by field; <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>).
/// The content filters (`prefix`, `exists`, `anything-but`, numeric) are not modelled: a pattern
/// using one matches nothing here. (The emulator's TestEventPattern is a stub that answers
/// nothing, so this layer matches itself.)
pub(super) fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(key, want)| {
        let got = &event[key.as_str()];
        match want {
            Value::Object(_) => got.is_object() && matches(want, got),
            Value::Array(values) => {
                let candidates: Vec<&Value> = match got {
                    Value::Array(list) => list.iter().collect(),
                    Value::Null => vec![],
                    v => vec![v],
                };
                values
                    .iter()
                    .any(|v| !v.is_object() && candidates.contains(&v))
            }
            _ => false,
        }
    })
}

/// Why the target would refuse an event of the rule (AWS's error code and message), if it would.
async fn refusal(
    call: &Call,
    upstream: &Upstream,
    account: &str,
    rule_arn: &str,
    target: &Value,
) -> Result<Option<(String, String)>, std::io::Error> {
    let arn = str_of(target, "Arn");
    if arn.contains(":sqs:") {
        return queue_refusal(call, upstream, account, rule_arn, arn).await;
    }
    if !arn.contains(":event-bus/") {
        return Ok(None);
    }
    let role_arn = str_of(target, "RoleArn");
    let role = role_arn.rsplit('/').next().unwrap_or_default();
    if role.is_empty() {
        return Ok(Some((
            "NO_PERMISSIONS".into(),
            format!(
                "an event bus in another region needs a role to send with; the target of {rule_arn} names none"
            ),
        )));
    }
    let assume = Request::by_service("events.amazonaws.com", "sts:AssumeRole", role_arn)
        .with("aws:SourceArn", rule_arn)
        .with("aws:SourceAccount", account);
    let trust = upstream.role_trust(call, role).await?;
    if trust.is_none_or(|t| evaluate(&t, &assume) != Decision::Allow) {
        return Ok(Some((
            "NO_PERMISSIONS".into(),
            format!(
                "EventBridge cannot assume {role_arn}: its trust policy does not let events.amazonaws.com assume it (with no condition keys)"
            ),
        )));
    }
    let put = Request::by_identity(role_arn, "events:PutEvents", arn);
    let policies = upstream.role_inline_policies(call, role).await?;
    let decisions: Vec<Decision> = policies.iter().map(|p| evaluate(p, &put)).collect();
    let allowed = decisions.contains(&Decision::Allow)
        && !decisions
            .iter()
            .any(|d| matches!(d, Decision::ExplicitDeny(_)));
    Ok((!allowed).then(|| {
        (
            "NO_PERMISSIONS".into(),
            format!("{role_arn} may not events:PutEvents on {arn} (its inline policies, the only ones this layer reads)"),
        )
    }))
}

async fn queue_refusal(
    call: &Call,
    upstream: &Upstream,
    account: &str,
    rule_arn: &str,
    queue_arn: &str,
) -> Result<Option<(String, String)>, std::io::Error> {
    let Some(url) = queue_url(call, upstream, queue_arn).await? else {
        return Ok(Some((
            "SDK_CLIENT_ERROR".into(),
            format!("the queue {queue_arn} does not exist"),
        )));
    };
    let (_, attributes) = upstream
        .ask_with_status(
            call,
            "AmazonSQS",
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["Policy"]}),
        )
        .await?;
    let policy = serde_json::from_str::<Value>(str_of(&attributes["Attributes"], "Policy")).ok();
    let send = Request::by_service("events.amazonaws.com", "sqs:SendMessage", queue_arn)
        .with("aws:SourceArn", rule_arn)
        .with("aws:SourceAccount", account);
    Ok(policy
        .is_none_or(|p| evaluate(&p, &send) != Decision::Allow)
        .then(|| {
            (
                "NO_PERMISSIONS".into(),
                format!("the policy of {queue_arn} does not let events.amazonaws.com sqs:SendMessage for {rule_arn}"),
            )
        }))
}

/// The URL of the queue an ARN names (in the call's region), if it exists.
async fn queue_url(
    call: &Call,
    upstream: &Upstream,
    queue_arn: &str,
) -> Result<Option<String>, std::io::Error> {
    let parts: Vec<&str> = queue_arn.split(':').collect();
    let (Some(owner), Some(name)) = (parts.get(4), parts.get(5)) else {
        return Ok(None);
    };
    let (status, out) = upstream
        .ask_with_status(
            call,
            "AmazonSQS",
            "GetQueueUrl",
            json!({"QueueName": name, "QueueOwnerAWSAccountId": owner}),
        )
        .await?;
    Ok((status == 200)
        .then(|| str_of(&out, "QueueUrl").to_string())
        .filter(|u| !u.is_empty()))
}

async fn send_to_queue(
    call: &Call,
    upstream: &Upstream,
    queue_arn: &str,
    body: &Value,
    attributes: Value,
) -> Result<bool, std::io::Error> {
    let Some(url) = queue_url(call, upstream, queue_arn).await? else {
        return Ok(false);
    };
    let mut message = json!({"QueueUrl": url, "MessageBody": body.to_string()});
    if attributes.as_object().is_some_and(|a| !a.is_empty()) {
        message["MessageAttributes"] = attributes;
    }
    let (status, _) = upstream
        .ask_with_status(call, "AmazonSQS", "SendMessage", message)
        .await?;
    Ok(status == 200)
}

/// Hands the event to each target that accepts it, and what a target refused to its dead-letter
/// queue (when that queue accepts it from the rule).
async fn deliver(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
    account: &str,
    event: &Value,
    deliveries: &[Delivery],
) -> Result<(), std::io::Error> {
    for d in deliveries {
        let target = d.target_arn();
        let line = match &d.refusal {
            None if d.to_event_bus() => {
                // The event meets the rules of the other region's bus, as it is.
                let region = target.split(':').nth(3).unwrap_or_default();
                let there = call.in_region(region);
                let bus = bus_name(target);
                let next =
                    Box::pin(judge_deliveries(&there, upstream, account, &bus, event)).await?;
                Box::pin(deliver(&there, st, upstream, account, event, &next)).await?;
                format!("forwarded to {target}")
            }
            None => {
                send_to_queue(call, upstream, target, event, json!({})).await?;
                format!("delivered to {target}")
            }
            Some((code, message)) => {
                let dlq = d.target["DeadLetterConfig"]["Arn"]
                    .as_str()
                    .unwrap_or_default();
                let admitted = !dlq.is_empty()
                    && queue_refusal(call, upstream, account, &d.rule_arn, dlq)
                        .await?
                        .is_none();
                let text = |v: &str| json!({"DataType": "String", "StringValue": v});
                if admitted {
                    let attributes = json!({
                        "RULE_ARN": text(&d.rule_arn),
                        "TARGET_ARN": text(target),
                        "ERROR_CODE": text(code),
                        "ERROR_MESSAGE": text(message),
                    });
                    send_to_queue(call, upstream, dlq, event, attributes).await?;
                    format!("refused by {target} ({message}); sent to the dead-letter queue {dlq}")
                } else {
                    format!("refused by {target} ({message}); lost: no dead-letter queue takes it")
                }
            }
        };
        st.lock().unwrap().event_deliveries.push(format!(
            "{} {} by {}: {line}",
            str_of(event, "detail-type"),
            str_of(event, "id"),
            d.rule_arn
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_eventbridge_documents() {
        let event = json!({
            "source": "aws.cloudwatch",
            "detail-type": "CloudWatch Alarm State Change",
            "resources": ["arn:a", "arn:b"],
            "detail": {"eventSource": "iam.amazonaws.com", "state": {"value": "ALARM"}},
        });
        let cases = [
            (
                json!({"source": ["aws.cloudwatch"]}),
                true,
                "one of the values",
            ),
            (
                json!({"source": ["aws.iam", "aws.cloudwatch"]}),
                true,
                "any value of the array",
            ),
            (json!({"source": ["aws.iam"]}), false, "no value equal"),
            (
                json!({"source": ["aws.cloudwatch"], "detail-type": ["Other"]}),
                false,
                "every field must match",
            ),
            (
                json!({"detail": {"state": {"value": ["ALARM"]}}}),
                true,
                "nested objects field by field",
            ),
            (
                json!({"detail": {"eventSource": ["organizations.amazonaws.com"]}}),
                false,
                "nested value differs",
            ),
            (
                json!({"resources": ["arn:b"]}),
                true,
                "an event array matches when one of its values does",
            ),
            (
                json!({"account": ["123456789012"]}),
                false,
                "a field the event lacks",
            ),
            (
                json!({"source": [{"prefix": "aws."}]}),
                false,
                "content filters are not modelled: no match",
            ),
            (
                json!({"source": "aws.cloudwatch"}),
                false,
                "a value must be an array",
            ),
        ];
        for (pattern, want, case) in cases {
            assert_eq!(matches(&pattern, &event), want, "{case}");
        }
    }
}
