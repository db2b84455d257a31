//! `GET /api/categories`.

use axum::{Router, extract::State, response::Response, routing::get};
use storekeeper_kit::ApiResult;

use super::cached::cached;
use crate::{domain::Category, state::AppState, store};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/categories", get(list_categories))
}

/// Every category, alphabetically by name.
#[utoipa::path(
    get,
    path = "/api/categories",
    tag = "catalog",
    responses((status = 200, description = "All categories", body = [Category]))
)]
pub(super) async fn list_categories(State(state): State<AppState>) -> ApiResult<Response> {
    let lookup = state.cache.categories().await;
    cached(&state.cache, lookup, || async {
        Ok::<Vec<Category>, _>(store::categories(&state.pool).await?)
    })
    .await
}
