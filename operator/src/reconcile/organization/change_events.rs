//! The change-event pipeline the Organization resource can own (`spec.changeEvents`): an
//! EventBridge rule on the default bus of the global services' region, matching the management
//! calls of the services the operator manages, a second one matching CloudWatch alarm state
//! changes (the trail's security alarms), and an SQS queue as their only target, encrypted,
//! admitting only those rules, with a dead-letter queue for what EventBridge cannot hand over.
//!
//! Reads per resync: GetQueueUrl and GetQueueAttributes for both queues, DescribeRule and
//! ListTargetsByRule per rule. Nothing is ever deleted: removing `changeEvents` leaves the pipeline.

use crate::api::Drift;
use crate::aws::alarms::RoleWithPolicy;
use crate::aws::{AwsError, AwsPorts, AwsResult, Service};

const SQS: Service = Service("sqs");
const EVENTS: Service = Service("events");
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The rule's target id.
pub const TARGET_ID: &str = "landing-zone-operator";
/// Events older than a day are older than any resync: the resync has seen their change.
const RETENTION_SECONDS: &str = "86400";
/// AWS's longest, so a human can look at what EventBridge could not deliver.
const DLQ_RETENTION_SECONDS: &str = "1209600";
/// A message received this often without being deleted goes to the dead-letter queue.
const MAX_RECEIVE_COUNT: u32 = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub queue_name: String,
    pub region: String,
    pub account: String,
    pub partition: String,
    /// Other regions where the operator keeps alarms (the trail's region, us-east-1 for the
    /// billing alarm): CloudWatch sends an alarm's state changes to the default bus of the alarm's
    /// own region only, so a rule there forwards them to this region's default bus, where the
    /// alarm-state rule hands them to the queue.
    pub forward_from: Vec<String>,
}

