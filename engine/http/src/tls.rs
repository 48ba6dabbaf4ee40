//! The TLS setup of the API: a certificate chain and key, and optionally a CA whose
//! certificates every client must present.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;

/// The TLS configuration the server is given.
pub use rustls::ServerConfig;

/// The files of the TLS setup.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles<'a> {
    /// PEM certificate chain, leaf first.
    pub cert: &'a str,
    /// PEM private key of the leaf.
    pub key: &'a str,
    /// PEM CA bundle verifying client certificates; empty: no client certificate asked.
    pub client_ca: &'a str,
}

/// The server's TLS configuration, or `None` when neither certificate nor key is set. A file
/// that cannot be read or parsed is an error naming the config key and the file.
pub fn server_config(files: &TlsFiles) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    match (files.cert.is_empty(), files.key.is_empty()) {
        (true, true) if files.client_ca.is_empty() => return Ok(None),
        (true, true) => {
            return Err("APIServer.ClientCAFile needs TLSCertFile and TLSKeyFile".into());
        }
        (false, true) => return Err("APIServer.TLSCertFile is set without TLSKeyFile".into()),
        (true, false) => return Err("APIServer.TLSKeyFile is set without TLSCertFile".into()),
        (false, false) => {}
    }
    let chain = certificates("TLSCertFile", files.cert)?;
    let key = PrivateKeyDer::from_pem_file(files.key)
        .map_err(|e| format!("APIServer.TLSKeyFile {}: {e}", files.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if files.client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates("ClientCAFile", files.client_ca)? {
            roots
                .add(cert)
                .map_err(|e| format!("APIServer.ClientCAFile {}: {e}", files.client_ca))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("APIServer.ClientCAFile {}: {e}", files.client_ca))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("APIServer.TLSCertFile/TLSKeyFile: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn certificates(key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("APIServer.{key} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("APIServer.{key} {path}: no PEM certificate in it"));
    }
    Ok(certs)
}
