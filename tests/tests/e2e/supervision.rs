//! 督导 (issue 11 item 6): timeliness per township and stage for the county supervisor, as JSON
//! and as CSV, from cases filed and moved over mTLS (one first help in time, one never given and
//! overdue — its filing back-dated in the real database — and a normal case whose materials clock
//! runs); a township caseworker and another county's officer are refused; bad queries name the
//! field. On SQLite and PostgreSQL.

use hub::pki::ClientSpec;
use hub_tests::PgTestDb;
use schemas::Role;
use serde_json::Value;

use crate::cases::filing;
use crate::verification::{Setup, XUZHUANG, households, setup, setup_with};

/// Where the hub's database is, for back-dating a filing from the test.
enum Db {
    Sqlite(std::path::PathBuf),
    Pg(String),
}

impl Db {
    /// Move a slip's due time `hours` into the past.
    async fn slip_overdue(&self, slip: &str, hours: i64) -> anyhow::Result<()> {
        use sqlx::Connection;
        let past = (time::OffsetDateTime::now_utc().unix_timestamp() - hours * 3600) * 1000;
        let sql = "UPDATE slips SET due_ms = $1 WHERE id = $2";
        let n = match self {
            Db::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await?;
                let n = sqlx::query(sql)
                    .bind(past)
                    .bind(slip)
                    .execute(&mut c)
                    .await?
                    .rows_affected();
                c.close().await?;
                n
            }
            Db::Pg(url) => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                let n = sqlx::query(sql)
                    .bind(past)
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

    /// Make a case filed (and its `open` event) `hours` earlier than it was.
    async fn back_date(&self, case: &str, hours: i64) -> anyhow::Result<()> {
        use sqlx::Connection;
        let shift = hours * 3_600_000;
        let sqls = [
            "UPDATE cases SET created_ms = created_ms - $1 WHERE id = $2",
            "UPDATE case_events SET at_ms = at_ms - $1 WHERE case_id = $2 AND action = 'open'",
        ];
        match self {
            Db::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await?;
                for sql in sqls {
                    sqlx::query(sql)
                        .bind(shift)
                        .bind(case)
                        .execute(&mut c)
                        .await?;
                }
                c.close().await?;
            }
            Db::Pg(url) => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                for sql in sqls {
                    sqlx::query(sql)
                        .bind(shift)
                        .bind(case)
                        .execute(&mut c)
                        .await?;
                }
                c.close().await?;
            }
        }
        Ok(())
    }
}

fn cell<'a>(report: &'a Value, township: &str, stage: &str) -> &'a Value {
    report["townships"]
        .as_array()
        .expect("townships")
        .iter()
        .find(|f| f["township"] == township && f["stage"] == stage)
        .unwrap_or_else(|| panic!("no {township} {stage} in {report}"))
}

fn total<'a>(report: &'a Value, stage: &str) -> &'a Value {
    report["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .find(|f| f["stage"] == stage)
        .unwrap_or_else(|| panic!("no total {stage} in {report}"))
}

