//! The reconcile core: observe (read AWS) → plan (pure) → apply (write AWS), one driver for all kinds.
//!
//! The CLI (`plan` / `apply --dir`) and the in-cluster controller share this module; only where
//! desired state comes from and where status goes differ (`StatusSink`).

pub mod conditions;
pub mod driver;
pub mod error;
#[macro_use]
pub mod registry;
pub mod snapshot;
pub mod tags;

pub use error::Error;
pub use registry::{KindSpec, KindVisitor};
pub use snapshot::OrgSnapshot;

// The kinds: adding one is its folder under reconcile/, its file under api/, and a line here.
kinds! {
    Organization => organization,
    OrganizationalUnit => organizational_unit,
    AwsAccount => aws_account,
    IdentityGroup => identity_group,
    Budget => budget,
    AuditTrail => audit_trail,
    OrganizationPolicy => organization_policy,
    SecurityBaseline => security_baseline,
    IdentityCenterGroup => identity_center_group,
    PermissionSet => permission_set,
    AccountAssignment => account_assignment,
}

use crate::api::{self, Drift};
use crate::aws::AwsPorts;
use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's identity: kind and (cluster-scoped) name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Apply executes the plan; Plan only observes and reports what would be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Plan,
}

/// Where status goes as soon as it must be durable (the CLI's state file, or the status subresource).
#[async_trait]
pub trait StatusSink: Send + Sync {
    async fn save(&self, key: &Key, status: &serde_json::Value) -> Result<(), String>;
}

/// Fields that change on every read without anything having happened worth a write: the time of
/// this sync, the trail's last delivery (CloudTrail delivers every few minutes), a baseline's last
/// read of all its accounts (unwritten, it only makes the next reconcile read them all). They are
/// written along with any other change.
const VOLATILE: &[&str] = &["lastSyncTime", "latestDeliveryTime", "lastFullCheckTime"];

/// Equal for the purpose of writing: volatile fields alone changing are not worth a write.
pub fn same_status(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    changed_status_fields(a, b).is_empty()
}

/// The status fields that differ between two statuses, volatile ones left out: top-level field
/// names, and `conditions.<type>` for a condition (so an idle write can be traced to its cause in
/// `status_field_changes_total` and the log). A bounded set per kind: fit for a metric label.
pub fn changed_status_fields(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let conditions = |v: Option<&Value>| -> BTreeMap<String, Value> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| (c["type"].as_str().unwrap_or("").to_string(), c.clone()))
            .collect()
    };
    let fields: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut changed = Vec::new();
    for field in fields {
        if VOLATILE.contains(&field.as_str()) || a.get(field) == b.get(field) {
            continue;
        }
        if field == "conditions" {
            let (ca, cb) = (conditions(a.get(field)), conditions(b.get(field)));
            let types: BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
            changed.extend(
                types
                    .into_iter()
                    .filter(|t| ca.get(*t) != cb.get(*t))
                    .map(|t| format!("conditions.{t}")),
            );
        } else {
            changed.push(field.clone());
        }
    }
    changed
}

/// A sink that keeps nothing (for `plan`).
pub struct NoSink;

