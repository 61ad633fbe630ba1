//! 控制台 in a real browser (issue 13 items 1, 2, 7, 8): headless Chromium from Debian, driven
//! through chromedriver (WebDriver, fantoccini), logged in with the demo caseworker's client
//! certificate picked automatically (an NSS database under a temporary HOME plus Chromium's
//! `AutoSelectCertificateForUrls` policy; `/work/shared/reference/browser-mtls.md`).
//!
//! One hub, one browser, one walk: the queue shows who I am → open a case through the form (CSRF
//! token, SameSite cookie, Origin) → the case page (timeline, clocks; logged as `case_read`) →
//! back to the queue, which lists it → another township's case is refused with a Chinese reason
//! and HTTP 403, and the refusal is logged. Screenshots of every page go to
//! `target/console-screenshots/`.

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{
    browser, browser_as, browser_home, shot, shot_of, start_driver, text_of, text_once,
};
use crate::cases::{LIYING, filing};
use crate::verification::{XUZHUANG, households, ids, setup};

#[tokio::test]
async fn a_caseworker_works_the_console_in_a_real_browser() -> anyhow::Result<()> {
    let s = setup("").await?;
    // Another township's case, filed through the API by its own caseworker.
    let liying = households(&s.deps, LIYING);
    let foreign = s
        .file_case(
            "caseworker-other",
            &filing(&liying[0], "walk_in", "normal", LIYING),
        )
        .await?;
    let h = &households(&s.deps, XUZHUANG)[0];
    let applicant = h.applicant().unwrap_or(&h.members[0]);
    let rid = applicant.resident_id.as_str().to_owned();

    let home = tempfile::tempdir()?;
    browser_home(&s.env.path().join("pki"), "caseworker", home.path())?;
    let driver = start_driver(home.path()).await?;
    let c = browser(&driver).await?;
    let walk = async {
        // 1. The queue: who I am, in Chinese.
        c.goto(&s.hub.url("/console/")).await?;
        let me = text_of(&c, "#me").await?;
        assert!(
            me.contains("许庄街道经办人") && me.contains("经办人") && me.contains("许庄街道"),
            "{me}"
        );
        shot(&c, "01-queue-empty").await?;

        // 2. Open a case through the form.
        c.find(Locator::Css("a.button.primary"))
            .await?
            .click()
            .await?;
        let form = c.wait().for_element(Locator::Id("new-case")).await?;
        form.find(Locator::Css("select[name=tier]"))
            .await?
            .select_by_value("emergency")
            .await?;
        form.find(Locator::Css("select[name=hardship]"))
            .await?
            .select_by_value("illness")
            .await?;
        form.find(Locator::Css("input[name=name]"))
            .await?
            .send_keys(&applicant.name)
            .await?;
        form.find(Locator::Css("input[name=resident_id]"))
            .await?
            .send_keys(&rid)
            .await?;
        form.find(Locator::Css("input[name=phone]"))
            .await?
            .send_keys("13905370001")
            .await?;
        form.find(Locator::Css("textarea[name=description]"))
            .await?
            .send_keys("户主突发重病住院，家中无其他收入来源")
            .await?;
        shot(&c, "02-open-case-form").await?;
        c.find(Locator::Id("submit-case")).await?.click().await?;

        // 3. The case page it lands on.
        let title = text_of(&c, "#case-title").await?;
        assert!(title.contains("急难"), "{title}");
        let url = c.current_url().await?;
        let case_id = url
            .path()
            .strip_prefix("/console/cases/")
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("not on a case page: {url}"))?;
        assert_eq!(text_of(&c, "#case-state").await?, "待受理");
        let timeline = text_of(&c, "#timeline").await?;
        assert!(
            timeline.contains("登记申请") && timeline.contains("年"),
            "{timeline}"
        );
        let clocks = text_of(&c, "#clocks").await?;
        assert!(
            clocks.contains("先行救助") && clocks.contains("计时中"),
            "{clocks}"
        );
        let page = c.source().await?;
        assert!(
            page.contains(&applicant.name),
            "the caseworker sees the applicant"
        );
        assert!(!page.contains(&rid), "the page masks the resident ID");
        shot(&c, "03-case").await?;

        // 4. Back to the queue: the case is listed with its clock.
        c.goto(&s.hub.url("/console/")).await?;
        let cases = text_of(&c, "#cases").await?;
        assert!(
            cases.contains(&case_id[case_id.len() - 8..]) && cases.contains("急难"),
            "{cases}"
        );
        shot(&c, "04-queue").await?;

        // 5. Another township's case: refused, in Chinese.
        c.goto(&s.hub.url(&format!("/console/cases/{foreign}")))
            .await?;
        let refused = text_of(&c, "#refused").await?;
        assert!(refused.contains("无权访问"), "{refused}");
        shot(&c, "05-refused").await?;

        // 6. The auditor's page is not mine: refused in Chinese, and not in my navigation.
        let nav = text_of(&c, "#nav").await?;
        assert!(
            nav.contains("我的待办") && !nav.contains("审计") && !nav.contains("督导"),
            "{nav}"
        );
        c.goto(&s.hub.url("/console/audit")).await?;
        let refused = text_of(&c, "#refused").await?;
        assert!(refused.contains("无权访问"), "{refused}");
        shot(&c, "06-audit-refused").await?;
        anyhow::Ok(case_id)
    }
    .await;
    c.close().await?;
    drop(driver);
    let case_id = walk?;

    // The same refusal over plain mTLS: HTTP 403 as a page with a strict CSP.
    let r = s
        .env
        .http("caseworker")?
        .get(s.hub.url(&format!("/console/cases/{foreign}")))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let csp = r.headers()["content-security-policy"].to_str()?.to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(r.text().await?.contains("无权访问"));
    // A form post from elsewhere (no Origin, no cookie, no token) opens nothing.
    let r = s
        .env
        .http("caseworker")?
        .post(s.hub.url("/console/cases"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("tier=normal&name=x")
        .send()
        .await?;
    assert_eq!(r.status(), 403);

    // The views went into the access log as through the API: the form's filing, the case page's
    // read, and the refused look at the other township's case.
    let mine = s.log_of_case(&case_id).await?;
    let has = |log: &[(String, String, String, Vec<String>)], action: &str, effect: &str| {
        log.iter().any(|(a, e, _, _)| a == action && e == effect)
    };
    assert!(
        has(&mine, "case_opened", "allow") && has(&mine, "case_read", "allow"),
        "{mine:?}"
    );
    let theirs = s.log_of_case(&foreign).await?;
    assert!(has(&theirs, "case_read", "deny"), "{theirs:?}");
    s.stop().await;
    Ok(())
}

/// Item 3: the county officer (督导) sees the county's timeliness per township and stage as a
/// table and an SVG chart, the escalated and overdue items, and downloads the CSV.
#[tokio::test]
async fn a_county_supervisor_sees_the_county_page() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = &households(&s.deps, XUZHUANG)[1];
    s.file_case("caseworker", &filing(h, "walk_in", "urgent", XUZHUANG))
        .await?;
    // First help given in time: the chart has a bar for it.
    s.prepared_case("emergency", &["accept", "first-help"])
        .await?;
    let (_home, driver, c) = browser_as(&s, "county-officer").await?;
    let walk = async {
        c.goto(&s.hub.url("/console/")).await?;
        let nav = text_of(&c, "#nav").await?;
        assert!(nav.contains("督导") && !nav.contains("审计"), "{nav}");
        c.find(Locator::LinkText("督导 Supervision"))
            .await?
            .click()
            .await?;
        let title = text_of(&c, "#supervision-title").await?;
        assert!(title.contains("任城区"), "{title}");
        let table = text_of(&c, "#timeliness").await?;
        assert!(
            table.contains("许庄街道") && table.contains("先行救助") && table.contains("合计"),
            "{table}"
        );
        let bars = c
            .find_all(Locator::Css("#timeliness-chart rect"))
            .await?
            .len();
        assert!(bars >= 4, "the chart has its legend and bars: {bars}");
        let csv = c
            .find(Locator::Id("csv-timeliness"))
            .await?
            .attr("href")
            .await?
            .unwrap_or_default();
        shot(&c, "10-supervision").await?;
        shot_of(&c, "#timeliness-chart", "11-supervision-chart").await?;
        shot_of(&c, "#timeliness", "12-supervision-table").await?;
        anyhow::Ok(csv)
    }
    .await;
    c.close().await?;
    drop(driver);
    let csv = walk?;
    // The export link is the API's CSV download.
    let r = s
        .env
        .http("county-officer")?
        .get(s.hub.url(&csv))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv"),
        "{:?}",
        r.headers()
    );
    // A township caseworker is refused the county page, in Chinese.
    let r = s
        .env
        .http("caseworker")?
        .get(s.hub.url("/console/supervision"))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("无权访问"));
    s.stop().await;
    Ok(())
}

