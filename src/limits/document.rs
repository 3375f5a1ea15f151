//! The shape of a parsed document: how many selections it asks for once its fragments are
//! expanded, and how many root fields its operation has. Both are counted without expanding
//! anything: a fragment's size is computed once and reused wherever it is spread.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

/// Selections of every operation with fragments inlined, saturating a little above `cap`
/// (the caller only needs to know whether it is over). Cyclic fragments count as empty
/// where they recur: validation refuses them anyway.
pub fn inlined_selections(doc: &ExecutableDocument, cap: u64) -> u64 {
    let mut memo = Memo::default();
    let mut total: u64 = 0;
    let ops: Vec<&OperationDefinition> = match &doc.operations {
        DocumentOperations::Single(op) => vec![&op.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node).collect(),
    };
    for op in ops {
        total = total.saturating_add(set_size(doc, &op.selection_set.node, &mut memo));
        if total > cap {
            break;
        }
    }
    // Fragments never spread still cost validation a walk each.
    for name in doc.fragments.keys() {
        total = total.saturating_add(fragment_size(doc, name.as_str(), &mut memo));
        if total > cap {
            break;
        }
    }
    total
}

#[derive(Default)]
struct Memo {
    sizes: HashMap<String, u64>,
    /// Fragments being expanded right now, to cut cycles.
    open: Vec<String>,
}

fn fragment_size(doc: &ExecutableDocument, name: &str, memo: &mut Memo) -> u64 {
    if let Some(n) = memo.sizes.get(name) {
        return *n;
    }
    if memo.open.iter().any(|o| o == name) {
        return 0;
    }
    let Some(fragment) = doc.fragments.get(name) else {
        return 0;
    };
    memo.open.push(name.to_owned());
    let n = set_size(doc, &fragment.node.selection_set.node, memo);
    memo.open.pop();
    memo.sizes.insert(name.to_owned(), n);
    n
}

fn set_size(doc: &ExecutableDocument, set: &SelectionSet, memo: &mut Memo) -> u64 {
    let mut n: u64 = 0;
    for item in &set.items {
        let here = match &item.node {
            Selection::Field(f) => 1 + set_size(doc, &f.node.selection_set.node, memo),
            Selection::FragmentSpread(s) => 1 + fragment_size(doc, s.node.fragment_name.node.as_str(), memo),
            Selection::InlineFragment(i) => 1 + set_size(doc, &i.node.selection_set.node, memo),
        };
        n = n.saturating_add(here);
    }
    n
}

/// The operation that will run: the named one, or the only one.
pub fn operation<'a>(doc: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| &op.node),
        _ => None,
    }
}

/// Root fields of `set`, fragments expanded (each alias is one). Bounded by
/// [`inlined_selections`], which runs first.
pub fn root_fields(doc: &ExecutableDocument, set: &SelectionSet) -> u64 {
    fn walk(doc: &ExecutableDocument, set: &SelectionSet, open: &mut Vec<String>) -> u64 {
        let mut n = 0u64;
        for item in &set.items {
            n += match &item.node {
                Selection::Field(f) if f.node.name.node.starts_with("__") => 0,
                Selection::Field(_) => 1,
                Selection::InlineFragment(i) => walk(doc, &i.node.selection_set.node, open),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match doc.fragments.get(name) {
                        Some(f) if !open.iter().any(|o| o == name) => {
                            open.push(name.to_owned());
                            let k = walk(doc, &f.node.selection_set.node, open);
                            open.pop();
                            k
                        }
                        _ => 0,
                    }
                }
            };
        }
        n
    }
    walk(doc, set, &mut Vec::new())
}

/// Root fields of `set` (fragments expanded) whose name is one of `names`.
pub fn root_fields_named(doc: &ExecutableDocument, set: &SelectionSet, names: &[&str]) -> u64 {
    fn walk(doc: &ExecutableDocument, set: &SelectionSet, names: &[&str], open: &mut Vec<String>) -> u64 {
        let mut n = 0u64;
        for item in &set.items {
            n += match &item.node {
                Selection::Field(f) => u64::from(names.contains(&f.node.name.node.as_str())),
                Selection::InlineFragment(i) => walk(doc, &i.node.selection_set.node, names, open),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match doc.fragments.get(name) {
                        Some(f) if !open.iter().any(|o| o == name) => {
                            open.push(name.to_owned());
                            let k = walk(doc, &f.node.selection_set.node, names, open);
                            open.pop();
                            k
                        }
                        _ => 0,
                    }
                }
            };
        }
        n
    }
    walk(doc, set, names, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    /// Fragments that each spread the previous one twice: 2^depth selections when expanded.
    pub fn doubling(depth: usize) -> String {
        let mut q = String::from("query { ...F0 }\nfragment F0 on Query { me { id } }\n");
        for i in 1..=depth {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
                p = i - 1
            ));
        }
        q.replace("query { ...F0 }", &format!("query {{ ...F{depth} }}"))
    }

    #[test]
    fn a_doubling_document_is_counted_without_expanding_it() {
        let doc = parse_query(doubling(22)).unwrap();
        let started = std::time::Instant::now();
        assert!(inlined_selections(&doc, 2_000) > 2_000);
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let doc = parse_query("query { a: me { id } ...F ...F } fragment F on Query { b: me { id email } }")
            .unwrap();
        // a, id; two spreads of (b, id, email) plus the spreads themselves; F itself once.
        assert_eq!(inlined_selections(&doc, 1_000), 2 + 2 * 4 + 3);
        let op = operation(&doc, None).unwrap();
        assert_eq!(root_fields(&doc, &op.selection_set.node), 3);
    }

    #[test]
    fn cycles_do_not_loop() {
        let doc =
            parse_query("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }").unwrap();
        assert!(inlined_selections(&doc, 100) < 100);
    }
}
