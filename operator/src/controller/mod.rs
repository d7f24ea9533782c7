//! `landing-zone-operator run`: one kube-runtime Controller per kind, all driving the shared
//! reconcile core (`crate::reconcile`), with finalizers, status through server-side apply, Events,
//! dependency watches, periodic resync, backoff and leader election.

pub mod claims;
mod events;
pub mod full_reads;
pub mod leader;
pub mod status;

use crate::aws::{AwsError, AwsPorts};
use crate::metrics::Metrics;
use crate::reconcile::{
    self, Key, Kind, KindSpec, Mode, OrgSnapshot, Pass, Progress, Readiness, Resource,
};
use futures::{FutureExt, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource as KubeResource, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const FINALIZER: &str = "landingzone.dev/finalizer";

/// How the controllers behave (flags and env of `run`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Set by `--resync-interval`; otherwise 5 minutes, or 1 hour while change events arrive.
    pub resync_interval: Option<Duration>,
    pub concurrency: u16,
    /// Observe and report only: never write to AWS.
    pub dry_run: bool,
    /// How long one Organization snapshot is shared by reconciles (`--snapshot-ttl`); otherwise a
    /// tenth of the resync interval.
    pub snapshot_ttl: Option<Duration>,
    /// Wait after AWS refused a closure for its quota.
    pub close_retry_interval: Duration,
    pub lease_name: String,
    pub lease_namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    /// The queue EventBridge delivers AWS change events to, and its region (`--change-events-…`);
    /// without it, the queue of the Organization resource's pipeline once there is one.
    pub change_events: Option<ChangeEvents>,
    /// While change events arrive, a resource's own reads (tags, inside its member account) are
    /// made at every this-many-th resync (`full_reads`); 1: at every one.
    pub full_read_every: u32,
}

/// Resync without change events: every peer's polling interval, kept for what events miss.
pub const RESYNC_POLLING: Duration = Duration::from_secs(300);
/// Resync while change events arrive: the safety net for an event lost on the way.
pub const RESYNC_WITH_EVENTS: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct ChangeEvents {
    pub queue_url: String,
    pub region: String,
}

/// One Organization snapshot shared by the reconciles of a resync, read again when older than the
/// TTL (changes made out of band) or when AWS Organizations has been written since it was read.
pub struct SnapshotCache {
    /// (when read, Organizations writes counted before the read, the snapshot)
    current: Mutex<Option<(Instant, u64, Arc<OrgSnapshot>)>>,
    /// CreateAccount requests sent by any reconcile since the current snapshot was read (its
    /// in-flight list does not show them): with the list, they keep AWS's 5-in-flight limit. One
    /// for the cache's life, so a reconcile that holds it across a read counts in it.
    creates: Arc<crate::reconcile::snapshot::CreateSlots>,
    /// … and accounts closed since (AWS closes 3 at once).
    closes_sent: Mutex<Arc<std::sync::atomic::AtomicUsize>>,
    /// Held by the one reconcile reading the Organization.
    loading: tokio::sync::Mutex<()>,
    /// Whether a read of the Organization runs in the background (started by a reconcile that
    /// found the snapshot past its TTL, and went on with it).
    background: std::sync::atomic::AtomicBool,
    /// While a read of the Organization runs: the changes read into the current snapshot since it
    /// began, which that read may have missed; read again into it before it is used.
    during_load: Mutex<Option<crate::events::SnapshotChange>>,
    /// Held by the one reconcile reading again what moved or was renamed; `patching` says so
    /// before the changes are taken, so that no reconcile plans against the snapshot meanwhile.
    patch: tokio::sync::Mutex<()>,
    patching: std::sync::atomic::AtomicBool,
}

/// Whether a cached snapshot can be used as it is, used while another one is read, or not at all.
#[derive(Debug, PartialEq)]
enum Freshness {
    Fresh,
    /// Older than the TTL only: what changed out of band is seen one read later.
    Aging,
    /// The operator itself wrote to Organizations since: never planned against.
    Stale,
}

