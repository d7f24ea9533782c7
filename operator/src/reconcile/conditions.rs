//! Conditions and the common status fields, computed from a reconcile's result (pure).

use super::{Error, Progress, Readiness};
use crate::api::CommonStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";

/// Sets a condition, keeping `lastTransitionTime` unless the status flips (kstatus).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: transition,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Folds a reconcile result into the common status fields.
pub fn update_common(
    common: &mut CommonStatus,
    result: &Result<Progress, Error>,
    generation: Option<i64>,
    now: &Time,
) {
    let conds = &mut common.conditions;
    match result {
        Ok(p) => {
            match &p.ready {
                Readiness::Ready { reason, message } => {
                    set_condition(conds, READY, true, reason, message, generation, now)
                }
                Readiness::NotReady { reason, message } => {
                    set_condition(conds, READY, false, reason, message, generation, now)
                }
            }
            set_condition(
                conds,
                SYNCED,
                true,
                "ReconcileSuccess",
                "AWS was read and the plan carried out",
                generation,
                now,
            );
            common.drift = p.remaining.clone();
        }
        Err(e) => {
            let message = e.to_string();
            if matches!(e, Error::WaitingForDependency { .. })
                || !conds.iter().any(|c| c.type_ == READY)
            {
                set_condition(conds, READY, false, e.reason(), &message, generation, now);
            }
            set_condition(conds, SYNCED, false, e.reason(), &message, generation, now);
        }
    }
    common.drift_count = common.drift.len() as i32;
    common.observed_generation = generation;
    common.last_sync_time = Some(now.0.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let mut conds = Vec::new();
        set_condition(&mut conds, READY, false, "Creating", "m", Some(1), &t(10));
        set_condition(&mut conds, READY, false, "Creating", "m2", Some(1), &t(20));
        assert_eq!(
            conds[0].last_transition_time,
            t(10),
            "same status keeps the time"
        );
        assert_eq!(conds[0].message, "m2");
        set_condition(&mut conds, READY, true, "Available", "ok", Some(2), &t(30));
        assert_eq!(
            conds[0].last_transition_time,
            t(30),
            "a flip takes the new time"
        );
        assert_eq!(conds.len(), 1);
    }

    #[test]
    fn an_error_keeps_ready_but_marks_synced_false() {
        let mut common = CommonStatus::default();
        let ok = Ok(Progress::ready("Available", "in sync"));
        update_common(&mut common, &ok, Some(1), &t(1));
        let err: Result<Progress, Error> = Err(Error::conflict(
            "OrganizationalUnitNotEmpty",
            "holds 2 accounts",
        ));
        update_common(&mut common, &err, Some(1), &t(2));
        let ready = common.conditions.iter().find(|c| c.type_ == READY).unwrap();
        let synced = common
            .conditions
            .iter()
            .find(|c| c.type_ == SYNCED)
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(synced.status, "False");
        assert_eq!(synced.reason, "OrganizationalUnitNotEmpty");
    }

    #[test]
    fn waiting_for_a_dependency_is_not_ready() {
        let mut common = CommonStatus::default();
        let err: Result<Progress, Error> = Err(Error::WaitingForDependency {
            kind: "OrganizationalUnit",
            name: "workloads".into(),
            why: "it has no id yet".into(),
        });
        update_common(&mut common, &err, Some(1), &t(1));
        let ready = common.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "WaitingForDependency")
        );
    }
}
