//! `apply --dir`: the example landing zone end to end, idempotence, drift, adoption, Observe, bad input.

use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::{Emulator, examples_copy, report, run_dir};
use std::time::Duration;

fn is_ready(r: &landing_zone_operator::reconcile::Report) -> bool {
    matches!(&r.result, Ok(p) if matches!(p.ready, Readiness::Ready { .. }))
}

#[tokio::test]
async fn examples_converge_and_a_second_apply_writes_nothing() {
    let emu = Emulator::with_managed_policies().await;
    let dir = examples_copy();
    let state = dir.path().join("state.json");

    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(
        first.errors.is_empty(),
        "{:?}",
        first
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    for r in first.reports.iter() {
        if r.key.name == "region-allow-list" {
            // Left in Observe: it does not exist, and the operator says so instead of creating it.
            let ready = &r.result.as_ref().unwrap().ready;
            assert!(
                matches!(
                    ready,
                    Readiness::NotReady {
                        reason: "NotFound",
                        ..
                    }
                ),
                "{ready:?}"
            );
            continue;
        }
        assert!(is_ready(r), "{} not ready: {:?}", r.key, r.result);
    }
    assert!(!first.failed());
    let first_writes = first.metrics.aws_calls_of_kind("write");
    // 3 OUs + 5 accounts created, 5 accounts moved into their OU, 2 budgets created, and the trail:
    // trusted access, bucket + 5 safeguards (public access, encryption, versioning, policy, lifecycle),
    // the trail, logging started; in each account an alias and the password policy (+ 1 contact).
    // The groups: create, attach, (inline policy,) users created without credentials, members added.
    // The guardrails: 3 policy types enabled (once each), 5 policies created, 6 attachments.
    // Identity Center: 3 groups, 3 permission sets with 4 managed policies and 1 inline policy,
    // 12 assignments (2 OUs reaching 5 accounts, twice, and the 2 developer accounts).
    // The Organization: trusted access for CloudTrail, GuardDuty and IAM, 3 policy types, a delegated
    // administrator, root credentials management and root sessions (9), of which 4 (3 policy types,
    // CloudTrail's trusted access) the guardrails and the trail no longer do themselves: +5; its
    // change-event pipeline: the dead-letter queue, the queue, the two rules (API calls, alarm
    // states) and their targets: +6.
    // The security baseline in the 5 member accounts: Block Public Access, the support role and its
    // policy, the security contact in the 4 accounts without it (19); in each of 2 regions (10
    // account-regions) EBS encryption, IMDSv2, AWS Config's service-linked role, recorder, channel
    // and start, the default VPC (70) and its 9 subnets (6 + 3 availability zones: 45); the
    // delivery bucket and its 4 safeguards (5): +139.
    // The trail's alarms: the log group and its retention, the role and its policy, the topic's
    // key, alias and rotation, the topic and one subscriber, 15 CIS metric filters and 16 alarms
    // (one on the bill): +40.
    // The security services in 2 regions: trusted access for Security Hub and Access Analyzer
    // (GuardDuty's was there; Access Analyzer's administrator replaces GuardDuty's registration);
    // GuardDuty's administrator, detector, auto-enable and the management account as a member (8);
    // Security Hub's administrator, hub, auto-enable, standards and the 6 accounts as members (10);
    // the organization analyzer (2) and an analyzer in each of the 5 member accounts (10): +32.
    assert_eq!(
        first_writes,
        52 + 14 + 23 + 5 + 6 + 139 + 40 + 32,
        "{:?}",
        first.metrics.aws_call_counts()
    );

    // AWS matches: the payments OU is under Workloads, and payments-prod is in it with its tags.
    let workloads = report(&first, "OrganizationalUnit", "workloads")
        .id
        .clone()
        .unwrap();
    let payments = report(&first, "OrganizationalUnit", "payments")
        .id
        .clone()
        .unwrap();
    assert_eq!(emu.parent_of(&payments).await, workloads);
    let prod = report(&first, "AwsAccount", "payments-prod")
        .id
        .clone()
        .unwrap();
    assert_eq!(emu.parent_of(&prod).await, payments);
    assert_eq!(
        emu.tags_of(&prod).await.get("stage").map(String::as_str),
        Some("prod")
    );
    let accounts = emu.org_client().list_accounts().send().await.unwrap();
    assert_eq!(
        accounts.accounts().len(),
        6,
        "management + 5 example accounts, none twice"
    );

    // Kinds whose reconcilers have not landed are listed, not failed.
    let sysadmins = report(&first, "IdentityGroup", "sysadmins");
    assert!(is_ready(sysadmins), "{:?}", sysadmins.result);

    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        second.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        second.metrics.aws_call_counts()
    );
    for r in second.reports.iter() {
        let p = r.result.as_ref().unwrap();
        assert!(
            p.actions.is_empty() && p.drift.is_empty(),
            "{}: {:?}",
            r.key,
            p
        );
    }
    // The snapshot is one tree walk: reads do not grow with a describe call per account.
    let calls = second.metrics.aws_call_counts();
    let count = |op: &str| {
        calls
            .get(&("organizations".to_string(), op.to_string()))
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count("DescribeAccount"), 0);
    assert_eq!(count("ListParents"), 0);
    assert_eq!(count("ListAccounts"), 0, "the tree walk sees every account");
    // One page of child OUs and one of accounts per parent: the root and the 3 OUs.
    assert_eq!(count("ListOrganizationalUnitsForParent"), 4);
    assert_eq!(count("ListAccountsForParent"), 4);
    assert_eq!(
        count("ListTagsForResource"),
        8 + 5,
        "one tag read per managed OU, account and policy"
    );
    // Per policy: its document and its targets; by name only for the one not in AWS (Observe).
    assert_eq!(count("DescribePolicy"), 5);
    assert_eq!(count("ListTargetsForPolicy"), 5);
    assert_eq!(count("ListPolicies"), 1);
    assert_eq!(
        count("ListPoliciesForTarget"),
        0,
        "slots are counted only before a change"
    );
    // Identity Center, per resync: 9 reads per permission set (instance, set, managed, customer,
    // inline, boundary, tags, and per group its id and assignments), 3 per group — none per account.
    let identity_center: u64 = calls
        .iter()
        .filter(|((service, _), _)| service == "sso admin" || service == "identitystore")
        .map(|(_, (_, n))| *n)
        .sum();
    assert_eq!(identity_center, 3 * 9 + 3 * 3, "{calls:?}");
}

