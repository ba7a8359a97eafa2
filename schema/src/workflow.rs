//! Handling a petition: its states, the actions that move it, the events they leave on the log,
//! and the current status the pipeline derives from them.
//!
//! ```text
//! received ──accept──► accepted ──assign──► assigned ──start──► in_progress ──answer──► answered ──close──► closed
//!    │                    │                                                                │ ▲              │
//!    └─decline─► declined  └──────────────── start ──────────────────────►                 │ └─── rate ─────┤
//!                                                                       reopened ◄─reopen──┴────────────────┘
//! transfer / escalate (from any open state): received at the new unit, with a new acceptance deadline
//! extend (accepted, assigned, in_progress, reopened): more working days for the answer, with a reason
//! ```
//!
//! In: an [`ActionRequest`] from a caller, the petition's current [`Status`].
//! Out: an [`Event`] (what the log carries) and the next [`Status`], or a [`Rejected`] that says
//! which actions the current state allows (the API answers 409 with them).
//! Guarantees: [`Status::apply`] is the only place a status changes; the API validates with it
//! before appending an event, and the pipeline applies the same function when it folds the log
//! into the `petition_status` table, so both agree on every transition.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::FieldError;
use crate::calendar::{Calendar, Deadlines};
use crate::units::Units;

/// Name of the Delta table of handling events (append-only).
pub const EVENTS_TABLE: &str = "petition_events";
/// Name of the Delta table of current statuses (one row per petition that has events).
pub const STATUS_TABLE: &str = "petition_status";
/// The central level's unit code.
pub const CENTRAL: &str = "00";

/// Where a petition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    Accepted,
    Declined,
    Assigned,
    InProgress,
    Answered,
    Closed,
    Reopened,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Received,
        State::Accepted,
        State::Declined,
        State::Assigned,
        State::InProgress,
        State::Answered,
        State::Closed,
        State::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Accepted => "accepted",
            State::Declined => "declined",
            State::Assigned => "assigned",
            State::InProgress => "in_progress",
            State::Answered => "answered",
            State::Closed => "closed",
            State::Reopened => "reopened",
        }
    }

    pub fn parse(value: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == value)
    }

    /// Vietnamese label for pages and notifications.
    pub fn label_vi(self) -> &'static str {
        match self {
            State::Received => "Mới tiếp nhận",
            State::Accepted => "Đã thụ lý",
            State::Declined => "Không thụ lý",
            State::Assigned => "Đã giao xử lý",
            State::InProgress => "Đang xử lý",
            State::Answered => "Đã trả lời",
            State::Closed => "Đã kết thúc",
            State::Reopened => "Mở lại",
        }
    }

    /// Whether the unit still owes the citizen something (Open311 `open`).
    pub fn is_open(self) -> bool {
        !matches!(self, State::Declined | State::Answered | State::Closed)
    }

    /// The deadline stage that runs in this state, if any (see [`Deadlines`]).
    pub fn stage(self) -> Option<&'static str> {
        match self {
            State::Received => Some("acceptance"),
            State::Accepted | State::Assigned | State::InProgress | State::Reopened => Some("answer"),
            State::Declined | State::Answered | State::Closed => None,
        }
    }

    /// The actions this state allows.
    pub fn allowed(self) -> Vec<Action> {
        Action::ALL.into_iter().filter(|action| action.from_states().contains(&self)).collect()
    }
}

/// Who may take an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taker {
    /// An officer, leader or administrator whose unit covers the handling unit.
    Staff,
    /// The citizen who sent the petition (tracking code and secret).
    Citizen,
}

/// What a caller does to a petition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Accept,
    Decline,
    Assign,
    Start,
    Answer,
    Close,
    Reopen,
    Transfer,
    Escalate,
    Extend,
    Rate,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Accept,
        Action::Decline,
        Action::Assign,
        Action::Start,
        Action::Answer,
        Action::Close,
        Action::Reopen,
        Action::Transfer,
        Action::Escalate,
        Action::Extend,
        Action::Rate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Decline => "decline",
            Action::Assign => "assign",
            Action::Start => "start",
            Action::Answer => "answer",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Transfer => "transfer",
            Action::Escalate => "escalate",
            Action::Extend => "extend",
            Action::Rate => "rate",
        }
    }

    pub fn parse(value: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.as_str() == value)
    }

    /// Vietnamese label for pages.
    pub fn label_vi(self) -> &'static str {
        match self {
            Action::Accept => "Thụ lý",
            Action::Decline => "Không thụ lý",
            Action::Assign => "Giao xử lý",
            Action::Start => "Bắt đầu xử lý",
            Action::Answer => "Trả lời",
            Action::Close => "Kết thúc",
            Action::Reopen => "Mở lại",
            Action::Transfer => "Chuyển đơn vị khác",
            Action::Escalate => "Chuyển lên cấp trên",
            Action::Extend => "Gia hạn",
            Action::Rate => "Đánh giá",
        }
    }

    /// The states this action may be taken from.
    pub fn from_states(self) -> &'static [State] {
        use State::*;
        match self {
            Action::Accept | Action::Decline => &[Received],
            Action::Assign => &[Accepted, Reopened],
            Action::Start => &[Accepted, Assigned, Reopened],
            Action::Answer => &[InProgress],
            Action::Close => &[Answered],
            Action::Reopen | Action::Rate => &[Answered, Closed],
            Action::Transfer | Action::Escalate => &[Received, Accepted, Assigned, InProgress, Reopened],
            Action::Extend => &[Accepted, Assigned, InProgress, Reopened],
        }
    }

    /// The members of the action's body besides `action`, each with whether it is required.
    /// `note` is taken by every action: a reason where one is required, a remark otherwise.
    /// Anything else is refused by [`Status::decide`], a `null` as much as a value (see
    /// [`ActionRequest::null_members`]), so a client that sends `rating` with `accept` learns that
    /// it was not recorded rather than believing it was.
    pub fn members(self) -> &'static [(&'static str, bool)] {
        match self {
            Action::Accept | Action::Start | Action::Close => &[("note", false)],
            Action::Decline | Action::Reopen | Action::Escalate => &[("note", true)],
            Action::Assign => &[("unit", true), ("note", false)],
            Action::Answer => &[("answer", true), ("note", false)],
            Action::Transfer => &[("unit", true), ("note", true)],
            Action::Extend => &[("days", true), ("note", true)],
            Action::Rate => &[("rating", true), ("note", false)],
        }
    }

    /// What a required member is, for the message that says it is missing.
    fn required_what(self, member: &str) -> &'static str {
        match (self, member) {
            (Action::Decline, _) => "the reason for declining",
            (Action::Reopen, _) => "why the answer does not satisfy",
            (Action::Escalate, _) => "the reason for escalating",
            (Action::Transfer, "note") => "the reason for the transfer",
            (Action::Extend, "note") => "the reason for the extension",
            (_, "answer") => "the answer's text",
            (_, "unit") => "the unit",
            (_, "days") => "the working days added",
            (_, "rating") => "the rating",
            _ => "it",
        }
    }

    /// Who takes it.
    pub fn taker(self) -> Taker {
        match self {
            Action::Reopen | Action::Rate => Taker::Citizen,
            _ => Taker::Staff,
        }
    }
}

