//! Cache-aside responses: a hit is answered from the near-cache or Redis
//! byte for byte; a miss is loaded, answered and filled. `x-cache` says
//! which (`near`, `hit`, `miss`, `bypass`).

use std::future::Future;

use axum::{
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use storekeeper_kit::{ApiError, ApiResult};

use crate::cache::{CatalogCache, Lookup};

/// Answers `lookup`'s hit, or `load`s, answers and fills the cache.
pub(super) async fn cached<T, F, Fut>(
    cache: &CatalogCache,
    lookup: Lookup,
    load: F,
) -> ApiResult<Response>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let (fill, status) = match lookup {
        Lookup::Near(body) => return Ok(json_bytes(body, "near")),
        Lookup::Hit(body) => return Ok(json_bytes(body, "hit")),
        Lookup::Miss(key) => (Some(key), "miss"),
        Lookup::Unavailable => (None, "bypass"),
    };
    let body = Bytes::from(serde_json::to_vec(&load().await?).map_err(ApiError::internal)?);
    if let Some(key) = fill {
        cache.fill(key, body.clone()).await;
    }
    Ok(json_bytes(body, status))
}

/// A JSON response from bytes that are already serialized.
fn json_bytes(body: Bytes, cache_status: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("x-cache"),
                HeaderValue::from_static(cache_status),
            ),
        ],
        body,
    )
        .into_response()
}
