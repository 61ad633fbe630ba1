//! 核对报告打印页: the printable zh-CN page of a verification report, for the case file.
//!
//! Chinese first, English second. Every department appears with its status (a missing department is
//! never silent), every fact with its provenance. Household members appear by name and relation; the
//! page never prints a resident ID (the report does not hold one: members carry pseudonyms).
//!
//! The page is rendered from the caller's view of the report (`report::apply_raw_visibility`), never
//! from the stored report: a figure withheld in the view is printed as its withheld reason, and the
//! texts of indications and discrepancies are the view's (which state a figure only when shown).

use schemas::FactValue;

use crate::console::format::{code_zh, datetime_zh, division_zh, rfc3339_zh, role_zh};

use super::report::Report;

use super::aggregate::{Aggregation, Figure, WITHHELD_FIGURE_TEXT, yuan};

fn area(dm2: i64) -> String {
    format!("{}.{:02} m²", dm2 / 100, (dm2 % 100).abs())
}

/// A fact value as a caseworker reads it.
pub fn value_text(v: &FactValue) -> String {
    match v {
        FactValue::Bool(b) => (if *b { "是 / yes" } else { "否 / no" }).to_owned(),
        FactValue::Count(n) => n.to_string(),
        FactValue::MoneyFen(f) => yuan(*f),
        FactValue::AreaDm2(a) => area(*a),
        FactValue::Days(d) => format!("{d} 天 / days"),
        FactValue::Code(c) => c.clone(),
        FactValue::Division(d) => d.as_str().to_owned(),
        FactValue::OptionalDate(Some(d)) => d.to_string(),
        FactValue::OptionalDate(None) => "无 / none".to_owned(),
        FactValue::MonthlyFen(months) => {
            let total: i64 = months.iter().map(|m| m.fen).sum();
            let avg = if months.is_empty() {
                0
            } else {
                total / months.len() as i64
            };
            format!(
                "{} 个月合计 {} · 月均 {} / {} months, total {}, monthly {}",
                months.len(),
                yuan(total),
                yuan(avg),
                months.len(),
                yuan(total),
                yuan(avg)
            )
        }
    }
}

/// One label/value row of the page (label Chinese first, English second).
pub struct Row {
    pub label: String,
    pub value: String,
    pub note: String,
}

fn row(label: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        label: label.into(),
        value: value.into(),
        note: String::new(),
    }
}

pub struct DepartmentLine {
    pub name: String,
    pub code: &'static str,
    pub status: String,
    pub warn: bool,
    pub answered: String,
    pub key_id: String,
    pub log_index: String,
}

pub struct FactLine {
    pub name: String,
    pub value: String,
    pub period: String,
    pub source: String,
}

pub struct MemberBlock {
    pub heading: String,
    pub facts: Vec<FactLine>,
    pub notes: Vec<String>,
}

/// One fact kind across the household (the printed page's compact table: one column per member).
pub struct MatrixRow {
    pub name: String,
    /// One value per member, in the members' order (`—` when the member has none).
    pub values: Vec<String>,
    /// The department, the period and when it answered (or the reuse).
    pub source: String,
}

pub struct Figures {
    pub as_of: String,
    pub rows: Vec<Row>,
    pub indications: Vec<String>,
    pub discrepancies: Vec<String>,
    pub gaps: Vec<String>,
    pub disclaimer: String,
}

pub struct SignatureLine {
    pub alg: String,
    pub key_id: String,
    pub value: String,
    pub check_code: String,
}

/// 核对报告打印页 (`hub/templates/print/report.html`).
#[derive(askama::Template)]
#[template(path = "print/report.html")]
struct ReportPage {
    case_ref: String,
    header: Vec<Row>,
    warnings: Vec<String>,
    departments: Vec<DepartmentLine>,
    member_heads: Vec<String>,
    matrix: Vec<MatrixRow>,
    member_notes: Vec<String>,
    withheld_note: Option<String>,
    figures: Option<Figures>,
    /// Why figures print as withheld, said once under them.
    figures_withheld: Option<String>,
    signature: Option<SignatureLine>,
    printed_at: String,
}

