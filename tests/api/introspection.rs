//! schema.graphql says what introspection says (issue 21, finding 13).
//!
//! `schema::schema_graphql_matches_the_code` compares printed SDL with printed SDL: both come
//! from the same printer, so whatever the printer leaves out (it left out `@specifiedBy`)
//! or whatever both carry wrongly never shows. Schema tools read introspection instead. Here
//! the live server's introspection (descriptions, deprecations, default values, specified-by
//! URLs) is compared, type by type, with what the file declares, parsed on its own.

use std::collections::BTreeMap;

use async_graphql::parser::{
    parse_schema,
    types::{ConstDirective, FieldDefinition, InputValueDefinition, TypeKind, TypeSystemDefinition},
};
use serde_json::{Value, json};

use crate::common::TestApp;

/// graphql-js's `getIntrospectionQuery` with every option on, as schema tools send it.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
}
"#;

const BUILT_IN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];

/// `{kind, name, ofType}` as SDL writes it: `[Seat!]!`.
fn type_ref(t: &Value) -> String {
    match t["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_ref(&t["ofType"])),
        Some("LIST") => format!("[{}]", type_ref(&t["ofType"])),
        _ => t["name"].as_str().unwrap_or("?").to_owned(),
    }
}

fn text(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if !s.is_empty() => json!(s),
        _ => Value::Null,
    }
}

/// A field, argument, input field or enum value, as both sides can say it.
fn member(name: &str, description: Value, ty: Option<String>, default: Value, deprecated: Value) -> Value {
    json!({ "name": name, "description": description, "type": ty, "default": default, "deprecated": deprecated })
}

fn by_name(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    items
}

/// One introspected type, normalised.
fn from_introspection(t: &Value) -> Value {
    let deprecation = |v: &Value| {
        if v["isDeprecated"] == true {
            text(&v["deprecationReason"])
                .as_str()
                .map_or(json!("deprecated"), |r| json!(r))
        } else {
            Value::Null
        }
    };
    let input = |v: &Value| {
        member(
            v["name"].as_str().unwrap(),
            text(&v["description"]),
            Some(type_ref(&v["type"])),
            v["defaultValue"].clone(),
            deprecation(v),
        )
    };
    let list = |key: &str, f: &dyn Fn(&Value) -> Value| {
        by_name(
            t[key]
                .as_array()
                .map(|a| a.iter().map(f).collect())
                .unwrap_or_default(),
        )
    };
    let names = |key: &str| {
        let mut n: Vec<String> = t[key]
            .as_array()
            .map(|a| a.iter().map(type_ref).collect())
            .unwrap_or_default();
        n.sort();
        n
    };
    json!({
        "kind": t["kind"],
        "description": text(&t["description"]),
        "specifiedBy": text(&t["specifiedByURL"]),
        "fields": list("fields", &|f| json!({
            "field": member(f["name"].as_str().unwrap(), text(&f["description"]), Some(type_ref(&f["type"])), Value::Null, deprecation(f)),
            "args": by_name(f["args"].as_array().unwrap().iter().map(input).collect()),
        })),
        "inputFields": list("inputFields", &input),
        "enumValues": list("enumValues", &|v| member(v["name"].as_str().unwrap(), text(&v["description"]), None, Value::Null, deprecation(v))),
        "interfaces": names("interfaces"),
        "possibleTypes": names("possibleTypes"),
    })
}

fn directive_arg(
    directives: &[async_graphql::Positioned<ConstDirective>],
    directive: &str,
    arg: &str,
) -> Option<String> {
    let d = directives.iter().find(|d| d.node.name.node == directive)?;
    match d.node.get_argument(arg).map(|v| &v.node) {
        Some(async_graphql::Value::String(s)) => Some(s.clone()),
        _ => Some(String::new()),
    }
}

fn deprecation_of(directives: &[async_graphql::Positioned<ConstDirective>]) -> Value {
    match directive_arg(directives, "deprecated", "reason") {
        // `@deprecated` without a reason: introspection says "No longer supported".
        Some(r) if r.is_empty() => json!("No longer supported"),
        Some(r) => json!(r),
        None => Value::Null,
    }
}

