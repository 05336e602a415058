//! The samples of a record, kept compactly (record format 2): per process
//! the exact count and summary statistics of every sample, the exact
//! location the tests use, and at most `SKETCH_POINTS` order statistics
//! standing for the rest. A process of 40,000 iterations takes about half a
//! kilobyte instead of 800; a short one (mock, command) keeps every sample.
//!
//! Exact: `n`, `min`, `max`, `mean`, `p25`, `median`, `p75`, `outliers` and
//! `location` (the trimmed mean of the log samples with its variance, which
//! the process-level t-tests and the history use). Approximate: the rank
//! tests (Mann–Whitney, Hodges–Lehmann) and quantiles pooled over several
//! processes, which read the order statistics with the true counts
//! (`stats::Points`); each order statistic is stored on a fixed log grid
//! (relative step 6.6e-7), the same for every process, so equal samples
//! stay equal.
//!
//! Format 1 records (every sample of every process) are read and kept in
//! this form.

use serde::{Deserialize, Serialize};

use crate::metric::{self, Direction};
use crate::stats::{
    process_estimate, quantile, Points, Process, ProcessEstimate, StatsError, Summary,
};

/// Order statistics kept of a process's samples at most. 64 place each
/// quartile within 1/128 of the distribution; the pooled medians, the
/// Mann–Whitney p and the Hodges–Lehmann interval they give are compared
/// with those of every sample in `examples/verdict_quality.rs`.
pub const SKETCH_POINTS: usize = 64;

/// Tukey's fence multiplier for outliers, as in `stats::Summary`.
const TUKEY_FENCE: f64 = 1.5;

/// The location of one process as the tests use it: the trimmed mean of
/// its log samples (of 1/x for higher-is-better metrics, so that slow
/// iterations are always at the trimmed end), with that mean's variance
/// and degrees of freedom (`stats::process_estimate`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub mean: f64,
    pub var: f64,
    pub df: f64,
    /// When the samples fell into clock states: how far above `mean` (log)
    /// the next slower state lay, `mean` being the fastest state's.
    /// Absent for one group (and in records written before states were
    /// told apart, whose `mean` is over every sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slower: Option<f64>,
    /// Whether `mean` is the fastest state's alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fastest: bool,
}

impl From<ProcessEstimate> for Location {
    fn from(e: ProcessEstimate) -> Self {
        Location {
            mean: e.location,
            var: e.var,
            df: e.df,
            slower: e.slower,
            fastest: e.fastest,
        }
    }
}

/// The samples of one process beyond its summary: all of them (ascending)
/// when there are at most `SKETCH_POINTS`; else each distinct value with
/// its count when there are at most that many distinct values (a coarse
/// timer's ticks: ties kept exactly); else that many order statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum Sketch {
    All(Vec<f64>),
    /// Distinct values, ascending, and how many samples had each.
    Counts(Vec<f64>, Vec<u64>),
    /// Order statistics at ranks (i + ½)·n/k − ½, each standing for n/k samples.
    Quantiles(Vec<f64>),
}

impl Sketch {
    /// The stored values, ascending.
    pub fn values(&self) -> &[f64] {
        match self {
            Sketch::All(v) | Sketch::Counts(v, _) | Sketch::Quantiles(v) => v,
        }
    }

    /// The stored values as points standing for the process's `n` samples.
    fn points(&self, n: u64) -> Result<Points, StatsError> {
        match self {
            Sketch::All(v) => Points::exact(v),
            Sketch::Counts(v, c) => Points::weighted(v.iter().zip(c).map(|(&x, &k)| (x, k as f64))),
            Sketch::Quantiles(v) => {
                let weight = n as f64 / v.len() as f64;
                Points::weighted(v.iter().map(|&x| (x, weight)))
            }
        }
    }
}

/// Distinct values of ascending samples with their counts, if there are
/// at most `SKETCH_POINTS` of them.
fn distinct(sorted: &[f64]) -> Option<(Vec<f64>, Vec<u64>)> {
    let (mut values, mut counts): (Vec<f64>, Vec<u64>) = (Vec::new(), Vec::new());
    for &x in sorted {
        if values.last() == Some(&x) {
            *counts.last_mut().expect("parallel") += 1;
        } else if values.len() == SKETCH_POINTS {
            return None;
        } else {
            values.push(x);
            counts.push(1);
        }
    }
    Some((values, counts))
}

