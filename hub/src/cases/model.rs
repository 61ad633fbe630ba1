//! The case's stages and the moves between them (案件办理流程): one state machine, pure code.
//!
//! ```text
//! received ──accept──▶ accepted ──first_help──▶ helped ──investigate──▶ investigated
//!    ▲  │                 │  │                  │  ▲                     │        │
//!    └──┴──transfer───────┘  └──investigate*────┼──┼─────────────────────┘        │
//!                                               └──┘ first_help (more help)       │
//!  investigated ──decide──▶ decided ──close──▶ closed                              │
//!  investigated ──hand_to_county──▶ with_county ──decide──▶ decided  ◀────────────┘
//! ```
//!
//! `*` only a `normal` case goes to investigation straight from acceptance: an emergency (急难,
//! 2 h) or urgent (24 h) case gets first help (先行救助) first. A transfer (分办) sends a case to
//! another township, where it is `received` again until that township accepts it. Who may make a
//! move (jurisdiction; the county decides what was handed to it) is Cedar's (`cases.cedar`);
//! which moves exist from a stage is this module's, and anything else is refused with the current
//! stage and the allowed moves (HTTP 409 `illegal_transition`).

use schemas::Urgency;
use serde::{Deserialize, Serialize};

/// 案件阶段: where a case stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// 已申请，待受理: filed, waiting for the township of the registered address
    Received,
    /// 已受理
    Accepted,
    /// 已先行救助
    Helped,
    /// 已调查（入户调查、初审意见）
    Investigated,
    /// 已转交县级审批
    WithCounty,
    /// 已决定（批准或不予批准，已告知）
    Decided,
    /// 已办结
    Closed,
}

/// 办理动作: a move from one stage to another.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Move {
    /// 受理
    Accept,
    /// 分办: to another township, with the reason
    Transfer,
    /// 先行救助
    FirstHelp,
    /// 入户调查与初审意见
    Investigate,
    /// 转交县级
    HandToCounty,
    /// 审批决定（批准／不予批准并告知）
    Decide,
    /// 办结
    Close,
}

impl CaseState {
    pub const ALL: [CaseState; 7] = [
        CaseState::Received,
        CaseState::Accepted,
        CaseState::Helped,
        CaseState::Investigated,
        CaseState::WithCounty,
        CaseState::Decided,
        CaseState::Closed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            CaseState::Received => "received",
            CaseState::Accepted => "accepted",
            CaseState::Helped => "helped",
            CaseState::Investigated => "investigated",
            CaseState::WithCounty => "with_county",
            CaseState::Decided => "decided",
            CaseState::Closed => "closed",
        }
    }

    pub fn from_code(code: &str) -> Option<CaseState> {
        CaseState::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            CaseState::Received => "待受理",
            CaseState::Accepted => "已受理",
            CaseState::Helped => "已先行救助",
            CaseState::Investigated => "已调查",
            CaseState::WithCounty => "已转交县级",
            CaseState::Decided => "已决定",
            CaseState::Closed => "已办结",
        }
    }
}

impl Move {
    pub const ALL: [Move; 7] = [
        Move::Accept,
        Move::Transfer,
        Move::FirstHelp,
        Move::Investigate,
        Move::HandToCounty,
        Move::Decide,
        Move::Close,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Move::Accept => "accept",
            Move::Transfer => "transfer",
            Move::FirstHelp => "first_help",
            Move::Investigate => "investigate",
            Move::HandToCounty => "hand_to_county",
            Move::Decide => "decide",
            Move::Close => "close",
        }
    }
}

/// Why a move is refused: the stage the case is in and the moves it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    pub state: CaseState,
    pub allowed: Vec<Move>,
    /// Why, when the move exists from this stage in general but not for this case.
    pub why: Option<&'static str>,
}

/// The stage a move leads to from `state`, for a case of `tier`.
pub fn next(state: CaseState, tier: Urgency, mv: Move) -> Result<CaseState, IllegalTransition> {
    use CaseState as S;
    let to = match (state, mv) {
        (S::Received, Move::Accept) => Some(S::Accepted),
        (S::Received | S::Accepted, Move::Transfer) => Some(S::Received),
        (S::Accepted | S::Helped, Move::FirstHelp) => Some(S::Helped),
        (S::Accepted, Move::Investigate) if tier == Urgency::Normal => Some(S::Investigated),
        (S::Helped, Move::Investigate) => Some(S::Investigated),
        (S::Investigated, Move::HandToCounty) => Some(S::WithCounty),
        (S::Investigated | S::WithCounty, Move::Decide) => Some(S::Decided),
        (S::Decided, Move::Close) => Some(S::Closed),
        _ => None,
    };
    to.ok_or_else(|| IllegalTransition {
        state,
        allowed: allowed(state, tier),
        why: (state == S::Accepted && mv == Move::Investigate).then_some(
            "急难、紧急案件须先行救助后再入户调查 / an emergency or urgent case gets first help before the investigation",
        ),
    })
}

