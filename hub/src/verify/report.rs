//! 核对报告: the verification report — each department's status and the facts per member with their
//! provenance. Signed by the hub; rendered for printing by [`super::print`].

use connectors::{ConnectorError, VerifiedAnswer};
use schemas::access_log::Outcome;
use schemas::protocol::SubjectOutcome;
use schemas::{Department, FactKind, FactValue, Purpose, Urgency};
use serde::{Deserialize, Serialize};

/// How one department's query ended. Never silent: every planned department has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DepartmentStatus {
    /// 已答复
    Answered,
    /// 超时
    TimedOut,
    /// 不可用 (down, circuit open, not configured)
    Unavailable,
    /// 部门拒绝
    Refused,
    /// 答复格式错误
    Malformed,
    /// 签名无效
    BadSignature,
    /// 复用: not asked again; the department's answer to an earlier verification of the same
    /// household, still valid and covered by this verification's letter, was reused (once-only).
    Reused,
}

impl DepartmentStatus {
    /// The status a connector failure gives.
    pub fn of_error(e: &ConnectorError) -> DepartmentStatus {
        match e {
            ConnectorError::Timeout { .. } => DepartmentStatus::TimedOut,
            ConnectorError::Unavailable { .. }
            | ConnectorError::CircuitOpen { .. }
            | ConnectorError::BadStatus { .. }
            | ConnectorError::HubConfig { .. } => DepartmentStatus::Unavailable,
            ConnectorError::Refused { .. } | ConnectorError::InvalidQuery { .. } => {
                DepartmentStatus::Refused
            }
            ConnectorError::Malformed { .. } => DepartmentStatus::Malformed,
            ConnectorError::BadSignature { .. } => DepartmentStatus::BadSignature,
        }
    }

    /// The access-log outcome of the query.
    pub fn outcome(self) -> Outcome {
        match self {
            DepartmentStatus::Answered | DepartmentStatus::Reused => Outcome::Succeeded,
            DepartmentStatus::TimedOut => Outcome::TimedOut,
            DepartmentStatus::Unavailable => Outcome::Unavailable,
            DepartmentStatus::Refused => Outcome::RefusedByDepartment,
            DepartmentStatus::Malformed | DepartmentStatus::BadSignature => Outcome::Failed,
        }
    }

    /// Caseworker-readable text, Chinese first.
    pub fn text(self) -> &'static str {
        match self {
            DepartmentStatus::Answered => "已答复 / answered",
            DepartmentStatus::TimedOut => "超时未答复 / timed out",
            DepartmentStatus::Unavailable => "部门接口不可用 / unavailable",
            DepartmentStatus::Refused => "部门拒绝查询 / refused",
            DepartmentStatus::Malformed => "答复格式错误 / malformed answer",
            DepartmentStatus::BadSignature => "答复签名无效 / answer signature rejected",
            DepartmentStatus::Reused => {
                "复用有效期内的已有答复 / reused from an earlier verification"
            }
        }
    }

    /// True when the department's facts are in the report (answered now or reused).
    pub fn has_facts(self) -> bool {
        matches!(self, DepartmentStatus::Answered | DepartmentStatus::Reused)
    }
}

/// One department's part of the report.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DepartmentReport {
    pub department: Department,
    pub name_zh: String,
    pub status: DepartmentStatus,
    pub status_text: String,
    /// The fact kinds asked (the purpose profile's plan for this department).
    pub fact_kinds: Vec<FactKind>,
    /// RFC 3339, when answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// The department's signing key id, when answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The department's answer signature (base64), when answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The connector's error code and message when not answered (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When `status` is `reused`: the verification whose department answer was reused. `answered_at`,
    /// `key_id` and `signature` are then those of that original answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    pub elapsed_ms: u64,
    /// Index of the access-log entry recording this query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// 访问日志收据: that entry's receipt (C2SP `.tlog-proof` text: inclusion proof + checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_receipt: Option<String>,
}

