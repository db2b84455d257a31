//! One place for every fact the operator shares with the services and the
//! cluster: ports, probe paths, environment variable names, labels,
//! annotations, images. DESIGN.md is the source; change it there first.

/// API group of the `Store` resource.
pub const GROUP: &str = "storekeeper.dev";
/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "storekeeper";
/// Name the operator reports Events under.
pub const REPORTER: &str = "storekeeper";

/// Admin port every service (and the operator) serves health and metrics on.
pub const ADMIN_PORT: i32 = 9000;
/// Liveness probe path on the admin port.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness probe path on the admin port.
pub const READYZ_PATH: &str = "/readyz";
/// Prometheus scrape path on the admin port.
pub const METRICS_PATH: &str = "/metrics";
/// Name of the container and Service port that carries the API.
pub const HTTP_PORT_NAME: &str = "http";
/// Name of the container and Service port for health and metrics.
pub const METRICS_PORT_NAME: &str = "metrics";

/// PostgreSQL's port.
pub const POSTGRES_PORT: i32 = 5432;
/// Redis' port.
pub const REDIS_PORT: i32 = 6379;
/// RabbitMQ's AMQP port.
pub const AMQP_PORT: i32 = 5672;

/// Pinned data-layer images (official images; bump deliberately, never `latest`).
pub mod images {
    /// PostgreSQL server.
    pub const POSTGRES: &str = "docker.io/library/postgres:17.6-bookworm";
    /// Redis server.
    pub const REDIS: &str = "docker.io/library/redis:8.2.1-bookworm";
    /// RabbitMQ broker.
    pub const RABBITMQ: &str = "docker.io/library/rabbitmq:4.1.4";
    /// UID the official Debian-based data images run as.
    pub const DATA_UID: i64 = 999;
    /// UID the shop's service images run as (distroless `nonroot`).
    pub const SERVICE_UID: i64 = 65532;
}

/// Environment variable names the services read (DESIGN.md, "Every service").
pub mod env {
    /// Public API port.
    pub const PORT: &str = "PORT";
    /// Admin port.
    pub const ADMIN_PORT: &str = "ADMIN_PORT";
    /// PostgreSQL URL.
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// Redis URL.
    pub const REDIS_URL: &str = "REDIS_URL";
    /// RabbitMQ URL.
    pub const AMQP_URL: &str = "AMQP_URL";
    /// Log filter.
    pub const RUST_LOG: &str = "RUST_LOG";
    /// Log format (`json` in clusters).
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    /// Ed25519 public key (PEM) that verifies access tokens.
    pub const TOKEN_PUBLIC_KEY: &str = "TOKEN_PUBLIC_KEY";
    /// Ed25519 private key (PEM) that signs access tokens; user-service only.
    pub const TOKEN_PRIVATE_KEY: &str = "TOKEN_PRIVATE_KEY";
    /// Admin account e-mail; user-service only.
    pub const ADMIN_EMAIL: &str = "ADMIN_EMAIL";
    /// Admin account password; user-service only.
    pub const ADMIN_PASSWORD: &str = "ADMIN_PASSWORD";
    /// Storefront cookie key (base64 of 64 random bytes); storefront only.
    pub const SESSION_KEY: &str = "SESSION_KEY";
    /// `true` when the ingress serves TLS: the session cookie is HTTPS-only.
    pub const COOKIE_SECURE: &str = "COOKIE_SECURE";
    /// Reverse proxies trusted to append to `X-Forwarded-For`.
    pub const TRUSTED_PROXY_HOPS: &str = "TRUSTED_PROXY_HOPS";
    /// Log format value used in clusters (Loki-friendly JSON lines).
    pub const LOG_FORMAT_JSON: &str = "json";
}

/// Label keys and values every child carries.
pub mod labels {
    /// `app.kubernetes.io/name`: the component (e.g. `user`, `postgres`).
    pub const NAME: &str = "app.kubernetes.io/name";
    /// `app.kubernetes.io/instance`: the Store's name.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// `app.kubernetes.io/part-of`.
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `app.kubernetes.io/version`: the image tag the component runs.
    pub const VERSION: &str = "app.kubernetes.io/version";
    /// Value of `part-of` and `managed-by`.
    pub const STOREKEEPER: &str = "storekeeper";
    /// Marks Secrets whose values the operator generated (never pruned, never re-applied).
    pub const GENERATED: &str = "storekeeper.dev/generated";
}

