//! 家庭核对 from the console in a real browser (issue 13 items 2, 8 and 9): a caseworker fills the
//! household check form, uploads the letter, submits, watches each department's status arrive
//! (one department answers late, so its row goes from 待答复 to 已答复 on the page), reads the
//! report, opens its print view, prints it to PDF (WebDriver's Print Page; rendered to PNG with
//! `pdftoppm`) and finds the check under 我的核对. Screenshots under `target/console-screenshots/`.
//!
//! Also over plain mTLS: `Prefer: respond-async` answers 202 at once, and the progress of a check
//! is its requester's only (anyone else gets 404).

use std::process::Command;
use std::time::Duration;

use connectors::sim::Fault;
use fantoccini::Locator;
use fantoccini::wd::PrintConfiguration;
use schemas::{Department, Household, Relation};
use serde_json::{Value, json};

use crate::browser::{browser_as, screenshot_dir, shot, shot_of, text_of, text_once};
use crate::verification::{Setup, XUZHUANG, households, in_days, setup, verification};

/// A household of three (the printed report must fit two A4 pages), applicant first.
fn three_member_household(s: &Setup) -> Household {
    let mut h = households(&s.deps, XUZHUANG)
        .into_iter()
        .find(|h| h.members.len() == 3)
        .expect("a 许庄街道 household of three");
    h.members
        .sort_by_key(|m| (m.relation != Relation::Applicant, m.relation.code()));
    h
}

/// A resident ID with a wrong check digit.
fn wrong_check_digit(rid: &str) -> String {
    let (body, last) = rid.split_at(17);
    let other = if last == "0" { "1" } else { "0" };
    format!("{body}{other}")
}

async fn fill(c: &fantoccini::Client, name: &str, value: &str) -> anyhow::Result<()> {
    let el = c.find(Locator::Css(&format!("[name={name}]"))).await?;
    el.clear().await?;
    el.send_keys(value).await?;
    Ok(())
}

/// Date inputs are set through script (typing into them depends on the browser's locale).
async fn set_date(c: &fantoccini::Client, name: &str, date: &str) -> anyhow::Result<()> {
    c.execute(
        "document.querySelector('input[name=' + arguments[0] + ']').value = arguments[1];",
        vec![json!(name), json!(date)],
    )
    .await?;
    Ok(())
}

fn today() -> String {
    in_days(0)
}