/// 复用说明: "reused from verification X, obtained at T", Chinese first, T in Beijing time to the
/// minute (`obtained_at` is RFC 3339; text that does not parse is shown as it is).
pub fn reused_text(source: &str, obtained_at: &str) -> String {
    let at =
        time::OffsetDateTime::parse(obtained_at, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|t| {
                t.to_offset(time::macros::offset!(+8))
                    .format(time::macros::format_description!(
                        "[year]-[month]-[day] [hour]:[minute]"
                    ))
                    .ok()
            });
    match at {
        Some(at) => format!(
            "复用自核对 {source}（获取于北京时间 {at}） / reused from verification {source}, obtained at {at} Beijing time"
        ),
        None => format!(
            "复用自核对 {source}（获取于 {obtained_at}） / reused from verification {source}, obtained at {obtained_at}"
        ),
    }
}

/// A fact with its provenance.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportedFact {
    pub kind: FactKind,
    /// The department's value; absent when the viewer's purpose may not see it raw (see
    /// [`apply_raw_visibility`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<FactValue>,
    /// Why the value is not shown (set exactly when `value` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
    /// 参考期
    pub period_from: String,
    pub period_to: String,
    pub department: Department,
    /// When the department gave this fact (for a reused fact: in the original verification).
    pub answered_at: String,
    pub key_id: String,
    /// 复用来源: the verification in which the department gave this fact, when it was reused
    /// instead of asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

/// A department that could not give facts for a member (查无此人 / 拒绝).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberNote {
    pub department: Department,
    /// `unknown` or `refused`.
    pub status: String,
    pub reason: String,
}

/// One member: no resident ID, only the pseudonym, name and relation.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberReport {
    /// `m1`, `m2`, … in the order of the request.
    pub subject_ref: String,
    pub name: String,
    pub relation: String,
    pub pseudonym: String,
    pub facts: Vec<ReportedFact>,
    pub notes: Vec<MemberNote>,
}

/// The report (核对报告).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    pub id: String,
    pub created_at: String,
    pub requested_by: String,
    pub registered_division: String,
    pub purpose: Purpose,
    pub case_ref: String,
    pub urgency: Urgency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_id: Option<String>,
    /// 紧急核对、后补授权书: an emergency (2 h) or urgent (24 h) check run before the letter was
    /// recorded (the name predates the urgent tier's exception and is kept for clients).
    pub emergency_without_letter: bool,
    /// 补交授权书期限: for an emergency or urgent check without a letter, the date (Beijing) by which
    /// the letter must be recorded (5 working days on the official calendar, as computed when the
    /// check ran; `letter_follow_up` has the current value and says when it is provisional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter_due_by: Option<String>,
    pub deadline_ms: u64,
    /// True when every planned department answered.
    pub complete: bool,
    pub departments: Vec<DepartmentReport>,
    pub members: Vec<MemberReport>,
    /// Index of the access-log entry recording the request.
    pub log_index: u64,
    /// That entry's receipt (C2SP `.tlog-proof` text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_receipt: Option<String>,
    /// 补交授权书: for an emergency check without a letter, where the letter stands as of the time
    /// this view was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter_follow_up: Option<LetterFollowUp>,
    /// 核算结果: income, assets and special situations compared with the local standard and the
    /// declaration — indications, never a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<super::aggregate::Aggregation>,
    /// The hub's Ed25519 signature over [`signing_bytes`] of the report without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ReportSignature>,
}

/// Whether a fact value is a raw department figure (amounts, counts, areas, durations, series) rather
/// than a categorical indication (yes/no, a status code, a date of death), which is itself the derived
/// result a caseworker needs.
pub fn is_raw_figure(v: &FactValue) -> bool {
    matches!(
        v,
        FactValue::Count(_)
            | FactValue::MoneyFen(_)
            | FactValue::AreaDm2(_)
            | FactValue::Days(_)
            | FactValue::MonthlyFen(_)
    )
}

