//! The kinds of child object a Store has, with what the API needs to address
//! each (group, version, plural). The reconciler lists, applies and prunes by
//! walking this one list; the RBAC list in `crate::rbac` is derived from it.

use kube::core::{ApiResource, GroupVersionKind};

/// A kind of object the operator creates for a Store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    /// Generated credentials (created once, never applied or pruned).
    Secret,
    /// Shared, non-secret settings and the PostgreSQL init script.
    ConfigMap,
    /// One identity per workload, without token automount.
    ServiceAccount,
    /// What the managed Prometheus may read (the namespace's pods).
    Role,
    /// Grants the managed Prometheus' ServiceAccount its Role.
    RoleBinding,
    /// Default-deny plus the flows the shop needs.
    NetworkPolicy,
    /// Stable addresses for data stores and services.
    Service,
    /// Data stores with persistent volumes.
    StatefulSet,
    /// Schema migrations, run once per service and schema.
    Job,
    /// The five shop services.
    Deployment,
    /// Keeps a service up during node drains.
    PodDisruptionBudget,
    /// Scales an autoscaled service's Deployment with its CPU load.
    HorizontalPodAutoscaler,
    /// Routes shoppers to the storefront and the APIs.
    Ingress,
    /// Tells a Prometheus Operator's Prometheus to scrape the services.
    PodMonitor,
    /// The shop's alerts, for a Prometheus Operator's Prometheus.
    PrometheusRule,
    /// Routes shoppers in through a Gateway API Gateway (instead of the Ingress).
    HttpRoute,
    /// The volume PostgreSQL's backups are written to (only with backups on).
    PersistentVolumeClaim,
    /// Runs PostgreSQL's scheduled backup (only with backups on).
    CronJob,
    /// PostgreSQL run by CloudNativePG (`postgresql.cnpg.io/v1` `Cluster`).
    CnpgCluster,
    /// One shop database in a CloudNativePG `Cluster`.
    CnpgDatabase,
    /// CloudNativePG's backup schedule for the `Cluster`.
    CnpgScheduledBackup,
    /// Where the Barman Cloud plugin writes CloudNativePG's backups (`barmancloud.cnpg.io/v1`).
    BarmanObjectStore,
    /// RabbitMQ run by the RabbitMQ Cluster Operator (`rabbitmq.com/v1beta1`).
    RabbitmqCluster,
}

/// An operator of the ecosystem a managed data store can be delegated to.
/// Its kinds are used only when the Storekeeper operator was installed to
/// use it (`storekeeper run --delegate`, the chart's `delegation` values,
/// which also grant the RBAC rules) and the cluster serves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Delegate {
    /// CloudNativePG, for PostgreSQL (with its Barman Cloud plugin for backups).
    #[value(name = "cloudnative-pg")]
    CloudNativePg,
    /// The RabbitMQ Cluster Operator, for RabbitMQ.
    #[value(name = "rabbitmq-cluster-operator")]
    RabbitmqClusterOperator,
}

impl Delegate {
    /// Both, in a stable order.
    pub const ALL: [Delegate; 2] = [Delegate::CloudNativePg, Delegate::RabbitmqClusterOperator];
}

impl ChildKind {
    /// Every kind, in the order the reconciler lists them.
    pub const ALL: [ChildKind; 23] = [
        ChildKind::Secret,
        ChildKind::ConfigMap,
        ChildKind::ServiceAccount,
        ChildKind::Role,
        ChildKind::RoleBinding,
        ChildKind::NetworkPolicy,
        ChildKind::Service,
        ChildKind::StatefulSet,
        ChildKind::Job,
        ChildKind::Deployment,
        ChildKind::PodDisruptionBudget,
        ChildKind::HorizontalPodAutoscaler,
        ChildKind::Ingress,
        ChildKind::PodMonitor,
        ChildKind::PrometheusRule,
        ChildKind::HttpRoute,
        ChildKind::PersistentVolumeClaim,
        ChildKind::CronJob,
        ChildKind::CnpgCluster,
        ChildKind::CnpgDatabase,
        ChildKind::CnpgScheduledBackup,
        ChildKind::BarmanObjectStore,
        ChildKind::RabbitmqCluster,
    ];

