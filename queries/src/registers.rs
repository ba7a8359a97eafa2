//! Reading the registers: officers and members of any unit (the latest entry per person wins),
//! the villages register, and the counts per level with the share of units whose lists were
//! updated in a period.
//!
//! In: the Delta table `register_entries` the registers pipeline writes, and the CSV villages
//! register of the data directory. Out: [`RegisterSummary`] (counts per level and coverage, as
//! staff write it: "2,280/3,321 (68.65%)"), pages of [`PersonEntry`]s limited to a unit's subtree
//! with personal data masked unless the reader may see it, and the merged villages register.
//!
//! # Counting
//!
//! A person counts on a day when their current entry is not removed and the day is within their
//! term ([`PersonEntry::active_on`]); the summary counts on the last day of the period. A unit
//! "updated its officer list" in the period when at least one officer entry of that unit (any
//! entry of the history, a removal included) was received in the period, in Vietnam time. Units
//! of a level are those of the organisation tree ([`OrgTree`]): the 34 provinces, the 3,321
//! communes, and the villages of the merged register.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use datafusion::prelude::{Expr, SessionContext, col, lit};
use deltalake::DeltaTableError;
use serde::Serialize;
use voxpop_schema::Units;
use voxpop_schema::registers::{
    self, PersonEntry, Register, RegisterRecord, VillageEntry, latest_people, merge_villages, vietnam_date,
};
use voxpop_schema::reports::{CENTRAL_CODE, Level, UnitRef, Village};

use crate::reports::read_villages;
use crate::summary::{Coverage, IsoWeek};
use crate::synthesis::OrgTree;
use crate::{QueryError, QueryResult};

/// Most entries one page of a listing returns.
pub const MAX_PAGE: usize = 1_000;

/// Days, from `from` to `to` inclusive, in Vietnam time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// The days from `from` to `to`; an error when `to` is before `from`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> QueryResult<Period> {
        if to < from {
            return Err(QueryError::BadRequest { field: "to", message: format!("`to` {to} is before `from` {from}") });
        }
        Ok(Period { from, to })
    }

    /// Monday to Sunday of an ISO week.
    pub fn week(week: IsoWeek) -> Period {
        let monday = week.monday();
        Period { from: monday, to: monday + chrono::Duration::days(6) }
    }

    /// The ISO week `at` falls in (Vietnam time): the default period.
    pub fn week_of(at: DateTime<Utc>) -> Period {
        let today = vietnam_date(at);
        let monday = today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
        debug_assert_eq!(monday.weekday(), Weekday::Mon);
        Period { from: monday, to: monday + chrono::Duration::days(6) }
    }

    /// Whether a moment falls within the period, in Vietnam time.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let day = vietnam_date(at);
        self.from <= day && day <= self.to
    }
}

/// Officers and members active at a unit (or a set of units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RegisterCounts {
    pub officers: u64,
    pub members: u64,
}

impl RegisterCounts {
    fn add(&mut self, register: Register) {
        match register {
            Register::Officer => self.officers += 1,
            Register::Member => self.members += 1,
        }
    }
}

/// The registers of the units of one level within a unit's subtree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelRegisters {
    pub level: Level,
    /// e.g. `xã, phường, đặc khu`.
    pub label: String,
    /// Units of this level in the subtree.
    pub units: u64,
    /// People active at the units of this level on the last day of the period.
    pub counts: RegisterCounts,
    /// Units of this level that updated their officer list in the period, e.g.
    /// `2,280/3,321 (68.65%)`.
    pub officer_lists_updated: Coverage,
    /// Units of this level that updated their member list in the period.
    pub member_lists_updated: Coverage,
}

impl LevelRegisters {
    /// The coverage of one register.
    pub fn updated(&self, register: Register) -> &Coverage {
        match register {
            Register::Officer => &self.officer_lists_updated,
            Register::Member => &self.member_lists_updated,
        }
    }

    /// As staff write it: `2,280/3,321 (68.65%) xã, phường, đặc khu đã cập nhật danh sách cán bộ
    /// trong kỳ`.
    pub fn sentence_vi(&self, register: Register) -> String {
        format!("{} {} đã cập nhật danh sách {} trong kỳ", self.updated(register).text, self.label, register.label_vi())
    }
}

/// A unit directly below the summarised one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildRegisters {
    pub code: String,
    pub name: String,
    pub level: Level,
    /// People active in the child and every unit below it.
    pub counts: RegisterCounts,
    /// Whether the child itself sent an officer entry in the period.
    pub officer_list_updated: bool,
    pub member_list_updated: bool,
}

