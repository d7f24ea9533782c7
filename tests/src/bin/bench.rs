//! `make bench`: the API-call, time and memory budget of keeping N accounts in sync.
//!
//! Seeds the emulator with N accounts over a two-level OU tree, writes matching resources, adopts
//! them once, then measures in one run: an in-sync pass (time, calls by operation, writes), the same
//! pass done the naive way (describe + list-parents + list-tags per resource), convergence after K
//! out-of-band drifts, and — with `LZ_K8S_UP` — the operator process's peak and idle memory and its
//! status writes over a resync in controller mode.
//!
//! `cargo run -p landing-zone-tests --bin bench -- 100,1000` (default 100,1000; `LZ_BENCH_DRIFTS`=K).
//!
//! The "vending" scenario (`LZ_BENCH_SCENARIOS=vending`; both run by default) creates a landing
//! zone of 30 new accounts in 6 OUs, with groups, budgets and a trail, through the realism layer
//! with CreateAccount taking 20 s (`LZ_BENCH_CREATE_SECONDS`): `apply --dir` in one run, and —
//! with `LZ_K8S_UP` — the controller, each against the bound ceil(30/5) × 20 s + 60 s.
//!
//! From 5,000 accounts (100 OUs) the sync scenario measures the controller only ([`bench_large`]).

use landing_zone_operator::metrics::Metrics;
use landing_zone_tests::k8s::{ControlPlane, kubectl};
use landing_zone_tests::operator::{Operator, wait_for};
use landing_zone_tests::proxy::{AwsProxy, CreateAccountModel, Realism};
use landing_zone_tests::{Emulator, apply_waiting, run_dir, workspace_root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The sync scenario's OU tree: top OUs, and leaf OUs under each (the accounts are in the
/// leaves): 5 × 4 (25 OUs) below [`large`] accounts, 10 × 9 (100 OUs) from there.
fn tree(n: usize) -> (usize, usize) {
    if n >= large() { (10, 9) } else { (5, 4) }
}

/// From this many accounts (`LZ_BENCH_LARGE`, default 5,000) the sync scenario measures the
/// controller only (see [`bench_large`]).
fn large() -> usize {
    std::env::var("LZ_BENCH_LARGE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000)
}

/// Whether the accounts keep the baseline inside them (`LZ_BENCH_MEMBER_BASELINE`; default: below
/// [`large`]). From there it is left out because the emulator, not the operator, would bind: moto
/// spends ~60 ms of its one interpreter per call on IAM and STS at 10,000 accounts (measured: 2.6
/// accounts a second with the baseline's five calls each), where AWS throttles IAM per account.
fn member_baseline(n: usize) -> bool {
    std::env::var("LZ_BENCH_MEMBER_BASELINE")
        .map(|v| v == "true")
        .unwrap_or(n < large())
}

/// Organization policies in the sync scenario: one SCP per top OU, a baseline SCP, a tag policy.
fn policies(n: usize) -> usize {
    tree(n).0 + 2
}

/// Seconds spent in AWS calls per operation: where a pass's time goes.
fn seconds_by_op(m: &Metrics) -> BTreeMap<String, f64> {
    m.aws_call_seconds()
        .into_iter()
        .map(|((s, o), secs)| (format!("{s}:{o}"), (secs * 10.0).round() / 10.0))
        .collect()
}

fn by_op(m: &Metrics) -> BTreeMap<String, u64> {
    m.aws_call_counts()
        .into_iter()
        .map(|((s, o), (_, n))| (format!("{s}:{o}"), n))
        .collect()
}

async fn seed(emu: &Emulator, n: usize, dir: &std::path::Path) -> Vec<(String, String)> {
    let o = emu.org_client();
    let root = emu.root_id().await;
    let (tops, children) = tree(n);
    let mut yaml = String::new();
    let mut leaves = Vec::new();
    for t in 0..tops {
        let top = o
            .create_organizational_unit()
            .parent_id(&root)
            .name(format!("Top{t}"))
            .send()
            .await
            .unwrap();
        let top_id = top.organizational_unit().unwrap().id().unwrap().to_string();
        yaml += &format!(
            "---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: top{t}}}\nspec: {{name: Top{t}}}\n"
        );
        for c in 0..children {
            let leaf = o
                .create_organizational_unit()
                .parent_id(&top_id)
                .name(format!("Leaf{t}-{c}"))
                .send()
                .await
                .unwrap();
            leaves.push((
                leaf.organizational_unit()
                    .unwrap()
                    .id()
                    .unwrap()
                    .to_string(),
                format!("leaf{t}-{c}"),
            ));
            yaml += &format!(
                "---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: leaf{t}-{c}}}\nspec: {{name: Leaf{t}-{c}, parentRef: {{name: top{t}}}}}\n"
            );
        }
    }
    // Guardrails: one SCP per top OU, a baseline SCP and a tag policy at the root.
    let scp = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}]}"#;
    for t in 0..tops {
        yaml += &format!(
            "---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata: {{name: guard-top{t}}}\nspec: {{type: ServiceControlPolicy, policyName: guard-top{t}, document: '{scp}', targets: {{organizationalUnitRefs: [{{name: top{t}}}]}}}}\n"
        );
    }
    yaml += &format!(
        "---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata: {{name: deny-leave, labels: {{landingzone.dev/baseline: \"true\"}}}}\nspec: {{type: ServiceControlPolicy, policyName: deny-leave, document: '{scp}', targets: {{root: true}}}}\n---\napiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata: {{name: tagging}}\nspec: {{type: TagPolicy, policyName: tagging, document: '{{\"tags\": {{\"team\": {{\"tag_key\": {{\"@@assign\": \"team\"}}}}}}}}', targets: {{root: true}}}}\n"
    );
    let mut accounts = Vec::new();
    for i in 0..n {
        let out = o
            .create_account()
            .account_name(format!("acct-{i}"))
            .email(format!("aws-acct-{i}@example.com"))
            .tags(
                aws_sdk_organizations::types::Tag::builder()
                    .key("team")
                    .value(format!("t{}", i % 10))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let id = out
            .create_account_status()
            .unwrap()
            .account_id()
            .unwrap()
            .to_string();
        let (leaf, leaf_name) = &leaves[i % leaves.len()];
        emu.move_directly(&id, &root, leaf).await;
        yaml += &format!(
            "---\napiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: acct-{i}}}\nspec: {{accountName: acct-{i}, email: aws-acct-{i}@example.com, organizationalUnitRef: {{name: {leaf_name}}}, tags: {{team: t{}}}, baseline: {}}}\n",
            i % 10,
            member_baseline(n)
        );
        accounts.push((id, leaf.clone()));
        if (i + 1) % 1000 == 0 {
            eprintln!("seeded {} accounts", i + 1);
        }
    }
    std::fs::write(dir.join("lz.yaml"), yaml).unwrap();
    accounts
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds the process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses, which may hold spaces): utime is the 12th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The operator's AWS calls so far, by `service:Operation`.
fn operator_calls(op: &Operator) -> BTreeMap<String, f64> {
    let label = |labels: &str, name: &str| {
        labels
            .split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string()
    };
    let mut out = BTreeMap::new();
    for (labels, v) in op.samples("landingzone_aws_api_calls_total") {
        *out.entry(format!(
            "{}:{}",
            label(&labels, "service"),
            label(&labels, "operation")
        ))
        .or_insert(0.0) += v;
    }
    out
}

