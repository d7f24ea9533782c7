//! GuardDuty, Security Hub and IAM Access Analyzer for the whole Organization
//! (`Organization.spec.securityServices`), through the realism layer, which answers these services
//! itself as AWS does (the emulator lacks their organization calls, and Access Analyzer
//! altogether): administrators named per region by the management account only, the organization
//! configuration the administrator's alone, accounts enrolled by auto-enable a while after they
//! join, the management account left to be added as a member.

use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::proxy::SecurityServicesModel;
use landing_zone_tests::{Emulator, report, run_dir};
use std::time::Duration;

const LZ: &str = "apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: audit}
spec: {accountName: audit, email: aws-audit@example.com}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: dev}
spec: {accountName: dev, email: aws-dev@example.com}
---
apiVersion: landingzone.dev/v1alpha1
kind: Organization
metadata: {name: organization}
spec:
  securityServices:
    administratorAccountRef: {name: audit}
    regions: [us-east-1, eu-west-1]
    guardDuty: {autoEnable: AllAccounts}
    securityHub:
      autoEnable: AllAccounts
      standards: [CisAwsFoundations, AwsFoundationalSecurityBestPractices]
    accessAnalyzer: {organizationAnalyzerName: organization}
";

fn services(state: &std::path::Path) -> Vec<serde_json::Value> {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    doc["resources"]["Organization/organization"]["status"]["securityServices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_services_cover_every_account_new_ones_included() {
    let emu = Emulator::start().await;
    let wire = emu.wire.as_ref().expect("the realism layer");
    // AWS takes its time to enrol an account: an hour here, so every run sees it pending, until
    // the test lets that time pass (`finish_enrolments`) — no test waits on this machine's speed.
    wire.update_realism(|r| {
        r.security_services = Some(SecurityServicesModel {
            enrol_after: Duration::from_secs(3600),
        })
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), LZ).unwrap();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let audit = report(&first, "AwsAccount", "audit").id.clone().unwrap();

    // What an auditor asks the services, as the management and the administrator account.
    let conf = emu.sdk_config().await;
    for region in ["us-east-1", "eu-west-1"] {
        let gd = aws_sdk_guardduty::Client::from_conf(
            aws_sdk_guardduty::config::Builder::from(&conf)
                .region(aws_config::Region::new(region))
                .build(),
        );
        let admins = gd.list_organization_admin_accounts().send().await.unwrap();
        assert_eq!(
            admins.admin_accounts()[0].admin_account_id(),
            Some(audit.as_str()),
            "{region}"
        );
        let sh = aws_sdk_securityhub::Client::from_conf(
            aws_sdk_securityhub::config::Builder::from(&conf)
                .region(aws_config::Region::new(region))
                .build(),
        );
        let admins = sh.list_organization_admin_accounts().send().await.unwrap();
        assert_eq!(
            admins.admin_accounts()[0].account_id(),
            Some(audit.as_str()),
            "{region}"
        );
    }
    // Access Analyzer's administrator is registered through Organizations, with trusted access.
    let delegated = emu
        .org_client()
        .list_delegated_administrators()
        .service_principal("access-analyzer.amazonaws.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        delegated.delegated_administrators()[0].id(),
        Some(audit.as_str())
    );
    let s = services(&state);
    assert_eq!(s.len(), 6, "3 services in 2 regions: {s:?}");
    assert!(
        s.iter()
            .all(|x| x["enabled"] == true && x["administrator"] == audit.as_str()),
        "{s:?}"
    );
    let analyzer = s.iter().find(|x| x["service"] == "AccessAnalyzer").unwrap();
    assert_eq!(analyzer["enrolled"], 2, "the management account and dev");

    // A while later AWS has enrolled everyone (GuardDuty by auto-enable, Security Hub the members
    // it was asked to add, the management account by both): nothing to write, nothing pending.
    wire.finish_enrolments();
    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let p = report(&second, "Organization", "organization")
        .result
        .as_ref()
        .unwrap();
    assert!(p.writes == 0 && p.drift.is_empty(), "{p:?}");
    let s = services(&state);
    assert!(
        s.iter()
            .all(|x| x["enrolled"] == 2 && x["pending"] == 0 && x["notEnrolled"] == 0),
        "{s:?}"
    );

    // A new account, made without any change to the spec: GuardDuty's auto-enable takes it on
    // by itself (pending meanwhile); Security Hub is asked to add it in each region, in case it
    // joined before its auto-enable; then both have it, and nothing more is written.
    let new = emu
        .create_account_directly("newcomer", "aws-newcomer@example.com")
        .await;
    let third = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let p = report(&third, "Organization", "organization")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(
        p.actions,
        vec![
            format!("add 1 account(s) to Security Hub in us-east-1 ({new})"),
            format!("add 1 account(s) to Security Hub in eu-west-1 ({new})"),
        ]
    );
    let s = services(&state);
    let gd = s.iter().find(|x| x["service"] == "GuardDuty").unwrap();
    assert_eq!(
        (gd["enrolled"].as_u64(), gd["pending"].as_u64()),
        (Some(2), Some(1)),
        "{gd}"
    );
    assert_eq!(gd["accountsWithout"][0], new.as_str());
    match &p.ready {
        Readiness::Ready { message, .. } => {
            assert!(message.contains("not enrolled yet"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    wire.finish_enrolments();
    let fourth = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let p = report(&fourth, "Organization", "organization")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(p.writes, 0, "{:?}", p.actions);
    assert!(matches!(p.ready, Readiness::Ready { .. }));
    let s = services(&state);
    assert!(
        s.iter().all(|x| x["enrolled"] == 3 && x["pending"] == 0),
        "{s:?}"
    );
}
