//! Workflow-command annotations (`::error file=…,line=…::…`) for
//! regressed and failed cases, and optionally warnings for noisy and
//! inconclusive ones. GitHub shows at most 10 annotations of a level per
//! step, so at most 10 lines per level are printed: the tenth says how
//! many were left out when there are more.

use crate::compare::Verdict;
use crate::report::{CompareView, RowView};

/// GitHub's limit of annotations per level and step.
pub const PER_LEVEL: usize = 10;

/// Where a pipeline's annotations point: its file and a line in it.
pub type Place = (String, Option<usize>);

/// Data of a workflow command: `%`, CR and LF escaped.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property of a workflow command: also `:` and `,` escaped.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command.
fn command(level: &str, place: Option<&Place>, title: &str, message: &str) -> String {
    let mut props = Vec::new();
    if let Some((file, line)) = place {
        props.push(format!("file={}", escape_property(file)));
        if let Some(line) = line {
            props.push(format!("line={line}"));
        }
    }
    props.push(format!("title={}", escape_property(title)));
    format!("::{level} {}::{}", props.join(","), escape_data(message))
}

/// What one row says in an annotation.
fn describe(r: &RowView) -> (String, String) {
    let d = &r.data;
    let metric = d.metric.replace('_', " ");
    match d.verdict {
        Verdict::Failed => (
            format!("regress: {} failed", d.label),
            d.failure
                .as_deref()
                .map(crate::record::reason_in_one_line)
                .unwrap_or_else(|| "failed at head".into()),
        ),
        Verdict::Missing => (
            format!("regress: {} missing", d.label),
            d.note
                .clone()
                .unwrap_or_else(|| "its shard never arrived".into()),
        ),
        _ => (
            format!("regress: {} {}", d.label, r.display.verdict),
            format!(
                "{metric} {} → {}: {}{}",
                r.display.base,
                r.display.head,
                r.display.change,
                if r.display.detectable.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.display.detectable)
                }
            ),
        ),
    }
}

/// The annotation lines for a comparison. `place` gives each pipeline's
/// file and line; `warnings` adds noisy and inconclusive cases.
pub fn annotations(
    view: &CompareView,
    place: &dyn Fn(&str) -> Option<Place>,
    warnings: bool,
) -> Vec<String> {
    let is_error = |r: &RowView| {
        matches!(
            r.data.verdict,
            Verdict::Failed | Verdict::Missing | Verdict::REGRESSED | Verdict::SUSPECT
        )
    };
    let noisy = |r: &RowView| {
        [&r.data.base, &r.data.head]
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.noisy))
    };
    let errors: Vec<&RowView> = view.rows.iter().filter(|r| is_error(r)).collect();
    let mut lines = level("error", &errors, place, "regressed, suspect or failed");
    if warnings {
        let warns: Vec<&RowView> = view
            .rows
            .iter()
            .filter(|r| !is_error(r) && (r.data.verdict == Verdict::INCONCLUSIVE || noisy(r)))
            .collect();
        lines.extend(level("warning", &warns, place, "inconclusive or noisy"));
    }
    lines
}

/// Up to `PER_LEVEL` lines of one level; the last counts the rest.
fn level(
    name: &str,
    rows: &[&RowView],
    place: &dyn Fn(&str) -> Option<Place>,
    kind: &str,
) -> Vec<String> {
    let shown = if rows.len() > PER_LEVEL {
        PER_LEVEL - 1
    } else {
        rows.len()
    };
    let mut lines: Vec<String> = rows[..shown]
        .iter()
        .map(|r| {
            let (title, message) = describe(r);
            command(name, place(&r.data.pipeline).as_ref(), &title, &message)
        })
        .collect();
    if rows.len() > shown {
        let rest = rows.len() - shown;
        lines.push(command(
            name,
            None,
            &format!("regress: {rest} more {kind}"),
            &format!(
                "{rest} more case(s) {kind} are not annotated (GitHub shows {PER_LEVEL} per level); the job summary lists every case"
            ),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{row, view};
    use crate::report::RowData;

    #[test]
    fn at_most_ten_per_level_the_last_counting_the_rest() {
        let mut rows: Vec<RowData> = (0..15).map(|i| row(i, "regressed")).collect();
        rows.extend((15..18).map(|i| row(i, "inconclusive")));
        let v = view(rows);
        let place = |_: &str| Some(("w/p.yaml".to_string(), Some(2)));
        let lines = annotations(&v, &place, false);
        assert_eq!(lines.len(), PER_LEVEL);
        assert!(lines[..9]
            .iter()
            .all(|l| l.starts_with("::error file=w/p.yaml,line=2,")));
        assert!(lines[9].contains("6 more case(s)"), "{}", lines[9]);
        let with_warnings = annotations(&v, &place, true);
        assert_eq!(with_warnings.len(), PER_LEVEL + 3);
        assert!(with_warnings[PER_LEVEL].starts_with("::warning "));
        // Ten exactly: no summary line.
        let ten = view((0..10).map(|i| row(i, "failed")).collect());
        let lines = annotations(&ten, &place, false);
        assert_eq!(lines.len(), 10);
        assert!(lines.iter().all(|l| l.contains("failed")));
    }

    #[test]
    fn commands_escape_data_and_properties() {
        let line = command(
            "error",
            Some(&("dir,x/p:1.yaml".to_string(), Some(3))),
            "t, 50%",
            "a\nb %",
        );
        assert_eq!(
            line,
            "::error file=dir%2Cx/p%3A1.yaml,line=3,title=t%2C 50%25::a%0Ab %25"
        );
    }
}
