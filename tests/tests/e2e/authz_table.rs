//! One source of authorization truth (issue 10 findings 5, 6 and 9): every route of the served
//! OpenAPI description × every role, over real mTLS, against an expected table kept as data; each
//! 403 on a personal-data route leaves exactly one `deny` access-log entry (found by its request
//! id). Plus the cases the table cannot express: a malformed request id, a malformed body from a
//! caller who may not search at all, a namesake principal in another organisation, and a
//! department polling a running verification.

use std::collections::BTreeSet;

use connectors::sim::Fault;
use hub::pki::{CertOptions, ClientSpec};
use schemas::{Department, Role};
use serde_json::{Value, json};

use super::verification::{Setup, XUZHUANG, households, ids, letter, setup, verification};

/// The roles of the table: (certificate name in the demo PKI, label).
const ROLES: [&str; 7] = [
    "caseworker",       // township caseworker, own township (许庄)
    "caseworker-other", // township caseworker, other township (李营)
    "county-officer",   // county officer (任城区), covers 许庄
    "auditor",
    "admin",
    "dept-labor", // a partner department
    "intake",     // the 12345 hotline platform (an intake system)
];

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Allowed,
    /// 403, and exactly one `deny` entry with the request's id (a personal-data route).
    DeniedLogged,
    /// 403 and no entry (the route carries no personal data).
    Denied,
    /// 404 as for an unknown id, and no entry: the requester's own only, so ids do not leak
    /// (a verification's progress).
    Hidden,
}
use Expect::{Allowed, Denied, DeniedLogged, Hidden};

/// One row of the table: a route of the description, how to call it, and what each role gets
/// (in the order of [`ROLES`]).
struct Row {
    method: &'static str,
    path: &'static str,
    expect: [Expect; 7],
}

