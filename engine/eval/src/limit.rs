//! A token bucket in sample time: `limit RATE per PERIOD burst B`.

/// The bucket of one rule.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    capacity: f64,
    per_ns: f64,
    last_ns: Option<i64>,
}

impl TokenBucket {
    /// `rate` tokens per `per_ns`, holding at most `burst`; starts full.
    pub fn new(rate: f64, per_ns: i64, burst: f64) -> Self {
        TokenBucket {
            tokens: burst,
            capacity: burst,
            per_ns: rate / per_ns.max(1) as f64,
            last_ns: None,
        }
    }

    /// Takes one token at `now_ns`; false when the bucket is empty (the trigger is shed).
    pub fn take(&mut self, now_ns: i64) -> bool {
        if let Some(last) = self.last_ns {
            let elapsed = (now_ns - last).max(0) as f64;
            self.tokens = (self.tokens + elapsed * self.per_ns).min(self.capacity);
        }
        self.last_ns = Some(self.last_ns.map_or(now_ns, |last| last.max(now_ns)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let sec = 1_000_000_000;
        let mut b = TokenBucket::new(2.0, sec, 3.0);
        let taken: Vec<bool> = (0..5).map(|_| b.take(0)).collect();
        assert_eq!(taken, [true, true, true, false, false]);
        assert!(b.take(sec / 2)); // one token back after half a second
        assert!(!b.take(sec / 2));
    }
}
