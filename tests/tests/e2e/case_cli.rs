//! `hub client case …` (issue 11 item 9): the real `hub` binary's case commands against a real hub
//! over mTLS, with the demo's certificates and its `samples/case-*.json` — open, accept, first
//! help (yuan on the command line, fen on the wire), list, show (stage, clocks, timeline), an
//! illegal move (one line naming the stage and the allowed moves, exit 1), a refusal by
//! jurisdiction, a wrong command line (exit 2), and a normal case through investigation, the
//! county and closure; a referral slip (转办单) issued with `case refer` and answered by the
//! department with `hub client slips`.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::verification::{Setup, setup};

/// Run `hub client case ARGS` as the demo identity `who` (its certificate and key).
async fn case(s: &Setup, who: &str, args: &[&str]) -> anyhow::Result<Output> {
    client(s, "case", who, args).await
}

/// Run `hub client slips ARGS` as the demo identity `who`.
async fn slips(s: &Setup, who: &str, args: &[&str]) -> anyhow::Result<Output> {
    client(s, "slips", who, args).await
}

async fn client(s: &Setup, group: &str, who: &str, args: &[&str]) -> anyhow::Result<Output> {
    let pki = s.env.path().join("pki");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub-e2e"));
    cmd.args(["client", group]).arg(args[0]);
    cmd.arg("--url")
        .arg(format!("https://localhost:{}", s.hub.addr.port()))
        .arg("--cacert")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join(format!("{who}.pem")))
        .arg("--key")
        .arg(pki.join(format!("{who}.key")))
        .args(&args[1..]);
    Ok(tokio::task::spawn_blocking(move || cmd.output()).await??)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Succeeded, or fail the test with what it printed.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}\n{}", out(&o), err(&o));
    out(&o)
}

/// The id printed after `case opened: `.
fn opened_id(stdout: &str) -> String {
    stdout
        .split("case opened: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no case id in {stdout}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_commands_run_a_case_over_mtls() -> anyhow::Result<()> {
    let s = setup("").await?;
    let samples = s.env.path().join("samples");
    let sample = samples.join("case-emergency.json");
    let filing: Value = serde_json::from_slice(&std::fs::read(&sample)?)?;
    let resident_id = filing["applicant"]["resident_id"]
        .as_str()
        .expect("sample resident id")
        .to_owned();
    let sample = sample.to_string_lossy().into_owned();

    let printed = ok(case(&s, "caseworker", &["new", &sample]).await?);
    let id = opened_id(&printed);
    assert!(printed.contains("待受理 (received)"), "{printed}");
    assert!(
        printed.contains("受理 accept (hub client case accept)"),
        "{printed}"
    );

    let printed = ok(case(&s, "caseworker", &["accept", &id]).await?);
    assert!(printed.contains("已受理 (accepted)"), "{printed}");

    // 急难: no closing (nor investigating) before first help. One line, exit 1, the stage and
    // the moves it allows, each with its command.
    let o = case(&s, "caseworker", &["close", &id]).await?;
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let line = err(&o);
    assert_eq!(line.trim_end().lines().count(), 1, "{line}");
    for needed in [
        "HTTP 409 illegal_transition",
        "当前阶段 / stage: 已受理 (accepted)",
        "分办 transfer (hub client case transfer)",
        "先行救助 first_help (hub client case help)",
    ] {
        assert!(line.contains(needed), "{needed}: {line}");
    }
    assert!(!line.contains("办结 close"), "{line}");

    // A wrong amount is a wrong command line (exit 2), and nothing is sent.
    let o = case(
        &s,
        "caseworker",
        &[
            "help", &id, "--kind", "cash", "--amount", "12.345", "--by", "x",
        ],
    )
    .await?;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));

    let printed = ok(case(
        &s,
        "caseworker",
        &[
            "help",
            &id,
            "--kind",
            "cash",
            "--amount",
            "500.00",
            "--by",
            "许庄街道救助站",
        ],
    )
    .await?);
    assert!(printed.contains("已先行救助 (helped)"), "{printed}");

    let listed = ok(case(&s, "caseworker", &["list"]).await?);
    let row = listed
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
    assert!(row.contains("已先行救助"), "{row}");
    assert!(row.contains("最近期限 / next due 20"), "{row}");

    let shown = ok(case(&s, "caseworker", &["show", &id]).await?);
    for needed in [
        "阶段 / stage: 已先行救助 (helped)",
        "急难（2小时）",
        "许庄街道 370811002",
        "先行救助 / first help",
        "已完成 / met",
        "补充完善材料 / materials",
        "审批决定 / decision",
        "期限 / due 20",
        "¥500.00",
        "救助人 / by 许庄街道救助站",
        "可办理 / allowed: 先行救助 first_help",
    ] {
        assert!(shown.contains(needed), "{needed}:\n{shown}");
    }
    // The summary hides the middle of the resident ID; --json carries it whole.
    assert!(!shown.contains(&resident_id), "{shown}");
    let raw: Value =
        serde_json::from_str(&ok(case(&s, "caseworker", &["show", &id, "--json"]).await?))?;
    assert_eq!(raw["state"], "helped");
    assert_eq!(raw["applicant"]["resident_id"], resident_id.as_str());
    let help = raw["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "first_help")
        .expect("first help in the timeline");
    assert_eq!(help["details"]["amount_fen"], 50_000);
    assert_eq!(help["details"]["kind"], "cash");

    // Another township's caseworker is refused: one line, exit 1, no personal data.
    let o = case(&s, "caseworker-other", &["show", &id]).await?;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("HTTP 403"), "{}", err(&o));
    assert_eq!(err(&o).trim_end().lines().count(), 1, "{}", err(&o));
    assert!(!err(&o).contains(&resident_id));

    referral_slip_round_trip(&s, &id, &resident_id).await
}