/// Whether the catalogue gives a kind raw figures (see [`is_raw_figure`]); the kinds a view may
/// withhold.
pub fn is_raw_kind(kind: FactKind) -> bool {
    use schemas::catalogue::ValueType;
    matches!(
        kind.spec().value_type,
        ValueType::Count
            | ValueType::MoneyFen
            | ValueType::AreaDm2
            | ValueType::Days
            | ValueType::MonthlyFen
    )
}

/// What a caseworker reads where a raw figure is withheld.
pub const WITHHELD_TEXT: &str = "仅用于核算，本用途不显示原始数值 / used in the calculation only; the raw value is not shown for this purpose";

/// 原始数值可见性: which fact kinds a view shows raw. Categorical kinds (yes/no, codes, dates) are
/// always shown; a raw-figure kind only when the rule says so.
#[derive(Clone, Copy)]
pub struct Visible<'a>(&'a dyn Fn(FactKind) -> bool);

impl<'a> Visible<'a> {
    /// The rule `shows_raw` (true: the purpose may see this kind's raw figures).
    pub fn new(shows_raw: &'a dyn Fn(FactKind) -> bool) -> Visible<'a> {
        Visible(shows_raw)
    }

    /// Whether the view may show values of, or derived only from, this kind.
    pub fn shows(&self, kind: FactKind) -> bool {
        !is_raw_kind(kind) || (self.0)(kind)
    }
}

/// Something in a report that holds department figures, or figures derived from them.
///
/// Every type of the report implements it by destructuring itself completely (no `..`), so that a
/// field added later does not compile until someone has said whether it holds a figure. A derived
/// figure is a [`super::aggregate::Figure`] carrying its source kinds; a text that states a figure is
/// rendered from that `Figure` (and rendered again when the figure is withheld).
pub trait Redact {
    /// Withhold every figure that is, or is derived from, a kind `v` does not show. Returns whether
    /// anything changed.
    fn redact(&mut self, v: &Visible<'_>) -> bool;
}

impl<T: Redact> Redact for Vec<T> {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let mut changed = false;
        for x in self {
            changed |= x.redact(v);
        }
        changed
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        self.as_mut().is_some_and(|x| x.redact(v))
    }
}

impl Redact for ReportedFact {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let ReportedFact {
            kind,
            value,
            withheld,
            // Dates and provenance: no figures.
            period_from: _,
            period_to: _,
            department: _,
            answered_at: _,
            key_id: _,
            reused_from: _,
        } = self;
        let raw = is_raw_kind(*kind) || value.as_ref().is_some_and(is_raw_figure);
        if value.is_some() && raw && !v.shows(*kind) {
            *value = None;
            *withheld = Some(WITHHELD_TEXT.to_owned());
            return true;
        }
        false
    }
}

/// What a caseworker reads where the detail of a rejected or refused answer is withheld.
pub const DETAIL_WITHHELD_TEXT: &str = "详情可能引用部门原始数值，本用途不予显示 / details withheld: they may quote the department's raw values";

impl Redact for DepartmentReport {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let DepartmentReport {
            status,
            fact_kinds,
            detail,
            // Names, timings, signatures and receipts: no figures.
            department: _,
            name_zh: _,
            status_text: _,
            answered_at: _,
            key_id: _,
            signature: _,
            reused_from: _,
            elapsed_ms: _,
            log_index: _,
            log_receipt: _,
        } = self;
        // The reason a malformed answer was rejected (a schema or decode error) or the
        // department's own refusal text may quote a value from the answer: only the error code
        // stays when the view withholds any kind asked of the department.
        let quotes_answer = matches!(
            status,
            DepartmentStatus::Malformed | DepartmentStatus::Refused
        );
        if quotes_answer
            && fact_kinds.iter().any(|k| !v.shows(*k))
            && let Some(d) = detail
            && !d.ends_with(DETAIL_WITHHELD_TEXT)
        {
            let code = d.split(':').next().unwrap_or_default().trim();
            *d = format!("{code}: {DETAIL_WITHHELD_TEXT}");
            return true;
        }
        false
    }
}