#[tokio::test]
async fn a_caseworker_runs_a_household_check_from_the_console() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = three_member_household(&s);
    // Housing answers late: its row is 待答复 while the others have answered.
    s.deps.handles[&Department::Housing].set_fault(Fault::Delay { delay_ms: 4000 });
    let dir = tempfile::tempdir()?;
    let letter_path = dir.path().join("授权书.pdf");
    std::fs::write(
        &letter_path,
        format!("%PDF-1.4\n% scanned letter {}\n", uuid::Uuid::new_v4()),
    )?;
    let case_ref = format!(
        "jc-console-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );

    let (_home, driver, c) = browser_as(&s, "caseworker").await?;
    let walk = async {
        // 1. 我的核对 from the navigation, then the form.
        c.goto(&s.hub.url("/console/")).await?;
        let nav = text_of(&c, "#nav").await?;
        assert!(nav.contains("我的核对"), "{nav}");
        c.find(Locator::LinkText("我的核对 Checks"))
            .await?
            .click()
            .await?;
        c.wait().for_element(Locator::Id("new-check-link")).await?;
        c.find(Locator::Id("new-check-link")).await?.click().await?;
        c.wait().for_element(Locator::Id("new-check")).await?;

        // 2. The form, with the second member's resident ID mistyped.
        fill(&c, "case_ref", &case_ref).await?;
        for (i, m) in h.members.iter().enumerate() {
            fill(&c, &format!("m{i}_name"), &m.name).await?;
            let rid = if i == 1 {
                wrong_check_digit(m.resident_id.as_str())
            } else {
                m.resident_id.as_str().to_owned()
            };
            fill(&c, &format!("m{i}_resident_id"), &rid).await?;
            c.find(Locator::Css(&format!("select[name=m{i}_relation]")))
                .await?
                .select_by_value(m.relation.code())
                .await?;
        }
        let upload = |c: &fantoccini::Client| {
            let p = letter_path.display().to_string();
            let c = c.clone();
            async move {
                c.find(Locator::Css("input[name=letter]"))
                    .await?
                    .send_keys(&p)
                    .await?;
                anyhow::Ok(())
            }
        };
        upload(&c).await?;
        set_date(&c, "signed_on", &today()).await?;
        set_date(&c, "valid_until", &in_days(60)).await?;
        fill(&c, "declared_income", "1200").await?;
        c.find(Locator::Css("input[name=declaration]"))
            .await?
            .click()
            .await?;
        shot(&c, "70-check-form").await?;
        c.find(Locator::Id("submit-check")).await?.click().await?;

        // 3. Refused next to the field at fault, in Chinese; the typed values are kept.
        let err = text_of(&c, "#rid-error").await?;
        assert!(
            err.contains("第2行成员") && err.contains("公民身份号码无效"),
            "{err}"
        );
        let kept = c
            .find(Locator::Css("input[name=m0_name]"))
            .await?
            .prop("value")
            .await?
            .unwrap_or_default();
        assert_eq!(kept, h.members[0].name);
        shot_of(&c, "#members", "71-check-form-refused").await?;

        // 4. Corrected (the file is chosen again), submitted: the check page.
        fill(&c, "m1_resident_id", h.members[1].resident_id.as_str()).await?;
        upload(&c).await?;
        c.find(Locator::Id("submit-check")).await?.click().await?;
        let title = text_of(&c, "#check-title").await?;
        assert!(
            title.contains("低保申请") && title.contains(&case_ref),
            "{title}"
        );
        let url = c.current_url().await?;
        let vid = url
            .path()
            .strip_prefix("/console/checks/")
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("not on a check page: {url}"))?;

        // 5. The departments' statuses arrive: housing pending, then answered.
        let housing = "#departments tr[data-dept=housing] td.state";
        let pending = text_once(&c, housing, "待答复").await?;
        assert!(pending.contains("待答复"), "{pending}");
        let board = text_of(&c, "#departments").await?;
        assert!(board.contains("已答复"), "others answered first: {board}");
        shot(&c, "72-check-progress").await?;
        let answered = text_once(&c, housing, "已答复").await?;
        assert!(answered.contains("已答复"), "{answered}");

        // 6. The report (the page reloads itself when the check is done).
        let report = text_once(&c, "#report", "核算结果").await?;
        assert!(
            report.contains("家庭月人均收入") && report.contains("¥"),
            "{report}"
        );
        assert_eq!(text_of(&c, "#check-status").await?, "已完成 / done");
        let page = c.source().await?;
        for m in &h.members {
            assert!(
                !page.contains(m.resident_id.as_str()),
                "no resident ID on the page"
            );
        }
        shot(&c, "73-check-done").await?;
        shot_of(&c, "#report", "74-check-report").await?;

        // 7. The print view, and its PDF.
        let print = c
            .find(Locator::Id("print-link"))
            .await?
            .attr("href")
            .await?
            .unwrap_or_default();
        assert_eq!(print, format!("/v1/verifications/{vid}/print"));
        c.goto(&s.hub.url(&print)).await?;
        let heading = text_of(&c, "h1").await?;
        assert!(heading.contains("家庭经济状况核对报告"), "{heading}");
        // Codes in Chinese: no wire code in a table cell, the members labelled as the
        // indications name them (m1, m2, …).
        let printed = c.source().await?;
        for code in [
            "（married）",
            "（employed）",
            "（none）",
            "declared.household",
        ] {
            assert!(!printed.contains(code), "{code} on the printed page");
        }
        assert!(
            printed.contains("m1 ") && printed.contains("m3 "),
            "members labelled m1…m3"
        );
        shot(&c, "75-print-view").await?;
        let a4 = PrintConfiguration::builder()
            .build()
            .map_err(|e| anyhow::anyhow!("print configuration: {e:?}"))?;
        let pdf = c.print(a4).await?;

        // 8. 我的核对 lists it, done, with its letter on record.
        c.goto(&s.hub.url("/console/checks")).await?;
        let checks = text_of(&c, "#checks").await?;
        assert!(
            checks.contains(&case_ref)
                && checks.contains("已完成")
                && checks.contains("授权书在案"),
            "{checks}"
        );
        shot(&c, "76-my-checks").await?;
        anyhow::Ok((vid, pdf))
    }
    .await;
    c.close().await?;
    drop(driver);
    let (vid, pdf) = walk?;

    // The printed report of a household of three fits two A4 pages; its pages as PNG.
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots)?;
    let pdf_path = shots.join("print-report.pdf");
    std::fs::write(&pdf_path, &pdf)?;
    for old in std::fs::read_dir(&shots)? {
        let p = old?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("print-report-") && name.ends_with(".png") {
            std::fs::remove_file(&p)?;
        }
    }
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "80"])
        .arg(&pdf_path)
        .arg(shots.join("print-report"))
        .output()
        .map_err(|e| anyhow::anyhow!("pdftoppm not found ({e}): apt-get install poppler-utils"))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages = std::fs::read_dir(&shots)?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("print-report-") && n.ends_with(".png")
        })
        .count();
    // Issue 13 item 9: a household of three prints on two A4 pages.
    assert!(
        (1..=2).contains(&pages),
        "a household of three prints on at most two A4 pages, not {pages}"
    );

    // The check and the page's view of its report are in the access log.
    let log = s.log_of_case(&case_ref).await?;
    let has = |action: &str| log.iter().any(|(a, e, _, _)| a == action && e == "allow");
    assert!(
        has("verification_requested") && has("department_queried") && has("report_viewed"),
        "{log:?}"
    );
    // The progress is the requester's only: another caseworker gets 404, as for no such id.
    let (status, _) = s
        .get(
            "caseworker-other",
            &format!("/v1/verifications/{vid}/progress"),
        )
        .await?;
    assert_eq!(status, 404);
    let (status, p) = s
        .get("caseworker", &format!("/v1/verifications/{vid}/progress"))
        .await?;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "done");
    s.stop().await;
    Ok(())
}

