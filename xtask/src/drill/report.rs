//! What the drill found: it reads the order, product and payment databases
//! of its shop (and the dead-letter queues through the services' admin
//! ports), checks them against each other and against what the shoppers
//! were told, and prints the figures. [`Figures::compute`] is pure, so the
//! arithmetic is tested without a shop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use sqlx::PgConnection;

use storekeeper_contract::ShopService;

use super::deliveries::Deliveries;
use super::faults::Fault;
use super::shop::Databases;

/// Units per product id.
pub type Stock = BTreeMap<String, i64>;

/// An order as order-service keeps it.
#[derive(Debug, Clone, Default)]
pub struct Order {
    /// `PENDING`, `AWAITING_PAYMENT`, `PAID`, `CANCELLED` or `REFUNDED`.
    pub status: String,
    /// What it costs, in minor units.
    pub total_cents: i64,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// Units per product.
    pub items: Stock,
}

/// product-service's decision for one order.
#[derive(Debug, Clone, Default)]
pub struct Reservation {
    /// `RESERVED`, `REJECTED`, `RELEASED` or `SOLD`.
    pub status: String,
    /// Units per product.
    pub items: Stock,
}

/// A payment as payment-service keeps it.
#[derive(Debug, Clone, Default)]
pub struct Payment {
    /// Its id.
    pub id: String,
    /// `SUCCEEDED`, `FAILED` or `REFUNDED`.
    pub status: String,
    /// What was charged.
    pub amount_cents: i64,
    /// What payment-service says went back.
    pub refunded_cents: i64,
    /// The refund rows, in minor units each.
    pub refunds: Vec<i64>,
}

impl Payment {
    /// Whether money was taken (and may since have gone back).
    fn captured(&self) -> bool {
        self.status == "SUCCEEDED" || self.status == "REFUNDED"
    }
}

/// Everything the figures are computed from, read once the deadline passed.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Order ids the API gave the shoppers, one per accepted checkout.
    pub accepted: Vec<String>,
    /// Orders by id.
    pub orders: BTreeMap<String, Order>,
    /// Reservations by order id.
    pub reservations: BTreeMap<String, Reservation>,
    /// Payment rows by order id.
    pub payments: BTreeMap<String, Vec<Payment>>,
    /// Stock before the first checkout.
    pub initial: Stock,
    /// Stock now (what shoppers can still order).
    pub available: Stock,
    /// Messages waiting in each dead-letter queue.
    pub dead_letters: BTreeMap<String, i64>,
    /// Events written but not yet published, over the three outboxes.
    pub unpublished: i64,
    /// Orders whose charge payment-service decided on but has not made or
    /// recorded yet (`charge_intents`).
    pub charges_pending: Vec<String>,
}

/// Reads the stock of every product.
pub async fn read_stock(databases: &Databases) -> Result<Stock> {
    let mut conn = databases.connect(ShopService::Product).await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT id::text, stock::bigint FROM products ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .context("reading the stock")?;
    Ok(rows.into_iter().collect())
}

impl Snapshot {
    /// Reads the three databases and the dead-letter queues (through the
    /// admin ports, with an admin's `token`).
    pub async fn read(
        databases: &Databases,
        token: &str,
        initial: &Stock,
        accepted: &[String],
    ) -> Result<Self> {
        let mut snapshot = Self {
            accepted: accepted.to_vec(),
            initial: initial.clone(),
            available: read_stock(databases).await?,
            ..Self::default()
        };

        let mut orders_db = databases.connect(ShopService::Order).await?;
        let orders: Vec<(String, String, i64, Option<String>)> =
            sqlx::query_as("SELECT id::text, status, total_cents, cancellation_reason FROM orders")
                .fetch_all(&mut orders_db)
                .await
                .context("reading orders")?;
        for (id, status, total_cents, cancellation_reason) in orders {
            snapshot.orders.insert(
                id,
                Order {
                    status,
                    total_cents,
                    cancellation_reason,
                    items: Stock::new(),
                },
            );
        }
        let items: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT order_id::text, product_id::text, quantity::bigint FROM order_items",
        )
        .fetch_all(&mut orders_db)
        .await
        .context("reading order items")?;
        for (order, product, quantity) in items {
            if let Some(order) = snapshot.orders.get_mut(&order) {
                *order.items.entry(product).or_default() += quantity;
            }
        }
        snapshot.unpublished += unpublished(&mut orders_db).await?;

