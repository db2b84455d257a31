//! The placing statement and add-to-cart against the real PostgreSQL: what
//! they write, what they answer, and a checkout waiting on another's lock.

use axum::http::StatusCode;
use storekeeper_contract::ShopService;
use storekeeper_kit::{idempotency::Answer, testing::TestDatabase};

use super::*;

/// An order of `lines` (product and quantity) for `user`, as checkout
/// composes it from a priced cart.
fn order(user: Uuid, lines: &[(Uuid, i32)]) -> Order {
    let id = Uuid::now_v7();
    let now = Utc::now();
    Order {
        id,
        user_id: user,
        status: OrderStatus::Pending,
        items: lines
            .iter()
            .map(|&(product_id, quantity)| OrderItem {
                order_id: id,
                product_id,
                name: "Kettle".into(),
                unit_price_cents: 1_000,
                quantity,
            })
            .collect(),
        total_cents: 1_000 * i64::from(lines.iter().map(|line| line.1).sum::<i32>()),
        currency: "USD".into(),
        shipping_address: ShippingAddress::example(),
        email: None,
        payment_method_id: Uuid::new_v4(),
        cancellation_reason: None,
        created_at: now,
        updated_at: now,
    }
}

/// Runs [`place_order`] for `order` under `key`.
async fn place(pool: &PgPool, order: &Order, key: &str) -> Placement {
    let created = OutboxRow::new(&order.created(), order.id).unwrap();
    let answer = Answer {
        status: StatusCode::CREATED,
        body: format!("{{\"id\":\"{}\"}}", order.id),
        replayed: false,
    };
    let claim = AnsweredClaim {
        user: order.user_id,
        key,
        hash: "hash",
        answer: &answer,
    };
    place_order(pool, order, created, claim).await.unwrap()
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Orders, their lines, history rows, outbox rows and claimed keys.
async fn written(pool: &PgPool) -> [i64; 5] {
    let mut counts = [0; 5];
    for (slot, table) in counts.iter_mut().zip([
        "orders",
        "order_items",
        "order_history",
        "outbox",
        "idempotency_keys",
    ]) {
        *slot = count(pool, table).await;
    }
    counts
}

async fn put(pool: &PgPool, user: Uuid, product: Uuid, quantity: i32) {
    sqlx::query(
        "INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity",
    )
    .bind(user)
    .bind(product)
    .bind(quantity)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn an_order_is_placed_only_from_the_cart_it_was_priced_from() {
    let database = TestDatabase::create(ShopService::Order, &crate::MIGRATOR).await;
    let pool = database.pool.clone();
    let (user, kettle, lamp) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    put(&pool, user, kettle, 2).await;
    put(&pool, user, lamp, 1).await;

    // Another quantity, a missing line, an extra line: nothing written.
    for lines in [
        vec![(kettle, 1), (lamp, 1)],
        vec![(kettle, 2)],
        vec![(kettle, 2), (lamp, 1), (Uuid::new_v4(), 1)],
    ] {
        let changed = place(&pool, &order(user, &lines), "k").await;
        assert_eq!(changed, Placement::CartChanged { lines: 2 }, "{lines:?}");
        assert_eq!(written(&pool).await, [0; 5], "{lines:?}");
    }

    // The cart priced, in another order than the cart's: placed, with
    // its lines, history, event and key, and the cart emptied.
    let placed = order(user, &[(lamp, 1), (kettle, 2)]);
    assert_eq!(place(&pool, &placed, "k").await, Placement::Placed);
    assert_eq!(written(&pool).await, [1, 2, 1, 1, 1]);
    assert_eq!(count(&pool, "cart_items").await, 0);
    let stored = KEYS.find(&pool, user, "k").await.unwrap().unwrap();
    assert_eq!(
        stored.response_body,
        Some(format!("{{\"id\":\"{}\"}}", placed.id))
    );

    // The same cart again under the same key: the key is taken and
    // nothing else is written; the cart is left as it is.
    put(&pool, user, kettle, 2).await;
    put(&pool, user, lamp, 1).await;
    let again = order(user, &[(kettle, 2), (lamp, 1)]);
    assert_eq!(place(&pool, &again, "k").await, Placement::KeyTaken);
    assert_eq!(written(&pool).await, [1, 2, 1, 1, 1]);
    assert_eq!(count(&pool, "cart_items").await, 2);
    database.drop_database().await;
}

#[tokio::test]
async fn an_add_answers_with_the_cart_a_read_after_it_gives() {
    let database = TestDatabase::create(ShopService::Order, &crate::MIGRATOR).await;
    let pool = database.pool.clone();
    let (user, kettle, lamp) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    put(&pool, Uuid::new_v4(), kettle, 5).await;
    for (product, quantity) in [(kettle, 1), (lamp, 2), (kettle, 3)] {
        let added = add_to_cart(&pool, user, product, quantity, 99, 50)
            .await
            .unwrap();
        assert_eq!(added, Added::Line(cart(&pool, user).await.unwrap()));
    }
    let lines = cart(&pool, user).await.unwrap();
    assert_eq!(
        lines
            .iter()
            .map(|line| (line.product_id, line.quantity))
            .collect::<Vec<_>>(),
        [(kettle, 4), (lamp, 2)],
        "oldest line first, another shopper's line not in it"
    );
    let full = add_to_cart(&pool, user, kettle, 96, 99, 50).await.unwrap();
    assert_eq!(full, Added::LineFull);
    let no_room = add_to_cart(&pool, user, Uuid::new_v4(), 1, 99, 2)
        .await
        .unwrap();
    assert_eq!(no_room, Added::CartFull);
    assert_eq!(cart(&pool, user).await.unwrap(), lines, "nothing changed");
    database.drop_database().await;
}

#[tokio::test]
async fn a_checkout_waits_on_a_cart_being_ordered_and_then_finds_it_empty() {
    let database = TestDatabase::create(ShopService::Order, &crate::MIGRATOR).await;
    let pool = database.pool.clone();
    let (user, kettle) = (Uuid::new_v4(), Uuid::new_v4());
    put(&pool, user, kettle, 1).await;

    // Another checkout holds the cart's lines and is about to empty it.
    let mut other = storekeeper_kit::db::begin(&pool).await.unwrap();
    sqlx::query("SELECT 1 FROM cart_items WHERE user_id = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut *other)
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { place(&pool, &order(user, &[(kettle, 1)]), "second-tab").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the checkout waits on the cart");
    sqlx::query("DELETE FROM cart_items WHERE user_id = $1")
        .bind(user)
        .execute(&mut *other)
        .await
        .unwrap();
    other.commit().await.unwrap();
    assert_eq!(waiting.await.unwrap(), Placement::CartChanged { lines: 0 });
    assert_eq!(written(&pool).await, [0; 5], "the key is not claimed");
    database.drop_database().await;
}
