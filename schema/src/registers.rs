//! Registers of the Front's officers and members (danh sách cán bộ, hội viên) and the register
//! of villages and residential groups (thôn, tổ dân phố) below the communes.
//!
//! # Records
//!
//! Everything a register holds is an entry on the log (`voxpop.registers`), one JSON
//! [`RegisterRecord`] per log record, tagged by `kind`:
//!
//! - a [`PersonEntry`] (`"kind": "person"`): one person in the officer or the member register of
//!   one unit (the central committee, a province, a 2025 commune or a village `ccccc-nnn`), with
//!   their role and term. Name, phone and birth year are personal data, and so is a person id
//!   that is an ID number: readers without the right to see them get [`PersonEntry::masked`].
//! - a [`VillageEntry`] (`"kind": "village"`): a village or residential group a commune
//!   registered, created through the API or an import. The CSV register of the data directory
//!   (`reference/villages.csv`) and these entries together are the villages register.
//!
//! # One table, a `kind` column
//!
//! Both kinds go to one Delta table, [`TABLE_NAME`], partitioned by [`PARTITION_COLUMN`]
//! (`person` or `village`), so that one commit holds a batch of both and the log positions it
//! consumed (exactly once needs a single commit). Columns that do not apply to a kind are null
//! ([`arrow_schema`]).
//!
//! # History and supersession
//!
//! Entries are never updated in place: a change, an end of term or a removal (`removed: true`)
//! is a new entry. When read, the entry with the latest `submitted_at` wins, per
//! (register, unit, person id) for people ([`latest_people`]) and per village code for villages
//! ([`latest_villages`]); the lake keeps the history. The unit is part of a person's key because
//! person ids are given by the unit (often its own numbering): the same id in two units is two
//! people, and no unit can overwrite another's entries. A transfer is a removal in the old unit
//! and an entry in the new one.
//!
//! # Intake
//!
//! [`RegisterIntake`] validates entries sent as JSON or as spreadsheets (XLSX, CSV; one row per
//! person) against the reference units, the villages register, the sender's scope and the clock,
//! and reports every problem at once as [`RegisterError`]s that name the field and, for
//! spreadsheets, the row and column. Messages are in Vietnamese, for the staff who keep the lists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Int32Array, Int32Builder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::cells::{Cell, column_letter, shorten};
use crate::error::SchemaError;
use crate::reports::{Level, ReportError, UnitRef, Village};
use crate::text::{fold, nfc};
use crate::units::Units;

/// Name of the Delta table under the lake directory.
pub const TABLE_NAME: &str = "register_entries";
/// The partition column: `person` or `village`.
pub const PARTITION_COLUMN: &str = "kind";
/// Longest accepted name (of a person or a village), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted role, in characters.
pub const MAX_ROLE_CHARS: usize = 100;
/// Longest accepted person id, in characters.
pub const MAX_PERSON_ID_CHARS: usize = 64;
/// Most entries in one JSON request or one spreadsheet.
pub const MAX_ENTRIES: usize = 200_000;
/// Highest village number of a commune (`ccccc-999`).
pub const MAX_VILLAGE_NUMBER: u16 = 999;
/// The earliest date a register accepts, for terms and for the periods of a summary: the Front
/// was founded in 1930, so an earlier date is a typing error (or a year read as `-0001`).
pub const EARLIEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1930, 1, 1) {
    Some(date) => date,
    None => panic!("1930-01-01 is a date"),
};
/// The latest date a register accepts: far beyond any term (terms are five years), and far
/// enough from the end of the calendar that date arithmetic on it cannot overflow.
pub const LATEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2100, 12, 31) {
    Some(date) => date,
    None => panic!("2100-12-31 is a date"),
};

/// One problem with a submitted register entry: the same shape as a weekly report's problems
/// (field, code, Vietnamese message; row and column letter for spreadsheets).
pub type RegisterError = ReportError;

/// Vietnam's time zone (UTC+7): dates of the period and "today" are taken there.
fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("a valid offset")
}

/// The day a moment falls on in Vietnam.
pub fn vietnam_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&vietnam()).date_naive()
}

// ---------------------------------------------------------------------------------------------
// Kinds of registers and entries

/// Which register a person is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Register {
    /// Officers of the unit's committee (cán bộ): chair, vice-chairs, members of the committee,
    /// heads of the Front's work in villages.
    Officer,
    /// Members (hội viên) of the unit.
    Member,
}

impl Register {
    pub const ALL: [Register; 2] = [Register::Officer, Register::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Register::Officer => "officer",
            Register::Member => "member",
        }
    }

    /// `officer`, `member`, or what staff write in a sheet (`cán bộ`, `hội viên`, any case, with
    /// or without diacritics).
    pub fn parse(value: &str) -> Option<Register> {
        match header_key(value).as_str() {
            "officer" | "officers" | "can bo" => Some(Register::Officer),
            "member" | "members" | "hoi vien" => Some(Register::Member),
            _ => None,
        }
    }

    /// What staff call the register, e.g. `cán bộ`.
    pub fn label_vi(self) -> &'static str {
        match self {
            Register::Officer => "cán bộ",
            Register::Member => "hội viên",
        }
    }
}

/// A person's gender, when the unit records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Other,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
        }
    }

    /// `male`/`female`/`other` or `Nam`/`Nữ`/`Khác`.
    pub fn parse(value: &str) -> Option<Gender> {
        match header_key(value).as_str() {
            "male" | "nam" | "m" => Some(Gender::Male),
            "female" | "nu" | "f" => Some(Gender::Female),
            "other" | "khac" => Some(Gender::Other),
            _ => None,
        }
    }
}

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntrySource {
    /// The JSON API.
    Api,
    /// An uploaded XLSX workbook.
    Xlsx,
    /// An uploaded CSV file.
    Csv,
    /// `voxpop import --villages` and other imports from files.
    Import,
}

impl EntrySource {
    pub const ALL: [EntrySource; 4] = [EntrySource::Api, EntrySource::Xlsx, EntrySource::Csv, EntrySource::Import];

    pub fn as_str(self) -> &'static str {
        match self {
            EntrySource::Api => "api",
            EntrySource::Xlsx => "xlsx",
            EntrySource::Csv => "csv",
            EntrySource::Import => "import",
        }
    }

    pub fn parse(value: &str) -> Option<EntrySource> {
        EntrySource::ALL.into_iter().find(|source| source.as_str() == value)
    }
}

/// One person in one register of one unit, as of `submitted_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonEntry {
    /// A UUID v7 given at intake.
    pub entry_id: Uuid,
    pub register: Register,
    /// The id the unit gives the person (a hash of the national ID, the unit's own number):
    /// stable across entries about the same person in the same unit.
    pub person_id: String,
    /// `00`, a province, a 2025 commune or a registered village (`ccccc-nnn`).
    pub unit: String,
    /// Personal data.
    pub full_name: String,
    /// e.g. `Chủ tịch`, `Phó Chủ tịch`, `Ủy viên`, `Trưởng ban công tác Mặt trận`, `Hội viên`.
    pub role: String,
    #[serde(default)]
    pub gender: Option<Gender>,
    /// Personal data.
    #[serde(default)]
    pub birth_year: Option<i32>,
    /// Personal data.
    #[serde(default)]
    pub phone: Option<String>,
    pub term_start: NaiveDate,
    /// The last day of the term; `None` while it runs.
    #[serde(default)]
    pub term_end: Option<NaiveDate>,
    /// The person left the register (a removal keeps the history).
    #[serde(default)]
    pub removed: bool,
    /// The token id (or unit) that sent the entry.
    #[serde(default)]
    pub submitted_by: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub source: EntrySource,
}

impl PersonEntry {
    /// Whether the person is in the register on `date`: not removed and within the term.
    pub fn active_on(&self, date: NaiveDate) -> bool {
        !self.removed && self.term_start <= date && self.term_end.is_none_or(|end| end >= date)
    }

    /// The entry as a reader without access to personal data sees it: the name reduced to its
    /// initials, all but the last digits of the phone hidden, no birth year, and the person id
    /// masked by [`crate::privacy::mask_person_id`] (a national ID number is often used as the id,
    /// written in any way: "079200009999" -> "*********999", "079.200.009.999" ->
    /// "***.***.***.999", while a unit's own numbering such as "BD-001" stays readable). The SQL
    /// view `register_entries` (`queries/src/sql.rs`) masks the same columns with the same
    /// functions, so both paths show the same entry.
    pub fn masked(&self) -> PersonEntry {
        let contact = crate::privacy::mask_contact(&crate::Contact {
            name: Some(self.full_name.clone()),
            phone: None,
            email: None,
        });
        PersonEntry {
            person_id: crate::privacy::mask_person_id(&self.person_id),
            full_name: contact.name.unwrap_or_default(),
            phone: self.phone.as_deref().map(crate::privacy::mask_phone),
            birth_year: None,
            ..self.clone()
        }
    }

    fn key(&self) -> (Register, &str, &str) {
        (self.register, self.unit.as_str(), self.person_id.as_str())
    }
}

/// A village or residential group a commune registered (or changed, or removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VillageEntry {
    pub entry_id: Uuid,
    /// `ccccc-nnn`: the commune's code, a dash and the village's number.
    pub code: String,
    /// e.g. `Thôn Đông`, `Tổ dân phố số 5`.
    pub name: String,
    /// The commune the village belongs to (the first five digits of `code`).
    pub commune_code: String,
    #[serde(default)]
    pub removed: bool,
    #[serde(default)]
    pub submitted_by: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub source: EntrySource,
}

impl VillageEntry {
    /// The village as the reports' organisation tree takes it.
    pub fn village(&self) -> Village {
        Village { code: self.code.clone(), name: self.name.clone() }
    }
}

/// One record of `voxpop.registers` and one row of [`TABLE_NAME`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RegisterRecord {
    Person(PersonEntry),
    Village(VillageEntry),
}

impl RegisterRecord {
    /// The partition value: `person` or `village`.
    pub fn kind(&self) -> &'static str {
        match self {
            RegisterRecord::Person(_) => "person",
            RegisterRecord::Village(_) => "village",
        }
    }

    /// The unit the entry is about (the person's unit, the village's code): the log key, so that
    /// the entries of one unit keep their order.
    pub fn unit_code(&self) -> &str {
        match self {
            RegisterRecord::Person(person) => &person.unit,
            RegisterRecord::Village(village) => &village.code,
        }
    }

    /// The person entry, for a person.
    pub fn person(&self) -> Option<&PersonEntry> {
        match self {
            RegisterRecord::Person(person) => Some(person),
            RegisterRecord::Village(_) => None,
        }
    }

    pub fn submitted_at(&self) -> DateTime<Utc> {
        match self {
            RegisterRecord::Person(person) => person.submitted_at,
            RegisterRecord::Village(village) => village.submitted_at,
        }
    }
}

