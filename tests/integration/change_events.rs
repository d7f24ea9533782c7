//! Change events through the real services' emulation: an EventBridge rule on the default bus
//! delivers "AWS API Call via CloudTrail" events to an SQS queue, and the consumer maps each to the
//! resources it touched. The emulator emits no CloudTrail events of its own, so the test makes the
//! change out of band and publishes the event AWS would send (PutEvents, in AWS's recorded shape).

use landing_zone_operator::events::{Consumer, Identity, Skip};
use landing_zone_operator::reconcile::Resource;
use landing_zone_operator::source::dir::load_dir;
use landing_zone_operator::source::state::StateFile;
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
    let mut resources: Vec<Resource> = load_dir(dir.path())
        .resources
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    StateFile::open(&state)
        .unwrap()
        .load_statuses(&mut resources);
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
    let orgs = emu.org_client();
    let root = orgs.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let ou = orgs
        .list_parents()
        .child_id(&account)
        .send()
        .await
        .unwrap()
        .parents()[0]
        .id()
        .unwrap()
        .to_string();
    orgs.move_account()
        .account_id(&account)
        .source_parent_id(&ou)
        .destination_parent_id(&root)
        .send()
        .await
        .unwrap();
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
