//! Per-object exponential backoff for failed reconciles: the first retry
//! comes quickly, repeated failures of the *same* Store slow down (doubling
//! up to a cap), and one success resets that Store only. controller-rs
//! requeues every failure after a fixed five minutes; this keeps a broken
//! Store from hammering the API while a transient failure heals fast.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First retry delay.
pub const BASE: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const MAX: Duration = Duration::from_mins(5);

/// The delay after `failures` consecutive failures (1-based).
pub fn delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << exp).min(max)
}

/// Failure counts per object key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait.
    pub fn fail(&self, key: &str) -> Duration {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        delay(*n, BASE, MAX)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| delay(n, BASE, MAX).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(delay(u32::MAX, BASE, MAX), MAX);
    }

    #[test]
    fn is_per_object_and_resets() {
        let b = Backoff::default();
        assert_eq!(b.fail("ns/a"), BASE);
        assert_eq!(b.fail("ns/a"), BASE * 2);
        assert_eq!(b.fail("ns/b"), BASE);
        b.reset("ns/a");
        assert_eq!(b.fail("ns/a"), BASE);
    }
}
