//! Checkout: shipping address and a test card, then the order.
//!
//! The card goes from the form straight to payment-service
//! (`POST /api/payments/methods`); only the returned payment-method id is used
//! after that. The number and CVC are never logged, never stored in the
//! session and never written back into the form.
//!
//! One attempt to order is one `Idempotency-Key` (minted when the form is
//! first shown) and, while the card stays the same, one tokenized payment
//! method, both kept in the session ([`CheckoutAttempt`]) until an order is
//! known to be placed: a double submit or a retry sends the very same
//! request, which order-service replays instead of ordering twice. When
//! order-service does not answer in time the order may still be placed, so
//! the shopper is told it is being checked, and `/checkout/pending` looks
//! for it by its payment method until it appears (then follows its status
//! on the order page) or until order-service's own request timeout has long
//! passed without it (then nothing was ordered, which is said only then).

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{cart, here};
use crate::{
    AppState,
    auth::{access_token, now, on_backend_error},
    backend::{
        BackendError,
        orders::{NewOrder, ShippingAddress},
        payments::Card,
    },
    errors::PageError,
    session::{CheckoutAttempt, FlashKind, Session},
    views::{FormState, Layout, render, render_with_status, shopper_name},
};

/// Where a checkout whose answer was lost is followed.
const PENDING: &str = "/checkout/pending";

/// How long after an unanswered order request its order is looked for.
/// order-service abandons (and rolls back) a request after its
/// `REQUEST_TIMEOUT_SECS` (15 s), so an order that has not appeared twice
/// that long after was not placed.
const CHECK_WINDOW_SECS: i64 = 30;

/// Countries the shop ships to: ISO code and name.
pub(crate) const COUNTRIES: &[(&str, &str)] = &[
    ("US", "United States"),
    ("CA", "Canada"),
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("BE", "Belgium"),
    ("ES", "Spain"),
    ("IT", "Italy"),
    ("SE", "Sweden"),
    ("AU", "Australia"),
    ("JP", "Japan"),
];

/// A country's name from its ISO code (the code itself when unknown).
pub(crate) fn country_name(code: &str) -> String {
    COUNTRIES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or_else(|| code.to_owned(), |(_, name)| (*name).to_owned())
}

/// Longest text accepted in an address field.
const MAX_FIELD: usize = 200;

/// A country choice in the form.
pub(crate) struct CountryOption {
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) selected: bool,
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage {
    layout: Layout,
    cart: cart::CartView,
    form: FormState,
    countries: Vec<CountryOption>,
    idempotency_key: String,
}

fn countries(selected: &str) -> Vec<CountryOption> {
    COUNTRIES
        .iter()
        .map(|&(code, name)| CountryOption {
            code,
            name,
            selected: code == selected,
        })
        .collect()
}

/// `GET /checkout`.
pub(crate) async fn form(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, PageError> {
    access_token(&state, &session, &here(&uri)).await?;
    let attempt = session.read(|data| data.checkout.clone());
    if attempt
        .as_ref()
        .is_some_and(|attempt| attempt.unanswered_since > 0)
    {
        return Ok(Redirect::to(PENDING).into_response());
    }
    let cart = match cart::load(&state, &session, &uri).await? {
        Ok(cart) if cart.lines.is_empty() => return Ok(empty_cart(&session)),
        Ok(cart) => cart,
        Err(err) => return Err(PageError::from_backend(&err, "/checkout")),
    };
    let mut form = FormState::default();
    let name = session.auth().map(|auth| auth.name).unwrap_or_default();
    form.set("name", &name);
    form.set("country", "US");
    let layout = Layout::new(&state, &session, "Checkout").await;
    Ok(render(&CheckoutPage {
        layout,
        cart,
        countries: countries("US"),
        form,
        idempotency_key: attempt.map_or_else(|| Uuid::new_v4().to_string(), |attempt| attempt.key),
    }))
}

fn empty_cart(session: &Session) -> Response {
    session.update(|data| {
        data.flash(FlashKind::Info, "Your cart is empty. Add something first.");
    });
    Redirect::to("/cart").into_response()
}

/// What the checkout form posts.
#[derive(Deserialize)]
pub(crate) struct CheckoutForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    exp_month: String,
    #[serde(default)]
    exp_year: String,
    #[serde(default)]
    cvc: String,
    #[serde(default)]
    idempotency_key: String,
}

