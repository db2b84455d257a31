//! The cart's rules: how many units of a product a line holds, how many
//! lines a cart holds, and only products the catalog knows. The cart
//! itself lives in PostgreSQL, one per shopper.

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    catalog::{Catalog, CatalogError},
    store::{self, Added, CartItem},
};

/// Most units of one product in a cart.
pub(crate) const MAX_QUANTITY: i32 = 99;
/// Most lines in a cart.
pub(crate) const MAX_LINES: i64 = 50;

/// Why a cart edit was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CartError {
    #[error("must be between {min} and {MAX_QUANTITY}")]
    Quantity { min: i32 },
    #[error("no such product")]
    UnknownProduct,
    #[error("a cart holds at most {MAX_LINES} different products")]
    TooManyLines,
    #[error("a cart holds at most {MAX_QUANTITY} of one product")]
    LineFull,
    #[error("product {0} is not in the cart")]
    NotInCart(Uuid),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn check_quantity(quantity: i32, min: i32) -> Result<(), CartError> {
    if (min..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(CartError::Quantity { min })
    }
}

/// Adds units of a product that product-service knows (creating the line);
/// returns the cart after it.
pub(crate) async fn add(
    pool: &PgPool,
    catalog: &Catalog,
    user: Uuid,
    product: Uuid,
    quantity: i32,
) -> Result<Vec<CartItem>, CartError> {
    check_quantity(quantity, 1)?;
    if catalog.product(product).await?.is_none() {
        return Err(CartError::UnknownProduct);
    }
    match store::add_to_cart(pool, user, product, quantity, MAX_QUANTITY, MAX_LINES).await? {
        Added::Line(cart) => Ok(cart),
        Added::LineFull => Err(CartError::LineFull),
        Added::CartFull => Err(CartError::TooManyLines),
    }
}

/// Sets a line's quantity; 0 removes the line.
pub(crate) async fn set_quantity(
    pool: &PgPool,
    user: Uuid,
    product: Uuid,
    quantity: i32,
) -> Result<(), CartError> {
    check_quantity(quantity, 0)?;
    let found = if quantity == 0 {
        store::remove_from_cart(pool, user, product).await?
    } else {
        store::set_quantity(pool, user, product, quantity).await?
    };
    if found {
        Ok(())
    } else {
        Err(CartError::NotInCart(product))
    }
}
