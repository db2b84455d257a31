//! The operator in a process of its own, talking HTTP to the simulated
//! cluster: the only way to measure the operator's own peak RSS, since in
//! one process the simulator's memory (every change it keeps for watches
//! to resume from) dwarfs it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use storekeeper::controller::{self, Context};
use storekeeper::metrics::Metrics;
use storekeeper::pod_metrics::MetricsReader;
use storekeeper_simcluster::SimCluster;

/// The environment variable that tells the child which URL to talk to.
pub const URL_VAR: &str = "STOREKEEPER_SIM_URL";

/// Tokio's own variable for the size of a runtime's worker pool.
const WORKERS_VAR: &str = "TOKIO_WORKER_THREADS";

/// Serves the simulated cluster over plain HTTP on a local port (each
/// request is passed to an in-process client, so the request log counts
/// it as usual).
pub async fn serve(sim: &SimCluster) -> SocketAddr {
    let client = sim.client();
    let app = axum::Router::new().fallback(move |request: Request| {
        let client = client.clone();
        async move { forward(&client, request).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn forward(client: &kube::Client, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return http::StatusCode::BAD_REQUEST.into_response();
    };
    let request = http::Request::from_parts(parts, kube::client::Body::from(bytes));
    match client.send(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A child process, killed when dropped (also when the benchmark fails).
pub struct Process(Child);

impl Process {
    /// Its process id, for `/proc/<pid>/status`.
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary again, running only `test` (which reads
/// [`URL_VAR`] and runs the operator against `addr`).
///
/// The operator gets one tokio worker thread, as in the chart: its CPU
/// limit (500m) makes `available_parallelism`, from which tokio sizes its
/// pool, one. `TOKIO_WORKER_THREADS` set for the benchmark overrides it.
pub fn spawn_operator(test: &str, addr: SocketAddr) -> Process {
    let workers = std::env::var(WORKERS_VAR).unwrap_or_else(|_| "1".to_owned());
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--ignored", "--nocapture"])
        .env(URL_VAR, format!("http://{addr}"))
        .env(WORKERS_VAR, workers)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Process(child)
}

/// A field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), e.g. `24576 kB`.
pub fn proc_status(pid: &str, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map_or("?".to_owned(), |v| v.trim().to_owned())
}

/// Pods whose metrics nobody can read (the benchmark sets no analysis).
struct NoPodMetrics;

impl MetricsReader for NoPodMetrics {
    fn read<'a>(&'a self, _url: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }
}

/// The operator process: runs the controller against the URL in
/// [`URL_VAR`] until killed, as `storekeeper run` would (a fresh client,
/// no leader election). Does nothing when the variable is not set.
pub async fn run_operator() {
    let Ok(url) = std::env::var(URL_VAR) else {
        return;
    };
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let ctx = Context::new(client, Metrics::default(), None, Arc::new(NoPodMetrics));
    controller::run(Arc::new(ctx), std::future::pending()).await;
}
