//! Kubernetes Events, aggregated as client-go aggregates them: a repeat of the same Event (same
//! object, type, reason, action **and note**) within kube-runtime's cache window becomes a series
//! on the first (`(x3 over 2m)` in `kubectl describe`); a new note is a new Event.
//!
//! kube-runtime's `Recorder` keys its cache without the note (its doc comment says the note is
//! part of the key; its code leaves it out), so a second `Granted` Event with the next grant's
//! deadline, or a drift Event naming other fields, would only bump the count of the first and
//! keep the first's note. client-go's events/v1 broadcaster keys with the note
//! (kubernetes/kubernetes#112365). Here one `Recorder` per object, type, reason and action is
//! kept with the note it last published; a different note gets a fresh `Recorder`, so a new Event.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a series is continued: kube-runtime's own cache window (6 minutes).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

pub struct Events {
    client: Client,
    reporter: Reporter,
    /// By object, type, reason and action: the note last published, its recorder, when.
    recent: Mutex<HashMap<String, (String, Recorder, Instant)>>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Events {
            client,
            reporter,
            recent: Mutex::default(),
        }
    }

    pub async fn publish(&self, ev: &Event, reference: &ObjectReference) -> kube::Result<()> {
        let key = format!(
            "{:?}/{}/{}/{}/{:?}/{}/{}",
            ev.type_,
            reference.kind.as_deref().unwrap_or_default(),
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default(),
            reference.uid,
            ev.reason,
            ev.action
        );
        let note = ev.note.clone().unwrap_or_default();
        let recorder = {
            let mut recent = self.recent.lock().await;
            let now = Instant::now();
            recent.retain(|_, (_, _, at)| now.duration_since(*at) < SERIES_WINDOW);
            let entry = recent.entry(key).or_insert_with(|| {
                (
                    note.clone(),
                    Recorder::new(self.client.clone(), self.reporter.clone()),
                    now,
                )
            });
            if entry.0 != note {
                *entry = (
                    note,
                    Recorder::new(self.client.clone(), self.reporter.clone()),
                    now,
                );
            }
            entry.2 = now;
            entry.1.clone()
        };
        recorder.publish(ev, reference).await
    }
}
