//! What every page shares: the layout data, money formatting, form state,
//! and turning a template into a response.

use std::collections::HashMap;

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use storekeeper_contract::ShopService;
use storekeeper_kit::problem::FieldError;

use crate::{
    AppState,
    backend::products::Category,
    session::{Flash, Session},
};

/// The header, navigation and notice every page shows.
pub(crate) struct Layout {
    /// The page's `<title>` (the shop name is appended).
    pub(crate) title: String,
    /// The session's CSRF token, for the logout form in the header.
    pub(crate) csrf: String,
    /// Display name of the logged-in shopper.
    pub(crate) user_name: Option<String>,
    /// Whether to show the admin link.
    pub(crate) is_admin: bool,
    /// Units in the cart, for the badge.
    pub(crate) cart_count: u32,
    /// Category navigation (empty when the catalog is down).
    pub(crate) categories: Vec<Category>,
    /// Slug of the category being browsed, to mark it current.
    pub(crate) current_category: String,
    /// The search words, kept in the search box.
    pub(crate) search: String,
    /// One-shot notice from the previous action.
    pub(crate) flash: Option<Flash>,
}

impl Layout {
    /// Builds the layout for a page titled `title`.
    pub(crate) async fn new(state: &AppState, session: &Session, title: &str) -> Self {
        let categories = state.categories.get(&state.backend).await;
        let flash = session.take_flash();
        let (csrf, auth, cart_count) =
            session.read(|data| (data.csrf.clone(), data.auth.clone(), data.cart_count));
        Self {
            title: title.to_owned(),
            csrf,
            user_name: auth.as_ref().map(|auth| auth.name.clone()),
            is_admin: auth.as_ref().is_some_and(crate::session::Auth::is_admin),
            cart_count,
            categories: categories.as_ref().clone(),
            current_category: String::new(),
            search: String::new(),
            flash,
        }
    }

    /// Marks a category as the one being browsed.
    #[must_use]
    pub(crate) fn with_category(mut self, slug: &str) -> Self {
        slug.clone_into(&mut self.current_category);
        self
    }

    /// Keeps the search words in the header's search box.
    #[must_use]
    pub(crate) fn with_search(mut self, words: &str) -> Self {
        words.clone_into(&mut self.search);
        self
    }
}

/// Renders a template as an HTML response (500 page if the template fails).
pub(crate) fn render<T: Template>(page: &T) -> Response {
    render_with_status(StatusCode::OK, page)
}

/// Like [`render`] with another status (e.g. 422 for a form with errors).
pub(crate) fn render_with_status<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(
                    "<!doctype html><title>Error</title><h1>Something went wrong</h1>\
                      <p>Please go back and try again.</p>",
                ),
            )
                .into_response()
        }
    }
}

/// Formats minor units for people: `$1,234.50`, `€9.99`, `¥500`, `12.00 CHF`.
pub(crate) fn money(cents: i64, currency: &str) -> String {
    let (symbol, decimals) = match currency {
        "USD" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "JPY" => ("¥", 0),
        _ => ("", 2),
    };
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let scale = 10_u64.pow(decimals);
    let whole = group_thousands(cents / scale);
    let amount = if decimals == 0 {
        whole
    } else {
        format!("{whole}.{:02}", cents % scale)
    };
    if symbol.is_empty() {
        format!("{sign}{amount} {currency}")
    } else {
        format!("{sign}{symbol}{amount}")
    }
}

fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// What the shopper is told a service does, in "… is taking a short
/// break" notices.
pub(crate) fn shopper_name(service: ShopService) -> &'static str {
    match service {
        ShopService::User => "Sign-in",
        ShopService::Product => "The catalog",
        ShopService::Order => "The cart and orders",
        ShopService::Payment => "Payments",
        ShopService::Storefront => "The shop",
    }
}

/// A form's values (to show again) and its field errors (to show beside them).
#[derive(Debug, Default, Clone)]
pub(crate) struct FormState {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// A message about the whole form (e.g. "email or password is wrong").
    pub(crate) summary: Option<String>,
}

impl FormState {
    /// Keeps `value` for field `name`.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_owned(), value.to_owned());
    }

    /// The value to put back in field `name`.
    pub(crate) fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// Records an error for field `name` (the first one wins).
    pub(crate) fn error_on(&mut self, name: &str, message: impl Into<String>) {
        self.errors
            .entry(name.to_owned())
            .or_insert_with(|| message.into());
    }

    pub(crate) fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }

    /// Whether any field (or the form) has an error.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.summary.is_some()
    }

    /// Takes an API's field errors; `rename` maps API field names to form
    /// field names (unknown fields go to the summary so none is lost).
    pub(crate) fn absorb(
        &mut self,
        errors: &[FieldError],
        rename: impl Fn(&str) -> Option<&'static str>,
    ) {
        for error in errors {
            if let Some(field) = rename(&error.field) {
                self.error_on(field, sentence(&error.message));
            } else {
                let line = format!("{}: {}", error.field, error.message);
                self.summary = Some(match self.summary.take() {
                    Some(summary) => format!("{summary} {line}"),
                    None => line,
                });
            }
        }
    }
}

/// Capitalises an API message so it reads as a sentence ("must be..." → "Must be...").
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_per_currency() {
        assert_eq!(money(4900, "USD"), "$49.00");
        assert_eq!(money(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(money(5, "EUR"), "€0.05");
        assert_eq!(money(500, "JPY"), "¥500");
        assert_eq!(money(1200, "CHF"), "12.00 CHF");
        assert_eq!(money(-250, "GBP"), "-£2.50");
        assert_eq!(money(0, "USD"), "$0.00");
        assert_eq!(money(100_000, "USD"), "$1,000.00");
    }

    #[test]
    fn api_field_errors_land_on_form_fields() {
        let mut form = FormState::default();
        form.absorb(
            &[
                FieldError::new("email", "must contain @"),
                FieldError::new("mystery", "is odd"),
            ],
            |field| (field == "email").then_some("email"),
        );
        assert_eq!(form.error("email"), Some("Must contain @"));
        assert_eq!(form.summary.as_deref(), Some("mystery: is odd"));
        assert!(form.has_errors());
    }
}
