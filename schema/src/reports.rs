//! Weekly reports (báo cáo tuần): the indicators every unit of the Front reports each week, the
//! reported values, and their intake from the API (JSON) and from the spreadsheets offices keep
//! (XLSX, CSV).
//!
//! # The indicator catalogue
//!
//! What is reported is configuration, not code: the default [`Catalogue`] ships as
//! `schema/data/indicators.toml` and is compiled in ([`Catalogue::default_embedded`]); a
//! deployment may load its own ([`Catalogue::from_toml_str`]). Each [`Indicator`] has a stable
//! code, labels, a unit, a [`ValueType`], the [`Rollup`] rule that combines the values of the
//! units below, and the [`Level`]s whose units report it themselves.
//!
//! # Units
//!
//! A report comes from one unit of the four-level tree ([`UnitRef`]): the central committee
//! (`00`), a province (its 2-digit code), a commune in force (its 5-digit code) or a village or
//! residential group (thôn, tổ dân phố). Villages have no national code list, so voxpop gives them
//! the code of their commune, a dash and a 3-digit number: `00004-012` is village 12 of commune
//! `00004`. The number is assigned when the commune registers its village list on the platform.
//!
//! # Values and supersession
//!
//! One [`ReportValue`] is one indicator of one unit for one ISO week. Values are never updated in
//! place: a correction is a new row, and for a given (unit, week, indicator) the row with the
//! latest `submitted_at` is the current one ([`latest_values`]), so the lake keeps the history.
//!
//! # Intake
//!
//! [`Intake`] validates submissions against the reference units, the catalogue, the sender's
//! scope and the clock, and reports every problem at once as [`ReportError`]s that name the field
//! and, for spreadsheets, the row and column of the cell. Spreadsheets use the "long" layout
//! offices keep: one row per unit and week, columns `unit_code`, `week` and one column per
//! indicator (headed by its code or its Vietnamese name). Messages are in Vietnamese: they are
//! read by the staff who filled in the sheet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SubsecRound, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use crate::cells::MAX_SHEET_COLUMNS;
use crate::cells::{Cell, column_letter, shorten};
use crate::error::{FieldError, SchemaError};
use crate::text::{self, fold};
use crate::units::Units;

const DEFAULT_TOML: &str = include_str!("../data/indicators.toml");

/// The layout version of the indicator catalogue file this code reads.
pub const CATALOGUE_VERSION: u32 = 1;
/// Name of the Delta table under the lake directory.
pub const TABLE_NAME: &str = "weekly_reports";
/// The partition column: the ISO week the values report on, e.g. `2025-W38`.
pub const PARTITION_COLUMN: &str = "week";
/// The unit code of the central committee.
pub const CENTRAL_CODE: &str = "00";
/// Longest accepted text value, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// Largest accepted number: anything above is a typing error, not a week's work.
pub const MAX_NUMBER: f64 = 1e12;
/// Most data rows read from one spreadsheet (a province's sheet of all its villages is ~10,000).
pub const MAX_SHEET_ROWS: usize = 200_000;
/// Name of the guide sheet of the templates; skipped when reading a workbook back.
pub const GUIDE_SHEET: &str = "Hướng dẫn";
/// Name of the data sheet of the templates.
pub const DATA_SHEET: &str = "Báo cáo";

/// Vietnam's time zone (UTC+7, no daylight saving): weeks start on Monday 00:00 there.
fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("a valid offset")
}

// ---------------------------------------------------------------------------------------------
// Levels, value types, rollups

/// A level of the Front's organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The Central Committee (Ủy ban Trung ương), code `00`.
    Central,
    /// A province or centrally-run city, 2-digit code.
    Province,
    /// A commune, ward or special zone in force since 2025-07-01, 5-digit code.
    Commune,
    /// A village or residential group (thôn, tổ dân phố), code `ccccc-nnn`.
    Village,
}

impl Level {
    /// From the top down.
    pub const ALL: [Level; 4] = [Level::Central, Level::Province, Level::Commune, Level::Village];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Central => "central",
            Level::Province => "province",
            Level::Commune => "commune",
            Level::Village => "village",
        }
    }

    pub fn parse(value: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.as_str() == value)
    }

    /// 0 for central down to 3 for villages.
    pub fn depth(self) -> usize {
        self as usize
    }

    /// The level of this level's children, `None` for villages.
    pub fn below(self) -> Option<Level> {
        Level::ALL.get(self.depth() + 1).copied()
    }

    /// The level of this level's parent, `None` for the central committee.
    pub fn above(self) -> Option<Level> {
        self.depth().checked_sub(1).map(|depth| Level::ALL[depth])
    }

    /// What staff call the units of this level, e.g. `xã, phường, đặc khu`.
    pub fn label_vi(self) -> &'static str {
        match self {
            Level::Central => "Trung ương",
            Level::Province => "tỉnh, thành phố",
            Level::Commune => "xã, phường, đặc khu",
            Level::Village => "thôn, tổ dân phố",
        }
    }

    /// The level a unit code is written for, from its shape alone (no look-up): `00`, two
    /// digits, five digits, or five digits, `-` and three digits.
    pub fn of_code(code: &str) -> Option<Level> {
        if !code.is_ascii() {
            return None;
        }
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match code.len() {
            2 if code == CENTRAL_CODE => Some(Level::Central),
            2 if digits(code) => Some(Level::Province),
            5 if digits(code) => Some(Level::Commune),
            9 if digits(&code[..5]) && code.as_bytes()[5] == b'-' && digits(&code[6..]) => Some(Level::Village),
            _ => None,
        }
    }
}

/// What kind of value an indicator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// A whole number of things, 0 or more.
    Count,
    /// A quantity, 0 or more, fractions allowed (money in million đồng).
    Amount,
    /// Yes or no.
    YesNo,
    /// A percentage, 0 to 100.
    Percentage,
    /// Free text.
    Text,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Count => "count",
            ValueType::Amount => "amount",
            ValueType::YesNo => "yes_no",
            ValueType::Percentage => "percentage",
            ValueType::Text => "text",
        }
    }

    /// How the guide sheet names the type.
    pub fn label_vi(self) -> &'static str {
        match self {
            ValueType::Count => "số nguyên không âm",
            ValueType::Amount => "số không âm",
            ValueType::YesNo => "có/không",
            ValueType::Percentage => "tỷ lệ từ 0 đến 100",
            ValueType::Text => "văn bản",
        }
    }
}

/// How the values of the units below combine into their parent's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rollup {
    /// The total; for yes/no, the number of units that said yes.
    Sum,
    /// The unweighted mean of the children's values.
    Mean,
    Min,
    Max,
    /// The most recently submitted value.
    Latest,
    /// Yes when any unit said yes.
    Any,
    /// Yes when every reporting unit said yes.
    All,
}

impl Rollup {
    pub fn as_str(self) -> &'static str {
        match self {
            Rollup::Sum => "sum",
            Rollup::Mean => "mean",
            Rollup::Min => "min",
            Rollup::Max => "max",
            Rollup::Latest => "latest",
            Rollup::Any => "any",
            Rollup::All => "all",
        }
    }

    /// How the guide sheet names the rule.
    pub fn label_vi(self, value_type: ValueType) -> &'static str {
        match (self, value_type) {
            (Rollup::Sum, ValueType::YesNo) => "đếm số đơn vị trả lời có",
            (Rollup::Sum, _) => "cộng dồn",
            (Rollup::Mean, _) => "trung bình các đơn vị",
            (Rollup::Min, _) => "giá trị nhỏ nhất",
            (Rollup::Max, _) => "giá trị lớn nhất",
            (Rollup::Latest, _) => "giá trị gửi gần nhất",
            (Rollup::Any, _) => "có nếu ít nhất một đơn vị có",
            (Rollup::All, _) => "có nếu mọi đơn vị đều có",
        }
    }

    /// Whether the rule means something for values of `value_type`: numbers take the arithmetic
    /// rules (a sum of percentages does not), yes/no takes `any`, `all` and `sum` (a count of
    /// yes), text only `latest`.
    pub fn fits(self, value_type: ValueType) -> bool {
        match value_type {
            ValueType::Count | ValueType::Amount => {
                matches!(self, Rollup::Sum | Rollup::Mean | Rollup::Min | Rollup::Max | Rollup::Latest)
            }
            ValueType::Percentage => matches!(self, Rollup::Mean | Rollup::Min | Rollup::Max | Rollup::Latest),
            ValueType::YesNo => matches!(self, Rollup::Any | Rollup::All | Rollup::Sum),
            ValueType::Text => self == Rollup::Latest,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The catalogue

/// One indicator of the weekly report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicator {
    /// Stable identifier and spreadsheet header (`meetings_held`): stored with every value,
    /// never renamed.
    pub code: String,
    /// Vietnamese label; also accepted as a spreadsheet header.
    pub vi: String,
    /// English label.
    pub en: String,
    /// What the values count or measure, e.g. `cuộc`, `triệu đồng`.
    pub unit: String,
    pub value_type: ValueType,
    pub rollup: Rollup,
    /// The levels whose units report this indicator themselves, top down.
    pub levels: Vec<Level>,
}

impl Indicator {
    /// Whether units of `level` report this indicator themselves.
    pub fn reported_at(&self, level: Level) -> bool {
        self.levels.contains(&level)
    }

    /// Whether a unit of `level` has a value for this indicator, reported or rolled up.
    pub fn relevant_at(&self, level: Level) -> bool {
        self.levels.iter().any(|reported| *reported >= level)
    }
}

/// Problems with an indicator catalogue or with writing a report workbook.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("invalid indicator catalogue: {0}")]
    Invalid(String),
    #[error("unit `{code}`: {source}")]
    Unit {
        code: String,
        #[source]
        source: UnitRefError,
    },
    #[error("could not write the workbook: {0}")]
    Workbook(#[from] rust_xlsxwriter::XlsxError),
}

/// The indicators of a deployment, in display order.
#[derive(Debug, Clone)]
pub struct Catalogue {
    version: u32,
    indicators: Vec<Indicator>,
    by_code: HashMap<String, usize>,
    /// [`header_key`] of each code and Vietnamese label.
    by_header: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    version: u32,
    #[serde(default)]
    indicator: Vec<IndicatorEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorEntry {
    code: String,
    vi: String,
    en: String,
    unit: String,
    value_type: ValueType,
    rollup: Rollup,
    levels: Vec<Level>,
}

/// Spreadsheet headers of the columns that are not indicators, as [`header_key`]s.
const UNIT_HEADERS: [&str; 3] = ["unit_code", "ma don vi", "ma_don_vi"];
const WEEK_HEADERS: [&str; 2] = ["week", "tuan"];
const NAME_HEADERS: [&str; 3] = ["unit_name", "ten don vi", "ten_don_vi"];

/// A header as compared: without diacritics, lower case, single spaces.
fn header_key(header: &str) -> String {
    let folded = fold(header).to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_reserved_header(key: &str) -> bool {
    UNIT_HEADERS.contains(&key) || WEEK_HEADERS.contains(&key) || NAME_HEADERS.contains(&key)
}

impl Catalogue {
    /// The catalogue shipped with voxpop (`schema/data/indicators.toml`).
    pub fn default_embedded() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| Catalogue::from_toml_str(DEFAULT_TOML).expect("the shipped indicators.toml is valid"))
    }

    /// Parses and checks a catalogue: an unsupported version, unknown keys, malformed or
    /// duplicate codes, labels that collide as spreadsheet headers, a rollup that does not fit
    /// the value type and an indicator no level reports are errors.
    pub fn from_toml_str(source: &str) -> Result<Catalogue, CatalogueError> {
        let invalid = CatalogueError::Invalid;
        let file: CatalogueFile = toml::from_str(source).map_err(|err| invalid(err.to_string()))?;
        if file.version != CATALOGUE_VERSION {
            return Err(invalid(format!(
                "unsupported catalogue version {}, this build reads version {CATALOGUE_VERSION}",
                file.version
            )));
        }
        if file.indicator.is_empty() {
            return Err(invalid("no `[[indicator]]` defined".to_owned()));
        }
        let mut indicators = Vec::with_capacity(file.indicator.len());
        let mut by_code = HashMap::new();
        let mut by_header = HashMap::new();
        for entry in file.indicator {
            let code = entry.code;
            let well_formed = !code.is_empty()
                && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && code.as_bytes()[0].is_ascii_lowercase();
            if !well_formed {
                return Err(invalid(format!(
                    "indicator code `{code}` must be lowercase ascii letters, digits and `_`, starting with a letter"
                )));
            }
            if is_reserved_header(&code) {
                return Err(invalid(format!("indicator code `{code}` is reserved for a spreadsheet column")));
            }
            if by_code.contains_key(&code) {
                return Err(invalid(format!("duplicate indicator code `{code}`")));
            }
            for (name, label) in [("vi", &entry.vi), ("en", &entry.en), ("unit", &entry.unit)] {
                if label.trim().is_empty() {
                    return Err(invalid(format!("indicator `{code}` needs a non-empty `{name}`")));
                }
            }
            if !entry.rollup.fits(entry.value_type) {
                return Err(invalid(format!(
                    "indicator `{code}`: rollup `{}` does not fit value type `{}`",
                    entry.rollup.as_str(),
                    entry.value_type.as_str()
                )));
            }
            if entry.levels.is_empty() {
                return Err(invalid(format!("indicator `{code}` is reported at no level")));
            }
            let mut levels = entry.levels;
            levels.sort();
            let listed = levels.len();
            levels.dedup();
            if levels.len() != listed {
                return Err(invalid(format!("indicator `{code}` lists a level twice")));
            }
            let position = indicators.len();
            for header in [code.clone(), header_key(&entry.vi)] {
                if is_reserved_header(&header) {
                    return Err(invalid(format!("indicator `{code}`: label `{header}` is reserved for a column")));
                }
                if let Some(&other) = by_header.get(&header)
                    && other != position
                {
                    let other: &Indicator = &indicators[other];
                    return Err(invalid(format!(
                        "indicators `{}` and `{code}` have the same spreadsheet header `{header}`",
                        other.code
                    )));
                }
                by_header.insert(header, position);
            }
            by_code.insert(code.clone(), position);
            indicators.push(Indicator {
                code,
                vi: text::nfc(entry.vi.trim()),
                en: entry.en.trim().to_owned(),
                unit: text::nfc(entry.unit.trim()),
                value_type: entry.value_type,
                rollup: entry.rollup,
                levels,
            });
        }
        Ok(Catalogue { version: file.version, indicators, by_code, by_header })
    }

    /// The layout version the catalogue was written in.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    pub fn indicator(&self, code: &str) -> Option<&Indicator> {
        self.position(code).map(|i| &self.indicators[i])
    }

    /// The index of an indicator in [`Catalogue::indicators`].
    pub fn position(&self, code: &str) -> Option<usize> {
        self.by_code.get(code).copied()
    }

    /// The indicator a spreadsheet column header names: its code or its Vietnamese label,
    /// compared without case or diacritics; a trailing unit in parentheses
    /// (`Kinh phí hỗ trợ (triệu đồng)`) is ignored.
    pub fn find_header(&self, header: &str) -> Option<&Indicator> {
        let key = header_key(header);
        let found = self.by_header.get(&key).or_else(|| {
            let stripped = key.strip_suffix(')').and_then(|rest| rest.rsplit_once('(')).map(|(name, _)| name.trim());
            stripped.and_then(|name| self.by_header.get(name))
        });
        found.map(|&i| &self.indicators[i])
    }

    /// The indicators units of `level` report themselves, in catalogue order.
    pub fn reported_at(&self, level: Level) -> impl Iterator<Item = &Indicator> {
        self.indicators.iter().filter(move |indicator| indicator.reported_at(level))
    }
}

