//! One value of a spreadsheet, a CSV file or a JSON object, as the intake of weekly reports and
//! registers reads it, and the helpers their row/column problems are written with.

use std::borrow::Cow;

use chrono::NaiveDate;
use serde_json::Value as Json;

/// One cell as intake sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Empty,
    Number(f64),
    Bool(bool),
    Text(Cow<'a, str>),
    Date(NaiveDate),
    /// A formula error such as `#DIV/0!`, or a JSON value of no usable type.
    Error(String),
}

impl<'a> Cell<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Cell::Empty)
    }

    /// Blank text is an empty cell.
    pub(crate) fn from_text(text: &'a str) -> Cell<'a> {
        if text.trim().is_empty() { Cell::Empty } else { Cell::Text(Cow::Borrowed(text)) }
    }

    pub(crate) fn from_json(value: &'a Json) -> Cell<'a> {
        match value {
            Json::Null => Cell::Empty,
            Json::Bool(flag) => Cell::Bool(*flag),
            Json::Number(number) => number.as_f64().map_or(Cell::Error("NaN".to_owned()), Cell::Number),
            Json::String(text) => Cell::from_text(text),
            Json::Array(_) | Json::Object(_) => Cell::Error("mảng/đối tượng JSON".to_owned()),
        }
    }

    pub(crate) fn from_xlsx(data: &'a calamine::Data) -> Cell<'a> {
        use calamine::Data;
        match data {
            Data::Empty => Cell::Empty,
            Data::Int(number) => Cell::Number(*number as f64),
            Data::Float(number) => Cell::Number(*number),
            Data::Bool(flag) => Cell::Bool(*flag),
            Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => Cell::from_text(text),
            Data::DateTime(at) if at.is_datetime() => {
                let (year, month, day, ..) = at.to_ymd_hms_milli();
                match NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day)) {
                    Some(date) => Cell::Date(date),
                    None => Cell::Number(at.as_f64()),
                }
            }
            Data::DateTime(at) => Cell::Number(at.as_f64()),
            Data::Error(error) => Cell::Error(error.to_string()),
        }
    }

    /// The same cell, owning its text.
    pub(crate) fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Empty => Cell::Empty,
            Cell::Number(number) => Cell::Number(number),
            Cell::Bool(flag) => Cell::Bool(flag),
            Cell::Text(text) => Cell::Text(Cow::Owned(text.into_owned())),
            Cell::Date(date) => Cell::Date(date),
            Cell::Error(error) => Cell::Error(error),
        }
    }

    /// The cell in a problem message, in Vietnamese.
    pub(crate) fn describe(&self) -> String {
        match self {
            Cell::Empty => "ô trống".to_owned(),
            Cell::Number(number) => format!("`{number}`"),
            Cell::Bool(true) => "`TRUE`".to_owned(),
            Cell::Bool(false) => "`FALSE`".to_owned(),
            Cell::Text(text) => format!("`{}`", shorten(text.trim())),
            Cell::Date(date) => format!("ngày `{}`", date.format("%d/%m/%Y")),
            Cell::Error(error) if error.starts_with('#') => format!("lỗi công thức `{error}`"),
            Cell::Error(error) => format!("giá trị không dùng được ({error})"),
        }
    }

    /// The text of the cell; whole numbers as digits (Excel turns typed ids into numbers).
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Cell::Text(text) => Some(text.trim().to_owned()),
            Cell::Number(number) if number.fract() == 0.0 && number.abs() < 1e15 => Some(format!("{number:.0}")),
            _ => None,
        }
    }
}

/// At most 40 characters of a text, for messages.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
    }
}

/// `0` -> `A`, `25` -> `Z`, `26` -> `AA`.
pub(crate) fn column_letter(index: usize) -> String {
    let mut letters = Vec::new();
    let mut rest = index + 1;
    while rest > 0 {
        let remainder = (rest - 1) % 26;
        letters.push(b'A' + remainder as u8);
        rest = (rest - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}
