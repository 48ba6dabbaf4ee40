//! Pushing continuous profiles to Pyroscope: `POST <Address>/ingest?name=<app>.<type>{labels}
//! &from=&until=&format=pprof&spyName=huatuo&sampleRate=`, the gzip pprof in the multipart
//! form field `profile`, one push per container (and one for host processes) per interval,
//! labelled host, region, container, pod and namespace. https is verified against the system
//! roots plus `CACertPath`.

use huatuo_config::PyroscopeStorage;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

/// A configured Pyroscope endpoint.
pub struct Pyroscope {
    agent: ureq::Agent,
    ingest: String,
    app: String,
    auth: Option<String>,
}

/// One push: the profile's name suffix, labels and time range.
pub struct Push<'a> {
    /// `cpu` or `offcpu`.
    pub kind: &'a str,
    /// Labels (host, region, container, pod, namespace); empty values are left out.
    pub labels: &'a [(&'a str, &'a str)],
    /// Start, Unix seconds.
    pub from_s: i64,
    /// End, Unix seconds.
    pub until_s: i64,
    /// Samples per second (CPU), for Pyroscope's rate.
    pub sample_rate: u64,
    /// gzip pprof.
    pub pprof: Vec<u8>,
}

/// A label value as Pyroscope's name grammar accepts it (no braces, commas or `=`).
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if matches!(c, '{' | '}' | ',' | '=' | '"') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Percent-encodes a query value.
fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The TLS client: system roots plus the PEM file `ca`, verified.
fn tls(ca: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !ca.is_empty() {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("Storage.Pyroscope.CACertPath {ca}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("Storage.Pyroscope.CACertPath {ca}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("Storage.Pyroscope.CACertPath {ca}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Pyroscope {
    /// The endpoint of `[Storage.Pyroscope]`, `None` when Address is empty.
    pub fn from_config(config: &PyroscopeStorage) -> Result<Option<Pyroscope>, String> {
        if !config.enabled() {
            return Ok(None);
        }
        let address = config.address.split(',').next().unwrap_or_default().trim();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(config.timeout.max(1) as u64))
            .tls_config(Arc::new(tls(&config.ca_cert_path)?))
            .build();
        let auth = if !config.auth_token.is_empty() {
            Some(format!("Bearer {}", config.auth_token))
        } else if !config.username.is_empty() {
            use base64::Engine;
            let pair = format!("{}:{}", config.username, config.password);
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        } else {
            None
        };
        Ok(Some(Pyroscope {
            agent,
            ingest: format!("{}/ingest", address.trim_end_matches('/')),
            app: config.app_name.clone(),
            auth,
        }))
    }

    /// Sends one profile; the error names the endpoint and the status or failure.
    pub fn push(&self, push: &Push) -> Result<(), String> {
        let labels: Vec<String> = push
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", clean(v)))
            .collect();
        let name = format!("{}.{}{{{}}}", self.app, push.kind, labels.join(","));
        let url = format!(
            "{}?name={}&from={}&until={}&format=pprof&spyName=huatuo&sampleRate={}",
            self.ingest,
            escape(&name),
            push.from_s,
            push.until_s,
            push.sample_rate
        );
        const BOUNDARY: &str = "huatuo-profile-boundary";
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"profile\"; \
             filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&push.pprof);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let mut request = self.agent.post(&url).set(
            "Content-Type",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
        );
        if let Some(auth) = &self.auth {
            request = request.set("Authorization", auth);
        }
        match request.send_bytes(&body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => {
                Err(format!("Pyroscope {}: HTTP {code}", self.ingest))
            }
            Err(e) => Err(format!("Pyroscope {}: {e}", self.ingest)),
        }
    }
}
