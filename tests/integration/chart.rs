//! The Helm chart with the real `helm`: lint, template (default and non-default values, and a value
//! the schema refuses), and an install into a real kube-apiserver where the admission policy
//! refuses an unconfirmed closing delete of an AwsAccount.

use landing_zone_tests::k8s::{ControlPlane, helm, kubectl, skip};
use landing_zone_tests::operator::wait_for;
use landing_zone_tests::workspace_root;

pub fn chart() -> String {
    workspace_root()
        .join("charts/landing-zone-operator")
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn chart_lints_templates_installs_and_guards_closing_deletes() {
    let Some(k8s) =
        ControlPlane::dedicated("chart_lints_templates_installs_and_guards_closing_deletes").await
    else {
        return;
    };
    let cp = &k8s.cp;
    if helm(Some(cp), &["version"]).is_err() {
        skip(
            "chart_lints_templates_installs_and_guards_closing_deletes",
            "helm not found (../shared/k8s/tools installs it; .ci/run puts it on PATH)",
        );
        return;
    }
    let chart = chart();
    helm(Some(cp), &["lint", "--strict", &chart]).expect("helm lint");

    let default = helm(
        Some(cp),
        &["template", "lz", &chart, "--namespace", "lz-system"],
    )
    .expect("template with defaults");
    for kind in [
        "kind: Deployment",
        "kind: ClusterRole",
        "kind: Role",
        "kind: ServiceAccount",
        "kind: Service",
        "kind: PodDisruptionBudget",
        "kind: ValidatingAdmissionPolicy",
        "kind: ConfigMap",
    ] {
        assert!(default.contains(kind), "{kind} missing with default values");
    }
    for hardening in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "type: RuntimeDefault",
        "drop: [ALL]",
        "grafana_dashboard: \"1\"",
    ] {
        assert!(default.contains(hardening), "{hardening} missing");
    }
    assert!(
        !default.contains("kind: ServiceMonitor") && !default.contains("kind: PrometheusRule"),
        "optional parts are off by default"
    );
    assert!(
        !default.contains("LZ_RESYNC_INTERVAL")
            && !default.contains("LZ_CHANGE_EVENTS")
            && !default.contains("LZ_SNAPSHOT_TTL"),
        "the operator's own defaults: resync and snapshot TTL by whether change events arrive, no queue of one's own"
    );
    assert!(
        default.contains("{name: LZ_FULL_READ_EVERY, value: \"3\"}"),
        "own reads at every third resync by default"
    );

    let custom = helm(
        Some(cp),
        &[
            "template", "lz", &chart, "--namespace", "lz-system",
            "--set", "serviceMonitor.enabled=true",
            "--set", "prometheusRule.enabled=true",
            "--set", "replicaCount=3",
            "--set", "operator.dryRun=true",
            "--set", "operator.snapshotTTL=45s",
            "--set", "operator.fullReadEvery=1",
            "--set", "operator.rateLimits.MoveAccount=1/2",
            "--set", "operator.changeEvents.queueUrl=https://sqs.us-east-1.amazonaws.com/123456789012/lz-change-events",
            "--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/lzo",
        ],
    )
    .expect("template with other values");
    for want in [
        "kind: ServiceMonitor",
        "kind: PrometheusRule",
        "replicas: 3",
        "eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/lzo",
        "value: \"true\"",
        "LandingZoneTrailNotLogging",
        "- \"--rate-limit=MoveAccount=1/2\"",
        "LZ_CHANGE_EVENTS_QUEUE_URL",
        "{name: LZ_SNAPSHOT_TTL, value: \"45s\"}",
        "{name: LZ_FULL_READ_EVERY, value: \"1\"}",
    ] {
        assert!(
            custom.contains(want),
            "{want} missing with non-default values"
        );
    }
    let refused = helm(
        Some(cp),
        &["template", "lz", &chart, "--set", "operator.logFormat=xml"],
    )
    .expect_err("the schema refuses it");
    assert!(refused.contains("logFormat"), "{refused}");

    // Install for real: CRDs, RBAC, the Deployment (no kubelet here, so no pod runs) and the policy.
    helm(
        Some(cp),
        &[
            "install",
            "lz",
            &chart,
            "--namespace",
            "lz-system",
            "--create-namespace",
            "--wait=false",
        ],
    )
    .expect("helm install");
    landing_zone_tests::k8s::wait_crds_established(cp);
    // The operator's RBAC lets it do its job, and no more.
    let sa = "system:serviceaccount:lz-system:lz-landing-zone-operator";
    for (verb, resource, allowed) in [
        (
            "patch",
            "awsaccounts.landingzone.dev --subresource=status",
            true,
        ),
        ("watch", "budgets.landingzone.dev", true),
        // Claims compose accounts, budgets and assignments, and delete them with the claim…
        ("delete", "awsaccounts.landingzone.dev", true),
        ("create", "accountassignments.landingzone.dev", true),
        // … but never a guardrail, a permission set or an OU of the platform team's.
        ("create", "organizationpolicies.landingzone.dev", false),
        ("delete", "permissionsets.landingzone.dev", false),
        ("create", "organizationalunits.landingzone.dev", false),
        ("create", "configmaps -n team-a", true),
        ("delete", "configmaps -n team-a", false),
        ("get", "secrets", false),
    ] {
        let mut args = vec!["auth", "can-i", verb];
        args.extend(resource.split(' '));
        args.extend(["--as", sa]);
        let out = kubectl(cp, &args, None).unwrap_or_else(|e| e);
        assert_eq!(
            out.trim().ends_with("yes"),
            allowed,
            "{verb} {resource}: {out}"
        );
    }
    // The roles for people: view reads everything, edit changes the landing zone; only view is
    // added to the built-in roles unless userRoles.aggregateEdit is set.
    for (user, role) in [("viewer", "view"), ("editor", "edit")] {
        kubectl(
            cp,
            &[
                "create",
                "clusterrolebinding",
                &format!("lz-{user}"),
                &format!("--clusterrole=lz-landing-zone-operator-{role}"),
                &format!("--user={user}"),
            ],
            None,
        )
        .expect("binding");
    }
    for (user, verb, resource, subresource, allowed) in [
        ("viewer", "list", "permissionsets.landingzone.dev", "", true),
        (
            "viewer",
            "get",
            "awsaccounts.landingzone.dev",
            "status",
            true,
        ),
        (
            "viewer",
            "create",
            "identitygroups.landingzone.dev",
            "",
            false,
        ),
        (
            "editor",
            "create",
            "identitygroups.landingzone.dev",
            "",
            true,
        ),
        ("editor", "delete", "awsaccounts.landingzone.dev", "", true),
        (
            "editor",
            "patch",
            "awsaccounts.landingzone.dev",
            "status",
            false,
        ),
        ("editor", "get", "secrets", "", false),
    ] {
        let sub = format!("--subresource={subresource}");
        let mut args = vec!["auth", "can-i", verb, resource, "--as", user];
        if !subresource.is_empty() {
            args.push(&sub);
        }
        let out = kubectl(cp, &args, None).unwrap_or_else(|e| e);
        assert_eq!(
            out.trim().ends_with("yes"),
            allowed,
            "{user} {verb} {resource} {subresource}: {out}"
        );
    }
    // The team role, bound in one namespace: claims there, nothing cluster-scoped, nothing elsewhere.
    kubectl(cp, &["create", "namespace", "team-a"], None).expect("namespace");
    kubectl(
        cp,
        &[
            "create",
            "rolebinding",
            "team-a-claims",
            "--namespace=team-a",
            "--clusterrole=lz-landing-zone-operator-team",
            "--user=teamer",
        ],
        None,
    )
    .expect("team binding");
    for (verb, resource, namespace, allowed) in [
        ("create", "accountclaims.landingzone.dev", "team-a", true),
        ("delete", "accessclaims.landingzone.dev", "team-a", true),
        ("list", "accountclaims.landingzone.dev", "team-a", true),
        ("create", "accountclaims.landingzone.dev", "team-b", false),
        ("create", "accessclaims.landingzone.dev", "default", false),
        (
            "patch",
            "accountclaims.landingzone.dev --subresource=status",
            "team-a",
            false,
        ),
        ("create", "awsaccounts.landingzone.dev", "", false),
        ("create", "accountassignments.landingzone.dev", "", false),
        ("create", "accountclasses.landingzone.dev", "", false),
        ("get", "secrets", "team-a", false),
    ] {
        let mut args = vec!["auth", "can-i", verb];
        args.extend(resource.split(' '));
        let ns = format!("--namespace={namespace}");
        if !namespace.is_empty() {
            args.push(&ns);
        }
        args.extend(["--as", "teamer"]);
        let out = kubectl(cp, &args, None).unwrap_or_else(|e| e);
        assert_eq!(
            out.trim().ends_with("yes"),
            allowed,
            "team {verb} {resource} in {namespace:?}: {out}"
        );
    }
    let roles = default
        .split("\n---")
        .filter(|d| d.contains("kind: ClusterRole\n"))
        .collect::<Vec<_>>();
    let view = roles
        .iter()
        .find(|d| d.contains("-view\n"))
        .expect("view role");
    let edit = roles
        .iter()
        .find(|d| d.contains("-edit\n"))
        .expect("edit role");
    assert!(view.contains("aggregate-to-view: \"true\""), "{view}");
    assert!(
        !edit.contains("aggregate-to"),
        "edit is not aggregated by default: {edit}"
    );
    let aggregated = helm(
        Some(cp),
        &[
            "template",
            "lz",
            &chart,
            "--set",
            "userRoles.aggregateEdit=true",
        ],
    )
    .expect("template with aggregateEdit");
    assert!(aggregated.contains("aggregate-to-edit: \"true\""));

    let account = "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {name: sandbox}\nspec: {accountName: sandbox, email: aws-sandbox@example.com, deletionPolicy: Close}\n";
    kubectl(cp, &["apply", "-f", "-"], Some(account)).expect("account");
    // The policy takes a moment to be loaded by the API server (longer on a busy machine); any
    // other refusal (a timeout of a loaded API server) is tried again.
    let refused = wait_for(
        std::time::Duration::from_secs(30),
        "the closing delete refused by the admission policy",
        || {
            kubectl(
                cp,
                &[
                    "delete",
                    "awsaccount",
                    "sandbox",
                    "--wait=false",
                    "--dry-run=server",
                ],
                None,
            )
            .err()
            .filter(|e| e.contains("landingzone.dev/confirm-close"))
        },
    )
    .await;
    assert!(
        refused.contains("landingzone.dev/confirm-close"),
        "an unconfirmed closing delete must be refused: {refused}"
    );
    kubectl(
        cp,
        &[
            "annotate",
            "awsaccount",
            "sandbox",
            "landingzone.dev/confirm-close=sandbox",
        ],
        None,
    )
    .unwrap();
    kubectl(
        cp,
        &["delete", "awsaccount", "sandbox", "--wait=false"],
        None,
    )
    .expect("a confirmed delete is let through");
    // A Retain account is never in the way.
    kubectl(
        cp,
        &["apply", "-f", "-"],
        Some(&account.replace("Close", "Retain")),
    )
    .unwrap();
    let _ = kubectl(
        cp,
        &["delete", "awsaccount", "sandbox", "--wait=false"],
        None,
    )
    .expect("Retain deletes freely");

    // Removing a policy type from the Organization disables it (detaching its policies): refused
    // without the confirmation annotation naming it.
    let org = "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec: {policyTypes: [ServiceControlPolicy, TagPolicy]}\n";
    kubectl(cp, &["apply", "-f", "-"], Some(org)).expect("organization");
    let fewer = org.replace(
        "[ServiceControlPolicy, TagPolicy]",
        "[ServiceControlPolicy]",
    );
    let refused = wait_for(
        std::time::Duration::from_secs(30),
        "the policy-type removal refused by the admission policy",
        || {
            kubectl(cp, &["apply", "--dry-run=server", "-f", "-"], Some(&fewer))
                .err()
                .filter(|e| e.contains("landingzone.dev/confirm-disable-policy-types"))
        },
    )
    .await;
    assert!(
        refused.contains("landingzone.dev/confirm-disable-policy-types"),
        "an unconfirmed policy-type removal must be refused: {refused}"
    );
    let confirmed = fewer.replace(
        "metadata: {name: organization}",
        "metadata: {name: organization, annotations: {landingzone.dev/confirm-disable-policy-types: TagPolicy}}",
    );
    kubectl(cp, &["apply", "-f", "-"], Some(&confirmed))
        .expect("a confirmed removal is let through");

    // A team cannot take the operator's finalizer off its claim (deleting the claim then would
    // leave the class's access with no claim to take it back); the operator can.
    kubectl(
        cp,
        &[
            "label",
            "namespace",
            "team-a",
            "landingzone.dev/self-service=true",
        ],
        None,
    )
    .unwrap();
    let class = "apiVersion: landingzone.dev/v1alpha1\nkind: AccountClass\nmetadata: {name: nonprod}\nspec:\n  organizationalUnitRef: {name: workloads}\n  emailTemplate: \"aws+{namespace}-{claim}@example.com\"\n  namespaceSelector: {matchLabels: {landingzone.dev/self-service: \"true\"}}\n";
    kubectl(cp, &["apply", "-f", "-"], Some(class)).expect("class");
    let claim = "apiVersion: landingzone.dev/v1alpha1\nkind: AccountClaim\nmetadata: {name: app, namespace: team-a, finalizers: [landingzone.dev/finalizer]}\nspec: {classRef: {name: nonprod}, ownerGroup: team-a}\n";
    wait_for(
        std::time::Duration::from_secs(30),
        "the claim admitted once the class is loaded as a parameter",
        || kubectl(cp, &["apply", "-f", "-"], Some(claim)).ok(),
    )
    .await;
    let unfinalize = |who: &str| {
        kubectl(
            cp,
            &[
                "patch",
                "accountclaim",
                "app",
                "-n",
                "team-a",
                "--type",
                "json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
                "--dry-run=server",
                "--as",
                who,
            ],
            None,
        )
    };
    let refused = wait_for(
        std::time::Duration::from_secs(30),
        "a team's finalizer removal refused",
        || {
            unfinalize("teamer")
                .err()
                .filter(|e| e.contains("only the landing-zone operator removes"))
        },
    )
    .await;
    assert!(refused.contains("landingzone.dev/finalizer"), "{refused}");
    unfinalize(sa).expect("the operator removes its own finalizer");
}

