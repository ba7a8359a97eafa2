//! Open311 GeoReport v2 (<http://wiki.open311.org/GeoReport_v2>) under `/open311/v2`: the
//! topics of the taxonomy as services, petitions as service requests.
//!
//! In: GeoReport requests, every resource as `NAME.json` or `NAME.xml`. Out: GeoReport
//! documents in the format asked for, errors as GeoReport error lists
//! (`[{"code":400,"description":"..."}]`, `<errors><error>...`) with the matching HTTP status.
//!
//! - `GET discovery`, `GET services`, `GET services/{code}`: the taxonomy (one attribute,
//!   `commune_code`, names the commune; see [`service_definition`]).
//! - `GET requests` (filters `service_request_id`, `service_code`, `start_date`, `end_date`,
//!   `status`, `page_size` up to 1000 and `page` from 1; the last 90 days by default),
//!   `GET requests/{id}`:
//!   reads are public in GeoReport, so they go without a token even where the API needs one,
//!   and give only what a public reader may see: the text with phone and ID numbers masked,
//!   coordinates rounded to about 100 m, never a contact field.
//! - `POST requests` (form-encoded, like any GeoReport client sends it): a petition through
//!   intake on the `open311` channel. `api_key` identifies the client and must not be empty; it
//!   grants nothing that the open intake (`POST /api/v1/petitions`) does not. The petition's
//!   commune is `attribute[commune_code]` (2025 or pre-2025 code) or else the commune whose
//!   centre is nearest to `lat`/`long`.
//! - `GET tokens/{token}`: the token is the petition's tracking code.
//!
//! Parameters are read strictly (see the `Parameters` section): a single-valued one given twice
//! with different values, a value that is not UTF-8 once percent-decoded, an empty filter or a
//! number out of range is a 400 naming the parameter. Unknown parameters are ignored, as
//! GeoReport allows extensions.
//!
//! The service a client picks is advice: the pipeline files every petition under the topic its
//! rules find in the text. The title of a petition sent here begins with the service's name,
//! which the rules of that topic usually recognise, so the request is normally listed under the
//! service it was sent to.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Offset, TimeZone, Utc};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use uuid::Uuid;
use voxpop_connectors::{Accepted, IntakeError};
use voxpop_index::{IndexedPetition, SearchRequest};
use voxpop_schema::petition::{PARTITION_COLUMN, TABLE_NAME, normalise_tracking_code, weeks_holding};
use voxpop_schema::{FieldError, Petition, Taxonomy, Units};

use crate::http::AppState;

/// The specification this interface follows (discovery's `specification`).
pub const SPECIFICATION: &str = "http://wiki.open311.org/GeoReport_v2";
/// When this interface last changed (discovery's `changeset`).
pub const CHANGESET: &str = "2025-10-01T00:00:00+07:00";
/// Most requests one `GET requests` returns.
pub const MAX_REQUESTS: usize = 1000;
/// The window of `GET requests` without dates: the last 90 days.
pub const DEFAULT_WINDOW_DAYS: i64 = 90;
/// Farthest a point may lie from the centre of the commune it is filed under, in km.
pub const MAX_NEAREST_KM: f64 = 100.0;
/// Characters of the description that make the title of a petition sent here.
const TITLE_EXCERPT_CHARS: usize = 80;
/// Hits per index page while listing requests.
const PAGE: usize = voxpop_index::MAX_LIMIT;
/// Ids per lake query while listing requests.
const LAKE_CHUNK: usize = 500;
/// Tokens issued by this process, answered before the lake has their petition.
const REMEMBERED_TOKENS: usize = 10_000;
/// Decimals of published coordinates (3: about 110 m).
const COORDINATE_DECIMALS: i32 = 3;
/// The `group` of every service.
const SERVICE_GROUP: &str = "Kiến nghị, phản ánh";

/// Where a petition stands in its handling, as GeoReport reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestStatus {
    /// GeoReport's `open` (true) or `closed`.
    pub open: bool,
    /// The voxpop handling state: received, accepted, declined, assigned, in_progress,
    /// answered, closed or reopened.
    pub state: String,
    /// What the handling unit says about the state.
    pub status_notes: Option<String>,
    /// The unit handling the petition, by its Vietnamese name.
    pub agency_responsible: String,
    /// When the handling unit expects to answer.
    pub expected_datetime: Option<DateTime<Utc>>,
    /// The last change of state.
    pub updated_datetime: Option<DateTime<Utc>>,
}

/// Whether a voxpop handling state is GeoReport's `open` (`Some(true)`) or `closed`
/// (`Some(false)`); `None` for a state voxpop does not know.
pub fn is_open_state(state: &str) -> Option<bool> {
    match state {
        "received" | "accepted" | "assigned" | "in_progress" | "reopened" => Some(true),
        "declined" | "answered" | "closed" => Some(false),
        _ => None,
    }
}

/// The handling state of one petition, from the handling desk (a petition nobody has acted on is
/// `received` by the unit routing gives it, due by the acceptance limit). GeoReport's
/// `expected_datetime` is the end of the current stage's time limit; `status_notes` the state in
/// Vietnamese, with the answer once there is one.
pub async fn request_status(
    state: &AppState,
    petition_id: &Uuid,
    commune_code: &str,
    province_code: &str,
    received_at: DateTime<Utc>,
    topic: Option<&str>,
) -> RequestStatus {
    let reference = voxpop_schema::workflow::PetitionRef {
        tracking_code: String::new(),
        received_at,
        province_code: province_code.to_owned(),
        commune_code: commune_code.to_owned(),
        topic: topic.map(str::to_owned),
        title: String::new(),
    };
    let status = crate::handling::status_of(state, petition_id, &reference);
    let answered =
        matches!(status.state, voxpop_schema::workflow::State::Answered | voxpop_schema::workflow::State::Closed);
    let notes = match status.answer.as_ref().filter(|_| answered) {
        Some(answer) => format!("{}: {}", status.state.label_vi(), voxpop_schema::privacy::mask_numbers(answer)),
        None => status.state.label_vi().to_owned(),
    };
    RequestStatus {
        open: status.state.is_open(),
        state: status.state.as_str().to_owned(),
        status_notes: Some(notes),
        agency_responsible: crate::handling::unit_name(Units::embedded(), &status.unit),
        expected_datetime: status.due_at,
        updated_datetime: (status.events > 0).then_some(status.updated_at),
    }
}

/// "Ủy ban MTTQ Việt Nam phường Ba Đình": the Fatherland Front committee of a commune.
pub fn front_committee(commune_code: &str) -> String {
    match Units::embedded().commune(commune_code) {
        Some(commune) => {
            // "Phường Ba Đình" -> "phường Ba Đình": the kind is a common noun inside a name.
            let name = match commune.name.strip_prefix(&commune.kind) {
                Some(rest) => format!("{}{rest}", commune.kind.to_lowercase()),
                None => commune.name.clone(),
            };
            format!("Ủy ban MTTQ Việt Nam {name}")
        }
        None => format!("Ủy ban MTTQ Việt Nam (đơn vị {commune_code})"),
    }
}

/// The routes, to be nested under `/open311/v2`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{file}", get(get_root).post(post_root))
        .route("/services/{file}", get(get_service))
        .route("/requests/{file}", get(get_request))
        .route("/tokens/{file}", get(get_token))
        .fallback(|| async { Open311Error::not_found("no such Open311 resource").into_response_as(Format::Json) })
        .method_not_allowed_fallback(|| async {
            Open311Error::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this resource")
                .into_response_as(Format::Json)
        })
        .layer(axum::middleware::from_fn(plain_rejections_as_errors))
}

/// axum's own rejections (a path that is not UTF-8, a body over the limit) come as a
/// `text/plain` sentence; GeoReport clients get them as an error list in the format the path
/// asked for, like every other Open311 error.
async fn plain_rejections_as_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let format = if request.uri().path().to_ascii_lowercase().ends_with(".xml") { Format::Xml } else { Format::Json };
    match crate::problem::rejection_text(next.run(request).await).await {
        Ok((parts, text)) => Open311Error::new(parts.status, text).into_response_as(format),
        Err(response) => response,
    }
}

