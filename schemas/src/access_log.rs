//! 访问日志条目: the access-log entry, one per access to personal data through the hub, and its
//! versioned canonical encoding (`jsj-access-log/1`).
//!
//! An entry records who (actor), did what (action), why (purpose, case reference), under which rule
//! (policy decision and deciding policy ids), touching which departments and fact kinds, with what
//! outcome, for which request — and whose data, **only as keyed pseudonyms** ([`pseudonymize`]:
//! lower-case hex HMAC-SHA256 of the resident ID under a deployment secret).
//!
//! Invariants:
//! - There is no field for a resident ID, a name or a fact value. Free-text fields are limited to
//!   identifier characters (`A-Z a-z 0-9 - _ . : / @ +`) and may not contain a run of 15 or more
//!   digits (what any 15- or 18-digit resident ID would produce), so an ID cannot be smuggled into
//!   one ([`AccessLogEntry::validate`]).
//! - Encoding is canonical: JSON with keys sorted by byte order, no whitespace, no floats, absent
//!   optional fields omitted, times in UTC RFC 3339 with millisecond precision. [`decode`] rejects
//!   any input that does not re-encode to the same bytes, so one entry has exactly one encoding and
//!   one leaf hash.
//! - An encoded entry is at most [`MAX_ENCODED_LEN`] (65,535) bytes, the C2SP tile entry-bundle
//!   limit. The per-list caps below keep every valid entry far below it; lists over a cap are
//!   **rejected, never truncated** (a truncated entry would misstate whose data was accessed): the
//!   hub must split such an access into several entries.

use std::collections::BTreeMap;

use ring::hmac;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalogue::FactKind;
use crate::{Department, DivisionCode, Purpose, Role};

/// The format and version tag carried in every entry.
pub const FORMAT_V1: &str = "jsj-access-log/1";
/// Largest encoded entry (the tlog-tiles entry-bundle limit).
pub const MAX_ENCODED_LEN: usize = 65_535;
/// Most subject pseudonyms per entry.
pub const MAX_SUBJECTS: usize = 256;
/// Most deciding policy ids per entry.
pub const MAX_POLICY_IDS: usize = 64;
/// Longest free-text field, in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// Shortest run of digits treated as a possible resident ID.
const DIGIT_RUN_LIMIT: usize = 15;

/// What the actor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// 发起核对: a household verification was requested.
    VerificationRequested,
    /// 部门查询: one department was queried.
    DepartmentQueried,
    /// 查看报告: a report was viewed.
    ReportViewed,
    /// 打印报告: a report was printed.
    ReportPrinted,
    /// 检索日志: an auditor searched the log.
    LogSearched,
    /// 个人查询报告: a subject access report ("who looked at my data") was produced.
    SubjectAccessReport,
    /// 登记授权书: an authorization letter was recorded.
    AuthorizationRecorded,
    /// 证据复用: facts a department gave for an earlier verification of the same household were
    /// reused (once-only) instead of asking the department again.
    EvidenceReused,
    /// 补登授权书: an authorization letter was attached to an emergency verification after it ran.
    LetterAttached,
    /// 户籍核验: the members' registered divisions were asked of civil affairs, before any other
    /// department, to establish jurisdiction from authoritative data.
    RegistrationChecked,
    /// 登记案件: a case (救助申请) was opened, with the applicant's personal data.
    CaseOpened,
    /// 查看案件: a case with the applicant's personal data was read.
    CaseRead,
    /// 查找案件: cases were looked up by a person's resident ID (as its pseudonym).
    CaseSearched,
    /// 办理案件: a case was moved to another stage (受理, 分办, 先行救助, 调查, 转交县级, 决定, 办结).
    CaseMoved,
    /// 转办: a referral slip (转办单) was issued from a case to a department or township.
    SlipIssued,
    /// 查看转办单: a referral slip with the applicant's personal data was read.
    SlipRead,
    /// 办理转办单: a referral slip was accepted (签收) or answered (反馈).
    SlipMoved,
    /// 接收部门事件: a signed department event was received and stored (subject: the person's
    /// pseudonym).
    EventReceived,
    /// 更新监测名单: the low-income monitoring list was changed (an upload, or one household added,
    /// updated or removed).
    MonitoringChanged,
    /// 查看监测信息: the department events the hub could not place were listed.
    MonitoringRead,
    /// 查看预警: the warning queue was listed, or one warning read with its signals (subject: the
    /// household's pseudonym).
    WarningRead,
    /// 处置预警: a warning was acknowledged, dismissed or converted to a case.
    WarningMoved,
    /// 提交村级报告: a village assistant filed a village report about a household (subject: the
    /// household head's pseudonym).
    VillageReportFiled,
    /// 查看村级报告: village reports were listed.
    VillageReportRead,
}

