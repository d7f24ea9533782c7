//! Change events through the real services' emulation: an EventBridge rule on the default bus
//! delivers "AWS API Call via CloudTrail" events to an SQS queue, and the consumer maps each to the
//! resources it touched. The emulator emits no CloudTrail events of its own, so the test makes the
//! change out of band and publishes the event AWS would send (PutEvents, in AWS's recorded shape).

use landing_zone_operator::events::{Consumer, Identity, Skip};
use landing_zone_operator::reconcile::Resource;
use landing_zone_operator::source::dir::load_dir;
use landing_zone_operator::source::state::StateFile;
use landing_zone_tests::operator::eventually;
use landing_zone_tests::{Emulator, PERSON, run_dir};
use serde_json::{Value, json};
use std::time::Duration;

const LANDING_ZONE: &str = "apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: app}
spec:
  accountName: app
  email: aws-app@example.com
  organizationalUnitRef: {name: workloads}
  baseline: false
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationPolicy
metadata: {name: deny-leave}
spec:
  type: ServiceControlPolicy
  policyName: deny-leave
  document: '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Action\":\"organizations:LeaveOrganization\",\"Resource\":\"*\"}]}'
  targets: {organizationalUnitRefs: [{name: workloads}]}
";

/// The resources of a directory with the statuses its apply recorded (AWS ids among them).
fn applied_resources(dir: &std::path::Path, state: &std::path::Path) -> Vec<Resource> {
    let mut resources: Vec<Resource> = load_dir(dir)
        .resources
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    StateFile::open(state)
        .unwrap()
        .load_statuses(&mut resources);
    resources
}

const OPERATOR: &str = "arn:aws:sts::123456789012:assumed-role/landing-zone-operator/lzo-0";

fn cloudtrail_detail(name: &str, params: Value, caller: &str) -> String {
    landing_zone_tests::organizations_call_detail(name, params, caller).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_resources_they_touched_and_are_deleted() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), LANDING_ZONE).unwrap();
    let state = dir.path().join("state.json");
    let applied = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!applied.failed(), "{:?}", applied.reports);
    let resources = applied_resources(dir.path(), &state);
    let account = resources.iter().find_map(|r| match r {
        Resource::AwsAccount(a) => a.status.as_ref()?.account_id.clone(),
        _ => None,
    });
    let account = account.expect("the account's id");

    // The pipeline: a queue, and a rule on the default bus whose target is the queue.
    let (queue_url, events) = emu.change_event_queue().await;

    // Out of band: the account moved to the root. Then the events AWS would send: the move (twice:
    // delivery is at least once), the operator's own write, one malformed, one of another service,
    // and one about an account not managed here.
    let root = emu.root_id().await;
    let ou = emu.parent_of(&account).await;
    emu.move_directly(&account, &ou, &root).await;
    let moved = cloudtrail_detail(
        "MoveAccount",
        json!({"accountId": account, "sourceParentId": ou, "destinationParentId": root}),
        PERSON,
    );
    let details = [
        ("aws.organizations", moved.clone()),
        ("aws.organizations", moved),
        ("aws.organizations", cloudtrail_detail("TagResource", json!({"resourceId": account, "tags": []}), OPERATOR)),
        ("aws.organizations", json!({"eventSource": "organizations.amazonaws.com"}).to_string()),
        ("aws.iam", json!({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "userIdentity": {"arn": PERSON}, "requestParameters": {"userName": "x"}}).to_string()),
        ("aws.organizations", cloudtrail_detail("TagResource", json!({"resourceId": "999999999999", "tags": []}), PERSON)),
    ];
    let mut put = events.put_events();
    for (source, detail) in &details {
        put = put.entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source(*source)
                .detail_type("AWS API Call via CloudTrail")
                .detail(detail)
                .build(),
        );
    }
    assert_eq!(put.send().await.unwrap().failed_entry_count(), 0);

    let me = Identity {
        role_arn: Some("arn:aws:iam::123456789012:role/landing-zone-operator".into()),
        member_session_name: "landing-zone-operator".into(),
    };
    let consumer = Consumer::new(&emu.ports().await, &queue_url, "us-east-1", me);
    let mut keys = std::collections::BTreeSet::new();
    let (mut messages, mut mapped, mut skipped) = (0, 0, Vec::new());
    for _ in 0..10 {
        let batch = consumer
            .poll(Duration::from_secs(1), || resources.clone())
            .await
            .unwrap();
        messages += batch.messages;
        mapped += batch.mapped;
        skipped.extend(batch.skipped);
        keys.extend(batch.keys.into_iter().map(|k| k.to_string()));
        if messages >= details.len() {
            break;
        }
    }
    assert_eq!(messages, details.len(), "every event delivered");
    assert_eq!(mapped, 2, "the move, twice");
    // The account and its OU, and what follows the tree: the guardrail.
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        [
            "AwsAccount/app",
            "OrganizationPolicy/deny-leave",
            "OrganizationalUnit/workloads"
        ]
    );
    assert!(skipped.contains(&Skip::Own), "{skipped:?}");
    assert_eq!(
        skipped
            .iter()
            .filter(|s| matches!(s, Skip::Malformed(_)))
            .count(),
        1,
        "{skipped:?}"
    );
    assert_eq!(
        skipped
            .iter()
            .filter(|s| matches!(s, Skip::Unknown(_)))
            .count(),
        2,
        "{skipped:?}"
    );
    // Handled means deleted: nothing comes back.
    let again = consumer
        .poll(Duration::from_secs(1), || resources.clone())
        .await
        .unwrap();
    assert_eq!(again.messages, 0);
}

