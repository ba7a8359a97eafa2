//! One value of a spreadsheet, a CSV file or a JSON object, as the intake of weekly reports and
//! registers reads it, and the helpers their row/column problems are written with.

use std::borrow::Cow;
use std::io::Cursor;

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

/// Most columns a spreadsheet may use: A to IV, as many as Excel 97-2003 had. The templates use a
/// few dozen; the bound keeps one row small whatever a file holds.
pub const MAX_SHEET_COLUMNS: usize = 256;

/// Most parts (files) an XLSX upload's zip may hold. A workbook of a few sheets has a dozen or two.
pub const MAX_XLSX_PARTS: usize = 1_000;

/// Most bytes the parts of an XLSX upload may inflate to, all together: 64 MiB. An honest upload
/// fits the 256 KiB request limit and inflates to a few MiB.
pub const MAX_XLSX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// Most bytes one worksheet (`xl/worksheets/...`), which is read cell by cell, may inflate to:
/// 32 MiB.
pub const MAX_XLSX_SHEET_BYTES: u64 = 32 * 1024 * 1024;

/// Most bytes any other part may inflate to: 8 MiB. calamine loads those whole before a cell is
/// read (the shared strings, one `String` per `<si/>` of 5 bytes, and the styles), so that they
/// bound its memory: 8 MiB of `<si/>` is 1.7 million empty strings, some 40 MB.
pub const MAX_XLSX_PART_BYTES: u64 = 8 * 1024 * 1024;

/// Checks the sizes an XLSX zip declares for its parts against [`MAX_XLSX_PARTS`],
/// [`MAX_XLSX_INFLATED_BYTES`], [`MAX_XLSX_SHEET_BYTES`] and [`MAX_XLSX_PART_BYTES`] before
/// anything is inflated. A part that inflates past the size it declares is not read further:
/// the zip reader calamine reads with stops it at its declared size with an error, so the
/// declared sizes bound what is really inflated.
fn check_xlsx_sizes(bytes: &[u8]) -> Result<(), SheetProblem> {
    let too_large = |message: String| SheetProblem::file("file_too_large", message);
    let archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| SheetProblem::file("malformed_file", format!("không đọc được tệp XLSX: {err}")))?;
    if archive.len() > MAX_XLSX_PARTS {
        return Err(too_large(format!(
            "tệp XLSX gồm {} phần, quá giới hạn {MAX_XLSX_PARTS} phần của một bảng tính",
            archive.len()
        )));
    }
    let mib = |size: u64| format!("{:.1} MiB", size as f64 / (1024.0 * 1024.0));
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|err| SheetProblem::file("malformed_file", format!("không đọc được tệp XLSX: {err}")))?;
        let name = String::from_utf8_lossy(entry.name_raw());
        let size = entry.size();
        let limit = if name.starts_with("xl/worksheets/") { MAX_XLSX_SHEET_BYTES } else { MAX_XLSX_PART_BYTES };
        if size > limit {
            return Err(too_large(format!(
                "phần `{}` của tệp XLSX giải nén ra {}, quá giới hạn {}: tệp không phải bảng tính thông thường",
                shorten(&name),
                mib(size),
                mib(limit)
            )));
        }
        total = total.saturating_add(size);
        if total > MAX_XLSX_INFLATED_BYTES {
            return Err(too_large(format!(
                "tệp XLSX giải nén ra hơn {}, quá giới hạn của một bảng tính",
                mib(MAX_XLSX_INFLATED_BYTES)
            )));
        }
    }
    Ok(())
}

/// Why a workbook could not be read, or where it holds a cell beyond the limits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SheetProblem {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// 1-based row of the cell at fault.
    pub(crate) row: Option<usize>,
    /// 0-based column of the cell at fault.
    pub(crate) column: Option<usize>,
}

impl SheetProblem {
    fn file(code: &'static str, message: String) -> SheetProblem {
        SheetProblem { code, message, row: None, column: None }
    }
}

