//! Verifications end to end (issue 6, first increment; issue 5 policy acceptance): a hub wired over
//! real mTLS to the seven simulated departments, driven with the demo identities and the demo
//! population's households in 许庄街道 (370811002) and 370811005.

use std::collections::BTreeMap;

use connectors::adapter::server::QueryRecord;
use connectors::sim::{Fault, SimDepartmentHandle};
use hub::demo::DemoDepartments;
use hub_tests::{TestEnv, TestHub};
use schemas::{Department, FactKind, Household, Purpose};
use serde_json::{Value, json};

pub(crate) const XUZHUANG: &str = "370811002";
pub(crate) const OTHER_TOWNSHIP: &str = "370811005";

pub(crate) struct Setup {
    pub(crate) env: TestEnv,
    pub(crate) deps: DemoDepartments,
    pub(crate) hub: TestHub,
}

/// Departments first, then the hub built with their `[departments]` section and `extra` appended.
pub(crate) async fn setup(extra: &str) -> anyhow::Result<Setup> {
    let extra = extra.to_owned();
    setup_with(move |t| format!("{t}\n{extra}\n")).await
}

/// Departments first, then the hub built from the config text after `edit`.
pub(crate) async fn setup_with(edit: impl Fn(String) -> String) -> anyhow::Result<Setup> {
    hub_tests::init_test_logging();
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let config = env.config(edit)?;
    let hub = TestHub::start(config).await?;
    Ok(Setup { env, deps, hub })
}

/// The fact queries a simulated department received, leaving out the hub's registration checks
/// (户籍核验: `civil_affairs.registered_division` alone, asked of civil affairs before any other
/// department).
/// Commits of the access log so far (each batch transaction stores one checkpoint), read from the
/// hub's database (`sqlite://…` or `postgres://…`).
pub(crate) async fn log_commits(db_url: &str) -> anyhow::Result<i64> {
    use sqlx::Connection as _;
    let sql = "SELECT COUNT(*) FROM log_checkpoints";
    let (n,): (i64,) = if db_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(db_url).await?;
        let n = sqlx::query_as(sql).fetch_one(&mut c).await?;
        c.close().await?;
        n
    } else {
        let mut c = sqlx::SqliteConnection::connect(db_url).await?;
        let n = sqlx::query_as(sql).fetch_one(&mut c).await?;
        c.close().await?;
        n
    };
    Ok(n)
}

pub(crate) fn fact_queries(h: &SimDepartmentHandle) -> Vec<QueryRecord> {
    h.queries()
        .into_iter()
        .filter(|q| q.fact_kinds != [FactKind::RegisteredDivision])
        .collect()
}

/// How many fact queries (not registration checks) a simulated department received.
pub(crate) fn fact_query_count(h: &SimDepartmentHandle) -> u64 {
    fact_queries(h).len() as u64
}

/// How many registration checks civil affairs received.
pub(crate) fn registration_checks(deps: &DemoDepartments) -> usize {
    deps.handles[&Department::CivilAffairs]
        .queries()
        .iter()
        .filter(|q| q.fact_kinds == [FactKind::RegisteredDivision])
        .count()
}

pub(crate) fn households(deps: &DemoDepartments, township: &str) -> Vec<Household> {
    deps.population
        .households()
        .iter()
        .filter(|h| h.township_code().as_str() == township)
        .map(|h| deps.population.household_declaration(h.id))
        .collect()
}

pub(crate) fn ids(h: &Household) -> Vec<String> {
    h.members
        .iter()
        .map(|m| m.resident_id.as_str().to_owned())
        .collect()
}

