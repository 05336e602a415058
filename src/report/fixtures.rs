//! Views built from a few numbers, for the unit tests of code that
//! reads views (annotations, comment modes).

use super::{CompareView, RowData, SideView, ViewParts};

/// A latency row of case `i`, 10 % slower, with `verdict`.
pub fn row(i: usize, verdict: &str) -> RowData {
    let stat = serde_json::json!({"median": 1e-3, "p25": 1e-3, "p75": 1e-3, "min": 1e-3,
        "n": 30, "processes": 3, "rel_iqr": 0.01, "outliers": 0, "noisy": false});
    serde_json::from_value(serde_json::json!({
        "pipeline": "p", "id": format!("{i:016x}"), "label": format!("case{i}"),
        "metric": "latency", "unit": "s", "direction": "lower_is_better", "kind": "timed",
        "verdict": verdict, "base": stat, "head": stat, "ratio": 1.1, "ratio_lo": 1.05,
        "ratio_hi": 1.15, "change_pct": 10.0, "p": 1e-5, "q": 1e-4, "method": "pooled_processes",
        "min_detectable_pct": 2.0, "exact": null, "history_commits": 0, "threshold_pct": 3.0,
        "alpha": 0.01, "note": null, "failure": null,
    }))
    .unwrap()
}

/// A view of `rows`.
pub fn view(rows: Vec<RowData>) -> CompareView {
    let side: SideView = serde_json::from_value(serde_json::json!({"rev": "HEAD",
        "sha": "1".repeat(40), "short": "1111111", "branch": null, "summary": null,
        "distance": 0, "records": 1, "incomplete": 0}))
    .unwrap();
    CompareView::assemble(ViewParts {
        base: side.clone(),
        head: side,
        rows,
        speedups: vec![],
        overheads: vec![],
        geomean: None,
        notes: vec![],
        sources: Default::default(),
    })
}
