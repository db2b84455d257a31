//! The generated Secrets a Store needs: names and keys only. Values are made
//! by `crate::reconcile::generate` when a Secret is missing, so rendering
//! stays pure and credentials never pass through `render`.

use storekeeper_contract::ShopService;

use super::meta::Ctx;

/// Key of the token public key (PEM) in the token Secret.
pub const PUBLIC_KEY: &str = "public.pem";
/// Key of the token private key (PEM) in the token Secret.
pub const PRIVATE_KEY: &str = "private.pem";
/// Key of the storefront's cookie key in the session Secret.
pub const SESSION_KEY: &str = "session-key";
/// Key of a single password.
pub const PASSWORD: &str = "password";
/// Key of the PostgreSQL superuser password.
pub const POSTGRES_SUPERUSER: &str = "postgres";
/// User name the operator gives the managed RabbitMQ's account.
pub const RABBITMQ_USER: &str = "storekeeper";
/// Key of the URL in an external Redis or RabbitMQ Secret.
pub const EXTERNAL_URL: &str = "url";

/// Keys a user's Secret must hold for an `external` data store.
pub fn external_keys(component: &str) -> Vec<&'static str> {
    if component == "postgres" {
        ShopService::ALL
            .iter()
            .filter_map(|s| s.database())
            .collect()
    } else {
        vec![EXTERNAL_URL]
    }
}

/// What a generated Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// One random password per key.
    Passwords(Vec<String>),
    /// An Ed25519 key pair in PEM (`public.pem`, `private.pem`).
    TokenKeyPair,
    /// The storefront's cookie key: 64 random bytes, base64 (`session-key`).
    SessionKey,
}

impl SecretKind {
    /// The keys a Secret of this kind holds (listed by `render`, checked by tests).
    pub fn keys(&self) -> Vec<String> {
        match self {
            Self::Passwords(keys) => keys.clone(),
            Self::TokenKeyPair => vec![PUBLIC_KEY.to_owned(), PRIVATE_KEY.to_owned()],
            Self::SessionKey => vec![SESSION_KEY.to_owned()],
        }
    }
}

/// A Secret that must exist with generated values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSpec {
    /// `metadata.name`.
    pub name: String,
    /// Component label value.
    pub component: &'static str,
    /// What to generate.
    pub kind: SecretKind,
}

/// Name of the token key Secret.
pub fn token_keys(store: &str) -> String {
    format!("{store}-token-keys")
}

/// Name of the storefront session key Secret: one key for every replica,
/// kept across restarts, so a shopper's cookie survives both.
pub fn session(store: &str) -> String {
    format!("{store}-session")
}

/// Name of the admin password Secret.
pub fn admin(store: &str) -> String {
    format!("{store}-admin")
}

/// Name of the managed PostgreSQL passwords Secret.
pub fn postgres(store: &str) -> String {
    format!("{store}-postgres")
}

/// Name of the managed Redis password Secret.
pub fn redis(store: &str) -> String {
    format!("{store}-redis")
}

/// Name of the managed RabbitMQ password Secret.
pub fn rabbitmq(store: &str) -> String {
    format!("{store}-rabbitmq")
}

/// Every name the operator may generate a Secret under (for collision checks).
pub fn generated_names(store: &str) -> Vec<String> {
    vec![
        token_keys(store),
        session(store),
        admin(store),
        postgres(store),
        redis(store),
        rabbitmq(store),
    ]
}

/// The generated Secrets this Store needs.
pub fn required(ctx: &Ctx<'_>) -> Vec<SecretSpec> {
    let password = |name: String, component: &'static str, keys: Vec<String>| SecretSpec {
        name,
        component,
        kind: SecretKind::Passwords(keys),
    };
    let mut out = vec![
        SecretSpec {
            name: token_keys(&ctx.store),
            component: "token-keys",
            kind: SecretKind::TokenKeyPair,
        },
        SecretSpec {
            name: session(&ctx.store),
            component: "session",
            kind: SecretKind::SessionKey,
        },
        password(admin(&ctx.store), "admin", vec![PASSWORD.to_owned()]),
    ];
    if ctx.spec.postgres.managed.is_some() {
        let mut keys = vec![POSTGRES_SUPERUSER.to_owned()];
        keys.extend(
            ShopService::ALL
                .iter()
                .filter_map(|s| s.database())
                .map(str::to_owned),
        );
        out.push(password(postgres(&ctx.store), "postgres", keys));
    }
    if ctx.spec.redis.managed.is_some() {
        out.push(password(
            redis(&ctx.store),
            "redis",
            vec![PASSWORD.to_owned()],
        ));
    }
    if ctx.spec.rabbitmq.managed.is_some() {
        out.push(password(
            rabbitmq(&ctx.store),
            "rabbitmq",
            vec![PASSWORD.to_owned()],
        ));
    }
    out
}
