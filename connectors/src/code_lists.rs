//! Updates of the reference code lists (provinces, 2025 communes, pre-2025 communes and the
//! crosswalk between them) from another system, kept as versions in the data directory.
//!
//! In: a Data Package as `voxpop export` writes it (`datapackage.json` and CSV, XLSX or Parquet
//! resources named `provinces`, `communes`, `communes_pre2025`, `unit_crosswalk_2025`, any
//! subset; other resources are ignored), or one such file with its dataset named.
//! Out: a new version `DIR/reference/units/v{N}/` of the full lists: the files of
//! `schema/data/admin-units` with `valid_from`/`valid_to` columns ([`Units::write_dir`]) and a
//! `version.json` (number, imported_at, source, valid_from, previous version, row counts, bytes
//! and SHA-256 of each file, the codes added, changed and retired). Commands install the newest
//! version before anything reads the lists ([`install_newest`]).
//! Guarantees: every row is checked against its dataset's Table Schema
//! ([`voxpop_schema::datasets`]: types, required, patterns, enums, bounds, unique keys, text in
//! NFC, `valid_to` not before `valid_from`) and against the rules between the lists: a commune's
//! province is listed; crosswalk codes are listed in the pre-2025 and the 2025 lists; every
//! pre-2025 commune keeps exactly one default target; no code is deleted (a unit is retired by
//! giving it a `valid_to`, so old petitions and pre-2025 codes stay resolvable); a new 2025 code
//! does not shadow a pre-2025 one. Each problem is reported with its file, line and field; one
//! problem rejects the whole update and nothing is stored. Versions are written aside and renamed
//! into place: an earlier version is never overwritten, a half-written one never used.
//!
//! Each resource of an update replaces its whole list (an export of a list carries all of it);
//! lists not in the update stay as they are. A column of the Table Schema that a file lacks keeps
//! the current values of the codes already listed (and is empty for new codes). A province's
//! `commune_count` is recomputed from the communes in force on the day of the import.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use deltalake::arrow::datatypes::{DataType, Field};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use voxpop_schema::datasets::{self, DatasetSpec};
use voxpop_schema::units::{
    COMMUNES_FILE, CROSSWALK_FILE, Commune, CrosswalkEntry, LEGACY_FILE, LegacyCommune, PROVINCES_FILE, Province,
    UnitListError,
};
use voxpop_schema::{FieldError, Units};

use crate::import::{ImportError, RejectedRow, SourceRow, read_table_with_columns};

/// The datasets an update of the code lists may carry, in the order they are checked.
pub const CODE_LISTS: [&str; 4] = ["provinces", "communes", "communes_pre2025", "unit_crosswalk_2025"];

/// The file of each list in a version directory, by dataset.
const FILES: [(&str, &str); 4] = [
    ("provinces", PROVINCES_FILE),
    ("communes", COMMUNES_FILE),
    ("communes_pre2025", LEGACY_FILE),
    ("unit_crosswalk_2025", CROSSWALK_FILE),
];

/// Where the versions of the lists live in a data directory (`v1`, `v2`, ...).
pub fn versions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("reference").join("units")
}

/// Why an update could not be read or stored (rows that fail their checks are no error: they
/// are the [`CodeListImport::Rejected`] report).
#[derive(Debug, thiserror::Error)]
pub enum CodeListError {
    #[error(transparent)]
    Read(#[from] ImportError),
    /// The command was not given what it needs (a dataset name for a single file, ...).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Lists(#[from] UnitListError),
    /// A version directory cannot be read, written or trusted.
    #[error("{path}: {message}")]
    Version { path: PathBuf, message: String },
}

fn version_error(path: &Path, message: impl ToString) -> CodeListError {
    CodeListError::Version { path: path.to_owned(), message: message.to_string() }
}

/// One list of an update, as read from its file.
#[derive(Debug, Clone)]
pub struct UpdateTable {
    /// One of [`CODE_LISTS`].
    pub dataset: &'static str,
    /// The file as reports name it (its path in the package, or its file name).
    pub file: String,
    /// The file's columns, in order.
    pub columns: Vec<String>,
    pub rows: Vec<SourceRow>,
}

/// An update of the code lists as read: its tables, and the files already found wanting (a
/// package whose file does not match its declared SHA-256).
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// Where the update came from (kept in `version.json`).
    pub source: String,
    pub tables: Vec<UpdateTable>,
    pub rejected: Vec<RejectedRow>,
}

fn usage(message: impl Into<String>) -> CodeListError {
    CodeListError::Usage(message.into())
}

fn code_list_name(name: &str) -> Option<&'static str> {
    CODE_LISTS.iter().copied().find(|list| *list == name)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Reads an update: the code-list resources of a Data Package directory (only `dataset`'s when
/// given), or one CSV/XLSX/Parquet file holding the list `dataset` (by default the list its
/// file stem names, e.g. `communes.csv`).
pub fn read_update(path: &Path, dataset: Option<&str>) -> Result<Update, CodeListError> {
    let dataset = match dataset {
        Some(name) => Some(
            code_list_name(name)
                .ok_or_else(|| usage(format!("`{name}` is no code list; expected one of {}", CODE_LISTS.join(", "))))?,
        ),
        None => None,
    };
    let mut update = Update { source: path.display().to_string(), ..Update::default() };
    if !path.is_dir() {
        let stem = path.file_stem().and_then(|s| s.to_str()).and_then(code_list_name);
        let dataset = dataset.or(stem).ok_or_else(|| {
            usage(format!("{}: which list is it? name it with `--dataset` ({})", path.display(), CODE_LISTS.join(", ")))
        })?;
        let (columns, rows) = read_table_with_columns(path)?;
        let file = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        update.tables.push(UpdateTable { dataset, file, columns, rows });
        return Ok(update);
    }
    let descriptor = path.join("datapackage.json");
    let read = |message: String| CodeListError::Read(ImportError::Read { path: descriptor.clone(), message });
    let text = std::fs::read_to_string(&descriptor).map_err(|err| read(err.to_string()))?;
    let package: Value = serde_json::from_str(&text).map_err(|err| read(err.to_string()))?;
    for resource in package["resources"].as_array().into_iter().flatten() {
        let Some(name) = resource["name"].as_str().and_then(code_list_name) else { continue };
        if dataset.is_some_and(|wanted| wanted != name) {
            continue;
        }
        let Some(relative) = resource["path"].as_str() else {
            return Err(read(format!("resource `{name}` has no `path`")));
        };
        if update.tables.iter().any(|t| t.dataset == name) {
            return Err(read(format!("resource `{name}` is listed twice")));
        }
        let file_path = path.join(relative);
        // A declared checksum is checked: a file edited after the export is refused, not guessed at.
        if let Some(declared) = resource["hash"].as_str().and_then(|h| h.strip_prefix("sha256:")) {
            let bytes = std::fs::read(&file_path).map_err(|err| {
                CodeListError::Read(ImportError::Read { path: file_path.clone(), message: err.to_string() })
            })?;
            let actual = sha256_hex(&bytes);
            if !actual.eq_ignore_ascii_case(declared) {
                update.rejected.push(RejectedRow {
                    file: relative.to_owned(),
                    line: 0,
                    errors: vec![FieldError::new(
                        "hash",
                        "hash_mismatch",
                        format!(
                            "the file's SHA-256 is {actual}, not the {declared} datapackage.json declares (edited \
                             after export? remove `hash` from the resource to accept it)"
                        ),
                    )],
                });
            }
        }
        let (columns, rows) = read_table_with_columns(&file_path)?;
        update.tables.push(UpdateTable { dataset: name, file: relative.to_owned(), columns, rows });
    }
    if update.tables.is_empty() {
        return Err(read(match dataset {
            Some(name) => format!("the package has no `{name}` resource"),
            None => format!("the package has no code-list resource ({})", CODE_LISTS.join(", ")),
        }));
    }
    Ok(update)
}

/// A cell of a row, checked and typed.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    /// The file has no such column.
    Absent,
    Null,
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
    Date(NaiveDate),
}

