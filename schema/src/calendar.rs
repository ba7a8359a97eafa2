//! Dates as Vietnamese offices count them: the Vietnamese lunar calendar (âm lịch), working days
//! (weekly rest days, public holidays and their compensatory days off) and the handling deadlines
//! of petitions, counted in working days.
//!
//! In: Gregorian dates ([`NaiveDate`]), instants ([`DateTime<Utc>`]) and two configuration files,
//! `schema/data/calendar.toml` ([`Calendar`]) and `schema/data/deadlines.toml` ([`Deadlines`]),
//! compiled in as defaults and replaceable by a deployment's own copies.
//! Out: lunar dates, working-day arithmetic and due instants.
//! Guarantees: pure functions of their inputs and the configuration; no I/O; no panics on any
//! date chrono can represent (except [`Calendar::add_working_days`], documented).
//!
//! # The lunar calendar
//!
//! The Vietnamese lunar calendar is the Chinese lunisolar calendar computed for the meridian of
//! UTC+7 instead of UTC+8, so the two sometimes differ by a day (Tết 2007 and 2030) or a month
//! (Tết 1985). North Vietnam adopted UTC+7 for it in 1967 and the whole country after 1975; this
//! module applies UTC+7 to every year, so dates of the South before 1976 may differ from what
//! was printed there (Tết 1968: 29 January in the North, 30 January in the South).
//!
//! A month starts on the day (in UTC+7) of a new moon; month 11 is the month containing the
//! winter solstice; a year with 13 months between two months 11 has a leap month (tháng nhuận):
//! the first month after month 11 that contains no major solar term (trung khí, a multiple of
//! 30° of the Sun's longitude), and it repeats the number of the month before it.
//!
//! New moons and the Sun's longitude are computed with the series of Jean Meeus: the new-moon
//! series of *Astronomical Formulae for Calculators* (4th ed., 1988, ch. 32, also in
//! *Astronomical Algorithms*, 2nd ed., 1998, ch. 49 in fuller form) and the low-accuracy solar
//! coordinates of *Astronomical Algorithms*, ch. 25. The rules and the structure of the
//! computation follow Hồ Ngọc Đức's published algorithm for the Vietnamese calendar ("Thuật toán
//! tính âm lịch"), whose tables are the common reference in Vietnam. Results are checked against
//! known dates for lunar years 1900..=2199 ([`LUNAR_YEARS`]); outside that range the same
//! approximation is applied but not guaranteed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::f64::consts::PI;
use std::fmt;
use std::ops::{Bound, RangeInclusive};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc, Weekday};
use serde::Deserialize;

const CALENDAR_TOML: &str = include_str!("../data/calendar.toml");
const DEADLINES_TOML: &str = include_str!("../data/deadlines.toml");

/// The lunar years for which [`lunar_to_solar`] converts dates and lunar holidays are computed.
pub const LUNAR_YEARS: RangeInclusive<i32> = 1900..=2199;

/// Vietnam's offset from UTC, in hours: the lunar calendar and the working day both use it.
pub const VIETNAM_UTC_OFFSET_HOURS: i32 = 7;

const TIME_ZONE: f64 = VIETNAM_UTC_OFFSET_HOURS as f64;
/// Julian day number of 0001-01-01 (proleptic Gregorian) minus chrono's day number of it (1).
const JDN_OF_CE_DAY_0: i64 = 1_721_425;
/// Mean length of a synodic month, in days.
const SYNODIC_MONTH: f64 = 29.530588853;
/// Julian day of the new moon of 1900-01-01, the origin of the new-moon count `k`.
const NEW_MOON_EPOCH: f64 = 2415021.076998695;

/// Errors of the calendar and deadline configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The text is not TOML, or does not have the expected keys and types.
    #[error("malformed calendar configuration: {0}")]
    Toml(String),
    /// The TOML is well-formed but a value is out of range or inconsistent.
    #[error("invalid calendar configuration: {0}")]
    Invalid(String),
}

// ---------------------------------------------------------------------------------------------
// Lunar calendar
// ---------------------------------------------------------------------------------------------

/// A date of the Vietnamese lunar calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LunarDate {
    /// The lunar year, numbered as the solar year in which it starts (Tết 2025 starts lunar 2025).
    pub year: i32,
    /// The month, 1..=12 (a leap month carries the number of the month it repeats).
    pub month: u32,
    /// The day of the month, 1..=30.
    pub day: u32,
    /// Whether the month is the leap month (tháng nhuận) of the year.
    pub leap: bool,
}

impl LunarDate {
    /// The solar date of this lunar date: [`lunar_to_solar`] of its fields.
    pub fn to_solar(&self) -> Option<NaiveDate> {
        lunar_to_solar(self.year, self.month, self.day, self.leap)
    }
}

impl fmt::Display for LunarDate {
    /// `day/month/year` as written in Vietnam, the leap month marked: `10/3/2024`,
    /// `1/2 nhuận/2023`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leap = if self.leap { " nhuận" } else { "" };
        write!(f, "{}/{}{}/{}", self.day, self.month, leap, self.year)
    }
}

/// The Julian day number (the day starting at noon UT) of a proleptic Gregorian date; works for
/// any year, unlike chrono's dates.
fn jdn_of_ymd(year: i64, month: i64, day: i64) -> i64 {
    let a = (14 - month) / 12;
    let y = year + 4800 - a;
    let m = month + 12 * a - 3;
    day + (153 * m + 2) / 5 + 365 * y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) - 32045
}

fn jdn(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) + JDN_OF_CE_DAY_0
}

fn date_of_jdn(jdn: i64) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(jdn - JDN_OF_CE_DAY_0).ok()?)
}

/// The Julian day (dynamical time, as a fraction) of the `k`-th new moon after the one of
/// 1900-01-01 (Meeus, *Astronomical Formulae for Calculators*, ch. 32).
fn new_moon(k: i64) -> f64 {
    let k = k as f64;
    let t = k / 1236.85;
    let t2 = t * t;
    let t3 = t2 * t;
    let dr = PI / 180.0;
    let mut jd1 = 2415020.75933 + 29.53058868 * k + 0.0001178 * t2 - 0.000000155 * t3;
    jd1 += 0.00033 * ((166.56 + 132.87 * t - 0.009173 * t2) * dr).sin();
    let m = 359.2242 + 29.10535608 * k - 0.0000333 * t2 - 0.00000347 * t3; // Sun's mean anomaly
    let mpr = 306.0253 + 385.81691806 * k + 0.0107306 * t2 + 0.00001236 * t3; // Moon's mean anomaly
    let f = 21.2964 + 390.67050646 * k - 0.0016528 * t2 - 0.00000239 * t3; // Moon's argument of latitude
    let mut c1 = (0.1734 - 0.000393 * t) * (m * dr).sin() + 0.0021 * (2.0 * dr * m).sin();
    c1 = c1 - 0.4068 * (mpr * dr).sin() + 0.0161 * (dr * 2.0 * mpr).sin();
    c1 -= 0.0004 * (dr * 3.0 * mpr).sin();
    c1 = c1 + 0.0104 * (dr * 2.0 * f).sin() - 0.0051 * (dr * (m + mpr)).sin();
    c1 = c1 - 0.0074 * (dr * (m - mpr)).sin() + 0.0004 * (dr * (2.0 * f + m)).sin();
    c1 = c1 - 0.0004 * (dr * (2.0 * f - m)).sin() - 0.0006 * (dr * (2.0 * f + mpr)).sin();
    c1 = c1 + 0.0010 * (dr * (2.0 * f - mpr)).sin() + 0.0005 * (dr * (2.0 * mpr + m)).sin();
    // ΔT = TD − UT, in days.
    let delta_t = if t < -11.0 {
        0.001 + 0.000839 * t + 0.0002261 * t2 - 0.00000845 * t3 - 0.000000081 * t * t3
    } else {
        -0.000278 + 0.000265 * t + 0.000262 * t2
    };
    jd1 + c1 - delta_t
}