/// `Prefer: respond-async`: 202 at once with the progress route; the departments go from pending
/// to answered; the report is stored; a refused check ends `failed` with the policy's reason.
#[tokio::test]
async fn respond_async_answers_at_once_and_shows_progress() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = households(&s.deps, XUZHUANG)
        .into_iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household of two or more");
    s.deps.handles[&Department::Housing].set_fault(Fault::Delay { delay_ms: 1500 });
    let auth = s
        .record_letter("caseworker", &h, &["dibao_application"])
        .await?;
    let post = |who: &'static str, body: Value| {
        let s = &s;
        async move {
            let r = s
                .env
                .http(who)?
                .post(s.hub.url("/v1/verifications"))
                .header("prefer", "respond-async")
                .json(&body)
                .send()
                .await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.json::<Value>().await?))
        }
    };
    let (status, b) = post(
        "caseworker",
        verification(
            &h,
            "dibao_application",
            "case-async-1",
            "normal",
            Some(&auth),
        ),
    )
    .await?;
    assert_eq!(status, 202, "{b}");
    let vid = b["id"].as_str().expect("id").to_owned();
    assert_eq!(b["status"], "running");
    assert_eq!(
        b["progress"],
        format!("/v1/verifications/{vid}/progress").as_str()
    );
    // Poll until done, seeing housing pending on the way (it answers 1.5 s late).
    let mut saw_pending = false;
    let progress = loop {
        let (status, p) = s
            .get("caseworker", b["progress"].as_str().unwrap_or_default())
            .await?;
        assert_eq!(status, 200, "{p}");
        let housing = p["departments"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["department"] == "housing"))
            .map(|d| d["state"].clone());
        saw_pending |= housing == Some(json!("pending"));
        if p["status"] != "running" {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(saw_pending, "housing was pending while it had not answered");
    assert_eq!(progress["status"], "done", "{progress}");
    assert!(
        progress["departments"]
            .as_array()
            .is_some_and(|a| a.len() == 7 && a.iter().all(|d| d["state"] == "answered")),
        "{progress}"
    );
    assert!(
        !progress
            .to_string()
            .contains(h.members[0].resident_id.as_str())
    );
    let (status, report) = s
        .get("caseworker", &format!("/v1/verifications/{vid}"))
        .await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["id"], vid.as_str());

    // Another township's household: accepted at once, refused by policy in the background.
    let other = households(&s.deps, crate::verification::OTHER_TOWNSHIP)
        .into_iter()
        .next()
        .expect("a household");
    let (status, b) = post(
        "caseworker",
        verification(
            &other,
            "dibao_application",
            "case-async-2",
            "emergency",
            None,
        ),
    )
    .await?;
    assert_eq!(status, 202, "{b}");
    let path = b["progress"].as_str().unwrap_or_default().to_owned();
    let failed = loop {
        let (_, p) = s.get("caseworker", &path).await?;
        if p["status"] != "running" {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "forbidden", "{failed}");
    // Invalid input is still refused at once, naming the field.
    let (status, b) = post(
        "caseworker",
        verification(&h, "no_such_purpose", "case-async-3", "normal", None),
    )
    .await?;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["field"], "purpose", "{b}");
    s.stop().await;
    Ok(())
}

