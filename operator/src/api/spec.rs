//! The Store's spec: what the platform operator asks for.

use kube::{CustomResource, KubeSchema};
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

    /// PostgreSQL: `managed` (a StatefulSet the operator runs) or `external` (a Secret with connection URLs).
    #[serde(default)]
    pub postgres: DataStore,

    /// Redis: `managed` or `external`.
    #[serde(default)]
    pub redis: DataStore,

    /// RabbitMQ: `managed` or `external`.
    #[serde(default)]
    pub rabbitmq: DataStore,

    /// How new versions are rolled out.
    #[serde(default)]
    pub rollout: RolloutSpec,

    /// When true the operator stops changing the shop's objects (status is still reported).
    #[serde(default)]
    pub paused: bool,
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
    /// Number of pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 20))]
    pub replicas: i32,
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

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
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
    /// Namespace the ingress controller's pods run in; the NetworkPolicies admit traffic from there only.
    #[serde(default = "default_controller_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub controller_namespace: String,
}

fn default_class() -> String {
    "nginx".to_owned()
}

fn default_controller_namespace() -> String {
    "ingress-nginx".to_owned()
}

/// TLS settings for the Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret (type `kubernetes.io/tls`) holding the certificate, e.g. one cert-manager fills.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
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
}

fn default_storage() -> String {
    "5Gi".to_owned()
}

impl Default for Managed {
    fn default() -> Self {
        Self {
            storage: default_storage(),
            storage_class_name: None,
            resources: Resources::default(),
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

/// How new versions are rolled out: step by step (Foundation, Data, Backends, Storefront, Edge), each step only once the one before is healthy, and back to the last revision that rolled out completely when a step fails.
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