/// The expected table. Every (path, method) of the served description must have exactly one row.
const TABLE: &[Row] = &[
    row(
        "get",
        "/healthz",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "get",
        "/readyz",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "get",
        "/v1/whoami",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "get",
        "/v1/report-key",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "get",
        "/v1/admin/clients",
        [Denied, Denied, Denied, Denied, Allowed, Denied, Denied],
    ),
    // Personal data: a letter names the household's members.
    row(
        "post",
        "/v1/authorizations",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/verifications",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // The report is the requester's (the township caseworker's): the county officer, though in
    // jurisdiction, is refused by `requester-only`.
    row(
        "get",
        "/v1/verifications/{id}",
        [
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "get",
        "/v1/verifications/{id}/print",
        [
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // Called for every other role first: the requester's own call attaches the letter.
    row(
        "post",
        "/v1/verifications/{id}/letter",
        [
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "get",
        "/v1/verifications",
        [Allowed, Allowed, Allowed, Denied, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/v1/verifications/{id}/progress",
        [Allowed, Hidden, Hidden, Hidden, Hidden, Hidden, Hidden],
    ),
    // Cases (救助案件). Filing: the caseworker at the window and the hotline through its own
    // channel, for a 许庄 household; 李营 is refused after the body names 许庄, the others before.
    row(
        "post",
        "/v1/cases",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
        ],
    ),
    // The list carries no personal data: refused without an entry; everyone allowed sees only
    // what Cedar lets them (李营's list is empty).
    row(
        "get",
        "/v1/cases",
        [Allowed, Allowed, Allowed, Denied, Denied, Denied, Allowed],
    ),
    // The escalation queue (督办) carries no personal data: caseworkers see their own division's,
    // the others are refused without an entry.
    row(
        "get",
        "/v1/escalations",
        [Allowed, Allowed, Allowed, Denied, Denied, Denied, Denied],
    ),
    // Supervision figures (督导) carry no personal data: for county officers only, refused
    // without an entry.
    row(
        "get",
        "/v1/supervision/timeliness",
        [Denied, Denied, Allowed, Denied, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/v1/supervision/slips",
        [Denied, Denied, Allowed, Denied, Denied, Denied, Denied],
    ),
    // A look-up by resident ID is personal data: refused and logged before the body is read.
    row(
        "post",
        "/v1/cases/search",
        [
            Allowed,
            Allowed,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
        ],
    ),
    // Filed by the hotline, which reads back its own filing.
    row(
        "get",
        "/v1/cases/{id}",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/accept",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/transfer",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/first-help",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/investigation",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/hand-to-county",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/decision",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/cases/{id}/close",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // Referral slips (转办单), from a 许庄 case to labor (the table's department). Issuing is
    // personal data (the slip copies the applicant): the case's jurisdiction, refusals logged.
    row(
        "post",
        "/v1/cases/{id}/slips",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // The incoming list carries no personal data: refused without an entry; caseworkers see what
    // is addressed to their township (nothing here), labor its slips.
    row(
        "get",
        "/v1/slips",
        [Allowed, Allowed, Allowed, Denied, Denied, Allowed, Denied],
    ),
    // The issuing side (许庄, the county) follows its slips; labor reads whom to help.
    row(
        "get",
        "/v1/slips/{id}",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
        ],
    ),
    // Only the department addressed accepts and answers.
    row(
        "post",
        "/v1/slips/{id}/accept",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/slips/{id}/feedback",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
        ],
    ),
    // The caller's own list, by full identity URI (empty for everyone else).
    row(
        "get",
        "/v1/follow-ups",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "post",
        "/v1/log/search",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // A caseworker prints a subject access report only once the hub has established the person's
    // registration in their jurisdiction, which this route does not: Cedar refuses them.
    row(
        "post",
        "/v1/log/subject-report",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // Hashes and signatures only: auditors, no entry for a refusal.
    row(
        "get",
        "/v1/log/proof/inclusion",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/v1/log/proof/consistency",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/v1/log/receipt",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/v1/log/vkey",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/v1/log/rotations",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/log/checkpoint",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    // Entry bundles carry the pseudonymous record of accesses: treated like a search, and so are
    // the hash tiles (one route on the server, decided before the path is parsed).
    row(
        "get",
        "/log/tile/entries/{index}",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "get",
        "/log/tile/{level}/{index}",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // Department events: departments only, each for its own department (labor pushes a health
    // event here, refused on health's endpoint and logged).
    row(
        "post",
        "/v1/events",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // The monitoring list and the unmatched events: civil affairs only (not in the table's roles).
    row(
        "get",
        "/v1/events/unmatched",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/monitoring/uploads",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/monitoring/households",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/monitoring/households/remove",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // The warning queue: caseworkers of the household's township and the county supervisor; the
    // list answers every caseworker (each sees its own), every read and refusal is logged.
    row(
        "get",
        "/v1/warnings",
        [
            Allowed,
            Allowed,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "get",
        "/v1/warnings/{id}",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/warnings/{id}/acknowledge",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/warnings/{id}/dismiss",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/v1/warnings/{id}/convert",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // Village reports: only a village assistant files (none of these roles); caseworkers list
    // their jurisdiction's (the village-level cases are in village.rs). Every read and refusal is
    // logged.
    row(
        "post",
        "/v1/village-reports",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "get",
        "/v1/village-reports",
        [
            Allowed,
            Allowed,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    // 控制台: the pages decide as the API routes they call (GET /v1/cases, GET /v1/cases/{id},
    // POST /v1/cases); the form's post without its CSRF token is refused before any decision.
    row(
        "get",
        "/console",
        [Allowed, Allowed, Allowed, Denied, Denied, Denied, Allowed],
    ),
    row(
        "get",
        "/console/",
        [Allowed, Allowed, Allowed, Denied, Denied, Denied, Allowed],
    ),
    row(
        "get",
        "/console/cases/new",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "post",
        "/console/cases",
        [Denied, Denied, Denied, Denied, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/console/cases/{id}",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
        ],
    ),
    // 家庭核对: my checks as GET /v1/verifications; the form for anyone (the post decides); the
    // post refused without its CSRF token; a check's page as its progress (requester only, 404).
    row(
        "get",
        "/console/checks",
        [Allowed, Allowed, Allowed, Denied, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/console/checks/new",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "post",
        "/console/checks/new",
        [Denied, Denied, Denied, Denied, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/console/checks/{id}",
        [Allowed, Hidden, Hidden, Hidden, Hidden, Hidden, Hidden],
    ),
    // 督导: decided as GET /v1/supervision/timeliness (county and city caseworkers).
    row(
        "get",
        "/console/supervision",
        [Denied, Denied, Allowed, Denied, Denied, Denied, Denied],
    ),
    // 审计: `read_log` as GET /log/checkpoint (not logged); the search and the subject report are
    // form posts, refused without their CSRF token before any decision; an entry is decided like
    // an entry bundle (a denial logged as `log_searched`).
    row(
        "get",
        "/console/audit",
        [Denied, Denied, Denied, Allowed, Denied, Denied, Denied],
    ),
    row(
        "post",
        "/console/audit",
        [Denied, Denied, Denied, Denied, Denied, Denied, Denied],
    ),
    row(
        "get",
        "/console/audit/entries/{index}",
        [
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/console/audit/subject-report",
        [Denied, Denied, Denied, Denied, Denied, Denied, Denied],
    ),
    // 转办单办理: decided as GET /v1/slips (caseworkers and departments); the slip page as
    // GET /v1/slips/{id} (logged); the moves are form posts (CSRF first).
    row(
        "get",
        "/console/slips",
        [Allowed, Allowed, Allowed, Denied, Denied, Allowed, Denied],
    ),
    row(
        "get",
        "/console/slips/{id}",
        [
            Allowed,
            DeniedLogged,
            Allowed,
            DeniedLogged,
            DeniedLogged,
            Allowed,
            DeniedLogged,
        ],
    ),
    row(
        "post",
        "/console/slips/{id}/{step}",
        [Denied, Denied, Denied, Denied, Denied, Denied, Denied],
    ),
    // 系统管理: `administer` as GET /v1/admin/clients.
    row(
        "get",
        "/console/admin",
        [Denied, Denied, Denied, Denied, Allowed, Denied, Denied],
    ),
    row(
        "get",
        "/console/static/{name}",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
    row(
        "get",
        "/v1/openapi.json",
        [
            Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed,
        ],
    ),
];

const fn row(method: &'static str, path: &'static str, expect: [Expect; 7]) -> Row {
    Row {
        method,
        path,
        expect,
    }
}

/// What the table's calls need: a finished report and an emergency check awaiting its letter,
/// both requested by the township caseworker, and the household they are about.
struct Fixtures {
    report_id: String,
    emergency_id: String,
    emergency_letter: String,
    household: schemas::Household,
    /// A case filed by the hotline (for reads).
    case_id: String,
    /// For each move: a case in the stage the move starts from, for the township caseworker
    /// (and every refused role), and another for the county officer.
    move_cases: std::collections::BTreeMap<(String, bool), String>,
    /// An accepted 许庄 case slips are issued from.
    slip_case: String,
    /// Three slips of it to labor: to read, to accept, to answer.
    slips: [String; 3],
    /// A health event signed with health's real key (for `POST /v1/events`).
    event: Value,
    /// A 许庄 warning to read.
    warning: String,
    /// For each warning move: an open 许庄 warning for the township caseworker (and every refused
    /// role), and another for the county officer.
    warning_moves: std::collections::BTreeMap<(String, bool), String>,
}

/// The stage each move starts from, as the moves that lead there (a normal case).
const MOVE_PREPARATION: [(&str, &[&str]); 7] = [
    ("accept", &[]),
    ("transfer", &[]),
    ("first-help", &["accept"]),
    ("investigation", &["accept"]),
    ("hand-to-county", &["accept", "investigation"]),
    ("decision", &["accept", "investigation"]),
    ("close", &["accept", "investigation", "decision"]),
];

async fn fixtures(s: &Setup) -> anyhow::Result<Fixtures> {
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let (status, body) = s.verify_dibao("caseworker", &h, "TABLE-REPORT").await?;
    assert_eq!(status, 200, "{body}");
    let report_id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(
                &h,
                "temporary_assistance",
                "TABLE-EMERGENCY",
                "emergency",
                None,
            ),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let emergency_id = body["id"].as_str().expect("id").to_owned();
    let emergency_letter = s
        .record_letter("caseworker", &h, &["temporary_assistance"])
        .await?;
    let case_id = s.prepared_case("emergency", &[]).await?;
    let mut move_cases = std::collections::BTreeMap::new();
    for (step, steps) in MOVE_PREPARATION {
        for county in [false, true] {
            let id = s.prepared_case("normal", steps).await?;
            move_cases.insert((step.to_owned(), county), id);
        }
    }
    let slip_case = s.prepared_case("normal", &["accept"]).await?;
    let mut slips = Vec::new();
    for _ in 0..3 {
        let (status, b) = s
            .post(
                "caseworker",
                &format!("/v1/cases/{slip_case}/slips"),
                &slip_body(),
            )
            .await?;
        assert_eq!(status, 201, "{b}");
        slips.push(b["id"].as_str().expect("id").to_owned());
    }
    let slips: [String; 3] = slips.try_into().expect("three slips");
    let event = crate::events::sign(
        s.env.path(),
        "health",
        crate::events::event("health.hospitalisation", &crate::events::resident(7)),
    );
    // Warnings: monitored households of 许庄, each with a hospital stay above the threshold.
    let mut warnings = Vec::new();
    for i in 0..7 {
        let r = crate::events::resident(800_000 + i);
        crate::warnings::monitor(s, &r).await?;
        crate::warnings::push(s, "health.hospitalisation", &r, None).await?;
        let w = crate::warnings::newest(s).await?;
        warnings.push(w["id"].as_str().expect("warning id").to_owned());
    }
    let warning = warnings.pop().expect("seven");
    let mut warning_moves = std::collections::BTreeMap::new();
    for step in ["acknowledge", "dismiss", "convert"] {
        for county in [false, true] {
            let id = warnings.pop().expect("seven");
            warning_moves.insert((step.to_owned(), county), id);
        }
    }
    Ok(Fixtures {
        warning,
        warning_moves,
        event,
        report_id,
        emergency_id,
        emergency_letter,
        household: h,
        case_id,
        move_cases,
        slip_case,
        slips,
    })
}

fn slip_body() -> Value {
    json!({ "kind": "employment", "asked": "申请人失业，请落实就业援助" })
}

/// A fresh letter body (a distinct document hash each time).
fn fresh_letter(h: &schemas::Household, n: usize) -> Value {
    let mut l = letter(h, &["dibao_application"]);
    l["letter_sha256"] = json!(format!("{:064x}", 0xabc0_0000u64 + n as u64));
    l
}

/// The minimal valid request for a row: the URL (path and query) and the body, if any.
fn request(
    row: &Row,
    f: &Fixtures,
    n: usize,
    auth_for_verification: &str,
    role: usize,
) -> (String, Option<Value>) {
    let h = &f.household;
    match (row.method, row.path) {
        ("post", "/v1/cases/{id}/slips") => {
            return (
                format!("/v1/cases/{}/slips", f.slip_case),
                Some(slip_body()),
            );
        }
        ("get", "/v1/slips/{id}") => return (format!("/v1/slips/{}", f.slips[0]), None),
        ("get", "/console/slips/{id}") => {
            return (format!("/console/slips/{}", f.slips[0]), None);
        }
        ("post", "/v1/slips/{id}/accept") => {
            return (format!("/v1/slips/{}/accept", f.slips[1]), Some(json!({})));
        }
        ("post", "/v1/slips/{id}/feedback") => {
            return (
                format!("/v1/slips/{}/feedback", f.slips[2]),
                Some(json!({ "result": "done", "text": "已推荐就业岗位" })),
            );
        }
        _ => {}
    }
    if let Some(step) = row.path.strip_prefix("/v1/warnings/{id}/") {
        let w = &f.warning_moves[&(step.to_owned(), ROLES[role] == "county-officer")];
        let body = match step {
            "dismiss" => json!({ "reason": "经核实无需救助" }),
            "convert" => {
                json!({ "name": "王秀英", "phone": "13800000001", "description": "住院自付费用高" })
            }
            _ => json!({}),
        };
        return (format!("/v1/warnings/{w}/{step}"), Some(body));
    }
    if row.path == "/v1/warnings/{id}" {
        return (format!("/v1/warnings/{}", f.warning), None);
    }
    if let Some(step) = row.path.strip_prefix("/v1/cases/{id}/") {
        let case = &f.move_cases[&(step.to_owned(), ROLES[role] == "county-officer")];
        return (
            format!("/v1/cases/{case}/{step}"),
            Some(crate::cases::move_body(step)),
        );
    }
    match (row.method, row.path) {
        ("get", "/v1/cases/{id}") => (format!("/v1/cases/{}", f.case_id), None),
        ("get", "/console/cases/{id}") => (format!("/console/cases/{}", f.case_id), None),
        ("get", "/console/static/{name}") => ("/console/static/console.css".into(), None),
        ("get", "/console/audit/entries/{index}") => ("/console/audit/entries/0".into(), None),
        ("post", "/console/slips/{id}/{step}") => (
            format!("/console/slips/{}/accept", uuid::Uuid::new_v4()),
            None,
        ),
        ("post", "/v1/cases/search") => (
            "/v1/cases/search".into(),
            Some(json!({ "resident_id": ids(h)[0] })),
        ),
        ("post", "/v1/cases") => {
            let channel = if ROLES[role] == "intake" {
                "hotline_12345"
            } else {
                "walk_in"
            };
            (
                "/v1/cases".into(),
                Some(crate::cases::filing(h, channel, "normal", XUZHUANG)),
            )
        }
        ("get", "/v1/verifications/{id}") => (format!("/v1/verifications/{}", f.report_id), None),
        ("get", "/v1/verifications/{id}/progress") => {
            (format!("/v1/verifications/{}/progress", f.report_id), None)
        }
        ("get", "/console/checks/{id}") => (format!("/console/checks/{}", f.report_id), None),
        ("get", "/v1/verifications/{id}/print") => {
            (format!("/v1/verifications/{}/print", f.report_id), None)
        }
        ("post", "/v1/verifications/{id}/letter") => (
            format!("/v1/verifications/{}/letter", f.emergency_id),
            Some(json!({ "authorization_id": f.emergency_letter })),
        ),
        ("post", "/v1/authorizations") => ("/v1/authorizations".into(), Some(fresh_letter(h, n))),
        ("post", "/v1/verifications") => (
            "/v1/verifications".into(),
            Some(verification(
                h,
                "dibao_application",
                &format!("TABLE-{n}"),
                "normal",
                Some(auth_for_verification),
            )),
        ),
        ("post", "/v1/log/search") => ("/v1/log/search".into(), Some(json!({}))),
        ("post", "/v1/events") => ("/v1/events".into(), Some(f.event.clone())),
        ("post", "/v1/log/subject-report") => (
            "/v1/log/subject-report".into(),
            Some(json!({ "resident_id": ids(h)[0] })),
        ),
        ("get", "/v1/log/proof/inclusion") => ("/v1/log/proof/inclusion?index=0".into(), None),
        ("get", "/v1/log/proof/consistency") => ("/v1/log/proof/consistency?old=1".into(), None),
        ("get", "/v1/log/receipt") => ("/v1/log/receipt?index=0".into(), None),
        ("get", "/log/tile/entries/{index}") => ("/log/tile/entries/000.p/1".into(), None),
        ("get", "/log/tile/{level}/{index}") => ("/log/tile/0/000.p/1".into(), None),
        (_, p) => (p.to_owned(), None),
    }
}

/// Call `url` as `who` with request id `rid`; returns the status and the response's request id.
async fn call(
    s: &Setup,
    who: &str,
    method: &str,
    url: &str,
    body: Option<&Value>,
    rid: &str,
) -> anyhow::Result<(u16, String, String)> {
    let c = s.env.http(who)?;
    let r = match method {
        "get" => c.get(s.hub.url(url)),
        "post" => c.post(s.hub.url(url)).json(body.unwrap_or(&json!({}))),
        m => anyhow::bail!("no call for method {m}"),
    };
    let r = r.header("x-request-id", rid).send().await?;
    let status = r.status().as_u16();
    let echoed = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, echoed, r.text().await?))
}

/// The access-log entries (as JSON) whose request id is `rid`, read by the auditor.
async fn entries_with_request_id(s: &Setup, rid: &str) -> anyhow::Result<Vec<Value>> {
    let (status, body) = s.post("auditor", "/v1/log/search", &json!({})).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|f| f["entry"].clone())
        .filter(|e| e["request_id"] == rid)
        .collect())
}

/// Check one call against the table: the status class, and for a refusal on a personal-data
/// route exactly one `deny` entry with this request id (none on the other routes).
async fn check(
    s: &Setup,
    row: &Row,
    role: usize,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<()> {
    let who = ROLES[role];
    let expected = row.expect[role];
    let rid = format!("table-{}-{}", who, uuid::Uuid::new_v4().simple());
    let (status, used, text) = call(s, who, row.method, url, body, &rid).await?;
    let what = format!("{} {} as {who}", row.method, row.path);
    // The id the hub used (ours, unless it was not a valid one: a hex run of 15 digits is not).
    assert!(!used.is_empty(), "{what}: no x-request-id in the response");
    match expected {
        Allowed => assert!((200..300).contains(&status), "{what}: {status} {text}"),
        Hidden => assert_eq!(status, 404, "{what}: {text}"),
        Denied | DeniedLogged => {
            assert_eq!(status, 403, "{what}: {text}");
            if row.path.starts_with("/console") {
                // A page: the stable code in the page (`csrf_failed` for a form post without
                // its token).
                assert!(
                    text.contains("<code>forbidden</code>")
                        || text.contains("<code>csrf_failed</code>"),
                    "{what}: {text}"
                );
            } else {
                let body: Value = serde_json::from_str(&text)?;
                assert_eq!(body["error"]["code"], "forbidden", "{what}: {text}");
            }
        }
    }
    let all = entries_with_request_id(s, &used).await?;
    let denies: Vec<Value> = all
        .into_iter()
        .filter(|e| e["decision"]["effect"] == "deny")
        .collect();
    let want = usize::from(expected == DeniedLogged);
    assert_eq!(denies.len(), want, "{what}: deny entries {denies:?}");
    if let Some(e) = denies.first() {
        assert_eq!(e["outcome"], "denied", "{what}: {e}");
        // The entry names the Cedar policies that decided (none when nothing permitted), never a
        // rule that lives outside the policy set.
        let shipped = policies::PolicyEngine::load(policies::PolicyEngine::shipped_dir())?;
        let known: BTreeSet<&str> = shipped.policy_ids().collect();
        for id in e["decision"]["policy_ids"].as_array().expect("policy_ids") {
            let id = id.as_str().unwrap_or_default();
            assert!(
                known.contains(id),
                "{what}: {id} is not a Cedar policy: {e}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_route_and_role_matches_the_table_and_every_refusal_is_logged() -> anyhow::Result<()>
{
    // The fixtures move many cases: a caseworker budget that does not get in the way.
    let s = setup("[rate_limits]\ncaseworker = { per_second = 1000, burst = 1000 }\n").await?;
    let f = fixtures(&s).await?;

    // The table covers exactly the served description.
    let r = s
        .env
        .http("caseworker")?
        .get(s.hub.url("/v1/openapi.json"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await?;
    let mut served = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                served.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let table: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(table.len(), TABLE.len(), "one row per route");
    assert_eq!(
        served, table,
        "every route of /v1/openapi.json has a row in the table, and no other"
    );

    let auth = s
        .record_letter("caseworker", &f.household, &["dibao_application"])
        .await?;
    let mut n = 0;
    for row in TABLE {
        // The requester goes last: their letter call attaches the letter for good.
        for role in [1, 2, 3, 4, 5, 6, 0] {
            n += 1;
            let (url, body) = request(row, &f, n, &auth, role);
            check(&s, row, role, &url, body.as_ref()).await?;
        }
    }
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_and_the_denial_logged() -> anyhow::Result<()> {
    let s = setup("").await?;
    for bad in [
        "has spaces",
        "370811199001011234-looks-like-an-id",
        &"x".repeat(300),
    ] {
        let (status, echoed, text) = call(
            &s,
            "caseworker",
            "post",
            "/v1/log/search",
            Some(&json!({})),
            bad,
        )
        .await?;
        assert_eq!(status, 403, "{text}");
        assert_ne!(echoed, bad);
        assert!(
            uuid::Uuid::parse_str(&echoed).is_ok(),
            "the hub tells the caller the id it used: {echoed}"
        );
        let logged = entries_with_request_id(&s, &echoed).await?;
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["decision"]["effect"], "deny");
        assert_eq!(logged[0]["action"], "log_searched");
    }
    // A valid id is kept, and names the entry.
    let (status, echoed, _) = call(
        &s,
        "caseworker",
        "post",
        "/v1/log/search",
        Some(&json!({})),
        "client-chosen-id-1",
    )
    .await?;
    assert_eq!((status, echoed.as_str()), (403, "client-chosen-id-1"));
    assert_eq!(
        entries_with_request_id(&s, "client-chosen-id-1")
            .await?
            .len(),
        1
    );
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_malformed_search_by_a_caller_who_may_not_search_is_refused_and_logged()
-> anyhow::Result<()> {
    let s = setup("").await?;
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let valid = json!({ "resident_id": ids(&h)[0] });
    for body in [json!({"resident_id": "123"}), json!([null, null]), valid] {
        let rid = format!("search-{}", uuid::Uuid::new_v4().simple());
        let (status, used, text) = call(
            &s,
            "caseworker",
            "post",
            "/v1/log/search",
            Some(&body),
            &rid,
        )
        .await?;
        assert_eq!(status, 403, "{body}: {text}");
        let logged = entries_with_request_id(&s, &used).await?;
        assert_eq!(logged.len(), 1, "{body}: {logged:?}");
        assert_eq!(logged[0]["decision"]["effect"], "deny");
        assert_eq!(
            logged[0]["decision"]["policy_ids"],
            json!(["log-search-auditors-only"])
        );
    }
    // An auditor's malformed search is a 400, after the (allowing) decision.
    let (status, body) = s
        .post("auditor", "/v1/log/search", &json!({"resident_id": "123"}))
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "resident_id");
    // The same for a malformed query string on a log read: decided first.
    for (who, want) in [("caseworker", 403), ("auditor", 400)] {
        let r = s
            .env
            .http(who)?
            .get(s.hub.url("/v1/log/proof/inclusion?index=abc"))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), want, "{who}");
    }
    // Admins never touch personal data (Cedar), so no log search and no subject report.
    for path in ["/v1/log/search", "/v1/log/subject-report"] {
        let (status, body) = s
            .post("admin", path, &json!({ "resident_id": ids(&h)[0] }))
            .await?;
        assert_eq!(status, 403, "{path}: {body}");
    }
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_namesake_principal_in_another_organisation_reads_nothing() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let (status, body) = s.verify_dibao("caseworker", &h, "NAMESAKE-1").await?;
    assert_eq!(status, 200, "{body}");
    let vid = body["id"].as_str().expect("id").to_owned();
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(&h, "temporary_assistance", "NAMESAKE-2", "emergency", None),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let emergency = body["id"].as_str().expect("id").to_owned();

    // Same principal id, same township, another organisation: a second certificate.
    let me: Value = s
        .env
        .http("caseworker")?
        .get(s.hub.url("/v1/whoami"))
        .send()
        .await?
        .json()
        .await?;
    let uri = me["uri"].as_str().expect("uri");
    let namesake_uri = uri.replace("/mz-370811002/", "/mz-370811005/");
    assert_ne!(uri, namesake_uri);
    let spec = ClientSpec {
        role: Role::Caseworker,
        organisation: "mz-370811005".into(),
        division: XUZHUANG.into(),
        principal: me["principal"].as_str().expect("principal").into(),
        display_name: "同名经办人 (namesake)".into(),
    };
    let mut opts = CertOptions::client(30);
    opts.uri_sans = Some(vec![namesake_uri.clone()]);
    s.env.pki.issue_client_with("namesake", &spec, &opts)?;
    let who: Value = s
        .env
        .http("namesake")?
        .get(s.hub.url("/v1/whoami"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(who["principal"], me["principal"]);
    assert_eq!(who["uri"], namesake_uri.as_str());

    for path in [
        format!("/v1/verifications/{vid}"),
        format!("/v1/verifications/{vid}/print"),
    ] {
        let rid = format!("namesake-{}", uuid::Uuid::new_v4().simple());
        let (status, used, text) = call(&s, "namesake", "get", &path, None, &rid).await?;
        assert_eq!(status, 403, "{path}: {text}");
        let logged = entries_with_request_id(&s, &used).await?;
        assert_eq!(logged.len(), 1, "{path}: {logged:?}");
        assert_eq!(
            logged[0]["decision"]["policy_ids"],
            json!(["requester-only"])
        );
    }
    // Idempotency keys belong to the full identity: the same key is the namesake's own.
    let mut ids_seen = Vec::new();
    for (who, case) in [("caseworker", "NAMESAKE-K1"), ("namesake", "NAMESAKE-K2")] {
        let auth = s.record_letter(who, &h, &["dibao_application"]).await?;
        let r = s
            .env
            .http(who)?
            .post(s.hub.url("/v1/verifications"))
            .header("idempotency-key", "same-key-1")
            .json(&verification(
                &h,
                "dibao_application",
                case,
                "normal",
                Some(&auth),
            ))
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        assert_eq!(status, 200, "{who}: {body}");
        ids_seen.push(body["id"].as_str().expect("id").to_owned());
    }
    assert_ne!(ids_seen[0], ids_seen[1]);
    // Nor may it attach the letter of the other one's emergency check.
    let auth = s
        .record_letter("namesake", &h, &["temporary_assistance"])
        .await?;
    let (status, body) = s
        .post(
            "namesake",
            &format!("/v1/verifications/{emergency}/letter"),
            &json!({ "authorization_id": auth }),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    // And sees none of their follow-ups.
    let r: Value = s
        .env
        .http("namesake")?
        .get(s.hub.url("/v1/follow-ups"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r["follow_ups"], json!([]), "{r}");
    let r: Value = s
        .env
        .http("caseworker")?
        .get(s.hub.url("/v1/follow-ups"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r["follow_ups"].as_array().map(Vec::len), Some(1), "{r}");
    s.stop().await;
    Ok(())
}

#[tokio::test]
async fn polling_a_running_verification_is_decided_and_a_refusal_logged() -> anyhow::Result<()> {
    let s = setup("").await?;
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let auth = s
        .record_letter("caseworker", &h, &["dibao_application"])
        .await?;
    s.deps.handles[&Department::Labor].set_fault(Fault::Delay { delay_ms: 3000 });
    let mut req = verification(&h, "dibao_application", "POLL-1", "normal", Some(&auth));
    req["wait_ms"] = json!(100);
    let (status, body) = s.post("caseworker", "/v1/verifications", &req).await?;
    assert_eq!(status, 202, "{body}");
    let vid = body["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/verifications/{vid}");

    for who in ["dept-labor", "caseworker-other", "county-officer"] {
        let rid = format!("poll-{}", uuid::Uuid::new_v4().simple());
        let (status, used, text) = call(&s, who, "get", &path, None, &rid).await?;
        assert_eq!(status, 403, "{who}: {text}");
        let logged = entries_with_request_id(&s, &used).await?;
        assert_eq!(logged.len(), 1, "{who}: {logged:?}");
        assert_eq!(logged[0]["decision"]["effect"], "deny");
        assert_eq!(logged[0]["action"], "report_viewed");
        assert_eq!(logged[0]["case_ref"], "POLL-1");
    }
    let (status, _, text) = call(&s, "caseworker", "get", &path, None, "poll-own").await?;
    assert_eq!(status, 202, "{text}");
    s.deps.handles[&Department::Labor].set_fault(Fault::None);
    s.stop().await;
    Ok(())
}
