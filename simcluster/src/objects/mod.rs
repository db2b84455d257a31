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

mod delete;
mod write;

use crate::apply::Managers;
use crate::error::ApiError;
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

    /// Every type served at `group`/`version` (discovery).
    pub(crate) fn types_in(&self, group: &str, version: &str) -> Vec<ResourceType> {
        self.lock().registry.in_group_version(group, version)
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
