//! Departments (部门), purposes (核对用途) and urgency (紧急程度): the closed sets every crate shares.
//!
//! Wire names are `snake_case` and stable; Chinese names are for reports and the console.

use serde::{Deserialize, Serialize};

/// A partner department that answers fact queries through connector protocol v1.
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
pub enum Department {
    /// 民政: civil affairs
    CivilAffairs,
    /// 卫健/医保: health and medical insurance
    Health,
    /// 教育: education
    Education,
    /// 住建: housing and urban-rural development
    Housing,
    /// 人社: human resources and social security
    Labor,
    /// 司法: justice
    Justice,
    /// 残联: disabled persons' federation
    Disability,
}

impl Department {
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
        match self {
            Department::CivilAffairs => "civil_affairs",
            Department::Health => "health",
            Department::Education => "education",
            Department::Housing => "housing",
            Department::Labor => "labor",
            Department::Justice => "justice",
            Department::Disability => "disability",
        }
    }

    /// The Chinese name used in reports.
    pub fn name_zh(self) -> &'static str {
        match self {
            Department::CivilAffairs => "民政",
            Department::Health => "卫健/医保",
            Department::Education => "教育",
            Department::Housing => "住建",
            Department::Labor => "人社",
            Department::Justice => "司法",
            Department::Disability => "残联",
        }
    }

    pub fn from_code(code: &str) -> Option<Department> {
        Department::ALL.into_iter().find(|d| d.code() == code)
    }
}

impl std::fmt::Display for Department {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
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