/// 转办单 from the command line: the caseworker refers the case to health; the department, with
/// its own certificate, lists its open slips, reads whom to help, accepts and answers; the case
/// shows the feedback; a second answer is refused with the slip's state and no allowed move.
async fn referral_slip_round_trip(s: &Setup, id: &str, resident_id: &str) -> anyhow::Result<()> {
    // A wrong addressee is a wrong command line.
    let o = case(s, "caseworker", &["refer", id, "--to", "tax", "--ask", "x"]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let printed = ok(case(
        s,
        "caseworker",
        &[
            "refer",
            id,
            "--to",
            "health",
            "--ask",
            "请落实住院费用医疗救助，一站式结算",
        ],
    )
    .await?);
    assert!(printed.contains("医疗救助 → 卫健/医保"), "{printed}");
    assert!(printed.contains("待签收 (issued)"), "{printed}");
    let slip = printed
        .split("slip issued: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no slip id in {printed}"))
        .to_owned();

    // Another department does not see it; health lists it among its issued slips.
    let listed = ok(slips(s, "dept-labor", &["list"]).await?);
    assert!(!listed.contains(&slip), "{listed}");
    let listed = ok(slips(s, "dept-health", &["list", "--state", "issued"]).await?);
    let row = listed
        .lines()
        .find(|l| l.contains(&slip))
        .unwrap_or_else(|| panic!("{slip} not listed:\n{listed}"));
    assert!(row.contains("期限 / due 20"), "{row}");
    let listed = ok(slips(s, "dept-health", &["list", "--overdue"]).await?);
    assert!(!listed.contains(&slip), "{listed}");
    let shown = ok(slips(s, "dept-health", &["show", &slip]).await?);
    for needed in [
        "转办事项 / asked: 请落实住院费用医疗救助",
        resident_id,
        "签收 accept (hub client slips accept)",
    ] {
        assert!(shown.contains(needed), "{needed}:\n{shown}");
    }
    let printed = ok(slips(s, "dept-health", &["accept", &slip]).await?);
    assert!(printed.contains("已签收 (accepted)"), "{printed}");
    let printed = ok(slips(
        s,
        "dept-health",
        &[
            "feedback",
            &slip,
            "--result",
            "done",
            "--text",
            "已纳入医疗救助，报销自付费用",
            "--amount",
            "3200.00",
        ],
    )
    .await?);
    assert!(printed.contains("已反馈 (answered)"), "{printed}");
    let json: Value = serde_json::from_str(&ok(slips(
        s,
        "dept-health",
        &["list", "--state", "answered", "--json"],
    )
    .await?))?;
    assert!(
        json["slips"].as_array().is_some_and(|l| l
            .iter()
            .any(|x| x["id"] == slip.as_str() && x["result"] == "done")),
        "{json}"
    );

    // Answered: no move is left, said in one line.
    let o = slips(s, "dept-health", &["accept", &slip]).await?;
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let line = err(&o);
    assert_eq!(line.trim_end().lines().count(), 1, "{line}");
    assert!(line.contains("HTTP 409 illegal_transition"), "{line}");
    assert!(line.contains("已反馈 (answered)"), "{line}");

    let shown = ok(case(s, "caseworker", &["show", id]).await?);
    for needed in [
        "转办单 / referral slips:",
        "医疗救助 → 卫健/医保",
        "已反馈 (answered)",
        "已办结，已纳入医疗救助，报销自付费用，¥3,200.00",
    ] {
        assert!(shown.contains(needed), "{needed}:\n{shown}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_case_goes_through_the_county_to_closure_from_the_command_line()
-> anyhow::Result<()> {
    let s = setup("").await?;
    let sample = s.env.path().join("samples/case-normal.json");
    let id = opened_id(&ok(case(
        &s,
        "caseworker",
        &["new", &sample.to_string_lossy(), "--idempotency-key", "k-1"],
    )
    .await?));
    // The same key again: the same case.
    let again = ok(case(
        &s,
        "caseworker",
        &["new", &sample.to_string_lossy(), "--idempotency-key", "k-1"],
    )
    .await?);
    assert!(
        again.contains(&format!("already opened with this key: {id}")),
        "{again}"
    );

    // Sent to 李营 and back: a transfer needs a reason and another township.
    ok(case(
        &s,
        "caseworker",
        &[
            "transfer",
            &id,
            "--to",
            "370811005",
            "--reason",
            "户籍在李营",
        ],
    )
    .await?);
    ok(case(
        &s,
        "caseworker-other",
        &[
            "transfer",
            &id,
            "--to",
            "370811002",
            "--reason",
            "核实户籍仍在许庄",
        ],
    )
    .await?);
    ok(case(&s, "caseworker", &["accept", &id]).await?);

    let record = s.env.path().join("investigation.json");
    let visited = (time::OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)?;
    std::fs::write(
        &record,
        serde_json::to_vec(&json!({
            "home_visit": {
                "visited_at": visited,
                "visited_by": ["许庄街道经办人", "村协理员"],
                "findings": "户主失业，家庭人均收入低于低保标准",
            },
            "initial_opinion": {
                "recommendation": "approve",
                "assistance_type": "dibao",
                "text": "建议纳入最低生活保障",
            },
        }))?,
    )?;
    ok(case(
        &s,
        "caseworker",
        &["investigate", &id, &record.to_string_lossy()],
    )
    .await?);
    ok(case(
        &s,
        "caseworker",
        &["hand-to-county", &id, "--reason", "超出乡镇审批权限"],
    )
    .await?);
    // Handed to the county: the township no longer decides.
    let o = case(
        &s,
        "caseworker",
        &["decide", &id, "--approve", "--type", "dibao"],
    )
    .await?;
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("HTTP 403"), "{}", err(&o));
    // --approve without --type is a wrong command line.
    let o = case(&s, "county-officer", &["decide", &id, "--approve"]).await?;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    ok(case(
        &s,
        "county-officer",
        &[
            "decide",
            &id,
            "--approve",
            "--type",
            "dibao",
            "--amount",
            "620.00",
        ],
    )
    .await?);
    let printed = ok(case(&s, "county-officer", &["close", &id]).await?);
    assert!(printed.contains("已办结 (closed)"), "{printed}");
    assert!(printed.contains("可办理 / allowed: 无 / none"), "{printed}");

    let shown = ok(case(&s, "county-officer", &["show", &id]).await?);
    for needed in [
        "已办结 (closed)",
        "决定 / outcome: 批准 / approved",
        "分办 transfer",
        "至 / to 李营街道 370811005",
        "转交县级 hand_to_county",
        "审批决定 decide",
        "¥620.00",
        "最低生活保障",
        "officer-rencheng-01",
    ] {
        assert!(shown.contains(needed), "{needed}:\n{shown}");
    }
    let listed = ok(case(&s, "county-officer", &["list", "--state", "closed"]).await?);
    assert!(listed.contains(&id), "{listed}");
    let listed = ok(case(&s, "county-officer", &["list", "--state", "received"]).await?);
    assert!(!listed.contains(&id), "{listed}");
    Ok(())
}