/// The Julian day number of the local (UTC+7) day of the `k`-th new moon.
fn new_moon_day(k: i64) -> i64 {
    (new_moon(k) + 0.5 + TIME_ZONE / 24.0).floor() as i64
}

/// The Sun's apparent longitude at Julian day `jd`, in radians in [0, 2π) (Meeus, *Astronomical
/// Algorithms*, ch. 25, low accuracy).
fn sun_longitude(jd: f64) -> f64 {
    let t = (jd - 2451545.0) / 36525.0;
    let t2 = t * t;
    let dr = PI / 180.0;
    let m = 357.52910 + 35999.05030 * t - 0.0001559 * t2 - 0.00000048 * t * t2; // mean anomaly
    let l0 = 280.46645 + 36000.76983 * t + 0.0003032 * t2; // mean longitude
    let dl = (1.914600 - 0.004817 * t - 0.000014 * t2) * (dr * m).sin()
        + (0.019993 - 0.000101 * t) * (dr * 2.0 * m).sin()
        + 0.000290 * (dr * 3.0 * m).sin();
    let l = (l0 + dl) * dr;
    l - 2.0 * PI * (l / (2.0 * PI)).floor()
}

/// Which 30° sector (0..=11) the Sun is in at the start (local midnight) of day `jdn`; sector 9
/// starts at the winter solstice.
fn sun_sector(jdn: i64) -> i64 {
    (sun_longitude(jdn as f64 - 0.5 - TIME_ZONE / 24.0) / PI * 6.0).floor() as i64
}

/// The Julian day number of the first day of lunar month 11 that contains the winter solstice of
/// solar `year`.
fn lunar_month_11(year: i64) -> i64 {
    let off = jdn_of_ymd(year, 12, 31) - 2415021;
    let k = (off as f64 / SYNODIC_MONTH).floor() as i64;
    let new_moon = new_moon_day(k);
    if sun_sector(new_moon) >= 9 { new_moon_day(k - 1) } else { new_moon }
}

/// For a lunar year of 13 months whose month 11 starts on day `a11`: how many months after that
/// month 11 the leap month comes (the first month without a major solar term).
fn leap_month_offset(a11: i64) -> i64 {
    let k = ((a11 as f64 - NEW_MOON_EPOCH) / SYNODIC_MONTH + 0.5).floor() as i64;
    let mut i = 1;
    let mut arc = sun_sector(new_moon_day(k + i));
    loop {
        let last = arc;
        i += 1;
        arc = sun_sector(new_moon_day(k + i));
        if arc == last || i >= 14 {
            return i - 1;
        }
    }
}

/// The lunar date of a solar (Gregorian) date, in Vietnam (UTC+7).
///
/// In: any date. Out: its lunar date. Guarantees: exact for the lunar years [`LUNAR_YEARS`]
/// (solar dates 1900-01-31 to early 2200), where `lunar_to_solar` of the result gives `date`
/// back; outside, the same astronomical approximation, unverified. Never panics.
pub fn solar_to_lunar(date: NaiveDate) -> LunarDate {
    let day_number = jdn(date);
    let year = i64::from(date.year());
    // The mean lunation gives the month within one; the true new moon can fall on the other side
    // of `date` (e.g. 2054-05-07, 2062-04-09), so step to the last new moon on or before it. The
    // steps are bounded: far outside the verified range the series is too rough to rely on.
    let mut k = ((day_number as f64 - NEW_MOON_EPOCH) / SYNODIC_MONTH).floor() as i64;
    for _ in 0..4 {
        if new_moon_day(k) > day_number {
            k -= 1;
        } else if new_moon_day(k + 1) <= day_number {
            k += 1;
        } else {
            break;
        }
    }
    let month_start = new_moon_day(k);
    let mut a11 = lunar_month_11(year);
    let mut b11 = a11;
    let mut lunar_year;
    if a11 >= month_start {
        lunar_year = year;
        a11 = lunar_month_11(year - 1);
    } else {
        lunar_year = year + 1;
        b11 = lunar_month_11(year + 1);
    }
    let day = day_number - month_start + 1;
    let diff = ((month_start - a11) as f64 / 29.0).floor() as i64;
    let mut leap = false;
    let mut month = diff + 11;
    if b11 - a11 > 365 {
        let leap_offset = leap_month_offset(a11);
        if diff >= leap_offset {
            month = diff + 10;
            leap = diff == leap_offset;
        }
    }
    let month = (month - 1).rem_euclid(12) + 1;
    if month >= 11 && diff < 4 {
        lunar_year -= 1;
    }
    LunarDate {
        year: i32::try_from(lunar_year).unwrap_or(if lunar_year < 0 { i32::MIN } else { i32::MAX }),
        month: month as u32,
        day: u32::try_from(day.clamp(1, 30)).unwrap_or(1),
        leap,
    }
}

/// The solar (Gregorian) date of a Vietnamese lunar date.
///
/// In: the lunar `year` (numbered as the solar year Tết starts in), `month` 1..=12, `day` 1..=30
/// and whether the month is the year's leap month.
/// Out: the date, or `None` when that lunar date does not exist: `year` outside [`LUNAR_YEARS`],
/// month or day out of range, day 30 of a 29-day month, or `leap` for a month that is not the
/// year's leap month. Guarantees: `solar_to_lunar` of a returned date gives the input back.
pub fn lunar_to_solar(year: i32, month: u32, day: u32, leap: bool) -> Option<NaiveDate> {
    if !LUNAR_YEARS.contains(&year) || !(1..=12).contains(&month) || !(1..=30).contains(&day) {
        return None;
    }
    let (y, m) = (i64::from(year), i64::from(month));
    let (a11, b11) =
        if m < 11 { (lunar_month_11(y - 1), lunar_month_11(y)) } else { (lunar_month_11(y), lunar_month_11(y + 1)) };
    let k = (0.5 + (a11 as f64 - NEW_MOON_EPOCH) / SYNODIC_MONTH).floor() as i64;
    let mut off = (m - 11).rem_euclid(12);
    if b11 - a11 > 365 {
        let leap_offset = leap_month_offset(a11);
        let leap_month = (leap_offset - 2).rem_euclid(12);
        if leap && m != leap_month {
            return None;
        }
        if leap || off >= leap_offset {
            off += 1;
        }
    } else if leap {
        return None;
    }
    let date = date_of_jdn(new_moon_day(k + off) + i64::from(day) - 1)?;
    (solar_to_lunar(date) == LunarDate { year, month, day, leap }).then_some(date)
}

/// The leap month (tháng nhuận) of a lunar year: the number of the month it repeats, or `None`
/// for a year of 12 months or outside [`LUNAR_YEARS`].
pub fn leap_month(year: i32) -> Option<u32> {
    (1..=12).find(|&month| lunar_to_solar(year, month, 1, true).is_some())
}

/// The number of days (29 or 30) of a lunar month, or `None` when the month does not exist
/// (see [`lunar_to_solar`]).
pub fn lunar_month_days(year: i32, month: u32, leap: bool) -> Option<u32> {
    lunar_to_solar(year, month, 1, leap)?;
    Some(if lunar_to_solar(year, month, 30, leap).is_some() { 30 } else { 29 })
}

// ---------------------------------------------------------------------------------------------
// Working days
// ---------------------------------------------------------------------------------------------

/// Vietnam's time zone, UTC+7.
pub fn vietnam_offset() -> FixedOffset {
    FixedOffset::east_opt(VIETNAM_UTC_OFFSET_HOURS * 3600).expect("UTC+7 is a valid offset")
}

/// The date in Vietnam (UTC+7) at an instant.
pub fn vietnam_date(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&vietnam_offset()).date_naive()
}