/// A row that passed its checks.
#[derive(Debug, Clone)]
struct CheckedRow {
    line: usize,
    cells: HashMap<String, Cell>,
}

impl CheckedRow {
    fn text(&self, name: &str) -> String {
        match self.cells.get(name) {
            Some(Cell::Text(text)) => text.clone(),
            _ => String::new(),
        }
    }

    fn number(&self, name: &str, current: Option<f64>) -> Option<f64> {
        match self.cells.get(name) {
            Some(Cell::Number(value)) => Some(*value),
            Some(Cell::Integer(value)) => Some(*value as f64),
            Some(Cell::Absent) | None => current,
            _ => None,
        }
    }

    fn date(&self, name: &str, current: Option<NaiveDate>) -> Option<NaiveDate> {
        match self.cells.get(name) {
            Some(Cell::Date(day)) => Some(*day),
            Some(Cell::Absent) | None => current,
            _ => None,
        }
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.cells.get(name), Some(Cell::Bool(true)))
    }
}

/// Whether a column must have a value.
fn required(spec: &DatasetSpec, field: &Field) -> bool {
    !field.is_nullable() || spec.column(field.name()).is_some_and(|doc| doc.constraints.required)
}

/// Checks one cell against its column of the Table Schema.
fn check_cell(spec: &DatasetSpec, field: &Field, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Cell {
    let name = field.name().as_str();
    let Some(raw) = raw else { return Cell::Absent };
    let value = raw.trim();
    if value.is_empty() {
        if required(spec, field) {
            errors.push(FieldError::required(name));
        }
        return Cell::Null;
    }
    let constraints = spec.column(name).map(|doc| doc.constraints.clone()).unwrap_or_default();
    let mut error = |code: &str, message: String| errors.push(FieldError::new(name, code, message));
    let bounds = |number: f64, error: &mut dyn FnMut(&str, String)| {
        if let Some(min) = constraints.minimum
            && number < min
        {
            error("minimum", format!("`{value}` is below the minimum {min}"));
        }
        if let Some(max) = constraints.maximum
            && number > max
        {
            error("maximum", format!("`{value}` is above the maximum {max}"));
        }
    };
    match field.data_type() {
        DataType::Boolean => match value {
            "true" | "True" | "TRUE" | "1" => Cell::Bool(true),
            "false" | "False" | "FALSE" | "0" => Cell::Bool(false),
            _ => {
                error("type", format!("`{value}` is not a boolean (true or false)"));
                Cell::Null
            }
        },
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => match value.parse::<u32>() {
            Ok(number) => {
                bounds(number as f64, &mut error);
                Cell::Integer(number as i64)
            }
            Err(_) => {
                error("type", format!("`{value}` is not a whole number ≥ 0"));
                Cell::Null
            }
        },
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => match value.parse::<i64>() {
            Ok(number) => {
                bounds(number as f64, &mut error);
                Cell::Integer(number)
            }
            Err(_) => {
                error("type", format!("`{value}` is not a whole number"));
                Cell::Null
            }
        },
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            match value.parse::<f64>().ok().filter(|n| n.is_finite()) {
                Some(number) => {
                    bounds(number, &mut error);
                    Cell::Number(number)
                }
                None => {
                    error("type", format!("`{value}` is not a number"));
                    Cell::Null
                }
            }
        }
        DataType::Date32 | DataType::Date64 => match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Ok(day) => Cell::Date(day),
            Err(_) => {
                error("type", format!("`{value}` is not a date (YYYY-MM-DD)"));
                Cell::Null
            }
        },
        _ => {
            if voxpop_schema::text::nfc(value) != value {
                error("not_nfc", format!("`{value}` is not in Unicode NFC (composed characters)"));
            }
            if let Some(pattern) = constraints.pattern {
                match Pattern::parse(pattern) {
                    Ok(parsed) if parsed.matches(value) => {}
                    Ok(_) => error("pattern", format!("`{value}` does not match `{pattern}`")),
                    Err(why) => error("pattern", format!("the pattern `{pattern}` cannot be checked: {why}")),
                }
            }
            if let Some(values) = &constraints.enumeration
                && !values.iter().any(|allowed| allowed == value)
            {
                error("enum", format!("`{value}` is not one of {}", values.join(", ")));
            }
            if let Some(max) = constraints.max_length
                && value.chars().count() > max
            {
                error("too_long", format!("longer than {max} characters"));
            }
            Cell::Text(value.to_owned())
        }
    }
}

