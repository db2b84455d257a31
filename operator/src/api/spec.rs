//! The Store's spec: what the platform operator asks for.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use storekeeper_contract::ShopService;

use crate::api::StoreStatus;

/// A whole online shop: data layer, five services, Ingress.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "storekeeper.dev",
    version = "v1alpha1",
    kind = "Store",
    plural = "stores",
    namespaced,
    status = "StoreStatus",
    category = "all",
    derive = "PartialEq",
    doc = "A Store runs a whole online shop: PostgreSQL, Redis, RabbitMQ, the five shop services and their Ingress.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.currentVersion", description = "Version the shop serves: that of the last revision that rolled out completely"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.rollout.step", description = "Rollout step in flight (empty when no rollout is)"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.ready"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("a Store's name must be at most 40 characters, so every child name stays a valid DNS label"),
)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    /// Image tag every shop service runs (e.g. `1.4.2`), unless a service overrides it; also the `app.kubernetes.io/version` label, so at most 63 characters, starting and ending alphanumeric. `latest` is refused: a rollout must name what it rolls out.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self != 'latest'").message("version must name a release, not 'latest'"))]
    pub version: String,

    /// Registry and path prefix the service images are pulled from; an image is `<imageRegistry>/<service-image>:<version>`.
    #[serde(default = "default_registry")]
    #[schemars(length(min = 1, max = 200))]
    pub image_registry: String,

    /// E-mail of the shop's admin account. The password is generated into the Secret `<store>-admin`. Defaults to `admin@<ingress.host>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub admin_email: Option<String>,

    /// Per-service settings: replicas, resources, image overrides.
    #[serde(default)]
    pub services: Services,

    /// How shoppers reach the shop.
    pub ingress: IngressSpec,

    /// PostgreSQL: `managed` (a StatefulSet the operator runs, or a CloudNativePG `Cluster` it asks for) or `external` (a Secret with connection URLs).
    #[serde(default)]
    #[x_kube(
        validation = Rule::new("!has(self.managed) || !has(self.managed.provider) || self.managed.provider in ['Auto', 'Builtin', 'CloudNativePG']").message("PostgreSQL's provider is Auto, Builtin or CloudNativePG"),
        validation = Rule::new("!has(self.managed) || !has(self.managed.replicas)").message("replicas is for RabbitMQ; PostgreSQL has instances"),
    )]
    pub postgres: DataStore,

    /// Redis: `managed` or `external`.
    #[serde(default)]
    #[x_kube(
        validation = Rule::new("!has(self.managed) || !has(self.managed.backup)").message("backup is for PostgreSQL only"),
        validation = Rule::new("!has(self.managed) || !has(self.managed.provider) || self.managed.provider in ['Auto', 'Builtin']").message("Redis' provider is Auto or Builtin"),
        validation = Rule::new("!has(self.managed) || (!has(self.managed.instances) && !has(self.managed.replicas))").message("Redis runs one replica"),
    )]
    pub redis: DataStore,

    /// RabbitMQ: `managed` (a StatefulSet the operator runs, or a `RabbitmqCluster` it asks the RabbitMQ Cluster Operator for) or `external`.
    #[serde(default)]
    #[x_kube(
        validation = Rule::new("!has(self.managed) || !has(self.managed.backup)").message("backup is for PostgreSQL only"),
        validation = Rule::new("!has(self.managed) || !has(self.managed.provider) || self.managed.provider in ['Auto', 'Builtin', 'RabbitmqClusterOperator']").message("RabbitMQ's provider is Auto, Builtin or RabbitmqClusterOperator"),
        validation = Rule::new("!has(self.managed) || !has(self.managed.instances)").message("instances is for PostgreSQL; RabbitMQ has replicas"),
    )]
    pub rabbitmq: DataStore,

    /// What happens to the managed data stores' volumes and generated credentials when the Store is deleted. `Retain` (the default): the PersistentVolumeClaims and the Secrets `<store>-postgres`, `<store>-redis`, `<store>-rabbitmq` stay, and a Store re-created under the same name reuses both, so its services still log in to the data the volumes were initialised with. `Delete`: both are deleted with the Store (the data is gone). Volumes and credentials always go together: a volume without the password it was initialised with cannot be opened by the services.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// How new versions are rolled out.
    #[serde(default)]
    pub rollout: RolloutSpec,

    /// What the operator creates so the shop is watched: scrape config, alert rules, a dashboard — or a monitoring stack of its own — and where traces go.
    #[serde(default)]
    pub observability: ObservabilitySpec,

    /// Whether access tokens are bound to this Store (`iss` and `aud` = `storekeeper:<namespace>/<name>`), so a token of another shop is refused. `Off` (the default): not signed, not checked. `Sign`: user-service signs them and every service checks them when a token carries them — set it once every service runs a release that knows them. `Require`: a token without them is refused too — set it after `Sign` has been in place longer than a token lives (15 minutes).
    #[serde(default)]
    pub token_scope: TokenScopeMode,

    /// When true the operator stops changing the shop's objects (status is still reported).
    #[serde(default)]
    pub paused: bool,
}

