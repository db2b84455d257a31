//! The Deployment controller, simplified: one ReplicaSet per pod template
//! (`<name>-<pod-template-hash>`), a rolling update within `maxSurge` /
//! `maxUnavailable` (or Recreate), and the status a real controller
//! reports — counts, `Available`, and `Progressing` that turns into
//! `ProgressDeadlineExceeded` when no progress was made for
//! `progressDeadlineSeconds` (times the script's time scale).

use serde_json::{Value, json};
use tokio::time::Instant;

use super::json::{
    conditions, int, name_of, namespace_of, omit_zero, template_hash, timestamp, uid_of,
};
use super::pods::{is_ready, pod};
use super::{CONTROLLER, Progress, Sim, Wake};

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const DEFAULT_DEADLINE_SECONDS: f64 = 600.0;

/// `maxSurge`/`maxUnavailable` as a pod count (`25%` by default).
fn resolve(v: Option<&Value>, replicas: i64, round_up: bool) -> i64 {
    let percent = |p: f64| {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let n = replicas as f64 * p / 100.0;
        #[allow(clippy::cast_possible_truncation)]
        let n = if round_up { n.ceil() } else { n.floor() } as i64;
        n
    };
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<f64>().ok())
            .map_or(0, percent),
        _ => percent(25.0),
    }
}

