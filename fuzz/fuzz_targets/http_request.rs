//! Fuzzes what a network client sends first: arbitrary bytes as a request line, headers and
//! body, written to the real API server on a loopback socket. The server must answer or close
//! the connection, never panic; a panic in a connection task aborts the process here.
#![no_main]

use huatuo_http::api::error::ApiError;
use huatuo_http::api::operations::{Control, Executor, Finished, Limits, Operations};
use huatuo_http::api::request::OperationRequest;
use huatuo_http::api::NodeApi;
use huatuo_http::auth::Auth;
use huatuo_http::body::BodyLimits;
use huatuo_http::conn::Listener;
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{bind, serve, ApiState};
use huatuo_http::watch::WatchHub;
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Admits no operation: the target fuzzes request parsing, not executors.
struct NoExecutor;

impl Executor for NoExecutor {
    fn admit(&self, _: &OperationRequest) -> Result<(), ApiError> {
        Err(ApiError::not_implemented("no executor in the fuzz target"))
    }

    fn run(&self, _: &OperationRequest, _: &Control) -> Result<Finished, String> {
        Err("no executor in the fuzz target".into())
    }
}

/// The address of one server started for the whole run.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let state = ApiState {
                    metrics: Arc::new(MetricStore::new(Default::default(), 100)),
                    watch: Arc::new(WatchHub::new(4, 16)),
                    status: Arc::new(|| serde_json::json!({})),
                    on_scrape: Arc::new(|_| {}),
                    keep_alive: Duration::from_secs(30),
                    node: NodeApi {
                        ready: Arc::new(AtomicBool::new(true)),
                        containers: Arc::new(|_: &str| None),
                        operations: Operations::new(Arc::new(NoExecutor), Limits::default()),
                        profiles: huatuo_http::api::profiles::disabled(),
                    },
                    auth: Arc::new(Auth::new(Vec::new(), vec!["/metrics".into()])),
                    body: BodyLimits {
                        max_bytes: 16 * 1024,
                        read_timeout: Duration::from_secs(1),
                    },
                };
                let listener = bind("127.0.0.1:0".parse().expect("addr"))
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                serve(state, Listener::plain(listener), std::future::pending()).await;
            });
        });
        rx.recv().expect("server address")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut stream) = TcpStream::connect(server()) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(data);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut head = [0u8; 512];
    let _ = stream.read(&mut head);
});
