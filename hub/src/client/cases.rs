//! `hub client case …`: 救助案件 from the command line — open a case from a file, list, show one
//! as a readable zh-CN summary (stage, statutory clocks in Beijing time, timeline), and make each
//! move of `cases::model` (`POST /v1/cases/{id}/{accept,transfer,first-help,investigation,
//! hand-to-county,decision,close}`) with flags instead of JSON where the body is small.
//!
//! Amounts are yuan on the command line (`--amount 500.00`) and fen on the wire. A refusal is one
//! line (the hub's code, field and message); a 409 `illegal_transition` also names the current
//! stage and the allowed moves in Chinese with the command that makes each. Exit codes are the
//! client's: 0 done, 1 refused or failed, 2 a wrong command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{error_line, read_json};
use crate::audit::{Remote, client};
use crate::cases::model::CaseState;

const BEIJING: UtcOffset = time::macros::offset!(+8);

/// `help` is a move here (先行救助), so clap's own `help` subcommand is off; `--help` still works.
#[derive(Debug, Subcommand)]
#[command(disable_help_subcommand = true)]
pub enum CaseCommand {
    /// 登记救助申请: open a case from a request file (e.g. var/demo/samples/case-emergency.json).
    New(NewArgs),
    /// 案件列表: the cases you may see, newest first, with their nearest deadline.
    List(ListArgs),
    /// 查看案件: stage, statutory clocks (Beijing time) and timeline; the raw JSON with --json.
    Show(ShowArgs),
    /// 受理: accept a case of your township.
    Accept(NoteArgs),
    /// 分办: send the case to the township of the registered address.
    Transfer(TransferArgs),
    /// 先行救助: record first help given (cash, in kind, service).
    Help(HelpArgs),
    /// 入户调查: record the home visit and the initial opinion from a file.
    Investigate(InvestigateArgs),
    /// 转交县级: hand the case to the county, which decides.
    HandToCounty(ReasonArgs),
    /// 审批决定: approve (with the assistance type) or refuse (with the reason told to the applicant).
    Decide(DecideArgs),
    /// 办结: close a decided case.
    Close(NoteArgs),
    /// 开具转办单: refer the case to a department or another township (--to, --ask, --due).
    Refer(super::slips::ReferArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The filing (JSON body of POST /v1/cases).
    pub request: PathBuf,
    /// Idempotency-Key header: the same key twice files one case.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// received, accepted, helped, investigated, with_county, decided, closed
    #[arg(long)]
    pub state: Option<String>,
    /// emergency, urgent, normal
    #[arg(long)]
    pub tier: Option<String>,
    /// A county (6 digits) or township (9 digits) code.
    #[arg(long)]
    pub township: Option<String>,
    /// Only cases with an overdue clock (已超期).
    #[arg(long)]
    pub overdue: bool,
    /// Page size (1-200).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The cursor printed under the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the JSON answer instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// Print the case as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// 备注.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// The township (9 digits) of the registered address.
    #[arg(long = "to")]
    pub to: String,
    /// 分办理由.
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum HelpKind {
    /// 现金
    Cash,
    /// 实物
    InKind,
    /// 服务
    Service,
}

impl HelpKind {
    fn code(self) -> &'static str {
        match self {
            HelpKind::Cash => "cash",
            HelpKind::InKind => "in_kind",
            HelpKind::Service => "service",
        }
    }
}

#[derive(Debug, Args)]
pub struct HelpArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// cash, in_kind or service.
    #[arg(long, value_enum)]
    pub kind: HelpKind,
    /// Amount in yuan (元), e.g. 500.00; required for cash.
    #[arg(long, value_parser = parse_yuan)]
    pub amount: Option<i64>,
    /// 救助人: who gave it.
    #[arg(long)]
    pub by: String,
    /// When it was given: RFC 3339, or `YYYY-MM-DD HH:MM` in Beijing time; default now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<OffsetDateTime>,
    /// 备注.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct InvestigateArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// The investigation (JSON body of POST /v1/cases/{id}/investigation: home_visit,
    /// verification_ids, initial_opinion).
    pub record: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// 理由.
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("outcome").required(true).args(["approve", "refuse"])))]
pub struct DecideArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The case id.
    pub id: String,
    /// 批准 (give --type).
    #[arg(long)]
    pub approve: bool,
    /// 不予批准 (give --reason, told to the applicant).
    #[arg(long)]
    pub refuse: bool,
    /// 救助类型: temporary_assistance, dibao, tekun, medical_assistance, education_aid,
    /// housing_aid, other.
    #[arg(long = "type", required_if_eq("approve", "true"))]
    pub assistance_type: Option<String>,
    /// Amount granted, in yuan (元).
    #[arg(long, value_parser = parse_yuan)]
    pub amount: Option<i64>,
    /// 告知: the reason explained to the applicant.
    #[arg(long, required_if_eq("refuse", "true"))]
    pub reason: Option<String>,
    /// 备注.
    #[arg(long)]
    pub note: Option<String>,
}

