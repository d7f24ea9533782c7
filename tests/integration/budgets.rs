//! Budget: created in the emulator; diffs (limit, notifications, subscribers), spend and refusals
//! through the realism layer, which answers AWS Budgets statefully at the wire: the emulator has no
//! UpdateBudget, UpdateNotification or subscriber calls and always reports zero spend.

use landing_zone_tests::proxy::{AwsProxy, Realism};
use landing_zone_tests::{Emulator, assert_readable, report, run_dir};

const BUDGET: &str = "apiVersion: landingzone.dev/v1alpha1
kind: Budget
metadata: {name: org}
spec:
  budgetName: org-monthly
  limit: {amount: \"LIMIT\"}
  deletionPolicy: Delete
  notifications:
  - {notificationType: ACTUAL, threshold: 50, subscribers: {emails: [finops@example.com]}}
  - {notificationType: ACTUAL, threshold: 80, subscribers: {emails: [finops@example.com]}}
  - {notificationType: FORECASTED, threshold: 100, subscribers: {emails: [finops@example.com]}}
";

#[tokio::test]
async fn budgets_are_created_in_the_emulator_with_their_scope_and_notifications() {
    let emu = Emulator::with_managed_policies().await;
    let dir = landing_zone_tests::examples_copy();
    let state = dir.path().join("state.json");
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let prod = report(&run, "AwsAccount", "payments-prod")
        .id
        .clone()
        .unwrap();
    let conf = aws_sdk_budgets::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&emu.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    let client = aws_sdk_budgets::Client::from_conf(conf);
    let b = client
        .describe_budget()
        .account_id("123456789012")
        .budget_name("payments-prod-monthly")
        .show_filter_expression(true)
        .send()
        .await
        .unwrap();
    let dims = b
        .budget()
        .unwrap()
        .filter_expression()
        .unwrap()
        .dimensions()
        .unwrap();
    assert_eq!(
        dims.values(),
        [prod.as_str()],
        "scoped to the payments-prod account"
    );
    let n = client
        .describe_notifications_for_budget()
        .account_id("123456789012")
        .budget_name("organization-monthly")
        .send()
        .await
        .unwrap();
    assert_eq!(
        n.notifications().len(),
        4,
        "50/80/90 % actual and 100 % forecasted"
    );
}

/// Budgets through the realism layer, which answers the calls the emulator lacks (UpdateBudget,
/// UpdateNotification, the subscriber calls) and reports spend, statefully at the wire.
async fn budgets_at_the_wire(spend: &[(&str, (f64, f64))]) -> (Emulator, AwsProxy) {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        budgets: Some(spend.iter().map(|(n, s)| (n.to_string(), *s)).collect()),
        ..Default::default()
    });
    (emu, proxy)
}

async fn wire_run(
    emu: &Emulator,
    proxy: &AwsProxy,
    dir: &std::path::Path,
    prune: bool,
) -> landing_zone_operator::cli::RunResult {
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let run = run_dir(ports, dir, &dir.join("state.json"), true, prune).await;
    assert_readable(&run);
    run
}

