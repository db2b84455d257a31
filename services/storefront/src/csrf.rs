//! CSRF protection: a synchronizer token tied to the session.
//!
//! Every POST form carries a hidden `_csrf` field holding the session's token.
//! This middleware checks it before any handler runs, so a handler cannot
//! forget to. A POST without the token, with a wrong one, or without a session
//! at all gets the 403 page. The comparison takes the same time whatever the
//! input, so the token cannot be guessed byte by byte.

use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{errors::PageError, session::Session};

pub(crate) const FIELD: &str = "_csrf";
/// Forms are small; anything bigger is refused before parsing.
const FORM_LIMIT: usize = 64 * 1024;

/// Middleware: rejects state-changing requests without the session's token.
pub(crate) async fn csrf_middleware(session: Session, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return PageError::PayloadTooLarge.into_response();
    };
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned());
    let expected = session.csrf();
    match sent {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => {
            tracing::warn!(path = parts.uri.path(), "POST without a valid CSRF token");
            PageError::CsrfRejected.into_response()
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_identical() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