pub(crate) fn household_json(h: &Household) -> Value {
    json!({
        "registered_division": h.registered_division.as_str(),
        "members": h.members.iter().map(|m| json!({
            "resident_id": m.resident_id.as_str(),
            "name": m.name,
            "relation": m.relation.code(),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn verification(
    h: &Household,
    purpose: &str,
    case_ref: &str,
    urgency: &str,
    auth: Option<&str>,
) -> Value {
    let mut v = json!({
        "household": household_json(h),
        "purpose": purpose,
        "case_ref": case_ref,
        "urgency": urgency,
    });
    if let Some(a) = auth {
        v["authorization_id"] = json!(a);
    }
    v
}

/// The date `days` from today (a letter's `valid_until`; at most a year ahead is accepted).
pub(crate) fn in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

/// A document hash no other letter has (each scanned letter is recorded once).
pub(crate) fn fresh_sha256() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub(crate) fn letter(h: &Household, purposes: &[&str]) -> Value {
    let ids = ids(h);
    json!({
        "registered_division": h.registered_division.as_str(),
        "signed_by": [h.applicant().map(|a| a.resident_id.as_str()).unwrap_or(&ids[0])],
        "members": ids,
        "purposes": purposes,
        "valid_until": crate::verification::in_days(30),
        "letter_sha256": crate::verification::fresh_sha256(),
    })
}

impl Setup {
    pub(crate) async fn post(
        &self,
        who: &str,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let r = self
            .env
            .http(who)?
            .post(self.hub.url(path))
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// `GET path` as `who`: the status and the JSON body (or the text, when it is not JSON).
    pub(crate) async fn get(&self, who: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self.env.http(who)?.get(self.hub.url(path)).send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Record a 低保 letter for `h` as `who`, then request a normal 低保 verification citing it.
    pub(crate) async fn verify_dibao(
        &self,
        who: &str,
        h: &Household,
        case_ref: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let auth = self.record_letter(who, h, &["dibao_application"]).await?;
        self.post(
            who,
            "/v1/verifications",
            &verification(h, "dibao_application", case_ref, "normal", Some(&auth)),
        )
        .await
    }

    /// Record a letter for `h` as `who`; returns its id.
    pub(crate) async fn record_letter(
        &self,
        who: &str,
        h: &Household,
        purposes: &[&str],
    ) -> anyhow::Result<String> {
        let (status, body) = self
            .post(who, "/v1/authorizations", &letter(h, purposes))
            .await?;
        assert_eq!(status, 201, "{body}");
        Ok(body["id"].as_str().expect("id").to_owned())
    }

    /// The access-log entries of a case, via the auditor's log search: (action, effect, outcome,
    /// departments).
    pub(crate) async fn log_of_case(
        &self,
        case_ref: &str,
    ) -> anyhow::Result<Vec<(String, String, String, Vec<String>)>> {
        let (status, body) = self
            .post("auditor", "/v1/log/search", &json!({"case_ref": case_ref}))
            .await?;
        assert_eq!(status, 200, "{body}");
        Ok(body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|f| {
                let e = &f["entry"];
                (
                    e["action"].as_str().unwrap_or_default().to_owned(),
                    e["decision"]["effect"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    e["outcome"].as_str().unwrap_or_default().to_owned(),
                    e["departments"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|d| d.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            })
            .collect())
    }

    pub(crate) async fn stop(self) {
        self.hub.stop().await;
        for (_, h) in self.deps.handles {
            h.shutdown().await;
        }
    }
}

pub(crate) fn plan(purpose: Purpose) -> BTreeMap<Department, Vec<FactKind>> {
    policies::PolicyEngine::load(policies::PolicyEngine::shipped_dir())
        .expect("shipped policies load")
        .profiles()
        .plan(purpose)
}

fn sorted(mut v: Vec<FactKind>) -> Vec<String> {
    let mut s: Vec<String> = v.drain(..).map(|k| k.to_string()).collect();
    s.sort();
    s
}

pub(crate) fn status_of(report: &Value, d: &str) -> String {
    report["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .find(|x| x["department"] == d)
        .map(|x| x["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| "missing".into())
}

/// (a) + (h): a full check of a 许庄街道 household; every department asked exactly what the purpose
/// profile plans for it; one access-log entry for the request and one per department query.
#[tokio::test]
async fn caseworker_verifies_a_household_and_each_department_gets_only_its_planned_kinds()
-> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = hh
        .iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");
    let db = format!("sqlite://{}", s.env.path().join("hub.db").display());
    let auth = s
        .record_letter("caseworker", h, &["dibao_application"])
        .await?;
    let commits = log_commits(&db).await?;
    let (status, report) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-a-1", "normal", Some(&auth)),
        )
        .await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        log_commits(&db).await? - commits,
        2,
        "the registration and request entries in one, the 7 department entries and the report in one"
    );
    let text = report.to_string();
    for id in ids(h) {
        assert!(
            !text.contains(&id),
            "the report must not carry resident IDs"
        );
    }
    assert_eq!(
        registration_checks(&s.deps),
        1,
        "the registration is asked once, alone"
    );
    let planned = plan(Purpose::DibaoApplication);
    assert_eq!(planned.len(), 7, "dibao asks all seven departments");
    assert_eq!(report["departments"].as_array().map(Vec::len), Some(7));
    for d in Department::ALL {
        assert_eq!(status_of(&report, d.code()), "answered", "{d}: {report}");
        let queries = fact_queries(&s.deps.handles[&d]);
        assert_eq!(queries.len(), 1, "{d}: one query for the whole household");
        assert_eq!(
            sorted(queries[0].fact_kinds.clone()),
            sorted(planned[&d].clone()),
            "{d}: exactly the planned fact kinds"
        );
        assert_eq!(
            queries[0].subject_refs.len(),
            h.members.len(),
            "{d}: all members at once"
        );
    }
    let members = report["members"].as_array().expect("members");
    assert_eq!(members.len(), h.members.len());
    let facts: usize = members
        .iter()
        .map(|m| m["facts"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(facts > 0, "{report}");
    for m in members {
        for f in m["facts"].as_array().expect("facts") {
            assert!(f["department"].is_string() && f["answered_at"].is_string());
            assert!(
                f["key_id"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("ed25519:")
            );
        }
    }

    // Signed by the hub with its published key; any change breaks the signature.
    let r = s
        .env
        .http("auditor")?
        .get(s.hub.url("/v1/report-key"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let key: Value = r.json().await?;
    let public = hex::decode(key["public_key"].as_str().expect("public_key"))?;
    assert_eq!(report["signature"]["key_id"], key["key_id"]);
    assert_eq!(
        hub::verify::report::verify_signature(&report, &public),
        Ok(())
    );
    let mut tampered = report.clone();
    tampered["members"][0]["name"] = json!("某某");
    assert!(hub::verify::report::verify_signature(&tampered, &public).is_err());

    // Access-log receipts: each verifies for its entry against the log's key.
    let vkey = std::fs::read_to_string(s.env.path().join("log.vkey"))?;
    let log_key = hub::log::tlog::VerifierKey::parse(vkey.trim())?;
    let origin = vkey.split('+').next().unwrap_or_default().to_owned();
    let policy = hub::log::tlog::checkpoint::WitnessPolicy {
        witnesses: Vec::new(),
        quorum: 0,
    };
    let (_, found) = s
        .post(
            "auditor",
            "/v1/log/search",
            &json!({"case_ref": "case-a-1"}),
        )
        .await?;
    let found: hub::log::api::SearchResponse = serde_json::from_value(found)?;
    let mut receipts = vec![(report["log_index"].clone(), report["log_receipt"].clone())];
    for d in report["departments"].as_array().expect("departments") {
        receipts.push((d["log_index"].clone(), d["log_receipt"].clone()));
    }
    for (index, text) in receipts {
        let index = index.as_u64().expect("log_index");
        let receipt = hub::log::tlog::Receipt::parse(text.as_str().expect("log_receipt"))?;
        assert_eq!(receipt.index, index);
        let entry = found
            .entries
            .iter()
            .find(|f| f.index == index)
            .expect("the receipt's entry is in the log");
        receipt.verify(&entry.entry.encode()?, &origin, &log_key, &policy)?;
        assert!(
            receipt
                .verify(b"another entry", &origin, &log_key, &policy)
                .is_err()
        );
    }

    // The stored report, for the requester only.
    let vid = report["id"].as_str().expect("id");
    let r = s
        .env
        .http("caseworker")?
        .get(s.hub.url(&format!("/v1/verifications/{vid}")))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await?;
    assert_eq!(stored["id"], report["id"]);
    assert_eq!(stored["departments"], report["departments"]);
    assert_eq!(
        hub::verify::report::verify_signature(&stored, &public),
        Ok(())
    );
    let r = s
        .env
        .http("caseworker-other")?
        .get(s.hub.url(&format!("/v1/verifications/{vid}")))
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    // Access log: one request entry + one per department query.
    let log = s.log_of_case("case-a-1").await?;
    let requested: Vec<_> = log
        .iter()
        .filter(|e| e.0 == "verification_requested")
        .collect();
    assert_eq!(requested.len(), 1, "{log:?}");
    assert_eq!(
        (requested[0].1.as_str(), requested[0].2.as_str()),
        ("allow", "succeeded")
    );
    let mut queried: Vec<String> = log
        .iter()
        .filter(|e| e.0 == "department_queried")
        .map(|e| {
            assert_eq!(e.3.len(), 1, "one department per entry");
            assert_eq!(e.2, "succeeded");
            e.3[0].clone()
        })
        .collect();
    queried.sort();
    let mut all: Vec<String> = Department::ALL
        .iter()
        .map(|d| d.code().to_owned())
        .collect();
    all.sort();
    assert_eq!(queried, all);
    s.stop().await;
    Ok(())
}

/// (b) (c) (d) + (h): jurisdiction, auditors and department certificates; a denied attempt is one
/// log entry and no department is contacted.
#[tokio::test]
async fn roles_and_jurisdictions_are_enforced_before_any_department_is_asked() -> anyhow::Result<()>
{
    let s = setup("").await?;
    let here = households(&s.deps, XUZHUANG);
    let there = households(&s.deps, OTHER_TOWNSHIP);
    let (h1, h2) = (&here[0], &there[0]);
    let auth1 = s
        .record_letter("caseworker", h1, &["dibao_application"])
        .await?;

    // caseworker-other (370811005) may not act on a 370811002 household.
    let (status, body) = s
        .post(
            "caseworker-other",
            "/v1/verifications",
            &verification(
                h1,
                "dibao_application",
                "case-b-denied",
                "normal",
                Some(&auth1),
            ),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("无权办理其他乡镇"),
        "{body}"
    );
    let log = s.log_of_case("case-b-denied").await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].0.as_str(), log[0].1.as_str(), log[0].2.as_str()),
        ("verification_requested", "deny", "denied")
    );
    for d in Department::ALL {
        assert_eq!(s.deps.handles[&d].query_count(), 0, "{d} must not be asked");
    }
    let (status, _) = s
        .post(
            "caseworker-other",
            "/v1/authorizations",
            &letter(h1, &["dibao_application"]),
        )
        .await?;
    assert_eq!(status, 403);

    // county-officer (370811) may act on both townships.
    let auth2 = s
        .record_letter("county-officer", h2, &["dibao_application"])
        .await?;
    for (h, auth, case) in [
        (h1, &auth1, "case-b-county-1"),
        (h2, &auth2, "case-b-county-2"),
    ] {
        let (status, body) = s
            .post(
                "county-officer",
                "/v1/verifications",
                &verification(h, "dibao_application", case, "normal", Some(auth)),
            )
            .await?;
        assert_eq!(status, 200, "{case}: {body}");
        assert_eq!(body["complete"], true, "{body}");
    }

    // The auditor may search the log but not verify.
    let (status, body) = s
        .post(
            "auditor",
            "/v1/verifications",
            &verification(
                h1,
                "dibao_application",
                "case-b-auditor",
                "normal",
                Some(&auth1),
            ),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    let (status, _) = s.post("auditor", "/v1/log/search", &json!({})).await?;
    assert_eq!(status, 200);

    // A department certificate may do neither.
    let (status, body) = s
        .post(
            "dept-labor",
            "/v1/verifications",
            &verification(
                h1,
                "dibao_application",
                "case-b-dept",
                "normal",
                Some(&auth1),
            ),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    let (status, body) = s
        .post(
            "dept-labor",
            "/v1/authorizations",
            &letter(h1, &["dibao_application"]),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(s.log_of_case("case-b-dept").await?.len(), 1);
    s.stop().await;
    Ok(())
}

/// (e): no letter, or one that does not cover a member → refused with the reason; an emergency
/// temporary-assistance check without a letter goes through and asks only the planned departments.
#[tokio::test]
async fn letters_are_required_except_for_emergency_temporary_assistance() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = hh
        .iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");

    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-e-1", "normal", None),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("授权书"),
        "{body}"
    );

    // A letter covering only the applicant.
    let mut partial = letter(h, &["dibao_application"]);
    partial["members"] = json!([ids(h)[0]]);
    let (status, body) = s.post("caseworker", "/v1/authorizations", &partial).await?;
    assert_eq!(status, 201, "{body}");
    let auth = body["id"].as_str().expect("id").to_owned();
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-e-2", "normal", Some(&auth)),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("members[1]"),
        "{body}"
    );

    // A letter for another purpose.
    let other = s.record_letter("caseworker", h, &["education_aid"]).await?;
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-e-3", "normal", Some(&other)),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("dibao_application"),
        "{body}"
    );
    for d in Department::ALL {
        assert_eq!(s.deps.handles[&d].query_count(), 0);
    }

    // Emergency dibao without a letter: refused; emergency temporary assistance: goes through.
    let (status, _) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-e-4", "emergency", None),
        )
        .await?;
    assert_eq!(status, 403);
    let (status, report) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "temporary_assistance", "case-e-5", "emergency", None),
        )
        .await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["emergency_without_letter"], true);
    assert!(report["letter_due_by"].is_string(), "{report}");
    let planned = plan(Purpose::TemporaryAssistance);
    for d in Department::ALL {
        let q = fact_queries(&s.deps.handles[&d]);
        match planned.get(&d) {
            Some(kinds) => {
                assert_eq!(status_of(&report, d.code()), "answered", "{d}");
                assert_eq!(q.len(), 1, "{d}");
                assert_eq!(
                    sorted(q[0].fact_kinds.clone()),
                    sorted(kinds.clone()),
                    "{d}"
                );
            }
            None => {
                assert!(
                    q.is_empty(),
                    "{d} is not in the temporary_assistance profile"
                );
                assert_eq!(status_of(&report, d.code()), "missing");
            }
        }
    }

    // The urgent (24 h) tier, like the emergency one: temporary assistance may run before the
    // letter, with the letter due within 5 working days (followed up the same way); any other
    // purpose still needs its letter first.
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-e-6", "urgent", None),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    let (status, urgent) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "temporary_assistance", "case-e-7", "urgent", None),
        )
        .await?;
    assert_eq!(status, 200, "{urgent}");
    assert_eq!(urgent["urgency"], "urgent");
    assert_eq!(urgent["emergency_without_letter"], true);
    let due = urgent["letter_due_by"].as_str().expect("letter_due_by");
    assert_eq!(urgent["letter_follow_up"]["due_by"], due, "{urgent}");
    assert_eq!(urgent["letter_follow_up"]["status"], "pending", "{urgent}");
    let vid = urgent["id"].as_str().expect("id");
    let (status, listed) = s.get("caseworker", "/v1/follow-ups").await?;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["follow_ups"]
            .as_array()
            .expect("follow_ups")
            .iter()
            .any(|f| f["verification_id"] == vid && f["due_by"] == due),
        "{listed}"
    );
    s.stop().await;
    Ok(())
}

/// Validation errors name the member and field and never echo the resident ID.
#[tokio::test]
async fn validation_errors_name_the_member_and_field() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = hh
        .iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");
    let mut body = verification(h, "dibao_application", "case-v-1", "normal", Some("x"));
    let id = ids(h)[1].clone();
    let last = id.as_bytes()[17];
    let bad = format!("{}{}", &id[..17], if last == b'0' { '1' } else { '0' });
    body["household"]["members"][1]["resident_id"] = json!(bad);
    let (status, err) = s.post("caseworker", "/v1/verifications", &body).await?;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "members[1].resident_id");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("check digit"),
        "{err}"
    );
    assert!(
        !err.to_string().contains(&bad[..17]),
        "the ID must not be echoed"
    );
    s.stop().await;
    Ok(())
}

/// (f): departments that never answer, refuse, send garbage or a bad signature are each marked; the
/// others answer, and the report comes back within the urgency's deadline.
/// The answer's `Server-Timing` names the registration check's round trip, the slowest
/// department's and the whole pipeline's, in milliseconds (what `hub-bench` subtracts to get the
/// hub's added latency): each a number ≥ 0, the slowest department at least the delay a department
/// was told to add, the registration and the slowest department within the pipeline, the pipeline
/// within what the caller waited. Nothing else in it (no resident ID, no names).
#[tokio::test]
async fn the_answer_names_the_slowest_department_in_server_timing() -> anyhow::Result<()> {
    let s = setup("").await?;
    s.deps.handles[&Department::Housing].set_fault(Fault::Delay { delay_ms: 150 });
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let auth = s
        .record_letter("caseworker", h, &["dibao_application"])
        .await?;
    let body = verification(h, "dibao_application", "case-st-1", "normal", Some(&auth));
    let started = std::time::Instant::now();
    let r = s
        .env
        .http("caseworker")?
        .post(s.hub.url("/v1/verifications"))
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let header = r
        .headers()
        .get("server-timing")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()?;
    let report: Value = r.json().await?;
    let waited_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, 200, "{report}");
    let header = header.expect("a Server-Timing header on the 200");
    let durs: BTreeMap<String, f64> = header
        .split(',')
        .map(|metric| {
            let mut parts = metric.trim().split(';');
            let name = parts.next().unwrap_or_default().to_owned();
            let dur = parts
                .find_map(|p| p.strip_prefix("dur="))
                .and_then(|d| d.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            (name, dur)
        })
        .collect();
    assert_eq!(
        durs.keys().map(String::as_str).collect::<Vec<_>>(),
        ["fanout", "registration", "verify"],
        "{header}"
    );
    for (name, dur) in &durs {
        assert!(dur.is_finite() && *dur >= 0.0, "{name}: {header}");
    }
    assert!(
        durs["fanout"] >= 150.0,
        "housing was delayed 150 ms: {header}"
    );
    assert!(
        durs["registration"] + durs["fanout"] <= durs["verify"],
        "both round trips are inside the pipeline: {header}"
    );
    assert!(
        durs["verify"] <= waited_ms,
        "the pipeline is inside what the caller waited ({waited_ms:.3} ms): {header}"
    );
    for id in ids(h) {
        assert!(!header.contains(&id), "{header}");
    }
    Ok(())
}

#[tokio::test]
async fn failing_departments_are_marked_and_the_report_comes_within_the_deadline()
-> anyhow::Result<()> {
    let s = setup_with(|t| {
        t.replace(
            "[departments]\n",
            "[departments]\ndeadline_normal_ms = 3000\n",
        )
    })
    .await?;
    s.deps.handles[&Department::Labor].set_fault(Fault::Hang);
    s.deps.handles[&Department::Housing].set_fault(Fault::Refuse {
        code: schemas::ProtocolErrorCode::Forbidden,
    });
    s.deps.handles[&Department::Health].set_fault(Fault::MalformedJson);
    s.deps.handles[&Department::Justice].set_fault(Fault::BadSignature);
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let (status, report) = s.verify_dibao("caseworker", h, "case-f-1").await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["complete"], false);
    assert_eq!(report["deadline_ms"], 3000);
    for d in Department::ALL {
        let want = match d {
            Department::Labor => "timed_out",
            Department::Housing => "refused",
            Department::Health => "malformed",
            Department::Justice => "bad_signature",
            _ => "answered",
        };
        assert_eq!(status_of(&report, d.code()), want, "{d}");
    }
    let labor = report["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .find(|x| x["department"] == "labor")
        .expect("labor");
    // Deadline respected (correctness, with slack for a loaded machine).
    assert!(
        labor["elapsed_ms"].as_u64().unwrap_or(u64::MAX) < 3000 + 2000,
        "{labor}"
    );
    let log = s.log_of_case("case-f-1").await?;
    assert!(
        log.iter()
            .any(|e| e.0 == "department_queried" && e.2 == "timed_out" && e.3 == ["labor"])
            && log.iter().any(|e| e.0 == "department_queried"
                && e.2 == "refused_by_department"
                && e.3 == ["housing"]),
        "{log:?}"
    );
    // The figures that need a missing department are not computed, and the report says why.
    let agg = &report["aggregation"];
    assert!(
        agg["household"]
            .get("monthly_income_per_capita_fen")
            .is_none(),
        "{agg}"
    );
    assert!(agg["household"].get("properties_owned").is_none(), "{agg}");
    let gaps = agg["gaps"].to_string();
    assert!(
        gaps.contains("labor gave no answer") && gaps.contains("housing gave no answer"),
        "{gaps}"
    );

    // Once the departments recover, a second check reuses only what was answered and asks the rest.
    for d in Department::ALL {
        s.deps.handles[&d].set_fault(Fault::None);
    }
    let before: BTreeMap<Department, u64> = s
        .deps
        .handles
        .iter()
        .map(|(d, h)| (*d, fact_query_count(h)))
        .collect();
    let (status, again) = s.verify_dibao("caseworker", h, "case-f-2").await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["complete"], true, "{again}");
    for d in Department::ALL {
        let failed = matches!(
            d,
            Department::Labor | Department::Housing | Department::Health | Department::Justice
        );
        let want = if failed { "answered" } else { "reused" };
        assert_eq!(status_of(&again, d.code()), want, "{d}");
        let asked = fact_query_count(&s.deps.handles[&d]) - before[&d];
        assert_eq!(asked, u64::from(failed), "{d}");
    }
    // Computed now (withheld in this view: the 低保 profile does not show contributions raw).
    assert!(
        again["aggregation"]["household"]["monthly_income_per_capita_fen"]["sources"].is_array()
    );
    s.stop().await;
    Ok(())
}

/// (g): the trawling alert — the third distinct household in the hour is refused with 429.
#[tokio::test]
async fn the_third_distinct_household_is_refused_with_household_limit() -> anyhow::Result<()> {
    let s = setup("[rate_limits]\nhouseholds_per_hour = 2\n").await?;
    let hh = households(&s.deps, XUZHUANG);
    for (i, h) in hh.iter().take(3).enumerate() {
        let auth = s
            .record_letter("caseworker", h, &["dibao_application"])
            .await?;
        let r = s
            .env
            .http("caseworker")?
            .post(s.hub.url("/v1/verifications"))
            .json(&verification(
                h,
                "dibao_application",
                &format!("case-g-{i}"),
                "normal",
                Some(&auth),
            ))
            .send()
            .await?;
        if i < 2 {
            assert_eq!(r.status(), 200, "household {i}");
        } else {
            assert_eq!(r.status(), 429);
            let retry: u64 = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("Retry-After");
            assert!(retry >= 1);
            let body: Value = r.json().await?;
            assert_eq!(body["error"]["code"], "household_limit");
        }
    }
    // The same household again is not a new one.
    let auth = s
        .record_letter("caseworker", &hh[0], &["dibao_application"])
        .await?;
    let (status, _) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(
                &hh[0],
                "dibao_application",
                "case-g-again",
                "normal",
                Some(&auth),
            ),
        )
        .await?;
    assert_eq!(status, 200);
    let log = s.log_of_case("case-g-2").await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].2, "denied");
    s.stop().await;
    Ok(())
}

