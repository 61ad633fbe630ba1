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

use super::report::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

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

/// Render the page.
pub fn render(report: &Report) -> String {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<title>家庭经济状况核对报告 {}</title>",
        esc(&report.case_ref)
    ));
    h.push_str(
        "<style>body{font-family:'Noto Sans CJK SC','Source Han Sans SC',sans-serif;margin:2em;font-size:12pt}\
         table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}th,td{border:1px solid #888;padding:3px 6px;text-align:left;vertical-align:top}\
         th{background:#eee}.warn{color:#a00;font-weight:bold}.small{font-size:9pt;color:#444;word-break:break-all}\
         @media print{body{margin:1cm}}</style></head><body>",
    );
    h.push_str("<h1>家庭经济状况核对报告<br><small>Household economic-status verification report</small></h1>");
    h.push_str("<table>");
    let row = |h: &mut String, zh: &str, en: &str, v: &str| {
        h.push_str(&format!("<tr><th>{zh} / {en}</th><td>{}</td></tr>", esc(v)));
    };
    row(&mut h, "案件编号", "case", &report.case_ref);
    row(&mut h, "核对用途", "purpose", report.purpose.name_zh());
    row(&mut h, "紧急程度", "urgency", report.urgency.name_zh());
    row(
        &mut h,
        "户籍登记地",
        "registered division",
        &report.registered_division,
    );
    row(&mut h, "发起人", "requested by", &report.requested_by);
    row(&mut h, "核对时间", "time", &report.created_at);
    row(&mut h, "报告编号", "report id", &report.id);
    row(
        &mut h,
        "授权书",
        "authorization letter",
        report.authorization_id.as_deref().unwrap_or("—"),
    );
    h.push_str("</table>");
    if let Some(f) = &report.letter_follow_up {
        h.push_str(&format!(
            "<p class=\"warn\">紧急或急难核对（先核对后补授权书）：{} / emergency or urgent check run before its letter</p>",
            esc(&f.text)
        ));
    } else if report.emergency_without_letter {
        h.push_str(&format!(
            "<p class=\"warn\">紧急或急难核对，授权书须于 {} 前补交 / emergency or urgent check: the authorization letter is due by {}</p>",
            esc(report.letter_due_by.as_deref().unwrap_or("—")),
            esc(report.letter_due_by.as_deref().unwrap_or("—"))
        ));
    }
    if !report.complete {
        h.push_str("<p class=\"warn\">部分部门未答复，结论须人工复核 / not every department answered; review before deciding</p>");
    }

    h.push_str("<h2>部门答复情况 / Departments</h2><table><tr><th>部门 / department</th><th>状态 / status</th><th>答复时间 / answered at</th><th>签名密钥 / signing key</th><th>访问日志 / log index</th></tr>");
    for d in &report.departments {
        let cls = if d.status.has_facts() {
            ""
        } else {
            " class=\"warn\""
        };
        h.push_str(&format!(
            "<tr><td>{} ({})</td><td{cls}>{}</td><td>{}</td><td class=\"small\">{}</td><td>{}</td></tr>",
            esc(&d.name_zh),
            d.department.code(),
            esc(&d.status_text),
            esc(d.answered_at.as_deref().unwrap_or("—")),
            esc(d.key_id.as_deref().unwrap_or("—")),
            d.log_index.map(|i| i.to_string()).unwrap_or_else(|| "—".into()),
        ));
    }
    h.push_str("</table>");

    h.push_str("<h2>家庭成员核对结果 / Members</h2>");
    for m in &report.members {
        h.push_str(&format!("<h3>{} · {}</h3>", esc(&m.name), esc(&m.relation)));
        if m.facts.is_empty() && m.notes.is_empty() {
            h.push_str("<p>无 / nothing</p>");
            continue;
        }
        h.push_str("<table><tr><th>事项 / fact</th><th>结果 / value</th><th>期间 / period</th><th>来源 / source</th></tr>");
        for f in &m.facts {
            let spec = f.kind.spec();
            h.push_str(&format!(
                "<tr><td>{} / {}</td><td>{}</td><td>{} – {}</td><td>{}，{}</td></tr>",
                esc(spec.name_zh),
                esc(spec.name_en),
                esc(&f
                    .value
                    .as_ref()
                    .map(value_text)
                    .unwrap_or_else(|| f.withheld.clone().unwrap_or_default())),
                esc(&f.period_from),
                esc(&f.period_to),
                esc(f.department.name_zh()),
                esc(&match &f.reused_from {
                    Some(v) => super::report::reused_text(v, &f.answered_at),
                    None => f.answered_at.clone(),
                }),
            ));
        }
        for n in &m.notes {
            h.push_str(&format!(
                "<tr><td colspan=\"4\" class=\"warn\">{}：{} — {}</td></tr>",
                esc(n.department.name_zh()),
                esc(&n.status),
                esc(&n.reason)
            ));
        }
        h.push_str("</table>");
    }
    if let Some(a) = &report.aggregation {
        render_aggregation(&mut h, a);
    }
    h.push_str("<p>本报告为核对结果提示，是否符合救助条件由经办人员依规审核决定。<br>This report gives indications; eligibility is decided by the caseworker under the rules.</p>");
    if let Some(sig) = &report.signature {
        h.push_str(&format!(
            "<p class=\"small\">枢纽签名 / hub signature ({}, {}): {}</p>",
            esc(&sig.alg),
            esc(&sig.key_id),
            esc(&sig.value)
        ));
    }
    h.push_str("</body></html>\n");
    h
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

