//! "Does the live object still say what we applied?" — a structural subset
//! check: every field the operator sets must be present with the same value;
//! fields the API server or other controllers add are ignored. Kubernetes
//! re-serialises quantities in canonical form, so `0.5` and `500m` compare
//! equal.

use serde_json::Value;

/// True when every field in `desired` has the same value in `live`.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Null, _) => true,
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            None => is_empty(dv),
        }),
        (Value::Object(d), Value::Null) => d.values().all(is_empty),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (Value::Array(d), Value::Null) => d.is_empty(),
        (Value::String(d), Value::String(l)) => d == l || same_quantity(d, l),
        (d, l) => d == l,
    }
}

/// Values the API server drops when empty.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Parses a Kubernetes quantity into a comparable number (milli-units for
/// decimal suffixes, bytes for binary ones). `None` for anything else.
fn quantity(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = if split == 0 {
        return None;
    } else {
        s.split_at(split)
    };
    let n: f64 = num.parse().ok()?;
    let factor = match unit {
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * factor)
}

fn same_quantity(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            s.parse::<f64>().ok()
        } else {
            quantity(s)
        }
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(1.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_added_fields_are_ignored() {
        let desired = json!({"spec": {"replicas": 2}, "metadata": {"labels": {"a": "b"}}});
        let live = json!({"spec": {"replicas": 2, "paused": false},
            "metadata": {"labels": {"a": "b"}, "uid": "x"}, "status": {}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn changed_fields_are_drift() {
        let desired = json!({"spec": {"replicas": 2}});
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 3}})));
        assert!(!is_subset(&desired, &json!({"spec": {}})));
        assert!(!is_subset(&json!({"a": [1, 2]}), &json!({"a": [1]})));
    }

    #[test]
    fn empty_values_match_absent_ones() {
        assert!(is_subset(&json!({"a": {}, "b": []}), &json!({})));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(is_subset(&json!("0.5"), &json!("500m")));
        assert!(is_subset(&json!("1024Mi"), &json!("1Gi")));
        assert!(!is_subset(&json!("1Gi"), &json!("1G")));
        assert!(!is_subset(&json!("http"), &json!("https")));
    }
}