/// A caller's request to act on a petition (the body of `POST /api/v1/petitions/{id}/actions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    pub action: String,
    /// The reason (decline, transfer, escalate, extend, reopen) or a note.
    #[serde(default)]
    pub note: Option<String>,
    /// The answer's text (answer).
    #[serde(default)]
    pub answer: Option<String>,
    /// The unit to assign or transfer to: a province, a 2025 commune, or a village
    /// (`ccccc-nnn`) of the handling commune.
    #[serde(default)]
    pub unit: Option<String>,
    /// Working days added (extend).
    #[serde(default)]
    pub days: Option<u32>,
    /// 1..=5 (rate).
    #[serde(default)]
    pub rating: Option<u8>,
    /// The members the body gave as `null`. For a member the action takes, `null` is its
    /// absence; a member the action does not take is refused whatever it holds, `null` included
    /// (`not_taken`): a client that sends `"rating": null` with `extend` believes the action has
    /// a rating, and learns otherwise rather than having the member silently dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub null_members: Vec<String>,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Token id, `citizen` or `system`.
    pub id: String,
    /// `officer`, `leader`, `admin`, `citizen`, `system`.
    pub role: String,
    /// The actor's unit (`00`, a province, a commune); empty for a citizen.
    pub unit: String,
}

/// One handling event, as carried on `voxpop.events` and kept in `petition_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUID v7 of the event (notifications and webhooks deduplicate on it).
    pub event_id: Uuid,
    pub petition_id: Uuid,
    pub at: DateTime<Utc>,
    pub action: Action,
    pub actor: Actor,
    pub from_state: State,
    pub to_state: State,
    /// The unit handling the petition after the event.
    pub unit: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default)]
    pub rating: Option<u8>,
    /// The petition the event is about, so that the first event of a petition can start its
    /// status without reading the petitions table.
    pub petition: PetitionRef,
}

/// What the handling needs to know of a petition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionRef {
    pub tracking_code: String,
    pub received_at: DateTime<Utc>,
    pub province_code: String,
    pub commune_code: String,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub title: String,
}

/// The current status of a petition (a row of `petition_status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub petition_id: Uuid,
    pub tracking_code: String,
    pub title: String,
    pub received_at: DateTime<Utc>,
    pub province_code: String,
    pub commune_code: String,
    #[serde(default)]
    pub topic: Option<String>,
    pub state: State,
    /// The unit that must act now.
    pub unit: String,
    /// When the current stage began.
    pub stage_started_at: DateTime<Utc>,
    /// End of the current stage's time limit; `None` when no stage runs.
    pub due_at: Option<DateTime<Utc>>,
    /// Working days added to the answer stage.
    pub extension_days: u32,
    pub answer: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    /// Whether the (last) answer came within its time limit.
    pub answered_on_time: Option<bool>,
    pub closed_at: Option<DateTime<Utc>>,
    pub rating: Option<u8>,
    pub reopen_count: u32,
    pub updated_at: DateTime<Utc>,
    pub events: u32,
}

/// Handling records whose free text may hold personal data: citizens write phone and ID numbers
/// into their titles, and staff quote them in notes and answers. No record carries contact
/// fields (those stay with the petition).
pub trait PersonalText {
    /// The record as a reader without access to personal data sees it: every free-text field
    /// masked as the petitions' text is, and as SQL masks `petition_events` and
    /// `petition_status`, so every path shows the same thing.
    fn masked(self) -> Self;
}

/// The one masking of free text in handling records, so that all of them follow
/// [`crate::privacy`] as it learns more kinds of personal data.
fn mask_text(text: &str) -> String {
    crate::privacy::mask_numbers(text)
}

impl PersonalText for PetitionRef {
    fn masked(mut self) -> PetitionRef {
        self.title = mask_text(&self.title);
        self
    }
}

impl PersonalText for Event {
    fn masked(mut self) -> Event {
        self.note = self.note.as_deref().map(mask_text);
        self.answer = self.answer.as_deref().map(mask_text);
        self.petition = self.petition.masked();
        self
    }
}

impl PersonalText for Status {
    fn masked(mut self) -> Status {
        self.title = mask_text(&self.title);
        self.answer = self.answer.as_deref().map(mask_text);
        self
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not allowed in this state: 409 with the allowed actions.
    #[error("`{action}` is not allowed when the petition is {}", state.as_str())]
    Transition { action: String, state: State, allowed: Vec<Action> },
    /// The request itself is wrong: 422 naming the field.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// Several members of the request are wrong: 422 naming each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldError>),
    /// The caller may not act on this petition: 403.
    #[error("{0}")]
    Forbidden(String),
}

/// Routing rules: which level first handles a new petition, by topic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Routing {
    /// Topic code → level (`province` or `central`); other topics go to the commune named.
    #[serde(default)]
    pub topic_level: HashMap<String, String>,
}

impl Routing {
    /// The default: petitions about corruption and misconduct (`corruption`) go to the province's
    /// Front, not to
    /// the commune whose officials they may concern.
    pub fn default_rules() -> Routing {
        Routing { topic_level: HashMap::from([("corruption".to_owned(), "province".to_owned())]) }
    }

    /// Parses `[topic_level]` tables: `corruption = "province"`.
    pub fn from_toml(text: &str) -> Result<Routing, String> {
        let routing: Routing = toml::from_str(text).map_err(|err| err.to_string())?;
        for (topic, level) in &routing.topic_level {
            if !matches!(level.as_str(), "commune" | "province" | "central") {
                return Err(format!("topic `{topic}`: level must be commune, province or central, not `{level}`"));
            }
        }
        Ok(routing)
    }

