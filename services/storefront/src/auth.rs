//! A valid access token for the current shopper, refreshed transparently.
//!
//! Access tokens live 15 minutes. Before a call, if the session's token is
//! about to expire, the refresh token buys a new pair (user-service rotates
//! it) and the session is updated. A refused refresh logs the shopper out
//! and sends them to the login page, back to where they were afterwards.

use crate::{
    AppState,
    backend::BackendError,
    errors::PageError,
    session::{Auth, Session},
};

/// Refresh this many seconds before the token actually expires, so it does
/// not run out between the check and the backend's own check.
const EARLY_SECONDS: i64 = 30;

/// Returns a usable access token, or sends the shopper to log in.
/// `here` is the page to come back to after logging in.
pub(crate) async fn access_token(
    state: &AppState,
    session: &Session,
    here: &str,
) -> Result<String, PageError> {
    let login = || PageError::LoginRequired {
        next: here.to_owned(),
    };
    let auth = session.auth().ok_or_else(login)?;
    if auth.expires_at - EARLY_SECONDS > now() {
        return Ok(auth.access_token);
    }
    match state.backend.refresh(&auth.refresh_token).await {
        Ok(tokens) => {
            let token = tokens.access_token.clone();
            session.update(|data| {
                if let Some(current) = data.auth.as_mut() {
                    current.access_token = tokens.access_token;
                    current.refresh_token = tokens.refresh_token;
                    current.expires_at = now() + tokens.expires_in;
                }
            });
            Ok(token)
        }
        Err(err @ BackendError::Unavailable { .. }) => Err(PageError::from_backend(&err, here)),
        Err(_) => {
            session.update(crate::session::SessionData::log_out);
            session.update(|data| {
                data.flash(
                    crate::session::FlashKind::Info,
                    "Your session has ended. Please log in again.",
                );
            });
            Err(login())
        }
    }
}

/// The logged-in admin's token, or 403 for anyone else.
pub(crate) async fn admin_token(
    state: &AppState,
    session: &Session,
    here: &str,
) -> Result<String, PageError> {
    let token = access_token(state, session, here).await?;
    if session.auth().is_some_and(|auth| Auth::is_admin(&auth)) {
        Ok(token)
    } else {
        Err(PageError::Forbidden)
    }
}

/// Maps a backend error on an authenticated call: a refused token logs out.
pub(crate) fn on_backend_error(session: &Session, err: &BackendError, here: &str) -> PageError {
    if matches!(err, BackendError::Unauthorized { .. }) {
        session.update(crate::session::SessionData::log_out);
    }
    PageError::from_backend(err, here)
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