fn freshness(age: Duration, ttl: Duration, writes_at_read: u64, writes_now: u64) -> Freshness {
    if writes_at_read != writes_now {
        Freshness::Stale
    } else if age < ttl {
        Freshness::Fresh
    } else {
        Freshness::Aging
    }
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotCache {
    pub fn new() -> Self {
        Self::with_create_waker(None)
    }

    /// `waker` queues a reconcile of an AwsAccount waiting for a CreateAccount slot when one
    /// frees up.
    pub fn with_create_waker(waker: Option<crate::reconcile::snapshot::Waker>) -> Self {
        Self {
            current: Mutex::default(),
            creates: Arc::new(crate::reconcile::snapshot::CreateSlots::new(waker)),
            closes_sent: Mutex::default(),
            loading: tokio::sync::Mutex::new(()),
            background: std::sync::atomic::AtomicBool::new(false),
            during_load: Mutex::default(),
            patch: tokio::sync::Mutex::new(()),
            patching: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Reads again the accounts moved and the OUs renamed since (by the operator, or as change
    /// events reported), into a copy of the current snapshot; on any failure, drops the snapshot
    /// so that it is read whole.
    async fn apply_changes(&self, aws: &AwsPorts) {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.patching.load(SeqCst)
            && aws
                .snapshot_changes
                .lock()
                .expect("not poisoned")
                .is_empty()
        {
            return;
        }
        let _patch = self.patch.lock().await;
        self.patching.store(true, SeqCst);
        let change = std::mem::take(&mut *aws.snapshot_changes.lock().expect("not poisoned"));
        // A read of the whole Organization running meanwhile may have listed these parents before
        // the change: it reads them again before its snapshot is used, instead of every
        // reconcile waiting for it (at 20 OUs it takes ~9 s, paced).
        if let Some(missed) = self.during_load.lock().expect("not poisoned").as_mut() {
            missed.merge(change.clone());
        }
        let current = self.current.lock().expect("not poisoned").clone();
        if let Some((at, writes, snap)) = current.filter(|_| !change.is_empty()) {
            let next = Self::patched(&snap, &change, aws).await;
            *self.current.lock().expect("not poisoned") = next.map(|n| (at, writes, Arc::new(n)));
        }
        self.patching.store(false, SeqCst);
    }

    async fn patched(
        snap: &OrgSnapshot,
        change: &crate::events::SnapshotChange,
        aws: &AwsPorts,
    ) -> Option<OrgSnapshot> {
        let mut next = snap.clone();
        match next.patch(change, aws.organizations.as_ref()).await {
            Ok(()) => Some(next),
            Err(e) => {
                tracing::warn!(error = %e, "could not read what changed in the Organization; reading all of it instead");
                None
            }
        }
    }

    /// `ttl`: how long a snapshot is shared before it is read again. Past it, the reconcile that
    /// notices starts a read in the background and every reconcile goes on with the snapshot it
    /// has (what changed out of band is seen one read later); only a snapshot the operator's own
    /// writes outdated, or none, is waited for.
    pub async fn get(
        self: &Arc<Self>,
        aws: &AwsPorts,
        ttl: Duration,
    ) -> Result<Arc<OrgSnapshot>, AwsError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.apply_changes(aws).await;
        let cached = || self.cached(ttl, aws.organizations_writes.load(SeqCst));
        match cached() {
            Some((Freshness::Fresh, snap)) => Ok(snap),
            Some((Freshness::Aging, snap)) => {
                if !self.background.swap(true, SeqCst) {
                    let (cache, aws) = (self.clone(), aws.clone());
                    tokio::spawn(async move {
                        let _loading = cache.loading.lock().await;
                        let writes = aws.organizations_writes.load(SeqCst);
                        // Not read meanwhile by a reconcile that could not wait for it.
                        if matches!(cache.cached(ttl, writes), Some((Freshness::Aging, _)))
                            && let Err(e) = cache.load(&aws).await
                        {
                            tracing::warn!(error = %e, "could not read the Organization again; the reconciles go on with the last read and it is tried again at the next one");
                        }
                        cache.background.store(false, SeqCst);
                    });
                }
                Ok(snap)
            }
            _ => {
                let _loading = self.loading.lock().await;
                // Read by the reconcile that held the lock while this one waited?
                if let Some((Freshness::Fresh, snap)) = cached() {
                    return Ok(snap);
                }
                self.load(aws).await
            }
        }
    }

    /// The current snapshot, and whether it can be used as it is (`writes`: the Organizations
    /// writes counted now).
    fn cached(&self, ttl: Duration, writes: u64) -> Option<(Freshness, Arc<OrgSnapshot>)> {
        self.current
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map(|(at, w, snap)| (freshness(at.elapsed(), ttl, *w, writes), snap.clone()))
    }

    /// Reads the Organization whole (the caller holds `loading`), with what changed while it read
    /// read again into it, and makes it the current snapshot.
    async fn load(&self, aws: &AwsPorts) -> Result<Arc<OrgSnapshot>, AwsError> {
        let writes = aws
            .organizations_writes
            .load(std::sync::atomic::Ordering::SeqCst);
        *self.during_load.lock().expect("not poisoned") = Some(Default::default());
        let sent_before = self.creates.sent_ids();
        let loaded = OrgSnapshot::load(aws.organizations.as_ref()).await;
        // From here to the swap no change is read into the old snapshot only: each one is either
        // among those missed, or read into the new snapshot after it.
        let _patch = self.patch.lock().await;
        let missed = self
            .during_load
            .lock()
            .expect("not poisoned")
            .take()
            .unwrap_or_default();
        let mut snap = loaded?;
        if !missed.is_empty() {
            snap.patch(&missed, aws.organizations.as_ref()).await?;
        }
        let snap = Arc::new(snap);
        *self.current.lock().expect("not poisoned") = Some((Instant::now(), writes, snap.clone()));
        self.creates.read_again(&snap.in_flight, &sent_before);
        *self.closes_sent.lock().expect("not poisoned") = Arc::default();
        Ok(snap)
    }
}

pub struct Context {
    pub client: Client,
    pub aws: AwsPorts,
    pub settings: Settings,
    pub snapshot: Arc<SnapshotCache>,
    pub recorder: events::Events,
    pub metrics: Metrics,
    pub sink: Arc<status::KubeStatusSink>,
    /// Each kind's watch cache, by kind, as resources (to resolve references).
    stores: HashMap<Kind, StoreReader>,
    /// Each kind's watch cache as a list (for the kinds others see, `KindSpec::SEES`).
    listers: HashMap<Kind, Lister>,
    /// Whether each kind's watch cache holds its first full list.
    filled: HashMap<Kind, Filled>,
    backoff: Mutex<HashMap<Key, u32>>,
    /// What /readyz reports.
    ready: Arc<std::sync::atomic::AtomicBool>,
    /// When the retry queue was last reported, and its size then.
    retry_report: Mutex<(Option<Instant>, usize)>,
    /// Whether the change-event queue was read at the last try.
    events_live: Arc<std::sync::atomic::AtomicBool>,
    /// When each resource last made its own reads.
    full_reads: Arc<full_reads::FullReads>,
}

impl Context {
    /// The flag's interval, else the default for whether change events are arriving: a queue
    /// that cannot be read brings back the 5-minute polling until it can.
    pub fn resync_interval(&self) -> Duration {
        self.settings.resync_interval.unwrap_or(
            if self.events_live.load(std::sync::atomic::Ordering::Relaxed) {
                RESYNC_WITH_EVENTS
            } else {
                RESYNC_POLLING
            },
        )
    }

    /// The flag's TTL, else a share of the resync interval. Polling: a tenth (30 s every 5 min), so
    /// a resync reads the Organization afresh several times over its spread. With change events,
    /// which report moves and renames as they happen (each read by itself), the snapshot only
    /// bounds how old the structure is that the resync — the net for a lost event — compares: a
    /// quarter (15 min of the 1 h), four reads an hour. At 10,000 accounts a read is ~640 calls
    /// at 4/s; a tenth made the snapshot the larger part of an idle hour's calls.
    pub fn snapshot_ttl(&self) -> Duration {
        self.settings.snapshot_ttl.unwrap_or_else(|| {
            if self.events_live.load(std::sync::atomic::Ordering::Relaxed) {
                self.resync_interval() / 4
            } else {
                self.resync_interval() / 10
            }
        })
    }
}

/// How often a growing retry queue is reported.
const RETRY_REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    #[error("kubernetes: {0}")]
    Kube(String),
}

impl ControllerError {
    fn reason(&self) -> &'static str {
        match self {
            ControllerError::Reconcile(e) => e.reason(),
            ControllerError::Kube(_) => "KubernetesError",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ControllerError::Reconcile(e) => e.is_retryable(),
            ControllerError::Kube(_) => true,
        }
    }
}

/// How soon a resource waiting for a dependency looks again.
const WAITING_RECHECK: Duration = Duration::from_secs(5);

fn jitter(d: Duration, spread: f64) -> Duration {
    // Cheap and good enough to spread requeues: the clock's nanoseconds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let f = 1.0 + spread * ((nanos % 2001) as f64 / 1000.0 - 1.0);
    d.mul_f64(f.max(0.0))
}

/// Per-object exponential backoff for retryable errors: 2 s, 4 s, … up to 5 min, with jitter.
pub fn backoff_delay(attempt: u32) -> Duration {
    let secs = 2u64.saturating_pow(attempt.min(8) + 1).min(300);
    jitter(Duration::from_secs(secs), 0.2)
}

impl Context {
    /// AWS ids of the resources this one refers to, if they are Ready.
    /// A resource of the watch caches.
    fn cached(&self, key: &Key) -> Option<Resource> {
        self.stores.get(&key.kind).and_then(|get| get(&key.name))
    }

    fn dependency_ids(&self, resource: &Resource) -> BTreeMap<Key, String> {
        resource
            .dependencies()
            .into_iter()
            .filter_map(|dep| {
                let id = existing_id(self.cached(&dep).as_ref())?;
                Some((dep, id))
            })
            .collect()
    }

    /// The access role of the member accounts this resource refers to, by account id.
    /// A resource that covers every account (an OU-wide baseline, `after_kinds` naming
    /// AwsAccount) gets the roles of all of them, not only those it names.
    fn dependency_roles(&self, resource: &Resource) -> BTreeMap<String, String> {
        let mut roles: BTreeMap<String, String> = resource
            .dependencies()
            .iter()
            .filter_map(|d| self.cached(d)?.member_role())
            .collect();
        if resource.after_kinds().contains(&Kind::AwsAccount)
            && let Some(list) = self.listers.get(&Kind::AwsAccount)
        {
            roles.extend(list().iter().filter_map(Resource::member_role));
        }
        roles
    }

    /// The first kind among `kinds` whose watch cache has not received its first full list yet.
    /// Right after a start a cache can be empty for a moment; a reconcile that read another kind's
    /// cache then would decide on nothing (a claim refused and its access pruned, an OU-wide
    /// assignment without its accounts' roles) and undo it a moment later.
    pub(super) fn unfilled<'a>(&self, kinds: impl IntoIterator<Item = &'a Kind>) -> Option<Kind> {
        kinds
            .into_iter()
            .find(|k| self.filled.get(k).is_some_and(|filled| !filled()))
            .copied()
    }

    /// The resources of the kinds this one sees (e.g. the other baselines), itself left out.
    fn peers(&self, resource: &Resource) -> Vec<Resource> {
        let key = resource.key();
        resource
            .sees()
            .iter()
            .filter_map(|kind| self.listers.get(kind))
            .flat_map(|list| list())
            .filter(|r| r.key() != key)
            .collect()
    }

    async fn pass(&self, resource: &Resource) -> Result<Pass, reconcile::Error> {
        // Not ready while AWS credentials cannot be resolved or the Organization cannot be read.
        let snapshot = match self.snapshot.get(&self.aws, self.snapshot_ttl()).await {
            Ok(s) => {
                self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
                s
            }
            Err(e) => {
                if self.ready.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    tracing::warn!(error = %e, "the Organization cannot be read: /readyz reports not ready until it can");
                }
                return Err(e.into());
            }
        };
        Ok(Pass {
            aws: self.aws.clone(),
            snapshot,
            creates: self.snapshot.creates.clone(),
            closes_sent: self
                .snapshot
                .closes_sent
                .lock()
                .expect("not poisoned")
                .clone(),
            mode: if self.settings.dry_run {
                Mode::Plan
            } else {
                Mode::Apply
            },
            ids: self.dependency_ids(resource),
            role_names: self.dependency_roles(resource),
            peers: self.peers(resource),
            sink: self.sink.clone(),
            now: Time(k8s_openapi::jiff::Timestamp::now()),
            // The cache decides when to read again; `refresh` is the CLI's.
            read_at: Instant::now(),
            writes_at_read: 0,
            full_check_every: self.resync_interval() / 2,
            own_reads: true,
            reading: None,
        })
    }

    async fn event(
        &self,
        obj: &impl KubeResource<DynamicType = ()>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let mut note = note;
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push('…');
        }
        let ev = KubeEvent {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
}

