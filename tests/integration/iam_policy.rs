//! docs/iam-policy.json grants exactly the actions the operator calls (found in operator/src/aws/
//! and in the AWS adapters that kinds keep in their folders),
//! plus the two CloudTrail needs on the caller to create an organization trail.

use landing_zone_tests::workspace_root;
use std::collections::BTreeSet;

/// The IAM action for an SDK operation of a service (where the names differ).
fn action(service: &str, op: &str) -> String {
    let mapped = match (service, op) {
        ("budgets", o) if o.starts_with("Describe") => "ViewBudget",
        ("budgets", _) => "ModifyBudget",
        ("s3", "HeadBucket") => "ListBucket",
        ("s3", "GetPublicAccessBlock") => "GetBucketPublicAccessBlock",
        ("s3", "PutPublicAccessBlock") => "PutBucketPublicAccessBlock",
        ("s3", "GetBucketEncryption") => "GetEncryptionConfiguration",
        ("s3", "PutBucketEncryption") => "PutEncryptionConfiguration",
        ("s3", "GetBucketLifecycleConfiguration") => "GetLifecycleConfiguration",
        ("s3", "PutBucketLifecycleConfiguration") => "PutLifecycleConfiguration",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        (_, o) => o,
    };
    format!("{service}:{mapped}")
}

/// Every `.rs` file under a directory.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// (service, operation) of every AWS call in the AWS layer, from the one call path adapters use:
/// `const CALLS: Service = Service("svc");` then `CALLS.send("Op", …)`, `.find("Op", …)`,
/// `.pages("Op", …)` or `.send_with_reason("Op", …)` (`const OP: &str = "Op"` where a name is
/// used twice), and `AwsError::from_sdk("svc", "Op", …)` where an adapter reads the raw error.
fn calls_in_source() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("operator/src"), &mut files);
    let mut out = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for path in files {
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let declared = text
            .split("constSERVICE:&str=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or("")
            .to_string();
        // Each `const NAME: Service = Service("svc")` (or `Service(SERVICE)`) of the file.
        let mut services = Vec::new();
        for part in text.split("const").skip(1) {
            let name = word(part);
            let Some(rest) = part.strip_prefix(&format!("{name}:Service=Service(")) else {
                continue;
            };
            let svc = if let Some(quoted) = rest.strip_prefix('"') {
                // IAM prefixes may hold a dash (access-analyzer).
                quoted.split('"').next().unwrap_or_default().to_string()
            } else {
                declared.clone()
            };
            // A root session's calls are allowed by AWS's task policy of AssumeRoot, not by this one.
            if name != "ROOT_SESSION" {
                services.push((name, svc));
            }
        }
        let ops_in = |part: &str| -> String {
            match part.strip_prefix('"') {
                Some(q) => word(q),
                None if part.starts_with("OP,") => text
                    .split("constOP:&str=\"")
                    .nth(1)
                    .map(word)
                    .unwrap_or_default(),
                None => String::new(),
            }
        };
        for (name, svc) in &services {
            for verb in ["send", "find", "pages", "send_with_reason"] {
                for part in text.split(&format!("{name}.{verb}(")).skip(1) {
                    let op = ops_in(part);
                    if !op.is_empty() {
                        out.insert((svc.clone(), op));
                    }
                }
            }
        }
        for part in text.split("from_sdk(").skip(1) {
            let mut args = part.splitn(3, ',');
            let svc = args.next().unwrap_or("").trim_matches('"');
            let op = args.next().unwrap_or("").trim_matches('"');
            if svc
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && !svc.is_empty()
                && op.chars().all(|c| c.is_ascii_alphanumeric())
                && !op.is_empty()
                && op != "operation"
            {
                out.insert((svc.to_string(), op.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_documented_policy_is_exactly_what_the_operator_calls() {
    let calls = calls_in_source();
    assert!(
        calls.len() >= 70,
        "found only {} calls: {calls:?}",
        calls.len()
    );
    let needed: BTreeSet<String> = calls.iter().map(|(s, o)| action(s, o)).collect();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("docs/iam-policy.json")).unwrap(),
    )
    .unwrap();
    let granted: BTreeSet<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
        })
        .collect();
    // CloudTrail checks these on the caller when it creates an organization trail (PassRole: the
    // role it delivers to CloudWatch Logs with).
    let prerequisites: BTreeSet<String> =
        ["iam:CreateServiceLinkedRole", "iam:GetRole", "iam:PassRole"]
            .into_iter()
            .map(String::from)
            .collect();
    let missing: Vec<&String> = needed.difference(&granted).collect();
    let extra: Vec<&String> = granted
        .difference(&needed)
        .filter(|a| !prerequisites.contains(*a))
        .collect();
    assert!(missing.is_empty(), "the policy lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "the policy grants actions the operator never calls: {extra:?}"
    );
    assert!(!granted.iter().any(|a| a.ends_with(":*")), "no wildcards");
}
