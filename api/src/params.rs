//! Query parameters and JSON object bodies, read so that every bad one is named in a problem:
//! query parameters from the raw query string (axum's typed `Query` answers a plain-text sentence
//! that names none, and a map keeps the last of two values without a word), bodies member by
//! member (serde's messages for a typed body name the first bad field at best).

use std::collections::HashMap;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use voxpop_schema::FieldError;

use crate::problem::Problem;

/// The query string as name -> value, refusing a repeated name (which of the values was meant is
/// not ours to guess).
pub fn query_params(raw: Option<&str>) -> Result<HashMap<String, String>, Problem> {
    let mut params = HashMap::new();
    let mut errors: Vec<FieldError> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if params.insert(name.clone().into_owned(), value.into_owned()).is_some()
            && !errors.iter().any(|e| e.field == name)
        {
            errors.push(FieldError::new(&name, "duplicate_parameter", format!("`{name}` is given more than once")));
        }
    }
    if errors.is_empty() { Ok(params) } else { Err(Problem::invalid(&errors).with_status(StatusCode::BAD_REQUEST)) }
}

/// [`query_params`] of which every name is one of `known`: the 400 otherwise names every repeated
/// or unknown parameter.
pub fn known_params(raw: Option<&str>, known: &[&str]) -> Result<HashMap<String, String>, Problem> {
    let params = query_params(raw)?;
    let unknown = unknown_parameters(&params, known);
    if unknown.is_empty() { Ok(params) } else { Err(Problem::invalid(&unknown).with_status(StatusCode::BAD_REQUEST)) }
}

/// One error per parameter of `params` that is not one of `known`.
pub fn unknown_parameters(params: &HashMap<String, String>, known: &[&str]) -> Vec<FieldError> {
    let mut unknown: Vec<&String> = params.keys().filter(|name| !known.contains(&name.as_str())).collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| {
            FieldError::new(
                name,
                "unknown_parameter",
                format!("unknown parameter `{name}`, expected one of {}", known.join(", ")),
            )
        })
        .collect()
}

/// A true/false query parameter (`true`/`1`, `false`/`0`); absent is false. Anything else is a
/// 400 naming it rather than a silent false.
pub fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, Problem> {
    match params.get(name).map(|value| value.trim()) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(Problem::bad_parameter(name, format!("`{name}` must be true or false (1 or 0)"))),
    }
}

/// The field errors of a problem, to gather with others.
pub fn problem_errors(problem: &Problem) -> Vec<FieldError> {
    problem.errors.iter().map(|e| FieldError::new(&e.field, &e.code, e.message.clone())).collect()
}

/// The members of a JSON object body. A body that is not JSON, or not an object, is refused as
/// a whole (the field is empty, so the problem is a 400); each key outside `known` is named as
/// an unknown field, as the petitions intake answers, and each key given twice as repeated.
pub fn body_members(bytes: &[u8], known: &[&str]) -> Result<(Map<String, Value>, Vec<FieldError>), Vec<FieldError>> {
    let object: TopObject = serde_json::from_slice(bytes).map_err(|err| {
        vec![FieldError::new(
            "",
            "malformed_json",
            format!("malformed JSON at line {} column {}: {err}", err.line(), err.column()),
        )]
    })?;
    let TopObject::Object { members, repeated } = object else {
        return Err(vec![FieldError::new("", "type", "expected a JSON object")]);
    };
    let mut errors: Vec<FieldError> = members
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| {
            FieldError::new(
                key,
                "unknown_field",
                format!("unknown field `{key}`, expected one of {}", known.join(", ")),
            )
        })
        .collect();
    // Which of two values was meant is not ours to guess (serde keeps the last without a word).
    errors.extend(repeated.into_iter().map(|key| {
        let message = format!("`{key}` is given more than once");
        FieldError::new(&key, "duplicate_field", message)
    }));
    Ok((members, errors))
}

