//! Admin pages: the product list with stock and a restock form per row,
//! create and edit a product. (Orders are in `admin_orders`.)
//!
//! Only an account with the `admin` role gets here (checked from the session,
//! and product-service checks the token again on every write).
//!
//! The edit form remembers the stock it showed (`stock_loaded`) and sends
//! the stock only when the admin changed it, as the difference
//! (`stock_delta`), which product-service applies to the stock as it is
//! then: fixing a typo never undoes the reservations shoppers made while the
//! form was open, and a restock adds to them. The form shows units available
//! beside units reserved by orders still in checkout. Restocking from the
//! list sends only `stock_delta` (the units entered), for the same reason.

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{ProductCard, here, with_query};
use crate::{
    AppState,
    auth::{admin_token, on_backend_error},
    backend::{
        BackendError,
        products::{Category, ProductChanges, ProductInput, ProductQuery},
    },
    errors::PageError,
    session::{FlashKind, Session},
    views::{FormState, Layout, money, render, render_with_status},
};

/// Products per admin page.
const PER_PAGE: u32 = 50;

/// Whether `value` is a slug: a-z, 0-9, words joined by single dashes.
pub(crate) fn is_slug(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 100
        && value.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// `?page=` on the list.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    #[serde(default)]
    page: String,
}

/// One row of the admin list.
pub(crate) struct AdminRow {
    pub(crate) card: ProductCard,
    pub(crate) edit_url: String,
    /// Where its restock form posts.
    pub(crate) restock_url: String,
}

#[derive(Template)]
#[template(path = "admin_list.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<AdminRow>,
    prev: Option<String>,
    next: Option<String>,
    total: u64,
}

/// `GET /admin/products`.
pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Query(params): Query<ListParams>,
) -> Result<Response, PageError> {
    admin_token(&state, &session, &here(&uri)).await?;
    let page = params.page.parse::<u32>().unwrap_or(1).clamp(1, 10_000);
    let listing = state
        .backend
        .products(&ProductQuery {
            sort: Some("name".to_owned()),
            page,
            per_page: PER_PAGE,
            ..ProductQuery::default()
        })
        .await
        .map_err(|err| PageError::from_backend(&err, &here(&uri)))?;
    let pages = u32::try_from(listing.total.div_ceil(u64::from(PER_PAGE))).unwrap_or(u32::MAX);
    let link = |number: u32| with_query("/admin/products", &[("page", &number.to_string())]);
    let layout = Layout::new(&state, &session, "Products · Admin").await;
    Ok(render(&ListPage {
        layout,
        rows: listing
            .items
            .iter()
            .map(|product| AdminRow {
                card: ProductCard::from(product),
                edit_url: format!("/admin/products/{}", crate::backend::segment(&product.id)),
                restock_url: format!(
                    "/admin/products/{}/restock",
                    crate::backend::segment(&product.id)
                ),
            })
            .collect(),
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        total: listing.total,
    }))
}

#[derive(Template)]
#[template(path = "admin_form.html")]
struct FormPage {
    layout: Layout,
    heading: String,
    action: String,
    form: FormState,
    categories: Vec<Category>,
    view_url: Option<String>,
    /// Available vs reserved, on the edit form (absent when unknown).
    stock_note: Option<String>,
}

/// `GET /admin/products/new`.
pub(crate) async fn new_form(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, PageError> {
    admin_token(&state, &session, &here(&uri)).await?;
    let mut form = FormState::default();
    form.set("currency", "USD");
    form.set("stock", "0");
    let layout = Layout::new(&state, &session, "New product · Admin").await;
    let categories = layout.categories.clone();
    Ok(render(&FormPage {
        layout,
        heading: "New product".to_owned(),
        action: "/admin/products".to_owned(),
        form,
        categories,
        view_url: None,
        stock_note: None,
    }))
}

/// `GET /admin/products/{id}`: the edit form, filled in.
pub(crate) async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let token = admin_token(&state, &session, &here(&uri)).await?;
    let product = state
        .backend
        .product(&id)
        .await
        .map_err(|err| PageError::from_backend(&err, &here(&uri)))?;
    let stock_note = stock_note(&state, &token, &product.id).await;
    let mut form = FormState::default();
    form.set("name", &product.name);
    form.set("slug", &product.slug);
    form.set("description", &product.description);
    form.set("price", &decimal(product.price_cents));
    form.set("currency", &product.currency);
    form.set("category", &product.category);
    form.set("stock", &product.stock.to_string());
    form.set("stock_loaded", &product.stock.to_string());
    form.set("image_url", &product.image_url);
    let layout = Layout::new(&state, &session, &format!("Edit {} · Admin", product.name)).await;
    let categories = layout.categories.clone();
    Ok(render(&FormPage {
        layout,
        heading: format!("Edit {}", product.name),
        action: format!("/admin/products/{}", crate::backend::segment(&product.id)),
        form,
        categories,
        view_url: Some(format!(
            "/products/{}",
            crate::backend::segment(&product.slug)
        )),
        stock_note,
    }))
}