impl Desired {
    pub fn dead_letter_queue_name(&self) -> String {
        format!("{}-dlq", self.queue_name)
    }
    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
    pub fn queue_arn(&self) -> String {
        self.arn("sqs", &self.queue_name)
    }
    /// Each rule's target: the queue, with the dead-letter queue for what cannot be delivered.
    pub fn target(&self) -> Target {
        Target {
            id: TARGET_ID.into(),
            arn: self.queue_arn(),
            dead_letter_arn: Some(self.dead_letter_queue_arn()),
            role_arn: None,
        }
    }
    /// The pipeline region's default event bus: where the forwarding rules send.
    pub fn bus_arn(&self) -> String {
        self.arn("events", "event-bus/default")
    }
    /// The role EventBridge sends forwarded events with (`<queue name>-fwd`: 56 characters at
    /// most, within IAM's 64).
    pub fn forwarding_role_name(&self) -> String {
        format!("{}-fwd", self.queue_name)
    }
    pub fn forwarding_role_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            self.partition,
            self.account,
            self.forwarding_role_name()
        )
    }
    /// A forwarding rule's target: the pipeline region's default bus, sent with the forwarding
    /// role (EventBridge needs a role for an event bus in another region).
    pub fn forward_target(&self) -> Target {
        Target {
            id: TARGET_ID.into(),
            arn: self.bus_arn(),
            dead_letter_arn: None,
            role_arn: Some(self.forwarding_role_arn()),
        }
    }
    /// EventBridge assumes the forwarding role (EventBridge User Guide, "Sending and receiving
    /// events between AWS Regions in Amazon EventBridge": the rule's target is the other region's
    /// bus, with an execution role that trusts `events.amazonaws.com`;
    /// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cross-region.html>), only for
    /// this pipeline's forwarding rules: EventBridge sends `aws:SourceArn`, the rule's ARN, and
    /// `aws:SourceAccount` when it assumes an event-bus target's role ("Cross-service confused
    /// deputy prevention in Amazon EventBridge", Event buses;
    /// <https://docs.aws.amazon.com/eventbridge/latest/userguide/cross-service-confused-deputy-prevention.html>).
    pub fn forwarding_role_trust(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {"aws:SourceArn": format!(
                        "arn:{}:events:*:{}:rule/{}",
                        self.partition,
                        self.account,
                        self.rule(RuleKind::AlarmState).0
                    )},
                },
            }],
        })
    }
    /// The role may put events on the pipeline region's default bus, nothing else.
    pub fn forwarding_role_policy(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "ForwardAlarmStateChanges",
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": self.bus_arn(),
            }],
        })
    }
    pub fn dead_letter_queue_arn(&self) -> String {
        self.arn("sqs", &self.dead_letter_queue_name())
    }
    pub fn rule_arn(&self) -> String {
        self.arn("events", &format!("rule/{}", self.queue_name))
    }
    /// The rule of a kind: its name, pattern and description.
    pub fn rule(&self, kind: RuleKind) -> (String, Value, &'static str) {
        match kind {
            RuleKind::ApiCalls => (
                self.queue_name.clone(),
                self.event_pattern(),
                "AWS API calls that can change the landing zone, for landing-zone-operator",
            ),
            RuleKind::AlarmState => (
                format!("{}-alarm-state", self.queue_name),
                json!({"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]}),
                "CloudWatch alarm state changes (the trail's security alarms), for landing-zone-operator",
            ),
        }
    }
    pub fn rule_arn_of(&self, kind: RuleKind) -> String {
        self.arn("events", &format!("rule/{}", self.rule(kind).0))
    }
    /// Mutating management calls of the services `touched` maps (the rule's ENABLED state leaves
    /// read-only calls out).
    pub fn event_pattern(&self) -> Value {
        json!({
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventSource": crate::events::touch::EVENT_SOURCES},
        })
    }
    /// Only the rule may send, and only to this queue.
    pub fn queue_policy(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "OnlyTheChangeEventRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": self.queue_arn(),
                "Condition": {"ArnEquals": {"aws:SourceArn": RuleKind::ALL.map(|k| self.rule_arn_of(k))}},
            }],
        })
    }
    pub fn queue_attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("Policy".into(), self.queue_policy().to_string()),
            (
                "RedrivePolicy".into(),
                json!({"deadLetterTargetArn": self.dead_letter_queue_arn(), "maxReceiveCount": MAX_RECEIVE_COUNT}).to_string(),
            ),
            ("SqsManagedSseEnabled".into(), "true".into()),
            ("MessageRetentionPeriod".into(), RETENTION_SECONDS.into()),
        ])
    }
    /// The dead-letter queue takes what EventBridge could not hand to the queue (the rules'
    /// targets name it) and what the operator received too often: only the rules may send to it
    /// (EventBridge User Guide, "Using dead-letter queues to process undelivered events": the
    /// queue's policy must let `events.amazonaws.com` `sqs:SendMessage` for the rule's ARN;
    /// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>). SQS's own
    /// redrive from the queue needs no policy.
    pub fn dead_letter_queue_policy(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "OnlyTheChangeEventRules",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": self.dead_letter_queue_arn(),
                "Condition": {"ArnEquals": {"aws:SourceArn": RuleKind::ALL.map(|k| self.rule_arn_of(k))}},
            }],
        })
    }
    pub fn dead_letter_queue_attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("Policy".into(), self.dead_letter_queue_policy().to_string()),
            ("SqsManagedSseEnabled".into(), "true".into()),
            (
                "MessageRetentionPeriod".into(),
                DLQ_RETENTION_SECONDS.into(),
            ),
        ])
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Queue {
    pub url: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub event_pattern: String,
    pub state: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleKind {
    /// Management calls (CloudTrail records) of the services the operator manages.
    ApiCalls,
    /// CloudWatch alarms changing state: the trail's alarms show in status at once.
    AlarmState,
}

impl RuleKind {
    pub const ALL: [RuleKind; 2] = [RuleKind::ApiCalls, RuleKind::AlarmState];

    fn field(self) -> &'static str {
        match self {
            RuleKind::ApiCalls => "changeEvents.rule",
            RuleKind::AlarmState => "changeEvents.alarmStateRule",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub queue: Option<Queue>,
    pub dead_letter_queue: Option<Queue>,
    pub rule: Option<Rule>,
    /// The rule's targets.
    pub targets: Vec<Target>,
    pub alarm_state_rule: Option<Rule>,
    pub alarm_state_targets: Vec<Target>,
    /// The forwarding role (read only when some region forwards).
    pub forwarding_role: Option<RoleWithPolicy>,
    /// The alarm-state rule and its targets in each region of `Desired::forward_from`.
    pub forwarders: BTreeMap<String, (Option<Rule>, Vec<Target>)>,
}

/// A rule's target: its id, where it sends, where EventBridge puts what it could not send, and
/// the role it sends with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub arn: String,
    pub dead_letter_arn: Option<String>,
    pub role_arn: Option<String>,
}

impl Observed {
    fn rule_of(&self, kind: RuleKind) -> (&Option<Rule>, &Vec<Target>) {
        match kind {
            RuleKind::ApiCalls => (&self.rule, &self.targets),
            RuleKind::AlarmState => (&self.alarm_state_rule, &self.alarm_state_targets),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateQueue {
        name: String,
        attributes: BTreeMap<String, String>,
    },
    SetQueueAttributes {
        name: String,
        url: String,
        attributes: BTreeMap<String, String>,
    },
    PutRule(RuleKind),
    PutTarget(RuleKind),
    CreateForwardingRole,
    SetForwardingRoleTrust,
    PutForwardingRolePolicy,
    /// The alarm-state rule in another region.
    PutForwardRule(String),
    /// That rule's target: the pipeline region's bus.
    PutForwardTarget(String),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::CreateQueue { name, .. } => write!(f, "create SQS queue {name}"),
            Action::SetQueueAttributes {
                name, attributes, ..
            } => write!(
                f,
                "set {} of SQS queue {name}",
                attributes.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            Action::PutRule(RuleKind::ApiCalls) => write!(f, "put the change-event rule"),
            Action::PutTarget(RuleKind::ApiCalls) => {
                write!(f, "point the change-event rule at its queue")
            }
            Action::PutRule(RuleKind::AlarmState) => write!(f, "put the alarm-state rule"),
            Action::PutTarget(RuleKind::AlarmState) => {
                write!(f, "point the alarm-state rule at the queue")
            }
            Action::CreateForwardingRole => {
                write!(f, "create the role EventBridge forwards alarm state changes with")
            }
            Action::SetForwardingRoleTrust => {
                write!(f, "let EventBridge assume the forwarding role")
            }
            Action::PutForwardingRolePolicy => {
                write!(f, "limit the forwarding role to the pipeline's event bus")
            }
            Action::PutForwardRule(region) => {
                write!(f, "put the alarm-state rule in {region} (forwards to the pipeline's region)")
            }
            Action::PutForwardTarget(region) => {
                write!(f, "point the alarm-state rule in {region} at the pipeline's event bus")
            }
        }
    }
}

/// The AWS managed key for SQS (by alias or alias ARN). EventBridge cannot send to a queue it
/// encrypts: the key's policy cannot be changed to let `events.amazonaws.com` use it
/// (EventBridge User Guide, "Amazon SQS permissions": an encrypted queue needs a customer managed
/// key whose policy allows EventBridge `kms:Decrypt` and `kms:GenerateDataKey`;
/// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions>).
fn is_aws_managed_sqs_key(key: &str) -> bool {
    key == "alias/aws/sqs" || key.ends_with(":alias/aws/sqs")
}

/// Whether an attribute AWS reports is what the spec wants: JSON compared as JSON, and server-side
/// encryption satisfied by SQS-managed keys or by a KMS key someone chose that EventBridge can
/// use (not the AWS managed `aws/sqs`: the queue would refuse every event).
fn attribute_matches(key: &str, want: &str, observed: &BTreeMap<String, String>) -> bool {
    let got = observed.get(key).map(String::as_str);
    match key {
        "SqsManagedSseEnabled" => {
            got == Some("true")
                || observed
                    .get("KmsMasterKeyId")
                    .is_some_and(|k| !k.is_empty() && !is_aws_managed_sqs_key(k))
        }
        "RedrivePolicy" => {
            let norm = |s: &str| {
                serde_json::from_str::<Value>(s).ok().map(|v| {
                    (
                        v["deadLetterTargetArn"].as_str().map(str::to_string),
                        // AWS reports the count as a number, some as a string.
                        v["maxReceiveCount"]
                            .as_u64()
                            .or_else(|| v["maxReceiveCount"].as_str()?.parse().ok()),
                    )
                })
            };
            got.is_some_and(|g| norm(g) == norm(want))
        }
        "Policy" => got.is_some_and(|g| {
            serde_json::from_str::<Value>(g).ok() == serde_json::from_str::<Value>(want).ok()
        }),
        _ => got == Some(want),
    }
}

fn queue_plan(
    field: &str,
    name: String,
    want: BTreeMap<String, String>,
    observed: Option<&Queue>,
    plan: &mut Plan,
) {
    match observed {
        None => {
            plan.drift.push(Drift::new(field, "exists", "missing"));
            plan.actions.push(Action::CreateQueue {
                name,
                attributes: want,
            });
        }
        Some(q) => {
            let mut differ: BTreeMap<String, String> = want
                .into_iter()
                .filter(|(k, v)| !attribute_matches(k, v, &q.attributes))
                .collect();
            for (k, v) in &differ {
                let got = match q.attributes.get("KmsMasterKeyId") {
                    Some(key) if k == "SqsManagedSseEnabled" && is_aws_managed_sqs_key(key) => {
                        format!("{key} (EventBridge cannot use the AWS managed key)")
                    }
                    _ => q.attributes.get(k).cloned().unwrap_or_else(|| "unset".into()),
                };
                plan.drift.push(Drift::new(format!("{field}.{k}"), v, got));
            }
            // SQS keeps one kind of server-side encryption: SSE-SQS replaces the KMS key only
            // when the key is cleared in the same call.
            if differ.contains_key("SqsManagedSseEnabled")
                && q.attributes.get("KmsMasterKeyId").is_some_and(|k| !k.is_empty())
            {
                differ.insert("KmsMasterKeyId".into(), String::new());
            }
            if !differ.is_empty() {
                plan.actions.push(Action::SetQueueAttributes {
                    name,
                    url: q.url.clone(),
                    attributes: differ,
                });
            }
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
}

/// One rule and its target: `put_rule` and `put_target` are the actions that mend them.
struct RuleCheck<'a> {
    field: String,
    pattern: Value,
    rule: Option<&'a Rule>,
    targets: &'a [Target],
    want: Target,
    put_rule: Action,
    put_target: Action,
}

fn rule_plan(check: RuleCheck<'_>, plan: &mut Plan) {
    let RuleCheck { field, pattern, rule, targets, want, put_rule, put_target } = check;
    match rule {
        None => {
            plan.drift.push(Drift::new(&field, "exists", "missing"));
            plan.actions.push(put_rule);
        }
        Some(r) => {
            let same = serde_json::from_str::<Value>(&r.event_pattern).ok() == Some(pattern.clone());
            if !same {
                plan.drift.push(Drift::new(
                    format!("{field}.eventPattern"),
                    pattern.to_string(),
                    &r.event_pattern,
                ));
            }
            if r.state != "ENABLED" {
                plan.drift.push(Drift::new(format!("{field}.state"), "ENABLED", &r.state));
            }
            if !same || r.state != "ENABLED" {
                plan.actions.push(put_rule);
            }
        }
    }
    let have = targets.iter().find(|t| t.id == TARGET_ID);
    match have {
        Some(t) if *t == want => {}
        Some(t) if t.arn == want.arn && t.dead_letter_arn != want.dead_letter_arn => {
            plan.drift.push(Drift::new(
                format!("{field}.target.deadLetterQueue"),
                want.dead_letter_arn.as_deref().unwrap_or_default(),
                t.dead_letter_arn.as_deref().unwrap_or("none"),
            ));
            plan.actions.push(put_target);
        }
        Some(t) if t.arn == want.arn => {
            plan.drift.push(Drift::new(
                format!("{field}.target.role"),
                want.role_arn.as_deref().unwrap_or("none"),
                t.role_arn.as_deref().unwrap_or("none"),
            ));
            plan.actions.push(put_target);
        }
        _ => {
            plan.drift.push(Drift::new(
                format!("{field}.target"),
                &want.arn,
                have.map_or("none", |t| t.arn.as_str()),
            ));
            plan.actions.push(put_target);
        }
    }
}

/// The forwarding role, then each region's forwarding rule and target.
fn forwarding_plan(desired: &Desired, observed: &Observed, plan: &mut Plan) {
    if desired.forward_from.is_empty() {
        return;
    }
    let field = "changeEvents.forwardingRole";
    match &observed.forwarding_role {
        None => {
            plan.drift.push(Drift::new(field, "exists", "missing"));
            plan.actions.extend([Action::CreateForwardingRole, Action::PutForwardingRolePolicy]);
        }
        Some(r) => {
            if r.trust != desired.forwarding_role_trust() {
                plan.drift.push(Drift::new(format!("{field}.trust"), "events.amazonaws.com, from the forwarding rules of this account", "different"));
                plan.actions.push(Action::SetForwardingRoleTrust);
            }
            if r.policy.as_ref() != Some(&desired.forwarding_role_policy()) {
                plan.drift.push(Drift::new(
                    format!("{field}.policy"),
                    "events:PutEvents on the pipeline's event bus",
                    if r.policy.is_some() { "different" } else { "<none>" },
                ));
                plan.actions.push(Action::PutForwardingRolePolicy);
            }
        }
    }
    let none = (None, Vec::new());
    for region in &desired.forward_from {
        let (rule, targets) = observed.forwarders.get(region).unwrap_or(&none);
        rule_plan(
            RuleCheck {
                field: format!("changeEvents.forwardFrom[{region}]"),
                pattern: desired.rule(RuleKind::AlarmState).1,
                rule: rule.as_ref(),
                targets,
                want: desired.forward_target(),
                put_rule: Action::PutForwardRule(region.clone()),
                put_target: Action::PutForwardTarget(region.clone()),
            },
            plan,
        );
    }
}

/// The dead-letter queue before the queue that names it, the queue before the rules that send to it.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    queue_plan(
        "changeEvents.deadLetterQueue",
        desired.dead_letter_queue_name(),
        desired.dead_letter_queue_attributes(),
        observed.dead_letter_queue.as_ref(),
        &mut plan,
    );
    queue_plan(
        "changeEvents.queue",
        desired.queue_name.clone(),
        desired.queue_attributes(),
        observed.queue.as_ref(),
        &mut plan,
    );
    for kind in RuleKind::ALL {
        let (rule, targets) = observed.rule_of(kind);
        rule_plan(
            RuleCheck {
                field: kind.field().into(),
                pattern: desired.rule(kind).1,
                rule: rule.as_ref(),
                targets,
                want: desired.target(),
                put_rule: Action::PutRule(kind),
                put_target: Action::PutTarget(kind),
            },
            &mut plan,
        );
    }
    forwarding_plan(desired, observed, &mut plan);
    plan
}

/// EventBridge and SQS in the pipeline's region (EventBridge also in the regions that forward,
/// IAM for the forwarding role), on the shared (paced, fenced) config.
pub struct Pipeline {
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    iam: aws_sdk_iam::Client,
    sdk_config: aws_config::SdkConfig,
    recorder: crate::aws::CallRecorder,
}

const IAM: Service = Service("iam");

impl Pipeline {
    pub fn new(aws: &AwsPorts, region: &str) -> Self {
        let region = aws_config::Region::new(region.to_string());
        Self {
            events: Self::events_in(&aws.sdk_config, &aws.recorder, region.clone()),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&aws.sdk_config)
                    .interceptor(aws.recorder.clone())
                    .region(region)
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&aws.sdk_config)
                    .interceptor(aws.recorder.clone())
                    .build(),
            ),
            sdk_config: aws.sdk_config.clone(),
            recorder: aws.recorder.clone(),
        }
    }

    fn events_in(
        sdk_config: &aws_config::SdkConfig,
        recorder: &crate::aws::CallRecorder,
        region: aws_config::Region,
    ) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(sdk_config)
                .interceptor(recorder.clone())
                .region(region)
                .build(),
        )
    }

    /// EventBridge in a region that forwards.
    fn events_of(&self, region: &str) -> aws_sdk_eventbridge::Client {
        Self::events_in(&self.sdk_config, &self.recorder, aws_config::Region::new(region.to_string()))
    }

    async fn queue(&self, name: &str) -> AwsResult<Option<Queue>> {
        let request = self.sqs.get_queue_url().queue_name(name).send();
        let url = match SQS.send("GetQueueUrl", request).await {
            Ok(out) => out.queue_url().unwrap_or_default().to_string(),
            // SQS's own codes for a queue that is not there (query and JSON protocols).
            Err(e)
                if e.code.contains("NonExistentQueue") || e.code.contains("QueueDoesNotExist") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let out = SQS.send("GetQueueAttributes", self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()).await?;
        let attributes = out
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Queue { url, attributes }))
    }

    async fn rule(
        events: &aws_sdk_eventbridge::Client,
        name: &str,
    ) -> AwsResult<(Option<Rule>, Vec<Target>)> {
        let request = events.describe_rule().name(name).send();
        let rule = EVENTS
            .find("DescribeRule", request)
            .await?
            .map(|out| Rule {
                event_pattern: out.event_pattern().unwrap_or_default().to_string(),
                state: out.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            });
        let targets = if rule.is_some() {
            EVENTS
                .send(
                    "ListTargetsByRule",
                    events.list_targets_by_rule().rule(name).send(),
                )
                .await?
                .targets()
                .iter()
                .map(|t| Target {
                    id: t.id().to_string(),
                    arn: t.arn().to_string(),
                    dead_letter_arn: t
                        .dead_letter_config()
                        .and_then(|d| d.arn())
                        .map(str::to_string),
                    role_arn: t.role_arn().map(str::to_string),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok((rule, targets))
    }

    async fn forwarding_role(&self, desired: &Desired) -> AwsResult<Option<RoleWithPolicy>> {
        let name = desired.forwarding_role_name();
        let Some((arn, trust)) = crate::aws::iam::role_trust(&self.iam, &name).await? else {
            return Ok(None);
        };
        let request = self.iam.get_role_policy().role_name(&name).policy_name(&name).send();
        let policy = IAM
            .find("GetRolePolicy", request)
            .await?
            .and_then(|p| serde_json::from_str(&crate::aws::iam::url_decode(p.policy_document())).ok());
        Ok(Some(RoleWithPolicy { arn, trust, policy }))
    }

    pub async fn observe(&self, desired: &Desired) -> AwsResult<Observed> {
        let (rule, targets) = Self::rule(&self.events, &desired.rule(RuleKind::ApiCalls).0).await?;
        let (alarm_state_rule, alarm_state_targets) =
            Self::rule(&self.events, &desired.rule(RuleKind::AlarmState).0).await?;
        let mut forwarders = BTreeMap::new();
        for region in &desired.forward_from {
            let name = desired.rule(RuleKind::AlarmState).0;
            forwarders.insert(region.clone(), Self::rule(&self.events_of(region), &name).await?);
        }
        let forwarding_role = if desired.forward_from.is_empty() {
            None
        } else {
            self.forwarding_role(desired).await?
        };
        Ok(Observed {
            forwarding_role,
            forwarders,
            dead_letter_queue: self.queue(&desired.dead_letter_queue_name()).await?,
            queue: self.queue(&desired.queue_name).await?,
            rule,
            targets,
            alarm_state_rule,
            alarm_state_targets,
        })
    }

    fn attributes(
        attributes: &BTreeMap<String, String>,
    ) -> std::collections::HashMap<aws_sdk_sqs::types::QueueAttributeName, String> {
        attributes
            .iter()
            .map(|(k, v)| (aws_sdk_sqs::types::QueueAttributeName::from(k.as_str()), v.clone()))
            .collect()
    }

    /// Carries out one action; returns the queue's URL when it made or changed one.
    pub async fn apply(&self, desired: &Desired, action: &Action) -> AwsResult<Option<String>> {
        match action {
            Action::CreateQueue { name, attributes } => {
                let out = SQS.send("CreateQueue", self
                    .sqs
                    .create_queue()
                    .queue_name(name)
                    .set_attributes(Some(Self::attributes(attributes)))
                    .send()).await?;
                Ok(out.queue_url().map(str::to_string))
            }
            Action::SetQueueAttributes {
                url, attributes, ..
            } => {
                SQS.send("SetQueueAttributes", self.sqs
                    .set_queue_attributes()
                    .queue_url(url)
                    .set_attributes(Some(Self::attributes(attributes)))
                    .send()).await?;
                Ok(Some(url.clone()))
            }
            Action::PutRule(kind) => {
                Self::put_rule(&self.events, desired, *kind).await?;
                Ok(None)
            }
            Action::PutTarget(kind) => {
                Self::put_target(&self.events, &desired.rule(*kind).0, &desired.target()).await?;
                Ok(None)
            }
            Action::PutForwardRule(region) => {
                Self::put_rule(&self.events_of(region), desired, RuleKind::AlarmState).await?;
                Ok(None)
            }
            Action::PutForwardTarget(region) => {
                let name = desired.rule(RuleKind::AlarmState).0;
                Self::put_target(&self.events_of(region), &name, &desired.forward_target()).await?;
                Ok(None)
            }
            Action::CreateForwardingRole => {
                crate::aws::iam::create_role(
                    &self.iam,
                    &desired.forwarding_role_name(),
                    &desired.forwarding_role_trust().to_string(),
                    "EventBridge forwards CloudWatch alarm state changes to the change-event pipeline's region (landing-zone-operator)",
                )
                .await?;
                Ok(None)
            }
            Action::SetForwardingRoleTrust => {
                crate::aws::iam::set_role_trust(
                    &self.iam,
                    &desired.forwarding_role_name(),
                    &desired.forwarding_role_trust().to_string(),
                )
                .await?;
                Ok(None)
            }
            Action::PutForwardingRolePolicy => {
                let name = desired.forwarding_role_name();
                let request = self
                    .iam
                    .put_role_policy()
                    .role_name(&name)
                    .policy_name(&name)
                    .policy_document(desired.forwarding_role_policy().to_string())
                    .send();
                IAM.send("PutRolePolicy", request).await?;
                Ok(None)
            }
        }
    }

    async fn put_rule(
        events: &aws_sdk_eventbridge::Client,
        desired: &Desired,
        kind: RuleKind,
    ) -> AwsResult<()> {
        let (name, pattern, description) = desired.rule(kind);
        EVENTS.send("PutRule", events
            .put_rule()
            .name(name)
            .description(description)
            .event_pattern(pattern.to_string())
            .state(aws_sdk_eventbridge::types::RuleState::Enabled)
            .send()).await?;
        Ok(())
    }

    async fn put_target(
        events: &aws_sdk_eventbridge::Client,
        rule: &str,
        target: &Target,
    ) -> AwsResult<()> {
        let out = EVENTS.send("PutTargets", events
            .put_targets()
            .rule(rule)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id(&target.id)
                    .arn(&target.arn)
                    .set_role_arn(target.role_arn.clone())
                    .set_dead_letter_config(target.dead_letter_arn.as_ref().map(|arn| {
                        aws_sdk_eventbridge::types::DeadLetterConfig::builder().arn(arn).build()
                    }))
                    .build()
                    .expect("id and arn set"),
            )
            .send()).await?;
        if let Some(failed) = out.failed_entries().first() {
            return Err(AwsError::new(
                "events",
                "PutTargets",
                failed.error_code().unwrap_or("FailedEntry"),
                failed.error_message().unwrap_or_default(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        Desired {
            queue_name: "lzo-events".into(),
            region: "us-east-1".into(),
            account: "111111111111".into(),
            partition: "aws".into(),
            forward_from: vec![],
        }
    }

    /// The pipeline as the operator leaves it, as AWS reports it back (JSON re-encoded, counts as
    /// strings, extra attributes).
    fn in_place() -> Observed {
        let d = desired();
        let mut queue = d.queue_attributes();
        queue.insert(
            "RedrivePolicy".into(),
            r#"{"maxReceiveCount":"5","deadLetterTargetArn":"arn:aws:sqs:us-east-1:111111111111:lzo-events-dlq"}"#.into(),
        );
        queue.insert(
            "Policy".into(),
            serde_json::to_string_pretty(&d.queue_policy()).unwrap(),
        );
        queue.insert("VisibilityTimeout".into(), "30".into());
        Observed {
            queue: Some(Queue {
                url: "https://sqs/lzo-events".into(),
                attributes: queue,
            }),
            dead_letter_queue: Some(Queue {
                url: "https://sqs/lzo-events-dlq".into(),
                attributes: d.dead_letter_queue_attributes(),
            }),
            rule: Some(Rule {
                event_pattern: serde_json::to_string_pretty(&d.event_pattern()).unwrap(),
                state: "ENABLED".into(),
            }),
            targets: vec![d.target()],
            alarm_state_rule: Some(Rule {
                event_pattern: d.rule(RuleKind::AlarmState).1.to_string(),
                state: "ENABLED".into(),
            }),
            alarm_state_targets: vec![d.target()],
            ..Observed::default()
        }
    }

    /// Each case: (what it is, AWS as observed, the actions planned, the drifted fields).
    type Case<'a> = (&'a str, Observed, Vec<Action>, Vec<&'a str>);

    fn assert_plans(d: &Desired, cases: Vec<Case<'_>>) {
        for (case, observed, actions, drift) in cases {
            let p = plan(d, &observed);
            assert_eq!(p.actions, actions, "{case}");
            assert_eq!(
                p.drift.iter().map(|d| d.field.as_str()).collect::<Vec<_>>(),
                drift,
                "{case}"
            );
        }
    }

    #[test]
    fn arns_follow_partition_region_and_account() {
        let d = Desired {
            partition: "aws-us-gov".into(),
            region: "us-gov-west-1".into(),
            ..desired()
        };
        assert_eq!(
            d.rule_arn(),
            "arn:aws-us-gov:events:us-gov-west-1:111111111111:rule/lzo-events"
        );
        assert_eq!(
            d.dead_letter_queue_arn(),
            "arn:aws-us-gov:sqs:us-gov-west-1:111111111111:lzo-events-dlq"
        );
        let policy = d.queue_policy();
        assert_eq!(
            policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
            json!([
                d.rule_arn(),
                "arn:aws-us-gov:events:us-gov-west-1:111111111111:rule/lzo-events-alarm-state"
            ])
        );
        assert_eq!(policy["Statement"][0]["Resource"], d.queue_arn());
    }

    #[test]
    fn pipeline_plans() {
        let d = desired();
        let with = |f: &dyn Fn(&mut Observed)| {
            let mut o = in_place();
            f(&mut o);
            o
        };
        // (case, observed, actions, drifted fields)
        let cases: Vec<Case> = vec![
            ("in place", in_place(), vec![], vec![]),
            (
                "nothing yet: dead-letter queue, queue, rule, target in that order",
                Observed::default(),
                vec![
                    Action::CreateQueue {
                        name: "lzo-events-dlq".into(),
                        attributes: d.dead_letter_queue_attributes(),
                    },
                    Action::CreateQueue {
                        name: "lzo-events".into(),
                        attributes: d.queue_attributes(),
                    },
                    Action::PutRule(RuleKind::ApiCalls),
                    Action::PutTarget(RuleKind::ApiCalls),
                    Action::PutRule(RuleKind::AlarmState),
                    Action::PutTarget(RuleKind::AlarmState),
                ],
                vec![
                    "changeEvents.deadLetterQueue",
                    "changeEvents.queue",
                    "changeEvents.rule",
                    "changeEvents.rule.target",
                    "changeEvents.alarmStateRule",
                    "changeEvents.alarmStateRule.target",
                ],
            ),
            (
                "a queue policy opened to everyone is put back",
                with(&|o| {
                    o.queue.as_mut().unwrap().attributes.insert(
                        "Policy".into(),
                        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sqs:*"}]}"#.into(),
                    );
                }),
                vec![Action::SetQueueAttributes {
                    name: "lzo-events".into(),
                    url: "https://sqs/lzo-events".into(),
                    attributes: BTreeMap::from([(
                        "Policy".into(),
                        d.queue_policy().to_string(),
                    )]),
                }],
                vec!["changeEvents.queue.Policy"],
            ),
            (
                "encryption turned off is turned on again",
                with(&|o| {
                    o.queue
                        .as_mut()
                        .unwrap()
                        .attributes
                        .insert("SqsManagedSseEnabled".into(), "false".into());
                }),
                vec![Action::SetQueueAttributes {
                    name: "lzo-events".into(),
                    url: "https://sqs/lzo-events".into(),
                    attributes: BTreeMap::from([(
                        "SqsManagedSseEnabled".into(),
                        "true".into(),
                    )]),
                }],
                vec!["changeEvents.queue.SqsManagedSseEnabled"],
            ),
            (
                "a KMS key someone chose is encryption too",
                with(&|o| {
                    let a = &mut o.queue.as_mut().unwrap().attributes;
                    a.remove("SqsManagedSseEnabled");
                    a.insert("KmsMasterKeyId".into(), "alias/events".into());
                }),
                vec![],
                vec![],
            ),
            (
                "the AWS managed aws/sqs key is replaced: EventBridge cannot use it",
                with(&|o| {
                    let a = &mut o.queue.as_mut().unwrap().attributes;
                    a.remove("SqsManagedSseEnabled");
                    a.insert("KmsMasterKeyId".into(), "alias/aws/sqs".into());
                }),
                vec![Action::SetQueueAttributes {
                    name: "lzo-events".into(),
                    url: "https://sqs/lzo-events".into(),
                    attributes: BTreeMap::from([
                        ("KmsMasterKeyId".into(), String::new()),
                        ("SqsManagedSseEnabled".into(), "true".into()),
                    ]),
                }],
                vec!["changeEvents.queue.SqsManagedSseEnabled"],
            ),
            (
                "a disabled rule is enabled",
                with(&|o| o.rule.as_mut().unwrap().state = "DISABLED".into()),
                vec![Action::PutRule(RuleKind::ApiCalls)],
                vec!["changeEvents.rule.state"],
            ),
            (
                "a narrowed pattern is widened again",
                with(&|o| {
                    o.rule.as_mut().unwrap().event_pattern =
                        r#"{"source":["aws.organizations"]}"#.into()
                }),
                vec![Action::PutRule(RuleKind::ApiCalls)],
                vec!["changeEvents.rule.eventPattern"],
            ),
            (
                "a target pointed elsewhere is pointed back",
                with(&|o| {
                    o.targets = vec![Target {
                        id: TARGET_ID.into(),
                        arn: "arn:aws:sqs:us-east-1:999999999999:elsewhere".into(),
                        dead_letter_arn: None,
                        role_arn: None,
                    }]
                }),
                vec![Action::PutTarget(RuleKind::ApiCalls)],
                vec!["changeEvents.rule.target"],
            ),
            (
                "a target without its dead-letter queue gets it (events EventBridge cannot hand over are kept)",
                with(&|o| o.alarm_state_targets[0].dead_letter_arn = None),
                vec![Action::PutTarget(RuleKind::AlarmState)],
                vec!["changeEvents.alarmStateRule.target.deadLetterQueue"],
            ),
            (
                "a dead-letter queue that admits anyone is narrowed to the rules",
                with(&|o| {
                    o.dead_letter_queue.as_mut().unwrap().attributes.insert(
                        "Policy".into(),
                        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sqs:*"}]}"#.into(),
                    );
                }),
                vec![Action::SetQueueAttributes {
                    name: "lzo-events-dlq".into(),
                    url: "https://sqs/lzo-events-dlq".into(),
                    attributes: BTreeMap::from([(
                        "Policy".into(),
                        d.dead_letter_queue_policy().to_string(),
                    )]),
                }],
                vec!["changeEvents.deadLetterQueue.Policy"],
            ),
            (
                "the alarm-state rule deleted is put back with its target",
                with(&|o| {
                    o.alarm_state_rule = None;
                    o.alarm_state_targets.clear();
                }),
                vec![
                    Action::PutRule(RuleKind::AlarmState),
                    Action::PutTarget(RuleKind::AlarmState),
                ],
                vec!["changeEvents.alarmStateRule", "changeEvents.alarmStateRule.target"],
            ),
            (
                "other targets of the rule are left alone",
                with(&|o| {
                    o.targets.push(Target {
                        id: "audit".into(),
                        arn: "arn:aws:sqs:us-east-1:111111111111:audit".into(),
                        dead_letter_arn: None,
                        role_arn: None,
                    })
                }),
                vec![],
                vec![],
            ),
        ];
        assert_plans(&d, cases);
    }

    #[test]
    fn alarm_regions_other_than_the_pipelines_forward_to_its_bus() {
        let d = Desired {
            forward_from: vec!["eu-west-1".into()],
            ..desired()
        };
        let forwarded = || {
            let mut o = in_place();
            o.forwarding_role = Some(RoleWithPolicy {
                arn: d.forwarding_role_arn(),
                trust: d.forwarding_role_trust(),
                policy: Some(d.forwarding_role_policy()),
            });
            let rule = Rule {
                event_pattern: d.rule(RuleKind::AlarmState).1.to_string(),
                state: "ENABLED".into(),
            };
            o.forwarders
                .insert("eu-west-1".into(), (Some(rule), vec![d.forward_target()]));
            o
        };
        assert_eq!(d.bus_arn(), "arn:aws:events:us-east-1:111111111111:event-bus/default");
        assert_eq!(d.forwarding_role_name(), "lzo-events-fwd");
        let longest = Desired { queue_name: "q".repeat(52), ..desired() };
        assert!(longest.forwarding_role_name().len() <= 64, "IAM's longest role name");
        assert_eq!(longest.rule(RuleKind::AlarmState).0.len(), 64, "EventBridge's longest rule name");
        let with = |f: &dyn Fn(&mut Observed)| {
            let mut o = forwarded();
            f(&mut o);
            o
        };
        let cases: Vec<Case> = vec![
            ("in place", forwarded(), vec![], vec![]),
            (
                "nothing yet: the role before the rule that sends with it",
                in_place(),
                vec![
                    Action::CreateForwardingRole,
                    Action::PutForwardingRolePolicy,
                    Action::PutForwardRule("eu-west-1".into()),
                    Action::PutForwardTarget("eu-west-1".into()),
                ],
                vec![
                    "changeEvents.forwardingRole",
                    "changeEvents.forwardFrom[eu-west-1]",
                    "changeEvents.forwardFrom[eu-west-1].target",
                ],
            ),
            (
                "a trust widened to any rule (the condition removed) is narrowed again",
                with(&|o| {
                    o.forwarding_role.as_mut().unwrap().trust["Statement"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("Condition");
                }),
                vec![Action::SetForwardingRoleTrust],
                vec!["changeEvents.forwardingRole.trust"],
            ),
            (
                "a widened role policy is narrowed again",
                with(&|o| {
                    o.forwarding_role.as_mut().unwrap().policy =
                        Some(json!({"Statement": [{"Effect": "Allow", "Action": "events:*", "Resource": "*"}]}));
                }),
                vec![Action::PutForwardingRolePolicy],
                vec!["changeEvents.forwardingRole.policy"],
            ),
            (
                "a forwarding target without its role gets it back",
                with(&|o| o.forwarders.get_mut("eu-west-1").unwrap().1[0].role_arn = None),
                vec![Action::PutForwardTarget("eu-west-1".into())],
                vec!["changeEvents.forwardFrom[eu-west-1].target.role"],
            ),
            (
                "a disabled forwarding rule is enabled",
                with(&|o| o.forwarders.get_mut("eu-west-1").unwrap().0.as_mut().unwrap().state = "DISABLED".into()),
                vec![Action::PutForwardRule("eu-west-1".into())],
                vec!["changeEvents.forwardFrom[eu-west-1].state"],
            ),
        ];
        assert_plans(&d, cases);
        // No forwarding region: nothing read or planned for it.
        assert!(plan(&desired(), &in_place()).actions.is_empty());
    }

    #[test]
    fn the_rule_matches_changes_of_every_service_mapped_and_nothing_read_only() {
        let pattern = desired().event_pattern();
        assert_eq!(pattern["detail-type"], json!(["AWS API Call via CloudTrail"]));
        let sources: Vec<&str> = pattern["detail"]["eventSource"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(sources, crate::events::touch::EVENT_SOURCES);
    }
}
