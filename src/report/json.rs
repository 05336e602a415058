//! The JSON report: a versioned serde struct, one copy of each row, for
//! other tools (dashboards, the PR-comment job of a fork's workflow, which
//! reads it back with `read_json`). Its shape is pinned by a golden file
//! test; change it only with a new `JSON_SCHEMA_VERSION`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compare::RunLevel;

use super::{
    CompareView, Counts, FailureView, GeoMeanView, OverheadData, RowData, SideView, SpeedupData,
    ViewParts,
};

/// Version of the JSON report. 2: rows appear once (no per-pipeline
/// sections), with the metric's kind, counters' exact values, failures
/// listed first and the gate. 3: each pipeline's file (`sources`), how
/// the geometric mean's interval knows run-level shifts (`run_level`); the
/// report can be read back.
pub const JSON_SCHEMA_VERSION: u32 = 3;

/// The geometric mean of head / base with its interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonGeoMean {
    pub ratio: f64,
    /// The interval; with `run_level` `not_estimated` it counts the
    /// cases' spread only.
    pub lo: f64,
    pub hi: f64,
    pub cases: usize,
    pub run_level: RunLevel,
}

/// What a CI gate would find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonGate {
    /// A case regressed.
    pub regressed: bool,
    /// A case is suspect: far worse than the threshold, not yet significant
    /// (gates unless `--fail-on confirmed-regression`).
    #[serde(default)]
    pub suspect: bool,
    /// A case fails at head that did not fail at base, or a shard of
    /// head's run never arrived.
    pub failed: bool,
}

/// Everything a comparison concluded, as numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JsonReport {
    pub schema_version: u32,
    pub headline: String,
    pub pipelines: Vec<String>,
    /// Pipeline name → the file its records name.
    pub sources: BTreeMap<String, String>,
    pub base: SideView,
    pub head: SideView,
    pub counts: Counts,
    pub gate: JsonGate,
    pub geomean: Option<JsonGeoMean>,
    pub failures: Vec<FailureView>,
    pub rows: Vec<RowData>,
    pub speedups: Vec<SpeedupData>,
    /// Python eager against native eager on the same built-in model
    /// (absent from reports written before it).
    #[serde(default)]
    pub overheads: Vec<OverheadData>,
    pub notes: Vec<String>,
}

impl JsonReport {
    /// The report of a comparison's view.
    pub fn new(view: &CompareView) -> JsonReport {
        JsonReport {
            schema_version: JSON_SCHEMA_VERSION,
            headline: view.headline.clone(),
            pipelines: view.pipelines.clone(),
            sources: view.sources.clone(),
            base: view.base.clone(),
            head: view.head.clone(),
            counts: view.counts.clone(),
            gate: JsonGate {
                regressed: view.counts.regressed > 0,
                suspect: view.counts.suspect > 0,
                failed: view.counts.failed + view.counts.missing > 0,
            },
            geomean: view.geomean.as_ref().map(|g| JsonGeoMean {
                ratio: g.ratio,
                lo: g.lo,
                hi: g.hi,
                cases: g.cases,
                run_level: g.run_level,
            }),
            failures: view.failures.clone(),
            rows: view.rows.iter().map(|r| r.data.clone()).collect(),
            speedups: view.speedups.iter().map(|s| s.data.clone()).collect(),
            overheads: view.overheads.iter().map(|o| o.data.clone()).collect(),
            notes: view.notes.clone(),
        }
    }
}

/// The JSON report, pretty-printed, with a final newline.
pub fn render_json(view: &CompareView) -> String {
    let mut text = serde_json::to_string_pretty(&JsonReport::new(view)).expect("reports serialise");
    text.push('\n');
    text
}

/// A JSON report that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum JsonReportError {
    #[error("not a regress JSON report: {0}")]
    Parse(serde_json::Error),
    #[error(
        "the JSON report has schema version {found}; this regress reads version {JSON_SCHEMA_VERSION} (write the report with the same regress version: `regress compare … --format json`)"
    )]
    Version { found: u64 },
}

/// Reads a JSON report back into the view it was written from: the same
/// rows, counts and cells, so it renders as the comparison did.
pub fn read_json(text: &str) -> Result<CompareView, JsonReportError> {
    #[derive(Deserialize)]
    struct Versioned {
        schema_version: u64,
    }
    let v: Versioned = serde_json::from_str(text).map_err(JsonReportError::Parse)?;
    if v.schema_version != u64::from(JSON_SCHEMA_VERSION) {
        return Err(JsonReportError::Version {
            found: v.schema_version,
        });
    }
    let r: JsonReport = serde_json::from_str(text).map_err(JsonReportError::Parse)?;
    Ok(CompareView::assemble(ViewParts {
        base: r.base,
        head: r.head,
        rows: r.rows,
        speedups: r.speedups,
        overheads: r.overheads,
        geomean: r
            .geomean
            .map(|g| GeoMeanView::new(g.ratio, g.lo, g.hi, g.cases, g.run_level)),
        notes: r.notes,
        sources: r.sources,
    }))
}
