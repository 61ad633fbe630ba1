//! Wire encodings shared by the protocol types: dates as `YYYY-MM-DD`, instants as RFC 3339, months
//! as `YYYY-MM`, and the JSON Schema fragments that describe them.
//!
//! `time`'s own serde impls encode a `Date` as a tuple; the protocol needs readable strings, so every
//! date field goes through this module.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::Month;

time::serde::format_description!(pub date, Date, "[year]-[month]-[day]");

/// RFC 3339 instants (`2026-11-29T12:00:00Z`).
pub use time::serde::rfc3339 as instant;

/// `Option<Date>` as `YYYY-MM-DD` or `null`. Decodes through `Option<String>` so that it also works
/// inside `#[serde(flatten)]` containers, where serde buffers `null` as a unit value that
/// `time`'s own optional decoder rejects.
pub mod optional_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(value: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        super::date::option::serialize(value, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                Date::parse(&text, &format)
                    .map(Some)
                    .map_err(|_| serde::de::Error::custom("expected a date YYYY-MM-DD or null"))
            }
        }
    }
}

pub(crate) fn date_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date" })
}

pub(crate) fn optional_date_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["string", "null"], "format": "date" })
}

pub(crate) fn instant_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

/// A calendar month, on the wire `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct YearMonth {
    pub year: i32,
    pub month: Month,
}

impl YearMonth {
    pub fn of(date: time::Date) -> Self {
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The month before this one.
    pub fn previous(self) -> Self {
        match self.month {
            Month::January => Self {
                year: self.year - 1,
                month: Month::December,
            },
            m => Self {
                year: self.year,
                month: m.previous(),
            },
        }
    }

    /// The first day of the month.
    pub fn first_day(self) -> time::Date {
        time::Date::from_calendar_date(self.year, self.month, 1).unwrap_or(time::Date::MIN)
    }

    /// The last day of the month.
    pub fn last_day(self) -> time::Date {
        time::Date::from_calendar_date(self.year, self.month, self.month.length(self.year))
            .unwrap_or(time::Date::MAX)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
        Some(Self {
            year: y.parse().ok()?,
            month,
        })
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        YearMonth::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("month must be YYYY-MM with MM in 01..=12"))
    }
}

impl schemars::JsonSchema for YearMonth {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "YearMonth".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "a calendar month, YYYY-MM",
            "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_month_parses_and_steps() {
        let m = YearMonth::parse("2026-01").unwrap();
        assert_eq!(m.to_string(), "2026-01");
        assert_eq!(m.previous().to_string(), "2025-12");
        assert_eq!(m.last_day(), time::macros::date!(2026 - 01 - 31));
        for bad in [
            "2026-13", "2026-00", "26-01", "2026-1", "2026/01", "abcd-01",
        ] {
            assert_eq!(YearMonth::parse(bad), None, "{bad}");
        }
    }
}
