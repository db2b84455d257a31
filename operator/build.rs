//! Generates the image constants of `render::images` from
//! `src/render/images.txt`. With `STOREKEEPER_IMAGE_DIGESTS` set (the
//! release workflow resolves it: `reference@sha256:...` for every listed
//! image) each constant is pinned by digest and a missing, unknown or
//! malformed digest fails the build; without it (every other build) each
//! stays pinned by tag.

use std::path::Path;
use std::process::exit;

// Shared with the library, which reads every part of a reference; the list
// only needs the tag and the digest.
#[allow(dead_code)]
#[path = "src/render/images/reference.rs"]
mod reference;

#[path = "src/render/images/list.rs"]
mod list;

const LIST: &str = "src/render/images.txt";
const DIGESTS: &str = "STOREKEEPER_IMAGE_DIGESTS";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-env-changed={DIGESTS}");
    let text = std::fs::read_to_string(LIST)
        .unwrap_or_else(|error| fail(&format!("cannot read {LIST}: {error}")));
    let entries = list::parse(&text).unwrap_or_else(|error| fail(&format!("{LIST}: {error}")));
    let digests = match std::env::var(DIGESTS) {
        Ok(digests) => digests,
        Err(std::env::VarError::NotPresent) => String::new(),
        Err(std::env::VarError::NotUnicode(_)) => fail(&format!("{DIGESTS} is not UTF-8")),
    };
    let pinned =
        list::pin(&entries, &digests).unwrap_or_else(|error| fail(&format!("{DIGESTS}: {error}")));
    let out_dir = std::env::var_os("OUT_DIR").unwrap_or_else(|| fail("cargo set no OUT_DIR"));
    let out = Path::new(&out_dir).join("images.rs");
    std::fs::write(&out, list::rust_source(&entries, &pinned))
        .unwrap_or_else(|error| fail(&format!("cannot write {}: {error}", out.display())));
}

/// Stops the build with `message` (cargo prints a failed build script's
/// stderr).
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
