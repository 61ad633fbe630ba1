//! 济宁市行政区划: Jining's counties and townships, embedded from `connectors/data/jining-divisions.csv`.
//!
//! The CSV is a snapshot of the National Bureau of Statistics' codes (see `/work/shared/data/README.md`):
//! the city, its 11 county-level divisions and their 158 townships and street offices. The simulator
//! places every household in one of these townships so that jurisdiction rules and reports see real
//! codes and names. Parsing happens once, lazily; the embedded file is checked by a unit test.
//!
//! The five street offices of the high-tech zone (济宁高新区, parent `370871`) are left out: the zone
//! is a functional area without a county-level division in the file, so its townships would have
//! no county (and no county code for resident IDs or local standards). 153 townships remain.

use std::sync::OnceLock;

use schemas::DivisionCode;

/// The embedded CSV (`code,name,level,parent`).
const CSV: &str = include_str!("../../data/jining-divisions.csv");

/// 县级行政区: a county-level division (district, county or county-level city).
#[derive(Debug, Clone)]
pub struct County {
    pub code: DivisionCode,
    pub name: String,
    /// Indices into [`Divisions::townships`] of this county's townships.
    pub townships: Vec<usize>,
}

/// 乡级行政区: a township, town or street office.
#[derive(Debug, Clone)]
pub struct Township {
    pub code: DivisionCode,
    pub name: String,
    /// Index into [`Divisions::counties`].
    pub county: usize,
}

/// Jining's divisions, counties in file order and townships in file order.
#[derive(Debug, Clone)]
pub struct Divisions {
    pub counties: Vec<County>,
    pub townships: Vec<Township>,
}

impl Divisions {
    /// The embedded snapshot (parsed once).
    pub fn jining() -> &'static Divisions {
        static DIVISIONS: OnceLock<Divisions> = OnceLock::new();
        DIVISIONS.get_or_init(|| {
            // The embedded file is fixed at compile time and checked by the unit test below, so a
            // parse failure here is a build defect, not bad input.
            parse(CSV).expect("embedded jining-divisions.csv is valid")
        })
    }

    /// Look a township up by its 9-digit code.
    pub fn township(&self, code: &DivisionCode) -> Option<&Township> {
        self.townships.iter().find(|t| &t.code == code)
    }

    /// Look a county up by its 6-digit code.
    pub fn county(&self, code: &DivisionCode) -> Option<&County> {
        self.counties.iter().find(|c| &c.code == code)
    }
}

/// Parse the CSV; errors name the line and the rule.
pub fn parse(csv: &str) -> Result<Divisions, String> {
    let mut counties: Vec<County> = Vec::new();
    let mut townships: Vec<Township> = Vec::new();
    for (n, line) in csv.lines().enumerate().skip(1) {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != 4 {
            return Err(format!(
                "line {line_no}: expected 4 columns, got {}",
                cols.len()
            ));
        }
        let (code, name, level, parent) = (cols[0], cols[1], cols[2], cols[3]);
        match level {
            "city" => {}
            "county" => {
                let code =
                    DivisionCode::parse(code).map_err(|e| format!("line {line_no}: code: {e}"))?;
                counties.push(County {
                    code,
                    name: name.to_owned(),
                    townships: Vec::new(),
                });
            }
            "township" => {
                let code =
                    DivisionCode::parse(code).map_err(|e| format!("line {line_no}: code: {e}"))?;
                let Some(county) = counties.iter().position(|c| c.code.as_str() == parent) else {
                    // Townships of a functional zone (370871 济宁高新区) have no county-level
                    // division in the file; the simulator leaves them out rather than invent one.
                    if parent.len() == 6 && parent.bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    return Err(format!(
                        "line {line_no}: parent {parent:?} is not a county code"
                    ));
                };
                counties[county].townships.push(townships.len());
                townships.push(Township {
                    code,
                    name: name.to_owned(),
                    county,
                });
            }
            other => return Err(format!("line {line_no}: level: unknown level {other:?}")),
        }
    }
    if counties.is_empty() || townships.is_empty() {
        return Err("no counties or no townships".into());
    }
    Ok(Divisions {
        counties,
        townships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_snapshot_has_eleven_counties_and_their_townships() {
        let d = Divisions::jining();
        assert_eq!(d.counties.len(), 11);
        assert_eq!(d.townships.len(), 153);
        for t in &d.townships {
            let county = &d.counties[t.county];
            assert!(
                county.code.contains(&t.code),
                "{} not in {}",
                t.code,
                county.code
            );
        }
        assert!(d.counties.iter().all(|c| !c.townships.is_empty()));
        let rencheng = DivisionCode::parse("370811").unwrap();
        assert_eq!(d.county(&rencheng).unwrap().name, "任城区");
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse("code,name,level,parent\n370811,任城区,county\n").unwrap_err(),
            "line 2: expected 4 columns, got 3"
        );
        assert_eq!(
            parse("code,name,level,parent\n370811,任城区,county,370800\n370811002,许庄街道,township,x\n")
                .unwrap_err(),
            "line 3: parent \"x\" is not a county code"
        );
    }
}
