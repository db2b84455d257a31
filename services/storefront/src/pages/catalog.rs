//! The home page (catalog: categories, search, sort, pages) and the product page.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::Uri,
    response::Response,
};
use serde::Deserialize;

use super::{ProductCard, here, with_query};
use crate::{
    AppState,
    backend::{
        BackendError,
        products::{Product, ProductQuery},
    },
    errors::PageError,
    session::Session,
    views::{Layout, render},
};

/// Products per catalog page (a multiple of 2, 3 and 4 for the grid).
pub(crate) const PER_PAGE: u32 = 12;
/// Longest search text passed on (product-service accepts 200).
const MAX_SEARCH_CHARS: usize = 200;

/// The catalog's query string; anything odd falls back to a default.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CatalogParams {
    #[serde(default)]
    category: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    /// Page number (kept as text so `?page=abc` is page 1, not a 400).
    #[serde(default)]
    page: String,
}

/// A choice in the sort menu.
pub(crate) struct SortOption {
    /// Value sent to product-service.
    pub(crate) value: &'static str,
    pub(crate) label: &'static str,
    /// Whether it is the current order.
    pub(crate) selected: bool,
}

/// A link in the pager.
pub(crate) struct PageLink {
    pub(crate) number: u32,
    pub(crate) url: String,
    /// Whether this is the page shown.
    pub(crate) current: bool,
    /// Whether pages are skipped before this one (shown as "…").
    pub(crate) gap_before: bool,
}

/// The first page, the last, and two either side of the current one.
fn page_numbers(page: u32, last: u32) -> Vec<u32> {
    let mut numbers = vec![1];
    numbers.extend(page.saturating_sub(2).max(2)..=(page + 2).min(last));
    if last > 1 {
        numbers.push(last);
    }
    numbers.dedup();
    numbers
}

/// Previous / numbered / next links.
#[derive(Default)]
pub(crate) struct Pager {
    pub(crate) prev: Option<String>,
    pub(crate) next: Option<String>,
    /// Numbered links around the current page.
    pub(crate) pages: Vec<PageLink>,
    /// "Showing 13–24 of 40".
    pub(crate) summary: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    heading: String,
    intro: String,
    products: Vec<ProductCard>,
    sort_options: Vec<SortOption>,
    category: String,
    q: String,
    pager: Pager,
    catalog_down: bool,
}

/// `GET /`: the catalog.
pub(crate) async fn home(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<CatalogParams>,
) -> Response {
    let q: String = params.q.trim().chars().take(MAX_SEARCH_CHARS).collect();
    let category = if crate::pages::admin::is_slug(&params.category) {
        params.category.clone()
    } else {
        String::new()
    };
    let sort = sort_key(&params.sort, !q.is_empty());
    let page = params.page.parse::<u32>().unwrap_or(1).clamp(1, 10_000);
    let query = ProductQuery {
        category: (!category.is_empty()).then(|| category.clone()),
        q: (!q.is_empty()).then(|| q.clone()),
        sort: Some(sort.to_owned()),
        page,
        per_page: PER_PAGE,
    };
    let (layout, listing) = tokio::join!(
        Layout::new(&state, &session, "Shop"),
        state.products.products(&state.backend, &query)
    );
    let current = layout
        .categories
        .iter()
        .find(|known| known.slug == category)
        .cloned();
    let heading = match (&current, q.is_empty()) {
        (_, false) => format!("Results for “{q}”"),
        (Some(known), true) => known.name.clone(),
        (None, true) => "All products".to_owned(),
    };
    let intro = current.map(|known| known.description).unwrap_or_default();
    let title = if q.is_empty() {
        heading.clone()
    } else {
        format!("Search: {q}")
    };
    let layout = Layout {
        title,
        ..layout.with_category(&category).with_search(&q)
    };
    let (products, pager, catalog_down) = match listing {
        Ok(list) => {
            let pager = pager(
                &category,
                &q,
                &params.sort,
                list.page,
                list.per_page,
                list.total,
            );
            (
                list.items.iter().map(ProductCard::from).collect(),
                pager,
                false,
            )
        }
        Err(err) => {
            tracing::warn!(error = %err, "catalog unavailable");
            (Vec::new(), Pager::default(), true)
        }
    };
    render(&HomePage {
        layout,
        heading,
        intro,
        products,
        sort_options: sort_options(sort, !q.is_empty()),
        category,
        q,
        pager,
        catalog_down,
    })
}

/// The sort to ask for: the shopper's choice when valid, else the default.
fn sort_key(requested: &str, searching: bool) -> &'static str {
    match requested {
        "price_asc" => "price_asc",
        "price_desc" => "price_desc",
        "newest" => "newest",
        "name" => "name",
        _ if searching => "relevance",
        _ => "name",
    }
}

fn sort_options(current: &str, searching: bool) -> Vec<SortOption> {
    let mut choices = Vec::new();
    if searching {
        choices.push(("relevance", "Best match"));
    }
    choices.extend([
        ("name", "Name"),
        ("price_asc", "Price: low to high"),
        ("price_desc", "Price: high to low"),
        ("newest", "Newest"),
    ]);
    choices
        .into_iter()
        .map(|(value, label)| SortOption {
            value,
            label,
            selected: value == current,
        })
        .collect()
}

