//! The weekly summary: what leaders read each week, computed from the lake with DataFusion.
//!
//! Totals and the change against the week before, petitions per province, the share of each
//! language and channel, and coverage ("1,234/3,321 (37.16%) communes sent petitions"), for the
//! whole country or one province; topics ranked with their 12-week trend and the topic ×
//! province matrix (from the topics the pipeline assigns); spikes per topic and province
//! ([`crate::trends::spike`] against the 8 weeks before); rising terms of the week against
//! those weeks ([`crate::trends::rising_terms`]); and the largest campaigns — many citizens,
//! one matter ([`crate::campaigns`]) — each counted once, with a masked excerpt.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::prelude::{SessionContext, col, lit};
use serde::Serialize;
use voxpop_schema::Units;
use voxpop_schema::petition::{self, PARTITION_COLUMN};
use voxpop_schema::topics::Taxonomy;

use crate::campaigns::{Campaign, CampaignDoc, CampaignOptions, find_campaigns};
use crate::trends::{RisingOptions, RisingTerm, SpikeOptions, rising_terms, spike};
use crate::{PetitionQueries, QueryError, QueryResult};

/// An ISO week, e.g. `2025-W38`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoWeek {
    pub year: i32,
    pub week: u32,
}

impl IsoWeek {
    /// Parses exactly `YYYY-Www` (two-digit week, one the year has, from 2000 on); `None` for
    /// anything else, spaces, signs and `2025-W8` included. The same parser as the reports' week
    /// parameters ([`voxpop_schema::reports::parse_week`]), so every route agrees on a week.
    pub fn parse(text: &str) -> Option<IsoWeek> {
        let (year, week) = voxpop_schema::reports::parse_week_numbers(text)?;
        Some(IsoWeek { year, week })
    }

    pub fn monday(self) -> NaiveDate {
        NaiveDate::from_isoywd_opt(self.year, self.week, Weekday::Mon).expect("checked when parsed")
    }

    pub fn previous(self) -> IsoWeek {
        let week = (self.monday() - chrono::Duration::days(7)).iso_week();
        IsoWeek { year: week.year(), week: week.week() }
    }

    /// The partition value of this week.
    pub fn label(self) -> String {
        format!("{}-W{:02}", self.year, self.week)
    }

    /// The week in Vietnam at an instant (weeks begin on Monday 00:00 at UTC+7, as the lake's
    /// `received_week` counts them).
    pub fn of(at: DateTime<Utc>) -> IsoWeek {
        let week = voxpop_schema::calendar::vietnam_date(at).iso_week();
        IsoWeek { year: week.year(), week: week.week() }
    }

    /// The last week that has ended in Vietnam at an instant: the week a weekly summary reads
    /// when none is named.
    pub fn last_ended(at: DateTime<Utc>) -> IsoWeek {
        IsoWeek::of(at).previous()
    }

    pub fn next(self) -> IsoWeek {
        let week = (self.monday() + chrono::Duration::days(7)).iso_week();
        IsoWeek { year: week.year(), week: week.week() }
    }

