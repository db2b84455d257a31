//! The category list, kept in memory for a minute.
//!
//! Every page's navigation shows the categories, which change perhaps once a
//! week. Asking product-service on every page would double the calls for
//! nothing, so the list is cached briefly. When product-service is down the
//! last list is kept (or none, on a cold start): navigation degrades, the
//! page still renders.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::backend::{Backend, products::Category};

/// How long a fetched list is used before asking again.
const FRESH_FOR: Duration = Duration::from_mins(1);
/// After a failed fetch, how long to wait before asking again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Entry {
    list: Arc<Vec<Category>>,
    next_fetch: Option<Instant>,
}

/// Shared cache of the category list.
#[derive(Default, Clone)]
pub(crate) struct CategoryCache(Arc<Mutex<Entry>>);

impl CategoryCache {
    /// The categories: cached, freshly fetched, or the last known list.
    pub(crate) async fn get(&self, backend: &Backend) -> Arc<Vec<Category>> {
        {
            let entry = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if entry.next_fetch.is_some_and(|at| Instant::now() < at) {
                return Arc::clone(&entry.list);
            }
        }
        let fetched = backend.categories().await;
        let mut entry = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match fetched {
            Ok(list) => {
                entry.list = Arc::new(list);
                entry.next_fetch = Some(Instant::now() + FRESH_FOR);
            }
            Err(err) => {
                tracing::warn!(error = %err, "category list unavailable");
                entry.next_fetch = Some(Instant::now() + RETRY_AFTER);
            }
        }
        Arc::clone(&entry.list)
    }

    /// Forgets the list (after an admin changes the catalog).
    pub(crate) fn invalidate(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_fetch = None;
    }
}
