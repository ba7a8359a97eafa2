//! Synthesis of the weekly reports (tổng hợp báo cáo tuần): for every unit of the Front, each
//! indicator rolled up from the units below, who reported and who did not, and the change since
//! the week before.
//!
//! Pure and in memory: the caller reads the week's current values (see
//! [`voxpop_schema::reports::latest_values`]) and the village lists, and gets back a [`Synthesis`]
//! it can ask about any unit.
//!
//! # Method
//!
//! The organisation is laid out once as an [`OrgTree`]: the central committee, then the
//! provinces, then the communes grouped by province, then the villages grouped by commune, so
//! that every unit comes after its parent and the children of a unit are contiguous. The week's
//! values are placed in a dense table indexed by (unit, indicator); one pass over the units from
//! the last to the first then computes each unit's total and adds it into its parent's
//! accumulator, which is complete by the time the pass reaches the parent. Coverage counts travel
//! up in the same pass. Time is linear in units × indicators plus the rows; no unit is visited
//! twice and no row is scanned per unit.
//!
//! # How a unit's own value combines with its children's
//!
//! Units above the village report some indicators themselves (a commune office holds meetings
//! of its own). What a unit reports is its own work, not a total of the units below, so:
//!
//! - For the additive rules (`sum`, `min`, `max`, `any`, `all`) the unit's own value is one more
//!   contribution next to its children's totals: a commune's meetings are its own plus its
//!   villages'; for a yes/no counted with `sum`, the commune saying yes counts as one unit.
//! - For the representative rules (`mean`, `latest`) the unit's own value is its figure for the
//!   whole unit and replaces the roll-up of its children (a commune's own participation rate
//!   stands for the commune; the mean of its villages is still shown as `from_below`).
//!
//! Means are unweighted: each child counts once whatever its size, as staff compute them by hand.
//! A total with no contribution at all is `None` ("not reported"), never 0. `latest` takes the
//! value submitted last (on a tie, that of the greater unit code, so the result does not depend
//! on row order).
//!
//! Rows the synthesis cannot place are skipped and counted ([`Synthesis::ignored_rows`]): another
//! week, a unit not in the tree, an unknown indicator, an indicator the unit's level does not
//! report, or a value of the wrong kind. Validated rows (see
//! [`voxpop_schema::reports::Intake`]) have none of these.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, TimeZone, Utc};
use serde::Serialize;
use voxpop_schema::SchemaError;
use voxpop_schema::Units;
use voxpop_schema::reports::{
    CENTRAL_CODE, Catalogue, Indicator, Intake, Level, ReportValue, Rollup, SheetRow, Source, UnitRef, Value,
    ValueType, Village, report_xlsx,
};

use crate::summary::{Coverage, IsoWeek, thousands};
use crate::{QueryError, QueryResult};

const NO_PARENT: u32 = u32::MAX;
const NO_ROW: u32 = u32::MAX;

/// One unit of the tree.
#[derive(Debug, Clone)]
struct Node {
    code: String,
    name: String,
    level: Level,
    parent: u32,
    first_child: u32,
    child_count: u32,
}

/// The four-level organisation, laid out for bottom-up passes (see the module docs).
#[derive(Debug, Clone)]
pub struct OrgTree {
    nodes: Vec<Node>,
    index: HashMap<String, u32>,
    /// Units `0..internal` may have children (central, provinces, communes); the rest are villages.
    internal: usize,
}

impl OrgTree {
    /// The tree of the 2025 provinces and communes with the villages communes registered.
    pub fn new(units: &Units, villages: &[Village]) -> QueryResult<OrgTree> {
        OrgTree::build(
            units.provinces().iter().map(|p| (p.code.as_str(), p.name.as_str())),
            units.communes().iter().map(|c| (c.code.as_str(), c.name.as_str(), c.province_code.as_str())),
            villages,
        )
    }

    /// A tree of explicit provinces `(code, name)`, communes `(code, name, province code)` and
    /// villages (codes `ccccc-nnn` of a listed commune). Units are ordered by code within their
    /// parent; an unknown parent, a malformed or duplicate code is an error.
    pub fn build<'u>(
        provinces: impl IntoIterator<Item = (&'u str, &'u str)>,
        communes: impl IntoIterator<Item = (&'u str, &'u str, &'u str)>,
        villages: &[Village],
    ) -> QueryResult<OrgTree> {
        let bad = |field: &'static str, message: String| QueryError::BadRequest { field, message };
        let mut nodes = vec![Node {
            code: CENTRAL_CODE.to_owned(),
            name: "Ủy ban Trung ương".to_owned(),
            level: Level::Central,
            parent: NO_PARENT,
            first_child: 0,
            child_count: 0,
        }];
        let mut index: HashMap<String, u32> = HashMap::new();
        index.insert(CENTRAL_CODE.to_owned(), 0);
        let mut provinces: Vec<(&str, &str)> = provinces.into_iter().collect();
        provinces.sort_unstable();
        for (code, name) in provinces {
            if Level::of_code(code) != Some(Level::Province) {
                return Err(bad("provinces", format!("malformed province code `{code}`")));
            }
            push_node(&mut nodes, &mut index, code, name, Level::Province, 0)?;
        }
        let mut grouped: Vec<(u32, &str, &str)> = Vec::new();
        for (code, name, province) in communes {
            let Some(&parent) = index.get(province).filter(|_| Level::of_code(province) == Some(Level::Province))
            else {
                return Err(bad("communes", format!("commune `{code}` names unknown province `{province}`")));
            };
            if Level::of_code(code) != Some(Level::Commune) {
                return Err(bad("communes", format!("malformed commune code `{code}`")));
            }
            grouped.push((parent, code, name));
        }
        grouped.sort_unstable();
        for (parent, code, name) in grouped {
            push_node(&mut nodes, &mut index, code, name, Level::Commune, parent)?;
        }
        let internal = nodes.len();
        let mut placed: Vec<(u32, &str, &str)> = Vec::with_capacity(villages.len());
        for village in villages {
            if Level::of_code(&village.code) != Some(Level::Village) || village.code.ends_with("-000") {
                return Err(bad("villages", format!("malformed village code `{}`", village.code)));
            }
            let commune = &village.code[..5];
            let Some(&parent) = index.get(commune).filter(|&&i| nodes[i as usize].level == Level::Commune) else {
                return Err(bad("villages", format!("village `{}` names unknown commune `{commune}`", village.code)));
            };
            placed.push((parent, village.code.as_str(), village.name.as_str()));
        }
        placed.sort_unstable();
        for (parent, code, name) in placed {
            push_node(&mut nodes, &mut index, code, name, Level::Village, parent)?;
        }
        // Children were pushed grouped by parent, parents in order: record each group.
        for child in 1..nodes.len() {
            let parent = nodes[child].parent as usize;
            debug_assert!(parent < child, "a parent comes before its children");
            if nodes[parent].child_count == 0 {
                nodes[parent].first_child = child as u32;
            }
            nodes[parent].child_count += 1;
        }
        Ok(OrgTree { nodes, index, internal })
    }