    /// The first moment of the week: Monday 00:00 in Vietnam.
    pub fn start(self) -> DateTime<Utc> {
        voxpop_schema::calendar::vietnam_day_start(self.monday()).expect("weeks parsed are from 2000 on")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProvinceCount {
    pub province_code: String,
    pub province_name: String,
    pub count: u64,
    /// The week before: whole, or up to the same point of it while the week is in progress.
    pub previous: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Share {
    pub key: String,
    /// The key's name in Vietnamese (`Tiếng Việt` for `vi`, `Đường dây nóng` for `hotline`).
    pub label: String,
    pub count: u64,
    /// Fraction of the week's petitions, 0..1.
    pub share: f64,
}

/// Units that did something over units expected, as staff write it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Coverage {
    pub count: u64,
    pub total: u64,
    /// e.g. `2,280/3,321 (68.65%)`.
    pub text: String,
}

impl Coverage {
    pub fn new(count: u64, total: u64) -> Coverage {
        let percent = if total == 0 { 0.0 } else { 100.0 * count as f64 / total as f64 };
        Coverage { count, total, text: format!("{}/{} ({percent:.2}%)", thousands(count), thousands(total)) }
    }
}

/// `2280` -> `2,280`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WeeklySummary {
    pub week: String,
    pub previous_week: String,
    /// The province the summary is limited to, if any.
    pub province_code: Option<String>,
    /// The commune the summary is limited to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commune_code: Option<String>,
    pub total: u64,
    pub previous_total: u64,
    /// Whether the week had ended when the summary was made. A week in progress is counted up to
    /// [`Self::counted_until`], and its change is against the same span of the week before.
    pub complete: bool,
    /// The moment a week in progress is counted up to; `None` for a week that has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_until: Option<DateTime<Utc>>,
    /// For a week in progress: the previous week's petitions received by the same weekday and
    /// time, the like-for-like figure its change is measured against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_to_date: Option<u64>,
    /// Change in percent against the previous week (against the same span of it while the week
    /// is in progress); `None` when that had none.
    pub change_percent: Option<f64>,
    /// Provinces by this week's count, highest first (all provinces in scope, zeros included).
    pub by_province: Vec<ProvinceCount>,
    pub by_language: Vec<Share>,
    pub by_channel: Vec<Share>,
    /// Communes in scope with at least one petition this week.
    pub communes_with_petitions: Coverage,
    /// The weeks of the trend series, oldest first, ending with `week`.
    pub trend_weeks: Vec<String>,
    /// Topics by this week's count, highest first; petitions without a topic last, as
    /// [`UNCLASSIFIED`].
    pub by_topic: Vec<TopicSummary>,
    /// This week's petitions per topic (rows, in `by_topic` order) and province (columns).
    pub topic_matrix: TopicMatrix,
    /// Topic × province cells whose count this week is a spike, strongest first.
    pub spikes: Vec<SpikeRow>,
    /// Words and phrases over-represented this week against the 8 weeks before.
    pub rising_terms: Vec<RisingTerm>,
    /// How many of the week's petitions the rising terms were computed on (a uniform sample
    /// beyond [`RISING_SAMPLE`]), and of the baseline's.
    pub rising_terms_sample: (u64, u64),
    /// The largest groups of near-identical petitions this week.
    pub campaigns: Vec<CampaignSummary>,
    /// Petitions of the week the campaigns were looked for in: all of them up to
    /// [`CAMPAIGN_SAMPLE`], a uniform sample beyond (campaign sizes are then those in the sample).
    pub campaign_sample: u64,
    /// Petitions this week once each campaign counts as one matter.
    pub distinct_matters: u64,
}

/// Most petitions read for rising terms per side (this week, the 8 weeks before): enough for
/// the statistic, and it bounds the summary's cost however large the lake grows.
pub const RISING_SAMPLE: u64 = 10_000;
/// Most petitions of the week searched for campaigns (~330,000 texts/s on one core).
pub const CAMPAIGN_SAMPLE: u64 = 25_000;
/// Campaigns listed in the summary.
pub const CAMPAIGNS_LISTED: usize = 5;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpikeRow {
    pub topic: String,
    pub topic_label: String,
    pub province_code: String,
    pub province_name: String,
    pub count: u64,
    pub baseline_mean: f64,
    pub z: f64,
    pub change_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CampaignSummary {
    /// Petitions in the campaign.
    pub size: usize,
    /// Citizens who raised it (distinct contacts; anonymous petitions count one each).
    pub citizens: usize,
    pub provinces: Vec<String>,
    pub communes: Vec<String>,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// Title and the start of the body of the most typical petition, phone and ID numbers
    /// masked; no contact details.
    pub title: String,
    pub excerpt: String,
    pub representative: uuid::Uuid,
}

/// The key under which petitions without a topic are counted.
pub const UNCLASSIFIED: &str = "unclassified";

/// Weeks in the trend series of each topic.
pub const TREND_WEEKS: usize = 12;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicSummary {
    pub code: String,
    /// Vietnamese label from the taxonomy ("Chưa phân loại" for [`UNCLASSIFIED`]).
    pub label: String,
    pub count: u64,
    /// The week before: whole, or up to the same point of it while the week is in progress.
    pub previous: u64,
    /// Fraction of the week's petitions, 0..1.
    pub share: f64,
    pub change_percent: Option<f64>,
    /// Petitions per week over [`WeeklySummary::trend_weeks`].
    pub weekly: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TopicMatrix {
    pub topics: Vec<String>,
    pub provinces: Vec<String>,
    /// `counts[topic][province]`.
    pub counts: Vec<Vec<u64>>,
}

impl PetitionQueries {
    /// Data files of the partitions `weeks` holding about `budget` rows, spread evenly over the
    /// files in path order (deterministic), as local paths.
    async fn sample_files(&self, weeks: &[String], budget: u64) -> QueryResult<Vec<String>> {
        let cached = self.table.lock().await;
        let Some(table) = cached.as_ref() else { return Ok(Vec::new()) };
        let snapshot = table.snapshot().map_err(|err| self.delta_error(err))?;
        let mut files: Vec<(String, u64)> = snapshot
            .log_data()
            .into_iter()
            .filter(|file| {
                file.partition_values_map()
                    .get(PARTITION_COLUMN)
                    .and_then(|w| w.as_deref())
                    .is_some_and(|w| weeks.iter().any(|x| x == w))
            })
            .map(|file| (file.path().to_string(), file.num_records().unwrap_or(0) as u64))
            .collect();
        files.sort();
        let total: u64 = files.iter().map(|(_, rows)| rows).sum();
        if files.is_empty() || total == 0 {
            return Ok(Vec::new());
        }
        // Evenly spaced row positions, one per file wanted; each picks the file that holds it.
        let average = total as f64 / files.len() as f64;
        let wanted = ((budget as f64 / average).ceil() as usize).clamp(1, files.len());
        let stride = total as f64 / wanted as f64;
        let mut targets = (0..wanted).map(|j| (j as f64 + 0.5) * stride).peekable();
        let mut picked = Vec::new();
        let mut seen = 0u64;
        for (path, rows) in files {
            let end = (seen + rows) as f64;
            let mut hit = false;
            while targets.peek().is_some_and(|&target| target < end) {
                targets.next();
                hit = true;
            }
            if hit {
                picked.push(self.path.join(&path).to_string_lossy().into_owned());
            }
            seen += rows;
        }
        Ok(picked)
    }

    /// The summary of `week`, for the whole country or one province.
    pub async fn weekly_summary(&self, week: IsoWeek, province: Option<&str>) -> QueryResult<WeeklySummary> {
        self.weekly_summary_in(week, province, None).await
    }

    /// The summary of `week` for the whole country, one province or one commune (its
    /// province is implied), as of now.
    pub async fn weekly_summary_in(
        &self,
        week: IsoWeek,
        province: Option<&str>,
        commune: Option<&str>,
    ) -> QueryResult<WeeklySummary> {
        self.weekly_summary_at(week, province, commune, Utc::now()).await
    }

    /// [`Self::weekly_summary_in`] as of the moment `now`: a week that has not ended by then is
    /// counted as in progress.
    pub async fn weekly_summary_at(
        &self,
        week: IsoWeek,
        province: Option<&str>,
        commune: Option<&str>,
        now: DateTime<Utc>,
    ) -> QueryResult<WeeklySummary> {
        let units = Units::embedded();
        if let Some(code) = province
            && units.province(code).is_none()
        {
            return Err(QueryError::BadRequest {
                field: "province",
                message: format!("unknown province code `{code}`"),
            });
        }
        let commune_province = match commune {
            None => None,
            Some(code) => match units.commune(code) {
                Some(found) => Some(found.province_code.as_str()),
                None => {
                    return Err(QueryError::BadRequest {
                        field: "commune",
                        message: format!("unknown 2025 commune code `{code}`"),
                    });
                }
            },
        };
        if let (Some(asked), Some(actual)) = (province, commune_province)
            && asked != actual
        {
            return Err(QueryError::BadRequest {
                field: "commune",
                message: format!("commune {} is not in province {asked}", commune.unwrap_or_default()),
            });
        }
        let province = province.or(commune_province);
        let place = Place { province, commune };
        let previous = week.previous();
        let started = std::time::Instant::now();
        let ctx = self.session().await?;
        let (this_label, previous_label) = (week.label(), previous.label());
        let mut trend_weeks = vec![week];
        while trend_weeks.len() < TREND_WEEKS {
            let earliest = *trend_weeks.last().expect("not empty");
            trend_weeks.push(earliest.previous());
        }
        trend_weeks.reverse();
        let labels: Vec<String> = trend_weeks.iter().map(|w| w.label()).collect();
        // Two scans of the lake, run together: this week and the last by place, language and
        // channel; and 12 weeks by topic and province.
        let two_weeks = [this_label.clone(), previous_label.clone()];
        let (detail, cells) = tokio::try_join!(
            grouped_counts(
                ctx.as_ref(),
                &two_weeks,
                place,
                &[PARTITION_COLUMN, "province_code", "commune_code", "language", "channel"]
            ),
            grouped_counts(ctx.as_ref(), &labels, place, &[PARTITION_COLUMN, "topic", "province_code"]),
        )?;
        // Keys of `detail`: [week, province, commune, language, channel].
        let count_by = |week: &str, column: usize| -> Vec<(String, u64)> {
            let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
            for (key, n) in detail.iter().filter(|(key, _)| key[0] == week) {
                let value = if key[column] == UNCLASSIFIED { "unknown".to_owned() } else { key[column].clone() };
                *counts.entry(value).or_default() += n;
            }
            counts.into_iter().collect()
        };
        let (this_week, last_week) = (count_by(&this_label, 1), count_by(&previous_label, 1));
        let (languages, channels, communes) =
            (count_by(&this_label, 3), count_by(&this_label, 4), count_by(&this_label, 2));
        let total: u64 = this_week.iter().map(|(_, n)| n).sum();
        let previous_total: u64 = last_week.iter().map(|(_, n)| n).sum();
        let complete = now >= week.next().start();
        // A week in progress (or one not begun) is compared with the week before up to the same
        // point of it: Monday's figures against last Monday's, not against a whole week.
        // Its provinces and topics too: `previous` is then the same span of the week before.
        let to_date = match complete {
            true => None,
            false => {
                let elapsed = (now - week.start()).max(chrono::Duration::zero());
                Some(received_before(ctx.as_ref(), &previous_label, place, previous.start() + elapsed).await?)
            }
        };
        let previous_to_date = to_date.as_ref().map(|rows| rows.iter().map(|(_, n)| n).sum::<u64>());
        let compared_with = previous_to_date.unwrap_or(previous_total);
        // Keys of `to_date`: [province, topic].
        let to_date_by = |column: usize| -> Option<Vec<(String, u64)>> {
            let rows = to_date.as_ref()?;
            let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
            for (key, n) in rows {
                *counts.entry(key[column].clone()).or_default() += n;
            }
            Some(counts.into_iter().collect())
        };
        let last_week = to_date_by(0).unwrap_or(last_week);
        let count_of = |rows: &[(String, u64)], key: &str| rows.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n);
        let mut by_province: Vec<ProvinceCount> = units
            .provinces()
            .iter()
            .filter(|p| province.is_none_or(|code| code == p.code))
            .map(|p| ProvinceCount {
                province_code: p.code.clone(),
                province_name: p.name.clone(),
                count: count_of(&this_week, &p.code),
                previous: count_of(&last_week, &p.code),
            })
            .collect();
        by_province.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.province_code.cmp(&b.province_code)));
        let shares = |rows: Vec<(String, u64)>, label: fn(&str) -> String| -> Vec<Share> {
            let mut shares: Vec<Share> = rows
                .into_iter()
                .map(|(key, count)| Share {
                    label: label(&key),
                    key,
                    count,
                    share: if total == 0 { 0.0 } else { count as f64 / total as f64 },
                })
                .collect();
            shares.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            shares
        };
        let communes_in_scope = units
            .communes()
            .iter()
            .filter(|c| {
                province.is_none_or(|code| code == c.province_code) && commune.is_none_or(|code| code == c.code)
            })
            .count();
        let (by_topic, topic_matrix) = topic_section(&labels, &cells, &by_province, total, to_date_by(1).as_deref());
        let spikes = spike_rows(&labels, &cells, &by_topic, units);
        let baseline_weeks = &labels[labels.len().saturating_sub(1 + SpikeOptions::default().window)..labels.len() - 1];
        let baseline_total: u64 =
            cells.iter().filter(|(key, _)| baseline_weeks.contains(&key[0])).map(|(_, n)| *n).sum();
        let counted = started.elapsed();
        let (current_docs, baseline_docs) = tokio::try_join!(
            sample_texts(self, ctx.as_ref(), std::slice::from_ref(&this_label), place, total, CAMPAIGN_SAMPLE),
            sample_texts(self, ctx.as_ref(), baseline_weeks, place, baseline_total, RISING_SAMPLE),
        )?;
        // Rising terms and campaigns are CPU work on the texts: one thread each.
        let current_docs = std::sync::Arc::new(current_docs);
        let docs = current_docs.clone();
        let sampled = started.elapsed();
        let (rising, found, rising_terms_sample) = tokio::task::spawn_blocking(move || {
            let stride = docs.len().div_ceil(RISING_SAMPLE as usize).max(1);
            let current_text: Vec<&str> = docs.iter().step_by(stride).map(|d| d.text.as_str()).collect();
            let baseline_text: Vec<&str> = baseline_docs.iter().map(|d| d.text.as_str()).collect();
            let sample = (current_text.len() as u64, baseline_text.len() as u64);
            std::thread::scope(|scope| {
                let campaigns = scope.spawn(|| {
                    let started = std::time::Instant::now();
                    let found = find_campaigns(&docs, &CampaignOptions::default()).unwrap_or_default();
                    (found, started.elapsed())
                });
                let started = std::time::Instant::now();
                let rising = rising_terms(&current_text, &baseline_text, &RisingOptions::default());
                let rising_time = started.elapsed();
                let (found, campaign_time) = campaigns.join().unwrap_or_default();
                tracing::debug!(?rising_time, ?campaign_time, docs = docs.len(), "summary text statistics");
                (rising, found, sample)
            })
        })
        .await
        .map_err(|err| QueryError::Export(format!("summary task failed: {err}")))?;
        tracing::debug!(?counted, ?sampled, total = ?started.elapsed(), "weekly summary phases");
        let in_campaigns: u64 = found.iter().map(|c| c.size as u64 - 1).sum();
        let scale = if current_docs.is_empty() { 1.0 } else { total as f64 / current_docs.len() as f64 };
        let distinct_matters = total.saturating_sub((in_campaigns as f64 * scale).round() as u64);
        let campaign_sample = current_docs.len() as u64;
        let campaigns = found.iter().take(CAMPAIGNS_LISTED).map(|c| campaign_summary(c, &current_docs)).collect();
        Ok(WeeklySummary {
            week: week.label(),
            previous_week: previous.label(),
            province_code: province.map(str::to_owned),
            commune_code: commune.map(str::to_owned),
            total,
            previous_total,
            complete,
            counted_until: (!complete).then_some(now),
            previous_to_date,
            change_percent: (compared_with > 0)
                .then(|| 100.0 * (total as f64 - compared_with as f64) / compared_with as f64),
            by_province,
            by_language: shares(languages, |code| petition::language_label_vi(code).to_owned()),
            // A channel the code does not know is named as it is; `unknown` (none) as for languages.
            by_channel: shares(channels, |code| {
                petition::Channel::parse(code)
                    .map_or_else(|| petition::language_label_vi(code), |c| c.label_vi())
                    .to_owned()
            }),
            communes_with_petitions: Coverage::new(communes.len() as u64, communes_in_scope as u64),
            trend_weeks: labels,
            by_topic,
            topic_matrix,
            spikes,
            rising_terms: rising,
            rising_terms_sample,
            campaigns,
            campaign_sample,
            distinct_matters,
        })
    }
}

