//! What rendering needs to know about the operator's own installation, as
//! opposed to the Store: today, where the operator serves its metrics, so a
//! Store's own Prometheus (`observability.mode: Managed`) can scrape the
//! Store's phase and conditions and its Stalled and RolledBack alerts fire.
//! Empty by default (`storekeeper render`, an operator run from a laptop):
//! the Store then renders exactly as before.

/// The operator's installation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    /// Where the operator's metrics are served inside the cluster, when known.
    pub operator_metrics: Option<OperatorMetrics>,
}

/// The operator's metrics Service, which the chart creates next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// The operator's namespace.
    pub namespace: String,
    /// The metrics Service's name.
    pub service: String,
    /// The Service's (and the pods') admin port.
    pub port: u16,
}

impl OperatorMetrics {
    /// `host:port` as a Prometheus static target, from any namespace.
    pub fn target(&self) -> String {
        format!("{}.{}.svc:{}", self.service, self.namespace, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_services_cluster_name_and_port() {
        let metrics = OperatorMetrics {
            namespace: "storekeeper-system".into(),
            service: "storekeeper-metrics".into(),
            port: 8080,
        };
        assert_eq!(
            metrics.target(),
            "storekeeper-metrics.storekeeper-system.svc:8080"
        );
    }
}
