//! The kubelet `/pods` client: the read-only HTTP port, or the HTTPS port with a client
//! certificate (mutual TLS), per the `[Pod]` section of `huatuo-bamai.conf`.

use super::model::PodSnapshot;
use super::presence::Presence;
use super::tls::client_tls;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::value::Value;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to reach the kubelet (HUATUO's `[Pod]` section).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletConfig {
    /// Address of the kubelet (the node itself).
    pub host: String,
    /// `Pod.KubeletReadOnlyPort` (plain HTTP, no authentication); 0 disables it.
    pub read_only_port: u16,
    /// `Pod.KubeletAuthorizedPort` (HTTPS with a client certificate); 0 disables it.
    pub authorized_port: u16,
    /// Client certificate (PEM) from `Pod.KubeletClientCertPath`.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM); the certificate file when one file holds both.
    pub client_key: Option<PathBuf>,
    /// CA bundle that signs the kubelet's serving certificate (`Pod.KubeletCACertPath`,
    /// ours); without it the public web PKI roots are used.
    pub ca_cert: Option<PathBuf>,
    /// Skip verification of the kubelet's certificate (`Pod.KubeletInsecureSkipVerify`, ours).
    pub insecure_skip_verify: bool,
    /// Connect and read timeout of one request.
    pub timeout: Duration,
    /// Answers larger than this are rejected (bounded memory).
    pub max_body_bytes: u64,
    /// Where listening sockets are looked up: no request is made while no socket of this
    /// network namespace listens on a kubelet port.
    pub presence: Presence,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        let (client_cert, client_key) = split_cert_path(
            "/etc/kubernetes/pki/apiserver-kubelet-client.crt,/etc/kubernetes/pki/apiserver-kubelet-client.key",
        );
        Self {
            host: "127.0.0.1".to_string(),
            read_only_port: 10255,
            authorized_port: 10250,
            client_cert,
            client_key,
            ca_cert: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(5),
            max_body_bytes: 64 << 20,
            presence: Presence::Kernel,
        }
    }
}

/// Splits `KubeletClientCertPath`: `"cert,key"` or a single PEM holding both.
pub fn split_cert_path(text: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let mut parts = text.split(',').map(str::trim).filter(|p| !p.is_empty());
    match (parts.next(), parts.next()) {
        (Some(cert), Some(key)) => (Some(cert.into()), Some(key.into())),
        (Some(both), None) => (Some(both.into()), Some(both.into())),
        _ => (None, None),
    }
}

impl KubeletConfig {
    /// Reads the `[Pod]` keys, keeping the defaults for keys the config does not have.
    /// A port outside 0..=65535 or a value of the wrong type is an error naming the key.
    pub fn from_values(values: &dyn ConfigValues) -> Result<Self, String> {
        let mut cfg = Self::default();
        let port = |key: &str, default: u16| -> Result<u16, String> {
            match values.value(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Int(n)) => {
                    u16::try_from(n).map_err(|_| format!("{key}: port {n} is outside 0..=65535"))
                }
                Some(other) => Err(format!("{key}: expected a port number, found {other:?}")),
            }
        };
        cfg.read_only_port = port("Pod.KubeletReadOnlyPort", cfg.read_only_port)?;
        cfg.authorized_port = port("Pod.KubeletAuthorizedPort", cfg.authorized_port)?;
        match values.value("Pod.KubeletClientCertPath") {
            None | Some(Value::Null) => {}
            Some(Value::Str(s)) => (cfg.client_cert, cfg.client_key) = split_cert_path(&s),
            Some(other) => {
                return Err(format!(
                    "Pod.KubeletClientCertPath: expected a string, found {other:?}"
                ))
            }
        }
        match values.value("Pod.KubeletCACertPath") {
            None | Some(Value::Null) => {}
            Some(Value::Str(s)) => {
                cfg.ca_cert = Some(s.into()).filter(|p: &PathBuf| !p.as_os_str().is_empty())
            }
            Some(other) => {
                return Err(format!(
                    "Pod.KubeletCACertPath: expected a string, found {other:?}"
                ))
            }
        }
        match values.value("Pod.KubeletInsecureSkipVerify") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => cfg.insecure_skip_verify = b,
            Some(other) => {
                return Err(format!(
                    "Pod.KubeletInsecureSkipVerify: expected true or false, found {other:?}"
                ))
            }
        }
        Ok(cfg)
    }

    /// False when both ports are 0 (bare metal: no kubelet).
    pub fn enabled(&self) -> bool {
        self.read_only_port != 0 || self.authorized_port != 0
    }

    /// Whether a kubelet may answer: some socket listens on one of the enabled ports, or
    /// that cannot be told ([`Presence::Unknown`], tables unreadable).
    pub fn may_answer(&self) -> bool {
        let ports: Vec<u16> = [self.read_only_port, self.authorized_port]
            .into_iter()
            .filter(|p| *p != 0)
            .collect();
        self.presence.listening(&ports).unwrap_or_else(|e| {
            log::debug!("kubelet presence unknown ({e}): requesting anyway");
            true
        })
    }
}

