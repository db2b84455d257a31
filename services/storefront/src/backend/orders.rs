//! order-service: the shopper's cart, placing and cancelling orders, order
//! history; for admins, finding orders and reading an order's saga history.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use storekeeper_contract::ShopService;

use super::{Backend, BackendResult, segment};

/// One line of the server-side cart.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CartItem {
    pub(crate) product_id: String,
    pub(crate) quantity: u32,
}

/// The logged-in shopper's cart.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Cart {
    /// The lines, in the order they were added.
    #[serde(default)]
    pub(crate) items: Vec<CartItem>,
}

impl Cart {
    /// Units in the cart, for the header badge.
    pub(crate) fn units(&self) -> u32 {
        self.items.iter().map(|item| item.quantity).sum()
    }
}

/// Where an order is shipped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ShippingAddress {
    /// Recipient's full name.
    pub(crate) name: String,
    /// Street and number.
    pub(crate) line1: String,
    /// Flat, suite, floor (optional).
    #[serde(default)]
    pub(crate) line2: String,
    pub(crate) city: String,
    pub(crate) postal_code: String,
    /// Country (ISO 3166-1 alpha-2 code).
    pub(crate) country: String,
}

/// One line of a placed order, priced when the order was placed.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OrderItem {
    /// The product's name when ordered.
    pub(crate) name: String,
    pub(crate) quantity: u32,
    /// Price of one unit in minor units, when ordered.
    pub(crate) unit_price_cents: i64,
}

/// An order as order-service shows it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: String,
    /// The shopper who placed it.
    #[serde(default)]
    pub(crate) user_id: String,
    /// The e-mail it was placed with, when known.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// `PENDING`, `AWAITING_PAYMENT`, `PAID`, `CANCELLED`, `REFUNDED`.
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) items: Vec<OrderItem>,
    /// Total in minor units.
    pub(crate) total_cents: i64,
    /// ISO 4217 code of the total.
    pub(crate) currency: String,
    pub(crate) shipping_address: ShippingAddress,
    /// The card token it was placed with: one per checkout attempt, so it
    /// finds the order of an attempt whose answer was lost.
    #[serde(default)]
    pub(crate) payment_method_id: String,
    /// Why it was cancelled, when it was.
    #[serde(default)]
    pub(crate) cancellation_reason: Option<String>,
    /// When it was placed (RFC 3339).
    pub(crate) created_at: String,
}

/// One page of `GET /api/orders`.
#[derive(Debug, Deserialize)]
pub(crate) struct OrderList {
    /// Newest first.
    pub(crate) items: Vec<Order>,
    /// Orders in all pages.
    #[serde(default)]
    pub(crate) total: u64,
}

/// One status an order took (`GET /api/orders/{id}/history`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryEntry {
    /// The status word, e.g. `AWAITING_PAYMENT`.
    pub(crate) status: String,
    /// What moved it: `placed`, `stock_reserved`, `payment_failed`…
    pub(crate) step: String,
    /// Why, when it was cancelled.
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// When (RFC 3339).
    pub(crate) at: String,
}

/// An order's saga history.
#[derive(Debug, Clone, Deserialize)]
struct OrderHistory {
    entries: Vec<HistoryEntry>,
}

/// What the admin order search asks order-service for.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct OrderQuery {
    /// Only orders in this status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<String>,
    /// Only this shopper's orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    /// Only orders placed with this e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    /// 1-based page.
    pub(crate) page: u32,
    /// Page size.
    pub(crate) per_page: u32,
}

/// Body of `POST /api/orders`.
#[derive(Debug, Serialize)]
pub(crate) struct NewOrder<'a> {
    /// Id returned by payment-service when the card was tokenized.
    pub(crate) payment_method_id: &'a str,
    pub(crate) shipping_address: &'a ShippingAddress,
    /// The account's e-mail, kept on the order for the admins' search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<&'a str>,
}

#[derive(Serialize)]
struct AddItem<'a> {
    product_id: &'a str,
    quantity: u32,
}

#[derive(Serialize)]
struct SetQuantity {
    quantity: u32,
}

