//! RFC 9457 problem responses (`application/problem+json`) naming the fields at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use voxpop_schema::FieldError;

/// The most field errors one problem lists; the detail counts the rest.
pub const MAX_LISTED_ERRORS: usize = 100;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Every field at fault (`field` is a dotted path; `pointer` the JSON Pointer to it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// With 409 on a petition: the actions its state allows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// With 409 on a petition: its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip)]
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemField {
    pub field: String,
    pub pointer: String,
    pub code: String,
    pub message: String,
}

impl From<&FieldError> for ProblemField {
    fn from(error: &FieldError) -> Self {
        let pointer =
            if error.field.is_empty() { "#".to_owned() } else { format!("#/{}", error.field.replace('.', "/")) };
        ProblemField { field: error.field.clone(), pointer, code: error.code.clone(), message: error.message.clone() }
    }
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://voxpop.vn/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            allowed: Vec::new(),
            state: None,
            retry_after_seconds: None,
        }
    }

    /// 422 (or 400 for a body that is not JSON at all) with every field error.
    pub fn invalid(errors: &[FieldError]) -> Problem {
        let unparsable = errors
            .iter()
            .any(|e| e.field.is_empty() && matches!(e.code.as_str(), "malformed_json" | "invalid_utf8" | "type"));
        let status = if unparsable { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        // Every bad field is named, up to a bound: a body of 80,000 bad columns or keys would
        // otherwise be answered with a problem many times its own size.
        let listed = &errors[..errors.len().min(MAX_LISTED_ERRORS)];
        let mut detail = listed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        if errors.len() > listed.len() {
            detail.push_str(&format!("; and {} more problems not listed", errors.len() - listed.len()));
        }
        let mut problem = Problem::new(status, "validation", "The request has invalid fields", detail);
        problem.errors = listed.iter().map(ProblemField::from).collect();
        problem
    }

    /// 400 for one bad query or path parameter.
    pub fn bad_parameter(field: &str, message: impl Into<String>) -> Problem {
        Problem::invalid(&[FieldError::new(field, "invalid", message)]).with_status(StatusCode::BAD_REQUEST)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503 with `Retry-After`: nothing was accepted, try again.
    pub fn unavailable(detail: impl Into<String>, retry_after_seconds: u64) -> Problem {
        let mut problem =
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service temporarily unavailable", detail);
        problem.retry_after_seconds = Some(retry_after_seconds);
        problem
    }

    /// 500 for our own faults; the detail is logged, not shown.
    pub fn internal(error: &dyn std::fmt::Display) -> Problem {
        tracing::error!(error = %error, "internal error");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "")
    }

    /// The problem naming one field in `errors`: what a single refused header, parameter or
    /// member says (field, code and message).
    pub fn naming(mut self, field: &str, code: &str, message: impl Into<String>) -> Problem {
        self.errors = vec![ProblemField::from(&FieldError::new(field, code, message))];
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Problem {
        self.status = status.as_u16();
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The longest rejection text read back: axum's sentences are short.
const REJECTION_TEXT_LIMIT: usize = 16 * 1024;

/// Whether `response` is one of axum's own rejections: a client error whose body is a
/// `text/plain` sentence (a path segment that is not UTF-8, a query string of the wrong type, a
/// body over the size limit, ...). Our handlers answer errors as problems or as pages, never so.
fn is_plain_rejection(response: &Response) -> bool {
    response.status().is_client_error()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/plain"))
}

/// The text of a rejection found by [`is_plain_rejection`], or `None` for any other response
/// (given back untouched).
pub async fn rejection_text(response: Response) -> Result<(axum::http::response::Parts, String), Response> {
    if !is_plain_rejection(&response) {
        return Err(response);
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REJECTION_TEXT_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    Ok((parts, text))
}

/// The parameter an axum rejection names, if it names one: "Invalid UTF-8 in `id`" (a path
/// parameter), "Failed to deserialize query string: limit: invalid digit ..." (a query
/// parameter, by serde's path).
pub fn rejected_field(text: &str) -> Option<String> {
    if let Some((_, rest)) = text.split_once(" in `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return Some(name.to_owned());
    }
    let (_, rest) = text.split_once(": ")?;
    let (path, _) = rest.split_once(": ")?;
    let is_path =
        !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
    is_path.then(|| path.to_owned())
}

/// Turns axum's `text/plain` rejections into problems, keeping their status and naming the
/// field where the sentence names one, so that every error of the API is
/// `application/problem+json` (a router layer: `axum::middleware::map_response`).
pub async fn plain_rejections_as_problems(response: Response) -> Response {
    let (parts, text) = match rejection_text(response).await {
        Ok(rejection) => rejection,
        Err(response) => return response,
    };
    let status = parts.status;
    let mut problem = if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "request-body", "The request body is too large", text)
    } else {
        Problem::new(status, "request", "The request could not be read", text)
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body as a whole (the empty JSON pointer), as a malformed body is named.
        problem.errors = vec![ProblemField::from(&FieldError::new("", "too_large", problem.detail.clone()))];
    } else if let Some(field) = rejected_field(&problem.detail) {
        problem.errors = vec![ProblemField::from(&FieldError::new(&field, "invalid", problem.detail.clone()))];
    }
    let mut converted = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().insert(name.clone(), value.clone());
        }
    }
    converted
}