/// The first moment of a day in Vietnam (its 00:00 at UTC+7, 17:00 UTC the day before): where
/// a date filter a person typed starts. `None` only at the ends of chrono's range.
pub fn vietnam_day_start(day: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    vietnam_offset().from_local_datetime(&midnight).single().map(|local| local.with_timezone(&Utc))
}

/// Which calendar a holiday rule's month and day are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarKind {
    /// The Gregorian calendar (dương lịch).
    Solar,
    /// The Vietnamese lunar calendar (âm lịch), ordinary (not leap) months.
    Lunar,
}

/// One public holiday rule of a [`Calendar`] (a `[[holiday]]` table of the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayRule {
    /// Vietnamese name, unique in the calendar (`Tết Âm lịch`).
    pub name: String,
    /// Calendar of `month` and `day`.
    pub calendar: CalendarKind,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month.
    pub day: u32,
    /// Days added to `month`/`day` to get the first day off (Tết: -1, the last day of the old
    /// lunar year).
    pub offset: i32,
    /// Number of consecutive days off, at least 1.
    pub days: u32,
    /// Whether a day of it falling on a weekly rest day gives a compensatory day off (when the
    /// calendar applies the rule at all).
    pub compensatory: bool,
    /// Legal basis, free text.
    pub basis: String,
}