// ---------------------------------------------------------------------------------------------
// Units

/// Why a unit code does not name a unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitRefError {
    #[error("malformed unit code `{0}`: expected `00`, a 2-digit province, a 5-digit commune or a village `ccccc-nnn`")]
    Malformed(String),
    #[error("unknown province code `{0}`")]
    UnknownProvince(String),
    #[error("unknown commune code `{0}`")]
    UnknownCommune(String),
    /// A commune code of before the 2025-07-01 reform: a unit reports, and is asked about, by
    /// its code in force, which the message names (the default target where the old commune
    /// was split), rather than a report filed under a guess.
    #[error("`{old}` is a commune code from before 2025-07-01; the commune is now `{new}` ({name}): use that code")]
    Pre2025 { old: String, new: String, name: String },
    #[error("village number 000 in `{0}`: villages are numbered from 001")]
    VillageZero(String),
}

impl UnitRefError {
    /// The stable code of the problem for [`ReportError::code`].
    pub fn code(&self) -> &'static str {
        match self {
            UnitRefError::Malformed(_) | UnitRefError::VillageZero(_) => "malformed_unit",
            UnitRefError::UnknownProvince(_) | UnitRefError::UnknownCommune(_) => "unknown_unit",
            UnitRefError::Pre2025 { .. } => "pre2025_unit",
        }
    }

    /// The problem as the staff who typed the code read it.
    pub fn message_vi(&self) -> String {
        match self {
            UnitRefError::Malformed(code) => format!(
                "mã đơn vị `{code}` không đúng dạng: Trung ương là `00`, tỉnh 2 chữ số, xã 5 chữ số, \
                 thôn/tổ dân phố là mã xã, dấu gạch và 3 chữ số (ví dụ `00004-012`)"
            ),
            UnitRefError::UnknownProvince(code) => format!("không có tỉnh, thành phố mã `{code}`"),
            UnitRefError::UnknownCommune(code) => {
                format!("không có xã, phường, đặc khu mã `{code}` trong danh mục đơn vị hành chính từ 01/07/2025")
            }
            UnitRefError::Pre2025 { old, new, name } => {
                format!("mã `{old}` là mã xã trước ngày 01/07/2025; nay là {name}, mã `{new}`: hãy dùng mã này")
            }
            UnitRefError::VillageZero(code) => format!("mã thôn `{code}` không hợp lệ: số thứ tự thôn bắt đầu từ 001"),
        }
    }
}

/// A unit of the Front, checked against the reference lists. Provinces of communes and villages
/// are carried along, so that scope checks need no look-up.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitRef {
    Central,
    Province { province: String },
    Commune { province: String, commune: String },
    Village { province: String, commune: String, number: u16 },
}

impl UnitRef {
    /// Reads a unit code (see the module docs); the province or commune must exist in the 2025
    /// lists. Surrounding spaces are not accepted: callers trim what people typed.
    pub fn parse(code: &str, units: &Units) -> Result<UnitRef, UnitRefError> {
        let commune_of = |commune: &str| -> Result<String, UnitRefError> {
            if let Some(found) = units.commune(commune) {
                return Ok(found.province_code.clone());
            }
            match units.resolve_commune(commune, None) {
                Ok(resolved) => Err(UnitRefError::Pre2025 {
                    old: commune.to_owned(),
                    new: resolved.commune.code.clone(),
                    name: resolved.commune.name.clone(),
                }),
                Err(_) => Err(UnitRefError::UnknownCommune(commune.to_owned())),
            }
        };
        match Level::of_code(code) {
            None => Err(UnitRefError::Malformed(code.to_owned())),
            Some(Level::Central) => Ok(UnitRef::Central),
            Some(Level::Province) => match units.province(code) {
                Some(_) => Ok(UnitRef::Province { province: code.to_owned() }),
                None => Err(UnitRefError::UnknownProvince(code.to_owned())),
            },
            Some(Level::Commune) => Ok(UnitRef::Commune { province: commune_of(code)?, commune: code.to_owned() }),
            Some(Level::Village) => {
                let (commune, number) = (&code[..5], &code[6..]);
                let number: u16 = number.parse().map_err(|_| UnitRefError::Malformed(code.to_owned()))?;
                if number == 0 {
                    return Err(UnitRefError::VillageZero(code.to_owned()));
                }
                Ok(UnitRef::Village { province: commune_of(commune)?, commune: commune.to_owned(), number })
            }
        }
    }

    /// The code of village `number` (1..=999) of a commune, e.g. `00004-012`.
    pub fn village_code(commune_code: &str, number: u16) -> String {
        format!("{commune_code}-{number:03}")
    }

    pub fn level(&self) -> Level {
        match self {
            UnitRef::Central => Level::Central,
            UnitRef::Province { .. } => Level::Province,
            UnitRef::Commune { .. } => Level::Commune,
            UnitRef::Village { .. } => Level::Village,
        }
    }

    /// The unit code, as stored.
    pub fn code(&self) -> String {
        match self {
            UnitRef::Central => CENTRAL_CODE.to_owned(),
            UnitRef::Province { province } => province.clone(),
            UnitRef::Commune { commune, .. } => commune.clone(),
            UnitRef::Village { commune, number, .. } => UnitRef::village_code(commune, *number),
        }
    }

    pub fn province_code(&self) -> Option<&str> {
        match self {
            UnitRef::Central => None,
            UnitRef::Province { province } | UnitRef::Commune { province, .. } | UnitRef::Village { province, .. } => {
                Some(province)
            }
        }
    }

    pub fn commune_code(&self) -> Option<&str> {
        match self {
            UnitRef::Commune { commune, .. } | UnitRef::Village { commune, .. } => Some(commune),
            _ => None,
        }
    }

    /// The unit one level up; `None` for the central committee.
    pub fn parent(&self) -> Option<UnitRef> {
        match self {
            UnitRef::Central => None,
            UnitRef::Province { .. } => Some(UnitRef::Central),
            UnitRef::Commune { province, .. } => Some(UnitRef::Province { province: province.clone() }),
            UnitRef::Village { province, commune, .. } => {
                Some(UnitRef::Commune { province: province.clone(), commune: commune.clone() })
            }
        }
    }

    /// Whether `other` is this unit or below it: what a sender at this unit may report for.
    pub fn contains(&self, other: &UnitRef) -> bool {
        match self {
            UnitRef::Central => true,
            UnitRef::Province { province } => other.province_code() == Some(province.as_str()),
            UnitRef::Commune { commune, .. } => other.commune_code() == Some(commune.as_str()),
            UnitRef::Village { .. } => self == other,
        }
    }
}

/// A village or residential group as its commune registered it on the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Village {
    /// `ccccc-nnn`, see [`UnitRef`].
    pub code: String,
    /// e.g. `Thôn Đông`, `Tổ dân phố số 5`.
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// Values

/// A reported value. The JSON wire format is the bare JSON value: `3`, `true`, `"..."`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Value {
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// Whether the value is of the kind `value_type` stores (any number for numeric types:
    /// the ranges are checked at intake).
    pub fn fits(&self, value_type: ValueType) -> bool {
        match self {
            Value::Number(_) => matches!(value_type, ValueType::Count | ValueType::Amount | ValueType::Percentage),
            Value::Bool(_) => value_type == ValueType::YesNo,
            Value::Text(_) => value_type == ValueType::Text,
        }
    }
}

/// Where a reported value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The JSON API (the web form and the app use it too).
    Api,
    /// An uploaded XLSX workbook.
    Xlsx,
    /// An uploaded CSV file.
    Csv,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Api, Source::Xlsx, Source::Csv];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Xlsx => "xlsx",
            Source::Csv => "csv",
        }
    }

    pub fn parse(value: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|source| source.as_str() == value)
    }
}

/// One indicator of one unit for one week: a row of the `weekly_reports` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportValue {
    pub unit_code: String,
    pub level: Level,
    /// ISO week, e.g. `2025-W38`.
    pub week: String,
    /// Indicator code of the catalogue.
    pub indicator: String,
    pub value: Value,
    /// When the value was received; the latest one for a (unit, week, indicator) is current.
    pub submitted_at: DateTime<Utc>,
    /// The account that sent it, when known.
    #[serde(default)]
    pub submitted_by: Option<String>,
    pub source: Source,
}

/// The current values among `rows`: for each (week, unit, indicator) the row with the latest
/// `submitted_at` (on a tie, the later one in `rows`). Sorted by week, unit code and indicator.
pub fn latest_values(rows: impl IntoIterator<Item = ReportValue>) -> Vec<ReportValue> {
    let mut rows: Vec<ReportValue> = rows.into_iter().collect();
    // Stable: rows with the same key and time keep their order, so the later one wins below.
    rows.sort_by(|a, b| {
        (a.week.as_str(), a.unit_code.as_str(), a.indicator.as_str(), a.submitted_at).cmp(&(
            b.week.as_str(),
            b.unit_code.as_str(),
            b.indicator.as_str(),
            b.submitted_at,
        ))
    });
    let mut current: Vec<ReportValue> = Vec::with_capacity(rows.len());
    for row in rows {
        match current.last_mut() {
            Some(last)
                if last.week == row.week && last.unit_code == row.unit_code && last.indicator == row.indicator =>
            {
                *last = row;
            }
            _ => current.push(row),
        }
    }
    current
}

// ---------------------------------------------------------------------------------------------
// Arrow

/// The Arrow schema of the `weekly_reports` table. The value sits in the one column of its kind;
/// the other two are null.
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            Arc::new(Schema::new(vec![
                Field::new(PARTITION_COLUMN, DataType::Utf8, false),
                Field::new("unit_code", DataType::Utf8, false),
                Field::new("level", DataType::Utf8, false),
                Field::new("indicator", DataType::Utf8, false),
                Field::new("value_number", DataType::Float64, true),
                Field::new("value_bool", DataType::Boolean, true),
                Field::new("value_text", DataType::Utf8, true),
                Field::new("submitted_at", timestamp, false),
                Field::new("submitted_by", DataType::Utf8, true),
                Field::new("source", DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// Builds one Arrow batch in [`arrow_schema`] from report values.
pub fn to_record_batch<R: std::borrow::Borrow<ReportValue>>(rows: &[R]) -> Result<RecordBatch, SchemaError> {
    let rows: Vec<&ReportValue> = rows.iter().map(std::borrow::Borrow::borrow).collect();
    let n = rows.len();
    let strings = |f: &dyn Fn(&ReportValue) -> Option<&str>| -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(n, n * 12);
        for &row in &rows {
            builder.append_option(f(row));
        }
        Arc::new(builder.finish())
    };
    let mut numbers = Float64Builder::with_capacity(n);
    let mut flags = BooleanBuilder::with_capacity(n);
    for row in &rows {
        numbers.append_option(row.value.as_number());
        flags.append_option(row.value.as_bool());
    }
    let columns: Vec<ArrayRef> = vec![
        strings(&|r| Some(&r.week)),
        strings(&|r| Some(&r.unit_code)),
        strings(&|r| Some(r.level.as_str())),
        strings(&|r| Some(&r.indicator)),
        Arc::new(numbers.finish()),
        Arc::new(flags.finish()),
        strings(&|r| r.value.as_text()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.submitted_at.timestamp_micros()))
                .with_timezone("UTC"),
        ),
        strings(&|r| r.submitted_by.as_deref()),
        strings(&|r| Some(r.source.as_str())),
    ];
    Ok(RecordBatch::try_new(arrow_schema(), columns)?)
}

/// Reads report values back from a batch with (a superset of) the [`arrow_schema`] columns;
/// string columns may come as any Arrow string type.
pub fn from_record_batch(batch: &RecordBatch) -> Result<Vec<ReportValue>, SchemaError> {
    let column = |name: &str, data_type: &DataType| -> Result<ArrayRef, SchemaError> {
        let array = batch.column_by_name(name).ok_or_else(|| SchemaError::MissingColumn(name.to_owned()))?;
        Ok(arrow::compute::cast(array, data_type)?)
    };
    let utf8 = |name: &str| -> Result<StringArray, SchemaError> {
        Ok(column(name, &DataType::Utf8)?.as_any().downcast_ref::<StringArray>().expect("cast to Utf8").clone())
    };
    let timestamp_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let submitted_column = column("submitted_at", &timestamp_type)?;
    let submitted = submitted_column.as_any().downcast_ref::<TimestampMicrosecondArray>().expect("cast to timestamp");
    let number_column = column("value_number", &DataType::Float64)?;
    let numbers = number_column.as_any().downcast_ref::<Float64Array>().expect("cast to f64");
    let flag_column = column("value_bool", &DataType::Boolean)?;
    let flags = flag_column.as_any().downcast_ref::<BooleanArray>().expect("cast to bool");
    let (weeks, units, levels, indicators) =
        (utf8(PARTITION_COLUMN)?, utf8("unit_code")?, utf8("level")?, utf8("indicator")?);
    let (texts, senders, sources) = (utf8("value_text")?, utf8("submitted_by")?, utf8("source")?);
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let value = if !numbers.is_null(i) {
            Value::Number(numbers.value(i))
        } else if !flags.is_null(i) {
            Value::Bool(flags.value(i))
        } else if !texts.is_null(i) {
            Value::Text(texts.value(i).to_owned())
        } else {
            return Err(SchemaError::BadValue("report row without a value"));
        };
        let submitted_at =
            Utc.timestamp_micros(submitted.value(i)).single().ok_or(SchemaError::BadValue("timestamp out of range"))?;
        rows.push(ReportValue {
            unit_code: units.value(i).to_owned(),
            level: Level::parse(levels.value(i)).ok_or(SchemaError::BadValue("unknown level"))?,
            week: weeks.value(i).to_owned(),
            indicator: indicators.value(i).to_owned(),
            value,
            submitted_at,
            submitted_by: (!senders.is_null(i)).then(|| senders.value(i).to_owned()),
            source: Source::parse(sources.value(i)).ok_or(SchemaError::BadValue("unknown report source"))?,
        });
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Weeks

/// Reads an ISO week given as a parameter (`?week=2025-W38`): exactly `YYYY-Www`, a two-digit week
/// the year has, from 2000 on; `None` for anything else (`2025-W8`, `2025-w38`, ` 2025-W38`,
/// `+2025-W38`). The label returned is the text itself. A parameter is written by a program or
/// copied from a page, so a loose form is more likely a mistake than a way of writing; weeks typed
/// into a report are read leniently instead ([`Intake`] normalises `2025-w8`).
pub fn parse_week(text: &str) -> Option<String> {
    let (year, week) = parse_week_numbers(text)?;
    Some(week_label(year, week))
}

/// The year and week of [`parse_week`]'s strict form: the one parser of week parameters, so that
/// the weekly summary (`IsoWeek::parse` in voxpop-queries) and the reports agree on what a week is.
pub fn parse_week_numbers(text: &str) -> Option<(i32, u32)> {
    let &[y0, y1, y2, y3, b'-', b'W', w0, w1] = text.as_bytes() else { return None };
    let digits = [y0, y1, y2, y3, w0, w1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = |digits: &[u8]| digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let (year, week) = (value(&digits[..4]) as i32, value(&digits[4..]));
    if year < 2000 {
        return None;
    }
    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)?;
    Some((year, week))
}

/// A week as people type it into a report (`2025-W38`, `2025-w38`, `2025-W8`, spaces around).
fn week_numbers(text: &str) -> Option<(i32, u32)> {
    let trimmed = text.trim();
    let (year, week) = trimmed.split_once("-W").or_else(|| trimmed.split_once("-w"))?;
    if year.len() != 4 || !(1..=2).contains(&week.len()) || !week.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = year.parse().ok().filter(|y| (2000..=9999).contains(y))?;
    let week: u32 = week.parse().ok()?;
    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)?;
    Some((year, week))
}

fn week_label(year: i32, week: u32) -> String {
    format!("{year}-W{week:02}")
}

/// The ISO week a date falls in, e.g. `2025-W38`.
pub fn week_of_date(date: NaiveDate) -> String {
    let week = date.iso_week();
    week_label(week.year(), week.week())
}

/// The ISO week of a moment in Vietnam's time zone: the week a report sent then is for.
pub fn current_week(now: DateTime<Utc>) -> String {
    week_of_date(now.with_timezone(&vietnam()).date_naive())
}

// ---------------------------------------------------------------------------------------------
// Validation errors

/// One problem with a submitted report, as the sender sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportError {
    /// 1-based spreadsheet row (the header is row 1); `None` for JSON submissions.
    pub row: Option<usize>,
    /// Spreadsheet column letter (`D`); `None` for JSON submissions and whole-row problems.
    pub column: Option<String>,
    /// What is at fault: `unit_code`, `week`, an indicator code, `values.<code>` in JSON, or
    /// empty for the document as a whole.
    pub field: String,
    /// Stable machine-readable code, e.g. `unknown_unit`, `type`, `out_of_scope`.
    pub code: String,
    /// Explanation in Vietnamese, for the staff who filled in the report.
    pub message: String,
}

