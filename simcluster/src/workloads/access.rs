//! The simulated controllers' reads and writes: straight to the object
//! store (not over HTTP, so they stay out of the request log), with
//! failures logged rather than fatal, as a controller would retry.

use serde_json::Value;
use tracing::warn;

use super::json::{controller_of, name_of, namespace_of};
use super::{CONTROLLER, Sim};
use crate::fields::Scope;
use crate::resources::ResourceType;
use crate::selectors::Selector;

impl Sim {
    /// One object, `None` when it is gone.
    pub(super) fn get(&self, t: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.shared.objects.get(t, ns, name).ok()
    }

    /// Objects of `t` in `ns` whose controller is the object with `uid`.
    pub(super) fn owned(&self, t: &ResourceType, ns: &str, uid: &str) -> Vec<Value> {
        let everything = Selector::default();
        let (items, _) = self
            .shared
            .objects
            .list(t, Some(ns), &everything, &everything);
        items
            .into_iter()
            .filter(|v| controller_of(v).is_some_and(|(_, _, u)| u == uid))
            .filter(|v| v.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    }

    /// Creates an object; a failure is logged (a controller would retry).
    pub(super) fn create(&self, t: &ResourceType, ns: &str, object: Value) -> Option<Value> {
        match self.shared.objects.create(t, ns, object, CONTROLLER) {
            Ok(v) => Some(v),
            Err(e) => {
                warn!(kind = %t.kind, namespace = ns, error = %e, "simulated controller: create failed");
                None
            }
        }
    }

    /// Deletes an object (with garbage collection); a failure is logged.
    pub(super) fn delete(&self, t: &ResourceType, ns: &str, name: &str) {
        if let Err(e) = self.shared.objects.delete(t, ns, name, false) {
            warn!(kind = %t.kind, namespace = ns, name, error = %e, "simulated controller: delete failed");
        }
    }

    /// Replaces an object's `status` when it differs.
    pub(super) fn write_status(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        status: Value,
        manager: &str,
    ) {
        let Some(mut current) = self.get(t, ns, name) else {
            return;
        };
        if current.get("status") == Some(&status) {
            return;
        }
        current["status"] = status;
        if let Some(meta) = current.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        if let Err(e) = self
            .shared
            .objects
            .replace(t, ns, name, current, manager, Scope::Status)
        {
            warn!(kind = %t.kind, namespace = ns, name, error = %e, "simulated status write failed");
        }
    }

    /// Sets the field at `path` (e.g. `["spec", "replicas"]`) when it
    /// differs, by merge patch so nobody else's concurrent change is lost.
    pub(super) fn set_field(&self, t: &ResourceType, object: &Value, path: &[&str], value: Value) {
        let pointer = path.iter().fold(String::new(), |mut out, key| {
            out.push('/');
            out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            out
        });
        if object.pointer(&pointer) == Some(&value) {
            return;
        }
        let body = path
            .iter()
            .rev()
            .fold(value, |inner, key| serde_json::json!({ *key: inner }));
        let scope = Scope::Main {
            status_subresource: t.status_subresource,
        };
        let (ns, name) = (namespace_of(object), name_of(object).to_owned());
        if let Err(e) = self
            .shared
            .objects
            .merge_patch(t, &ns, &name, &body, CONTROLLER, scope)
        {
            warn!(kind = %t.kind, namespace = %ns, name, error = %e, "simulated write failed");
        }
    }
}