/// The id of a referenced resource once it exists in AWS. Not "Ready": a dependency that is
/// momentarily not ready (a retry, a re-list) must not make what refers to it flap.
fn existing_id(resource: Option<&Resource>) -> Option<String> {
    resource?.aws_id()
}

/// Reads one kind's watch cache by name.
type StoreReader = Box<dyn Fn(&str) -> Option<Resource> + Send + Sync>;

async fn reconcile<K: KindSpec>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    // The caches it reads besides references (those wait by themselves: WaitingForDependency).
    if let Some(kind) = ctx.unfilled(K::SEES.iter().chain(KindSpec::after_kinds(&*obj))) {
        tracing::debug!(kind = %K::KIND, name = %obj.name_any(), waits_for = %kind, "the watch cache of {kind} is not filled yet");
        return Ok(Action::requeue(CACHE_RECHECK));
    }
    let api: Api<K> = Api::all(ctx.client.clone());
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj, &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        kube::runtime::finalizer::Error::AddFinalizer(e) => {
            ControllerError::Kube(finalizer_failure("add", &e))
        }
        kube::runtime::finalizer::Error::RemoveFinalizer(e) => {
            ControllerError::Kube(finalizer_failure("remove", &e))
        }
        other => ControllerError::Kube(other.to_string()),
    })
}

/// A finalizer patch the API server refused, as a sentence. The patch tests the finalizers it
/// read from the watch cache: when the cache lags a write (this operator's own, a moment ago) the
/// test fails with 422 and the next attempt, on fresh data, succeeds.
fn finalizer_failure(verb: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if status.code == 422 || status.code == 409 => format!(
            "could not {verb} the finalizer: the object changed since the watch cache last saw it (HTTP {}); retried on fresh data",
            status.code
        ),
        kube::Error::Api(status) => format!(
            "could not {verb} the finalizer: {} (HTTP {} {})",
            status.message, status.code, status.reason
        ),
        other => format!("could not {verb} the finalizer: {other}"),
    }
}