/// The current entries among `rows`: per (register, unit, person id) the one with the latest
/// `submitted_at` (on a tie, the later one in `rows`), removed ones included (callers decide).
/// Sorted by unit, register and person id.
pub fn latest_people(rows: impl IntoIterator<Item = PersonEntry>) -> Vec<PersonEntry> {
    let mut rows: Vec<PersonEntry> = rows.into_iter().collect();
    // Stable: rows with the same key and time keep their order, so the later one wins below.
    rows.sort_by(|a, b| {
        (a.unit.as_str(), a.register, a.person_id.as_str(), a.submitted_at).cmp(&(
            b.unit.as_str(),
            b.register,
            b.person_id.as_str(),
            b.submitted_at,
        ))
    });
    let mut current: Vec<PersonEntry> = Vec::with_capacity(rows.len());
    for row in rows {
        match current.last_mut() {
            Some(last) if last.key() == row.key() => *last = row,
            _ => current.push(row),
        }
    }
    current
}

/// The current entry per village code among `rows` (latest `submitted_at`; on a tie the later
/// one), removed ones included. Sorted by code.
pub fn latest_villages(rows: impl IntoIterator<Item = VillageEntry>) -> Vec<VillageEntry> {
    let mut rows: Vec<VillageEntry> = rows.into_iter().collect();
    rows.sort_by(|a, b| (a.code.as_str(), a.submitted_at).cmp(&(b.code.as_str(), b.submitted_at)));
    let mut current: Vec<VillageEntry> = Vec::with_capacity(rows.len());
    for row in rows {
        match current.last_mut() {
            Some(last) if last.code == row.code => *last = row,
            _ => current.push(row),
        }
    }
    current
}

/// The villages register: the CSV register of the data directory with the entries of the lake
/// on top. A lake entry wins over a CSV row of the same code (a rename); removed villages are
/// dropped. Sorted by code.
pub fn merge_villages(csv: &[Village], lake: &[VillageEntry]) -> Vec<Village> {
    let mut merged: BTreeMap<String, Option<String>> =
        csv.iter().map(|village| (village.code.clone(), Some(village.name.clone()))).collect();
    for entry in latest_villages(lake.iter().cloned()) {
        merged.insert(entry.code, (!entry.removed).then_some(entry.name));
    }
    merged.into_iter().filter_map(|(code, name)| name.map(|name| Village { code, name })).collect()
}

// ---------------------------------------------------------------------------------------------
// Arrow

/// The Arrow schema of [`TABLE_NAME`]. `unit_code` is the person's unit or the village's code;
/// `name` the person's full name or the village's name; person columns are null for villages.
/// `province_code` and `commune_code` (null above them) let readers narrow to a scope.
pub fn arrow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            Arc::new(Schema::new(vec![
                Field::new(PARTITION_COLUMN, DataType::Utf8, false),
                Field::new("entry_id", DataType::Utf8, false),
                Field::new("unit_code", DataType::Utf8, false),
                Field::new("level", DataType::Utf8, false),
                Field::new("province_code", DataType::Utf8, true),
                Field::new("commune_code", DataType::Utf8, true),
                Field::new("register", DataType::Utf8, true),
                Field::new("person_id", DataType::Utf8, true),
                Field::new("name", DataType::Utf8, false),
                Field::new("role", DataType::Utf8, true),
                Field::new("gender", DataType::Utf8, true),
                Field::new("birth_year", DataType::Int32, true),
                Field::new("phone", DataType::Utf8, true),
                Field::new("term_start", DataType::Date32, true),
                Field::new("term_end", DataType::Date32, true),
                Field::new("removed", DataType::Boolean, false),
                Field::new("submitted_at", timestamp, false),
                Field::new("submitted_by", DataType::Utf8, true),
                Field::new("source", DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// Days since 1970-01-01, as Arrow's `Date32` stores a date.
fn epoch_days(date: NaiveDate) -> i32 {
    const UNIX_EPOCH_FROM_CE: i32 = 719_163;
    date.num_days_from_ce() - UNIX_EPOCH_FROM_CE
}

fn from_epoch_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(i64::from(days)))
}

/// The level, province and commune of a unit code, from its shape and the reference lists.
fn placement(code: &str) -> (Level, Option<String>, Option<String>) {
    let units = Units::embedded();
    match Level::of_code(code) {
        Some(Level::Province) => (Level::Province, Some(code.to_owned()), None),
        Some(level @ (Level::Commune | Level::Village)) => {
            let commune = &code[..5];
            let province = units.commune(commune).map(|c| c.province_code.clone());
            (level, province, Some(commune.to_owned()))
        }
        _ => (Level::Central, None, None),
    }
}

/// Builds one Arrow batch in [`arrow_schema`] from register records.
pub fn to_record_batch<R: std::borrow::Borrow<RegisterRecord>>(rows: &[R]) -> Result<RecordBatch, SchemaError> {
    let rows: Vec<&RegisterRecord> = rows.iter().map(std::borrow::Borrow::borrow).collect();
    let n = rows.len();
    let placements: Vec<_> = rows.iter().map(|row| placement(row.unit_code())).collect();
    let person = RegisterRecord::person;
    let strings = |f: &dyn Fn(usize, &RegisterRecord) -> Option<String>| -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(n, n * 16);
        for (i, &row) in rows.iter().enumerate() {
            builder.append_option(f(i, row));
        }
        Arc::new(builder.finish())
    };
    let mut birth_years = Int32Builder::with_capacity(n);
    let mut term_starts = Date32Builder::with_capacity(n);
    let mut term_ends = Date32Builder::with_capacity(n);
    let mut removed = BooleanBuilder::with_capacity(n);
    for &row in &rows {
        let person = person(row);
        birth_years.append_option(person.and_then(|p| p.birth_year));
        term_starts.append_option(person.map(|p| epoch_days(p.term_start)));
        term_ends.append_option(person.and_then(|p| p.term_end).map(epoch_days));
        removed.append_value(match row {
            RegisterRecord::Person(person) => person.removed,
            RegisterRecord::Village(village) => village.removed,
        });
    }
    let columns: Vec<ArrayRef> = vec![
        strings(&|_, r| Some(r.kind().to_owned())),
        strings(&|_, r| {
            Some(match r {
                RegisterRecord::Person(p) => p.entry_id.to_string(),
                RegisterRecord::Village(v) => v.entry_id.to_string(),
            })
        }),
        strings(&|_, r| Some(r.unit_code().to_owned())),
        strings(&|i, _| Some(placements[i].0.as_str().to_owned())),
        strings(&|i, _| placements[i].1.clone()),
        strings(&|i, _| placements[i].2.clone()),
        strings(&|_, r| person(r).map(|p| p.register.as_str().to_owned())),
        strings(&|_, r| person(r).map(|p| p.person_id.clone())),
        strings(&|_, r| {
            Some(match r {
                RegisterRecord::Person(p) => p.full_name.clone(),
                RegisterRecord::Village(v) => v.name.clone(),
            })
        }),
        strings(&|_, r| person(r).map(|p| p.role.clone())),
        strings(&|_, r| person(r).and_then(|p| p.gender).map(|g| g.as_str().to_owned())),
        Arc::new(birth_years.finish()),
        strings(&|_, r| person(r).and_then(|p| p.phone.clone())),
        Arc::new(term_starts.finish()),
        Arc::new(term_ends.finish()),
        Arc::new(removed.finish()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.submitted_at().timestamp_micros()))
                .with_timezone("UTC"),
        ),
        strings(&|_, r| match r {
            RegisterRecord::Person(p) => p.submitted_by.clone(),
            RegisterRecord::Village(v) => v.submitted_by.clone(),
        }),
        strings(&|_, r| {
            Some(
                match r {
                    RegisterRecord::Person(p) => p.source,
                    RegisterRecord::Village(v) => v.source,
                }
                .as_str()
                .to_owned(),
            )
        }),
    ];
    Ok(RecordBatch::try_new(arrow_schema(), columns)?)
}

/// Reads register records back from a batch with (a superset of) the [`arrow_schema`] columns;
/// string columns may come as any Arrow string type.
pub fn from_record_batch(batch: &RecordBatch) -> Result<Vec<RegisterRecord>, SchemaError> {
    let column = |name: &str, data_type: &DataType| -> Result<ArrayRef, SchemaError> {
        let array = batch.column_by_name(name).ok_or_else(|| SchemaError::MissingColumn(name.to_owned()))?;
        Ok(arrow::compute::cast(array, data_type)?)
    };
    let utf8 = |name: &str| -> Result<StringArray, SchemaError> {
        let array = column(name, &DataType::Utf8)?;
        array.as_any().downcast_ref::<StringArray>().cloned().ok_or(SchemaError::BadValue("string column"))
    };
    let text = |array: &StringArray, i: usize| (!array.is_null(i)).then(|| array.value(i).to_owned());
    let timestamp_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let submitted_column = column("submitted_at", &timestamp_type)?;
    let submitted = submitted_column
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or(SchemaError::BadValue("timestamp column"))?;
    let year_column = column("birth_year", &DataType::Int32)?;
    let years = year_column.as_any().downcast_ref::<Int32Array>().ok_or(SchemaError::BadValue("int column"))?;
    let start_column = column("term_start", &DataType::Date32)?;
    let starts = start_column.as_any().downcast_ref::<Date32Array>().ok_or(SchemaError::BadValue("date column"))?;
    let end_column = column("term_end", &DataType::Date32)?;
    let ends = end_column.as_any().downcast_ref::<Date32Array>().ok_or(SchemaError::BadValue("date column"))?;
    let removed_column = column("removed", &DataType::Boolean)?;
    let removed = removed_column.as_any().downcast_ref::<BooleanArray>().ok_or(SchemaError::BadValue("bool column"))?;
    let (kinds, ids, units, commune_codes) =
        (utf8(PARTITION_COLUMN)?, utf8("entry_id")?, utf8("unit_code")?, utf8("commune_code")?);
    let (registers, person_ids, names, roles) = (utf8("register")?, utf8("person_id")?, utf8("name")?, utf8("role")?);
    let (genders, phones, senders, sources) = (utf8("gender")?, utf8("phone")?, utf8("submitted_by")?, utf8("source")?);
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let entry_id = Uuid::parse_str(ids.value(i)).map_err(|_| SchemaError::BadValue("entry id is not a uuid"))?;
        let submitted_at =
            Utc.timestamp_micros(submitted.value(i)).single().ok_or(SchemaError::BadValue("timestamp out of range"))?;
        let source = EntrySource::parse(sources.value(i)).ok_or(SchemaError::BadValue("unknown entry source"))?;
        let record = match kinds.value(i) {
            "person" => {
                let register = text(&registers, i)
                    .as_deref()
                    .and_then(Register::parse)
                    .ok_or(SchemaError::BadValue("unknown register"))?;
                let term_start = (!starts.is_null(i))
                    .then(|| from_epoch_days(starts.value(i)))
                    .flatten()
                    .ok_or(SchemaError::BadValue("person entry without a term start"))?;
                RegisterRecord::Person(PersonEntry {
                    entry_id,
                    register,
                    person_id: text(&person_ids, i).ok_or(SchemaError::BadValue("person entry without an id"))?,
                    unit: units.value(i).to_owned(),
                    full_name: names.value(i).to_owned(),
                    role: text(&roles, i).unwrap_or_default(),
                    gender: text(&genders, i).as_deref().and_then(Gender::parse),
                    birth_year: (!years.is_null(i)).then(|| years.value(i)),
                    phone: text(&phones, i),
                    term_start,
                    term_end: (!ends.is_null(i)).then(|| from_epoch_days(ends.value(i))).flatten(),
                    removed: removed.value(i),
                    submitted_by: text(&senders, i),
                    submitted_at,
                    source,
                })
            }
            "village" => RegisterRecord::Village(VillageEntry {
                entry_id,
                code: units.value(i).to_owned(),
                name: names.value(i).to_owned(),
                commune_code: text(&commune_codes, i).unwrap_or_else(|| units.value(i).chars().take(5).collect()),
                removed: removed.value(i),
                submitted_by: text(&senders, i),
                submitted_at,
                source,
            }),
            _ => return Err(SchemaError::BadValue("unknown register entry kind")),
        };
        rows.push(record);
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Cells: one value of a JSON object or a spreadsheet, as intake reads it

/// A header or a word as compared: without diacritics, lower case, single spaces, `_` as space.
fn header_key(header: &str) -> String {
    let folded = fold(header).to_lowercase().replace('_', " ");
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A problem with one value, before it is placed in a field, row and column.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    code: &'static str,
    message: String,
}

fn problem(code: &'static str, message: impl Into<String>) -> Problem {
    Problem { code, message: message.into() }
}

fn error(field: &str, p: Problem) -> RegisterError {
    RegisterError { row: None, column: None, field: field.to_owned(), code: p.code.to_owned(), message: p.message }
}

fn error_at(field: &str, p: Problem, row: usize, column: Option<usize>) -> RegisterError {
    RegisterError { row: Some(row), column: column.map(column_letter), ..error(field, p) }
}

// ---------------------------------------------------------------------------------------------
// Fields

/// The fields of the entries, as JSON names them; spreadsheet columns map to them by header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Col {
    Register,
    PersonId,
    Unit,
    FullName,
    Role,
    Gender,
    BirthYear,
    Phone,
    TermStart,
    TermEnd,
    Removed,
    Code,
    Name,
    CommuneCode,
    /// A column people read and voxpop does not (`unit_name`).
    Ignored,
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Register => "register",
            Col::PersonId => "person_id",
            Col::Unit => "unit",
            Col::FullName => "full_name",
            Col::Role => "role",
            Col::Gender => "gender",
            Col::BirthYear => "birth_year",
            Col::Phone => "phone",
            Col::TermStart => "term_start",
            Col::TermEnd => "term_end",
            Col::Removed => "removed",
            Col::Code => "code",
            Col::Name => "name",
            Col::CommuneCode => "commune_code",
            Col::Ignored => "",
        }
    }
}

