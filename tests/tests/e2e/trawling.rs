//! Anti-trawling (issue 10, finding 2): the caps count people, not applicants, per caseworker identity,
//! and survive a restart. Over real mTLS with the seven simulated departments:
//! - the reported attack (one applicant and 29 "other" people per request) is refused by the
//!   household-size rules of `policies/policies/trawling.cedar` before any department, civil affairs
//!   included, is asked, logged as a denied request with the deciding policies, and alerted;
//! - with households that satisfy those rules, every member counts as a person and the
//!   distinct-people cap refuses with `people_limit`;
//! - the counters are in the hub's database: a new hub on the same SQLite file, or the same
//!   PostgreSQL database, refuses the next new person;
//! - emergency checks without a letter are capped per day, with an alert metric;
//! - concurrent lookups of one caseworker never get past a cap, on either backend.

use connectors::sim::population::Population;
use hub::ratelimit::{Lookup, RateLimitConfig, RateLimits};
use hub::store::Db;
use hub_tests::{PgTestDb, TestEnv, TestHub};
use schemas::{Department, Household};
use serde_json::{Value, json};

use crate::handshake::metric;
use crate::verification::{Setup, XUZHUANG, ids, registration_checks, verification};

/// `count` 许庄街道 households of two or more members with no planted awkward case.
pub(crate) fn plain_households(population: &Population, count: usize) -> Vec<Household> {
    let hh: Vec<Household> = population
        .households()
        .iter()
        .filter(|h| {
            h.township_code().as_str() == XUZHUANG && h.members.len() >= 2 && h.cases.is_empty()
        })
        .take(count)
        .map(|h| population.household_declaration(h.id))
        .collect();
    assert_eq!(hh.len(), count, "not enough plain households in 370811002");
    hh
}

/// Departments first; then the hub, whose config gets `rate_limits` (a `[rate_limits]` body) and
/// `edit`, both chosen knowing the population.
async fn start(
    rate_limits: impl Fn(&Population) -> String,
    edit: impl Fn(String) -> String,
) -> anyhow::Result<Setup> {
    hub_tests::init_test_logging();
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let section = rate_limits(&deps.population);
    let config = env.config(|t| format!("{}\n[rate_limits]\n{section}\n", edit(t)))?;
    let hub = TestHub::start(config).await?;
    Ok(Setup { env, deps, hub })
}

/// Stop the hub and start a new one from the same config file (same database).
async fn restart(s: Setup) -> anyhow::Result<Setup> {
    let Setup { env, deps, hub } = s;
    hub.stop().await;
    let hub = TestHub::start(env.config(|t| t)?).await?;
    Ok(Setup { env, deps, hub })
}

/// The access-log entries of a case (the auditor's search), as JSON.
async fn entries(s: &Setup, case_ref: &str) -> anyhow::Result<Vec<Value>> {
    let (status, body) = s
        .post(
            "auditor",
            "/v1/log/search",
            &json!({ "case_ref": case_ref }),
        )
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|f| f["entry"].clone())
        .collect())
}

/// The case's log is exactly one denied `verification_requested` entry, decided by `policy`.
async fn denied_by(s: &Setup, case_ref: &str, policy: &str) -> anyhow::Result<()> {
    let log = entries(s, case_ref).await?;
    assert_eq!(log.len(), 1, "{case_ref}: {log:?}");
    let e = &log[0];
    assert_eq!(e["action"], "verification_requested", "{e}");
    assert_eq!(e["decision"]["effect"], "deny", "{e}");
    assert_eq!(e["outcome"], "denied", "{e}");
    assert!(
        e["decision"]["policy_ids"]
            .as_array()
            .expect("policy ids")
            .iter()
            .any(|p| p == policy),
        "{case_ref}: expected {policy} in {e}"
    );
    Ok(())
}