/// The person behind an identity URI as a caseworker reads it: `许庄街道 经办人` with the principal in
/// small print (`spiffe://<domain>/<role>/<organisation>/<division>/<principal>`).
pub fn person_zh(uri: &str) -> (String, String) {
    let parts: Vec<&str> = uri.trim_start_matches("spiffe://").split('/').collect();
    match parts.as_slice() {
        [_, role, _org, division, principal] => {
            let role = schemas::Role::from_code(role).map(role_zh).unwrap_or("");
            (
                format!("{}{}", division_zh(division), role),
                (*principal).to_owned(),
            )
        }
        _ => (uri.to_owned(), String::new()),
    }
}

/// The short check code of a signature: the first 12 hex digits of SHA-256 over the signature's
/// text, in groups of four. An auditor recomputes it from the signed report (`GET
/// /v1/verifications/{id}`) after checking the signature against `/v1/report-key`.
pub fn check_code(signature_value: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, signature_value.as_bytes());
    let h = hex::encode(&d.as_ref()[..6]).to_uppercase();
    format!("{}-{}-{}", &h[0..4], &h[4..8], &h[8..12])
}

/// A date or time of the report the Chinese way: RFC 3339 times in Beijing time, `YYYY-MM-DD`
/// dates as `YYYY年M月D日`.
fn when_zh(s: &str) -> String {
    let d = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(s, &d) {
        Ok(date) => format!(
            "{}年{}月{}日",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
        Err(_) => rfc3339_zh(s),
    }
}

/// The unit of an amount paid per period, as a suffix (`/月`); empty for a total over the
/// reference period (the period is printed beside it).
fn per(unit: schemas::Unit) -> &'static str {
    match unit {
        schemas::Unit::FenPerMonth => "/月",
        schemas::Unit::FenPerAcademicYear => "/学年",
        _ => "",
    }
}

/// A fact value as the printed page shows it: codes in Chinese, the code in small print.
fn fact_text(v: &FactValue) -> (String, String) {
    match v {
        FactValue::Code(c) => match code_zh(c) {
            Some(zh) => (zh.to_owned(), c.clone()),
            None => (c.clone(), String::new()),
        },
        FactValue::Division(d) => (division_zh(d.as_str()), d.as_str().to_owned()),
        FactValue::OptionalDate(Some(d)) => (when_zh(&d.to_string()), String::new()),
        other => (value_text(other), String::new()),
    }
}

/// The report's parts as a caseworker reads them: shared by the printed page and the console's
/// report page (`console::checks`).
pub struct Sections {
    pub header: Vec<Row>,
    pub warnings: Vec<String>,
    pub departments: Vec<DepartmentLine>,
    pub members: Vec<MemberBlock>,
    pub figures: Option<Figures>,
    pub signature: Option<SignatureLine>,
}

/// Shown in a cell of the compact table for a withheld value (the reason once, as a note).
const WITHHELD_CELL: &str = "不显示*";

