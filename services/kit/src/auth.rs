//! Access tokens: Ed25519-signed JWTs (`alg: EdDSA`), signed by user-service
//! and verified locally by every service, plus the axum extractors that guard
//! routes.
//!
//! Only user-service holds the private key (`TOKEN_PRIVATE_KEY`); every other
//! service gets the public key (`TOKEN_PUBLIC_KEY`), so a compromised catalog
//! service cannot mint tokens. Keys are PEM (PKCS#8 private, SPKI public);
//! [`KeyPair::generate`] makes a fresh pair so tests and the local runner
//! never need committed keys.

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
}

impl Claims {
    /// Claims for `user` valid for `ttl` from now.
    pub fn new(user: Uuid, role: Role, ttl: Duration) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub: user,
            role,
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        }
    }
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
        Ok(Self { key, public_pem })
    }

    /// Signs an access token for `user`.
    pub fn sign(&self, user: Uuid, role: Role) -> Result<AccessToken, jsonwebtoken::errors::Error> {
        let token = self.sign_claims(&Claims::new(user, role, ACCESS_TOKEN_TTL))?;
        Ok(AccessToken {
            token,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
        })
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign_claims(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.key)
    }

    /// A verifier for this signer's tokens.
    pub fn verifier(&self) -> Result<TokenVerifier, KeyError> {
        TokenVerifier::from_pem(&self.public_pem)
    }
}

/// Verifies access tokens. Put it in the app state and implement
/// `FromRef<AppState> for TokenVerifier` to enable [`AuthUser`]/[`AdminUser`].
#[derive(Clone)]
pub struct TokenVerifier(Arc<(DecodingKey, Validation)>);

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Loads an SPKI PEM public key.
    pub fn from_pem(public_pem: &str) -> Result<Self, KeyError> {
        let pem = normalize_pem(public_pem);
        let key = DecodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| KeyError::Malformed {
            expected: "public (SPKI)",
            reason: e.to_string(),
        })?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Ok(Self(Arc::new((key, validation))))
    }

    /// Checks signature, algorithm and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (key, validation) = &*self.0;
        jsonwebtoken::decode::<Claims>(token, key, validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
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
    fn verifier_derived_from_signer_matches() {
        let (signer, _) = pair();
        let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
        assert!(signer.verifier().unwrap().verify(&token).is_ok());
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
