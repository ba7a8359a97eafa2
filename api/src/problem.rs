//! RFC 9457 problem responses (`application/problem+json`) naming the fields at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use voxpop_schema::FieldError;

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
        let mut problem = Problem::new(
            status,
            "validation",
            "The request has invalid fields",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        );
        problem.errors = errors.iter().map(ProblemField::from).collect();
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
