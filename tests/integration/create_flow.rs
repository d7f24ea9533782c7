//! The crash-safe CreateAccount flow against AWS as it behaves: through the realism layer
//! (`proxy::Realism`), CreateAccount is IN_PROGRESS for a while, the new account is listed only
//! some seconds after SUCCEEDED, its access role is assumable later still, the in-flight limit and
//! the failure reasons come back in AWS's wire shapes, and the operator's real SDK clients read them.

use landing_zone_operator::cli::RunResult;
use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::operator::{PATIENCE, wait_for};
use landing_zone_tests::proxy::{AwsProxy, CreateAccountModel, Fault, Faults, Realism};
use landing_zone_tests::{Emulator, apply_polling, apply_waiting, assert_readable, report};
use std::time::{Duration, Instant};

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

fn accounts(n: usize, extra: &str) -> String {
    (1..=n)
        .map(|i| format!("apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: a{i}}}\nspec: {{accountName: a{i}, email: aws-a{i}@example.com{extra}}}\n"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// An emulator with CreateAccount as AWS runs it, `secs` seconds in progress.
async fn realistic(secs: u64) -> (Emulator, AwsProxy) {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        latency: Duration::from_millis(10),
        create_account: Some(CreateAccountModel {
            duration: Duration::from_secs(secs),
            ..Default::default()
        }),
        ..Default::default()
    });
    (emu, proxy)
}

async fn accounts_with_email(emu: &Emulator, email: &str) -> usize {
    let out = emu.org_client().list_accounts().send().await.unwrap();
    out.accounts()
        .iter()
        .filter(|a| a.email().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .count()
}

fn reason(run: &RunResult, name: &str) -> String {
    let r = report(run, "AwsAccount", name);
    match &r.result {
        Ok(p) => match &p.ready {
            Readiness::Ready { reason, .. } | Readiness::NotReady { reason, .. } => {
                reason.to_string()
            }
        },
        Err(e) => e.reason().to_string(),
    }
}

fn ready(run: &RunResult, name: &str) -> bool {
    matches!(
        report(run, "AwsAccount", name).result,
        Ok(ref p) if matches!(p.ready, Readiness::Ready { .. })
    )
}

#[tokio::test]
async fn an_asynchronous_create_is_followed_to_a_usable_account_in_one_run() {
    let (emu, proxy) = realistic(2).await;
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert!(ready(&run, "payments-prod"), "{:?}", run.reports);
    assert_readable(&run);
    assert_eq!(
        proxy.create_requests().len(),
        1,
        "followed, never sent twice"
    );
    assert_eq!(proxy.count("CreateAccount"), 1);
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1
    );
}

#[tokio::test]
async fn succeeded_but_not_yet_listed_is_waited_for_never_not_in_the_organization() {
    let (emu, proxy) = realistic(1).await;
    // Not listed until a pass has seen it SUCCEEDED and unlisted, however slow the passes are.
    proxy.update_realism(|r| {
        let m = r.create_account.as_mut().unwrap();
        m.visible_after = Duration::from_secs(3600);
    });
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    // One pass at a time, as the controller's reconciles see it.
    let mut seen = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(40) * PATIENCE {
        let ports = emu.ports_via(&proxy.endpoint, 3).await;
        let run = apply_waiting(ports, dir.path(), &state, false, Duration::ZERO).await;
        assert_readable(&run);
        let r = reason(&run, "payments-prod");
        if r == "AccountNotYetVisible" {
            proxy.update_realism(|r| {
                r.create_account.as_mut().unwrap().visible_after = Duration::ZERO
            });
        }
        if seen.last() != Some(&r) {
            seen.push(r);
        }
        if ready(&run, "payments-prod") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Available"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|r| r == "AccountNotYetVisible"),
        "SUCCEEDED before listed: {seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r == "AccountNotInOrganization"),
        "{seen:?}"
    );
    assert_eq!(proxy.create_requests().len(), 1);
}

#[tokio::test]
async fn a_request_in_flight_under_its_name_is_adopted_only_by_its_email() {
    // A crash right after CreateAccount, before the request id was saved (the state file is
    // thrown away): the next run must not create a second account. The request stays in flight
    // until the run has followed it (polled it by its id), however slow the machine: with a fixed
    // duration it had finished and was listed on a busy machine, and the run adopted the account
    // by its email instead (also no second one, but not the path this test is about).
    let (emu, proxy) = realistic(3600).await;
    let request = emu
        .org_client_via(&proxy.endpoint)
        .create_account()
        .account_name("payments-prod")
        .email("aws-payments-prod@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        request
            .create_account_status()
            .unwrap()
            .state()
            .unwrap()
            .as_str(),
        "IN_PROGRESS"
    );
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("fresh-state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let finish_once_followed = async {
        wait_for(
            Duration::from_secs(60),
            "the run polling the request",
            || (proxy.count("DescribeCreateAccountStatus") > 0).then_some(()),
        )
        .await;
        proxy.update_realism(|r| r.create_account.as_mut().unwrap().duration = Duration::ZERO);
    };
    let (run, ()) = tokio::join!(
        apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)),
        finish_once_followed
    );
    assert!(!run.failed(), "{:?}", run.reports);
    assert_readable(&run);
    // It followed that request (its id is in status) and adopted its account.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let status = &doc["resources"]["AwsAccount/payments-prod"]["status"];
    assert_eq!(
        status["createRequestId"],
        request.create_account_status().unwrap().id().unwrap()
    );
    assert_eq!(
        status["accountId"].as_str(),
        proxy.create_requests()[0].account_id.as_deref()
    );
    assert_eq!(proxy.create_requests().len(), 1, "no second CreateAccount");
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1
    );
}

