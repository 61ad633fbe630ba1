//! 控制台案件办理 in a real browser (issue 13 items 2 and 8): a township caseworker works an
//! emergency case (急难) from the open-case form to the printed outcome notice, each step a form
//! on the case page that posts to the API's own move; a refused step is shown next to its form in
//! Chinese; the department answers its referral slip; a caseworker of another township is refused
//! the case page (403 with the policy's reason) and its forms. Screenshots go to
//! `target/console-screenshots/` (`50-…` to `69-…`); axe-core checks the queue, the case page and
//! the notice for serious or critical accessibility violations.

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{axe_check, browser_as, shot, shot_of, text_of, text_once};
use crate::verification::{Setup, XUZHUANG, households, setup};

/// Fill the named fields of the form `form` (inputs and textareas by typing, selects by value)
/// and submit it with `button`.
async fn submit(
    c: &Client,
    form: &str,
    typed: &[(&str, &str)],
    chosen: &[(&str, &str)],
    button: &str,
) -> anyhow::Result<()> {
    let f = c.wait().for_element(Locator::Id(form)).await?;
    for (name, value) in typed {
        let el = f
            .find(Locator::Css(&format!(
                "input[name={name}], textarea[name={name}]"
            )))
            .await?;
        el.clear().await?;
        el.send_keys(value).await?;
    }
    for (name, value) in chosen {
        f.find(Locator::Css(&format!("select[name={name}]")))
            .await?
            .select_by_value(value)
            .await?;
    }
    f.find(Locator::Id(button)).await?.click().await?;
    Ok(())
}

/// The ids of the action forms the case page shows now.
async fn forms(c: &Client) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in c.find_all(Locator::Css("#actions form")).await? {
        out.push(f.attr("id").await?.unwrap_or_default());
    }
    Ok(out)
}