/// The verification tables and queries on PostgreSQL (migration 0003, `$N` placeholders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letters_verifications_and_reports_on_postgresql() -> anyhow::Result<()> {
    let pg = hub_tests::PgTestDb::create().await?;
    let url = pg.url.clone();
    let s = setup_with(move |t| t.replace("sqlite://hub.db", &url)).await?;
    assert!(
        std::fs::read_to_string(s.env.config_path())?.contains("postgres://"),
        "the hub must run on PostgreSQL in this test"
    );
    let hh = households(&s.deps, XUZHUANG);
    let auth = s
        .record_letter("caseworker", &hh[0], &["dibao_application"])
        .await?;
    let body = verification(
        &hh[0],
        "dibao_application",
        "case-pg-1",
        "normal",
        Some(&auth),
    );
    let mut ids = Vec::new();
    let mut report = Value::Null;
    let commits = log_commits(&pg.url).await?;
    for round in 0..2 {
        let r = s
            .env
            .http("caseworker")?
            .post(s.hub.url("/v1/verifications"))
            .header("idempotency-key", "pg-key-1")
            .json(&body)
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        report = r.json().await?;
        ids.push(report["id"].clone());
        if round == 0 {
            assert_eq!(
                log_commits(&pg.url).await? - commits,
                2,
                "the department entries and the report commit together on PostgreSQL too"
            );
        }
    }
    assert_eq!(ids[0], ids[1], "one verification per Idempotency-Key");
    assert_eq!(s.deps.handles[&Department::Labor].query_count(), 1);
    assert_eq!(report["complete"], true);
    let vid = report["id"].as_str().expect("id");
    let r = s
        .env
        .http("caseworker")?
        .get(s.hub.url(&format!("/v1/verifications/{vid}")))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await?;
    assert_eq!(stored["members"], report["members"]);
    s.stop().await;
    pg.drop_db().await?;
    Ok(())
}