/// Item 4: an auditor searches the log by a member's resident ID (pseudonymised by the hub), finds
/// the household check, and opens its entry with the inclusion proof verified.
#[tokio::test]
async fn an_auditor_finds_a_check_and_opens_its_verified_entry() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = households(&s.deps, XUZHUANG)
        .into_iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");
    let (status, report) = s.verify_dibao("caseworker", &h, "case-console-1").await?;
    assert_eq!(status, 200, "{report}");
    let rid = ids(&h)[0].clone();
    let (_home, driver, c) = browser_as(&s, "auditor").await?;
    let walk = async {
        c.goto(&s.hub.url("/console/")).await?;
        // The auditor's navigation leads to the audit page only (no queue).
        let nav = text_of(&c, "#nav").await?;
        assert!(nav.contains("审计") && !nav.contains("我的待办"), "{nav}");
        c.goto(&s.hub.url("/console/audit")).await?;
        assert_eq!(text_of(&c, "#checkpoint-verified").await?, "已验证 ✓");
        let form = c.wait().for_element(Locator::Id("log-search")).await?;
        form.find(Locator::Css("input[name=resident_id]"))
            .await?
            .send_keys(&rid)
            .await?;
        shot(&c, "20-audit").await?;
        c.find(Locator::Id("search")).await?.click().await?;
        let found = text_of(&c, "#found").await?;
        assert!(
            found.contains("发起核对") && found.contains("case-console-1"),
            "{found}"
        );
        assert!(
            !found.contains("verification_requested"),
            "codes are shown in Chinese: {found}"
        );
        shot_of(&c, "#found", "21-audit-found").await?;
        c.find(Locator::XPath(
            "//table[@id='found']//tr[td[contains(., '发起核对')]]//a",
        ))
        .await?
        .click()
        .await?;
        let proof = text_of(&c, "#proof-verified").await?;
        assert!(proof.contains("已验证 ✓"), "{proof}");
        assert_eq!(text_of(&c, "#entry-action").await?, "发起核对");
        let page = c.source().await?;
        assert!(!page.contains(&rid), "the entry holds pseudonyms only");
        shot(&c, "22-audit-entry").await?;
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    drop(driver);
    walk?;
    // The search went into the log as through the API (one `log_searched` entry, its subject the
    // pseudonym), and the entry page was recorded too.
    let (status, b) = s
        .post("auditor", "/v1/log/search", &json!({"actor": "auditor-01"}))
        .await?;
    assert_eq!(status, 200, "{b}");
    let searched = b["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["entry"]["action"] == "log_searched")
                .count()
        })
        .unwrap_or_default();
    assert!(searched >= 2, "{b}");
    s.stop().await;
    Ok(())
}