/// How the shop is watched: monitoring objects for a cluster that runs the Prometheus Operator (kube-prometheus-stack) and Grafana's dashboard sidecar, or a small Prometheus, Loki and Grafana of the Store's own; and where traces go.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObservabilitySpec {
    /// `Auto` (the default): a PodMonitor that scrapes the five services' admin port and a PrometheusRule with the shop's alerts, when the cluster serves the Prometheus Operator's `monitoring.coreos.com/v1` kinds, and a Grafana dashboard ConfigMap (label `grafana_dashboard: "1"`) in any case. `Managed`: the operator runs `<store>-prometheus` (the same alerts), `<store>-loki` (the services ship their logs to it over OTLP) and `<store>-grafana` (both as data sources, the dashboard, the admin password in the Secret `<store>-grafana`) in the Store's namespace, for clusters without a monitoring stack. `Off`: none of them.
    #[serde(default)]
    pub mode: ObservabilityMode,
    /// Extra labels on the PodMonitor, the PrometheusRule and the dashboard ConfigMap, for a Prometheus or Grafana that selects by label (kube-prometheus-stack's Prometheus selects `release: <its Helm release>`). `app.kubernetes.io/*` keys are the operator's own and are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Volumes and retention of the `Managed` stack (ignored in the other modes).
    #[serde(default, skip_serializing_if = "ManagedMonitoring::is_default")]
    pub managed: ManagedMonitoring,
    /// Export the services' traces over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER_ARG` on every service). Omit to export none (trace ids are still made and logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<TracesSpec>,
}

/// The volumes and retention of the `Managed` monitoring stack. The volumes are StatefulSet claim templates, so their size and class cannot change.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.prometheusStorage == oldSelf.prometheusStorage").message("prometheusStorage cannot change: a StatefulSet's volume claim template is immutable (expand the PersistentVolumeClaim itself instead)").field_path(".prometheusStorage").reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.lokiStorage == oldSelf.lokiStorage").message("lokiStorage cannot change: a StatefulSet's volume claim template is immutable (expand the PersistentVolumeClaim itself instead)").field_path(".lokiStorage").reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storageClassName cannot change: a StatefulSet's volume claim template is immutable").field_path(".storageClassName").reason(Reason::FieldValueForbidden),
)]
pub struct ManagedMonitoring {
    /// Days Prometheus keeps samples and Loki keeps log lines.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 365))]
    pub retention_days: i32,
    /// Size of Prometheus' PersistentVolumeClaim. Prometheus also deletes its oldest blocks once they fill 80 % of it, whatever their age.
    #[serde(default = "default_monitoring_storage")]
    #[schemars(regex(pattern = r"^[0-9]+(Mi|Gi|Ti)$"))]
    pub prometheus_storage: String,
    /// Size of Loki's PersistentVolumeClaim.
    #[serde(default = "default_monitoring_storage")]
    #[schemars(regex(pattern = r"^[0-9]+(Mi|Gi|Ti)$"))]
    pub loki_storage: String,
    /// StorageClass of both claims; the cluster default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

fn default_retention_days() -> i32 {
    15
}

fn default_monitoring_storage() -> String {
    "10Gi".to_owned()
}

impl ManagedMonitoring {
    /// Left out of a stored spec when default, so a Store that never set it
    /// keeps the revision id it had before the field existed.
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for ManagedMonitoring {
    fn default() -> Self {
        Self {
            retention_days: default_retention_days(),
            prometheus_storage: default_monitoring_storage(),
            loki_storage: default_monitoring_storage(),
            storage_class_name: None,
        }
    }
}

/// Where the services send their spans.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TracesSpec {
    /// Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo), e.g. `http://collector.observability:4318`; spans are posted to `<endpoint>/v1/traces`. The services' NetworkPolicies let them reach its port.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")
    )]
    pub endpoint: String,
    /// Share of new traces sampled: a decimal string from `"0"` to `"1"` with at most four decimals (`"0.1"` keeps one in ten). A trace started upstream keeps its parent's decision, so a checkout is kept whole or not at all. Omit to keep every trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$"))]
    pub sample_ratio: Option<String>,
}

