//! An image reference taken apart: `[registry[:port]/]path[:tag][@digest]`.
//! The tag and the digest are read the same way wherever the operator needs
//! them (the version label, the PostgreSQL major check, the validation of
//! image overrides) and by the build script that pins the images.

/// The parts of an image reference, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    /// Registry and repository path, without tag or digest
    /// (`registry:5000/pg/postgres`).
    pub name: &'a str,
    /// The tag (`17.6-bookworm`), if the reference carries one.
    pub tag: Option<&'a str>,
    /// The digest after `@` (`sha256:...`), if the reference carries one;
    /// not checked here (see [`is_digest`]).
    pub digest: Option<&'a str>,
}

impl<'a> Reference<'a> {
    /// Splits `image`. A `:` before the last `/` is a registry port, not a
    /// tag; everything after the first `@` is the digest.
    pub fn parse(image: &'a str) -> Self {
        let (named, digest) = match image.split_once('@') {
            Some((named, digest)) => (named, Some(digest)),
            None => (image, None),
        };
        let path_start = named.rfind('/').map_or(0, |slash| slash + 1);
        match named[path_start..].rfind(':') {
            Some(colon) => Reference {
                name: &named[..path_start + colon],
                tag: Some(&named[path_start + colon + 1..]),
                digest,
            },
            None => Reference {
                name: named,
                tag: None,
                digest,
            },
        }
    }
}

/// A content digest the operator pins and accepts: `sha256:` and 64
/// lower-case hex digits (what registries and `crane digest` print).
pub fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parts(image: &str) -> (&str, Option<&str>, Option<&str>) {
        let r = Reference::parse(image);
        (r.name, r.tag, r.digest)
    }

    #[test]
    fn tags_digests_and_registry_ports_are_told_apart() {
        assert_eq!(parts("postgres"), ("postgres", None, None));
        assert_eq!(parts("postgres:17.6"), ("postgres", Some("17.6"), None));
        assert_eq!(
            parts("registry:5000/postgres"),
            ("registry:5000/postgres", None, None),
            "a port is no tag"
        );
        assert_eq!(
            parts("registry:5000/pg/postgres:17.6-bookworm"),
            ("registry:5000/pg/postgres", Some("17.6-bookworm"), None)
        );
        let pinned = format!("registry:5000/postgres:17.6@{DIGEST}");
        assert_eq!(
            parts(&pinned),
            ("registry:5000/postgres", Some("17.6"), Some(DIGEST))
        );
        let untagged = format!("registry:5000/postgres@{DIGEST}");
        assert_eq!(
            parts(&untagged),
            ("registry:5000/postgres", None, Some(DIGEST))
        );
        assert_eq!(parts("postgres:17@"), ("postgres", Some("17"), Some("")));
    }

    #[test]
    fn only_sha256_with_64_lower_case_hex_digits_is_a_digest() {
        assert!(is_digest(DIGEST));
        assert!(!is_digest(&DIGEST.to_uppercase()));
        assert!(!is_digest(&DIGEST.replace("sha256:", "sha512:")));
        assert!(!is_digest(&DIGEST[..DIGEST.len() - 1]), "63 digits");
        assert!(!is_digest(&format!("{DIGEST}0")), "65 digits");
        assert!(!is_digest(&DIGEST.replace('a', "g")));
        assert!(!is_digest(""));
    }
}