    /// The unit a new petition goes to.
    pub fn route(&self, petition: &PetitionRef) -> String {
        let level = petition.topic.as_deref().and_then(|topic| self.topic_level.get(topic));
        match level.map(String::as_str) {
            Some("province") => petition.province_code.clone(),
            Some("central") => CENTRAL.to_owned(),
            _ => petition.commune_code.clone(),
        }
    }
}

/// What the handling rules need besides the status: units, calendar, time limits, routing.
pub struct Rules<'a> {
    pub units: &'a Units,
    pub calendar: &'a Calendar,
    pub deadlines: &'a Deadlines,
    pub routing: &'a Routing,
}

/// The level above a unit: village → commune → province → central.
pub fn parent_unit(units: &Units, unit: &str) -> Option<String> {
    if let Some((commune, _)) = unit.split_once('-') {
        return Some(commune.to_owned());
    }
    match unit.len() {
        5 => units.commune(unit).map(|c| c.province_code.clone()),
        2 if unit != CENTRAL => Some(CENTRAL.to_owned()),
        _ => None,
    }
}

/// Whether `unit` is `scope` or lies under it.
pub fn covers(units: &Units, scope: &str, unit: &str) -> bool {
    let mut current = Some(unit.to_owned());
    while let Some(candidate) = current {
        if candidate == scope {
            return true;
        }
        current = parent_unit(units, &candidate);
    }
    false
}

fn known_unit(units: &Units, unit: &str) -> bool {
    match unit.split_once('-') {
        Some((commune, village)) => {
            units.commune(commune).is_some() && village.len() == 3 && village.bytes().all(|b| b.is_ascii_digit())
        }
        None => unit == CENTRAL || units.province(unit).is_some() || units.commune(unit).is_some(),
    }
}

const MAX_TEXT: usize = 20_000;

/// A member's text as it is stored: trimmed and in NFC. Refused, as intake refuses a petition's
/// title or body, when it shows nothing (only white space and invisible characters such as
/// U+200B), holds a control character other than line breaks and tabs, or is too long.
fn checked_text(field: &str, raw: &str) -> Result<String, FieldError> {
    let text = crate::text::nfc(raw.trim());
    if crate::text::is_blank(&text) {
        return Err(FieldError::new(field, "empty", format!("`{field}` shows nothing: write it, or leave it out")));
    }
    if let Some(control) = crate::text::stray_control(&text, true) {
        return Err(FieldError::new(
            field,
            "control_character",
            format!("`{field}` holds the control character U+{:04X}", u32::from(control)),
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("`{field}` has {chars} characters, at most {MAX_TEXT} are accepted"),
        ));
    }
    Ok(text)
}

/// The members of a request once read: texts normalised, numbers in range, the unit known.
#[derive(Debug, Default)]
struct Members {
    note: Option<String>,
    answer: Option<String>,
    unit: Option<String>,
    days: Option<u32>,
    rating: Option<u8>,
}

impl Members {
    fn has(&self, member: &str) -> bool {
        match member {
            "note" => self.note.is_some(),
            "answer" => self.answer.is_some(),
            "unit" => self.unit.is_some(),
            "days" => self.days.is_some(),
            "rating" => self.rating.is_some(),
            _ => false,
        }
    }
}

/// The values a whole-number member (`days`, `rating`) may take: `days` 1..=`max_extension`
/// working days, `rating` 1..=5. `None` for any other member. The API states these ranges when
/// a body's number is not even of the member's type (a `days` of 2^32), so every refusal of a
/// number names the range the member really takes.
pub fn whole_range(member: &str, deadlines: &Deadlines) -> Option<std::ops::RangeInclusive<u64>> {
    match member {
        "days" => Some(1..=u64::from(deadlines.max_extension())),
        "rating" => Some(1..=5),
        _ => None,
    }
}

/// The refusal (`out_of_range`) of `given` for a whole-number member, stating its
/// [`whole_range`].
pub fn out_of_range(member: &str, given: &dyn std::fmt::Display, deadlines: &Deadlines) -> FieldError {
    let range = whole_range(member, deadlines).unwrap_or(0..=0);
    let (low, high) = (range.start(), range.end());
    let message = match member {
        "days" => format!("`days` must be from {low} to {high} working days, not {given}"),
        _ => format!("`{member}` must be a whole number from {low} to {high}, not {given}"),
    };
    FieldError::new(member, "out_of_range", message)
}

/// Reads the members of `request` for `action`, naming every member at fault: one the action
/// does not take (given a value or `null`), a text that shows nothing or holds control
/// characters, a number out of its range or an unknown unit. Ranges are checked whatever the
/// action, so a `rating` of 7 sent with `accept` is named twice (not taken, and out of range)
/// rather than once.
fn read_members(request: &ActionRequest, action: Action, rules: &Rules<'_>) -> Result<Members, Vec<FieldError>> {
    let mut errors = Vec::new();
    let taken = action.members();
    let sent = [
        ("note", request.note.is_some()),
        ("answer", request.answer.is_some()),
        ("unit", request.unit.is_some()),
        ("days", request.days.is_some()),
        ("rating", request.rating.is_some()),
    ];
    for (member, has_value) in sent {
        let present = has_value || request.null_members.iter().any(|null| null == member);
        if present && !taken.iter().any(|(name, _)| *name == member) {
            let takes: Vec<String> = taken.iter().map(|(name, _)| format!("`{name}`")).collect();
            errors.push(FieldError::new(
                member,
                "not_taken",
                format!("`{}` takes no `{member}`; it takes {}", action.as_str(), takes.join(", ")),
            ));
        }
    }
    let mut text = |field: &str, value: &Option<String>| match value.as_deref().map(|raw| checked_text(field, raw)) {
        Some(Ok(text)) => Some(text),
        Some(Err(error)) => {
            errors.push(error);
            None
        }
        None => None,
    };
    let note = text("note", &request.note);
    let answer = text("answer", &request.answer);
    let unit = match request.unit.as_deref().map(str::trim) {
        None => None,
        Some("") => {
            errors.push(FieldError::new("unit", "empty", "`unit` is empty: give a unit code, or leave it out"));
            None
        }
        Some(unit) if !known_unit(rules.units, unit) => {
            errors.push(FieldError::new(
                "unit",
                "unknown_unit",
                format!("`{unit}` is not a known unit (province, 2025 commune or village ccccc-nnn)"),
            ));
            None
        }
        Some(unit) => Some(unit.to_owned()),
    };
    let in_range = |member: &str, value: u64| whole_range(member, rules.deadlines).is_some_and(|r| r.contains(&value));
    let days = match request.days {
        Some(days) if !in_range("days", u64::from(days)) => {
            errors.push(out_of_range("days", &days, rules.deadlines));
            None
        }
        days => days,
    };
    let rating = match request.rating {
        Some(rating) if !in_range("rating", u64::from(rating)) => {
            errors.push(out_of_range("rating", &rating, rules.deadlines));
            None
        }
        rating => rating,
    };
    if errors.is_empty() { Ok(Members { note, answer, unit, days, rating }) } else { Err(errors) }
}

