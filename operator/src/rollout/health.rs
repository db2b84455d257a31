//! Is a step healthy? Every object of the step exists and carries the
//! revision's applied hash; every workload's controller observed its
//! generation and has all replicas updated and available (StatefulSet:
//! ready, `currentRevision == updateRevision`). Some states never heal by
//! waiting and fail the step at once: a container of the current template
//! waiting in `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
//! `CreateContainerConfigError` or `InvalidImageName`, a container of a pod
//! created since the step started that restarted, a Deployment past its
//! progress deadline or unable to create pods. A migration Job is healthy
//! once complete, and fails the step when it failed for good or its pod
//! cannot start. A data store delegated to CloudNativePG or the RabbitMQ
//! Cluster Operator is healthy once its operator reports it ready
//! (`render::delegated::readiness`). Every answer names the component and
//! says what to look at.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;
use storekeeper_contract::{ShopService, labels};

use super::template::current_pods;
use crate::reconcile::Observed;
use crate::reconcile::observed::applied_hash;
use crate::render::delegated::readiness;
use crate::render::{ChildKind, Object, migrations};

/// Container waiting reasons that do not heal by waiting.
pub const FAILING_WAIT_REASONS: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// What the cluster holds for one Store, as listed: its children, and the
/// pods and ReplicaSets of its workloads.
#[derive(Clone, Copy, Debug)]
pub struct Cluster<'a> {
    /// The Store's children.
    pub children: &'a Observed,
    /// Pods with the Store's labels.
    pub pods: &'a [Value],
    /// ReplicaSets with the Store's labels.
    pub replica_sets: &'a [Value],
}

/// One thing that is wrong or not done yet, for a person to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// The component, e.g. `order-service` or `postgres`.
    pub component: String,
    /// CamelCase cause, stable for tools.
    pub reason: String,
    /// The cause in words, without the component.
    pub message: String,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.component, self.message)
    }
}

/// A step as it stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Something that will not heal by waiting.
    pub failure: Option<Cause>,
    /// The first thing the step still waits for.
    pub waiting: Option<Cause>,
}

impl Assessment {
    /// Healthy: nothing failed, nothing to wait for.
    pub fn healthy(&self) -> bool {
        self.failure.is_none() && self.waiting.is_none()
    }
}

