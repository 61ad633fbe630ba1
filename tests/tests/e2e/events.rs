//! 部门事件 and 低收入人口动态监测 (issue 12 items 1 and 3), over mTLS, on SQLite and PostgreSQL:
//! a department signs events with its real key and pushes them; an event is placed through the
//! monitoring list, an unknown person's event is kept as unmatched, listed and placed once the
//! person is put on the list; a replay is answered with the first receipt and applies nothing; an
//! id reused for another event is 409; a bad signature, a stale event, an unknown kind or
//! department and a malformed body are refused naming the field; a department pushing another's
//! event is refused (403); a CSV upload of thousands of households applied once, then again with
//! nothing changed; and the resident ID nowhere in clear.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub_tests::{PgTestDb, TestEnv};
use schemas::ResidentId;
use schemas::events::{DepartmentEvent, EventSubject, SignedEvent};
use schemas::protocol::ProtocolVersion;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::verification::{Setup, XUZHUANG, setup_with};

/// A valid resident ID of 任城区, distinct for every `n` below 1,000,000.
pub(crate) fn resident(n: u32) -> String {
    let birth = time::macros::date!(1940 - 01 - 01) + time::Duration::days(i64::from(n / 1000));
    ResidentId::from_parts("370811", birth, (n % 1000) as u16)
        .expect("valid parts")
        .as_str()
        .to_owned()
}

/// An unsigned event of `kind` about `resident_id`, issued now.
pub(crate) fn event(kind: &str, resident_id: &str) -> DepartmentEvent {
    let now = OffsetDateTime::now_utc();
    let details = match kind {
        "health.hospitalisation" => json!({
            "admitted_on": "2026-11-01",
            "total_fen": 5_000_000,
            "out_of_pocket_fen": 2_100_000,
        }),
        "labor.unemployment_registered" => json!({ "registered_on": "2026-11-02" }),
        _ => json!({}),
    };
    DepartmentEvent {
        protocol: ProtocolVersion,
        event_id: uuid::Uuid::new_v4(),
        department: kind.split('.').next().unwrap_or_default().to_owned(),
        kind: kind.to_owned(),
        occurred_at: now - time::Duration::hours(2),
        issued_at: now,
        subject: EventSubject {
            resident_id: ResidentId::parse(resident_id).expect("valid id"),
        },
        details: details.as_object().cloned().unwrap_or_default(),
    }
}

/// Sign with `code`'s real key, as the demo keeps it (`DIR/departments/<code>.pk8`).
pub(crate) fn sign(dir: &std::path::Path, code: &str, e: DepartmentEvent) -> Value {
    let path = dir.join("departments").join(format!("{code}.pk8"));
    let key = connectors::adapter::signing::key_from_pkcs8(
        &std::fs::read(&path).expect("key file"),
        &path.display().to_string(),
    )
    .expect("key");
    serde_json::to_value(SignedEvent::sign(e, &key).expect("sign")).expect("json")
}

/// `name`'s client certificate for a department code.
fn cert(code: &str) -> String {
    format!("dept-{}", code.replace('_', "-"))
}

const CIVIL: &str = "dept-civil-affairs";

impl Setup {
    async fn push(&self, who: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.post(who, "/v1/events", body).await
    }

    async fn send_raw(
        &self,
        who: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Value)> {
        let r = self
            .env
            .http(who)?
            .post(self.hub.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn monitored(resident_id: &str, category: &str) -> Value {
    json!({
        "category": category,
        "resident_id": resident_id,
        "township": XUZHUANG,
        "village": format!("{XUZHUANG}001"),
        "since": "2026-03-01",
        "reason": "家庭成员重病，医疗支出大",
    })
}

/// `(status, code, field)` of an error answer.
fn refusal(status: u16, b: &Value) -> (u16, &str, &str) {
    (
        status,
        b["error"]["code"].as_str().unwrap_or_default(),
        b["error"]["field"].as_str().unwrap_or_default(),
    )
}

/// A database the test reads behind the hub's back.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        use sqlx::Connection;
        Ok(match self {
            Db::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await?;
                let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut c)
                    .await?;
                c.close().await?;
                n
            }
            Db::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut c)
                    .await?;
                c.close().await?;
                n
            }
        })
    }
}

