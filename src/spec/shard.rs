//! Shards: `regress run --shard i/n` runs a deterministic share of the
//! cases, so a GitHub Actions matrix of n jobs measures a large pipeline
//! set together. Cases that differ only in compile mode (eager and its
//! compiled variants of one point) form a group and stay in one shard, so
//! their ABBA order and the eager-vs-compiled speed-up are kept. Groups are
//! dealt round-robin in the order the pipelines and their cases are
//! listed, which balances the shards and depends on nothing but the
//! pipeline files and the command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Case, CaseId, Pipeline};

/// One share of `count`: `index` counts from 1, as people number jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Most shards: far beyond any runner fleet, small enough to list.
const MAX_SHARDS: u32 = 1024;

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let hint = format!("write the shard as i/n with 1 ≤ i ≤ n ≤ {MAX_SHARDS}, e.g. 3/16");
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a shard; {hint}"))?;
        let parse = |x: &str| x.trim().parse::<u32>().ok();
        match (parse(i), parse(n)) {
            (Some(index), Some(count)) if 1 <= index && index <= count && count <= MAX_SHARDS => {
                Ok(Shard { index, count })
            }
            _ => Err(format!("`{s}` is not a shard; {hint}")),
        }
    }
}

/// A case and the shard that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCase {
    pub id: CaseId,
    pub label: String,
    /// 1-based shard index.
    pub shard: u32,
}

/// The shards that run some case of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineShards {
    pub pipeline: String,
    pub shards: Vec<u32>,
}

/// Where every case of one pipeline runs, as one shard saw it: kept in the
/// record, so that a comparison can name a shard that never arrived and
/// list its cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// The shard this record is.
    pub shard: Shard,
    /// Every case of the pipeline (after `--filter`) and its shard.
    pub cases: Vec<PlannedCase>,
    /// Every pipeline of the sharded run and its shards, so that a pipeline
    /// none of whose shards arrived is known to be missing too.
    #[serde(default)]
    pub pipelines: Vec<PipelineShards>,
}

impl ShardPlan {
    /// The shards that had at least one case of the pipeline.
    pub fn shards_with_cases(&self) -> Vec<u32> {
        let mut s: Vec<u32> = self.cases.iter().map(|c| c.shard).collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// Splits the selected pipelines' cases into shards: each pipeline with
/// the cases `shard` runs and the plan of all of them. Groups are dealt
/// round-robin across every pipeline in order.
pub fn split(selected: &[(Pipeline, Vec<Case>)], shard: Shard) -> Vec<(Vec<Case>, ShardPlan)> {
    let mut next = 0u32;
    let mut parts = selected
        .iter()
        .map(|(pipeline, cases)| {
            let model = pipeline.model.label_name(&pipeline.name);
            // Groups in order of first appearance.
            let mut groups: Vec<(String, u32)> = Vec::new();
            let mut planned = Vec::with_capacity(cases.len());
            for case in cases {
                let key = case.group_label(model);
                let owner = match groups.iter().find(|(k, _)| *k == key) {
                    Some((_, owner)) => *owner,
                    None => {
                        let owner = next % shard.count + 1;
                        next += 1;
                        groups.push((key, owner));
                        owner
                    }
                };
                planned.push(PlannedCase {
                    id: case.id.clone(),
                    label: case.label.clone(),
                    shard: owner,
                });
            }
            let mine = cases
                .iter()
                .zip(&planned)
                .filter(|(_, p)| p.shard == shard.index)
                .map(|(c, _)| c.clone())
                .collect();
            (
                mine,
                ShardPlan {
                    shard,
                    cases: planned,
                    pipelines: Vec::new(),
                },
            )
        })
        .collect::<Vec<_>>();
    let every: Vec<PipelineShards> = selected
        .iter()
        .zip(&parts)
        .map(|((p, _), (_, plan))| PipelineShards {
            pipeline: p.name.clone(),
            shards: plan.shards_with_cases(),
        })
        .collect();
    for (_, plan) in &mut parts {
        plan.pipelines = every.clone();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn selected(src: &str) -> Vec<(Pipeline, Vec<Case>)> {
        Pipeline::parse(src, Path::new("s.yaml"))
            .unwrap()
            .into_iter()
            .map(|p| {
                let cases = p.cases();
                (p, cases)
            })
            .collect()
    }

    const TWO: &str = "version: 1\nname: a\nmodel: {builtin: mlp}\nmatrix:\n  batch: [1, 2, 3]\n  compile: [eager, default]\n---\nversion: 1\nname: b\nmodel: {builtin: mlp}\nmatrix:\n  batch: [1, 2]\n";

    #[test]
    fn shards_are_parsed_with_advice() {
        assert_eq!(
            "3/16".parse(),
            Ok(Shard {
                index: 3,
                count: 16
            })
        );
        for bad in ["0/4", "5/4", "3", "a/b", "1/0", "1/2000"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("i/n with 1 ≤ i ≤ n"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_case_runs_in_exactly_one_shard_and_groups_stay_together() {
        let sel = selected(TWO);
        let total: usize = sel.iter().map(|(_, c)| c.len()).sum();
        for n in 1..=6 {
            let mut seen = Vec::new();
            for i in 1..=n {
                let parts = split(&sel, Shard { index: i, count: n });
                for ((p, _), (mine, plan)) in sel.iter().zip(&parts) {
                    assert_eq!(plan.cases.len(), p.cases().len());
                    for c in mine {
                        seen.push(c.id.clone());
                        // The eager and compiled cases of a point share a shard.
                        let group = c.group_label("mlp");
                        let owners: Vec<u32> = p
                            .cases()
                            .iter()
                            .zip(&plan.cases)
                            .filter(|(o, _)| o.group_label("mlp") == group)
                            .map(|(_, pc)| pc.shard)
                            .collect();
                        assert!(owners.iter().all(|&o| o == i), "{n}: {owners:?}");
                    }
                }
            }
            seen.sort();
            let before = seen.len();
            seen.dedup();
            assert_eq!((before, seen.len()), (total, total), "n = {n}");
        }
    }

    #[test]
    fn groups_are_dealt_round_robin_across_pipelines() {
        // a has 3 groups (batch 1..3, eager+default), b has 2: five groups
        // dealt over 2 shards give 3 and 2.
        let sel = selected(TWO);
        let parts = split(&sel, Shard { index: 1, count: 2 });
        let owners: Vec<u32> = parts
            .iter()
            .flat_map(|(_, plan)| plan.cases.iter().map(|c| c.shard))
            .collect();
        assert_eq!(owners, [1, 1, 2, 2, 1, 1, 2, 1]);
        assert_eq!(parts[1].1.shards_with_cases(), [1, 2]);
        // Every plan knows every pipeline of the run and its shards.
        let names: Vec<(&str, &[u32])> = parts[0]
            .1
            .pipelines
            .iter()
            .map(|p| (p.pipeline.as_str(), p.shards.as_slice()))
            .collect();
        assert_eq!(names, [("a", &[1, 2][..]), ("b", &[1, 2][..])]);
    }
}
