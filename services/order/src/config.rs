//! order-service's own settings, beyond the kit's common ones.

use std::time::Duration;

use storekeeper_kit::vars::{ConfigError, Source, Vars};

pub use storekeeper_contract::env::ORDER_DEADLINE_SECS;

/// Default of [`ORDER_DEADLINE_SECS`]: 15 minutes. A healthy saga settles
/// in well under a second, and an event stuck in retries gets minutes to
/// come through before the order gives up.
const DEFAULT_DEADLINE_SECS: u64 = 900;

/// The settings only order-service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderConfig {
    /// How long an order may stay open before it is cancelled.
    pub deadline: Duration,
}

impl OrderConfig {
    /// Reads them (start-up fails with one line naming a malformed one).
    pub fn from_source<S: Source>(vars: &Vars<S>) -> Result<Self, ConfigError> {
        let secs = vars.or(ORDER_DEADLINE_SECS, DEFAULT_DEADLINE_SECS)?.max(1);
        Ok(Self {
            deadline: Duration::from_secs(secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_deadline_defaults_to_fifteen_minutes_and_is_read_in_seconds() {
        let none = Vars(HashMap::<&str, &str>::new());
        assert_eq!(
            OrderConfig::from_source(&none).unwrap().deadline,
            Duration::from_mins(15)
        );
        let set = Vars(HashMap::from([(ORDER_DEADLINE_SECS, "60")]));
        assert_eq!(
            OrderConfig::from_source(&set).unwrap().deadline,
            Duration::from_mins(1)
        );
        let bad = Vars(HashMap::from([(ORDER_DEADLINE_SECS, "soon")]));
        let err = OrderConfig::from_source(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with(r#"invalid ORDER_DEADLINE_SECS="soon""#),
            "{err}"
        );
    }
}
