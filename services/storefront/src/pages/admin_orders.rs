//! Admin order pages: find orders (by order id, shopper id or the e-mail
//! they were placed with, and status),
//! one order with its saga history and payments, and refunds.
//!
//! A refund form carries an `Idempotency-Key` minted when the page is
//! rendered, which payment-service requires: a double click, a resubmitted
//! form or a retry after a lost answer sends the same key, so the money goes
//! back once. Reloading the page mints a new key, for the next refund.

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::Uri,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    here,
    orders::{OrderView, StatusView, short_id},
    with_query,
};
use crate::{
    AppState,
    auth::{admin_token, on_backend_error},
    backend::{
        BackendError,
        orders::{Order, OrderQuery},
        segment,
    },
    errors::PageError,
    session::{FlashKind, Session},
    views::{Layout, money, render},
};

/// Orders per page of results.
const PER_PAGE: u32 = 25;

/// The statuses the search offers, with the words shown.
const STATUSES: [(&str, &str); 5] = [
    ("PENDING", "Processing"),
    ("AWAITING_PAYMENT", "Confirming payment"),
    ("PAID", "Paid"),
    ("CANCELLED", "Cancelled"),
    ("REFUNDED", "Refunded"),
];

/// `?q=&status=&page=` of the order search.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchParams {
    /// An order id or a shopper id; empty: every order.
    #[serde(default)]
    q: String,
    /// A status word; empty: any.
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: String,
}

/// One status choice of the search form.
pub(crate) struct StatusChoice {
    pub(crate) code: &'static str,
    pub(crate) label: &'static str,
    pub(crate) selected: bool,
}

/// One order in the results.
pub(crate) struct ResultRow {
    pub(crate) order: OrderView,
    /// The admin page of the order.
    pub(crate) url: String,
    /// The shopper's id, short.
    pub(crate) shopper: String,
    /// A search for the shopper's other orders.
    pub(crate) shopper_url: String,
    /// The e-mail it was placed with (empty when unknown).
    pub(crate) email: String,
}

#[derive(Template)]
#[template(path = "admin_orders.html")]
struct SearchPage {
    layout: Layout,
    q: String,
    statuses: Vec<StatusChoice>,
    rows: Vec<ResultRow>,
    total: u64,
    /// Why the search could not run as asked, next to the field.
    q_error: Option<String>,
    prev: Option<String>,
    next: Option<String>,
}

/// What the search box holds.
#[derive(Debug, PartialEq, Eq)]
enum Needle {
    /// Nothing: every order.
    All,
    /// A UUID: an order id, or else a shopper's id.
    Id(Uuid),
    /// An e-mail the orders were placed with.
    Email(String),
}

fn needle(q: &str) -> Option<Needle> {
    let q = q.trim().trim_start_matches('#');
    if q.is_empty() {
        return Some(Needle::All);
    }
    if q.contains('@') && !q.contains(char::is_whitespace) && q.len() <= 254 {
        return Some(Needle::Email(q.to_owned()));
    }
    Uuid::parse_str(q).ok().map(Needle::Id)
}

fn status_filter(raw: &str) -> Option<&'static str> {
    STATUSES
        .iter()
        .map(|(code, _)| *code)
        .find(|code| *code == raw.trim())
}