/// `POST /checkout`: validate, tokenize the card (once per attempt and
/// card), place the order.
pub(crate) async fn submit(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Form(input): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    let token = access_token(&state, &session, "/checkout").await?;
    let attempt = session.read(|data| data.checkout.clone());
    if attempt
        .as_ref()
        .is_some_and(|attempt| attempt.unanswered_since > 0)
    {
        // The last order request of this attempt is still unaccounted for.
        return Ok(Redirect::to(PENDING).into_response());
    }
    // The session's attempt wins over the form (an older tab's key).
    let key = attempt.as_ref().map_or_else(
        || {
            Uuid::parse_str(&input.idempotency_key)
                .map_or_else(|_| Uuid::new_v4().to_string(), |key| key.to_string())
        },
        |attempt| attempt.key.clone(),
    );
    let mut form = FormState::default();
    let address = validate_address(&input, &mut form);
    let payment_card = validate_card(&input, &mut form, chrono::Utc::now().date_naive());
    if let (Some(payment_card), false) = (payment_card, form.has_errors()) {
        match place(&state, &session, &token, &key, &address, &payment_card).await {
            Ok(order_id) => return Ok(placed(&state, &session, &order_id)),
            Err(err @ BackendError::Unauthorized { .. }) => {
                return Err(on_backend_error(&session, &err, "/checkout"));
            }
            Err(BackendError::Unavailable {
                service: storekeeper_contract::ShopService::Order,
                outcome_unknown: true,
                reason,
            }) => {
                tracing::warn!(reason, "no answer to an order; following it up");
                session.update(|data| {
                    if let Some(attempt) = data.checkout.as_mut() {
                        attempt.unanswered_since = now();
                    }
                });
                return Ok(Redirect::to(PENDING).into_response());
            }
            Err(err) => explain_failure(&mut form, &err),
        }
    }
    state.metrics.checkouts_refused.inc();
    let cart = match cart::load(&state, &session, &uri).await? {
        Ok(cart) if cart.lines.is_empty() => return Ok(empty_cart(&session)),
        Ok(cart) => cart,
        Err(err) => return Err(PageError::from_backend(&err, "/checkout")),
    };
    let layout = Layout::new(&state, &session, "Checkout").await;
    let selected = form.value("country").to_owned();
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &CheckoutPage {
            layout,
            cart,
            countries: countries(&selected),
            form,
            idempotency_key: key,
        },
    ))
}

/// The attempt is over: an order exists. Ends it and goes to the order.
fn placed(state: &AppState, session: &Session, order_id: &str) -> Response {
    state.metrics.orders_placed.inc();
    session.update(|data| {
        data.checkout = None;
        data.cart_count = 0;
        data.flash(
            FlashKind::Success,
            "Thank you! Your order is placed. We're confirming the payment now.",
        );
    });
    Redirect::to(&format!("/orders/{}", crate::backend::segment(order_id))).into_response()
}

/// Tokenizes the card unless this attempt already did for this card, then
/// places the order under the attempt's key; returns the order id.
async fn place(
    state: &AppState,
    session: &Session,
    token: &str,
    key: &str,
    address: &ShippingAddress,
    card: &Card,
) -> Result<String, BackendError> {
    let tag = card.tag();
    let known = session.read(|data| {
        data.checkout
            .as_ref()
            .filter(|attempt| {
                attempt.key == key && attempt.card == tag && !attempt.payment_method_id.is_empty()
            })
            .map(|attempt| attempt.payment_method_id.clone())
    });
    let method = if let Some(method) = known {
        method
    } else {
        let method = state.backend.tokenize_card(token, card).await?.id;
        session.update(|data| {
            data.checkout = Some(CheckoutAttempt {
                key: key.to_owned(),
                payment_method_id: method.clone(),
                card: tag,
                unanswered_since: 0,
            });
        });
        method
    };
    let email = session.auth().map(|auth| auth.email);
    let order = state
        .backend
        .place_order(
            token,
            key,
            &NewOrder {
                payment_method_id: &method,
                shipping_address: address,
                email: email.as_deref().filter(|email| !email.is_empty()),
            },
        )
        .await?;
    Ok(order.id)
}

