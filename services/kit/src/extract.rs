//! Extractors that reject bad input with problem+json instead of axum's
//! plain-text rejections.
//!
//! Use `kit::extract::{Json, Query, Path}` in place of axum's. Malformed JSON
//! is a 400; JSON of the wrong shape (missing field, wrong type) is a 422
//! naming the field; a body over the limit is a 413; a missing or wrong
//! `Content-Type` is a 415.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::problem::{ApiError, FieldError};

/// A JSON body (request) or JSON response, with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::unsupported_media_type(
                "expected a request body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| body_rejection(&rejection))?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .with_detail("the request body is larger than this endpoint accepts")
    } else {
        ApiError::bad_request(format!(
            "could not read the request body: {}",
            rejection.body_text()
        ))
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422 naming the
/// field), so a client knows whether to fix its encoder or its data.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::bad_request(format!("malformed JSON body: {err}")))?;
    Ok(value)
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => {
            let message = strip_position(&err.to_string());
            let field = if path == "." {
                missing_field_name(&message).unwrap_or_else(|| "(body)".to_owned())
            } else {
                missing_field_name(&message)
                    .map_or_else(|| path.to_owned(), |name| format!("{path}.{name}"))
            };
            ApiError::validation(vec![FieldError::new(field, message)])
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("malformed JSON body: {err}"))
        }
    }
}

/// serde reports "missing field `email`" at the parent's path; name the field.
fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde_json appends " at line 1 column 12"; noise for field errors.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string, with problem+json (400) rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let message = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    "Invalid query parameters",
                )
                .with_detail(message)
            })
    }
}

/// Path parameters, with problem+json rejections: a segment of the wrong type
/// (e.g. not a UUID) is a 404, since no such resource can exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| {
                if rejection.status().is_server_error() {
                    ApiError::internal(anyhow::anyhow!(
                        "path extraction: {}",
                        rejection.body_text()
                    ))
                } else {
                    ApiError::not_found(format!(
                        "no resource at {}: {}",
                        parts.uri.path(),
                        rejection.body_text()
                    ))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        quantity: u32,
    }

    #[test]
    fn syntax_error_is_400() {
        let err = parse_json::<Item>(b"{\"name\": ").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let err = parse_json::<Item>(b"{\"name\":\"a\",\"quantity\":1} trailing").unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse_json::<Item>(br#"{"name":"a","quantity":"many"}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem = err.to_problem();
        assert_eq!(problem.errors[0].field, "quantity");
        assert!(
            problem.errors[0].message.starts_with("invalid type"),
            "{problem:?}"
        );
    }

    #[test]
    fn missing_field_names_the_field() {
        let problem = parse_json::<Item>(br#"{"name":"a"}"#)
            .unwrap_err()
            .to_problem();
        assert_eq!(problem.errors[0].field, "quantity");
        assert_eq!(problem.errors[0].message, "missing field `quantity`");
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