fn pager(category: &str, q: &str, sort: &str, page: u32, per_page: u32, total: u64) -> Pager {
    let per_page = per_page.max(1);
    let last = u32::try_from(total.div_ceil(u64::from(per_page)))
        .unwrap_or(u32::MAX)
        .max(1);
    let link = |number: u32| {
        let number = number.to_string();
        with_query(
            "/",
            &[
                ("category", category),
                ("q", q),
                ("sort", sort),
                ("page", if number == "1" { "" } else { &number }),
            ],
        )
    };
    let first_shown = u64::from(page - 1) * u64::from(per_page) + 1;
    let last_shown = (u64::from(page) * u64::from(per_page)).min(total);
    Pager {
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < last).then(|| link(page + 1)),
        pages: if last > 1 {
            page_numbers(page, last)
                .into_iter()
                .scan(0, |previous, number| {
                    let gap_before = number > *previous + 1 && *previous > 0;
                    *previous = number;
                    Some(PageLink {
                        number,
                        url: link(number),
                        current: number == page,
                        gap_before,
                    })
                })
                .collect()
        } else {
            Vec::new()
        },
        summary: if total == 0 || first_shown > total {
            String::new()
        } else {
            format!("Showing {first_shown}–{last_shown} of {total}")
        },
    }
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    layout: Layout,
    product: ProductCard,
    description: Vec<String>,
    related: Vec<ProductCard>,
    max_quantity: i64,
}

/// `GET /products/{slug}`.
pub(crate) async fn product(
    State(state): State<AppState>,
    session: Session,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let (layout, found) = tokio::join!(
        Layout::new(&state, &session, "Product"),
        state.products.product(&state.backend, &slug)
    );
    let found: Product = found.map_err(|err| match err {
        // A malformed slug is just a page that does not exist.
        BackendError::Rejected { .. } => PageError::NotFound,
        other => PageError::from_backend(&other, &here(&uri)),
    })?;
    let related = related(&state, &found).await;
    let card = ProductCard::from(&found);
    let layout = Layout {
        title: found.name.clone(),
        ..layout.with_category(&found.category)
    };
    Ok(render(&ProductPage {
        layout,
        description: found
            .description
            .split("\n\n")
            .map(str::trim)
            .filter(|paragraph| !paragraph.is_empty())
            .map(str::to_owned)
            .collect(),
        max_quantity: card.stock.clamp(1, 99),
        product: card,
        related,
    }))
}

/// Up to four other products from the same category; none if the call fails.
async fn related(state: &AppState, product: &Product) -> Vec<ProductCard> {
    let query = ProductQuery {
        category: Some(product.category.clone()),
        q: None,
        sort: Some("newest".to_owned()),
        page: 1,
        per_page: 5,
    };
    match state.products.products(&state.backend, &query).await {
        Ok(list) => list
            .items
            .iter()
            .filter(|other| other.id != product.id)
            .take(4)
            .map(ProductCard::from)
            .collect(),
        Err(err @ BackendError::Unavailable { .. }) => {
            tracing::warn!(error = %err, "related products unavailable");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_links_keep_the_filters() {
        let pager = pager("kitchen", "mug", "price_asc", 2, 12, 30);
        assert_eq!(
            pager.prev.as_deref(),
            Some("/?category=kitchen&q=mug&sort=price_asc")
        );
        assert_eq!(
            pager.next.as_deref(),
            Some("/?category=kitchen&q=mug&sort=price_asc&page=3")
        );
        assert_eq!(pager.pages.len(), 3);
        assert!(pager.pages[1].current);
        assert!(pager.pages.iter().all(|link| !link.gap_before));
        assert_eq!(pager.summary, "Showing 13–24 of 30");
    }

    #[test]
    fn long_pagers_keep_the_ends_and_mark_gaps() {
        assert_eq!(page_numbers(1, 6), [1, 2, 3, 6]);
        assert_eq!(page_numbers(5, 20), [1, 3, 4, 5, 6, 7, 20]);
        assert_eq!(page_numbers(20, 20), [1, 18, 19, 20]);
        assert_eq!(page_numbers(2, 2), [1, 2]);
        let pager = pager("", "", "", 5, 10, 200);
        let gaps: Vec<u32> = pager
            .pages
            .iter()
            .filter(|link| link.gap_before)
            .map(|link| link.number)
            .collect();
        assert_eq!(gaps, [3, 20]);
    }

    #[test]
    fn one_page_has_no_pager() {
        let pager = pager("", "", "", 1, 12, 5);
        assert!(pager.prev.is_none() && pager.next.is_none() && pager.pages.is_empty());
        assert_eq!(pager.summary, "Showing 1–5 of 5");
    }

    #[test]
    fn unknown_sorts_fall_back() {
        assert_eq!(sort_key("drop table", false), "name");
        assert_eq!(sort_key("", true), "relevance");
        assert_eq!(sort_key("relevance", false), "name");
        assert_eq!(sort_key("price_desc", true), "price_desc");
    }
}
