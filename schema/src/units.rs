//! Administrative units: the 34 provinces and 3,321 communes in force since 2025-07-01, the
//! 10,035 communes before the reform, and the crosswalk from old to new codes.
//!
//! The lists are compiled into the binary (see `data/admin-units/PROVENANCE.md`). A commune code
//! is read as a 2025 code when it is one; otherwise as a pre-2025 code, mapped to its new commune
//! (the default target when the old commune was split). 27 old codes are also (different) 2025
//! codes; a caller that means the old one names it with [`CodeVersion::Pre2025`].

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const PROVINCES_CSV: &str = include_str!("../data/admin-units/provinces_2025.csv");
const COMMUNES_CSV: &str = include_str!("../data/admin-units/wards_2025.csv");
const LEGACY_CSV: &str = include_str!("../data/admin-units/wards_legacy_pre2025.csv");
const CROSSWALK_CSV: &str = include_str!("../data/admin-units/ward_mapping_2025_old_to_new.csv");

/// The day the 2025 codes came into force.
pub const REFORM_DATE: &str = "2025-07-01";

#[derive(Debug, Clone, Serialize)]
pub struct Province {
    pub code: String,
    pub name: String,
    pub commune_count: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Commune {
    pub code: String,
    pub name: String,
    /// `Xã`, `Phường` or `Đặc khu`.
    pub kind: String,
    pub province_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub area_km2: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LegacyCommune {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub district_code: String,
    pub district_name: String,
    pub province_code: String,
    pub province_name: String,
}

/// One row of the crosswalk.
#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Deserialize)]
struct CrosswalkRow {
    old_ward_code: String,
    new_ward_code: String,
    old_ward_split: u8,
    is_default_new_ward: u8,
}

fn read_rows<T: serde::de::DeserializeOwned>(csv_text: &str) -> Vec<T> {
    csv::Reader::from_reader(csv_text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .expect("embedded reference data parses (checked by tests)")
}

impl Units {
    /// The lists compiled into the binary, parsed once.
    pub fn embedded() -> &'static Units {
        static UNITS: OnceLock<Units> = OnceLock::new();
        UNITS.get_or_init(Units::parse_embedded)
    }

    fn parse_embedded() -> Units {
        let provinces: Vec<Province> = read_rows::<ProvinceRow>(PROVINCES_CSV)
            .into_iter()
            .map(|row| Province { code: row.province_code, name: row.province_name, commune_count: row.ward_count })
            .collect();
        let communes: Vec<Commune> = read_rows::<CommuneRow>(COMMUNES_CSV)
            .into_iter()
            .map(|row| Commune {
                code: row.ward_code,
                name: row.ward_name,
                kind: row.ward_type,
                province_code: row.province_code,
                lat: row.lat,
                lon: row.lon,
                area_km2: row.area_km2,
            })
            .collect();
        let legacy = read_rows::<LegacyRow>(LEGACY_CSV)
            .into_iter()
            // Island districts without communes have no commune row.
            .filter(|row| !row.ward_code.is_empty())
            .map(|row| {
                let commune = LegacyCommune {
                    code: row.ward_code.clone(),
                    name: row.ward_name,
                    kind: row.ward_type,
                    district_code: row.district_code,
                    district_name: row.district_name,
                    province_code: row.province_code,
                    province_name: row.province_name,
                };
                (row.ward_code, commune)
            })
            .collect();
        let crosswalk: Vec<CrosswalkEntry> = read_rows::<CrosswalkRow>(CROSSWALK_CSV)
            .into_iter()
            .map(|row| CrosswalkEntry {
                old_code: row.old_ward_code,
                new_code: row.new_ward_code,
                split: row.old_ward_split == 1,
                default_target: row.is_default_new_ward == 1,
            })
            .collect();
        let default_target = crosswalk
            .iter()
            .filter(|entry| entry.default_target)
            .map(|entry| (entry.old_code.clone(), entry.new_code.clone()))
            .collect();
        let province_index = provinces.iter().enumerate().map(|(i, p)| (p.code.clone(), i)).collect();
        let commune_index = communes.iter().enumerate().map(|(i, c)| (c.code.clone(), i)).collect();
        Units { provinces, province_index, communes, commune_index, legacy, crosswalk, default_target }
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
        let province =
            self.province(&commune.province_code).expect("every commune's province is listed (checked by tests)");
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
    fn names_match_across_tone_and_apostrophe_variants() {
        let units = Units::embedded();
        let hoa = units.communes().iter().find(|c| c.name.contains("Hòa") || c.name.contains("Hoà")).unwrap();
        let variant =
            if hoa.name.contains("Hòa") { hoa.name.replace("Hòa", "Hoà") } else { hoa.name.replace("Hoà", "Hòa") };
        let found = units.find_communes_by_name(&hoa.province_code, &variant);
        assert!(found.iter().any(|c| c.code == hoa.code), "{variant} should find {}", hoa.name);
    }
}
