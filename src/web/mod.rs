//! The web app and the GraphQL playground, served from files embedded in the binary.
//!
//! Pages: `/` (concerts on sale), `/schedules/{id}` (a fan's live seat page), `/host` (a
//! host's workspace), `/host/concerts/{id}` (a concert's sales and orders), `/admin`, `/tickets` (a fan's tickets), `/scan` (the door), `/claim` (an invited guest sets a password), all one
//! HTML shell whose ES modules pick the page from the path; and `/playground` (GraphiQL, from pinned production builds in `assets/vendor/`).
//! Everything is same-origin: every response carries a Content-Security-Policy that allows
//! scripts, styles, connections and images from this origin only (fonts and icons inside
//! GraphiQL's CSS are `data:` URLs), so nothing can be loaded from, or sent to, another host.
//! The app talks to the server only through the public GraphQL API at `/graphql`.
//!
//! Not here: GraphQL over HTTP and WebSocket (the HTTP layer), which these pages call.

pub mod assets;

use std::sync::OnceLock;

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

/// Only this origin, for everything. `connect-src 'self'` also covers `ws://` and `wss://`
/// to the same host and port (CSP Level 3), which the subscriptions use. No inline script
/// or style anywhere: the pages load their code and CSS from `/assets/`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Asset URLs with the current build id never change content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Pages, and assets asked for under another build id (an older or newer binary behind
/// the same load balancer): always revalidate.
const REVALIDATE: &str = "no-cache";

/// The routes of the web app and, when `playground` is on, of GraphiQL. Generic over the
/// router's state: these handlers need none.
pub fn router<S: Clone + Send + Sync + 'static>(playground: bool) -> Router<S> {
    let app = get(|| async { page(&APP) });
    let router = Router::new()
        .route("/", app.clone())
        .route("/schedules/{id}", app.clone())
        .route("/host", app.clone())
        .route("/host/concerts/{id}", app.clone())
        .route("/tickets", app.clone())
        .route("/scan", app.clone())
        .route("/claim", app.clone())
        .route("/admin", app)
        .route("/wallet", get(wallet))
        .route("/assets/{build}/{*path}", get(asset))
        .route("/favicon.ico", get(favicon));
    if playground {
        router.route("/playground", get(|| async { page(&PLAYGROUND) }))
    } else {
        router
    }
}

/// The wallet's page may open Toss Payments' payment window: its script from
/// js.tosspayments.com, its frames and calls to *.tosspayments.com. Only this page: the
/// others keep `CONTENT_SECURITY_POLICY`, and the app reaches the wallet by a full load.
pub const WALLET_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
     script-src 'self' https://js.tosspayments.com; style-src 'self'; img-src 'self' data:; \
     font-src 'self' data:; connect-src 'self' https://*.tosspayments.com; \
     frame-src https://*.tosspayments.com; object-src 'none'; base-uri 'none'; \
     form-action 'self' https://*.tosspayments.com; frame-ancestors 'none'";

async fn wallet() -> Response {
    let mut response = page(&APP);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(WALLET_CONTENT_SECURITY_POLICY),
    );
    response
}

/// Where a browser that opens `/graphql` itself is sent.
pub fn playground_redirect() -> Response {
    Redirect::temporary("/playground").into_response()
}

/// An HTML page rendered once: its asset URLs get the build id.
struct Page {
    file: &'static str,
    html: OnceLock<String>,
}

static APP: Page = Page {
    file: "app.html",
    html: OnceLock::new(),
};
static PLAYGROUND: Page = Page {
    file: "playground.html",
    html: OnceLock::new(),
};

fn page(page: &'static Page) -> Response {
    let html = page.html.get_or_init(|| {
        let template = assets::get(page.file).map_or(&[][..], |a| a.bytes);
        String::from_utf8_lossy(template).replace("{{build}}", assets::build_id())
    });
    let mut response = html.as_str().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    secure(headers);
    response
}

async fn asset(Path((build, path)): Path<(String, String)>, request: HeaderMap) -> Response {
    let Some(file) = assets::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let gzip_ok = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let twin = assets::get(&format!("{path}.gz"));
    let (bytes, gzipped) = match twin {
        Some(gz) if gzip_ok => (gz.bytes, true),
        _ => (file.bytes, false),
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(assets::content_type(file.path)),
    );
    let cache = if build == assets::build_id() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if twin.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    secure(headers);
    response
}

/// `Accept-Encoding` lists gzip (or `*`) without `q=0`.
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// Browsers ask for `/favicon.ico` by themselves; answer with the app's icon.
async fn favicon() -> Response {
    let Some(icon) = assets::get("favicon.svg") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = icon.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    secure(headers);
    response
}

fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("x-gzip-not"));
    }
}
