//! A transaction start cancelled at any moment — a client gone, a request
//! timeout, a consumer whose channel closed — never hands a pooled
//! connection back inside a transaction (`db::begin`).

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{future::Future, pin::pin, task::Poll};

use sqlx::postgres::PgPoolOptions;
use storekeeper_kit::{db, testing::TestDatabase};

/// Polls `future` `times` times, letting the runtime drive I/O in between,
/// then drops it (unless it finished first).
async fn cancel_after_polls<F: Future>(future: F, times: usize) {
    let mut future = pin!(future);
    for _ in 0..times {
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready()));
        if polled.await {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_cancelled_at_any_moment_leaves_no_open_transaction() {
    let database = TestDatabase::for_kit(None).await;
    sqlx::query("CREATE TABLE marks (n int)")
        .execute(&database.pool)
        .await
        .unwrap();
    // One connection, so every step reuses the one a cancelled begin held.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*database.pool.connect_options()).clone())
        .await
        .unwrap();
    for polls in 1..40 {
        cancel_after_polls(db::begin(&pool), polls).await;
        // A write through the pool must be committed when it answers: seen
        // from another connection. Inside a leaked transaction it is not.
        sqlx::query("INSERT INTO marks VALUES ($1)")
            .bind(i32::try_from(polls).unwrap())
            .execute(&pool)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM marks WHERE n = $1")
            .bind(i32::try_from(polls).unwrap())
            .fetch_one(&database.pool)
            .await
            .unwrap();
        assert_eq!(
            seen, 1,
            "cancelled after {polls} polls: the write went into a transaction nobody ends"
        );
    }
    pool.close().await;
}
