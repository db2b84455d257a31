//! Catalog types and the rules a product must satisfy.
//!
//! Validation is pure: it turns client input into values the database will
//! accept, or into a list of field problems a person can fix. The HTTP layer
//! renders those problems; the database CHECK constraints are only the last
//! line of defence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use storekeeper_kit::FieldError;

use crate::currency;

/// Longest product name we accept, in characters.
pub(crate) const NAME_MAX: usize = 200;
/// Longest description we accept, in characters.
pub(crate) const DESCRIPTION_MAX: usize = 5_000;
/// Longest slug we accept, in bytes (slugs are ASCII).
pub(crate) const SLUG_MAX: usize = 100;
/// Longest image URL we accept, in bytes.
pub(crate) const IMAGE_URL_MAX: usize = 2_048;
/// Highest price we accept, in minor units: keeps `price * quantity` far from overflow.
pub(crate) const PRICE_MAX: i64 = 10_000_000_000;

/// A product category, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Category {
    /// Stable id.
    pub(crate) id: Uuid,
    /// URL-friendly unique name, used to filter the product list.
    #[schema(example = "coffee-tea")]
    pub(crate) slug: String,
    /// Display name.
    #[schema(example = "Coffee & Tea")]
    pub(crate) name: String,
    /// One or two sentences for the category page.
    pub(crate) description: String,
}

/// A product, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Product {
    /// Stable id.
    pub(crate) id: Uuid,
    /// URL-friendly unique name; `GET /api/products/{slug}` also finds the product.
    #[schema(example = "pour-over-coffee-kettle")]
    pub(crate) slug: String,
    /// Display name.
    pub(crate) name: String,
    /// Plain-text description.
    pub(crate) description: String,
    /// Price in minor units of `currency` (cents for USD). Never a float.
    #[schema(example = 4_900)]
    pub(crate) price_cents: i64,
    /// ISO 4217 currency code.
    #[schema(example = "USD")]
    pub(crate) currency: String,
    /// Absolute URL or a path served by this service (`/images/...`).
    pub(crate) image_url: String,
    /// Units on hand, never below zero.
    pub(crate) stock: i32,
    /// Slug of the product's category.
    pub(crate) category: String,
    /// Display name of the product's category.
    pub(crate) category_name: String,
    /// When the product was created.
    pub(crate) created_at: DateTime<Utc>,
    /// When the product was last changed.
    pub(crate) updated_at: DateTime<Utc>,
}

/// Body of `POST /api/products`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// Display name, 1 to 200 characters.
    pub(crate) name: String,
    /// Unique slug; derived from the name when absent.
    #[serde(default)]
    pub(crate) slug: Option<String>,
    /// Plain-text description, at most 5000 characters.
    #[serde(default)]
    pub(crate) description: String,
    /// Price in minor units, greater than zero.
    pub(crate) price_cents: i64,
    /// ISO 4217 code, e.g. `USD`.
    pub(crate) currency: String,
    /// Absolute http(s) URL or a path starting with `/`; a generated placeholder when absent.
    #[serde(default)]
    pub(crate) image_url: Option<String>,
    /// Units on hand, zero or more (default 0).
    #[serde(default)]
    pub(crate) stock: i32,
    /// Slug of an existing category.
    pub(crate) category: String,
}

/// Body of `PATCH /api/products/{id}`: every field optional, at least one present.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductPatch {
    /// New display name.
    pub(crate) name: Option<String>,
    /// New unique slug.
    pub(crate) slug: Option<String>,
    /// New description.
    pub(crate) description: Option<String>,
    /// New price in minor units.
    pub(crate) price_cents: Option<i64>,
    /// New ISO 4217 code.
    pub(crate) currency: Option<String>,
    /// New image URL.
    pub(crate) image_url: Option<String>,
    /// New absolute stock level. It overwrites the reservations and
    /// releases made since the caller read the product: prefer `stock_delta`.
    pub(crate) stock: Option<i32>,
    /// Units to add (restock) or, when negative, remove (write-off),
    /// applied to the stock as it is when the patch lands, so reservations
    /// made meanwhile are kept. Not with `stock`.
    pub(crate) stock_delta: Option<i32>,
    /// Slug of the new category.
    pub(crate) category: Option<String>,
}

/// A product's stock as the admin sees it (`GET /api/products/{id}/stock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct StockLevels {
    /// The product.
    pub(crate) product_id: Uuid,
    /// Units on hand that shoppers can still order (reserved units are
    /// already taken off): the product's `stock`.
    pub(crate) available: i32,
    /// Units held by orders still in checkout (reserved, neither paid nor
    /// cancelled yet); they come back if those orders are cancelled.
    pub(crate) reserved: i64,
}

