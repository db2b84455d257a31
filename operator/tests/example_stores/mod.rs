//! The Stores of `examples/`, as the API server would hand them over (with
//! a uid, which owner references need).

use storekeeper::api::Store;

/// `examples/<name>.yaml`.
pub fn example(name: &str) -> Store {
    let path = format!("{}/../examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let mut store: Store =
        serde_yaml::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"));
    store.metadata.uid = Some("11111111-2222-4333-8444-555555555555".into());
    store
}
