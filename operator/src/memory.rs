//! What this operator process remembers between passes over a Store: the
//! status it last wrote, the metrics sampled when a bake started, and which
//! of its generated Secrets exist (see `crate::generated_secrets`).
//!
//! The watch cache can lag the operator's own status write by seconds; a
//! pass that decided against the cached Store would redo a transition,
//! move `lastTransitionTime` and repeat Events. The status the operator
//! wrote itself is never older than the cached one (only the leader writes
//! status, and a replica that loses the lease exits), so a pass starts from
//! it when there is one. Nothing here is needed for correctness after a
//! restart: status and ControllerRevisions hold the rollout's state, and a
//! lost baseline only makes the analysis judge the new pods' whole life,
//! and lost Secrets are read again by name.
//! An entry is a few kilobytes per Store this process has seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::time::Instant;

use crate::api::StoreStatus;
use crate::rollout::analysis::Samples;

/// Per-Store memory, keyed by the Store's uid (a Store deleted and created
/// again under the same name starts afresh).
#[derive(Default)]
pub struct Memory {
    written: Mutex<HashMap<String, StoreStatus>>,
    baselines: Mutex<HashMap<String, Samples>>,
    secrets: Mutex<HashMap<String, SecretsSeen>>,
}

/// A Store's generated Secrets as last read by name, kept up to date with
/// the operator's own creates and owner patches since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsSeen {
    /// When they were read (tokio's clock, so paused tests control it).
    pub read_at: Instant,
    /// Each one that exists, with the uid of its controller owner, if any.
    pub found: BTreeMap<String, Option<String>>,
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

    /// What is known of the Store `uid`'s generated Secrets, if they were
    /// read in this process.
    pub fn secrets(&self, uid: &str) -> Option<SecretsSeen> {
        self.secrets.lock().ok()?.get(uid).cloned()
    }

    /// Records a read of the Store `uid`'s generated Secrets, made now.
    pub fn read_secrets(&self, uid: &str, found: BTreeMap<String, Option<String>>) {
        if let Ok(mut secrets) = self.secrets.lock() {
            let read_at = Instant::now();
            secrets.insert(uid.to_owned(), SecretsSeen { read_at, found });
        }
    }

    /// Records that the Secret `name` of the Store `uid` exists with this
    /// controller owner (after a create, a 409 on create, an owner patch).
    /// The time of the last read stands: this is no read of the others.
    pub fn secret_exists(&self, uid: &str, name: &str, owner: Option<String>) {
        if let Ok(mut secrets) = self.secrets.lock()
            && let Some(seen) = secrets.get_mut(uid)
        {
            seen.found.insert(name.to_owned(), owner);
        }
    }

    /// Records that the Secret `name` of the Store `uid` does not exist
    /// (gone before its owner patch or after a 409), so the next pass
    /// creates it.
    pub fn secret_missing(&self, uid: &str, name: &str) {
        if let Ok(mut secrets) = self.secrets.lock()
            && let Some(seen) = secrets.get_mut(uid)
        {
            seen.found.remove(name);
        }
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

    #[tokio::test(start_paused = true)]
    async fn what_the_operator_did_to_a_secret_updates_the_last_read() {
        let memory = Memory::default();
        memory.secret_exists("uid-1", "shop-admin", None);
        assert_eq!(memory.secrets("uid-1"), None, "nothing read yet");
        memory.read_secrets("uid-1", BTreeMap::from([("shop-redis".into(), None)]));
        let read_at = Instant::now();
        tokio::time::advance(std::time::Duration::from_mins(1)).await;
        memory.secret_exists("uid-1", "shop-admin", Some("uid-1".into()));
        memory.secret_exists("uid-1", "shop-redis", Some("uid-1".into()));
        memory.secret_missing("uid-1", "shop-session");
        let seen = memory.secrets("uid-1").unwrap();
        assert_eq!(seen.read_at, read_at, "no read since");
        assert_eq!(
            seen.found,
            BTreeMap::from([
                ("shop-admin".into(), Some("uid-1".into())),
                ("shop-redis".into(), Some("uid-1".into())),
            ])
        );
        memory.secret_missing("uid-1", "shop-admin");
        assert_eq!(memory.secrets("uid-1").unwrap().found.len(), 1);
        assert_eq!(memory.secrets("uid-2"), None);
    }
}
