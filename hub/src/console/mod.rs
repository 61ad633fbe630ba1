//! 控制台: the zh-CN web console on the hub's mTLS port, under `/console/`.
//!
//! The browser's client certificate is the login (no passwords): every page takes the same
//! [`Caller`] as the API and shows who that is (display name, role and division in Chinese).
//! Pages are server-rendered from compiled askama templates (`hub/templates/`); the one stylesheet
//! is embedded in the binary ([`assets`]) and served with an ETag and a long cache under a
//! content-hashed query string.
//!
//! - [`format`]: Beijing time the Chinese way (2026年11月29日 14:05), money (¥1,234.56),
//!   divisions by name — shared with the printed documents.
//! - [`pages`]: the queue (`GET /console/`, sorted by `?sort=clock|opened|state`), the case page
//!   (`GET /console/cases/{id}`) and the open-case form (`GET /console/cases/new`,
//!   `POST /console/cases`).
//! - [`casework`]: the case page's action forms (`POST /console/cases/{id}/{step}`: accept,
//!   first-help, investigation, hand-to-county, decision, close, slips) and the outcome notice
//!   to print (`GET /console/cases/{id}/notice`).
//! - [`roles`]: the supervisor's page (`/console/supervision`), the auditor's
//!   (`/console/audit`, entries with their inclusion proof verified, the subject-access report),
//!   the department operator's slips and connection figures (`/console/slips`) and the admin's
//!   status page (`/console/admin`); the navigation shows the pages Cedar lets the caller open.
//! - [`checks`]: the household check form (`/console/checks/new`), the check page with each
//!   department's status as it arrives and then the report (`/console/checks/{id}`, polled by
//!   the static `check.js`), and 我的核对 (`/console/checks`).
//! - [`csrf`]: the per-session form token (HMAC-SHA256 of the certificate's identity under a key
//!   derived from the hub's signing key), its SameSite=Strict cookie and the Origin/Referer check.
//!
//! Invariants:
//! - The console is a client of the API's own handlers: a page calls the very function the route
//!   calls (`cases::api::list_cases`, `read_case`, `open_case`, `run_move`,
//!   `slips_api::list_slips`, `issue_slip`), so Cedar
//!   decides exactly as for the API and every read of personal data is the same access-log entry.
//!   There is no second rule set here: no role check, no comparison of divisions.
//! - A refusal is HTTP 403 with the policy's Chinese reason on a page, never a blank answer.
//! - No inline script and no inline style: every console answer carries a strict
//!   Content-Security-Policy ([`security_headers`]); pages are `no-store`.
//! - No HTML is built by string concatenation: templates escape every value.

pub mod assets;
mod casework;
mod checks;
pub mod csrf;
pub mod format;
mod pages;
mod roles;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;

use crate::api::AppState;

/// The console's routes (merged into the API router, so they share its layers).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::to_console))
        .route("/console/", get(pages::queue))
        .route("/console/queue", get(pages::queue))
        .route("/console/cases", axum::routing::post(pages::open_case))
        .route("/console/cases/new", get(pages::new_case))
        .route("/console/cases/{id}", get(pages::case_page))
        // The case page's actions and the outcome notice (`casework`).
        .route("/console/cases/{id}/notice", get(casework::notice))
        .route(
            "/console/cases/{id}/{step}",
            axum::routing::post(casework::case_step),
        )
        .route("/console/supervision", get(roles::supervision))
        .route(
            "/console/audit",
            get(roles::audit).post(roles::audit_search),
        )
        .route("/console/audit/entries/{index}", get(roles::audit_entry))
        .route(
            "/console/audit/subject-report",
            axum::routing::post(roles::subject_report),
        )
        .route("/console/slips", get(roles::slips))
        .route("/console/slips/{id}", get(roles::slip))
        .route(
            "/console/slips/{id}/{step}",
            axum::routing::post(roles::slip_move),
        )
        .route("/console/admin", get(roles::admin))
        // 家庭核对 (console::checks)
        .route("/console/checks", get(checks::my_checks))
        .route(
            "/console/checks/new",
            get(checks::new_check).post(checks::submit_check),
        )
        .route("/console/checks/{id}", get(checks::check_page))
        .route("/console/static/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The strict policy: our own stylesheet and script only, no inline anything, no framing, forms
/// post back to the hub only, scripts fetch from the hub only (the check page's progress).
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// CSP, no sniffing, no framing, no referrer beyond the hub; pages are never cached (they carry
/// personal data), assets set their own cache headers.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
