//! 中文格式: dates in Beijing time and money the Chinese way, and division names, for every page the
//! hub renders (the console and the printed documents).

use schemas::DivisionCode;
use time::{OffsetDateTime, UtcOffset};

/// Beijing time (UTC+8, no daylight saving).
pub const BEIJING: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// `2026年11月29日 14:05` in Beijing time.
pub fn datetime_zh(t: OffsetDateTime) -> String {
    let b = t.to_offset(BEIJING);
    format!(
        "{}年{}月{}日 {:02}:{:02}",
        b.year(),
        u8::from(b.month()),
        b.day(),
        b.hour(),
        b.minute()
    )
}

/// `2026年11月29日` in Beijing time.
pub fn date_zh(t: OffsetDateTime) -> String {
    let b = t.to_offset(BEIJING);
    format!("{}年{}月{}日", b.year(), u8::from(b.month()), b.day())
}

/// An RFC 3339 time as [`datetime_zh`]; text that is not one is returned as it is.
pub fn rfc3339_zh(s: &str) -> String {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(datetime_zh)
        .unwrap_or_else(|_| s.to_owned())
}

/// `¥1,234.56` (fen in, thousands separated; negative as `-¥…`): the same text as the printed
/// report and the CLI ([`crate::verify::aggregate::yuan`]).
pub fn money_zh(fen: i64) -> String {
    crate::verify::aggregate::yuan(fen)
}

/// A division by name (许庄街道, 任城区), with the code when the name is not known.
pub fn division_zh(code: &str) -> String {
    let Ok(d) = DivisionCode::parse(code) else {
        return code.to_owned();
    };
    let all = connectors::sim::divisions::Divisions::jining();
    if let Some(t) = all.township(&d) {
        return t.name.clone();
    }
    if let Some(c) = all.county(&d) {
        return c.name.clone();
    }
    match code {
        "370800" => "济宁市".to_owned(),
        _ => code.to_owned(),
    }
}

/// A role in Chinese.
pub fn role_zh(r: schemas::Role) -> &'static str {
    match r {
        schemas::Role::Caseworker => "经办人",
        schemas::Role::Department => "协作部门",
        schemas::Role::Auditor => "审计员",
        schemas::Role::Admin => "管理员",
        schemas::Role::Intake => "受理渠道",
        schemas::Role::VillageAssistant => "村级救助协理员",
    }
}

/// The principal of an identity URI (`spiffe://…/caseworker/office/370811002/cw-0001` → `cw-0001`).
pub fn principal_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_beijing_time_the_chinese_way() {
        let t = OffsetDateTime::parse(
            "2026-11-29T06:05:09.123456789Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(datetime_zh(t), "2026年11月29日 14:05");
        assert_eq!(date_zh(t), "2026年11月29日");
        assert_eq!(
            rfc3339_zh("2026-11-29T23:30:00+08:00"),
            "2026年11月29日 23:30"
        );
        assert_eq!(rfc3339_zh("2026-11-29T16:30:00Z"), "2026年11月30日 00:30");
        assert_eq!(rfc3339_zh("not a time"), "not a time");
    }

    #[test]
    fn money_is_grouped_yuan() {
        for (fen, want) in [
            (123456, "¥1,234.56"),
            (0, "¥0.00"),
            (5, "¥0.05"),
            (100_000_000, "¥1,000,000.00"),
            (99_999, "¥999.99"),
            (-123456, "-¥1,234.56"),
        ] {
            assert_eq!(money_zh(fen), want, "{fen}");
        }
    }

    #[test]
    fn divisions_by_name() {
        assert_eq!(division_zh("370811002"), "许庄街道");
        assert_eq!(division_zh("bogus"), "bogus");
    }
}

/// A fact's code in Chinese (婚姻状况 已婚, not `married`); `None` for a code not in the table.
pub fn code_zh(code: &str) -> Option<&'static str> {
    Some(match code {
        "unmarried" => "未婚",
        "married" => "已婚",
        "divorced" => "离异",
        "widowed" => "丧偶",
        "none" => "无",
        "dibao" => "低保",
        "tekun" => "特困",
        "orphan" => "孤儿",
        "child_in_hardship" => "困境儿童",
        "chronic" => "慢性病",
        "serious" => "重特大疾病",
        "not_enrolled" => "未在学",
        "preschool" => "在读 学前",
        "primary" => "在读 小学",
        "junior_secondary" => "在读 初中",
        "senior_secondary" => "在读 高中",
        "secondary_vocational" => "在读 中职",
        "higher_vocational" => "在读 高职",
        "undergraduate" => "在读 本科",
        "postgraduate" => "在读 研究生",
        "employed" => "在职",
        "self_employed" => "灵活就业/个体",
        "registered_unemployed" => "登记失业",
        "retired" => "退休",
        "not_in_labor_force" => "非劳动力",
        "imprisoned" => "服刑",
        "community_correction" => "社区矫正",
        "visual" => "视力残疾",
        "hearing" => "听力残疾",
        "speech" => "言语残疾",
        "physical" => "肢体残疾",
        "intellectual" => "智力残疾",
        "mental" => "精神残疾",
        "multiple" => "多重残疾",
        "1" => "一级",
        "2" => "二级",
        "3" => "三级",
        "4" => "四级",
        _ => return None,
    })
}

#[cfg(test)]
mod code_tests {
    use schemas::catalogue::FactKind;

    /// Every code any fact kind may carry has its Chinese name.
    #[test]
    fn every_catalogue_code_has_a_chinese_name() {
        for k in FactKind::BUILT_IN.iter() {
            for c in k.spec().codes {
                assert!(super::code_zh(c).is_some(), "{k:?}: {c}");
            }
        }
    }
}
