//! The shopper's session: an encrypted, HttpOnly, SameSite=Lax cookie.
//!
//! The storefront keeps no session store. Everything a session needs (the
//! CSRF token, the API tokens, a guest cart, a one-shot notice) is small, so
//! it travels in one cookie that axum-extra's `PrivateCookieJar` encrypts and
//! authenticates with `SESSION_KEY` (AES-256-GCM): the browser can neither read
//! the tokens nor forge a session. Handlers read and change the session
//! through a [`Session`] handle; the middleware writes the cookie back only
//! when something changed.

use std::sync::{Arc, Mutex, PoisonError};

use axum::{
    extract::{FromRef, FromRequestParts, Request, State},
    http::{StatusCode, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use axum_extra::extract::{
    PrivateCookieJar,
    cookie::{Cookie, Key, SameSite},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub(crate) const COOKIE_NAME: &str = "sk_session";
/// A guest may keep this many different products in the cookie cart.
pub(crate) const GUEST_CART_LINES: usize = 20;

/// The tokens and identity of a logged-in shopper.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Auth {
    /// Bearer token for the APIs.
    pub(crate) access_token: String,
    /// Token that buys a new pair when the access token expires.
    pub(crate) refresh_token: String,
    /// Unix time (seconds) at which `access_token` expires.
    pub(crate) expires_at: i64,
    /// Display name for the header.
    pub(crate) name: String,
    /// `customer` or `admin`.
    pub(crate) role: String,
    /// The account's e-mail: orders are placed with it, so admins can find
    /// them by it (empty in sessions from before it was kept).
    #[serde(default)]
    pub(crate) email: String,
}

impl Auth {
    /// Whether the account may use the admin pages.
    pub(crate) fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// One product in a guest's cookie cart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct GuestLine {
    pub(crate) product_id: String,
    pub(crate) quantity: u32,
}

/// How a one-shot notice looks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FlashKind {
    /// Something worked.
    Success,
    /// Something went wrong.
    Error,
    /// Neutral information.
    Info,
}

impl FlashKind {
    /// CSS modifier for the notice.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Info => "info",
        }
    }
}

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Flash {
    pub(crate) kind: FlashKind,
    pub(crate) message: String,
}

/// A checkout in progress: one per attempt to order, from its first submit
/// until an order is known to be placed. Every retry of the attempt sends
/// the same `Idempotency-Key` and, while the card is the same, the same
/// payment method, so order-service replays instead of ordering twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CheckoutAttempt {
    /// The `Idempotency-Key` of every `POST /api/orders` of this attempt.
    pub(crate) key: String,
    /// The card's payment-method id, once tokenized (it also finds the
    /// order when an answer was lost: it is on the order).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) payment_method_id: String,
    /// Which card that id stands for: last four digits and expiry, enough
    /// to tell a retry with the same card from another card (never the
    /// number).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) card: String,
    /// Unix time the order was sent without an answer (0: not sent, or
    /// answered); the order is looked for until a while after it.
    #[serde(default)]
    pub(crate) unanswered_since: i64,
}

/// Everything the cookie carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SessionData {
    /// Synchronizer token every POST form must echo.
    pub(crate) csrf: String,
    /// Present when logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) auth: Option<Auth>,
    /// A guest's cart, merged into the server-side cart at login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) guest_cart: Vec<GuestLine>,
    /// Units in the cart, for the header badge (refreshed on every cart change).
    #[serde(default)]
    pub(crate) cart_count: u32,
    /// One-shot notice for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flash: Option<Flash>,
    /// The checkout attempt in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checkout: Option<CheckoutAttempt>,
}

impl SessionData {
    /// A fresh anonymous session with a new CSRF token.
    pub(crate) fn new() -> Self {
        Self {
            csrf: new_token(),
            auth: None,
            guest_cart: Vec::new(),
            cart_count: 0,
            flash: None,
            checkout: None,
        }
    }

    /// Logs in: new CSRF token too, so a token seen before login is useless after it.
    pub(crate) fn log_in(&mut self, auth: Auth) {
        self.auth = Some(auth);
        self.csrf = new_token();
    }

    /// Forgets the account (keeps nothing from it, not even the cart count).
    pub(crate) fn log_out(&mut self) {
        *self = Self::new();
    }

    /// Adds to the guest cart; false when the cart has no room for a new line.
    pub(crate) fn add_guest_item(&mut self, product_id: &str, quantity: u32) -> bool {
        if let Some(line) = self
            .guest_cart
            .iter_mut()
            .find(|line| line.product_id == product_id)
        {
            line.quantity = line.quantity.saturating_add(quantity);
        } else if self.guest_cart.len() < GUEST_CART_LINES {
            self.guest_cart.push(GuestLine {
                product_id: product_id.to_owned(),
                quantity,
            });
        } else {
            return false;
        }
        self.recount_guest_cart();
        true
    }

    /// Sets a guest line's quantity; zero removes it.
    pub(crate) fn set_guest_quantity(&mut self, product_id: &str, quantity: u32) {
        if quantity == 0 {
            self.guest_cart.retain(|line| line.product_id != product_id);
        } else if let Some(line) = self
            .guest_cart
            .iter_mut()
            .find(|line| line.product_id == product_id)
        {
            line.quantity = quantity;
        }
        self.recount_guest_cart();
    }

    fn recount_guest_cart(&mut self) {
        self.cart_count = self.guest_cart.iter().map(|line| line.quantity).sum();
    }

    /// Sets the notice for the next page.
    pub(crate) fn flash(&mut self, kind: FlashKind, message: impl Into<String>) {
        self.flash = Some(Flash {
            kind,
            message: message.into(),
        });
    }
}

