//! 办理时限: the statutory clocks on a case's open stages, pure code (issue 11 item 3, the case
//! part). Given the tier, the timeline's times, the official working-day calendar and `now`, it
//! answers which deadlines run, which are met, which are overdue.
//!
//! Readings chosen (the scheme's text leaves them open):
//! - `first_help` 先行救助 (emergency 2 h, urgent 24 h, none for a normal case) runs from **filing**
//!   (`received`): the scheme promises help "within 2 hours" of the application, not of the
//!   township's acceptance. Wall clock. Met by the first `first_help` move.
//! - `materials` 补充完善材料: 5 working days from **acceptance** (the first one: a transfer does
//!   not restart it). Met by the `investigation` move (the materials are complete once the
//!   household is investigated).
//! - `initial_opinion` 调查初审意见: 3 working days after the materials' due date, for every tier
//!   (one reading for all, so a deadline never moves back when first help comes early). Met by
//!   the `investigation` move, which carries the initial opinion.
//! - `decision` 审批决定: 20 working days from acceptance. Met by the `decide` move.
//!
//! Working-day deadlines count on [`policies::WorkingCalendar`] (holidays off, 调休 make-up days
//! worked; the start date itself not counted) and end at 23:59:59 Beijing time of the due date; a
//! count reaching into a year without a calendar file is Monday–Friday and `provisional`, and is
//! recomputed on every read, so it firms up as soon as that year's file is loaded. A clock is
//! `due_soon` when less than a quarter of its period is left.
//!
//! The durations are policy data: `[case]` of `policies/clocks.toml` ([`policies::CasePeriods`],
//! loaded and reloaded with the Cedar policies; a bad file is refused whole).
//! Tested by this module's tests across the 2026 Spring Festival and National Day and into 2027,
//! and by e2e `cases::clocks_*`.

use schemas::Urgency;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time, UtcOffset};

const BEIJING: UtcOffset = time::macros::offset!(+8);

/// Which deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    /// 先行救助: emergency 2 h / urgent 24 h from filing
    FirstHelp,
    /// 补充完善材料: 5 working days from acceptance
    Materials,
    /// 调查初审意见: 3 working days after the materials are due
    InitialOpinion,
    /// 审批决定: 20 working days from acceptance
    Decision,
}

/// Where a clock stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockStatus {
    /// 计时中
    Running,
    /// 即将到期: less than a quarter of the period left
    DueSoon,
    /// 已完成 (see `met_at`; it may be after `due_at`)
    Met,
    /// 已超期
    Overdue,
}

/// 办理时限: one statutory clock of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Clock {
    pub kind: ClockKind,
    /// Deadline, RFC 3339 in Beijing time (+08:00); a working-day deadline ends at 23:59:59.
    pub due_at: String,
    pub status: ClockStatus,
    /// When the clock stopped (the move that met it), RFC 3339 +08:00.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met_at: Option<String>,
    /// 暂定: the count reaches into a year whose official calendar is not loaded (counted
    /// Monday–Friday); recomputed once it is.
    pub provisional: bool,
}

impl Clock {
    /// Still to be met.
    pub fn open(&self) -> bool {
        self.status != ClockStatus::Met
    }
}

/// The times of a case's timeline that the clocks read (Unix milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Filing (the `open` event, `received`).
    pub filed_ms: i64,
    /// The first `accept`.
    pub accepted_ms: Option<i64>,
    /// The first `first_help`.
    pub first_help_ms: Option<i64>,
    /// The first `investigate`.
    pub investigated_ms: Option<i64>,
    /// The `decide`.
    pub decided_ms: Option<i64>,
}

impl Timeline {
    /// Reads the first occurrence of each move from `(action, at_ms)` pairs in timeline order.
    pub fn from_events<'a>(
        filed_ms: i64,
        events: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> Self {
        let mut t = Timeline {
            filed_ms,
            ..Default::default()
        };
        for (action, at) in events {
            let slot = match action {
                "accept" => &mut t.accepted_ms,
                "first_help" => &mut t.first_help_ms,
                "investigate" => &mut t.investigated_ms,
                "decide" => &mut t.decided_ms,
                _ => continue,
            };
            slot.get_or_insert(at);
        }
        t
    }
}

fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(BEIJING)
}

fn beijing_rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(BEIJING).format(&Rfc3339).unwrap_or_default()
}

/// 23:59:59 Beijing time of `d`.
fn end_of_day(d: Date) -> OffsetDateTime {
    d.with_time(Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT))
        .assume_offset(BEIJING)
}

fn clock(
    kind: ClockKind,
    start: OffsetDateTime,
    due: OffsetDateTime,
    provisional: bool,
    met_ms: Option<i64>,
    now: OffsetDateTime,
) -> Clock {
    let (status, met_at) = match met_ms {
        Some(ms) => (ClockStatus::Met, Some(beijing_rfc3339(instant(ms)))),
        None if now > due => (ClockStatus::Overdue, None),
        None if (due - now) * 4 < (due - start) => (ClockStatus::DueSoon, None),
        None => (ClockStatus::Running, None),
    };
    Clock {
        kind,
        due_at: beijing_rfc3339(due),
        status,
        met_at,
        provisional,
    }
}

/// The clocks of a case at `now`, in order: first help (emergency and urgent only), then, once
/// the case is accepted, materials, initial opinion and decision.
pub fn clocks(
    tier: Urgency,
    t: &Timeline,
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
) -> Vec<Clock> {
    let mut out = Vec::new();
    let filed = instant(t.filed_ms);
    let hours = match tier {
        Urgency::Emergency => Some(periods.first_help_emergency_hours),
        Urgency::Urgent => Some(periods.first_help_urgent_hours),
        Urgency::Normal => None,
    };
    if let Some(h) = hours {
        let due = filed + time::Duration::hours(i64::from(h));
        out.push(clock(
            ClockKind::FirstHelp,
            filed,
            due,
            false,
            t.first_help_ms,
            now,
        ));
    }
    let Some(accepted_ms) = t.accepted_ms else {
        return out;
    };
    let accepted = instant(accepted_ms);
    let materials = calendar.add_working_days(accepted.date(), periods.materials_working_days);
    out.push(clock(
        ClockKind::Materials,
        accepted,
        end_of_day(materials.date),
        materials.provisional,
        t.investigated_ms,
        now,
    ));
    let opinion = calendar.add_working_days(materials.date, periods.initial_opinion_working_days);
    out.push(clock(
        ClockKind::InitialOpinion,
        end_of_day(materials.date),
        end_of_day(opinion.date),
        materials.provisional || opinion.provisional,
        t.investigated_ms,
        now,
    ));
    let decision = calendar.add_working_days(accepted.date(), periods.decision_working_days);
    out.push(clock(
        ClockKind::Decision,
        accepted,
        end_of_day(decision.date),
        decision.provisional,
        t.decided_ms,
        now,
    ));
    out
}

/// The nearest open clock's deadline and whether any open clock is overdue (for list items).
pub fn nearest_open(clocks: &[Clock]) -> (Option<String>, bool) {
    // Compared as instants: a first-help deadline carries milliseconds, the others do not.
    let next = clocks
        .iter()
        .filter(|c| c.open())
        .min_by_key(|c| OffsetDateTime::parse(&c.due_at, &Rfc3339).ok())
        .map(|c| c.due_at.clone());
    let overdue = clocks.iter().any(|c| c.status == ClockStatus::Overdue);
    (next, overdue)
}

/// 首次联系时限: the first-contact deadline of a warning raised at `from_ms` (Unix ms), in Unix
/// ms, and whether it is provisional: hours on the wall clock, or working days on the official
/// calendar ending 23:59:59 Beijing time of the due date (the start date not counted).
pub fn first_contact_due(
    period: policies::Period,
    from_ms: i64,
    calendar: &policies::WorkingCalendar,
) -> (i64, bool) {
    let from = instant(from_ms);
    let (due, provisional) = match period {
        policies::Period::Hours(h) => (from + time::Duration::hours(i64::from(h)), false),
        policies::Period::WorkingDays(n) => {
            let d = calendar.add_working_days(from.date(), n);
            (end_of_day(d.date), d.provisional)
        }
    };
    ((due.unix_timestamp_nanos() / 1_000_000) as i64, provisional)
}