/// The members' facts as one table, a row per fact kind and a column per member, so that a
/// household of three prints on two A4 pages; the withheld reason once, the members' notes after.
fn matrix(report: &Report) -> (Vec<String>, Vec<MatrixRow>, Vec<String>, Option<String>) {
    // Labelled as the indications and figures name them (m1, m2, …), with name and relation.
    let heads = report
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let rel = schemas::Relation::from_code(&m.relation)
                .map(|r| r.name_zh())
                .unwrap_or(m.relation.as_str());
            format!("m{} {}（{}）", i + 1, m.name, rel)
        })
        .collect();
    let mut kinds = Vec::new();
    for f in report.members.iter().flat_map(|m| &m.facts) {
        if !kinds.contains(&f.kind) {
            kinds.push(f.kind);
        }
    }
    let mut withheld = None;
    let rows = kinds
        .into_iter()
        .map(|k| {
            let mut source = String::new();
            let values = report
                .members
                .iter()
                .map(|m| match m.facts.iter().find(|f| f.kind == k) {
                    None => "—".to_owned(),
                    Some(f) => {
                        // The department (its answer time is in the departments' table), the
                        // period when it spans more than the day, the reuse when reused.
                        if source.is_empty() {
                            source = f.department.name_zh().to_owned();
                            if f.period_from != f.period_to {
                                source.push_str(&format!(
                                    " · {}–{}",
                                    when_zh(&f.period_from),
                                    when_zh(&f.period_to)
                                ));
                            }
                            if let Some(v) = &f.reused_from {
                                source.push_str(" · ");
                                source.push_str(&super::report::reused_text(v, &f.answered_at));
                            }
                        }
                        match &f.value {
                            // An amount paid per period says so (`/月`).
                            Some(v @ FactValue::MoneyFen(_)) => {
                                format!("{}{}", fact_text(v).0, per(k.spec().unit))
                            }
                            // Chinese only: a code or the English would not fit the cell.
                            Some(v) => zh_part(&fact_text(v).0),
                            None => {
                                withheld = withheld.take().or_else(|| f.withheld.clone());
                                WITHHELD_CELL.to_owned()
                            }
                        }
                    }
                })
                .collect();
            let spec = k.spec();
            MatrixRow {
                name: spec.name_zh.to_owned(),
                values,
                source,
            }
        })
        .collect();
    let notes = report
        .members
        .iter()
        .flat_map(|m| {
            m.notes.iter().map(move |n| {
                format!(
                    "{}：{}：{} — {}",
                    m.name,
                    n.department.name_zh(),
                    n.status,
                    n.reason
                )
            })
        })
        .collect();
    (heads, rows, notes, withheld)
}

/// A declared figure's name for the printed page (the request's field path is for programs).
fn declared_zh(f: crate::verify::aggregate::DeclaredField) -> &'static str {
    use crate::verify::aggregate::DeclaredField as F;
    match f {
        F::HouseholdMonthlyIncomeFen => "申报家庭月收入",
        F::PropertiesOwned => "申报房产套数",
        F::FloorAreaDm2 => "申报住房建筑面积",
        F::FinancialAssetsFen => "申报金融资产",
    }
}

/// The Chinese part of a `中文 / English` text (a cell of the printed table has no room for both;
/// the headings keep the English).
fn zh_part(text: &str) -> String {
    text.split(" / ").next().unwrap_or(text).trim().to_owned()
}

/// Render the page.
pub fn render(report: &Report) -> Result<String, askama::Error> {
    use askama::Template;
    let mut s = sections(report);
    let (member_heads, matrix, member_notes, withheld_note) = matrix(report);
    // A withheld figure prints as the withheld cell does, its reason once under the table.
    let mut figures_withheld = false;
    if let Some(f) = &mut s.figures {
        for r in &mut f.rows {
            if r.value == WITHHELD_FIGURE_TEXT {
                r.value = WITHHELD_CELL.to_owned();
                figures_withheld = true;
            }
            if r.note.contains(WITHHELD_FIGURE_TEXT) {
                r.note = r.note.replace(WITHHELD_FIGURE_TEXT, WITHHELD_CELL);
                figures_withheld = true;
            }
        }
    }
    ReportPage {
        case_ref: report.case_ref.clone(),
        header: s.header,
        warnings: s.warnings,
        departments: s.departments,
        member_heads,
        matrix,
        member_notes,
        withheld_note,
        figures: s.figures,
        figures_withheld: figures_withheld.then(|| WITHHELD_FIGURE_TEXT.to_owned()),
        signature: s.signature,
        printed_at: datetime_zh(time::OffsetDateTime::now_utc()),
    }
    .render()
}