/// The chart's alert rules as Prometheus reads them: `promtool check rules` on the rendered
/// PrometheusRule, and `promtool test rules` on the unit tests of the alerts
/// (tests/prometheus/alerts.test.yaml).
#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    const TEST: &str = "alert_rules_pass_promtool_and_their_unit_tests";
    let Some(promtool) = landing_zone_tests::prometheus::binary("promtool") else {
        skip(
            TEST,
            "promtool not found (scripts/install-prometheus installs Debian's prometheus package)",
        );
        return;
    };
    let rendered = match helm(
        None,
        &[
            "template",
            "lz",
            &chart(),
            "--namespace",
            "lz-system",
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
    ) {
        Ok(r) => r,
        Err(e) if e.contains("helm not found") => {
            skip(
                TEST,
                "helm not found (../shared/k8s/tools installs it; .ci/run puts it on PATH)",
            );
            return;
        }
        Err(e) => panic!("helm template: {e}"),
    };
    // The PrometheusRule's spec is a rules file: `groups:` and what follows, one level up.
    let spec = rendered.split("\nspec:\n").nth(1).expect("a spec");
    let rules: String = spec
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), &rules).unwrap();
    std::fs::copy(
        workspace_root().join("tests/prometheus/alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("promtool runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}\n{rules}");
        text
    };
    let checked = run(&["check", "rules", "rules.yaml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run(&["test", "rules", "alerts.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}