// ---------------------------------------------------------------------------------------------
// Documents: one tree, written as JSON or XML.

/// The two formats of GeoReport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// `services.json` -> (`services`, JSON); an unknown or missing extension is a 404.
fn split_format(file: &str) -> Result<(&str, Format), Open311Error> {
    let Some((stem, extension)) = file.rsplit_once('.') else {
        return Err(Open311Error::not_found(format!("`{file}`: add the format, `{file}.json` or `{file}.xml`")));
    };
    match extension.to_ascii_lowercase().as_str() {
        "json" => Ok((stem, Format::Json)),
        "xml" => Ok((stem, Format::Xml)),
        _ => Err(Open311Error::not_found(format!("unknown format `.{extension}`: json or xml"))),
    }
}

/// A GeoReport document: objects keep their field order (in JSON and in XML), lists name their
/// items for XML.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List { item: &'static str, items: Vec<Node> },
    Object(Vec<(&'static str, Node)>),
}

impl Node {
    fn text(value: impl Into<String>) -> Node {
        Node::Text(value.into())
    }

    fn optional_text(value: Option<impl Into<String>>) -> Node {
        value.map_or(Node::Null, Node::text)
    }

    fn optional_float(value: Option<f64>) -> Node {
        value.map_or(Node::Null, Node::Float)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_none(),
            Node::Bool(value) => serializer.serialize_bool(*value),
            Node::Int(value) => serializer.serialize_i64(*value),
            Node::Float(value) if value.is_finite() => serializer.serialize_f64(*value),
            Node::Float(_) => serializer.serialize_none(),
            Node::Text(value) => serializer.serialize_str(value),
            Node::List { items, .. } => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
    }
}

/// Escapes text for XML content, dropping characters XML 1.0 cannot carry at all (control
/// characters other than tab and line breaks).
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn write_xml(out: &mut String, name: &str, node: &Node) {
    match node {
        Node::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Node::Bool(value) => {
            let _ = write!(out, "<{name}>{value}</{name}>");
        }
        Node::Int(value) => {
            let _ = write!(out, "<{name}>{value}</{name}>");
        }
        Node::Float(value) if value.is_finite() => {
            let _ = write!(out, "<{name}>{value}</{name}>");
        }
        Node::Float(_) => {
            let _ = write!(out, "<{name}/>");
        }
        Node::Text(value) => {
            let _ = write!(out, "<{name}>{}</{name}>", xml_escape(value));
        }
        Node::List { item, items } => {
            let _ = write!(out, "<{name}>");
            for child in items {
                write_xml(out, item, child);
            }
            let _ = write!(out, "</{name}>");
        }
        Node::Object(fields) => {
            let _ = write!(out, "<{name}>");
            for (field, child) in fields {
                write_xml(out, field, child);
            }
            let _ = write!(out, "</{name}>");
        }
    }
}

/// The document as XML with `root` as its root element.
fn to_xml(root: &str, node: &Node) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    write_xml(&mut out, root, node);
    out.push('\n');
    out
}

fn respond(format: Format, status: StatusCode, root: &str, node: &Node) -> Response {
    let body = match format {
        Format::Json => serde_json::to_vec(node).unwrap_or_else(|_| b"null".to_vec()),
        Format::Xml => to_xml(root, node).into_bytes(),
    };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    response
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A GeoReport error list and its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct Open311Error {
    /// The HTTP status, also each error's `code`.
    pub status: StatusCode,
    /// One description per problem.
    pub descriptions: Vec<String>,
    /// Seconds to wait before trying again (with 503).
    pub retry_after: Option<u64>,
}

impl Open311Error {
    /// One problem.
    pub fn new(status: StatusCode, description: impl Into<String>) -> Open311Error {
        Open311Error { status, descriptions: vec![description.into()], retry_after: None }
    }

    fn bad_request(description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::BAD_REQUEST, description)
    }

    fn not_found(description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::NOT_FOUND, description)
    }

    /// 500 for our own faults; the cause is logged, not shown.
    fn internal(error: &dyn std::fmt::Display) -> Open311Error {
        tracing::error!(error = %error, "open311: internal error");
        Open311Error::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// The error list in `format`.
    pub fn into_response_as(self, format: Format) -> Response {
        let code = i64::from(self.status.as_u16());
        let items = self
            .descriptions
            .iter()
            .map(|description| Node::Object(vec![("code", Node::Int(code)), ("description", Node::text(description))]))
            .collect();
        let mut response = respond(format, self.status, "errors", &Node::List { item: "error", items });
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The Open311 parameter a field of a submission came from.
fn parameter_of(field: &str) -> &str {
    match field {
        "title" | "body" => "description",
        "commune_code" => "attribute[commune_code]",
        "commune_code_version" => "attribute[commune_code_version]",
        "lon" => "long",
        "contact.phone" => "phone",
        "contact.email" => "email",
        "contact.name" => "first_name/last_name",
        other => other,
    }
}

fn invalid(errors: &[FieldError]) -> Open311Error {
    Open311Error {
        status: StatusCode::BAD_REQUEST,
        descriptions: errors
            .iter()
            .map(|error| {
                let parameter = parameter_of(&error.field);
                // The message names the submission's field; the parameter is what the client sent.
                if parameter.is_empty() { error.message.clone() } else { format!("{parameter}: {}", error.message) }
            })
            .collect(),
        retry_after: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters.
//
// Read strictly, so that a client's mistake is a 400 naming the parameter rather than a guess:
// - a single-valued parameter given more than once (in the query, in the body, or once in each)
//   with different values is refused: which one was meant is not ours to guess. The same value
//   repeated is accepted, since it is not ambiguous and some clients put `api_key` both in the
//   query and in the body. List parameters (`service_request_id`, `service_code` and `status` of
//   `GET requests`) take comma lists and repeats alike;
// - names and values must be UTF-8 once percent-decoded (a form sent in another charset would
//   otherwise be stored with U+FFFD where its letters were), as the JSON intake refuses a body
//   that is not UTF-8;
// - the filters of `GET requests` must not be empty (an empty filter is not "every value"), nor
//   hold empty list items; blank fields of a `POST requests` form count as absent, as browsers
//   send every field of a form.

/// Decodes `application/x-www-form-urlencoded` text (also a query string) into its pairs, in
/// order, as browsers encode them: `+` is a space, bad `%` escapes stay as written. A name or
/// value that is not UTF-8 once percent-decoded is refused, named (the name by what was sent).
pub fn decode_form(raw: &str) -> Result<Vec<(String, String)>, Open311Error> {
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for part in raw.split('&').filter(|part| !part.is_empty()) {
        let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let Ok(name) = String::from_utf8(percent_decode(raw_name)) else {
            problems.push(format!("`{raw_name}`: the parameter name is not UTF-8 once percent-decoded"));
            continue;
        };
        match String::from_utf8(percent_decode(raw_value)) {
            Ok(value) => pairs.push((name, value)),
            Err(_) => problems.push(format!("{name}: not UTF-8 once percent-decoded (send the form in UTF-8)")),
        }
    }
    if problems.is_empty() {
        Ok(pairs)
    } else {
        Err(Open311Error { status: StatusCode::BAD_REQUEST, descriptions: problems, retry_after: None })
    }
}

/// The bytes of one form-encoded name or value: `+` a space, `%XX` its byte, a `%` without two
/// hex digits as written. As `form_urlencoded` decodes, but the bytes are left to the caller to
/// check as UTF-8 rather than turned into U+FFFD.
fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// Where a form body is not UTF-8 at all: the byte, and the parameter whose value holds it when
/// that can be told.
fn body_not_utf8(body: &[u8], error: std::str::Utf8Error) -> Open311Error {
    let at = error.valid_up_to();
    // Bytes before `at` are UTF-8; the pair the bad byte is in starts after the last `&`.
    let before = std::str::from_utf8(&body[..at]).unwrap_or_default();
    let pair = before.rsplit('&').next().unwrap_or_default();
    let name = pair.split_once('=').and_then(|(name, _)| String::from_utf8(percent_decode(name)).ok());
    Open311Error::bad_request(match name {
        Some(name) => format!("{name}: the request body is not valid UTF-8 (byte {at}); send the form in UTF-8"),
        None => format!("the request body is not valid UTF-8 (byte {at}); send the form in UTF-8"),
    })
}

/// A value quoted in an error: the first 40 characters of what the client sent.
fn quoted(raw: &str) -> String {
    const SHOWN_CHARS: usize = 40;
    match raw.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("`{}…`", &raw[..cut]),
        None => format!("`{raw}`"),
    }
}

/// The parameters of a request, in order.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    /// The pairs of each part (the query string, the body), strictly decoded ([`decode_form`]).
    fn from_raw(parts: &[Option<&str>]) -> Result<Params, Open311Error> {
        let mut pairs = Vec::new();
        let mut problems = Vec::new();
        for raw in parts.iter().flatten() {
            match decode_form(raw) {
                Ok(decoded) => pairs.extend(decoded),
                Err(error) => problems.extend(error.descriptions),
            }
        }
        if problems.is_empty() {
            Ok(Params(pairs))
        } else {
            Err(Open311Error { status: StatusCode::BAD_REQUEST, descriptions: problems, retry_after: None })
        }
    }

    fn values(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
    }

    /// The value of a single-valued parameter, trimmed (possibly empty); a repeat with another
    /// value, or a control character (other than line breaks and tabs), is refused.
    fn single(&self, name: &str) -> Result<Option<&str>, Open311Error> {
        let mut values = self.values(name).into_iter().map(str::trim);
        let Some(first) = values.next() else { return Ok(None) };
        if values.any(|other| other != first) {
            return Err(Open311Error::bad_request(format!(
                "{name}: given more than once, with different values (send it once)"
            )));
        }
        if let Some(control) = voxpop_schema::text::stray_control(first, true) {
            return Err(Open311Error::bad_request(format!(
                "{name}: holds the control character U+{:04X}",
                u32::from(control)
            )));
        }
        Ok(Some(first))
    }

    /// A field of a form: [`Params::single`], a blank value being absent.
    fn get(&self, name: &str) -> Result<Option<&str>, Open311Error> {
        Ok(self.single(name)?.filter(|value| !value.is_empty()))
    }

    /// A filter: [`Params::single`], refusing an empty value.
    fn filter(&self, name: &str) -> Result<Option<&str>, Open311Error> {
        match self.single(name)? {
            Some("") => Err(Open311Error::bad_request(format!("{name}: empty (leave the parameter out instead)"))),
            value => Ok(value),
        }
    }

    /// Every value of a list filter, comma lists split and items trimmed, in order; an empty value
    /// or item is refused.
    fn list(&self, name: &str) -> Result<Vec<String>, Open311Error> {
        let mut items = Vec::new();
        for value in self.values(name) {
            for item in value.split(',').map(str::trim) {
                if item.is_empty() {
                    return Err(Open311Error::bad_request(format!(
                        "{name}: an empty item (a comma-separated list such as `a,b`, or leave the parameter out)"
                    )));
                }
                items.push(item.to_owned());
            }
        }
        Ok(items)
    }

    /// A whole number in `range` (ASCII digits only), `default` when absent.
    fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<usize>,
        default: usize,
    ) -> Result<usize, Open311Error> {
        let Some(raw) = self.filter(name)? else { return Ok(default) };
        match raw.parse::<usize>() {
            Ok(number) if raw.bytes().all(|b| b.is_ascii_digit()) && range.contains(&number) => Ok(number),
            _ => Err(Open311Error::bad_request(format!(
                "{name}: {} is not a whole number from {} to {}",
                quoted(raw),
                range.start(),
                range.end()
            ))),
        }
    }
}

fn vietnam_offset() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| Utc.fix())
}

