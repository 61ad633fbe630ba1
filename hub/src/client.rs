//! `hub client`: the caseworker's command line (the demo can be driven without curl).
//!
//! `hub client verify REQUEST.json [--letter LETTER.json]` records the authorization letter (核对授权书)
//! first when given, cites it, starts the household verification and prints each department's
//! status; `hub client report ID` fetches a stored report, optionally as the printable page.
//! `hub client case …` ([`cases`]) opens, lists, shows and moves cases (救助案件) and refers them
//! (`case refer`); `hub client slips …` ([`slips`]) is the receiving department's side of a
//! referral slip (转办单); `hub client warnings …` ([`warnings`]) is the township's warning queue
//! (监测预警).
//! Every call goes over mTLS with the caller's own certificate.

pub mod cases;
pub mod slips;
pub mod warnings;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::audit::{Remote, client};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Start a household verification (家庭经济状况核对) from a request file.
    Verify(VerifyArgs),
    /// Fetch a stored report: a summary, the JSON with --json, or the printable zh-CN page with --print.
    Report(ReportArgs),
    /// List your emergency cases whose authorization letter is due or overdue (待补交授权书).
    FollowUps(FollowUpsArgs),
    /// Attach the letter recorded after an emergency check (补登授权书).
    AttachLetter(AttachLetterArgs),
    /// 救助案件: open, list, show and move cases.
    #[command(subcommand)]
    Case(cases::CaseCommand),
    /// 转办单: the referral slips addressed to you (a department or a township): list, show,
    /// accept, answer.
    #[command(subcommand)]
    Slips(slips::SlipsCommand),
    /// 预警: the warnings of your township's queue (监测预警): list, show, acknowledge (首次联系),
    /// dismiss (排除), convert to a case (转为案件).
    #[command(subcommand)]
    Warnings(warnings::WarningsCommand),
}

#[derive(Debug, Args)]
pub struct FollowUpsArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// `open` (no letter yet), `overdue` or `all`.
    #[arg(long, default_value = "open")]
    pub status: String,
}

#[derive(Debug, Args)]
pub struct AttachLetterArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The verification id of the emergency check.
    pub id: String,
    /// A letter (JSON) to record first and attach.
    #[arg(
        long,
        conflicts_with = "authorization_id",
        required_unless_present = "authorization_id"
    )]
    pub letter: Option<PathBuf>,
    /// The id of a letter already recorded.
    #[arg(long)]
    pub authorization_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The verification request (JSON), e.g. var/demo/samples/xuzhuang-dibao.json.
    pub request: PathBuf,
    /// An authorization letter (JSON) to record first and cite, e.g. the sample's `.letter.json`.
    #[arg(long)]
    pub letter: Option<PathBuf>,
    /// Wait at most this long for the report (the hub answers 202 with the id past it).
    #[arg(long)]
    pub wait_ms: Option<u64>,
    /// Idempotency-Key header: the same key twice gives one verification.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Write the report (JSON) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The verification id.
    pub id: String,
    /// Write the printable page (HTML) here instead of printing the summary.
    #[arg(long, conflicts_with = "json")]
    pub print: Option<PathBuf>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))
}

/// The hub's error body as one line, or the raw text.
pub(crate) fn error_line(status: u16, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["error"].is_object() => {
            let e = &v["error"];
            let field = e["field"]
                .as_str()
                .map(|f| format!(" [{f}]"))
                .unwrap_or_default();
            format!(
                "HTTP {status} {}{field}: {}",
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            )
        }
        _ => format!("HTTP {status}: {body}"),
    }
}

