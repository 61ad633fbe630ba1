//! 地方标准: local standards per county and year — the 低保 (minimum living allowance) line, asset
//! limits and the tolerance between declared and verified amounts.
//!
//! One TOML file per year under `standards/` (e.g. `2026.toml`), with one table per county keyed by
//! its 6-digit code. Money is integer fen, areas integer square decimetres (as in the fact
//! catalogue). Invariants checked at load (errors name the file and key): the file's year is unique;
//! every county key is one of Jining's 11 counties with its official name, and every one of them is
//! present; every amount is positive and within a sane range; no unknown keys.

use std::collections::BTreeMap;
use std::path::Path;

use schemas::DivisionCode;
use schemas::division::DivisionLevel;

use crate::engine::{files_with_ext, read};
use crate::error::PolicyError;
use crate::toml_util as t;

/// 济宁市县级行政区划: Jining's 11 county-level divisions (GB/T 2260), code and official name.
pub const JINING_COUNTIES: [(&str, &str); 11] = [
    ("370811", "任城区"),
    ("370812", "兖州区"),
    ("370826", "微山县"),
    ("370827", "鱼台县"),
    ("370828", "金乡县"),
    ("370829", "嘉祥县"),
    ("370830", "汶上县"),
    ("370831", "泗水县"),
    ("370832", "梁山县"),
    ("370881", "曲阜市"),
    ("370883", "邹城市"),
];

/// 资产限额: asset limits for 低保 eligibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLimits {
    /// 房产套数上限: most properties a household may own.
    pub max_properties: u32,
    /// 人均住房面积上限: most floor area per household member, in dm² (0.01 m²).
    pub max_floor_area_per_capita_dm2: i64,
    /// 人均金融资产上限: most financial assets (deposits, securities, provident fund) per member, fen.
    pub max_financial_assets_per_capita_fen: i64,
}

/// 申报核对容差: how far a declared amount may be from the verified one before it is a discrepancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerance {
    /// Relative tolerance, percent of the verified amount.
    pub percent: u32,
    /// Absolute floor of the tolerance, fen (small amounts are not flagged for rounding).
    pub min_fen: i64,
}

impl Tolerance {
    /// True when `declared` is close enough to `verified`: the difference is at most
    /// max(percent% of |verified|, min_fen).
    pub fn within(&self, declared_fen: i64, verified_fen: i64) -> bool {
        let diff = (i128::from(declared_fen) - i128::from(verified_fen)).abs();
        diff <= i128::from(self.allowed(verified_fen))
    }

    /// The largest difference from `verified_fen` that is not a discrepancy:
    /// max(percent% of |verified|, min_fen).
    pub fn allowed(&self, verified_fen: i64) -> i64 {
        let relative = i128::from(verified_fen).abs() * i128::from(self.percent) / 100;
        relative
            .max(i128::from(self.min_fen))
            .clamp(0, i128::from(i64::MAX)) as i64
    }
}

/// 地方标准: one county's standards for one year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStandard {
    pub county: DivisionCode,
    pub name: String,
    pub year: i32,
    /// 低保标准: monthly per-capita line, fen.
    pub dibao_line_fen: i64,
    pub assets: AssetLimits,
    pub tolerance: Tolerance,
    /// True while the values are examples, not the bureau's published standard.
    pub example: bool,
}

/// All local standards, by (county, year).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standards {
    by_key: BTreeMap<(DivisionCode, i32), LocalStandard>,
}

impl Standards {
    /// Load and validate every `*.toml` in `dir` (one file per year).
    pub fn load(dir: impl AsRef<Path>) -> Result<Standards, PolicyError> {
        let dir = dir.as_ref();
        let mut by_key = BTreeMap::new();
        let mut years: BTreeMap<i32, std::path::PathBuf> = BTreeMap::new();
        let files = files_with_ext(dir, "toml")?;
        if files.is_empty() {
            return Err(PolicyError::Missing {
                path: dir.to_owned(),
                what: "no local standards (*.toml)".into(),
            });
        }
        for file in files {
            let src = read(&file)?;
            let (year, list) = parse_year(&file, &src)?;
            if let Some(first) = years.get(&year) {
                return Err(PolicyError::toml(
                    &file,
                    "year",
                    format!("year {year} is already defined in {}", first.display()),
                ));
            }
            years.insert(year, file.clone());
            for s in list {
                by_key.insert((s.county.clone(), year), s);
            }
        }
        Ok(Standards { by_key })
    }

    /// The standard for a county (a township code is resolved to its county) and year.
    pub fn for_county(&self, county: &DivisionCode, year: i32) -> Option<&LocalStandard> {
        self.by_key.get(&(county.county(), year))
    }

    /// The standard in force for a county in `year`: that year's, or else the latest earlier year's
    /// (a new year's standard applies from its publication; until then the previous one does).
    pub fn in_force(&self, county: &DivisionCode, year: i32) -> Option<&LocalStandard> {
        let county = county.county();
        self.by_key
            .range((county.clone(), i32::MIN)..=(county.clone(), year))
            .next_back()
            .map(|(_, s)| s)
    }

    /// The years for which standards are loaded.
    pub fn years(&self) -> Vec<i32> {
        let years: std::collections::BTreeSet<i32> = self.by_key.keys().map(|(_, y)| *y).collect();
        years.into_iter().collect()
    }

    /// Every loaded standard.
    pub fn iter(&self) -> impl Iterator<Item = &LocalStandard> {
        self.by_key.values()
    }
}