impl ReportError {
    fn new(field: &str, code: &str, message: impl Into<String>) -> ReportError {
        ReportError { row: None, column: None, field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }

    fn at(mut self, row: usize, column: Option<usize>) -> ReportError {
        self.row = Some(row);
        self.column = column.map(column_letter);
        self
    }

    /// The same problem in the shape of the other intake errors (the row and column go into the
    /// field path, `row 5, D: meetings_held`).
    pub fn to_field_error(&self) -> FieldError {
        let field = match (self.row, &self.column) {
            (Some(row), Some(column)) => format!("row {row}, {column}: {}", self.field),
            (Some(row), None) => format!("row {row}: {}", self.field),
            _ => self.field.clone(),
        };
        FieldError::new(&field, &self.code, self.message.clone())
    }
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.row, &self.column) {
            (Some(row), Some(column)) => write!(f, "dòng {row}, cột {column}: ")?,
            (Some(row), None) => write!(f, "dòng {row}: ")?,
            _ => {}
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

/// A unit code as typed, checked against the reference lists, the villages register (when
/// `villages` is given) and the sender's scope (`scope_name` says which, in the message): the
/// unit, or the error's code and message. Weekly reports and the registers check their units so.
pub(crate) fn unit_in_scope(
    units: &Units,
    villages: Option<&HashSet<String>>,
    code: &str,
    scope: &UnitRef,
    scope_name: &str,
) -> Result<UnitRef, (&'static str, String)> {
    let unit = UnitRef::parse(code.trim(), units).map_err(|err| (err.code(), err.message_vi()))?;
    if !scope.contains(&unit) {
        return Err((
            "out_of_scope",
            format!("đơn vị `{}` không thuộc {scope_name} của đơn vị gửi `{}`", unit.code(), scope.code()),
        ));
    }
    if unit.level() == Level::Village
        && let Some(known) = villages
        && !known.contains(&unit.code())
    {
        return Err((
            "unknown_village",
            format!(
                "thôn, tổ dân phố `{}` chưa có trong danh sách thôn, tổ dân phố của xã (tạo qua POST /api/v1/villages)",
                unit.code()
            ),
        ));
    }
    Ok(unit)
}

/// A problem with one value, before it is placed in a row and column.
struct Problem {
    code: &'static str,
    message: String,
}

fn problem(code: &'static str, message: impl Into<String>) -> Problem {
    Problem { code, message: message.into() }
}

// ---------------------------------------------------------------------------------------------
// Cells and values

/// A number as written in Vietnam or elsewhere. `Grouped` is the reading of a single `.` or `,`
/// followed by exactly three digits (`1.500`) as a thousands separator, which is how Vietnamese
/// writes 1500 and English writes 1.5.
enum Decimal {
    Exact(f64),
    Ambiguous { grouped: f64, decimal: f64 },
}

/// Why a text is not read as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotANumber {
    /// It is not written as a number at all (`nhiều`, `1.2.3,4.5`).
    Text,
    /// Digits with white space where no thousands separator stands (`1 2 3 4`, `3\n4`, `3\t4`):
    /// a cell edited in place or two values pasted into one. Joining the digits would store a
    /// number nobody typed, so the cell is refused, naming the white space.
    Spacing(char),
}

/// The white space that may separate groups of thousands: a space, the no-break space (U+00A0)
/// that spreadsheets in Vietnamese and French put between groups when they format a number, and
/// the narrow no-break space (U+202F) of the same formats elsewhere.
const GROUP_SPACES: [char; 3] = [' ', '\u{a0}', '\u{202f}'];

/// Reads `12`, `-3`, `12,5`, `12.5`, `1.234.567`, `1,234,567`, `1.234,5`, `1,234.5`, `1 234`,
/// `68,5%`, `68,5 %`.
///
/// White space around the number is ignored. Inside it, white space is only read as a
/// thousands separator: one space or no-break space (one of [`GROUP_SPACES`]) between a first
/// group of one to three digits and further groups of exactly three, before the decimal mark
/// (`1 234 567`, `1 234,5`); then the `.` or `,` that follows can only be the decimal mark. One
/// such space may also stand before `%`. Any other white space (two spaces, a tab, a line break,
/// a space in the fraction or after the sign, groups that are not of three) is
/// [`NotANumber::Spacing`].
fn parse_decimal(text: &str) -> Result<Decimal, NotANumber> {
    let trimmed = text.trim();
    let number = match trimmed.strip_suffix('%') {
        Some(number) => number.strip_suffix(GROUP_SPACES).unwrap_or(number),
        None => trimmed,
    };
    let (negative, unsigned) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let written_as_number = unsigned.chars().any(|ch| ch.is_ascii_digit())
        && unsigned.chars().all(|ch| ch.is_ascii_digit() || ch == '.' || ch == ',' || ch.is_whitespace());
    if !written_as_number {
        return Err(NotANumber::Text);
    }
    let joined = without_group_spaces(unsigned)?;
    let digits = joined.as_str();
    let sign = if negative { -1.0 } else { 1.0 };
    let dots = digits.matches('.').count();
    let commas = digits.matches(',').count();
    let plain = |integer: &str, fraction: &str| -> Result<f64, NotANumber> {
        if integer.is_empty() || !integer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotANumber::Text);
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotANumber::Text);
        }
        let joined = if fraction.is_empty() { integer.to_owned() } else { format!("{integer}.{fraction}") };
        joined.parse::<f64>().map(|value| sign * value).map_err(|_| NotANumber::Text)
    };
    // Groups of three after a first group of one to three digits.
    let ungroup = |grouped: &str, separator: char| -> Result<String, NotANumber> {
        let mut parts = grouped.split(separator);
        let first = parts.next().unwrap_or_default();
        if first.is_empty() || first.len() > 3 {
            return Err(NotANumber::Text);
        }
        let mut joined = first.to_owned();
        for part in parts {
            if part.len() != 3 {
                return Err(NotANumber::Text);
            }
            joined.push_str(part);
        }
        Ok(joined)
    };
    match (dots, commas) {
        (0, 0) => plain(digits, "").map(Decimal::Exact),
        (_, 0) | (0, _) => {
            let separator = if dots > 0 { '.' } else { ',' };
            let count = dots.max(commas);
            if count > 1 {
                return plain(&ungroup(digits, separator)?, "").map(Decimal::Exact);
            }
            let (integer, fraction) = digits.split_once(separator).ok_or(NotANumber::Text)?;
            let decimal = plain(integer, fraction)?;
            // After spaces grouped the thousands the integer part has four digits or more, so a
            // mark that follows is never read as a second kind of grouping.
            let could_group = fraction.len() == 3 && (1..=3).contains(&integer.len()) && !integer.starts_with('0');
            if could_group {
                let grouped = plain(&format!("{integer}{fraction}"), "")?;
                Ok(Decimal::Ambiguous { grouped, decimal })
            } else {
                Ok(Decimal::Exact(decimal))
            }
        }
        _ => {
            // Both separators: the last one is the decimal mark, the other groups thousands.
            let last_dot = digits.rfind('.').ok_or(NotANumber::Text)?;
            let last_comma = digits.rfind(',').ok_or(NotANumber::Text)?;
            let (decimal_mark, group_mark) = if last_dot > last_comma { ('.', ',') } else { (',', '.') };
            if digits.matches(decimal_mark).count() != 1 {
                return Err(NotANumber::Text);
            }
            let (integer, fraction) = digits.split_once(decimal_mark).ok_or(NotANumber::Text)?;
            plain(&ungroup(integer, group_mark)?, fraction).map(Decimal::Exact)
        }
    }
}

/// The digits of `unsigned` with the spaces that group its thousands taken out (see
/// [`parse_decimal`]); [`NotANumber::Spacing`] naming the first white space that groups nothing.
fn without_group_spaces(unsigned: &str) -> Result<String, NotANumber> {
    if !unsigned.contains(char::is_whitespace) {
        return Ok(unsigned.to_owned());
    }
    if let Some(odd) = unsigned.chars().find(|ch| ch.is_whitespace() && !GROUP_SPACES.contains(ch)) {
        return Err(NotANumber::Spacing(odd));
    }
    let integer_end = unsigned.find(['.', ',']).unwrap_or(unsigned.len());
    let (integer, rest) = unsigned.split_at(integer_end);
    if let Some(in_fraction) = rest.chars().find(|ch| ch.is_whitespace()) {
        return Err(NotANumber::Spacing(in_fraction));
    }
    let misplaced = integer.chars().find(|ch| ch.is_whitespace()).unwrap_or(' ');
    let mut groups = integer.split(GROUP_SPACES);
    let first = groups.next().unwrap_or_default();
    if first.is_empty() || first.len() > 3 {
        return Err(NotANumber::Spacing(misplaced));
    }
    let mut joined = first.to_owned();
    for group in groups {
        if group.len() != 3 {
            return Err(NotANumber::Spacing(misplaced));
        }
        joined.push_str(group);
    }
    joined.push_str(rest);
    Ok(joined)
}

/// How a sheet message names a white-space character.
fn white_space_vi(ch: char) -> String {
    match ch {
        ' ' => "dấu cách".to_owned(),
        '\u{a0}' | '\u{202f}' => "dấu cách không ngắt".to_owned(),
        '\t' => "dấu tab".to_owned(),
        '\n' | '\r' => "dấu xuống dòng".to_owned(),
        other => format!("ký tự khoảng trắng U+{:04X}", u32::from(other)),
    }
}

/// Words accepted for yes and no, folded and lower-cased.
const YES_WORDS: [&str; 8] = ["co", "x", "1", "yes", "true", "y", "da", "da co"];
const NO_WORDS: [&str; 7] = ["khong", "0", "no", "false", "n", "chua", "khong co"];