/// Topics ranked with their trend, and this week's topic × province matrix, from counts by
/// `(week, topic, province)` over `weeks` (the last one is this week).
fn topic_section(
    weeks: &[String],
    cells: &[(Vec<String>, u64)],
    provinces: &[ProvinceCount],
    total: u64,
    previous_to_date: Option<&[(String, u64)]>,
) -> (Vec<TopicSummary>, TopicMatrix) {
    let taxonomy = Taxonomy::default_embedded();
    let this_week = weeks.len() - 1;
    let mut codes: Vec<String> = taxonomy.topics().iter().map(|t| t.code.clone()).collect();
    codes.push(UNCLASSIFIED.to_owned());
    let topic_index = |code: &str| codes.iter().position(|c| c == code).unwrap_or(codes.len() - 1);
    let province_codes: Vec<String> = provinces.iter().map(|p| p.province_code.clone()).collect();
    let mut weekly = vec![vec![0u64; weeks.len()]; codes.len()];
    let mut matrix = vec![vec![0u64; province_codes.len()]; codes.len()];
    for (key, count) in cells {
        let [week, topic, province] = key.as_slice() else { continue };
        let Some(w) = weeks.iter().position(|label| label == week) else { continue };
        let t = topic_index(topic);
        weekly[t][w] += count;
        if w == this_week
            && let Some(p) = province_codes.iter().position(|code| code == province)
        {
            matrix[t][p] += count;
        }
    }
    let mut order: Vec<usize> = (0..codes.len()).collect();
    // Ranked by this week's count; unclassified always last, whatever its count.
    order.sort_by_key(|&t| (codes[t] == UNCLASSIFIED, std::cmp::Reverse(weekly[t][this_week]), t));
    let label = |code: &str| match taxonomy.topic(code) {
        Some(topic) => topic.vi.clone(),
        None => "Chưa phân loại".to_owned(),
    };
    let by_topic = order
        .iter()
        .filter(|&&t| codes[t] != UNCLASSIFIED || weekly[t].iter().any(|&n| n > 0))
        .map(|&t| {
            let count = weekly[t][this_week];
            let previous = match previous_to_date {
                // A week in progress: the same span of the week before.
                Some(rows) => rows.iter().find(|(code, _)| *code == codes[t]).map_or(0, |(_, n)| *n),
                None if this_week > 0 => weekly[t][this_week - 1],
                None => 0,
            };
            TopicSummary {
                code: codes[t].clone(),
                label: label(&codes[t]),
                count,
                previous,
                share: if total == 0 { 0.0 } else { count as f64 / total as f64 },
                change_percent: (previous > 0).then(|| 100.0 * (count as f64 - previous as f64) / previous as f64),
                weekly: weekly[t].clone(),
            }
        })
        .collect::<Vec<_>>();
    let matrix = TopicMatrix {
        topics: by_topic.iter().map(|t| t.code.clone()).collect(),
        provinces: province_codes,
        counts: by_topic.iter().map(|t| matrix[topic_index(&t.code)].clone()).collect(),
    };
    (by_topic, matrix)
}

