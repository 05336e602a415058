//! Finds the line and column of a key path (`matrix.compile[1]`) in a YAML
//! source, so that checks made after deserialisation can point at the exact
//! spot in the file.
//!
//! serde_yaml keeps no spans in its `Value`, but it does attach the position
//! of the current node to any error a visitor raises. The finder walks the
//! document along the path and raises a marker error at the target node; the
//! error's location is the answer. This keeps all YAML handling on one crate.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root to one node, printed as `runner.warmup.min_time`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a map key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        KeyPath(segs)
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The marker error text; it never reaches a user.
const FOUND: &str = "\u{0}regress-locate-found";

/// 1-based (line, column) of the node at `path` in document `doc` (0 for
/// the first), or of its nearest existing ancestor when the path does not
/// exist (a missing key is reported where its parent is).
pub fn locate(src: &str, doc: usize, path: &KeyPath) -> Option<(usize, usize)> {
    for len in (0..=path.0.len()).rev() {
        let de = serde_yaml::Deserializer::from_str(src).nth(doc)?;
        match (Finder {
            path: &path.0[..len],
        })
        .deserialize(de)
        {
            Err(e) if e.to_string().starts_with(FOUND) || e.to_string().contains(FOUND) => {
                return e.location().map(|l| (l.line(), l.column()));
            }
            _ => continue,
        }
    }
    None
}

struct Finder<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Finder<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Finder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let target = match self.path.first() {
            None => return Err(de::Error::custom(FOUND)),
            Some(Seg::Index(i)) => Some(*i),
            Some(Seg::Key(_)) => None,
        };
        let mut index = 0;
        loop {
            if Some(index) == target {
                if seq
                    .next_element_seed(Finder {
                        path: &self.path[1..],
                    })?
                    .is_none()
                {
                    return Ok(());
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let target = match self.path.first() {
            None => return Err(de::Error::custom(FOUND)),
            Some(Seg::Key(k)) => Some(k.as_str()),
            Some(Seg::Index(_)) => None,
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let name = match &key {
                serde_yaml::Value::String(s) => Some(s.clone()),
                serde_yaml::Value::Number(n) => Some(n.to_string()),
                serde_yaml::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            if target.is_some() && name.as_deref() == target {
                map.next_value_seed(Finder {
                    path: &self.path[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl Finder<'_> {
    fn leaf<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "version: 1\nname: demo\nmatrix:\n  batch: [1, 8]\n  compile:\n    - eager\n    - default\n";

    #[test]
    fn finds_block_and_flow_nodes() {
        let p = KeyPath::root().key("matrix").key("compile").index(1);
        assert_eq!(locate(SRC, 0, &p), Some((7, 7)));
        let p = KeyPath::root().key("matrix").key("batch").index(1);
        assert_eq!(locate(SRC, 0, &p), Some((4, 14)));
        assert_eq!(locate(SRC, 0, &KeyPath::root().key("name")), Some((2, 7)));
    }

    #[test]
    fn missing_path_falls_back_to_parent() {
        let p = KeyPath::root().key("matrix").key("nope");
        assert_eq!(
            locate(SRC, 0, &p),
            locate(SRC, 0, &KeyPath::root().key("matrix"))
        );
        assert!(locate(SRC, 0, &p).is_some());
    }

    #[test]
    fn later_documents_have_file_positions() {
        let src = format!("{SRC}---\nversion: 1\nname: second\n");
        assert_eq!(locate(&src, 1, &KeyPath::root().key("name")), Some((10, 7)));
    }

    #[test]
    fn path_display() {
        let p = KeyPath::root().key("matrix").key("compile").index(1);
        assert_eq!(p.to_string(), "matrix.compile[1]");
    }
}