/// Assesses the step made of `objects` (one revision's objects of one
/// step). Restarts count only in pods created at or after `since`, the
/// step's start: a long-running pod's old restarts say nothing about this
/// revision.
pub fn assess<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    cluster: &Cluster<'_>,
    since: DateTime<Utc>,
) -> Assessment {
    let mut out = Assessment::default();
    for object in objects {
        if !crate::render::monitoring::gates_rollout(object) {
            continue;
        }
        let component = component(object);
        let cause = |reason: &str, message: String| Cause {
            component: component.clone(),
            reason: reason.to_owned(),
            message,
        };
        let kind = object.kind.kind();
        let Some(live) = cluster.children.get(object.kind, &object.name) else {
            out.waiting.get_or_insert_with(|| {
                cause(
                    "NotCreated",
                    format!("{kind} {} does not exist yet", object.name),
                )
            });
            continue;
        };
        if applied_hash(live) != Some(object.hash.as_str()) {
            out.waiting.get_or_insert_with(|| {
                cause(
                    "NotApplied",
                    format!("{kind} {} does not carry this revision yet", object.name),
                )
            });
            continue;
        }
        if readiness::gates(object.kind) {
            if let Some(message) = readiness::waiting_for(object.kind, live) {
                out.waiting
                    .get_or_insert_with(|| cause("NotReady", message));
            }
            continue;
        }
        if object.kind == ChildKind::Job {
            let (failure, waiting) = job_state(live, &object.name, cluster.pods, since);
            if out.failure.is_none() {
                out.failure = failure.map(|(reason, message)| cause(&reason, message));
            }
            if let Some(message) = waiting {
                out.waiting
                    .get_or_insert_with(|| cause("NotComplete", message));
            }
            continue;
        }
        if !matches!(object.kind, ChildKind::Deployment | ChildKind::StatefulSet) {
            continue;
        }
        let generation = int(live, "/metadata/generation");
        if int(live, "/status/observedGeneration") < generation {
            out.waiting.get_or_insert_with(|| {
                cause(
                    "NotObserved",
                    format!("the {kind} controller has not seen generation {generation} yet"),
                )
            });
            continue;
        }
        let pods = current_pods(object.kind, live, cluster.pods, cluster.replica_sets);
        if out.failure.is_none() {
            out.failure = workload_failure(live)
                .or_else(|| pods.iter().find_map(|p| pod_failure(p, since)))
                .map(|(reason, message)| cause(&reason, message));
        }
        // An autoscaled Deployment's desired object has no replica count
        // (the autoscaler's is live), so the live one is what must be ready.
        let want = object
            .value
            .pointer("/spec/replicas")
            .or_else(|| live.pointer("/spec/replicas"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if let Some(message) = not_ready(object.kind, live, want, &pods) {
            out.waiting
                .get_or_insert_with(|| cause("NotReady", message));
        }
    }
    out
}

/// The component an object belongs to, as people know it: the service's
/// package name (`order-service`, or `order-service migrations` for its
/// migration Job), else its `app.kubernetes.io/name`.
pub fn component(object: &Object) -> String {
    let name = object
        .value
        .pointer("/metadata/labels")
        .and_then(|l| l.get(labels::NAME))
        .and_then(Value::as_str)
        .unwrap_or(&object.name);
    if let Some(service) = ShopService::ALL.into_iter().find(|s| {
        s.database()
            .is_some_and(|db| migrations::component(db) == name)
    }) {
        return format!("{} {}", service.package(), migrations::COMPONENT);
    }
    ShopService::from_name(name).map_or_else(|| name.to_owned(), |s| s.package().to_owned())
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A Deployment past its progress deadline, or unable to create pods.
fn workload_failure(live: &Value) -> Option<(String, String)> {
    let conditions = live.pointer("/status/conditions")?.as_array()?;
    conditions.iter().find_map(|c| {
        let (type_, status, reason) = (
            str_at(c, "/type"),
            str_at(c, "/status"),
            str_at(c, "/reason"),
        );
        let message = str_at(c, "/message");
        if type_ == "Progressing" && reason == "ProgressDeadlineExceeded" {
            Some((reason.to_owned(), format!("{reason}: {message}")))
        } else if type_ == "ReplicaFailure" && status == "True" {
            Some((type_.to_owned(), format!("{type_}: {message}")))
        } else {
            None
        }
    })
}

/// A container of `pod` that is stuck, or that restarted in a pod created
/// at or after `since`.
fn pod_failure(pod: &Value, since: DateTime<Utc>) -> Option<(String, String)> {
    let name = str_at(pod, "/metadata/name");
    let new = pod
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|created| created >= since);
    let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten();
    let mut restarted = None;
    for c in statuses {
        let container = str_at(c, "/name");
        let restarts = int(c, "/restartCount");
        let last_exit = format!(
            "{}, exit code {}",
            str_at(c, "/lastState/terminated/reason"),
            int(c, "/lastState/terminated/exitCode")
        );
        let reason = str_at(c, "/state/waiting/reason");
        if FAILING_WAIT_REASONS.contains(&reason) {
            let message = match reason {
                "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => {
                    format!("{reason} for {}", str_at(c, "/image"))
                }
                "CrashLoopBackOff" => format!(
                    "CrashLoopBackOff in pod {name} (container {container}: {last_exit}; {restarts} restarts)"
                ),
                _ => format!(
                    "{reason} in pod {name}: {}",
                    str_at(c, "/state/waiting/message")
                ),
            };
            return Some((reason.to_owned(), message));
        }
        if new && restarts > 0 && restarted.is_none() {
            restarted = Some((
                "Restarting".to_owned(),
                format!(
                    "container {container} in pod {name} restarted {restarts} time(s) (last: {last_exit})"
                ),
            ));
        }
    }
    restarted
}

/// A Job as it stands: failed for good (its `Failed` condition, or a pod
/// stuck on its image), and what it still waits for. A Job that completed
/// once stays complete: a rollout reusing it runs nothing again.
fn job_state(
    live: &Value,
    name: &str,
    pods: &[Value],
    since: DateTime<Utc>,
) -> (Option<(String, String)>, Option<String>) {
    let condition = |wanted: &str| {
        live.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| str_at(c, "/type") == wanted && str_at(c, "/status") == "True")
            })
    };
    if condition("Complete").is_some() {
        return (None, None);
    }
    if let Some(failed) = condition("Failed") {
        let reason = match str_at(failed, "/reason") {
            "" => "JobFailed",
            reason => reason,
        };
        let message = format!(
            "Job {name} failed ({reason}: {}); `kubectl logs job/{name}` says why",
            str_at(failed, "/message")
        );
        return (Some((reason.to_owned(), message)), None);
    }
    let uid = live.pointer("/metadata/uid").and_then(Value::as_str);
    let stuck = pods
        .iter()
        .filter(|p| uid.is_some() && crate::reconcile::observed::controller_uid(p) == uid)
        .find_map(|p| pod_failure(p, since))
        .filter(|(reason, _)| reason != "Restarting");
    let waiting = format!(
        "Job {name} has not completed yet ({} running, {} failed attempt(s))",
        int(live, "/status/active"),
        int(live, "/status/failed")
    );
    (stuck, Some(waiting))
}

/// What a workload still waits for, if anything.
fn not_ready(kind: ChildKind, live: &Value, want: i64, pods: &[&Value]) -> Option<String> {
    let status = |field: &str| int(live, &format!("/status/{field}"));
    let progress = if kind == ChildKind::Deployment {
        let (updated, available) = (status("updatedReplicas"), status("availableReplicas"));
        let done = updated >= want && available >= want && status("replicas") == updated;
        (!done).then(|| format!("{available}/{want} pods available, {updated}/{want} updated"))
    } else {
        let ready = status("readyReplicas");
        let done = ready >= want
            && live.pointer("/status/currentRevision") == live.pointer("/status/updateRevision");
        (!done).then(|| {
            format!(
                "{ready}/{want} pods ready, {}/{want} updated",
                status("updatedReplicas")
            )
        })
    }?;
    let unschedulable = pods.iter().find_map(|p| {
        p.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/status") == "False")
            .map(|c| {
                format!(
                    "; pod {} unschedulable: {}",
                    str_at(p, "/metadata/name"),
                    str_at(c, "/message")
                )
            })
    });
    Some(progress + &unschedulable.unwrap_or_default())
}