/// Asks the client to close the connection after an error answer to a request that carried a
/// body (a router layer: `axum::middleware::from_fn`). A request refused early (too large,
/// not signed in, the wrong media type, over the rate) leaves its body unread, and the server
/// then closes the connection once it has answered; without `Connection: close` a client would
/// keep the connection for its next request and find it gone.
pub async fn close_after_refused_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // HTTP/2 has no `Connection` header: a refused stream leaves the connection usable.
    let has_body = request.version() <= axum::http::Version::HTTP_11 && request_has_body(request.headers());
    let mut response = next.run(request).await;
    if has_body && response.status().is_client_error() {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether a request's head announces a body: a non-zero `Content-Length` or a
/// `Transfer-Encoding`.
fn request_has_body(headers: &axum::http::HeaderMap) -> bool {
    let declared =
        headers.get(header::CONTENT_LENGTH).is_some_and(|value| value.to_str().map_or(true, |v| v.trim() != "0"));
    declared || headers.contains_key(header::TRANSFER_ENCODING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_has_a_body_when_its_head_says_so() {
        let mut headers = axum::http::HeaderMap::new();
        assert!(!request_has_body(&headers));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!request_has_body(&headers));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("409600"));
        assert!(request_has_body(&headers));
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert!(request_has_body(&headers));
    }

    #[test]
    fn rejections_name_their_parameter() {
        assert_eq!(rejected_field("Invalid URL: Invalid UTF-8 in `id`").as_deref(), Some("id"));
        assert_eq!(
            rejected_field("Failed to deserialize query string: limit: invalid digit found in string").as_deref(),
            Some("limit")
        );
        assert_eq!(rejected_field("Failed to buffer the request body: length limit exceeded"), None);
        assert_eq!(rejected_field("Failed to deserialize query string: invalid digit found in string"), None);
    }

    #[tokio::test]
    async fn a_plain_rejection_becomes_a_problem_and_others_pass() {
        let rejection = (StatusCode::BAD_REQUEST, "Invalid URL: Invalid UTF-8 in `id`").into_response();
        let converted = plain_rejections_as_problems(rejection).await;
        assert_eq!(converted.status(), StatusCode::BAD_REQUEST);
        assert_eq!(converted.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = axum::body::to_bytes(converted.into_body(), 1 << 16).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], "id");
        assert_eq!(problem["status"], 400);

        let too_large = (StatusCode::PAYLOAD_TOO_LARGE, "Failed to buffer the request body").into_response();
        let converted = plain_rejections_as_problems(too_large).await;
        assert_eq!(converted.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(converted.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = axum::body::to_bytes(converted.into_body(), 1 << 16).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((&problem["errors"][0]["field"], &problem["errors"][0]["code"]), (&"".into(), &"too_large".into()));

        let page = (StatusCode::NOT_FOUND, axum::response::Html("<p>không thấy</p>")).into_response();
        let passed = plain_rejections_as_problems(page).await;
        assert!(passed.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let fine = (StatusCode::OK, "ok").into_response();
        assert_eq!(plain_rejections_as_problems(fine).await.status(), StatusCode::OK);
    }
}