/// The policy decision (策略决定).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// 允许
    Allow,
    /// 拒绝
    Deny,
}

/// How the access ended. A denied attempt is an entry with outcome `denied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 成功: completed.
    Succeeded,
    /// 拒绝: refused by policy, authorization or rate limit before any data was touched.
    Denied,
    /// 部门拒绝: the department refused the query.
    RefusedByDepartment,
    /// 超时: the department did not answer in time.
    TimedOut,
    /// 不可用: the department was unavailable.
    Unavailable,
    /// 失败: failed for another reason.
    Failed,
}

/// The actor (操作人), from the verified client certificate. No display name: the principal id is
/// the stable reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The URI SAN the identity came from.
    pub uri: String,
    /// Stable principal id, e.g. `cw-0001`.
    pub principal: String,
    pub role: Role,
    /// Organisation code or office id.
    pub organisation: String,
    /// Division the actor acts for.
    pub division: DivisionCode,
}

/// Policy decision and the ids of the deciding policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub effect: Effect,
    /// Ids of the policies that decided (Cedar policy ids), at most [`MAX_POLICY_IDS`].
    pub policy_ids: Vec<String>,
}

/// A subject pseudonym: 64 lower-case hex digits (HMAC-SHA256 of the resident ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectPseudonym(String);

