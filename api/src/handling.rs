//! Handling petitions over HTTP: staff act on petitions of their unit, citizens follow theirs by
//! tracking code and secret, leaders read on-time, satisfaction and reopen rates.
//!
//! The [`Desk`] keeps the current status of every petition that has events (loaded from
//! `petition_status` and the part of `voxpop.events` the lake has not taken yet) and serialises
//! actions: an action is checked against the state machine, appended to the log (durable before
//! the answer), and only then shown as the petition's status. The pipeline re-applies the same
//! rules when it folds the log into the lake. With several API nodes on one Kafka cluster each
//! desk follows `voxpop.events`, so a decision on one node reaches the others within a poll; two
//! nodes deciding on the same petition in the same instant is settled by the pipeline, which
//! applies the first event and dead-letters the other with the reason (route a unit's handling
//! to one node to avoid it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;
use voxpop_pipeline::handling::HandlingLake;
use voxpop_pipeline::{EventLog, Record, Topic};
use voxpop_schema::calendar::Deadlines;
use voxpop_schema::reports::{Level, UnitRef};
use voxpop_schema::workflow::{
    self, ActionRequest, Actor, Event, Handling, PersonalText, PetitionRef, Rejected, State as Stage, Status,
};
use voxpop_schema::{FieldError, Units};

use crate::auth::{Caller, Role};
use crate::http::AppState;
use crate::params::{body_members, flag, known_params, problem_errors, query_params, unknown_parameters};
use crate::problem::{Problem, ProblemField};

/// The API's book of statuses and the one place actions are decided.
pub struct Desk {
    pub handling: Arc<Handling>,
    log: Arc<dyn EventLog>,
    book: RwLock<HashMap<Uuid, Status>>,
    deciding: tokio::sync::Mutex<()>,
    /// The latest events decided here (or followed from other nodes), so a timeline shows them
    /// before the lake has them.
    recent: std::sync::Mutex<std::collections::VecDeque<Event>>,
    /// Where [`Desk::load`] stopped reading the events, for [`Desk::spawn_follower`].
    follower: std::sync::Mutex<Option<Box<dyn voxpop_pipeline::LogReader>>>,
}

/// Events kept for read-your-writes timelines (the lake takes them within a second or two).
const RECENT_EVENTS: usize = 10_000;

impl Desk {
    /// Loads the statuses the lake has and replays the events it has not taken yet.
    pub async fn load(
        log: Arc<dyn EventLog>,
        lake_dir: &std::path::Path,
        handling: Arc<Handling>,
    ) -> anyhow::Result<Desk> {
        let mut lake = HandlingLake::open_or_create(lake_dir).await?;
        // The status table may lag the events after a crash between their commits: it is
        // rebuilt from the events first (before the pipeline starts), so the book is current.
        lake.ensure_status_current(&handling).await?;
        let mut book = lake.statuses().await?;
        let partitions = log.partitions(Topic::Events).await?;
        let start = lake.committed_positions(&partitions).await?;
        let mut reader = log.reader(Topic::Events, &start).await?;
        let rules = handling.rules();
        let mut replayed = 0;
        loop {
            let records = reader.poll(10_000, Duration::from_millis(200)).await?;
            if records.is_empty() {
                break;
            }
            for record in records {
                let Ok(event) = serde_json::from_slice::<Event>(&record.payload) else { continue };
                let current = book
                    .remove(&event.petition_id)
                    .unwrap_or_else(|| Status::initial(event.petition_id, &event.petition, &rules));
                let next = current.apply(&event, &rules).unwrap_or(current);
                book.insert(event.petition_id, next);
                replayed += 1;
            }
        }
        tracing::info!(statuses = book.len(), replayed, "handling desk ready");
        Ok(Desk {
            handling,
            log,
            book: RwLock::new(book),
            deciding: tokio::sync::Mutex::new(()),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
            follower: std::sync::Mutex::new(Some(reader)),
        })
    }

