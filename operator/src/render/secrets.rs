//! The generated Secrets a Store needs: names and keys only. Values are made
//! by `crate::reconcile::generate` when a Secret is missing, so rendering
//! stays pure and credentials never pass through `render`.

use storekeeper_contract::ShopService;

use super::delegated;
use super::meta::Ctx;
use crate::api::DeletionPolicy;

/// Key of the token public key (PEM) in the token Secret.
pub const PUBLIC_KEY: &str = "public.pem";
/// Key of the token private key (PEM) in the token Secret.
pub const PRIVATE_KEY: &str = "private.pem";
/// Key of the storefront's cookie key in the session Secret.
pub const SESSION_KEY: &str = "session-key";
/// Key of a single password.
pub const PASSWORD: &str = "password";
/// Key of a login's user name.
pub const USERNAME: &str = "username";
/// Key of the RabbitMQ Cluster Operator's default-user configuration.
pub const DEFAULT_USER_CONF: &str = "default_user.conf";
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
    /// A `kubernetes.io/basic-auth` login: this `username` and a random
    /// `password` (a CloudNativePG managed role's `passwordSecret`).
    Login {
        /// The user name.
        username: String,
    },
    /// The RabbitMQ Cluster Operator's default-user format: `username`, a
    /// random `password`, and both again as `default_user.conf`.
    RabbitmqDefaultUser {
        /// The user name.
        username: String,
    },
}

impl SecretKind {
    /// The keys a Secret of this kind holds (listed by `render`, checked by tests).
    pub fn keys(&self) -> Vec<String> {
        match self {
            Self::Passwords(keys) => keys.clone(),
            Self::TokenKeyPair => vec![PUBLIC_KEY.to_owned(), PRIVATE_KEY.to_owned()],
            Self::SessionKey => vec![SESSION_KEY.to_owned()],
            Self::Login { .. } => vec![USERNAME.to_owned(), PASSWORD.to_owned()],
            Self::RabbitmqDefaultUser { .. } => vec![
                DEFAULT_USER_CONF.to_owned(),
                PASSWORD.to_owned(),
                USERNAME.to_owned(),
            ],
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
    /// Whether the Store owns the Secret, so it is garbage-collected with
    /// the Store. A data store's credentials are not owned under
    /// `deletionPolicy: Retain`: they must outlive the Store as long as the
    /// volume initialised with them does, so a re-created Store finds and
    /// reuses them (by name and label) instead of generating passwords the
    /// data store would refuse.
    pub owned: bool,
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

/// Name of the managed Grafana's admin password Secret.
pub fn grafana(store: &str) -> String {
    format!("{store}-grafana")
}

/// Every name the operator may generate a Secret under (for collision checks).
pub fn generated_names(store: &str) -> Vec<String> {
    let mut names = vec![
        token_keys(store),
        session(store),
        admin(store),
        postgres(store),
        redis(store),
        rabbitmq(store),
        grafana(store),
    ];
    names.extend(
        ShopService::ALL
            .into_iter()
            .filter_map(ShopService::database)
            .map(|db| delegated::cnpg::role_secret(store, db)),
    );
    names.push(delegated::rabbitmq_cluster::default_user_secret(store));
    names
}

/// The generated Secrets this Store needs.
pub fn required(ctx: &Ctx<'_>) -> Vec<SecretSpec> {
    // Data-store credentials live and die with the volumes (the StatefulSets'
    // `persistentVolumeClaimRetentionPolicy`, from the same field).
    let data_owned = ctx.spec.deletion_policy == DeletionPolicy::Delete;
    let password = |name: String, component: &'static str, keys: Vec<String>| SecretSpec {
        name,
        component,
        kind: SecretKind::Passwords(keys),
        owned: data_owned,
    };
    let mut out = vec![
        SecretSpec {
            name: token_keys(&ctx.store),
            component: "token-keys",
            kind: SecretKind::TokenKeyPair,
            owned: true,
        },
        SecretSpec {
            name: session(&ctx.store),
            component: "session",
            kind: SecretKind::SessionKey,
            owned: true,
        },
        // The user-service sets the admin's password from this Secret at
        // every start, so a new one after re-creation does no harm.
        SecretSpec {
            owned: true,
            ..password(admin(&ctx.store), "admin", vec![PASSWORD.to_owned()])
        },
    ];
    if delegated::postgres(ctx.spec) {
        for db in ShopService::ALL
            .into_iter()
            .filter_map(ShopService::database)
        {
            out.push(SecretSpec {
                name: delegated::cnpg::role_secret(&ctx.store, db),
                component: "postgres",
                kind: SecretKind::Login {
                    username: db.to_owned(),
                },
                owned: data_owned,
            });
        }
    } else if ctx.spec.postgres.managed.is_some() {
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
    if delegated::rabbitmq(ctx.spec) {
        out.push(SecretSpec {
            name: delegated::rabbitmq_cluster::default_user_secret(&ctx.store),
            component: "rabbitmq",
            kind: SecretKind::RabbitmqDefaultUser {
                username: RABBITMQ_USER.to_owned(),
            },
            owned: data_owned,
        });
    } else if ctx.spec.rabbitmq.managed.is_some() {
        out.push(password(
            rabbitmq(&ctx.store),
            "rabbitmq",
            vec![PASSWORD.to_owned()],
        ));
    }
    // Grafana's database is scratch space: a new password after
    // re-creation is simply the one it starts with.
    if super::monitoring::telemetry::managed(ctx) {
        out.push(SecretSpec {
            owned: true,
            ..password(grafana(&ctx.store), "grafana", vec![PASSWORD.to_owned()])
        });
    }
    out
}
