//! A JSON document as validation reads it: every value with its type, strings borrowed from the
//! request wherever they hold no escape, and objects as their fields in document order.
//!
//! Intake validates a submission from a [`serde_json::Value`] (imports, the demo generator) or
//! straight from request bytes. Both become a [`Json`] first, so the validation is written once.
//! From bytes this skips what a `Value` costs: a map node per object, a `String` per key and per
//! value (the body among them, copied once more before normalisation).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One JSON value. Arrays are never read by validation, only recognised as the wrong type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool,
    Number(Number),
    String(Cow<'a, str>),
    Array,
    Object(Object<'a>),
}

/// The fields of a JSON object in document order. A repeated key keeps its last value, as
/// `serde_json::Value` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Object<'a> {
    fields: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a> Object<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.fields.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value)
    }

    /// Every key once, sorted (the order of a `serde_json::Value`'s map).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<&str> {
        self.keys_and_repeated().0
    }

    /// Every key once, sorted, and the keys given more than once (sorted, once each): which of
    /// two values was meant is not the reader's to guess.
    pub(crate) fn keys_and_repeated(&self) -> (Vec<&str>, Vec<&str>) {
        let mut keys: Vec<&str> = self.fields.iter().map(|(name, _)| name.as_ref()).collect();
        keys.sort_unstable();
        let mut repeated: Vec<&str> = keys.windows(2).filter(|pair| pair[0] == pair[1]).map(|pair| pair[0]).collect();
        repeated.dedup();
        keys.dedup();
        (keys, repeated)
    }
}

impl<'a> Json<'a> {
    /// Parses a document, borrowing from `text`.
    pub(crate) fn parse(text: &'a str) -> serde_json::Result<Json<'a>> {
        serde_json::from_str(text)
    }

    /// A view of `value` that borrows its strings.
    pub(crate) fn of(value: &'a Value) -> Json<'a> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(_) => Json::Bool,
            Value::Number(number) => Json::Number(number.clone()),
            Value::String(text) => Json::String(Cow::Borrowed(text)),
            Value::Array(_) => Json::Array,
            Value::Object(map) => Json::Object(Object {
                fields: map.iter().map(|(key, value)| (Cow::Borrowed(key.as_str()), Json::of(value))).collect(),
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool)
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        // JSON has no NaN or infinity; serde_json reads out-of-range numbers as errors.
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(12));
        while let Some(Key(key)) = map.next_key()? {
            fields.push((key, map.next_value()?));
        }
        Ok(Json::Object(Object { fields }))
    }
}

/// An object's key, borrowed when it holds no escape (`Cow<str>`'s own impl always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(value)))
            }

            fn visit_str<E>(self, value: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(value.to_owned())))
            }

            fn visit_string<E>(self, value: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            // Quotes, backslashes and control characters force escapes (owned strings).
            "[a-zđăâêôơưạ-ỹ\"\\\\\n\t ]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-cđ\"]{1,3}", inner), 0..5)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// The same document for validation: the same values under the same keys, whatever the
    /// order of the fields and their repetitions.
    fn reads_the_same(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::Object(a), Json::Object(b)) => {
                a.keys() == b.keys()
                    && a.keys().iter().all(|key| reads_the_same(a.get(key).unwrap(), b.get(key).unwrap()))
            }
            _ => a == b,
        }
    }

    proptest! {
        /// Parsed from bytes, a document reads as the view of its `serde_json::Value`, repeated
        /// keys included (the last one wins in both).
        #[test]
        fn bytes_read_as_the_value_does(value in json_value(), repeat in any::<bool>()) {
            let mut text = serde_json::to_string(&value).unwrap();
            if repeat && let Some(rest) = text.strip_prefix('{') && rest != "}" {
                text = format!("{{\"a\":0,{rest}");
            }
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert!(reads_the_same(&Json::parse(&text).unwrap(), &Json::of(&parsed)), "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"body": "Đường hỏng", "title": "a\"b"}"#;
        let Json::Object(object) = Json::parse(text).unwrap() else { panic!("an object") };
        assert!(matches!(object.get("body"), Some(Json::String(Cow::Borrowed("Đường hỏng")))));
        assert!(matches!(object.get("title"), Some(Json::String(Cow::Owned(t))) if t == "a\"b"));
        assert_eq!(object.keys(), ["body", "title"]);
    }

    #[test]
    fn repeated_keys_are_told_apart() {
        let text = r#"{"title": "a", "body": "b", "title": "c", "x": 1, "title": "d", "x": 2}"#;
        let Json::Object(object) = Json::parse(text).unwrap() else { panic!("an object") };
        assert_eq!(object.keys_and_repeated(), (vec!["body", "title", "x"], vec!["title", "x"]));
    }
}
