//! Access tokens: Ed25519-signed JWTs (`alg: EdDSA`), signed by user-service
//! and verified locally by every service, plus the axum extractors that guard
//! routes.
//!
//! Only user-service holds the private key (`TOKEN_PRIVATE_KEY`); every other
//! service gets the public key (`TOKEN_PUBLIC_KEY`), so a compromised catalog
//! service cannot mint tokens. Keys are PEM (PKCS#8 private, SPKI public);
//! [`KeyPair::generate`] makes a fresh pair so tests and the local runner
//! never need committed keys.
//!
//! A Store's tokens may also name who issued them (`iss`) and for whom
//! (`aud`), from `TOKEN_ISSUER` and `TOKEN_AUDIENCE` ([`TokenScope`]), so a
//! token minted for one shop is refused by another's services. Verifiers
//! check those claims only when configured with them and only when a token
//! carries them, until `TOKEN_CLAIMS_REQUIRED` says every token must: that
//! order lets a running shop switch them on without refusing a single
//! token in flight (docs/architecture.md, "Auth").

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{FromRef, FromRequestParts, OptionalFromRequestParts},
    http::{header, request::Parts},
};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::ApiError;

mod verified;

use verified::Verified;

/// Lifetime of an access token: short, because a stolen one cannot be
/// revoked before it expires (docs/architecture.md, "Auth").
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_mins(15);

/// What a user may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    /// A shopper: sees only their own cart, orders and payments.
    Customer,
    /// A shop administrator: may change the catalog and refund payments.
    Admin,
}

impl Role {
    /// The lowercase name used in tokens and databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }
}

/// The access token's claims: who the user is and what they may do, so a
/// service authorizes a request without calling user-service
/// (docs/architecture.md, "Auth").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Who issued it (`TOKEN_ISSUER`), when the signer was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Whom it is for (`TOKEN_AUDIENCE`), when the signer was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims for `user` valid for `ttl` from now, with no issuer or audience.
    pub fn new(user: Uuid, role: Role, ttl: Duration) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub: user,
            role,
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            iss: None,
            aud: None,
        }
    }
}

/// Which shop a token belongs to: the issuer and audience user-service
/// signs into it and every service checks (`TOKEN_ISSUER`,
/// `TOKEN_AUDIENCE`, `TOKEN_CLAIMS_REQUIRED`). Unset parts are neither
/// signed nor checked, which is what lets a rolling upgrade introduce them
/// (verifiers first, then issuers, then required).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenScope {
    /// The `iss` to sign, and the only one accepted when a token has one.
    pub issuer: Option<String>,
    /// The `aud` to sign, and the only one accepted when a token has one.
    pub audience: Option<String>,
    /// Refuse tokens that lack the configured `iss`/`aud` claims (once every
    /// issuer signs them and older tokens have expired).
    pub required: bool,
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a PEM Ed25519 key of the expected kind.
    #[error("not a PEM-encoded Ed25519 {expected} key: {reason}")]
    Malformed {
        /// `private (PKCS#8)` or `public (SPKI)`.
        expected: &'static str,
        /// The parser's complaint.
        reason: String,
    },
}

/// Why a token was refused (the detail a client sees in the 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token's `exp` is in the past.
    #[error("the access token has expired")]
    Expired,
    /// Bad signature, wrong algorithm, malformed or missing claims.
    #[error("the access token is invalid")]
    Invalid,
    /// Its issuer or audience is another shop's, or missing while required.
    #[error("the access token was not issued for this shop")]
    WrongShop,
}

/// Accepts PEMs whose newlines were escaped as `\n` (common in env files).
fn normalize_pem(pem: &str) -> String {
    pem.trim().replace("\\n", "\n")
}

/// Signs access tokens (user-service and tests).
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
    public_pem: String,
    scope: TokenScope,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").finish_non_exhaustive()
    }
}

