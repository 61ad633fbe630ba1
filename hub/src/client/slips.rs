//! 转办单 from the command line: `hub client case refer` (a caseworker issues a referral slip from
//! a case, `POST /v1/cases/{id}/slips`) and `hub client slips list|show|accept|feedback` (the
//! receiving department — or township — with its own certificate: `GET /v1/slips`,
//! `GET /v1/slips/{id}`, `POST /v1/slips/{id}/accept`, `POST /v1/slips/{id}/feedback`).
//!
//! Human-readable zh-CN by default (Beijing time to the minute, codes in Chinese), the hub's JSON
//! with `--json`. A refusal is one line; a 409 `illegal_transition` names the slip's state and
//! the allowed moves in Chinese with the command that makes each, like `hub client case`.

use anyhow::Context;
use clap::{Args, Subcommand};
use schemas::Department;
use schemas::cases::{SlipKind, SlipResult};
use serde_json::{Value, json};

use super::cases::{beijing_minute, parse_yuan, township_name};
use super::error_line;
use crate::audit::{Remote, client};

/// `hub client slips …`: the referral slips addressed to you.
#[derive(Debug, Subcommand)]
pub enum SlipsCommand {
    /// 转办单列表: the slips addressed to you (your department, or your township), newest first.
    List(SlipListArgs),
    /// 查看转办单: what is asked, whom to help, due date and feedback; the JSON with --json.
    Show(SlipShowArgs),
    /// 签收: accept a slip addressed to you.
    Accept(SlipShowArgs),
    /// 反馈: record the result and what was done (签收 implied when not yet accepted).
    Feedback(FeedbackArgs),
}

#[derive(Debug, Args)]
pub struct ReferArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// 承办方: a department (health, education, housing, labor, justice, disability), a slip kind
    /// (medical_assistance, education_aid, housing, employment, legal_aid, rehabilitation), or a
    /// township (9 digits).
    #[arg(long = "to", value_parser = parse_addressee)]
    pub to: Addressee,
    /// 转办事项: what is asked.
    #[arg(long)]
    pub ask: String,
    /// 办理期限 (YYYY-MM-DD, Beijing); default the kind's period (policies/clocks.toml).
    #[arg(long, value_parser = parse_date)]
    pub due: Option<String>,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Whom a slip goes to: its kind, and the township for kind `township`.
#[derive(Debug, Clone)]
pub struct Addressee {
    pub kind: SlipKind,
    pub to_township: Option<String>,
}

/// `health` / `medical_assistance` / `370811005` → the slip's kind (and township).
pub fn parse_addressee(s: &str) -> Result<Addressee, String> {
    let s = s.trim();
    if s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Addressee {
            kind: SlipKind::Township,
            to_township: Some(s.to_owned()),
        });
    }
    let kind = SlipKind::from_code(s)
        .filter(|k| *k != SlipKind::Township)
        .or_else(|| {
            let d = Department::from_code(s)?;
            SlipKind::ALL
                .iter()
                .copied()
                .find(|k| k.department() == Some(d))
        })
        .ok_or_else(|| {
            format!(
                "`{s}`: not a department (health, education, housing, labor, justice, disability), \
                 a slip kind or a township code (9 digits)"
            )
        })?;
    Ok(Addressee {
        kind,
        to_township: None,
    })
}

fn parse_date(s: &str) -> Result<String, String> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &f)
        .map(|_| s.trim().to_owned())
        .map_err(|_| format!("`{s}`: not a date like 2026-12-10"))
}

#[derive(Debug, Args)]
pub struct SlipListArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// issued (待签收), accepted (已签收), answered (已反馈).
    #[arg(long, value_parser = ["issued", "accepted", "answered"])]
    pub state: Option<String>,
    /// Only slips without feedback past their due time (已超期).
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
pub struct SlipShowArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The slip id.
    pub id: String,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ResultArg {
    /// 已办结
    Done,
    /// 部分办结
    PartlyDone,
    /// 无法办理 (give --reason)
    NotPossible,
}

