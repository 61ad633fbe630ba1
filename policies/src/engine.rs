//! 策略引擎: loads, validates and evaluates the Cedar policy set, together with the purpose profiles
//! and local standards that live beside it.
//!
//! Invariants:
//! - [`PolicyEngine::load`] either returns a fully validated engine or an error naming the file and
//!   line (Cedar) or the file and key (TOML). There is no partially loaded engine, so the hub can
//!   hot-swap a new engine on reload and keep the old one when loading fails.
//! - Strict Cedar validation against the schema; validator warnings are refused too. Every policy
//!   carries `@id("...")` (its id in decisions and the access log); every `forbid` carries
//!   `@reason_zh` and `@reason_en` (the words a caseworker sees when it denies).
//! - [`PolicyEngine::authorize`] never fails open: a request the engine cannot express in Cedar is
//!   denied with a reason and the error kept in [`Decision::errors`].
//! - No I/O after load: entities are built per request from the identity and the request context.
//!   What does not change between a principal's requests — its entity, its divisions and the
//!   schema's action entities, checked against the schema with their transitive closure — is built
//!   on the principal's first request and kept in the engine ([`PrincipalEntities`]); a reload
//!   builds a new engine, so nothing cached outlives the policy set it was checked against. Only
//!   the resource's entities and the context are built per request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Authorizer, Context, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use schemas::catalogue::FactKind;
use schemas::division::DivisionLevel;
use schemas::{Department, DivisionCode, Identity, Purpose, Role, Urgency};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ResourceKind};
use crate::calendar::WorkingCalendar;
use crate::deadlines::Deadlines;
use crate::error::{PolicyError, SourceProblem, located};
use crate::profiles::Profiles;
use crate::standards::Standards;
use crate::warnings::WarningRules;

/// Sub-directory of the policy directory holding `*.cedar` and the `*.cedarschema`.
pub const CEDAR_DIR: &str = "policies";
/// Sub-directory holding the purpose profiles.
pub const PROFILES_DIR: &str = "profiles";
/// Sub-directory holding the local standards.
pub const STANDARDS_DIR: &str = "standards";

/// Sub-directory holding the working-day calendar, one file per year. Optional: without it every
/// working-day answer is provisional (Monday–Friday) and `/readyz` says which years are missing.
pub const CALENDAR_DIR: &str = "calendar";

/// 核对授权书状态: what the hub knows about the authorization letter for this request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationStatus {
    /// 已登记: a letter is on record.
    #[serde(default)]
    pub present: bool,
    /// 有效: signed, not expired, not revoked.
    #[serde(default)]
    pub valid: bool,
    /// 覆盖: it covers these household members and this purpose.
    #[serde(default)]
    pub covers: bool,
}

impl AuthorizationStatus {
    /// A letter on record, in force and covering the request.
    pub const VALID: AuthorizationStatus = AuthorizationStatus {
        present: true,
        valid: true,
        covers: true,
    };
}

/// What the request is about. Carries no personal data: the household is described only by its
/// registered region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceCtx {
    /// 户籍登记地: the household's registered division (household actions). `None` when unknown,
    /// which no caseworker's jurisdiction covers.
    #[serde(default)]
    pub region: Option<DivisionCode>,
    /// 分户登记: the relations (to the applicant) of the household members whose registered
    /// division, established from civil affairs, is not `region` (or is unknown). Empty when every
    /// member is registered where the applicant is. The split-household rule in
    /// `jurisdiction.cedar` decides which relations may be looked up from the applicant's township.
    #[serde(default)]
    pub members_elsewhere: Vec<schemas::Relation>,
    /// 家庭规模: how many members the request lists (`request_verification`), for the
    /// household-size rules in `trawling.cedar`. A count, never who. 0 for actions that list no
    /// members.
    #[serde(default)]
    pub member_count: u32,
    /// How many of those members are unrelated to the applicant (relation `other`, 其他人员).
    #[serde(default)]
    pub unrelated_count: u32,
    /// The department whose protocol endpoint is used (`answer_query`, `push_event`).
    #[serde(default)]
    pub department: Option<Department>,
    /// 核对发起人: the full identity URI of the caseworker who requested the verification this
    /// request is about (report views and prints, polls, letters attached afterwards). Compared
    /// in Cedar with the principal's `uri` (`requester-only`), never by principal id alone.
    #[serde(default)]
    pub requester: Option<String>,
    /// 案件阶段: the stage of the case a case action is about (`received`, `accepted`, …,
    /// `with_county`, `decided`, `closed`); absent for a case not yet opened.
    #[serde(default)]
    pub case_state: Option<String>,
    /// 转办乡镇: the township a referral slip (转办单) of kind `township` is addressed to (slip
    /// actions). A slip to a department names it in `department`.
    #[serde(default)]
    pub to_township: Option<DivisionCode>,
}

