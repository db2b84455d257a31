//! storefront: the server-rendered shop people actually use.
//!
//! Pages are askama templates checked at compile time, rendered on the server
//! from the four shop APIs (users, products, orders, payments), so every page
//! works without JavaScript; a small external script only refreshes an
//! order's status while payment is in flight.
//!
//! The request path, outermost first: security headers (every response,
//! static files too), the encrypted session cookie, error pages (a
//! `PageError` becomes a full page with the shop's header), CSRF check on
//! every POST, then the page handler.

mod assets;
mod auth;
mod backend;
mod categories;
pub mod config;
mod csrf;
mod errors;
mod headers;
mod metrics;
mod pages;
mod product_cache;
mod session;
mod views;

use std::{ops::Deref, sync::Arc};

use axum::{Router, extract::FromRef, middleware};
use axum_extra::extract::cookie::Key;

use storekeeper_kit::{Metrics, client_ip::TrustedProxyHops};

use crate::{
    backend::Backend, categories::CategoryCache, metrics::ShopMetrics, product_cache::ProductCache,
    session::CookieSettings,
};

/// What every handler shares. axum clones it for every request, and a
/// clone of the parts by value copied the backend URLs and counters each
/// time (about 3 % of the storefront's CPU under load), so they sit behind
/// one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// Clients for the four APIs.
    pub(crate) backend: Backend,
    /// The category navigation, cached.
    pub(crate) categories: CategoryCache,
    /// Product reads for the shopper pages, cached for a moment.
    pub(crate) products: ProductCache,
    /// Cookie key and flags.
    pub(crate) cookies: CookieSettings,
    pub(crate) metrics: ShopMetrics,
    /// Proxies in front of the storefront (the ingress controller in a
    /// cluster), to find the shopper's address for user-service.
    pub(crate) trusted_proxy_hops: TrustedProxyHops,
}

impl FromRef<AppState> for TrustedProxyHops {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxy_hops
    }
}

impl AppState {
    /// Builds the state from the configuration; counters go into `metrics`.
    pub fn new(config: &config::Config, metrics: &Metrics) -> Result<Self, reqwest::Error> {
        let shop_metrics = ShopMetrics::register(metrics);
        Ok(Self(Arc::new(Shared {
            backend: Backend::new(config.urls.clone(), shop_metrics.clone())?,
            metrics: shop_metrics,
            categories: CategoryCache::default(),
            products: ProductCache::default(),
            cookies: CookieSettings {
                key: config.session_key.clone(),
                secure: config.cookie_secure,
            },
            trusted_proxy_hops: config.service.trusted_proxy_hops,
        })))
    }
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Self {
        state.cookies.key.clone()
    }
}

/// The storefront's router: pages behind the session, CSRF and error-page
/// layers; static files and product images beside them; security headers on all.
pub fn app(state: AppState) -> Router {
    let pages = pages::router()
        .layer(middleware::from_fn(csrf::csrf_middleware))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            errors::error_pages,
        ))
        .layer(middleware::from_fn_with_state(
            state.cookies.clone(),
            session::session_middleware,
        ));
    Router::new()
        .merge(pages)
        .merge(assets::router())
        .with_state(state)
        .layer(middleware::from_fn(headers::security_headers))
}
