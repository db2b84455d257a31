//! Field paths inside an object: which leaves a body sets, and reading,
//! writing and removing a value by path. Maps are walked key by key; lists
//! and scalars are leaves (lists are atomic here, see the crate README).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path of map keys from the object's root.
pub(crate) type FieldPath = Vec<String>;
/// A set of leaf paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Metadata fields a client may set (everything else is the server's).
const CLIENT_METADATA: [&str; 4] = ["labels", "annotations", "ownerReferences", "finalizers"];

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource; `status` is excluded when the kind has `/status`.
    Main {
        /// Whether the kind has the `/status` subresource.
        status_subresource: bool,
    },
    /// Only `status` (a `/status` write).
    Status,
}

impl Scope {
    /// Whether a leaf path belongs to this scope.
    pub(crate) fn includes(self, path: &[String]) -> bool {
        let first = path.first().map(String::as_str);
        match self {
            Scope::Status => first == Some("status"),
            Scope::Main { status_subresource } => match first {
                None | Some("apiVersion" | "kind") => false,
                Some("metadata") => path
                    .get(1)
                    .is_some_and(|k| CLIENT_METADATA.contains(&k.as_str())),
                Some("status") => !status_subresource,
                Some(_) => true,
            },
        }
    }

    /// The `subresource` recorded in `managedFields`.
    pub(crate) fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Status => Some("status"),
            Scope::Main { .. } => None,
        }
    }
}

fn collect(value: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                collect(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// Every leaf `value` sets within `scope`.
pub(crate) fn leaves(value: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    collect(value, &mut Vec::new(), &mut out);
    out.retain(|p| scope.includes(p));
    out
}

/// Whether one path is a prefix of the other (they address the same data).
pub(crate) fn overlap(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The value at `path`.
pub(crate) fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Sets `path` to `new`, creating (or overwriting non-map) parents.
pub(crate) fn set(value: &mut Value, path: &[String], new: Value) {
    let Some((last, parents)) = path.split_last() else {
        *value = new;
        return;
    };
    let mut cur = value;
    for k in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(k.clone()).or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        map.insert(last.clone(), new);
    }
}

/// Removes `path`, then any parent map it leaves empty (never `metadata`).
pub(crate) fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(Value::Object(map)) = get_mut(value, parents) else {
        return;
    };
    map.remove(last);
    let is_metadata = parents.len() == 1 && parents[0] == "metadata";
    if map.is_empty() && !is_metadata {
        remove(value, parents);
    }
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, k| v.get_mut(k))
}

/// Renders a field set as `fieldsV1` (`{"f:spec":{"f:replicas":{}}}`).
pub(crate) fn fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let prefixed: FieldPath = path.iter().map(|k| format!("f:{k}")).collect();
        set_if_absent(&mut root, &prefixed);
    }
    root
}

fn set_if_absent(root: &mut Value, path: &[String]) {
    let mut cur = root;
    for k in path {
        let Value::Object(map) = cur else { return };
        cur = map
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn leaves_respect_scope() {
        let v = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"l": "1"}, "resourceVersion": "3"},
            "spec": {"a": [1, 2], "b": {"c": 1}, "e": {}}, "status": {"s": 1}});
        let main = leaves(
            &v,
            Scope::Main {
                status_subresource: true,
            },
        );
        let want: FieldSet = ["metadata.labels.l", "spec.a", "spec.b.c", "spec.e"]
            .iter()
            .map(|s| p(s))
            .collect();
        assert_eq!(main, want);
        assert_eq!(
            leaves(&v, Scope::Status),
            [p("status.s")].into_iter().collect()
        );
    }

    #[test]
    fn set_get_remove_prunes_empty_parents() {
        let mut v = json!({"metadata": {"labels": {"a": "1"}}});
        set(&mut v, &p("spec.x.y"), json!(2));
        assert_eq!(get(&v, &p("spec.x.y")), Some(&json!(2)));
        remove(&mut v, &p("spec.x.y"));
        assert_eq!(v.get("spec"), None);
        remove(&mut v, &p("metadata.labels.a"));
        assert_eq!(v, json!({"metadata": {}}));
    }

    #[test]
    fn fields_v1_format() {
        let set: FieldSet = [p("spec.replicas"), p("spec.template.x")]
            .into_iter()
            .collect();
        assert_eq!(
            fields_v1(&set),
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:x": {}}}})
        );
    }
}
