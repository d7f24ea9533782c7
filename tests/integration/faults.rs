//! Fault injection: the operator's real SDK clients talk to the emulator through `FaultProxy`,
//! which throttles, drops, or cuts AWS off on command.

use landing_zone_operator::aws::AwsPorts;
use landing_zone_operator::aws::pacing::RateLimits;
use landing_zone_operator::metrics::Metrics;
use landing_zone_tests::proxy::{Fault, FaultProxy, Faults};
use landing_zone_tests::{Emulator, report, run_dir};
use std::time::{Duration, Instant};

/// A small landing zone: two OUs, three accounts.
const LZ: &str = "apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads, tags: {owner: platform}}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: payments}
spec: {name: Payments, parentRef: {name: workloads}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: dev}
spec: {accountName: dev, email: aws-dev@example.com, organizationalUnitRef: {name: payments}, tags: {stage: dev}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: staging}
spec: {accountName: staging, email: aws-staging@example.com, organizationalUnitRef: {name: payments}, tags: {stage: staging}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: prod}
spec: {accountName: prod, email: aws-prod@example.com, organizationalUnitRef: {name: payments}, tags: {stage: prod}}
";

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lz.yaml"), LZ).unwrap();
    d
}

#[tokio::test]
async fn thirty_percent_throttling_still_converges_without_a_hot_loop() {
    // Baseline: the same landing zone with no faults, for the call count.
    let calm = Emulator::start().await;
    let calm_proxy = FaultProxy::start(&calm.endpoint).await;
    let d0 = dir();
    let clean = run_dir(
        calm.ports_via(&calm_proxy.endpoint, 5).await,
        d0.path(),
        &d0.path().join("s.json"),
        true,
        false,
    )
    .await;
    assert!(!clean.failed());
    let baseline = calm_proxy.total();

    let emu = Emulator::start().await;
    let proxy = FaultProxy::start(&emu.endpoint).await;
    proxy.set(Faults {
        inject: Some((Fault::Throttle, 0.3)),
        ..Default::default()
    });
    let d = dir();
    let state = d.path().join("s.json");
    // The SDK backs off and retries throttled calls; a second apply picks up anything left.
    let mut converged = false;
    for _ in 0..3 {
        let run = run_dir(
            emu.ports_via(&proxy.endpoint, 5).await,
            d.path(),
            &state,
            true,
            false,
        )
        .await;
        if !run.failed() {
            converged = true;
            break;
        }
    }
    assert!(
        converged,
        "the landing zone converges under 30 % throttling"
    );
    assert!(proxy.injected() > 0, "faults were injected");
    let accounts = emu.org_client().list_accounts().send().await.unwrap();
    assert_eq!(accounts.accounts().len(), 4, "no duplicate account");
    // Bounded: throttled calls are retried a few times, never in a tight loop.
    let total = proxy.total();
    assert!(
        total <= baseline * 3,
        "{total} requests under throttling vs {baseline} without: a hot loop?"
    );
}

#[tokio::test]
async fn concurrent_modification_and_server_errors_are_retried() {
    let emu = Emulator::start().await;
    let proxy = FaultProxy::start(&emu.endpoint).await;
    let d = dir();
    let state = d.path().join("s.json");
    for fault in [Fault::ConcurrentModification, Fault::ServerError] {
        proxy.set(Faults {
            inject: Some((fault, 0.5)),
            only: vec![
                "MoveAccount".into(),
                "CreateOrganizationalUnit".into(),
                "TagResource".into(),
            ],
            ..Default::default()
        });
        let run = run_dir(
            emu.ports_via(&proxy.endpoint, 5).await,
            d.path(),
            &state,
            true,
            false,
        )
        .await;
        assert!(
            !run.failed(),
            "{fault:?}: {:?}",
            run.reports
                .iter()
                .filter(|r| r.result.is_err())
                .collect::<Vec<_>>()
        );
    }
    assert!(proxy.injected() > 0);
}

#[tokio::test]
async fn a_run_cut_between_move_and_tagging_is_finished_by_the_next_without_repeating_the_move() {
    let emu = Emulator::start().await;
    let proxy = FaultProxy::start(&emu.endpoint).await;
    let d = dir();
    let state = d.path().join("s.json");
    let first = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        d.path(),
        &state,
        true,
        false,
    )
    .await;
    assert!(!first.failed());
    // Out of band: prod back at the root, its tag changed.
    let o = emu.org_client();
    let prod = report(&first, "AwsAccount", "prod").id.clone().unwrap();
    let payments = report(&first, "OrganizationalUnit", "payments")
        .id
        .clone()
        .unwrap();
    let root = o.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    emu.move_directly(&prod, &payments, &root).await;
    o.tag_resource()
        .resource_id(&prod)
        .tags(
            aws_sdk_organizations::types::Tag::builder()
                .key("stage")
                .value("oops")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The run dies after MoveAccount: every TagResource is cut off.
    proxy.set(Faults {
        inject: Some((Fault::Drop, 1.0)),
        only: vec!["TagResource".into()],
        ..Default::default()
    });
    let cut = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        d.path(),
        &state,
        true,
        false,
    )
    .await;
    let err = report(&cut, "AwsAccount", "prod")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "AwsUnreachable", "{err}");
    assert!(err.is_retryable());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let synced = doc["resources"]["AwsAccount/prod"]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Synced")
        .unwrap()
        .clone();
    assert_eq!(
        (synced["status"].as_str(), synced["reason"].as_str()),
        (Some("False"), Some("AwsUnreachable"))
    );

    // Restarted: it finishes the plan (the tag) and does not move the account again.
    proxy.set(Faults::default());
    proxy.reset_counts();
    let resumed = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        d.path(),
        &state,
        true,
        false,
    )
    .await;
    assert!(!resumed.failed(), "{:?}", resumed.reports);
    assert_eq!(proxy.count("MoveAccount"), 0, "the move was done already");
    assert_eq!(proxy.count("TagResource"), 1);
    let tags = o
        .list_tags_for_resource()
        .resource_id(&prod)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].value(), "prod");
}