impl Status {
    /// A petition nobody has acted on yet: received by the unit routing gives it, with the
    /// acceptance deadline counted from its receipt.
    pub fn initial(petition_id: Uuid, petition: &PetitionRef, rules: &Rules<'_>) -> Status {
        let due_at = rules.deadlines.due(rules.calendar, "acceptance", petition.received_at, 0);
        Status {
            petition_id,
            tracking_code: petition.tracking_code.clone(),
            title: petition.title.clone(),
            received_at: petition.received_at,
            province_code: petition.province_code.clone(),
            commune_code: petition.commune_code.clone(),
            topic: petition.topic.clone(),
            state: State::Received,
            unit: rules.routing.route(petition),
            stage_started_at: petition.received_at,
            due_at,
            extension_days: 0,
            answer: None,
            answered_at: None,
            answered_on_time: None,
            closed_at: None,
            rating: None,
            reopen_count: 0,
            updated_at: petition.received_at,
            events: 0,
        }
    }

    /// The reference the events of this petition carry.
    pub fn petition_ref(&self) -> PetitionRef {
        PetitionRef {
            tracking_code: self.tracking_code.clone(),
            received_at: self.received_at,
            province_code: self.province_code.clone(),
            commune_code: self.commune_code.clone(),
            topic: self.topic.clone(),
            title: self.title.clone(),
        }
    }

    /// Whether the current stage's time limit has passed at `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.state.is_open() && self.due_at.is_some_and(|due| due < now)
    }

    /// Checks `request` by `actor` at `now` and returns the event it makes. Staff actions need
    /// the actor's unit to cover the handling unit; citizen actions need `actor.role == citizen`.
    pub fn decide(
        &self,
        request: &ActionRequest,
        actor: &Actor,
        now: DateTime<Utc>,
        rules: &Rules<'_>,
    ) -> Result<Event, Rejected> {
        let Some(action) = Action::parse(&request.action) else {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
            // Only the exact name is an action: `" extend "` is refused with what was meant,
            // as a client that pads or cases it differently has a bug worth knowing about.
            let meant = Action::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(request.action.trim()));
            let message = match meant {
                Some(meant) => format!("`{}` is not an action; write exactly `{}`", request.action, meant.as_str()),
                None => format!("unknown action `{}`; one of {}", request.action, known.join(", ")),
            };
            return Err(Rejected::Invalid { field: "action", message });
        };
        let members = read_members(request, action, rules).map_err(Rejected::Fields)?;
        match action.taker() {
            Taker::Citizen if actor.role != "citizen" => {
                return Err(Rejected::Forbidden(format!(
                    "`{}` is the citizen's action (by tracking code and secret)",
                    action.as_str()
                )));
            }
            Taker::Staff if actor.role == "citizen" => {
                return Err(Rejected::Forbidden(format!("`{}` is taken by the handling unit", action.as_str())));
            }
            Taker::Staff if !covers(rules.units, &actor.unit, &self.unit) => {
                return Err(Rejected::Forbidden(format!(
                    "the petition is handled by unit {}, outside unit {}",
                    self.unit, actor.unit
                )));
            }
            _ => {}
        }
        if !action.from_states().contains(&self.state) {
            return Err(Rejected::Transition {
                action: action.as_str().to_owned(),
                state: self.state,
                allowed: self.state.allowed(),
            });
        }
        let missing: Vec<FieldError> = action
            .members()
            .iter()
            .filter(|(member, required)| *required && !members.has(member))
            .map(|(member, _)| {
                FieldError::new(member, "required", format!("{} is required", action.required_what(member)))
            })
            .collect();
        if !missing.is_empty() {
            return Err(Rejected::Fields(missing));
        }
        let mut event = Event {
            event_id: Uuid::now_v7(),
            petition_id: self.petition_id,
            at: now,
            action,
            actor: actor.clone(),
            from_state: self.state,
            to_state: self.state,
            unit: self.unit.clone(),
            note: members.note,
            answer: None,
            days: None,
            rating: None,
            petition: self.petition_ref(),
        };
        // `read_members` and the check above make each required member present here.
        let unit = members.unit.unwrap_or_default();
        match action {
            Action::Accept => event.to_state = State::Accepted,
            Action::Start => event.to_state = State::InProgress,
            Action::Close => event.to_state = State::Closed,
            Action::Decline => event.to_state = State::Declined,
            Action::Assign => {
                // Assigning a petition to the unit that has it would record a step that changes
                // nothing but the state; the unit starts it instead.
                if unit == self.unit {
                    return Err(Rejected::Fields(vec![FieldError::new(
                        "unit",
                        "already_handling",
                        format!(
                            "the petition is already handled by unit {unit}: assign it to a unit under it, or `start` it"
                        ),
                    )]));
                }
                if !covers(rules.units, &self.unit, &unit) {
                    return Err(Rejected::Invalid {
                        field: "unit",
                        message: format!(
                            "unit {unit} is not under the handling unit {}: transfer it instead",
                            self.unit
                        ),
                    });
                }
                event.unit = unit;
                event.to_state = State::Assigned;
            }
            Action::Answer => {
                event.answer = members.answer;
                event.to_state = State::Answered;
            }
            Action::Reopen => event.to_state = State::Reopened,
            Action::Transfer => {
                if unit == self.unit {
                    return Err(Rejected::Fields(vec![FieldError::new(
                        "unit",
                        "already_handling",
                        format!("the petition is already handled by unit {unit}"),
                    )]));
                }
                event.unit = unit;
                event.to_state = State::Received;
            }
            Action::Escalate => {
                let Some(parent) = parent_unit(rules.units, &self.unit) else {
                    return Err(Rejected::Invalid {
                        field: "action",
                        message: "the central level has no level above".to_owned(),
                    });
                };
                event.unit = parent;
                event.to_state = State::Received;
            }
            Action::Extend => {
                let days = members.days.unwrap_or(0);
                let max = rules.deadlines.max_extension();
                if self.extension_days + days > max {
                    return Err(Rejected::Invalid {
                        field: "days",
                        message: format!(
                            "1..={} more working days (already extended by {}, at most {max} in all)",
                            max.saturating_sub(self.extension_days),
                            self.extension_days
                        ),
                    });
                }
                event.days = Some(days);
            }
            Action::Rate => event.rating = members.rating,
        }
        Ok(event)
    }

    /// The status after `event`. Errors when the event does not fit this status (the pipeline
    /// dead-letters it).
    pub fn apply(&self, event: &Event, rules: &Rules<'_>) -> Result<Status, Rejected> {
        if event.petition_id != self.petition_id {
            return Err(Rejected::Invalid { field: "petition_id", message: "another petition's event".to_owned() });
        }
        if event.from_state != self.state || !event.action.from_states().contains(&self.state) {
            return Err(Rejected::Transition {
                action: event.action.as_str().to_owned(),
                state: self.state,
                allowed: self.state.allowed(),
            });
        }
        let mut next = self.clone();
        next.state = event.to_state;
        next.unit = event.unit.clone();
        next.updated_at = event.at;
        next.events += 1;
        let answer_due =
            |start: DateTime<Utc>, extension: u32| rules.deadlines.due(rules.calendar, "answer", start, extension);
        match event.action {
            Action::Accept => {
                next.stage_started_at = event.at;
                next.extension_days = 0;
                next.due_at = answer_due(event.at, 0);
            }
            Action::Decline => {
                next.due_at = None;
                next.closed_at = Some(event.at);
            }
            Action::Assign | Action::Start => {}
            Action::Answer => {
                next.answer = event.answer.clone();
                next.answered_at = Some(event.at);
                next.answered_on_time = Some(self.due_at.is_none_or(|due| event.at <= due));
                next.due_at = None;
            }
            Action::Close => next.closed_at = Some(event.at),
            Action::Reopen => {
                next.reopen_count += 1;
                next.closed_at = None;
                next.stage_started_at = event.at;
                next.extension_days = 0;
                next.due_at = answer_due(event.at, 0);
            }
            Action::Transfer | Action::Escalate => {
                next.stage_started_at = event.at;
                next.extension_days = 0;
                next.due_at = rules.deadlines.due(rules.calendar, "acceptance", event.at, 0);
            }
            Action::Extend => {
                next.extension_days += event.days.unwrap_or(0);
                next.due_at = answer_due(self.stage_started_at, next.extension_days);
            }
            Action::Rate => next.rating = event.rating,
        }
        Ok(next)
    }
}

