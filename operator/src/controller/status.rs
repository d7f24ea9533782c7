//! Status through server-side apply on `/status`, under one field manager, and only when it changed.

use crate::reconcile::{Key, StatusSink};
use async_trait::async_trait;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

pub const FIELD_MANAGER: &str = "landing-zone-operator";

pub struct KubeStatusSink {
    pub client: Client,
    pub metrics: crate::metrics::Metrics,
}

#[async_trait]
impl StatusSink for KubeStatusSink {
    async fn save(&self, key: &Key, status: &Value) -> Result<(), String> {
        let ar = key.kind.api_resource();
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let patch = json!({ "apiVersion": ar.api_version, "kind": ar.kind, "status": status });
        api.patch_status(
            &key.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| e.to_string())?;
        self.metrics
            .status_writes
            .with_label_values(&[key.kind.as_str()])
            .inc();
        Ok(())
    }
}
