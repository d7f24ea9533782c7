//! SecurityBaseline: the CIS account-level controls in every targeted account and governed region,
//! through the operator's real SDK clients and each account's access role. The emulator keeps EBS
//! encryption, default VPCs (and refuses DeleteVpc while subnets or a gateway remain, as AWS does),
//! AWS Config, roles and contacts; the realism layer answers instance metadata defaults (the
//! emulator lacks them) and a delivery bucket that refuses AWS Config. S3 Control's account host
//! (`<account>.127.0.0.1`) reaches the emulator through the operator's resolver.

use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::{Emulator, report, run_dir};

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

fn landing_zone(extra: &str) -> String {
    format!(
        r#"apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {{name: workloads}}
spec: {{name: Workloads}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {{name: log-archive}}
spec: {{accountName: log-archive, email: aws-log-archive@example.com}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {{name: dev}}
spec: {{accountName: dev, email: aws-dev@example.com, parentRef: {{name: workloads}}}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {{name: prod}}
spec: {{accountName: prod, email: aws-prod@example.com, parentRef: {{name: workloads}}}}
---
apiVersion: landingzone.dev/v1alpha1
kind: SecurityBaseline
metadata: {{name: cis}}
spec:
  targets: {{root: true}}
  regions: [us-east-1, eu-west-1]
  s3BlockPublicAccess: true
  ebsDefaultEncryption: {{enabled: true}}
  instanceMetadataV2Default: true
  defaultVpcs: DeleteWhenUnused
  supportRole: {{roleName: aws-support}}
  securityContact: {{name: Security team, title: Security, email: security@example.com, phoneNumber: "+1-555-0100"}}
  config:
    deliveryBucket: {{name: example-config, accountRef: {{name: log-archive}}, create: true}}
{extra}"#
    )
}

fn write(dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("lz.yaml"), text).unwrap();
}

fn status(state: &std::path::Path, name: &str) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    doc["resources"][format!("SecurityBaseline/{name}")]["status"].clone()
}

async fn bpa(emu: &Emulator, account: &str) -> Option<[bool; 4]> {
    let ports = emu.ports().await;
    let c = ports.members.clients(
        Some(account),
        Some("123456789012"),
        "aws",
        "OrganizationAccountAccessRole",
    );
    c.controls
        .s3_public_access_block(account)
        .await
        .expect("GetPublicAccessBlock")
}

#[tokio::test]
async fn every_account_is_baselined_in_every_region_a_resync_writes_nothing_and_drift_is_corrected()
{
    let emu = Emulator::with_managed_policies().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write(dir.path(), &landing_zone(""));

    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:#?}", first.reports);
    let r = report(&first, "SecurityBaseline", "cis")
        .result
        .as_ref()
        .unwrap();
    assert!(matches!(r.ready, Readiness::Ready { .. }), "{:?}", r.ready);
    let s = status(&state, "cis");
    assert_eq!(
        (s["targetedCount"].as_i64(), s["compliantCount"].as_i64()),
        (Some(3), Some(3)),
        "{s:#}"
    );
    assert!(
        s["coverage"].is_null(),
        "every member account is reached: {s:#}"
    );

    // What each account holds, read with plain SDK clients through its access role.
    for name in ["log-archive", "dev", "prod"] {
        let id = report(&first, "AwsAccount", name).id.clone().unwrap();
        assert_eq!(
            bpa(&emu, &id).await,
            Some([true; 4]),
            "{name}: Block Public Access"
        );
        let conf = emu.member_sdk_config(&id).await;
        for region in REGIONS {
            let conf = conf
                .to_builder()
                .region(aws_config::Region::new(region))
                .build();
            let ec2 = aws_sdk_ec2::Client::new(&conf);
            let enc = ec2.get_ebs_encryption_by_default().send().await.unwrap();
            assert_eq!(
                enc.ebs_encryption_by_default(),
                Some(true),
                "{name} {region}: EBS"
            );
            let vpcs = emu.default_vpcs(&id, region).await;
            assert!(
                vpcs.is_empty(),
                "{name} {region}: the unused default VPC is gone"
            );
            let wire = emu.wire.as_ref().expect("the realism layer");
            assert_eq!(
                wire.imds_tokens(&id, region).as_deref(),
                Some("required"),
                "{name} {region}: IMDSv2"
            );
            let config = aws_sdk_config::Client::new(&conf);
            let recorders = config
                .describe_configuration_recorders()
                .send()
                .await
                .unwrap();
            let rec = &recorders.configuration_recorders()[0];
            let group = rec.recording_group().unwrap();
            assert!(group.all_supported(), "{name} {region}");
            assert_eq!(
                group.include_global_resource_types(),
                region == "us-east-1",
                "{name} {region}: global resources once"
            );
            let channels = config.describe_delivery_channels().send().await.unwrap();
            assert_eq!(
                channels.delivery_channels()[0].s3_bucket_name(),
                Some("example-config")
            );
            let recording = config
                .describe_configuration_recorder_status()
                .send()
                .await
                .unwrap();
            assert!(
                recording.configuration_recorders_status()[0].recording(),
                "{name} {region}: recording"
            );
        }
        let iam = aws_sdk_iam::Client::new(&conf);
        let attached = iam
            .list_attached_role_policies()
            .role_name("aws-support")
            .send()
            .await
            .unwrap();
        assert_eq!(
            attached.attached_policies()[0].policy_name(),
            Some("AWSSupportAccess"),
            "{name}"
        );
        let account = aws_sdk_account_contact(&emu, &id).await;
        assert_eq!(
            account.as_deref(),
            Some("security@example.com"),
            "{name}: security contact"
        );
    }

    // In sync: the second apply writes nothing.
    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let r = report(&second, "SecurityBaseline", "cis")
        .result
        .as_ref()
        .unwrap();
    assert_eq!((r.writes, r.drift.len()), (0, 0), "{:?}", r.actions);

    // Block Public Access turned off by hand in one account: found and turned on again.
    let dev = report(&first, "AwsAccount", "dev").id.clone().unwrap();
    let ports = emu.ports().await;
    let c = ports.members.clients(
        Some(&dev),
        Some("123456789012"),
        "aws",
        "OrganizationAccountAccessRole",
    );
    c.controls
        .set_s3_public_access_block(&dev, false)
        .await
        .unwrap();
    assert_eq!(bpa(&emu, &dev).await, None);
    let third = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let r = report(&third, "SecurityBaseline", "cis")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(r.writes, 1, "{:?}", r.actions);
    assert_eq!(
        (r.drift[0].field.as_str(), r.drift[0].observed.clone()),
        (
            "s3BlockPublicAccess",
            format!("no account-level Block Public Access in account {dev}")
        )
    );
    assert_eq!(bpa(&emu, &dev).await, Some([true; 4]));
}

/// The SECURITY alternate contact's email in an account, through its role.
async fn aws_sdk_account_contact(emu: &Emulator, account: &str) -> Option<String> {
    let ports = emu.ports().await;
    let c = ports.members.clients(
        Some(account),
        Some("123456789012"),
        "aws",
        "OrganizationAccountAccessRole",
    );
    c.contacts
        .contact("SECURITY")
        .await
        .unwrap()
        .map(|c| c.email)
}

#[tokio::test]
async fn a_default_vpc_in_use_is_reported_and_left_alone_and_a_refused_delivery_bucket_says_why() {
    let emu = Emulator::start().await;
    let used = emu
        .create_account_directly("used", "aws-used@example.com")
        .await;
    let unused = emu
        .create_account_directly("unused", "aws-unused@example.com")
        .await;
    // Something runs in `used`'s default VPC: a network interface in one of its subnets.
    let vpc_id = emu.occupy_default_vpc(&used).await;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write(
        dir.path(),
        &format!(
            r#"apiVersion: landingzone.dev/v1alpha1
kind: SecurityBaseline
metadata: {{name: vpcs}}
spec:
  targets: {{ids: ["{used}", "{unused}"]}}
  regions: [us-east-1]
  defaultVpcs: DeleteWhenUnused
"#
        ),
    );
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let r = report(&run, "SecurityBaseline", "vpcs")
        .result
        .as_ref()
        .unwrap();
    let Readiness::NotReady { reason, message } = &r.ready else {
        panic!(
            "a VPC in use keeps the baseline from complying: {:?}",
            r.ready
        )
    };
    assert_eq!(*reason, "NonCompliant");
    assert!(
        message.contains(&used) && message.contains("1 network interface(s): left in place"),
        "{message}"
    );
    assert_eq!(
        emu.default_vpcs(&used, "us-east-1").await,
        vec![vpc_id],
        "the VPC in use is never touched"
    );
    let s = status(&state, "vpcs");
    assert_eq!(s["compliantCount"], 1, "{s:#}");
    // The VPC left in place is drift the pass did not correct: it stays in status.drift.
    assert_eq!(s["driftCount"], 1, "{s:#}");
    assert_eq!(s["drift"][0]["field"], "defaultVpcs[us-east-1]", "{s:#}");
    let gone = emu.default_vpcs(&unused, "us-east-1").await;
    assert!(
        gone.is_empty(),
        "the unused one is deleted (gateway, subnets, then the VPC)"
    );

    // AWS Config refuses a bucket whose policy does not admit it (the realism layer evaluates the
    // policy as AWS Config's page lists it; here, AWS's statements copied from another
    // Organization): a condition that says so.
    let s3 = aws_sdk_s3::Client::new(&emu.sdk_config_via(&emu.endpoint, 2).await);
    s3.create_bucket()
        .bucket("not-for-config")
        .send()
        .await
        .unwrap();
    let elsewhere = landing_zone_operator::reconcile::security_baseline::plan::config_bucket_policy(
        "aws",
        "not-for-config",
        "o-someoneelse",
    );
    s3.put_bucket_policy()
        .bucket("not-for-config")
        .policy(elsewhere.to_string())
        .send()
        .await
        .unwrap();
    write(
        dir.path(),
        &format!(
            r#"apiVersion: landingzone.dev/v1alpha1
kind: SecurityBaseline
metadata: {{name: vpcs}}
spec:
  targets: {{ids: ["{unused}"]}}
  regions: [us-east-1]
  config: {{deliveryBucket: {{name: not-for-config}}}}
"#
        ),
    );
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let err = report(&run, "SecurityBaseline", "vpcs")
        .result
        .as_ref()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("InsufficientDeliveryPolicyException")
            && text.contains("not-for-config")
            && text.contains(&unused),
        "{text}"
    );
}