/// A one-screen summary of a report.
pub fn summary(report: &Value) -> String {
    let mut out = format!(
        "核对报告 / report {}  案件 / case {}  用途 / purpose {}  完整 / complete: {}\n",
        report["id"].as_str().unwrap_or("?"),
        report["case_ref"].as_str().unwrap_or("?"),
        report["purpose"].as_str().unwrap_or("?"),
        report["complete"]
    );
    if let Some(due) = report["letter_due_by"].as_str() {
        // The follow-up carries the current due date; it is provisional while its year has no
        // official calendar file.
        let f = &report["letter_follow_up"];
        let due = f["due_by"].as_str().unwrap_or(due);
        let mark = if f["provisional"] == true {
            "（暂定，按周一至周五计算 / provisional, counted Monday to Friday）"
        } else {
            ""
        };
        out.push_str(&format!("授权书补交期限 / letter due by {due}{mark}\n"));
    }
    for d in report["departments"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<14} {:<10} {}\n",
            d["department"].as_str().unwrap_or("?"),
            d["name_zh"].as_str().unwrap_or(""),
            d["status_text"].as_str().unwrap_or("?")
        ));
    }
    let facts: usize = report["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["facts"].as_array().map_or(0, Vec::len))
        .sum();
    out.push_str(&format!(
        "  {} 项事实 / facts for {} 名成员 / members\n",
        facts,
        report["members"].as_array().map_or(0, Vec::len)
    ));
    let agg = &report["aggregation"];
    let pc = &agg["household"]["monthly_income_per_capita_fen"];
    if let Some(v) = pc["value"].as_i64() {
        out.push_str(&format!(
            "  家庭月人均收入 / monthly income per capita: {}\n",
            crate::verify::aggregate::yuan(v)
        ));
    } else if pc["withheld"].is_string() {
        out.push_str("  家庭月人均收入 / monthly income per capita: 不予显示 / withheld\n");
    }
    for i in agg["indications"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  提示 / indication: {}\n",
            i["text"].as_str().unwrap_or("?")
        ));
    }
    for d in agg["discrepancies"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  差异 / discrepancy: {}\n",
            d["text"].as_str().unwrap_or("?")
        ));
    }
    out
}

pub fn main(cmd: ClientCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            ClientCommand::Verify(args) => verify(args).await,
            ClientCommand::Report(args) => report(args).await,
            ClientCommand::FollowUps(args) => follow_ups(args).await,
            ClientCommand::AttachLetter(args) => attach_letter(args).await,
            ClientCommand::Case(cmd) => cases::main(cmd).await,
            ClientCommand::Slips(cmd) => slips::main(cmd).await,
            ClientCommand::Warnings(cmd) => warnings::main(cmd).await,
        }
    })
}

/// Record a letter file; returns its id.
async fn record_letter(
    http: &reqwest::Client,
    base: &str,
    letter: &PathBuf,
) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/v1/authorizations"))
        .json(&read_json(letter)?)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    // 200: this letter was already on record (a retry); the hub answers with the same record.
    anyhow::ensure!(
        status == 201 || status == 200,
        "recording the letter: {}",
        error_line(status, &body)
    );
    let id = serde_json::from_str::<Value>(&body)?["id"]
        .as_str()
        .context("letter id in the answer")?
        .to_owned();
    if status == 201 {
        println!("授权书已登记 / letter recorded: {id}");
    } else {
        println!("授权书此前已登记 / letter already on record: {id}");
    }
    Ok(id)
}

