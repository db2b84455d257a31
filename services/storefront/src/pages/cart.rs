//! The cart: add, show, change quantity, remove.
//!
//! A guest's cart lives in the session cookie (so a shopper can fill a cart
//! before registering, as in any shop); a logged-in shopper's cart lives in
//! order-service. At login the guest lines move to order-service.

use askama::Template;
use axum::{
    Form,
    extract::{Path, State},
    http::Uri,
    response::{IntoResponse, Redirect, Response},
};
use futures::future::join_all;
use serde::Deserialize;

use super::{ProductCard, here};
use crate::{
    AppState,
    auth::{access_token, on_backend_error},
    backend::{BackendError, BackendResult, orders::CartItem},
    errors::PageError,
    session::{FlashKind, Session},
    views::{Layout, money, render},
};

/// Most units of one product per order line.
pub(crate) const MAX_QUANTITY: u32 = 99;

#[derive(Debug, Deserialize)]
pub(crate) struct AddForm {
    product_id: String,
    #[serde(default)]
    quantity: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QuantityForm {
    #[serde(default)]
    quantity: String,
}

/// Parses a quantity field: blank is 1, anything else must be 0..=99.
fn parse_quantity(raw: &str, allow_zero: bool) -> Option<u32> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Some(1);
    }
    let value: u32 = raw.parse().ok()?;
    let low = u32::from(!allow_zero);
    (low..=MAX_QUANTITY).contains(&value).then_some(value)
}

/// `POST /cart/items`: adds a product, then shows the cart.
pub(crate) async fn add(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Form(form): Form<AddForm>,
) -> Result<Response, PageError> {
    let Some(quantity) = parse_quantity(&form.quantity, false) else {
        return Err(PageError::Rejected(format!(
            "Please choose a quantity from 1 to {MAX_QUANTITY}."
        )));
    };
    let product = state
        .products
        .product(&state.backend, &form.product_id)
        .await
        .map_err(|err| PageError::from_backend(&err, "/"))?;
    if product.stock <= 0 {
        session.update(|data| {
            data.flash(
                FlashKind::Error,
                format!("Sorry, {} is out of stock.", product.name),
            );
        });
        return Ok(back_to_product(&product.slug));
    }
    if session.auth().is_some() {
        let token = access_token(&state, &session, &here(&uri)).await?;
        match state
            .backend
            .add_to_cart(&token, &product.id, quantity)
            .await
        {
            Ok(cart) => session.update(|data| data.cart_count = cart.units()),
            Err(err @ BackendError::Rejected { .. }) => {
                session.update(|data| data.flash(FlashKind::Error, refusal(&err)));
                return Ok(back_to_product(&product.slug));
            }
            Err(err) => return Err(on_backend_error(&session, &err, "/cart")),
        }
    } else if !session.update(|data| data.add_guest_item(&product.id, quantity)) {
        session.update(|data| {
            data.flash(
                FlashKind::Error,
                "Your cart is full. Log in or register to add more products.",
            );
        });
        return Ok(Redirect::to("/cart").into_response());
    }
    state.metrics.cart_adds.inc();
    session.update(|data| {
        data.flash(
            FlashKind::Success,
            format!("Added {} to your cart.", product.name),
        );
    });
    Ok(Redirect::to("/cart").into_response())
}

fn back_to_product(slug: &str) -> Response {
    Redirect::to(&format!("/products/{}", crate::backend::segment(slug))).into_response()
}

/// `POST /cart/items/{product_id}`: sets the quantity (0 removes).
pub(crate) async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(product_id): Path<String>,
    Form(form): Form<QuantityForm>,
) -> Result<Response, PageError> {
    let Some(quantity) = parse_quantity(&form.quantity, true) else {
        session.update(|data| {
            data.flash(
                FlashKind::Error,
                format!("Please choose a quantity from 0 to {MAX_QUANTITY}."),
            );
        });
        return Ok(Redirect::to("/cart").into_response());
    };
    set_quantity(&state, &session, &product_id, quantity).await?;
    session.update(|data| {
        if data.flash.is_none() {
            data.flash(FlashKind::Success, "Your cart was updated.");
        }
    });
    Ok(Redirect::to("/cart").into_response())
}

/// `POST /cart/items/{product_id}/remove`.
pub(crate) async fn remove(
    State(state): State<AppState>,
    session: Session,
    Path(product_id): Path<String>,
) -> Result<Response, PageError> {
    set_quantity(&state, &session, &product_id, 0).await?;
    session.update(|data| {
        if data.flash.is_none() {
            data.flash(FlashKind::Success, "The item was removed.");
        }
    });
    Ok(Redirect::to("/cart").into_response())
}

async fn set_quantity(
    state: &AppState,
    session: &Session,
    product_id: &str,
    quantity: u32,
) -> Result<(), PageError> {
    if session.auth().is_none() {
        session.update(|data| data.set_guest_quantity(product_id, quantity));
        return Ok(());
    }
    let token = access_token(state, session, "/cart").await?;
    let result = if quantity == 0 {
        state
            .backend
            .remove_from_cart(&token, product_id)
            .await
            .map(|()| None)
    } else {
        state
            .backend
            .set_cart_quantity(&token, product_id, quantity)
            .await
            .map(Some)
    };
    match result {
        Ok(Some(cart)) => {
            session.update(|data| data.cart_count = cart.units());
            Ok(())
        }
        Ok(None) | Err(BackendError::NotFound { .. }) => {
            recount(state, session, &token).await;
            Ok(())
        }
        Err(err @ BackendError::Rejected { .. }) => {
            session.update(|data| data.flash(FlashKind::Error, refusal(&err)));
            Ok(())
        }
        Err(err) => Err(on_backend_error(session, &err, "/cart")),
    }
}

