//! 转办单 (issue 11 item 4): referral slips over mTLS on SQLite and PostgreSQL. A normal case
//! gets slips to health, education and another township; each receiving party lists, reads
//! (whom to help), accepts and answers its own; the case view shows them with their feedback;
//! the case closes only once every slip has feedback (409 `slips_open` before). A wrong
//! department and another township's caseworker are refused and logged; a slip past its due
//! time (its `due_ms` moved back in the real database) is overdue in the list and on the case.

use hub_tests::PgTestDb;
use serde_json::{Value, json};

use crate::cases::LIYING;
use crate::verification::{Setup, setup, setup_with};

fn slip_ids(list: &Value) -> Vec<String> {
    list["slips"]
        .as_array()
        .expect("slips")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect()
}

/// Today's date in Beijing, plus `days`.
fn beijing_date(days: i64) -> String {
    let now = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+8));
    (now.date() + time::Duration::days(days)).to_string()
}

impl Setup {
    async fn issue(&self, who: &str, case: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.post(who, &format!("/v1/cases/{case}/slips"), body)
            .await
    }
}

/// Move a slip's due time an hour into the past, in the hub's own database.
async fn make_overdue(s: &Setup, pg_url: Option<&str>, slip: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let past_ms = (time::OffsetDateTime::now_utc().unix_timestamp() - 3600) * 1000;
    let sql = "UPDATE slips SET due_ms = $1 WHERE id = $2";
    let n = match pg_url {
        Some(url) => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            let n = sqlx::query(sql)
                .bind(past_ms)
                .bind(slip)
                .execute(&mut c)
                .await?
                .rows_affected();
            c.close().await?;
            n
        }
        None => {
            let db = format!("sqlite://{}", s.env.path().join("hub.db").display());
            let mut c = sqlx::SqliteConnection::connect(&db).await?;
            let n = sqlx::query(sql)
                .bind(past_ms)
                .bind(slip)
                .execute(&mut c)
                .await?
                .rows_affected();
            c.close().await?;
            n
        }
    };
    assert_eq!(n, 1);
    Ok(())
}

fn field_error(status: u16, b: &Value, field: &str) {
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["field"], field, "{b}");
    assert!(b["error"]["code"].is_string(), "{b}");
}