/// The rows of one table that passed the checks of its Table Schema; the others are reported.
fn check_table(table: &UpdateTable, rejected: &mut Vec<RejectedRow>) -> Option<Vec<CheckedRow>> {
    let Some(spec) = datasets::dataset(table.dataset) else {
        rejected.push(file_problem(&table.file, "", "unknown_dataset", format!("`{}` is no dataset", table.dataset)));
        return None;
    };
    let fields = spec.schema.fields();
    let mut header_ok = true;
    for field in fields {
        if required(&spec, field) && !table.columns.iter().any(|c| c == field.name()) {
            rejected.push(file_problem(
                &table.file,
                field.name(),
                "missing_column",
                format!("the file has no column `{}`, which `{}` requires", field.name(), spec.name),
            ));
            header_ok = false;
        }
    }
    for column in &table.columns {
        if !fields.iter().any(|f| f.name() == column) {
            let known: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            rejected.push(file_problem(
                &table.file,
                column,
                "unknown_column",
                format!("`{column}` is no column of `{}` ({})", spec.name, known.join(", ")),
            ));
            header_ok = false;
        }
    }
    if !header_ok {
        return None;
    }
    let mut checked = Vec::with_capacity(table.rows.len());
    let mut seen_keys: HashMap<String, usize> = HashMap::new();
    for row in &table.rows {
        let mut errors = Vec::new();
        let mut cells = HashMap::with_capacity(fields.len());
        for field in fields {
            let raw = if table.columns.iter().any(|c| c == field.name()) {
                // A Parquet row leaves null cells out.
                Some(row.cells.get(field.name()).map_or("", String::as_str))
            } else {
                None
            };
            cells.insert(field.name().clone(), check_cell(&spec, field, raw, &mut errors));
        }
        if let (Some(Cell::Date(from)), Some(Cell::Date(to))) = (cells.get("valid_from"), cells.get("valid_to"))
            && to < from
        {
            errors.push(FieldError::new("valid_to", "before_valid_from", format!("{to} is before valid_from {from}")));
        }
        // The primary key (and so every `unique` code) is unique in the file.
        let key: Vec<&str> =
            spec.primary_key.iter().map(|name| row.cells.get(*name).map_or("", |v| v.trim())).collect();
        if key.iter().all(|part| !part.is_empty()) {
            let joined = key.join(",");
            if let Some(first) = seen_keys.get(&joined) {
                errors.push(FieldError::new(
                    &spec.primary_key.join(","),
                    "duplicate",
                    format!("`{joined}` is also on line {first}"),
                ));
            } else {
                seen_keys.insert(joined, row.line);
            }
        }
        if errors.is_empty() {
            checked.push(CheckedRow { line: row.line, cells });
        } else {
            rejected.push(RejectedRow { file: table.file.clone(), line: row.line, errors });
        }
    }
    // Rows that failed are left out of the cross-list checks (their codes still count as
    // present for the deletion check, see `codes_in_file`).
    Some(checked)
}

/// A problem with a file as a whole (a missing column, a deleted code): reported on line 0.
fn file_problem(file: &str, field: &str, code: &str, message: String) -> RejectedRow {
    RejectedRow { file: file.to_owned(), line: 0, errors: vec![FieldError::new(field, code, message)] }
}

fn row_problem(file: &str, line: usize, field: &str, code: &str, message: String) -> RejectedRow {
    RejectedRow { file: file.to_owned(), line, errors: vec![FieldError::new(field, code, message)] }
}

/// The codes a file lists, valid rows or not.
fn codes_in_file(table: &UpdateTable) -> HashSet<String> {
    table.rows.iter().filter_map(|row| row.cells.get("code")).map(|code| code.trim().to_owned()).collect()
}

/// The day in Vietnam at `now`.
pub fn local_day(now: DateTime<Utc>) -> NaiveDate {
    FixedOffset::east_opt(7 * 3600).map_or(now.date_naive(), |zone| now.with_timezone(&zone).date_naive())
}