/// Item 5: the labour department's operator accepts a referral slip and records the feedback
/// through the console; the page shows the department's connection as the hub sees it.
#[tokio::test]
async fn a_department_operator_answers_a_slip_through_the_console() -> anyhow::Result<()> {
    let s = setup("").await?;
    // A check first, so that the department's figures count real queries.
    let h = households(&s.deps, XUZHUANG)
        .into_iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");
    let (status, report) = s.verify_dibao("caseworker", &h, "case-console-2").await?;
    assert_eq!(status, 200, "{report}");
    let case = s
        .prepared_case("normal", &["accept", "investigation"])
        .await?;
    let (status, slip) = s
        .post(
            "caseworker",
            &format!("/v1/cases/{case}/slips"),
            &json!({"kind": "employment", "asked": "协助办理就业援助登记"}),
        )
        .await?;
    assert_eq!(status, 201, "{slip}");
    let (_home, driver, c) = browser_as(&s, "dept-labor").await?;
    let walk = async {
        c.goto(&s.hub.url("/console/slips")).await?;
        let list = text_of(&c, "#dept-slips").await?;
        assert!(
            list.contains("就业救助") && list.contains("待签收"),
            "{list}"
        );
        let figures = text_of(&c, "#dept-figures").await?;
        assert!(figures.contains("查询次数"), "{figures}");
        let breaker = text_of(&c, "#breaker").await?;
        assert!(breaker.contains("闭合"), "{breaker}");
        shot(&c, "30-dept-slips").await?;
        c.find(Locator::Css("#dept-slips a")).await?.click().await?;
        let title = text_of(&c, "#slip-title").await?;
        assert!(title.contains("就业救助"), "{title}");
        c.find(Locator::Id("accept")).await?.click().await?;
        let state = text_once(&c, "#slip-state", "已签收").await?;
        assert!(state.contains("已签收"), "{state}");
        let form = c.wait().for_element(Locator::Id("feedback-form")).await?;
        form.find(Locator::Css("select[name=result]"))
            .await?
            .select_by_value("done")
            .await?;
        form.find(Locator::Css("input[name=amount]"))
            .await?
            .send_keys("1234.56")
            .await?;
        form.find(Locator::Css("textarea[name=text]"))
            .await?
            .send_keys("已办理就业援助登记，安排公益性岗位")
            .await?;
        shot(&c, "31-dept-feedback-form").await?;
        c.find(Locator::Id("send-feedback")).await?.click().await?;
        let state = text_once(&c, "#slip-state", "已反馈").await?;
        assert!(
            state.contains("已反馈") && state.contains("已办结"),
            "{state}"
        );
        let page = c.source().await?;
        assert!(page.contains("¥1,234.56"), "money the Chinese way");
        shot(&c, "32-dept-answered").await?;
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    drop(driver);
    walk?;
    // Both moves and the reads are in the case's log, as through the API.
    let log = s.log_of_case(&case).await?;
    let n = |action: &str| {
        log.iter()
            .filter(|(a, e, _, _)| a == action && e == "allow")
            .count()
    };
    assert_eq!(n("slip_moved"), 2, "{log:?}");
    assert!(n("slip_read") >= 1, "{log:?}");
    s.stop().await;
    Ok(())
}

/// Item 6: the admin page renders identities seen, CRLs, the policy set and the outbox.
#[tokio::test]
async fn an_admin_page_renders() -> anyhow::Result<()> {
    let s = setup("").await?;
    let (_home, driver, c) = browser_as(&s, "admin").await?;
    let walk = async {
        c.goto(&s.hub.url("/console/")).await?;
        let nav = text_of(&c, "#nav").await?;
        assert!(
            nav.contains("系统管理") && !nav.contains("我的待办"),
            "{nav}"
        );
        c.goto(&s.hub.url("/console/admin")).await?;
        let version = text_of(&c, "#policy-version").await?;
        assert_eq!(version.len(), 12, "{version}");
        let clients = text_of(&c, "#clients").await?;
        assert!(clients.contains("admin-01"), "{clients}");
        let crls = text_of(&c, "#crls").await?;
        assert!(crls.contains("是 ✓"), "{crls}");
        assert_eq!(text_of(&c, "#outbox-backlog").await?, "0");
        shot(&c, "40-admin").await?;
        shot_of(&c, "#clients", "41-admin-clients").await?;
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    drop(driver);
    walk?;
    s.stop().await;
    Ok(())
}

/// On a tablet (768×1024, portrait) the caseworker's pages fit the screen's width: nothing makes the
/// page scroll sideways (a wide table scrolls inside its own box).
#[tokio::test]
async fn the_caseworkers_pages_fit_a_tablet() -> anyhow::Result<()> {
    let s = setup("").await?;
    // A case in the queue (its table is the widest), and its page.
    let h = &households(&s.deps, XUZHUANG)[0];
    let case = s
        .file_case("caseworker", &filing(h, "walk_in", "urgent", XUZHUANG))
        .await?;
    let case_page = format!("/console/cases/{case}");
    let (_home, driver, c) = browser_as(&s, "caseworker").await?;
    let walk = async {
        c.set_window_size(768, 1024).await?;
        for (path, name) in [
            ("/console/", "90-tablet-queue"),
            (case_page.as_str(), "94-tablet-case"),
            ("/console/cases/new", "91-tablet-new-case"),
            ("/console/checks/new", "92-tablet-new-check"),
            ("/console/checks", "93-tablet-my-checks"),
        ] {
            c.goto(&s.hub.url(path)).await?;
            let widths = c
                .execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth];",
                    vec![],
                )
                .await?;
            let (page, window) = (widths[0].as_u64(), widths[1].as_u64());
            assert!(
                page.zip(window).is_some_and(|(p, w)| p <= w),
                "{path} is wider than a tablet: {widths}"
            );
            shot(&c, name).await?;
        }
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    drop(driver);
    walk?;
    s.stop().await;
    Ok(())
}
