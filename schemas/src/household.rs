//! 家庭: the household a verification is about, its members (家庭成员) and each member's relation
//! to the applicant (与申请人关系).
//!
//! Invariant: a [`Household`] that passed [`Household::validate`] has exactly one applicant
//! (本人), at least one member, and no resident ID twice. Errors name the field
//! (`members[2].relation`) and never repeat a resident ID number.

use serde::{Deserialize, Serialize};

use crate::{DivisionCode, ResidentId};

/// 与申请人关系: a member's relation to the applicant.
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
pub enum Relation {
    /// 本人: the applicant
    Applicant,
    /// 配偶: spouse
    Spouse,
    /// 子女: son or daughter (including adopted and step-children who live in the household)
    Child,
    /// 父母: father or mother
    Parent,
    /// 兄弟姐妹: brother or sister
    Sibling,
    /// (外)祖父母: grandparent
    Grandparent,
    /// (外)孙子女: grandchild
    Grandchild,
    /// 儿媳/女婿: son- or daughter-in-law
    ChildInLaw,
    /// 公婆/岳父母: parent-in-law
    ParentInLaw,
    /// 其他: another person the household declares (e.g. a dependant relative)
    Other,
}

impl Relation {
    pub const ALL: [Relation; 10] = [
        Relation::Applicant,
        Relation::Spouse,
        Relation::Child,
        Relation::Parent,
        Relation::Sibling,
        Relation::Grandparent,
        Relation::Grandchild,
        Relation::ChildInLaw,
        Relation::ParentInLaw,
        Relation::Other,
    ];

    /// The stable wire code, e.g. `child_in_law`.
    pub fn code(self) -> &'static str {
        match self {
            Relation::Applicant => "applicant",
            Relation::Spouse => "spouse",
            Relation::Child => "child",
            Relation::Parent => "parent",
            Relation::Sibling => "sibling",
            Relation::Grandparent => "grandparent",
            Relation::Grandchild => "grandchild",
            Relation::ChildInLaw => "child_in_law",
            Relation::ParentInLaw => "parent_in_law",
            Relation::Other => "other",
        }
    }

    /// The Chinese name used in reports.
    pub fn name_zh(self) -> &'static str {
        match self {
            Relation::Applicant => "本人",
            Relation::Spouse => "配偶",
            Relation::Child => "子女",
            Relation::Parent => "父母",
            Relation::Sibling => "兄弟姐妹",
            Relation::Grandparent => "祖父母/外祖父母",
            Relation::Grandchild => "孙子女/外孙子女",
            Relation::ChildInLaw => "儿媳/女婿",
            Relation::ParentInLaw => "公婆/岳父母",
            Relation::Other => "其他",
        }
    }

    pub fn from_code(code: &str) -> Option<Relation> {
        Relation::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// 家庭成员: one member of the household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// 公民身份号码
    pub resident_id: ResidentId,
    /// 姓名: the name as declared, for display on reports only (never used to match records).
    pub name: String,
    /// 与申请人关系
    pub relation: Relation,
}

/// 家庭: the household whose economic status is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Household {
    /// 户籍所在地: the division (county or township) where the household is registered; selects the
    /// local standards and the caseworker's jurisdiction.
    pub registered_division: DivisionCode,
    /// 家庭成员: the applicant first by convention, but order is not significant.
    pub members: Vec<Member>,
}

/// Why a household is not acceptable. The `field` is a JSON path such as `members[2].relation`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct HouseholdError {
    pub field: String,
    pub rule: String,
}

/// Upper bound on household size; a larger "household" is a data-entry error.
pub const MAX_MEMBERS: usize = 30;

/// Upper bound on a member's name, in characters: names go into signed reports and printed pages.
pub const MAX_NAME_CHARS: usize = 64;

/// At most this many digits in a name: a name is not the place for an ID or phone number.
pub const MAX_NAME_DIGITS: usize = 4;

/// Why `name` is not acceptable as a member's name, if it is not. Never quotes the name.
pub fn name_problem(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    let digits = name
        .chars()
        .filter(|c| c.is_ascii_digit() || ('０'..='９').contains(c))
        .count();
    if digits > MAX_NAME_DIGITS {
        return Some(format!(
            "must not contain more than {MAX_NAME_DIGITS} digits (an ID number belongs in resident_id)"
        ));
    }
    None
}

