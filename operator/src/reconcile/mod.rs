//! The reconcile core: observe (read AWS) → plan (pure) → apply (write AWS), one driver for all kinds.
//!
//! The CLI (`plan` / `apply --dir`) and the in-cluster controller share this module; only where
//! desired state comes from and where status goes differ (`StatusSink`).

pub mod conditions;
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
        })
    }

    /// Between the rounds and waves of one run: reads the Organization whole again when the
    /// snapshot is older than [`RUN_SNAPSHOT_TTL`] or AWS Organizations was written in a way it
    /// cannot follow (an OU created, an account closed, a policy type enabled); otherwise reads
    /// only the parents whose accounts AWS has just created. Moves and renames are this run's own,
    /// already merged from the reconciles that made them.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        let writes = self.aws.organizations_writes.load(Ordering::SeqCst);
        let change = std::mem::take(&mut *self.aws.snapshot_changes.lock().expect("not poisoned"));
        if change.everything
            || writes != self.writes_at_read
            || self.read_at.elapsed() >= RUN_SNAPSHOT_TTL
        {
            self.snapshot = Arc::new(OrgSnapshot::load(self.aws.organizations.as_ref()).await?);
            // The CreateAccount slots stay: reconciles running beside this read hold them, and
            // they count what the new listing shows in flight only once.
            self.closes_sent = Arc::default();
            self.read_at = std::time::Instant::now();
            self.writes_at_read = writes;
        } else if !change.accounts_under.is_empty() {
            let new_accounts = crate::aws::organizations::SnapshotChange {
                accounts_under: change.accounts_under,
                ..Default::default()
            };
            let orgs = self.aws.organizations.clone();
            self.snapshot_mut()
                .patch(&new_accounts, orgs.as_ref())
                .await?;
        }
        self.now = Time(k8s_openapi::jiff::Timestamp::now());
        Ok(())
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

    pub async fn checkpoint(&self, resource: &Resource) -> Result<(), Error> {
        if self.mode == Mode::Plan {
            return Ok(());
        }
        self.sink
            .save(&resource.key(), &resource.status_json())
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

/// An account whose CreateAccount request is in flight (not yet an account id).
fn creating(r: &Resource) -> bool {
    matches!(r, Resource::AwsAccount(a) if a.status.as_ref().is_some_and(|s| s.create_request_id.is_some() && s.account_id.is_none()))
}

/// An account with neither an id nor a request: its reconcile asks for a CreateAccount slot.
fn wants_a_slot(r: &Resource) -> bool {
    matches!(r, Resource::AwsAccount(a) if a.status.as_ref().is_none_or(|s| s.create_request_id.is_none() && s.account_id.is_none()))
}

/// What a pass starts first among the resources free to start: accounts whose request is in flight
/// (one that finished frees a slot for the accounts that want one), then what account creation
/// waits for and is (OUs, accounts), then the rest.
fn urgency(r: &Resource) -> u8 {
    match r {
        _ if creating(r) => 0,
        Resource::OrganizationalUnit(_) | Resource::AwsAccount(_) => 1,
        _ => 2,
    }
}

/// How a reconcile in a pass ended, for what comes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Done,
    /// Its CreateAccount is still in flight: looked at again while the pass has other work.
    StillCreating,
    /// Refused a CreateAccount slot (or paced): waits for a request of this pass to finish.
    Queued,
}

/// Which resource of a pass starts next, and when one goes again: the pure half of
/// [`run_pass_rechecking`]. A resource starts as soon as the resources it refers to are done (not
/// when a whole wave is: the first CreateAccount no longer waits for the trail's bucket), at most
/// [`PASS_CONCURRENCY`] at once, by [`urgency`]. While accounts whose request is in flight are
/// looked at, the accounts that want a slot wait for them, so one that finished frees its slot in
/// the same pass.
struct Schedule {
    deps_left: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    /// (urgency, position in the dependency order, index), smallest first.
    ready: BTreeSet<(u8, usize, usize)>,
    rank: Vec<usize>,
    urgency: Vec<u8>,
    wants_a_slot: Vec<bool>,
    creating: Vec<bool>,
    released: Vec<bool>,
    running: usize,
    /// Accounts with a request in flight that are ready or running.
    creating_pending: usize,
    /// Accounts refused a slot in this pass, by position in the order.
    parked: BTreeSet<(usize, usize)>,
}

