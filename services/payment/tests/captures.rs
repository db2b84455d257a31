//! The capture worker: the card provider is called outside any database
//! transaction, and whatever a crash or a race leaves half done ends with
//! exactly one recorded charge, or none for an order cancelled in time.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use payment_service::capture::{self, Captured};
use serde_json::Value;
use support::Ctx;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_charge_left_by_a_crash_after_its_decision_is_resumed_once() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    // The consumer committed the intent; its worker died before the call.
    let intent = ctx.decide_charge(user, method, order, 1_500).await.unwrap();
    assert_eq!(intent.attempts, 1);
    assert_eq!(ctx.outbox().await, Vec::<Value>::new());
    assert_eq!(ctx.pending_intents().await, 1);
    // Another replica leaves it alone while the claim holds...
    assert!(ctx.capturer.claim_due().await.unwrap().is_empty());
    // ...and takes it over once the claim ran out.
    assert_eq!(ctx.resume_all().await, vec![Captured::Succeeded]);
    assert_eq!(types(&ctx.outbox().await), ["payment.succeeded"]);
    assert_eq!(ctx.pending_intents().await, 0);
    assert_eq!(ctx.resume_all().await, Vec::new(), "nothing left to resume");
    let payments = ctx.payments_of(&token, order).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "SUCCEEDED");
    let text = ctx.metrics.encode().unwrap();
    assert!(text.contains("payment_charges_resumed_total 1"), "{text}");
    assert!(text.contains("payments_succeeded_total 1"), "{text}");
    ctx.finish().await;
}

#[tokio::test]
async fn a_lost_handover_is_taken_over_and_the_late_worker_stands_aside() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    // The consumer committed the intent, but the handover to its worker was
    // lost (its commit was cut short): only a short claim protects it.
    let late = ctx.decide_charge(user, method, order, 1_200).await.unwrap();
    let claimed: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM claimed_until - now())::float8 FROM charge_intents",
    )
    .fetch_one(&ctx.pool)
    .await
    .unwrap();
    assert!(
        claimed <= capture::HANDOFF.as_secs_f64() + 1.0,
        "claimed for {claimed} s"
    );
    sqlx::query("UPDATE charge_intents SET claimed_until = now() - interval '1 second'")
        .execute(&ctx.pool)
        .await
        .unwrap();
    let resumed = ctx.capturer.claim_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    // The worker that was handed the intent late (after its claim ran out
    // by its own clock too) finds it claimed.
    let late = payment_service::intents::Intent {
        claim_ends: Some(Instant::now()),
        ..late
    };
    assert_eq!(
        ctx.capturer.capture(late).await.unwrap(),
        Captured::ClaimedElsewhere
    );
    assert_eq!(ctx.outbox().await, Vec::<Value>::new());
    let resumed = resumed.into_iter().next().unwrap();
    assert_eq!(
        ctx.capturer.capture(resumed).await.unwrap(),
        Captured::Succeeded
    );
    assert_eq!(types(&ctx.outbox().await), ["payment.succeeded"]);
    assert_eq!(ctx.payments_of(&token, order).await.len(), 1);
    ctx.finish().await;
}

/// Seconds left on the one intent's claim, by the database's clock.
async fn claim_left(ctx: &Ctx) -> f64 {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM claimed_until - now())::float8 FROM charge_intents",
    )
    .fetch_one(&ctx.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_charge_begun_in_time_renews_its_claim_only_when_its_call_runs_long() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    // The slow card: the provider answers after 10 s.
    let method = ctx.tokenize(&token, "4000000000003030").await;
    let order = Uuid::new_v4();
    let intent = ctx.decide_charge(user, method, order, 1_800).await.unwrap();
    let capturer = ctx.capturer.clone();
    let in_flight = tokio::spawn(async move { capturer.capture(intent).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = claim_left(&ctx).await;
    assert!(
        left <= capture::HANDOFF.as_secs_f64(),
        "the consumer's claim is still the one in force: {left} s left"
    );
    // Past the point where only the margin is left, the claim is renewed.
    let renewal = capture::HANDOFF.checked_sub(capture::RENEW_MARGIN).unwrap();
    tokio::time::sleep(renewal + Duration::from_secs(1)).await;
    assert!(!in_flight.is_finished());
    let left = claim_left(&ctx).await;
    assert!(
        left > capture::HANDOFF.as_secs_f64(),
        "renewed for the lease: {left} s left"
    );
    assert_eq!(in_flight.await.unwrap().unwrap(), Captured::Succeeded);
    assert_eq!(ctx.pending_intents().await, 0);
    assert_eq!(types(&ctx.outbox().await), ["payment.succeeded"]);
    ctx.finish().await;
}

#[tokio::test]
async fn two_workers_with_the_same_charge_record_it_once() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    // The slow card: the provider answers after 10 s.
    let method = ctx.tokenize(&token, "4000000000003030").await;
    let order = Uuid::new_v4();
    let intent = ctx.decide_charge(user, method, order, 2_000).await.unwrap();
    // The first worker's claim ran out while its call was in flight, and a
    // second asked the provider again (same idempotency key) before the
    // first answer came back.
    let second = intent.clone();
    let (first, second) = tokio::join!(ctx.capturer.capture(intent), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ctx.capturer.capture(second).await
    });
    let mut outcomes = vec![first.unwrap(), second.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![Captured::AlreadyRecorded, Captured::Succeeded]
    );
    assert_eq!(types(&ctx.outbox().await), ["payment.succeeded"]);
    assert_eq!(ctx.payments_of(&token, order).await.len(), 1);
    let text = ctx.metrics.encode().unwrap();
    assert!(text.contains("payments_succeeded_total 1"), "{text}");
    ctx.finish().await;
}