/// The circumstances of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestCtx {
    /// 核对用途: required for request_verification, view_report, view_raw_values and
    /// record_authorization.
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// 紧急程度.
    #[serde(default)]
    pub urgency: Urgency,
    /// The authorization letter on record.
    #[serde(default)]
    pub authorization: AuthorizationStatus,
    /// For view_raw_values: the fact kinds whose raw values are asked for. Raw values are visible
    /// only when this is non-empty and the purpose profile marks every one raw-visible.
    #[serde(default)]
    pub raw_fact_kinds: Vec<FactKind>,
    /// For open_case: the intake channel (受理渠道) the case comes through, e.g. `hotline_12345`.
    #[serde(default)]
    pub channel: Option<String>,
    /// For move_case: the move asked for (`accept`, `transfer`, `first_help`, `investigate`,
    /// `hand_to_county`, `decide`, `close`).
    #[serde(default)]
    pub case_move: Option<String>,
}

/// 授权决定: the outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The deciding policies, sorted: the permits that allowed, or the forbids that denied (empty
    /// when nothing permitted the request). Goes into the access-log entry.
    pub policy_ids: Vec<String>,
    /// When denied: the reason in words a caseworker understands, Chinese first, then English.
    pub reason: Option<String>,
    /// Evaluation problems (the request could not be built, or a policy erred). Never contains
    /// personal data. A non-empty list always comes with `allowed == false`.
    pub errors: Vec<String>,
}

impl Decision {
    fn deny(reason_zh: &str, reason_en: &str, error: String) -> Decision {
        Decision {
            allowed: false,
            policy_ids: Vec::new(),
            reason: Some(format!("{reason_zh} / {reason_en}")),
            errors: vec![error],
        }
    }
}

/// One loaded policy: where it came from and its denial wording.
#[derive(Debug, Clone)]
struct PolicyMeta {
    file: PathBuf,
    line: usize,
    effect: Effect,
    reason_zh: Option<String>,
    reason_en: Option<String>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    schema: Schema,
    policies: PolicySet,
    meta: BTreeMap<String, PolicyMeta>,
    profiles: Profiles,
    standards: Standards,
    calendar: WorkingCalendar,
    deadlines: Deadlines,
    warnings: WarningRules,
    departments: crate::departments::Departments,
    authorizer: Authorizer,
    /// Per-principal entities, keyed by every identity attribute they are built from. Bounded:
    /// cleared when it reaches [`MAX_CACHED_PRINCIPALS`] (a burst of new certificates costs one
    /// rebuild each, never unbounded memory).
    principals: Mutex<HashMap<PrincipalKey, Arc<PrincipalEntities>>>,
    /// Per action, the policies that can apply to it ([`policies_by_action`]); an action missing
    /// here is evaluated against the whole set.
    by_action: HashMap<Action, PolicySet>,
}

/// How many principals' entities an engine keeps.
const MAX_CACHED_PRINCIPALS: usize = 4096;

/// The identity attributes a principal's entities are built from (display name and serial are
/// not among them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PrincipalKey {
    role: Role,
    principal: String,
    uri: String,
    organisation: String,
    division: DivisionCode,
}

impl PrincipalKey {
    fn of(identity: &Identity) -> PrincipalKey {
        PrincipalKey {
            role: identity.role,
            principal: identity.principal.clone(),
            uri: identity.uri.clone(),
            organisation: identity.organisation.clone(),
            division: identity.division.clone(),
        }
    }
}

/// The part of every request's entities that depends on the principal only: its entity and its
/// divisions up to the province, with the schema's action entities, validated against the schema
/// and transitively closed. A request adds its resource's entities to a clone (cheap: shared
/// `Arc`s).
#[derive(Debug)]
struct PrincipalEntities {
    uid: EntityUid,
    entities: Entities,
    /// The divisions already in `entities` (a resource in one of them adds none).
    divisions: Vec<DivisionCode>,
}

/// 策略引擎: a validated policy set with its profiles and standards. Cloning is cheap (an `Arc`);
/// share it across requests and swap it whole on reload.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

