//! `spec.observability.traces.endpoint`, read once for both what validation
//! accepts and which port the services' NetworkPolicy opens to it.

use reqwest::Url;

/// The port an OTLP/HTTP base URL points at (the scheme's default when it
/// names none), or `None` when it is no such URL: `http` or `https`, a
/// host, no user, query or fragment.
pub fn port(endpoint: &str) -> Option<u16> {
    let url = Url::parse(endpoint).ok()?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    usable.then(|| url.port_or_known_default()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_an_http_base_url_with_a_port() {
        assert_eq!(port("http://collector.observability:4318"), Some(4318));
        assert_eq!(port("http://tempo"), Some(80));
        assert_eq!(port("https://otlp.example.com/base"), Some(443));
        for bad in [
            "",
            "collector:4318",
            "grpc://collector:4317",
            "http://",
            "http://user:pw@collector:4318",
            "http://collector:4318/?x=1",
            "http://collector:4318/#f",
            "http://collector:99999",
        ] {
            assert_eq!(port(bad), None, "{bad}");
        }
    }
}
