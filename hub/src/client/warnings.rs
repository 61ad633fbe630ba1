//! 预警 from the command line: `hub client warnings list|show|acknowledge|dismiss|convert`, the
//! township's side of the warning queue (`GET /v1/warnings`, `GET /v1/warnings/{id}`,
//! `POST /v1/warnings/{id}/acknowledge|dismiss|convert`).
//!
//! Human-readable zh-CN by default (Beijing time to the minute, codes in Chinese), the hub's JSON
//! with `--json`. A refusal is one line; a 409 `illegal_transition` names the warning's state and
//! the allowed moves, like `hub client case` and `hub client slips`.

use clap::{Args, Subcommand};
use schemas::Urgency;
use schemas::cases::Hardship;
use serde_json::{Value, json};

use super::cases::{beijing_minute, township_name};
use super::error_line;
use crate::audit::{Remote, client};
use crate::warning::queue::WarningState;

/// `hub client warnings …`: the warnings of your township (or county, or village).
#[derive(Debug, Subcommand)]
pub enum WarningsCommand {
    /// 预警列表: the warnings in your queue, newest first, with their first-contact deadlines.
    List(WarningListArgs),
    /// 查看预警: the rule, tier, deadline and the signals (events) it carries.
    Show(WarningShowArgs),
    /// 首次联系: record that the household was contacted.
    Acknowledge(WarningShowArgs),
    /// 排除: close a warning that needs no help, with the reason.
    Dismiss(DismissArgs),
    /// 转为案件: open a case (channel `warning`) from the warning.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct WarningListArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// open (待处置), acknowledged (已联系), dismissed (已排除), converted (已转为案件).
    #[arg(long, value_parser = ["open", "acknowledged", "dismissed", "converted"])]
    pub state: Option<String>,
    /// normal, urgent or emergency.
    #[arg(long, value_parser = ["normal", "urgent", "emergency"])]
    pub tier: Option<String>,
    /// Only warnings past their first-contact deadline, not yet contacted (已超期).
    #[arg(long)]
    pub overdue: bool,
    /// Page size (1-200).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The cursor printed under the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WarningShowArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The warning id.
    pub id: String,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DismissArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The warning id.
    pub id: String,
    /// 排除理由 (1-1000 characters).
    #[arg(long)]
    pub reason: String,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The warning id.
    pub id: String,
    /// 申请人姓名.
    #[arg(long)]
    pub name: String,
    /// 联系电话.
    #[arg(long)]
    pub phone: String,
    /// 困难情况描述.
    #[arg(long)]
    pub description: String,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

// ==== text ====

fn state_zh(code: &str) -> String {
    WarningState::from_code(code)
        .map_or_else(|| code.to_owned(), |s| format!("{} ({code})", s.name_zh()))
}

fn tier_zh(code: &str) -> String {
    serde_json::from_value::<Urgency>(Value::from(code))
        .map_or_else(|_| code.to_owned(), |u| u.name_zh().to_owned())
}

fn hardship_zh(code: &str) -> String {
    Hardship::from_code(code).map_or_else(|| code.to_owned(), |h| h.name_zh().to_owned())
}

fn move_zh(code: &str) -> &'static str {
    match code {
        "acknowledge" => "首次联系",
        "dismiss" => "排除",
        "convert" => "转为案件",
        _ => "?",
    }
}

fn allowed_line(allowed: &Value) -> String {
    let moves: Vec<String> = allowed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| format!("{} {m} (hub client warnings {m})", move_zh(m)))
        .collect();
    if moves.is_empty() {
        "无 / none".to_owned()
    } else {
        moves.join("、")
    }
}

/// The hub's refusal as one line; `illegal_transition` adds the state and the allowed moves.
pub fn warning_error_line(status: u16, body: &str) -> String {
    let line = error_line(status, body);
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["error"]["code"] == "illegal_transition" => format!(
            "{line}；当前状态 / state: {}；可办理 / allowed: {}",
            state_zh(v["state"].as_str().unwrap_or("?")),
            allowed_line(&v["allowed"])
        ),
        _ => line,
    }
}