#[tokio::test]
async fn drift_made_out_of_band_is_reported_then_corrected() {
    let emu = Emulator::with_managed_policies().await;
    let dir = examples_copy();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let prod = report(&first, "AwsAccount", "payments-prod")
        .id
        .clone()
        .unwrap();
    let payments = report(&first, "OrganizationalUnit", "payments")
        .id
        .clone()
        .unwrap();
    let security = report(&first, "OrganizationalUnit", "security")
        .id
        .clone()
        .unwrap();

    // Out of band, as someone in the console would: move an account, change and drop tags, rename an OU.
    let o = emu.org_client();
    let root = o.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    emu.move_directly(&prod, &payments, &root).await;
    o.untag_resource()
        .resource_id(&prod)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    o.tag_resource()
        .resource_id(&prod)
        .tags(
            aws_sdk_organizations::types::Tag::builder()
                .key("stage")
                .value("dev")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    o.update_organizational_unit()
        .organizational_unit_id(&security)
        .name("Security-old")
        .send()
        .await
        .unwrap();

    let plan = run_dir(emu.ports().await, dir.path(), &state, false, false).await;
    assert_eq!(
        plan.metrics.aws_calls_of_kind("write"),
        0,
        "plan never writes"
    );
    let drift: Vec<String> = report(&plan, "AwsAccount", "payments-prod")
        .result
        .as_ref()
        .unwrap()
        .drift
        .iter()
        .map(|d| format!("{}={}->{}", d.field, d.observed, d.desired))
        .collect();
    assert_eq!(
        drift,
        vec![
            format!("parentId={root}->{payments}"),
            "tags.owner=<absent>->payments-team".to_string(),
            "tags.stage=dev->prod".to_string()
        ]
    );
    let ou_drift = &report(&plan, "OrganizationalUnit", "security")
        .result
        .as_ref()
        .unwrap()
        .drift;
    assert_eq!(
        (ou_drift[0].field.as_str(), ou_drift[0].observed.as_str()),
        ("name", "Security-old")
    );

    let fix = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!fix.failed());
    assert_eq!(emu.parent_of(&prod).await, payments);
    let tags = emu.tags_of(&prod).await;
    assert_eq!(
        (tags["owner"].as_str(), tags["stage"].as_str()),
        ("payments-team", "prod")
    );
    let ou = o
        .describe_organizational_unit()
        .organizational_unit_id(&security)
        .send()
        .await
        .unwrap();
    assert_eq!(ou.organizational_unit().unwrap().name(), Some("Security"));
    // The status keeps the drift history out: in sync now.
    let state_doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(state_doc["resources"]["AwsAccount/payments-prod"]["status"]["drift"].is_null());

    let again = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(again.metrics.aws_calls_of_kind("write"), 0);
}