/// Checks `update` against the current lists `base`, and returns the merged lists when every
/// row passes; otherwise every problem found (nothing is merged). `today` decides which codes
/// are in force (see the module docs).
pub fn validate(base: &Units, update: &Update, today: NaiveDate) -> Result<Units, Vec<RejectedRow>> {
    let mut rejected = update.rejected.clone();
    let mut checked: HashMap<&'static str, (&UpdateTable, Vec<CheckedRow>)> = HashMap::new();
    for table in &update.tables {
        if let Some(rows) = check_table(table, &mut rejected) {
            checked.insert(table.dataset, (table, rows));
        }
    }
    // Tables whose header was refused cannot be merged; what follows would only echo that.
    if update.tables.iter().any(|t| !checked.contains_key(t.dataset)) {
        return Err(rejected);
    }

    // The merged lists: each list of the update replaces the current one.
    let provinces: Vec<Province> = match checked.get("provinces") {
        Some((_, rows)) => rows
            .iter()
            .map(|row| {
                let current = base.province(&row.text("code"));
                Province {
                    code: row.text("code"),
                    name: row.text("name"),
                    commune_count: 0,
                    valid_from: row.date("valid_from", current.and_then(|p| p.valid_from)),
                    valid_to: row.date("valid_to", current.and_then(|p| p.valid_to)),
                }
            })
            .collect(),
        None => base.provinces().to_vec(),
    };
    let communes: Vec<Commune> = match checked.get("communes") {
        Some((_, rows)) => rows
            .iter()
            .map(|row| {
                let current = base.commune(&row.text("code"));
                Commune {
                    code: row.text("code"),
                    name: row.text("name"),
                    kind: row.text("kind"),
                    province_code: row.text("province_code"),
                    lat: row.number("lat", current.and_then(|c| c.lat)),
                    lon: row.number("lon", current.and_then(|c| c.lon)),
                    area_km2: row.number("area_km2", current.and_then(|c| c.area_km2)),
                    valid_from: row.date("valid_from", current.and_then(|c| c.valid_from)),
                    valid_to: row.date("valid_to", current.and_then(|c| c.valid_to)),
                }
            })
            .collect(),
        None => base.communes().to_vec(),
    };
    let legacy: Vec<LegacyCommune> = match checked.get("communes_pre2025") {
        Some((_, rows)) => rows
            .iter()
            .map(|row| {
                let current = base.legacy_commune(&row.text("code"));
                LegacyCommune {
                    code: row.text("code"),
                    name: row.text("name"),
                    kind: row.text("kind"),
                    district_code: row.text("district_code"),
                    district_name: row.text("district_name"),
                    province_code: row.text("province_code"),
                    province_name: row.text("province_name"),
                    valid_from: row.date("valid_from", current.and_then(|c| c.valid_from)),
                    valid_to: row.date("valid_to", current.and_then(|c| c.valid_to)),
                }
            })
            .collect(),
        None => {
            let mut legacy: Vec<LegacyCommune> = base.legacy_communes().cloned().collect();
            legacy.sort_by(|a, b| a.code.cmp(&b.code));
            legacy
        }
    };
    let crosswalk: Vec<CrosswalkEntry> = match checked.get("unit_crosswalk_2025") {
        Some((_, rows)) => rows
            .iter()
            .map(|row| CrosswalkEntry {
                old_code: row.text("old_code"),
                new_code: row.text("new_code"),
                split: row.flag("split"),
                default_target: row.flag("default_target"),
            })
            .collect(),
        None => base.crosswalk().to_vec(),
    };

    let province_codes: HashSet<&str> = provinces.iter().map(|p| p.code.as_str()).collect();
    let commune_codes: HashSet<&str> = communes.iter().map(|c| c.code.as_str()).collect();
    let legacy_codes: HashSet<&str> = legacy.iter().map(|c| c.code.as_str()).collect();

    // No code disappears: a unit is retired with a `valid_to`, never deleted.
    for table in &update.tables {
        let (current, noun): (Vec<(&str, bool, Option<NaiveDate>)>, &str) = match table.dataset {
            "provinces" => (
                base.provinces().iter().map(|p| (p.code.as_str(), p.in_force_on(today), p.valid_to)).collect(),
                "province",
            ),
            "communes" => (
                base.communes().iter().map(|c| (c.code.as_str(), c.in_force_on(today), c.valid_to)).collect(),
                "commune",
            ),
            "communes_pre2025" => (
                base.legacy_communes().map(|c| (c.code.as_str(), c.in_force_on(today), c.valid_to)).collect(),
                "pre-2025 commune",
            ),
            _ => continue,
        };
        let listed = codes_in_file(table);
        let mut missing: Vec<_> = current.into_iter().filter(|(code, _, _)| !listed.contains(*code)).collect();
        missing.sort_by_key(|(code, _, _)| *code);
        for (code, in_force, valid_to) in missing {
            let message = if in_force {
                format!(
                    "{noun} `{code}` is in force and missing from the update: retire it by giving it a valid_to, \
                     never delete it"
                )
            } else {
                let until = valid_to.map_or(String::new(), |day| format!(" (in force until {day})"));
                format!(
                    "{noun} `{code}`{until} is missing from the update: codes stay listed so that old petitions \
                     still resolve"
                )
            };
            rejected.push(file_problem(&table.file, "code", "deleted", message));
        }
    }

    // Every commune's province is listed.
    if let Some((table, rows)) = checked.get("communes") {
        for row in rows {
            let province = row.text("province_code");
            if !province_codes.contains(province.as_str()) {
                rejected.push(row_problem(
                    &table.file,
                    row.line,
                    "province_code",
                    "unknown_province",
                    format!("province `{province}` is not in the provinces list"),
                ));
            }
            // A new 2025 code equal to a pre-2025 code would take over that old code.
            let code = row.text("code");
            if base.commune(&code).is_none() && legacy_codes.contains(code.as_str()) {
                rejected.push(row_problem(
                    &table.file,
                    row.line,
                    "code",
                    "shadows_pre2025",
                    format!("`{code}` is a pre-2025 commune code: as a new 2025 code it would stop resolving to it"),
                ));
            }
        }
    }

    // The crosswalk joins listed codes; each old code has one default target.
    let mut defaults: HashMap<&str, usize> = HashMap::new();
    if let Some((table, rows)) = checked.get("unit_crosswalk_2025") {
        for (row, entry) in rows.iter().zip(&crosswalk) {
            if !legacy_codes.contains(entry.old_code.as_str()) {
                rejected.push(row_problem(
                    &table.file,
                    row.line,
                    "old_code",
                    "unknown_commune",
                    format!("`{}` is not in the pre-2025 list", entry.old_code),
                ));
            }
            if !commune_codes.contains(entry.new_code.as_str()) {
                rejected.push(row_problem(
                    &table.file,
                    row.line,
                    "new_code",
                    "unknown_commune",
                    format!("`{}` is not in the 2025 list", entry.new_code),
                ));
            }
            if entry.default_target {
                if let Some(first) = defaults.get(entry.old_code.as_str()) {
                    rejected.push(row_problem(
                        &table.file,
                        row.line,
                        "default_target",
                        "two_defaults",
                        format!("`{}` already has a default target on line {first}", entry.old_code),
                    ));
                } else {
                    defaults.insert(entry.old_code.as_str(), row.line);
                }
            }
        }
    } else {
        defaults = crosswalk.iter().filter(|e| e.default_target).map(|e| (e.old_code.as_str(), 0)).collect();
    }
    // Every pre-2025 code keeps resolving: it has a default target.
    if checked.contains_key("unit_crosswalk_2025") || checked.contains_key("communes_pre2025") {
        for commune in &legacy {
            if defaults.contains_key(commune.code.as_str()) {
                continue;
            }
            let message = format!(
                "pre-2025 commune `{}` has no default target in the crosswalk: the code would no longer resolve",
                commune.code
            );
            match (checked.get("communes_pre2025"), checked.get("unit_crosswalk_2025")) {
                (Some((table, rows)), _) => {
                    let line = rows.iter().find(|r| r.text("code") == commune.code).map_or(0, |r| r.line);
                    rejected.push(row_problem(&table.file, line, "code", "no_default_target", message));
                }
                (None, Some((table, _))) => {
                    rejected.push(file_problem(&table.file, "old_code", "no_default_target", message))
                }
                (None, None) => {}
            }
        }
    }
    if !rejected.is_empty() {
        return Err(rejected);
    }

    // Each province's count of communes in force today.
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for commune in communes.iter().filter(|c| c.in_force_on(today)) {
        *counts.entry(commune.province_code.as_str()).or_default() += 1;
    }
    let provinces: Vec<Province> = provinces
        .into_iter()
        .map(|p| Province { commune_count: counts.get(p.code.as_str()).copied().unwrap_or(0), ..p })
        .collect();
    Units::from_lists(provinces, communes, legacy, crosswalk).map_err(|err| {
        let file = update.tables.first().map_or_else(String::new, |t| t.file.clone());
        vec![file_problem(&file, "", "inconsistent", err.to_string())]
    })
}

/// What changed in one list between two versions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListChange {
    pub dataset: &'static str,
    /// Rows of the list in the new version.
    pub rows: usize,
    /// Codes (for the crosswalk, `old->new` pairs) new in this version.
    pub added: Vec<String>,
    /// Codes whose row changed (retired ones included).
    pub changed: Vec<String>,
    /// Codes given a `valid_to` they did not have.
    pub retired: Vec<String>,
    /// Crosswalk pairs no longer listed (codes of the other lists are never removed).
    pub removed: Vec<String>,
}

