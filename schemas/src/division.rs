//! 行政区划代码: administrative-division codes.
//!
//! A county-level code has 6 digits (GB/T 2260, e.g. `370811` 任城区); a township-level code has 9
//! digits: the county code followed by the 3-digit township part of the statistical division code
//! (e.g. `370811002` 许庄街道); a village-level code (村民委员会 / 居民委员会) has 12: the township code
//! followed by its 3-digit village part (e.g. `370811002001` 航运新村居委会). A [`DivisionCode`] is
//! always one of the three shapes. Containment follows the digits: a county contains its townships
//! and their villages, a township its villages.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An administrative-division code: county (6 digits), township (9 digits) or village (12 digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DivisionCode(String);

/// Why a string is not a division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DivisionCodeError {
    #[error("must be 6 (county), 9 (township) or 12 (village) digits, got {0} characters")]
    Length(usize),
    #[error("must contain digits only")]
    NotDigits,
    #[error("province/city part must not be 00")]
    ZeroPrefix,
}

/// The level of a division code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DivisionLevel {
    /// 省级 (province, `xx0000`)
    Province,
    /// 地级 (prefecture-level city, `xxxx00`, e.g. 370800 济宁市)
    City,
    /// 县级 (county, district, county-level city)
    County,
    /// 乡级 (township, town, street office)
    Township,
    /// 村级 (村民委员会 village committee, 居民委员会 residents' committee)
    Village,
}

impl DivisionCode {
    /// Parse a 6-, 9- or 12-digit code.
    pub fn parse(s: &str) -> Result<Self, DivisionCodeError> {
        if s.len() != 6 && s.len() != 9 && s.len() != 12 {
            return Err(DivisionCodeError::Length(s.chars().count()));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DivisionCodeError::NotDigits);
        }
        if &s[0..2] == "00" {
            return Err(DivisionCodeError::ZeroPrefix);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> DivisionLevel {
        if self.0.len() == 12 {
            DivisionLevel::Village
        } else if self.0.len() == 9 {
            DivisionLevel::Township
        } else if self.0.ends_with("0000") {
            DivisionLevel::Province
        } else if self.0.ends_with("00") {
            DivisionLevel::City
        } else {
            DivisionLevel::County
        }
    }

    /// The 6-digit code of the county-level division this code belongs to (itself for a 6-digit code).
    pub fn county(&self) -> DivisionCode {
        DivisionCode(self.0[..6].to_owned())
    }

    /// The 9-digit township this code lies in: itself for a township, its township for a village,
    /// `None` above the township level.
    pub fn township(&self) -> Option<DivisionCode> {
        (self.0.len() >= 9).then(|| DivisionCode(self.0[..9].to_owned()))
    }

    /// The division directly above: village → township → county → city → province; `None` for a
    /// province.
    pub fn parent(&self) -> Option<DivisionCode> {
        let up = match self.level() {
            DivisionLevel::Village => self.0[..9].to_owned(),
            DivisionLevel::Township => self.0[..6].to_owned(),
            DivisionLevel::County => format!("{}00", &self.0[..4]),
            DivisionLevel::City => format!("{}0000", &self.0[..2]),
            DivisionLevel::Province => return None,
        };
        Some(DivisionCode(up))
    }

    /// The significant prefix: the digits that every division inside this one shares.
    fn prefix(&self) -> &str {
        match self.level() {
            DivisionLevel::Province => &self.0[..2],
            DivisionLevel::City => &self.0[..4],
            DivisionLevel::County | DivisionLevel::Township | DivisionLevel::Village => &self.0,
        }
    }

    /// True when `other` is this division or lies inside it (a village inside its township and
    /// county, a township inside its county, a county inside its city).
    pub fn contains(&self, other: &DivisionCode) -> bool {
        other.0.starts_with(self.prefix())
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DivisionCode({})", self.0)
    }
}

impl std::str::FromStr for DivisionCode {
    type Err = DivisionCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for DivisionCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DivisionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DivisionCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for DivisionCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DivisionCode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "行政区划代码: 6-digit county, 9-digit township or 12-digit village code",
            "pattern": "^[0-9]{6}([0-9]{3}([0-9]{3})?)?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<DivisionLevel, DivisionCodeError>) {
        assert_eq!(
            DivisionCode::parse(input).map(|c| c.level()),
            expected,
            "{input}"
        );
    }

    #[test]
    fn parses_counties_and_townships() {
        check("370811", Ok(DivisionLevel::County));
        check("370800", Ok(DivisionLevel::City));
        check("370000", Ok(DivisionLevel::Province));
        check("370811002", Ok(DivisionLevel::Township));
        check("37081", Err(DivisionCodeError::Length(5)));
        check("3708110021", Err(DivisionCodeError::Length(10)));
        check("370811002001", Ok(DivisionLevel::Village));
        check("3708110020011", Err(DivisionCodeError::Length(13)));
        check("37081100200a", Err(DivisionCodeError::NotDigits));
        check("37081a", Err(DivisionCodeError::NotDigits));
        check("000811", Err(DivisionCodeError::ZeroPrefix));
    }

    #[test]
    fn containment_follows_the_hierarchy() {
        let county = DivisionCode::parse("370811").unwrap();
        let town = DivisionCode::parse("370811002").unwrap();
        let other = DivisionCode::parse("370812001").unwrap();
        assert!(county.contains(&town));
        assert!(town.contains(&town));
        assert!(!town.contains(&county));
        assert!(!county.contains(&other));
        assert_eq!(town.county(), county);
        let city = DivisionCode::parse("370800").unwrap();
        assert!(city.contains(&county) && city.contains(&other) && city.contains(&town));
        assert!(!county.contains(&city));
        assert!(!city.contains(&DivisionCode::parse("370100").unwrap()));
    }

    #[test]
    fn villages_lie_in_their_township_and_county() {
        let village = DivisionCode::parse("370811002001").unwrap();
        let town = DivisionCode::parse("370811002").unwrap();
        let county = DivisionCode::parse("370811").unwrap();
        let neighbour = DivisionCode::parse("370811002003").unwrap();
        let elsewhere = DivisionCode::parse("370811003001").unwrap();
        assert!(town.contains(&village) && county.contains(&village));
        assert!(village.contains(&village) && !village.contains(&neighbour));
        assert!(!village.contains(&town) && !town.contains(&elsewhere));
        assert_eq!(village.parent(), Some(town.clone()));
        assert_eq!(town.parent(), Some(county.clone()));
        assert_eq!(village.township(), Some(town.clone()));
        assert_eq!(county.township(), None);
        assert_eq!(village.county(), county);
        assert_eq!(
            county
                .parent()
                .and_then(|c| c.parent())
                .and_then(|p| p.parent()),
            None
        );
    }
}