/// `GET /admin/orders`: the search form and its results, newest first.
pub(crate) async fn search(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, PageError> {
    let token = admin_token(&state, &session, &here(&uri)).await?;
    let status = status_filter(&params.status);
    let page = params.page.parse::<u32>().unwrap_or(1).clamp(1, 10_000);
    let mut q_error = None;
    let mut query = OrderQuery {
        status: status.map(str::to_owned),
        user_id: None,
        email: None,
        page,
        per_page: PER_PAGE,
    };
    let (orders, total) = match needle(&params.q) {
        None => {
            q_error = Some(
                "Enter an e-mail, or a whole order id or shopper id (like 0192c4f5-8a10-7000-8000-000000000001), or leave it empty."
                    .to_owned(),
            );
            (Vec::new(), 0)
        }
        Some(Needle::Id(id)) => match state.backend.order(&token, &id.to_string()).await {
            Ok(order) => {
                let keep = status.is_none_or(|status| order.status == status);
                (if keep { vec![order] } else { Vec::new() }, u64::from(keep))
            }
            Err(BackendError::NotFound { .. }) => {
                query.user_id = Some(id.to_string());
                find(&state, &session, &token, &query, &uri).await?
            }
            Err(err) => return Err(on_backend_error(&session, &err, &here(&uri))),
        },
        Some(Needle::Email(email)) => {
            query.email = Some(email);
            find(&state, &session, &token, &query, &uri).await?
        }
        Some(Needle::All) => find(&state, &session, &token, &query, &uri).await?,
    };
    let pages = u32::try_from(total.div_ceil(u64::from(PER_PAGE))).unwrap_or(u32::MAX);
    let link = |number: u32| {
        with_query(
            "/admin/orders",
            &[
                ("q", params.q.trim()),
                ("status", status.unwrap_or_default()),
                ("page", &number.to_string()),
            ],
        )
    };
    let layout = Layout::new(&state, &session, "Orders · Admin").await;
    Ok(render(&SearchPage {
        layout,
        q: params.q.trim().to_owned(),
        statuses: STATUSES
            .iter()
            .map(|(code, label)| StatusChoice {
                code,
                label,
                selected: status == Some(*code),
            })
            .collect(),
        rows: orders.iter().map(row).collect(),
        total,
        q_error,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    }))
}

async fn find(
    state: &AppState,
    session: &Session,
    token: &str,
    query: &OrderQuery,
    uri: &Uri,
) -> Result<(Vec<Order>, u64), PageError> {
    let list = state
        .backend
        .find_orders(token, query)
        .await
        .map_err(|err| on_backend_error(session, &err, &here(uri)))?;
    Ok((list.items, list.total))
}

fn row(order: &Order) -> ResultRow {
    ResultRow {
        order: OrderView::new(order),
        url: format!("/admin/orders/{}", segment(&order.id)),
        shopper: short_id(&order.user_id),
        shopper_url: with_query("/admin/orders", &[("q", &order.user_id)]),
        email: order.email.clone().unwrap_or_default(),
    }
}

/// One status in an order's history.
pub(crate) struct HistoryRow {
    pub(crate) status: StatusView,
    /// What moved it, in words.
    pub(crate) step: String,
    pub(crate) reason: Option<String>,
    /// When, UTC, to the second.
    pub(crate) at: String,
    /// The machine-readable time, for `<time datetime>`.
    pub(crate) datetime: String,
}

/// A payment of the order, with its refund form.
pub(crate) struct PaymentRow {
    pub(crate) id: String,
    /// ISO 4217 code (the refund form says it back).
    pub(crate) currency: String,
    pub(crate) status: String,
    pub(crate) card: String,
    pub(crate) amount: String,
    pub(crate) refunded: String,
    /// What is left to refund, e.g. `12.50` (empty: nothing).
    pub(crate) refundable: String,
    /// The key this rendering's refund form sends.
    pub(crate) idempotency_key: String,
}

#[derive(Template)]
#[template(path = "admin_order.html")]
struct OrderPage {
    layout: Layout,
    order: OrderView,
    shopper_id: String,
    shopper_url: String,
    email: Option<String>,
    cancellation_reason: Option<String>,
    history: Vec<HistoryRow>,
    history_unavailable: bool,
    payments: Vec<PaymentRow>,
    payments_unavailable: bool,
}

/// Words for a history step.
fn step_words(step: &str) -> String {
    match step {
        "placed" => "Order placed",
        "stock_reserved" => "Stock reserved",
        "stock_rejected" => "Stock short",
        "payment_succeeded" => "Payment captured",
        "payment_failed" => "Payment declined",
        "fully_refunded" => "Fully refunded",
        "expired" => "Deadline passed",
        "shopper_cancelled" => "Cancelled by the shopper",
        "recorded" => "Recorded (before history was kept)",
        other => return other.replace('_', " "),
    }
    .to_owned()
}

/// `GET /admin/orders/{id}`: the order, its saga history and its payments
/// with a refund form for each captured one.
pub(crate) async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    if Uuid::parse_str(&id).is_err() {
        return Err(PageError::NotFound);
    }
    let token = admin_token(&state, &session, &here(&uri)).await?;
    let order = state
        .backend
        .order(&token, &id)
        .await
        .map_err(|err| on_backend_error(&session, &err, &here(&uri)))?;
    let (history, payments) = tokio::join!(
        state.backend.order_history(&token, &id),
        state.backend.payments_for_order(&token, &id)
    );
    let history_unavailable = history.is_err();
    let history = history
        .inspect_err(|err| tracing::warn!(error = %err, "order history unavailable"))
        .unwrap_or_default()
        .into_iter()
        .map(|entry| {
            let at = chrono::DateTime::parse_from_rfc3339(&entry.at).ok();
            HistoryRow {
                status: StatusView::of(&entry.status),
                step: step_words(&entry.step),
                reason: entry.reason,
                at: at.map_or_else(
                    || entry.at.clone(),
                    |at| {
                        at.with_timezone(&chrono::Utc)
                            .format("%Y-%m-%d %H:%M:%S%.3f UTC")
                            .to_string()
                    },
                ),
                datetime: entry.at,
            }
        })
        .collect();
    let payments_unavailable = payments.is_err();
    let payments = payments
        .inspect_err(|err| tracing::warn!(error = %err, "payments unavailable"))
        .unwrap_or_default()
        .into_iter()
        .map(|payment| {
            let left = payment.amount_cents - payment.refunded_cents;
            PaymentRow {
                card: format!("{} ···· {}", payment.brand, payment.last4),
                amount: money(payment.amount_cents, &payment.currency),
                refunded: money(payment.refunded_cents, &payment.currency),
                refundable: if payment.status == "SUCCEEDED" && left > 0 {
                    format!("{}.{:02}", left / 100, left % 100)
                } else {
                    String::new()
                },
                id: payment.id,
                currency: payment.currency,
                status: payment.status,
                idempotency_key: Uuid::new_v4().to_string(),
            }
        })
        .collect();
    let view = OrderView::new(&order);
    let layout = Layout::new(
        &state,
        &session,
        &format!("Order {} · Admin", view.short_id),
    )
    .await;
    Ok(render(&OrderPage {
        layout,
        shopper_url: with_query("/admin/orders", &[("q", &order.user_id)]),
        shopper_id: order.user_id.clone(),
        email: order.email.clone(),
        cancellation_reason: order.cancellation_reason.clone(),
        order: view,
        history,
        history_unavailable,
        payments,
        payments_unavailable,
    }))
}

