//! Placeholder product images, drawn as small SVGs on request.
//!
//! The sample catalog points at `/images/{category}/{slug}.svg`. Drawing the
//! picture from the path (a colour derived from the slug, a glyph for the
//! category, the name spelled out) means the shop renders offline with no
//! CDN and no binary files in the repository, and admin-created products get
//! a picture too. The output depends only on the path, so it caches forever.

use std::fmt::Write as _;

use crate::domain::is_slug;

/// Renders the placeholder for `category`/`slug`, or `None` if either is not a slug.
pub(crate) fn placeholder_svg(category: &str, slug: &str) -> Option<String> {
    if !is_slug(category) || !is_slug(slug) {
        return None;
    }
    let hue = fnv1a(slug.as_bytes()) % 360;
    let mut svg = String::with_capacity(1_500);
    let _ = write!(
        svg,
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 480 360" width="480" height="360" role="img" aria-label="{title}">"##,
            r##"<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">"##,
            r##"<stop offset="0" stop-color="hsl({hue},55%,62%)"/><stop offset="1" stop-color="hsl({hue2},50%,42%)"/>"##,
            r##"</linearGradient></defs><rect width="480" height="360" fill="url(#g)"/>"##,
            r##"<g fill="none" stroke="#fff" stroke-width="10" stroke-linecap="round" stroke-linejoin="round" opacity="0.9">{glyph}</g>"##,
        ),
        title = title(slug),
        hue = hue,
        hue2 = (hue + 40) % 360,
        glyph = glyph(category),
    );
    for (index, line) in wrap(&title(slug), 24).iter().take(2).enumerate() {
        let _ = write!(
            svg,
            r##"<text x="240" y="{y}" fill="#fff" font-family="system-ui,sans-serif" font-size="26" font-weight="600" text-anchor="middle">{line}</text>"##,
            y = 280 + index * 32,
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// A simple line drawing for each sample category; a ring for any other.
fn glyph(category: &str) -> &'static str {
    match category {
        "coffee-tea" => {
            r#"<path d="M180 120h100v50a50 50 0 0 1-100 0z"/><path d="M280 135a22 22 0 0 1 0 44"/><path d="M205 95c0-12 12-12 12-24M240 95c0-12 12-12 12-24"/>"#
        }
        "kitchen" => r#"<circle cx="210" cy="150" r="55"/><path d="M265 150h95"/>"#,
        "home-office" => {
            r#"<rect x="165" y="85" width="150" height="100" rx="8"/><path d="M240 185v30M200 215h80"/>"#
        }
        "audio" => {
            r#"<path d="M175 185v-35a65 65 0 0 1 130 0v35"/><rect x="165" y="160" width="30" height="50" rx="8"/><rect x="285" y="160" width="30" height="50" rx="8"/>"#
        }
        "outdoor" => r#"<path d="M150 215l90-130 90 130z"/><path d="M240 85v130"/>"#,
        "bags-travel" => {
            r#"<rect x="170" y="110" width="140" height="105" rx="12"/><path d="M215 110v-22h50v22M170 150h140"/>"#
        }
        "fitness" => {
            r#"<path d="M190 150h100"/><rect x="160" y="115" width="30" height="70" rx="6"/><rect x="290" y="115" width="30" height="70" rx="6"/>"#
        }
        "stationery" => r#"<path d="M180 220l20-60 90-90 40 40-90 90z"/><path d="M270 90l40 40"/>"#,
        _ => r#"<circle cx="240" cy="150" r="60"/>"#,
    }
}

/// `"dot-grid-notebook-a5"` → `"Dot Grid Notebook A5"`.
fn title(slug: &str) -> String {
    slug.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                let mut word = first.to_ascii_uppercase().to_string();
                word.extend(chars);
                if word.len() <= 3 && word.bytes().any(|b| b.is_ascii_digit()) {
                    word.make_ascii_uppercase();
                }
                word
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Greedy word wrap to lines of at most `width` characters (longer words stand alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// FNV-1a: a stable, dependency-free hash so a product keeps its colour across releases.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_complete_svg_with_the_name() {
        let svg = placeholder_svg("stationery", "dot-grid-notebook-a5").unwrap();
        assert!(svg.starts_with("<svg "));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(">Dot Grid Notebook A5<"), "{svg}");
        assert!(svg.len() < 2_000);
    }

    #[test]
    fn same_slug_same_picture() {
        assert_eq!(
            placeholder_svg("audio", "x-1"),
            placeholder_svg("audio", "x-1")
        );
        assert!(placeholder_svg("unknown-category", "x").is_some());
    }

    #[test]
    fn refuses_anything_but_slugs() {
        assert!(placeholder_svg("audio", "<script>").is_none());
        assert!(placeholder_svg("../etc", "passwd").is_none());
    }

    #[test]
    fn wraps_long_names() {
        assert_eq!(
            wrap("Electric Standing Desk Frame", 24),
            ["Electric Standing Desk", "Frame"]
        );
    }
}