/// The same `Idempotency-Key` twice gives one verification: the departments are asked once and the
/// second answer is the stored report. A key reused for another request is refused; a key whose
/// request was refused can be used again.
#[tokio::test]
async fn the_same_idempotency_key_twice_gives_one_verification() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let send = |body: Value, key: &'static str| {
        let client = s.env.http("caseworker");
        let url = s.hub.url("/v1/verifications");
        async move {
            let r = client?
                .post(url)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await?;
            anyhow::Ok((status, body))
        }
    };

    // Refused without a letter: the key is given back.
    let no_letter = verification(h, "dibao_application", "case-i-0", "normal", None);
    let (status, body) = send(no_letter, "key-1").await?;
    assert_eq!(status, 403, "{body}");

    let auth = s
        .record_letter("caseworker", h, &["dibao_application"])
        .await?;
    let body = verification(h, "dibao_application", "case-i-1", "normal", Some(&auth));
    let (status, first) = send(body.clone(), "key-1").await?;
    assert_eq!(status, 200, "{first}");
    let (status, second) = send(body.clone(), "key-1").await?;
    assert_eq!(status, 200, "{second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["departments"], second["departments"]);
    for d in Department::ALL {
        assert_eq!(fact_query_count(&s.deps.handles[&d]), 1, "{d} asked once");
    }
    assert_eq!(registration_checks(&s.deps), 1, "one registration check");
    let log = s.log_of_case("case-i-1").await?;
    let requested = log
        .iter()
        .filter(|e| e.0 == "verification_requested")
        .count();
    let queried = log.iter().filter(|e| e.0 == "department_queried").count();
    assert_eq!((requested, queried), (1, 7), "{log:?}");
    assert!(log.iter().any(|e| e.0 == "report_viewed"), "{log:?}");

    // Another request under the same key.
    let other = verification(h, "dibao_application", "case-i-2", "normal", Some(&auth));
    let (status, err) = send(other, "key-1").await?;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "idempotency_key_reused");

    // A malformed key.
    let (status, err) = send(body, "key with spaces").await?;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "Idempotency-Key");
    s.stop().await;
    Ok(())
}

