//! Reading the `weekly_reports` table and synthesising a week for any unit.

use std::path::{Path, PathBuf};

use datafusion::prelude::{SessionContext, col, lit};
use deltalake::DeltaTableError;
use voxpop_schema::Units;
use voxpop_schema::reports::{self, Catalogue, ReportValue, Village};

use crate::summary::IsoWeek;
use crate::synthesis::{OrgTree, UnitSynthesis, synthesise};
use crate::{QueryError, QueryResult};

/// Read access to `weekly_reports`.
pub struct ReportQueries {
    path: PathBuf,
}

impl ReportQueries {
    /// The table at `path` (`<lake>/weekly_reports`); until it exists every week is empty.
    pub fn new(path: &Path) -> ReportQueries {
        ReportQueries { path: path.to_owned() }
    }

    /// Every value submitted for `weeks` (history included).
    pub async fn values(&self, weeks: &[String]) -> QueryResult<Vec<ReportValue>> {
        if !self.path.join("_delta_log").exists() {
            return Ok(Vec::new());
        }
        let delta = |source: DeltaTableError| QueryError::Delta { path: self.path.clone(), source };
        let absolute =
            std::fs::canonicalize(&self.path).map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
        let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(delta)?;
        let table = deltalake::DeltaTable::try_from_url(url).await.map_err(delta)?;
        if table.version().is_none() {
            return Ok(Vec::new());
        }
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).map_err(delta)?;
        let provider = table.table_provider().await.map_err(|err| delta(DeltaTableError::Generic(err.to_string())))?;
        let batches = ctx
            .read_table(provider)?
            .filter(col(reports::PARTITION_COLUMN).in_list(weeks.iter().map(|w| lit(w.as_str())).collect(), false))?
            .collect()
            .await?;
        let mut values = Vec::new();
        for batch in &batches {
            values.extend(reports::from_record_batch(batch)?);
        }
        Ok(values)
    }

    /// The villages register the synthesis builds its tree from: `register` (the CSV register of
    /// the data directory) with the villages created through the API or an import on top, read
    /// from the `register_entries` table next to `weekly_reports` (see
    /// [`crate::registers::merged_villages`]).
    pub async fn villages(&self, register: &[Village]) -> QueryResult<Vec<Village>> {
        match self.path.parent() {
            Some(lake) => crate::registers::merged_villages(lake, register).await,
            None => Ok(register.to_vec()),
        }
    }

    /// The synthesis of `week` for `unit` (`00` for the whole country): each indicator rolled
    /// up, coverage per level, missing units, change since the week before. `villages` is the CSV
    /// register; the villages of the lake are merged in ([`ReportQueries::villages`]).
    pub async fn weekly(&self, week: &str, unit: &str, villages: &[Village]) -> QueryResult<UnitSynthesis> {
        let Some(parsed) = IsoWeek::parse(week) else {
            return Err(QueryError::BadRequest {
                field: "week",
                message: format!("`{week}` is not an ISO week such as 2025-W38"),
            });
        };
        let (this, previous) = (parsed.label(), parsed.previous().label());
        let all = self.values(&[this.clone(), previous.clone()]).await?;
        let (current, before): (Vec<ReportValue>, Vec<ReportValue>) = all.into_iter().partition(|v| v.week == this);
        let (current, before) = (reports::latest_values(current), reports::latest_values(before));
        let villages = self.villages(villages).await?;
        let tree = OrgTree::new(Units::embedded(), &villages)?;
        let synthesis = synthesise(&tree, Catalogue::default_embedded(), &this, &current, Some(&before))?;
        synthesis.unit(unit).ok_or_else(|| QueryError::BadRequest {
            field: "unit",
            message: format!("unknown unit `{unit}`: 00, a province, a commune or a registered village code"),
        })
    }
}

/// Reads a villages register (`code,name` CSV with a header); a missing file is an empty register.
pub fn read_villages(path: &Path) -> QueryResult<Vec<Village>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(Vec::new()) };
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut villages = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| QueryError::Export(format!("{}: {err}", path.display())))?;
        if let (Some(code), Some(name)) = (record.get(0), record.get(1)) {
            villages.push(Village { code: code.to_owned(), name: name.to_owned() });
        }
    }
    Ok(villages)
}

/// Writes a villages register read by [`read_villages`].
pub fn write_villages(path: &Path, villages: &[Village]) -> QueryResult<()> {
    let io = |err: &dyn std::fmt::Display| QueryError::Export(format!("{}: {err}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|err| io(&err))?;
    }
    let mut writer = csv::Writer::from_path(path).map_err(|err| io(&err))?;
    writer.write_record(["code", "name"]).map_err(|err| io(&err))?;
    for village in villages {
        writer.write_record([&village.code, &village.name]).map_err(|err| io(&err))?;
    }
    writer.flush().map_err(|err| io(&err))
}