/// Person fields and the spreadsheet headers that name them, as [`header_key`]s (the JSON name
/// first; a sheet may use the Vietnamese heading instead).
const PERSON_COLUMNS: [(Col, &[&str]); 12] = [
    (Col::Register, &["register", "danh sach", "loai danh sach"]),
    (Col::PersonId, &["person id", "ma nguoi", "ma can bo", "ma hoi vien", "ma dinh danh"]),
    (Col::Unit, &["unit", "unit code", "ma don vi"]),
    (Col::FullName, &["full name", "ho va ten", "ho ten"]),
    (Col::Role, &["role", "chuc vu", "chuc danh"]),
    (Col::Gender, &["gender", "gioi tinh"]),
    (Col::BirthYear, &["birth year", "nam sinh"]),
    (Col::Phone, &["phone", "dien thoai", "so dien thoai"]),
    (Col::TermStart, &["term start", "bat dau nhiem ky", "tu ngay", "ngay bat dau"]),
    (Col::TermEnd, &["term end", "ket thuc nhiem ky", "den ngay", "ngay ket thuc"]),
    (Col::Removed, &["removed", "da thoi", "xoa khoi danh sach"]),
    (Col::Ignored, &["unit name", "ten don vi", "stt"]),
];

const VILLAGE_COLUMNS: [(Col, &[&str]); 5] = [
    (Col::Code, &["code", "village code", "ma thon", "ma"]),
    (Col::Name, &["name", "village name", "ten thon", "ten"]),
    (Col::CommuneCode, &["commune code", "ma xa"]),
    (Col::Removed, &["removed", "da xoa"]),
    (Col::Ignored, &["commune name", "ten xa", "stt"]),
];

fn find_column(columns: &[(Col, &[&str])], header: &str) -> Option<Col> {
    let key = header_key(header);
    columns.iter().find(|(_, names)| names.contains(&key.as_str())).map(|(col, _)| *col)
}

/// Yes/no as staff write it.
fn parse_yes_no(cell: &Cell) -> Result<bool, Problem> {
    match cell {
        Cell::Empty => Ok(false),
        Cell::Bool(flag) => Ok(*flag),
        Cell::Number(n) if *n == 0.0 || *n == 1.0 => Ok(*n == 1.0),
        Cell::Text(text) => match header_key(text).as_str() {
            "true" | "yes" | "co" | "x" | "1" => Ok(true),
            "false" | "no" | "khong" | "0" => Ok(false),
            _ => Err(problem("type", format!("{} không phải có/không", cell.describe()))),
        },
        other => Err(problem("type", format!("{} không phải có/không", other.describe()))),
    }
}

/// A date as typed: `2025-07-01`, `01/07/2025` (day first, as Vietnam writes it) or a date cell.
fn parse_date(cell: &Cell) -> Result<Option<NaiveDate>, Problem> {
    let malformed = || {
        problem(
            "malformed_date",
            format!("{} không phải là ngày: hãy ghi ví dụ 01/07/2025 hoặc 2025-07-01", cell.describe()),
        )
    };
    match cell {
        Cell::Empty => Ok(None),
        Cell::Date(date) => Ok(Some(*date)),
        Cell::Text(text) => {
            let text = text.trim();
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .or_else(|_| NaiveDate::parse_from_str(text, "%d/%m/%Y"))
                .or_else(|_| NaiveDate::parse_from_str(text, "%d-%m-%Y"))
                .map(Some)
                .map_err(|_| malformed())
        }
        _ => Err(malformed()),
    }
}

