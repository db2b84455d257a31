//! The account page: who is logged in, and changing the password (which
//! ends every other session of the account).

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::here;
use crate::{
    AppState,
    auth::{access_token, now, on_backend_error},
    backend::BackendError,
    errors::PageError,
    session::{FlashKind, Session},
    views::{FormState, Layout, render, render_with_status},
};

const PASSWORD_PAGE: &str = "/account/password";

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    email: String,
    name: String,
    role: &'static str,
}

/// How a role reads on the page.
fn role_label(role: &str) -> &'static str {
    match role {
        "admin" => "Administrator",
        _ => "Customer",
    }
}

/// `GET /account`: the profile as user-service knows it.
pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
) -> Result<Response, PageError> {
    let token = access_token(&state, &session, &here(&uri)).await?;
    let me = state
        .backend
        .me(&token)
        .await
        .map_err(|err| on_backend_error(&session, &err, &here(&uri)))?;
    let layout = Layout::new(&state, &session, "Your account").await;
    Ok(render(&AccountPage {
        layout,
        email: me.email,
        name: me.name,
        role: role_label(&me.role),
    }))
}

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage {
    layout: Layout,
    form: FormState,
}

/// `GET /account/password`.
pub(crate) async fn password_form(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, PageError> {
    access_token(&state, &session, PASSWORD_PAGE).await?;
    let layout = Layout::new(&state, &session, "Change your password").await;
    Ok(render(&PasswordPage {
        layout,
        form: FormState::default(),
    }))
}

/// What the password form posts.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /account/password`: user-service checks the current password and
/// the new one, ends every login of the account and hands this session a
/// fresh one, which replaces the tokens in the cookie.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    session: Session,
    Form(input): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let token = access_token(&state, &session, PASSWORD_PAGE).await?;
    let mut form = FormState::default();
    if input.current_password.is_empty() {
        form.error_on("current_password", "Please enter your current password.");
    }
    if input.new_password.is_empty() {
        form.error_on("new_password", "Please choose a new password.");
    }
    if !form.has_errors() {
        let changed = state
            .backend
            .change_password(&token, &input.current_password, &input.new_password)
            .await;
        match changed {
            Ok(tokens) => {
                session.update(|data| {
                    if let Some(auth) = data.auth.as_mut() {
                        auth.access_token = tokens.access_token;
                        auth.refresh_token = tokens.refresh_token;
                        auth.expires_at = now() + tokens.expires_in;
                    }
                    data.flash(
                        FlashKind::Success,
                        "Your password is changed. You stay logged in here; every other \
                         browser and device using your account is logged out.",
                    );
                });
                return Ok(Redirect::to("/account").into_response());
            }
            Err(err @ BackendError::Unauthorized { .. }) => {
                return Err(on_backend_error(&session, &err, PASSWORD_PAGE));
            }
            Err(err) => explain_failure(&mut form, &err),
        }
    }
    let layout = Layout::new(&state, &session, "Change your password").await;
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &PasswordPage { layout, form },
    ))
}

fn explain_failure(form: &mut FormState, err: &BackendError) {
    match err {
        BackendError::Rejected { status, .. } if status.as_u16() == 429 => {
            form.summary = Some(
                "Too many wrong passwords. Please wait a few minutes, then try again.".to_owned(),
            );
        }
        BackendError::Unavailable {
            outcome_unknown: true,
            ..
        } => {
            form.summary = Some(
                "Sign-in took too long to answer, so we can't tell whether your password was \
                 changed. Next time you log in, try the new one first."
                    .to_owned(),
            );
        }
        BackendError::Unavailable { .. } => {
            form.summary = Some(
                "Sign-in is taking a short break, so your password was not changed. Please try \
                 again in a moment."
                    .to_owned(),
            );
        }
        _ => {
            form.absorb(err.field_errors(), |field| match field {
                "current_password" => Some("current_password"),
                "new_password" => Some("new_password"),
                _ => None,
            });
            if !form.has_errors() {
                form.summary = Some(
                    err.detail()
                        .unwrap_or("We couldn't change your password. Please try again.")
                        .to_owned(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::role_label;

    #[test]
    fn roles_read_as_words() {
        assert_eq!(role_label("admin"), "Administrator");
        assert_eq!(role_label("customer"), "Customer");
    }
}
