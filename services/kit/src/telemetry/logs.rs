//! Log records over OTLP/HTTP (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, e.g.
//! Loki's `/otlp/v1/logs`): under the restricted Pod Security profile no
//! node agent may read the pods' log files, so each service ships its own.
//!
//! Every `tracing` event that passes the log filter becomes a record (the
//! bridge of `opentelemetry-appender-tracing`) carrying the trace and span
//! ids of the span it was written in, and goes through a batch processor on
//! its own thread. What waits for export is bounded: at most the queue's
//! capacity of records are held (queued or being posted); past that a
//! record is dropped and counted (`storekeeper_log_records_dropped_total`),
//! so a Loki that is down or slow costs neither memory nor request latency.
//! Standard output keeps every line either way.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{
        BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord,
        SdkLoggerProvider,
    },
};
use prometheus_client::metrics::counter::Counter;
use url::Url;

/// Records held for export at most, by default: a few seconds of a busy
/// service's logs, a few MiB at worst.
pub const QUEUE_CAPACITY: usize = 2048;
/// Records posted in one request at most.
const MAX_BATCH: usize = 512;

/// A logger provider posting to `endpoint` (the full URL) with `resource`,
/// holding at most `capacity` records and counting the ones it drops in
/// `dropped`.
pub(super) fn provider(
    resource: Resource,
    endpoint: &Url,
    capacity: usize,
    dropped: Counter,
) -> Result<SdkLoggerProvider, ExporterBuildError> {
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_endpoint(endpoint.as_str())
        .build()?;
    let held = Arc::new(Held {
        records: AtomicUsize::new(0),
        capacity,
        dropped,
    });
    let batch = BatchLogProcessor::builder(Releasing {
        inner: exporter,
        held: held.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(capacity)
            .with_max_export_batch_size(capacity.clamp(1, MAX_BATCH))
            .build(),
    )
    .build();
    Ok(SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(Bounded { inner: batch, held })
        .build())
}

/// The records admitted and not yet done with (queued, or in a request
/// being posted), against the capacity.
#[derive(Debug)]
struct Held {
    records: AtomicUsize,
    capacity: usize,
    dropped: Counter,
}

impl Held {
    /// Takes a place for one record, or counts it dropped when all are taken.
    fn admit(&self) -> bool {
        let admitted = self
            .records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.capacity).then_some(held + 1)
            })
            .is_ok();
        if !admitted {
            self.dropped.inc();
        }
        admitted
    }

    fn release(&self, records: usize) {
        self.records.fetch_sub(records, Ordering::AcqRel);
    }
}

/// Admits a record to the batch processor only while fewer than the
/// capacity are held, so the processor's own queue (as large) never fills.
#[derive(Debug)]
struct Bounded {
    inner: BatchLogProcessor,
    held: Arc<Held>,
}

impl LogProcessor for Bounded {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.held.admit() {
            self.inner.emit(record, scope);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, giving the places of a batch back once it is posted,
/// failed, or abandoned.
#[derive(Debug)]
struct Releasing<E> {
    inner: E,
    held: Arc<Held>,
}

/// Gives `records` places back when dropped: when the export finished or
/// its future was dropped unfinished.
struct Release {
    held: Arc<Held>,
    records: usize,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.held.release(self.records);
    }
}

impl<E: LogExporter> LogExporter for Releasing<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let release = Release {
            held: self.held.clone(),
            records: batch.iter().count(),
        };
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            drop(release);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_capacity_and_given_back() {
        let held = Held {
            records: AtomicUsize::new(0),
            capacity: 2,
            dropped: Counter::default(),
        };
        assert!(held.admit());
        assert!(held.admit());
        assert!(!held.admit());
        assert_eq!(held.dropped.get(), 1);
        held.release(2);
        assert!(held.admit());
        assert_eq!(held.dropped.get(), 1);
    }
}