    /// API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            ChildKind::Secret
            | ChildKind::ConfigMap
            | ChildKind::ServiceAccount
            | ChildKind::Service
            | ChildKind::PersistentVolumeClaim => "",
            ChildKind::StatefulSet | ChildKind::Deployment => "apps",
            ChildKind::Job | ChildKind::CronJob => "batch",
            ChildKind::PodDisruptionBudget => "policy",
            ChildKind::HorizontalPodAutoscaler => "autoscaling",
            ChildKind::NetworkPolicy | ChildKind::Ingress => "networking.k8s.io",
            ChildKind::Role | ChildKind::RoleBinding => "rbac.authorization.k8s.io",
            ChildKind::PodMonitor | ChildKind::PrometheusRule => "monitoring.coreos.com",
            ChildKind::HttpRoute => "gateway.networking.k8s.io",
            ChildKind::CnpgCluster | ChildKind::CnpgDatabase | ChildKind::CnpgScheduledBackup => {
                "postgresql.cnpg.io"
            }
            ChildKind::BarmanObjectStore => "barmancloud.cnpg.io",
            ChildKind::RabbitmqCluster => "rabbitmq.com",
        }
    }

    /// Kind name.
    pub fn kind(self) -> &'static str {
        match self {
            ChildKind::Secret => "Secret",
            ChildKind::ConfigMap => "ConfigMap",
            ChildKind::ServiceAccount => "ServiceAccount",
            ChildKind::Role => "Role",
            ChildKind::RoleBinding => "RoleBinding",
            ChildKind::NetworkPolicy => "NetworkPolicy",
            ChildKind::Service => "Service",
            ChildKind::StatefulSet => "StatefulSet",
            ChildKind::Job => "Job",
            ChildKind::Deployment => "Deployment",
            ChildKind::PodDisruptionBudget => "PodDisruptionBudget",
            ChildKind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            ChildKind::Ingress => "Ingress",
            ChildKind::PodMonitor => "PodMonitor",
            ChildKind::PrometheusRule => "PrometheusRule",
            ChildKind::HttpRoute => "HTTPRoute",
            ChildKind::PersistentVolumeClaim => "PersistentVolumeClaim",
            ChildKind::CronJob => "CronJob",
            ChildKind::CnpgCluster => "Cluster",
            ChildKind::CnpgDatabase => "Database",
            ChildKind::CnpgScheduledBackup => "ScheduledBackup",
            ChildKind::BarmanObjectStore => "ObjectStore",
            ChildKind::RabbitmqCluster => "RabbitmqCluster",
        }
    }

    /// Plural resource name, as used in URLs and RBAC rules.
    pub fn plural(self) -> &'static str {
        match self {
            ChildKind::Secret => "secrets",
            ChildKind::ConfigMap => "configmaps",
            ChildKind::ServiceAccount => "serviceaccounts",
            ChildKind::Role => "roles",
            ChildKind::RoleBinding => "rolebindings",
            ChildKind::NetworkPolicy => "networkpolicies",
            ChildKind::Service => "services",
            ChildKind::StatefulSet => "statefulsets",
            ChildKind::Job => "jobs",
            ChildKind::Deployment => "deployments",
            ChildKind::PodDisruptionBudget => "poddisruptionbudgets",
            ChildKind::HorizontalPodAutoscaler => "horizontalpodautoscalers",
            ChildKind::Ingress => "ingresses",
            ChildKind::PodMonitor => "podmonitors",
            ChildKind::PrometheusRule => "prometheusrules",
            ChildKind::HttpRoute => "httproutes",
            ChildKind::PersistentVolumeClaim => "persistentvolumeclaims",
            ChildKind::CronJob => "cronjobs",
            ChildKind::CnpgCluster => "clusters",
            ChildKind::CnpgDatabase => "databases",
            ChildKind::CnpgScheduledBackup => "scheduledbackups",
            ChildKind::BarmanObjectStore => "objectstores",
            ChildKind::RabbitmqCluster => "rabbitmqclusters",
        }
    }

    /// Version of the kind's API: `v1`, except the HorizontalPodAutoscaler's
    /// `v2` (the first with resource metrics as utilisation targets) and the
    /// RabbitmqCluster's `v1beta1` (the only one it has).
    pub fn version(self) -> &'static str {
        match self {
            ChildKind::HorizontalPodAutoscaler => "v2",
            ChildKind::RabbitmqCluster => "v1beta1",
            _ => "v1",
        }
    }

    /// `apiVersion` of the kind (`<version>` or `<group>/<version>`).
    pub fn api_version(self) -> String {
        if self.group().is_empty() {
            self.version().to_owned()
        } else {
            format!("{}/{}", self.group(), self.version())
        }
    }

    /// Whether objects of this kind are server-side applied and pruned.
    /// Secrets are not: their values are generated once and must survive.
    pub fn is_applied(self) -> bool {
        self != ChildKind::Secret
    }

    /// Whether the kind comes from a CRD the cluster may not have (the
    /// Prometheus Operator's, the Gateway API's, the data-store operators'):
    /// the operator lists and applies it only where the API serves it.
    pub fn is_optional(self) -> bool {
        matches!(
            self,
            ChildKind::PodMonitor | ChildKind::PrometheusRule | ChildKind::HttpRoute
        ) || self.delegate().is_some()
    }

    /// The data-store operator the kind belongs to, if any: such a kind is
    /// used, and in the RBAC rules, only where the operator was installed
    /// to delegate to it.
    pub fn delegate(self) -> Option<Delegate> {
        match self {
            ChildKind::CnpgCluster
            | ChildKind::CnpgDatabase
            | ChildKind::CnpgScheduledBackup
            | ChildKind::BarmanObjectStore => Some(Delegate::CloudNativePg),
            ChildKind::RabbitmqCluster => Some(Delegate::RabbitmqClusterOperator),
            _ => None,
        }
    }

    /// What `kube::Api<DynamicObject>` needs to address the kind.
    pub fn api_resource(self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group(), self.version(), self.kind()),
            self.plural(),
        )
    }
}
