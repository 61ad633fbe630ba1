//! 预警规则 and the township warning queue (issue 12 items 5, 6 and 9), over mTLS, on SQLite and
//! PostgreSQL: signed events become warnings with the rule's tier, the household's township and
//! village and the first-contact clock; a second signal attaches to the open warning and a second
//! signal within 90 days raises the tier; an unmatched event raises its warning once the person is
//! put on the monitoring list; another township's caseworker is refused (and logged), the county
//! supervisor sees it; acknowledge, dismiss (reason required) and convert (a case, channel
//! `warning`, linked both ways), illegal moves 409; the rules reloaded, a bad rule set refused
//! whole naming the rule and field.

use std::path::{Path, PathBuf};

use hub_tests::PgTestDb;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::events::{event, resident, sign};
use crate::verification::{Setup, XUZHUANG, setup_with};

pub(crate) const CIVIL: &str = "dept-civil-affairs";

/// Put `resident_id` on the monitoring list in 许庄, village `…001`.
pub(crate) async fn monitor(s: &Setup, resident_id: &str) -> anyhow::Result<()> {
    let (status, b) = s
        .post(
            CIVIL,
            "/v1/monitoring/households",
            &json!({
                "category": "dibao_edge",
                "resident_id": resident_id,
                "township": XUZHUANG,
                "village": format!("{XUZHUANG}001"),
                "since": "2026-03-01",
                "reason": "低保边缘户",
            }),
        )
        .await?;
    anyhow::ensure!(status == 201, "monitoring: {status} {b}");
    Ok(())
}

/// Push an event of `kind` about `resident_id`, signed by its department; returns the receipt.
pub(crate) async fn push(
    s: &Setup,
    kind: &str,
    resident_id: &str,
    details: Option<Value>,
) -> anyhow::Result<Value> {
    let mut e = event(kind, resident_id);
    if let Some(d) = details {
        e.details = d.as_object().cloned().unwrap_or_default();
    }
    let dept = e.department.clone();
    let signed = sign(s.env.path(), &dept, e);
    let (status, b) = s
        .post(
            &format!("dept-{}", dept.replace('_', "-")),
            "/v1/events",
            &signed,
        )
        .await?;
    anyhow::ensure!(status == 201, "push: {status} {b}");
    Ok(b)
}

/// The newest warning in the caseworker's queue.
pub(crate) async fn newest(s: &Setup) -> anyhow::Result<Value> {
    let (status, b) = s.get("caseworker", "/v1/warnings?limit=1").await?;
    anyhow::ensure!(status == 200, "list: {status} {b}");
    Ok(b["warnings"][0].clone())
}

fn t(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).expect("RFC 3339 time")
}

async fn warnings_of_rule(s: &Setup, who: &str, query: &str) -> anyhow::Result<Vec<Value>> {
    let (status, b) = s.get(who, &format!("/v1/warnings?{query}")).await?;
    anyhow::ensure!(status == 200, "list: {status} {b}");
    Ok(b["warnings"].as_array().cloned().unwrap_or_default())
}

