//! `regress list`: the cases a pipeline expands to, with their ids.

use super::{filtered, load_pipelines, out};
use crate::cli::ListArgs;
use crate::exit::Exit;

pub fn list(args: &ListArgs) -> anyhow::Result<Exit> {
    let pipelines = load_pipelines(&args.pipelines)?;
    if args.json {
        let all: Vec<_> = pipelines
            .iter()
            .map(|p| serde_json::json!({"pipeline": p.name, "cases": filtered(p, args.filter.as_deref())}))
            .collect();
        out(&(serde_json::to_string_pretty(&all)? + "\n"))?;
        return Ok(Exit::Success);
    }
    let mut text = String::new();
    for p in &pipelines {
        let cases = filtered(p, args.filter.as_deref());
        text.push_str(&format!(
            "{} ({} backend): {} cases\n",
            p.name,
            p.runner.backend,
            cases.len()
        ));
        for c in &cases {
            text.push_str(&format!("  {}  {}\n", c.id, c.label));
        }
    }
    out(&text)?;
    Ok(Exit::Success)
}
