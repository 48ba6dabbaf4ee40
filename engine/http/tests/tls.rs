//! The API over TLS with a test CA made here: HTTPS served, plain HTTP refused, client
//! certificates required when a client CA is configured (and accepted as authentication),
//! and unreadable or missing files refused with the key named.

mod support;

use huatuo_http::auth::Auth;
use huatuo_http::body::BodyLimits;
use huatuo_http::conn::{ConnLimits, Listener};
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{bind, serve, ApiState};
use huatuo_http::tls::{server_config, TlsFiles};
use huatuo_http::watch::WatchHub;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// (certificate PEM, key PEM) of a leaf signed by `ca`.
fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("huatuo-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves the API over TLS with `files` and `tokens`; returns the port.
async fn serve_tls(files: &TlsFiles<'_>, tokens: Vec<String>) -> u16 {
    let tls = server_config(files).expect("TLS config").expect("TLS on");
    let state = ApiState {
        metrics: Arc::new(MetricStore::new(Default::default(), 10)),
        watch: Arc::new(WatchHub::new(2, 0)),
        status: Arc::new(|| Some(serde_json::json!({"ok": true}))),
        on_scrape: Arc::new(|_| {}),
        keep_alive: Duration::from_secs(1),
        auth: Arc::new(Auth::new(tokens, vec!["/healthz".into()])),
        node: support::node_api(true, Default::default()),
        history: None,
        body: BodyLimits {
            max_bytes: 1024,
            read_timeout: Duration::from_secs(2),
        },
    };
    let socket = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let listener = Listener {
        socket,
        limits: ConnLimits::default(),
        tls: Some(tls),
        counters: Arc::default(),
    };
    tokio::spawn(serve(state, listener, std::future::pending()));
    port
}

fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(5))
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA"));
    if let Some((cert, key)) = identity {
        builder = builder.identity(
            reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"),
        );
    }
    builder.build().expect("client")
}

#[tokio::test]
async fn https_is_served_and_plain_http_is_not() {
    let scratch = Scratch::new("plain");
    let server_ca = ca("huatuo test server CA");
    let (cert, key) = leaf(&server_ca, &["localhost", "127.0.0.1"]);
    let files = TlsFiles {
        cert: &scratch.write("cert.pem", &cert),
        key: &scratch.write("key.pem", &key),
        client_ca: "",
    };
    let port = serve_tls(&files, Vec::new()).await;
    let https = client(&server_ca.pem, None)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(https.status(), 200);
    // Loopback without tokens: /status answers over TLS too.
    let status = client(&server_ca.pem, None)
        .get(format!("https://localhost:{port}/status"))
        .send()
        .await
        .expect("https");
    assert_eq!(status.status(), 200);
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP answered on the TLS port: {plain:?}"
    );
    // A client that does not trust the server's CA is refused by its own check.
    let other_ca = ca("some other CA");
    let untrusted = client(&other_ca.pem, None)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await;
    assert!(untrusted.is_err(), "{untrusted:?}");
}

#[tokio::test]
async fn a_client_certificate_is_required_and_authenticates() {
    let scratch = Scratch::new("mtls");
    let server_ca = ca("huatuo test server CA");
    let client_ca = ca("huatuo test client CA");
    let (cert, key) = leaf(&server_ca, &["localhost"]);
    let files = TlsFiles {
        cert: &scratch.write("cert.pem", &cert),
        key: &scratch.write("key.pem", &key),
        client_ca: &scratch.write("client-ca.pem", &client_ca.pem),
    };
    // Tokens are configured, yet a verified certificate is enough.
    let port = serve_tls(&files, vec!["a-token-nobody-sends-0123".into()]).await;
    let url = format!("https://localhost:{port}/status");
    let anonymous = client(&server_ca.pem, None).get(&url).send().await;
    assert!(
        anonymous.is_err(),
        "served without a client certificate: {anonymous:?}"
    );
    let (stranger_cert, stranger_key) = leaf(&ca("a stranger's CA"), &["client"]);
    let stranger = client(&server_ca.pem, Some((&stranger_cert, &stranger_key)))
        .get(&url)
        .send()
        .await;
    assert!(
        stranger.is_err(),
        "served a certificate of another CA: {stranger:?}"
    );
    let (client_cert, client_key) = leaf(&client_ca, &["client"]);
    let verified = client(&server_ca.pem, Some((&client_cert, &client_key)))
        .get(&url)
        .send()
        .await
        .expect("mutual TLS");
    assert_eq!(verified.status(), 200);
}

#[test]
fn unreadable_or_half_configured_files_are_refused_with_the_key_named() {
    let scratch = Scratch::new("bad");
    let server_ca = ca("huatuo test server CA");
    let (cert, _) = leaf(&server_ca, &["localhost"]);
    let cert = scratch.write("cert.pem", &cert);
    let missing = scratch.0.join("missing-key.pem").display().to_string();
    let garbage = scratch.write("garbage.pem", "not a key\n");
    let error = |files: TlsFiles| server_config(&files).expect_err("an error");
    let e = error(TlsFiles {
        cert: &cert,
        key: &missing,
        client_ca: "",
    });
    assert!(
        e.contains("APIServer.TLSKeyFile") && e.contains(&missing),
        "{e}"
    );
    let e = error(TlsFiles {
        cert: &cert,
        key: &garbage,
        client_ca: "",
    });
    assert!(e.contains("APIServer.TLSKeyFile"), "{e}");
    let e = error(TlsFiles {
        cert: &cert,
        key: "",
        client_ca: "",
    });
    assert!(e.contains("TLSKeyFile"), "{e}");
    let e = error(TlsFiles {
        cert: &garbage,
        key: &garbage,
        client_ca: "",
    });
    assert!(e.contains("APIServer.TLSCertFile"), "{e}");
    assert!(server_config(&TlsFiles::default())
        .expect("no TLS")
        .is_none());
}
