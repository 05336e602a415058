//! The JSON report: a versioned serde struct, one copy of each row, for
//! other tools (dashboards, the PR-comment job of a fork's workflow). Its
//! shape is pinned by a golden file test; change it only with a new
//! `JSON_SCHEMA_VERSION`.

use serde::Serialize;

use super::{CompareView, Counts, FailureView, RowData, SideView, SpeedupData};

/// Version of the JSON report. 2: rows appear once (no per-pipeline
/// sections), with the metric's kind, counters' exact values, failures
/// listed first and the gate.
pub const JSON_SCHEMA_VERSION: u32 = 2;

/// The geometric mean of head / base with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct JsonGeoMean {
    pub ratio: f64,
    pub lo: f64,
    pub hi: f64,
    pub cases: usize,
}

/// What a CI gate would find.
#[derive(Debug, Clone, Serialize)]
pub struct JsonGate {
    /// A case regressed.
    pub regressed: bool,
    /// A case fails at head that did not fail at base, or a shard of
    /// head's run never arrived.
    pub failed: bool,
}

/// Everything a comparison concluded, as numbers.
#[derive(Debug, Clone, Serialize)]
pub struct JsonReport<'a> {
    pub schema_version: u32,
    pub headline: &'a str,
    pub pipelines: &'a [String],
    pub base: &'a SideView,
    pub head: &'a SideView,
    pub counts: &'a Counts,
    pub gate: JsonGate,
    pub geomean: Option<JsonGeoMean>,
    pub failures: &'a [FailureView],
    pub rows: Vec<&'a RowData>,
    pub speedups: Vec<&'a SpeedupData>,
    pub notes: &'a [String],
}

impl<'a> JsonReport<'a> {
    /// The report of a comparison's view.
    pub fn new(view: &'a CompareView) -> JsonReport<'a> {
        JsonReport {
            schema_version: JSON_SCHEMA_VERSION,
            headline: &view.headline,
            pipelines: &view.pipelines,
            base: &view.base,
            head: &view.head,
            counts: &view.counts,
            gate: JsonGate {
                regressed: view.counts.regressed > 0,
                failed: view.counts.failed + view.counts.missing > 0,
            },
            geomean: view.geomean.as_ref().map(|g| JsonGeoMean {
                ratio: g.ratio,
                lo: g.lo,
                hi: g.hi,
                cases: g.cases,
            }),
            failures: &view.failures,
            rows: view.rows.iter().map(|r| &r.data).collect(),
            speedups: view.speedups.iter().map(|s| &s.data).collect(),
            notes: &view.notes,
        }
    }
}

/// The JSON report, pretty-printed, with a final newline.
pub fn render_json(view: &CompareView) -> String {
    let mut text = serde_json::to_string_pretty(&JsonReport::new(view)).expect("reports serialise");
    text.push('\n');
    text
}
