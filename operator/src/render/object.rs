//! One desired object: its kind, name, rollout step and JSON body, with the
//! hash of that body stamped into an annotation so a later reconcile can tell
//! "the operator's intent changed" without asking the API server.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ChildKind;
use crate::{Error, Result};

/// Annotation holding the SHA-256 of the desired object as last applied; a
/// differing hash means the operator's intent changed and the object must be
/// re-applied.
pub const APPLIED_HASH: &str = "storekeeper.dev/applied-hash";

/// Rollout step an object belongs to. The reconciler applies steps in this
/// order; health-gated rollout waits between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Config, identities and network policies everything else relies on.
    Foundation,
    /// PostgreSQL, Redis, RabbitMQ.
    Data,
    /// The services' schema migrations (one Job each).
    Migrations,
    /// user, product, order, payment.
    Backend,
    /// The storefront.
    Storefront,
    /// The Ingress that lets shoppers in.
    Edge,
}

/// A desired object, ready to be server-side applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Its kind.
    pub kind: ChildKind,
    /// `metadata.name`.
    pub name: String,
    /// Rollout step.
    pub step: Step,
    /// Full JSON body including `apiVersion`, `kind` and the hash annotation.
    /// Shared: a rollout's desired set mixes the target's and the stable
    /// revision's objects, and copying their trees per pass cost about 3 MiB
    /// with a hundred Stores in flight.
    pub value: Arc<Value>,
    /// SHA-256 (hex) of the body without the hash annotation.
    pub hash: String,
}

impl Object {
    /// Builds an object from a typed k8s-openapi value and stamps its hash.
    pub fn new<K>(kind: ChildKind, step: Step, name: &str, typed: &K) -> Result<Self>
    where
        K: Serialize + k8s_openapi::Resource,
    {
        let mut value = serde_json::to_value(typed).map_err(|source| Error::Serialize {
            what: format!("{} {name}", kind.kind()),
            source,
        })?;
        if let Value::Object(map) = &mut value {
            map.insert("apiVersion".into(), Value::String(K::API_VERSION.into()));
            map.insert("kind".into(), Value::String(K::KIND.into()));
        }
        Ok(Self::from_json(kind, step, name, value))
    }

    /// Builds an object of a kind k8s-openapi has no type for (a CRD's),
    /// from its JSON body; `apiVersion` and `kind` come from `kind`.
    pub fn from_json(kind: ChildKind, step: Step, name: &str, mut value: Value) -> Self {
        if let Value::Object(map) = &mut value {
            map.insert("apiVersion".into(), Value::String(kind.api_version()));
            map.insert("kind".into(), Value::String(kind.kind().to_owned()));
        }
        let hash = hash_value(&value);
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Value::Object(a) = annotations {
                a.insert(APPLIED_HASH.into(), Value::String(hash.clone()));
            }
        }
        Self {
            kind,
            name: name.to_owned(),
            step,
            value: Arc::new(value),
            hash,
        }
    }
}

/// SHA-256 (hex) of a JSON value's canonical form: compact JSON with object
/// keys sorted. serde_json's map is a `BTreeMap` (the `preserve_order`
/// feature is off — `hash_ignores_key_order` guards that), so its own
/// serialisation is canonical. It is written to one buffer and hashed in one
/// call: feeding SHA-256 serde_json's many tiny writes was ~20 % slower.
pub fn hash_value(value: &Value) -> String {
    // A `Value` always serialises.
    let canonical = serde_json::to_vec(value).unwrap_or_default();
    hex(&Sha256::digest(&canonical))
}

/// Short, stable hash of any serialisable value (for revisions and config hashes).
pub fn short_hash<T: Serialize>(value: &T) -> String {
    let v = serde_json::to_value(value).unwrap_or(Value::Null);
    hash_value(&v)[..10].to_owned()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_ignores_key_order() {
        let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        let b = json!({"b": {"d": "x", "c": [1, 2]}, "a": 1});
        assert_eq!(hash_value(&a), hash_value(&b));
        assert_ne!(hash_value(&a), hash_value(&json!({"a": 2})));
    }
}
