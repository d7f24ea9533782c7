//! The claims controllers: an `AccountClaim` or `AccessClaim` in a team's namespace becomes the
//! cluster-scoped objects `crate::claims` composes, which the kinds' own controllers reconcile.
//! Writes only Kubernetes objects (never AWS), and only objects labelled with the claim.
//!
//! The boundary is held twice: at admission (the chart's ValidatingAdmissionPolicy, with the
//! class as parameter) and here, where what admission cannot know is checked too — the quota,
//! an account name already held, a class or permission set that went away.

use super::{Context, FINALIZER, Run};
use crate::api::claims::{
    AccessClaim, AccessClaimStatus, AccountClaim, AccountClaimStatus, AccountClass,
};
use crate::api::{AccountAssignment, AwsAccount, Budget, PermissionSet};
use crate::claims::{self as compose, Refusal};
use crate::reconcile::conditions::{READY, set_condition};
use crate::reconcile::{Key, Kind, Resource};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource as KubeResource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The field manager of the composed objects' spec and labels (the kinds' own status is written
/// under the operator's).
const MANAGER: &str = "landing-zone-operator-claims";
use crate::reconcile::aws_account::NOT_CLAIMABLE;
/// How often a claim is looked at when nothing it watches changed.
const RESYNC: Duration = Duration::from_secs(300);
/// While the account is being made or the grant is in flight.
const PENDING_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClaimError(String);

impl From<kube::Error> for ClaimError {
    fn from(e: kube::Error) -> Self {
        ClaimError(format!("the API server refused a request: {e}"))
    }
}

struct ClaimsCtx {
    ctx: Arc<Context>,
    /// Quota decisions, one at a time (this replica leads: no other decides meanwhile).
    quota: tokio::sync::Mutex<()>,
}

