//! JSON log lines written straight from the event's and its span's fields.
//!
//! The lines are those of tracing-subscriber's JSON format (flattened event,
//! the current span as `span`), plus the `trace_id` and `span_id` of the
//! closest kit span (see [`super::continue_trace`]). tracing-subscriber
//! keeps a span's fields as a JSON object in a string and parses that
//! string back into a map for every event written inside the span, and the
//! ids had to be spliced into a second copy of the line; with a line per
//! request that was most of what logging a request cost
//! (docs/performance.md). Here a span keeps its fields as the members of
//! an object (`"route":"/x","request_id":"r-1"`), copied into each line as
//! they are, and the line is written once.

use std::fmt::{self, Write as _};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::{
    field::RecordFields,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::Writer,
        time::{FormatTime as _, SystemTime},
    },
    registry::LookupSpan,
};

use super::TraceIds;

/// Keeps a span's fields as the members of a JSON object, without braces.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut members = Members::new(writer);
        fields.record(&mut members);
        members.result
    }

    /// Fields recorded after the span was created replace earlier values
    /// of the same name: the rare path, so the members are parsed back.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        let mut members = Members::new(Writer::new(&mut added));
        fields.record(&mut members);
        members.result?;
        if current.fields.is_empty() {
            current.fields = added;
            return Ok(());
        }
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!("{{{}}}", current.fields)).map_err(|_| fmt::Error)?;
        let added: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!("{{{added}}}")).map_err(|_| fmt::Error)?;
        object.extend(added);
        let joined = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        joined
            .strip_prefix('{')
            .and_then(|inner| inner.strip_suffix('}'))
            .unwrap_or_default()
            .clone_into(&mut current.fields);
        Ok(())
    }
}

/// The event format: one JSON object per line.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut members = Members::after_first(writer.by_ref());
        event.record(&mut members);
        members.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = current {
            writer.write_str(",\"span\":{")?;
            if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>()
                && !fields.fields.is_empty()
            {
                writer.write_str(&fields.fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.metadata().name())?;
            writer.write_char('}')?;
            if let Some(ids) = span
                .scope()
                .find_map(|span| span.extensions().get::<TraceIds>().cloned())
            {
                write!(
                    writer,
                    r#","trace_id":"{}","span_id":"{}""#,
                    ids.trace_id, ids.span_id
                )?;
            }
        }
        writer.write_str("}\n")
    }
}

/// Writes each field it visits as an object member, `"name":value`, with a
/// comma before every member but the first.
struct Members<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'w> Members<'w> {
    fn new(writer: Writer<'w>) -> Self {
        Self {
            writer,
            first: true,
            result: Ok(()),
        }
    }

    /// Members that follow others already written.
    fn after_first(writer: Writer<'w>) -> Self {
        Self {
            first: false,
            ..Self::new(writer)
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'w>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { "," };
        self.first = false;
        self.result = self
            .writer
            .write_str(separator)
            .and_then(|()| string(&mut self.writer, field.name()))
            .and_then(|()| self.writer.write_char(':'))
            .and_then(|()| value(&mut self.writer));
    }
}

impl Visit for Members<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // Finite numbers in serde_json's shortest form; JSON has no NaN.
        self.member(field, |w| match serde_json::Number::from_f64(value) {
            Some(number) => write!(w, "{number}"),
            None => w.write_str("null"),
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// Writes `text` as a JSON string.
fn string(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(writer).write_str(text)?;
    writer.write_char('"')
}

/// Writes what goes through it as the inside of a JSON string.
struct Escaped<'a, W: ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::{Registry, layer::SubscriberExt as _};

    use super::*;

    /// Everything written, shared with the subscriber.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn parsed(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).expect(line))
                .collect()
        }
    }

    /// Logs a few awkward events inside and outside spans, once through
    /// this format and once through tracing-subscriber's JSON format.
    fn log_through(subscriber: impl Subscriber + Send + Sync) {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(count = 3_u64, "outside any span");
            let span = tracing::info_span!(
                "request",
                method = "GET",
                route = "/products/{id}",
                request_id = "r-1",
                negative = -7_i64,
                ratio = 0.25_f64,
                whole = 2.0_f64,
                nan = f64::NAN,
                flag = true,
            );
            let _entered = span.enter();
            tracing::warn!(
                quoted = "a \"b\" \\ c\n\t\u{1}é",
                debug = ?vec!["x", "y"],
                shown = %"shown",
                status = 503_u16,
                "finished {} with {:?}", "request", "tail\n",
            );
            let inner = tracing::debug_span!("inner", hop = 2_u64);
            let _inner = inner.enter();
            tracing::error!("inside the inner span");
        });
    }

    fn both_formats() -> (Vec<Value>, Vec<Value>) {
        let ours = Lines::default();
        let writer = ours.clone();
        log_through(
            Registry::default().with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields)
                    .event_format(JsonLines)
                    .with_writer(move || writer.clone()),
            ),
        );
        let theirs = Lines::default();
        let writer = theirs.clone();
        log_through(
            Registry::default().with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(move || writer.clone()),
            ),
        );
        (ours.parsed(), theirs.parsed())
    }

    #[test]
    fn lines_match_tracing_subscribers_json_but_the_timestamp() {
        let (mut ours, mut theirs) = both_formats();
        assert_eq!(ours.len(), 3);
        for line in ours.iter_mut().chain(theirs.iter_mut()) {
            let stamp = line
                .as_object_mut()
                .and_then(|object| object.remove("timestamp"));
            let stamp = stamp.as_ref().and_then(Value::as_str).unwrap_or_default();
            assert!(
                chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
                "{stamp:?}"
            );
        }
        assert_eq!(ours, theirs);
    }

    #[test]
    fn values_keep_their_json_types() {
        let (ours, _) = both_formats();
        assert_eq!(ours[0]["count"], json!(3));
        assert_eq!(ours[1]["span"]["ratio"], json!(0.25));
        assert_eq!(ours[1]["span"]["whole"], json!(2.0));
        assert_eq!(ours[1]["span"]["nan"], Value::Null);
        assert_eq!(ours[1]["span"]["flag"], json!(true));
        assert_eq!(ours[1]["quoted"], json!("a \"b\" \\ c\n\t\u{1}é"));
        assert_eq!(
            ours[1]["message"],
            json!("finished request with \"tail\\n\"")
        );
        assert_eq!(ours[2]["span"], json!({"hop": 2, "name": "inner"}));
    }

    #[test]
    fn a_field_recorded_later_replaces_its_value() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = Registry::default().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields)
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("event", event_id = "e-1", outcome = tracing::field::Empty,);
            span.record("outcome", "retried");
            span.record("event_id", "e-2");
            span.in_scope(|| tracing::info!("done"));
        });
        let parsed = lines.parsed();
        assert_eq!(
            parsed[0]["span"],
            json!({"event_id": "e-2", "outcome": "retried", "name": "event"})
        );
    }
}
