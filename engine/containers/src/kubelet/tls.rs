//! rustls client configuration for the kubelet's HTTPS port: client certificate, CA, and
//! the operator's opt-out of server verification.

use super::client::KubeletError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Builds the client TLS configuration from PEM files.
pub fn client_tls(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    insecure_skip_verify: bool,
) -> Result<ClientConfig, KubeletError> {
    let tls_err = |path: &Path, what: &str, e: &dyn std::fmt::Display| {
        KubeletError::Tls(format!("{}: {what}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, "client certificate", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, "client certificate", &e))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "client certificate", &"no CERTIFICATE block"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, "client key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeletError::Tls(e.to_string()))?;
    let builder = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match ca {
            Some(ca) => {
                for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_err(ca, "CA", &e))? {
                    let c = c.map_err(|e| tls_err(ca, "CA", &e))?;
                    roots.add(c).map_err(|e| tls_err(ca, "CA", &e))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    builder
        .with_client_auth_cert(certs, key_der)
        .map_err(|e| tls_err(key, "client certificate and key", &e))
}

/// Accepts any server certificate (operator turned verification off) while still checking
/// the handshake signatures, so the session is encrypted to whoever holds the key.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