fn diff<T: PartialEq>(
    dataset: &'static str,
    before: &[(String, T, Option<NaiveDate>)],
    after: &[(String, T, Option<NaiveDate>)],
) -> ListChange {
    let old: HashMap<&str, (&T, Option<NaiveDate>)> = before.iter().map(|(k, v, to)| (k.as_str(), (v, *to))).collect();
    let new: HashSet<&str> = after.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut change = ListChange {
        dataset,
        rows: after.len(),
        added: Vec::new(),
        changed: Vec::new(),
        retired: Vec::new(),
        removed: before.iter().filter(|(k, _, _)| !new.contains(k.as_str())).map(|(k, _, _)| k.clone()).collect(),
    };
    for (key, value, valid_to) in after {
        match old.get(key.as_str()) {
            None => change.added.push(key.clone()),
            Some((previous, previous_to)) if *previous != value => {
                change.changed.push(key.clone());
                if previous_to.is_none() && valid_to.is_some() {
                    change.retired.push(key.clone());
                }
            }
            Some(_) => {}
        }
    }
    change
}

/// What changed from `base` to `merged`, list by list.
pub fn changes(base: &Units, merged: &Units) -> Vec<ListChange> {
    let provinces = |u: &Units| -> Vec<(String, Province, Option<NaiveDate>)> {
        u.provinces().iter().map(|p| (p.code.clone(), p.clone(), p.valid_to)).collect()
    };
    let communes = |u: &Units| -> Vec<(String, Commune, Option<NaiveDate>)> {
        u.communes().iter().map(|c| (c.code.clone(), c.clone(), c.valid_to)).collect()
    };
    let legacy = |u: &Units| -> Vec<(String, LegacyCommune, Option<NaiveDate>)> {
        let mut rows: Vec<_> = u.legacy_communes().map(|c| (c.code.clone(), c.clone(), c.valid_to)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    let crosswalk = |u: &Units| -> Vec<(String, CrosswalkEntry, Option<NaiveDate>)> {
        u.crosswalk().iter().map(|x| (format!("{}->{}", x.old_code, x.new_code), x.clone(), None)).collect()
    };
    vec![
        diff("provinces", &provinces(base), &provinces(merged)),
        diff("communes", &communes(base), &communes(merged)),
        diff("communes_pre2025", &legacy(base), &legacy(merged)),
        diff("unit_crosswalk_2025", &crosswalk(base), &crosswalk(merged)),
    ]
}

/// The newest complete version under `data_dir` (a `v{N}` directory with its `version.json`).
pub fn newest_version(data_dir: &Path) -> Result<Option<(u32, PathBuf)>, CodeListError> {
    let root = versions_dir(data_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(version_error(&root, err)),
    };
    let mut newest: Option<(u32, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|err| version_error(&root, err))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|n| n.strip_prefix('v')).and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path();
        if dir.join("version.json").is_file() && newest.as_ref().is_none_or(|(best, _)| number > *best) {
            newest = Some((number, dir));
        }
    }
    Ok(newest)
}

/// The lists of a version directory, after checking its files against the SHA-256 its
/// `version.json` records.
pub fn load_version(dir: &Path) -> Result<Units, CodeListError> {
    let manifest_path = dir.join("version.json");
    let text = std::fs::read_to_string(&manifest_path).map_err(|err| version_error(&manifest_path, err))?;
    let manifest: Value = serde_json::from_str(&text).map_err(|err| version_error(&manifest_path, err))?;
    for file in manifest["files"].as_array().into_iter().flatten() {
        let (Some(name), Some(expected)) = (file["path"].as_str(), file["sha256"].as_str()) else { continue };
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|err| version_error(&path, err))?;
        if sha256_hex(&bytes) != expected {
            return Err(version_error(&path, "the file does not match the SHA-256 of version.json (edited by hand?)"));
        }
    }
    Ok(Units::from_dir(dir)?)
}

/// The lists an update applies to: the newest version of the data directory (its number), or
/// the compiled-in lists (version 0).
pub fn current_lists(data_dir: &Path) -> Result<(u32, Units), CodeListError> {
    match newest_version(data_dir)? {
        Some((number, dir)) => Ok((number, load_version(&dir)?)),
        None => Ok((0, Units::compiled_in())),
    }
}

/// Installs the newest version of the lists under `data_dir` as the lists in use
/// ([`Units::install`]), logging which; call it before anything reads the lists. Returns the
/// version installed, `None` when the compiled-in lists stay in use (no version in the
/// directory, or the lists were already in use: then a warning says so).
pub fn install_newest(data_dir: &Path) -> Result<Option<u32>, CodeListError> {
    let Some((number, dir)) = newest_version(data_dir)? else {
        tracing::debug!(
            data_dir = %data_dir.display(),
            "code lists: the compiled-in ones (no version in the data directory)"
        );
        return Ok(None);
    };
    let units = load_version(&dir)?;
    let (provinces, communes) = (units.provinces().len(), units.communes().len());
    match Units::install(units) {
        Ok(()) => {
            tracing::info!(
                version = number,
                dir = %dir.display(),
                provinces,
                communes,
                "code lists: using version {number} of the data directory"
            );
            Ok(Some(number))
        }
        Err(_) => {
            tracing::warn!(
                version = number,
                dir = %dir.display(),
                "code lists: version {number} of the data directory not installed, the lists were already in use; \
                 continuing with the compiled-in ones"
            );
            Ok(None)
        }
    }
}

/// A version just stored.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub number: u32,
    pub dir: PathBuf,
    /// The contents of its `version.json`.
    pub manifest: Value,
    pub changes: Vec<ListChange>,
}

/// Writes `merged` as version `number` under `data_dir`: into a directory aside, checked by
/// reading it back, then renamed into place (never over an existing version).
fn store_version(
    data_dir: &Path,
    number: u32,
    previous: u32,
    merged: &Units,
    update: &Update,
    changes: Vec<ListChange>,
    now: DateTime<Utc>,
) -> Result<StoredVersion, CodeListError> {
    let root = versions_dir(data_dir);
    std::fs::create_dir_all(&root).map_err(|err| version_error(&root, err))?;
    let target = root.join(format!("v{number}"));
    if target.exists() {
        return Err(version_error(&target, "this version exists already (another import at the same time?)"));
    }
    let partial = root.join(format!(".v{number}.partial-{}", std::process::id()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|err| version_error(&partial, err))?;
    }
    std::fs::create_dir(&partial).map_err(|err| version_error(&partial, err))?;
    let result = (|| -> Result<Value, CodeListError> {
        merged.write_dir(&partial)?;
        let rows: BTreeMap<&str, usize> = changes.iter().map(|c| (c.dataset, c.rows)).collect();
        let mut files = Vec::new();
        for (dataset, file) in FILES {
            let path = partial.join(file);
            let bytes = std::fs::read(&path).map_err(|err| version_error(&path, err))?;
            files.push(json!({
                "dataset": dataset,
                "path": file,
                "rows": rows.get(dataset),
                "bytes": bytes.len(),
                "sha256": sha256_hex(&bytes),
            }));
        }
        let changed: serde_json::Map<String, Value> = changes
            .iter()
            .map(|c| {
                (
                    c.dataset.to_owned(),
                    json!({"added": c.added, "changed": c.changed, "retired": c.retired, "removed": c.removed}),
                )
            })
            .collect();
        let manifest = json!({
            "number": number,
            "imported_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "source": update.source,
            "valid_from": local_day(now).to_string(),
            "previous": previous,
            "updated": update.tables.iter().map(|t| t.dataset).collect::<Vec<_>>(),
            "rows": rows,
            "files": files,
            "changes": changed,
        });
        let manifest_path = partial.join("version.json");
        let text = serde_json::to_vec_pretty(&manifest).map_err(|err| version_error(&manifest_path, err))?;
        std::fs::write(&manifest_path, text).map_err(|err| version_error(&manifest_path, err))?;
        // What commands will install is what was checked.
        load_version(&partial)?;
        if target.exists() {
            return Err(version_error(&target, "this version exists already (another import at the same time?)"));
        }
        std::fs::rename(&partial, &target).map_err(|err| version_error(&target, err))?;
        Ok(manifest)
    })();
    match result {
        Ok(manifest) => Ok(StoredVersion { number, dir: target, manifest, changes }),
        Err(err) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(err)
        }
    }
}

