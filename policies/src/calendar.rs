//! 工作日历: China's official working-day calendar, as data.
//!
//! Working days follow the State Council's yearly notice (国务院办公厅关于<year>年部分节假日安排的通知):
//! weekends and statutory holidays are off, make-up working days (调休上班) count. One TOML file per
//! year under `calendar/` (`2026.toml`), citing its notice; `calendar/generate.py` makes them from the
//! MIT-licensed `chinesecalendar` package and each file is checked by hand against its notice.
//!
//! Invariants checked at load (errors name the file and key):
//! - the file name is `<year>.toml` and its `year` key says the same year;
//! - every make-up working day lies in that year and falls on a Saturday or Sunday;
//! - every holiday range ends in that year and starts in that year or, for the New Year's Day
//!   holiday, in the previous December (the 2023 notice's holiday began on 2022-12-31);
//! - no date is listed twice (two holiday ranges overlapping, a make-up day repeated) and no date is
//!   both a holiday and a make-up day, across all files;
//! - no unknown keys.
//!
//! A date in a year without a file is counted Monday–Friday and every answer that depends on it is
//! marked **provisional**: never a silent guess. Callers keep the start and the rule, not the
//! computed date, so a deadline is recomputed when the year's file is loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::{Date, Month, Weekday};

use crate::engine::{files_with_ext, read};
use crate::error::PolicyError;
use crate::toml_util as t;

/// Why a calendar directory or file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A calendar file with a bad name, key or value.
    #[error("{}: {key}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        /// Dotted key path, e.g. `holiday[2].from`.
        key: String,
        message: String,
    },
}

impl CalendarError {
    fn invalid(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        CalendarError::Invalid {
            file: file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl From<PolicyError> for CalendarError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Io { path, source } => CalendarError::Io { path, source },
            PolicyError::Toml { file, key, message } => {
                CalendarError::Invalid { file, key, message }
            }
            PolicyError::Missing { path, what } => CalendarError::invalid(&path, "(file)", what),
            other @ PolicyError::Cedar { .. } => {
                CalendarError::invalid(Path::new("calendar"), "(file)", other.to_string())
            }
        }
    }
}

impl From<CalendarError> for PolicyError {
    fn from(e: CalendarError) -> Self {
        match e {
            CalendarError::Io { path, source } => PolicyError::Io { path, source },
            CalendarError::Invalid { file, key, message } => {
                PolicyError::Toml { file, key, message }
            }
        }
    }
}

/// 国务院节假日安排通知: the notice a year's file is taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// e.g. 国务院办公厅关于2026年部分节假日安排的通知
    pub title: String,
    /// 文号, e.g. 国办发明电〔2025〕7号
    pub number: String,
    /// The date the notice was issued.
    pub issued: Date,
}

/// 法定节假日: one holiday range of a notice (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayRange {
    pub name_zh: String,
    pub name_en: String,
    pub from: Date,
    pub to: Date,
}

/// 调休上班: a Saturday or Sunday that is a working day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeUpWorkday {
    pub date: Date,
    /// The holiday it makes up for.
    pub for_zh: String,
    pub for_en: String,
}

/// One year's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarYear {
    pub year: i32,
    pub notice: Notice,
    pub holidays: Vec<HolidayRange>,
    pub makeup_workdays: Vec<MakeUpWorkday>,
}

/// What kind of day a date is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayKind {
    /// 工作日: Monday–Friday, not a holiday.
    Working,
    /// 周末: Saturday or Sunday, not a make-up working day.
    Weekend,
    /// 法定节假日 (includes the weekend days inside a holiday range).
    Holiday { name_zh: String, name_en: String },
    /// 调休上班: a weekend day that is worked.
    MakeUpWorkday { for_zh: String, for_en: String },
}

/// A date's kind, and whether it is provisional (its year has no file, so only Monday–Friday is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub kind: DayKind,
    pub provisional: bool,
}

impl Day {
    /// True for a working day (Monday–Friday outside holidays, or a make-up day).
    pub fn is_working(&self) -> bool {
        matches!(self.kind, DayKind::Working | DayKind::MakeUpWorkday { .. })
    }
}

