//! The browser side, compiled in: the chat page at `/` and the client at `/switchboard.js`.

use axum::response::{IntoResponse, Response};
use http::header;

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const CLIENT_JS: &str = include_str!("../../../web/switchboard.js");

/// `GET /`: the chat page.
pub(crate) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /switchboard.js`: the client script.
pub(crate) async fn client_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CLIENT_JS,
    )
        .into_response()
}

/// `GET /favicon.ico`: nothing, without a 404 in the browser console.
pub(crate) async fn favicon() -> http::StatusCode {
    http::StatusCode::NO_CONTENT
}
