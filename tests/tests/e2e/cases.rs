//! 救助案件 (issue 11 items 1, 2, 7): a case from the 12345 hotline to closure over mTLS, the
//! stage machine enforced (409 with the stage and the allowed moves), a wrong-township transfer
//! accepted by the right township, jurisdiction refusals logged, idempotent filings, the
//! caseworker's verification list, and the resident ID nowhere in clear (database files, the
//! PostgreSQL tables, the hub's own log output).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub_tests::{PgTestDb, TestEnv, TestHub};
use schemas::Household;
use serde_json::{Value, json};

use crate::verification::{Setup, XUZHUANG, households, ids, setup, setup_with, verification};

/// 李营街道, another township of 任城区.
pub(crate) const LIYING: &str = "370811005";

/// A filing for `h`'s applicant.
pub(crate) fn filing(h: &Household, channel: &str, tier: &str, township: &str) -> Value {
    let applicant = h.applicant().unwrap_or(&h.members[0]);
    json!({
        "channel": channel,
        "tier": tier,
        "applicant": {
            "resident_id": applicant.resident_id.as_str(),
            "name": applicant.name,
            "phone": "13905370001",
        },
        "township": township,
        "hardship": "illness",
        "description": "户主突发重病住院，家中无其他收入来源",
    })
}

fn an_hour_ago() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A valid body for the move at `path` (the last path segment).
pub(crate) fn move_body(path: &str) -> Value {
    match path.rsplit('/').next().unwrap_or_default() {
        "transfer" => json!({ "to_township": LIYING, "reason": "户籍在李营街道，分办至李营" }),
        "first-help" => json!({
            "kind": "cash",
            "amount_fen": 50_000,
            "given_at": an_hour_ago(),
            "given_by": "许庄街道救助站",
        }),
        "investigation" => json!({
            "home_visit": {
                "visited_at": an_hour_ago(),
                "visited_by": ["许庄街道经办人", "村协理员"],
                "findings": "家中无劳动力，医疗支出大",
            },
            "initial_opinion": {
                "recommendation": "approve",
                "assistance_type": "temporary_assistance",
                "text": "建议给予临时救助",
            },
        }),
        "hand-to-county" => json!({ "reason": "救助金额超出乡镇审批权限" }),
        "decision" => json!({
            "decision": "approved",
            "assistance_type": "temporary_assistance",
            "amount_fen": 300_000,
        }),
        _ => json!({}),
    }
}

impl Setup {
    /// File a case as `who`; returns its id.
    pub(crate) async fn file_case(&self, who: &str, body: &Value) -> anyhow::Result<String> {
        let (status, b) = self.post(who, "/v1/cases", body).await?;
        assert_eq!(status, 201, "{b}");
        Ok(b["id"].as_str().expect("id").to_owned())
    }

    /// Make a move (`accept`, `first-help`, …) on a case as `who`.
    pub(crate) async fn move_case(
        &self,
        who: &str,
        case: &str,
        step: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.post(who, &format!("/v1/cases/{case}/{step}"), body)
            .await
    }