fn parse_yes_no(text: &str) -> Option<bool> {
    let key = header_key(text);
    if YES_WORDS.contains(&key.as_str()) {
        Some(true)
    } else if NO_WORDS.contains(&key.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Reads one cell as a value of `indicator`; `Ok(None)` for an empty cell (not reported).
fn parse_value(indicator: &Indicator, cell: &Cell) -> Result<Option<Value>, Problem> {
    if let Cell::Error(error) = cell {
        return Err(problem("cell_error", format!("ô có lỗi công thức `{error}`, hãy nhập giá trị")));
    }
    if cell.is_empty() {
        return Ok(None);
    }
    let unit = &indicator.unit;
    match indicator.value_type {
        ValueType::Count | ValueType::Amount | ValueType::Percentage => {
            let number = match cell {
                Cell::Number(number) => *number,
                Cell::Text(text) => match parse_decimal(text) {
                    Ok(Decimal::Exact(number)) => number,
                    // A count is whole, so `1.500` can only be fifteen hundred.
                    Ok(Decimal::Ambiguous { grouped, .. }) if indicator.value_type == ValueType::Count => grouped,
                    Ok(Decimal::Ambiguous { grouped, decimal }) => {
                        return Err(problem(
                            "ambiguous_number",
                            format!(
                                "{} có thể là {grouped} hoặc {decimal}: hãy ghi số không có dấu phân cách hàng nghìn \
                                 (ví dụ 1500 hoặc 1,5)",
                                cell.describe()
                            ),
                        ));
                    }
                    Err(NotANumber::Spacing(space)) => {
                        return Err(problem(
                            "misplaced_space",
                            format!(
                                "{} có {} giữa các chữ số: chỉ được dùng một dấu cách để tách các nhóm ba chữ số \
                                 hàng nghìn (ví dụ 1 234 hoặc 1234), hãy kiểm tra lại số đã nhập",
                                cell.describe(),
                                white_space_vi(space)
                            ),
                        ));
                    }
                    Err(NotANumber::Text) => {
                        return Err(problem(
                            "type",
                            format!("{} không phải là số ({})", cell.describe(), indicator.value_type.label_vi()),
                        ));
                    }
                },
                _ => {
                    return Err(problem(
                        "type",
                        format!("{} không phải là số ({})", cell.describe(), indicator.value_type.label_vi()),
                    ));
                }
            };
            check_number(indicator, number).map(|number| Some(Value::Number(number)))
        }
        ValueType::YesNo => {
            let flag = match cell {
                Cell::Bool(flag) => Some(*flag),
                Cell::Number(number) if *number == 1.0 => Some(true),
                Cell::Number(number) if *number == 0.0 => Some(false),
                Cell::Text(text) => parse_yes_no(text),
                _ => None,
            };
            match flag {
                Some(flag) => Ok(Some(Value::Bool(flag))),
                None => Err(problem(
                    "type",
                    format!("{} không phải là có/không: hãy ghi `có` hoặc `không` (hoặc x, 1, 0)", cell.describe()),
                )),
            }
        }
        ValueType::Text => {
            let written = match cell {
                Cell::Text(text) => text::nfc(text.trim()),
                Cell::Number(number) => number.to_string(),
                Cell::Bool(flag) => if *flag { "có" } else { "không" }.to_owned(),
                Cell::Date(date) => date.format("%d/%m/%Y").to_string(),
                Cell::Empty | Cell::Error(_) => return Ok(None),
            };
            let chars = written.chars().count();
            if chars > MAX_TEXT_CHARS {
                return Err(problem(
                    "too_long",
                    format!("nội dung có {chars} ký tự, tối đa {MAX_TEXT_CHARS} ký tự ({unit})"),
                ));
            }
            Ok(Some(Value::Text(written)))
        }
    }
}

fn check_number(indicator: &Indicator, number: f64) -> Result<f64, Problem> {
    if !number.is_finite() {
        return Err(problem("type", "giá trị không phải là số hữu hạn"));
    }
    if number < 0.0 {
        return Err(problem("negative", format!("số âm `{number}` không hợp lệ: {} không thể âm", indicator.unit)));
    }
    if number > MAX_NUMBER {
        return Err(problem("too_large", format!("`{number}` quá lớn, hãy kiểm tra lại")));
    }
    // `-0` is 0.
    let number = if number == 0.0 { 0.0 } else { number };
    match indicator.value_type {
        ValueType::Count if number.fract() != 0.0 => Err(problem(
            "not_whole",
            format!("`{number}` không phải số nguyên: {} được đếm bằng số nguyên", indicator.unit),
        )),
        ValueType::Percentage if number > 100.0 => {
            Err(problem("out_of_range", format!("tỷ lệ `{number}` nằm ngoài khoảng 0 đến 100")))
        }
        _ => Ok(number),
    }
}

// ---------------------------------------------------------------------------------------------
// Intake

/// Validates report submissions. One per request: it carries who sends and when.
#[derive(Debug, Clone, Copy)]
pub struct Intake<'a> {
    pub units: &'a Units,
    pub catalogue: &'a Catalogue,
    /// The sender's unit code: `00` may report for every unit, a province for itself and its
    /// communes and villages, a commune for itself and its villages, a village for itself.
    pub scope: &'a str,
    /// The time of receipt: stamps the values and bounds the week (no future weeks).
    pub now: DateTime<Utc>,
    /// The sender's account, stored with the values.
    pub submitted_by: Option<&'a str>,
    /// The codes of the registered villages; a report for a village not in it is refused, as the
    /// weekly synthesis (whose tree holds only registered villages) would refuse to read it.
    /// `None` skips that check (the pipeline: the API checked it when the report came in).
    pub villages: Option<&'a HashSet<String>>,
}

/// What a spreadsheet upload gave.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SheetOutcome {
    /// The accepted values: all of them when `errors` is empty; with errors, none, unless partial
    /// acceptance was asked for, in which case those of the rows without any error.
    pub rows: Vec<ReportValue>,
    /// Every problem found, in sheet order.
    pub errors: Vec<ReportError>,
    /// Rows that carried at least one value (prefilled rows left blank do not count).
    pub data_rows: usize,
    /// Of those, the rows with at least one error.
    pub rejected_rows: usize,
}

const JSON_FIELDS: [&str; 3] = ["unit", "week", "values"];

impl Intake<'_> {
    fn scope_ref(&self) -> Result<UnitRef, ReportError> {
        UnitRef::parse(self.scope.trim(), self.units).map_err(|err| {
            ReportError::new(
                "scope",
                "invalid_scope",
                format!("phạm vi của người gửi không hợp lệ: {}", err.message_vi()),
            )
        })
    }

    fn received_at(&self) -> DateTime<Utc> {
        // The lake stores microseconds: keep the record equal to what it reads back.
        self.now.trunc_subsecs(6)
    }

    /// A unit code as typed, checked against the reference lists and the sender's scope.
    fn check_unit(&self, code: &str, scope: &UnitRef) -> Result<UnitRef, Problem> {
        unit_in_scope(self.units, self.villages, code, scope, "phạm vi báo cáo")
            .map_err(|(code, message)| problem(code, message))
    }

    /// A week as typed: well formed and not after the current week (Vietnam time).
    fn check_week(&self, text: &str) -> Result<String, Problem> {
        let Some((year, week)) = week_numbers(text) else {
            return Err(problem(
                "malformed_week",
                format!("tuần `{}` không đúng dạng: hãy ghi năm-W-số tuần ISO, ví dụ 2025-W38", shorten(text.trim())),
            ));
        };
        self.check_week_numbers(year, week)
    }

    fn check_week_numbers(&self, year: i32, week: u32) -> Result<String, Problem> {
        let label = week_label(year, week);
        let today = self.now.with_timezone(&vietnam()).date_naive().iso_week();
        if (year, week) > (today.year(), today.week()) {
            return Err(problem(
                "future_week",
                format!("tuần `{label}` chưa đến (tuần hiện tại là {})", week_label(today.year(), today.week())),
            ));
        }
        Ok(label)
    }

    fn check_level(indicator: &Indicator, unit: &UnitRef) -> Result<(), Problem> {
        if indicator.reported_at(unit.level()) {
            return Ok(());
        }
        let levels: Vec<&str> = indicator.levels.iter().map(|level| level.label_vi()).collect();
        Err(problem(
            "wrong_level",
            format!(
                "chỉ tiêu `{}` không báo cáo ở cấp {}; cấp báo cáo: {}",
                indicator.code,
                unit.level().label_vi(),
                levels.join("; ")
            ),
        ))
    }

    fn row(
        &self,
        unit_code: &str,
        level: Level,
        week: &str,
        indicator: &Indicator,
        value: Value,
        source: Source,
    ) -> ReportValue {
        ReportValue {
            unit_code: unit_code.to_owned(),
            level,
            week: week.to_owned(),
            indicator: indicator.code.clone(),
            value,
            submitted_at: self.received_at(),
            submitted_by: self.submitted_by.map(str::to_owned),
            source,
        }
    }

    /// Parses and validates a JSON submission from raw request bytes:
    /// `{"unit": "00004", "week": "2025-W38", "values": {"meetings_held": 3}}`. A `null` value
    /// is "not reported". Every problem is reported at once, with paths like
    /// `values.meetings_held`.
    pub fn parse_json_bytes(&self, bytes: &[u8]) -> Result<Vec<ReportValue>, Vec<ReportError>> {
        let text = std::str::from_utf8(bytes).map_err(|err| {
            vec![ReportError::new(
                "",
                "invalid_utf8",
                format!("nội dung gửi không phải UTF-8 hợp lệ (byte {})", err.valid_up_to()),
            )]
        })?;
        let value: Json = serde_json::from_str(text).map_err(|err| {
            vec![ReportError::new(
                "",
                "malformed_json",
                format!("JSON sai cú pháp ở dòng {} cột {}: {err}", err.line(), err.column()),
            )]
        })?;
        self.parse_json(&value)
    }

    /// Validates a JSON submission (see [`Intake::parse_json_bytes`]).
    pub fn parse_json(&self, value: &Json) -> Result<Vec<ReportValue>, Vec<ReportError>> {
        let scope = self.scope_ref().map_err(|err| vec![err])?;
        let Some(object) = value.as_object() else {
            return Err(vec![ReportError::new("", "type", "cần một đối tượng JSON")]);
        };
        let mut errors = Vec::new();
        for key in object.keys() {
            if !JSON_FIELDS.contains(&key.as_str()) {
                errors.push(ReportError::new(key, "unknown_field", format!("trường `{key}` không được hỗ trợ")));
            }
        }
        let unit_text = required_string(object, "unit", &mut errors);
        let week_text = required_string(object, "week", &mut errors);
        let unit = unit_text.and_then(|code| {
            self.check_unit(code, &scope).map_err(|p| errors.push(ReportError::new("unit", p.code, p.message))).ok()
        });
        let week = week_text.and_then(|text| {
            self.check_week(text).map_err(|p| errors.push(ReportError::new("week", p.code, p.message))).ok()
        });
        let mut candidates = Vec::new();
        match object.get("values") {
            None | Some(Json::Null) => errors.push(ReportError::new("values", "required", "thiếu trường `values`")),
            Some(Json::Object(values)) => {
                for (code, raw) in values {
                    let field = format!("values.{code}");
                    let Some(indicator) = self.catalogue.indicator(code) else {
                        errors.push(ReportError::new(
                            &field,
                            "unknown_indicator",
                            format!("không có chỉ tiêu mã `{code}` trong danh mục"),
                        ));
                        continue;
                    };
                    // JSON says what type a value is: text is sent as a string, never as a
                    // number or a flag that would be stored as its spelling.
                    if indicator.value_type == ValueType::Text && matches!(raw, Json::Number(_) | Json::Bool(_)) {
                        errors.push(ReportError::new(
                            &field,
                            "type",
                            format!("chỉ tiêu `{code}` là văn bản: hãy gửi một chuỗi JSON"),
                        ));
                        continue;
                    }
                    let cell = match raw {
                        Json::Null => Cell::Empty,
                        Json::Bool(flag) => Cell::Bool(*flag),
                        Json::Number(number) => number.as_f64().map_or(Cell::Error("NaN".to_owned()), Cell::Number),
                        Json::String(text) => Cell::from_text(text),
                        Json::Array(_) | Json::Object(_) => {
                            errors.push(ReportError::new(
                                &field,
                                "type",
                                "giá trị phải là số, true/false hoặc chuỗi".to_owned(),
                            ));
                            continue;
                        }
                    };
                    match parse_value(indicator, &cell) {
                        Ok(None) => {}
                        Ok(Some(value)) => {
                            if let Some(unit) = &unit
                                && let Err(p) = Self::check_level(indicator, unit)
                            {
                                errors.push(ReportError::new(&field, p.code, p.message));
                                continue;
                            }
                            candidates.push((indicator, value));
                        }
                        Err(p) => errors.push(ReportError::new(&field, p.code, p.message)),
                    }
                }
                if candidates.is_empty() && errors.iter().all(|e| !e.field.starts_with("values")) {
                    errors.push(ReportError::new("values", "empty", "báo cáo không có giá trị nào"));
                }
            }
            Some(_) => {
                errors.push(ReportError::new("values", "type", "`values` phải là đối tượng mã chỉ tiêu: giá trị"))
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(unit), Some(week)) = (unit, week) else {
            return Err(vec![ReportError::new("", "internal", "thiếu đơn vị hoặc tuần")]);
        };
        let unit_code = unit.code();
        Ok(candidates
            .into_iter()
            .map(|(indicator, value)| self.row(&unit_code, unit.level(), &week, indicator, value, Source::Api))
            .collect())
    }

    /// Checks a value read back from the log, as the pipeline must (the log may carry rows from
    /// other producers or older catalogues): the unit, its level, the week, the indicator, the
    /// value, and the scope of this intake. Returns every problem.
    pub fn validate_row(&self, row: &ReportValue) -> Vec<ReportError> {
        let mut errors = Vec::new();
        let scope = match self.scope_ref() {
            Ok(scope) => scope,
            Err(err) => return vec![err],
        };
        let unit = match self.check_unit(&row.unit_code, &scope) {
            Ok(unit) => {
                if unit.level() != row.level {
                    errors.push(ReportError::new(
                        "level",
                        "level_mismatch",
                        format!(
                            "đơn vị `{}` thuộc cấp {}, không phải {}",
                            row.unit_code,
                            unit.level().as_str(),
                            row.level.as_str()
                        ),
                    ));
                }
                Some(unit)
            }
            Err(p) => {
                errors.push(ReportError::new("unit_code", p.code, p.message));
                None
            }
        };
        match self.check_week(&row.week) {
            Ok(label) if label != row.week => errors.push(ReportError::new(
                "week",
                "malformed_week",
                format!("tuần `{}` phải được ghi là `{label}`", row.week),
            )),
            Ok(_) => {}
            Err(p) => errors.push(ReportError::new("week", p.code, p.message)),
        }
        let Some(indicator) = self.catalogue.indicator(&row.indicator) else {
            errors.push(ReportError::new(
                "indicator",
                "unknown_indicator",
                format!("không có chỉ tiêu mã `{}` trong danh mục", row.indicator),
            ));
            return errors;
        };
        if let Some(unit) = &unit
            && let Err(p) = Self::check_level(indicator, unit)
        {
            errors.push(ReportError::new("indicator", p.code, p.message));
        }
        let checked = match &row.value {
            Value::Number(number) => parse_value(indicator, &Cell::Number(*number)),
            Value::Bool(flag) => parse_value(indicator, &Cell::Bool(*flag)),
            Value::Text(text) => parse_value(indicator, &Cell::from_text(text)),
        };
        match checked {
            Ok(Some(value)) if value.fits(indicator.value_type) && row.value.fits(indicator.value_type) => {}
            Ok(_) => errors.push(ReportError::new(
                "value",
                "type",
                format!(
                    "giá trị không đúng kiểu của chỉ tiêu `{}` ({})",
                    indicator.code,
                    indicator.value_type.label_vi()
                ),
            )),
            Err(p) => errors.push(ReportError::new("value", p.code, p.message)),
        }
        errors
    }

    /// Parses and validates the first data sheet of an XLSX workbook (a sheet named
    /// [`GUIDE_SHEET`] is skipped). All or nothing unless `accept_partial` (see [`SheetOutcome`]).
    /// The sheet is streamed: a value past row [`MAX_SHEET_ROWS`] + 1 or column
    /// [`MAX_SHEET_COLUMNS`] refuses the whole file with `too_many_rows` or `too_many_columns` at
    /// that cell, whatever the size of the grid it would span.
    pub fn parse_xlsx(&self, bytes: &[u8], accept_partial: bool) -> SheetOutcome {
        let guide_key = header_key(GUIDE_SHEET);
        // The header is the first row with a value; the reader exists once it is read.
        let mut reader: Option<SheetReader> = None;
        let mut refused: Option<SheetOutcome> = None;
        let read = crate::cells::read_xlsx_rows(
            bytes,
            |name| header_key(name) != guide_key,
            MAX_SHEET_ROWS + 1,
            |number, cells| match reader.as_mut() {
                Some(reader) => reader.row(number, cells),
                None => match SheetReader::new(self, Source::Xlsx, cells, number, 0) {
                    Ok(created) => {
                        reader = Some(created);
                        true
                    }
                    Err(outcome) => {
                        refused = Some(outcome);
                        false
                    }
                },
            },
        );
        if let Some(outcome) = refused {
            return outcome;
        }
        let problem = read.err().map(|problem| {
            let mut error = ReportError::new("", problem.code, problem.message);
            error.row = problem.row;
            error.column = problem.column.map(column_letter);
            error
        });
        match (reader, problem) {
            (Some(mut reader), Some(error)) => {
                // A cell beyond the limits refuses the whole file, partial or not: what lies past
                // it was never read.
                reader.errors.push(error);
                SheetOutcome { errors: reader.errors, ..SheetOutcome::default() }
            }
            (Some(reader), None) => reader.finish(accept_partial),
            (None, Some(error)) => SheetOutcome { errors: vec![error], ..SheetOutcome::default() },
            (None, None) => SheetOutcome {
                errors: vec![ReportError::new("", "empty_sheet", "trang tính dữ liệu trống")],
                ..SheetOutcome::default()
            },
        }
    }

    /// Parses and validates a CSV file (UTF-8, with or without a byte-order mark; the separator,
    /// `,` `;` or tab, is taken from the header line). All or nothing unless `accept_partial`.
    pub fn parse_csv(&self, bytes: &[u8], accept_partial: bool) -> SheetOutcome {
        let file_error = |code: &str, message: String| SheetOutcome {
            errors: vec![ReportError::new("", code, message)],
            ..SheetOutcome::default()
        };
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                return file_error(
                    "invalid_utf8",
                    format!(
                        "tệp CSV không phải UTF-8 (byte {}): hãy lưu bằng \"CSV UTF-8\" trong Excel",
                        err.valid_up_to()
                    ),
                );
            }
        };
        let first_line = text.lines().next().unwrap_or("");
        let delimiter = [b',', b';', b'\t']
            .into_iter()
            .max_by_key(|&candidate| (first_line.bytes().filter(|&b| b == candidate).count(), candidate == b','))
            .unwrap_or(b',');
        if let Some(line) = unterminated_quote(text, delimiter) {
            let mut error = ReportError::new(
                "",
                "malformed_file",
                format!("tệp CSV sai cú pháp: dấu ngoặc kép mở ở dòng {line} không được đóng"),
            );
            error.row = Some(line);
            return SheetOutcome { errors: vec![error], ..SheetOutcome::default() };
        }
        let mut csv_reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        let mut records = csv_reader.records();
        let header = match records.next() {
            None => return file_error("empty_sheet", "tệp CSV trống".to_owned()),
            Some(Err(err)) => return file_error("malformed_file", format!("không đọc được tệp CSV: {err}")),
            Some(Ok(record)) => record,
        };
        let header_row = header.position().map_or(1, |p| p.line() as usize);
        let header_cells: Vec<Cell> = header.iter().map(Cell::from_text).collect();
        let mut reader = match SheetReader::new(self, Source::Csv, &header_cells, header_row, 0) {
            Ok(reader) => reader,
            Err(outcome) => return outcome,
        };
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(err) => {
                    let line = err.position().map(|p| p.line() as usize);
                    let mut error = ReportError::new("", "malformed_file", format!("tệp CSV sai cú pháp: {err}"));
                    error.row = line;
                    reader.errors.push(error);
                    break;
                }
            };
            let row_number = record.position().map_or(0, |p| p.line() as usize);
            let cells: Vec<Cell> = record.iter().map(Cell::from_text).collect();
            if !reader.row(row_number, &cells) {
                break;
            }
        }
        reader.finish(accept_partial)
    }
}