impl Household {
    /// Check the household-level rules (the member fields are already valid by type).
    pub fn validate(&self) -> Result<(), HouseholdError> {
        let err = |field: String, rule: &str| HouseholdError {
            field,
            rule: rule.to_owned(),
        };
        if self.members.is_empty() {
            return Err(err("members".into(), "must list at least the applicant"));
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(err(
                "members".into(),
                &format!("must have at most {MAX_MEMBERS} members"),
            ));
        }
        let mut applicant: Option<usize> = None;
        for (i, m) in self.members.iter().enumerate() {
            if let Some(rule) = name_problem(&m.name) {
                return Err(err(format!("members[{i}].name"), &rule));
            }
            if m.relation == Relation::Applicant {
                if let Some(first) = applicant {
                    return Err(err(
                        format!("members[{i}].relation"),
                        &format!("only one applicant allowed; members[{first}] is the applicant"),
                    ));
                }
                applicant = Some(i);
            }
            if let Some(j) = self.members[..i]
                .iter()
                .position(|o| o.resident_id == m.resident_id)
            {
                return Err(err(
                    format!("members[{i}].resident_id"),
                    &format!("same person as members[{j}]"),
                ));
            }
        }
        if applicant.is_none() {
            return Err(err(
                "members".into(),
                "must contain exactly one member with relation \"applicant\"",
            ));
        }
        Ok(())
    }

    /// The applicant (本人), if the household has one.
    pub fn applicant(&self) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.relation == Relation::Applicant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn member(seq: u16, relation: Relation) -> Member {
        Member {
            resident_id: ResidentId::from_parts("370811", date!(1980 - 05 - 01), seq).unwrap(),
            name: format!("成员{seq}"),
            relation,
        }
    }

    fn check(members: Vec<Member>, expected: Result<(), (&str, &str)>) {
        let h = Household {
            registered_division: DivisionCode::parse("370811002").unwrap(),
            members,
        };
        assert_eq!(
            h.validate(),
            expected.map_err(|(f, r)| HouseholdError {
                field: f.into(),
                rule: r.into()
            })
        );
    }

    #[test]
    fn household_rules() {
        use Relation::*;
        check(vec![member(1, Applicant)], Ok(()));
        check(
            vec![member(1, Applicant), member(2, Spouse), member(3, Child)],
            Ok(()),
        );
        check(vec![], Err(("members", "must list at least the applicant")));
        check(
            vec![member(1, Spouse)],
            Err((
                "members",
                "must contain exactly one member with relation \"applicant\"",
            )),
        );
        check(
            vec![
                member(1, Applicant),
                member(2, Spouse),
                member(3, Applicant),
            ],
            Err((
                "members[2].relation",
                "only one applicant allowed; members[0] is the applicant",
            )),
        );
        check(
            vec![member(1, Applicant), member(2, Child), member(2, Child)],
            Err(("members[2].resident_id", "same person as members[1]")),
        );
        let mut nameless = member(2, Spouse);
        nameless.name = "  ".into();
        check(
            vec![member(1, Applicant), nameless],
            Err(("members[1].name", "must not be empty")),
        );
    }

    #[test]
    fn names_are_short_text_without_id_numbers() {
        let named = |name: &str| {
            let mut m = member(1, Relation::Applicant);
            m.name = name.into();
            vec![m]
        };
        for ok in [
            "王秀英",
            "阿依古丽·买买提",
            "Li Wei",
            "张三2",
            &"名".repeat(MAX_NAME_CHARS),
        ] {
            check(named(ok), Ok(()));
        }
        for (bad, rule) in [
            (
                "名".repeat(MAX_NAME_CHARS + 1),
                "must be at most 64 characters",
            ),
            ("x".repeat(900_000), "must be at most 64 characters"),
            (
                "王370811198005010011".into(),
                "must not contain more than 4 digits (an ID number belongs in resident_id)",
            ),
            (
                "王３７０８１１".into(),
                "must not contain more than 4 digits (an ID number belongs in resident_id)",
            ),
            ("王\u{0}五".into(), "must not contain control characters"),
        ] {
            check(named(&bad), Err(("members[0].name", rule)));
        }
    }

    #[test]
    fn relation_codes_round_trip() {
        for r in Relation::ALL {
            assert_eq!(Relation::from_code(r.code()), Some(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::String(r.code().into())
            );
        }
    }
}