fn revision(rs: &Value) -> i64 {
    rs.pointer(&format!(
        "/metadata/annotations/{}",
        REVISION.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .and_then(|r| r.parse().ok())
    .unwrap_or(0)
}

/// Unready pods first: those go before Ready ones.
fn unready_first(mut pods: Vec<Value>) -> Vec<Value> {
    pods.sort_by_key(is_ready);
    pods
}

/// A pod name suffix from the pod's hash and a counter.
fn suffix(seed: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let hash = template_hash(&json!([seed, n]));
    hash.bytes()
        .take(5)
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

impl Sim {
    /// Moves one Deployment a step towards its spec and writes its status.
    pub(super) fn reconcile_deployment(&mut self, ns: &str, name: &str) {
        let types = &self.types;
        let (rs_type, pod_type) = (types.replicasets.clone(), types.pods.clone());
        let Some(dep) = self.get(&types.deployments.clone(), ns, name) else {
            return;
        };
        if dep.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let replicas = int(&dep, "/spec/replicas").unwrap_or(1);
        let template = dep
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let rs_name = format!("{name}-{hash}");
        let sets = self.owned(&rs_type, ns, uid_of(&dep));
        let existing = sets.iter().find(|rs| name_of(rs) == rs_name).cloned();
        let created = || {
            let next = sets.iter().map(revision).max().unwrap_or(0) + 1;
            self.create(&rs_type, ns, replica_set(&dep, &template, &hash, next))
        };
        let Some(current) = existing.or_else(created) else {
            return;
        };
        let newest = sets.iter().map(revision).max().unwrap_or(0);
        let mut revision_of_current = revision(&current);
        if revision_of_current < newest {
            // Back to an older template: its ReplicaSet becomes the newest revision.
            revision_of_current = newest + 1;
            let annotation = json!(revision_of_current.to_string());
            self.set_field(
                &rs_type,
                &current,
                &["metadata", "annotations", REVISION],
                annotation,
            );
        }
        let dep_type = self.types.deployments.clone();
        let annotation = json!(revision_of_current.to_string());
        self.set_field(
            &dep_type,
            &dep,
            &["metadata", "annotations", REVISION],
            annotation,
        );
        let new_uid = uid_of(&current).to_owned();
        let mut all_sets = sets;
        if !all_sets.iter().any(|s| uid_of(s) == new_uid) {
            all_sets.push(current.clone());
        }
        let paused = dep.pointer("/spec/paused") == Some(&json!(true));
        if !paused {
            self.roll(&dep, &current, &all_sets, replicas);
        }
        let mut new_pods = Vec::new();
        let mut total = Vec::new();
        for rs in &all_sets {
            let pods = self.owned(&pod_type, ns, uid_of(rs));
            let desired = if uid_of(rs) == new_uid {
                new_pods.clone_from(&pods);
                replicas
            } else {
                i64::try_from(pods.len()).unwrap_or(0)
            };
            self.sync_replica_set(rs, &pods, desired);
            total.extend(pods);
        }
        self.deployment_status(&dep, &rs_name, &new_pods, &total, replicas, paused);
    }

    /// Creates new pods and deletes old ones within the strategy's limits.
    fn roll(&mut self, dep: &Value, current: &Value, sets: &[Value], replicas: i64) {
        let ns = namespace_of(dep);
        let pod_type = self.types.pods.clone();
        let new_pods = self.owned(&pod_type, &ns, uid_of(current));
        let old_pods: Vec<Value> = sets
            .iter()
            .filter(|s| uid_of(s) != uid_of(current))
            .flat_map(|s| self.owned(&pod_type, &ns, uid_of(s)))
            .collect();
        let count = |v: &[Value]| i64::try_from(v.len()).unwrap_or(i64::MAX);
        let strategy = dep.pointer("/spec/strategy");
        let recreate = strategy.and_then(|s| s.get("type")) == Some(&json!("Recreate"));
        let (mut new_count, mut total) = (count(&new_pods), count(&new_pods) + count(&old_pods));
        let (surge, unavailable) = if recreate {
            (0, replicas)
        } else {
            let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
            let surge = resolve(rolling.and_then(|r| r.get("maxSurge")), replicas, true);
            let unavailable = resolve(
                rolling.and_then(|r| r.get("maxUnavailable")),
                replicas,
                false,
            );
            if surge == 0 && unavailable == 0 {
                (1, 0)
            } else {
                (surge, unavailable)
            }
        };
        if recreate && !old_pods.is_empty() {
            for p in &old_pods {
                self.delete(&pod_type, &ns, name_of(p));
            }
            return;
        }
        let template = current
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_default();
        let hash = current
            .pointer(&format!("/metadata/labels/{HASH_LABEL}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut n = usize::try_from(total).unwrap_or(0);
        while new_count < replicas && total < replicas + surge {
            let name = loop {
                n += 1;
                let candidate = format!("{}-{}", name_of(current), suffix(&hash, n));
                if self.get(&pod_type, &ns, &candidate).is_none() {
                    break candidate;
                }
            };
            let object = pod(&template, &name, &[(HASH_LABEL, &hash)], current, &[]);
            if self.create(&pod_type, &ns, object).is_none() {
                break;
            }
            new_count += 1;
            total += 1;
        }
        let mut ready = count(
            &new_pods
                .iter()
                .chain(&old_pods)
                .filter(|p| is_ready(p))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let min_available = replicas - unavailable;
        for p in unready_first(old_pods) {
            if !is_ready(&p) {
                self.delete(&pod_type, &ns, name_of(&p));
            } else if ready > min_available {
                self.delete(&pod_type, &ns, name_of(&p));
                ready -= 1;
            }
        }
        let extra = usize::try_from(count(&new_pods) - replicas).unwrap_or(0);
        for p in unready_first(new_pods).iter().take(extra) {
            self.delete(&pod_type, &ns, name_of(p));
        }
    }

    /// Keeps a ReplicaSet's `spec.replicas` and status in line with its pods.
    fn sync_replica_set(&self, rs: &Value, pods: &[Value], desired: i64) {
        let rs_type = self.types.replicasets.clone();
        self.set_field(&rs_type, rs, &["spec", "replicas"], json!(desired));
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let status = omit_zero(json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": int(rs, "/metadata/generation").unwrap_or(1),
        }));
        self.write_status(&rs_type, &namespace_of(rs), name_of(rs), status, CONTROLLER);
    }

    fn deployment_status(
        &mut self,
        dep: &Value,
        rs_name: &str,
        new_pods: &[Value],
        all: &[Value],
        replicas: i64,
        paused: bool,
    ) {
        let ns = namespace_of(dep);
        let name = name_of(dep).to_owned();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let updated = count(new_pods.len());
        let total = count(all.len());
        let available = count(all.iter().filter(|p| is_ready(p)).count());
        let ready_new = new_pods.iter().filter(|p| is_ready(p)).count();
        let now = Instant::now();
        let signature = (rs_name.to_owned(), new_pods.len(), ready_new, all.len());
        let progress = self
            .progress
            .entry((ns.clone(), name.clone()))
            .or_insert_with(|| Progress {
                signature: signature.clone(),
                since: now,
                stamp: timestamp(),
            });
        if progress.signature != signature {
            *progress = Progress {
                signature,
                since: now,
                stamp: timestamp(),
            };
        }
        let (since, stamp) = (progress.since, progress.stamp.clone());
        #[allow(clippy::cast_precision_loss)]
        let deadline_seconds = int(dep, "/spec/progressDeadlineSeconds")
            .map_or(DEFAULT_DEADLINE_SECONDS, |s| s as f64);
        let deadline = since + self.script.scaled(deadline_seconds);
        let complete = updated == replicas && total == replicas && available >= replicas;
        let exceeded = !complete && now >= deadline;
        if !complete && !exceeded && !paused {
            self.schedule(deadline, Wake::Deployment(ns.clone(), name.clone()));
        }
        let unavailable = resolve(
            dep.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
            replicas,
            false,
        );
        let available_cond = if available >= replicas - unavailable {
            (
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_owned(),
            )
        } else {
            (
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".to_owned(),
            )
        };
        let progressing = if paused {
            (
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".to_owned(),
            )
        } else if complete {
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            )
        } else if exceeded {
            (
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            )
        } else {
            (
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
            )
        };
        let mut status = omit_zero(json!({
            "observedGeneration": int(dep, "/metadata/generation").unwrap_or(1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": (replicas - available).max(0),
        }));
        status["conditions"] = conditions(
            dep.pointer("/status/conditions"),
            &[available_cond, progressing],
            Some(&stamp),
        );
        let t = self.types.deployments.clone();
        self.write_status(&t, &ns, &name, status, CONTROLLER);
    }
}

/// The ReplicaSet for one template of `dep`.
fn replica_set(dep: &Value, template: &Value, hash: &str, revision: i64) -> Value {
    let mut template = template.clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    let mut selector = dep
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", name_of(dep)),
            "labels": labels,
            "annotations": {REVISION: revision.to_string()},
            "ownerReferences": [super::pods::owner_ref(dep)],
        },
        "spec": {
            "replicas": int(dep, "/spec/replicas").unwrap_or(1),
            "selector": selector,
            "template": template,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_and_unavailability_resolve_like_kubernetes() {
        assert_eq!(resolve(None, 2, true), 1);
        assert_eq!(resolve(None, 2, false), 0);
        assert_eq!(resolve(Some(&json!("25%")), 4, true), 1);
        assert_eq!(resolve(Some(&json!("50%")), 3, false), 1);
        assert_eq!(resolve(Some(&json!(0)), 3, false), 0);
    }

    #[test]
    fn pod_suffixes_are_stable_and_distinct() {
        assert_eq!(suffix("abc", 1), suffix("abc", 1));
        assert_ne!(suffix("abc", 1), suffix("abc", 2));
        assert_eq!(suffix("abc", 1).len(), 5);
    }
}
