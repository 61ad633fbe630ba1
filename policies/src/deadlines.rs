//! 办理时限: the durations of the closed loop's clocks, as data (`clocks.toml` beside the Cedar
//! policies): the case clocks (first help 2 h / 24 h, materials 5 working days, initial opinion 3,
//! decision 20) and, per referral-slip kind (转办单类型), the default period a slip is due in and
//! the latest due date a caseworker may set.
//!
//! Invariants checked at load (errors name the file and the key, e.g. `slip.housing.due_hours`):
//! - every case clock and every slip kind of [`schemas::cases::SlipKind`] is present, nothing else;
//! - each slip kind states its period in exactly one unit (`due_working_days` or `due_hours`) and
//!   its limit likewise (`max_working_days` or `max_hours`), the limit not shorter than the
//!   period when both are in the same unit;
//! - every number is in range (hours 1..=720, working days 1..=60).
//!
//! The file is refused whole on the first bad entry, so a reload keeps the engine it had. Without
//! the file, the statutory periods of [`Deadlines::statutory`] apply (the shipped file states the
//! same values).

use std::collections::BTreeMap;
use std::path::Path;

use schemas::cases::SlipKind;
use toml::Table;

use crate::error::PolicyError;
use crate::toml_util as t;

/// The file name, at the top of the policy directory.
pub const CLOCKS_FILE: &str = "clocks.toml";

const MAX_HOURS: i64 = 720;
const MAX_WORKING_DAYS: i64 = 60;

/// A period: wall-clock hours or working days on the official calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// 小时 (wall clock, Asia/Shanghai)
    Hours(u32),
    /// 工作日 (the start date not counted; ends 23:59:59 Beijing time of the due date)
    WorkingDays(u32),
}

/// The periods of one slip kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlipPeriods {
    /// 默认办理时限: the slip is due this long after it is issued, unless the caseworker sets a
    /// `due_on`.
    pub due: Period,
    /// 最长办理时限: the latest `due_on` a caseworker may set.
    pub max: Period,
}

/// The case clocks' durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasePeriods {
    /// 急难: first help within this many hours of filing.
    pub first_help_emergency_hours: u32,
    /// 紧急: first help within this many hours of filing.
    pub first_help_urgent_hours: u32,
    /// 补充完善材料: working days from acceptance.
    pub materials_working_days: u32,
    /// 调查初审意见: working days after the materials are due.
    pub initial_opinion_working_days: u32,
    /// 审批决定: working days from acceptance.
    pub decision_working_days: u32,
}

/// 办理时限: the case clocks and the slip periods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    pub case: CasePeriods,
    slips: BTreeMap<SlipKind, SlipPeriods>,
}

impl Deadlines {
    /// The statutory periods, used when the policy directory has no `clocks.toml`.
    pub fn statutory() -> Deadlines {
        let wd = |due, max| SlipPeriods {
            due: Period::WorkingDays(due),
            max: Period::WorkingDays(max),
        };
        Deadlines {
            case: CasePeriods {
                first_help_emergency_hours: 2,
                first_help_urgent_hours: 24,
                materials_working_days: 5,
                initial_opinion_working_days: 3,
                decision_working_days: 20,
            },
            slips: SlipKind::ALL
                .iter()
                .map(|k| {
                    let p = match k {
                        SlipKind::MedicalAssistance => wd(5, 10),
                        SlipKind::Township => wd(3, 5),
                        _ => wd(10, 20),
                    };
                    (*k, p)
                })
                .collect(),
        }
    }

    /// The periods of a slip kind.
    pub fn slip(&self, kind: SlipKind) -> SlipPeriods {
        // Every kind is present: the loader refuses a file that lacks one.
        self.slips
            .get(&kind)
            .copied()
            .unwrap_or_else(|| Deadlines::statutory().slips[&kind])
    }

    /// Load `clocks.toml` from the policy directory `dir`, or the statutory periods without it.
    pub fn load_dir(dir: &Path) -> Result<Deadlines, PolicyError> {
        let file = dir.join(CLOCKS_FILE);
        if !file.exists() {
            return Ok(Deadlines::statutory());
        }
        let src = crate::engine::read(&file)?;
        Deadlines::parse(&file, &src)
    }