fn parse_year(file: &Path, src: &str) -> Result<(i32, Vec<LocalStandard>), PolicyError> {
    let doc = t::parse(file, src)?;
    t::only_keys(file, "", &doc, &["year", "example", "note", "county"])?;
    let year = t::int(
        file,
        "year",
        t::required(file, "", &doc, "year")?,
        2000,
        2100,
    )? as i32;
    let example = match doc.get("example") {
        Some(v) => t::boolean(file, "example", v)?,
        None => false,
    };
    if let Some(v) = doc.get("note") {
        t::string(file, "note", v)?;
    }
    let counties = t::table(file, "county", t::required(file, "", &doc, "county")?)?;
    let mut out = Vec::new();
    for (code, v) in counties {
        let key = format!("county.{code}");
        let county = DivisionCode::parse(code)
            .ok()
            .filter(|c| c.level() == DivisionLevel::County)
            .ok_or_else(|| PolicyError::toml(file, &key, "must be a 6-digit county code"))?;
        let Some((_, official)) = JINING_COUNTIES.iter().find(|(c, _)| *c == code) else {
            return Err(PolicyError::toml(
                file,
                &key,
                format!("unknown county {code} (not one of Jining's 11 counties)"),
            ));
        };
        let tbl = t::table(file, &key, v)?;
        t::only_keys(
            file,
            &key,
            tbl,
            &["name", "dibao_line_fen", "assets", "tolerance"],
        )?;
        let nk = format!("{key}.name");
        let name = t::string(file, &nk, t::required(file, &key, tbl, "name")?)?;
        if name != *official {
            return Err(PolicyError::toml(
                file,
                nk,
                format!("{name:?} is not the name of {code} ({official})"),
            ));
        }
        let line = t::int(
            file,
            &format!("{key}.dibao_line_fen"),
            t::required(file, &key, tbl, "dibao_line_fen")?,
            1,
            10_000_000,
        )?;

        let ak = format!("{key}.assets");
        let assets = t::table(file, &ak, t::required(file, &key, tbl, "assets")?)?;
        t::only_keys(
            file,
            &ak,
            assets,
            &[
                "max_properties",
                "max_floor_area_per_capita_dm2",
                "max_financial_assets_per_capita_fen",
            ],
        )?;
        let field = |name: &str, min: i64, max: i64| -> Result<i64, PolicyError> {
            t::int(
                file,
                &format!("{ak}.{name}"),
                t::required(file, &ak, assets, name)?,
                min,
                max,
            )
        };
        let assets = AssetLimits {
            max_properties: field("max_properties", 0, 100)? as u32,
            max_floor_area_per_capita_dm2: field("max_floor_area_per_capita_dm2", 1, 10_000_000)?,
            max_financial_assets_per_capita_fen: field(
                "max_financial_assets_per_capita_fen",
                0,
                100_000_000_000,
            )?,
        };

        let tk = format!("{key}.tolerance");
        let tol = t::table(file, &tk, t::required(file, &key, tbl, "tolerance")?)?;
        t::only_keys(file, &tk, tol, &["percent", "min_fen"])?;
        let tolerance = Tolerance {
            percent: t::int(
                file,
                &format!("{tk}.percent"),
                t::required(file, &tk, tol, "percent")?,
                0,
                100,
            )? as u32,
            min_fen: t::int(
                file,
                &format!("{tk}.min_fen"),
                t::required(file, &tk, tol, "min_fen")?,
                0,
                100_000_000,
            )?,
        };

        out.push(LocalStandard {
            county,
            name: name.to_owned(),
            year,
            dibao_line_fen: line,
            assets,
            tolerance,
            example,
        });
    }
    if let Some((code, name)) = JINING_COUNTIES
        .iter()
        .find(|(c, _)| !out.iter().any(|s| s.county.as_str() == *c))
    {
        return Err(PolicyError::toml(
            file,
            format!("county.{code}"),
            format!("missing: every county needs a standard for {year} ({name})"),
        ));
    }
    Ok((year, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: &Tolerance, declared: i64, verified: i64, expected: bool) {
        assert_eq!(
            t.within(declared, verified),
            expected,
            "{declared} vs {verified}"
        );
    }

    #[test]
    fn tolerance_is_the_larger_of_percent_and_floor() {
        let t = Tolerance {
            percent: 10,
            min_fen: 5_000,
        };
        check(&t, 100_000, 100_000, true);
        check(&t, 110_000, 100_000, true); // exactly 10 %
        check(&t, 110_001, 100_000, false);
        check(&t, 90_000, 100_000, true);
        check(&t, 89_999, 100_000, false);
        check(&t, 0, 5_000, true); // floor of 50 yuan
        check(&t, 0, 5_001, false);
        check(&t, i64::MAX, i64::MIN, false); // no overflow
        assert_eq!(t.allowed(100_000), 10_000);
        assert_eq!(t.allowed(-1), 5_000);
    }

    #[test]
    fn the_latest_published_standard_stays_in_force() {
        let dir = crate::PolicyEngine::shipped_dir().join("standards");
        let st = Standards::load(dir).unwrap();
        let township = DivisionCode::parse("370811002").unwrap();
        let now = st.in_force(&township, 2026).unwrap();
        assert_eq!((now.county.as_str(), now.year), ("370811", 2026));
        // No 2027 file yet: 2026's applies.
        assert_eq!(st.in_force(&township, 2027).unwrap().year, 2026);
        // Nothing before the first year.
        assert!(st.in_force(&township, 2025).is_none());
        // Another county's standard is never used.
        let other = DivisionCode::parse("370883").unwrap();
        assert_eq!(st.in_force(&other, 2030).unwrap().county.as_str(), "370883");
    }
}