/// A W3C date-time in Vietnam's time (`2025-09-15T08:30:00+07:00`).
pub fn w3c(at: DateTime<Utc>) -> String {
    at.with_timezone(&vietnam_offset()).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A W3C date-time (`2025-09-15T08:30:00Z`, `...+07:00`) or a day (`2025-09-15`, in Vietnam's
/// time: its first moment, or its last with `end_of_day`).
/// Years a date filter may name.
const W3C_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

fn parse_w3c(name: &str, raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, Open311Error> {
    let parsed = DateTime::parse_from_rfc3339(raw).map(|at| at.with_timezone(&Utc)).ok().or_else(|| {
        let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
        let time = if end_of_day { day.and_hms_micro_opt(23, 59, 59, 999_999) } else { day.and_hms_opt(0, 0, 0) };
        time.and_then(|t| vietnam_offset().from_local_datetime(&t).single()).map(|local| local.with_timezone(&Utc))
    });
    if let Some(at) = parsed {
        // Dates from chrono's whole range (year -262143 and on) would overflow the window
        // arithmetic below; no petition was received outside these years.
        if !(W3C_YEARS).contains(&at.year()) {
            return Err(Open311Error::bad_request(format!(
                "{name}: `{raw}` is outside the years {} to {}",
                W3C_YEARS.start(),
                W3C_YEARS.end()
            )));
        }
        return Ok(at);
    }
    Err(Open311Error::bad_request(format!(
        "{name}: `{raw}` is not a W3C date-time such as 2025-09-15T08:30:00+07:00 or 2025-09-15T01:30:00Z"
    )))
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .filter(|proto| matches!(*proto, "http" | "https"))
        .unwrap_or("http");
    format!("{scheme}://{host}/open311/v2")
}

// ---------------------------------------------------------------------------------------------
// Handlers.

async fn get_root(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (stem, format) = match split_format(&file) {
        Ok(split) => split,
        Err(error) => return error.into_response_as(Format::Json),
    };
    match stem {
        "discovery" => respond(format, StatusCode::OK, "discovery", &discovery(&headers)),
        "services" => respond(format, StatusCode::OK, "services", &services()),
        "requests" => {
            let listed = match Params::from_raw(&[query.as_deref()]) {
                Ok(params) => list_requests(&state, &params).await,
                Err(error) => Err(error),
            };
            match listed {
                Ok(items) => {
                    respond(format, StatusCode::OK, "service_requests", &Node::List { item: "request", items })
                }
                Err(error) => error.into_response_as(format),
            }
        }
        other => Open311Error::not_found(format!("no resource `{other}`")).into_response_as(format),
    }
}

async fn post_root(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (stem, format) = match split_format(&file) {
        Ok(split) => split,
        Err(error) => return error.into_response_as(Format::Json),
    };
    match stem {
        "requests" => {}
        "discovery" | "services" => {
            return Open311Error::new(StatusCode::METHOD_NOT_ALLOWED, format!("`{stem}` is read with GET"))
                .into_response_as(format);
        }
        other => return Open311Error::not_found(format!("no resource `{other}`")).into_response_as(format),
    }
    // The same per-client limit as the public intake.
    if let Err(problem) = state.intake_limit.check(&headers, &extensions) {
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let mut error = Open311Error::new(status, problem.detail);
        error.retry_after = problem.retry_after_seconds;
        return error.into_response_as(format);
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let description = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the request body is larger than {} bytes", crate::http::MAX_REQUEST_BYTES)
            } else {
                rejection.body_text()
            };
            return Open311Error::new(status, description).into_response_as(format);
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !content_type.is_empty() && !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Open311Error::bad_request(format!(
            "send the request as application/x-www-form-urlencoded, not `{content_type}` (media: send media_url)"
        ))
        .into_response_as(format);
    }
    // Not decoded lossily: a body in another charset would be stored with U+FFFD for its letters.
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(error) => return body_not_utf8(&body, error).into_response_as(format),
    };
    // Some clients send api_key and jurisdiction_id in the query string, the rest in the body.
    let params = match Params::from_raw(&[query.as_deref(), Some(text)]) {
        Ok(params) => params,
        Err(error) => return error.into_response_as(format),
    };
    match create_request(&state, &params).await {
        Ok(node) => respond(format, StatusCode::OK, "service_requests", &node),
        Err(error) => error.into_response_as(format),
    }
}

async fn get_service(Path(file): Path<String>) -> Response {
    let (code, format) = match split_format(&file) {
        Ok(split) => split,
        Err(error) => return error.into_response_as(Format::Json),
    };
    match service_definition(code) {
        Some(node) => respond(format, StatusCode::OK, "service_definition", &node),
        None => Open311Error::not_found(format!("service_code `{code}` not found")).into_response_as(format),
    }
}

async fn get_request(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let (id, format) = match split_format(&file) {
        Ok(split) => split,
        Err(error) => return error.into_response_as(Format::Json),
    };
    let Ok(id) = Uuid::parse_str(id) else {
        return Open311Error::not_found(format!("service_request_id `{id}` not found")).into_response_as(format);
    };
    match one_request(&state, &id).await {
        Ok(Some(node)) => {
            respond(format, StatusCode::OK, "service_requests", &Node::List { item: "request", items: vec![node] })
        }
        Ok(None) => Open311Error::not_found(format!(
            "service_request_id `{id}` not found (a request just sent appears within seconds)"
        ))
        .into_response_as(format),
        Err(error) => error.into_response_as(format),
    }
}

async fn get_token(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let (token, format) = match split_format(&file) {
        Ok(split) => split,
        Err(error) => return error.into_response_as(Format::Json),
    };
    let Some(code) = normalise_tracking_code(token) else {
        return Open311Error::not_found(format!("token `{token}` not found")).into_response_as(format);
    };
    let found = match remembered_token(&code) {
        Some(id) => Ok(Some(id)),
        None => id_of_tracking_code(&state, &code).await,
    };
    match found {
        Ok(Some(id)) => {
            let node =
                Node::Object(vec![("service_request_id", Node::text(id.to_string())), ("token", Node::text(code))]);
            respond(format, StatusCode::OK, "service_requests", &Node::List { item: "request", items: vec![node] })
        }
        Ok(None) => Open311Error::not_found(format!("token `{token}` not found")).into_response_as(format),
        Err(error) => error.into_response_as(format),
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery and services.

fn discovery(headers: &HeaderMap) -> Node {
    let formats = Node::List { item: "format", items: vec![Node::text("text/xml"), Node::text("application/json")] };
    let endpoint = Node::Object(vec![
        ("specification", Node::text(SPECIFICATION)),
        ("url", Node::text(base_url(headers))),
        ("changeset", Node::text(CHANGESET)),
        ("type", Node::text("production")),
        ("formats", formats),
    ]);
    Node::Object(vec![
        ("changeset", Node::text(CHANGESET)),
        ("contact", Node::text("Mặt trận Tổ quốc Việt Nam: kiến nghị, phản ánh của Nhân dân (voxpop)")),
        ("key_service", Node::text("api_key: any non-empty identifier of the sending application; reads need no key")),
        ("endpoints", Node::List { item: "endpoint", items: vec![endpoint] }),
    ])
}

fn services() -> Node {
    let items = Taxonomy::default_embedded()
        .topics()
        .iter()
        .map(|topic| {
            let mut keywords: Vec<&str> = Vec::new();
            for phrase in topic.rules.iter().flat_map(|rule| &rule.phrases) {
                if !keywords.contains(&phrase.as_str()) {
                    keywords.push(phrase);
                }
            }
            Node::Object(vec![
                ("service_code", Node::text(&topic.code)),
                ("service_name", Node::text(&topic.vi)),
                ("description", Node::text(&topic.en)),
                ("metadata", Node::Bool(true)),
                ("type", Node::text("realtime")),
                ("keywords", Node::text(keywords.join(", "))),
                ("group", Node::text(SERVICE_GROUP)),
            ])
        })
        .collect();
    Node::List { item: "service", items }
}

/// The definition of a service: its attributes name the commune of the petition.
fn service_definition(code: &str) -> Option<Node> {
    let topic = Taxonomy::default_embedded().topic(code)?;
    let commune = Node::Object(vec![
        ("variable", Node::Bool(true)),
        ("code", Node::text("commune_code")),
        ("datatype", Node::text("string")),
        // Not required: without it the commune is the one nearest to lat/long.
        ("required", Node::Bool(false)),
        (
            "datatype_description",
            Node::text("Mã xã, phường, đặc khu: 5 chữ số (mã từ 1/7/2025 hoặc mã cũ), ví dụ 00004"),
        ),
        ("order", Node::Int(1)),
        (
            "description",
            Node::text(
                "Xã, phường, đặc khu nơi kiến nghị (commune code, 5 digits); \
                 nếu không có, lấy xã gần vị trí lat/long nhất",
            ),
        ),
    ]);
    let version_values = Node::List {
        item: "value",
        items: vec![
            Node::Object(vec![("key", Node::text("2025")), ("name", Node::text("Mã từ 1/7/2025"))]),
            Node::Object(vec![("key", Node::text("pre2025")), ("name", Node::text("Mã trước 1/7/2025"))]),
        ],
    };
    let version = Node::Object(vec![
        ("variable", Node::Bool(true)),
        ("code", Node::text("commune_code_version")),
        ("datatype", Node::text("singlevaluelist")),
        ("required", Node::Bool(false)),
        ("datatype_description", Node::text("2025 hoặc pre2025; nếu không có, mã đang dùng được ưu tiên")),
        ("order", Node::Int(2)),
        ("description", Node::text("Danh mục của commune_code (which code list commune_code is from)")),
        ("values", version_values),
    ]);
    Some(Node::Object(vec![
        ("service_code", Node::text(&topic.code)),
        ("attributes", Node::List { item: "attribute", items: vec![commune, version] }),
    ]))
}

// ---------------------------------------------------------------------------------------------
// Requests: reading.

/// What a service request shows of a petition.
#[derive(Debug, Clone)]
struct RequestView {
    id: Uuid,
    body: String,
    province_code: String,
    commune_code: String,
    received_at: DateTime<Utc>,
    topic: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
}

impl RequestView {
    /// The public view of a petition: numbers in the text masked, no contact.
    fn of_petition(petition: &Petition) -> RequestView {
        let masked = voxpop_schema::privacy::mask_petition(petition);
        RequestView {
            id: masked.id,
            body: masked.body,
            province_code: masked.province_code,
            commune_code: masked.commune_code,
            received_at: masked.received_at,
            topic: masked.topic,
            lat: masked.lat,
            lon: masked.lon,
        }
    }

    /// From the index alone (no coordinates there).
    fn of_indexed(indexed: &IndexedPetition) -> RequestView {
        RequestView {
            id: indexed.id,
            body: voxpop_schema::privacy::mask_numbers(&indexed.body),
            province_code: indexed.province_code.clone(),
            commune_code: indexed.commune_code.clone(),
            received_at: indexed.received_at,
            topic: indexed.topic.clone(),
            lat: None,
            lon: None,
        }
    }
}

fn round_coordinate(value: Option<f64>) -> Option<f64> {
    let scale = 10f64.powi(COORDINATE_DECIMALS);
    value.filter(|v| v.is_finite()).map(|v| (v * scale).round() / scale)
}

fn request_node(view: &RequestView, status: &RequestStatus) -> Node {
    let units = Units::embedded();
    let topic = view.topic.as_deref().and_then(|code| Taxonomy::default_embedded().topic(code));
    let commune = units.commune(&view.commune_code).map(|c| c.name.as_str());
    let province = units.province(&view.province_code).map(|p| p.name.as_str());
    let address = match (commune, province) {
        (Some(commune), Some(province)) => format!("{commune}, {province}"),
        _ => view.commune_code.clone(),
    };
    Node::Object(vec![
        ("service_request_id", Node::text(view.id.to_string())),
        ("status", Node::text(if status.open { "open" } else { "closed" })),
        ("status_notes", Node::optional_text(status.status_notes.clone())),
        ("service_name", Node::optional_text(topic.map(|t| t.vi.clone()))),
        ("service_code", Node::optional_text(topic.map(|t| t.code.clone()))),
        ("description", Node::text(&view.body)),
        ("agency_responsible", Node::text(&status.agency_responsible)),
        ("service_notice", Node::Null),
        ("requested_datetime", Node::text(w3c(view.received_at))),
        ("updated_datetime", Node::text(w3c(status.updated_datetime.unwrap_or(view.received_at)))),
        ("expected_datetime", Node::optional_text(status.expected_datetime.map(w3c))),
        ("address", Node::text(address)),
        ("address_id", Node::Null),
        ("zipcode", Node::Null),
        ("lat", Node::optional_float(round_coordinate(view.lat))),
        ("long", Node::optional_float(round_coordinate(view.lon))),
        ("media_url", Node::Null),
        (
            "extended_attributes",
            Node::Object(vec![
                ("commune_code", Node::text(&view.commune_code)),
                ("province_code", Node::text(&view.province_code)),
                ("handling_state", Node::text(&status.state)),
            ]),
        ),
    ])
}

/// One petition as a service request; `None` when the lake does not have it (yet).
async fn one_request(state: &AppState, id: &Uuid) -> Result<Option<Node>, Open311Error> {
    // The index knows when the petition was received, which narrows the lake scan to its week.
    let received_at = match state.index.get(id) {
        Ok(found) => found.map(|hit| hit.received_at),
        Err(err) => return Err(Open311Error::internal(&err)),
    };
    let petition = match state.queries.petition(id, received_at).await {
        Ok(Some(petition)) => petition,
        Ok(None) => return Ok(None),
        Err(err) => return Err(Open311Error::internal(&err)),
    };
    let view = RequestView::of_petition(&petition);
    let status = request_status(
        state,
        &view.id,
        &view.commune_code,
        &view.province_code,
        view.received_at,
        view.topic.as_deref(),
    )
    .await;
    Ok(Some(request_node(&view, &status)))
}

/// `GET requests`: by ids, or by service, dates and status, newest first, `page_size` a page
/// (`page`, from 1).
async fn list_requests(state: &AppState, params: &Params) -> Result<Vec<Node>, Open311Error> {
    // Every parameter is read, and any bad one refused, before the ids override the others.
    let ids = params.list("service_request_id")?;
    let taxonomy = Taxonomy::default_embedded();
    let codes = params.list("service_code")?;
    let unknown: Vec<&String> = codes.iter().filter(|code| taxonomy.topic(code).is_none()).collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = taxonomy.topics().iter().map(|t| t.code.as_str()).collect();
        return Err(Open311Error::bad_request(format!(
            "service_code: unknown `{}`, expected one of {}",
            unknown.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("`, `"),
            known.join(", ")
        )));
    }
    let start = params.filter("start_date")?.map(|raw| parse_w3c("start_date", raw, false)).transpose()?;
    let end = params.filter("end_date")?.map(|raw| parse_w3c("end_date", raw, true)).transpose()?;
    let window = Duration::days(DEFAULT_WINDOW_DAYS);
    let (from, to) = match (start, end) {
        (None, None) => (Utc::now() - window, None),
        (Some(start), end) => (start, end),
        (None, Some(end)) => (end - window, Some(end)),
    };
    if let Some(to) = to
        && to < from
    {
        return Err(Open311Error::bad_request("end_date: is before start_date"));
    }
    let mut want_open = false;
    let mut want_closed = false;
    let statuses = params.list("status")?;
    for status in &statuses {
        match status.as_str() {
            "open" => want_open = true,
            "closed" => want_closed = true,
            other => return Err(Open311Error::bad_request(format!("status: `{other}` is neither open nor closed"))),
        }
    }
    if statuses.is_empty() {
        (want_open, want_closed) = (true, true);
    }
    let limit = params.number("page_size", 1..=MAX_REQUESTS, MAX_REQUESTS)?;
    // Pages reach as deep as the index lists: its farthest offset.
    let last_page = (voxpop_index::MAX_OFFSET / limit).max(1);
    let page = params.number("page", 1..=last_page, 1)?;
    if !ids.is_empty() {
        // GeoReport: ids override every other filter.
        if ids.len() > MAX_REQUESTS {
            return Err(Open311Error::bad_request(format!("service_request_id: at most {MAX_REQUESTS} ids at once")));
        }
        let mut nodes = Vec::new();
        let mut seen = HashSet::new();
        for raw in &ids {
            // An id that is no petition id is not found, like an unknown one.
            if let Ok(id) = Uuid::parse_str(raw)
                && seen.insert(id)
                && let Some(node) = one_request(state, &id).await?
            {
                nodes.push(node);
            }
        }
        return Ok(nodes);
    }
    // The requests of every page up to this one, of which the last page is kept.
    let skip = (page - 1) * limit;
    let wanted = skip + limit;
    let topics: Vec<Option<String>> =
        if codes.is_empty() { vec![None] } else { dedup(codes).into_iter().map(Some).collect() };
    // `to` of the index is exclusive, end_date inclusive.
    let to = to.map(|to| to + Duration::microseconds(1));
    let mut selected: Vec<(IndexedHit, RequestStatus)> = Vec::new();
    for topic in topics {
        let base = SearchRequest { topic, from: Some(from), to, limit: PAGE, ..SearchRequest::default() };
        let mut taken = 0;
        let mut offset = 0;
        'pages: loop {
            let request = SearchRequest { offset, ..base.clone() };
            let index = state.index.clone();
            let results = match tokio::task::spawn_blocking(move || index.search(&request)).await {
                Ok(Ok(results)) => results,
                Ok(Err(err)) => return Err(Open311Error::internal(&err)),
                Err(err) => return Err(Open311Error::internal(&err)),
            };
            let count = results.hits.len();
            for hit in results.hits {
                let status = request_status(
                    state,
                    &hit.id,
                    &hit.commune_code,
                    &hit.province_code,
                    hit.received_at,
                    hit.topic.as_deref(),
                )
                .await;
                if (status.open && want_open) || (!status.open && want_closed) {
                    selected.push((IndexedHit { id: hit.id, received_at: hit.received_at }, status));
                    taken += 1;
                    if taken >= wanted {
                        break 'pages;
                    }
                }
            }
            offset += PAGE;
            if count < PAGE || offset > voxpop_index::MAX_OFFSET {
                break;
            }
        }
    }
    // Several services: merged newest first.
    selected.sort_by(|a, b| b.0.received_at.cmp(&a.0.received_at).then_with(|| b.0.id.cmp(&a.0.id)));
    selected.dedup_by_key(|(hit, _)| hit.id);
    selected.truncate(wanted);
    selected.drain(..skip.min(selected.len()));
    let hits: Vec<&IndexedHit> = selected.iter().map(|(hit, _)| hit).collect();
    let mut petitions = petitions_by_id(state, &hits).await?;
    let mut nodes = Vec::with_capacity(selected.len());
    for (hit, status) in &selected {
        let view = match petitions.remove(&hit.id) {
            Some(petition) => RequestView::of_petition(&petition),
            // Indexed but not read back from the lake: what the index keeps.
            None => match state.index.get(&hit.id) {
                Ok(Some(indexed)) => RequestView::of_indexed(&indexed),
                Ok(None) => continue,
                Err(err) => return Err(Open311Error::internal(&err)),
            },
        };
        nodes.push(request_node(&view, status));
    }
    Ok(nodes)
}

/// What the listing keeps of a search hit.
#[derive(Debug, Clone)]
struct IndexedHit {
    id: Uuid,
    received_at: DateTime<Utc>,
}

fn dedup(values: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values.into_iter().filter(|value| seen.insert(value.clone())).collect()
}

/// The petitions of these hits from the lake, in one query per chunk (the weeks of the hits
/// narrow the scan to their partitions).
async fn petitions_by_id(state: &AppState, hits: &[&IndexedHit]) -> Result<HashMap<Uuid, Petition>, Open311Error> {
    let mut found = HashMap::new();
    if hits.is_empty() {
        return Ok(found);
    }
    let ctx = match state.queries.session().await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return Ok(found),
        Err(err) => return Err(Open311Error::internal(&err)),
    };
    for chunk in hits.chunks(LAKE_CHUNK) {
        // Only our own UUIDs and ISO weeks go into the statement: nothing a caller typed.
        let weeks: Vec<String> = dedup(chunk.iter().flat_map(|hit| weeks_holding(hit.received_at)).collect());
        let in_list =
            |values: &mut dyn Iterator<Item = String>| values.map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT * FROM {TABLE_NAME} WHERE {PARTITION_COLUMN} IN ({}) AND id IN ({})",
            in_list(&mut weeks.into_iter()),
            in_list(&mut chunk.iter().map(|hit| hit.id.to_string())),
        );
        let frame = ctx.sql(&sql).await.map_err(|err| Open311Error::internal(&err))?;
        let batches = frame.collect().await.map_err(|err| Open311Error::internal(&err))?;
        for batch in &batches {
            let petitions =
                voxpop_schema::petition::from_record_batch(batch).map_err(|err| Open311Error::internal(&err))?;
            for petition in petitions {
                found.insert(petition.id, petition);
            }
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------------
// Tokens.

struct TokenMemory {
    ids: HashMap<String, Uuid>,
    order: VecDeque<String>,
}

fn token_memory() -> &'static Mutex<TokenMemory> {
    static MEMORY: OnceLock<Mutex<TokenMemory>> = OnceLock::new();
    MEMORY.get_or_init(|| Mutex::new(TokenMemory { ids: HashMap::new(), order: VecDeque::new() }))
}

fn remember_token(token: &str, id: Uuid) {
    let mut memory = token_memory().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if memory.ids.insert(token.to_owned(), id).is_none() {
        memory.order.push_back(token.to_owned());
    }
    while memory.order.len() > REMEMBERED_TOKENS {
        if let Some(oldest) = memory.order.pop_front() {
            memory.ids.remove(&oldest);
        }
    }
}

fn remembered_token(token: &str) -> Option<Uuid> {
    token_memory().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).ids.get(token).copied()
}