#[async_trait]
impl StatusSink for NoSink {
    async fn save(&self, _: &Key, _: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// Everything one pass over the resources shares.
pub struct Pass {
    pub aws: AwsPorts,
    /// Shared by the reconciles of a pass; one that writes gets its own copy (`snapshot_mut`).
    pub snapshot: Arc<OrgSnapshot>,
    /// AWS's CreateAccount slots since the snapshot was read (shared by the forks).
    pub creates: Arc<snapshot::CreateSlots>,
    /// Accounts this pass (and its forks) asked AWS to close since the snapshot was read.
    pub closes_sent: Arc<AtomicUsize>,
    pub mode: Mode,
    /// AWS ids of resources, by key, as known so far in this pass (for references).
    pub ids: BTreeMap<Key, String>,
    /// The access role of member accounts that AwsAccount resources name (`spec.roleName`), by
    /// account id; accounts not in it use the default role.
    pub role_names: BTreeMap<String, String>,
    /// The resources of the kinds this one sees ([`KindSpec::SEES`]), itself left out; empty for
    /// most kinds.
    pub peers: Vec<Resource>,
    pub sink: Arc<dyn StatusSink>,
    pub now: Time,
    /// When the snapshot was read, and the Organizations writes counted then: a run reads it
    /// whole again once it is older than [`RUN_SNAPSHOT_TTL`] or after a write it cannot follow.
    pub read_at: std::time::Instant,
    pub writes_at_read: u64,
    /// How long a read of every account a resource reaches (a SecurityBaseline's) stays good:
    /// within it, a reconcile reads only the accounts new to it or not compliant. The controller:
    /// half the resync interval; the CLI: a run's first round reads them all, its waiting rounds
    /// (accounts being created) only what is new.
    pub full_check_every: std::time::Duration,
    /// Whether this reconcile makes the reads only a call per resource answers (an account's or
    /// OU's tags, the baseline inside a member account). The controller leaves them out of most
    /// resyncs while change events arrive (`--full-read-every`): the resource then compares its
    /// structure with the shared snapshot only and keeps what the last such read found. The CLI
    /// always makes them.
    pub own_reads: bool,
    /// The CLI's read of the whole Organization running in the background, once the snapshot is
    /// older than [`RUN_SNAPSHOT_TTL`]: the rounds go on meanwhile.
    pub reading: Option<BackgroundRead>,
}

/// A read of the whole Organization in the background, with what it may have missed.
pub struct BackgroundRead {
    task: tokio::task::JoinHandle<crate::aws::AwsResult<OrgSnapshot>>,
    /// The changes taken since it began (the run's own moves, renames, new OUs and accounts): the
    /// read may have listed their parents before them, so they are read again into it.
    missed: crate::aws::organizations::SnapshotChange,
    /// Organizations writes counted, and the CreateAccount requests sent, when it began.
    writes: u64,
    sent_before: BTreeSet<String>,
    started: std::time::Instant,
}

/// A read still going when its run ends (or a whole read replaces it) stops: nothing would take it.
impl Drop for BackgroundRead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long one run of the CLI works from one read of the Organization (its own changes merged
/// in) before reading it whole again: what others change meanwhile is seen within this time.
pub const RUN_SNAPSHOT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Placeholder id of a resource that the plan would create.
pub fn planned_id(key: &Key) -> String {
    format!("<new {key}>")
}

impl Pass {
    /// Reads the Organization once for this pass.
    pub async fn begin(
        aws: AwsPorts,
        mode: Mode,
        sink: Arc<dyn StatusSink>,
    ) -> Result<Pass, Error> {
        let writes_at_read = aws.organizations_writes.load(Ordering::SeqCst);
        // What was recorded before this read is in it.
        std::mem::take(&mut *aws.snapshot_changes.lock().expect("not poisoned"));
        let snapshot = Arc::new(OrgSnapshot::load(aws.organizations.as_ref()).await?);
        Ok(Pass {
            aws,
            snapshot,
            creates: Arc::default(),
            closes_sent: Arc::default(),
            mode,
            ids: BTreeMap::new(),
            role_names: BTreeMap::new(),
            peers: Vec::new(),
            sink,
            now: Time(k8s_openapi::jiff::Timestamp::now()),
            read_at: std::time::Instant::now(),
            writes_at_read,
            full_check_every: std::time::Duration::ZERO,
            own_reads: true,
            reading: None,
        })
    }

    /// Between the rounds and waves of one run. AWS Organizations written in a way the snapshot
    /// cannot follow (an OU deleted, an account closed): the Organization is read whole again,
    /// now. Otherwise the parents whose accounts AWS has just created are read again, and the root
    /// after a policy type was enabled; moves, renames and new OUs are this run's own, already
    /// merged from the reconciles that made them. Once the snapshot is older than [`RUN_SNAPSHOT_TTL`] (what others changed),
    /// a whole read starts in the background and replaces it at the first refresh after it ends,
    /// with the run's changes made meanwhile read again into it: at 20 OUs a whole read takes ~9 s
    /// (paced), during which the rounds go on.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        let writes = self.aws.organizations_writes.load(Ordering::SeqCst);
        let change = std::mem::take(&mut *self.aws.snapshot_changes.lock().expect("not poisoned"));
        if change.everything || writes != self.writes_at_read {
            // A read in the background would miss these writes: it stops (dropped).
            self.reading = None;
            let sent_before = self.creates.sent_ids();
            let snapshot = OrgSnapshot::load(self.aws.organizations.as_ref()).await?;
            self.replace_snapshot(snapshot, std::time::Instant::now(), writes, &sent_before);
        } else {
            if let Some(reading) = &mut self.reading {
                reading.missed.merge(change.clone());
            }
            // What AWS made or set that the reconciles could not record themselves: the
            // accounts just created, the root's policy types (AWS may still be enabling one).
            let from_aws = crate::aws::organizations::SnapshotChange {
                accounts_under: change.accounts_under,
                root: change.root,
                ..Default::default()
            };
            if !from_aws.is_empty() {
                let orgs = self.aws.organizations.clone();
                self.snapshot_mut().patch(&from_aws, orgs.as_ref()).await?;
            }
            if self.reading.as_ref().is_some_and(|r| r.task.is_finished())
                && let Some(mut reading) = self.reading.take()
            {
                // A failed read and one that panicked alike leave the run on its last read.
                let read = match (&mut reading.task).await {
                    Ok(read) => read.map_err(|e| e.to_string()),
                    Err(stopped) => Err(stopped.to_string()),
                };
                match read {
                    Ok(mut snapshot) => {
                        snapshot
                            .patch(&reading.missed, self.aws.organizations.as_ref())
                            .await?;
                        self.replace_snapshot(
                            snapshot,
                            reading.started,
                            reading.writes,
                            &reading.sent_before,
                        );
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not read the Organization again; the run goes on with its last read and tries again in {} s", RUN_SNAPSHOT_TTL.as_secs());
                        self.read_at = std::time::Instant::now();
                    }
                }
            }
            if self.reading.is_none() && self.read_at.elapsed() >= RUN_SNAPSHOT_TTL {
                let orgs = self.aws.organizations.clone();
                self.reading = Some(BackgroundRead {
                    task: tokio::spawn(async move { OrgSnapshot::load(orgs.as_ref()).await }),
                    missed: Default::default(),
                    writes,
                    sent_before: self.creates.sent_ids(),
                    started: std::time::Instant::now(),
                });
            }
        }
        self.now = Time(k8s_openapi::jiff::Timestamp::now());
        Ok(())
    }

    /// A new read of the whole Organization, begun at `read_at` with `writes` counted and
    /// `sent_before` sent, becomes this run's snapshot.
    fn replace_snapshot(
        &mut self,
        snapshot: OrgSnapshot,
        read_at: std::time::Instant,
        writes: u64,
        sent_before: &BTreeSet<String>,
    ) {
        self.creates.read_again(&snapshot.in_flight, sent_before);
        self.snapshot = Arc::new(snapshot);
        self.closes_sent = Arc::default();
        self.read_at = read_at;
        self.writes_at_read = writes;
    }

    /// The snapshot, to record what this reconcile changed in AWS (copied on first write).
    pub fn snapshot_mut(&mut self) -> &mut OrgSnapshot {
        Arc::make_mut(&mut self.snapshot)
    }

    /// A pass for one resource reconciled alongside others: same snapshot and ids so far.
    fn fork(&self) -> Pass {
        Pass {
            aws: self.aws.clone(),
            snapshot: self.snapshot.clone(),
            creates: self.creates.clone(),
            closes_sent: self.closes_sent.clone(),
            mode: self.mode,
            ids: self.ids.clone(),
            role_names: self.role_names.clone(),
            peers: Vec::new(),
            sink: self.sink.clone(),
            now: self.now.clone(),
            read_at: self.read_at,
            writes_at_read: self.writes_at_read,
            full_check_every: self.full_check_every,
            own_reads: self.own_reads,
            reading: None,
        }
    }

    /// Id of a referenced resource, or why there is none yet.
    pub fn resolve(&self, key: &Key) -> Result<String, Error> {
        self.ids
            .get(key)
            .cloned()
            .ok_or_else(|| Error::WaitingForDependency {
                kind: key.kind.as_str(),
                name: key.name.clone(),
                why: "it does not exist yet or is not ready; this resource is retried once it is"
                    .to_string(),
            })
    }

    /// Resolves `parentRef` / `parentId` / the root to a parent id.
    pub fn resolve_parent(
        &self,
        parent_ref: &Option<api::ResourceRef>,
        parent_id: &Option<String>,
    ) -> Result<String, Error> {
        match (parent_ref, parent_id) {
            (Some(r), _) => self.resolve(&Key::new(Kind::OrganizationalUnit, &r.name)),
            (None, Some(id)) => {
                if self.snapshot.parent_exists(id) {
                    Ok(id.clone())
                } else {
                    Err(Error::InvalidSpec {
                        message: format!(
                            "parentId {id} is neither the root nor an OU of this Organization"
                        ),
                    })
                }
            }
            (None, None) => Ok(self.snapshot.root_id.clone()),
        }
    }

    pub async fn checkpoint<K: KindSpec>(&self, resource: &K) -> Result<(), Error> {
        self.save_status(
            &Key::new(K::KIND, kube::ResourceExt::name_any(resource)),
            &resource.status_json(),
        )
        .await
    }

    async fn save_status(&self, key: &Key, status: &serde_json::Value) -> Result<(), Error> {
        if self.mode == Mode::Plan {
            return Ok(());
        }
        self.sink
            .save(key, status)
            .await
            .map_err(|e| Error::conflict("StatusNotSaved", format!("could not save status: {e}")))
    }
}

/// Whether the resource is usable, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready {
        reason: &'static str,
        message: String,
    },
    NotReady {
        reason: &'static str,
        message: String,
    },
}