/// A resource's own reads (`--full-read-every`): tags, and everything inside member accounts.
fn is_own_read(op: &str) -> bool {
    op.ends_with(":ListTagsForResource")
        || op.starts_with("iam:")
        || op.starts_with("sts:")
        || op.starts_with("account:")
}

/// The calls of one read of the Organization snapshot (each read calls ListRoots once).
const SNAPSHOT_OPS: &[&str] = &[
    "organizations:DescribeOrganization",
    "organizations:ListRoots",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListAccountsForParent",
    "organizations:ListCreateAccountStatus",
];

async fn controller(emu: &Emulator, dir: &std::path::Path, resources: usize) -> Value {
    let Some(k8s) = ControlPlane::dedicated("bench controller memory").await else {
        let skipped = json!("skipped: no Kubernetes control plane (set LZ_K8S_UP)");
        return json!({"memory": skipped, "events": skipped});
    };
    let cp = &k8s.cp;
    landing_zone_tests::k8s::install_crds(cp);
    // A resync at least as long as one paced round of tag reads (8/s) takes.
    let resync = Duration::from_secs((resources as u64 * 3 / 20).max(60));
    let op = Operator::start(
        cp,
        emu,
        "bench",
        &[
            "--resync-interval",
            &format!("{}s", resync.as_secs()),
            "--concurrency",
            "8",
            "--snapshot-ttl",
            "30s", // the default
        ],
    );
    kubectl(
        cp,
        &[
            "apply",
            "--server-side",
            "-f",
            dir.join("lz.yaml").to_str().unwrap(),
        ],
        None,
    )
    .expect("apply the resources");
    let started = Instant::now();
    let ready_metric = |op: &Operator| op.metric("landingzone_resource_ready", &[]);
    wait_for(Duration::from_secs(1800), "every resource Ready", || {
        (ready_metric(&op) as usize >= resources).then_some(())
    })
    .await;
    let to_ready = started.elapsed().as_secs_f64();
    let pid = op.pid();
    let peak = rss_kb(pid, "VmHWM");
    // One full resync with nothing to do: what it writes, and what one pass of polling costs.
    let writes = op.metric("landingzone_status_writes_total", &[]);
    let aws_writes = op.metric("landingzone_aws_api_calls_total", &["kind=\"write\""]);
    let calls = op.metric("landingzone_aws_api_calls_total", &[]);
    let reconciles = op.metric("landingzone_reconciles_total", &[]);
    tokio::time::sleep(resync + Duration::from_secs(10)).await;
    let idle_calls = op.metric("landingzone_aws_api_calls_total", &[]) - calls;
    let idle_reconciles = op.metric("landingzone_reconciles_total", &[]) - reconciles;
    // Per pass of every resource (the window holds about one; jitter makes it a little more or less).
    let calls_per_pass = idle_calls * resources as f64 / idle_reconciles.max(1.0);
    let memory = json!({
        "resources": resources,
        "resyncSeconds": resync.as_secs(),
        "secondsToAllReady": (to_ready * 10.0).round() / 10.0,
        "peakRssMiB": peak as f64 / 1024.0,
        "idleRssMiB": rss_kb(pid, "VmRSS") as f64 / 1024.0,
        "statusWritesOverOneIdleResync": op.metric("landingzone_status_writes_total", &[]) - writes,
        "awsWritesOverOneIdleResync": op.metric("landingzone_aws_api_calls_total", &["kind=\"write\""]) - aws_writes,
        "awsCallsOverOneIdleResync": idle_calls,
        "reconcilesOverOneIdleResync": idle_reconciles,
        "awsCallsPerPass": calls_per_pass.round(),
    });
    drop(op);
    let events = change_events(cp, emu, resources, Some(calls_per_pass)).await;
    json!({"memory": memory, "events": events})
}

