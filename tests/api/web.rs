//! The web app and the playground: embedded pages, same origin only, under a CSP.

use crate::common::TestApp;

const PAGES: [&str; 5] = ["/", "/schedules/1", "/host", "/admin", "/playground"];

/// Every `src="..."` and `href="..."` value of a page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// The CSP's directives allow nothing but this origin (and `data:` for images and fonts,
/// which GraphiQL's CSS embeds), and nothing inline or evaluated.
fn assert_same_origin_only(csp: &str, path: &str) {
    for directive in csp.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let mut parts = directive.split_whitespace();
        let name = parts.next().unwrap();
        for source in parts {
            let allowed = match source {
                "'self'" | "'none'" => true,
                "data:" => name == "img-src" || name == "font-src",
                _ => false,
            };
            assert!(allowed, "{path}: `{name} {source}` in {csp}");
        }
    }
    for needed in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(needed), "{path}: no `{needed}` in {csp}");
    }
}

#[tokio::test]
async fn pages_carry_a_same_origin_csp_and_reference_no_other_host() {
    let app = TestApp::spawn().await;
    for path in PAGES {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_same_origin_only(&csp, path);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let html = r.text().await.unwrap();
        let refs = references(&html);
        assert!(refs.iter().any(|r| r.starts_with("/assets/")), "{path}: {refs:?}");
        for reference in refs {
            assert!(
                reference.starts_with('#') || (reference.starts_with('/') && !reference.starts_with("//")),
                "{path} references another host: {reference}"
            );
            if !reference.starts_with("/assets/") {
                continue;
            }
            let asset = app.http.get(app.url(&reference)).send().await.unwrap();
            assert_eq!(asset.status(), 200, "{reference}");
            assert!(asset.headers().contains_key("content-security-policy"));
            assert_eq!(
                asset.headers()["cache-control"],
                "public, max-age=31536000, immutable",
                "{reference}"
            );
        }
    }
}

/// The app's own code (not the vendored GraphiQL, checked in the browser suite) names no
/// other host at all: every request it makes is relative to the page's origin.
#[tokio::test]
async fn the_apps_own_code_names_no_other_host() {
    for asset in boxoffice::web::assets::FILES {
        if asset.path.starts_with("vendor/") || asset.path.ends_with(".svg") {
            continue;
        }
        let text = std::str::from_utf8(asset.bytes).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{} names another host",
            asset.path
        );
    }
}

#[tokio::test]
async fn assets_are_versioned_by_build_and_gzipped_when_accepted() {
    let app = TestApp::spawn().await;
    let build = boxoffice::web::assets::build_id();
    let raw = boxoffice::web::assets::get("vendor/graphiql.min.js").unwrap();
    let url = app.url(&format!("/assets/{build}/vendor/graphiql.min.js"));

    let gz = app
        .http
        .get(&url)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    assert_eq!(gz.headers()["content-type"], "text/javascript; charset=utf-8");
    let zipped = gz.bytes().await.unwrap();
    assert!(zipped.len() < raw.bytes.len() / 3, "{} bytes", zipped.len());

    let plain = app.http.get(&url).send().await.unwrap();
    assert!(!plain.headers().contains_key("content-encoding"));
    assert_eq!(plain.bytes().await.unwrap().len(), raw.bytes.len());

    // Another build's URL still answers (a rolling deploy), but must be revalidated.
    let old = app
        .http
        .get(app.url("/assets/000000000000/js/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    assert_eq!(old.headers()["cache-control"], "no-cache");
    let missing = app
        .http
        .get(app.url(&format!("/assets/{build}/js/missing.js")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let escape = app
        .http
        .get(app.url(&format!("/assets/{build}/../../Cargo.toml")))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
}