#[tokio::test]
async fn two_baselines_that_disagree_on_a_control_write_neither_and_say_so() {
    let emu = Emulator::start().await;
    let shared = emu
        .create_account_directly("shared", "aws-shared@example.com")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write(
        dir.path(),
        &format!(
            r#"apiVersion: landingzone.dev/v1alpha1
kind: SecurityBaseline
metadata: {{name: platform}}
spec:
  targets: {{root: true}}
  regions: [us-east-1]
  s3BlockPublicAccess: true
  ebsDefaultEncryption: {{enabled: true}}
---
apiVersion: landingzone.dev/v1alpha1
kind: SecurityBaseline
metadata: {{name: team}}
spec:
  targets: {{ids: ["{shared}"]}}
  regions: [us-east-1]
  ebsDefaultEncryption: {{enabled: true, kmsKeyId: alias/team}}
"#
        ),
    );
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    for (me, other) in [("platform", "team"), ("team", "platform")] {
        let r = report(&run, "SecurityBaseline", me)
            .result
            .as_ref()
            .unwrap();
        let Readiness::NotReady { reason, message } = &r.ready else {
            panic!("{me}: {:?}", r.ready)
        };
        assert_eq!(*reason, "BaselineConflict", "{me}");
        assert!(
            message.contains(&format!(
                "ebsDefaultEncryption with SecurityBaseline {other}"
            )),
            "{me}: {message}"
        );
        assert!(
            !r.actions.iter().any(|a| a.contains("EBS")),
            "{me} writes no EBS setting: {:?}",
            r.actions
        );
    }
    // What they agree on (only one governs Block Public Access) is applied.
    assert_eq!(bpa(&emu, &shared).await, Some([true; 4]));
    let ec2 = aws_sdk_ec2::Client::new(&emu.member_sdk_config(&shared).await);
    let enc = ec2.get_ebs_encryption_by_default().send().await.unwrap();
    assert_eq!(
        enc.ebs_encryption_by_default(),
        Some(false),
        "nothing written for the conflicted control"
    );
}

