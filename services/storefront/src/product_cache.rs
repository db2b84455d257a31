//! Product reads for the shopper pages, kept in memory for a moment.
//!
//! Nearly every page shows products (the product page itself and its
//! related products, every cart line, the checkout summary, the catalog
//! grid), and at hundreds of pages a second the same few dozen products
//! are asked for hundreds of times a second. Each answer is kept for
//! [`FRESH_FOR`]; errors are never kept. An admin change made through this
//! storefront drops every kept answer at once (that admin sees it on the
//! next page); a change made elsewhere (another storefront replica, stock
//! taken by a checkout) shows within [`FRESH_FOR`]. Prices are never taken
//! from here for an order: order-service prices it from product-service.
//! Admin pages do not read through here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::backend::{
    Backend, BackendResult,
    products::{Product, ProductPage, ProductQuery},
};

/// How long an answer is used before product-service is asked again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);
/// Most answers kept per kind (a search per distinct text would otherwise
/// grow without bound); when full, everything kept is dropped.
const MAX_ENTRIES: usize = 512;

/// Shared, bounded cache of single products and product lists.
#[derive(Clone, Default)]
pub(crate) struct ProductCache {
    products: Fresh<Product>,
    lists: Fresh<ProductPage>,
}

impl ProductCache {
    /// `GET /api/products/{id-or-slug}`, or its answer from the last [`FRESH_FOR`].
    pub(crate) async fn product(
        &self,
        backend: &Backend,
        id_or_slug: &str,
    ) -> BackendResult<Product> {
        if let Some(product) = self.products.get(id_or_slug) {
            return Ok(product);
        }
        let product = backend.product(id_or_slug).await?;
        self.products.put(id_or_slug.to_owned(), product.clone());
        Ok(product)
    }

    /// `GET /api/products?...`, or its answer from the last [`FRESH_FOR`].
    pub(crate) async fn products(
        &self,
        backend: &Backend,
        query: &ProductQuery,
    ) -> BackendResult<ProductPage> {
        let key = query.cache_key();
        if let Some(page) = self.lists.get(&key) {
            return Ok(page);
        }
        let page = backend.products(query).await?;
        self.lists.put(key, page.clone());
        Ok(page)
    }

    /// Forgets every answer (after an admin changed the catalog).
    pub(crate) fn invalidate(&self) {
        self.products.clear();
        self.lists.clear();
    }
}

/// Answers by key, each with the moment it stops being used.
struct Fresh<V>(Arc<Mutex<HashMap<String, (Instant, V)>>>);

impl<V> Clone for Fresh<V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<V> Default for Fresh<V> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<V: Clone> Fresh<V> {
    fn get(&self, key: &str) -> Option<V> {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: String, value: V) {
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, (until, _)| now < *until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now() + FRESH_FOR, value));
    }

    fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_until_they_expire() {
        let fresh: Fresh<u32> = Fresh::default();
        fresh.put("a".to_owned(), 1);
        assert_eq!(fresh.get("a"), Some(1));
        assert_eq!(fresh.get("b"), None);
        fresh.0.lock().unwrap().get_mut("a").unwrap().0 = Instant::now();
        assert_eq!(fresh.get("a"), None, "expired");
    }

    #[test]
    fn a_full_cache_drops_what_it_holds() {
        let fresh: Fresh<usize> = Fresh::default();
        for n in 0..MAX_ENTRIES {
            fresh.put(n.to_string(), n);
        }
        assert_eq!(fresh.get("7"), Some(7));
        fresh.put("one more".to_owned(), 0);
        assert_eq!(fresh.get("7"), None);
        assert_eq!(fresh.get("one more"), Some(0));
        assert!(fresh.0.lock().unwrap().len() <= MAX_ENTRIES);
    }

    #[test]
    fn clearing_forgets_everything() {
        let cache = ProductCache::default();
        cache.lists.put("k".to_owned(), page());
        cache.invalidate();
        assert!(cache.lists.get("k").is_none());
    }

    fn page() -> ProductPage {
        ProductPage {
            items: Vec::new(),
            page: 1,
            per_page: 12,
            total: 0,
        }
    }
}
