//! The Organization resource: additive by default, removals only when the spec says so, in the
//! order AWS needs; centralized root access through the realism layer (the emulator has none of
//! its calls and refuses trusted access for IAM).

use aws_sdk_iam::error::ProvideErrorMetadata;
use landing_zone_tests::{Emulator, report, run_dir};

const ORG: &str = "apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: audit}
spec:
  accountName: audit
  email: aws-audit@example.com
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
      accountRef: {name: audit}
  rootAccess: {credentialsManagement: true, rootSessions: true}
";

async fn emulator() -> Emulator {
    let emu = Emulator::start().await;
    emu.wire
        .as_ref()
        .unwrap()
        .update_realism(|r| r.root_access = true);
    emu
}

fn dir_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.yaml"), yaml).unwrap();
    dir
}

async fn apply(emu: &Emulator, dir: &std::path::Path) -> landing_zone_operator::cli::RunResult {
    run_dir(emu.ports().await, dir, &dir.join("state.json"), true, false).await
}

fn status(dir: &std::path::Path) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    doc["resources"]["Organization/organization"]["status"].clone()
}

#[tokio::test]
async fn settings_are_made_in_order_and_what_others_add_is_reported_not_removed() {
    let emu = emulator().await;
    let dir = dir_with(ORG);
    let first = apply(&emu, dir.path()).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let audit = report(&first, "AwsAccount", "audit").id.clone().unwrap();
    let actions = &report(&first, "Organization", "organization")
        .result
        .as_ref()
        .unwrap()
        .actions;
    // Trusted access (IAM's too, for root access) before delegated administration and root access.
    let pos = |needle: &str| {
        actions
            .iter()
            .position(|a| a.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {actions:?}"))
    };
    assert!(pos("trusted access for guardduty") < pos("delegated administrator for guardduty"));
    assert!(pos("trusted access for iam.amazonaws.com") < pos("root credentials management"));
    let st = status(dir.path());
    assert_eq!(st["featureSet"], "ALL");
    assert_eq!(
        st["rootAccessFeatures"],
        serde_json::json!(["RootCredentialsManagement", "RootSessions"])
    );
    assert_eq!(
        st["delegatedAdministrators"],
        serde_json::json!([format!("guardduty.amazonaws.com={audit}")])
    );
    assert!(
        st["enabledPolicyTypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "TAG_POLICY"),
        "{st}"
    );

    let second = apply(&emu, dir.path()).await;
    assert_eq!(
        second.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        second.metrics.aws_call_counts()
    );

    // A delegated administrator registered out of band: reported as drift and a Warning-worthy
    // condition, never removed while the list is not exclusive.
    let o = emu.org_client();
    o.enable_aws_service_access()
        .service_principal("macie.amazonaws.com")
        .send()
        .await
        .unwrap();
    o.register_delegated_administrator()
        .service_principal("macie.amazonaws.com")
        .account_id(&audit)
        .send()
        .await
        .unwrap();
    let third = apply(&emu, dir.path()).await;
    let p = report(&third, "Organization", "organization")
        .result
        .as_ref()
        .unwrap();
    assert!(
        matches!(&p.ready, landing_zone_operator::reconcile::Readiness::Ready { reason: "UnexpectedDelegatedAdministrator", message } if message.contains("macie.amazonaws.com")),
        "{:?}",
        p.ready
    );
    assert!(
        p.drift
            .iter()
            .any(|d| d.field == format!("delegatedAdministrators.macie.amazonaws.com.{audit}")),
        "{:?}",
        p.drift
    );
    assert_eq!(
        third.metrics.aws_calls_of_kind("write"),
        0,
        "additive: nothing removed"
    );
    assert_eq!(
        status(dir.path())["unexpectedDelegatedAdministrators"],
        serde_json::json!([format!("macie.amazonaws.com={audit}")])
    );

    // Exclusive: removed.
    std::fs::write(
        dir.path().join("org.yaml"),
        ORG.replace(
            "  rootAccess:",
            "  delegatedAdministratorsExclusive: true\n  rootAccess:",
        ),
    )
    .unwrap();
    let fourth = apply(&emu, dir.path()).await;
    assert!(!fourth.failed(), "{:?}", fourth.reports);
    let admins = o
        .list_delegated_services_for_account()
        .account_id(&audit)
        .send()
        .await
        .unwrap();
    let services: Vec<&str> = admins
        .delegated_services()
        .iter()
        .filter_map(|s| s.service_principal())
        .collect();
    assert_eq!(services, vec!["guardduty.amazonaws.com"]);
}

#[tokio::test]
async fn a_policy_type_is_disabled_only_with_the_confirmation_and_policies_wait_for_the_organization()
 {
    let emu = emulator().await;
    let org = "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec:\n  policyTypes: [ServiceControlPolicy]\n";
    let tagging = "---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata: {name: tagging}\nspec:\n  type: TagPolicy\n  policyName: tagging\n  document: '{\"tags\": {}}'\n  targets: {root: true}\n";
    // The Organization manages policy types and does not list TagPolicy: the tag policy waits
    // and says what to do, instead of enabling the type behind the Organization's back.
    let dir = dir_with(&format!("{org}{tagging}"));
    // It would wait for ever: give up after a moment.
    let run = landing_zone_tests::apply_waiting(
        emu.ports().await,
        dir.path(),
        &dir.path().join("state.json"),
        false,
        std::time::Duration::from_secs(2),
    )
    .await;
    let err = report(&run, "OrganizationPolicy", "tagging")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "WaitingForDependency");
    assert!(
        err.to_string()
            .contains("list TagPolicy in its spec.policyTypes"),
        "{err}"
    );
    let roots = emu.org_client().list_roots().send().await.unwrap();
    assert!(
        !roots.roots()[0]
            .policy_types()
            .iter()
            .any(|t| t.r#type().map(|t| t.as_str()) == Some("TAG_POLICY"))
    );

    // Listed: enabled by the Organization, and the policy follows.
    std::fs::write(
        dir.path().join("org.yaml"),
        format!(
            "{}{tagging}",
            org.replace(
                "[ServiceControlPolicy]",
                "[ServiceControlPolicy, TagPolicy]"
            )
        ),
    )
    .unwrap();
    let run = apply(&emu, dir.path()).await;
    assert!(!run.failed(), "{:?}", run.reports);

    // Removed from the list: reported, not disabled (that would detach every tag policy)…
    std::fs::write(dir.path().join("org.yaml"), org).unwrap();
    let run = apply(&emu, dir.path()).await;
    let p = report(&run, "Organization", "organization")
        .result
        .as_ref()
        .unwrap();
    assert!(
        matches!(
            p.ready,
            landing_zone_operator::reconcile::Readiness::Ready {
                reason: "DisableNotConfirmed",
                ..
            }
        ),
        "{:?}",
        p.ready
    );
    assert_eq!(run.metrics.aws_calls_of_kind("write"), 0);
    // …until the annotation confirms it.
    std::fs::write(
        dir.path().join("org.yaml"),
        org.replace("metadata: {name: organization}", "metadata:\n  name: organization\n  annotations: {landingzone.dev/confirm-disable-policy-types: TagPolicy}"),
    )
    .unwrap();
    let run = apply(&emu, dir.path()).await;
    assert!(!run.failed(), "{:?}", run.reports);
    let roots = emu.org_client().list_roots().send().await.unwrap();
    assert!(
        !roots.roots()[0]
            .policy_types()
            .iter()
            .any(|t| t.r#type().map(|t| t.as_str()) == Some("TAG_POLICY"))
    );
}

/// The layer itself, through the SDK: IAM's centralized root access and its prerequisites.
#[tokio::test]
async fn the_realism_layer_answers_root_access_as_aws_does() {
    let emu = emulator().await;
    let wire = emu.wire.as_ref().unwrap();
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&wire.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let e = iam
        .enable_organizations_root_credentials_management()
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ServiceAccessNotEnabledException"));
    emu.org_client_via(&wire.endpoint)
        .enable_aws_service_access()
        .service_principal("iam.amazonaws.com")
        .send()
        .await
        .unwrap();
    let listed = emu
        .org_client_via(&wire.endpoint)
        .list_aws_service_access_for_organization()
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .enabled_service_principals()
            .iter()
            .any(|p| p.service_principal() == Some("iam.amazonaws.com"))
    );
    iam.enable_organizations_root_credentials_management()
        .send()
        .await
        .unwrap();
    let features = iam.list_organizations_features().send().await.unwrap();
    assert_eq!(
        features
            .enabled_features()
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>(),
        vec!["RootCredentialsManagement"]
    );
    // Not from a member account.
    let member = emu.create_account_directly("m", "m@example.com").await;
    // A member account's session (assumed through the layer, which knows its keys).
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&wire.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let creds = sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{member}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("t")
        .send()
        .await
        .unwrap();
    let c = creds.credentials().unwrap();
    let in_member = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&wire.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "member",
            ))
            .build(),
    );
    let e = in_member
        .enable_organizations_root_sessions()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("AccountNotManagementOrDelegatedAdministratorException")
    );
}