#[tokio::test]
async fn two_accounts_with_one_name_never_bind_to_one_account() {
    // Someone else's request for an account of the same name is in flight: this resource waits
    // for it, sees another email, and creates its own.
    let (emu, proxy) = realistic(2).await;
    emu.org_client_via(&proxy.endpoint)
        .create_account()
        .account_name("payments-prod")
        .email("someone-else@example.com")
        .send()
        .await
        .unwrap();
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let id = report(&run, "AwsAccount", "payments-prod")
        .id
        .clone()
        .unwrap();
    let mine = proxy
        .create_requests()
        .into_iter()
        .find(|r| r.email == "aws-payments-prod@example.com")
        .expect("its own request");
    assert_eq!(mine.account_id.as_deref(), Some(id.as_str()));
    assert_eq!(proxy.create_requests().len(), 2);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_by_email_on_the_next_run() {
    // CreateAccount reached AWS, but the answer never came back (every attempt): the first run
    // fails saying so. The retry of the lost request fails with EMAIL_ALREADY_EXISTS. The second
    // run starts once every request of the first has ended, so nothing is in flight: its own new
    // request is refused for the email too. With the account listed 0.5×, 1× and 5× the poll
    // interval after its request SUCCEEDED, the second run meets the refusal with the account
    // listed, or (5×) not listed yet and no request in flight, the case a loaded CI machine met:
    // it waits for the account the SUCCEEDED request made, never calling the email taken.
    let poll = Duration::from_secs(1);
    tokio::join!(
        lost_create_answer_then_next_run(Some(poll.mul_f64(0.5)), poll),
        lost_create_answer_then_next_run(Some(poll), poll),
        lost_create_answer_then_next_run(Some(poll * 5), poll),
        // However slow the machine: listed only once the second run has seen its own request
        // refused (a verdict then would be final).
        lost_create_answer_then_next_run(None, poll),
    );
}

/// `listed_after`: how long after its request SUCCEEDED AWS lists the account; `None`: only once
/// the second run has been told its own request failed.
async fn lost_create_answer_then_next_run(listed_after: Option<Duration>, poll: Duration) {
    let in_progress = Duration::from_secs(2);
    let (emu, proxy) = realistic(in_progress.as_secs()).await;
    let hold = Duration::from_secs(3600);
    proxy.update_realism(|r| {
        r.create_account.as_mut().unwrap().visible_after = listed_after.unwrap_or(hold)
    });
    proxy.set(Faults {
        inject: Some((Fault::LoseResponse, 1.0)),
        only: vec!["CreateAccount".into()],
        down: false,
        limit: None,
    });
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let first = apply_polling(ports, dir.path(), &state, poll, Duration::from_secs(60)).await;
    assert!(first.failed());
    assert_readable(&first);
    let err = report(&first, "AwsAccount", "payments-prod")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "AwsUnreachable", "{err}");
    assert!(err.to_string().contains("CreateAccount"), "{err}");

    // AWS's own clock, not this machine's speed: every request of the first run has ended.
    let lost = proxy.create_requests();
    let made = lost
        .iter()
        .find(|r| r.failure.is_none())
        .expect("the lost request made the account")
        .clone();
    let ended = lost.iter().map(|r| r.at + in_progress).max().unwrap();
    tokio::time::sleep_until(ended.into()).await;
    if let Some(after) = listed_after
        && after > poll
        && Instant::now() >= made.at + in_progress + after
    {
        // Only on a machine too busy to start a run within seconds; the `None` case covers it.
        eprintln!("note: the second run started after the account was listed ({after:?})");
    }

    proxy.set(Faults::default());
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let release = async {
        if listed_after.is_some() {
            return;
        }
        // The second run's own request, refused for the email, and the run told so.
        loop {
            let told = proxy
                .create_requests()
                .iter()
                .skip(lost.len())
                .any(|r| r.failure.is_some() && r.seen_ended_at.is_some());
            if told {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A few rounds with the account unlisted, then AWS lists it.
        tokio::time::sleep(poll * 3).await;
        proxy.update_realism(|r| r.create_account.as_mut().unwrap().visible_after = Duration::ZERO);
    };
    let (second, ()) = tokio::join!(
        apply_polling(ports, dir.path(), &state, poll, Duration::from_secs(120)),
        release
    );
    assert!(
        !second.failed(),
        "listed {listed_after:?} after: {:?}",
        second.reports
    );
    assert_readable(&second);
    assert_eq!(
        report(&second, "AwsAccount", "payments-prod").id.as_deref(),
        made.account_id.as_deref(),
        "the account the lost request made"
    );
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        1,
        "one account, however many attempts"
    );
    let requests = proxy.create_requests();
    assert_eq!(
        requests.iter().filter(|r| r.failure.is_none()).count(),
        1,
        "listed {listed_after:?} after: {requests:?}"
    );
}

#[tokio::test]
async fn failure_reasons_are_retried_when_they_pass_and_said_plainly_when_not() {
    let (emu, proxy) = realistic(1).await;
    proxy.update_realism(|r| {
        r.create_account.as_mut().unwrap().failures = vec![
            "INTERNAL_FAILURE".into(),
            "CONCURRENT_ACCOUNT_MODIFICATION".into(),
        ]
    });
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert_eq!(
        proxy.create_requests().len(),
        3,
        "two transient failures, then done"
    );

    // A limit needs a human: terminal, with AWS's reason.
    let (emu, proxy) = realistic(1).await;
    proxy.update_realism(|r| {
        r.create_account.as_mut().unwrap().failures = vec!["ACCOUNT_LIMIT_EXCEEDED".into()]
    });
    let state = dir.path().join("state2.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)).await;
    assert_readable(&run);
    let err = report(&run, "AwsAccount", "payments-prod")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "CreateAccountFailed");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("ACCOUNT_LIMIT_EXCEEDED"), "{err}");

    // An email taken outside the Organization: nothing created, the human told what to do.
    let (emu, proxy) = realistic(1).await;
    proxy.update_realism(|r| {
        r.create_account.as_mut().unwrap().failures = vec!["EMAIL_ALREADY_EXISTS".into()]
    });
    let state = dir.path().join("state3.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)).await;
    let err = report(&run, "AwsAccount", "payments-prod")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "EmailAlreadyInUse");
    assert!(err.to_string().contains("use another mailbox"), "{err}");
    assert_eq!(
        accounts_with_email(&emu, "aws-payments-prod@example.com").await,
        0
    );
}

