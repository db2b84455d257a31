//! `GET /images/{category}/{file}.svg`: the placeholder product pictures.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use storekeeper_kit::{ApiError, extract::Path};

use crate::{images::placeholder_svg, state::AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/images/{category}/{file}", get(image))
}

/// A generated SVG placeholder; the same path always draws the same picture.
#[utoipa::path(
    get,
    path = "/images/{category}/{file}",
    tag = "catalog",
    params(
        ("category" = String, Path, description = "Category slug"),
        ("file" = String, Path, description = "Product slug followed by `.svg`"),
    ),
    responses(
        (status = 200, description = "The picture", content_type = "image/svg+xml", body = String),
        (status = 404, description = "Not a slug path", content_type = "application/problem+json", body = storekeeper_kit::Problem),
    )
)]
pub(super) async fn image(
    Path((category, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let svg = file
        .strip_suffix(".svg")
        .and_then(|slug| placeholder_svg(&category, slug))
        .ok_or_else(|| ApiError::not_found("no image at this path"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        svg,
    )
        .into_response())
}
