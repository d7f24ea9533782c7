//! The one reconcile driver. A kind says what its spec asks for, what AWS has, what to do about
//! the difference (a pure plan of typed actions), how to carry out one action, and how it stands;
//! the driver does the rest, once for every kind: management-policy and plan-mode gating, the
//! apply loop and its write count, drift (found, and left after the pass), and readiness.
//!
//! In the manner of Crossplane's managed reconciler (Observe / Create / Update / Delete against an
//! external client), but with the plan as data: what a pass would do is the same list whether it
//! is carried out (`apply`), only shown (`plan`) or held back (`managementPolicy: Observe`).

use super::{Error, KindSpec, Mode, Pass, Progress, Readiness};
use crate::api::{Drift, ManagementPolicy};
use std::fmt::Display;
use std::future::Future;

/// What a kind's plan says.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<A> {
    /// What to do, in the order AWS needs it.
    pub actions: Vec<A>,
    /// Where AWS differs from the spec.
    pub drift: Vec<Drift>,
    /// Drift the actions leave as it is (a person must confirm it, or the spec lets it be): still
    /// drift after the pass.
    pub kept: Vec<Drift>,
    /// What the pass found that is no action, for a person (e.g. "adopt existing OU ou-1").
    pub notes: Vec<String>,
}

impl<A> Plan<A> {
    pub fn new(actions: Vec<A>, drift: Vec<Drift>) -> Self {
        Plan {
            actions,
            drift,
            kept: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// What a carried-out action came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// Done: one AWS write.
    Done,
    /// Not done, and nothing written: AWS (or the endpoint) cannot do it; this drift stays.
    Left(Vec<Drift>),
}

/// What the pass did, for the kind's readiness.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The plan was carried out (apply mode, managed).
    pub wrote: bool,
    /// AWS writes made.
    pub writes: usize,
    /// Drift that actions could not undo ([`Applied::Left`]).
    pub left: Vec<Drift>,
}

/// A kind, in the pieces the driver needs.
pub trait Reconciler: KindSpec {
    type Desired: Send + Sync;
    type Observed: Send + Sync;
    type Action: Display + Send + Sync;
    /// What the actions of one pass note for the next ones and for `finish` (e.g. how many
    /// requests are outstanding); `()` for most kinds.
    type Scratch: Default + Send + Sync;

    fn management_policy(&self) -> ManagementPolicy;

    /// Whether the operator may change this resource in AWS (`managementPolicy: Manage`, unless
    /// what was observed says otherwise, e.g. a group synced from an external identity provider).
    fn manages(&self, _observed: &Self::Observed) -> bool {
        self.management_policy() == ManagementPolicy::Manage
    }

    /// What the spec asks for, references resolved to AWS ids.
    fn desired(&self, pass: &Pass) -> Result<Self::Desired, Error>;

    /// What AWS has.
    fn observe(
        &self,
        desired: &Self::Desired,
        pass: &Pass,
    ) -> impl Future<Output = Result<Self::Observed, Error>> + Send;

    /// The difference, as actions (pure).
    fn plan(
        desired: &Self::Desired,
        observed: &Self::Observed,
    ) -> Result<Plan<Self::Action>, Error>;

    /// Records what was observed in status, before anything is written.
    fn record(&mut self, desired: &Self::Desired, observed: &Self::Observed, writes: bool);

    /// Carries out one action, recording in status what it made.
    fn apply(
        &mut self,
        action: &Self::Action,
        desired: &Self::Desired,
        observed: &Self::Observed,
        scratch: &mut Self::Scratch,
        pass: &mut Pass,
    ) -> impl Future<Output = Result<Applied, Error>> + Send;

    /// How the resource stands after the pass (status completed; a kind may read back what its
    /// writes made).
    fn finish(
        &mut self,
        desired: &Self::Desired,
        observed: &Self::Observed,
        plan: &Plan<Self::Action>,
        outcome: &Outcome,
        scratch: Self::Scratch,
        pass: &Pass,
    ) -> impl Future<Output = Result<Readiness, Error>> + Send;
}

/// Observe → plan → (apply) for any kind.
pub async fn reconcile<K: Reconciler>(
    resource: &mut K,
    pass: &mut Pass,
) -> Result<Progress, Error> {
    let desired = resource.desired(pass)?;
    let observed = resource.observe(&desired, pass).await?;
    let plan = K::plan(&desired, &observed)?;
    let manages = resource.manages(&observed);
    let writes = pass.mode == Mode::Apply && manages;
    resource.record(&desired, &observed, writes);
    let mut outcome = Outcome {
        wrote: writes,
        ..Outcome::default()
    };
    let mut progress = Progress {
        // What is done (apply) or would be (plan); none where the operator may not write.
        actions: plan
            .notes
            .iter()
            .cloned()
            .chain(
                plan.actions
                    .iter()
                    .filter(|_| manages)
                    .map(ToString::to_string),
            )
            .collect(),
        writes: 0,
        drift: plan.drift.clone(),
        remaining: Vec::new(),
        ready: Readiness::Ready {
            reason: "Available",
            message: String::new(),
        },
    };
    let mut scratch = K::Scratch::default();
    if writes {
        for action in &plan.actions {
            match resource
                .apply(action, &desired, &observed, &mut scratch, pass)
                .await?
            {
                Applied::Done => {
                    progress.writes += 1;
                    outcome.writes += 1;
                }
                Applied::Left(drift) => outcome.left.extend(drift),
            }
        }
        progress.remaining = plan.kept.iter().chain(&outcome.left).cloned().collect();
    } else {
        progress.remaining = plan.drift.clone();
    }
    progress.ready = resource
        .finish(&desired, &observed, &plan, &outcome, scratch, pass)
        .await?;
    Ok(progress)
}
