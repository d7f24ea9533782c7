//! The account baseline (alias, password policy, contacts, security report) and IdentityGroup,
//! against an emulator with AWS managed policies. What the emulator cannot show — the root user's
//! MFA, access keys and password, a globally taken alias — the realism layer answers at the wire.

use landing_zone_tests::proxy::{AwsProxy, Realism};
use landing_zone_tests::{Emulator, report, run_dir};

const LZ: &str = r#"apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: dev}
spec:
  accountName: dev
  email: aws-dev@example.com
  alias: example-dev
  alternateContacts:
    security: {name: Sec Team, title: Security, email: security@example.com, phoneNumber: "+1 555 0100"}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityGroup
metadata: {name: dev-developers}
spec:
  groupName: developers
  accountRef: {name: dev}
  deletionPolicy: Delete
  managedPolicyArns: [arn:aws:iam::aws:policy/PowerUserAccess]
  inlinePolicies:
  - name: deny-billing
    document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["aws-portal:*"], "Resource": "*"}]}'
  members: [alice, bob]
  createMissingUsers: true
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityGroup
metadata: {name: sysadmins}
spec:
  groupName: sysadmins
  managedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]
"#;

fn state_doc(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn accounts_are_baselined_groups_are_isolated_and_drift_is_corrected() {
    let emu = Emulator::with_managed_policies().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lz.yaml");
    std::fs::write(&file, LZ).unwrap();
    let state = dir.path().join("state.json");
    let first = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let dev = report(&first, "AwsAccount", "dev").id.clone().unwrap();
    let actions = &report(&first, "AwsAccount", "dev")
        .result
        .as_ref()
        .unwrap()
        .actions;
    assert!(
        actions.contains(&"set the security contact".to_string()),
        "{actions:?}"
    );

    // Inside the member account, through its access role.
    let iam = emu.iam_in(&dev).await;
    let aliases = iam.list_account_aliases().send().await.unwrap();
    assert_eq!(aliases.account_aliases(), ["example-dev"]);
    let policy = iam.get_account_password_policy().send().await.unwrap();
    let policy = policy.password_policy().unwrap();
    assert_eq!(
        (
            policy.minimum_password_length(),
            policy.password_reuse_prevention()
        ),
        (Some(14), Some(24))
    );
    assert!(
        policy.require_symbols()
            && policy.require_numbers()
            && policy.require_uppercase_characters()
            && policy.require_lowercase_characters()
    );
    let group = iam
        .get_group()
        .group_name("developers")
        .send()
        .await
        .unwrap();
    let mut members: Vec<&str> = group.users().iter().map(|u| u.user_name()).collect();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let keys = iam
        .list_access_keys()
        .user_name("alice")
        .send()
        .await
        .unwrap();
    assert!(
        keys.access_key_metadata().is_empty(),
        "users are created without credentials"
    );
    // Isolation: the member's group is not in the management account.
    assert!(
        emu.iam_management()
            .get_group()
            .group_name("developers")
            .send()
            .await
            .is_err()
    );
    assert!(
        emu.iam_management()
            .get_group()
            .group_name("sysadmins")
            .send()
            .await
            .is_ok()
    );
    // The security report (the emulator's root has no MFA).
    let doc = state_doc(&state);
    let status = &doc["resources"]["AwsAccount/dev"]["status"];
    assert_eq!(status["security"]["rootMfaEnabled"], false);
    assert_eq!(status["security"]["rootAccessKeysPresent"], false);
    assert_eq!(status["security"]["passwordPolicyCompliant"], true);
    let finding = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "SecurityFindings")
        .unwrap()
        .clone();
    // The emulator reports no root password (as AWS does for accounts made by CreateAccount):
    // no MFA is then no finding, and the condition says why.
    assert_eq!(status["security"]["rootPasswordPresent"], false);
    assert_eq!(finding["status"], "False");
    assert!(
        finding["message"].as_str().unwrap().contains("no password"),
        "{finding}"
    );

    // A second apply: zero writes, and one AssumeRole per member account (the session is cached).
    let second = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        second.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        second.metrics.aws_call_counts()
    );
    let calls = second.metrics.aws_call_counts();
    assert_eq!(
        calls[&("sts".into(), "AssumeRole".into())].1,
        1,
        "{calls:?}"
    );

    // Drift out of band: a policy detached, a stranger added, the password policy weakened.
    iam.detach_group_policy()
        .group_name("developers")
        .policy_arn("arn:aws:iam::aws:policy/PowerUserAccess")
        .send()
        .await
        .unwrap();
    iam.create_user().user_name("mallory").send().await.unwrap();
    iam.add_user_to_group()
        .group_name("developers")
        .user_name("mallory")
        .send()
        .await
        .unwrap();
    iam.update_account_password_policy()
        .minimum_password_length(8)
        .send()
        .await
        .unwrap();
    let fix = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    let group_drift: Vec<String> = report(&fix, "IdentityGroup", "dev-developers")
        .result
        .as_ref()
        .unwrap()
        .drift
        .iter()
        .map(|d| d.field.clone())
        .collect();
    assert_eq!(group_drift, ["managedPolicyArns", "members"]);
    let acct_drift: Vec<String> = report(&fix, "AwsAccount", "dev")
        .result
        .as_ref()
        .unwrap()
        .drift
        .iter()
        .map(|d| d.field.clone())
        .collect();
    assert!(
        acct_drift.contains(&"passwordPolicy.minimumPasswordLength".to_string()),
        "{acct_drift:?}"
    );
    let group = iam
        .get_group()
        .group_name("developers")
        .send()
        .await
        .unwrap();
    assert!(
        group.users().iter().all(|u| u.user_name() != "mallory"),
        "membership is exclusive"
    );
    let attached = iam
        .list_attached_group_policies()
        .group_name("developers")
        .send()
        .await
        .unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
    assert_eq!(
        iam.get_account_password_policy()
            .send()
            .await
            .unwrap()
            .password_policy()
            .unwrap()
            .minimum_password_length(),
        Some(14)
    );
    let again = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(again.metrics.aws_calls_of_kind("write"), 0);

    // Delete: memberships and policies go first, then the group.
    std::fs::write(
        &file,
        LZ.split("---").take(1).collect::<Vec<_>>().join("---"),
    )
    .unwrap();
    let pruned = run_dir(emu.ports().await, dir.path(), &state, true, true).await;
    assert!(!pruned.failed(), "{:?}", pruned.deletions);
    assert!(
        iam.get_group()
            .group_name("developers")
            .send()
            .await
            .is_err(),
        "deleted"
    );
    assert!(
        iam.get_user().user_name("alice").send().await.is_ok(),
        "users are kept"
    );
    assert!(
        emu.iam_management()
            .get_group()
            .group_name("sysadmins")
            .send()
            .await
            .is_ok(),
        "Retain by default"
    );
}

