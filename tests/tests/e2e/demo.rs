//! The README's demo command: `hub demo` starts the hub and the seven simulated departments; the
//! printed curl recipes work (checked here with the same certificates, over real mTLS), and every
//! department's protocol-v1 answer verifies against the key published in `departments.toml`;
//! while it runs, the simulated departments answer the demo's referral slips and push signed
//! events.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub_tests::{client_config, http_client};
use schemas::Department;
use schemas::protocol::{DepartmentKey, FactQuery, receive_answer};
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_hub_and_seven_departments() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (api, admin) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen",
            &format!("127.0.0.1:{api}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
            // The departments answer the demo's slips after a second, none held back late, and
            // push two events a second.
            "--slip-answer-delay",
            "1s",
            "--slip-late-share",
            "0",
            "--event-rate",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let _guard = Killed(child);
    // Read the instructions until the hub says it listens (bounded).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    let mut printed = String::new();
    while !printed.contains("hub listening on") {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "demo did not start:\n{printed}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            printed.push_str(&line);
            printed.push('\n');
        }
    }
    let pki = dir.path().join("pki");
    assert!(printed.contains("curl --cacert"), "{printed}");
    let pki_abs = std::fs::canonicalize(&pki)?;
    assert!(
        printed.contains(&format!("P={};", pki_abs.display())),
        "{printed}"
    );

    // The caseworker's curl recipe, with the same files.
    let caseworker = http_client(client_config(
        &pki.join("ca.pem"),
        Some((pki.join("caseworker.pem"), pki.join("caseworker.key"))),
    )?)?;
    let me: Value = caseworker
        .get(format!("https://localhost:{api}/v1/whoami"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(me["division"], "370811002");
    let ready = caseworker
        .get(format!("https://localhost:{api}/readyz"))
        .send()
        .await?;
    assert_eq!(ready.status(), 200);
    // The hub's signing key has one identifier: /readyz names the key /v1/report-key publishes.
    let ready: Value = ready.json().await?;
    let key: Value = caseworker
        .get(format!("https://localhost:{api}/v1/report-key"))
        .send()
        .await?
        .json()
        .await?;
    let key_id = key["key_id"].as_str().expect("key_id");
    assert_eq!(
        ready["signing_key"]["detail"],
        format!("ed25519 {key_id}"),
        "{ready}"
    );

    // Every department answers its sample query with a signed answer that verifies against the key
    // the demo published.
    let listing: toml::Table = toml::from_str(&std::fs::read_to_string(
        dir.path().join("departments.toml"),
    )?)?;
    let hub_out = http_client(client_config(
        &pki.join("ca.pem"),
        Some((pki.join("hub-outbound.pem"), pki.join("hub-outbound.key"))),
    )?)?;
    for d in Department::ALL {
        let entry = listing
            .get(d.code())
            .and_then(|v| v.as_table())
            .expect("department listed");
        let url = entry["url"].as_str().expect("url");
        let mut key = [0u8; 32];
        key.copy_from_slice(&hex::decode(entry["public_key"].as_str().expect("key"))?);
        let query: FactQuery = serde_json::from_slice(&std::fs::read(
            dir.path()
                .join("samples/queries")
                .join(format!("{}.json", d.code())),
        )?)?;
        let body = hub_out
            .post(format!("{url}/jsj-connector/1/query"))
            .json(&query)
            .send()
            .await?
            .bytes()
            .await?;
        let received = receive_answer(&body, &query, &[DepartmentKey::new(key)])
            .map_err(|e| anyhow::anyhow!("{d}: {e}"))?;
        assert_eq!(received.answer.department, d);
        assert_eq!(received.answer.results.len(), query.subjects.len());
    }
    // Sample verification requests are there.
    let samples: Vec<_> = std::fs::read_dir(dir.path().join("samples"))?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(samples.len() >= 4, "{} samples", samples.len());

    // The demo's own cases (救助案件), seeded before it says it listens: the 许庄 caseworker lists
    // several, some overdue, and one accepted before National Day whose deadlines follow the
    // official calendar.
    assert!(
        printed.contains("演示案件 / demo cases: 14 opened"),
        "{printed}"
    );
    assert!(!printed.contains("not seeded"), "{printed}");
    seeded_cases(&caseworker, api).await?;
    for tier in ["emergency", "urgent", "normal"] {
        let sample: Value = serde_json::from_slice(&std::fs::read(
            dir.path().join(format!("samples/case-{tier}.json")),
        )?)?;
        assert_eq!(sample["tier"], tier);
    }

    assert!(printed.contains("referral slips issued"), "{printed}");
    assert!(
        printed.contains("监测名单 / monitoring list: "),
        "{printed}"
    );
    run_printed_next_steps(&printed, api, dir.path())?;
    departments_answer_and_push(&pki, api, admin).await
}

/// While the demo runs, a simulated department (labor, with its own certificate) answers a slip
/// the demo issued, and the departments' signed events arrive: some placed through the
/// monitoring list civil affairs loaded, some kept as unmatched. Bounded waits: the departments
/// act on their own clock.
async fn departments_answer_and_push(
    pki: &std::path::Path,
    api: u16,
    admin: u16,
) -> anyhow::Result<()> {
    let as_who = |who: &str| {
        http_client(client_config(
            &pki.join("ca.pem"),
            Some((
                pki.join(format!("{who}.pem")),
                pki.join(format!("{who}.key")),
            )),
        )?)
    };
    let labor = as_who("dept-labor")?;
    let civil = as_who("dept-civil-affairs")?;
    let get = |c: &reqwest::Client, path: &str| {
        let req = c.get(format!("https://localhost:{api}{path}"));
        async move {
            let r = req.send().await?;
            anyhow::ensure!(r.status() == 200, "{}", r.status());
            Ok::<Value, anyhow::Error>(r.json().await?)
        }
    };
    let start = Instant::now();
    let answered = loop {
        let l = get(&labor, "/v1/slips?state=answered").await?;
        if let Some(id) = l["slips"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s["id"].as_str())
        {
            break id.to_owned();
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(90),
            "no slip answered by labor: {l}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let slip = get(&labor, &format!("/v1/slips/{answered}")).await?;
    assert!(
        slip["feedback"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("失业登记")),
        "{slip}"
    );
    assert!(slip["accepted_at"].is_string(), "{slip}");

    // Plain HTTP on the admin port, with the same client.
    let metrics = &civil;
    let start = Instant::now();
    loop {
        let unmatched = get(&civil, "/v1/events/unmatched").await?;
        let text = metrics
            .get(format!("http://127.0.0.1:{admin}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let placed = text.lines().any(|l| {
            l.starts_with("hub_events_received_total") && l.contains("placement=\"monitoring\"")
        });
        if placed
            && unmatched["events"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(90),
            "events did not arrive: placed {placed}, {unmatched}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// The seeded cases as the 许庄 caseworker sees them.
async fn seeded_cases(caseworker: &reqwest::Client, api: u16) -> anyhow::Result<()> {
    let get = |path: String| async move {
        let r = caseworker
            .get(format!("https://localhost:{api}{path}"))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
        Ok::<Value, anyhow::Error>(r.json().await?)
    };
    let all = get("/v1/cases".into()).await?;
    let cases = all["cases"].as_array().expect("cases").clone();
    assert!(cases.len() >= 6, "{all}");
    let overdue = get("/v1/cases?overdue=true".into()).await?;
    assert!(
        overdue["cases"].as_array().is_some_and(|c| c.len() >= 2),
        "{overdue}"
    );
    // Accepted Monday 28 Sep 2026: 5 working days end on Saturday 10 Oct (a make-up working
    // day; 1-7 Oct are off), 20 on Friday 30 Oct (Monday to Friday would say 5 and 26 Oct).
    let national_day = cases
        .iter()
        .find(|c| {
            c["created_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-09-28"))
        })
        .unwrap_or_else(|| panic!("no case filed on 28 Sep 2026: {all}"));
    let case = get(format!(
        "/v1/cases/{}",
        national_day["id"].as_str().expect("id")
    ))
    .await?;
    let due = |kind: &str| {
        case["clocks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["kind"] == kind))
            .map(|c| (c["due_at"].clone(), c["status"].clone()))
            .unwrap_or_else(|| panic!("no {kind} clock: {case}"))
    };
    assert_eq!(due("materials").0, "2026-10-10T23:59:59+08:00", "{case}");
    assert_eq!(
        due("decision"),
        (Value::from("2026-10-30T23:59:59+08:00"), Value::from("met")),
        "{case}"
    );
    Ok(())
}

/// The printed next steps name the binary that runs and this demo's port, and every printed `hub`
/// command runs as printed (in bash, after the printed `P=…`, `ME=…`, `AU=…` lines), for real and
/// in the printed order, each `<report id>` replaced by the id of the check printed before it;
/// attaching the letter a second time records no second letter.
fn run_printed_next_steps(printed: &str, api: u16, dir: &std::path::Path) -> anyhow::Result<()> {
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_hub-e2e"))?;
    let lines: Vec<&str> = printed.lines().map(str::trim).collect();
    let prelude: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| ["P=", "ME=", "AU=", "HE="].iter().any(|p| l.starts_with(p)))
        .collect();
    assert_eq!(prelude.len(), 4, "{printed}");
    assert!(
        prelude[0].contains(&format!("HUB={}", exe.display())),
        "{printed}"
    );
    assert!(
        prelude[1].contains(&format!("https://localhost:{api} ")),
        "{printed}"
    );
    let commands: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("$HUB "))
        .collect();
    for needed in [
        "client verify",
        "--letter",
        "client report",
        "client follow-ups",
        "client attach-letter",
        "audit verify",
        "audit search",
        "audit subject-report",
        "client case new",
        "client case list",
        "client case show",
        "client case help",
        "client case refer",
        "client slips list",
        "client slips show",
        "client slips accept",
        "client slips feedback",
        "client warnings list",
        "client warnings show",
        "client warnings acknowledge",
    ] {
        assert!(
            commands.iter().any(|c| c.contains(needed)),
            "no printed command with {needed}:\n{printed}"
        );
    }
    let run = |command: &str| -> anyhow::Result<std::process::Output> {
        let script = format!("set -e\n{}\n{command}\n", prelude.join("\n"));
        Ok(Command::new("bash").arg("-c").arg(&script).output()?)
    };
    let mut emergency_id = None;
    let mut case_id: Option<String> = None;
    let mut slip_id: Option<String> = None;
    let mut warning_id: Option<String> = None;
    for command in commands {
        let command = if command.contains("<warning id>") {
            command.replace(
                "<warning id>",
                warning_id
                    .as_deref()
                    .expect("the warnings were listed first"),
            )
        } else if command.contains("<slip id>") {
            command.replace(
                "<slip id>",
                slip_id.as_deref().expect("the slip was issued first"),
            )
        } else if command.contains("<case id>") {
            command.replace(
                "<case id>",
                case_id.as_deref().expect("the case was opened first"),
            )
        } else if command.contains("client report") {
            let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json"))?)?;
            command.replace("<report id>", report["id"].as_str().expect("report id"))
        } else if command.contains("attach-letter") {
            command.replace(
                "<report id>",
                emergency_id
                    .as_deref()
                    .expect("the emergency check ran first"),
            )
        } else {
            command.to_owned()
        };
        let mut out = run(&command)?;
        if command.contains("client warnings list") {
            // The demo pushes 许庄's opening events as it starts: wait (bounded) until they are in.
            let start = std::time::Instant::now();
            while out.status.success()
                && !String::from_utf8_lossy(&out.stdout).contains("紧急")
                && start.elapsed() < std::time::Duration::from_secs(60)
            {
                std::thread::sleep(std::time::Duration::from_millis(500));
                out = run(&command)?;
            }
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "{command}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if command.contains("xuzhuang-emergency.json") && !command.contains("--letter") {
            emergency_id = stdout
                .split("report ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
        }
        if command.contains("client case new") {
            case_id = stdout
                .split("case opened: ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
        }
        if command.contains("client case refer") {
            slip_id = stdout
                .split("slip issued: ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
        }
        if command.contains("client warnings list") {
            // 许庄's monitored households' hospital stays: urgent (紧急), one raised by a second signal.
            assert!(stdout.contains("紧急"), "{command}:\n{stdout}");
            warning_id = stdout
                .lines()
                .skip(1)
                .find(|l| l.contains("紧急"))
                .and_then(|l| l.split_whitespace().next())
                .map(str::to_owned);
        }
        if command.contains("client warnings show") {
            assert!(stdout.contains("信号 / signals"), "{command}:\n{stdout}");
            assert!(
                stdout.contains("health.hospitalisation"),
                "{command}:\n{stdout}"
            );
        }
        if command.contains("client warnings acknowledge") {
            assert!(
                stdout.contains("已联系 (acknowledged)"),
                "{command}:\n{stdout}"
            );
        }
        if command.contains("client slips feedback") {
            assert!(stdout.contains("已反馈 (answered)"), "{command}:\n{stdout}");
        }
        if command.contains("client case list") && command.contains("--overdue") {
            assert!(stdout.contains("已超期"), "{command}:\n{stdout}");
        }
        if command.contains("client case show") {
            assert!(
                stdout.contains("阶段 / stage: 待受理"),
                "{command}:\n{stdout}"
            );
            assert!(
                stdout.contains("先行救助 / first help"),
                "{command}:\n{stdout}"
            );
        }
        if command.contains("attach-letter") {
            // Again: the letter is already on record (no second record), and already attached.
            let out = run(&command)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("letter already on record"),
                "{stderr}"
            );
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        }
    }
    assert!(dir.join("report.html").exists());
    assert!(dir.join("trusted.checkpoint").exists());
    Ok(())
}