#[derive(Template)]
#[template(path = "checkout_pending.html")]
struct PendingPage {
    layout: Layout,
    /// order-service did not answer the last look either.
    orders_down: bool,
}

/// What following an unanswered order found.
enum Followed {
    /// The order exists.
    Placed(String),
    /// No order, and none can appear any more.
    NotPlaced,
    /// Not known yet; `orders_down` when order-service did not answer.
    Checking { orders_down: bool },
}

/// Looks for the order of the session's unanswered attempt.
async fn follow(
    state: &AppState,
    session: &Session,
    token: &str,
    attempt: &CheckoutAttempt,
) -> Result<Followed, PageError> {
    match state.backend.orders(token).await {
        Ok(orders) => {
            let found = orders
                .into_iter()
                .find(|order| order.payment_method_id == attempt.payment_method_id)
                .map(|order| order.id);
            Ok(verdict(found, now() - attempt.unanswered_since))
        }
        Err(err @ BackendError::Unauthorized { .. }) => {
            Err(on_backend_error(session, &err, PENDING))
        }
        Err(err) => {
            tracing::info!(error = %err, "orders unavailable while following a checkout");
            Ok(Followed::Checking { orders_down: true })
        }
    }
}

/// What the orders list says, `waited` seconds after the unanswered request.
fn verdict(found: Option<String>, waited: i64) -> Followed {
    match found {
        Some(order_id) => Followed::Placed(order_id),
        None if waited > CHECK_WINDOW_SECS => Followed::NotPlaced,
        None => Followed::Checking { orders_down: false },
    }
}

/// The session's attempt whose order request went unanswered, if any.
fn unanswered(session: &Session) -> Option<CheckoutAttempt> {
    session.read(|data| {
        data.checkout
            .clone()
            .filter(|attempt| attempt.unanswered_since > 0)
    })
}

/// `GET /checkout/pending`: "your order is being checked" until the order
/// of an unanswered checkout shows up (then its page) or surely will not
/// (then the checkout form again, saying nothing was ordered).
pub(crate) async fn pending(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    let token = access_token(&state, &session, PENDING).await?;
    let Some(attempt) = unanswered(&session) else {
        return Ok(Redirect::to("/orders").into_response());
    };
    match follow(&state, &session, &token, &attempt).await? {
        Followed::Placed(order_id) => Ok(placed(&state, &session, &order_id)),
        Followed::NotPlaced => {
            session.update(|data| {
                if let Some(attempt) = data.checkout.as_mut() {
                    attempt.unanswered_since = 0;
                }
                data.flash(
                    FlashKind::Info,
                    "We checked: the order did not go through, so nothing was ordered and your \
                     card was not charged. You can place it again.",
                );
            });
            Ok(Redirect::to("/checkout").into_response())
        }
        Followed::Checking { orders_down } => {
            let layout = Layout::new(&state, &session, "Checking your order").await;
            Ok(render(&PendingPage {
                layout,
                orders_down,
            }))
        }
    }
}

/// What the page's status script polls (the order page's format).
#[derive(serde::Serialize)]
struct PendingJson {
    label: &'static str,
    terminal: bool,
}

/// `GET /checkout/pending/status`: whether reloading the pending page would
/// lead on (to the order or back to checkout), for the page's script.
pub(crate) async fn pending_status(State(state): State<AppState>, session: Session) -> Response {
    let Ok(token) = access_token(&state, &session, PENDING).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let terminal = match unanswered(&session) {
        None => true,
        Some(attempt) => !matches!(
            follow(&state, &session, &token, &attempt).await,
            Ok(Followed::Checking { .. })
        ),
    };
    axum::Json(PendingJson {
        label: if terminal { "Found" } else { "Checking" },
        terminal,
    })
    .into_response()
}