/// Where the household is: the township's name, and the village code when known.
fn place(w: &Value) -> String {
    let township = w["township"]
        .as_str()
        .map_or_else(|| "?".to_owned(), township_name);
    match w["village"].as_str() {
        Some(v) => format!("{township} 村（社区）{v}"),
        None => township,
    }
}

/// One warning as a line: id, tier, rule, place, state, deadline, overdue mark.
pub fn warning_line(w: &Value) -> String {
    let st = |k: &str| w[k].as_str().unwrap_or("?");
    let mark = if w["overdue"] == true {
        "  ⚠ 已超期 / overdue"
    } else {
        ""
    };
    let case = w["case_id"]
        .as_str()
        .map(|c| format!("  案件 / case {c}"))
        .unwrap_or_default();
    format!(
        "{}  {}  {}  {}  {}  首次联系时限 / contact by {}{mark}{case}",
        st("id"),
        tier_zh(st("tier")),
        rule_name(w),
        place(w),
        state_zh(st("state")),
        beijing_minute(st("first_contact_due_at")),
    )
}

fn rule_name(w: &Value) -> String {
    match w["rule_name"].as_str() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => w["rule"].as_str().unwrap_or("?").to_owned(),
    }
}

/// `GET /v1/warnings` as lines.
pub fn warning_list_lines(v: &Value) -> String {
    let list = v["warnings"].as_array().cloned().unwrap_or_default();
    let overdue = list.iter().filter(|w| w["overdue"] == true).count();
    let mut out = format!(
        "预警 {} 条，其中超期 {overdue} 条 / {} warnings, {overdue} overdue\n",
        list.len(),
        list.len()
    );
    for w in &list {
        out.push_str("  ");
        out.push_str(&warning_line(w));
        out.push('\n');
    }
    if let Some(next) = v["next_cursor"].as_str() {
        out.push_str(&format!("更多 / more: --cursor {next}\n"));
    }
    out
}

/// `GET /v1/warnings/{id}` as a one-screen summary.
pub fn warning_summary(w: &Value) -> String {
    let st = |k: &str| w[k].as_str().unwrap_or("?");
    let mark = if w["overdue"] == true {
        "  ⚠ 已超期 / overdue"
    } else {
        ""
    };
    let provisional = if w["provisional"] == true {
        "（暂定，按周一至周五计算 / provisional, Monday to Friday）"
    } else {
        ""
    };
    let mut out = format!(
        "预警 / warning {}\n规则 / rule: {} ({})\n等级 / tier: {}   困难类型 / hardship: {}\n\
         地点 / where: {}\n状态 / state: {}\n产生 / raised {}   首次联系时限 / contact by {}{provisional}{mark}\n",
        st("id"),
        rule_name(w),
        st("rule"),
        tier_zh(st("tier")),
        hardship_zh(st("hardship")),
        place(w),
        state_zh(st("state")),
        beijing_minute(st("created_at")),
        beijing_minute(st("first_contact_due_at")),
    );
    if let Some(a) = w["acknowledged_at"].as_str() {
        out.push_str(&format!("已联系 / contacted {}\n", beijing_minute(a)));
    }
    if let Some(r) = w["dismissed_reason"].as_str() {
        out.push_str(&format!("排除理由 / dismissed: {r}\n"));
    }
    if let Some(c) = w["case_id"].as_str() {
        out.push_str(&format!("案件 / case: {c}\n"));
    }
    let signals = w["signals_detail"].as_array().cloned().unwrap_or_default();
    if !signals.is_empty() {
        out.push_str(&format!("信号 / signals ({}):\n", signals.len()));
        for s in &signals {
            let amount = s["amount_fen"]
                .as_i64()
                .map(|a| format!("  {}", crate::verify::aggregate::yuan(a)))
                .unwrap_or_default();
            let raised = if s["raised"] == true {
                "  ↑ 升级 / raised"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {}  {}  {}  发生 / occurred {}{amount}{raised}\n",
                beijing_minute(s["received_at"].as_str().unwrap_or("?")),
                s["department"].as_str().unwrap_or("?"),
                s["kind"].as_str().unwrap_or("?"),
                beijing_minute(s["occurred_at"].as_str().unwrap_or("?")),
            ));
        }
    }
    out.push_str(&format!(
        "可办理 / allowed: {}\n",
        allowed_line(&w["allowed"])
    ));
    out
}

