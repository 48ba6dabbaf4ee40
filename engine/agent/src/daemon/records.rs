//! The record sink: finishes deferred captures, stores records and publishes them to watchers.

use crate::capture::runner::{pending_profiles, Deferred, PendingProfile};
use huatuo_containers::Discovery;
use huatuo_dsl::output::Record;
use huatuo_dsl::value::Value;
use huatuo_http::watch::WatchHub;
use huatuo_storage::{Document, HostInfo, Storage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Everything the sink needs.
pub struct RecordSink {
    /// Host and region of every document.
    pub host: HostInfo,
    /// Where records are stored.
    pub storage: Arc<Storage>,
    /// Event subscribers.
    pub watch: Arc<WatchHub>,
    /// Container lookup for container-scoped profiles.
    pub discovery: Option<Arc<Discovery>>,
    /// Profiles that failed (the record is still stored, with the error).
    pub capture_errors: Arc<AtomicU64>,
}

impl RecordSink {
    /// Consumes records until the channel closes; once `stop` turns true, the records
    /// already queued are still stored and then the sink ends.
    pub async fn run(self, mut records: mpsc::Receiver<Record>, mut stop: watch::Receiver<bool>) {
        let sink = Arc::new(self);
        let mut closed = false;
        loop {
            let record = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop), if !closed => {
                    records.close();
                    closed = true;
                    continue;
                }
                record = records.recv() => record,
            };
            let Some(record) = record else { break };
            let sink = sink.clone();
            if pending_profiles(&record.data).is_empty() {
                sink.finish(record).await;
            } else {
                // Profiles take seconds: finish those records concurrently.
                tokio::spawn(async move { sink.finish(record).await });
            }
        }
    }

    async fn finish(self: Arc<Self>, mut record: Record) {
        for pending in pending_profiles(&record.data) {
            let cgroup = pending.container_id.as_ref().and_then(|id| {
                let snapshot = self.discovery.as_ref()?.snapshot().ok()?;
                let ids = snapshot.by_id(id)?.cgroup_ids;
                ids.v2
                    .map(|v2| (v2, true))
                    .or(ids.v1_cpu.map(|v1| (v1, false)))
            });
            let result = match pending.kind {
                Deferred::Profile => self.profile(&pending, cgroup, &mut record).await,
                Deferred::WaitRate => self.waitrate(&pending, cgroup).await,
            };
            let value = result.unwrap_or_else(|e| {
                self.capture_errors.fetch_add(1, Ordering::Relaxed);
                Value::Json(serde_json::json!({ "error": e }))
            });
            record.data.insert(pending.field, value);
            // The profiler's object, maps and symbol tables are freed: return their pages.
            super::heap::give_back();
        }
        let doc = Document::new(&record, &self.host, chrono::Local::now());
        let storage = self.storage.clone();
        let body = doc.body.clone();
        let _ = tokio::task::spawn_blocking(move || storage.store(&doc)).await;
        self.watch.publish(body);
    }

    /// Runs a profile; its folded stacks go into the record next to the flame data.
    async fn profile(
        &self,
        pending: &PendingProfile,
        cgroup: Option<(u64, bool)>,
        record: &mut Record,
    ) -> Result<Value, String> {
        let options = huatuo_bpf::profiler::ProfileOptions {
            duration: pending.duration,
            cgroup_id: cgroup.map_or(0, |c| c.0),
            cgroup_v2: cgroup.is_some_and(|c| c.1),
            ..Default::default()
        };
        let profile = tokio::task::spawn_blocking(move || huatuo_bpf::profiler::run(&options))
            .await
            .map_err(|e| e.to_string())??;
        let folded = profile.folded().into_iter().map(Value::Str).collect();
        record
            .data
            .insert("folded_stacks".into(), Value::List(folded));
        Ok(Value::Json(serde_json::json!(profile.flamedata())))
    }

    /// Watches which cgroups held the CPUs the container waited for, named as containers.
    async fn waitrate(
        &self,
        pending: &PendingProfile,
        cgroup: Option<(u64, bool)>,
    ) -> Result<Value, String> {
        let (cgroup_id, cgroup_v2) = cgroup.ok_or_else(|| {
            format!(
                "waitrate: no cgroup known for container {:?}",
                pending.container_id
            )
        })?;
        let options = huatuo_bpf::waitrate::WaitOptions {
            cgroup_id,
            cgroup_v2,
            duration: pending.duration,
        };
        let contention = tokio::task::spawn_blocking(move || huatuo_bpf::waitrate::run(&options))
            .await
            .map_err(|e| e.to_string())??;
        let snapshot = self.discovery.as_ref().and_then(|d| d.snapshot().ok());
        Ok(Value::Json(crate::capture::waitrate::competitors_json(
            &contention,
            |id| {
                let c = snapshot.as_ref()?.by_cgroup_id(id)?;
                Some((
                    c.id.clone(),
                    c.hostname.clone().unwrap_or_else(|| c.name.clone()),
                ))
            },
        )))
    }
}
