//! Logging set-up and the request id that ties one request's log lines
//! together, across services.
//!
//! In a cluster logs are one JSON object per line (Loki reads them as they
//! are); locally they are human-readable. Every request gets an id — the
//! caller's `x-request-id` when it sent a sane one, a fresh UUID otherwise —
//! which is recorded on the request's tracing span, returned on the response,
//! and forwarded on outgoing service calls via [`RequestBuilderExt`].

use std::{fmt, str::FromStr};

use axum::{
    extract::{FromRequestParts, Request},
    http::{HeaderName, HeaderValue, request::Parts},
    middleware::Next,
    response::Response,
};
use tracing_subscriber::{EnvFilter, fmt::format::FmtSpan};

/// The header carrying the request id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (clusters).
    Json,
    /// Coloured, multi-field human output (local development).
    #[default]
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            _ => Err("expected `json` or `pretty`".to_owned()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
        })
    }
}

/// Installs the global tracing subscriber. `RUST_LOG` filters (default
/// `info`). Calling it twice is harmless (the second call is ignored), which
/// keeps tests simple.
pub fn init(service_name: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let result = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .try_init(),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(FmtSpan::NONE)
            .try_init(),
    };
    if result.is_ok() {
        tracing::info!(service = service_name, log_format = %format, "logging initialised");
    }
}

tokio::task_local! {
    static CURRENT_REQUEST_ID: RequestId;
}

/// The id of the request being served. Extract it in a handler, or read it
/// anywhere inside the request's task with [`RequestId::current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The request id of the request this task is serving, if any.
    /// (Tasks spawned from a handler do not inherit it.)
    pub fn current() -> Option<Self> {
        CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
    }

    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes a caller's id only when it is short printable ASCII, so a hostile
    /// header cannot flood or forge log lines.
    fn from_header(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let sane = (1..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        sane.then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(Self::generate))
    }
}

/// Middleware: assigns the request id, makes it current for the handler's
/// task, and echoes it on the response.
pub async fn request_id_middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(RequestId::from_header)
        .unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(id.clone());
    let header = HeaderValue::from_str(id.as_str()).ok();
    let mut response = CURRENT_REQUEST_ID.scope(id, next.run(request)).await;
    if let Some(header) = header {
        response.headers_mut().insert(X_REQUEST_ID.clone(), header);
    }
    response
}

/// Forwards the current request id on outgoing service calls.
pub trait RequestBuilderExt {
    /// Adds `x-request-id` from the request being served, when there is one.
    #[must_use]
    fn with_request_id(self) -> Self;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn with_request_id(self) -> Self {
        match RequestId::current() {
            Some(id) => self.header(X_REQUEST_ID.as_str(), id.0),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_kept_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(
            RequestId::from_header(&ok).unwrap().as_str(),
            "abc-123_x.y:z"
        );
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert!(RequestId::from_header(&value).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn log_format_parses() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[tokio::test]
    async fn current_id_is_scoped_to_the_task() {
        assert!(RequestId::current().is_none());
        let id = RequestId("r-1".into());
        let seen = CURRENT_REQUEST_ID
            .scope(id.clone(), async { RequestId::current() })
            .await;
        assert_eq!(seen, Some(id));
    }
}