#[tracing::instrument(skip(obj, ctx), fields(kind = %K::KIND, name = %obj.name_any()))]
async fn apply<K: KindSpec>(obj: Arc<K>, ctx: &Context) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let mut resource = (*obj).clone().into();
    let key = resource.key();
    let before = resource.status_json();
    let own_reads = full_reads::due(
        ctx.full_reads.last(&key),
        resource.generation(),
        full_reads::settled(&before),
        ctx.events_live.load(std::sync::atomic::Ordering::Relaxed),
        ctx.resync_interval(),
        ctx.settings.full_read_every,
        Instant::now(),
    );
    let result = match ctx.pass(&resource).await {
        Ok(mut pass) => {
            pass.own_reads = own_reads;
            reconcile::reconcile_resource(&mut resource, &mut pass).await
        }
        Err(e) => {
            let generation = resource.generation();
            let now = Time(k8s_openapi::jiff::Timestamp::now());
            let err = Err(e);
            reconcile::conditions::update_common(
                resource.common_status_mut(),
                &err,
                generation,
                &now,
            );
            err
        }
    };
    let label = K::KIND.as_str();
    if let Ok(p) = &result {
        if p.writes > 0 {
            for action in &p.actions {
                tracing::info!(kind = %K::KIND, name = %obj.name_any(), %action, "changed in AWS");
            }
            ctx.event(
                &*obj,
                EventType::Normal,
                "Changed",
                "Reconcile",
                p.actions.join("; "),
            )
            .await;
        }
        record_drift(ctx, &*obj, label, p, &before).await;
    }
    // Waiting for a dependency is expected and says so in the condition; everything else is worth
    // an Event, a wait behind AWS's limits once when it starts: 195 accounts queued for a
    // CreateAccount slot, each looking again every 5 s, published 39 Events a second, and their
    // API calls kept the controller's workers from the accounts whose requests had just finished.
    if let Err(e) = &result
        && !matches!(e, reconcile::Error::WaitingForDependency { .. })
        && !still_queued(e, obj.common_status())
    {
        ctx.event(
            &*obj,
            EventType::Warning,
            e.reason(),
            "Reconcile",
            e.to_string(),
        )
        .await;
    }
    let after = resource.status_json();
    let changed = reconcile::changed_status_fields(&before, &after);
    if !changed.is_empty() {
        use crate::reconcile::StatusSink;
        ctx.sink
            .save(&key, &after)
            .await
            .map_err(ControllerError::Kube)?;
        // The Ready reason says which way a resource moved, where the field names alone do not.
        let ready = after["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .and_then(|c| c["reason"].as_str())
            .unwrap_or_default();
        tracing::debug!(kind = %K::KIND, name = %obj.name_any(), fields = %changed.join(","), ready, "status written");
        for field in &changed {
            ctx.metrics
                .status_field_changes
                .with_label_values(&[label, field])
                .inc();
        }
    }
    // The gauges follow the status once it is stored: a resource counts as Ready only when
    // `kubectl` would say so too (and a reader of the gauge sees no status write still to come).
    resource.record_metrics(&ctx.metrics);
    let outcome = match &result {
        Ok(_) => "success",
        Err(reconcile::Error::WaitingForDependency { .. }) => "waiting",
        Err(e) if e.is_retryable() => "retryable_error",
        Err(_) => "terminal_error",
    };
    ctx.metrics
        .reconciles
        .with_label_values(&[label, outcome])
        .inc();
    ctx.metrics
        .reconcile_duration
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    // Remember the own reads only when what they found may be assumed until the next ones.
    match &result {
        Ok(p) if own_reads && p.remaining.is_empty() && full_reads::settled(&after) => {
            ctx.full_reads.done(&key, resource.generation())
        }
        Ok(_) if own_reads => ctx.full_reads.forget(&key),
        Ok(_) => {}
        Err(_) => ctx.full_reads.forget(&key),
    }
    match result {
        Ok(p) => {
            ctx.backoff.lock().expect("not poisoned").remove(&key);
            let next = if crate::reconcile::aws_account::plan::being_created(&p.ready) {
                CREATING_RECHECK
            } else {
                jitter(ctx.resync_interval(), 0.1)
            };
            let due = resource.next_due(k8s_openapi::jiff::Timestamp::now());
            Ok(Action::requeue(due.map_or(next, |d| d.min(next))))
        }
        // Re-queued by the watch on the dependency when it changes; the store read here can lag
        // that event, so look again soon (no AWS call is made while waiting).
        Err(reconcile::Error::WaitingForDependency { .. }) => Ok(Action::requeue(jitter(
            ctx.resync_interval().min(WAITING_RECHECK),
            0.2,
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn record_drift<K: KindSpec>(
    ctx: &Context,
    obj: &K,
    label: &str,
    p: &Progress,
    before: &serde_json::Value,
) {
    if p.drift.is_empty() {
        return;
    }
    let fields: Vec<String> = p
        .drift
        .iter()
        .map(|d| format!("{}: {} (want {})", d.field, d.observed, d.desired))
        .collect();
    let known: Vec<serde_json::Value> = before["drift"].as_array().cloned().unwrap_or_default();
    let new_drift = p.drift.iter().any(|d| {
        !known
            .iter()
            .any(|k| k["field"] == d.field.as_str() && k["observed"] == d.observed.as_str())
    });
    for d in &p.drift {
        // Bounded label: the field's group (tags, parentId, name), never a tag key.
        let group = d.field.split('.').next().unwrap_or("");
        ctx.metrics
            .drift_found
            .with_label_values(&[label, group])
            .inc();
        if p.remaining.iter().all(|r| r.field != d.field) {
            ctx.metrics
                .drift_corrected
                .with_label_values(&[label, group])
                .inc();
        }
    }
    let name = obj.name_any();
    if new_drift {
        tracing::info!(kind = %K::KIND, %name, drift = %fields.join("; "), "drift found");
        ctx.event(
            obj,
            EventType::Warning,
            "DriftDetected",
            "Observe",
            fields.join("; "),
        )
        .await;
    }
    if p.writes > 0 && p.remaining.len() < p.drift.len() {
        tracing::info!(kind = %K::KIND, %name, drift = %fields.join("; "), "drift corrected");
        ctx.event(
            obj,
            EventType::Normal,
            "DriftCorrected",
            "Reconcile",
            fields.join("; "),
        )
        .await;
    }
}

#[tracing::instrument(skip(obj, ctx), fields(kind = %K::KIND, name = %obj.name_any()))]
async fn cleanup<K: KindSpec>(obj: Arc<K>, ctx: &Context) -> Result<Action, ControllerError> {
    let mut resource: Resource = (*obj).clone().into();
    let before = resource.status_json();
    ctx.full_reads.forget(&resource.key());
    if ctx.settings.dry_run {
        ctx.event(
            &*obj,
            EventType::Normal,
            "Retained",
            "Delete",
            "dry-run: AWS left untouched".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let mut pass = ctx.pass(&resource).await?;
    match reconcile::delete_resource(&mut resource, &mut pass).await {
        Ok(p) => {
            let reason = match &p.ready {
                Readiness::Ready { reason, .. } | Readiness::NotReady { reason, .. } => *reason,
            };
            resource.forget_metrics(&ctx.metrics);
            let note = if p.actions.is_empty() {
                "AWS left untouched (deletionPolicy)".to_string()
            } else {
                p.actions.join("; ")
            };
            ctx.event(&*obj, EventType::Normal, reason, "Delete", note)
                .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            ctx.event(
                &*obj,
                EventType::Warning,
                e.reason(),
                "Delete",
                e.to_string(),
            )
            .await;
            let generation = resource.generation();
            let failed = Err(e.clone());
            reconcile::conditions::update_common(
                resource.common_status_mut(),
                &failed,
                generation,
                &pass.now,
            );
            // Only when it changed: a write of the sync time alone is a watch event, which would
            // run this cleanup again at once, fail again, and loop as fast as the API server answers.
            let after = resource.status_json();
            if !reconcile::same_status(&before, &after) {
                use crate::reconcile::StatusSink;
                let _ = ctx.sink.save(&resource.key(), &after).await;
            }
            Err(e.into())
        }
    }
}

/// The 30-day closure quota frees up slowly: a refused closure is parked, not retried every resync.
fn parked(err: &ControllerError) -> bool {
    matches!(err, ControllerError::Reconcile(e) if e.reason() == reconcile::aws_account::CLOSE_REFUSED)
}

fn error_policy<K: KindSpec>(obj: Arc<K>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    let key = Key::new(K::KIND, obj.name_any());
    let delay = if parked(err) {
        ctx.settings.close_retry_interval
    } else if !err.retryable() {
        // Needs a human: wait for a spec change (the watch) or the slow resync, no hot loop.
        ctx.resync_interval()
    } else if matches!(
        err,
        ControllerError::Reconcile(reconcile::Error::Queued { .. })
    ) {
        // Behind an AWS limit that frees up within seconds to minutes: look again at an even pace.
        jitter(QUEUED_RECHECK, 0.2)
    } else {
        let mut backoff = ctx.backoff.lock().expect("not poisoned");
        let attempt = backoff.entry(key).or_insert(0);
        *attempt += 1;
        let delay = backoff_delay(*attempt - 1);
        // The retry queue as a whole, once a minute while it grows: one line, not one per retry.
        let mut last = ctx.retry_report.lock().expect("not poisoned");
        let size = backoff.len();
        if size > last.1
            && last
                .0
                .is_none_or(|at| at.elapsed() >= RETRY_REPORT_INTERVAL)
        {
            let worst = backoff.values().copied().max().unwrap_or(0);
            tracing::warn!(
                retrying = size,
                "{size} resources are retrying with backoff (up to {worst} attempts so far); see their WARN lines and conditions"
            );
            *last = (Some(Instant::now()), size);
        }
        delay
    };
    if matches!(err, ControllerError::Reconcile(e) if still_queued(e, obj.common_status())) {
        // Said when it started waiting (WARN, Event) and in the condition since.
        tracing::debug!(kind = %K::KIND, name = %obj.name_any(), "still queued: {err}");
    } else {
        tracing::warn!(
            kind = %K::KIND,
            name = %obj.name_any(),
            reason = err.reason(),
            retry_in_s = delay.as_secs(),
            "reconcile failed: {err}; retrying in {} s",
            delay.as_secs()
        );
    }
    Action::requeue(delay)
}

/// A wait behind an AWS limit that the stored Ready condition already reports.
fn still_queued(err: &reconcile::Error, status: Option<&crate::api::CommonStatus>) -> bool {
    matches!(err, reconcile::Error::Queued { .. })
        && status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == reconcile::conditions::READY && c.reason == err.reason())
        })
}

/// How often an account being created is looked at (DescribeCreateAccountStatus, or the list).
/// At most 5 are in flight, so this is at most 5 calls a second (paced below AWS's rate); a
/// request's slot goes to the next queued account within this time of AWS finishing it.
const CREATING_RECHECK: Duration = Duration::from_secs(1);

/// How soon a resource queued behind an AWS limit (accounts in creation or closing) looks again.
const QUEUED_RECHECK: Duration = Duration::from_secs(5);

/// Refuses to start before the CRDs are installed, with a message saying how to install them.
async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crds::all_crds() {
        let name = crd.metadata.name.unwrap_or_default();
        if api.get_opt(&name).await?.is_none() {
            anyhow::bail!(
                "CRD {name} is not installed: kubectl apply -f crds/ (or install the Helm chart) first"
            );
        }
    }
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the operator until SIGTERM (Ok) or until leadership is lost (Err).
pub async fn run(
    client: Client,
    aws: AwsPorts,
    settings: Settings,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    check_crds(&client).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received");
            let _ = stop_tx.send(true);
        }
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let lease = leader::LeaseLock::new(
        Api::namespaced(client.clone(), &settings.lease_namespace),
        &settings.lease_name,
        &settings.identity,
        settings.lease_duration,
    );
    // No AWS write until the lease is ours, and then only until shortly before it could expire.
    let fence = aws.fence.clone();
    fence.close();
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let timing = LeaseTiming::of(settings.lease_duration);
    // Standby until the lease is ours.
    let acquired_at = loop {
        if *stop_rx.borrow() {
            return Ok(());
        }
        let attempt = Instant::now();
        match tokio::time::timeout(timing.retry_period, lease.try_acquire_or_renew()).await {
            Ok(Ok(true)) => break attempt,
            Ok(Ok(false)) => tracing::debug!("standby: another replica holds the lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not read the lease; trying again"),
            Err(_) => {
                tracing::warn!("the API server did not answer the lease read in time; trying again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.retry_period) => {},
            _ = stopped(stop_rx.clone()) => return Ok(()),
        }
    };
    fence.open_until(acquired_at + timing.renew_deadline);
    tracing::info!(identity = %settings.identity, "acquired the lease: this replica reconciles");
    aws.metrics.leader.set(1);

    // Renew while leading. Each success opens the fence until its start plus the renew deadline
    // (shorter than the lease); missing that deadline, or losing the lease, closes it at once and
    // stops the controllers — before another replica can have taken over.
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewer = tokio::spawn({
        let stop_tx = stop_tx.clone();
        let lost = lost.clone();
        let fence = fence.clone();
        async move {
            let mut last_ok = acquired_at;
            let give_up = |why: &str| {
                fence.close();
                tracing::error!(
                    "{why}: no further AWS writes; stopping (a standby replica takes over)"
                );
                lost.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = stop_tx.send(true);
            };
            loop {
                tokio::time::sleep(timing.retry_period).await;
                if *stop_tx.borrow() {
                    return lease;
                }
                let attempt = Instant::now();
                match tokio::time::timeout(timing.retry_period, lease.try_acquire_or_renew()).await
                {
                    Ok(Ok(true)) if attempt < last_ok + timing.renew_deadline => {
                        last_ok = attempt;
                        fence.open_until(attempt + timing.renew_deadline);
                    }
                    // Renewed, but only after the deadline (e.g. this process was paused): the
                    // fence closed meanwhile and a standby may have acted; stop to be safe.
                    Ok(Ok(true)) => {
                        give_up("the lease was renewed only after the renew deadline had passed");
                        return lease;
                    }
                    Ok(Ok(false)) => {
                        give_up("lost the lease to another replica");
                        return lease;
                    }
                    Ok(Err(e)) => tracing::warn!(
                        error = %e,
                        "could not renew the lease; trying again in {} s",
                        timing.retry_period.as_secs()
                    ),
                    Err(_) => tracing::warn!(
                        "the API server did not answer the lease renewal within {} s; trying again",
                        timing.retry_period.as_secs()
                    ),
                }
                if Instant::now() >= last_ok + timing.renew_deadline {
                    give_up(&format!(
                        "the lease could not be renewed within {} s",
                        timing.renew_deadline.as_secs()
                    ));
                    return lease;
                }
            }
        }
    });

    let wc = watcher::Config::default().any_semantic();
    let cfg = ControllerConfig::default().concurrency(settings.concurrency);
    // One controller per kind of the registry, each watching the kinds it refers to.
    let mut wiring = Wiring {
        client: client.clone(),
        wc: wc.clone(),
        cfg: cfg.clone(),
        stop_rx: stop_rx.clone(),
        stores: HashMap::new(),
        runs: Vec::new(),
        triggers: HashMap::new(),
        listers: HashMap::new(),
        filled: HashMap::new(),
    };
    Kind::visit_all(&mut wiring);
    // The claims of teams' namespaces, composed into the kinds' objects above.
    wiring
        .runs
        .extend(claims::wire(&client, &wc, cfg, stop_rx.clone()));
    let events_live = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let full_reads = Arc::new(full_reads::FullReads::default());
    let snapshot = Arc::new(SnapshotCache::with_create_waker(
        wiring.triggers.get(&Kind::AwsAccount).cloned(),
    ));
    tokio::spawn(consume_change_events(
        aws.clone(),
        settings.change_events.clone(),
        wiring.triggers,
        wiring.listers.clone(),
        events_live.clone(),
        full_reads.clone(),
        stop_rx.clone(),
    ));
    let metrics = aws.metrics.clone();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: events::Events::new(
            client.clone(),
            Reporter {
                controller: "landing-zone-operator".into(),
                instance: Some(settings.identity.clone()),
            },
        ),
        snapshot,
        sink: Arc::new(status::KubeStatusSink {
            client: client.clone(),
            metrics: metrics.clone(),
        }),
        metrics,
        stores: wiring.stores,
        listers: wiring.listers,
        filled: wiring.filled,
        aws,
        settings: settings.clone(),
        backoff: Mutex::default(),
        ready: ready.clone(),
        retry_report: Mutex::default(),
        events_live,
        full_reads,
    });
    futures::future::join_all(wiring.runs.into_iter().map(|run| run(ctx.clone()))).await;
    ctx.aws.metrics.leader.set(0);
    // Nothing is written once the controllers stopped, and certainly not after the hand-over.
    ctx.aws.fence.close();
    let _ = stop_tx.send(true);
    if let Ok(lease) = renewer.await
        && !lost.load(std::sync::atomic::Ordering::SeqCst)
    {
        // Hand over at once instead of making the standby wait out the lease.
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the lease");
        }
    }
    if lost.load(std::sync::atomic::Ordering::SeqCst) {
        anyhow::bail!("lost the leader lease");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The queue named by the flags, else the one the Organization resource's pipeline reports.
fn change_event_queue(
    fixed: &Option<ChangeEvents>,
    listers: &HashMap<Kind, Lister>,
) -> Option<ChangeEvents> {
    if fixed.is_some() {
        return fixed.clone();
    }
    listers.get(&Kind::Organization)?()
        .into_iter()
        .find_map(|r| match r {
            Resource::Organization(o) if o.spec.change_events.is_some() => {
                let s = o.status?.change_events?;
                Some(ChangeEvents {
                    queue_url: s.queue_url?,
                    region: s.region?,
                })
            }
            _ => None,
        })
}

/// Long-polls the change-event queue while this replica leads, and queues a reconcile of every
/// resource an event touched; the Organization snapshot is read again for them. Without a queue
/// yet, looks for the Organization's every 15 s.
async fn consume_change_events(
    aws: AwsPorts,
    fixed: Option<ChangeEvents>,
    triggers: HashMap<Kind, Trigger>,
    listers: HashMap<Kind, Lister>,
    live: Arc<std::sync::atomic::AtomicBool>,
    full_reads: Arc<full_reads::FullReads>,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    let mut me: Option<crate::events::Identity> = None;
    let mut current: Option<(String, crate::events::Consumer)> = None;
    let metrics = aws.metrics.clone();
    loop {
        let set_live = |on: bool| {
            live.store(on, Ordering::Relaxed);
            metrics.change_events_live.set(i64::from(on));
        };
        let Some(queue) = change_event_queue(&fixed, &listers) else {
            set_live(false);
            current = None;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(15)) => continue,
                _ = stop.wait_for(|s| *s) => return,
            }
        };
        if current
            .as_ref()
            .is_none_or(|(url, _)| *url != queue.queue_url)
        {
            if me.is_none() {
                me = who_am_i(&aws).await;
            }
            tracing::info!(queue = %queue.queue_url, region = %queue.region, "reconciling on AWS change events");
            current = Some((
                queue.queue_url.clone(),
                crate::events::Consumer::new(
                    &aws,
                    &queue.queue_url,
                    &queue.region,
                    me.clone().unwrap_or_default(),
                ),
            ));
        }
        let consumer = &current.as_ref().expect("set above").1;
        let resources = || {
            listers
                .values()
                .flat_map(|l| l())
                .collect::<Vec<Resource>>()
        };
        let polled = tokio::select! {
            b = consumer.poll(Duration::from_secs(20), resources) => b,
            _ = stop.wait_for(|s| *s) => return,
        };
        let batch = match polled {
            Ok(b) => {
                set_live(true);
                b
            }
            Err(e) => {
                set_live(false);
                tracing::warn!(error = %e, queue = %queue.queue_url, "cannot read the change-event queue; trying again in 10 s, and the resync finds drift meanwhile (every {} min unless --resync-interval says otherwise)", RESYNC_POLLING.as_secs() / 60);
                tokio::time::sleep(Duration::from_secs(10)).await;
                continue;
            }
        };
        for skip in &batch.skipped {
            let result = match skip {
                crate::events::Skip::Own => "own",
                crate::events::Skip::Failed => "failed",
                crate::events::Skip::Unknown(_) => "unknown",
                crate::events::Skip::Malformed(why) => {
                    tracing::warn!(why = %why, "dropped a malformed change event");
                    "malformed"
                }
            };
            metrics.change_events.with_label_values(&[result]).inc();
        }
        metrics
            .change_events
            .with_label_values(&["mapped"])
            .inc_by(batch.mapped as u64);
        for l in &batch.latencies {
            metrics.change_event_latency.observe(l.as_secs_f64());
        }
        if batch.messages > 0 {
            metrics
                .change_events_queue_age
                .set(batch.oldest.unwrap_or_default().as_secs_f64());
        }
        if !batch.keys.is_empty() {
            // What changed in AWS is newer than the snapshot the reconciles share.
            aws.changed_in_aws(batch.snapshot.clone());
            for key in &batch.keys {
                // What the event changed may be in what only the resource's own reads see.
                full_reads.forget(key);
                tracing::info!(kind = %key.kind, name = %key.name, "AWS change event: reconciling now");
                if let Some(trigger) = triggers.get(&key.kind) {
                    trigger(&key.name);
                }
            }
        }
    }
}

/// Who this operator is in CloudTrail, so its own writes do not come back as reconciles. `None`
/// when STS cannot say (asked again when the consumer next starts on a queue).
async fn who_am_i(aws: &AwsPorts) -> Option<crate::events::Identity> {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&aws.sdk_config)
            .interceptor(aws.recorder.clone())
            .build(),
    );
    match sts.get_caller_identity().send().await {
        Ok(out) => Some(crate::events::Identity::of_caller(
            out.arn().unwrap_or_default(),
            crate::aws::member::MEMBER_SESSION_NAME,
        )),
        Err(e) => {
            tracing::warn!(
                error = %crate::aws::AwsError::from_sdk("sts", "GetCallerIdentity", e),
                "cannot tell who this operator is in AWS, so its own changes will come back as events (each costs one reconcile)"
            );
            None
        }
    }
}

