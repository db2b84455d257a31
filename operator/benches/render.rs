//! Benchmarks: render time per Store, and the reconcile decision (render +
//! rollout decision + plan + status) against a cluster that already holds
//! every object, ready, with the revision rolled out.
//! Run with `cargo bench -p storekeeper --bench render`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use storekeeper::api::{RolloutState, RolloutStatus, Store, StoreStatus};
use storekeeper::reconcile::{Observed, plan, status};
use storekeeper::render::{ChildKind, render};
use storekeeper::rollout::{Cluster, Input, Revision, Settings, decide, revision};

fn example(name: &str) -> Store {
    let path = format!("{}/../examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut store: Store = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    store.metadata.uid = Some("11111111-2222-4333-8444-555555555555".into());
    store.metadata.generation = Some(1);
    store
}

/// Every desired object present and ready, as the API server would list it.
fn converged(store: &Store) -> Observed {
    let rendered = render(store).unwrap_or_else(|e| panic!("{e}"));
    let mut observed = Observed::default();
    for o in &rendered.objects {
        let mut v = serde_json::Value::clone(&o.value);
        v["metadata"]["generation"] = json!(1);
        if o.kind == ChildKind::Deployment {
            let n = v["spec"]["replicas"].clone();
            v["status"] = json!({"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                "availableReplicas": n, "readyReplicas": n});
        }
        observed.insert(o.kind, v);
    }
    observed
}

fn benches(c: &mut Criterion) {
    for name in ["store", "full"] {
        let store = example(name);
        c.bench_function(&format!("render/{name}"), |b| {
            b.iter(|| render(std::hint::black_box(&store)));
        });
        let observed = converged(&store);
        let uid = "11111111-2222-4333-8444-555555555555";
        let id = revision::id(&store.spec);
        let settings = Settings::from_spec(&store.spec).unwrap_or_else(|e| panic!("{e}"));
        let previous = RolloutStatus::new(RolloutState::Complete, &id, Some(&id));
        c.bench_function(&format!("decide/{name}"), |b| {
            b.iter(|| {
                let rendered = render(&store).unwrap_or_else(|e| panic!("{e}"));
                let target = Revision {
                    id: &id,
                    version: &store.spec.version,
                    rendered: &rendered,
                };
                let decision = decide(&Input {
                    target,
                    stable: Some(target),
                    previous: Some(&previous),
                    cluster: Cluster {
                        children: &observed,
                        pods: &[],
                        replica_sets: &[],
                    },
                    settings: &settings,
                    baseline: None,
                    samples: None,
                    now: chrono::Utc::now(),
                });
                let p = plan(&decision.desired, &observed, uid, false);
                let s = status::compute(
                    &store,
                    &decision.desired,
                    &observed,
                    &StoreStatus::default(),
                    "2026-01-01T00:00:00Z",
                    decision.view(),
                    Vec::new(),
                );
                (p.apply.len(), s.phase)
            });
        });
    }
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