/// The landing zone with the Organization owning the change-event pipeline.
fn with_pipeline() -> String {
    format!(
        "{LANDING_ZONE}---
apiVersion: landingzone.dev/v1alpha1
kind: Organization
metadata: {{name: organization}}
spec:
  policyTypes: [ServiceControlPolicy]
  changeEvents: {{queueName: lzo-events}}
"
    )
}

fn organization_report(run: &landing_zone_operator::cli::RunResult) -> (usize, Vec<String>) {
    let p = landing_zone_tests::report(run, "Organization", "organization")
        .result
        .as_ref()
        .expect("the Organization reconciled");
    (p.writes, p.drift.iter().map(|d| d.field.clone()).collect())
}

/// `spec.changeEvents`: the operator makes the rule and the encrypted queue with its dead-letter
/// queue and a policy that admits only the rule, puts them back when changed by hand, and the
/// events AWS would send reach the queue through the rule. Delivered out of order, they still lead
/// to the right state: a reconcile reads AWS as it is now, never the event's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organization_owns_a_pipeline_and_events_in_any_order_converge() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), with_pipeline()).unwrap();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let made: Vec<&String> = landing_zone_tests::report(&first, "Organization", "organization")
        .result
        .as_ref()
        .unwrap()
        .actions
        .iter()
        .filter(|a| a.contains("queue") || a.contains("rule"))
        .collect();
    assert_eq!(
        made,
        [
            "create SQS queue lzo-events-dlq",
            "create SQS queue lzo-events",
            "put the change-event rule",
            "point the change-event rule at its queue",
            "put the alarm-state rule",
            "point the alarm-state rule at the queue"
        ]
    );

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let st = &doc["resources"]["Organization/organization"]["status"]["changeEvents"];
    let queue_url = st["queueUrl"]
        .as_str()
        .expect("queueUrl in status")
        .to_string();
    assert_eq!(
        st["ruleArn"],
        "arn:aws:events:us-east-1:123456789012:rule/lzo-events"
    );
    assert_eq!(
        st["queueArn"],
        "arn:aws:sqs:us-east-1:123456789012:lzo-events"
    );

    // As made in AWS.
    let conf = emu.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let events = aws_sdk_eventbridge::Client::new(&conf);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes()
        .cloned()
        .unwrap_or_default();
    let attr = |k: &str| {
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(k))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(attr("SqsManagedSseEnabled"), "true", "{attributes:?}");
    let policy: Value = serde_json::from_str(&attr("Policy")).unwrap();
    // Only the pipeline's two rules may send: API calls, and alarm state changes.
    assert_eq!(
        policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        serde_json::json!([
            st["ruleArn"],
            format!("{}-alarm-state", st["ruleArn"].as_str().unwrap())
        ])
    );
    assert_eq!(
        policy["Statement"][0]["Principal"]["Service"],
        "events.amazonaws.com"
    );
    let redrive: Value = serde_json::from_str(&attr("RedrivePolicy")).unwrap();
    assert_eq!(st["deadLetterQueueArn"], redrive["deadLetterTargetArn"]);
    // What EventBridge cannot hand to the queue goes to the dead-letter queue (each rule's target
    // names it), which only the rules may send to.
    for rule in ["lzo-events", "lzo-events-alarm-state"] {
        let targets = events
            .list_targets_by_rule()
            .rule(rule)
            .send()
            .await
            .unwrap();
        let dlq = targets.targets()[0]
            .dead_letter_config()
            .and_then(|d| d.arn())
            .map(str::to_string);
        assert_eq!(dlq.as_deref(), st["deadLetterQueueArn"].as_str(), "{rule}");
    }
    let dlq_url = sqs
        .get_queue_url()
        .queue_name("lzo-events-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let dlq_policy = sqs
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy)
                .cloned()
        })
        .unwrap_or_default();
    let dlq_policy: Value = serde_json::from_str(&dlq_policy).unwrap();
    assert_eq!(
        dlq_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]
    );
    let rule = events
        .describe_rule()
        .name("lzo-events")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.state().map(|s| s.as_str()), Some("ENABLED"));

    // Kept: nothing to do when in place; put back when opened up and disabled by hand.
    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(organization_report(&second), (0, vec![]));
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": "*"}]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .disable_rule()
        .name("lzo-events")
        .send()
        .await
        .unwrap();
    let third = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        organization_report(&third),
        (
            2,
            vec![
                "changeEvents.queue.Policy".to_string(),
                "changeEvents.rule.state".to_string()
            ]
        )
    );
    let fourth = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(organization_report(&fourth), (0, vec![]));

    // Two changes out of band (the account to the root, then its OU renamed); their events are
    // published in reverse order, and the second one twice.
    let orgs = emu.org_client();
    let root = emu.root_id().await;
    let resources = applied_resources(dir.path(), &state);
    let id_of = |kind: &str| {
        resources
            .iter()
            .find(|r| r.key().kind.to_string() == kind)
            .and_then(Resource::aws_id)
            .unwrap()
    };
    let (account, ou) = (id_of("AwsAccount"), id_of("OrganizationalUnit"));
    emu.move_directly(&account, &ou, &root).await;
    orgs.update_organizational_unit()
        .organizational_unit_id(&ou)
        .name("Renamed")
        .send()
        .await
        .unwrap();
    let moved = json!({"accountId": account, "sourceParentId": ou, "destinationParentId": root});
    let renamed = json!({"organizationalUnitId": ou, "name": "Renamed"});
    for (name, params) in [
        ("UpdateOrganizationalUnit", &renamed),
        ("MoveAccount", &moved),
        ("UpdateOrganizationalUnit", &renamed),
    ] {
        landing_zone_tests::publish_organizations_call(&events, name, params.clone(), PERSON).await;
    }
    let consumer = Consumer::new(
        &emu.ports().await,
        &queue_url,
        "us-east-1",
        Identity::default(),
    );
    let (mut messages, mut keys) = (0, std::collections::BTreeSet::new());
    for _ in 0..10 {
        let batch = consumer
            .poll(Duration::from_secs(1), || resources.clone())
            .await
            .unwrap();
        messages += batch.messages;
        keys.extend(batch.keys.into_iter().map(|k| k.to_string()));
        if messages >= 3 {
            break;
        }
    }
    assert_eq!(
        messages, 3,
        "the rule the operator made delivers the events"
    );
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        [
            "AwsAccount/app",
            "OrganizationPolicy/deny-leave",
            "OrganizationalUnit/workloads"
        ]
    );
    // Reconciling what they touched, in any order, puts both back.
    let fixed = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!fixed.failed(), "{:?}", fixed.reports);
    let parent = emu.parent_of(&account).await;
    assert_eq!(parent, ou, "the account is back in its OU");
    let name = orgs
        .describe_organizational_unit()
        .organizational_unit_id(&ou)
        .send()
        .await
        .unwrap()
        .organizational_unit()
        .unwrap()
        .name()
        .unwrap()
        .to_string();
    assert_eq!(name, "Workloads");
}