/// A date computed on the calendar; `provisional` when any day counted lies in a year without a
/// file (counted Monday–Friday): recompute once that year's file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline {
    pub date: Date,
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Special {
    Holiday(i32, usize),
    MakeUp(i32, usize),
}

/// 工作日历: the loaded year files. Cheap to query; clone it or share it behind an `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkingCalendar {
    years: BTreeMap<i32, CalendarYear>,
    /// Every holiday and make-up date → (year, index) of its entry.
    special: BTreeMap<Date, Special>,
}

impl WorkingCalendar {
    /// A calendar with no year files: every date is provisional, counted Monday–Friday.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The calendar directory shipped with this crate (`policies/calendar`).
    pub fn shipped_dir() -> PathBuf {
        crate::PolicyEngine::shipped_dir().join(crate::engine::CALENDAR_DIR)
    }

    /// Load and validate every `*.toml` in `dir` (one file per year).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, CalendarError> {
        let mut cal = WorkingCalendar::default();
        for file in files_with_ext(dir.as_ref(), "toml")? {
            let src = read(&file)?;
            let year = parse_year_file(&file, &src)?;
            cal.insert(&file, year)?;
        }
        Ok(cal)
    }

    fn insert(&mut self, file: &Path, y: CalendarYear) -> Result<(), CalendarError> {
        if self.years.contains_key(&y.year) {
            return Err(CalendarError::invalid(
                file,
                "year",
                format!("year {} is loaded twice", y.year),
            ));
        }
        let clash = |d: Date, prev: &Special, years: &BTreeMap<i32, CalendarYear>| {
            let what = match prev {
                // The clash may be with this file (not yet in `years`) or an earlier one.
                Special::Holiday(yr, i) => {
                    let holidays = match years.get(yr) {
                        Some(other) => &other.holidays,
                        None => &y.holidays,
                    };
                    let name = holidays.get(*i).map_or("?", |h| h.name_en.as_str());
                    format!("holiday {name}")
                }
                Special::MakeUp(_, _) => "a make-up working day".to_owned(),
            };
            format!("{d} is already listed as {what}")
        };
        for (i, h) in y.holidays.iter().enumerate() {
            let mut d = h.from;
            loop {
                if let Some(prev) = self.special.get(&d) {
                    return Err(CalendarError::invalid(
                        file,
                        format!("holiday[{i}]"),
                        clash(d, prev, &self.years),
                    ));
                }
                self.special.insert(d, Special::Holiday(y.year, i));
                if d >= h.to {
                    break;
                }
                let Some(next) = d.next_day() else { break };
                d = next;
            }
        }
        for (i, m) in y.makeup_workdays.iter().enumerate() {
            if let Some(prev) = self.special.get(&m.date) {
                return Err(CalendarError::invalid(
                    file,
                    format!("makeup_workday[{i}].date"),
                    clash(m.date, prev, &self.years),
                ));
            }
            self.special.insert(m.date, Special::MakeUp(y.year, i));
        }
        self.years.insert(y.year, y);
        Ok(())
    }

    /// True when `year`'s file is loaded.
    pub fn has_year(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The loaded years, ascending.
    pub fn years(&self) -> impl Iterator<Item = &CalendarYear> {
        self.years.values()
    }

    /// From 1 December, next year's number when its file is missing (a warning for `/readyz`).
    pub fn missing_next_year(&self, today: Date) -> Option<i32> {
        let next = today.year() + 1;
        (today.month() == Month::December && !self.has_year(next)).then_some(next)
    }

    /// What kind of day `d` is, and whether that is provisional.
    pub fn day(&self, d: Date) -> Day {
        let provisional = !self.has_year(d.year());
        let weekend = matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday);
        let kind = match self.special.get(&d) {
            Some(Special::Holiday(y, i)) => {
                let h = &self.years[y].holidays[*i];
                DayKind::Holiday {
                    name_zh: h.name_zh.clone(),
                    name_en: h.name_en.clone(),
                }
            }
            Some(Special::MakeUp(y, i)) => {
                let m = &self.years[y].makeup_workdays[*i];
                DayKind::MakeUpWorkday {
                    for_zh: m.for_zh.clone(),
                    for_en: m.for_en.clone(),
                }
            }
            None if weekend => DayKind::Weekend,
            None => DayKind::Working,
        };
        Day { kind, provisional }
    }

    /// True when `d` is a working day (provisionally so, Monday–Friday, when its year has no file).
    pub fn is_working_day(&self, d: Date) -> bool {
        self.day(d).is_working()
    }

    /// The `n`-th working day after `start` (`start` itself is not counted; `n = 0` is `start`).
    pub fn add_working_days(&self, start: Date, n: u32) -> Deadline {
        let mut date = start;
        let mut provisional = false;
        let mut counted = 0;
        while counted < n {
            let Some(next) = date.next_day() else {
                // Date::MAX: nothing lies beyond it; the answer cannot be final.
                return Deadline {
                    date,
                    provisional: true,
                };
            };
            date = next;
            let day = self.day(date);
            provisional |= day.provisional;
            if day.is_working() {
                counted += 1;
            }
        }
        Deadline { date, provisional }
    }

    /// Working days in `(from, to]` (0 when `to <= from`), and whether any day counted over lies in
    /// a year without a file. `working_days_between(s, add_working_days(s, n).date).0 == n`.
    pub fn working_days_between(&self, from: Date, to: Date) -> (u32, bool) {
        let mut count = 0;
        let mut provisional = false;
        let mut d = from;
        while d < to {
            let Some(next) = d.next_day() else { break };
            d = next;
            let day = self.day(d);
            provisional |= day.provisional;
            if day.is_working() {
                count += 1;
            }
        }
        (count, provisional)
    }
}

