//! The Argo CD health check (`argocd/health.lua`) run by a real Lua 5.4
//! against Stores in every phase, with statuses built by the operator's own
//! status code where possible.

// Helpers outside `#[test]` functions may panic too: this whole file is test code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value
)]

use mlua::{Lua, Value as LuaValue};
use serde_json::{Value, json};

const SCRIPT: &str = include_str!("../argocd/health.lua");

/// JSON to Lua, the way Argo CD hands `obj` to a health script.
fn to_lua(lua: &Lua, v: &Value) -> LuaValue {
    match v {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| LuaValue::Number(n.as_f64().unwrap()), LuaValue::Integer),
        Value::String(s) => LuaValue::String(lua.create_string(s).unwrap()),
        Value::Array(items) => {
            let t = lua.create_table().unwrap();
            for (i, item) in items.iter().enumerate() {
                t.set(i + 1, to_lua(lua, item)).unwrap();
            }
            LuaValue::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table().unwrap();
            for (k, item) in map {
                t.set(k.as_str(), to_lua(lua, item)).unwrap();
            }
            LuaValue::Table(t)
        }
    }
}

fn health(store: &Value) -> (String, String) {
    let lua = Lua::new();
    let obj = to_lua(&lua, store);
    lua.globals().set("obj", obj).unwrap();
    let out: mlua::Table = lua.load(SCRIPT).eval().unwrap();
    (
        out.get("status").unwrap(),
        out.get("message").unwrap_or_default(),
    )
}

fn store(generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "storekeeper.dev/v1alpha1", "kind": "Store",
        "metadata": {"name": "shop", "namespace": "shop", "generation": generation},
        "spec": {"version": "1.0.0", "ingress": {"host": "shop.example.com"}},
        "status": status,
    })
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
        "observedGeneration": 2, "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn status(phase: &str, conditions: Vec<Value>) -> Value {
    json!({"observedGeneration": 2, "phase": phase, "ready": "5/5", "conditions": conditions,
        "rollout": {"state": "RollingBack", "targetRevision": "def456", "stableRevision": "abc123"}})
}

#[test]
fn no_status_yet_is_progressing() {
    let (s, _) = health(&json!({"metadata": {"generation": 1}}));
    assert_eq!(s, "Progressing");
}

#[test]
fn unobserved_generation_is_progressing() {
    let mut st = status(
        "Ready",
        vec![cond("Ready", "True", "AllComponentsReady", "")],
    );
    st["observedGeneration"] = json!(1);
    let (s, m) = health(&store(2, st));
    assert_eq!(s, "Progressing");
    assert!(m.contains("generation 2"), "{m}");
}

#[test]
fn each_phase_maps_to_an_argo_health() {
    let cases = [
        (
            "Ready",
            vec![cond("Ready", "True", "AllComponentsReady", "")],
            "Healthy",
        ),
        (
            "Pending",
            vec![cond("Ready", "False", "Pending", "waiting for postgres")],
            "Progressing",
        ),
        (
            "Progressing",
            vec![cond(
                "Reconciling",
                "True",
                "Progressing",
                "waiting for user",
            )],
            "Progressing",
        ),
        (
            "RollingBack",
            vec![cond("Reconciling", "True", "RollingBack", "")],
            "Progressing",
        ),
        (
            "Paused",
            vec![cond("Reconciling", "False", "Paused", "")],
            "Suspended",
        ),
        (
            "Degraded",
            vec![cond(
                "Stalled",
                "True",
                "ComponentFailed",
                "user: progress deadline exceeded",
            )],
            "Degraded",
        ),
        (
            "Degraded",
            vec![cond(
                "Stalled",
                "True",
                "InvalidSpec",
                "spec.version: must name a release",
            )],
            "Degraded",
        ),
    ];
    for (phase, conditions, want) in cases {
        let (got, message) = health(&store(2, status(phase, conditions)));
        assert_eq!(got, want, "phase {phase}: {message}");
    }
}

#[test]
fn stalled_message_names_the_reason() {
    let st = status(
        "Degraded",
        vec![cond(
            "Stalled",
            "True",
            "InvalidSpec",
            "spec.version: must name a release",
        )],
    );
    let (_, m) = health(&store(2, st));
    assert_eq!(m, "InvalidSpec: spec.version: must name a release");
}