/// How the lease is kept: renewed every `retry_period`, each call given as long; writes allowed
/// until `renew_deadline` after the start of the last successful renewal. The deadline is well
/// inside the lease, so a replica that cannot renew stops writing before a standby may take over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeaseTiming {
    pub retry_period: Duration,
    pub renew_deadline: Duration,
}

impl LeaseTiming {
    /// client-go's proportions: 15 s lease → renew every 3 s, deadline 10 s.
    pub fn of(lease: Duration) -> Self {
        Self {
            retry_period: (lease / 5).max(Duration::from_millis(500)),
            renew_deadline: lease.mul_f64(2.0 / 3.0),
        }
    }
}

/// A controller's run, started once the shared context exists.
pub(crate) type Run = Box<dyn FnOnce(Arc<Context>) -> futures::future::BoxFuture<'static, ()>>;

/// Builds the controller of each kind it visits: its watch cache (registered for reference
/// lookups), the watches on the kinds it refers to, and its run.
struct Wiring {
    client: Client,
    wc: watcher::Config,
    cfg: ControllerConfig,
    stop_rx: watch::Receiver<bool>,
    stores: HashMap<Kind, StoreReader>,
    runs: Vec<Run>,
    /// Queues a reconcile of the named resource of a kind now (change events).
    triggers: HashMap<Kind, Trigger>,
    /// Every cached resource, by kind.
    listers: HashMap<Kind, Lister>,
    filled: HashMap<Kind, Filled>,
}