/// An instant (Unix ms) as RFC 3339 in Beijing time.
pub fn beijing(ms: i64) -> String {
    beijing_rfc3339(instant(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cal() -> policies::WorkingCalendar {
        policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
            .expect("shipped calendar")
    }

    fn periods() -> policies::CasePeriods {
        policies::Deadlines::statutory().case
    }

    fn ms(t: OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn find(cs: &[Clock], k: ClockKind) -> &Clock {
        cs.iter().find(|c| c.kind == k).expect("clock present")
    }

    #[test]
    fn emergency_first_help_is_two_hours_from_filing_and_met_by_first_help() {
        let filed = datetime!(2026-03-02 09:00 +8);
        let mut t = Timeline {
            filed_ms: ms(filed),
            ..Default::default()
        };
        let cs = clocks(
            Urgency::Emergency,
            &t,
            &cal(),
            &periods(),
            filed + time::Duration::minutes(30),
        );
        assert_eq!(cs.len(), 1, "only first help before acceptance");
        let fh = find(&cs, ClockKind::FirstHelp);
        assert_eq!(fh.due_at, "2026-03-02T11:00:00+08:00");
        assert_eq!(fh.status, ClockStatus::Running);
        assert!(!fh.provisional);
        // Under a quarter (30 min) left.
        let cs = clocks(
            Urgency::Emergency,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-03-02 10:45 +8),
        );
        assert_eq!(find(&cs, ClockKind::FirstHelp).status, ClockStatus::DueSoon);
        let cs = clocks(
            Urgency::Emergency,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-03-02 11:00:01 +8),
        );
        assert_eq!(find(&cs, ClockKind::FirstHelp).status, ClockStatus::Overdue);
        t.first_help_ms = Some(ms(datetime!(2026-03-02 10:00 +8)));
        let cs = clocks(
            Urgency::Emergency,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-03-09 00:00 +8),
        );
        let fh = find(&cs, ClockKind::FirstHelp);
        assert_eq!(fh.status, ClockStatus::Met);
        assert_eq!(fh.met_at.as_deref(), Some("2026-03-02T10:00:00+08:00"));
    }

    #[test]
    fn urgent_is_24_hours_wall_clock_and_normal_has_no_first_help() {
        // Filed on the eve of the Spring Festival: hours run through holidays.
        let filed = datetime!(2026-02-14 20:00 +8);
        let t = Timeline {
            filed_ms: ms(filed),
            ..Default::default()
        };
        let cs = clocks(Urgency::Urgent, &t, &cal(), &periods(), filed);
        assert_eq!(cs[0].due_at, "2026-02-15T20:00:00+08:00");
        assert!(clocks(Urgency::Normal, &t, &cal(), &periods(), filed).is_empty());
    }

    #[test]
    fn spring_festival_2026_is_skipped_and_its_saturdays_count() {
        // Accepted Friday 2026-02-13. Working days after it: Sat 02-14 (调休), then the holiday
        // 02-15..23, then Tue 02-24, Wed 25, Thu 26, Fri 27 → materials due 02-27.
        let accepted = datetime!(2026-02-13 10:00 +8);
        let t = Timeline {
            filed_ms: ms(accepted - time::Duration::hours(1)),
            accepted_ms: Some(ms(accepted)),
            ..Default::default()
        };
        let cs = clocks(Urgency::Normal, &t, &cal(), &periods(), accepted);
        assert_eq!(cs.len(), 3);
        let m = find(&cs, ClockKind::Materials);
        assert_eq!(m.due_at, "2026-02-27T23:59:59+08:00");
        assert!(!m.provisional);
        // Opinion: Sat 02-28 (调休), Mon 03-02, Tue 03-03.
        assert_eq!(
            find(&cs, ClockKind::InitialOpinion).due_at,
            "2026-03-03T23:59:59+08:00"
        );
        // Decision: 20 working days: 02-14, 02-24..27 (5), 02-28 (6), 03-02..06 (11),
        // 03-09..13 (16), 03-16..19 (20).
        assert_eq!(
            find(&cs, ClockKind::Decision).due_at,
            "2026-03-19T23:59:59+08:00"
        );
        for c in &cs {
            assert_eq!(c.status, ClockStatus::Running, "{:?}", c.kind);
        }
    }

    #[test]
    fn national_day_2026_is_skipped_and_its_make_up_days_count() {
        // Accepted Friday 2026-09-18: Sun 09-20 (调休) counts, then 09-21..24 → materials due 09-24.
        let accepted = datetime!(2026-09-18 16:00 +8);
        let t = Timeline {
            filed_ms: ms(accepted),
            accepted_ms: Some(ms(accepted)),
            ..Default::default()
        };
        let cs = clocks(Urgency::Normal, &t, &cal(), &periods(), accepted);
        assert_eq!(
            find(&cs, ClockKind::Materials).due_at,
            "2026-09-24T23:59:59+08:00"
        );
        // Opinion: Mid-Autumn 09-25..27 off, then 09-28, 29, 30.
        assert_eq!(
            find(&cs, ClockKind::InitialOpinion).due_at,
            "2026-09-30T23:59:59+08:00"
        );
        // Decision: 09-20, 21..24 (5), Mid-Autumn off, 28..30 (8), National Day 10-01..07 off,
        // 10-08, 09 (10), Sat 10-10 (11), 10-12..16 (16), 10-19..22 (20).
        assert_eq!(
            find(&cs, ClockKind::Decision).due_at,
            "2026-10-22T23:59:59+08:00"
        );
        // Past the materials date with no investigation: overdue; the later ones still running.
        let cs = clocks(
            Urgency::Normal,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-09-25 00:00 +8),
        );
        assert_eq!(find(&cs, ClockKind::Materials).status, ClockStatus::Overdue);
        assert_eq!(
            find(&cs, ClockKind::InitialOpinion).status,
            ClockStatus::Running
        );
        let (next, overdue) = nearest_open(&cs);
        assert!(overdue);
        assert_eq!(next.as_deref(), Some("2026-09-24T23:59:59+08:00"));
    }

    #[test]
    fn a_deadline_into_2027_is_provisional_and_says_so() {
        let accepted = datetime!(2026-12-15 09:00 +8);
        let t = Timeline {
            filed_ms: ms(accepted),
            accepted_ms: Some(ms(accepted)),
            ..Default::default()
        };
        let calendar = cal();
        assert!(
            !calendar.has_year(2027),
            "test assumes no 2027 file is shipped"
        );
        let cs = clocks(Urgency::Normal, &t, &calendar, &periods(), accepted);
        let m = find(&cs, ClockKind::Materials);
        assert!(!m.provisional, "materials stay in 2026");
        let d = find(&cs, ClockKind::Decision);
        assert!(d.provisional, "decision reaches into 2027");
        assert!(d.due_at.starts_with("2027-"), "{}", d.due_at);
    }

    #[test]
    fn investigation_meets_materials_and_opinion_and_decision_meets_decision() {
        let accepted = datetime!(2026-03-02 09:00 +8);
        let t = Timeline::from_events(
            ms(accepted),
            [
                ("accept", ms(accepted)),
                ("investigate", ms(datetime!(2026-03-04 09:00 +8))),
                ("decide", ms(datetime!(2026-03-10 09:00 +8))),
            ],
        );
        let cs = clocks(
            Urgency::Normal,
            &t,
            &cal(),
            &periods(),
            datetime!(2026-06-01 00:00 +8),
        );
        assert!(cs.iter().all(|c| c.status == ClockStatus::Met), "{cs:?}");
        assert_eq!(nearest_open(&cs), (None, false));
    }
}