// ==== calls ====

async fn send(req: reqwest::RequestBuilder, ok: &[u16]) -> anyhow::Result<Value> {
    super::send_json(req, ok, warning_error_line).await
}

fn print(v: &Value, json: bool, text: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
    super::print_answer(v, json, text)
}

fn moved(v: &Value) -> String {
    format!(
        "已办理 / done: {}\n可办理 / allowed: {}\n",
        warning_line(v),
        allowed_line(&v["allowed"])
    )
}

pub async fn main(cmd: WarningsCommand) -> anyhow::Result<()> {
    match cmd {
        WarningsCommand::List(a) => {
            let (http, base) = client(&a.remote)?;
            let url = super::list_url(
                &base,
                "/v1/warnings",
                &[
                    ("state", a.state.clone()),
                    ("tier", a.tier.clone()),
                    ("overdue", a.overdue.then(|| "true".to_owned())),
                    ("limit", a.limit.map(|l| l.to_string())),
                ],
                a.cursor.as_deref(),
            )?;
            let v = send(http.get(url), &[200]).await?;
            print(&v, a.json, warning_list_lines)
        }
        WarningsCommand::Show(a) => {
            let (http, base) = client(&a.remote)?;
            let v = send(http.get(format!("{base}/v1/warnings/{}", a.id)), &[200]).await?;
            print(&v, a.json, warning_summary)
        }
        WarningsCommand::Acknowledge(a) => {
            let (http, base) = client(&a.remote)?;
            let v = send(
                http.post(format!("{base}/v1/warnings/{}/acknowledge", a.id))
                    .json(&json!({})),
                &[200],
            )
            .await?;
            print(&v, a.json, moved)
        }
        WarningsCommand::Dismiss(a) => {
            let (http, base) = client(&a.remote)?;
            let v = send(
                http.post(format!("{base}/v1/warnings/{}/dismiss", a.id))
                    .json(&json!({ "reason": a.reason })),
                &[200],
            )
            .await?;
            print(&v, a.json, moved)
        }
        WarningsCommand::Convert(a) => {
            let (http, base) = client(&a.remote)?;
            let body = json!({ "name": a.name, "phone": a.phone, "description": a.description });
            let v = send(
                http.post(format!("{base}/v1/warnings/{}/convert", a.id))
                    .json(&body),
                &[200, 201],
            )
            .await?;
            print(&v, a.json, |v| {
                format!(
                    "已转为案件 / converted: case opened: {}\n  {}\n",
                    v["case_id"].as_str().unwrap_or("?"),
                    warning_line(&v["warning"])
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_reads_in_chinese_with_its_deadline_and_mark() {
        let w = json!({
            "id": "w1", "rule": "hospital_costs", "rule_name": "住院自付费用高 / high out-of-pocket",
            "state": "open", "tier": "urgent", "hardship": "illness", "township": "370811002",
            "first_contact_due_at": "2026-11-30T14:05:00+08:00", "overdue": true,
            "allowed": ["acknowledge", "dismiss", "convert"]
        });
        let line = warning_line(&w);
        assert!(line.contains("紧急（24小时内）"), "{line}");
        assert!(line.contains("待处置 (open)"), "{line}");
        assert!(line.contains("2026-11-30 14:05"), "{line}");
        assert!(line.contains("已超期"), "{line}");
        let summary = warning_summary(&w);
        assert!(
            summary.contains("首次联系 acknowledge (hub client warnings acknowledge)"),
            "{summary}"
        );
    }

    #[test]
    fn an_illegal_move_names_the_state_and_the_allowed_moves() {
        let body = r#"{"error":{"code":"illegal_transition","message":"m"},"state":"dismissed","allowed":[]}"#;
        let line = warning_error_line(409, body);
        assert!(line.contains("已排除 (dismissed)"), "{line}");
        assert!(line.contains("无 / none"), "{line}");
        assert!(!line.contains('\n'));
    }
}
