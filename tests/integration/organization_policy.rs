//! OrganizationPolicy through the realism layer, which answers policy calls as AWS does where the
//! emulator says yes (oversize and malformed documents, attaching before the type is enabled, too
//! many attachments per target, duplicate or missing attachments, a target's last SCP).
//!
//! Not covered here: BACKUP_POLICY, which the emulator cannot create (CreatePolicy → 500); its
//! limits (10,000 characters, 10 per target) are in the plan tables, and its calls are the same.

use landing_zone_tests::proxy::{Fault, Faults};
use landing_zone_tests::{Emulator, report, run_dir};
use std::collections::BTreeSet;

const GUARDRAILS: &str = "apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: sandbox}
spec: {name: Sandbox}
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationPolicy
metadata:
  name: deny-leave-organization
  labels: {landingzone.dev/baseline: \"true\"}
spec:
  type: ServiceControlPolicy
  policyName: deny-leave-organization
  description: Member accounts cannot leave the Organization
  document: |
    {\"Version\": \"2012-10-17\",
     \"Statement\": [{\"Effect\": \"Deny\", \"Action\": \"organizations:LeaveOrganization\", \"Resource\": \"*\"}]}
  targets:
    organizationalUnitRefs: [{name: workloads}]
  tags: {owner: platform-team}
  deletionPolicy: Delete
---
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationPolicy
metadata: {name: tagging}
spec:
  type: TagPolicy
  policyName: tagging
  documentObject:
    tags:
      stage:
        tag_key: {\"@@assign\": stage}
        tag_value: {\"@@assign\": [dev, staging, prod]}
  targets: {root: true}
";

fn dir_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("guardrails.yaml"), yaml).unwrap();
    dir
}

/// An emulator whose wire layer answers policy calls as AWS does.
async fn emulator() -> Emulator {
    let emu = Emulator::start().await;
    emu.wire
        .as_ref()
        .unwrap()
        .update_realism(|r| r.policies = true);
    emu
}

fn wire(emu: &Emulator) -> &landing_zone_tests::proxy::AwsProxy {
    emu.wire.as_ref().unwrap()
}

async fn apply(emu: &Emulator, dir: &std::path::Path) -> landing_zone_operator::cli::RunResult {
    run_dir(emu.ports().await, dir, &dir.join("state.json"), true, false).await
}

fn writes(run: &landing_zone_operator::cli::RunResult) -> usize {
    run.reports
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .map(|p| p.writes)
        .sum()
}

async fn targets_of(emu: &Emulator, policy_id: &str) -> BTreeSet<String> {
    emu.org_client()
        .list_targets_for_policy()
        .policy_id(policy_id)
        .send()
        .await
        .unwrap()
        .targets()
        .iter()
        .map(|t| t.target_id().unwrap().to_string())
        .collect()
}

async fn scp_named(emu: &Emulator, name: &str) -> Vec<String> {
    emu.org_client()
        .list_policies()
        .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .send()
        .await
        .unwrap()
        .policies()
        .iter()
        .filter(|p| p.name() == Some(name))
        .map(|p| p.id().unwrap().to_string())
        .collect()
}

/// An SCP made out of band (another tool's), attached to a target.
async fn other_scp(emu: &Emulator, name: &str, target: &str) -> String {
    let o = emu.org_client();
    let id = o
        .create_policy()
        .name(name)
        .description("another tool's")
        .r#type(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .content(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ec2:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .policy_summary()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    o.attach_policy()
        .policy_id(&id)
        .target_id(target)
        .send()
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn guardrails_are_created_attached_kept_in_sync_and_repaired() {
    let emu = emulator().await;
    let dir = dir_with(GUARDRAILS);
    let first = apply(&emu, dir.path()).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let workloads = report(&first, "OrganizationalUnit", "workloads")
        .id
        .clone()
        .unwrap();
    let sandbox = report(&first, "OrganizationalUnit", "sandbox")
        .id
        .clone()
        .unwrap();
    let scp = report(&first, "OrganizationPolicy", "deny-leave-organization")
        .id
        .clone()
        .unwrap();
    let tag = report(&first, "OrganizationPolicy", "tagging")
        .id
        .clone()
        .unwrap();
    assert_eq!(
        targets_of(&emu, &scp).await,
        BTreeSet::from([workloads.clone()])
    );
    let root = emu.org_client().list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    assert_eq!(targets_of(&emu, &tag).await, BTreeSet::from([root.clone()]));
    // The types were enabled on the root because these resources need them.
    let roots = emu.org_client().list_roots().send().await.unwrap();
    let enabled: BTreeSet<String> = roots.roots()[0]
        .policy_types()
        .iter()
        .map(|t| t.r#type().unwrap().as_str().to_string())
        .collect();
    assert!(
        enabled.contains("SERVICE_CONTROL_POLICY") && enabled.contains("TAG_POLICY"),
        "{enabled:?}"
    );
    // The YAML object was sent as compact JSON.
    let content = emu
        .org_client()
        .describe_policy()
        .policy_id(&tag)
        .send()
        .await
        .unwrap();
    let content = content.policy().unwrap().content().unwrap();
    assert!(!content.contains(' '), "compact: {content}");

    // In sync: nothing written, and the reads stay per policy (no per-account policy read). The
    // slots of the two targets are counted once now: their policy types were enabled in the same
    // pass as the attachment, so there was nothing to count before.
    wire(&emu).reset_counts();
    let second = apply(&emu, dir.path()).await;
    assert!(!second.failed(), "{:?}", second.reports);
    assert_eq!(writes(&second), 0, "{:?}", second.reports);
    assert_eq!(wire(&emu).count("ListPoliciesForTarget"), 2);
    wire(&emu).reset_counts();
    let settled = apply(&emu, dir.path()).await;
    assert_eq!(writes(&settled), 0);
    assert_eq!(wire(&emu).count("ListPoliciesForTarget"), 0);
    assert_eq!(
        wire(&emu).count("ListPolicies"),
        0,
        "policies are found by the id in status"
    );
    assert_eq!(wire(&emu).count("DescribePolicy"), 2);
    assert_eq!(wire(&emu).count("ListTargetsForPolicy"), 2);

    // Out of band: the guardrail detached from Workloads and attached to Sandbox, its document
    // and tags edited; another tool's SCP attached to Workloads.
    let o = emu.org_client();
    o.detach_policy()
        .policy_id(&scp)
        .target_id(&workloads)
        .send()
        .await
        .unwrap();
    o.attach_policy()
        .policy_id(&scp)
        .target_id(&sandbox)
        .send()
        .await
        .unwrap();
    o.update_policy()
        .policy_id(&scp)
        .content(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    o.untag_resource()
        .resource_id(&scp)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    let theirs = other_scp(&emu, "their-guardrail", &workloads).await;

    let plan = run_dir(
        emu.ports().await,
        dir.path(),
        &dir.path().join("state.json"),
        false,
        false,
    )
    .await;
    let drift: Vec<String> = report(&plan, "OrganizationPolicy", "deny-leave-organization")
        .result
        .as_ref()
        .unwrap()
        .drift
        .iter()
        .map(|d| d.field.clone())
        .collect();
    assert_eq!(
        drift,
        vec![
            "document".to_string(),
            "tags.owner".into(),
            format!("targets.{workloads}"),
            format!("targets.{sandbox}")
        ]
    );
    let third = apply(&emu, dir.path()).await;
    assert!(!third.failed(), "{:?}", third.reports);
    assert_eq!(
        targets_of(&emu, &scp).await,
        BTreeSet::from([workloads.clone()])
    );
    assert_eq!(
        targets_of(&emu, &theirs).await,
        BTreeSet::from([workloads.clone()]),
        "other policies' attachments are never touched"
    );
    assert!(emu.tags_of(&scp).await.contains_key("owner"));
    let fourth = apply(&emu, dir.path()).await;
    assert_eq!(
        writes(&fourth),
        0,
        "in sync after the repair: {:?}",
        fourth.reports
    );

    // The baseline guardrail (Workloads only) does not reach Sandbox: status says which.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    let coverage =
        &doc["resources"]["OrganizationPolicy/deny-leave-organization"]["status"]["coverage"];
    assert_eq!(coverage["covered"], 1, "{coverage}");
    let uncovered: Vec<&str> = coverage["uncoveredTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(uncovered, vec![format!("{sandbox} Sandbox").as_str()]);

    // Deleted with deletionPolicy Delete: detached everywhere, then deleted; FullAWSAccess and the
    // other tool's policy stay.
    std::fs::write(
        dir.path().join("guardrails.yaml"),
        GUARDRAILS.split("---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata:\n  name: deny-leave-organization").next().unwrap(),
    )
    .unwrap();
    let pruned = run_dir(
        emu.ports().await,
        dir.path(),
        &dir.path().join("state.json"),
        true,
        true,
    )
    .await;
    assert!(!pruned.failed(), "{:?}", pruned.reports);
    assert!(scp_named(&emu, "deny-leave-organization").await.is_empty());
    assert_eq!(scp_named(&emu, "their-guardrail").await, vec![theirs]);
}

#[tokio::test]
async fn limits_aws_enforces_are_refused_with_the_numbers_before_any_write() {
    let emu = emulator().await;
    let dir = dir_with(GUARDRAILS);
    let first = apply(&emu, dir.path()).await;
    assert!(!first.failed(), "{:?}", first.reports);
    let sandbox = report(&first, "OrganizationalUnit", "sandbox")
        .id
        .clone()
        .unwrap();
    let workloads = report(&first, "OrganizationalUnit", "workloads")
        .id
        .clone()
        .unwrap();
    let scp = report(&first, "OrganizationPolicy", "deny-leave-organization")
        .id
        .clone()
        .unwrap();

    // Sandbox already carries FullAWSAccess and four SCPs of other tools: AWS's limit of 5.
    for i in 1..=4 {
        other_scp(&emu, &format!("other-{i}"), &sandbox).await;
    }
    let yaml = GUARDRAILS.replace(
        "organizationalUnitRefs: [{name: workloads}]",
        "organizationalUnitRefs: [{name: workloads}, {name: sandbox}]",
    );
    std::fs::write(dir.path().join("guardrails.yaml"), &yaml).unwrap();
    wire(&emu).reset_counts();
    let run = apply(&emu, dir.path()).await;
    let err = report(&run, "OrganizationPolicy", "deny-leave-organization")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "AttachmentLimitReached");
    assert!(
        err.to_string().contains(&format!(
            "{sandbox} (Sandbox) already has 5 of the 5 SERVICE_CONTROL_POLICY"
        )),
        "{err}"
    );
    assert_eq!(
        wire(&emu).count("AttachPolicy"),
        0,
        "refused before any write"
    );

    // The only SCP of a target is never detached: FullAWSAccess removed from Workloads by hand,
    // then the spec moves the guardrail away from it.
    let full = emu
        .org_client()
        .list_policies_for_target()
        .target_id(&workloads)
        .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .send()
        .await
        .unwrap()
        .policies()
        .iter()
        .find(|p| p.aws_managed())
        .map(|p| p.id().unwrap().to_string())
        .unwrap();
    emu.org_client()
        .detach_policy()
        .policy_id(&full)
        .target_id(&workloads)
        .send()
        .await
        .unwrap();
    let root_only = GUARDRAILS.replace(
        "    organizationalUnitRefs: [{name: workloads}]\n  tags",
        "    root: true\n  tags",
    );
    std::fs::write(dir.path().join("guardrails.yaml"), &root_only).unwrap();
    wire(&emu).reset_counts();
    let run = apply(&emu, dir.path()).await;
    let err = report(&run, "OrganizationPolicy", "deny-leave-organization")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "LastPolicyOfTarget", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{workloads} (Workloads)")),
        "{err}"
    );
    assert_eq!(
        wire(&emu).count("DetachPolicy") + wire(&emu).count("AttachPolicy"),
        0
    );
    assert_eq!(
        targets_of(&emu, &scp).await,
        BTreeSet::from([workloads.clone()])
    );

    // An oversize document written as a YAML object (admission cannot measure it) is refused by
    // the plan, with the size as sent.
    let big = GUARDRAILS.replace(
        "tag_value: {\"@@assign\": [dev, staging, prod]}",
        &format!(
            "tag_value: {{\"@@assign\": [{}]}}",
            (0..2000)
                .map(|i| format!("value-{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    std::fs::write(dir.path().join("guardrails.yaml"), big).unwrap();
    wire(&emu).reset_counts();
    let run = apply(&emu, dir.path()).await;
    let err = report(&run, "OrganizationPolicy", "tagging")
        .result
        .as_ref()
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert!(
        err.to_string()
            .contains("AWS allows 10000 for a TAG_POLICY"),
        "{err}"
    );
    assert_eq!(wire(&emu).count("UpdatePolicy"), 0);
}

#[tokio::test]
async fn a_lost_create_policy_answer_never_makes_a_second_policy() {
    let emu = emulator().await;
    wire(&emu).set(Faults {
        inject: Some((Fault::LoseResponse, 1.0)),
        only: vec!["CreatePolicy".into()],
        down: false,
        limit: Some(1),
    });
    let dir = dir_with(GUARDRAILS);
    // The SDK retries the lost call, AWS answers DuplicatePolicyException, and the apply's next
    // round finds the policy by name and adopts it.
    let run = apply(&emu, dir.path()).await;
    assert!(!run.failed(), "{:?}", run.reports);
    assert_eq!(wire(&emu).injected(), 1, "the answer was lost");
    assert_eq!(scp_named(&emu, "deny-leave-organization").await.len(), 1);
    let tag_policies = emu
        .org_client()
        .list_policies()
        .filter(aws_sdk_organizations::types::PolicyType::TagPolicy)
        .send()
        .await
        .unwrap();
    assert_eq!(tag_policies.policies().len(), 1, "one tag policy");
    // Whichever CreatePolicy lost its answer, its resource adopted the policy it had made.
    let adopted = ["deny-leave-organization", "tagging"].iter().any(|name| {
        report(&run, "OrganizationPolicy", name)
            .result
            .as_ref()
            .unwrap()
            .actions
            .iter()
            .any(|a| a.starts_with("adopt existing policy"))
    });
    assert!(adopted, "{:?}", run.reports);
}

/// The layer itself, through the SDK: each refusal AWS makes that the emulator does not.
#[tokio::test]
async fn the_realism_layer_refuses_policy_calls_as_aws_does() {
    use aws_sdk_organizations::error::ProvideErrorMetadata;
    use aws_sdk_organizations::types::PolicyType;
    let emu = emulator().await;
    let o = emu.org_client_via(&wire(&emu).endpoint);
    let root = o.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_string();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#;
    let create = |name: &str, content: String| {
        o.create_policy()
            .name(name)
            .description("")
            .r#type(PolicyType::ServiceControlPolicy)
            .content(content)
            .send()
    };
    let e = create("big", format!("{{\"Sid\": \"{}\"}}", "x".repeat(5200)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConstraintViolationException"));
    assert!(format!("{:?}", e.into_service_error()).contains("PolicyContentLimitExceeded"));
    let e = create("broken", "{\"Version\": ".into()).await.unwrap_err();
    assert_eq!(e.code(), Some("MalformedPolicyDocumentException"));

    let id = create("ok", doc.into())
        .await
        .unwrap()
        .policy()
        .unwrap()
        .policy_summary()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let e = o
        .attach_policy()
        .policy_id(&id)
        .target_id(&root)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("PolicyTypeNotEnabledException"));
    o.enable_policy_type()
        .root_id(&root)
        .policy_type(PolicyType::ServiceControlPolicy)
        .send()
        .await
        .unwrap();
    o.attach_policy()
        .policy_id(&id)
        .target_id(&root)
        .send()
        .await
        .unwrap();
    let e = o
        .attach_policy()
        .policy_id(&id)
        .target_id(&root)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("DuplicatePolicyAttachmentException"));

    let ou = o
        .create_organizational_unit()
        .parent_id(&root)
        .name("ou")
        .send()
        .await
        .unwrap();
    let ou = ou.organizational_unit().unwrap().id().unwrap().to_string();
    let e = o
        .detach_policy()
        .policy_id(&id)
        .target_id(&ou)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("PolicyNotAttachedException"));
    // The OU has FullAWSAccess; four more fill its five slots, and a sixth is refused.
    let mut ids = Vec::new();
    for i in 0..5 {
        let p = create(&format!("p{i}"), doc.into()).await.unwrap();
        ids.push(
            p.policy()
                .unwrap()
                .policy_summary()
                .unwrap()
                .id()
                .unwrap()
                .to_string(),
        );
    }
    for p in &ids[..4] {
        o.attach_policy()
            .policy_id(p)
            .target_id(&ou)
            .send()
            .await
            .unwrap();
    }
    let e = o
        .attach_policy()
        .policy_id(&ids[4])
        .target_id(&ou)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConstraintViolationException"));
    assert!(format!("{:?}", e.into_service_error()).contains("PolicyNumberLimitExceeded"));
    // Down to one SCP, the last one cannot go.
    let full = o
        .list_policies_for_target()
        .target_id(&ou)
        .filter(PolicyType::ServiceControlPolicy)
        .send()
        .await
        .unwrap()
        .policies()
        .iter()
        .find(|p| p.aws_managed())
        .map(|p| p.id().unwrap().to_string())
        .unwrap();
    for p in ids[..4].iter().chain([&full]).skip(1) {
        o.detach_policy()
            .policy_id(p)
            .target_id(&ou)
            .send()
            .await
            .unwrap();
    }
    let e = o
        .detach_policy()
        .policy_id(&ids[0])
        .target_id(&ou)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConstraintViolationException"));
    assert!(
        format!("{:?}", e.into_service_error()).contains("MinPolicyTypeAttachmentLimitExceeded")
    );
}

/// Attachments made before this resource counted its slots (by an earlier run whose state is
/// gone, by hand, or adopted) are counted on the next pass, once: the slots gauge and its dashboard
/// panel (checked against Prometheus in the controller e2e) show every target, not only those
/// changed since the operator started.
#[tokio::test]
async fn slots_are_counted_for_targets_attached_before() {
    let emu = emulator().await;
    let dir = dir_with(GUARDRAILS);
    let first = apply(&emu, dir.path()).await;
    assert!(!first.failed(), "{:?}", first.reports);
    // A fresh state, as after a restart that lost status: everything is attached already.
    let state = dir.path().join("fresh-state.json");
    let run = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(writes(&run), 0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let slots = &doc["resources"]["OrganizationPolicy/deny-leave-organization"]["status"]["slots"];
    assert_eq!(slots.as_array().map(Vec::len), Some(1), "{slots}");
    // FullAWSAccess (the emulator attaches it everywhere) and this guardrail, of AWS's 5.
    assert_eq!(
        (slots[0]["attached"].as_i64(), slots[0]["limit"].as_i64()),
        (Some(2), Some(5)),
        "{slots}"
    );
    // Counted once: the next pass reads no slot again.
    let again = run_dir(emu.ports().await, dir.path(), &state, true, false).await;
    assert_eq!(
        again
            .metrics
            .aws_call_counts()
            .get(&(
                "organizations".to_string(),
                "ListPoliciesForTarget".to_string()
            ))
            .map(|c| c.1),
        None
    );
}