/// Officers and members of a unit and the units below it, per level, with the share of units
/// that updated their lists in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterSummary {
    pub unit: String,
    pub name: String,
    pub level: Level,
    pub period: Period,
    /// People active at the unit itself on the last day of the period.
    pub own: RegisterCounts,
    /// People active at the unit and every unit below it.
    pub total: RegisterCounts,
    /// The unit's own level, then each level below it, top down.
    pub levels: Vec<LevelRegisters>,
    /// The units directly below, in code order.
    pub children: Vec<ChildRegisters>,
}

/// The name and parent of units, from their code: the reference lists and the villages register.
struct Names<'a> {
    units: &'a Units,
    villages: HashMap<&'a str, &'a str>,
}

impl<'a> Names<'a> {
    fn new(units: &'a Units, villages: &'a [Village]) -> Names<'a> {
        Names { units, villages: villages.iter().map(|v| (v.code.as_str(), v.name.as_str())).collect() }
    }

    fn name(&self, code: &str) -> Option<String> {
        match Level::of_code(code)? {
            Level::Central => Some("Ủy ban Trung ương".to_owned()),
            Level::Province => self.units.province(code).map(|p| p.name.clone()),
            Level::Commune => self.units.commune(code).map(|c| c.name.clone()),
            Level::Village => self.villages.get(code).map(|name| (*name).to_owned()),
        }
    }
}

/// The code of a unit's parent, from the code's shape and the reference lists.
fn parent_of(units: &Units, code: &str) -> Option<String> {
    match Level::of_code(code)? {
        Level::Central => None,
        Level::Province => Some(CENTRAL_CODE.to_owned()),
        Level::Commune => units.commune(code).map(|c| c.province_code.clone()),
        Level::Village => Some(code[..5].to_owned()),
    }
}

/// `code` and its ancestors, nearest first.
fn lineage(units: &Units, code: &str) -> Vec<String> {
    let mut chain = vec![code.to_owned()];
    while let Some(parent) = chain.last().and_then(|last| parent_of(units, last)) {
        chain.push(parent);
    }
    chain
}

/// Sums up the registers for `unit` (`00`, a province, a commune or a registered village) over
/// `entries` (every entry received, history included) and the villages register. Pure: see the
/// module docs for what counts.
pub fn summarise(
    units: &Units,
    villages: &[Village],
    entries: &[PersonEntry],
    unit: &str,
    period: Period,
) -> QueryResult<RegisterSummary> {
    let tree = OrgTree::new(units, villages)?;
    let names = Names::new(units, villages);
    let unknown = || QueryError::BadRequest {
        field: "unit",
        message: format!("unknown unit `{unit}`: 00, a province, a commune or a registered village code"),
    };
    if !tree.contains(unit) {
        return Err(unknown());
    }
    let level = Level::of_code(unit).ok_or_else(unknown)?;
    let levels_below: Vec<Level> = Level::ALL.into_iter().filter(|l| *l >= level).collect();
    // Where each unit of the tree sits relative to `unit`: `None` outside its subtree, else the
    // child of `unit` it is under (itself for `unit`).
    let mut placed: HashMap<String, Option<String>> = HashMap::new();
    let mut place = |code: &str| -> Option<String> {
        if let Some(found) = placed.get(code) {
            return found.clone();
        }
        let chain = lineage(units, code);
        let found = chain.iter().position(|c| c == unit).map(|at| chain[at.saturating_sub(1)].clone());
        placed.insert(code.to_owned(), found.clone());
        found
    };
    let mut level_units: HashMap<Level, u64> = HashMap::new();
    let mut children: Vec<ChildRegisters> = Vec::new();
    let mut child_index: HashMap<String, usize> = HashMap::new();
    for code in tree.codes() {
        let Some(under) = place(code) else { continue };
        let Some(code_level) = Level::of_code(code) else { continue };
        *level_units.entry(code_level).or_default() += 1;
        if under == code && code != unit {
            child_index.insert(code.to_owned(), children.len());
            children.push(ChildRegisters {
                code: code.to_owned(),
                name: names.name(code).unwrap_or_default(),
                level: code_level,
                counts: RegisterCounts::default(),
                officer_list_updated: false,
                member_list_updated: false,
            });
        }
    }
    let mut own = RegisterCounts::default();
    let mut total = RegisterCounts::default();
    let mut level_counts: HashMap<Level, RegisterCounts> = HashMap::new();
    let current = latest_people(entries.iter().cloned());
    for person in current.iter().filter(|person| person.active_on(period.to)) {
        let Some(under) = place(&person.unit) else { continue };
        let Some(person_level) = Level::of_code(&person.unit) else { continue };
        total.add(person.register);
        level_counts.entry(person_level).or_default().add(person.register);
        if person.unit == unit {
            own.add(person.register);
        } else if let Some(&i) = child_index.get(&under) {
            children[i].counts.add(person.register);
        }
    }
    // Units (of the tree) that sent an entry of each register in the period.
    let mut updated: HashSet<(Register, &str)> = HashSet::new();
    for entry in entries.iter().filter(|entry| period.contains(entry.submitted_at)) {
        if tree.contains(&entry.unit) && place(&entry.unit).is_some() {
            updated.insert((entry.register, entry.unit.as_str()));
        }
    }
    let mut updated_per_level: HashMap<(Register, Level), u64> = HashMap::new();
    for (register, code) in &updated {
        if let Some(code_level) = Level::of_code(code) {
            *updated_per_level.entry((*register, code_level)).or_default() += 1;
        }
        if let Some(&i) = child_index.get(*code) {
            match register {
                Register::Officer => children[i].officer_list_updated = true,
                Register::Member => children[i].member_list_updated = true,
            }
        }
    }
    let levels = levels_below
        .into_iter()
        .map(|below| {
            let units_here = level_units.get(&below).copied().unwrap_or(0);
            let coverage =
                |register| Coverage::new(updated_per_level.get(&(register, below)).copied().unwrap_or(0), units_here);
            LevelRegisters {
                level: below,
                label: below.label_vi().to_owned(),
                units: units_here,
                counts: level_counts.get(&below).copied().unwrap_or_default(),
                officer_lists_updated: coverage(Register::Officer),
                member_lists_updated: coverage(Register::Member),
            }
        })
        .collect();
    Ok(RegisterSummary {
        unit: unit.to_owned(),
        name: names.name(unit).unwrap_or_default(),
        level,
        period,
        own,
        total,
        levels,
        children,
    })
}

