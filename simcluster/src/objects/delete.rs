//! Deletion: finalizers hold it, owner references cascade it.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    Change, ChangeType, Inner, Key, Objects, comparable, has_finalizers, owner_uids, timestamp,
};
use crate::error::ApiError;
use crate::resources::ResourceType;

impl Objects {
    /// Deletes an object: marks it when finalizers remain, otherwise removes
    /// it and garbage-collects its dependents (or orphans them).
    pub(crate) fn delete(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Key::new(t, ns, name);
        if !inner.objects.contains_key(&key) {
            return Err(ApiError::not_found(t, name));
        }
        Ok(self.delete_key(&mut inner, key, orphan))
    }

    fn delete_key(&self, inner: &mut Inner, key: Key, orphan: bool) -> Value {
        let Some(stored) = inner.objects.get(&key) else {
            return Value::Null;
        };
        if has_finalizers(&stored.value) {
            if stored
                .value
                .pointer("/metadata/deletionTimestamp")
                .is_some()
            {
                return stored.value.clone();
            }
            let mut value = comparable(&stored.value);
            value["metadata"]["deletionTimestamp"] = json!(timestamp());
            value["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let managers = stored.managers.clone();
            let t = inner.registry.by_plural(&key.group, &key.plural).cloned();
            return match t {
                Some(t) => self.commit_existing(inner, &t, key, value, managers),
                None => Value::Null,
            };
        }
        self.remove(inner, key, orphan)
    }

    /// Removes a stored object for good and collects its dependents.
    pub(super) fn remove(&self, inner: &mut Inner, key: Key, orphan: bool) -> Value {
        let Some(stored) = inner.objects.remove(&key) else {
            return Value::Null;
        };
        inner.rv += 1;
        let mut value = stored.value;
        value["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let uid = value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        inner.uids.remove(&uid);
        let change = Change {
            rv: inner.rv,
            kind: ChangeType::Deleted,
            group: key.group,
            plural: key.plural,
            namespace: key.namespace,
            object: Arc::new(value.clone()),
            old: None,
            at: Instant::now(),
        };
        self.record(inner, change);
        self.collect_dependents(inner, &uid, orphan);
        value
    }

    /// Owner-reference garbage collection: a dependent whose owners are all
    /// gone is deleted (recursively); one with a surviving owner, or any
    /// dependent when orphaning, just loses the dangling reference.
    fn collect_dependents(&self, inner: &mut Inner, uid: &str, orphan: bool) {
        let dependents: Vec<Key> = inner
            .objects
            .iter()
            .filter(|(_, s)| owner_uids(&s.value).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            let Some(stored) = inner.objects.get(&key) else {
                continue;
            };
            let owners = owner_uids(&stored.value);
            let survivor = owners
                .iter()
                .any(|u| u != uid && inner.uids.contains_key(u));
            if orphan || survivor {
                let mut value = comparable(&stored.value);
                if let Some(refs) = value
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                }
                let managers = stored.managers.clone();
                if let Some(t) = inner.registry.by_plural(&key.group, &key.plural).cloned() {
                    self.commit_existing(inner, &t, key, value, managers);
                }
            } else {
                self.delete_key(inner, key, false);
            }
        }
    }
}
