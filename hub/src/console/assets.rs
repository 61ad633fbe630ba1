//! The console's static assets (the stylesheet; the outcome notice's print stylesheet and print
//! button; the check page's script), embedded in the binary: served with a strong ETag (SHA-256 of the
//! bytes) and, under their content-hashed URL (`?v=<hash>`), cached for a year as immutable.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../static/console.css"),
    },
    // The outcome notice's page: A4 on screen and on paper (`@media print`).
    Asset {
        name: "notice.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../static/notice.css"),
    },
    // The notice's print button (CSP allows no inline script).
    Asset {
        name: "notice.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../static/notice.js"),
    },
    // The check page's progress poller (`console::checks`).
    Asset {
        name: "check.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../static/check.js"),
    },
];

/// The first 16 hex digits of the SHA-256 of each asset, in [`ASSETS`] order.
fn hashes() -> &'static [String] {
    static H: OnceLock<Vec<String>> = OnceLock::new();
    H.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                hex::encode(&ring::digest::digest(&ring::digest::SHA256, a.bytes).as_ref()[..8])
            })
            .collect()
    })
}

/// The versioned URL of an asset, for templates (`/console/static/console.css?v=…`).
pub fn url(name: &str) -> String {
    let v = ASSETS
        .iter()
        .position(|a| a.name == name)
        .map(|i| hashes()[i].as_str())
        .unwrap_or("0");
    format!("/console/static/{name}?v={v}")
}

/// `GET /console/static/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found("no such asset").into_response();
    };
    let a = &ASSETS[i];
    let etag = format!("\"{}\"", hashes()[i]);
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let tag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, tag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            ),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, cache),
        ],
        a.bytes,
    )
        .into_response()
}