/// The browser walk; returns the case id.
async fn walk(s: &Setup, c: &Client) -> anyhow::Result<String> {
    let h = &households(&s.deps, XUZHUANG)[0];
    let applicant = h.applicant().unwrap_or(&h.members[0]);
    let rid = applicant.resident_id.as_str().to_owned();

    // 1. Open an emergency case through the form.
    c.goto(&s.hub.url("/console/cases/new")).await?;
    submit(
        c,
        "new-case",
        &[
            ("name", &applicant.name),
            ("resident_id", &rid),
            ("phone", "13905370002"),
            (
                "description",
                "户主在工地受伤住院，家中两名子女在读，无其他收入",
            ),
        ],
        &[("tier", "emergency"), ("hardship", "accident")],
        "submit-case",
    )
    .await?;
    let title = text_of(c, "#case-title").await?;
    assert!(title.contains("急难"), "{title}");
    let url = c.current_url().await?;
    let case_id = url
        .path()
        .strip_prefix("/console/cases/")
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("not on a case page: {url}"))?;
    assert_eq!(text_of(c, "#case-state").await?, "待受理");
    // Received: the state machine allows accepting (and transfer, which has no form here);
    // first help comes after acceptance, so its form is not shown.
    assert_eq!(forms(c).await?, ["accept-form"]);
    shot(c, "50-case-received").await?;
    axe_check(c, "the case page (received)").await?;

    // 2. 受理.
    submit(
        c,
        "accept-form",
        &[("note", "已电话联系申请人")],
        &[],
        "do-accept",
    )
    .await?;
    text_once(c, "#case-state", "已受理").await?;
    let timeline = text_of(c, "#timeline").await?;
    assert!(
        timeline.contains("受理") && timeline.contains("已电话联系申请人"),
        "{timeline}"
    );
    let shown = forms(c).await?;
    assert!(
        shown.contains(&"first-help-form".to_owned())
            && shown.contains(&"slip-form".to_owned())
            && !shown.contains(&"investigation-form".to_owned()),
        "an emergency case gets first help before the investigation: {shown:?}"
    );
    shot(c, "51-case-accepted").await?;

    // 3. 先行救助 in cash without the amount: refused by the API, shown next to the form in
    //    Chinese with the field, nothing moved, what was typed kept.
    submit(
        c,
        "first-help-form",
        &[("note", "送至医院")],
        &[("kind", "cash")],
        "do-first-help",
    )
    .await?;
    let error = text_once(c, "#first-help-form .error", "金额").await?;
    assert!(
        error.contains("填写有误") && error.contains("amount_fen"),
        "{error}"
    );
    assert_eq!(text_of(c, "#case-state").await?, "已受理");
    let kept = c
        .find(Locator::Css("#first-help-form input[name=note]"))
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    assert_eq!(kept, "送至医院");
    shot_of(c, "#actions", "52-first-help-refused").await?;
    submit(
        c,
        "first-help-form",
        &[("amount", "2000")],
        &[("kind", "cash")],
        "do-first-help",
    )
    .await?;
    text_once(c, "#case-state", "已先行救助").await?;
    let timeline = text_of(c, "#timeline").await?;
    assert!(
        timeline.contains("先行救助") && timeline.contains("¥2,000.00"),
        "{timeline}"
    );
    let clocks = text_of(c, "#clocks").await?;
    assert!(
        clocks.contains("已完成"),
        "the 2-hour clock is met: {clocks}"
    );
    shot(c, "53-case-helped").await?;

    // 4. 转办单 to health (医疗救助) with its default deadline.
    submit(
        c,
        "slip-form",
        &[("asked", "协助办理住院费用医疗救助")],
        &[("slip_kind", "medical_assistance")],
        "do-slip",
    )
    .await?;
    let slips = text_once(c, "#slips", "医疗救助").await?;
    assert!(slips.contains("待签收"), "{slips}");
    shot_of(c, "#slips", "54-slip-issued").await?;

    // 5. 入户调查与初审意见.
    submit(
        c,
        "investigation-form",
        &[
            ("visited_by", "王芳、李强"),
            ("findings", "户主住院，配偶无业，两名子女在读"),
            ("opinion", "建议给予临时救助"),
        ],
        &[
            ("recommendation", "approve"),
            ("assistance_type", "temporary_assistance"),
        ],
        "do-investigation",
    )
    .await?;
    text_once(c, "#case-state", "已调查").await?;
    let shown = forms(c).await?;
    assert!(
        shown.contains(&"decision-form".to_owned())
            && shown.contains(&"hand-to-county-form".to_owned()),
        "{shown:?}"
    );
    shot(c, "55-case-investigated").await?;
    axe_check(c, "the case page with the decision forms").await?;

    // 6. 审批决定: approved, temporary assistance of ¥3,000.
    submit(
        c,
        "decision-form",
        &[("amount", "3000")],
        &[
            ("decision", "approved"),
            ("assistance_type", "temporary_assistance"),
        ],
        "do-decision",
    )
    .await?;
    text_once(c, "#case-state", "已决定").await?;
    let details = text_of(c, "#timeline").await?;
    assert!(details.contains("¥3,000.00"), "{details}");
    assert!(c.find(Locator::Id("notice-link")).await.is_ok());

    // 7. 办结 while the health slip has no feedback: refused (409) next to the form.
    submit(c, "close-form", &[("note", "已发放")], &[], "do-close").await?;
    let error = text_once(c, "#close-form .error", "转办单").await?;
    assert!(error.contains("未反馈"), "{error}");
    assert_eq!(text_of(c, "#case-state").await?, "已决定");
    shot_of(c, "#actions", "56-close-refused").await?;

    // 8. The health department answers the slip through the API.
    let (status, case) = s.get("caseworker", &format!("/v1/cases/{case_id}")).await?;
    assert_eq!(status, 200, "{case}");
    let slip = case["slips"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, b) = s
        .post(
            "dept-health",
            &format!("/v1/slips/{slip}/feedback"),
            &json!({"result": "done", "text": "已纳入医疗救助，住院费用一站式结算", "amount_fen": 450000}),
        )
        .await?;
    assert_eq!(status, 200, "{b}");

    // 9. 办结.
    c.goto(&s.hub.url(&format!("/console/cases/{case_id}")))
        .await?;
    let slips = text_of(c, "#slips").await?;
    assert!(slips.contains("已反馈"), "{slips}");
    submit(
        c,
        "close-form",
        &[("note", "救助金已发放，回访无新困难")],
        &[],
        "do-close",
    )
    .await?;
    text_once(c, "#case-state", "已办结").await?;
    assert!(forms(c).await?.is_empty(), "nothing to do on a closed case");
    let timeline = text_of(c, "#timeline").await?;
    // The steps' records read in Chinese (codes named, nested records flattened).
    for detail in [
        "现金",
        "调查情况",
        "王芳、李强",
        "建议批准",
        "临时救助",
        "批准",
    ] {
        assert!(timeline.contains(detail), "{detail}: {timeline}");
    }
    for step in [
        "登记申请",
        "受理",
        "先行救助",
        "入户调查",
        "审批决定",
        "办结",
    ] {
        assert!(timeline.contains(step), "{step}: {timeline}");
    }
    assert!(
        !c.source().await?.contains(&rid),
        "the page masks the resident ID"
    );
    shot(c, "57-case-closed").await?;
    shot_of(c, "#timeline", "58-case-timeline").await?;

    // 10. 结果告知书.
    c.find(Locator::Id("notice-link")).await?.click().await?;
    let decision = text_of(c, "#notice-decision").await?;
    assert!(
        decision.contains("批准")
            && decision.contains("临时救助")
            && decision.contains("¥3,000.00"),
        "{decision}"
    );
    let notice = text_of(c, "#notice").await?;
    assert!(
        notice.contains(&applicant.name)
            && notice.contains("许庄街道办事处")
            && notice.contains("年")
            && notice.contains("单位盖章")
            && notice.contains("申请人签收")
            && notice.contains("¥2,000.00"),
        "{notice}"
    );
    assert!(
        !c.source().await?.contains(&rid),
        "the notice masks the resident ID"
    );
    shot(c, "59-outcome-notice").await?;
    axe_check(c, "the outcome notice").await?;

    // 11. The queue sorts by query string: by filing time, then by stage.
    c.goto(&s.hub.url("/console/")).await?;
    c.find(Locator::Id("sort-opened")).await?.click().await?;
    text_once(c, "th.sorted", "登记时间").await?;
    assert!(
        c.current_url()
            .await?
            .query()
            .unwrap_or("")
            .contains("sort=opened")
    );
    c.find(Locator::Id("sort-state")).await?.click().await?;
    text_once(c, "th.sorted", "阶段").await?;
    let cases = text_of(c, "#cases").await?;
    assert!(cases.contains(&case_id[case_id.len() - 8..]), "{cases}");
    shot(c, "60-queue-by-state").await?;
    axe_check(c, "the queue").await?;
    anyhow::Ok(case_id)
}