impl Backend {
    /// `GET /api/cart`.
    pub(crate) async fn cart(&self, token: &str) -> BackendResult<Cart> {
        self.request(ShopService::Order, Method::GET, "/api/cart")
            .bearer(token)
            .fetch()
            .await
    }

    /// `POST /api/cart/items`: adds `quantity` to the line (creating it);
    /// answers the updated cart.
    pub(crate) async fn add_to_cart(
        &self,
        token: &str,
        product_id: &str,
        quantity: u32,
    ) -> BackendResult<Cart> {
        self.request(ShopService::Order, Method::POST, "/api/cart/items")
            .bearer(token)
            .json(&AddItem {
                product_id,
                quantity,
            })
            .fetch()
            .await
    }

    /// `PATCH /api/cart/items/{product_id}`: sets the line's quantity;
    /// answers the updated cart.
    pub(crate) async fn set_cart_quantity(
        &self,
        token: &str,
        product_id: &str,
        quantity: u32,
    ) -> BackendResult<Cart> {
        let path = format!("/api/cart/items/{}", segment(product_id));
        self.request(ShopService::Order, Method::PATCH, &path)
            .bearer(token)
            .json(&SetQuantity { quantity })
            .fetch()
            .await
    }

    /// `DELETE /api/cart/items/{product_id}`.
    pub(crate) async fn remove_from_cart(
        &self,
        token: &str,
        product_id: &str,
    ) -> BackendResult<()> {
        let path = format!("/api/cart/items/{}", segment(product_id));
        self.request(ShopService::Order, Method::DELETE, &path)
            .bearer(token)
            .execute()
            .await
    }

    /// `POST /api/orders` with an `Idempotency-Key`, so a resubmitted form
    /// replays the first answer instead of placing a second order.
    pub(crate) async fn place_order(
        &self,
        token: &str,
        idempotency_key: &str,
        order: &NewOrder<'_>,
    ) -> BackendResult<Order> {
        self.request(ShopService::Order, Method::POST, "/api/orders")
            .bearer(token)
            .header("Idempotency-Key", idempotency_key)
            .json(order)
            .fetch()
            .await
    }

    /// `GET /api/orders`: the shopper's latest orders, newest first.
    pub(crate) async fn orders(&self, token: &str) -> BackendResult<Vec<Order>> {
        let list: OrderList = self
            .request(ShopService::Order, Method::GET, "/api/orders")
            .bearer(token)
            .query(&[("per_page", "50")])
            .fetch()
            .await?;
        Ok(list.items)
    }

    /// `GET /api/orders/{id}`.
    pub(crate) async fn order(&self, token: &str, id: &str) -> BackendResult<Order> {
        let path = format!("/api/orders/{}", segment(id));
        self.request(ShopService::Order, Method::GET, &path)
            .bearer(token)
            .fetch()
            .await
    }

    /// `POST /api/orders/{id}/cancel`: the shopper cancels an order not
    /// paid yet (409 `order-not-cancellable` once it is past that).
    pub(crate) async fn cancel_order(&self, token: &str, id: &str) -> BackendResult<Order> {
        let path = format!("/api/orders/{}/cancel", segment(id));
        self.request(ShopService::Order, Method::POST, &path)
            .bearer(token)
            .fetch()
            .await
    }

    /// `GET /api/orders` with filters (admins see every shopper's orders).
    pub(crate) async fn find_orders(
        &self,
        token: &str,
        query: &OrderQuery,
    ) -> BackendResult<OrderList> {
        self.request(ShopService::Order, Method::GET, "/api/orders")
            .bearer(token)
            .query(query)
            .fetch()
            .await
    }

    /// `GET /api/orders/{id}/history` (admin): every status, oldest first.
    pub(crate) async fn order_history(
        &self,
        token: &str,
        id: &str,
    ) -> BackendResult<Vec<HistoryEntry>> {
        let path = format!("/api/orders/{}/history", segment(id));
        let history: OrderHistory = self
            .request(ShopService::Order, Method::GET, &path)
            .bearer(token)
            .fetch()
            .await?;
        Ok(history.entries)
    }
}
