//! The dashboard's files, embedded in the binary: no build step, nothing to install.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::App;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { file(&h, INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { file(&h, APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { file(&h, APP_CSS, "text/css; charset=utf-8") }),
        )
}

/// A file with an ETag of its bytes: revalidated on each load (`no-cache`), sent again only
/// when this binary's copy differs.
fn file(headers: &HeaderMap, body: &'static str, kind: &'static str) -> Response {
    let etag = format!("\"{:016x}\"", fnv(body.as_bytes()));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
