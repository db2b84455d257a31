//! What this operator process remembers between passes over a Store: the
//! status it last wrote, and the metrics sampled when a bake started.
//!
//! The watch cache can lag the operator's own status write by seconds; a
//! pass that decided against the cached Store would redo a transition,
//! move `lastTransitionTime` and repeat Events. The status the operator
//! wrote itself is never older than the cached one (only the leader writes
//! status, and a replica that loses the lease exits), so a pass starts from
//! it when there is one. Nothing here is needed for correctness after a
//! restart: status and ControllerRevisions hold the rollout's state, and a
//! lost baseline only makes the analysis judge the new pods' whole life.
//! An entry is a few kilobytes per Store this process has seen.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::StoreStatus;
use crate::rollout::analysis::Samples;

/// Per-Store memory, keyed by the Store's uid (a Store deleted and created
/// again under the same name starts afresh).
#[derive(Default)]
pub struct Memory {
    written: Mutex<HashMap<String, StoreStatus>>,
    baselines: Mutex<HashMap<String, Samples>>,
}

impl Memory {
    /// The status last written for the Store `uid`, if any.
    pub fn status(&self, uid: &str) -> Option<StoreStatus> {
        self.written.lock().ok()?.get(uid).cloned()
    }

    /// Records the status the operator wrote (or found already written).
    pub fn wrote(&self, uid: &str, status: StoreStatus) {
        if let Ok(mut written) = self.written.lock() {
            written.insert(uid.to_owned(), status);
        }
    }

    /// Keeps the metrics sampled when a bake started.
    pub fn keep_baseline(&self, key: String, samples: Samples) {
        if let Ok(mut baselines) = self.baselines.lock() {
            baselines.insert(key, samples);
        }
    }

    /// The baseline of a bake that ended, forgotten once read.
    pub fn take_baseline(&self, key: &str) -> Option<Samples> {
        self.baselines.lock().ok()?.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    #[test]
    fn the_last_written_status_is_remembered_per_store() {
        let memory = Memory::default();
        let status = |phase| StoreStatus {
            phase: Some(phase),
            ..StoreStatus::default()
        };
        memory.wrote("uid-1", status(Phase::Progressing));
        memory.wrote("uid-1", status(Phase::Ready));
        assert_eq!(memory.status("uid-1"), Some(status(Phase::Ready)));
        assert_eq!(memory.status("uid-2"), None);
    }

    #[test]
    fn a_baseline_is_read_once() {
        let memory = Memory::default();
        memory.keep_baseline("uid-1/rev/Backends/t".into(), Samples::new());
        assert!(memory.take_baseline("uid-1/rev/Backends/t").is_some());
        assert!(memory.take_baseline("uid-1/rev/Backends/t").is_none());
    }
}
