//! What a case's numbers cannot say by themselves: compile trouble (graph
//! breaks, recompiles, the recompile limit), read from its record so that
//! `run` shows it beside an `ok` instead of leaving it in the JSON.

use serde_json::Value;

use super::{metric, CaseRecord};

/// The diagnostics key of a process that `max_time` stopped before it had
/// `min_iters` samples: `{"samples", "min_iters", "max_time"}`.
pub const CUT_SHORT: &str = "cut_short";

/// Characters of a reason quoted in a warning; the record has all of it.
const QUOTED_CHARS: usize = 160;

/// `text` on one line, runs of blanks as one, cut to `QUOTED_CHARS` with
/// an ellipsis when cut.
fn quoted(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = text.chars().take(QUOTED_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl CaseRecord {
    /// Warnings about how the case ran, one line each, most serious first.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let processes = self.diagnostics.maps();
        let compile: Vec<&serde_json::Map<String, Value>> = processes
            .iter()
            .filter_map(|p| p.get("compile").and_then(Value::as_object))
            .collect();
        let first_str = |key: &str| {
            compile
                .iter()
                .filter_map(|c| c.get(key).and_then(Value::as_array))
                .flatten()
                .find_map(Value::as_str)
                .map(quoted)
        };
        // The recompile limit: torch.compile gave up and ran the rest eager.
        let hit = compile
            .iter()
            .filter_map(|c| c.get("recompile_limit_hits").and_then(Value::as_array))
            .flatten()
            .find_map(Value::as_object);
        if let Some(hit) = hit {
            let text = |k: &str| hit.get(k).and_then(Value::as_str).map(quoted);
            let limit = hit
                .get("limit")
                .and_then(Value::as_u64)
                .map_or(String::new(), |l| format!(" ({l})"));
            out.push(format!(
                "hit torch.compile's recompile limit{limit}{} and fell back to eager for it: the numbers are not all compiled code{}",
                text("function").map_or(String::new(), |f| format!(" in {f}")),
                text("last_reason").map_or(String::new(), |r| format!("; last reason: {r}"))
            ));
        }
        if let Some(caution) = self.cut_short() {
            out.push(format!(
                "{caution}: the numbers rest on fewer samples than asked; raise measure.max_time or lower measure.min_iters"
            ));
        }
        let most = |name: &str| {
            self.metrics
                .get(name)
                .map(|m| m.processes.iter().map(|p| p.max).fold(0.0, f64::max))
                .unwrap_or(0.0)
        };
        let recompiles = most(metric::RECOMPILES);
        if recompiles > 0.0 && hit.is_none() {
            out.push(format!(
                "{recompiles} recompile(s){}",
                first_str("recompile_reasons").map_or(String::new(), |r| format!(": {r}"))
            ));
        }
        let breaks = most(metric::GRAPH_BREAKS);
        if breaks > 0.0 {
            out.push(format!(
                "{breaks} graph break(s){}",
                first_str("graph_break_reasons").map_or(String::new(), |r| format!(": {r}"))
            ));
        }
        out
    }

    /// What a comparison should say about how this case was sampled, if
    /// anything: processes cut short of `min_iters` by `max_time`.
    pub fn cautions(&self) -> Vec<String> {
        self.cut_short().into_iter().collect()
    }

    /// `max_time (1s) stopped 2 of 3 processes short of min_iters (10): 3, 2
    /// samples`, when it did.
    fn cut_short(&self) -> Option<String> {
        let processes = self.diagnostics.maps();
        let cut: Vec<&serde_json::Map<String, Value>> = processes
            .iter()
            .filter_map(|p| p.get(CUT_SHORT).and_then(Value::as_object))
            .collect();
        let first = cut.first()?;
        let number = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
        };
        let samples: Vec<String> = cut
            .iter()
            .map(|c| number(c, "samples").to_string())
            .collect();
        Some(format!(
            "max_time ({}s) stopped {} of {} process(es) short of min_iters ({}): {} sample(s)",
            number(first, "max_time"),
            cut.len(),
            processes.len(),
            number(first, "min_iters"),
            samples.join(", ")
        ))
    }
}
