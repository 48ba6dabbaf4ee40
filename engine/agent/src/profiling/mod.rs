//! Continuous profiling: always-on CPU and off-CPU profiles of the host, its containers and
//! chosen processes, kept in memory for `GET /v1/profiles` (pprof or folded stacks) and
//! pushed to Pyroscope.

pub mod continuous;
pub mod packed;
pub mod pprof;
pub mod pyroscope;
pub mod store;

use continuous::ProfilingShared;
use huatuo_http::api::profiles::{ProfileQuery, ProfilesFn};
use std::sync::Arc;

/// The `GET /v1/profiles` answer over the running profiler's store.
pub fn profiles_fn(shared: Arc<ProfilingShared>) -> ProfilesFn {
    Arc::new(move |query: &ProfileQuery| {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        // A panic while holding the lock leaves whole profiles behind: still servable.
        let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        store.query(query, now)
    })
}
