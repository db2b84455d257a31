//! Before a load run: tops every product the mix visits up to a fixed stock,
//! so a run never finds the catalog sold out by earlier runs and its
//! figures do not depend on them.
//!
//! It logs in as the local shop's admin (`.local/state.json`, written by
//! `cargo xtask up`; `ADMIN_EMAIL` / `ADMIN_PASSWORD` win) through
//! user-service and adds the missing units through product-service's
//! `PATCH /api/products/{id}` with `stock_delta`, as the admin pages do, so
//! the product caches are invalidated as for any admin change.

use anyhow::{Context, Result, bail};
use reqwest::Client;
use serde::Deserialize;
use serde_json::json;

use storekeeper_contract::ShopService;

use crate::layout;
use crate::local_state::LocalState;

/// Units each visited product holds when a run starts: far more than a run
/// buys (a 60 s run at 2,000 requests/s adds about 14,000 units to carts,
/// spread over the home page's products).
pub const STOCK_AT_START: i64 = 100_000;

/// A product as product-service shows it: what restocking needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    /// Stable id (the PATCH path).
    pub id: String,
    /// Units shoppers can still order.
    pub stock: i64,
}

/// One product's top-up: units to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUp {
    /// Product id.
    pub id: String,
    /// Units to add (always positive).
    pub units: i64,
}

/// What to add so every product holds at least `target` units; products
/// already at or above it are left alone (a run never removes stock).
pub fn plan(products: &[Product], target: i64) -> Vec<TopUp> {
    products
        .iter()
        .filter(|product| product.stock < target)
        .map(|product| TopUp {
            id: product.id.clone(),
            units: target - product.stock,
        })
        .collect()
}

/// Tops up the products behind `slugs` on the local shop; returns how many
/// needed units.
pub async fn restock(slugs: &[String]) -> Result<usize> {
    let client = Client::new();
    let token = admin_token(&client).await?;
    let products_url = format!("{}/api/products", ShopService::Product.local_url());
    let mut products = Vec::with_capacity(slugs.len());
    for slug in slugs {
        let product: Product = client
            .get(format!("{products_url}/{slug}"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("reading product {slug} from product-service"))?
            .json()
            .await
            .with_context(|| format!("decoding product {slug}"))?;
        products.push(product);
    }
    let top_ups = plan(&products, STOCK_AT_START);
    for top_up in &top_ups {
        let units = i32::try_from(top_up.units).context("a top-up beyond i32")?;
        client
            .patch(format!("{products_url}/{}", top_up.id))
            .bearer_auth(&token)
            .json(&json!({ "stock_delta": units }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("restocking product {}", top_up.id))?;
    }
    Ok(top_ups.len())
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
}

/// Logs in as the local admin through user-service.
async fn admin_token(client: &Client) -> Result<String> {
    let path = layout::state_dir().join("state.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {}: restocking needs the admin login `cargo xtask up` creates \
             (or pass --no-restock)",
            path.display()
        )
    })?;
    let state: LocalState =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
    let email = std::env::var("ADMIN_EMAIL").unwrap_or(state.admin_email);
    let password = std::env::var("ADMIN_PASSWORD").unwrap_or(state.admin_password);
    let response = client
        .post(format!("{}/api/users/login", ShopService::User.local_url()))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .context("logging in as the admin through user-service")?;
    if !response.status().is_success() {
        bail!("the admin login was refused: {}", response.status());
    }
    let tokens: Tokens = response.json().await.context("decoding the admin login")?;
    Ok(tokens.access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, stock: i64) -> Product {
        Product {
            id: id.to_owned(),
            stock,
        }
    }

    #[test]
    fn tops_up_to_the_target_and_leaves_full_products_alone() {
        let products = [
            product("sold-out", 0),
            product("some-left", 40),
            product("full", 100),
            product("overfull", 250),
        ];
        assert_eq!(
            plan(&products, 100),
            [
                TopUp {
                    id: "sold-out".to_owned(),
                    units: 100
                },
                TopUp {
                    id: "some-left".to_owned(),
                    units: 60
                },
            ]
        );
    }
}