/// One process of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    /// Samples beyond Tukey's fences.
    pub outliers: u64,
    /// `None` when the samples are not all positive (no log scale).
    pub location: Option<Location>,
    #[serde(with = "sketch_codec")]
    pub sketch: Sketch,
}

impl ProcessSummary {
    /// The summary of every sample of a process of a metric going `direction`.
    pub fn of(samples: &[f64], direction: Direction) -> ProcessSummary {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (p25, p75) = (quantile(&sorted, 0.25), quantile(&sorted, 0.75));
        let fence = TUKEY_FENCE * (p75 - p25);
        let oriented: Vec<f64> = match direction {
            Direction::LowerIsBetter => sorted.clone(),
            Direction::HigherIsBetter => sorted.iter().map(|x| 1.0 / x).collect(),
        };
        let sketch = if n <= SKETCH_POINTS {
            Sketch::All(sorted.clone())
        } else if let Some((values, counts)) = distinct(&sorted) {
            // Equal values stay equal on the grid, so distinct ones stay distinct.
            Sketch::Counts(values.iter().map(|&x| grid(x)).collect(), counts)
        } else {
            let step = n as f64 / SKETCH_POINTS as f64;
            let order: Vec<f64> = (0..SKETCH_POINTS)
                .map(|i| sorted[(((i as f64 + 0.5) * step - 0.5).round() as usize).min(n - 1)])
                .collect();
            Sketch::Quantiles(order.iter().map(|&x| grid(x)).collect())
        };
        ProcessSummary {
            n: n as u64,
            min: sorted[0],
            max: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
            p25,
            median: quantile(&sorted, 0.5),
            p75,
            outliers: sorted
                .iter()
                .filter(|x| **x < p25 - fence || **x > p75 + fence)
                .count() as u64,
            location: process_estimate(&oriented).ok().map(Location::from),
            sketch,
        }
    }

    /// The process as the statistics take it, oriented so that slow is high
    /// (1/x for higher-is-better metrics). An error names a sample that is
    /// not positive.
    pub fn process(&self, direction: Direction) -> Result<Process, StatsError> {
        let values = self.sketch.values();
        let points = self.sketch.points(self.n)?;
        let points = match direction {
            Direction::LowerIsBetter => points,
            Direction::HigherIsBetter => {
                crate::stats::check_positive(values)?;
                points.map(|x| 1.0 / x)
            }
        };
        let Some(l) = self.location else {
            // Not all positive (or not all finite): name the offending
            // value, which the stored points may not hold but the exact
            // extremes do.
            crate::stats::check_positive(values)?;
            crate::stats::check_positive(&[self.min, self.max])?;
            return Err(StatsError::Empty);
        };
        Ok(Process {
            estimate: ProcessEstimate {
                location: l.mean,
                var: l.var,
                df: l.df,
                slower: l.slower,
                fastest: l.fastest,
            },
            points,
        })
    }

    /// The process's points on its own scale (not oriented).
    pub fn points(&self) -> Points {
        self.sketch.points(self.n).unwrap_or_default()
    }
}

/// The summary of one or more processes' samples: exact for one process;
/// for several, exact count, minimum and maximum, and quantiles from their
/// points with the true counts. `None` without processes.
pub fn summary_of(processes: &[&ProcessSummary]) -> Option<Summary> {
    let rel_iqr = |p25: f64, median: f64, p75: f64| {
        if median != 0.0 {
            (p75 - p25) / median.abs()
        } else {
            0.0
        }
    };
    match processes {
        [] => None,
        [p] => Some(Summary {
            n: p.n as usize,
            median: p.median,
            p25: p.p25,
            p75: p.p75,
            min: p.min,
            max: p.max,
            rel_iqr: rel_iqr(p.p25, p.median, p.p75),
            outliers: p.outliers as usize,
        }),
        many => {
            let points: Vec<Points> = many.iter().map(|p| p.points()).collect();
            let mut s = Summary::of_points(&Points::union(&points)).ok()?;
            s.n = many.iter().map(|p| p.n as usize).sum();
            // The points cannot see most outliers (only the extreme ones
            // fall beyond the fences); each process counted its own.
            s.outliers = many.iter().map(|p| p.outliers as usize).sum();
            s.min = many.iter().map(|p| p.min).fold(f64::INFINITY, f64::min);
            s.max = many.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
            Some(s)
        }
    }
}