    /// Parse the text of a clocks file; `file` names it in errors.
    pub fn parse(file: &Path, src: &str) -> Result<Deadlines, PolicyError> {
        let doc = t::parse(file, src)?;
        t::only_keys(file, "", &doc, &["case", "slip"])?;
        let case = t::table(file, "case", t::required(file, "", &doc, "case")?)?;
        t::only_keys(
            file,
            "case",
            case,
            &[
                "first_help_emergency_hours",
                "first_help_urgent_hours",
                "materials_working_days",
                "initial_opinion_working_days",
                "decision_working_days",
            ],
        )?;
        let num = |key: &str, max: i64| -> Result<u32, PolicyError> {
            let v = t::required(file, "case", case, key)?;
            Ok(t::int(file, &format!("case.{key}"), v, 1, max)? as u32)
        };
        let case = CasePeriods {
            first_help_emergency_hours: num("first_help_emergency_hours", MAX_HOURS)?,
            first_help_urgent_hours: num("first_help_urgent_hours", MAX_HOURS)?,
            materials_working_days: num("materials_working_days", MAX_WORKING_DAYS)?,
            initial_opinion_working_days: num("initial_opinion_working_days", MAX_WORKING_DAYS)?,
            decision_working_days: num("decision_working_days", MAX_WORKING_DAYS)?,
        };
        let slip = t::table(file, "slip", t::required(file, "", &doc, "slip")?)?;
        let codes: Vec<&str> = SlipKind::ALL.iter().map(|k| k.code()).collect();
        t::only_keys(file, "slip", slip, &codes)?;
        let mut slips = BTreeMap::new();
        for kind in SlipKind::ALL {
            let prefix = format!("slip.{}", kind.code());
            let entry = t::table(file, &prefix, t::required(file, "slip", slip, kind.code())?)?;
            t::only_keys(
                file,
                &prefix,
                entry,
                &[
                    "due_working_days",
                    "due_hours",
                    "max_working_days",
                    "max_hours",
                ],
            )?;
            let due = period(file, &prefix, entry, "due")?;
            let max = period(file, &prefix, entry, "max")?;
            let shorter = match (due, max) {
                (Period::WorkingDays(d), Period::WorkingDays(m))
                | (Period::Hours(d), Period::Hours(m)) => m < d,
                _ => false,
            };
            if shorter {
                return Err(PolicyError::toml(
                    file,
                    format!("{prefix}.max"),
                    "the limit is shorter than the default period",
                ));
            }
            slips.insert(*kind, SlipPeriods { due, max });
        }
        Ok(Deadlines { case, slips })
    }
}

/// `<which>_working_days` or `<which>_hours`, exactly one.
fn period(file: &Path, prefix: &str, entry: &Table, which: &str) -> Result<Period, PolicyError> {
    let days_key = format!("{which}_working_days");
    let hours_key = format!("{which}_hours");
    match (entry.get(&days_key), entry.get(&hours_key)) {
        (Some(v), None) => Ok(Period::WorkingDays(t::int(
            file,
            &t::join(prefix, &days_key),
            v,
            1,
            MAX_WORKING_DAYS,
        )? as u32)),
        (None, Some(v)) => {
            Ok(Period::Hours(
                t::int(file, &t::join(prefix, &hours_key), v, 1, MAX_HOURS)? as u32,
            ))
        }
        (Some(_), Some(_)) => Err(PolicyError::toml(
            file,
            t::join(prefix, &hours_key),
            format!("give either {days_key} or {hours_key}, not both"),
        )),
        (None, None) => Err(PolicyError::toml(
            file,
            t::join(prefix, &days_key),
            format!("required: {days_key} or {hours_key}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        std::fs::read_to_string(crate::PolicyEngine::shipped_dir().join(CLOCKS_FILE))
            .expect("shipped clocks.toml")
    }

    /// Parse `src`; on error, the key it names.
    fn check(src: &str) -> Result<Deadlines, String> {
        Deadlines::parse(Path::new("clocks.toml"), src).map_err(|e| match e {
            PolicyError::Toml { key, .. } => key,
            other => other.to_string(),
        })
    }

    #[test]
    fn the_shipped_file_states_the_statutory_periods() {
        assert_eq!(check(&shipped()), Ok(Deadlines::statutory()));
    }

    #[test]
    fn a_bad_entry_refuses_the_whole_file_naming_the_key() {
        let good = shipped();
        let cases: &[(&str, &str, &str)] = &[
            (
                "decision_working_days = 20",
                "decision_working_days = 0",
                "case.decision_working_days",
            ),
            (
                "decision_working_days = 20",
                "decision_working_days = \"20\"",
                "case.decision_working_days",
            ),
            (
                "decision_working_days = 20",
                "",
                "case.decision_working_days",
            ),
            (
                "decision_working_days = 20",
                "decision_working_days = 20\nweekends = 2",
                "case.weekends",
            ),
            (
                "[slip.legal_aid]",
                "[slip.fax]\ndue_hours = 2\nmax_hours = 3\n[slip.legal_aid]",
                "slip.fax",
            ),
            (
                "[slip.housing]\ndue_working_days = 10",
                "[slip.housing]\ndue_working_days = 10\ndue_hours = 4",
                "slip.housing.due_hours",
            ),
            (
                "[slip.housing]\ndue_working_days = 10",
                "[slip.housing]\ndue_working_days = 30",
                "slip.housing.max",
            ),
            (
                "[slip.housing]\ndue_working_days = 10",
                "[slip.housing]\ndue_working_days = 61",
                "slip.housing.due_working_days",
            ),
            (
                "[slip.township]\ndue_working_days = 3",
                "[slip.township]",
                "slip.township.due_working_days",
            ),
        ];
        for (from, to, key) in cases {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            assert_eq!(check(&bad).map(|_| ()), Err((*key).to_owned()), "{to}");
        }
        // A kind left out.
        let start = good.find("[slip.rehabilitation]").expect("rehabilitation");
        let end = good[start..].find("\n\n").map_or(good.len(), |i| start + i);
        let mut without = good.clone();
        without.replace_range(start..end, "");
        assert_eq!(
            check(&without).map(|_| ()),
            Err("slip.rehabilitation".to_owned())
        );
    }

    #[test]
    fn hours_are_a_unit_too() {
        let src = shipped().replacen(
            "[slip.township]\ndue_working_days = 3\nmax_working_days = 5",
            "[slip.township]\ndue_hours = 48\nmax_working_days = 5",
            1,
        );
        let d = check(&src).expect("parses");
        assert_eq!(d.slip(SlipKind::Township).due, Period::Hours(48));
    }
}
