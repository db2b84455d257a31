//! The resource every exported span and log record carries: the service's
//! name plus the `key=value` pairs of `OTEL_RESOURCE_ATTRIBUTES` (the
//! operator names the Store and its namespace there), which Loki turns into
//! stream labels and trace backends into searchable attributes.

use std::str::FromStr;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

/// `key=value` pairs, comma-separated (`OTEL_RESOURCE_ATTRIBUTES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes(Vec<(String, String)>);

impl FromStr for ResourceAttributes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    Ok((key.trim().to_owned(), value.trim().to_owned()))
                }
                _ => Err(format!(
                    "expected comma-separated `key=value` pairs, got {pair:?}"
                )),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// The resource of `service_name` with `attributes` (the service name wins
/// over a `service.name` among them: it is the binary's own).
pub(super) fn resource(service_name: &str, attributes: &ResourceAttributes) -> Resource {
    Resource::builder()
        .with_attributes(
            attributes
                .0
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .with_service_name(service_name.to_owned())
        .build()
}

#[cfg(test)]
mod tests {
    use opentelemetry::Key;

    use super::*;

    #[test]
    fn pairs_become_attributes_beside_the_service_name() {
        let attributes: ResourceAttributes =
            "k8s.namespace.name=shop, service.namespace=main,,service.name=other"
                .parse()
                .unwrap();
        let resource = resource("order-service", &attributes);
        let get = |key: &'static str| {
            resource
                .get(&Key::from_static_str(key))
                .map(|v| v.to_string())
        };
        assert_eq!(get("k8s.namespace.name").as_deref(), Some("shop"));
        assert_eq!(get("service.namespace").as_deref(), Some("main"));
        assert_eq!(get("service.name").as_deref(), Some("order-service"));
    }

    #[test]
    fn a_pair_without_a_key_is_refused() {
        assert_eq!(
            "a=1,=2".parse::<ResourceAttributes>(),
            Err(r#"expected comma-separated `key=value` pairs, got "=2""#.to_owned())
        );
        assert!("novalue".parse::<ResourceAttributes>().is_err());
        assert_eq!(
            "".parse::<ResourceAttributes>(),
            Ok(ResourceAttributes::default())
        );
    }
}