/// Steps of the storage grid per doubling: order statistics are stored as
/// round(log2(x) · 2^20), a fixed grid with a relative step of 6.6e-7. The
/// grid is the same for every process, record and commit, so samples that
/// were equal (a quantized timer's ties) stay equal when stored.
const GRID_PER_OCTAVE: f64 = 1_048_576.0;

/// `x` moved onto the storage grid, so a record reads back exactly as it
/// was in memory. Values that are not positive are kept as they are (they
/// are stored as plain numbers).
fn grid(x: f64) -> f64 {
    match to_level(x) {
        Some(level) => from_level(level),
        None => x,
    }
}

fn to_level(x: f64) -> Option<i64> {
    (x > 0.0 && x.is_finite()).then(|| (x.log2() * GRID_PER_OCTAVE).round() as i64)
}

fn from_level(level: i64) -> f64 {
    (level as f64 / GRID_PER_OCTAVE).exp2()
}

/// A sketch on disk: all samples as a JSON array of numbers, or order
/// statistics as `{"q": base64}`: their grid levels as a zigzag varint
/// followed by varint differences (ascending, so mostly one or two bytes
/// each); order statistics that are not all positive as `{"v": [...]}`.
mod sketch_codec {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{from_level, to_level, Sketch};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Raw {
        All(Vec<f64>),
        Levels {
            q: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            c: Option<Vec<u64>>,
        },
        Values {
            v: Vec<f64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            c: Option<Vec<u64>>,
        },
    }

