//! 部门目录 as data (issue 12 item 2), over mTLS, on SQLite and PostgreSQL: emergency management
//! (应急管理, `emergency`) exists only as an entry of the shipped `policies/departments.toml`, its
//! `[departments.emergency]` section in the hub's config, its key and its client certificate
//! (`dept-emergency`), all written by the demo set-up; no code names it. It pushes a signed
//! `emergency.disaster_victim` event about a monitored resident, and an emergency-tier warning
//! (急难, first contact within 2 hours) lands in the queue of the resident's township; another
//! department cannot push on its behalf, and it cannot push another department's kinds.

use hub_tests::PgTestDb;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::events::{event, resident, sign};
use crate::verification::{Setup, XUZHUANG, setup_with};
use crate::warnings::{monitor, newest, push};

fn t(v: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).expect("RFC 3339 time")
}

async fn disaster_victims_raise_emergency_warnings(s: &Setup) -> anyhow::Result<()> {
    let victim = resident(810_001);
    monitor(s, &victim).await?;

    // Emergency management pushes a disaster victim: placed, an emergency-tier warning in 许庄.
    let receipt = push(
        s,
        "emergency.disaster_victim",
        &victim,
        Some(json!({ "disaster": "flood", "house_damaged": true })),
    )
    .await?;
    assert_eq!(receipt["matched"], true, "{receipt}");
    let w = newest(s).await?;
    assert_eq!(w["rule"], "disaster_victim", "{w}");
    assert_eq!(w["tier"], "emergency", "{w}");
    assert_eq!(w["township"], XUZHUANG, "{w}");
    assert_eq!(w["state"], "open", "{w}");
    assert_eq!(
        t(&w["first_contact_due_at"]) - t(&w["created_at"]),
        time::Duration::hours(2),
        "{w}"
    );
    // Another township's caseworker does not see it.
    let (status, other) = s.get("caseworker-other", "/v1/warnings").await?;
    assert_eq!(status, 200, "{other}");
    assert!(
        !other["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["id"] == w["id"]),
        "{other}"
    );

    // Health cannot push on emergency management's behalf (Cedar: its own endpoint only), even
    // with a correctly signed body.
    let mut e = event("emergency.disaster_victim", &victim);
    e.details = json!({ "disaster": "flood", "house_damaged": false })
        .as_object()
        .cloned()
        .unwrap_or_default();
    let (status, b) = s
        .post(
            "dept-health",
            "/v1/events",
            &sign(s.env.path(), "emergency", e),
        )
        .await?;
    assert_eq!(status, 403, "{b}");

    // Emergency management cannot push a kind its entry does not list.
    let mut e = event("health.hospitalisation", &victim);
    e.department = "emergency".into();
    e.kind = "emergency.hospitalisation".into();
    let (status, b) = s
        .post(
            "dept-emergency",
            "/v1/events",
            &sign(s.env.path(), "emergency", e),
        )
        .await?;
    assert_eq!(
        (
            status,
            b["error"]["code"].as_str(),
            b["error"]["field"].as_str()
        ),
        (422, Some("unknown_kind"), Some("event.kind")),
        "{b}"
    );
    Ok(())
}

#[tokio::test]
async fn a_department_added_as_data_pushes_disaster_victims_on_sqlite() -> anyhow::Result<()> {
    let s = setup_with(|t| t).await?;
    disaster_victims_raise_emergency_warnings(&s).await?;
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_department_added_as_data_pushes_disaster_victims_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    disaster_victims_raise_emergency_warnings(&s).await?;
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}
