//! Opening record storage from `[Storage]`: local files and Elasticsearch/OpenSearch, with
//! what an operator must know about them (an unverified or plain-text cluster connection)
//! logged once at start and kept for `/status`.

use huatuo_config::{Config, EsStorage};
use huatuo_storage::history::History;
use huatuo_storage::{EsSettings, EsSink, LocalFileSettings, LocalFileStore, Storage};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes in a mebibyte (the unit of the size keys).
const MIB: u64 = 1024 * 1024;

/// The opened storage and its description for `/status`.
pub struct Opened {
    /// Every configured sink.
    pub storage: Storage,
    /// What `/status` shows under `storage`.
    pub status: Json,
    /// The stored records `GET /v1/events` reads, when local files are on.
    pub history: Option<Arc<History>>,
}

/// Opens the sinks `[Storage]` configures; the spool of Elasticsearch lives in `spool_dir`
/// when given (`--spool-dir`), else in `[Storage.ES] SpoolPath`.
pub fn open(config: &Config, spool_dir: Option<&Path>) -> anyhow::Result<Opened> {
    let local = &config.storage.local_file;
    let history = local
        .enabled()
        .then(|| Arc::new(History::new(PathBuf::from(&local.path))));
    let local_store = if local.enabled() {
        Some(LocalFileStore::new(LocalFileSettings {
            dir: PathBuf::from(&local.path),
            rotation_bytes: (local.rotation_size.max(1) as u64).saturating_mul(1024 * 1024),
            max_rotation: local.max_rotation.max(0) as usize,
        })?)
    } else {
        None
    };
    let mut storage = Storage::new(local_store);
    let es = &config.storage.es;
    let mut es_status = Json::Null;
    if es.enabled() {
        let spool_dir = match (spool_dir, es.spool_path.as_str()) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, "") => PathBuf::from("huatuo-es-spool"),
            (None, path) => PathBuf::from(path),
        };
        let mut settings = EsSettings::new(
            &es.address,
            &es.index,
            &es.username,
            &es.password,
            &spool_dir,
            (es.spool_max_size.max(1) as u64).saturating_mul(MIB),
        );
        if !es.dead_letter_path.is_empty() {
            settings.dead_letter_path = PathBuf::from(&es.dead_letter_path);
        }
        settings.dead_letter_max_bytes =
            (es.dead_letter_max_size.max(1) as u64).saturating_mul(MIB);
        let dead_letter_path = settings.dead_letter_path.display().to_string();
        settings.ca_cert_path = Some(&es.ca_cert_path)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        settings.insecure_skip_verify = es.insecure_skip_verify;
        storage = storage.with_es(EsSink::start(settings)?);
        let warnings = es_warnings(es);
        for warning in &warnings {
            log::warn!("Storage.ES: {warning}");
        }
        log::info!("storing records in Elasticsearch at {}", es.address);
        es_status = json!({
            "address": es.address,
            "index": es.index,
            "ca_cert_path": es.ca_cert_path,
            "insecure_skip_verify": es.insecure_skip_verify,
            "spool_dir": spool_dir.display().to_string(),
            "spool_max_size_mb": es.spool_max_size,
            "dead_letter_path": dead_letter_path,
            "dead_letter_max_size_mb": es.dead_letter_max_size,
            "legacy_tracer_names": config.storage.legacy_tracer_names,
            "warnings": warnings,
        });
    }
    let local_status = local.enabled().then(|| {
        json!({
            "path": local.path,
            "rotation_size_mb": local.rotation_size,
            "max_rotation": local.max_rotation,
        })
    });
    Ok(Opened {
        storage,
        status: json!({ "local_file": local_status, "elasticsearch": es_status }),
        history,
    })
}

/// What is unsafe about the cluster connection `[Storage.ES]` sets up.
fn es_warnings(es: &EsStorage) -> Vec<String> {
    let mut warnings = Vec::new();
    let addresses = huatuo_config::es_addresses(&es.address).unwrap_or_default();
    if es.insecure_skip_verify && addresses.iter().any(|a| a.starts_with("https://")) {
        warnings.push(
            "InsecureSkipVerify = true: the cluster's certificate is not verified; records and \
             the password go to whoever answers at the address"
                .to_string(),
        );
    }
    for address in &addresses {
        if address.starts_with("http://") && !is_loopback(address) {
            warnings.push(format!(
                "{address} is plain http: records and the password cross the network unencrypted"
            ));
        }
    }
    warnings
}

/// Whether an http(s) URL names this host.
fn is_loopback(address: &str) -> bool {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.split(['/', ':']).next().unwrap_or_default(),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(address: &str, insecure: bool) -> EsStorage {
        EsStorage {
            address: address.into(),
            insecure_skip_verify: insecure,
            ..EsStorage::default()
        }
    }

    #[test]
    fn unverified_and_plain_text_connections_are_warned_about() {
        assert!(es_warnings(&es("https://es:9200", false)).is_empty());
        assert!(es_warnings(&es("http://127.0.0.1:9200", false)).is_empty());
        assert!(es_warnings(&es(":9200", false)).is_empty());
        assert!(es_warnings(&es("http://[::1]:9200", false)).is_empty());
        let w = es_warnings(&es("https://es:9200", true));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("InsecureSkipVerify"), "{w:?}");
        let w = es_warnings(&es("http://es.example:9200", false));
        assert!(w[0].contains("plain http"), "{w:?}");
    }
}
