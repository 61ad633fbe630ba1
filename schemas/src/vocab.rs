//! Departments (部门), purposes (核对用途) and urgency (紧急程度): the sets every crate shares.
//!
//! Wire names are `snake_case` and stable; Chinese names are for reports and the console.
//!
//! Departments are data, not a closed enum: [`Department`] is a `Copy` handle on an interned code.
//! The seven built-in departments are associated constants (`Department::Health`, usable as `match`
//! patterns) and always registered; a deployment adds more (应急管理 `emergency`, …) through
//! `policies/departments.toml`, which the `policies` crate loads and registers here with
//! [`Department::register`].
//!
//! Invariants:
//! - The registry only grows (a code once registered stays valid in this process, so a value held
//!   somewhere never dangles); a built-in's code and names never change (registering a built-in
//!   code with other names is refused).
//! - Deserializing a department accepts registered codes only, so an unknown code never reaches
//!   the rest of the hub and a caller cannot make the registry grow.

use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// A department code: lower-case letters and underscores, 2 to 32 characters (`health`, `emergency`).
pub const DEPARTMENT_CODE_PATTERN: &str = "^[a-z][a-z_]{1,31}$";

/// A partner department that answers fact queries through connector protocol v1 and pushes events.
///
/// A `Copy` handle on the department's interned code. Equality and hashing are by code; order puts
/// the seven built-ins first, in their historical order, then the others by code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Department(&'static str);

/// What the registry keeps about one department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    code: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
}

/// The seven built-ins: (code, Chinese name, English name), in their historical order.
const BUILT_IN: [Entry; 7] = [
    Entry {
        code: "civil_affairs",
        name_zh: "民政",
        name_en: "civil affairs",
    },
    Entry {
        code: "health",
        name_zh: "卫健/医保",
        name_en: "health and medical insurance",
    },
    Entry {
        code: "education",
        name_zh: "教育",
        name_en: "education",
    },
    Entry {
        code: "housing",
        name_zh: "住建",
        name_en: "housing and urban-rural development",
    },
    Entry {
        code: "labor",
        name_zh: "人社",
        name_en: "human resources and social security",
    },
    Entry {
        code: "justice",
        name_zh: "司法",
        name_en: "justice",
    },
    Entry {
        code: "disability",
        name_zh: "残联",
        name_en: "disabled persons' federation",
    },
];

/// Departments registered besides the built-ins (from `policies/departments.toml`).
static ADDED: RwLock<Vec<Entry>> = RwLock::new(Vec::new());

/// Why a department cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepartmentError {
    #[error("code must be 2 to 32 lower-case letters and underscores, starting with a letter")]
    BadCode,
    #[error("name_zh and name_en must not be empty")]
    EmptyName,
    #[error("built-in department `{0}` keeps its names ({1} / {2})")]
    BuiltInRenamed(&'static str, &'static str, &'static str),
}

/// `true` for a code of [`DEPARTMENT_CODE_PATTERN`].
pub fn department_code_ok(code: &str) -> bool {
    let b = code.as_bytes();
    (2..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || *c == b'_')
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[allow(non_upper_case_globals)]
impl Department {
    /// 民政: civil affairs
    pub const CivilAffairs: Department = Department("civil_affairs");
    /// 卫健/医保: health and medical insurance
    pub const Health: Department = Department("health");
    /// 教育: education
    pub const Education: Department = Department("education");
    /// 住建: housing and urban-rural development
    pub const Housing: Department = Department("housing");
    /// 人社: human resources and social security
    pub const Labor: Department = Department("labor");
    /// 司法: justice
    pub const Justice: Department = Department("justice");
    /// 残联: disabled persons' federation
    pub const Disability: Department = Department("disability");

    /// The seven built-in departments (those of the built-in fact catalogue), in their historical
    /// order. Departments added by configuration are in [`Department::registered`].
    pub const ALL: [Department; 7] = [
        Department::CivilAffairs,
        Department::Health,
        Department::Education,
        Department::Housing,
        Department::Labor,
        Department::Justice,
        Department::Disability,
    ];

    /// The stable wire code, e.g. `civil_affairs`.
    pub fn code(self) -> &'static str {
        self.0
    }

    fn entry(self) -> Entry {
        if let Some(e) = BUILT_IN.iter().find(|e| e.code == self.0) {
            return *e;
        }
        let added = ADDED.read().unwrap_or_else(|p| p.into_inner());
        added
            .iter()
            .find(|e| e.code == self.0)
            .copied()
            .unwrap_or(Entry {
                code: self.0,
                name_zh: self.0,
                name_en: self.0,
            })
    }

    /// The Chinese name used in reports.
    pub fn name_zh(self) -> &'static str {
        self.entry().name_zh
    }

    /// The English name.
    pub fn name_en(self) -> &'static str {
        self.entry().name_en
    }

    /// `true` for one of the seven built-ins.
    pub fn is_built_in(self) -> bool {
        BUILT_IN.iter().any(|e| e.code == self.0)
    }

    /// A registered department (built-in or added by configuration).
    pub fn from_code(code: &str) -> Option<Department> {
        if let Some(e) = BUILT_IN.iter().find(|e| e.code == code) {
            return Some(Department(e.code));
        }
        let added = ADDED.read().unwrap_or_else(|p| p.into_inner());
        added
            .iter()
            .find(|e| e.code == code)
            .map(|e| Department(e.code))
    }

    /// Every registered department: the built-ins in their order, then the added ones by code.
    pub fn registered() -> Vec<Department> {
        let mut all: Vec<Department> = Department::ALL.to_vec();
        let added = ADDED.read().unwrap_or_else(|p| p.into_inner());
        all.extend(added.iter().map(|e| Department(e.code)));
        all.sort();
        all
    }

    /// Register a department (idempotent). A built-in code must come with its own names; an added
    /// department's names may change (a reload), its code stays valid for the life of the process.
    pub fn register(
        code: &str,
        name_zh: &str,
        name_en: &str,
    ) -> Result<Department, DepartmentError> {
        if !department_code_ok(code) {
            return Err(DepartmentError::BadCode);
        }
        if name_zh.trim().is_empty() || name_en.trim().is_empty() {
            return Err(DepartmentError::EmptyName);
        }
        if let Some(e) = BUILT_IN.iter().find(|e| e.code == code) {
            if e.name_zh != name_zh || e.name_en != name_en {
                return Err(DepartmentError::BuiltInRenamed(
                    e.code, e.name_zh, e.name_en,
                ));
            }
            return Ok(Department(e.code));
        }
        let mut added = ADDED.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = added.iter_mut().find(|e| e.code == code) {
            if e.name_zh != name_zh {
                e.name_zh = leak(name_zh);
            }
            if e.name_en != name_en {
                e.name_en = leak(name_en);
            }
            return Ok(Department(e.code));
        }
        let e = Entry {
            code: leak(code),
            name_zh: leak(name_zh),
            name_en: leak(name_en),
        };
        added.push(e);
        Ok(Department(e.code))
    }

    /// Position among the built-ins (7 for an added department), for ordering.
    fn rank(self) -> usize {
        BUILT_IN
            .iter()
            .position(|e| e.code == self.0)
            .unwrap_or(BUILT_IN.len())
    }
}

