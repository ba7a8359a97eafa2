//! Reading the problems (`application/problem+json`) the API answers bad requests with.

use reqwest::StatusCode;
use serde_json::Value;

/// Status, content type and body of a response (the body as JSON; `Null` when it is none).
pub async fn problem_of(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

/// The fields a problem names, in its order.
pub fn problem_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["field"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

/// Asserts that a response was a 422 problem (`application/problem+json`).
pub fn assert_unprocessable(status: StatusCode, content_type: &str, problem: &Value) {
    assert_eq!((status, content_type), (StatusCode::UNPROCESSABLE_ENTITY, "application/problem+json"), "{problem}");
}

/// Row, column and code of a problem's first error about a spreadsheet cell.
pub fn first_cell_error(problem: &Value) -> (Option<u64>, Option<&str>, Option<&str>) {
    let error = &problem["errors"][0];
    (error["row"].as_u64(), error["column"].as_str(), error["code"].as_str())
}

/// Asserts that `problem` is a 422 refusing a spreadsheet at its far cell `XFD1048576` (the last
/// row and column a workbook may address), naming the cell by row, column and message.
pub fn assert_far_cell_refused(status: StatusCode, content_type: &str, problem: &Value) {
    assert_unprocessable(status, content_type, problem);
    assert_eq!(first_cell_error(problem), (Some(1_048_576), Some("XFD"), Some("too_many_columns")), "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap_or_default().contains("XFD1048576"), "{problem}");
}
