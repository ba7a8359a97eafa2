//! Administrative units: the 34 provinces and 3,321 communes in force since 2025-07-01, the
//! 10,035 communes before the reform, and the crosswalk from old to new codes.
//!
//! The lists are compiled into the binary (see `data/admin-units/PROVENANCE.md`). A commune code
//! is read as a 2025 code when it is one; otherwise as a pre-2025 code, mapped to its new commune
//! (the default target when the old commune was split). 27 old codes are also (different) 2025
//! codes; a caller that means the old one names it with [`CodeVersion::Pre2025`].
//!
//! The lists are versioned code lists: every province and commune carries `valid_from` and
//! `valid_to`. An update (`voxpop import --code-lists`) is stored as a new version under the data
//! directory (`reference/units/v{N}/`, the four files of `data/admin-units` with validity
//! columns); commands install the newest one with [`Units::install`] before anything reads the
//! lists, and [`Units::embedded`] then returns it. A unit is retired by giving it a `valid_to`,
//! never deleted, so codes of old petitions and pre-2025 codes stay resolvable.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

const PROVINCES_CSV: &str = include_str!("../data/admin-units/provinces_2025.csv");
const COMMUNES_CSV: &str = include_str!("../data/admin-units/wards_2025.csv");
const LEGACY_CSV: &str = include_str!("../data/admin-units/wards_legacy_pre2025.csv");
const CROSSWALK_CSV: &str = include_str!("../data/admin-units/ward_mapping_2025_old_to_new.csv");

/// File of the provinces in a directory of lists ([`Units::from_dir`], [`Units::write_dir`]).
pub const PROVINCES_FILE: &str = "provinces_2025.csv";
/// File of the 2025 communes in a directory of lists.
pub const COMMUNES_FILE: &str = "wards_2025.csv";
/// File of the pre-2025 communes in a directory of lists.
pub const LEGACY_FILE: &str = "wards_legacy_pre2025.csv";
/// File of the crosswalk in a directory of lists.
pub const CROSSWALK_FILE: &str = "ward_mapping_2025_old_to_new.csv";
/// The four files of a directory of lists, in the order of the datasets.
pub const LIST_FILES: [&str; 4] = [PROVINCES_FILE, COMMUNES_FILE, LEGACY_FILE, CROSSWALK_FILE];

/// The day the 2025 codes came into force.
pub const REFORM_DATE: &str = "2025-07-01";

/// [`REFORM_DATE`] as a date.
pub const REFORM_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2025, 7, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};

/// The last day of the pre-2025 codes.
pub const LAST_PRE_REFORM_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2025, 6, 30) {
    Some(day) => day,
    None => NaiveDate::MIN,
};

/// Whether a code valid from `valid_from` to `valid_to` (both inclusive, open when `None`) is in
/// force on `day`.
pub fn in_force(valid_from: Option<NaiveDate>, valid_to: Option<NaiveDate>, day: NaiveDate) -> bool {
    valid_from.is_none_or(|from| from <= day) && valid_to.is_none_or(|to| day <= to)
}

/// A province in force since 2025-07-01 (or added by a later update of the lists).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Province {
    /// Two-digit GSO code.
    pub code: String,
    pub name: String,
    /// Communes of the province (in force when the lists were made).
    pub commune_count: u32,
    /// First day in force; `None` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<NaiveDate>,
    /// Last day in force; `None` while in force. A retired code stays listed (and resolvable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<NaiveDate>,
}

/// A commune of the 2025 list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Commune {
    /// Five-digit GSO code.
    pub code: String,
    pub name: String,
    /// `Xã`, `Phường` or `Đặc khu`.
    pub kind: String,
    pub province_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub area_km2: Option<f64>,
    /// First day in force; `None` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<NaiveDate>,
    /// Last day in force; `None` while in force. A retired code stays listed (and resolvable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<NaiveDate>,
}

/// A commune before the 2025 reform.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegacyCommune {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub district_code: String,
    pub district_name: String,
    pub province_code: String,
    pub province_name: String,
    /// First day in force; `None` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<NaiveDate>,
    /// Last day in force (2025-06-30 for the list replaced by the reform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<NaiveDate>,
}

impl Province {
    /// Whether the province is in force on `day`.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        in_force(self.valid_from, self.valid_to, day)
    }
}

impl Commune {
    /// Whether the commune is in force on `day`.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        in_force(self.valid_from, self.valid_to, day)
    }
}

