//! The order state machine, as a pure function.
//!
//! ```text
//! PENDING ──stock reserved──▶ AWAITING_PAYMENT ──payment succeeded──▶ PAID ──fully refunded──▶ REFUNDED
//!    │                              │
//!    └──stock rejected──▶ CANCELLED ◀──payment failed──┘
//! ```
//!
//! Anything else (a late or repeated event, an event for the wrong state) is
//! an [`InvalidTransition`]: the saga logs it and changes nothing, so a
//! terminal order stays terminal and reaches it exactly once.

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
}

#[cfg(test)]
impl SagaStep {
    pub(crate) const ALL: [Self; 5] = [
        Self::StockReserved,
        Self::StockRejected,
        Self::PaymentSucceeded,
        Self::PaymentFailed,
        Self::FullyRefunded,
    ];
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

/// The status after `step`, or why `step` does not apply.
pub(crate) fn transition(
    from: OrderStatus,
    step: SagaStep,
) -> Result<OrderStatus, InvalidTransition> {
    use OrderStatus::{AwaitingPayment, Cancelled, Paid, Pending, Refunded};
    use SagaStep::{FullyRefunded, PaymentFailed, PaymentSucceeded, StockRejected, StockReserved};
    match (from, step) {
        (Pending, StockReserved) => Ok(AwaitingPayment),
        (Pending, StockRejected) | (AwaitingPayment, PaymentFailed) => Ok(Cancelled),
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
