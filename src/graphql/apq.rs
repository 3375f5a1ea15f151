//! Automatic persisted queries (Apollo's APQ protocol), in a bounded cache.
//!
//! A client sends `extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}`
//! without the query. If this instance knows the hash it runs the stored query; if not it
//! answers `PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`), the client sends
//! the query with its hash once, and the server checks the hash and keeps the query. By
//! POST or by GET (then the URL stays short, and a CDN can cache it).
//!
//! async-graphql's own `ApolloPersistedQueries` extension keeps parsed documents in a
//! cache bounded only by count (a thousand 1 MB documents would be a gigabyte), answers
//! without a code, and leaves the query text empty, which the GET safety check needs. This
//! one keeps query text, weighed by its size, and caps the size of one query.
//!
//! A sent query is kept only once its request has passed every check before execution
//! (parse, limits, validation: `edge` calls [`PersistedQueries::keep`] then). Kept earlier,
//! a document that does not parse or that the limits refuse would take room in the cache
//! and be refused again by every request naming its hash.

use std::sync::Arc;

use async_graphql::{Request, ServerResult};
use sha2::{Digest, Sha256};

use super::refusal::Refusal;

/// Total bytes of query text kept per instance.
const CAPACITY_BYTES: u64 = 8 * 1024 * 1024;
/// A longer query still runs but is not kept: one client cannot take a large share.
const MAX_QUERY_BYTES: usize = 64 * 1024;
/// For the cache's sizing only: a typical query is about 1 KB.
const ESTIMATED_ITEMS: usize = 8 * 1024;

#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<String, Arc<str>> for ByLength {
    fn weight(&self, key: &String, query: &Arc<str>) -> u64 {
        (key.len() + query.len()) as u64
    }
}

/// The persisted queries of this instance, shared by the schema's extension and the HTTP
/// layer (which must know what a hash stands for before it lets a GET run).
#[derive(Clone)]
pub struct PersistedQueries(Arc<quick_cache::sync::Cache<String, Arc<str>, ByLength>>);

impl Default for PersistedQueries {
    fn default() -> Self {
        Self(Arc::new(quick_cache::sync::Cache::with_weighter(
            ESTIMATED_ITEMS,
            CAPACITY_BYTES,
            ByLength,
        )))
    }
}

impl std::fmt::Debug for PersistedQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistedQueries")
            .field("len", &self.0.len())
            .finish()
    }
}

/// The `persistedQuery` request extension.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedQuery {
    version: i64,
    sha256_hash: String,
}

impl PersistedQueries {
    /// The query stored under a request's `persistedQuery` hash, if it has one and this
    /// instance knows it.
    pub fn lookup(&self, extensions: &async_graphql::Extensions) -> Option<Arc<str>> {
        let value = extensions.get("persistedQuery")?;
        let pq: PersistedQuery = async_graphql::from_value(value.clone()).ok()?;
        self.0.get(&pq.sha256_hash.to_ascii_lowercase())
    }

    /// Turns a request with a `persistedQuery` extension into a plain one: the stored
    /// query for a hash alone, or the sent query when its hash matches (then also returned
    /// as [`Sent`], to [`keep`](Self::keep) once the request is accepted). The first thing
    /// a request goes through: a hash becomes its query before anything looks at it.
    pub(crate) fn resolve(&self, mut request: Request) -> ServerResult<(Request, Option<Sent>)> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return Ok((request, None));
        };
        let pq: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
            Refusal::BadRequest
                .error("the persistedQuery extension must be {\"version\": 1, \"sha256Hash\": \"<hex>\"}")
        })?;
        if pq.version != 1 {
            return Err(Refusal::BadRequest.error(format!(
                "persistedQuery version {} is not supported; use 1",
                pq.version
            )));
        }
        let hash = pq.sha256_hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let query = self
                .0
                .get(&hash)
                // Apollo clients match on this message (and on the code) to send the query.
                .ok_or_else(|| Refusal::PersistedQueryNotFound.error("PersistedQueryNotFound"))?;
            request.query = query.to_string();
            return Ok((request, None));
        }
        if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(Refusal::BadRequest.error("provided sha does not match query"));
        }
        let sent = (request.query.len() <= MAX_QUERY_BYTES && self.0.get(&hash).is_none()).then(|| Sent {
            hash,
            query: request.query.as_str().into(),
        });
        Ok((request, sent))
    }

    /// Keeps a sent query whose request passed every check.
    pub(crate) fn keep(&self, sent: Sent) {
        self.0.insert(sent.hash, sent.query);
    }
}

/// A query sent with its hash, not kept yet.
pub(crate) struct Sent {
    hash: String,
    query: Arc<str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut r = Request::new(query);
        r.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(serde_json::json!({ "version": 1, "sha256Hash": hash })).unwrap(),
        );
        r
    }

    fn sha(q: &str) -> String {
        hex::encode(Sha256::digest(q.as_bytes()))
    }

    fn code(err: &async_graphql::ServerError) -> String {
        err.extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_hash_is_unknown_until_its_query_is_sent_once() {
        let apq = PersistedQueries::default();
        let q = "{ __typename }";
        let err = apq.resolve(with_hash("", &sha(q))).err().unwrap();
        assert_eq!(err.message, "PersistedQueryNotFound");
        assert_eq!(code(&err), "\"PERSISTED_QUERY_NOT_FOUND\"");
        let (sent, keep) = apq.resolve(with_hash(q, &sha(q))).ok().unwrap();
        assert_eq!(sent.query, q);
        assert!(
            apq.resolve(with_hash("", &sha(q))).is_err(),
            "not kept before the request is accepted"
        );
        apq.keep(keep.unwrap());
        let (again, _) = apq.resolve(with_hash("", &sha(q))).ok().unwrap();
        assert_eq!(again.query, q);
        assert!(!again.extensions.contains_key("persistedQuery"));
    }

    #[test]
    fn a_wrong_hash_or_version_is_refused() {
        let apq = PersistedQueries::default();
        let err = apq.resolve(with_hash("{ a }", &sha("{ b }"))).err().unwrap();
        assert_eq!(code(&err), "\"BAD_REQUEST\"");
        let mut r = Request::new("{ a }");
        r.extensions.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(serde_json::json!({ "version": 2, "sha256Hash": sha("{ a }") }))
                .unwrap(),
        );
        assert_eq!(code(&apq.resolve(r).err().unwrap()), "\"BAD_REQUEST\"");
        assert!(
            apq.resolve(Request::new("{ a }")).is_ok(),
            "no extension, nothing to do"
        );
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let apq = PersistedQueries::default();
        let big = format!("{{ __typename {} }}", " ".repeat(MAX_QUERY_BYTES));
        let (_, sent) = apq.resolve(with_hash(&big, &sha(&big))).ok().unwrap();
        assert!(sent.is_none(), "a query over the size cap runs but is not kept");
        let mut kept = 0u64;
        for i in 0..2_000 {
            let q = format!("{{ __typename }} # {i:04} {}", " ".repeat(16 * 1024));
            let (_, sent) = apq.resolve(with_hash(&q, &sha(&q))).ok().unwrap();
            apq.keep(sent.unwrap());
            kept = kept.max(apq.0.weight());
        }
        assert!(kept <= CAPACITY_BYTES, "{kept} bytes kept");
    }
}
