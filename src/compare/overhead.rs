//! Python overhead: the python backend's eager latency against the native
//! backend's on the same built-in model, arguments and case. Both build the
//! zoo's model with the same weights, so the difference is what the Python
//! interpreter and the dispatch through it cost per call.

use crate::metric;
use crate::record::{CaseRecord, CaseStatus, Record};
use crate::spec::{BackendKind, CompileMode};

/// One case measured eagerly by both backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Overhead {
    /// The built-in model with its arguments.
    pub model: String,
    /// The case label without compile mode, as both backends name it.
    pub group: String,
    pub python_pipeline: String,
    pub native_pipeline: String,
    /// Latency at head (the processes' geometric location), seconds.
    pub python: f64,
    pub native: f64,
    /// python − native at base, when both were measured there.
    pub base_overhead: Option<f64>,
}

impl Overhead {
    /// python − native at head, seconds.
    pub fn overhead(&self) -> f64 {
        self.python - self.native
    }

    /// The overhead's share of the python latency.
    pub fn share(&self) -> f64 {
        self.overhead() / self.python
    }
}

/// The latency of a case measured eagerly and ok: exp of the mean of its
/// processes' locations (the trimmed log means the tests use).
fn eager_latency(c: &CaseRecord) -> Option<f64> {
    if c.status != CaseStatus::Ok || !matches!(c.compile, None | Some(CompileMode::Eager)) {
        return None;
    }
    let m = c.metrics.get(metric::LATENCY)?;
    let logs: Vec<f64> = m
        .processes
        .iter()
        .filter_map(|p| p.location.map(|l| l.mean))
        .collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// Every case one side's python and native backends both measured eagerly
/// on the same built-in model and machine (no base figure yet).
fn pairs(records: &[Record]) -> Vec<Overhead> {
    let mut out = Vec::new();
    for py in records
        .iter()
        .filter(|r| r.pipeline.backend == BackendKind::Python)
    {
        let Some(model) = &py.pipeline.model else {
            continue;
        };
        for nat in records.iter().filter(|r| {
            r.pipeline.backend == BackendKind::Native
                && r.pipeline.model.as_ref() == Some(model)
                && r.machine.fingerprint == py.machine.fingerprint
        }) {
            for pc in &py.cases {
                let Some(python) = eager_latency(pc) else {
                    continue;
                };
                let native = nat
                    .cases
                    .iter()
                    .filter(|nc| nc.group == pc.group && nc.phase == pc.phase)
                    .find_map(eager_latency);
                if let Some(native) = native {
                    out.push(Overhead {
                        model: model.clone(),
                        group: pc.group.clone(),
                        python_pipeline: py.pipeline.name.clone(),
                        native_pipeline: nat.pipeline.name.clone(),
                        python,
                        native,
                        base_overhead: None,
                    });
                }
            }
        }
    }
    out
}

/// Every case both backends measured eagerly on the same built-in model at
/// head, with the overhead at base where base measured both too.
pub(super) fn overheads(base: &[Record], head: &[Record]) -> Vec<Overhead> {
    let at_base = pairs(base);
    pairs(head)
        .into_iter()
        .map(|o| {
            let base_overhead = at_base
                .iter()
                .find(|b| {
                    (&b.model, &b.group, &b.python_pipeline, &b.native_pipeline)
                        == (&o.model, &o.group, &o.python_pipeline, &o.native_pipeline)
                })
                .map(Overhead::overhead);
            Overhead { base_overhead, ..o }
        })
        .collect()
}
