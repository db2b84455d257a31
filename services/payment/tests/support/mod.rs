//! Fixtures, used by every test file as `mod support;`. [`Ctx`] is the
//! real router over a fresh database of the test's own, reached through a
//! pool of the production size (`TestDatabase`: what `DATABASE_MAX_CONNECTIONS`
//! gives a replica, not sqlx's test default, so a test that needs more
//! connections than production has fails here first), with throw-away
//! signing keys, and the charge consumer's handler and capture worker to
//! deliver `payment.requested` to directly.

// Fixtures fail loudly; not every test binary uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use std::sync::Mutex;

use payment_service::{
    AppState, MIGRATOR, app,
    capture::{self, CaptureInbox, Captured, Capturer},
    charges::Charger,
    intents::Intent,
    metrics::PaymentMetrics,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    Metrics,
    events::{
        Envelope, Handler,
        envelope::{OrderCancelled, PaymentRequested},
        testing::outbox_payloads,
    },
    testing::{TestApp, TestDatabase, TestKeys},
};
use uuid::Uuid;

/// Everything a test drives.
pub struct Ctx {
    /// The API, with the production middleware.
    pub app: TestApp,
    /// Mints tokens the app accepts.
    pub keys: TestKeys,
    /// The production-sized pool on the test's database.
    pub pool: PgPool,
    /// The app's metrics registry.
    pub metrics: Metrics,
    /// The capture worker, driven by hand.
    pub capturer: Capturer,
    charger: Charger,
    inbox: Mutex<CaptureInbox>,
    database: TestDatabase,
}

/// A card body for `POST /api/payments/methods`.
pub fn card(number: &str) -> Value {
    json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"})
}

impl Ctx {
    /// The app over a new, migrated database; end the test with
    /// [`Ctx::finish`] to drop it.
    pub async fn start() -> Self {
        let database = TestDatabase::create(ShopService::Payment, &MIGRATOR).await;
        let pool = database.pool.clone();
        let keys = TestKeys::generate();
        let metrics = Metrics::new();
        let state = AppState {
            pool: pool.clone(),
            verifier: keys.verifier.clone(),
            metrics: PaymentMetrics::register(&metrics),
        };
        let (handover, inbox) = capture::channel();
        let charger = Charger::new(state.metrics.clone(), handover);
        let capturer = Capturer::new(pool.clone(), state.metrics.clone());
        Self {
            app: TestApp::with_metrics(app(state), metrics.clone()),
            keys,
            pool,
            metrics,
            capturer,
            charger,
            inbox: Mutex::new(inbox),
            database,
        }
    }

    /// Closes the pool and drops the test's database.
    pub async fn finish(self) {
        self.database.drop_database().await;
    }

    /// Tokenizes a card for the holder of `token`; returns the method id.
    pub async fn tokenize(&self, token: &str, number: &str) -> Uuid {
        let response = self
            .app
            .post("/api/payments/methods")
            .bearer(token)
            .json(&card(number))
            .send()
            .await;
        response.assert_status(StatusCode::CREATED);
        let body: Value = response.json();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Delivers `payment.requested` to the charger as the consumer would,
    /// then lets the capture worker make the charge it decided on (if any);
    /// returns the outbox afterwards.
    pub async fn request_charge(
        &self,
        user: Uuid,
        method: Uuid,
        order: Uuid,
        amount: i64,
    ) -> Vec<Value> {
        if let Some(intent) = self.decide_charge(user, method, order, amount).await {
            self.capturer.capture(intent).await.unwrap();
        }
        self.outbox().await
    }

    /// Delivers `payment.requested` to the charger as the consumer would,
    /// and returns the intent it handed to the capture worker, if any (the
    /// worker has not run: as if it crashed right after the commit).
    pub async fn decide_charge(
        &self,
        user: Uuid,
        method: Uuid,
        order: Uuid,
        amount: i64,
    ) -> Option<Intent> {
        let event = Envelope::new(
            &PaymentRequested {
                order_id: order,
                user_id: user,
                payment_method_id: method,
                amount_cents: amount,
                currency: "USD".into(),
            },
            order,
        )
        .unwrap();
        let mut tx = storekeeper_kit::db::begin(&self.pool).await.unwrap();
        self.charger.handle(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        self.charger.committed(&event).await;
        self.inbox.lock().unwrap().try_next()
    }

    /// Lets every intent's claim run out (as a crash, or the lease passing,
    /// would) and runs the worker's resume pass; returns what became of each.
    pub async fn resume_all(&self) -> Vec<Captured> {
        sqlx::query("UPDATE charge_intents SET claimed_until = now() - interval '1 second'")
            .execute(&self.pool)
            .await
            .unwrap();
        let mut outcomes = Vec::new();
        for intent in self.capturer.claim_due().await.unwrap() {
            outcomes.push(self.capturer.capture(intent).await.unwrap());
        }
        outcomes
    }

    /// Charge intents not yet finished.
    pub async fn pending_intents(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM charge_intents")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Delivers `order.cancelled` to the charger as the consumer would;
    /// returns the outbox afterwards.
    pub async fn cancel_order(&self, order: Uuid) -> Vec<Value> {
        let event = Envelope::new(
            &OrderCancelled {
                order_id: order,
                reason: "expired: not completed within 15 min".into(),
                items: Vec::new(),
            },
            order,
        )
        .unwrap();
        let mut tx = storekeeper_kit::db::begin(&self.pool).await.unwrap();
        self.charger.handle(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        self.charger.committed(&event).await;
        self.outbox().await
    }

    /// Every event in the outbox, oldest first.
    pub async fn outbox(&self) -> Vec<Value> {
        outbox_payloads(&self.pool).await
    }

    /// The payments the holder of `token` sees for `order`.
    pub async fn payments_of(&self, token: &str, order: Uuid) -> Vec<Value> {
        let response = self
            .app
            .get(&format!("/api/payments?order_id={order}"))
            .bearer(token)
            .send()
            .await;
        response.assert_status(StatusCode::OK);
        let body: Value = response.json();
        body["items"].as_array().unwrap().clone()
    }
}
