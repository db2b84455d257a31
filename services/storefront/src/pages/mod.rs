//! The pages, one module per part of the shop, and the view models they share.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod admin_orders;
pub(crate) mod cart;
pub(crate) mod catalog;
pub(crate) mod checkout;
pub(crate) mod orders;
pub(crate) mod profile;

use axum::{
    Router,
    http::Uri,
    routing::{any, get, post},
};
use url::form_urlencoded;

use crate::{AppState, backend::products::Product, errors::PageError, views::money};

/// Every page route. The catch-all turns unknown paths (any method) into the
/// 404 page, and wrong methods on known paths get the same page with 405.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(catalog::home))
        .route("/products/{slug}", get(catalog::product))
        .route("/cart", get(cart::show))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{product_id}", post(cart::update))
        .route("/cart/items/{product_id}/remove", post(cart::remove))
        .route("/login", get(account::login_form).post(account::login))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/logout", post(account::logout))
        .route("/account", get(profile::show))
        .route(
            "/account/password",
            get(profile::password_form).post(profile::change_password),
        )
        .route("/checkout", get(checkout::form).post(checkout::submit))
        .route("/checkout/pending", get(checkout::pending))
        .route("/checkout/pending/status", get(checkout::pending_status))
        .route("/orders", get(orders::list))
        .route("/orders/{id}", get(orders::detail))
        .route("/orders/{id}/status", get(orders::status))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/admin/products", get(admin::list).post(admin::create))
        .route("/admin/products/new", get(admin::new_form))
        .route(
            "/admin/products/{id}",
            get(admin::edit_form).post(admin::update),
        )
        .route("/admin/products/{id}/restock", post(admin::restock))
        .route("/admin/orders", get(admin_orders::search))
        .route("/admin/orders/{id}", get(admin_orders::detail))
        .route("/admin/orders/{id}/refunds", post(admin_orders::refund))
        .route("/{*path}", any(not_found))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> PageError {
    PageError::NotFound
}

async fn method_not_allowed() -> PageError {
    PageError::NotFound
}

/// A product as a card in a grid or a line in the cart.
#[derive(Debug, Clone)]
pub(crate) struct ProductCard {
    /// Product id (cart forms post it).
    pub(crate) id: String,
    /// Link target: `/products/{slug}`.
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) price: String,
    /// Same-origin image path.
    pub(crate) image: String,
    pub(crate) category_name: String,
    /// Category slug.
    pub(crate) category: String,
    /// Units on hand.
    pub(crate) stock: i64,
}

impl From<&Product> for ProductCard {
    fn from(product: &Product) -> Self {
        Self {
            id: product.id.clone(),
            url: format!("/products/{}", crate::backend::segment(&product.slug)),
            name: product.name.clone(),
            price: money(product.price_cents, &product.currency),
            image: image_path(&product.image_url),
            category_name: product.category_name.clone(),
            category: product.category.clone(),
            stock: product.stock,
        }
    }
}

impl ProductCard {
    /// "In stock", "Only 3 left" or "Out of stock".
    pub(crate) fn availability(&self) -> String {
        match self.stock {
            i64::MIN..=0 => "Out of stock".to_owned(),
            1..=5 => format!("Only {} left", self.stock),
            _ => "In stock".to_owned(),
        }
    }

    /// Whether the product can be added to the cart.
    pub(crate) fn in_stock(&self) -> bool {
        self.stock > 0
    }
}

/// Product images are same-origin: product-service paths go through the
/// `/images/` proxy; anything else (an outside URL the CSP would block)
/// shows the placeholder.
pub(crate) fn image_path(image_url: &str) -> String {
    if image_url.starts_with("/images/") {
        image_url.to_owned()
    } else {
        "/static/placeholder.svg".to_owned()
    }
}

/// The path and query of the current request, to come back to after login.
pub(crate) fn here(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

/// Builds `path?k=v&...`, leaving out empty values.
pub(crate) fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.append_pair(key, value);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_skip_empty_values_and_escape() {
        assert_eq!(with_query("/", &[("q", ""), ("page", "")]), "/");
        assert_eq!(
            with_query("/", &[("q", "tea & cups"), ("page", "2")]),
            "/?q=tea+%26+cups&page=2"
        );
    }

    #[test]
    fn outside_images_become_the_placeholder() {
        assert_eq!(
            image_path("/images/kitchen/kettle.svg"),
            "/images/kitchen/kettle.svg"
        );
        assert_eq!(
            image_path("https://cdn.example/x.png"),
            "/static/placeholder.svg"
        );
    }
}
