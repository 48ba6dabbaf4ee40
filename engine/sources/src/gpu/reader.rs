//! The polled reader of a `gpu.*` source over a [`GpuBackend`], opened on the first read
//! (so a source no rule reads never loads a vendor library).
//!
//! A backend that cannot be opened (no library, no driver, no recorded file) makes the
//! source *absent*: reads return no samples and no error, [`Reader::unavailable`] says why
//! (the daemon logs it once and shows it in `/status`), and the backend is not retried.

use super::readings::GpuReadings;
use super::samples::to_samples;
use super::{schema, Vendor};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::value::Sample;

/// A source of GPU readings: a vendor library or a recorded file.
pub trait GpuBackend: Send {
    /// Reads every GPU once; the error says which call failed.
    fn read(&mut self) -> Result<GpuReadings, String>;
    /// What the error of a failed read names as its path (a call, a file).
    fn origin(&self) -> String;
}

/// Opens a backend, or says why there is none.
pub type Opener = Box<dyn FnOnce() -> Result<Box<dyn GpuBackend>, String> + Send>;

enum State {
    Unopened(Opener),
    Open(Box<dyn GpuBackend>),
    Absent(String),
}

/// The reader of one vendor's source.
pub struct GpuReader {
    vendor: &'static Vendor,
    state: State,
}

impl GpuReader {
    /// A reader that opens its backend with `open` on the first read.
    pub fn new(vendor: &'static Vendor, open: Opener) -> Self {
        Self {
            vendor,
            state: State::Unopened(open),
        }
    }

    /// A reader that is absent from the start, for `reason`.
    pub fn absent(vendor: &'static Vendor, reason: impl Into<String>) -> Self {
        Self {
            vendor,
            state: State::Absent(reason.into()),
        }
    }
}

impl Reader for GpuReader {
    fn schema(&self) -> SourceSchema {
        schema(self.vendor)
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        if matches!(self.state, State::Unopened(_)) {
            let placeholder = State::Absent(String::new());
            if let State::Unopened(open) = std::mem::replace(&mut self.state, placeholder) {
                self.state = match open() {
                    Ok(backend) => State::Open(backend),
                    Err(reason) => State::Absent(reason),
                };
            }
        }
        match &mut self.state {
            State::Open(backend) => match backend.read() {
                Ok(readings) => Ok(to_samples(self.vendor, &readings, now_ns)),
                Err(message) => Err(ReadError {
                    source_name: self.vendor.source.to_string(),
                    path: backend.origin(),
                    message,
                }),
            },
            State::Absent(_) | State::Unopened(_) => Ok(Vec::new()),
        }
    }

    fn unavailable(&self) -> Option<String> {
        match &self.state {
            State::Absent(reason) => Some(reason.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{METAX, NVIDIA};
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Fixed(Result<GpuReadings, String>);

    impl GpuBackend for Fixed {
        fn read(&mut self) -> Result<GpuReadings, String> {
            self.0.clone()
        }
        fn origin(&self) -> String {
            "fixed".into()
        }
    }

    #[test]
    fn a_backend_that_does_not_open_is_absent_and_not_retried() {
        let opens = Arc::new(AtomicUsize::new(0));
        let counted = opens.clone();
        let mut reader = GpuReader::new(
            &NVIDIA,
            Box::new(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                Err("libnvidia-ml.so: not found".to_string())
            }),
        );
        assert_eq!(
            reader.unavailable(),
            None,
            "not opened before the first read"
        );
        for _ in 0..3 {
            assert!(reader.read(1).expect("absent is not an error").is_empty());
        }
        assert_eq!(opens.load(Ordering::Relaxed), 1);
        assert_eq!(
            reader.unavailable().as_deref(),
            Some("libnvidia-ml.so: not found")
        );
    }

    #[test]
    fn an_open_backend_reads_samples_and_reports_errors() {
        let mut reader = GpuReader::new(
            &METAX,
            Box::new(|| {
                Ok(Box::new(Fixed(Ok(GpuReadings {
                    sdk_version: Some("1".into()),
                    ..GpuReadings::default()
                }))) as Box<dyn GpuBackend>)
            }),
        );
        assert_eq!(reader.read(1).expect("reads").len(), 1);
        assert_eq!(reader.unavailable(), None);
        let mut failing = GpuReader::new(
            &METAX,
            Box::new(|| Ok(Box::new(Fixed(Err("gpu lost".into()))) as Box<dyn GpuBackend>)),
        );
        let error = failing.read(1).expect_err("a failed read is an error");
        assert_eq!(error.to_string(), "gpu.metax: fixed: gpu lost");
        assert_eq!(failing.unavailable(), None);
    }

    #[test]
    fn an_absent_reader_has_the_vendor_schema() {
        let reader = GpuReader::absent(&METAX, "no SML");
        assert_eq!(reader.schema().name, "gpu.metax");
        assert_eq!(reader.unavailable().as_deref(), Some("no SML"));
    }
}