impl LegacyCommune {
    /// Whether the commune was in force on `day`.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        in_force(self.valid_from, self.valid_to, day)
    }
}

/// One row of the crosswalk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrosswalkEntry {
    pub old_code: String,
    pub new_code: String,
    /// The old commune was split across several new ones.
    pub split: bool,
    /// This new commune is where the old code goes by default.
    pub default_target: bool,
}

/// Which code list a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeVersion {
    /// The codes in force since 2025-07-01.
    #[serde(rename = "2025")]
    V2025,
    /// The codes before the reform.
    Pre2025,
}

/// A commune code resolved to the commune in force.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedCommune<'a> {
    pub commune: &'a Commune,
    pub province: &'a Province,
    /// The code as submitted, when it was a pre-2025 code.
    pub original_code: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("unknown commune code `{0}`")]
    UnknownCommune(String),
    #[error("malformed commune code `{0}`: expected 5 digits")]
    MalformedCommune(String),
}

/// Why a set of lists cannot be read, written or assembled.
#[derive(Debug, thiserror::Error)]
pub enum UnitListError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not in the format of `schema/data/admin-units`.
    #[error("{file}: {message}")]
    Format { file: String, message: String },
    /// The lists contradict each other (a commune of an unknown province, a duplicate code...).
    #[error("inconsistent lists: {0}")]
    Inconsistent(String),
}

/// All reference lists, indexed for look-ups.
#[derive(Debug)]
pub struct Units {
    provinces: Vec<Province>,
    province_index: HashMap<String, usize>,
    communes: Vec<Commune>,
    commune_index: HashMap<String, usize>,
    legacy: HashMap<String, LegacyCommune>,
    crosswalk: Vec<CrosswalkEntry>,
    default_target: HashMap<String, String>,
}

