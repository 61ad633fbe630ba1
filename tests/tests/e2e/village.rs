//! 村级 (issue 12 items 4 and 9): a village assistant (村级救助协理员, the demo's
//! `village-assistant`, village 370811002001 of 许庄街道) confined to its village, over mTLS, on
//! SQLite and PostgreSQL. It files a village report → a warning in 许庄's queue with the village
//! recorded, which the township caseworker and the county officer see and the township converts
//! to a case; it sees its village's warnings and reports only; it is refused (403, logged with the
//! Cedar policy that decided) for a household registered in another village, for a village of
//! another township, for moving a warning; caseworkers cannot file; a bad village code is 400
//! naming the field.

use hub_tests::PgTestDb;
use serde_json::{Value, json};

use crate::events::resident;
use crate::verification::{Setup, XUZHUANG, setup_with};
use crate::warnings::CIVIL;

const ASSISTANT: &str = "village-assistant";
/// 航运新村居委会: the assistant's village.
const VILLAGE: &str = "370811002001";
/// 颂运水庭社区: another village of 许庄.
const OTHER_VILLAGE: &str = "370811002003";
/// 汇翠园社区: a village of 李营 (370811005, another township).
const LIYING_VILLAGE: &str = "370811005001";

fn report(resident_id: &str, village: &str, observation: &str) -> Value {
    json!({
        "resident_id": resident_id,
        "village": village,
        "observation": observation,
        "note": "入户走访发现户主确诊重病，家中无其他劳动力",
    })
}

