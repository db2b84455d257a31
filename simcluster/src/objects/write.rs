//! Writes: create, replace, merge patch and server-side apply, each
//! checked against the URL and the stored object, then committed.

use serde_json::{Value, json};

use super::{Key, Objects, comparable, name_of, timestamp};
use crate::apply;
use crate::apply::Managers;
use crate::error::ApiError;
use crate::fields::Scope;
use crate::patch;
use crate::resources::ResourceType;

impl Objects {
    /// Creates an object (POST). `409 AlreadyExists` when the name is taken.
    pub(crate) fn create(
        &self,
        t: &ResourceType,
        ns: &str,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let mut value = prepare(t, ns, body)?;
        if name_of(&value).is_empty() {
            let prefix = value
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid("metadata.name or generateName is required"))?
                .to_owned();
            let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_owned();
            value["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        let key = Key::new(t, ns, name_of(&value));
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(t, &key.name));
        }
        let value = stamp_new(t, value);
        let scope = Scope::Main {
            status_subresource: t.status_subresource,
        };
        let mut managers = Managers::default();
        managers.record_update(None, &value, manager, scope);
        Ok(self.commit(&mut inner, t, key, None, value, managers))
    }

    /// Replaces an object (PUT) or its status. A stale
    /// `metadata.resourceVersion` in the body is `409 Conflict`.
    pub(crate) fn replace(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        manager: &str,
        scope: Scope,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Key::new(t, ns, name);
        let old = inner
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(t, name))?;
        let mut value = with_name(prepare(t, ns, body)?, name);
        if name_of(&value) != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let expected = value
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty());
        let current = old.value.pointer("/metadata/resourceVersion");
        if expected.is_some_and(|rv| Some(&json!(rv)) != current) {
            return Err(ApiError::conflict(t, name));
        }
        carry_server_fields(&old.value, &mut value);
        let value = split_status(&old.value, comparable(&value), scope);
        let mut managers = old.managers.clone();
        managers.record_update(Some(&old.value), &value, manager, scope);
        Ok(self.commit_existing(&mut inner, t, key, value, managers))
    }

    /// Applies a JSON merge patch to an object or its status.
    pub(crate) fn merge_patch(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        patch_body: &Value,
        manager: &str,
        scope: Scope,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = Key::new(t, ns, name);
        let old = inner
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(t, name))?;
        let mut value = comparable(&old.value);
        patch::merge(&mut value, patch_body);
        carry_server_fields(&old.value, &mut value);
        let value = split_status(&old.value, value, scope);
        let mut managers = old.managers.clone();
        managers.record_update(Some(&old.value), &value, manager, scope);
        Ok(self.commit_existing(&mut inner, t, key, value, managers))
    }

    /// Server-side applies `config` as `manager` (creating the object if it
    /// is missing). A no-op apply changes nothing, not even the version.
    #[allow(clippy::too_many_arguments)] // one per part of an apply request
    pub(crate) fn apply(
        &self,
        t: &ResourceType,
        ns: &str,
        name: &str,
        config: Value,
        manager: &str,
        force: bool,
        scope: Scope,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let config = with_name(prepare(t, ns, config)?, name);
        if name_of(&config) != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let key = Key::new(t, ns, name);
        let old = inner.objects.get(&key);
        if old.is_none() && scope == Scope::Status {
            return Err(ApiError::not_found(t, name));
        }
        let live = old.map(|s| comparable(&s.value));
        let managers = old.map(|s| s.managers.clone()).unwrap_or_default();
        let (mut value, managers) =
            apply::apply(live.as_ref(), &managers, manager, &config, scope, force).map_err(
                |conflicts| {
                    let list: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
                    ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Apply failed with {} conflict(s): {}",
                            list.len(),
                            list.join(", ")
                        ),
                    )
                },
            )?;
        if let Some(old) = old {
            let old_value = old.value.clone();
            carry_server_fields(&old_value, &mut value);
            return Ok(self.commit_existing(&mut inner, t, key, value, managers));
        }
        value["metadata"]["name"] = json!(name);
        let value = stamp_new(t, prepare(t, ns, value)?);
        Ok(self.commit(&mut inner, t, key, None, value, managers))
    }
}

/// Keeps `old`'s `status` (main writes) or only takes `candidate`'s
/// `status` (status writes), per the kind's subresources.
fn split_status(old: &Value, mut candidate: Value, scope: Scope) -> Value {
    let keep_from = |target: &mut Value, source: &Value| match source.get("status") {
        Some(s) => target["status"] = s.clone(),
        None => {
            if let Some(map) = target.as_object_mut() {
                map.remove("status");
            }
        }
    };
    match scope {
        Scope::Status => {
            let mut result = old.clone();
            keep_from(&mut result, &candidate);
            result
        }
        Scope::Main {
            status_subresource: true,
        } => {
            keep_from(&mut candidate, old);
            candidate
        }
        Scope::Main { .. } => candidate,
    }
}

/// Copies the server-owned metadata of `old` onto `new`.
fn carry_server_fields(old: &Value, new: &mut Value) {
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove(field);
                }
            }
        }
    }
}

/// Checks a request body against the URL and fills `apiVersion`, `kind`
/// and the namespace. A client-sent `resourceVersion` is kept for the
/// caller to check; it and `managedFields` are dropped by `comparable`.
fn prepare(t: &ResourceType, ns: &str, mut body: Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    for (field, want) in [("apiVersion", t.api_version()), ("kind", t.kind.clone())] {
        match body.get(field).and_then(Value::as_str) {
            Some(have) if have != want => {
                return Err(ApiError::bad_request(format!(
                    "{field} {have:?} does not match the URL ({want:?})"
                )));
            }
            Some(_) => {}
            None => body[field] = json!(want),
        }
    }
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = json!({});
    }
    if t.namespaced {
        match body.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(have) if have != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => body["metadata"]["namespace"] = json!(ns),
        }
    }
    Ok(body)
}

/// The body with `metadata.name` taken from the URL when it has none.
fn with_name(mut body: Value, name: &str) -> Value {
    if name_of(&body).is_empty() {
        body["metadata"]["name"] = json!(name);
    }
    body
}

/// What the server sets on create, whatever the client sent: a new `uid`,
/// `creationTimestamp`, no deletion marks, and (for kinds with `/status`)
/// no status.
fn stamp_new(t: &ResourceType, mut value: Value) -> Value {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            meta.remove(field);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(timestamp()));
    }
    if t.status_subresource
        && let Some(map) = value.as_object_mut()
    {
        map.remove("status");
    }
    comparable(&value)
}