    /// Number of units, all levels.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of units of one level.
    pub fn count(&self, level: Level) -> usize {
        self.nodes.iter().filter(|node| node.level == level).count()
    }

    pub fn contains(&self, code: &str) -> bool {
        self.index.contains_key(code)
    }

    /// The unit codes, parents before children, in code order within a parent.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|node| node.code.as_str())
    }

    /// The villages of a commune, as [`Village`]s.
    pub fn villages_of(&self, commune_code: &str) -> Vec<Village> {
        self.children(commune_code)
            .filter(|node| node.level == Level::Village)
            .map(|node| Village { code: node.code.clone(), name: node.name.clone() })
            .collect()
    }

    fn children(&self, code: &str) -> impl Iterator<Item = &Node> {
        let range = match self.index.get(code) {
            Some(&i) => {
                let node = &self.nodes[i as usize];
                node.first_child as usize..(node.first_child + node.child_count) as usize
            }
            None => 0..0,
        };
        self.nodes[range].iter()
    }
}

fn push_node(
    nodes: &mut Vec<Node>,
    index: &mut HashMap<String, u32>,
    code: &str,
    name: &str,
    level: Level,
    parent: u32,
) -> QueryResult<()> {
    let position = u32::try_from(nodes.len())
        .map_err(|_| QueryError::BadRequest { field: "villages", message: "too many units".to_owned() })?;
    if index.insert(code.to_owned(), position).is_some() {
        return Err(QueryError::BadRequest { field: "units", message: format!("duplicate unit code `{code}`") });
    }
    nodes.push(Node { code: code.to_owned(), name: name.to_owned(), level, parent, first_child: 0, child_count: 0 });
    Ok(())
}

/// A unit's value for one indicator while the pass runs: a number, a yes/no, or (for `latest`)
/// the row it comes from, which carries its time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Total {
    None,
    Number(f64),
    Bool(bool),
    Row(u32),
}

/// The contributions of a unit's children to one indicator.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u32,
    sum: f64,
    yes: u32,
    min: f64,
    max: f64,
    latest: u32,
}

impl Acc {
    const EMPTY: Acc = Acc { count: 0, sum: 0.0, yes: 0, min: f64::INFINITY, max: f64::NEG_INFINITY, latest: NO_ROW };

    fn add(&mut self, total: Total, rows: &[ReportValue]) {
        match total {
            Total::None => return,
            Total::Number(number) => {
                self.sum += number;
                self.min = self.min.min(number);
                self.max = self.max.max(number);
            }
            Total::Bool(flag) => self.yes += u32::from(flag),
            Total::Row(row) => {
                if self.latest == NO_ROW || later(rows, row, self.latest) {
                    self.latest = row;
                }
            }
        }
        self.count += 1;
    }

    fn finish(&self, rollup: Rollup) -> Total {
        if self.count == 0 {
            return Total::None;
        }
        match rollup {
            Rollup::Sum => Total::Number(self.sum),
            Rollup::Mean => Total::Number(self.sum / f64::from(self.count)),
            Rollup::Min => Total::Number(self.min),
            Rollup::Max => Total::Number(self.max),
            Rollup::Any => Total::Bool(self.yes > 0),
            Rollup::All => Total::Bool(self.yes == self.count),
            Rollup::Latest if self.latest == NO_ROW => Total::None,
            Rollup::Latest => Total::Row(self.latest),
        }
    }
}

/// Whether row `a` was submitted after row `b` (ties: the greater unit code).
fn later(rows: &[ReportValue], a: u32, b: u32) -> bool {
    let (a, b) = (&rows[a as usize], &rows[b as usize]);
    (a.submitted_at, &a.unit_code) > (b.submitted_at, &b.unit_code)
}

/// A unit's own value in the form its rollup carries up.
fn own_total(rollup: Rollup, row: u32, rows: &[ReportValue]) -> Total {
    if row == NO_ROW {
        return Total::None;
    }
    match (rollup, &rows[row as usize].value) {
        (Rollup::Latest, _) => Total::Row(row),
        (Rollup::Sum, Value::Bool(flag)) => Total::Number(if *flag { 1.0 } else { 0.0 }),
        (_, Value::Bool(flag)) => Total::Bool(*flag),
        (_, Value::Number(number)) => Total::Number(*number),
        (_, Value::Text(_)) => Total::None,
    }
}