/// POST as `who` with request id `rid`: status and body.
async fn post_rid(
    s: &Setup,
    who: &str,
    path: &str,
    body: &Value,
    rid: &str,
) -> anyhow::Result<(u16, Value)> {
    let r = s
        .env
        .http(who)?
        .post(s.hub.url(path))
        .header("x-request-id", rid)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// The Cedar policies named by the `deny` entry of request `rid` (read by the auditor).
/// The search answers the entries under the served checkpoint, which may not cover an entry made
/// durable a moment ago: ask again (bounded) until it does. Only the last minute is searched: the
/// search answers the oldest matches first (at most 1,000), and every search is itself an entry,
/// so an unfiltered search stops showing new entries once the log passes 1,000.
async fn denied_by(s: &Setup, rid: &str) -> anyhow::Result<Vec<String>> {
    let start = std::time::Instant::now();
    let since = (time::OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)?;
    let denies = loop {
        let (status, body) = s
            .post("auditor", "/v1/log/search", &json!({ "from": since }))
            .await?;
        anyhow::ensure!(status == 200, "search: {status} {body}");
        let denies: Vec<Value> = body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|f| f["entry"].clone())
            .filter(|e| e["request_id"] == rid && e["decision"]["effect"] == "deny")
            .collect();
        if !denies.is_empty() || start.elapsed() > std::time::Duration::from_secs(15) {
            break denies;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    anyhow::ensure!(denies.len() == 1, "deny entries of {rid}: {denies:?}");
    Ok(denies[0]["decision"]["policy_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect())
}

/// Put `resident_id` on the monitoring list in 许庄, village `village`.
async fn monitor_in(s: &Setup, resident_id: &str, village: &str) -> anyhow::Result<()> {
    let (status, b) = s
        .post(
            CIVIL,
            "/v1/monitoring/households",
            &json!({
                "category": "dibao_edge",
                "resident_id": resident_id,
                "township": XUZHUANG,
                "village": village,
                "since": "2026-03-01",
                "reason": "低保边缘户",
            }),
        )
        .await?;
    anyhow::ensure!(status == 201, "monitoring: {status} {b}");
    Ok(())
}

fn ids_of(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|w| w["id"].as_str().map(str::to_owned))
        .collect()
}

async fn confined_to_its_village(s: &Setup) -> anyhow::Result<()> {
    // 1. The assistant files a report about a household of its village: a warning lands in the
    //    township's queue with the village recorded.
    let r1 = resident(910_001);
    let (status, filed) = s
        .post(
            ASSISTANT,
            "/v1/village-reports",
            &report(&r1, VILLAGE, "serious_illness"),
        )
        .await?;
    assert_eq!(status, 201, "{filed}");
    assert_eq!(filed["report"]["village"], VILLAGE, "{filed}");
    assert_eq!(filed["report"]["township"], XUZHUANG, "{filed}");
    assert_eq!(filed["report"]["village_name"], "航运新村居委会", "{filed}");
    assert_eq!(filed["report"]["observation"], "serious_illness");
    let report_id = filed["report"]["id"].as_str().expect("id").to_owned();
    let w = &filed["warnings"][0];
    assert_eq!(w["rule"], "village_serious_illness", "{filed}");
    assert_eq!(w["tier"], "urgent", "{filed}");
    let own_warning = w["id"].as_str().expect("warning id").to_owned();
    assert!(
        !filed.to_string().contains(&r1),
        "the answer carries no resident ID"
    );

    // The township caseworker sees it in its queue, with the village; so does the county.
    for who in ["caseworker", "county-officer"] {
        let (status, q) = s
            .get(who, &format!("/v1/warnings?village={VILLAGE}"))
            .await?;
        assert_eq!(status, 200, "{q}");
        let found = q["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .find(|x| x["id"] == own_warning.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{who} sees the warning: {q}"));
        assert_eq!(found["township"], XUZHUANG);
        assert_eq!(found["village"], VILLAGE);
        let (status, reports) = s.get(who, "/v1/village-reports").await?;
        assert_eq!(status, 200, "{reports}");
        assert!(
            ids_of(&reports, "reports").contains(&report_id),
            "{reports}"
        );
        assert!(!reports.to_string().contains(&r1));
    }
    // Another township's caseworker sees neither.
    let (_, q) = s.get("caseworker-other", "/v1/warnings").await?;
    assert!(!ids_of(&q, "warnings").contains(&own_warning), "{q}");
    let (status, reports) = s.get("caseworker-other", "/v1/village-reports").await?;
    assert_eq!(status, 200, "{reports}");
    assert!(!ids_of(&reports, "reports").contains(&report_id));

    // 2. A household registered in another village of 许庄, with a warning of its own.
    let r2 = resident(910_002);
    monitor_in(s, &r2, OTHER_VILLAGE).await?;
    crate::warnings::push(s, "health.hospitalisation", &r2, None).await?;
    let (_, q) = s
        .get(
            "caseworker",
            &format!("/v1/warnings?village={OTHER_VILLAGE}"),
        )
        .await?;
    let other_warning = ids_of(&q, "warnings")
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("a warning in the other village: {q}"));

    // The assistant sees its village's warnings and reports only.
    let (status, q) = s.get(ASSISTANT, "/v1/warnings").await?;
    assert_eq!(status, 200, "{q}");
    let seen = ids_of(&q, "warnings");
    assert!(seen.contains(&own_warning), "{q}");
    assert!(!seen.contains(&other_warning), "{q}");
    assert!(
        q["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .all(|w| w["village"] == VILLAGE),
        "{q}"
    );
    let (_, q) = s
        .get(ASSISTANT, &format!("/v1/warnings?village={OTHER_VILLAGE}"))
        .await?;
    assert!(ids_of(&q, "warnings").is_empty(), "{q}");
    let (status, _) = s
        .get(ASSISTANT, &format!("/v1/warnings/{own_warning}"))
        .await?;
    assert_eq!(status, 200);
    let (status, refused) = s
        .get(ASSISTANT, &format!("/v1/warnings/{other_warning}"))
        .await?;
    assert_eq!(status, 403, "{refused}");
    let (status, reports) = s.get(ASSISTANT, "/v1/village-reports").await?;
    assert_eq!(status, 200, "{reports}");
    assert_eq!(ids_of(&reports, "reports"), vec![report_id.clone()]);

    // 3. Refused, logged, Cedar's policy named: a household registered in another village (its
    //    registration wins over the village the report names) …
    let rid = format!("village-other-{}", uuid::Uuid::new_v4().simple());
    let (status, b) = post_rid(
        s,
        ASSISTANT,
        "/v1/village-reports",
        &report(&r2, VILLAGE, "no_income"),
        &rid,
    )
    .await?;
    assert_eq!(status, 403, "{b}");
    assert_eq!(b["error"]["code"], "forbidden");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not in your village"),
        "{b}"
    );
    assert_eq!(
        denied_by(s, &rid).await?,
        vec!["village-assistant-own-village"]
    );
    // … a village of another township …
    let rid = format!("village-liying-{}", uuid::Uuid::new_v4().simple());
    let (status, b) = post_rid(
        s,
        ASSISTANT,
        "/v1/village-reports",
        &report(&resident(910_003), LIYING_VILLAGE, "no_income"),
        &rid,
    )
    .await?;
    assert_eq!(status, 403, "{b}");
    assert_eq!(
        denied_by(s, &rid).await?,
        vec!["village-assistant-own-village"]
    );
    // … and moving a warning, even its own village's: handling is the township's.
    let rid = format!("village-ack-{}", uuid::Uuid::new_v4().simple());
    let (status, b) = post_rid(
        s,
        ASSISTANT,
        &format!("/v1/warnings/{own_warning}/acknowledge"),
        &json!({}),
        &rid,
    )
    .await?;
    assert_eq!(status, 403, "{b}");
    assert_eq!(
        denied_by(s, &rid).await?,
        vec!["village-assistant-village-work-only"]
    );
    // A caseworker does not file village reports (nothing permits it), logged too.
    let rid = format!("village-cw-{}", uuid::Uuid::new_v4().simple());
    let (status, b) = post_rid(
        s,
        "caseworker",
        "/v1/village-reports",
        &report(&r1, VILLAGE, "other"),
        &rid,
    )
    .await?;
    assert_eq!(status, 403, "{b}");
    assert!(denied_by(s, &rid).await?.is_empty());

    // 4. Bad input: 400 naming the field, nothing stored.
    for (body, field) in [
        (report(&r1, "37081100200", "other"), "village"),
        (report(&r1, "370811002999", "other"), "village"),
        (report(&r1, XUZHUANG, "other"), "village"),
        (report(&r1, "110101001001", "other"), "village"),
        (report(&r1, VILLAGE, "bored"), "observation"),
        (report("12345", VILLAGE, "other"), "resident_id"),
        (
            json!({"resident_id": r1, "village": VILLAGE, "observation": "other", "note": ""}),
            "note",
        ),
    ] {
        let (status, b) = s.post(ASSISTANT, "/v1/village-reports", &body).await?;
        assert_eq!(status, 400, "{body}: {b}");
        assert_eq!(b["error"]["field"], field, "{body}: {b}");
    }
    let (status, b) = s.get(ASSISTANT, "/v1/village-reports?village=1234").await?;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["field"], "village");
    let (_, reports) = s.get(ASSISTANT, "/v1/village-reports").await?;
    assert_eq!(ids_of(&reports, "reports").len(), 1, "{reports}");

    // 5. The township converts the report's warning to a case: the resident ID comes from the
    //    sealed report, the village from the warning.
    let (status, b) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{own_warning}/convert"),
            &json!({ "name": "王秀英", "phone": "13800000001", "description": "村级报告：户主重病" }),
        )
        .await?;
    assert_eq!(status, 201, "{b}");
    let case_id = b["case_id"].as_str().expect("case id");
    let (status, case) = s.get("caseworker", &format!("/v1/cases/{case_id}")).await?;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["village"], VILLAGE, "{case}");
    assert_eq!(case["channel"], "warning", "{case}");
    assert_eq!(case["applicant"]["resident_id"], r1.as_str(), "{case}");
    Ok(())
}

#[tokio::test]
async fn a_village_assistant_is_confined_to_its_village_on_sqlite() -> anyhow::Result<()> {
    let s = setup_with(|t| t).await?;
    confined_to_its_village(&s).await?;
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_village_assistant_is_confined_to_its_village_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    confined_to_its_village(&s).await?;
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}
