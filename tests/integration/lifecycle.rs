//! Deletion policies through `apply --prune`: Retain, Delete (only when empty), Close.

use landing_zone_operator::aws::AwsPorts;
use landing_zone_tests::double::Double;
use landing_zone_tests::{Emulator, report, run_dir};
use std::sync::atomic::Ordering;

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
    o.move_account()
        .account_id(&acct)
        .source_parent_id(&ou)
        .destination_parent_id(&root)
        .send()
        .await
        .unwrap();
    std::fs::remove_file(&acct_file).unwrap();

    // Real AWS still refuses when something landed in the OU after our snapshot; the emulator
    // never refuses, so the double answers as AWS would.
    let ports = emu.ports().await;
    let double = Double::new(ports.organizations.clone());
    double.faults.ou_not_empty.store(true, Ordering::SeqCst);
    let ports_double = AwsPorts {
        organizations: double.clone(),
        ..ports
    };
    let racing = run_dir(ports_double, dir.path(), &state, true, true).await;
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
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let file = dir.path().join("account.yaml");
    std::fs::write(&file, account("Close", false)).unwrap();
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let acct = report(&run, "AwsAccount", "sandbox-1").id.clone().unwrap();
    std::fs::remove_file(&file).unwrap();

    // Emulator gap: no closure quota. The double answers as AWS does when it is used up.
    let ports = emu.ports().await;
    let double = Double::new(ports.organizations.clone());
    double
        .faults
        .close_quota_exceeded
        .store(true, Ordering::SeqCst);
    let quota = run_dir(
        AwsPorts {
            organizations: double.clone(),
            ..ports
        },
        dir.path(),
        &state,
        true,
        true,
    )
    .await;
    let err = report(&quota, "AwsAccount", "sandbox-1")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "CloseAccountRefused");
    assert!(
        err.to_string().contains("exceeded close account quota"),
        "{err}"
    );
    assert_eq!(account_state(&emu, &acct).await, "ACTIVE");

    let closed = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert!(!closed.failed(), "{:?}", closed.deletions);
    assert_eq!(account_state(&emu, &acct).await, "SUSPENDED");
}
