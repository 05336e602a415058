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
//! (`stats::Points`); each order statistic is stored to 1 part in 65,535
//! of the process's range on the log scale.
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

/// Levels of the 16-bit grid order statistics are stored on.
const LEVELS: f64 = 65_535.0;

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
}

impl From<ProcessEstimate> for Location {
    fn from(e: ProcessEstimate) -> Self {
        Location {
            mean: e.location,
            var: e.var,
            df: e.df,
        }
    }
}

/// The samples of one process beyond its summary: all of them (ascending)
/// when there are at most `SKETCH_POINTS`, else that many order statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum Sketch {
    All(Vec<f64>),
    /// Order statistics at ranks (i + ½)·n/k − ½, each standing for n/k samples.
    Quantiles(Vec<f64>),
}

impl Sketch {
    /// The stored values, ascending.
    pub fn values(&self) -> &[f64] {
        match self {
            Sketch::All(v) | Sketch::Quantiles(v) => v,
        }
    }
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
        } else {
            let step = n as f64 / SKETCH_POINTS as f64;
            let order: Vec<f64> = (0..SKETCH_POINTS)
                .map(|i| sorted[(((i as f64 + 0.5) * step - 0.5).round() as usize).min(n - 1)])
                .collect();
            // The grid spans the stored points, as it does when read back.
            let (lo, hi) = (order[0], order[SKETCH_POINTS - 1]);
            Sketch::Quantiles(order.iter().map(|&x| grid(x, lo, hi)).collect())
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
        let points = match &self.sketch {
            Sketch::All(v) => Points::exact(v)?,
            Sketch::Quantiles(v) => {
                let weight = self.n as f64 / v.len() as f64;
                Points::weighted(v.iter().map(|&x| (x, weight)))?
            }
        };
        let points = match direction {
            Direction::LowerIsBetter => points,
            Direction::HigherIsBetter => {
                crate::stats::check_positive(values)?;
                points.map(|x| 1.0 / x)
            }
        };
        let Some(l) = self.location else {
            // Not all positive: the statistics name the offending value.
            crate::stats::check_positive(values)?;
            return Err(StatsError::Empty);
        };
        Ok(Process {
            estimate: ProcessEstimate {
                location: l.mean,
                var: l.var,
                df: l.df,
            },
            points,
        })
    }

    /// The process's points on its own scale (not oriented).
    pub fn points(&self) -> Points {
        match &self.sketch {
            Sketch::All(v) => Points::exact(v).unwrap_or_default(),
            Sketch::Quantiles(v) => {
                let weight = self.n as f64 / v.len() as f64;
                Points::weighted(v.iter().map(|&x| (x, weight))).unwrap_or_default()
            }
        }
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
            s.min = many.iter().map(|p| p.min).fold(f64::INFINITY, f64::min);
            s.max = many.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
            Some(s)
        }
    }
}

/// `x` moved onto the 16-bit grid between `lo` and `hi` that storage uses,
/// so a record reads back exactly as it was in memory. Log scale when the
/// range is positive (relative precision whatever the range), else linear.
fn grid(x: f64, lo: f64, hi: f64) -> f64 {
    from_level(to_level(x, lo, hi), lo, hi)
}

fn log_scale(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi > lo
}

fn to_level(x: f64, lo: f64, hi: f64) -> u16 {
    let t = if hi <= lo {
        0.0
    } else if log_scale(lo, hi) {
        (x.ln() - lo.ln()) / (hi.ln() - lo.ln())
    } else {
        (x - lo) / (hi - lo)
    };
    (t.clamp(0.0, 1.0) * LEVELS).round() as u16
}

fn from_level(level: u16, lo: f64, hi: f64) -> f64 {
    let t = f64::from(level) / LEVELS;
    // The ends are exact, so the grid of the read-back points is the same.
    if hi <= lo || level == 0 {
        lo
    } else if level == u16::MAX {
        hi
    } else if log_scale(lo, hi) {
        (lo.ln() + t * (hi.ln() - lo.ln())).exp()
    } else {
        lo + t * (hi - lo)
    }
}

/// A sketch on disk: all samples as a JSON array of numbers, or order
/// statistics as `{"lo", "hi", "q"}` with `q` the base64 of their 16-bit
/// levels (little endian) between `lo` and `hi`.
mod sketch_codec {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{from_level, to_level, Sketch};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Raw {
        All(Vec<f64>),
        Quantiles { lo: f64, hi: f64, q: String },
    }