async fn supervision_figures(s: &Setup, db: Db) -> anyhow::Result<()> {
    s.env.issue(
        "officer-yanzhou",
        &ClientSpec {
            role: Role::Caseworker,
            organisation: "mz-370812".into(),
            division: "370812".into(),
            principal: "co-0002".into(),
            display_name: "兖州区民政局 (Yanzhou county officer)".into(),
        },
    )?;
    // Emergency, first help given right after acceptance: in time.
    let helped = s
        .prepared_case("emergency", &["accept", "first-help"])
        .await?;
    // Emergency, never helped, filed three hours ago: its 2-hour clock is overdue.
    let h = households(&s.deps, XUZHUANG)[1].clone();
    let late = s
        .file_case(
            "intake",
            &filing(&h, "hotline_12345", "emergency", XUZHUANG),
        )
        .await?;
    let (status, b) = s
        .move_case("caseworker", &late, "accept", &serde_json::json!({}))
        .await?;
    assert_eq!(status, 200, "{b}");
    db.back_date(&late, 3).await?;
    // Normal, accepted: no first-help clock, its materials clock runs.
    let normal = s.prepared_case("normal", &["accept"]).await?;
    assert_ne!(helped, normal);

    let (status, r) = s
        .get_json("county-officer", "/v1/supervision/timeliness")
        .await?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["division"], "370811");
    assert_eq!(r["cases"], 3, "{r}");
    let fh = cell(&r, XUZHUANG, "first_help");
    assert_eq!(fh["township_name"], "许庄街道");
    assert_eq!(
        (
            &fh["clocks"],
            &fh["met"],
            &fh["met_within_limit"],
            &fh["open"],
            &fh["open_overdue"]
        ),
        (
            &Value::from(2),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1)
        ),
        "{fh}"
    );
    assert_eq!(fh["share_within_limit"], 0.5);
    assert!(fh["median_hours"].as_f64().is_some_and(|h| h < 2.0), "{fh}");
    let materials = cell(&r, XUZHUANG, "materials");
    assert_eq!(materials["clocks"], 3);
    assert_eq!(materials["open"], 3);
    assert_eq!(materials["open_overdue"], 0);
    assert!(materials.get("share_within_limit").is_none(), "{materials}");
    assert_eq!(total(&r, "first_help")["clocks"], 2);

    // A township is a division too; the window can exclude everything.
    let (status, r) = s
        .get_json(
            "county-officer",
            "/v1/supervision/timeliness?division=370811005",
        )
        .await?;
    assert_eq!((status, &r["cases"]), (200, &Value::from(0)), "{r}");
    let (status, r) = s
        .get_json(
            "county-officer",
            "/v1/supervision/timeliness?from=2021-01-01&to=2021-12-31",
        )
        .await?;
    assert_eq!((status, &r["cases"]), (200, &Value::from(0)), "{r}");

    // CSV for the county's spreadsheet.
    let resp = s
        .env
        .http("county-officer")?
        .get(s.hub.url("/v1/supervision/timeliness?format=csv"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let text = resp.text().await?;
    assert!(
        text.starts_with('\u{feff}'),
        "a byte-order mark for spreadsheets"
    );
    assert!(
        text.contains(&format!(
            "{XUZHUANG},许庄街道,first_help,先行救助,2,1,1,1,1,0.5,"
        )),
        "{text}"
    );
    assert!(text.contains("370811,合计 total,materials,补充完善材料,3,0,0,3,0,,,"));

    supervised_slips(s, &db, &normal).await?;

    // Who: not a township caseworker, not another county's officer (its own county is fine).
    for (who, path) in [
        ("caseworker", "/v1/supervision/timeliness"),
        ("caseworker", "/v1/supervision/timeliness?division=370811"),
        (
            "officer-yanzhou",
            "/v1/supervision/timeliness?division=370811",
        ),
        ("auditor", "/v1/supervision/timeliness?division=370811"),
    ] {
        let (status, b) = s.get_json(who, path).await?;
        assert_eq!(status, 403, "{who} {path}: {b}");
        assert!(b["error"]["message"].is_string());
    }
    let (status, r) = s
        .get_json("officer-yanzhou", "/v1/supervision/timeliness")
        .await?;
    assert_eq!((status, &r["cases"]), (200, &Value::from(0)), "{r}");

    // Bad queries name the field.
    for (query, field) in [
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2026-12-01&to=2026-11-01", "from"),
        ("from=2020-01-01&to=2026-01-01", "from"),
        ("format=xml", "format"),
        ("division=37", "division"),
        ("division=370000", "division"),
        ("division=370811002001", "division"),
        ("colour=red", ""),
    ] {
        let (status, b) = s
            .get_json(
                "county-officer",
                &format!("/v1/supervision/timeliness?{query}"),
            )
            .await?;
        assert_eq!(status, 400, "{query}: {b}");
        if !field.is_empty() {
            assert_eq!(b["error"]["field"], field, "{query}: {b}");
        }
    }
    Ok(())
}

/// 督导·转办单: two slips from a 许庄 case, one answered in time, one past its due time without
/// feedback; the county officer lists them with their lateness, per township and as CSV.
async fn supervised_slips(s: &Setup, db: &Db, case: &str) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for (kind, asked) in [
        ("medical_assistance", "户主住院，请落实医疗救助"),
        ("housing", "房屋漏雨，请评估危房改造"),
    ] {
        let (status, b) = s
            .post(
                "caseworker",
                &format!("/v1/cases/{case}/slips"),
                &serde_json::json!({ "kind": kind, "asked": asked }),
            )
            .await?;
        assert_eq!(status, 201, "{b}");
        ids.push(b["id"].as_str().expect("slip id").to_owned());
    }
    let (health, housing) = (&ids[0], &ids[1]);
    let (status, b) = s
        .post(
            "dept-health",
            &format!("/v1/slips/{health}/feedback"),
            &serde_json::json!({ "result": "done", "text": "已纳入医疗救助" }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    db.slip_overdue(housing, 5).await?;

    let (status, r) = s
        .get_json("county-officer", "/v1/supervision/slips")
        .await?;
    assert_eq!(status, 200, "{r}");
    let slips = r["slips"].as_array().expect("slips");
    assert_eq!(slips.len(), 2, "{r}");
    // Most overdue first.
    assert_eq!(slips[0]["id"], housing.as_str(), "{r}");
    assert_eq!(slips[0]["overdue"], true);
    assert_eq!(slips[0]["township"], XUZHUANG);
    assert_eq!(slips[0]["township_name"], "许庄街道");
    assert_eq!(slips[0]["to_department"], "housing");
    assert!(
        slips[0]["late_hours"]
            .as_f64()
            .is_some_and(|h| (4.9..6.0).contains(&h)),
        "{r}"
    );
    assert_eq!(slips[1]["id"], health.as_str());
    assert_eq!(
        (
            &slips[1]["state"],
            &slips[1]["overdue"],
            &slips[1]["answered_late"]
        ),
        (
            &Value::from("answered"),
            &Value::from(false),
            &Value::from(false)
        )
    );
    // No personal data: neither the applicant nor what is asked nor the feedback.
    let text = r.to_string();
    for secret in ["户主住院", "房屋漏雨", "已纳入医疗救助", "applicant"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let t = &r["townships"][0];
    assert_eq!(
        (
            &t["township"],
            &t["issued"],
            &t["answered"],
            &t["answered_within_limit"],
            &t["open"],
            &t["open_overdue"],
            &t["share_within_limit"]
        ),
        (
            &Value::from(XUZHUANG),
            &Value::from(2),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1),
            &Value::from(0.5)
        ),
        "{r}"
    );
    assert_eq!(r["totals"]["issued"], 2);

    // Filters: lateness and state; the figures still count every slip.
    let (status, r) = s
        .get_json("county-officer", "/v1/supervision/slips?overdue=true")
        .await?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["slips"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["slips"][0]["id"], housing.as_str());
    assert_eq!(r["totals"]["issued"], 2);
    let (status, r) = s
        .get_json(
            "county-officer",
            &format!("/v1/supervision/slips?state=answered&division={XUZHUANG}"),
        )
        .await?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["slips"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["slips"][0]["id"], health.as_str());

    // CSV for the county's spreadsheet.
    let resp = s
        .env
        .http("county-officer")?
        .get(s.hub.url("/v1/supervision/slips?format=csv&overdue=true"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()?
            .starts_with("text/csv")
    );
    let csv = resp.text().await?;
    assert!(csv.starts_with('\u{feff}'), "{csv}");
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.contains(&format!(
            ",{XUZHUANG},许庄街道,housing,住房救助,housing,,issued,待签收,"
        )),
        "{csv}"
    );

    // Who and bad queries.
    for (who, path) in [
        ("caseworker", "/v1/supervision/slips"),
        ("officer-yanzhou", "/v1/supervision/slips?division=370811"),
        ("dept-housing", "/v1/supervision/slips"),
    ] {
        let (status, b) = s.get_json(who, path).await?;
        assert_eq!(status, 403, "{who} {path}: {b}");
    }
    for (query, field) in [
        ("state=lost", "state"),
        ("overdue=maybe", "overdue"),
        ("format=xml", "format"),
    ] {
        let (status, b) = s
            .get_json("county-officer", &format!("/v1/supervision/slips?{query}"))
            .await?;
        assert_eq!(
            (status, &b["error"]["field"]),
            (400, &Value::from(field)),
            "{query}: {b}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn county_supervisors_see_timeliness_per_township_and_stage_on_sqlite() -> anyhow::Result<()>
{
    let s = setup("").await?;
    let db = Db::Sqlite(s.env.path().join("hub.db"));
    supervision_figures(&s, db).await?;
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn county_supervisors_see_timeliness_per_township_and_stage_on_postgres() -> anyhow::Result<()>
{
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    supervision_figures(&s, Db::Pg(pg.url.clone())).await?;
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}
