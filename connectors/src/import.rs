//! Petitions imported from other systems: a Data Package (as `voxpop export` writes, or any
//! package with a `petitions` resource), or one CSV, XLSX or Parquet file with a column mapping.
//!
//! Every row is validated as a submission ([`Submission::from_json`]) and reported with its line
//! and field when rejected; accepted rows are submitted through [`crate::intake::Intake`] like any
//! other petition (log, pipeline, lake, index), on channel `import`. Each needs an external id:
//! importing the same rows again finds them already accepted and adds nothing.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use voxpop_schema::{FieldError, Submission, Units};

/// Most rows one import reads: beyond this, split the file.
pub const MAX_ROWS: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("mapping: {0}")]
    Mapping(String),
}

/// Fields of a submission a source column can fill.
const TARGETS: [&str; 12] = [
    "title",
    "body",
    "commune_code",
    "commune_code_version",
    "submitted_at",
    "external_id",
    "lat",
    "lon",
    "contact_name",
    "contact_phone",
    "contact_email",
    "channel",
];

/// Which source column fills which field (`[columns]` of a mapping TOML file:
/// `title = "TieuDe"`), plus fallbacks tried in order when the first column is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    columns: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    columns: BTreeMap<String, String>,
}

impl Mapping {
    /// The columns of voxpop's own `petitions` dataset. A petition without an external id is
    /// identified by its voxpop id; `submitted_at` falls back to `received_at`.
    pub fn voxpop() -> Mapping {
        let mut columns: BTreeMap<String, Vec<String>> =
            TARGETS.iter().filter(|t| **t != "channel").map(|t| (t.to_string(), vec![t.to_string()])).collect();
        columns.insert("external_id".into(), vec!["external_id".into(), "id".into()]);
        columns.insert("submitted_at".into(), vec!["submitted_at".into(), "received_at".into()]);
        Mapping { columns }
    }

    /// [`Mapping::voxpop`] without the contact columns: for packages exported with personal data
    /// masked, whose contact fields are no longer anyone's details.
    pub fn voxpop_without_contact() -> Mapping {
        let mut mapping = Mapping::voxpop();
        mapping.columns.retain(|target, _| !target.starts_with("contact_"));
        mapping
    }

    pub fn from_toml_str(source: &str) -> Result<Mapping, ImportError> {
        let file: MappingFile = toml::from_str(source).map_err(|err| ImportError::Mapping(err.to_string()))?;
        let mut columns = BTreeMap::new();
        for (target, column) in file.columns {
            if !TARGETS.contains(&target.as_str()) {
                return Err(ImportError::Mapping(format!(
                    "`{target}` is no field of a petition; expected one of {}",
                    TARGETS.join(", ")
                )));
            }
            columns.insert(target, vec![column]);
        }
        for required in ["title", "body", "commune_code", "external_id"] {
            if !columns.contains_key(required) {
                return Err(ImportError::Mapping(format!("`{required}` must be mapped to a column")));
            }
        }
        Ok(Mapping { columns })
    }
}

/// One row of a source table: its line (1-based, the header is line 1) and its cells by column.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub line: usize,
    pub cells: HashMap<String, String>,
}

/// A row that cannot become a petition, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RejectedRow {
    pub file: String,
    pub line: usize,
    pub errors: Vec<FieldError>,
}

fn read_error(path: &Path, message: impl ToString) -> ImportError {
    ImportError::Read { path: path.to_owned(), message: message.to_string() }
}

/// The tables of an import path: the `petitions` resources of a Data Package directory, or the
/// file itself.
pub fn tables_of(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    if path.is_dir() {
        let descriptor = path.join("datapackage.json");
        let text = std::fs::read_to_string(&descriptor).map_err(|err| read_error(&descriptor, err))?;
        let package: Value = serde_json::from_str(&text).map_err(|err| read_error(&descriptor, err))?;
        let resources = package["resources"].as_array().cloned().unwrap_or_default();
        let tables: Vec<PathBuf> = resources
            .iter()
            .filter(|r| r["name"] == "petitions")
            .filter_map(|r| r["path"].as_str())
            .map(|p| path.join(p))
            .collect();
        if tables.is_empty() {
            return Err(read_error(
                &descriptor,
                "the package has no `petitions` resource (an update of the code lists? add `--code-lists`)",
            ));
        }
        return Ok(tables);
    }
    Ok(vec![path.to_owned()])
}