/// Events pushed, placed, replayed and refused.
async fn events_are_placed_kept_and_refused(s: &Setup, db: &Db) -> anyhow::Result<()> {
    let dir = s.env.path();
    let (known, unknown) = (resident(1), resident(2));

    // Civil affairs puts `known` on the monitoring list.
    let (status, b) = s
        .post(
            CIVIL,
            "/v1/monitoring/households",
            &monitored(&known, "dibao_edge"),
        )
        .await?;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["result"], "inserted");
    let (status, b) = s
        .post(
            CIVIL,
            "/v1/monitoring/households",
            &monitored(&known, "dibao_edge"),
        )
        .await?;
    assert_eq!(
        (status, b["result"].as_str()),
        (200, Some("unchanged")),
        "{b}"
    );

    // Health pushes a hospital stay of `known`: placed through the monitoring list.
    let e = event("health.hospitalisation", &known);
    let signed = sign(dir, "health", e.clone());
    let (status, first) = s.push(&cert("health"), &signed).await?;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["matched"], true, "{first}");
    assert_eq!(first["event_id"], e.event_id.to_string());
    assert!(first["log_index"].is_u64());
    let id = e.event_id.to_string();
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM dept_events WHERE event_id = '{id}' AND placement = 'monitoring' AND township = '{XUZHUANG}'"
        ))
        .await?,
        1
    );

    // The same signed event again: the first receipt, nothing re-applied.
    let (status, again) = s.push(&cert("health"), &signed).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first);
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM dept_events WHERE event_id = '{id}'"
        ))
        .await?,
        1
    );

    // The same id for another event: 409.
    let mut other = e.clone();
    other.details.insert("out_of_pocket_fen".into(), json!(1));
    let (status, b) = s.push(&cert("health"), &sign(dir, "health", other)).await?;
    assert_eq!(
        refusal(status, &b),
        (409, "event_id_reused", "event.event_id"),
        "{b}"
    );

    // An unknown person: kept as unmatched, counted, listed for civil affairs.
    let lost = event("labor.unemployment_registered", &unknown);
    let (status, b) = s
        .push(&cert("labor"), &sign(dir, "labor", lost.clone()))
        .await?;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["matched"], false, "{b}");
    let (status, list) = s.get(CIVIL, "/v1/events/unmatched").await?;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(listed, [lost.event_id.to_string().as_str()], "{list}");
    assert_eq!(list["events"][0]["kind"], "labor.unemployment_registered");
    assert!(
        !list.to_string().contains(&unknown),
        "no resident ID listed"
    );
    // Only civil affairs lists them.
    let (status, b) = s.get(&cert("health"), "/v1/events/unmatched").await?;
    assert_eq!(status, 403, "{b}");

    // Civil affairs puts the person on the list: the event is placed.
    let (status, b) = s
        .post(
            CIVIL,
            "/v1/monitoring/households",
            &monitored(&unknown, "poverty_risk"),
        )
        .await?;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["events_placed"], 1, "{b}");
    let (_, list) = s.get(CIVIL, "/v1/events/unmatched").await?;
    assert_eq!(list["events"], json!([]), "{list}");
    // Its receipt stays the first one.
    let (status, b) = s
        .push(&cert("labor"), &sign(dir, "labor", lost.clone()))
        .await?;
    assert_eq!((status, &b["matched"]), (200, &json!(false)), "{b}");

    // Refusals, each naming the field.
    let mut tampered = sign(dir, "health", event("health.hospitalisation", &known));
    tampered["event"]["details"]["out_of_pocket_fen"] = json!(1);
    let mut stale = event("health.hospitalisation", &known);
    stale.issued_at -= time::Duration::hours(25);
    stale.occurred_at -= time::Duration::hours(25);
    let mut foreign = event("health.hospitalisation", &known);
    foreign.department = "forestry".into();
    foreign.kind = "forestry.fire".into();
    let mut no_subject = sign(dir, "health", event("health.hospitalisation", &known));
    no_subject["event"]
        .as_object_mut()
        .expect("object")
        .remove("subject");
    for (who, body, want) in [
        (
            "health",
            tampered,
            (422, "bad_signature", "signature.value"),
        ),
        (
            "health",
            sign(dir, "health", stale),
            (422, "stale_event", "event.issued_at"),
        ),
        (
            "health",
            sign(dir, "health", event("health.sneezed", &known)),
            (422, "unknown_kind", "event.kind"),
        ),
        (
            "health",
            sign(dir, "health", foreign),
            (422, "unknown_department", "event.department"),
        ),
        // Signed with labor's key but naming health: not a key of health's.
        (
            "health",
            sign(dir, "labor", event("health.hospitalisation", &known)),
            (422, "unknown_key", "signature.key_id"),
        ),
        ("health", no_subject, (400, "malformed", "event")),
        (
            "health",
            json!({ "event": [] }),
            (400, "malformed", "event"),
        ),
    ] {
        let (status, b) = s.push(&cert(who), &body).await?;
        let got = refusal(status, &b);
        assert_eq!((got.0, got.1), (want.0, want.1), "{b}");
        assert!(got.2.starts_with(want.2), "{b}");
        assert!(!b.to_string().contains(&known), "no value quoted: {b}");
    }
    let (status, b) = s
        .send_raw(
            &cert("health"),
            "/v1/events",
            "application/json",
            b"{".to_vec(),
        )
        .await?;
    assert_eq!(refusal(status, &b), (400, "malformed", "body"), "{b}");

    // Labor pushing health's event: 403, nothing stored.
    let e = event("health.hospitalisation", &known);
    let (status, b) = s
        .push(&cert("labor"), &sign(dir, "health", e.clone()))
        .await?;
    assert_eq!(
        (status, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM dept_events WHERE event_id = '{}'",
            e.event_id
        ))
        .await?,
        0
    );
    // A caseworker pushes nothing and manages no list.
    let (status, _) = s
        .push("caseworker", &sign(dir, "health", e.clone()))
        .await?;
    assert_eq!(status, 403);
    let (status, _) = s
        .post(
            "caseworker",
            "/v1/monitoring/households",
            &monitored(&known, "dibao_edge"),
        )
        .await?;
    assert_eq!(status, 403);

    // Removal: the resident ID in the body; a second removal finds nothing.
    let remove = json!({ "resident_id": known, "category": "dibao_edge" });
    let (status, b) = s
        .post(CIVIL, "/v1/monitoring/households/remove", &remove)
        .await?;
    assert_eq!(
        (status, b["result"].as_str()),
        (200, Some("removed")),
        "{b}"
    );
    let (status, _) = s
        .post(CIVIL, "/v1/monitoring/households/remove", &remove)
        .await?;
    assert_eq!(status, 404);
    // Now `known` is placed nowhere: a new event of theirs is unmatched.
    let (status, b) = s
        .push(
            &cert("health"),
            &sign(dir, "health", event("health.hospitalisation", &known)),
        )
        .await?;
    assert_eq!((status, &b["matched"]), (201, &json!(false)), "{b}");

    // One `event_received` entry for the accepted event, though it was pushed twice.
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM log_entries WHERE action = 'event_received' AND case_ref = '{id}'"
        ))
        .await?,
        1
    );
    Ok(())
}