/// The notification an applied event sends to gateways and webhooks (`voxpop.notifications`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The event's id: consumers deduplicate on it (delivery is at least once).
    pub notification_id: Uuid,
    pub petition_id: Uuid,
    pub tracking_code: String,
    pub event: Action,
    pub state: State,
    pub unit: String,
    pub at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    /// What an SMS or Zalo message says, in Vietnamese.
    pub message_vi: String,
}

impl Notification {
    pub fn of(event: &Event, status: &Status) -> Notification {
        let code = &status.tracking_code;
        let message_vi = match event.action {
            Action::Rate => format!("Cảm ơn bạn đã đánh giá kết quả xử lý kiến nghị {code}."),
            Action::Answer => format!("Kiến nghị {code} đã được trả lời. Tra cứu và đánh giá bằng mã theo dõi."),
            _ => format!("Kiến nghị {code}: {}.", status.state.label_vi()),
        };
        Notification {
            notification_id: event.event_id,
            petition_id: event.petition_id,
            tracking_code: code.clone(),
            event: event.action,
            state: status.state,
            unit: status.unit.clone(),
            at: event.at,
            due_at: status.due_at,
            message_vi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn petition() -> PetitionRef {
        PetitionRef {
            tracking_code: "K7M2-9QXD-4HTR".to_owned(),
            received_at: "2026-02-09T03:00:00Z".parse().unwrap(),
            province_code: "01".to_owned(),
            commune_code: "00004".to_owned(),
            topic: Some("moi_truong".to_owned()),
            title: "Bãi rác".to_owned(),
        }
    }

    fn staff(unit: &str) -> Actor {
        Actor { id: "t1".to_owned(), role: "officer".to_owned(), unit: unit.to_owned() }
    }

    fn act(action: &str) -> ActionRequest {
        ActionRequest { action: action.to_owned(), ..Default::default() }
    }

    #[test]
    fn workflow_follows_the_state_machine_and_counts_deadlines_in_working_days() {
        let (calendar, deadlines, routing) =
            (Calendar::default_embedded().clone(), Deadlines::default_embedded().clone(), Routing::default_rules());
        let rules = Rules { units: Units::embedded(), calendar: &calendar, deadlines: &deadlines, routing: &routing };
        let id = Uuid::now_v7();
        let status = Status::initial(id, &petition(), &rules);
        assert_eq!((status.state, status.unit.as_str()), (State::Received, "00004"));
        // Received on Monday 2026-02-09, a week before Tết 2026 (17 February): the 10 working
        // days of acceptance run past the Tết holidays.
        let due = status.due_at.unwrap();
        assert!(due > "2026-02-27T00:00:00Z".parse::<DateTime<Utc>>().unwrap(), "{due}");

        let now = status.received_at + chrono::Duration::hours(2);
        // Answering before accepting is a 409 listing what is allowed.
        let Err(Rejected::Transition { allowed, .. }) = status.decide(&act("answer"), &staff("00004"), now, &rules)
        else {
            panic!("answer must be refused in state received");
        };
        assert_eq!(allowed, vec![Action::Accept, Action::Decline, Action::Transfer, Action::Escalate]);
        // Another commune's officer may not act; the province's may.
        assert!(matches!(status.decide(&act("accept"), &staff("00007"), now, &rules), Err(Rejected::Forbidden(_))));
        let event = status.decide(&act("accept"), &staff("01"), now, &rules).unwrap();
        let status = status.apply(&event, &rules).unwrap();
        assert_eq!(status.state, State::Accepted);
        // Replaying the same event again does not fit the new state.
        assert!(status.apply(&event, &rules).is_err());
        let event = status.decide(&act("start"), &staff("00004"), now, &rules).unwrap();
        let status = status.apply(&event, &rules).unwrap();
        let missing = status.decide(&act("answer"), &staff("00004"), now, &rules).unwrap_err();
        assert!(matches!(&missing, Rejected::Fields(errors) if errors[0].field == "answer"), "{missing:?}");
        let answer = ActionRequest { answer: Some("Đã thu gom.".to_owned()), ..act("answer") };
        let event = status.decide(&answer, &staff("00004"), now, &rules).unwrap();
        let status = status.apply(&event, &rules).unwrap();
        assert_eq!((status.state, status.answered_on_time), (State::Answered, Some(true)));
        // Rating and reopening are the citizen's.
        let citizen = Actor { id: "citizen".to_owned(), role: "citizen".to_owned(), unit: String::new() };
        assert!(matches!(status.decide(&act("rate"), &staff("00004"), now, &rules), Err(Rejected::Forbidden(_))));
        let rate = ActionRequest { rating: Some(2), ..act("rate") };
        let status = status.apply(&status.decide(&rate, &citizen, now, &rules).unwrap(), &rules).unwrap();
        let reopen = ActionRequest { note: Some("Rác vẫn còn".to_owned()), ..act("reopen") };
        let status = status.apply(&status.decide(&reopen, &citizen, now, &rules).unwrap(), &rules).unwrap();
        assert_eq!((status.state, status.reopen_count, status.rating), (State::Reopened, 1, Some(2)));
        // Escalating moves it to the province, received again with a new acceptance deadline.
        let escalate = ActionRequest { note: Some("Vượt thẩm quyền".to_owned()), ..act("escalate") };
        let status = status.apply(&status.decide(&escalate, &staff("00004"), now, &rules).unwrap(), &rules).unwrap();
        assert_eq!((status.state, status.unit.as_str()), (State::Received, "01"));
        assert!(matches!(status.decide(&act("accept"), &staff("00004"), now, &rules), Err(Rejected::Forbidden(_))));
    }

    #[test]
    fn workflow_routing_sends_corruption_to_the_province_and_extensions_are_bounded() {
        let (calendar, deadlines, routing) =
            (Calendar::default_embedded().clone(), Deadlines::default_embedded().clone(), Routing::default_rules());
        let rules = Rules { units: Units::embedded(), calendar: &calendar, deadlines: &deadlines, routing: &routing };
        let mut reference = petition();
        reference.topic = Some("corruption".to_owned());
        let status = Status::initial(Uuid::now_v7(), &reference, &rules);
        assert_eq!(status.unit, "01");
        let now = status.received_at;
        let status = status.apply(&status.decide(&act("accept"), &staff("01"), now, &rules).unwrap(), &rules).unwrap();
        let assign = ActionRequest { unit: Some("00004".to_owned()), ..act("assign") };
        let status = status.apply(&status.decide(&assign, &staff("01"), now, &rules).unwrap(), &rules).unwrap();
        assert_eq!((status.state, status.unit.as_str()), (State::Assigned, "00004"));
        let before = status.due_at.unwrap();
        let extend = ActionRequest { days: Some(5), note: Some("Cần xác minh".to_owned()), ..act("extend") };
        let status = status.apply(&status.decide(&extend, &staff("00004"), now, &rules).unwrap(), &rules).unwrap();
        assert!(status.due_at.unwrap() >= before + chrono::Duration::days(7), "5 working days are at least a week");
        let too_long = ActionRequest { days: Some(deadlines.max_extension()), ..extend };
        assert!(matches!(
            status.decide(&too_long, &staff("00004"), now, &rules),
            Err(Rejected::Invalid { field: "days", .. })
        ));
        assert!(Routing::from_toml("[topic_level]\ndat_dai = \"village\"").is_err());
        assert!(covers(Units::embedded(), "01", "00004-001") && !covers(Units::embedded(), "79", "00004"));
    }

    fn fields(rejected: Rejected) -> Vec<(String, String)> {
        match rejected {
            Rejected::Fields(errors) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(field, code)| (field.to_string(), code.to_string())).collect()
    }

    #[test]
    fn workflow_action_requests_are_read_strictly_and_name_each_member() {
        let (calendar, deadlines, routing) =
            (Calendar::default_embedded().clone(), Deadlines::default_embedded().clone(), Routing::default_rules());
        let rules = Rules { units: Units::embedded(), calendar: &calendar, deadlines: &deadlines, routing: &routing };
        let status = Status::initial(Uuid::now_v7(), &petition(), &rules);
        let now = status.received_at;
        let officer = staff("00004");
        let decide = |request: &ActionRequest| status.decide(request, &officer, now, &rules);

        // A note that shows nothing, or garbles what staff read, is refused as intake refuses a title.
        for (note, code) in [("\u{200b}\u{200b}", "empty"), ("  ", "empty"), ("lý do\u{0}", "control_character")] {
            let decline = ActionRequest { note: Some(note.to_owned()), ..act("decline") };
            assert_eq!(fields(decide(&decline).unwrap_err()), pairs(&[("note", code)]), "{note:?}");
            let accept = ActionRequest { note: Some(note.to_owned()), ..act("accept") };
            assert_eq!(fields(decide(&accept).unwrap_err()), pairs(&[("note", code)]), "{note:?}");
        }
        // Line breaks and tabs are text; the note is kept in NFC.
        let decline = ActionRequest { note: Some("Dòng 1\n\tDòng 2".to_owned()), ..act("decline") };
        assert_eq!(decide(&decline).unwrap().note.as_deref(), Some("Dòng 1\n\tDòng 2"));

        // Only the exact name is an action.
        for name in [" extend ", "Accept", "accept\n"] {
            let Err(Rejected::Invalid { field: "action", message }) = decide(&act(name)) else {
                panic!("`{name}` must be refused");
            };
            assert!(message.contains("exactly"), "{message}");
        }

        // Members the action does not take are named, and ranges are checked whatever the action.
        let accept = ActionRequest {
            unit: Some("01".to_owned()),
            days: Some(5),
            answer: Some("zzz".to_owned()),
            rating: Some(7),
            ..act("accept")
        };
        assert_eq!(
            fields(decide(&accept).unwrap_err()),
            pairs(&[
                ("answer", "not_taken"),
                ("unit", "not_taken"),
                ("days", "not_taken"),
                ("rating", "not_taken"),
                ("rating", "out_of_range")
            ])
        );
        let extend = ActionRequest { days: Some(0), note: Some("x".to_owned()), ..act("extend") };
        assert_eq!(fields(decide(&extend).unwrap_err()), pairs(&[("days", "out_of_range")]));
        let transfer = ActionRequest { unit: Some("99999".to_owned()), ..act("transfer") };
        assert_eq!(fields(decide(&transfer).unwrap_err()), pairs(&[("unit", "unknown_unit")]));
        // Every missing member at once, once the state allows the action.
        assert_eq!(fields(decide(&act("transfer")).unwrap_err()), pairs(&[("unit", "required"), ("note", "required")]));

        // Assigning to the unit that already handles it changes nothing: refused, naming `unit`.
        let accepted = status.apply(&decide(&act("accept")).unwrap(), &rules).unwrap();
        let assign = ActionRequest { unit: Some("00004".to_owned()), ..act("assign") };
        let refused = accepted.decide(&assign, &officer, now, &rules).unwrap_err();
        assert_eq!(fields(refused), pairs(&[("unit", "already_handling")]));
        let assign = ActionRequest { unit: Some("00004-001".to_owned()), ..act("assign") };
        assert_eq!(accepted.decide(&assign, &officer, now, &rules).unwrap().unit, "00004-001");
    }

    #[test]
    fn workflow_null_members_the_action_does_not_take_are_refused() {
        let (calendar, deadlines, routing) =
            (Calendar::default_embedded().clone(), Deadlines::default_embedded().clone(), Routing::default_rules());
        let rules = Rules { units: Units::embedded(), calendar: &calendar, deadlines: &deadlines, routing: &routing };
        let status = Status::initial(Uuid::now_v7(), &petition(), &rules);
        let accepted = status
            .apply(&status.decide(&act("accept"), &staff("00004"), status.received_at, &rules).unwrap(), &rules)
            .unwrap();
        let decide = |request: &ActionRequest| accepted.decide(request, &staff("00004"), accepted.received_at, &rules);
        let nulls = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();

        // `rating: null` with `extend` is named as any member `extend` does not take.
        let extend = ActionRequest {
            days: Some(1),
            note: Some("x".to_owned()),
            null_members: nulls(&["rating", "answer"]),
            ..act("extend")
        };
        assert_eq!(fields(decide(&extend).unwrap_err()), pairs(&[("answer", "not_taken"), ("rating", "not_taken")]));
        let Err(Rejected::Fields(errors)) = decide(&extend) else { panic!("refused by its fields") };
        assert!(errors[1].message.contains("`extend` takes no `rating`"), "{}", errors[1].message);
        // A `null` member the action takes is its absence: optional, or missing when required.
        let accept = ActionRequest { null_members: nulls(&["note"]), ..act("start") };
        assert_eq!(decide(&accept).unwrap().action, Action::Start);
        let extend = ActionRequest { note: Some("x".to_owned()), null_members: nulls(&["days"]), ..act("extend") };
        assert_eq!(fields(decide(&extend).unwrap_err()), pairs(&[("days", "required")]));

        // Out-of-range numbers name the range the member takes.
        let max = deadlines.max_extension();
        let extend = ActionRequest { days: Some(max + 1), note: Some("x".to_owned()), ..act("extend") };
        let Err(Rejected::Fields(errors)) = decide(&extend) else { panic!("refused by its fields") };
        assert_eq!(errors[0].message, format!("`days` must be from 1 to {max} working days, not {}", max + 1));
        assert_eq!(whole_range("days", &deadlines), Some(1..=u64::from(max)));
        assert_eq!(whole_range("rating", &deadlines), Some(1..=5));
        assert_eq!(whole_range("note", &deadlines), None);
        let refused = out_of_range("rating", &256, &deadlines);
        assert_eq!(
            (refused.code.as_str(), refused.message.as_str()),
            ("out_of_range", "`rating` must be a whole number from 1 to 5, not 256")
        );
    }

    #[test]
    fn workflow_records_mask_their_free_text() {
        let (calendar, deadlines, routing) =
            (Calendar::default_embedded().clone(), Deadlines::default_embedded().clone(), Routing::default_rules());
        let rules = Rules { units: Units::embedded(), calendar: &calendar, deadlines: &deadlines, routing: &routing };
        let mut reference = petition();
        reference.title = "Khiếu nại gọi 0912345678 CCCD 001203004567".to_owned();
        let status = Status::initial(Uuid::now_v7(), &reference, &rules);
        let now = status.received_at;
        let officer = staff("00004");
        let accept = ActionRequest { note: Some("Đã gọi 0912345678".to_owned()), ..act("accept") };
        let event = status.decide(&accept, &officer, now, &rules).unwrap();
        let mut answered = status.apply(&event, &rules).unwrap();
        answered.answer = Some("Liên hệ 0912 345 678".to_owned());

        let masked = event.clone().masked();
        assert_eq!(masked.note.as_deref(), Some("Đã gọi *******678"));
        assert_eq!(masked.petition.title, "Khiếu nại gọi *******678 CCCD *********567");
        assert_eq!((masked.event_id, masked.action, masked.unit.as_str()), (event.event_id, event.action, "00004"));
        let masked = answered.clone().masked();
        assert_eq!(masked.title, "Khiếu nại gọi *******678 CCCD *********567");
        assert_eq!(masked.answer.as_deref(), Some("Liên hệ **** *** 678"));
        assert_eq!((masked.state, masked.tracking_code.as_str()), (answered.state, "K7M2-9QXD-4HTR"));
        // Masking twice changes nothing more.
        assert_eq!(masked.clone().masked(), masked);
    }
}

/// The lake's rows of handling: Arrow schemas of `petition_events` and `petition_status`, and the
/// conversions (through arrow-json's serde support, so the record types stay the definition).
pub mod rows {
    use std::sync::{Arc, OnceLock};

    use arrow::array::RecordBatch;
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    use super::{Action, Actor, Event, PetitionRef, State, Status};
    use crate::error::SchemaError;

    fn timestamp() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    /// Columns of `petition_events`: one row per event, with the log position it came from.
    pub fn events_schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        SCHEMA
            .get_or_init(|| {
                let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
                Arc::new(Schema::new(vec![
                    text("event_id", false),
                    text("petition_id", false),
                    Field::new("at", timestamp(), false),
                    text("action", false),
                    text("actor_id", false),
                    text("actor_role", false),
                    text("actor_unit", false),
                    text("from_state", false),
                    text("to_state", false),
                    text("unit", false),
                    text("note", true),
                    text("answer", true),
                    Field::new("days", DataType::Int32, true),
                    Field::new("rating", DataType::Int32, true),
                    text("tracking_code", false),
                    Field::new("received_at", timestamp(), false),
                    text("province_code", false),
                    text("commune_code", false),
                    text("topic", true),
                    text("title", false),
                    Field::new("log_partition", DataType::Int32, false),
                    Field::new("log_offset", DataType::Int64, false),
                ]))
            })
            .clone()
    }

    /// Columns of `petition_status`: one row per petition that has events.
    pub fn status_schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        SCHEMA
            .get_or_init(|| {
                let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
                Arc::new(Schema::new(vec![
                    text("petition_id", false),
                    text("tracking_code", false),
                    text("title", false),
                    Field::new("received_at", timestamp(), false),
                    text("province_code", false),
                    text("commune_code", false),
                    text("topic", true),
                    text("state", false),
                    text("unit", false),
                    Field::new("stage_started_at", timestamp(), false),
                    Field::new("due_at", timestamp(), true),
                    Field::new("extension_days", DataType::Int32, false),
                    text("answer", true),
                    Field::new("answered_at", timestamp(), true),
                    Field::new("answered_on_time", DataType::Boolean, true),
                    Field::new("closed_at", timestamp(), true),
                    Field::new("rating", DataType::Int32, true),
                    Field::new("reopen_count", DataType::Int32, false),
                    Field::new("updated_at", timestamp(), false),
                    Field::new("events", DataType::Int32, false),
                ]))
            })
            .clone()
    }