/// True for a Data Package directory whose `datapackage.json` says personal data was masked.
pub fn package_is_masked(path: &Path) -> bool {
    std::fs::read_to_string(path.join("datapackage.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|package| package["voxpop"]["masking"]["contact"].as_str().map(|m| m != "none"))
        .unwrap_or(false)
}

/// Reads a CSV (UTF-8, with or without BOM), XLSX (first sheet) or Parquet file.
pub fn read_table(path: &Path) -> Result<Vec<SourceRow>, ImportError> {
    read_table_with_columns(path).map(|(_, rows)| rows)
}

/// [`read_table`], with the table's column names in order (a Parquet row leaves its null cells
/// out; the columns say which columns the file has).
pub fn read_table_with_columns(path: &Path) -> Result<(Vec<String>, Vec<SourceRow>), ImportError> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let (columns, rows) = match extension.as_str() {
        "csv" => read_csv(path)?,
        "xlsx" => read_xlsx(path)?,
        "parquet" => read_parquet(path)?,
        other => {
            return Err(read_error(path, format!("unknown file type `.{other}`: expected .csv, .xlsx or .parquet")));
        }
    };
    if rows.len() > MAX_ROWS {
        return Err(read_error(path, format!("{} rows; at most {MAX_ROWS} per import", rows.len())));
    }
    Ok((columns, rows))
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<SourceRow>), ImportError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|err| read_error(path, err))?;
    let text = std::str::from_utf8(&bytes).map_err(|err| read_error(path, format!("not UTF-8: {err}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> =
        reader.headers().map_err(|err| read_error(path, err))?.iter().map(|h| h.trim().to_owned()).collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|err| read_error(path, err))?;
        let cells = headers.iter().cloned().zip(record.iter().map(str::to_owned)).collect();
        rows.push(SourceRow { line: i + 2, cells });
    }
    Ok((headers, rows))
}

/// Most columns an XLSX file may use: A to IV, as many as Excel 97-2003 had.
pub const MAX_COLUMNS: usize = 256;

/// The first sheet, its first row with a value as the header. The cells are streamed and kept
/// only where they hold a value: calamine's `worksheet_range` builds a dense grid up to the
/// farthest cell, which for one value at `XFD1048576` is 17 billion cells. A value past row
/// [`MAX_ROWS`] + 1 or column [`MAX_COLUMNS`] refuses the file, naming the sheet and the cell.
/// Rows without any value are skipped, as the CSV reader skips empty lines.
fn read_xlsx(path: &Path) -> Result<(Vec<String>, Vec<SourceRow>), ImportError> {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let mut workbook: Xlsx<_> = open_workbook(path).map_err(|err: calamine::XlsxError| read_error(path, err))?;
    let sheet = workbook.sheet_names().first().cloned().ok_or_else(|| read_error(path, "the workbook has no sheet"))?;
    let text = |cell: &Data| match cell {
        Data::Empty => String::new(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string(),
    };
    let unreadable = |err: calamine::XlsxError| read_error(path, format!("sheet `{sheet}`: {err}"));
    let mut cells = workbook.worksheet_cells_reader(&sheet).map_err(unreadable)?;
    // Each row with a value: its 1-based number and its values by 0-based column.
    let mut rows: Vec<(usize, Vec<(usize, String)>)> = Vec::new();
    let mut first_column = usize::MAX;
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let value = Data::from(cell.get_value().clone());
        if value == Data::Empty {
            continue;
        }
        let (row, column) = cell.get_position();
        let (number, column) = (row as usize + 1, column as usize);
        if number > MAX_ROWS + 1 || column >= MAX_COLUMNS {
            return Err(read_error(
                path,
                format!(
                    "sheet `{sheet}` has a value in cell {}{number}, beyond the limits ({} rows, {MAX_COLUMNS} columns): \
                     clear the stray cells or split the file",
                    column_name(column),
                    MAX_ROWS + 1
                ),
            ));
        }
        first_column = first_column.min(column);
        match rows.last_mut() {
            Some((last, values)) if *last == number => values.push((column, text(&value))),
            Some((last, _)) if *last > number => {
                return Err(read_error(path, format!("sheet `{sheet}` lists row {number} after row {last}")));
            }
            _ => rows.push((number, vec![(column, text(&value))])),
        }
    }
    let mut rows = rows.into_iter();
    let Some((_, header)) = rows.next() else { return Ok((Vec::new(), Vec::new())) };
    let width = header.iter().map(|(column, _)| column + 1 - first_column).max().unwrap_or(0);
    let mut headers = vec![String::new(); width];
    for (column, value) in header {
        headers[column - first_column] = value.trim().to_owned();
    }
    let rows = rows
        .map(|(number, values)| {
            let mut cells: HashMap<String, String> =
                headers.iter().map(|header| (header.clone(), String::new())).collect();
            for (column, value) in values {
                if let Some(header) = headers.get(column - first_column) {
                    cells.insert(header.clone(), value);
                }
            }
            SourceRow { line: number, cells }
        })
        .collect();
    Ok((headers, rows))
}

