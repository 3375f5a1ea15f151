//! Text that users send: what is refused everywhere (control characters), what a display
//! name may look like, and the one accepted form of a poster URL.

use std::net::IpAddr;

use async_graphql::{
    ErrorExtensionValues, Name, ServerError, Value, Variables,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::error::{AppError, AppResult};

/// Control characters other than tab and line breaks. NUL in particular: PostgreSQL cannot
/// store it in `text`, so it would otherwise end as an INTERNAL error.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Refuses a request whose arguments (literal or through variables) hold a control
/// character, before any resolver sees it: one check for every text input of the API. The
/// error names the input as the resolvers do (`input.title`).
pub fn check_request_strings(doc: &ExecutableDocument, variables: &Variables) -> Result<(), ServerError> {
    let mut sets: Vec<&SelectionSet> = Vec::new();
    for (_, op) in doc.operations.iter() {
        sets.push(&op.node.selection_set.node);
    }
    for fragment in doc.fragments.values() {
        sets.push(&fragment.node.selection_set.node);
    }
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (arg, value) in &f.node.arguments {
                        let value = value.node.clone().into_const_with(|name| {
                            Ok::<_, ()>(variables.get(&name).cloned().unwrap_or(Value::Null))
                        });
                        if let Ok(value) = value
                            && let Some(path) = bad_value(&value)
                        {
                            return Err(bad_input(&format!("{}{path}", arg.node)));
                        }
                    }
                    sets.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(i) => sets.push(&i.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    // Variables used nowhere above (directives, or none at all) still may not smuggle one.
    for (name, value) in variables.iter() {
        if let Some(path) = bad_value(value) {
            return Err(bad_input(&format!("${name}{path}")));
        }
    }
    Ok(())
}

/// The path (e.g. `.input.title`) of the first string holding a control character.
fn bad_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.chars().any(is_forbidden_control) => Some(String::new()),
        Value::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| bad_value(v).map(|p| format!("[{i}]{p}"))),
        Value::Object(fields) => fields
            .iter()
            .find_map(|(k, v): (&Name, &Value)| bad_value(v).map(|p| format!(".{k}{p}"))),
        _ => None,
    }
}

fn bad_input(field: &str) -> ServerError {
    let mut err = ServerError::new(format!("{field}: must not contain control characters"), None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", "BAD_USER_INPUT");
    ext.set("field", field);
    err.extensions = Some(ext);
    err
}

/// Characters that change text direction: a name holding them can make what follows it
/// read backwards (e.g. in an admin's user list).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: zero-width ones, format characters and blank fillers.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// A display name: 1 to 50 characters, no control or bidirectional-control characters, and
/// at least one character that shows.
pub fn display_name(raw: &str, field: &str) -> AppResult<String> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > 50 || name.chars().any(char::is_control) {
        return Err(AppError::bad_input(field, "must be 1 to 50 printable characters"));
    }
    if name.chars().any(is_bidi_control) {
        return Err(AppError::bad_input(
            field,
            "must not contain bidirectional control characters",
        ));
    }
    if name.chars().all(is_invisible) {
        return Err(AppError::bad_input(field, "must contain visible characters"));
    }
    Ok(name.to_owned())
}

/// A poster URL as stored: parsed and re-serialized (so CR, LF, quotes and spaces come out
/// percent-encoded or are refused), https only, no user name or password, and a public
/// host: not an IP address of a private, loopback, link-local or otherwise special
/// network, and not `localhost`. `None` for an empty value.
pub fn poster_url(raw: &str, field: &str) -> AppResult<Option<String>> {
    let v = raw.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let refuse = |why: &str| Err(AppError::bad_input(field, why.to_owned()));
    if v.len() > 2048 {
        return refuse("must be at most 2048 characters");
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("must not contain spaces or control characters");
    }
    let Ok(url) = url::Url::parse(v) else {
        return refuse("must be an https URL");
    };
    if url.scheme() != "https" {
        return refuse("must be an https URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("must not contain a user name or password");
    }
    match url.host() {
        None => return refuse("must name a host"),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost"
                || d.ends_with(".localhost")
                || d.ends_with(".local")
                || d.ends_with(".internal")
                || !d.contains('.')
            {
                return refuse("must name a public host");
            }
        }
        Some(url::Host::Ipv4(ip)) => {
            if !is_public(IpAddr::V4(ip)) {
                return refuse("must name a public host");
            }
        }
        Some(url::Host::Ipv6(ip)) => {
            if !is_public(IpAddr::V6(ip)) {
                return refuse("must name a public host");
            }
        }
    }
    let normalized = url.to_string();
    if normalized.len() > 2048 {
        return refuse("must be at most 2048 characters");
    }
    Ok(Some(normalized))
}

/// Whether an address is globally reachable (not private, loopback, link-local, shared,
/// documentation, multicast or unspecified).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s0 & 0xfe00) == 0xfc00
                || (s0 & 0xffc0) == 0xfe80
                || s0 == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poster_urls_are_normalized_and_public() {
        assert_eq!(
            poster_url("https://Example.COM/a b", "p").ok().flatten(),
            None,
            "spaces are refused"
        );
        assert_eq!(
            poster_url("https://Example.COM/poster.png?x=\"1\"", "p").unwrap(),
            Some("https://example.com/poster.png?x=%221%22".to_owned())
        );
        for bad in [
            "http://example.com/p.png",
            "https://user:pw@example.com/p.png",
            "https://169.254.169.254/latest",
            "https://10.0.0.1/p.png",
            "https://[fe80::1]/p.png",
            "https://[::ffff:127.0.0.1]/p.png",
            "https://localhost/p.png",
            "https://example.com/p.png\r\nX: y",
            "javascript:alert(1)",
        ] {
            assert!(poster_url(bad, "p").is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_show_something_and_keep_their_direction() {
        assert_eq!(display_name(" Zoë ", "n").unwrap(), "Zoë");
        assert!(display_name("abc\u{202E}fed", "n").is_err());
        assert!(display_name("\u{200B}\u{200B}", "n").is_err());
        assert!(display_name("\u{3164}", "n").is_err());
        assert!(display_name("아이유", "n").is_ok());
    }

    #[test]
    fn control_characters_are_found_anywhere_in_a_request() {
        let doc = async_graphql::parser::parse_query(
            "mutation { logIn(email: \"a\\u0000@x.io\", password: \"p\") { accessToken } }",
        )
        .unwrap();
        let err = check_request_strings(&doc, &Variables::default()).unwrap_err();
        assert!(err.message.starts_with("email:"), "{}", err.message);
        let doc = async_graphql::parser::parse_query(
            "query($t: String) { concerts(filter: {text: $t}) { nodes { id } } }",
        )
        .unwrap();
        let vars = Variables::from_json(serde_json::json!({ "t": "x\u{0}" }));
        assert!(check_request_strings(&doc, &vars).is_err());
        let vars = Variables::from_json(serde_json::json!({ "t": "two\nlines" }));
        assert!(check_request_strings(&doc, &vars).is_ok());
    }
}
