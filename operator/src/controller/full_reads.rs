//! Which reconciles make a resource's own reads — the calls made per resource, not shared through
//! the Organization snapshot: an account's or OU's tags, the baseline inside a member account.
//!
//! While change events arrive, the resync is the safety net for an event lost on the way. Its
//! structure part (parents, names, states, from the shared snapshot) costs a few calls per OU and
//! is compared at every resync; the own reads cost a call or more per resource (at 10,000 accounts,
//! ListTagsForResource alone is 21 minutes at its quota) and are made at every `every`-th resync
//! only. A resource makes them in any case when nothing is remembered for it (after a start), its
//! spec changed since, it was not settled (Ready, no drift left, no findings) after the last
//! one, or a change event named it. The cost: drift in tags or inside a member account whose event
//! is lost stays until that resource's next own read, at most `every` resync intervals.

use crate::reconcile::Key;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a resource last made its own reads, and the spec generation they were made for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LastRead {
    pub at: Instant,
    pub generation: Option<i64>,
}

/// Whether a reconcile makes the resource's own reads (pure; see the module).
pub fn due(
    last: Option<LastRead>,
    generation: Option<i64>,
    settled: bool,
    events_live: bool,
    resync: Duration,
    every: u32,
    now: Instant,
) -> bool {
    let Some(last) = last else { return true };
    // Resyncs come jittered ±10 %: half an interval of slack makes "every 3rd" the 3rd, not the 4th.
    let fresh_for = resync.mul_f64((every.max(1) as f64 - 0.5).max(0.0));
    !events_live
        || !settled
        || last.generation != generation
        || now.saturating_duration_since(last.at) >= fresh_for
}

/// What the controller remembers: in memory only, so a restart makes every resource read again.
#[derive(Default)]
pub struct FullReads {
    last: Mutex<HashMap<Key, LastRead>>,
}

impl FullReads {
    pub fn last(&self, key: &Key) -> Option<LastRead> {
        self.last.lock().expect("not poisoned").get(key).copied()
    }

    /// A reconcile made the own reads and left the resource settled.
    pub fn done(&self, key: &Key, generation: Option<i64>) {
        self.last.lock().expect("not poisoned").insert(
            key.clone(),
            LastRead {
                at: Instant::now(),
                generation,
            },
        );
    }

    /// The next reconcile of this resource makes its own reads (a change event named it, it is
    /// not settled, it is gone).
    pub fn forget(&self, key: &Key) {
        self.last.lock().expect("not poisoned").remove(key);
    }
}

/// Ready, no drift left to report, no security findings: what a reconcile without own reads may
/// assume still holds.
pub fn settled(status: &serde_json::Value) -> bool {
    let conditions = status["conditions"].as_array();
    let is = |t: &str, v: &str| {
        conditions
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == v)
    };
    is("Ready", "True")
        && !is("SecurityFindings", "True")
        && status["drift"].as_array().is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_reads_are_due_by_table() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let read = |ago_min: u64, generation| {
            Some(LastRead {
                at: now - Duration::from_secs(ago_min * 60),
                generation: Some(generation),
            })
        };
        // (case, last, generation now, settled, events live, every, due)
        let table = [
            ("nothing remembered (a start)", None, 1, true, true, 3, true),
            (
                "read an hour ago, every 3rd",
                read(60, 1),
                1,
                true,
                true,
                3,
                false,
            ),
            (
                "two resyncs ago (early jitter)",
                read(108, 1),
                1,
                true,
                true,
                3,
                false,
            ),
            (
                "three resyncs ago (early jitter)",
                read(150, 1),
                1,
                true,
                true,
                3,
                true,
            ),
            ("spec changed since", read(60, 1), 2, true, true, 3, true),
            ("not settled", read(60, 1), 1, false, true, 3, true),
            (
                "polling: no events to rely on",
                read(60, 1),
                1,
                true,
                false,
                3,
                true,
            ),
            ("every resync", read(54, 1), 1, true, true, 1, true),
            (
                "a moment ago, every resync",
                read(1, 1),
                1,
                true,
                true,
                1,
                false,
            ),
        ];
        for (case, last, generation, settled, live, every, want) in table {
            assert_eq!(
                due(last, Some(generation), settled, live, hour, every, now),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn settled_needs_ready_and_nothing_outstanding() {
        let ready = json!({"type": "Ready", "status": "True"});
        let table = [
            (json!({"conditions": [ready]}), true),
            (json!({"conditions": [ready], "drift": []}), true),
            (
                json!({"conditions": [{"type": "Ready", "status": "False"}]}),
                false,
            ),
            (json!({}), false),
            (
                json!({"conditions": [ready], "drift": [{"field": "tags.team"}]}),
                false,
            ),
            (
                json!({"conditions": [ready, {"type": "SecurityFindings", "status": "True"}]}),
                false,
            ),
            (
                json!({"conditions": [ready, {"type": "SecurityFindings", "status": "False"}]}),
                true,
            ),
        ];
        for (status, want) in table {
            assert_eq!(settled(&status), want, "{status}");
        }
    }

    #[test]
    fn forgetting_makes_the_next_reconcile_read() {
        let reads = FullReads::default();
        let key = Key::new(crate::reconcile::Kind::AwsAccount, "a");
        reads.done(&key, Some(1));
        assert!(reads.last(&key).is_some());
        reads.forget(&key);
        assert_eq!(reads.last(&key), None);
    }
}
