//! Bad input, consistently (issue 10 finding 8): every refusal is the JSON error object with a
//! stable code and field and never quotes the input; only JSON objects are read as requests;
//! names, letters and Idempotency-Keys are held to their rules.

use schemas::Department;
use serde_json::{Value, json};

use crate::verification::{
    Setup, XUZHUANG, fact_query_count, households, ids, letter, registration_checks, setup,
    verification,
};

/// Send `body` as it is, with `content_type` (none when `None`).
async fn raw(
    s: &Setup,
    who: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    let client = s.env.http(who)?;
    let mut r = client.request(method.parse()?, s.hub.url(path));
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let r = r.body(body.to_owned()).send().await?;
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((status, ct, r.text().await?))
}

/// One bad request and the error it must get.
struct Case<'a> {
    who: &'a str,
    method: &'a str,
    path: &'a str,
    content_type: Option<&'a str>,
    body: String,
    status: u16,
    code: &'a str,
    field: Option<&'a str>,
}

async fn check(s: &Setup, c: Case<'_>, secrets: &[&str]) -> anyhow::Result<()> {
    let (status, ct, text) = raw(s, c.who, c.method, c.path, c.content_type, &c.body).await?;
    let what = format!("{} {} {:.80}", c.method, c.path, c.body);
    assert_eq!(status, c.status, "{what}: {text}");
    assert!(ct.starts_with("application/json"), "{what}: {ct}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(v["error"]["code"], c.code, "{what}: {text}");
    if let Some(f) = c.field {
        assert_eq!(v["error"]["field"], f, "{what}: {text}");
    }
    for secret in secrets {
        assert!(!text.contains(secret), "{what} echoes input: {text}");
    }
    // No run of 15+ digits (a resident ID) in any error.
    let mut run = 0;
    for b in text.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < 15, "{what}: {text}");
    }
    Ok(())
}

