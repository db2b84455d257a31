//! `cargo xtask generate`: rewrites every checked-in file that is derived
//! from code, so none of them is ever edited by hand or left behind:
//!
//! - the Store CRD (`crds/store.yaml` and the chart's copy,
//!   `charts/storekeeper/files/crd-store.yaml`, which `templates/crd.yaml`
//!   renders with `helm.sh/resource-policy: keep` so it upgrades with the
//!   chart), from `storekeeper crd`;
//! - the chart's RBAC rules, from `storekeeper rbac`, `storekeeper rbac --lease`
//!   and, for the data-store operators the chart may delegate to,
//!   `storekeeper rbac --delegate <operator>`;
//! - the generated tables in `docs/architecture.md`, from
//!   `storekeeper_contract::docs::refresh`.
//!
//! The operator's output comes from running its binary rather than linking
//! its library, so the xtask that `cargo xtask up` builds stays free of the
//! Kubernetes crates. Tests in `operator/tests/generated_files.rs` and
//! `contract/tests/architecture_doc.rs` fail when a file falls behind.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::layout;

/// The page whose marked sections are generated from the contract.
const ARCHITECTURE: &str = "docs/architecture.md";

/// Where a generated file lives and what it must hold.
struct Generated {
    path: &'static str,
    contents: String,
}

/// Regenerates every file and prints, per file, whether it changed.
pub fn run() -> Result<()> {
    let root = layout::root();
    let crd = operator_output(&root, &["crd"])?;
    let files = [
        Generated {
            path: "crds/store.yaml",
            contents: crd.clone(),
        },
        Generated {
            path: "charts/storekeeper/files/crd-store.yaml",
            contents: crd,
        },
        Generated {
            path: "charts/storekeeper/files/cluster-rules.yaml",
            contents: operator_output(&root, &["rbac"])?,
        },
        Generated {
            path: "charts/storekeeper/files/lease-rules.yaml",
            contents: operator_output(&root, &["rbac", "--lease"])?,
        },
        Generated {
            path: "charts/storekeeper/files/cloudnative-pg-rules.yaml",
            contents: operator_output(&root, &["rbac", "--delegate", "cloudnative-pg"])?,
        },
        Generated {
            path: "charts/storekeeper/files/rabbitmq-cluster-operator-rules.yaml",
            contents: operator_output(&root, &["rbac", "--delegate", "rabbitmq-cluster-operator"])?,
        },
        Generated {
            path: ARCHITECTURE,
            contents: architecture_page(&root)?,
        },
    ];
    for file in &files {
        if write_if_changed(&root.join(file.path), &file.contents)? {
            println!("wrote {}", file.path);
        } else {
            println!("up to date: {}", file.path);
        }
    }
    Ok(())
}

/// Runs `storekeeper <args>` from source and returns what it printed.
fn operator_output(root: &Path, args: &[&str]) -> Result<String> {
    let command = format!("storekeeper {}", args.join(" "));
    let output = Command::new("cargo")
        .args(["run", "--quiet", "--package", "storekeeper", "--"])
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("running `{command}`"))?;
    if !output.status.success() {
        bail!(
            "`{command}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{command}` printed non-UTF-8"))
}

/// `docs/architecture.md` with its generated sections refreshed.
fn architecture_page(root: &Path) -> Result<String> {
    let path = root.join(ARCHITECTURE);
    let page =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    storekeeper_contract::docs::refresh(&page).with_context(|| format!("refreshing {ARCHITECTURE}"))
}

/// Writes `contents` to `path` unless it already holds exactly that;
/// returns whether it wrote.
fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|current| current == contents) {
        return Ok(false);
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_what_changed() {
        let dir = std::env::temp_dir().join(format!("xtask-generate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file.yaml");
        assert!(
            write_if_changed(&path, "a: 1\n").unwrap(),
            "a new file is written"
        );
        assert!(
            !write_if_changed(&path, "a: 1\n").unwrap(),
            "same contents: untouched"
        );
        assert!(
            write_if_changed(&path, "a: 2\n").unwrap(),
            "new contents are written"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 2\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
