//! 救助案件词汇: the vocabulary of cases (救助申请) — intake channels (受理渠道), hardship kinds
//! (困难类型), kinds of first help (先行救助方式), assistance types (救助类型), referral-slip kinds
//! (转办单类型) and their results (办理结果). Pure codes; the
//! case's stages and moves are the hub's (`hub::cases::model`).

use serde::{Deserialize, Serialize};

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $code:literal, $zh:literal;)* }) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            /// The stable wire code.
            pub fn code(self) -> &'static str {
                match self { $($name::$v => $code,)* }
            }

            /// The Chinese name.
            pub fn name_zh(self) -> &'static str {
                match self { $($name::$v => $zh,)* }
            }

            pub fn from_code(code: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|c| c.code() == code)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

coded_enum! {
    /// 受理渠道: how a case reached the scheme.
    Channel {
        /// 窗口: at a township or street office window
        WalkIn => "walk_in", "窗口受理";
        /// 12345 热线: the city's 12345 hotline platform (an intake system)
        #[serde(rename = "hotline_12345")]
        Hotline12345 => "hotline_12345", "12345热线";
        /// 一码求助: the QR help service (an intake system)
        QrHelp => "qr_help", "一码求助";
        /// 村级报告: reported by a village assistant
        VillageReport => "village_report", "村级报告";
        /// 部门转介: referred by a partner department
        DepartmentReferral => "department_referral", "部门转介";
        /// 预警: raised by the early-warning rules
        Warning => "warning", "监测预警";
    }
}

coded_enum! {
    /// 困难类型: the hardship the household is in.
    Hardship {
        /// 疾病
        Illness => "illness", "疾病";
        /// 意外事故
        Accident => "accident", "意外事故";
        /// 自然灾害
        Disaster => "disaster", "自然灾害";
        /// 失业
        Unemployment => "unemployment", "失业";
        /// 家庭成员死亡
        DeathInHousehold => "death_in_household", "家庭成员死亡";
        /// 教育费用
        EducationCosts => "education_costs", "教育支出";
        /// 住房
        Housing => "housing", "住房困难";
        /// 其他
        Other => "other", "其他";
    }
}

coded_enum! {
    /// 先行救助方式: how first help was given.
    FirstHelpKind {
        /// 现金
        Cash => "cash", "现金";
        /// 实物
        InKind => "in_kind", "实物";
        /// 服务
        Service => "service", "服务";
    }
}

coded_enum! {
    /// 救助类型: the assistance an approval grants.
    AssistanceType {
        /// 临时救助
        TemporaryAssistance => "temporary_assistance", "临时救助";
        /// 最低生活保障
        Dibao => "dibao", "最低生活保障";
        /// 特困人员救助供养
        Tekun => "tekun", "特困人员救助供养";
        /// 医疗救助
        MedicalAssistance => "medical_assistance", "医疗救助";
        /// 教育救助
        EducationAid => "education_aid", "教育救助";
        /// 住房救助
        HousingAid => "housing_aid", "住房救助";
        /// 其他救助
        Other => "other", "其他救助";
    }
}

coded_enum! {
    /// 转办单类型: what a referral slip (转办单) asks for, which decides who receives it.
    SlipKind {
        /// 医疗救助 → health (卫健/医保)
        MedicalAssistance => "medical_assistance", "医疗救助";
        /// 教育救助 → education (教育)
        EducationAid => "education_aid", "教育救助";
        /// 住房救助 → housing (住建)
        Housing => "housing", "住房救助";
        /// 就业救助 → labor (人社)
        Employment => "employment", "就业救助";
        /// 法律援助 → justice (司法)
        LegalAid => "legal_aid", "法律援助";
        /// 康复救助 → disability (残联)
        Rehabilitation => "rehabilitation", "康复救助";
        /// 转乡镇: to another township's caseworkers (`to_township`)
        Township => "township", "转乡镇";
    }
}

impl SlipKind {
    /// The English name.
    pub fn name_en(self) -> &'static str {
        match self {
            SlipKind::MedicalAssistance => "medical assistance",
            SlipKind::EducationAid => "education aid",
            SlipKind::Housing => "housing assistance",
            SlipKind::Employment => "employment assistance",
            SlipKind::LegalAid => "legal aid",
            SlipKind::Rehabilitation => "rehabilitation",
            SlipKind::Township => "to another township",
        }
    }

    /// 承办部门: the department that receives a slip of this kind; `None` for
    /// [`SlipKind::Township`], which goes to a township's caseworkers.
    pub fn department(self) -> Option<crate::Department> {
        use crate::Department as D;
        match self {
            SlipKind::MedicalAssistance => Some(D::Health),
            SlipKind::EducationAid => Some(D::Education),
            SlipKind::Housing => Some(D::Housing),
            SlipKind::Employment => Some(D::Labor),
            SlipKind::LegalAid => Some(D::Justice),
            SlipKind::Rehabilitation => Some(D::Disability),
            SlipKind::Township => None,
        }
    }
}

coded_enum! {
    /// 办理结果: what the receiving party reports back on a referral slip (反馈).
    SlipResult {
        /// 已办结
        Done => "done", "已办结";
        /// 部分办结
        PartlyDone => "partly_done", "部分办结";
        /// 无法办理 (with the reason)
        NotPossible => "not_possible", "无法办理";
    }
}

impl Channel {
    /// The channels an intake system (role `intake`) files through; the others are a caseworker's.
    pub fn is_intake_system(self) -> bool {
        matches!(self, Channel::Hotline12345 | Channel::QrHelp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for c in Channel::ALL {
            assert_eq!(Channel::from_code(c.code()), Some(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.code());
        }
        for h in Hardship::ALL {
            assert_eq!(serde_json::to_value(h).unwrap(), h.code());
        }
        for k in FirstHelpKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.code());
        }
        for a in AssistanceType::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.code());
        }
        assert_eq!(Channel::from_code("fax"), None);
        for k in SlipKind::ALL {
            assert_eq!(SlipKind::from_code(k.code()), Some(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.code());
            assert_eq!(k.department().is_none(), *k == SlipKind::Township);
        }
        for r in SlipResult::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.code());
        }
    }
}