fn description(d: &Option<async_graphql::Positioned<String>>) -> Value {
    text(&d.as_ref().map_or(Value::Null, |d| json!(d.node)))
}

fn from_input(v: &InputValueDefinition) -> Value {
    member(
        &v.name.node,
        description(&v.description),
        Some(v.ty.node.to_string()),
        v.default_value
            .as_ref()
            .map_or(Value::Null, |d| json!(d.node.to_string())),
        deprecation_of(&v.directives),
    )
}

fn from_field(f: &FieldDefinition) -> Value {
    json!({
        "field": member(&f.name.node, description(&f.description), Some(f.ty.node.to_string()), Value::Null, deprecation_of(&f.directives)),
        "args": by_name(f.arguments.iter().map(|a| from_input(&a.node)).collect()),
    })
}

/// The types schema.graphql declares, normalised like [`from_introspection`]; with the
/// root types.
fn from_sdl(sdl: &str) -> (BTreeMap<String, Value>, Value) {
    let doc = parse_schema(sdl).expect("schema.graphql parses");
    let mut types = BTreeMap::new();
    let mut roots = json!({ "query": "Query", "mutation": "Mutation", "subscription": "Subscription" });
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for def in &doc.definitions {
        match def {
            TypeSystemDefinition::Schema(s) => {
                let s = &s.node;
                roots = json!({
                    "query": s.query.as_ref().map(|n| n.node.to_string()),
                    "mutation": s.mutation.as_ref().map(|n| n.node.to_string()),
                    "subscription": s.subscription.as_ref().map(|n| n.node.to_string()),
                });
            }
            TypeSystemDefinition::Type(t) => {
                let t = &t.node;
                let (kind, fields, inputs, values, interfaces, possible) = match &t.kind {
                    TypeKind::Scalar => ("SCALAR", vec![], vec![], vec![], vec![], vec![]),
                    TypeKind::Object(o) => (
                        "OBJECT",
                        o.fields.iter().map(|f| from_field(&f.node)).collect(),
                        vec![],
                        vec![],
                        o.implements.iter().map(|n| n.node.to_string()).collect(),
                        vec![],
                    ),
                    TypeKind::Interface(i) => (
                        "INTERFACE",
                        i.fields.iter().map(|f| from_field(&f.node)).collect(),
                        vec![],
                        vec![],
                        i.implements.iter().map(|n| n.node.to_string()).collect(),
                        vec![],
                    ),
                    TypeKind::Union(u) => (
                        "UNION",
                        vec![],
                        vec![],
                        vec![],
                        vec![],
                        u.members.iter().map(|n| n.node.to_string()).collect(),
                    ),
                    TypeKind::Enum(e) => (
                        "ENUM",
                        vec![],
                        vec![],
                        e.values
                            .iter()
                            .map(|v| {
                                let v = &v.node;
                                member(
                                    &v.value.node,
                                    description(&v.description),
                                    None,
                                    Value::Null,
                                    deprecation_of(&v.directives),
                                )
                            })
                            .collect(),
                        vec![],
                        vec![],
                    ),
                    TypeKind::InputObject(i) => (
                        "INPUT_OBJECT",
                        vec![],
                        i.fields.iter().map(|f| from_input(&f.node)).collect(),
                        vec![],
                        vec![],
                        vec![],
                    ),
                };
                for i in &interfaces {
                    members
                        .entry(i.clone())
                        .or_default()
                        .push(t.name.node.to_string());
                }
                let mut interfaces: Vec<String> = interfaces;
                interfaces.sort();
                let mut possible: Vec<String> = possible;
                possible.sort();
                types.insert(
                    t.name.node.to_string(),
                    json!({
                        "kind": kind,
                        "description": description(&t.description),
                        "specifiedBy": directive_arg(&t.directives, "specifiedBy", "url"),
                        "fields": by_name(fields),
                        "inputFields": by_name(inputs),
                        "enumValues": by_name(values),
                        "interfaces": interfaces,
                        "possibleTypes": possible,
                    }),
                );
            }
            TypeSystemDefinition::Directive(_) => {}
        }
    }
    // An interface's possible types are the objects that implement it.
    for (interface, mut implementors) in members {
        implementors.sort();
        if let Some(t) = types.get_mut(&interface)
            && t["kind"] == "INTERFACE"
        {
            t["possibleTypes"] = json!(implementors);
        }
    }
    (types, roots)
}

