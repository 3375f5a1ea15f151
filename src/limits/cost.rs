//! The cost model: an estimate, before execution, of the work a query asks for.
//!
//! A field costs its `base` plus, when it returns objects, the cost of its selection times
//! the number of objects it may return: a page's `first` (default 20, at most 100) for
//! connections, a known or typical bound for plain lists, 1 for a single object. Every
//! field the client writes counts, so ten aliases of a field cost ten times one. The
//! weights are all in [`weight`]: root fields that read the database cost 10, the
//! password-hashing ones 100, fields behind a DataLoader 2, scalars 1, introspection 0
//! (it reads the static schema; its size is bounded by the selections limit). Seat maps get
//! a fixed price here and are charged their real capacity during execution
//! (`limits::charge_seats`), because the capacity is not known before the row is read.
//!
//! Fragments are walked where they are spread; the caller has already checked that the
//! expanded document is small (`document::inlined_selections`).

use async_graphql::{
    Variables,
    parser::types::{ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet},
    registry::{MetaTypeName, Registry},
};
use async_graphql_value::{ConstValue, Value};

use crate::pagination::{DEFAULT_PAGE, MAX_PAGE};

/// How a field multiplies the cost of its selection.
#[derive(Clone, Copy)]
enum Items {
    /// One object (or a scalar).
    One,
    /// A list of at most (or typically) this many.
    Bound(u64),
    /// A list whose length is the page size of the connection above it.
    Page,
}

/// A list field with no entry below: the assumed length of a list the schema does not bound.
const TYPICAL_LIST: u64 = 10;

/// The weight of `field` on `parent` (`root` is the operation kind when `parent` is a root
/// type): base cost and how many items it returns.
fn weight(root: Option<OperationType>, parent: &str, field: &str, is_list: bool) -> (u64, Items) {
    if parent.starts_with("__") || field.starts_with("__") {
        return (0, Items::One);
    }
    match root {
        Some(OperationType::Mutation) => {
            return match field {
                // argon2 on every call; at most one per request is allowed anyway.
                "signUp" | "logIn" => (100, Items::One),
                _ => (10, Items::One),
            };
        }
        Some(OperationType::Query) => {
            return match field {
                // Full-text search and admin listings scan more than a key lookup.
                "concerts" | "users" | "auditLog" => (20, Items::One),
                _ => (10, Items::One),
            };
        }
        Some(OperationType::Subscription) => return (10, Items::One),
        None => {}
    }
    match (parent, field) {
        // Connections: the page multiplies edges and nodes, not pageInfo.
        (p, "edges" | "nodes") if p.ends_with("Connection") => (1, Items::Page),
        // DataLoader batches: one query per kind and request, but still a query.
        ("Concert", "host") | ("Schedule", "concert") | ("Reservation", "schedule") => (2, Items::One),
        ("Concert", "schedules") => (2, Items::Bound(TYPICAL_LIST)),
        // At most 20 grades per layout (seats::layout).
        ("Schedule" | "SeatChangeEvent", "availability") | ("SeatMap", "grades") => (2, Items::Bound(20)),
        // Priced again by capacity at execution; the fixed part keeps aliases dear.
        ("Schedule", "seats") => (500, Items::Bound(1_000)),
        ("Schedule", "seatMap") => (500, Items::One),
        ("SeatMap", "rows") => (1, Items::Bound(100)),
        ("Reservation", "seats") => (1, Items::Bound(10)),
        ("SeatChangeEvent", "seats") => (1, Items::Bound(100)),
        _ if is_list => (1, Items::Bound(TYPICAL_LIST)),
        _ => (1, Items::One),
    }
}

/// The estimated cost of `op` (saturating).
pub fn operation_cost(
    registry: &Registry,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    variables: &Variables,
) -> u64 {
    let root_type = match op.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let mut walker = Walker {
        registry,
        doc,
        variables,
        open: Vec::new(),
    };
    walker.set(
        Some(op.ty),
        root_type,
        &op.selection_set.node,
        DEFAULT_PAGE as u64,
    )
}

struct Walker<'a> {
    registry: &'a Registry,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    open: Vec<&'a str>,
}

