//! Test-only builders: a valid Store and variations of it.

use kube::api::ObjectMeta;

use crate::api::{External, Phase, Store, StoreSpec, StoreStatus};

/// A valid Store with every data store managed, as it would come from the API.
pub fn store(name: &str) -> Store {
    let spec: StoreSpec = serde_json::from_value(serde_json::json!({
        "version": "1.2.3",
        "ingress": { "host": "shop.example.com" },
    }))
    .unwrap();
    let mut s = Store::new(name, spec);
    s.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("shop".to_owned()),
        uid: Some("0b1c2d3e-0000-4000-8000-000000000001".to_owned()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    s
}

impl Store {
    /// The same Store with Redis external.
    #[must_use]
    pub fn with_external_redis(mut self) -> Self {
        self.spec.redis.managed = None;
        self.spec.redis.external = Some(External {
            secret_name: "my-redis".into(),
        });
        self
    }

    /// The same Store, paused.
    #[must_use]
    pub fn paused(mut self) -> Self {
        self.spec.paused = true;
        self
    }

    /// The same Store with a spec the schema would reject (`latest`).
    #[must_use]
    pub fn invalid(mut self) -> Self {
        self.spec.version = "latest".into();
        self
    }
}

// ---------------------------------------------------------------------------
// A mock API server in the controller-rs `ApiServerVerifier` style: the test
// describes the exact sequence of requests a reconcile must make (method,
// path, query, body), the verifier checks each one and answers it. A missing
// request times out; an extra one finds the verifier gone and fails the
// reconcile.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use crate::api::RolloutState;
use crate::controller::Context;
use crate::metrics::Metrics;
use crate::pod_metrics::MetricsReader;
use crate::reconcile::{Observed, status};
use crate::render::{ChildKind, Rendered, render};
use crate::rollout::{Cluster, Decision, Input, Revision, Settings, decide, in_flight, revision};

/// What a check on a request body receives.
type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// One expected request and the answer to give.
pub struct Expect {
    /// HTTP method.
    pub method: Method,
    /// URI path (no query).
    pub path: String,
    /// Substrings the query must contain.
    pub query: Vec<&'static str>,
    /// Checks on the JSON body.
    pub body: Option<BodyCheck>,
    /// Status code of the answer.
    pub status: StatusCode,
    /// Answer body; `None` echoes the request body.
    pub reply: Option<Value>,
}

impl Expect {
    /// A request answered `200 OK` with its own body echoed back.
    pub fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            status: StatusCode::OK,
            reply: None,
        }
    }
}

/// A request as the verifier saw it (for counting).
#[derive(Clone, Debug)]
pub struct Seen {
    /// HTTP method.
    pub method: Method,
    /// URI path.
    pub path: String,
}

/// Drives the mock side of the client.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// The reconcile behaviours under test, one per variant.
pub enum Scenario {
    /// The requests of a first reconcile: read each generated Secret by
    /// name and list every applied kind (all empty), create each generated
    /// Secret, apply the first step's objects, write status, publish Events.
    FirstRun(Store),
    /// A Store's first pass in this process: its generated Secrets read by
    /// name and its children listed, answered from `observed`, then
    /// exactly `writes` (in order).
    Observed {
        /// The Store being reconciled.
        store: Store,
        /// What the lists return.
        observed: Observed,
        /// The write requests that must follow.
        writes: Vec<Expect>,
    },
    /// Only the given requests (e.g. an invalid Store: status + Event).
    Exactly(Vec<Expect>),
}

/// Path of a child kind's collection in namespace `shop`.
pub fn collection(kind: ChildKind) -> String {
    let prefix = if kind.group().is_empty() {
        format!("/api/{}", kind.version())
    } else {
        format!("/apis/{}", kind.api_version())
    };
    format!("{prefix}/namespaces/shop/{}", kind.plural())
}

/// Expect a LIST of `kind`, answered with the `observed` objects of that kind.
pub fn expect_list(kind: ChildKind, observed: &Observed) -> Expect {
    let items: Vec<Value> = observed
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, _, v)| v.clone())
        .collect();
    let mut e = Expect::new(Method::GET, collection(kind));
    e.query = vec!["labelSelector=app.kubernetes.io%2Finstance%3Dshop"];
    e.reply = Some(json!({
        "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items,
    }));
    e
}