/// What to list of a register.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    /// The unit whose subtree is listed (the caller's scope applied by the caller).
    pub unit: UnitRef,
    /// One register, or both.
    pub register: Option<Register>,
    /// Also list people whose current entry removed them.
    pub include_removed: bool,
    /// Whether the reader may see names, phones and birth years.
    pub personal_data: bool,
    pub limit: usize,
    pub offset: usize,
}

/// One page of a register.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisterPage {
    pub unit: String,
    pub register: Option<Register>,
    /// Entries that match, all pages.
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    /// Whether names, phones and birth years are masked.
    pub masked: bool,
    /// Sorted by unit, register and person id.
    pub entries: Vec<PersonEntry>,
}

/// Read access to `register_entries` and the villages register.
pub struct RegisterQueries {
    table: PathBuf,
    villages_csv: PathBuf,
}

impl RegisterQueries {
    /// The table under `lake_dir` and the CSV villages register at `villages_csv`; until the
    /// table exists every register is empty and the villages are those of the CSV.
    pub fn new(lake_dir: &Path, villages_csv: &Path) -> RegisterQueries {
        RegisterQueries { table: lake_dir.join(registers::TABLE_NAME), villages_csv: villages_csv.to_owned() }
    }

    /// Every person entry received (history included) within `scope`'s subtree.
    pub async fn person_entries(&self, scope: &UnitRef) -> QueryResult<Vec<PersonEntry>> {
        let mut filter = col(registers::PARTITION_COLUMN).eq(lit("person"));
        match scope {
            UnitRef::Central => {}
            UnitRef::Province { province } => filter = filter.and(col("province_code").eq(lit(province.as_str()))),
            UnitRef::Commune { commune, .. } => filter = filter.and(col("commune_code").eq(lit(commune.as_str()))),
            UnitRef::Village { .. } => filter = filter.and(col("unit_code").eq(lit(scope.code()))),
        }
        let records = read_records(&self.table, filter).await?;
        Ok(records
            .into_iter()
            .filter_map(|record| match record {
                RegisterRecord::Person(person) => Some(person),
                RegisterRecord::Village(_) => None,
            })
            .collect())
    }

    /// Every village entry of the lake (history included).
    pub async fn village_entries(&self) -> QueryResult<Vec<VillageEntry>> {
        lake_village_entries(&self.table).await
    }

    /// The villages register: the CSV register with the lake's entries on top (see
    /// [`merge_villages`]).
    pub async fn villages(&self) -> QueryResult<Vec<Village>> {
        let csv = read_villages(&self.villages_csv)?;
        Ok(merge_villages(&csv, &self.village_entries().await?))
    }

