//! Names of plain Docker containers from the daemon's state directory
//! (`/var/lib/docker/containers/<id>/config.v2.json`): the container name, its hostname and
//! its labels. No daemon API call is made.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest config.v2.json read (bounded memory); larger files are an error.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// What Docker's state directory tells about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerDetails {
    /// Container name without the leading `/`.
    pub name: String,
    /// The container's hostname.
    pub hostname: String,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ConfigV2 {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Config", default)]
    config: Option<InnerConfig>,
}

#[derive(Deserialize, Default)]
struct InnerConfig {
    #[serde(rename = "Hostname", default)]
    hostname: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Reads a container's `config.v2.json`; `Ok(None)` when Docker has no such container.
pub fn docker_details(docker_root: &Path, id: &str) -> Result<Option<DockerDetails>, String> {
    let path = docker_root
        .join("containers")
        .join(id)
        .join("config.v2.json");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut body = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if body.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        ));
    }
    let parsed: ConfigV2 =
        serde_json::from_slice(&body).map_err(|e| format!("{}: {e}", path.display()))?;
    let inner = parsed.config.unwrap_or_default();
    Ok(Some(DockerDetails {
        name: parsed.name.trim_start_matches('/').to_string(),
        hostname: inner.hostname,
        labels: inner.labels.unwrap_or_default(),
    }))
}
