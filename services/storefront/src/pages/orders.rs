//! Order history, order detail (the confirmation page) and its live status.
//!
//! After checkout the shopper lands on the order's page while the saga runs.
//! Until the order is PAID or CANCELLED the page shows a progress note; a
//! small external script polls `/orders/{id}/status` and reloads the page
//! when the status is final. Without JavaScript a `<noscript>` meta refresh
//! does the same, and a "Refresh status" link is always there. Until it is
//! paid the page also offers to cancel it (`POST /orders/{id}/cancel`).

use askama::Template;
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
};
use serde::Serialize;

use super::here;
use crate::{
    AppState,
    auth::{access_token, on_backend_error},
    backend::{
        BackendError,
        orders::{Order, ShippingAddress},
    },
    errors::PageError,
    session::{FlashKind, Session},
    views::{Layout, money, render},
};

/// How an order status reads and looks.
pub(crate) struct StatusView {
    /// The API's word, e.g. `PAID`.
    pub(crate) code: String,
    pub(crate) label: &'static str,
    /// CSS modifier: `pending`, `paid`, `cancelled`, `refunded`.
    pub(crate) class: &'static str,
    /// No further change is expected.
    pub(crate) terminal: bool,
    /// The shopper may still cancel it (not paid yet).
    pub(crate) cancellable: bool,
}

impl StatusView {
    /// Describes an order status.
    pub(crate) fn of(code: &str) -> Self {
        let (label, class, terminal) = match code {
            "AWAITING_PAYMENT" => ("Confirming payment", "pending", false),
            "PAID" => ("Paid", "paid", true),
            "CANCELLED" => ("Cancelled", "cancelled", true),
            "REFUNDED" => ("Refunded", "refunded", true),
            // PENDING, and any status a newer order-service may add.
            _ => ("Processing", "pending", false),
        };
        Self {
            code: code.to_owned(),
            label,
            class,
            terminal,
            cancellable: matches!(code, "PENDING" | "AWAITING_PAYMENT"),
        }
    }
}

/// The last 8 hex digits of an id, upper-case.
pub(crate) fn short_id(id: &str) -> String {
    let digits: Vec<char> = id.chars().filter(char::is_ascii_hexdigit).collect();
    digits[digits.len().saturating_sub(8)..]
        .iter()
        .collect::<String>()
        .to_uppercase()
}

/// A line of an order, ready to show.
pub(crate) struct LineView {
    /// Product name (or a stand-in when unknown).
    pub(crate) name: String,
    pub(crate) quantity: u32,
    /// Formatted line total (empty when the API gave no price).
    pub(crate) total: String,
}

/// An order, ready to show.
pub(crate) struct OrderView {
    /// Full id (links).
    pub(crate) id: String,
    /// Short id people can read out: the last 8 hex digits (ids are UUIDv7,
    /// whose first digits are a timestamp shared by every order that minute).
    pub(crate) short_id: String,
    pub(crate) status: StatusView,
    pub(crate) total: String,
    /// Formatted date placed.
    pub(crate) placed: String,
    /// Units ordered.
    pub(crate) units: u32,
    pub(crate) lines: Vec<LineView>,
    pub(crate) address: ShippingAddress,
    /// The destination country's name.
    pub(crate) country: String,
}

impl OrderView {
    /// The view of `order` (the shopper's pages and the admin's).
    pub(crate) fn new(order: &Order) -> Self {
        Self {
            id: order.id.clone(),
            short_id: short_id(&order.id),
            status: StatusView::of(&order.status),
            total: money(order.total_cents, &order.currency),
            placed: chrono::DateTime::parse_from_rfc3339(&order.created_at)
                .map(|at| at.format("%B %-d, %Y").to_string())
                .unwrap_or_default(),
            units: order.items.iter().map(|item| item.quantity).sum(),
            lines: order
                .items
                .iter()
                .map(|item| LineView {
                    name: item.name.clone(),
                    quantity: item.quantity,
                    total: money(
                        item.unit_price_cents * i64::from(item.quantity),
                        &order.currency,
                    ),
                })
                .collect(),
            address: order.shipping_address.clone(),
            country: crate::pages::checkout::country_name(&order.shipping_address.country),
        }
    }
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    layout: Layout,
    orders: Vec<OrderView>,
}

/// `GET /orders`: the shopper's order history.
pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, PageError> {
    let token = access_token(&state, &session, &here(&uri)).await?;
    let orders = state
        .backend
        .orders(&token)
        .await
        .map_err(|err| on_backend_error(&session, &err, &here(&uri)))?;
    let layout = Layout::new(&state, &session, "Your orders").await;
    Ok(render(&OrdersPage {
        layout,
        orders: orders.iter().map(OrderView::new).collect(),
    }))
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    layout: Layout,
    order: OrderView,
    outcome: Option<String>,
    declined: bool,
}