fn explain_failure(form: &mut FormState, err: &BackendError) {
    match err {
        BackendError::Unavailable { service, .. } => {
            form.summary = Some(format!(
                "{} is taking a short break, so nothing was ordered and your card was not \
                 charged. Please try again in a moment.",
                shopper_name(*service)
            ));
        }
        BackendError::Rejected { status, .. }
            if status.as_u16() == 409 || err.kind() == Some("idempotency-key-reused") =>
        {
            form.summary = Some(
                "This checkout was already sent. Please check your orders before trying again."
                    .to_owned(),
            );
        }
        _ => {
            form.absorb(err.field_errors(), |field| match field {
                "card_number" | "number" => Some("card_number"),
                "exp_month" => Some("exp_month"),
                "exp_year" => Some("exp_year"),
                "cvc" => Some("cvc"),
                "shipping_address.name" | "name" => Some("name"),
                "shipping_address.line1" | "line1" => Some("line1"),
                "shipping_address.city" | "city" => Some("city"),
                "shipping_address.postal_code" | "postal_code" => Some("postal_code"),
                "shipping_address.country" | "country" => Some("country"),
                _ => None,
            });
            if !form.has_errors() {
                form.summary = Some(
                    err.detail()
                        .unwrap_or(
                            "We couldn't place the order. Please check the form and try again.",
                        )
                        .to_owned(),
                );
            }
        }
    }
}

/// Checks the address fields; keeps them (trimmed) for a re-render.
fn validate_address(input: &CheckoutForm, form: &mut FormState) -> ShippingAddress {
    let fields = [
        (
            "name",
            input.name.trim(),
            "Please enter the recipient's name.",
        ),
        (
            "line1",
            input.line1.trim(),
            "Please enter the street address.",
        ),
        ("line2", input.line2.trim(), ""),
        ("city", input.city.trim(), "Please enter the city."),
        (
            "postal_code",
            input.postal_code.trim(),
            "Please enter the postal code.",
        ),
    ];
    for (name, value, missing) in fields {
        form.set(name, value);
        if value.is_empty() && !missing.is_empty() {
            form.error_on(name, missing);
        } else if value.chars().count() > MAX_FIELD {
            form.error_on(
                name,
                format!("Please keep this under {MAX_FIELD} characters."),
            );
        }
    }
    let country = input.country.trim();
    form.set("country", country);
    if !COUNTRIES.iter().any(|(code, _)| *code == country) {
        form.error_on("country", "Please choose a country we ship to.");
    }
    form.set("exp_month", input.exp_month.trim());
    form.set("exp_year", input.exp_year.trim());
    ShippingAddress {
        name: input.name.trim().to_owned(),
        line1: input.line1.trim().to_owned(),
        line2: input.line2.trim().to_owned(),
        city: input.city.trim().to_owned(),
        postal_code: input.postal_code.trim().to_owned(),
        country: country.to_owned(),
    }
}

/// Checks the card fields; the number and CVC are never kept in `form`.
fn validate_card(
    input: &CheckoutForm,
    form: &mut FormState,
    today: chrono::NaiveDate,
) -> Option<Card> {
    use chrono::Datelike;

    let digits: String = input
        .card_number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let number_ok = (12..=19).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && luhn(&digits);
    if !number_ok {
        form.error_on("card_number", "Please check the card number.");
    }
    let month = input
        .exp_month
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=12).contains(m));
    if month.is_none() {
        form.error_on("exp_month", "Please enter the month as 1 to 12.");
    }
    let year = input
        .exp_year
        .trim()
        .parse::<u32>()
        .ok()
        .map(|y| if y < 100 { 2000 + y } else { y });
    let this_year = u32::try_from(today.year()).unwrap_or(0);
    let year = year.filter(|y| (this_year..=this_year + 20).contains(y));
    if year.is_none() {
        form.error_on("exp_year", "Please enter the year on the card, like 2030.");
    }
    if let (Some(month), Some(year)) = (month, year)
        && year == this_year
        && month < today.month()
    {
        form.error_on("exp_month", "This card has expired.");
    }
    let cvc = input.cvc.trim();
    if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        form.error_on(
            "cvc",
            "Please enter the 3 or 4 digits on the back of the card.",
        );
    }
    Some(Card {
        number: digits,
        exp_month: month?,
        exp_year: year?,
        cvc: cvc.to_owned(),
    })
}

