//! `docs/architecture.md` describes the shop the contract builds: its
//! generated tables must be exactly what `docs::refresh` writes today.

use storekeeper_contract::docs::{SECTIONS, refresh};

const PAGE: &str = "docs/architecture.md";

fn page() -> String {
    let path = format!("{}/../{PAGE}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

#[test]
fn generated_tables_match_the_contract() {
    let page = page();
    let fresh = refresh(&page).unwrap_or_else(|err| panic!("{PAGE}: {err}"));
    assert!(
        fresh == page,
        "{PAGE} is stale: run `cargo xtask generate` and commit the result"
    );
}

#[test]
fn every_table_has_its_place() {
    let page = page();
    for name in SECTIONS {
        assert!(
            page.contains(&format!("<!-- generated:{name} -->\n"))
                && page.contains(&format!("<!-- /generated:{name} -->")),
            "{PAGE} has no `{name}` section: add its markers, then run `cargo xtask generate`"
        );
    }
}
