//! The `storekeeper` binary: parse the command line, dispatch, and turn any
//! error into one line on stderr and a non-zero exit code.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::{Body, ClientBuilder};
use kube::{Api, Client, Config};
use prometheus_client::registry::Registry;
use storekeeper::admin::{self, AdminState};
use storekeeper::cli::{Cli, Command, DeployArgs, RunArgs, render_text};
use storekeeper::controller::{self, Context};
use storekeeper::lease::LeaderElector;
use storekeeper::metrics::Metrics;
use storekeeper::pod_metrics::HttpMetricsReader;
use storekeeper::render::{OperatorMetrics, Platform};
use storekeeper::scope::Scope;
use storekeeper::{crd, deploy, rbac};
use storekeeper_contract::env;
use tracing::{error, info};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => emit(&crd::yaml()?)?,
        Command::Rbac { lease, delegate } => {
            let rules = match delegate {
                Some(delegate) => rbac::delegation_rules(delegate),
                None if lease => rbac::lease_rules(),
                None => rbac::cluster_rules(),
            };
            emit(&rbac::yaml(&rules)?)?;
        }
        Command::Render { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let out = render_text(&text).with_context(|| file.display().to_string())?;
            emit(&out)?;
        }
        Command::Deploy(args) => tokio::runtime::Runtime::new()?.block_on(deploy(args, true))?,
        Command::Wait(args) => tokio::runtime::Runtime::new()?.block_on(deploy(args, false))?,
        Command::Version => emit(&format!("storekeeper {}\n", env!("CARGO_PKG_VERSION")))?,
        Command::Run(args) => {
            init_tracing();
            tokio::runtime::Runtime::new()?.block_on(run(args))?;
        }
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`storekeeper render | head`) is not an error.
fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var(env::LOG_FORMAT).as_deref() == Ok("pretty") {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// `deploy` (`set` the version first) and `wait`: progress on stderr, the
/// verdict as the exit code.
async fn deploy(args: DeployArgs, set: bool) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("loading Kubernetes config")?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let api = Api::<storekeeper::api::Store>::namespaced(client, &namespace);
    let target = deploy::Target {
        namespace,
        name: args.store,
        version: args.target_version,
    };
    let generation = if set {
        Some(deploy::set_version(&api, &target).await?)
    } else {
        None
    };
    let patience = deploy::Patience {
        timeout: Duration::from_secs(args.timeout_seconds),
        poll: deploy::POLL_INTERVAL,
    };
    deploy::wait(&api, &target, generation, patience, |now| {
        eprintln!("{}/{}: {now}", target.namespace, target.name);
    })
    .await?;
    println!(
        "{}/{} is Ready at {}",
        target.namespace, target.name, target.version
    );
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let config = Config::infer().await.context("loading Kubernetes config")?;
    let counting = metrics.clone();
    let client: Client = ClientBuilder::try_from(config)?
        .with_layer(&tower::util::MapRequestLayer::new(
            move |req: http::Request<Body>| {
                counting.api_request(req.method(), req.uri());
                req
            },
        ))
        .build();
    let state = Arc::new(AdminState {
        registry,
        ready: false.into(),
    });
    let addr = SocketAddr::from(([0, 0, 0, 0], args.admin_port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding admin port {addr}"))?;
    let server_state = Arc::clone(&state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, admin::router(server_state)).await {
            error!(error = %e, "admin server stopped");
        }
    });
    client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API server")?;
    state.ready.store(true, Ordering::Relaxed);
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .context("set POD_NAME (or HOSTNAME) so leader election can tell replicas apart")?;
    let elector = LeaderElector::new(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace),
        &args.lease_name,
        &identity,
        Duration::from_secs(args.lease_duration_seconds),
    );
    elector.acquire().await;
    let pod_metrics =
        HttpMetricsReader::new().context("building the HTTP client for pod metrics")?;
    let mut ctx = Context::new(client, metrics, Some(identity), Arc::new(pod_metrics));
    ctx.scope = Scope::new(args.watch_namespaces);
    ctx.served = ctx.served.clone().delegating(args.delegate);
    ctx.platform = Platform {
        operator_metrics: args.metrics_service.map(|service| OperatorMetrics {
            namespace: args.lease_namespace.clone(),
            service,
            port: args.admin_port,
        }),
    };
    match &ctx.scope {
        Scope::Cluster => info!("watching Stores in every namespace"),
        Scope::Namespaces(list) => {
            info!(namespaces = ?list, "watching Stores in these namespaces only");
        }
    }
    let ctx = Arc::new(ctx);
    // The controller wants a `Sync` shutdown future; a oneshot receiver is one.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(());
    });
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::select! {
        () = controller::run(ctx, shutdown) => info!("controller stopped"),
        () = elector.keep() => anyhow::bail!("lost the leader lease; exiting so a standby takes over"),
    }
    if let Err(e) = elector.release().await {
        error!(error = %e, "releasing the leader lease failed; a standby takes over when it expires");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
