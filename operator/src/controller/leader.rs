//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both write to AWS.
//!
//! Acquire and renew are compare-and-swap replaces (the Lease's resourceVersion), so two
//! candidates can never both believe they hold it. Whether another replica's lease has expired
//! is judged by this process's own monotonic clock — how long the Lease has gone unchanged since
//! this process saw it change — never by comparing the other pod's `renewTime` with the local
//! wall clock, so clock skew between nodes cannot hand the lease over early (as client-go does).
//!
//! The lease alone cannot stop a paused leader from writing when it resumes: the AWS clients'
//! [`crate::aws::pacing::Fence`] does, opened only until shortly before the lease could expire.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::time::Duration;

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    pub identity: String,
    pub duration: Duration,
    /// The Lease's resourceVersion when this process last saw it change, and when.
    observed: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

impl LeaseLock {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            observed: Default::default(),
        }
    }

    fn spec(&self, now: Timestamp, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Takes the lease if it is free or expired, renews it if held: true while this process leads.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, 0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == self.identity;
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_for = {
            let mut observed = self.observed.lock().expect("not poisoned");
            match observed.as_ref() {
                Some((v, at)) if *v == version => at.elapsed(),
                _ => {
                    *observed = Some((version, std::time::Instant::now()));
                    Duration::ZERO
                }
            }
        };
        let lease_for = Duration::from_secs(
            spec.lease_duration_seconds
                .unwrap_or(self.duration.as_secs() as i32)
                .max(0) as u64,
        );
        let expired = spec.renew_time.is_none() || unchanged_for > lease_for;
        if !held_by_me && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!held_by_me);
        let acquired = if held_by_me {
            spec.acquire_time.clone()
        } else {
            None
        };
        lease.spec = Some(self.spec(now, transitions, acquired));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone else renewed or took it between our read and write.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (on graceful shutdown), so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        if let Some(mut lease) = self.api.get_opt(&self.name).await?
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?;
        }
        Ok(())
    }
}