/// The 422 naming every member a JSON body gives more than once, at any depth
/// ([`voxpop_schema::text::repeated_members`]), for routes that read their bodies as a
/// `serde_json::Value`, which would keep the last value without a word.
pub fn repeated_members_problem(body: &[u8]) -> Option<Problem> {
    let repeated = voxpop_schema::text::repeated_members(body);
    (!repeated.is_empty()).then(|| {
        let errors: Vec<FieldError> = repeated
            .iter()
            .map(|member| FieldError::new(member, "duplicate_field", format!("`{member}` is given more than once")))
            .collect();
        Problem::invalid(&errors)
    })
}

/// A JSON body's top level: an object with the names given more than once, or another value.
enum TopObject {
    Object { members: Map<String, Value>, repeated: Vec<String> },
    Other,
}

impl<'de> serde::Deserialize<'de> for TopObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TopObject, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TopObject;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TopObject, A::Error> {
                let (mut members, mut repeated) = (Map::new(), std::collections::BTreeSet::new());
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if members.contains_key(&key) {
                        repeated.insert(key.clone());
                    }
                    members.insert(key, value);
                }
                Ok(TopObject::Object { members, repeated: repeated.into_iter().collect() })
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TopObject, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TopObject::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<TopObject, E> {
                Ok(TopObject::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<TopObject, E> {
                Ok(TopObject::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<TopObject, E> {
                Ok(TopObject::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<TopObject, E> {
                Ok(TopObject::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<TopObject, E> {
                Ok(TopObject::Other)
            }
            fn visit_unit<E>(self) -> Result<TopObject, E> {
                Ok(TopObject::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The member `name` as a `T` (absent or `null`: `None`), or an error naming `name` that says it
/// must be `expected`, with serde's reason.
pub fn member<T: DeserializeOwned>(
    members: &Map<String, Value>,
    name: &str,
    expected: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let value = members.get(name).filter(|value| !value.is_null())?;
    match T::deserialize(value) {
        Ok(value) => Some(value),
        Err(err) => {
            errors.push(FieldError::new(name, "type", format!("`{name}` must be {expected}: {err}")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(problem: &Problem) -> Vec<(&str, &str)> {
        problem.errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn repeated_and_unknown_parameters_are_named() {
        let repeated = query_params(Some("limit=101&limit=100&q=a")).unwrap_err();
        assert_eq!(fields(&repeated), [("limit", "duplicate_parameter")]);
        assert_eq!(repeated.status, 400);
        let unknown = known_params(Some("week=2025-W38&foo=1&bar=%FF"), &["week"]).unwrap_err();
        assert_eq!(fields(&unknown), [("bar", "unknown_parameter"), ("foo", "unknown_parameter")]);
        let params = known_params(Some("week=2025-W38&unit="), &["week", "unit"]).unwrap();
        assert_eq!((params["week"].as_str(), params["unit"].as_str()), ("2025-W38", ""));
    }

    #[test]
    fn body_members_name_unknown_and_repeated_members() {
        let body = br#"{"sql": "SELECT 1", "sql": "SELECT 2", "extra": [1, {"sql": 3}], "sql": "x"}"#;
        let (members, errors) = body_members(body, &["sql"]).unwrap();
        assert_eq!(members["sql"], "x");
        let named: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(named, [("extra", "unknown_field"), ("sql", "duplicate_field")]);
        for not_an_object in [&b"[1, 2]"[..], b"\"sql\"", b"3", b"null", b"true"] {
            let errors = body_members(not_an_object, &["sql"]).unwrap_err();
            assert_eq!(errors[0].code, "type", "{}", String::from_utf8_lossy(not_an_object));
        }
        assert_eq!(body_members(b"{\"sql\":", &["sql"]).unwrap_err()[0].code, "malformed_json");
    }

    #[test]
    fn flags_are_true_or_false_and_nothing_else() {
        let params = query_params(Some("include_removed=maybe&partial=0&on=1")).unwrap();
        assert_eq!(fields(&flag(&params, "include_removed").unwrap_err()), [("include_removed", "invalid")]);
        assert_eq!((flag(&params, "partial").unwrap(), flag(&params, "absent").unwrap()), (false, false));
        assert!(flag(&params, "on").unwrap());
    }
}
