//! The simulated card provider, with Stripe-like test cards.
//!
//! Tokenizing hands the card to the provider, which answers an opaque token;
//! only the token is stored. In this simulation the token records which test
//! card it stands for, so charging it later gives that card's outcome:
//!
//! | card | outcome |
//! | --- | --- |
//! | `4000000000000002` | declined (`card_declined`) |
//! | `4000000000009995` | declined (`insufficient_funds`) |
//! | `4000000000003030` | succeeds, but the provider answers after [`SLOW_ANSWER`] (a charge still in flight, for tests) |
//! | any other valid card (e.g. `4242424242424242`) | succeeds |
//!
//! A real provider would also take the order id as its idempotency key, so
//! a retried charge call is never captured twice.

use std::time::Duration;

use uuid::Uuid;

use crate::card::ValidCard;

/// How long the slow test card's charge takes: long enough for a shopper
/// (or a browser test) to act on an order whose payment is still in flight.
pub(crate) const SLOW_ANSWER: Duration = Duration::from_secs(10);

/// Why the provider refused a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decline {
    /// Stable machine-readable code.
    pub(crate) code: &'static str,
    /// Words for the shopper.
    pub(crate) message: &'static str,
}

const DECLINED: Decline = Decline {
    code: "card_declined",
    message: "the card was declined",
};
const INSUFFICIENT_FUNDS: Decline = Decline {
    code: "insufficient_funds",
    message: "the card has insufficient funds",
};

/// Exchanges a card for a provider token.
pub(crate) fn tokenize(card: &ValidCard) -> String {
    let kind = match card.digits() {
        "4000000000000002" => "decline",
        "4000000000009995" => "nsf",
        "4000000000003030" => "slow",
        _ => "ok",
    };
    format!("sim_{kind}_{}", Uuid::new_v4().simple())
}

/// How long the provider takes to answer a charge of `token` before it
/// starts (`None`: at once).
pub(crate) fn answer_delay(token: &str) -> Option<Duration> {
    (token.split('_').nth(1) == Some("slow")).then_some(SLOW_ANSWER)
}

/// Charges `amount_cents` to the card behind `token`, at most once per
/// `idempotency_key` (the order id).
pub(crate) fn charge(
    token: &str,
    amount_cents: i64,
    _idempotency_key: Uuid,
) -> Result<(), Decline> {
    if amount_cents <= 0 {
        return Err(DECLINED);
    }
    match token.split('_').nth(1) {
        Some("ok" | "slow") => Ok(()),
        Some("nsf") => Err(INSUFFICIENT_FUNDS),
        _ => Err(DECLINED),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::card::{CardInput, validate};

    fn token_for(number: &str) -> String {
        let input = CardInput {
            card_number: number.into(),
            exp_month: 1,
            exp_year: 2030,
            cvc: "123".into(),
        };
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        tokenize(&validate(&input, today).unwrap())
    }

    #[test]
    fn test_cards_have_their_outcomes() {
        let order = Uuid::new_v4();
        assert_eq!(charge(&token_for("4242424242424242"), 100, order), Ok(()));
        assert_eq!(
            charge(&token_for("4000000000000002"), 100, order)
                .unwrap_err()
                .code,
            "card_declined"
        );
        assert_eq!(
            charge(&token_for("4000000000009995"), 100, order)
                .unwrap_err()
                .code,
            "insufficient_funds"
        );
        let slow = token_for("4000000000003030");
        assert_eq!(charge(&slow, 100, order), Ok(()));
        assert_eq!(answer_delay(&slow), Some(SLOW_ANSWER));
        assert_eq!(answer_delay(&token_for("4242424242424242")), None);
    }

    #[test]
    fn tokens_carry_no_card_digits() {
        let token = token_for("4242424242424242");
        assert!(!token.contains("4242424242424242"), "{token}");
    }
}