#[tokio::test]
async fn an_order_cancelled_before_its_first_provider_call_is_not_charged() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    let intent = ctx.decide_charge(user, method, order, 2_500).await.unwrap();
    assert_eq!(ctx.cancel_order(order).await, Vec::<Value>::new());
    assert_eq!(
        ctx.capturer.capture(intent).await.unwrap(),
        Captured::Dropped
    );
    assert_eq!(ctx.outbox().await, Vec::<Value>::new());
    assert_eq!(ctx.payments_of(&token, order).await, Vec::<Value>::new());
    assert_eq!(ctx.pending_intents().await, 0);
    ctx.finish().await;
}

#[tokio::test]
async fn a_resumed_charge_of_a_cancelled_order_is_refunded_in_full() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    // The first attempt may have reached the provider before its worker
    // died, so the second asks again and gives back what it captured.
    ctx.decide_charge(user, method, order, 2_500).await.unwrap();
    ctx.cancel_order(order).await;
    assert_eq!(ctx.resume_all().await, vec![Captured::Refunded]);
    let events = ctx.outbox().await;
    assert_eq!(types(&events), ["payment.succeeded", "payment.refunded"]);
    assert_eq!(events[1]["data"]["fully_refunded"], true);
    let payments = ctx.payments_of(&token, order).await;
    assert_eq!(payments[0]["status"], "REFUNDED");
    assert_eq!(payments[0]["refunded_cents"], 2_500);
    let text = ctx.metrics.encode().unwrap();
    assert!(text.contains("refunds_total 1"), "{text}");
    ctx.finish().await;
}

#[tokio::test]
async fn a_slow_provider_holds_no_connection_and_holds_up_no_other_charge() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let slow_card = ctx.tokenize(&token, "4000000000003030").await;
    let card = ctx.tokenize(&token, "4242424242424242").await;
    let slow_order = Uuid::new_v4();
    let slow = ctx
        .decide_charge(user, slow_card, slow_order, 3_000)
        .await
        .unwrap();
    let capturer = ctx.capturer.clone();
    let in_flight = tokio::spawn(async move { capturer.capture(slow).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the slow card answers after 10 s");
    assert_eq!(
        ctx.pool.size() as usize - ctx.pool.num_idle(),
        0,
        "no connection is held while the provider answers"
    );
    // Another order is charged meanwhile, and the slow one is cancelled.
    let order = Uuid::new_v4();
    ctx.request_charge(user, card, order, 1_000).await;
    assert_eq!(
        ctx.payments_of(&token, order).await[0]["status"],
        "SUCCEEDED"
    );
    ctx.cancel_order(slow_order).await;
    assert!(!in_flight.is_finished());
    assert_eq!(in_flight.await.unwrap().unwrap(), Captured::Refunded);
    let payments = ctx.payments_of(&token, slow_order).await;
    assert_eq!(payments[0]["status"], "REFUNDED");
    ctx.finish().await;
}

#[tokio::test]
async fn the_running_worker_resumes_what_a_crashed_one_left() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    ctx.decide_charge(user, method, order, 900).await.unwrap();
    sqlx::query("UPDATE charge_intents SET claimed_until = now()")
        .execute(&ctx.pool)
        .await
        .unwrap();
    let (_captures, inbox) = capture::channel();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(ctx.capturer.clone().run(inbox, shutdown.clone()));
    let mut waited = Duration::ZERO;
    while ctx.pending_intents().await > 0 {
        assert!(waited < Duration::from_secs(10), "not resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    shutdown.cancel();
    worker.await.unwrap();
    assert_eq!(types(&ctx.outbox().await), ["payment.succeeded"]);
    ctx.finish().await;
}