impl SubjectPseudonym {
    /// Parses 64 lower-case hex digits.
    pub fn parse(s: &str) -> Result<Self, AccessLogError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(SubjectPseudonym(s.to_owned()))
        } else {
            Err(AccessLogError::field(
                "subjects[]",
                "must be 64 lower-case hex digits (HMAC-SHA256)",
            ))
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The deployment secret for subject pseudonyms (假名化密钥). Its `Debug` never shows the key.
pub struct PseudonymKey(hmac::Key);

impl PseudonymKey {
    /// A key from secret bytes (at least 32).
    pub fn new(secret: &[u8]) -> Result<Self, AccessLogError> {
        if secret.len() < 32 {
            return Err(AccessLogError::field(
                "pseudonym key",
                "must be at least 32 bytes",
            ));
        }
        Ok(PseudonymKey(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

/// The subject pseudonym of a resident ID: lower-case hex `HMAC-SHA256(key, id)`, where `id` is the
/// resident ID trimmed of surrounding whitespace with a lower-case check character `x` upper-cased.
/// Auditors type a resident ID; the tool computes this with the same key to search the log.
pub fn pseudonymize(key: &PseudonymKey, resident_id: &str) -> SubjectPseudonym {
    let normalized = resident_id.trim().to_ascii_uppercase();
    let tag = hmac::sign(&key.0, normalized.as_bytes());
    SubjectPseudonym(hex::encode(tag.as_ref()))
}

/// One access-log entry (`jsj-access-log/1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogEntry {
    /// Always [`FORMAT_V1`] for this version.
    pub format: String,
    /// When the access happened (UTC, millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub actor: Actor,
    pub action: Action,
    /// 核对用途: absent for actions without one (e.g. an auditor's log search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// 案件编号: the case reference, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_ref: Option<String>,
    pub decision: Decision,
    /// Departments involved (sorted, no duplicates after [`AccessLogEntry::normalize`]).
    pub departments: Vec<Department>,
    /// Fact kinds involved (sorted, no duplicates after normalize).
    pub fact_kinds: Vec<FactKind>,
    pub outcome: Outcome,
    /// The hub request id.
    pub request_id: String,
    /// Whose data: subject pseudonyms only (sorted, no duplicates after normalize).
    pub subjects: Vec<SubjectPseudonym>,
}

/// Why an entry could not be built, encoded or decoded. Messages name the field and the rule and
/// never echo field contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct AccessLogError {
    pub field: String,
    pub rule: String,
}

impl AccessLogError {
    fn field(field: &str, rule: &str) -> Self {
        AccessLogError {
            field: field.to_owned(),
            rule: rule.to_owned(),
        }
    }
}

fn check_text(field: &str, s: &str) -> Result<(), AccessLogError> {
    if s.is_empty() || s.len() > MAX_TEXT_LEN {
        return Err(AccessLogError::field(field, "must be 1..=256 bytes"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+".contains(&b))
    {
        return Err(AccessLogError::field(
            field,
            "only A-Z a-z 0-9 - _ . : / @ + are allowed",
        ));
    }
    let mut run = 0;
    for b in s.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= DIGIT_RUN_LIMIT {
            return Err(AccessLogError::field(
                field,
                "must not contain 15 or more consecutive digits (could be a resident ID)",
            ));
        }
    }
    Ok(())
}

impl AccessLogEntry {
    /// Sorts and de-duplicates the lists, and normalizes the time to UTC milliseconds.
    pub fn normalize(&mut self) {
        let t = self.time.to_offset(time::UtcOffset::UTC);
        self.time = t
            .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
            .unwrap_or(t);
        self.departments.sort_by_key(|d| d.code());
        self.departments.dedup();
        self.fact_kinds
            .sort_by_key(|k| serde_json::to_string(k).unwrap_or_default());
        self.fact_kinds.dedup();
        self.subjects.sort();
        self.subjects.dedup();
        self.decision.policy_ids.sort();
        self.decision.policy_ids.dedup();
    }

    /// Checks every rule of the module doc (format tag, caps, identifier-only free text).
    pub fn validate(&self) -> Result<(), AccessLogError> {
        if self.format != FORMAT_V1 {
            return Err(AccessLogError::field("format", "must be jsj-access-log/1"));
        }
        if self.time.offset() != time::UtcOffset::UTC
            || !self.time.nanosecond().is_multiple_of(1_000_000)
        {
            return Err(AccessLogError::field(
                "time",
                "must be UTC with millisecond precision (call normalize)",
            ));
        }
        check_text("actor.uri", &self.actor.uri)?;
        check_text("actor.principal", &self.actor.principal)?;
        check_text("actor.organisation", &self.actor.organisation)?;
        if let Some(c) = &self.case_ref {
            check_text("case_ref", c)?;
        }
        check_text("request_id", &self.request_id)?;
        if self.decision.policy_ids.len() > MAX_POLICY_IDS {
            return Err(AccessLogError::field(
                "decision.policy_ids",
                "at most 64 policy ids",
            ));
        }
        for p in &self.decision.policy_ids {
            check_text("decision.policy_ids[]", p)?;
        }
        if self.subjects.len() > MAX_SUBJECTS {
            return Err(AccessLogError::field(
                "subjects",
                "at most 256 subjects per entry: split the access into several entries",
            ));
        }
        for s in &self.subjects {
            SubjectPseudonym::parse(s.as_str())?;
        }
        let sorted_unique = |v: Vec<String>| v.windows(2).all(|w| w[0] < w[1]);
        if !sorted_unique(
            self.departments
                .iter()
                .map(|d| d.code().to_owned())
                .collect(),
        ) || !sorted_unique(
            self.fact_kinds
                .iter()
                .map(|k| serde_json::to_string(k).unwrap_or_default())
                .collect(),
        ) || !sorted_unique(self.subjects.iter().map(|s| s.0.clone()).collect())
            || !sorted_unique(self.decision.policy_ids.clone())
        {
            return Err(AccessLogError::field(
                "lists",
                "departments, fact_kinds, subjects and policy_ids must be sorted without duplicates (call normalize)",
            ));
        }
        Ok(())
    }

    /// The canonical `jsj-access-log/1` bytes: validated, sorted-key JSON without whitespace.
    pub fn encode(&self) -> Result<Vec<u8>, AccessLogError> {
        self.validate()?;
        let value = serde_json::to_value(self)
            .map_err(|_| AccessLogError::field("entry", "cannot be serialized"))?;
        let mut out = Vec::with_capacity(512);
        write_canonical(&value, &mut out);
        if out.len() > MAX_ENCODED_LEN {
            return Err(AccessLogError::field(
                "entry",
                "encoded entry exceeds 65,535 bytes",
            ));
        }
        Ok(out)
    }
}

/// Decodes canonical `jsj-access-log/1` bytes; rejects other versions and non-canonical input.
pub fn decode(bytes: &[u8]) -> Result<AccessLogEntry, AccessLogError> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(AccessLogError::field("entry", "longer than 65,535 bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| AccessLogError::field("entry", "not JSON"))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT_V1) => {}
        Some(_) => {
            return Err(AccessLogError::field(
                "format",
                "unsupported version (this decoder reads jsj-access-log/1)",
            ));
        }
        None => return Err(AccessLogError::field("format", "missing")),
    }
    let entry: AccessLogEntry = serde_json::from_value(value)
        .map_err(|e| AccessLogError::field("entry", &schema_error(&e)))?;
    if entry.encode()? != bytes {
        return Err(AccessLogError::field(
            "entry",
            "not in canonical form (sorted keys, no whitespace, normalized lists and time)",
        ));
    }
    Ok(entry)
}

/// A serde error message without the offending value (which could be personal data).
fn schema_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json messages look like "unknown variant `x`, expected …" or "missing field `y`":
    // keep only the part before any backquoted value when it is about a value.
    if msg.starts_with("missing field") || msg.starts_with("unknown field") {
        msg.split(" at line").next().unwrap_or("invalid").to_owned()
    } else {
        "does not match the jsj-access-log/1 schema".to_owned()
    }
}

/// Writes `v` as canonical JSON: object keys sorted by bytes, no whitespace.
fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push(b'{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(k).unwrap_or_default().as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PseudonymKey {
        PseudonymKey::new(&[0x5a; 32]).unwrap()
    }

    const ID: &str = "370811199001011234";

    fn sample() -> AccessLogEntry {
        let mut e = AccessLogEntry {
            format: FORMAT_V1.to_owned(),
            time: time::macros::datetime!(2026-11-29 12:34:56.789123 +08:00),
            actor: Actor {
                uri: "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-0001".into(),
                principal: "cw-0001".into(),
                role: Role::Caseworker,
                organisation: "mz-370811002".into(),
                division: DivisionCode::parse("370811002").unwrap(),
            },
            action: Action::DepartmentQueried,
            purpose: Some(Purpose::DibaoApplication),
            case_ref: Some("RC-2026-00042".into()),
            decision: Decision {
                effect: Effect::Allow,
                policy_ids: vec![
                    "caseworker-own-township".into(),
                    "authorization-on-file".into(),
                ],
            },
            departments: vec![
                Department::Labor,
                Department::CivilAffairs,
                Department::Labor,
            ],
            fact_kinds: vec![],
            outcome: Outcome::Succeeded,
            request_id: "0193f1c2-7a4e-7c3b-9d2e-5f6a7b8c9d0e".into(),
            subjects: vec![
                pseudonymize(&key(), ID),
                pseudonymize(&key(), "37081119900101123X"),
            ],
        };
        e.normalize();
        e
    }

    #[test]
    fn canonical_encoding_round_trips_and_is_sorted() {
        let e = sample();
        let bytes = e.encode().unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with(r#"{"action":"department_queried","actor":{"division":"370811002","#),
            "{text}"
        );
        assert!(
            text.contains(r#""time":"2026-11-29T04:34:56.789Z""#),
            "{text}"
        );
        assert!(
            text.contains(r#""departments":["civil_affairs","labor"]"#),
            "{text}"
        );
        assert!(!text.contains(' ') && !text.contains('\n'));
        assert_eq!(decode(&bytes).unwrap(), e);
        // Non-canonical forms are rejected: whitespace, reordered keys, unsorted lists.
        let spaced = text.replacen(":", ": ", 1);
        assert!(decode(spaced.as_bytes()).is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["departments"] = serde_json::json!(["labor", "civil_affairs"]);
        assert!(decode(v.to_string().as_bytes()).is_err());
        // Other versions and unknown fields are rejected.
        assert!(
            decode(text.replace(FORMAT_V1, "jsj-access-log/2").as_bytes())
                .unwrap_err()
                .field
                == "format"
        );
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["resident_id"] = serde_json::json!(ID);
        let mut extra = Vec::new();
        write_canonical(&v, &mut extra);
        let err = decode(&extra).unwrap_err();
        assert!(
            !err.to_string().contains(ID),
            "error must not echo the value: {err}"
        );
    }

    #[test]
    fn pseudonyms_are_keyed_hmac_and_normalized() {
        let p = pseudonymize(&key(), ID);
        assert_eq!(p.as_str().len(), 64);
        assert_eq!(pseudonymize(&key(), &format!(" {ID} ")), p);
        assert_eq!(
            pseudonymize(&key(), "37081119900101123x"),
            pseudonymize(&key(), "37081119900101123X")
        );
        assert_ne!(pseudonymize(&PseudonymKey::new(&[1; 32]).unwrap(), ID), p);
        // Known-answer: HMAC-SHA256 computed independently by ring's verify.
        let tag = hex::decode(p.as_str()).unwrap();
        ring::hmac::verify(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0x5a; 32]),
            ID.as_bytes(),
            &tag,
        )
        .unwrap();
        assert!(PseudonymKey::new(&[0; 31]).is_err());
        assert!(!format!("{:?}", key()).contains("5a"));
    }

    #[test]
    fn no_field_can_carry_a_resident_id_in_clear() {
        let ids = [
            ID,
            "37081119900101123X",
            "370811900101123",
            "37081119900101123x",
        ];
        type Setter = fn(&mut AccessLogEntry, &str);
        let setters: [(&str, Setter); 6] = [
            ("actor.uri", |e, s| e.actor.uri = format!("spiffe://x/{s}")),
            ("actor.principal", |e, s| e.actor.principal = s.to_owned()),
            ("actor.organisation", |e, s| {
                e.actor.organisation = format!("org-{s}")
            }),
            ("case_ref", |e, s| e.case_ref = Some(format!("case-{s}"))),
            ("request_id", |e, s| e.request_id = s.to_owned()),
            ("decision.policy_ids[]", |e, s| {
                e.decision.policy_ids = vec![s.to_owned()]
            }),
        ];
        for id in ids {
            for (field, set) in &setters {
                let mut e = sample();
                set(&mut e, id);
                let err = e.encode().unwrap_err();
                assert_eq!(&err.field, field, "{id} in {field}");
                assert!(!err.to_string().contains(id));
            }
            // Subjects only take 64-hex pseudonyms.
            assert!(SubjectPseudonym::parse(id).is_err());
            let mut v: serde_json::Value =
                serde_json::from_slice(&sample().encode().unwrap()).unwrap();
            v["subjects"] = serde_json::json!([id]);
            let mut b = Vec::new();
            write_canonical(&v, &mut b);
            assert!(decode(&b).is_err());
        }
        // And the canonical bytes of a real entry never contain the IDs it refers to.
        let bytes = sample().encode().unwrap();
        for id in ids {
            assert!(!String::from_utf8_lossy(&bytes).contains(id));
        }
        // The type has no field that could hold one: the complete key set is fixed.
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "action",
                "actor",
                "case_ref",
                "decision",
                "departments",
                "fact_kinds",
                "format",
                "outcome",
                "purpose",
                "request_id",
                "subjects",
                "time"
            ]
        );
    }

    #[test]
    fn caps_reject_rather_than_truncate_and_max_entry_fits_a_bundle() {
        let mut e = sample();
        e.subjects = (0..=MAX_SUBJECTS as u32)
            .map(|i| pseudonymize(&key(), &i.to_string()))
            .collect();
        e.normalize();
        assert_eq!(e.encode().unwrap_err().field, "subjects");
        e.subjects.truncate(MAX_SUBJECTS);
        e.decision.policy_ids = (0..MAX_POLICY_IDS)
            .map(|i| format!("{i:03}-{}", "p".repeat(250)))
            .collect();
        e.actor.uri = "u".repeat(MAX_TEXT_LEN);
        e.case_ref = Some("c".repeat(MAX_TEXT_LEN));
        e.normalize();
        let bytes = e.encode().unwrap();
        assert!(bytes.len() < MAX_ENCODED_LEN, "{} bytes", bytes.len());
        e.decision.policy_ids.push("one-too-many".into());
        assert_eq!(e.encode().unwrap_err().field, "decision.policy_ids");
        e.decision.policy_ids.pop();
        e.case_ref = Some("c".repeat(MAX_TEXT_LEN + 1));
        assert_eq!(e.encode().unwrap_err().field, "case_ref");
    }

    #[test]
    fn every_action_and_outcome_encodes() {
        for (action, code) in [
            (Action::VerificationRequested, "verification_requested"),
            (Action::DepartmentQueried, "department_queried"),
            (Action::ReportViewed, "report_viewed"),
            (Action::ReportPrinted, "report_printed"),
            (Action::LogSearched, "log_searched"),
            (Action::SubjectAccessReport, "subject_access_report"),
            (Action::AuthorizationRecorded, "authorization_recorded"),
            (Action::EvidenceReused, "evidence_reused"),
            (Action::LetterAttached, "letter_attached"),
            (Action::RegistrationChecked, "registration_checked"),
            (Action::CaseOpened, "case_opened"),
            (Action::CaseRead, "case_read"),
            (Action::CaseMoved, "case_moved"),
            (Action::CaseSearched, "case_searched"),
            (Action::SlipIssued, "slip_issued"),
            (Action::SlipRead, "slip_read"),
            (Action::SlipMoved, "slip_moved"),
            (Action::EventReceived, "event_received"),
            (Action::MonitoringChanged, "monitoring_changed"),
            (Action::MonitoringRead, "monitoring_read"),
            (Action::WarningRead, "warning_read"),
            (Action::WarningMoved, "warning_moved"),
            (Action::VillageReportFiled, "village_report_filed"),
            (Action::VillageReportRead, "village_report_read"),
        ] {
            let mut e = sample();
            e.action = action;
            e.outcome = Outcome::Denied;
            e.decision.effect = Effect::Deny;
            e.purpose = None;
            let b = e.encode().unwrap();
            assert!(String::from_utf8_lossy(&b).contains(&format!(r#""action":"{code}""#)));
            assert!(String::from_utf8_lossy(&b).contains(r#""outcome":"denied""#));
            assert_eq!(decode(&b).unwrap(), e);
        }
    }
}