/// The Luhn checksum every card number satisfies.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(card: &str, month: &str, year: &str, cvc: &str) -> CheckoutForm {
        CheckoutForm {
            name: "Ann Lee".into(),
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Springfield".into(),
            postal_code: "12345".into(),
            country: "US".into(),
            card_number: card.into(),
            exp_month: month.into(),
            exp_year: year.into(),
            cvc: cvc.into(),
            idempotency_key: String::new(),
        }
    }

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()
    }

    #[test]
    fn test_cards_pass_luhn() {
        for card in ["4242424242424242", "4000000000000002", "4000000000009995"] {
            assert!(luhn(card), "{card}");
        }
        assert!(!luhn("4242424242424241"));
    }

    #[test]
    fn a_good_card_is_accepted_with_spaces() {
        let mut form = FormState::default();
        let card = validate_card(
            &input("4242 4242 4242 4242", "12", "30", "123"),
            &mut form,
            today(),
        );
        assert!(!form.has_errors());
        let card = card.unwrap();
        assert_eq!(card.number, "4242424242424242");
        assert_eq!(card.exp_year, 2030);
    }

    #[test]
    fn bad_cards_get_field_errors_and_are_never_kept() {
        let mut form = FormState::default();
        let card = validate_card(&input("1234", "13", "1999", "1"), &mut form, today());
        assert!(card.is_none());
        for field in ["card_number", "exp_month", "exp_year", "cvc"] {
            assert!(form.error(field).is_some(), "{field}");
        }
        assert_eq!(form.value("card_number"), "");
        assert_eq!(form.value("cvc"), "");
    }

    #[test]
    fn an_expired_card_is_refused() {
        let mut form = FormState::default();
        validate_card(
            &input("4242424242424242", "5", "2026", "123"),
            &mut form,
            today(),
        );
        assert_eq!(form.error("exp_month"), Some("This card has expired."));
    }

    #[test]
    fn missing_address_fields_are_named() {
        let mut form = FormState::default();
        let mut bad = input("", "", "", "");
        bad.line1 = "  ".into();
        bad.country = "XX".into();
        validate_address(&bad, &mut form);
        assert!(form.error("line1").is_some());
        assert!(form.error("country").is_some());
        assert!(form.error("name").is_none());
        assert_eq!(form.value("city"), "Springfield");
    }

    #[test]
    fn an_unanswered_order_is_called_not_placed_only_after_the_window() {
        assert!(matches!(
            verdict(Some("o1".into()), 999),
            Followed::Placed(id) if id == "o1"
        ));
        for waited in [0, 15, CHECK_WINDOW_SECS] {
            assert!(
                matches!(
                    verdict(None, waited),
                    Followed::Checking { orders_down: false }
                ),
                "{waited}"
            );
        }
        assert!(matches!(
            verdict(None, CHECK_WINDOW_SECS + 1),
            Followed::NotPlaced
        ));
    }

    #[test]
    fn a_card_is_told_apart_by_its_last_digits_and_expiry() {
        let card = |number: &str, exp_month| Card {
            number: number.into(),
            exp_month,
            exp_year: 2034,
            cvc: "123".into(),
        };
        assert_eq!(card("4242424242424242", 3).tag(), "4242 03/2034");
        assert_ne!(
            card("4242424242424242", 3).tag(),
            card("5555555555554444", 3).tag()
        );
        assert_ne!(
            card("4242424242424242", 3).tag(),
            card("4242424242424242", 4).tag()
        );
    }

    #[test]
    fn card_debug_output_hides_the_number() {
        let card = Card {
            number: "4242424242424242".into(),
            exp_month: 1,
            exp_year: 2030,
            cvc: "123".into(),
        };
        let shown = format!("{card:?}");
        assert!(!shown.contains("4242") && !shown.contains("123"), "{shown}");
    }
}
