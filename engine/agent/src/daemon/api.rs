//! The HTTP API's settings from `[APIServer]` and `[EventsWatch]`: bounds, tokens and TLS,
//! each file read (and refused, naming the key and the file) before the agent serves.

use huatuo_http::auth::Auth;
use huatuo_http::body::BodyLimits;
use huatuo_http::conn::ConnLimits;
use huatuo_http::tls::{server_config, ServerConfig, TlsFiles};
use std::sync::Arc;
use std::time::Duration;

/// How long open connections get to finish once the agent stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Everything the API is served with besides its state.
pub struct ApiSettings {
    /// Who may call which route.
    pub auth: Arc<Auth>,
    /// TLS, when configured.
    pub tls: Option<Arc<ServerConfig>>,
    /// Connection bounds.
    pub limits: ConnLimits,
    /// Request body bounds.
    pub body: BodyLimits,
}

fn seconds(value: i64) -> Duration {
    Duration::from_secs(value.max(1) as u64)
}

/// Reads the token file and the TLS files the config names.
pub fn settings(config: &huatuo_config::Config) -> anyhow::Result<ApiSettings> {
    let api = &config.api_server;
    let tokens = if api.token_file.is_empty() {
        Vec::new()
    } else {
        Auth::read_tokens(std::path::Path::new(&api.token_file))
            .map_err(|e| anyhow::anyhow!("APIServer.{e}"))?
    };
    let tls = server_config(&TlsFiles {
        cert: &api.tls_cert_file,
        key: &api.tls_key_file,
        client_ca: &api.client_ca_file,
    })
    .map_err(anyhow::Error::msg)?;
    if tokens.is_empty() && api.client_ca_file.is_empty() {
        log::info!("no APIServer.TokenFile: status and event routes answer loopback clients only");
    }
    Ok(ApiSettings {
        auth: Arc::new(Auth::new(tokens, api.open_paths.clone())),
        tls,
        limits: ConnLimits {
            max_connections: api.max_connections.max(1) as usize,
            header_read_timeout: seconds(api.header_read_timeout),
            idle_timeout: seconds(api.idle_timeout),
            shutdown_grace: SHUTDOWN_GRACE,
        },
        body: BodyLimits {
            max_bytes: huatuo_http::server::MAX_WATCH_BODY,
            read_timeout: seconds(api.body_read_timeout),
        },
    })
}

/// The API part of `/status`: how it is protected, never a secret.
pub fn status(settings: &ApiSettings) -> serde_json::Value {
    serde_json::json!({
        "tls": settings.tls.is_some(),
        "tokens": settings.auth.token_count(),
        "max_connections": settings.limits.max_connections,
    })
}