    /// A flat row of `petition_events`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct EventRow {
        event_id: Uuid,
        petition_id: Uuid,
        at: DateTime<Utc>,
        action: Action,
        actor_id: String,
        actor_role: String,
        actor_unit: String,
        from_state: State,
        to_state: State,
        unit: String,
        note: Option<String>,
        answer: Option<String>,
        days: Option<u32>,
        rating: Option<u8>,
        tracking_code: String,
        received_at: DateTime<Utc>,
        province_code: String,
        commune_code: String,
        topic: Option<String>,
        title: String,
        log_partition: i32,
        log_offset: i64,
    }

    /// An event with the log position it was read from.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LoggedEvent {
        pub event: Event,
        pub partition: i32,
        pub offset: i64,
    }

    fn encode<T: Serialize>(schema: SchemaRef, rows: &[T]) -> Result<RecordBatch, SchemaError> {
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).build_decoder()?;
        decoder.serialize(rows)?;
        Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(schema)))
    }

    fn decode<T: for<'de> Deserialize<'de>>(batch: &RecordBatch) -> Result<Vec<T>, SchemaError> {
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        writer.write(batch)?;
        writer.finish()?;
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub fn events_to_batch(events: &[LoggedEvent]) -> Result<RecordBatch, SchemaError> {
        let rows: Vec<EventRow> = events
            .iter()
            .map(|logged| {
                let e = &logged.event;
                EventRow {
                    event_id: e.event_id,
                    petition_id: e.petition_id,
                    at: e.at,
                    action: e.action,
                    actor_id: e.actor.id.clone(),
                    actor_role: e.actor.role.clone(),
                    actor_unit: e.actor.unit.clone(),
                    from_state: e.from_state,
                    to_state: e.to_state,
                    unit: e.unit.clone(),
                    note: e.note.clone(),
                    answer: e.answer.clone(),
                    days: e.days,
                    rating: e.rating,
                    tracking_code: e.petition.tracking_code.clone(),
                    received_at: e.petition.received_at,
                    province_code: e.petition.province_code.clone(),
                    commune_code: e.petition.commune_code.clone(),
                    topic: e.petition.topic.clone(),
                    title: e.petition.title.clone(),
                    log_partition: logged.partition,
                    log_offset: logged.offset,
                }
            })
            .collect();
        encode(events_schema(), &rows)
    }

    pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<LoggedEvent>, SchemaError> {
        let rows: Vec<EventRow> = decode(batch)?;
        Ok(rows
            .into_iter()
            .map(|row| LoggedEvent {
                event: Event {
                    event_id: row.event_id,
                    petition_id: row.petition_id,
                    at: row.at,
                    action: row.action,
                    actor: Actor { id: row.actor_id, role: row.actor_role, unit: row.actor_unit },
                    from_state: row.from_state,
                    to_state: row.to_state,
                    unit: row.unit,
                    note: row.note,
                    answer: row.answer,
                    days: row.days,
                    rating: row.rating,
                    petition: PetitionRef {
                        tracking_code: row.tracking_code,
                        received_at: row.received_at,
                        province_code: row.province_code,
                        commune_code: row.commune_code,
                        topic: row.topic,
                        title: row.title,
                    },
                },
                partition: row.log_partition,
                offset: row.log_offset,
            })
            .collect())
    }

    pub fn status_to_batch(statuses: &[Status]) -> Result<RecordBatch, SchemaError> {
        encode(status_schema(), statuses)
    }

    pub fn status_from_batch(batch: &RecordBatch) -> Result<Vec<Status>, SchemaError> {
        decode(batch)
    }
}

/// The handling configuration a process runs with: calendar, time limits and routing.
#[derive(Clone)]
pub struct Handling {
    pub calendar: Calendar,
    pub deadlines: Deadlines,
    pub routing: Routing,
}

impl Handling {
    /// The compiled-in defaults (`schema/data/calendar.toml`, the default time limits, corruption
    /// routed to the province).
    pub fn default_embedded() -> Handling {
        Handling {
            calendar: Calendar::default_embedded().clone(),
            deadlines: Deadlines::default_embedded().clone(),
            routing: Routing::default_rules(),
        }
    }

    pub fn rules(&self) -> Rules<'_> {
        Rules { units: Units::embedded(), calendar: &self.calendar, deadlines: &self.deadlines, routing: &self.routing }
    }
}