/// Trimmed, NFC, inner runs of whitespace as one space.
fn clean_text(text: &str) -> String {
    nfc(text).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_text(value: &str, what: &str, max: usize) -> Result<String, Problem> {
    let cleaned = clean_text(value);
    if cleaned.is_empty() {
        return Err(problem("required", format!("thiếu {what}")));
    }
    if cleaned.chars().count() > max {
        return Err(problem("too_long", format!("{what} dài quá {max} ký tự")));
    }
    Ok(cleaned)
}

fn check_person_id(value: &str) -> Result<String, Problem> {
    let id = value.trim();
    if id.is_empty() {
        return Err(problem("required", "thiếu mã người (person_id)"));
    }
    let well_formed = id.chars().count() <= MAX_PERSON_ID_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if !well_formed {
        return Err(problem(
            "malformed_person_id",
            format!(
                "mã người `{}` không hợp lệ: tối đa {MAX_PERSON_ID_CHARS} ký tự chữ không dấu, số và - _ . : /",
                shorten(id)
            ),
        ));
    }
    Ok(id.to_owned())
}

fn check_birth_year(year: i64, today: NaiveDate) -> Result<i32, Problem> {
    let range = 1900..=i64::from(today.year());
    if !range.contains(&year) {
        return Err(problem("out_of_range", format!("năm sinh {year} không hợp lệ (từ 1900 đến {})", today.year())));
    }
    Ok(year as i32)
}

fn check_phone(value: &str) -> Result<String, Problem> {
    let phone = value.trim();
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-') || (c == '+' && i == 0));
    if !allowed || !(8..=15).contains(&digits) {
        return Err(problem(
            "malformed_phone",
            format!("số điện thoại `{}` không hợp lệ: 8 đến 15 chữ số", shorten(phone)),
        ));
    }
    Ok(phone.to_owned())
}

/// Terms start at most a year ahead (a list prepared before a congress) and end after they start,
/// all within [`EARLIEST_DATE`] to [`LATEST_DATE`].
fn check_term(start: NaiveDate, end: Option<NaiveDate>, today: NaiveDate) -> Vec<(Col, Problem)> {
    let mut problems = Vec::new();
    let out_of_range = |date: NaiveDate| {
        problem(
            "out_of_range",
            format!(
                "ngày {} nằm ngoài khoảng {} đến {}",
                date.format("%d/%m/%Y"),
                EARLIEST_DATE.format("%d/%m/%Y"),
                LATEST_DATE.format("%d/%m/%Y")
            ),
        )
    };
    if start < EARLIEST_DATE || start > LATEST_DATE {
        problems.push((Col::TermStart, out_of_range(start)));
    } else if today.checked_add_days(chrono::Days::new(366)).is_some_and(|latest| start > latest) {
        problems.push((
            Col::TermStart,
            problem("future_term", format!("nhiệm kỳ bắt đầu {} còn quá xa (quá một năm)", start.format("%d/%m/%Y"))),
        ));
    }
    if let Some(end) = end
        && (end < EARLIEST_DATE || end > LATEST_DATE)
    {
        problems.push((Col::TermEnd, out_of_range(end)));
    } else if let Some(end) = end
        && end < start
    {
        problems.push((
            Col::TermEnd,
            problem(
                "term_end_before_start",
                format!(
                    "ngày kết thúc nhiệm kỳ {} trước ngày bắt đầu {}",
                    end.format("%d/%m/%Y"),
                    start.format("%d/%m/%Y")
                ),
            ),
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Intake

/// Validates register entries. One per request: it carries who sends, when, and the villages the
/// register knows.
#[derive(Debug, Clone, Copy)]
pub struct RegisterIntake<'a> {
    pub units: &'a Units,
    /// The sender's unit code: entries for this unit and the units below it only.
    pub scope: &'a str,
    /// The time of receipt: stamps the entries and bounds dates.
    pub now: DateTime<Utc>,
    /// The sender's token id (or unit), stored with the entries.
    pub submitted_by: Option<&'a str>,
    /// The codes of the registered villages; a person of a village not in it is refused. `None`
    /// skips that check (the pipeline: the API checked it, and a village may be created and
    /// used within the same batch).
    pub villages: Option<&'a HashSet<String>>,
}

/// What a spreadsheet or a JSON array gave.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeOutcome<T> {
    /// The accepted entries: all when `errors` is empty; with errors, none, unless partial
    /// acceptance was asked for, in which case those of the rows without any error.
    pub entries: Vec<T>,
    /// Every problem found, in order.
    pub errors: Vec<RegisterError>,
    /// Rows (or array items) that carried anything.
    pub data_rows: usize,
    /// Of those, the ones with at least one error.
    pub rejected_rows: usize,
}

impl<T> Default for IntakeOutcome<T> {
    fn default() -> Self {
        IntakeOutcome { entries: Vec::new(), errors: Vec::new(), data_rows: 0, rejected_rows: 0 }
    }
}

/// The fields of one entry as cells, with where each came from (a column index in a sheet).
type Fields = HashMap<Col, (Cell<'static>, Option<usize>)>;

impl RegisterIntake<'_> {
    fn scope_ref(&self) -> Result<UnitRef, RegisterError> {
        UnitRef::parse(self.scope.trim(), self.units).map_err(|err| {
            error(
                "scope",
                problem("invalid_scope", format!("phạm vi của người gửi không hợp lệ: {}", err.message_vi())),
            )
        })
    }

    fn received_at(&self) -> DateTime<Utc> {
        // The lake stores microseconds: keep the record equal to what it reads back.
        self.now.trunc_subsecs(6)
    }

    fn today(&self) -> NaiveDate {
        vietnam_date(self.now)
    }

    /// A unit code: well formed, in the reference lists, a registered village, in scope.
    fn check_unit(&self, code: &str, scope: &UnitRef) -> Result<UnitRef, Problem> {
        crate::reports::unit_in_scope(self.units, self.villages, code, scope, "phạm vi")
            .map_err(|(code, message)| problem(code, message))
    }

    /// A unit code from a cell: Excel turns a typed `00004` into the number 4 unless the column
    /// is text; three digits or more can only be a commune, fewer could be a province too.
    fn unit_text(cell: &Cell) -> Result<String, Problem> {
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

    /// Builds a person from its fields; every problem with the field it is about.
    fn person(
        &self,
        fields: &Fields,
        scope: &UnitRef,
        default_register: Option<Register>,
        source: EntrySource,
    ) -> Result<PersonEntry, Vec<(Col, Problem)>> {
        let empty = Cell::Empty;
        let cell = |col: Col| fields.get(&col).map_or(&empty, |(cell, _)| cell);
        let today = self.today();
        let mut problems: Vec<(Col, Problem)> = Vec::new();
        let register = match (cell(Col::Register), default_register) {
            (Cell::Empty, Some(register)) => Some(register),
            (other, _) => required_text(&mut problems, Col::Register, other, "danh sách").and_then(|text| {
                let unknown = || {
                    problem(
                        "unknown_register",
                        format!("danh sách `{}` không có: officer (cán bộ) hoặc member (hội viên)", shorten(&text)),
                    )
                };
                take(&mut problems, Col::Register, Register::parse(&text).ok_or_else(unknown))
            }),
        };
        let person_id = required_text(&mut problems, Col::PersonId, cell(Col::PersonId), "mã người")
            .and_then(|text| take(&mut problems, Col::PersonId, check_person_id(&text)));
        let full_name = required_text(&mut problems, Col::FullName, cell(Col::FullName), "họ và tên")
            .and_then(|text| take(&mut problems, Col::FullName, check_text(&text, "họ và tên", MAX_NAME_CHARS)));
        let role = required_text(&mut problems, Col::Role, cell(Col::Role), "chức vụ")
            .and_then(|text| take(&mut problems, Col::Role, check_text(&text, "chức vụ", MAX_ROLE_CHARS)));
        let unit_checked =
            Self::unit_text(cell(Col::Unit)).and_then(|code| self.check_unit(&code, scope)).map(|unit| unit.code());
        let unit = take(&mut problems, Col::Unit, unit_checked);
        let gender = match cell(Col::Gender) {
            Cell::Empty => None,
            other => {
                let parsed =
                    other.text().as_deref().and_then(Gender::parse).ok_or_else(|| {
                        problem("type", format!("giới tính {}: ghi Nam, Nữ hoặc Khác", other.describe()))
                    });
                take(&mut problems, Col::Gender, parsed)
            }
        };
        let birth_year = match cell(Col::BirthYear) {
            Cell::Empty => None,
            other => {
                let year = match other {
                    Cell::Number(n) if n.fract() == 0.0 => Some(*n as i64),
                    Cell::Text(text) => text.trim().parse::<i64>().ok(),
                    _ => None,
                };
                let checked = year
                    .ok_or_else(|| problem("type", format!("năm sinh {} không phải là một năm", other.describe())))
                    .and_then(|year| check_birth_year(year, today));
                take(&mut problems, Col::BirthYear, checked)
            }
        };
        let phone = match cell(Col::Phone) {
            Cell::Empty => None,
            Cell::Text(text) => take(&mut problems, Col::Phone, check_phone(text)),
            Cell::Number(_) => take(
                &mut problems,
                Col::Phone,
                Err(problem(
                    "phone_as_number",
                    "số điện thoại là một số: Excel đã bỏ chữ số 0 ở đầu; hãy định dạng cột là Văn bản (Text)",
                )),
            ),
            other => take(
                &mut problems,
                Col::Phone,
                Err(problem("type", format!("{} không phải là số điện thoại", other.describe()))),
            ),
        };
        let term_start = match parse_date(cell(Col::TermStart)) {
            Ok(None) => take(
                &mut problems,
                Col::TermStart,
                Err(problem("required", "thiếu ngày bắt đầu nhiệm kỳ (`term_start`)")),
            ),
            parsed => take(&mut problems, Col::TermStart, parsed).flatten(),
        };
        let term_end = take(&mut problems, Col::TermEnd, parse_date(cell(Col::TermEnd))).flatten();
        if let Some(start) = term_start {
            problems.extend(check_term(start, term_end, today));
        }
        let removed = take(&mut problems, Col::Removed, parse_yes_no(cell(Col::Removed)));
        let (Some(register), Some(person_id), Some(unit), Some(full_name), Some(role), Some(term_start), Some(removed)) =
            (register, person_id, unit, full_name, role, term_start, removed)
        else {
            debug_assert!(!problems.is_empty(), "a missing field is a problem");
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(PersonEntry {
            entry_id: Uuid::now_v7(),
            register,
            person_id,
            unit,
            full_name,
            role,
            gender,
            birth_year,
            phone,
            term_start,
            term_end,
            removed,
            submitted_by: self.submitted_by.map(str::to_owned),
            submitted_at: self.received_at(),
            source,
        })
    }

    /// Builds a village from its fields. A missing code is assigned the commune's next free
    /// number (after every number in `taken`, removed villages included: numbers are never
    /// reused); `taken` gains the new code.
    fn village(
        &self,
        fields: &Fields,
        scope: &UnitRef,
        taken: &mut HashSet<String>,
        source: EntrySource,
    ) -> Result<VillageEntry, Vec<(Col, Problem)>> {
        let empty = Cell::Empty;
        let cell = |col: Col| fields.get(&col).map_or(&empty, |(cell, _)| cell);
        let mut problems: Vec<(Col, Problem)> = Vec::new();
        let name = match (cell(Col::Name), cell(Col::Name).text()) {
            (_, Some(text)) => check_text(&text, "tên thôn, tổ dân phố", MAX_NAME_CHARS)
                .map_err(|p| problems.push((Col::Name, p)))
                .ok(),
            (Cell::Empty, None) => {
                problems.push((Col::Name, problem("required", "thiếu tên thôn, tổ dân phố (`name`)")));
                None
            }
            (other, None) => {
                problems.push((
                    Col::Name,
                    problem("type", format!("{} không phải là tên thôn, tổ dân phố", other.describe())),
                ));
                None
            }
        };
        let commune_given = match cell(Col::CommuneCode) {
            Cell::Empty => None,
            other => match Self::unit_text(other) {
                Ok(code) => Some(code),
                Err(p) => {
                    problems.push((Col::CommuneCode, p));
                    None
                }
            },
        };
        let code_given = match cell(Col::Code) {
            Cell::Empty => None,
            other => match other.text() {
                Some(code) => Some(code),
                None => {
                    problems.push((
                        Col::Code,
                        problem("malformed_unit", format!("{} không phải là mã thôn", other.describe())),
                    ));
                    None
                }
            },
        };
        let commune = match (&code_given, &commune_given) {
            (Some(code), _) => match UnitRef::parse(code, self.units) {
                Ok(UnitRef::Village { province, commune, number }) => {
                    if let Some(given) = &commune_given
                        && *given != commune
                    {
                        problems.push((
                            Col::CommuneCode,
                            problem(
                                "village_of_other_commune",
                                format!("thôn `{code}` thuộc xã `{commune}`, không phải xã `{given}`"),
                            ),
                        ));
                    }
                    Some((UnitRef::Commune { province, commune }, Some(number)))
                }
                Ok(_) => {
                    problems.push((
                        Col::Code,
                        problem(
                            "not_a_village",
                            format!("`{code}` không phải mã thôn, tổ dân phố: mã xã, dấu gạch và 3 chữ số, ví dụ `00004-012`"),
                        ),
                    ));
                    None
                }
                Err(err) => {
                    problems.push((Col::Code, problem(err.code(), err.message_vi())));
                    None
                }
            },
            (None, Some(commune)) => match UnitRef::parse(commune, self.units) {
                Ok(unit @ UnitRef::Commune { .. }) => Some((unit, None)),
                Ok(_) => {
                    problems.push((
                        Col::CommuneCode,
                        problem("not_a_commune", format!("`{commune}` không phải mã xã, phường, đặc khu")),
                    ));
                    None
                }
                Err(err) => {
                    problems.push((Col::CommuneCode, problem(err.code(), err.message_vi())));
                    None
                }
            },
            (None, None) => match scope {
                UnitRef::Commune { .. } => Some((scope.clone(), None)),
                _ => {
                    problems
                        .push((Col::Code, problem("required", "thiếu mã thôn (`code`) hoặc mã xã (`commune_code`)")));
                    None
                }
            },
        };
        let removed = parse_yes_no(cell(Col::Removed)).map_err(|p| problems.push((Col::Removed, p))).ok();
        if let Some((commune, _)) = &commune
            && !scope.contains(commune)
        {
            problems.push((
                if code_given.is_some() { Col::Code } else { Col::CommuneCode },
                problem(
                    "out_of_scope",
                    format!("xã `{}` không thuộc phạm vi của đơn vị gửi `{}`", commune.code(), scope.code()),
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (Some((commune, number)), Some(name), Some(removed)) = (commune, name, removed) else {
            return Err(vec![(Col::Ignored, problem("internal", "thiếu trường bắt buộc"))]);
        };
        let commune_code = commune.code();
        let code = match number {
            Some(number) => UnitRef::village_code(&commune_code, number),
            None => {
                let prefix = format!("{commune_code}-");
                let highest =
                    taken.iter().filter_map(|code| code.strip_prefix(&prefix)?.parse::<u16>().ok()).max().unwrap_or(0);
                if highest >= MAX_VILLAGE_NUMBER {
                    return Err(vec![(
                        Col::Code,
                        problem("too_many_villages", format!("xã `{commune_code}` đã dùng hết số thôn (001-999)")),
                    )]);
                }
                UnitRef::village_code(&commune_code, highest + 1)
            }
        };
        taken.insert(code.clone());
        Ok(VillageEntry {
            entry_id: Uuid::now_v7(),
            code,
            name,
            commune_code,
            removed,
            submitted_by: self.submitted_by.map(str::to_owned),
            submitted_at: self.received_at(),
            source,
        })
    }

    /// The items of a JSON body: an array of objects, or one object.
    fn json_items(bytes: &[u8]) -> Result<Vec<serde_json::Map<String, Json>>, Vec<RegisterError>> {
        let text = std::str::from_utf8(bytes).map_err(|err| {
            vec![error(
                "",
                problem("invalid_utf8", format!("nội dung gửi không phải UTF-8 hợp lệ (byte {})", err.valid_up_to())),
            )]
        })?;
        let value: Json = serde_json::from_str(text).map_err(|err| {
            vec![error(
                "",
                problem(
                    "malformed_json",
                    format!("JSON sai cú pháp ở dòng {} cột {}: {err}", err.line(), err.column()),
                ),
            )]
        })?;
        let items = match value {
            Json::Array(items) => items,
            object @ Json::Object(_) => vec![object],
            _ => return Err(vec![error("", problem("type", "cần một mảng JSON các đối tượng"))]),
        };
        if items.is_empty() {
            return Err(vec![error("", problem("empty", "danh sách gửi không có mục nào"))]);
        }
        if items.len() > MAX_ENTRIES {
            return Err(vec![error("", problem("too_many_entries", format!("hơn {MAX_ENTRIES} mục: hãy chia nhỏ")))]);
        }
        let mut objects = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Json::Object(object) => objects.push(object),
                _ => errors.push(error(&index.to_string(), problem("type", "mỗi mục phải là một đối tượng JSON"))),
            }
        }
        if errors.is_empty() { Ok(objects) } else { Err(errors) }
    }

    /// The fields of one JSON object; unknown keys are problems.
    fn json_fields(
        object: &serde_json::Map<String, Json>,
        columns: &[(Col, &[&str])],
    ) -> (Fields, Vec<(String, Problem)>) {
        let mut fields = Fields::new();
        let mut unknown = Vec::new();
        for (key, value) in object {
            match columns.iter().find(|(col, _)| *col != Col::Ignored && col.name() == key) {
                Some((col, _)) => {
                    fields.insert(*col, (json_cell(*col, value), None));
                }
                None => {
                    unknown.push((key.clone(), problem("unknown_field", format!("trường `{key}` không được hỗ trợ"))))
                }
            }
        }
        (fields, unknown)
    }

    /// Parses and validates people sent as JSON: an array of
    /// `{"register": "officer", "person_id": "...", "unit": "00004", "full_name": "...",
    /// "role": "Chủ tịch", "term_start": "2024-10-01", ...}` (or one object). All or nothing:
    /// every problem is reported, with paths like `2.term_end` (item 2, 0-based).
    pub fn parse_people_json(&self, bytes: &[u8]) -> Result<Vec<PersonEntry>, Vec<RegisterError>> {
        let scope = self.scope_ref().map_err(|err| vec![err])?;
        let objects = Self::json_items(bytes)?;
        let mut errors = Vec::new();
        let mut entries = Vec::with_capacity(objects.len());
        let mut seen: HashMap<(Register, String, String), usize> = HashMap::new();
        for (index, object) in objects.iter().enumerate() {
            let (fields, unknown) = Self::json_fields(object, &PERSON_COLUMNS);
            for (key, p) in unknown {
                errors.push(error(&format!("{index}.{key}"), p));
            }
            match self.person(&fields, &scope, None, EntrySource::Api) {
                Ok(person) => {
                    let key = (person.register, person.unit.clone(), person.person_id.clone());
                    if let Some(first) = seen.insert(key, index) {
                        errors.push(error(
                            &format!("{index}.person_id"),
                            problem("duplicate_entry", format!("người này đã có ở mục {first} của cùng danh sách")),
                        ));
                    }
                    entries.push(person);
                }
                Err(problems) => {
                    for (col, p) in problems {
                        errors.push(error(&format!("{index}.{}", col.name()), p));
                    }
                }
            }
        }
        if errors.is_empty() { Ok(entries) } else { Err(errors) }
    }

    /// Parses and validates villages sent as JSON: an array of `{"name": "Thôn Đông"}` (the
    /// caller's commune, the next free number), `{"code": "00004-012", "name": "..."}` (a new
    /// village, a rename, or with `"removed": true` a removal) or with `commune_code`. `taken`:
    /// every village code the register has seen, for numbering.
    pub fn parse_villages_json(
        &self,
        bytes: &[u8],
        taken: &HashSet<String>,
    ) -> Result<Vec<VillageEntry>, Vec<RegisterError>> {
        let scope = self.scope_ref().map_err(|err| vec![err])?;
        let objects = Self::json_items(bytes)?;
        let mut taken = taken.clone();
        let mut errors = Vec::new();
        let mut entries: Vec<VillageEntry> = Vec::with_capacity(objects.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, object) in objects.iter().enumerate() {
            let (fields, unknown) = Self::json_fields(object, &VILLAGE_COLUMNS);
            for (key, p) in unknown {
                errors.push(error(&format!("{index}.{key}"), p));
            }
            match self.village(&fields, &scope, &mut taken, EntrySource::Api) {
                Ok(village) => {
                    if let Some(first) = seen.insert(village.code.clone(), index) {
                        errors.push(error(
                            &format!("{index}.code"),
                            problem("duplicate_entry", format!("thôn `{}` đã có ở mục {first}", village.code)),
                        ));
                    }
                    entries.push(village);
                }
                Err(problems) => {
                    for (col, p) in problems {
                        errors.push(error(&format!("{index}.{}", col.name()), p));
                    }
                }
            }
        }
        if errors.is_empty() { Ok(entries) } else { Err(errors) }
    }

    /// Parses and validates people from the first sheet of an XLSX workbook: one row per person,
    /// columns headed by the JSON names or their Vietnamese headings (`Họ và tên`, `Chức vụ`,
    /// `Mã đơn vị`, ...). Without a `register` column every row is in `default_register`. All or
    /// nothing unless `accept_partial`.
    pub fn parse_people_xlsx(
        &self,
        bytes: &[u8],
        default_register: Option<Register>,
        accept_partial: bool,
    ) -> IntakeOutcome<PersonEntry> {
        match read_xlsx(bytes) {
            Ok(table) => self.people_from_table(&table, default_register, EntrySource::Xlsx, accept_partial),
            Err(err) => IntakeOutcome { errors: vec![err], ..IntakeOutcome::default() },
        }
    }

    /// [`RegisterIntake::parse_people_xlsx`] for a CSV file (UTF-8, with or without a BOM; `,`,
    /// `;` or tab, taken from the header line).
    pub fn parse_people_csv(
        &self,
        bytes: &[u8],
        default_register: Option<Register>,
        accept_partial: bool,
    ) -> IntakeOutcome<PersonEntry> {
        match read_csv(bytes) {
            Ok(table) => self.people_from_table(&table, default_register, EntrySource::Csv, accept_partial),
            Err(err) => IntakeOutcome { errors: vec![err], ..IntakeOutcome::default() },
        }
    }

    /// Villages from a CSV file with the columns `code,name` (and optionally `commune_code`,
    /// `removed`), as `voxpop import --villages` reads it. All or nothing unless `accept_partial`.
    pub fn parse_villages_csv(
        &self,
        bytes: &[u8],
        taken: &HashSet<String>,
        accept_partial: bool,
    ) -> IntakeOutcome<VillageEntry> {
        let table = match read_csv(bytes) {
            Ok(table) => table,
            Err(err) => return IntakeOutcome { errors: vec![err], ..IntakeOutcome::default() },
        };
        let mut taken = taken.clone();
        let mut seen: HashMap<String, usize> = HashMap::new();
        self.from_table(&table, &VILLAGE_COLUMNS, &[Col::Name], accept_partial, |fields, scope, row| {
            let village = self.village(fields, scope, &mut taken, EntrySource::Import)?;
            if let Some(first) = seen.insert(village.code.clone(), row) {
                return Err(vec![(
                    Col::Code,
                    problem("duplicate_entry", format!("thôn `{}` đã có ở dòng {first}", village.code)),
                )]);
            }
            Ok(village)
        })
    }

    fn people_from_table(
        &self,
        table: &Table,
        default_register: Option<Register>,
        source: EntrySource,
        accept_partial: bool,
    ) -> IntakeOutcome<PersonEntry> {
        let mut required = vec![Col::PersonId, Col::Unit, Col::FullName, Col::Role, Col::TermStart];
        if default_register.is_none() {
            required.insert(0, Col::Register);
        }
        let mut seen: HashMap<(Register, String, String), usize> = HashMap::new();
        self.from_table(table, &PERSON_COLUMNS, &required, accept_partial, |fields, scope, row| {
            let person = self.person(fields, scope, default_register, source)?;
            let key = (person.register, person.unit.clone(), person.person_id.clone());
            if let Some(first) = seen.insert(key, row) {
                return Err(vec![(
                    Col::PersonId,
                    problem("duplicate_entry", format!("người này đã có ở dòng {first} của cùng danh sách")),
                )]);
            }
            Ok(person)
        })
    }

    /// Reads a table row by row into entries with `build`, placing every problem at its row and
    /// column.
    fn from_table<T>(
        &self,
        table: &Table,
        columns: &[(Col, &[&str])],
        required: &[Col],
        accept_partial: bool,
        mut build: impl FnMut(&Fields, &UnitRef, usize) -> Result<T, Vec<(Col, Problem)>>,
    ) -> IntakeOutcome<T> {
        let mut outcome = IntakeOutcome { entries: Vec::new(), errors: Vec::new(), data_rows: 0, rejected_rows: 0 };
        let scope = match self.scope_ref() {
            Ok(scope) => scope,
            Err(err) => {
                outcome.errors.push(err);
                return outcome;
            }
        };
        // The header: each column's field; unknown and repeated headings are problems.
        let mut mapped: Vec<Option<Col>> = Vec::with_capacity(table.header.len());
        let mut placed: HashMap<Col, usize> = HashMap::new();
        for (index, cell) in table.header.iter().enumerate() {
            let letter = Some(table.first_column + index);
            let Some(text) = cell.text().or_else(|| match cell {
                Cell::Empty => None,
                other => Some(other.describe()),
            }) else {
                mapped.push(None);
                continue;
            };
            match find_column(columns, &text) {
                Some(Col::Ignored) => mapped.push(Some(Col::Ignored)),
                Some(col) => {
                    if let Some(first) = placed.insert(col, index) {
                        outcome.errors.push(error_at(
                            col.name(),
                            problem(
                                "duplicate_column",
                                format!(
                                    "cột `{}` đã có ở cột {}",
                                    col.name(),
                                    column_letter(table.first_column + first)
                                ),
                            ),
                            table.header_row,
                            letter,
                        ));
                    }
                    mapped.push(Some(col));
                }
                None => {
                    let known: Vec<&str> =
                        columns.iter().filter(|(col, _)| *col != Col::Ignored).map(|(col, _)| col.name()).collect();
                    outcome.errors.push(error_at(
                        &text,
                        problem(
                            "unknown_column",
                            format!("cột `{}` không có trong mẫu; các cột: {}", shorten(&text), known.join(", ")),
                        ),
                        table.header_row,
                        letter,
                    ));
                    mapped.push(None);
                }
            }
        }
        for col in required {
            if !placed.contains_key(col) {
                outcome.errors.push(error_at(
                    col.name(),
                    problem("missing_column", format!("thiếu cột `{}` ở dòng tiêu đề", col.name())),
                    table.header_row,
                    None,
                ));
            }
        }
        if !outcome.errors.is_empty() {
            return outcome;
        }
        for (row_number, cells) in &table.rows {
            let mut fields = Fields::new();
            let mut stray = None;
            for (index, cell) in cells.iter().enumerate() {
                match mapped.get(index).copied().flatten() {
                    Some(Col::Ignored) => {}
                    Some(col) => {
                        fields.insert(col, (cell.clone(), Some(index)));
                    }
                    None if !cell.is_empty() => stray = stray.or(Some(index)),
                    None => {}
                }
            }
            if fields.values().all(|(cell, _)| cell.is_empty()) && stray.is_none() {
                continue;
            }
            outcome.data_rows += 1;
            if outcome.data_rows > MAX_ENTRIES {
                outcome.errors.push(error_at(
                    "",
                    problem("too_many_rows", format!("tệp có hơn {MAX_ENTRIES} dòng: hãy chia thành nhiều tệp")),
                    *row_number,
                    None,
                ));
                outcome.data_rows -= 1;
                break;
            }
            let mut row_errors = Vec::new();
            if let Some(index) = stray {
                row_errors.push(error_at(
                    "",
                    problem("unnamed_column", "cột có dữ liệu nhưng không có tiêu đề"),
                    *row_number,
                    Some(table.first_column + index),
                ));
            }
            match build(&fields, &scope, *row_number) {
                Ok(entry) if row_errors.is_empty() => outcome.entries.push(entry),
                Ok(_) => {}
                Err(problems) => {
                    for (col, p) in problems {
                        let column = fields.get(&col).and_then(|(_, index)| *index).map(|i| table.first_column + i);
                        row_errors.push(error_at(col.name(), p, *row_number, column));
                    }
                }
            }
            if !row_errors.is_empty() {
                outcome.rejected_rows += 1;
                outcome.errors.extend(row_errors);
            }
        }
        if !outcome.errors.is_empty() && !accept_partial {
            outcome.entries.clear();
        }
        outcome
    }

    /// Checks a person read back from the log, as the pipeline must (the log may carry entries
    /// of other producers): the unit (and the scope of this intake), the texts, the dates.
    pub fn validate_person(&self, person: &PersonEntry) -> Vec<RegisterError> {
        let scope = match self.scope_ref() {
            Ok(scope) => scope,
            Err(err) => return vec![err],
        };
        let mut errors = Vec::new();
        let mut check = |col: Col, result: Result<(), Problem>| {
            if let Err(p) = result {
                errors.push(error(col.name(), p));
            }
        };
        check(
            Col::Unit,
            self.check_unit(&person.unit, &scope).and_then(|unit| {
                if unit.code() == person.unit {
                    Ok(())
                } else {
                    Err(problem(
                        "malformed_unit",
                        format!("mã đơn vị `{}` phải được ghi là `{}`", person.unit, unit.code()),
                    ))
                }
            }),
        );
        check(Col::PersonId, check_person_id(&person.person_id).and_then(|id| same(&id, &person.person_id)));
        check(
            Col::FullName,
            check_text(&person.full_name, "họ và tên", MAX_NAME_CHARS).and_then(|t| same(&t, &person.full_name)),
        );
        check(Col::Role, check_text(&person.role, "chức vụ", MAX_ROLE_CHARS).and_then(|t| same(&t, &person.role)));
        if let Some(year) = person.birth_year {
            check(Col::BirthYear, check_birth_year(i64::from(year), self.today()).map(|_| ()));
        }
        if let Some(phone) = &person.phone {
            check(Col::Phone, check_phone(phone).map(|_| ()));
        }
        for (col, p) in check_term(person.term_start, person.term_end, self.today()) {
            check(col, Err(p));
        }
        errors
    }

    /// Checks a village read back from the log: its code, its commune, the scope and its name.
    pub fn validate_village(&self, village: &VillageEntry) -> Vec<RegisterError> {
        let scope = match self.scope_ref() {
            Ok(scope) => scope,
            Err(err) => return vec![err],
        };
        let mut errors = Vec::new();
        match UnitRef::parse(&village.code, self.units) {
            Ok(UnitRef::Village { province, commune, number }) => {
                if village.code != UnitRef::village_code(&commune, number) {
                    errors.push(error(
                        "code",
                        problem("malformed_unit", format!("mã thôn `{}` không chuẩn", village.code)),
                    ));
                }
                if village.commune_code != commune {
                    errors.push(error(
                        "commune_code",
                        problem(
                            "village_of_other_commune",
                            format!(
                                "thôn `{}` thuộc xã `{commune}`, không phải xã `{}`",
                                village.code, village.commune_code
                            ),
                        ),
                    ));
                }
                if !scope.contains(&UnitRef::Commune { province, commune: commune.clone() }) {
                    errors.push(error(
                        "code",
                        problem(
                            "out_of_scope",
                            format!("xã `{commune}` không thuộc phạm vi của đơn vị gửi `{}`", scope.code()),
                        ),
                    ));
                }
            }
            Ok(_) => {
                errors.push(error("code", problem("not_a_village", format!("`{}` không phải mã thôn", village.code))))
            }
            Err(err) => errors.push(error("code", problem(err.code(), err.message_vi()))),
        }
        if let Err(p) =
            check_text(&village.name, "tên thôn, tổ dân phố", MAX_NAME_CHARS).and_then(|t| same(&t, &village.name))
        {
            errors.push(error("name", p));
        }
        errors
    }
}

/// A stored text must be stored as intake would store it.
fn same(cleaned: &str, stored: &str) -> Result<(), Problem> {
    if cleaned == stored {
        Ok(())
    } else {
        Err(problem("not_normalised", format!("`{}` phải được ghi là `{}`", shorten(stored), shorten(cleaned))))
    }
}

/// A JSON value as the cell of `col`, strictly typed: text fields are strings, `birth_year` a
/// whole number, `removed` true or false (`null` is an absent field). Spreadsheets are read
/// leniently because Excel turns typed ids into numbers; a JSON client states the type, so a
/// number sent for a name, or a year sent as a string, is a mistake to refuse, not to store. A
/// value of the wrong type becomes an error cell, which the field's check names.
fn json_cell(col: Col, value: &Json) -> Cell<'static> {
    let expected = match col {
        Col::BirthYear => "số nguyên",
        Col::Removed => "true hoặc false",
        _ => "chuỗi",
    };
    let fits = match (col, value) {
        (_, Json::Null) => true,
        (Col::BirthYear, Json::Number(number)) => number.is_i64() || number.is_u64(),
        (Col::BirthYear, _) => false,
        (Col::Removed, value) => value.is_boolean(),
        (_, value) => value.is_string(),
    };
    if fits {
        return Cell::from_json(value).into_owned();
    }
    let kind = match value {
        Json::Bool(_) => "giá trị true/false",
        Json::Number(_) => "số",
        Json::String(_) => "chuỗi",
        Json::Array(_) => "mảng",
        Json::Object(_) | Json::Null => "đối tượng",
    };
    Cell::Error(format!("{kind} JSON `{}`, cần {expected}", shorten(&value.to_string())))
}

/// The value of a check, or `None` with its problem recorded against `col`.
fn take<T>(problems: &mut Vec<(Col, Problem)>, col: Col, result: Result<T, Problem>) -> Option<T> {
    result.map_err(|p| problems.push((col, p))).ok()
}

/// The text of a required cell, or `None` with the problem recorded against `col`.
fn required_text(problems: &mut Vec<(Col, Problem)>, col: Col, cell: &Cell, what: &str) -> Option<String> {
    let text = match cell {
        Cell::Empty => Err(problem("required", format!("thiếu {what} (`{}`)", col.name()))),
        other => other.text().ok_or_else(|| problem("type", format!("{} không phải là {what}", other.describe()))),
    };
    take(problems, col, text)
}

// ---------------------------------------------------------------------------------------------
// Tables: a sheet's cells with their row numbers

/// A sheet as read: the header row and the data rows, with 1-based row numbers.
struct Table {
    header_row: usize,
    /// Absolute index of the first column, for column letters.
    first_column: usize,
    header: Vec<Cell<'static>>,
    rows: Vec<(usize, Vec<Cell<'static>>)>,
}

fn file_error(code: &'static str, message: String) -> RegisterError {
    error("", problem(code, message))
}

/// The first sheet of a workbook (a guide sheet named `Hướng dẫn` is skipped), streamed so that
/// memory follows the values present: a value beyond the rows an upload may hold (a header and
/// [`MAX_ENTRIES`] rows) or beyond [`crate::reports::MAX_SHEET_COLUMNS`] refuses the file, naming
/// the sheet and the cell.
fn read_xlsx(bytes: &[u8]) -> Result<Table, RegisterError> {
    let guide = header_key(crate::reports::GUIDE_SHEET);
    let mut table: Option<Table> = None;
    crate::cells::read_xlsx_rows(
        bytes,
        |name| header_key(name) != guide,
        MAX_ENTRIES + 1,
        |number, cells| {
            let cells: Vec<Cell<'static>> = cells.iter().map(|cell| cell.clone().into_owned()).collect();
            match table.as_mut() {
                Some(table) => table.rows.push((number, cells)),
                None => table = Some(Table { header_row: number, first_column: 0, header: cells, rows: Vec::new() }),
            }
            true
        },
    )
    .map_err(|problem| {
        let mut error = file_error(problem.code, problem.message);
        error.row = problem.row;
        error.column = problem.column.map(column_letter);
        error
    })?;
    table.ok_or_else(|| file_error("empty_sheet", "trang tính dữ liệu trống".to_owned()))
}

/// A CSV file: UTF-8 with or without a BOM, the separator (`,` `;` or tab) taken from the header.
fn read_csv(bytes: &[u8]) -> Result<Table, RegisterError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|err| {
        file_error(
            "invalid_utf8",
            format!("tệp CSV không phải UTF-8 (byte {}): hãy lưu với bảng mã UTF-8", err.valid_up_to()),
        )
    })?;
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&candidate| (first_line.bytes().filter(|&b| b == candidate).count(), candidate == b','))
        .unwrap_or(b',');
    if let Some(line) = crate::reports::unterminated_quote(text, delimiter) {
        let mut problem = file_error(
            "malformed_file",
            format!("tệp CSV sai cú pháp: dấu ngoặc kép mở ở dòng {line} không được đóng"),
        );
        problem.row = Some(line);
        return Err(problem);
    }
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        None => return Err(file_error("empty_sheet", "tệp CSV trống".to_owned())),
        Some(Err(err)) => return Err(file_error("malformed_file", format!("không đọc được tệp CSV: {err}"))),
        Some(Ok(record)) => record,
    };
    let header_row = header.position().map_or(1, |p| p.line() as usize);
    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|err| {
            let mut problem = file_error("malformed_file", format!("tệp CSV sai cú pháp: {err}"));
            problem.row = err.position().map(|p| p.line() as usize);
            problem
        })?;
        let row_number = record.position().map_or(0, |p| p.line() as usize);
        rows.push((row_number, record.iter().map(|text| Cell::from_text(text).into_owned()).collect()));
    }
    Ok(Table {
        header_row,
        first_column: 0,
        header: header.iter().map(|text| Cell::from_text(text).into_owned()).collect(),
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// Templates

/// The XLSX a unit fills in with its officers or members: the headings [`RegisterIntake`] reads,
/// with every column formatted as text so that codes, ids and phones keep their leading zeros.
pub fn template_xlsx(register: Register) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let text = rust_xlsxwriter::Format::new().set_num_format("@");
    let sheet = workbook.add_worksheet().set_name(match register {
        Register::Officer => "Cán bộ",
        Register::Member => "Hội viên",
    })?;
    let headings = [
        "person_id",
        "unit",
        "full_name",
        "role",
        "gender",
        "birth_year",
        "phone",
        "term_start",
        "term_end",
        "removed",
    ];
    for (column, heading) in headings.iter().enumerate() {
        sheet.write_string_with_format(0, column as u16, *heading, &bold)?;
        sheet.set_column_format(column as u16, &text)?;
        sheet.set_column_width(column as u16, 18)?;
    }
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        // Friday of 2025-W38, 15:00 in Hanoi.
        Utc.with_ymd_and_hms(2025, 9, 19, 8, 0, 0).unwrap()
    }

    fn villages() -> HashSet<String> {
        ["00004-001", "00004-002"].into_iter().map(str::to_owned).collect()
    }

    fn intake<'a>(scope: &'a str, villages: &'a HashSet<String>) -> RegisterIntake<'a> {
        RegisterIntake {
            units: Units::embedded(),
            scope,
            now: now(),
            submitted_by: Some("tok1"),
            villages: Some(villages),
        }
    }

    fn codes(errors: &[RegisterError]) -> Vec<(String, String)> {
        errors.iter().map(|e| (e.field.clone(), e.code.clone())).collect()
    }

    #[test]
    fn registers_json_is_strictly_typed_and_dates_stay_in_range() {
        let known = villages();
        let body = serde_json::json!([
            {"register": "officer", "person_id": 5, "unit": "00004", "full_name": 1, "role": "Chủ tịch",
             "birth_year": "1975", "term_start": "-0001-01-01"},
            {"register": "member", "person_id": "HV-1", "unit": "00004", "full_name": "Lê Văn C", "role": "Hội viên",
             "term_start": "2024-10-01", "term_end": "+262142-01-01", "removed": "yes"}
        ]);
        let errors = intake("00", &known).parse_people_json(body.to_string().as_bytes()).unwrap_err();
        let mut found = codes(&errors);
        found.sort();
        assert_eq!(
            found,
            [
                ("0.birth_year", "type"),
                ("0.full_name", "type"),
                ("0.person_id", "type"),
                ("0.term_start", "out_of_range"),
                ("1.removed", "type"),
                ("1.term_end", "out_of_range"),
            ]
            .map(|(field, code)| (field.to_owned(), code.to_owned()))
        );
        let taken = villages();
        let errors = intake("00004", &taken)
            .parse_villages_json(r#"[{"name": 5}, {"name": "Thôn Đông", "code": 12}]"#.as_bytes(), &taken);
        assert_eq!(
            codes(&errors.unwrap_err()),
            [("0.name".to_owned(), "type".to_owned()), ("1.code".to_owned(), "malformed_unit".to_owned())]
        );
        // The same values in a spreadsheet are what Excel makes of typed text: read as before.
        let csv = "register,person_id,unit,full_name,role,birth_year,term_start\nofficer,5,00004,An,Chủ tịch,1975,2024-10-01\n";
        let outcome = intake("00", &known).parse_people_csv(csv.as_bytes(), None, false);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.entries[0].birth_year, Some(1975));
        let open_quote = "register,person_id\n\"officer,5\n";
        let outcome = intake("00", &known).parse_people_csv(open_quote.as_bytes(), None, false);
        assert_eq!(
            outcome.errors.iter().map(|e| (e.row, e.code.as_str())).collect::<Vec<_>>(),
            [(Some(2), "malformed_file")]
        );
    }

    #[test]
    fn registers_people_json_is_validated_with_every_problem_named() {
        let known = villages();
        let body = serde_json::json!([
            {"register": "officer", "person_id": "BD-001", "unit": "00004", "full_name": " Nguyễn  Văn An ",
             "role": "Chủ tịch", "gender": "Nam", "birth_year": 1975, "phone": "0912 345 678", "term_start": "2024-10-01"},
            {"register": "member", "person_id": "BD-101", "unit": "00004-001", "full_name": "Trần Thị Bình",
             "role": "Hội viên", "term_start": "01/07/2025", "term_end": "2030-06-30"}
        ]);
        let people = intake("00004", &known).parse_people_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].full_name, "Nguyễn Văn An");
        assert_eq!((people[0].gender, people[0].birth_year), (Some(Gender::Male), Some(1975)));
        assert_eq!(people[1].term_start, NaiveDate::from_ymd_opt(2025, 7, 1).unwrap());
        assert_eq!(people[1].submitted_by.as_deref(), Some("tok1"));
        assert!(people[0].entry_id.get_version_num() == 7);

        let bad = serde_json::json!([
            {"register": "officer", "person_id": "x", "unit": "00097", "full_name": "", "role": "Ủy viên",
             "term_start": "2025-07-01", "term_end": "2025-01-01", "colour": "blue"},
            {"register": "boss", "person_id": "có dấu", "unit": "00004-009", "full_name": "A", "role": "B",
             "term_start": "32/13/2025", "birth_year": 1800, "phone": "12"}
        ]);
        let errors = intake("00004", &known).parse_people_json(bad.to_string().as_bytes()).unwrap_err();
        let found = codes(&errors);
        for expected in [
            ("0.colour", "unknown_field"),
            ("0.unit", "out_of_scope"),
            ("0.full_name", "required"),
            ("0.term_end", "term_end_before_start"),
            ("1.register", "unknown_register"),
            ("1.person_id", "malformed_person_id"),
            ("1.unit", "unknown_village"),
            ("1.term_start", "malformed_date"),
            ("1.birth_year", "out_of_range"),
            ("1.phone", "malformed_phone"),
        ] {
            assert!(found.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {found:?}");
        }
        // The central committee may write for anyone; a duplicate in one request is refused.
        let twice = serde_json::json!([
            {"register": "officer", "person_id": "1", "unit": "00097", "full_name": "A", "role": "B", "term_start": "2025-07-01"},
            {"register": "officer", "person_id": "1", "unit": "00097", "full_name": "A", "role": "C", "term_start": "2025-07-01"}
        ]);
        let errors = intake("00", &known).parse_people_json(twice.to_string().as_bytes()).unwrap_err();
        assert_eq!(codes(&errors), vec![("1.person_id".to_owned(), "duplicate_entry".to_owned())]);
        assert_eq!(intake("00004", &known).parse_people_json(b"{").unwrap_err()[0].code, "malformed_json");
    }

    #[test]
    fn registers_villages_json_assigns_numbers_and_refuses_other_communes() {
        let taken = villages();
        let body = serde_json::json!([{"name": "Thôn Đông"}, {"name": "Thôn Tây", "commune_code": "00004"},
            {"code": "00004-002", "name": "Tổ dân phố số 2", "removed": true}]);
        let created = intake("00004", &taken).parse_villages_json(body.to_string().as_bytes(), &taken).unwrap();
        let codes_made: Vec<&str> = created.iter().map(|v| v.code.as_str()).collect();
        assert_eq!(codes_made, ["00004-003", "00004-004", "00004-002"]);
        assert!(created[2].removed && created.iter().all(|v| v.commune_code == "00004"));

        let bad = serde_json::json!([{"code": "00004-005", "commune_code": "00097", "name": "X"},
            {"code": "00097-001", "name": "Y"}, {"code": "00004-000", "name": "Z"}, {"code": "00004-006", "name": " "}]);
        let errors = intake("00004", &taken).parse_villages_json(bad.to_string().as_bytes(), &taken).unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("0.commune_code", "village_of_other_commune"),
                ("1.code", "out_of_scope"),
                ("2.code", "malformed_unit"),
                ("3.name", "required")
            ]
            .map(|(f, c)| (f.to_owned(), c.to_owned()))
        );
        // A province names the commune; without one nothing can be numbered.
        let errors =
            intake("01", &taken).parse_villages_json(r#"[{"name": "Thôn Bắc"}]"#.as_bytes(), &taken).unwrap_err();
        assert_eq!(codes(&errors), vec![("0.code".to_owned(), "required".to_owned())]);
    }

    #[test]
    fn registers_csv_names_row_and_column_and_is_all_or_nothing() {
        let known = villages();
        let sheet = "Mã đơn vị;Họ và tên;Chức vụ;person_id;Bắt đầu nhiệm kỳ;Kết thúc nhiệm kỳ;Điện thoại\n\
                     00004;Nguyễn Văn An;Chủ tịch;1;01/10/2024;;0912345678\n\
                     00004-001;Lê Văn Cường;Trưởng ban công tác Mặt trận;2;2024-10-01;2024-01-01;\n\
                     \n\
                     00004-002;Phạm Thị Dung;Ủy viên;3;2024-10-01;;\n";
        let outcome = intake("00004", &known).parse_people_csv(sheet.as_bytes(), Some(Register::Officer), false);
        assert!(outcome.entries.is_empty(), "nothing partial");
        assert_eq!((outcome.data_rows, outcome.rejected_rows), (3, 1));
        let problem = &outcome.errors[0];
        assert_eq!((problem.row, problem.column.as_deref(), problem.field.as_str()), (Some(3), Some("F"), "term_end"));
        assert_eq!(problem.code, "term_end_before_start");
        assert!(problem.to_string().starts_with("dòng 3, cột F: term_end:"), "{problem}");
        let partial = intake("00004", &known).parse_people_csv(sheet.as_bytes(), Some(Register::Officer), true);
        assert_eq!(partial.entries.len(), 2);
        assert!(partial.entries.iter().all(|p| p.register == Register::Officer && p.source == EntrySource::Csv));
        // Without a register column or a default, the header says so; unknown headings too.
        let outcome = intake("00004", &known).parse_people_csv(b"unit,full_name,mau sac\n00004,A,x\n", None, false);
        let found = codes(&outcome.errors);
        assert!(found.contains(&("register".to_owned(), "missing_column".to_owned())), "{found:?}");
        assert!(found.contains(&("mau sac".to_owned(), "unknown_column".to_owned())), "{found:?}");
        assert_eq!(outcome.errors.iter().find(|e| e.code == "unknown_column").unwrap().column.as_deref(), Some("C"));
    }

    #[test]
    fn registers_xlsx_upload_reads_dates_numbers_and_vietnamese_headings() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        let date = rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy");
        for (column, heading) in
            ["Danh sách", "Mã cán bộ", "Mã đơn vị", "Họ và tên", "Chức vụ", "Năm sinh", "Từ ngày"].iter().enumerate()
        {
            sheet.write_string(0, column as u16, *heading).unwrap();
        }
        sheet.write_string(1, 0, "Cán bộ").unwrap();
        sheet.write_number(1, 1, 17.0).unwrap();
        sheet.write_number(1, 2, 4.0).unwrap();
        sheet.write_string(1, 3, "Hoàng Văn Em").unwrap();
        sheet.write_string(1, 4, "Phó Chủ tịch").unwrap();
        sheet.write_number(1, 5, 1980.0).unwrap();
        let day = rust_xlsxwriter::ExcelDateTime::from_ymd(2024, 10, 1).unwrap();
        sheet.write_datetime_with_format(1, 6, &day, &date).unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        let known = villages();
        let outcome = intake("00004", &known).parse_people_xlsx(&bytes, None, false);
        // Excel turned the commune code `00004` into 4: named at row 2, column C.
        assert_eq!(codes(&outcome.errors), vec![("unit".to_owned(), "ambiguous_unit_code".to_owned())]);
        assert_eq!((outcome.errors[0].row, outcome.errors[0].column.as_deref()), (Some(2), Some("C")));

        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        for (column, heading) in
            ["register", "person_id", "unit", "full_name", "role", "birth_year", "term_start"].iter().enumerate()
        {
            sheet.write_string(0, column as u16, *heading).unwrap();
        }
        for (column, value) in ["member", "17", "00004-002", "Hoàng Văn Em", "Hội viên"].iter().enumerate() {
            sheet.write_string(1, column as u16, *value).unwrap();
        }
        sheet.write_number(1, 5, 1980.0).unwrap();
        sheet.write_datetime_with_format(1, 6, &day, &date).unwrap();
        let outcome = intake("00004", &known).parse_people_xlsx(&workbook.save_to_buffer().unwrap(), None, false);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let person = &outcome.entries[0];
        assert_eq!(
            (person.register, person.unit.as_str(), person.birth_year),
            (Register::Member, "00004-002", Some(1980))
        );
        assert_eq!(person.term_start, NaiveDate::from_ymd_opt(2024, 10, 1).unwrap());
        assert_eq!(person.source, EntrySource::Xlsx);
        assert_eq!(&template_xlsx(Register::Officer).unwrap()[..2], b"PK");
    }

    #[test]
    fn a_value_far_beyond_the_sheet_refuses_the_register_upload_naming_the_cell() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        for (column, heading) in ["register", "person_id", "unit", "full_name", "role"].iter().enumerate() {
            sheet.write_string(0, column as u16, *heading).unwrap();
        }
        sheet.write_string(1_048_575, 2, "00004").unwrap();
        let known = villages();
        let outcome = intake("00004", &known).parse_people_xlsx(&workbook.save_to_buffer().unwrap(), None, true);
        assert_eq!(codes(&outcome.errors), vec![(String::new(), "too_many_rows".to_owned())]);
        assert_eq!((outcome.errors[0].row, outcome.errors[0].column.as_deref()), (Some(1_048_576), Some("C")));
        assert!(outcome.entries.is_empty());
    }

    fn person(unit: &str, id: &str, role: &str, at_minutes: i64) -> PersonEntry {
        PersonEntry {
            entry_id: Uuid::now_v7(),
            register: Register::Officer,
            person_id: id.to_owned(),
            unit: unit.to_owned(),
            full_name: "Nguyễn Văn An".to_owned(),
            role: role.to_owned(),
            gender: None,
            birth_year: Some(1975),
            phone: Some("0912345678".to_owned()),
            term_start: NaiveDate::from_ymd_opt(2024, 10, 1).unwrap(),
            term_end: None,
            removed: false,
            submitted_by: None,
            submitted_at: now() + chrono::Duration::minutes(at_minutes),
            source: EntrySource::Api,
        }
    }

    fn village(code: &str, name: &str, removed: bool, at_minutes: i64) -> VillageEntry {
        VillageEntry {
            entry_id: Uuid::now_v7(),
            code: code.to_owned(),
            name: name.to_owned(),
            commune_code: code[..5].to_owned(),
            removed,
            submitted_by: None,
            submitted_at: now() + chrono::Duration::minutes(at_minutes),
            source: EntrySource::Api,
        }
    }

    #[test]
    fn registers_latest_entry_wins_per_unit_and_person() {
        let rows = vec![
            person("00004", "1", "Ủy viên", 0),
            person("00004", "1", "Chủ tịch", 5),
            person("00097", "1", "Ủy viên", 1),
            person("00004", "2", "Ủy viên", 0),
        ];
        let current = latest_people(rows);
        let roles: Vec<(&str, &str, &str)> =
            current.iter().map(|p| (p.unit.as_str(), p.person_id.as_str(), p.role.as_str())).collect();
        assert_eq!(roles, [("00004", "1", "Chủ tịch"), ("00004", "2", "Ủy viên"), ("00097", "1", "Ủy viên")]);
        let mut ended = person("00004", "2", "Ủy viên", 0);
        ended.term_end = NaiveDate::from_ymd_opt(2025, 6, 30);
        assert!(ended.active_on(NaiveDate::from_ymd_opt(2025, 6, 30).unwrap()));
        assert!(!ended.active_on(NaiveDate::from_ymd_opt(2025, 7, 1).unwrap()));
        let masked = ended.masked();
        assert_eq!(
            (masked.full_name.as_str(), masked.phone.as_deref(), masked.birth_year),
            ("N. V. A.", Some("*******678"), None)
        );
        assert_eq!(masked.person_id, "2", "a unit's own numbering stays readable");
    }

    #[test]
    fn registers_masked_entries_hide_id_numbers_used_as_person_ids() {
        let mut entry = person("00004", "079200009999", "Ủy viên", 0);
        entry.phone = Some("0912  345 678".to_owned());
        let masked = entry.masked();
        // As the SQL view `register_entries` masks `person_id` (the text masking).
        assert_eq!(masked.person_id, "*********999");
        assert_eq!(masked.person_id, crate::privacy::mask_text(&entry.person_id));
        // A phone is hidden whatever its separators.
        assert_eq!(masked.phone.as_deref(), Some("****  *** 678"));
        assert_eq!((masked.full_name.as_str(), masked.birth_year), ("N. V. A.", None));
        // What is not personal data is left as it was.
        assert_eq!(
            (masked.unit.as_str(), masked.role.as_str(), masked.term_start, masked.entry_id),
            (entry.unit.as_str(), entry.role.as_str(), entry.term_start, entry.entry_id)
        );
        for (id, shown) in [
            ("BD-001", "BD-001"),
            ("HV-12345", "HV-12345"),
            ("cccd:001203004567", "cccd:*********567"),
            // Dots make it look like an amount to the text masking; it is still an ID number.
            ("079.200.009.999", "***.***.***.999"),
        ] {
            assert_eq!(person("00004", id, "Ủy viên", 0).masked().person_id, shown, "{id}");
        }
    }

    #[test]
    fn registers_villages_merge_csv_and_lake() {
        let csv = vec![
            Village { code: "00004-001".to_owned(), name: "Tổ 1".to_owned() },
            Village { code: "00004-002".to_owned(), name: "Tổ 2".to_owned() },
        ];
        let lake = vec![
            village("00004-002", "Tổ dân phố số 2", false, 0),
            village("00004-003", "Tổ 3", false, 0),
            village("00004-001", "Tổ 1", true, 1),
            village("00004-004", "Tổ 4", true, 0),
            village("00004-004", "Tổ bốn", false, 2),
        ];
        let merged = merge_villages(&csv, &lake);
        let names: Vec<(&str, &str)> = merged.iter().map(|v| (v.code.as_str(), v.name.as_str())).collect();
        assert_eq!(names, [("00004-002", "Tổ dân phố số 2"), ("00004-003", "Tổ 3"), ("00004-004", "Tổ bốn")]);
    }

    #[test]
    fn registers_records_round_trip_through_json_and_arrow() {
        let mut officer = person("00004-001", "1", "Trưởng ban công tác Mặt trận", 0);
        officer.term_end = NaiveDate::from_ymd_opt(2029, 9, 30);
        officer.gender = Some(Gender::Female);
        let records = vec![
            RegisterRecord::Person(officer),
            RegisterRecord::Person(person("00", "TW-1", "Chủ tịch", 1)),
            RegisterRecord::Village(village("00004-001", "Tổ dân phố số 1", false, 2)),
        ];
        let json = serde_json::to_string(&records[2]).unwrap();
        assert!(json.contains("\"kind\":\"village\""), "{json}");
        for record in &records {
            let text = serde_json::to_vec(record).unwrap();
            assert_eq!(&serde_json::from_slice::<RegisterRecord>(&text).unwrap(), record);
        }
        let batch = to_record_batch(&records).unwrap();
        assert_eq!(batch.schema(), arrow_schema());
        let province = batch.column_by_name("province_code").unwrap();
        let province = province.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((province.value(0), province.is_null(1)), ("01", true));
        assert_eq!(from_record_batch(&batch).unwrap(), records);
    }

    #[test]
    fn registers_pipeline_checks_catch_what_intake_would_refuse() {
        let everyone = HashSet::new();
        let central = RegisterIntake { villages: None, ..intake("00", &everyone) };
        assert!(central.validate_person(&person("00004-009", "1", "Ủy viên", 0)).is_empty(), "villages not checked");
        let mut bad = person("99999", "có dấu", " ", 0);
        bad.term_end = NaiveDate::from_ymd_opt(2020, 1, 1);
        let found = codes(&central.validate_person(&bad));
        assert_eq!(
            found,
            [
                ("unit", "unknown_unit"),
                ("person_id", "malformed_person_id"),
                ("role", "required"),
                ("term_end", "term_end_before_start")
            ]
            .map(|(f, c)| (f.to_owned(), c.to_owned()))
        );
        let mut other = village("00004-003", "Tổ 3", false, 0);
        other.commune_code = "00097".to_owned();
        assert_eq!(
            codes(&central.validate_village(&other)),
            vec![("commune_code".to_owned(), "village_of_other_commune".to_owned())]
        );
        let commune = RegisterIntake { villages: None, ..intake("00097", &everyone) };
        assert_eq!(codes(&commune.validate_village(&village("00004-003", "Tổ 3", false, 0)))[0].1, "out_of_scope");
    }
}
