//! The Job controller, simplified: one pod at a time from the template
//! (`restartPolicy: Never`), a new pod after each failed one until
//! `backoffLimit` failures (default 6), `Complete` once a pod succeeded,
//! `Failed` with `BackoffLimitExceeded`, or `DeadlineExceeded` when the Job
//! ran longer than `activeDeadlineSeconds` (times the script's time
//! scale). A finished Job is never touched again.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::json::{int, name_of, omit_zero, timestamp, uid_of};
use super::pods::pod;
use super::{CONTROLLER, Sim, Wake};

const DEFAULT_BACKOFF_LIMIT: i64 = 6;
/// Labels the Job controller puts on its pods.
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(c["type"].as_str(), Some("Complete" | "Failed"))
                    && c["status"] == json!("True")
            })
        })
}

impl Sim {
    /// Moves one Job a step on: a pod to run, or the end it came to.
    pub(super) fn reconcile_job(&mut self, ns: &str, name: &str) {
        let (job_type, pod_type) = (self.types.jobs.clone(), self.types.pods.clone());
        let Some(job) = self.get(&job_type, ns, name) else {
            return;
        };
        if job.pointer("/metadata/deletionTimestamp").is_some() || finished(&job) {
            return;
        }
        let pods = self.owned(&pod_type, ns, uid_of(&job));
        let count = |p: &str| {
            i64::try_from(pods.iter().filter(|pod| phase(pod) == p).count()).unwrap_or(i64::MAX)
        };
        let (succeeded, failed) = (count("Succeeded"), count("Failed"));
        let active = i64::try_from(pods.len()).unwrap_or(i64::MAX) - succeeded - failed;
        let started = job
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .map_or_else(timestamp, ToOwned::to_owned);
        let deadline = int(&job, "/spec/activeDeadlineSeconds").map(|s| {
            #[allow(clippy::cast_precision_loss)] // deadlines are small
            let seconds = s as f64;
            self.script.scaled(seconds)
        });
        let since = *self
            .job_started
            .entry((ns.to_owned(), name.to_owned()))
            .or_insert_with(Instant::now);
        let end = if succeeded > 0 {
            Some(("Complete", "", String::new()))
        } else if failed > int(&job, "/spec/backoffLimit").unwrap_or(DEFAULT_BACKOFF_LIMIT) {
            Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_owned(),
            ))
        } else if deadline.is_some_and(|d| since.elapsed() >= d) {
            for p in pods
                .iter()
                .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
            {
                self.delete(&pod_type, ns, name_of(p));
            }
            Some((
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_owned(),
            ))
        } else {
            None
        };
        if end.is_none() && active == 0 {
            let template = job
                .pointer("/spec/template")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let attempt = pods.len();
            let pod_name = format!("{name}-{attempt}");
            let object = pod(
                &template,
                &pod_name,
                &[(JOB_NAME, name), (CONTROLLER_UID, uid_of(&job))],
                &job,
                &[],
            );
            self.create(&pod_type, ns, object);
        }
        if let (None, Some(d)) = (&end, deadline) {
            self.schedule(since + d, Wake::Job(ns.to_owned(), name.to_owned()));
        }
        let now = timestamp();
        let mut status = omit_zero(json!({
            "startTime": started,
            "active": if end.is_some() { 0 } else { active.max(1) },
            "succeeded": succeeded,
            "failed": failed,
        }));
        if let Some((type_, reason, message)) = end {
            status["conditions"] = json!([{"type": type_, "status": "True", "reason": reason,
                "message": message, "lastTransitionTime": now, "lastProbeTime": now}]);
            if type_ == "Complete" {
                status["completionTime"] = json!(now);
            }
            self.job_started.remove(&(ns.to_owned(), name.to_owned()));
        }
        self.write_status(&job_type, ns, name, status, CONTROLLER);
    }
}
