//! The HTTP client of the commands that talk to a running agent (`huatuo op`, `huatuo
//! reload`, `huatuo watch`): its address and an optional bearer token read from a file.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// How long one HTTP request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags naming the agent and the token to call it with.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Address of a running agent.
    #[arg(long, default_value = "127.0.0.1:19704", global = true)]
    pub addr: String,
    /// File holding the bearer token (the first non-empty line is sent as
    /// `Authorization: Bearer`).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
}

/// The client: base URL and optional token.
pub struct Client {
    /// `http://ADDR`.
    pub base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `connection`; the error names the token file when it cannot be read.
    pub fn new(connection: &Connection) -> Result<Client, String> {
        let token = match &connection.token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
                Some(
                    text.lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty() && !l.starts_with('#'))
                        .ok_or_else(|| format!("--token-file {}: no token in it", path.display()))?
                        .to_string(),
                )
            }
        };
        Ok(Client {
            base: format!("http://{}", connection.addr),
            token,
        })
    }

    /// `request` with the token set.
    pub fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// Sends a request: the status and body text of any HTTP reply, or the transport error
    /// in words.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.base);
        let request = self.authorized(ureq::request(method, &url).timeout(REQUEST_TIMEOUT));
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                let status = response.status();
                let text = response.into_string().map_err(|e| format!("{url}: {e}"))?;
                Ok((status, text))
            }
            Err(ureq::Error::Status(status, response)) => {
                Ok((status, response.into_string().unwrap_or_default()))
            }
            Err(e) => Err(format!("cannot reach the agent at {url}: {e}")),
        }
    }

    /// Sends a request; the body text of a 2xx reply, else the error in words.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, String> {
        match self.exchange(method, path, body)? {
            (200..=299, text) => Ok(text),
            (status, text) => Err(format!(
                "{method} {}{path}: HTTP {status}: {}",
                self.base,
                text.trim()
            )),
        }
    }
}