/// AWS Organizations calls so far, by operation.
fn organizations_calls(m: &landing_zone_operator::metrics::Metrics) -> Vec<(String, u64)> {
    m.aws_call_counts()
        .into_iter()
        .filter(|((s, _), _)| s == "organizations")
        .map(|((_, o), (_, n))| (o, n))
        .collect()
}

/// The calls made between two counts.
fn made(before: &[(String, u64)], after: &[(String, u64)]) -> Vec<String> {
    after
        .iter()
        .filter_map(|(op, n)| {
            let was = before.iter().find(|(o, _)| o == op).map_or(0, |(_, n)| *n);
            (*n > was).then(|| format!("{op}×{}", n - was))
        })
        .collect()
}

/// The snapshot the reconciles share follows a move, a rename or a new OU, by change event or by
/// the operator's own write, with one call instead of reading the whole Organization; tags and
/// policy writes leave it as it is; anything else reads it all again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_snapshot_reads_again_only_what_moved_was_renamed_or_was_made() {
    use landing_zone_operator::controller::SnapshotCache;
    use landing_zone_operator::events::SnapshotChange;
    const TTL: Duration = Duration::from_secs(300);
    let emu = Emulator::start().await;
    let ports = emu.ports_direct().await;
    let o = emu.org_client();
    let root = emu.root_id().await;
    let ou = o
        .create_organizational_unit()
        .parent_id(&root)
        .name("Workloads")
        .send()
        .await
        .unwrap()
        .organizational_unit()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let account = emu
        .create_account_directly("app", "aws-app@example.com")
        .await;
    let cache = std::sync::Arc::new(SnapshotCache::new());
    let first = cache.get(&ports, TTL).await.unwrap();
    assert_eq!(
        first.accounts[&account].parent_id.as_deref(),
        Some(root.as_str())
    );
    let calls = || organizations_calls(&ports.metrics);

    // Moved out of band, as a change event reports: one ListParents.
    emu.move_directly(&account, &root, &ou).await;
    let before = calls();
    ports.changed_in_aws(SnapshotChange {
        moved_accounts: [account.clone()].into(),
        ..Default::default()
    });
    // Two reconciles at once (an event reaches the account and its OU): neither plans against the
    // snapshot from before the move while the other reads it.
    let (a, b) = tokio::join!(cache.get(&ports, TTL), cache.get(&ports, TTL));
    for snap in [a.unwrap(), b.unwrap()] {
        assert_eq!(
            snap.accounts[&account].parent_id.as_deref(),
            Some(ou.as_str())
        );
    }
    assert_eq!(made(&before, &calls()), ["ListParents×1"]);

    // Renamed out of band: the OU's siblings listed once.
    o.update_organizational_unit()
        .organizational_unit_id(&ou)
        .name("Apps")
        .send()
        .await
        .unwrap();
    let before = calls();
    ports.changed_in_aws(SnapshotChange {
        renamed_ous: [ou.clone()].into(),
        ..Default::default()
    });
    let snap = cache.get(&ports, TTL).await.unwrap();
    assert_eq!(snap.ous[&ou].name, "Apps");
    assert_eq!(
        made(&before, &calls()),
        ["ListOrganizationalUnitsForParent×1"]
    );

    // The operator's own move: read again after it succeeded, by itself.
    ports
        .organizations
        .move_account(&account, &ou, &root)
        .await
        .unwrap();
    let before = calls();
    let snap = cache.get(&ports, TTL).await.unwrap();
    assert_eq!(
        snap.accounts[&account].parent_id.as_deref(),
        Some(root.as_str())
    );
    assert_eq!(made(&before, &calls()), ["ListParents×1"]);

    // Its own tag write: nothing to read (tags are read by each reconcile).
    ports
        .organizations
        .tag_resource(&account, &[("team".to_string(), "a".to_string())].into())
        .await
        .unwrap();
    let before = calls();
    cache.get(&ports, TTL).await.unwrap();
    assert_eq!(made(&before, &calls()), Vec::<String>::new());

    // An OU made: it is new, so empty; its parent's OUs listed once (at 20 OUs a whole read is
    // some 50 calls paced at 4/s).
    let sandbox = ports
        .organizations
        .create_ou(&root, "Sandbox", &Default::default())
        .await
        .unwrap();
    let before = calls();
    let snap = cache.get(&ports, TTL).await.unwrap();
    assert_eq!(snap.ous[&sandbox.id].name, "Sandbox");
    assert_eq!(snap.ous[&sandbox.id].parent_id, root);
    assert_eq!(
        made(&before, &calls()),
        ["ListOrganizationalUnitsForParent×1"]
    );

    // A policy type enabled by the operator: its root read again (AWS may still be enabling it),
    // one call, not the whole tree.
    landing_zone_operator::reconcile::organization::aws::Settings::new(&ports)
        .enable_policy_type(&root, "TAG_POLICY")
        .await
        .unwrap();
    let before = calls();
    let snap = cache.get(&ports, TTL).await.unwrap();
    assert!(
        snap.root.policy_types.contains_key("TAG_POLICY"),
        "{:?}",
        snap.root
    );
    assert_eq!(made(&before, &calls()), ["ListRoots×1"]);

    // An OU deleted: what was under it is the snapshot's to learn, so the whole Organization.
    ports.organizations.delete_ou(&sandbox.id).await.unwrap();
    let before = calls();
    let snap = cache.get(&ports, TTL).await.unwrap();
    assert!(!snap.ous.contains_key(&sandbox.id));
    assert!(
        made(&before, &calls())
            .iter()
            .any(|c| c.starts_with("ListAccountsForParent")),
        "{:?}",
        made(&before, &calls())
    );

    // Past the TTL, a move nobody reported: the reconcile that notices goes on with the aging
    // snapshot, and the read in the background brings the move in.
    emu.move_directly(&account, &root, &ou).await;
    let aging = cache.get(&ports, Duration::ZERO).await.unwrap();
    assert_eq!(
        aging.accounts[&account].parent_id.as_deref(),
        Some(root.as_str()),
        "the aging snapshot, not a read waited for"
    );
    eventually(Duration::from_secs(20), "the background read", || async {
        let snap = cache.get(&ports, TTL).await.unwrap();
        (snap.accounts[&account].parent_id.as_deref() == Some(ou.as_str())).then_some(())
    })
    .await;
}

