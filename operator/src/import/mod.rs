//! `import`: reads the live Organization and describes it as landingzone.dev resources, so a team
//! that built its Organization by hand (or with other tools) starts from what it has.
//!
//! What it writes is what the reconcilers compare, field for field: `plan` over the written
//! directory against the same Organization shows no change and no drift, and after switching to
//! `Manage`, `apply` writes nothing. Everything is `Observe` (unless `--manage`) and `Retain`, so
//! importing and applying never changes AWS. What a resource cannot describe is left out and said.

pub mod naming;

use crate::api::aws_account::DEFAULT_ROLE_NAME;
use crate::api::organization_policy::PolicyType;
use crate::aws::{AwsPorts, AwsResult};
use crate::reconcile::OrgSnapshot;
use crate::reconcile::organization::aws::Settings;
use crate::reconcile::organization_policy::aws::Policies;
use crate::reconcile::permission_set::aws::IdentityCenter;
use naming::{Candidate, slug, unique_names};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Write `managementPolicy: Manage` instead of `Observe`.
    pub manage: bool,
    /// Also import the IAM groups of member accounts (through their access role).
    pub member_iam_groups: bool,
}

/// What an import found: the documents per file, and what a person should know.
#[derive(Debug, Default)]
pub struct Imported {
    /// File name → documents, in the order of `manifests/examples/`.
    pub files: BTreeMap<&'static str, Vec<Value>>,
    pub organization_id: String,
    /// Left out, with the reason.
    pub left_out: Vec<String>,
    /// Imported as it is, but worth a human decision.
    pub decisions: Vec<String>,
}

impl Imported {
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for docs in self.files.values() {
            for d in docs {
                *out.entry(d["kind"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
            }
        }
        out
    }

    fn push(&mut self, file: &'static str, doc: Value) {
        self.files.entry(file).or_default().push(doc);
    }

    /// The files as YAML text, each with a header saying where it came from.
    pub fn render(&self, manage: bool) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (file, docs) in &self.files {
            let mut text = format!(
                "# Imported from AWS Organization {} by `landing-zone-operator import`.\n# {}\n",
                self.organization_id,
                if manage {
                    "managementPolicy: Manage — apply corrects drift; deletionPolicy: Retain everywhere."
                } else {
                    "managementPolicy: Observe — nothing is written to AWS until you switch a resource to Manage."
                }
            );
            for d in docs {
                text.push_str("---\n");
                text.push_str(
                    &crate::api::to_yaml(d)
                        .map_err(|e| format!("cannot write {file} as YAML: {e}"))?,
                );
            }
            out.push((file.to_string(), text));
        }
        Ok(out)
    }
}

const ORGANIZATION: &str = "00-organization.yaml";
const OUS: &str = "10-organizational-units.yaml";
const ACCOUNTS: &str = "20-accounts.yaml";
const IAM_GROUPS: &str = "30-identity-groups.yaml";
const BUDGETS: &str = "40-budgets.yaml";
const TRAILS: &str = "50-audit-trails.yaml";
const POLICIES: &str = "60-organization-policies.yaml";
const IDENTITY_CENTER: &str = "70-identity-center.yaml";

fn resource(kind: &str, name: &str, mut spec: Value, options: &Options) -> Value {
    spec["managementPolicy"] = json!(if options.manage { "Manage" } else { "Observe" });
    // Said even where it is the default: deleting an imported resource never deletes it in AWS.
    if kind != "Organization" {
        spec["deletionPolicy"] = json!("Retain");
    }
    json!({
        "apiVersion": "landingzone.dev/v1alpha1",
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    })
}

fn reference(name: &str) -> Value {
    json!({ "name": name })
}

