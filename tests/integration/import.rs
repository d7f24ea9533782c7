//! `import`: a messy Organization, read back as manifests that `plan` finds in sync (0 changes,
//! 0 drift) and that, switched to Manage, `apply` leaves alone (0 AWS writes).
//!
//! The seed is made partly by this operator from other manifests (names and layout unlike what
//! import writes) and partly by hand, as people do: an account created at the root, a second
//! account of the same name, a weak password policy, a tag added in the console, a policy attached
//! straight to an account and one attached nowhere, and the trail's bucket made beforehand.

use landing_zone_operator::cli::import;
use landing_zone_operator::reconcile::Readiness;
use landing_zone_tests::{Emulator, import_args, run_dir};

const SEED: &str = r#"apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: wl}
spec: {name: Workloads, tags: {cost-center: "1234"}}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: wl-prod}
spec: {name: Prod, parentRef: {name: wl}}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: wl-prod-payments}
spec: {name: Payments, parentRef: {name: wl-prod}}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: sbx}
spec: {name: Sandbox}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: sbx-prod}
spec: {name: Prod, parentRef: {name: sbx}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: pay}
spec:
  accountName: Payments Prod
  email: aws-payments-prod@example.com
  organizationalUnitRef: {name: wl-prod-payments}
  alias: example-payments-prod
  tags: {stage: prod, owner: payments}
  alternateContacts:
    security: {name: Sec Team, title: Security, email: sec@example.com, phoneNumber: "+1 555 0100"}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: play}
spec:
  accountName: playground
  email: aws-playground@example.com
  organizationalUnitRef: {name: sbx-prod}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: sec}
spec:
  accountName: shared-services
  email: aws-shared-a@example.com
  organizationalUnitRef: {name: wl}
  baseline: false
---
apiVersion: landingzone.dev/v1alpha1
kind: Organization
metadata: {name: organization}
spec:
  policyTypes: [ServiceControlPolicy, TagPolicy]
  trustedServices: [cloudtrail.amazonaws.com, guardduty.amazonaws.com]
  delegatedAdministrators:
    - servicePrincipal: guardduty.amazonaws.com
      accountRef: {name: sec}
  rootAccess: {credentialsManagement: true, rootSessions: true}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationPolicy
metadata: {name: deny-leave}
spec:
  type: ServiceControlPolicy
  policyName: deny-leaving
  description: Accounts stay in the Organization
  document: '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"organizations:LeaveOrganization","Resource":"*"}]}'
  targets: {root: true}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationPolicy
metadata: {name: no-iam-users}
spec:
  type: ServiceControlPolicy
  policyName: no-iam-users
  document: '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:CreateUser","Resource":"*"}]}'
  targets: {organizationalUnitRefs: [{name: wl-prod}, {name: sbx}], accountRefs: [{name: play}]}
  tags: {owner: security}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationPolicy
metadata: {name: tags}
spec:
  type: TagPolicy
  policyName: stage-tag
  documentObject:
    tags:
      stage:
        tag_key: {"@@assign": stage}
  targets: {organizationalUnitRefs: [{name: wl}]}
---
apiVersion: landingzone.dev/v1alpha1
kind: Budget
metadata: {name: org}
spec:
  budgetName: Organization monthly
  limit: {amount: "1000"}
  notifications:
    - {notificationType: ACTUAL, threshold: 80, subscribers: {emails: [finops@example.com, cto@example.com]}}
    - {notificationType: FORECASTED, threshold: 100, subscribers: {emails: [finops@example.com]}}
---
apiVersion: landingzone.dev/v1alpha1
kind: Budget
metadata: {name: pay-budget}
spec:
  budgetName: payments-prod
  accountRef: {name: pay}
  limit: {amount: "300"}
  timeUnit: QUARTERLY
  notifications:
    - {notificationType: ACTUAL, threshold: 250, thresholdType: ABSOLUTE_VALUE, subscribers: {emails: [payments@example.com]}}
---
apiVersion: landingzone.dev/v1alpha1
kind: AuditTrail
metadata: {name: trail}
spec:
  trailName: org-trail
  s3: {bucketName: example-existing-trail-bucket, keyPrefix: logs, create: true}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityGroup
metadata: {name: admins}
spec:
  groupName: PlatformAdmins
  path: /platform/
  inlinePolicies:
    - name: read-billing
      document: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"aws-portal:View*","Resource":"*"}]}'
  members: [alice, bob]
  createMissingUsers: true
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityCenterGroup
metadata: {name: devs}
spec:
  displayName: Developers
  description: Everyone who ships code
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: dev}
spec:
  name: Developer
  description: Build and run workloads
  sessionDuration: PT8H
  managedPolicyArns: [arn:aws:iam::aws:policy/PowerUserAccess]
  inlinePolicy: '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"aws-portal:*","Resource":"*"}]}'
  tags: {owner: platform}
  assignments:
    - group: Developers
      accountRefs: [{name: pay}, {name: play}]
"#;

/// The emulator with the messy Organization in it.
async fn seed() -> Emulator {
    let emu = Emulator::start().await;
    // The emulator lacks the Budgets subscriber calls; the realism layer answers Budgets as AWS does.
    emu.wire.as_ref().unwrap().update_realism(|r| {
        r.budgets = Some(Default::default());
        // And Identity Center: asynchronous requests, tags and boundaries.
        r.identity_center = Some(landing_zone_tests::proxy::IdentityCenterModel {
            duration: std::time::Duration::from_millis(100),
            ..Default::default()
        });
    });
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("seed.yaml"), SEED).unwrap();
    let applied = run_dir(
        emu.ports().await,
        seed.path(),
        &seed.path().join("state.json"),
        true,
        false,
    )
    .await;
    assert!(!applied.failed(), "the seed applies: {:?}", applied.reports);

    // By hand, as in the console.
    let orgs = emu.org_client_via(emu.wire_endpoint());
    let mut ids = std::collections::BTreeMap::new();
    for (name, email) in [
        ("legacy", "aws-legacy@example.com"),
        ("shared-services", "aws-shared-b@example.com"),
    ] {
        let req = orgs
            .create_account()
            .account_name(name)
            .email(email)
            .send()
            .await
            .unwrap();
        let status = orgs
            .describe_create_account_status()
            .create_account_request_id(req.create_account_status().unwrap().id().unwrap())
            .send()
            .await
            .unwrap();
        ids.insert(
            name,
            status
                .create_account_status()
                .unwrap()
                .account_id()
                .unwrap()
                .to_string(),
        );
    }
    let legacy = &ids["legacy"];
    let legacy_iam = emu.iam_in(legacy).await;
    legacy_iam
        .update_account_password_policy()
        .minimum_password_length(8)
        .send()
        .await
        .unwrap();
    // A group inside a member account, for `--iam-groups`.
    legacy_iam
        .create_group()
        .group_name("ops")
        .path("/")
        .send()
        .await
        .unwrap();
    legacy_iam
        .put_group_policy()
        .group_name("ops")
        .policy_name("read")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let roots = orgs.list_roots().send().await.unwrap();
    let root = roots.roots()[0].id().unwrap();
    let sandbox = orgs
        .list_organizational_units_for_parent()
        .parent_id(root)
        .send()
        .await
        .unwrap()
        .organizational_units()
        .iter()
        .find(|o| o.name() == Some("Sandbox"))
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    orgs.tag_resource()
        .resource_id(&sandbox)
        .tags(
            aws_sdk_organizations::types::Tag::builder()
                .key("team")
                .value("sandbox")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let scp = orgs
        .create_policy()
        .name("break-glass")
        .description("kept for emergencies")
        .r#type(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .content(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let attached = orgs
        .create_policy()
        .name("legacy-only")
        .description("")
        .r#type(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .content(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    orgs.attach_policy()
        .policy_id(
            attached
                .policy()
                .unwrap()
                .policy_summary()
                .unwrap()
                .id()
                .unwrap(),
        )
        .target_id(legacy)
        .send()
        .await
        .unwrap();
    assert!(scp.policy().is_some());
    emu
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_organization_plans_in_sync_and_applies_with_no_writes() {
    let emu = seed().await;
    let work = tempfile::tempdir().unwrap();

    // Observe (the default): plan shows no change and no drift.
    let out = work.path().join("observe");
    let summary = import(&import_args(&out, false), emu.ports().await)
        .await
        .expect("import");
    for expected in [
        "OrganizationalUnit        5",
        "AwsAccount                5",
        "OrganizationPolicy        4",
        "Budget                    2",
        "AuditTrail                1",
        "IdentityGroup             1",
        "IdentityCenterGroup       1",
        "PermissionSet             1",
        "Organization              1",
        // Two OUs named Prod under different parents, two accounts of one name, one at the root.
        "2 OUs are named \"Prod\": imported as",
        "sandbox-prod (",
        "workloads-prod (",
        "2 accounts are named \"shared-services\"",
        "account legacy (",
        "sits at the root",
        "account legacy's IAM password policy is weaker",
        "has no IAM password policy",
        "policy break-glass (",
        "attached nowhere",
        "AWS-managed policies (FullAWSAccess)",
        "the management account",
    ] {
        assert!(
            summary.contains(expected),
            "summary lacks {expected:?}:\n{summary}"
        );
    }
    if let Ok(keep) = std::env::var("LZ_KEEP_IMPORT") {
        let _ = std::process::Command::new("cp")
            .args(["-r", out.to_str().unwrap(), &keep])
            .status();
    }
    let accounts = std::fs::read_to_string(out.join("20-accounts.yaml")).unwrap();
    assert!(accounts.contains("managementPolicy: Observe"), "{accounts}");
    assert!(!accounts.contains("managementPolicy: Manage"), "{accounts}");
    let ous = std::fs::read_to_string(out.join("10-organizational-units.yaml")).unwrap();
    assert!(
        ous.contains("parentRef"),
        "OUs refer to their parents by name:\n{ous}"
    );
    let policies = std::fs::read_to_string(out.join("60-organization-policies.yaml")).unwrap();
    assert!(
        policies.contains("organizationalUnitRefs") && policies.contains("accountRefs"),
        "{policies}"
    );

    assert!(!summary.contains("Not described exactly"), "{summary}");
    let plan = run_dir(
        emu.ports().await,
        &out,
        &out.with_extension("state.json"),
        false,
        false,
    )
    .await;
    assert!(
        plan.errors.is_empty(),
        "{:?}",
        plan.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(plan.reports.len(), 21, "every imported resource is planned");
    for r in &plan.reports {
        let p = r
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", r.key));
        assert!(
            p.actions.is_empty() && p.drift.is_empty(),
            "{}: changes {:?}, drift {:?}",
            r.key,
            p.actions,
            p.drift
        );
        assert!(
            matches!(p.ready, Readiness::Ready { .. }),
            "{}: {:?}",
            r.key,
            p.ready
        );
    }
    assert_eq!(plan.metrics.aws_calls_of_kind("write"), 0);

    // --manage (and --iam-groups): apply takes everything over and writes nothing.
    let managed = work.path().join("manage");
    let mut args = import_args(&managed, true);
    args.iam_groups = true;
    let summary = import(&args, emu.ports().await)
        .await
        .expect("import --manage");
    assert!(!summary.contains("Not described exactly"), "{summary}");
    let text = std::fs::read_to_string(managed.join("20-accounts.yaml")).unwrap();
    assert!(
        text.contains("managementPolicy: Manage") && !text.contains("Observe"),
        "{text}"
    );
    let apply = run_dir(
        emu.ports().await,
        &managed,
        &managed.with_extension("state.json"),
        true,
        false,
    )
    .await;
    assert!(!apply.failed(), "{:?}", apply.reports);
    for r in &apply.reports {
        let p = r.result.as_ref().unwrap();
        assert!(
            p.actions.is_empty() && p.drift.is_empty(),
            "{}: changes {:?}, drift {:?}",
            r.key,
            p.actions,
            p.drift
        );
    }
    assert_eq!(
        apply.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        apply.metrics.aws_call_counts()
    );

    // Import never overwrites.
    let again = import(&import_args(&out, false), emu.ports().await).await;
    assert!(again.is_err_and(|e| e.contains("is not empty")));
}
