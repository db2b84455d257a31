//! The `storekeeper` command line: `run`, `crd`, `rbac`, `render -f`,
//! `deploy`, `wait`, `version`.
//! Parsing lives here (testable); `main.rs` only dispatches.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kube::{Resource, ResourceExt};
use serde::Deserialize;
use storekeeper_contract::{admin, env};

use crate::api::Store;
use crate::render::{render, to_yaml};

/// Storekeeper: runs a whole online shop from one `Store` resource.
#[derive(Debug, Parser)]
#[command(name = "storekeeper", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (leader-elected), with health and metrics on the admin port.
    Run(RunArgs),
    /// Print the Store CustomResourceDefinition.
    Crd,
    /// Print the RBAC rules the operator needs (cluster-wide, or `--lease` for its namespace).
    Rbac {
        /// Print the leader-election rules instead.
        #[arg(long)]
        lease: bool,
        /// Print the rules delegating data stores to this operator needs instead.
        #[arg(long, value_enum, conflicts_with = "lease")]
        delegate: Option<crate::render::Delegate>,
    },
    /// Print every object the operator would apply for a Store, offline.
    Render {
        /// The Store manifest (YAML).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Move a Store to a version and wait until it is Ready at it; fails with the operator's reason when it rolls back.
    Deploy(DeployArgs),
    /// Wait until a Store is Ready at a version someone else set (a GitOps commit); fails like `deploy`.
    Wait(DeployArgs),
    /// Print the version.
    Version,
}

/// Settings of `storekeeper deploy` and `storekeeper wait`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The Store's name.
    pub store: String,
    /// The Store's namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The version (`spec.version`) the Store must be Ready at.
    #[arg(long = "version", value_name = "VERSION")]
    pub target_version: String,
    /// Give up after this many seconds; keep it above the rollout's steps times their `healthTimeoutSeconds`.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_seconds: u64,
}

/// Settings of `storekeeper run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Port for /healthz, /readyz and /metrics.
    #[arg(long, env = env::ADMIN_PORT, default_value_t = admin::PORT)]
    pub admin_port: u16,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "storekeeper-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "storekeeper-system")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a Lease stays valid without renewal, in seconds.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Watch Stores in these namespaces only (comma-separated); unset: every namespace. The operator then needs a Role in each of them and nothing cluster-wide.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Operators a managed data store may be delegated to, when the cluster serves their kinds (comma-separated: `cloudnative-pg`, `rabbitmq-cluster-operator`); unset: none. The operator needs `storekeeper rbac --delegate <each>` too.
    #[arg(long, env = "DELEGATE", value_delimiter = ',', value_enum)]
    pub delegate: Vec<crate::render::Delegate>,
    /// The Service in the operator's namespace that serves its metrics on the admin port; a Store's own Prometheus (`observability.mode: Managed`) then scrapes that Store's series from it. Unset: it does not.
    #[arg(long, env = "METRICS_SERVICE")]
    pub metrics_service: Option<String>,
}

/// Why `render` could not produce output: a message naming the field.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The file is not a Store (YAML or type error); serde names the path.
    #[error("not a valid Store: {0}")]
    Parse(String),
    /// The file is some other resource, or another version of Store.
    #[error(
        "{found}, expected {} (apiVersion {})",
        Store::kind(&()),
        Store::api_version(&())
    )]
    NotAStore {
        /// What the file says it is, e.g. `kind is Deployment`.
        found: String,
    },
    /// The Store breaks a rule, or rendering failed.
    #[error(transparent)]
    Render(#[from] crate::Error),
}

/// Placeholder UID for offline rendering: a real Store gets one from the API server.
pub const OFFLINE_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The fields that say what a manifest is; the Store type itself ignores them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeHeader {
    api_version: Option<String>,
    kind: Option<String>,
}

fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, RenderError> {
    serde_yaml::from_str(text).map_err(|e| RenderError::Parse(e.to_string().replace('\n', " ")))
}

/// Refuses a manifest of any other kind or version, which would otherwise
/// deserialise into a Store as long as its `spec` happens to fit.
fn check_type(header: &TypeHeader) -> Result<(), RenderError> {
    let said = |value: Option<&String>| value.map_or("missing", String::as_str).to_owned();
    if header.kind.as_deref() != Some(&Store::kind(&())) {
        return Err(RenderError::NotAStore {
            found: format!("kind is {}", said(header.kind.as_ref())),
        });
    }
    if header.api_version.as_deref() != Some(&Store::api_version(&())) {
        return Err(RenderError::NotAStore {
            found: format!("apiVersion is {}", said(header.api_version.as_ref())),
        });
    }
    Ok(())
}

/// Parses a Store manifest and renders it to YAML, with a header listing the
/// Secrets the operator would generate (names and keys only).
pub fn render_text(text: &str) -> Result<String, RenderError> {
    check_type(&parse(text)?)?;
    let mut store: Store = parse(text)?;
    if store.namespace().is_none() {
        store.metadata.namespace = Some("default".to_owned());
    }
    if store.metadata.uid.is_none() {
        store.metadata.uid = Some(OFFLINE_UID.to_owned());
    }
    let rendered = render(&store)?;
    let mut out = String::from("# Secrets the operator generates once (values never shown):\n");
    for secret in &rendered.secrets {
        let keys = secret.kind.keys().join(", ");
        let _ = writeln!(out, "#   Secret {} ({keys})", secret.name);
    }
    out.push_str(&to_yaml(&rendered)?);
    Ok(out)
}