/// A unit's total from its own value and its children's (see the module docs).
fn combine(rollup: Rollup, own: Total, below: &Acc, rows: &[ReportValue]) -> Total {
    match rollup {
        Rollup::Mean | Rollup::Latest if own != Total::None => own,
        Rollup::Mean | Rollup::Latest => below.finish(rollup),
        _ => {
            let mut all = *below;
            all.add(own, rows);
            all.finish(rollup)
        }
    }
}

fn total_value(total: Total, rows: &[ReportValue]) -> Option<Value> {
    match total {
        Total::None => None,
        Total::Number(number) => Some(Value::Number(number)),
        Total::Bool(flag) => Some(Value::Bool(flag)),
        Total::Row(row) => rows.get(row as usize).map(|row| row.value.clone()),
    }
}

/// One week's values aggregated over the tree.
#[derive(Debug, Clone)]
struct Aggregation {
    /// The row of each unit's own value, per (unit, indicator); [`NO_ROW`] when not reported.
    direct: Vec<u32>,
    /// Each unit's total, per (unit, indicator).
    totals: Vec<Total>,
    /// The children's contributions, per (unit with children, indicator).
    below: Vec<Acc>,
    /// Units that reported at least one value themselves.
    reported: Vec<bool>,
    /// Per unit with children: (reported, expected) units of each level below it, by depth.
    coverage: Vec<[(u32, u32); 4]>,
    ignored: usize,
}

fn aggregate(tree: &OrgTree, catalogue: &Catalogue, week: &str, rows: &[ReportValue]) -> Aggregation {
    let indicators = catalogue.indicators();
    let width = indicators.len();
    let units = tree.nodes.len();
    let mut direct = vec![NO_ROW; units * width];
    let mut reported = vec![false; units];
    let mut ignored = 0;
    // Rows usually come grouped by unit, a unit's in catalogue order: try the last unit and the
    // indicator after the last one before hashing.
    let mut last_unit: Option<(&str, usize)> = None;
    let mut next_position = 0;
    for (index, row) in rows.iter().enumerate() {
        let Ok(row_index) = u32::try_from(index) else {
            ignored += rows.len() - index;
            break;
        };
        if row.week != week {
            ignored += 1;
            continue;
        }
        let node = match last_unit {
            Some((code, node)) if code == row.unit_code => Some(node),
            _ => tree.index.get(&row.unit_code).map(|&node| node as usize),
        };
        let Some(node) = node else {
            ignored += 1;
            continue;
        };
        last_unit = Some((row.unit_code.as_str(), node));
        let guessed = indicators.get(next_position).filter(|indicator| indicator.code == row.indicator);
        let Some(position) = guessed.map(|_| next_position).or_else(|| catalogue.position(&row.indicator)) else {
            ignored += 1;
            continue;
        };
        next_position = position + 1;
        let indicator = &indicators[position];
        if !indicator.reported_at(tree.nodes[node].level) || !row.value.fits(indicator.value_type) {
            ignored += 1;
            continue;
        }
        let slot = node * width + position;
        let current = direct[slot];
        // A later submission supersedes; of two at the same time, the later row.
        if current != NO_ROW && rows[current as usize].submitted_at > row.submitted_at {
            continue;
        }
        direct[slot] = row_index;
        reported[node] = true;
    }
    let mut totals = vec![Total::None; units * width];
    let mut below = vec![Acc::EMPTY; tree.internal * width];
    let mut coverage = vec![[(0u32, 0u32); 4]; tree.internal];
    for node in (0..units).rev() {
        let parent = tree.nodes[node].parent;
        for (position, indicator) in indicators.iter().enumerate() {
            let slot = node * width + position;
            let own = own_total(indicator.rollup, direct[slot], rows);
            let total = if node < tree.internal { combine(indicator.rollup, own, &below[slot], rows) } else { own };
            totals[slot] = total;
            if parent != NO_PARENT {
                below[parent as usize * width + position].add(total, rows);
            }
        }
        if parent != NO_PARENT {
            let parent = parent as usize;
            let depth = tree.nodes[node].level.depth();
            coverage[parent][depth].0 += u32::from(reported[node]);
            coverage[parent][depth].1 += 1;
            if node < tree.internal {
                for level in 0..4 {
                    coverage[parent][level].0 += coverage[node][level].0;
                    coverage[parent][level].1 += coverage[node][level].1;
                }
            }
        }
    }
    Aggregation { direct, totals, below, reported, coverage, ignored }
}

/// The week's values of every unit of a tree, rolled up (see the module docs); ask it about any
/// unit with [`Synthesis::unit`].
#[derive(Debug, Clone)]
pub struct Synthesis<'a> {
    tree: &'a OrgTree,
    catalogue: &'a Catalogue,
    week: String,
    previous_week: String,
    rows: &'a [ReportValue],
    previous_rows: &'a [ReportValue],
    current: Aggregation,
    previous: Option<Aggregation>,
}

/// One indicator of one unit in a synthesis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorTotal {
    pub code: String,
    /// Vietnamese label.
    pub label: String,
    pub unit: String,
    pub rollup: Rollup,
    /// The unit's value: its own combined with its children's. For a yes/no counted with `sum`,
    /// the number of units that said yes.
    pub value: Option<Value>,
    /// What the unit reported itself.
    pub direct: Option<Value>,
    /// The roll-up of the children alone.
    pub from_below: Option<Value>,
    /// Children whose totals went into `from_below`.
    pub contributors: u32,
    /// The value the week before, when that week was given.
    pub previous: Option<Value>,
    /// `value - previous`, when both are numbers.
    pub change: Option<f64>,
    /// The change in percent of `previous`, when that is a number other than 0.
    pub change_percent: Option<f64>,
}

/// Units of one level below a unit that reported, over those expected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelCoverage {
    pub level: Level,
    /// e.g. `xã, phường, đặc khu`.
    pub label: String,
    /// e.g. `2,280/3,321 (68.65%)`.
    pub coverage: Coverage,
}