/// What a day is, in a [`Calendar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind<'a> {
    /// An ordinary working day.
    Working,
    /// A weekly rest day that no decision made a working day.
    Weekend,
    /// A day off other than a weekly rest: a holiday, a compensatory day off or a decided day
    /// off, with its Vietnamese name. Also a holiday that falls on a weekly rest day.
    Holiday(&'a str),
    /// A day made a working day by a decision (làm bù), with its description.
    DecidedWorkingDay(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Off(usize),
    Working(usize),
}

#[derive(Debug, Clone, Default)]
struct YearDecision {
    basis: String,
    replace: HashSet<usize>,
    days_off: Vec<(NaiveDate, usize)>,
    working_days: Vec<(NaiveDate, usize)>,
}

/// The special days of one solar year (everything that is not "weekday works, weekend rests").
type YearTable = BTreeMap<NaiveDate, Entry>;

/// Working days in Vietnam: weekly rest days, public holidays (solar and lunar), compensatory days
/// off (nghỉ bù) and year-by-year decisions (days off, làm bù Saturdays).
///
/// Built from TOML ([`Calendar::from_toml`]; the shipped `schema/data/calendar.toml` documents
/// the format and the legal basis of every default). Holiday tables are computed per year on
/// first use and cached; a `Calendar` is `Send + Sync` and cheap to query.
///
/// Compensatory rule (Bộ luật Lao động 2019, Điều 111 khoản 3): each day of a `[[holiday]]` that
/// falls on a weekly rest day gives one day off on the next day that is neither a rest day, nor a
/// day off, nor a decided working day, nor already a compensatory day, in date order. Decided
/// days (`[[year]]`) are taken as they are and give no compensatory days.
#[derive(Debug)]
pub struct Calendar {
    weekend: [bool; 7],
    weekend_basis: String,
    compensatory: bool,
    compensatory_basis: String,
    rules: Vec<HolidayRule>,
    decisions: HashMap<i32, YearDecision>,
    /// Every name a table entry can point to: per rule its name and "Nghỉ bù <name>" (indices
    /// 2i and 2i+1), then the names of decided days.
    names: Vec<String>,
    cache: RwLock<HashMap<i32, Arc<YearTable>>>,
}

impl Clone for Calendar {
    fn clone(&self) -> Calendar {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner).clone();
        Calendar {
            weekend: self.weekend,
            weekend_basis: self.weekend_basis.clone(),
            compensatory: self.compensatory,
            compensatory_basis: self.compensatory_basis.clone(),
            rules: self.rules.clone(),
            decisions: self.decisions.clone(),
            names: self.names.clone(),
            cache: RwLock::new(cache),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    weekend: Vec<String>,
    #[serde(default)]
    weekend_basis: String,
    #[serde(default = "yes")]
    compensatory: bool,
    #[serde(default)]
    compensatory_basis: String,
    #[serde(default)]
    holiday: Vec<HolidayEntry>,
    #[serde(default)]
    year: Vec<YearEntry>,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayEntry {
    name: String,
    calendar: CalendarKind,
    month: u32,
    day: u32,
    #[serde(default)]
    offset: i32,
    #[serde(default = "one")]
    days: u32,
    #[serde(default = "yes")]
    compensatory: bool,
    #[serde(default)]
    basis: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearEntry {
    year: i32,
    #[serde(default)]
    replace: Vec<String>,
    #[serde(default)]
    days_off: Vec<DayEntry>,
    #[serde(default)]
    working_days: Vec<DayEntry>,
    #[serde(default)]
    basis: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayEntry {
    date: Option<toml::value::Datetime>,
    from: Option<toml::value::Datetime>,
    to: Option<toml::value::Datetime>,
    name: String,
}

fn toml_date(value: &toml::value::Datetime) -> Result<NaiveDate, CalendarError> {
    match (&value.date, &value.time, &value.offset) {
        (Some(date), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(date.year), u32::from(date.month), u32::from(date.day))
                .ok_or_else(|| CalendarError::Invalid(format!("{value} is not a date")))
        }
        _ => Err(CalendarError::Invalid(format!("{value} must be a plain date such as 2025-01-25"))),
    }
}

impl DayEntry {
    /// The days the entry names, checked to lie in `year`.
    fn dates(&self, year: i32) -> Result<Vec<NaiveDate>, CalendarError> {
        let (first, last) = match (&self.date, &self.from, &self.to) {
            (Some(date), None, None) => (toml_date(date)?, toml_date(date)?),
            (None, Some(from), Some(to)) => (toml_date(from)?, toml_date(to)?),
            _ => {
                return Err(CalendarError::Invalid(format!(
                    "`{}` of year {year}: give either `date` or both `from` and `to`",
                    self.name
                )));
            }
        };
        if first > last {
            return Err(CalendarError::Invalid(format!("`{}`: {first} is after {last}", self.name)));
        }
        if first.year() != year || last.year() != year {
            return Err(CalendarError::Invalid(format!("`{}`: dates must lie in year {year}", self.name)));
        }
        Ok(first.iter_days().take_while(|day| *day <= last).collect())
    }
}

fn parse_weekday(name: &str) -> Option<Weekday> {
    let name = name.trim().to_lowercase();
    Some(match name.as_str() {
        "monday" | "mon" | "thứ hai" => Weekday::Mon,
        "tuesday" | "tue" | "thứ ba" => Weekday::Tue,
        "wednesday" | "wed" | "thứ tư" => Weekday::Wed,
        "thursday" | "thu" | "thứ năm" => Weekday::Thu,
        "friday" | "fri" | "thứ sáu" => Weekday::Fri,
        "saturday" | "sat" | "thứ bảy" => Weekday::Sat,
        "sunday" | "sun" | "chủ nhật" => Weekday::Sun,
        _ => return None,
    })
}

/// Years whose tables are cached; others (no lunar holidays there) are computed on each use, so
/// that counting over far-away dates does not grow the cache without bound.
const CACHED_YEARS: RangeInclusive<i32> = 1890..=2210;

impl Calendar {
    /// The calendar shipped in `schema/data/calendar.toml`: Saturday and Sunday off, the holidays
    /// of Bộ luật Lao động 2019 Điều 112, nghỉ bù, and the recorded decisions of recent years.
    pub fn default_embedded() -> &'static Calendar {
        static CALENDAR: OnceLock<Calendar> = OnceLock::new();
        CALENDAR.get_or_init(|| Calendar::from_toml(CALENDAR_TOML).expect("the shipped calendar.toml is valid"))
    }

    /// Reads a calendar from TOML in the format of `schema/data/calendar.toml`.
    ///
    /// In: the file's text. Out: the calendar, or the first problem found: unknown keys, a
    /// weekday name not understood, all seven days as rest days, a month, day or `days` out of
    /// range, duplicate holiday names or years, a `replace` naming no holiday, a decided date
    /// outside its `[[year]]`.
    pub fn from_toml(source: &str) -> Result<Calendar, CalendarError> {
        let file: CalendarFile = toml::from_str(source).map_err(|error| CalendarError::Toml(error.to_string()))?;
        let mut weekend = [false; 7];
        for name in &file.weekend {
            let day = parse_weekday(name)
                .ok_or_else(|| CalendarError::Invalid(format!("`{name}` is not a day of the week")))?;
            weekend[day.num_days_from_monday() as usize] = true;
        }
        if weekend.iter().all(|rest| *rest) {
            return Err(CalendarError::Invalid("every day of the week is a rest day".into()));
        }
        let mut rules = Vec::new();
        let mut names = Vec::new();
        for entry in file.holiday {
            let name = entry.name.trim().to_owned();
            if name.is_empty() {
                return Err(CalendarError::Invalid("a holiday has an empty name".into()));
            }
            if rules.iter().any(|rule: &HolidayRule| rule.name == name) {
                return Err(CalendarError::Invalid(format!("holiday `{name}` is defined twice")));
            }
            let max_day = if entry.calendar == CalendarKind::Lunar { 30 } else { 31 };
            if !(1..=12).contains(&entry.month) || !(1..=max_day).contains(&entry.day) {
                return Err(CalendarError::Invalid(format!("holiday `{name}`: no day {}/{}", entry.day, entry.month)));
            }
            if !(1..=31).contains(&entry.days) || !(-31..=31).contains(&entry.offset) {
                return Err(CalendarError::Invalid(format!(
                    "holiday `{name}`: `days` must be 1..=31 and `offset` -31..=31"
                )));
            }
            names.push(name.clone());
            names.push(format!("Nghỉ bù {name}"));
            rules.push(HolidayRule {
                name,
                calendar: entry.calendar,
                month: entry.month,
                day: entry.day,
                offset: entry.offset,
                days: entry.days,
                compensatory: entry.compensatory,
                basis: entry.basis,
            });
        }
        let mut decisions = HashMap::new();
        for entry in file.year {
            let year = entry.year;
            if decisions.contains_key(&year) {
                return Err(CalendarError::Invalid(format!("year {year} is given twice")));
            }
            let mut decision = YearDecision { basis: entry.basis.clone(), ..YearDecision::default() };
            for replaced in &entry.replace {
                let index = rules
                    .iter()
                    .position(|rule| rule.name == replaced.trim())
                    .ok_or_else(|| CalendarError::Invalid(format!("year {year}: no holiday named `{replaced}`")))?;
                decision.replace.insert(index);
            }
            for (entries, days) in
                [(&entry.days_off, &mut decision.days_off), (&entry.working_days, &mut decision.working_days)]
            {
                for day in entries {
                    names.push(day.name.trim().to_owned());
                    let name = names.len() - 1;
                    days.extend(day.dates(year)?.into_iter().map(|date| (date, name)));
                }
            }
            decisions.insert(year, decision);
        }
        Ok(Calendar {
            weekend,
            weekend_basis: file.weekend_basis,
            compensatory: file.compensatory,
            compensatory_basis: file.compensatory_basis,
            rules,
            decisions,
            names,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The holiday rules, in file order.
    pub fn rules(&self) -> &[HolidayRule] {
        &self.rules
    }

    /// The legal basis given for the weekly rest days, free text.
    pub fn weekend_basis(&self) -> &str {
        &self.weekend_basis
    }

    /// The legal basis given for the compensatory days off, free text.
    pub fn compensatory_basis(&self) -> &str {
        &self.compensatory_basis
    }

    /// The basis given for the `[[year]]` decisions of solar `year`, or `None` when the
    /// configuration records no decision for that year.
    pub fn decision_basis(&self, year: i32) -> Option<&str> {
        self.decisions.get(&year).map(|decision| decision.basis.as_str())
    }

    /// Whether `day` is a weekly rest day (before holidays and decisions).
    pub fn is_weekend(&self, day: Weekday) -> bool {
        self.weekend[day.num_days_from_monday() as usize]
    }

    /// The days in solar `year` of every rule not replaced by that year's decision:
    /// (date, rule index), in date order, at most one entry per date (the first rule wins).
    fn rule_days(&self, year: i32) -> Vec<(NaiveDate, usize)> {
        let decision = self.decisions.get(&year);
        let mut days = BTreeMap::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if decision.is_some_and(|decision| decision.replace.contains(&index)) {
                continue;
            }
            let bases: Vec<NaiveDate> = match rule.calendar {
                CalendarKind::Solar => NaiveDate::from_ymd_opt(year, rule.month, rule.day).into_iter().collect(),
                // A run of days starting in the previous lunar year may reach into this solar
                // year, hence both lunar years.
                CalendarKind::Lunar => [year.checked_sub(1), Some(year)]
                    .into_iter()
                    .flatten()
                    .filter_map(|lunar_year| lunar_to_solar(lunar_year, rule.month, rule.day, false))
                    .collect(),
            };
            for base in bases {
                let Some(first) = base.checked_add_signed(chrono::TimeDelta::days(i64::from(rule.offset))) else {
                    continue;
                };
                for date in first.iter_days().take(rule.days as usize) {
                    if date.year() == year {
                        days.entry(date).or_insert(index);
                    }
                }
            }
        }
        days.into_iter().collect()
    }

    /// The special days of solar `year`, computed (not cached).
    fn build_year(&self, year: i32) -> YearTable {
        let mut table = YearTable::new();
        let years: Vec<i32> = [year.checked_sub(1), Some(year)].into_iter().flatten().collect();
        // Days off that block a compensatory day: rule days and decided days off of this year and
        // the previous one (a holiday late in December may push its nghỉ bù into January).
        let mut off: HashSet<NaiveDate> = HashSet::new();
        let mut holidays = Vec::new();
        for &y in &years {
            for (date, rule) in self.rule_days(y) {
                off.insert(date);
                holidays.push((date, rule));
            }
            if let Some(decision) = self.decisions.get(&y) {
                off.extend(decision.days_off.iter().map(|(date, _)| *date));
            }
        }
        let decided_working: HashSet<NaiveDate> = years
            .iter()
            .filter_map(|y| self.decisions.get(y))
            .flat_map(|decision| decision.working_days.iter().map(|(date, _)| *date))
            .collect();
        let mut compensatory: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        if self.compensatory {
            for &(date, rule) in &holidays {
                if !self.rules[rule].compensatory || !self.is_weekend(date.weekday()) || decided_working.contains(&date)
                {
                    continue;
                }
                let mut candidate = date.succ_opt();
                while let Some(day) = candidate {
                    if !self.is_weekend(day.weekday())
                        && !off.contains(&day)
                        && !compensatory.contains_key(&day)
                        && !decided_working.contains(&day)
                    {
                        break;
                    }
                    candidate = day.succ_opt();
                }
                if let Some(day) = candidate {
                    compensatory.insert(day, 2 * rule + 1);
                }
            }
        }
        // Lowest precedence first; later inserts overwrite.
        for (date, name) in compensatory {
            if date.year() == year {
                table.insert(date, Entry::Off(name));
            }
        }
        for (date, rule) in holidays {
            if date.year() == year {
                table.insert(date, Entry::Off(2 * rule));
            }
        }
        if let Some(decision) = self.decisions.get(&year) {
            for &(date, name) in &decision.days_off {
                table.insert(date, Entry::Off(name));
            }
            for &(date, name) in &decision.working_days {
                table.insert(date, Entry::Working(name));
            }
        }
        table
    }

    /// The special days of solar `year`, from the cache when the year is cached.
    fn year(&self, year: i32) -> Arc<YearTable> {
        if !CACHED_YEARS.contains(&year) {
            return Arc::new(self.build_year(year));
        }
        if let Some(table) = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(&year) {
            return Arc::clone(table);
        }
        let table = Arc::new(self.build_year(year));
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cache.entry(year).or_insert(table))
    }

    /// What `date` is: working day, weekly rest day, holiday (with its name) or decided working
    /// day (with its description).
    pub fn day(&self, date: NaiveDate) -> DayKind<'_> {
        match self.year(date.year()).get(&date) {
            Some(Entry::Off(name)) => DayKind::Holiday(&self.names[*name]),
            Some(Entry::Working(name)) => DayKind::DecidedWorkingDay(&self.names[*name]),
            None if self.is_weekend(date.weekday()) => DayKind::Weekend,
            None => DayKind::Working,
        }
    }

    /// Whether offices work on `date`: not a weekly rest day (unless a decision made it a
    /// working day), not a holiday, compensatory day or decided day off.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        matches!(self.day(date), DayKind::Working | DayKind::DecidedWorkingDay(_))
    }

    /// The Vietnamese name of the day off `date` is, other than a plain weekly rest day:
    /// `Quốc khánh`, `Nghỉ bù Quốc khánh`, a decided day's name; `None` for working days and
    /// ordinary weekends.
    pub fn holiday_name(&self, date: NaiveDate) -> Option<&str> {
        match self.day(date) {
            DayKind::Holiday(name) => Some(name),
            _ => None,
        }
    }

    /// Every day off of solar `year` other than plain weekly rest days (holidays, including those
    /// on a weekend, compensatory and decided days off), in date order, with their names.
    pub fn holidays(&self, year: i32) -> Vec<(NaiveDate, String)> {
        self.year(year)
            .iter()
            .filter_map(|(date, entry)| match entry {
                Entry::Off(name) => Some((*date, self.names[*name].clone())),
                Entry::Working(_) => None,
            })
            .collect()
    }

    /// Days of (from, to] whose weekday is not a rest day; `from <= to`.
    fn weekdays_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let total = (to - from).num_days();
        let per_week = self.weekend.iter().filter(|rest| !**rest).count() as i64;
        let mut count = total / 7 * per_week;
        let mut weekday = from.weekday();
        for _ in 0..total % 7 {
            weekday = weekday.succ();
            if !self.is_weekend(weekday) {
                count += 1;
            }
        }
        count
    }

    /// The number of working days in (from, to]: `from` excluded, `to` included. Negative
    /// (minus the working days in (to, from]) when `to` is before `from`; 0 when equal.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        let mut count = self.weekdays_between(from, to);
        for year in from.year()..=to.year() {
            for (date, entry) in self.year(year).range((Bound::Excluded(from), Bound::Included(to))) {
                let rest = self.is_weekend(date.weekday());
                match entry {
                    Entry::Off(_) if !rest => count -= 1,
                    Entry::Working(_) if rest => count += 1,
                    _ => {}
                }
            }
        }
        count
    }

    /// The `n`-th working day after `start` (`start` itself never counts; `n = 0` gives `start`),
    /// or `None` when it would lie past the last date chrono represents.
    pub fn checked_add_working_days(&self, start: NaiveDate, n: u32) -> Option<NaiveDate> {
        let mut left = i64::from(n);
        if left == 0 {
            return Some(start);
        }
        // A year has at most 366 working days: fail fast instead of walking 262,000 years.
        if left > 366 * (i64::from(NaiveDate::MAX.year()) - i64::from(start.year()) + 1) {
            return None;
        }
        let mut day = start;
        loop {
            // Skip whole years while the rest of the year does not hold enough working days.
            let year_end = NaiveDate::from_ymd_opt(day.succ_opt()?.year(), 12, 31)?;
            let available = self.working_days_between(day, year_end);
            if available < left {
                left -= available;
                day = year_end;
                continue;
            }
            loop {
                day = day.succ_opt()?;
                if self.is_working_day(day) {
                    left -= 1;
                    if left == 0 {
                        return Some(day);
                    }
                }
            }
        }
    }

    /// The `n`-th working day after `start`: `start` itself never counts, so with `start` a
    /// Friday and weekends off, `n = 1` gives the Monday (if it is not a holiday); `n = 0` gives
    /// `start`.
    ///
    /// Panics only if the result would lie past chrono's last date (year 262142), which takes
    /// tens of millions of working days; see [`Calendar::checked_add_working_days`].
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        self.checked_add_working_days(start, n).expect("working day within chrono's date range")
    }
}

