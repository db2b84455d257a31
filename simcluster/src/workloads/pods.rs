//! Pods as the workload controllers create them and the kubelet reports
//! them: the object built from a pod template, and its `status` as a pure
//! function of each container's scripted behaviour and the pod's age. A
//! pod that is never restarted (`restartPolicy: Never`, a Job's) runs to
//! an end: a healthy container exits 0 when it would have become Ready
//! (`Succeeded`), a crashing one exits 1 once (`Failed`).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::script::Behaviour;

/// What one container is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Creating,
    Running {
        ready: bool,
    },
    Waiting {
        reason: &'static str,
        message: String,
    },
    CrashLoop {
        restarts: u64,
    },
}

/// Where a container is at `age`, and the age at which that changes next.
fn container_state(b: &Behaviour, age: Duration, period: Duration) -> (State, Option<Duration>) {
    let period = period.max(Duration::from_millis(1));
    let ticks = age.as_nanos() / period.as_nanos();
    match b {
        Behaviour::Healthy { after } if age < *after => (State::Creating, Some(*after)),
        Behaviour::Healthy { .. } => (State::Running { ready: true }, None),
        _ if ticks == 0 => (State::Creating, Some(period)),
        Behaviour::NeverReady => (State::Running { ready: false }, None),
        Behaviour::ImagePullBackOff if ticks == 1 => (
            State::Waiting {
                reason: "ErrImagePull",
                message: "failed to pull and unpack image: not found".to_owned(),
            },
            Some(period * 2),
        ),
        Behaviour::ImagePullBackOff => (
            State::Waiting {
                reason: "ImagePullBackOff",
                message: "Back-off pulling image".to_owned(),
            },
            None,
        ),
        Behaviour::CrashLoop if ticks == 1 => (State::Running { ready: false }, Some(period * 2)),
        Behaviour::CrashLoop => {
            let next = u32::try_from(ticks + 1).unwrap_or(u32::MAX);
            (
                State::CrashLoop {
                    restarts: u64::try_from(ticks - 1).unwrap_or(u64::MAX),
                },
                Some(period * next),
            )
        }
    }
}

/// A pod's containers and their behaviours, as the simulator tracks them.
#[derive(Clone, Debug)]
pub(crate) struct PodPlan {
    pub(crate) containers: Vec<(String, String, Behaviour)>,
    /// Used for every timestamp in the status, so recomputing it is stable.
    pub(crate) created: String,
    /// `status.podIP`, unique per pod (scrapers address pods by it).
    pub(crate) ip: String,
    /// `restartPolicy: Never`: the containers run once, to an exit.
    pub(crate) runs_once: bool,
}

/// The pod's status at `age`, whether it is Ready, whether any container
/// runs, and when to look again.
pub(crate) struct PodStatus {
    pub(crate) status: Value,
    pub(crate) ready: bool,
    pub(crate) running: bool,
    pub(crate) next: Option<Duration>,
}

fn condition(type_: &str, ok: bool, at: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastTransitionTime": at})
}

