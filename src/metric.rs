//! The metric table: every metric regress records, with its unit, which
//! direction is better and how it is compared. Runner, record, compare and
//! report all read it here, so a metric's facts live in one place.
//!
//! It sits beside `id` at the bottom of the module order (not in `record`)
//! because the runner, which comes before the record, names metrics too.

use serde::{Deserialize, Serialize};

/// Steady-state time per iteration, seconds.
pub const LATENCY: &str = "latency";
/// Items processed per second, as a benchmark command reports it.
pub const THROUGHPUT: &str = "throughput";
/// First call of a compiled model, seconds.
pub const COMPILE_TIME: &str = "compile_time";
/// Peak device memory allocated, bytes.
pub const PEAK_MEMORY: &str = "peak_memory";
/// Peak device memory reserved by the caching allocator, bytes.
pub const PEAK_MEMORY_RESERVED: &str = "peak_memory_reserved";
/// Distinct places where torch.compile split the graph, per process.
pub const GRAPH_BREAKS: &str = "graph_breaks";
/// Graphs torch.compile compiled, per process.
pub const UNIQUE_GRAPHS: &str = "unique_graphs";
/// Times torch.compile compiled a function again after a guard failed.
pub const RECOMPILES: &str = "recompiles";

/// Which way is good for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latency, memory, compile time, graph breaks.
    LowerIsBetter,
    /// Throughput.
    HigherIsBetter,
}

/// How a metric's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A noisy measurement of time or rate: tested statistically.
    Timed,
    /// Bytes: nearly deterministic, but tested like a timing so that an
    /// allocator's occasional jitter is not a regression.
    Memory,
    /// An exact count (graph breaks, recompiles): compared as numbers,
    /// `0 → 2`, never by a statistical test.
    Counter,
}

/// One row of the metric table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    /// `s`, `1/s`, `B` or `count`.
    pub unit: &'static str,
    pub direction: Direction,
    pub kind: MetricKind,
    /// Whether `compare` reports it; the others are kept in the record only.
    pub compared: bool,
}

/// Every metric, in the order reports list them: latency first.
pub const METRICS: [MetricDef; 8] = [
    def(
        LATENCY,
        "s",
        Direction::LowerIsBetter,
        MetricKind::Timed,
        true,
    ),
    def(
        THROUGHPUT,
        "1/s",
        Direction::HigherIsBetter,
        MetricKind::Timed,
        true,
    ),
    def(
        COMPILE_TIME,
        "s",
        Direction::LowerIsBetter,
        MetricKind::Timed,
        true,
    ),
    def(
        PEAK_MEMORY,
        "B",
        Direction::LowerIsBetter,
        MetricKind::Memory,
        true,
    ),
    // The reserved peak follows the allocator's caching, not the model:
    // recorded for diagnosis, not judged.
    def(
        PEAK_MEMORY_RESERVED,
        "B",
        Direction::LowerIsBetter,
        MetricKind::Memory,
        false,
    ),
    def(
        GRAPH_BREAKS,
        "count",
        Direction::LowerIsBetter,
        MetricKind::Counter,
        true,
    ),
    def(
        UNIQUE_GRAPHS,
        "count",
        Direction::LowerIsBetter,
        MetricKind::Counter,
        true,
    ),
    def(
        RECOMPILES,
        "count",
        Direction::LowerIsBetter,
        MetricKind::Counter,
        true,
    ),
];

const fn def(
    name: &'static str,
    unit: &'static str,
    direction: Direction,
    kind: MetricKind,
    compared: bool,
) -> MetricDef {
    MetricDef {
        name,
        unit,
        direction,
        kind,
        compared,
    }
}

/// The table's row for `name`.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// The row for a metric regress itself names; a missing row is a bug here.
pub fn get(name: &str) -> &'static MetricDef {
    lookup(name).unwrap_or_else(|| panic!("metric `{name}` is not in the metric table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_latency_comes_first() {
        assert_eq!(METRICS[0].name, LATENCY);
        for (i, m) in METRICS.iter().enumerate() {
            assert!(
                METRICS[i + 1..].iter().all(|o| o.name != m.name),
                "{} twice",
                m.name
            );
            assert_eq!(
                m.kind == MetricKind::Counter,
                m.unit == "count",
                "{}",
                m.name
            );
        }
        assert_eq!(get(THROUGHPUT).direction, Direction::HigherIsBetter);
        assert!(lookup("tokens").is_none());
    }
}