        let mut products_db = databases.connect(ShopService::Product).await?;
        let rows: Vec<(String, String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT r.order_id::text, r.status, i->>'product_id', (i->>'quantity')::bigint \
             FROM stock_reservations r \
             LEFT JOIN LATERAL jsonb_array_elements(r.items) i ON true \
             ORDER BY r.order_id",
        )
        .fetch_all(&mut products_db)
        .await
        .context("reading stock reservations")?;
        let mut reservations: BTreeMap<String, Reservation> = BTreeMap::new();
        for (order, status, product, quantity) in rows {
            let reservation = reservations.entry(order).or_insert_with(|| Reservation {
                status,
                items: Stock::new(),
            });
            if let (Some(product), Some(quantity)) = (product, quantity) {
                *reservation.items.entry(product).or_default() += quantity;
            }
        }
        snapshot.reservations = reservations;
        snapshot.unpublished += unpublished(&mut products_db).await?;

        let mut payments_db = databases.connect(ShopService::Payment).await?;
        let payments: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id::text, order_id::text, status, amount_cents, refunded_cents FROM payments",
        )
        .fetch_all(&mut payments_db)
        .await
        .context("reading payments")?;
        let refunds: Vec<(String, i64)> =
            sqlx::query_as("SELECT payment_id::text, amount_cents FROM refunds")
                .fetch_all(&mut payments_db)
                .await
                .context("reading refunds")?;
        let mut refunds_by_payment: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (payment, amount) in refunds {
            refunds_by_payment.entry(payment).or_default().push(amount);
        }
        for (id, order, status, amount_cents, refunded_cents) in payments {
            let refunds = refunds_by_payment.remove(&id).unwrap_or_default();
            snapshot.payments.entry(order).or_default().push(Payment {
                id,
                status,
                amount_cents,
                refunded_cents,
                refunds,
            });
        }
        snapshot.unpublished += unpublished(&mut payments_db).await?;
        snapshot.charges_pending = sqlx::query_scalar("SELECT order_id::text FROM charge_intents")
            .fetch_all(&mut payments_db)
            .await
            .context("reading the charges not made yet")?;

        snapshot.dead_letters = dead_letters(token).await?;
        Ok(snapshot)
    }
}

async fn unpublished(conn: &mut PgConnection) -> Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(conn)
        .await
        .context("reading the outbox")
}

#[derive(Deserialize)]
struct Overview {
    queues: Vec<QueueDepth>,
}

#[derive(Deserialize)]
struct QueueDepth {
    queue: String,
    depth: i64,
}

/// Depth of every dead-letter queue, from the admin port of each service
/// on the broker (`GET /admin/dead-letters`).
async fn dead_letters(token: &str) -> Result<BTreeMap<String, i64>> {
    let client = reqwest::Client::new();
    let mut depths = BTreeMap::new();
    for svc in ShopService::ALL.into_iter().filter(|s| s.uses_broker()) {
        let url = format!(
            "http://127.0.0.1:{}/admin/dead-letters",
            svc.local_admin_port()
        );
        let overview: Overview = client
            .get(&url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("asking {url}"))?
            .json()
            .await
            .with_context(|| format!("reading {url}"))?;
        for queue in overview.queues {
            depths.insert(queue.queue, queue.depth);
        }
    }
    Ok(depths)
}

/// One failure figure: what it counts and the ids behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What it counts.
    pub label: &'static str,
    /// How many.
    pub count: i64,
    /// The order, payment, product or queue behind each, with detail.
    pub examples: Vec<String>,
}

