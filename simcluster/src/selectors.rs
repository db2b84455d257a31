//! Label and field selectors, parsed from the query string the way the API
//! server reads them, and matched against stored objects.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed `labelSelector` (or `fieldSelector`): every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    requirements: Vec<(String, Op)>,
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn set(values: &str) -> Result<Vec<String>, ApiError> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse set {values:?}")))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn requirement(text: &str) -> Result<(String, Op), ApiError> {
    let text = text.trim();
    if let Some(key) = text.strip_prefix('!') {
        return Ok((key.trim().to_owned(), Op::NotExists));
    }
    if let Some((key, value)) = text.split_once("!=") {
        return Ok((key.trim().to_owned(), Op::NotEq(value.trim().to_owned())));
    }
    if let Some((key, value)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok((key.trim().to_owned(), Op::Eq(value.trim().to_owned())));
    }
    if let Some((key, values)) = text.split_once(" notin ") {
        return Ok((key.trim().to_owned(), Op::NotIn(set(values)?)));
    }
    if let Some((key, values)) = text.split_once(" in ") {
        return Ok((key.trim().to_owned(), Op::In(set(values)?)));
    }
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement {text:?}"
        )));
    }
    Ok((text.to_owned(), Op::Exists))
}

impl Selector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`; empty selects everything.
    pub(crate) fn parse(text: &str) -> Result<Self, ApiError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let requirements = split_top_level(text)
            .into_iter()
            .map(requirement)
            .collect::<Result<_, _>>()?;
        Ok(Self { requirements })
    }

    /// Whether `lookup` (key → value, `None` when absent) satisfies every requirement.
    fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let value = lookup(key);
            match op {
                Op::Eq(v) => value.as_deref() == Some(v.as_str()),
                Op::NotEq(v) => value.as_deref() != Some(v.as_str()),
                Op::In(vs) => value.is_some_and(|have| vs.contains(&have)),
                Op::NotIn(vs) => value.is_none_or(|have| !vs.contains(&have)),
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
            }
        })
    }

    /// Matches as a label selector against `metadata.labels`.
    pub(crate) fn matches_labels(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.matches_with(|key| {
            labels
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }

    /// Matches as a field selector: keys are dotted paths (`metadata.name`,
    /// `status.phase`); absent fields compare as the empty string, as the API
    /// server does.
    pub(crate) fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|key| {
            let pointer = format!("/{}", key.replace('.', "/"));
            let text = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            Some(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: &Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "shop", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn every_label_operator() {
        let o = obj(&json!({"app": "shop", "tier": "web"}));
        for (sel, want) in [
            ("", true),
            ("app=shop", true),
            ("app==shop", true),
            ("app=other", false),
            ("app!=other", true),
            ("missing!=x", true),
            ("tier in (web, db)", true),
            ("tier in (db)", false),
            ("tier notin (db)", true),
            ("missing notin (db)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=shop,tier in (web,db),!missing", true),
            ("app=shop,tier=db", false),
        ] {
            assert_eq!(
                Selector::parse(sel).unwrap().matches_labels(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn fields_and_bad_syntax() {
        let o = obj(&json!({}));
        let s = Selector::parse("metadata.name=n1,status.phase!=Pending").unwrap();
        assert!(s.matches_fields(&o));
        assert!(
            !Selector::parse("metadata.name=n2")
                .unwrap()
                .matches_fields(&o)
        );
        assert!(Selector::parse("a in b").is_err());
        assert_eq!(Selector::parse("a b").unwrap_err().code, 400);
    }
}
