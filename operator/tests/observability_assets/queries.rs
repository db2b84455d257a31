//! What the observability assets ask Prometheus for, and what a `/metrics`
//! page offers: the metric names and labels in the PromQL of
//! `operator/assets/observability/` (rules and dashboard), and the series of
//! a Prometheus text exposition. Shared by `operator/tests/observability_assets.rs`
//! (the operator's own `storekeeper_*` metrics) and
//! `services/shop-tests/tests/observability_queries.rs` (the services'),
//! which includes this file by path.
//!
//! The PromQL reader is a tokenizer, not a parser: it knows enough of the
//! language for queries written by hand (selectors, functions, aggregations
//! with `by`/`without`, vector matching with `on`/`ignoring`/`group_*`,
//! ranges, `offset`, strings, numbers) to name every metric and label used.

use std::collections::{BTreeMap, BTreeSet};

/// The rule file, with `$NAMESPACE`/`$STORE` placeholders.
pub const RULES: &str = include_str!("../../assets/observability/rules.yaml");
/// The Grafana dashboard, with the same placeholders and its own
/// `$namespace`/`$store`/`$service` variables.
pub const DASHBOARD: &str = include_str!("../../assets/observability/dashboard.json");

/// One vector selector: `name{label op "value", …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name.
    pub metric: String,
    /// `(label, op, value)` of each matcher.
    pub matchers: Vec<(String, String, String)>,
}

/// What one PromQL expression uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uses {
    /// Every vector selector.
    pub selectors: Vec<Selector>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`,
    /// `group_right`.
    pub grouping: BTreeSet<String>,
}

/// One query of the assets, with where it is.
#[derive(Debug, Clone)]
pub struct Query {
    /// `rule StorekeeperOrdersStuck`, `panel "Requests per second"`.
    pub origin: String,
    /// The PromQL.
    pub expr: String,
    /// Labels a legend names (`{{service}}`), which the query must carry.
    pub legend_labels: BTreeSet<String>,
}

/// Operators and modifiers that read like names.
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
];
/// Aggregations, which may put `by (…)` between their name and `(`.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Modifiers followed by a list of labels.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metrics and labels `expr` uses.
pub fn uses(expr: &str) -> Uses {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Uses::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(&chars, i);
            let next_char = chars.get(next).copied();
            if GROUPING.contains(&word.as_str()) {
                if next_char == Some('(') {
                    let (labels, end) = name_list(&chars, next + 1);
                    out.grouping.extend(labels);
                    i = end;
                }
            } else if next_char == Some('(')
                || KEYWORDS.contains(&word.as_str())
                || AGGREGATIONS.contains(&word.as_str())
            {
                // A function, an aggregation or an operator keyword.
            } else {
                let mut selector = Selector {
                    metric: word,
                    matchers: Vec::new(),
                };
                if next_char == Some('{') {
                    let (matchers, end) = matchers(&chars, next + 1);
                    selector.matchers = matchers;
                    i = end;
                }
                out.selectors.push(selector);
            }
        } else {
            i += 1;
        }
    }
    out
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// The index after the string literal that starts at `i`.
fn skip_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        if chars[j] == '\\' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// `a, b)` from just after `(`: the names and the index after `)`.
fn name_list(chars: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    while i < chars.len() && chars[i] != ')' {
        if is_name_char(chars[i]) {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            names.push(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    (names, i + 1)
}

/// `a="x", b=~"y"}` from just after `{`: the matchers and the index after
/// `}`.
fn matchers(chars: &[char], mut i: usize) -> (Vec<(String, String, String)>, usize) {
    let mut out = Vec::new();
    loop {
        i = skip_space(chars, i);
        match chars.get(i) {
            None => return (out, i),
            Some('}') => return (out, i + 1),
            Some(',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        i = skip_space(chars, i);
        let op_start = i;
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        i = skip_space(chars, i);
        let end = skip_string(chars, i);
        let value: String = chars[i + 1..end.saturating_sub(1).max(i + 1)]
            .iter()
            .collect();
        out.push((label, op, value));
        i = end;
    }
}

/// Every query of the rules (`expr` of each rule) and of the dashboard
/// (each panel target), with the labels their legends name.
pub fn asset_queries() -> Vec<Query> {
    let mut queries = Vec::new();
    let rules: serde_yaml::Value = serde_yaml::from_str(RULES).expect("rules.yaml is YAML");
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .expect("a rule is an alert or a recording rule");
            queries.push(Query {
                origin: format!("rule {name}"),
                expr: rule["expr"].as_str().expect("expr").to_owned(),
                legend_labels: BTreeSet::new(),
            });
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("dashboard.json is JSON");
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            queries.push(Query {
                origin: format!("panel {title:?}"),
                expr: target["expr"]
                    .as_str()
                    .expect("a target has an expr")
                    .to_owned(),
                legend_labels: legend_labels(legend),
            });
        }
    }
    queries
}

/// Every panel of a dashboard, rows' nested panels included.
pub fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `{{service}} {{route}}` → `service`, `route`.
fn legend_labels(legend: &str) -> BTreeSet<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// Series of a text exposition: metric name → every label name seen on it.
/// `# TYPE` lines of families without a sample add the name with no labels.
pub fn exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let labels = out.entry(name).or_default();
        if line[name_end..].starts_with('{') {
            let chars: Vec<char> = line[name_end + 1..].chars().collect();
            let (matchers, _) = matchers(&chars, 0);
            labels.extend(matchers.into_iter().map(|(label, _, _)| label));
        }
    }
    out
}