#[tokio::test]
async fn more_new_accounts_than_aws_allows_in_flight_converge_in_one_run() {
    let (emu, proxy) = realistic(3).await;
    let dir = dir_with(&accounts(12, ""));
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(120)).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert_readable(&run);
    assert!((1..=12).all(|i| ready(&run, &format!("a{i}"))));
    // The operator kept AWS's limit itself: AWS never had to refuse a request.
    assert_eq!(proxy.count("CreateAccount"), 12, "one request per account");
    assert_eq!(proxy.create_requests().len(), 12);
}

#[tokio::test]
async fn pacing_waits_never_fail_a_call() {
    // A request waiting for its pacing slot longer than the SDK's upload-stall grace (5 s) once
    // failed with ThroughputBelowMinimum, and each retry queued further behind. Three OUs at one
    // creation per 6.7 s: the last waits 13 s, and all are created.
    let (emu, proxy) = realistic(1).await;
    let yaml = (1..=3)
        .map(|i| format!("apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: ou{i}}}\nspec: {{name: OU{i}}}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let dir = dir_with(&yaml);
    let state = dir.path().join("state.json");
    let mut limits = landing_zone_operator::aws::pacing::RateLimits::default();
    limits.set("CreateOrganizationalUnit=0.15/1").unwrap();
    let ports = landing_zone_operator::aws::AwsPorts::with_limits(
        emu.sdk_config_via(&proxy.endpoint, 3).await,
        landing_zone_operator::metrics::Metrics::new(),
        limits,
    );
    let start = Instant::now();
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::ZERO).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert!(
        start.elapsed() >= Duration::from_secs(12),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(proxy.count("CreateOrganizationalUnit"), 3, "each sent once");
}

#[tokio::test]
async fn a_new_accounts_role_is_waited_for_and_an_invited_accounts_missing_role_is_said_plainly() {
    let (emu, proxy) = realistic(1).await;
    proxy.update_realism(|r| {
        r.create_account.as_mut().unwrap().assumable_after = Duration::from_secs(4);
    });
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(60)).await;
    assert!(ready(&run, "payments-prod"), "{:?}", run.reports);

    // An invited account: no OrganizationAccountAccessRole, and it joined long ago.
    let invited = emu
        .create_account_directly("legacy", "aws-legacy@example.com")
        .await;
    proxy.update_realism(|r| {
        r.joined_long_ago.insert(invited.clone(), "INVITED".into());
        r.no_access_role.insert(invited.clone());
    });
    let legacy = "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: legacy}\nspec: {accountName: legacy, email: aws-legacy@example.com}\n";
    let dir = dir_with(legacy);
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(30)).await;
    assert_readable(&run);
    let err = report(&run, "AwsAccount", "legacy")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "MemberAccessDenied", "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "arn:aws:iam::{invited}:role/OrganizationAccountAccessRole"
        )) && text.contains("invited")
            && text.contains("AccessDenied"),
        "{text}"
    );
    // Opting out of the baseline manages it from the Organization only.
    std::fs::write(
        dir.path().join("account.yaml"),
        legacy.replace(
            "email: aws-legacy@example.com",
            "email: aws-legacy@example.com, baseline: false",
        ),
    )
    .unwrap();
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::ZERO).await;
    assert!(ready(&run, "legacy"), "{:?}", run.reports);
}

