//! How deep and how costly one operation may be, and the separate bounds of introspection.
//!
//! Data queries are held to a depth (async-graphql computes it while validating); what they
//! cost is `crate::limits`' cost model. Schema tools send the standard introspection query (graphql-js
//! `getIntrospectionQuery`, GraphiQL's own), which is 15 levels deep because of its
//! `ofType` chain, and cheap: so an operation that asks for nothing but introspection gets
//! its own, deeper, depth limit. What makes introspection expensive is lists inside lists
//! (`types { fields { type { fields { ... } } } }` multiplies the schema by itself), so
//! wherever introspection appears it may nest at most three lists, as the standard query
//! does (`types`, `fields`, `args`). With introspection switched off
//! (`GRAPHQL_INTROSPECTION=false`), `__schema` and `__type` are refused; `__typename`
//! always works.

use std::collections::{HashMap, HashSet};

use async_graphql::{
    ServerError, ValidationResult,
    parser::types::{ExecutableDocument, OperationDefinition, Selection, SelectionSet},
};

use super::refusal::Refusal;

/// Deep enough for every legitimate query of this API, shallow enough to refuse abuse.
pub const MAX_DEPTH: usize = 12;
/// The standard introspection query is 15 deep (graphql-js 16: nine `ofType` levels);
/// room for tools that ask a few levels more.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;
/// The standard introspection query costs about 180; this admits it a few times over.
pub const INTROSPECTION_MAX_COMPLEXITY: usize = 1_000;
/// Lists inside lists in an introspection selection: `types { fields { args } }`.
pub const INTROSPECTION_MAX_LIST_NESTING: usize = 3;

/// Introspection fields that return lists of objects.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "directives",
    "fields",
    "args",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "inputFields",
];

/// What the operation to be run asks of introspection: learnt when the document is parsed,
/// judged once async-graphql has validated it.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(crate) struct Shape {
    /// It selects `__schema` or `__type`.
    introspects: bool,
    /// Every root field is an introspection field (`__schema`, `__type`, `__typename`).
    introspection_only: bool,
    /// The most lists nested inside one another under `__schema` / `__type`.
    introspection_lists: usize,
}

/// Refuses what `shape` and the validation `result` show to be too deep or too costly, or
/// introspection when `introspection` (`GRAPHQL_INTROSPECTION`) is off.
pub(crate) fn judge(introspection: bool, shape: Shape, result: &ValidationResult) -> Result<(), ServerError> {
    if shape.introspects && !introspection {
        return Err(Refusal::ValidationFailed
            .error("introspection is disabled on this server (`__schema` and `__type`)"));
    }
    if shape.introspection_lists > INTROSPECTION_MAX_LIST_NESTING {
        return Err(Refusal::TooCostly.error(format!(
            "introspection nests {} lists; at most {INTROSPECTION_MAX_LIST_NESTING} (as in `types {{ fields {{ args }} }}`)",
            shape.introspection_lists
        )));
    }
    let max_depth = if shape.introspection_only {
        INTROSPECTION_MAX_DEPTH
    } else {
        MAX_DEPTH
    };
    if result.depth > max_depth {
        return Err(Refusal::TooDeep.error(format!(
            "the query is nested {} deep; at most {max_depth}",
            result.depth
        )));
    }
    // Data queries are costed by `crate::limits`; introspection, which that model does not
    // weigh, keeps async-graphql's complexity here.
    if shape.introspection_only && result.complexity > INTROSPECTION_MAX_COMPLEXITY {
        return Err(Refusal::TooCostly.error(format!(
            "the introspection query costs {}; at most {INTROSPECTION_MAX_COMPLEXITY}",
            result.complexity
        )));
    }
    Ok(())
}

