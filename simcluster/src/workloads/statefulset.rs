//! The StatefulSet controller, simplified: a ControllerRevision per pod
//! template (`<name>-<hash>`), pods `<name>-0..n` created in order (each
//! waits for the one before to be Ready, unless `Parallel`), a rolling
//! update from the highest ordinal down, one pod at a time and only while
//! every pod is Ready (so a bad image stalls it, as in Kubernetes), and
//! `currentRevision` catching up with `updateRevision` once every pod runs
//! the update and is Ready. Each pod gets its PersistentVolumeClaims
//! (`<template>-<name>-<i>`) before it starts, owned by the StatefulSet
//! (so garbage-collected with it) only under
//! `persistentVolumeClaimRetentionPolicy.whenDeleted: Delete`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::json::{int, name_of, namespace_of, omit_zero, template_hash, uid_of};
use super::pods::{is_ready, owner_ref, pod};
use super::{CONTROLLER, Sim};

const REVISION_LABEL: &str = "controller-revision-hash";

fn revision_of(pod: &Value) -> Option<&str> {
    pod.pointer(&format!("/metadata/labels/{REVISION_LABEL}"))
        .and_then(Value::as_str)
}

fn ordinal(sts: &str, pod: &Value) -> Option<i64> {
    name_of(pod)
        .strip_prefix(sts)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

impl Sim {
    /// Moves one StatefulSet a step towards its spec and writes its status.
    pub(super) fn reconcile_statefulset(&mut self, ns: &str, name: &str) {
        let Some(sts) = self.get(&self.types.statefulsets.clone(), ns, name) else {
            return;
        };
        if sts.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let replicas = int(&sts, "/spec/replicas").unwrap_or(1);
        let template = sts
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let update = format!("{name}-{}", template_hash(&template));
        self.ensure_revision(&sts, &template, &update);
        let pod_type = self.types.pods.clone();
        let pods: BTreeMap<i64, Value> = self
            .owned(&pod_type, ns, uid_of(&sts))
            .into_iter()
            .filter_map(|p| ordinal(name, &p).map(|i| (i, p)))
            .collect();
        self.step(&sts, &template, &update, &pods, replicas);
        let pods: Vec<Value> = self.owned(&pod_type, ns, uid_of(&sts));
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let updated = pods
            .iter()
            .filter(|p| revision_of(p) == Some(update.as_str()))
            .count();
        let previous = sts
            .pointer("/status/currentRevision")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let done =
            count(updated) == replicas && count(pods.len()) == replicas && count(ready) == replicas;
        let current_revision = match previous {
            Some(p) if !done => p,
            _ => update.clone(),
        };
        let current = pods
            .iter()
            .filter(|p| revision_of(p) == Some(current_revision.as_str()))
            .count();
        let mut status = omit_zero(json!({
            "observedGeneration": int(&sts, "/metadata/generation").unwrap_or(1),
            "replicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
        }));
        status["replicas"] = json!(pods.len());
        status["currentRevision"] = json!(current_revision);
        status["updateRevision"] = json!(update);
        status["collisionCount"] = json!(0);
        let t = self.types.statefulsets.clone();
        self.write_status(&t, ns, name, status, CONTROLLER);
    }

    /// One controller step: scale down, create the next pod, or replace
    /// the highest outdated pod.
    fn step(
        &mut self,
        sts: &Value,
        template: &Value,
        update: &str,
        pods: &BTreeMap<i64, Value>,
        replicas: i64,
    ) {
        let ns = namespace_of(sts);
        let name = name_of(sts);
        let pod_type = self.types.pods.clone();
        let parallel = sts.pointer("/spec/podManagementPolicy") == Some(&json!("Parallel"));
        let extra: Vec<&Value> = pods.range(replicas..).map(|(_, p)| p).rev().collect();
        for p in extra.iter().take(if parallel { extra.len() } else { 1 }) {
            self.delete(&pod_type, &ns, name_of(p));
        }
        for i in 0..replicas {
            match pods.get(&i) {
                None => {
                    let pod_name = format!("{name}-{i}");
                    let index = i.to_string();
                    let mut spec_extra = vec![("hostname", json!(pod_name))];
                    if let Some(service) = sts.pointer("/spec/serviceName") {
                        spec_extra.push(("subdomain", service.clone()));
                    }
                    self.ensure_claims(sts, i);
                    let object = pod(
                        template,
                        &pod_name,
                        &[
                            (REVISION_LABEL, update),
                            ("statefulset.kubernetes.io/pod-name", &pod_name),
                            ("apps.kubernetes.io/pod-index", &index),
                        ],
                        sts,
                        &spec_extra,
                    );
                    self.create(&pod_type, &ns, object);
                    if !parallel {
                        return;
                    }
                }
                Some(p) if !is_ready(p) && !parallel => return,
                Some(_) => {}
            }
        }
        let all_ready = (0..replicas).all(|i| pods.get(&i).is_some_and(is_ready));
        let on_delete = sts.pointer("/spec/updateStrategy/type") == Some(&json!("OnDelete"));
        if !all_ready || on_delete {
            return;
        }
        let partition = int(sts, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
        if let Some((_, outdated)) = pods
            .range(partition..replicas)
            .rev()
            .find(|(_, p)| revision_of(p) != Some(update))
        {
            self.delete(&pod_type, &ns, name_of(outdated));
        }
    }

    /// Creates pod `i`'s claims from the volume claim templates, unless they
    /// exist (a claim kept from before is reused, as in Kubernetes).
    fn ensure_claims(&mut self, sts: &Value, i: i64) {
        let ns = namespace_of(sts);
        let name = name_of(sts);
        let claim_type = self.types.claims.clone();
        let owned = sts.pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted")
            == Some(&json!("Delete"));
        let templates = sts
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for t in templates {
            let claim_name = format!("{}-{name}-{i}", name_of(&t));
            if self.get(&claim_type, &ns, &claim_name).is_some() {
                continue;
            }
            let mut metadata = json!({
                "name": claim_name,
                "labels": t.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
            });
            if owned {
                metadata["ownerReferences"] = json!([owner_ref(sts)]);
            }
            let spec = t.get("spec").cloned().unwrap_or_else(|| json!({}));
            self.create(
                &claim_type,
                &ns,
                json!({"metadata": metadata, "spec": spec}),
            );
        }
    }

    /// Records the template as a ControllerRevision (once per template).
    fn ensure_revision(&mut self, sts: &Value, template: &Value, update: &str) {
        let ns = namespace_of(sts);
        let rev_type = self.types.revisions.clone();
        let existing = self.owned(&rev_type, &ns, uid_of(sts));
        if existing.iter().any(|r| name_of(r) == update) {
            return;
        }
        let next = existing
            .iter()
            .filter_map(|r| int(r, "/revision"))
            .max()
            .unwrap_or(0)
            + 1;
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        labels[REVISION_LABEL] = json!(update);
        let mut data_template = template.clone();
        data_template["$patch"] = json!("replace");
        self.create(
            &rev_type,
            &ns,
            json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {"name": update, "labels": labels, "ownerReferences": [owner_ref(sts)]},
                "data": {"spec": {"template": data_template}},
                "revision": next,
            }),
        );
    }
}