/// A CSV of `n` households (line 1 is the header), with bad lines at known places.
fn csv(n: u32) -> (Vec<u8>, Vec<(u64, &'static str)>) {
    let mut out = String::from("category,resident_id,township,village,since,reason,status\n");
    let mut bad = Vec::new();
    let mut line = 1u64;
    for i in 0..n {
        line += 1;
        let category = ["dibao_edge", "expenditure_hardship", "poverty_risk"][(i % 3) as usize];
        let rid = resident(10_000 + i);
        out.push_str(&format!(
            "{category},{rid},{XUZHUANG},{XUZHUANG}{:03},2026-0{}-15,\"低收入,需关注 {i}\",active\n",
            i % 40 + 1,
            i % 9 + 1
        ));
        if i == 100 {
            line += 1;
            out.push_str(&format!(
                "dibao_edge,370811194001011230,{XUZHUANG},,2026-01-01,x,\n"
            ));
            bad.push((line, "resident_id"));
        }
        if i == 200 {
            line += 1;
            out.push_str(&format!(
                "dibao_edge,{},370999001,,2026-01-01,x,\n",
                resident(1)
            ));
            bad.push((line, "township"));
        }
        if i == 300 {
            line += 1;
            out.push_str(&format!(
                "orphan_care,{},{XUZHUANG},,2026-01-01,x,\n",
                resident(1)
            ));
            bad.push((line, "category"));
        }
    }
    (out.into_bytes(), bad)
}

async fn uploads_are_streamed_and_idempotent(s: &Setup, db: &Db) -> anyhow::Result<()> {
    let n = 3000;
    let (file, bad) = csv(n);
    let (status, b) = s
        .send_raw(CIVIL, "/v1/monitoring/uploads", "text/csv", file.clone())
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (
            &b["inserted"],
            &b["updated"],
            &b["unchanged"],
            &b["rejected"]
        ),
        (&json!(n), &json!(0), &json!(0), &json!(bad.len())),
        "{b}"
    );
    let rejected: Vec<(u64, String)> = b["rejections"]
        .as_array()
        .expect("rejections")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or_default(),
                r["field"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = bad.iter().map(|(l, f)| (*l, (*f).to_owned())).collect();
    assert_eq!(rejected, want, "{b}");
    assert!(
        !b.to_string().contains("370811194001011230"),
        "no value quoted"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM monitored_households WHERE status = 'active'")
            .await?,
        i64::from(n)
    );
    // The same file again changes nothing.
    let (status, b) = s
        .send_raw(CIVIL, "/v1/monitoring/uploads", "text/csv", file)
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (
            &b["inserted"],
            &b["updated"],
            &b["unchanged"],
            &b["rejected"]
        ),
        (&json!(0), &json!(0), &json!(n), &json!(bad.len())),
        "{b}"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM monitored_households")
            .await?,
        i64::from(n)
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM monitoring_uploads").await?,
        2
    );

    // JSON lines: one household changed, one removed, one new, one bad.
    let mut lines = String::new();
    let mut changed = monitored(&resident(10_000), "dibao_edge");
    changed["reason"] = json!("收入下降");
    lines.push_str(&format!("{changed}\n"));
    let mut removed = monitored(&resident(10_001), "expenditure_hardship");
    removed["status"] = json!("removed");
    lines.push_str(&format!("{removed}\n\n"));
    lines.push_str(&format!(
        "{}\n",
        monitored(&resident(99_999), "poverty_risk")
    ));
    lines.push_str("{\"category\": \"dibao_edge\", \"resident_id\": 7}\n");
    let (status, b) = s
        .send_raw(
            CIVIL,
            "/v1/monitoring/uploads",
            "application/x-ndjson",
            lines.into_bytes(),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (
            &b["inserted"],
            &b["updated"],
            &b["unchanged"],
            &b["rejected"]
        ),
        (&json!(1), &json!(2), &json!(0), &json!(1)),
        "{b}"
    );
    assert_eq!(b["rejections"][0]["line"], 5, "{b}");

    // Garbage: a clean 4xx.
    for (ct, body, want) in [
        ("text/plain", b"hello".to_vec(), 415),
        ("text/csv", b"name,age\nx,1\n".to_vec(), 400),
        ("text/csv", Vec::new(), 400),
    ] {
        let (status, b) = s
            .send_raw(CIVIL, "/v1/monitoring/uploads", ct, body)
            .await?;
        assert_eq!(status, want, "{ct}: {b}");
        assert!(b["error"]["code"].is_string(), "{b}");
    }
    // Bytes that are not UTF-8 (a GBK export): the line is rejected, the others applied.
    let mut gbk = b"category,resident_id,township,since,reason\n".to_vec();
    gbk.extend_from_slice(b"dibao_edge,x,y,z,\xc0\xb4\n");
    let (status, b) = s
        .send_raw(CIVIL, "/v1/monitoring/uploads", "text/csv", gbk)
        .await?;
    assert_eq!((status, &b["rejected"]), (200, &json!(1)), "{b}");
    assert_eq!(b["rejections"][0]["line"], 2, "{b}");
    // Health may not upload.
    let (status, _) = s
        .send_raw(
            &cert("health"),
            "/v1/monitoring/uploads",
            "text/csv",
            b"x".to_vec(),
        )
        .await?;
    assert_eq!(status, 403);
    Ok(())
}