impl PolicyEngine {
    /// Load and validate a policy directory: `policies/` (`*.cedar` and one `*.cedarschema`),
    /// `profiles/` (purpose profiles) and `standards/` (local standards). Fails with an error naming
    /// the file and line or key of every problem found.
    pub fn load(dir: impl AsRef<Path>) -> Result<PolicyEngine, PolicyError> {
        let dir = dir.as_ref();
        // First: the other files may name a department it adds.
        let departments = crate::departments::Departments::load_dir(dir)?;
        let cedar = load_cedar(&dir.join(CEDAR_DIR))?;
        let by_action = policies_by_action(&cedar.schema, &cedar.policies);
        check_agencies(&dir.join(CEDAR_DIR), &departments)?;
        let profiles = Profiles::load(dir.join(PROFILES_DIR))?;
        let standards = Standards::load(dir.join(STANDARDS_DIR))?;
        let calendar_dir = dir.join(CALENDAR_DIR);
        let calendar = if calendar_dir.is_dir() {
            WorkingCalendar::load_dir(calendar_dir)?
        } else {
            WorkingCalendar::empty()
        };
        let deadlines = Deadlines::load_dir(dir)?;
        let warnings = WarningRules::load_dir(dir)?;
        Ok(PolicyEngine {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                schema: cedar.schema,
                policies: cedar.policies,
                meta: cedar.meta,
                profiles,
                standards,
                calendar,
                deadlines,
                warnings,
                departments,
                authorizer: Authorizer::new(),
                principals: Mutex::new(HashMap::new()),
                by_action,
            }),
        })
    }

    /// The policy directory shipped with this crate (`policies/` in the source tree).
    pub fn shipped_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The directory this engine was loaded from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The ids of all loaded policies, sorted.
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> {
        self.inner.meta.keys().map(String::as_str)
    }

    /// The file and line a policy was loaded from.
    pub fn policy_source(&self, id: &str) -> Option<(&Path, usize)> {
        self.inner.meta.get(id).map(|m| (m.file.as_path(), m.line))
    }

    /// The purpose profiles loaded with these policies.
    pub fn profiles(&self) -> &Profiles {
        &self.inner.profiles
    }

    /// The local standards loaded with these policies.
    pub fn standards(&self) -> &Standards {
        &self.inner.standards
    }

    /// The working-day calendar loaded with these policies (empty when there is no `calendar/`).
    pub fn calendar(&self) -> &WorkingCalendar {
        &self.inner.calendar
    }

    /// The clocks' durations loaded with these policies (`clocks.toml`; the statutory ones when
    /// there is no such file).
    pub fn deadlines(&self) -> &Deadlines {
        &self.inner.deadlines
    }

    /// The early-warning rules loaded with these policies (`warnings.toml`; none without it).
    pub fn warnings(&self) -> &WarningRules {
        &self.inner.warnings
    }

    /// The department directory loaded with these policies (`departments.toml`; the seven
    /// built-ins without it).
    pub fn departments(&self) -> &crate::departments::Departments {
        &self.inner.departments
    }

    /// Decide whether `identity` may perform `action` on `resource` in circumstances `request`.
    pub fn authorize(
        &self,
        identity: &Identity,
        action: Action,
        resource: &ResourceCtx,
        request: &RequestCtx,
    ) -> Decision {
        match self.build_request(identity, action, resource, request) {
            Ok((req, entities)) => self.evaluate(identity, action, &req, &entities),
            Err(d) => d,
        }
    }

    /// The principal's entities, from the cache or built (and cached) now.
    fn principal_entities(&self, identity: &Identity) -> Result<Arc<PrincipalEntities>, Decision> {
        let key = PrincipalKey::of(identity);
        let cached = self
            .inner
            .principals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(p) = cached {
            return Ok(p);
        }
        let built = Arc::new(self.build_principal(identity)?);
        let mut cache = self
            .inner
            .principals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_PRINCIPALS {
            cache.clear();
        }
        cache.insert(key, built.clone());
        Ok(built)
    }

    /// Build a principal's entities: its entity (attributes from the identity), its divisions, and
    /// the schema's actions, checked against the schema.
    fn build_principal(&self, identity: &Identity) -> Result<PrincipalEntities, Decision> {
        let internal = |what: &str, e: String| {
            Decision::deny(
                "策略评估出错，请求已拒绝",
                "policy evaluation failed; the request is refused",
                format!("{what}: {e}"),
            )
        };
        let mut b = EntityBuilder::default();
        b.division(&identity.division)
            .map_err(|e| internal("principal.division", e))?;
        let division_ref = || b_ref("Division", identity.division.as_str());
        let (ptype, pattrs) = match identity.role {
            Role::Caseworker => (
                "Caseworker",
                vec![
                    ("uri", string(&identity.uri)),
                    ("organisation", string(&identity.organisation)),
                    ("division", division_ref()),
                    ("level", b_ref("Level", level_code(&identity.division))),
                ],
            ),
            Role::Department => {
                let Some(dept) = Department::from_code(&identity.organisation) else {
                    return Err(Decision::deny(
                        "证书中的部门代码无法识别",
                        "the certificate's department code is not a known department",
                        format!(
                            "identity.organisation: {:?} is not a department code",
                            identity.organisation
                        ),
                    ));
                };
                (
                    "Department",
                    vec![
                        ("uri", string(&identity.uri)),
                        ("agency", b_ref("Agency", dept.code())),
                        ("division", division_ref()),
                    ],
                )
            }
            Role::Auditor => (
                "Auditor",
                vec![
                    ("uri", string(&identity.uri)),
                    ("organisation", string(&identity.organisation)),
                    ("division", division_ref()),
                ],
            ),
            Role::Admin => (
                "Admin",
                vec![
                    ("uri", string(&identity.uri)),
                    ("organisation", string(&identity.organisation)),
                    ("division", division_ref()),
                ],
            ),
            Role::Intake => (
                "Intake",
                vec![
                    ("uri", string(&identity.uri)),
                    ("channel", string(&identity.organisation)),
                    ("division", division_ref()),
                ],
            ),
            Role::VillageAssistant => (
                "VillageAssistant",
                vec![
                    ("uri", string(&identity.uri)),
                    ("organisation", string(&identity.organisation)),
                    ("division", division_ref()),
                ],
            ),
        };
        let principal = b
            .add(ptype, &identity.principal, pattrs, None)
            .map_err(|e| internal("principal", e))?;
        // Checked against the schema (an engine/schema mismatch fails closed here); the schema's
        // action entities are added.
        let entities = Entities::from_entities(b.entities, Some(&self.inner.schema))
            .map_err(|e| internal("entities", e.to_string()))?;
        Ok(PrincipalEntities {
            uid: principal,
            entities,
            divisions: b.divisions,
        })
    }

    fn build_request(
        &self,
        identity: &Identity,
        action: Action,
        resource: &ResourceCtx,
        request: &RequestCtx,
    ) -> Result<(Request, Entities), Decision> {
        let internal = |what: &str, e: String| {
            Decision::deny(
                "策略评估出错，请求已拒绝",
                "policy evaluation failed; the request is refused",
                format!("{what}: {e}"),
            )
        };
        let schema = &self.inner.schema;
        let principal = self.principal_entities(identity)?;
        let mut b = EntityBuilder {
            entities: Vec::new(),
            divisions: principal.divisions.clone(),
        };

        let resource_uid = match action.resource_kind() {
            ResourceKind::Household => {
                let mut attrs = Vec::new();
                if let Some(region) = &resource.region {
                    b.division(region)
                        .map_err(|e| internal("resource.region", e))?;
                    attrs.push(("region", b_ref("Division", region.as_str())));
                }
                let elsewhere: std::collections::BTreeSet<&str> = resource
                    .members_elsewhere
                    .iter()
                    .map(|r| r.code())
                    .collect();
                attrs.push((
                    "members_elsewhere",
                    RestrictedExpression::new_set(
                        elsewhere.into_iter().map(|r| b_ref("Relation", r)),
                    ),
                ));
                if let Some(requester) = &resource.requester {
                    attrs.push(("requester", string(requester)));
                }
                attrs.push((
                    "member_count",
                    RestrictedExpression::new_long(i64::from(resource.member_count)),
                ));
                attrs.push((
                    "unrelated_count",
                    RestrictedExpression::new_long(i64::from(resource.unrelated_count)),
                ));
                b.add("Household", "household", attrs, None)
            }
            ResourceKind::Case => {
                let mut attrs = Vec::new();
                if let Some(region) = &resource.region {
                    b.division(region)
                        .map_err(|e| internal("resource.region", e))?;
                    attrs.push(("region", b_ref("Division", region.as_str())));
                }
                if let Some(filed_by) = &resource.requester {
                    attrs.push(("filed_by", string(filed_by)));
                }
                if let Some(state) = &resource.case_state {
                    attrs.push(("state", string(state)));
                }
                b.add("Case", "case", attrs, None)
            }
            ResourceKind::Slip => {
                let mut attrs = Vec::new();
                if let Some(region) = &resource.region {
                    b.division(region)
                        .map_err(|e| internal("resource.region", e))?;
                    attrs.push(("region", b_ref("Division", region.as_str())));
                }
                if let Some(dept) = resource.department {
                    attrs.push(("to_agency", b_ref("Agency", dept.code())));
                }
                if let Some(t) = &resource.to_township {
                    b.division(t)
                        .map_err(|e| internal("resource.to_township", e))?;
                    attrs.push(("to_township", b_ref("Division", t.as_str())));
                }
                b.add("Slip", "slip", attrs, None)
            }
            ResourceKind::AccessLog => b.add("AccessLog", "log", vec![], None),
            ResourceKind::System => b.add("System", "hub", vec![], None),
            ResourceKind::MonitoringList => b.add("MonitoringList", "monitoring", vec![], None),
            ResourceKind::Warning => {
                let mut attrs = Vec::new();
                if let Some(region) = &resource.region {
                    b.division(region)
                        .map_err(|e| internal("resource.region", e))?;
                    attrs.push(("region", b_ref("Division", region.as_str())));
                }
                if let Some(state) = &resource.case_state {
                    attrs.push(("state", string(state)));
                }
                b.add("Warning", "warning", attrs, None)
            }
            ResourceKind::VillageReport => {
                let mut attrs = Vec::new();
                if let Some(region) = &resource.region {
                    b.division(region)
                        .map_err(|e| internal("resource.region", e))?;
                    attrs.push(("region", b_ref("Division", region.as_str())));
                }
                b.add("VillageReport", "village_report", attrs, None)
            }
            ResourceKind::DepartmentEndpoint => {
                let Some(dept) = resource.department else {
                    return Err(Decision::deny(
                        "请求未指明部门端点",
                        "the request names no department endpoint",
                        format!("resource.department: required for action {action}"),
                    ));
                };
                b.add(
                    "DepartmentEndpoint",
                    dept.code(),
                    vec![("agency", b_ref("Agency", dept.code()))],
                    None,
                )
            }
        }
        .map_err(|e| internal("resource", e))?;

        let mut ctx: Vec<(String, RestrictedExpression)> = Vec::new();
        if action.needs_purpose() {
            let Some(purpose) = request.purpose else {
                return Err(Decision::deny(
                    "请求未说明核对用途",
                    "the request names no purpose",
                    format!("context.purpose: required for action {action}"),
                ));
            };
            ctx.push(("purpose".into(), b_ref("Purpose", purpose.code())));
            if action == Action::RequestVerification {
                ctx.push(("urgency".into(), b_ref("Urgency", request.urgency.code())));
                let a = request.authorization;
                let letter = RestrictedExpression::new_record([
                    (
                        "present".to_owned(),
                        RestrictedExpression::new_bool(a.present),
                    ),
                    ("valid".to_owned(), RestrictedExpression::new_bool(a.valid)),
                    (
                        "covers".to_owned(),
                        RestrictedExpression::new_bool(a.covers),
                    ),
                ])
                .map_err(|e| internal("context.authorization", e.to_string()))?;
                ctx.push(("authorization".into(), letter));
            }
            if action == Action::ViewRawValues {
                let visible = !request.raw_fact_kinds.is_empty()
                    && request
                        .raw_fact_kinds
                        .iter()
                        .all(|k| self.inner.profiles.raw_visible(purpose, *k));
                ctx.push((
                    "raw_visible".into(),
                    RestrictedExpression::new_bool(visible),
                ));
            }
        }

        if action == Action::OpenCase {
            let channel = request.channel.clone().unwrap_or_default();
            ctx.push(("channel".into(), string(&channel)));
        }
        if action == Action::MoveCase {
            let step = request.case_move.clone().unwrap_or_default();
            ctx.push(("move".into(), string(&step)));
        }

        // The resource's entities are checked against the schema too, so an engine/schema mismatch
        // fails closed here.
        let entities = if b.entities.is_empty() {
            principal.entities.clone()
        } else {
            principal
                .entities
                .clone()
                .add_entities(b.entities, Some(schema))
                .map_err(|e| internal("entities", e.to_string()))?
        };
        let action_uid = uid("Action", action.code()).map_err(|e| internal("action", e))?;
        let context = Context::from_pairs(ctx).map_err(|e| internal("context", e.to_string()))?;
        let req = Request::new(
            principal.uid.clone(),
            action_uid,
            resource_uid,
            context,
            Some(schema),
        )
        .map_err(|e| internal("request", e.to_string()))?;
        Ok((req, entities))
    }

    fn evaluate(
        &self,
        identity: &Identity,
        action: Action,
        req: &Request,
        entities: &Entities,
    ) -> Decision {
        let policies = self
            .inner
            .by_action
            .get(&action)
            .unwrap_or(&self.inner.policies);
        self.evaluate_against(identity, action, req, entities, policies)
    }

    fn evaluate_against(
        &self,
        identity: &Identity,
        action: Action,
        req: &Request,
        entities: &Entities,
        policies: &PolicySet,
    ) -> Decision {
        let resp = self.inner.authorizer.is_authorized(req, policies, entities);
        // Sorted: Cedar reports them in no fixed order, and the log and the reason need one.
        let mut policy_ids: Vec<String> = resp
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policy_ids.sort();
        let errors: Vec<String> = resp.diagnostics().errors().map(|e| e.to_string()).collect();
        let allowed = resp.decision() == cedar_policy::Decision::Allow;
        let reason = if allowed {
            None
        } else {
            Some(self.denial_reason(identity, action, &policy_ids))
        };
        Decision {
            allowed,
            policy_ids,
            reason,
            errors,
        }
    }

    /// The words for a denial: the `@reason_zh` / `@reason_en` of the deciding forbids, or a
    /// role-and-action sentence when nothing permitted the request.
    fn denial_reason(&self, identity: &Identity, action: Action, forbids: &[String]) -> String {
        let (mut zh, mut en) = (Vec::new(), Vec::new());
        for id in forbids {
            if let Some(m) = self.inner.meta.get(id) {
                zh.extend(m.reason_zh.clone());
                en.extend(m.reason_en.clone());
            }
        }
        if zh.is_empty() {
            let role_zh = match identity.role {
                Role::Caseworker => "经办人",
                Role::Department => "协作部门",
                Role::Auditor => "审计员",
                Role::Admin => "管理员",
                Role::Intake => "受理渠道",
                Role::VillageAssistant => "村级救助协理员",
            };
            return format!(
                "{role_zh}无权{} / the {} role may not perform {}",
                action.name_zh(),
                identity.role,
                action
            );
        }
        format!("{} / {}", zh.join("；"), en.join("; "))
    }
}

