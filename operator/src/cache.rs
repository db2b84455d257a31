//! Watch caches of what a reconcile reads, so a pass over a Store in steady
//! state asks the API server for nothing: every applied child kind (the
//! optional kinds the API serves when the operator starts) and the Stores'
//! revision history. The watches of applied kinds are the same ones that
//! trigger reconciles. Secrets are neither watched nor cached: the few the
//! operator generates are read by name (`crate::generated_secrets`). Objects are stored as compact
//! JSON, without `managedFields` and the last-applied annotation (about
//! half of a child's JSON, and nothing a decision reads), LZ4-compressed
//! against a dictionary of earlier objects of the same cache, and unpacked
//! and parsed only when a pass over their Store reads them: parsed
//! `serde_json::Value` trees of a hundred Stores' children would hold
//! several times the memory of their text. The dictionary matters because
//! every Store's children are alike: fifty rendered Stores' objects
//! compressed one by one shrink to 46 % of their JSON, against the
//! dictionaries to about a tenth, the dictionaries included.
//!
//! Left out, and listed per pass as before: an optional kind whose CRD
//! arrived after the start, and pods and ReplicaSets (read only while a
//! rollout is in flight). A cache whose watch fails before its first list
//! completes (RBAC, a CRD gone) answers nothing, so the pass lists instead.
//!
//! A cache can lag the API server by a watch event: a pass may see its own
//! previous writes late. That only costs a redundant server-side apply
//! (a no-op on the server), never a wrong object: every write is the whole
//! desired state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use storekeeper_contract::labels;
use tokio::sync::watch;

use crate::render::ChildKind;
use crate::served::Served;

/// How long a pass waits for a cache's first list before it lists the API
/// itself (a watch slow to start must not hang every reconcile).
pub const READY_WAIT: Duration = Duration::from_secs(10);

/// What a cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Children of one applied kind.
    Child(ChildKind),
    /// ControllerRevisions (the Stores' revision history).
    Revisions,
}

impl Source {
    /// Every source the operator caches: the revision history and each
    /// applied child kind the API serves now (a CRD installed later is
    /// listed). Not Secrets: they are read by name.
    pub fn all(served: &Served) -> impl Iterator<Item = Source> + '_ {
        ChildKind::ALL
            .into_iter()
            .filter(|kind| kind.is_applied() && served.serves(*kind))
            .map(Source::Child)
            .chain([Source::Revisions])
    }

    /// Whether a change to one of these objects wakes its Store: a child
    /// the operator applies does (drift, deletion, a workload's status);
    /// revisions do not (the operator writes them itself, once).
    pub fn triggers(self) -> bool {
        matches!(self, Source::Child(_))
    }

    /// What `kube::Api<DynamicObject>` needs to address the source.
    pub fn api_resource(self) -> ApiResource {
        match self {
            Source::Child(kind) => kind.api_resource(),
            Source::Revisions => {
                ApiResource::erase::<k8s_openapi::api::apps::v1::ControllerRevision>(&())
            }
        }
    }
}

/// A cache's key: what it holds, and its namespace (`None`: cluster-wide).
type Key = (Source, Option<String>);

/// Where a cache's watch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first list is under way.
    Listing,
    /// The first list completed: the cache answers.
    Ready,
    /// The watch failed before its first list completed: passes list.
    Failing,
}

/// One watch's objects: compressed JSON by namespace and name, with the
/// Store each belongs to, and the dictionary they were compressed against.
#[derive(Default)]
struct Objects {
    entries: HashMap<(String, String), Entry>,
    dictionary: Dictionary,
}

struct Entry {
    /// The Store's name (the instance label).
    store: String,
    /// The stripped object, serialised and LZ4-compressed (with its size)
    /// against the first `dictionary` bytes of its cache's dictionary.
    packed: Box<[u8]>,
    dictionary: usize,
}

/// The JSON of earlier objects, which later ones are compressed against.
/// It only grows (an entry records the length it was compressed with, and
/// that prefix never changes) and only with an object of a shape it did
/// not know yet, up to [`Dictionary::MAX`]:
/// LZ4 looks back at most 64 KiB, dictionary and object together.
#[derive(Default)]
struct Dictionary(Vec<u8>);

impl Dictionary {
    /// Largest dictionary: leaves an object of 16 KiB all of it in reach.
    const MAX: usize = 48 * 1024;

