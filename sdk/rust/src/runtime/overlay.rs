//! A JSON object described as a borrowed base object with keys set on top, so that an outgoing
//! message can be written without copying what it is built from (the caller's context, the
//! conversation state) into maps that are serialised once and dropped.
//!
//! An [`Overlay`] reads and orders exactly as a copy of its base changed by `Map::insert` and
//! `Map::entry(..).or_insert(..)` would: a key of the base keeps its place, a new key goes after
//! the base's keys in the order it was first set. [`Overlay::to_map`] is that copy; its
//! [`Serialize`] writes the same JSON without making it.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::events::truthy;

/// A value set on an [`Overlay`], borrowed.
pub(crate) enum Part<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON array of strings.
    Strs(&'a [&'a str]),
    /// Any JSON value.
    Json(&'a Value),
    /// An object, itself an overlay.
    Object(Overlay<'a>),
}

impl<'a> Part<'a> {
    fn as_str(&self) -> Option<&'a str> {
        match self {
            Part::Str(text) => Some(text),
            Part::Json(value) => value.as_str(),
            Part::Strs(_) | Part::Object(_) => None,
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Part::Str(text) => !text.is_empty(),
            Part::Strs(items) => !items.is_empty(),
            Part::Json(value) => truthy(value),
            Part::Object(object) => !object.is_empty(),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Part::Str(text) => Value::String((*text).to_string()),
            Part::Strs(items) => Value::Array(items.iter().map(|s| Value::String((*s).to_string())).collect()),
            Part::Json(value) => (*value).clone(),
            Part::Object(object) => Value::Object(object.to_map()),
        }
    }
}

impl Serialize for Part<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Part::Str(text) => serializer.serialize_str(text),
            Part::Strs(items) => serializer.collect_seq(items.iter()),
            Part::Json(value) => value.serialize(serializer),
            Part::Object(object) => object.serialize(serializer),
        }
    }
}

/// One key set on an overlay: whether the base has it (it then keeps the base's place).
struct Set<'a> {
    key: &'a str,
    in_base: bool,
    part: Part<'a>,
}

/// A base object (none: `{}`) with keys set on top (see the module doc).
pub(crate) struct Overlay<'a> {
    base: Option<&'a Map<String, Value>>,
    set: Vec<Set<'a>>,
}

impl<'a> Overlay<'a> {
    /// `base` with nothing set yet.
    pub(crate) fn new(base: Option<&'a Map<String, Value>>) -> Self {
        // room for the keys an outgoing message sets on one object: no regrowth
        Self { base, set: Vec::with_capacity(8) }
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.base.is_none_or(Map::is_empty)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.set.iter().position(|set| set.key == key)
    }

    fn contains(&self, key: &str) -> bool {
        self.position(key).is_some() || self.base.is_some_and(|base| base.contains_key(key))
    }

    /// `Map::insert`: `key` takes `part`, in its place if it has one.
    pub(crate) fn insert(&mut self, key: &'a str, part: Part<'a>) {
        match self.position(key) {
            Some(index) => self.set[index].part = part,
            None => {
                let in_base = self.base.is_some_and(|base| base.contains_key(key));
                self.set.push(Set { key, in_base, part });
            }
        }
    }

    /// `Map::entry(key).or_insert(part)`: `key` takes `part` unless it has a value.
    pub(crate) fn or_insert(&mut self, key: &'a str, part: Part<'a>) {
        if !self.contains(key) {
            self.set.push(Set { key, in_base: false, part });
        }
    }

    /// The value of `key` if it is a string.
    pub(crate) fn get_str(&self, key: &str) -> Option<&'a str> {
        match self.position(key) {
            Some(index) => self.set[index].part.as_str(),
            None => self.base.and_then(|base| base.get(key)).and_then(Value::as_str),
        }
    }

    /// The value of `key` if it is an object given as JSON (not one made by [`Self::object`]).
    pub(crate) fn get_object(&self, key: &str) -> Option<&'a Map<String, Value>> {
        match self.position(key) {
            Some(index) => match self.set[index].part {
                Part::Json(value) => value.as_object(),
                _ => None,
            },
            None => self.base.and_then(|base| base.get(key)).and_then(Value::as_object),
        }
    }

    /// Whether `key` has a truthy value ([`truthy`]).
    pub(crate) fn truthy(&self, key: &str) -> bool {
        match self.position(key) {
            Some(index) => self.set[index].part.truthy(),
            None => self.base.and_then(|base| base.get(key)).is_some_and(truthy),
        }
    }

    /// The object at `key`, set in its place: the value it has if that is an object, else a
    /// new empty one (as `entry(key).or_insert(Null)` followed by replacing a non-object).
    pub(crate) fn object(&mut self, key: &'a str) -> &mut Overlay<'a> {
        let index = match self.position(key) {
            Some(index) => {
                let part = &mut self.set[index].part;
                if !matches!(part, Part::Object(_)) {
                    let base = if let Part::Json(value) = *part { value.as_object() } else { None };
                    *part = Part::Object(Overlay::new(base));
                }
                index
            }
            None => {
                let found = self.base.and_then(|base| base.get(key));
                let part = Part::Object(Overlay::new(found.and_then(Value::as_object)));
                self.set.push(Set { key, in_base: found.is_some(), part });
                self.set.len() - 1
            }
        };
        match &mut self.set[index].part {
            Part::Object(object) => object,
            _ => unreachable!("the key's value was just made an object"),
        }
    }

    /// The object as a map: the base copied, then every key set inserted.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        let mut map = self.base.cloned().unwrap_or_default();
        for set in &self.set {
            map.insert(set.key.to_string(), set.part.to_value());
        }
        map
    }
}

