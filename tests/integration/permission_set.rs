//! PermissionSet through the realism layer, which answers IAM Identity Center as AWS does where the
//! emulator does not: assignment and provisioning requests IN_PROGRESS then SUCCEEDED or FAILED
//! with a reason, one assignment however often it is requested, the outstanding-request cap,
//! ConflictException on deleting a set still assigned, and the tag and boundary calls.

use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use landing_zone_tests::proxy::{AwsProxy, IdentityCenterModel};
use landing_zone_tests::{Emulator, apply_waiting, report};
use std::time::Duration;

const LANDING_ZONE: &str = "apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads}
---
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: app-dev}
spec:
  accountName: app-dev
  email: aws-app-dev@example.com
  organizationalUnitRef: {name: workloads}
  baseline: false
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: developer}
spec:
  name: Developer
  description: Build and run workloads
  sessionDuration: PT8H
  managedPolicyArns: [arn:aws:iam::aws:policy/PowerUserAccess]
  inlinePolicy: '{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Deny\", \"Action\": \"aws-portal:*\", \"Resource\": \"*\"}]}'
  permissionsBoundary: {managedPolicyArn: arn:aws:iam::aws:policy/PowerUserAccess}
  tags: {owner: platform-team}
  deletionPolicy: Delete
  assignments:
    - group: developers
      organizationalUnitRefs: [{name: workloads}]
";

pub(crate) fn sso(endpoint: &str) -> aws_sdk_ssoadmin::Client {
    aws_sdk_ssoadmin::Client::from_conf(
        aws_sdk_ssoadmin::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            // A test sees each answer as it is, not the SDK's retries of it.
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The emulator with Identity Center answered as AWS does, and the group the spec names.
async fn setup() -> (Emulator, String, String) {
    let emu = Emulator::start().await;
    wire(&emu).update_realism(|r| {
        r.identity_center = Some(IdentityCenterModel {
            duration: Duration::from_millis(600),
            ..Default::default()
        })
    });
    let s = sso(&emu.endpoint);
    let inst = s.list_instances().send().await.unwrap().instances()[0].clone();
    let store = aws_sdk_identitystore::Client::from_conf(
        aws_sdk_identitystore::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&emu.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let group = store
        .create_group()
        .identity_store_id(inst.identity_store_id().unwrap())
        .display_name("developers")
        .send()
        .await
        .unwrap()
        .group_id()
        .to_string();
    (emu, inst.instance_arn().unwrap().to_string(), group)
}

fn wire(emu: &Emulator) -> &AwsProxy {
    emu.wire.as_ref().unwrap()
}

fn dir_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), yaml).unwrap();
    dir
}

async fn apply(emu: &Emulator, dir: &std::path::Path) -> landing_zone_operator::cli::RunResult {
    apply_waiting(
        emu.ports().await,
        dir,
        &dir.join("state.json"),
        false,
        Duration::from_secs(60),
    )
    .await
}

/// Through the layer, so requests whose time has come have taken effect.
async fn assigned(emu: &Emulator, instance: &str, ps: &str, account: &str) -> Vec<String> {
    sso(&wire(emu).endpoint)
        .list_account_assignments()
        .instance_arn(instance)
        .account_id(account)
        .permission_set_arn(ps)
        .send()
        .await
        .unwrap()
        .account_assignments()
        .iter()
        .map(|a| a.principal_id().unwrap().to_string())
        .collect()
}

fn status(dir: &std::path::Path) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    doc["resources"]["PermissionSet/developer"]["status"].clone()
}