/// What a refund form posts.
#[derive(Debug, Deserialize)]
pub(crate) struct RefundForm {
    #[serde(default)]
    payment_id: String,
    /// Empty: everything not refunded yet.
    #[serde(default)]
    amount: String,
    #[serde(default)]
    idempotency_key: String,
    /// The payment's currency, to say the amount refunded.
    #[serde(default)]
    currency: String,
}

/// "12.5" → 1250; `None` for anything that is not an amount above zero
/// with at most two decimals.
fn parse_amount(raw: &str) -> Option<i64> {
    let raw = raw.trim().trim_start_matches(['$', '€', '£']);
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 2
        || whole.len() > 10
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    Some(whole * 100 + fraction).filter(|cents| *cents > 0)
}

/// `POST /admin/orders/{id}/refunds`: refunds a payment of the order, all
/// of what is left or the amount entered, under the form's key; back on the
/// order's page with what happened.
pub(crate) async fn refund(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Result<Response, PageError> {
    if Uuid::parse_str(&id).is_err() {
        return Err(PageError::NotFound);
    }
    let back = format!("/admin/orders/{}", segment(&id));
    let token = admin_token(&state, &session, &back).await?;
    let amount = form.amount.trim();
    let amount_cents = if amount.is_empty() {
        None
    } else {
        match parse_amount(amount) {
            Some(cents) => Some(cents),
            None => {
                return Ok(notice(
                    &session,
                    &back,
                    FlashKind::Error,
                    "Enter the amount to refund, like 12.50, or leave it empty to refund everything left."
                        .to_owned(),
                ));
            }
        }
    };
    if Uuid::parse_str(&form.payment_id).is_err() || form.idempotency_key.trim().is_empty() {
        return Ok(notice(
            &session,
            &back,
            FlashKind::Error,
            "This refund form is incomplete; nothing was refunded. Please reload the page and try again."
                .to_owned(),
        ));
    }
    let result = state
        .backend
        .refund(
            &token,
            &form.payment_id,
            amount_cents,
            form.idempotency_key.trim(),
        )
        .await;
    let (kind, message) = match result {
        Ok(refund) => (
            FlashKind::Success,
            format!(
                "Refunded {} for order #{}.",
                money(refund.amount_cents, form.currency.trim()),
                short_id(&id)
            ),
        ),
        Err(err @ BackendError::Rejected { .. }) => (
            FlashKind::Error,
            format!(
                "The refund was refused: {}",
                err.detail().unwrap_or("payment-service did not say why.")
            ),
        ),
        Err(BackendError::Unavailable { .. }) => (
            FlashKind::Error,
            "Payments are taking a short break, so we cannot tell whether the refund went through. \
             Submit the same form again: it cannot pay out twice."
                .to_owned(),
        ),
        Err(err) => return Err(on_backend_error(&session, &err, &back)),
    };
    Ok(notice(&session, &back, kind, message))
}

fn notice(session: &Session, back: &str, kind: FlashKind, message: String) -> Response {
    session.update(|data| data.flash(kind, message));
    Redirect::to(back).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_box_takes_an_id_or_nothing() {
        assert_eq!(needle("  "), Some(Needle::All));
        let id = Uuid::new_v4();
        assert_eq!(needle(&format!(" #{id} ")), Some(Needle::Id(id)));
        assert_eq!(needle("4E5F6A7B"), None);
        assert_eq!(
            needle(" Ann@Example.com "),
            Some(Needle::Email("Ann@Example.com".to_owned()))
        );
        assert_eq!(needle("ann @example.com"), None);
        assert_eq!(status_filter("PAID"), Some("PAID"));
        assert_eq!(status_filter("SHIPPED"), None);
        assert_eq!(status_filter(""), None);
    }

    #[test]
    fn refund_amounts_parse_to_cents() {
        assert_eq!(parse_amount("12.5"), Some(1250));
        assert_eq!(parse_amount("$3"), Some(300));
        assert_eq!(parse_amount(".05"), Some(5));
        for bad in ["0", "-1", "1.234", "abc", ".", "1e3"] {
            assert_eq!(parse_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_step_reads_as_words() {
        assert_eq!(step_words("payment_failed"), "Payment declined");
        assert_eq!(step_words("something_new"), "something new");
    }
}