impl Default for Calendar {
    /// A copy of [`Calendar::default_embedded`].
    fn default() -> Calendar {
        Calendar::default_embedded().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------------------------

/// The time limit of one handling stage.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Vietnamese name of the stage.
    #[serde(default)]
    pub name: String,
    /// Working days allowed.
    pub days: u32,
    /// Legal basis, free text.
    #[serde(default)]
    pub basis: String,
}

/// Time limits of the petition handling stages, in working days of a [`Calendar`].
///
/// Built from TOML in the format of `schema/data/deadlines.toml` (a file of its own, apart from
/// the calendar: holidays are national, time limits depend on the regulation an office follows).
/// Defaults, each with its legal basis in the file: `acceptance` 10 working days (Luật Tiếp công
/// dân 2013, Điều 28), `answer` 30 working days (comparable to Luật Khiếu nại 2011, Điều 28;
/// configurable, check your local regulation), at most 15 working days of extension per
/// petition.
///
/// Counting: the day a stage starts does not count; the limit runs from the next day, and the
/// stage is due at the end (23:59:59 UTC+7) of its last working day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    stages: BTreeMap<String, Stage>,
    max_extension: u32,
    max_extension_basis: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlinesFile {
    max_extension: u32,
    #[serde(default)]
    max_extension_basis: String,
    #[serde(default)]
    stage: BTreeMap<String, Stage>,
}

impl Deadlines {
    /// The time limits shipped in `schema/data/deadlines.toml`.
    pub fn default_embedded() -> &'static Deadlines {
        static DEADLINES: OnceLock<Deadlines> = OnceLock::new();
        DEADLINES.get_or_init(|| Deadlines::from_toml(DEADLINES_TOML).expect("the shipped deadlines.toml is valid"))
    }

    /// Reads time limits from TOML in the format of `schema/data/deadlines.toml`.
    ///
    /// In: the file's text. Out: the limits, or the problem: unknown keys, a stage code that is
    /// empty or not lower-case ASCII letters, digits and `_`, a stage of 0 days.
    pub fn from_toml(source: &str) -> Result<Deadlines, CalendarError> {
        let file: DeadlinesFile = toml::from_str(source).map_err(|error| CalendarError::Toml(error.to_string()))?;
        for (code, stage) in &file.stage {
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(CalendarError::Invalid(format!("stage code `{code}` must be lower-case ASCII")));
            }
            if stage.days == 0 {
                return Err(CalendarError::Invalid(format!("stage `{code}` has 0 days")));
            }
        }
        Ok(Deadlines {
            stages: file.stage,
            max_extension: file.max_extension,
            max_extension_basis: file.max_extension_basis,
        })
    }

    /// The working days allowed for `stage` (`acceptance`, `answer`), or `None` for an unknown
    /// stage.
    pub fn stage_days(&self, stage: &str) -> Option<u32> {
        self.stages.get(stage).map(|stage| stage.days)
    }

    /// The full definition of `stage`, with its name and legal basis.
    pub fn stage(&self, stage: &str) -> Option<&Stage> {
        self.stages.get(stage)
    }

    /// Every stage, by code, in code order.
    pub fn stages(&self) -> impl Iterator<Item = (&str, &Stage)> {
        self.stages.iter().map(|(code, stage)| (code.as_str(), stage))
    }

    /// The most working days one petition may be extended by, in total.
    pub fn max_extension(&self) -> u32 {
        self.max_extension
    }

    /// The legal basis of [`Deadlines::max_extension`], free text.
    pub fn max_extension_basis(&self) -> &str {
        &self.max_extension_basis
    }

    /// When `stage`, started at `start`, is due: the end (23:59:59 UTC+7, returned in UTC) of the
    /// working day that is the (stage days + `extension_days`)-th after the Vietnamese date of
    /// `start` (that date itself does not count, whatever the hour).
    ///
    /// Out: `None` for an unknown stage, for `extension_days` above
    /// [`Deadlines::max_extension`] (no lawful deadline; the caller keeps the per-petition total
    /// within it), or past chrono's range.
    pub fn due(
        &self,
        calendar: &Calendar,
        stage: &str,
        start: DateTime<Utc>,
        extension_days: u32,
    ) -> Option<DateTime<Utc>> {
        if extension_days > self.max_extension {
            return None;
        }
        let days = self.stage_days(stage)?.checked_add(extension_days)?;
        let last = calendar.checked_add_working_days(vietnam_date(start), days)?;
        let end = last.and_hms_opt(23, 59, 59)?;
        Some(vietnam_offset().from_local_datetime(&end).single()?.with_timezone(&Utc))
    }
}

