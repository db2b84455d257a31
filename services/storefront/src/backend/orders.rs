//! order-service: the shopper's cart, placing orders, order history.

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
    /// `PENDING`, `AWAITING_PAYMENT`, `PAID`, `CANCELLED`, `REFUNDED`.
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) items: Vec<OrderItem>,
    /// Total in minor units.
    pub(crate) total_cents: i64,
    /// ISO 4217 code of the total.
    pub(crate) currency: String,
    pub(crate) shipping_address: ShippingAddress,
    /// Why it was cancelled, when it was.
    #[serde(default)]
    pub(crate) cancellation_reason: Option<String>,
    /// When it was placed (RFC 3339).
    pub(crate) created_at: String,
}

/// One page of `GET /api/orders`.
#[derive(Debug, Deserialize)]
struct OrderList {
    items: Vec<Order>,
}

/// Body of `POST /api/orders`.
#[derive(Debug, Serialize)]
pub(crate) struct NewOrder<'a> {
    /// Id returned by payment-service when the card was tokenized.
    pub(crate) payment_method_id: &'a str,
    pub(crate) shipping_address: &'a ShippingAddress,
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

    /// `POST /api/cart/items`: adds `quantity` to the line (creating it).
    pub(crate) async fn add_to_cart(
        &self,
        token: &str,
        product_id: &str,
        quantity: u32,
    ) -> BackendResult<()> {
        self.request(ShopService::Order, Method::POST, "/api/cart/items")
            .bearer(token)
            .json(&AddItem {
                product_id,
                quantity,
            })
            .execute()
            .await
    }

    /// `PATCH /api/cart/items/{product_id}`: sets the line's quantity.
    pub(crate) async fn set_cart_quantity(
        &self,
        token: &str,
        product_id: &str,
        quantity: u32,
    ) -> BackendResult<()> {
        let path = format!("/api/cart/items/{}", segment(product_id));
        self.request(ShopService::Order, Method::PATCH, &path)
            .bearer(token)
            .json(&SetQuantity { quantity })
            .execute()
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
}
