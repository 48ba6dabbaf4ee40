//! Warnings that could repeat for every document, logged at most once a minute.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a limited warning may be logged.
const PERIOD: Duration = Duration::from_secs(60);

/// A warning logged at most once per minute, with a count of what was held back.
#[derive(Debug)]
pub struct RateLog {
    what: &'static str,
    last: Option<Instant>,
    held: u64,
}

impl RateLog {
    /// A limiter for warnings about `what`.
    pub fn new(what: &'static str) -> Self {
        RateLog {
            what,
            last: None,
            held: 0,
        }
    }

    /// Logs `message` unless one was logged in the last minute.
    pub fn warn(&mut self, message: impl Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < PERIOD)
        {
            self.held += 1;
            return;
        }
        let held = std::mem::take(&mut self.held);
        log::warn!(
            "Storage.ES {}: {message} ({held} more since the last report)",
            self.what
        );
        self.last = Some(now);
    }
}
