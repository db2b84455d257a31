//! A small, strict reader for the Prometheus / OpenMetrics text a shop
//! service serves on `/metrics`, keeping only what analysis judges: the
//! kit's `http_requests_total{method,route,status}` counter and its
//! `http_request_duration_seconds` histogram buckets, summed over every
//! method and route. Every sample line is parsed (so a garbled page is an
//! error, not a silent zero); other metric families are skipped.

/// The requests counter the kit's middleware keeps.
pub const REQUESTS: &str = "http_requests_total";
/// The latency histogram's bucket series.
pub const DURATION_BUCKETS: &str = "http_request_duration_seconds_bucket";

/// One pod's HTTP counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Requests served.
    pub requests: f64,
    /// Of which answered 5xx.
    pub errors: f64,
    /// Cumulative latency buckets `(upper bound in seconds, count)`, ascending; the last bound is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
}

/// A line that is not valid exposition text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("/metrics line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads a `/metrics` page.
pub fn parse(text: &str) -> Result<Counters, ParseError> {
    let mut out = Counters::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |problem: &str| ParseError {
            line: i + 1,
            problem: problem.to_owned(),
        };
        let (name, labels, value) = sample(line).map_err(|p| fail(&p))?;
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        match name {
            REQUESTS => {
                let status = label("status").ok_or_else(|| fail("no status label"))?;
                if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail("status is not an HTTP status code"));
                }
                out.requests += value;
                if status.starts_with('5') {
                    out.errors += value;
                }
            }
            DURATION_BUCKETS => {
                let le = label("le").ok_or_else(|| fail("no le label"))?;
                let bound = number(le).ok_or_else(|| fail("le is not a number"))?;
                match out
                    .buckets
                    .iter_mut()
                    .find(|(b, _)| b.total_cmp(&bound).is_eq())
                {
                    Some((_, count)) => *count += value,
                    None => out.buckets.push((bound, value)),
                }
            }
            _ => {}
        }
    }
    out.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

type Labels = Vec<(String, String)>;

/// `name{labels} value [timestamp] [# exemplar]`.
fn sample(line: &str) -> Result<(&str, Labels, f64), String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name".to_owned());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = label_set(after)?;
        labels = parsed;
        rest = tail;
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?;
    let mut fields = rest.split(" # ").next().unwrap_or_default().split(' ');
    let value = fields
        .next()
        .and_then(number)
        .ok_or_else(|| "value is not a number".to_owned())?;
    match fields.next() {
        Some(ts) if number(ts).is_none() => return Err("timestamp is not a number".to_owned()),
        _ => {}
    }
    if fields.next().is_some() {
        return Err("trailing text after the timestamp".to_owned());
    }
    Ok((name, labels, value))
}

/// Labels up to and including the closing `}`; returns what follows.
fn label_set(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or_else(|| "label without '='".to_owned())?;
        let key = &s[..eq];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad label name {key:?}"));
        }
        let body = s[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| "label value not quoted".to_owned())?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in a label value".to_owned()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".to_owned()),
            }
        };
        labels.push((key.to_owned(), value));
        s = &body[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// A sample value: a decimal or `+Inf` / `-Inf` / `NaN`.
fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kit's registry writes (prometheus-client's OpenMetrics text).
    const KIT: &str = r#"# HELP http_requests HTTP requests served, by method, route template and status.
# TYPE http_requests counter
http_requests_total{method="GET",route="/api/products/{id}",status="200"} 90
http_requests_total{method="POST",route="/api/orders",status="503"} 7
http_requests_total{method="GET",route="unmatched",status="404"} 3
# HELP http_request_duration_seconds HTTP request latency, by method, route template and status.
# TYPE http_request_duration_seconds histogram
# UNIT http_request_duration_seconds seconds
http_request_duration_seconds_sum{method="GET",route="/api/products/{id}",status="200"} 0.5
http_request_duration_seconds_count{method="GET",route="/api/products/{id}",status="200"} 90
http_request_duration_seconds_bucket{method="GET",route="/api/products/{id}",status="200",le="0.001"} 10
http_request_duration_seconds_bucket{method="GET",route="/api/products/{id}",status="200",le="0.002"} 80
http_request_duration_seconds_bucket{method="GET",route="/api/products/{id}",status="200",le="+Inf"} 90
http_request_duration_seconds_bucket{method="POST",route="/api/orders",status="503",le="0.001"} 0
http_request_duration_seconds_bucket{method="POST",route="/api/orders",status="503",le="0.002"} 7
http_request_duration_seconds_bucket{method="POST",route="/api/orders",status="503",le="+Inf"} 10
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2e7
# EOF
"#;

    #[test]
    fn reads_the_kits_page() {
        let c = parse(KIT).unwrap();
        assert!((c.requests - 100.0).abs() < f64::EPSILON);
        assert!((c.errors - 7.0).abs() < f64::EPSILON);
        assert_eq!(
            c.buckets,
            [(0.001, 10.0), (0.002, 87.0), (f64::INFINITY, 100.0)]
        );
    }

    #[test]
    fn empty_and_comment_only_pages_are_zero() {
        assert_eq!(parse("").unwrap(), Counters::default());
        assert_eq!(parse("# EOF\n\n").unwrap(), Counters::default());
    }

    #[test]
    fn quoting_escapes_exemplars_and_timestamps() {
        let text = concat!(
            "http_requests_total{route=\"/a\\\"b}\\\\\",status=\"500\",} 2 1700000000\n",
            "http_requests_total{route=\"x\\ny\",status=\"200\"} 3 # {trace_id=\"abc\"} 1.0 1700000000.5\n",
            "other_metric 1e3\n",
        );
        let c = parse(text).unwrap();
        assert!((c.requests - 5.0).abs() < f64::EPSILON);
        assert!((c.errors - 2.0).abs() < f64::EPSILON);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for (text, problem) in [
            (
                "http_requests_total{status=\"200\"}",
                "no space before the value",
            ),
            (
                "http_requests_total{status=\"200\"} abc",
                "value is not a number",
            ),
            (
                "http_requests_total{status=\"200\" x=\"1\"} 1",
                "bad label name",
            ),
            ("http_requests_total{status} 1", "label without '='"),
            (
                "http_requests_total{status=200} 1",
                "label value not quoted",
            ),
            (
                "http_requests_total{status=\"200} 1",
                "unterminated label value",
            ),
            ("http_requests_total{status=\"2\\x00\"} 1", "bad escape"),
            ("http_requests_total{method=\"GET\"} 1", "no status label"),
            (
                "http_requests_total{status=\"2xx\"} 1",
                "not an HTTP status code",
            ),
            (
                "http_request_duration_seconds_bucket{le=\"fast\"} 1",
                "le is not a number",
            ),
            (
                "http_request_duration_seconds_bucket{x=\"1\"} 1",
                "no le label",
            ),
            ("{status=\"200\"} 1", "no metric name"),
            ("9lives 1", "no metric name"),
            ("up 1 later", "timestamp is not a number"),
            ("up 1 2 3", "trailing text"),
        ] {
            let err = parse(&format!("# TYPE x counter\n{text}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            assert!(err.problem.contains(problem), "{text}: {err}");
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(number("+Inf"), Some(f64::INFINITY));
        assert_eq!(number("-Inf"), Some(f64::NEG_INFINITY));
        assert!(number("NaN").is_some_and(f64::is_nan));
        assert_eq!(number("1.5e3"), Some(1500.0));
        assert_eq!(number("infinity"), None, "only the exposition spellings");
        assert_eq!(number(""), None);
    }
}