/// A caller that waits less than the verification takes gets 202 with the id; the verification goes
/// on and the report is then served by `GET /v1/verifications/{id}`.
#[tokio::test]
async fn a_short_wait_gives_202_and_the_report_follows() -> anyhow::Result<()> {
    let s = setup("").await?;
    s.deps.handles[&Department::Labor].set_fault(Fault::Delay { delay_ms: 1500 });
    let hh = households(&s.deps, XUZHUANG);
    let auth = s
        .record_letter("caseworker", &hh[0], &["dibao_application"])
        .await?;
    let mut body = verification(
        &hh[0],
        "dibao_application",
        "case-w-1",
        "normal",
        Some(&auth),
    );
    body["wait_ms"] = json!(100);
    let (status, accepted) = s.post("caseworker", "/v1/verifications", &body).await?;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "running");
    let vid = accepted["id"].as_str().expect("id").to_owned();
    let get = || async {
        let r = s
            .env
            .http("caseworker")?
            .get(s.hub.url(&format!("/v1/verifications/{vid}")))
            .send()
            .await?;
        let status = r.status().as_u16();
        anyhow::Ok((status, r.json::<Value>().await?))
    };
    let (status, first) = get().await?;
    assert_eq!(status, 202, "{first}");
    let mut report = Value::Null;
    for _ in 0..100 {
        let (status, body) = get().await?;
        if status == 200 {
            report = body;
            break;
        }
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(report["id"], vid.as_str(), "the report arrives");
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(status_of(&report, "labor"), "answered");
    // A wait long enough gives the report directly.
    let mut body = verification(
        &hh[0],
        "dibao_application",
        "case-w-2",
        "normal",
        Some(&auth),
    );
    body["wait_ms"] = json!(20_000);
    let (status, direct) = s.post("caseworker", "/v1/verifications", &body).await?;
    assert_eq!(status, 200, "{direct}");
    s.stop().await;
    Ok(())
}