impl Serialize for Overlay<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let replaces = self.set.iter().any(|set| set.in_base);
        for (key, value) in self.base.into_iter().flatten() {
            match self.set.iter().find(|set| replaces && set.in_base && set.key == key) {
                Some(set) => map.serialize_entry(key, &set.part)?,
                None => map.serialize_entry(key, value)?,
            }
        }
        for set in self.set.iter().filter(|set| !set.in_base) {
            map.serialize_entry(set.key, &set.part)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    const KEYS: [&str; 4] = ["a", "b", "session", "z"];

    /// One change, made to an overlay and to a copy of its base as the module doc says.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, Value),
        InsertStr(usize, String),
        OrInsert(usize, Value),
        Object(usize, Vec<Op>),
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-2i64..3).prop_map(Value::from),
            "[a-b]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((0..KEYS.len(), inner), 0..3)
                    .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (KEYS[k].into(), v)).collect())),
            ]
        })
    }

    fn ops(depth: u32) -> BoxedStrategy<Vec<Op>> {
        let key = 0..KEYS.len();
        let flat = prop_oneof![
            (key.clone(), value()).prop_map(|(k, v)| Op::Insert(k, v)),
            (key.clone(), "[a-b]{0,2}").prop_map(|(k, s)| Op::InsertStr(k, s)),
            (key.clone(), value()).prop_map(|(k, v)| Op::OrInsert(k, v)),
        ];
        let op = if depth == 0 {
            flat.boxed()
        } else {
            prop_oneof![3 => flat, 1 => (key, ops(depth - 1)).prop_map(|(k, inner)| Op::Object(k, inner))].boxed()
        };
        prop::collection::vec(op, 0..6).boxed()
    }

    fn on_overlay<'a>(overlay: &mut Overlay<'a>, ops: &'a [Op]) {
        for op in ops {
            match op {
                Op::Insert(k, v) => overlay.insert(KEYS[*k], Part::Json(v)),
                Op::InsertStr(k, s) => overlay.insert(KEYS[*k], Part::Str(s)),
                Op::OrInsert(k, v) => overlay.or_insert(KEYS[*k], Part::Json(v)),
                Op::Object(k, inner) => on_overlay(overlay.object(KEYS[*k]), inner),
            }
        }
    }

    fn on_map(map: &mut Map<String, Value>, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    map.insert(KEYS[*k].into(), v.clone());
                }
                Op::InsertStr(k, s) => {
                    map.insert(KEYS[*k].into(), Value::String(s.clone()));
                }
                Op::OrInsert(k, v) => {
                    map.entry(KEYS[*k]).or_insert_with(|| v.clone());
                }
                Op::Object(k, inner) => {
                    let slot = map.entry(KEYS[*k]).or_insert(Value::Null);
                    let mut object = match std::mem::take(slot) {
                        Value::Object(object) => object,
                        _ => Map::new(),
                    };
                    on_map(&mut object, inner);
                    *slot = Value::Object(object);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn an_overlay_reads_writes_and_copies_as_the_changed_copy_of_its_base(base in value(), ops in ops(2)) {
            let base = base.as_object().cloned();
            let mut overlay = Overlay::new(base.as_ref());
            on_overlay(&mut overlay, &ops);
            let mut copy = base.clone().unwrap_or_default();
            on_map(&mut copy, &ops);

            let expected = serde_json::to_string(&copy).unwrap();
            prop_assert_eq!(serde_json::to_string(&overlay).unwrap(), expected.clone());
            prop_assert_eq!(serde_json::to_string(&overlay.to_map()).unwrap(), expected);
            for key in KEYS {
                prop_assert_eq!(overlay.get_str(key), copy.get(key).and_then(Value::as_str));
                prop_assert_eq!(overlay.truthy(key), copy.get(key).is_some_and(truthy));
                if let Some(object) = overlay.get_object(key) {
                    prop_assert_eq!(Some(object), copy.get(key).and_then(Value::as_object));
                }
            }
        }
    }

    #[test]
    fn a_list_of_strings_is_a_json_array() {
        let items = ["one", "two"];
        let mut overlay = Overlay::new(None);
        overlay.insert("items", Part::Strs(&items));
        assert_eq!(serde_json::to_string(&overlay).unwrap(), r#"{"items":["one","two"]}"#);
        assert_eq!(serde_json::to_string(&overlay.to_map()).unwrap(), r#"{"items":["one","two"]}"#);
        assert!(overlay.truthy("items") && overlay.get_str("items").is_none());
    }
}
