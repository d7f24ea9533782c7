//! The crash-safe CreateAccount flow. The emulator's CreateAccount finishes at once and never says
//! EMAIL_ALREADY_EXISTS, so these tests put the test double of the port (`Double`) in front of it.

use landing_zone_operator::aws::AwsPorts;
use landing_zone_operator::aws::Organizations;
use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::double::Double;
use landing_zone_tests::{Emulator, report, run_dir};
use std::sync::atomic::Ordering;

const ACCOUNT: &str = "apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: payments-prod}
spec:
  accountName: payments-prod
  email: aws-payments-prod@example.com
  tags: {stage: prod}
";

fn dir_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("account.yaml"), yaml).unwrap();
    dir
}

async fn with_double(emu: &Emulator) -> (AwsPorts, std::sync::Arc<Double>) {
    let ports = emu.ports().await;
    let double = Double::new(ports.organizations.clone());
    (
        AwsPorts {
            organizations: double.clone(),
            ..ports
        },
        double,
    )
}

async fn accounts_with_email(emu: &Emulator, email: &str) -> usize {
    let out = emu.org_client().list_accounts().send().await.unwrap();
    out.accounts()
        .iter()
        .filter(|a| a.email() == Some(email))
        .count()
}

#[tokio::test]
async fn asynchronous_create_is_polled_to_completion_without_a_second_create() {
    // Emulator gap: CreateAccount is SUCCEEDED at once there; real AWS answers IN_PROGRESS.
    let emu = Emulator::start().await;
    let (ports, double) = with_double(&emu).await;
    double.faults.async_create_polls.store(3, Ordering::SeqCst);
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let run = run_dir(ports, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let r = report(&run, "AwsAccount", "payments-prod");
    assert!(
        matches!(r.result.as_ref().unwrap().ready, Readiness::Ready { .. }),
        "{:?}",
        r.result
    );
    assert_eq!(
        double.creates.lock().unwrap().len(),
        1,
        "polled, never created twice"
    );
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1
    );
}

#[tokio::test]
async fn a_lost_create_request_in_flight_is_found_by_name_after_a_crash() {
    // The process dies right after CreateAccount returned IN_PROGRESS, before the request id is saved
    // (simulated: the state file is thrown away). The next run must follow that request, not create.
    let emu = Emulator::start().await;
    let (ports, double) = with_double(&emu).await;
    double.faults.async_create_polls.store(2, Ordering::SeqCst);
    let dir = dir_with(ACCOUNT);
    let request = double
        .create_account(&landing_zone_operator::aws::organizations::NewAccount {
            name: "payments-prod".into(),
            email: "aws-payments-prod@example.com".into(),
            role_name: "OrganizationAccountAccessRole".into(),
            iam_user_access_to_billing: None,
            tags: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(
        request.state,
        landing_zone_operator::aws::organizations::CreateState::InProgress
    );
    let state = dir.path().join("fresh-state.json");
    let run = run_dir(ports, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert_eq!(
        double.creates.lock().unwrap().len(),
        1,
        "the in-flight request was followed"
    );
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        doc["resources"]["AwsAccount/payments-prod"]["status"]["createRequestId"],
        request.request_id
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_by_email_on_the_next_run() {
    // CreateAccount reached AWS and created the account, but the answer never arrived (crash or
    // network): the first run fails, the second finds the account by its email. One account.
    let emu = Emulator::start().await;
    let (ports, double) = with_double(&emu).await;
    double
        .faults
        .lose_create_response
        .store(true, Ordering::SeqCst);
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let first = run_dir(ports, dir.path(), &state, true, false).await;
    assert!(first.failed());
    assert_eq!(
        report(&first, "AwsAccount", "payments-prod")
            .result
            .as_ref()
            .unwrap_err()
            .reason(),
        "AwsUnreachable"
    );

    let (ports, double2) = with_double(&emu).await;
    let second = run_dir(ports, dir.path(), &state, true, false).await;
    assert!(!second.failed(), "{:?}", second.reports);
    let r = report(&second, "AwsAccount", "payments-prod")
        .result
        .as_ref()
        .unwrap();
    assert!(
        r.actions[0].contains("adopt existing account"),
        "{:?}",
        r.actions
    );
    assert!(
        double2.creates.lock().unwrap().is_empty(),
        "no second CreateAccount"
    );
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1
    );
}

#[tokio::test]
async fn email_already_exists_is_adopted() {
    // Emulator gap: it accepts a duplicate email. The double reports EMAIL_ALREADY_EXISTS after the
    // account appeared behind the operator's back (after its snapshot).
    let emu = Emulator::start().await;
    let (ports, double) = with_double(&emu).await;
    double
        .faults
        .email_already_exists
        .store(true, Ordering::SeqCst);
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let run = run_dir(ports, dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let r = report(&run, "AwsAccount", "payments-prod");
    assert!(r.id.is_some());
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1
    );
}

#[tokio::test]
async fn access_denied_is_terminal_and_says_so_while_the_rest_is_applied() {
    // Emulator gap: it never denies access.
    let emu = Emulator::start().await;
    let (ports, double) = with_double(&emu).await;
    double.faults.denied.lock().unwrap().push("CreateAccount");
    let dir = dir_with(&format!(
        "{ACCOUNT}---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: security}}\nspec: {{name: Security}}\n"
    ));
    let state = dir.path().join("state.json");
    let run = run_dir(ports, dir.path(), &state, true, false).await;
    let err = report(&run, "AwsAccount", "payments-prod")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "AccessDenied");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("CreateAccount"), "{err}");
    assert!(
        report(&run, "OrganizationalUnit", "security")
            .result
            .is_ok()
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let conds = doc["resources"]["AwsAccount/payments-prod"]["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    let synced = conds.iter().find(|c| c["type"] == "Synced").unwrap();
    assert_eq!(
        (synced["status"].as_str(), synced["reason"].as_str()),
        (Some("False"), Some("AccessDenied"))
    );
}

#[tokio::test]
async fn at_most_five_create_requests_are_in_flight() {
    // Emulator gap: CreateAccount finishes at once there; the double keeps requests IN_PROGRESS.
    let emu = Emulator::start().await;
    let (ports, double) = with_double(&emu).await;
    double
        .faults
        .async_create_polls
        .store(1000, Ordering::SeqCst);
    let yaml: Vec<String> = (1..=6)
        .map(|i| format!("apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: a{i}}}\nspec: {{accountName: a{i}, email: aws-a{i}@example.com}}\n"))
        .collect();
    let dir = dir_with(&yaml.join("---\n"));
    let state = dir.path().join("state.json");
    let (args, apply) =
        landing_zone_tests::cli_args(dir.path(), &state, false, std::time::Duration::ZERO);
    let run = landing_zone_operator::cli::execute(&args, Some(&apply), ports)
        .await
        .unwrap();
    assert_eq!(double.creates.lock().unwrap().len(), 5, "the sixth waits");
    let queued = report(&run, "AwsAccount", "a6")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(queued.reason(), "Queued");
    assert!(queued.is_retryable());
}