    /// An object packed to more than this many bytes, and to more than an
    /// eighth of its size, was new to the dictionary: alike objects of other
    /// Stores pack to a few percent, and small ones to under this.
    const NEW_SHAPE: usize = 256;

    /// `json` compressed, and the dictionary length it needs to unpack;
    /// the object joins the dictionary first when the dictionary did not
    /// know its shape (see [`Dictionary::NEW_SHAPE`]) and it still fits.
    fn pack(&mut self, json: &[u8]) -> (Box<[u8]>, usize) {
        let packed = lz4_flex::block::compress_prepend_size_with_dict(json, &self.0);
        let new_shape = packed.len() > Self::NEW_SHAPE && packed.len() * 8 > json.len();
        if new_shape && self.0.len() + json.len() <= Self::MAX {
            self.0.extend_from_slice(json);
            let packed = lz4_flex::block::compress_prepend_size_with_dict(json, &self.0);
            return (packed.into_boxed_slice(), self.0.len());
        }
        (packed.into_boxed_slice(), self.0.len())
    }

    /// The JSON `packed` held, if it unpacks.
    fn unpack(&self, packed: &[u8], length: usize) -> Option<Vec<u8>> {
        let dictionary = self.0.get(..length)?;
        lz4_flex::block::decompress_size_prepended_with_dict(packed, dictionary).ok()
    }
}

/// One cache: its objects, and where its watch stands.
struct Cache {
    objects: RwLock<Objects>,
    state: watch::Sender<State>,
}

impl Cache {
    fn new() -> Self {
        Self {
            objects: RwLock::new(Objects::default()),
            state: watch::Sender::new(State::Listing),
        }
    }

    /// Applies one watch event. A relist is collected aside and swapped in
    /// whole once complete, so a pass never sees half a list.
    fn apply(&self, event: &Event<DynamicObject>, relist: &mut Option<Objects>) {
        match event {
            Event::Init => *relist = Some(Objects::default()),
            Event::InitApply(o) => {
                if let Some(buffer) = relist.as_mut() {
                    buffer.insert(o);
                }
            }
            Event::InitDone => {
                if let Some(buffer) = relist.take() {
                    *self.objects.write().unwrap_or_else(PoisonError::into_inner) = buffer;
                }
                self.state.send_replace(State::Ready);
            }
            Event::Apply(o) => self
                .objects
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(o),
            Event::Delete(o) => {
                let key = (o.namespace().unwrap_or_default(), o.name_any());
                self.objects
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .remove(&key);
            }
        }
    }

    /// The watch failed: until a first list completes, passes list. A cache
    /// that was ready keeps answering while its watch recovers (as it
    /// would lagging a watch event).
    fn failed(&self) {
        self.state.send_if_modified(|state| {
            let failing = *state == State::Listing;
            if failing {
                *state = State::Failing;
            }
            failing
        });
    }

    /// The objects of Store `store` in `ns`, parsed.
    fn of(&self, ns: &str, store: &str) -> Vec<Value> {
        let objects = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        objects
            .entries
            .iter()
            .filter(|((namespace, _), entry)| namespace == ns && entry.store == store)
            .filter_map(|(_, entry)| {
                let json = objects.dictionary.unpack(&entry.packed, entry.dictionary)?;
                serde_json::from_slice(&json).ok()
            })
            .collect()
    }
}

impl Objects {
    fn insert(&mut self, object: &DynamicObject) {
        let Some(store) = object.labels().get(labels::INSTANCE).cloned() else {
            return;
        };
        let Ok(json) = serde_json::to_vec(object) else {
            return;
        };
        let key = (object.namespace().unwrap_or_default(), object.name_any());
        let (packed, dictionary) = self.dictionary.pack(&json);
        self.entries.insert(
            key,
            Entry {
                store,
                packed,
                dictionary,
            },
        );
    }
}

/// Every cache this process runs.
#[derive(Default)]
pub struct Caches {
    caches: RwLock<BTreeMap<Key, Arc<Cache>>>,
}