/// Topic × province cells (classified topics only) whose count this week is a spike against
/// the weeks before.
fn spike_rows(
    weeks: &[String],
    cells: &[(Vec<String>, u64)],
    by_topic: &[TopicSummary],
    units: &Units,
) -> Vec<SpikeRow> {
    let options = SpikeOptions::default();
    let this_week = weeks.len() - 1;
    let mut series: std::collections::BTreeMap<(String, String), Vec<u64>> = std::collections::BTreeMap::new();
    for (key, count) in cells {
        let [week, topic, province] = key.as_slice() else { continue };
        if topic == UNCLASSIFIED {
            continue;
        }
        let Some(w) = weeks.iter().position(|label| label == week) else { continue };
        series.entry((topic.clone(), province.clone())).or_insert_with(|| vec![0; weeks.len()])[w] += count;
    }
    let mut rows: Vec<SpikeRow> = series
        .into_iter()
        .filter_map(|((topic, province), counts)| {
            let stat = spike(&counts[..this_week], counts[this_week], &options);
            stat.spike.then(|| SpikeRow {
                topic_label: by_topic.iter().find(|t| t.code == topic).map_or(topic.clone(), |t| t.label.clone()),
                province_name: units.province(&province).map_or(province.clone(), |p| p.name.clone()),
                topic,
                province_code: province,
                count: stat.current,
                baseline_mean: stat.baseline_mean,
                z: stat.z,
                change_percent: stat.change_pct,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.z.total_cmp(&a.z).then_with(|| (&a.topic, &a.province_code).cmp(&(&b.topic, &b.province_code)))
    });
    rows
}

fn campaign_summary(campaign: &Campaign, docs: &[CampaignDoc]) -> CampaignSummary {
    let representative = docs.iter().find(|d| d.id == campaign.representative);
    let (title, body) = representative
        .map(|d| d.text.split_once('\n').map_or((d.text.as_str(), ""), |(t, b)| (t, b)))
        .unwrap_or_default();
    // Masked whole, then cut: cut first, a number or address split by the cut would no longer
    // be recognised and its first part would show.
    let excerpt: String = voxpop_schema::privacy::mask_text(body).chars().take(240).collect();
    CampaignSummary {
        size: campaign.size,
        citizens: campaign.distinct_submitters,
        provinces: campaign.provinces.clone(),
        communes: campaign.communes.clone(),
        first_seen: campaign.first_seen,
        last_seen: campaign.last_seen,
        // A title may itself be cut to length (Open311 descriptions).
        title: voxpop_schema::privacy::mask_excerpt(title),
        excerpt,
        representative: campaign.representative,
    }
}

/// The petitions of `weeks` as campaign documents (title, newline, body): all of them up to
/// about `budget`, beyond that a sample of whole data files spread evenly over the
/// weeks' files (each file holds the rows of one micro-batch, so files are a fair sample of
/// time and place; reading whole files avoids decoding the text of every row only to drop it).
async fn sample_texts(
    queries: &PetitionQueries,
    ctx: Option<&SessionContext>,
    weeks: &[String],
    place: Place<'_>,
    rows: u64,
    budget: u64,
) -> QueryResult<Vec<CampaignDoc>> {
    let Some(ctx) = ctx else { return Ok(Vec::new()) };
    if weeks.is_empty() || rows == 0 {
        return Ok(Vec::new());
    }
    let mut frame = if rows > budget {
        let files = queries.sample_files(weeks, budget).await?;
        if files.is_empty() {
            return Ok(Vec::new());
        }
        ctx.read_parquet(files, datafusion::prelude::ParquetReadOptions::default()).await?
    } else {
        ctx.table(petition::TABLE_NAME)
            .await?
            .filter(col(PARTITION_COLUMN).in_list(weeks.iter().map(|w| lit(w.as_str())).collect(), false))?
    };
    frame = place.filter(frame)?;
    let batches = frame
        .select_columns(&[
            "id",
            "title",
            "body",
            "contact_phone",
            "contact_email",
            "province_code",
            "commune_code",
            "received_at",
        ])?
        .collect()
        .await?;
    let mut docs = Vec::new();
    for batch in &batches {
        let column = |name: &str| crate::string_column(batch, name);
        let (ids, titles, bodies) = (column("id")?, column("title")?, column("body")?);
        let (phones, emails) = (column("contact_phone")?, column("contact_email")?);
        let (provinces, communes) = (column("province_code")?, column("commune_code")?);
        let received = batch
            .column_by_name("received_at")
            .and_then(|a| a.as_any().downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>().cloned());
        for i in 0..batch.num_rows() {
            let Some(Ok(id)) = ids[i].as_deref().map(uuid::Uuid::parse_str) else { continue };
            let received_at =
                received.as_ref().and_then(|a| chrono::DateTime::from_timestamp_micros(a.value(i))).unwrap_or_default();
            docs.push(CampaignDoc {
                id,
                text: format!("{}\n{}", titles[i].as_deref().unwrap_or(""), bodies[i].as_deref().unwrap_or("")),
                submitter: phones[i].clone().or_else(|| emails[i].clone()),
                province_code: provinces[i].clone().unwrap_or_default(),
                commune_code: communes[i].clone().unwrap_or_default(),
                received_at,
            });
        }
    }
    Ok(docs)
}

/// The part of the country a summary covers.
#[derive(Debug, Clone, Copy)]
struct Place<'a> {
    province: Option<&'a str>,
    commune: Option<&'a str>,
}

impl Place<'_> {
    fn filter(self, mut frame: datafusion::dataframe::DataFrame) -> QueryResult<datafusion::dataframe::DataFrame> {
        if let Some(code) = self.province {
            frame = frame.filter(col("province_code").eq(lit(code)))?;
        }
        if let Some(code) = self.commune {
            frame = frame.filter(col("commune_code").eq(lit(code)))?;
        }
        Ok(frame)
    }
}

