//! How catalog failures read to a client.

use axum::http::StatusCode;
use storekeeper_kit::{ApiError, FieldError};

use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("no product with this id"),
            StoreError::SlugTaken(_) => ApiError::conflict(err.to_string()),
            StoreError::StockBelowZero { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "insufficient-stock",
                "Not enough stock",
            )
            .with_detail(err.to_string()),
            StoreError::Changed { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "The product changed",
            )
            .with_detail(err.to_string()),
            StoreError::UnknownCategory(slug) => ApiError::validation(vec![FieldError::new(
                "category",
                format!("no category has the slug `{slug}`; GET /api/categories lists them"),
            )]),
            StoreError::Database(err) => ApiError::from(err),
        }
    }
}

/// 400 for query parameters that parse but are out of bounds.
pub(super) fn invalid_query(errors: Vec<FieldError>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "Invalid query parameters",
    )
    .with_detail("one or more query parameters are invalid")
    .with_errors(errors)
}
