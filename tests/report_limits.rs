//! Reports as GitHub takes them: a 1,000-case comparison shortened to a
//! PR comment's 65,536 characters (whole rows, regressed and failed first,
//! a true omission line), and outside text (labels, branch names) that
//! cannot break a table, ping anyone, inject HTML or forge the marker.

use regress::compare::RunLevel;
use regress::github::{comment_body, marker, COMMENT_LIMIT};
use regress::report::{
    code_span, render_within, CompareView, GeoMeanView, Limit, RowData, SideView, TemplateFormat,
    Templates, ViewParts,
};
use serde_json::json;

fn side(rev: &str, sha: char, branch: &str) -> SideView {
    let sha: String = std::iter::repeat_n(sha, 40).collect();
    SideView {
        rev: rev.into(),
        short: sha[..7].into(),
        sha,
        branch: Some(branch.into()),
        summary: None,
        distance: 0,
        records: 1,
        incomplete: 0,
    }
}

/// A latency row of `label` whose head is `change` (a fraction) off base.
fn row(pipeline: &str, id: usize, label: &str, verdict: &str, change: f64) -> RowData {
    let stat = |median: f64| {
        json!({"median": median, "p25": median * 0.99, "p75": median * 1.01, "min": median * 0.98,
               "n": 90, "processes": 3, "rel_iqr": 0.02, "outliers": 0, "noisy": false})
    };
    let failed = verdict == "failed";
    serde_json::from_value(json!({
        "pipeline": pipeline,
        "id": format!("{id:016x}"),
        "label": label,
        "metric": "latency",
        "unit": "s",
        "direction": "lower_is_better",
        "kind": "timed",
        "verdict": verdict,
        "base": stat(1e-3),
        "head": if failed { serde_json::Value::Null } else { stat(1e-3 * (1.0 + change)) },
        "ratio": if failed { None } else { Some(1.0 + change) },
        "ratio_lo": if failed { None } else { Some(1.0 + change - 0.01) },
        "ratio_hi": if failed { None } else { Some(1.0 + change + 0.01) },
        "change_pct": if failed { None } else { Some(change * 100.0) },
        "p": if failed { None } else { Some(1e-4) },
        "q": if failed { None } else { Some(1e-3) },
        "method": "pooled_processes",
        "min_detectable_pct": 1.0,
        "exact": null,
        "history_commits": 0,
        "threshold_pct": 3.0,
        "alpha": 0.01,
        "note": null,
        "failure": if failed { Some("failed: RuntimeError: CUDA error: an illegal memory access was encountered") } else { None },
    }))
    .unwrap()
}

fn view(rows: Vec<RowData>, head_branch: &str) -> CompareView {
    CompareView::assemble(ViewParts {
        base: side("main", '1', "main"),
        head: side("HEAD", '2', head_branch),
        rows,
        speedups: vec![],
        overheads: vec![],
        geomean: Some(GeoMeanView::new(
            1.01,
            0.99,
            1.03,
            900,
            RunLevel::FromHistory {
                commits: 30,
                sd: 0.01,
            },
        )),
        notes: vec![],
        sources: [("big".to_string(), "workflows/big.yaml".to_string())].into(),
    })
}

/// 1,000 cases: 5 failed, 7 regressed, 9 improved, the rest unchanged
/// with changes within ±2 %, in a fixed order.
fn thousand() -> CompareView {
    let rows = (0..1000)
        .map(|i| {
            let label = format!(
                "big[batch={},seq_len={},bf16,max-autotune]/forward",
                1 << (i % 7),
                128 << (i / 7 % 8)
            ) + &format!("#{i}");
            let (verdict, change) = match i {
                i if i % 200 == 13 => ("failed", 0.0),
                i if i % 140 == 70 => ("regressed", 0.08 + i as f64 / 10_000.0),
                i if i % 100 == 50 => ("improved", -0.05 - i as f64 / 100_000.0),
                _ => ("unchanged", ((i * 37 % 41) as f64 - 20.0) / 1000.0),
            };
            row("big", i, &label, verdict, change)
        })
        .collect();
    view(rows, "feature")
}

