//! Stock reservations for the checkout saga: the `product.inventory`
//! consumer.
//!
//! `order.created` reserves every line with a conditional update
//! (`UPDATE products SET stock = stock - n WHERE id = $1 AND stock >= n`),
//! all or nothing (a savepoint is rolled back when any line is short), and
//! emits `inventory.reserved` or `inventory.rejected` naming the short items.
//! `order.cancelled` gives a reservation's stock back; `order.paid` marks it
//! sold, so what stays `RESERVED` is what orders still in checkout hold. A row in
//! `stock_reservations` records each order's decision, so a repeated or
//! late event never takes or returns stock twice. Everything runs in the
//! consumer's transaction, together with the outgoing event.
//!
//! Both events of one order can be handled at the same time (the order
//! reaper cancels orders product-service may still be reserving), so
//! reserving and releasing first take the order's advisory lock
//! (`db::lock_for_transaction`, as payment-service does) and only then look
//! for its decision: the second waits for the first and sees what it
//! decided. A cancellation that wins leaves a `RELEASED` tombstone, and a
//! reservation never overrides one.

use std::{collections::BTreeMap, future::Future, pin::Pin};

use sqlx::{Connection, PgConnection};
use storekeeper_kit::{
    db,
    events::{
        CancellationToken, Consumer, Envelope, Event, EventMetrics, EventsConfig, Handler,
        HandlerError, OutboxRow, Relay,
        consumer::HandlerFuture,
        envelope::{
            EventItem, InventoryRejected, InventoryReserved, OrderCancelled, OrderCreated,
            OrderPaid, ShortItem,
        },
    },
};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{cache::CatalogCache, store};

/// The consumer's name: its queue and its key in `processed_events`.
pub const CONSUMER: &str = "product.inventory";
/// The events it handles.
pub(crate) const ROUTING_KEYS: &[&str] =
    &[OrderCreated::TYPE, OrderCancelled::TYPE, OrderPaid::TYPE];

/// Reserves and releases stock.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The read cache, told when stock changes (best effort).
    pub cache: Option<CatalogCache>,
}

impl Handler for Inventory {
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a> {
        Box::pin(async move {
            match event.event_type.as_str() {
                OrderCreated::TYPE => {
                    let order: OrderCreated = event.decode().map_err(HandlerError::Permanent)?;
                    reserve(conn, &order, event.correlation_id).await
                }
                OrderCancelled::TYPE => {
                    let cancelled: OrderCancelled =
                        event.decode().map_err(HandlerError::Permanent)?;
                    release(conn, cancelled.order_id).await
                }
                OrderPaid::TYPE => {
                    let paid: OrderPaid = event.decode().map_err(HandlerError::Permanent)?;
                    store::mark_sold(conn, paid.order_id).await?;
                    Ok(())
                }
                other => Err(HandlerError::Permanent(format!(
                    "{CONSUMER} does not handle {other}"
                ))),
            }
        })
    }

    /// Tells the read cache after the stock change committed, so a reader
    /// cannot cache the old stock again in between.
    fn committed<'a>(
        &'a self,
        event: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let items = match event.event_type.as_str() {
                OrderCreated::TYPE => event.decode::<OrderCreated>().map(|e| e.items),
                OrderCancelled::TYPE => event.decode::<OrderCancelled>().map(|e| e.items),
                _ => return,
            };
            if let (Some(cache), Ok(items)) = (&self.cache, items) {
                let ids: Vec<Uuid> = items.iter().map(|item| item.product_id).collect();
                cache.invalidate(&ids).await;
            }
        })
    }
}

/// Sums quantities per product, in product order (a fixed lock order, so
/// concurrent reservations cannot deadlock).
fn merge(items: &[EventItem]) -> Vec<EventItem> {
    let mut totals: BTreeMap<Uuid, i32> = BTreeMap::new();
    for item in items {
        let total = totals.entry(item.product_id).or_default();
        *total = total.saturating_add(item.quantity);
    }
    totals
        .into_iter()
        .map(|(product_id, quantity)| EventItem {
            product_id,
            quantity,
        })
        .collect()
}

/// The sentence naming the short items.
fn shortage_reason(short: &[(ShortItem, String)]) -> String {
    let parts: Vec<String> = short
        .iter()
        .map(|(item, name)| {
            format!(
                "{name} (requested {}, available {})",
                item.requested, item.available
            )
        })
        .collect();
    format!("out of stock: {}", parts.join(", "))
}

