//! 济宁市村级行政区划: Jining's 4,927 villages and residents' committees (村民委员会 / 居民委员会),
//! embedded from `connectors/data/jining-villages.csv` (`code,name,township`; see
//! `/work/shared/data/README.md` for the source).
//!
//! The village level is where village assistants (村级救助协理员) find people in hardship. The hub
//! checks that a village code it is given is a known village (not only twelve digits) and shows its
//! name. Parsing happens once, lazily; the embedded file is checked by a unit test.

use std::collections::HashMap;
use std::sync::OnceLock;

use schemas::DivisionCode;
use schemas::division::DivisionLevel;

/// The embedded CSV (`code,name,township`).
const CSV: &str = include_str!("../../data/jining-villages.csv");

/// 村级行政区: a village committee or residents' committee.
#[derive(Debug, Clone)]
pub struct Village {
    /// 12 digits: the township's 9 followed by 3.
    pub code: DivisionCode,
    pub name: String,
}

/// Jining's villages, in file order, with an index by code.
#[derive(Debug, Clone)]
pub struct Villages {
    pub villages: Vec<Village>,
    by_code: HashMap<String, usize>,
}

impl Villages {
    /// The embedded snapshot (parsed once).
    pub fn jining() -> &'static Villages {
        static VILLAGES: OnceLock<Villages> = OnceLock::new();
        VILLAGES.get_or_init(|| {
            // The embedded file is fixed at compile time and checked by the unit test below, so a
            // parse failure here is a build defect, not bad input.
            parse(CSV).expect("embedded jining-villages.csv is valid")
        })
    }

    /// Look a village up by its 12-digit code.
    pub fn village(&self, code: &str) -> Option<&Village> {
        self.by_code.get(code).map(|&i| &self.villages[i])
    }

    /// The villages of a township, in file order.
    pub fn of_township<'a>(&'a self, township: &'a str) -> impl Iterator<Item = &'a Village> + 'a {
        self.villages
            .iter()
            .filter(move |v| v.code.as_str().starts_with(township))
    }
}

/// Parse the CSV; errors name the line and the rule.
pub fn parse(csv: &str) -> Result<Villages, String> {
    let mut villages = Vec::new();
    let mut by_code = HashMap::new();
    for (n, line) in csv.lines().enumerate().skip(1) {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        let [code, name, township] = cols.as_slice() else {
            return Err(format!(
                "line {line_no}: expected 3 columns, got {}",
                cols.len()
            ));
        };
        let code = DivisionCode::parse(code).map_err(|e| format!("line {line_no}: code: {e}"))?;
        if code.level() != DivisionLevel::Village {
            return Err(format!(
                "line {line_no}: code: not a village code (12 digits)"
            ));
        }
        if !code.as_str().starts_with(township) || township.len() != 9 {
            return Err(format!(
                "line {line_no}: township: {township:?} is not the code's township"
            ));
        }
        if name.trim().is_empty() {
            return Err(format!("line {line_no}: name: empty"));
        }
        if by_code
            .insert(code.as_str().to_owned(), villages.len())
            .is_some()
        {
            return Err(format!("line {line_no}: code: duplicate"));
        }
        villages.push(Village {
            code,
            name: (*name).to_owned(),
        });
    }
    if villages.is_empty() {
        return Err("no villages".into());
    }
    Ok(Villages { villages, by_code })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::divisions::Divisions;

    #[test]
    fn the_embedded_villages_lie_in_known_townships() {
        let v = parse(CSV).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.villages.len(), 4927);
        let towns = Divisions::jining();
        // Every village of a township the simulator knows (the high-tech zone's street offices
        // are not in `Divisions`, see divisions.rs).
        let known = v
            .villages
            .iter()
            .filter(|x| {
                x.code
                    .township()
                    .is_some_and(|t| towns.township(&t).is_some())
            })
            .count();
        assert!(known > 4500, "{known}");
        let x = v.village("370811002001").expect("航运新村居委会");
        assert_eq!(x.name, "航运新村居委会");
        assert!(v.of_township("370811002").count() > 3);
        assert!(v.village("370811002999").is_none());
        assert!(parse("code,name,township\n370811002001,x,370811003\n").is_err());
        assert!(parse("code,name,township\n370811002,x,370811002\n").is_err());
    }
}
