//! The built-in web console: one page and its script and style, embedded in the binary and
//! served at `/` and `/console/<asset>`.
//!
//! The page and its assets hold no node data, so they are served to anyone who can reach the
//! port (a remote browser must load the page before it can ask for a token); everything the
//! console shows comes from the protected API routes, called with the token the page keeps in
//! `sessionStorage` (none needed from loopback when no token is configured).

use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The console page.
const INDEX: &str = include_str!("../console/index.html");

/// The embedded assets: name, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
];

/// What the page may load: only this origin; flame graphs are shown as same-origin blob
/// documents whose own inline script (inferno's search and zoom) must run.
const POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-src blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

/// `GET /` (the page) and `GET /console/<asset>`.
pub fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .map(|| asset("text/html; charset=utf-8", INDEX));
    let assets = warp::path!("console" / String)
        .and(warp::get())
        .map(
            |name: String| match ASSETS.iter().find(|(n, _, _)| *n == name) {
                Some(&(_, content_type, body)) => asset(content_type, body),
                None => crate::error::ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("the console has no asset {name}"),
                )
                .response(),
            },
        );
    index.or(assets).unify()
}
