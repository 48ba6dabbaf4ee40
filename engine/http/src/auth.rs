//! Who may call a route: bearer tokens from a file, compared in constant time, or a client
//! certificate verified by the configured CA; without either, loopback clients only.
//!
//! Routes that stream records, read status or start work go behind [`protected`]; the routes
//! a scraper or a probe needs (`/metrics`, `/healthz`, `/readyz`, `/openapi.json`) behind
//! [`open`], which the config can turn into [`protected`] one path at a time.

use crate::error::ApiError;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;
use warp::http::StatusCode;
use warp::Filter;

/// The challenge sent with every 401.
const CHALLENGE: &str = "Bearer realm=\"huatuo\"";
/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 64 * 1024;
/// Shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// What the server knows of the connection a request came on; the server puts it in every
/// request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client presented a certificate the configured client CA verified.
    pub verified_cert: bool,
}

impl Peer {
    fn is_loopback(&self) -> bool {
        self.addr.ip().to_canonical().is_loopback()
    }
}

/// The authentication policy of the API.
#[derive(Default)]
pub struct Auth {
    /// Replaced as a whole when the token file is read again (reload).
    tokens: RwLock<Vec<Vec<u8>>>,
    open_paths: Vec<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Auth")
            .field("tokens", &self.token_count())
            .field("open_paths", &self.open_paths)
            .finish()
    }
}

impl Auth {
    /// A policy with `tokens` (none: loopback clients only) and the routes open without one.
    pub fn new(tokens: Vec<String>, open_paths: Vec<String>) -> Self {
        Auth {
            tokens: RwLock::new(tokens.into_iter().map(String::into_bytes).collect()),
            open_paths,
        }
    }

    /// Replaces every token (the token file was read again); requests checked after this
    /// see only the new ones.
    pub fn replace_tokens(&self, tokens: Vec<String>) {
        let tokens = tokens.into_iter().map(String::into_bytes).collect();
        match self.tokens.write() {
            Ok(mut held) => *held = tokens,
            Err(poisoned) => *poisoned.into_inner() = tokens,
        }
    }

    fn tokens(&self) -> std::sync::RwLockReadGuard<'_, Vec<Vec<u8>>> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the tokens of `path` (one a line, blank lines and `#` comments skipped); the error
    /// names the file and the line, never a token.
    pub fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
        let file = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("TokenFile {file}: {e}"))?;
        if meta.len() > MAX_TOKEN_FILE {
            return Err(format!(
                "TokenFile {file}: larger than {MAX_TOKEN_FILE} bytes"
            ));
        }
        warn_if_shared(path, &meta);
        let text = std::fs::read_to_string(path).map_err(|e| format!("TokenFile {file}: {e}"))?;
        let mut tokens = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            let line = index + 1;
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "TokenFile {file}:{line}: a token needs at least {MIN_TOKEN_LEN} characters"
                ));
            }
            if !token.bytes().all(is_token_byte) {
                return Err(format!(
                    "TokenFile {file}:{line}: a token may hold letters, digits and -._~+/= only"
                ));
            }
            tokens.push(token.to_string());
        }
        if tokens.is_empty() {
            return Err(format!("TokenFile {file}: holds no token"));
        }
        Ok(tokens)
    }

    /// How many tokens are configured (for `/status`; never the tokens).
    pub fn token_count(&self) -> usize {
        self.tokens().len()
    }

    /// Whether `path` is answered without a token.
    pub fn is_open(&self, path: &str) -> bool {
        self.open_paths.iter().any(|p| p == path)
    }

    /// Lets the request through or says why not.
    pub fn check(&self, peer: Option<Peer>, authorization: Option<&str>) -> Result<(), ApiError> {
        if peer.is_some_and(|p| p.verified_cert) {
            return Ok(());
        }
        let tokens = self.tokens();
        if tokens.is_empty() {
            return if peer.is_some_and(|p| p.is_loopback()) {
                Ok(())
            } else {
                Err(unauthorized(
                    "unauthorized",
                    "no API token is configured: this endpoint answers loopback clients only",
                ))
            };
        }
        let Some(presented) = authorization.and_then(bearer) else {
            return Err(unauthorized(
                "unauthorized",
                "this endpoint needs an `Authorization: Bearer` token",
            ));
        };
        // Every token is compared, whatever matched, so the time taken does not say which.
        let mut matched = subtle::Choice::from(0);
        for token in tokens.iter() {
            matched |= token.as_slice().ct_eq(presented.as_bytes());
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(unauthorized(
                "invalid_token",
                "the bearer token is not valid",
            ))
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message).with_challenge(CHALLENGE)
}

fn warn_if_shared(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!(
            "TokenFile {} is readable by other users; make it 0600",
            path.display()
        );
    }
}

/// The [`Peer`] of the request, when the server recorded one.
pub fn peer() -> impl Filter<Extract = (Option<Peer>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>()
}

/// Passes requests that [`Auth::check`] accepts and rejects the others with 401. Apply it
/// after a route's path and method filters, so unknown paths still answer 404.
pub fn protected(auth: Arc<Auth>) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    peer()
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |peer: Option<Peer>, authorization: Option<String>| {
            let verdict = auth.check(peer, authorization.as_deref());
            async move { verdict.map_err(warp::reject::custom) }
        })
        .untuple_one()
}

/// Like [`protected`] unless the config leaves `path` open (the default of the routes in
/// `OpenPaths`).
pub fn open(
    auth: Arc<Auth>,
    path: &'static str,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    let is_open = auth.is_open(path);
    protected(auth).or_else(move |rejection| async move {
        if is_open {
            Ok(())
        } else {
            Err(rejection)
        }
    })
}