/// Expect a server-side apply of one desired object, with exactly its body.
pub fn expect_apply(kind: ChildKind, name: &str, body: Value) -> Expect {
    let mut e = Expect::new(Method::PATCH, format!("{}/{name}", collection(kind)));
    e.query = vec!["fieldManager=storekeeper", "force=true"];
    e.body = Some(Box::new(move |got| assert_eq!(got, &body, "apply body")));
    e
}

/// Expect a create of a generated Secret with the listed keys, owned by
/// the Store or not.
pub fn expect_secret(name: &str, keys: Vec<String>, owned: bool) -> Expect {
    let mut e = Expect::new(Method::POST, collection(ChildKind::Secret));
    let name = name.to_owned();
    e.body = Some(Box::new(move |got| {
        assert_eq!(got["metadata"]["name"], json!(name));
        assert_eq!(got["immutable"], json!(true));
        assert_eq!(
            got["metadata"]["ownerReferences"].is_array(),
            owned,
            "ownership of {name}"
        );
        let data = got["data"].as_object().expect("secret data");
        let mut have: Vec<&String> = data.keys().collect();
        have.sort();
        let mut want: Vec<&String> = keys.iter().collect();
        want.sort();
        assert_eq!(have, want, "keys of {name}");
    }));
    e
}

/// The LISTs every reconcile of a valid Store makes (one per applied kind).
pub fn expect_lists(observed: &Observed) -> Vec<Expect> {
    expect_lists_of(&crate::served::Served::all(), observed)
}

/// Expect one LIST per applied kind `served` serves, answered from `observed`.
pub fn expect_lists_of(served: &crate::served::Served, observed: &Observed) -> Vec<Expect> {
    ChildKind::ALL
        .iter()
        .filter(|k| k.is_applied() && served.serves(**k))
        .map(|k| expect_list(*k, observed))
        .collect()
}

/// Expect a metadata-only GET of each Secret Store `shop` may generate,
/// answered from `observed` (its owner references) or 404.
pub fn expect_secret_reads(observed: &Observed) -> Vec<Expect> {
    crate::render::secrets::generated_names("shop")
        .into_iter()
        .map(|name| {
            let e = Expect::new(
                Method::GET,
                format!("{}/{name}", collection(ChildKind::Secret)),
            );
            match observed.get(ChildKind::Secret, &name) {
                Some(live) => expect_metadata(e, live),
                None => not_found(e),
            }
        })
        .collect()
}

/// Answers `e` with the metadata of `live`, as a metadata-only GET.
pub fn expect_metadata(mut e: Expect, live: &Value) -> Expect {
    e.reply = Some(
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": live["metadata"]}),
    );
    e
}

/// The reads of a Store's first pass in this process: its generated
/// Secrets by name, then one LIST per applied kind.
pub fn expect_reads(observed: &Observed) -> Vec<Expect> {
    let mut v = expect_secret_reads(observed);
    v.extend(expect_lists(observed));
    v
}

/// Expect a GET of the user's Secret `name`: answered with those keys, or 404.
pub fn expect_user_secret(name: &str, keys: Option<&[&str]>) -> Expect {
    let mut e = Expect::new(
        Method::GET,
        format!("{}/{name}", collection(ChildKind::Secret)),
    );
    if let Some(keys) = keys {
        let data: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), json!("c2VjcmV0")))
            .collect();
        e.reply = Some(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "shop"}, "data": data}));
        e
    } else {
        not_found(e)
    }
}

/// Answers `e` with a 404 Status.
pub fn not_found(mut e: Expect) -> Expect {
    e.status = StatusCode::NOT_FOUND;
    e.reply = Some(
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "message": "not found"}),
    );
    e
}

/// Expect a prune (DELETE) of one child.
pub fn expect_delete(kind: ChildKind, name: &str) -> Expect {
    let mut e = Expect::new(Method::DELETE, format!("{}/{name}", collection(kind)));
    e.reply = Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    e
}