impl PodPlan {
    /// Reads the containers of a pod object.
    /// `behaviour(image, runs_once)` says what each container does.
    pub(crate) fn of(pod: &Value, ip: String, behaviour: impl Fn(&str, bool) -> Behaviour) -> Self {
        let runs_once = pod.pointer("/spec/restartPolicy").and_then(Value::as_str) == Some("Never");
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                        (
                            name.to_owned(),
                            image.to_owned(),
                            behaviour(image, runs_once),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let created = pod
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Self {
            containers,
            created,
            ip,
            runs_once,
        }
    }

    /// The first container's image (what traffic and metrics go by).
    pub(crate) fn image(&self) -> &str {
        self.containers.first().map_or("", |c| c.1.as_str())
    }

    /// The status the kubelet reports `age` after creation; `period` paces failing containers.
    pub(crate) fn status_at(&self, age: Duration, period: Duration) -> PodStatus {
        if self.runs_once
            && let Some(exit) = self.exit_at(age, period)
        {
            return self.ended(exit);
        }
        let at = self.created.as_str();
        let mut statuses = Vec::new();
        let (mut ready, mut running, mut started_any) = (true, false, false);
        let mut next: Option<Duration> = None;
        for (name, image, behaviour) in &self.containers {
            let (state, change) = container_state(behaviour, age, period);
            next = match (next, change) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut s = json!({"name": name, "image": image, "imageID": "", "restartCount": 0,
                "ready": false, "started": false});
            match &state {
                State::Creating => {
                    s["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                }
                State::Running { ready: r } => {
                    s["state"] = json!({"running": {"startedAt": at}});
                    s["ready"] = json!(r);
                    s["started"] = json!(true);
                }
                State::Waiting { reason, message } => {
                    s["state"] = json!({"waiting": {"reason": reason, "message": message}});
                }
                State::CrashLoop { restarts } => {
                    s["restartCount"] = json!(restarts);
                    s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off restarting failed container {name}")}});
                    s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": at, "finishedAt": at}});
                }
            }
            ready &= matches!(state, State::Running { ready: true });
            running |= matches!(state, State::Running { .. });
            started_any |= matches!(state, State::Running { .. } | State::CrashLoop { .. });
            statuses.push(s);
        }
        let ready = ready && !self.containers.is_empty();
        let status = json!({
            "phase": if started_any { "Running" } else { "Pending" },
            "conditions": [
                condition("PodScheduled", true, at),
                condition("Initialized", true, at),
                condition("ContainersReady", ready, at),
                condition("Ready", ready, at),
            ],
            "containerStatuses": statuses,
            "hostIP": "10.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": at,
            "qosClass": "Burstable",
        });
        PodStatus {
            status,
            ready,
            running,
            next,
        }
    }
}

impl PodPlan {
    /// The exit code of a run-once pod that has ended by `age`: 0 once every
    /// container would be Ready, 1 as soon as one crashes.
    fn exit_at(&self, age: Duration, period: Duration) -> Option<i32> {
        let states: Vec<State> = self
            .containers
            .iter()
            .map(|(_, _, b)| container_state(b, age, period).0)
            .collect();
        if states.iter().any(|s| matches!(s, State::CrashLoop { .. }))
            || self.containers.iter().zip(&states).any(|((_, _, b), s)| {
                *b == Behaviour::CrashLoop && matches!(s, State::Running { .. })
            })
        {
            return Some(1);
        }
        let all_done = !states.is_empty()
            && states
                .iter()
                .all(|s| matches!(s, State::Running { ready: true }));
        all_done.then_some(0)
    }

    /// The final status of a run-once pod whose containers exited `exit`.
    fn ended(&self, exit: i32) -> PodStatus {
        let at = self.created.as_str();
        let (phase, reason) = if exit == 0 {
            ("Succeeded", "Completed")
        } else {
            ("Failed", "Error")
        };
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|(name, image, _)| {
                json!({"name": name, "image": image, "imageID": "", "restartCount": 0,
                    "ready": false, "started": false,
                    "state": {"terminated": {"exitCode": exit, "reason": reason,
                        "startedAt": at, "finishedAt": at}}})
            })
            .collect();
        PodStatus {
            status: json!({
                "phase": phase,
                "conditions": [
                    condition("PodScheduled", true, at),
                    condition("Initialized", true, at),
                    condition("ContainersReady", false, at),
                    condition("Ready", false, at),
                ],
                "containerStatuses": statuses,
                "hostIP": "10.0.0.1",
                "podIP": self.ip,
                "startTime": at,
            }),
            ready: false,
            running: false,
            next: None,
        }
    }
}

/// A pod object from `template`, named `name`, with `extra` labels, owned
/// by `owner` (a ReplicaSet or StatefulSet object).
pub(crate) fn pod(
    template: &Value,
    name: &str,
    extra: &[(&str, &str)],
    owner: &Value,
    spec_extra: &[(&str, Value)],
) -> Value {
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in extra {
        labels.insert((*k).to_owned(), json!(v));
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["nodeName"] = json!("sim-node");
    for (k, v) in spec_extra {
        spec[*k] = v.clone();
    }
    let annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(owner)],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    })
}

/// A controller owner reference to `owner`.
pub(crate) fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "name": owner.pointer("/metadata/name"),
        "uid": owner.pointer("/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether a pod object reports Ready.
pub(crate) fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(100);

    fn plan(b: Behaviour) -> PodPlan {
        PodPlan {
            containers: vec![("c".into(), "img".into(), b)],
            created: "t".into(),
            ip: "10.244.0.1".into(),
            runs_once: false,
        }
    }

    #[test]
    fn run_once_pods_end_succeeded_or_failed() {
        let once = |b| PodPlan {
            runs_once: true,
            ..plan(b)
        };
        let ok = once(Behaviour::Healthy { after: P });
        assert_eq!(
            ok.status_at(Duration::ZERO, P).status["phase"],
            json!("Pending")
        );
        let done = ok.status_at(P, P);
        assert_eq!(done.status["phase"], json!("Succeeded"));
        assert!(done.next.is_none() && !done.running);
        let crash = once(Behaviour::CrashLoop).status_at(P, P);
        assert_eq!(crash.status["phase"], json!("Failed"));
        assert_eq!(
            crash.status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            json!(1)
        );
        let pull = once(Behaviour::ImagePullBackOff).status_at(P * 5, P);
        assert_eq!(waiting(&pull), "ImagePullBackOff");
        let hang = once(Behaviour::NeverReady).status_at(P * 5, P);
        assert_eq!(hang.status["phase"], json!("Running"));
    }

    fn waiting(s: &PodStatus) -> String {
        s.status["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    #[test]
    fn healthy_pods_become_ready_after_their_delay() {
        let p = plan(Behaviour::Healthy {
            after: Duration::from_millis(250),
        });
        let early = p.status_at(Duration::ZERO, P);
        assert!(!early.ready);
        assert_eq!(early.next, Some(Duration::from_millis(250)));
        assert_eq!(early.status["phase"], json!("Pending"));
        let late = p.status_at(Duration::from_millis(250), P);
        assert!(late.ready && late.next.is_none());
        assert_eq!(late.status["phase"], json!("Running"));
    }

    #[test]
    fn image_pull_failures_and_crash_loops() {
        let p = plan(Behaviour::ImagePullBackOff);
        assert_eq!(waiting(&p.status_at(P, P)), "ErrImagePull");
        let s = p.status_at(P * 5, P);
        assert_eq!(waiting(&s), "ImagePullBackOff");
        assert!(!s.ready && s.next.is_none());
        let c = plan(Behaviour::CrashLoop);
        let s = c.status_at(P * 4, P);
        assert_eq!(waiting(&s), "CrashLoopBackOff");
        assert_eq!(s.status["containerStatuses"][0]["restartCount"], json!(3));
        assert_eq!(s.status["phase"], json!("Running"));
        assert_eq!(s.next, Some(P * 5));
        let n = plan(Behaviour::NeverReady).status_at(P * 3, P);
        assert!(n.running && !n.ready);
    }
}
