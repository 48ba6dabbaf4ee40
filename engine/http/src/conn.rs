//! Serving connections within bounds: at most `max_connections` at once (a newcomer displaces
//! the oldest connection that never completed a request's headers, else is refused), a
//! header-read timeout, an idle timeout, optional TLS, accept errors (EMFILE) backed off, and a
//! shutdown that ends within a grace period whatever the clients do.

use crate::auth::Peer;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// Largest buffer hyper keeps per connection (request line and headers must fit).
const MAX_BUF: usize = 64 * 1024;
/// Longest pause after failed accepts (EMFILE, ENFILE, ENOMEM).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Least time between two logged accept errors.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Evicted connections allowed to still be closing before accepting pauses: their tasks close
/// them asynchronously, and a flood of newcomers must not outrun them and pile up open files.
const CLOSING_SLACK: usize = 16;

/// The bounds the server holds every connection to.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a request's headers (and for the TLS handshake); also how long a kept-alive
    /// connection may wait for its next request.
    pub header_read_timeout: Duration,
    /// A connection with nothing read or written for this long is closed.
    pub idle_timeout: Duration,
    /// How long open connections may take to finish once the server stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// What happened to connections, exported in `/metrics`.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at once because every slot held a connection serving requests.
    pub refused: AtomicU64,
    /// Connections that never completed a request, closed to make room for a newcomer.
    pub evicted: AtomicU64,
    /// Connections closed after `idle_timeout` without traffic.
    pub idle_closed: AtomicU64,
    /// Failed accepts (EMFILE and the like).
    pub accept_errors: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: AtomicU64,
}

/// A listening socket with the bounds and TLS setup it is served with.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// Connection bounds.
    pub limits: ConnLimits,
    /// TLS configuration; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Counters the server updates.
    pub counters: Arc<ConnCounters>,
}

impl Listener {
    /// Plain HTTP on `socket` with the default bounds.
    pub fn plain(socket: TcpListener) -> Self {
        Listener {
            socket,
            limits: ConnLimits::default(),
            tls: None,
            counters: Arc::default(),
        }
    }
}

/// One registered connection.
#[derive(Debug, Default)]
struct Slot {
    /// A request's headers arrived on it.
    requested: AtomicBool,
    /// Told to close to make room.
    evict: Notify,
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Registry {
    next: u64,
    slots: BTreeMap<u64, Arc<Slot>>,
}

impl Registry {
    /// Registers a newcomer, displacing the oldest connection without a request when full;
    /// `None` when every slot serves requests.
    fn admit(&mut self, max: usize, counters: &ConnCounters) -> Option<(u64, Arc<Slot>)> {
        if self.slots.len() >= max {
            let victim = self
                .slots
                .iter()
                .find(|(_, s)| !s.requested.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some(slot) = self.slots.remove(&victim) {
                slot.evict.notify_one();
                counters.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next;
        self.next += 1;
        let slot = Arc::new(Slot::default());
        self.slots.insert(id, slot.clone());
        Some((id, slot))
    }
}

/// Everything a connection task needs.
struct Shared {
    routes: BoxedFilter<(Response,)>,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    counters: Arc<ConnCounters>,
    registry: Mutex<Registry>,
}

/// Serves `routes` on `listener` until `shutdown` resolves, then gives open connections
/// `shutdown_grace` to finish (they are told to close) and drops the rest.
pub async fn run(
    listener: Listener,
    routes: BoxedFilter<(Response,)>,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared {
        routes,
        limits: listener.limits,
        tls: listener.tls.map(tokio_rustls::TlsAcceptor::from),
        counters: listener.counters,
        registry: Mutex::new(Registry::default()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    let mut last_log: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            // The kernel's backlog holds newcomers while evicted connections finish closing.
            accepted = listener.socket.accept(),
                if tasks.len() < shared.limits.max_connections + CLOSING_SLACK => match accepted {
                Ok((stream, addr)) => {
                    backoff = Duration::ZERO;
                    let admitted = shared
                        .registry
                        .lock()
                        .ok()
                        .and_then(|mut r| r.admit(shared.limits.max_connections, &shared.counters));
                    // Refused: the stream is dropped, which closes it.
                    if let Some((id, slot)) = admitted {
                        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                        let task = connection(shared.clone(), stream, addr, id, slot, stop_rx.clone());
                        tasks.spawn(task);
                    }
                }
                Err(e) => {
                    shared.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                        log::warn!("HTTP accept failed: {e} (backing off)");
                        last_log = Some(Instant::now());
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    tokio::time::sleep(backoff).await;
                }
            },
        }
    }
    drop(listener.socket);
    let _ = stop_tx.send(true);
    let open = tasks.len();
    let drained = tokio::time::timeout(shared.limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log::warn!(
            "HTTP server: {} of {open} connections still open after {:?}, closing them",
            tasks.len(),
            shared.limits.shutdown_grace
        );
        tasks.shutdown().await;
    }
}

/// Removes a connection from the registry and the open count when its task ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.counters.open.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut registry) = self.shared.registry.lock() {
            registry.slots.remove(&self.id);
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: std::net::SocketAddr,
    id: u64,
    slot: Arc<Slot>,
    stop: watch::Receiver<bool>,
) {
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let _registered = Registered {
        shared: &shared,
        id,
    };
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = shared.tls.clone() else {
        let peer = Peer {
            addr,
            verified_cert: false,
        };
        return serve(&shared, stream, peer, &slot, stop).await;
    };
    let handshake = tokio::select! {
        _ = slot.evict.notified() => return,
        done = tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(stream)) => done,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let peer = Peer {
                addr,
                // The verifier refuses a handshake with an unverified certificate.
                verified_cert: stream.get_ref().1.peer_certificates().is_some(),
            };
            serve(&shared, stream, peer, &slot, stop).await;
        }
        Ok(Err(e)) => {
            shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
            log::debug!("TLS handshake with {addr} failed: {e}");
        }
        Err(_) => {
            shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn serve<I>(
    shared: &Shared,
    io: I,
    peer: Peer,
    slot: &Arc<Slot>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = Tracked {
        inner: io,
        activity: activity.clone(),
    };
    let routes = shared.routes.clone();
    let requested = slot.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        requested.requested.store(true, Ordering::Relaxed);
        request.extensions_mut().insert(peer);
        let mut service = warp::service(routes.clone());
        tower_service::Service::call(&mut service, request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let idle = shared.limits.idle_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(100)));
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    log::debug!("HTTP connection from {}: {e}", peer.addr);
                }
                return;
            }
            _ = slot.evict.notified() => return,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = tick.tick() => {
                if activity.idle_for() >= idle {
                    shared.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// When a connection last moved bytes.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// An IO stream that records when bytes last moved.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