/// The 1-based line of a quoted CSV field that is never closed, if any. The `csv` crate reads
/// such a field to the end of the file without an error, which turns the rest of the file into
/// one cell (and a report row into one without values, silently skipped): the sender must hear
/// of it instead. Quotes open a field only at its start, as the reader treats them.
pub(crate) fn unterminated_quote(text: &str, delimiter: u8) -> Option<usize> {
    let (mut line, mut opened_at) = (1, None);
    let mut at_field_start = true;
    let mut bytes = text.bytes().peekable();
    while let Some(byte) = bytes.next() {
        if byte == b'\n' {
            line += 1;
        }
        match opened_at {
            Some(_) if byte == b'"' => {
                if bytes.peek() == Some(&b'"') {
                    bytes.next();
                } else {
                    opened_at = None;
                }
            }
            Some(_) => {}
            None if byte == b'"' && at_field_start => opened_at = Some(line),
            None => {}
        }
        if opened_at.is_none() {
            at_field_start = byte == delimiter || byte == b'\n' || byte == b'\r';
        } else {
            at_field_start = false;
        }
    }
    opened_at
}

fn required_string<'j>(
    object: &'j serde_json::Map<String, Json>,
    field: &str,
    errors: &mut Vec<ReportError>,
) -> Option<&'j str> {
    match object.get(field) {
        None | Some(Json::Null) => {
            errors.push(ReportError::new(field, "required", format!("thiếu trường `{field}`")));
            None
        }
        Some(Json::String(text)) => Some(text.as_str()),
        Some(_) => {
            errors.push(ReportError::new(field, "type", format!("`{field}` phải là chuỗi")));
            None
        }
    }
}

/// What a spreadsheet column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Unit,
    Week,
    /// A column people read and voxpop does not (`unit_name`).
    Ignored,
    Indicator(usize),
    /// No header: must stay empty.
    Blank,
    /// A header that names nothing (already reported).
    Unknown,
}

/// Reads the rows of a sheet in the long layout, one at a time, gathering values and errors.
struct SheetReader<'i, 'a> {
    intake: &'i Intake<'a>,
    scope: UnitRef,
    source: Source,
    columns: Vec<Column>,
    /// Absolute index of the first column, for column letters.
    first_column: usize,
    /// First row of each (unit, week) seen.
    seen: HashMap<(String, String), usize>,
    /// Blank-header columns already reported as holding data.
    flagged_blank: HashSet<usize>,
    rows: Vec<ReportValue>,
    errors: Vec<ReportError>,
    data_rows: usize,
    rejected_rows: usize,
}