/// The messages waiting in a queue (received, so hidden from others for the visibility timeout).
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages()
        .to_vec()
}

/// EventBridge asks the queue's policy before it delivers (the realism layer judges it as AWS
/// does): a queue policy narrowed by hand to another rule refuses the pipeline's events, and
/// each lands in the dead-letter queue the rule's target names, with AWS's attributes saying
/// which rule and why, instead of being lost. The next reconcile puts the policy back, and
/// events reach the queue again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_queue_refuses_lands_in_the_dead_letter_queue() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), with_pipeline()).unwrap();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let conf = emu.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let events = aws_sdk_eventbridge::Client::new(&conf);
    let url = |name: &'static str| {
        let sqs = sqs.clone();
        async move {
            let out = sqs.get_queue_url().queue_name(name).send().await.unwrap();
            out.queue_url().unwrap().to_string()
        }
    };
    let (queue, dlq) = (url("lzo-events").await, url("lzo-events-dlq").await);
    let rule_arn = "arn:aws:events:us-east-1:123456789012:rule/lzo-events";

    // In place, the event reaches the queue.
    landing_zone_tests::publish_organizations_call(
        &events,
        "TagResource",
        json!({"resourceId": "r-1"}),
        PERSON,
    )
    .await;
    assert_eq!(
        receive(&sqs, &queue).await.len(),
        1,
        "delivered while the policy admits the rule"
    );

    let narrowed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:us-east-1:123456789012:lzo-events",
        "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/someone-elses"}}}]});
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            narrowed.to_string(),
        )
        .send()
        .await
        .unwrap();
    landing_zone_tests::publish_organizations_call(
        &events,
        "MoveAccount",
        json!({"accountId": "111111111111"}),
        PERSON,
    )
    .await;
    assert!(
        receive(&sqs, &queue).await.is_empty(),
        "the queue refused it"
    );
    let dead = receive(&sqs, &dlq).await;
    assert_eq!(
        dead.len(),
        1,
        "{:?}",
        emu.wire.as_ref().unwrap().event_deliveries()
    );
    let body: Value = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(
        body["detail"]["eventName"], "MoveAccount",
        "the event itself, as EventBridge built it"
    );
    assert_eq!(body["detail-type"], "AWS API Call via CloudTrail");
    let attribute = |k: &str| {
        dead[0]
            .message_attributes()
            .and_then(|a| a.get(k))
            .and_then(|v| v.string_value())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(attribute("RULE_ARN"), rule_arn);
    assert_eq!(
        attribute("TARGET_ARN"),
        "arn:aws:sqs:us-east-1:123456789012:lzo-events"
    );
    assert_eq!(attribute("ERROR_CODE"), "NO_PERMISSIONS");

    // The reconcile reports the policy as drift and puts it back; events flow again.
    let fixed = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        organization_report(&fixed),
        (1, vec!["changeEvents.queue.Policy".to_string()])
    );
    landing_zone_tests::publish_organizations_call(
        &events,
        "TagResource",
        json!({"resourceId": "r-2"}),
        PERSON,
    )
    .await;
    assert_eq!(receive(&sqs, &queue).await.len(), 1, "delivered again");
}