/// Expect a status write (server-side apply on the status subresource) whose
/// status passes `check`; the answer is `store` with that status.
pub fn expect_status(store: &Store, check: impl Fn(&StoreStatus) + Send + 'static) -> Expect {
    let path = format!(
        "/apis/storekeeper.dev/v1alpha1/namespaces/shop/stores/{}/status",
        store.name_any()
    );
    let mut e = Expect::new(Method::PATCH, path);
    e.query = vec!["fieldManager=storekeeper", "force=true"];
    e.body = Some(Box::new(move |got| {
        let s: StoreStatus = serde_json::from_value(got["status"].clone()).expect("status body");
        check(&s);
    }));
    e.reply = Some(serde_json::to_value(store).unwrap());
    e
}

/// Expect an Event with the given type and reason.
pub fn expect_event(type_: &'static str, reason: &'static str) -> Expect {
    let mut e = Expect::new(
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/shop/events".into(),
    );
    e.body = Some(Box::new(move |got| {
        assert_eq!(got["type"], json!(type_));
        assert_eq!(got["reason"], json!(reason));
    }));
    e
}

/// Path of the Store's ControllerRevisions in namespace `shop`.
pub fn revisions_path() -> String {
    "/apis/apps/v1/namespaces/shop/controllerrevisions".to_owned()
}

/// Expect the LIST of the Store's ControllerRevisions, answered with one
/// per store given (numbered in order).
pub fn expect_history(stores: &[&Store]) -> Expect {
    let items: Vec<Value> = stores
        .iter()
        .zip(1..)
        .map(|(s, n)| serde_json::to_value(revision::controller_revision(s, n).unwrap()).unwrap())
        .collect();
    let mut e = Expect::new(Method::GET, revisions_path());
    e.query = vec!["labelSelector=app.kubernetes.io%2Finstance%3Dshop"];
    e.reply = Some(json!({"apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": "1"}, "items": items}));
    e
}

/// Expect the ControllerRevision of `store`'s spec to be created as `number`.
pub fn expect_record(store: &Store, number: i64) -> Expect {
    let mut e = Expect::new(Method::POST, revisions_path());
    let name = revision::name(&store.name_any(), &revision::id(&store.spec));
    e.body = Some(Box::new(move |got| {
        assert_eq!(got["metadata"]["name"], json!(name));
        assert_eq!(got["revision"], json!(number));
        assert_eq!(
            got["metadata"]["ownerReferences"][0]["kind"],
            json!("Store")
        );
    }));
    e
}

/// Expect the LISTs of pods and ReplicaSets a rollout in flight reads
/// (answered empty).
pub fn expect_rollout_reads() -> Vec<Expect> {
    [
        "/api/v1/namespaces/shop/pods",
        "/apis/apps/v1/namespaces/shop/replicasets",
    ]
    .into_iter()
    .map(|path| {
        let mut e = Expect::new(Method::GET, path.to_owned());
        e.query = vec!["labelSelector=app.kubernetes.io%2Finstance%3Dshop"];
        e.reply = Some(json!({"apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": "1"}, "items": []}));
        e
    })
    .collect()
}

/// What the rollout decides for `store` with nothing in the cluster yet.
pub fn first_decision(store: &Store) -> Decision {
    let rendered = render(store).unwrap();
    let id = revision::id(&store.spec);
    let settings = Settings::from_spec(&store.spec).unwrap();
    let empty = Observed::default();
    decide(&Input {
        target: Revision {
            id: &id,
            version: &store.spec.version,
            rendered: &rendered,
        },
        stable: None,
        previous: None,
        cluster: Cluster {
            children: &empty,
            pods: &[],
            replica_sets: &[],
        },
        settings: &settings,
        baseline: None,
        samples: None,
        now: chrono::Utc::now(),
    })
}

/// The requests of a first reconcile up to (not including) the applies:
/// history, record, Secret reads, lists, rollout reads, Secret creates.
pub fn first_reads_and_secrets(store: &Store) -> Vec<Expect> {
    let rendered = render(store).unwrap();
    let empty = Observed::default();
    let mut v = vec![expect_history(&[]), expect_record(store, 1)];
    v.extend(expect_reads(&empty));
    v.extend(expect_rollout_reads());
    v.extend(secret_creates(&rendered));
    v
}

