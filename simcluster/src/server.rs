//! The HTTP front: a `tower::Service` that kube's `Client::new` accepts,
//! answering each request from the object store with the status codes,
//! bodies and list/watch shapes of a real API server, logging it, and
//! failing it first if an injected fault matches.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::faults::Faults;
use crate::fields::Scope;
use crate::log::{RequestLog, RequestRecord, Verb};
use crate::objects::{Objects, Since};
use crate::request::{Call, Target};
use crate::resources::ResourceType;
use crate::selectors::Selector;
use crate::watch::{self, Lags, WatchRequest};

/// Body of every answer (whole JSON documents or a watch stream).
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// How long a watch without `timeoutSeconds` stays open.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_mins(30);

/// Everything the server and the test accessors share.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) objects: Objects,
    pub(crate) log: RequestLog,
    pub(crate) faults: Faults,
    pub(crate) lags: Lags,
}

/// The in-process API server, as a `tower::Service`.
#[derive(Clone)]
pub(crate) struct ApiService(pub(crate) Arc<Shared>);

type Answer = Result<Reply, ApiError>;

enum Reply {
    Json(StatusCode, Value),
    Watch(ResponseBody),
}

impl tower::Service<Request<Body>> for ApiService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.0);
        Box::pin(async move { Ok(handle(&shared, req).await) })
    }
}

async fn handle(shared: &Shared, req: Request<Body>) -> Response<ResponseBody> {
    let call = Call::new(&req);
    let target = call.target(&shared.objects);
    let verb = call.verb(target.as_ref().ok());
    let (resource, namespace, name) = match &target {
        Ok(Target::Resource {
            t,
            namespace,
            name,
            status,
        }) => (
            if *status {
                format!("{}/status", t.plural)
            } else {
                t.plural.clone()
            },
            namespace.clone(),
            name.clone(),
        ),
        _ => (String::new(), None, None),
    };
    let answer = match shared.faults.take(verb, &resource, name.as_deref()) {
        Some(error) => Err(error),
        None => match req.into_body().collect_bytes().await {
            Ok(body) => match target {
                Ok(target) => dispatch(shared, &call, verb, target, &body),
                Err(e) => Err(e),
            },
            Err(e) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
        },
    };
    let response = match answer {
        Ok(Reply::Json(code, value)) => json_response(code, &value),
        Ok(Reply::Watch(body)) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body),
        Err(e) => json_response(
            StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &e.to_status(),
        ),
    };
    let response = response.unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    });
    shared.log.push(RequestRecord {
        method: call.method.clone(),
        path: call.path.clone(),
        query: call.raw_query.clone(),
        verb,
        resource,
        namespace,
        name,
        code: response.status().as_u16(),
    });
    response
}

/// What a path that addresses no object answers: `/version`'s version,
/// a group version's discovery.
fn about(target: &Target) -> Value {
    match target {
        Target::Discovery {
            group_version,
            types,
        } => discovery(group_version, types),
        _ => version(),
    }
}

/// An `APIResourceList`: what `kube::Client::list_api_group_resources`
/// reads to tell whether a kind is served.
fn discovery(group_version: &str, types: &[ResourceType]) -> Value {
    let resources: Vec<Value> = types
        .iter()
        .flat_map(|t| {
            let verbs = [
                "create", "delete", "get", "list", "patch", "update", "watch",
            ];
            let main = serde_json::json!({
                "name": t.plural, "singularName": "", "namespaced": t.namespaced,
                "kind": t.kind, "verbs": verbs,
            });
            let status = t.status_subresource.then(|| {
                serde_json::json!({
                    "name": format!("{}/status", t.plural), "singularName": "",
                    "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"],
                })
            });
            std::iter::once(main).chain(status)
        })
        .collect();
    serde_json::json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn json_response(code: StatusCode, value: &Value) -> http::Result<Response<ResponseBody>> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed_unsync())
}

fn parse_body(call: &Call, body: &[u8]) -> Result<Value, ApiError> {
    let parsed = if call.is_apply() {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("decoding the body: {e}")))
}

