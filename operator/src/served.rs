//! Which optional child kinds the API server serves. The PodMonitor and
//! PrometheusRule kinds come from the Prometheus Operator's CRDs, which a
//! cluster may not have: the operator neither lists nor applies a kind the
//! API does not serve (either would fail every reconcile), and a step never
//! waits for such an object. Discovered when the controller starts and
//! again every few minutes, so installing the CRDs later is picked up.
//! The data-store operators' kinds (CloudNativePG's, the RabbitMQ Cluster
//! Operator's) are looked for only when the operator was installed to
//! delegate to them (`--delegate`, which goes with their RBAC rules).

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kube::Client;
use tracing::{info, warn};

use crate::render::delegated::provider::Available;
use crate::render::{ChildKind, Delegate, Rendered};

/// How often the served kinds are looked up again.
pub const REDISCOVER_EVERY: Duration = Duration::from_mins(5);

/// The optional kinds found served; every other kind always is.
#[derive(Clone, Debug, Default)]
pub struct Served {
    found: Arc<RwLock<BTreeSet<ChildKind>>>,
    /// The data-store operators whose kinds are looked for.
    delegates: BTreeSet<Delegate>,
}

impl Served {
    /// Every optional kind served but the data-store operators' (tests, and
    /// a cluster known to run the Prometheus Operator and the Gateway API).
    pub fn all() -> Self {
        Self::with(
            ChildKind::ALL
                .into_iter()
                .filter(|k| k.is_optional() && k.delegate().is_none()),
        )
    }

    /// Exactly `kinds` served (tests), the delegates they belong to allowed.
    pub fn with(kinds: impl IntoIterator<Item = ChildKind>) -> Self {
        let found: BTreeSet<ChildKind> = kinds.into_iter().collect();
        Self {
            delegates: found.iter().filter_map(|k| k.delegate()).collect(),
            found: Arc::new(RwLock::new(found)),
        }
    }

    /// The same, also looking for the kinds of `delegates` from the next
    /// discovery on.
    #[must_use]
    pub fn delegating(mut self, delegates: impl IntoIterator<Item = Delegate>) -> Self {
        self.delegates.extend(delegates);
        self
    }

    /// Which data-store operators a Store's `provider` may use.
    pub fn available(&self) -> Available {
        Available {
            cloudnative_pg: self.serves(ChildKind::CnpgCluster)
                && self.serves(ChildKind::CnpgDatabase)
                && self.serves(ChildKind::CnpgScheduledBackup),
            barman_cloud: self.serves(ChildKind::BarmanObjectStore),
            rabbitmq_cluster_operator: self.serves(ChildKind::RabbitmqCluster),
        }
    }

    /// Whether the operator may list and apply `kind`.
    pub fn serves(&self, kind: ChildKind) -> bool {
        !kind.is_optional()
            || self
                .found
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&kind)
    }

    /// `rendered` without the objects of kinds the API does not serve.
    #[must_use]
    pub fn keep(&self, mut rendered: Rendered) -> Rendered {
        rendered.objects.retain(|o| self.serves(o.kind));
        rendered
    }

    /// Asks the API server which optional kinds it serves; a group it does
    /// not know (404) is simply not served.
    pub async fn discover(&self, client: &Client) {
        let mut found = BTreeSet::new();
        let wanted = ChildKind::ALL.into_iter().filter(|k| {
            k.is_optional() && k.delegate().is_none_or(|d| self.delegates.contains(&d))
        });
        for kind in wanted {
            match client.list_api_group_resources(&kind.api_version()).await {
                Ok(list) if list.resources.iter().any(|r| r.name == kind.plural()) => {
                    found.insert(kind);
                }
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    warn!(kind = kind.kind(), error = %e, "cannot tell whether the API serves this kind; treating it as absent");
                }
            }
        }
        let mut served = self.found.write().unwrap_or_else(PoisonError::into_inner);
        if *served != found {
            info!(kinds = ?found, "optional kinds served");
            *served = found;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;
    use crate::render::render;

    #[test]
    fn unserved_kinds_are_dropped_and_the_rest_kept() {
        let rendered = render(&store("shop")).unwrap();
        let none = Served::default().keep(rendered.clone());
        assert!(none.objects.iter().all(|o| !o.kind.is_optional()));
        assert_eq!(
            none.objects.len(),
            rendered
                .objects
                .iter()
                .filter(|o| !o.kind.is_optional())
                .count()
        );
        assert_eq!(Served::all().keep(rendered.clone()), rendered);
        assert!(Served::default().serves(ChildKind::Deployment));
        assert!(!Served::default().serves(ChildKind::PodMonitor));
    }

    #[test]
    fn a_delegate_is_available_only_with_all_its_kinds() {
        assert_eq!(Served::all().available(), Available::default());
        let cnpg = Served::with([ChildKind::CnpgCluster, ChildKind::CnpgDatabase]);
        assert!(!cnpg.available().cloudnative_pg, "no ScheduledBackup kind");
        let both = Served::with([
            ChildKind::CnpgCluster,
            ChildKind::CnpgDatabase,
            ChildKind::CnpgScheduledBackup,
            ChildKind::RabbitmqCluster,
        ]);
        assert_eq!(
            both.available(),
            Available {
                cloudnative_pg: true,
                barman_cloud: false,
                rabbitmq_cluster_operator: true,
            }
        );
    }
}