impl Schedule {
    fn new(resources: &[Resource], order: &[usize]) -> Self {
        let n = resources.len();
        let index: BTreeMap<Key, usize> = order.iter().map(|&i| (resources[i].key(), i)).collect();
        let mut s = Schedule {
            deps_left: vec![0; n],
            dependents: vec![Vec::new(); n],
            ready: BTreeSet::new(),
            rank: vec![usize::MAX; n],
            urgency: resources.iter().map(urgency).collect(),
            wants_a_slot: resources.iter().map(wants_a_slot).collect(),
            creating: resources.iter().map(creating).collect(),
            released: vec![false; n],
            running: 0,
            creating_pending: 0,
            parked: BTreeSet::new(),
        };
        for (rank, &i) in order.iter().enumerate() {
            s.rank[i] = rank;
            let deps: BTreeSet<usize> = resources[i]
                .dependencies_among(resources)
                .iter()
                .filter_map(|d| index.get(d).copied())
                .filter(|&d| d != i)
                .collect();
            s.deps_left[i] = deps.len();
            for d in deps {
                s.dependents[d].push(i);
            }
        }
        for &i in order {
            if s.deps_left[i] == 0 {
                s.make_ready(i);
            }
        }
        s
    }

    fn make_ready(&mut self, i: usize) {
        if self.ready.insert((self.urgency[i], self.rank[i], i)) && self.creating[i] {
            self.creating_pending += 1;
        }
    }

    /// The next resource to start, if one may start now.
    fn next(&mut self) -> Option<usize> {
        if self.running >= PASS_CONCURRENCY {
            return None;
        }
        let gated = self.creating_pending > 0;
        let &entry = self
            .ready
            .iter()
            .find(|&&(_, _, i)| !(gated && self.wants_a_slot[i]))?;
        self.ready.remove(&entry);
        self.running += 1;
        Some(entry.2)
    }

    /// `i`'s reconcile ended; `free_slots` CreateAccount slots are free now. Returns whether `i`
    /// is to be looked at again after the recheck interval (then [`Schedule::due`] follows).
    fn ended(&mut self, i: usize, ended: Ended, free_slots: usize) -> bool {
        self.running -= 1;
        let was_creating = self.creating[i];
        if was_creating {
            self.creating_pending -= 1;
        }
        self.creating[i] = ended == Ended::StillCreating;
        self.wants_a_slot[i] = ended == Ended::Queued;
        if !self.released[i] {
            self.released[i] = true;
            for d in std::mem::take(&mut self.dependents[i]) {
                self.deps_left[d] -= 1;
                if self.deps_left[d] == 0 {
                    self.make_ready(d);
                }
            }
        }
        if ended == Ended::Queued {
            self.parked.insert((self.rank[i], i));
        }
        // Only a request seen in flight or finished can have freed a slot: waking the queued on
        // anything else would spin on the pacer's refusals.
        if was_creating || ended == Ended::StillCreating {
            for _ in 0..free_slots {
                match self.parked.pop_first() {
                    Some((_, p)) => self.make_ready(p),
                    None => break,
                }
            }
        }
        ended == Ended::StillCreating && (self.running > 0 || !self.ready.is_empty())
    }

    /// A recheck's interval is over.
    fn due(&mut self, i: usize) {
        self.make_ready(i);
    }

    /// Nothing runs and nothing may start: what sleeps or is parked waits for the next round.
    fn over(&self) -> bool {
        self.running == 0 && self.ready.is_empty()
    }
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
    run_pass_rechecking(resources, pass, None).await
}

/// What a reconcile of a pass hands back to the driver.
struct Reconciled {
    index: usize,
    resource: Resource,
    result: Result<Progress, Error>,
    fork: Pass,
    /// The snapshot the fork started from: what the reconcile changed is its difference.
    base: Arc<OrgSnapshot>,
}

enum PassEvent {
    Reconciled(Box<Reconciled>),
    Due(usize),
}