/// Annotation keys the operator writes.
pub mod annotations {
    /// SHA-256 of the desired object as last applied; a differing hash means
    /// the operator's intent changed and the object must be re-applied.
    pub const APPLIED_HASH: &str = "storekeeper.dev/applied-hash";
    /// Hash of the shared ConfigMap in a pod template, so a config change rolls pods.
    pub const CONFIG_HASH: &str = "storekeeper.dev/config-hash";
    /// Prometheus' annotation-based discovery convention: scrape this pod...
    pub const PROMETHEUS_SCRAPE: &str = "prometheus.io/scrape";
    /// ...on this port...
    pub const PROMETHEUS_PORT: &str = "prometheus.io/port";
    /// ...at this path.
    pub const PROMETHEUS_PATH: &str = "prometheus.io/path";
}

/// The five shop services (DESIGN.md layout table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Accounts, login, tokens.
    User,
    /// Catalog, categories, search, stock.
    Product,
    /// Cart, checkout, orders.
    Order,
    /// Payments, refunds.
    Payment,
    /// Server-rendered shop.
    Storefront,
}

impl Service {
    /// Every service, in rollout order (backends, then storefront).
    pub const ALL: [Service; 5] = [
        Service::User,
        Service::Product,
        Service::Order,
        Service::Payment,
        Service::Storefront,
    ];

    /// Short name, used in child names (`<store>-user`) and labels.
    pub fn name(self) -> &'static str {
        match self {
            Service::User => "user",
            Service::Product => "product",
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Storefront => "storefront",
        }
    }

    /// Default image repository name (the crate / binary name).
    pub fn image(self) -> &'static str {
        match self {
            Service::User => "user-service",
            Service::Product => "product-service",
            Service::Order => "order-service",
            Service::Payment => "payment-service",
            Service::Storefront => "storefront",
        }
    }

    /// Public API port.
    pub fn port(self) -> i32 {
        match self {
            Service::User => 3001,
            Service::Product => 3002,
            Service::Order => 8001,
            Service::Payment => 8002,
            Service::Storefront => 3000,
        }
    }

    /// The service's PostgreSQL database (also its role name), if it has one.
    pub fn database(self) -> Option<&'static str> {
        match self {
            Service::User => Some("users"),
            Service::Product => Some("products"),
            Service::Order => Some("orders"),
            Service::Payment => Some("payments"),
            Service::Storefront => None,
        }
    }

    /// Whether the service talks to RabbitMQ (the checkout saga).
    pub fn uses_amqp(self) -> bool {
        self != Service::Storefront
    }

    /// Environment variable carrying this service's URL to its callers.
    pub fn url_env(self) -> Option<&'static str> {
        match self {
            Service::User => Some("USER_URL"),
            Service::Product => Some("PRODUCT_URL"),
            Service::Order => Some("ORDER_URL"),
            Service::Payment => Some("PAYMENT_URL"),
            Service::Storefront => None,
        }
    }

    /// Services this one calls over HTTP; drives both the `*_URL` variables
    /// and the NetworkPolicies, so the two can never disagree.
    pub fn calls(self) -> &'static [Service] {
        match self {
            Service::Storefront => &[
                Service::User,
                Service::Product,
                Service::Order,
                Service::Payment,
            ],
            Service::Order => &[Service::Product, Service::Payment],
            Service::User | Service::Product | Service::Payment => &[],
        }
    }

    /// Ingress path prefixes routed to this service (DESIGN.md "Ingress routes").
    pub fn ingress_paths(self) -> &'static [&'static str] {
        match self {
            Service::Storefront => &["/"],
            Service::User => &["/api/users"],
            Service::Product => &["/api/products", "/api/categories"],
            Service::Order => &["/api/cart", "/api/orders"],
            Service::Payment => &["/api/payments"],
        }
    }
}