impl Redact for MemberReport {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let MemberReport {
            subject_ref: _,
            name: _,
            relation: _,
            pseudonym: _,
            facts,
            // A department's "no record" / "refused" with its reason: no figures.
            notes: _,
        } = self;
        facts.redact(v)
    }
}

impl Redact for Report {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let Report {
            departments,
            members,
            aggregation,
            // Identification, status, provenance, receipts and the signature: no figures.
            id: _,
            created_at: _,
            requested_by: _,
            registered_division: _,
            purpose: _,
            case_ref: _,
            urgency: _,
            authorization_id: _,
            emergency_without_letter: _,
            letter_due_by: _,
            deadline_ms: _,
            complete: _,
            log_index: _,
            log_receipt: _,
            letter_follow_up: _,
            signature: _,
        } = self;
        let departments = departments.redact(v);
        let facts = members.redact(v);
        let figures = aggregation.redact(v);
        departments || facts || figures
    }
}

/// 原始数值可见性: shape a view of a stored (complete) report. Every raw figure whose kind `visible`
/// rejects is withheld (PIPL minimisation: only the values the purpose needs are shown raw), and so
/// is every figure of the aggregation derived from such a kind (sums, per-capita values, monthly
/// amounts, the verified side of a discrepancy and the texts that state them); categorical
/// indications stay. The stored report keeps every value. The printable page is rendered from this
/// same view. Returns whether anything was withheld (the view then needs a signature of its own).
pub fn apply_raw_visibility(report: &mut Report, visible: impl Fn(FactKind) -> bool) -> bool {
    report.redact(&Visible::new(&visible))
}

/// Domain separation for report signatures.
pub const REPORT_SIGNING_CONTEXT: &[u8] = b"jsj-hub/1 verification-report\n";

/// 报告签名: the hub's signature over a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportSignature {
    /// Always `ed25519`.
    pub alg: String,
    /// `ed25519:` + the first 8 bytes (hex) of SHA-256 of the public key.
    pub key_id: String,
    /// The 64-byte signature, standard base64.
    pub value: String,
}

/// The bytes signed: [`REPORT_SIGNING_CONTEXT`] followed by the canonical JSON (sorted keys, no
/// whitespace) of the report with its `signature` member removed.
pub fn signing_bytes(report: &serde_json::Value) -> Result<Vec<u8>, String> {
    let o = report.as_object().ok_or("a report is a JSON object")?;
    let canonical = if o.contains_key("signature") {
        let mut v = report.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("signature");
        }
        schemas::protocol::canonical_json(&v)
    } else {
        // Signing: the unsigned report has no `signature` member; no copy needed.
        schemas::protocol::canonical_json(report)
    }
    .map_err(|e| e.to_string())?;
    let mut out = REPORT_SIGNING_CONTEXT.to_vec();
    out.extend_from_slice(&canonical);
    Ok(out)
}

/// Sign a report with the hub's key (sets `report.signature`).
pub fn sign(report: &mut Report, key: &ring::signature::Ed25519KeyPair) -> Result<(), String> {
    use base64::Engine as _;
    use ring::signature::KeyPair as _;
    report.signature = None;
    let value = serde_json::to_value(&*report).map_err(|e| e.to_string())?;
    let sig = key.sign(&signing_bytes(&value)?);
    report.signature = Some(ReportSignature {
        alg: "ed25519".into(),
        key_id: schemas::protocol::key_id_for(key.public_key().as_ref()),
        value: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
    });
    Ok(())
}

/// Check a report's signature (as JSON, exactly as received) against the hub's published key.
pub fn verify_signature(report: &serde_json::Value, public_key: &[u8]) -> Result<(), String> {
    use base64::Engine as _;
    let sig = report
        .get("signature")
        .and_then(|s| s.get("value"))
        .and_then(|v| v.as_str())
        .ok_or("the report carries no signature")?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .map_err(|_| "signature.value: not base64")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&signing_bytes(report)?, &sig)
        .map_err(|_| "signature does not verify".to_owned())
}