/// Reads the Organization and describes it. `progress` hears each step, for a person watching.
pub async fn import(
    aws: &AwsPorts,
    options: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> AwsResult<Imported> {
    let mut out = Imported::default();
    progress("reading the Organization's tree");
    let snap = OrgSnapshot::load(aws.organizations.as_ref()).await?;
    let management = snap.management_account_id().unwrap_or_default().to_string();
    out.organization_id = snap.org.as_ref().map(|o| o.id.clone()).unwrap_or_default();

    // Names first: references between resources use them.
    let ou_names = {
        let candidates: Vec<Candidate> = snap
            .ous
            .values()
            .map(|ou| Candidate {
                id: ou.id.clone(),
                name: ou.name.clone(),
                qualifier: snap.name_of(&ou.parent_id).unwrap_or("root").to_string(),
            })
            .collect();
        let (names, notes) = unique_names("OUs", &candidates);
        out.decisions.extend(notes);
        names
    };
    let mut accounts: Vec<_> = Vec::new();
    for a in snap.accounts.values() {
        if a.id == management {
            out.left_out.push(format!(
                "the management account {} ({}): an AwsAccount is a member account; the management account's own settings stay with you",
                a.name, a.id
            ));
        } else if a.state != "ACTIVE" {
            out.left_out.push(format!(
                "account {} ({}) is {}: nothing left to manage",
                a.name, a.id, a.state
            ));
        } else {
            accounts.push(a);
        }
    }
    let account_names = {
        let candidates: Vec<Candidate> = accounts
            .iter()
            .map(|a| Candidate {
                id: a.id.clone(),
                name: a.name.clone(),
                qualifier: a
                    .parent_id
                    .as_deref()
                    .and_then(|p| snap.name_of(p))
                    .unwrap_or("root")
                    .to_string(),
            })
            .collect();
        let (names, notes) = unique_names("accounts", &candidates);
        out.decisions.extend(notes);
        names
    };

    progress("reading the Organization's settings");
    organization(aws, &snap, &account_names, options, &mut out).await?;

    progress(&format!("reading {} OUs", snap.ous.len()));
    for ou in snap.ous.values() {
        let mut spec = json!({ "name": ou.name });
        if let Some(parent) = ou_names.get(&ou.parent_id) {
            spec["parentRef"] = reference(parent);
        }
        let tags = aws.organizations.list_tags(&ou.id).await?;
        if !tags.is_empty() {
            spec["tags"] = json!(tags);
        }
        out.push(
            OUS,
            resource("OrganizationalUnit", &ou_names[&ou.id], spec, options),
        );
    }

    for (n, a) in accounts.iter().enumerate() {
        progress(&format!(
            "reading account {} of {}: {}",
            n + 1,
            accounts.len(),
            a.name
        ));
        let name = &account_names[&a.id];
        let mut spec = json!({ "accountName": a.name, "email": a.email });
        match a.parent_id.as_deref() {
            Some(p) if ou_names.contains_key(p) => spec["organizationalUnitRef"] = reference(&ou_names[p]),
            _ => out.decisions.push(format!(
                "account {name} ({}) sits at the root, outside any OU: guardrails and assignments on OUs do not reach it",
                a.id
            )),
        }
        let tags = aws.organizations.list_tags(&a.id).await?;
        if !tags.is_empty() {
            spec["tags"] = json!(tags);
        }
        match account_baseline(aws, &snap, &a.id).await {
            Ok(baseline) => {
                for (k, v) in baseline.as_object().into_iter().flatten() {
                    spec[k] = v.clone();
                }
                if spec["passwordPolicy"]["manage"] == json!(false) {
                    out.decisions.push(format!(
                        "account {name} has no IAM password policy: imported with passwordPolicy.manage: false; remove that line to have the strong default set"
                    ));
                } else if spec["passwordPolicy"].is_object() && !is_strong(&spec["passwordPolicy"])
                {
                    out.decisions.push(format!(
                        "account {name}'s IAM password policy is weaker than 14+ characters of every class with 24 remembered: imported as it is"
                    ));
                }
            }
            Err(e) => {
                spec["baseline"] = json!(false);
                out.decisions.push(format!(
                    "account {name} ({}): cannot work inside it through {DEFAULT_ROLE_NAME} ({}): imported with baseline: false (no alias, password policy, contacts or root-user report)",
                    a.id,
                    e.message
                ));
            }
        }
        out.push(ACCOUNTS, resource("AwsAccount", name, spec, options));
    }

    progress("reading IAM groups");
    iam_groups(aws, &snap, &accounts, &account_names, options, &mut out).await?;
    progress("reading budgets");
    budgets(aws, &management, &account_names, options, &mut out).await?;
    progress("reading trails");
    trails(aws, options, &mut out).await?;
    progress("reading organization policies");
    policies(aws, &snap, &ou_names, &account_names, options, &mut out).await?;
    progress("reading IAM Identity Center");
    identity_center(aws, &account_names, options, &mut out).await?;
    Ok(out)
}

fn is_strong(p: &Value) -> bool {
    p["minimumPasswordLength"].as_i64().unwrap_or(0) >= 14
        && [
            "requireSymbols",
            "requireNumbers",
            "requireUppercaseCharacters",
            "requireLowercaseCharacters",
        ]
        .iter()
        .all(|k| p[k] == json!(true))
        && p["passwordReusePrevention"].as_i64().unwrap_or(0) >= 24
}

/// Alias, password policy and alternate contacts, read inside the account.
async fn account_baseline(aws: &AwsPorts, snap: &OrgSnapshot, account: &str) -> AwsResult<Value> {
    let clients = aws.members.clients(
        Some(account),
        snap.management_account_id(),
        snap.partition(),
        DEFAULT_ROLE_NAME,
    );
    let mut out = json!({});
    if let Some(alias) = clients.iam.account_alias().await? {
        out["alias"] = json!(alias);
    }
    out["passwordPolicy"] = match clients.iam.password_policy().await? {
        Some(p) => serde_json::to_value(p).expect("a password policy serializes"),
        None => json!({ "manage": false }),
    };
    let mut contacts = json!({});
    for (kind, field) in [
        ("BILLING", "billing"),
        ("OPERATIONS", "operations"),
        ("SECURITY", "security"),
    ] {
        if let Some(c) = clients.contacts.contact(kind).await? {
            contacts[field] = serde_json::to_value(c).expect("a contact serializes");
        }
    }
    if contacts.as_object().is_some_and(|c| !c.is_empty()) {
        out["alternateContacts"] = contacts;
    }
    Ok(out)
}

fn account_target(
    id: &str,
    account_names: &BTreeMap<String, String>,
) -> (Option<Value>, Option<String>) {
    match account_names.get(id) {
        Some(name) => (Some(reference(name)), None),
        None => (None, Some(id.to_string())),
    }
}

async fn organization(
    aws: &AwsPorts,
    snap: &OrgSnapshot,
    account_names: &BTreeMap<String, String>,
    options: &Options,
    out: &mut Imported,
) -> AwsResult<()> {
    let settings = Settings::new(aws);
    let mut spec = json!({});
    let types: Vec<PolicyType> = snap
        .root
        .policy_types
        .iter()
        .filter(|(_, status)| *status == "ENABLED")
        .filter_map(|(t, _)| PolicyType::from_aws(t))
        .collect();
    if !types.is_empty() {
        spec["policyTypes"] = json!(types);
    }
    let mut trusted = aws.organizations.list_service_access().await?;
    trusted.sort();
    if !trusted.is_empty() {
        spec["trustedServices"] = json!(trusted);
    }
    let mut admins = Vec::new();
    for (principal, account) in settings.delegated_administrators().await? {
        let mut a = json!({ "servicePrincipal": principal });
        match account_target(&account, account_names) {
            (Some(r), _) => a["accountRef"] = r,
            (_, Some(id)) => a["accountId"] = json!(id),
            _ => {}
        }
        admins.push(a);
    }
    if !admins.is_empty() {
        spec["delegatedAdministrators"] = json!(admins);
    }
    let features: BTreeSet<String> = settings.root_access_features().await?.into_iter().collect();
    if !features.is_empty() {
        spec["rootAccess"] = json!({
            "credentialsManagement": features.contains("RootCredentialsManagement"),
            "rootSessions": features.contains("RootSessions"),
        });
    }
    out.push(
        ORGANIZATION,
        resource("Organization", "organization", spec, options),
    );
    Ok(())
}

async fn iam_groups(
    aws: &AwsPorts,
    snap: &OrgSnapshot,
    accounts: &[&crate::aws::organizations::AccountInfo],
    account_names: &BTreeMap<String, String>,
    options: &Options,
    out: &mut Imported,
) -> AwsResult<()> {
    let mut places: Vec<Option<&str>> = vec![None];
    if options.member_iam_groups {
        places.extend(accounts.iter().map(|a| Some(a.id.as_str())));
    }
    let mut candidates = Vec::new();
    let mut specs = BTreeMap::new();
    for place in places {
        let clients = aws.members.clients(
            place,
            snap.management_account_id(),
            snap.partition(),
            DEFAULT_ROLE_NAME,
        );
        let groups = match clients.iam.list_groups().await {
            Ok(g) => g,
            Err(e) if place.is_some() => {
                out.left_out.push(format!(
                    "IAM groups of account {}: cannot list them through {DEFAULT_ROLE_NAME} ({})",
                    place.unwrap_or_default(),
                    e.message
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        for group in groups {
            let Some(info) = clients.iam.group(&group).await? else {
                continue;
            };
            let mut spec = json!({ "groupName": group, "path": info.path });
            let owner = place.and_then(|p| account_names.get(p));
            if let Some(owner) = owner {
                spec["accountRef"] = reference(owner);
            }
            let mut managed = clients.iam.attached_policies(&group).await?;
            managed.sort();
            if !managed.is_empty() {
                spec["managedPolicyArns"] = json!(managed);
            }
            let inline: Vec<Value> = clients
                .iam
                .inline_policies(&group)
                .await?
                .into_iter()
                .map(|(name, document)| json!({ "name": name, "document": pretty_json(&document) }))
                .collect();
            if !inline.is_empty() {
                spec["inlinePolicies"] = json!(inline);
            }
            let mut members = info.members.clone();
            members.sort();
            if !members.is_empty() {
                spec["members"] = json!(members);
            }
            let id = format!("{}/{group}", place.unwrap_or(""));
            candidates.push(Candidate {
                id: id.clone(),
                name: match owner {
                    Some(o) => format!("{o}-{group}"),
                    None => group.clone(),
                },
                qualifier: owner.cloned().unwrap_or_else(|| "management".into()),
            });
            specs.insert(id, spec);
        }
    }
    let (names, notes) = unique_names("IAM groups", &candidates);
    out.decisions.extend(notes);
    for (id, spec) in specs {
        out.push(
            IAM_GROUPS,
            resource("IdentityGroup", &names[&id], spec, options),
        );
    }
    Ok(())
}

/// A policy document as indented JSON, which the YAML shows as a readable block (the operator
/// compares documents as JSON, so layout never shows as drift).
fn pretty_json(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

async fn budgets(
    aws: &AwsPorts,
    management: &str,
    account_names: &BTreeMap<String, String>,
    options: &Options,
    out: &mut Imported,
) -> AwsResult<()> {
    let mut candidates = Vec::new();
    let mut specs = BTreeMap::new();
    for (b, expressible) in aws.budgets.list_budgets(management).await? {
        if !expressible {
            out.left_out.push(format!(
                "budget {:?}: not a cost budget filtered by linked account only (a Budget describes those)",
                b.name
            ));
            continue;
        }
        let mut spec = json!({
            "budgetName": b.name,
            "limit": { "amount": b.limit_amount, "unit": b.limit_unit },
            "timeUnit": b.time_unit,
        });
        match b.linked_accounts.as_slice() {
            [] => {}
            [one] if account_names.contains_key(one) => {
                spec["accountRef"] = reference(&account_names[one])
            }
            other => {
                out.left_out.push(format!(
                    "budget {:?}: filtered by linked accounts {} (a Budget names one imported account)",
                    b.name,
                    other.join(", ")
                ));
                continue;
            }
        }
        let mut notifications = Vec::new();
        for n in aws.budgets.list_notifications(management, &b.name).await? {
            let mut subscribers = json!({});
            let mut emails = Vec::new();
            for s in aws
                .budgets
                .list_subscribers(management, &b.name, &n)
                .await?
            {
                match s {
                    crate::aws::budgets::Subscriber::Email(a) => emails.push(a),
                    crate::aws::budgets::Subscriber::Sns(a) => {
                        subscribers["snsTopicArn"] = json!(a)
                    }
                }
            }
            emails.sort();
            if !emails.is_empty() {
                subscribers["emails"] = json!(emails);
            }
            notifications.push(json!({
                "notificationType": n.notification_type,
                "threshold": n.threshold,
                "thresholdType": n.threshold_type,
                "comparison": n.comparison,
                "subscribers": subscribers,
            }));
        }
        if !notifications.is_empty() {
            spec["notifications"] = json!(notifications);
        }
        candidates.push(Candidate {
            id: b.name.clone(),
            name: b.name.clone(),
            qualifier: "budget".into(),
        });
        specs.insert(b.name.clone(), spec);
    }
    let (names, notes) = unique_names("budgets", &candidates);
    out.decisions.extend(notes);
    for (id, spec) in specs {
        out.push(BUDGETS, resource("Budget", &names[&id], spec, options));
    }
    Ok(())
}

async fn trails(aws: &AwsPorts, options: &Options, out: &mut Imported) -> AwsResult<()> {
    let mut candidates = Vec::new();
    let mut specs = BTreeMap::new();
    for t in aws.cloudtrail.list_trails().await? {
        if !t.organization_trail {
            out.left_out.push(format!(
                "trail {}: not an organization trail (an AuditTrail is the Organization's trail)",
                t.name
            ));
            continue;
        }
        let mut s3 = json!({ "bucketName": t.bucket, "create": false });
        if let Some(p) = &t.key_prefix {
            s3["keyPrefix"] = json!(p);
        }
        let mut spec = json!({
            "trailName": t.name,
            "s3": s3,
            "multiRegion": t.multi_region,
            "organizationTrail": true,
            "logFileValidation": t.log_file_validation,
            "includeGlobalServiceEvents": t.include_global_service_events,
        });
        if let Some(k) = &t.kms_key_id {
            spec["kmsKeyId"] = json!(k);
        }
        if !aws.cloudtrail.trail_status(&t.name).await?.is_logging {
            out.decisions.push(format!(
                "trail {} is not logging: under Manage the operator starts it",
                t.name
            ));
        }
        if !t.multi_region || !t.log_file_validation {
            out.decisions.push(format!(
                "trail {} is {}: imported as it is; the reference practice is multi-region with log-file validation",
                t.name,
                [(!t.multi_region).then_some("single-region"), (!t.log_file_validation).then_some("without log-file validation")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        candidates.push(Candidate {
            id: t.name.clone(),
            name: t.name.clone(),
            qualifier: "trail".into(),
        });
        specs.insert(t.name.clone(), spec);
    }
    let (names, _) = unique_names("trails", &candidates);
    for (id, spec) in specs {
        out.push(TRAILS, resource("AuditTrail", &names[&id], spec, options));
    }
    Ok(())
}

async fn policies(
    aws: &AwsPorts,
    snap: &OrgSnapshot,
    ou_names: &BTreeMap<String, String>,
    account_names: &BTreeMap<String, String>,
    options: &Options,
    out: &mut Imported,
) -> AwsResult<()> {
    let api = Policies::new(aws.organizations_client.clone());
    let mut candidates = Vec::new();
    let mut specs = BTreeMap::new();
    let mut aws_managed = BTreeSet::new();
    for (type_name, status) in &snap.root.policy_types {
        let Some(policy_type) = PolicyType::from_aws(type_name) else {
            continue;
        };
        if status != "ENABLED" {
            continue;
        }
        for p in api.list(type_name).await? {
            if p.aws_managed {
                aws_managed.insert(p.name.clone());
                continue;
            }
            let Some(full) = api.describe(&p.id).await? else {
                continue;
            };
            let mut targets = json!({});
            let (mut ous, mut accts, mut ids) = (Vec::new(), Vec::new(), Vec::new());
            for t in api.targets(&p.id).await? {
                if t == snap.root_id {
                    targets["root"] = json!(true);
                } else if let Some(n) = ou_names.get(&t) {
                    ous.push(n.clone());
                } else if let Some(n) = account_names.get(&t) {
                    accts.push(n.clone());
                } else {
                    ids.push(t);
                }
            }
            if targets.get("root").is_none() && ous.is_empty() && accts.is_empty() && ids.is_empty()
            {
                out.left_out.push(format!(
                    "policy {} ({}): attached nowhere (an OrganizationPolicy names at least one target)",
                    p.name, p.id
                ));
                continue;
            }
            for (field, mut names) in [("organizationalUnitRefs", ous), ("accountRefs", accts)] {
                names.sort();
                if !names.is_empty() {
                    targets[field] = json!(names.iter().map(|n| reference(n)).collect::<Vec<_>>());
                }
            }
            ids.sort();
            if !ids.is_empty() {
                targets["ids"] = json!(ids);
            }
            let mut spec = json!({
                "type": policy_type,
                "policyName": p.name,
                "document": pretty_json(&full.content.unwrap_or_default()),
                "targets": targets,
            });
            if !full.description.is_empty() {
                spec["description"] = json!(full.description);
            }
            let tags = aws.organizations.list_tags(&p.id).await?;
            if !tags.is_empty() {
                spec["tags"] = json!(tags);
            }
            candidates.push(Candidate {
                id: p.id.clone(),
                name: p.name.clone(),
                qualifier: slug(type_name),
            });
            specs.insert(p.id.clone(), spec);
        }
    }
    if !aws_managed.is_empty() {
        out.left_out.push(format!(
            "AWS-managed policies ({}): AWS's own, never changed by the operator",
            aws_managed.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let (names, notes) = unique_names("organization policies", &candidates);
    out.decisions.extend(notes);
    for (id, spec) in specs {
        out.push(
            POLICIES,
            resource("OrganizationPolicy", &names[&id], spec, options),
        );
    }
    Ok(())
}

async fn identity_center(
    aws: &AwsPorts,
    account_names: &BTreeMap<String, String>,
    options: &Options,
    out: &mut Imported,
) -> AwsResult<()> {
    let ic = IdentityCenter::new(aws);
    let Some(instance) = ic.instance().await? else {
        out.left_out.push(format!(
            "IAM Identity Center: no instance in {} (see --identity-center-region)",
            aws.identity_center_region
        ));
        return Ok(());
    };
    let store = &instance.identity_store_id;
    // Permission set ARN → group display name → accounts.
    let mut assigned: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut candidates = Vec::new();
    let mut groups = BTreeMap::new();
    let mut external = Vec::new();
    for (id, display_name, description, is_external) in ic.list_groups(store).await? {
        for (account, set) in ic.group_assignments(&instance.arn, &id).await? {
            assigned
                .entry(set)
                .or_default()
                .entry(display_name.clone())
                .or_default()
                .insert(account);
        }
        if is_external {
            external.push(display_name);
            continue;
        }
        let mut members = Vec::new();
        for (user_id, _) in ic.memberships(store, &id).await? {
            members.push(ic.user_name(store, &user_id).await?);
        }
        members.sort();
        let mut spec = json!({ "displayName": display_name });
        if !description.is_empty() {
            spec["description"] = json!(description);
        }
        if !members.is_empty() {
            spec["members"] = json!(members);
        }
        candidates.push(Candidate {
            id: id.clone(),
            name: display_name,
            qualifier: "group".into(),
        });
        groups.insert(id, spec);
    }
    if !external.is_empty() {
        external.sort();
        out.left_out.push(format!(
            "Identity Center groups synced from your identity provider ({}): managed there; permission sets still assign them by name",
            external.join(", ")
        ));
    }
    let (names, notes) = unique_names("Identity Center groups", &candidates);
    out.decisions.extend(notes);
    for (id, spec) in groups {
        out.push(
            IDENTITY_CENTER,
            resource("IdentityCenterGroup", &names[&id], spec, options),
        );
    }

    let mut candidates = Vec::new();
    let mut sets = BTreeMap::new();
    for arn in ic.list(&instance.arn).await? {
        let Some(info) = ic.describe(&instance.arn, &arn).await? else {
            continue;
        };
        let mut spec = json!({ "name": info.name, "sessionDuration": info.session_duration });
        if !info.description.is_empty() {
            spec["description"] = json!(info.description);
        }
        if !info.relay_state.is_empty() {
            spec["relayState"] = json!(info.relay_state);
        }
        let mut managed = ic.managed_policies(&instance.arn, &arn).await?;
        managed.sort();
        if !managed.is_empty() {
            spec["managedPolicyArns"] = json!(managed);
        }
        let mut customer = ic.customer_policies(&instance.arn, &arn).await?;
        customer.sort();
        if !customer.is_empty() {
            spec["customerManagedPolicies"] = json!(
                customer
                    .iter()
                    .map(|(name, path)| json!({ "name": name, "path": path }))
                    .collect::<Vec<_>>()
            );
        }
        if let Some(inline) = ic
            .inline_policy(&instance.arn, &arn)
            .await?
            .filter(|p| !p.is_empty())
        {
            spec["inlinePolicy"] = json!(pretty_json(&inline));
        }
        if let Some(b) = ic.boundary(&instance.arn, &arn).await? {
            if let Some(a) = b.strip_prefix("managed:") {
                spec["permissionsBoundary"] = json!({ "managedPolicyArn": a });
            } else if let Some(pathname) = b.strip_prefix("customer:") {
                let (path, name) = pathname.rsplit_once('/').unwrap_or(("", pathname));
                spec["permissionsBoundary"] = json!({ "customerManagedPolicy": { "name": name, "path": format!("{path}/") } });
            }
        }
        let tags = ic.tags(&instance.arn, &arn).await?;
        if !tags.is_empty() {
            spec["tags"] = json!(tags);
        }
        let mut assignments = Vec::new();
        for (group, accounts) in assigned.get(&arn).into_iter().flatten() {
            let mut a = json!({ "group": group });
            let (mut refs, mut ids) = (Vec::new(), Vec::new());
            for account in accounts {
                match account_target(account, account_names) {
                    (Some(r), _) => refs.push(r),
                    (_, Some(id)) => ids.push(id),
                    _ => {}
                }
            }
            if !refs.is_empty() {
                a["accountRefs"] = json!(refs);
            }
            if !ids.is_empty() {
                a["accountIds"] = json!(ids);
            }
            assignments.push(a);
        }
        if !assignments.is_empty() {
            spec["assignments"] = json!(assignments);
        }
        candidates.push(Candidate {
            id: arn.clone(),
            name: info.name.clone(),
            qualifier: "permission-set".into(),
        });
        sets.insert(arn, spec);
    }
    let (names, notes) = unique_names("permission sets", &candidates);
    out.decisions.extend(notes);
    for (id, spec) in sets {
        out.push(
            IDENTITY_CENTER,
            resource("PermissionSet", &names[&id], spec, options),
        );
    }
    Ok(())
}
