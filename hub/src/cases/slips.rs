//! 转办单: referral slips, pure code — their states and moves, and their due dates.
//!
//! ```text
//! issued ──accept (签收)──▶ accepted ──answer (反馈)──▶ answered
//!    └────────────answer (反馈, implies 签收)──────────────▲
//! ```
//!
//! Feedback straight from `issued` is allowed and implies acceptance (the acceptance time is the
//! answer's): a department that acts at once need not make two calls, and a slip is never left
//! `issued` with its feedback refused. `answered` is final: nothing moves an answered slip (件件有
//! 反馈: the feedback is the slip's end). Anything else is refused with the slip's state and the
//! allowed moves (HTTP 409 `illegal_transition`), like the case's moves.
//!
//! Due dates: the slip kind's default period, or the caseworker's `due_on` (end of that day,
//! Beijing time) when it is not later than the kind's limit; both from `clocks.toml`
//! ([`policies::Deadlines`]). Working days count on the official calendar
//! ([`policies::WorkingCalendar`]) and are provisional when they reach into a year without a
//! calendar file. A slip without feedback past its due time is overdue.

use policies::{Period, SlipPeriods, WorkingCalendar};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time, UtcOffset};

const BEIJING: UtcOffset = time::macros::offset!(+8);

/// 转办单状态.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlipState {
    /// 已转办，待签收
    Issued,
    /// 已签收
    Accepted,
    /// 已反馈（办结）
    Answered,
}

/// 转办单办理动作.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlipMove {
    /// 签收
    Accept,
    /// 反馈
    Answer,
}

impl SlipState {
    pub const ALL: [SlipState; 3] = [SlipState::Issued, SlipState::Accepted, SlipState::Answered];

    pub fn code(self) -> &'static str {
        match self {
            SlipState::Issued => "issued",
            SlipState::Accepted => "accepted",
            SlipState::Answered => "answered",
        }
    }

    pub fn from_code(code: &str) -> Option<SlipState> {
        SlipState::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            SlipState::Issued => "待签收",
            SlipState::Accepted => "已签收",
            SlipState::Answered => "已反馈",
        }
    }
}

impl SlipMove {
    pub const ALL: [SlipMove; 2] = [SlipMove::Accept, SlipMove::Answer];

    pub fn code(self) -> &'static str {
        match self {
            SlipMove::Accept => "accept",
            SlipMove::Answer => "answer",
        }
    }
}

/// Why a slip move is refused: the slip's state and the moves it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalSlipMove {
    pub state: SlipState,
    pub allowed: Vec<SlipMove>,
}

/// The state a move leads to from `state`.
pub fn next(state: SlipState, mv: SlipMove) -> Result<SlipState, IllegalSlipMove> {
    use SlipState as S;
    match (state, mv) {
        (S::Issued, SlipMove::Accept) => Ok(S::Accepted),
        (S::Issued | S::Accepted, SlipMove::Answer) => Ok(S::Answered),
        _ => Err(IllegalSlipMove {
            state,
            allowed: allowed(state),
        }),
    }
}

/// The moves `state` allows, in the order of [`SlipMove::ALL`].
pub fn allowed(state: SlipState) -> Vec<SlipMove> {
    match state {
        SlipState::Issued => vec![SlipMove::Accept, SlipMove::Answer],
        SlipState::Accepted => vec![SlipMove::Answer],
        SlipState::Answered => vec![],
    }
}

/// 已超期: not answered and past its due time.
pub fn overdue(state: SlipState, due_ms: i64, now_ms: i64) -> bool {
    state != SlipState::Answered && now_ms > due_ms
}

/// A slip's due time: an instant and whether it is provisional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub at: OffsetDateTime,
    pub provisional: bool,
}

/// 23:59:59 Beijing time of `d`.
pub fn end_of_day(d: Date) -> OffsetDateTime {
    d.with_time(Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT))
        .assume_offset(BEIJING)
}

/// `period` after `from` on `calendar`.
pub fn after(period: Period, from: OffsetDateTime, calendar: &WorkingCalendar) -> Due {
    match period {
        Period::Hours(h) => Due {
            at: from + time::Duration::hours(i64::from(h)),
            provisional: false,
        },
        Period::WorkingDays(n) => {
            let d = calendar.add_working_days(from.to_offset(BEIJING).date(), n);
            Due {
                at: end_of_day(d.date),
                provisional: d.provisional,
            }
        }
    }
}

/// Why a `due_on` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueOnProblem {
    /// Before today (Beijing time).
    InThePast,
    /// Later than the kind's limit (the latest allowed date).
    BeyondLimit(Date),
}