/// The two controllers, wired like the kinds' (they run while this replica leads).
pub(super) fn wire(
    client: &Client,
    wc: &watcher::Config,
    cfg: ControllerConfig,
    stop_rx: watch::Receiver<bool>,
) -> Vec<Run> {
    let account_claims = Controller::new(Api::<AccountClaim>::all(client.clone()), wc.clone());
    let store = account_claims.store();
    let (by_class, every, by_namespace) = (store.clone(), store.clone(), store.clone());
    let account_claims = account_claims
        .watches_stream(
            super::metadata_changes::<AccountClass>(client, wc),
            move |class: PartialObjectMeta<AccountClass>| {
                by_class
                    .state()
                    .into_iter()
                    .filter(|c| c.spec.class_ref.name == class.name_any())
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        // A permission set a class names may come after the claims.
        .watches_stream(
            super::metadata_changes::<PermissionSet>(client, wc),
            every_claim(every),
        )
        // A grant of time-bound access on the claim's account goes into its record.
        .watches_stream(
            watcher(Api::<AccessClaim>::all(client.clone()), wc.clone())
                .default_backoff()
                .touched_objects(),
            |a: AccessClaim| {
                Some(
                    ObjectRef::<AccountClaim>::new(&a.spec.account_claim_ref.name)
                        .within(&a.namespace()?),
                )
            },
        )
        // A namespace relabelled (the class's namespaceSelector may no longer select it).
        .watches_stream(
            super::metadata_changes::<Namespace>(client, wc),
            every_claim(by_namespace),
        )
        .watches_stream(
            super::metadata_changes::<AwsAccount>(client, wc),
            claim_of::<PartialObjectMeta<AwsAccount>, AccountClaim>("AccountClaim"),
        )
        .watches_stream(
            super::metadata_changes::<Budget>(client, wc),
            claim_of::<PartialObjectMeta<Budget>, AccountClaim>("AccountClaim"),
        )
        .watches_stream(
            super::metadata_changes::<AccountAssignment>(client, wc),
            claim_of::<PartialObjectMeta<AccountAssignment>, AccountClaim>("AccountClaim"),
        );
    let access_claims = Controller::new(Api::<AccessClaim>::all(client.clone()), wc.clone());
    let access_store = access_claims.store();
    let (every_access, access_by_namespace) = (access_store.clone(), access_store.clone());
    let access_claims = access_claims
        // The class's word holds for time-bound access at once (a permission set no longer
        // allowed for a time, the class gone, the namespace no longer selected).
        .watches_stream(
            super::metadata_changes::<AccountClass>(client, wc),
            every_claim(every_access),
        )
        .watches_stream(
            super::metadata_changes::<Namespace>(client, wc),
            every_claim(access_by_namespace),
        )
        .watches_stream(
            super::metadata_changes::<AccountClaim>(client, wc),
            move |claim: PartialObjectMeta<AccountClaim>| {
                access_store
                    .state()
                    .into_iter()
                    .filter(|a| {
                        a.namespace() == claim.namespace()
                            && a.spec.account_claim_ref.name == claim.name_any()
                    })
                    .map(|a| ObjectRef::from_obj(&*a))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(
            super::metadata_changes::<AccountAssignment>(client, wc),
            claim_of::<PartialObjectMeta<AccountAssignment>, AccessClaim>("AccessClaim"),
        );
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (cfg2, stop2) = (cfg.clone(), stop_rx.clone());
    vec![
        Box::new(move |ctx: Arc<Context>| {
            let cx = Arc::new(ClaimsCtx {
                ctx,
                quota: Default::default(),
            });
            account_claims
                .with_config(cfg)
                .graceful_shutdown_on(stopped(stop_rx))
                .run(reconcile_account_claim, error_policy, cx)
                .for_each(|_| async {})
                .boxed()
        }),
        Box::new(move |ctx: Arc<Context>| {
            let cx = Arc::new(ClaimsCtx {
                ctx,
                quota: Default::default(),
            });
            access_claims
                .with_config(cfg2)
                .graceful_shutdown_on(stopped(stop2))
                .run(reconcile_access_claim, error_policy, cx)
                .for_each(|_| async {})
                .boxed()
        }),
    ]
}

/// Maps any change of a namespace to every claim: its labels decide the namespace's own claims,
/// and a namespace made or deleted changes who owns a group (`claims::group_owner`) for claims in
/// the namespaces whose names it starts with. Namespaces change seldom; claims are few.
fn every_claim<K, T>(
    store: kube::runtime::reflector::Store<K>,
) -> impl Fn(T) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    K: KubeResource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    move |_: T| {
        store
            .state()
            .into_iter()
            .map(|c| ObjectRef::from_obj(&*c))
            .collect()
    }
}

/// Maps a composed object to the claim its labels name.
fn claim_of<C: KubeResource<DynamicType = ()>, K: KubeResource<DynamicType = ()>>(
    kind: &'static str,
) -> impl Fn(C) -> Option<ObjectRef<K>> + Send + Sync + 'static {
    move |child: C| {
        let labels = child.labels();
        (labels.get(compose::LABEL_KIND)?.as_str() == kind).then_some(())?;
        let ns = labels.get(compose::LABEL_NAMESPACE)?;
        Some(ObjectRef::new(labels.get(compose::LABEL_CLAIM)?).within(ns))
    }
}

fn error_policy<K: ResourceExt>(obj: Arc<K>, err: &ClaimError, _: Arc<ClaimsCtx>) -> Action {
    tracing::warn!(
        name = %obj.name_any(),
        namespace = %obj.namespace().unwrap_or_default(),
        "claim not reconciled: {err}; retrying in 10 s"
    );
    Action::requeue(Duration::from_secs(10))
}

fn finalizer_error(e: kube::runtime::finalizer::Error<ClaimError>) -> ClaimError {
    match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => ClaimError(other.to_string()),
    }
}

/// What happened to a composed object.
#[derive(PartialEq, Eq)]
enum Ensured {
    Created,
    Unchanged,
    Updated,
}

/// Creates or updates a composed object, only if it is this claim's (its labels name it); an
/// object of that name held by anyone else is a refusal, and is left untouched.
async fn ensure<K>(
    api: &Api<K>,
    obj: &K,
    kind: &str,
    ns: &str,
    claim: &str,
) -> Result<Result<Ensured, Refusal>, ClaimError>
where
    K: KubeResource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.name_any();
    for _ in 0..2 {
        match api.get_opt(&name).await? {
            Some(existing) if !compose::owned_by(existing.labels(), kind, ns, claim) => {
                return Ok(Err(Refusal {
                    reason: "NameTaken",
                    message: format!(
                        "a {} named {name} already exists and belongs to {}: this claim does not take it over; rename the claim",
                        K::kind(&()),
                        compose::holder(existing.labels())
                    ),
                }));
            }
            Some(existing) => {
                let spec = |o: &K| serde_json::to_value(o).ok().map(|v| v["spec"].clone());
                // Labels others added (a cost tool's, say) are theirs: only ours must be there.
                let labelled = obj
                    .labels()
                    .iter()
                    .all(|(k, v)| existing.labels().get(k) == Some(v));
                if spec(&existing) == spec(obj) && labelled {
                    return Ok(Ok(Ensured::Unchanged));
                }
                let mut patch = serde_json::to_value(obj).map_err(|e| ClaimError(e.to_string()))?;
                patch.as_object_mut().map(|o| o.remove("status"));
                api.patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await?;
                return Ok(Ok(Ensured::Updated));
            }
            None => match api
                .create(
                    &PostParams {
                        field_manager: Some(MANAGER.into()),
                        ..Default::default()
                    },
                    obj,
                )
                .await
            {
                Ok(_) => return Ok(Ok(Ensured::Created)),
                // Another claim made it a moment ago: look at whose it is.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e.into()),
            },
        }
    }
    Err(ClaimError(format!(
        "{name} was created and deleted while being looked at; trying again"
    )))
}

/// Deletes the composed objects of a claim that are not in `keep` (all of them with an empty one);
/// returns the names it deleted.
async fn prune<K>(
    api: &Api<K>,
    kind: &str,
    ns: &str,
    claim: &str,
    keep: &[String],
) -> Result<Vec<String>, ClaimError>
where
    K: KubeResource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let selector = format!(
        "{}={ns},{}={claim},{}={kind}",
        compose::LABEL_NAMESPACE,
        compose::LABEL_CLAIM,
        compose::LABEL_KIND
    );
    let mut gone = Vec::new();
    for o in api.list(&ListParams::default().labels(&selector)).await? {
        if !keep.contains(&o.name_any()) && o.meta().deletion_timestamp.is_none() {
            api.delete(&o.name_any(), &DeleteParams::default()).await?;
            gone.push(o.name_any());
        }
    }
    Ok(gone)
}

