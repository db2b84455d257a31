//! The standard Prometheus process metrics (`process_resident_memory_bytes`,
//! `process_cpu_seconds_total`, `process_open_fds`,
//! `process_start_time_seconds`), read from `/proc/self` at each scrape, so
//! dashboards and `cargo xtask load` see each service's memory and CPU
//! without a node exporter. prometheus-client ships no process collector.
//! Where `/proc` does not exist (macOS) the metrics are simply absent.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

/// Linux reports CPU time in `/proc/<pid>/stat` in USER_HZ ticks, which the
/// kernel fixes at 100 per second for user space on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads the process metrics at each scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    started: f64,
}

impl ProcessCollector {
    /// Created at start-up: the creation time stands in for the start time.
    pub fn new() -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        Self { started }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// One reading of `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// Resident set size in bytes.
    pub resident_bytes: u64,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: u64,
}

impl ProcessSample {
    /// Reads the current process; `None` where `/proc` is unavailable.
    pub fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Some(Self {
            resident_bytes: resident_kib(&status)? * 1024,
            cpu_seconds: cpu_ticks(&stat)? / TICKS_PER_SECOND,
            open_fds: u64::try_from(open_fds).ok()?,
        })
    }
}

/// `VmRSS:` of `/proc/<pid>/status`, in KiB.
fn resident_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `utime + stime` of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing `)`.
fn cpu_ticks(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)] // ticks stay far below 2^52
    Some((user + system) as f64)
}

/// Writes one metric with its descriptor.
fn emit(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(sample) = ProcessSample::read() else {
            return Ok(());
        };
        let gauge = |value: u64| ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        emit(
            &mut encoder,
            "process_resident_memory",
            "Resident memory size",
            Some(&Unit::Bytes),
            &gauge(sample.resident_bytes),
        )?;
        emit(
            &mut encoder,
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            &ConstCounter::new(sample.cpu_seconds),
        )?;
        emit(
            &mut encoder,
            "process_open_fds",
            "Open file descriptors",
            None,
            &gauge(sample.open_fds),
        )?;
        emit(
            &mut encoder,
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Some(&Unit::Seconds),
            &ConstGauge::new(self.started),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let status = "Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(resident_kib(status), Some(12_345));
        // A command name with spaces and a parenthesis must not shift fields.
        let stat = "42 (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(cpu_ticks(stat), Some(300.0));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        let sample = ProcessSample::read().unwrap();
        assert!(sample.resident_bytes > 1024 * 1024, "{sample:?}");
        assert!(sample.open_fds >= 3, "{sample:?}");
    }
}