/// p95 of a sample: the value at or below which 95 % of it lies (nearest rank).
fn p95(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Change events at this size, in the same cluster: the operator reading a queue with the 1 h
/// resync it then defaults to, idle (what reading the queue costs), then 20 out-of-band changes of
/// five kinds one after the other, each with the event AWS sends: the time from the change to its
/// correction in AWS, and the calls each correction takes. Calls per hour are set against polling
/// every 5 minutes, from the calls of one pass measured just before.
async fn change_events(
    cp: &ControlPlane,
    emu: &Emulator,
    resources: usize,
    calls_per_pass: Option<f64>,
) -> Value {
    const CHANGES: usize = 20;
    let (queue, events) = emu.change_event_queue().await;
    let op = Operator::start(
        cp,
        emu,
        "bench-events",
        &[
            "--change-events-queue-url",
            &queue,
            "--concurrency",
            "8",
            // The default while events arrive: a quarter of the 1 h resync.
            "--snapshot-ttl",
            "15m",
        ],
    );
    let started = Instant::now();
    wait_for(
        Duration::from_secs(7200),
        "every resource Ready again",
        || (op.metric("landingzone_resource_ready", &[]) as usize >= resources).then_some(()),
    )
    .await;
    // The start-up pass is over when the reconciles stop.
    let mut last = -1.0;
    while op.metric("landingzone_reconciles_total", &[]) != last {
        last = op.metric("landingzone_reconciles_total", &[]);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let to_ready = started.elapsed().as_secs_f64();
    // The start-up pass reads every resource in full (nothing is remembered across a restart): an
    // in-sync pass of the controller. Its calls split into the resources' own reads and the rest.
    let pass_calls = operator_calls(&op);
    let pass_total: f64 = pass_calls.values().sum();
    let own: f64 = pass_calls
        .iter()
        .filter(|(k, _)| is_own_read(k))
        .map(|(_, v)| v)
        .sum();
    let snapshot_reads = pass_calls
        .get("organizations:ListRoots")
        .copied()
        .unwrap_or(1.0)
        .max(1.0);
    let snapshot_calls: f64 = SNAPSHOT_OPS.iter().filter_map(|k| pass_calls.get(*k)).sum();
    let calls_per_snapshot = snapshot_calls / snapshot_reads;
    let peak_rss = rss_kb(op.pid(), "VmHWM") as f64 / 1024.0;
    let cpu = cpu_seconds(op.pid());
    let calls_per_pass = calls_per_pass.unwrap_or(pass_total);
    assert_eq!(
        op.metric("landingzone_change_events_live", &[]),
        1.0,
        "reading the queue: {}",
        op.log_tail()
    );
    // Idle: only the queue is read (a 20 s long poll).
    let window = Duration::from_secs(120);
    let calls = op.metric("landingzone_aws_api_calls_total", &[]);
    tokio::time::sleep(window).await;
    let idle_calls_per_hour =
        (op.metric("landingzone_aws_api_calls_total", &[]) - calls) * 3600.0 / window.as_secs_f64();

    let o = emu.org_client();
    let root = emu.root_id().await;
    let ous = landing_zone_operator::reconcile::OrgSnapshot::load(
        emu.ports_direct().await.organizations.as_ref(),
    )
    .await
    .unwrap();
    let mut leaves: Vec<(String, String)> = ous
        .ous
        .values()
        .filter(|ou| ou.name.starts_with("Leaf"))
        .map(|ou| (ou.id.clone(), ou.name.clone()))
        .collect();
    leaves.sort();
    let mut tops: Vec<(String, String)> = ous
        .ous
        .values()
        .filter(|ou| ou.name.starts_with("Top"))
        .map(|ou| (ou.id.clone(), ou.name.clone()))
        .collect();
    tops.sort_by(|a, b| a.1.cmp(&b.1));
    let mut accounts: Vec<(String, String)> = ous
        .accounts
        .values()
        .filter(|a| a.name.starts_with("acct-"))
        .map(|a| (a.id.clone(), a.parent_id.clone().unwrap_or_default()))
        .collect();
    accounts.sort();
    let policies = o
        .list_policies()
        .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
        .send()
        .await
        .unwrap();
    let guard = |t: usize| {
        policies
            .policies()
            .iter()
            .find(|p| p.name() == Some(&format!("guard-top{t}")))
            .and_then(|p| p.id())
            .unwrap()
            .to_string()
    };
    let calls = op.metric("landingzone_aws_api_calls_total", &[]);
    let changed_at = Instant::now();
    let mut latencies = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..CHANGES {
        let round = i / 5;
        let t = Instant::now();
        let (name, params, kind) = match i % 5 {
            0 => {
                let (id, leaf) = &accounts[round * 7];
                emu.move_directly(id, leaf, &root).await;
                (
                    "MoveAccount",
                    json!({"accountId": id, "sourceParentId": leaf, "destinationParentId": root}),
                    "account moved",
                )
            }
            1 => {
                let (id, _) = &accounts[round * 7 + 1];
                o.untag_resource()
                    .resource_id(id)
                    .tag_keys("team")
                    .send()
                    .await
                    .unwrap();
                (
                    "UntagResource",
                    json!({"resourceId": id, "tagKeys": ["team"]}),
                    "account tag removed",
                )
            }
            2 => {
                let (id, _) = &leaves[round];
                o.update_organizational_unit()
                    .organizational_unit_id(id)
                    .name(format!("Renamed{round}"))
                    .send()
                    .await
                    .unwrap();
                (
                    "UpdateOrganizationalUnit",
                    json!({"organizationalUnitId": id, "name": format!("Renamed{round}")}),
                    "OU renamed",
                )
            }
            3 => {
                let (top, _) = &tops[round];
                o.detach_policy()
                    .policy_id(guard(round))
                    .target_id(top)
                    .send()
                    .await
                    .unwrap();
                (
                    "DetachPolicy",
                    json!({"policyId": guard(round), "targetId": top}),
                    "guardrail detached",
                )
            }
            _ => {
                let id = guard((round + 1) % tops.len());
                o.update_policy().policy_id(&id).content(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#).send().await.unwrap();
                (
                    "UpdatePolicy",
                    json!({"policyId": id}),
                    "guardrail rewritten",
                )
            }
        };
        landing_zone_tests::publish_organizations_call(
            &events,
            name,
            params,
            landing_zone_tests::PERSON,
        )
        .await;
        let limit = Duration::from_secs(120);
        let mut fixed = false;
        while t.elapsed() < limit && !fixed {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fixed = match i % 5 {
                0 => emu.parent_of(&accounts[round * 7].0).await == accounts[round * 7].1,
                1 => o
                    .list_tags_for_resource()
                    .resource_id(&accounts[round * 7 + 1].0)
                    .send()
                    .await
                    .unwrap()
                    .tags()
                    .iter()
                    .any(|t| t.key() == "team"),
                2 => {
                    o.describe_organizational_unit()
                        .organizational_unit_id(&leaves[round].0)
                        .send()
                        .await
                        .unwrap()
                        .organizational_unit()
                        .and_then(|u| u.name())
                        == Some(leaves[round].1.as_str())
                }
                3 => o
                    .list_targets_for_policy()
                    .policy_id(guard(round))
                    .send()
                    .await
                    .unwrap()
                    .targets()
                    .iter()
                    .any(|x| x.target_id() == Some(tops[round].0.as_str())),
                _ => !o
                    .describe_policy()
                    .policy_id(guard((round + 1) % tops.len()))
                    .send()
                    .await
                    .unwrap()
                    .policy()
                    .and_then(|p| p.content())
                    .unwrap_or_default()
                    .contains("\"Allow\""),
            };
        }
        assert!(
            fixed,
            "{kind} (change {i}) not corrected within {} s: {}",
            limit.as_secs(),
            op.log_tail()
        );
        latencies.push(round2(t.elapsed().as_secs_f64()));
        kinds.push(kind);
    }
    let changes_secs = changed_at.elapsed().as_secs_f64();
    // What the corrections cost, less the queue reads of the same time.
    let correction_calls = (op.metric("landingzone_aws_api_calls_total", &[])
        - calls
        - idle_calls_per_hour * changes_secs / 3600.0)
        .max(0.0);
    let per_correction = correction_calls / CHANGES as f64;
    let polling = calls_per_pass * 12.0;
    // An hour while events arrive: one resync of every resource, whose own reads are made at
    // every third (`--full-read-every`, default 3), the rest of the start-up pass's calls, with the
    // Organization read at every 15 min snapshot TTL (an upper bound: resyncs spread over the hour),
    // and the queue's long polls.
    const FULL_READ_EVERY: f64 = 3.0;
    let queue_calls: f64 = pass_calls
        .iter()
        .filter(|(k, _)| k.starts_with("sqs:"))
        .map(|(_, v)| v)
        .sum();
    let structure = pass_total - own - snapshot_calls - queue_calls;
    let resync_per_hour = own / FULL_READ_EVERY + structure + calls_per_snapshot * 4.0;
    let event_driven = resync_per_hour + idle_calls_per_hour;
    json!({
        "secondsToAllReadyAfterRestart": round2(to_ready),
        "startupPass": {
            "seconds": round2(to_ready),
            "calls": pass_total,
            "ownReads": own,
            "snapshotReads": snapshot_reads,
            "callsPerSnapshot": calls_per_snapshot.round(),
            "callsByOperation": pass_calls,
            "peakRssMiB": round2(peak_rss),
            "cpuSeconds": round2(cpu),
        },
        "pollingCallsPerPass": calls_per_pass.round(),
        "resyncCallsPerHour": resync_per_hour.round(),
        "changes": CHANGES,
        "kinds": kinds,
        "latencySeconds": latencies,
        "eventDriftLatencyP95Seconds": p95(&latencies),
        "eventDriftLatencyMaxSeconds": latencies.iter().cloned().fold(0.0, f64::max),
        "awsCallsPerCorrection": round2(per_correction),
        "queueReadsPerHour": idle_calls_per_hour.round(),
        "pollingCallsPerHour": polling.round(),
        "eventDrivenCallsPerHour": event_driven.round(),
        "steadyStateCallRatio": round2(polling / event_driven.max(1.0)),
        // With the 20 changes measured here every hour.
        "eventDrivenCallsPerHourWith20Changes": (event_driven + correction_calls).round(),
        "callRatioWith20ChangesPerHour": round2(polling / (event_driven + correction_calls).max(1.0)),
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The sync scenario from [`large`] accounts: the controller only, as it runs in production
/// (change events arriving, the 1 h resync). From `kubectl apply` to every resource Ready (the
/// adoption), then a restart whose start-up pass reads every resource in full — the in-sync pass —
/// then the queue idle and 20 change events. The CLI's passes, the naive pass, the drifts and
/// import are left out at this size: each is one more full pass (21 min at 10,000 accounts).
async fn bench_large(n: usize) -> Value {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    seed(&emu, n, dir.path()).await;
    let seed_secs = t.elapsed().as_secs_f64();
    let (tops, children) = tree(n);
    let ous = tops + tops * children;
    let resources = n + ous + policies(n);
    let Some(k8s) = ControlPlane::dedicated("bench controller at scale").await else {
        return json!({"accounts": n, "ous": ous, "seedSeconds": round(seed_secs), "controller": "skipped: no Kubernetes control plane (set LZ_K8S_UP)"});
    };
    let cp = &k8s.cp;
    landing_zone_tests::k8s::install_crds(cp);
    let (queue, _events) = emu.change_event_queue().await;
    let op = Operator::start(
        cp,
        &emu,
        "bench-adopt",
        &["--change-events-queue-url", &queue, "--concurrency", "8"],
    );
    let t = Instant::now();
    kubectl(
        cp,
        &[
            "apply",
            "--server-side",
            "-f",
            dir.path().join("lz.yaml").to_str().unwrap(),
        ],
        None,
    )
    .expect("apply the resources");
    let apply_secs = t.elapsed().as_secs_f64();
    wait_for(Duration::from_secs(7200), "every resource Ready", || {
        (op.metric("landingzone_resource_ready", &[]) as usize >= resources).then_some(())
    })
    .await;
    let adopt = json!({
        "kubectlApplySeconds": round(apply_secs),
        "secondsToAllReady": round(t.elapsed().as_secs_f64()),
        "awsCalls": op.metric("landingzone_aws_api_calls_total", &[]),
        "awsWrites": op.metric("landingzone_aws_api_calls_total", &["kind=\"write\""]),
        "peakRssMiB": round(rss_kb(op.pid(), "VmHWM") as f64 / 1024.0),
        "cpuSeconds": round(cpu_seconds(op.pid())),
    });
    drop(op);
    let events = change_events(cp, &emu, resources, None).await;
    json!({
        "accounts": n,
        "ous": ous,
        "resources": resources,
        "memberBaseline": member_baseline(n),
        "seedSeconds": round(seed_secs),
        "adoption": adopt,
        "inSyncPass": events["startupPass"],
        "eventDriftLatencyP95Seconds": events["eventDriftLatencyP95Seconds"],
        "steadyStateCallRatio": events["steadyStateCallRatio"],
        "changeEvents": events,
    })
}

async fn bench(n: usize, drifts: usize) -> Value {
    let emu = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let accounts = seed(&emu, n, dir.path()).await;
    let seed_secs = t.elapsed().as_secs_f64();
    let state = dir.path().join("state.json");
    let (tops, children) = tree(n);
    let ous = tops + tops * children;

    // Adopt once (sets each account's password policy), then the measured in-sync pass.
    let adopt = run_dir(emu.ports_direct().await, dir.path(), &state, true, false).await;
    assert!(
        !adopt.failed(),
        "adoption failed: {:?}",
        adopt.reports.iter().find(|r| r.result.is_err())
    );
    let t = Instant::now();
    let pass = run_dir(emu.ports_direct().await, dir.path(), &state, true, false).await;
    let pass_secs = t.elapsed().as_secs_f64();
    let calls = by_op(&pass.metrics);
    let sum = |f: &dyn Fn(&str) -> bool| {
        calls
            .iter()
            .filter(|(k, _)| f(k))
            .map(|(_, v)| v)
            .sum::<u64>()
    };
    let policy_op = |k: &str| {
        [
            "DescribePolicy",
            "ListTargetsForPolicy",
            "ListPolicies",
            "ListPoliciesForTarget",
        ]
        .iter()
        .any(|op| k == format!("organizations:{op}"))
    };
    let policy_reads = sum(&|k| policy_op(k));
    let structure = sum(&|k| {
        k.starts_with("organizations:") && !k.ends_with("ListTagsForResource") && !policy_op(k)
    });
    let tags = sum(&|k| k.ends_with("ListTagsForResource"));
    let member =
        sum(&|k| k.starts_with("iam:") || k.starts_with("sts:") || k.starts_with("account:"));
    let writes = pass.metrics.aws_calls_of_kind("write");

    // The naive way: one describe, one list-parents and one list-tags per resource.
    let o = emu.org_client();
    let t = Instant::now();
    let mut naive_structure = 0u64;
    let mut naive_tags = 0u64;
    for (id, _) in &accounts {
        o.describe_account().account_id(id).send().await.unwrap();
        o.list_parents().child_id(id).send().await.unwrap();
        o.list_tags_for_resource()
            .resource_id(id)
            .send()
            .await
            .unwrap();
        naive_structure += 2;
        naive_tags += 1;
    }
    let snapshot = landing_zone_operator::reconcile::OrgSnapshot::load(
        emu.ports_direct().await.organizations.as_ref(),
    )
    .await
    .unwrap();
    for ou in snapshot.ous.keys() {
        o.describe_organizational_unit()
            .organizational_unit_id(ou)
            .send()
            .await
            .unwrap();
        o.list_parents().child_id(ou).send().await.unwrap();
        o.list_tags_for_resource()
            .resource_id(ou)
            .send()
            .await
            .unwrap();
        naive_structure += 2;
        naive_tags += 1;
    }
    let naive_secs = t.elapsed().as_secs_f64();

    // K drifts out of band (half moved to the root, half with a tag removed): time to converge.
    let root = snapshot.root_id.clone();
    for (i, (id, leaf)) in accounts.iter().take(drifts).enumerate() {
        if i % 2 == 0 {
            emu.move_directly(id, leaf, &root).await;
        } else {
            o.untag_resource()
                .resource_id(id)
                .tag_keys("team")
                .send()
                .await
                .unwrap();
        }
    }
    let t = Instant::now();
    let fix = run_dir(emu.ports_direct().await, dir.path(), &state, true, false).await;
    let converge_secs = t.elapsed().as_secs_f64();
    let fixed_writes = fix.metrics.aws_calls_of_kind("write");
    let import = import_round_trip(&emu, dir.path()).await;
    let controller = controller(&emu, dir.path(), n + ous + policies(n)).await;

    let round = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "accounts": n,
        "ous": ous,
        "seedSeconds": round(seed_secs),
        "inSyncPass": {
            "seconds": round(pass_secs),
            "structureReads": structure,
            "structureBudget": n / 20 + 2 * ous + 5,
            "tagReads": tags,
            "policies": policies(n),
            "policyReads": policy_reads,
            "policyReadsBudget": 2 * policies(n),
            "memberAccountReads": member,
            "writes": writes,
            "callsByOperation": calls,
            "callSecondsByOperation": seconds_by_op(&pass.metrics),
        },
        "naivePass": {"seconds": round(naive_secs), "structureReads": naive_structure, "tagReads": naive_tags},
        "structureRatio": round(naive_structure as f64 / structure.max(1) as f64),
        "organizationsRatio": round((naive_structure + naive_tags) as f64 / (structure + tags).max(1) as f64),
        "drift": {"k": drifts, "secondsToConverge": round(converge_secs), "writes": fixed_writes},
        "import": import,
        "eventDriftLatencyP95Seconds": controller["events"]["eventDriftLatencyP95Seconds"],
        "steadyStateCallRatio": controller["events"]["steadyStateCallRatio"],
        "controller": controller["memory"],
        "changeEvents": controller["events"],
    })
}

/// `import` of the same Organization (its check pass included), then `plan` over what it wrote:
/// time, AWS reads, and the resources that plan would still change (0 when import is exact).
/// Through the realism layer (10 ms per call), which answers the IAM root-access reads the
/// emulator lacks.
async fn import_round_trip(emu: &Emulator, dir: &std::path::Path) -> Value {
    use landing_zone_operator::cli::import;
    let out = dir.join("imported");
    let args = landing_zone_tests::import_args(&out, false);
    let ports = emu.ports().await;
    let metrics = ports.metrics.clone();
    let t = Instant::now();
    let summary = import(&args, ports).await.expect("import");
    let import_secs = t.elapsed().as_secs_f64();
    let plan = run_dir(emu.ports().await, &out, &args.state, false, false).await;
    let changed = plan
        .reports
        .iter()
        .filter(|r| {
            r.result
                .as_ref()
                .map_or(true, |p| !p.actions.is_empty() || !p.drift.is_empty())
        })
        .count();
    json!({
        "seconds": round(import_secs),
        "reads": metrics.aws_calls_of_kind("read"),
        "writes": metrics.aws_calls_of_kind("write"),
        "resources": plan.reports.len(),
        "planResourcesWithChangesOrDrift": changed,
        "notDescribedExactly": summary.contains("Not described exactly"),
    })
}

/// One decimal.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// New accounts in the vending scenario (`LZ_BENCH_VENDING_ACCOUNTS`, default 30), and the OUs
/// they go in (`LZ_BENCH_VENDING_OUS`, default a tenth of them, at least 6).
#[derive(Clone, Copy)]
struct VendingSize {
    accounts: usize,
    ous: usize,
}

impl VendingSize {
    fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
        };
        let accounts = var("LZ_BENCH_VENDING_ACCOUNTS").unwrap_or(30).max(1);
        let ous = var("LZ_BENCH_VENDING_OUS")
            .unwrap_or((accounts / 10).max(6))
            .clamp(1, accounts);
        Self { accounts, ous }
    }

    /// Accounts of OU `o` (1-based): the remainder goes to the first OUs.
    fn in_ou(self, o: usize) -> usize {
        self.accounts / self.ous + usize::from(o <= self.accounts % self.ous)
    }
}

/// Times the operator is killed (SIGKILL) and restarted during the controller run
/// (`LZ_BENCH_KILLS`, default 2).
fn kills() -> usize {
    std::env::var("LZ_BENCH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}
const BASELINE_REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// The security baseline's calls in a pass: inside the accounts (S3 Control, EC2, Config, the
/// account's contacts, the support role) and the role sessions behind them.
fn baseline_calls(m: &Metrics) -> (u64, u64) {
    let mut reads = 0;
    let mut writes = 0;
    for ((service, op), (kind, n)) in m.aws_call_counts() {
        let baseline = matches!(
            service.as_str(),
            "ec2" | "config service" | "s3 control" | "account"
        ) || (service == "iam"
            && matches!(
                op.as_str(),
                "GetRole"
                    | "ListAttachedRolePolicies"
                    | "CreateRole"
                    | "AttachRolePolicy"
                    | "UpdateAssumeRolePolicy"
                    | "CreateServiceLinkedRole"
            ));
        if baseline {
            if kind == "write" {
                writes += n;
            } else {
                reads += n;
            }
        }
    }
    (reads, writes)
}

/// The vending landing zone: by default 6 OUs, 5 new accounts in each with an alias, a developer
/// group and a budget per OU, an organization trail, the Organization's settings, a guardrail on
/// every OU, an OU-wide Identity Center assignment reaching every account, and the security baseline
/// on every OU in two regions (AWS Config delivering to a bucket in team-1-app-1).
fn vending_yaml(size: VendingSize) -> (String, usize) {
    let mut docs = Vec::new();
    for o in 1..=size.ous {
        docs.push(format!("apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationalUnit\nmetadata: {{name: team-{o}}}\nspec: {{name: Team{o}}}\n"));
        docs.push(format!(
            "apiVersion: landingzone.dev/v1alpha1\nkind: IdentityGroup\nmetadata: {{name: team-{o}-developers}}\nspec:\n  groupName: developers\n  accountRef: {{name: team-{o}-app-1}}\n  inlinePolicies:\n  - name: read-only\n    document: '{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Effect\": \"Allow\", \"Action\": [\"s3:Get*\"], \"Resource\": \"*\"}}]}}'\n  members: [dev-{o}]\n  createMissingUsers: true\n"
        ));
        docs.push(format!(
            "apiVersion: landingzone.dev/v1alpha1\nkind: Budget\nmetadata: {{name: team-{o}-monthly}}\nspec:\n  budgetName: team-{o}-monthly\n  accountRef: {{name: team-{o}-app-1}}\n  limit: {{amount: \"500\", unit: USD}}\n  timeUnit: MONTHLY\n  notifications:\n  - {{notificationType: ACTUAL, threshold: 80, subscribers: {{emails: [team-{o}@example.com]}}}}\n"
        ));
        for a in 1..=size.in_ou(o) {
            docs.push(format!(
                "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: team-{o}-app-{a}}}\nspec:\n  accountName: team-{o}-app-{a}\n  email: aws-team-{o}-app-{a}@example.com\n  alias: example-team-{o}-app-{a}\n  organizationalUnitRef: {{name: team-{o}}}\n"
            ));
        }
    }
    docs.push("apiVersion: landingzone.dev/v1alpha1\nkind: AuditTrail\nmetadata: {name: org-trail}\nspec:\n  trailName: org-trail\n  s3: {bucketName: vending-audit-logs, create: true}\n".to_string());
    // The Organization's settings, a guardrail on every team OU, and Identity Center access to
    // every new account through an OU-wide assignment per OU.
    let ous: Vec<String> = (1..=size.ous)
        .map(|o| format!("{{name: team-{o}}}"))
        .collect();
    docs.push("apiVersion: landingzone.dev/v1alpha1\nkind: Organization\nmetadata: {name: organization}\nspec:\n  policyTypes: [ServiceControlPolicy]\n  trustedServices: [cloudtrail.amazonaws.com, guardduty.amazonaws.com]\n  delegatedAdministrators:\n  - {servicePrincipal: guardduty.amazonaws.com, accountRef: {name: team-1-app-1}}\n  rootAccess: {credentialsManagement: true, rootSessions: true}\n".to_string());
    docs.push(format!("apiVersion: landingzone.dev/v1alpha1\nkind: OrganizationPolicy\nmetadata: {{name: deny-leave}}\nspec:\n  type: ServiceControlPolicy\n  policyName: deny-leave\n  document: '{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Effect\": \"Deny\", \"Action\": \"organizations:LeaveOrganization\", \"Resource\": \"*\"}}]}}'\n  targets:\n    organizationalUnitRefs: [{}]\n", ous.join(", ")));
    docs.push("apiVersion: landingzone.dev/v1alpha1\nkind: IdentityCenterGroup\nmetadata: {name: developers}\nspec: {displayName: developers}\n".to_string());
    docs.push(format!("apiVersion: landingzone.dev/v1alpha1\nkind: PermissionSet\nmetadata: {{name: developer}}\nspec:\n  name: Developer\n  managedPolicyArns: [arn:aws:iam::aws:policy/PowerUserAccess]\n  assignments:\n  - group: developers\n    organizationalUnitRefs: [{}]\n", ous.join(", ")));
    docs.push(format!("apiVersion: landingzone.dev/v1alpha1\nkind: SecurityBaseline\nmetadata: {{name: cis}}\nspec:\n  targets: {{organizationalUnitRefs: [{}]}}\n  regions: [{}]\n  s3BlockPublicAccess: true\n  ebsDefaultEncryption: {{enabled: true}}\n  instanceMetadataV2Default: true\n  defaultVpcs: DeleteWhenUnused\n  supportRole: {{roleName: aws-support}}\n  securityContact: {{name: Security, title: Security, email: security@example.com, phoneNumber: \"+1 555 0100\"}}\n  config: {{deliveryBucket: {{name: vending-config, accountRef: {{name: team-1-app-1}}, create: true}}}}\n", ous.join(", "), BASELINE_REGIONS.join(", ")));
    let n = docs.len();
    (docs.join("---\n"), n)
}

async fn realistic_aws(create: Duration) -> (Emulator, AwsProxy) {
    // AWS managed policies loaded: the security baseline's support role attaches AWSSupportAccess.
    let emu = Emulator::with_managed_policies().await;
    let proxy = AwsProxy::start(&emu.endpoint).await;
    proxy.realism(Realism {
        latency: Duration::from_millis(20),
        create_account: Some(CreateAccountModel {
            duration: create,
            visible_after: Duration::from_secs(2),
            assumable_after: Duration::from_secs(5),
            ..Default::default()
        }),
        iam_visibility_lag: Duration::from_secs(1),
        root_access: true,
        policies: true,
        identity_center: Some(landing_zone_tests::proxy::IdentityCenterModel {
            duration: Duration::from_secs(2),
            ..Default::default()
        }),
        ..Default::default()
    });
    (emu, proxy)
}

/// When AWS accepted each CreateAccount, in seconds since `started`, earliest first.
fn request_times(proxy: &AwsProxy, started: Instant) -> Vec<f64> {
    let mut at: Vec<f64> = proxy
        .create_requests()
        .iter()
        .filter(|r| r.failure.is_none())
        .map(|r| r.at.saturating_duration_since(started).as_secs_f64())
        .collect();
    at.sort_by(f64::total_cmp);
    at
}

/// Where a vending run's time went beyond AWS's own: from the start to the first CreateAccount,
/// how long a freed request slot stayed unused before the next CreateAccount (every request past
/// the first five waits for the oldest in flight to finish), and from the last account created to
/// the end of the run.
fn create_timeline(proxy: &AwsProxy, started: Instant, create: Duration, secs: f64) -> Value {
    let at = request_times(proxy, started);
    let slots = landing_zone_operator::aws::pacing::MAX_CREATE_IN_FLIGHT;
    let mut idle: Vec<f64> = (slots..at.len())
        .map(|k| (at[k] - at[k - slots] - create.as_secs_f64()).max(0.0))
        .collect();
    idle.sort_by(f64::total_cmp);
    let sum: f64 = idle.iter().sum();
    // The idle time in two parts: until the operator learnt that a request had ended (its
    // polling), and from then to its next CreateAccount (the rest of its round, the pacing).
    let mut requests: Vec<_> = proxy
        .create_requests()
        .into_iter()
        .filter(|r| r.failure.is_none())
        .collect();
    requests.sort_by_key(|r| r.at);
    let learnt: Vec<Option<f64>> = requests
        .iter()
        .map(|r| {
            r.seen_ended_at
                .map(|t| t.saturating_duration_since(started).as_secs_f64())
        })
        .collect();
    let detect: Vec<f64> = requests
        .iter()
        .zip(&learnt)
        .filter_map(|(r, l)| {
            Some(l.as_ref()? - (r.at.saturating_duration_since(started) + create).as_secs_f64())
        })
        .collect();
    let issue: Vec<f64> = (slots..at.len())
        .filter_map(|k| Some((at[k] - learnt[k - slots]?).max(0.0)))
        .collect();
    let summary = |v: &[f64]| {
        let total: f64 = v.iter().sum();
        json!({
            "mean": if v.is_empty() { None } else { Some((total / v.len() as f64 * 100.0).round() / 100.0) },
            "max": v.iter().copied().fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))).map(round),
        })
    };
    json!({
        "firstRequestSeconds": at.first().map(|s| round(*s)),
        "slotIdleSeconds": {
            "total": round(sum),
            "mean": if idle.is_empty() { None } else { Some((sum / idle.len() as f64 * 100.0).round() / 100.0) },
            "max": idle.last().map(|s| round(*s)),
            "untilSeenEnded": summary(&detect),
            "seenEndedToNextRequest": summary(&issue),
        },
        "lastCreatedToDoneSeconds": at.last().map(|s| round(secs - s - create.as_secs_f64())),
    })
}

/// What each SIGKILL cost: how long the first slot to free up after it (or the kill itself, if a
/// slot was free) stayed unused until the restarted operator sent the next CreateAccount. A live
/// operator would have sent it then; the bound allows the run this much more.
fn restart_costs(
    proxy: &AwsProxy,
    started: Instant,
    create: Duration,
    kills_at: &[f64],
) -> Vec<f64> {
    let at = request_times(proxy, started);
    let create = create.as_secs_f64();
    kills_at
        .iter()
        .map(|&kill| {
            let in_flight: Vec<f64> = at
                .iter()
                .copied()
                .filter(|&a| a <= kill && a + create > kill)
                .collect();
            let slot_free =
                if in_flight.len() < landing_zone_operator::aws::pacing::MAX_CREATE_IN_FLIGHT {
                    kill
                } else {
                    in_flight.iter().copied().fold(f64::INFINITY, f64::min) + create
                };
            at.iter()
                .copied()
                .find(|&a| a > kill)
                .map_or(0.0, |next| round((next - slot_free).max(0.0)))
        })
        .collect()
}

/// Accounts sharing a root email: each is a second account for one resource.
async fn duplicate_accounts(emu: &Emulator) -> usize {
    let mut pages = emu.org_client().list_accounts().into_paginator().send();
    let mut emails: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(page) = pages.next().await {
        for a in page.unwrap().accounts() {
            *emails
                .entry(a.email().unwrap_or_default().to_ascii_lowercase())
                .or_default() += 1;
        }
    }
    emails.values().map(|n| n - 1).sum()
}

async fn vending(create: Duration, size: VendingSize) -> Value {
    let bound = (size.accounts.div_ceil(5) as u64) * create.as_secs() + 60;
    let (yaml, resources) = vending_yaml(size);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lz.yaml"), &yaml).unwrap();

    // apply --dir, once.
    let (emu, proxy) = realistic_aws(create).await;
    let ports = emu.ports_via(&proxy.endpoint, 5).await;
    let first_metrics = ports.metrics.clone();
    let started = Instant::now();
    let run = apply_waiting(
        ports,
        dir.path(),
        &dir.path().join("state.json"),
        false,
        Duration::from_secs(bound * 3),
    )
    .await;
    let cli_secs = started.elapsed().as_secs_f64();
    let failed: Vec<String> = run
        .reports
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.key.to_string())
        .collect();
    // The same directory again: in sync, so what one resync costs.
    let ports = emu.ports_via(&proxy.endpoint, 5).await;
    let metrics = ports.metrics.clone();
    let again = Instant::now();
    let second = apply_waiting(
        ports,
        dir.path(),
        &dir.path().join("state.json"),
        false,
        Duration::from_secs(bound),
    )
    .await;
    let (baseline_reads, baseline_writes) = baseline_calls(&metrics);
    let baseline = second
        .reports
        .iter()
        .find(|r| r.key.kind.as_str() == "SecurityBaseline")
        .and_then(|r| r.result.as_ref().ok())
        .map(|p| match &p.ready {
            landing_zone_operator::reconcile::Readiness::Ready { reason, message }
            | landing_zone_operator::reconcile::Readiness::NotReady { reason, message } => {
                format!("{reason}: {message}")
            }
        })
        .unwrap_or_else(|| "failed".into());
    let in_sync = json!({
        "seconds": round(again.elapsed().as_secs_f64()),
        "reads": metrics.aws_calls_of_kind("read"),
        "writes": metrics.aws_calls_of_kind("write"),
        "securityBaseline": baseline,
        "baselineReads": baseline_reads,
        "baselineWrites": baseline_writes,
        "baselineReadsPerAccount": round(baseline_reads as f64 / size.accounts as f64),
        "baselineRegions": BASELINE_REGIONS.len(),
    });
    let (first_baseline_reads, first_baseline_writes) = baseline_calls(&first_metrics);
    let cli = json!({
        "reads": first_metrics.aws_calls_of_kind("read"),
        "writes": first_metrics.aws_calls_of_kind("write"),
        "baselineReads": first_baseline_reads,
        "baselineWrites": first_baseline_writes,
        "inSyncPass": in_sync,
        "seconds": round(cli_secs),
        "exitCode": if run.failed() { 1 } else { 0 },
        "failed": failed,
        "createAccountCalls": proxy.count("CreateAccount"),
        "createAccountAssignmentCalls": proxy.count("CreateAccountAssignment"),
        "duplicateAccounts": duplicate_accounts(&emu).await,
        "withinBound": cli_secs <= bound as f64,
        "timeline": create_timeline(&proxy, started, create, cli_secs),
        // Whole reads of the Organization (each a DescribeOrganization, then the tree paced at
        // 4 calls/s): reads the run could not avoid by merging its own changes.
        "snapshotReads": first_metrics
            .aws_call_counts()
            .into_iter()
            .filter(|((service, op), _)| service == "organizations" && op == "DescribeOrganization")
            .map(|(_, (_, n))| n)
            .sum::<u64>(),
        // The bench process, which runs `apply` in-process (with the realism layer beside it).
        "peakRssMiB": round(rss_kb(std::process::id(), "VmHWM") as f64 / 1024.0),
    });
    drop(proxy);
    drop(emu);

    // The controller, from `kubectl apply` to every resource Ready.
    let controller = match ControlPlane::dedicated("bench vending").await {
        None => json!("skipped: no Kubernetes control plane (set LZ_K8S_UP)"),
        Some(k8s) => {
            let cp = &k8s.cp;
            landing_zone_tests::k8s::install_crds(cp);
            let (emu, proxy) = realistic_aws(create).await;
            let start = |identity: &str| {
                Operator::start(
                    cp,
                    &emu,
                    identity,
                    &["--endpoint-url", &proxy.endpoint, "--snapshot-ttl", "30s"],
                )
            };
            let mut op = start("vending");
            let started = Instant::now();
            kubectl(
                cp,
                &[
                    "apply",
                    "--server-side",
                    "-f",
                    dir.path().join("lz.yaml").to_str().unwrap(),
                ],
                None,
            )
            .expect("apply the resources");
            // SIGKILL while accounts are being created (a third and two thirds into the
            // creations' share of the bound), restarted at once: the new process waits out the
            // killed one's lease, then carries on from status.
            let kills = kills();
            let creating = (bound - 60) as f64;
            let mut kill_at: Vec<f64> = (1..=kills)
                .map(|k| creating * k as f64 / (kills + 1) as f64)
                .collect();
            let (mut peak_kb, mut killed) = (0u64, Vec::new());
            let limit = Duration::from_secs(bound * 3);
            let ready = loop {
                peak_kb = peak_kb.max(rss_kb(op.pid(), "VmHWM"));
                if op.metric("landingzone_resource_ready", &[]) as usize >= resources {
                    break true;
                }
                if started.elapsed() >= limit {
                    break false;
                }
                if kill_at
                    .first()
                    .is_some_and(|t| started.elapsed().as_secs_f64() >= *t)
                {
                    kill_at.remove(0);
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &op.pid().to_string()])
                        .status();
                    killed.push(json!({
                        "atSeconds": round(started.elapsed().as_secs_f64()),
                        "createAccountCallsSoFar": proxy.count("CreateAccount"),
                    }));
                    op = start(&format!("vending-{}", killed.len()));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            };
            let secs = started.elapsed().as_secs_f64();
            let kills_at: Vec<f64> = killed
                .iter()
                .filter_map(|k| k["atSeconds"].as_f64())
                .collect();
            let costs = restart_costs(&proxy, started, create, &kills_at);
            for (k, cost) in killed.iter_mut().zip(&costs) {
                k["restartSeconds"] = json!(cost);
            }
            let allowance = bound as f64 + costs.iter().sum::<f64>();
            json!({
                "boundWithRestartsSeconds": round(allowance),
                "seconds": round(secs),
                "allReady": ready,
                "readyResources": op.metric("landingzone_resource_ready", &[]),
                "createAccountCalls": proxy.count("CreateAccount"),
                "duplicateAccounts": duplicate_accounts(&emu).await,
                "timeline": create_timeline(&proxy, started, create, secs),
                "kills": killed,
                "peakRssMiB": round(peak_kb as f64 / 1024.0),
                "withinBound": ready && secs <= allowance,
            })
        }
    };
    json!({
        "scenario": "vending",
        "accounts": size.accounts,
        "ous": size.ous,
        "resources": resources,
        "createAccountSeconds": create.as_secs(),
        "boundSeconds": bound,
        "apply": cli,
        "controller": controller,
    })
}

