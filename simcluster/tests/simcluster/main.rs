//! Tests of the simulated cluster through a real `kube::Client`: API
//! semantics, watches, the workload simulator, and the real operator
//! running against it.
// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod operator;
mod watch;
mod workloads;

use std::time::Duration;

use serde_json::Value;

/// Polls `check` every 50 ms of tokio time until it holds; panics after
/// `limit` with `what` and the last value seen.
pub async fn eventually<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> (bool, T),
) -> T {
    let start = tokio::time::Instant::now();
    loop {
        let (ok, seen) = check();
        if ok {
            return seen;
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}; last seen: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A string field of a JSON object, `""` when absent.
pub fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An integer field of a JSON object, 0 when absent.
pub fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}