const YEAR_KEYS: &[&str] = &["year", "notice", "holiday", "makeup_workday"];
const NOTICE_KEYS: &[&str] = &["title", "number", "issued"];
const HOLIDAY_KEYS: &[&str] = &["name_zh", "name_en", "from", "to"];
const MAKEUP_KEYS: &[&str] = &["date", "for_zh", "for_en"];

fn parse_year_file(file: &Path, src: &str) -> Result<CalendarYear, CalendarError> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let name_year: i32 = match stem.parse() {
        Ok(y) if stem.len() == 4 && (1949..=9998).contains(&y) => y,
        _ => {
            return Err(CalendarError::invalid(
                file,
                "(file name)",
                "must be <year>.toml, e.g. 2026.toml",
            ));
        }
    };
    let doc = t::parse(file, src)?;
    t::only_keys(file, "", &doc, YEAR_KEYS)?;
    let year = t::int(
        file,
        "year",
        t::required(file, "", &doc, "year")?,
        1949,
        9998,
    )? as i32;
    if year != name_year {
        return Err(CalendarError::invalid(
            file,
            "year",
            format!("{year} does not match the file name ({name_year}.toml)"),
        ));
    }

    let notice = t::table(file, "notice", t::required(file, "", &doc, "notice")?)?;
    t::only_keys(file, "notice", notice, NOTICE_KEYS)?;
    let text = |key: &str| -> Result<String, CalendarError> {
        let v = t::required(file, "notice", notice, key)?;
        let s = t::string(file, &t::join("notice", key), v)?;
        nonempty(file, &t::join("notice", key), s)
    };
    let notice = Notice {
        title: text("title")?,
        number: text("number")?,
        issued: date(
            file,
            "notice.issued",
            t::required(file, "notice", notice, "issued")?,
        )?,
    };

    let mut holidays = Vec::new();
    for (i, h) in tables(file, &doc, "holiday")?.into_iter().enumerate() {
        let key = format!("holiday[{i}]");
        t::only_keys(file, &key, h, HOLIDAY_KEYS)?;
        let from = date(
            file,
            &format!("{key}.from"),
            t::required(file, &key, h, "from")?,
        )?;
        let to = date(
            file,
            &format!("{key}.to"),
            t::required(file, &key, h, "to")?,
        )?;
        if to.year() != year {
            return Err(CalendarError::invalid(
                file,
                format!("{key}.to"),
                format!("{to} is not in {year}"),
            ));
        }
        let starts_in_year = from.year() == year;
        let new_year_eve = from.year() == year - 1 && from.month() == Month::December;
        if !(starts_in_year || new_year_eve) {
            return Err(CalendarError::invalid(
                file,
                format!("{key}.from"),
                format!(
                    "{from} is not in {year} (only a holiday range may begin in the previous December)"
                ),
            ));
        }
        if from > to {
            return Err(CalendarError::invalid(
                file,
                format!("{key}.from"),
                format!("{from} is after {key}.to ({to})"),
            ));
        }
        holidays.push(HolidayRange {
            name_zh: string_key(file, &key, h, "name_zh")?,
            name_en: string_key(file, &key, h, "name_en")?,
            from,
            to,
        });
    }

    let mut makeup_workdays = Vec::new();
    for (i, m) in tables(file, &doc, "makeup_workday")?
        .into_iter()
        .enumerate()
    {
        let key = format!("makeup_workday[{i}]");
        t::only_keys(file, &key, m, MAKEUP_KEYS)?;
        let d = date(
            file,
            &format!("{key}.date"),
            t::required(file, &key, m, "date")?,
        )?;
        if d.year() != year {
            return Err(CalendarError::invalid(
                file,
                format!("{key}.date"),
                format!("{d} is not in {year}"),
            ));
        }
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            return Err(CalendarError::invalid(
                file,
                format!("{key}.date"),
                format!(
                    "{d} is a {}: a make-up working day (调休上班) falls on a Saturday or Sunday",
                    d.weekday()
                ),
            ));
        }
        makeup_workdays.push(MakeUpWorkday {
            date: d,
            for_zh: string_key(file, &key, m, "for_zh")?,
            for_en: string_key(file, &key, m, "for_en")?,
        });
    }

    Ok(CalendarYear {
        year,
        notice,
        holidays,
        makeup_workdays,
    })
}