impl ResultArg {
    fn result(self) -> SlipResult {
        match self {
            ResultArg::Done => SlipResult::Done,
            ResultArg::PartlyDone => SlipResult::PartlyDone,
            ResultArg::NotPossible => SlipResult::NotPossible,
        }
    }
}

#[derive(Debug, Args)]
pub struct FeedbackArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The slip id.
    pub id: String,
    /// 办理结果: done, partly_done or not_possible.
    #[arg(long, value_enum)]
    pub result: ResultArg,
    /// 反馈内容: what was done.
    #[arg(long)]
    pub text: String,
    /// 无法办理的原因 (required with not_possible).
    #[arg(long, required_if_eq("result", "not_possible"))]
    pub reason: Option<String>,
    /// Amount granted or paid, in yuan (元).
    #[arg(long, value_parser = parse_yuan)]
    pub amount: Option<i64>,
    /// Print the hub's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

// ==== text ====

fn slip_state_zh(code: &str) -> String {
    crate::cases::slips::SlipState::from_code(code)
        .map_or_else(|| code.to_owned(), |s| format!("{} ({code})", s.name_zh()))
}

/// A slip move's Chinese name and the command that makes it.
fn slip_move_zh(code: &str) -> (&'static str, &'static str) {
    match code {
        "accept" => ("签收", "slips accept"),
        "answer" => ("反馈", "slips feedback"),
        _ => ("?", "?"),
    }
}

fn slip_allowed_line(allowed: &Value) -> String {
    let moves: Vec<String> = allowed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| {
            let (zh, cmd) = slip_move_zh(m);
            format!("{zh} {m} (hub client {cmd})")
        })
        .collect();
    if moves.is_empty() {
        "无 / none".to_owned()
    } else {
        moves.join("、")
    }
}

fn kind_zh(code: &str) -> String {
    SlipKind::from_code(code).map_or_else(|| code.to_owned(), |k| k.name_zh().to_owned())
}

fn result_zh(code: &str) -> String {
    SlipResult::from_code(code).map_or_else(|| code.to_owned(), |r| r.name_zh().to_owned())
}

/// 承办方: the department's Chinese name, or the township's.
fn addressee_zh(s: &Value) -> String {
    if let Some(d) = s["to_department"].as_str() {
        return Department::from_code(d).map_or_else(|| d.to_owned(), |d| d.name_zh().to_owned());
    }
    s["to_township"]
        .as_str()
        .map_or_else(|| "?".to_owned(), township_name)
}

/// The hub's refusal as one line; a slip's `illegal_transition` adds its state and the allowed moves.
pub fn slip_error_line(status: u16, body: &str) -> String {
    let line = error_line(status, body);
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["error"]["code"] == "illegal_transition" => format!(
            "{line}；当前状态 / state: {}；可办理 / allowed: {}",
            slip_state_zh(v["state"].as_str().unwrap_or("?")),
            slip_allowed_line(&v["allowed"])
        ),
        _ => line,
    }
}

/// One slip as a line: id, kind → addressee, state, due, overdue mark, result.
pub fn slip_line(s: &Value) -> String {
    let st = |k: &str| s[k].as_str().unwrap_or("?");
    let mark = if s["overdue"] == true {
        "  ⚠ 已超期 / overdue"
    } else {
        ""
    };
    let result = s["result"]
        .as_str()
        .map(|r| format!("  结果 / result: {}", result_zh(r)))
        .unwrap_or_default();
    format!(
        "{}  {} → {}  {}  期限 / due {}{mark}{result}",
        st("id"),
        kind_zh(st("kind")),
        addressee_zh(s),
        slip_state_zh(st("state")),
        beijing_minute(st("due_at")),
    )
}

