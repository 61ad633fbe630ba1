//! Withheld raw figures stay withheld end to end (issue 10, finding 3): a caseworker runs a 住房救助
//! (housing aid) check, whose profile shows the housing figures raw but not the labour ones, against
//! the seven simulated departments over real mTLS. Neither the JSON view (as returned and as read
//! again) nor the printable page contains a member's wages, nor the member, household or per-capita
//! income computed from them, nor the verified income of the declaration's discrepancy; the housing
//! figures the purpose needs are shown. Every view is signed by the hub.
//!
//! The figures that must not appear are computed here from the simulator's ground truth
//! (`sim::population`), never from the hub's output.

use std::collections::BTreeSet;

use connectors::sim::population::Household;
use serde_json::{Value, json};

use crate::verification::{Setup, XUZHUANG, setup, setup_with, verification};

/// A hub whose 低保 profile also shows raw the two kinds its figures depend on that the shipped
/// profile withholds (personal contributions, the provident-fund balance), so that a test can check
/// every figure of a 低保 report against the ground truth. Keep the directory alive with the hub.
pub(crate) async fn setup_showing_every_dibao_figure() -> anyhow::Result<(Setup, tempfile::TempDir)>
{
    fn copy(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
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
    let dir = tempfile::tempdir()?;
    copy(&policies::PolicyEngine::shipped_dir(), dir.path())?;
    let profile = dir.path().join("profiles/dibao_application.toml");
    let text = std::fs::read_to_string(&profile)?;
    anyhow::ensure!(text.contains("raw_visible = [\n"), "{text}");
    std::fs::write(
        &profile,
        text.replacen(
            "raw_visible = [\n",
            "raw_visible = [\n  \"labor.social_insurance_contributions_12m\",\n  \"housing.provident_fund_balance\",\n",
            1,
        ),
    )?;
    let path = dir.path().display().to_string();
    let s = setup_with(move |t| format!("{t}\n[policies]\ndir = \"{path}\"\n")).await?;
    Ok((s, dir))
}

/// Whether `text` contains `needle` as a whole number (not inside a longer run of digits or
/// letters).
fn contains_number(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + needle.len()).copied();
        let boundary = |b: Option<u8>| !b.is_some_and(|b| b.is_ascii_alphanumeric());
        boundary(before) && boundary(after)
    })
}

