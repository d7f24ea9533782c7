//! The generated CRDs on a real kube-apiserver: accepted (CEL within the cost budget), and every
//! invalid manifest refused at admission with the message written in the Rust types.
//!
//! Needs a control plane: `KUBECONFIG`, or the script named by `LZ_K8S_UP` (CI sets
//! `../shared/k8s/up`). Without either the test says so and skips.

use landing_zone_tests::k8s::{ControlPlane, kubectl};

const VALID_ACCOUNT: &str = "apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: NAME}
spec:
  accountName: payments-prod
  email: aws-payments-prod@example.com
";

fn policy(name: &str, policy_type: &str, document: &str) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata: {{name: {name}}}\nspec:\n  type: {policy_type}\n  policyName: {name}\n  document: {document}\n  targets: {{root: true}}\n"
    )
}

fn baseline(name: &str, rest: &str) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: SecurityBaseline\nmetadata: {{name: {name}}}\nspec:\n  targets: {{root: true}}\n{rest}"
    )
}

fn class(rest: &str) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AccountClass\nmetadata: {{name: c}}\nspec:\n  organizationalUnitRef: {{name: workloads}}\n  namespaceSelector: {{matchLabels: {{team: \"true\"}}}}\n{rest}"
    )
}

fn access_claim(rest: &str) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AccessClaim\nmetadata: {{name: a, namespace: default}}\nspec:\n  accountClaimRef: {{name: dev}}\n  permissionSet: Administrator\n  group: team\n{rest}"
    )
}