#[derive(Deserialize)]
struct ProvinceRow {
    province_code: String,
    province_name: String,
    ward_count: u32,
    #[serde(default)]
    valid_from: Option<NaiveDate>,
    #[serde(default)]
    valid_to: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct CommuneRow {
    ward_code: String,
    ward_name: String,
    ward_type: String,
    province_code: String,
    lat: Option<f64>,
    lon: Option<f64>,
    area_km2: Option<f64>,
    #[serde(default)]
    valid_from: Option<NaiveDate>,
    #[serde(default)]
    valid_to: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct LegacyRow {
    ward_code: String,
    ward_name: String,
    ward_type: String,
    district_code: String,
    district_name: String,
    province_code: String,
    province_name: String,
    #[serde(default)]
    valid_from: Option<NaiveDate>,
    #[serde(default)]
    valid_to: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct CrosswalkRow {
    old_ward_code: String,
    new_ward_code: String,
    old_ward_split: u8,
    is_default_new_ward: u8,
}

/// The rows of one CSV file, and whether it has the `valid_from`/`valid_to` columns (the
/// compiled-in files have none: their validity is the reform's).
fn read_rows<T: serde::de::DeserializeOwned>(file: &str, csv_text: &str) -> Result<(Vec<T>, bool), UnitListError> {
    let format = |message: String| UnitListError::Format { file: file.to_owned(), message };
    let csv_text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let dated = reader.headers().map_err(|err| format(err.to_string()))?.iter().any(|h| h == "valid_from");
    let rows = reader.deserialize().collect::<Result<Vec<T>, _>>().map_err(|err| format(err.to_string()))?;
    Ok((rows, dated))
}

/// The installed lists ([`Units::install`]), or the compiled-in ones once something used them.
static UNITS: OnceLock<Units> = OnceLock::new();

impl Units {
    /// The lists in use, parsed once: those [`Units::install`] set before first use (a newer
    /// version from the data directory), otherwise the lists compiled into the binary.
    pub fn embedded() -> &'static Units {
        UNITS.get_or_init(Units::compiled_in)
    }

    /// Makes `units` the lists [`Units::embedded`] returns. Only before anything used them:
    /// once set they cannot be replaced, and the lists in use come back as the error.
    pub fn install(units: Units) -> Result<(), Units> {
        UNITS.set(units)
    }

    /// Whether the lists in use are already fixed (installed, or compiled-in and used).
    pub fn in_use() -> bool {
        UNITS.get().is_some()
    }

    /// The lists compiled into the binary, freshly parsed (whatever is installed).
    pub fn compiled_in() -> Units {
        Units::parse(PROVINCES_CSV, COMMUNES_CSV, LEGACY_CSV, CROSSWALK_CSV)
            .expect("embedded reference data parses (checked by tests)")
    }

    /// The lists of a directory holding the four files of `schema/data/admin-units`
    /// ([`LIST_FILES`]), optionally with `valid_from`/`valid_to` columns (as
    /// [`Units::write_dir`] writes them).
    pub fn from_dir(dir: &Path) -> Result<Units, UnitListError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| UnitListError::Io { path, source })
        };
        Units::parse(&read(PROVINCES_FILE)?, &read(COMMUNES_FILE)?, &read(LEGACY_FILE)?, &read(CROSSWALK_FILE)?)
    }

    fn parse(provinces: &str, communes: &str, legacy: &str, crosswalk: &str) -> Result<Units, UnitListError> {
        let (rows, dated) = read_rows::<ProvinceRow>(PROVINCES_FILE, provinces)?;
        let provinces = rows
            .into_iter()
            .map(|row| Province {
                code: row.province_code,
                name: row.province_name,
                commune_count: row.ward_count,
                valid_from: if dated { row.valid_from } else { Some(REFORM_DAY) },
                valid_to: if dated { row.valid_to } else { None },
            })
            .collect();
        let (rows, dated) = read_rows::<CommuneRow>(COMMUNES_FILE, communes)?;
        let communes = rows
            .into_iter()
            .map(|row| Commune {
                code: row.ward_code,
                name: row.ward_name,
                kind: row.ward_type,
                province_code: row.province_code,
                lat: row.lat,
                lon: row.lon,
                area_km2: row.area_km2,
                valid_from: if dated { row.valid_from } else { Some(REFORM_DAY) },
                valid_to: if dated { row.valid_to } else { None },
            })
            .collect();
        let (rows, dated) = read_rows::<LegacyRow>(LEGACY_FILE, legacy)?;
        let legacy = rows
            .into_iter()
            // Island districts without communes have no commune row.
            .filter(|row| !row.ward_code.is_empty())
            .map(|row| LegacyCommune {
                code: row.ward_code,
                name: row.ward_name,
                kind: row.ward_type,
                district_code: row.district_code,
                district_name: row.district_name,
                province_code: row.province_code,
                province_name: row.province_name,
                valid_from: if dated { row.valid_from } else { None },
                valid_to: if dated { row.valid_to } else { Some(LAST_PRE_REFORM_DAY) },
            })
            .collect();
        let (rows, _) = read_rows::<CrosswalkRow>(CROSSWALK_FILE, crosswalk)?;
        let crosswalk = rows
            .into_iter()
            .map(|row| CrosswalkEntry {
                old_code: row.old_ward_code,
                new_code: row.new_ward_code,
                split: row.old_ward_split == 1,
                default_target: row.is_default_new_ward == 1,
            })
            .collect();
        Units::from_lists(provinces, communes, legacy, crosswalk)
    }

    /// Indexes the four lists, checking what look-ups rely on: codes are unique in each list,
    /// every commune's province is listed, every crosswalk row joins a listed pre-2025 commune
    /// to a listed 2025 one, and an old code has at most one default target.
    pub fn from_lists(
        provinces: Vec<Province>,
        communes: Vec<Commune>,
        legacy: Vec<LegacyCommune>,
        crosswalk: Vec<CrosswalkEntry>,
    ) -> Result<Units, UnitListError> {
        let inconsistent = |message: String| Err(UnitListError::Inconsistent(message));
        let mut province_index = HashMap::with_capacity(provinces.len());
        for (i, province) in provinces.iter().enumerate() {
            if province_index.insert(province.code.clone(), i).is_some() {
                return inconsistent(format!("province `{}` is listed twice", province.code));
            }
        }
        let mut commune_index = HashMap::with_capacity(communes.len());
        for (i, commune) in communes.iter().enumerate() {
            if commune_index.insert(commune.code.clone(), i).is_some() {
                return inconsistent(format!("commune `{}` is listed twice", commune.code));
            }
            if !province_index.contains_key(&commune.province_code) {
                return inconsistent(format!(
                    "commune `{}` is in province `{}`, which is not listed",
                    commune.code, commune.province_code
                ));
            }
        }
        let mut legacy_index = HashMap::with_capacity(legacy.len());
        for commune in legacy {
            if let Some(twice) = legacy_index.insert(commune.code.clone(), commune) {
                return inconsistent(format!("pre-2025 commune `{}` is listed twice", twice.code));
            }
        }
        let mut default_target = HashMap::new();
        let mut pairs = HashSet::with_capacity(crosswalk.len());
        for entry in &crosswalk {
            if !legacy_index.contains_key(&entry.old_code) {
                return inconsistent(format!("crosswalk: `{}` is no pre-2025 commune", entry.old_code));
            }
            if !commune_index.contains_key(&entry.new_code) {
                return inconsistent(format!("crosswalk: `{}` is no 2025 commune", entry.new_code));
            }
            if !pairs.insert((entry.old_code.as_str(), entry.new_code.as_str())) {
                return inconsistent(format!(
                    "crosswalk: `{}` -> `{}` is listed twice",
                    entry.old_code, entry.new_code
                ));
            }
            if entry.default_target && default_target.insert(entry.old_code.clone(), entry.new_code.clone()).is_some() {
                return inconsistent(format!("crosswalk: `{}` has two default targets", entry.old_code));
            }
        }
        Ok(Units {
            provinces,
            province_index,
            communes,
            commune_index,
            legacy: legacy_index,
            crosswalk,
            default_target,
        })
    }

    /// Writes the four lists into `dir` (which must exist) in the format of
    /// `schema/data/admin-units` ([`LIST_FILES`]) with `valid_from`/`valid_to` columns added (and
    /// without the pre-2025 list's district-only rows and `district_type`, which voxpop does
    /// not read); [`Units::from_dir`] reads them back. Returns the paths written.
    pub fn write_dir(&self, dir: &Path) -> Result<Vec<PathBuf>, UnitListError> {
        fn write(dir: &Path, file: &str, header: &[&str], rows: Vec<Vec<String>>) -> Result<PathBuf, UnitListError> {
            let path = dir.join(file);
            let format = |err: csv::Error| UnitListError::Format { file: file.to_owned(), message: err.to_string() };
            let mut writer = csv::Writer::from_path(&path).map_err(format)?;
            writer.write_record(header).map_err(format)?;
            for row in rows {
                writer.write_record(&row).map_err(format)?;
            }
            writer.flush().map_err(|source| UnitListError::Io { path: path.clone(), source })?;
            Ok(path)
        }
        let date = |day: Option<NaiveDate>| day.map(|d| d.to_string()).unwrap_or_default();
        let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
        let flag = |value: bool| if value { "1" } else { "0" }.to_owned();
        let provinces = self
            .provinces
            .iter()
            .map(|p| {
                vec![p.code.clone(), p.name.clone(), p.commune_count.to_string(), date(p.valid_from), date(p.valid_to)]
            })
            .collect();
        let communes = self
            .communes
            .iter()
            .map(|c| {
                let province = self.province(&c.province_code).map(|p| p.name.clone()).unwrap_or_default();
                vec![
                    c.code.clone(),
                    c.name.clone(),
                    c.kind.clone(),
                    c.province_code.clone(),
                    province,
                    number(c.lat),
                    number(c.lon),
                    number(c.area_km2),
                    date(c.valid_from),
                    date(c.valid_to),
                ]
            })
            .collect();
        let mut legacy: Vec<&LegacyCommune> = self.legacy.values().collect();
        legacy.sort_by(|a, b| a.code.cmp(&b.code));
        let legacy = legacy
            .into_iter()
            .map(|c| {
                vec![
                    c.code.clone(),
                    c.name.clone(),
                    c.kind.clone(),
                    c.district_code.clone(),
                    c.district_name.clone(),
                    c.province_code.clone(),
                    c.province_name.clone(),
                    date(c.valid_from),
                    date(c.valid_to),
                ]
            })
            .collect();
        let crosswalk = self
            .crosswalk
            .iter()
            .map(|x| vec![x.old_code.clone(), x.new_code.clone(), flag(x.split), flag(x.default_target)])
            .collect();
        Ok(vec![
            write(
                dir,
                PROVINCES_FILE,
                &["province_code", "province_name", "ward_count", "valid_from", "valid_to"],
                provinces,
            )?,
            write(
                dir,
                COMMUNES_FILE,
                &[
                    "ward_code",
                    "ward_name",
                    "ward_type",
                    "province_code",
                    "province_name",
                    "lat",
                    "lon",
                    "area_km2",
                    "valid_from",
                    "valid_to",
                ],
                communes,
            )?,
            write(
                dir,
                LEGACY_FILE,
                &[
                    "ward_code",
                    "ward_name",
                    "ward_type",
                    "district_code",
                    "district_name",
                    "province_code",
                    "province_name",
                    "valid_from",
                    "valid_to",
                ],
                legacy,
            )?,
            write(
                dir,
                CROSSWALK_FILE,
                &["old_ward_code", "new_ward_code", "old_ward_split", "is_default_new_ward"],
                crosswalk,
            )?,
        ])
    }

    pub fn provinces(&self) -> &[Province] {
        &self.provinces
    }

    pub fn communes(&self) -> &[Commune] {
        &self.communes
    }

    pub fn crosswalk(&self) -> &[CrosswalkEntry] {
        &self.crosswalk
    }

    pub fn legacy_communes(&self) -> impl Iterator<Item = &LegacyCommune> {
        self.legacy.values()
    }

    pub fn province(&self, code: &str) -> Option<&Province> {
        self.province_index.get(code).map(|&i| &self.provinces[i])
    }

    /// A commune in force since 2025-07-01.
    pub fn commune(&self, code: &str) -> Option<&Commune> {
        self.commune_index.get(code).map(|&i| &self.communes[i])
    }

    pub fn legacy_commune(&self, code: &str) -> Option<&LegacyCommune> {
        self.legacy.get(code)
    }

    /// Resolves a commune code of either list to the commune in force (see the module docs).
    pub fn resolve_commune<'a>(
        &'a self,
        code: &'a str,
        version: Option<CodeVersion>,
    ) -> Result<ResolvedCommune<'a>, UnitError> {
        if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UnitError::MalformedCommune(code.to_owned()));
        }
        if version != Some(CodeVersion::Pre2025)
            && let Some(commune) = self.commune(code)
        {
            return Ok(self.resolved(commune, None));
        }
        if version != Some(CodeVersion::V2025)
            && let Some(new_code) = self.default_target.get(code)
            && let Some(commune) = self.commune(new_code)
        {
            return Ok(self.resolved(commune, Some(code)));
        }
        Err(UnitError::UnknownCommune(code.to_owned()))
    }

    fn resolved<'a>(&'a self, commune: &'a Commune, original_code: Option<&'a str>) -> ResolvedCommune<'a> {
        let province = self
            .province(&commune.province_code)
            .expect("every commune's province is listed (checked by Units::from_lists)");
        ResolvedCommune { commune, province, original_code }
    }

    /// Finds 2025 communes by name within a province, ignoring case, tone-mark placement and
    /// apostrophe variants.
    pub fn find_communes_by_name(&self, province_code: &str, name: &str) -> Vec<&Commune> {
        let key = crate::text::compare_key(name);
        self.communes
            .iter()
            .filter(|c| c.province_code == province_code && crate::text::compare_key(&c.name) == key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_published_lists() {
        let units = Units::embedded();
        assert_eq!(units.provinces().len(), 34);
        assert_eq!(units.communes().len(), 3_321);
        assert_eq!(units.legacy_communes().count(), 10_035);
        assert_eq!(units.crosswalk().len(), 10_597);
        for province in units.provinces() {
            let communes = units.communes().iter().filter(|c| c.province_code == province.code).count();
            assert_eq!(communes as u32, province.commune_count, "province {}", province.code);
        }
        for commune in units.communes() {
            assert!(units.province(&commune.province_code).is_some());
        }
    }

    #[test]
    fn every_old_code_has_a_default_target_in_force() {
        let units = Units::embedded();
        for old in units.legacy_communes() {
            let resolved = units.resolve_commune(&old.code, Some(CodeVersion::Pre2025)).expect("old code resolves");
            assert_eq!(resolved.original_code, Some(old.code.as_str()));
        }
    }

    #[test]
    fn resolves_new_and_old_codes() {
        let units = Units::embedded();
        let new = units.resolve_commune("00004", None).unwrap();
        assert_eq!(new.commune.name, "Phường Ba Đình");
        assert_eq!(new.province.code, "01");
        assert_eq!(new.original_code, None);
        // 00001 (Phường Phúc Xá, Quận Ba Đình) is not a 2025 code: it maps to Phường Hồng Hà.
        let old = units.resolve_commune("00001", None).unwrap();
        assert_eq!(old.commune.code, "00097");
        assert_eq!(old.original_code, Some("00001"));
        assert_eq!(units.resolve_commune("99999", None).unwrap_err(), UnitError::UnknownCommune("99999".into()));
        assert!(matches!(units.resolve_commune("12a", None), Err(UnitError::MalformedCommune(_))));
    }

    #[test]
    fn split_commune_goes_to_its_default_target() {
        let units = Units::embedded();
        let split = units
            .crosswalk()
            .iter()
            .find(|e| e.split && e.default_target && units.commune(&e.old_code).is_none())
            .unwrap();
        let resolved = units.resolve_commune(&split.old_code, None).unwrap();
        assert_eq!(resolved.commune.code, split.new_code);
    }

    #[test]
    fn units_carry_the_validity_of_their_list() {
        let units = Units::compiled_in();
        assert!(units.provinces().iter().all(|p| p.valid_from == Some(REFORM_DAY) && p.valid_to.is_none()));
        assert!(units.communes().iter().all(|c| c.valid_from == Some(REFORM_DAY) && c.valid_to.is_none()));
        assert!(units.legacy_communes().all(|c| c.valid_to == Some(LAST_PRE_REFORM_DAY)));
        let day = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        assert!(units.commune("00004").unwrap().in_force_on(day));
        assert!(!units.legacy_commune("00001").unwrap().in_force_on(day));
        assert!(units.legacy_commune("00001").unwrap().in_force_on(LAST_PRE_REFORM_DAY));
    }

    #[test]
    fn units_written_to_a_directory_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("voxpop-units-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut units = Units::compiled_in();
        // A retired commune and a renamed one survive the round trip.
        units.communes[0].valid_to = NaiveDate::from_ymd_opt(2026, 1, 1);
        units.communes[1].name = "Phường Thử Nghiệm".into();
        let written = units.write_dir(&dir).unwrap();
        assert_eq!(written.len(), 4);
        let back = Units::from_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.provinces(), units.provinces());
        assert_eq!(back.communes(), units.communes());
        assert_eq!(back.crosswalk(), units.crosswalk());
        let mut legacy: Vec<_> = units.legacy_communes().cloned().collect();
        let mut legacy_back: Vec<_> = back.legacy_communes().cloned().collect();
        legacy.sort_by(|a, b| a.code.cmp(&b.code));
        legacy_back.sort_by(|a, b| a.code.cmp(&b.code));
        assert_eq!(legacy_back, legacy);
        assert_eq!(back.resolve_commune("00001", None).unwrap().commune.code, "00097");
        assert!(matches!(Units::from_dir(&dir), Err(UnitListError::Io { .. })));
    }

    #[test]
    fn units_from_lists_refuse_what_look_ups_cannot_handle() {
        let units = Units::compiled_in();
        let mut communes = units.communes().to_vec();
        communes[0].province_code = "99".into();
        let legacy: Vec<_> = units.legacy_communes().cloned().collect();
        let err = Units::from_lists(units.provinces().to_vec(), communes, legacy.clone(), units.crosswalk().to_vec())
            .unwrap_err();
        assert!(err.to_string().contains("province `99`"), "{err}");
        let mut crosswalk = units.crosswalk().to_vec();
        crosswalk.push(crosswalk[0].clone());
        let err =
            Units::from_lists(units.provinces().to_vec(), units.communes().to_vec(), legacy, crosswalk).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn units_install_only_before_first_use() {
        // Installing the compiled-in lists changes nothing other tests see; whether or not
        // something used the lists first, a second install is refused.
        let _ = Units::install(Units::compiled_in());
        assert!(Units::in_use());
        assert!(Units::install(Units::compiled_in()).is_err());
        assert_eq!(Units::embedded().communes().len(), 3_321);
    }

    #[test]
    fn names_match_across_tone_and_apostrophe_variants() {
        let units = Units::embedded();
        let hoa = units.communes().iter().find(|c| c.name.contains("Hòa") || c.name.contains("Hoà")).unwrap();
        let variant =
            if hoa.name.contains("Hòa") { hoa.name.replace("Hòa", "Hoà") } else { hoa.name.replace("Hoà", "Hòa") };
        let found = units.find_communes_by_name(&hoa.province_code, &variant);
        assert!(found.iter().any(|c| c.code == hoa.code), "{variant} should find {}", hoa.name);
    }
}