    pub fn serialize<S: Serializer>(sketch: &Sketch, s: S) -> Result<S::Ok, S::Error> {
        match sketch {
            Sketch::All(v) => Raw::All(v.clone()),
            Sketch::Quantiles(v) => {
                let (lo, hi) = (v[0], v[v.len() - 1]);
                let bytes: Vec<u8> = v
                    .iter()
                    .flat_map(|&x| to_level(x, lo, hi).to_le_bytes())
                    .collect();
                Raw::Quantiles {
                    lo,
                    hi,
                    q: base64::engine::general_purpose::STANDARD.encode(bytes),
                }
            }
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sketch, D::Error> {
        use serde::de::Error;
        Ok(match Raw::deserialize(d)? {
            Raw::All(v) => Sketch::All(v),
            Raw::Quantiles { lo, hi, q } => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(q.as_bytes())
                    .map_err(|e| D::Error::custom(format!("sketch is not base64: {e}")))?;
                if bytes.is_empty() || bytes.len() % 2 != 0 {
                    return Err(D::Error::custom("sketch holds no whole 16-bit levels"));
                }
                Sketch::Quantiles(
                    bytes
                        .chunks_exact(2)
                        .map(|b| from_level(u16::from_le_bytes([b[0], b[1]]), lo, hi))
                        .collect(),
                )
            }
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
mod tests {
    use super::*;

    fn lognormal(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                1e-3 * (0.05 * (u - 0.5) * 3.46).exp()
            })
            .collect()
    }

    #[test]
    fn long_processes_keep_exact_summaries_and_64_points() {
        let xs = lognormal(40_000, 1);
        let p = ProcessSummary::of(&xs, Direction::LowerIsBetter);
        assert_eq!(p.n, 40_000);
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!((p.min, p.max), (sorted[0], sorted[39_999]));
        assert_eq!(p.median, quantile(&sorted, 0.5));
        let exact = process_estimate(&xs).unwrap();
        assert_eq!(p.location.unwrap().mean, exact.location);
        assert_eq!(p.location.unwrap().var, exact.var);
        let Sketch::Quantiles(q) = &p.sketch else {
            panic!("a sketch")
        };
        assert_eq!(q.len(), SKETCH_POINTS);
        // The points' median is the samples' median to the grid's precision.
        let points = p.process(Direction::LowerIsBetter).unwrap().points;
        assert_eq!(points.total(), 40_000.0);
        assert!((points.quantile(0.5) / p.median - 1.0).abs() < 1e-3);
    }

    #[test]
    fn records_read_back_exactly_as_written() {
        for n in [1, 7, 64, 65, 5000] {
            let p = ProcessSummary::of(&lognormal(n, n as u64), Direction::LowerIsBetter);
            let json = serde_json::to_string(&p).unwrap();
            let back: ProcessSummary = serde_json::from_str(&json).unwrap();
            assert_eq!(back, p, "n = {n}");
        }
    }

    #[test]
    fn short_processes_keep_every_sample() {
        let xs = [3.0, 1.0, 2.0];
        let p = ProcessSummary::of(&xs, Direction::LowerIsBetter);
        assert_eq!(p.sketch, Sketch::All(vec![1.0, 2.0, 3.0]));
        assert!(p
            .process(Direction::LowerIsBetter)
            .unwrap()
            .points
            .is_exact());
    }

    #[test]
    fn rates_are_oriented_so_that_slow_is_high() {
        let rates = [100.0, 110.0, 90.0, 105.0, 95.0];
        let p = ProcessSummary::of(&rates, Direction::HigherIsBetter);
        let times: Vec<f64> = rates.iter().map(|r| 1.0 / r).collect();
        assert_eq!(
            p.location.unwrap().mean,
            process_estimate(&times).unwrap().location
        );
        let proc = p.process(Direction::HigherIsBetter).unwrap();
        assert_eq!(proc.points.values()[0], 1.0 / 110.0);
    }

    #[test]
    fn metrics_read_every_format() {
        let v1: UnnamedMetric =
            serde_json::from_str(r#"{"unit": "s", "samples": [[0.001, 0.002], [0.003]]}"#).unwrap();
        let m = v1.named(metric::LATENCY);
        assert_eq!(m.processes.len(), 2);
        assert_eq!(m.processes[0].n, 2);
        // One value per process is written as `values`, and read back.
        let mut once = Metric {
            unit: "s".into(),
            processes: Vec::new(),
        };
        once.push(metric::COMPILE_TIME, &[2.0]);
        once.push(metric::COMPILE_TIME, &[2.5]);
        let json = serde_json::to_string(&once).unwrap();
        assert_eq!(json, r#"{"unit":"s","values":[2.0,2.5]}"#);
        let back: UnnamedMetric = serde_json::from_str(&json).unwrap();
        assert_eq!(back.named(metric::COMPILE_TIME), once);
        let both = serde_json::from_str::<UnnamedMetric>(
            r#"{"unit": "s", "values": [1.0], "samples": [[1.0]]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("exactly one of"), "{both}");
    }
}