async fn rules_and_queue(s: &Setup, policies: &Path) -> anyhow::Result<()> {
    let (a, b) = (resident(700_001), resident(700_002));
    monitor(s, &a).await?;
    monitor(s, &b).await?;

    // A's hospital stay, 21,000 yuan out of pocket (任城区 threshold 12,600): urgent, 24 h.
    push(s, "health.hospitalisation", &a, None).await?;
    let w = newest(s).await?;
    assert_eq!(w["rule"], "hospital_costs", "{w}");
    assert_eq!(w["tier"], "urgent");
    assert_eq!(w["state"], "open");
    assert_eq!(w["township"], XUZHUANG);
    assert_eq!(w["village"], format!("{XUZHUANG}001"));
    assert_eq!(w["signals"], 1);
    assert_eq!(
        t(&w["first_contact_due_at"]) - t(&w["created_at"]),
        time::Duration::hours(24),
        "{w}"
    );
    let hospital = w["id"].as_str().expect("id").to_owned();

    // B's unemployment: normal, 3 working days, ending 23:59:59 Beijing time.
    push(s, "labor.unemployment_registered", &b, None).await?;
    let wb = newest(s).await?;
    assert_eq!(
        (wb["rule"].as_str(), wb["tier"].as_str()),
        (Some("monitored_unemployment"), Some("normal")),
        "{wb}"
    );
    assert!(
        wb["first_contact_due_at"]
            .as_str()
            .is_some_and(|d| d.ends_with("T23:59:59+08:00")),
        "{wb}"
    );
    let due = t(&wb["first_contact_due_at"]) - t(&wb["created_at"]);
    assert!(
        due >= time::Duration::days(3) && due < time::Duration::days(12),
        "{wb}"
    );

    // A's unemployment: a second signal within 90 days raises normal to urgent.
    push(s, "labor.unemployment_registered", &a, None).await?;
    let wa = newest(s).await?;
    assert_eq!(
        (wa["rule"].as_str(), wa["tier"].as_str()),
        (Some("monitored_unemployment"), Some("urgent")),
        "{wa}"
    );

    // A's second hospital stay attaches to the open warning and raises it to emergency (2 h).
    push(s, "health.hospitalisation", &a, None).await?;
    let (status, view) = s
        .get("caseworker", &format!("/v1/warnings/{hospital}"))
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["signals"], 2, "{view}");
    assert_eq!(view["tier"], "emergency", "{view}");
    assert_eq!(view["signals_detail"].as_array().map(Vec::len), Some(2));
    assert_eq!(view["signals_detail"][1]["raised"], true, "{view}");
    assert_eq!(view["signals_detail"][0]["kind"], "health.hospitalisation");
    assert!(view["log_index"].is_u64());
    assert!(t(&view["first_contact_due_at"]) - t(&view["updated_at"]) <= time::Duration::hours(2));
    let hospital_open = warnings_of_rule(s, "caseworker", "state=open&tier=emergency").await?;
    assert_eq!(
        hospital_open.len(),
        1,
        "one open warning per household and rule"
    );
    // No resident ID in any answer.
    for id in [&a, &b] {
        assert!(!view.to_string().contains(id.as_str()));
    }

    // Another township's caseworker: refused and logged; its queue does not show them. The
    // county supervisor sees them.
    let (status, refused) = s
        .get("caseworker-other", &format!("/v1/warnings/{hospital}"))
        .await?;
    assert_eq!(status, 403, "{refused}");
    assert!(
        warnings_of_rule(s, "caseworker-other", "")
            .await?
            .is_empty()
    );
    let (status, _) = s
        .get("county-officer", &format!("/v1/warnings/{hospital}"))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        warnings_of_rule(
            s,
            "county-officer",
            &format!("township={XUZHUANG}&state=open")
        )
        .await?
        .len(),
        3
    );
    assert_eq!(
        warnings_of_rule(
            s,
            "caseworker",
            &format!("village={XUZHUANG}001&overdue=false")
        )
        .await?
        .len(),
        3
    );

    // Acknowledge B's; again is 409 with the state and the allowed moves. Dismiss needs a reason.
    let b_id = wb["id"].as_str().expect("id");
    let (status, ack) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{b_id}/acknowledge"),
            &json!({}),
        )
        .await?;
    assert_eq!(
        (status, ack["state"].as_str()),
        (200, Some("acknowledged")),
        "{ack}"
    );
    let (status, again) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{b_id}/acknowledge"),
            &json!({}),
        )
        .await?;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "illegal_transition");
    assert_eq!(again["state"], "acknowledged");
    assert_eq!(again["allowed"], json!(["dismiss", "convert"]));
    let (status, bad) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{b_id}/dismiss"),
            &json!({}),
        )
        .await?;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("reason")),
        "{bad}"
    );
    let (status, dismissed) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{b_id}/dismiss"),
            &json!({ "reason": "已就业，收入稳定" }),
        )
        .await?;
    assert_eq!(
        (status, dismissed["state"].as_str()),
        (200, Some("dismissed")),
        "{dismissed}"
    );

    // Convert A's hospital warning: a case, channel warning, tier emergency, linked both ways.
    let (status, conv) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{hospital}/convert"),
            &json!({ "name": "王秀英", "phone": "13800000001", "description": "住院自付费用高，家庭困难" }),
        )
        .await?;
    assert_eq!(status, 201, "{conv}");
    assert_eq!(conv["warning"]["state"], "converted");
    let case_id = conv["case_id"].as_str().expect("case id");
    assert_eq!(conv["warning"]["case_id"], case_id);
    let (status, case) = s.get("caseworker", &format!("/v1/cases/{case_id}")).await?;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["channel"], "warning");
    assert_eq!(case["tier"], "emergency");
    assert_eq!(case["hardship"], "illness");
    assert_eq!(case["township"], XUZHUANG);
    assert_eq!(case["applicant"]["resident_id"], a.as_str());
    assert_eq!(case["warning_id"], hospital.as_str());
    let (status, again) = s
        .post(
            "caseworker",
            &format!("/v1/warnings/{hospital}/convert"),
            &json!({ "name": "王秀英", "phone": "13800000001", "description": "x" }),
        )
        .await?;
    assert_eq!(
        (status, again["state"].as_str()),
        (409, Some("converted")),
        "{again}"
    );
    // A new hospital stay of A opens a new warning: the converted one is closed.
    push(s, "health.hospitalisation", &a, None).await?;
    let w2 = newest(s).await?;
    assert_eq!(w2["rule"], "hospital_costs");
    assert_ne!(w2["id"], hospital.as_str());

    // An unmatched death of an only earner raises its warning once the person is on the list.
    let c = resident(700_003);
    let receipt = push(
        s,
        "civil_affairs.death_registered",
        &c,
        Some(json!({ "died_on": "2026-11-01", "sole_earner": true })),
    )
    .await?;
    assert_eq!(receipt["matched"], false);
    monitor(s, &c).await?;
    let wc = newest(s).await?;
    assert_eq!(
        (wc["rule"].as_str(), wc["tier"].as_str()),
        (Some("sole_earner_death"), Some("urgent")),
        "{wc}"
    );

    // The rules reload: unemployment made urgent takes effect; a bad set is refused whole.
    let file = policies.join("warnings.toml");
    let good = std::fs::read_to_string(&file)?;
    let unemployment = good.find("[rule.monitored_unemployment]").expect("rule");
    let urgent = format!(
        "{}{}",
        &good[..unemployment],
        good[unemployment..].replacen("tier = \"normal\"", "tier = \"urgent\"", 1)
    );
    std::fs::write(&file, &urgent)?;
    assert!(s.hub.authz.reload(true)?);
    let d = resident(700_004);
    monitor(s, &d).await?;
    push(s, "labor.unemployment_registered", &d, None).await?;
    assert_eq!(newest(s).await?["tier"], "urgent");
    std::fs::write(
        &file,
        urgent.replacen("tier = \"urgent\"", "tier = \"soon\"", 1),
    )?;
    let err = s.hub.authz.reload(true).unwrap_err().to_string();
    assert!(
        err.contains("warnings.toml") && err.contains("rule.") && err.contains(".tier"),
        "{err}"
    );
    let e = resident(700_005);
    monitor(s, &e).await?;
    push(s, "labor.unemployment_registered", &e, None).await?;
    let we = newest(s).await?;
    assert_eq!(
        (we["rule"].as_str(), we["tier"].as_str()),
        (Some("monitored_unemployment"), Some("urgent")),
        "the old rules stay in force: {we}"
    );
    Ok(())
}

/// A copy of the shipped policies the test may change.
fn copy_policies() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(e.file_name()))?;
            } else {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
        Ok(())
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("policies");
    copy(&policies::PolicyEngine::shipped_dir(), &dir)?;
    Ok((tmp, dir))
}

fn with_policies(dir: &Path, t: String) -> String {
    format!("{t}\n[policies]\ndir = \"{}\"\n", dir.display())
        .replace("reload_poll_ms = 2000", "reload_poll_ms = 0")
}

#[tokio::test]
async fn events_raise_warnings_in_the_township_queue_on_sqlite() -> anyhow::Result<()> {
    let (_tmp, dir) = copy_policies()?;
    let d = dir.clone();
    let s = setup_with(move |t| with_policies(&d, t)).await?;
    rules_and_queue(&s, &dir).await?;
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn events_raise_warnings_in_the_township_queue_on_postgres() -> anyhow::Result<()> {
    let (_tmp, dir) = copy_policies()?;
    let pg = PgTestDb::create().await?;
    let (url, d) = (pg.url.clone(), dir.clone());
    let s = setup_with(move |t| with_policies(&d, t.replace("sqlite://hub.db", &url))).await?;
    rules_and_queue(&s, &dir).await?;
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}