/// Petitions per combination of `columns` over the partitions `weeks`, optionally in one
/// province; a null value (e.g. no topic) reads as [`UNCLASSIFIED`]. A column the table does not
/// have yet (a table written before topics existed) reads as null.
///
/// The codes are counted on their Parquet dictionary keys ([`crate::codes`]) where the table
/// allows it. Otherwise DataFusion's aggregate groups them; when the week (the partition
/// column) comes first in `columns`, each week is then grouped on its own by the other columns
/// and labelled with its week afterwards: a data file holds one week, so the week is a constant
/// of every file, and grouping by it would only copy and hash it once per row (about a quarter
/// of the time of the 12-week aggregate, docs/BENCHMARKS.md).
async fn grouped_counts(
    ctx: Option<&SessionContext>,
    weeks: &[String],
    place: Place<'_>,
    columns: &[&str],
) -> QueryResult<Vec<(Vec<String>, u64)>> {
    let Some(ctx) = ctx else { return Ok(Vec::new()) };
    if weeks.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(frame) = codes_frame(ctx, weeks, place, columns).await?
        && let Some(rows) = crate::codes::count_codes(frame).await?
    {
        let unclassified = |value: Option<String>| value.unwrap_or_else(|| UNCLASSIFIED.to_owned());
        return Ok(rows.into_iter().map(|(values, n)| (values.into_iter().map(unclassified).collect(), n)).collect());
    }
    let Some(frame) = grouped_counts_frame(ctx, weeks, place, columns).await? else { return Ok(Vec::new()) };
    counted_rows(&frame.collect().await?, columns)
}