    fn put_varint(out: &mut Vec<u8>, mut x: u64) {
        while x >= 0x80 {
            out.push((x as u8) | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    }

    fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*at)?;
            *at += 1;
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(x);
            }
        }
        None
    }

    /// The levels of ascending positive values, encoded; None otherwise.
    pub(super) fn encode(values: &[f64]) -> Option<String> {
        let levels: Vec<i64> = values.iter().map(|&x| to_level(x)).collect::<Option<_>>()?;
        let (first, rest) = levels.split_first()?;
        let mut bytes = Vec::with_capacity(2 * levels.len() + 4);
        put_varint(&mut bytes, ((first << 1) ^ (first >> 63)) as u64);
        let mut prev = *first;
        for &l in rest {
            put_varint(&mut bytes, u64::try_from(l - prev).ok()?);
            prev = l;
        }
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn decode(q: &str) -> Result<Vec<f64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(q.as_bytes())
            .map_err(|e| format!("sketch is not base64: {e}"))?;
        let mut at = 0;
        let zig = get_varint(&bytes, &mut at).ok_or("sketch holds no level")?;
        let mut level = (zig >> 1) as i64 ^ -((zig & 1) as i64);
        let mut values = vec![from_level(level)];
        while at < bytes.len() {
            let step = get_varint(&bytes, &mut at).ok_or("sketch ends inside a level")?;
            level += i64::try_from(step).map_err(|_| "sketch level out of range")?;
            values.push(from_level(level));
        }
        Ok(values)
    }

    /// Order statistics, or distinct values when counts come with them.
    fn with_counts(values: Vec<f64>, counts: Option<Vec<u64>>) -> Result<Sketch, String> {
        match counts {
            None => Ok(Sketch::Quantiles(values)),
            Some(c) if c.len() == values.len() => Ok(Sketch::Counts(values, c)),
            Some(c) => Err(format!(
                "sketch has {} values but {} counts",
                values.len(),
                c.len()
            )),
        }
    }

    pub fn serialize<S: Serializer>(sketch: &Sketch, s: S) -> Result<S::Ok, S::Error> {
        match sketch {
            Sketch::All(v) => Raw::All(v.clone()),
            Sketch::Quantiles(v) => match encode(v) {
                Some(q) => Raw::Levels { q, c: None },
                None => Raw::Values {
                    v: v.clone(),
                    c: None,
                },
            },
            Sketch::Counts(v, c) => match encode(v) {
                Some(q) => Raw::Levels {
                    q,
                    c: Some(c.clone()),
                },
                None => Raw::Values {
                    v: v.clone(),
                    c: Some(c.clone()),
                },
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sketch, D::Error> {
        use serde::de::Error;
        Ok(match Raw::deserialize(d)? {
            Raw::All(v) => Sketch::All(v),
            Raw::Levels { q, c } => {
                with_counts(decode(&q).map_err(D::Error::custom)?, c).map_err(D::Error::custom)?
            }
            Raw::Values { v, c } => with_counts(v, c).map_err(D::Error::custom)?,
        })
    }
}

/// One metric of one case: one summary per process.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub unit: String,
    pub processes: Vec<ProcessSummary>,
}

impl Metric {
    /// The stored points of every process (all samples of short processes,
    /// order statistics of long ones), for a quick look; the statistics use
    /// `ProcessSummary::process`, which weighs them.
    pub fn pooled(&self) -> Vec<f64> {
        self.processes
            .iter()
            .flat_map(|p| p.sketch.values().iter().copied())
            .collect()
    }

    /// The summary over every process (`summary_of`).
    pub fn summary(&self) -> Option<Summary> {
        summary_of(&self.processes.iter().collect::<Vec<_>>())
    }

    /// The direction of this metric: from the metric table, else by its
    /// unit (a rate per second is higher-is-better).
    fn direction(&self, name: &str) -> Direction {
        metric::lookup(name).map_or_else(
            || {
                if self.unit == "1/s" {
                    Direction::HigherIsBetter
                } else {
                    Direction::LowerIsBetter
                }
            },
            |m| m.direction,
        )
    }

    /// Adds one process's samples.
    pub fn push(&mut self, name: &str, samples: &[f64]) {
        let direction = self.direction(name);
        self.processes.push(ProcessSummary::of(samples, direction));
    }
}

/// A metric on disk: format 2 writes `values` (one exact value per process)
/// when every process has a single sample, else `processes`; format 1 had
/// `samples`, every sample of every process.
#[derive(Serialize, Deserialize)]
struct RawMetric {
    unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    processes: Option<Vec<ProcessSummary>>,
    #[serde(default, skip_serializing)]
    samples: Option<Vec<Vec<f64>>>,
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let single = !self.processes.is_empty() && self.processes.iter().all(|p| p.n == 1);
        RawMetric {
            unit: self.unit.clone(),
            values: single.then(|| self.processes.iter().map(|p| p.min).collect()),
            processes: (!single).then(|| self.processes.clone()),
            samples: None,
        }
        .serialize(s)
    }
}

/// A metric read from disk, before its name (hence its direction) is known.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct UnnamedMetric(RawMetricKind);

#[derive(Debug, Clone, PartialEq)]
enum RawMetricKind {
    Done(Metric),
    /// One list of samples per process (format 1, or format 2's `values`).
    Samples {
        unit: String,
        lists: Vec<Vec<f64>>,
    },
}

impl<'de> Deserialize<'de> for UnnamedMetric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawMetric::deserialize(d)?;
        Ok(UnnamedMetric(match (raw.values, raw.processes, raw.samples) {
            (None, Some(processes), None) => RawMetricKind::Done(Metric {
                unit: raw.unit,
                processes,
            }),
            (Some(values), None, None) => RawMetricKind::Samples {
                unit: raw.unit,
                lists: values.into_iter().map(|v| vec![v]).collect(),
            },
            (None, None, Some(lists)) => RawMetricKind::Samples {
                unit: raw.unit,
                lists,
            },
            _ => {
                return Err(D::Error::custom(
                    "a metric holds exactly one of `values`, `processes` (format 2) or `samples` (format 1)",
                ))
            }
        }))
    }
}

impl UnnamedMetric {
    /// The metric, summarised with the direction its name gives.
    pub(super) fn named(self, name: &str) -> Metric {
        match self.0 {
            RawMetricKind::Done(m) => m,
            RawMetricKind::Samples { unit, lists } => {
                let mut m = Metric {
                    unit,
                    processes: Vec::new(),
                };
                for list in lists.iter().filter(|l| !l.is_empty()) {
                    m.push(name, list);
                }
                m
            }
        }
    }
}

#[cfg(test)]
#[path = "samples_tests.rs"]
mod tests;