/// Syntax, media type, shape, unknown routes and methods, query and path parameters: each is the
/// JSON error object with its code and field; arrays are never read as requests, and an
/// array-shaped verification asks no department.
#[tokio::test]
async fn every_bad_request_is_a_json_error_without_input() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let rid = ids(h)[0].clone();
    let secrets = [rid.as_str(), &rid[..12]];
    let good = verification(h, "dibao_application", "case-b-1", "normal", None);
    let as_array = json!([good["household"], "dibao_application", "case-b-1"]).to_string();
    // Nested structs by position (serde would read them): the household, one member.
    let values = |v: &Value| -> Value {
        Value::Array(
            v.as_object()
                .map(|o| o.values().cloned().collect())
                .unwrap_or_default(),
        )
    };
    let mut household_as_array = good.clone();
    household_as_array["household"] = values(&good["household"]);
    let household_as_array = household_as_array.to_string();
    let mut member_as_array = good.clone();
    member_as_array["household"]["members"][0] = values(&good["household"]["members"][0]);
    let member_as_array = member_as_array.to_string();
    let mut integer_id = good.clone();
    integer_id["household"]["members"][0]["resident_id"] = json!(rid.parse::<u64>().unwrap_or(1));
    let json = Some("application/json");
    let inclusion = format!("/v1/log/proof/inclusion?index={rid}x");
    let case = |who, method, path, content_type, body: String, status, code, field| Case {
        who,
        method,
        path,
        content_type,
        body,
        status,
        code,
        field,
    };
    let cases = [
        // Arrays where objects are required: the whole log, a verification by position.
        case(
            "auditor",
            "POST",
            "/v1/log/search",
            json,
            "[null,null]".into(),
            400,
            "validation_failed",
            Some("body"),
        ),
        case(
            "auditor",
            "POST",
            "/v1/log/search",
            json,
            "[]".into(),
            400,
            "validation_failed",
            Some("body"),
        ),
        case(
            "auditor",
            "POST",
            "/v1/log/subject-report",
            json,
            "[null]".into(),
            400,
            "validation_failed",
            Some("body"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            json,
            as_array,
            400,
            "validation_failed",
            Some("body"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            json,
            household_as_array,
            400,
            "validation_failed",
            Some("household"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            json,
            member_as_array,
            400,
            "validation_failed",
            Some("household.members[0]"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/authorizations",
            json,
            "null".into(),
            400,
            "validation_failed",
            Some("body"),
        ),
        // Syntax, emptiness, media type.
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            json,
            "{\"household\":".into(),
            400,
            "invalid_json",
            Some("body"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            json,
            String::new(),
            400,
            "invalid_json",
            Some("body"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            Some("text/plain"),
            good.to_string(),
            415,
            "unsupported_media_type",
            Some("Content-Type"),
        ),
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            None,
            good.to_string(),
            415,
            "unsupported_media_type",
            Some("Content-Type"),
        ),
        // Shape: the path and the kind, never the value.
        case(
            "caseworker",
            "POST",
            "/v1/verifications",
            json,
            integer_id.to_string(),
            400,
            "validation_failed",
            Some("household.members[0].resident_id"),
        ),
        case(
            "auditor",
            "POST",
            "/v1/log/search",
            json,
            json!({"limit": rid}).to_string(),
            400,
            "validation_failed",
            None,
        ),
        case(
            "auditor",
            "POST",
            "/v1/log/search",
            json,
            Value::Object([(rid.clone(), json!(1))].into_iter().collect()).to_string(),
            400,
            "validation_failed",
            None,
        ),
        // Routes, methods, query and path parameters.
        case(
            "caseworker",
            "GET",
            "/v1/no-such-route",
            None,
            String::new(),
            404,
            "not_found",
            None,
        ),
        case(
            "caseworker",
            "DELETE",
            "/v1/verifications",
            None,
            String::new(),
            405,
            "method_not_allowed",
            None,
        ),
        case(
            "caseworker",
            "GET",
            "/v1/authorizations",
            None,
            String::new(),
            405,
            "method_not_allowed",
            None,
        ),
        case(
            "auditor",
            "GET",
            &inclusion,
            None,
            String::new(),
            400,
            "validation_failed",
            Some("query"),
        ),
        case(
            "caseworker",
            "GET",
            "/v1/follow-ups?status=open&x=1",
            None,
            String::new(),
            400,
            "validation_failed",
            Some("query"),
        ),
        case(
            "caseworker",
            "GET",
            "/v1/verifications/%FF",
            None,
            String::new(),
            400,
            "validation_failed",
            Some("path"),
        ),
    ];
    for c in cases {
        check(&s, c, &secrets).await?;
    }
    for d in Department::ALL {
        assert_eq!(fact_query_count(&s.deps.handles[&d]), 0, "{d} was asked");
    }
    assert_eq!(registration_checks(&s.deps), 0, "civil affairs was asked");
    s.stop().await;
    Ok(())
}

/// Member names are short text without an ID number: a long name or one that carries an ID is
/// refused before any department is asked, and the error quotes neither.
#[tokio::test]
async fn names_are_bounded_and_carry_no_id_number() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let rid = ids(h)[0].clone();
    for (name, rule) in [
        ("名".repeat(65), "at most 64 characters"),
        ("x".repeat(100_000), "at most 64 characters"),
        (format!("王{rid}"), "digits"),
    ] {
        let mut body = verification(h, "dibao_application", "case-n-1", "normal", None);
        body["household"]["members"][0]["name"] = json!(name);
        let (status, err) = s.post("caseworker", "/v1/verifications", &body).await?;
        assert_eq!(status, 400, "{err:.200}");
        assert_eq!(err["error"]["field"], "members[0].name", "{err:.200}");
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(rule), "{msg}");
        assert!(!msg.contains(&rid) && !msg.contains("xxxx"), "{msg}");
    }
    assert_eq!(registration_checks(&s.deps), 0, "civil affairs was asked");
    s.stop().await;
    Ok(())
}

/// A letter is valid for at most a year and not in the past, covers a verification only when the
/// household's applicant signed it, and one scanned letter (its SHA-256) is recorded once.
#[tokio::test]
async fn letters_are_bounded_signed_by_the_applicant_and_recorded_once() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = hh
        .iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members");
    let applicant = h.applicant().expect("applicant").resident_id.as_str();
    let other = ids(h)
        .into_iter()
        .find(|i| i != applicant)
        .expect("a second member");

    for (valid_until, status) in [
        ("9999-12-31".to_owned(), 400),
        (crate::verification::in_days(400), 400),
        ("2020-01-01".to_owned(), 400),
        (crate::verification::in_days(300), 201),
    ] {
        let mut l = letter(h, &["dibao_application"]);
        l["valid_until"] = json!(valid_until);
        let (got, body) = s.post("caseworker", "/v1/authorizations", &l).await?;
        assert_eq!(got, status, "{valid_until}: {body}");
        if status == 400 {
            assert_eq!(body["error"]["field"], "valid_until", "{body}");
        }
    }

    // The same letter again from whoever recorded it (a retry): 200 and the same record, twice.
    let first = letter(h, &["dibao_application"]);
    let (status, body) = s.post("caseworker", "/v1/authorizations", &first).await?;
    assert_eq!(status, 201, "{body}");
    let first_id = body["id"].clone();
    for _ in 0..2 {
        let (status, body) = s.post("caseworker", "/v1/authorizations", &first).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], first_id, "{body}");
    }
    // The same document as another letter (other purposes, another recorder): 409.
    let mut again = first.clone();
    again["purposes"] = json!(["dibao_application", "temporary_assistance"]);
    let (status, body) = s.post("caseworker", "/v1/authorizations", &again).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "letter_already_recorded");
    assert_eq!(body["error"]["field"], "letter_sha256");
    let (status, body) = s
        .post("county-officer", "/v1/authorizations", &first)
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "letter_already_recorded");

    // Signed by another member only: recorded, but it covers no verification of this household.
    let mut unsigned = letter(h, &["dibao_application"]);
    unsigned["signed_by"] = json!([other]);
    let (status, body) = s
        .post("caseworker", "/v1/authorizations", &unsigned)
        .await?;
    assert_eq!(status, 201, "{body}");
    let auth = body["id"].as_str().expect("id");
    let (status, body) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", "case-l-1", "normal", Some(auth)),
        )
        .await?;
    assert_eq!(status, 403, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("signers"), "{msg}");
    for d in Department::ALL {
        assert_eq!(fact_query_count(&s.deps.handles[&d]), 0, "{d} was asked");
    }
    s.stop().await;
    Ok(())
}

