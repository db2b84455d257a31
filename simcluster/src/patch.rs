//! JSON merge patch (RFC 7386), the one non-apply patch kube-rs sends on
//! the operator's behalf (the Event recorder's series updates).

use serde_json::{Map, Value};

/// Applies `patch` to `target`: maps merge key by key, `null` deletes,
/// anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let mut v = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1]});
        merge(
            &mut v,
            &json!({"a": "z", "c": {"f": null}, "l": [2, 3], "n": {"x": 1}}),
        );
        assert_eq!(
            v,
            json!({"a": "z", "c": {"d": "e"}, "l": [2, 3], "n": {"x": 1}})
        );
    }
}