/// "12 available, 3 reserved by orders in checkout", read fresh from
/// product-service; `None` when it cannot say (the form works without).
async fn stock_note(state: &AppState, token: &str, id: &str) -> Option<String> {
    let levels = state
        .backend
        .stock_levels(token, id)
        .await
        .inspect_err(|err| tracing::warn!(error = %err, "stock levels unavailable"))
        .ok()?;
    Some(format!(
        "{} available to order now, {} reserved by orders in checkout.",
        levels.available, levels.reserved
    ))
}

/// What the product form posts.
#[derive(Debug, Deserialize)]
pub(crate) struct ProductForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    stock: String,
    /// The stock the edit form showed (absent on the new-product form).
    #[serde(default)]
    stock_loaded: String,
    #[serde(default)]
    image_url: String,
}

/// `POST /admin/products`: creates a product.
pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Form(input): Form<ProductForm>,
) -> Result<Response, PageError> {
    let token = admin_token(&state, &session, &here(&uri)).await?;
    let (mut form, product) = validate(&input);
    if let (Some(product), false) = (product, form.has_errors()) {
        let created = state.backend.create_product(&token, &product).await;
        state.products.invalidate();
        match created {
            Ok(created) => {
                state.categories.invalidate();
                session.update(|data| {
                    data.flash(FlashKind::Success, format!("{} was created.", created.name));
                });
                return Ok(Redirect::to("/admin/products").into_response());
            }
            Err(err @ (BackendError::Unauthorized { .. } | BackendError::Forbidden { .. })) => {
                return Err(on_backend_error(&session, &err, &here(&uri)));
            }
            Err(err) => explain(&mut form, &err),
        }
    }
    let layout = Layout::new(&state, &session, "New product · Admin").await;
    let categories = layout.categories.clone();
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage {
            layout,
            heading: "New product".to_owned(),
            action: "/admin/products".to_owned(),
            form,
            categories,
            view_url: None,
            stock_note: None,
        },
    ))
}

/// `POST /admin/products/{id}`: saves an edit.
pub(crate) async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    uri: Uri,
    Form(input): Form<ProductForm>,
) -> Result<Response, PageError> {
    let token = admin_token(&state, &session, &here(&uri)).await?;
    let (mut form, changes) = validate_edit(&input);
    if let (Some(changes), false) = (changes, form.has_errors()) {
        let saved = state.backend.update_product(&token, &id, &changes).await;
        state.products.invalidate();
        match saved {
            Ok(saved) => {
                session.update(|data| {
                    data.flash(
                        FlashKind::Success,
                        format!(
                            "{} was saved: {} at {}, {} in stock.",
                            saved.name,
                            saved.slug,
                            money(saved.price_cents, &saved.currency),
                            saved.stock
                        ),
                    );
                });
                return Ok(Redirect::to("/admin/products").into_response());
            }
            Err(
                err @ (BackendError::Unauthorized { .. }
                | BackendError::Forbidden { .. }
                | BackendError::NotFound { .. }),
            ) => {
                return Err(on_backend_error(&session, &err, &here(&uri)));
            }
            Err(err) => explain(&mut form, &err),
        }
    }
    let stock_note = stock_note(&state, &token, &id).await;
    let layout = Layout::new(&state, &session, "Edit product · Admin").await;
    let categories = layout.categories.clone();
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage {
            layout,
            heading: "Edit product".to_owned(),
            action: format!("/admin/products/{}", crate::backend::segment(&id)),
            form,
            categories,
            view_url: None,
            stock_note,
        },
    ))
}

/// What a restock form on the product list posts.
#[derive(Debug, Deserialize)]
pub(crate) struct RestockForm {
    /// Units to add.
    #[serde(default)]
    units: String,
    /// The product's name, to say what was restocked.
    #[serde(default)]
    name: String,
}

/// Most units one restock adds.
const MAX_RESTOCK: i64 = 1_000_000;

/// Adds `units` to a product's stock; the shopper pages' product reads
/// are dropped whatever the answer (a lost answer may still have landed).
async fn restocked(
    state: &AppState,
    token: &str,
    id: &str,
    units: i64,
) -> crate::backend::BackendResult<crate::backend::products::Product> {
    let saved = state.backend.restock(token, id, units).await;
    state.products.invalidate();
    saved
}

