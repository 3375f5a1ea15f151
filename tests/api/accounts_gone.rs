//! A validly signed token of an account that no longer exists (issue 21, finding 3): every
//! mutation of the schema, found by introspection, answers UNAUTHENTICATED, as an anonymous
//! caller would be told; none answers INTERNAL and none is accepted. Mutations anyone may
//! call (sign-up, log-in, ...) answer such a caller as they answer an anonymous one.

use serde_json::{Map, Value, json};

use crate::common::{TestApp, layout, schedule_input};

const MUTATIONS: &str = r#"{ __schema { mutationType { fields { name type { ...T } args { name type { ...T } } } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"#;
const INPUT_FIELDS: &str = r#"query($n: String!) { __type(name: $n) { kind inputFields { name type { ...T } } enumValues { name } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"#;

/// The GraphQL spelling of an introspected type (`[ID!]!`).
fn spelled(t: &Value) -> String {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", spelled(&t["ofType"])),
        "LIST" => format!("[{}]", spelled(&t["ofType"])),
        _ => t["name"].as_str().unwrap().to_owned(),
    }
}

/// The named type under NON_NULL and LIST wrappers, and whether it is a list.
fn named(t: &Value) -> (&str, &str, bool) {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => named(&t["ofType"]),
        "LIST" => {
            let (kind, name, _) = named(&t["ofType"]);
            (kind, name, true)
        }
        kind => (kind, t["name"].as_str().unwrap(), false),
    }
}

/// What the fixtures offer for an argument or input field, by name (and the mutation it is
/// for, where a name like `id` means several things).
struct Fixtures {
    schedule: String,
    concert: String,
    seat: String,
    reservation: String,
    user: String,
}

impl Fixtures {
    fn known(&self, mutation: &str, name: &str) -> Option<Value> {
        Some(match name {
            "scheduleId" => json!(self.schedule),
            "concertId" => json!(self.concert),
            "reservationId" => json!(self.reservation),
            "userId" => json!(self.user),
            "seatIds" => json!([self.seat]),
            "id" if mutation.contains("Schedule") => json!(self.schedule),
            "id" if mutation.contains("Reservation") => json!(self.reservation),
            "id" => json!(self.concert),
            "idempotencyKey" => json!("gone-key"),
            "count" => json!(1),
            "email" => json!("gone-again@example.com"),
            "password" | "refreshToken" => json!("correct horse 9"),
            "layout" => layout(1, 2),
            "input" if mutation == "addSchedule" => schedule_input(4),
            "reason" => json!("a reason"),
            _ => return None,
        })
    }

    /// A value for a required argument: a fixture, else one of its type.
    async fn value(&self, app: &TestApp, mutation: &str, name: &str, t: &Value) -> Value {
        if let Some(v) = self.known(mutation, name) {
            return v;
        }
        let (kind, type_name, list) = named(t);
        let one = match (kind, type_name) {
            ("SCALAR", "Int") => json!(1),
            ("SCALAR", "Float") => json!(1.0),
            ("SCALAR", "Boolean") => json!(false),
            ("SCALAR", "DateTime") => json!((chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339()),
            ("SCALAR", _) => json!(format!("gone-{name}")),
            ("ENUM", _) => {
                let t = app.ok(None, INPUT_FIELDS, json!({ "n": type_name })).await;
                t["__type"]["enumValues"][0]["name"].clone()
            }
            ("INPUT_OBJECT", _) => {
                let t = app.ok(None, INPUT_FIELDS, json!({ "n": type_name })).await;
                let mut object = Map::new();
                for f in t["__type"]["inputFields"].as_array().unwrap() {
                    let field = f["name"].as_str().unwrap();
                    let required = f["type"]["kind"] == "NON_NULL";
                    if required || self.known(mutation, field).is_some() {
                        let v = Box::pin(self.value(app, mutation, field, &f["type"])).await;
                        object.insert(field.to_owned(), v);
                    }
                }
                Value::Object(object)
            }
            other => panic!("no value for {mutation}({name}: {other:?})"),
        };
        if list { json!([one]) } else { one }
    }
}

#[tokio::test]
async fn every_mutation_refuses_the_token_of_a_deleted_account() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let held = app
        .ok(
            Some(&fan.access),
            "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[7]] } }),
        )
        .await;
    // Sold out but one seat: joining the waiting list is otherwise possible.
    let fixtures = Fixtures {
        schedule: show.schedule_id.clone(),
        concert: show.concert_id.clone(),
        seat: show.seats[0].clone(),
        reservation: held["reserveSeats"]["id"].as_str().unwrap().to_owned(),
        user: fan.id.to_string(),
    };
    // An admin, so that no role guard refuses it for its role: only its absence may.
    let gone = app.user_with_role("gone@example.com", "admin").await;
    let deleted = app
        .count(&format!(
            "WITH d AS (DELETE FROM users WHERE id = {} RETURNING 1) SELECT count(*) AS n FROM d",
            gone.id
        ))
        .await;
    assert_eq!(deleted, 1);