/// The rows of `weeks` in `place`, `columns` alone, from the table whose strings are read as
/// dictionaries (counted by [`crate::codes`]); `None` where that table is not registered or
/// lacks a column (a table written before topics existed).
async fn codes_frame(
    ctx: &SessionContext,
    weeks: &[String],
    place: Place<'_>,
    columns: &[&str],
) -> QueryResult<Option<datafusion::dataframe::DataFrame>> {
    if !ctx.table_exist(crate::CODES_TABLE)? {
        return Ok(None);
    }
    let table = ctx.table(crate::CODES_TABLE).await?;
    if columns.iter().any(|name| table.schema().field_with_unqualified_name(name).is_err()) {
        return Ok(None);
    }
    let weeks = col(PARTITION_COLUMN).in_list(weeks.iter().map(|w| lit(w.as_str())).collect(), false);
    Ok(Some(place.filter(table.filter(weeks)?)?.select_columns(columns)?))
}

/// Petitions of the partition `week` in `place` received before `until`, per province and topic
/// ([`UNCLASSIFIED`] for none).
async fn received_before(
    ctx: Option<&SessionContext>,
    week: &str,
    place: Place<'_>,
    until: DateTime<Utc>,
) -> QueryResult<Vec<(Vec<String>, u64)>> {
    let Some(ctx) = ctx else { return Ok(Vec::new()) };
    let until =
        lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(Some(until.timestamp_micros()), Some("UTC".into())));
    let table = ctx.table(petition::TABLE_NAME).await?;
    // A table written before topics existed has no topic column: all unclassified.
    let topic = match table.schema().field_with_unqualified_name("topic") {
        Ok(_) => col("topic"),
        Err(_) => lit(datafusion::scalar::ScalarValue::Utf8(None)).alias("topic"),
    };
    let frame =
        place.filter(table.filter(col(PARTITION_COLUMN).eq(lit(week)))?.filter(col("received_at").lt(until))?)?;
    let count = datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("n");
    let grouped = frame.aggregate(vec![col("province_code"), topic], vec![count])?;
    counted_rows(&grouped.collect().await?, &["province_code", "topic"])
}