/// A product that passed validation and is ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidProduct {
    /// Unique slug.
    pub(crate) slug: String,
    /// Trimmed name.
    pub(crate) name: String,
    /// Trimmed description.
    pub(crate) description: String,
    /// Price in minor units.
    pub(crate) price_cents: i64,
    /// Upper-case ISO 4217 code.
    pub(crate) currency: String,
    /// Checked image URL.
    pub(crate) image_url: String,
    /// Units on hand.
    pub(crate) stock: i32,
    /// Category slug (existence is checked by the store).
    pub(crate) category: String,
}

/// A patch that passed validation; `None` means "leave as is".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ValidPatch {
    /// New slug.
    pub(crate) slug: Option<String>,
    /// New name.
    pub(crate) name: Option<String>,
    /// New description.
    pub(crate) description: Option<String>,
    /// New price.
    pub(crate) price_cents: Option<i64>,
    /// New currency.
    pub(crate) currency: Option<String>,
    /// New image URL.
    pub(crate) image_url: Option<String>,
    /// New stock level.
    pub(crate) stock: Option<i32>,
    /// Units to add to (or, negative, remove from) the current stock.
    pub(crate) stock_delta: Option<i32>,
    /// New category slug.
    pub(crate) category: Option<String>,
}

impl NewProduct {
    /// Checks every field and reports all problems at once.
    pub(crate) fn validate(self) -> Result<ValidProduct, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = collect(&mut errors, name(&self.name));
        let slug = if let Some(slug) = &self.slug {
            collect(&mut errors, check_slug("slug", slug))
        } else {
            let derived = slugify(&self.name);
            if derived.is_none() {
                errors.push(FieldError::new(
                    "slug",
                    "cannot derive a slug from this name; send a `slug` of a-z, 0-9 and dashes",
                ));
            }
            derived
        };
        let description = collect(&mut errors, description(&self.description));
        let price_cents = collect(&mut errors, price(self.price_cents));
        let currency = collect(&mut errors, currency_code(&self.currency));
        let stock = collect(&mut errors, stock(self.stock));
        let category = collect(&mut errors, check_slug("category", &self.category));
        let image_url = match (&self.image_url, &slug, &category) {
            (Some(url), _, _) => collect(&mut errors, image_url(url)),
            (None, Some(slug), Some(category)) => Some(placeholder_image(category, slug)),
            (None, _, _) => None,
        };
        let (
            Some(name),
            Some(slug),
            Some(description),
            Some(price_cents),
            Some(currency),
            Some(image_url),
            Some(stock),
            Some(category),
        ) = (
            name,
            slug,
            description,
            price_cents,
            currency,
            image_url,
            stock,
            category,
        )
        else {
            return Err(errors);
        };
        Ok(ValidProduct {
            slug,
            name,
            description,
            price_cents,
            currency,
            image_url,
            stock,
            category,
        })
    }
}

impl ProductPatch {
    /// Checks the fields that are present; an empty patch is an error.
    pub(crate) fn validate(self) -> Result<ValidPatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        let patch = ValidPatch {
            name: self
                .name
                .and_then(|value| collect(&mut errors, name(&value))),
            slug: self
                .slug
                .and_then(|value| collect(&mut errors, check_slug("slug", &value))),
            description: self
                .description
                .and_then(|value| collect(&mut errors, description(&value))),
            price_cents: self
                .price_cents
                .and_then(|value| collect(&mut errors, price(value))),
            currency: self
                .currency
                .and_then(|value| collect(&mut errors, currency_code(&value))),
            image_url: self
                .image_url
                .and_then(|value| collect(&mut errors, image_url(&value))),
            stock: self
                .stock
                .and_then(|value| collect(&mut errors, stock(value))),
            stock_delta: self.stock_delta.filter(|delta| *delta != 0),
            category: self
                .category
                .and_then(|value| collect(&mut errors, check_slug("category", &value))),
        };
        if patch.stock.is_some() && self.stock_delta.is_some() {
            errors.push(FieldError::new(
                "stock_delta",
                "send either stock (absolute) or stock_delta (a change), not both",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if patch == ValidPatch::default() {
            return Err(vec![FieldError::new(
                "body",
                "send at least one field to change",
            )]);
        }
        Ok(patch)
    }
}

/// The image path this service generates for a product without its own image.
pub(crate) fn placeholder_image(category: &str, slug: &str) -> String {
    format!("/images/{category}/{slug}.svg")
}

/// Whether `value` is a well-formed slug: lower-case ASCII words joined by single dashes.
pub(crate) fn is_slug(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= SLUG_MAX
        && value.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Derives a slug from a display name (`"Café Noir 2"` → `"caf-noir-2"`), if any ASCII letters or digits remain.
pub(crate) fn slugify(name: &str) -> Option<String> {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(SLUG_MAX);
    let slug = slug.trim_end_matches('-').to_owned();
    is_slug(&slug).then_some(slug)
}

fn collect<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|error| errors.push(error)).ok()
}

fn name(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    let length = value.chars().count();
    if length == 0 || length > NAME_MAX {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

fn description(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.chars().count() > DESCRIPTION_MAX {
        return Err(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            "description",
            "must not contain control characters other than newlines and tabs",
        ));
    }
    Ok(value.to_owned())
}

fn check_slug(field: &'static str, value: &str) -> Result<String, FieldError> {
    if is_slug(value) {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must be 1 to {SLUG_MAX} characters of a-z and 0-9, words joined by single dashes"
            ),
        ))
    }
}