/// A child unit that sent nothing this week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingUnit {
    pub code: String,
    pub name: String,
    /// Units below it that did report: a commune that sent nothing itself may still have
    /// villages that did.
    pub reported_below: u32,
}

/// The synthesis of one unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitSynthesis {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub week: String,
    pub previous_week: String,
    /// Whether the unit sent at least one value itself.
    pub reported: bool,
    /// The indicators a unit of this level has a value for (reported here or below), in
    /// catalogue order.
    pub indicators: Vec<IndicatorTotal>,
    /// One entry per level below the unit, top down.
    pub coverage: Vec<LevelCoverage>,
    /// The children that sent nothing, in code order.
    pub missing: Vec<MissingUnit>,
}

/// Rolls up one week over the whole tree in one pass (and, when given, the week before it, for
/// the change). `week` is the ISO week of `current`; rows of `previous` are read for the week
/// before it.
pub fn synthesise<'a>(
    tree: &'a OrgTree,
    catalogue: &'a Catalogue,
    week: &str,
    current: &'a [ReportValue],
    previous: Option<&'a [ReportValue]>,
) -> QueryResult<Synthesis<'a>> {
    let Some(iso_week) = IsoWeek::parse(week) else {
        return Err(QueryError::BadRequest { field: "week", message: format!("malformed week `{week}`") });
    };
    let week = iso_week.label();
    let previous_week = iso_week.previous().label();
    let aggregated = aggregate(tree, catalogue, &week, current);
    let aggregated_before = previous.map(|rows| aggregate(tree, catalogue, &previous_week, rows));
    Ok(Synthesis {
        tree,
        catalogue,
        week,
        previous_week,
        rows: current,
        previous_rows: previous.unwrap_or(&[]),
        current: aggregated,
        previous: aggregated_before,
    })
}

impl Synthesis<'_> {
    pub fn week(&self) -> &str {
        &self.week
    }

    /// Rows that could not be placed (see the module docs), this week and the week before.
    pub fn ignored_rows(&self) -> usize {
        self.current.ignored + self.previous.as_ref().map_or(0, |previous| previous.ignored)
    }

    /// Units that sent at least one value this week.
    pub fn reporting_units(&self) -> usize {
        self.current.reported.iter().filter(|&&reported| reported).count()
    }

    /// The synthesis of one unit (`00`, a province, a commune or a village code); `None` for a
    /// unit not in the tree.
    pub fn unit(&self, code: &str) -> Option<UnitSynthesis> {
        let node = *self.tree.index.get(code)? as usize;
        Some(self.unit_at(node))
    }

    fn unit_at(&self, node: usize) -> UnitSynthesis {
        let unit = &self.tree.nodes[node];
        let width = self.catalogue.indicators().len();
        let has_children = node < self.tree.internal;
        let indicators = self
            .catalogue
            .indicators()
            .iter()
            .enumerate()
            .filter(|(_, indicator)| indicator.relevant_at(unit.level))
            .map(|(position, indicator)| self.indicator_total(node, position, indicator, has_children, width))
            .collect();
        let mut coverage = Vec::new();
        if has_children {
            let mut level = unit.level.below();
            while let Some(below) = level {
                let (reported, expected) = self.current.coverage[node][below.depth()];
                coverage.push(LevelCoverage {
                    level: below,
                    label: below.label_vi().to_owned(),
                    coverage: Coverage::new(u64::from(reported), u64::from(expected)),
                });
                level = below.below();
            }
        }
        let first = unit.first_child as usize;
        let missing = (first..first + unit.child_count as usize)
            .filter(|&child| !self.current.reported[child])
            .map(|child| {
                let reported_below = if child < self.tree.internal {
                    self.current.coverage[child].iter().map(|(reported, _)| reported).sum()
                } else {
                    0
                };
                let child_unit = &self.tree.nodes[child];
                MissingUnit { code: child_unit.code.clone(), name: child_unit.name.clone(), reported_below }
            })
            .collect();
        UnitSynthesis {
            code: unit.code.clone(),
            name: unit.name.clone(),
            level: unit.level,
            week: self.week.clone(),
            previous_week: self.previous_week.clone(),
            reported: self.current.reported[node],
            indicators,
            coverage,
            missing,
        }
    }

    fn indicator_total(
        &self,
        node: usize,
        position: usize,
        indicator: &Indicator,
        has_children: bool,
        width: usize,
    ) -> IndicatorTotal {
        let slot = node * width + position;
        let direct_row = self.current.direct[slot];
        let direct = (direct_row != NO_ROW).then(|| self.rows[direct_row as usize].value.clone());
        let (from_below, contributors) = if has_children {
            let below = &self.current.below[slot];
            (total_value(below.finish(indicator.rollup), self.rows), below.count)
        } else {
            (None, 0)
        };
        let value = total_value(self.current.totals[slot], self.rows);
        let previous =
            self.previous.as_ref().and_then(|previous| total_value(previous.totals[slot], self.previous_rows));
        let numbers = value.as_ref().and_then(Value::as_number).zip(previous.as_ref().and_then(Value::as_number));
        let change = numbers.map(|(now, before)| now - before);
        let change_percent =
            numbers.filter(|(_, before)| *before != 0.0).map(|(now, before)| 100.0 * (now - before) / before);
        IndicatorTotal {
            code: indicator.code.clone(),
            label: indicator.vi.clone(),
            unit: indicator.unit.clone(),
            rollup: indicator.rollup,
            value,
            direct,
            from_below,
            contributors,
            previous,
            change,
            change_percent,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic data

/// splitmix64: a small seeded generator, the same everywhere, for synthetic data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, probability: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= probability
    }
}

