//! What a shopper sees when something goes wrong: a human page, never a trace.
//!
//! Handlers return [`PageError`]. Its response carries only a marker; the
//! [`error_pages`] middleware, which has the session and the catalog, renders
//! the marker as a full page with the usual header, so even an error page lets
//! the shopper search, browse or reach the cart.

use askama::Template;
use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use storekeeper_contract::ShopService;

use crate::{
    AppState,
    backend::BackendError,
    session::Session,
    views::{Layout, render, shopper_name},
};

/// Why a page could not be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PageError {
    /// No such page or thing.
    NotFound,
    /// The page needs a logged-in shopper; `next` is where to come back to.
    LoginRequired {
        /// Local path to return to after login.
        next: String,
    },
    /// Logged in, but not allowed (admin pages).
    Forbidden,
    /// A POST without a valid CSRF token.
    CsrfRejected,
    /// A form larger than any real form.
    PayloadTooLarge,
    /// A backend the page depends on is down.
    Unavailable(ShopService),
    /// A backend refused the request and said why.
    Rejected(String),
}

impl PageError {
    /// Maps a failed backend call; `next` is the page to return to after a re-login.
    pub(crate) fn from_backend(err: &BackendError, next: &str) -> Self {
        match err {
            BackendError::Unavailable {
                service, reason, ..
            } => {
                tracing::warn!(service = service.package(), reason, "backend unavailable");
                Self::Unavailable(*service)
            }
            BackendError::Unauthorized { .. } => Self::LoginRequired {
                next: next.to_owned(),
            },
            BackendError::Forbidden { .. } => Self::Forbidden,
            BackendError::NotFound { .. } => Self::NotFound,
            BackendError::Rejected { .. } => Self::Rejected(
                err.detail()
                    .unwrap_or("The shop could not do that. Please check and try again.")
                    .to_owned(),
            ),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden | Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// Heading and explanation, in plain words.
    fn words(&self) -> (&'static str, String) {
        match self {
            Self::NotFound => (
                "We couldn't find that page",
                "The link may be old, or the product is no longer in the shop.".to_owned(),
            ),
            Self::LoginRequired { .. } => ("Please log in", String::new()),
            Self::Forbidden => (
                "That page isn't for this account",
                "You're logged in, but this account may not open this page.".to_owned(),
            ),
            Self::CsrfRejected => (
                "This form has expired",
                "For your security we only accept forms sent from this shop in this browser \
                 session. Go back, reload the page and send the form again."
                    .to_owned(),
            ),
            Self::PayloadTooLarge => (
                "That was too much to send",
                "The form you sent is larger than any form in this shop.".to_owned(),
            ),
            Self::Unavailable(service) => (
                "We'll be right back",
                format!(
                    "{} is taking a short break. Nothing was lost; please try again in a moment.",
                    shopper_name(*service)
                ),
            ),
            Self::Rejected(detail) => ("We couldn't do that", detail.clone()),
        }
    }
}

/// Marker the middleware turns into a page.
#[derive(Debug, Clone)]
struct ErrorMarker(PageError);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let Self::LoginRequired { next } = &self {
            let target = format!("/login?next={}", crate::backend::segment(next));
            return Redirect::to(&target).into_response();
        }
        let status = self.status();
        let (heading, _) = self.words();
        let mut response = (status, heading).into_response();
        if matches!(self, Self::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response.extensions_mut().insert(ErrorMarker(self));
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    message: String,
    show_login: bool,
}

/// Middleware: renders [`PageError`] markers (and bare 404/405s) as full pages.
pub(crate) async fn error_pages(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let error = match response.extensions().get::<ErrorMarker>() {
        Some(ErrorMarker(error)) => error.clone(),
        None if response.status() == StatusCode::METHOD_NOT_ALLOWED => PageError::NotFound,
        None => return response,
    };
    let (heading, message) = error.words();
    let layout = Layout::new(&state, &session, heading).await;
    let page = ErrorPage {
        layout,
        heading,
        message,
        show_login: error == PageError::Forbidden,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let rendered = render(&page);
    let (rendered_parts, body) = rendered.into_parts();
    parts.headers.extend(rendered_parts.headers);
    Response::from_parts(parts, body)
}
