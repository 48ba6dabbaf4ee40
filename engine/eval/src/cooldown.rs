//! Cooldown policies: how long a rule stays quiet for one key after it fired.
//!
//! Time is sample time, so replays are deterministic. The backoff policy is HUATUO's
//! softlockup/hungtask one: the quiet period starts at `initial`, is multiplied by `factor`
//! after each firing up to `max`, and returns to `initial` when no trigger was seen for `reset`.

use crate::bounded::BoundedMap;

/// A compiled cooldown policy.
#[derive(Debug, Clone, PartialEq)]
pub enum CooldownSpec {
    /// Every trigger fires.
    None,
    /// Quiet for this many ns after a firing.
    Fixed(i64),
    /// Growing quiet periods.
    Backoff {
        /// First quiet period, ns.
        initial: i64,
        /// Growth per firing.
        factor: f64,
        /// Longest quiet period, ns.
        max: i64,
        /// Trigger-free time after which the period returns to `initial`, ns.
        reset: i64,
    },
}

#[derive(Debug, Clone, Copy)]
struct KeyState {
    last_fire_ns: i64,
    last_trigger_ns: i64,
    /// Quiet period in force since the last firing; 0 after a backoff reset.
    period_ns: i64,
}

/// Cooldown state of one rule, per key, bounded.
#[derive(Debug)]
pub struct Cooldown {
    spec: CooldownSpec,
    keys: BoundedMap<Option<KeyState>>,
}

impl Cooldown {
    /// A cooldown with no history, keeping at most `capacity` keys.
    pub fn new(spec: CooldownSpec, capacity: usize) -> Self {
        Cooldown {
            spec,
            keys: BoundedMap::new(capacity),
        }
    }

    /// Notes a trigger for `key` at `now_ns`; true when it may fire (not in a quiet period).
    pub fn admit(&mut self, key: &str, now_ns: i64) -> bool {
        if self.spec == CooldownSpec::None {
            return true;
        }
        let spec = self.spec.clone();
        let entry = self.keys.get_or_insert_with(key, || None);
        let Some(state) = entry else {
            return true;
        };
        let idle = now_ns - state.last_trigger_ns;
        state.last_trigger_ns = now_ns;
        if let CooldownSpec::Backoff { reset, .. } = spec {
            if idle >= reset {
                // Quiet long enough: the next firing starts the backoff over.
                state.period_ns = 0;
                return true;
            }
        }
        now_ns - state.last_fire_ns >= state.period_ns
    }

    /// Records that the rule fired for `key` at `now_ns` (call only after `admit` allowed it).
    pub fn fired(&mut self, key: &str, now_ns: i64) {
        let spec = self.spec.clone();
        let entry = self.keys.get_or_insert_with(key, || None);
        let period_ns = match (spec, &entry) {
            (CooldownSpec::None, _) => return,
            (CooldownSpec::Fixed(d), _) => d,
            (CooldownSpec::Backoff { initial, .. }, None) => initial,
            (
                CooldownSpec::Backoff {
                    initial,
                    factor,
                    max,
                    ..
                },
                Some(state),
            ) if state.period_ns > 0 => {
                ((state.period_ns as f64 * factor) as i64).clamp(initial, max)
            }
            (CooldownSpec::Backoff { initial, .. }, Some(_)) => initial,
        };
        *entry = Some(KeyState {
            last_fire_ns: now_ns,
            last_trigger_ns: now_ns,
            period_ns,
        });
    }

    /// Keys dropped to stay within capacity.
    pub fn evicted(&self) -> u64 {
        self.keys.evicted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    /// Fires whenever allowed at each minute in `minutes`; returns the minutes that fired.
    fn run(spec: CooldownSpec, minutes: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut cd = Cooldown::new(spec, 16);
        let mut fired = Vec::new();
        for m in minutes {
            if cd.admit("k", m * MIN) {
                cd.fired("k", m * MIN);
                fired.push(m);
            }
        }
        fired
    }

    #[test]
    fn none_fires_every_time() {
        assert_eq!(run(CooldownSpec::None, [0, 1, 2]), vec![0, 1, 2]);
    }

    #[test]
    fn fixed_suppresses_within_the_period() {
        assert_eq!(run(CooldownSpec::Fixed(10 * MIN), 0..25), vec![0, 10, 20]);
    }

    #[test]
    fn backoff_doubles_to_max_then_resets_after_quiet() {
        let spec = CooldownSpec::Backoff {
            initial: 10 * MIN,
            factor: 2.0,
            max: 180 * MIN,
            reset: 180 * MIN,
        };
        // A trigger every minute for 10 hours: quiet periods 10, 20, 40, 80, 160, 180, 180.
        let fired = run(spec.clone(), 0..600);
        assert_eq!(fired, vec![0, 10, 30, 70, 150, 310, 490]);
        // After 3 h without any trigger, the period is back to 10 min.
        let mut minutes: Vec<i64> = (0..100).collect();
        minutes.extend(300..320);
        assert_eq!(run(spec, minutes), vec![0, 10, 30, 70, 300, 310]);
    }

    #[test]
    fn keys_are_independent() {
        let mut cd = Cooldown::new(CooldownSpec::Fixed(10 * MIN), 16);
        assert!(cd.admit("a", 0));
        cd.fired("a", 0);
        assert!(!cd.admit("a", MIN));
        assert!(cd.admit("b", MIN));
    }
}
