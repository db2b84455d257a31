//! Register, log in, log out, and where to go afterwards.

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use storekeeper_kit::client_ip::ClientIp;
use url::Url;

use crate::{
    AppState,
    auth::now,
    backend::{BackendError, users::NewAccount},
    pages::cart::{merge_guest_cart, recount},
    session::{Auth, FlashKind, Session},
    views::{FormState, Layout, render, render_with_status},
};

/// An origin no real request has, to resolve `next` against: a value that
/// resolves anywhere else leaves the site.
const THIS_SITE: &str = "http://storefront.invalid/";

/// Where to send a shopper after logging in or registering: `next` when it
/// is an absolute path on this site, else `/`. An open redirect would let a
/// link to the shop's own login page send its shoppers to a look-alike
/// site, so the rules are strict:
///
/// - it starts with one `/`, not `//` or `/\` (another host);
/// - every character is printable ASCII, no space: browsers drop tabs and
///   newlines (`/\t/evil.example` is `//evil.example` to them), and a
///   control character cannot go into a `Location` header at all;
/// - no backslash anywhere (browsers read it as `/`);
/// - decoded once more, without the whitespace and control characters
///   browsers drop, it still starts with one `/` and has no backslash
///   (`/%2F/evil`, `/%5Cevil`, `/%09/…` are what a second decoding proxy
///   would make into another host);
/// - resolved by a WHATWG URL parser (the one browsers follow) against this
///   site, it stays on this site.
pub(crate) fn local_next(next: &str) -> &str {
    let printable = next.chars().all(|c| c.is_ascii_graphic() && c != '\\');
    // What a second decoding would leave, with what browsers drop dropped.
    let decoded: String = percent_decode(next)
        .chars()
        .filter(|c| !(c.is_control() || c.is_whitespace()))
        .collect();
    let rooted = |path: &str| {
        path.starts_with('/') && !path[1..].starts_with(['/', '\\']) && !path.contains('\\')
    };
    if printable && rooted(next) && rooted(&decoded) && stays_on_this_site(next) {
        next
    } else {
        "/"
    }
}

/// Whether `path`, resolved the way a browser resolves a `Location`, is
/// still on this site.
fn stays_on_this_site(path: &str) -> bool {
    let Ok(site) = Url::parse(THIS_SITE) else {
        return false;
    };
    site.join(path)
        .is_ok_and(|url| url.origin() == site.origin())
}

/// `value` with every `%XX` decoded once (invalid UTF-8 becomes U+FFFD,
/// which the checks refuse anyway).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let hex = |at: usize| {
        bytes
            .get(at)
            .and_then(|digit| char::from(*digit).to_digit(16))
            .and_then(|digit| u8::try_from(digit).ok())
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if let (b'%', Some(high), Some(low)) = (byte, hex(at + 1), hex(at + 2)) {
            out.push(high << 4 | low);
            at += 3;
        } else {
            out.push(byte);
            at += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
    let next = local_next(&params.next).to_owned();
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
        next: local_next(&params.next).to_owned(),
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
    let next = local_next(&input.next).to_owned();
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
            email: me.email,
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
    let next = local_next(&input.next).to_owned();
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
    state.backend.register(account, client.0).await?;
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
        BackendError::Rejected { status, .. } if status.as_u16() == 429 => {
            form.summary = Some(
                "Many accounts were created from your network just now. Please try again later."
                    .to_owned(),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Known ways to leave a site through a "local" redirect parameter, as
    /// the login form receives them (already URL-decoded once).
    const BYPASSES: &[&str] = &[
        "https://evil.example",
        "http:evil.example",
        "HTTPS://evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example",
        "///evil.example",
        "////evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/\r\n/evil.example",
        "\t//evil.example",
        "/\u{0b}/evil.example",
        "/\u{0c}/evil.example",
        "/\u{0}/evil.example",
        "/\u{7f}/evil.example",
        " //evil.example",
        "/ /evil.example",
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0D%0A/evil.example",
        "/%2F/evil.example",
        "/%2f%2fevil.example",
        "/%5Cevil.example",
        "/%5c/evil.example",
        "%2F%2Fevil.example",
        "/\u{3000}/evil.example",
        "/\u{ff0f}evil.example",
        "\u{ff0f}\u{ff0f}evil.example",
        "/\u{200b}/evil.example",
        "evil.example",
        "orders",
        "",
    ];

    #[test]
    fn known_bypasses_fall_back_to_home() {
        for bad in BYPASSES {
            assert_eq!(local_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn local_paths_are_kept() {
        for good in [
            "/",
            "/orders",
            "/orders?x=1&y=%20two",
            "/products/blue-kettle#reviews",
            "/checkout?next=%2Forders",
            "/@evil.example",
        ] {
            assert_eq!(local_next(good), good);
        }
    }

    #[test]
    fn percent_decoding_is_one_level_and_tolerant() {
        assert_eq!(percent_decode("/%2F%2fx"), "///x");
        assert_eq!(percent_decode("/%252F"), "/%2F");
        assert_eq!(percent_decode("/%zz%4"), "/%zz%4");
        assert_eq!(percent_decode("/%E2%82%AC"), "/\u{20ac}");
        assert_eq!(percent_decode("/%FF"), "/\u{fffd}");
    }
}