/// Why orders were cancelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cancellations {
    /// product-service could not reserve the stock.
    pub out_of_stock: usize,
    /// The card was declined.
    pub payment_failed: usize,
    /// The reaper cancelled it at the deadline.
    pub expired: usize,
    /// Any other reason.
    pub other: usize,
}

/// The drill's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Checkouts the API accepted.
    pub accepted: usize,
    /// Orders in order-service's database.
    pub orders: usize,
    /// Orders `PAID`.
    pub paid: usize,
    /// Orders `CANCELLED`, by cause.
    pub cancelled: Cancellations,
    /// Orders `REFUNDED` (the drill refunds nothing, so expected 0).
    pub refunded: usize,
    /// Cancelled orders that had been charged and got all of it back.
    pub refunds_for_cancelled: usize,
    /// Products in the catalog.
    pub products: usize,
    /// Units sold (reservations of paid orders).
    pub sold: i64,
    /// Units still reserved by orders in checkout.
    pub reserved: i64,
    /// Events not yet published (information: their effects are checked).
    pub unpublished: i64,
    /// The failure figures, each of which must be 0.
    pub failures: Vec<Failure>,
}

fn is_open(status: &str) -> bool {
    status == "PENDING" || status == "AWAITING_PAYMENT"
}

/// Product ids whose units differ between two lists of units.
fn same_units(a: &Stock, b: &Stock) -> bool {
    let nonzero = |s: &Stock| -> Stock {
        s.iter()
            .filter(|(_, n)| **n != 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    };
    nonzero(a) == nonzero(b)
}

impl Figures {
    /// Checks the snapshot; pure.
    #[allow(clippy::too_many_lines)]
    pub fn compute(s: &Snapshot) -> Self {
        let mut figures = Self {
            accepted: s.accepted.len(),
            orders: s.orders.len(),
            products: s.initial.len(),
            unpublished: s.unpublished,
            ..Self::default()
        };
        let mut failures = Vec::new();
        let mut fail = |label: &'static str, examples: Vec<String>| {
            failures.push(Failure {
                label,
                count: i64::try_from(examples.len()).unwrap_or(i64::MAX),
                examples,
            });
        };

        let accepted: BTreeSet<&String> = s.accepted.iter().collect();
        fail(
            "stuck (PENDING or AWAITING_PAYMENT)",
            s.orders
                .iter()
                .filter(|(_, o)| is_open(&o.status))
                .map(|(id, o)| format!("{id} {}", o.status))
                .collect(),
        );
        fail(
            "accepted, not in the orders database",
            accepted
                .iter()
                .filter(|id| !s.orders.contains_key(**id))
                .map(|id| (*id).clone())
                .collect(),
        );
        fail(
            "in the database, never accepted (duplicates)",
            s.orders
                .keys()
                .filter(|id| !accepted.contains(id))
                .cloned()
                .collect(),
        );
        let mut seen = BTreeSet::new();
        fail(
            "one order given to two checkouts",
            s.accepted
                .iter()
                .filter(|id| !seen.insert(*id))
                .cloned()
                .collect(),
        );

        // Stock effects: one reservation per order, for the order's lines,
        // SOLD once paid, given back once cancelled.
        // (order_id is the reservations' key, so a second reservation of
        // one order could only be stock taken twice: the stock check.)
        let reservation = |id: &str| s.reservations.get(id);
        fail(
            "reservation differs from the order's lines",
            s.orders
                .iter()
                .filter_map(|(id, o)| {
                    let r = reservation(id)?;
                    let holds = r.status == "RESERVED" || r.status == "SOLD";
                    (holds && !same_units(&r.items, &o.items))
                        .then(|| format!("{id} order {:?} reserved {:?}", o.items, r.items))
                })
                .collect(),
        );
        fail(
            "paid, stock not marked sold",
            s.orders
                .iter()
                .filter(|(id, o)| {
                    o.status == "PAID" && reservation(id).is_none_or(|r| r.status != "SOLD")
                })
                .map(|(id, _)| {
                    let r = reservation(id).map_or("none", |r| r.status.as_str());
                    format!("{id} (reservation {r})")
                })
                .collect(),
        );
        fail(
            "cancelled, stock still held",
            s.orders
                .iter()
                .filter(|(id, o)| {
                    o.status == "CANCELLED"
                        && reservation(id)
                            .is_some_and(|r| r.status == "RESERVED" || r.status == "SOLD")
                })
                .map(|(id, _)| id.clone())
                .collect(),
        );
        fail(
            "reservations for unknown orders",
            s.reservations
                .keys()
                .filter(|id| !s.orders.contains_key(*id))
                .cloned()
                .collect(),
        );

        fail(
            "charges decided, never made or recorded",
            s.charges_pending.clone(),
        );

        // Money: one charge per order, kept only for paid orders, refunds
        // matching the ledger.
        let captured = |id: &str| -> Vec<&Payment> {
            s.payments
                .get(id)
                .map(|rows| rows.iter().filter(|p| p.captured()).collect())
                .unwrap_or_default()
        };
        fail(
            "charged twice",
            s.payments
                .iter()
                .filter(|(_, rows)| rows.len() > 1)
                .map(|(id, rows)| format!("{id} ({} payments)", rows.len()))
                .collect(),
        );
        fail(
            "paid without its charge",
            s.orders
                .iter()
                .filter(|(id, o)| {
                    o.status == "PAID"
                        && !matches!(captured(id).as_slice(), [p] if p.status == "SUCCEEDED"
                            && p.amount_cents == o.total_cents
                            && p.refunded_cents == 0)
                })
                .map(|(id, _)| id.clone())
                .collect(),
        );
        fail(
            "cancelled, money kept",
            s.orders
                .iter()
                .filter(|(id, o)| {
                    o.status == "CANCELLED"
                        && captured(id)
                            .iter()
                            .any(|p| p.refunded_cents < p.amount_cents)
                })
                .map(|(id, _)| id.clone())
                .collect(),
        );
        fail(
            "refunded twice, or refunds off the ledger",
            s.payments
                .values()
                .flatten()
                .filter(|p| {
                    let sum: i64 = p.refunds.iter().sum();
                    sum != p.refunded_cents || p.refunded_cents > p.amount_cents
                })
                .map(|p| {
                    format!(
                        "payment {}: refunds {:?}, refunded_cents {}, amount {}",
                        p.id, p.refunds, p.refunded_cents, p.amount_cents
                    )
                })
                .collect(),
        );
        fail(
            "charges for unknown orders",
            s.payments
                .keys()
                .filter(|id| !s.orders.contains_key(*id))
                .cloned()
                .collect(),
        );

        let dead: Vec<String> = s
            .dead_letters
            .iter()
            .filter(|(_, depth)| **depth > 0)
            .map(|(queue, depth)| format!("{queue}: {depth}"))
            .collect();
        fail("dead letters", dead);

        // Stock: initial − sold − reserved = available, per product, and
        // what was sold is what paid orders hold.
        let mut sold = Stock::new();
        let mut reserved = Stock::new();
        for r in s.reservations.values() {
            let into = match r.status.as_str() {
                "SOLD" => &mut sold,
                "RESERVED" => &mut reserved,
                _ => continue,
            };
            for (product, n) in &r.items {
                *into.entry(product.clone()).or_default() += n;
            }
        }
        let mut paid_units = Stock::new();
        for o in s
            .orders
            .values()
            .filter(|o| o.status == "PAID" || o.status == "REFUNDED")
        {
            for (product, n) in &o.items {
                *paid_units.entry(product.clone()).or_default() += n;
            }
        }
        let get = |m: &Stock, k: &str| m.get(k).copied().unwrap_or(0);
        let products: BTreeSet<&String> = s
            .initial
            .keys()
            .chain(s.available.keys())
            .chain(sold.keys())
            .chain(reserved.keys())
            .chain(paid_units.keys())
            .collect();
        fail(
            "products whose stock does not add up",
            products
                .into_iter()
                .filter_map(|p| {
                    let (initial, sold, reserved) = (get(&s.initial, p), get(&sold, p), get(&reserved, p));
                    let (available, paid) = (get(&s.available, p), get(&paid_units, p));
                    (initial - sold - reserved != available || sold != paid).then(|| {
                        format!(
                            "{p}: initial {initial} - sold {sold} - reserved {reserved} = {}, available {available}; paid orders hold {paid}",
                            initial - sold - reserved
                        )
                    })
                })
                .collect(),
        );
        // A dead-letter queue counts its messages, not itself.
        if let Some(dead) = failures.iter_mut().find(|f| f.label == "dead letters") {
            dead.count = s.dead_letters.values().filter(|d| **d > 0).sum();
        }
        figures.failures = failures;
        figures.sold = sold.values().sum();
        figures.reserved = reserved.values().sum();

        for (id, o) in &s.orders {
            match o.status.as_str() {
                "PAID" => figures.paid += 1,
                "REFUNDED" => figures.refunded += 1,
                "CANCELLED" => {
                    let reason = o.cancellation_reason.as_deref().unwrap_or("");
                    let cause = if reason.starts_with("out of stock") {
                        &mut figures.cancelled.out_of_stock
                    } else if reason.starts_with("payment failed") {
                        &mut figures.cancelled.payment_failed
                    } else if reason.starts_with("expired") {
                        &mut figures.cancelled.expired
                    } else {
                        &mut figures.cancelled.other
                    };
                    *cause += 1;
                    if captured(id)
                        .iter()
                        .any(|p| p.refunded_cents == p.amount_cents && p.amount_cents > 0)
                    {
                        figures.refunds_for_cancelled += 1;
                    }
                }
                _ => {}
            }
        }
        figures
    }

    /// The sum of every failure figure.
    pub fn failure_total(&self) -> i64 {
        self.failures.iter().map(|f| f.count).sum()
    }

    /// The labels of the failure figures above 0.
    pub fn failing_labels(&self) -> Vec<&'static str> {
        self.failures
            .iter()
            .filter(|f| f.count > 0)
            .map(|f| f.label)
            .collect()
    }
}