/// Every kind of access to a report is one access-log entry each, denied attempts included; the
/// printable page names every department and never prints a resident ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_views_and_prints_are_logged_exactly_once_each() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let auth = s
        .record_letter("caseworker", h, &["dibao_application"])
        .await?;
    let (status, report) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(
                h,
                "dibao_application",
                "case-print-1",
                "normal",
                Some(&auth),
            ),
        )
        .await?;
    assert_eq!(status, 200, "{report}");
    let vid = report["id"].as_str().expect("id").to_owned();
    let get = |who: &'static str, path: String| {
        let client = s.env.http(who);
        let url = s.hub.url(&path);
        async move {
            let r = client?.get(url).send().await?;
            anyhow::Ok((
                r.status().as_u16(),
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
                r.text().await?,
            ))
        }
    };
    for _ in 0..2 {
        let (status, _, _) = get("caseworker", format!("/v1/verifications/{vid}")).await?;
        assert_eq!(status, 200);
    }
    let (status, ctype, page) = get("caseworker", format!("/v1/verifications/{vid}/print")).await?;
    assert_eq!(status, 200, "{page}");
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(page.contains("家庭经济状况核对报告") && page.contains("case-print-1"));
    // Chinese names, not wire codes, on a page a caseworker reads.
    assert!(page.contains("<td>常规</td>"), "urgency in Chinese: {page}");
    assert!(!page.contains("(dibao_application)") && !page.contains("(temporary_assistance)"));
    for d in Department::ALL {
        assert!(page.contains(d.name_zh()), "the page names {d}");
    }
    for id in ids(h) {
        assert!(
            !page.contains(&id),
            "the printed page never carries a resident ID"
        );
    }
    // Another township's caseworker is refused, and that attempt is logged too.
    let (status, _, _) = get("caseworker-other", format!("/v1/verifications/{vid}/print")).await?;
    assert_eq!(status, 403);

    let log = s.log_of_case("case-print-1").await?;
    let count = |action: &str, effect: &str| {
        log.iter()
            .filter(|e| e.0 == action && e.1 == effect)
            .count()
    };
    assert_eq!(count("verification_requested", "allow"), 1, "{log:?}");
    assert_eq!(count("department_queried", "allow"), 7, "{log:?}");
    assert_eq!(count("report_viewed", "allow"), 2, "{log:?}");
    assert_eq!(count("report_printed", "allow"), 1, "{log:?}");
    assert_eq!(count("report_printed", "deny"), 1, "{log:?}");
    // Recording the letter was one entry too (searched by actor: letters carry no case reference).
    let (status, body) = s
        .post(
            "auditor",
            "/v1/log/search",
            &serde_json::json!({"actor": "cw-xuzhuang-01"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let letters = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["entry"]["action"] == "authorization_recorded")
        .count();
    assert_eq!(letters, 1, "{body}");
    s.stop().await;
    Ok(())
}

/// PIPL minimisation in the report: raw figures only for the kinds the purpose's profile marks
/// raw-visible (低保: wages, pension, benefits, properties, floor area); every other raw figure is
/// withheld; categorical indications (illness yes/no, statuses) stay. The stored report is complete;
/// every view is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_figures_are_shown_only_where_the_purpose_needs_them() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = hh
        .iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");
    let (status, report) = s.verify_dibao("caseworker", h, "case-raw-1").await?;
    assert_eq!(status, 200, "{report}");
    let engine = policies::PolicyEngine::load(policies::PolicyEngine::shipped_dir())?;
    let check = |report: &serde_json::Value| {
        let mut shown = 0;
        let mut withheld = 0;
        for m in report["members"].as_array().expect("members") {
            for f in m["facts"].as_array().expect("facts") {
                let kind: FactKind = serde_json::from_value(f["kind"].clone()).expect("kind");
                let raw_figure = matches!(
                    f["value"]["type"].as_str(),
                    Some("count" | "money_fen" | "area_dm2" | "days" | "monthly_fen")
                );
                if engine
                    .profiles()
                    .raw_visible(Purpose::DibaoApplication, kind)
                {
                    assert!(
                        f.get("value").is_some(),
                        "{kind:?} is raw-visible for 低保: {f}"
                    );
                    shown += 1;
                } else if f.get("value").is_none() {
                    assert!(
                        f["withheld"].as_str().is_some_and(|w| w.contains("不显示")),
                        "{f}"
                    );
                    withheld += 1;
                } else {
                    assert!(
                        !raw_figure,
                        "{kind:?} is a raw figure and not raw-visible for 低保: {f}"
                    );
                }
            }
        }
        (shown, withheld)
    };
    let (shown, withheld) = check(&report);
    assert!(shown > 0, "wages and property figures are shown");
    assert!(
        withheld > 0,
        "e.g. out-of-pocket medical expenses and provident fund balances are withheld"
    );
    // The stored report serves the same view.
    let vid = report["id"].as_str().expect("id");
    let stored: serde_json::Value = s
        .env
        .http("caseworker")?
        .get(s.hub.url(&format!("/v1/verifications/{vid}")))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(check(&stored), (shown, withheld));
    s.stop().await;
    Ok(())
}