/// `GET /orders/{id}`: the order and, while it settles, its progress.
pub(crate) async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(PageError::NotFound);
    }
    let token = access_token(&state, &session, &here(&uri)).await?;
    let order = state
        .backend
        .order(&token, &id)
        .await
        .map_err(|err| on_backend_error(&session, &err, &here(&uri)))?;
    let (outcome, declined) = outcome(&state, &token, &order).await;
    let view = OrderView::new(&order);
    let layout = Layout::new(&state, &session, &format!("Order {}", view.short_id)).await;
    Ok(render(&OrderPage {
        layout,
        order: view,
        outcome,
        declined,
    }))
}

/// For a cancelled order: why, in words; and whether a card was declined.
async fn outcome(state: &AppState, token: &str, order: &Order) -> (Option<String>, bool) {
    if order.status != "CANCELLED" {
        return (None, false);
    }
    let failed = match state.backend.payments_for_order(token, &order.id).await {
        Ok(payments) => payments
            .into_iter()
            .find(|payment| payment.status == "FAILED"),
        Err(err) => {
            tracing::info!(error = %err, "payments unavailable for a cancelled order");
            None
        }
    };
    match failed {
        Some(payment) => {
            // "the card has insufficient funds" adds something; "the card
            // was declined" would only repeat the sentence it goes into.
            let reason = payment
                .failure_reason
                .filter(|reason| !reason.contains("declined"))
                .map(|reason| format!(": {}", reason.trim_end_matches('.')))
                .unwrap_or_default();
            (
                Some(format!(
                    "Your card was declined{reason}. The order was cancelled and you have not \
                     been charged. You can try again with another card."
                )),
                true,
            )
        }
        None => (
            Some(match &order.cancellation_reason {
                Some(reason) if reason == SHOPPER_REASON => "You cancelled this order. Nothing \
                    is charged for it: a payment already taken is refunded in full."
                    .to_owned(),
                Some(reason) => {
                    format!("This order was cancelled: {reason}. You have not been charged.")
                }
                None => "This order was cancelled. You have not been charged.".to_owned(),
            }),
            false,
        ),
    }
}

/// order-service's reason for an order its shopper cancelled.
const SHOPPER_REASON: &str = "cancelled by the shopper";

/// `POST /orders/{id}/cancel`: the shopper cancels an order not paid yet;
/// back on the order's page with a notice either way.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(PageError::NotFound);
    }
    let back = format!("/orders/{}", crate::backend::segment(&id));
    let token = access_token(&state, &session, &back).await?;
    let notice = match state.backend.cancel_order(&token, &id).await {
        Ok(order) => (
            FlashKind::Success,
            format!(
                "Order #{} was cancelled. Nothing is charged for it.",
                short_id(&order.id)
            ),
        ),
        Err(BackendError::Rejected { .. }) => (
            FlashKind::Error,
            "This order can no longer be cancelled: it is already paid or cancelled. \
             A paid order can be refunded by the shop."
                .to_owned(),
        ),
        Err(BackendError::Unavailable { .. }) => (
            FlashKind::Error,
            "Orders are taking a short break, so we could not confirm the cancellation. \
             The status below is the order's; please try again in a moment."
                .to_owned(),
        ),
        Err(err) => return Err(on_backend_error(&session, &err, &back)),
    };
    session.update(|data| data.flash(notice.0, notice.1));
    Ok(Redirect::to(&back).into_response())
}

/// The JSON the status script polls.
#[derive(Serialize)]
struct StatusJson {
    status: String,
    label: &'static str,
    terminal: bool,
}

/// `GET /orders/{id}/status`: the order's status as JSON, for the page's script.
pub(crate) async fn status(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    if uuid::Uuid::parse_str(&id).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(token) = access_token(&state, &session, "/orders").await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match state.backend.order(&token, &id).await {
        Ok(order) => {
            let view = StatusView::of(&order.status);
            Json(StatusJson {
                status: view.code,
                label: view.label,
                terminal: view.terminal,
            })
            .into_response()
        }
        Err(BackendError::NotFound { .. }) => StatusCode::NOT_FOUND.into_response(),
        Err(BackendError::Unauthorized { .. }) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{StatusView, short_id};

    #[test]
    fn short_ids_use_the_random_end_of_the_id() {
        assert_eq!(short_id("019ab2c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"), "4E5F6A7B");
        assert_eq!(short_id("abc"), "ABC");
    }

    #[test]
    fn only_paid_cancelled_and_refunded_are_final() {
        for (code, terminal) in [
            ("PENDING", false),
            ("AWAITING_PAYMENT", false),
            ("PAID", true),
            ("CANCELLED", true),
            ("REFUNDED", true),
            ("SOMETHING_NEW", false),
        ] {
            assert_eq!(StatusView::of(code).terminal, terminal, "{code}");
        }
    }
}