/// A batch push (`application/x-ndjson`): one answer line per event, in order, each with the
/// status, receipt or refusal a single push would get; the events share group commits with their
/// access-log entries and warnings.
async fn events_are_pushed_in_batches(s: &Setup, db: &Db) -> anyhow::Result<()> {
    let dir = s.env.path();
    let (sick, other, stranger) = (resident(11), resident(12), resident(13));
    for who in [&sick, &other] {
        let (status, b) = s
            .post(
                CIVIL,
                "/v1/monitoring/households",
                &monitored(who, "dibao_edge"),
            )
            .await?;
        assert_eq!(status, 201, "{b}");
    }
    // Pushed alone first: in the batch it is answered as seen before.
    let early = sign(dir, "health", event("health.hospitalisation", &other));
    let (status, early_receipt) = s.push(&cert("health"), &early).await?;
    assert_eq!(status, 201, "{early_receipt}");

    let warned = event("health.hospitalisation", &sick);
    let warned_signed = sign(dir, "health", warned.clone());
    let kept = sign(dir, "health", event("health.hospitalisation", &stranger));
    let mut forged = sign(dir, "health", event("health.hospitalisation", &stranger));
    forged["event"]["details"]["out_of_pocket_fen"] = json!(1);
    let labor = sign(
        dir,
        "labor",
        event("labor.unemployment_registered", &stranger),
    );
    let lines = [
        warned_signed.to_string(),
        String::new(),
        kept.to_string(),
        early.to_string(),
        forged.to_string(),
        labor.to_string(),
        warned_signed.to_string(),
        "{not json".to_owned(),
    ];
    let body = lines.join("\n").into_bytes();
    let r = s
        .env
        .http(&cert("health"))?
        .post(s.hub.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let text = r.text().await?;
    let answers: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let got: Vec<(u64, u64, &str, &str)> = answers
        .iter()
        .map(|a| {
            (
                a["line"].as_u64().unwrap_or_default(),
                a["status"].as_u64().unwrap_or_default(),
                a["error"]["code"].as_str().unwrap_or_default(),
                // A policy refusal's field is the policy layer's business.
                if a["status"] == 403 {
                    ""
                } else {
                    a["error"]["field"].as_str().unwrap_or_default()
                },
            )
        })
        .collect();
    // Lines 1 and 7 carry the same event, judged concurrently: one stores it (201), the other
    // is answered with its receipt (200), whichever reaches the log writer first.
    let mut twins = [got[0].1, got[5].1];
    twins.sort_unstable();
    assert_eq!(twins, [200, 201], "{text}");
    let mut got = got;
    got[0].1 = 201;
    got[5].1 = 200;
    assert_eq!(
        got,
        [
            (1, 201, "", ""),
            (3, 201, "", ""),
            (4, 200, "", ""),
            (5, 422, "bad_signature", "signature.value"),
            (6, 403, "forbidden", ""),
            (7, 200, "", ""),
            (8, 400, "malformed", "body"),
        ],
        "{text}"
    );
    assert_eq!(answers[0]["receipt"]["matched"], true, "{text}");
    assert_eq!(answers[1]["receipt"]["matched"], false, "{text}");
    assert_eq!(answers[2]["receipt"], early_receipt, "{text}");
    assert_eq!(answers[5]["receipt"], answers[0]["receipt"], "{text}");
    assert!(!text.contains(&stranger) && !text.contains(&sick));
    // Stored once each, the warning raised in the same commit as the row and the entry.
    let id = warned.event_id.to_string();
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM dept_events WHERE event_id = '{id}'"
        ))
        .await?,
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM warnings WHERE first_event = '{id}' AND state = 'open'"
        ))
        .await?,
        1
    );
    let index = answers[0]["receipt"]["log_index"]
        .as_i64()
        .unwrap_or_default();
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM log_entries WHERE idx = {index} AND action = 'event_received'"
        ))
        .await?,
        1
    );

    // A batch long enough to be checked on all cores (in chunks): the answers still come in line
    // order, each line judged on its own.
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    for n in 0..60u64 {
        let mut line = sign(dir, "health", event("health.hospitalisation", &stranger));
        let want = match n % 4 {
            0 => (201, ""),
            1 => {
                line["event"]["details"]["out_of_pocket_fen"] = json!(n);
                (422, "bad_signature")
            }
            2 => {
                lines.push("{not json".to_owned());
                expected.push((n + 1, 400, "malformed"));
                continue;
            }
            _ => {
                line = sign(
                    dir,
                    "labor",
                    event("labor.unemployment_registered", &stranger),
                );
                (403, "forbidden")
            }
        };
        lines.push(line.to_string());
        expected.push((n + 1, want.0, want.1));
    }
    let (status, b) = s
        .send_raw(
            &cert("health"),
            "/v1/events",
            "application/x-ndjson",
            lines.join("\n").into_bytes(),
        )
        .await?;
    let text = b.as_str().unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    let answers: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let got: Vec<(u64, u64, &str)> = answers
        .iter()
        .map(|a| {
            (
                a["line"].as_u64().unwrap_or_default(),
                a["status"].as_u64().unwrap_or_default(),
                a["error"]["code"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{text}");

    // Limits: an empty batch, another media type.
    let (status, b) = s
        .send_raw(
            &cert("health"),
            "/v1/events",
            "application/x-ndjson",
            b"\n\n".to_vec(),
        )
        .await?;
    assert_eq!(refusal(status, &b), (400, "malformed", "body"), "{b}");
    let (status, b) = s
        .send_raw(&cert("health"), "/v1/events", "text/plain", b"{}".to_vec())
        .await?;
    assert_eq!(
        refusal(status, &b),
        (415, "unsupported_media_type", "content-type"),
        "{b}"
    );
    Ok(())
}

/// A batch is one pipeline (one replay query, one placement look-up, one group commit with the
/// rules evaluated in line order), answered as single pushes of its lines one after the other
/// would be: two events about one monitored household attach and raise the tier exactly as two
/// single pushes about another household do; a line repeating an earlier line's event is a
/// replay of it, another event under that id is refused; a replay of an earlier push gets its
/// first receipt; a bad signature refuses its line only; an unknown person's event is kept.
async fn a_batch_is_judged_as_single_pushes_would_be(s: &Setup, db: &Db) -> anyhow::Result<()> {
    let dir = s.env.path();
    let (batched, single, stranger) = (resident(21), resident(22), resident(23));
    for who in [&batched, &single] {
        let (status, b) = s
            .post(
                CIVIL,
                "/v1/monitoring/households",
                &monitored(who, "dibao_edge"),
            )
            .await?;
        assert_eq!(status, 201, "{b}");
    }
    // Two hospital stays of `single`, pushed one by one: a warning, then the second signal
    // attaches to it and [repeat] raises it from urgent to emergency.
    let first_single = event("health.hospitalisation", &single);
    for e in [
        first_single.clone(),
        event("health.hospitalisation", &single),
    ] {
        let (status, b) = s.push(&cert("health"), &sign(dir, "health", e)).await?;
        assert_eq!(status, 201, "{b}");
    }
    // Pushed earlier: in the batch it is a replay.
    let early = sign(dir, "health", event("health.hospitalisation", &stranger));
    let (status, early_receipt) = s.push(&cert("health"), &early).await?;
    assert_eq!(status, 201, "{early_receipt}");

    let first = event("health.hospitalisation", &batched);
    let first_signed = sign(dir, "health", first.clone());
    let mut reused = first.clone();
    reused
        .details
        .insert("out_of_pocket_fen".into(), json!(1_300_000));
    let mut forged = sign(dir, "health", event("health.hospitalisation", &batched));
    forged["event"]["details"]["out_of_pocket_fen"] = json!(1);
    let lost = event("health.hospitalisation", &resident(24));
    let second = event("health.hospitalisation", &batched);
    let lines = [
        first_signed.to_string(),
        first_signed.to_string(),
        sign(dir, "health", reused).to_string(),
        early.to_string(),
        forged.to_string(),
        sign(dir, "health", lost.clone()).to_string(),
        sign(dir, "health", second.clone()).to_string(),
    ];
    let (status, b) = s
        .send_raw(
            &cert("health"),
            "/v1/events",
            "application/x-ndjson",
            lines.join("\n").into_bytes(),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    let text = b.as_str().unwrap_or_default().to_owned();
    let answers: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let got: Vec<(u64, u64, &str, &str)> = answers
        .iter()
        .map(|a| {
            (
                a["line"].as_u64().unwrap_or_default(),
                a["status"].as_u64().unwrap_or_default(),
                a["error"]["code"].as_str().unwrap_or_default(),
                a["error"]["field"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, 201, "", ""),
            (2, 200, "", ""),
            (3, 409, "event_id_reused", "event.event_id"),
            (4, 200, "", ""),
            (5, 422, "bad_signature", "signature.value"),
            (6, 201, "", ""),
            (7, 201, "", ""),
        ],
        "{text}"
    );
    assert_eq!(answers[1]["receipt"], answers[0]["receipt"], "{text}");
    assert_eq!(answers[3]["receipt"], early_receipt, "{text}");
    assert_eq!(answers[0]["receipt"]["matched"], true, "{text}");
    assert_eq!(answers[5]["receipt"]["matched"], false, "{text}");
    assert_eq!(answers[6]["receipt"]["matched"], true, "{text}");
    // The batch's entries are consecutive, in line order.
    let index = |n: usize| answers[n]["receipt"]["log_index"].as_i64().unwrap_or(-1);
    assert_eq!((index(5), index(6)), (index(0) + 1, index(0) + 2), "{text}");
    assert!(!text.contains(&batched) && !text.contains(&resident(24)));

    // The same warning as the single pushes gave: one, open, emergency, two signals, moved once.
    for head in [&first_single, &first] {
        assert_eq!(
            db.count(&format!(
                "SELECT COUNT(*) FROM warnings WHERE first_event = '{}' AND rule = 'hospital_costs' \
                 AND state = 'open' AND tier = 'emergency' AND signals = 2 AND version = 2 \
                 AND township = '{XUZHUANG}'",
                head.event_id
            ))
            .await?,
            1,
            "{text}"
        );
    }
    for e in [&first, &second] {
        assert_eq!(
            db.count(&format!(
                "SELECT COUNT(*) FROM warning_signals s JOIN warnings w ON w.id = s.warning_id \
                 WHERE s.event_id = '{}' AND w.first_event = '{}'",
                e.event_id, first.event_id
            ))
            .await?,
            1
        );
    }
    // Stored once each: the repeated line and the refused ones wrote nothing.
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM dept_events WHERE event_id IN ('{}', '{}', '{}')",
            first.event_id, second.event_id, lost.event_id
        ))
        .await?,
        3
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM log_entries WHERE action = 'event_received' AND case_ref = '{}'",
            first.event_id
        ))
        .await?,
        1
    );
    // The unknown person's event is kept and listed.
    let (status, list) = s.get(CIVIL, "/v1/events/unmatched").await?;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["event_id"] == lost.event_id.to_string()),
        "{list}"
    );
    Ok(())
}