/// 补交授权书状态: where an emergency check's letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpStatus {
    /// 待补交: not yet recorded, not yet due.
    Pending,
    /// 逾期未补交: not recorded and past the due date.
    Overdue,
    /// 已补交
    Recorded,
    /// 逾期后补交: recorded after the due date.
    RecordedLate,
}

/// The letter follow-up of an emergency or urgent verification run before its letter was on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LetterFollowUp {
    /// Beijing date by which the letter must be recorded.
    pub due_by: String,
    /// 暂定: true when `due_by` reaches into a year whose official calendar (国务院节假日安排) is not
    /// loaded, so it was counted Monday–Friday; it is recomputed once that year's file is loaded.
    /// Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
    pub status: FollowUpStatus,
    /// Caseworker-readable status, Chinese first.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_id: Option<String>,
    /// RFC 3339, when the letter was attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
}

/// The follow-up as of `today` (Beijing date): due on `due.date`, letter attached at `attached`.
pub fn follow_up(
    due: policies::Deadline,
    attached: Option<(String, time::OffsetDateTime)>,
    today: time::Date,
) -> LetterFollowUp {
    use time::format_description::well_known::Rfc3339;
    let due_by = due.date;
    let beijing = time::macros::offset!(+8);
    let (status, authorization_id, recorded_at) = match attached {
        Some((id, at)) => {
            let late = at.to_offset(beijing).date() > due_by;
            let status = if late {
                FollowUpStatus::RecordedLate
            } else {
                FollowUpStatus::Recorded
            };
            (status, Some(id), at.format(&Rfc3339).ok())
        }
        None if today > due_by => (FollowUpStatus::Overdue, None, None),
        None => (FollowUpStatus::Pending, None, None),
    };
    let text = match status {
        FollowUpStatus::Pending if due.provisional => format!(
            "授权书待补交，截止 {due_by}（暂按周一至周五计算，待载入国务院节假日安排后重算） / \
             letter due by {due_by} (provisional: counted Monday to Friday until the year's official \
             holiday calendar is loaded)"
        ),
        FollowUpStatus::Pending => {
            format!("授权书待补交，截止 {due_by} / letter due by {due_by}")
        }
        FollowUpStatus::Overdue => {
            format!("逾期：授权书应于 {due_by} 前补交 / overdue: the letter was due by {due_by}")
        }
        FollowUpStatus::Recorded => "授权书已补交 / letter recorded".to_owned(),
        FollowUpStatus::RecordedLate => {
            format!("授权书逾期补交（截止 {due_by}） / letter recorded after {due_by}")
        }
    };
    LetterFollowUp {
        due_by: due_by.to_string(),
        provisional: due.provisional,
        status,
        text,
        authorization_id,
        recorded_at,
    }
}

/// Working days a letter may follow an emergency (2 h) or urgent (24 h) check.
pub const LETTER_FOLLOW_UP_WORKING_DAYS: u32 = 5;

/// The date by which the letter must be recorded after a letterless emergency or urgent check
/// started on `start` (Beijing date): [`LETTER_FOLLOW_UP_WORKING_DAYS`] working days later on China's
/// official calendar (holidays off, 调休 make-up days worked; `start` itself not counted).
/// Provisional when the count reaches into a year without a calendar file (then Monday–Friday).
pub fn letter_due_by(
    calendar: &policies::WorkingCalendar,
    start: time::Date,
) -> policies::Deadline {
    calendar.add_working_days(start, LETTER_FOLLOW_UP_WORKING_DAYS)
}