/// A freshly signed access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl TokenSigner {
    /// Loads a PKCS#8 PEM private key; tokens live [`ACCESS_TOKEN_TTL`].
    pub fn from_pem(private_pem: &str) -> Result<Self, KeyError> {
        let pem = normalize_pem(private_pem);
        let malformed = |reason: String| KeyError::Malformed {
            expected: "private (PKCS#8)",
            reason,
        };
        let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| malformed(e.to_string()))?;
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| malformed(e.to_string()))?;
        let key = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| malformed(e.to_string()))?;
        Ok(Self {
            key,
            public_pem,
            scope: TokenScope::default(),
        })
    }

    /// The same signer, putting `scope`'s issuer and audience into every
    /// token it signs (and its [`verifier`](Self::verifier) checking them).
    #[must_use]
    pub fn with_scope(self, scope: TokenScope) -> Self {
        Self { scope, ..self }
    }

    /// Signs an access token for `user`, with the scope's issuer and audience.
    pub fn sign(&self, user: Uuid, role: Role) -> Result<AccessToken, jsonwebtoken::errors::Error> {
        let claims = Claims {
            iss: self.scope.issuer.clone(),
            aud: self.scope.audience.clone(),
            ..Claims::new(user, role, ACCESS_TOKEN_TTL)
        };
        let token = self.sign_claims(&claims)?;
        Ok(AccessToken {
            token,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
        })
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign_claims(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.key)
    }

    /// A verifier for this signer's tokens, checking the same scope.
    pub fn verifier(&self) -> Result<TokenVerifier, KeyError> {
        TokenVerifier::from_pem_scoped(&self.public_pem, &self.scope)
    }
}

/// Verifies access tokens. Put it in the app state and implement
/// `FromRef<AppState> for TokenVerifier` to enable [`AuthUser`]/[`AdminUser`].
#[derive(Clone)]
pub struct TokenVerifier(Arc<VerifierParts>);

struct VerifierParts {
    key: DecodingKey,
    validation: Validation,
    verified: Verified,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Loads an SPKI PEM public key; checks no issuer or audience, and
    /// accepts tokens that carry them.
    pub fn from_pem(public_pem: &str) -> Result<Self, KeyError> {
        Self::from_pem_scoped(public_pem, &TokenScope::default())
    }

    /// Loads an SPKI PEM public key; a token carrying `iss` or `aud` must
    /// carry `scope`'s (where set), and with `scope.required` it must carry
    /// them at all.
    pub fn from_pem_scoped(public_pem: &str, scope: &TokenScope) -> Result<Self, KeyError> {
        let pem = normalize_pem(public_pem);
        let key = DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| KeyError::Malformed {
            expected: "public (SPKI)",
            reason: e.to_string(),
        })?;
        let validation = validation(scope);
        let verified = Verified::new(verified::CAPACITY, validation.leeway);
        Ok(Self(Arc::new(VerifierParts {
            key,
            validation,
            verified,
        })))
    }

    /// Checks signature, algorithm, expiry, issuer and audience; returns the
    /// claims. A token this verifier passed before is not checked again,
    /// only its expiry (see the `verified` module).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let parts = &*self.0;
        let now = chrono::Utc::now().timestamp();
        if let Some(known) = parts.verified.get(token, now) {
            return known;
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &parts.key, &parts.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongShop,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" || claim == "aud" => {
                    TokenError::WrongShop
                }
                _ => TokenError::Invalid,
            })?;
        parts.verified.insert(token, &claims, now);
        Ok(claims)
    }
}

/// The checks a verifier with `scope` makes. jsonwebtoken refuses any token
/// with an `aud` when no audience is configured, so without one the
/// audience check is off: a verifier that does not know the shop's
/// audience yet must still accept the tokens of an issuer that does.
fn validation(scope: &TokenScope) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 30;
    let mut required = vec!["exp", "iat", "sub"];
    if let Some(issuer) = &scope.issuer {
        validation.set_issuer(&[issuer]);
        if scope.required {
            required.push("iss");
        }
    }
    match &scope.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            if scope.required {
                required.push("aud");
            }
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// A fresh Ed25519 key pair, PEM-encoded.
#[derive(Clone)]
pub struct KeyPair {
    /// PKCS#8 private key (`TOKEN_PRIVATE_KEY`).
    pub private_pem: String,
    /// SPKI public key (`TOKEN_PUBLIC_KEY`).
    pub public_pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generates a key pair from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Malformed {
                expected: "private (PKCS#8)",
                reason: e.to_string(),
            })?
            .to_string();
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Malformed {
                expected: "public (SPKI)",
                reason: e.to_string(),
            })?;
        Ok(Self {
            private_pem,
            public_pem,
        })
    }
}