async fn on_sqlite<F>(scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&Setup, &Db) -> anyhow::Result<()>,
{
    let s = setup_with(|t| t).await?;
    let db = Db::Sqlite(s.env.path().join("hub.db"));
    scenario(&s, &db).await?;
    s.stop().await;
    Ok(())
}

async fn on_postgres<F>(scenario: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&Setup, &Db) -> anyhow::Result<()>,
{
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    scenario(&s, &Db::Postgres(pg.url.clone())).await?;
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}

#[tokio::test]
async fn events_are_pushed_in_batches_on_sqlite() -> anyhow::Result<()> {
    on_sqlite(events_are_pushed_in_batches).await
}

#[tokio::test]
async fn events_are_pushed_in_batches_on_postgres() -> anyhow::Result<()> {
    on_postgres(events_are_pushed_in_batches).await
}

#[tokio::test]
async fn a_batch_is_judged_as_single_pushes_would_be_on_sqlite() -> anyhow::Result<()> {
    on_sqlite(a_batch_is_judged_as_single_pushes_would_be).await
}

#[tokio::test]
async fn a_batch_is_judged_as_single_pushes_would_be_on_postgres() -> anyhow::Result<()> {
    on_postgres(a_batch_is_judged_as_single_pushes_would_be).await
}