/// What is wrong with `query` against `series` (metric name → labels), for
/// the metrics `mine` selects (the others are another test's): a metric
/// with no series, a label no metric of the query has, a legend naming a
/// label the query drops. `extra` are labels every series gets on top of
/// its own (the target labels).
pub fn problems(
    query: &Query,
    series: &BTreeMap<String, BTreeSet<String>>,
    extra: &[&str],
    mine: impl Fn(&str) -> bool,
) -> Vec<String> {
    let uses = uses(&query.expr);
    let mut problems = Vec::new();
    let mut all_labels: BTreeSet<String> = extra.iter().map(|l| (*l).to_owned()).collect();
    let mut checked_any = false;
    for selector in &uses.selectors {
        if !mine(&selector.metric) {
            continue;
        }
        checked_any = true;
        let Some(labels) = series.get(&selector.metric) else {
            problems.push(format!(
                "{}: metric {} is not exported",
                query.origin, selector.metric
            ));
            continue;
        };
        all_labels.extend(labels.iter().cloned());
        for (label, _, _) in &selector.matchers {
            if !labels.contains(label) && !extra.contains(&label.as_str()) {
                problems.push(format!(
                    "{}: {} has no label {label} (it has {labels:?})",
                    query.origin, selector.metric
                ));
            }
        }
    }
    if checked_any {
        for label in uses.grouping.iter().chain(&query.legend_labels) {
            if !all_labels.contains(label) {
                problems.push(format!(
                    "{}: no metric of the query has the label {label}",
                    query.origin
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_functions_and_grouping_are_told_apart() {
        let got = uses(
            r#"histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{namespace="$NAMESPACE", route!="unmatched"}[5m] offset 1h)))
               > 1 and on (namespace) up == 0 unless absent(orders_stuck)"#,
        );
        let metrics: Vec<&str> = got.selectors.iter().map(|s| s.metric.as_str()).collect();
        assert_eq!(
            metrics,
            ["http_request_duration_seconds_bucket", "up", "orders_stuck"]
        );
        assert_eq!(
            got.selectors[0].matchers,
            [
                ("namespace".into(), "=".into(), "$NAMESPACE".into()),
                ("route".into(), "!=".into(), "unmatched".into()),
            ]
        );
        let grouping: Vec<&str> = got.grouping.iter().map(String::as_str).collect();
        assert_eq!(grouping, ["le", "namespace", "service"]);
    }

    #[test]
    fn an_exposition_names_series_and_their_labels() {
        let text =
            "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"a,b\"} 3\nb 1\n# EOF\n";
        let got = exposition(text);
        assert_eq!(got["a_total"].iter().collect::<Vec<_>>(), ["x", "y"]);
        assert!(got["b"].is_empty());
    }
}