#[tokio::test]
async fn existing_ous_and_accounts_are_adopted_not_duplicated() {
    let emu = Emulator::with_managed_policies().await;
    let o = emu.org_client();
    let root = o.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let existing_ou = o
        .create_organizational_unit()
        .parent_id(&root)
        .name("Security")
        .send()
        .await
        .unwrap();
    let existing_ou = existing_ou
        .organizational_unit()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let created = o
        .create_account()
        .account_name("audit")
        .email("aws-audit@example.com")
        .send()
        .await
        .unwrap();
    let audit_id = created
        .create_account_status()
        .unwrap()
        .account_id()
        .unwrap()
        .to_string();

    let dir = examples_copy();
    let state = dir.path().join("state.json");
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!run.failed());
    assert_eq!(
        report(&run, "OrganizationalUnit", "security").id.as_deref(),
        Some(existing_ou.as_str())
    );
    let audit = report(&run, "AwsAccount", "audit");
    assert_eq!(audit.id.as_deref(), Some(audit_id.as_str()));
    assert!(audit.result.as_ref().unwrap().actions[0].starts_with("adopt existing account"));
    let calls = run.metrics.aws_call_counts();
    assert_eq!(
        calls[&("organizations".into(), "CreateAccount".into())].1,
        4,
        "audit was adopted, not created"
    );
    assert_eq!(
        calls[&("organizations".into(), "CreateOrganizationalUnit".into())].1,
        2,
        "Security was adopted"
    );
    let ous = o
        .list_organizational_units_for_parent()
        .parent_id(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ous.organizational_units()
            .iter()
            .filter(|u| u.name() == Some("Security"))
            .count(),
        1
    );
}

#[tokio::test]
async fn observe_mode_reports_drift_and_never_writes() {
    let emu = Emulator::start().await;
    let o = emu.org_client();
    let root = o.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    o.create_organizational_unit()
        .parent_id(&root)
        .name("Legacy")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("observe.yaml"),
        r#"apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: legacy}
spec:
  name: Legacy
  managementPolicy: Observe
  tags: {owner: nobody}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: absent}
spec:
  name: Absent
  managementPolicy: Observe
"#,
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        run.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        run.metrics.aws_call_counts()
    );
    let legacy = report(&run, "OrganizationalUnit", "legacy")
        .result
        .as_ref()
        .unwrap();
    assert!(
        matches!(
            legacy.ready,
            Readiness::Ready {
                reason: "Observed",
                ..
            }
        ),
        "{legacy:?}"
    );
    assert_eq!(
        legacy.remaining.len(),
        1,
        "drift stays in status: nothing corrected"
    );
    let absent = report(&run, "OrganizationalUnit", "absent")
        .result
        .as_ref()
        .unwrap();
    assert!(
        matches!(
            absent.ready,
            Readiness::NotReady {
                reason: "NotFound",
                ..
            }
        ),
        "{absent:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        doc["resources"]["OrganizationalUnit/legacy"]["status"]["driftCount"],
        1
    );
}

#[tokio::test]
async fn one_bad_file_is_reported_and_the_rest_applied() {
    let emu = Emulator::with_managed_policies().await;
    let dir = examples_copy();
    std::fs::write(
        dir.path().join("60-bad.yaml"),
        "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: broken\nspec:\n  accountName: broken\n  email: broken-at-example.com\n  alias: -bad-\n",
    )
    .unwrap();
    // An account whose OU reference points at the broken resource's kind-mate that does not exist.
    std::fs::write(
        dir.path().join("61-orphan.yaml"),
        "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: orphan\nspec:\n  accountName: orphan\n  email: aws-orphan@example.com\n  organizationalUnitRef:\n    name: no-such-ou\n",
    )
    .unwrap();
    let state = dir.path().join("state.json");
    // The orphan can never become ready in this run: the apply does not wait out `--wait` (an
    // hour here) for it — the deadline below is where the test gives up, not what it measures.
    let (args, apply_args) =
        landing_zone_tests::cli_args(dir.path(), &state, false, Duration::from_secs(3600));
    let run = tokio::time::timeout(
        Duration::from_secs(600),
        landing_zone_operator::cli::execute(&args, Some(&apply_args), emu.ports().await),
    )
    .await
    .expect("the apply returned instead of waiting an hour for a reference to nothing")
    .expect("the run starts");
    landing_zone_tests::assert_readable(&run);
    assert!(run.failed(), "the exit code must say something failed");
    assert_eq!(run.errors.len(), 1);
    let e = run.errors[0].to_string();
    assert!(
        e.contains("60-bad.yaml") && e.contains("AwsAccount/broken"),
        "{e}"
    );
    assert!(e.contains("spec.email") && e.contains("spec.alias"), "{e}");
    assert!(e.contains("must not start or end with '-'"), "{e}");
    // The others were applied.
    assert!(is_ready(report(&run, "AwsAccount", "payments-prod")));
    let orphan = report(&run, "AwsAccount", "orphan");
    assert_eq!(
        orphan.result.as_ref().unwrap_err().reason(),
        "WaitingForDependency"
    );
}
