//! The kubelet's HTTPS port with mutual TLS: a fake kubelet that requires a client
//! certificate signed by its CA, and server verification on and off.

use huatuo_containers::kubelet::{KubeletClient, KubeletConfig, KubeletError, PodStore};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Pki {
    let mut params = CertificateParams::new(Vec::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    Pki {
        ca_pem: cert.pem(),
        ca_der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate signed by `ca`: (certificate PEM, key PEM, DER, key DER).
fn leaf(
    ca: &Pki,
    names: Vec<String>,
) -> (
    String,
    String,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let params = CertificateParams::new(names).expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.pem(), key.serialize_pem(), cert.der().clone(), key_der)
}

/// A TLS kubelet serving one request that requires a client certificate from `client_ca`.
fn tls_kubelet(server_ca: &Pki, client_ca: &Pki) -> (u16, JoinHandle<bool>) {
    let (_, _, cert, key) = leaf(server_ca, vec!["127.0.0.1".to_string()]);
    let mut roots = RootCertStore::empty();
    roots.add(client_ca.ca_der.clone()).expect("client CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("verifier");
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = std::fs::read(fixture("pods.json")).expect("pods.json");
    let thread = std::thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return false;
        };
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let conn = ServerConnection::new(Arc::new(config)).expect("conn");
        let mut tls = BufReader::new(StreamOwned::new(conn, tcp));
        let mut line = String::new();
        if tls.read_line(&mut line).is_err() || !line.starts_with("GET /pods ") {
            return false;
        }
        loop {
            let mut header = String::new();
            if tls.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let stream = tls.get_mut();
        stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&body).is_ok() && {
            stream.conn.send_close_notify();
            stream.flush().is_ok()
        }
    });
    (port, thread)
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("huatuo-kubelet-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn https_config(
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    insecure: bool,
) -> KubeletConfig {
    KubeletConfig {
        read_only_port: 0,
        authorized_port: port,
        client_cert: Some(cert),
        client_key: Some(key),
        ca_cert: ca,
        insecure_skip_verify: insecure,
        timeout: Duration::from_secs(5),
        ..KubeletConfig::default()
    }
}

#[test]
fn mutual_tls_with_a_verified_kubelet_certificate() {
    let dir = temp_dir("ok");
    let ca = new_ca("kube-ca");
    let (cert_pem, key_pem, _, _) = leaf(&ca, vec!["apiserver-kubelet-client".to_string()]);
    let (port, server) = tls_kubelet(&ca, &ca);
    // One PEM file holding both the certificate and the key.
    let both = write(&dir, "client.pem", &format!("{cert_pem}{key_pem}"));
    let ca_path = write(&dir, "ca.crt", &ca.ca_pem);
    let client = KubeletClient::new(https_config(port, both.clone(), both, Some(ca_path), false))
        .expect("client");
    let store = PodStore::new();
    store.refresh(&client).expect("fetch over mTLS");
    assert!(server.join().unwrap(), "server saw a complete request");
    assert_eq!(store.current().map(|s| s.len()), Some(3));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_kubelet_ca_fails_unless_verification_is_off() {
    let dir = temp_dir("verify");
    let client_ca = new_ca("kube-ca");
    let other_ca = new_ca("some-other-ca");
    let (cert_pem, key_pem, _, _) = leaf(&client_ca, vec!["client".to_string()]);
    let cert = write(&dir, "client.crt", &cert_pem);
    let key = write(&dir, "client.key", &key_pem);
    let trusted = write(&dir, "ca.crt", &client_ca.ca_pem);

    // The kubelet's certificate comes from a CA the agent does not trust: refused.
    let (port, server) = tls_kubelet(&other_ca, &client_ca);
    let client = KubeletClient::new(https_config(
        port,
        cert.clone(),
        key.clone(),
        Some(trusted),
        false,
    ))
    .expect("client");
    let store = PodStore::new();
    let err = store.refresh(&client).expect_err("untrusted kubelet");
    assert!(matches!(err, KubeletError::Unreachable { .. }), "{err}");
    assert!(!server.join().unwrap());
    assert_eq!(store.stats().unreachable, 1);

    // The operator turned verification off: the same kubelet is accepted.
    let (port, server) = tls_kubelet(&other_ca, &client_ca);
    let client = KubeletClient::new(https_config(port, cert, key, None, true)).expect("client");
    store.refresh(&client).expect("verification off");
    assert!(server.join().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_client_certificate_is_a_counted_fetch_error_naming_the_file() {
    let config = https_config(
        10250,
        PathBuf::from("/nonexistent/kubelet-client.crt"),
        PathBuf::from("/nonexistent/kubelet-client.key"),
        None,
        false,
    );
    let client = KubeletClient::new(config).expect("files are read at fetch time");
    let store = PodStore::new();
    let err = store.refresh(&client).expect_err("no such file");
    assert!(matches!(err, KubeletError::Tls(_)), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/kubelet-client.crt"),
        "{err}"
    );
    assert_eq!(store.stats().unreachable, 1);
}
