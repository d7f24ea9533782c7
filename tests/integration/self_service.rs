//! Self-service end to end: teams claim accounts and time-bound access from their own namespaces
//! through an AccountClass, on a real kube-apiserver with the chart's admission policy, the
//! operator as a process, and AWS through the realism layer (CreateAccount asynchronous, 5 at a
//! time; Identity Center's assignments asynchronous).

use crate::controller::get_json;
use crate::permission_set::sso;
use landing_zone_tests::k8s::{ControlPlane, helm, kubectl, say};
use landing_zone_tests::operator::{Operator, wait_for};
use landing_zone_tests::proxy::{CloseAccountModel, CreateAccountModel, IdentityCenterModel};
use landing_zone_tests::{Emulator, workspace_root};
use serde_json::Value;
use std::time::{Duration, Instant};

fn ready(obj: &Value) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("status"), s("reason"), s("message"))
        })
}

fn apply(cp: &ControlPlane, yaml: &str) -> Result<String, String> {
    kubectl(cp, &["apply", "-f", "-"], Some(yaml))
}

const PLATFORM: &str = r#"
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads}
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: developer}
spec: {name: Developer, managedPolicyArns: [arn:aws:iam::aws:policy/PowerUserAccess]}
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: administrator}
spec: {name: Administrator, managedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityCenterGroup
metadata: {name: team-a}
spec: {displayName: team-a}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityCenterGroup
metadata: {name: team-a-oncall}
spec: {displayName: team-a-oncall}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityCenterGroup
metadata: {name: team-b}
spec: {displayName: team-b}
---
apiVersion: landingzone.dev/v1alpha1
kind: AccountClass
metadata: {name: nonprod}
spec:
  organizationalUnitRef: {name: workloads}
  emailTemplate: "aws+{namespace}-{claim}@example.com"
  namespaceSelector: {matchLabels: {landingzone.dev/self-service: "true"}}
  accountsPerNamespace: 6
  tags: {environment: nonprod}
  claimTagKeys: [cost-center]
  budget: {defaultUsd: 100, maxUsd: 500, emails: ["{namespace}@example.com", "platform@example.com"]}
  permissionSets: [Developer]
  timeBound: [{permissionSet: Administrator, maxDuration: PT1H}]
---
apiVersion: landingzone.dev/v1alpha1
kind: AccountClass
metadata: {name: sandbox}
spec:
  organizationalUnitRef: {name: workloads}
  emailTemplate: "aws+sandbox-{namespace}-{claim}@example.com"
  namespaceSelector: {matchLabels: {landingzone.dev/self-service: "true"}}
  deletionPolicy: Close
---
# The platform team's own account, from Git: no claim may take it over.
apiVersion: landingzone.dev/v1alpha1
kind: AwsAccount
metadata: {name: team-b-shared}
spec: {accountName: team-b-shared, email: aws-team-b-shared@example.com, managementPolicy: Observe}
"#;

fn namespace(name: &str, selected: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{landingzone.dev/self-service: \"{selected}\"}}\n"
    )
}

fn claim(ns: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AccountClaim\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  classRef: {{name: nonprod}}\n  ownerGroup: {ns}\n{extra}"
    )
}

fn access(ns: &str, name: &str, account: &str, spec: &str) -> String {
    format!(
        "apiVersion: landingzone.dev/v1alpha1\nkind: AccessClaim\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  accountClaimRef: {{name: {account}}}\n  reason: \"INC-4711: restore the search index\"\n{spec}"
    )
}

/// The claim's Ready condition once its reason is one of `reasons`.
async fn reason_of(
    cp: &ControlPlane,
    kind: &str,
    ns: &str,
    name: &str,
    reasons: &[&str],
) -> (String, String) {
    wait_for(
        Duration::from_secs(60),
        &format!("{kind} {ns}/{name} {reasons:?}"),
        || {
            let (_, reason, message) = ready(&get_json(cp, &[kind, name, "-n", ns]))?;
            reasons
                .contains(&reason.as_str())
                .then_some((reason, message))
        },
    )
    .await
}