#[tokio::test]
async fn observe_changes_nothing_coverage_names_the_unreached_and_delete_puts_settings_back() {
    let emu = Emulator::start().await;
    let a = emu.create_account_directly("a", "aws-a@example.com").await;
    let b = emu.create_account_directly("b", "aws-b@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let spec = |policy: &str| {
        format!(
            "apiVersion: landingzone.dev/v1alpha1\nkind: SecurityBaseline\nmetadata: {{name: one}}\nspec:\n  targets: {{ids: [\"{a}\"]}}\n  regions: [us-east-1]\n  s3BlockPublicAccess: true\n  ebsDefaultEncryption: {{enabled: true}}\n  instanceMetadataV2Default: true\n  {policy}\n"
        )
    };
    write(dir.path(), &spec("managementPolicy: Observe"));
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let r = report(&run, "SecurityBaseline", "one")
        .result
        .as_ref()
        .unwrap();
    let Readiness::NotReady { reason, message } = &r.ready else {
        panic!("{:?}", r.ready)
    };
    assert_eq!(*reason, "WouldChange", "{message}");
    assert_eq!((r.writes, r.remaining.len()), (0, 3), "{:?}", r.remaining);
    assert_eq!(bpa(&emu, &a).await, None, "Observe writes nothing");
    let s = status(&state, "one");
    assert_eq!(
        s["coverage"],
        serde_json::json!([b]),
        "b is reached by no baseline: {s:#}"
    );

    write(dir.path(), &spec("deletionPolicy: Delete"));
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let r = report(&run, "SecurityBaseline", "one")
        .result
        .as_ref()
        .unwrap();
    assert!(matches!(r.ready, Readiness::Ready { .. }), "{:?}", r.ready);
    assert_eq!(bpa(&emu, &a).await, Some([true; 4]));
    let wire = emu.wire.as_ref().unwrap();
    assert_eq!(
        wire.imds_tokens(&a, "us-east-1").as_deref(),
        Some("required")
    );

    // Removed from the directory and pruned: Delete turns off what it turned on.
    std::fs::remove_file(dir.path().join("lz.yaml")).unwrap();
    let run = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert!(!run.failed(), "{:?}", run.deletions);
    assert_eq!(bpa(&emu, &a).await, None);
    let ec2 = aws_sdk_ec2::Client::new(&emu.member_sdk_config(&a).await);
    let enc = ec2.get_ebs_encryption_by_default().send().await.unwrap();
    assert_eq!(enc.ebs_encryption_by_default(), Some(false));
    assert_eq!(wire.imds_tokens(&a, "us-east-1"), None);
}