/// The shape of the operation that will run (all of them when the name matches none:
/// that request fails anyway). Each fragment is looked at once, whatever the number of
/// spreads, so this costs no more than the document's size.
pub(crate) fn shape(doc: &ExecutableDocument, operation_name: Option<&str>) -> Shape {
    let ops: Vec<&OperationDefinition> = {
        let picked: Vec<_> = doc
            .operations
            .iter()
            .filter(|(name, _)| operation_name.is_none() || name.map(|n| n.as_str()) == operation_name)
            .map(|(_, op)| &op.node)
            .collect();
        if picked.is_empty() {
            doc.operations.iter().map(|(_, op)| &op.node).collect()
        } else {
            picked
        }
    };
    let mut walker = Walker {
        doc,
        nesting: HashMap::new(),
    };
    let mut roots = Vec::new();
    let mut seen = HashSet::new();
    for op in &ops {
        walker.root_fields(&op.selection_set.node, &mut seen, &mut roots);
    }
    let mut shape = Shape {
        introspection_only: !roots.is_empty(),
        ..Shape::default()
    };
    for (name, set) in roots {
        match name {
            "__schema" | "__type" => {
                shape.introspects = true;
                shape.introspection_lists = shape.introspection_lists.max(walker.lists(set));
            }
            "__typename" => {}
            _ => shape.introspection_only = false,
        }
    }
    shape
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    /// Fragment name -> its list nesting; `None` while being computed (a cycle, which
    /// validation refuses, counts as nothing here).
    nesting: HashMap<&'a str, Option<usize>>,
}

impl<'a> Walker<'a> {
    /// The root fields of a selection, through fragments (each fragment once).
    fn root_fields(
        &self,
        set: &'a SelectionSet,
        seen: &mut HashSet<&'a str>,
        out: &mut Vec<(&'a str, &'a SelectionSet)>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push((f.node.name.node.as_str(), &f.node.selection_set.node)),
                Selection::InlineFragment(i) => self.root_fields(&i.node.selection_set.node, seen, out),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    if seen.insert(name)
                        && let Some(frag) = self.doc.fragments.get(name)
                    {
                        self.root_fields(&frag.node.selection_set.node, seen, out);
                    }
                }
            }
        }
    }

    /// The most introspection lists nested inside one another within `set`.
    fn lists(&mut self, set: &'a SelectionSet) -> usize {
        let mut most = 0;
        for item in &set.items {
            let n = match &item.node {
                Selection::Field(f) => {
                    usize::from(INTROSPECTION_LISTS.contains(&f.node.name.node.as_str()))
                        + self.lists(&f.node.selection_set.node)
                }
                Selection::InlineFragment(i) => self.lists(&i.node.selection_set.node),
                Selection::FragmentSpread(s) => self.fragment_lists(s.node.fragment_name.node.as_str()),
            };
            most = most.max(n);
        }
        most
    }

    fn fragment_lists(&mut self, name: &'a str) -> usize {
        match self.nesting.get(name) {
            Some(Some(n)) => return *n,
            Some(None) => return 0,
            None => {}
        }
        let Some(frag) = self.doc.fragments.get(name) else {
            return 0;
        };
        self.nesting.insert(name, None);
        let n = self.lists(&frag.node.selection_set.node);
        self.nesting.insert(name, Some(n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(query: &str) -> Shape {
        shape(&async_graphql::parser::parse_query(query).unwrap(), None)
    }

    #[test]
    fn data_queries_do_not_introspect() {
        let s = shape_of("{ me { id } __typename }");
        assert_eq!(s, Shape::default());
    }

    #[test]
    fn the_standard_query_nests_three_lists() {
        let s = shape_of(
            "query Q { __schema { types { ...T } directives { args { name } } } }
             fragment T on __Type { fields { args { ...R } type { ...R } } inputFields { ...R } }
             fragment R on __Type { kind ofType { kind ofType { name } } }",
        );
        assert!(s.introspects && s.introspection_only);
        assert_eq!(s.introspection_lists, 3);
    }

    #[test]
    fn lists_of_lists_are_counted_through_fragments() {
        let s = shape_of(
            "{ __schema { ...A } } fragment A on __Schema { types { ...B } }
             fragment B on __Type { fields { type { ...C } } } fragment C on __Type { fields { type { fields { name } } } }",
        );
        assert_eq!(s.introspection_lists, 4);
    }

    #[test]
    fn mixed_operations_are_not_introspection_only() {
        let s = shape_of("{ __type(name: \"Seat\") { name } me { id } }");
        assert!(s.introspects && !s.introspection_only);
    }

    #[test]
    fn the_named_operation_is_judged() {
        let doc = async_graphql::parser::parse_query(
            "query A { me { id } } query B { __schema { queryType { name } } }",
        )
        .unwrap();
        assert!(shape(&doc, Some("B")).introspection_only);
        assert!(!shape(&doc, Some("A")).introspects);
    }

    #[test]
    fn fragment_cycles_end() {
        let s = shape_of("{ __schema { types { ...A } } } fragment A on __Type { fields { type { ...A } } }");
        assert_eq!(s.introspection_lists, 2);
    }
}