#[tokio::test]
async fn access_denied_is_terminal_and_says_so_while_the_rest_is_applied() {
    let (emu, proxy) = realistic(1).await;
    proxy.set(Faults {
        inject: Some((Fault::AccessDenied, 1.0)),
        only: vec!["CreateAccount".into()],
        down: false,
        limit: None,
    });
    let dir = dir_with(&format!(
        "{ACCOUNT}---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: security}}\nspec: {{name: Security}}\n"
    ));
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(30)).await;
    assert_readable(&run);
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
async fn an_expired_member_session_is_assumed_again() {
    // STS sessions can end before their stated expiry: IAM then answers ExpiredToken. The operator
    // drops the session and assumes the role again, in the same run.
    let (emu, proxy) = realistic(1).await;
    let dir = dir_with(ACCOUNT);
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let run = apply_waiting(
        ports.clone(),
        dir.path(),
        &state,
        false,
        Duration::from_secs(60),
    )
    .await;
    assert!(ready(&run, "payments-prod"), "{:?}", run.reports);
    proxy.update_realism(|r| r.sessions_expired_before = Some(Instant::now()));
    let assumed = proxy.count("AssumeRole");
    // The same ports: the cached session is the expired one.
    let run = apply_waiting(ports, dir.path(), &state, false, Duration::from_secs(30)).await;
    assert!(ready(&run, "payments-prod"), "{:?}", run.reports);
    assert!(
        proxy.count("AssumeRole") > assumed,
        "a new session was assumed"
    );
}