/// Yuan with at most two decimals → fen.
pub fn parse_yuan(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}`: not an amount in yuan like 500 or 500.00");
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if whole.is_empty()
        || whole.len() > 9
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    Ok(whole * 100 + frac)
}

/// RFC 3339, or `YYYY-MM-DD HH:MM` in Beijing time.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    PrimitiveDateTime::parse(s, &f)
        .map(|t| t.assume_offset(BEIJING))
        .map_err(|_| {
            format!("`{s}`: not a time like 2026-11-30T09:30:00+08:00 or 2026-11-30 09:30")
        })
}

/// An RFC 3339 time as Beijing time to the minute (`2026-10-10 23:59`); the text as it is when it
/// does not parse.
pub fn beijing_minute(t: &str) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    OffsetDateTime::parse(t, &Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(BEIJING).format(&f).ok())
        .unwrap_or_else(|| t.to_owned())
}

fn yuan(fen: i64) -> String {
    crate::verify::aggregate::yuan(fen)
}

fn stage_zh(code: &str) -> String {
    CaseState::from_code(code).map_or_else(
        || code.to_owned(),
        |s| format!("{} ({})", s.name_zh(), s.code()),
    )
}

/// A move's Chinese name and the command that makes it.
fn move_zh(code: &str) -> (&'static str, &'static str) {
    match code {
        "accept" => ("受理", "case accept"),
        "transfer" => ("分办", "case transfer"),
        "first_help" => ("先行救助", "case help"),
        "investigate" => ("入户调查", "case investigate"),
        "hand_to_county" => ("转交县级", "case hand-to-county"),
        "decide" => ("审批决定", "case decide"),
        "close" => ("办结", "case close"),
        "open" => ("登记", "case new"),
        _ => ("?", "?"),
    }
}

fn allowed_line(allowed: &Value) -> String {
    let moves: Vec<String> = allowed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| {
            let (zh, cmd) = move_zh(m);
            format!("{zh} {m} (hub client {cmd})")
        })
        .collect();
    if moves.is_empty() {
        "无 / none".to_owned()
    } else {
        moves.join("、")
    }
}

fn tier_zh(code: &str) -> &'static str {
    match code {
        "emergency" => "急难（2小时） / emergency",
        "urgent" => "紧急（24小时） / urgent",
        "normal" => "一般 / normal",
        _ => "?",
    }
}

fn clock_zh(kind: &str) -> &'static str {
    match kind {
        "first_help" => "先行救助 / first help",
        "materials" => "补充完善材料 / materials",
        "initial_opinion" => "调查初审意见 / initial opinion",
        "decision" => "审批决定 / decision",
        _ => "?",
    }
}

fn status_zh(status: &str) -> &'static str {
    match status {
        "running" => "计时中 / running",
        "due_soon" => "⏰ 即将到期 / due soon",
        "met" => "已完成 / met",
        "overdue" => "⚠ 已超期 / overdue",
        _ => "?",
    }
}

pub(crate) fn township_name(code: &str) -> String {
    schemas::DivisionCode::parse(code)
        .ok()
        .and_then(|c| {
            connectors::sim::divisions::Divisions::jining()
                .township(&c)
                .map(|t| t.name.clone())
        })
        .map_or_else(|| code.to_owned(), |n| format!("{n} {code}"))
}

/// Columns on a terminal: CJK and full-width characters take two.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

/// `s` padded with spaces to `width` terminal columns.
fn pad(s: &str, width: usize) -> String {
    format!("{s}{}", " ".repeat(width.saturating_sub(display_width(s))))
}

fn principal_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

/// A resident ID with the middle hidden (`370811********1234`); the full number is in `--json`.
fn masked(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// The hub's refusal as one line; `illegal_transition` adds the stage and the allowed moves.
pub fn case_error_line(status: u16, body: &str) -> String {
    let line = error_line(status, body);
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["error"]["code"] == "illegal_transition" => format!(
            "{line}；当前阶段 / stage: {}；可办理 / allowed: {}",
            stage_zh(v["state"].as_str().unwrap_or("?")),
            allowed_line(&v["allowed"])
        ),
        _ => line,
    }
}

/// One clock as a line: kind, due (Beijing, to the minute), status and its mark.
fn clock_line(c: &Value) -> String {
    let due = beijing_minute(c["due_at"].as_str().unwrap_or("?"));
    let status = c["status"].as_str().unwrap_or("?");
    let met = c["met_at"]
        .as_str()
        .map(|m| {
            let late = match (
                OffsetDateTime::parse(m, &Rfc3339),
                c["due_at"]
                    .as_str()
                    .map(|d| OffsetDateTime::parse(d, &Rfc3339)),
            ) {
                (Ok(m), Some(Ok(d))) if m > d => "（超期完成 / met late）",
                _ => "",
            };
            format!("，完成于 / met {}{late}", beijing_minute(m))
        })
        .unwrap_or_default();
    let provisional = if c["provisional"] == true {
        "（暂定，按周一至周五计算 / provisional, Monday to Friday）"
    } else {
        ""
    };
    format!(
        "  {} 期限 / due {due}  {}{met}{provisional}",
        pad(clock_zh(c["kind"].as_str().unwrap_or("?")), 32),
        status_zh(status)
    )
}

/// What an event's details say, briefly.
fn details_text(d: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(t) = d["to_township"].as_str() {
        parts.push(format!("至 / to {}", township_name(t)));
    }
    if let Some(k) = d["kind"].as_str() {
        let zh = schemas::cases::FirstHelpKind::from_code(k).map_or(k, |k| k.name_zh());
        parts.push(zh.to_owned());
    }
    if let Some(a) = d["amount_fen"].as_i64() {
        parts.push(yuan(a));
    }
    if let Some(b) = d["given_by"].as_str() {
        parts.push(format!("救助人 / by {b}"));
    }
    if let Some(o) = d["decision"].as_str() {
        parts.push(
            match o {
                "approved" => "批准 / approved",
                "refused" => "不予批准 / refused",
                _ => o,
            }
            .to_owned(),
        );
    }
    if let Some(a) = d["assistance_type"].as_str() {
        let zh = schemas::cases::AssistanceType::from_code(a).map_or(a, |a| a.name_zh());
        parts.push(zh.to_owned());
    }
    if let Some(o) = d["initial_opinion"]["text"].as_str() {
        parts.push(format!("初审意见 / opinion: {o}"));
    }
    for key in ["reason", "reason_for_applicant", "note"] {
        if let Some(r) = d[key].as_str() {
            parts.push(r.to_owned());
        }
    }
    parts.join("，")
}

/// A one-screen summary of `GET /v1/cases/{id}`.
pub fn case_summary(c: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let channel = schemas::cases::Channel::from_code(c["channel"].as_str().unwrap_or(""))
        .map_or_else(|| s(&c["channel"]), |ch| ch.name_zh().to_owned());
    let hardship = schemas::cases::Hardship::from_code(c["hardship"].as_str().unwrap_or(""))
        .map_or_else(|| s(&c["hardship"]), |h| h.name_zh().to_owned());
    let mut out = format!(
        "案件 / case {}\n阶段 / stage: {}   {}   渠道 / channel: {channel}   困难 / hardship: {hardship}\n",
        s(&c["id"]),
        stage_zh(c["state"].as_str().unwrap_or("?")),
        tier_zh(c["tier"].as_str().unwrap_or("")),
    );
    out.push_str(&format!(
        "乡镇 / township: {}   登记 / filed {}\n",
        township_name(c["township"].as_str().unwrap_or("?")),
        beijing_minute(c["created_at"].as_str().unwrap_or("?"))
    ));
    if let Some(o) = c["outcome"].as_str() {
        out.push_str(&format!(
            "决定 / outcome: {}\n",
            if o == "approved" {
                "批准 / approved"
            } else {
                "不予批准 / refused"
            }
        ));
    }
    let a = &c["applicant"];
    if a.is_object() {
        out.push_str(&format!(
            "申请人 / applicant: {}  {}  电话 / phone {}\n",
            s(&a["name"]),
            masked(a["resident_id"].as_str().unwrap_or("")),
            s(&a["phone"])
        ));
    }
    if let Some(d) = c["description"].as_str() {
        out.push_str(&format!("情况 / description: {d}\n"));
    }
    out.push_str("时限 / clocks (北京时间 / Beijing time):\n");
    let clocks = c["clocks"].as_array().cloned().unwrap_or_default();
    if clocks.is_empty() {
        out.push_str("  无 / none\n");
    }
    for clock in &clocks {
        out.push_str(&clock_line(clock));
        out.push('\n');
    }
    let slips = c["slips"].as_array().cloned().unwrap_or_default();
    if !slips.is_empty() {
        out.push_str("转办单 / referral slips:\n");
        for slip in &slips {
            out.push_str(&format!("  {}\n", super::slips::slip_line(slip)));
            if let Some(a) = slip["asked"].as_str() {
                out.push_str(&format!("    转办事项 / asked: {a}\n"));
            }
            out.push_str(&super::slips::feedback_lines(slip, "    "));
        }
    }
    out.push_str(&format!(
        "可办理 / allowed: {}\n经过 / timeline:\n",
        allowed_line(&c["allowed"])
    ));
    for e in c["events"].as_array().into_iter().flatten() {
        let action = e["action"].as_str().unwrap_or("?");
        let details = e["details"]
            .as_object()
            .map(|_| details_text(&e["details"]))
            .filter(|t| !t.is_empty())
            .map(|t| format!("  {t}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}  {} {action} → {}  {}{details}\n",
            beijing_minute(e["at"].as_str().unwrap_or("?")),
            move_zh(action).0,
            stage_zh(e["to_state"].as_str().unwrap_or("?")),
            principal_of(e["actor"].as_str().unwrap_or("?")),
        ));
    }
    out
}

/// One line per case of `GET /v1/cases`.
pub fn list_lines(v: &Value) -> String {
    let cases = v["cases"].as_array().cloned().unwrap_or_default();
    let overdue = cases.iter().filter(|c| c["overdue"] == true).count();
    let mut out = format!(
        "案件 {} 件，其中超期 {overdue} 件 / {} cases, {overdue} overdue\n",
        cases.len(),
        cases.len()
    );
    for c in &cases {
        let due = c["next_due_at"]
            .as_str()
            .map(|d| format!("最近期限 / next due {}", beijing_minute(d)))
            .unwrap_or_else(|| "无在办时限 / no open clock".to_owned());
        let mark = if c["overdue"] == true {
            "  ⚠ 已超期 / overdue"
        } else {
            ""
        };
        let tier = c["tier"].as_str().unwrap_or("?");
        out.push_str(&format!(
            "  {}  {} {} {} {due}{mark}\n",
            c["id"].as_str().unwrap_or("?"),
            pad(tier_zh(tier).split(' ').next().unwrap_or(tier), 14),
            pad(&stage_zh(c["state"].as_str().unwrap_or("?")), 24),
            pad(&township_name(c["township"].as_str().unwrap_or("?")), 22),
        ));
    }
    if let Some(next) = v["next_cursor"].as_str() {
        out.push_str(&format!("更多 / more: --cursor {next}\n"));
    }
    out
}

pub async fn main(cmd: CaseCommand) -> anyhow::Result<()> {
    match cmd {
        CaseCommand::New(a) => new(a).await,
        CaseCommand::Refer(a) => super::slips::refer(a).await,
        CaseCommand::List(a) => list(a).await,
        CaseCommand::Show(a) => show(a).await,
        CaseCommand::Accept(a) => {
            let body = json!({ "note": a.note });
            make_move(&a.remote, &a.id, "accept", body).await
        }
        CaseCommand::Close(a) => {
            let body = json!({ "note": a.note });
            make_move(&a.remote, &a.id, "close", body).await
        }
        CaseCommand::Transfer(a) => {
            let body = json!({ "to_township": a.to, "reason": a.reason });
            make_move(&a.remote, &a.id, "transfer", body).await
        }
        CaseCommand::Help(a) => {
            let at = a.at.unwrap_or_else(OffsetDateTime::now_utc);
            let body = json!({
                "kind": a.kind.code(),
                "amount_fen": a.amount,
                "given_at": at.to_offset(BEIJING).replace_nanosecond(0).unwrap_or(at).format(&Rfc3339)?,
                "given_by": a.by,
                "note": a.note,
            });
            make_move(&a.remote, &a.id, "first-help", body).await
        }
        CaseCommand::Investigate(a) => {
            let body = read_json(&a.record)?;
            make_move(&a.remote, &a.id, "investigation", body).await
        }
        CaseCommand::HandToCounty(a) => {
            let body = json!({ "reason": a.reason });
            make_move(&a.remote, &a.id, "hand-to-county", body).await
        }
        CaseCommand::Decide(a) => {
            let body = json!({
                "decision": if a.approve { "approved" } else { "refused" },
                "assistance_type": a.assistance_type,
                "amount_fen": a.amount,
                "reason_for_applicant": a.reason,
                "note": a.note,
            });
            make_move(&a.remote, &a.id, "decision", body).await
        }
    }
}

/// Leave out the fields not given (the hub's bodies take absent, not null).
fn without_nulls(mut v: Value) -> Value {
    if let Value::Object(o) = &mut v {
        o.retain(|_, v| !v.is_null());
    }
    v
}

async fn send(req: reqwest::RequestBuilder, ok: &[u16]) -> anyhow::Result<(u16, Value)> {
    let r = req.send().await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    anyhow::ensure!(ok.contains(&status), "{}", case_error_line(status, &body));
    let v = serde_json::from_str(&body).context("the hub's answer is not JSON")?;
    Ok((status, v))
}

async fn new(a: NewArgs) -> anyhow::Result<()> {
    let (http, base) = client(&a.remote)?;
    let mut req = http
        .post(format!("{base}/v1/cases"))
        .json(&read_json(&a.request)?);
    if let Some(k) = &a.idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let (status, v) = send(req, &[200, 201]).await?;
    let id = v["id"].as_str().unwrap_or("?");
    if status == 201 {
        println!("案件已登记 / case opened: {id}");
    } else {
        println!("此前已登记（同一 Idempotency-Key） / already opened with this key: {id}");
    }
    println!(
        "阶段 / stage: {}   {}   {}",
        stage_zh(v["state"].as_str().unwrap_or("?")),
        tier_zh(v["tier"].as_str().unwrap_or("")),
        township_name(v["township"].as_str().unwrap_or("?"))
    );
    println!("可办理 / allowed: {}", allowed_line(&v["allowed"]));
    Ok(())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let (http, base) = client(&a.remote)?;
    let mut query: Vec<String> = Vec::new();
    for (k, v) in [
        ("state", &a.state),
        ("tier", &a.tier),
        ("township", &a.township),
        ("cursor", &a.cursor),
    ] {
        if let Some(v) = v {
            // Codes, division codes and case ids: nothing to escape, and nothing else is sent.
            anyhow::ensure!(
                !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "--{k}: letters, digits, _ and - only"
            );
            query.push(format!("{k}={v}"));
        }
    }
    if let Some(l) = a.limit {
        query.push(format!("limit={l}"));
    }
    if a.overdue {
        query.push("overdue=true".into());
    }
    let url = if query.is_empty() {
        format!("{base}/v1/cases")
    } else {
        format!("{base}/v1/cases?{}", query.join("&"))
    };
    let (_, v) = send(http.get(url), &[200]).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", list_lines(&v));
    }
    Ok(())
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let (http, base) = client(&a.remote)?;
    let (_, v) = send(http.get(format!("{base}/v1/cases/{}", a.id)), &[200]).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", case_summary(&v));
    }
    Ok(())
}

async fn make_move(remote: &Remote, id: &str, step: &str, body: Value) -> anyhow::Result<()> {
    let (http, base) = client(remote)?;
    let (_, v) = send(
        http.post(format!("{base}/v1/cases/{id}/{step}"))
            .json(&without_nulls(body)),
        &[200],
    )
    .await?;
    println!(
        "已办理 / done: {} → {}（版本 / version {}）",
        v["id"].as_str().unwrap_or(id),
        stage_zh(v["state"].as_str().unwrap_or("?")),
        v["version"]
    );
    println!("可办理 / allowed: {}", allowed_line(&v["allowed"]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn yuan_on_the_command_line_is_fen_on_the_wire() {
        for (s, fen) in [
            ("500", Ok(50_000)),
            ("500.00", Ok(50_000)),
            ("500.5", Ok(50_050)),
            ("0.01", Ok(1)),
            ("12.345", Err(())),
            ("-5", Err(())),
            ("5e3", Err(())),
            ("", Err(())),
            (".5", Err(())),
        ] {
            assert_eq!(parse_yuan(s).map_err(|_| ()), fen, "{s}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_beijing_minutes() {
        let t = parse_time("2026-10-01 08:30").unwrap();
        assert_eq!(t, parse_time("2026-10-01T00:30:00Z").unwrap());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(beijing_minute("2026-10-10T15:59:59Z"), "2026-10-10 23:59");
    }

    #[test]
    fn an_illegal_move_names_the_stage_and_the_allowed_moves() {
        let body = r#"{"error":{"code":"illegal_transition","message":"m"},"state":"accepted","allowed":["transfer","first_help"]}"#;
        let line = case_error_line(409, body);
        assert!(line.contains("已受理 (accepted)"), "{line}");
        assert!(
            line.contains("先行救助 first_help (hub client case help)"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_summary_hides_the_middle_of_the_resident_id() {
        assert_eq!(masked("370811199001011234"), "370811********1234");
    }
}
