//! Benchmarks: render time per Store, and the reconcile decision (plan +
//! status) against a fully observed cluster.
fn main() {}
