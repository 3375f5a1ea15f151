//! Response fields in the order the request asked for them.
//!
//! The GraphQL spec orders a response's fields as the request's selection sets list them
//! (CollectFields). async-graphql resolves a query's fields concurrently and inserts each
//! one as it completes, so `{ pageInfo edges }` could come back as `edges` first. The
//! schema's extension (`edge`) keeps the parsed document, and [`sort_response`] sorts every
//! object of the answer (HTTP and subscription events alike) by the position of its
//! response key in the merged selection sets. A selection set's order is worked out once
//! and shared by every item of a list.
//!
//! Type conditions are not consulted: fields are ordered by their first appearance in any
//! fragment, which is the spec's order except when two fragments on different types list
//! the same keys in different orders.

use std::{cell::OnceCell, collections::HashSet};

use async_graphql::{
    Value,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// Sorts `data` (the answer to the named operation of `doc`) into request order.
pub(crate) fn sort_response(data: &mut Value, doc: &ExecutableDocument, operation_name: Option<&str>) {
    let op = doc
        .operations
        .iter()
        .find(|(name, _)| operation_name.is_none() || name.map(|n| n.as_str()) == operation_name)
        .map(|(_, op)| op);
    if let Some(op) = op {
        let plan = Plan::collect(doc, &[&op.node.selection_set.node]);
        plan.apply(doc, data);
    }
}

/// The response keys of some merged selection sets, in order, each with the selection sets
/// of its sub-selection.
struct Plan<'a> {
    entries: Vec<Entry<'a>>,
}

struct Entry<'a> {
    key: &'a str,
    sets: Vec<&'a SelectionSet>,
    /// The sub-selection's plan, made when first needed.
    child: OnceCell<Plan<'a>>,
}

impl<'a> Plan<'a> {
    fn collect(doc: &'a ExecutableDocument, sets: &[&'a SelectionSet]) -> Self {
        let mut plan = Plan { entries: Vec::new() };
        let mut visited = HashSet::new();
        for set in sets {
            plan.walk(doc, set, &mut visited);
        }
        plan
    }

    fn walk(&mut self, doc: &'a ExecutableDocument, set: &'a SelectionSet, visited: &mut HashSet<&'a str>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let key = f.node.response_key().node.as_str();
                    let sub = &f.node.selection_set.node;
                    match self.entries.iter_mut().find(|e| e.key == key) {
                        Some(entry) => entry.sets.push(sub),
                        None => self.entries.push(Entry {
                            key,
                            sets: vec![sub],
                            child: OnceCell::new(),
                        }),
                    }
                }
                Selection::InlineFragment(i) => self.walk(doc, &i.node.selection_set.node, visited),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    // Each fragment once per collection, as CollectFields does: also what
                    // keeps a fragment bomb linear here.
                    if visited.insert(name)
                        && let Some(frag) = doc.fragments.get(name)
                    {
                        self.walk(doc, &frag.node.selection_set.node, visited);
                    }
                }
            }
        }
    }

    fn position(&self, key: &str) -> usize {
        self.entries
            .iter()
            .position(|e| e.key == key)
            .unwrap_or(usize::MAX)
    }

    /// Orders an object (each item of a list) by this plan, and its children by theirs.
    fn apply(&self, doc: &'a ExecutableDocument, value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.sort_by(|a, _, b, _| self.position(a.as_str()).cmp(&self.position(b.as_str())));
                for (key, child) in map.iter_mut() {
                    if !matches!(child, Value::Object(_) | Value::List(_)) {
                        continue;
                    }
                    if let Some(entry) = self.entries.iter().find(|e| e.key == key.as_str()) {
                        entry
                            .child
                            .get_or_init(|| Plan::collect(doc, &entry.sets))
                            .apply(doc, child);
                    }
                }
            }
            Value::List(items) => {
                for item in items {
                    self.apply(doc, item);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_json(query: &str, data: serde_json::Value) -> String {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let mut value = Value::from_json(data).unwrap();
        sort_response(&mut value, &doc, None);
        value.into_json().unwrap().to_string()
    }

    #[test]
    fn objects_follow_the_selection_through_fragments_and_lists() {
        let out = sorted_json(
            "{ b: __typename concerts { ...P edges { node { title id } } } a: __typename }
             fragment P on ConcertConnection { pageInfo { hasNextPage endCursor } }",
            serde_json::json!({
                "a": "Query",
                "concerts": {
                    "edges": [{ "node": { "id": "1", "title": "x" } }, { "node": { "id": "2", "title": "y" } }],
                    "pageInfo": { "endCursor": null, "hasNextPage": false },
                },
                "b": "Query",
            }),
        );
        assert_eq!(
            out,
            r#"{"b":"Query","concerts":{"pageInfo":{"hasNextPage":false,"endCursor":null},"edges":[{"node":{"title":"x","id":"1"}},{"node":{"title":"y","id":"2"}}]},"a":"Query"}"#
        );
    }

    #[test]
    fn a_field_selected_twice_merges_its_sub_selections_in_order() {
        let out = sorted_json(
            "{ me { id } me { email id name } }",
            serde_json::json!({ "me": { "name": "n", "email": "e", "id": "1" } }),
        );
        assert_eq!(out, r#"{"me":{"id":"1","email":"e","name":"n"}}"#);
    }
}
