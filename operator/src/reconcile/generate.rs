//! Values for generated Secrets: random alphanumeric passwords (safe inside
//! URLs without escaping), an Ed25519 token key pair in PEM, and the
//! storefront's cookie key. Called only when a Secret is missing; the values
//! go straight into the Secret object and are never logged, returned in
//! errors, or written to status.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use storekeeper_contract::labels;

use crate::render::meta::Ctx;
use crate::render::secrets::{
    DEFAULT_USER_CONF, PASSWORD, PRIVATE_KEY, PUBLIC_KEY, SESSION_KEY, SecretKind, SecretSpec,
    USERNAME,
};
use crate::{Error, Result};

/// Length of generated passwords (~190 bits).
pub const PASSWORD_LEN: usize = 32;

/// A fresh random password.
pub fn password() -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// Bytes in the storefront's cookie key (what axum-extra's `Key` needs).
pub const SESSION_KEY_BYTES: usize = 64;

/// A fresh cookie key, base64 as the storefront's `SESSION_KEY` reads it.
pub fn session_key() -> String {
    let mut bytes = [0_u8; SESSION_KEY_BYTES];
    OsRng.fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// A fresh Ed25519 key pair as (public PEM, private PEM).
pub fn token_key_pair() -> Result<(String, String)> {
    let key = SigningKey::generate(&mut OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::KeyGen(e.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::KeyGen(e.to_string()))?;
    Ok((public, private.to_string()))
}

/// The data of a generated Secret, freshly made.
pub fn values(spec: &SecretSpec) -> Result<BTreeMap<String, String>> {
    Ok(match &spec.kind {
        SecretKind::Passwords(keys) => keys.iter().map(|k| (k.clone(), password())).collect(),
        SecretKind::TokenKeyPair => {
            let (public, private) = token_key_pair()?;
            BTreeMap::from([
                (PUBLIC_KEY.to_owned(), public),
                (PRIVATE_KEY.to_owned(), private),
            ])
        }
        SecretKind::SessionKey => BTreeMap::from([(SESSION_KEY.to_owned(), session_key())]),
        SecretKind::Login { username } => BTreeMap::from([
            (USERNAME.to_owned(), username.clone()),
            (PASSWORD.to_owned(), password()),
        ]),
        SecretKind::RabbitmqDefaultUser { username } => {
            let password = password();
            BTreeMap::from([
                (
                    DEFAULT_USER_CONF.to_owned(),
                    format!("default_user = {username}\ndefault_pass = {password}\n"),
                ),
                (USERNAME.to_owned(), username.clone()),
                (PASSWORD.to_owned(), password),
            ])
        }
    })
}

/// A login is `kubernetes.io/basic-auth`, the format CloudNativePG documents
/// for a role's password; everything else is `Opaque`.
fn secret_type(kind: &SecretKind) -> &'static str {
    match kind {
        SecretKind::Login { .. } => "kubernetes.io/basic-auth",
        _ => "Opaque",
    }
}

/// The Secret object for `spec` with fresh values, owned by the Store when
/// `spec.owned` (otherwise it outlives the Store; see `SecretSpec::owned`).
pub fn secret(ctx: &Ctx<'_>, spec: &SecretSpec) -> Result<Secret> {
    let mut meta = ctx.meta(spec.name.clone(), spec.component, &ctx.spec.version);
    if !spec.owned {
        meta.owner_references = None;
    }
    if let Some(l) = meta.labels.as_mut() {
        l.insert(labels::GENERATED.to_owned(), "true".to_owned());
    }
    let data = values(spec)?
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect();
    Ok(Secret {
        metadata: meta,
        data: Some(data),
        type_: Some(secret_type(&spec.kind).to_owned()),
        immutable: Some(true),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_url_safe() {
        let (a, b) = (password(), password());
        assert_eq!(a.len(), PASSWORD_LEN);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn session_keys_are_64_random_bytes_in_base64() {
        let (a, b) = (session_key(), session_key());
        assert_ne!(a, b);
        assert_eq!(STANDARD.decode(&a).unwrap().len(), SESSION_KEY_BYTES);
    }

    #[test]
    fn logins_and_rabbitmq_default_users_carry_the_name_and_one_password() {
        let spec = |kind| SecretSpec {
            name: "s".to_owned(),
            component: "postgres",
            kind,
            owned: false,
        };
        let login = values(&spec(SecretKind::Login {
            username: "orders".to_owned(),
        }))
        .unwrap();
        assert_eq!(login[USERNAME], "orders");
        assert_eq!(login[PASSWORD].len(), PASSWORD_LEN);
        let user = values(&spec(SecretKind::RabbitmqDefaultUser {
            username: "storekeeper".to_owned(),
        }))
        .unwrap();
        assert_eq!(
            user[DEFAULT_USER_CONF],
            format!(
                "default_user = storekeeper\ndefault_pass = {}\n",
                user[PASSWORD]
            )
        );
        assert_eq!(
            user.keys().collect::<Vec<_>>(),
            [DEFAULT_USER_CONF, PASSWORD, USERNAME]
        );
    }

    #[test]
    fn key_pair_is_pem() {
        let (public, private) = token_key_pair().unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