#[tokio::test]
async fn notifications_and_subscribers_are_diffed_one_by_one_never_recreated() {
    let (emu, proxy) = budgets_at_the_wire(&[("org-monthly", (25.0, 80.0))]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budget.yaml");
    std::fs::write(&file, BUDGET.replace("LIMIT", "1000")).unwrap();
    let first = wire_run(&emu, &proxy, dir.path(), false).await;
    assert!(!first.failed(), "{:?}", first.reports);

    // Spec changes: a higher limit, the 80 % threshold moved to 90 %, a subscriber swapped, the forecast alert removed.
    std::fs::write(
        &file,
        BUDGET
            .replace("LIMIT", "1500")
            .replace("threshold: 80, subscribers: {emails: [finops@example.com]}", "threshold: 90, subscribers: {emails: [team@example.com]}")
            .replace("  - {notificationType: FORECASTED, threshold: 100, subscribers: {emails: [finops@example.com]}}\n", ""),
    )
    .unwrap();
    proxy.clear_budget_writes();
    let second = wire_run(&emu, &proxy, dir.path(), false).await;
    assert!(!second.failed(), "{:?}", second.reports);
    let calls = proxy.budget_writes();
    assert_eq!(
        calls,
        vec![
            "UpdateBudget org-monthly",
            "UpdateNotification org-monthly",
            "CreateSubscriber org-monthly",
            "DeleteSubscriber org-monthly",
            "DeleteNotification org-monthly"
        ],
        "diffed one by one, never deleted and recreated"
    );

    // Spend is read from AWS each pass (the emulator always says 0; the layer says 25 of 1500).
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    let status = &doc["resources"]["Budget/org"]["status"];
    assert_eq!(
        (
            status["actualSpend"].as_str(),
            status["percentUsed"].as_str()
        ),
        (Some("25.0 USD"), Some("1.7"))
    );
    // Out of band: someone removes a subscriber. Reported and put back.
    proxy.edit_budget("org-monthly", |notifications| notifications[0].1.clear());
    proxy.clear_budget_writes();
    let third = wire_run(&emu, &proxy, dir.path(), false).await;
    let p = report(&third, "Budget", "org").result.as_ref().unwrap();
    assert_eq!(p.drift.len(), 1, "{:?}", p.drift);
    assert!(p.drift[0].field.contains("subscribers"));
    assert_eq!(proxy.budget_writes(), vec!["CreateSubscriber org-monthly"]);

    // In sync: no writes.
    proxy.clear_budget_writes();
    wire_run(&emu, &proxy, dir.path(), false).await;
    assert!(
        proxy.budget_writes().is_empty(),
        "{:?}",
        proxy.budget_writes()
    );

    // Delete policy: the budget goes when the file does.
    std::fs::remove_file(&file).unwrap();
    let pruned = wire_run(&emu, &proxy, dir.path(), true).await;
    assert!(!pruned.failed());
    assert!(
        proxy.budget_names().is_empty(),
        "{:?} {:?}",
        pruned.deletions,
        pruned.notes
    );
}

/// A topic whose access policy does not admit Budgets (SNS's default policy, for the account's
/// own principals): the realism layer evaluates it with the context Budgets sends, as AWS does,
/// and refuses; the condition says what to change. With the statement AWS documents, accepted.
#[tokio::test]
async fn a_refused_sns_topic_is_a_clear_not_ready_condition() {
    let (emu, proxy) = budgets_at_the_wire(&[]).await;
    let sns = aws_sdk_sns::Client::new(&emu.sdk_config_via(&emu.endpoint, 2).await);
    let topic = sns
        .create_topic()
        .name("locked")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("budget.yaml"),
        BUDGET.replace("LIMIT", "100").replace("emails: [finops@example.com]}}\n  - {notificationType: ACTUAL, threshold: 80", &format!("emails: [finops@example.com], snsTopicArn: {topic}}}}}\n  - {{notificationType: ACTUAL, threshold: 80")),
    )
    .unwrap();
    let run = wire_run(&emu, &proxy, dir.path(), false).await;
    let err = report(&run, "Budget", "org").result.as_ref().unwrap_err();
    assert_eq!(err.reason(), "NotificationRefused");
    assert!(err.to_string().contains("budgets.amazonaws.com"), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    let ready = doc["resources"]["Budget/org"]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("NotificationRefused"))
    );

    // The statement AWS's page gives the topic's owner to add.
    let account = topic.split(':').nth(4).unwrap();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "AWSBudgetsSNSPublishingPermissions", "Effect": "Allow",
        "Principal": {"Service": "budgets.amazonaws.com"}, "Action": "SNS:Publish", "Resource": topic,
        "Condition": {"StringEquals": {"aws:SourceAccount": account},
                      "ArnLike": {"aws:SourceArn": format!("arn:aws:budgets::{account}:*")}}}]});
    sns.set_topic_attributes()
        .topic_arn(&topic)
        .attribute_name("Policy")
        .attribute_value(policy.to_string())
        .send()
        .await
        .unwrap();
    let run = wire_run(&emu, &proxy, dir.path(), false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert!(proxy.budget_names().contains(&"org-monthly".to_string()));
}