    /// Every village code the register has ever held (removed ones included): numbers of new
    /// villages come after them, never reusing one.
    pub async fn village_codes_taken(&self) -> QueryResult<HashSet<String>> {
        let mut taken: HashSet<String> = read_villages(&self.villages_csv)?.into_iter().map(|v| v.code).collect();
        taken.extend(self.village_entries().await?.into_iter().map(|v| v.code));
        Ok(taken)
    }

    /// The counts per level and the coverage of updated lists for `unit` (see [`summarise`]).
    pub async fn summary(&self, unit: &str, period: Period) -> QueryResult<RegisterSummary> {
        let units = Units::embedded();
        let scope = UnitRef::parse(unit, units)
            .map_err(|err| QueryError::BadRequest { field: "unit", message: err.to_string() })?;
        let villages = self.villages().await?;
        let entries = self.person_entries(&scope).await?;
        summarise(units, &villages, &entries, unit, period)
    }

    /// One page of the current entries of `request.unit` and the units below it.
    pub async fn list(&self, request: &ListRequest) -> QueryResult<RegisterPage> {
        let entries = self.person_entries(&request.unit).await?;
        let mut current: Vec<PersonEntry> = latest_people(entries)
            .into_iter()
            .filter(|person| request.register.is_none_or(|register| person.register == register))
            .filter(|person| request.include_removed || !person.removed)
            .collect();
        let total = current.len();
        let limit = request.limit.min(MAX_PAGE);
        let page: Vec<PersonEntry> = current
            .drain(..)
            .skip(request.offset)
            .take(limit)
            .map(|person| if request.personal_data { person } else { person.masked() })
            .collect();
        Ok(RegisterPage {
            unit: request.unit.code(),
            register: request.register,
            total,
            limit,
            offset: request.offset,
            masked: !request.personal_data,
            entries: page,
        })
    }
}

/// The villages register of a lake directory and a CSV register: the merged list the weekly
/// synthesis builds its tree from.
pub async fn merged_villages(lake_dir: &Path, csv: &[Village]) -> QueryResult<Vec<Village>> {
    let entries = lake_village_entries(&lake_dir.join(registers::TABLE_NAME)).await?;
    Ok(merge_villages(csv, &entries))
}

async fn lake_village_entries(table: &Path) -> QueryResult<Vec<VillageEntry>> {
    let records = read_records(table, col(registers::PARTITION_COLUMN).eq(lit("village"))).await?;
    Ok(records
        .into_iter()
        .filter_map(|record| match record {
            RegisterRecord::Village(village) => Some(village),
            RegisterRecord::Person(_) => None,
        })
        .collect())
}

