//! `?ids=` of `GET /api/products:batchGet`: the products a caller prices at
//! once (checkout asks for a whole cart in one request), checked before
//! they reach SQL.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use storekeeper_kit::FieldError;

use crate::domain::Product;

/// Most products one request may ask for (a cart holds at most 50).
pub(crate) const MAX_IDS: usize = 100;

/// The raw query string of `GET /api/products:batchGet`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BatchParams {
    /// Product UUIDs, comma-separated: 1 to 100, repeats counted once.
    pub(crate) ids: String,
}

/// The products found, in the order first asked for; an id no product
/// has is left out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ProductBatch {
    /// The products that exist, in request order.
    pub(crate) products: Vec<Product>,
}

impl BatchParams {
    /// The distinct ids, in the order given; every malformed one reported.
    pub(crate) fn validate(&self) -> Result<Vec<Uuid>, Vec<FieldError>> {
        let mut ids = Vec::new();
        let mut errors = Vec::new();
        for raw in self.ids.split(',').map(str::trim) {
            match Uuid::parse_str(raw) {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(_) => errors.push(FieldError::new(
                    "ids",
                    format!("`{raw}` is not a UUID; ids are comma-separated product UUIDs"),
                )),
            }
        }
        if errors.is_empty() && !(1..=MAX_IDS).contains(&ids.len()) {
            errors.push(FieldError::new(
                "ids",
                format!("give between 1 and {MAX_IDS} product ids"),
            ));
        }
        if errors.is_empty() {
            Ok(ids)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(ids: &str) -> Result<Vec<Uuid>, Vec<FieldError>> {
        BatchParams {
            ids: ids.to_owned(),
        }
        .validate()
    }

    #[test]
    fn ids_keep_their_order_and_repeats_count_once() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(validate(&format!("{b}, {a},{b}")).unwrap(), vec![b, a]);
    }

    #[test]
    fn every_malformed_id_is_named() {
        let a = Uuid::new_v4();
        let errors = validate(&format!("{a},kettle,,")).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().all(|e| e.field == "ids"));
        assert!(errors[0].message.contains("`kettle`"), "{errors:?}");
    }

    #[test]
    fn too_many_ids_are_refused() {
        let many: Vec<String> = (0..=MAX_IDS).map(|_| Uuid::new_v4().to_string()).collect();
        let errors = validate(&many.join(",")).unwrap_err();
        assert!(
            errors[0].message.contains("between 1 and 100"),
            "{errors:?}"
        );
        let enough = &many[..MAX_IDS];
        assert_eq!(validate(&enough.join(",")).unwrap().len(), MAX_IDS);
    }
}