/// The same request with its keys in another order and its defaults spelled out is the same
/// request for its Idempotency-Key: one verification, not 422.
#[tokio::test]
async fn an_idempotency_key_binds_the_request_not_its_spelling() -> anyhow::Result<()> {
    let s = setup("").await?;
    let hh = households(&s.deps, XUZHUANG);
    let h = &hh[0];
    let auth = s
        .record_letter("caseworker", h, &["dibao_application"])
        .await?;
    let body = verification(h, "dibao_application", "case-k-1", "normal", Some(&auth));
    // Keys reversed at every level, defaults explicit, a different wait.
    let household = &body["household"];
    let members: Vec<String> = household["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            format!(
                r#"{{"relation":{},"name":{},"resident_id":{}}}"#,
                m["relation"], m["name"], m["resident_id"]
            )
        })
        .collect();
    let respelled = format!(
        r#"{{"wait_ms":60000,"force_fresh":false,"declared":null,"authorization_id":{},"urgency":"normal","case_ref":"case-k-1","purpose":"dibao_application","household":{{"members":[{}],"registered_division":{}}}}}"#,
        body["authorization_id"],
        members.join(","),
        household["registered_division"],
    );
    let client = s.env.http("caseworker")?;
    let url = s.hub.url("/v1/verifications");
    let mut reports = Vec::new();
    for text in [body.to_string(), respelled] {
        let r = client
            .post(&url)
            .header("idempotency-key", "key-k-1")
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await?;
        assert_eq!(status, 200, "{v}");
        reports.push(v);
    }
    assert_eq!(reports[0]["id"], reports[1]["id"]);
    assert_eq!(registration_checks(&s.deps), 1, "one verification");
    s.stop().await;
    Ok(())
}

/// The served description is OpenAPI 3.1: every `$ref` resolves, every operation has a unique
/// `operationId`, every response a description, and mutual TLS is its security scheme (issue 10
/// finding 8b; `tests/contract/run.sh` runs schemathesis against it in CI).
#[tokio::test]
async fn the_served_description_is_valid_openapi_3_1() -> anyhow::Result<()> {
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let s = setup("").await?;
    let doc: Value = s
        .env
        .http("caseworker")?
        .get(s.hub.url("/v1/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["mutualTLS"]["type"],
        "mutualTLS"
    );
    assert!(doc["servers"].as_array().is_some_and(|s| !s.is_empty()));
    let mut ids = std::collections::BTreeSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            let id = op["operationId"].as_str();
            assert!(
                id.is_some_and(|id| ids.insert(id)),
                "{method} {path}: operationId"
            );
            for (status, r) in op["responses"].as_object().expect("responses") {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
            }
        }
    }
    assert!(operations >= 22, "{operations} operations");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let target = r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("non-local $ref {r}"))
            .split('/')
            .fold(&doc, |v, part| &v[part]);
        assert!(target.is_object(), "{r} does not resolve");
    }
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        assert!(
            schema.get("$defs").is_none(),
            "{name} carries nested copies"
        );
    }
    s.stop().await;
    Ok(())
}
