//! The shipping address and its validation (pure).

use serde::{Deserialize, Serialize};
use storekeeper_kit::FieldError;
use utoipa::ToSchema;

/// Where an order is shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShippingAddress {
    /// Recipient's full name, 1 to 100 characters.
    #[schema(example = "Ada Lovelace")]
    pub(crate) name: String,
    /// Street and number, 1 to 200 characters.
    #[schema(example = "12 St James's Square")]
    pub line1: String,
    /// Flat, suite, floor; optional, at most 200 characters.
    #[serde(default)]
    pub line2: String,
    /// City or town, 1 to 100 characters.
    #[schema(example = "London")]
    pub(crate) city: String,
    /// Postal or ZIP code: 2 to 12 letters, digits, spaces or dashes.
    #[schema(example = "SW1Y 4JH")]
    pub(crate) postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    #[schema(example = "GB")]
    pub(crate) country: String,
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, min: usize, max: usize) {
    let length = value.chars().count();
    if length < min {
        errors.push(FieldError::new(field, "is required"));
    } else if length > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

impl ShippingAddress {
    /// A valid address, already normalised, for tests that need one.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        Self {
            name: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            line2: String::new(),
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
        }
    }

    /// Trims every field, upper-cases the country, and reports every problem.
    pub(crate) fn validate(self) -> Result<Self, Vec<FieldError>> {
        let address = Self {
            name: self.name.trim().to_owned(),
            line1: self.line1.trim().to_owned(),
            line2: self.line2.trim().to_owned(),
            city: self.city.trim().to_owned(),
            postal_code: self.postal_code.trim().to_uppercase(),
            country: self.country.trim().to_uppercase(),
        };
        let mut errors = Vec::new();
        let prefix = "shipping_address.";
        check_text(&mut errors, &format!("{prefix}name"), &address.name, 1, 100);
        check_text(
            &mut errors,
            &format!("{prefix}line1"),
            &address.line1,
            1,
            200,
        );
        check_text(
            &mut errors,
            &format!("{prefix}line2"),
            &address.line2,
            0,
            200,
        );
        check_text(&mut errors, &format!("{prefix}city"), &address.city, 1, 100);
        let postal_ok = (2..=12).contains(&address.postal_code.len())
            && address
                .postal_code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        if !postal_ok {
            errors.push(FieldError::new(
                format!("{prefix}postal_code"),
                "must be 2 to 12 letters, digits, spaces or dashes",
            ));
        }
        if address.country.len() != 2 || !address.country.chars().all(|c| c.is_ascii_uppercase()) {
            errors.push(FieldError::new(
                format!("{prefix}country"),
                "must be a two-letter ISO 3166-1 code, e.g. US or GB",
            ));
        }
        if errors.is_empty() {
            Ok(address)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> ShippingAddress {
        ShippingAddress {
            name: " Ada Lovelace ".into(),
            line1: "12 St James's Square".into(),
            line2: String::new(),
            city: "London".into(),
            postal_code: "sw1y 4jh".into(),
            country: "gb".into(),
        }
    }

    #[test]
    fn a_good_address_is_normalised() {
        let valid = address().validate().unwrap();
        assert_eq!(valid.name, "Ada Lovelace");
        assert_eq!(valid.postal_code, "SW1Y 4JH");
        assert_eq!(valid.country, "GB");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = ShippingAddress {
            name: "  ".into(),
            line1: "x".repeat(201),
            line2: "ok".into(),
            city: "Lon\u{0}don".into(),
            postal_code: "<script>".into(),
            country: "GBR".into(),
        };
        let fields: Vec<_> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "shipping_address.name",
                "shipping_address.line1",
                "shipping_address.city",
                "shipping_address.postal_code",
                "shipping_address.country"
            ]
        );
    }
}
