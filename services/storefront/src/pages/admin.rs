//! Admin pages: the product list with stock, create and edit a product.
//!
//! Only an account with the `admin` role gets here (checked from the session,
//! and product-service checks the token again on every write).

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
        products::{Category, ProductInput, ProductQuery},
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
    }))
}

/// `GET /admin/products/{id}`: the edit form, filled in.
pub(crate) async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    admin_token(&state, &session, &here(&uri)).await?;
    let product = state
        .backend
        .product(&id)
        .await
        .map_err(|err| PageError::from_backend(&err, &here(&uri)))?;
    let mut form = FormState::default();
    form.set("name", &product.name);
    form.set("slug", &product.slug);
    form.set("description", &product.description);
    form.set("price", &decimal(product.price_cents));
    form.set("currency", &product.currency);
    form.set("category", &product.category);
    form.set("stock", &product.stock.to_string());
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
    }))
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
        match state.backend.create_product(&token, &product).await {
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
    let (mut form, product) = validate(&input);
    if let (Some(product), false) = (product, form.has_errors()) {
        match state.backend.update_product(&token, &id, &product).await {
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
        },
    ))
}

fn explain(form: &mut FormState, err: &BackendError) {
    match err {
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
                "stock" => Some("stock"),
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
            image_url: String::new(),
        });
        assert!(product.is_none());
        for field in ["name", "slug", "price", "currency", "category", "stock"] {
            assert!(form.error(field).is_some(), "{field}");
        }
        assert_eq!(form.value("slug"), "Bad Slug");
    }
}