type Trigger = Arc<dyn Fn(&str) + Send + Sync>;
type Lister = Arc<dyn Fn() -> Vec<Resource> + Send + Sync>;
type Filled = Arc<dyn Fn() -> bool + Send + Sync>;

/// How soon a reconcile waiting for another kind's first list looks again.
pub(super) const CACHE_RECHECK: Duration = Duration::from_secs(1);

impl reconcile::KindVisitor for Wiring {
    fn visit<K: KindSpec>(&mut self) {
        let (tx, rx) = futures::channel::mpsc::unbounded::<ObjectRef<K>>();
        let mut controller = controller_for::<K>(&self.client, &self.wc).reconcile_on(rx);
        self.triggers.insert(
            K::KIND,
            Arc::new(move |name| {
                let _ = tx.unbounded_send(ObjectRef::new(name));
            }),
        );
        let first_list = controller.store();
        self.filled.insert(
            K::KIND,
            Arc::new(move || {
                // Resolved once the reflector applied its first InitDone, and from then on.
                first_list
                    .wait_until_ready()
                    .now_or_never()
                    .is_some_and(|r| r.is_ok())
            }),
        );
        let all = controller.store();
        self.listers.insert(
            K::KIND,
            Arc::new(move || {
                all.state()
                    .into_iter()
                    .map(|o| (*o).clone().into())
                    .collect()
            }),
        );
        let store = controller.store();
        self.stores.insert(
            K::KIND,
            Box::new(move |name| {
                store
                    .get(&ObjectRef::new(name))
                    .map(|o| (*o).clone().into())
            }),
        );
        for dep in K::DEPENDS_ON {
            let mut add = AddWatch {
                controller: Some(controller),
                client: self.client.clone(),
                wc: self.wc.clone(),
            };
            dep.visit(&mut add);
            controller = add.controller.expect("put back by the visit");
        }
        for seen in K::TRIGGERED_BY {
            let mut add = AddTrigger {
                controller: Some(controller),
                client: self.client.clone(),
                wc: self.wc.clone(),
            };
            seen.visit(&mut add);
            controller = add.controller.expect("put back by the visit");
        }
        let (cfg, stop_rx) = (self.cfg.clone(), self.stop_rx.clone());
        self.runs.push(Box::new(move |ctx: Arc<Context>| {
            let stopped = async move {
                let mut rx = stop_rx;
                let _ = rx.wait_for(|s| *s).await;
            };
            controller
                .with_config(cfg)
                .graceful_shutdown_on(stopped)
                .run(reconcile::<K>, error_policy::<K>, ctx)
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(controller = %K::KIND, error = %e, "reconcile failed");
                    }
                })
                .boxed()
        }));
    }
}