/// Group ids assigned `ps` on `account`, as Identity Center lists them (through the layer).
async fn assigned(endpoint: &str, instance: &str, ps: &str, account: &str) -> Vec<String> {
    sso(endpoint)
        .list_account_assignments()
        .instance_arn(instance)
        .account_id(account)
        .permission_set_arn(ps)
        .send()
        .await
        .unwrap()
        .account_assignments()
        .iter()
        .filter_map(|a| a.principal_id().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_claim_accounts_and_access_that_ends_within_their_class() {
    const TEST: &str = "teams_claim_accounts_and_access_that_ends_within_their_class";
    let Some(k8s) = ControlPlane::dedicated(TEST).await else {
        return;
    };
    let cp = &k8s.cp;
    let emu = Emulator::start().await;
    let wire = emu.wire.as_ref().unwrap();
    wire.update_realism(|r| {
        r.create_account = Some(CreateAccountModel {
            duration: Duration::from_secs(3),
            ..Default::default()
        });
        r.identity_center = Some(IdentityCenterModel {
            duration: Duration::from_millis(800),
            ..Default::default()
        });
        r.budgets = Some(Default::default());
        r.close_account = Some(CloseAccountModel::default());
    });
    landing_zone_tests::k8s::install_crds(cp);
    // The chart's admission policies, as the chart installs them.
    let admission = match helm(
        Some(cp),
        &[
            "template",
            "lz",
            workspace_root()
                .join("charts/landing-zone-operator")
                .to_str()
                .unwrap(),
            "--show-only",
            "templates/admission-policy.yaml",
        ],
    ) {
        Ok(policy) => {
            apply(cp, &policy).expect("admission policies");
            true
        }
        Err(e) => {
            say(&format!(
                "{TEST}: helm is not available ({e}): admission refusals are not checked, only the operator's"
            ));
            false
        }
    };
    let mut op = Some(Operator::start(
        cp,
        &emu,
        "op-claims",
        &["--resync-interval", "30s", "--endpoint-url", &wire.endpoint],
    ));
    apply(cp, PLATFORM).expect("platform");
    for (ns, selected) in [
        ("team-a", true),
        ("team-b", true),
        ("team-c", false),
        ("team", true),
    ] {
        apply(cp, &namespace(ns, selected)).expect("namespace");
    }

    // Twelve claims at once, six per team.
    let started = Instant::now();
    let mut all = String::new();
    for ns in ["team-a", "team-b"] {
        for i in 1..=6 {
            let extra = if i == 1 {
                "  budgetUsd: 300\n  tags: {cost-center: \"4711\"}\n"
            } else {
                ""
            };
            all.push_str(&claim(ns, &format!("app{i}"), extra));
            all.push_str("---\n");
        }
    }
    apply(cp, &all).expect("twelve claims");
    let ids = wait_for(Duration::from_secs(240), "12 claims Ready", || {
        let list = get_json(cp, &["accountclaims", "-A"]);
        let items = list["items"].as_array()?.clone();
        let ready: Vec<String> = items
            .iter()
            .filter(|c| ready(c).is_some_and(|(s, ..)| s == "True"))
            .filter_map(|c| c["status"]["accountId"].as_str().map(str::to_string))
            .collect();
        (ready.len() == 12).then_some(ready)
    })
    .await;
    say(&format!(
        "e2e: 12 claims Ready in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 12, "one account per claim: {ids:?}");
    assert_eq!(
        wire.create_requests().len(),
        12,
        "exactly one CreateAccount per claim"
    );

    // Each claim: its ConfigMap, its budget within the class, the owner group's permission set.
    let c = get_json(cp, &["accountclaim", "app1", "-n", "team-a"]);
    let id = c["status"]["accountId"].as_str().unwrap().to_string();
    assert_eq!(
        c["status"]["roleArn"],
        format!("arn:aws:iam::{id}:role/OrganizationAccountAccessRole")
    );
    let cm = get_json(cp, &["configmap", "app1-aws-account", "-n", "team-a"]);
    assert_eq!(cm["data"]["accountId"], id.as_str());
    assert_eq!(cm["data"][id.as_str()], c["status"]["roleArn"]);
    let account = get_json(cp, &["awsaccount", "team-a-app1"]);
    assert_eq!(account["spec"]["email"], "aws+team-a-app1@example.com");
    assert_eq!(account["spec"]["tags"]["cost-center"], "4711");
    assert_eq!(
        account["metadata"]["labels"]["landingzone.dev/claim-namespace"],
        "team-a"
    );
    let budget = wait_for(Duration::from_secs(60), "the claim's budget Ready", || {
        let b = get_json(cp, &["budget", "team-a-app1"]);
        ready(&b).is_some_and(|(s, ..)| s == "True").then_some(b)
    })
    .await;
    assert_eq!(budget["spec"]["limit"]["amount"], "300");
    assert_eq!(
        get_json(cp, &["budget", "team-b-app2"])["spec"]["limit"]["amount"],
        "100",
        "the class's default"
    );
    let dev = wait_for(
        Duration::from_secs(60),
        "the owner group's assignment",
        || {
            let a = get_json(cp, &["accountassignment", "team-a-app1-developer"]);
            (a["status"]["state"] == "Assigned").then_some(a)
        },
    )
    .await;
    let ps = get_json(cp, &["permissionset", "developer"]);
    let (instance, dev_arn) = (
        ps["status"]["instanceArn"].as_str().unwrap().to_string(),
        ps["status"]["permissionSetArn"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let team_a = dev["status"]["groupId"].as_str().unwrap().to_string();
    assert_eq!(
        assigned(&wire.endpoint, &instance, &dev_arn, &id).await,
        vec![team_a.clone()]
    );
    say("e2e: each claim has its account, ConfigMap, budget and the owner group's permission set");

    // The boundary: refused at admission where a policy can tell…
    if admission {
        for (why, yaml, says) in [
            (
                "a namespace the class does not select",
                claim("team-c", "x", ""),
                "is not selected by the namespaceSelector",
            ),
            (
                "a budget above the class's maximum",
                claim("team-a", "x", "  budgetUsd: 900\n"),
                "above the maximum",
            ),
            (
                "a tag key the class does not allow",
                claim("team-a", "x", "  tags: {owner: me}\n"),
                "lets a claim set",
            ),
            (
                "another team's group",
                claim("team-a", "x", "").replace("ownerGroup: team-a", "ownerGroup: team-b"),
                "is not one namespace team-a",
            ),
            (
                "a claim edited to another class",
                claim("team-b", "app2", "").replace("name: nonprod", "name: sandbox"),
                "classRef is immutable",
            ),
        ] {
            let err = apply(cp, &yaml).expect_err(why);
            assert!(err.contains(says), "{why}: {err}");
        }
        say(
            "e2e: admission refused a foreign namespace, a budget, a tag, a group and a class change",
        );
    }
    // … and by the operator where only it can.
    apply(cp, &claim("team-a", "app7", "")).expect("a seventh claim is admitted");
    let (_, quota) = reason_of(cp, "accountclaim", "team-a", "app7", &["QuotaExceeded"]).await;
    assert!(quota.contains("quota is 6"), "{quota}");
    // Namespace `team`, claim `a-app1`: the same object name as team-a's app1.
    apply(cp, &claim("team", "a-app1", "")).expect("admitted");
    let (_, taken) = reason_of(cp, "accountclaim", "team", "a-app1", &["AccountNameTaken"]).await;
    assert!(
        taken.contains("the claim app1 in namespace team-a"),
        "{taken}"
    );
    // (team-b holds its quota of nonprod accounts: these two claim from the sandbox class.)
    let sandbox = |name: &str| claim("team-b", name, "").replace("name: nonprod", "name: sandbox");
    apply(cp, &sandbox("shared")).expect("admitted");
    let (_, git) = reason_of(
        cp,
        "accountclaim",
        "team-b",
        "shared",
        &["AccountNameTaken"],
    )
    .await;
    assert!(git.contains("platform team"), "{git}");
    // An account that exists with the email the class would give: never adopted by a claim.
    emu.create_account_directly("legacy", "aws+sandbox-team-b-legacy@example.com")
        .await;
    apply(cp, &sandbox("legacy")).expect("admitted");
    let (_, legacy) = reason_of(
        cp,
        "accountclaim",
        "team-b",
        "legacy",
        &["AccountNotClaimable"],
    )
    .await;
    assert!(
        legacy.contains("was not created by claim team-b/legacy"),
        "{legacy}"
    );
    let owner = get_json(cp, &["awsaccount", "team-a-app1"]);
    assert_eq!(
        owner["metadata"]["labels"]["landingzone.dev/claim-namespace"], "team-a",
        "team-a's account is still team-a's"
    );
    assert!(
        get_json(cp, &["awsaccount", "team-a-app7"]).is_null(),
        "nothing composed for a refused claim"
    );
    assert!(
        get_json(cp, &["awsaccount", "team-b-shared"])["metadata"]["labels"].is_null(),
        "the platform's account untouched"
    );
    // (A CreateAccount AWS answers EMAIL_ALREADY_EXISTS creates nothing: only accounts made count.)
    let made = wire
        .create_requests()
        .iter()
        .filter(|r| r.failure.is_none())
        .count();
    assert_eq!(made, 12, "nothing created in AWS for a refused claim");
    say(
        "e2e: quota, a name held by another team or by Git, and an existing account's email were refused; nothing created",
    );

    // Access that ends: refused outside the class…
    for (why, spec, reason) in [
        (
            "longer than the class allows",
            "  permissionSet: Administrator\n  group: team-a-oncall\n  duration: PT2H\n",
            "DurationAboveClassMaximum",
        ),
        (
            "a permission set not time-bound",
            "  permissionSet: Developer\n  group: team-a-oncall\n  duration: PT1H\n",
            "PermissionSetNotAllowed",
        ),
        (
            "another team's group",
            "  permissionSet: Administrator\n  group: team-b\n  duration: PT1H\n",
            "GroupNotAllowed",
        ),
    ] {
        let name = format!("refused-{}", reason.to_lowercase());
        apply(cp, &access("team-a", &name, "app1", spec)).expect(why);
        reason_of(cp, "accessclaim", "team-a", &name, &[reason]).await;
        kubectl(cp, &["delete", "accessclaim", &name, "-n", "team-a"], None).unwrap();
    }
    // team-b names a claim that only team-a has: only its own namespace's claims are seen.
    apply(
        cp,
        &access(
            "team-b",
            "steal",
            "app7",
            "  permissionSet: Administrator\n  group: team-b\n  duration: PT1H\n",
        ),
    )
    .unwrap();
    reason_of(
        cp,
        "accessclaim",
        "team-b",
        "steal",
        &["AccountClaimNotFound"],
    )
    .await;
    // … granted for a minute (what the test checks while it is granted takes seconds on a loaded
    // machine), and removed by the operator at the deadline, across a restart.
    let before = wire.count("CreateAccountAssignment");
    apply(
        cp,
        &access(
            "team-a",
            "inc",
            "app1",
            "  permissionSet: Administrator\n  group: team-a-oncall\n  duration: PT1M\n",
        ),
    )
    .unwrap();
    let granted = wait_for(Duration::from_secs(30), "access granted", || {
        let a = get_json(cp, &["accessclaim", "inc", "-n", "team-a"]);
        (a["status"]["state"] == "Granted").then_some(a)
    })
    .await;
    let expires: k8s_openapi::jiff::Timestamp = granted["status"]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let admin_arn = get_json(cp, &["permissionset", "administrator"])["status"]["permissionSetArn"]
        .as_str()
        .unwrap()
        .to_string();
    let oncall = get_json(cp, &["accountassignment", "team-a-inc-access"])["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        assigned(&wire.endpoint, &instance, &admin_arn, &id).await,
        vec![oncall.clone()]
    );
    let gauge = op
        .as_ref()
        .unwrap()
        .samples("landingzone_time_bound_assignment_expiry_seconds");
    assert_eq!(
        gauge.len(),
        1,
        "one active time-bound assignment: {gauge:?}"
    );
    assert_eq!(*gauge.values().next().unwrap() as i64, expires.as_second());
    say("e2e: access granted until its expiry, and counted");
    // The operator stops and another starts: the deadline is in status, not in memory.
    drop(op.take());
    let _op = Operator::start(
        cp,
        &emu,
        "op-claims-2",
        &["--resync-interval", "30s", "--endpoint-url", &wire.endpoint],
    );
    let ended = wait_for(
        Duration::from_secs(90),
        "the assignment removed at the deadline",
        || {
            let a = get_json(cp, &["accessclaim", "inc", "-n", "team-a"]);
            (a["status"]["state"] == "Expired").then(Instant::now)
        },
    )
    .await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let late = now.duration_since(expires).as_secs_f64() - ended.elapsed().as_secs_f64();
    // How late is the bench's to measure; here only that it ends, within the wait (a new
    // operator first waits out the killed one's lease).
    assert!(late < 120.0, "removed {late:.1} s after the deadline");
    assert!(
        assigned(&wire.endpoint, &instance, &admin_arn, &id)
            .await
            .is_empty(),
        "no Administrator left in AWS"
    );
    say(&format!(
        "e2e: the access ended {late:.1} s after its deadline, after a restart"
    ));
    let events = kubectl(
        cp,
        &[
            "get",
            "events",
            "-n",
            "team-a",
            "--field-selector",
            "involvedObject.name=inc",
            "-o",
            "json",
        ],
        None,
    )
    .unwrap();
    let events: Value = serde_json::from_str(&events).unwrap();
    let notes: Vec<(String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["note"]
                    .as_str()
                    .or(e["message"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    for reason in ["Granted", "Expired"] {
        assert!(
            notes
                .iter()
                .any(|(r, n)| r == reason && n.contains("INC-4711")),
            "{reason} event with the reason: {notes:?}"
        );
    }
    // Never granted again unless the spec changes.
    let made = wire.count("CreateAccountAssignment");
    assert_eq!(made - before, 1, "one grant");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        wire.count("CreateAccountAssignment"),
        made,
        "an expired claim is not granted again"
    );
    say("e2e: Events carry the reason; an expired claim stays expired");

    // Deleting a claim: what it composed goes; AWS keeps the account (Retain) or closes the one
    // the claim made (Close, the sandbox class) — through the chart's confirm-close policy.
    let org = emu.org_client_via(&wire.endpoint);
    let state = |id: String| {
        let org = org.clone();
        async move {
            let out = org.describe_account().account_id(id).send().await.unwrap();
            out.account()
                .and_then(|a| a.state())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default()
        }
    };
    let kept = get_json(cp, &["accountclaim", "app6", "-n", "team-b"])["status"]["accountId"]
        .as_str()
        .unwrap()
        .to_string();
    // Time-bound access on it, granted for an hour: deleting the AccountClaim (the team no longer
    // claims the account, which Retain keeps) removes that access at once, and the AccessClaim
    // says so; it never outlives the claim, whatever its deadline.
    apply(
        cp,
        &access(
            "team-b",
            "hold",
            "app6",
            "  permissionSet: Administrator\n  group: team-b\n  duration: PT1H\n",
        ),
    )
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the hour-long access granted",
        || {
            let a = get_json(cp, &["accessclaim", "hold", "-n", "team-b"]);
            (a["status"]["state"] == "Granted").then_some(())
        },
    )
    .await;
    let team_b = get_json(cp, &["accountassignment", "team-b-hold-access"])["status"]["groupId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        assigned(&wire.endpoint, &instance, &admin_arn, &kept)
            .await
            .contains(&team_b),
        "Administrator granted on the claimed account"
    );
    kubectl(
        cp,
        &[
            "delete",
            "accountclaim",
            "app6",
            "-n",
            "team-b",
            "--wait=false",
        ],
        None,
    )
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the claim and what it composed gone",
        || {
            [
                vec!["accountclaim", "app6", "-n", "team-b"],
                vec!["awsaccount", "team-b-app6"],
                vec!["budget", "team-b-app6"],
                vec!["accountassignment", "team-b-app6-developer"],
            ]
            .iter()
            .all(|args| get_json(cp, args).is_null())
            .then_some(())
        },
    )
    .await;
    assert_eq!(
        state(kept.clone()).await,
        "ACTIVE",
        "Retain: the AWS account stays"
    );
    landing_zone_tests::operator::eventually(
        Duration::from_secs(60),
        "the access removed with the AccountClaim, long before its deadline",
        || async {
            assigned(&wire.endpoint, &instance, &admin_arn, &kept)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let hold = get_json(cp, &["accessclaim", "hold", "-n", "team-b"]);
    let (status, reason, message) = ready(&hold).expect("a Ready condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AccountClaimNotFound"),
        "{hold}"
    );
    assert!(
        message.contains("any access it held is removed"),
        "{message}"
    );
    say("e2e: deleting an AccountClaim ended the hour-long access held on its account at once");
    apply(cp, &sandbox("scratch")).expect("a sandbox claim");
    let scratch = wait_for(Duration::from_secs(90), "the sandbox claim Ready", || {
        let c = get_json(cp, &["accountclaim", "scratch", "-n", "team-b"]);
        ready(&c).filter(|(s, ..)| s == "True")?;
        c["status"]["accountId"].as_str().map(str::to_string)
    })
    .await;
    kubectl(
        cp,
        &[
            "delete",
            "accountclaim",
            "scratch",
            "-n",
            "team-b",
            "--wait=false",
        ],
        None,
    )
    .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the sandbox account object gone",
        || {
            get_json(cp, &["awsaccount", "team-b-scratch"])
                .is_null()
                .then_some(())
        },
    )
    .await;
    let closed = state(scratch.clone()).await;
    assert!(
        ["PENDING_CLOSURE", "SUSPENDED"].contains(&closed.as_str()),
        "Close: {closed}"
    );
    assert_eq!(
        wire.count("CloseAccount"),
        1,
        "only the claim's own account is closed"
    );
    say(
        "e2e: a deleted claim took its objects with it; Retain kept the account, Close closed the claim's own",
    );

    // The shipped examples pass the CRDs' rules and the admission policy as they are.
    let examples = workspace_root().join("manifests/self-service");
    kubectl(cp, &["apply", "-f", examples.to_str().unwrap()], None)
        .expect("manifests/self-service applies");
}

/// A platform without Identity Center: no PermissionSet at all. A claim of a class that composes
/// no access still gets its account (it once waited forever for a PermissionSet to appear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_gets_its_account_where_no_permission_set_exists() {
    const TEST: &str = "a_claim_gets_its_account_where_no_permission_set_exists";
    let Some(k8s) = ControlPlane::dedicated(TEST).await else {
        return;
    };
    let cp = &k8s.cp;
    let emu = Emulator::start().await;
    landing_zone_tests::k8s::install_crds(cp);
    let _op = Operator::start(cp, &emu, "op-no-ps", &["--resync-interval", "30s"]);
    let platform = r#"
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads}
---
apiVersion: landingzone.dev/v1alpha1
kind: AccountClass
metadata: {name: plain}
spec:
  organizationalUnitRef: {name: workloads}
  emailTemplate: "aws+{namespace}-{claim}@example.com"
  namespaceSelector: {matchLabels: {landingzone.dev/self-service: "true"}}
"#;
    apply(cp, platform).expect("platform");
    apply(cp, &namespace("team-a", true)).expect("namespace");
    apply(
        cp,
        "apiVersion: landingzone.dev/v1alpha1\nkind: AccountClaim\nmetadata: {name: app, namespace: team-a}\nspec:\n  classRef: {name: plain}\n  ownerGroup: team-a\n",
    )
    .expect("claim");
    let id = wait_for(Duration::from_secs(90), "the claim Ready", || {
        let c = get_json(cp, &["accountclaim", "app", "-n", "team-a"]);
        ready(&c)
            .filter(|(s, ..)| s == "True")
            .and_then(|_| c["status"]["accountId"].as_str().map(str::to_string))
    })
    .await;
    assert_eq!(
        emu.parent_of(&id).await,
        get_json(cp, &["organizationalunit", "workloads"])["status"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
        "the claimed account is in its class's OU"
    );

    // The quota under concurrency: five claims made at once (one apply, the same second, names in
    // reverse order) against a class allowing one per namespace give exactly one account; the
    // others are refused with QuotaExceeded.
    apply(
        cp,
        "apiVersion: landingzone.dev/v1alpha1\nkind: AccountClass\nmetadata: {name: single}\nspec:\n  organizationalUnitRef: {name: workloads}\n  emailTemplate: \"aws+single-{namespace}-{claim}@example.com\"\n  accountNameTemplate: \"single-{namespace}-{claim}\"\n  namespaceSelector: {matchLabels: {landingzone.dev/self-service: \"true\"}}\n  accountsPerNamespace: 1\n",
    )
    .expect("a class of one account per namespace");
    let names = ["race-z", "race-y", "race-m", "race-b", "race-a"];
    let claims: Vec<String> = names
        .iter()
        .map(|n| format!("apiVersion: landingzone.dev/v1alpha1\nkind: AccountClaim\nmetadata: {{name: {n}, namespace: team-a}}\nspec:\n  classRef: {{name: single}}\n  ownerGroup: team-a\n"))
        .collect();
    apply(cp, &claims.join("---\n")).expect("five claims at once");
    let reasons = wait_for(
        Duration::from_secs(90),
        "every racing claim decided",
        || {
            let r: Vec<String> = names
                .iter()
                .map(|n| {
                    ready(&get_json(cp, &["accountclaim", n, "-n", "team-a"]))
                        .map(|(_, reason, _)| reason)
                        .unwrap_or_default()
                })
                .collect();
            r.iter().all(|x| !x.is_empty()).then_some(r)
        },
    )
    .await;
    // A few seconds more: a claim that slipped past the quota would compose its account now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let composed = kubectl(
        cp,
        &[
            "get",
            "awsaccounts",
            "-l",
            "landingzone.dev/account-class=single",
            "-o",
            "name",
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        composed.lines().count(),
        1,
        "exactly one account: {composed} {reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.as_str() == "QuotaExceeded")
            .count(),
        4,
        "{reasons:?}"
    );
}

/// The platform team's word takes effect (issue 42, attack 5), and renewals show. On claims that
/// hold accounts and time-bound access, the platform team, in turn:
/// 1. lowers a class's budget maximum below a claim's: the claim is refused, its access stays;
/// 2. renews nothing but a team renews its access: counted in status, Event and gauge;
/// 3. edits the templates and drops a permanent and a time-bound permission set: the claim stays
///    Ready, the dropped access goes, a new claim gets the new templates;
/// 4. stops selecting a namespace: the access there goes, the account stays;
/// 5. deletes a class whose accounts it would close: the access goes, no account is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_platform_team_takes_back_is_taken_back() {
    const TEST: &str = "what_the_platform_team_takes_back_is_taken_back";
    let Some(k8s) = ControlPlane::dedicated(TEST).await else {
        return;
    };
    let cp = &k8s.cp;
    let emu = Emulator::start().await;
    let wire = emu.wire.as_ref().unwrap();
    wire.update_realism(|r| {
        r.create_account = Some(CreateAccountModel {
            duration: Duration::from_secs(1),
            ..Default::default()
        });
        r.identity_center = Some(IdentityCenterModel {
            duration: Duration::from_millis(300),
            ..Default::default()
        });
        r.close_account = Some(CloseAccountModel::default());
    });
    landing_zone_tests::k8s::install_crds(cp);
    let op = Operator::start(
        cp,
        &emu,
        "op-takes-back",
        &["--resync-interval", "30s", "--endpoint-url", &wire.endpoint],
    );
    let platform = r#"
apiVersion: landingzone.dev/v1alpha1
kind: OrganizationalUnit
metadata: {name: workloads}
spec: {name: Workloads}
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: developer}
spec: {name: Developer, managedPolicyArns: [arn:aws:iam::aws:policy/PowerUserAccess]}
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: readonly}
spec: {name: ReadOnly, managedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess]}
---
apiVersion: landingzone.dev/v1alpha1
kind: PermissionSet
metadata: {name: administrator}
spec: {name: Administrator, managedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityCenterGroup
metadata: {name: team-x}
spec: {displayName: team-x}
---
apiVersion: landingzone.dev/v1alpha1
kind: IdentityCenterGroup
metadata: {name: team-y}
spec: {displayName: team-y}
---
apiVersion: landingzone.dev/v1alpha1
kind: AccountClass
metadata: {name: keep}
spec:
  organizationalUnitRef: {name: workloads}
  emailTemplate: "aws+{namespace}-{claim}@example.com"
  namespaceSelector: {matchLabels: {landingzone.dev/self-service: "true"}}
  budget: {defaultUsd: 100, maxUsd: 500, emails: ["{namespace}@example.com"]}
  permissionSets: [Developer, ReadOnly]
  timeBound: [{permissionSet: Administrator, maxDuration: PT1H}]
---
apiVersion: landingzone.dev/v1alpha1
kind: AccountClass
metadata: {name: gone}
spec:
  organizationalUnitRef: {name: workloads}
  emailTemplate: "aws+gone-{namespace}-{claim}@example.com"
  accountNameTemplate: "gone-{namespace}-{claim}"
  namespaceSelector: {matchLabels: {landingzone.dev/self-service: "true"}}
  permissionSets: [Developer]
  timeBound: [{permissionSet: Administrator, maxDuration: PT1H}]
  deletionPolicy: Close
"#;
    apply(cp, platform).expect("platform");
    for ns in ["team-x", "team-y"] {
        apply(cp, &namespace(ns, true)).expect("namespace");
    }
    let of_class = |ns: &str, class: &str, extra: &str| {
        claim(ns, "app", extra).replace("name: nonprod", &format!("name: {class}"))
    };
    apply(cp, &of_class("team-x", "keep", "  budgetUsd: 300\n")).unwrap();
    apply(cp, &of_class("team-y", "gone", "")).unwrap();
    let admin = "  permissionSet: Administrator\n  duration: PT1H\n";
    apply(
        cp,
        &access("team-x", "inc", "app", &format!("{admin}  group: team-x\n")),
    )
    .unwrap();
    apply(
        cp,
        &access("team-y", "inc", "app", &format!("{admin}  group: team-y\n")),
    )
    .unwrap();
    let granted = |ns: &str| {
        let a = get_json(cp, &["accessclaim", "inc", "-n", ns]);
        (a["status"]["state"] == "Granted").then_some(a)
    };
    wait_for(
        Duration::from_secs(120),
        "both teams' access granted",
        || Some((granted("team-x")?, granted("team-y")?)),
    )
    .await;
    let id = |ns: &str| {
        get_json(cp, &["accountclaim", "app", "-n", ns])["status"]["accountId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (x, y) = (id("team-x"), id("team-y"));
    let arn = |ps: &str| {
        get_json(cp, &["permissionset", ps])["status"]["permissionSetArn"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let instance = get_json(cp, &["permissionset", "developer"])["status"]["instanceArn"]
        .as_str()
        .unwrap()
        .to_string();
    let (dev, ro, adm) = (arn("developer"), arn("readonly"), arn("administrator"));
    let endpoint = wire.endpoint.clone();
    // The permission sets AWS lists for `account` (of Developer, ReadOnly, Administrator).
    let held = |account: String| {
        let (endpoint, instance) = (endpoint.clone(), instance.clone());
        let sets = [
            ("Developer", dev.clone()),
            ("ReadOnly", ro.clone()),
            ("Administrator", adm.clone()),
        ];
        async move {
            let mut out = Vec::new();
            for (name, ps) in sets {
                if !assigned(&endpoint, &instance, &ps, &account)
                    .await
                    .is_empty()
                {
                    out.push(name);
                }
            }
            out
        }
    };
    let until_held = |account: String, want: Vec<&'static str>, what: &'static str| {
        let held = &held;
        async move {
            landing_zone_tests::operator::eventually(Duration::from_secs(60), what, || {
                let (account, want) = (account.clone(), want.clone());
                async move { (held(account).await == want).then_some(()) }
            })
            .await
        }
    };
    until_held(
        x.clone(),
        vec!["Developer", "ReadOnly", "Administrator"],
        "team-x's access made",
    )
    .await;
    until_held(
        y.clone(),
        vec!["Developer", "Administrator"],
        "team-y's access made",
    )
    .await;
    say("e2e: two teams hold accounts, their class's access and an hour of Administrator");

    // 1. A refusal for what the team asked (its budget, now above the class's maximum) is not the
    // class taken back: the claim says so, the access stays.
    let patch_class = |class: &str, patch: &str| {
        kubectl(
            cp,
            &[
                "patch",
                "accountclass",
                class,
                "--type",
                "merge",
                "-p",
                patch,
            ],
            None,
        )
        .expect("class patched")
    };
    patch_class("keep", r#"{"spec":{"budget":{"maxUsd":200}}}"#);
    reason_of(
        cp,
        "accountclaim",
        "team-x",
        "app",
        &["BudgetAboveClassMaximum"],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        granted("team-x").is_some(),
        "time-bound access kept while the budget is fixed"
    );
    assert_eq!(
        held(x.clone()).await,
        ["Developer", "ReadOnly", "Administrator"],
        "nothing removed for a budget refusal"
    );
    patch_class("keep", r#"{"spec":{"budget":{"maxUsd":500}}}"#);
    reason_of(cp, "accountclaim", "team-x", "app", &["AccountReady"]).await;

    // 2. Renewed (a changed spec grants again): counted in status, the Event and the gauge.
    kubectl(
        cp,
        &[
            "patch",
            "accessclaim",
            "inc",
            "-n",
            "team-x",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"reason":"INC-4712: the index again"}}"#,
        ],
        None,
    )
    .unwrap();
    let renewed = wait_for(Duration::from_secs(60), "the renewal granted", || {
        let a = granted("team-x")?;
        (a["status"]["grantCount"] == 2).then_some(a)
    })
    .await;
    let grants = renewed["status"]["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2, "{renewed}");
    assert_eq!(grants[1]["reason"], "INC-4712: the index again");
    assert_eq!(grants[1]["expiresAt"], renewed["status"]["expiresAt"]);
    // Another access claim, granted and deleted at once: the account claim keeps its record.
    apply(
        cp,
        &access(
            "team-x",
            "inc-b",
            "app",
            &format!("{admin}  group: team-x\n"),
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(60), "inc-b granted", || {
        let a = get_json(cp, &["accessclaim", "inc-b", "-n", "team-x"]);
        (a["status"]["state"] == "Granted").then_some(())
    })
    .await;
    kubectl(
        cp,
        &["delete", "accessclaim", "inc-b", "-n", "team-x"],
        None,
    )
    .unwrap();
    let record = wait_for(
        Duration::from_secs(60),
        "three grants in the account claim's record",
        || {
            let c = get_json(cp, &["accountclaim", "app", "-n", "team-x"]);
            let r = c["status"]["accessGrants"].as_array()?.clone();
            (r.len() == 3 && get_json(cp, &["accessclaim", "inc-b", "-n", "team-x"]).is_null())
                .then_some(r)
        },
    )
    .await;
    let claims: Vec<&str> = record
        .iter()
        .map(|r| r["accessClaim"].as_str().unwrap())
        .collect();
    assert_eq!(
        claims.iter().filter(|c| **c == "inc").count(),
        2,
        "{record:?}"
    );
    assert!(
        claims.contains(&"inc-b"),
        "a deleted access claim's grant stays: {record:?}"
    );
    assert!(
        record
            .iter()
            .all(|r| r["permissionSet"] == "Administrator" && r["group"] == "team-x"),
        "{record:?}"
    );
    wait_for(Duration::from_secs(30), "the grants gauge at 3", || {
        op.samples("landingzone_access_grants_last_day")
            .into_iter()
            .find(|(labels, v)| {
                labels.contains("namespace=\"team-x\"")
                    && labels.contains("account_claim=\"app\"")
                    && *v == 3.0
            })
    })
    .await;
    wait_for(Duration::from_secs(30), "the renewal's Event", || {
        kubectl(
            cp,
            &[
                "get",
                "events",
                "-n",
                "team-x",
                "--field-selector",
                "involvedObject.name=inc,reason=Granted",
                "-o",
                "json",
            ],
            None,
        )
        .ok()?
        .contains("grant 2 of this claim, 2 in the last 24 h")
        .then_some(())
    })
    .await;
    say(
        "e2e: renewals are counted in the claims' status, an Event and the gauge, deleted access claims too",
    );

    // 3. Templates edited, a permanent and the time-bound permission set dropped.
    let email_before = get_json(cp, &["awsaccount", "team-x-app"])["spec"]["email"].clone();
    patch_class(
        "keep",
        r#"{"spec":{"emailTemplate":"new+{namespace}-{claim}@example.com","accountNameTemplate":"new-{namespace}-{claim}","roleName":"TeamAccess","permissionSets":["Developer"],"timeBound":[]}}"#,
    );
    until_held(
        x.clone(),
        vec!["Developer"],
        "ReadOnly and Administrator removed",
    )
    .await;
    let (_, refused) = reason_of(
        cp,
        "accessclaim",
        "team-x",
        "inc",
        &["PermissionSetNotAllowed"],
    )
    .await;
    assert!(
        refused.contains("any access it held is removed"),
        "{refused}"
    );
    let c = get_json(cp, &["accountclaim", "app", "-n", "team-x"]);
    let (status, reason, message) = ready(&c).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AccountReady"),
        "{message}"
    );
    assert!(message.contains("team-x gets [\"Developer\"]"), "{message}");
    let account = get_json(cp, &["awsaccount", "team-x-app"]);
    assert_eq!(
        account["spec"]["email"], email_before,
        "the account keeps its email"
    );
    assert_eq!(account["spec"]["accountName"], "team-x-app");
    assert_eq!(account["spec"]["roleName"], "OrganizationAccountAccessRole");
    assert_eq!(
        c["status"]["roleArn"],
        format!("arn:aws:iam::{x}:role/OrganizationAccountAccessRole"),
        "the claim names the role its account has"
    );
    assert!(
        kubectl(
            cp,
            &[
                "get",
                "events",
                "-n",
                "team-x",
                "--field-selector",
                "reason=AccessWithdrawn",
                "-o",
                "json"
            ],
            None
        )
        .unwrap()
        .contains("team-x-app-readonly"),
        "an Event names the access removed"
    );
    apply(
        cp,
        &claim("team-x", "app2", "").replace("name: nonprod", "name: keep"),
    )
    .unwrap();
    let new = wait_for(Duration::from_secs(30), "the new claim's account", || {
        let a = get_json(cp, &["awsaccount", "team-x-app2"]);
        (!a.is_null()).then_some(a)
    })
    .await;
    assert_eq!(new["spec"]["email"], "new+team-x-app2@example.com");
    assert_eq!(new["spec"]["roleName"], "TeamAccess");
    say(
        "e2e: a class's edited templates apply to new claims only; dropped permission sets' access went",
    );

    // 4. team-x no longer selected: its access goes, its account stays.
    apply(cp, &namespace("team-x", false)).unwrap();
    let (_, message) = reason_of(
        cp,
        "accountclaim",
        "team-x",
        "app",
        &["NamespaceNotAllowed"],
    )
    .await;
    assert!(
        message.contains(&format!("the account {x} is kept")),
        "{message}"
    );
    until_held(x.clone(), vec![], "team-x's Developer removed").await;
    assert!(
        !get_json(cp, &["awsaccount", "team-x-app"]).is_null(),
        "the account object stays"
    );

    // 5. Class `gone` deleted (its deletionPolicy is Close): access goes, nothing is closed.
    kubectl(cp, &["delete", "accountclass", "gone"], None).unwrap();
    let (_, message) = reason_of(cp, "accountclaim", "team-y", "app", &["ClassNotFound"]).await;
    assert!(
        message.contains("the access given through the class is removed"),
        "{message}"
    );
    reason_of(
        cp,
        "accessclaim",
        "team-y",
        "inc",
        &["ClassNotFound", "AccountClaimWithdrawn"],
    )
    .await;
    until_held(
        y.clone(),
        vec![],
        "team-y's Developer and Administrator removed",
    )
    .await;
    let org = emu.org_client_via(&wire.endpoint);
    for account in [&x, &y] {
        let state = org
            .describe_account()
            .account_id(account)
            .send()
            .await
            .unwrap();
        assert_eq!(
            state.account().and_then(|a| a.state()).map(|s| s.as_str()),
            Some("ACTIVE"),
            "a class change never closes an account"
        );
    }
    assert_eq!(wire.count("CloseAccount"), 0);
    say(
        "e2e: a namespace unselected and a class deleted took the access back and kept the accounts",
    );
}