impl Default for SessionData {
    fn default() -> Self {
        Self::new()
    }
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug)]
struct Inner {
    data: SessionData,
    dirty: bool,
}

/// A request's session; cheap to clone, shared by the middleware and the handler.
#[derive(Debug, Clone)]
pub(crate) struct Session(Arc<Mutex<Inner>>);

impl Session {
    fn new(data: SessionData, dirty: bool) -> Self {
        Self(Arc::new(Mutex::new(Inner { data, dirty })))
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&SessionData) -> R) -> R {
        f(&self.0.lock().unwrap_or_else(PoisonError::into_inner).data)
    }

    /// Changes the session; the cookie is rewritten on the way out.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut SessionData) -> R) -> R {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner.dirty = true;
        f(&mut inner.data)
    }

    pub(crate) fn auth(&self) -> Option<Auth> {
        self.read(|data| data.auth.clone())
    }

    /// The CSRF token forms must carry.
    pub(crate) fn csrf(&self) -> String {
        self.read(|data| data.csrf.clone())
    }

    /// Takes the one-shot notice, if any.
    pub(crate) fn take_flash(&self) -> Option<Flash> {
        if self.read(|data| data.flash.is_none()) {
            return None;
        }
        self.update(|data| data.flash.take())
    }

    fn snapshot_if_dirty(&self) -> Option<SessionData> {
        let inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner.dirty.then(|| inner.data.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Present on every page route (the session middleware wraps them all);
        // its absence is a wiring bug, reported as a plain 500.
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// What the session middleware needs: the cookie key and the Secure flag.
#[derive(Clone)]
pub(crate) struct CookieSettings {
    /// Encrypts and authenticates the cookie.
    pub(crate) key: Key,
    /// Adds `Secure` (set behind TLS).
    pub(crate) secure: bool,
}

impl FromRef<CookieSettings> for Key {
    fn from_ref(settings: &CookieSettings) -> Self {
        settings.key.clone()
    }
}

/// Middleware: loads the session from the cookie (or starts one), hands it
/// to the handler, and writes the cookie back if the handler changed it.
pub(crate) async fn session_middleware(
    State(settings): State<CookieSettings>,
    jar: PrivateCookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let stored = jar
        .get(COOKIE_NAME)
        .and_then(|cookie| serde_json::from_str::<SessionData>(cookie.value()).ok());
    let session = match stored {
        Some(data) => Session::new(data, false),
        None => Session::new(SessionData::new(), true),
    };
    // Behind a TLS-terminating ingress the request arrives as plain HTTP with
    // `X-Forwarded-Proto: https`. Trusting it is safe here: a client that
    // forges it only makes its own cookie HTTPS-only.
    let secure = settings.secure
        || request
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    request.extensions_mut().insert(session.clone());
    let response = next.run(request).await;
    match session.snapshot_if_dirty() {
        Some(data) => (jar.add(cookie(&data, secure)), response).into_response(),
        None => response,
    }
}

/// A browser-session cookie (no `Max-Age`): closing the browser logs out.
fn cookie(data: &SessionData, secure: bool) -> Cookie<'static> {
    // Serializing plain strings and numbers cannot fail.
    let value = serde_json::to_string(data).unwrap_or_default();
    Cookie::build((COOKIE_NAME, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_cart_merges_lines_and_counts_units() {
        let mut data = SessionData::new();
        assert!(data.add_guest_item("a", 2));
        assert!(data.add_guest_item("a", 1));
        assert!(data.add_guest_item("b", 1));
        assert_eq!(data.guest_cart.len(), 2);
        assert_eq!(data.cart_count, 4);
        data.set_guest_quantity("a", 0);
        assert_eq!(data.cart_count, 1);
    }

    #[test]
    fn guest_cart_is_bounded() {
        let mut data = SessionData::new();
        for i in 0..GUEST_CART_LINES {
            assert!(data.add_guest_item(&i.to_string(), 1));
        }
        assert!(!data.add_guest_item("one-too-many", 1));
        assert!(data.add_guest_item("0", 1), "existing lines still grow");
    }

    #[test]
    fn login_rotates_the_csrf_token_and_logout_forgets_everything() {
        let mut data = SessionData::new();
        let before = data.csrf.clone();
        data.log_in(Auth {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_at: 0,
            name: "Ann".into(),
            role: "customer".into(),
            email: "ann@example.com".into(),
        });
        assert_ne!(data.csrf, before);
        data.cart_count = 3;
        data.log_out();
        assert!(data.auth.is_none());
        assert_eq!(data.cart_count, 0);
    }

    #[test]
    fn a_full_session_fits_in_a_cookie() {
        let mut data = SessionData::new();
        data.log_in(Auth {
            access_token: "x".repeat(600),
            refresh_token: "y".repeat(100),
            expires_at: i64::MAX,
            name: "n".repeat(100),
            role: "customer".into(),
            email: format!("{}@example.com", "e".repeat(100)),
        });
        for _ in 0..GUEST_CART_LINES {
            data.add_guest_item(&uuid::Uuid::new_v4().to_string(), 99);
        }
        data.flash(FlashKind::Info, "m".repeat(200));
        data.checkout = Some(CheckoutAttempt {
            key: uuid::Uuid::new_v4().to_string(),
            payment_method_id: uuid::Uuid::new_v4().to_string(),
            card: "4242 12/2034".into(),
            unanswered_since: i64::MAX,
        });
        let json = serde_json::to_string(&data).unwrap();
        // Encryption adds a 12-byte nonce and 16-byte tag, then base64 (4/3).
        let encoded = (json.len() + 28).div_ceil(3) * 4;
        assert!(encoded + COOKIE_NAME.len() < 4096, "{encoded}");
    }
}