/// `GET /v1/slips` as lines.
pub fn slip_list_lines(v: &Value) -> String {
    let slips = v["slips"].as_array().cloned().unwrap_or_default();
    let overdue = slips.iter().filter(|s| s["overdue"] == true).count();
    let mut out = format!(
        "转办单 {} 张，其中超期 {overdue} 张 / {} slips, {overdue} overdue\n",
        slips.len(),
        slips.len()
    );
    for s in &slips {
        out.push_str("  ");
        out.push_str(&slip_line(s));
        out.push('\n');
    }
    if let Some(next) = v["next_cursor"].as_str() {
        out.push_str(&format!("更多 / more: --cursor {next}\n"));
    }
    out
}

/// The feedback of a slip as lines (indented by `indent`).
pub fn feedback_lines(s: &Value, indent: &str) -> String {
    let mut out = String::new();
    if let Some(r) = s["result"].as_str() {
        out.push_str(&format!(
            "{indent}反馈 / feedback {}：{}",
            s["answered_at"]
                .as_str()
                .map(beijing_minute)
                .unwrap_or_default(),
            result_zh(r)
        ));
        let f = &s["feedback"];
        if let Some(t) = f["text"].as_str() {
            out.push_str(&format!("，{t}"));
        }
        if let Some(a) = f["amount_fen"].as_i64() {
            out.push_str(&format!("，{}", crate::verify::aggregate::yuan(a)));
        }
        if let Some(r) = f["reason"].as_str() {
            out.push_str(&format!("，原因 / reason: {r}"));
        }
        out.push('\n');
    }
    out
}

/// `GET /v1/slips/{id}` as a one-screen summary.
pub fn slip_summary(s: &Value) -> String {
    let st = |k: &str| s[k].as_str().unwrap_or("?");
    let mut out = format!(
        "转办单 / slip {}\n案件 / case {}\n类型 / kind: {}   承办方 / to: {}\n状态 / state: {}\n",
        st("id"),
        st("case_id"),
        kind_zh(st("kind")),
        addressee_zh(s),
        slip_state_zh(st("state")),
    );
    let provisional = if s["due_provisional"] == true {
        "（暂定，按周一至周五计算 / provisional, Monday to Friday）"
    } else {
        ""
    };
    let mark = if s["overdue"] == true {
        "  ⚠ 已超期 / overdue"
    } else {
        ""
    };
    out.push_str(&format!(
        "开具 / issued {}   办理期限 / due {}{provisional}{mark}\n",
        beijing_minute(st("issued_at")),
        beijing_minute(st("due_at")),
    ));
    if let Some(a) = s["accepted_at"].as_str() {
        out.push_str(&format!("签收 / accepted {}\n", beijing_minute(a)));
    }
    let a = &s["applicant"];
    if a.is_object() {
        out.push_str(&format!(
            "申请人 / applicant: {}  {}  电话 / phone {}\n",
            a["name"].as_str().unwrap_or("?"),
            a["resident_id"].as_str().unwrap_or("?"),
            a["phone"].as_str().unwrap_or("?"),
        ));
    }
    if let Some(asked) = s["asked"].as_str() {
        out.push_str(&format!("转办事项 / asked: {asked}\n"));
    }
    out.push_str(&feedback_lines(s, ""));
    out.push_str(&format!(
        "可办理 / allowed: {}\n",
        slip_allowed_line(&s["allowed"])
    ));
    out
}

// ==== calls ====

async fn send(req: reqwest::RequestBuilder, ok: &[u16]) -> anyhow::Result<Value> {
    super::send_json(req, ok, slip_error_line).await
}

fn print(v: &Value, json: bool, text: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
    super::print_answer(v, json, text)
}