#[tokio::test]
async fn apply_at_a_terminal_shows_progress_and_finishes_the_job_in_one_run() {
    // More new accounts than AWS lets be created at once, through the real binary at a terminal
    // (a pty from `script`): one run, exit 0, a live progress line, and the security summary.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        landing_zone_tests::k8s::skip(
            "apply_at_a_terminal_shows_progress_and_finishes_the_job_in_one_run",
            "no script(1) (util-linux) to give the CLI a terminal",
        );
        return;
    }
    let (emu, proxy) = realistic(3).await;
    let dir = dir_with(&accounts(7, ""));
    let state = dir.path().join("state.json");
    let cmd = format!(
        "{} apply --dir {} --state {} --poll-interval 1s --endpoint-url {}",
        landing_zone_tests::operator::binary().display(),
        dir.path().display(),
        state.display(),
        proxy.endpoint
    );
    let out = tokio::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("TERM", "xterm")
        .output()
        .await
        .expect("run script(1)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}:\n{text}", out.status);
    assert!(text.contains("resources done"), "no live progress:\n{text}");
    assert!(
        text.contains("Queued") || text.contains("Creating"),
        "the progress names what it waits for:\n{text}"
    );
    assert!(
        text.contains("account a7 (") && text.contains("password policy compliant"),
        "the security report is shown:\n{text}"
    );
    assert!(landing_zone_tests::debug_dump(&text).is_none(), "{text}");
    assert_eq!(proxy.create_requests().len(), 7);
    drop(emu);
}

/// A team claims the name of an account the platform team's Git is creating (the class's templates
/// give the same name and email): the claim's AwsAccount follows that request by name, finds the
/// account does not carry its claim tag, and refuses it (`AccountNotClaimable`), forgetting the
/// request. Deleting the claim, with a `Close` class, then closes nothing: the request is not
/// followed again, and Close reads the claim tag at the moment it would close.
#[tokio::test]
async fn a_claim_never_closes_an_account_it_did_not_create() {
    let (emu, proxy) = realistic(3).await;
    let git = dir_with(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: app}\nspec: {accountName: team-app, email: aws-team-app@example.com}\n",
    );
    let git_state = git.path().join("state.json");
    let first = apply_waiting(
        emu.ports_via(&proxy.endpoint, 3).await,
        git.path(),
        &git_state,
        false,
        Duration::ZERO,
    )
    .await;
    assert_eq!(reason(&first, "app"), "Creating", "{:?}", first.reports);

    // The claim's composed AwsAccount, as `controller::claims` writes it: labelled with the claim.
    let claim = dir_with(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: team-app\n  labels: {landingzone.dev/claim-kind: AccountClaim, landingzone.dev/claim-namespace: team, landingzone.dev/claim-name: app}\nspec: {accountName: team-app, email: aws-team-app@example.com, deletionPolicy: Close}\n",
    );
    let claim_state = claim.path().join("state.json");
    let claimed = apply_waiting(
        emu.ports_via(&proxy.endpoint, 3).await,
        claim.path(),
        &claim_state,
        false,
        Duration::from_secs(60) * PATIENCE,
    )
    .await;
    assert_eq!(
        reason(&claimed, "team-app"),
        "AccountNotClaimable",
        "{:?}",
        claimed.reports
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&claim_state).unwrap()).unwrap();
    let status = &doc["resources"]["AwsAccount/team-app"]["status"];
    assert!(
        status["createRequestId"].is_null() && status["accountId"].is_null(),
        "the request followed by name is forgotten: {status}"
    );

    // The claim deleted (its AwsAccount pruned, Close): the Git account stays ACTIVE.
    std::fs::remove_file(claim.path().join("account.yaml")).unwrap();
    let pruned = apply_waiting(
        emu.ports_via(&proxy.endpoint, 3).await,
        claim.path(),
        &claim_state,
        true,
        Duration::from_secs(30) * PATIENCE,
    )
    .await;
    assert!(!pruned.failed(), "{:?}", pruned.reports);
    assert_eq!(proxy.count("CloseAccount"), 0, "nothing closed");
    let accounts = emu.org_client().list_accounts().send().await.unwrap();
    let app = accounts
        .accounts()
        .iter()
        .find(|a| a.name() == Some("team-app"))
        .expect("the Git account exists");
    assert_eq!(app.status().map(|s| s.as_str()), Some("ACTIVE"));
}

