//! Small readers and builders of the JSON the simulated controllers share.

use serde_json::Value;

/// `metadata.name` (`""` when absent).
pub(super) fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.uid` (`""` when absent).
pub(super) fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The controller owner's `(kind, name, uid)`.
pub(super) fn controller_of(v: &Value) -> Option<(&str, &str, &str)> {
    let r = v
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    Some((
        r.get("kind")?.as_str()?,
        r.get("name")?.as_str()?,
        r.get("uid")?.as_str()?,
    ))
}

/// Now, as the API writes timestamps.
pub(super) fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A short, stable hash of a pod template (the `pod-template-hash`).
pub(super) fn template_hash(template: &Value) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::digest(template.to_string().as_bytes());
    digest.iter().take(5).fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
/// `metadata.namespace` (`""` when absent).
pub(super) fn namespace_of(v: &Value) -> String {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An integer field, if present.
pub(super) fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// A workload status with zero counts left out, as the API server's
/// `omitempty` encoding does.
pub(super) fn omit_zero(mut status: Value) -> Value {
    if let Some(map) = status.as_object_mut() {
        map.retain(|_, v| v.as_i64() != Some(0));
    }
    status
}

/// Condition `(type, status, reason, message)` stamped like the
/// controllers do: times kept while status and reason stay the same.
pub(super) fn conditions(
    old: Option<&Value>,
    wanted: &[(&str, &str, &str, String)],
    update: Option<&str>,
) -> Value {
    let now = timestamp();
    let previous = |type_: &str| {
        old.and_then(Value::as_array).and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
    };
    Value::Array(
        wanted
            .iter()
            .map(|(type_, status, reason, message)| {
                let prev = previous(type_);
                let same = prev.is_some_and(|p| {
                    p.get("status").and_then(Value::as_str) == Some(*status)
                        && p.get("reason").and_then(Value::as_str) == Some(*reason)
                });
                let kept = |field: &str| {
                    prev.filter(|_| same)
                        .and_then(|p| p.get(field).cloned())
                        .unwrap_or_else(|| Value::String(now.clone()))
                };
                let last_update = match (update, *type_) {
                    (Some(stamp), "Progressing") => Value::String(stamp.to_owned()),
                    _ => kept("lastUpdateTime"),
                };
                serde_json::json!({
                    "type": type_, "status": status, "reason": reason, "message": message,
                    "lastUpdateTime": last_update,
                    "lastTransitionTime": kept("lastTransitionTime"),
                })
            })
            .collect(),
    )
}
