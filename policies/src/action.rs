//! 操作: the API operations the policies decide on, one Cedar action each.
//!
//! The wire codes are the Cedar action ids (`Action::"request_verification"`) and are stable.

use serde::{Deserialize, Serialize};

/// One API operation the hub authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// 发起核对: request a household verification.
    RequestVerification,
    /// 查看核对报告: view a verification report (derived results).
    ViewReport,
    /// 查看部门原始数值: view raw department values in a report.
    ViewRawValues,
    /// 检索访问日志: search the access log.
    SearchLog,
    /// 查阅个人信息访问报告: read a subject access report.
    ReadSubjectAccessReport,
    /// 登记核对授权书: record an authorization letter (also: attach one to an emergency check).
    RecordAuthorization,
    /// 读取访问日志: read the log's checkpoint, tiles, proofs, receipts, key and rotations.
    ReadLog,
    /// 查询核对进度: poll a verification that is still running.
    PollVerification,
    /// 系统管理: administer the hub.
    Administer,
    /// 答复查询: a department answers a fact query (connector protocol v1).
    AnswerQuery,
    /// 推送事件: a department pushes an event.
    PushEvent,
    /// 受理登记救助申请: open a case (救助申请), from a window, an intake system or a referral.
    OpenCase,
    /// 查看案件: read a case with the applicant's personal data.
    ReadCase,
    /// 查看办理记录: read the caseworkers' records of a case (home visit, opinions, reasons).
    ReadCaseNotes,
    /// 办理案件: move a case through its stages (受理, 分办, 先行救助, 调查, 转交县级, 决定, 办结).
    MoveCase,
    /// 案件列表: list cases (no personal data in the list).
    ListCases,
    /// 核对列表: list one's own verifications (no personal data in the list).
    ListVerifications,
    /// 督导统计: timeliness figures per township and stage (no personal data).
    Supervise,
    /// 开具转办单: issue a referral slip (转办单) from a case to a department or township.
    IssueSlip,
    /// 查看转办单: read a referral slip with the applicant's personal data.
    ReadSlip,
    /// 转办单列表: list the referral slips addressed to the caller.
    ListSlips,
    /// 办理转办单: accept (签收) or answer (反馈) a referral slip.
    AnswerSlip,
    /// 督办队列: list the overdue stages escalated to the county (no personal data).
    ListEscalations,
    /// 管理低收入人口监测名单: load and update the households under monitoring (低收入人口动态监测).
    ManageMonitoring,
    /// 查看监测名单与未匹配事件: read the monitoring list's state and the department events the hub
    /// could not place.
    ReadMonitoring,
    /// 预警列表: list the warnings in the caller's jurisdiction (no personal data in the list).
    ListWarnings,
    /// 查看预警: read a warning with its signals.
    ReadWarning,
    /// 处置预警: acknowledge, dismiss or convert a warning to a case.
    HandleWarning,
    /// 提交村级报告: a village assistant reports a household of its village (村级报告).
    FileVillageReport,
    /// 村级报告列表: list village reports (no resident ID in the list).
    ListVillageReports,
}

/// What kind of resource an action is about; decides which Cedar entity type the engine builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    Household,
    AccessLog,
    System,
    DepartmentEndpoint,
    Case,
    Slip,
    MonitoringList,
    Warning,
    VillageReport,
}

impl Action {
    pub const ALL: [Action; 30] = [
        Action::RequestVerification,
        Action::ViewReport,
        Action::ViewRawValues,
        Action::SearchLog,
        Action::ReadSubjectAccessReport,
        Action::RecordAuthorization,
        Action::ReadLog,
        Action::PollVerification,
        Action::Administer,
        Action::AnswerQuery,
        Action::PushEvent,
        Action::OpenCase,
        Action::ReadCase,
        Action::ReadCaseNotes,
        Action::MoveCase,
        Action::ListCases,
        Action::ListVerifications,
        Action::Supervise,
        Action::IssueSlip,
        Action::ReadSlip,
        Action::ListSlips,
        Action::AnswerSlip,
        Action::ListEscalations,
        Action::ManageMonitoring,
        Action::ReadMonitoring,
        Action::ListWarnings,
        Action::ReadWarning,
        Action::HandleWarning,
        Action::FileVillageReport,
        Action::ListVillageReports,
    ];

