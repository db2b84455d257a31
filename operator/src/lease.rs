//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas of
//! the operator never reconcile at once. kube 5 ships no lease helper, so
//! this is the small loop client-go's leaderelection runs: take the Lease
//! when it is free or expired, renew it well inside its duration, and stop
//! (the process exits and restarts as a standby) when renewal fails for a
//! whole lease duration. Writes use `replace` with the read
//! `resourceVersion`, so two candidates racing for an expired Lease cannot
//! both win. The decision itself is the pure function `decide`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tracing::{info, warn};

use crate::Result;

/// What a candidate should do with the Lease it just read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it: wait.
    Wait,
}

/// Decides from the Lease's spec, our identity and the current time.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == me => Decision::Renew,
        Some(_) => {
            let duration =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            let expired = spec
                .renew_time
                .as_ref()
                .is_none_or(|t| t.0.checked_add(duration).is_ok_and(|end| end < now));
            if expired {
                Decision::Acquire
            } else {
                Decision::Wait
            }
        }
    }
}

/// Competes for, and keeps, one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    /// An elector for Lease `name` in `api`'s namespace.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// One round: take or renew the Lease if we may. `Ok(true)` means we lead.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        if decision == Decision::Wait {
            return Ok(false);
        }
        let previous = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.seconds()),
            renew_time: Some(MicroTime(now)),
            acquire_time: if decision == Decision::Acquire {
                Some(MicroTime(now))
            } else {
                previous.acquire_time.clone()
            },
            lease_transitions: Some(
                previous.lease_transitions.unwrap_or(0) + i32::from(decision == Decision::Acquire),
            ),
            ..previous
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            // Someone else wrote first; they lead this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up (on shutdown) so a standby takes over at once
    /// instead of waiting for it to expire.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election round failed"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the Lease until that fails for a whole lease duration (or
    /// someone else took it); returns when leadership is lost.
    pub async fn keep(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    warn!(error = %e, "renewing the lease failed");
                    if last_ok.elapsed() >= self.duration {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{Expect, Scenario, finish, not_found};
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::json;
    use tower_test::mock;

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/shop/leases/storekeeper-leader";

    fn elector() -> (LeaderElector, crate::fixtures::ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "shop");
        let api = Api::namespaced(client, "shop");
        let e = LeaderElector::new(api, "storekeeper-leader", "pod-a", Duration::from_secs(15));
        (e, crate::fixtures::ApiServerVerifier::from_handle(handle))
    }

    fn lease(holder: &str, renewed: Timestamp) -> serde_json::Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "storekeeper-leader", "namespace": "shop", "resourceVersion": "5"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": MicroTime(renewed)}})
    }

    fn get(reply: Option<serde_json::Value>) -> Expect {
        let mut e = Expect::new(Method::GET, PATH.into());
        if let Some(v) = reply {
            e.reply = Some(v);
            e
        } else {
            not_found(e)
        }
    }

    #[tokio::test]
    async fn a_missing_lease_is_created_and_held() {
        let (e, server) = elector();
        let mut create = Expect::new(
            Method::POST,
            PATH.trim_end_matches("/storekeeper-leader").into(),
        );
        create.body = Some(Box::new(|b| {
            assert_eq!(b["spec"]["holderIdentity"], json!("pod-a"));
        }));
        let srv = server.run(Scenario::Exactly(vec![get(None), create]));
        assert!(e.try_acquire_or_renew().await.unwrap());
        finish(srv).await;
    }

    #[tokio::test]
    async fn a_fresh_foreign_lease_is_left_alone() {
        let (e, server) = elector();
        let srv = server.run(Scenario::Exactly(vec![get(Some(lease(
            "pod-b",
            Timestamp::now(),
        )))]));
        assert!(!e.try_acquire_or_renew().await.unwrap());
        finish(srv).await;
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_and_a_lost_race_is_not_an_error() {
        let (e, server) = elector();
        let old = Timestamp::from_second(1_000).unwrap();
        let mut put = Expect::new(Method::PUT, PATH.into());
        put.body = Some(Box::new(|b| {
            assert_eq!(b["spec"]["holderIdentity"], json!("pod-a"));
            assert_eq!(b["metadata"]["resourceVersion"], json!("5"));
            assert_eq!(b["spec"]["leaseTransitions"], json!(1));
        }));
        put.status = StatusCode::CONFLICT;
        put.reply = Some(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "Conflict", "code": 409}),
        );
        let srv = server.run(Scenario::Exactly(vec![get(Some(lease("pod-b", old))), put]));
        assert!(!e.try_acquire_or_renew().await.unwrap());
        finish(srv).await;
    }

    fn held_by(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn free_expired_own_and_foreign_leases() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let fresh = Timestamp::from_second(999_995).unwrap();
        let stale = Timestamp::from_second(999_900).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", now),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&held_by("a", fresh)), "a", now),
            Decision::Renew
        );
        assert_eq!(decide(Some(&held_by("b", fresh)), "a", now), Decision::Wait);
        assert_eq!(
            decide(Some(&held_by("b", stale)), "a", now),
            Decision::Acquire
        );
    }
}