/// The petition with this tracking code (already normalised: only Crockford characters and
/// dashes, safe to quote).
async fn id_of_tracking_code(state: &AppState, code: &str) -> Result<Option<Uuid>, Open311Error> {
    let ctx = match state.queries.session().await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return Ok(None),
        Err(err) => return Err(Open311Error::internal(&err)),
    };
    let sql = format!("SELECT id FROM {TABLE_NAME} WHERE tracking_code = '{code}' LIMIT 1");
    let frame = ctx.sql(&sql).await.map_err(|err| Open311Error::internal(&err))?;
    let batches = frame.collect().await.map_err(|err| Open311Error::internal(&err))?;
    for batch in &batches {
        let ids = voxpop_queries::string_column(batch, "id").map_err(|err| Open311Error::internal(&err))?;
        if let Some(id) = ids.into_iter().flatten().find_map(|id| Uuid::parse_str(&id).ok()) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Requests: creating.

/// Great-circle distance in km.
fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().min(1.0).asin()
}

/// The 2025 commune whose centre is nearest to the point, and how far that centre is (km).
pub fn nearest_commune(lat: f64, lon: f64) -> Option<(&'static voxpop_schema::Commune, f64)> {
    Units::embedded()
        .communes()
        .iter()
        .filter_map(|commune| Some((commune, distance_km(lat, lon, commune.lat?, commune.lon?))))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// A coordinate of `POST requests`: a finite number within `-limit..=limit` (90 for `lat`, 180
/// for `long`); whether it lies in Vietnam is intake's to say.
fn parse_coordinate(name: &str, raw: &str, limit: f64) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(value) if value.is_finite() && (-limit..=limit).contains(&value) => Ok(value),
        Ok(value) if value.is_finite() => Err(format!("{name}: {} is outside -{limit} to {limit}", quoted(raw))),
        _ => Err(format!("{name}: {} is not a number", quoted(raw))),
    }
}

