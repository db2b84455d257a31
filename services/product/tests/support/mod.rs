//! Fixtures, used by every test file as `mod support;`. [`Ctx`] is the
//! real router over a database of the test's own ([`database`]: reached
//! through the pool a replica gets in production, not sqlx's test pool of
//! 5, so a test that needs more connections than production has fails
//! here first), a fresh Redis key prefix, and throw-away signing keys.

// Fixtures fail loudly: a panic with a message is the right outcome when a
// test cannot be set up. Not every test binary uses every helper.
#![allow(dead_code, clippy::unwrap_used)]

use product_service::{AppState, app, cache::CatalogCache, seed};
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    Metrics,
    cache::Cache,
    testing::{TestApp, TestDatabase, TestKeys, closed_port, unique_redis_prefix},
};

/// A fresh, migrated product-service database and the production-sized pool
/// on it. Keep the first half alive for the whole test: dropping it drops
/// the database.
pub async fn database() -> (TestDatabase, PgPool) {
    let database = TestDatabase::create(ShopService::Product, &product_service::MIGRATOR).await;
    let pool = database.pool.clone();
    (database, pool)
}

/// Where the test Redis listens.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Everything a test drives.
pub struct Ctx {
    /// The API, with the production middleware.
    pub app: TestApp,
    /// Mints tokens the app accepts.
    pub keys: TestKeys,
    /// The app's metrics registry (what the admin port's `/metrics` serves).
    pub metrics: Metrics,
    /// The database.
    pub pool: PgPool,
    /// The Redis connection and prefix.
    pub redis: Cache,
    /// The app's read cache (what the inventory consumer shares in production).
    pub catalog: CatalogCache,
}

impl Ctx {
    /// App with a working Redis (near-cache not necessarily tracking yet).
    pub fn new(pool: PgPool) -> Self {
        Self::with_redis(pool, REDIS_URL, &unique_redis_prefix())
    }

    /// Another replica: same database, same Redis prefix, its own near-cache.
    pub fn replica(&self) -> Self {
        Self::with_redis(self.pool.clone(), REDIS_URL, self.redis.prefix())
    }

    /// Waits until the near-cache serves (its tracking connection is up).
    pub async fn tracking(self) -> Self {
        for _ in 0..500 {
            if self.catalog.near().is_serving() {
                return self;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("near-cache tracking did not start within 5 s");
    }

    /// App whose Redis URL points at a closed port.
    pub fn redis_down(pool: PgPool) -> Self {
        Self::with_redis(
            pool,
            &format!("redis://127.0.0.1:{}", closed_port()),
            &unique_redis_prefix(),
        )
    }

    fn with_redis(pool: PgPool, url: &str, prefix: &str) -> Self {
        let metrics = Metrics::new();
        let keys = TestKeys::generate();
        let redis = Cache::connect(url, prefix).unwrap();
        let catalog = CatalogCache::new(redis.clone(), &metrics);
        let state = AppState {
            pool: pool.clone(),
            cache: catalog.clone(),
            verifier: keys.verifier.clone(),
        };
        let app = TestApp::with_metrics(app(state), metrics.clone());
        Self {
            app,
            keys,
            metrics,
            pool,
            redis,
            catalog,
        }
    }

    /// Reads `uri` until it comes from the near-cache (a fresh counter's
    /// first fill is refused: creating the counter is itself a change, so
    /// it takes a miss, a Redis hit, then the near-cache).
    pub async fn read_until_near(&self, uri: &str) {
        for _ in 0..5 {
            if self.app.get(uri).send().await.header("x-cache") == Some("near") {
                return;
            }
        }
        panic!("{uri} never came from the near-cache");
    }

    /// Loads the sample catalog.
    pub async fn seeded(self) -> Self {
        seed::load(&self.pool).await.unwrap();
        self
    }

    /// A fresh admin token.
    pub fn admin_token(&self) -> String {
        self.keys.admin().1
    }

    /// A fresh customer token.
    pub fn customer_token(&self) -> String {
        self.keys.customer().1
    }

    /// The product's version, as `GET /api/products/{id}/stock` gives it
    /// (`ETag`), for `If-Match` on an absolute stock.
    pub async fn stock_etag(&self, id: &str) -> String {
        let response = self
            .app
            .get(&format!("/api/products/{id}/stock"))
            .bearer(&self.admin_token())
            .send()
            .await;
        response.assert_status(http::StatusCode::OK);
        response.header("etag").unwrap().to_owned()
    }

    /// `product_cache_lookups_total` for this kind and outcome.
    pub fn cache_count(&self, kind: &str, outcome: &str) -> u64 {
        let text = self.metrics.encode().unwrap();
        let wanted =
            format!("product_cache_lookups_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&wanted))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Creates a product as admin and returns it.
    pub async fn create(&self, body: &Value) -> Value {
        let response = self
            .app
            .post("/api/products")
            .bearer(&self.admin_token())
            .json(body)
            .send()
            .await;
        response.assert_status(http::StatusCode::CREATED);
        response.json()
    }

    /// Deletes every Redis key of this test.
    pub async fn cleanup(&self) {
        let keys: Vec<String> = self
            .redis
            .query(redis::cmd("KEYS").arg(format!("{}*", self.redis.prefix())))
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<redis::Value, _> = self.redis.query(redis::cmd("DEL").arg(keys)).await;
        }
    }
}

/// A valid new-product body in a sample category.
pub fn new_product(slug: &str) -> Value {
    json!({
        "name": format!("Test Product {slug}"),
        "slug": slug,
        "description": "A product made by a test.",
        "price_cents": 1999,
        "currency": "USD",
        "stock": 5,
        "category": "kitchen",
    })
}