/// What happened on the way, besides the figures: how long each fault took
/// to recover from, what the shoppers had to retry, and how the consumers
/// took their deliveries.
pub struct Journey {
    /// Each fault and how long until what it hit answered again.
    pub recoveries: Vec<(Fault, Duration)>,
    /// Requests that needed more than one attempt.
    pub retried: usize,
    /// Checkouts refused with a 4xx.
    pub refused: usize,
    /// Event deliveries by outcome, over every process of the drill.
    pub deliveries: Deliveries,
}

/// Prints the report.
pub fn print(figures: &Figures, journey: &Journey) {
    let Journey {
        recoveries,
        retried,
        refused,
        deliveries,
    } = journey;
    let c = &figures.cancelled;
    let cancelled = c.out_of_stock + c.payment_failed + c.expired + c.other;
    println!();
    println!("faults (each struck while checkouts and sagas were in flight)");
    for (fault, took) in recoveries {
        println!(
            "  {:<44} back in {:>5.1} s",
            fault.label(),
            took.as_secs_f64()
        );
    }
    println!();
    println!("orders");
    row("checkouts accepted by the API", figures.accepted);
    row("checkouts refused (4xx)", refused);
    row("requests that needed a retry", retried);
    row("orders in the orders database", figures.orders);
    row("PAID", figures.paid);
    row("CANCELLED", cancelled);
    row("  out of stock", c.out_of_stock);
    row("  payment declined", c.payment_failed);
    row("  expired (reaper)", c.expired);
    row("  other", c.other);
    row("REFUNDED", figures.refunded);
    row(
        "refunds for cancelled orders",
        figures.refunds_for_cancelled,
    );
    println!();
    println!("stock");
    row("products", figures.products);
    row("units sold", figures.sold);
    row("units reserved", figures.reserved);
    row("events still in an outbox", figures.unpublished);
    println!();
    println!("event deliveries (all processes of the drill, by outcome)");
    for (outcome, n) in deliveries {
        row(outcome, n);
    }
    println!();
    println!("failures (each must be 0)");
    for failure in &figures.failures {
        row(failure.label, failure.count);
        for example in failure.examples.iter().take(10) {
            println!("      {example}");
        }
        if failure.examples.len() > 10 {
            println!("      … and {} more", failure.examples.len() - 10);
        }
    }
    println!();
}