/// Removes every access a claim composed (its `AccountAssignment`s); returns their names.
async fn release_access(
    client: &Client,
    kind: &str,
    ns: &str,
    claim: &str,
) -> Result<Vec<String>, ClaimError> {
    prune(
        &Api::<AccountAssignment>::all(client.clone()),
        kind,
        ns,
        claim,
        &[],
    )
    .await
}

/// The PermissionSet resources, from the watch cache of their controller.
fn permission_sets(cx: &ClaimsCtx) -> Vec<PermissionSet> {
    let all = cx
        .ctx
        .listers
        .get(&Kind::PermissionSet)
        .map(|list| list())
        .unwrap_or_default();
    all.into_iter()
        .filter_map(|r| match r {
            Resource::PermissionSet(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn ready_of(r: Option<Resource>) -> Option<(bool, String, String)> {
    let r = r?;
    let c = r
        .common_status()?
        .conditions
        .iter()
        .find(|c| c.type_ == READY)?
        .clone();
    Some((c.status == "True", c.reason, c.message))
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn ready_reason(conditions: &[Condition]) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn write_status<K>(
    api: &Api<K>,
    name: &str,
    before: &serde_json::Value,
    status: &impl Serialize,
) -> Result<(), ClaimError>
where
    K: KubeResource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let after = serde_json::to_value(status).map_err(|e| ClaimError(e.to_string()))?;
    if *before == after {
        return Ok(());
    }
    let patch = serde_json::json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": after});
    api.patch_status(
        name,
        &PatchParams::apply(super::status::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Right after a start the PermissionSet watch cache can be empty for a moment (its first list not
/// in): a claim would then find no permission set, be refused and prune the access it composed,
/// then compose it again. It waits for that first list instead of deciding anything.
fn permission_sets_not_read_yet(cx: &ClaimsCtx) -> Option<Action> {
    cx.ctx
        .unfilled([&Kind::PermissionSet])
        .map(|_| Action::requeue(super::CACHE_RECHECK))
}

async fn reconcile_account_claim(
    claim: Arc<AccountClaim>,
    cx: Arc<ClaimsCtx>,
) -> Result<Action, ClaimError> {
    if let Some(wait) = permission_sets_not_read_yet(&cx) {
        return Ok(wait);
    }
    let ns = claim.namespace().unwrap_or_default();
    let api: Api<AccountClaim> = Api::namespaced(cx.ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, claim, |event| async {
        match event {
            Finalizer::Apply(c) => apply_account_claim(c, &cx).await,
            Finalizer::Cleanup(c) => cleanup_account_claim(c, &cx).await,
        }
    })
    .await
    .map_err(finalizer_error)
}

async fn apply_account_claim(
    claim: Arc<AccountClaim>,
    cx: &ClaimsCtx,
) -> Result<Action, ClaimError> {
    let client = cx.ctx.client.clone();
    let (ns, name) = (claim.namespace().unwrap_or_default(), claim.name_any());
    let before_status = serde_json::to_value(&claim.status).unwrap_or_default();
    let mut status = claim.status.clone().unwrap_or_default();
    let generation = claim.meta().generation;
    let was = ready_reason(&status.conditions);
    let outcome = compose_account_claim(&claim, cx, &mut status).await?;
    record_access_grants(&claim, cx, &mut status).await?;
    let (ok, reason, message, next) = match outcome {
        Ok((true, message)) => (true, "AccountReady".to_string(), message, RESYNC),
        Ok((false, message)) => (false, "Provisioning".to_string(), message, PENDING_RECHECK),
        Err(r) if compose::withdraws_access(r.reason) => {
            // The platform team took the class back (deleted it, stopped selecting the
            // namespace, the group is no longer the team's): the access given through it goes at
            // once; the account and its budget stay, never closed by a class change. (The
            // claim's AccessClaims see the same and remove theirs.)
            release_access(&client, "AccountClaim", &ns, &name).await?;
            let message = format!(
                "{}; the access given through the class is removed, the account {} is kept",
                r.message,
                status.account_id.as_deref().unwrap_or("(not created)")
            );
            (false, r.reason.to_string(), message, RESYNC)
        }
        Err(r) => (false, r.reason.to_string(), r.message, RESYNC),
    };
    set_condition(
        &mut status.conditions,
        READY,
        ok,
        &reason,
        &message,
        generation,
        &now(),
    );
    status.observed_generation = generation;
    if was != ready_reason(&status.conditions) {
        let (type_, action) = if ok || reason == "Provisioning" {
            (EventType::Normal, "Claim")
        } else {
            (EventType::Warning, "Refuse")
        };
        if matches!(type_, EventType::Warning) {
            tracing::warn!(namespace = %ns, claim = %name, %reason, "account claim refused: {message}");
        } else {
            tracing::info!(namespace = %ns, claim = %name, %reason, "{message}");
        }
        cx.ctx.event(&*claim, type_, &reason, action, message).await;
    }
    let api: Api<AccountClaim> = Api::namespaced(client, &ns);
    write_status(&api, &name, &before_status, &Some(status)).await?;
    Ok(Action::requeue(next))
}

/// Adds the grants its AccessClaims list to the claim's record of the last day, and counts them.
async fn record_access_grants(
    claim: &AccountClaim,
    cx: &ClaimsCtx,
    status: &mut AccountClaimStatus,
) -> Result<(), ClaimError> {
    let (ns, name) = (claim.namespace().unwrap_or_default(), claim.name_any());
    let access: Vec<(String, String, String, Vec<crate::api::claims::AccessGrant>)> =
        Api::<AccessClaim>::namespaced(cx.ctx.client.clone(), &ns)
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter(|a| a.spec.account_claim_ref.name == name)
            .map(|a| {
                let grants = a.status.clone().unwrap_or_default().grants;
                (a.name_any(), a.spec.permission_set, a.spec.group, grants)
            })
            .collect();
    status.access_grants = compose::merge_access_grants(
        &status.access_grants,
        &access,
        k8s_openapi::jiff::Timestamp::now(),
    );
    grants_gauge(&cx.ctx.metrics)
        .with_label_values(&[&ns, &name])
        .set(status.access_grants.len() as i64);
    Ok(())
}

/// How a claim stands: `Ok((ready, message))`, or the refusal.
type Verdict = Result<(bool, String), Refusal>;

/// Removes the claim's access but the assignments in `keep`; an Event says what went (`why`).
async fn withdraw_access_but(
    claim: &AccountClaim,
    cx: &ClaimsCtx,
    keep: &[String],
    why: impl FnOnce(&[String]) -> String,
) -> Result<(), ClaimError> {
    let (ns, name) = (claim.namespace().unwrap_or_default(), claim.name_any());
    let assignments: Api<AccountAssignment> = Api::all(cx.ctx.client.clone());
    let dropped = prune(&assignments, "AccountClaim", &ns, &name, keep).await?;
    if !dropped.is_empty() {
        let note = why(&dropped);
        tracing::info!(namespace = %ns, claim = %name, "{note}");
        cx.ctx
            .event(claim, EventType::Normal, "AccessWithdrawn", "Prune", note)
            .await;
    }
    Ok(())
}

/// The claim's account object, when it is this claim's to keep composing. A claim of this name
/// made earlier (and deleted without its finalizer, which only a cluster admin can do) may have
/// left it: taken over only under the same class, and never while it is being released
/// (`Err`: how the claim stands meanwhile).
async fn existing_account(
    accounts: &Api<AwsAccount>,
    ns: &str,
    name: &str,
    class: &AccountClass,
) -> Result<Result<Option<AwsAccount>, Verdict>, ClaimError> {
    let existing = accounts
        .get_opt(&compose::child_name(ns, name))
        .await?
        .filter(|a| compose::owned_by(a.labels(), "AccountClaim", ns, name));
    let Some(a) = &existing else {
        return Ok(Ok(None));
    };
    if a.meta().deletion_timestamp.is_some() {
        return Ok(Err(Ok((
            false,
            format!(
                "AwsAccount {} of an earlier claim of this name is being released; this claim waits for it",
                a.name_any()
            ),
        ))));
    }
    if let Some(other) = a.labels().get(compose::LABEL_CLASS)
        && *other != class.name_any()
    {
        return Ok(Err(Err(Refusal {
            reason: NOT_CLAIMABLE,
            message: format!(
                "AwsAccount {} was composed for this claim's name under AccountClass {other} and is kept by that class; a claim of AccountClass {} cannot take it: ask the platform team",
                a.name_any(),
                class.name_any()
            ),
        })));
    }
    Ok(Ok(existing))
}

/// Takes a slot of the namespace's quota for the claim's account (`child`). The quota is exact:
/// decided one claim at a time, on a consistent read of the namespace's claims (not the watch
/// cache, which may not have a claim made a moment ago), and the slot is recorded
/// (`status.accountRef`) before the next decision. Claims that hold a slot count; of the others,
/// the oldest (creation time, then name) come first.
async fn take_quota_slot(
    claim: &AccountClaim,
    cx: &ClaimsCtx,
    class: &AccountClass,
    child: &str,
) -> Result<Result<(), Refusal>, ClaimError> {
    let (ns, name) = (claim.namespace().unwrap_or_default(), claim.name_any());
    let _one_at_a_time = cx.quota.lock().await;
    let api: Api<AccountClaim> = Api::namespaced(cx.ctx.client.clone(), &ns);
    let siblings = api.list(&ListParams::default()).await?.items;
    let me = siblings
        .iter()
        .find(|c| c.name_any() == name)
        .unwrap_or(claim);
    if let Err(r) = compose::within_quota(class, me, &siblings) {
        return Ok(Err(r));
    }
    if me
        .status
        .as_ref()
        .and_then(|s| s.account_ref.as_ref())
        .is_none()
    {
        let slot = serde_json::json!({"status": {"accountRef": child}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&slot))
            .await?;
    }
    Ok(Ok(()))
}

/// Checks the claim, composes its objects and reads back how the account stands:
/// `Ok(Ok((ready, message)))`, or the refusal.
async fn compose_account_claim(
    claim: &AccountClaim,
    cx: &ClaimsCtx,
    status: &mut AccountClaimStatus,
) -> Result<Verdict, ClaimError> {
    let client = cx.ctx.client.clone();
    let (ns, name) = (claim.namespace().unwrap_or_default(), claim.name_any());
    let Some(class) = Api::<AccountClass>::all(client.clone())
        .get_opt(&claim.spec.class_ref.name)
        .await?
    else {
        return Ok(Err(Refusal {
            reason: "ClassNotFound",
            message: format!(
                "there is no AccountClass {}: ask the platform team which classes exist (kubectl get accountclasses)",
                claim.spec.class_ref.name
            ),
        }));
    };
    // A permission set the class no longer gives: its access goes now, whatever else the claim is
    // refused for below.
    let given: Vec<String> = class
        .spec
        .permission_sets
        .iter()
        .map(|p| compose::assignment_name(&compose::child_name(&ns, &name), p))
        .collect();
    withdraw_access_but(claim, cx, &given, |dropped| {
        format!(
            "AccountClass {} no longer gives what {dropped:?} gave: removed; the account is kept",
            class.name_any()
        )
    })
    .await?;
    let ns_labels = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await?
        .labels()
        .clone();
    let namespaces = namespace_names(&client).await?;
    if let Err(r) = compose::check_account_claim(&class, claim, &ns_labels, &namespaces) {
        return Ok(Err(r));
    }
    let sets = permission_sets(cx);
    let accounts: Api<AwsAccount> = Api::all(client.clone());
    let existing = match existing_account(&accounts, &ns, &name, &class).await? {
        Ok(existing) => existing,
        Err(verdict) => return Ok(verdict),
    };
    let composed =
        compose::compose_account(&class, claim, &sets, existing.as_ref().map(|a| &a.spec));
    let child = composed.account.name_any();
    if status.account_ref.is_none() {
        if let Err(r) = take_quota_slot(claim, cx, &class, &child).await? {
            return Ok(Err(r));
        }
        status.account_ref = Some(child.clone());
    }
    let created = match ensure(&accounts, &composed.account, "AccountClaim", &ns, &name).await? {
        Ok(e) => e == Ensured::Created,
        Err(mut r) => {
            r.reason = "AccountNameTaken";
            return Ok(Err(r));
        }
    };
    status.account_ref = Some(child.clone());
    status.account_name = Some(composed.account.spec.account_name.clone());
    if created {
        cx.ctx
            .event(
                claim,
                EventType::Normal,
                "AccountRequested",
                "Claim",
                format!(
                    "AwsAccount {child} composed in OU {}; AWS creates the account",
                    class.spec.organizational_unit_ref.name
                ),
            )
            .await;
    }
    let budgets: Api<Budget> = Api::all(client.clone());
    if let Some(b) = &composed.budget
        && let Err(r) = ensure(&budgets, b, "AccountClaim", &ns, &name).await?
    {
        return Ok(Err(r));
    }
    let assignments: Api<AccountAssignment> = Api::all(client.clone());
    let mut keep = Vec::new();
    for a in &composed.assignments {
        if let Err(r) = ensure(&assignments, a, "AccountClaim", &ns, &name).await? {
            return Ok(Err(r));
        }
        keep.push(a.name_any());
    }
    // A permission set whose PermissionSet resource is gone: its assignment goes too.
    withdraw_access_but(claim, cx, &keep, |dropped| {
        format!(
            "no PermissionSet resource has {:?} any more: {dropped:?} removed; the account is kept",
            composed.missing_permission_sets
        )
    })
    .await?;
    account_standing(claim, cx, &class, &composed, status).await
}

/// How the claim's account stands, read from the account kind's status: its id, role and
/// ConfigMap recorded in the claim's status.
async fn account_standing(
    claim: &AccountClaim,
    cx: &ClaimsCtx,
    class: &AccountClass,
    composed: &compose::Composed,
    status: &mut AccountClaimStatus,
) -> Result<Verdict, ClaimError> {
    let child = composed.account.name_any();
    let account = cx.ctx.cached(&Key::new(Kind::AwsAccount, &child));
    // The account kind refuses to adopt an existing account this claim did not create: so does the claim.
    if let Some(refused) = account
        .as_ref()
        .and_then(Resource::common_status)
        .and_then(|c| {
            c.conditions
                .iter()
                .find(|c| c.status == "False" && c.reason == NOT_CLAIMABLE)
                .cloned()
        })
    {
        return Ok(Err(Refusal {
            reason: NOT_CLAIMABLE,
            message: refused.message,
        }));
    }
    let account_id = account.as_ref().and_then(Resource::aws_id);
    status.account_id = account_id.clone();
    // The partition of the account's own ARN (AWS GovCloud and China are not `aws`).
    let partition = account
        .as_ref()
        .and_then(|a| match a {
            Resource::AwsAccount(a) => a.status.as_ref().and_then(|s| s.arn.clone()),
            _ => None,
        })
        .map_or_else(
            || "aws".to_string(),
            |arn| crate::aws::partition_of(&arn).to_string(),
        );
    if let Some(id) = &account_id {
        // The account's own role (the one it was made with; a class's edited roleName is for
        // new claims).
        let role = &composed.account.spec.role_name;
        let role_arn = format!("arn:{partition}:iam::{id}:role/{role}");
        status.role_arn = Some(role_arn.clone());
        status.config_map = Some(
            config_map(
                cx,
                claim,
                id,
                &role_arn,
                &composed.account.spec.account_name,
            )
            .await?,
        );
    }
    if !composed.missing_permission_sets.is_empty() {
        return Ok(Err(Refusal {
            reason: "PermissionSetNotFound",
            message: format!(
                "AccountClass {} gives permission sets {:?} that no PermissionSet resource has: the account is made, the access follows once the platform team adds them",
                class.name_any(),
                composed.missing_permission_sets
            ),
        }));
    }
    Ok(Ok(match ready_of(account) {
        Some((true, ..)) => (
            true,
            format!(
                "account {} is ready: assume {}; {} gets {:?} through AccountClass {}",
                account_id.unwrap_or_default(),
                status.role_arn.clone().unwrap_or_default(),
                claim.spec.owner_group,
                class.spec.permission_sets,
                class.name_any()
            ),
        ),
        Some((false, reason, message)) => (
            false,
            format!("the account is not ready yet ({reason}): {message}"),
        ),
        None => (false, "the account is being created".to_string()),
    }))
}

/// The ConfigMap `<claim>-aws-account` in the claim's namespace: what tools there need to reach
/// the account (see docs/self-service.md for Crossplane, ACK and Terraform). Owned by the claim,
/// so it goes with it.
/// Every namespace's name: a group belongs to the namespace with the longest name its class's
/// pattern matches it for (`claims::group_owner`).
async fn namespace_names(client: &Client) -> Result<Vec<String>, kube::Error> {
    Ok(Api::<Namespace>::all(client.clone())
        .list_metadata(&kube::api::ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

async fn config_map(
    cx: &ClaimsCtx,
    claim: &AccountClaim,
    account_id: &str,
    role_arn: &str,
    account_name: &str,
) -> Result<String, ClaimError> {
    let ns = claim.namespace().unwrap_or_default();
    let name = format!("{}-aws-account", claim.name_any());
    let owner = claim.controller_owner_ref(&()).map(|o| vec![o]);
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owner,
            "labels": compose::claim_labels("AccountClaim", &ns, &claim.name_any(), &claim.spec.class_ref.name)},
        "data": {
            "accountId": account_id,
            "roleArn": role_arn,
            "accountName": account_name,
            "region": cx.ctx.aws.region,
            // ACK's cross-account resource management maps an account id to the role to assume.
            account_id: role_arn,
            // envFrom: the AWS SDKs' and Terraform's own variable names.
            "AWS_ACCOUNT_ID": account_id,
            "AWS_REGION": cx.ctx.aws.region,
            "AWS_ROLE_ARN_TO_ASSUME": role_arn,
        },
    });
    let api: Api<ConfigMap> = Api::namespaced(cx.ctx.client.clone(), &ns);
    let current = api.get_opt(&name).await?;
    if current
        .as_ref()
        .and_then(|c| serde_json::to_value(&c.data).ok())
        != Some(cm["data"].clone())
    {
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await?;
    }
    Ok(name)
}

async fn cleanup_account_claim(
    claim: Arc<AccountClaim>,
    cx: &ClaimsCtx,
) -> Result<Action, ClaimError> {
    let client = cx.ctx.client.clone();
    let (ns, name) = (claim.namespace().unwrap_or_default(), claim.name_any());
    let _ = grants_gauge(&cx.ctx.metrics).remove_label_values(&[&ns, &name]);
    // Access first, then the budget, then the account (whose deletionPolicy, from the class, says
    // whether AWS closes it).
    release_access(&client, "AccountClaim", &ns, &name).await?;
    prune(
        &Api::<Budget>::all(client.clone()),
        "AccountClaim",
        &ns,
        &name,
        &[],
    )
    .await?;
    let accounts: Api<AwsAccount> = Api::all(client.clone());
    let selector = format!(
        "{}={ns},{}={name},{}=AccountClaim",
        compose::LABEL_NAMESPACE,
        compose::LABEL_CLAIM,
        compose::LABEL_KIND
    );
    for a in accounts
        .list(&ListParams::default().labels(&selector))
        .await?
    {
        if a.meta().deletion_timestamp.is_some() {
            continue;
        }
        if a.spec.deletion_policy == crate::api::AccountDeletionPolicy::Close {
            // The team deleting its own claim of a Close class is the confirmation the chart's
            // admission policy asks of a person deleting an AwsAccount by hand.
            let patch = serde_json::json!({"metadata": {"annotations": {"landingzone.dev/confirm-close": a.spec.account_name}}});
            accounts
                .patch(
                    &a.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        accounts
            .delete(&a.name_any(), &DeleteParams::default())
            .await?;
        let note = format!(
            "AwsAccount {} deleted with the claim: AWS account {} ({})",
            a.name_any(),
            a.status
                .as_ref()
                .and_then(|s| s.account_id.clone())
                .unwrap_or_else(|| "not created".into()),
            if a.spec.deletion_policy == crate::api::AccountDeletionPolicy::Close {
                "closed, the class says Close"
            } else {
                "retained, the class says Retain"
            }
        );
        cx.ctx
            .event(&*claim, EventType::Normal, "Released", "Delete", note)
            .await;
    }
    Ok(Action::await_change())
}

async fn reconcile_access_claim(
    access: Arc<AccessClaim>,
    cx: Arc<ClaimsCtx>,
) -> Result<Action, ClaimError> {
    if let Some(wait) = permission_sets_not_read_yet(&cx) {
        return Ok(wait);
    }
    let ns = access.namespace().unwrap_or_default();
    let api: Api<AccessClaim> = Api::namespaced(cx.ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, access, |event| async {
        match event {
            Finalizer::Apply(a) => apply_access_claim(a, &cx).await,
            Finalizer::Cleanup(a) => {
                let (ns, name) = (a.namespace().unwrap_or_default(), a.name_any());
                release_access(&cx.ctx.client, "AccessClaim", &ns, &name).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(finalizer_error)
}

async fn apply_access_claim(
    access: Arc<AccessClaim>,
    cx: &ClaimsCtx,
) -> Result<Action, ClaimError> {
    let client = cx.ctx.client.clone();
    let (ns, name) = (access.namespace().unwrap_or_default(), access.name_any());
    let api: Api<AccessClaim> = Api::namespaced(client.clone(), &ns);
    let before = serde_json::to_value(&access.status).unwrap_or_default();
    let mut status: AccessClaimStatus = access.status.clone().unwrap_or_default();
    let generation = access.meta().generation;
    let (mut was_state, was_granted) = (status.state.clone(), status.granted_generation);
    let outcome = grant(&access, cx, &mut status).await?;
    if status.granted_generation != was_granted {
        // Granted again (a changed spec) within this one reconcile: an Event all the same.
        was_state = Some("Pending".into());
    }
    let (ok, reason, message, next) = match outcome {
        Ok(Grant::Granted { until }) => (
            true,
            "Granted",
            format!(
                "{} for {} on account {} until {until}",
                access.spec.permission_set,
                access.spec.group,
                status.account_id.clone().unwrap_or_default()
            ),
            until_expiry(&until),
        ),
        Ok(Grant::Expired) => (
            true,
            "Expired",
            format!(
                "the access ended at {}; change the spec to ask again",
                status.expires_at.clone().unwrap_or_default()
            ),
            RESYNC,
        ),
        Ok(Grant::Pending(why)) => (false, "Pending", why, PENDING_RECHECK),
        Err(r) => {
            status.state = Some("Refused".into());
            // Refused now (its AccountClaim deleted, the class no longer allowing it): the access
            // it was given ends at once, whatever its deadline.
            release_access(&client, "AccessClaim", &ns, &name).await?;
            // Granted anew (a new deadline, counted) once nothing refuses it any more — unless
            // its deadline has passed: an expired claim is granted again only for a new spec.
            let ended = crate::reconcile::account_assignment::expired(
                status.expires_at.as_deref(),
                k8s_openapi::jiff::Timestamp::now(),
            )
            .unwrap_or(false);
            if !ended {
                status.assignment = None;
                status.expires_at = None;
            }
            let message = format!("{}; any access it held is removed", r.message);
            (false, r.reason, message, RESYNC)
        }
    };
    set_condition(
        &mut status.conditions,
        READY,
        ok,
        reason,
        &message,
        generation,
        &now(),
    );
    status.observed_generation = generation;
    let now = k8s_openapi::jiff::Timestamp::now();
    compose::trim_grants(&mut status, now);
    let last_day = compose::grants_in_last_day(&status, now);
    if was_state != status.state {
        let mut note = format!("{message} (reason: {})", access.spec.reason);
        if status.state.as_deref() == Some("Granted") {
            note.push_str(&format!(
                "; grant {} of this claim, {last_day} in the last 24 h",
                status.grant_count.unwrap_or(1)
            ));
        }
        match status.state.as_deref() {
            Some("Granted") => {
                tracing::info!(namespace = %ns, claim = %name, "access granted: {note}")
            }
            Some("Expired") => {
                tracing::info!(namespace = %ns, claim = %name, "access expired: {note}")
            }
            Some("Refused") => {
                tracing::warn!(namespace = %ns, claim = %name, %reason, "access claim refused: {message}")
            }
            _ => {}
        }
        let type_ = if status.state.as_deref() == Some("Refused") {
            EventType::Warning
        } else {
            EventType::Normal
        };
        cx.ctx.event(&*access, type_, reason, "Access", note).await;
    }
    write_status(&api, &name, &before, &Some(status)).await?;
    Ok(Action::requeue(next))
}

/// Grants of time-bound access per claimed account in the last day (from the AccountClaim's
/// `status.accessGrants`, so an AccessClaim deleted or made again under another name still
/// counts): the chart's `LandingZoneAccessRenewedOften` alert fires above
/// `prometheusRule.accessGrantsPerDay`.
pub fn grants_gauge(m: &crate::metrics::Metrics) -> prometheus::IntGaugeVec {
    m.kind_gauge(
        "access_grants_last_day",
        "Time-bound access granted on each claimed account in the last 24 hours, by any AccessClaim (from the AccountClaim's status.accessGrants)",
        &["namespace", "account_claim"],
    )
}

fn until_expiry(until: &str) -> Duration {
    let left = until
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .and_then(|t| {
            Duration::try_from(t.duration_since(k8s_openapi::jiff::Timestamp::now())).ok()
        })
        .unwrap_or_default();
    (left + Duration::from_secs(1)).min(RESYNC)
}

enum Grant {
    Granted { until: String },
    Expired,
    Pending(String),
}

/// An access claim checked against its AccountClaim and the class: that claim, the class and the
/// seconds asked for, or why not. The class's word holds here, whatever the AccountClaim's status
/// says yet: a namespace the class no longer selects, a permission set it no longer allows for a
/// time, a group no longer the team's all end the access at once.
async fn check_grant(
    access: &AccessClaim,
    cx: &ClaimsCtx,
) -> Result<Result<(AccountClaim, AccountClass, i64), Refusal>, ClaimError> {
    let client = cx.ctx.client.clone();
    let ns = access.namespace().unwrap_or_default();
    let Some(account_claim) = Api::<AccountClaim>::namespaced(client.clone(), &ns)
        .get_opt(&access.spec.account_claim_ref.name)
        .await?
    else {
        return Ok(Err(Refusal {
            reason: "AccountClaimNotFound",
            message: format!(
                "there is no AccountClaim {} in namespace {ns}: an access claim names an account this namespace claimed",
                access.spec.account_claim_ref.name
            ),
        }));
    };
    let Some(class) = Api::<AccountClass>::all(client.clone())
        .get_opt(&account_claim.spec.class_ref.name)
        .await?
    else {
        return Ok(Err(Refusal {
            reason: "ClassNotFound",
            message: format!("AccountClass {} is gone", account_claim.spec.class_ref.name),
        }));
    };
    let ns_labels = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await?
        .labels()
        .clone();
    if let Err(r) = compose::namespace_selected(&class, &ns, &ns_labels) {
        return Ok(Err(r));
    }
    let namespaces = namespace_names(&client).await?;
    let seconds = match compose::check_access_claim(&class, access, &namespaces) {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let conditions = account_claim
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(withdrawn) = conditions
        .iter()
        .find(|c| c.type_ == READY && c.status == "False" && compose::withdraws_access(&c.reason))
    {
        return Ok(Err(Refusal {
            reason: "AccountClaimWithdrawn",
            message: format!(
                "AccountClaim {} no longer has its class's access ({}: {})",
                account_claim.name_any(),
                withdrawn.reason,
                withdrawn.message
            ),
        }));
    }
    Ok(Ok((account_claim, class, seconds)))
}

async fn grant(
    access: &AccessClaim,
    cx: &ClaimsCtx,
    status: &mut AccessClaimStatus,
) -> Result<Result<Grant, Refusal>, ClaimError> {
    let client = cx.ctx.client.clone();
    let ns = access.namespace().unwrap_or_default();
    let (account_claim, class, seconds) = match check_grant(access, cx).await? {
        Ok(checked) => checked,
        Err(r) => return Ok(Err(r)),
    };
    let claim_status = account_claim.status.clone().unwrap_or_default();
    let ready = claim_status
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True");
    // A grant made stays until its deadline while its AccountClaim is not ready for a while (its
    // account updating, a budget being fixed); only a first grant waits for a ready claim.
    let granted = status.granted_generation == access.meta().generation
        && status.expires_at.is_some()
        && status.assignment.is_some();
    let (Some(account_object), Some(account_id), true) = (
        claim_status.account_ref.clone(),
        claim_status.account_id.clone(),
        ready || granted,
    ) else {
        status.state = Some("Pending".into());
        return Ok(Ok(Grant::Pending(format!(
            "AccountClaim {} is not ready yet; the access is granted once it is",
            account_claim.name_any()
        ))));
    };
    let sets = permission_sets(cx);
    let Some(ps) = compose::permission_set_named(&sets, &access.spec.permission_set) else {
        return Ok(Err(Refusal {
            reason: "PermissionSetNotFound",
            message: format!(
                "no PermissionSet resource is named {} in Identity Center: ask the platform team",
                access.spec.permission_set
            ),
        }));
    };
    status.account_id = Some(account_id);
    // The deadline is set once per spec generation and kept in status, so a restart or failover
    // neither extends nor forgets it; an expired claim is granted again only when its spec changes.
    if status.granted_generation != access.meta().generation || status.expires_at.is_none() {
        let until = k8s_openapi::jiff::Timestamp::now()
            + k8s_openapi::jiff::SignedDuration::from_secs(seconds);
        let expires_at = until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        compose::record_grant(
            status,
            k8s_openapi::jiff::Timestamp::now(),
            &expires_at,
            &access.spec.reason,
        );
        status.expires_at = Some(expires_at);
        status.granted_generation = access.meta().generation;
        // Durable before the grant.
        let api: Api<AccessClaim> = Api::namespaced(client.clone(), &ns);
        let mut early = status.clone();
        early.state = Some("Pending".into());
        write_status(
            &api,
            &access.name_any(),
            &serde_json::Value::Null,
            &Some(early),
        )
        .await?;
    }
    let until = status.expires_at.clone().unwrap_or_default();
    let assignment =
        compose::compose_access(access, &class.name_any(), &account_object, ps, &until);
    status.assignment = Some(assignment.name_any());
    let api: Api<AccountAssignment> = Api::all(client.clone());
    if let Err(r) = ensure(&api, &assignment, "AccessClaim", &ns, &access.name_any()).await? {
        return Ok(Err(r));
    }
    let state = cx
        .ctx
        .cached(&Key::new(Kind::AccountAssignment, assignment.name_any()))
        .and_then(|r| match r {
            Resource::AccountAssignment(a) => a.status.and_then(|s| s.state),
            _ => None,
        });
    let expired = crate::reconcile::account_assignment::expired(
        Some(&until),
        k8s_openapi::jiff::Timestamp::now(),
    )
    .unwrap_or(false);
    Ok(Ok(match state.as_deref() {
        Some("Expired") => {
            status.state = Some("Expired".into());
            Grant::Expired
        }
        Some("Assigned") if !expired => {
            status.state = Some("Granted".into());
            Grant::Granted { until }
        }
        other => {
            status.state = Some(if expired { "Expiring" } else { "Pending" }.into());
            Grant::Pending(format!(
                "the assignment is {}",
                other.unwrap_or("being made")
            ))
        }
    }))
}