/// An existing account made with a root password, access key, MFA device and signing certificate,
/// switched to `rootCredentials: Absent`: a root session with AWS's delete task policy removes
/// them all, the report says so, and the next pass writes nothing.
#[tokio::test]
async fn root_credentials_are_removed_through_a_root_session() {
    use landing_zone_tests::proxy::RootUserCredentials;
    let emu = emulator().await;
    let wire = emu.wire.as_ref().unwrap();
    let account = emu
        .create_account_directly("legacy", "aws-legacy@example.com")
        .await;
    wire.update_realism(|r| {
        r.root_credentials.insert(
            account.clone(),
            RootUserCredentials {
                password: true,
                access_keys: vec!["AKIAROOTKEY0000001".into()],
                mfa_devices: vec![format!(
                    "arn:aws:iam::{account}:mfa/root-account-mfa-device"
                )],
                signing_certificates: vec!["CERT0000000000000001".into()],
            },
        );
    });
    let yaml = ORG.replace(
        "---\napiVersion: landingzone.dev/v1alpha1\nkind: Organization",
        "---\napiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: legacy}\nspec:\n  accountName: legacy\n  email: aws-legacy@example.com\n  rootCredentials: Absent\n---\napiVersion: landingzone.dev/v1alpha1\nkind: Organization",
    );
    let dir = dir_with(&yaml);
    wire.reset_counts();
    // The account's root session needs the Organization's root sessions, enabled in the same
    // apply: the account waits for them, then proceeds.
    let first = landing_zone_tests::apply_waiting(
        emu.ports().await,
        dir.path(),
        &dir.path().join("state.json"),
        false,
        std::time::Duration::from_secs(60),
    )
    .await;
    assert!(!first.failed(), "{:?}", first.reports);
    for op in [
        "AssumeRoot",
        "DeleteLoginProfile",
        "DeleteAccessKey",
        "DeleteSigningCertificate",
        "DeactivateMFADevice",
    ] {
        assert!(wire.count(op) >= 1, "{op} on the wire: {}", wire.count(op));
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    let security = &doc["resources"]["AwsAccount/legacy"]["status"]["security"];
    assert_eq!(security["auditedBy"], "RootSession", "{security}");
    assert_eq!(security["rootPasswordPresent"], false);
    assert_eq!(security["rootAccessKeysPresent"], false);
    assert_eq!(security["rootMfaDevices"], 0);
    assert_eq!(security["rootSigningCertificates"], 0);
    let second = apply(&emu, dir.path()).await;
    assert_eq!(
        second.metrics.aws_calls_of_kind("write"),
        0,
        "{:?}",
        second.metrics.aws_call_counts()
    );
}