impl<'a> Walker<'a> {
    fn set(
        &mut self,
        root: Option<OperationType>,
        parent: Option<&'a str>,
        set: &'a SelectionSet,
        page: u64,
    ) -> u64 {
        let mut total: u64 = 0;
        for item in &set.items {
            let here = match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    let meta = parent
                        .and_then(|p| self.registry.concrete_type_by_name(p))
                        .and_then(|t| t.field_by_name(name));
                    let (child_type, is_list) = match meta {
                        Some(m) => (
                            Some(MetaTypeName::concrete_typename(&m.ty)),
                            MetaTypeName::create(&m.ty).is_list(),
                        ),
                        None => (None, false),
                    };
                    let (base, mut items) = weight(root, parent.unwrap_or_default(), name, is_list);
                    // A page of seats is priced by its size (execution still charges what
                    // it returns: `limits::charge_seats`).
                    if (parent, name) == (Some("Schedule"), "seats")
                        && let Some(n) = self.int_arg(f, "first")
                    {
                        items = Items::Bound(n.clamp(1, i64::from(crate::seats::MAX_SEAT_PAGE)) as u64);
                    }
                    // A field with `first` starts a page for the connection below it.
                    let child_page = self.first(f).unwrap_or(page);
                    let children = if f.selection_set.node.items.is_empty() {
                        0
                    } else {
                        self.set(None, child_type, &f.selection_set.node, child_page)
                    };
                    let n = match items {
                        Items::One => 1,
                        Items::Bound(n) => n,
                        Items::Page => page,
                    };
                    base.saturating_add(n.saturating_mul(children))
                }
                Selection::InlineFragment(i) => {
                    let on = i.node.type_condition.as_ref().map(|c| c.node.on.node.as_str());
                    self.set(root, on.or(parent), &i.node.selection_set.node, page)
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.doc.fragments.get(name) {
                        Some(fragment) if !self.open.contains(&name) => {
                            self.open.push(name);
                            let on = fragment.node.type_condition.node.on.node.as_str();
                            let n = self.set(root, Some(on), &fragment.node.selection_set.node, page);
                            self.open.pop();
                            n
                        }
                        _ => 0,
                    }
                }
            };
            total = total.saturating_add(here);
        }
        total
    }

    /// The page size a field asks for with `first` (literal or variable), clamped as the
    /// resolvers clamp it.
    fn first(&self, f: &async_graphql::parser::types::Field) -> Option<u64> {
        f.arguments.iter().find(|(n, _)| n.node.as_str() == "first")?;
        let n = self.int_arg(f, "first").unwrap_or(DEFAULT_PAGE);
        Some(n.clamp(1, MAX_PAGE) as u64)
    }

    /// An integer argument of a field, literal or variable.
    fn int_arg(&self, f: &async_graphql::parser::types::Field, name: &str) -> Option<i64> {
        let (_, value) = f.arguments.iter().find(|(n, _)| n.node.as_str() == name)?;
        match &value.node {
            Value::Number(n) => n.as_i64(),
            Value::Variable(v) => match self.variables.get(v) {
                Some(ConstValue::Number(n)) => n.as_i64(),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    /// The cost the schema's own extension computes (a limit of 0 refuses every query and
    /// reports what it asked for).
    fn cost(query: &str) -> u64 {
        let limits = crate::limits::Limits {
            max_cost: 0,
            ..Default::default()
        };
        let schema = crate::graphql::builder()
            .extension(crate::graphql::edge::Edge::with_limits(limits))
            .finish();
        let request = async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(
            serde_json::json!({ "s": "1" }),
        ));
        let response = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(schema.execute(request));
        let ext = response.errors[0].extensions.as_ref().unwrap();
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("QUERY_TOO_COSTLY"))
        );
        match ext.get("asked") {
            Some(async_graphql::Value::Number(n)) => n.as_u64().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pages_multiply_and_aliases_add() {
        let one = cost("{ concerts(first: 10) { edges { node { title } } } }");
        let two = cost(
            "{ a: concerts(first: 10) { edges { node { title } } } b: concerts(first: 10) { edges { node { title } } } }",
        );
        assert_eq!(two, 2 * one);
        let big = cost("{ concerts(first: 100) { edges { node { title } } } }");
        assert!(big > 9 * (one - 20), "{big} vs {one}");
    }

    #[test]
    fn nesting_schedules_and_concerts_grows_geometrically() {
        let q = "{ concert(id: 1) { schedules { concert { schedules { concert { schedules { concert { schedules { concert { schedules { id } } } } } } } } } } }";
        assert!(cost(q) > 50_000, "{}", cost(q));
    }

    #[test]
    fn a_page_of_seats_costs_its_size() {
        let page = |n: u32| {
            cost(&format!(
                "{{ schedule(id: 1) {{ seats(first: {n}) {{ id status }} }} }}"
            ))
        };
        let whole = cost("{ schedule(id: 1) { seats { id status } } }");
        assert!(page(100) < 1_000, "{}", page(100));
        assert!(
            page(100) < whole && whole < page(5_000),
            "{} {whole} {}",
            page(100),
            page(5_000)
        );
        // Clamped as the resolver refuses beyond its page.
        assert_eq!(page(1_000_000), page(10_000));
    }

    #[test]
    fn everyday_queries_are_cheap() {
        assert!(cost("{ me { id email displayName } }") < 50);
        let seat_map = "query($s: ID!) { schedule(id: $s) { version capacity bookedCount availability { grade available } seatMap { version grades { name price color } rows { section row seats grade } idRuns statuses } } }";
        assert!(cost(seat_map) < 2_000, "{}", cost(seat_map));
    }
}
