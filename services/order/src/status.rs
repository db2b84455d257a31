//! The order state machine, as a pure function.
//!
//! ```text
//! PENDING ──stock reserved──▶ AWAITING_PAYMENT ──payment succeeded──▶ PAID ──fully refunded──▶ REFUNDED
//!    │                              │
//!    └──stock rejected──▶ CANCELLED ◀──payment failed──┘
//!    └──deadline passed──▶ CANCELLED ◀──deadline passed──┘
//!    └──shopper cancels──▶ CANCELLED ◀──shopper cancels──┘
//! ```
//!
//! Anything else is an [`InvalidTransition`], and it is one of two kinds.
//! An *early* step still applies to a status the order can reach (a full
//! refund while the order awaits its payment: `payment.succeeded` is
//! behind it), so the saga retries it. A *stale* one never will (a repeat,
//! or anything for a terminal order): the saga logs it and changes
//! nothing, so a terminal order stays terminal and reaches it exactly once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order is in the checkout saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum OrderStatus {
    /// Placed; waiting for product-service to reserve stock.
    Pending,
    /// Stock reserved; waiting for payment-service to charge.
    AwaitingPayment,
    /// Charged. Terminal unless refunded.
    Paid,
    /// Stock or payment failed; reserved stock is released. Terminal.
    Cancelled,
    /// Paid, then fully refunded. Terminal.
    Refunded,
}

impl OrderStatus {
    /// The upper-case word stored and shown.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::AwaitingPayment => "AWAITING_PAYMENT",
            Self::Paid => "PAID",
            Self::Cancelled => "CANCELLED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// Parses the stored word.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    pub(crate) const ALL: [Self; 5] = [
        Self::Pending,
        Self::AwaitingPayment,
        Self::Paid,
        Self::Cancelled,
        Self::Refunded,
    ];
}

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SagaStep {
    /// product-service reserved every line.
    StockReserved,
    /// product-service could not cover some line.
    StockRejected,
    /// payment-service captured the charge.
    PaymentSucceeded,
    /// payment-service could not charge.
    PaymentFailed,
    /// The whole captured amount was refunded.
    FullyRefunded,
    /// The order's deadline passed before it was paid (the reaper).
    Expired,
    /// The shopper cancelled it before it was paid.
    ShopperCancelled,
}

impl SagaStep {
    /// Every step, to explore what an order can still reach.
    pub(crate) const ALL: [Self; 7] = [
        Self::StockReserved,
        Self::StockRejected,
        Self::PaymentSucceeded,
        Self::PaymentFailed,
        Self::FullyRefunded,
        Self::Expired,
        Self::ShopperCancelled,
    ];

    /// The step's name, as order history and metrics show it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::StockReserved => "stock_reserved",
            Self::StockRejected => "stock_rejected",
            Self::PaymentSucceeded => "payment_succeeded",
            Self::PaymentFailed => "payment_failed",
            Self::FullyRefunded => "fully_refunded",
            Self::Expired => "expired",
            Self::ShopperCancelled => "shopper_cancelled",
        }
    }
}

/// A step that does not apply to the order's current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{step:?} does not apply to an order that is {}", from.as_str())]
pub(crate) struct InvalidTransition {
    /// The order's status.
    pub(crate) from: OrderStatus,
    /// The step that arrived.
    pub(crate) step: SagaStep,
}

impl InvalidTransition {
    /// Whether the step applies to a status the order can still reach: it
    /// came before the event that makes it apply, so it is worth retrying.
    pub(crate) fn is_early(self) -> bool {
        let mut reachable = vec![self.from];
        let mut next = 0;
        while let Some(&status) = reachable.get(next) {
            next += 1;
            for step in SagaStep::ALL {
                if let Ok(to) = transition(status, step)
                    && !reachable.contains(&to)
                {
                    if transition(to, self.step).is_ok() {
                        return true;
                    }
                    reachable.push(to);
                }
            }
        }
        false
    }
}

/// The status after `step`, or why `step` does not apply.
pub(crate) fn transition(
    from: OrderStatus,
    step: SagaStep,
) -> Result<OrderStatus, InvalidTransition> {
    use OrderStatus::{AwaitingPayment, Cancelled, Paid, Pending, Refunded};
    use SagaStep::{
        Expired, FullyRefunded, PaymentFailed, PaymentSucceeded, ShopperCancelled, StockRejected,
        StockReserved,
    };
    match (from, step) {
        (Pending, StockReserved) => Ok(AwaitingPayment),
        (Pending, StockRejected | Expired | ShopperCancelled)
        | (AwaitingPayment, PaymentFailed | Expired | ShopperCancelled) => Ok(Cancelled),
        (AwaitingPayment, PaymentSucceeded) => Ok(Paid),
        (Paid, FullyRefunded) => Ok(Refunded),
        _ => Err(InvalidTransition { from, step }),
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderStatus::*, SagaStep::*, *};

    #[test]
    fn every_pair_is_decided_and_only_the_designed_ones_move() {
        let allowed = [
            (Pending, StockReserved, AwaitingPayment),
            (Pending, StockRejected, Cancelled),
            (AwaitingPayment, PaymentSucceeded, Paid),
            (AwaitingPayment, PaymentFailed, Cancelled),
            (Paid, FullyRefunded, Refunded),
            (Pending, Expired, Cancelled),
            (AwaitingPayment, Expired, Cancelled),
            (Pending, ShopperCancelled, Cancelled),
            (AwaitingPayment, ShopperCancelled, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for step in SagaStep::ALL {
                let expected = allowed
                    .iter()
                    .find(|(f, s, _)| *f == from && *s == step)
                    .map(|(_, _, to)| *to);
                match (transition(from, step), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want),
                    (Err(err), None) => assert_eq!((err.from, err.step), (from, step)),
                    (got, want) => panic!("{from:?} + {step:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn terminal_states_never_move_again_except_refund() {
        for step in SagaStep::ALL {
            assert!(transition(Cancelled, step).is_err());
            assert!(transition(Refunded, step).is_err());
        }
    }

    #[test]
    fn early_steps_are_those_a_reachable_status_accepts() {
        let early = |from, step| transition(from, step).unwrap_err().is_early();
        assert!(
            early(AwaitingPayment, FullyRefunded),
            "refund before payment"
        );
        assert!(early(Pending, PaymentSucceeded), "payment before stock");
        assert!(early(Pending, FullyRefunded));
        assert!(!early(AwaitingPayment, StockReserved), "a repeat");
        assert!(!early(Paid, PaymentSucceeded));
        assert!(!early(Paid, Expired), "a paid order never expires");
        assert!(
            !early(Paid, ShopperCancelled),
            "a paid order cannot be cancelled"
        );
        for step in SagaStep::ALL {
            assert!(!early(Cancelled, step), "{step:?} after CANCELLED is stale");
            assert!(!early(Refunded, step), "{step:?} after REFUNDED is stale");
        }
    }

    #[test]
    fn statuses_round_trip_as_upper_case_words() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(OrderStatus::parse("paid"), None);
    }

    #[test]
    fn invalid_transition_reads_well() {
        let err = transition(Paid, StockReserved).unwrap_err();
        assert_eq!(
            err.to_string(),
            "StockReserved does not apply to an order that is PAID"
        );
    }
}