#[tokio::test]
async fn events_are_placed_kept_and_refused_on_sqlite() -> anyhow::Result<()> {
    on_sqlite(events_are_placed_kept_and_refused).await
}

#[tokio::test]
async fn events_are_placed_kept_and_refused_on_postgres() -> anyhow::Result<()> {
    on_postgres(events_are_placed_kept_and_refused).await
}

#[tokio::test]
async fn monitoring_uploads_are_streamed_and_idempotent_on_sqlite() -> anyhow::Result<()> {
    on_sqlite(uploads_are_streamed_and_idempotent).await
}

#[tokio::test]
async fn monitoring_uploads_are_streamed_and_idempotent_on_postgres() -> anyhow::Result<()> {
    on_postgres(uploads_are_streamed_and_idempotent).await
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
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

#[tokio::test]
async fn the_resident_id_is_nowhere_in_clear_on_sqlite_nor_in_the_hub_log() -> anyhow::Result<()> {
    // A real hub process at debug level with the demo's departments configured, its log captured.
    let env = TestEnv::new()?;
    let _deps = env.start_departments().await?;
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
    let (on_list, off_list) = (resident(500_001), resident(500_002));
    let civil = env.http(CIVIL)?;
    let r = civil
        .post(url("/v1/monitoring/households"))
        .json(&monitored(&on_list, "dibao_edge"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let mut csv = String::from("category,resident_id,township,since,reason\n");
    csv.push_str(&format!(
        "poverty_risk,{off_list},{XUZHUANG},2026-01-01,因病致贫风险\n"
    ));
    let r = civil
        .post(url("/v1/monitoring/uploads"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let stranger = resident(500_003);
    let mut ids = Vec::new();
    for rid in [&on_list, &stranger] {
        let e = event("health.hospitalisation", rid);
        ids.push(e.event_id.to_string());
        let r = env
            .http(&cert("health"))?
            .post(url("/v1/events"))
            .json(&sign(env.path(), "health", e))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 201);
    }
    // A refused event with an ID that is not one is not echoed or logged either.
    let mut bad = sign(
        env.path(),
        "health",
        event("health.hospitalisation", &stranger),
    );
    bad["event"]["subject"]["resident_id"] = json!("370811194001011230");
    let r = env
        .http(&cert("health"))?
        .post(url("/v1/events"))
        .json(&bad)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);

    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let log = std::fs::read(&log_path)?;
    assert!(
        contains(&log, "department event received"),
        "the log is captured"
    );
    let db = sqlite_bytes(env.path())?;
    for id in &ids {
        assert!(contains(&db, id), "the scanned files hold the event rows");
    }
    for secret in [
        on_list.as_str(),
        off_list.as_str(),
        stranger.as_str(),
        "370811194001011230",
        "因病致贫风险",
    ] {
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
