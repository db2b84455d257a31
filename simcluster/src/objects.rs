//! The object store: every object as JSON, keyed by resource type,
//! namespace and name, with the API server's bookkeeping — one global
//! `resourceVersion` counter, `uid`/`creationTimestamp`/`generation`,
//! optimistic concurrency, the `/status` split, field ownership,
//! finalizers, owner-reference garbage collection — and a change history
//! that watches replay and follow.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::apply::{self, Managers};
use crate::error::ApiError;
use crate::fields::Scope;
use crate::patch;
use crate::resources::{Registry, ResourceType};
use crate::selectors::Selector;

/// How many changes are kept for watches resuming from an older version.
const HISTORY: usize = 200_000;

/// What happened to an object (a watch event's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed.
    Deleted,
}

/// One committed change, as watches see it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) kind: ChangeType,
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) namespace: String,
    pub(crate) object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub(crate) old: Option<Arc<Value>>,
    /// When the change was committed (tokio time, for watch lag).
    pub(crate) at: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: String,
    plural: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(t: &ResourceType, namespace: &str, name: &str) -> Self {
        Self {
            group: t.group.clone(),
            plural: t.plural.clone(),
            namespace: if t.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }
}

struct Stored {
    value: Value,
    managers: Managers,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Since {
    /// `resourceVersion` absent or `"0"`: the current state, as ADDED events.
    Now,
    /// After this `resourceVersion`.
    Version(u64),
}

/// A watch's starting point: what to replay, then the live feed.
pub(crate) struct Subscription {
    pub(crate) replay: Vec<Arc<Change>>,
    pub(crate) live: broadcast::Receiver<Arc<Change>>,
    pub(crate) rv: u64,
}

#[derive(Default)]
struct Inner {
    registry: Registry,
    objects: BTreeMap<Key, Stored>,
    uids: HashMap<String, Key>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
}

/// The store; shared by the HTTP front, the test accessors and the
/// workload simulator.
pub(crate) struct Objects {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn owner_uids(v: &Value) -> Vec<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn has_finalizers(v: &Value) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// The object without what the server rewrites on every write.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    v
}

/// Everything outside `metadata` and `status`: what `generation` tracks.
fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    v
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

impl Default for Objects {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            changes: broadcast::channel(65_536).0,
        }
    }
}

impl Objects {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a served type.
    pub(crate) fn register(&self, t: ResourceType) {
        self.lock().registry.register(t);
    }

    /// The type a URL addresses.
    pub(crate) fn type_by_url(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<ResourceType> {
        self.lock().registry.by_url(group, version, plural).cloned()
    }

    /// The type named `plural` or `plural.group`.
    pub(crate) fn type_by_name(&self, name: &str) -> Result<ResourceType, ApiError> {
        self.lock()
            .registry
            .by_name(name)
            .cloned()
            .ok_or_else(ApiError::unknown_resource)
    }

    /// The type of an object body.
    pub(crate) fn type_of(&self, object: &Value) -> Result<ResourceType, ApiError> {
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind = object.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return Err(ApiError::bad_request("apiVersion and kind are required"));
        };
        self.lock()
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(ApiError::unknown_resource)
    }

    /// A feed of every committed change (the workload simulator's watch).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// The current `resourceVersion`.
    pub(crate) fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub(crate) fn get(&self, t: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&Key::new(t, ns, name))
            .map(|s| s.value.clone())
            .ok_or_else(|| ApiError::not_found(t, name))
    }

    /// Objects of a type (in `ns`, or everywhere), with the list's version.
    pub(crate) fn list(
        &self,
        t: &ResourceType,
        ns: Option<&str>,
        labels: &Selector,
        fields: &Selector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .range(Key::new(t, ns.unwrap_or_default(), "")..)
            .take_while(|(k, _)| k.group == t.group && k.plural == t.plural)
            .take_while(|(k, _)| ns.is_none_or(|ns| k.namespace == ns))
            .map(|(_, s)| &s.value)
            .filter(|v| labels.matches_labels(v) && fields.matches_fields(v))
            .cloned()
            .collect();
        (items, inner.rv)
    }

    /// The starting point of a watch: the changes to replay and the live feed.
    /// A version older than the kept history is `410 Expired`.
    pub(crate) fn watch(&self, t: &ResourceType, since: Since) -> Result<Subscription, ApiError> {
        let inner = self.lock();
        let live = self.changes.subscribe();
        let replay = match since {
            Since::Now => inner
                .objects
                .range(Key::new(t, "", "")..)
                .take_while(|(k, _)| k.group == t.group && k.plural == t.plural)
                .map(|(k, s)| {
                    Arc::new(Change {
                        rv: inner.rv,
                        kind: ChangeType::Added,
                        group: k.group.clone(),
                        plural: k.plural.clone(),
                        namespace: k.namespace.clone(),
                        object: Arc::new(s.value.clone()),
                        old: None,
                        at: Instant::now(),
                    })
                })
                .collect(),
            Since::Version(rv) => {
                let oldest = inner.history.front().map_or(inner.rv + 1, |c| c.rv);
                if rv + 1 < oldest && rv < inner.rv {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {rv} ({})", oldest - 1),
                    ));
                }
                inner
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.group == t.group && c.plural == t.plural)
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            replay,
            live,
            rv: inner.rv,
        })
    }

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
    fn remove(&self, inner: &mut Inner, key: Key, orphan: bool) -> Value {
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

    fn commit_existing(
        &self,
        inner: &mut Inner,
        t: &ResourceType,
        key: Key,
        value: Value,
        managers: Managers,
    ) -> Value {
        let old = inner.objects.remove(&key);
        self.commit(inner, t, key, old, value, managers)
    }

    /// Stores `value` (a no-op when nothing changed), bumping the version
    /// and `generation`, and records the change; an object whose deletion
    /// waited for finalizers goes once they are gone.
    fn commit(
        &self,
        inner: &mut Inner,
        t: &ResourceType,
        key: Key,
        old: Option<Stored>,
        mut value: Value,
        managers: Managers,
    ) -> Value {
        let unchanged = old
            .as_ref()
            .is_some_and(|o| comparable(&o.value) == comparable(&value) && o.managers == managers);
        if unchanged && let Some(old) = old {
            let same = old.value.clone();
            inner.objects.insert(key, old);
            return same;
        }
        let generation = match &old {
            None => 1,
            Some(old) => {
                let previous = old
                    .value
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                if spec_part(&old.value) == spec_part(&value) {
                    previous
                } else {
                    previous + 1
                }
            }
        };
        inner.rv += 1;
        value["metadata"]["generation"] = json!(generation);
        value["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        value["metadata"]["managedFields"] = managers.to_json(&t.api_version());
        let uid = value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        inner.uids.insert(uid, key.clone());
        let change = Change {
            rv: inner.rv,
            kind: if old.is_some() {
                ChangeType::Modified
            } else {
                ChangeType::Added
            },
            group: key.group.clone(),
            plural: key.plural.clone(),
            namespace: key.namespace.clone(),
            object: Arc::new(value.clone()),
            old: old.map(|o| Arc::new(o.value)),
            at: Instant::now(),
        };
        inner.objects.insert(
            key.clone(),
            Stored {
                value: value.clone(),
                managers,
            },
        );
        self.record(inner, change);
        if value.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&value) {
            return self.remove(inner, key, false);
        }
        value
    }

    fn record(&self, inner: &mut Inner, change: Change) {
        let change = Arc::new(change);
        inner.history.push_back(Arc::clone(&change));
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        // Nobody listening is fine.
        let _ = self.changes.send(change);
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