/// order-service's reason for refusing a cart change, as one sentence.
fn refusal(err: &BackendError) -> String {
    let reason = match err.field_errors() {
        [] => err
            .detail()
            .unwrap_or("that change is not possible")
            .to_owned(),
        errors => errors
            .iter()
            .map(|error| error.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    };
    format!("Your cart was not changed: {reason}.")
}

/// Moves the guest cart into order-service; lines that fail stay in the cookie.
pub(crate) async fn merge_guest_cart(state: &AppState, session: &Session, token: &str) {
    let lines = session.read(|data| data.guest_cart.clone());
    if lines.is_empty() {
        return;
    }
    let mut kept = Vec::new();
    for line in lines {
        match state
            .backend
            .add_to_cart(token, &line.product_id, line.quantity)
            .await
        {
            Ok(_) | Err(BackendError::NotFound { .. } | BackendError::Rejected { .. }) => {}
            Err(err) => {
                tracing::warn!(error = %err, "guest cart line not merged yet");
                kept.push(line);
            }
        }
    }
    session.update(|data| data.guest_cart = kept);
}

/// Re-reads the server cart to keep the header badge right.
pub(crate) async fn recount(state: &AppState, session: &Session, token: &str) {
    if let Ok(cart) = state.backend.cart(token).await {
        session.update(|data| data.cart_count = cart.units());
    }
}

/// A cart line ready to show.
pub(crate) struct CartLine {
    /// The product, when product-service could describe it.
    pub(crate) product: Option<ProductCard>,
    /// The product id (forms post to it).
    pub(crate) product_id: String,
    pub(crate) quantity: u32,
    /// Formatted line total.
    pub(crate) line_total: String,
}

/// Lines with their products, and the subtotal (per currency, joined).
pub(crate) struct CartView {
    pub(crate) lines: Vec<CartLine>,
    /// "$12.00" or "$12.00 + €3.00" for a mixed cart.
    pub(crate) subtotal: String,
    /// Units in the cart.
    pub(crate) count: u32,
    /// Some product could not be described (product-service down or product gone).
    pub(crate) incomplete: bool,
}

/// The cart's items: the cookie cart for guests, order-service's for shoppers.
async fn items(
    state: &AppState,
    session: &Session,
    uri: &Uri,
) -> Result<BackendResult<Vec<CartItem>>, PageError> {
    if session.auth().is_none() {
        let lines = session.read(|data| data.guest_cart.clone());
        return Ok(Ok(lines
            .into_iter()
            .map(|line| CartItem {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect()));
    }
    let token = access_token(state, session, &here(uri)).await?;
    merge_guest_cart(state, session, &token).await;
    match state.backend.cart(&token).await {
        Ok(cart) => Ok(Ok(cart.items)),
        Err(err @ BackendError::Unauthorized { .. }) => {
            Err(on_backend_error(session, &err, &here(uri)))
        }
        Err(err) => Ok(Err(err)),
    }
}

/// Describes each line with its product (in parallel).
pub(crate) async fn describe(state: &AppState, items: Vec<CartItem>) -> CartView {
    let products = join_all(
        items
            .iter()
            .map(|item| state.products.product(&state.backend, &item.product_id)),
    )
    .await;
    let mut totals: Vec<(String, i64)> = Vec::new();
    let mut incomplete = false;
    let mut count = 0;
    let lines = items
        .into_iter()
        .zip(products)
        .map(|(item, product)| {
            count += item.quantity;
            let (product, line_total) = if let Ok(product) = product {
                let total = product.price_cents * i64::from(item.quantity);
                match totals
                    .iter_mut()
                    .find(|(currency, _)| *currency == product.currency)
                {
                    Some((_, sum)) => *sum += total,
                    None => totals.push((product.currency.clone(), total)),
                }
                let line_total = money(total, &product.currency);
                (Some(ProductCard::from(&product)), line_total)
            } else {
                incomplete = true;
                (None, String::new())
            };
            CartLine {
                product,
                product_id: item.product_id,
                quantity: item.quantity,
                line_total,
            }
        })
        .collect();
    CartView {
        lines,
        subtotal: totals
            .iter()
            .map(|(currency, cents)| money(*cents, currency))
            .collect::<Vec<_>>()
            .join(" + "),
        count,
        incomplete,
    }
}

/// Loads and describes the current shopper's cart (or says why it can't).
pub(crate) async fn load(
    state: &AppState,
    session: &Session,
    uri: &Uri,
) -> Result<BackendResult<CartView>, PageError> {
    Ok(match items(state, session, uri).await? {
        Ok(items) => {
            let view = describe(state, items).await;
            session.update(|data| data.cart_count = view.count);
            Ok(view)
        }
        Err(err) => Err(err),
    })
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage {
    layout: Layout,
    cart: Option<CartView>,
    unavailable: bool,
    logged_in: bool,
    max_quantity: u32,
}

/// `GET /cart`.
pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, PageError> {
    let loaded = load(&state, &session, &uri).await?;
    let layout = Layout::new(&state, &session, "Your cart").await;
    let unavailable = loaded.is_err();
    Ok(render(&CartPage {
        layout,
        cart: loaded.ok(),
        unavailable,
        logged_in: session.auth().is_some(),
        max_quantity: MAX_QUANTITY,
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn quantities_are_bounded() {
        assert_eq!(parse_quantity("", false), Some(1));
        assert_eq!(parse_quantity(" 3 ", false), Some(3));
        assert_eq!(parse_quantity("0", false), None);
        assert_eq!(parse_quantity("0", true), Some(0));
        assert_eq!(parse_quantity("100", true), None);
        assert_eq!(parse_quantity("-1", true), None);
        assert_eq!(parse_quantity("two", true), None);
    }
}
