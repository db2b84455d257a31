//! A service's idempotency-key table against the real PostgreSQL: one claim
//! per key, a concurrent claim waiting for the first, a claim that carries
//! its answer in the statement that does the work, replays, pruning.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::StatusCode;
use sqlx::{PgPool, Row};
use storekeeper_kit::idempotency::{Answer, AnsweredClaim, KeyReused, KeyTable, request_hash};
use storekeeper_kit::testing::TestDatabase;
use uuid::Uuid;

const KEYS: KeyTable = KeyTable::new("test_keys");

async fn with_table(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE test_keys (
            user_id uuid NOT NULL, key text NOT NULL, request_hash text NOT NULL,
            response_status integer, response_body text,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key))",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Starts a second request's claim of `user`'s key `k` and checks that it
/// still waits on the first a moment later; the handle says whether it
/// got the key once the first transaction ended.
async fn second_claim_waiting(
    pool: &PgPool,
    user: Uuid,
    hash: &str,
) -> tokio::task::JoinHandle<bool> {
    let waiting = tokio::spawn({
        let (pool, hash) = (pool.clone(), hash.to_owned());
        async move {
            let mut second = storekeeper_kit::db::begin(&pool).await.unwrap();
            KEYS.claim(&mut second, user, "k", &hash).await.unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the second claim waits on the first"
    );
    waiting
}

#[tokio::test]
async fn a_key_is_claimed_once_and_then_replayed() {
    let database = TestDatabase::for_kit(None).await;
    let pool = database.pool.clone();
    with_table(&pool).await;
    let (user, hash) = (Uuid::new_v4(), request_hash(&serde_json::json!({"a": 1})));
    let mut first = storekeeper_kit::db::begin(&pool).await.unwrap();
    assert!(KEYS.claim(&mut first, user, "k", &hash).await.unwrap());

    // A second request with the key waits for the first to finish.
    let waiting = second_claim_waiting(&pool, user, &hash).await;
    KEYS.store_response(&mut first, user, "k", StatusCode::CREATED, "{\"id\":1}")
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert!(!waiting.await.unwrap(), "the key was taken");

    let stored = KEYS.find(&pool, user, "k").await.unwrap().unwrap();
    assert_eq!(
        stored.clone().replay(&hash),
        Ok(Some(Answer {
            status: StatusCode::CREATED,
            body: "{\"id\":1}".into(),
            replayed: true,
        }))
    );
    assert_eq!(stored.replay("another request"), Err(KeyReused));
    // Keys belong to their user.
    assert!(
        KEYS.find(&pool, Uuid::new_v4(), "k")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_rolled_back_claim_leaves_the_key_unused() {
    let database = TestDatabase::for_kit(None).await;
    let pool = database.pool.clone();
    with_table(&pool).await;
    let user = Uuid::new_v4();
    let mut refused = storekeeper_kit::db::begin(&pool).await.unwrap();
    assert!(KEYS.claim(&mut refused, user, "k", "h").await.unwrap());
    refused.rollback().await.unwrap();
    assert!(KEYS.find(&pool, user, "k").await.unwrap().is_none());
}

/// Claims `user`'s key `k` with `answer` the way a service's statement
/// does: [`KeyTable::claim_from`] as a CTE after a gate that lets the claim
/// go ahead when `go` holds, a write of the statement's that happens only
/// when the claim took the key, and whether it did.
async fn claim_in_statement(
    conn: &mut sqlx::PgConnection,
    claim: AnsweredClaim<'_>,
    go: bool,
) -> bool {
    let sql = format!(
        "WITH gate AS (SELECT WHERE $1), claimed AS ({}), \
         work AS (INSERT INTO test_work (user_id) SELECT user_id FROM claimed) \
         SELECT EXISTS (SELECT FROM claimed)",
        KEYS.claim_from("gate", 2)
    );
    let row = claim
        .bind(sqlx::query(&sql).bind(go))
        .fetch_one(conn)
        .await
        .unwrap();
    row.get(0)
}

async fn work_done(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM test_work")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_claim_in_the_work_statement_stores_its_answer_and_goes_with_the_work() {
    let database = TestDatabase::for_kit(None).await;
    let pool = database.pool.clone();
    with_table(&pool).await;
    sqlx::query("CREATE TABLE test_work (user_id uuid NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let (user, hash) = (Uuid::new_v4(), request_hash(&serde_json::json!({"a": 1})));
    let answer = Answer {
        status: StatusCode::CREATED,
        body: "{\"id\":2}".into(),
        replayed: false,
    };
    let claim = AnsweredClaim {
        user,
        key: "k",
        hash: &hash,
        answer: &answer,
    };

    // A closed gate claims nothing and does no work.
    let mut conn = pool.acquire().await.unwrap();
    assert!(!claim_in_statement(&mut conn, claim, false).await);
    assert!(KEYS.find(&pool, user, "k").await.unwrap().is_none());

    // A rolled-back claim releases the key, its answer and the work.
    let mut refused = storekeeper_kit::db::begin(&pool).await.unwrap();
    assert!(claim_in_statement(&mut refused, claim, true).await);
    refused.rollback().await.unwrap();
    assert!(KEYS.find(&pool, user, "k").await.unwrap().is_none());
    assert_eq!(work_done(&pool).await, 0);

    let mut first = storekeeper_kit::db::begin(&pool).await.unwrap();
    assert!(claim_in_statement(&mut first, claim, true).await);
    // Until the claim commits, nobody sees its answer: a second request
    // waits on the claim.
    let waiting = second_claim_waiting(&pool, user, &hash).await;
    assert!(KEYS.find(&pool, user, "k").await.unwrap().is_none());
    first.commit().await.unwrap();
    assert!(!waiting.await.unwrap(), "the key was taken");
    let stored = KEYS.find(&pool, user, "k").await.unwrap().unwrap();
    assert_eq!(
        stored.replay(&hash),
        Ok(Some(Answer {
            replayed: true,
            ..answer.clone()
        }))
    );

    // A second claim in a statement takes nothing and does no work.
    assert!(!claim_in_statement(&mut conn, claim, true).await);
    assert_eq!(work_done(&pool).await, 1);
}

#[tokio::test]
async fn only_expired_keys_are_pruned() {
    let database = TestDatabase::for_kit(None).await;
    let pool = database.pool.clone();
    with_table(&pool).await;
    for key in ["old", "new"] {
        let mut tx = storekeeper_kit::db::begin(&pool).await.unwrap();
        KEYS.claim(&mut tx, Uuid::nil(), key, "h").await.unwrap();
        tx.commit().await.unwrap();
    }
    sqlx::query("UPDATE test_keys SET created_at = now() - interval '49 hours' WHERE key = 'old'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(KEYS.prune(&pool).await.unwrap(), 1);
    assert!(
        KEYS.find(&pool, Uuid::nil(), "new")
            .await
            .unwrap()
            .is_some()
    );
}