async fn follow_ups(args: FollowUpsArgs) -> anyhow::Result<()> {
    let (http, base) = client(&args.remote)?;
    let r = http
        .get(format!("{base}/v1/follow-ups?status={}", args.status))
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    anyhow::ensure!(status == 200, "{}", error_line(status, &body));
    let v: Value = serde_json::from_str(&body)?;
    let items = v["follow_ups"].as_array().cloned().unwrap_or_default();
    println!(
        "待补交授权书 {} 件，其中逾期 {} 件 / {} follow-ups, {} overdue",
        items.len(),
        v["overdue"],
        items.len(),
        v["overdue"]
    );
    for i in items {
        println!(
            "  {}  {}  {}",
            i["verification_id"].as_str().unwrap_or("?"),
            i["case_ref"].as_str().unwrap_or("?"),
            i["text"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

async fn attach_letter(args: AttachLetterArgs) -> anyhow::Result<()> {
    let (http, base) = client(&args.remote)?;
    let auth = match (&args.letter, &args.authorization_id) {
        (Some(file), _) => record_letter(&http, &base, file).await?,
        (None, Some(id)) => id.clone(),
        (None, None) => anyhow::bail!("give --letter FILE or --authorization-id ID"),
    };
    let r = http
        .post(format!("{base}/v1/verifications/{}/letter", args.id))
        .json(&serde_json::json!({ "authorization_id": auth }))
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    anyhow::ensure!(status == 200, "{}", error_line(status, &body));
    let v: Value = serde_json::from_str(&body)?;
    println!(
        "{}",
        v["letter_follow_up"]["text"].as_str().unwrap_or_default()
    );
    Ok(())
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let (http, base) = client(&args.remote)?;
    let mut request = read_json(&args.request)?;
    if let Some(letter) = &args.letter {
        request["authorization_id"] = Value::String(record_letter(&http, &base, letter).await?);
    }
    if let Some(ms) = args.wait_ms {
        request["wait_ms"] = Value::from(ms);
    }
    let mut post = http.post(format!("{base}/v1/verifications")).json(&request);
    if let Some(key) = &args.idempotency_key {
        post = post.header("idempotency-key", key);
    }
    let r = post.send().await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    match status {
        200 => {
            let report: Value = serde_json::from_str(&body)?;
            print!("{}", summary(&report));
            if let Some(out) = &args.out {
                std::fs::write(out, serde_json::to_vec_pretty(&report)?)?;
                println!("报告已保存 / report written: {}", out.display());
            }
            Ok(())
        }
        202 => {
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            println!(
                "核对进行中 / still running: {}  (hub client report ID)",
                v["id"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        _ => anyhow::bail!("{}", error_line(status, &body)),
    }
}

async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let (http, base) = client(&args.remote)?;
    let path = if args.print.is_some() {
        format!("/v1/verifications/{}/print", args.id)
    } else {
        format!("/v1/verifications/{}", args.id)
    };
    let r = http.get(format!("{base}{path}")).send().await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    anyhow::ensure!(status == 200, "{}", error_line(status, &body));
    match &args.print {
        Some(file) => {
            std::fs::write(file, &body)?;
            println!("打印页已保存 / printable page written: {}", file.display());
        }
        None if args.json => println!("{body}"),
        None => print!("{}", summary(&serde_json::from_str(&body)?)),
    }
    Ok(())
}

// ==== helpers shared by `case`, `slips` and `warnings` ====

/// Send `req`; a status outside `ok` becomes the one-line refusal `error_line` makes of it.
pub(crate) async fn send_json(
    req: reqwest::RequestBuilder,
    ok: &[u16],
    error_line: fn(u16, &str) -> String,
) -> anyhow::Result<Value> {
    let r = req.send().await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    anyhow::ensure!(ok.contains(&status), "{}", error_line(status, &body));
    serde_json::from_str(&body).context("the hub's answer is not JSON")
}

/// The hub's answer as pretty JSON with `--json`, else as `text` makes it.
pub(crate) fn print_answer(
    v: &Value,
    json: bool,
    text: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        print!("{}", text(v));
    }
    Ok(())
}

/// `{base}{path}?k=v&…` for a list command: the filters given, and the cursor printed under the
/// previous page (checked, since it goes into the URL as typed).
pub(crate) fn list_url(
    base: &str,
    path: &str,
    filters: &[(&str, Option<String>)],
    cursor: Option<&str>,
) -> anyhow::Result<String> {
    let mut query: Vec<String> = filters
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if let Some(c) = cursor {
        anyhow::ensure!(
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
            "--cursor: the cursor printed under the previous page"
        );
        query.push(format!("cursor={c}"));
    }
    Ok(if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", query.join("&"))
    })
}