    /// The stable code, also the Cedar action id.
    pub fn code(self) -> &'static str {
        match self {
            Action::RequestVerification => "request_verification",
            Action::ViewReport => "view_report",
            Action::ViewRawValues => "view_raw_values",
            Action::SearchLog => "search_log",
            Action::ReadSubjectAccessReport => "read_subject_access_report",
            Action::RecordAuthorization => "record_authorization",
            Action::ReadLog => "read_log",
            Action::PollVerification => "poll_verification",
            Action::Administer => "administer",
            Action::AnswerQuery => "answer_query",
            Action::PushEvent => "push_event",
            Action::OpenCase => "open_case",
            Action::ReadCase => "read_case",
            Action::ReadCaseNotes => "read_case_notes",
            Action::MoveCase => "move_case",
            Action::ListCases => "list_cases",
            Action::ListVerifications => "list_verifications",
            Action::Supervise => "supervise",
            Action::IssueSlip => "issue_slip",
            Action::ReadSlip => "read_slip",
            Action::ListSlips => "list_slips",
            Action::AnswerSlip => "answer_slip",
            Action::ListEscalations => "list_escalations",
            Action::ManageMonitoring => "manage_monitoring",
            Action::ReadMonitoring => "read_monitoring",
            Action::ListWarnings => "list_warnings",
            Action::ReadWarning => "read_warning",
            Action::HandleWarning => "handle_warning",
            Action::FileVillageReport => "file_village_report",
            Action::ListVillageReports => "list_village_reports",
        }
    }

    pub fn from_code(code: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.code() == code)
    }

    /// Chinese name for reports and denial messages.
    pub fn name_zh(self) -> &'static str {
        match self {
            Action::RequestVerification => "发起核对",
            Action::ViewReport => "查看核对报告",
            Action::ViewRawValues => "查看部门原始数值",
            Action::SearchLog => "检索访问日志",
            Action::ReadSubjectAccessReport => "查阅个人信息访问报告",
            Action::RecordAuthorization => "登记核对授权书",
            Action::ReadLog => "读取访问日志",
            Action::PollVerification => "查询核对进度",
            Action::Administer => "系统管理",
            Action::AnswerQuery => "答复查询",
            Action::PushEvent => "推送事件",
            Action::OpenCase => "受理登记救助申请",
            Action::ReadCase => "查看案件",
            Action::ReadCaseNotes => "查看办理记录",
            Action::MoveCase => "办理案件",
            Action::ListCases => "查看案件列表",
            Action::ListVerifications => "查看核对列表",
            Action::Supervise => "查看督导统计",
            Action::IssueSlip => "开具转办单",
            Action::ReadSlip => "查看转办单",
            Action::ListSlips => "查看转办单列表",
            Action::AnswerSlip => "办理转办单",
            Action::ListEscalations => "查看督办队列",
            Action::ManageMonitoring => "管理低收入人口监测名单",
            Action::ReadMonitoring => "查看监测名单与未匹配事件",
            Action::ListWarnings => "查看预警列表",
            Action::ReadWarning => "查看预警",
            Action::HandleWarning => "处置预警",
            Action::FileVillageReport => "提交村级报告",
            Action::ListVillageReports => "查看村级报告列表",
        }
    }

    pub(crate) fn resource_kind(self) -> ResourceKind {
        match self {
            Action::RequestVerification
            | Action::ViewReport
            | Action::ViewRawValues
            | Action::ReadSubjectAccessReport
            | Action::RecordAuthorization
            | Action::PollVerification
            | Action::ListVerifications => ResourceKind::Household,
            Action::OpenCase
            | Action::ReadCase
            | Action::ReadCaseNotes
            | Action::MoveCase
            | Action::ListCases
            | Action::Supervise
            | Action::ListEscalations => ResourceKind::Case,
            Action::IssueSlip | Action::ReadSlip | Action::ListSlips | Action::AnswerSlip => {
                ResourceKind::Slip
            }
            Action::SearchLog | Action::ReadLog => ResourceKind::AccessLog,
            Action::Administer => ResourceKind::System,
            Action::AnswerQuery | Action::PushEvent => ResourceKind::DepartmentEndpoint,
            Action::ManageMonitoring | Action::ReadMonitoring => ResourceKind::MonitoringList,
            Action::ListWarnings | Action::ReadWarning | Action::HandleWarning => {
                ResourceKind::Warning
            }
            Action::FileVillageReport | Action::ListVillageReports => ResourceKind::VillageReport,
        }
    }

    /// True when the Cedar context of this action carries the purpose.
    pub(crate) fn needs_purpose(self) -> bool {
        matches!(
            self,
            Action::RequestVerification
                | Action::ViewReport
                | Action::ViewRawValues
                | Action::RecordAuthorization
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for a in Action::ALL {
            assert_eq!(Action::from_code(a.code()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::Value::String(a.code().into())
            );
        }
        assert_eq!(Action::from_code("delete_everything"), None);
    }
}