impl Default for Deadlines {
    /// A copy of [`Deadlines::default_embedded`].
    fn default() -> Deadlines {
        Deadlines::default_embedded().clone()
    }
}

/// Whether a stage due at `due` is overdue at `now`: strictly after the due instant.
pub fn overdue(due: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now > due
}

/// How many working days late `at` is for a stage due at `due`: the working days in
/// (Vietnamese date of `due`, Vietnamese date of `at`], so any moment of the first working day
/// after the deadline counts 1. Out: 0 when `at` is not after `due` (and also when only rest
/// days or holidays have passed since, although [`overdue`] is then true).
pub fn working_days_late(calendar: &Calendar, due: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    if !overdue(due, at) {
        return 0;
    }
    calendar.working_days_between(vietnam_date(due), vietnam_date(at)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn lunar(year: i32, month: u32, day: u32, leap: bool) -> LunarDate {
        LunarDate { year, month, day, leap }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn tet_dates() {
        for (year, tet) in [
            (2023, date(2023, 1, 22)),
            (2024, date(2024, 2, 10)),
            (2025, date(2025, 1, 29)),
            (2026, date(2026, 2, 17)),
            (2027, date(2027, 2, 6)),
        ] {
            assert_eq!(lunar_to_solar(year, 1, 1, false), Some(tet), "Tết {year}");
            assert_eq!(solar_to_lunar(tet), lunar(year, 1, 1, false));
            assert_eq!(solar_to_lunar(tet.pred_opt().unwrap()).year, year - 1);
        }
    }

    #[test]
    fn tet_follows_utc_plus_7_not_china() {
        // The new moon of 17 Feb 2007 was at 16:14 UTC: the 17th in Vietnam, the 18th in China.
        assert_eq!(lunar_to_solar(2007, 1, 1, false), Some(date(2007, 2, 17)));
        // Same in 2030: new moon on 2 Feb at 16:07 UTC, Tết on 2/2/2030 in Vietnam, 3/2 in China.
        assert_eq!(lunar_to_solar(2030, 1, 1, false), Some(date(2030, 2, 2)));
        assert_eq!(solar_to_lunar(date(2030, 2, 3)), lunar(2030, 1, 2, false));
        // 1985: Vietnam's month 11 and leap month differ from China's; Tết came a month earlier.
        assert_eq!(lunar_to_solar(1985, 1, 1, false), Some(date(1985, 1, 21)));
        // 1968: the North (UTC+7) celebrated on 29 January, the South (UTC+8) on the 30th.
        assert_eq!(lunar_to_solar(1968, 1, 1, false), Some(date(1968, 1, 29)));
    }

    #[test]
    fn hung_kings_commemoration_dates() {
        for (year, day) in [(2024, date(2024, 4, 18)), (2025, date(2025, 4, 7)), (2026, date(2026, 4, 26))] {
            assert_eq!(lunar_to_solar(year, 3, 10, false), Some(day), "Giỗ Tổ {year}");
            assert_eq!(solar_to_lunar(day), lunar(year, 3, 10, false));
        }
    }

    #[test]
    fn leap_months() {
        assert_eq!(leap_month(2023), Some(2));
        assert_eq!(leap_month(2025), Some(6));
        assert_eq!(leap_month(2024), None);
        assert_eq!(leap_month(2026), None);
        assert_eq!(leap_month(2020), Some(4));
        assert_eq!(leap_month(2033), Some(11));
        // Tháng 2 nhuận Quý Mão and tháng 6 nhuận Ất Tỵ.
        assert_eq!(lunar_to_solar(2023, 2, 1, true), Some(date(2023, 3, 22)));
        assert_eq!(lunar_to_solar(2023, 3, 1, false), Some(date(2023, 4, 20)));
        assert_eq!(lunar_to_solar(2025, 6, 1, true), Some(date(2025, 7, 25)));
        assert_eq!(lunar_to_solar(2025, 7, 1, false), Some(date(2025, 8, 23)));
        assert_eq!(solar_to_lunar(date(2025, 8, 1)), lunar(2025, 6, 8, true));
        assert_eq!(lunar_to_solar(2023, 3, 1, true), None);
        assert_eq!(lunar_to_solar(2024, 2, 1, true), None);
        assert_eq!(lunar(2023, 2, 1, true).to_string(), "1/2 nhuận/2023");
    }

    #[test]
    fn lunar_dates_that_do_not_exist() {
        // Tết Ất Tỵ had no 30 Tết (month 12 of lunar 2024 has 29 days); Tết Giáp Thìn had one.
        assert_eq!(solar_to_lunar(date(2025, 1, 28)), lunar(2024, 12, 29, false));
        assert_eq!(lunar_to_solar(2024, 12, 30, false), None);
        assert_eq!(lunar_month_days(2024, 12, false), Some(29));
        assert_eq!(solar_to_lunar(date(2024, 2, 9)), lunar(2023, 12, 30, false));
        assert_eq!(lunar_month_days(2023, 12, false), Some(30));
        // The mean lunation alone puts these days in the wrong month (day 0 of the next one).
        assert_eq!(solar_to_lunar(date(2054, 5, 7)), lunar(2054, 3, 30, false));
        assert_eq!(solar_to_lunar(date(2062, 4, 9)), lunar(2062, 2, 30, false));
        assert_eq!(lunar_to_solar(2025, 13, 1, false), None);
        assert_eq!(lunar_to_solar(2025, 0, 1, false), None);
        assert_eq!(lunar_to_solar(2025, 1, 31, false), None);
        assert_eq!(lunar_to_solar(2025, 1, 0, false), None);
        assert_eq!(lunar_to_solar(1899, 6, 1, false), None);
        assert_eq!(lunar_to_solar(2200, 6, 1, false), None);
        assert_eq!(lunar_to_solar(1900, 1, 1, false), Some(date(1900, 1, 31)));
        assert!(lunar_to_solar(2199, 12, 1, false).is_some());
    }

    #[test]
    fn lunar_calendar_is_consistent_day_by_day_1900_to_2199() {
        let first = lunar_to_solar(1900, 1, 1, false).unwrap();
        let last = lunar_to_solar(2200 - 1, 12, 1, false).unwrap();
        let mut previous = solar_to_lunar(first);
        assert_eq!(previous, lunar(1900, 1, 1, false));
        let mut months_in_year = 1;
        let mut month_length = 1;
        for day in first.iter_days().skip(1).take_while(|day| *day <= last) {
            let current = solar_to_lunar(day);
            assert_eq!(current.to_solar(), Some(day), "{current}");
            if current.day == 1 {
                assert!(month_length == 29 || month_length == 30, "{previous} ends a month of {month_length} days");
                month_length = 1;
                if current.leap {
                    assert_eq!((current.year, current.month), (previous.year, previous.month), "leap {current}");
                    assert!(!previous.leap);
                    months_in_year += 1;
                } else if current.month == 1 {
                    assert_eq!((current.year, previous.month), (previous.year + 1, 12), "{previous} -> {current}");
                    assert!(months_in_year == 12 || months_in_year == 13, "{} has {months_in_year}", previous.year);
                    assert_eq!(months_in_year == 13, leap_month(previous.year).is_some(), "{}", previous.year);
                    months_in_year = 1;
                } else {
                    assert_eq!((current.year, current.month), (previous.year, previous.month + 1), "{current}");
                    months_in_year += 1;
                }
            } else {
                month_length += 1;
                assert_eq!(
                    (current.year, current.month, current.day, current.leap),
                    (previous.year, previous.month, previous.day + 1, previous.leap)
                );
            }
            previous = current;
        }
    }

    proptest::proptest! {
        #[test]
        fn calendar_lunar_round_trip(offset in 0i64..109_500) {
            let day = date(1900, 1, 31) + chrono::TimeDelta::days(offset);
            let lunar = solar_to_lunar(day);
            proptest::prop_assert!(LUNAR_YEARS.contains(&lunar.year));
            proptest::prop_assert_eq!(lunar.to_solar(), Some(day));
        }
    }

    #[test]
    fn solar_to_lunar_never_panics_at_the_extremes() {
        for day in [NaiveDate::MIN, NaiveDate::MAX, date(1, 1, 1), date(-4713, 11, 24), date(9999, 12, 31)] {
            let lunar = solar_to_lunar(day);
            assert!((1..=12).contains(&lunar.month) && (1..=30).contains(&lunar.day));
        }
    }

    const RULES_ONLY: &str = r#"
        weekend = ["saturday", "chủ nhật"]
        [[holiday]]
        name = "Ngày Chiến thắng"
        calendar = "solar"
        month = 4
        day = 30
        [[holiday]]
        name = "Ngày Quốc tế Lao động"
        calendar = "solar"
        month = 5
        day = 1
        [[holiday]]
        name = "Cuối năm"
        calendar = "solar"
        month = 12
        day = 31
    "#;

    #[test]
    fn calendar_compensatory_day_is_next_working_day() {
        let calendar = Calendar::from_toml(RULES_ONLY).unwrap();
        // 2022: 30/4 a Saturday and 1/5 a Sunday: nghỉ bù Monday 2/5 and Tuesday 3/5.
        assert_eq!(calendar.holiday_name(date(2022, 4, 30)), Some("Ngày Chiến thắng"));
        assert_eq!(calendar.holiday_name(date(2022, 5, 2)), Some("Nghỉ bù Ngày Chiến thắng"));
        assert_eq!(calendar.holiday_name(date(2022, 5, 3)), Some("Nghỉ bù Ngày Quốc tế Lao động"));
        assert!(calendar.is_working_day(date(2022, 5, 4)));
        // 2021: 1/5 a Saturday, nghỉ bù Monday 3/5; 30/4 a Friday stays a plain holiday.
        assert!(!calendar.is_working_day(date(2021, 4, 30)));
        assert_eq!(calendar.holiday_name(date(2021, 5, 3)), Some("Nghỉ bù Ngày Quốc tế Lao động"));
        assert!(calendar.is_working_day(date(2021, 5, 4)));
        // 31/12/2022 a Saturday: nghỉ bù in the next year, Monday 2/1/2023.
        assert_eq!(calendar.holiday_name(date(2023, 1, 2)), Some("Nghỉ bù Cuối năm"));
        assert_eq!(
            calendar.holidays(2023),
            vec![
                (date(2023, 1, 2), "Nghỉ bù Cuối năm".to_owned()),
                (date(2023, 4, 30), "Ngày Chiến thắng".to_owned()),
                (date(2023, 5, 1), "Ngày Quốc tế Lao động".to_owned()),
                (date(2023, 5, 2), "Nghỉ bù Ngày Chiến thắng".to_owned()),
                (date(2023, 12, 31), "Cuối năm".to_owned()),
            ]
        );
        let without = Calendar::from_toml(&format!("compensatory = false\n{RULES_ONLY}")).unwrap();
        assert!(without.is_working_day(date(2022, 5, 2)));
    }

    #[test]
    fn calendar_default_holidays_2026() {
        let calendar = Calendar::default_embedded();
        let days: Vec<NaiveDate> = calendar.holidays(2026).into_iter().map(|(date, _)| date).collect();
        assert_eq!(
            days,
            vec![
                date(2026, 1, 1),
                date(2026, 2, 16),
                date(2026, 2, 17),
                date(2026, 2, 18),
                date(2026, 2, 19),
                date(2026, 2, 20),
                date(2026, 4, 26), // Giỗ Tổ on a Sunday
                date(2026, 4, 27), // its nghỉ bù
                date(2026, 4, 30),
                date(2026, 5, 1),
                date(2026, 9, 1),
                date(2026, 9, 2),
            ]
        );
        assert_eq!(calendar.holiday_name(date(2026, 4, 27)), Some("Nghỉ bù Giỗ Tổ Hùng Vương"));
        assert_eq!(calendar.holiday_name(date(2026, 2, 16)), Some("Tết Âm lịch"));
        assert_eq!(calendar.holiday_name(date(2026, 2, 14)), None); // a plain Saturday
        assert_eq!(calendar.day(date(2026, 2, 14)), DayKind::Weekend);
    }

    #[test]
    fn calendar_national_day_2023_and_new_year_2022() {
        let calendar = Calendar::default_embedded();
        // 2/9/2023 was a Saturday: 1/9 and 2/9 off, nghỉ bù Monday 4/9 (as decided that year).
        assert_eq!(date(2023, 9, 2).weekday(), Weekday::Sat);
        assert_eq!(calendar.holiday_name(date(2023, 9, 1)), Some("Quốc khánh"));
        assert_eq!(calendar.holiday_name(date(2023, 9, 4)), Some("Nghỉ bù Quốc khánh"));
        assert!(calendar.is_working_day(date(2023, 9, 5)));
        // 1/1/2022 was a Saturday: nghỉ bù Monday 3/1/2022.
        assert_eq!(calendar.holiday_name(date(2022, 1, 3)), Some("Nghỉ bù Tết Dương lịch"));
    }

    #[test]
    fn calendar_decisions_2025() {
        let calendar = Calendar::default_embedded();
        // Tết Ất Tỵ: 25/1 to 2/2/2025, 27/1 swapped for Saturday 8/2.
        for day in date(2025, 1, 25).iter_days().take(9) {
            assert_eq!(calendar.holiday_name(day), Some("Tết Âm lịch"), "{day}");
        }
        assert!(calendar.is_working_day(date(2025, 1, 24)));
        assert!(calendar.is_working_day(date(2025, 2, 3))); // no nghỉ bù: the decision replaces it
        assert!(calendar.is_working_day(date(2025, 2, 8)));
        assert_eq!(calendar.day(date(2025, 2, 8)), DayKind::DecidedWorkingDay("Làm bù cho thứ Hai 27/01/2025"));
        // 30/4–1/5: Friday 2/5 off, Saturday 26/4 worked.
        assert!(!calendar.is_working_day(date(2025, 5, 2)));
        assert!(calendar.is_working_day(date(2025, 4, 26)));
        assert!(!calendar.is_working_day(date(2025, 5, 3)));
        // Quốc khánh: Monday 1/9 and Tuesday 2/9.
        assert!(!calendar.is_working_day(date(2025, 9, 1)));
        assert!(!calendar.is_working_day(date(2025, 9, 2)));
        assert!(calendar.is_working_day(date(2025, 9, 3)));
        // Giỗ Tổ: Monday 7/4/2025.
        assert_eq!(calendar.holiday_name(date(2025, 4, 7)), Some("Giỗ Tổ Hùng Vương"));
    }

    #[test]
    fn calendar_add_working_days_across_tet_2026() {
        let calendar = Calendar::default_embedded();
        // Thursday 12/2/2026; Tết Bính Ngọ keeps 14/2 to 22/2 off.
        let start = date(2026, 2, 12);
        assert_eq!(calendar.add_working_days(start, 0), start);
        assert_eq!(calendar.add_working_days(start, 1), date(2026, 2, 13));
        assert_eq!(calendar.add_working_days(start, 2), date(2026, 2, 23));
        assert_eq!(calendar.add_working_days(start, 10), date(2026, 3, 5));
        assert_eq!(calendar.working_days_between(start, date(2026, 2, 23)), 2);
        assert_eq!(calendar.working_days_between(date(2026, 2, 23), start), -2);
        assert_eq!(calendar.working_days_between(start, start), 0);
        assert_eq!(calendar.working_days_between(date(2026, 2, 13), date(2026, 2, 22)), 0);
    }

    #[test]
    fn calendar_working_day_counts_agree_with_day_by_day_walk() {
        let calendar = Calendar::default_embedded();
        let start = date(2022, 12, 20);
        let mut expected = 0;
        for day in start.iter_days().skip(1).take(3 * 366) {
            if calendar.is_working_day(day) {
                expected += 1;
                assert_eq!(calendar.add_working_days(start, expected as u32), day);
            }
            assert_eq!(calendar.working_days_between(start, day), expected, "{day}");
        }
        // Working days of whole years: 2025 has 365 - 104 weekend days - 12 weekday days off + 2
        // làm bù Saturdays.
        assert_eq!(calendar.working_days_between(date(2024, 12, 31), date(2025, 12, 31)), 251);
        assert_eq!(calendar.add_working_days(date(2024, 12, 31), 251), date(2025, 12, 31));
        // Long spans use whole-year jumps and stay consistent.
        let far = calendar.add_working_days(date(2000, 1, 1), 100_000);
        assert_eq!(calendar.working_days_between(date(2000, 1, 1), far), 100_000);
        assert!(calendar.checked_add_working_days(date(2000, 1, 1), u32::MAX).is_none());
    }

    #[test]
    fn calendar_config_errors() {
        assert!(matches!(Calendar::from_toml("weekend = 3"), Err(CalendarError::Toml(_))));
        assert!(matches!(Calendar::from_toml("weekend = []\nholidays = []"), Err(CalendarError::Toml(_))));
        assert!(matches!(Calendar::from_toml(r#"weekend = ["caturday"]"#), Err(CalendarError::Invalid(_))));
        let all = r#"weekend = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]"#;
        assert!(matches!(Calendar::from_toml(all), Err(CalendarError::Invalid(_))));
        let bad_day = "weekend = []\n[[holiday]]\nname = \"x\"\ncalendar = \"lunar\"\nmonth = 1\nday = 31";
        assert!(matches!(Calendar::from_toml(bad_day), Err(CalendarError::Invalid(_))));
        let unknown = "weekend = []\n[[year]]\nyear = 2025\nreplace = [\"Tết\"]";
        assert!(matches!(Calendar::from_toml(unknown), Err(CalendarError::Invalid(_))));
        let outside = "weekend = []\n[[year]]\nyear = 2025\ndays_off = [{ date = 2024-12-31, name = \"x\" }]";
        assert!(matches!(Calendar::from_toml(outside), Err(CalendarError::Invalid(_))));
        let not_date = "weekend = []\n[[year]]\nyear = 2025\ndays_off = [{ date = 2025-12-31T10:00:00, name = \"x\" }]";
        assert!(matches!(Calendar::from_toml(not_date), Err(CalendarError::Invalid(_))));
        let twice = "weekend = []\n[[year]]\nyear = 2025\n[[year]]\nyear = 2025";
        assert!(matches!(Calendar::from_toml(twice), Err(CalendarError::Invalid(_))));
    }

    #[test]
    fn calendar_embedded_files_parse_and_clone() {
        let calendar = Calendar::default_embedded();
        assert_eq!(calendar.rules().len(), 6);
        assert!(calendar.rules().iter().all(|rule| rule.basis.contains("Bộ luật Lao động 2019")));
        assert!(calendar.compensatory_basis().contains("Điều 111 khoản 3"));
        assert!(calendar.weekend_basis().contains("Điều 111"));
        assert!(calendar.decision_basis(2025).is_some());
        assert_eq!(calendar.decision_basis(2026), None);
        let copy = Calendar::default();
        assert_eq!(copy.holidays(2025), calendar.holidays(2025));
        let deadlines = Deadlines::default_embedded();
        assert_eq!(deadlines.stage_days("acceptance"), Some(10));
        assert_eq!(deadlines.stage_days("answer"), Some(30));
        assert_eq!(deadlines.stage_days("appeal"), None);
        assert_eq!(deadlines.max_extension(), 15);
        assert!(deadlines.stage("acceptance").unwrap().basis.contains("Luật Tiếp công dân 2013"));
        assert_eq!(deadlines.stages().count(), 2);
    }

    #[test]
    fn calendar_deadlines_due_and_lateness() {
        let calendar = Calendar::default_embedded();
        let deadlines = Deadlines::default_embedded();
        // Received Friday 1/3/2024 at 10:00 in Hà Nội: 10 working days from Monday 4/3, due at
        // the end of Friday 15/3 (16:59:59 UTC).
        let start = utc("2024-03-01T10:00:00+07:00");
        let due = deadlines.due(calendar, "acceptance", start, 0).unwrap();
        assert_eq!(due, utc("2024-03-15T23:59:59+07:00"));
        // 23:30 UTC on 29/2 is already 1/3 in Vietnam: same deadline.
        assert_eq!(deadlines.due(calendar, "acceptance", utc("2024-02-29T23:30:00Z"), 0), Some(due));
        // Accepted Thursday 12/2/2026, before Tết: 30 working days, then 5 more of extension.
        let accepted = utc("2026-02-12T09:00:00+07:00");
        assert_eq!(deadlines.due(calendar, "answer", accepted, 0), Some(utc("2026-04-02T23:59:59+07:00")));
        assert_eq!(deadlines.due(calendar, "answer", accepted, 5), Some(utc("2026-04-09T23:59:59+07:00")));
        assert_eq!(deadlines.due(calendar, "answer", accepted, 15), Some(utc("2026-04-23T23:59:59+07:00")));
        assert_eq!(deadlines.due(calendar, "answer", accepted, 16), None);
        assert_eq!(deadlines.due(calendar, "appeal", accepted, 0), None);

        assert!(!overdue(due, due));
        assert!(overdue(due, due + chrono::TimeDelta::seconds(1)));
        assert_eq!(working_days_late(calendar, due, due), 0);
        assert_eq!(working_days_late(calendar, due, utc("2024-03-16T10:00:00+07:00")), 0); // Saturday
        assert_eq!(working_days_late(calendar, due, utc("2024-03-18T00:00:00+07:00")), 1); // Monday
        assert_eq!(working_days_late(calendar, due, utc("2024-03-22T18:00:00+07:00")), 5);
        assert_eq!(working_days_late(calendar, due, utc("2024-03-01T10:00:00+07:00")), 0);
    }

    #[test]
    fn calendar_deadlines_config_errors() {
        assert!(matches!(Deadlines::from_toml("max_extension = -1"), Err(CalendarError::Toml(_))));
        let zero = "max_extension = 0\n[stage.answer]\ndays = 0";
        assert!(matches!(Deadlines::from_toml(zero), Err(CalendarError::Invalid(_))));
        let code = "max_extension = 0\n[stage.Answer]\ndays = 3";
        assert!(matches!(Deadlines::from_toml(code), Err(CalendarError::Invalid(_))));
        let custom = Deadlines::from_toml("max_extension = 0\n[stage.review]\ndays = 3").unwrap();
        assert_eq!(custom.stage_days("review"), Some(3));
        assert_eq!(custom.stage_days("answer"), None);
    }
}