impl Pass {
    /// Readiness of a resource that does not exist in AWS and will not be created in this pass:
    /// `WouldCreate` in a plan, `NotFound` in Observe mode.
    pub fn missing(&self, what: String) -> Readiness {
        match self.mode {
            Mode::Plan => Readiness::NotReady {
                reason: "WouldCreate",
                message: format!("{what}; apply would create it"),
            },
            Mode::Apply => Readiness::NotReady {
                reason: "NotFound",
                message: format!(
                    "{what}; with managementPolicy: Observe nothing is created (set Manage to create it)"
                ),
            },
        }
    }
}

/// What one reconcile did (Apply) or would do (Plan).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Actions carried out (Apply) or planned (Plan), in order, readable.
    pub actions: Vec<String>,
    /// AWS write calls made.
    pub writes: usize,
    /// Drift found when observing.
    pub drift: Vec<Drift>,
    /// Drift still there after this pass (all of it in Plan or Observe mode).
    pub remaining: Vec<Drift>,
    pub ready: Readiness,
}

impl Progress {
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            actions: Vec::new(),
            writes: 0,
            drift: Vec::new(),
            remaining: Vec::new(),
            ready: Readiness::Ready {
                reason,
                message: message.into(),
            },
        }
    }
}

/// The outcome of one resource in a pass, for reports.
#[derive(Debug)]
pub struct Report {
    pub key: Key,
    pub id: Option<String>,
    pub result: Result<Progress, Error>,
}