/// The plan of [`grouped_counts`] through DataFusion's aggregate; `None` for no weeks.
async fn grouped_counts_frame(
    ctx: &SessionContext,
    weeks: &[String],
    place: Place<'_>,
    columns: &[&str],
) -> QueryResult<Option<datafusion::dataframe::DataFrame>> {
    let table = ctx.table(crate::GROUPING_TABLE).await?;
    let schema = table.schema().clone();
    let has = |name: &str| schema.fields().iter().any(|field| field.name() == name);
    let key =
        |name: &str| if has(name) { col(name) } else { lit(datafusion::scalar::ScalarValue::Utf8(None)).alias(name) };
    let count = || datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("n");
    let mut frames = Vec::new();
    match columns.split_first() {
        Some((&PARTITION_COLUMN, others)) => {
            for week in weeks {
                let frame = place.filter(table.clone().filter(col(PARTITION_COLUMN).eq(lit(week.as_str())))?)?;
                let grouped = frame.aggregate(others.iter().map(|name| key(name)).collect(), vec![count()])?;
                let mut labelled = vec![lit(week.as_str()).alias(PARTITION_COLUMN)];
                labelled.extend(others.iter().map(|name| col(*name)));
                labelled.push(col("n"));
                frames.push(grouped.select(labelled)?);
            }
        }
        _ => {
            let frame = place.filter(
                table.filter(col(PARTITION_COLUMN).in_list(weeks.iter().map(|w| lit(w.as_str())).collect(), false))?,
            )?;
            frames.push(frame.aggregate(columns.iter().map(|name| key(name)).collect(), vec![count()])?);
        }
    }
    let Some(first) = frames.pop() else { return Ok(None) };
    Ok(Some(frames.into_iter().try_fold(first, |all, frame| all.union(frame))?))
}

/// The rows of grouped counts: the values of `columns` ([`UNCLASSIFIED`] for null) and `n`.
fn counted_rows(
    batches: &[datafusion::arrow::record_batch::RecordBatch],
    columns: &[&str],
) -> QueryResult<Vec<(Vec<String>, u64)>> {
    let mut rows = Vec::new();
    for batch in batches {
        let keys = columns.iter().map(|name| crate::string_column(batch, name)).collect::<QueryResult<Vec<_>>>()?;
        let counts = batch
            .column_by_name("n")
            .ok_or_else(|| datafusion::error::DataFusionError::Plan("count column missing".into()))?;
        let counts = datafusion::arrow::compute::cast(counts, &DataType::Int64)
            .map_err(datafusion::error::DataFusionError::from)?;
        let counts = counts.as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            let key = keys.iter().map(|column| column[i].clone().unwrap_or_else(|| UNCLASSIFIED.to_owned())).collect();
            rows.push((key, if counts.is_null(i) { 0 } else { counts.value(i) as u64 }));
        }
    }
    Ok(rows)
}

