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