/// Merge one department's answer into the members' facts.
pub fn merge_answer(
    members: &mut [MemberReport],
    department: Department,
    answer: &VerifiedAnswer,
    answered_at: &str,
) {
    for r in &answer.answer.results {
        let Some(m) = members.iter_mut().find(|m| m.subject_ref == r.subject_ref) else {
            continue;
        };
        match &r.outcome {
            SubjectOutcome::Found { facts } => {
                for f in facts {
                    m.facts.push(ReportedFact {
                        kind: f.kind,
                        value: Some(f.value.clone()),
                        withheld: None,
                        period_from: f.period.from.to_string(),
                        period_to: f.period.to.to_string(),
                        department,
                        answered_at: answered_at.to_owned(),
                        key_id: answer.signature.key_id.clone(),
                        reused_from: None,
                    });
                }
            }
            SubjectOutcome::Unknown { reason } => m.notes.push(MemberNote {
                department,
                status: "unknown".into(),
                reason: reason.clone(),
            }),
            SubjectOutcome::Refused { reason } => m.notes.push(MemberNote {
                department,
                status: "refused".into(),
                reason: reason.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod withholding_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::ProtocolError;
    use schemas::protocol::ProtocolErrorCode;
    use std::time::Duration;

    #[test]
    fn reused_evidence_is_dated_in_beijing_time_to_the_minute() {
        let t = reused_text("v-1", "2026-11-29T16:05:42.123Z");
        assert_eq!(
            t,
            "复用自核对 v-1（获取于北京时间 2026-11-30 00:05） / reused from verification v-1, obtained at 2026-11-30 00:05 Beijing time"
        );
        assert!(reused_text("v-1", "yesterday").contains("获取于 yesterday"));
    }

    fn check(e: ConnectorError, status: DepartmentStatus, outcome: Outcome) {
        let got = DepartmentStatus::of_error(&e);
        assert_eq!(got, status, "{e}");
        assert_eq!(got.outcome(), outcome, "{e}");
    }

    #[test]
    fn signed_reports_verify_and_any_change_breaks_them() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        let mut report = Report {
            id: "v1".into(),
            created_at: "2026-11-29T00:00:00Z".into(),
            requested_by: "cw-0001".into(),
            registered_division: "370811002".into(),
            purpose: Purpose::DibaoApplication,
            case_ref: "c-1".into(),
            urgency: Urgency::Normal,
            authorization_id: Some("a".into()),
            emergency_without_letter: false,
            letter_due_by: None,
            deadline_ms: 45_000,
            complete: true,
            departments: Vec::new(),
            members: vec![MemberReport {
                subject_ref: "m1".into(),
                name: "张三".into(),
                relation: "applicant".into(),
                pseudonym: "ab".repeat(32),
                facts: Vec::new(),
                notes: Vec::new(),
            }],
            log_index: 3,
            log_receipt: None,
            letter_follow_up: None,
            aggregation: None,
            signature: None,
        };
        sign(&mut report, &key).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(verify_signature(&json, &public), Ok(()));
        // Key order and whitespace do not matter; content does.
        let reparsed: serde_json::Value =
            serde_json::from_str(&serde_json::to_string_pretty(&json).unwrap()).unwrap();
        assert_eq!(verify_signature(&reparsed, &public), Ok(()));
        for (path, new) in [
            ("/case_ref", serde_json::json!("c-2")),
            ("/members/0/name", serde_json::json!("张四")),
            ("/log_index", serde_json::json!(4)),
            ("/complete", serde_json::json!(false)),
        ] {
            let mut t = json.clone();
            *t.pointer_mut(path).unwrap() = new;
            assert!(verify_signature(&t, &public).is_err(), "{path}");
        }
        let mut extra = json.clone();
        extra["note"] = serde_json::json!("x");
        assert!(verify_signature(&extra, &public).is_err());
    }

    #[test]
    fn follow_ups_are_pending_overdue_or_recorded() {
        use time::macros::{date, datetime};
        let due = policies::Deadline {
            date: date!(2026 - 12 - 04),
            provisional: false,
        };
        assert_eq!(
            follow_up(due, None, date!(2026 - 12 - 04)).status,
            FollowUpStatus::Pending
        );
        let late = follow_up(due, None, date!(2026 - 12 - 05));
        assert_eq!(late.status, FollowUpStatus::Overdue);
        assert!(late.text.starts_with("逾期"));
        // Attached on the due date, Beijing time (16:30 UTC is 00:30 the next day in Beijing).
        let on_time = follow_up(
            due,
            Some(("a".into(), datetime!(2026-12-04 15:59 UTC))),
            date!(2026 - 12 - 20),
        );
        assert_eq!(on_time.status, FollowUpStatus::Recorded);
        assert_eq!(on_time.authorization_id.as_deref(), Some("a"));
        let after = follow_up(
            due,
            Some(("a".into(), datetime!(2026-12-04 16:30 UTC))),
            date!(2026 - 12 - 20),
        );
        assert_eq!(after.status, FollowUpStatus::RecordedLate);
        assert!(!after.provisional);
        // A provisional due date says so, in the field and in the caseworker's text.
        let provisional = follow_up(
            policies::Deadline {
                provisional: true,
                ..due
            },
            None,
            date!(2026 - 12 - 01),
        );
        assert!(provisional.provisional);
        assert!(
            provisional.text.contains("暂按周一至周五"),
            "{}",
            provisional.text
        );
        assert_eq!(
            serde_json::to_value(&provisional).unwrap()["provisional"],
            true
        );
        assert!(
            serde_json::to_value(&on_time)
                .unwrap()
                .get("provisional")
                .is_none()
        );
    }

    #[test]
    fn letters_follow_emergencies_within_five_working_days() {
        use time::macros::date;
        let calendar =
            policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
                .expect("shipped calendar");
        for (start, due, provisional) in [
            (date!(2026 - 11 - 29), date!(2026 - 12 - 04), false), // Sunday
            (date!(2026 - 11 - 27), date!(2026 - 12 - 04), false), // Friday
            (date!(2026 - 11 - 30), date!(2026 - 12 - 07), false), // Monday
            (date!(2026 - 12 - 02), date!(2026 - 12 - 09), false), // Wednesday
            // Spring Festival 2026: Fri 13, Sat 14 (调休 make-up day), then Tue 24 .. Thu 26.
            (date!(2026 - 02 - 12), date!(2026 - 02 - 26), false),
            // National Day 2026: Thu 8, Fri 9, Sat 10 (make-up day), Mon 12, Tue 13.
            (date!(2026 - 09 - 30), date!(2026 - 10 - 13), false),
            // Into 2027, which has no file yet: Monday to Friday, provisional.
            (date!(2026 - 12 - 28), date!(2027 - 01 - 04), true),
        ] {
            assert_eq!(
                letter_due_by(&calendar, start),
                policies::Deadline {
                    date: due,
                    provisional
                },
                "{start}"
            );
        }
    }

    #[test]
    fn connector_errors_map_to_statuses_and_log_outcomes() {
        let d = Department::Labor;
        check(
            ConnectorError::Timeout {
                department: d,
                after: Duration::from_secs(1),
            },
            DepartmentStatus::TimedOut,
            Outcome::TimedOut,
        );
        check(
            ConnectorError::Unavailable {
                department: d,
                detail: "refused".into(),
            },
            DepartmentStatus::Unavailable,
            Outcome::Unavailable,
        );
        check(
            ConnectorError::Refused {
                department: d,
                status: 403,
                error: ProtocolError::new(ProtocolErrorCode::Forbidden, "no"),
            },
            DepartmentStatus::Refused,
            Outcome::RefusedByDepartment,
        );
        check(
            ConnectorError::Malformed {
                department: d,
                detail: "x".into(),
            },
            DepartmentStatus::Malformed,
            Outcome::Failed,
        );
        check(
            ConnectorError::BadSignature {
                department: d,
                detail: "x".into(),
            },
            DepartmentStatus::BadSignature,
            Outcome::Failed,
        );
        assert_eq!(DepartmentStatus::Answered.outcome(), Outcome::Succeeded);
    }
}
