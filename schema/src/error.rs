//! Errors of the schema crate.

use serde::Serialize;

/// One problem with one field of a submission, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field (`contact.email`); empty for the document as a whole.
    pub field: String,
    /// Stable machine-readable code, e.g. `required`, `type`, `unknown_commune`, `too_long`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> FieldError {
        FieldError { field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }

    pub fn required(field: &str) -> FieldError {
        FieldError::new(field, "required", format!("`{field}` is required"))
    }

    pub fn wrong_type(field: &str, expected: &str) -> FieldError {
        FieldError::new(field, "type", format!("`{field}` must be {expected}"))
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("malformed petition JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("column `{0}` is missing")]
    MissingColumn(String),
    #[error("bad value: {0}")]
    BadValue(&'static str),
    #[error("invalid topic taxonomy: {0}")]
    Taxonomy(String),
}

pub type SchemaResult<T> = Result<T, SchemaError>;