/// The moves a case of `tier` allows from `state`, in the order of [`Move::ALL`].
pub fn allowed(state: CaseState, tier: Urgency) -> Vec<Move> {
    Move::ALL
        .into_iter()
        .filter(|m| next_exists(state, tier, *m))
        .collect()
}

fn next_exists(state: CaseState, tier: Urgency, mv: Move) -> bool {
    use CaseState as S;
    matches!(
        (state, mv),
        (S::Received, Move::Accept)
            | (S::Received | S::Accepted, Move::Transfer)
            | (S::Accepted | S::Helped, Move::FirstHelp)
            | (S::Helped, Move::Investigate)
            | (S::Investigated, Move::HandToCounty)
            | (S::Investigated | S::WithCounty, Move::Decide)
            | (S::Decided, Move::Close)
    ) || (state == S::Accepted && mv == Move::Investigate && tier == Urgency::Normal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseState as S;

    fn check(state: S, tier: Urgency, mv: Move, expected: Result<S, &[Move]>) {
        let got = next(state, tier, mv).map_err(|e| {
            assert_eq!(e.state, state);
            e.allowed
        });
        assert_eq!(
            got.as_ref().copied().map_err(Vec::as_slice),
            expected,
            "{state:?} {tier:?} {mv:?}"
        );
    }

    #[test]
    fn the_closed_loop_of_an_emergency_case() {
        let t = Urgency::Emergency;
        check(S::Received, t, Move::Accept, Ok(S::Accepted));
        check(S::Accepted, t, Move::FirstHelp, Ok(S::Helped));
        check(S::Helped, t, Move::FirstHelp, Ok(S::Helped));
        check(S::Helped, t, Move::Investigate, Ok(S::Investigated));
        check(S::Investigated, t, Move::Decide, Ok(S::Decided));
        check(S::Decided, t, Move::Close, Ok(S::Closed));
    }

    #[test]
    fn emergency_and_urgent_cases_get_first_help_before_investigation() {
        for t in [Urgency::Emergency, Urgency::Urgent] {
            check(
                S::Accepted,
                t,
                Move::Investigate,
                Err(&[Move::Transfer, Move::FirstHelp]),
            );
            let e = next(S::Accepted, t, Move::Investigate).unwrap_err();
            assert!(e.why.is_some());
        }
        check(
            S::Accepted,
            Urgency::Normal,
            Move::Investigate,
            Ok(S::Investigated),
        );
    }

    #[test]
    fn transfers_return_the_case_to_received_and_the_county_decides_what_it_is_handed() {
        let t = Urgency::Normal;
        check(S::Received, t, Move::Transfer, Ok(S::Received));
        check(S::Accepted, t, Move::Transfer, Ok(S::Received));
        check(
            S::Helped,
            t,
            Move::Transfer,
            Err(&[Move::FirstHelp, Move::Investigate]),
        );
        check(S::Investigated, t, Move::HandToCounty, Ok(S::WithCounty));
        check(S::WithCounty, t, Move::Decide, Ok(S::Decided));
        check(S::WithCounty, t, Move::HandToCounty, Err(&[Move::Decide]));
    }

    #[test]
    fn nothing_moves_a_closed_case_and_nothing_skips_a_stage() {
        for t in [Urgency::Normal, Urgency::Urgent, Urgency::Emergency] {
            for mv in Move::ALL {
                check(S::Closed, t, mv, Err(&[]));
            }
            check(
                S::Received,
                t,
                Move::Decide,
                Err(&[Move::Accept, Move::Transfer]),
            );
            check(
                S::Received,
                t,
                Move::Close,
                Err(&[Move::Accept, Move::Transfer]),
            );
            check(S::Decided, t, Move::Decide, Err(&[Move::Close]));
        }
    }

    #[test]
    fn allowed_agrees_with_next_everywhere() {
        for state in S::ALL {
            for t in [Urgency::Normal, Urgency::Urgent, Urgency::Emergency] {
                for mv in Move::ALL {
                    assert_eq!(
                        next(state, t, mv).is_ok(),
                        allowed(state, t).contains(&mv),
                        "{state:?} {t:?} {mv:?}"
                    );
                }
            }
            assert_eq!(CaseState::from_code(state.code()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.code());
        }
        for mv in Move::ALL {
            assert_eq!(serde_json::to_value(mv).unwrap(), mv.code());
        }
    }
}