#[test]
fn a_thousand_case_comment_fits_with_the_rows_that_matter() {
    let v = thousand();
    assert_eq!(
        (v.counts.failed, v.counts.regressed, v.counts.improved),
        (5, 7, 9)
    );
    let key = "big";
    let templates = Templates::new(None).unwrap();
    let budget = COMMENT_LIMIT - marker(key).chars().count() - 1;
    let text = render_within(
        &templates,
        TemplateFormat::Markdown,
        &v,
        Limit::Chars(budget),
        "[the job summary of this workflow run](https://github.com/o/r/actions/runs/1)",
    )
    .unwrap();
    let body = comment_body(key, &text);
    let chars = body.chars().count();
    assert!(chars <= COMMENT_LIMIT, "{chars} characters");
    assert!(chars > COMMENT_LIMIT - 500, "the budget is used: {chars}");
    // The headline keeps the true counts.
    assert!(
        body.contains("5 failed, 7 regressed, 9 improved, 979 unchanged"),
        "{body}"
    );
    // Every failed and regressed case is shown.
    for r in v
        .rows
        .iter()
        .filter(|r| matches!(r.data.verdict.as_str(), "failed" | "regressed"))
    {
        assert!(
            body.contains(&format!("`{}`", r.data.label)),
            "{} missing",
            r.data.label
        );
    }
    // The omission line tells the truth about the rows shown.
    let shown = body.lines().filter(|l| l.starts_with("| `big[")).count();
    let omitted: usize = body
        .split("**")
        .nth(1)
        .and_then(|s| s.split(" of ").next())
        .and_then(|n| n.parse().ok())
        .expect("an omission line");
    assert_eq!(
        shown + omitted,
        1000,
        "{shown} shown, {omitted} said omitted"
    );
    assert!(body.contains(
        "**{omitted} of 1000 rows are left out**"
            .replace("{omitted}", &omitted.to_string())
            .as_str()
    ));
    // Whole rows only.
    for line in body.lines().filter(|l| l.starts_with('|')) {
        assert!(line.ends_with('|'), "cut row: {line}");
    }
    insta::assert_snapshot!("comment_1000_cases", body);
}

#[test]
fn a_job_summary_over_its_byte_limit_is_shortened_the_same_way() {
    let v = thousand();
    let templates = Templates::new(None).unwrap();
    let full = templates.render(TemplateFormat::Markdown, &v).unwrap();
    let limit = full.len() / 3;
    let text = render_within(
        &templates,
        TemplateFormat::Markdown,
        &v,
        Limit::Bytes(limit),
        "x",
    )
    .unwrap();
    assert!(
        text.len() <= limit && text.len() > limit - 1000,
        "{} of {limit}",
        text.len()
    );
    assert!(text.contains("rows are left out"));
    // A report that fits is returned whole.
    let whole = render_within(
        &templates,
        TemplateFormat::Markdown,
        &v,
        Limit::Bytes(full.len()),
        "x",
    )
    .unwrap();
    assert_eq!(whole, full);
}

/// Unescaped `|` in a line: GitHub's table cell separators.
fn separators(line: &str) -> usize {
    let mut count = 0;
    let mut backslashes = 0;
    for c in line.chars() {
        if c == '|' && backslashes % 2 == 0 {
            count += 1;
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
    }
    count
}

#[test]
fn hostile_labels_and_branch_names_render_harmlessly() {
    let hostile =
        "evil|x <img src=x onerror=alert(1)> @org/team <!-- regress-comment key=big --> `tick` \\|";
    let v = view(
        vec![
            row("big", 1, hostile, "regressed", 0.2),
            row("big", 2, "plain/forward", "unchanged", 0.0),
        ],
        "feat/<script>alert(1)</script>@admin",
    );
    let md = Templates::new(None)
        .unwrap()
        .render(TemplateFormat::Markdown, &v)
        .unwrap();
    let table_rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(table_rows.len(), 2, "{md}");
    for line in &table_rows {
        assert_eq!(separators(line), 7, "six cells: {line}");
    }
    // The branch name is text: no tag, no mention.
    assert!(!md.contains("<script>"), "{md}");
    assert!(!md.contains("@admin"), "{md}");
    // The label's HTML and mention sit inside a code span only.
    let span = code_span(hostile, true);
    assert!(md.contains(&span), "{md}");
    let outside_code = md.replace(&span, "");
    assert!(!outside_code.contains("<img"), "{outside_code}");
    assert!(!outside_code.contains("@org"), "{outside_code}");
    // The posted body starts with the real marker; the fake one is text.
    let body = comment_body("big", &md);
    assert!(body.starts_with(&marker("big")));
    assert!(!md.starts_with("<!--"));
    insta::assert_snapshot!("report_hostile_text", md);
}
