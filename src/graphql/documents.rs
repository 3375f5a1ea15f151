//! Parsed documents by their text: a client sending the same query again (every booking
//! of a sale, every seat-map read) is not parsed again.
//!
//! Parsing costs by the document, not by the answer, and each request was parsed twice
//! (`limits` counts the selections before async-graphql's own parse walks the fragments):
//! a profile of hot-seats put about 8 % of the server's CPU in the parser.
//!
//! Only the documents of requests that passed every check enter (parse errors, refusals
//! and validation errors never do). A request whose document comes from here carries
//! [`Known`], and `edge` skips the limits' selection count: the count depends on the text
//! alone and was done when the document first came. Whatever depends on the variables or
//! the viewer (cost, the text rule, the booking rate, validation) runs on every request.

use std::sync::Arc;

use async_graphql::{Request, parser::types::ExecutableDocument};

/// Bytes the kept documents may take, estimated from their text.
const CAPACITY_BYTES: u64 = 32 * 1024 * 1024;
/// A parsed document takes several times its text (positions, names, boxed nodes); a
/// conservative factor, so the bound holds for the memory, not just the text.
const PARSED_PER_TEXT_BYTE: u64 = 8;
/// For the cache's sizing only: a typical query is about 1 KB.
const ESTIMATED_ITEMS: usize = 4 * 1024;

#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<String, Arc<ExecutableDocument>> for ByLength {
    fn weight(&self, text: &String, _: &Arc<ExecutableDocument>) -> u64 {
        text.len() as u64 * (1 + PARSED_PER_TEXT_BYTE)
    }
}

/// Marks a request whose document was taken from [`Documents`], with that document: the
/// edge keeps it to order the answer instead of cloning the parsed one again.
pub struct Known(pub Arc<ExecutableDocument>);

pub struct Documents(quick_cache::sync::Cache<String, Arc<ExecutableDocument>, ByLength>);

impl Default for Documents {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            ESTIMATED_ITEMS,
            CAPACITY_BYTES,
            ByLength,
        ))
    }
}

impl Documents {
    /// Gives `request` its parsed document if this text was seen and accepted before.
    pub fn lookup(&self, request: Request) -> (Request, bool) {
        if request.query.is_empty() {
            // A persisted query by hash: its text is known only after `prepare_request`.
            return (request, false);
        }
        match self.0.get(request.query.as_str()) {
            Some(doc) => {
                // async-graphql takes its document by value; the answer's ordering shares ours.
                let mut request = request.data(Known(doc.clone()));
                request.set_parsed_query(ExecutableDocument::clone(&doc));
                (request, true)
            }
            None => (request, false),
        }
    }

    /// Keeps the document of a request that passed every check.
    pub fn remember(&self, text: String) {
        if self.0.get(text.as_str()).is_some() {
            return;
        }
        if let Ok(doc) = async_graphql::parser::parse_query(&text) {
            self.0.insert(text, Arc::new(doc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_remembered_text_is_known() {
        let docs = Documents::default();
        let (_, known) = docs.lookup(Request::new("{ me { id } }"));
        assert!(!known);
        docs.remember("{ me { id } }".into());
        let (mut request, known) = docs.lookup(Request::new("{ me { id } }"));
        assert!(known);
        assert!(request.parsed_query().is_ok());
        let (_, known) = docs.lookup(Request::new("{ me { email } }"));
        assert!(!known);
        // A hash-only persisted query has no text yet.
        let (_, known) = docs.lookup(Request::new(""));
        assert!(!known);
    }

    #[test]
    fn text_that_does_not_parse_is_not_kept() {
        let docs = Documents::default();
        docs.remember("{ me { ".into());
        let (_, known) = docs.lookup(Request::new("{ me { "));
        assert!(!known);
    }
}