/// Reads the first sheet of an XLSX workbook that `wanted` accepts, row by row in order: `row` is
/// called with each row's 1-based number and its cells from column A up to its last value (rows
/// without any value are skipped) and returns false to stop. Answers the name of the sheet read.
///
/// Only one row is held at a time. calamine's `worksheet_range` builds a dense grid up to the
/// farthest cell, so that a 9 KB file with one value at `XFD1048576` asks for 17 billion cells:
/// the cells are streamed instead, and a value in a row past `max_rows` or a column past
/// [`MAX_SHEET_COLUMNS`] stops the reading with a problem naming the sheet and the cell. Empty
/// cells (formatting only) are ignored wherever they are. Before any of it, the sizes the zip
/// declares are checked (see [`check_xlsx_sizes`]): a small file that inflates to hundreds of MiB
/// is refused with `file_too_large` without being inflated.
pub(crate) fn read_xlsx_rows(
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
    max_rows: usize,
    mut row: impl FnMut(usize, &[Cell]) -> bool,
) -> Result<String, SheetProblem> {
    use calamine::Reader;
    check_xlsx_sizes(bytes)?;
    let mut workbook = calamine::Xlsx::new(Cursor::new(bytes))
        .map_err(|err| SheetProblem::file("malformed_file", format!("không đọc được tệp XLSX: {err}")))?;
    let Some(sheet) = workbook.sheet_names().into_iter().find(|name| wanted(name)) else {
        return Err(SheetProblem::file("empty_sheet", "tệp không có trang tính dữ liệu".to_owned()));
    };
    let unreadable = |err: calamine::XlsxError| {
        SheetProblem::file("malformed_file", format!("không đọc được trang tính `{sheet}`: {err}"))
    };
    let mut cells = workbook.worksheet_cells_reader(&sheet).map_err(unreadable)?;
    let (mut current, mut values): (Option<usize>, Vec<Cell<'static>>) = (None, Vec::new());
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let value = Cell::from_xlsx(&calamine::Data::from(cell.get_value().clone())).into_owned();
        if value.is_empty() {
            continue;
        }
        let (row_index, column) = cell.get_position();
        let (number, column) = (row_index as usize + 1, column as usize);
        let beyond = if column >= MAX_SHEET_COLUMNS {
            Some((
                "too_many_columns",
                format!("tối đa {MAX_SHEET_COLUMNS} cột (A đến {})", column_letter(MAX_SHEET_COLUMNS - 1)),
            ))
        } else if number > max_rows {
            Some(("too_many_rows", format!("tối đa {max_rows} dòng")))
        } else {
            None
        };
        if let Some((code, limit)) = beyond {
            return Err(SheetProblem {
                code,
                message: format!(
                    "ô `{}{number}` của trang tính `{sheet}` nằm ngoài giới hạn ({limit}): hãy xoá các ô thừa hoặc chia thành nhiều tệp",
                    column_letter(column)
                ),
                row: Some(number),
                column: Some(column),
            });
        }
        match current {
            Some(previous) if number < previous => {
                return Err(SheetProblem {
                    code: "malformed_file",
                    message: format!("trang tính `{sheet}` ghi dòng {number} sau dòng {previous}"),
                    row: Some(number),
                    column: None,
                });
            }
            Some(previous) if number > previous => {
                if !row(previous, &values) {
                    return Ok(sheet);
                }
                values.clear();
            }
            _ => {}
        }
        current = Some(number);
        if values.len() <= column {
            values.resize(column + 1, Cell::Empty);
        }
        values[column] = value;
    }
    let Some(last) = current else {
        return Err(SheetProblem::file("empty_sheet", format!("trang tính `{sheet}` trống")));
    };
    row(last, &values);
    Ok(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workbook of one sheet with `unit_code` and `week` headers and the given string cells.
    fn workbook(cells: &[(u32, u16, &str)]) -> Vec<u8> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.write_string(0, 0, "unit_code").unwrap();
        sheet.write_string(0, 1, "week").unwrap();
        for (row, column, text) in cells {
            sheet.write_string(*row, *column, *text).unwrap();
        }
        workbook.save_to_buffer().unwrap()
    }

    fn read(bytes: &[u8], max_rows: usize) -> (Result<String, SheetProblem>, Vec<(usize, Vec<Cell<'static>>)>) {
        let mut rows = Vec::new();
        let outcome = read_xlsx_rows(
            bytes,
            |_| true,
            max_rows,
            |number, cells| {
                rows.push((number, cells.iter().map(|cell| cell.clone().into_owned()).collect()));
                true
            },
        );
        (outcome, rows)
    }

    #[test]
    fn a_value_in_the_last_cell_of_a_sheet_is_refused_without_building_the_grid() {
        let started = std::time::Instant::now();
        let (outcome, _) = read(&workbook(&[(1_048_575, 16_383, "x")]), 200_001);
        let problem = outcome.unwrap_err();
        assert_eq!((problem.code, problem.row, problem.column), ("too_many_columns", Some(1_048_576), Some(16_383)));
        assert!(
            problem.message.contains("`XFD1048576`") && problem.message.contains("`Sheet1`"),
            "{}",
            problem.message
        );
        let (outcome, _) = read(&workbook(&[(1_048_575, 0, "x")]), 200_001);
        let problem = outcome.unwrap_err();
        assert_eq!((problem.code, problem.row, problem.column), ("too_many_rows", Some(1_048_576), Some(0)));
        assert!(problem.message.contains("`A1048576`"), "{}", problem.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    /// `workbook` re-zipped with its shared strings replaced by `strings` copies of `<si/>`.
    fn with_shared_strings(workbook: &[u8], strings: usize) -> Vec<u8> {
        use std::io::Write;
        let mut source = zip::ZipArchive::new(Cursor::new(workbook)).unwrap();
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let mut replaced = false;
        for index in 0..source.len() {
            let entry = source.by_index(index).unwrap();
            if entry.name_raw() == b"xl/sharedStrings.xml" {
                drop(entry);
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .compression_level(Some(1));
                writer.start_file("xl/sharedStrings.xml", options).unwrap();
                writer.write_all(format!(r#"<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{strings}" uniqueCount="{strings}">"#).as_bytes()).unwrap();
                let chunk = "<si/>".repeat(10_000);
                for _ in 0..strings / 10_000 {
                    writer.write_all(chunk.as_bytes()).unwrap();
                }
                writer.write_all(b"</sst>").unwrap();
                replaced = true;
            } else {
                writer.raw_copy_file(entry).unwrap();
            }
        }
        assert!(replaced, "the workbook has shared strings");
        writer.finish().unwrap().into_inner()
    }

    /// Sets the uncompressed size `name` declares, in its local header and in the central
    /// directory, to `size`: a zip that lies about what its part inflates to.
    fn declare_size(mut zip: Vec<u8>, name: &str, size: u32) -> Vec<u8> {
        let mut patched = 0;
        for start in 0..zip.len().saturating_sub(46) {
            let (size_at, name_at) = match &zip[start..start + 4] {
                b"PK\x03\x04" => (22, 30),
                b"PK\x01\x02" => (24, 46),
                _ => continue,
            };
            if zip[start + name_at..].starts_with(name.as_bytes()) {
                zip[start + size_at..start + size_at + 4].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
        assert_eq!(patched, 2, "a local header and a central directory entry");
        zip
    }

    #[test]
    fn a_workbook_inflating_past_the_bounds_is_refused_before_it_is_read() {
        let honest = workbook(&[(1, 0, "00004"), (1, 1, "2025-W38")]);
        assert_eq!(read(&honest, 10).0.unwrap(), "Sheet1");
        // 2,000,000 `<si/>`: 10 MB of shared strings from a zip of a few KB.
        let started = std::time::Instant::now();
        let bomb = with_shared_strings(&honest, 2_000_000);
        assert!(bomb.len() < 256 * 1024, "{} bytes", bomb.len());
        let started_reading = std::time::Instant::now();
        let (outcome, rows) = read(&bomb, 10);
        let problem = outcome.unwrap_err();
        assert_eq!((problem.code, problem.row, rows.len()), ("file_too_large", None, 0));
        assert!(
            problem.message.contains("`xl/sharedStrings.xml`") && problem.message.contains("8.0 MiB"),
            "{}",
            problem.message
        );
        assert!(
            started_reading.elapsed() < std::time::Duration::from_millis(500),
            "took {:?}",
            started_reading.elapsed()
        );
        // The same part declaring 1,000 bytes: inflating stops there with an error, not at 10 MB.
        let liar = declare_size(bomb, "xl/sharedStrings.xml", 1_000);
        let started_reading = std::time::Instant::now();
        let problem = read(&liar, 10).0.unwrap_err();
        assert_eq!(problem.code, "malformed_file", "{}", problem.message);
        assert!(problem.message.contains("larger than its declared uncompressed size"), "{}", problem.message);
        assert!(
            started_reading.elapsed() < std::time::Duration::from_millis(500),
            "took {:?}",
            started_reading.elapsed()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    }

    #[test]
    fn rows_stream_in_order_with_their_numbers_and_blank_cells_anywhere_are_ignored() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 1, "unit_code").unwrap();
        sheet.write_number(4, 2, 3.0).unwrap();
        // Formatting alone, as Excel leaves it on whole columns: no value, no limit.
        sheet.write_blank(1_048_575, 16_383, &rust_xlsxwriter::Format::new().set_bold()).unwrap();
        let (outcome, rows) = read(&book.save_to_buffer().unwrap(), 10);
        assert_eq!(outcome.unwrap(), "Sheet1");
        assert_eq!(
            rows,
            [
                (1, vec![Cell::Empty, Cell::Text("unit_code".into())]),
                (5, vec![Cell::Empty, Cell::Empty, Cell::Number(3.0)]),
            ]
        );
        let (outcome, rows) = read(&workbook(&[]), 10);
        assert_eq!((outcome.unwrap(), rows.len()), ("Sheet1".to_owned(), 1));
        assert_eq!(read(b"not a zip", 10).0.unwrap_err().code, "malformed_file");
    }
}
