//! The product list's query parameters: parsing bounds, defaults and sort order.
//!
//! Everything a client can put in `?category=&q=&sort=&page=&per_page=` is
//! checked here, before it reaches SQL or a cache key, so bad values become a
//! 400 naming the parameter and valid ones have exactly one canonical form
//! (which the cache key is built from).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use storekeeper_kit::FieldError;

use crate::domain::{Product, is_slug};

/// Page size when the client does not ask for one.
pub(crate) const DEFAULT_PER_PAGE: u32 = 20;
/// Largest page size a client may ask for.
pub(crate) const MAX_PER_PAGE: u32 = 100;
/// Highest page number accepted; deeper pages are better served by a narrower search.
pub(crate) const MAX_PAGE: u32 = 10_000;
/// Longest search text accepted, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 200;

/// Order of the product list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Sort {
    /// Best text match first (only meaningful with `q`; the default when `q` is given).
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
    /// Alphabetical by name (the default without `q`).
    Name,
    /// Most recently created first.
    Newest,
}

impl Sort {
    /// The SQL `ORDER BY` clause; every order ends on the id so pages never overlap.
    pub(crate) fn order_by(self) -> &'static str {
        match self {
            Self::Relevance => {
                "ts_rank(p.search, websearch_to_tsquery('english', $2)) DESC, p.name, p.id"
            }
            Self::PriceAsc => "p.price_cents ASC, p.id",
            Self::PriceDesc => "p.price_cents DESC, p.id",
            Self::Name => "p.name ASC, p.id",
            Self::Newest => "p.created_at DESC, p.id",
        }
    }
}

/// The raw query string of `GET /api/products`, as the client sent it.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only products in the category with this slug.
    pub(crate) category: Option<String>,
    /// Full-text search (web-search syntax: `"exact phrase"`, `-exclude`, `or`); at most 200 characters.
    pub(crate) q: Option<String>,
    /// Sort order: `relevance` (default with `q`), `price_asc`, `price_desc`, `name` (default without `q`), `newest`.
    #[param(inline)]
    pub(crate) sort: Option<Sort>,
    /// Page number, from 1 (default 1, at most 10000).
    #[param(minimum = 1, maximum = 10_000)]
    pub(crate) page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub(crate) per_page: Option<u32>,
}

/// A checked, canonical list request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct ListQuery {
    /// Category slug filter.
    pub(crate) category: Option<String>,
    /// Trimmed, non-empty search text.
    pub(crate) q: Option<String>,
    /// Effective sort order.
    pub(crate) sort: Sort,
    /// Page number, from 1.
    pub(crate) page: u32,
    /// Items per page.
    pub(crate) per_page: u32,
}

impl ListQuery {
    /// Rows to skip.
    pub(crate) fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }
}

/// One page of products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct ProductPage {
    /// The products on this page.
    pub(crate) items: Vec<Product>,
    /// This page's number, from 1.
    pub(crate) page: u32,
    /// Page size used.
    pub(crate) per_page: u32,
    /// Number of products matching the filters, over all pages.
    pub(crate) total: i64,
}

impl ListParams {
    /// Applies defaults and bounds; reports every bad parameter.
    pub(crate) fn validate(self) -> Result<ListQuery, Vec<FieldError>> {
        let mut errors = Vec::new();
        let category = self.category.filter(|value| !value.is_empty());
        if let Some(category) = &category
            && !is_slug(category)
        {
            errors.push(FieldError::new(
                "category",
                "must be a category slug (a-z, 0-9 and dashes)",
            ));
        }
        let q = self
            .q
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty());
        if let Some(q) = &q
            && (q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control))
        {
            errors.push(FieldError::new(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters without control characters"),
            ));
        }
        let page = self.page.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            errors.push(FieldError::new(
                "page",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be from 1 to {MAX_PER_PAGE}"),
            ));
        }
        let sort = match (self.sort, &q) {
            (Some(Sort::Relevance) | None, Some(_)) => Sort::Relevance,
            (Some(Sort::Relevance), None) => {
                errors.push(FieldError::new(
                    "sort",
                    "`relevance` needs a search text `q`",
                ));
                Sort::Relevance
            }
            (Some(sort), _) => sort,
            (None, None) => Sort::Name,
        };
        if errors.is_empty() {
            Ok(ListQuery {
                category,
                q,
                sort,
                page,
                per_page,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let query = ListParams::default().validate().unwrap();
        assert_eq!(query.page, 1);
        assert_eq!(query.per_page, DEFAULT_PER_PAGE);
        assert_eq!(query.sort, Sort::Name);
        assert_eq!(query.offset(), 0);
    }

    #[test]
    fn search_defaults_to_relevance_and_blank_search_is_none() {
        let params = ListParams {
            q: Some("  kettle ".into()),
            ..ListParams::default()
        };
        let query = params.validate().unwrap();
        assert_eq!(query.q.as_deref(), Some("kettle"));
        assert_eq!(query.sort, Sort::Relevance);
        let params = ListParams {
            q: Some("   ".into()),
            ..ListParams::default()
        };
        assert_eq!(params.validate().unwrap().q, None);
    }

    #[test]
    fn bounds_are_enforced() {
        for (page, per_page, field) in [
            (Some(0), None, "page"),
            (Some(MAX_PAGE + 1), None, "page"),
            (None, Some(0), "per_page"),
            (None, Some(MAX_PER_PAGE + 1), "per_page"),
        ] {
            let params = ListParams {
                page,
                per_page,
                ..ListParams::default()
            };
            assert_eq!(params.validate().unwrap_err()[0].field, field);
        }
        let params = ListParams {
            page: Some(MAX_PAGE),
            per_page: Some(MAX_PER_PAGE),
            ..ListParams::default()
        };
        assert_eq!(params.validate().unwrap().offset(), 999_900);
    }

    #[test]
    fn bad_category_long_search_and_lonely_relevance_are_rejected() {
        let params = ListParams {
            category: Some("'; drop table".into()),
            q: Some("x".repeat(MAX_QUERY_CHARS + 1)),
            sort: Some(Sort::Relevance),
            ..ListParams::default()
        };
        let errors = params.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["category", "q"]);
        let params = ListParams {
            sort: Some(Sort::Relevance),
            ..ListParams::default()
        };
        assert_eq!(params.validate().unwrap_err()[0].field, "sort");
    }
}