/// `0` -> `A`, `26` -> `AA`.
fn column_name(index: usize) -> String {
    let mut letters = Vec::new();
    let mut rest = index + 1;
    while rest > 0 {
        letters.push(b'A' + ((rest - 1) % 26) as u8);
        rest = (rest - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

fn read_parquet(path: &Path) -> Result<(Vec<String>, Vec<SourceRow>), ImportError> {
    use deltalake::arrow::array::Array;
    use deltalake::arrow::datatypes::{DataType, TimeUnit};
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).map_err(|err| read_error(path, err))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|err| read_error(path, err))?;
    let headers: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder.build().map_err(|err| read_error(path, err))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|err| read_error(path, err))?;
        let schema = batch.schema();
        let mut columns = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            // Timestamps as RFC 3339 (what a submission accepts), everything else as text.
            let text = if let DataType::Timestamp(TimeUnit::Microsecond, _) = array.data_type() {
                let micros = array
                    .as_any()
                    .downcast_ref::<deltalake::arrow::array::TimestampMicrosecondArray>()
                    .expect("timestamp");
                (0..micros.len())
                    .map(|i| {
                        (!micros.is_null(i))
                            .then(|| DateTime::<Utc>::from_timestamp_micros(micros.value(i)).map(|t| t.to_rfc3339()))
                            .flatten()
                    })
                    .collect::<Vec<_>>()
            } else {
                let strings =
                    deltalake::arrow::compute::cast(array, &DataType::Utf8).map_err(|err| read_error(path, err))?;
                let strings = strings
                    .as_any()
                    .downcast_ref::<deltalake::arrow::array::StringArray>()
                    .expect("cast to Utf8")
                    .clone();
                (0..strings.len()).map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_owned())).collect()
            };
            columns.push((field.name().clone(), text));
        }
        for i in 0..batch.num_rows() {
            let cells =
                columns.iter().filter_map(|(name, values)| values[i].clone().map(|v| (name.clone(), v))).collect();
            rows.push(SourceRow { line: rows.len() + 1, cells });
        }
    }
    Ok((headers, rows))
}

/// Spreadsheet dates without a zone are Vietnamese local time; a bare date is its midnight.
fn normalise_time(raw: &str) -> String {
    let raw = raw.trim();
    if DateTime::parse_from_rfc3339(raw).is_ok() {
        return raw.to_owned();
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(raw, format) {
            return format!("{}+07:00", at.format("%Y-%m-%dT%H:%M:%S"));
        }
    }
    for format in ["%Y-%m-%d", "%d/%m/%Y"] {
        if let Ok(day) = NaiveDate::parse_from_str(raw, format) {
            return format!("{}T00:00:00+07:00", day.format("%Y-%m-%d"));
        }
    }
    raw.to_owned()
}