/// A hidden input's value in a page (`<input type="hidden" name="N" value="V">`).
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// A `multipart/form-data` body of text fields, as a browser sends the check form.
fn multipart(fields: &[(String, String)]) -> (String, Vec<u8>) {
    let boundary = "----jsjFormBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The check form sent twice (a double click, or back and send again) starts one check: the form
/// carries its own `Idempotency-Key`, so both answers lead to the same check page. A new form (a
/// new key) is a new check.
#[tokio::test]
async fn the_same_check_form_sent_twice_starts_one_check() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = three_member_household(&s);
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(s.env.client_config(Some("caseworker"))?)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form_url = s.hub.url("/console/checks/new");
    let origin = s.hub.url("");
    // The empty form: its CSRF token (also set as the cookie) and its own key.
    let open_form = || {
        let (client, form_url) = (&client, &form_url);
        async move {
            let r = client.get(form_url).send().await?;
            assert_eq!(r.status(), 200);
            let cookie = r
                .headers()
                .get(reqwest::header::SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .expect("the form sets its token cookie")
                .to_owned();
            let html = r.text().await?;
            let csrf = hidden_value(&html, "csrf").expect("csrf field");
            let idem = hidden_value(&html, "idem").expect("idem field");
            anyhow::Ok((cookie, csrf, idem))
        }
    };
    let (cookie, csrf, idem) = open_form().await?;
    assert_eq!(idem.len(), 36, "a UUID: {idem}");
    let send = |csrf: String, idem: String, cookie: String| {
        let (client, form_url, origin, h) = (&client, &form_url, &origin, &h);
        async move {
            // An urgent check for temporary assistance may run before its letter: no file.
            let mut fields: Vec<(String, String)> = vec![
                ("csrf".into(), csrf),
                ("idem".into(), idem),
                ("purpose".into(), "temporary_assistance".into()),
                ("urgency".into(), "urgent".into()),
                ("case_ref".into(), "jc-twice-1".into()),
                ("registered_division".into(), XUZHUANG.into()),
                ("declaration".into(), "on".into()),
            ];
            for (i, m) in h.members.iter().enumerate() {
                fields.push((format!("m{i}_name"), m.name.clone()));
                fields.push((format!("m{i}_resident_id"), m.resident_id.as_str().into()));
                fields.push((format!("m{i}_relation"), m.relation.code().into()));
            }
            let (ct, body) = multipart(&fields);
            let r = client
                .post(form_url)
                .header("origin", origin)
                .header("cookie", cookie)
                .header("content-type", ct)
                .body(body)
                .send()
                .await?;
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = r.text().await?;
            assert_eq!(status, 303, "{text}");
            assert!(location.starts_with("/console/checks/"), "{location}");
            anyhow::Ok(location)
        }
    };
    let first = send(csrf.clone(), idem.clone(), cookie.clone()).await?;
    let again = send(csrf.clone(), idem.clone(), cookie.clone()).await?;
    assert_eq!(first, again, "the same form twice is one check");
    // Once it is done, the same form still leads to that check.
    let vid = first.trim_start_matches("/console/checks/").to_owned();
    for _ in 0..100 {
        let (_, p) = s
            .get("caseworker", &format!("/v1/verifications/{vid}/progress"))
            .await?;
        if p["status"] != "running" {
            assert_eq!(p["status"], "done", "{p}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done_again = send(csrf.clone(), idem.clone(), cookie.clone()).await?;
    assert_eq!(first, done_again, "the same form after the check ended");
    // A new form is a new check.
    let (cookie2, csrf2, idem2) = open_form().await?;
    assert_ne!(idem2, idem, "every form shown gets its own key");
    let other = send(csrf2, idem2, cookie2).await?;
    assert_ne!(first, other, "a new form (a new key) is a new check");
    s.stop().await;
    Ok(())
}