/// How far access tokens are bound to their Store (see `tokenScope`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TokenScopeMode {
    /// Tokens carry no issuer or audience.
    #[default]
    Off,
    /// Signed, and checked where present.
    Sign,
    /// Signed, checked, and required.
    Require,
}

/// Whether the operator creates the monitoring objects.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ObservabilityMode {
    /// Create what the cluster can use (see `mode`).
    #[default]
    Auto,
    /// Run a Prometheus, Loki and Grafana of the Store's own.
    Managed,
    /// Create none.
    Off,
}

/// Whether a deleted Store's data (volumes and the credentials they were initialised with) stays.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the data stores' PersistentVolumeClaims and credential Secrets; a Store re-created under the same name picks them up again.
    #[default]
    Retain,
    /// Delete the data stores' PersistentVolumeClaims and credential Secrets with the Store.
    Delete,
}

fn default_registry() -> String {
    "ghcr.io/storekeeper-dev".to_owned()
}

/// Settings for each of the five services.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    /// user-service: accounts, login, tokens.
    #[serde(default)]
    pub user: ServiceSpec,
    /// product-service: catalog, search, stock.
    #[serde(default)]
    pub product: ServiceSpec,
    /// order-service: cart, checkout, orders.
    #[serde(default)]
    pub order: ServiceSpec,
    /// payment-service: payments, refunds.
    #[serde(default)]
    pub payment: ServiceSpec,
    /// storefront: the server-rendered shop.
    #[serde(default)]
    pub storefront: ServiceSpec,
}

impl Services {
    /// The settings of one service.
    pub fn get(&self, service: ShopService) -> &ServiceSpec {
        match service {
            ShopService::User => &self.user,
            ShopService::Product => &self.product,
            ShopService::Order => &self.order,
            ShopService::Payment => &self.payment,
            ShopService::Storefront => &self.storefront,
        }
    }
}

/// Settings of one shop service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Number of pods; ignored when `autoscaling` is set (a HorizontalPodAutoscaler then decides).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 20))]
    pub replicas: i32,
    /// Scale the service with its CPU load: the operator creates a HorizontalPodAutoscaler (`autoscaling/v2`) and stops setting the Deployment's replica count, so the autoscaler's changes are not reverted. Omit for a fixed `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Image tag for this service only; defaults to `spec.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self != 'latest'").message("version must name a release, not 'latest'"))]
    pub version: Option<String>,
    /// Full image reference without tag (e.g. `registry.example.com/shop/user`); defaults to `<imageRegistry>/<service-image>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 250))]
    #[x_kube(validation = Rule::new("!self.contains(':') || self.lastIndexOf(':') < self.lastIndexOf('/')").message("image must not carry a tag; set version instead"))]
    pub image: Option<String>,
    /// CPU and memory requests and limits.
    #[serde(default)]
    pub resources: Resources,
}

fn default_replicas() -> i32 {
    2
}

/// Bounds and target of a service's HorizontalPodAutoscaler. CPU utilisation is measured against the container's CPU request (`resources.requests.cpu`), so the cluster needs the metrics API (metrics-server).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// Fewest pods, also during quiet hours; 2 or more keeps the service up while a pod restarts.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// Most pods the autoscaler may run.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU use across the pods, in percent of their CPU request, that the autoscaler keeps them at.
    #[serde(
        default = "default_cpu_target",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 10, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu_target() -> i32 {
    70
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            autoscaling: None,
            version: None,
            image: None,
            resources: Resources::default(),
        }
    }
}

/// CPU and memory requests and limits, as Kubernetes quantities.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default = "default_requests")]
    pub requests: ResourceAmounts,
    /// The most a container may use.
    #[serde(default = "default_limits")]
    pub limits: ResourceAmounts,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            requests: default_requests(),
            limits: default_limits(),
        }
    }
}

fn default_requests() -> ResourceAmounts {
    ResourceAmounts {
        cpu: "100m".to_owned(),
        memory: "128Mi".to_owned(),
    }
}