impl Caches {
    /// Starts caching `source` in `namespace` (`None`: every namespace):
    /// returns the watch stream that fills the cache as it is polled, each
    /// object it touched passed on (a reconcile trigger, or dropped). A
    /// failing watch is retried with kube's default backoff.
    pub fn start(
        &self,
        client: &Client,
        source: Source,
        namespace: Option<&str>,
    ) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
        let cache = Arc::new(Cache::new());
        self.caches
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((source, namespace.map(str::to_owned)), Arc::clone(&cache));
        let mut relist = None;
        watch(client, source, namespace)
            .default_backoff()
            .filter_map(move |event| {
                let touched = match event {
                    Ok(event) => {
                        let event = event.modify(strip);
                        cache.apply(&event, &mut relist);
                        match event {
                            Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => Some(Ok(o)),
                            Event::Init | Event::InitDone => None,
                        }
                    }
                    Err(e) => {
                        cache.failed();
                        Some(Err(e))
                    }
                };
                futures::future::ready(touched)
            })
    }

    /// The cached objects of `source` that belong to Store `store` in `ns`,
    /// as JSON; `None` when nothing caches them (the caller lists instead),
    /// the cache's watch is failing, or it has not finished its first list
    /// within [`READY_WAIT`].
    pub async fn objects(&self, source: Source, ns: &str, store: &str) -> Option<Vec<Value>> {
        let cache = {
            let caches = self.caches.read().unwrap_or_else(PoisonError::into_inner);
            caches
                .get(&(source, Some(ns.to_owned())))
                .or_else(|| caches.get(&(source, None)))
                .cloned()?
        };
        let mut state = cache.state.subscribe();
        let settled = tokio::time::timeout(READY_WAIT, state.wait_for(|s| *s != State::Listing))
            .await
            .ok()?
            .ok()
            .map(|s| *s)?;
        (settled == State::Ready).then(|| cache.of(ns, store))
    }
}

/// The watch of the operator's own objects of `source` in `namespace`
/// (`None`: every namespace).
fn watch(
    client: &Client,
    source: Source,
    namespace: Option<&str>,
) -> BoxStream<'static, watcher::Result<Event<DynamicObject>>> {
    let resource = source.api_resource();
    let ours = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::STOREKEEPER
    ));
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    watcher::watcher(api, ours).boxed()
}

