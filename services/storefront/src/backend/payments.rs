//! payment-service: tokenizing a card, reading an order's payments, and
//! refunds (admins).
//!
//! The card number passes through the storefront's memory on its way to
//! payment-service and nowhere else: it is never logged, never put in the
//! session and never echoed back into a form.

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use storekeeper_contract::ShopService;

use super::{Backend, BackendResult};

/// A card as the checkout form collected it.
#[derive(Serialize)]
pub(crate) struct Card {
    /// The digits only.
    #[serde(rename = "card_number")]
    pub(crate) number: String,
    /// 1 to 12.
    pub(crate) exp_month: u32,
    /// Four digits.
    pub(crate) exp_year: u32,
    /// Three or four digits.
    pub(crate) cvc: String,
}

impl Card {
    /// Last four digits and expiry: tells a retry with the same card from
    /// another card without keeping the number.
    pub(crate) fn tag(&self) -> String {
        let last4 = self.number.get(self.number.len().saturating_sub(4)..);
        format!(
            "{} {:02}/{}",
            last4.unwrap_or_default(),
            self.exp_month,
            self.exp_year
        )
    }
}

impl fmt::Debug for Card {
    // Hand-written so a stray `{:?}` cannot leak the number or the CVC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card").finish_non_exhaustive()
    }
}

/// The token that stands for a card from now on.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PaymentMethod {
    /// The id the order is placed with.
    pub(crate) id: String,
}

/// A charge attempt for an order.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Payment {
    /// The payment's id (refunds are made against it).
    #[serde(default)]
    pub(crate) id: String,
    /// `PENDING`, `SUCCEEDED`, `FAILED`, `REFUNDED`...
    pub(crate) status: String,
    /// The amount charged, minor units.
    #[serde(default)]
    pub(crate) amount_cents: i64,
    /// How much of it went back, minor units.
    #[serde(default)]
    pub(crate) refunded_cents: i64,
    /// ISO 4217 code.
    #[serde(default)]
    pub(crate) currency: String,
    /// Card brand, e.g. `visa`.
    #[serde(default)]
    pub(crate) brand: String,
    /// The card's last four digits.
    #[serde(default)]
    pub(crate) last4: String,
    /// Why it failed, in words (when it did).
    #[serde(default)]
    pub(crate) failure_reason: Option<String>,
}

/// A refund payment-service made.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Refund {
    /// Minor units given back by this refund.
    pub(crate) amount_cents: i64,
}

/// Body of `POST /api/payments/{id}/refunds`.
#[derive(Serialize)]
struct NewRefund {
    /// Absent: everything not refunded yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_cents: Option<i64>,
}

/// The answer of `GET /api/payments`.
#[derive(Debug, Deserialize)]
struct PaymentList {
    items: Vec<Payment>,
}

impl Backend {
    /// `POST /api/payments/methods`: trades the card for a payment method id.
    pub(crate) async fn tokenize_card(
        &self,
        token: &str,
        card: &Card,
    ) -> BackendResult<PaymentMethod> {
        self.request(ShopService::Payment, Method::POST, "/api/payments/methods")
            .bearer(token)
            .json(card)
            .fetch()
            .await
    }

    /// `GET /api/payments?order_id=`: the order's charge attempts.
    pub(crate) async fn payments_for_order(
        &self,
        token: &str,
        order_id: &str,
    ) -> BackendResult<Vec<Payment>> {
        let list: PaymentList = self
            .request(ShopService::Payment, Method::GET, "/api/payments")
            .bearer(token)
            .query(&[("order_id", order_id)])
            .fetch()
            .await?;
        Ok(list.items)
    }

    /// `POST /api/payments/{id}/refunds` (admin) with an `Idempotency-Key`:
    /// the same key replays the first refund instead of paying out again.
    pub(crate) async fn refund(
        &self,
        token: &str,
        payment_id: &str,
        amount_cents: Option<i64>,
        idempotency_key: &str,
    ) -> BackendResult<Refund> {
        let path = format!("/api/payments/{}/refunds", super::segment(payment_id));
        self.request(ShopService::Payment, Method::POST, &path)
            .bearer(token)
            .header("Idempotency-Key", idempotency_key)
            .json(&NewRefund { amount_cents })
            .fetch()
            .await
    }
}
