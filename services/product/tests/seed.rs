//! The sample catalog loads idempotently.

// Helpers outside #[test] functions panic on malformed fixtures too.
#![allow(clippy::unwrap_used)]

mod support;

use product_service::seed;
use sqlx::PgPool;

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn seed_loads_the_catalog_once() {
    let (_database, pool) = support::database().await;
    let first = seed::load(&pool).await.unwrap();
    assert!(first.products >= 60);
    assert!(first.categories >= 6);
    assert_eq!(first.changed.len(), first.products);
    assert_eq!(count(&pool, "products").await, 64);
    assert_eq!(count(&pool, "categories").await, 8);
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM products ORDER BY slug")
        .fetch_all(&pool)
        .await
        .unwrap();

    let second = seed::load(&pool).await.unwrap();
    assert!(
        second.changed.is_empty(),
        "nothing changed, nothing to invalidate"
    );
    assert_eq!(count(&pool, "products").await, 64);
    let ids_again: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM products ORDER BY slug")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, ids_again, "ids are stable across seeds");
}

#[tokio::test]
async fn reseeding_keeps_stock_and_restores_catalog_text() {
    let (_database, pool) = support::database().await;
    seed::load(&pool).await.unwrap();
    sqlx::query("UPDATE products SET stock = 1, name = 'Edited' WHERE slug = 'foam-roller'")
        .execute(&pool)
        .await
        .unwrap();
    let report = seed::load(&pool).await.unwrap();
    assert_eq!(report.changed.len(), 1);
    let (name, stock): (String, i32) =
        sqlx::query_as("SELECT name, stock FROM products WHERE slug = 'foam-roller'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name, "High-Density Foam Roller");
    assert_eq!(stock, 1, "reservations made since the last seed survive");
}