#[tokio::main]
async fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::var("LZ_BENCH_ACCOUNTS").unwrap_or_else(|_| "100,1000".into())
    });
    let sizes: Vec<usize> = arg
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let drifts: usize = std::env::var("LZ_BENCH_DRIFTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let scenarios = std::env::var("LZ_BENCH_SCENARIOS").unwrap_or_else(|_| "sync,vending".into());
    let mut reports = Vec::new();
    if scenarios.contains("vending") {
        let create = Duration::from_secs(
            std::env::var("LZ_BENCH_CREATE_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(20),
        );
        let v = vending(create, VendingSize::from_env()).await;
        println!(
            "vending: {} new accounts in {} OUs, {} resources, CreateAccount {} s, bound {} s",
            v["accounts"], v["ous"], v["resources"], v["createAccountSeconds"], v["boundSeconds"]
        );
        println!(
            "  in-sync apply: {} s, {} reads, {} writes; security baseline {} reads per account ({} regions): {}",
            v["apply"]["inSyncPass"]["seconds"],
            v["apply"]["inSyncPass"]["reads"],
            v["apply"]["inSyncPass"]["writes"],
            v["apply"]["inSyncPass"]["baselineReadsPerAccount"],
            v["apply"]["inSyncPass"]["baselineRegions"],
            v["apply"]["inSyncPass"]["securityBaseline"],
        );
        println!(
            "  apply --dir: {} s ({} reads, {} writes; the baseline's {} and {}), exit {}, CreateAccount calls {}, duplicate accounts {}, CreateAccountAssignment calls {}",
            v["apply"]["seconds"],
            v["apply"]["reads"],
            v["apply"]["writes"],
            v["apply"]["baselineReads"],
            v["apply"]["baselineWrites"],
            v["apply"]["exitCode"],
            v["apply"]["createAccountCalls"],
            v["apply"]["duplicateAccounts"],
            v["apply"]["createAccountAssignmentCalls"]
        );
        println!("  controller:  {}", v["controller"]);
        reports.push(v);
    }
    let sizes = if scenarios.contains("sync") {
        sizes
    } else {
        Vec::new()
    };
    if !sizes.is_empty() {
        println!(
            "{:>6} {:>4} {:>9} {:>10} {:>7} {:>8} {:>9} {:>6} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9}",
            "N",
            "OUs",
            "pass s",
            "struct rd",
            "budget",
            "tag rd",
            "policy rd",
            "writes",
            "naive rd",
            "naive s",
            "ratio",
            "drift s",
            "peak MiB",
            "idle MiB"
        );
    }
    for n in sizes {
        if n >= large() {
            let r = bench_large(n).await;
            let (p, a, e) = (&r["inSyncPass"], &r["adoption"], &r["changeEvents"]);
            println!(
                "{n:>6} {:>4} seeded in {} s; adoption (kubectl apply to all Ready) {} s, peak {} MiB; member baseline {}",
                r["ous"],
                r["seedSeconds"],
                a["secondsToAllReady"],
                a["peakRssMiB"],
                r["memberBaseline"]
            );
            println!(
                "       in-sync pass (controller start-up): {} s, {} calls ({} own reads, {} snapshot reads of {} calls), peak RSS {} MiB, CPU {} s",
                p["seconds"],
                p["calls"],
                p["ownReads"],
                p["snapshotReads"],
                p["callsPerSnapshot"],
                p["peakRssMiB"],
                p["cpuSeconds"]
            );
            println!(
                "       change events: p95 {} s (max {} s); calls/h: polling {} vs events {} (resync {} + queue {}): {}×",
                e["eventDriftLatencyP95Seconds"],
                e["eventDriftLatencyMaxSeconds"],
                e["pollingCallsPerHour"],
                e["eventDrivenCallsPerHour"],
                e["resyncCallsPerHour"],
                e["queueReadsPerHour"],
                e["steadyStateCallRatio"]
            );
            reports.push(r);
            continue;
        }
        let r = bench(n, drifts).await;
        let c = &r["controller"];
        println!(
            "{:>6} {:>4} {:>9} {:>10} {:>7} {:>8} {:>9} {:>6} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9}",
            n,
            r["ous"],
            r["inSyncPass"]["seconds"],
            r["inSyncPass"]["structureReads"],
            r["inSyncPass"]["structureBudget"],
            r["inSyncPass"]["tagReads"],
            format!(
                "{}/{}",
                r["inSyncPass"]["policyReads"], r["inSyncPass"]["policies"]
            ),
            r["inSyncPass"]["writes"],
            r["naivePass"]["structureReads"].as_u64().unwrap_or(0)
                + r["naivePass"]["tagReads"].as_u64().unwrap_or(0),
            r["naivePass"]["seconds"],
            r["structureRatio"],
            r["drift"]["secondsToConverge"],
            c["peakRssMiB"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.1}")),
            c["idleRssMiB"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.1}")),
        );
        let i = &r["import"];
        println!(
            "       import: {} resources in {} s ({} reads, {} writes); plan over them: {} with changes or drift",
            i["resources"],
            i["seconds"],
            i["reads"],
            i["writes"],
            i["planResourcesWithChangesOrDrift"]
        );
        let e = &r["changeEvents"];
        if e.is_object() {
            println!(
                "       change events: {} changes, correction p95 {} s (max {} s), {} AWS calls each; calls/h: polling every 5 min {} vs events + 1 h resync {} (queue reads {}): {}× fewer; with those {} changes every hour {}×",
                e["changes"],
                e["eventDriftLatencyP95Seconds"],
                e["eventDriftLatencyMaxSeconds"],
                e["awsCallsPerCorrection"],
                e["pollingCallsPerHour"],
                e["eventDrivenCallsPerHour"],
                e["queueReadsPerHour"],
                e["steadyStateCallRatio"],
                e["changes"],
                e["callRatioWith20ChangesPerHour"],
            );
        } else {
            println!("       change events: {e}");
        }
        reports.push(r);
    }
    let out = workspace_root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("report.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Array(reports)).unwrap(),
    )
    .unwrap();
    println!("report: {}", path.display());
}
