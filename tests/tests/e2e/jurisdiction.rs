//! Jurisdiction from authoritative registration data (issue 10, finding 1): the household's region
//! is where civil affairs says the applicant is registered, never what the request declares; the
//! registration is asked of civil affairs alone, before any other department; members registered
//! elsewhere follow the split-household rule in `policies/policies/jurisdiction.cedar`.

use connectors::sim::Fault;
use connectors::sim::population::AwkwardCase;
use hub::pki::ClientSpec;
use schemas::{Department, DivisionCode, FactKind, Household, Relation, Role};
use serde_json::{Value, json};

use crate::verification::{OTHER_TOWNSHIP, Setup, XUZHUANG, ids, setup, verification};

/// A 许庄街道 household of two or more members with no planted awkward case.
fn plain_xuzhuang(s: &Setup) -> Household {
    let pop = &s.deps.population;
    let h = pop
        .households()
        .iter()
        .find(|h| {
            h.township_code().as_str() == XUZHUANG && h.members.len() >= 2 && h.cases.is_empty()
        })
        .expect("a plain household in 370811002");
    pop.household_declaration(h.id)
}

/// The letter a forger records: the household's members, but the forger's own division.
fn forged_letter(h: &Household, division: &str) -> Value {
    let ids = ids(h);
    json!({
        "registered_division": division,
        "signed_by": [h.applicant().map(|a| a.resident_id.as_str()).unwrap_or(&ids[0])],
        "members": ids,
        "purposes": ["dibao_application"],
        "valid_until": crate::verification::in_days(30),
        "letter_sha256": crate::verification::fresh_sha256(),
    })
}

/// Every department but civil affairs was left alone; civil affairs was asked the registered
/// division only, once.
fn only_the_registration_was_asked(s: &Setup, civil_affairs_queries_before: usize) {
    for d in Department::ALL {
        let queries = s.deps.handles[&d].queries();
        if d == Department::CivilAffairs {
            assert_eq!(
                queries.len(),
                civil_affairs_queries_before + 1,
                "civil affairs: one registration query"
            );
            let last = queries.last().expect("a query");
            assert_eq!(last.fact_kinds, vec![FactKind::RegisteredDivision]);
        } else {
            assert_eq!(queries.len(), 0, "{d} must not be asked");
        }
    }
}

/// The finding as reported: a caseworker of 李营街道 (370811005) declares her own division for a
/// 许庄 household, with a self-recorded letter, and used to get a full 低保 check. Now: 403 after the
/// registration check alone, both logged, and the refusal does not say where the household is.
#[tokio::test]
async fn a_declared_division_does_not_grant_jurisdiction() -> anyhow::Result<()> {
    let s = setup("").await?;
    let mut h = plain_xuzhuang(&s);
    h.registered_division = DivisionCode::parse(OTHER_TOWNSHIP)?;
    let (status, body) = s
        .post(
            "caseworker-other",
            "/v1/authorizations",
            &forged_letter(&h, OTHER_TOWNSHIP),
        )
        .await?;
    assert_eq!(status, 201, "the letter itself grants nothing: {body}");
    let auth = body["id"].as_str().expect("id").to_owned();
    let (status, body) = s
        .post(
            "caseworker-other",
            "/v1/verifications",
            &verification(
                &h,
                "dibao_application",
                "case-j-forged",
                "normal",
                Some(&auth),
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
    assert!(
        !body.to_string().contains(XUZHUANG),
        "a refusal never says where the household is registered: {body}"
    );
    only_the_registration_was_asked(&s, 0);
    let log = s.log_of_case("case-j-forged").await?;
    let got: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("registration_checked", "allow", "succeeded"),
            ("verification_requested", "deny", "denied"),
        ],
        "{log:?}"
    );
    assert_eq!(log[0].3, vec!["civil_affairs".to_owned()]);

    // Across counties: an officer of 兖州区 (370812) declaring a 兖州 township gets nothing either.
    s.env.issue(
        "yanzhou-officer",
        &ClientSpec {
            role: Role::Caseworker,
            organisation: "mz-370812".into(),
            division: "370812".into(),
            principal: "co-yanzhou-01".into(),
            display_name: "兖州区民政局".into(),
        },
    )?;
    h.registered_division = DivisionCode::parse("370812001")?;
    let (status, body) = s
        .post(
            "yanzhou-officer",
            "/v1/verifications",
            &verification(
                &h,
                "temporary_assistance",
                "case-j-county",
                "emergency",
                None,
            ),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("无权办理其他县"),
        "{body}"
    );
    only_the_registration_was_asked(&s, 1);

    // The rightful township gets the check, whatever division it declares within its reach.
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(&h, "temporary_assistance", "case-j-own", "emergency", None),
        )
        .await?;
    assert_eq!(
        status, 403,
        "declaring another county is refused at the first filter: {body}"
    );
    h.registered_division = DivisionCode::parse(XUZHUANG)?;
    let (status, report) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(
                &h,
                "temporary_assistance",
                "case-j-own-2",
                "emergency",
                None,
            ),
        )
        .await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["registered_division"], XUZHUANG);
    s.stop().await;
    Ok(())
}