/// The report's parts, Chinese first.
pub fn sections(report: &Report) -> Sections {
    let (by, by_principal) = person_zh(&report.requested_by);
    let mut header = vec![
        row("案件编号 / case", report.case_ref.clone()),
        row("核对用途 / purpose", report.purpose.name_zh()),
        row("紧急程度 / urgency", report.urgency.name_zh()),
        Row {
            note: report.registered_division.clone(),
            ..row(
                "户籍登记地 / registered division",
                division_zh(&report.registered_division),
            )
        },
        Row {
            note: by_principal,
            ..row("发起人 / requested by", by)
        },
        row("核对时间 / time", when_zh(&report.created_at)),
        row("报告编号 / report id", report.id.clone()),
        row(
            "授权书 / authorization letter",
            report.authorization_id.as_deref().unwrap_or("—"),
        ),
    ];
    header.retain(|r| !r.value.is_empty());
    let mut warnings = Vec::new();
    if let Some(f) = &report.letter_follow_up {
        warnings.push(format!(
            "紧急或急难核对（先核对后补授权书）：{} / emergency or urgent check run before its letter",
            f.text
        ));
    } else if report.emergency_without_letter {
        let due = report
            .letter_due_by
            .as_deref()
            .map(when_zh)
            .unwrap_or_else(|| "—".into());
        warnings.push(format!(
            "紧急或急难核对，授权书须于 {due} 前补交 / emergency or urgent check: the authorization letter is due by {due}"
        ));
    }
    if !report.complete {
        warnings.push(
            "部分部门未答复，结论须人工复核 / not every department answered; review before deciding"
                .to_owned(),
        );
    }
    let departments = report
        .departments
        .iter()
        .map(|d| DepartmentLine {
            name: d.name_zh.clone(),
            code: d.department.code(),
            status: d.status_text.clone(),
            warn: !d.status.has_facts(),
            answered: d
                .answered_at
                .as_deref()
                .map(when_zh)
                .unwrap_or_else(|| "—".into()),
            key_id: d.key_id.clone().unwrap_or_else(|| "—".into()),
            log_index: d
                .log_index
                .map(|i| i.to_string())
                .unwrap_or_else(|| "—".into()),
        })
        .collect();
    let members = report
        .members
        .iter()
        .map(|m| MemberBlock {
            heading: format!("{} · {}", m.name, m.relation),
            facts: m
                .facts
                .iter()
                .map(|f| {
                    let spec = f.kind.spec();
                    let (value, code) = match &f.value {
                        Some(v @ FactValue::MoneyFen(_)) => (
                            format!("{}{}", fact_text(v).0, per(spec.unit)),
                            String::new(),
                        ),
                        Some(v) => fact_text(v),
                        None => (f.withheld.clone().unwrap_or_default(), String::new()),
                    };
                    FactLine {
                        name: format!("{} / {}", spec.name_zh, spec.name_en),
                        value: if code.is_empty() {
                            value
                        } else {
                            format!("{value}（{code}）")
                        },
                        period: format!("{} – {}", when_zh(&f.period_from), when_zh(&f.period_to)),
                        source: format!(
                            "{}，{}",
                            f.department.name_zh(),
                            match &f.reused_from {
                                Some(v) => super::report::reused_text(v, &f.answered_at),
                                None => when_zh(&f.answered_at),
                            }
                        ),
                    }
                })
                .collect(),
            notes: m
                .notes
                .iter()
                .map(|n| format!("{}：{} — {}", n.department.name_zh(), n.status, n.reason))
                .collect(),
        })
        .collect();
    Sections {
        header,
        warnings,
        departments,
        members,
        figures: report.aggregation.as_ref().map(figures),
        signature: report.signature.as_ref().map(|sig| SignatureLine {
            alg: sig.alg.clone(),
            key_id: sig.key_id.clone(),
            value: sig.value.clone(),
            check_code: check_code(&sig.value),
        }),
    }
}