/// Per action, the policies whose action scope can match it: unconstrained, naming the action, or
/// naming a group the action belongs to in the schema's action hierarchy. A policy whose action
/// scope does not match is never satisfied and never errs, so evaluating only these gives the same
/// decision, deciding policies and errors as the whole set, with a fraction of the policies. An
/// action whose subset cannot be built is left out (and evaluated against the whole set).
fn policies_by_action(schema: &Schema, policies: &PolicySet) -> HashMap<Action, PolicySet> {
    let Ok(actions) = schema.action_entities() else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for action in Action::ALL {
        let Ok(action_uid) = uid("Action", action.code()) else {
            continue;
        };
        let mut scope: HashSet<EntityUid> = actions
            .ancestors(&action_uid)
            .map(|a| a.cloned().collect())
            .unwrap_or_default();
        scope.insert(action_uid);
        let mut set = PolicySet::new();
        let mut complete = true;
        for p in policies.policies() {
            let applies = match p.action_constraint() {
                cedar_policy::ActionConstraint::Any => true,
                cedar_policy::ActionConstraint::Eq(u) => scope.contains(&u),
                cedar_policy::ActionConstraint::In(us) => us.iter().any(|u| scope.contains(u)),
            };
            if applies && set.add(p.clone()).is_err() {
                complete = false;
            }
        }
        if complete {
            out.insert(action, set);
        }
    }
    out
}