#[tokio::test]
async fn a_caseworker_takes_an_emergency_case_from_opening_to_the_outcome_notice()
-> anyhow::Result<()> {
    let s = setup("").await?;
    let (_home, driver, c) = browser_as(&s, "caseworker").await?;
    let walked = walk(&s, &c).await;
    c.close().await?;
    drop(driver);
    let case_id = walked?;

    // Another township's caseworker: the case page is the 403 page with the policy's reason.
    let (_home, driver, c) = browser_as(&s, "caseworker-other").await?;
    let refused = async {
        c.goto(&s.hub.url(&format!("/console/cases/{case_id}")))
            .await?;
        let refused = text_of(&c, "#refused").await?;
        assert!(
            refused.contains("无权访问") && refused.contains("辖区"),
            "{refused}"
        );
        shot(&c, "61-other-township-refused").await?;
        c.goto(&s.hub.url(&format!("/console/cases/{case_id}/notice")))
            .await?;
        let refused = text_of(&c, "#refused").await?;
        assert!(refused.contains("辖区"), "{refused}");
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    drop(driver);
    refused?;

    // Its forms are refused by Cedar too, with a valid token: a form is no way around the policy.
    let http = s.env.http("caseworker-other")?;
    let page = http.get(s.hub.url("/console/")).send().await?;
    let cookie = page.headers()["set-cookie"].to_str()?.to_owned();
    let token = cookie
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("jsj_csrf="))
        .unwrap_or_default()
        .to_owned();
    let origin = s.hub.url("");
    let r = http
        .post(s.hub.url(&format!("/console/cases/{case_id}/accept")))
        .header("origin", origin.trim_end_matches('/'))
        .header("cookie", format!("jsj_csrf={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&note=x"))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("辖区"));
    // And the owner's form without the token is refused before anything is read.
    let r = s
        .env
        .http("caseworker")?
        .post(s.hub.url(&format!("/console/cases/{case_id}/close")))
        .header("origin", origin.trim_end_matches('/'))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("note=x")
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    // Every step went into the access log as through the API: five moves and the slip by the
    // console (the refused first help moved nothing), the reads, and the other township's
    // refusals.
    let log = s.log_of_case(&case_id).await?;
    let n = |action: &str, effect: &str| {
        log.iter()
            .filter(|(a, e, _, _)| a == action && e == effect)
            .count()
    };
    assert_eq!(n("case_opened", "allow"), 1, "{log:?}");
    assert_eq!(n("case_moved", "allow"), 5, "{log:?}");
    assert_eq!(n("slip_issued", "allow"), 1, "{log:?}");
    assert!(n("case_read", "allow") >= 8, "{log:?}");
    assert!(n("case_read", "deny") >= 2, "{log:?}");
    assert_eq!(n("case_moved", "deny"), 1, "{log:?}");
    s.stop().await;
    Ok(())
}