/// The due time of a slip issued at `issued` with `periods`: the default period, or the end of
/// `due_on` when it is today or later and not later than the limit.
pub fn due(
    periods: SlipPeriods,
    issued: OffsetDateTime,
    due_on: Option<Date>,
    calendar: &WorkingCalendar,
) -> Result<Due, DueOnProblem> {
    let Some(on) = due_on else {
        return Ok(after(periods.due, issued, calendar));
    };
    if on < issued.to_offset(BEIJING).date() {
        return Err(DueOnProblem::InThePast);
    }
    let limit = after(periods.max, issued, calendar);
    let at = end_of_day(on);
    if at > limit.at {
        return Err(DueOnProblem::BeyondLimit(
            limit.at.to_offset(BEIJING).date(),
        ));
    }
    // The limit's provisional flag covers the chosen date too (it lies before the limit).
    Ok(Due {
        at,
        provisional: limit.provisional && !calendar.has_year(on.year()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SlipMove as M;
    use SlipState as S;
    use time::macros::{date, datetime};

    fn check(state: S, mv: M, expected: Result<S, &[M]>) {
        let got = next(state, mv).map_err(|e| {
            assert_eq!(e.state, state);
            e.allowed
        });
        assert_eq!(
            got.as_ref().copied().map_err(Vec::as_slice),
            expected,
            "{state:?} {mv:?}"
        );
    }

    #[test]
    fn a_slip_is_accepted_then_answered_and_answered_is_final() {
        check(S::Issued, M::Accept, Ok(S::Accepted));
        check(S::Accepted, M::Answer, Ok(S::Answered));
        check(S::Accepted, M::Accept, Err(&[M::Answer]));
        check(S::Answered, M::Answer, Err(&[]));
        check(S::Answered, M::Accept, Err(&[]));
    }

    #[test]
    fn feedback_straight_from_issued_implies_acceptance() {
        check(S::Issued, M::Answer, Ok(S::Answered));
    }

    #[test]
    fn allowed_agrees_with_next_and_codes_match_serde() {
        for s in S::ALL {
            for m in M::ALL {
                assert_eq!(next(s, m).is_ok(), allowed(s).contains(&m), "{s:?} {m:?}");
            }
            assert_eq!(S::from_code(s.code()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.code());
        }
        for m in M::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.code());
        }
    }

    #[test]
    fn only_an_unanswered_slip_past_its_due_time_is_overdue() {
        assert!(overdue(S::Issued, 10, 11));
        assert!(overdue(S::Accepted, 10, 11));
        assert!(!overdue(S::Answered, 10, 11));
        assert!(!overdue(S::Issued, 10, 10));
    }

    fn cal() -> WorkingCalendar {
        WorkingCalendar::load_dir(WorkingCalendar::shipped_dir()).expect("shipped calendar")
    }

    const TEN_OF_TWENTY: SlipPeriods = SlipPeriods {
        due: Period::WorkingDays(10),
        max: Period::WorkingDays(20),
    };

    #[test]
    fn the_default_period_skips_national_day_and_counts_its_make_up_saturday() {
        // Issued Mon 2026-09-28: 09-29, 09-30 (2), National Day 10-01..07 off, 10-08, 09 (4),
        // Sat 10-10 (调休, 5), 10-12..16 (10).
        let d = due(TEN_OF_TWENTY, datetime!(2026-09-28 10:00 +8), None, &cal()).unwrap();
        assert_eq!(d.at, datetime!(2026-10-16 23:59:59 +8));
        assert!(!d.provisional);
    }

    #[test]
    fn a_due_on_must_be_from_today_to_the_limit() {
        let issued = datetime!(2026-03-02 09:00 +8);
        let d = due(TEN_OF_TWENTY, issued, Some(date!(2026 - 03 - 05)), &cal()).unwrap();
        assert_eq!(d.at, datetime!(2026-03-05 23:59:59 +8));
        assert_eq!(
            due(TEN_OF_TWENTY, issued, Some(date!(2026 - 03 - 01)), &cal()),
            Err(DueOnProblem::InThePast)
        );
        // 20 working days from Mon 03-02: 03-03..06 (4), 09..13 (9), 16..20 (14), 23..27 (19),
        // Mon 03-30 (20).
        assert!(due(TEN_OF_TWENTY, issued, Some(date!(2026 - 03 - 30)), &cal()).is_ok());
        assert_eq!(
            due(TEN_OF_TWENTY, issued, Some(date!(2026 - 03 - 31)), &cal()),
            Err(DueOnProblem::BeyondLimit(date!(2026 - 03 - 30)))
        );
    }

    #[test]
    fn hours_are_wall_clock_and_a_count_into_2027_is_provisional() {
        let issued = datetime!(2026-12-28 09:00 +8);
        let hours = SlipPeriods {
            due: Period::Hours(48),
            max: Period::Hours(72),
        };
        let d = due(hours, issued, None, &cal()).unwrap();
        assert_eq!(d.at, datetime!(2026-12-30 09:00 +8));
        assert!(!d.provisional);
        let calendar = cal();
        assert!(!calendar.has_year(2027), "test assumes no 2027 file");
        let d = due(TEN_OF_TWENTY, issued, None, &calendar).unwrap();
        assert!(d.provisional);
        assert_eq!(d.at.year(), 2027);
    }
}