/// Resources reconciled at once within a wave of a pass.
pub const PASS_CONCURRENCY: usize = 8;

/// Splits a dependency order into waves: a resource goes one wave after the last resource it
/// refers to. Accounts whose CreateAccount request is in flight go in a wave of their own before
/// the rest of theirs: one that finished has freed its slot before any queued account of the
/// round asks for one, instead of a round later (reconciled side by side, a queued account often
/// asked first: a freed slot waited 0.24–0.5 s on average while vending 200).
fn waves(resources: &[Resource], order: &[usize]) -> Vec<Vec<usize>> {
    dependency_waves(resources, order)
        .into_iter()
        .flat_map(|wave| {
            let (first, rest): (Vec<usize>, Vec<usize>) =
                wave.into_iter().partition(|&i| creating(&resources[i]));
            [first, rest].into_iter().filter(|w| !w.is_empty())
        })
        .collect()
}

/// An account whose CreateAccount request was in progress at its last reconcile. One whose request
/// has ended (AWS not listing it yet, or listing it now) is being set up — moved into its OU
/// (MoveAccount is paced at 1.5/s), its baseline — and goes with the rest: in the first wave it held
/// the queued accounts' requests back by 0.41 s a slot on average while vending 200.
fn creating(r: &Resource) -> bool {
    let Resource::AwsAccount(a) = r else {
        return false;
    };
    a.status.as_ref().is_some_and(|s| {
        s.create_request_id.is_some()
            && s.account_id.is_none()
            && s.common
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .is_none_or(|c| c.reason == aws_account::plan::CREATING)
    })
}

