//! Static files and product images, all served from this origin.
//!
//! The CSS, script and logo are compiled into the binary, so a storefront
//! image needs no files beside it and pages render with no CDN. Product
//! images live in product-service; `/images/...` fetches them from there, so
//! the strict same-origin CSP holds, and falls back to a neutral placeholder
//! when product-service cannot answer, so a page never shows a broken image.

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use storekeeper_contract::ShopService;

use crate::AppState;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../static/app.js"),
    },
    Asset {
        name: "logo.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../static/logo.svg"),
    },
    Asset {
        name: "placeholder.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../static/placeholder.svg"),
    },
];

/// Routes for `/static/{file}`, `/favicon.ico` and `/images/{path}`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(favicon))
        .route("/images/{*path}", get(product_image))
}

async fn static_file(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => cached(asset.content_type, Body::from(asset.bytes), 3600),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn favicon() -> Response {
    static_file(Path("logo.svg".to_owned())).await
}

/// Stands in for a product image product-service cannot give.
fn placeholder() -> Response {
    let mut response = cached(
        "image/svg+xml",
        Body::from(&include_bytes!("../static/placeholder.svg")[..]),
        60,
    );
    insert_image_policy(response.headers_mut());
    response
}

/// SVG pictures may style themselves but run nothing.
fn insert_image_policy(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
}

/// Proxies `/images/...` to product-service; only image answers pass.
async fn product_image(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    if !safe_image_path(&path) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(url) = state
        .backend
        .url(ShopService::Product, &format!("/images/{path}"))
    else {
        return placeholder();
    };
    let answer = state.backend.http().get(url).send().await;
    let Ok(answer) = answer else {
        return placeholder();
    };
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !answer.status().is_success() || !content_type.starts_with("image/") {
        return placeholder();
    }
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = cached_owned(&content_type, Body::from(bytes), 86_400);
            insert_image_policy(response.headers_mut());
            response
        }
        Err(_) => placeholder(),
    }
}

/// Image paths are plain names in folders: no `..`, no query, no odd bytes.
fn safe_image_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 300
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

fn cached(content_type: &'static str, body: Body, max_age: u32) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert_cache_control(headers, max_age);
    response
}

fn cached_owned(content_type: &str, body: Body, max_age: u32) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    insert_cache_control(headers, max_age);
    response
}

fn insert_cache_control(headers: &mut HeaderMap, max_age: u32) {
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

#[cfg(test)]
mod tests {
    use super::safe_image_path;

    #[test]
    fn image_paths_cannot_escape() {
        assert!(safe_image_path("kitchen/pour-over-kettle.svg"));
        for bad in [
            "", "../admin", "a/../b", "a//b", "a?b=c", "a b", "/abs", "a/./b",
        ] {
            assert!(!safe_image_path(bad), "{bad:?}");
        }
    }
}