/// An optional array of tables (`[[holiday]]`).
fn tables<'a>(
    file: &Path,
    doc: &'a toml::Table,
    key: &str,
) -> Result<Vec<&'a toml::Table>, CalendarError> {
    let Some(v) = doc.get(key) else {
        return Ok(Vec::new());
    };
    let arr = v.as_array().ok_or_else(|| {
        CalendarError::invalid(
            file,
            key,
            format!(
                "must be an array of tables ([[{key}]]), got {}",
                v.type_str()
            ),
        )
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, item)| t::table(file, &format!("{key}[{i}]"), item).map_err(CalendarError::from))
        .collect()
}

fn string_key(
    file: &Path,
    prefix: &str,
    table: &toml::Table,
    key: &str,
) -> Result<String, CalendarError> {
    let path = t::join(prefix, key);
    let s = t::string(file, &path, t::required(file, prefix, table, key)?)?;
    nonempty(file, &path, s)
}

fn nonempty(file: &Path, key: &str, s: &str) -> Result<String, CalendarError> {
    if s.trim().is_empty() {
        return Err(CalendarError::invalid(file, key, "must not be empty"));
    }
    Ok(s.to_owned())
}

/// A TOML local date (`2026-02-15`, no time, no offset).
fn date(file: &Path, key: &str, v: &toml::Value) -> Result<Date, CalendarError> {
    let bad = || {
        CalendarError::invalid(
            file,
            key,
            format!(
                "must be a date like 2026-02-15 (unquoted), got {}",
                v.type_str()
            ),
        )
    };
    let dt = v.as_datetime().ok_or_else(bad)?;
    let (Some(d), None, None) = (dt.date, dt.time, dt.offset) else {
        return Err(bad());
    };
    let month = Month::try_from(d.month).map_err(|_| bad())?;
    Date::from_calendar_date(i32::from(d.year), month, d.day)
        .map_err(|e| CalendarError::invalid(file, key, format!("{dt} is not a calendar date: {e}")))
}
