//! `GET /api/categories`.

use axum::{Router, extract::State, routing::get};
use storekeeper_kit::{ApiResult, extract::Json};

use super::AppState;
use crate::{domain::Category, store};

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
pub(super) async fn list_categories(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Category>>> {
    Ok(Json(store::categories(&state.pool).await?))
}