async fn reserve(
    conn: &mut PgConnection,
    order: &OrderCreated,
    correlation: Uuid,
) -> Result<(), HandlerError> {
    db::lock_for_transaction(conn, order.order_id).await?;
    match store::lock_reservation(conn, order.order_id).await? {
        None => {}
        Some(decided) if decided.status == "RELEASED" => {
            tracing::info!(order_id = %order.order_id, "order already cancelled; nothing reserved");
            return Ok(());
        }
        Some(_) => {
            tracing::info!(order_id = %order.order_id, "stock already decided for this order");
            return Ok(());
        }
    }
    let items = merge(&order.items);
    let short = take_all(conn, &items).await?;
    if short.is_empty() {
        let reserved = InventoryReserved {
            order_id: order.order_id,
            items: items.clone(),
        };
        let announced = OutboxRow::new(&reserved, correlation)?;
        store::insert_reservation(conn, (order.order_id, "RESERVED"), &items, Some(announced))
            .await?;
        tracing::info!(order_id = %order.order_id, "stock reserved");
        Ok(())
    } else {
        let rejected = InventoryRejected {
            order_id: order.order_id,
            reason: shortage_reason(&short),
            short_items: short.into_iter().map(|(item, _)| item).collect(),
        };
        tracing::info!(order_id = %order.order_id, reason = %rejected.reason, "stock rejected");
        let announced = OutboxRow::new(&rejected, correlation)?;
        store::insert_reservation(conn, (order.order_id, "REJECTED"), &items, Some(announced))
            .await?;
        Ok(())
    }
}

/// Takes every line's units, or none: returns the short lines (with their
/// names), having taken nothing, when any line is short. One line is one
/// conditional update, all or nothing by itself; more lines take theirs
/// inside a savepoint that a short line rolls back.
async fn take_all(
    conn: &mut PgConnection,
    items: &[EventItem],
) -> Result<Vec<(ShortItem, String)>, sqlx::Error> {
    if let [item] = items {
        return Ok(
            match store::take_stock(conn, item.product_id, item.quantity).await? {
                Some(_) => Vec::new(),
                None => vec![shortage(conn, item).await?],
            },
        );
    }
    let mut savepoint = conn.begin().await?;
    let mut short = Vec::new();
    for item in items {
        if store::take_stock(&mut savepoint, item.product_id, item.quantity)
            .await?
            .is_none()
        {
            short.push(shortage(&mut savepoint, item).await?);
        }
    }
    if short.is_empty() {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(short)
}

/// What is on hand of a line found short, and the product's name.
async fn shortage(
    conn: &mut PgConnection,
    item: &EventItem,
) -> Result<(ShortItem, String), sqlx::Error> {
    let found = store::stock_and_name(conn, item.product_id).await?;
    let (available, name) =
        found.unwrap_or_else(|| (0, format!("unknown product {}", item.product_id)));
    let short_item = ShortItem {
        product_id: item.product_id,
        requested: item.quantity,
        available,
    };
    Ok((short_item, name))
}

async fn release(conn: &mut PgConnection, order: Uuid) -> Result<(), HandlerError> {
    db::lock_for_transaction(conn, order).await?;
    match store::lock_reservation(conn, order).await? {
        None => {
            // Cancelled before the reservation was ever tried: leave a
            // tombstone so a late `order.created` takes nothing.
            store::insert_reservation(conn, (order, "RELEASED"), &[], None).await?;
            Ok(())
        }
        Some(reservation) if reservation.status == "RESERVED" => {
            let items = reservation.items.0;
            for item in &items {
                store::return_stock(conn, item.product_id, item.quantity).await?;
            }
            store::mark_released(conn, order).await?;
            tracing::info!(order_id = %order, "reserved stock released");
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

/// The `product.inventory` consumer.
pub fn consumer(
    pool: &sqlx::PgPool,
    cache: Option<CatalogCache>,
    config: &EventsConfig,
    events: &EventMetrics,
) -> Consumer {
    Consumer::new(
        CONSUMER,
        ROUTING_KEYS,
        Inventory { cache },
        pool.clone(),
        config.clone(),
        events.clone(),
    )
}

/// Starts the outbox relay and the inventory consumer; they stop when `shutdown` fires.
pub fn start_events(
    pool: &sqlx::PgPool,
    cache: Option<CatalogCache>,
    config: &EventsConfig,
    events: &EventMetrics,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let relay = Relay::new(pool.clone(), config.clone(), events.clone());
    vec![
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(consumer(pool, cache, config, events).run(shutdown.clone())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_one_product_are_merged_in_product_order() {
        let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
        let merged = merge(&[
            EventItem {
                product_id: a,
                quantity: 1,
            },
            EventItem {
                product_id: b,
                quantity: 2,
            },
            EventItem {
                product_id: a,
                quantity: 3,
            },
        ]);
        assert_eq!(
            merged,
            [
                EventItem {
                    product_id: b,
                    quantity: 2
                },
                EventItem {
                    product_id: a,
                    quantity: 4
                }
            ]
        );
    }

    #[test]
    fn the_reason_names_every_short_item() {
        let item = |requested, available| ShortItem {
            product_id: Uuid::nil(),
            requested,
            available,
        };
        let reason = shortage_reason(&[(item(3, 1), "Kettle".into()), (item(1, 0), "Mug".into())]);
        assert_eq!(
            reason,
            "out of stock: Kettle (requested 3, available 1), Mug (requested 1, available 0)"
        );
    }
}