/// `hub client case refer`: issue a slip from a case.
pub async fn refer(a: ReferArgs) -> anyhow::Result<()> {
    let (http, base) = client(&a.remote)?;
    let mut body = json!({ "kind": a.to.kind.code(), "asked": a.ask });
    if let Some(t) = &a.to.to_township {
        body["to_township"] = Value::from(t.as_str());
    }
    if let Some(d) = &a.due {
        body["due_on"] = Value::from(d.as_str());
    }
    let r = http
        .post(format!("{base}/v1/cases/{}/slips", a.id))
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    // `case_stage` (409) carries the case's stage in its message; the case's own line otherwise.
    anyhow::ensure!(
        status == 201,
        "{}",
        super::cases::case_error_line(status, &text)
    );
    let v: Value = serde_json::from_str(&text).context("the hub's answer is not JSON")?;
    print(&v, a.json, |v| {
        format!(
            "转办单已开具 / slip issued: {}\n  {}\n",
            v["id"].as_str().unwrap_or("?"),
            slip_line(v)
        )
    })
}

pub async fn main(cmd: SlipsCommand) -> anyhow::Result<()> {
    match cmd {
        SlipsCommand::List(a) => {
            let (http, base) = client(&a.remote)?;
            let url = super::list_url(
                &base,
                "/v1/slips",
                &[
                    ("state", a.state.clone()),
                    ("overdue", a.overdue.then(|| "true".to_owned())),
                    ("limit", a.limit.map(|l| l.to_string())),
                ],
                a.cursor.as_deref(),
            )?;
            let v = send(http.get(url), &[200]).await?;
            print(&v, a.json, slip_list_lines)
        }
        SlipsCommand::Show(a) => {
            let (http, base) = client(&a.remote)?;
            let v = send(http.get(format!("{base}/v1/slips/{}", a.id)), &[200]).await?;
            print(&v, a.json, slip_summary)
        }
        SlipsCommand::Accept(a) => {
            let (http, base) = client(&a.remote)?;
            let v = send(
                http.post(format!("{base}/v1/slips/{}/accept", a.id))
                    .json(&json!({})),
                &[200],
            )
            .await?;
            print(&v, a.json, moved)
        }
        SlipsCommand::Feedback(a) => {
            let (http, base) = client(&a.remote)?;
            let mut body = json!({ "result": a.result.result().code(), "text": a.text });
            if let Some(r) = &a.reason {
                body["reason"] = Value::from(r.as_str());
            }
            if let Some(f) = a.amount {
                body["amount_fen"] = Value::from(f);
            }
            let v = send(
                http.post(format!("{base}/v1/slips/{}/feedback", a.id))
                    .json(&body),
                &[200],
            )
            .await?;
            print(&v, a.json, moved)
        }
    }
}

fn moved(v: &Value) -> String {
    format!(
        "已办理 / done: {}\n可办理 / allowed: {}\n",
        slip_line(v),
        slip_allowed_line(&v["allowed"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressees_are_departments_kinds_or_townships() {
        let k = |s: &str| parse_addressee(s).map(|a| (a.kind, a.to_township));
        assert_eq!(k("health").unwrap(), (SlipKind::MedicalAssistance, None));
        assert_eq!(k("labor").unwrap(), (SlipKind::Employment, None));
        assert_eq!(k("legal_aid").unwrap(), (SlipKind::LegalAid, None));
        assert_eq!(
            k("370811005").unwrap(),
            (SlipKind::Township, Some("370811005".to_owned()))
        );
        assert!(k("township").is_err());
        assert!(k("civil_affairs").is_err());
        assert!(k("37081100").is_err());
    }

    #[test]
    fn an_illegal_slip_move_names_the_state_and_the_allowed_moves() {
        let body = r#"{"error":{"code":"illegal_transition","message":"m"},"state":"answered","allowed":[]}"#;
        let line = slip_error_line(409, body);
        assert!(line.contains("已反馈 (answered)"), "{line}");
        assert!(line.contains("无 / none"), "{line}");
        let body = r#"{"error":{"code":"illegal_transition","message":"m"},"state":"issued","allowed":["accept","answer"]}"#;
        let line = slip_error_line(409, body);
        assert!(
            line.contains("签收 accept (hub client slips accept)"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
