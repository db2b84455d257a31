//! The operator binary in a process of its own, talking HTTP to the
//! simulated cluster: the only way to measure the operator's own peak RSS,
//! since in one process the simulator's memory (every change it keeps for
//! watches to resume from) dwarfs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use storekeeper_simcluster::SimCluster;

/// Names another `storekeeper` binary to measure (e.g. one built with
/// another profile); unset, the one cargo built with this test.
const BINARY_VAR: &str = "STOREKEEPER_BINARY";

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

/// Starts `storekeeper run` ([`operator_binary`]), as the chart runs it, against
/// the simulated cluster at `addr`: a kubeconfig in `dir` points it there,
/// and it takes its leader Lease, serves its admin port (any free one) and
/// logs JSON at `info` to nowhere.
///
/// The operator gets one tokio worker thread, as in the chart: its CPU
/// limit (500m) makes `available_parallelism`, from which tokio sizes its
/// pool, one. `TOKIO_WORKER_THREADS` set for the benchmark overrides it.
pub fn spawn_operator(addr: SocketAddr, dir: &Path) -> Process {
    let workers = std::env::var(WORKERS_VAR).unwrap_or_else(|_| "1".to_owned());
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_for(addr)).unwrap();
    let child = Command::new(operator_binary())
        .arg("run")
        .env_clear()
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "storekeeper-benchmark")
        .env("ADMIN_PORT", "0")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env(WORKERS_VAR, workers)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Process(child)
}

/// The `storekeeper` binary [`spawn_operator`] runs: [`BINARY_VAR`]'s, else
/// the one cargo built with this test.
pub fn operator_binary() -> PathBuf {
    std::env::var_os(BINARY_VAR)
        .map_or_else(|| env!("CARGO_BIN_EXE_storekeeper").into(), PathBuf::from)
}

/// A kubeconfig for the plain-HTTP simulated API server at `addr`.
fn kubeconfig_for(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: sim
    cluster:
      server: http://{addr}
users:
  - name: sim
    user: {{}}
contexts:
  - name: sim
    context:
      cluster: sim
      user: sim
current-context: sim
"
    )
}

/// A field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`), e.g. `24576 kB`.
pub fn proc_status(pid: &str, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map_or("?".to_owned(), |v| v.trim().to_owned())
}
