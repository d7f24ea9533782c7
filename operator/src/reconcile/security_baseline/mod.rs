//! SecurityBaseline: for every ACTIVE account the targets reach (from the Organization snapshot,
//! so accounts that join or leave an OU follow), read each governed control through the account's
//! access role → plan → write only what does not comply.
//!
//! Reads per resync for a compliant account: GetPublicAccessBlock; per governed region
//! GetEbsEncryptionByDefault + GetEbsDefaultKmsKeyId, GetInstanceMetadataDefaults, DescribeVpcs
//! (+ 3 describes while a default VPC is there), DescribeConfigurationRecorders + status +
//! DescribeDeliveryChannels; GetRole + ListAttachedRolePolicies; GetAlternateContact. Nothing is
//! written when it complies.

pub mod plan;

use self::plan::{Context, Control, Observed, Regional};
use super::aws_account::member_error;
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness, Resource};
use crate::api::aws_account::Contact;
use crate::api::security_baseline::{AccountCompliance, ControlFinding, SecurityBaselineSpec};
use crate::api::{DeletionPolicy, Drift, ManagementPolicy, SecurityBaseline};
use crate::aws::cloudtrail::BucketPresence;
use crate::aws::member::AccountClients;
use crate::aws::{AwsError, AwsResult};
use crate::metrics::Metrics;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};

/// Accounts read and corrected at once.
const ACCOUNT_CONCURRENCY: usize = 8;


/// The ACTIVE accounts the targets reach. The root and OUs cover member accounts (the management
/// account only when named by id or reference).
fn targeted(spec: &SecurityBaselineSpec, pass: &Pass) -> Result<BTreeSet<String>, Error> {
    let snap = &pass.snapshot;
    let management = snap.management_account_id().unwrap_or_default().to_string();
    let t = &spec.targets;
    let mut out = BTreeSet::new();
    let under = |parent: &str, out: &mut BTreeSet<String>| {
        out.extend(
            snap.active_accounts_under(parent)
                .into_iter()
                .filter(|a| *a != management),
        )
    };
    if t.root {
        under(&snap.root_id, &mut out);
    }
    for r in &t.organizational_unit_refs {
        let ou = pass.resolve(&Key::new(Kind::OrganizationalUnit, &r.name))?;
        under(&ou, &mut out);
    }
    let active = |id: &str| snap.accounts.get(id).is_some_and(|a| a.state == "ACTIVE");
    for r in &t.account_refs {
        let id = pass.resolve(&Key::new(Kind::AwsAccount, &r.name))?;
        if active(&id) {
            out.insert(id);
        }
    }
    for id in &t.ids {
        if id.starts_with("r-") || id.starts_with("ou-") {
            under(id, &mut out);
        } else if active(id) {
            out.insert(id.clone());
        }
    }
    Ok(out)
}

/// Whether this reconcile reads every targeted account: the spec changed since the last one, or
/// the last full read is older than the pass allows (`Pass::full_check_every`).
fn full_check_due(
    b: &SecurityBaseline,
    now: &k8s_openapi::jiff::Timestamp,
    every: std::time::Duration,
) -> bool {
    let Some(status) = &b.status else {
        return true;
    };
    let last = status
        .last_full_check_time
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    status.common.observed_generation != b.metadata.generation
        || last.is_none_or(|t| {
            now.duration_since(t).as_secs_f64() >= every.as_secs_f64()
        })
}

/// The accounts another baseline reaches: from its targets when this pass can resolve them (the
/// CLI knows every resource; a controller only this one's references), else as its status last
/// reported them.
fn reach(peer: &SecurityBaseline, pass: &Pass) -> BTreeSet<String> {
    targeted(&peer.spec, pass).unwrap_or_else(|_| {
        peer.status
            .iter()
            .flat_map(|s| s.accounts.iter().map(|a| a.account_id.clone()))
            .collect()
    })
}

/// Accounts whose AwsAccount sets a SECURITY contact other than `want` (its baseline inside the
/// account on): (account id, resource name).
fn own_security_contacts(pass: &Pass, want: &Contact) -> Vec<(String, String)> {
    pass.peers
        .iter()
        .filter_map(|r| match r {
            Resource::AwsAccount(a) if a.spec.baseline => {
                let theirs = a.spec.alternate_contacts.as_ref()?.security.as_ref()?;
                let id = a.status.as_ref()?.account_id.clone()?;
                (theirs != want).then(|| (id, kube::ResourceExt::name_any(a)))
            }
            _ => None,
        })
        .collect()
}

