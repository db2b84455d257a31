//! Input rules for accounts, as pure functions: email normalization and
//! shape, display names, and the password policy.
//!
//! The password policy follows NIST SP 800-63B in spirit — length matters
//! most — plus two cheap guards: not a single character class, and not the
//! email address.

use storekeeper_kit::FieldError;

/// Shortest accepted password, in characters.
pub(crate) const PASSWORD_MIN: usize = 10;
/// Longest accepted password, in characters (bounds the hashing cost).
pub(crate) const PASSWORD_MAX: usize = 128;
/// Longest display name, in characters.
pub(crate) const NAME_MAX: usize = 100;
/// Longest email address (RFC 5321 path limit).
pub(crate) const EMAIL_MAX: usize = 254;

/// Trims and lower-cases an email, so `Ann@Example.COM ` and
/// `ann@example.com` are one account.
pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks a normalized email's shape: `local@domain.tld`, no spaces.
pub(crate) fn check_email(email: &str) -> Result<(), String> {
    if email.is_empty() {
        return Err("is required".to_owned());
    }
    if email.chars().count() > EMAIL_MAX {
        return Err(format!("must be at most {EMAIL_MAX} characters"));
    }
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
    }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err("must be an email address like name@example.com".to_owned())
    }
}

/// Trims a display name and checks it.
pub(crate) fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("is required".to_owned());
    }
    if name.chars().count() > NAME_MAX {
        return Err(format!("must be at most {NAME_MAX} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(name.to_owned())
}

/// Which kinds of characters a password uses.
fn character_classes(password: &str) -> usize {
    let lower = password.chars().any(char::is_lowercase);
    let upper = password.chars().any(char::is_uppercase);
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let other = password
        .chars()
        .any(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_ascii_digit());
    [lower, upper, digit, other]
        .into_iter()
        .filter(|x| *x)
        .count()
}

/// The password policy; `email` is the normalized email it must not contain.
pub(crate) fn check_password(password: &str, email: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < PASSWORD_MIN {
        return Err(format!("must be at least {PASSWORD_MIN} characters"));
    }
    if length > PASSWORD_MAX {
        return Err(format!("must be at most {PASSWORD_MAX} characters"));
    }
    if character_classes(password) < 2 {
        return Err(
            "must mix at least two kinds of characters (lower case, upper case, digits, symbols)"
                .to_owned(),
        );
    }
    let lowered = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if !email.is_empty()
        && (lowered.contains(email) || (local.chars().count() >= 3 && lowered.contains(local)))
    {
        return Err("must not contain your email address".to_owned());
    }
    Ok(())
}

/// A validated registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewAccount {
    /// Normalized email.
    pub(crate) email: String,
    /// Trimmed name.
    pub(crate) name: String,
}

/// Validates a registration, collecting every field's problem at once.
pub(crate) fn check_registration(
    email: &str,
    password: &str,
    name: &str,
) -> Result<NewAccount, Vec<FieldError>> {
    let email = normalize_email(email);
    let mut errors = Vec::new();
    if let Err(message) = check_email(&email) {
        errors.push(FieldError::new("email", message));
    }
    if let Err(message) = check_password(password, &email) {
        errors.push(FieldError::new("password", message));
    }
    let name = check_name(name).unwrap_or_else(|message| {
        errors.push(FieldError::new("name", message));
        String::new()
    });
    if errors.is_empty() {
        Ok(NewAccount { email, name })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized() {
        assert_eq!(normalize_email("  Ann@Example.COM "), "ann@example.com");
    }

    #[test]
    fn email_shapes() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "ünï@exämple.de"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "plain", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.de", "a@.b.co", "a@b..co",
            "a@b.co.",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email(&format!("{}@b.co", "a".repeat(260))).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(check_name("  Ann Lee ").unwrap(), "Ann Lee");
        assert!(check_name("   ").is_err());
        assert!(check_name("a\u{0}b").is_err());
        assert!(check_name(&"n".repeat(101)).is_err());
        assert!(check_name(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn password_policy() {
        let email = "ann@example.com";
        assert!(check_password("correct-horse-7", email).is_ok());
        assert!(check_password("Tr0ub4dor&3", email).is_ok());
        assert!(
            check_password("short1A", email)
                .unwrap_err()
                .contains("at least 10")
        );
        assert!(
            check_password(&"aB3".repeat(43), email)
                .unwrap_err()
                .contains("at most 128")
        );
        assert!(
            check_password("abcdefghijkl", email)
                .unwrap_err()
                .contains("two kinds")
        );
        assert!(
            check_password("123456789012", email)
                .unwrap_err()
                .contains("two kinds")
        );
        assert!(
            check_password("ANN@EXAMPLE.COM!1", email)
                .unwrap_err()
                .contains("email")
        );
        assert!(
            check_password("my-ann-password", email)
                .unwrap_err()
                .contains("email")
        );
        // Length is counted in characters, not bytes.
        assert!(check_password("ééééééééé1", email).is_ok());
    }

    #[test]
    fn registration_reports_every_field() {
        let errors = check_registration("nope", "short", " ").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "password", "name"]);
        let account = check_registration(" Ann@Example.com", "correct-horse-7", " Ann ").unwrap();
        assert_eq!(
            account,
            NewAccount {
                email: "ann@example.com".into(),
                name: "Ann".into()
            }
        );
    }
}
