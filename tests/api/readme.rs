//! The GraphQL examples of docs/api.md (the walk-through the README points to), run in order
//! on a fresh database exactly as written, so they cannot drift from the API.
//!
//! Conventions (stated in docs/api.md): `# as <email>` sends that account's latest access
//! token; `"<name>"` stands for the latest `name` in an earlier answer; a trailing
//! `# until X` repeats the example until its answer says `X`. Every operation is named,
//! each name once (GraphQL Code Generator refuses anonymous operations, and the client
//! suite's e2e/clients/codegen.test.mjs generates types from these). Every example must answer
//! without errors, and every `edges` list it gets must be non-empty (an example that finds
//! nothing shows nothing).

use std::{collections::HashMap, time::Duration};

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    common::TestApp,
    websocket::{connect, init, send},
};

/// One example: the operation's text, whose token it uses, what to wait for.
#[derive(Debug)]
struct Example {
    text: String,
    actor: Option<String>,
    until: Option<String>,
}

/// Where the walk-through lives.
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");

fn readme() -> String {
    std::fs::read_to_string(EXAMPLES).unwrap()
}

/// The ```graphql blocks, in order.
fn blocks(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```graphql") => current = Some(String::new()),
            (Some(_), "```") => out.push(current.take().unwrap()),
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// The operations of a block, with the `# as` in force for each and its `# until`.
fn examples(block: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut actor: Option<String> = None;
    let mut depth = 0usize;
    let mut text = String::new();
    let mut chars = block.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            text.push(c);
            match c {
                '\\' => text.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '#' => {
                let mut comment = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    comment.push(n);
                    chars.next();
                }
                let comment = comment.trim();
                if depth == 0 {
                    if let Some(who) = comment.strip_prefix("as ") {
                        actor = Some(who.trim().to_owned());
                    } else if let Some(what) = comment.strip_prefix("until ")
                        && let Some(last) = out.last_mut()
                    {
                        last.until = Some(what.trim().to_owned());
                    }
                }
            }
            '"' => {
                in_string = true;
                text.push(c);
            }
            '{' => {
                depth += 1;
                text.push(c);
            }
            '}' => {
                depth -= 1;
                text.push(c);
                if depth == 0 {
                    out.push(Example {
                        text: std::mem::take(&mut text).trim().to_owned(),
                        actor: actor.clone(),
                        until: None,
                    });
                }
            }
            c if depth == 0 && c.is_whitespace() && text.trim().is_empty() => {}
            c => text.push(c),
        }
    }
    assert!(text.trim().is_empty(), "unbalanced example: {text}");
    out
}

/// Every string field of an answer, by field name (latest wins).
fn remember(value: &Value, seen: &mut HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Value::String(s) = v {
                    seen.insert(k.clone(), s.clone());
                }
                remember(v, seen);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| remember(v, seen)),
        _ => {}
    }
}

fn empty_edges(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k == "edges" && v.as_array().is_some_and(Vec::is_empty)) || empty_edges(v)),
        Value::Array(items) => items.iter().any(empty_edges),
        _ => false,
    }
}