/// Why a fetch of `/pods` failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// Both ports are 0.
    #[error("kubelet disabled (both ports are 0)")]
    Disabled,
    /// Connection refused, timeout, TLS handshake failure.
    #[error("{url}: {message}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        message: String,
    },
    /// The kubelet answered with an error status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL tried.
        url: String,
        /// HTTP status code.
        status: u16,
    },
    /// The answer is not a `PodList`.
    #[error("{url}: malformed pod list: {message}")]
    Malformed {
        /// The URL tried.
        url: String,
        /// The JSON error with its line and column.
        message: String,
    },
    /// The client certificate, key or CA cannot be loaded.
    #[error("kubelet TLS: {0}")]
    Tls(String),
}

/// One way to reach `/pods`.
enum Endpoint {
    /// The read-only port.
    Plain { url: String, agent: ureq::Agent },
    /// The HTTPS port; the TLS material is loaded at each fetch, so rotated client
    /// certificates (`kubelet-client-current.pem`) are picked up.
    Tls { url: String },
}

/// Fetches `/pods` from the first kubelet endpoint that answers.
pub struct KubeletClient {
    config: KubeletConfig,
    endpoints: Vec<Endpoint>,
}

impl KubeletClient {
    /// Prepares the endpoints: the read-only port first, then the HTTPS port when a client
    /// certificate is configured. Fails only when both ports are disabled.
    pub fn new(config: KubeletConfig) -> Result<Self, KubeletError> {
        let mut endpoints = Vec::new();
        if config.read_only_port != 0 {
            endpoints.push(Endpoint::Plain {
                url: format!("http://{}:{}/pods", config.host, config.read_only_port),
                agent: ureq::AgentBuilder::new().timeout(config.timeout).build(),
            });
        }
        if config.authorized_port != 0 {
            if config.client_cert.is_some() && config.client_key.is_some() {
                endpoints.push(Endpoint::Tls {
                    url: format!("https://{}:{}/pods", config.host, config.authorized_port),
                });
            } else {
                log::info!("kubelet HTTPS port configured without a client certificate: skipped");
            }
        }
        if endpoints.is_empty() {
            return Err(KubeletError::Disabled);
        }
        Ok(Self { config, endpoints })
    }

    fn tls_agent(&self) -> Result<ureq::Agent, KubeletError> {
        let (Some(cert), Some(key)) = (&self.config.client_cert, &self.config.client_key) else {
            return Err(KubeletError::Tls(
                "no client certificate configured".to_string(),
            ));
        };
        let tls = client_tls(
            cert,
            key,
            self.config.ca_cert.as_deref(),
            self.config.insecure_skip_verify,
        )?;
        Ok(ureq::AgentBuilder::new()
            .timeout(self.config.timeout)
            .tls_config(Arc::new(tls))
            .build())
    }

    /// The configuration the client was made with.
    pub fn config(&self) -> &KubeletConfig {
        &self.config
    }

    /// GETs `/pods`, trying each endpoint in turn; the last error is returned when all fail.
    pub fn fetch(&self) -> Result<PodSnapshot, KubeletError> {
        let mut last = KubeletError::Disabled;
        for endpoint in &self.endpoints {
            match self.fetch_from(endpoint) {
                Ok(snapshot) => return Ok(snapshot),
                // A malformed answer came from a live kubelet: report it as such.
                Err(e @ KubeletError::Malformed { .. }) => return Err(e),
                Err(e) => {
                    log::debug!("kubelet endpoint failed: {e}");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn fetch_from(&self, endpoint: &Endpoint) -> Result<PodSnapshot, KubeletError> {
        let (url, agent) = match endpoint {
            Endpoint::Plain { url, agent } => (url.clone(), agent.clone()),
            Endpoint::Tls { url } => (url.clone(), self.tls_agent()?),
        };
        let response = agent.get(&url).call().map_err(|e| match e {
            ureq::Error::Status(status, _) => KubeletError::Status {
                url: url.clone(),
                status,
            },
            ureq::Error::Transport(t) => KubeletError::Unreachable {
                url: url.clone(),
                message: t.to_string(),
            },
        })?;
        let limit = self.config.max_body_bytes;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| KubeletError::Unreachable {
                url: url.clone(),
                message: format!("reading the answer: {e}"),
            })?;
        if body.len() as u64 > limit {
            return Err(KubeletError::Malformed {
                url,
                message: format!("answer larger than {limit} bytes"),
            });
        }
        PodSnapshot::from_json(&body).map_err(|e| KubeletError::Malformed {
            url,
            message: e.to_string(),
        })
    }
}