#[tokio::test]
async fn root_keys_taken_aliases_and_roles_not_yet_assumable_are_reported_plainly() {
    // Emulator gaps (root MFA, keys and password always absent; aliases never taken; every role
    // assumable at once) answered at the wire by the realism layer, as AWS answers them.
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        root_user: Some((true, true, true)),
        taken_aliases: ["example-dev".to_string()].into(),
        ..Default::default()
    });
    let ports = emu.ports_via(&proxy.endpoint, 2).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), LZ.split("---").next().unwrap()).unwrap();
    let state = dir.path().join("state.json");

    let run = run_dir(ports.clone(), dir.path(), &state, true, false).await;
    let err = report(&run, "AwsAccount", "dev")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "AliasTaken");
    assert!(err.to_string().contains("choose another"), "{err}");
    let doc = state_doc(&state);
    let status = &doc["resources"]["AwsAccount/dev"]["status"];
    assert_eq!(status["security"]["rootAccessKeysPresent"], true);
    assert_eq!(status["security"]["rootPasswordPresent"], true);
    let finding = |doc: &serde_json::Value| {
        doc["resources"]["AwsAccount/dev"]["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "SecurityFindings")
            .unwrap()
            .clone()
    };
    let f = finding(&doc);
    assert_eq!(
        (f["status"].as_str(), f["reason"].as_str()),
        (Some("True"), Some("RootUserAtRisk"))
    );
    assert!(f["message"].as_str().unwrap().contains("access keys"));

    // No root password (accounts made by CreateAccount have none): missing MFA is no finding.
    proxy.realism(Realism {
        root_user: Some((false, false, false)),
        ..Default::default()
    });
    let run = run_dir(ports.clone(), dir.path(), &state, true, false).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let doc = state_doc(&state);
    assert_eq!(
        doc["resources"]["AwsAccount/dev"]["status"]["security"]["rootPasswordPresent"],
        false
    );
    let f = finding(&doc);
    assert_eq!(f["status"], "False", "{f}");
    assert!(
        f["message"].as_str().unwrap().contains("no password"),
        "{f}"
    );
    // … but a password without MFA is.
    proxy.realism(Realism {
        root_user: Some((false, false, true)),
        ..Default::default()
    });
    run_dir(ports.clone(), dir.path(), &state, true, false).await;
    let f = finding(&state_doc(&state));
    assert_eq!(f["status"], "True", "{f}");
    assert!(f["message"].as_str().unwrap().contains("no MFA"), "{f}");
}