/// Adds to a controller of `K` the watch on the kind it visits.
struct AddWatch<K: KindSpec> {
    controller: Option<Controller<K>>,
    client: Client,
    wc: watcher::Config,
}

impl<K: KindSpec> reconcile::KindVisitor for AddWatch<K> {
    fn visit<D: KindSpec>(&mut self) {
        let controller = self.controller.take().expect("one visit at a time");
        self.controller = Some(watch_dependency::<K, D>(controller, &self.client, &self.wc));
    }
}

struct AddTrigger<K: KindSpec> {
    controller: Option<Controller<K>>,
    client: Client,
    wc: watcher::Config,
}

impl<K: KindSpec> reconcile::KindVisitor for AddTrigger<K> {
    fn visit<D: KindSpec>(&mut self) {
        let controller = self.controller.take().expect("one visit at a time");
        let store = controller.store();
        // Any change of a `D` reconciles every `K` ([`KindSpec::TRIGGERED_BY`]: few of them).
        self.controller = Some(controller.watches_stream(
            metadata_changes::<D>(&self.client, &self.wc),
            move |_: PartialObjectMeta<D>| {
                store
                    .state()
                    .into_iter()
                    .map(|o| ObjectRef::from_obj(&*o))
                    .collect::<Vec<_>>()
            },
        ));
    }
}

/// A controller whose cache keeps objects without `managedFields`: server-side apply's bookkeeping,
/// the largest part of an object with conditions in its status, and never read here (kube-rs's
/// advice for memory; `for_stream` is behind kube's `unstable-runtime` feature).
fn controller_for<K: KindSpec>(client: &Client, wc: &watcher::Config) -> Controller<K> {
    let (reader, writer) = reflector::store();
    let objects = watcher(Api::<K>::all(client.clone()), wc.clone())
        .default_backoff()
        .modify(|o| {
            o.managed_fields_mut().clear();
        })
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, reader)
}

