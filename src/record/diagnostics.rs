//! Per-process diagnostics of a case, kept as JSON text until read.

use serde::{Deserialize, Serialize};

/// Per-process diagnostics of a case (device, settings, warm-up, accuracy,
/// compile reasons, ...), kept as the JSON text they are stored as and
/// parsed only when asked: a comparison reads thousands of cases and needs
/// none of them. On disk what every process shares is written once:
/// `{"common": {...}, "processes": [{...}, ...]}`; format 1 and a single
/// process use a plain list of objects, which reads too.
#[derive(Debug, Clone)]
pub struct Diagnostics(Box<serde_json::value::RawValue>);

/// Equal when they say the same, however the JSON was laid out.
impl PartialEq for Diagnostics {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get() || self.maps() == other.maps()
    }
}

type DiagnosticsMap = serde_json::Map<String, serde_json::Value>;

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawDiagnostics {
    Factored {
        common: DiagnosticsMap,
        processes: Vec<DiagnosticsMap>,
    },
    List(Vec<DiagnosticsMap>),
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics::from_maps(&[])
    }
}

impl Diagnostics {
    /// The diagnostics of these processes, factored.
    pub fn from_maps(processes: &[DiagnosticsMap]) -> Diagnostics {
        let raw = if processes.len() < 2 {
            RawDiagnostics::List(processes.to_vec())
        } else {
            let common: DiagnosticsMap = processes[0]
                .iter()
                .filter(|(k, v)| processes[1..].iter().all(|p| p.get(*k) == Some(*v)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let own = processes
                .iter()
                .map(|p| {
                    p.iter()
                        .filter(|(k, _)| !common.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .collect();
            RawDiagnostics::Factored {
                common,
                processes: own,
            }
        };
        let text = serde_json::to_string(&raw).expect("diagnostics serialise");
        Diagnostics(serde_json::value::RawValue::from_string(text).expect("valid JSON"))
    }

    /// Every process's diagnostics, parsed.
    pub fn maps(&self) -> Vec<DiagnosticsMap> {
        match serde_json::from_str(self.0.get()) {
            Ok(RawDiagnostics::List(list)) => list,
            Ok(RawDiagnostics::Factored { common, processes }) => processes
                .into_iter()
                .map(|own| {
                    let mut all = common.clone();
                    all.extend(own);
                    all
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Adds one process's diagnostics.
    pub fn push(&mut self, process: DiagnosticsMap) {
        let mut all = self.maps();
        all.push(process);
        *self = Diagnostics::from_maps(&all);
    }
}

impl Serialize for Diagnostics {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Diagnostics {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().trim_start();
        if !(text.starts_with('[') || text.starts_with('{')) {
            return Err(serde::de::Error::custom(
                "diagnostics are a list of objects or {\"common\", \"processes\"}",
            ));
        }
        Ok(Diagnostics(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_shared_by_every_process_are_written_once() {
        let process = |iters: u64| {
            serde_json::json!({"settings": {"threads": 2}, "warmup_iters": iters})
                .as_object()
                .unwrap()
                .clone()
        };
        let mut d = Diagnostics::default();
        d.push(process(10));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"[{"settings":{"threads":2},"warmup_iters":10}]"#
        );
        d.push(process(12));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"common":{"settings":{"threads":2}},"processes":[{"warmup_iters":10},{"warmup_iters":12}]}"#
        );
        let back: Diagnostics = serde_json::from_str(&json).unwrap();
        assert_eq!(back.maps(), vec![process(10), process(12)]);
        let v1: Diagnostics = serde_json::from_str(r#"[{"a": 1}, {}]"#).unwrap();
        assert_eq!(v1.maps().len(), 2);
        assert!(serde_json::from_str::<Diagnostics>("3").is_err());
    }
}