fn render_aggregation(h: &mut String, a: &Aggregation) {
    let money = |v: &i64| yuan(*v);
    let dm2 = |v: &i64| area(*v);
    h.push_str(&format!(
        "<h2>核算结果 / Figures (参考日期 / as of {})</h2><table>",
        esc(&a.as_of)
    ));
    let hh = &a.household;
    let rows: Vec<(&str, String)> = vec![
        (
            "计入家庭人口 / members counted",
            hh.members_counted.to_string(),
        ),
        (
            "家庭月收入 / household monthly income",
            figure_text(hh.monthly_income_fen.as_ref(), money),
        ),
        (
            "家庭月人均收入 / monthly income per capita",
            figure_text(hh.monthly_income_per_capita_fen.as_ref(), money),
        ),
        (
            "房产套数 / properties owned",
            figure_text(hh.properties_owned.as_ref(), |n| n.to_string()),
        ),
        (
            "住房建筑面积（人均） / floor area (per capita)",
            with_per_capita(
                hh.floor_area_dm2.as_ref(),
                hh.floor_area_per_capita_dm2.as_ref(),
                dm2,
            ),
        ),
        (
            "金融资产（人均） / financial assets (per capita)",
            with_per_capita(
                hh.financial_assets_fen.as_ref(),
                hh.financial_assets_per_capita_fen.as_ref(),
                money,
            ),
        ),
    ];
    for (k, v) in rows {
        h.push_str(&format!("<tr><th>{k}</th><td>{}</td></tr>", esc(&v)));
    }
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
        h.push_str(&format!(
            "<tr><th>{} 月收入 / monthly income</th><td>{}<br><span class=\"small\">{}</span></td></tr>",
            esc(&m.subject_ref),
            esc(&figure_text(m.monthly_income_fen.as_ref(), money)),
            esc(&items.join("；"))
        ));
    }
    if let Some(s) = &a.standard {
        h.push_str(&format!(
            "<tr><th>地方标准 / local standard</th><td>{} {}年：低保标准 {}／人·月；房产 ≤ {} 套；人均住房面积 ≤ {}；人均金融资产 ≤ {}{}</td></tr>",
            esc(&s.name),
            s.year,
            yuan(s.dibao_line_fen),
            s.max_properties,
            area(s.max_floor_area_per_capita_dm2),
            yuan(s.max_financial_assets_per_capita_fen),
            if s.example { "（示例值 / example values）" } else { "" }
        ));
    }
    h.push_str("</table>");
    if !a.indications.is_empty() {
        h.push_str("<h3>核对提示 / Indications</h3><ul>");
        for i in &a.indications {
            h.push_str(&format!("<li>{}</li>", esc(&i.text)));
        }
        h.push_str("</ul>");
    }
    if !a.discrepancies.is_empty() {
        h.push_str("<h3>申报与核对差异 / Declared vs verified</h3><ul>");
        for d in &a.discrepancies {
            h.push_str(&format!(
                "<li class=\"warn\">{}：{}</li>",
                esc(d.field.code()),
                esc(&d.text)
            ));
        }
        h.push_str("</ul>");
    }
    if !a.gaps.is_empty() {
        h.push_str("<h3>说明 / Notes</h3><ul>");
        for g in &a.gaps {
            h.push_str(&format!("<li>{}</li>", esc(g)));
        }
        h.push_str("</ul>");
    }
    h.push_str(&format!("<p><b>{}</b></p>", esc(&a.disclaimer)));
}
