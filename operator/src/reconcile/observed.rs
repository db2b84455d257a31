//! What the cluster holds for one Store: its labelled children, as JSON,
//! keyed by kind and name.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::render::ChildKind;

/// The Store's children as listed from the API (or a cache).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    objects: BTreeMap<(ChildKind, String), Value>,
}

impl Observed {
    /// Records one object. List responses omit `apiVersion` and `kind` on
    /// items, so they are set from `kind` to compare like with like.
    pub fn insert(&mut self, kind: ChildKind, mut value: Value) {
        if let Value::Object(map) = &mut value {
            map.insert("apiVersion".into(), Value::String(kind.api_version()));
            map.insert("kind".into(), Value::String(kind.kind().to_owned()));
        }
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.objects.insert((kind, name), value);
    }

    /// The object of that kind and name, if present.
    pub fn get(&self, kind: ChildKind, name: &str) -> Option<&Value> {
        self.objects.get(&(kind, name.to_owned()))
    }

    /// Every object, in kind then name order.
    pub fn iter(&self) -> impl Iterator<Item = (ChildKind, &str, &Value)> {
        self.objects.iter().map(|((k, n), v)| (*k, n.as_str(), v))
    }

    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// UID of the controller owner of an object, if it has one.
pub fn controller_uid(value: &Value) -> Option<&str> {
    value
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?
        .get("uid")?
        .as_str()
}

/// The hash annotation the operator stamped when it last applied the object.
pub fn applied_hash(value: &Value) -> Option<&str> {
    value
        .pointer("/metadata/annotations")?
        .get(crate::render::object::APPLIED_HASH)?
        .as_str()
}
