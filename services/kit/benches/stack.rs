//! What kit's middleware stack costs per request, in process: the same
//! trivial route served bare and through `server::layers`, called with
//! `oneshot` (no sockets), so the figure is the stack's own CPU time without
//! the kernel's and the load generator's, which dominate and blur
//! `cargo xtask bench`'s ratios on a shared machine. Logging is kit's own
//! subscriber writing to a sink, filtered by `RUST_LOG` as in a service:
//! run with `RUST_LOG=warn cargo bench -p storekeeper-kit --bench stack`
//! for the cost at the product bench's level, without it for `info` (a
//! span and a log line per request).

use axum::{Router, body::Body, http::Request, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use storekeeper_kit::{
    Metrics,
    server::{self, HttpSettings},
    telemetry::{LogFormat, Settings, Tracing},
};
use tower::ServiceExt as _;

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

fn request() -> Request<Body> {
    Request::get("/").body(Body::empty()).unwrap_or_default()
}

fn benches(c: &mut Criterion) {
    let tracing = Tracing::new(&Settings::new("bench-stack", LogFormat::Json))
        .unwrap_or_else(|e| panic!("tracing: {e}"));
    let _logging = tracing::subscriber::set_default(tracing.subscriber(std::io::sink));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    // `with_state(())` turns handlers into routes once, as `axum::serve`
    // does; without it every call would build its route again.
    let bare = hello().with_state(());
    let stacked = server::layers(hello(), HttpSettings::default(), &Metrics::new()).with_state(());
    for (name, app) in [("bare route", bare), ("kit stack", stacked)] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let response = runtime.block_on(app.clone().oneshot(request()));
                assert!(response.is_ok_and(|r| r.status().is_success()));
            });
        });
    }
}

criterion_group!(stack, benches);
criterion_main!(stack);
