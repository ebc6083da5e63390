//! The dashboard's script and style sheet, compiled into the binary and served under
//! `/static/`: the pages work offline and load nothing from another origin.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The style sheet every page links.
pub const STYLE: &str = include_str!("static/dashboard.css");
/// The script every page loads: refreshing, charts, upload, delete, decommission.
pub const SCRIPT: &str = include_str!("static/dashboard.js");

/// `GET /static/{name}`: one of the two files, or 404.
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "dashboard.css" => (STYLE, "text/css; charset=utf-8"),
        "dashboard.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
