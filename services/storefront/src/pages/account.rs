//! Register, log in, log out.

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use storekeeper_kit::client_ip::ClientIp;

use super::safe_next;
use crate::{
    AppState,
    auth::now,
    backend::{BackendError, users::NewAccount},
    pages::cart::{merge_guest_cart, recount},
    session::{Auth, FlashKind, Session},
    views::{FormState, Layout, render, render_with_status},
};

/// `?next=` on the login and register pages.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextParam {
    #[serde(default)]
    next: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    form: FormState,
    next: String,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    layout: Layout,
    form: FormState,
    next: String,
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<NextParam>,
) -> Response {
    let next = safe_next(&params.next).to_owned();
    if session.auth().is_some() {
        return Redirect::to(&next).into_response();
    }
    let layout = Layout::new(&state, &session, "Log in").await;
    render(&LoginPage {
        layout,
        form: FormState::default(),
        next,
    })
}

/// `GET /register`.
pub(crate) async fn register_form(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<NextParam>,
) -> Response {
    let layout = Layout::new(&state, &session, "Create an account").await;
    render(&RegisterPage {
        layout,
        form: FormState::default(),
        next: safe_next(&params.next).to_owned(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`.
pub(crate) async fn login(
    State(state): State<AppState>,
    session: Session,
    client: ClientIp,
    Form(input): Form<LoginForm>,
) -> Response {
    let next = safe_next(&input.next).to_owned();
    let mut form = FormState::default();
    form.set("email", input.email.trim());
    if input.email.trim().is_empty() {
        form.error_on("email", "Please enter your email address.");
    }
    if input.password.is_empty() {
        form.error_on("password", "Please enter your password.");
    }
    if !form.has_errors() {
        match sign_in(
            &state,
            &session,
            client,
            input.email.trim(),
            &input.password,
        )
        .await
        {
            Ok(name) => {
                session.update(|data| {
                    data.flash(FlashKind::Success, format!("Welcome back, {name}."));
                });
                return Redirect::to(&next).into_response();
            }
            Err(err) => form.summary = Some(login_failure(&err)),
        }
    }
    let layout = Layout::new(&state, &session, "Log in").await;
    render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &LoginPage { layout, form, next },
    )
}

fn login_failure(err: &BackendError) -> String {
    match err {
        BackendError::Unauthorized { .. } | BackendError::NotFound { .. } => {
            "That email and password don't match an account. Please try again.".to_owned()
        }
        BackendError::Unavailable { .. } => {
            "Sign-in is taking a short break. Please try again in a moment.".to_owned()
        }
        BackendError::Rejected { status, .. } if status.as_u16() == 429 => {
            "Too many attempts. Please wait a minute, then try again.".to_owned()
        }
        _ => err
            .detail()
            .unwrap_or("We couldn't log you in. Please try again.")
            .to_owned(),
    }
}

/// Logs in with user-service, fills the session, moves the guest cart.
/// Returns the shopper's display name.
async fn sign_in(
    state: &AppState,
    session: &Session,
    client: ClientIp,
    email: &str,
    password: &str,
) -> Result<String, BackendError> {
    let tokens = state.backend.login(email, password, client.0).await?;
    let me = state.backend.me(&tokens.access_token).await?;
    session.update(|data| {
        data.log_in(Auth {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token,
            expires_at: now() + tokens.expires_in,
            name: me.name.clone(),
            role: me.role,
        });
    });
    merge_guest_cart(state, session, &tokens.access_token).await;
    recount(state, session, &tokens.access_token).await;
    Ok(me.name)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Shortest password the form accepts (user-service may ask for more).
const MIN_PASSWORD: usize = 8;

/// `POST /register`: creates the account and logs in.
pub(crate) async fn register(
    State(state): State<AppState>,
    session: Session,
    client: ClientIp,
    Form(input): Form<RegisterForm>,
) -> Response {
    let next = safe_next(&input.next).to_owned();
    let (name, email) = (input.name.trim(), input.email.trim());
    let mut form = FormState::default();
    form.set("name", name);
    form.set("email", email);
    if name.is_empty() {
        form.error_on("name", "Please tell us your name.");
    }
    if !email.contains('@') {
        form.error_on(
            "email",
            "Please enter an email address, like ann@example.com.",
        );
    }
    if input.password.chars().count() < MIN_PASSWORD {
        form.error_on(
            "password",
            format!("Please choose a password of at least {MIN_PASSWORD} characters."),
        );
    }
    if !form.has_errors() {
        let account = NewAccount {
            email,
            password: &input.password,
            name,
        };
        match create_and_sign_in(&state, &session, client, &account).await {
            Ok(()) => {
                session.update(|data| {
                    data.flash(
                        FlashKind::Success,
                        format!("Welcome, {name}! Your account is ready."),
                    );
                });
                return Redirect::to(&next).into_response();
            }
            Err(err) => explain_registration_failure(&mut form, &err),
        }
    }
    let layout = Layout::new(&state, &session, "Create an account").await;
    render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &RegisterPage { layout, form, next },
    )
}

async fn create_and_sign_in(
    state: &AppState,
    session: &Session,
    client: ClientIp,
    account: &NewAccount<'_>,
) -> Result<(), BackendError> {
    state.backend.register(account).await?;
    sign_in(state, session, client, account.email, account.password)
        .await
        .map(drop)
}

fn explain_registration_failure(form: &mut FormState, err: &BackendError) {
    match err {
        BackendError::Rejected { status, .. } if status.as_u16() == 409 => form.error_on(
            "email",
            "An account with this email already exists. Log in instead?",
        ),
        BackendError::Rejected { .. } => {
            form.absorb(err.field_errors(), |field| match field {
                "name" => Some("name"),
                "email" => Some("email"),
                "password" => Some("password"),
                _ => None,
            });
            if !form.has_errors() {
                form.summary = Some(
                    err.detail()
                        .unwrap_or("We couldn't create the account. Please check the form.")
                        .to_owned(),
                );
            }
        }
        BackendError::Unavailable { .. } => {
            form.summary =
                Some("Accounts are taking a short break. Please try again in a moment.".to_owned());
        }
        _ => form.summary = Some("We couldn't create the account. Please try again.".to_owned()),
    }
}

/// `POST /logout`: revokes the refresh token and forgets the session.
pub(crate) async fn logout(State(state): State<AppState>, session: Session) -> Response {
    if let Some(auth) = session.auth()
        && let Err(err) = state
            .backend
            .logout(&auth.access_token, &auth.refresh_token)
            .await
    {
        tracing::info!(error = %err, "logout could not revoke the refresh token");
    }
    session.update(|data| {
        data.log_out();
        data.flash(FlashKind::Info, "You are logged out. See you soon!");
    });
    Redirect::to("/").into_response()
}