/// Drops what no decision reads before an object is cached.
fn strip(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn managed_fields_and_last_applied_are_not_cached() {
        let mut o = object(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "shop-config", "namespace": "shop",
                "managedFields": [{"manager": "storekeeper", "operation": "Apply"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "storekeeper.dev/applied-hash": "abc"}},
            "data": {"a": "b"},
        }));
        strip(&mut o);
        let v = serde_json::to_value(&o).unwrap();
        assert!(v["metadata"].get("managedFields").is_none());
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"storekeeper.dev/applied-hash": "abc"})
        );
        assert_eq!(v["data"], json!({"a": "b"}));
    }

    fn config_map(name: &str, store: &str, data: &str) -> DynamicObject {
        object(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"app.kubernetes.io/instance": store}},
            "data": {"a": data},
        }))
    }

    fn names(cache: &Cache, store: &str) -> Vec<String> {
        let mut names: Vec<String> = cache
            .of("shop", store)
            .iter()
            .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_cache_follows_its_watch_and_swaps_a_relist_in_whole() {
        let cache = Cache::new();
        let mut relist = None;
        cache.apply(&Event::Init, &mut relist);
        cache.apply(&Event::InitApply(config_map("a", "shop", "1")), &mut relist);
        assert!(names(&cache, "shop").is_empty(), "half a list is not shown");
        assert_eq!(*cache.state.borrow(), State::Listing);
        cache.apply(
            &Event::InitApply(config_map("b", "other", "1")),
            &mut relist,
        );
        cache.apply(&Event::InitDone, &mut relist);
        assert_eq!(*cache.state.borrow(), State::Ready);
        assert_eq!(names(&cache, "shop"), ["a"]);
        assert_eq!(names(&cache, "other"), ["b"]);
        assert!(cache.of("elsewhere", "shop").is_empty(), "by namespace too");

        cache.apply(&Event::Apply(config_map("a", "shop", "2")), &mut relist);
        assert_eq!(cache.of("shop", "shop")[0]["data"]["a"], json!("2"));
        cache.apply(&Event::Apply(config_map("c", "shop", "1")), &mut relist);
        assert_eq!(names(&cache, "shop"), ["a", "c"]);
        cache.apply(&Event::Delete(config_map("c", "shop", "1")), &mut relist);
        assert_eq!(names(&cache, "shop"), ["a"]);

        // A relist replaces everything: what it no longer holds is gone.
        cache.apply(&Event::Init, &mut relist);
        cache.apply(&Event::InitApply(config_map("d", "shop", "1")), &mut relist);
        assert_eq!(names(&cache, "shop"), ["a"]);
        cache.apply(&Event::InitDone, &mut relist);
        assert_eq!(names(&cache, "shop"), ["d"]);
        assert!(names(&cache, "other").is_empty());
    }

    #[test]
    fn fifty_rendered_stores_pack_to_a_tenth_and_every_object_unpacks() {
        let mut caches: BTreeMap<ChildKind, Cache> = BTreeMap::new();
        let (mut raw, mut alone) = (0, 0);
        let mut rendered = Vec::new();
        for i in 0..50 {
            let mut store = crate::fixtures::store(&format!("shop-{i}"));
            store.metadata.namespace = Some(format!("ns-{i}"));
            store.metadata.uid = Some(format!("0b1c2d3e-0000-4000-8000-{i:012}"));
            for o in crate::render::render(&store).unwrap().objects {
                let json = serde_json::to_vec(o.value.as_ref()).unwrap();
                raw += json.len();
                alone += lz4_flex::compress_prepend_size(&json).len();
                let cache = caches.entry(o.kind).or_insert_with(Cache::new);
                cache
                    .objects
                    .write()
                    .unwrap()
                    .insert(&object(Value::clone(&o.value)));
                rendered.push((format!("ns-{i}"), format!("shop-{i}"), o));
            }
        }
        let packed: usize = caches
            .values()
            .map(|cache| {
                let objects = cache.objects.read().unwrap();
                let entries: usize = objects.entries.values().map(|e| e.packed.len()).sum();
                entries + objects.dictionary.0.len()
            })
            .sum();
        // 2026-12-03: 6.19 MB of JSON, 2.85 MB compressed one by one,
        // 0.64 MB against the dictionaries (theirs included).
        assert!(
            packed * 7 < raw && packed * 3 < alone,
            "packed {packed} bytes of {raw} (alone {alone}): the dictionaries do not pay"
        );
        for (ns, store, o) in rendered {
            let cache = &caches[&o.kind];
            let got = cache.of(&ns, &store);
            let live = got
                .iter()
                .find(|v| v["metadata"]["name"] == o.name.as_str())
                .unwrap_or_else(|| panic!("{:?} {ns}/{} did not unpack", o.kind, o.name));
            assert_eq!(live, o.value.as_ref(), "{:?} {ns}/{}", o.kind, o.name);
        }
    }

    #[test]
    fn applied_kinds_wake_their_store_and_revisions_do_not() {
        assert!(Source::Child(ChildKind::Deployment).triggers());
        assert!(!Source::Revisions.triggers());
    }

    #[test]
    fn secrets_are_never_cached_and_optional_kinds_only_where_served() {
        let served = Served::default();
        let sources: Vec<Source> = Source::all(&served).collect();
        assert!(!sources.contains(&Source::Child(ChildKind::Secret)));
        assert!(!Source::all(&Served::all()).any(|s| s == Source::Child(ChildKind::Secret)));
        assert!(sources.contains(&Source::Child(ChildKind::ConfigMap)));
        assert!(sources.contains(&Source::Revisions));
        assert!(!sources.contains(&Source::Child(ChildKind::PodMonitor)));
    }

    #[tokio::test]
    async fn nothing_cached_means_the_caller_lists() {
        let caches = Caches::default();
        assert!(
            caches
                .objects(Source::Child(ChildKind::Deployment), "shop", "shop")
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_watch_failing_before_its_first_list_makes_passes_list_at_once() {
        let cache = Arc::new(Cache::new());
        let caches = Caches::default();
        caches.caches.write().unwrap().insert(
            (Source::Child(ChildKind::Deployment), None),
            Arc::clone(&cache),
        );
        let source = Source::Child(ChildKind::Deployment);
        cache.failed();
        let started = std::time::Instant::now();
        assert!(caches.objects(source, "shop", "shop").await.is_none());
        assert!(
            started.elapsed() < READY_WAIT,
            "no wait for a failing watch"
        );
        // Once a list completes the cache answers, and a later failure
        // (a watch being re-established) does not take it away.
        let mut relist = None;
        cache.apply(&Event::Init, &mut relist);
        cache.apply(&Event::InitDone, &mut relist);
        cache.failed();
        assert_eq!(
            caches.objects(source, "shop", "shop").await,
            Some(Vec::new())
        );
    }
}