/// Synthetic village lists (not real villages): 12 to 42 per commune, about 27 on average, so
/// about 90,000 for the 3,321 communes; `Tổ dân phố số n` in wards, `Thôn n` elsewhere. The same
/// seed gives the same lists.
pub fn synthetic_villages(units: &Units, seed: u64) -> Vec<Village> {
    let mut random = SplitMix(seed);
    let mut villages = Vec::with_capacity(units.communes().len() * 27);
    for commune in units.communes() {
        let count = 12 + random.below(31) as u16;
        let ward = commune.kind == "Phường";
        for number in 1..=count {
            let name = if ward { format!("Tổ dân phố số {number}") } else { format!("Thôn {number}") };
            villages.push(Village { code: UnitRef::village_code(&commune.code, number), name });
        }
    }
    villages
}

/// Who sent the synthetic values: marks them as synthetic wherever they end up.
pub const SYNTHETIC_SENDER: &str = "dữ liệu tổng hợp";

/// A synthetic week of reports (not real figures) for every unit of `tree`: each indicator a
/// unit's level reports, with some units (3% of provinces, 6% of communes, 10% of villages)
/// sending nothing and 3% of the other values left blank. Values are plausible for their level
/// and type; submissions fall between Friday and Sunday of the week. Deterministic for a seed.
pub fn synthetic_week(tree: &OrgTree, catalogue: &Catalogue, week: &str, seed: u64) -> QueryResult<Vec<ReportValue>> {
    let Some(iso_week) = IsoWeek::parse(week) else {
        return Err(QueryError::BadRequest { field: "week", message: format!("malformed week `{week}`") });
    };
    let week = iso_week.label();
    // Friday 08:00 in Hanoi.
    let friday = (iso_week.monday() + Days::days(4)).and_hms_opt(1, 0, 0).unwrap_or_default().and_utc();
    let mut random = SplitMix(seed ^ 0x5EED_0F_7E9F);
    let mut rows = Vec::new();
    for node in &tree.nodes {
        let absent = match node.level {
            Level::Central => 0.0,
            Level::Province => 0.03,
            Level::Commune => 0.06,
            Level::Village => 0.10,
        };
        if random.chance(absent) {
            continue;
        }
        let submitted_at = friday + Days::minutes(random.below(3 * 24 * 60) as i64);
        let source = if random.chance(0.5) { Source::Api } else { Source::Xlsx };
        let scale: u64 = match node.level {
            Level::Village => 30,
            Level::Commune => 150,
            Level::Province => 1_500,
            Level::Central => 5_000,
        };
        for indicator in catalogue.reported_at(node.level) {
            if random.chance(0.03) {
                continue;
            }
            let value = match indicator.value_type {
                ValueType::Count if indicator.code == "villages_registered" => {
                    Value::Number(random.below(u64::from(node.child_count) + 1) as f64)
                }
                ValueType::Count => Value::Number(random.below(scale + 1) as f64),
                ValueType::Amount => Value::Number(random.below(scale * 10 + 1) as f64 / 10.0),
                ValueType::Percentage => Value::Number(40.0 + random.below(601) as f64 / 10.0),
                // An `any` flag is an alarm: rare. Others are mostly yes.
                ValueType::YesNo if indicator.rollup == Rollup::Any => Value::Bool(random.chance(0.05)),
                ValueType::YesNo => Value::Bool(random.chance(0.8)),
                ValueType::Text => {
                    Value::Text(format!("Tình hình ổn định, không có vụ việc phức tạp ({SYNTHETIC_SENDER})"))
                }
            };
            rows.push(ReportValue {
                unit_code: node.code.clone(),
                level: node.level,
                week: week.clone(),
                indicator: indicator.code.clone(),
                value,
                submitted_at,
                submitted_by: Some(SYNTHETIC_SENDER.to_owned()),
                source,
            });
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Benchmark

/// Timings of the weekly-report core (see [`bench_reports`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportsBench {
    /// Units in the synthetic tree, all levels.
    pub units: usize,
    /// Values of this week and of the week before.
    pub rows: usize,
    /// Both weeks rolled up over the whole tree, and the central unit's synthesis read out.
    pub synthesis: Duration,
    /// Data rows of the generated workbook.
    pub xlsx_rows: usize,
    pub xlsx_bytes: usize,
    /// Values accepted from it.
    pub xlsx_values: usize,
    /// Parsing and validating the workbook.
    pub xlsx_parse: Duration,
    /// The national coverage of the synthetic week, per level.
    pub coverage: Vec<LevelCoverage>,
}

impl std::fmt::Display for ReportsBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "synthesis: {} units, {} values (2 weeks) in {:.1} ms",
            thousands(self.units as u64),
            thousands(self.rows as u64),
            self.synthesis.as_secs_f64() * 1e3
        )?;
        write!(
            f,
            "xlsx: {} rows, {} values, {} bytes parsed and validated in {:.1} ms",
            thousands(self.xlsx_rows as u64),
            thousands(self.xlsx_values as u64),
            thousands(self.xlsx_bytes as u64),
            self.xlsx_parse.as_secs_f64() * 1e3
        )?;
        for level in &self.coverage {
            write!(f, "\ncoverage, {}: {}", level.label, level.coverage.text)?;
        }
        Ok(())
    }
}

/// Rows in the benchmark workbook.
pub const BENCH_XLSX_ROWS: usize = 10_000;