fn price(value: i64) -> Result<i64, FieldError> {
    if (1..=PRICE_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            "price_cents",
            format!("must be an integer number of minor units from 1 to {PRICE_MAX}"),
        ))
    }
}

fn currency_code(value: &str) -> Result<String, FieldError> {
    let code = value.trim().to_ascii_uppercase();
    if currency::is_iso_4217(&code) {
        Ok(code)
    } else {
        Err(FieldError::new(
            "currency",
            "must be an ISO 4217 currency code such as USD or EUR",
        ))
    }
}

fn stock(value: i32) -> Result<i32, FieldError> {
    if value >= 0 {
        Ok(value)
    } else {
        Err(FieldError::new("stock", "must be zero or more"))
    }
}

fn image_url(value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    let problem = || {
        FieldError::new(
            "image_url",
            format!(
                "must be an absolute http(s) URL or a path starting with `/`, at most {IMAGE_URL_MAX} characters"
            ),
        )
    };
    if value.is_empty() || value.len() > IMAGE_URL_MAX || value.chars().any(char::is_whitespace) {
        return Err(problem());
    }
    if value.starts_with('/') && !value.starts_with("//") {
        return Ok(value.to_owned());
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(value.to_owned())
        }
        _ => Err(problem()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_product() -> NewProduct {
        NewProduct {
            name: "Pour-Over Kettle".into(),
            slug: None,
            description: "Gooseneck.".into(),
            price_cents: 4_900,
            currency: "usd".into(),
            image_url: None,
            stock: 3,
            category: "coffee-tea".into(),
        }
    }

    #[test]
    fn valid_product_is_normalised() {
        let valid = new_product().validate().unwrap();
        assert_eq!(valid.slug, "pour-over-kettle");
        assert_eq!(valid.currency, "USD");
        assert_eq!(valid.image_url, "/images/coffee-tea/pour-over-kettle.svg");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let bad = NewProduct {
            name: "  ".into(),
            slug: Some("Bad Slug".into()),
            description: "x".repeat(DESCRIPTION_MAX + 1),
            price_cents: 0,
            currency: "XYZ".into(),
            image_url: Some("javascript:alert(1)".into()),
            stock: -1,
            category: "no such".into(),
        };
        let errors = bad.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "slug",
                "description",
                "price_cents",
                "currency",
                "stock",
                "category",
                "image_url"
            ]
        );
    }

    #[test]
    fn slugs() {
        assert!(is_slug("a-b-1"));
        assert!(!is_slug("a--b"));
        assert!(!is_slug("-a"));
        assert!(!is_slug("A"));
        assert!(!is_slug(""));
        assert!(!is_slug(&"a".repeat(SLUG_MAX + 1)));
        assert_eq!(slugify("Café Noir 2!").as_deref(), Some("caf-noir-2"));
        assert_eq!(slugify("日本"), None);
    }

    #[test]
    fn image_urls() {
        assert!(image_url("/images/a/b.svg").is_ok());
        assert!(image_url("https://cdn.example.com/a.png").is_ok());
        assert!(image_url("//evil.example.com/a.png").is_err());
        assert!(image_url("ftp://example.com/a.png").is_err());
        assert!(image_url("data:image/png;base64,AAAA").is_err());
    }

    #[test]
    fn empty_patch_is_rejected_and_partial_patch_checked() {
        assert!(ProductPatch::default().validate().is_err());
        let patch = ProductPatch {
            price_cents: Some(-5),
            ..ProductPatch::default()
        };
        assert_eq!(patch.validate().unwrap_err()[0].field, "price_cents");
        let patch = ProductPatch {
            stock: Some(0),
            ..ProductPatch::default()
        };
        assert_eq!(patch.validate().unwrap().stock, Some(0));
    }

    #[test]
    fn a_stock_change_is_a_delta_and_never_with_an_absolute_stock() {
        let patch = ProductPatch {
            stock_delta: Some(-3),
            ..ProductPatch::default()
        };
        assert_eq!(patch.validate().unwrap().stock_delta, Some(-3));
        let nothing = ProductPatch {
            stock_delta: Some(0),
            ..ProductPatch::default()
        };
        assert_eq!(nothing.validate().unwrap_err()[0].field, "body");
        let both = ProductPatch {
            stock: Some(4),
            stock_delta: Some(1),
            ..ProductPatch::default()
        };
        assert_eq!(both.validate().unwrap_err()[0].field, "stock_delta");
    }
}