#[tokio::test]
async fn crds_install_and_admission_refuses_invalid_specs() {
    let Some(cp) = ControlPlane::get("crds_install_and_admission_refuses_invalid_specs") else {
        return;
    };
    // The CRDs are accepted (CEL within the cost budget) and established.
    landing_zone_tests::k8s::install_crds(&cp);

    // (reason, manifest, expected message)
    let account = |name: &str, spec: &str| format!("{}{spec}", VALID_ACCOUNT.replace("NAME", name));
    let cases: Vec<(&str, String, &str)> = vec![
        ("email format", account("bad-email", "").replace("aws-payments-prod@example.com", "not-an-email"), "email must be a valid address"),
        ("account name too long", account("long-name", "").replace("accountName: payments-prod", &format!("accountName: {}", "x".repeat(51))), "may not be more than 50"),
        ("alias ends with a dash", account("alias-dash", "  alias: payments-\n"), "must not start or end with '-'"),
        ("alias upper case", account("alias-upper", "  alias: Payments\n"), "alias must be 3-63 characters"),
        ("both parents", account("two-parents", "  parentId: r-abcd\n  organizationalUnitRef: {name: x}\n"), "at most one of organizationalUnitRef and parentId"),
        ("bad parent id", account("bad-parent", "  parentId: nope\n"), "parentId must be a root id"),
        ("aws: tag key", account("aws-tag", "  tags: {\"aws:owner\": x}\n"), "not starting with 'aws:'"),
        ("tag value too long", account("long-tag", &format!("  tags: {{team: {}}}\n", "v".repeat(257))), "spec.tags"),
        ("weak password length", account("weak-pw", "  passwordPolicy: {minimumPasswordLength: 4}\n"), "minimumPasswordLength must be 6-128"),
        ("OU name too long", format!("apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: long-ou}}\nspec: {{name: {}}}\n", "o".repeat(129)), "may not be more than 128"),
        ("budget amount zero", "apiVersion: landingzone.dev/v1alpha1\nkind: Budget\nmetadata: {name: zero}\nspec: {budgetName: zero, limit: {amount: \"0\"}}\n".into(), "greater than 0"),
        ("FORECASTED on DAILY", "apiVersion: landingzone.dev/v1alpha1\nkind: Budget\nmetadata: {name: daily}\nspec:\n  budgetName: daily\n  timeUnit: DAILY\n  limit: {amount: \"10\"}\n  notifications:\n  - {notificationType: FORECASTED, threshold: 100, subscribers: {emails: [a@example.com]}}\n".into(), "FORECASTED notifications are not allowed on DAILY budgets"),
        ("six notifications", format!("apiVersion: landingzone.dev/v1alpha1\nkind: Budget\nmetadata: {{name: six}}\nspec:\n  budgetName: six\n  limit: {{amount: \"10\"}}\n  notifications:\n{}", "  - {notificationType: ACTUAL, threshold: 50, subscribers: {emails: [a@example.com]}}\n".repeat(6)), "spec.notifications"),
        ("eleven emails", format!("apiVersion: landingzone.dev/v1alpha1\nkind: Budget\nmetadata: {{name: emails}}\nspec:\n  budgetName: emails\n  limit: {{amount: \"10\"}}\n  notifications:\n  - {{notificationType: ACTUAL, threshold: 50, subscribers: {{emails: [{}]}}}}\n", (0..11).map(|i| format!("a{i}@example.com")).collect::<Vec<_>>().join(", ")), "emails"),
        ("no subscriber", "apiVersion: landingzone.dev/v1alpha1\nkind: Budget\nmetadata: {name: nosub}\nspec:\n  budgetName: nosub\n  limit: {amount: \"10\"}\n  notifications:\n  - {notificationType: ACTUAL, threshold: 50, subscribers: {}}\n".into(), "at least one subscriber"),
        ("trail name too short", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: t}\nspec: {trailName: ab, s3: {bucketName: my-bucket}}\n".into(), "trailName must be 3-128 characters"),
        ("bad bucket name", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: b}\nspec: {trailName: org-trail, s3: {bucketName: My_Bucket}}\n".into(), "bucketName must be a valid S3 bucket name"),
        ("KMS key as an alias", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: k}\nspec: {trailName: org-trail, kmsKeyId: alias/audit, s3: {bucketName: my-bucket}}\n".into(), "kmsKeyId must be a key id or key ARN, not an alias"),
        ("lifecycle order", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: l}\nspec: {trailName: org-trail, s3: {bucketName: my-bucket, lifecycle: {transitionToGlacierDays: 90, expireDays: 30}}}\n".into(), "expireDays must be greater than transitionToGlacierDays"),
        // The trail's alarms: they need the log group, a retention CloudWatch Logs accepts, a key
        // CloudWatch can use, mailboxes.
        ("alarms without cloudWatchLogs", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: a1}\nspec: {trailName: org-trail, s3: {bucketName: my-bucket}, alarms: {topic: {name: alarms}}}\n".into(), "alarms.cis needs cloudWatchLogs"),
        ("log retention of 10 days", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: a2}\nspec: {trailName: org-trail, s3: {bucketName: my-bucket}, cloudWatchLogs: {retentionInDays: 10}}\n".into(), "retentionInDays must be one of"),
        ("alarm topic on an AWS managed key", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: a3}\nspec: {trailName: org-trail, s3: {bucketName: my-bucket}, cloudWatchLogs: {}, alarms: {topic: {name: alarms, kmsKeyId: alias/aws/sns}}}\n".into(), "CloudWatch alarms cannot publish to a topic encrypted with one"),
        ("subscriber not a mailbox", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: a4}\nspec: {trailName: org-trail, s3: {bucketName: my-bucket}, cloudWatchLogs: {}, alarms: {topic: {name: alarms, subscribers: [security-team]}}}\n".into(), "subscribers are email addresses"),
        ("an alarm listed twice", "apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: a5}\nspec: {trailName: org-trail, s3: {bucketName: my-bucket}, cloudWatchLogs: {}, alarms: {topic: {name: alarms}, cis: [RootUsage, RootUsage]}}\n".into(), "cis lists each alarm at most once"),
        // Security services: one administrator, at least one service, real regions.
        ("security services without an administrator", "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec: {securityServices: {regions: [us-east-1], guardDuty: {}}}\n".into(), "name the administrator by exactly one of administratorAccountRef and administratorAccountId"),
        ("security services naming none", "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec: {securityServices: {administratorAccountId: \"222222222222\", regions: [us-east-1]}}\n".into(), "securityServices names at least one of guardDuty, securityHub and accessAnalyzer"),
        ("security services in no region", "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec: {securityServices: {administratorAccountId: \"222222222222\", regions: [us-east], guardDuty: {}}}\n".into(), "regions are AWS regions such as us-east-1"),
        ("group name", "apiVersion: landingzone.dev/v1alpha1\nkind: IdentityGroup\nmetadata: {name: g}\nspec: {groupName: \"bad name\"}\n".into(), "groupName must be 1-128 characters"),
        // Guardrails: AWS's document limits by type (whitespace is not counted: the operator
        // sends compact JSON), a JSON object, at least one target, valid target ids.
        ("oversize SCP", policy("big-scp", "ServiceControlPolicy", &format!("'{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Sid\": \"{}\"}}]}}'", "x".repeat(5100))), "document is too large for its type"),
        ("oversize AI opt-out", policy("big-ai", "AiServicesOptOutPolicy", &format!("'{{\"services\": {{\"{}\": 1}}}}'", "y".repeat(2500))), "2500 for an AiServicesOptOutPolicy"),
        ("document not an object", policy("array", "TagPolicy", "'[1, 2]'"), "document must be a JSON object"),
        ("no target", policy("no-target", "TagPolicy", "'{}'").replace("targets: {root: true}", "targets: {}"), "name at least one target"),
        ("bad target id", policy("bad-id", "TagPolicy", "'{}'").replace("targets: {root: true}", "targets: {ids: [ou-nope]}"), "ids must be root (r-…), OU (ou-…) or 12-digit account ids"),
        ("session of 13 hours", "apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: long}\nspec: {name: Long, sessionDuration: PT13H}\n".into(), "sessionDuration must be 1 to 12 hours"),
        ("session of 30 minutes", "apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: short}\nspec: {name: Short, sessionDuration: PT30M}\n".into(), "sessionDuration must be 1 to 12 hours"),
        ("permission set name", "apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: bad}\nspec: {name: \"bad name\"}\n".into(), "name must be 1-32 characters"),
        ("assignment without a target", "apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {name: none}\nspec: {name: None, assignments: [{group: devs}]}\n".into(), "an assignment names at least one account or OU"),
        ("aws: tag on a policy", policy("aws-tag", "TagPolicy", "'{}'") + "  tags: {\"aws:x\": \"v\"}\n", "not starting with 'aws:'"),
        ("change-event queue name", "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec: {changeEvents: {queueName: \"events.fifo\"}}\n".into(), "queueName must be 1-52 letters"),
        ("change-event region", "apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec: {changeEvents: {region: global}}\n".into(), "region must be an AWS region"),
        ("baseline without a region", baseline("no-region", "  ebsDefaultEncryption: {enabled: true}\n"), "regions: name at least one governed region"),
        ("baseline region name", baseline("bad-region", "  regions: [europe]\n"), "regions must be AWS region names like eu-west-1"),
        ("baseline region twice", baseline("twice", "  regions: [eu-west-1, eu-west-1]\n"), "regions must not repeat"),
        ("baseline bucket to create nowhere", baseline("bucket", "  regions: [eu-west-1]\n  config: {deliveryBucket: {name: org-config, create: true}}\n"), "create: true needs accountRef"),
        ("baseline bucket name", baseline("bucket-name", "  regions: [eu-west-1]\n  config: {deliveryBucket: {name: Org_Config}}\n"), "bucket names are 3-63 characters"),
        ("baseline support principal", baseline("principal", "  supportRole: {roleName: aws-support, trustedPrincipalArns: [\"*\"]}\n"), "trustedPrincipalArns must be IAM ARNs"),
        ("baseline without targets", "apiVersion: landingzone.dev/v1alpha1\nkind: SecurityBaseline\nmetadata: {name: untargeted}\nspec: {targets: {}, s3BlockPublicAccess: true}\n".into(), "targets: name at least one target"),
        // Self-service: a class's templates keep every claim's account its own; a claim's asks are well-formed.
        ("class email without {claim}", class("  emailTemplate: \"aws+{namespace}@example.com\"\n"), "emailTemplate must be an email address containing {namespace} and {claim}"),
        ("class name without {namespace}", class("  emailTemplate: \"aws+{namespace}-{claim}@example.com\"\n  accountNameTemplate: \"{claim}\"\n"), "accountNameTemplate must contain {namespace} and {claim}"),
        ("class group pattern unanchored", class("  emailTemplate: \"aws+{namespace}-{claim}@example.com\"\n  groupPattern: \"{namespace}.*\"\n"), "groupPattern must be anchored"),
        ("class default budget above the maximum", class("  emailTemplate: \"aws+{namespace}-{claim}@example.com\"\n  budget: {defaultUsd: 900, maxUsd: 500, emails: [a@example.com]}\n"), "defaultUsd must be at most budget.maxUsd"),
        ("class time-bound duration", class("  emailTemplate: \"aws+{namespace}-{claim}@example.com\"\n  timeBound: [{permissionSet: Administrator, maxDuration: 4h}]\n"), "maxDuration must be an ISO 8601 duration"),
        ("access claim duration", access_claim("  duration: 2h\n  reason: INC-1 restore\n"), "duration must be an ISO 8601 duration"),
        ("access claim without a reason", access_claim("  duration: PT2H\n  reason: \"\"\n"), "reason must be 3-256 characters"),
        ("assignment expiry not a time", "apiVersion: landingzone.dev/v1alpha1\nkind: AccountAssignment\nmetadata: {name: x}\nspec: {permissionSetRef: {name: p}, accountRef: {name: a}, group: g, expiresAt: tomorrow}\n".into(), "expiresAt must be an RFC 3339 time"),
    ];
    let mut failures = Vec::new();
    for (reason, manifest, message) in &cases {
        match kubectl(
            &cp,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(manifest),
        ) {
            Ok(out) => failures.push(format!("{reason}: accepted: {out}")),
            Err(err) if !err.contains(message) => {
                failures.push(format!("{reason}: refused without {message:?}: {err}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // One duration grammar: admission takes exactly what the operator's parser takes (the same
    // table runs in the operator's unit tests).
    for (duration, seconds) in landing_zone_operator::api::claims::ISO_DURATION_CASES {
        let manifest = access_claim(&format!(
            "  duration: \"{duration}\"\n  reason: INC-1 restore\n"
        ));
        let got = kubectl(
            &cp,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&manifest),
        );
        match (seconds, got) {
            (Some(_), Err(e)) => failures.push(format!(
                "{duration}: the operator takes it, admission refused: {e}"
            )),
            (None, Ok(_)) => failures.push(format!(
                "{duration}: the operator refuses it, admission took it"
            )),
            (None, Err(e)) if !e.contains("duration must be an ISO 8601 duration") => {
                failures.push(format!("{duration}: refused for another reason: {e}"))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Valid objects are accepted, and immutable fields stay immutable.
    kubectl(
        &cp,
        &["apply", "-f", "-"],
        Some(&VALID_ACCOUNT.replace("NAME", "immutable")),
    )
    .expect("valid account");
    let changed = VALID_ACCOUNT
        .replace("NAME", "immutable")
        .replace("aws-payments-prod@", "aws-other@");
    let err = kubectl(&cp, &["apply", "-f", "-"], Some(&changed)).expect_err("email is immutable");
    assert!(err.contains("email is immutable"), "{err}");
    let ou = "apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {name: child}\nspec: {name: Child, parentRef: {name: a}}\n";
    kubectl(&cp, &["apply", "-f", "-"], Some(ou)).expect("valid OU");
    let err = kubectl(
        &cp,
        &["apply", "-f", "-"],
        Some(&ou.replace("{name: a}", "{name: b}")),
    )
    .expect_err("parent is immutable");
    assert!(err.contains("the parent of an OU is immutable"), "{err}");
    // A pretty-printed document just over the limit with its whitespace, and under it without,
    // is accepted (AWS gets it compacted); so is a document written as a YAML object.
    let pretty = format!(
        "'{{\"Version\": \"2012-10-17\",{}\"Statement\": [{{\"Sid\": \"{}\"}}]}}'",
        " ".repeat(400),
        "x".repeat(4900)
    );
    kubectl(
        &cp,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&policy("pretty", "ServiceControlPolicy", &pretty)),
    )
    .expect("whitespace does not count");
    kubectl(
        &cp,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&policy("object", "ServiceControlPolicy", "'{}'").replace("  document: '{}'\n", "  documentObject: {Version: \"2012-10-17\", Statement: [{Effect: Deny, Action: \"organizations:LeaveOrganization\", Resource: \"*\"}]}\n")),
    )
    .expect("a YAML object is a document");
    let err = kubectl(
        &cp,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(
            &(policy("both", "ServiceControlPolicy", "'{}'") + "  documentObject: {Version: x}\n"),
        ),
    )
    .expect_err("one document");
    assert!(err.contains("set exactly one of document"), "{err}");
    kubectl(
        &cp,
        &["apply", "-f", "-"],
        Some(&policy("typed", "TagPolicy", "'{}'")),
    )
    .expect("valid policy");
    let err = kubectl(
        &cp,
        &["apply", "-f", "-"],
        Some(&policy("typed", "BackupPolicy", "'{}'")),
    )
    .expect_err("type is immutable");
    assert!(err.contains("type is immutable"), "{err}");
    // Every example is valid at admission too.
    let examples = landing_zone_tests::workspace_root().join("manifests/examples");
    kubectl(
        &cp,
        &[
            "apply",
            "--dry-run=server",
            "-f",
            examples.to_str().unwrap(),
        ],
        None,
    )
    .expect("examples are valid");
}