fn dispatch(shared: &Shared, call: &Call, verb: Verb, target: Target, body: &[u8]) -> Answer {
    let Target::Resource {
        t,
        namespace,
        name,
        status,
    } = target
    else {
        return Ok(Reply::Json(StatusCode::OK, about(&target)));
    };
    let objects = &shared.objects;
    let ns = namespace.clone().unwrap_or_default();
    let scope = if status {
        Scope::Status
    } else {
        Scope::Main {
            status_subresource: t.status_subresource,
        }
    };
    let name = name.unwrap_or_default();
    let ok = |v: Value| Ok(Reply::Json(StatusCode::OK, v));
    match verb {
        Verb::Get => {
            let object = objects.get(&t, &ns, &name)?;
            ok(if call.wants_metadata() {
                watch::metadata_only(&object)
            } else {
                object
            })
        }
        Verb::List => list(objects, call, &t, namespace.as_deref()),
        Verb::Watch => watch(shared, call, t, namespace),
        Verb::Create => {
            let object = objects.create(&t, &ns, parse_body(call, body)?, &call.manager())?;
            Ok(Reply::Json(StatusCode::CREATED, object))
        }
        Verb::Update => ok(objects.replace(
            &t,
            &ns,
            &name,
            parse_body(call, body)?,
            &call.manager(),
            scope,
        )?),
        Verb::Apply => {
            let manager = call.param("fieldManager").ok_or_else(|| {
                ApiError::invalid("fieldManager: Required value: is required for apply patch")
            })?;
            let existed = objects.get(&t, &ns, &name).is_ok();
            let object = objects.apply(
                &t,
                &ns,
                &name,
                parse_body(call, body)?,
                manager,
                call.flag("force"),
                scope,
            )?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(Reply::Json(code, object))
        }
        Verb::Patch
            if call
                .content_type
                .starts_with("application/merge-patch+json") =>
        {
            let patch = parse_body(call, body)?;
            ok(objects.merge_patch(&t, &ns, &name, &patch, &call.manager(), scope)?)
        }
        Verb::Patch => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the simulated API server does not support {:?} patches",
                call.content_type
            ),
        )),
        Verb::Delete => {
            let options: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(body).unwrap_or(Value::Null)
            };
            let orphan = options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
                || options.get("orphanDependents") == Some(&json!(true));
            ok(objects.delete(&t, &ns, &name, orphan)?)
        }
        Verb::Other => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{} is not supported here", call.method),
        )),
    }
}

fn selectors(call: &Call) -> Result<(Selector, Selector), ApiError> {
    Ok((
        Selector::parse(call.param("labelSelector").unwrap_or_default())?,
        Selector::parse(call.param("fieldSelector").unwrap_or_default())?,
    ))
}

/// A list, paged by `limit`/`continue` (the token is an offset; pages are
/// not a consistent snapshot).
fn list(objects: &Objects, call: &Call, t: &ResourceType, ns: Option<&str>) -> Answer {
    let (labels, fields) = selectors(call)?;
    let (items, rv) = objects.list(t, ns, &labels, &fields);
    let offset: usize = match call.param("continue") {
        Some(token) => token
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))?,
        None => 0,
    };
    let limit = call
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let total = items.len();
    let end = offset.saturating_add(limit).min(total);
    let metadata_only = call.wants_metadata();
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .map(|mut item| {
            if metadata_only {
                return watch::metadata_only(&item);
            }
            if let Some(map) = item.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            item
        })
        .collect();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if end < total {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(total - end);
    }
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (t.api_version(), format!("{}List", t.kind))
    };
    Ok(Reply::Json(
        StatusCode::OK,
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": page}),
    ))
}

fn watch(shared: &Shared, call: &Call, t: ResourceType, namespace: Option<String>) -> Answer {
    let (labels, fields) = selectors(call)?;
    let since = match call.param("resourceVersion").unwrap_or_default() {
        "" | "0" => Since::Now,
        rv => Since::Version(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let sub = shared.objects.watch(&t, since)?;
    let start = match since {
        Since::Now => sub.rv,
        Since::Version(rv) => rv,
    };
    let timeout = call
        .param("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let req = WatchRequest {
        t,
        namespace,
        labels,
        fields,
        timeout,
        bookmarks: call.flag("allowWatchBookmarks"),
        initial_events_end: call.flag("sendInitialEvents"),
        metadata_only: call.wants_metadata(),
        start,
    };
    let frames = watch::stream(sub, req, shared.lags.clone())
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    Ok(Reply::Watch(StreamBody::new(frames).boxed_unsync()))
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-simcluster",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64",
    })
}