/// The trail's alarms live in the operator's region (us-east-1 here) and the pipeline in another
/// (eu-west-1): CloudWatch sends an alarm's state change to its own region's default bus only,
/// so the Organization keeps a rule there that forwards it, with a role EventBridge assumes, to
/// the pipeline's bus, whose alarm-state rule hands it to the queue. The realism layer judges
/// each hop as AWS does (the role's trust and policy, then the queue's policy): a trust someone
/// narrowed with a condition EventBridge does not meet loses the event, and the next reconcile
/// puts the trust back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_in_another_region_than_the_pipelines_reaches_the_operator() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lz.yaml"),
        "apiVersion: landingzone.dev/v1alpha1
kind: Organization
metadata: {name: organization}
spec:
  trustedServices: [cloudtrail.amazonaws.com]
  changeEvents: {queueName: lzo-events, region: eu-west-1}
---
apiVersion: landingzone.dev/v1alpha1
kind: AuditTrail
metadata: {name: org-trail}
spec:
  trailName: org-trail
  s3: {bucketName: forwarded-audit-logs, create: true}
  cloudWatchLogs: {}
  alarms:
    topic: {name: forwarded-alarms}
    cis: [RootUsage]
",
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let actions = &landing_zone_tests::report(&first, "Organization", "organization")
        .result
        .as_ref()
        .unwrap()
        .actions;
    for made in [
        "create the role EventBridge forwards alarm state changes with",
        "put the alarm-state rule in us-east-1 (forwards to the pipeline's region)",
        "point the alarm-state rule in us-east-1 at the pipeline's event bus",
    ] {
        assert!(actions.iter().any(|a| a == made), "{made}: {actions:?}");
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let st = &doc["resources"]["Organization/organization"]["status"]["changeEvents"];
    assert_eq!(st["forwardedFrom"], json!(["us-east-1"]));
    let queue_url = st["queueUrl"].as_str().expect("queueUrl").to_string();
    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        organization_report(&second),
        (0, vec![]),
        "kept: nothing to write"
    );

    let conf = emu.sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&conf); // us-east-1: the alarm's region
    let alarm_changed = || async {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("aws.cloudwatch")
            .detail_type("CloudWatch Alarm State Change")
            .detail(
                json!({"alarmName": "org-trail-cis-4.3-root-usage",
                    "state": {"value": "ALARM"}, "previousState": {"value": "OK"}})
                .to_string(),
            )
            .build();
        let out = events.put_events().entries(entry).send().await.unwrap();
        assert_eq!(out.failed_entry_count(), 0);
    };
    let resources = applied_resources(dir.path(), &state);
    let consumer = Consumer::new(
        &emu.ports().await,
        &queue_url,
        "eu-west-1",
        Identity::default(),
    );
    let consumed = || async {
        let batch = consumer
            .poll(Duration::from_secs(1), || resources.clone())
            .await
            .unwrap();
        batch
            .keys
            .into_iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
    };
    alarm_changed().await;
    assert_eq!(
        consumed().await,
        ["AuditTrail/org-trail"],
        "{:?}",
        emu.wire.as_ref().unwrap().event_deliveries()
    );

    // The trust pointed at someone else's rule: the forward is refused and, with no dead-letter
    // queue for it, lost; the reconcile puts the trust back.
    let narrowed = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/someone-elses"}}}]});
    aws_sdk_iam::Client::new(&conf)
        .update_assume_role_policy()
        .role_name("lzo-events-fwd")
        .policy_document(narrowed.to_string())
        .send()
        .await
        .unwrap();
    alarm_changed().await;
    assert!(consumed().await.is_empty(), "the forward was refused");
    let deliveries = emu.wire.as_ref().unwrap().event_deliveries();
    assert!(
        deliveries
            .last()
            .is_some_and(|d| d.contains("cannot assume") && d.contains("lost")),
        "{deliveries:?}"
    );
    let fixed = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        organization_report(&fixed),
        (1, vec!["changeEvents.forwardingRole.trust".to_string()])
    );
    alarm_changed().await;
    assert_eq!(
        consumed().await,
        ["AuditTrail/org-trail"],
        "forwarded again"
    );
}