    pub(crate) async fn get_json(&self, who: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self.env.http(who)?.get(self.hub.url(path)).send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// A case filed by the hotline for a 许庄 household and moved by the 许庄 caseworker through
    /// `steps`.
    pub(crate) async fn prepared_case(&self, tier: &str, steps: &[&str]) -> anyhow::Result<String> {
        let h = households(&self.deps, XUZHUANG)[0].clone();
        let id = self
            .file_case("intake", &filing(&h, "hotline_12345", tier, XUZHUANG))
            .await?;
        for step in steps {
            let (status, b) = self
                .move_case("caseworker", &id, step, &move_body(step))
                .await?;
            assert_eq!(status, 200, "{step}: {b}");
        }
        Ok(id)
    }
}

fn states(case: &Value) -> Vec<(String, String)> {
    case["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["to_state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The closed loop of an emergency case (急难): the 12345 platform files it, the township of the
/// registered address accepts it, gives first help before anything else, investigates with a
/// verification run for the case, decides and closes; every step is in the timeline and the log.
async fn emergency_case_to_closure(s: &Setup) -> anyhow::Result<(String, Household)> {
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let body = filing(&h, "hotline_12345", "emergency", XUZHUANG);
    let case = s.file_case("intake", &body).await?;

    let (status, b) = s
        .move_case(
            "caseworker",
            &case,
            "accept",
            &json!({ "note": "已电话联系申请人" }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "accepted");
    assert_eq!(b["version"], 2);

    // 急难: no investigation before first help. 409 names the stage and the allowed moves.
    let (status, b) = s
        .move_case(
            "caseworker",
            &case,
            "investigation",
            &move_body("investigation"),
        )
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["error"]["code"], "illegal_transition");
    assert_eq!(b["state"], "accepted");
    assert_eq!(b["allowed"], json!(["transfer", "first_help"]));

    let (status, b) = s
        .move_case("caseworker", &case, "first-help", &move_body("first-help"))
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "helped");

    // A verification run for the case (emergency temporary assistance: no letter needed yet).
    let mut v = verification(&h, "temporary_assistance", "", "emergency", None);
    v["case_id"] = json!(case);
    v.as_object_mut().expect("object").remove("case_ref");
    let (status, b) = s.post("caseworker", "/v1/verifications", &v).await?;
    assert_eq!(status, 200, "{b}");
    let vid = b["id"].as_str().expect("id").to_owned();

    let mut investigation = move_body("investigation");
    investigation["verification_ids"] = json!([vid]);
    investigation["expected_version"] = json!(3);
    let (status, b) = s
        .move_case("caseworker", &case, "investigation", &investigation)
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "investigated");

    let (status, b) = s
        .move_case("caseworker", &case, "decision", &move_body("decision"))
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (b["state"].clone(), b["outcome"].clone()),
        (json!("decided"), json!("approved"))
    );
    let (status, b) = s
        .move_case("caseworker", &case, "close", &json!({}))
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "closed");
    assert_eq!(b["allowed"], json!([]));
    let (status, b) = s
        .move_case("caseworker", &case, "close", &json!({}))
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(
        (b["state"].clone(), b["allowed"].clone()),
        (json!("closed"), json!([]))
    );

    // The caseworker reads the whole timeline with its records.
    let (status, c) = s
        .get_json("caseworker", &format!("/v1/cases/{case}"))
        .await?;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c["applicant"]["resident_id"],
        body["applicant"]["resident_id"]
    );
    assert_eq!(
        states(&c),
        [
            ("open", "received"),
            ("accept", "accepted"),
            ("first_help", "helped"),
            ("investigate", "investigated"),
            ("decide", "decided"),
            ("close", "closed"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let events = c["events"].as_array().expect("events");
    assert_eq!(events[2]["details"]["amount_fen"], 50_000);
    assert_eq!(events[3]["details"]["verification_ids"], json!([vid]));
    assert!(
        events[1]["actor"]
            .as_str()
            .is_some_and(|a| a.contains("/caseworker/")),
        "{c}"
    );
    // The hotline reads back what it sent and the stages, not the caseworkers' records.
    let (status, c) = s.get_json("intake", &format!("/v1/cases/{case}")).await?;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["description"], body["description"]);
    assert!(
        c["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e.get("details").is_none()),
        "{c}"
    );
    // The caseworker's verification list names the case.
    let (status, l) = s.get_json("caseworker", "/v1/verifications").await?;
    assert_eq!(status, 200, "{l}");
    let item = l["verifications"]
        .as_array()
        .expect("verifications")
        .iter()
        .find(|v| v["id"] == vid.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(item["case_id"], case.as_str());
    assert_eq!(item["case_ref"], case.as_str());

    // One entry per access: opened, six moves tried (one refused by the stage machine after the
    // decision is not a change: no entry), reads.
    let log = s.log_of_case(&case).await?;
    let count = |action: &str, effect: &str| {
        log.iter()
            .filter(|(a, e, _, _)| a == action && e == effect)
            .count()
    };
    assert_eq!(count("case_opened", "allow"), 1, "{log:?}");
    assert_eq!(count("case_moved", "allow"), 5, "{log:?}");
    assert_eq!(count("case_read", "allow"), 2, "{log:?}");
    Ok((case, h))
}

#[tokio::test]
async fn an_emergency_case_runs_from_the_hotline_to_closure() -> anyhow::Result<()> {
    let s = setup("").await?;
    let (case, _) = emergency_case_to_closure(&s).await?;
    // Another township's caseworker reads nothing, moves nothing, lists nothing; each refusal
    // of a read or move is one denied entry.
    let (status, b) = s
        .get_json("caseworker-other", &format!("/v1/cases/{case}"))
        .await?;
    assert_eq!(status, 403, "{b}");
    let (status, b) = s
        .move_case("caseworker-other", &case, "close", &json!({}))
        .await?;
    assert_eq!(status, 403, "{b}");
    let (status, l) = s.get_json("caseworker-other", "/v1/cases").await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(l["cases"], json!([]), "{l}");
    let denied: Vec<_> = s
        .log_of_case(&case)
        .await?
        .into_iter()
        .filter(|(_, e, o, _)| e == "deny" && o == "denied")
        .map(|(a, ..)| a)
        .collect();
    assert_eq!(denied, ["case_read", "case_moved"], "{denied:?}");
    // The county officer sees the county's cases; the township caseworker their own.
    for who in ["county-officer", "caseworker"] {
        let (status, l) = s
            .get_json(who, "/v1/cases?state=closed&tier=emergency")
            .await?;
        assert_eq!(status, 200, "{l}");
        assert_eq!(l["cases"][0]["id"], case.as_str(), "{who}: {l}");
        assert!(
            l["cases"][0].get("applicant").is_none(),
            "no personal data in lists"
        );
    }
    // Looked up by the applicant's resident ID (in the body, by keyed pseudonym): found by the
    // township of the case, not by another; each look-up one `case_searched` entry.
    let h0 = households(&s.deps, XUZHUANG)[0].clone();
    let rid =
        filing(&h0, "hotline_12345", "emergency", XUZHUANG)["applicant"]["resident_id"].clone();
    let (status, l) = s
        .post(
            "caseworker",
            "/v1/cases/search",
            &json!({ "resident_id": rid }),
        )
        .await?;
    assert_eq!(status, 200, "{l}");
    assert!(
        l["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .any(|c| c["id"] == case.as_str()),
        "{l}"
    );
    let (status, l) = s
        .post(
            "caseworker-other",
            "/v1/cases/search",
            &json!({ "resident_id": rid }),
        )
        .await?;
    assert_eq!((status, l["cases"].clone()), (200, json!([])), "{l}");
    let (status, _) = s
        .post(
            "auditor",
            "/v1/cases/search",
            &json!({ "resident_id": rid }),
        )
        .await?;
    assert_eq!(status, 403);
    let (status, body) = s
        .post("auditor", "/v1/log/search", &json!({ "resident_id": rid }))
        .await?;
    assert_eq!(status, 200, "{body}");
    let searched: Vec<&str> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|f| f["entry"]["action"] == "case_searched")
        .map(|f| {
            f["entry"]["decision"]["effect"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(searched, ["allow", "allow", "deny"], "{body}");
    // A verification names only an existing case that its caller may work on.
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let mut v = verification(&h, "temporary_assistance", "LINK-1", "emergency", None);
    v["case_id"] = json!("0190f5a0-0000-7000-8000-000000000000");
    let (status, b) = s.post("caseworker", "/v1/verifications", &v).await?;
    assert_eq!(
        (status, b["error"]["code"].clone()),
        (422, json!("case_not_found")),
        "{b}"
    );
    v["case_id"] = json!(case);
    let (status, b) = s.post("caseworker-other", "/v1/verifications", &v).await?;
    assert_eq!(status, 403, "{b}");
    let refused = s
        .log_of_case("LINK-1")
        .await?
        .into_iter()
        .filter(|(a, e, ..)| a == "verification_requested" && e == "deny")
        .count();
    assert_eq!(refused, 1);
    // Auditors, departments and admins get no case.
    for who in ["auditor", "admin", "dept-labor"] {
        let (status, b) = s.get_json(who, &format!("/v1/cases/{case}")).await?;
        assert_eq!(status, 403, "{who}: {b}");
    }
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_wrong_township_transfers_the_case_and_the_right_one_accepts_it() -> anyhow::Result<()> {
    let s = setup("").await?;
    let case = s.prepared_case("urgent", &[]).await?;
    // 李营 cannot accept a case that is with 许庄.
    let (status, b) = s
        .move_case("caseworker-other", &case, "accept", &json!({}))
        .await?;
    assert_eq!(status, 403, "{b}");
    // A transfer needs its reason and another township.
    let (status, b) = s
        .move_case(
            "caseworker",
            &case,
            "transfer",
            &json!({ "to_township": LIYING }),
        )
        .await?;
    assert_eq!(
        (status, b["error"]["field"].clone()),
        (400, json!("reason")),
        "{b}"
    );
    let (status, b) = s
        .move_case(
            "caseworker",
            &case,
            "transfer",
            &json!({ "to_township": XUZHUANG, "reason": "x" }),
        )
        .await?;
    assert_eq!(
        (status, b["error"]["field"].clone()),
        (400, json!("to_township")),
        "{b}"
    );
    // Nor out of the hub's region, where no one could accept it.
    let (status, b) = s
        .move_case(
            "caseworker",
            &case,
            "transfer",
            &json!({ "to_township": "110101001", "reason": "x" }),
        )
        .await?;
    assert_eq!(
        (status, b["error"]["field"].clone()),
        (400, json!("to_township")),
        "{b}"
    );
    let (status, b) = s
        .move_case("caseworker", &case, "transfer", &move_body("transfer"))
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (b["state"].clone(), b["township"].clone()),
        (json!("received"), json!(LIYING))
    );
    // Now it is 李营's: 许庄 reads and moves nothing more, 李营 accepts.
    let (status, _) = s
        .get_json("caseworker", &format!("/v1/cases/{case}"))
        .await?;
    assert_eq!(status, 403);
    let (status, b) = s
        .move_case(
            "caseworker-other",
            &case,
            "accept",
            &json!({ "expected_version": 1 }),
        )
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["error"]["code"], "version_mismatch");
    let (status, b) = s
        .move_case(
            "caseworker-other",
            &case,
            "accept",
            &json!({ "expected_version": 2 }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    let (status, c) = s
        .get_json("caseworker-other", &format!("/v1/cases/{case}"))
        .await?;
    assert_eq!(status, 200, "{c}");
    let transfer = &c["events"][1];
    assert_eq!(transfer["action"], "transfer");
    assert_eq!(transfer["township"], LIYING);
    assert_eq!(transfer["details"]["reason"], "户籍在李营街道，分办至李营");
    assert!(
        transfer["actor"]
            .as_str()
            .is_some_and(|a| a.contains("/370811002/"))
    );
    // 急难 and 紧急 alike: first help before the investigation.
    let (status, b) = s
        .move_case(
            "caseworker-other",
            &case,
            "investigation",
            &move_body("investigation"),
        )
        .await?;
    assert_eq!(
        (status, b["allowed"].clone()),
        (409, json!(["transfer", "first_help"]))
    );
    // Handed to the county, the township no longer decides; the county does.
    let normal = s
        .prepared_case("normal", &["accept", "investigation"])
        .await?;
    let (status, b) = s
        .move_case(
            "caseworker",
            &normal,
            "hand-to-county",
            &move_body("hand-to-county"),
        )
        .await?;
    assert_eq!(
        (status, b["state"].clone()),
        (200, json!("with_county")),
        "{b}"
    );
    let (status, b) = s
        .move_case("caseworker", &normal, "decision", &move_body("decision"))
        .await?;
    assert_eq!(status, 403, "{b}");
    let refusal = json!({ "decision": "refused" });
    let (status, b) = s
        .move_case("county-officer", &normal, "decision", &refusal)
        .await?;
    assert_eq!(
        (status, b["error"]["field"].clone()),
        (400, json!("reason_for_applicant"))
    );
    let refusal =
        json!({ "decision": "refused", "reason_for_applicant": "家庭人均收入高于当地标准" });
    let (status, b) = s
        .move_case("county-officer", &normal, "decision", &refusal)
        .await?;
    assert_eq!(
        (status, b["outcome"].clone()),
        (200, json!("refused")),
        "{b}"
    );
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_filing_one_case() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = households(&s.deps, XUZHUANG)[1].clone();
    let body = filing(&h, "hotline_12345", "urgent", XUZHUANG);
    let send = |body: Value| {
        let c = s.env.http("intake");
        let url = s.hub.url("/v1/cases");
        async move {
            let r = c?
                .post(url)
                .header("idempotency-key", "hotline-call-20261130-0001")
                .json(&body)
                .send()
                .await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.json::<Value>().await?))
        }
    };
    let (first, a) = send(body.clone()).await?;
    assert_eq!(first, 201, "{a}");
    let (again, b) = send(body.clone()).await?;
    assert_eq!(again, 200, "{b}");
    assert_eq!(a["id"], b["id"]);
    let mut other = body.clone();
    other["tier"] = json!("normal");
    let (status, c) = send(other).await?;
    assert_eq!(status, 422, "{c}");
    assert_eq!(c["error"]["code"], "idempotency_key_reused");
    let (_, l) = s.get_json("intake", "/v1/cases").await?;
    assert_eq!(l["cases"].as_array().map(Vec::len), Some(1), "{l}");
    // Intake files only through its own channel, never moves a case, runs no verification.
    let (status, b) = s
        .post(
            "intake",
            "/v1/cases",
            &filing(&h, "qr_help", "urgent", XUZHUANG),
        )
        .await?;
    assert_eq!(status, 403, "{b}");
    let (status, b) = s
        .move_case(
            "intake",
            a["id"].as_str().expect("id"),
            "accept",
            &json!({}),
        )
        .await?;
    assert_eq!(status, 403, "{b}");
    // Bad input is a 400 naming the field, never quoting it.
    let mut bad = body.clone();
    bad["applicant"]["resident_id"] = json!("370811199001011230");
    let (status, b) = s.post("intake", "/v1/cases", &bad).await?;
    assert_eq!(
        (status, b["error"]["field"].clone()),
        (400, json!("applicant.resident_id"))
    );
    assert!(!b.to_string().contains("370811199001011230"), "{b}");
    let mut bad = body.clone();
    bad["village"] = json!("370811005001");
    let (status, b) = s.post("intake", "/v1/cases", &bad).await?;
    assert_eq!(
        (status, b["error"]["field"].clone()),
        (400, json!("village"))
    );
    s.stop().await;
    Ok(())
}

/// Every byte of the SQLite files under `dir` (database, WAL).
fn sqlite_bytes(dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("hub.db") {
            std::fs::File::open(&p)?.read_to_end(&mut all)?;
        }
    }
    Ok(all)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The personal values of a filing that must never be found in clear.
fn secrets(body: &Value) -> Vec<String> {
    vec![
        body["applicant"]["resident_id"]
            .as_str()
            .expect("id")
            .to_owned(),
        body["applicant"]["phone"]
            .as_str()
            .expect("phone")
            .to_owned(),
        body["description"]
            .as_str()
            .expect("description")
            .to_owned(),
    ]
}

#[tokio::test]
async fn the_resident_id_is_nowhere_in_clear_on_sqlite_nor_in_the_hub_log() -> anyhow::Result<()> {
    // A real hub process at debug level, its log captured; no departments needed.
    let env = TestEnv::new()?;
    let log_path = env.path().join("hub.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["serve", "--config"])
        .arg(env.config_path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()?;
    let start = Instant::now();
    let addr = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let listening = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["fields"]["message"] == "hub listening (mTLS)");
        if let Some(l) = listening {
            break l["fields"]["addr"]
                .as_str()
                .unwrap_or_default()
                .parse::<std::net::SocketAddr>()?;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "hub did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = |p: &str| format!("https://localhost:{}{p}", addr.port());
    let rid = "370811201001011236";
    assert!(schemas::ResidentId::parse(rid).is_ok());
    let body = json!({
        "channel": "hotline_12345",
        "tier": "emergency",
        "applicant": { "resident_id": rid, "name": "王某某", "phone": "13905370002" },
        "township": XUZHUANG,
        "village": "370811002001",
        "hardship": "accident",
        "description": "车祸受伤，急需医疗费用",
    });
    let r = env
        .http("intake")?
        .post(url("/v1/cases"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let case = r.json::<Value>().await?["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let cw = env.http("caseworker")?;
    for (step, b) in [
        ("accept", json!({ "note": "已联系" })),
        ("first-help", move_body("first-help")),
    ] {
        let r = cw
            .post(url(&format!("/v1/cases/{case}/{step}")))
            .json(&b)
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 200, "{step}");
    }
    let r = cw.get(url(&format!("/v1/cases/{case}"))).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await?["applicant"]["resident_id"], rid);
    let r = env
        .http("caseworker-other")?
        .get(url(&format!("/v1/cases/{case}")))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // A bad resident ID is refused without being echoed or logged.
    let mut bad = body.clone();
    bad["applicant"]["resident_id"] = json!("370811201001011230");
    let r = env
        .http("intake")?
        .post(url("/v1/cases"))
        .json(&bad)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);

    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let log = std::fs::read(&log_path)?;
    assert!(contains(&log, "case opened"), "the log is captured");
    let db = sqlite_bytes(env.path())?;
    assert!(
        contains(&db, &case),
        "the scanned files hold the case's rows"
    );
    for secret in secrets(&body)
        .iter()
        .map(String::as_str)
        .chain(["370811201001011230", "王某某"])
    {
        assert!(
            !contains(&log, secret),
            "the hub's log holds a personal value"
        );
        assert!(
            !contains(&db, secret),
            "the database holds a personal value in clear"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_resident_id_is_nowhere_in_clear_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    let (case, h) = emergency_case_to_closure(&s).await?;
    let body = filing(&h, "hotline_12345", "emergency", XUZHUANG);
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg.url).await?;
        let mut dump = String::new();
        for table in ["cases", "case_events", "case_idempotency", "verifications"] {
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT row_to_json(t)::text FROM {table} t"
            )))
            .fetch_all(&mut conn)
            .await?;
            for (r,) in rows {
                dump.push_str(&r);
            }
        }
        conn.close().await?;
        assert!(dump.contains(&case), "the dump holds the case");
        for secret in secrets(&body) {
            assert!(
                !dump.contains(&secret),
                "PostgreSQL holds a personal value in clear"
            );
        }
        for id in ids(&h) {
            assert!(!dump.contains(&id));
        }
    }
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}

#[tokio::test]
async fn a_hub_without_a_data_key_opens_no_case() -> anyhow::Result<()> {
    // Without `[keys] data_key` the hub runs, but cases cannot be opened (503, nothing stored).
    let env = TestEnv::new()?;
    let config = env.config(|t| t.replace("data_key = \"keys/data.key\"\n", ""))?;
    let hub = TestHub::start(config).await?;
    let h = schemas::Household {
        registered_division: schemas::DivisionCode::parse(XUZHUANG)?,
        members: vec![schemas::Member {
            resident_id: schemas::ResidentId::parse("370811201001011236")?,
            name: "王某某".into(),
            relation: schemas::Relation::Applicant,
        }],
    };
    let r = env
        .http("intake")?
        .post(hub.url("/v1/cases"))
        .json(&filing(&h, "hotline_12345", "normal", XUZHUANG))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 503);
    let b: Value = r.json().await?;
    assert_eq!(b["error"]["code"], "data_key_unconfigured");
    hub.stop().await;
    Ok(())
}

/// The clock of `kind` on a case read with `GET /v1/cases/{id}`.
fn clock<'a>(case: &'a Value, kind: &str) -> &'a Value {
    case["clocks"]
        .as_array()
        .expect("clocks")
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} clock in {case}"))
}