/// The submissions of `rows` under `mapping`, and the rows that are not valid petitions.
pub fn to_submissions(
    file: &str,
    rows: &[SourceRow],
    mapping: &Mapping,
    units: &Units,
    now: DateTime<Utc>,
) -> (Vec<(usize, Submission)>, Vec<RejectedRow>) {
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for row in rows {
        let value = |target: &str| -> Option<String> {
            mapping
                .columns
                .get(target)?
                .iter()
                .find_map(|column| row.cells.get(column).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
        };
        let mut object = Map::new();
        let mut contact = Map::new();
        let mut errors = Vec::new();
        for target in TARGETS {
            let Some(raw) = value(target) else { continue };
            match target {
                "lat" | "lon" => match raw.replace(',', ".").parse::<f64>() {
                    Ok(number) => {
                        object.insert(target.into(), json!(number));
                    }
                    Err(_) => errors.push(FieldError::new(target, "not_a_number", format!("`{raw}` is not a number"))),
                },
                "submitted_at" => {
                    object.insert(target.into(), json!(normalise_time(&raw)));
                }
                "contact_name" | "contact_phone" | "contact_email" => {
                    contact.insert(target.trim_start_matches("contact_").into(), json!(raw));
                }
                "channel" => {}
                _ => {
                    object.insert(target.into(), json!(raw));
                }
            }
        }
        if !contact.is_empty() {
            object.insert("contact".into(), Value::Object(contact));
        }
        object.insert("channel".into(), json!("import"));
        if !object.contains_key("external_id") {
            errors.push(FieldError::new(
                "external_id",
                "required",
                "an import needs the source system's id of each petition (so that importing again adds nothing)",
            ));
        }
        match Submission::from_json(&Value::Object(object), units, now) {
            Ok(submission) if errors.is_empty() => accepted.push((row.line, submission)),
            Ok(_) => rejected.push(RejectedRow { file: file.to_owned(), line: row.line, errors }),
            Err(mut problems) => {
                problems.extend(errors);
                rejected.push(RejectedRow { file: file.to_owned(), line: row.line, errors: problems });
            }
        }
    }
    (accepted, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: usize, cells: &[(&str, &str)]) -> SourceRow {
        SourceRow { line, cells: cells.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn a_mapping_turns_rows_into_submissions_and_names_every_problem() {
        let mapping = Mapping::from_toml_str(
            "[columns]\ntitle = \"TieuDe\"\nbody = \"NoiDung\"\ncommune_code = \"MaXa\"\nexternal_id = \"SoHieu\"\nsubmitted_at = \"NgayGui\"\ncontact_phone = \"DienThoai\"\n",
        )
        .unwrap();
        let rows = [
            row(
                2,
                &[
                    ("TieuDe", "Đường hỏng"),
                    ("NoiDung", "Đường liên thôn hư hỏng"),
                    ("MaXa", "00004"),
                    ("SoHieu", "A-1"),
                    ("NgayGui", "15/09/2025"),
                    ("DienThoai", "0912345678"),
                ],
            ),
            row(3, &[("TieuDe", ""), ("NoiDung", "x"), ("MaXa", "99999"), ("SoHieu", "A-2")]),
            row(4, &[("TieuDe", "Không có mã"), ("NoiDung", "x"), ("MaXa", "00004")]),
            // A pre-2025 code is mapped like any submission's.
            row(5, &[("TieuDe", "Mã cũ"), ("NoiDung", "x"), ("MaXa", "00001"), ("SoHieu", "A-4")]),
        ];
        let now = DateTime::parse_from_rfc3339("2025-10-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let (accepted, rejected) = to_submissions("file.csv", &rows, &mapping, Units::embedded(), now);
        assert_eq!(accepted.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [2, 5]);
        let first = &accepted[0].1;
        assert_eq!(first.submitted_at.unwrap().to_rfc3339(), "2025-09-14T17:00:00+00:00");
        assert_eq!(first.contact.phone.as_deref(), Some("0912345678"));
        assert_eq!(accepted[1].1.commune_code, "00097");
        let fields = |line: usize| -> Vec<String> {
            rejected.iter().find(|r| r.line == line).unwrap().errors.iter().map(|e| e.field.clone()).collect()
        };
        assert_eq!(fields(3), ["title", "commune_code"]);
        assert_eq!(fields(4), ["external_id"]);
        assert!(Mapping::from_toml_str("[columns]\ntitle = \"a\"\n").is_err());
        assert!(Mapping::from_toml_str("[columns]\nname = \"a\"\n").unwrap_err().to_string().contains("no field"));
    }

    #[test]
    fn csv_with_a_byte_order_mark_reads_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "\u{feff}title,body\nĐường hỏng,\"Nội dung, có dấu phẩy\"\n").unwrap();
        let rows = read_table(&path).unwrap();
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].cells["title"], "Đường hỏng");
        assert_eq!(rows[0].cells["body"], "Nội dung, có dấu phẩy");
        assert!(read_table(&dir.path().join("rows.txt")).unwrap_err().to_string().contains(".csv, .xlsx or .parquet"));
    }
}