/// An authenticated caller (any role). As an extractor it requires a valid
/// `Authorization: Bearer <access token>`, else 401 problem+json.
/// `Option<AuthUser>` accepts requests without the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    /// The user id (`sub`).
    pub id: Uuid,
    /// The user's role.
    pub role: Role,
}

impl AuthUser {
    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// An authenticated administrator: 401 without a valid token, 403 for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminUser(pub AuthUser);

fn bearer_token(parts: &Parts) -> Option<Result<&str, ApiError>> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|text| {
            let (scheme, token) = text.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <access token>`")
                .with_www_authenticate("Bearer error=\"invalid_request\"")
        });
    Some(token)
}

fn authenticate(token: &str, verifier: &TokenVerifier) -> Result<AuthUser, ApiError> {
    verifier
        .verify(token)
        .map(|claims| AuthUser {
            id: claims.sub,
            role: claims.role,
        })
        .map_err(|err| {
            ApiError::unauthorized(err.to_string())
                .with_www_authenticate("Bearer error=\"invalid_token\"")
        })
}

impl<S> FromRequestParts<S> for AuthUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::unauthorized("this endpoint requires a bearer access token")
        })??;
        authenticate(token, &TokenVerifier::from_ref(state))
    }
}

impl<S> OptionalFromRequestParts<S> for AuthUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match bearer_token(parts) {
            None => Ok(None),
            Some(token) => authenticate(token?, &TokenVerifier::from_ref(state)).map(Some),
        }
    }
}

impl<S> FromRequestParts<S> for AdminUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Self(user))
        } else {
            Err(ApiError::forbidden("this endpoint requires the admin role"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (TokenSigner, TokenVerifier) {
        let keys = KeyPair::generate().unwrap();
        let signer = TokenSigner::from_pem(&keys.private_pem).unwrap();
        let verifier = TokenVerifier::from_pem(&keys.public_pem).unwrap();
        (signer, verifier)
    }

    #[test]
    fn round_trip() {
        let (signer, verifier) = pair();
        let user = Uuid::new_v4();
        let token = signer.sign(user, Role::Admin).unwrap();
        assert_eq!(token.expires_in, 900);
        let claims = verifier.verify(&token.token).unwrap();
        assert_eq!((claims.sub, claims.role), (user, Role::Admin));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let (signer, verifier) = pair();
        let mut claims = Claims::new(Uuid::new_v4(), Role::Customer, Duration::ZERO);
        claims.exp -= 3600;
        let token = signer.sign_claims(&claims).unwrap();
        assert_eq!(verifier.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn other_keys_and_tampering_are_refused() {
        let (signer, _) = pair();
        let (_, other_verifier) = pair();
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert_eq!(other_verifier.verify(&token), Err(TokenError::Invalid));
        assert_eq!(other_verifier.verify("not.a.jwt"), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_verified_before_is_remembered_and_a_tampered_copy_is_still_refused() {
        let (signer, verifier) = pair();
        let user = Uuid::new_v4();
        let token = signer.sign(user, Role::Customer).unwrap().token;
        let now = chrono::Utc::now().timestamp();
        assert_eq!(verifier.0.verified.get(&token, now), None);
        assert_eq!(verifier.verify(&token).unwrap().sub, user);
        assert_eq!(
            verifier.0.verified.get(&token, now).unwrap().unwrap().sub,
            user
        );
        let forged = crate::testing::tampered(&token);
        assert_eq!(verifier.verify(&forged), Err(TokenError::Invalid));
        assert_eq!(verifier.0.verified.get(&forged, now), None);
        assert_eq!(verifier.verify(&token).unwrap().sub, user);
    }

    #[test]
    fn verifier_derived_from_signer_matches() {
        let (signer, _) = pair();
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert!(signer.verifier().unwrap().verify(&token).is_ok());
    }

    fn scope(issuer: &str, audience: &str, required: bool) -> TokenScope {
        TokenScope {
            issuer: Some(issuer.to_owned()),
            audience: Some(audience.to_owned()),
            required,
        }
    }

    fn scoped_pair(signs: TokenScope, checked: &TokenScope) -> (TokenSigner, TokenVerifier) {
        let keys = KeyPair::generate().unwrap();
        let signer = TokenSigner::from_pem(&keys.private_pem)
            .unwrap()
            .with_scope(signs);
        let verifier = TokenVerifier::from_pem_scoped(&keys.public_pem, checked).unwrap();
        (signer, verifier)
    }

    const SHOP: (&str, &str) = ("storekeeper:shop/main", "storekeeper:shop/main");

    #[test]
    fn a_scoped_signer_signs_its_issuer_and_audience() {
        let (signer, verifier) = scoped_pair(scope(SHOP.0, SHOP.1, false), &TokenScope::default());
        let claims = verifier
            .verify(&signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token)
            .unwrap();
        assert_eq!(claims.iss.as_deref(), Some(SHOP.0));
        assert_eq!(claims.aud.as_deref(), Some(SHOP.1));
        let plain = pair().0.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        let payload = plain.split('.').nth(1).unwrap();
        let json = base64::Engine::decode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, payload)
            .map(|bytes| String::from_utf8(bytes).unwrap())
            .unwrap();
        assert!(!json.contains("iss") && !json.contains("aud"), "{json}");
    }

    #[test]
    fn a_verifier_without_a_scope_accepts_scoped_tokens() {
        // The first rollout step: issuers may sign before every verifier knows.
        let (signer, verifier) = scoped_pair(scope(SHOP.0, SHOP.1, false), &TokenScope::default());
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert!(verifier.verify(&token).is_ok());
        assert!(signer.verifier().unwrap().verify(&token).is_ok());
    }

    #[test]
    fn another_shops_issuer_or_audience_is_refused() {
        let checked = scope(SHOP.0, SHOP.1, false);
        for signed in [
            scope("storekeeper:other/main", SHOP.1, false),
            scope(SHOP.0, "storekeeper:other/main", false),
            TokenScope {
                issuer: None,
                ..scope("", "storekeeper:other/main", false)
            },
        ] {
            let (signer, verifier) = scoped_pair(signed.clone(), &checked);
            let token = signer.sign(Uuid::new_v4(), Role::Admin).unwrap().token;
            assert_eq!(
                verifier.verify(&token),
                Err(TokenError::WrongShop),
                "{signed:?}"
            );
        }
    }

    #[test]
    fn tokens_without_a_scope_pass_until_it_is_required() {
        let (signer, verifier) = scoped_pair(TokenScope::default(), &scope(SHOP.0, SHOP.1, false));
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert!(verifier.verify(&token).is_ok(), "not required yet");

        let (signer, strict) = scoped_pair(TokenScope::default(), &scope(SHOP.0, SHOP.1, true));
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert_eq!(strict.verify(&token), Err(TokenError::WrongShop));
        let only_issuer = TokenScope {
            audience: None,
            ..scope(SHOP.0, "", false)
        };
        let (signer, strict) = scoped_pair(only_issuer, &scope(SHOP.0, SHOP.1, true));
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert_eq!(strict.verify(&token), Err(TokenError::WrongShop), "no aud");

        let (signer, strict) =
            scoped_pair(scope(SHOP.0, SHOP.1, false), &scope(SHOP.0, SHOP.1, true));
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert!(strict.verify(&token).is_ok());
    }

    #[test]
    fn escaped_newlines_are_accepted_and_garbage_is_not() {
        let keys = KeyPair::generate().unwrap();
        let escaped = keys.private_pem.replace('\n', "\\n");
        assert!(TokenSigner::from_pem(&escaped).is_ok());
        assert!(TokenSigner::from_pem("garbage").is_err());
        assert!(TokenVerifier::from_pem(&keys.private_pem).is_err());
    }
}