/// The outcome of `voxpop import --code-lists`.
#[derive(Debug, Clone)]
pub enum CodeListImport {
    /// Every row passed: the merged lists are the new version.
    Stored { rows: usize, version: StoredVersion },
    /// Every row passed and the lists are those of the current version: nothing stored.
    Unchanged { rows: usize, version: u32 },
    /// Some rows failed (each listed with its file, line and field): nothing stored.
    Rejected { rows: usize, rejected: Vec<RejectedRow> },
}

impl CodeListImport {
    /// Whether the update was accepted (stored, or already the current lists).
    pub fn accepted(&self) -> bool {
        !matches!(self, CodeListImport::Rejected { .. })
    }
}

impl fmt::Display for CodeListImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeListImport::Rejected { rows, rejected } => {
                let mut problems = 0;
                for row in rejected {
                    for error in &row.errors {
                        problems += 1;
                        let field = if error.field.is_empty() { String::new() } else { format!("{}: ", error.field) };
                        if row.line == 0 {
                            writeln!(f, "rejected {}: {field}{}", row.file, error.message)?;
                        } else {
                            writeln!(f, "rejected {} line {}: {field}{}", row.file, row.line, error.message)?;
                        }
                    }
                }
                writeln!(
                    f,
                    "{rows} rows read: the update of the code lists is rejected ({problems} problems); nothing stored"
                )
            }
            CodeListImport::Unchanged { rows, version } => {
                let which =
                    if *version == 0 { "the compiled-in ones".to_owned() } else { format!("version {version}") };
                writeln!(f, "{rows} rows read: the code lists are unchanged ({which}); nothing stored")
            }
            CodeListImport::Stored { rows, version } => {
                writeln!(
                    f,
                    "{rows} rows read: code lists version {} stored in {}",
                    version.number,
                    version.dir.display()
                )?;
                for change in &version.changes {
                    write!(
                        f,
                        "  {:<20} {:>6} rows: {} added, {} changed ({} retired)",
                        change.dataset,
                        change.rows,
                        change.added.len(),
                        change.changed.len(),
                        change.retired.len()
                    )?;
                    if !change.removed.is_empty() {
                        write!(f, ", {} removed", change.removed.len())?;
                    }
                    writeln!(f)?;
                }
                writeln!(f, "commands use this version from now on; restart a running `voxpop serve` to use it there")
            }
        }
    }
}