    /// Keeps following `voxpop.events` after [`Desk::load`]: events other API nodes decided
    /// (several nodes on one Kafka cluster) reach this node's book within a poll. Two nodes can
    /// still decide conflicting actions on one petition at the same moment; the pipeline applies
    /// the first and dead-letters the other with the reason. Call once; ends with `shutdown`.
    pub fn spawn_follower(self: &Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let Some(mut reader) = self.follower.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let desk = self.clone();
        tokio::spawn(async move {
            loop {
                let polled = tokio::select! {
                    polled = reader.poll(1_000, Duration::from_millis(250)) => polled,
                    _ = shutdown.changed() => return,
                };
                let records = match polled {
                    Ok(records) => records,
                    Err(err) => {
                        tracing::warn!(error = %err, "handling desk cannot follow the events; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if records.is_empty() {
                    continue;
                }
                // Under the deciding lock: an event this node is appending is in `recent` by then.
                let _one_at_a_time = desk.deciding.lock().await;
                let rules = desk.handling.rules();
                for record in records {
                    let Ok(event) = serde_json::from_slice::<Event>(&record.payload) else { continue };
                    let decided_here = desk
                        .recent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .any(|e| e.event_id == event.event_id);
                    if decided_here {
                        continue;
                    }
                    let mut book = desk.book.write().unwrap_or_else(|p| p.into_inner());
                    let current = book
                        .get(&event.petition_id)
                        .cloned()
                        .unwrap_or_else(|| Status::initial(event.petition_id, &event.petition, &rules));
                    if let Ok(next) = current.apply(&event, &rules) {
                        book.insert(event.petition_id, next);
                    }
                    drop(book);
                    let mut recent = desk.recent.lock().unwrap_or_else(|p| p.into_inner());
                    if recent.len() == RECENT_EVENTS {
                        recent.pop_front();
                    }
                    recent.push_back(event);
                }
            }
        });
    }

    /// The status of a petition with events, if any.
    pub fn status(&self, id: &Uuid) -> Option<Status> {
        self.book.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Every status the book holds that `filter` keeps.
    pub fn statuses(&self, mut filter: impl FnMut(&Status) -> bool) -> Vec<Status> {
        self.book.read().unwrap_or_else(|p| p.into_inner()).values().filter(|s| filter(s)).cloned().collect()
    }

    /// The status of a petition: from the book, or the initial one of a petition nobody acted on.
    pub fn status_or_initial(&self, id: Uuid, petition: &PetitionRef) -> Status {
        self.status(&id).unwrap_or_else(|| Status::initial(id, petition, &self.handling.rules()))
    }

    /// Decides `request` and makes it durable on the log; the new status on success.
    pub async fn act(
        &self,
        id: Uuid,
        petition: &PetitionRef,
        request: &ActionRequest,
        actor: &Actor,
    ) -> Result<(Event, Status), ActError> {
        self.act_at(id, petition, request, actor, Utc::now()).await
    }

    /// [`Desk::act`] as if taken at `at`: the same rules, the same log, the event and the status
    /// dated `at` (the demo's synthetic histories place past actions with it). `at` should not
    /// be earlier than the petition's last event.
    pub async fn act_at(
        &self,
        id: Uuid,
        petition: &PetitionRef,
        request: &ActionRequest,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(Event, Status), ActError> {
        let _one_at_a_time = self.deciding.lock().await;
        let rules = self.handling.rules();
        let current = self.status_or_initial(id, petition);
        let event = current.decide(request, actor, at, &rules).map_err(ActError::Rejected)?;
        let next = current.apply(&event, &rules).map_err(ActError::Rejected)?;
        let record = Record {
            key: id.to_string().into_bytes(),
            payload: serde_json::to_vec(&event).map_err(|err| ActError::Unavailable(err.to_string()))?,
        };
        self.log.append(Topic::Events, vec![record]).await.map_err(|err| ActError::Unavailable(err.to_string()))?;
        self.book.write().unwrap_or_else(|p| p.into_inner()).insert(id, next.clone());
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        Ok((event, next))
    }

    /// The timeline of a petition: the lake's events and those decided here that the lake has
    /// not taken yet.
    pub fn complete_history(&self, id: &Uuid, mut from_lake: Vec<Event>) -> Vec<Event> {
        let known: std::collections::HashSet<Uuid> = from_lake.iter().map(|e| e.event_id).collect();
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        from_lake.extend(recent.iter().filter(|e| e.petition_id == *id && !known.contains(&e.event_id)).cloned());
        from_lake
    }
}

impl voxpop_index::StateSource for Desk {
    fn state_of(&self, id: &Uuid) -> Option<&'static str> {
        self.book.read().unwrap_or_else(|p| p.into_inner()).get(id).map(|status| status.state.as_str())
    }
}

#[derive(Debug)]
pub enum ActError {
    Rejected(Rejected),
    Unavailable(String),
}

impl ActError {
    fn into_problem(self) -> Problem {
        match self {
            ActError::Rejected(Rejected::Transition { action, state, allowed }) => {
                let mut problem = Problem::new(
                    StatusCode::CONFLICT,
                    "invalid-transition",
                    "Not allowed in the petition's state",
                    format!("`{action}` is not allowed when the petition is {}", state.as_str()),
                );
                problem.allowed = allowed.iter().map(|a| a.as_str().to_owned()).collect();
                problem.state = Some(state.as_str().to_owned());
                problem
            }
            ActError::Rejected(Rejected::Invalid { field, message }) => {
                Problem::invalid(&[voxpop_schema::FieldError::new(field, "invalid", message)])
            }
            ActError::Rejected(Rejected::Fields(errors)) => Problem::invalid(&errors),
            ActError::Rejected(Rejected::Forbidden(message)) => {
                Problem::new(StatusCode::FORBIDDEN, "out-of-scope", "Outside your authority", message)
            }
            ActError::Unavailable(reason) => Problem::unavailable(format!("the action was not recorded: {reason}"), 5),
        }
    }
}

/// A handling record (a [`Status`], an [`Event`], a [`PetitionRef`]) as `caller` may see it: in
/// clear when the caller may see personal data ([`Caller::personal_data`]: officers, leaders and
/// administrators with a token), with its free text masked otherwise (`data_engineer` tokens, and
/// everyone in open mode), as SQL masks `petition_events` and `petition_status`. Every handling
/// read path shows records through it rather than masking field by field, so they all agree.
pub fn masked_for<T: PersonalText>(caller: &Caller, record: T) -> T {
    if caller.personal_data() { record } else { record.masked() }
}

/// Whether a staff caller may see a petition: it lies in the caller's unit, or the caller's
/// unit handles it now (after a transfer or an escalation).
pub fn visible(caller: &Caller, petition: &PetitionRef, status: Option<&Status>) -> bool {
    caller.sees(&petition.province_code, &petition.commune_code)
        || status.is_some_and(|s| workflow::covers(Units::embedded(), &caller.unit, &s.unit))
}

/// Finds a petition's reference by id (index first, then the lake).
async fn petition_ref(state: &AppState, id: &Uuid) -> Result<Option<PetitionRef>, Problem> {
    if let Some(status) = state.desk.status(id) {
        return Ok(Some(status.petition_ref()));
    }
    let received_at = match state.index.get(id) {
        Ok(found) => found.map(|hit| hit.received_at),
        Err(err) => return Err(Problem::internal(&err)),
    };
    match state.queries.petition(id, received_at).await {
        Ok(Some(p)) => Ok(Some(PetitionRef {
            tracking_code: p.tracking_code,
            received_at: p.received_at,
            province_code: p.province_code,
            commune_code: p.commune_code,
            topic: p.topic,
            title: p.title,
        })),
        Ok(None) => Ok(None),
        Err(err) => Err(Problem::internal(&err)),
    }
}

fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::bad_parameter("id", format!("`{raw}` is not a petition id (UUID)")))
}

fn not_found(id: &Uuid) -> Problem {
    Problem::not_found(format!("no petition `{id}` in your unit (a petition just accepted appears within seconds)"))
}

fn staff_actor(caller: &Caller, token: Option<String>) -> Result<Actor, Problem> {
    if !matches!(caller.role, Role::Officer | Role::Leader | Role::Admin) || !caller.authenticated {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "role",
            "Handling needs an officer, leader or administrator token",
            format!("role `{:?}` cannot act on petitions", caller.role).to_lowercase(),
        ));
    }
    let role = match caller.role {
        Role::Officer => "officer",
        Role::Leader => "leader",
        _ => "admin",
    };
    Ok(Actor { id: token.unwrap_or_else(|| "token".to_owned()), role: role.to_owned(), unit: caller.unit.clone() })
}

/// The fields of a staff action's body.
const STAFF_ACTION_FIELDS: [&str; 6] = ["action", "note", "answer", "unit", "days", "rating"];
/// The fields of a citizen's action's body.
const CITIZEN_ACTION_FIELDS: [&str; 4] = ["secret", "action", "rating", "note"];

/// Reads an action's JSON body (an object of `known` fields), naming every field at fault: 413
/// past the body limit, 400 for a body that is not a JSON object, 422 for an unknown field or a
/// value of the wrong type. Typed here rather than by serde, whose messages name no field.
fn action_body(
    body: Result<Bytes, BytesRejection>,
    known: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, Problem> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let (code, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ("too_large", format!("the body is larger than {} bytes", crate::http::MAX_REQUEST_BYTES))
        } else {
            ("unreadable", rejection.body_text())
        };
        let mut problem = Problem::new(status, "request-body", "The action could not be read", message.clone());
        problem.errors = vec![ProblemField::from(&FieldError::new("", code, message))];
        problem
    })?;
    let (object, unknown) = body_members(&body, known).map_err(|errors| Problem::invalid(&errors))?;
    if !unknown.is_empty() {
        return Err(Problem::invalid(&unknown));
    }
    Ok(object)
}