/// A figure of the aggregation as a caseworker reads it: the value, the withheld reason, or "not
/// computed".
fn figure_text<T>(f: Option<&Figure<T>>, fmt: impl Fn(&T) -> String) -> String {
    match f {
        None => "无法核算 / not computed".to_owned(),
        Some(f) => match (f.value(), f.withheld()) {
            (Some(v), _) => fmt(v),
            (None, reason) => reason.unwrap_or(WITHHELD_FIGURE_TEXT).to_owned(),
        },
    }
}

/// A total and its per-capita value: `total（per capita）`.
fn with_per_capita(
    total: Option<&Figure<i64>>,
    per_capita: Option<&Figure<i64>>,
    fmt: impl Fn(&i64) -> String,
) -> String {
    match (total, per_capita) {
        (Some(t), Some(p)) if t.value().is_some() && p.value().is_some() => {
            format!(
                "{}（{}）",
                figure_text(Some(t), &fmt),
                figure_text(Some(p), &fmt)
            )
        }
        (Some(t), _) if t.value().is_none() => figure_text(Some(t), &fmt),
        (_, Some(p)) if p.value().is_none() => figure_text(Some(p), &fmt),
        _ => "无法核算 / not computed".to_owned(),
    }
}

fn figures(a: &Aggregation) -> Figures {
    let money = |v: &i64| yuan(*v);
    let dm2 = |v: &i64| area(*v);
    let hh = &a.household;
    let mut rows = vec![
        row(
            "计入家庭人口 / members counted",
            hh.members_counted.to_string(),
        ),
        row(
            "家庭月收入 / household monthly income",
            figure_text(hh.monthly_income_fen.as_ref(), money),
        ),
        row(
            "家庭月人均收入 / monthly income per capita",
            figure_text(hh.monthly_income_per_capita_fen.as_ref(), money),
        ),
        row(
            "房产套数 / properties owned",
            figure_text(hh.properties_owned.as_ref(), |n| n.to_string()),
        ),
        row(
            "住房建筑面积（人均） / floor area (per capita)",
            with_per_capita(
                hh.floor_area_dm2.as_ref(),
                hh.floor_area_per_capita_dm2.as_ref(),
                dm2,
            ),
        ),
        row(
            "金融资产（人均） / financial assets (per capita)",
            with_per_capita(
                hh.financial_assets_fen.as_ref(),
                hh.financial_assets_per_capita_fen.as_ref(),
                money,
            ),
        ),
    ];
    for m in a.members.iter().filter(|m| m.monthly_income_fen.is_some()) {
        let items: Vec<String> = m
            .income_items
            .iter()
            .map(|i| {
                format!(
                    "{}{}：{}",
                    if i.deducted { "扣除 / less " } else { "" },
                    i.kind.spec().name_zh,
                    figure_text(Some(&i.monthly_fen), money)
                )
            })
            .collect();
        rows.push(Row {
            note: items.join("；"),
            ..row(
                format!("{} 月收入 / monthly income", m.subject_ref),
                figure_text(m.monthly_income_fen.as_ref(), money),
            )
        });
    }
    if let Some(s) = &a.standard {
        rows.push(row(
            "地方标准 / local standard",
            format!(
                "{} {}年：低保标准 {}／人·月；房产 ≤ {} 套；人均住房面积 ≤ {}；人均金融资产 ≤ {}{}",
                s.name,
                s.year,
                yuan(s.dibao_line_fen),
                s.max_properties,
                area(s.max_floor_area_per_capita_dm2),
                yuan(s.max_financial_assets_per_capita_fen),
                if s.example {
                    "（示例值 / example values）"
                } else {
                    ""
                }
            ),
        ));
    }
    Figures {
        as_of: when_zh(&a.as_of),
        rows,
        indications: a.indications.iter().map(|i| i.text.clone()).collect(),
        discrepancies: a
            .discrepancies
            .iter()
            .map(|d| format!("{}：{}", declared_zh(d.field), d.text))
            .collect(),
        gaps: a.gaps.clone(),
        disclaimer: a.disclaimer.clone(),
    }
}
