//! Shards that never arrived. Every record of a sharded run carries the
//! plan of its pipeline (which shard runs each case), so one arriving
//! shard is enough to name the ones that did not and list their cases as
//! missing rather than removed or new.

use std::collections::{BTreeMap, BTreeSet};

use crate::record::Record;
use crate::spec::{PlannedCase, Shard};

/// The shards of one side's records (one pipeline on one machine) that
/// had cases planned but never arrived, and those cases.
#[derive(Debug, Default)]
pub(super) struct Gaps {
    pub missing: Vec<Shard>,
    pub cases: Vec<(PlannedCase, Shard)>,
}

impl Gaps {
    /// The missing shard that should have run case `id`, if any.
    pub fn shard_of(&self, id: &crate::id::CaseId) -> Option<Shard> {
        self.cases
            .iter()
            .find(|(c, _)| &c.id == id)
            .map(|(_, s)| *s)
    }
}

/// What is missing among `records`: nothing unless they come from a
/// sharded run. The newest plan decides (a later re-run may re-plan).
pub(super) fn gaps(records: &[&Record]) -> Gaps {
    let Some(plan) = records.iter().rev().find_map(|r| r.shard.as_ref()) else {
        return Gaps::default();
    };
    let count = plan.shard.count;
    let arrived: BTreeSet<u32> = records
        .iter()
        .filter_map(|r| r.shard.as_ref())
        .filter(|s| s.shard.count == count)
        .map(|s| s.shard.index)
        .collect();
    let missing: Vec<Shard> = plan
        .shards_with_cases()
        .into_iter()
        .filter(|i| !arrived.contains(i))
        .map(|index| Shard { index, count })
        .collect();
    let cases = plan
        .cases
        .iter()
        .filter_map(|c| {
            missing
                .iter()
                .find(|s| s.index == c.shard)
                .map(|s| (c.clone(), *s))
        })
        .collect();
    Gaps { missing, cases }
}

/// The pipelines a sharded run at this side planned, with the shards that
/// had cases of them (from every record's plan).
pub(super) fn planned_pipelines(records: &[Record]) -> BTreeMap<String, Vec<Shard>> {
    let mut out: BTreeMap<String, Vec<Shard>> = BTreeMap::new();
    for plan in records.iter().filter_map(|r| r.shard.as_ref()) {
        for p in &plan.pipelines {
            let shards = out.entry(p.pipeline.clone()).or_default();
            for &index in &p.shards {
                let s = Shard {
                    index,
                    count: plan.shard.count,
                };
                if !shards.contains(&s) {
                    shards.push(s);
                }
            }
        }
    }
    out.retain(|_, shards| !shards.is_empty());
    out
}