/// The typed fields of an action's body; every problem goes to `errors`.
struct BodyFields<'a> {
    object: &'a serde_json::Map<String, serde_json::Value>,
    /// The time limits, for the range of `days`.
    deadlines: &'a Deadlines,
    errors: Vec<FieldError>,
}

impl BodyFields<'_> {
    /// A string field; `null` is absent here (the action decides whether it may be sent at all:
    /// see [`BodyFields::nulls`]).
    fn text(&mut self, name: &str) -> Option<String> {
        match self.object.get(name) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.errors.push(FieldError::wrong_type(name, "a string"));
                None
            }
        }
    }

    /// A whole-number member that fits in `T` (`days` as `u32`, `rating` as `u8`); `null` is
    /// absent. Every refusal states the range the member takes ([`workflow::whole_range`]), not
    /// the range of its type: a number beyond the type is `out_of_range` as the state machine
    /// names a number beyond the member's range, and one that is not whole is a `type` error.
    /// Numbers within the type are left to the state machine, which checks the range.
    fn whole<T: TryFrom<u64>>(&mut self, name: &str) -> Option<T> {
        let range = workflow::whole_range(name, self.deadlines).unwrap_or(0..=u64::MAX);
        match self.object.get(name) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(number)) if number.is_u64() || number.is_i64() => {
                match number.as_u64().and_then(|whole| T::try_from(whole).ok()) {
                    Some(value) => Some(value),
                    None => {
                        self.errors.push(workflow::out_of_range(name, number, self.deadlines));
                        None
                    }
                }
            }
            Some(_) => {
                let expected = format!("a whole number from {} to {}", range.start(), range.end());
                self.errors.push(FieldError::wrong_type(name, &expected));
                None
            }
        }
    }

    /// The members of [`STAFF_ACTION_FIELDS`] given as `null`, for the state machine to refuse
    /// those the action does not take ([`ActionRequest::null_members`]).
    fn nulls(&self) -> Vec<String> {
        let mut nulls: Vec<String> = self
            .object
            .iter()
            .filter(|(name, value)| {
                value.is_null() && *name != "action" && STAFF_ACTION_FIELDS.contains(&name.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect();
        nulls.sort();
        nulls
    }

    /// The required `action`.
    fn action(&mut self) -> String {
        let action = self.text("action");
        if action.is_none() && !self.errors.iter().any(|e| e.field == "action") {
            self.errors.push(FieldError::required("action"));
        }
        action.unwrap_or_default()
    }

    fn finish<T>(self, value: T) -> Result<T, Problem> {
        if self.errors.is_empty() { Ok(value) } else { Err(Problem::invalid(&self.errors)) }
    }
}

/// A staff action's body as an [`ActionRequest`]; `deadlines` give the range of `days`.
fn staff_request(body: Result<Bytes, BytesRejection>, deadlines: &Deadlines) -> Result<ActionRequest, Problem> {
    let object = action_body(body, &STAFF_ACTION_FIELDS)?;
    let mut fields = BodyFields { object: &object, deadlines, errors: Vec::new() };
    let request = ActionRequest {
        action: fields.action(),
        note: fields.text("note"),
        answer: fields.text("answer"),
        unit: fields.text("unit"),
        days: fields.whole("days"),
        rating: fields.whole("rating"),
        null_members: fields.nulls(),
    };
    fields.finish(request)
}

/// A problem of the actions routes with the field at fault named: `id` for a petition not found,
/// `action` for an action the state, the role or the authority does not allow.
fn naming_field(mut problem: Problem) -> Problem {
    if problem.errors.is_empty() && (400..500).contains(&problem.status) {
        let field = if problem.status == StatusCode::NOT_FOUND.as_u16() { "id" } else { "action" };
        let code = problem.kind.rsplit('/').next().unwrap_or_default().replace('-', "_");
        problem.errors = vec![ProblemField::from(&FieldError::new(field, &code, problem.detail.clone()))];
    }
    problem
}

/// `POST /api/v1/petitions/{id}/actions`: accept, decline, assign, start, answer, close,
/// transfer, escalate, extend. 409 with the allowed actions when the state does not allow it.
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(problem) => return problem.into_response(),
    };
    let request = match staff_request(body, &state.desk.handling.deadlines) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    match act_as(&state, &caller, id, &request).await {
        Ok((event, status)) => {
            Json(json!({ "event": masked_for(&caller, event), "status": view(&caller, &status, &state.desk) }))
                .into_response()
        }
        Err(problem) => naming_field(problem).into_response(),
    }
}

/// 422 naming `unit` when an action hands a petition to a village the register does not hold
/// (never registered, or removed): the state machine knows the shape of village codes, only the
/// register knows which villages exist.
async fn check_target_village(state: &AppState, request: &ActionRequest) -> Result<(), Problem> {
    let Some(code) = request.unit.as_deref().map(str::trim).filter(|code| Level::of_code(code) == Some(Level::Village))
    else {
        return Ok(());
    };
    let unknown = |message: String| Problem::invalid(&[FieldError::new("unit", "unknown_village", message)]);
    if let Err(err) = UnitRef::parse(code, Units::embedded()) {
        return Err(unknown(err.to_string()));
    }
    let villages = state.registers.villages().await.map_err(|err| Problem::internal(&err))?;
    if !villages.iter().any(|village| village.code == code) {
        return Err(unknown(format!("unknown village `{code}`: not in the villages register of its commune")));
    }
    Ok(())
}

/// A staff caller's action on petition `id` (the API and the inbox page share it).
pub async fn act_as(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    request: &ActionRequest,
) -> Result<(Event, Status), Problem> {
    let actor = staff_actor(caller, caller.token_id.clone())?;
    let petition = match petition_ref(state, &id).await? {
        Some(petition) if visible(caller, &petition, state.desk.status(&id).as_ref()) => petition,
        _ => return Err(not_found(&id)),
    };
    check_target_village(state, request).await?;
    state.desk.act(id, &petition, request, &actor).await.map_err(ActError::into_problem)
}

/// A status as the API shows it to `caller` (masked by [`masked_for`]): with labels, the
/// allowed next actions and lateness.
pub fn view(caller: &Caller, status: &Status, desk: &Desk) -> serde_json::Value {
    let status = &masked_for(caller, status.clone());
    let now = Utc::now();
    let units = Units::embedded();
    json!({
        "petition_id": status.petition_id,
        "tracking_code": status.tracking_code,
        "title": status.title,
        "received_at": status.received_at,
        "province_code": status.province_code,
        "commune_code": status.commune_code,
        "topic": status.topic,
        "state": status.state.as_str(),
        "state_label": status.state.label_vi(),
        "unit": status.unit,
        "unit_name": unit_name(units, &status.unit),
        "due_at": status.due_at,
        "overdue": status.overdue(now),
        "working_days_left": status.due_at.map(|due| working_days_left(desk, due, now)),
        "extension_days": status.extension_days,
        "answer": status.answer,
        "answered_at": status.answered_at,
        "answered_on_time": status.answered_on_time,
        "rating": status.rating,
        "reopen_count": status.reopen_count,
        "updated_at": status.updated_at,
        "allowed": status.state.allowed().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    })
}