fn default_limits() -> ResourceAmounts {
    ResourceAmounts {
        cpu: "1".to_owned(),
        memory: "512Mi".to_owned(),
    }
}

/// A CPU and a memory amount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, e.g. `250m` or `1`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?m?$"))]
    pub cpu: String,
    /// Memory, e.g. `256Mi` or `1Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub memory: String,
}

/// How shoppers reach the shop: one host, the contract's routes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.gateway) || !has(self.tls) || !has(self.tls.issuer)").message("tls.issuer asks cert-manager for the Ingress's certificate; with a gateway the certificate is the Gateway listener's: annotate the Gateway for cert-manager instead"))]
pub struct IngressSpec {
    /// Host name of the shop, e.g. `shop.example.com` (a DNS name, no scheme, no port).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: String,
    /// IngressClass to use.
    #[serde(default = "default_class")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: String,
    /// TLS for the host; omit to serve plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Namespace the edge's proxy pods run in (Envoy Gateway's, as the bootstrap installs it); the NetworkPolicies admit shoppers' traffic from there only.
    #[serde(default = "default_controller_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub controller_namespace: String,
    /// Attach the shop to this Gateway API Gateway with an HTTPRoute (`<store>-edge`) instead of creating an Ingress. TLS then terminates at the Gateway's listener (its certificate); `tls` only makes the shop's URL `https` and its cookies Secure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRef>,
}

/// A Gateway (`gateway.networking.k8s.io/v1`) the shop's HTTPRoute attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// The Gateway's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Gateway's namespace; defaults to the Store's. The Gateway's listener must allow routes from the Store's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// The listener to attach to (e.g. `https`); all of the Gateway's listeners that allow the route when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
}

fn default_class() -> String {
    "nginx".to_owned()
}

fn default_controller_namespace() -> String {
    "envoy-gateway-system".to_owned()
}

/// TLS settings for the Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret (type `kubernetes.io/tls`) holding the certificate, e.g. one cert-manager fills.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// cert-manager issuer that obtains and renews the certificate into `secretName` (the Ingress gets cert-manager's issuer annotation; cert-manager must run in the cluster). The way to serve a public shop: with an ACME issuer the certificate is issued and renewed without anyone handling keys. Omit to provide the Secret yourself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerRef>,
}

/// A cert-manager issuer, by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// The issuer's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `ClusterIssuer` (cluster-wide, the usual for ACME) or `Issuer` (in the Store's namespace).
    #[serde(default)]
    pub kind: IssuerKind,
}

/// Which kind of cert-manager issuer.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IssuerKind {
    /// A `ClusterIssuer`.
    #[default]
    ClusterIssuer,
    /// An `Issuer` in the Store's namespace.
    Issuer,
}

/// A data store the operator either runs itself or connects to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of managed or external"))]
pub struct DataStore {
    /// Run it in the Store's namespace as a StatefulSet with a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<Managed>,
    /// Use one that runs elsewhere; connection details come from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
}

impl Default for DataStore {
    fn default() -> Self {
        Self {
            managed: Some(Managed::default()),
            external: None,
        }
    }
}

