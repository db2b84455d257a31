//! The storefront's own counters, beside kit's per-route request metrics:
//! what shoppers achieved (cart adds, orders placed, checkouts refused) and
//! which backend let a page down, so a dashboard shows a sick dependency
//! from the shop's side.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use storekeeper_contract::ShopService;
use storekeeper_kit::Metrics;

/// Label: which backend.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabel {
    /// `user-service`, `product-service`...
    pub(crate) service: &'static str,
}

/// Handles to the storefront's counters; cheap to clone.
#[derive(Clone)]
pub(crate) struct ShopMetrics {
    /// `storefront_cart_adds_total`: products added to a cart.
    pub(crate) cart_adds: Counter,
    /// `storefront_orders_placed_total`: orders accepted by order-service.
    pub(crate) orders_placed: Counter,
    /// `storefront_checkouts_refused_total`: checkouts sent back to the shopper
    /// (invalid form, card refused at tokenization, order refused).
    pub(crate) checkouts_refused: Counter,
    /// `storefront_backend_unavailable_total{service}`: calls that found a
    /// backend down, timing out or answering 5xx.
    pub(crate) backend_unavailable: Family<ServiceLabel, Counter>,
}

impl ShopMetrics {
    /// Registers the counters in the service's registry.
    pub(crate) fn register(metrics: &Metrics) -> Self {
        Self {
            cart_adds: metrics.counter("storefront_cart_adds", "Products added to a cart"),
            orders_placed: metrics.counter(
                "storefront_orders_placed",
                "Orders placed through the checkout form",
            ),
            checkouts_refused: metrics.counter(
                "storefront_checkouts_refused",
                "Checkout forms sent back to the shopper with errors",
            ),
            backend_unavailable: metrics.register(
                "storefront_backend_unavailable",
                "Backend calls that found the service down, slow or failing",
                Family::default(),
            ),
        }
    }

    /// Counts a call that found `service` unavailable.
    pub(crate) fn unavailable(&self, service: ShopService) {
        self.backend_unavailable
            .get_or_create(&ServiceLabel {
                service: service.package(),
            })
            .inc();
    }
}