fn working_days_left(desk: &Desk, due: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let vn = chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7");
    let (today, due_day) = (now.with_timezone(&vn).date_naive(), due.with_timezone(&vn).date_naive());
    if due_day >= today {
        desk.handling.calendar.working_days_between(today, due_day)
    } else {
        -desk.handling.calendar.working_days_between(due_day, today)
    }
}

/// "Thành phố Hà Nội" -> "thành phố Hà Nội": the kind is a common noun inside a longer name.
fn lower_kind(name: &str) -> String {
    for kind in ["Thành phố", "Tỉnh"] {
        if let Some(rest) = name.strip_prefix(kind) {
            return format!("{}{rest}", kind.to_lowercase());
        }
    }
    name.to_owned()
}

/// The Vietnamese name of a unit's Front committee.
pub fn unit_name(units: &Units, unit: &str) -> String {
    if unit == workflow::CENTRAL {
        return "Ủy ban Trung ương MTTQ Việt Nam".to_owned();
    }
    if let Some((commune, village)) = unit.split_once('-') {
        let name = units.commune(commune).map(|c| c.name.clone()).unwrap_or_default();
        return format!("Ban công tác Mặt trận thôn/tổ dân phố {village}, {name}");
    }
    if let Some(province) = units.province(unit) {
        return format!("Ủy ban MTTQ Việt Nam {}", lower_kind(&province.name));
    }
    match units.commune(unit) {
        Some(commune) => crate::open311::front_committee(&commune.code),
        None => unit.to_owned(),
    }
}

/// `GET /api/v1/petitions/{id}/history`: the status and every event, for staff in scope.
pub async fn history(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(problem) => return problem.into_response(),
    };
    let petition = match petition_ref(&state, &id).await {
        Ok(Some(petition)) if visible(&caller, &petition, state.desk.status(&id).as_ref()) => petition,
        Ok(_) => return not_found(&id).into_response(),
        Err(problem) => return problem.into_response(),
    };
    let status = state.desk.status_or_initial(id, &petition);
    let (in_lake, events) = match state.handling_queries.history(&id).await {
        Ok(events) => (events.len(), state.desk.complete_history(&id, events)),
        Err(err) => return Problem::internal(&err).into_response(),
    };
    let events: Vec<Event> = events.into_iter().map(|event| masked_for(&caller, event)).collect();
    // Events the lake has not taken yet are in the book's status already; the timeline shows
    // what the lake holds and says so.
    Json(json!({
        "status": view(&caller, &status, &state.desk),
        "events": events,
        "events_in_lake": in_lake,
        "events_total": status.events,
    }))
    .into_response()
}

#[derive(Debug, Default)]
pub struct InboxParams {
    /// Defaults to the caller's unit.
    pub unit: Option<String>,
    pub state: Option<String>,
    pub overdue: Option<bool>,
    pub limit: Option<usize>,
}

/// Most petitions one inbox page lists.
pub const MAX_INBOX_LIMIT: usize = 1_000;

impl InboxParams {
    /// Reads `unit`, `state`, `overdue` (true/false, 1/0) and `limit` (1 to
    /// [`MAX_INBOX_LIMIT`]), naming every bad or unknown parameter.
    pub fn from_query(params: &HashMap<String, String>) -> Result<InboxParams, Problem> {
        let mut errors = unknown_parameters(params, &["unit", "state", "overdue", "limit"]);
        let overdue = match params.get("overdue").map(|_| flag(params, "overdue")) {
            None => None,
            Some(Ok(overdue)) => Some(overdue),
            Some(Err(problem)) => {
                errors.extend(problem_errors(&problem));
                None
            }
        };
        let limit = match params.get("limit") {
            None => None,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(limit) if (1..=MAX_INBOX_LIMIT).contains(&limit) => Some(limit),
                _ => {
                    errors.push(FieldError::new(
                        "limit",
                        "invalid",
                        format!("`limit` must be an integer from 1 to {MAX_INBOX_LIMIT}"),
                    ));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(Problem::invalid(&errors).with_status(StatusCode::BAD_REQUEST));
        }
        let text = |name: &str| params.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(InboxParams { unit: text("unit"), state: text("state"), overdue, limit })
    }
}

/// The unit a handling read asks about (the caller's own when none is given): 400 naming `unit`
/// unless it is `00`, a province, a 2025 commune or a village the register has held (a removed
/// village still has its petitions), checked before the 403 for a unit outside the caller's.
async fn read_unit(state: &AppState, caller: &Caller, asked: Option<&str>) -> Result<String, Problem> {
    let units = Units::embedded();
    let Some(code) = asked.map(str::trim).filter(|code| !code.is_empty()) else {
        return Ok(caller.unit.clone());
    };
    let unit = UnitRef::parse(code, units).map_err(|err| Problem::bad_parameter("unit", err.to_string()))?;
    if !workflow::covers(units, &caller.unit, code) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "out-of-scope",
            "Outside your unit",
            format!("unit {code} is outside unit {}", caller.unit),
        ));
    }
    if unit.level() == Level::Village {
        let taken = state.registers.village_codes_taken().await.map_err(|err| Problem::internal(&err))?;
        if !taken.contains(code) {
            return Err(Problem::bad_parameter(
                "unit",
                format!("unknown village `{code}`: not in the villages register of its commune"),
            ));
        }
    }
    Ok(unit.code())
}

/// The petitions a unit must act on, overdue first then by deadline, as `caller` may see them
/// (masked by [`masked_for`]).
pub async fn inbox_items(
    state: &AppState,
    caller: &Caller,
    params: &InboxParams,
) -> Result<(String, Vec<Status>), Problem> {
    let units = Units::embedded();
    let unit = read_unit(state, caller, params.unit.as_deref()).await?;
    let wanted = match params.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            Some(Stage::parse(raw).ok_or_else(|| Problem::bad_parameter("state", format!("unknown state `{raw}`")))?)
        }
    };
    let limit = params.limit.unwrap_or(100).clamp(1, MAX_INBOX_LIMIT);
    let now = Utc::now();
    let keep = |s: &Status| {
        workflow::covers(units, &unit, &s.unit)
            && wanted.is_none_or(|w| s.state == w)
            && (wanted.is_some() || s.state.is_open())
            && (!params.overdue.unwrap_or(false) || s.overdue(now))
    };
    let mut items = state.desk.statuses(keep);
    if wanted.is_none_or(|w| w == Stage::Received) {
        let (province, commune) = match unit.len() {
            2 if unit != workflow::CENTRAL => (Some(unit.clone()), None),
            5 => (None, Some(unit.clone())),
            _ => (None, None),
        };
        let unhandled = state
            .handling_queries
            .unhandled(&state.queries, province.as_deref(), commune.as_deref(), None, limit + 200)
            .await
            .map_err(|err| Problem::internal(&err))?;
        for found in unhandled {
            if state.desk.status(&found.id).is_some() {
                continue;
            }
            let status = Status::initial(found.id, &found.petition, &state.desk.handling.rules());
            if keep(&status) {
                items.push(status);
            }
        }
    }
    items.sort_by_key(|s| (!s.overdue(now), s.due_at.unwrap_or(DateTime::<Utc>::MAX_UTC), s.received_at));
    items.truncate(limit);
    Ok((unit, items.into_iter().map(|status| masked_for(caller, status)).collect()))
}

