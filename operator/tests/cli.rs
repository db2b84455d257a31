//! The binary: `render` prints YAML for good input and one readable line
//! naming the field, with a non-zero exit, for bad input.

// Helpers outside `#[test]` functions may panic too: this whole file is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn storekeeper(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_storekeeper"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("storekeeper-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn one_line_error(stderr: &str, needle: &str) {
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "{stderr} should name {needle}");
}

#[test]
fn render_prints_every_object() {
    let example = format!("{}/../examples/store.yaml", env!("CARGO_MANIFEST_DIR"));
    let (ok, out, _) = storekeeper(&["render", "-f", &example]);
    assert!(ok);
    assert_eq!(out.lines().filter(|l| *l == "---").count(), 50, "{out}");
    assert!(out.contains("kind: Deployment"));
}

#[test]
fn render_of_an_invalid_store_names_the_field() {
    let bad = temp(
        "invalid.yaml",
        "apiVersion: storekeeper.dev/v1alpha1\nkind: Store\nmetadata:\n  name: shop\nspec:\n  version: latest\n  ingress:\n    host: shop.example.com\n",
    );
    let (ok, out, err) = storekeeper(&["render", "-f", &bad]);
    assert!(!ok);
    assert!(out.is_empty());
    one_line_error(&err, "spec.version");
    assert_eq!(err.matches("spec.version").count(), 1, "said once: {err}");
}

#[test]
fn render_of_a_malformed_store_names_the_field() {
    let bad = temp(
        "malformed.yaml",
        "apiVersion: storekeeper.dev/v1alpha1\nkind: Store\nmetadata:\n  name: shop\nspec:\n  version: \"1.0\"\n  services:\n    user:\n      replicas: many\n  ingress:\n    host: shop.example.com\n",
    );
    let (ok, _, err) = storekeeper(&["render", "-f", &bad]);
    assert!(!ok);
    one_line_error(&err, "spec.services.user.replicas");
}

#[test]
fn render_of_a_missing_field_names_it() {
    let bad = temp(
        "missing.yaml",
        "apiVersion: storekeeper.dev/v1alpha1\nkind: Store\nmetadata:\n  name: shop\nspec:\n  version: \"1.0\"\n",
    );
    let (ok, _, err) = storekeeper(&["render", "-f", &bad]);
    assert!(!ok);
    one_line_error(&err, "ingress");
}

#[test]
fn render_refuses_a_document_that_is_not_a_store() {
    let deployment = temp(
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  version: \"1.0\"\n  ingress:\n    host: shop.example.com\n",
    );
    let (ok, out, err) = storekeeper(&["render", "-f", &deployment]);
    assert!(!ok);
    assert!(out.is_empty());
    one_line_error(
        &err,
        "kind is Deployment, expected Store (apiVersion storekeeper.dev/v1alpha1)",
    );
    assert!(err.contains("deployment.yaml"), "names the file: {err}");
    let old_version = temp(
        "old-version.yaml",
        "apiVersion: storekeeper.dev/v1alpha0\nkind: Store\nmetadata:\n  name: shop\nspec:\n  version: \"1.0\"\n  ingress:\n    host: shop.example.com\n",
    );
    let (ok, _, err) = storekeeper(&["render", "-f", &old_version]);
    assert!(!ok);
    one_line_error(
        &err,
        "apiVersion is storekeeper.dev/v1alpha0, expected Store",
    );
    let untyped = temp(
        "untyped.yaml",
        "metadata:\n  name: shop\nspec:\n  version: \"1.0\"\n  ingress:\n    host: shop.example.com\n",
    );
    let (ok, _, err) = storekeeper(&["render", "-f", &untyped]);
    assert!(!ok);
    one_line_error(&err, "kind is missing, expected Store");
}

#[test]
fn crd_and_version_print() {
    let (ok, out, _) = storekeeper(&["crd"]);
    assert!(ok && out.contains("name: stores.storekeeper.dev"));
    let (ok, out, _) = storekeeper(&["version"]);
    assert!(ok && out.starts_with("storekeeper "));
}

#[test]
fn deploy_without_a_cluster_says_so_in_one_line() {
    let home = temp("home-marker", "");
    let out = Command::new(env!("CARGO_BIN_EXE_storekeeper"))
        .args(["deploy", "shop", "--version", "1.3.0"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", std::path::Path::new(&home).parent().unwrap())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    one_line_error(
        &String::from_utf8(out.stderr).unwrap(),
        "loading Kubernetes config",
    );
}

#[test]
fn deploy_needs_a_version_and_a_positive_timeout() {
    let (ok, _, err) = storekeeper(&["deploy", "shop"]);
    assert!(!ok);
    assert!(err.contains("--version <VERSION>"), "{err}");
    let (ok, _, err) = storekeeper(&[
        "wait",
        "shop",
        "--version",
        "1.3.0",
        "--timeout-seconds",
        "0",
    ]);
    assert!(!ok);
    assert!(err.contains("--timeout-seconds"), "{err}");
}