#[tokio::test]
async fn an_account_that_names_its_own_security_contact_keeps_it_and_nothing_flip_flops() {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write(
        dir.path(),
        r#"apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: own}
spec:
  accountName: own
  email: aws-own@example.com
  alternateContacts:
    security: {name: Own team, title: Security, email: own-security@example.com, phoneNumber: "+1 555 0101"}
---
apiVersion: landingzone.dev/v1alpha1
kind: SecurityBaseline
metadata: {name: cis}
spec:
  targets: {root: true}
  s3BlockPublicAccess: true
  securityContact: {name: Security team, title: Security, email: security@example.com, phoneNumber: "+1 555 0100"}
"#,
    );
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let own = report(&first, "AwsAccount", "own").id.clone().unwrap();
    let r = report(&first, "SecurityBaseline", "cis")
        .result
        .as_ref()
        .unwrap();
    let Readiness::NotReady { reason, message } = &r.ready else {
        panic!("{:?}", r.ready)
    };
    assert_eq!(*reason, "BaselineConflict");
    assert!(
        message.contains("securityContact with AwsAccount own"),
        "{message}"
    );
    assert_eq!(
        aws_sdk_account_contact(&emu, &own).await.as_deref(),
        Some("own-security@example.com"),
        "the account's own contact stays"
    );
    assert_eq!(bpa(&emu, &own).await, Some([true; 4]), "the rest applies");
    // Neither writes the contact again: no two resources overwriting each other.
    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let writes: usize = second
        .reports
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .map(|p| p.writes)
        .sum();
    assert_eq!(writes, 0, "{:?}", second.reports);
}