/// Events of a subscription until it completes or is quiet for a moment.
async fn subscription(app: &TestApp, token: Option<&str>, query: &str) -> Vec<Value> {
    let mut ws = connect(app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, token).await["type"], "connection_ack");
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
    let mut events = Vec::new();
    loop {
        let quiet = if events.is_empty() { 10_000 } else { 1_500 };
        match tokio::time::timeout(Duration::from_millis(quiet), ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("next") => events.push(v["payload"].clone()),
                    Some("complete") => break,
                    Some("ping" | "pong") => {}
                    _ => panic!("{query}: {v}"),
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("{query}: socket ended: {other:?}"),
        }
    }
    assert!(!events.is_empty(), "{query}: no event");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_readme_examples_run_in_order_as_written() {
    let app = TestApp::spawn().await;
    let readme = readme();

    // The walk-through's first admin, made the way its `create-admin` command does.
    let admin = regex_lite(&readme, "create-admin --email ", " ");
    let password = regex_lite(&readme, "--password '", "'");
    {
        let mut conn = app.state.db.get().await.unwrap();
        boxoffice::auth::service::create_admin(&mut conn, &admin, password, false)
            .await
            .unwrap();
    }

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut tokens: HashMap<String, String> = HashMap::new();
    let mut session: Option<String> = None;
    let mut ran = 0;
    let mut names = std::collections::HashSet::new();
    for block in blocks(&readme) {
        for example in examples(&block) {
            let name = operation_name(&example.text)
                .unwrap_or_else(|| panic!("anonymous operation in docs/api.md:\n{}", example.text));
            assert!(names.insert(name.to_owned()), "two operations named {name}");
            let mut text = example.text.clone();
            for (name, value) in &seen {
                text = text.replace(&format!("\"<{name}>\""), &format!("\"{value}\""));
            }
            assert!(!text.contains("\"<"), "no value for a placeholder in {text}");
            if let Some(email) = text.split("email: \"").nth(1).and_then(|r| r.split('"').next()) {
                session = Some(email.to_owned());
            }
            let token = example.actor.as_ref().map(|who| {
                tokens
                    .get(who)
                    .unwrap_or_else(|| panic!("no token for {who} before {text}"))
                    .clone()
            });
            let answers = if text.starts_with("subscription") {
                subscription(&app, token.as_deref(), &text).await
            } else {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                loop {
                    let body = app.gql(token.as_deref(), &text, json!({})).await;
                    let done = match &example.until {
                        Some(what) => body.to_string().contains(&format!("\"{what}\"")),
                        None => true,
                    };
                    if done || !body["errors"].is_null() || tokio::time::Instant::now() > deadline {
                        break vec![body];
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            for body in &answers {
                assert!(
                    body["errors"].is_null(),
                    "docs/api.md example failed:\n{text}\n{body}"
                );
                assert!(
                    !empty_edges(body),
                    "docs/api.md example found nothing:\n{text}\n{body}"
                );
                if let Some(what) = &example.until {
                    assert!(
                        body.to_string().contains(&format!("\"{what}\"")),
                        "never {what}: {body}"
                    );
                }
                remember(&body["data"], &mut seen);
                if let (Some(who), Some(access)) = (&session, body.pointer("/data").and_then(find_access)) {
                    tokens.insert(who.clone(), access);
                }
            }
            ran += 1;
        }
    }
    assert!(ran >= 25, "only {ran} examples found");

    // What the walk-through did, seen from the database: the fan paid for two seats,
    // cancelled the ordered one, held two best-available seats, and the concert's
    // cancellation refunded the payment and released that hold.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM reservations WHERE status = 'cancelled'")
            .await,
        3
    );
    app.assert_invariants().await;
}

/// The name of an operation (`query Name { ... }`), if it has one.
fn operation_name(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    if !matches!(words.next(), Some("query" | "mutation" | "subscription")) {
        return None;
    }
    let word = words.next()?;
    let end = word
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(word.len());
    let name = &word[..end];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

/// The access token in an answer (signUp, logIn, refreshToken).
fn find_access(data: &Value) -> Option<String> {
    let mut seen = HashMap::new();
    remember(data, &mut seen);
    seen.remove("accessToken")
}

/// The text between the first `start` and the next `end` after it.
fn regex_lite(text: &str, start: &str, end: &str) -> String {
    let rest = &text[text
        .find(start)
        .unwrap_or_else(|| panic!("docs/api.md has no {start:?}"))
        + start.len()..];
    rest[..rest.find(end).unwrap()].to_owned()
}

#[test]
fn examples_are_split_at_operations_and_know_their_actor() {
    let ex = examples(
        "mutation { a(color: \"#FFF\", s: \"}\") { b } }   # audited\n# as x@example.com\nquery { c }\nquery { d } # until DONE\n",
    );
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].text, "mutation { a(color: \"#FFF\", s: \"}\") { b } }");
    assert_eq!(ex[0].actor, None);
    assert_eq!(ex[1].actor.as_deref(), Some("x@example.com"));
    assert_eq!(ex[2].until.as_deref(), Some("DONE"));

    assert_eq!(operation_name("query Me { me { id } }"), Some("Me"));
    assert_eq!(
        operation_name("subscription Watch($id: ID!) { x }"),
        Some("Watch")
    );
    assert_eq!(operation_name("query { me { id } }"), None);
    assert_eq!(operation_name("mutation($i: SignUpInput!) { x }"), None);
    assert_eq!(operation_name("{ me { id } }"), None);
}