/// `voxpop import --code-lists`: reads the update at `path` (see [`read_update`]), checks it
/// against the current lists of `data_dir` and stores the merged lists as a new version.
pub fn import(
    data_dir: &Path,
    path: &Path,
    dataset: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CodeListImport, CodeListError> {
    let update = read_update(path, dataset)?;
    let rows = update.tables.iter().map(|t| t.rows.len()).sum();
    let (previous, base) = current_lists(data_dir)?;
    let merged = match validate(&base, &update, local_day(now)) {
        Ok(merged) => merged,
        Err(rejected) => return Ok(CodeListImport::Rejected { rows, rejected }),
    };
    let changes = changes(&base, &merged);
    if changes.iter().all(|c| c.added.is_empty() && c.changed.is_empty() && c.removed.is_empty()) {
        return Ok(CodeListImport::Unchanged { rows, version: previous });
    }
    let version = store_version(data_dir, previous + 1, previous, &merged, &update, changes, now)?;
    Ok(CodeListImport::Stored { rows, version })
}

/// A Table Schema `pattern` (an XML Schema / ECMAScript-style regular expression), matched
/// against a whole value as Frictionless does: `^` and `$` are implied.
#[derive(Debug, Clone)]
struct Pattern(regex::Regex);

impl Pattern {
    fn parse(pattern: &str) -> Result<Pattern, String> {
        let inner = pattern.strip_prefix('^').unwrap_or(pattern);
        let inner = inner.strip_suffix('$').unwrap_or(inner);
        regex::Regex::new(&format!("^(?:{inner})$")).map(Pattern).map_err(|err| err.to_string())
    }

    fn matches(&self, value: &str) -> bool {
        self.0.is_match(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    const TODAY: &str = "2025-11-01";

    /// The `communes` dataset of `units` as `voxpop export --format csv` writes it.
    fn communes_csv(units: &Units) -> String {
        let mut out = String::from("\u{feff}code,name,kind,province_code,lat,lon,area_km2,valid_from,valid_to\n");
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        for c in units.communes() {
            out.push_str(&format!(
                "{},\"{}\",{},{},{},{},{},{},{}\n",
                c.code,
                c.name,
                c.kind,
                c.province_code,
                opt(c.lat),
                opt(c.lon),
                opt(c.area_km2),
                date(c.valid_from),
                date(c.valid_to)
            ));
        }
        out
    }

    /// Line of commune `code` in [`communes_csv`] (the header is line 1).
    fn line_of(units: &Units, code: &str) -> usize {
        units.communes().iter().position(|c| c.code == code).unwrap() + 2
    }

    fn update_from(dir: &Path, file: &str, text: &str, dataset: Option<&str>) -> Update {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        read_update(&path, dataset).unwrap()
    }

    fn fields_of(rejected: &[RejectedRow], line: usize) -> Vec<String> {
        rejected.iter().filter(|r| r.line == line).flat_map(|r| r.errors.iter().map(|e| e.field.clone())).collect()
    }

    #[test]
    fn code_list_bad_rows_are_reported_with_line_and_field() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        let text = communes_csv(&base)
            .replace("00004,\"Phường Ba Đình\",Phường,01,", "00004,\"Phường Ba Đình\",Phường,1,")
            .replace("00008,\"Phường Ngọc Hà\",Phường,", "00008,\"Phường Ngọc Hà\",Làng,")
            // Decomposed (NFD) diacritics, and a date that is none.
            .replace("00025,\"Phường Giảng Võ\"", "00025,\"Phu\u{31b}\u{300}o\u{31b}ng Giảng Võ\"")
            .replace(
                "00070,\"Phường Hoàn Kiếm\",Phường,01,21.032,105.85,1.91,2025-07-01,",
                "00070,\"Phường Hoàn Kiếm\",Phường,01,21.032,105.85,1.91,2025-13-01,",
            );
        let update = update_from(dir.path(), "communes.csv", &text, None);
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        assert_eq!(fields_of(&rejected, line_of(&base, "00004")), ["province_code"]);
        assert_eq!(fields_of(&rejected, line_of(&base, "00008")), ["kind"]);
        assert_eq!(fields_of(&rejected, line_of(&base, "00025")), ["name"]);
        assert_eq!(fields_of(&rejected, line_of(&base, "00070")), ["valid_from"]);
        let report = CodeListImport::Rejected { rows: 3_321, rejected }.to_string();
        assert!(
            report.contains(&format!(
                "rejected communes.csv line {}: province_code: `1` does not match",
                line_of(&base, "00004")
            )),
            "{report}"
        );
        assert!(report.contains("nothing stored"), "{report}");
    }

    #[test]
    fn code_list_deleting_a_code_in_force_is_rejected() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        let text: String =
            communes_csv(&base).lines().filter(|l| !l.starts_with("00004,")).map(|l| format!("{l}\n")).collect();
        let update = update_from(dir.path(), "communes.csv", &text, None);
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert_eq!((rejected[0].line, rejected[0].errors[0].field.as_str()), (0, "code"));
        assert_eq!(rejected[0].errors[0].code, "deleted");
        assert!(rejected[0].errors[0].message.contains("`00004` is in force"), "{rejected:?}");
    }

    #[test]
    fn code_list_retiring_with_valid_to_and_renaming_are_accepted() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        let text = communes_csv(&base).replace("00004,\"Phường Ba Đình\"", "00004,\"Phường Ba Đình Mới\"").replace(
            "00008,\"Phường Ngọc Hà\",Phường,01,21.0381,105.816,2.68,2025-07-01,\n",
            "00008,\"Phường Ngọc Hà\",Phường,01,21.0381,105.816,2.68,2025-07-01,2025-10-31\n",
        );
        let update = update_from(dir.path(), "communes.csv", &text, None);
        let merged = validate(&base, &update, day(TODAY)).unwrap();
        assert_eq!(merged.commune("00004").unwrap().name, "Phường Ba Đình Mới");
        let retired = merged.commune("00008").unwrap();
        assert_eq!(retired.valid_to, Some(day("2025-10-31")));
        assert!(!retired.in_force_on(day(TODAY)));
        // Still resolvable, and its province now counts one commune fewer in force.
        assert_eq!(merged.resolve_commune("00008", None).unwrap().commune.code, "00008");
        assert_eq!(merged.province("01").unwrap().commune_count + 1, base.province("01").unwrap().commune_count);
        let changes = changes(&base, &merged);
        let communes = changes.iter().find(|c| c.dataset == "communes").unwrap();
        assert_eq!(
            (communes.changed.clone(), communes.retired.clone()),
            (vec!["00004".into(), "00008".into()], vec!["00008".to_owned()])
        );
    }

    #[test]
    fn code_list_new_commune_needs_a_listed_province_and_a_fresh_code() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        let mut text = communes_csv(&base);
        text.push_str("99001,Xã Thử Nghiệm,Xã,01,,,,2025-11-01,\n");
        text.push_str("99002,Xã Không Tỉnh,Xã,77,,,,,\n");
        // 00001 is a pre-2025 code only: a new 2025 commune may not take it over.
        text.push_str("00001,Phường Phúc Xá,Phường,01,,,,,\n");
        text.push_str("99001,Xã Trùng Mã,Xã,01,,,,,\n");
        let update = update_from(dir.path(), "communes.csv", &text, None);
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        let last = base.communes().len() + 1;
        assert!(fields_of(&rejected, last + 1).is_empty());
        assert_eq!(fields_of(&rejected, last + 2), ["province_code"]);
        assert_eq!(fields_of(&rejected, last + 3), ["code"]);
        assert_eq!(fields_of(&rejected, last + 4), ["code"]);
        // The new commune alone is fine; it counts in its province once in force.
        let mut text = communes_csv(&base);
        text.push_str("99001,Xã Thử Nghiệm,Xã,01,,,,2025-11-01,\n");
        let update = update_from(dir.path(), "communes.csv", &text, None);
        let merged = validate(&base, &update, day(TODAY)).unwrap();
        assert_eq!(merged.resolve_commune("99001", None).unwrap().province.code, "01");
        assert_eq!(merged.province("01").unwrap().commune_count, base.province("01").unwrap().commune_count + 1);
    }

    #[test]
    fn code_list_crosswalk_joins_listed_codes_with_one_default_each() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("old_code,new_code,split,default_target\n");
        for x in base.crosswalk() {
            text.push_str(&format!("{},{},{},{}\n", x.old_code, x.new_code, x.split, x.default_target));
        }
        let rows = base.crosswalk().len();
        text.push_str("00001,99999,false,false\n");
        text.push_str("88888,00004,false,false\n");
        text.push_str("00001,00004,true,true\n");
        let update = update_from(dir.path(), "crosswalk.csv", &text, Some("unit_crosswalk_2025"));
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        assert_eq!(fields_of(&rejected, rows + 2), ["new_code"]);
        assert_eq!(fields_of(&rejected, rows + 3), ["old_code"]);
        assert_eq!(fields_of(&rejected, rows + 4), ["default_target"]);
        // Dropping the default target of an old code leaves it unresolvable.
        let without: String =
            text.lines().take(rows + 1).filter(|l| !l.starts_with("00001,00097,")).map(|l| format!("{l}\n")).collect();
        let update = update_from(dir.path(), "crosswalk.csv", &without, Some("unit_crosswalk_2025"));
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].errors[0].code, "no_default_target");
    }

    #[test]
    fn code_list_headers_must_be_the_table_schemas() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        let update = update_from(dir.path(), "provinces.csv", "code,ten,commune_count\n01,Hà Nội,1\n", None);
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        let fields: Vec<&str> = rejected.iter().map(|r| r.errors[0].field.as_str()).collect();
        assert_eq!(fields, ["name", "ten"]);
        assert!(rejected.iter().all(|r| r.line == 0));
        assert!(matches!(read_update(&dir.path().join("provinces.csv"), Some("people")), Err(CodeListError::Usage(_))));
        std::fs::write(dir.path().join("list.csv"), "code\n").unwrap();
        assert!(matches!(read_update(&dir.path().join("list.csv"), None), Err(CodeListError::Usage(_))));
    }

    #[test]
    fn code_list_versions_are_stored_aside_and_installed_newest_first() {
        let data = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let base = Units::compiled_in();
        let now = DateTime::parse_from_rfc3339("2025-11-01T03:00:00Z").unwrap().with_timezone(&Utc);
        assert!(newest_version(data.path()).unwrap().is_none());
        // The lists as they are: nothing to store.
        let path = dir.path().join("communes.csv");
        std::fs::write(&path, communes_csv(&base)).unwrap();
        let outcome = import(data.path(), &path, None, now).unwrap();
        assert!(matches!(outcome, CodeListImport::Unchanged { version: 0, .. }), "{outcome}");
        // A rename: version 1, with its manifest.
        std::fs::write(&path, communes_csv(&base).replace("\"Phường Ba Đình\"", "\"Phường Ba Đình Mới\"")).unwrap();
        let outcome = import(data.path(), &path, None, now).unwrap();
        let CodeListImport::Stored { version, .. } = &outcome else { panic!("{outcome}") };
        assert_eq!(version.number, 1);
        assert_eq!(version.manifest["rows"]["communes"], 3_321);
        assert_eq!(version.manifest["changes"]["communes"]["changed"], json!(["00004"]));
        assert_eq!(version.manifest["files"][1]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(version.manifest["valid_from"], "2025-11-01");
        assert!(outcome.to_string().contains("version 1 stored"), "{outcome}");
        // A bad update stores nothing.
        std::fs::write(&path, "code,name,kind,province_code\n00004,X,Xã,1\n").unwrap();
        let outcome = import(data.path(), &path, None, now).unwrap();
        assert!(!outcome.accepted());
        // The next update is made from version 1 (the list as exported now), which stays as it was.
        let v1 = load_version(&versions_dir(data.path()).join("v1")).unwrap();
        std::fs::write(&path, communes_csv(&v1).replace("\"Phường Ngọc Hà\"", "\"Phường Ngọc Hà Mới\"")).unwrap();
        let outcome = import(data.path(), &path, None, now).unwrap();
        let CodeListImport::Stored { version, .. } = &outcome else { panic!("{outcome}") };
        assert_eq!(version.number, 2);
        let (number, newest) = newest_version(data.path()).unwrap().unwrap();
        assert_eq!(number, 2);
        let units = load_version(&newest).unwrap();
        assert_eq!(units.commune("00008").unwrap().name, "Phường Ngọc Hà Mới");
        assert_eq!(units.commune("00004").unwrap().name, "Phường Ba Đình Mới");
        let v1 = load_version(&versions_dir(data.path()).join("v1")).unwrap();
        assert_eq!(v1.commune("00008").unwrap().name, "Phường Ngọc Hà");
        assert_eq!(changes(&v1, &units).iter().map(|c| c.changed.len()).sum::<usize>(), 1);
        let entries: Vec<String> = std::fs::read_dir(versions_dir(data.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries.len(), 2, "{entries:?}");
        // A version edited by hand is not trusted.
        let file = newest.join(COMMUNES_FILE);
        let text = std::fs::read_to_string(&file).unwrap().replace("Ngọc Hà Mới", "Ngọc Hà Sửa");
        std::fs::write(&file, text).unwrap();
        assert!(load_version(&newest).unwrap_err().to_string().contains("SHA-256"));
    }

    #[test]
    fn code_list_packages_are_read_by_resource_and_checked_against_their_hash() {
        let base = Units::compiled_in();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let csv = communes_csv(&base);
        std::fs::write(dir.path().join("data/communes.csv"), &csv).unwrap();
        let package = json!({"resources": [
            {"name": "petitions", "path": "data/petitions.csv"},
            {"name": "communes", "path": "data/communes.csv", "hash": format!("sha256:{}", sha256_hex(csv.as_bytes()))},
        ]});
        std::fs::write(dir.path().join("datapackage.json"), package.to_string()).unwrap();
        let update = read_update(dir.path(), None).unwrap();
        assert_eq!(update.tables.len(), 1);
        assert!(update.rejected.is_empty());
        assert!(validate(&base, &update, day(TODAY)).is_ok());
        std::fs::write(dir.path().join("data/communes.csv"), csv.replace("Ba Đình", "Ba Dinh")).unwrap();
        let update = read_update(dir.path(), None).unwrap();
        let rejected = validate(&base, &update, day(TODAY)).unwrap_err();
        assert_eq!(rejected[0].errors[0].code, "hash_mismatch");
        assert!(read_update(dir.path(), Some("provinces")).is_err());
    }

    #[test]
    fn code_list_patterns_match_whole_values() {
        let unit = Pattern::parse("^[0-9]{2}([0-9]{3}(-[0-9]{3})?)?$").unwrap();
        for good in ["01", "01234", "01234-567"] {
            assert!(unit.matches(good), "{good}");
        }
        for bad in ["1", "0123", "01234-56", "01234-5678", "ab", "01 "] {
            assert!(!unit.matches(bad), "{bad}");
        }
        let tracking = Pattern::parse("^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$").unwrap();
        assert!(tracking.matches("AB12-Z9K0") && !tracking.matches("AB1I-Z9K0"));
        let words = Pattern::parse("^[a-z][a-z0-9_]*$").unwrap();
        assert!(words.matches("nuoc_sach") && !words.matches("_x") && !words.matches(""));
        assert!(
            Pattern::parse("(a|bc)+").unwrap().matches("abca") && !Pattern::parse("(a|bc)+").unwrap().matches("abd")
        );
        assert!(
            Pattern::parse("\\d{2,3}").unwrap().matches("123") && !Pattern::parse("\\d{2,3}").unwrap().matches("1")
        );
        assert!(Pattern::parse("(a").is_err() && Pattern::parse("*a").is_err() && Pattern::parse("[a").is_err());
        // Every pattern of the national schema parses.
        for spec in datasets::datasets() {
            for column in &spec.columns {
                if let Some(pattern) = column.constraints.pattern {
                    assert!(Pattern::parse(pattern).is_ok(), "{pattern}");
                }
            }
        }
    }
}
