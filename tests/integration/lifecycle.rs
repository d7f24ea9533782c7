//! Deletion policies through `apply --prune`: Retain, Delete (only when empty), Close.

use landing_zone_tests::proxy::{
    AwsProxy, CloseAccountModel, CreateAccountModel, Fault, Faults, Realism,
};
use landing_zone_tests::{Emulator, apply_waiting, assert_readable, report, run_dir};
use std::time::Duration;

const OU: &str = "apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: sandbox}
spec:
  name: Sandbox
  deletionPolicy: DELETION
";

fn account(policy: &str, ou: bool) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: sandbox-1}}\nspec:\n  accountName: sandbox-1\n  email: aws-sandbox-1@example.com\n  deletionPolicy: {policy}\n{}",
        if ou {
            "  organizationalUnitRef: {name: sandbox}\n"
        } else {
            ""
        }
    )
}

async fn ou_exists(emu: &Emulator, id: &str) -> bool {
    emu.org_client()
        .describe_organizational_unit()
        .organizational_unit_id(id)
        .send()
        .await
        .is_ok()
}

async fn account_state(emu: &Emulator, id: &str) -> String {
    let out = emu
        .org_client()
        .describe_account()
        .account_id(id)
        .send()
        .await
        .unwrap();
    out.account().unwrap().state().unwrap().as_str().to_string()
}

#[tokio::test]
async fn retain_leaves_aws_untouched_and_forgets_the_resource() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let file = dir.path().join("lz.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}",
            OU.replace("DELETION", "Retain"),
            account("Retain", true)
        ),
    )
    .unwrap();
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let ou = report(&run, "OrganizationalUnit", "sandbox")
        .id
        .clone()
        .unwrap();
    let acct = report(&run, "AwsAccount", "sandbox-1").id.clone().unwrap();

    std::fs::remove_file(&file).unwrap();
    let without_prune = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(
        without_prune.notes.iter().any(|n| n.contains("--prune")),
        "{:?}",
        without_prune.notes
    );
    let pruned = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert_eq!(pruned.metrics.aws_calls_of_kind("write"), 0);
    assert_eq!(pruned.deletions.len(), 2);
    assert!(ou_exists(&emu, &ou).await);
    assert_eq!(account_state(&emu, &acct).await, "ACTIVE");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(doc["resources"].as_object().unwrap().len(), 0, "forgotten");
}

#[tokio::test]
async fn delete_removes_an_empty_ou_and_refuses_a_non_empty_one() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let ou_file = dir.path().join("ou.yaml");
    let acct_file = dir.path().join("account.yaml");
    std::fs::write(&ou_file, OU.replace("DELETION", "Delete")).unwrap();
    std::fs::write(&acct_file, account("Retain", true)).unwrap();
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let ou = report(&run, "OrganizationalUnit", "sandbox")
        .id
        .clone()
        .unwrap();

    // The OU still holds the account: refused before AWS is asked (the emulator would delete it).
    std::fs::remove_file(&ou_file).unwrap();
    let refused = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    let err = report(&refused, "OrganizationalUnit", "sandbox")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "OrganizationalUnitNotEmpty");
    assert!(err.to_string().contains("1 account(s)"), "{err}");
    assert!(refused.failed());
    assert!(ou_exists(&emu, &ou).await);

    // The account leaves the OU (by hand) and its resource goes (Retain): now the OU looks empty.
    let o = emu.org_client();
    let root = o.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let acct = report(&run, "AwsAccount", "sandbox-1").id.clone().unwrap();
    emu.move_directly(&acct, &ou, &root).await;
    std::fs::remove_file(&acct_file).unwrap();

    // Real AWS still refuses when something landed in the OU after our snapshot; the emulator
    // never refuses, so the realism layer answers as AWS would.
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.set(Faults {
        inject: Some((Fault::NotEmpty, 1.0)),
        only: vec!["DeleteOrganizationalUnit".into()],
        down: false,
        limit: None,
    });
    let racing = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        dir.path(),
        &state,
        true,
        true,
    )
    .await;
    assert_readable(&racing);
    let err = report(&racing, "OrganizationalUnit", "sandbox")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "OrganizationalUnitNotEmpty", "{err}");
    assert!(err.to_string().contains("AWS refused"), "{err}");
    assert!(ou_exists(&emu, &ou).await);

    let deleted = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert!(!deleted.failed(), "{:?}", deleted.deletions);
    assert!(!ou_exists(&emu, &ou).await);
    assert_eq!(
        account_state(&emu, &acct).await,
        "ACTIVE",
        "the Retained account was never touched"
    );
}

