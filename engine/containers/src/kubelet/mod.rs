//! Pod enrichment from the kubelet: a background refresher keeps the last good pod list in
//! a [`PodStore`]; discovery reads it without ever waiting on the network.

mod client;
mod model;
mod presence;
mod tls;

pub use client::{split_cert_path, KubeletClient, KubeletConfig, KubeletError};
pub use model::PodSnapshot;
pub use presence::Presence;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters of kubelet fetches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodStoreStats {
    /// Successful fetches.
    pub fetches: u64,
    /// Fetches that found no kubelet (refused, timeout, TLS handshake or files, HTTP status).
    pub unreachable: u64,
    /// Answers that were not a pod list (or too large).
    pub malformed: u64,
    /// Checks that found no socket listening on a kubelet port, so made no request.
    pub absent: u64,
}

/// The last good pod list and the fetch counters; shared between the refresher thread and
/// discovery.
#[derive(Debug, Default)]
pub struct PodStore {
    current: RwLock<Option<Arc<PodSnapshot>>>,
    fetches: AtomicU64,
    unreachable: AtomicU64,
    malformed: AtomicU64,
    absent: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl PodStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last good pod list, if any fetch has succeeded.
    pub fn current(&self) -> Option<Arc<PodSnapshot>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fetches once through `client` and records the outcome; the previous snapshot is kept
    /// when the fetch fails.
    pub fn refresh(&self, client: &KubeletClient) -> Result<(), KubeletError> {
        match client.fetch() {
            Ok(snapshot) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(snapshot));
                self.fetches.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let counter = match e {
                    KubeletError::Malformed { .. } => &self.malformed,
                    _ => &self.unreachable,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Fetch counters.
    pub fn stats(&self) -> PodStoreStats {
        PodStoreStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            unreachable: self.unreachable.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            absent: self.absent.load(Ordering::Relaxed),
        }
    }

    /// The message of the last failed fetch.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Refresh timing: every `interval` after a success; after failures, `initial_backoff`
/// doubling up to `max_backoff`; every `absent_recheck` while no kubelet port listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Delay between successful fetches.
    pub interval: Duration,
    /// Delay after the first failure.
    pub initial_backoff: Duration,
    /// Upper bound of the delay after repeated failures.
    pub max_backoff: Duration,
    /// Delay between two looks at the socket tables while no kubelet port listens.
    pub absent_recheck: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            absent_recheck: Duration::from_secs(60),
        }
    }
}

impl RefreshPolicy {
    /// The delay before the next fetch after `failures` consecutive failures (0 = success).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.interval;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// What the refresher remembers between turns.
#[derive(Debug, Default)]
struct Streak {
    /// Consecutive failed fetches.
    failures: u32,
    /// The last turn found no kubelet port listening.
    absent: bool,
}

impl Streak {
    /// One turn: fetches when a kubelet may answer, and returns the wait before the next.
    fn turn(
        &mut self,
        client: &KubeletClient,
        store: &PodStore,
        policy: &RefreshPolicy,
    ) -> Duration {
        if !client.config().may_answer() {
            // Not a Kubernetes node (or its kubelet is down): no connection at all.
            store.absent.fetch_add(1, Ordering::Relaxed);
            if !self.absent {
                log::info!(
                    "no kubelet listening on this node: pods are not requested (looked for again every {:?}); container names stay cgroup-only",
                    policy.absent_recheck
                );
            }
            self.absent = true;
            return policy.absent_recheck;
        }
        self.absent = false;
        match store.refresh(client) {
            Ok(()) => self.failures = 0,
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                // The first failure of a streak is a warning; retries are counted in the
                // store's stats and logged at debug, so a failing kubelet does not fill the log.
                let delay = policy.delay(self.failures);
                if self.failures == 1 {
                    log::warn!("kubelet pods: {e} (retrying with backoff, next in {delay:?}; container names stay cgroup-only meanwhile)");
                } else {
                    log::debug!("kubelet pods: {e} (retry in {delay:?})");
                }
            }
        }
        policy.delay(self.failures)
    }
}

/// The background refresher; stops and joins its thread when dropped.
pub struct KubeletWatcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KubeletWatcher {
    /// Starts refreshing `store` from the kubelet. Returns `Ok(None)` when the kubelet is
    /// disabled (both ports 0); fails only when the thread cannot be started.
    pub fn spawn(
        config: KubeletConfig,
        policy: RefreshPolicy,
        store: Arc<PodStore>,
    ) -> Result<Option<Self>, KubeletError> {
        let client = match KubeletClient::new(config) {
            Ok(c) => c,
            Err(KubeletError::Disabled) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kubelet-pods".to_string())
            .spawn(move || {
                let mut streak = Streak::default();
                loop {
                    let delay = streak.turn(&client, &store, &policy);
                    match stopped.recv_timeout(delay) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
            })
            .map_err(|e| KubeletError::Unreachable {
                url: "kubelet-pods thread".to_string(),
                message: e.to_string(),
            })?;
        Ok(Some(Self {
            stop: Some(stop),
            thread: Some(thread),
        }))
    }
}

impl Drop for KubeletWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RefreshPolicy::default();
        assert_eq!(p.delay(0), Duration::from_secs(30));
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(4), Duration::from_secs(8));
        assert_eq!(p.delay(9), Duration::from_secs(256));
        assert_eq!(p.delay(10), Duration::from_secs(300));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn cert_path_forms() {
        assert_eq!(
            split_cert_path("/a.crt, /a.key"),
            (Some("/a.crt".into()), Some("/a.key".into()))
        );
        assert_eq!(
            split_cert_path("/both.pem"),
            (Some("/both.pem".into()), Some("/both.pem".into()))
        );
        assert_eq!(split_cert_path(""), (None, None));
    }
}