/// The rows of the table at `path` that pass `filter`; none until the table exists.
async fn read_records(path: &Path, filter: Expr) -> QueryResult<Vec<RegisterRecord>> {
    if !path.join("_delta_log").exists() {
        return Ok(Vec::new());
    }
    let delta = |source: DeltaTableError| QueryError::Delta { path: path.to_owned(), source };
    let absolute = std::fs::canonicalize(path).map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
    let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(delta)?;
    let table = deltalake::DeltaTable::try_from_url(url).await.map_err(delta)?;
    if table.version().is_none() {
        return Ok(Vec::new());
    }
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).map_err(delta)?;
    let provider = table.table_provider().await.map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
    let batches = ctx.read_table(provider)?.filter(filter)?.collect().await?;
    let mut records = Vec::new();
    for batch in &batches {
        records.extend(registers::from_record_batch(batch)?);
    }
    tracing::debug!(path = %path.display(), rows = records.len(), "register entries read");
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use voxpop_schema::registers::EntrySource;

    const A: &str = "00004";
    const B: &str = "00097";

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, day, 3, 0, 0).unwrap()
    }

    fn person(register: Register, unit: &str, id: &str, day: u32) -> PersonEntry {
        PersonEntry {
            entry_id: uuid::Uuid::now_v7(),
            register,
            person_id: id.to_owned(),
            unit: unit.to_owned(),
            full_name: format!("Người {id}"),
            role: "Ủy viên".to_owned(),
            gender: None,
            birth_year: None,
            phone: None,
            term_start: NaiveDate::from_ymd_opt(2024, 10, 1).unwrap(),
            term_end: None,
            removed: false,
            submitted_by: None,
            submitted_at: at(day),
            source: EntrySource::Api,
        }
    }

    fn villages() -> Vec<Village> {
        (1..=3).map(|n| Village { code: UnitRef::village_code(A, n), name: format!("Tổ {n}") }).collect()
    }

    fn week_38() -> Period {
        Period::week(IsoWeek::parse("2025-W38").unwrap())
    }

    #[test]
    fn registers_summary_counts_per_level_and_coverage_of_updated_lists() {
        let units = Units::embedded();
        let mut removed = person(Register::Member, "00004-002", "m9", 16);
        removed.removed = true;
        let mut ended = person(Register::Officer, B, "o3", 16);
        ended.term_end = NaiveDate::from_ymd_opt(2025, 9, 1);
        let entries = vec![
            person(Register::Officer, A, "o1", 15),
            person(Register::Officer, A, "o2", 1), // before the period: counts, did not update
            person(Register::Officer, "00004-001", "o1", 16),
            person(Register::Member, "00004-001", "m1", 16),
            person(Register::Member, "00004-002", "m9", 2),
            removed,
            ended,
            person(Register::Officer, "01", "p1", 17),
            person(Register::Officer, "79", "p1", 17), // another province
            person(Register::Officer, "00", "c1", 30), // after the period
        ];
        let hanoi = summarise(units, &villages(), &entries, "01", week_38()).unwrap();
        assert_eq!(hanoi.name, "Thành phố Hà Nội");
        assert_eq!(
            (hanoi.own, hanoi.total),
            (RegisterCounts { officers: 1, members: 0 }, RegisterCounts { officers: 4, members: 1 })
        );
        let levels: Vec<(Level, u64, u64, u64, &str, &str)> = hanoi
            .levels
            .iter()
            .map(|l| {
                (
                    l.level,
                    l.units,
                    l.counts.officers,
                    l.counts.members,
                    l.officer_lists_updated.text.as_str(),
                    l.member_lists_updated.text.as_str(),
                )
            })
            .collect();
        let communes = units.communes().iter().filter(|c| c.province_code == "01").count() as u64;
        assert_eq!(levels[0], (Level::Province, 1, 1, 0, "1/1 (100.00%)", "0/1 (0.00%)"));
        assert_eq!((levels[1].0, levels[1].1, levels[1].2, levels[1].3), (Level::Commune, communes, 2, 0));
        // Commune B's entry was received in the period (its term had ended): its list was updated.
        assert_eq!(levels[1].4, format!("2/{communes} ({:.2}%)", 200.0 / communes as f64));
        assert_eq!(levels[2], (Level::Village, 3, 1, 1, "1/3 (33.33%)", "2/3 (66.67%)"));
        assert_eq!(
            hanoi.levels[2].sentence_vi(Register::Member),
            "2/3 (66.67%) thôn, tổ dân phố đã cập nhật danh sách hội viên trong kỳ"
        );
        let a = hanoi.children.iter().find(|c| c.code == A).unwrap();
        assert_eq!(
            (a.counts, a.officer_list_updated, a.member_list_updated),
            (RegisterCounts { officers: 3, members: 1 }, true, false)
        );
        let commune = summarise(units, &villages(), &entries, A, week_38()).unwrap();
        assert_eq!(
            commune.children.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
            ["00004-001", "00004-002", "00004-003"]
        );
        assert_eq!(commune.levels.len(), 2);
        let country = summarise(units, &villages(), &entries, "00", week_38()).unwrap();
        assert_eq!(country.levels[1].units, 34);
        assert_eq!(country.levels[2].units, units.communes().len() as u64);
        assert_eq!(country.total.officers, 6, "the central officer counts: the term started before the period ends");
        assert!(summarise(units, &villages(), &entries, "00004-009", week_38()).is_err(), "not a registered village");
    }

    #[test]
    fn registers_period_is_taken_in_vietnam_time() {
        let period = week_38();
        assert_eq!(
            (period.from.to_string(), period.to.to_string()),
            ("2025-09-15".to_owned(), "2025-09-21".to_owned())
        );
        // Sunday 21 September 23:00 in Hanoi is 16:00 UTC: in the week; Monday 00:30 is not.
        assert!(period.contains(Utc.with_ymd_and_hms(2025, 9, 21, 16, 0, 0).unwrap()));
        assert!(!period.contains(Utc.with_ymd_and_hms(2025, 9, 21, 17, 30, 0).unwrap()));
        assert_eq!(
            Period::week_of(Utc.with_ymd_and_hms(2025, 9, 21, 17, 30, 0).unwrap()).from.to_string(),
            "2025-09-22"
        );
        assert!(Period::new(period.to, period.from).is_err());
    }
}