/// One AssumeRole per member account per process, however many accounts: the SDK's identity cache
/// keeps 64 sessions unless told otherwise, and evicting them would mean an AssumeRole per reconcile.
#[tokio::test]
async fn member_sessions_are_kept_for_more_than_64_accounts() {
    let emu = Emulator::start().await;
    let org = emu.org_client();
    let mut ids = Vec::new();
    for i in 0..70 {
        let out = org
            .create_account()
            .account_name(format!("acct-{i}"))
            .email(format!("acct-{i}@example.com"))
            .send()
            .await
            .unwrap();
        ids.push(
            out.create_account_status()
                .unwrap()
                .account_id()
                .unwrap()
                .to_string(),
        );
    }
    let ports = emu.ports().await;
    let assumed = || {
        ports
            .metrics
            .aws_call_counts()
            .get(&("sts".to_string(), "AssumeRole".to_string()))
            .map_or(0, |(_, n)| *n)
    };
    for _round in 0..2 {
        for id in &ids {
            let clients = ports.members.clients(
                Some(id),
                Some("000000000000"),
                "aws",
                "OrganizationAccountAccessRole",
            );
            clients.iam.password_policy().await.unwrap();
        }
    }
    assert_eq!(assumed(), 70, "one AssumeRole per account over two rounds");
}

/// IAM as it behaves: a group or user is NoSuchEntity for a moment after it was created, writes
/// meet IAM's `ConcurrentModification`, and a group in a member account is reached through that
/// account's own `roleName` (the operator's policy allows only that role here).
#[tokio::test]
async fn a_group_in_a_member_account_settles_through_iam_lag_and_its_accounts_role() {
    let emu = Emulator::start().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        assumable_role_names: ["AdminRole".to_string()].into(),
        iam_visibility_lag: std::time::Duration::from_secs(2),
        iam_concurrent_modification: [("developers".to_string(), 1)].into(),
        ..Default::default()
    });
    let lz = r#"apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: team}
spec: {accountName: team, email: aws-team@example.com, roleName: AdminRole}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityGroup
metadata: {name: team-developers}
spec:
  groupName: developers
  accountRef: {name: team}
  inlinePolicies:
  - name: read-only
    document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get*"], "Resource": "*"}]}'
  members: [Carol]
  createMissingUsers: true
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), lz).unwrap();
    let state = dir.path().join("state.json");
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let run = landing_zone_tests::apply_waiting(
        ports,
        dir.path(),
        &state,
        false,
        std::time::Duration::from_secs(60),
    )
    .await;
    landing_zone_tests::assert_readable(&run);
    assert!(!run.failed(), "{:?}", run.reports);
    let account = report(&run, "AwsAccount", "team").id.clone().unwrap();
    let iam = emu.iam_in(&account).await;
    let group = iam
        .get_group()
        .group_name("developers")
        .send()
        .await
        .unwrap();
    assert_eq!(
        group
            .users()
            .iter()
            .map(|u| u.user_name().to_string())
            .collect::<Vec<_>>(),
        vec!["Carol".to_string()]
    );
    // IAM user names ignore case: "carol" in the spec is the same member, no remove-and-add.
    std::fs::write(dir.path().join("lz.yaml"), lz.replace("[Carol]", "[carol]")).unwrap();
    let ports = emu.ports_via(&proxy.endpoint, 3).await;
    let again = run_dir(ports, dir.path(), &state, true, false).await;
    let p = report(&again, "IdentityGroup", "team-developers")
        .result
        .as_ref()
        .unwrap();
    assert_eq!(p.writes, 0, "{p:?}");
}
