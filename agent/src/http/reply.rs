//! Building responses: JSON documents, and JSON errors shaped like a Kubernetes `Status` so
//! that both people and kubectl-minded tools can read them.

use super::body::ResponseBody;
use hyper::{header, Response, StatusCode};

/// A response with a JSON body.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResponseBody::full(body))
        .unwrap_or_else(|_| Response::new(ResponseBody::full("internal error\n")))
}

/// A plain-text response.
pub fn text(
    status: StatusCode,
    content_type: &str,
    body: impl Into<bytes::Bytes>,
) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(ResponseBody::full(body))
        .unwrap_or_else(|_| Response::new(ResponseBody::full("internal error\n")))
}

/// A JSON error naming what a person can fix; `parameter` names the offending query parameter.
pub fn error(status: StatusCode, message: &str, parameter: Option<&str>) -> Response<ResponseBody> {
    let reason = match status {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        StatusCode::URI_TOO_LONG => "RequestURITooLong",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        _ => "InternalError",
    };
    let mut v = serde_json::json!({
        "kind": "Status",
        "status": "Failure",
        "code": status.as_u16(),
        "reason": reason,
        "message": message,
    });
    if let Some(p) = parameter {
        v["details"] = serde_json::json!({ "parameter": p });
    }
    json(status, &v)
}