#[tokio::test]
async fn aws_unreachable_for_a_while_deletes_nothing_and_recovers() {
    let emu = Emulator::start().await;
    let proxy = FaultProxy::start(&emu.endpoint).await;
    let d = dir();
    let state = d.path().join("s.json");
    let first = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        d.path(),
        &state,
        true,
        false,
    )
    .await;
    assert!(!first.failed());
    let before = std::fs::read_to_string(&state).unwrap();

    proxy.set(Faults {
        down: true,
        ..Default::default()
    });
    let (args, apply) =
        landing_zone_tests::cli_args(d.path(), &state, true, std::time::Duration::ZERO);
    let err = landing_zone_operator::cli::execute(
        &args,
        Some(&apply),
        emu.ports_via(&proxy.endpoint, 2).await,
    )
    .await
    .err()
    .expect("AWS is down");
    assert!(
        err.contains("could not be reached") || err.contains("Unreachable"),
        "{err}"
    );
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(
        after["resources"].as_object().unwrap().len(),
        before["resources"].as_object().unwrap().len(),
        "nothing forgotten"
    );
    assert_eq!(
        emu.org_client()
            .list_accounts()
            .send()
            .await
            .unwrap()
            .accounts()
            .len(),
        4,
        "nothing deleted"
    );

    proxy.set(Faults::default());
    let back = run_dir(
        emu.ports_via(&proxy.endpoint, 2).await,
        d.path(),
        &state,
        true,
        false,
    )
    .await;
    assert!(!back.failed());
    assert_eq!(
        back.metrics.aws_calls_of_kind("write"),
        0,
        "in sync as before"
    );
}

/// Pacing holds for every service (here IAM, not only Organizations) and for every attempt,
/// retries included. Lower bounds only: the limiter can make calls slower, never faster.
#[tokio::test]
async fn pacing_spaces_every_attempt_of_every_service() {
    let emu = Emulator::start().await;
    let proxy = FaultProxy::start(&emu.endpoint).await;
    let mut limits = RateLimits::default();
    limits.set("GetAccountSummary=2/1").unwrap();
    limits.set("ListRoots=2/1").unwrap();
    let ports = AwsPorts::with_limits(
        emu.sdk_config_via(&proxy.endpoint, 4).await,
        Metrics::new(),
        limits,
    );

    // 1 at once, then one every 0.5 s.
    let iam = ports.members.clients(None, None, "aws", "unused").iam;
    let t = Instant::now();
    for _ in 0..4 {
        iam.root_security().await.unwrap();
    }
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "4 IAM calls at 2/s took {:?}",
        t.elapsed()
    );

    // Every attempt of a throttled call waits for its token too: 4 attempts, ≥ 1.5 s.
    proxy.set(Faults {
        inject: Some((Fault::Throttle, 1.0)),
        only: vec!["ListRoots".into()],
        ..Default::default()
    });
    let t = Instant::now();
    assert!(ports.organizations.list_roots().await.is_err());
    assert_eq!(proxy.count("ListRoots"), 4, "4 attempts");
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "4 attempts at 2/s took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn an_ou_the_snapshot_missed_is_adopted_not_an_error() {
    // AWS answers DuplicateOrganizationalUnitException when an OU of that name appeared after the
    // Organization was read (a lagging read, or another writer): read again and go on.
    let emu = Emulator::start().await;
    let proxy = FaultProxy::start(&emu.endpoint).await;
    proxy.set(Faults {
        inject: Some((Fault::Aws(400, "DuplicateOrganizationalUnitException"), 1.0)),
        only: vec!["CreateOrganizationalUnit".into()],
        down: false,
        limit: Some(1),
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ou.yaml"),
        "apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {name: security}\nspec: {name: Security}\n",
    )
    .unwrap();
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let run = landing_zone_tests::apply_waiting(
        ports,
        dir.path(),
        &dir.path().join("state.json"),
        false,
        Duration::from_secs(30),
    )
    .await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert_eq!(proxy.injected(), 1);
}