/// The summary's 12-week aggregate (petitions per week, topic and province over `weeks`) as the
/// summary computes it, for `voxpop bench summary`.
pub async fn bench_topic_counts(ctx: &SessionContext, weeks: &[String]) -> QueryResult<Vec<(Vec<String>, u64)>> {
    grouped_counts(
        Some(ctx),
        weeks,
        Place { province: None, commune: None },
        &[PARTITION_COLUMN, "topic", "province_code"],
    )
    .await
}

/// `EXPLAIN ANALYZE` of the scan [`bench_topic_counts`] counts (or of its aggregate where the
/// codes are not read as dictionaries): where its time goes, per operator.
pub async fn bench_topic_counts_explain(ctx: &SessionContext, weeks: &[String]) -> QueryResult<String> {
    let columns = [PARTITION_COLUMN, "topic", "province_code"];
    let place = Place { province: None, commune: None };
    let frame = match codes_frame(ctx, weeks, place, &columns).await? {
        Some(frame) => Some(frame),
        None => grouped_counts_frame(ctx, weeks, place, &columns).await?,
    };
    let Some(frame) = frame else { return Ok(String::new()) };
    let batches = frame.explain(false, true)?.collect().await?;
    let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(table.to_string())
}

/// The same aggregate as one SQL statement over the `petitions` table (plain strings, the week
/// grouped like any column), for `voxpop bench summary`.
pub async fn bench_topic_counts_sql(ctx: &SessionContext, weeks: &[String]) -> QueryResult<Vec<(Vec<String>, u64)>> {
    let in_list = weeks.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT {PARTITION_COLUMN}, topic, province_code, count(*) AS n FROM {} \
         WHERE {PARTITION_COLUMN} IN ({in_list}) GROUP BY {PARTITION_COLUMN}, topic, province_code",
        petition::TABLE_NAME
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    counted_rows(&batches, &[PARTITION_COLUMN, "topic", "province_code"])
}

/// For the benchmark: the summary's 12-week aggregate run by DataFusion over the table's Parquet
/// files directly (a listing table with the week as a hive partition, as DuckDB reads them),
/// with `target_partitions` threads and the two grouped string columns read as views when
/// `views`, else as plain Utf8. Returns the median of 3 runs after a warm-up, and the number of
/// groups.
pub async fn bench_aggregate_over_files(
    table: &std::path::Path,
    weeks: &[String],
    target_partitions: usize,
    views: bool,
) -> QueryResult<(f64, usize)> {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(target_partitions.max(1));
    config.options_mut().execution.parquet.schema_force_view_types = views;
    let ctx = SessionContext::new_with_config(config);
    let url = ListingTableUrl::parse(format!("{}/", table.display()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(PARTITION_COLUMN.to_owned(), DataType::Utf8)]);
    let text = |name: &str| Field::new(name, if views { DataType::Utf8View } else { DataType::Utf8 }, true);
    let schema = Arc::new(Schema::new(vec![text("topic"), text("province_code")]));
    let listing = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    ctx.register_table("files", Arc::new(ListingTable::try_new(listing)?))?;
    let in_list = weeks.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT {PARTITION_COLUMN}, topic, province_code, count(*) AS n FROM files \
         WHERE {PARTITION_COLUMN} IN ({in_list}) GROUP BY {PARTITION_COLUMN}, topic, province_code"
    );
    let mut times = Vec::new();
    let mut groups = 0;
    for _ in 0..4 {
        let started = std::time::Instant::now();
        let batches = ctx.sql(&sql).await?.collect().await?;
        times.push(started.elapsed().as_secs_f64());
        groups = batches.iter().map(|b| b.num_rows()).sum();
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    Ok((times[1], groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks_parse_and_step_back_across_years() {
        let week = IsoWeek::parse("2025-W38").unwrap();
        assert_eq!(week.monday(), NaiveDate::from_ymd_opt(2025, 9, 15).unwrap());
        assert_eq!(week.previous().label(), "2025-W37");
        assert_eq!(IsoWeek::parse("2026-W01").unwrap().previous().label(), "2025-W52");
        assert_eq!(IsoWeek::parse("2027-W01").unwrap().previous().label(), "2026-W53");
        for bad in ["2025-38", "2025-W54", "2025-W00", "W38", "", "abcd-W01", "2025-W3x"] {
            assert!(IsoWeek::parse(bad).is_none(), "{bad}");
        }
        // Exactly `YYYY-Www`: what the reports' week parameter accepts, nothing looser.
        for loose in [" 2026-W45", "2026-W45\n", "+2026-W45", "2026-W1", "2026-w45", "02026-W45", "1999-W52"] {
            assert!(IsoWeek::parse(loose).is_none(), "{loose:?}");
            assert!(voxpop_schema::reports::parse_week(loose).is_none(), "{loose:?}");
        }
        for exact in ["2026-W01", "2026-W45", "2026-W53"] {
            assert_eq!(IsoWeek::parse(exact).map(IsoWeek::label).as_deref(), Some(exact));
            assert_eq!(voxpop_schema::reports::parse_week(exact).as_deref(), Some(exact));
        }
    }

    #[test]
    fn coverage_is_written_the_way_staff_write_it() {
        assert_eq!(Coverage::new(2_280, 3_321).text, "2,280/3,321 (68.65%)");
        assert_eq!(Coverage::new(0, 0).text, "0/0 (0.00%)");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