/// [`run_pass`], and with `recheck` (`apply --dir` waiting for accounts): while other resources
/// of the pass are still being reconciled, an account whose CreateAccount is in flight is looked
/// at again every `recheck`, and the slot a finished request frees goes to an account queued for
/// it at once. A round of baselines and assignments then no longer holds up the next CreateAccount
/// (vending 200 accounts lost 1.3 s a request to it).
pub async fn run_pass_rechecking(
    resources: &mut [Resource],
    pass: &mut Pass,
    recheck: Option<std::time::Duration>,
) -> Vec<Report> {
    for r in resources.iter() {
        if let Some(id) = r.aws_id() {
            pass.ids.insert(r.key(), id);
        }
    }
    let (order, cyclic) = dependency_order(resources);
    let mut schedule = Schedule::new(resources, &order);
    let mut reports: BTreeMap<usize, Report> = BTreeMap::new();
    let mut tasks: tokio::task::JoinSet<PassEvent> = tokio::task::JoinSet::new();
    // Whether a reconcile ended since the Organization was last looked at again: what AWS did
    // that the reconciles could not record (an OU created, an account AWS has just made) is read
    // before what refers to it starts.
    let mut stale = false;
    loop {
        while let Some(i) = schedule.next() {
            if stale {
                if let Err(e) = pass.refresh().await {
                    tracing::warn!(error = %e, "could not read the Organization again");
                }
                stale = false;
            }
            pass.role_names.extend(role_names(resources, &pass.ids));
            let mut fork = pass.fork();
            fork.peers = peers_of(&resources[i], resources);
            let base = pass.snapshot.clone();
            let mut resource = resources[i].clone();
            tasks.spawn(async move {
                let result = reconcile_resource(&mut resource, &mut fork).await;
                let result = match (result, fork.checkpoint(&resource).await) {
                    (Ok(_), Err(e)) => Err(e),
                    (r, _) => r,
                };
                PassEvent::Reconciled(Box::new(Reconciled {
                    index: i,
                    resource,
                    result,
                    fork,
                    base,
                }))
            });
        }
        if schedule.over() {
            break;
        }
        let event = match tasks.join_next().await {
            Some(Ok(event)) => event,
            Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only rechecks are aborted, and only once the pass is over.
            Some(Err(_)) | None => break,
        };
        let done = match event {
            PassEvent::Due(i) => {
                schedule.due(i);
                continue;
            }
            PassEvent::Reconciled(done) => *done,
        };
        let Reconciled {
            index: i,
            resource,
            result,
            fork,
            base,
        } = done;
        let key = resource.key();
        match fork.ids.get(&key) {
            Some(id) => pass.ids.insert(key.clone(), id.clone()),
            None => pass.ids.remove(&key),
        };
        // What the reconcile recorded of its own writes, for what refers to it.
        if !Arc::ptr_eq(&fork.snapshot, &base) {
            pass.snapshot_mut().merge_from(&base, &fork.snapshot);
        }
        let ended = match (&result, recheck) {
            (Ok(p), Some(_))
                if creating(&resource)
                    && matches!(
                        p.ready,
                        Readiness::NotReady {
                            reason: "Creating",
                            ..
                        }
                    ) =>
            {
                Ended::StillCreating
            }
            (Err(Error::Queued { .. }), Some(_)) => Ended::Queued,
            _ => Ended::Done,
        };
        resources[i] = resource;
        reports.insert(
            i,
            Report {
                key,
                id: resources[i].aws_id(),
                result,
            },
        );
        stale = true;
        let free = crate::aws::pacing::MAX_CREATE_IN_FLIGHT
            .saturating_sub(pass.creates.in_flight(&pass.snapshot.in_flight));
        if schedule.ended(i, ended, free)
            && let Some(every) = recheck
        {
            tasks.spawn(async move {
                tokio::time::sleep(every).await;
                PassEvent::Due(i)
            });
        }
    }
    // Rechecks still sleeping: the next round looks at those accounts.
    tasks.abort_all();
    if stale && let Err(e) = pass.refresh().await {
        tracing::warn!(error = %e, "could not read the Organization again");
    }
    let mut reports: Vec<Report> = order.iter().filter_map(|i| reports.remove(i)).collect();
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

    fn resource(
        kind: &str,
        name: &str,
        spec: serde_json::Value,
        status: serde_json::Value,
    ) -> Resource {
        let value = json!({
            "apiVersion": "landingzone.dev/v1alpha1", "kind": kind,
            "metadata": {"name": name}, "spec": spec, "status": status,
        });
        match kind {
            "AwsAccount" => Resource::AwsAccount(serde_json::from_value(value).unwrap()),
            "OrganizationalUnit" => {
                Resource::OrganizationalUnit(serde_json::from_value(value).unwrap())
            }
            "IdentityCenterGroup" => {
                Resource::IdentityCenterGroup(serde_json::from_value(value).unwrap())
            }
            _ => unreachable!(),
        }
    }

    fn account(name: &str, ou: Option<&str>, status: serde_json::Value) -> Resource {
        let mut spec = json!({"accountName": name, "email": format!("{name}@example.com")});
        if let Some(ou) = ou {
            spec["organizationalUnitRef"] = json!({"name": ou});
        }
        resource("AwsAccount", name, spec, status)
    }

    fn names(resources: &[Resource], schedule: &mut Schedule) -> Vec<String> {
        std::iter::from_fn(|| schedule.next())
            .map(|i| resources[i].key().name)
            .collect()
    }

    #[test]
    fn a_resource_starts_when_what_it_refers_to_is_done_not_its_wave() {
        let resources = [
            resource(
                "IdentityCenterGroup",
                "developers",
                json!({"displayName": "developers"}),
                json!({}),
            ),
            resource(
                "OrganizationalUnit",
                "team-1",
                json!({"name": "Team1"}),
                json!({}),
            ),
            resource(
                "OrganizationalUnit",
                "team-2",
                json!({"name": "Team2"}),
                json!({}),
            ),
            account("app-1", Some("team-1"), json!({})),
            account("app-2", Some("team-2"), json!({})),
        ];
        let (order, _) = dependency_order(&resources);
        let mut s = Schedule::new(&resources, &order);
        // What account creation waits for goes before the rest.
        assert_eq!(
            names(&resources, &mut s),
            ["team-1", "team-2", "developers"]
        );
        // team-2 and the group still running: team-1's account starts.
        assert!(!s.ended(1, Ended::Done, 5));
        assert_eq!(names(&resources, &mut s), ["app-1"]);
        assert!(!s.over());
        for i in [0, 2, 3] {
            s.ended(i, Ended::Done, 5);
        }
        assert_eq!(names(&resources, &mut s), ["app-2"]);
        s.ended(4, Ended::Done, 5);
        assert!(s.over());
    }

    #[test]
    fn a_request_seen_finished_frees_its_slot_for_a_queued_account_in_the_same_pass() {
        let resources = [
            resource(
                "IdentityCenterGroup",
                "slow",
                json!({"displayName": "slow"}),
                json!({}),
            ),
            account("queued-1", None, json!({})),
            account("creating", None, json!({"createRequestId": "car-1"})),
            account("queued-2", None, json!({})),
            account(
                "created",
                None,
                json!({"createRequestId": "car-0", "accountId": "111111111111"}),
            ),
        ];
        let (order, _) = dependency_order(&resources);
        let mut s = Schedule::new(&resources, &order);
        // The request in flight first; the accounts that want a slot wait for it to be looked at.
        assert_eq!(names(&resources, &mut s), ["creating", "created", "slow"]);
        s.ended(4, Ended::Done, 0);
        assert_eq!(names(&resources, &mut s), Vec::<String>::new());
        // Still in flight, with the group still running: looked at again after the interval.
        assert!(s.ended(2, Ended::StillCreating, 0));
        assert_eq!(names(&resources, &mut s), ["queued-1", "queued-2"]);
        assert!(!s.ended(1, Ended::Queued, 0));
        assert!(!s.ended(3, Ended::Queued, 0));
        assert!(!s.over(), "the group still runs");
        // The recheck finds it finished: its slot goes to the oldest queued account at once.
        s.due(2);
        assert_eq!(names(&resources, &mut s), ["creating"]);
        assert!(!s.ended(2, Ended::Done, 1));
        assert_eq!(names(&resources, &mut s), ["queued-1"]);
        // Its request sent; looked at again while the group runs.
        assert!(s.ended(1, Ended::StillCreating, 0));
        assert!(!s.ended(0, Ended::Done, 0));
        // Nothing left but a sleeping recheck and a parked account: the next round has them.
        assert!(s.over());
    }

    #[test]
    fn the_queued_are_not_woken_by_what_cannot_free_a_slot() {
        let resources = [
            account("queued", None, json!({})),
            resource(
                "IdentityCenterGroup",
                "group",
                json!({"displayName": "g"}),
                json!({}),
            ),
        ];
        let (order, _) = dependency_order(&resources);
        let mut s = Schedule::new(&resources, &order);
        assert_eq!(names(&resources, &mut s), ["queued", "group"]);
        s.ended(0, Ended::Queued, 5);
        // A slot is free, yet no request finished: waking it would spin on the pacer's refusal.
        s.ended(1, Ended::Done, 5);
        assert!(s.over());
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