/// `GET /api/v1/inbox?unit=&state=&overdue=&limit=`.
pub async fn inbox(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Response {
    let params = match query_params(query.as_deref()).and_then(|params| InboxParams::from_query(&params)) {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    match inbox_items(&state, &caller, &params).await {
        Ok((unit, items)) => {
            let views: Vec<_> = items.iter().map(|s| view(&caller, s, &state.desk)).collect();
            Json(json!({ "unit": unit, "unit_name": unit_name(Units::embedded(), &unit), "items": views }))
                .into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

/// Counts of one unit (with everything under it).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Performance {
    pub unit: String,
    pub unit_name: String,
    /// Petitions this unit (or a unit under it) handles now or handled.
    pub petitions: u64,
    pub open: u64,
    pub overdue: u64,
    pub answered: u64,
    pub answered_on_time: u64,
    /// answered_on_time / answered.
    pub on_time_rate: Option<f64>,
    pub rated: u64,
    pub rating_sum: u64,
    pub mean_rating: Option<f64>,
    /// Ratings of 4 or 5 over ratings.
    pub satisfied_rate: Option<f64>,
    pub reopened: u64,
    /// Petitions reopened at least once over petitions answered.
    pub reopen_rate: Option<f64>,
}

impl Performance {
    fn finish(&mut self, satisfied: u64) {
        let rate = |num: u64, den: u64| (den > 0).then(|| (num as f64 / den as f64 * 10_000.0).round() / 10_000.0);
        self.on_time_rate = rate(self.answered_on_time, self.answered);
        self.mean_rating =
            (self.rated > 0).then(|| (self.rating_sum as f64 / self.rated as f64 * 100.0).round() / 100.0);
        self.satisfied_rate = rate(satisfied, self.rated);
        self.reopen_rate = rate(self.reopened, self.answered);
    }
}

/// The date before which a petition received and never acted on is past its acceptance limit.
fn acceptance_cutoff(handling: &Handling, now: DateTime<Utc>) -> DateTime<Utc> {
    // The latest receipt time whose deadline has passed: step back a day at a time (the limit
    // is a few weeks at most).
    let mut at = now;
    for _ in 0..120 {
        match handling.deadlines.due(&handling.calendar, "acceptance", at, 0) {
            Some(due) if due < now => return at,
            _ => at -= chrono::Duration::days(1),
        }
    }
    at
}

/// `GET /api/v1/handling/performance?unit=`: the unit and each unit one level below it:
/// on-time rate, overdue, satisfaction and reopen rates, rolled up the hierarchy.
pub async fn performance(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Response {
    let params = match known_params(query.as_deref(), &["unit"]) {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    match performance_rows(&state, &caller, params.get("unit").map(String::as_str)).await {
        Ok((total, children)) => Json(json!({ "unit": total, "children": children })).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// The roll-up behind [`performance`] and the inbox page.
pub async fn performance_rows(
    state: &AppState,
    caller: &Caller,
    unit: Option<&str>,
) -> Result<(Performance, Vec<Performance>), Problem> {
    let units = Units::embedded();
    let unit = read_unit(state, caller, unit).await?;
    let now = Utc::now();
    // The unit directly under `unit` that `of` lies in (or `unit` itself).
    let child_of = |of: &str| -> Option<String> {
        let mut current = of.to_owned();
        loop {
            let parent = workflow::parent_unit(units, &current)?;
            if parent == unit {
                return Some(current);
            }
            current = parent;
        }
    };
    let mut rows: BTreeMap<String, (Performance, u64)> = BTreeMap::new();
    let mut total = (Performance::default(), 0u64);
    let mut add = |key: Option<String>, f: &dyn Fn(&mut Performance, &mut u64)| {
        f(&mut total.0, &mut total.1);
        if let Some(key) = key {
            let entry = rows.entry(key).or_default();
            f(&mut entry.0, &mut entry.1);
        }
    };
    for status in state.desk.statuses(|s| workflow::covers(units, &unit, &s.unit)) {
        let key = if status.unit == unit { None } else { child_of(&status.unit) };
        add(key, &|p, satisfied| {
            p.petitions += 1;
            p.open += u64::from(status.state.is_open());
            p.overdue += u64::from(status.overdue(now));
            if status.answered_at.is_some() {
                p.answered += 1;
                p.answered_on_time += u64::from(status.answered_on_time == Some(true));
            }
            if let Some(rating) = status.rating {
                p.rated += 1;
                p.rating_sum += u64::from(rating);
                *satisfied += u64::from(rating >= 4);
            }
            p.reopened += u64::from(status.reopen_count > 0);
        });
    }
    let cutoff = acceptance_cutoff(&state.desk.handling, now);
    // Petitions nobody acted on are still in the commune they name (or its province, by routing).
    let (province, commune) = match unit.len() {
        2 if unit != workflow::CENTRAL => (Some(unit.clone()), None),
        _ if unit == workflow::CENTRAL => (None, None),
        _ => (None, Some(unit.split('-').next().unwrap_or_default().to_owned())),
    };
    let counts = state
        .handling_queries
        .unhandled_counts(&state.queries, cutoff, province.as_deref(), commune.as_deref())
        .await
        .map_err(|err| Problem::internal(&err))?;
    let rules = state.desk.handling.rules();
    for count in counts {
        let reference = PetitionRef {
            tracking_code: String::new(),
            received_at: now,
            province_code: count.province_code.clone(),
            commune_code: count.commune_code.clone(),
            topic: count.topic.clone(),
            title: String::new(),
        };
        let handler = rules.routing.route(&reference);
        if !workflow::covers(units, &unit, &handler) {
            continue;
        }
        let key = if handler == unit { None } else { child_of(&handler) };
        add(key, &|p, _| {
            p.petitions += count.open;
            p.open += count.open;
            p.overdue += count.overdue;
        });
    }
    let finish = |(mut p, satisfied): (Performance, u64), code: &str| {
        p.unit = code.to_owned();
        p.unit_name = unit_name(units, code);
        p.finish(satisfied);
        p
    };
    let total = finish(total, &unit);
    let children = rows.into_iter().map(|(code, row)| finish(row, &code)).collect();
    Ok((total, children))
}

/// The secret a citizen proves a tracking code with: sent as `X-Tracking-Secret`, as the query's
/// `secret` or as the body's `secret`. Sent in several places, they must be one secret (as it is
/// typed: case, dashes and spaces do not count); two different ones (a header and a query that
/// disagree, the header given twice) are a 400 naming `secret` rather than one of them picked
/// silently, which would hide the client's mistake and let it try two secrets in one request.
/// A repeated `?secret=` is refused before, as every repeated parameter is.
fn citizen_secret(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Option<&str>,
) -> Result<Option<String>, Problem> {
    // A header that is not visible ASCII cannot hold a secret; it still counts as one given.
    let from_headers =
        headers.get_all("x-tracking-secret").iter().map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let given: Vec<String> = from_headers
        .chain(query.get("secret").cloned())
        .chain(body.map(str::to_owned))
        .map(|secret| secret.trim().to_uppercase())
        .collect();
    let typed_alike = |secret: &str| -> String { secret.chars().filter(|ch| !matches!(ch, '-' | ' ')).collect() };
    if let Some(first) = given.first()
        && given.iter().any(|other| typed_alike(other) != typed_alike(first))
    {
        let message = "different secrets are given (in `X-Tracking-Secret`, `?secret=` or the body's `secret`): \
                       send the petition's secret once";
        let error = FieldError::new("secret", "conflicting_values", message);
        return Err(Problem::invalid(&[error]).with_status(StatusCode::BAD_REQUEST));
    }
    Ok(given.into_iter().next())
}

/// The petition behind a tracking code when the secret matches; the same 404 otherwise, so
/// codes cannot be probed.
async fn tracked(state: &AppState, code: &str, secret: Option<&str>) -> Result<(Uuid, PetitionRef), Problem> {
    let unknown = || Problem::not_found("no petition with this tracking code and secret");
    let code = voxpop_schema::petition::normalise_tracking_code(code).ok_or_else(unknown)?;
    let found = state.index.get_by_tracking_code(&code).map_err(|err| Problem::internal(&err))?.ok_or_else(unknown)?;
    let expected = state.intake.citizen_secret(&found.id);
    match (secret, expected) {
        (Some(given), Some(expected)) if voxpop_connectors::intake::secrets_match(given, &expected) => {}
        _ => return Err(unknown()),
    }
    let petition = petition_ref(state, &found.id).await?.ok_or_else(unknown)?;
    Ok((found.id, petition))
}

/// What a citizen sees of their petition: its state, the answer, the public timeline. Never
/// other people's data, never the officers' identities. The title and the answer are shown in
/// clear: the secret proves the caller is the citizen who wrote the petition, the numbers in
/// the title are their own, and the answer is written for the citizen, often only useful with
/// the number it gives to call. The reasons staff write on the timeline (decline, transfer,
/// escalation, extension) are staff notes that may name third parties (a neighbour's phone, an
/// officer's email, an ID number): they are masked as for any reader without personal data.
fn citizen_view(status: &Status, events: &[Event]) -> serde_json::Value {
    let timeline: Vec<_> = events
        .iter()
        .map(|e| {
            let public_reason = matches!(
                e.action,
                workflow::Action::Decline
                    | workflow::Action::Transfer
                    | workflow::Action::Escalate
                    | workflow::Action::Extend
            );
            let note = e.note.as_deref().filter(|_| public_reason).map(voxpop_schema::privacy::mask_text);
            json!({
                "at": e.at,
                "action": e.action.as_str(),
                "action_label": e.action.label_vi(),
                "state": e.to_state.as_str(),
                "state_label": e.to_state.label_vi(),
                "unit_name": unit_name(Units::embedded(), &e.unit),
                "note": note,
            })
        })
        .collect();
    json!({
        "tracking_code": status.tracking_code,
        "title": status.title,
        "received_at": status.received_at,
        "state": status.state.as_str(),
        "state_label": status.state.label_vi(),
        "unit_name": unit_name(Units::embedded(), &status.unit),
        "due_at": status.due_at,
        "answer": status.answer,
        "answered_at": status.answered_at,
        "rating": status.rating,
        "can_rate": workflow::Action::Rate.from_states().contains(&status.state),
        "can_reopen": workflow::Action::Reopen.from_states().contains(&status.state),
        "timeline": timeline,
        "allowed": status.state.allowed().iter().filter(|a| a.taker() == workflow::Taker::Citizen).map(|a| a.as_str()).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/track/{code}` with `X-Tracking-Secret`.
pub async fn track(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // A repeated or unknown parameter is named rather than one of the values guessed at.
    let query = match known_params(query.as_deref(), &["secret"]) {
        Ok(query) => query,
        Err(problem) => return problem.into_response(),
    };
    // Percent-decoding turns bytes that are not UTF-8 into U+FFFD; a secret is plain text, so
    // such a value was not sent as one and no petition could match it.
    if query.get("secret").is_some_and(|secret| secret.contains(char::REPLACEMENT_CHARACTER)) {
        return Problem::bad_parameter("secret", "`secret` is not UTF-8 text once percent-decoded").into_response();
    }
    let secret = match citizen_secret(&headers, &query, None) {
        Ok(secret) => secret,
        Err(problem) => return problem.into_response(),
    };
    let (id, petition) = match tracked(&state, &code, secret.as_deref()).await {
        Ok(found) => found,
        Err(problem) => return problem.into_response(),
    };
    let status = state.desk.status_or_initial(id, &petition);
    let events = state.desk.complete_history(&id, state.handling_queries.history(&id).await.unwrap_or_default());
    Json(citizen_view(&status, &events)).into_response()
}

#[derive(Debug)]
pub struct CitizenAction {
    pub secret: Option<String>,
    pub action: String,
    pub rating: Option<u8>,
    pub note: Option<String>,
    /// The action's members given as `null` (see [`ActionRequest::null_members`]).
    pub null_members: Vec<String>,
}

/// A citizen's action's body as a [`CitizenAction`].
fn citizen_request(body: Result<Bytes, BytesRejection>, deadlines: &Deadlines) -> Result<CitizenAction, Problem> {
    let object = action_body(body, &CITIZEN_ACTION_FIELDS)?;
    let mut fields = BodyFields { object: &object, deadlines, errors: Vec::new() };
    let action = CitizenAction {
        secret: fields.text("secret"),
        action: fields.action(),
        rating: fields.whole("rating"),
        note: fields.text("note"),
        null_members: fields.nulls(),
    };
    fields.finish(action)
}

/// `POST /api/v1/track/{code}/actions`: the citizen rates the answer (1-5) or reopens.
pub async fn track_act(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match citizen_request(body, &state.desk.handling.deadlines) {
        Ok(body) => body,
        Err(problem) => return problem.into_response(),
    };
    let secret = match citizen_secret(&headers, &HashMap::new(), body.secret.as_deref()) {
        Ok(secret) => secret,
        Err(problem) => return problem.into_response(),
    };
    let (id, petition) = match tracked(&state, &code, secret.as_deref()).await {
        Ok(found) => found,
        Err(mut problem) => {
            problem.errors = vec![ProblemField::from(&FieldError::new("secret", "not_found", problem.detail.clone()))];
            return problem.into_response();
        }
    };
    if !matches!(body.action.as_str(), "rate" | "reopen") {
        return Problem::invalid(&[voxpop_schema::FieldError::new(
            "action",
            "invalid",
            "a citizen may `rate` or `reopen`",
        )])
        .into_response();
    }
    let request = ActionRequest {
        action: body.action,
        note: body.note,
        rating: body.rating,
        null_members: body.null_members,
        ..Default::default()
    };
    let actor = Actor { id: "citizen".to_owned(), role: "citizen".to_owned(), unit: String::new() };
    match state.desk.act(id, &petition, &request, &actor).await {
        Ok((_, status)) => Json(citizen_view(&status, &[])).into_response(),
        Err(err) => naming_field(err.into_problem()).into_response(),
    }
}

/// The current status of many petitions (for search results and Open311).
pub fn status_of(state: &AppState, id: &Uuid, petition: &PetitionRef) -> Status {
    state.desk.status_or_initial(*id, petition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxpop_pipeline::embedded::EmbeddedLog;

    fn fields(problem: &Problem) -> Vec<(&str, &str)> {
        problem.errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn handling_query_parameters_are_named_when_wrong() {
        let inbox = |raw: &str| query_params(Some(raw)).and_then(|params| InboxParams::from_query(&params));
        for (raw, field) in [
            ("limit=-1", "limit"),
            ("limit=abc", "limit"),
            ("limit=", "limit"),
            ("limit=1001", "limit"),
            ("overdue=maybe", "overdue"),
            ("unit=00&unit=01", "unit"),
            ("colour=red", "colour"),
        ] {
            let problem = inbox(raw).unwrap_err();
            assert_eq!((problem.status, fields(&problem)[0].0), (400, field), "{raw}: {problem:?}");
        }
        let params = inbox("unit=00004&overdue=1&limit=5&state=").unwrap();
        assert_eq!(
            (params.unit.as_deref(), params.overdue, params.limit, params.state),
            (Some("00004"), Some(true), Some(5), None)
        );
    }

    #[test]
    fn handling_action_bodies_name_the_field_at_fault() {
        let deadlines = voxpop_schema::calendar::Deadlines::default_embedded().clone();
        let read = |body: &str| staff_request(Ok(Bytes::from(body.to_owned())), &deadlines);
        let request = read(r#"{"action": "transfer", "unit": "00097", "note": "x", "days": null}"#).unwrap();
        assert_eq!((request.action.as_str(), request.unit.as_deref()), ("transfer", Some("00097")));
        // The `null` is passed on, for the state machine to refuse: `transfer` takes no `days`.
        assert_eq!(request.null_members, ["days"]);
        let problem = read(r#"{"action": 5, "unit": 4, "days": -1, "rating": 300, "colour": "red"}"#).unwrap_err();
        assert_eq!((problem.status, fields(&problem)), (422, vec![("colour", "unknown_field")]));
        let problem = read(r#"{"action": 5, "unit": 4, "days": 1.5, "rating": 300}"#).unwrap_err();
        let mut found = fields(&problem);
        found.sort();
        assert_eq!(found, [("action", "type"), ("days", "type"), ("rating", "out_of_range"), ("unit", "type")]);
        // Numbers beyond what the member takes name its range, not the range of its type.
        let max = deadlines.max_extension();
        for (body, field, message) in [
            (
                r#"{"action": "extend", "note": "x", "days": 4294967296}"#,
                "days",
                format!("`days` must be from 1 to {max} working days, not 4294967296"),
            ),
            (
                r#"{"action": "extend", "note": "x", "days": -1}"#,
                "days",
                format!("`days` must be from 1 to {max} working days, not -1"),
            ),
            (
                r#"{"action": "extend", "note": "x", "days": "3"}"#,
                "days",
                format!("`days` must be a whole number from 1 to {max}"),
            ),
            (
                r#"{"action": "rate", "rating": 256}"#,
                "rating",
                "`rating` must be a whole number from 1 to 5, not 256".to_owned(),
            ),
            (
                r#"{"action": "rate", "rating": 4.5}"#,
                "rating",
                "`rating` must be a whole number from 1 to 5".to_owned(),
            ),
        ] {
            let problem = read(body).unwrap_err();
            assert_eq!(
                (problem.errors[0].field.as_str(), problem.errors[0].message.as_str()),
                (field, message.as_str()),
                "{body}"
            );
            assert!(
                !problem.detail.contains("4294967295") && !problem.detail.contains("255"),
                "{body}: {}",
                problem.detail
            );
        }
        // Within its type, the number goes to the state machine, which checks the range.
        assert_eq!(read(r#"{"action": "extend", "note": "x", "days": 400}"#).unwrap().days, Some(400));
        assert_eq!(fields(&read("{}").unwrap_err()), [("action", "required")]);
        assert_eq!(read("[1]").unwrap_err().status, 400);
        assert_eq!(read("{").unwrap_err().status, 400);
        // Problems of the state machine name the action; a petition not found, its id.
        let conflict = naming_field(Problem::new(StatusCode::CONFLICT, "invalid-transition", "t", "not now"));
        assert_eq!(fields(&conflict), [("action", "invalid_transition")]);
        assert_eq!(fields(&naming_field(not_found(&Uuid::nil()))), [("id", "not_found")]);
    }

    #[test]
    fn handling_records_are_masked_for_callers_without_personal_data() {
        let caller = |role: Role, authenticated: bool| Caller {
            unit: "01".to_owned(),
            role,
            authenticated,
            token_id: authenticated.then(|| "t1".to_owned()),
        };
        let reference = PetitionRef {
            tracking_code: "K7M2-9QXD-4HTR".to_owned(),
            received_at: Utc::now(),
            province_code: "01".to_owned(),
            commune_code: "00004".to_owned(),
            topic: None,
            title: "Khiếu nại gọi 0912345678 CCCD 001203004567".to_owned(),
        };
        let masked = "Khiếu nại gọi *******678 CCCD *********567";
        for (who, expected) in [
            (caller(Role::DataEngineer, true), masked),
            (caller(Role::DataEngineer, false), masked),
            // Open mode: no token, whatever the role would be.
            (caller(Role::Leader, false), masked),
            (caller(Role::Leader, true), reference.title.as_str()),
            (caller(Role::Officer, true), reference.title.as_str()),
            (caller(Role::Admin, true), reference.title.as_str()),
        ] {
            assert_eq!(masked_for(&who, reference.clone()).title, expected, "{who:?}");
        }
    }

    #[test]
    fn handling_tracking_takes_one_secret() {
        let headers = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("x-tracking-secret", value.parse().unwrap());
            }
            headers
        };
        let query = |secret: Option<&str>| -> HashMap<String, String> {
            secret.map(|secret| ("secret".to_owned(), secret.to_owned())).into_iter().collect()
        };
        // One secret, in any one place or the same in several (as typed: case, dashes, spaces).
        for (header, asked, body) in [
            (&["abcde23456"][..], None, None),
            (&[], Some("abcde23456"), None),
            (&[], None, Some("abcde23456")),
            (&["ABCDE23456"], Some("abcde-23456"), None),
            (&["abcde 23456", "ABCDE23456"], None, Some(" abcde23456 ")),
        ] {
            let secret = citizen_secret(&headers(header), &query(asked), body).unwrap();
            assert_eq!(secret.as_deref().map(|s| s.replace(['-', ' '], "")), Some("ABCDE23456".to_owned()));
        }
        assert_eq!(citizen_secret(&headers(&[]), &query(None), None).unwrap(), None);
        // Two different secrets: a 400 naming `secret`, whichever places they come from.
        for (header, asked, body) in [
            (&["ABCDE23456"][..], Some("ZZZZZ99999"), None),
            (&["ABCDE23456", "ZZZZZ99999"], None, None),
            (&["ABCDE23456"], None, Some("ZZZZZ99999")),
            (&[], Some("ABCDE23456"), Some("ZZZZZ99999")),
        ] {
            let problem = citizen_secret(&headers(header), &query(asked), body).unwrap_err();
            assert_eq!((problem.status, fields(&problem)), (400, vec![("secret", "conflicting_values")]));
        }
    }

    #[test]
    fn handling_tracking_timeline_masks_staff_notes_and_keeps_the_answer() {
        let handling = Handling::default_embedded();
        let rules = handling.rules();
        let petition = PetitionRef {
            tracking_code: "K7M2-9QXD-4HTR".to_owned(),
            received_at: "2026-02-09T03:00:00Z".parse().unwrap(),
            province_code: "01".to_owned(),
            commune_code: "00004".to_owned(),
            topic: None,
            title: "Bãi rác, gọi tôi 0912345678".to_owned(),
        };
        let officer = Actor { id: "t1".to_owned(), role: "officer".to_owned(), unit: "00004".to_owned() };
        let mut status = Status::initial(Uuid::now_v7(), &petition, &rules);
        let mut events = Vec::new();
        for request in [
            ActionRequest {
                action: "accept".to_owned(),
                note: Some("Đã gọi 0901112223".to_owned()),
                ..Default::default()
            },
            ActionRequest {
                action: "extend".to_owned(),
                days: Some(2),
                note: Some("Chờ ý kiến ông B (0901112223, CCCD 079123456789), email cb.xa@gmail.com".to_owned()),
                ..Default::default()
            },
            ActionRequest { action: "start".to_owned(), ..Default::default() },
            ActionRequest {
                action: "answer".to_owned(),
                answer: Some("Đã thu gom; xin gọi phòng TN-MT 02438123456".to_owned()),
                ..Default::default()
            },
        ] {
            let now = status.received_at + chrono::Duration::hours(1 + events.len() as i64);
            let event = status.decide(&request, &officer, now, &rules).unwrap();
            status = status.apply(&event, &rules).unwrap();
            events.push(event);
        }
        let view = citizen_view(&status, &events);
        let shown = view.to_string();
        for third_party in ["0901112223", "079123456789", "cb.xa@gmail.com"] {
            assert!(!shown.contains(third_party), "{third_party} in {shown}");
        }
        let extension = view["timeline"].as_array().unwrap().iter().find(|e| e["action"] == "extend").unwrap();
        assert_eq!(
            extension["note"],
            voxpop_schema::privacy::mask_text(
                "Chờ ý kiến ông B (0901112223, CCCD 079123456789), email cb.xa@gmail.com"
            )
        );
        assert!(extension["note"].as_str().unwrap().starts_with("Chờ ý kiến ông B ("), "{extension}");
        // A remark on `accept` is not a public reason: not shown at all.
        assert_eq!(view["timeline"][0]["note"], serde_json::Value::Null);
        // The citizen's own title and the answer written for them stay in clear.
        assert_eq!(view["title"], "Bãi rác, gọi tôi 0912345678");
        assert_eq!(view["answer"], "Đã thu gom; xin gọi phòng TN-MT 02438123456");
    }

    #[test]
    fn handling_refusals_name_every_member_at_fault() {
        let errors = vec![
            FieldError::new("rating", "not_taken", "`accept` takes no `rating`"),
            FieldError::new("rating", "out_of_range", "`rating` must be a whole number from 1 to 5, not 7"),
            FieldError::new("days", "not_taken", "`accept` takes no `days`"),
        ];
        let problem = naming_field(ActError::Rejected(Rejected::Fields(errors)).into_problem());
        assert_eq!(problem.status, 422);
        assert_eq!(fields(&problem), [("rating", "not_taken"), ("rating", "out_of_range"), ("days", "not_taken")]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn handling_desks_of_two_nodes_follow_each_others_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).await.unwrap());
        let handling = Arc::new(Handling::default_embedded());
        let lake = dir.path().join("lake");
        let first = Arc::new(Desk::load(log.clone(), &lake, handling.clone()).await.unwrap());
        let second = Arc::new(Desk::load(log.clone(), &lake, handling.clone()).await.unwrap());
        let (_stop, stop) = tokio::sync::watch::channel(false);
        first.spawn_follower(stop.clone());
        second.spawn_follower(stop);
        let petition = PetitionRef {
            tracking_code: "K7M2-9QXD-4HTR".to_owned(),
            received_at: Utc::now() - chrono::Duration::hours(1),
            province_code: "01".to_owned(),
            commune_code: "00004".to_owned(),
            topic: None,
            title: "Bãi rác".to_owned(),
        };
        let id = Uuid::now_v7();
        let officer = Actor { id: "t".to_owned(), role: "officer".to_owned(), unit: "00004".to_owned() };
        let accept = ActionRequest { action: "accept".to_owned(), ..Default::default() };
        first.act(id, &petition, &accept, &officer).await.unwrap();
        // The other node learns it from the log, and then refuses to accept twice.
        let started = std::time::Instant::now();
        while second.status(&id).map(|s| s.state) != Some(Stage::Accepted) {
            assert!(started.elapsed() < Duration::from_secs(10), "the second desk never saw the event");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(matches!(
            second.act(id, &petition, &accept, &officer).await,
            Err(ActError::Rejected(Rejected::Transition { .. }))
        ));
        let start = ActionRequest { action: "start".to_owned(), ..Default::default() };
        second.act(id, &petition, &start, &officer).await.unwrap();
        let started = std::time::Instant::now();
        while first.status(&id).map(|s| s.state) != Some(Stage::InProgress) {
            assert!(started.elapsed() < Duration::from_secs(10), "the first desk never saw the event");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(first.complete_history(&id, Vec::new()).len(), 2, "both events on both nodes' timelines");
    }
}