/// The forms the hub writes an amount in: fen, `1234.56` (after ¥), and with thousands commas.
fn forms(fen: i64) -> Vec<String> {
    let fen = fen.abs();
    let int = (fen / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    vec![
        fen.to_string(),
        format!("{int}.{:02}", fen % 100),
        format!("{grouped}.{:02}", fen % 100),
    ]
}

/// The wage-derived figures of a household that must not be shown: each member's wages per month
/// and their monthly average, each member's income (wages, pension and unemployment benefit less
/// contributions), the household's income and its per-capita value. Only amounts of 10 yuan or more
/// (shorter numbers are not distinctive).
fn wage_figures(s: &Setup, h: &Household) -> Vec<(String, i64)> {
    let pop = &s.deps.population;
    let mut out = Vec::new();
    let mut total = 0;
    for (i, id) in h.members.iter().enumerate() {
        let l = &pop.person(*id).labor;
        for (month, fen) in l.monthly_wages_fen.iter().enumerate() {
            out.push((format!("m{} wages month {month}", i + 1), *fen));
        }
        let wages = l.monthly_wages_fen.iter().sum::<i64>() / 12;
        out.push((format!("m{} wages per month", i + 1), wages));
        let income = wages + l.pension_monthly_fen + l.unemployment_benefit_monthly_fen
            - l.contributions_12m_fen / 12;
        out.push((format!("m{} income", i + 1), income));
        total += income;
    }
    out.push(("household income".into(), total));
    out.push((
        "household income per capita".into(),
        total / h.members.len() as i64,
    ));
    out.retain(|(_, v)| v.abs() >= 1_000);
    out
}

/// A 许庄 household with no planted awkward case (everyone alive and known to every department), at
/// least two members and wages, whose wage figures do not happen to equal a number the view shows
/// (the housing figures, the local standard's).
fn household_with_wages(s: &Setup, shown: &BTreeSet<i64>) -> Household {
    let pop = &s.deps.population;
    pop.households()
        .iter()
        .filter(|h| {
            h.township_code().as_str() == XUZHUANG
                && h.cases.is_empty()
                && h.members.len() >= 2
                && h.members.iter().all(|m| pop.person(*m).death.is_none())
        })
        .find(|h| {
            let figures = wage_figures(s, h);
            let wages = figures.iter().filter(|(w, _)| w.contains("wages")).count();
            let housing = h.members.iter().flat_map(|m| {
                let x = &pop.person(*m).housing;
                [i64::from(x.properties), x.floor_area_dm2]
            });
            let shown: BTreeSet<i64> = shown.iter().copied().chain(housing).collect();
            wages >= 12 && figures.iter().all(|(_, v)| !shown.contains(&v.abs()))
        })
        .expect("a plain 许庄 household with wages")
        .clone()
}

fn assert_no_wage_figure(what: &str, text: &str, figures: &[(String, i64)]) {
    for (name, v) in figures {
        for form in forms(*v) {
            assert!(
                !contains_number(text, &form),
                "{what} shows the withheld {name} as {form}"
            );
        }
    }
}

/// The JSON view withholds the labour facts and the income figures, shows the housing ones, and is
/// signed by the hub.
fn check_view(what: &str, view: &Value, figures: &[(String, i64)], properties: i64, pk: &[u8]) {
    hub::verify::report::verify_signature(view, pk)
        .unwrap_or_else(|e| panic!("{what}: the view is signed: {e}"));
    assert_no_wage_figure(what, &view.to_string(), figures);
    for m in view["members"].as_array().expect("members") {
        for f in m["facts"].as_array().expect("facts") {
            let kind = f["kind"].as_str().unwrap_or_default();
            if kind == "labor.monthly_wages" || kind == "labor.pension_monthly" {
                assert!(f.get("value").is_none(), "{what}: {f}");
                assert!(f["withheld"].is_string(), "{what}: {f}");
            }
            if kind == "housing.properties_owned" {
                assert!(f["value"]["value"].is_u64(), "{what}: {f}");
            }
        }
    }
    let agg = &view["aggregation"];
    let hh = &agg["household"];
    for figure in ["monthly_income_fen", "monthly_income_per_capita_fen"] {
        assert!(hh[figure].get("value").is_none(), "{what}: {figure}: {hh}");
        assert!(hh[figure]["withheld"].is_string(), "{what}: {figure}: {hh}");
        assert!(
            hh[figure]["sources"]
                .as_array()
                .unwrap()
                .contains(&json!("labor.monthly_wages")),
            "{what}: {hh}"
        );
    }
    assert_eq!(hh["properties_owned"]["value"], properties, "{what}: {hh}");
    for m in agg["members"].as_array().expect("member figures") {
        assert!(
            m["monthly_income_fen"].get("value").is_none(),
            "{what}: {m}"
        );
        for item in m["income_items"].as_array().expect("income items") {
            assert!(item["monthly_fen"].get("value").is_none(), "{what}: {item}");
        }
    }
    // The indication against the 低保 line stays, without the amount.
    let codes: Vec<&str> = agg["indications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"income_below_line") || codes.contains(&"income_not_below_line"),
        "{what}: {codes:?}"
    );
    // The declared income (1 fen) is flagged; the verified side is withheld.
    let d = agg["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "declared.household_monthly_income_fen")
        .unwrap_or_else(|| panic!("{what}: an income discrepancy in {agg}"));
    assert!(d["verified"].get("value").is_none(), "{what}: {d}");
    assert!(
        d["allowed_difference"].get("value").is_none(),
        "{what}: {d}"
    );
    assert!(
        d["text"].as_str().unwrap().contains("核对数额不予显示"),
        "{what}: {d}"
    );
}

#[tokio::test]
async fn a_purpose_that_withholds_wages_shows_neither_them_nor_the_income_derived_from_them()
-> anyhow::Result<()> {
    let s = setup("").await?;
    let engine = policies::PolicyEngine::load(policies::PolicyEngine::shipped_dir())?;
    let profiles = engine.profiles();
    assert!(!profiles.raw_visible(
        schemas::Purpose::HousingAid,
        schemas::FactKind::MonthlyWages
    ));
    assert!(profiles.raw_visible(
        schemas::Purpose::HousingAid,
        schemas::FactKind::PropertiesOwned
    ));
    let year = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .year();
    let st = engine
        .standards()
        .in_force(&schemas::DivisionCode::parse(XUZHUANG)?, year)
        .expect("a standard for 许庄");
    let standard_numbers: BTreeSet<i64> = [
        st.dibao_line_fen,
        i64::from(st.assets.max_properties),
        st.assets.max_floor_area_per_capita_dm2,
        st.assets.max_financial_assets_per_capita_fen,
        st.tolerance.min_fen,
    ]
    .into();
    let h = household_with_wages(&s, &standard_numbers);
    let figures = wage_figures(&s, &h);
    let pop = &s.deps.population;
    let properties: i64 = h
        .members
        .iter()
        .map(|m| i64::from(pop.person(*m).housing.properties))
        .sum();
    let decl = pop.household_declaration(h.id);
    let letter = s
        .record_letter("caseworker", &decl, &["housing_aid"])
        .await?;
    let mut body = verification(&decl, "housing_aid", "withheld-1", "normal", Some(&letter));
    body["declared"] = json!({ "household_monthly_income_fen": 1 });
    let (status, view) = s.post("caseworker", "/v1/verifications", &body).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["complete"], true, "{view}");

    let http = s.env.http("caseworker")?;
    let key: Value = http
        .get(s.hub.url("/v1/report-key"))
        .send()
        .await?
        .json()
        .await?;
    let pk = hex::decode(key["public_key"].as_str().expect("public_key"))?;
    check_view(
        "the answer to the request",
        &view,
        &figures,
        properties,
        &pk,
    );

    let vid = view["id"].as_str().expect("id");
    let again: Value = http
        .get(s.hub.url(&format!("/v1/verifications/{vid}")))
        .send()
        .await?
        .json()
        .await?;
    check_view(
        "the stored report's view",
        &again,
        &figures,
        properties,
        &pk,
    );

    let page = http
        .get(s.hub.url(&format!("/v1/verifications/{vid}/print")))
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("核算结果"), "{page}");
    assert_no_wage_figure("the printed page", &page, &figures);
    assert!(
        page.contains("由本用途不显示原始数值的事实算得"),
        "the page says why the income is not shown"
    );
    assert!(page.contains("仅用于核算，本用途不显示原始数值"), "{page}");
    s.stop().await;
    Ok(())
}