/// Expect a request to `path` and fail it with `code`.
pub fn expect_failure(method: Method, path: String, code: u16) -> Expect {
    let mut e = Expect::new(method, path);
    e.status = StatusCode::from_u16(code).unwrap();
    e.reply = Some(
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "injected", "reason": "InternalError", "code": code}),
    );
    e
}

impl Scenario {
    fn into_expectations(self) -> Vec<Expect> {
        match self {
            Scenario::FirstRun(store) => {
                let mut v = first_reads_and_secrets(&store);
                v.extend(
                    first_decision(&store)
                        .desired
                        .objects
                        .iter()
                        .filter(|o| o.step == crate::render::Step::Foundation)
                        .map(|o| expect_apply(o.kind, &o.name, Value::clone(&o.value))),
                );
                v.push(expect_status(&store, |s| {
                    assert_eq!(s.phase, Some(Phase::Progressing));
                    assert_eq!(s.observed_generation, Some(1));
                    assert_eq!(s.ready.as_deref(), Some("0/5"));
                    assert_eq!(s.url.as_deref(), Some("http://shop.example.com"));
                    let rollout = s.rollout.as_ref().unwrap();
                    assert_eq!(rollout.state, RolloutState::Progressing);
                    assert_eq!(rollout.stable_revision, None);
                    let reconciling = s.condition("Reconciling").unwrap();
                    assert_eq!(reconciling.status, "True");
                    assert_eq!(reconciling.observed_generation, Some(1));
                }));
                v.push(expect_event("Normal", "RolloutStarted"));
                v.push(expect_event("Normal", "StepStarted"));
                v
            }
            Scenario::Observed {
                store,
                observed,
                writes,
            } => {
                let mut v = vec![expect_history(&[&store])];
                v.extend(expect_reads(&observed));
                let id = revision::id(&store.spec);
                let rollout = store.status.as_ref().and_then(|s| s.rollout.as_ref());
                if in_flight(rollout, &id) {
                    v.extend(expect_rollout_reads());
                }
                v.extend(writes);
                v
            }
            Scenario::Exactly(v) => v,
        }
    }
}

/// The Secret creates a first run makes.
pub fn secret_creates(rendered: &Rendered) -> Vec<Expect> {
    rendered
        .secrets
        .iter()
        .map(|s| expect_secret(&s.name, s.kind.keys(), s.owned))
        .collect()
}

impl ApiServerVerifier {
    /// Wraps the mock side of a `tower_test` pair.
    pub fn from_handle(handle: Handle<Request<Body>, Response<Body>>) -> Self {
        Self(handle)
    }

    /// Serves the scenario's requests in order; returns what it saw.
    pub fn run(self, scenario: Scenario) -> JoinHandle<Vec<Seen>> {
        let expectations = scenario.into_expectations();
        let mut handle = self.0;
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for (i, e) in expectations.into_iter().enumerate() {
                let (request, send) =
                    tokio::time::timeout(Duration::from_secs(2), handle.next_request())
                        .await
                        .unwrap_or_else(|_| {
                            panic!("request #{i} ({} {}) never came", e.method, e.path)
                        })
                        .expect("service not called");
                let uri = request.uri().clone();
                assert_eq!(request.method(), e.method, "method of request #{i} ({uri})");
                assert_eq!(uri.path(), e.path, "path of request #{i}");
                let query = uri.query().unwrap_or_default().to_owned();
                for q in &e.query {
                    assert!(query.contains(q), "query of request #{i} ({uri}) lacks {q}");
                }
                seen.push(Seen {
                    method: e.method.clone(),
                    path: e.path.clone(),
                });
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                if let Some(check) = &e.body {
                    check(&body);
                }
                let reply = e.reply.unwrap_or(body);
                send.send_response(
                    Response::builder()
                        .status(e.status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
            seen
        })
    }
}

/// A metrics reader for tests whose pods never answer.
pub struct NoPodMetrics;

impl MetricsReader for NoPodMetrics {
    fn read<'a>(&'a self, _url: &'a str) -> futures::future::BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }
}

impl Context {
    /// A context whose client talks to a mock API server, for a cluster
    /// that runs the Prometheus Operator (every optional kind served).
    pub fn test() -> (Arc<Self>, ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "shop");
        let mut ctx = Context::new(client, Metrics::default(), None, Arc::new(NoPodMetrics));
        ctx.served = crate::served::Served::all();
        (Arc::new(ctx), ApiServerVerifier(handle))
    }
}