/// Times (a) the synthesis of the full synthetic tree (~90,000 villages, the default catalogue,
/// this week and last) and (b) parsing and validating a [`BENCH_XLSX_ROWS`]-row workbook of
/// village reports written in memory. Data generation is not timed. Meant for a release build.
pub fn bench_reports() -> QueryResult<ReportsBench> {
    let units = Units::embedded();
    let catalogue = Catalogue::default_embedded();
    let villages = synthetic_villages(units, 2025);
    let tree = OrgTree::new(units, &villages)?;
    let week = "2025-W38";
    let current = synthetic_week(&tree, catalogue, week, 38)?;
    let previous = synthetic_week(&tree, catalogue, "2025-W37", 37)?;
    let started = Instant::now();
    let synthesis = synthesise(&tree, catalogue, week, &current, Some(&previous))?;
    let central = synthesis.unit(CENTRAL_CODE);
    let synthesis_time = started.elapsed();
    let Some(central) = central else {
        return Err(QueryError::Schema(SchemaError::BadValue("the synthetic tree has no central unit")));
    };
    // The first villages with values, one row each, as a province office would upload them.
    let mut sheet_rows: Vec<SheetRow> = Vec::with_capacity(BENCH_XLSX_ROWS);
    for row in current.iter().filter(|row| row.level == Level::Village) {
        let value = (row.indicator.clone(), row.value.clone());
        if let Some(last) = sheet_rows.last_mut().filter(|last| last.unit_code == row.unit_code) {
            last.values.push(value);
        } else if sheet_rows.len() == BENCH_XLSX_ROWS {
            break;
        } else {
            sheet_rows.push(SheetRow {
                unit_code: row.unit_code.clone(),
                unit_name: String::new(),
                week: row.week.clone(),
                values: vec![value],
            });
        }
    }
    let bytes = report_xlsx(catalogue, Level::Commune, &sheet_rows)
        .map_err(|_| QueryError::Schema(SchemaError::BadValue("could not write the benchmark workbook")))?;
    let intake = Intake {
        units,
        catalogue,
        scope: CENTRAL_CODE,
        now: Utc.with_ymd_and_hms(2025, 9, 21, 12, 0, 0).single().unwrap_or_default(),
        submitted_by: Some(SYNTHETIC_SENDER),
        villages: None,
    };
    let started = Instant::now();
    let outcome = intake.parse_xlsx(&bytes, false);
    let xlsx_parse = started.elapsed();
    if !outcome.errors.is_empty() {
        return Err(QueryError::Schema(SchemaError::BadValue("the benchmark workbook did not validate")));
    }
    Ok(ReportsBench {
        units: tree.len(),
        rows: current.len() + previous.len(),
        synthesis: synthesis_time,
        xlsx_rows: outcome.data_rows,
        xlsx_bytes: bytes.len(),
        xlsx_values: outcome.rows.len(),
        xlsx_parse,
        coverage: central.coverage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL_CATALOGUE: &str = r#"
version = 1

[[indicator]]
code = "n_sum"
vi = "Tổng"
en = "Sum"
unit = "cuộc"
value_type = "count"
rollup = "sum"
levels = ["village", "commune"]

[[indicator]]
code = "n_mean"
vi = "Trung bình"
en = "Mean"
unit = "%"
value_type = "percentage"
rollup = "mean"
levels = ["village", "commune"]

[[indicator]]
code = "n_min"
vi = "Nhỏ nhất"
en = "Min"
unit = "người"
value_type = "count"
rollup = "min"
levels = ["village"]

[[indicator]]
code = "n_max"
vi = "Lớn nhất"
en = "Max"
unit = "triệu đồng"
value_type = "amount"
rollup = "max"
levels = ["village"]

[[indicator]]
code = "t_latest"
vi = "Mới nhất"
en = "Latest"
unit = "nội dung"
value_type = "text"
rollup = "latest"
levels = ["village", "commune"]

[[indicator]]
code = "f_any"
vi = "Có đơn vị có"
en = "Any"
unit = "có/không"
value_type = "yes_no"
rollup = "any"
levels = ["village"]

[[indicator]]
code = "f_all"
vi = "Mọi đơn vị có"
en = "All"
unit = "có/không"
value_type = "yes_no"
rollup = "all"
levels = ["village"]

[[indicator]]
code = "f_count"
vi = "Số đơn vị có"
en = "Count of yes"
unit = "đơn vị"
value_type = "yes_no"
rollup = "sum"
levels = ["village", "commune"]

[[indicator]]
code = "central_only"
vi = "Chỉ Trung ương"
en = "Central only"
unit = "cuộc"
value_type = "count"
rollup = "sum"
levels = ["central"]
"#;

    const A: &str = "00004";
    const B: &str = "00008";

    fn small_tree() -> OrgTree {
        let villages: Vec<Village> = [A, B]
            .iter()
            .flat_map(|commune| {
                (1..=3).map(move |n| Village { code: UnitRef::village_code(commune, n), name: format!("Thôn {n}") })
            })
            .collect();
        OrgTree::build([("01", "Thành phố Hà Nội")], [(B, "Xã B", "01"), (A, "Phường A", "01")], &villages).unwrap()
    }

    fn row(unit: &str, week: &str, indicator: &str, value: Value, minute: u32) -> ReportValue {
        ReportValue {
            unit_code: unit.to_owned(),
            level: Level::of_code(unit).unwrap(),
            week: week.to_owned(),
            indicator: indicator.to_owned(),
            value,
            submitted_at: Utc.with_ymd_and_hms(2025, 9, 19, 8, minute, 0).unwrap(),
            submitted_by: None,
            source: Source::Api,
        }
    }

    fn this_week() -> Vec<ReportValue> {
        let n = Value::Number;
        let b = Value::Bool;
        let t = |text: &str| Value::Text(text.to_owned());
        let w = "2025-W38";
        vec![
            row("00004-001", w, "n_sum", n(3.0), 1),
            row("00004-001", w, "n_mean", n(50.0), 1),
            row("00004-001", w, "n_min", n(4.0), 1),
            row("00004-001", w, "n_max", n(1.5), 1),
            row("00004-001", w, "t_latest", t("a1"), 10),
            row("00004-001", w, "f_any", b(false), 1),
            row("00004-001", w, "f_all", b(true), 1),
            row("00004-001", w, "f_count", b(true), 1),
            row("00004-002", w, "n_sum", n(2.0), 1),
            row("00004-002", w, "n_mean", n(70.0), 1),
            row("00004-002", w, "n_min", n(2.0), 1),
            row("00004-002", w, "n_max", n(2.5), 1),
            row("00004-002", w, "t_latest", t("a2"), 30),
            row("00004-002", w, "f_any", b(false), 1),
            row("00004-002", w, "f_all", b(true), 1),
            row("00004-002", w, "f_count", b(false), 1),
            // Superseded by the later row below.
            row("00004-002", w, "n_sum", n(9.0), 0),
            row("00008-001", w, "n_sum", n(10.0), 1),
            row("00008-001", w, "n_mean", n(90.0), 1),
            row("00008-001", w, "n_min", n(7.0), 1),
            row("00008-001", w, "n_max", n(0.5), 1),
            row("00008-001", w, "t_latest", t("b1"), 20),
            row("00008-001", w, "f_any", b(true), 1),
            row("00008-001", w, "f_all", b(false), 1),
            row("00008-001", w, "f_count", b(true), 1),
            row("00008-002", w, "n_sum", n(0.0), 1),
            row("00008-003", w, "f_count", b(true), 1),
            // The commune office of A reports its own work.
            row(A, w, "n_sum", n(5.0), 1),
            row(A, w, "n_mean", n(40.0), 1),
            row(A, w, "f_count", b(true), 1),
            row(A, w, "t_latest", t("commune A"), 0),
            // Skipped: unknown village, another week, a level that does not report it, wrong kind.
            row("00004-009", w, "n_sum", n(1.0), 1),
            row("00004-003", "2025-W37", "n_sum", n(1.0), 1),
            row(A, w, "n_min", n(1.0), 1),
            row("00008-002", w, "n_mean", b(true), 1),
        ]
    }

    fn last_week() -> Vec<ReportValue> {
        let w = "2025-W37";
        vec![row("00004-001", w, "n_sum", Value::Number(1.0), 1), row("00008-001", w, "n_sum", Value::Number(4.0), 1)]
    }

    fn values(report: &UnitSynthesis) -> Vec<(&str, Option<Value>)> {
        report.indicators.iter().map(|i| (i.code.as_str(), i.value.clone())).collect()
    }

    #[test]
    fn each_rollup_rule_on_a_hand_checked_tree() {
        let tree = small_tree();
        assert_eq!((tree.len(), tree.count(Level::Commune), tree.count(Level::Village)), (10, 2, 6));
        let codes: Vec<&str> = tree.codes().collect();
        assert_eq!(
            codes,
            ["00", "01", A, B, "00004-001", "00004-002", "00004-003", "00008-001", "00008-002", "00008-003"]
        );
        let catalogue = Catalogue::from_toml_str(SMALL_CATALOGUE).unwrap();
        let current = this_week();
        let previous = last_week();
        let synthesis = synthesise(&tree, &catalogue, "2025-W38", &current, Some(&previous)).unwrap();
        assert_eq!(synthesis.ignored_rows(), 4);
        let (n, b, t) =
            (|x: f64| Some(Value::Number(x)), |x: bool| Some(Value::Bool(x)), |x: &str| Some(Value::Text(x.into())));

        let a = synthesis.unit(A).unwrap();
        // Sum: own 5 + villages 3 + 2; mean: the commune's own figure; min/max over villages;
        // latest: the commune's own text; any/all; yes counted: the commune and one village.
        assert_eq!(
            values(&a),
            [
                ("n_sum", n(10.0)),
                ("n_mean", n(40.0)),
                ("n_min", n(2.0)),
                ("n_max", n(2.5)),
                ("t_latest", t("commune A")),
                ("f_any", b(false)),
                ("f_all", b(true)),
                ("f_count", n(2.0)),
            ]
        );
        let mean = &a.indicators[1];
        assert_eq!((mean.direct.clone(), mean.from_below.clone(), mean.contributors), (n(40.0), n(60.0), 2));
        let latest = &a.indicators[4];
        assert_eq!(latest.from_below, t("a2"));
        let count = &a.indicators[7];
        assert_eq!((count.direct.clone(), count.from_below.clone()), (b(true), n(1.0)));

        let b_commune = synthesis.unit(B).unwrap();
        assert_eq!(
            values(&b_commune),
            [
                ("n_sum", n(10.0)),
                ("n_mean", n(90.0)),
                ("n_min", n(7.0)),
                ("n_max", n(0.5)),
                ("t_latest", t("b1")),
                ("f_any", b(true)),
                ("f_all", b(false)),
                ("f_count", n(2.0)),
            ]
        );

        let province = synthesis.unit("01").unwrap();
        // Mean of the communes' values (40 and 90), each counted once; latest over the communes'
        // totals: B's `b1` (minute 20) is later than A's own `commune A` (minute 0).
        let expected = [
            ("n_sum", n(20.0)),
            ("n_mean", n(65.0)),
            ("n_min", n(2.0)),
            ("n_max", n(2.5)),
            ("t_latest", t("b1")),
            ("f_any", b(true)),
            ("f_all", b(false)),
            ("f_count", n(4.0)),
        ];
        assert_eq!(values(&province), expected);
        let central = synthesis.unit("00").unwrap();
        let mut with_central: Vec<(&str, Option<Value>)> = expected.to_vec();
        with_central.push(("central_only", None));
        assert_eq!(values(&central), with_central);

        let village = synthesis.unit("00004-002").unwrap();
        assert_eq!(village.indicators[0].value, n(2.0), "the later of two submissions");
        assert_eq!(village.indicators[7].value, n(0.0), "a village's own no counts 0");
        assert!(village.coverage.is_empty() && village.missing.is_empty());
        assert!(synthesis.unit("00004-009").is_none());
    }

    #[test]
    fn coverage_missing_units_and_change() {
        let tree = small_tree();
        let catalogue = Catalogue::from_toml_str(SMALL_CATALOGUE).unwrap();
        let current = this_week();
        let previous = last_week();
        let synthesis = synthesise(&tree, &catalogue, "2025-W38", &current, Some(&previous)).unwrap();
        let central = synthesis.unit("00").unwrap();
        let texts: Vec<(Level, &str, &str)> =
            central.coverage.iter().map(|c| (c.level, c.label.as_str(), c.coverage.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (Level::Province, "tỉnh, thành phố", "0/1 (0.00%)"),
                (Level::Commune, "xã, phường, đặc khu", "1/2 (50.00%)"),
                (Level::Village, "thôn, tổ dân phố", "5/6 (83.33%)"),
            ]
        );
        assert_eq!(
            central.missing,
            [MissingUnit { code: "01".into(), name: "Thành phố Hà Nội".into(), reported_below: 6 }]
        );
        let province = synthesis.unit("01").unwrap();
        assert_eq!(province.coverage.len(), 2);
        assert_eq!(province.missing, [MissingUnit { code: B.into(), name: "Xã B".into(), reported_below: 3 }]);
        let a = synthesis.unit(A).unwrap();
        assert!(a.reported);
        assert_eq!(a.coverage[0].coverage.text, "2/3 (66.67%)");
        assert_eq!(a.missing, [MissingUnit { code: "00004-003".into(), name: "Thôn 3".into(), reported_below: 0 }]);
        assert_eq!(synthesis.reporting_units(), 6);

        let sum = |report: &UnitSynthesis| report.indicators[0].clone();
        let province_sum = sum(&province);
        assert_eq!(province_sum.previous, Some(Value::Number(5.0)));
        assert_eq!((province_sum.change, province_sum.change_percent), (Some(15.0), Some(300.0)));
        let b_sum = sum(&synthesis.unit(B).unwrap());
        assert_eq!((b_sum.change, b_sum.change_percent), (Some(6.0), Some(150.0)));
        // No value last week: no change; not a number: no change.
        let mean = &province.indicators[1];
        assert_eq!((mean.previous.clone(), mean.change), (None, None));
        let flag = &province.indicators[5];
        assert_eq!(flag.change, None);
        // Without the week before, nothing to compare.
        let alone = synthesise(&tree, &catalogue, "2025-W38", &current, None).unwrap();
        assert_eq!(sum(&alone.unit("01").unwrap()).change, None);
        let json = serde_json::to_string(&central).unwrap();
        assert!(json.contains("\"text\":\"5/6 (83.33%)\""), "{json}");
        assert!(synthesise(&tree, &catalogue, "W38", &current, None).is_err());
    }

    #[test]
    fn trees_refuse_bad_village_lists() {
        let tree = |villages: &[&str]| {
            let villages: Vec<Village> =
                villages.iter().map(|code| Village { code: (*code).to_owned(), name: String::new() }).collect();
            OrgTree::build([("01", "Hà Nội")], [(A, "A", "01")], &villages)
        };
        assert!(tree(&["00004-001", "00004-002"]).is_ok());
        for bad in [&["00004-01"][..], &["00008-001"], &["00004-001", "00004-001"], &["00004-000"], &["0000é-001"]] {
            assert!(matches!(tree(bad), Err(QueryError::BadRequest { .. })), "{bad:?}");
        }
        assert!(OrgTree::build([("01", "Hà Nội")], [(A, "A", "02")], &[]).is_err());
        let tree = tree(&["00004-002", "00004-001"]).unwrap();
        let names: Vec<String> = tree.villages_of(A).into_iter().map(|v| v.code).collect();
        assert_eq!(names, ["00004-001", "00004-002"]);
    }

    #[test]
    fn synthetic_data_is_deterministic_and_national_in_size() {
        let units = Units::embedded();
        let villages = synthetic_villages(units, 7);
        assert_eq!(villages, synthetic_villages(units, 7));
        assert!((85_000..=95_000).contains(&villages.len()), "{}", villages.len());
        let tree = OrgTree::new(units, &villages).unwrap();
        assert_eq!(tree.count(Level::Commune), 3_321);
        let per_commune: Vec<usize> = units.communes().iter().map(|c| tree.villages_of(&c.code).len()).collect();
        assert!(per_commune.iter().all(|n| (12..=42).contains(n)));
        assert!(per_commune.iter().any(|&n| n != per_commune[0]));
        // A week on a smaller tree, so the test stays quick.
        let small = small_tree();
        let catalogue = Catalogue::default_embedded();
        let week = synthetic_week(&small, catalogue, "2025-W38", 1).unwrap();
        assert_eq!(week, synthetic_week(&small, catalogue, "2025-W38", 1).unwrap());
        assert!(week.iter().all(|r| r.submitted_by.as_deref() == Some(SYNTHETIC_SENDER)));
        let intake = Intake {
            units,
            catalogue,
            scope: "00",
            now: Utc.with_ymd_and_hms(2025, 9, 22, 0, 0, 0).unwrap(),
            submitted_by: None,
            villages: None,
        };
        for row in &week {
            assert_eq!(intake.validate_row(row), [], "{row:?}");
        }
    }

    #[test]
    fn full_tree_timings_are_printed() {
        let bench = bench_reports().unwrap();
        assert!(bench.units > 90_000, "{}", bench.units);
        assert_eq!(bench.xlsx_rows, BENCH_XLSX_ROWS);
        assert!(bench.xlsx_values > BENCH_XLSX_ROWS);
        println!("weekly reports, debug build:\n{bench}");
        let communes = &bench.coverage[1];
        assert_eq!((communes.level, communes.coverage.total), (Level::Commune, 3_321));
        assert!(communes.coverage.text.contains("/3,321 ("), "{}", communes.coverage.text);
    }
}
