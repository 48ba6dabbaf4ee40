//! Reverse DNS for records (`reverse_dns(ip, enabled)`): names come from a bounded cache that
//! a small pool of worker threads fills through the system resolver (getnameinfo: /etc/hosts,
//! then DNS as /etc/nsswitch.conf says). The evaluator never waits: an address not in the cache
//! yet is queued and reads as an empty string, and later records of that address get its name.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Most addresses kept in the cache; the oldest entry goes when it is full.
pub const CACHE_ENTRIES: usize = 4096;
/// How long a resolved name is served before it is looked up again.
pub const NAME_TTL: Duration = Duration::from_secs(600);
/// How long a failed lookup (no name) is remembered before it is tried again.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);
/// Addresses waiting for a worker; more are refused (counted) and retried on a later record.
pub const QUEUE_DEPTH: usize = 256;
/// Worker threads doing lookups: each lookup blocks one for at most the resolver's own
/// timeout (resolv.conf `timeout`×`attempts`), never the evaluator.
pub const WORKERS: usize = 2;

/// What the resolver did, for the agent's self-metrics.
#[derive(Debug, Default)]
pub struct RdnsCounters {
    /// Lookups that found a name.
    pub resolved: AtomicU64,
    /// Lookups that found none (or failed).
    pub failed: AtomicU64,
    /// Addresses not queued because the queue was full.
    pub queue_full: AtomicU64,
}

/// The shared resolver's counters (zero until a rule calls `reverse_dns`).
pub fn global_counters() -> Arc<RdnsCounters> {
    static COUNTERS: OnceLock<Arc<RdnsCounters>> = OnceLock::new();
    COUNTERS.get_or_init(Arc::default).clone()
}

struct Entry {
    name: String,
    at: Instant,
    ttl: Duration,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<IpAddr, Entry>,
    pending: HashSet<IpAddr>,
}

/// The process-wide resolver: cache, queue and workers.
pub struct Resolver {
    cache: Arc<Mutex<Cache>>,
    queue: SyncSender<IpAddr>,
    counters: Arc<RdnsCounters>,
}

impl Resolver {
    /// The shared resolver, its workers started on first use.
    pub fn global() -> &'static Resolver {
        static GLOBAL: OnceLock<Resolver> = OnceLock::new();
        GLOBAL.get_or_init(|| Resolver::start(lookup, global_counters()))
    }

    fn start(lookup: fn(IpAddr) -> Option<String>, counters: Arc<RdnsCounters>) -> Resolver {
        let (queue, rx) = sync_channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let cache = Arc::new(Mutex::new(Cache::default()));
        for i in 0..WORKERS {
            let (rx, cache, counters) = (rx.clone(), cache.clone(), counters.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("rdns-{i}"))
                .spawn(move || work(&rx, &cache, &counters, lookup));
            if let Err(e) = spawned {
                log::warn!("reverse DNS: cannot start a worker: {e}");
            }
        }
        Resolver {
            cache,
            queue,
            counters,
        }
    }

    /// The cached name of `ip`: empty while unknown (the lookup is then queued) or when it
    /// has no name; a stale name is served while it is looked up again.
    pub fn name(&self, ip: IpAddr) -> String {
        let Ok(mut cache) = self.cache.lock() else {
            return String::new();
        };
        let (name, fresh) = match cache.entries.get(&ip) {
            Some(e) => (e.name.clone(), e.at.elapsed() < e.ttl),
            None => (String::new(), false),
        };
        if !fresh && !cache.pending.contains(&ip) {
            match self.queue.try_send(ip) {
                Ok(()) => {
                    cache.pending.insert(ip);
                }
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        name
    }

    /// The resolver's counters.
    pub fn counters(&self) -> &RdnsCounters {
        &self.counters
    }
}

fn work(
    rx: &Mutex<Receiver<IpAddr>>,
    cache: &Mutex<Cache>,
    counters: &RdnsCounters,
    lookup: fn(IpAddr) -> Option<String>,
) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(ip) = next else { return };
        let name = lookup(ip);
        let counter = if name.is_some() {
            &counters.resolved
        } else {
            &counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let Ok(mut cache) = cache.lock() else { return };
        cache.pending.remove(&ip);
        if cache.entries.len() >= CACHE_ENTRIES && !cache.entries.contains_key(&ip) {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, e)| e.at)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                cache.entries.remove(&oldest);
            }
        }
        let ttl = if name.is_some() {
            NAME_TTL
        } else {
            FAILURE_TTL
        };
        cache.entries.insert(
            ip,
            Entry {
                name: name.unwrap_or_default(),
                at: Instant::now(),
                ttl,
            },
        );
    }
}

/// getnameinfo with NI_NAMEREQD: a name, or None when the address has none.
fn lookup(ip: IpAddr) -> Option<String> {
    dns_lookup::lookup_addr(&ip).ok().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(ip: IpAddr) -> Option<String> {
        (ip == IpAddr::from([192, 0, 2, 1])).then(|| "fake.example".to_string())
    }

    fn wait_for(r: &Resolver, ip: IpAddr, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let name = r.name(ip);
            if name == want || Instant::now() > deadline {
                return name;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn first_read_is_empty_then_the_name_is_cached() {
        let r = Resolver::start(fake, Arc::default());
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(r.name(ip), "");
        assert_eq!(wait_for(&r, ip, "fake.example"), "fake.example");
        assert_eq!(r.counters().resolved.load(Ordering::Relaxed), 1);
        // Served from the cache: no second lookup.
        assert_eq!(r.name(ip), "fake.example");
        assert_eq!(r.counters().resolved.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_address_without_a_name_stays_empty_and_is_counted() {
        let r = Resolver::start(fake, Arc::default());
        let ip = IpAddr::from([192, 0, 2, 9]);
        assert_eq!(r.name(ip), "");
        let deadline = Instant::now() + Duration::from_secs(5);
        while r.counters().failed.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(r.counters().failed.load(Ordering::Relaxed), 1);
        assert_eq!(r.name(ip), "");
    }

    #[test]
    fn the_builtin_is_missing_when_disabled_and_empty_for_a_non_address() {
        use crate::funcs::{call_pure, Pure};
        use huatuo_dsl::value::Value;
        let ip = Value::Str("127.0.0.1".into());
        let off = call_pure(Pure::ReverseDns, &[ip, Value::Bool(false)]);
        assert_eq!(off, Ok(Value::Null));
        let junk = Value::Str("not-an-ip".into());
        let on = call_pure(Pure::ReverseDns, &[junk, Value::Bool(true)]);
        assert_eq!(on, Ok(Value::Str(String::new())));
        let wrong = call_pure(Pure::ReverseDns, &[Value::Int(1), Value::Bool(true)]);
        assert!(wrong.unwrap_err().contains("reverse_dns"));
    }

    #[test]
    fn the_system_resolver_reads_etc_hosts() {
        assert_eq!(
            lookup(IpAddr::from([127, 0, 0, 1])).as_deref(),
            Some("localhost")
        );
    }
}