/// `POST /admin/products/{id}/restock`: adds the units entered to the
/// stock as it is then (`stock_delta`), so reservations are kept; back on
/// the list with what happened.
pub(crate) async fn restock(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<RestockForm>,
) -> Result<Response, PageError> {
    let back = "/admin/products";
    let token = admin_token(&state, &session, back).await?;
    let name = form.name.trim();
    let units = form
        .units
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|units| (1..=MAX_RESTOCK).contains(units));
    let (kind, message) = match units {
        None => (
            FlashKind::Error,
            format!("{name}: enter the units to add, a whole number from 1 to {MAX_RESTOCK}."),
        ),
        Some(units) => match restocked(&state, &token, &id, units).await {
            Ok(saved) => (
                FlashKind::Success,
                format!(
                    "{}: {units} units added, {} in stock now.",
                    saved.name, saved.stock
                ),
            ),
            Err(err @ BackendError::Rejected { .. }) => (
                FlashKind::Error,
                format!(
                    "{name} was not restocked: {}",
                    err.detail()
                        .unwrap_or("product-service refused the change.")
                ),
            ),
            Err(BackendError::Unavailable { .. }) => (
                FlashKind::Error,
                format!(
                    "The catalog is taking a short break, so we cannot tell whether {name} was \
                     restocked. Check its stock below before trying again."
                ),
            ),
            Err(err) => return Err(on_backend_error(&session, &err, back)),
        },
    };
    session.update(|data| data.flash(kind, message));
    Ok(Redirect::to(back).into_response())
}

fn explain(form: &mut FormState, err: &BackendError) {
    match err {
        BackendError::Rejected { .. } if err.kind() == Some("insufficient-stock") => {
            form.error_on(
                "stock",
                err.detail()
                    .unwrap_or("That would take the stock below zero."),
            );
        }
        BackendError::Rejected { status, .. } if status.as_u16() == 409 => {
            form.error_on(
                "slug",
                err.detail()
                    .unwrap_or("This slug is already used by another product."),
            );
        }
        BackendError::Unavailable { .. } => {
            form.summary = Some(
                "The catalog is taking a short break; nothing was saved. Please try again."
                    .to_owned(),
            );
        }
        _ => {
            form.absorb(err.field_errors(), |field| match field {
                "name" => Some("name"),
                "slug" => Some("slug"),
                "description" => Some("description"),
                "price_cents" => Some("price"),
                "currency" => Some("currency"),
                "category" => Some("category"),
                "stock" | "stock_delta" => Some("stock"),
                "image_url" => Some("image_url"),
                _ => None,
            });
            if !form.has_errors() {
                form.summary = Some(
                    err.detail()
                        .unwrap_or("The product could not be saved.")
                        .to_owned(),
                );
            }
        }
    }
}

/// Checks the form and builds what product-service is sent.
fn validate(input: &ProductForm) -> (FormState, Option<ProductInput>) {
    let mut form = FormState::default();
    for (name, value) in [
        ("name", &input.name),
        ("slug", &input.slug),
        ("description", &input.description),
        ("price", &input.price),
        ("currency", &input.currency),
        ("category", &input.category),
        ("stock", &input.stock),
        ("image_url", &input.image_url),
    ] {
        form.set(name, value.trim());
    }
    let name = input.name.trim();
    if name.is_empty() {
        form.error_on("name", "Please give the product a name.");
    }
    let slug = input.slug.trim();
    if !slug.is_empty() && !is_slug(slug) {
        form.error_on(
            "slug",
            "Use a-z, 0-9 and single dashes, like blue-mug; or leave empty.",
        );
    }
    let price = parse_price(&input.price);
    if price.is_none() {
        form.error_on("price", "Please enter a price above zero, like 12.50.");
    }
    let currency = input.currency.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        form.error_on(
            "currency",
            "Please enter a 3-letter currency code, like USD.",
        );
    }
    let category = input.category.trim();
    if !is_slug(category) {
        form.error_on("category", "Please choose a category.");
    }
    let stock = input
        .stock
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| (0..=1_000_000).contains(s));
    if stock.is_none() {
        form.error_on("stock", "Please enter the units on hand, 0 or more.");
    }
    let image_url = input.image_url.trim();
    let product = match (price, stock) {
        (Some(price_cents), Some(stock)) => Some(ProductInput {
            name: name.to_owned(),
            slug: (!slug.is_empty()).then(|| slug.to_owned()),
            description: input.description.trim().to_owned(),
            price_cents,
            currency,
            image_url: (!image_url.is_empty()).then(|| image_url.to_owned()),
            stock,
            category: category.to_owned(),
        }),
        _ => None,
    };
    (form, product)
}