#[tokio::test]
async fn close_closes_the_account_and_reports_the_quota_plainly() {
    // Emulator gaps: no closure quota, no PENDING_CLOSURE; the realism layer has both.
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        close_account: Some(CloseAccountModel {
            quota: 0,
            ..Default::default()
        }),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let file = dir.path().join("account.yaml");
    std::fs::write(&file, account("Close", false)).unwrap();
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let acct = report(&run, "AwsAccount", "sandbox-1").id.clone().unwrap();
    std::fs::remove_file(&file).unwrap();

    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let quota = run_dir(ports, dir.path(), &state, true, true).await;
    assert_readable(&quota);
    let err = report(&quota, "AwsAccount", "sandbox-1")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "CloseAccountRefused", "{err}");
    assert!(
        err.to_string().contains("CLOSE_ACCOUNT_QUOTA_EXCEEDED"),
        "{err}"
    );
    assert_eq!(account_state(&emu, &acct).await, "ACTIVE");

    proxy.realism(Realism {
        close_account: Some(CloseAccountModel::default()),
        ..Default::default()
    });
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let closed = run_dir(ports, dir.path(), &state, true, true).await;
    assert!(!closed.failed(), "{:?}", closed.deletions);
    // AWS reports PENDING_CLOSURE first; the emulator behind it has SUSPENDED.
    assert_eq!(account_state(&emu, &acct).await, "SUSPENDED");
}

#[tokio::test]
async fn at_most_three_accounts_close_at_once_and_the_limit_is_not_parked() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let yaml: Vec<String> = (1..=4)
        .map(|i| account("Close", false).replace("sandbox-1", &format!("sandbox-{i}")))
        .collect();
    let file = dir.path().join("accounts.yaml");
    std::fs::write(&file, yaml.join("---\n")).unwrap();
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    std::fs::remove_file(&file).unwrap();
    proxy.realism(Realism {
        close_account: Some(CloseAccountModel {
            pending: Duration::from_secs(60),
            ..Default::default()
        }),
        ..Default::default()
    });
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let pruned = run_dir(ports, dir.path(), &state, true, true).await;
    assert_readable(&pruned);
    let queued: Vec<_> = pruned
        .deletions
        .iter()
        .filter_map(|d| d.result.as_ref().err())
        .collect();
    assert_eq!(queued.len(), 1, "{:?}", pruned.deletions);
    assert_eq!(queued[0].reason(), "Queued", "{}", queued[0]);
    assert!(
        queued[0].is_retryable(),
        "retried within minutes, not parked"
    );
    assert_eq!(
        proxy.count("CloseAccount"),
        3,
        "never asked AWS for a fourth"
    );

    // AWS's own refusal of a fourth (another actor closing) reads the same way.
    let refused = landing_zone_operator::reconcile::aws_account::close_refused_for_test(
        "111111111111",
        landing_zone_operator::aws::AwsError::new(
            "organizations",
            "CloseAccount",
            "ConstraintViolationException",
            "CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED: You attempted to exceed the number of accounts that you can close at a time.",
        ),
    );
    assert_eq!(refused.reason(), "Queued");
}

#[tokio::test]
async fn an_account_deleted_while_being_created_is_closed_once_it_exists() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        // In progress until the prune has met it in progress, however slow the machine.
        create_account: Some(CreateAccountModel {
            duration: Duration::from_secs(3600),
            ..Default::default()
        }),
        close_account: Some(CloseAccountModel::default()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let file = dir.path().join("account.yaml");
    std::fs::write(&file, account("Close", false)).unwrap();
    // One pass: CreateAccount sent, IN_PROGRESS.
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::ZERO).await;
    assert!(run.reports[0].id.is_none(), "{:?}", run.reports);
    assert_eq!(proxy.create_requests().len(), 1);
    std::fs::remove_file(&file).unwrap();
    let mut reasons = Vec::new();
    for _ in 0..40 {
        let ports = emu.ports_via(&proxy.endpoint, 2).await;
        let pruned = run_dir(ports, dir.path(), &state, true, true).await;
        assert_readable(&pruned);
        match &pruned.deletions[0].result {
            Ok(_) => {
                reasons.push("Closed".to_string());
                break;
            }
            Err(e) => reasons.push(e.reason().to_string()),
        }
        if reasons.len() == 1 {
            proxy.update_realism(|r| {
                r.create_account.as_mut().unwrap().duration = Duration::from_secs(1)
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        reasons.first().map(String::as_str),
        Some("Queued"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.last().map(String::as_str),
        Some("Closed"),
        "{reasons:?}"
    );
    let id = proxy.create_requests()[0].account_id.clone().unwrap();
    assert_eq!(
        account_state(&emu, &id).await,
        "SUSPENDED",
        "nothing leaked"
    );
    assert_eq!(proxy.create_requests().len(), 1);
}