/// Waits for the verifier, failing if it is stuck, and checks that every
/// request it saw is allowed by the RBAC rules the chart installs — so the
/// one list in `crate::rbac` cannot miss a verb the code uses.
pub async fn finish(verifier: JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    let seen = tokio::time::timeout(Duration::from_secs(3), verifier)
        .await
        .expect("verifier timed out")
        .expect("verifier failed");
    let mut rules = crate::rbac::cluster_rules();
    rules.extend(crate::rbac::lease_rules());
    for delegate in crate::render::Delegate::ALL {
        rules.extend(crate::rbac::delegation_rules(delegate));
    }
    for s in &seen {
        let (group, resource, verb) = authz(s);
        let allowed = rules.iter().any(|r| {
            r.api_groups.as_ref().is_some_and(|g| g.contains(&group))
                && r.resources
                    .as_ref()
                    .is_some_and(|res| res.contains(&resource))
                && r.verbs.contains(&verb.to_owned())
        });
        assert!(
            allowed,
            "RBAC does not allow {verb} {group}/{resource} ({} {})",
            s.method, s.path
        );
    }
    seen
}

/// (API group, resource[/subresource], verb) of a request, as the authorizer sees it.
fn authz(s: &Seen) -> (String, String, &'static str) {
    let parts: Vec<&str> = s.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => panic!("unexpected path {}", s.path),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("unexpected path {}", s.path),
    };
    let verb = match s.method {
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => panic!("unexpected method {}", s.method),
    };
    (group, resource, verb)
}

/// The cluster after a successful rollout of `store`: every desired object
/// present (as the API server would return it) and ready, every generated
/// Secret present.
pub fn converged(store: &Store) -> Observed {
    let rendered = render(store).unwrap();
    let mut observed = Observed::default();
    for o in &rendered.objects {
        let mut v = Value::clone(&o.value);
        v["metadata"]["generation"] = json!(1);
        v["metadata"]["uid"] = json!(format!("uid-{}", o.name));
        v["metadata"]["resourceVersion"] = json!("7");
        match o.kind {
            ChildKind::Deployment => {
                let n = v["spec"]["replicas"].clone();
                v["status"] = json!({"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                    "availableReplicas": n, "readyReplicas": n});
            }
            ChildKind::StatefulSet => {
                v["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                    "currentRevision": "r1", "updateRevision": "r1"});
            }
            _ => {}
        }
        observed.insert(o.kind, v);
    }
    let owner = json!([{"apiVersion": "storekeeper.dev/v1alpha1", "kind": "Store", "name": store.name_any(),
        "uid": store.uid().unwrap(), "controller": true, "blockOwnerDeletion": true}]);
    for s in &rendered.secrets {
        observed.insert(
            ChildKind::Secret,
            json!({"metadata": {"name": s.name, "namespace": "shop",
            "ownerReferences": if s.owned { owner.clone() } else { json!(null) }}}),
        );
    }
    observed
}

/// `store` carrying the status the operator would compute for `observed`
/// once its revision rolled out completely.
pub fn with_status(mut store: Store, observed: &Observed) -> Store {
    let rendered = render(&store).unwrap();
    let id = revision::id(&store.spec);
    let view = status::RolloutView {
        rollout: Some(crate::api::RolloutStatus::new(
            RolloutState::Complete,
            &id,
            Some(&id),
        )),
        current_version: Some(store.spec.version.clone()),
        phase: None,
        conditions: None,
    };
    let s = status::compute(
        &store,
        &rendered,
        observed,
        &StoreStatus::default(),
        "2026-01-01T00:00:00Z",
        view,
        Vec::new(),
    );
    store.status = Some(s);
    store
}
