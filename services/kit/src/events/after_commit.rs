//! What a consumer's handler did, held from [`super::Handler::handle`] until
//! [`super::Handler::committed`], so business counters (and any other
//! effect outside the database) move only once the transaction they
//! describe has committed: a rolled-back or retried event counts nothing.
//! Every service whose handlers count something after the commit uses it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use uuid::Uuid;

/// Entries outlive their event only when a commit failed and the event was
/// never delivered again; past this many they are dropped (a few counts
/// lost, never memory).
const MAX_PENDING: usize = 4096;

/// Effects by event id, waiting for their commit. Cheap to clone (shared),
/// so a handler keeps one and both of its methods reach the same entries.
#[derive(Debug)]
pub struct AfterCommit<T> {
    pending: Arc<Mutex<HashMap<Uuid, T>>>,
}

impl<T> Clone for AfterCommit<T> {
    fn clone(&self) -> Self {
        Self {
            pending: Arc::clone(&self.pending),
        }
    }
}

impl<T> Default for AfterCommit<T> {
    fn default() -> Self {
        Self {
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<T> AfterCommit<T> {
    /// Keeps `effect` of event `id` until [`AfterCommit::take`].
    pub fn hold(&self, id: Uuid, effect: T) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_PENDING {
            tracing::warn!(dropped = pending.len(), "uncommitted effects dropped");
            pending.clear();
        }
        pending.insert(id, effect);
    }

    /// The effect of event `id`, once its transaction committed.
    pub fn take(&self, id: Uuid) -> Option<T> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_effect_is_taken_once() {
        let held = AfterCommit::default();
        let id = Uuid::new_v4();
        held.hold(id, 7);
        assert_eq!(held.clone().take(id), Some(7));
        assert_eq!(held.take(id), None);
    }

    #[test]
    fn a_redelivery_replaces_the_uncommitted_effect() {
        let held = AfterCommit::default();
        let id = Uuid::new_v4();
        held.hold(id, 1);
        held.hold(id, 2);
        assert_eq!(held.take(id), Some(2));
    }
}
