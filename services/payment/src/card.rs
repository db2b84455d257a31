//! Card validation and tokenization, as pure functions.
//!
//! The raw card number lives only in the request being served: it is
//! checked (digits, Luhn, brand, expiry, CVC), handed to the simulated
//! provider, and dropped. [`CardInput`]'s `Debug` prints nothing secret,
//! so a stray log line cannot leak it.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use storekeeper_kit::FieldError;
use utoipa::ToSchema;

/// Body of `POST /api/payments/methods`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CardInput {
    /// 12 to 19 digits; spaces and dashes are ignored.
    #[schema(example = "4242424242424242")]
    pub(crate) card_number: String,
    /// 1 to 12.
    pub(crate) exp_month: u32,
    /// Four digits, this year or later.
    pub(crate) exp_year: u32,
    /// Three digits (four for American Express).
    #[schema(example = "123")]
    pub(crate) cvc: String,
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardInput").finish_non_exhaustive()
    }
}

/// Card networks we recognise by their number prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Brand {
    /// Starts with 4.
    Visa,
    /// 51–55, or 2221–2720.
    Mastercard,
    /// 34 or 37.
    Amex,
    /// 6011, 644–649, 65.
    Discover,
    /// Anything else that passes Luhn.
    Unknown,
}

impl Brand {
    /// The lowercase name shown to shoppers.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Discover => "discover",
            Self::Unknown => "unknown",
        }
    }

    /// Detects the brand from the digits.
    pub(crate) fn detect(digits: &str) -> Self {
        let prefix = |n: usize| {
            digits
                .get(..n)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        };
        match (prefix(1), prefix(2), prefix(3), prefix(4)) {
            (4, ..) => Self::Visa,
            (_, 51..=55, ..) | (.., 2221..=2720) => Self::Mastercard,
            (_, 34 | 37, ..) => Self::Amex,
            (_, 65, ..) | (_, _, 644..=649, _) | (.., 6011) => Self::Discover,
            _ => Self::Unknown,
        }
    }
}

/// A card that passed validation: the only facts that leave this module.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ValidCard {
    /// Digits only (kept in memory for the provider call, never stored).
    digits: String,
    /// The network.
    pub(crate) brand: Brand,
    /// Expiry month.
    pub(crate) exp_month: u32,
    /// Expiry year.
    pub(crate) exp_year: u32,
}

impl std::fmt::Debug for ValidCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidCard")
            .field("brand", &self.brand)
            .field("last4", &self.last4())
            .finish_non_exhaustive()
    }
}

impl ValidCard {
    /// The last four digits.
    pub(crate) fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }

    /// The full number, for the provider only.
    pub(crate) fn digits(&self) -> &str {
        &self.digits
    }
}

/// The Luhn checksum (ISO/IEC 7812-1).
pub(crate) fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (index, byte) in digits.bytes().rev().enumerate() {
        let mut digit = u32::from(byte - b'0');
        if index % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    sum % 10 == 0
}

/// True when a card expiring at the end of `month`/`year` is still valid on `today`.
pub(crate) fn not_expired(month: u32, year: u32, today: NaiveDate) -> bool {
    let (year_now, month_now) = (u32::try_from(today.year()).unwrap_or(0), today.month());
    (year, month) >= (year_now, month_now)
}

/// Checks every field; returns the card or every problem found.
pub(crate) fn validate(input: &CardInput, today: NaiveDate) -> Result<ValidCard, Vec<FieldError>> {
    let mut errors = Vec::new();
    let digits: String = input
        .card_number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let brand = Brand::detect(&digits);
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new("card_number", "must be 12 to 19 digits"));
    } else if !luhn_valid(&digits) {
        errors.push(FieldError::new(
            "card_number",
            "is not a valid card number (check the digits)",
        ));
    }
    if !(1..=12).contains(&input.exp_month) {
        errors.push(FieldError::new("exp_month", "must be 1 to 12"));
    }
    if !(1000..=9999).contains(&input.exp_year) {
        errors.push(FieldError::new("exp_year", "must be a four-digit year"));
    } else if (1..=12).contains(&input.exp_month)
        && !not_expired(input.exp_month, input.exp_year, today)
    {
        errors.push(FieldError::new("exp_year", "the card has expired"));
    } else if input.exp_year > u32::try_from(today.year()).unwrap_or(0) + 20 {
        errors.push(FieldError::new("exp_year", "is too far in the future"));
    }
    let cvc_len = if brand == Brand::Amex { 4 } else { 3 };
    if input.cvc.len() != cvc_len || !input.cvc.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new("cvc", format!("must be {cvc_len} digits")));
    }
    if errors.is_empty() {
        Ok(ValidCard {
            digits,
            brand,
            exp_month: input.exp_month,
            exp_year: input.exp_year,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    fn card(number: &str, month: u32, year: u32, cvc: &str) -> CardInput {
        CardInput {
            card_number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: cvc.into(),
        }
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_typos() {
        for good in [
            "4242424242424242",
            "4000000000000002",
            "4000000000009995",
            "5555555555554444",
            "378282246310005",
        ] {
            assert!(luhn_valid(good), "{good}");
        }
        assert!(!luhn_valid("4242424242424241"));
    }

    #[test]
    fn brands_are_detected() {
        assert_eq!(Brand::detect("4242424242424242"), Brand::Visa);
        assert_eq!(Brand::detect("5555555555554444"), Brand::Mastercard);
        assert_eq!(Brand::detect("2223003122003222"), Brand::Mastercard);
        assert_eq!(Brand::detect("378282246310005"), Brand::Amex);
        assert_eq!(Brand::detect("6011111111111117"), Brand::Discover);
        assert_eq!(Brand::detect("3056930009020004"), Brand::Unknown);
    }

    #[test]
    fn valid_card_keeps_brand_and_last4_and_hides_the_number() {
        let valid = validate(&card("4242 4242 4242 4242", 12, 2030, "123"), today()).unwrap();
        assert_eq!((valid.brand, valid.last4()), (Brand::Visa, "4242"));
        let debug = format!("{valid:?} {:?}", card("4242424242424242", 1, 2030, "999"));
        assert!(
            !debug.contains("42424242") && !debug.contains("999"),
            "{debug}"
        );
    }

    #[test]
    fn expiry_is_checked_to_the_month() {
        assert!(validate(&card("4242424242424242", 11, 2026, "123"), today()).is_ok());
        let errors = validate(&card("4242424242424242", 10, 2026, "123"), today()).unwrap_err();
        assert_eq!(errors[0].field, "exp_year");
        assert_eq!(errors[0].message, "the card has expired");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = validate(&card("1234", 13, 26, "1"), today()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["card_number", "exp_month", "exp_year", "cvc"]);
        let errors = validate(&card("4242424242424241", 1, 2030, "123"), today()).unwrap_err();
        assert!(errors[0].message.contains("not a valid card number"));
    }

    #[test]
    fn amex_needs_four_digit_cvc() {
        assert!(validate(&card("378282246310005", 1, 2030, "1234"), today()).is_ok());
        assert!(validate(&card("378282246310005", 1, 2030, "123"), today()).is_err());
    }
}