fn peers(pass: &Pass) -> Vec<SecurityBaseline> {
    pass.peers
        .iter()
        .filter_map(|r| match r {
            Resource::SecurityBaseline(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// One account's controls as read (only those the spec governs).
async fn observe(spec: &SecurityBaselineSpec, c: &AccountClients, id: &str) -> AwsResult<Observed> {
    let ctl = &c.controls;
    let mut o = Observed::default();
    if spec.s3_block_public_access.is_some() {
        o.s3_block = Some(ctl.s3_public_access_block(id).await?);
    }
    for region in &spec.regions {
        let mut r = Regional::default();
        if let Some(ebs) = &spec.ebs_default_encryption {
            // The key is read only when the spec names one (the account's default key otherwise).
            r.ebs = Some(ctl.ebs_encryption(region, ebs.kms_key_id.is_some()).await?);
        }
        if spec.instance_metadata_v2_default.is_some() {
            r.imds_v2 = Some(ctl.imds_v2_required(region).await?);
        }
        if spec.default_vpcs == Some(crate::api::security_baseline::DefaultVpcs::DeleteWhenUnused) {
            r.default_vpc = ctl.default_vpc(region).await?;
        }
        if spec.config.is_some() {
            r.config = Some(ctl.config_state(region).await?);
        }
        if spec.access_analyzer.is_some() {
            r.analyzers = Some(c.services.analyzers(region, "ACCOUNT").await?.into_iter().collect());
        }
        o.regions.insert(region.clone(), r);
    }
    if let Some(role) = &spec.support_role {
        o.support_role = Some(ctl.role(&role.role_name).await?);
    }
    if spec.security_contact.is_some() {
        o.security_contact = Some(c.contacts.contact("SECURITY").await?);
    }
    Ok(o)
}

async fn apply(
    action: &plan::Action,
    spec: &SecurityBaselineSpec,
    c: &AccountClients,
    id: &str,
    ctx: &Context,
) -> AwsResult<()> {
    use plan::Action::*;
    let ctl = &c.controls;
    match action {
        BlockS3PublicAccess => ctl.set_s3_public_access_block(id, true).await,
        EnableEbsEncryption { region } => {
            let key = spec
                .ebs_default_encryption
                .as_ref()
                .and_then(|e| e.kms_key_id.as_deref());
            ctl.set_ebs_encryption(region, true, key).await
        }
        RequireImdsV2 { region } => ctl.set_imds_v2_required(region, true).await,
        CreateAccountAnalyzer { region, name } => c.services.create_analyzer(region, name, "ACCOUNT").await,
        DeleteDefaultVpc { region, vpc } => ctl.delete_default_vpc(region, vpc).await,
        CreateSupportRole => {
            let role = spec.support_role.as_ref().expect("planned from the spec");
            ctl.create_role(&role.role_name, &ctx.support_trust.to_string())
                .await
        }
        SetSupportRoleTrust => {
            let role = spec.support_role.as_ref().expect("planned from the spec");
            ctl.set_role_trust(&role.role_name, &ctx.support_trust.to_string())
                .await
        }
        AttachSupportPolicy => {
            let role = spec.support_role.as_ref().expect("planned from the spec");
            let partition = ctx
                .config_role_arn
                .split(':')
                .nth(1)
                .unwrap_or("aws")
                .to_string();
            ctl.attach_role_policy(
                &role.role_name,
                &format!("arn:{partition}:iam::aws:policy/{}", plan::SUPPORT_POLICY),
            )
            .await
        }
        SetSecurityContact => {
            let contact = spec.security_contact.as_ref().expect("planned from the spec");
            c.contacts.set_contact("SECURITY", contact).await
        }
        PutConfigRecorder { region, recorder } => {
            let mut recorder = recorder.clone();
            if recorder.role_arn.is_empty() || recorder.role_arn == ctx.config_role_arn {
                // The service-linked role exists once AWS says so (created on first use).
                let partition = crate::aws::partition_of(&ctx.config_role_arn);
                recorder.role_arn = ctl.config_role(id, partition).await?;
            }
            ctl.put_recorder(region, &recorder).await
        }
        PutDeliveryChannel { region, name } => {
            let bucket = &spec.config.as_ref().expect("planned from the spec").delivery_bucket.name;
            ctl.put_delivery_channel(region, name, bucket).await
        }
        StartConfigRecorder { region, name } => ctl.start_recorder(region, name).await,
    }
}

/// What one account came to: its findings after this pass, writes, actions, drift; or why it could
/// not be read.
struct AccountResult {
    id: String,
    outcome: Result<(plan::Plan, Vec<ControlFinding>, usize), Error>,
}

async fn one_account(
    spec: &SecurityBaselineSpec,
    pass: &Pass,
    id: String,
    conflicted: BTreeMap<Control, Vec<String>>,
    write: bool,
) -> AccountResult {
    let snap = &pass.snapshot;
    let partition = snap.partition().to_string();
    let management = snap.management_account_id().unwrap_or_default().to_string();
    let role_name = pass.role_name(&id).to_string();
    let clients = pass
        .aws
        .members
        .clients(Some(&id), Some(&management), &partition, &role_name);
    let info = snap.accounts.get(&id).cloned();
    let classify = |e: AwsError| {
        if e.is_expired_session() {
            pass.aws.members.forget(&id);
        }
        member_error(e, info.as_ref(), &role_name)
    };
    let ctx = Context {
        support_trust: plan::support_trust(
            spec.support_role
                .as_ref()
                .map(|r| r.trusted_principal_arns.as_slice())
                .unwrap_or_default(),
            &partition,
            &management,
        ),
        config_role_arn: format!(
            "arn:{partition}:iam::{id}:role/{}",
            crate::aws::security::CONFIG_ROLE_PATH
        ),
        conflicted,
    };
    let outcome = async {
        let observed = observe(spec, &clients, &id).await.map_err(classify)?;
        let p = plan::plan(spec, &observed, &ctx);
        let mut writes = 0;
        if write {
            for action in &p.actions {
                apply(action, spec, &clients, &id, &ctx)
                    .await
                    .map_err(|e| classify(e).with_context(format!("could not {action} in account {id}")))?;
                writes += 1;
            }
        }
        let left = if write {
            p.remaining()
        } else {
            p.findings.clone()
        };
        Ok((p, left, writes))
    }
    .await;
    AccountResult { id, outcome }
}

/// The Config delivery bucket, when the baseline owns it: created and kept as `owned_bucket` says.
async fn delivery_bucket(
    spec: &SecurityBaselineSpec,
    pass: &Pass,
    write: bool,
    progress: &mut Progress,
) -> Result<(), Error> {
    let Some(bucket) = spec.config.as_ref().map(|c| &c.delivery_bucket) else {
        return Ok(());
    };
    if !bucket.create {
        return Ok(());
    }
    let snap = &pass.snapshot;
    let partition = snap.partition().to_string();
    let management = snap.management_account_id().unwrap_or_default().to_string();
    let account = match &bucket.account_ref {
        Some(r) => pass.resolve(&Key::new(Kind::AwsAccount, &r.name))?,
        None => management.clone(),
    };
    let role_name = pass.role_name(&account).to_string();
    let clients = pass
        .aws
        .members
        .clients(Some(&account), Some(&management), &partition, &role_name);
    let info = snap.accounts.get(&account).cloned();
    let classify = |e: AwsError| member_error(e, info.as_ref(), &role_name);
    let buckets = &clients.buckets;
    let state = match buckets.bucket_presence(&bucket.name).await.map_err(classify)? {
        BucketPresence::Here => Some(buckets.bucket_state(&bucket.name).await.map_err(classify)?),
        BucketPresence::Missing => None,
        BucketPresence::Elsewhere(status) => {
            return Err(Error::conflict(
                "BucketNotOwned",
                format!(
                    "AWS Config's delivery bucket {} exists outside account {account} (HeadBucket answered {status}), so the operator cannot create and own it: \
                     choose another config.deliveryBucket.name, or set create: false to deliver into that bucket as it is",
                    bucket.name
                ),
            ));
        }
    };
    let org_id = snap.org.as_ref().map(|o| o.id.clone()).unwrap_or_default();
    let policy = plan::config_bucket_policy(&partition, &bucket.name, &org_id);
    let p = super::audit_trail::plan::owned_bucket(
        state.as_ref(),
        false,
        &policy,
        "AWS Config delivery policy",
    );
    progress.drift.extend(p.drift.iter().map(|d| {
        let mut d = d.clone();
        d.field = format!("config.deliveryBucket.{}", d.field.trim_start_matches("s3."));
        d
    }));
    use super::audit_trail::plan::Action as B;
    for action in &p.actions {
        let name = &bucket.name;
        let what = match action {
            B::CreateBucket => "create",
            B::BlockPublicAccess => "block public access to",
            B::PutEncryption => "turn on default encryption of",
            B::EnableVersioning => "turn on versioning of",
            B::PutBucketPolicy => "set the AWS Config delivery policy of",
            _ => "change",
        };
        progress.actions.push(format!(
            "{what} the AWS Config delivery bucket {name} in account {account}"
        ));
        if !write {
            continue;
        }
        match action {
            B::CreateBucket => buckets.create_bucket(name).await,
            B::BlockPublicAccess => buckets.block_public_access(name).await,
            B::PutEncryption => buckets.put_encryption(name, None).await,
            B::EnableVersioning => buckets.enable_versioning(name).await,
            B::PutBucketPolicy => buckets.put_policy(name, &policy.to_string()).await,
            _ => Ok(()),
        }
        .map_err(classify)?;
        progress.writes += 1;
    }
    Ok(())
}

pub async fn reconcile(resource: &mut SecurityBaseline, pass: &mut Pass) -> Result<Progress, Error> {
    let b = resource.clone();
    let spec = &b.spec;
    let me = kube::ResourceExt::name_any(&b);
    let accounts = targeted(spec, pass)?;
    let write = pass.mode == Mode::Apply && spec.management_policy == ManagementPolicy::Manage;
    let mut progress = Progress::ready("Compliant", "");

    // Overlaps with other baselines: a control they set differently is left alone in the
    // accounts both reach.
    let peers: Vec<(SecurityBaseline, BTreeSet<String>)> = peers(pass)
        .into_iter()
        .map(|p| {
            let reached = reach(&p, pass);
            (p, reached)
        })
        .collect();
    let mut conflicts: BTreeMap<String, BTreeMap<Control, Vec<String>>> = BTreeMap::new();
    for (peer, reached) in &peers {
        let name = format!("SecurityBaseline {}", kube::ResourceExt::name_any(peer));
        let with = plan::conflicts(spec, [(name.as_str(), &peer.spec)]);
        if with.is_empty() {
            continue;
        }
        for id in reached.intersection(&accounts) {
            let entry = conflicts.entry(id.clone()).or_default();
            for (c, names) in &with {
                entry.entry(*c).or_default().extend(names.iter().cloned());
            }
        }
    }

    // An AwsAccount that names its own security contact, different from this one, keeps it: the
    // two would otherwise overwrite each other on every pass.
    if let Some(want) = &spec.security_contact {
        for (id, name) in own_security_contacts(pass, want) {
            if accounts.contains(&id) {
                conflicts
                    .entry(id)
                    .or_default()
                    .entry(Control::SecurityContact)
                    .or_default()
                    .push(format!("AwsAccount {name}"));
            }
        }
    }

    delivery_bucket(spec, pass, write, &mut progress).await?;

    // Between full reads (an account created in a target OU re-runs the baseline), the accounts
    // found compliant at the last one keep their row and are not read again.
    let full = full_check_due(&b, &pass.now.0, pass.full_check_every);
    let kept: Vec<AccountCompliance> = if full {
        Vec::new()
    } else {
        b.status
            .iter()
            .flat_map(|s| &s.accounts)
            .filter(|r| r.compliant && accounts.contains(&r.account_id))
            .cloned()
            .collect()
    };
    let kept_ids: BTreeSet<&str> = kept.iter().map(|r| r.account_id.as_str()).collect();
    let to_read: Vec<String> = accounts
        .iter()
        .filter(|a| !kept_ids.contains(a.as_str()))
        .cloned()
        .collect();

    let pass_ref: &Pass = pass;
    let results: Vec<AccountResult> = futures::stream::iter(to_read)
        .map(|id| {
            let conflicted = conflicts.get(&id).cloned().unwrap_or_default();
            one_account(spec, pass_ref, id, conflicted, write)
        })
        .buffer_unordered(ACCOUNT_CONCURRENCY)
        .collect()
        .await;

    let mut rows = kept;
    let mut errors: Vec<(String, Error)> = Vec::new();
    let mut actions: Vec<(String, String)> = Vec::new();
    let mut drift: Vec<(Drift, String)> = Vec::new();
    let mut remaining: Vec<(Drift, String)> = Vec::new();
    for r in results {
        match r.outcome {
            Ok((p, left, writes)) => {
                progress.writes += writes;
                drift.extend(p.drift.iter().map(|d| (d.clone(), r.id.clone())));
                let stays = if write { p.remaining_drift() } else { p.drift.clone() };
                remaining.extend(stays.into_iter().map(|d| (d, r.id.clone())));
                actions.extend(p.actions.iter().map(|a| (a.to_string(), r.id.clone())));
                rows.push(AccountCompliance {
                    account_id: r.id,
                    compliant: left.is_empty(),
                    failing: left,
                });
            }
            Err(e) => {
                rows.push(AccountCompliance {
                    account_id: r.id.clone(),
                    compliant: false,
                    failing: vec![ControlFinding {
                        control: "access".into(),
                        region: None,
                        message: e.to_string(),
                    }],
                });
                errors.push((r.id, e));
            }
        }
    }
    rows.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    // One line per change and one drift entry per field, across accounts: status stays small at
    // a thousand accounts (status.accounts names each one).
    progress.actions.extend(plan::across_accounts(actions));
    progress.drift.extend(plan::drift_across_accounts(drift));
    // What stays different once this pass is done (all of it in Observe mode or a plan).
    progress.remaining = plan::drift_across_accounts(remaining);

    // Accounts no baseline reaches.
    let mut reached = accounts.clone();
    for (_, theirs) in &peers {
        reached.extend(theirs.iter().cloned());
    }
    let management = pass.snapshot.management_account_id().unwrap_or_default();
    let coverage: Vec<String> = pass
        .snapshot
        .accounts
        .values()
        .filter(|a| a.state == "ACTIVE" && a.id != management && !reached.contains(&a.id))
        .map(|a| a.id.clone())
        .collect();

    let compliant = rows.iter().filter(|r| r.compliant).count();
    let status = resource
        .status
        .get_or_insert_with(Default::default);
    status.targeted_count = rows.len() as i32;
    status.compliant_count = compliant as i32;
    status.accounts = rows.clone();
    status.coverage = coverage;
    if full {
        status.last_full_check_time = Some(pass.now.0.to_string());
    }

    if let Some((id, e)) = errors.into_iter().next() {
        let others = rows.len() - compliant;
        return Err(e.with_context(format!(
            "account {id} (one of {others} account(s) not compliant; the others were read and corrected)"
        )));
    }
    if !conflicts.is_empty() {
        let mut pairs: BTreeSet<(String, &'static str)> = BTreeSet::new();
        for controls in conflicts.values() {
            for (c, names) in controls {
                for n in names {
                    pairs.insert((n.clone(), c.name()));
                }
            }
        }
        let what: Vec<String> = pairs
            .iter()
            .map(|(n, c)| format!("{c} with {n}"))
            .collect();
        progress.ready = Readiness::NotReady {
            reason: "BaselineConflict",
            message: format!(
                "SecurityBaseline {me} disagrees on {} in {} account(s) both reach: nothing is written for those controls there until they agree",
                what.join(", "),
                conflicts.len()
            ),
        };
        return Ok(progress);
    }
    let failing: Vec<&AccountCompliance> = rows.iter().filter(|r| !r.compliant).collect();
    progress.ready = if let Some(first) = failing.first() {
        let why = first
            .failing
            .first()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        Readiness::NotReady {
            reason: if write { "NonCompliant" } else { "WouldChange" },
            message: format!(
                "{} of {} account(s) fail a control; e.g. {}: {why}{}",
                failing.len(),
                rows.len(),
                first.account_id,
                if write { "" } else { " (nothing is changed: managementPolicy Observe, or a plan)" }
            ),
        }
    } else {
        Readiness::Ready {
            reason: "Compliant",
            message: format!("every control complies in all {} targeted account(s)", rows.len()),
        }
    };
    Ok(progress)
}

/// Retain leaves the accounts as they are; Delete puts back what the baseline turned on (S3 Block
/// Public Access, EBS encryption and IMDSv2 defaults). A deleted VPC is never re-created; roles,
/// contacts and Config are left in place.
pub async fn delete(resource: &mut SecurityBaseline, pass: &mut Pass) -> Result<Progress, Error> {
    let b = resource.clone();
    let spec = &b.spec;
    if spec.deletion_policy != DeletionPolicy::Delete
        || spec.management_policy == ManagementPolicy::Observe
    {
        return Ok(Progress::ready("Retained", "the accounts' settings were left as they are"));
    }
    let accounts = b
        .status
        .iter()
        .flat_map(|s| s.accounts.iter().map(|a| a.account_id.clone()))
        .collect::<Vec<_>>();
    let mut progress = Progress::ready(
        "Reverted",
        "S3 Block Public Access, EBS encryption and IMDSv2 defaults were turned off where the baseline set them",
    );
    let snap = pass.snapshot.clone();
    let partition = snap.partition().to_string();
    let management = snap.management_account_id().unwrap_or_default().to_string();
    for id in accounts {
        let role_name = pass.role_name(&id).to_string();
        let c = pass
            .aws
            .members
            .clients(Some(&id), Some(&management), &partition, &role_name);
        let mut steps: Vec<String> = Vec::new();
        if spec.s3_block_public_access == Some(true) {
            steps.push(format!("turn S3 Block Public Access off in account {id}"));
            if pass.mode == Mode::Apply {
                c.controls.set_s3_public_access_block(&id, false).await?;
            }
        }
        for region in &spec.regions {
            if spec.ebs_default_encryption.as_ref().is_some_and(|e| e.enabled) {
                steps.push(format!("turn EBS encryption by default off in {region} of {id}"));
                if pass.mode == Mode::Apply {
                    c.controls.set_ebs_encryption(region, false, None).await?;
                }
            }
            if spec.instance_metadata_v2_default == Some(true) {
                steps.push(format!("stop requiring IMDSv2 by default in {region} of {id}"));
                if pass.mode == Mode::Apply {
                    c.controls.set_imds_v2_required(region, false).await?;
                }
            }
        }
        if pass.mode == Mode::Apply {
            progress.writes += steps.len();
        }
        progress.actions.extend(steps);
    }
    Ok(progress)
}

/// The per-account series this process set, by baseline (removed by full label set only).
static SERIES: std::sync::Mutex<BTreeMap<String, BTreeSet<[String; 3]>>> =
    std::sync::Mutex::new(BTreeMap::new());

fn gauges(m: &Metrics) -> [prometheus::IntGaugeVec; 2] {
    [
        m.kind_gauge(
            "security_baseline_control_failing",
            "1 for each account, control and region where a SecurityBaseline's control does not comply",
            &["name", "account_id", "control", "region"],
        ),
        m.kind_gauge(
            "security_baseline_accounts",
            "Accounts a SecurityBaseline reaches, by compliance (compliant, failing)",
            &["name", "state"],
        ),
    ]
}

impl super::KindSpec for SecurityBaseline {
    const KIND: Kind = Kind::SecurityBaseline;
    const DEPENDS_ON: &'static [Kind] = &[Kind::OrganizationalUnit, Kind::AwsAccount];
    // The other baselines (where they disagree), and the accounts (their own security contact).
    const SEES: &'static [Kind] = &[Kind::SecurityBaseline, Kind::AwsAccount];
    crate::status_access!();

    fn dependencies(&self) -> Vec<Key> {
        let t = &self.spec.targets;
        let bucket_account = self
            .spec
            .config
            .as_ref()
            .and_then(|c| c.delivery_bucket.account_ref.as_ref());
        t.organizational_unit_refs
            .iter()
            .map(|r| Key::new(Kind::OrganizationalUnit, &r.name))
            .chain(t.account_refs.iter().map(|r| Key::new(Kind::AwsAccount, &r.name)))
            .chain(bucket_account.map(|r| Key::new(Kind::AwsAccount, &r.name)))
            .collect()
    }
    fn after_kinds(&self) -> &'static [Kind] {
        // Accounts created in or moved into a targeted OU in this pass are baselined in it.
        &[Kind::AwsAccount]
    }
    fn aws_id(&self) -> Option<String> {
        None
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
    fn declare_metrics(metrics: &Metrics) {
        gauges(metrics);
    }
    fn record_metrics(&self, m: &Metrics) {
        let [failing, accounts] = gauges(m);
        let name = kube::ResourceExt::name_any(self);
        let Some(s) = &self.status else { return };
        let now: BTreeSet<[String; 3]> = s
            .accounts
            .iter()
            .flat_map(|a| {
                a.failing.iter().map(|f| {
                    [
                        a.account_id.clone(),
                        f.control.clone(),
                        f.region.clone().unwrap_or_default(),
                    ]
                })
            })
            .collect();
        let mut series = SERIES.lock().expect("not poisoned");
        let before = series.entry(name.clone()).or_default();
        for gone in before.difference(&now) {
            let _ = failing.remove_label_values(&[&name, &gone[0], &gone[1], &gone[2]]);
        }
        for [account, control, region] in &now {
            failing
                .with_label_values(&[&name, account, control, region])
                .set(1);
        }
        *before = now;
        let compliant = i64::from(s.compliant_count);
        accounts
            .with_label_values(&[&name, "compliant"])
            .set(compliant);
        accounts
            .with_label_values(&[&name, "failing"])
            .set(i64::from(s.targeted_count) - compliant);
    }
    fn forget_metrics(&self, m: &Metrics) {
        let [failing, accounts] = gauges(m);
        let name = kube::ResourceExt::name_any(self);
        if let Some(gone) = SERIES.lock().expect("not poisoned").remove(&name) {
            for [account, control, region] in gone {
                let _ = failing.remove_label_values(&[&name, &account, &control, &region]);
            }
        }
        for state in ["compliant", "failing"] {
            let _ = accounts.remove_label_values(&[&name, state]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        Some(format!(
            "security baseline: {} of {} account(s) compliant{}",
            s.compliant_count,
            s.targeted_count,
            if s.coverage.is_empty() {
                String::new()
            } else {
                format!(", {} ACTIVE account(s) reached by no baseline", s.coverage.len())
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::security_baseline::SecurityBaselineStatus;
    use std::time::Duration;

    #[test]
    fn every_account_is_read_again_after_a_spec_change_or_once_the_last_full_read_is_old() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        // (why, generation, observed, last full read, allowed age, reads all)
        type Case<'a> = (&'a str, Option<i64>, Option<i64>, Option<&'a str>, u64, bool);
        let cases: &[Case] = &[
            ("never read", Some(1), Some(1), None, 150, true),
            ("read 60 s ago", Some(1), Some(1), Some("2026-12-05T09:59:00Z"), 150, false),
            ("read 200 s ago", Some(1), Some(1), Some("2026-12-05T09:56:40Z"), 150, true),
            ("spec changed", Some(2), Some(1), Some("2026-12-05T09:59:00Z"), 150, true),
            ("a CLI run's first round", None, None, Some("2026-12-05T09:59:59Z"), 0, true),
            ("a CLI run's waiting round", None, None, Some("2026-12-05T09:00:00Z"), u64::MAX, false),
        ];
        for (why, generation, observed, last, every, want) in cases {
            let mut b = SecurityBaseline::new("cis", serde_json::from_value(serde_json::json!({"targets": {"root": true}})).unwrap());
            b.metadata.generation = *generation;
            let mut status = SecurityBaselineStatus {
                last_full_check_time: last.map(str::to_string),
                ..Default::default()
            };
            status.common.observed_generation = *observed;
            b.status = Some(status);
            assert_eq!(
                full_check_due(&b, &now, Duration::from_secs(*every)),
                *want,
                "{why}"
            );
        }
    }
}