/// `hub client verify` drives the demo's sample request end to end (letter, verification, summary,
/// report file, printable page) over mTLS with the caseworker's certificate; another township's
/// caseworker gets the policy's refusal and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_client_verifies_a_sample_and_prints_the_report() -> anyhow::Result<()> {
    let s = setup("").await?;
    let dir = s.env.path().to_owned();
    let url = format!("https://localhost:{}", s.hub.addr.port());
    let run = move |who: &str, args: Vec<String>| {
        let pki = dir.join("pki");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hub-e2e"));
        cmd.arg("client")
            .arg(&args[0])
            .args(["--url", &url])
            .arg("--cacert")
            .arg(pki.join("ca.pem"))
            .arg("--cert")
            .arg(pki.join(format!("{who}.pem")))
            .arg("--key")
            .arg(pki.join(format!("{who}.key")))
            .args(&args[1..]);
        cmd
    };
    let samples = s.env.path().join("samples");
    let report_file = s.env.path().join("report.json");
    let mut ok = run(
        "caseworker",
        vec![
            "verify".into(),
            samples.join("xuzhuang-dibao.json").display().to_string(),
            "--letter".into(),
            samples
                .join("xuzhuang-dibao.letter.json")
                .display()
                .to_string(),
            "--out".into(),
            report_file.display().to_string(),
        ],
    );
    let out = tokio::task::spawn_blocking(move || ok.output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("授权书已登记") && stdout.contains("民政"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("已答复 / answered").count(), 7, "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file)?)?;
    assert_eq!(report["departments"].as_array().map(Vec::len), Some(7));

    let page = s.env.path().join("report.html");
    let mut print = run(
        "caseworker",
        vec![
            "report".into(),
            report["id"].as_str().expect("id").to_owned(),
            "--print".into(),
            page.display().to_string(),
        ],
    );
    let out = tokio::task::spawn_blocking(move || print.output()).await??;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&page)?.contains("家庭经济状况核对报告"));

    assert!(stdout.contains("家庭月人均收入"), "{stdout}");
    assert!(stdout.contains("提示 / indication"), "{stdout}");

    // The emergency sample without a letter, then its follow-up: listed as due, then attached.
    let run_ok = |mut cmd: std::process::Command| async move {
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok::<String, anyhow::Error>(stdout)
    };
    let emergency = s.env.path().join("emergency.json");
    let stdout = run_ok(run(
        "caseworker",
        vec![
            "verify".into(),
            samples
                .join("xuzhuang-emergency.json")
                .display()
                .to_string(),
            "--out".into(),
            emergency.display().to_string(),
        ],
    ))
    .await?;
    assert!(stdout.contains("letter due by"), "{stdout}");
    let eid = serde_json::from_slice::<Value>(&std::fs::read(&emergency)?)?["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stdout = run_ok(run("caseworker", vec!["follow-ups".into()])).await?;
    assert!(
        stdout.contains(&eid) && stdout.contains("待补交"),
        "{stdout}"
    );
    let stdout = run_ok(run(
        "caseworker",
        vec![
            "attach-letter".into(),
            eid.clone(),
            "--letter".into(),
            samples
                .join("xuzhuang-emergency.letter.json")
                .display()
                .to_string(),
        ],
    ))
    .await?;
    assert!(stdout.contains("授权书已补交"), "{stdout}");
    let stdout = run_ok(run("caseworker", vec!["follow-ups".into()])).await?;
    assert!(!stdout.contains(&eid), "{stdout}");

    // Another township's caseworker: refused by policy, non-zero exit, the reason on stderr.
    let mut refused = run(
        "caseworker-other",
        vec![
            "verify".into(),
            samples.join("xuzhuang-dibao.json").display().to_string(),
            "--letter".into(),
            samples
                .join("xuzhuang-dibao.letter.json")
                .display()
                .to_string(),
        ],
    );
    let out = tokio::task::spawn_blocking(move || refused.output()).await??;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 403 forbidden"), "{stderr}");
    s.stop().await;
    Ok(())
}