/// Settings of a data store the operator runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.storage == oldSelf.storage").message("storage cannot change: a StatefulSet's volume claim template is immutable (expand the PersistentVolumeClaim itself instead)").field_path(".storage").reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storageClassName cannot change: a StatefulSet's volume claim template is immutable").field_path(".storageClassName").reason(Reason::FieldValueForbidden),
)]
pub struct Managed {
    /// Who runs the store. `Auto` (the default): the ecosystem's operator when the cluster serves its kinds and the operator is allowed to use them (PostgreSQL: CloudNativePG's `postgresql.cnpg.io/v1` `Cluster`; RabbitMQ: the RabbitMQ Cluster Operator's `rabbitmq.com/v1beta1` `RabbitmqCluster`), but only for a store that has no data of the built-in kind yet — a Store whose built-in StatefulSet runs, or whose built-in credentials were kept from a deleted Store, stays `Builtin`; otherwise `Builtin`. `Builtin`: a one-replica StatefulSet the operator runs. `CloudNativePG` (PostgreSQL) and `RabbitmqClusterOperator` (RabbitMQ): always that operator; the Store is Stalled while the cluster does not serve its kinds. Changing the provider of a running store starts an empty one: move the data first (see the operator docs).
    #[serde(default, skip_serializing_if = "Provider::is_auto")]
    pub provider: Provider,
    /// PostgreSQL run by CloudNativePG only: how many instances (one primary, the others streaming replicas it fails over to). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: Option<i32>,
    /// RabbitMQ run by the RabbitMQ Cluster Operator only: how many nodes (1, 3 or 5; quorum queues need 3 to survive a node's loss). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: Option<i32>,
    /// Size of the PersistentVolumeClaim.
    #[serde(default = "default_storage")]
    #[schemars(regex(pattern = r"^[0-9]+(Mi|Gi|Ti)$"))]
    pub storage: String,
    /// StorageClass of the claim; the cluster default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
    /// CPU and memory requests and limits.
    #[serde(default)]
    pub resources: Resources,
    /// Image with its tag (e.g. `registry.example.com/mirror/postgres:17.7-bookworm`) instead of the one this operator release pins. The tag becomes the `app.kubernetes.io/version` label. A change is a new revision and rolls out in the Data step. PostgreSQL refuses a change of major version against the running StatefulSet (its data directory cannot be read by another major): see the operator docs for the upgrade path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 250))]
    #[x_kube(validation = Rule::new("self.contains(':') && self.lastIndexOf(':') > self.lastIndexOf('/')").message("image must carry a tag"))]
    pub image: Option<String>,
    /// PostgreSQL only: a scheduled logical backup (`pg_dump --format=custom` of each shop database) into the PersistentVolumeClaim `<store>-backups`. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

fn default_storage() -> String {
    "5Gi".to_owned()
}

impl Default for Managed {
    fn default() -> Self {
        Self {
            provider: Provider::Auto,
            instances: None,
            replicas: None,
            storage: default_storage(),
            storage_class_name: None,
            resources: Resources::default(),
            image: None,
            backup: None,
        }
    }
}

/// Who runs a managed data store (see `provider`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Provider {
    /// The ecosystem's operator where the cluster has it and the store holds no built-in data; else `Builtin`.
    #[default]
    Auto,
    /// A one-replica StatefulSet the Storekeeper operator runs.
    Builtin,
    /// PostgreSQL as a CloudNativePG `Cluster`.
    #[serde(rename = "CloudNativePG")]
    CloudNativePg,
    /// RabbitMQ as a RabbitMQ Cluster Operator `RabbitmqCluster`.
    RabbitmqClusterOperator,
}

impl Provider {
    /// Left out of a stored spec when `Auto`, so a Store that never set it
    /// keeps the revision id it had before the field existed.
    pub fn is_auto(&self) -> bool {
        *self == Provider::Auto
    }

    /// Whether the store runs on an operator of the ecosystem.
    pub fn delegates(self) -> bool {
        matches!(
            self,
            Provider::CloudNativePg | Provider::RabbitmqClusterOperator
        )
    }
}

/// A scheduled logical backup of the managed PostgreSQL: a CronJob dumps each shop database into a volume of its own, so a lost or corrupted database can be restored (see the operator docs' restore runbook).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// When to back up: a cron schedule in UTC, five fields (`17 3 * * *`) or a macro (`@daily`).
    #[serde(default = "default_backup_schedule")]
    #[schemars(
        length(min = 1, max = 100),
        regex(
            pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+(\s+\S+){4})$"
        )
    )]
    pub schedule: String,
    /// How many backups to keep, newest first; older ones are deleted after each successful backup.
    #[serde(default = "default_backup_retain")]
    #[schemars(range(min = 1, max = 100))]
    pub retain: i32,
    /// Size of the backups' PersistentVolumeClaim `<store>-backups`; room for `retain` dumps of every database.
    #[serde(default = "default_storage")]
    #[schemars(regex(pattern = r"^[0-9]+(Mi|Gi|Ti)$"))]
    pub storage: String,
    /// StorageClass of the backups' claim; the cluster default when omitted. Pick one whose volumes live apart from the database's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
    /// PostgreSQL run by CloudNativePG only, and required there: back up to this S3-compatible object store instead (CloudNativePG's physical base backups on `schedule` plus continuous WAL archiving, through the Barman Cloud plugin). `retain`, `storage` and `storageClassName` are then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectStore>,
}

