//! The `Idempotency-Key` header: present, 1 to [`KEY_MAX`] printable ASCII
//! characters, or the request is refused before anything is done.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, StatusCode, request::Parts},
};

use crate::problem::ApiError;

/// The header's name.
pub const KEY_HEADER: &str = "idempotency-key";

/// Longest key accepted (a UUID is 36).
pub const KEY_MAX: usize = 255;

/// Why a key header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `Idempotency-Key` header: 400 `idempotency-key-missing`.
    #[error(
        "this request needs an `Idempotency-Key` header (e.g. a UUID) so a retry of it is applied only once"
    )]
    Missing,
    /// Empty, too long or not printable ASCII: 400 `bad-request`.
    #[error("the Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters")]
    Malformed,
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Missing => ApiError::new(
                StatusCode::BAD_REQUEST,
                "idempotency-key-missing",
                "Idempotency-Key required",
            )
            .with_detail(err.to_string()),
            KeyError::Malformed => ApiError::bad_request(err.to_string()),
        }
    }
}

/// Checks the header's value (`None` when absent, `Some("")` when unreadable).
fn check(key: Option<&str>) -> Result<&str, KeyError> {
    let key = key.ok_or(KeyError::Missing)?;
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > KEY_MAX || !printable {
        return Err(KeyError::Malformed);
    }
    Ok(key)
}

/// The request's valid `Idempotency-Key`; a handler that takes it refuses
/// requests without one (400 problem+json).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    /// The key in `headers`, for a handler that answers (and counts) the
    /// refusal itself rather than leaving it to the extractor.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, KeyError> {
        let value = headers.get(KEY_HEADER).map(|v| v.to_str().unwrap_or(""));
        Ok(Self(check(value)?.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_required_and_bounded() {
        assert_eq!(check(None), Err(KeyError::Missing));
        assert_eq!(check(Some("")), Err(KeyError::Malformed));
        assert_eq!(check(Some("has space")), Err(KeyError::Malformed));
        assert_eq!(
            check(Some(&"k".repeat(KEY_MAX + 1))),
            Err(KeyError::Malformed)
        );
        assert_eq!(check(Some(&"k".repeat(KEY_MAX))).map(str::len), Ok(KEY_MAX));
        assert_eq!(check(Some("3f1c-ok")), Ok("3f1c-ok"));
    }

    #[test]
    fn the_key_is_read_from_its_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            IdempotencyKey::from_headers(&headers),
            Err(KeyError::Missing)
        );
        headers.insert(KEY_HEADER, "k-1".parse().unwrap());
        assert_eq!(
            IdempotencyKey::from_headers(&headers),
            Ok(IdempotencyKey("k-1".into()))
        );
    }

    #[test]
    fn refusals_are_problems() {
        assert_eq!(
            ApiError::from(KeyError::Missing).kind(),
            "idempotency-key-missing"
        );
        let malformed = ApiError::from(KeyError::Malformed);
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    }
}