/// A field of a `POST requests` form ([`Params::get`]), its problem gathered with the others.
fn field<'p>(params: &'p Params, name: &str, problems: &mut Vec<String>) -> Option<&'p str> {
    params.get(name).unwrap_or_else(|error| {
        problems.extend(error.descriptions);
        None
    })
}

/// A field that must be there, `name: required` gathered when it is not.
fn required<'p>(params: &'p Params, name: &str, problems: &mut Vec<String>) -> Option<&'p str> {
    let known_problems = problems.len();
    let value = field(params, name, problems);
    if value.is_none() && problems.len() == known_problems {
        problems.push(format!("{name}: required"));
    }
    value
}

/// An absolute `http` or `https` URL with a host, as GeoReport's `media_url` is.
fn is_web_address(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/')) && !text.contains(char::is_whitespace)
}

/// The title of a petition sent here: the service's name, then the start of the description,
/// cut at a word boundary and never inside a phone or ID number or an email address. The title
/// is stored, and masking (which recognises only whole numbers and addresses) would show the
/// first part of one cut in two ("0977 888…" is 7 digits), so the cut moves before it.
fn title_of(service_name: &str, description: &str) -> String {
    let flat: String = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= TITLE_EXCERPT_CHARS {
        return format!("{service_name}: {flat}");
    }
    let mut end = flat.char_indices().nth(TITLE_EXCERPT_CHARS).map_or(flat.len(), |(at, _)| at);
    // At a word boundary where there is one.
    if let Some(space) = flat[..end].rfind(' ')
        && space > 0
    {
        end = space;
    }
    let mut spans = Vec::new();
    voxpop_schema::privacy::personal_data_spans(&flat, &mut spans);
    if let Some(split) = spans.iter().find(|span| span.range.start < end && end < span.range.end) {
        end = split.range.start;
    }
    let excerpt = flat[..end].trim_end();
    if excerpt.is_empty() {
        return format!("{service_name}: …");
    }
    format!("{service_name}: {excerpt}…")
}