/// The class hop: a team claims `app` under class `prod` (Retain), deletes the claim (the account
/// is kept), and claims `app` again under class `sandbox`: the account is found by its email and
/// carries the claim's tag, but it was made under `prod`, so the `sandbox` claim does not adopt
/// it (it would move it out of Prod's OU and give it sandbox's access and deletion policy); the
/// condition names the class that holds it.
#[tokio::test]
async fn a_retained_account_is_not_adopted_by_a_claim_of_another_class() {
    let (emu, proxy) = realistic(1).await;
    let claim_of = |class: &str| {
        format!(
            "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: team-app\n  labels: {{landingzone.dev/claim-kind: AccountClaim, landingzone.dev/claim-namespace: team, landingzone.dev/claim-name: app, landingzone.dev/account-class: {class}}}\nspec:\n  accountName: team-app\n  email: aws-team-app@example.com\n  tags: {{landingzone.dev/claim: team/app, landingzone.dev/account-class: {class}}}\n"
        )
    };
    let dir = dir_with(&claim_of("prod"));
    let state = dir.path().join("state.json");
    let made = apply_waiting(
        emu.ports_via(&proxy.endpoint, 3).await,
        dir.path(),
        &state,
        false,
        Duration::from_secs(60) * PATIENCE,
    )
    .await;
    assert!(ready(&made, "team-app"), "{:?}", made.reports);
    // The claim deleted: Retain keeps the account.
    std::fs::remove_file(dir.path().join("account.yaml")).unwrap();
    let pruned = apply_waiting(
        emu.ports_via(&proxy.endpoint, 3).await,
        dir.path(),
        &state,
        true,
        Duration::ZERO,
    )
    .await;
    assert!(!pruned.failed(), "{:?}", pruned.reports);

    // Claimed again under another class, from a fresh state (a new claim object).
    let again = dir_with(&claim_of("sandbox"));
    let hop = apply_waiting(
        emu.ports_via(&proxy.endpoint, 3).await,
        again.path(),
        &again.path().join("state.json"),
        false,
        Duration::from_secs(30) * PATIENCE,
    )
    .await;
    assert_eq!(
        reason(&hop, "team-app"),
        "AccountNotClaimable",
        "{:?}",
        hop.reports
    );
    let message = match &report(&hop, "AwsAccount", "team-app").result {
        Err(e) => e.to_string(),
        Ok(p) => format!("{:?}", p.ready),
    };
    assert!(
        message.contains("AccountClass prod") && message.contains("AccountClass sandbox"),
        "{message}"
    );
    assert_eq!(
        accounts_with_email(&emu, "aws-team-app@example.com").await,
        1,
        "no second account"
    );
}