/// Changes of kind `D` as a reconcile trigger, as metadata: what maps a change to the resources
/// to reconcile needs the object's name and labels only. Every controller that watches a kind
/// has a watch of its own; full objects there would hold (transiently, at each list) and decode (at
/// each status write) every object once more per watching controller — at 10,000 accounts, eight
/// of them watch AwsAccount.
pub(super) fn metadata_changes<D>(
    client: &Client,
    wc: &watcher::Config,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<D>, watcher::Error>> + Send + 'static
where
    D: KubeResource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    // An `Api` of `PartialObjectMeta` lists and watches metadata only.
    watcher(Api::<PartialObjectMeta<D>>::all(client.clone()), wc.clone())
        .default_backoff()
        .touched_objects()
}

/// Re-queues the resources that refer to a changed dependency (watch + mapper), instead of polling.
fn watch_dependency<K: KindSpec, D: KindSpec>(
    controller: Controller<K>,
    client: &Client,
    wc: &watcher::Config,
) -> Controller<K> {
    let store = controller.store();
    controller.watches_stream(
        metadata_changes::<D>(client, wc),
        move |dep: PartialObjectMeta<D>| {
            let key = Key::new(D::KIND, dep.name_any());
            store
                .state()
                .into_iter()
                .filter(|o| {
                    // Those that refer to it, and those that cover every resource of its kind (an
                    // OU-wide assignment or baseline reaches an account created in the OU). Asked of
                    // the cached object itself: a copy per object, at every change of a dependency,
                    // cost accounts × OU changes.
                    let o: &K = o;
                    KindSpec::dependencies(o).contains(&key)
                        || KindSpec::after_kinds(o).contains(&D::KIND)
                })
                .map(|o| ObjectRef::from_obj(&*o))
                .collect::<Vec<_>>()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_well_before_the_lease_could_pass_to_a_standby() {
        for secs in [6u64, 15, 60] {
            let lease = Duration::from_secs(secs);
            let t = LeaseTiming::of(lease);
            // A standby takes over only after the lease went unrenewed for its whole duration;
            // the leader stops writing at the renew deadline, with at least one retry to spare.
            assert!(t.renew_deadline + t.retry_period < lease, "{secs} s: {t:?}");
            assert!(t.renew_deadline >= t.retry_period * 3, "{secs} s: {t:?}");
        }
        // The fence: open until the deadline, closed after it and when closed by hand.
        let fence = crate::aws::pacing::Fence::open();
        assert!(fence.allows_writes(), "the CLI's fence is open");
        fence.close();
        assert!(!fence.allows_writes());
        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(fence.allows_writes());
        fence.open_until(Instant::now() - Duration::from_millis(1));
        assert!(!fence.allows_writes(), "a passed deadline is closed");
    }

    #[test]
    fn a_snapshot_ages_with_time_and_is_stale_after_own_writes() {
        let ttl = Duration::from_secs(30);
        // (age s, writes counted at the read, writes now, expected)
        for (age, at_read, now, want) in [
            (1, 7, 7, Freshness::Fresh),
            (31, 7, 7, Freshness::Aging),
            (1, 7, 8, Freshness::Stale),
            (31, 7, 8, Freshness::Stale),
        ] {
            assert_eq!(
                freshness(Duration::from_secs(age), ttl, at_read, now),
                want,
                "age {age}s, writes {at_read} → {now}"
            );
        }
    }

    #[test]
    fn a_wait_behind_an_aws_limit_is_announced_once() {
        let queued = reconcile::Error::Queued {
            message: "5 CreateAccount requests are in flight".into(),
        };
        let status = |reason: &str| {
            let mut s = crate::api::CommonStatus::default();
            reconcile::conditions::set_condition(
                &mut s.conditions,
                reconcile::conditions::READY,
                false,
                reason,
                "",
                None,
                &Time(k8s_openapi::jiff::Timestamp::now()),
            );
            s
        };
        assert!(!still_queued(&queued, None), "first time: announced");
        assert!(!still_queued(&queued, Some(&status("Creating"))));
        assert!(still_queued(&queued, Some(&status("Queued"))));
        let other = reconcile::Error::transient("Throttled", "slow down");
        assert!(
            !still_queued(&other, Some(&status("Throttled"))),
            "only waits behind limits"
        );
    }

    #[test]
    fn only_a_closure_refused_for_its_quota_is_parked() {
        let refused = reconcile::Error::conflict(reconcile::aws_account::CLOSE_REFUSED, "quota");
        let other = reconcile::Error::conflict("OrganizationalUnitNotEmpty", "not empty");
        assert!(parked(&refused.into()));
        assert!(!parked(&other.into()));
        assert!(!parked(&ControllerError::Kube("conflict".into())));
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        // (attempt, lower bound, upper bound) — 2^(n+1) s ± 20 %, never above 5 min + 20 %.
        let table = [
            (0, 1.6, 2.4),
            (1, 3.2, 4.8),
            (2, 6.4, 9.6),
            (5, 51.2, 76.8),
            (20, 240.0, 360.0),
        ];
        for (attempt, lo, hi) in table {
            let d = backoff_delay(attempt).as_secs_f64();
            assert!(
                (lo..=hi).contains(&d),
                "attempt {attempt}: {d}s not in {lo}..{hi}"
            );
        }
    }

    #[test]
    fn a_dependency_is_usable_once_it_has_an_id() {
        use crate::api::{OrganizationalUnit, OrganizationalUnitStatus};
        use k8s_openapi::jiff::Timestamp;
        let ou = |id: Option<&str>, ready: bool| {
            let mut status = OrganizationalUnitStatus {
                id: id.map(str::to_string),
                ..Default::default()
            };
            if ready {
                reconcile::conditions::set_condition(
                    &mut status.common.conditions,
                    "Ready",
                    true,
                    "Available",
                    "",
                    Some(1),
                    &Time(Timestamp::now()),
                );
            }
            let mut o = OrganizationalUnit::new(
                "security",
                serde_json::from_value(serde_json::json!({"name": "Security"})).unwrap(),
            );
            o.status = Some(status);
            Resource::from(o)
        };
        assert_eq!(
            existing_id(Some(&ou(Some("ou-1"), false))).as_deref(),
            Some("ou-1"),
            "an id is enough, whatever the conditions"
        );
        assert_eq!(existing_id(Some(&ou(None, false))), None, "no id yet");
        assert_eq!(
            existing_id(Some(&ou(Some("ou-1"), true))).as_deref(),
            Some("ou-1")
        );
        assert_eq!(existing_id(None), None);
    }
}
