//! The block explorer: a small page served by every node at `/` (and
//! `/explorer`) on its API address, built into the binary.
//!
//! Three files, embedded with `include_str!`: the HTML shell, a stylesheet
//! and plain JavaScript that polls the node's own JSON API (`/status`,
//! `/blocks`, `/proposers`, `/peers`, `/reorgs`, and the block, transaction
//! and account lookups) and draws the fairness chart as inline SVG. The
//! page loads nothing from anywhere else: every asset is same-origin, and
//! the Content-Security-Policy sent with it forbids any other source, so a
//! browser refuses an outside fetch even if one slipped in. These routes are
//! not part of the OpenAPI document: they are a page, not the API.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Same origin only; `data:` for the empty favicon. No inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The explorer's routes (stateless: the page reads the API).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let index = || async { asset("text/html; charset=utf-8", INDEX_HTML) };
    Router::new()
        .route("/", get(index))
        .route("/explorer", get(index))
        .route(
            "/explorer/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/explorer/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No asset names another host: every URL is a same-origin path.
    #[test]
    fn assets_reference_no_other_origin() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("style.css", STYLE_CSS),
        ] {
            for needle in ["http:", "https:", "//cdn", "ws:", "wss:", "@import", "url("] {
                assert!(!text.contains(needle), "{name} contains {needle:?}");
            }
            for (i, _) in text.match_indices("src=\"").chain(text.match_indices("href=\"")) {
                let rest = &text[i..];
                let value = &rest[rest.find('"').map_or(0, |q| q + 1)..];
                assert!(
                    value.starts_with('/')
                        || value.starts_with('#')
                        || value.starts_with("data:")
                        || value.starts_with('$'),
                    "{name}: {}",
                    &value[..value.len().min(40)]
                );
            }
        }
    }
}