    let schema = app.ok(None, MUTATIONS, json!({})).await;
    let fields = schema["__schema"]["mutationType"]["fields"]
        .as_array()
        .unwrap()
        .clone();
    let mut refused = Vec::new();
    for f in &fields {
        let name = f["name"].as_str().unwrap();
        let mut params = Vec::new();
        let mut args = Vec::new();
        let mut variables = Map::new();
        for (i, a) in f["args"].as_array().unwrap().iter().enumerate() {
            let arg = a["name"].as_str().unwrap();
            let required = a["type"]["kind"] == "NON_NULL";
            // placeOrder takes one of two optional inputs.
            let wanted = required || (name, arg) == ("placeOrder", "input");
            if !wanted {
                continue;
            }
            let value = fixtures.value(&app, name, arg, &a["type"]).await;
            let value = match (name, arg) {
                ("placeOrder", "input") => {
                    json!({ "scheduleId": fixtures.schedule, "seatIds": [fixtures.seat] })
                }
                _ => value,
            };
            params.push(format!("$a{i}: {}", spelled(&a["type"])));
            args.push(format!("{arg}: $a{i}"));
            variables.insert(format!("a{i}"), value);
        }
        let (kind, _, _) = named(&f["type"]);
        let selection = if kind == "OBJECT" { " { __typename }" } else { "" };
        let params = if params.is_empty() {
            String::new()
        } else {
            format!("({})", params.join(", "))
        };
        let call = if args.is_empty() {
            name.to_owned()
        } else {
            format!("{name}({})", args.join(", "))
        };
        let query = format!("mutation{params} {{ {call}{selection} }}");
        let variables = Value::Object(variables);

        let anonymous = app.gql(None, &query, variables.clone()).await;
        let anonymous_code = anonymous["errors"][0]["extensions"]["code"].clone();
        let body = app.gql(Some(&gone.access), &query, variables).await;
        let got = body["errors"][0]["extensions"]["code"].clone();
        assert_ne!(got, "INTERNAL", "{name}: {body}");
        if anonymous_code == "UNAUTHENTICATED" {
            assert_eq!(got, "UNAUTHENTICATED", "{name}: {body}");
            assert!(
                body["data"].is_null() || body["data"][name].is_null(),
                "{name}: {body}"
            );
            refused.push(name.to_owned());
        }
    }
    // The sweep reached the mutations of the issue, and more than a handful.
    for must in [
        "joinWaitlist",
        "placeOrder",
        "reserveSeats",
        "reserveBestAvailable",
        "enterQueue",
    ] {
        assert!(refused.iter().any(|r| r == must), "{must} not swept: {refused:?}");
    }
    assert!(refused.len() >= 15, "{refused:?}");

    // Nothing was written in the name of the deleted account.
    for table in ["reservations", "waitlist_entries", "point_ledger"] {
        let n = app
            .count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE user_id = {}",
                gone.id
            ))
            .await;
        assert_eq!(n, 0, "{table}");
    }
    app.assert_invariants().await;
}
