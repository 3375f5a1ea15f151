//! The web app's files, embedded in the binary at compile time, so the server needs
//! nothing beside itself and every page works offline.
//!
//! Files live in `src/web/assets/`: the app itself (plain ES modules, no build step) and
//! `vendor/`, the pinned GraphiQL production builds that `web/copy-vendor.mjs` copies from
//! `web/package-lock.json`. Adding a file means listing it in [`FILES`]; a test fails when
//! the list and the folder disagree.
//!
//! Asset URLs carry a build id (`/assets/<build>/js/app.js`), a hash of every embedded
//! file: a URL names one content for ever, so browsers may cache it for a year, and a new
//! binary changes every URL at once. Relative imports between the app's modules inherit
//! the prefix, which is why no build step is needed to version them.

use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

/// One embedded file: its path under `assets/` and its bytes.
pub struct Asset {
    pub path: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, bytes: include_bytes!(concat!("assets/", $path)) }),*]
    };
}

/// Every file under `assets/` (a `.gz` file is the gzip twin of the file without it).
pub static FILES: &[Asset] = assets![
    "app.html",
    "playground.html",
    "favicon.svg",
    "css/app.css",
    "css/playground.css",
    "css/door.css",
    "js/api.js",
    "js/app.js",
    "js/auth.js",
    "js/door.js",
    "js/errors.js",
    "js/live.js",
    "js/notices.js",
    "js/seatmap.js",
    "js/ui.js",
    "js/playground.js",
    "js/pages/admin.js",
    "js/pages/claim.js",
    "js/pages/home.js",
    "js/pages/host.js",
    "js/pages/sales.js",
    "js/pages/sales-door.js",
    "js/pages/scan.js",
    "js/pages/schedule.js",
    "js/pages/tickets.js",
    "js/pages/wallet.js",
    "vendor/LICENSES.txt",
    "vendor/VERSIONS.json",
    "vendor/graphiql.min.css",
    "vendor/graphiql.min.css.gz",
    "vendor/graphiql.min.js",
    "vendor/graphiql.min.js.gz",
    "vendor/graphql-ws.min.js",
    "vendor/react-dom.production.min.js",
    "vendor/react.production.min.js",
];

pub fn get(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.path == path)
}

/// The first 12 hex digits of a hash over every embedded file's path and bytes.
pub fn build_id() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| {
        let mut hash = Sha256::new();
        for asset in FILES {
            hash.update(asset.path.as_bytes());
            hash.update((asset.bytes.len() as u64).to_le_bytes());
            hash.update(asset.bytes);
        }
        hex::encode(&hash.finalize()[..6])
    })
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list above and the folder must agree, or a file would be missing from the binary
    /// (the list is checked by the compiler) or silently left out (checked here).
    #[test]
    fn every_file_in_the_folder_is_embedded() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}"));
                if path.is_dir() {
                    walk(&path, root, out);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/assets");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|a| a.path.to_owned()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn build_id_is_stable_and_short() {
        assert_eq!(build_id().len(), 12);
        assert_eq!(build_id(), build_id());
    }
}