impl PartialOrd for Department {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Department {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.rank(), self.0).cmp(&(other.rank(), other.0))
    }
}

impl std::fmt::Debug for Department {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Department({})", self.0)
    }
}

impl std::fmt::Display for Department {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Department {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Department {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Department;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a department code configured at this hub")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Department, E> {
                Department::from_code(v)
                    .ok_or_else(|| E::custom(format_args!("unknown department `{v}`")))
            }
        }
        d.deserialize_str(V)
    }
}

impl schemars::JsonSchema for Department {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Department".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "部门代码: a department code configured at the hub (civil_affairs, health, education, housing, labor, justice, disability, and those of policies/departments.toml)",
            "pattern": DEPARTMENT_CODE_PATTERN
        })
    }
}

/// 核对用途: the lawful purpose a verification is made for (PIPL purpose limitation).
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
pub enum Purpose {
    /// 低保申请: minimum living allowance application
    DibaoApplication,
    /// 特困供养: support for persons in extreme poverty
    TekunSupport,
    /// 临时救助: temporary assistance
    TemporaryAssistance,
    /// 医疗救助: medical assistance
    MedicalAssistance,
    /// 教育救助: education aid
    EducationAid,
    /// 住房救助: housing aid
    HousingAid,
    /// 年度复核: annual review of current recipients
    AnnualReview,
}

impl Purpose {
    pub const ALL: [Purpose; 7] = [
        Purpose::DibaoApplication,
        Purpose::TekunSupport,
        Purpose::TemporaryAssistance,
        Purpose::MedicalAssistance,
        Purpose::EducationAid,
        Purpose::HousingAid,
        Purpose::AnnualReview,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Purpose::DibaoApplication => "dibao_application",
            Purpose::TekunSupport => "tekun_support",
            Purpose::TemporaryAssistance => "temporary_assistance",
            Purpose::MedicalAssistance => "medical_assistance",
            Purpose::EducationAid => "education_aid",
            Purpose::HousingAid => "housing_aid",
            Purpose::AnnualReview => "annual_review",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Purpose::DibaoApplication => "低保申请",
            Purpose::TekunSupport => "特困供养",
            Purpose::TemporaryAssistance => "临时救助",
            Purpose::MedicalAssistance => "医疗救助",
            Purpose::EducationAid => "教育救助",
            Purpose::HousingAid => "住房救助",
            Purpose::AnnualReview => "年度复核",
        }
    }

    pub fn from_code(code: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.code() == code)
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// 紧急程度: how fast the scheme requires an answer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// 常规: preliminary investigation within 3 working days
    #[default]
    Normal,
    /// 紧急: urgent temporary assistance within 24 hours
    Urgent,
    /// 急难: emergency help within 2 hours
    Emergency,
}

impl Urgency {
    pub fn code(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::Urgent => "urgent",
            Urgency::Emergency => "emergency",
        }
    }

    /// The tier's Chinese name with its time limit, for pages and reports.
    pub fn name_zh(self) -> &'static str {
        match self {
            Urgency::Normal => "常规",
            Urgency::Urgent => "紧急（24小时内）",
            Urgency::Emergency => "急难（2小时内）",
        }
    }
}