/// `POST requests`: the petition through intake; the answer names its id and token.
async fn create_request(state: &AppState, params: &Params) -> Result<Node, Open311Error> {
    if params.get("api_key")?.is_none() {
        return Err(Open311Error::new(
            StatusCode::FORBIDDEN,
            "api_key: required (any non-empty identifier of the sending application)",
        ));
    }
    let mut problems = Vec::new();
    let topic = match required(params, "service_code", &mut problems) {
        None => None,
        Some(code) => match Taxonomy::default_embedded().topic(code) {
            Some(topic) => Some(topic),
            None => {
                problems.push(format!("service_code: `{code}` not found (GET services.json lists them)"));
                None
            }
        },
    };
    let description = required(params, "description", &mut problems);
    let raw_lat = field(params, "lat", &mut problems);
    let raw_lon = field(params, "long", &mut problems);
    let mut coordinate = |name: &str, raw: Option<&str>, limit: f64| {
        raw.and_then(|raw| parse_coordinate(name, raw, limit).map_err(|problem| problems.push(problem)).ok())
    };
    let (lat, lon) = (coordinate("lat", raw_lat, 90.0), coordinate("long", raw_lon, 180.0));
    // One without the other is no position, whether or not a commune is named.
    match (raw_lat, raw_lon) {
        (Some(_), None) => problems.push("long: required with lat".to_owned()),
        (None, Some(_)) => problems.push("lat: required with long".to_owned()),
        _ => {}
    }
    let known_problems = problems.len();
    let mut commune_code = field(params, "attribute[commune_code]", &mut problems).map(str::to_owned);
    let commune_unreadable = problems.len() > known_problems;
    match (lat, lon) {
        _ if commune_code.is_some() || commune_unreadable => {}
        (Some(lat), Some(lon)) => match nearest_commune(lat, lon) {
            Some((commune, km)) if km <= MAX_NEAREST_KM => commune_code = Some(commune.code.clone()),
            _ => problems.push(format!(
                "attribute[commune_code]: required, no commune lies within {MAX_NEAREST_KM} km of lat/long"
            )),
        },
        // Unless lat or long was there but unreadable or alone (already reported).
        _ if raw_lat.is_none() && raw_lon.is_none() => problems.push(
            "attribute[commune_code]: required unless lat and long are given (the nearest commune is taken)".to_owned(),
        ),
        _ => {}
    }
    let version = field(params, "attribute[commune_code_version]", &mut problems);
    let address = field(params, "address_string", &mut problems);
    let media = field(params, "media_url", &mut problems);
    if let Some(media) = media
        && !is_web_address(media)
    {
        problems.push(format!("media_url: {} is not an http or https URL", quoted(media)));
    }
    let last_name = field(params, "last_name", &mut problems);
    let first_name = field(params, "first_name", &mut problems);
    let phone = field(params, "phone", &mut problems);
    let email = field(params, "email", &mut problems);
    if !problems.is_empty() {
        return Err(Open311Error { status: StatusCode::BAD_REQUEST, descriptions: problems, retry_after: None });
    }
    let (Some(topic), Some(description), Some(commune_code)) = (topic, description, commune_code) else {
        return Err(Open311Error::bad_request("service_code, description and a commune are required"));
    };
    let mut body = description.to_owned();
    if let Some(address) = address {
        body.push_str(&format!("\n\nĐịa chỉ: {address}"));
    }
    if let Some(media) = media {
        body.push_str(&format!("\n\nẢnh, tệp đính kèm: {media}"));
    }
    let name = [last_name, first_name].into_iter().flatten().collect::<Vec<_>>().join(" ");
    let mut contact = serde_json::Map::new();
    if !name.is_empty() {
        contact.insert("name".to_owned(), name.into());
    }
    if let Some(phone) = phone {
        contact.insert("phone".to_owned(), phone.into());
    }
    if let Some(email) = email {
        contact.insert("email".to_owned(), email.into());
    }
    let mut submission = serde_json::Map::new();
    submission.insert("title".to_owned(), title_of(&topic.vi, description).into());
    submission.insert("body".to_owned(), body.into());
    // The commune in force that intake files the petition under (an old code resolved).
    let code_version = match version {
        Some("2025") => Some(voxpop_schema::CodeVersion::V2025),
        Some("pre2025") => Some(voxpop_schema::CodeVersion::Pre2025),
        _ => None,
    };
    let agency_commune = Units::embedded()
        .resolve_commune(&commune_code, code_version)
        .map_or_else(|_| commune_code.clone(), |resolved| resolved.commune.code.clone());
    submission.insert("commune_code".to_owned(), commune_code.into());
    if let Some(version) = version {
        submission.insert("commune_code_version".to_owned(), version.into());
    }
    submission.insert("channel".to_owned(), "open311".into());
    if let (Some(lat), Some(lon)) = (lat, lon) {
        submission.insert("lat".to_owned(), lat.into());
        submission.insert("lon".to_owned(), lon.into());
    }
    if !contact.is_empty() {
        submission.insert("contact".to_owned(), contact.into());
    }
    let bytes =
        serde_json::to_vec(&serde_json::Value::Object(submission)).map_err(|err| Open311Error::internal(&err))?;
    let receipt = match state.intake.submit_json(&bytes).await {
        Ok(Accepted::Created(receipt)) | Ok(Accepted::Duplicate(receipt)) => receipt,
        Err(IntakeError::Invalid(errors)) => return Err(invalid(&errors)),
        Err(IntakeError::Unavailable(reason)) => {
            let mut error =
                Open311Error::new(StatusCode::SERVICE_UNAVAILABLE, format!("the request was not accepted: {reason}"));
            error.retry_after = Some(5);
            return Err(error);
        }
    };
    remember_token(&receipt.tracking_code, receipt.id);
    let agency = front_committee(&agency_commune);
    let notice = format!("Đã tiếp nhận kiến nghị. Mã tra cứu: {}. Đơn vị xem xét: {agency}.", receipt.tracking_code);
    Ok(Node::List {
        item: "request",
        items: vec![Node::Object(vec![
            ("service_request_id", Node::text(receipt.id.to_string())),
            ("token", Node::text(&receipt.tracking_code)),
            ("service_notice", Node::text(notice)),
            ("account_id", Node::Null),
        ])],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open311_forms_decode_like_browsers_send_them() {
        let pairs = decode_form(
            "a=1&attribute%5Bcommune_code%5D=00004&d=%C4%90%C6%B0%E1%BB%9Dng+h%E1%BB%8Fng&e&=x&p=%zz%4&&r=%EF%BF%BD",
        )
        .unwrap();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("attribute[commune_code]".into(), "00004".into()),
                ("d".into(), "Đường hỏng".into()),
                ("e".into(), String::new()),
                (String::new(), "x".into()),
                ("p".into(), "%zz%4".into()),
                // U+FFFD sent as such is text like any other.
                ("r".into(), "\u{FFFD}".into()),
            ]
        );
        let params = Params::from_raw(&[Some("service_code=land,%20health&service_code=education")]).unwrap();
        assert_eq!(params.list("service_code").unwrap(), vec!["land", "health", "education"]);
    }

    fn description(error: Open311Error) -> String {
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error:?}");
        error.descriptions.join("; ")
    }

    #[test]
    fn open311_bytes_that_are_not_utf8_are_named() {
        // A lone continuation byte, a Latin-1 "é", an overlong slash: never text with U+FFFD.
        for raw in ["description=%FF", "description=caf%E9", "description=%C0%AF", "description=ok%C4"] {
            let error = Params::from_raw(&[Some("api_key=k"), Some(raw)]).unwrap_err();
            assert_eq!(description(error), "description: not UTF-8 once percent-decoded (send the form in UTF-8)");
        }
        let error = decode_form("a%FF=1&b=%FE").unwrap_err();
        assert_eq!(error.descriptions.len(), 2, "{error:?}");
        assert!(error.descriptions[0].starts_with("`a%FF`: the parameter name is not UTF-8"), "{error:?}");
        assert!(error.descriptions[1].starts_with("b: "), "{error:?}");
        // A raw body in another charset: the byte, and the parameter it is in.
        let not_utf8 = |body: &[u8]| body_not_utf8(body, std::str::from_utf8(body).unwrap_err());
        let error = not_utf8(b"service_code=land&description=Ph\xe1t".as_slice());
        assert_eq!(
            description(error),
            "description: the request body is not valid UTF-8 (byte 32); send the form in UTF-8"
        );
        let error = not_utf8(b"\xff=1".as_slice());
        assert!(description(error).starts_with("the request body is not valid UTF-8 (byte 0)"));
    }

    #[test]
    fn open311_single_parameters_are_given_once() {
        // Twice in the query, in the body, or once in each; a repeat with an empty value too.
        for parts in [
            [Some("start_date=2025-01-01&start_date=2025-02-01"), None],
            [None, Some("start_date=2025-01-01&start_date=2025-02-01")],
            [Some("start_date=2025-01-01"), Some("start_date=2025-02-01")],
            [Some("start_date="), Some("start_date=2025-02-01")],
        ] {
            let params = Params::from_raw(&parts).unwrap();
            let error = params.single("start_date").unwrap_err();
            assert_eq!(description(error), "start_date: given more than once, with different values (send it once)");
        }
        // The same value again is not ambiguous (api_key in the query and in the body).
        let params = Params::from_raw(&[Some("api_key=k"), Some("api_key=%20k&description=x")]).unwrap();
        assert_eq!(params.get("api_key").unwrap(), Some("k"));
        // Blank form fields are absent; an empty filter is refused.
        let params = Params::from_raw(&[Some("email=&service_code=&page=%20")]).unwrap();
        assert_eq!(params.get("email").unwrap(), None);
        assert!(description(params.filter("page").unwrap_err()).starts_with("page: empty"));
        assert!(description(params.list("service_code").unwrap_err()).starts_with("service_code: an empty item"));
        let params = Params::from_raw(&[Some("status=open,&service_request_id=a&service_request_id=b")]).unwrap();
        assert!(description(params.list("status").unwrap_err()).starts_with("status: an empty item"));
        assert_eq!(params.list("service_request_id").unwrap(), vec!["a", "b"]);
        // Control characters other than line breaks have no place in a parameter.
        let params = Params::from_raw(&[Some("first_name=An%00&description=a%0Ab")]).unwrap();
        assert_eq!(
            description(params.get("first_name").unwrap_err()),
            "first_name: holds the control character U+0000"
        );
        assert_eq!(params.get("description").unwrap(), Some("a\nb"));
    }

    #[test]
    fn open311_numbers_are_in_range() {
        let number = |raw: &str| Params::from_raw(&[Some(raw)]).unwrap().number("page_size", 1..=MAX_REQUESTS, 7);
        assert_eq!(number("").unwrap(), 7);
        assert_eq!(number("page_size=1").unwrap(), 1);
        assert_eq!(number("page_size=%201000%20").unwrap(), 1000);
        // `+` in a form is a space: `%2B5` is what `+5` is sent as.
        assert_eq!(number("page_size=+5").unwrap(), 5);
        for (sent, bad) in [("-1", "-1"), ("0", "0"), ("abc", "abc"), ("1001", "1001"), ("%2B5", "+5"), ("1.5", "1.5")]
            .into_iter()
            .chain([("1e3", "1e3"), ("99999999999999999999999", "99999999999999999999999")])
        {
            let error = number(&format!("page_size={sent}")).unwrap_err();
            assert_eq!(description(error), format!("page_size: `{bad}` is not a whole number from 1 to 1000"));
        }
    }

    #[test]
    fn open311_coordinates_and_media() {
        assert_eq!(parse_coordinate("lat", "21.0386", 90.0), Ok(21.0386));
        assert_eq!(parse_coordinate("lat", "91", 90.0), Err("lat: `91` is outside -90 to 90".to_owned()));
        assert_eq!(parse_coordinate("long", "NaN", 180.0), Err("long: `NaN` is not a number".to_owned()));
        assert_eq!(parse_coordinate("long", "inf", 180.0), Err("long: `inf` is not a number".to_owned()));
        assert!(is_web_address("https://example.vn/a.jpg") && is_web_address("HTTP://example.vn"));
        assert_eq!(quoted("abc"), "`abc`");
        assert_eq!(quoted(&"ờ".repeat(100)), format!("`{}…`", "ờ".repeat(40)));
        for bad in ["example.vn/a.jpg", "javascript:alert(1)", "https://", "http:///x", "https://a b", "ftp://x"] {
            assert!(!is_web_address(bad), "{bad}");
        }
    }

    #[test]
    fn open311_xml_is_escaped_and_keeps_order() {
        let node = Node::List {
            item: "error",
            items: vec![Node::Object(vec![
                ("code", Node::Int(400)),
                ("description", Node::text("a <b> & \"c\" 'd'\u{1}")),
                ("lat", Node::Null),
            ])],
        };
        assert_eq!(
            to_xml("errors", &node),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<errors><error><code>400</code>\
             <description>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;</description><lat/></error></errors>\n"
        );
        let json =
            serde_json::to_string(&Node::Object(vec![("z", Node::Int(1)), ("a", Node::Float(f64::NAN))])).unwrap();
        assert_eq!(json, r#"{"z":1,"a":null}"#);
    }

    #[test]
    fn open311_formats_and_dates() {
        assert_eq!(split_format("services.json").unwrap(), ("services", Format::Json));
        assert_eq!(split_format("requests.XML").unwrap(), ("requests", Format::Xml));
        assert_eq!(split_format("services.csv").unwrap_err().status, StatusCode::NOT_FOUND);
        assert_eq!(split_format("services").unwrap_err().status, StatusCode::NOT_FOUND);
        let at = parse_w3c("start_date", "2025-09-15T01:30:00Z", false).unwrap();
        assert_eq!(w3c(at), "2025-09-15T08:30:00+07:00");
        let day = parse_w3c("start_date", "2025-09-15", false).unwrap();
        assert_eq!(w3c(day), "2025-09-15T00:00:00+07:00");
        assert!(parse_w3c("end_date", "15/09/2025", true).is_err());
        // chrono parses years far outside any petition's; they are refused before any arithmetic.
        for extreme in ["-262143-01-01", "262142-12-31", "1969-12-31", "+10000-01-01T00:00:00Z"] {
            let err = parse_w3c("end_date", extreme, true).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{extreme}");
        }
    }

    #[test]
    fn open311_status_mapping_and_agency() {
        for state in ["received", "accepted", "assigned", "in_progress", "reopened"] {
            assert_eq!(is_open_state(state), Some(true), "{state}");
        }
        for state in ["declined", "answered", "closed"] {
            assert_eq!(is_open_state(state), Some(false), "{state}");
        }
        assert_eq!(is_open_state("lost"), None);
        assert_eq!(front_committee("00004"), "Ủy ban MTTQ Việt Nam phường Ba Đình");
        assert_eq!(front_committee("21529"), "Ủy ban MTTQ Việt Nam xã Ba Vì");
    }

    #[test]
    fn open311_nearest_commune_of_a_point() {
        // The centre of Phường Ba Đình (21.0386, 105.838) and a point 300 m from it.
        let (commune, km) = nearest_commune(21.0386, 105.838).unwrap();
        assert_eq!((commune.code.as_str(), km < 0.01), ("00004", true));
        assert_eq!(nearest_commune(21.0400, 105.8395).unwrap().0.code, "00004");
        let (_, far) = nearest_commune(0.0, 0.0).unwrap();
        assert!(far > MAX_NEAREST_KM);
    }

    #[test]
    fn open311_titles_start_with_the_service() {
        assert_eq!(title_of("Giáo dục", "Trường  thiếu\nphòng học"), "Giáo dục: Trường thiếu phòng học");
        let long = "ổ gà ".repeat(40);
        let title = title_of("Đường sá và hạ tầng", &long);
        assert!(title.starts_with("Đường sá và hạ tầng: ổ gà") && title.ends_with("gà…"), "{title}");
        assert!(title.chars().count() <= "Đường sá và hạ tầng: ".chars().count() + TITLE_EXCERPT_CHARS + 1);
    }

    #[test]
    fn open311_titles_are_not_cut_inside_a_number_or_an_address() {
        let lead = "Đường vào xóm sạt lở nghiêm trọng, đề nghị xã kiểm tra, liên hệ tran mu ";
        // The cut at 80 characters, moved back to a space, falls inside the phone ("0977 888"):
        // the title stops before it.
        for contact in ["0977 888 999 để biết thêm", "0977888999 nhé", "tran.mu.nguyen@example.vn nhé"] {
            let title = title_of("Giao thông", &format!("{lead}{contact}"));
            assert_eq!(title, "Giao thông: Đường vào xóm sạt lở nghiêm trọng, đề nghị xã kiểm tra, liên hệ tran mu…");
        }
        // A whole number before the cut stays in the title (masking hides it where it is shown).
        let title = title_of("Giao thông", &format!("0977888999 {}", "ổ gà ".repeat(30)));
        assert!(title.starts_with("Giao thông: 0977888999 ổ gà") && title.ends_with('…'), "{title}");
        // A description whose first word is an address longer than the cut keeps only the service.
        let address = format!("{}@example.vn", "nguyen.van.an.".repeat(7));
        assert_eq!(title_of("Giao thông", &format!("{address} {}", "ổ gà ".repeat(30))), "Giao thông: …");
        // Every service's name but one leads the rules to its own topic ("Y tế và bảo hiểm" holds
        // no rule phrase of `health`: such a request is filed by its text alone).
        let taxonomy = Taxonomy::default_embedded();
        let missed: Vec<&str> = taxonomy
            .topics()
            .iter()
            .filter(|topic| !taxonomy.matching(&topic.vi).iter().any(|t| t.code == topic.code))
            .map(|topic| topic.code.as_str())
            .collect();
        assert!(missed.iter().all(|code| *code == "health"), "{missed:?}");
    }

    #[test]
    fn open311_service_definitions() {
        let Some(Node::Object(fields)) = service_definition("land") else { panic!("land is a service") };
        assert_eq!(fields[0], ("service_code", Node::text("land")));
        assert!(service_definition("nope").is_none());
        let Node::List { items, .. } = services() else { panic!("a list") };
        assert_eq!(items.len(), Taxonomy::default_embedded().topics().len());
    }
}