impl<'i, 'a> SheetReader<'i, 'a> {
    /// Reads the header row; an outcome with the errors when the sheet cannot be read at all.
    fn new(
        intake: &'i Intake<'a>,
        source: Source,
        header: &[Cell],
        header_row: usize,
        first_column: usize,
    ) -> Result<SheetReader<'i, 'a>, SheetOutcome> {
        let scope = intake.scope_ref().map_err(|err| SheetOutcome { errors: vec![err], ..SheetOutcome::default() })?;
        let mut errors = Vec::new();
        let mut columns = Vec::with_capacity(header.len());
        let mut claimed: HashMap<usize, usize> = HashMap::new();
        let (mut unit_column, mut week_column) = (None, None);
        for (index, cell) in header.iter().enumerate() {
            let letter = Some(first_column + index);
            let text = match cell {
                Cell::Empty => {
                    columns.push(Column::Blank);
                    continue;
                }
                Cell::Text(text) => text.trim().to_owned(),
                Cell::Number(number) => number.to_string(),
                other => other.describe(),
            };
            let key = header_key(&text);
            let column = if UNIT_HEADERS.contains(&key.as_str()) {
                Column::Unit
            } else if WEEK_HEADERS.contains(&key.as_str()) {
                Column::Week
            } else if NAME_HEADERS.contains(&key.as_str()) {
                Column::Ignored
            } else if let Some(indicator) = intake.catalogue.find_header(&text) {
                let position = intake.catalogue.position(&indicator.code).expect("found in the catalogue");
                Column::Indicator(position)
            } else {
                errors.push(
                    ReportError::new(
                        &text,
                        "unknown_column",
                        format!("cột `{}` không phải mã hoặc tên chỉ tiêu nào trong danh mục", shorten(&text)),
                    )
                    .at(header_row, letter),
                );
                Column::Unknown
            };
            let slot = match column {
                Column::Unit => Some(&mut unit_column),
                Column::Week => Some(&mut week_column),
                _ => None,
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    errors.push(
                        ReportError::new(&text, "duplicate_column", format!("cột `{text}` xuất hiện hai lần"))
                            .at(header_row, letter),
                    );
                }
                *slot = Some(index);
            }
            if let Column::Indicator(position) = column
                && let Some(previous) = claimed.insert(position, index)
            {
                let code = &intake.catalogue.indicators()[position].code;
                errors.push(
                    ReportError::new(
                        code,
                        "duplicate_column",
                        format!("chỉ tiêu `{code}` đã có ở cột {}", column_letter(first_column + previous)),
                    )
                    .at(header_row, letter),
                );
            }
            columns.push(column);
        }
        for (found, name) in [(unit_column, "unit_code"), (week_column, "week")] {
            if found.is_none() {
                errors.push(
                    ReportError::new(name, "missing_column", format!("thiếu cột `{name}` ở dòng tiêu đề"))
                        .at(header_row, None),
                );
            }
        }
        if unit_column.is_none() || week_column.is_none() {
            return Err(SheetOutcome { errors, ..SheetOutcome::default() });
        }
        Ok(SheetReader {
            intake,
            scope,
            source,
            columns,
            first_column,
            seen: HashMap::new(),
            flagged_blank: HashSet::new(),
            rows: Vec::new(),
            errors,
            data_rows: 0,
            rejected_rows: 0,
        })
    }

    /// Reads one data row; false when the sheet is too long to go on.
    fn row(&mut self, row_number: usize, cells: &[Cell]) -> bool {
        let carries_data = cells.iter().zip(&self.columns).any(|(cell, column)| {
            !cell.is_empty() && matches!(column, Column::Indicator(_) | Column::Blank | Column::Unknown)
        }) || cells.len() > self.columns.len()
            && cells[self.columns.len()..].iter().any(|cell| !cell.is_empty());
        // Rows of a template with the unit and week prefilled and nothing filled in.
        if !carries_data {
            return true;
        }
        self.data_rows += 1;
        if self.data_rows > MAX_SHEET_ROWS {
            self.errors.push(
                ReportError::new(
                    "",
                    "too_many_rows",
                    format!("trang tính có hơn {MAX_SHEET_ROWS} dòng số liệu: hãy chia thành nhiều tệp"),
                )
                .at(row_number, None),
            );
            self.data_rows -= 1;
            return false;
        }
        let mut errors = Vec::new();
        let mut unit = None;
        let mut week = None;
        let mut values = Vec::new();
        let first_column = self.first_column;
        let at = move |index: usize| Some(first_column + index);
        for (index, column) in self.columns.iter().enumerate() {
            let cell = cells.get(index).unwrap_or(&Cell::Empty);
            match column {
                Column::Unit => match self.unit_text(cell) {
                    Ok(code) => match self.intake.check_unit(&code, &self.scope) {
                        Ok(found) => unit = Some(found),
                        Err(p) => {
                            errors.push(ReportError::new("unit_code", p.code, p.message).at(row_number, at(index)))
                        }
                    },
                    Err(p) => errors.push(ReportError::new("unit_code", p.code, p.message).at(row_number, at(index))),
                },
                Column::Week => {
                    let checked = match cell {
                        Cell::Text(text) => self.intake.check_week(text),
                        Cell::Date(date) => {
                            let iso = date.iso_week();
                            self.intake.check_week_numbers(iso.year(), iso.week())
                        }
                        Cell::Empty => Err(problem("required", "thiếu tuần báo cáo")),
                        other => Err(problem(
                            "malformed_week",
                            format!("{} không phải là tuần: hãy ghi ví dụ 2025-W38", other.describe()),
                        )),
                    };
                    match checked {
                        Ok(label) => week = Some(label),
                        Err(p) => errors.push(ReportError::new("week", p.code, p.message).at(row_number, at(index))),
                    }
                }
                Column::Indicator(position) => {
                    let indicator = &self.intake.catalogue.indicators()[*position];
                    match parse_value(indicator, cell) {
                        Ok(None) => {}
                        Ok(Some(value)) => values.push((index, indicator, value)),
                        Err(p) => {
                            errors.push(ReportError::new(&indicator.code, p.code, p.message).at(row_number, at(index)))
                        }
                    }
                }
                Column::Blank => {
                    if !cell.is_empty() && self.flagged_blank.insert(index) {
                        errors.push(
                            ReportError::new("", "unnamed_column", "cột có số liệu nhưng không có tiêu đề")
                                .at(row_number, at(index)),
                        );
                    }
                }
                Column::Ignored | Column::Unknown => {}
            }
        }
        // Cells right of the last header.
        for (index, cell) in cells.iter().enumerate().skip(self.columns.len()) {
            if !cell.is_empty() && self.flagged_blank.insert(index) {
                errors.push(
                    ReportError::new("", "unnamed_column", "cột có số liệu nhưng không có tiêu đề")
                        .at(row_number, at(index)),
                );
            }
        }
        if let Some(unit) = &unit {
            for (index, indicator, _) in &values {
                if let Err(p) = Intake::check_level(indicator, unit) {
                    errors.push(ReportError::new(&indicator.code, p.code, p.message).at(row_number, at(*index)));
                }
            }
        }
        if let (Some(unit), Some(week)) = (&unit, &week) {
            let key = (unit.code(), week.clone());
            if let Some(first) = self.seen.get(&key) {
                errors.push(
                    ReportError::new(
                        "unit_code",
                        "duplicate_row",
                        format!("đơn vị `{}` tuần {week} đã có ở dòng {first}", key.0),
                    )
                    .at(row_number, None),
                );
            } else {
                self.seen.insert(key, row_number);
            }
        }
        if !errors.is_empty() {
            self.rejected_rows += 1;
            self.errors.extend(errors);
            return true;
        }
        let (Some(unit), Some(week)) = (unit, week) else {
            return true;
        };
        let unit_code = unit.code();
        for (_, indicator, value) in values {
            self.rows.push(self.intake.row(&unit_code, unit.level(), &week, indicator, value, self.source));
        }
        true
    }

    /// The unit code of a cell. Excel turns a typed `00004` into the number 4 unless the column
    /// is text; three digits or more can only be a commune, fewer could be a province too.
    fn unit_text(&self, cell: &Cell) -> Result<String, Problem> {
        match cell {
            Cell::Text(text) => Ok(text.trim().to_owned()),
            Cell::Empty => Err(problem("required", "thiếu mã đơn vị")),
            Cell::Number(number) if number.fract() == 0.0 && (100.0..=99_999.0).contains(number) => {
                Ok(format!("{:05}", *number as u32))
            }
            Cell::Number(number) if number.fract() == 0.0 && (0.0..100.0).contains(number) => Err(problem(
                "ambiguous_unit_code",
                format!(
                    "mã đơn vị là số `{number}`: Excel đã bỏ các chữ số 0 ở đầu; hãy định dạng cột là Văn bản (Text) \
                     và ghi đủ mã, ví dụ `0{number}` hoặc `0000{number}`"
                ),
            )),
            other => Err(problem("malformed_unit", format!("{} không phải là mã đơn vị", other.describe()))),
        }
    }

    fn finish(mut self, accept_partial: bool) -> SheetOutcome {
        if !self.errors.is_empty() && !accept_partial {
            self.rows.clear();
        }
        SheetOutcome {
            rows: self.rows,
            errors: self.errors,
            data_rows: self.data_rows,
            rejected_rows: self.rejected_rows,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workbooks

/// One row of a report workbook: a unit, its week and the values filled in (none for a blank
/// template).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SheetRow {
    pub unit_code: String,
    /// For people; ignored when the sheet is read back.
    pub unit_name: String,
    /// Empty to leave the week for the office to fill in.
    pub week: String,
    /// Indicator code and value; indicators without a column in the sheet are left out.
    pub values: Vec<(String, Value)>,
}

/// The indicators in a workbook for an office of `level`: those it reports itself and those of
/// the level below, whose rows it collects, in catalogue order.
pub fn sheet_indicators(catalogue: &Catalogue, level: Level) -> Vec<&Indicator> {
    catalogue
        .indicators()
        .iter()
        .filter(|indicator| {
            indicator.reported_at(level) || level.below().is_some_and(|below| indicator.reported_at(below))
        })
        .collect()
}

/// Writes a report workbook in the long layout for an office of `level`: a data sheet
/// ([`DATA_SHEET`]) with the header row of codes (`unit_code`, `unit_name`, `week`, then one
/// column per indicator of [`sheet_indicators`]) and `rows`; cells of indicators a row's level
/// does not report are shaded; and a guide sheet ([`GUIDE_SHEET`]) listing each indicator's code,
/// Vietnamese name, unit and type. Blank templates and filled-in exports are both this.
pub fn report_xlsx(catalogue: &Catalogue, level: Level, rows: &[SheetRow]) -> Result<Vec<u8>, CatalogueError> {
    use rust_xlsxwriter::{Color, DataValidation, Format, FormatBorder, Workbook};
    let indicators = sheet_indicators(catalogue, level);
    let header_format =
        Format::new().set_bold().set_background_color(Color::RGB(0xDDEBF7)).set_border_bottom(FormatBorder::Thin);
    let text_format = Format::new().set_num_format("@");
    let shaded = Format::new().set_background_color(Color::RGB(0xD9D9D9));
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name(DATA_SHEET)?;
    let fixed = ["unit_code", "unit_name", "week"];
    for (column, name) in fixed.iter().enumerate() {
        sheet.write_string_with_format(0, column as u16, *name, &header_format)?;
    }
    sheet.set_column_width(0, 12)?;
    sheet.set_column_width(1, 28)?;
    sheet.set_column_width(2, 10)?;
    sheet.set_column_format(0, &text_format)?;
    sheet.set_column_format(2, &text_format)?;
    let first_indicator = fixed.len() as u16;
    let mut column_of: HashMap<&str, u16> = HashMap::new();
    for (offset, indicator) in indicators.iter().enumerate() {
        let column = first_indicator + offset as u16;
        sheet.write_string_with_format(0, column, &indicator.code, &header_format)?;
        sheet.set_column_width(column, (indicator.code.len() as f64 + 2.0).max(12.0))?;
        if indicator.value_type == ValueType::Text {
            sheet.set_column_format(column, &text_format)?;
        }
        column_of.insert(indicator.code.as_str(), column);
    }
    sheet.set_freeze_panes(1, 3)?;
    for (index, row) in rows.iter().enumerate() {
        let line = index as u32 + 1;
        sheet.write_string(line, 0, &row.unit_code)?;
        if !row.unit_name.is_empty() {
            sheet.write_string(line, 1, &row.unit_name)?;
        }
        if !row.week.is_empty() {
            sheet.write_string(line, 2, &row.week)?;
        }
        if let Some(row_level) = Level::of_code(&row.unit_code) {
            for (offset, indicator) in indicators.iter().enumerate() {
                if !indicator.reported_at(row_level) {
                    sheet.write_blank(line, first_indicator + offset as u16, &shaded)?;
                }
            }
        }
        for (code, value) in &row.values {
            let Some(&column) = column_of.get(code.as_str()) else { continue };
            match value {
                Value::Number(number) => sheet.write_number(line, column, *number)?,
                Value::Bool(flag) => sheet.write_string(line, column, if *flag { "có" } else { "không" })?,
                Value::Text(text) => sheet.write_string(line, column, text)?,
            };
        }
    }
    let last_row = (rows.len() as u32 + 500).min(1_048_575);
    let yes_no = DataValidation::new().allow_list_strings(&["có", "không"])?;
    for (offset, indicator) in indicators.iter().enumerate() {
        if indicator.value_type == ValueType::YesNo {
            let column = first_indicator + offset as u16;
            sheet.add_data_validation(1, column, last_row, column, &yes_no)?;
        }
    }
    write_guide(workbook.add_worksheet(), &indicators, &header_format)?;
    Ok(workbook.save_to_buffer()?)
}

fn write_guide(
    guide: &mut rust_xlsxwriter::Worksheet,
    indicators: &[&Indicator],
    header_format: &rust_xlsxwriter::Format,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    guide.set_name(GUIDE_SHEET)?;
    let headers =
        ["Mã chỉ tiêu", "Tên chỉ tiêu", "Đơn vị tính", "Kiểu giá trị", "Cấp báo cáo", "Tổng hợp lên cấp trên"];
    for (column, header) in headers.iter().enumerate() {
        guide.write_string_with_format(0, column as u16, *header, header_format)?;
    }
    for (column, width) in [28, 60, 18, 20, 40, 30].into_iter().enumerate() {
        guide.set_column_width(column as u16, width)?;
    }
    for (index, indicator) in indicators.iter().enumerate() {
        let line = index as u32 + 1;
        let levels: Vec<&str> = indicator.levels.iter().map(|level| level.label_vi()).collect();
        guide.write_string(line, 0, &indicator.code)?;
        guide.write_string(line, 1, &indicator.vi)?;
        guide.write_string(line, 2, &indicator.unit)?;
        guide.write_string(line, 3, indicator.value_type.label_vi())?;
        guide.write_string(line, 4, levels.join("; "))?;
        guide.write_string(line, 5, indicator.rollup.label_vi(indicator.value_type))?;
    }
    let notes = [
        "Mỗi dòng là báo cáo của một đơn vị trong một tuần. Cột unit_code ghi mã đơn vị: Trung ương 00, tỉnh 2 chữ số, \
         xã 5 chữ số, thôn/tổ dân phố là mã xã, dấu gạch và số thứ tự 3 chữ số (ví dụ 00004-012).",
        "Cột week ghi tuần theo ISO, ví dụ 2025-W38 (tuần bắt đầu từ thứ Hai); cũng có thể ghi một ngày trong tuần.",
        "Ô để trống nghĩa là chưa báo cáo. Ô tô xám là chỉ tiêu không báo cáo ở cấp của đơn vị trên dòng đó.",
        "Chỉ tiêu có/không: ghi có hoặc không (cũng nhận x, 1, 0). Số liệu: chỉ ghi số, không ghi đơn vị tính.",
        "Có thể dùng tên chỉ tiêu tiếng Việt làm tiêu đề cột thay cho mã chỉ tiêu. Không đổi tên trang tính Báo cáo.",
    ];
    let first_note = indicators.len() as u32 + 2;
    for (offset, note) in notes.iter().enumerate() {
        guide.write_string(first_note + offset as u32, 0, *note)?;
    }
    Ok(())
}

/// A blank template for the office of `unit_code`, its own row first and then the rows of the
/// units it collects: a province's communes, a commune's villages (from `villages`, the
/// commune's registered list; those of other communes are skipped), the central committee's
/// provinces. `week`, when given, is prefilled.
pub fn template_xlsx(
    catalogue: &Catalogue,
    units: &Units,
    unit_code: &str,
    week: Option<&str>,
    villages: &[Village],
) -> Result<Vec<u8>, CatalogueError> {
    let unit = UnitRef::parse(unit_code, units)
        .map_err(|source| CatalogueError::Unit { code: unit_code.to_owned(), source })?;
    let week = week.unwrap_or("").to_owned();
    let row = |code: &str, name: &str| SheetRow {
        unit_code: code.to_owned(),
        unit_name: name.to_owned(),
        week: week.clone(),
        values: Vec::new(),
    };
    let mut rows = Vec::new();
    match &unit {
        UnitRef::Central => {
            rows.push(row(CENTRAL_CODE, "Ủy ban Trung ương"));
            rows.extend(units.provinces().iter().map(|p| row(&p.code, &p.name)));
        }
        UnitRef::Province { province } => {
            let name = units.province(province).map_or("", |p| p.name.as_str());
            rows.push(row(province, name));
            rows.extend(
                units.communes().iter().filter(|c| &c.province_code == province).map(|c| row(&c.code, &c.name)),
            );
        }
        UnitRef::Commune { commune, .. } => {
            let name = units.commune(commune).map_or("", |c| c.name.as_str());
            rows.push(row(commune, name));
            let mut own: Vec<&Village> = villages
                .iter()
                .filter(|village| village.code.len() == 9 && village.code.starts_with(commune.as_str()))
                .filter(|village| Level::of_code(&village.code) == Some(Level::Village))
                .collect();
            own.sort_by(|a, b| a.code.cmp(&b.code));
            rows.extend(own.into_iter().map(|village| row(&village.code, &village.name)));
        }
        UnitRef::Village { .. } => {
            let code = unit.code();
            let name = villages.iter().find(|village| village.code == code).map_or("", |village| village.name.as_str());
            rows.push(row(&code, name));
        }
    }
    report_xlsx(catalogue, unit.level(), &rows)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        // Friday of 2025-W38, 15:00 in Hanoi.
        Utc.with_ymd_and_hms(2025, 9, 19, 8, 0, 0).unwrap()
    }

    fn intake(scope: &str) -> Intake<'_> {
        Intake {
            units: Units::embedded(),
            catalogue: Catalogue::default_embedded(),
            scope,
            now: now(),
            submitted_by: Some("canbo.badinh"),
            villages: None,
        }
    }

    fn codes(errors: &[ReportError]) -> Vec<&str> {
        errors.iter().map(|e| e.code.as_str()).collect()
    }

    #[test]
    fn shipped_catalogue_parses_with_twenty_indicators() {
        let catalogue = Catalogue::from_toml_str(DEFAULT_TOML).unwrap();
        assert_eq!(catalogue.version(), 1);
        assert_eq!(catalogue.indicators().len(), 20);
        let list = catalogue.indicator("village_list_created").unwrap();
        assert_eq!(
            (list.value_type, list.rollup, list.levels.as_slice()),
            (ValueType::YesNo, Rollup::Sum, &[Level::Commune][..])
        );
        assert_eq!(catalogue.indicator("relief_amount").unwrap().unit, "triệu đồng");
        for indicator in catalogue.indicators() {
            assert!(indicator.rollup.fits(indicator.value_type), "{}", indicator.code);
            assert_eq!(catalogue.find_header(&indicator.vi).map(|i| &i.code), Some(&indicator.code));
            assert_eq!(catalogue.find_header(&indicator.code).map(|i| &i.code), Some(&indicator.code));
        }
        assert_eq!(Catalogue::default_embedded().indicators().len(), 20);
        assert!(catalogue.reported_at(Level::Village).count() >= 8);
    }

    #[test]
    fn headers_match_without_case_diacritics_or_unit() {
        let catalogue = Catalogue::default_embedded();
        let found = |header: &str| catalogue.find_header(header).map(|i| i.code.as_str());
        assert_eq!(found("SỐ CUỘC HỌP, HỘI NGHỊ ĐÃ TỔ CHỨC"), Some("meetings_held"));
        assert_eq!(found("so cuoc hop,  hoi nghi da to chuc"), Some("meetings_held"));
        assert_eq!(found("Kinh phí hỗ trợ, cứu trợ đã trao (triệu đồng)"), Some("relief_amount"));
        assert_eq!(found("Meetings_Held"), Some("meetings_held"));
        assert_eq!(found("số cuộc họp"), None);
    }

    #[test]
    fn catalogue_rejects_bad_configs() {
        let indicator = |code: &str, vi: &str, value_type: &str, rollup: &str, levels: &str| {
            format!(
                "[[indicator]]\ncode = \"{code}\"\nvi = \"{vi}\"\nen = \"E\"\nunit = \"cuộc\"\n\
                 value_type = \"{value_type}\"\nrollup = \"{rollup}\"\nlevels = {levels}\n"
            )
        };
        let good = indicator("a", "Chỉ tiêu A", "count", "sum", "[\"village\"]");
        assert!(Catalogue::from_toml_str(&format!("version = 1\n{good}")).is_ok());
        let cases = [
            (format!("version = 2\n{good}"), "unsupported catalogue version"),
            (good.clone(), "version"),
            ("version = 1\n".to_owned(), "no `[[indicator]]`"),
            (format!("version = 1\n{good}{good}"), "duplicate indicator code `a`"),
            (
                format!("version = 1\n{good}{}", indicator("b", "CHỈ TIÊU A", "count", "sum", "[\"village\"]")),
                "same spreadsheet header",
            ),
            (format!("version = 1\n{}", indicator("t", "T", "text", "sum", "[\"village\"]")), "does not fit"),
            (format!("version = 1\n{}", indicator("p", "P", "percentage", "sum", "[\"village\"]")), "does not fit"),
            (format!("version = 1\n{}", indicator("y", "Y", "yes_no", "mean", "[\"village\"]")), "does not fit"),
            (format!("version = 1\n{}", indicator("n", "N", "count", "any", "[\"village\"]")), "does not fit"),
            (format!("version = 1\n{}", indicator("e", "E", "count", "sum", "[]")), "no level"),
            (format!("version = 1\n{}", indicator("d", "D", "count", "sum", "[\"village\", \"village\"]")), "twice"),
            (format!("version = 1\n{}", indicator("Đ", "D", "count", "sum", "[\"village\"]")), "lowercase"),
            (format!("version = 1\n{}", indicator("week", "D", "count", "sum", "[\"village\"]")), "reserved"),
            (format!("version = 1\n{}", indicator("w", "Tuần", "count", "sum", "[\"village\"]")), "reserved"),
            (format!("version = 1\n{}", indicator("x", "X", "count", "sum", "[\"hamlet\"]")), "hamlet"),
            (format!("version = 1\ncolour = 1\n{good}"), "colour"),
        ];
        for (source, expected) in cases {
            let err = Catalogue::from_toml_str(&source).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
        // Text takes only `latest`; yes/no takes any, all and sum.
        assert!(Rollup::Latest.fits(ValueType::Text));
        for rollup in [Rollup::Any, Rollup::All, Rollup::Sum] {
            assert!(rollup.fits(ValueType::YesNo));
        }
    }

    #[test]
    fn unit_codes_parse_and_nest() {
        let units = Units::embedded();
        let village = UnitRef::parse("00004-012", units).unwrap();
        assert_eq!(village.level(), Level::Village);
        assert_eq!(village.code(), "00004-012");
        assert_eq!(village.province_code(), Some("01"));
        assert_eq!(village.parent().unwrap().code(), "00004");
        assert_eq!(village.parent().unwrap().parent().unwrap().code(), "01");
        assert_eq!(UnitRef::parse("00", units).unwrap(), UnitRef::Central);
        assert_eq!(UnitRef::parse("99999-001", units).unwrap_err(), UnitRefError::UnknownCommune("99999".into()));
        assert_eq!(UnitRef::parse("99", units).unwrap_err(), UnitRefError::UnknownProvince("99".into()));
        // A pre-2025 commune code is named with the code in force, in English and Vietnamese.
        let old = UnitRef::parse("00013-002", units).unwrap_err();
        assert_eq!(
            old,
            UnitRefError::Pre2025 { old: "00013".into(), new: "00004".into(), name: "Phường Ba Đình".into() }
        );
        assert!(old.to_string().contains("now `00004`") && old.message_vi().contains("mã `00004`"), "{old}");
        assert_eq!(UnitRef::parse("00004-000", units).unwrap_err(), UnitRefError::VillageZero("00004-000".into()));
        for bad in ["", "0", "00004-12", "00004_012", "00004-0123", " 00004", "0000a", "00004-01a", "ab"] {
            assert!(matches!(UnitRef::parse(bad, units), Err(UnitRefError::Malformed(_))), "{bad}");
        }
        let hanoi = UnitRef::parse("01", units).unwrap();
        let commune = UnitRef::parse("00004", units).unwrap();
        assert!(UnitRef::Central.contains(&village));
        assert!(hanoi.contains(&village) && hanoi.contains(&commune) && hanoi.contains(&hanoi));
        assert!(commune.contains(&village) && !commune.contains(&hanoi));
        let elsewhere = units.communes().iter().find(|c| c.province_code != "01").unwrap();
        assert!(!hanoi.contains(&UnitRef::parse(&elsewhere.code, units).unwrap()));
        assert_eq!(UnitRef::village_code("00004", 7), "00004-007");
    }

    #[test]
    fn weeks_parse_and_normalise() {
        assert_eq!(parse_week("2025-W38").as_deref(), Some("2025-W38"));
        assert_eq!(parse_week("2026-W53"), Some("2026-W53".to_owned()));
        assert_eq!(parse_week("2000-W01"), Some("2000-W01".to_owned()));
        assert_eq!(parse_week_numbers("2025-W08"), Some((2025, 8)));
        for bad in [
            "2025-W54",
            "2025-W00",
            "2025-38",
            "W38",
            "",
            "25-W38",
            "2025-W038",
            "2025-W3x",
            "1999-W01",
            "2025-W53",
            // Parameters are exact: no spaces, signs, one-digit weeks, lower case or other digits.
            " 2026-W45",
            "2026-W45 ",
            "+2026-W45",
            "2026-W1",
            "2026-w45",
            "2026-W+5",
            "-026-W45",
            "２０２６-W45",
            "2026-W4\u{0665}",
            "12026-W45",
        ] {
            assert_eq!(parse_week(bad), None, "{bad}");
        }
        // A week typed into a report is read as people write it.
        assert_eq!(week_numbers(" 2025-w8 "), Some((2025, 8)));
        assert_eq!(current_week(now()), "2025-W38");
        // Sunday 20:00 UTC is already Monday in Hanoi.
        assert_eq!(current_week(Utc.with_ymd_and_hms(2025, 9, 21, 20, 0, 0).unwrap()), "2025-W39");
    }

    #[test]
    fn json_submission_becomes_rows() {
        let body = r#"{"unit": "00004", "week": "2025-W38",
            "values": {"meetings_held": 3, "village_list_created": true, "relief_amount": "12,5",
                       "notable_issues": "Ngập úng cục bộ", "dialogues_held": null}}"#;
        let rows = intake("01").parse_json_bytes(body.as_bytes()).unwrap();
        assert_eq!(rows.len(), 4);
        let meetings = rows.iter().find(|r| r.indicator == "meetings_held").unwrap();
        assert_eq!(meetings.value, Value::Number(3.0));
        assert_eq!((meetings.level, meetings.source), (Level::Commune, Source::Api));
        assert_eq!(meetings.submitted_by.as_deref(), Some("canbo.badinh"));
        assert_eq!(meetings.submitted_at, now());
        let relief = rows.iter().find(|r| r.indicator == "relief_amount").unwrap();
        assert_eq!(relief.value, Value::Number(12.5));
        let wire = serde_json::to_string(meetings).unwrap();
        assert!(wire.contains("\"value\":3.0") && wire.contains("\"source\":\"api\""), "{wire}");
        assert_eq!(serde_json::from_str::<ReportValue>(&wire).unwrap(), *meetings);
    }

    #[test]
    fn json_submission_reports_every_problem() {
        let errors = intake("01")
            .parse_json(&json!({
                "unit": "00004-001", "week": "2025-W40", "colour": 1,
                "values": {"meetings_held": "abc", "members_registered": -2, "campaign_participation_rate": 120,
                           "village_list_created": "có lẽ", "no_such_thing": 1, "mediation_cases": 1.5,
                           "petitions_answered": 4, "hotspot_emerged": [1]}
            }))
            .unwrap_err();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        for expected in [
            ("colour", "unknown_field"),
            ("week", "future_week"),
            ("values.meetings_held", "type"),
            ("values.members_registered", "negative"),
            ("values.campaign_participation_rate", "out_of_range"),
            ("values.village_list_created", "type"),
            ("values.no_such_thing", "unknown_indicator"),
            ("values.mediation_cases", "not_whole"),
            ("values.petitions_answered", "wrong_level"),
            ("values.hotspot_emerged", "type"),
        ] {
            assert!(found.contains(&expected), "missing {expected:?} in {found:?}");
        }
        assert!(errors.iter().all(|e| e.row.is_none() && e.column.is_none()));
        // Out of scope, malformed week, missing values, unknown unit.
        let elsewhere = Units::embedded().communes().iter().find(|c| c.province_code != "01").unwrap();
        let errors = intake("01").parse_json(&json!({"unit": elsewhere.code, "week": "38", "values": {}})).unwrap_err();
        assert_eq!(codes(&errors), ["out_of_scope", "malformed_week", "empty"]);
        let errors = intake("00004").parse_json(&json!({"unit": "00097", "week": "2025-W38"})).unwrap_err();
        assert_eq!(codes(&errors), ["out_of_scope", "required"]);
        let errors =
            intake("00").parse_json(&json!({"unit": "99999", "week": "2025-W38", "values": {"meetings_held": 1}}));
        assert_eq!(codes(&errors.unwrap_err()), ["unknown_unit"]);
        assert_eq!(codes(&intake("00").parse_json_bytes(b"{").unwrap_err()), ["malformed_json"]);
        assert_eq!(codes(&intake("00").parse_json_bytes(b"\xff").unwrap_err()), ["invalid_utf8"]);
        assert_eq!(codes(&intake("00").parse_json_bytes(b"[]").unwrap_err()), ["type"]);
        assert_eq!(codes(&intake("xx").parse_json_bytes(b"{}").unwrap_err()), ["invalid_scope"]);
    }

    #[test]
    fn yes_no_and_numbers_are_read_as_people_write_them() {
        let catalogue = Catalogue::default_embedded();
        let yes_no = catalogue.indicator("officer_list_updated").unwrap();
        for (text, expected) in [
            ("có", true),
            ("Có", true),
            ("co", true),
            ("x", true),
            ("X", true),
            ("1", true),
            ("yes", true),
            ("TRUE", true),
            ("không", false),
            ("Khong", false),
            ("0", false),
            ("no", false),
            ("false", false),
            ("chưa", false),
        ] {
            let value = parse_value(yes_no, &Cell::Text(text.into())).ok().flatten();
            assert_eq!(value, Some(Value::Bool(expected)), "{text}");
        }
        assert!(parse_value(yes_no, &Cell::Text("có lẽ".into())).is_err());
        assert_eq!(parse_value(yes_no, &Cell::Number(1.0)).ok().flatten(), Some(Value::Bool(true)));
        assert!(parse_value(yes_no, &Cell::Number(2.0)).is_err());
        let count = catalogue.indicator("meetings_held").unwrap();
        let amount = catalogue.indicator("relief_amount").unwrap();
        let rate = catalogue.indicator("campaign_participation_rate").unwrap();
        assert_eq!(number(count, "12"), Ok(12.0));
        assert_eq!(number(count, "1.234"), Ok(1234.0));
        assert_eq!(number(count, "1,234,567"), Ok(1_234_567.0));
        assert_eq!(number(count, "1 234"), Ok(1234.0));
        assert_eq!(number(count, "abc"), Err("type"));
        assert_eq!(number(count, "-1"), Err("negative"));
        assert_eq!(number(count, "1,5"), Err("not_whole"));
        assert_eq!(number(amount, "12,5"), Ok(12.5));
        assert_eq!(number(amount, "1.234,5"), Ok(1234.5));
        assert_eq!(number(amount, "1,234.5"), Ok(1234.5));
        assert_eq!(number(amount, "0.500"), Ok(0.5));
        assert_eq!(number(amount, "1.500"), Err("ambiguous_number"));
        assert_eq!(number(amount, "1.2.3,4.5"), Err("type"));
        assert_eq!(number(rate, "68,5%"), Ok(68.5));
        assert_eq!(number(rate, "100"), Ok(100.0));
        assert_eq!(number(rate, "100,1"), Err("out_of_range"));
        assert!(parse_value(count, &Cell::Number(f64::NAN)).is_err());
        assert!(parse_value(count, &Cell::Number(1e15)).is_err());
        assert!(parse_value(count, &Cell::Bool(true)).is_err());
        assert!(parse_value(count, &Cell::Error("#DIV/0!".into())).is_err());
        assert_eq!(parse_value(count, &Cell::Empty).ok().flatten(), None);
    }

    /// The number a text cell reads as for `indicator`, or the code of its refusal.
    fn number(indicator: &Indicator, text: &str) -> Result<f64, &'static str> {
        match parse_value(indicator, &Cell::Text(text.into())) {
            Ok(Some(Value::Number(n))) => Ok(n),
            Ok(other) => panic!("{other:?}"),
            Err(problem) => Err(problem.code),
        }
    }

    #[test]
    fn report_numbers_take_white_space_only_around_them_and_between_thousands() {
        let catalogue = Catalogue::default_embedded();
        let count = catalogue.indicator("meetings_held").unwrap();
        let amount = catalogue.indicator("relief_amount").unwrap();
        let rate = catalogue.indicator("campaign_participation_rate").unwrap();
        // What staff type: spaces around the number, a space or a no-break space between groups.
        for (text, expected) in [
            ("  12 ", 12.0),
            ("\t12\r\n", 12.0),
            ("1 234", 1234.0),
            ("1\u{a0}234\u{a0}567", 1_234_567.0),
            ("12\u{202f}345", 12_345.0),
            ("+1 234", 1234.0),
        ] {
            assert_eq!(number(count, text), Ok(expected), "{text:?}");
        }
        assert_eq!(number(amount, "1 234,5"), Ok(1234.5));
        assert_eq!(number(amount, "1 234.500"), Ok(1234.5), "after spaces group, `.` is the decimal mark");
        assert_eq!(number(rate, "68,5 %"), Ok(68.5));
        assert_eq!(number(rate, "68,5\u{a0}%"), Ok(68.5));
        // White space that groups nothing: refused, never joined into a number nobody typed.
        for text in [
            "1 2 3 4",
            "3\n4",
            "3\t4",
            "3\r\n4",
            "12 34",
            "1234 567",
            "1  234",
            "1 234 56",
            "- 5",
            "1,5 5",
            "1 234\u{2003}567",
        ] {
            assert_eq!(number(count, text), Err("misplaced_space"), "{text:?}");
        }
        assert_eq!(number(rate, "68,5  %"), Err("misplaced_space"));
        // Words with spaces are not numbers with misplaced spaces.
        assert_eq!(number(count, "ba mươi"), Err("type"));
        assert_eq!(number(count, "3 người"), Err("type"));
        // The message names the value and the white space, in Vietnamese.
        let message = |text: &str| parse_value(count, &Cell::Text(text.into())).err().unwrap().message;
        assert!(message("1 2 3 4").starts_with("`1 2 3 4` có dấu cách giữa các chữ số"), "{}", message("1 2 3 4"));
        assert!(message("3\t4").contains("dấu tab"), "{}", message("3\t4"));
        assert!(message("3\r\n4").contains("dấu xuống dòng"), "{}", message("3\r\n4"));
        assert!(message("1 234\u{2003}567").contains("U+2003"), "{}", message("1 234\u{2003}567"));
    }

    #[test]
    fn supersession_keeps_the_latest_row() {
        let at = |minute: u32| Utc.with_ymd_and_hms(2025, 9, 19, 8, minute, 0).unwrap();
        let row = |unit: &str, indicator: &str, value: f64, minute: u32| ReportValue {
            unit_code: unit.to_owned(),
            level: Level::of_code(unit).unwrap(),
            week: "2025-W38".to_owned(),
            indicator: indicator.to_owned(),
            value: Value::Number(value),
            submitted_at: at(minute),
            submitted_by: None,
            source: Source::Api,
        };
        let rows = vec![
            row("00004", "meetings_held", 3.0, 10),
            row("00004", "meetings_held", 5.0, 30),
            row("00004", "meetings_held", 4.0, 20),
            row("00004", "people_reached", 100.0, 5),
            row("00004-001", "meetings_held", 1.0, 1),
            row("00004-001", "meetings_held", 2.0, 1),
        ];
        let current = latest_values(rows);
        let values: Vec<(&str, &str, f64)> = current
            .iter()
            .map(|r| (r.unit_code.as_str(), r.indicator.as_str(), r.value.as_number().unwrap()))
            .collect();
        assert_eq!(
            values,
            [("00004", "meetings_held", 5.0), ("00004", "people_reached", 100.0), ("00004-001", "meetings_held", 2.0)]
        );
    }

    #[test]
    fn arrow_round_trip() {
        let base = ReportValue {
            unit_code: "00004-012".to_owned(),
            level: Level::Village,
            week: "2025-W38".to_owned(),
            indicator: "meetings_held".to_owned(),
            value: Value::Number(3.0),
            submitted_at: now(),
            submitted_by: Some("a".to_owned()),
            source: Source::Xlsx,
        };
        let rows = vec![
            base.clone(),
            ReportValue {
                indicator: "officer_list_updated".into(),
                value: Value::Bool(false),
                submitted_by: None,
                ..base.clone()
            },
            ReportValue {
                indicator: "notable_issues".into(),
                value: Value::Text("Ngập".into()),
                source: Source::Csv,
                ..base
            },
        ];
        let batch = to_record_batch(&rows).unwrap();
        assert_eq!(batch.schema(), arrow_schema());
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(from_record_batch(&batch).unwrap(), rows);
        let without_source = batch.project(&[0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert!(matches!(from_record_batch(&without_source), Err(SchemaError::MissingColumn(_))));
    }

    #[test]
    fn log_rows_are_revalidated() {
        let good = ReportValue {
            unit_code: "00004-012".to_owned(),
            level: Level::Village,
            week: "2025-W38".to_owned(),
            indicator: "meetings_held".to_owned(),
            value: Value::Number(3.0),
            submitted_at: now(),
            submitted_by: None,
            source: Source::Api,
        };
        assert!(intake("00").validate_row(&good).is_empty());
        let bad = ReportValue {
            level: Level::Commune,
            week: "2025-W8".to_owned(),
            indicator: "petitions_answered".to_owned(),
            value: Value::Bool(true),
            ..good
        };
        assert_eq!(
            codes(&intake("00").validate_row(&bad)),
            ["level_mismatch", "malformed_week", "wrong_level", "type"]
        );
    }

    fn csv_outcome(text: &str, scope: &str, accept_partial: bool) -> SheetOutcome {
        intake(scope).parse_csv(text.as_bytes(), accept_partial)
    }

    #[test]
    fn csv_sheet_reads_codes_and_vietnamese_headers() {
        let text = "\u{feff}unit_code;unit_name;week;Số cuộc họp, hội nghị đã tổ chức;officer_list_updated;relief_amount\n\
                    00004-001;Thôn 1;2025-W38;3;có;1,5\n\
                    00004-002;Thôn 2;2025-W38;;;\n\
                    00004-003;Thôn 3;2025-W38;0;x;\n\
                    00004;Phường Ba Đình;2025-W38;2;không;10\n";
        let outcome = csv_outcome(text, "00004", false);
        assert_eq!(outcome.errors, []);
        assert_eq!((outcome.data_rows, outcome.rejected_rows), (3, 0));
        assert_eq!(outcome.rows.len(), 8);
        assert!(outcome.rows.iter().all(|r| r.source == Source::Csv && r.week == "2025-W38"));
        let find = |unit: &str, indicator: &str| {
            outcome.rows.iter().find(|r| r.unit_code == unit && r.indicator == indicator).map(|r| r.value.clone())
        };
        assert_eq!(find("00004-001", "meetings_held"), Some(Value::Number(3.0)));
        assert_eq!(find("00004-001", "relief_amount"), Some(Value::Number(1.5)));
        assert_eq!(find("00004-003", "officer_list_updated"), Some(Value::Bool(true)));
        assert_eq!(find("00004", "officer_list_updated"), Some(Value::Bool(false)));
        assert_eq!(find("00004-002", "meetings_held"), None);
    }

    #[test]
    fn csv_sheet_errors_name_row_and_column_and_partial_keeps_good_rows() {
        let elsewhere = Units::embedded().communes().iter().find(|c| c.province_code != "01").unwrap();
        let text = format!(
            "unit_code,week,meetings_held,village_list_created,colour,,petitions_answered\n\
             00004-001,2025-W38,abc,,,,\n\
             00004-002,2025-W38,2,,,,\n\
             00004-003,2025-W40,1,,,,\n\
             {}-001,2025-W38,1,,,,\n\
             00004-001,2025-W38,1,,,,\n\
             00004-004,2025-W38,-1,,,,\n\
             00004,2025-W38,,có,,,4\n\
             00004-005,2025-W38,1,có,red,x,\n\
             ,2025-W38,1,,,,\n\
             00004-006,2025-W38,1,,,,\n",
            elsewhere.code
        );
        let outcome = csv_outcome(&text, "01", false);
        assert!(outcome.rows.is_empty(), "all or nothing");
        let found: Vec<(Option<usize>, Option<&str>, &str)> =
            outcome.errors.iter().map(|e| (e.row, e.column.as_deref(), e.code.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(1), Some("E"), "unknown_column"),
                (Some(2), Some("C"), "type"),
                (Some(4), Some("B"), "future_week"),
                (Some(5), Some("A"), "out_of_scope"),
                (Some(6), None, "duplicate_row"),
                (Some(7), Some("C"), "negative"),
                (Some(9), Some("F"), "unnamed_column"),
                (Some(9), Some("D"), "wrong_level"),
                (Some(10), Some("A"), "required"),
            ]
        );
        assert_eq!(outcome.errors[0].field, "colour");
        assert!(outcome.errors[4].message.contains("dòng 2"), "{}", outcome.errors[4].message);
        // Row 8 (the commune's own row) is fine: petitions_answered is reported by communes.
        assert_eq!((outcome.data_rows, outcome.rejected_rows), (10, 7));
        let partial = csv_outcome(&text, "01", true);
        assert_eq!(partial.errors, outcome.errors);
        let units: Vec<&str> = partial.rows.iter().map(|r| r.unit_code.as_str()).collect();
        assert_eq!(units, ["00004-002", "00004", "00004", "00004-006"]);
    }

    #[test]
    fn csv_sheet_without_unit_or_week_column_is_refused() {
        let outcome = csv_outcome("meetings_held\n1\n", "00", false);
        assert_eq!(codes(&outcome.errors), ["missing_column", "missing_column"]);
        assert_eq!(codes(&csv_outcome("", "00", false).errors), ["empty_sheet"]);
        assert_eq!(codes(&intake("00").parse_csv(b"unit_code,week\n\xff\n", false).errors), ["invalid_utf8"]);
        let outcome = csv_outcome("unit_code,week,meetings_held,Số cuộc họp, hội nghị đã tổ chức\n", "00", false);
        // A quoted header keeps its comma; unquoted, the name splits into unknown columns.
        assert!(codes(&outcome.errors).contains(&"unknown_column"));
        let outcome = csv_outcome("unit_code,week,meetings_held,\"Số cuộc họp, hội nghị đã tổ chức\"\n", "00", false);
        assert_eq!(codes(&outcome.errors), ["duplicate_column"]);
    }

    fn village_list() -> Vec<Village> {
        (1..=3)
            .map(|n| Village { code: UnitRef::village_code("00004", n), name: format!("Tổ dân phố số {n}") })
            .collect()
    }

    #[test]
    fn template_reads_back_with_calamine() {
        use calamine::Reader;
        let catalogue = Catalogue::default_embedded();
        let mut villages = village_list();
        villages.push(Village { code: "00097-001".into(), name: "Thôn khác".into() });
        let bytes = template_xlsx(catalogue, Units::embedded(), "00004", Some("2025-W38"), &villages).unwrap();
        let mut workbook = calamine::Xlsx::new(Cursor::new(bytes.clone())).unwrap();
        assert_eq!(workbook.sheet_names(), [DATA_SHEET, GUIDE_SHEET]);
        let data = workbook.worksheet_range(DATA_SHEET).unwrap();
        let header: Vec<String> = data.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
        let expected: Vec<&str> = ["unit_code", "unit_name", "week"]
            .into_iter()
            .chain(sheet_indicators(catalogue, Level::Commune).iter().map(|i| i.code.as_str()))
            .collect();
        assert_eq!(header, expected);
        let units: Vec<String> = data.rows().skip(1).map(|row| row[0].to_string()).collect();
        assert_eq!(units, ["00004", "00004-001", "00004-002", "00004-003"]);
        assert_eq!(data.get((1, 1)).unwrap().to_string(), "Phường Ba Đình");
        assert_eq!(data.get((2, 2)).unwrap().to_string(), "2025-W38");
        let guide = workbook.worksheet_range(GUIDE_SHEET).unwrap();
        let meetings = guide.rows().find(|row| row[0] == "meetings_held").unwrap();
        assert_eq!(meetings[1].to_string(), "Số cuộc họp, hội nghị đã tổ chức");
        assert_eq!(meetings[2].to_string(), "cuộc");
        assert_eq!(meetings[3].to_string(), "số nguyên không âm");
        // The blank template reads back as a sheet with nothing reported.
        let outcome = intake("00004").parse_xlsx(&bytes, false);
        assert_eq!((outcome.errors.len(), outcome.rows.len(), outcome.data_rows), (0, 0, 0));
        // The village template of a province lists its communes.
        let province = template_xlsx(catalogue, Units::embedded(), "01", None, &[]).unwrap();
        let mut workbook = calamine::Xlsx::new(Cursor::new(province)).unwrap();
        let rows = workbook.worksheet_range(DATA_SHEET).unwrap().height();
        let hanoi = Units::embedded().province("01").unwrap().commune_count as usize;
        assert_eq!(rows, 1 + 1 + hanoi);
        assert!(template_xlsx(catalogue, Units::embedded(), "99999", None, &[]).is_err());
    }

    #[test]
    fn filled_xlsx_parses_with_row_and_column_errors() {
        let catalogue = Catalogue::default_embedded();
        let filled = |unit: &str, values: Vec<(&str, Value)>| SheetRow {
            unit_code: unit.to_owned(),
            unit_name: String::new(),
            week: "2025-W38".to_owned(),
            values: values.into_iter().map(|(code, value)| (code.to_owned(), value)).collect(),
        };
        let rows = vec![
            filled(
                "00004",
                vec![
                    ("village_list_created", Value::Bool(true)),
                    ("villages_registered", Value::Number(3.0)),
                    ("notable_issues", Value::Text("Ngập úng cục bộ".into())),
                ],
            ),
            filled("00004-001", vec![("meetings_held", Value::Number(2.0)), ("hotspot_emerged", Value::Bool(false))]),
            filled("00004-002", vec![]),
            filled("00004-003", vec![("relief_amount", Value::Number(1.25))]),
        ];
        let bytes = report_xlsx(catalogue, Level::Commune, &rows).unwrap();
        let outcome = intake("00004").parse_xlsx(&bytes, false);
        assert_eq!(outcome.errors, []);
        assert_eq!((outcome.data_rows, outcome.rows.len()), (3, 6));
        assert!(outcome.rows.contains(&ReportValue {
            unit_code: "00004-003".into(),
            level: Level::Village,
            week: "2025-W38".into(),
            indicator: "relief_amount".into(),
            value: Value::Number(1.25),
            submitted_at: now(),
            submitted_by: Some("canbo.badinh".into()),
            source: Source::Xlsx,
        }));
        let bad = vec![
            filled("00004-001", vec![("meetings_held", Value::Text("ba".into()))]),
            filled("00004-002", vec![("villages_registered", Value::Number(1.0))]),
        ];
        let bytes = report_xlsx(catalogue, Level::Commune, &bad).unwrap();
        let outcome = intake("00004").parse_xlsx(&bytes, false);
        let found: Vec<(Option<usize>, Option<&str>, &str, &str)> =
            outcome.errors.iter().map(|e| (e.row, e.column.as_deref(), e.field.as_str(), e.code.as_str())).collect();
        let meetings_column = column_letter(
            3 + sheet_indicators(catalogue, Level::Commune).iter().position(|i| i.code == "meetings_held").unwrap(),
        );
        let registered_column = column_letter(
            3 + sheet_indicators(catalogue, Level::Commune)
                .iter()
                .position(|i| i.code == "villages_registered")
                .unwrap(),
        );
        assert_eq!(
            found,
            [
                (Some(2), Some(meetings_column.as_str()), "meetings_held", "type"),
                (Some(3), Some(registered_column.as_str()), "villages_registered", "wrong_level"),
            ]
        );
        assert!(outcome.rows.is_empty());
        assert_eq!(codes(&intake("00").parse_xlsx(b"not a zip", false).errors), ["malformed_file"]);
    }

    #[test]
    fn a_value_far_beyond_the_sheet_refuses_the_upload_naming_the_cell() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet().set_name(DATA_SHEET).unwrap();
        for (column, heading) in ["unit_code", "week", "meetings_held"].iter().enumerate() {
            sheet.write_string(0, column as u16, *heading).unwrap();
        }
        for (column, value) in ["00004-001", "2025-W38"].iter().enumerate() {
            sheet.write_string(1, column as u16, *value).unwrap();
        }
        sheet.write_number(1, 2, 2.0).unwrap();
        sheet.write_string(1_048_575, 16_383, "x").unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        for partial in [false, true] {
            let outcome = intake("00004").parse_xlsx(&bytes, partial);
            let found: Vec<(Option<usize>, Option<&str>, &str)> =
                outcome.errors.iter().map(|e| (e.row, e.column.as_deref(), e.code.as_str())).collect();
            assert_eq!(found, [(Some(1_048_576), Some("XFD"), "too_many_columns")]);
            assert!(outcome.errors[0].message.contains("`XFD1048576`"), "{}", outcome.errors[0].message);
            assert!(outcome.rows.is_empty(), "nothing is accepted from a file not read to its end");
        }
    }

    #[test]
    fn reports_refuse_unregistered_villages_text_as_numbers_and_open_quotes() {
        let known: HashSet<String> = ["00004-001".to_owned()].into();
        let with_villages = Intake { villages: Some(&known), ..intake("00") };
        let body = |unit: &str| json!({"unit": unit, "week": "2025-W38", "values": {"meetings_held": 3}});
        assert_eq!(with_villages.parse_json(&body("00004-001")).unwrap().len(), 1);
        let errors = with_villages.parse_json(&body("00004-999")).unwrap_err();
        assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), ("unit", "unknown_village"));
        // The same row of a sheet is named by row and column.
        let outcome = with_villages.parse_csv(b"unit_code,week,meetings_held\n00004-999,2025-W38,3\n", false);
        assert_eq!(
            outcome.errors.iter().map(|e| (e.row, e.column.as_deref(), e.code.as_str())).collect::<Vec<_>>(),
            [(Some(2), Some("A"), "unknown_village")]
        );
        assert!(outcome.rows.is_empty());

        let text = json!({"unit": "00004", "week": "2025-W38", "values": {"notable_issues": 5}});
        let errors = intake("00").parse_json(&text).unwrap_err();
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code.as_str()),
            ("values.notable_issues", "type"),
            "{errors:?}"
        );
        let flag = json!({"unit": "00004", "week": "2025-W38", "values": {"notable_issues": true}});
        assert_eq!(codes(&intake("00").parse_json(&flag).unwrap_err()), ["type"]);

        // A quote never closed would swallow the rest of the file into one cell.
        let outcome = csv_outcome("unit_code,week,meetings_held\n\"00004,2025-W38,3\n", "00", false);
        assert_eq!(
            outcome.errors.iter().map(|e| (e.row, e.code.as_str())).collect::<Vec<_>>(),
            [(Some(2), "malformed_file")]
        );
        assert_eq!(outcome.data_rows, 0);
        // Quotes closed, doubled inside a field, or in the middle of a field are fine.
        assert_eq!(unterminated_quote("a,b\n\"x, \"\"y\"\"\",2\n", b','), None);
        assert_eq!(unterminated_quote("a,b\nc\"d,2\n", b','), None);
        assert_eq!(unterminated_quote("a;b\n1;2\n3;\"4\n", b';'), Some(3));
    }

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }
}