/// Checks the edit form and builds the changes: the stock only when the
/// admin changed it, as the difference from what the form showed.
fn validate_edit(input: &ProductForm) -> (FormState, Option<ProductChanges>) {
    let (mut form, product) = validate(input);
    form.set("stock_loaded", input.stock_loaded.trim());
    let loaded = input.stock_loaded.trim().parse::<i64>().ok();
    if loaded.is_none() {
        form.summary = Some(
            "This form is missing the stock it was opened with; please reload the page and make your change again."
                .to_owned(),
        );
    }
    let changes = product.zip(loaded).map(|(product, loaded)| ProductChanges {
        stock_delta: stock_delta(loaded, product.stock),
        name: product.name,
        slug: product.slug,
        description: product.description,
        price_cents: product.price_cents,
        currency: product.currency,
        image_url: product.image_url,
        category: product.category,
    });
    (form, changes)
}

/// The change to send for a stock field that showed `loaded` and now reads
/// `entered`: nothing when untouched.
fn stock_delta(loaded: i64, entered: i64) -> Option<i64> {
    (entered != loaded).then(|| entered - loaded)
}

/// "12.5" → 1250 cents; at most two decimals, above zero.
fn parse_price(raw: &str) -> Option<i64> {
    let raw = raw
        .trim()
        .trim_start_matches(['$', '€', '£'])
        .replace(',', "");
    let (whole, fraction) = raw.split_once('.').unwrap_or((&raw, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
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
    let cents = whole * 100 + fraction;
    (cents > 0).then_some(cents)
}

/// 1250 → "12.50" (for the edit form).
fn decimal(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_to_cents() {
        assert_eq!(parse_price("12.50"), Some(1250));
        assert_eq!(parse_price("12.5"), Some(1250));
        assert_eq!(parse_price("$1,234"), Some(123_400));
        assert_eq!(parse_price(".99"), Some(99));
        for bad in ["", "0", "0.00", "-1", "1.999", "abc", "1.2.3", "."] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
        assert_eq!(decimal(1250), "12.50");
        assert_eq!(decimal(5), "0.05");
    }

    #[test]
    fn slugs_are_checked() {
        assert!(is_slug("coffee-tea"));
        for bad in ["", "Coffee", "a--b", "-a", "a-", "a b", "ä"] {
            assert!(!is_slug(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_form_keeps_input_and_names_each_problem() {
        let (form, product) = validate(&ProductForm {
            name: String::new(),
            slug: "Bad Slug".into(),
            description: "d".into(),
            price: "free".into(),
            currency: "dollars".into(),
            category: String::new(),
            stock: "-3".into(),
            stock_loaded: String::new(),
            image_url: String::new(),
        });
        assert!(product.is_none());
        for field in ["name", "slug", "price", "currency", "category", "stock"] {
            assert!(form.error(field).is_some(), "{field}");
        }
        assert_eq!(form.value("slug"), "Bad Slug");
    }

    fn edit(stock: &str, stock_loaded: &str) -> ProductForm {
        ProductForm {
            name: "Blue Mug".into(),
            slug: "blue-mug".into(),
            description: "A mug.".into(),
            price: "12.50".into(),
            currency: "usd".into(),
            category: "kitchen".into(),
            stock: stock.into(),
            stock_loaded: stock_loaded.into(),
            image_url: String::new(),
        }
    }

    #[test]
    fn an_edit_sends_the_stock_only_when_it_changed_and_as_a_difference() {
        let (form, untouched) = validate_edit(&edit("7", "7"));
        assert!(!form.has_errors());
        let untouched = untouched.unwrap();
        assert_eq!(untouched.stock_delta, None);
        let body = serde_json::to_value(&untouched).unwrap();
        assert!(body.get("stock").is_none() && body.get("stock_delta").is_none());

        let (_, restock) = validate_edit(&edit("12", "7"));
        assert_eq!(restock.unwrap().stock_delta, Some(5));
        let (_, write_off) = validate_edit(&edit("4", "7"));
        assert_eq!(write_off.unwrap().stock_delta, Some(-3));
    }

    #[test]
    fn an_edit_without_the_stock_it_was_opened_with_is_refused() {
        let (form, changes) = validate_edit(&edit("7", ""));
        assert!(changes.is_none());
        assert!(form.summary.as_deref().unwrap().contains("reload"));
    }
}
