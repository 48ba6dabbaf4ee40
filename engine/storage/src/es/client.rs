//! The HTTP side: one `_bulk` POST with basic auth over http or https (rustls).

use super::bulk::{self, Failure, ItemOutcome, Pending};
use super::EsError;
use std::time::Duration;

/// Sends bulk requests to one cluster.
#[derive(Debug, Clone)]
pub struct BulkClient {
    http: reqwest::Client,
    url: String,
    index: String,
    username: String,
    password: String,
}

/// What the client needs from the settings.
#[derive(Debug, Clone)]
pub struct ClientSettings<'a> {
    /// `Storage.ES Address`.
    pub address: &'a str,
    /// The index documents go to.
    pub index: &'a str,
    /// Basic-auth user name.
    pub username: &'a str,
    /// Basic-auth password.
    pub password: &'a str,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Whether to accept certificates that do not verify.
    pub accept_invalid_certs: bool,
}

impl BulkClient {
    /// A client for the cluster at `settings.address`.
    pub fn new(settings: &ClientSettings<'_>) -> Result<BulkClient, EsError> {
        let base = base_url(settings.address)?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .danger_accept_invalid_certs(settings.accept_invalid_certs)
            .user_agent(concat!("huatuo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EsError::Client(e.to_string()))?;
        Ok(BulkClient {
            http,
            url: format!("{base}/_bulk"),
            index: settings.index.to_string(),
            username: settings.username.to_string(),
            password: settings.password.to_string(),
        })
    }

    /// Indexes `docs` in one bulk request; one outcome per document, in order.
    pub async fn send(&self, docs: &[Pending]) -> Result<Vec<ItemOutcome>, Failure> {
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.username, Some(&self.password))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(bulk::encode(&self.index, docs))
            .send()
            .await
            .map_err(|e| Failure::Retryable(describe(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Retryable(describe(&e)))?;
        bulk::classify(status, &body, docs.len())
    }
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

/// The base URL of `Address`: HUATUO's default `:9200` means localhost, no scheme means http.
pub fn base_url(address: &str) -> Result<String, EsError> {
    let address = address.trim().trim_end_matches('/');
    let bad = |why: &str| EsError::Address(address.to_string(), why.to_string());
    if address.is_empty() {
        return Err(bad("empty"));
    }
    let with_scheme = if address.contains("://") {
        address.to_string()
    } else if address.starts_with(':') {
        format!("http://127.0.0.1{address}")
    } else {
        format!("http://{address}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(with_scheme)
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(base_url(":9200").unwrap(), "http://127.0.0.1:9200");
        assert_eq!(base_url("es:9200/").unwrap(), "http://es:9200");
        assert_eq!(
            base_url("https://127.0.0.1:9200").unwrap(),
            "https://127.0.0.1:9200"
        );
        assert_eq!(base_url("http://es/prefix").unwrap(), "http://es/prefix");
        for bad in ["", "ftp://es:21", "http://:9200", "http://es:99999"] {
            let err = base_url(bad).unwrap_err().to_string();
            assert!(err.contains("Storage.ES Address"), "{bad}: {err}");
        }
    }
}