fn level_code(d: &DivisionCode) -> &'static str {
    match d.level() {
        DivisionLevel::Village => "village",
        DivisionLevel::Township => "township",
        DivisionLevel::County => "county",
        DivisionLevel::City => "city",
        DivisionLevel::Province => "province",
    }
}

/// The division directly above `d`: village → township → county → city → province → none.
fn parent_division(d: &DivisionCode) -> Option<DivisionCode> {
    d.parent()
}

fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let ty = EntityTypeName::from_str(ty).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// A reference to an entity, as an attribute or context value. Type names are the fixed
/// identifiers of the schema; an unparsable one yields a value that fails request validation
/// (fail closed), never a panic.
fn b_ref(ty: &str, id: &str) -> RestrictedExpression {
    match uid(ty, id) {
        Ok(u) => RestrictedExpression::new_entity_uid(u),
        Err(e) => RestrictedExpression::new_string(format!("invalid entity type {ty:?}: {e}")),
    }
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

/// Collects the entities of one request.
#[derive(Default)]
struct EntityBuilder {
    entities: Vec<Entity>,
    divisions: Vec<DivisionCode>,
}

impl EntityBuilder {
    fn add(
        &mut self,
        ty: &str,
        id: &str,
        attrs: Vec<(&str, RestrictedExpression)>,
        parent: Option<EntityUid>,
    ) -> Result<EntityUid, String> {
        let u = uid(ty, id)?;
        let attrs: HashMap<String, RestrictedExpression> =
            attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let parents: HashSet<EntityUid> = parent.into_iter().collect();
        let e = Entity::new(u.clone(), attrs, parents).map_err(|e| e.to_string())?;
        self.entities.push(e);
        Ok(u)
    }

    /// Add a division entity and every division above it (parents) unless already present.
    fn division(&mut self, d: &DivisionCode) -> Result<(), String> {
        let mut current = Some(d.clone());
        while let Some(d) = current {
            if self.divisions.contains(&d) {
                return Ok(());
            }
            let parent = parent_division(&d);
            let parent_uid = match &parent {
                Some(p) => Some(uid("Division", p.as_str())?),
                None => None,
            };
            self.add(
                "Division",
                d.as_str(),
                vec![("level", b_ref("Level", level_code(&d)))],
                parent_uid,
            )?;
            self.divisions.push(d);
            current = parent;
        }
        Ok(())
    }
}

struct CedarSet {
    schema: Schema,
    policies: PolicySet,
    meta: BTreeMap<String, PolicyMeta>,
}

/// Read a directory's entries with a given extension, sorted by name.
pub(crate) fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, PolicyError> {
    let rd = std::fs::read_dir(dir).map_err(|e| PolicyError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| PolicyError::io(dir, e))?;
        let path = entry.path();
        if path.is_file() && path.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))
}

