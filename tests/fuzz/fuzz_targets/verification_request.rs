//! The `POST /v1/verifications` body, read the way the hub reads it, and `schemas::Household`
//! straight from JSON. Never panics; an accepted household validates, serializes and reads back
//! equal.
//!
//! The hub's request types and helpers (`hub::verify::api::{VerificationRequest, parse_household}`)
//! live in the `hub` crate, whose dependency tree (sqlx with bundled SQLite, Cedar, OpenTelemetry,
//! axum) is too heavy to build with sanitizer instrumentation on the shared CI machine. This target
//! therefore copies the request's shape (`RequestShape` below: keep it in step with
//! `hub/src/verify/api.rs`) and runs every schemas parser the hub runs on it, in the same order:
//! JSON value → typed shape → division code → resident IDs (trimmed) → relation codes →
//! `Household::validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::{DivisionCode, Household, Member, Purpose, Relation, ResidentId, Urgency};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MemberShape {
    resident_id: String,
    name: String,
    relation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HouseholdShape {
    registered_division: String,
    members: Vec<MemberShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RequestShape {
    household: HouseholdShape,
    purpose: Purpose,
    #[serde(default)]
    case_ref: String,
    #[serde(default)]
    case_id: Option<String>,
    #[serde(default)]
    urgency: Urgency,
    #[serde(default)]
    authorization_id: Option<String>,
    #[serde(default)]
    declared: Option<Value>,
    #[serde(default)]
    force_fresh: bool,
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// `hub::verify::api::parse_household`, with schemas' parsers.
fn parse_household(h: &HouseholdShape) -> Option<Household> {
    let registered_division = DivisionCode::parse(h.registered_division.trim()).ok()?;
    let mut members = Vec::with_capacity(h.members.len());
    for m in &h.members {
        members.push(Member {
            resident_id: ResidentId::parse(m.resident_id.trim()).ok()?,
            name: m.name.trim().to_owned(),
            relation: Relation::from_code(m.relation.trim())?,
        });
    }
    let household = Household {
        registered_division,
        members,
    };
    household.validate().ok()?;
    Some(household)
}

fn round_trips(h: &Household) {
    let json = serde_json::to_vec(h).expect("a household serializes");
    let back: Household = serde_json::from_slice(&json).expect("a household reads back");
    assert_eq!(&back, h);
    let county = h.registered_division.county();
    assert!(county.contains(&h.registered_division));
    let _ = (h.applicant(), h.registered_division.level());
}

fuzz_target!(|data: &[u8]| {
    // The typed household, as other crates read it.
    if let Ok(h) = serde_json::from_slice::<Household>(data)
        && h.validate().is_ok()
    {
        round_trips(&h);
    }
    // The request body, as the hub reads it (axum's `Json<Value>` first).
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = body.to_string(); // the idempotency hash input
    let Ok(req) = serde_json::from_value::<RequestShape>(body) else {
        return;
    };
    if let Some(h) = parse_household(&req.household) {
        assert!(h.applicant().is_some());
        round_trips(&h);
    }
});
