//! The answer to a request made under an idempotency key: the first
//! response, sent again byte for byte when the request is repeated.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Header that marks a replayed answer (`true`).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// What a keyed request answers: the first response's status and JSON
/// body, and whether this is a replay of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The first response's status.
    pub status: StatusCode,
    /// The first response's JSON, byte for byte.
    pub body: String,
    /// Answered from the stored key rather than by doing the work.
    pub replayed: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.replayed {
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_says_so() {
        let answer = |replayed| Answer {
            status: StatusCode::CREATED,
            body: "{}".into(),
            replayed,
        };
        let first = answer(false).into_response();
        assert_eq!(first.status(), StatusCode::CREATED);
        assert_eq!(first.headers()[header::CONTENT_TYPE], "application/json");
        assert!(first.headers().get(REPLAYED_HEADER).is_none());
        assert_eq!(
            answer(true).into_response().headers()[REPLAYED_HEADER],
            "true"
        );
    }
}