/// An S3-compatible bucket CloudNativePG's Barman Cloud plugin writes base backups and WAL to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStore {
    /// Where the backups go, e.g. `s3://backups/shop`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^s3://[^\s]+$"))]
    pub destination_path: String,
    /// The object store's endpoint when it is not AWS S3 (MinIO, Ceph, another cloud's S3 API), e.g. `https://minio.backup:9000`.
    #[serde(
        default,
        rename = "endpointURL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint_url: Option<String>,
    /// Secret in the Store's namespace with the bucket's credentials: keys `ACCESS_KEY_ID` and `ACCESS_SECRET_KEY`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// How long backups and WAL are kept: a number and `d`, `w` or `m` (days, weeks, months), e.g. `30d`.
    #[serde(default = "default_retention_policy")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*[dwm]$"))]
    pub retention_policy: String,
}

fn default_retention_policy() -> String {
    "30d".to_owned()
}

fn default_backup_schedule() -> String {
    "17 3 * * *".to_owned()
}

fn default_backup_retain() -> i32 {
    7
}

impl Default for Backup {
    fn default() -> Self {
        Self {
            schedule: default_backup_schedule(),
            retain: default_backup_retain(),
            storage: default_storage(),
            storage_class_name: None,
            object_store: None,
        }
    }
}

/// A data store that runs outside the Store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct External {
    /// Secret in the Store's namespace with the connection URLs. PostgreSQL: keys `users`, `products`, `orders`, `payments` (one URL per service database). Redis and RabbitMQ: key `url`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// How new versions are rolled out: step by step (Foundation, Data, Migrations, Backends, Storefront, Edge), each step only once the one before is healthy, and back to the last revision that rolled out completely when a step fails.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// When a step fails (not healthy within `healthTimeoutSeconds`, a container that cannot start or restarted, failed analysis), re-apply the last revision that rolled out completely, last step first. The failed revision is not retried until the spec changes. When false, the rollout holds where it failed and the old pods keep serving.
    #[serde(default = "default_true")]
    pub auto_rollback: bool,
    /// Seconds a step may take to become healthy before it counts as failed (also the Deployments' progress deadline).
    #[serde(default = "default_health_timeout")]
    #[schemars(range(min = 30, max = 3600))]
    pub health_timeout_seconds: i32,
    /// Extra pods a Deployment may start during a rollout: a count (`1`) or a percentage (`25%`), at least 1 (pods are never taken down before their replacement is ready, so a surge of 0 could never progress).
    #[serde(default = "default_max_surge")]
    #[schemars(regex(pattern = r"^([1-9]|[1-9][0-9]|100)%?$"))]
    pub max_surge: String,
    /// How many revisions of the spec are kept as ControllerRevisions (`<store>-<revision>`), newest first; the stable and the target revision are always kept.
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 50))]
    pub revision_history_limit: i32,
    /// Also judge the backend and storefront steps by their new pods' own metrics (the admin port's `/metrics`; no Prometheus needed) before the next step starts. Without it a step only has to be healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

fn default_true() -> bool {
    true
}

fn default_health_timeout() -> i32 {
    600
}

fn default_max_surge() -> String {
    "25%".to_owned()
}

fn default_history_limit() -> i32 {
    5
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            auto_rollback: true,
            health_timeout_seconds: default_health_timeout(),
            max_surge: default_max_surge(),
            revision_history_limit: default_history_limit(),
            analysis: None,
        }
    }
}

/// How a backend or storefront step is judged before the next step starts. Each service is judged on its own new pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Seconds a backend or storefront step must stay healthy before the next step starts; its new pods' metrics are judged at the end of this bake.
    #[serde(default = "default_bake")]
    #[schemars(range(min = 10, max = 3600))]
    pub bake_seconds: i32,
    /// Highest share of a service's requests its new pods may answer with a 5xx during the bake: a decimal string from `"0"` to `"1"` with at most four decimals (`"0.01"` is 1 %). Omit to not judge errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$"))]
    pub max_error_ratio: Option<String>,
    /// Highest 99th-percentile latency of a service's new pods during the bake, in milliseconds. It is estimated from the services' latency histogram (buckets 1, 2, 4 ... 8192 ms), interpolating within a bucket as Prometheus' `histogram_quantile` does, so it is exact only at a bucket bound; a p99 above 8192 ms always fails. Omit to not judge latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub max_p99_milliseconds: Option<i32>,
    /// Fewest requests a service's new pods must serve during the bake for `maxErrorRatio` and `maxP99Milliseconds` to be judged. With fewer the service passes unjudged (a quiet shop still rolls out) and the `AnalysisPassed` Event says so.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub min_requests: i32,
}

fn default_bake() -> i32 {
    60
}

fn default_min_requests() -> i32 {
    100
}