#[tokio::test]
async fn schema_graphql_declares_what_introspection_answers() {
    let app = TestApp::spawn().await;
    let body = app.gql(None, INTROSPECTION, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let schema = &body["data"]["__schema"];
    let live: BTreeMap<String, Value> = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            let name = t["name"].as_str()?;
            (!name.starts_with("__") && !BUILT_IN_SCALARS.contains(&name))
                .then(|| (name.to_owned(), from_introspection(t)))
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let (file, roots) = from_sdl(&std::fs::read_to_string(path).unwrap());
    assert_eq!(
        roots,
        json!({
            "query": schema["queryType"]["name"],
            "mutation": schema["mutationType"]["name"],
            "subscription": schema["subscriptionType"]["name"],
        })
    );
    let live_names: Vec<&String> = live.keys().collect();
    let file_names: Vec<&String> = file.keys().collect();
    assert_eq!(file_names, live_names, "the same types");
    let mut drift = Vec::new();
    for (name, said) in &live {
        if file[name] != *said {
            drift.push(format!(
                "{name}:\n  introspection: {said}\n  schema.graphql: {}",
                file[name]
            ));
        }
    }
    assert!(
        drift.is_empty(),
        "schema.graphql drifts from introspection:\n{}",
        drift.join("\n")
    );
}

/// The comparison itself can fail: a description the file lacks, a scalar without its
/// `@specifiedBy`, a changed default are each caught.
#[test]
fn the_comparison_sees_descriptions_specified_by_and_defaults() {
    let sdl = "\"\"\"when\"\"\"\nscalar DateTime @specifiedBy(url: \"https://example.com\")\ntype Query {\n\t\"\"\"the list\"\"\"\n\tlist(first: Int! = 20): [DateTime!]!\n}\n";
    let (types, _) = from_sdl(sdl);
    assert_eq!(types["DateTime"]["specifiedBy"], "https://example.com");
    assert_eq!(types["DateTime"]["description"], "when");
    let list = &types["Query"]["fields"][0];
    assert_eq!(list["field"]["type"], "[DateTime!]!");
    assert_eq!(list["field"]["description"], "the list");
    assert_eq!(list["args"][0]["default"], "20");
    let introspected = json!({
        "kind": "SCALAR", "name": "DateTime", "description": "when", "specifiedByURL": "https://example.com",
        "fields": null, "inputFields": null, "interfaces": null, "enumValues": null, "possibleTypes": null,
    });
    assert_eq!(from_introspection(&introspected), types["DateTime"]);
    let (bare, _) = from_sdl("scalar DateTime\ntype Query { a: Int }");
    assert_ne!(from_introspection(&introspected), bare["DateTime"]);
}

/// What the descriptions say is about the field they sit on, and nothing of the code's
/// insides (issue 21, finding 13).
#[tokio::test]
async fn schedule_descriptions_describe_their_own_fields() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            None,
            r#"{ __type(name: "Schedule") { fields { name description } } }"#,
            json!({}),
        )
        .await;
    let fields = body["data"]["__type"]["fields"].as_array().unwrap();
    let said = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["description"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(said("version").contains("Grows with every seat change"), "{body}");
    assert!(said("waitlistLength").contains("waiting list"));
    assert!(
        !said("waitlistLength").contains("version"),
        "{}",
        said("waitlistLength")
    );
    assert!(!said("seatMap").contains("AppError"), "{}", said("seatMap"));
    assert!(!said("seatMap").contains("async-graphql"), "{}", said("seatMap"));
}
