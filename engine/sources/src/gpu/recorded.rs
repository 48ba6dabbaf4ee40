//! The recorded backend: a JSON file holding one [`GpuReadings`], read again on every poll
//! (fixture trees, replaying a recorded node). A missing file means the vendor's GPUs are
//! absent; a malformed one is a read error.

use super::reader::{GpuBackend, Opener};
use super::readings::GpuReadings;
use crate::common::read_text;
use std::path::PathBuf;

/// Reads [`GpuReadings`] from a JSON file.
pub struct RecordedGpu {
    source: &'static str,
    path: PathBuf,
}

impl RecordedGpu {
    /// Opens `path` for `source`: absent when the file does not exist.
    pub fn opener(source: &'static str, path: PathBuf) -> Opener {
        Box::new(move || {
            if path.is_file() {
                Ok(Box::new(RecordedGpu { source, path }) as Box<dyn GpuBackend>)
            } else {
                Err(format!("no recorded GPU readings at {}", path.display()))
            }
        })
    }
}

impl GpuBackend for RecordedGpu {
    fn read(&mut self) -> Result<GpuReadings, String> {
        let text = read_text(self.source, &self.path).map_err(|e| e.message)?;
        serde_json::from_str(&text).map_err(|e| format!("recorded GPU readings: {e}"))
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("huatuo-gpu-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("metax.json");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_recorded_file_reads_and_a_missing_one_is_absent() {
        let path = temp("ok", r#"{"sdk_version": "2.2.0", "gpus": [{"gpu": 0}]}"#);
        let mut backend = RecordedGpu::opener("gpu.metax", path.clone())().expect("opens");
        let readings = backend.read().expect("parses");
        assert_eq!(readings.sdk_version.as_deref(), Some("2.2.0"));
        assert_eq!(readings.gpus.len(), 1);
        let missing = path.with_file_name("nvidia.json");
        let reason = RecordedGpu::opener("gpu.nvidia", missing.clone())()
            .err()
            .expect("absent");
        assert_eq!(
            reason,
            format!("no recorded GPU readings at {}", missing.display())
        );
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn unknown_keys_and_bad_json_are_read_errors() {
        let path = temp("bad", r#"{"gpus": [{"gpu": 0, "temprature_celsius": 3}]}"#);
        let mut backend = RecordedGpu::opener("gpu.metax", path.clone())().expect("opens");
        let error = backend.read().expect_err("unknown key");
        assert!(error.contains("temprature_celsius"), "{error}");
        assert_eq!(backend.origin(), path.display().to_string());
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