/// A member registered in another township (分户登记) may be checked with the applicant only as close
/// family (spouse, child, parent, grandparent, grandchild); anyone else is refused, and the refusal
/// names the split-household policy in the log.
#[tokio::test]
async fn members_registered_elsewhere_follow_the_split_household_rule() -> anyhow::Result<()> {
    let s = setup("").await?;
    let pop = &s.deps.population;
    // A split household whose registered township and the split member's township differ; issue a
    // caseworker certificate for the household's township.
    let (hh, split_township) = pop
        .households_with(|c| matches!(c, AwkwardCase::SplitAcrossTownships { .. }))
        .find_map(|h| {
            let t = h.cases.iter().find_map(|c| match c {
                AwkwardCase::SplitAcrossTownships { township, .. } => Some(township.clone()),
                _ => None,
            })?;
            (h.cases.len() == 1).then_some((h, t))
        })
        .expect("a household split across townships and nothing else");
    let township = hh.township_code().as_str().to_owned();
    assert_ne!(township, split_township.as_str());
    s.env.issue(
        "split-caseworker",
        &ClientSpec {
            role: Role::Caseworker,
            organisation: format!("mz-{township}"),
            division: township.clone(),
            principal: "cw-split-01".into(),
            display_name: "分户测试经办人".into(),
        },
    )?;
    let declared = pop.household_declaration(hh.id);
    let split_index = declared
        .members
        .iter()
        .position(|m| {
            pop.find(&m.resident_id)
                .is_some_and(|p| p.township_code() == &split_township)
        })
        .expect("the split member");

    let mut spouse = declared.clone();
    spouse.members[split_index].relation = Relation::Spouse;
    spouse.members.retain(|m| {
        m.relation != Relation::Spouse || m.resident_id == declared.members[split_index].resident_id
    });
    let (status, body) = s
        .post(
            "split-caseworker",
            "/v1/verifications",
            &verification(
                &spouse,
                "temporary_assistance",
                "case-j-split-ok",
                "emergency",
                None,
            ),
        )
        .await?;
    assert_eq!(
        status, 200,
        "a spouse registered elsewhere is checked with the applicant: {body}"
    );

    let mut other = declared.clone();
    other.members[split_index].relation = Relation::Other;
    let (status, body) = s
        .post(
            "split-caseworker",
            "/v1/verifications",
            &verification(
                &other,
                "temporary_assistance",
                "case-j-split-no",
                "emergency",
                None,
            ),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("户籍不在本地"),
        "{body}"
    );
    let (status, found) = s
        .post(
            "auditor",
            "/v1/log/search",
            &json!({"case_ref": "case-j-split-no"}),
        )
        .await?;
    assert_eq!(status, 200, "{found}");
    let denied = found["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|f| &f["entry"])
        .find(|e| e["action"] == "verification_requested")
        .expect("the refusal is logged");
    assert_eq!(denied["decision"]["effect"], "deny");
    assert!(
        denied["decision"]["policy_ids"]
            .as_array()
            .expect("policy ids")
            .iter()
            .any(|p| p == "split-household-close-family-only"),
        "{denied}"
    );
    s.stop().await;
    Ok(())
}

/// When civil affairs cannot say where the members are registered, nothing else is asked: 503
/// `registration_unavailable`, and the failed registration check is logged.
#[tokio::test]
async fn no_registration_no_check() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = plain_xuzhuang(&s);
    s.deps.handles[&Department::CivilAffairs].set_fault(Fault::Refuse {
        code: schemas::ProtocolErrorCode::Forbidden,
    });
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(
                &h,
                "temporary_assistance",
                "case-j-noreg",
                "emergency",
                None,
            ),
        )
        .await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "registration_unavailable");
    for d in Department::ALL {
        if d != Department::CivilAffairs {
            assert_eq!(s.deps.handles[&d].query_count(), 0, "{d} must not be asked");
        }
    }
    let log = s.log_of_case("case-j-noreg").await?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].0, "registration_checked");
    assert_eq!(log[0].2, "refused_by_department");
    s.stop().await;
    Ok(())
}