/// The closed loop with three slips; `pg_url` names the PostgreSQL database the hub runs on.
async fn three_slips_to_closure(s: &Setup, pg_url: Option<&str>) -> anyhow::Result<()> {
    let case = s
        .prepared_case("normal", &["accept", "investigation"])
        .await?;

    // Bad bodies: 400 naming the field.
    let cases: &[(Value, &str)] = &[
        (json!({ "kind": "fax", "asked": "x" }), "kind"),
        (
            json!({ "kind": "medical_assistance", "asked": " " }),
            "asked",
        ),
        (json!({ "kind": "medical_assistance" }), "asked"),
        (
            json!({ "kind": "township", "asked": "协助核实" }),
            "to_township",
        ),
        (
            json!({ "kind": "housing", "asked": "危房改造", "to_township": LIYING }),
            "to_township",
        ),
        (
            json!({ "kind": "township", "asked": "协助核实", "to_township": crate::verification::XUZHUANG }),
            "to_township",
        ),
        (
            json!({ "kind": "housing", "asked": "危房改造", "due_on": beijing_date(-1) }),
            "due_on",
        ),
        (
            json!({ "kind": "housing", "asked": "危房改造", "due_on": beijing_date(200) }),
            "due_on",
        ),
        (
            json!({ "kind": "housing", "asked": "危房改造", "due_on": "next week" }),
            "due_on",
        ),
    ];
    for (body, field) in cases {
        let (status, b) = s.issue("caseworker", &case, body).await?;
        field_error(status, &b, field);
    }

    let (status, b) = s
        .issue(
            "caseworker",
            &case,
            &json!({ "kind": "housing", "asked": "危房改造", "urgent": true }),
        )
        .await?;
    assert_eq!(
        (status, &b["error"]["code"]),
        (400, &json!("validation_failed")),
        "{b}"
    );

    // Another township's caseworker may not issue slips from this case.
    let (status, b) = s
        .issue(
            "caseworker-other",
            &case,
            &json!({ "kind": "medical_assistance", "asked": "请落实医疗救助" }),
        )
        .await?;
    assert_eq!(status, 403, "{b}");

    let (status, health) = s
        .issue(
            "caseworker",
            &case,
            &json!({ "kind": "medical_assistance", "asked": "户主住院，请落实医疗救助和一站式结算" }),
        )
        .await?;
    assert_eq!(status, 201, "{health}");
    assert_eq!(health["to_department"], "health");
    assert_eq!(health["state"], "issued");
    assert_eq!(health["overdue"], false);
    assert_eq!(health["allowed"], json!(["accept", "answer"]));
    let health = health["id"].as_str().expect("id").to_owned();

    let due_on = beijing_date(3);
    let (status, education) = s
        .issue(
            "caseworker",
            &case,
            &json!({ "kind": "education_aid", "asked": "子女在读高中，请落实教育资助", "due_on": due_on }),
        )
        .await?;
    assert_eq!(status, 201, "{education}");
    assert_eq!(education["to_department"], "education");
    assert!(
        education["due_at"]
            .as_str()
            .is_some_and(|d| d == format!("{due_on}T23:59:59+08:00")),
        "{education}"
    );
    let education = education["id"].as_str().expect("id").to_owned();

    let (status, township) = s
        .issue(
            "caseworker",
            &case,
            &json!({ "kind": "township", "asked": "申请人长期居住在李营，请协助入户核实", "to_township": LIYING }),
        )
        .await?;
    assert_eq!(status, 201, "{township}");
    assert_eq!(township["to_township"], LIYING);
    let township = township["id"].as_str().expect("id").to_owned();

    // Each party lists only what is addressed to it.
    let (status, l) = s.get_json("dept-health", "/v1/slips").await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(slip_ids(&l), [health.as_str()]);
    let (status, l) = s.get_json("dept-education", "/v1/slips").await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(slip_ids(&l), [education.as_str()]);
    let (status, l) = s.get_json("dept-labor", "/v1/slips").await?;
    assert_eq!(status, 200, "{l}");
    assert!(slip_ids(&l).is_empty(), "{l}");
    let (status, l) = s.get_json("caseworker-other", "/v1/slips").await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(slip_ids(&l), [township.as_str()]);
    let (status, l) = s.get_json("caseworker", "/v1/slips").await?;
    assert_eq!(status, 200, "{l}");
    assert!(slip_ids(&l).is_empty(), "nothing is addressed to 许庄: {l}");
    for who in ["auditor", "intake"] {
        let (status, b) = s.get_json(who, "/v1/slips").await?;
        assert_eq!(status, 403, "{who}: {b}");
    }

    // Health reads whom to help.
    let (status, c) = s
        .get_json("caseworker", &format!("/v1/cases/{case}"))
        .await?;
    assert_eq!(status, 200, "{c}");
    let (status, v) = s
        .get_json("dept-health", &format!("/v1/slips/{health}"))
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["applicant"], c["applicant"]);
    assert_eq!(v["asked"], "户主住院，请落实医疗救助和一站式结算");
    assert_eq!(v["case_id"], case.as_str());

    // Labor may neither read nor answer a health slip; auditors read no slip.
    let (status, b) = s
        .get_json("dept-labor", &format!("/v1/slips/{health}"))
        .await?;
    assert_eq!(status, 403, "{b}");
    let (status, b) = s
        .post(
            "dept-labor",
            &format!("/v1/slips/{health}/feedback"),
            &json!({ "result": "done", "text": "已办" }),
        )
        .await?;
    assert_eq!(status, 403, "{b}");
    let (status, b) = s
        .get_json("auditor", &format!("/v1/slips/{health}"))
        .await?;
    assert_eq!(status, 403, "{b}");
    // Another township reads nothing addressed to a department.
    let (status, b) = s
        .get_json("caseworker-other", &format!("/v1/slips/{health}"))
        .await?;
    assert_eq!(status, 403, "{b}");

    // 签收, then not again.
    let (status, b) = s
        .post(
            "dept-health",
            &format!("/v1/slips/{health}/accept"),
            &json!({}),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "accepted");
    assert_eq!(b["allowed"], json!(["answer"]));
    let (status, b) = s
        .post(
            "dept-health",
            &format!("/v1/slips/{health}/accept"),
            &json!({}),
        )
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["error"]["code"], "illegal_transition");
    assert_eq!(
        (b["state"].clone(), b["allowed"].clone()),
        (json!("accepted"), json!(["answer"]))
    );

    // The education slip passes its due time without feedback: overdue in the list and on the
    // case; the health slip is not.
    make_overdue(s, pg_url, &education).await?;
    let (status, l) = s
        .get_json("dept-education", "/v1/slips?overdue=true")
        .await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(slip_ids(&l), [education.as_str()]);
    assert_eq!(l["slips"][0]["overdue"], true);
    let (status, l) = s.get_json("dept-health", "/v1/slips?overdue=true").await?;
    assert_eq!(status, 200, "{l}");
    assert!(slip_ids(&l).is_empty(), "{l}");
    let (status, l) = s
        .get_json("dept-health", "/v1/slips?overdue=false&state=accepted")
        .await?;
    assert_eq!(status, 200, "{l}");
    assert_eq!(slip_ids(&l), [health.as_str()]);
    // A bad query is a clean 400 (the shared `Query` extractor names the query as a whole).
    let (status, b) = s.get_json("dept-health", "/v1/slips?state=done").await?;
    assert_eq!(
        (status, &b["error"]["code"]),
        (400, &json!("validation_failed")),
        "{b}"
    );
    let (_, c) = s
        .get_json("caseworker", &format!("/v1/cases/{case}"))
        .await?;
    let on_case = |c: &Value, id: &str| {
        c["slips"]
            .as_array()
            .expect("slips")
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .expect("slip on the case")
    };
    assert_eq!(c["slips"].as_array().map(Vec::len), Some(3), "{c}");
    assert_eq!(on_case(&c, &education)["overdue"], true);
    assert_eq!(on_case(&c, &health)["overdue"], false);
    assert_eq!(on_case(&c, &health)["state"], "accepted");

    // Decided; but no case closes while a slip has no feedback.
    let (status, b) = s
        .move_case(
            "caseworker",
            &case,
            "decision",
            &crate::cases::move_body("decision"),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    let (status, b) = s
        .move_case("caseworker", &case, "close", &json!({}))
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["error"]["code"], "slips_open");
    let mut open = vec![health.clone(), education.clone(), township.clone()];
    open.sort();
    assert_eq!(b["slips"], json!(open));
    // A decided case gets no new slip.
    let (status, b) = s
        .issue(
            "caseworker",
            &case,
            &json!({ "kind": "housing", "asked": "危房改造" }),
        )
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["error"]["code"], "case_stage");

    // 反馈.
    let (status, b) = s
        .post(
            "dept-health",
            &format!("/v1/slips/{health}/feedback"),
            &json!({ "result": "done", "text": "已纳入医疗救助，一站式结算", "amount_fen": 1_200_000 }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "answered");
    assert_eq!(b["result"], "done");
    // not_possible needs its reason; straight from issued is allowed and implies 签收.
    let (status, b) = s
        .post(
            "dept-education",
            &format!("/v1/slips/{education}/feedback"),
            &json!({ "result": "not_possible", "text": "经核实不符合条件" }),
        )
        .await?;
    field_error(status, &b, "reason");
    let (status, b) = s
        .post(
            "dept-education",
            &format!("/v1/slips/{education}/feedback"),
            &json!({ "result": "partly_done", "text": "" }),
        )
        .await?;
    field_error(status, &b, "text");
    let (status, b) = s
        .post(
            "dept-education",
            &format!("/v1/slips/{education}/feedback"),
            &json!({ "result": "not_possible", "text": "经核实不符合助学金条件", "reason": "家庭不在资助范围" }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "answered");
    assert!(b["accepted_at"].is_string(), "{b}");
    assert_eq!(b["overdue"], false, "answered is not overdue: {b}");
    let (status, b) = s
        .post(
            "caseworker-other",
            &format!("/v1/slips/{township}/feedback"),
            &json!({ "result": "partly_done", "text": "已入户核实，居住情况属实" }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    // Answered is final.
    let (status, b) = s
        .post(
            "dept-health",
            &format!("/v1/slips/{health}/feedback"),
            &json!({ "result": "done", "text": "再次反馈" }),
        )
        .await?;
    assert_eq!(status, 409, "{b}");
    assert_eq!(b["allowed"], json!([]));

    // The case sees every slip with its feedback, then closes.
    let (_, c) = s
        .get_json("caseworker", &format!("/v1/cases/{case}"))
        .await?;
    let h = on_case(&c, &health);
    assert_eq!(h["state"], "answered");
    assert_eq!(h["feedback"]["text"], "已纳入医疗救助，一站式结算");
    assert_eq!(h["feedback"]["amount_fen"], 1_200_000);
    let e = on_case(&c, &education);
    assert_eq!(e["result"], "not_possible");
    assert_eq!(e["feedback"]["reason"], "家庭不在资助范围");
    assert_eq!(e["overdue"], false);
    // The hotline reads the case back without the slips' records.
    let (_, c) = s.get_json("intake", &format!("/v1/cases/{case}")).await?;
    assert!(
        c["slips"]
            .as_array()
            .expect("slips")
            .iter()
            .all(|x| x.get("feedback").is_none() && x.get("asked").is_none()),
        "{c}"
    );
    let (status, b) = s
        .move_case("caseworker", &case, "close", &json!({}))
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["state"], "closed");

    // Every issue, read and move, allowed or refused, is in the log.
    let log = s.log_of_case(&case).await?;
    let count = |action: &str, effect: &str| {
        log.iter()
            .filter(|(a, e, _, _)| a == action && e == effect)
            .count()
    };
    assert_eq!(count("slip_issued", "allow"), 3, "{log:?}");
    assert_eq!(count("slip_issued", "deny"), 1, "{log:?}");
    assert_eq!(count("slip_read", "allow"), 1, "{log:?}");
    assert_eq!(count("slip_read", "deny"), 3, "{log:?}");
    assert_eq!(count("slip_moved", "allow"), 4, "{log:?}");
    assert_eq!(count("slip_moved", "deny"), 1, "{log:?}");
    Ok(())
}

#[tokio::test]
async fn three_slips_from_a_case_to_closure_on_sqlite() -> anyhow::Result<()> {
    let s = setup("").await?;
    three_slips_to_closure(&s, None).await?;
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn three_slips_from_a_case_to_closure_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    three_slips_to_closure(&s, Some(&pg.url)).await?;
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}

/// What a slip seals never sits in clear in the database: the applicant's resident ID, name and
/// phone, what is asked and the feedback.
#[tokio::test]
async fn a_slip_holds_no_personal_value_in_clear_on_sqlite() -> anyhow::Result<()> {
    use sqlx::Connection;
    let s = setup("").await?;
    let case = s
        .prepared_case("normal", &["accept", "investigation"])
        .await?;
    let asked = "请落实康复救助：申请人右腿截肢需假肢适配";
    let (status, b) = s
        .issue(
            "caseworker",
            &case,
            &json!({ "kind": "rehabilitation", "asked": asked }),
        )
        .await?;
    assert_eq!(status, 201, "{b}");
    let slip = b["id"].as_str().expect("id").to_owned();
    let feedback = "已安排假肢适配评估";
    let (status, b) = s
        .post(
            "dept-disability",
            &format!("/v1/slips/{slip}/feedback"),
            &json!({ "result": "done", "text": feedback }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    let (_, v) = s
        .get_json("dept-disability", &format!("/v1/slips/{slip}"))
        .await?;
    assert_eq!(v["feedback"]["text"], feedback);
    let rid = v["applicant"]["resident_id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let name = v["applicant"]["name"].as_str().expect("name").to_owned();
    let db = format!("sqlite://{}", s.env.path().join("hub.db").display());
    let mut c = sqlx::SqliteConnection::connect(&db).await?;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id || kind || COALESCE(to_department, '') || applicant || personal || COALESCE(feedback, '') FROM slips",
    )
    .fetch_all(&mut c)
    .await?;
    c.close().await?;
    let dump: String = rows.into_iter().map(|r| r.0).collect();
    assert!(dump.contains(&slip), "the dump holds the slip");
    for secret in [rid.as_str(), name.as_str(), asked, feedback, "13905370001"] {
        assert!(!dump.contains(secret), "a personal value in clear");
    }
    s.stop().await;
    Ok(())
}