/// 办理时限 (issue 11 item 3): an emergency case helped in time shows `first_help` met and the
/// working-day clocks running; one accepted but not helped, whose filing is moved back three
/// hours in the hub's database, shows `first_help` overdue and is the one `?overdue=true` lists.
#[tokio::test]
async fn clocks_show_first_help_met_or_overdue_and_the_list_filters_overdue() -> anyhow::Result<()>
{
    use sqlx::Connection as _;
    let s = setup("").await?;
    let helped = s
        .prepared_case("emergency", &["accept", "first-help"])
        .await?;
    let (status, c) = s
        .get_json("caseworker", &format!("/v1/cases/{helped}"))
        .await?;
    assert_eq!(status, 200, "{c}");
    let kinds: Vec<&str> = c["clocks"]
        .as_array()
        .expect("clocks")
        .iter()
        .map(|c| c["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["first_help", "materials", "initial_opinion", "decision"]
    );
    let fh = clock(&c, "first_help");
    assert_eq!(fh["status"], "met", "{c}");
    assert!(fh["met_at"].as_str().expect("met_at").ends_with("+08:00"));
    for kind in ["materials", "initial_opinion", "decision"] {
        let k = clock(&c, kind);
        assert_eq!(k["status"], "running", "{kind}: {c}");
        assert!(k["met_at"].is_null(), "{kind}: {c}");
        let due = k["due_at"].as_str().expect("due_at");
        assert!(due.ends_with("T23:59:59+08:00"), "{kind}: {due}");
    }

    let late = s.prepared_case("emergency", &["accept"]).await?;
    let (_, c) = s
        .get_json("caseworker", &format!("/v1/cases/{late}"))
        .await?;
    assert_eq!(clock(&c, "first_help")["status"], "running", "{c}");

    // Three hours pass without first help: the filing, its events and the stored nearest
    // deadline (`next_due_ms`, which `?overdue=` filters on in SQL) are moved back.
    let db = format!("sqlite://{}", s.env.path().join("hub.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await?;
    let three_hours_ms: i64 = 3 * 3600 * 1000;
    sqlx::query("UPDATE cases SET created_ms = created_ms - $1, next_due_ms = next_due_ms - $1 WHERE id = $2")
        .bind(three_hours_ms)
        .bind(&late)
        .execute(&mut conn)
        .await?;
    sqlx::query("UPDATE case_events SET at_ms = at_ms - $1 WHERE case_id = $2")
        .bind(three_hours_ms)
        .bind(&late)
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    let (status, c) = s
        .get_json("caseworker", &format!("/v1/cases/{late}"))
        .await?;
    assert_eq!(status, 200, "{c}");
    let fh = clock(&c, "first_help");
    assert_eq!(fh["status"], "overdue", "{c}");
    assert!(fh["met_at"].is_null());
    assert_eq!(clock(&c, "materials")["status"], "running", "{c}");

    let ids = |l: &Value| -> Vec<String> {
        l["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (status, l) = s.get_json("caseworker", "/v1/cases?overdue=true").await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(ids(&l), vec![late.clone()]);
    assert_eq!(l["cases"][0]["overdue"], true);
    assert_eq!(
        l["cases"][0]["next_due_at"],
        clock(&c, "first_help")["due_at"],
        "the nearest open clock is the overdue first help"
    );
    let (status, l) = s.get_json("caseworker", "/v1/cases?overdue=false").await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(ids(&l), vec![helped.clone()]);
    assert_eq!(l["cases"][0]["overdue"], false);
    assert!(l["cases"][0]["next_due_at"].is_string(), "{l}");
    let (_, l) = s.get_json("caseworker", "/v1/cases").await?;
    assert_eq!(ids(&l).len(), 2, "{l}");
    let (status, b) = s.get_json("caseworker", "/v1/cases?overdue=maybe").await?;
    assert_eq!(status, 400, "{b}");

    // Orders and pages: by deadline the overdue case comes first although it was filed last;
    // the longest waiting first is filing order. One case a page, resumed by the cursor.
    let pages = |order: &'static str| {
        let s = &s;
        async move {
            let (mut seen, mut cursor) = (Vec::new(), None::<String>);
            loop {
                let url = match &cursor {
                    Some(c) => format!("/v1/cases?order={order}&limit=1&cursor={c}"),
                    None => format!("/v1/cases?order={order}&limit=1"),
                };
                let (status, l) = s.get_json("caseworker", &url).await?;
                assert_eq!(status, 200, "{url}: {l}");
                seen.extend(ids(&l));
                match l["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
                assert!(seen.len() < 10, "the pages of {order} never end: {seen:?}");
            }
            anyhow::Ok((seen, cursor))
        }
    };
    let (due, _) = pages("due").await?;
    assert_eq!(due, vec![late.clone(), helped.clone()], "order=due");
    let (oldest, _) = pages("oldest").await?;
    assert_eq!(oldest, vec![helped.clone(), late.clone()], "order=oldest");
    let (newest, _) = pages("newest").await?;
    assert_eq!(newest, vec![late.clone(), helped.clone()], "order=newest");
    // A cursor of one order is refused in another, by field.
    let (_, l) = s.get_json("caseworker", "/v1/cases?limit=1").await?;
    let newest_cursor = l["next_cursor"].as_str().expect("a next page").to_owned();
    let (status, b) = s
        .get_json(
            "caseworker",
            &format!("/v1/cases?order=due&cursor={newest_cursor}"),
        )
        .await?;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["field"], "cursor", "{b}");
    let (status, b) = s.get_json("caseworker", "/v1/cases?order=sideways").await?;
    assert_eq!(status, 400, "{b}");
    Ok(())
}