#[tokio::test]
async fn ou_wide_assignments_follow_accounts_and_requests_are_followed_to_the_end() {
    let (emu, instance, group) = setup().await;
    let dir = dir_with(LANDING_ZONE);
    let first = apply(&emu, dir.path()).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let dev = report(&first, "AwsAccount", "app-dev").id.clone().unwrap();
    let ps = report(&first, "PermissionSet", "developer")
        .id
        .clone()
        .unwrap();
    let st = status(dir.path());
    assert_eq!(
        assigned(&emu, &instance, &ps, &dev).await,
        vec![group.clone()],
        "{st} {:?}",
        first.reports
    );
    assert_eq!(st["assignments"][0]["state"], "Assigned", "{st}");
    assert_eq!(st["assignedCount"], 1);
    assert!(
        wire(&emu).count("DescribeAccountAssignmentCreationStatus") >= 1,
        "the request was followed"
    );

    // In sync: nothing written; the reads do not depend on the number of accounts.
    wire(&emu).reset_counts();
    let second = apply(&emu, dir.path()).await;
    assert!(!second.failed(), "{:?}", second.reports);
    assert_eq!(
        second.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        second.metrics.aws_call_counts()
    );
    assert_eq!(
        wire(&emu).count("ListAccountAssignments"),
        0,
        "no read per account"
    );

    // A second account created in the OU gets the assignment; the first, moved out, loses it.
    let more = LANDING_ZONE.to_string()
        + "---\napiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: app-prod}\nspec:\n  accountName: app-prod\n  email: aws-app-prod@example.com\n  organizationalUnitRef: {name: workloads}\n  baseline: false\n";
    let more = more.replace(
        "  email: aws-app-dev@example.com\n  organizationalUnitRef: {name: workloads}\n",
        "  email: aws-app-dev@example.com\n",
    );
    std::fs::write(dir.path().join("lz.yaml"), &more).unwrap();
    let third = apply(&emu, dir.path()).await;
    assert!(!third.failed(), "{:?}", third.reports);
    let prod = report(&third, "AwsAccount", "app-prod").id.clone().unwrap();
    // The move and the assignment happen in one apply; the next pass sees the account gone.
    let fourth = apply(&emu, dir.path()).await;
    assert!(!fourth.failed(), "{:?}", fourth.reports);
    assert_eq!(
        assigned(&emu, &instance, &ps, &prod).await,
        vec![group.clone()]
    );
    assert!(
        assigned(&emu, &instance, &ps, &dev).await.is_empty(),
        "moved out of the OU: removed"
    );

    // Removed by hand: restored.
    sso(&wire(&emu).endpoint)
        .delete_account_assignment()
        .instance_arn(&instance)
        .permission_set_arn(&ps)
        .target_id(&prod)
        .target_type(TargetType::AwsAccount)
        .principal_type(PrincipalType::Group)
        .principal_id(&group)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(assigned(&emu, &instance, &ps, &prod).await.is_empty());
    let fifth = apply(&emu, dir.path()).await;
    assert!(!fifth.failed(), "{:?}", fifth.reports);
    assert_eq!(
        assigned(&emu, &instance, &ps, &prod).await,
        vec![group.clone()]
    );

    // Deleted with deletionPolicy Delete: assignments first, then the set (AWS refuses otherwise).
    std::fs::write(dir.path().join("lz.yaml"), more.split("---\napiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet").next().unwrap().to_string() + &more[more.find("---\napiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: app-prod}").unwrap()..]).unwrap();
    let mut gone = false;
    for _ in 0..10 {
        let run = apply_waiting(
            emu.ports().await,
            dir.path(),
            &dir.path().join("state.json"),
            true,
            Duration::from_secs(30),
        )
        .await;
        let sets = sso(&emu.endpoint)
            .list_permission_sets()
            .instance_arn(&instance)
            .send()
            .await
            .unwrap();
        if sets.permission_sets().is_empty() {
            gone = true;
            break;
        }
        assert!(
            run.deletions
                .iter()
                .all(|r| r.result.as_ref().err().is_none_or(|e| e.is_retryable())),
            "{:?}",
            run.deletions
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(gone, "the permission set was not deleted");
}

#[tokio::test]
async fn a_failed_assignment_shows_why_and_is_retried_once_the_cause_is_fixed() {
    let (emu, instance, group) = setup().await;
    let dir = dir_with(LANDING_ZONE);
    let first = apply(&emu, dir.path()).await;
    let dev = report(&first, "AwsAccount", "app-dev").id.clone().unwrap();
    let ps = report(&first, "PermissionSet", "developer")
        .id
        .clone()
        .unwrap();
    // Removed by hand, and the account cannot take it now (its role quota is full).
    sso(&wire(&emu).endpoint)
        .delete_account_assignment()
        .instance_arn(&instance)
        .permission_set_arn(&ps)
        .target_id(&dev)
        .target_type(TargetType::AwsAccount)
        .principal_type(PrincipalType::Group)
        .principal_id(&group)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reason = "Received a 409 status error: the IAM role quota in the account is reached";
    wire(&emu).update_realism(|r| {
        r.identity_center
            .as_mut()
            .unwrap()
            .failures
            .insert(dev.clone(), reason.into());
    });
    let run = apply(&emu, dir.path()).await;
    let _ = apply(&emu, dir.path()).await;
    let st = status(dir.path());
    let row = &st["assignments"][0];
    assert_eq!(row["state"], "Failed", "{st}");
    assert_eq!(row["reason"], reason);
    let ready = &report(&run, "PermissionSet", "developer").result;
    assert!(format!("{ready:?}").contains("AssignmentFailed") || row["state"] == "Failed");

    // The cause fixed: the next reconcile requests it again, and it succeeds.
    wire(&emu).update_realism(|r| {
        r.identity_center.as_mut().unwrap().failures.clear();
    });
    let fixed = apply(&emu, dir.path()).await;
    assert!(!fixed.failed(), "{:?}", fixed.reports);
    assert_eq!(status(dir.path())["assignments"][0]["state"], "Assigned");
    assert_eq!(assigned(&emu, &instance, &ps, &dev).await, vec![group]);
}

/// The layer itself, through the SDK.
#[tokio::test]
async fn the_realism_layer_answers_identity_center_as_aws_does() {
    use aws_sdk_ssoadmin::error::ProvideErrorMetadata;
    let (emu, instance, group) = setup().await;
    wire(&emu).update_realism(|r| {
        let m = r.identity_center.as_mut().unwrap();
        m.max_outstanding = 2;
        // Outstanding until released below, however slow the calls before the third one are.
        m.duration = Duration::from_secs(3600);
    });
    let s = sso(&wire(&emu).endpoint);
    let account = emu.create_account_directly("x", "x@example.com").await;
    let ps = s
        .create_permission_set()
        .instance_arn(&instance)
        .name("P")
        .tags(
            aws_sdk_ssoadmin::types::Tag::builder()
                .key("a")
                .value("b")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .permission_set()
        .unwrap()
        .permission_set_arn()
        .unwrap()
        .to_string();
    let tags = s
        .list_tags_for_resource()
        .instance_arn(&instance)
        .resource_arn(&ps)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "a");
    let assign = || {
        s.create_account_assignment()
            .instance_arn(&instance)
            .permission_set_arn(&ps)
            .target_id(&account)
            .target_type(TargetType::AwsAccount)
            .principal_type(PrincipalType::Group)
            .principal_id(&group)
            .send()
    };
    let first = assign().await.unwrap();
    let id = first
        .account_assignment_creation_status()
        .unwrap()
        .request_id()
        .unwrap()
        .to_string();
    assert_eq!(
        first
            .account_assignment_creation_status()
            .unwrap()
            .status()
            .unwrap()
            .as_str(),
        "IN_PROGRESS"
    );
    assign().await.unwrap();
    // A third while two are outstanding: refused (the SDK's retries give up within the window).
    let e = assign().await.unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"));
    // The requests end.
    wire(&emu).update_realism(|r| r.identity_center.as_mut().unwrap().duration = Duration::ZERO);
    let done = s
        .describe_account_assignment_creation_status()
        .instance_arn(&instance)
        .account_assignment_creation_request_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.account_assignment_creation_status()
            .unwrap()
            .status()
            .unwrap()
            .as_str(),
        "SUCCEEDED"
    );
    assert_eq!(
        assigned(&emu, &instance, &ps, &account).await.len(),
        1,
        "requested twice, stored once"
    );
    let e = s
        .delete_permission_set()
        .instance_arn(&instance)
        .permission_set_arn(&ps)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConflictException"));
}

#[tokio::test]
async fn identity_center_groups_keep_exactly_their_members_and_report_missing_users() {
    let (emu, instance, _) = setup().await;
    let s = sso(&emu.endpoint);
    let store_id = s.list_instances().send().await.unwrap().instances()[0]
        .identity_store_id()
        .unwrap()
        .to_string();
    let store = aws_sdk_identitystore::Client::from_conf(
        aws_sdk_identitystore::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&emu.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let user = |name: &'static str| {
        store
            .create_user()
            .identity_store_id(&store_id)
            .user_name(name)
            .display_name(name)
            .name(
                aws_sdk_identitystore::types::Name::builder()
                    .given_name(name)
                    .family_name("x")
                    .build(),
            )
            .send()
    };
    user("alice").await.unwrap();
    let mallory = user("mallory").await.unwrap().user_id().to_string();
    let dir = dir_with(
        "apiVersion: landingzone.dev/v1alpha1\nkind: IdentityCenterGroup\nmetadata: {name: platform-admins}\nspec:\n  displayName: platform-admins\n  description: Runs the landing zone\n  members: [alice, ghost]\n",
    );
    let first = apply(&emu, dir.path()).await;
    let r = report(&first, "IdentityCenterGroup", "platform-admins");
    let p = r.result.as_ref().unwrap();
    assert!(
        matches!(&p.ready, landing_zone_operator::reconcile::Readiness::NotReady { reason: "UsersNotFound", message } if message.contains("ghost")),
        "{:?}",
        p.ready
    );
    let group = r.id.clone().unwrap();
    // Mallory added by hand is removed; alice stays.
    store
        .create_group_membership()
        .identity_store_id(&store_id)
        .group_id(&group)
        .member_id(aws_sdk_identitystore::types::MemberId::UserId(
            mallory.clone(),
        ))
        .send()
        .await
        .unwrap();
    let second = apply(&emu, dir.path()).await;
    assert!(!second.failed(), "{:?}", second.reports);
    let members = store
        .list_group_memberships()
        .identity_store_id(&store_id)
        .group_id(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(members.group_memberships().len(), 1, "only alice");
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(
        st["resources"]["IdentityCenterGroup/platform-admins"]["status"]["missingUsers"],
        serde_json::json!(["ghost"])
    );
    let _ = instance;
}

/// Twelve accounts at once: the operator sends at most ten assignment requests per reconcile, so
/// Identity Center's cap on outstanding requests never refuses one.
#[tokio::test]
async fn assignment_requests_stay_under_the_outstanding_cap() {
    let (emu, instance, group) = setup().await;
    wire(&emu).update_realism(|r| {
        let m = r.identity_center.as_mut().unwrap();
        m.max_outstanding = 10;
        m.duration = Duration::from_secs(2);
    });
    let mut ids = Vec::new();
    for i in 0..12 {
        let out = emu
            .org_client()
            .create_account()
            .account_name(format!("app-{i}"))
            .email(format!("aws-app-{i}@example.com"))
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
    let yaml = format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {{name: developer}}\nspec:\n  name: Developer\n  assignments:\n  - group: developers\n    accountIds: [{}]\n",
        ids.iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let dir = dir_with(&yaml);
    let run = apply(&emu, dir.path()).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let ps = report(&run, "PermissionSet", "developer")
        .id
        .clone()
        .unwrap();
    assert_eq!(
        wire(&emu).count("CreateAccountAssignment"),
        12,
        "none refused and retried"
    );
    for id in &ids {
        assert_eq!(
            assigned(&emu, &instance, &ps, id).await,
            vec![group.clone()],
            "{id}"
        );
    }
    assert_eq!(status(dir.path())["assignedCount"], 12);
}

/// Accounts created asynchronously (as in AWS) are listed only after the permission set's first
/// reconcile in the apply: once they are, the apply reconciles it again, so one apply leaves the
/// new accounts with their OU-wide assignment.
#[tokio::test]
async fn one_apply_covers_accounts_that_aws_lists_only_after_creating_them() {
    let (emu, instance, group) = setup().await;
    wire(&emu).update_realism(|r| {
        r.create_account = Some(landing_zone_tests::proxy::CreateAccountModel {
            duration: Duration::from_secs(2),
            visible_after: Duration::from_secs(1),
            assumable_after: Duration::from_secs(1),
            ..Default::default()
        })
    });
    let dir = dir_with(LANDING_ZONE);
    let run = apply(&emu, dir.path()).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let dev = report(&run, "AwsAccount", "app-dev").id.clone().unwrap();
    let ps = report(&run, "PermissionSet", "developer")
        .id
        .clone()
        .unwrap();
    assert_eq!(assigned(&emu, &instance, &ps, &dev).await, vec![group]);
    assert_eq!(status(dir.path())["assignedCount"], 1);
}