fn dependency_waves(resources: &[Resource], order: &[usize]) -> Vec<Vec<usize>> {
    let mut level: BTreeMap<Key, usize> = BTreeMap::new();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for &i in order {
        let l = resources[i]
            .dependencies_among(resources)
            .iter()
            .filter_map(|d| level.get(d).map(|l| l + 1))
            .max()
            .unwrap_or(0);
        level.insert(resources[i].key(), l);
        if waves.len() <= l {
            waves.resize_with(l + 1, Vec::new);
        }
        waves[l].push(i);
    }
    waves
}

/// Orders resources so that every resource comes after the ones it refers to; cycles are reported.
pub fn dependency_order(resources: &[Resource]) -> (Vec<usize>, Vec<(usize, String)>) {
    let index: BTreeMap<Key, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key(), i))
        .collect();
    let mut order = Vec::new();
    let mut placed = BTreeSet::new();
    let mut cyclic = Vec::new();
    // Kinds first (OUs, accounts, groups, budgets, trails), then by name, for a stable order.
    let mut pending: Vec<usize> = (0..resources.len()).collect();
    pending.sort_by_key(|&i| resources[i].key());
    loop {
        let before = pending.len();
        pending.retain(|&i| {
            let ready = resources[i]
                .dependencies_among(resources)
                .iter()
                .all(|d| index.get(d).is_none_or(|j| placed.contains(j)));
            if ready {
                order.push(i);
                placed.insert(i);
            }
            !ready
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    for i in pending {
        cyclic.push((
            i,
            format!(
                "{} is part of a reference cycle; break the cycle of parentRef/accountRef",
                resources[i].key()
            ),
        ));
    }
    (order, cyclic)
}

/// Reconciles one resource (observe → plan → apply for its kind) and folds the result into its
/// common status (conditions, drift, observedGeneration). The caller persists the status.
pub async fn reconcile_resource(
    resource: &mut Resource,
    pass: &mut Pass,
) -> Result<Progress, Error> {
    let key = resource.key();
    let result = resource.reconcile_kind(pass).await;
    match (&result, resource.aws_id()) {
        (Ok(_), Some(id)) => {
            pass.ids.insert(key, id);
        }
        (Ok(p), None) if pass.mode == Mode::Plan && !p.actions.is_empty() => {
            pass.ids.insert(key.clone(), planned_id(&key));
        }
        _ => {
            pass.ids.remove(&key);
        }
    }
    let generation = resource.generation();
    conditions::update_common(resource.common_status_mut(), &result, generation, &pass.now);
    result
}

/// Reconciles every resource once, in dependency order, saving each status as it goes.
pub async fn run_pass(resources: &mut [Resource], pass: &mut Pass) -> Vec<Report> {
    for r in resources.iter() {
        if let Some(id) = r.aws_id() {
            pass.ids.insert(r.key(), id);
        }
    }
    let (order, cyclic) = dependency_order(resources);
    let mut reports = Vec::new();
    // Each wave holds resources whose references all come from earlier waves; a wave's resources
    // are reconciled concurrently, each with its own fork of the pass.
    for wave in waves(resources, &order) {
        // The accounts being created only poll their requests: what AWS made meanwhile is read
        // after the rest of their wave, so that a slot one of them freed is taken without waiting
        // for a read (ListAccountsForParent is paced at 4/s, shared with a read in the background).
        let polling_only = wave.iter().all(|&i| creating(&resources[i]));
        pass.role_names.extend(role_names(resources, &pass.ids));
        let base = pass.snapshot.clone();
        let forks: Vec<_> = wave
            .iter()
            .map(|&i| {
                let mut fork = pass.fork();
                fork.peers = peers_of(&resources[i], resources);
                (i, resources[i].clone(), fork)
            })
            .collect();
        let mut done: Vec<_> = futures::stream::iter(forks)
            .map(|(i, mut resource, mut fork)| async move {
                let result = reconcile_resource(&mut resource, &mut fork).await;
                let result = match (
                    result,
                    fork.save_status(&resource.key(), &resource.status_json())
                        .await,
                ) {
                    (Ok(_), Err(e)) => Err(e),
                    (r, _) => r,
                };
                (i, resource, result, fork)
            })
            .buffer_unordered(PASS_CONCURRENCY)
            .collect()
            .await;
        done.sort_by_key(|(i, ..)| wave.iter().position(|w| w == i));
        for (i, resource, result, fork) in done {
            let key = resource.key();
            match fork.ids.get(&key) {
                Some(id) => pass.ids.insert(key.clone(), id.clone()),
                None => pass.ids.remove(&key),
            };
            // What the reconcile recorded of its own writes, for the waves that refer to it.
            if !Arc::ptr_eq(&fork.snapshot, &base) {
                pass.snapshot_mut().merge_from(&base, &fork.snapshot);
            }
            resources[i] = resource;
            reports.push(Report {
                key,
                id: resources[i].aws_id(),
                result,
            });
        }
        // What AWS did that the reconciles could not record (an account AWS has just made, an OU
        // deleted), for the waves that refer to it.
        if !polling_only && let Err(e) = pass.refresh().await {
            tracing::warn!(error = %e, "could not read the Organization again");
        }
    }
    for (i, why) in cyclic {
        reports.push(Report {
            key: resources[i].key(),
            id: None,
            result: Err(Error::InvalidSpec { message: why }),
        });
    }
    reports
}

/// The resources of the kinds `resource` sees, itself left out.
pub fn peers_of(resource: &Resource, resources: &[Resource]) -> Vec<Resource> {
    let (sees, key) = (resource.sees(), resource.key());
    if sees.is_empty() {
        return Vec::new();
    }
    resources
        .iter()
        .filter(|r| sees.contains(&r.kind()) && r.key() != key)
        .cloned()
        .collect()
}

/// The access role of every account an AwsAccount resource names, by account id.
pub fn role_names(resources: &[Resource], ids: &BTreeMap<Key, String>) -> BTreeMap<String, String> {
    resources
        .iter()
        .filter_map(|r| {
            let (_, role) = r.member_role()?;
            ids.get(&r.key()).map(|id| (id.clone(), role))
        })
        .collect()
}

impl Pass {
    /// The role the operator assumes in `account_id`.
    pub fn role_name(&self, account_id: &str) -> &str {
        self.role_names
            .get(account_id)
            .map(String::as_str)
            .unwrap_or(crate::api::aws_account::DEFAULT_ROLE_NAME)
    }
}

/// Carries out the deletion policy of one resource (Retain: nothing in AWS).
pub async fn delete_resource(resource: &mut Resource, pass: &mut Pass) -> Result<Progress, Error> {
    resource.delete_kind(pass).await
}

/// Carries out the deletion policy of resources that are gone from the desired state,
/// dependents first (accounts before their OUs, child OUs before parents).
pub async fn run_deletions(resources: &mut [Resource], pass: &mut Pass) -> Vec<Report> {
    // References may point at resources being deleted too, or at ones still desired (the caller
    // seeds those): both are known by the ids in their status.
    for r in resources.iter() {
        if let Some(id) = r.aws_id() {
            pass.ids.entry(r.key()).or_insert(id);
        }
    }
    let (mut order, _) = dependency_order(resources);
    order.reverse();
    let mut reports = Vec::new();
    for i in order {
        let resource = &mut resources[i];
        let result = delete_resource(resource, pass).await;
        reports.push(Report {
            key: resource.key(),
            id: resource.aws_id(),
            result,
        });
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accounts_being_created_go_in_a_wave_before_the_rest_of_theirs() {
        let ready = |reason: &str| {
            json!({"type": "Ready", "status": "False", "reason": reason, "message": "",
                   "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        let account = |name: &str, status: serde_json::Value| {
            Resource::AwsAccount(
                serde_json::from_value(json!({
                    "apiVersion": "landingzone.dev/v1alpha1", "kind": "AwsAccount",
                    "metadata": {"name": name},
                    "spec": {"accountName": name, "email": format!("{name}@example.com")},
                    "status": status,
                }))
                .unwrap(),
            )
        };
        let resources = [
            account("queued", json!({})),
            account(
                "created",
                json!({"createRequestId": "car-1", "accountId": "111111111111"}),
            ),
            account("creating", json!({"createRequestId": "car-2"})),
            account("queued-too", json!({})),
            account(
                "still-creating",
                json!({"createRequestId": "car-3", "conditions": [ready("Creating")]}),
            ),
            account(
                "not-yet-listed",
                json!({"createRequestId": "car-4", "conditions": [ready("AccountNotYetVisible")]}),
            ),
        ];
        let (order, _) = dependency_order(&resources);
        // The others keep their order.
        let first = [2, 4];
        let rest: Vec<usize> = order
            .iter()
            .copied()
            .filter(|i| !first.contains(i))
            .collect();
        assert_eq!(waves(&resources, &order), vec![first.to_vec(), rest]);
        assert_eq!(dependency_waves(&resources, &order), vec![order.clone()]);
    }

    #[test]
    fn only_last_sync_time_changing_is_no_change() {
        let a = json!({"id": "ou-1", "lastSyncTime": "2026-01-01T00:00:00Z", "conditions": []});
        let b = json!({"id": "ou-1", "lastSyncTime": "2026-01-01T00:05:00Z", "conditions": []});
        let c = json!({"id": "ou-2", "lastSyncTime": "2026-01-01T00:05:00Z", "conditions": []});
        assert!(same_status(&a, &b));
        assert!(!same_status(&a, &c));
    }

    #[test]
    fn changed_status_fields_name_the_field_and_the_condition() {
        let ready = |status: &str| json!({"type": "Ready", "status": status});
        let synced = json!({"type": "Synced", "status": "True"});
        let cases = [
            // (reason, before, after, changed)
            (
                "only volatile fields",
                json!({"id": "1", "lastSyncTime": "a", "latestDeliveryTime": "x"}),
                json!({"id": "1", "lastSyncTime": "b", "latestDeliveryTime": "y"}),
                vec![],
            ),
            (
                "a field added, one changed",
                json!({"id": "1"}),
                json!({"id": "2", "arn": "a"}),
                vec!["arn", "id"],
            ),
            (
                "a field removed",
                json!({"id": "1", "drift": []}),
                json!({"id": "1"}),
                vec!["drift"],
            ),
            (
                "one condition of two flipped, whatever the order",
                json!({"conditions": [ready("False"), synced.clone()]}),
                json!({"conditions": [synced.clone(), ready("True")]}),
                vec!["conditions.Ready"],
            ),
            (
                "conditions only reordered",
                json!({"conditions": [ready("True"), synced.clone()]}),
                json!({"conditions": [synced.clone(), ready("True")]}),
                vec![],
            ),
            ("not objects", json!(null), json!({}), vec![]),
        ];
        for (reason, before, after, want) in cases {
            assert_eq!(changed_status_fields(&before, &after), want, "{reason}");
        }
    }
}