fn row(label: &str, value: impl std::fmt::Display) {
    println!("  {label:<46} {value:>6}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(pairs: &[(&str, i64)]) -> Stock {
        pairs.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect()
    }

    fn order(status: &str, total: i64, reason: Option<&str>, items: &[(&str, i64)]) -> Order {
        Order {
            status: status.to_owned(),
            total_cents: total,
            cancellation_reason: reason.map(str::to_owned),
            items: units(items),
        }
    }

    fn reservation(status: &str, items: &[(&str, i64)]) -> Reservation {
        Reservation {
            status: status.to_owned(),
            items: units(items),
        }
    }

    fn payment(id: &str, status: &str, amount: i64, refunds: &[i64]) -> Payment {
        Payment {
            id: id.to_owned(),
            status: status.to_owned(),
            amount_cents: amount,
            refunded_cents: refunds.iter().sum(),
            refunds: refunds.to_vec(),
        }
    }

    /// Four orders of a consistent shop: one paid, one out of stock, one
    /// declined, one expired after its charge landed (refunded in full).
    fn consistent() -> Snapshot {
        let mut s = Snapshot {
            accepted: ["o1", "o2", "o3", "o4"].map(str::to_owned).to_vec(),
            initial: units(&[("a", 10), ("b", 1)]),
            // a: 10 − 2 sold = 8; b: 1, nothing taken.
            available: units(&[("a", 8), ("b", 1)]),
            ..Snapshot::default()
        };
        s.orders
            .insert("o1".into(), order("PAID", 500, None, &[("a", 2)]));
        s.orders.insert(
            "o2".into(),
            order("CANCELLED", 900, Some("out of stock: B"), &[("b", 3)]),
        );
        s.orders.insert(
            "o3".into(),
            order(
                "CANCELLED",
                250,
                Some("payment failed: declined"),
                &[("a", 1)],
            ),
        );
        s.orders.insert(
            "o4".into(),
            order(
                "CANCELLED",
                250,
                Some("expired: not completed within 30 s"),
                &[("a", 1)],
            ),
        );
        s.reservations
            .insert("o1".into(), reservation("SOLD", &[("a", 2)]));
        s.reservations
            .insert("o2".into(), reservation("REJECTED", &[("b", 3)]));
        s.reservations
            .insert("o3".into(), reservation("RELEASED", &[("a", 1)]));
        s.reservations
            .insert("o4".into(), reservation("RELEASED", &[("a", 1)]));
        s.payments
            .insert("o1".into(), vec![payment("p1", "SUCCEEDED", 500, &[])]);
        s.payments
            .insert("o3".into(), vec![payment("p3", "FAILED", 250, &[])]);
        s.payments
            .insert("o4".into(), vec![payment("p4", "REFUNDED", 250, &[250])]);
        s
    }

    fn failing(figures: &Figures) -> Vec<(&'static str, i64)> {
        figures
            .failures
            .iter()
            .filter(|f| f.count > 0)
            .map(|f| (f.label, f.count))
            .collect()
    }

    #[test]
    fn a_consistent_shop_has_no_failures() {
        let figures = Figures::compute(&consistent());
        assert_eq!(failing(&figures), []);
        assert_eq!(figures.failure_total(), 0);
        assert_eq!((figures.accepted, figures.orders, figures.paid), (4, 4, 1));
        assert_eq!(
            figures.cancelled,
            Cancellations {
                out_of_stock: 1,
                payment_failed: 1,
                expired: 1,
                other: 0
            }
        );
        assert_eq!(figures.refunds_for_cancelled, 1);
        assert_eq!((figures.sold, figures.reserved), (2, 0));
    }

    #[test]
    fn stock_taken_twice_does_not_add_up() {
        let mut s = consistent();
        s.available.insert("a".into(), 6);
        let figures = Figures::compute(&s);
        assert_eq!(
            failing(&figures),
            [("products whose stock does not add up", 1)]
        );
        assert!(figures.failures.iter().any(|f| f.examples
            == ["a: initial 10 - sold 2 - reserved 0 = 8, available 6; paid orders hold 2"]));
    }

    #[test]
    fn a_reservation_still_held_counts_against_available() {
        let mut s = consistent();
        s.orders.insert(
            "o5".into(),
            order("AWAITING_PAYMENT", 250, None, &[("a", 1)]),
        );
        s.accepted.push("o5".into());
        s.reservations
            .insert("o5".into(), reservation("RESERVED", &[("a", 1)]));
        s.available.insert("a".into(), 7);
        let figures = Figures::compute(&s);
        // The stock adds up; the order is stuck.
        assert_eq!(
            failing(&figures),
            [("stuck (PENDING or AWAITING_PAYMENT)", 1)]
        );
        assert_eq!(figures.reserved, 1);
    }

    #[test]
    fn a_charge_decided_but_never_made_is_a_failure() {
        let mut s = consistent();
        s.charges_pending.push("o4".into());
        let figures = Figures::compute(&s);
        assert_eq!(
            failing(&figures),
            [("charges decided, never made or recorded", 1)]
        );
    }

    #[test]
    fn money_failures_are_each_counted() {
        let mut s = consistent();
        // o4's charge was never refunded; o1 was charged a second time.
        s.payments
            .insert("o4".into(), vec![payment("p4", "SUCCEEDED", 250, &[])]);
        if let Some(rows) = s.payments.get_mut("o1") {
            rows.push(payment("p1b", "SUCCEEDED", 500, &[]));
        }
        // p5 refunded twice for one order that does not exist.
        s.payments.insert(
            "ghost".into(),
            vec![Payment {
                refunded_cents: 100,
                ..payment("p5", "REFUNDED", 100, &[100, 100])
            }],
        );
        let figures = Figures::compute(&s);
        assert_eq!(
            failing(&figures),
            [
                ("charged twice", 1),
                ("paid without its charge", 1),
                ("cancelled, money kept", 1),
                ("refunded twice, or refunds off the ledger", 1),
                ("charges for unknown orders", 1),
            ]
        );
        assert_eq!(figures.refunds_for_cancelled, 0);
    }

    #[test]
    fn orders_lost_duplicated_or_with_wrong_stock_effects_are_counted() {
        let mut s = consistent();
        s.accepted.push("lost".into());
        s.accepted.push("o1".into());
        s.orders
            .insert("extra".into(), order("CANCELLED", 1, Some("expired"), &[]));
        s.reservations
            .insert("o3".into(), reservation("RESERVED", &[("a", 1)]));
        s.available.insert("a".into(), 7);
        s.reservations
            .insert("o1".into(), reservation("RESERVED", &[("a", 2)]));
        s.available.insert("a".into(), 5);
        s.dead_letters.insert("order.saga.dlq".into(), 2);
        let figures = Figures::compute(&s);
        assert_eq!(
            failing(&figures),
            [
                ("accepted, not in the orders database", 1),
                ("in the database, never accepted (duplicates)", 1),
                ("one order given to two checkouts", 1),
                ("paid, stock not marked sold", 1),
                ("cancelled, stock still held", 1),
                ("dead letters", 2),
                ("products whose stock does not add up", 1),
            ]
        );
    }
}
