//! One error type for every HTTP API: RFC 9457 `application/problem+json`.
//!
//! Each kind of problem has a stable `type` URI (clients branch on it, not on
//! the English `title`). Bad input becomes a 4xx a person can act on.
//! Internal failures (database, bugs) are logged with their full context and
//! the client sees a generic 500 with no detail; an unreachable database is a
//! 503 rather than a 500, because retrying later may well work.

use std::fmt;

use axum::{
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use crate::telemetry::RequestId;

/// Prefix of every problem `type` URI.
pub const TYPE_BASE: &str = "https://storekeeper.dev/problems/";
/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The body of an error response (RFC 9457), as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `https://storekeeper.dev/problems/validation`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, in words a person can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id, to quote when reporting the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// The last segment of `type`, e.g. `validation`.
    pub fn kind(&self) -> &str {
        self.type_uri
            .strip_prefix(TYPE_BASE)
            .unwrap_or(&self.type_uri)
    }
}

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's path in the input, e.g. `email` or `items[2].quantity`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error a handler returns; renders as problem+json.
///
/// Boxed so `Result<T, ApiError>` stays one pointer wide.
pub struct ApiError(Box<Inner>);

struct Inner {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: Option<String>,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    www_authenticate: Option<&'static str>,
    /// The cause of a 5xx, logged when the response is rendered.
    source: Option<anyhow::Error>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A problem of any kind; `kind` becomes the last segment of the `type`
    /// URI. Prefer the named constructors; use this for service-specific
    /// kinds such as `payment-declined`.
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Self(Box::new(Inner {
            status,
            kind,
            title,
            detail: None,
            errors: Vec::new(),
            retry_after: None,
            www_authenticate: None,
            source: None,
        }))
    }

    /// Adds the human-readable `detail`.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds per-field errors.
    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.0.errors = errors;
        self
    }

    /// Sets `Retry-After` (seconds).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.0.retry_after = Some(seconds);
        self
    }

    /// Sets `WWW-Authenticate` (401 responses).
    #[must_use]
    pub fn with_www_authenticate(mut self, challenge: &'static str) -> Self {
        self.0.www_authenticate = Some(challenge);
        self
    }

    /// 400: the request cannot be understood (e.g. malformed JSON).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        )
        .with_detail(detail)
        .with_www_authenticate("Bearer")
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
    }

    /// 409: the request conflicts with current state (duplicate email...).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict").with_detail(detail)
    }

    /// 415: the body is not in a format this endpoint accepts.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .with_detail(detail)
    }

    /// 422 with per-field errors: well-formed input that fails validation.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Validation failed",
        )
        .with_detail("one or more fields are invalid")
        .with_errors(errors)
    }

    /// 422 without fields: a business rule refuses the request.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "Unprocessable request",
        )
        .with_detail(detail)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .with_detail(detail)
        .with_retry_after(retry_after_secs.max(1))
    }

    /// 503: a dependency is down; retrying later may work. The cause is logged.
    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail("a dependency is temporarily unavailable; retry later")
        .with_retry_after(1);
        err.0.source = Some(source.into());
        err
    }

    /// 503 because the request ran past the server's time limit.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
        )
        .with_detail("the request took too long; retry later")
    }

    /// 500: a bug or an unexpected failure. The cause is logged with its
    /// context chain; the client learns nothing about it.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .with_detail("an unexpected error occurred; it has been logged");
        err.0.source = Some(source.into());
        err
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The last segment of the `type` URI.
    pub fn kind(&self) -> &'static str {
        self.0.kind
    }

    /// The body clients receive.
    pub fn to_problem(&self) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{}", self.0.kind),
            title: self.0.title.to_owned(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.clone(),
            errors: self.0.errors.clone(),
            request_id: RequestId::current().map(|id| id.0),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.0.status)
            .field("kind", &self.0.kind)
            .field("detail", &self.0.detail)
            .field("source", &self.0.source)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.status, self.0.title)?;
        if let Some(detail) = &self.0.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.0.source {
            if self.0.status.is_server_error() && self.0.status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!(error = format!("{source:#}"), "internal error");
            } else {
                tracing::warn!(
                    error = format!("{source:#}"),
                    kind = self.0.kind,
                    "request failed"
                );
            }
        }
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.0.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.0.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::unavailable(anyhow::Error::new(err).context("database")),
            other => Self::internal(anyhow::Error::new(other).context("database")),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

/// Fallback for unknown routes: 404 problem+json.
pub async fn not_found_fallback(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Fallback for a known route with the wrong method: 405 problem+json.
/// (axum adds the `Allow` header.)
pub async fn method_not_allowed_fallback(method: Method) -> ApiError {
    ApiError::method_not_allowed().with_detail(format!("method {method} is not allowed here"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: ApiError) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = err.into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn renders_rfc9457_with_stable_type() {
        let (status, headers, body) = render(ApiError::conflict("email already registered")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(
            body,
            serde_json::json!({
                "type": "https://storekeeper.dev/problems/conflict",
                "title": "Conflict",
                "status": 409,
                "detail": "email already registered",
            })
        );
    }

    #[tokio::test]
    async fn validation_lists_fields() {
        let err = ApiError::validation(vec![FieldError::new("email", "must contain @")]);
        let (status, _, body) = render(err).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "email");
        assert_eq!(body["errors"][0]["message"], "must contain @");
    }

    #[tokio::test]
    async fn rate_limit_sets_retry_after() {
        let (status, headers, body) = render(ApiError::too_many_requests(42, "slow down")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "42");
        assert_eq!(
            body["type"],
            "https://storekeeper.dev/problems/rate-limited"
        );
    }

    #[tokio::test]
    async fn unauthorized_sets_challenge() {
        let (_, headers, _) = render(ApiError::unauthorized("no token")).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("secret table users_pw exploded"));
        let (status, _, body) = render(err).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("users_pw"), "{body}");
    }

    #[tokio::test]
    async fn database_outage_is_503() {
        let (status, headers, body) = render(ApiError::from(sqlx::Error::PoolTimedOut)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert!(!body.to_string().contains("pool"), "{body}");
    }
}