/// POST a verification; the status, `Retry-After` (if any) and body.
async fn request(s: &Setup, body: &Value) -> anyhow::Result<(u16, Option<u64>, Value)> {
    let r = s
        .env
        .http("caseworker")?
        .post(s.hub.url("/v1/verifications"))
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = r.text().await?;
    Ok((
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A 低保 check of `h` under a letter recorded for it.
async fn dibao(
    s: &Setup,
    h: &Household,
    case_ref: &str,
) -> anyhow::Result<(u16, Option<u64>, Value)> {
    let auth = s
        .record_letter("caseworker", h, &["dibao_application"])
        .await?;
    request(
        s,
        &verification(h, "dibao_application", case_ref, "normal", Some(&auth)),
    )
    .await
}

/// How many queries every department has received (civil affairs' registration checks included).
fn all_queries(s: &Setup) -> usize {
    Department::ALL
        .iter()
        .map(|d| s.deps.handles[d].queries().len())
        .sum()
}

/// Asserts a 429 with `Retry-After` and the code.
fn assert_limited(got: &(u16, Option<u64>, Value), code: &str) {
    let (status, retry, body) = got;
    assert_eq!(*status, 429, "{body}");
    assert!(retry.is_some_and(|r| r >= 1), "Retry-After: {retry:?}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

fn alerts_series(pattern: &str) -> String {
    format!("hub_trawling_alerts_total{{pattern=\"{pattern}\"}}")
}

/// The finding as reported: five requests, each one applicant and up to 29 people as
/// `relation: other` (136 distinct people here; the first request is everyone of the caseworker's
/// own township, which the old hub checked in full), looked up without an alert. Now each is
/// refused (403) by the household-size rules at the first decision: no department, civil affairs
/// included, is asked; each refusal is a denied log entry naming the deciding policies, and an
/// alert.
#[tokio::test]
async fn a_household_padded_with_unrelated_people_is_refused_before_anyone_is_asked()
-> anyhow::Result<()> {
    let s = start(|_| String::new(), |t| t).await?;
    // The first request packs everyone registered in the caseworker's own township (whom the old
    // hub checked in full, 200); the other four draw 30 people each from the whole population.
    let pop = &s.deps.population;
    let local: Vec<schemas::Member> = pop
        .households()
        .iter()
        .filter(|h| h.township_code().as_str() == XUZHUANG && h.cases.is_empty())
        .flat_map(|h| pop.household_declaration(h.id).members)
        .take(30)
        .collect();
    assert!(local.len() > 12, "too few people in 370811002");
    let elsewhere: Vec<schemas::Member> = pop
        .households()
        .iter()
        .flat_map(|h| pop.household_declaration(h.id).members)
        .filter(|m| !local.iter().any(|l| l.resident_id == m.resident_id))
        .take(120)
        .collect();
    assert_eq!(elsewhere.len(), 120, "the demo population is too small");
    let requests: Vec<&[schemas::Member]> = std::iter::once(&local[..])
        .chain(elsewhere.chunks(30))
        .collect();
    let before = metric(s.hub.admin_addr, &alerts_series("household_members")).await?;
    for (i, people) in requests.iter().enumerate() {
        let members: Vec<Value> = people
            .iter()
            .enumerate()
            .map(|(j, m)| {
                json!({
                    "resident_id": m.resident_id.as_str(),
                    "name": m.name,
                    "relation": if j == 0 { "applicant" } else { "other" },
                })
            })
            .collect();
        let body = json!({
            "household": { "registered_division": XUZHUANG, "members": members },
            "purpose": "temporary_assistance",
            "case_ref": format!("case-trawl-{i}"),
            "urgency": "emergency",
        });
        let (status, _, refusal) = request(&s, &body).await?;
        assert_eq!(status, 403, "request {i}: {}", refusal["error"]);
        let message = refusal["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("12") && message.contains("unrelated"),
            "the reason names the rules: {message}"
        );
        for m in people.iter() {
            assert!(!refusal.to_string().contains(m.resident_id.as_str()));
        }
        denied_by(
            &s,
            &format!("case-trawl-{i}"),
            "household-at-most-12-members",
        )
        .await?;
        denied_by(
            &s,
            &format!("case-trawl-{i}"),
            "household-at-most-2-unrelated",
        )
        .await?;
    }
    assert_eq!(registration_checks(&s.deps), 0, "civil affairs was asked");
    assert_eq!(all_queries(&s), 0, "a department was asked");
    let after = metric(s.hub.admin_addr, &alerts_series("household_members")).await?;
    assert!(after >= before + 5.0, "alerts: {before} -> {after}");

    // Three "other" people in an otherwise ordinary household are refused by the second rule alone.
    let mut h = plain_households(&s.deps.population, 1).remove(0);
    let known = ids(&h);
    let extra: Vec<schemas::Member> = elsewhere
        .iter()
        .filter(|m| !known.iter().any(|k| k == m.resident_id.as_str()))
        .take(3)
        .map(|m| schemas::Member {
            relation: schemas::Relation::Other,
            ..m.clone()
        })
        .collect();
    h.members.extend(extra);
    let body = verification(
        &h,
        "temporary_assistance",
        "case-trawl-3-other",
        "emergency",
        None,
    );
    let (status, _, refusal) = request(&s, &body).await?;
    assert_eq!(status, 403, "{refusal}");
    denied_by(&s, "case-trawl-3-other", "household-at-most-2-unrelated").await?;
    assert_eq!(all_queries(&s), 0, "a department was asked");
    s.stop().await;
    Ok(())
}

/// With households the rules accept, every member is a person looked up: the distinct-people cap
/// counts them across requests (the same people again are not new) and refuses with
/// `people_limit` once crossed, before civil affairs is asked, logged as a denied request.
#[tokio::test]
async fn distinct_people_are_counted_across_requests_and_capped() -> anyhow::Result<()> {
    let s = start(
        |pop| {
            let hh = plain_households(pop, 2);
            let cap = hh[0].members.len() + hh[1].members.len();
            format!("households_per_hour = 3\npeople_per_hour = {cap}")
        },
        |t| t,
    )
    .await?;
    let hh = plain_households(&s.deps.population, 3);
    for (i, h) in hh.iter().take(2).enumerate() {
        let (status, _, report) = dibao(&s, h, &format!("case-people-{i}")).await?;
        assert_eq!(status, 200, "household {i}: {report}");
    }
    let asked = all_queries(&s);
    let refused = dibao(&s, &hh[2], "case-people-2").await?;
    assert_limited(&refused, "people_limit");
    assert_eq!(
        all_queries(&s),
        asked,
        "nobody is asked about a refused household"
    );
    denied_by(&s, "case-people-2", "hub-people-limit").await?;
    // The same people again are not new people.
    let (status, _, report) = dibao(&s, &hh[0], "case-people-0-again").await?;
    assert_eq!(status, 200, "{report}");
    // A household of the same applicant with one new member is a new person: refused.
    let mut grown = hh[0].clone();
    grown.members.push(hh[2].members[1].clone());
    grown.members.last_mut().expect("member").relation = schemas::Relation::Other;
    assert_limited(
        &dibao(&s, &grown, "case-people-grown").await?,
        "people_limit",
    );
    s.stop().await;
    Ok(())
}

/// Fill the distinct-people cap, restart the hub on the same database, and the next new person is
/// still refused; known people are still fine.
async fn counters_survive_a_restart(edit: impl Fn(String) -> String) -> anyhow::Result<Setup> {
    let s = start(
        |pop| {
            let hh = plain_households(pop, 2);
            let cap = hh[0].members.len() + hh[1].members.len();
            format!("households_per_hour = 3\npeople_per_hour = {cap}")
        },
        edit,
    )
    .await?;
    let hh = plain_households(&s.deps.population, 3);
    for (i, h) in hh.iter().take(2).enumerate() {
        let (status, _, report) = dibao(&s, h, &format!("case-restart-{i}")).await?;
        assert_eq!(status, 200, "household {i}: {report}");
    }
    let s = restart(s).await?;
    let asked = all_queries(&s);
    assert_limited(&dibao(&s, &hh[2], "case-restart-2").await?, "people_limit");
    assert_eq!(all_queries(&s), asked);
    denied_by(&s, "case-restart-2", "hub-people-limit").await?;
    let (status, _, report) = dibao(&s, &hh[1], "case-restart-1-again").await?;
    assert_eq!(status, 200, "{report}");
    Ok(s)
}

#[tokio::test]
async fn the_counters_survive_a_restart_on_sqlite() -> anyhow::Result<()> {
    let s = counters_survive_a_restart(|t| t).await?;
    assert!(
        std::fs::read_to_string(s.env.config_path())?.contains("sqlite://hub.db"),
        "the hub must run on SQLite in this test"
    );
    s.stop().await;
    Ok(())
}

/// The same on PostgreSQL; the table holds identity URIs, kinds and pseudonyms, never a resident ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_survive_a_restart_on_postgresql() -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = counters_survive_a_restart(move |t| t.replace("sqlite://hub.db", &url)).await?;
    assert!(
        std::fs::read_to_string(s.env.config_path())?.contains("postgres://"),
        "the hub must run on PostgreSQL in this test"
    );
    let mut conn = sqlx::PgConnection::connect(&pg.url).await?;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT principal, kind, key FROM lookups")
            .fetch_all(&mut conn)
            .await?;
    conn.close().await?;
    let hh = plain_households(&s.deps.population, 3);
    let people: usize = hh[..2].iter().map(|h| h.members.len()).sum();
    assert_eq!(rows.iter().filter(|r| r.1 == "person").count(), people);
    assert_eq!(rows.iter().filter(|r| r.1 == "household").count(), 2);
    for (principal, _, key) in &rows {
        assert!(
            principal.starts_with("spiffe://") && principal.ends_with("/370811002/cw-xuzhuang-01"),
            "the key is the full identity URI: {principal}"
        );
        for h in &hh {
            for id in ids(h) {
                assert!(!key.contains(&id) && !principal.contains(&id));
            }
        }
    }
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}

/// Emergency and urgent checks without a letter are capped together per caseworker per day (429
/// `emergency_limit`, logged, alerted); checks under a letter are not counted against that cap.
#[tokio::test]
async fn letterless_emergency_checks_are_capped_per_day_with_an_alert() -> anyhow::Result<()> {
    let s = start(|_| "emergency_without_letter_per_day = 2".into(), |t| t).await?;
    let hh = plain_households(&s.deps.population, 3);
    let before = metric(s.hub.admin_addr, &alerts_series("emergency_without_letter")).await?;
    // One emergency (2 h) and one urgent (24 h) letterless check: both count.
    for (i, (h, urgency)) in hh.iter().zip(["emergency", "urgent"]).enumerate() {
        let body = verification(
            h,
            "temporary_assistance",
            &format!("case-em-{i}"),
            urgency,
            None,
        );
        let (status, _, report) = request(&s, &body).await?;
        assert_eq!(status, 200, "{urgency} {i}: {report}");
        assert_eq!(report["emergency_without_letter"], true);
    }
    let asked = all_queries(&s);
    let third = verification(&hh[2], "temporary_assistance", "case-em-2", "urgent", None);
    let refused = request(&s, &third).await?;
    assert_limited(&refused, "emergency_limit");
    assert!(
        refused.2["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("without an authorization letter"),
        "{}",
        refused.2
    );
    assert_eq!(
        all_queries(&s),
        asked,
        "nobody is asked about a refused check"
    );
    denied_by(&s, "case-em-2", "hub-emergency-limit").await?;
    let after = metric(s.hub.admin_addr, &alerts_series("emergency_without_letter")).await?;
    assert!(after >= before + 1.0, "alerts: {before} -> {after}");
    // The same household under a letter is not an emergency without a letter.
    let (status, _, report) = dibao(&s, &hh[2], "case-em-letter").await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["emergency_without_letter"], false);
    s.stop().await;
    Ok(())
}

/// Many lookups of one caseworker at once: exactly the cap gets through, on SQLite and on
/// PostgreSQL (the transaction is serialized per caseworker), and the refused leave no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_never_get_past_a_cap() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let sqlite = hub::store::sqlite::SqliteStore::connect(&url, 8).await?;
    concurrent(Db::Sqlite(sqlite.pool().clone())).await?;
    let pg = PgTestDb::create().await?;
    let store = hub::store::postgres::PgStore::connect(&pg.url, 8).await?;
    concurrent(Db::Postgres(store.pool().clone())).await?;
    store.pool().close().await;
    pg.drop_db().await?;
    Ok(())
}

async fn concurrent(db: Db) -> anyhow::Result<()> {
    const CAP: u32 = 10;
    const TRIES: usize = 40;
    let limits = RateLimits::new(&RateLimitConfig {
        households_per_hour: 1000,
        people_per_hour: 1000,
        emergency_without_letter_per_day: CAP,
        ..RateLimitConfig::default()
    });
    let principal = "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-race";
    let mut tasks = Vec::new();
    for i in 0..TRIES {
        let (limits, db) = (limits.clone(), db.clone());
        tasks.push(tokio::spawn(async move {
            // Nothing shared between the requests but the caseworker: no row lock serializes them.
            let (vid, household) = (format!("v-{i}"), format!("h-{i}"));
            let people = vec![format!("p-{i}")];
            let lookup = Lookup {
                principal_uri: principal,
                verification_id: &vid,
                household: &household,
                people: &people,
                emergency_without_letter: true,
            };
            limits.note_lookup(&db, &lookup).await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await??.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, CAP as usize, "exactly the cap gets through");
    let since = hub::store::lookups::Since {
        households: 0,
        people: 0,
        emergencies: 0,
    };
    let counts = hub::store::lookups::counts(&db, principal, since).await?;
    assert_eq!(counts.emergencies.count, u64::from(CAP));
    Ok(())
}