/// Every department of `departments.toml` must be an `Agency` of the Cedar schema
/// (`entity Agency enum [...]`), so that a department added as data is decided like the others
/// and a typo in a policy's `Agency::"…"` stays a validation error.
fn check_agencies(
    dir: &Path,
    departments: &crate::departments::Departments,
) -> Result<(), PolicyError> {
    for file in files_with_ext(dir, "cedarschema")? {
        let src = read(&file)?;
        let Some(rest) = src.split_once("entity Agency enum [").map(|(_, r)| r) else {
            continue;
        };
        let list = rest.split_once(']').map_or("", |(l, _)| l);
        let codes: Vec<&str> = list
            .lines()
            .map(|l| l.split_once("//").map_or(l, |(a, _)| a))
            .flat_map(|l| l.split(','))
            .map(|c| c.trim().trim_matches('"'))
            .filter(|c| !c.is_empty())
            .collect();
        for d in departments.iter() {
            if !codes.contains(&d.department.code()) {
                return Err(PolicyError::Missing {
                    path: file.clone(),
                    what: format!(
                        "entity Agency enum: add \"{}\" (a department of departments.toml)",
                        d.department.code()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn load_cedar(dir: &Path) -> Result<CedarSet, PolicyError> {
    let schema_files = files_with_ext(dir, "cedarschema")?;
    let [schema_file] = schema_files.as_slice() else {
        return Err(PolicyError::Missing {
            path: dir.to_owned(),
            what: format!(
                "expected exactly one *.cedarschema file, found {}",
                schema_files.len()
            ),
        });
    };
    let policy_files = files_with_ext(dir, "cedar")?;
    if policy_files.is_empty() {
        return Err(PolicyError::Missing {
            path: dir.to_owned(),
            what: "no *.cedar policy files".into(),
        });
    }

    let mut problems: Vec<SourceProblem> = Vec::new();

    let schema_src = read(schema_file)?;
    let schema = match Schema::from_cedarschema_str(&schema_src) {
        Ok((schema, warnings)) => {
            for w in warnings {
                problems.extend(located(schema_file, &schema_src, &w, None));
            }
            Some(schema)
        }
        Err(e) => {
            problems.extend(located(schema_file, &schema_src, &e, None));
            None
        }
    };

    // Parse every file (reporting all syntax errors), re-keying each policy by its @id.
    let mut sources: BTreeMap<String, (PathBuf, Arc<str>, Option<usize>)> = BTreeMap::new();
    let mut meta: BTreeMap<String, PolicyMeta> = BTreeMap::new();
    let mut set = PolicySet::new();
    for file in &policy_files {
        let src = read(file)?;
        let parsed = match PolicySet::from_str(&src) {
            Ok(p) => p,
            Err(errs) => {
                for e in errs.iter() {
                    problems.extend(located(file, &src, e, None));
                }
                continue;
            }
        };
        let src: Arc<str> = Arc::from(src);
        for t in parsed.templates() {
            let off = src.find(&t.to_string());
            problems.extend(plain(
                file,
                &src,
                off,
                format!(
                    "policy templates (?principal / ?resource) are not supported here: {}",
                    t.id()
                ),
            ));
        }
        for p in parsed.policies() {
            let off = src.find(&p.to_string());
            let line = off.map_or(0, |o| crate::error::line_col(&src, o).0);
            let Some(id) = p.annotation("id") else {
                problems.extend(plain(
                    file,
                    &src,
                    off,
                    "policy has no @id(\"...\") annotation".into(),
                ));
                continue;
            };
            if let Some(first) = meta.get(id) {
                problems.extend(plain(
                    file,
                    &src,
                    off,
                    format!(
                        "duplicate policy id {id:?} (first defined at {}:{})",
                        first.file.display(),
                        first.line
                    ),
                ));
                continue;
            }
            let reason_zh = p.annotation("reason_zh").map(str::to_owned);
            let reason_en = p.annotation("reason_en").map(str::to_owned);
            if p.effect() == Effect::Forbid && (reason_zh.is_none() || reason_en.is_none()) {
                problems.extend(plain(
                    file,
                    &src,
                    off,
                    format!(
                        "forbid policy {id:?} needs @reason_zh(\"...\") and @reason_en(\"...\") \
                         (the words a caseworker sees when it denies)"
                    ),
                ));
            }
            let renamed = p.new_id(PolicyId::new(id));
            if let Err(e) = set.add(renamed) {
                problems.extend(plain(file, &src, off, e.to_string()));
                continue;
            }
            sources.insert(id.to_owned(), (file.clone(), Arc::clone(&src), off));
            meta.insert(
                id.to_owned(),
                PolicyMeta {
                    file: file.clone(),
                    line,
                    effect: p.effect(),
                    reason_zh,
                    reason_en,
                },
            );
        }
    }

    if let Some(schema) = &schema {
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for e in result.validation_errors() {
            let id = e.policy_id().to_string();
            problems.extend(match sources.get(&id) {
                Some((file, src, off)) => located(file, src, e, *off),
                None => located(dir, "", e, None),
            });
        }
        for w in result.validation_warnings() {
            let id = w.policy_id().to_string();
            problems.extend(match sources.get(&id) {
                Some((file, src, off)) => located(file, src, w, *off),
                None => located(dir, "", w, None),
            });
        }
    }

    match schema {
        Some(schema) if problems.is_empty() => {
            debug_assert!(
                meta.values().all(|m| m.effect == Effect::Permit
                    || (m.reason_zh.is_some() && m.reason_en.is_some()))
            );
            Ok(CedarSet {
                schema,
                policies: set,
                meta,
            })
        }
        _ => Err(PolicyError::Cedar { problems }),
    }
}

fn plain(file: &Path, src: &str, off: Option<usize>, message: String) -> Vec<SourceProblem> {
    let (line, column) = off.map_or((0, 0), |o| crate::error::line_col(src, o));
    vec![SourceProblem {
        file: file.to_owned(),
        line,
        column,
        message,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(role: Role, organisation: &str, division: &str) -> Identity {
        Identity {
            uri: format!("spiffe://jishijiu.jining/{role}/{organisation}/{division}/p-1"),
            principal: "p-1".into(),
            role,
            organisation: organisation.into(),
            division: DivisionCode::parse(division).expect("division"),
            display_name: "测试".into(),
            serial: "01".into(),
        }
    }

    /// Evaluating an action against its subset of the policies decides exactly as the whole set
    /// (allowed, deciding policies, reason, errors), for every action, role and a spread of
    /// resources and contexts; and the subsets are smaller than the set.
    #[test]
    fn per_action_policy_subsets_decide_as_the_whole_set() {
        let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).expect("shipped policies");
        let mut people = Vec::new();
        for division in ["370811002", "370811", "370811005"] {
            for (role, organisation) in [
                (Role::Caseworker, "mz-370811002"),
                (Role::Auditor, "sj-370811"),
                (Role::Admin, "ops"),
                (Role::Intake, "12345"),
                (Role::VillageAssistant, "cun-370811002001"),
                (Role::Department, Department::Labor.code()),
            ] {
                people.push(identity(role, organisation, division));
            }
        }
        let own = DivisionCode::parse("370811002").expect("division");
        let mut resources = vec![ResourceCtx::default()];
        for region in [
            Some(own.clone()),
            Some(DivisionCode::parse("370811005").expect("d")),
        ] {
            resources.push(ResourceCtx {
                region: region.clone(),
                member_count: 3,
                ..Default::default()
            });
            resources.push(ResourceCtx {
                region: region.clone(),
                requester: Some(people[0].uri.clone()),
                department: Some(Department::Labor),
                member_count: 13,
                unrelated_count: 3,
                case_state: Some("received".into()),
                to_township: region,
                ..Default::default()
            });
        }
        let contexts = [
            RequestCtx::default(),
            RequestCtx {
                purpose: Some(Purpose::DibaoApplication),
                urgency: Urgency::Normal,
                authorization: AuthorizationStatus::VALID,
                raw_fact_kinds: vec![FactKind::MonthlyWages],
                channel: Some("walk_in".into()),
                case_move: Some("accept".into()),
            },
            RequestCtx {
                purpose: Some(Purpose::TemporaryAssistance),
                urgency: Urgency::Emergency,
                ..Default::default()
            },
        ];
        let mut compared = 0;
        for action in Action::ALL {
            let subset = engine
                .inner
                .by_action
                .get(&action)
                .expect("a subset per action");
            assert!(
                subset.policies().count() < engine.inner.policies.policies().count(),
                "{action}"
            );
            for who in &people {
                for resource in &resources {
                    for ctx in &contexts {
                        let Ok((req, entities)) = engine.build_request(who, action, resource, ctx)
                        else {
                            continue;
                        };
                        let fast = engine.evaluate(who, action, &req, &entities);
                        let whole = engine.evaluate_against(
                            who,
                            action,
                            &req,
                            &entities,
                            &engine.inner.policies,
                        );
                        assert_eq!(fast, whole, "{action} {} {resource:?} {ctx:?}", who.uri);
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 1000, "{compared}");
    }
}
