//! Markdown tables generated from the contract, so the architecture page
//! can never describe a shop the code does not build.
//!
//! A document marks each generated table with a pair of HTML comments,
//! `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; [`refresh`]
//! rewrites what lies between them. `cargo xtask generate` writes the result
//! back; a test fails when the checked-in page differs.

use std::fmt::Write as _;

use crate::{
    ShopService, admin,
    env::{ReadBy, VARIABLES},
    events::{EXCHANGE, ROUTES},
};

/// The tables a document can ask for, by marker name.
pub const SECTIONS: [&str; 3] = ["services", "env", "events"];

/// Why a document could not be refreshed.
#[derive(Debug, PartialEq, Eq)]
pub struct MarkerError(pub String);

impl std::fmt::Display for MarkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MarkerError {}

/// The generated table for one section name.
pub fn section(name: &str) -> Option<String> {
    match name {
        "services" => Some(services_table()),
        "env" => Some(env_table()),
        "events" => Some(events_table()),
        _ => None,
    }
}

/// Replaces every marked section of `document` with its generated table.
pub fn refresh(document: &str) -> Result<String, MarkerError> {
    let mut out = document.to_owned();
    for name in SECTIONS {
        let open = format!("<!-- generated:{name} -->\n");
        let close = format!("<!-- /generated:{name} -->");
        let Some(start) = out.find(&open) else {
            continue;
        };
        let body_start = start + open.len();
        let end = out[body_start..]
            .find(&close)
            .map(|offset| body_start + offset)
            .ok_or_else(|| MarkerError(format!("`{open}` has no closing `{close}`")))?;
        let table = section(name).unwrap_or_default();
        out.replace_range(body_start..end, &table);
    }
    Ok(out)
}

fn services_table() -> String {
    let mut t = String::from(
        "| service | package / image | API port | local admin port | database | Redis | broker | URL variable | calls | edge paths |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in ShopService::ALL {
        let calls: Vec<&str> = s.calls().iter().map(|c| c.name()).collect();
        let paths: Vec<String> = s.ingress_paths().iter().map(|p| format!("`{p}`")).collect();
        let _ = writeln!(
            t,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name(),
            s.package(),
            s.port(),
            s.local_admin_port(),
            s.database().map_or("—".to_owned(), |db| format!("`{db}`")),
            yes_no(s.uses_redis()),
            yes_no(s.uses_broker()),
            s.url_env().map_or("—".to_owned(), |v| format!("`{v}`")),
            if calls.is_empty() {
                "—".to_owned()
            } else {
                calls.join(", ")
            },
            paths.join(", "),
        );
    }
    let _ = writeln!(
        t,
        "\nIn a cluster every pod serves `{}`, `{}` and `{}` on admin port {}.",
        admin::HEALTHZ_PATH,
        admin::READYZ_PATH,
        admin::METRICS_PATH,
        admin::PORT
    );
    t
}

fn env_table() -> String {
    let mut t =
        String::from("| variable | read by | default | meaning |\n| --- | --- | --- | --- |\n");
    for v in VARIABLES {
        let file = v
            .file_variable()
            .map(|file| format!(" (or `{file}`: a file holding it)"))
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {}{file} |",
            v.name,
            read_by(v.read_by),
            v.default,
            v.meaning
        );
    }
    for s in ShopService::ALL {
        let Some(var) = s.url_env() else { continue };
        let callers: Vec<&str> = s.callers().map(ShopService::name).collect();
        let _ = writeln!(
            t,
            "| `{var}` | {} | `{}` | where {} is |",
            callers.join(", "),
            s.local_url(),
            s.package()
        );
    }
    t
}

fn events_table() -> String {
    let mut t = format!(
        "All on the durable topic exchange `{EXCHANGE}`.\n\n\
         | routing key | published by | consumed from | meaning |\n| --- | --- | --- | --- |\n"
    );
    for route in ROUTES {
        let queues: Vec<String> = route.queues.iter().map(|q| format!("`{q}`")).collect();
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} |",
            route.key,
            route.publisher.name(),
            if queues.is_empty() {
                "— (for observers)".to_owned()
            } else {
                queues.join(", ")
            },
            route.meaning
        );
    }
    t
}

fn read_by(scope: ReadBy) -> String {
    match scope {
        ReadBy::Every => "every service".to_owned(),
        ReadBy::Only(service) => service.name().to_owned(),
        other => ShopService::ALL
            .into_iter()
            .filter(|s| other.includes(*s))
            .map(ShopService::name)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "—" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_replaces_only_marked_sections() {
        let doc =
            "# Title\n\n<!-- generated:events -->\nstale\n<!-- /generated:events -->\n\nprose\n";
        let fresh = refresh(doc).unwrap();
        assert!(fresh.starts_with("# Title\n\n<!-- generated:events -->\nAll on"));
        assert!(fresh.contains("| `order.created` | order | `product.inventory` |"));
        assert!(fresh.ends_with("<!-- /generated:events -->\n\nprose\n"));
        assert!(!fresh.contains("stale"));
        assert_eq!(refresh(&fresh).unwrap(), fresh, "refreshing is idempotent");
    }

    #[test]
    fn an_unclosed_marker_is_an_error() {
        let err = refresh("<!-- generated:env -->\nno end").unwrap_err();
        assert!(err.to_string().contains("/generated:env"), "{err}");
    }

    #[test]
    fn url_variables_go_to_callers_only() {
        let env = env_table();
        assert!(env.contains("| `PAYMENT_URL` | storefront |"), "{env}");
        assert!(
            env.contains("| `PRODUCT_URL` | order, storefront |"),
            "{env}"
        );
    }
}
