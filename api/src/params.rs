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
    let value: Value = serde_json::from_slice(bytes).map_err(|err| {
        vec![FieldError::new(
            "",
            "malformed_json",
            format!("malformed JSON at line {} column {}: {err}", err.line(), err.column()),
        )]
    })?;
    let Value::Object(members) = value else {
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
    errors.extend(repeated_member_errors(bytes));
    Ok((members, errors))
}

/// The 422 naming every member a JSON body gives more than once, at any depth, for routes that
/// read their bodies as a `serde_json::Value`, which would keep the last value without a word.
pub fn repeated_members_problem(body: &[u8]) -> Option<Problem> {
    let errors = repeated_member_errors(body);
    (!errors.is_empty()).then(|| Problem::invalid(&errors))
}

/// A `duplicate_field` error for each member given more than once ([`repeated_members`]).
fn repeated_member_errors(body: &[u8]) -> Vec<FieldError> {
    repeated_members(body)
        .iter()
        .map(|member| FieldError::new(member, "duplicate_field", format!("`{member}` is given more than once")))
        .collect()
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

/// The members given more than once in a JSON document, at any depth, as paths (`unit`,
/// `values.meetings_held`, `[0].full_name`), in document order, each once. Which of two values
/// was meant is not a reader's to guess (`serde_json` keeps the last without a word), so routes
/// that read JSON through `serde_json::Value` refuse these first. Empty for a document that is not
/// JSON: its parser says why.
pub fn repeated_members(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walk = Walk { path: String::new(), found: &mut found };
    if serde::de::DeserializeSeed::deserialize(walk, &mut deserializer).is_err() {
        return Vec::new();
    }
    found
}

/// A walk over a JSON value collecting the paths of repeated members.
struct Walk<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Walk { path, found } = self;
        let mut index = 0usize;
        while seq.next_element_seed(Walk { path: format!("{path}[{index}]"), found: &mut *found })?.is_some() {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Walk { path, found } = self;
        let (mut seen, mut reported) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        while let Some(key) = map.next_key::<String>()? {
            let member = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if !seen.insert(key.clone()) && reported.insert(key) {
                found.push(member.clone());
            }
            map.next_value_seed(Walk { path: member, found: &mut *found })?;
        }
        Ok(())
    }
}

/// A day written as the API's dates are, `YYYY-MM-DD` and nothing else: chrono's `%Y-%m-%d`
/// also takes `2025-2-3`, `+2025-02-03` and years of any length, which a caller did not mean.
pub fn iso_date(raw: &str) -> Option<chrono::NaiveDate> {
    let bytes = raw.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if !shaped {
        return None;
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_written_one_way() {
        assert_eq!(super::iso_date("2025-02-03"), chrono::NaiveDate::from_ymd_opt(2025, 2, 3));
        for raw in ["2025-2-3", "+2025-02-03", "02025-02-03", "2025-02-30", " 2025-02-03", "2025/02/03"] {
            assert_eq!(super::iso_date(raw), None, "{raw}");
        }
    }

    #[test]
    fn repeated_members_are_found_at_any_depth() {
        let text = br#"{"unit": "00004", "unit": "00004", "values": {"a": 1, "b": 2, "a": 3},
            "rows": [{"name": "A", "name": "B"}, {"name": "C"}], "unit": "x"}"#;
        assert_eq!(repeated_members(text), ["unit", "values.a", "rows[0].name"]);
        assert!(repeated_members(br#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_empty());
        assert!(repeated_members(b"{not json").is_empty());
    }

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
