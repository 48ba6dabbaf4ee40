//! The HTTP side: `_bulk` POSTs and the index template install, with basic auth over http or
//! https (rustls).
//!
//! https certificates are verified against the system's CA roots plus the configured CA file;
//! a handshake that does not verify fails before any request (and its credentials) is sent.
//! Skipping verification is an explicit setting. Redirects are not followed, so credentials
//! never go to a server other than the configured ones.

use super::bulk::{self, Failure, ItemOutcome, Pending};
use super::template;
use super::EsError;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Largest CA file read.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// Sends bulk requests to one cluster, through the first of its addresses that answers.
#[derive(Debug)]
pub struct BulkClient {
    http: reqwest::Client,
    /// Every configured address, without a trailing slash.
    urls: Vec<String>,
    /// The address in use; a request that cannot be delivered moves to the next one.
    current: AtomicUsize,
    index: String,
    username: String,
    password: String,
}

/// What the client needs from the settings.
#[derive(Debug, Clone)]
pub struct ClientSettings<'a> {
    /// `Storage.ES Address`: one URL or several separated by commas.
    pub address: &'a str,
    /// The index documents go to.
    pub index: &'a str,
    /// Basic-auth user name.
    pub username: &'a str,
    /// Basic-auth password.
    pub password: &'a str,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// PEM file of extra CA certificates to trust.
    pub ca_cert_path: Option<&'a Path>,
    /// Whether to accept certificates that do not verify.
    pub insecure_skip_verify: bool,
}

impl BulkClient {
    /// A client for the cluster at `settings.address`.
    pub fn new(settings: &ClientSettings<'_>) -> Result<BulkClient, EsError> {
        let urls = huatuo_config::es_addresses(settings.address)
            .map_err(|why| EsError::Address(settings.address.to_string(), why))?
            .into_iter()
            .map(|base| base.trim_end_matches('/').to_string())
            .collect();
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("huatuo/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = settings.ca_cert_path {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if settings.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| EsError::Client(describe(&e)))?;
        Ok(BulkClient {
            http,
            urls,
            current: AtomicUsize::new(0),
            index: settings.index.to_string(),
            username: settings.username.to_string(),
            password: settings.password.to_string(),
        })
    }

    /// Indexes `docs` in one bulk request; one outcome per document, in order.
    pub async fn send(&self, docs: &[Pending]) -> Result<Vec<ItemOutcome>, Failure> {
        let at = self.current.load(Ordering::Relaxed) % self.urls.len();
        let result = self.send_to(&self.urls[at], docs).await;
        self.next_address_after(at, &result);
        result
    }

    /// The index prefix (`Storage.ES.Index`).
    pub fn index(&self) -> &str {
        &self.index
    }

    /// Installs the index template of the daily indices (see [`template`]), in the flavour
    /// the cluster's `GET /` names.
    pub async fn install_template(&self) -> Result<(), Failure> {
        let at = self.current.load(Ordering::Relaxed) % self.urls.len();
        let result = self.install_template_at(&self.urls[at]).await;
        self.next_address_after(at, &result);
        result
    }

    /// After a request to address `at` that could not be delivered, the next request goes
    /// to the next address.
    fn next_address_after<T>(&self, at: usize, result: &Result<T, Failure>) {
        if matches!(result, Err(Failure::Retryable(_))) && self.urls.len() > 1 {
            self.current
                .store((at + 1) % self.urls.len(), Ordering::Relaxed);
        }
    }

    async fn install_template_at(&self, base: &str) -> Result<(), Failure> {
        let (status, root) = self.request(reqwest::Method::GET, base, None).await?;
        if !(200..300).contains(&status) {
            return Err(bulk::request_failure(status, &root));
        }
        let root: serde_json::Value = serde_json::from_slice(&root).unwrap_or_default();
        let body = template::body(&self.index, template::is_opensearch(&root));
        let url = format!("{base}/_index_template/{}", template::name(&self.index));
        let (status, answer) = self
            .request(
                reqwest::Method::PUT,
                &url,
                Some(body.to_string().into_bytes()),
            )
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(bulk::request_failure(status, &answer))
        }
    }

    /// One authenticated request; the status and body of the answer.
    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.username, Some(&self.password));
        if let Some(body) = json_body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        exchange(request, url).await
    }

    async fn send_to(&self, base: &str, docs: &[Pending]) -> Result<Vec<ItemOutcome>, Failure> {
        let url = format!("{base}/_bulk");
        let millis = chrono::Utc::now().timestamp_millis();
        let request = self
            .http
            .post(&url)
            .basic_auth(&self.username, Some(&self.password))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(bulk::encode(&self.index, docs, millis));
        let (status, body) = exchange(request, &url).await?;
        bulk::classify(status, &body, docs.len())
    }
}

/// Sends `request` to `url` and reads the whole answer: its status and body. A transport
/// failure (connection, timeout, cut body) is retryable.
async fn exchange(request: reqwest::RequestBuilder, url: &str) -> Result<(u16, Vec<u8>), Failure> {
    let retryable = |e: reqwest::Error| Failure::Retryable(format!("{url}: {}", describe(&e)));
    let response = request.send().await.map_err(retryable)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(retryable)?;
    Ok((status, body.to_vec()))
}

/// The certificates of a PEM file (`Storage.ES.CACertPath`); none is an error.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, EsError> {
    let bad = |why: String| EsError::Client(format!("CACertPath {}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| bad(e.to_string()))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(bad(format!("larger than {MAX_CA_FILE_BYTES} bytes")));
    }
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(describe(&e)))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_string()));
    }
    Ok(certs)
}

/// The error and its causes on one line (reqwest's own message hides the cause).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
